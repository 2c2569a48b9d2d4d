/* Fuzz the netsim spec parser: never crashes or reads out of bounds; every
 * accepted spec formats (into a NETSIM_SPEC_FMT_MAX buffer, without
 * NOSPACE) to a string that parses to an equal spec and formats to itself;
 * a rejected spec names a key that is a prefix-sized slice of the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "netsim/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char out[NETSIM_SPEC_FMT_MAX], out2[NETSIM_SPEC_FMT_MAX];
  struct netsim_spec s, s2;
  struct netsim_spec_err e;
  int rv = netsim_spec_parse((const char *)data, size, &s, &e);
  if (strlen(e.key) >= sizeof(e.key) || e.offset > size)
    abort();
  if (rv != 0)
    return 0;
  if (netsim_spec_format(&s, out, sizeof(out)) != 0)
    abort();
  if (netsim_spec_parse(out, strlen(out), &s2, &e) != 0)
    abort();
  if (!netsim_spec_equal(&s, &s2))
    abort();
  if (netsim_spec_format(&s2, out2, sizeof(out2)) != 0 ||
      strcmp(out, out2) != 0)
    abort();
  return 0;
}
