/* Fuzz the received-name validator. Never crashes or reads out of bounds;
 * every accepted name: does not start with '/', has no "." or ".."
 * component and no empty one, holds no byte < 0x20, no 0x7f and no '\',
 * splits into components that re-join into exactly the input, and escapes
 * to itself (nothing in it needs escaping). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sft/name.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  enum sft_name_reason why;
  struct sft_name_parts parts;
  static char esc[4 * SFT_MAX_NAME + 8];
  size_t off, pos = 0;
  int rc = sft_name_validate(s, size, &why, &off);
  int rc2 = sft_name_split(s, size, &parts, NULL);

  (void)sft_text_check(s, size);
  (void)sft_name_reason_str(why);
  if (rc != rc2 || (rc == 0) != (why == SFT_NAME_OK) || off > size)
    abort();
  if (rc != 0)
    return 0;
  if (size == 0 || size > SFT_MAX_NAME || data[0] == '/')
    abort();
  for (size_t i = 0; i < size; i++)
    if (data[i] < 0x20 || data[i] == 0x7f || data[i] == '\\')
      abort();
  if (parts.count == 0 || parts.count > SFT_MAX_NAME_DEPTH)
    abort();
  for (size_t k = 0; k < parts.count; k++) {
    const struct sft_name_component *c = &parts.comp[k];
    if (c->off != pos || c->len == 0 || c->len > SFT_MAX_NAME_COMPONENT)
      abort();
    if ((c->len == 1 && s[c->off] == '.') ||
        (c->len == 2 && s[c->off] == '.' && s[c->off + 1] == '.'))
      abort();
    if (memchr(s + c->off, '/', c->len))
      abort();
    pos = c->off + c->len;
    if (k + 1 < parts.count) {
      if (s[pos] != '/')
        abort();
      pos++;
    }
  }
  if (pos != size)
    abort();
  if (sft_name_escape(s, size, esc, sizeof(esc)) != size ||
      memcmp(esc, s, size) != 0)
    abort();
  return 0;
}
