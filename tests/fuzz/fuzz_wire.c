/* Fuzz the varint decoder: never reads out of bounds; every accepted value
 * re-encodes to exactly the bytes it came from. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sft/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct sft_rd r;
  sft_rd_init(&r, data, size);
  while (sft_rd_left(&r) > 0) {
    size_t start = r.off;
    uint64_t v = sft_rd_varint(&r);
    uint8_t buf[8];
    struct sft_wr w;
    if (r.err)
      break;
    sft_wr_init(&w, buf, sizeof(buf));
    sft_wr_varint(&w, v);
    if (w.err || w.off != r.off - start || memcmp(buf, data + start, w.off))
      abort();
  }
  return 0;
}
