/* Fuzz the chunk-stream header decoder: never crashes or over-reads; an
 * accepted header re-encodes to exactly the bytes it consumed (the payload
 * after it is not examined), and every shorter prefix asks for more. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sft/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct sft_chunk_hdr h, h2;
  uint8_t buf[SFT_CHUNK_HDR_MAX];
  size_t hl = 0, n = 0, hl2 = 0;
  int rv = sft_chunk_hdr_decode(data, size, &h, &hl);
  if (rv == SFT_ERR_AGAIN) {
    if (size >= SFT_CHUNK_HDR_MAX)
      abort(); /* a header never needs more than SFT_CHUNK_HDR_MAX bytes */
    return 0;
  }
  if (rv != 0)
    return 0;
  if (hl == 0 || hl > size || hl > SFT_CHUNK_HDR_MAX)
    abort();
  if (sft_chunk_hdr_encode(buf, sizeof(buf), &h, &n) != 0 || n != hl ||
      memcmp(buf, data, hl) != 0)
    abort();
  if (sft_chunk_hdr_decode(buf, n, &h2, &hl2) != 0 || hl2 != n ||
      h2.kind != h.kind || h2.file_id != h.file_id || h2.index != h.index ||
      h2.parity_index != h.parity_index || h2.payload_len != h.payload_len ||
      memcmp(h2.digest, h.digest, SFT_HASH_LEN) != 0)
    abort();
  for (size_t i = 0; i < hl; i++)
    if (sft_chunk_hdr_decode(data, i, &h2, &hl2) != SFT_ERR_AGAIN)
      abort();
  return 0;
}
