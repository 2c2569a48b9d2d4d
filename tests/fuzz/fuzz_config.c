/* Fuzz the configuration parser: arbitrary bytes as an INI file never crash
 * or read out of bounds, errors always come with a one-line message naming
 * the file, and every configuration that loads prints to text that parses
 * back to an equal configuration.
 *
 * The first input byte (if any) also feeds the value parsers directly, with
 * the rest of the input as a NUL-terminated string. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parsers(const uint8_t *data, size_t size) {
  static char s[SFTD_CFG_LINE_MAX + 1];
  size_t n = size < SFTD_CFG_LINE_MAX ? size : SFTD_CFG_LINE_MAX;
  uint64_t v;
  int b;
  struct sftd_hostport hp;
  char text[300];
  memcpy(s, data, n);
  s[n] = 0;
  (void)sftd_parse_uint(s, UINT64_MAX, &v, NULL);
  (void)sftd_parse_bits_per_sec(s, &v, NULL);
  (void)sftd_parse_size(s, &v, NULL);
  (void)sftd_parse_duration_ms(s, &v, NULL);
  (void)sftd_parse_bool(s, &b, NULL);
  if (sftd_parse_hostport(s, &hp, NULL) == 0) {
    struct sftd_hostport hp2;
    if (sftd_format_hostport(&hp, text, sizeof(text)) < 0 ||
        sftd_parse_hostport(text, &hp2, NULL) != 0 || hp2.port != hp.port ||
        strcmp(hp2.host, hp.host) != 0)
      abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct sftd_config c, d;
  static struct sftd_config_err err;
  static char out[SFTD_CFG_PRINT_MAX];
  size_t n = 0;

  parsers(data, size);
  sftd_config_defaults(&c);
  int rc =
      sftd_config_parse_buffer(&c, "f.conf", (const char *)data, size, &err);
  if (rc != 0) {
    if (err.code != rc || strncmp(err.msg, "f.conf", 6) != 0 ||
        strchr(err.msg, '\n') != NULL)
      abort();
    return 0;
  }
  (void)sftd_config_check(&c, &err);
  if (sftd_config_print(&c, SFTD_PRINT_ORIGINS, out, sizeof(out), &n) != 0)
    abort();
  sftd_config_defaults(&d);
  if (sftd_config_parse_buffer(&d, "printed", out, n, &err) != 0 ||
      !sftd_config_equal(&c, &d))
    abort();
  return 0;
}
