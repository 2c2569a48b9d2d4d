/* Fuzz the ACK decoder: never crashes or over-reads; every accepted body
 * re-encodes to a frame whose body is exactly the input (canonical
 * encoding) and which decodes to the same value. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sft/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sft_ack_range r1[SFT_MAX_ACK_RANGES],
    r2[SFT_MAX_ACK_RANGES];

static bool same(const struct sft_msg_ack *a, const struct sft_msg_ack *b) {
  return a->file_id == b->file_id && a->nranges == b->nranges &&
         memcmp(a->ranges, b->ranges,
                a->nranges * sizeof(struct sft_ack_range)) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct sft_msg_ack m, m2;
  uint8_t *buf;
  size_t n = 0, n2 = 0, used = 0;
  struct sft_frame f;
  if (sft_msg_ack_decode(data, size, &m, r1, SFT_MAX_ACK_RANGES) != 0)
    return 0;
  if (sft_msg_ack_encode(NULL, 0, &m, &n) != 0)
    abort();
  buf = malloc(n);
  if (!buf)
    return 0;
  if (sft_msg_ack_encode(buf, n, &m, &n2) != 0 || n2 != n)
    abort();
  if (sft_frame_parse(buf, n, &f, &used) != 0 || used != n ||
      f.type != SFT_MSG_ACK || f.body_len != size ||
      memcmp(f.body, data, size) != 0)
    abort();
  if (sft_msg_ack_decode(f.body, f.body_len, &m2, r2, SFT_MAX_ACK_RANGES) != 0 || !same(&m, &m2))
    abort();
  free(buf);
  return 0;
}
