/* Fuzz the control-stream framer: cut frames until the input is used up or
 * bad; every frame re-encodes (type, length, body) to the bytes it was cut
 * from, and feeding the same bytes one at a time yields the same frames. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sft/proto.h"
#include "sft/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t off = 0;
  int last;
  for (;;) {
    struct sft_frame f;
    size_t used = 0;
    uint8_t hdr[SFT_FRAME_HDR_MAX];
    struct sft_wr w;
    last = sft_frame_parse(data + off, size - off, &f, &used);
    if (last != 0)
      break;
    if (used == 0 || used > size - off || f.body_len > SFT_MAX_CTRL_MSG ||
        f.body + f.body_len != data + off + used)
      abort();
    sft_wr_init(&w, hdr, sizeof(hdr));
    sft_wr_varint(&w, f.type);
    sft_wr_varint(&w, f.body_len);
    if (w.err || w.off + f.body_len != used || memcmp(hdr, data + off, w.off))
      abort();
    off += used;
  }
  if (last != SFT_ERR_AGAIN && last != SFT_ERR_TOO_LARGE &&
      last != SFT_ERR_MALFORMED)
    abort();
  /* Incremental feeding: a prefix never yields a frame that the whole input
   * does not (frames end where they ended above). */
  {
    size_t start = 0;
    for (size_t have = 0; have <= off; have++) {
      struct sft_frame f;
      size_t used;
      while (sft_frame_parse(data + start, have - start, &f, &used) == 0) {
        start += used;
        if (start > have)
          abort();
      }
    }
    if (start != off)
      abort();
  }
  return 0;
}
