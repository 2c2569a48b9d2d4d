/* libFuzzer target: the TCP transport's frame decoder over arbitrary bytes.
 * Decodes a sequence of frames as the connection's parser does; checks that
 * consumption stays in bounds, lengths are bounded, and that re-encoding a
 * decoded frame reproduces the same bytes (one encoding per value). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/tcp/tcp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t off = 0;
  while (off < size) {
    sftt_frame f;
    int n = sftt_frame_decode(data + off, size - off, &f);
    if (n <= 0)
      break;
    if ((size_t)n > size - off)
      abort();
    if ((size_t)n > SFTT_MAX_HDR + SFTT_MAX_PAYLOAD)
      abort();
    uint8_t hdr[SFTT_MAX_HDR];
    int h = sftt_frame_encode(&f, hdr);
    if (h <= 0)
      abort();
    if (f.type == SFTT_F_DATA) {
      if (f.len > SFTT_MAX_PAYLOAD)
        abort();
      if (f.data != data + off + h)
        abort();
      if ((size_t)h + f.len != (size_t)n)
        abort();
    } else if (h != n) {
      abort();
    }
    if (memcmp(hdr, data + off, (size_t)h) != 0)
      abort();
    off += (size_t)n;
  }
  return 0;
}
