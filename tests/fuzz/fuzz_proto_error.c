/* Fuzz the ERROR decoder: never crashes or over-reads; every accepted body
 * re-encodes to a frame whose body is exactly the input (canonical
 * encoding) and which decodes to the same value. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sft/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const struct sft_msg_error *a, const struct sft_msg_error *b) {
  return a->code == b->code && a->file_id == b->file_id &&
         a->text_len == b->text_len &&
         memcmp(a->text, b->text, a->text_len + 1) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct sft_msg_error m, m2;
  uint8_t *buf;
  size_t n = 0, n2 = 0, used = 0;
  struct sft_frame f;
  if (sft_msg_error_decode(data, size, &m) != 0)
    return 0;
  if (sft_msg_error_encode(NULL, 0, &m, &n) != 0)
    abort();
  buf = malloc(n);
  if (!buf)
    return 0;
  if (sft_msg_error_encode(buf, n, &m, &n2) != 0 || n2 != n)
    abort();
  if (sft_frame_parse(buf, n, &f, &used) != 0 || used != n ||
      f.type != SFT_MSG_ERROR || f.body_len != size ||
      memcmp(f.body, data, size) != 0)
    abort();
  if (sft_msg_error_decode(f.body, f.body_len, &m2) != 0 || !same(&m, &m2))
    abort();
  free(buf);
  return 0;
}
