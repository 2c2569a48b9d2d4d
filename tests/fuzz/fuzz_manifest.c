/* Fuzz the manifest decoder: never crashes or over-reads; every accepted
 * input is a valid manifest whose encoding is exactly the input (the
 * encoding is canonical) and decodes to the same value. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sft/chunk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct sft_manifest m, m2;
  static uint8_t buf[SFT_MANIFEST_ENC_MAX];
  size_t n = 0, n2 = 0;
  if (sft_manifest_decode(data, size, &m) != 0)
    return 0;
  if (sft_manifest_verify(&m) != 0)
    abort();
  if (sft_manifest_encode(NULL, 0, &m, &n) != 0 || n != size ||
      n > SFT_MANIFEST_ENC_MAX)
    abort();
  if (sft_manifest_encode(buf, sizeof(buf), &m, &n2) != 0 || n2 != n)
    abort();
  if (memcmp(buf, data, n) != 0)
    abort();
  if (sft_manifest_decode(buf, n, &m2) != 0 || !sft_manifest_equal(&m, &m2))
    abort();
  return 0;
}
