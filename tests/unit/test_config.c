/* Tests of src/daemon/config: defaults, the example file, every error class
 * with its exact message, precedence, print/re-parse, value parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"

/* A mutable string, for environment arrays. */
#define S(x) ((char[]){x})

static struct sftd_config *cfg_new(void) {
  struct sftd_config *c = malloc(sizeof(*c));
  assert_non_null(c);
  sftd_config_defaults(c);
  return c;
}

/* Parses |text| as file "t.conf" on top of the defaults; returns the code,
 * err filled. */
static int parse(struct sftd_config *c, const char *text,
                 struct sftd_config_err *err) {
  return sftd_config_parse_buffer(c, "t.conf", text, strlen(text), err);
}

/* Asserts that |text| fails with |code| and exactly |msg|. */
static void expect_err(const char *text, int code, const char *msg) {
  struct sftd_config *c = cfg_new();
  struct sftd_config_err err;
  int rc = parse(c, text, &err);
  if (rc != code || err.code != code || strcmp(err.msg, msg) != 0)
    fail_msg("rc %d (want %d)\n  got:  \"%s\"\n  want: \"%s\"", rc, code,
             err.msg, msg);
  free(c);
}

static void test_defaults(void **state) {
  (void)state;
  struct sftd_config *c = cfg_new();
  struct sftd_config_err err;
  assert_int_equal(c->chunk_size, 0);
  assert_int_equal(c->data_shards, 10);
  assert_int_equal(c->parity_shards, 3);
  assert_int_equal(c->max_retries, 5);
  assert_int_equal(c->hash, SFTD_HASH_BLAKE3);
  assert_int_equal(c->bwlimit, 0);
  assert_int_equal(c->per_transfer_bwlimit, 0);
  assert_string_equal(c->quic_bind_addr.host, "0.0.0.0");
  assert_int_equal(c->quic_bind_addr.port, 5000);
  assert_int_equal(c->congestion_control, SFTD_CC_BBR2);
  assert_int_equal(c->transport, SFTD_TRANSPORT_AUTO);
  assert_int_equal(c->idle_timeout_ms, 30000);
  assert_string_equal(c->api_bind_addr.host, "127.0.0.1");
  assert_int_equal(c->api_bind_addr.port, 8080);
  assert_string_equal(c->grpc_bind_addr.host, "127.0.0.1");
  assert_int_equal(c->grpc_bind_addr.port, 50051);
  assert_string_equal(c->cors_origins, "");
  assert_int_equal(c->body_limit, 1024 * 1024);
  assert_int_equal(c->rate_limit, 100);
  assert_string_equal(c->data_dir, "");
  assert_string_equal(c->download_dir, "");
  assert_string_equal(c->database_path, "");
  assert_int_equal(c->cleanup_days, 30);
  assert_int_equal(c->accept_any, 0);
  assert_int_equal(c->overwrite, 0);
  assert_int_equal(c->max_file_size, 0);
  assert_int_equal(c->log_level, SFTD_LOG_INFO);
  for (int i = 0; i < SFTD_CFG_NKEYS; i++)
    assert_string_equal(c->origin[i], "default");
  assert_int_equal(sftd_config_check(c, &err), 0);
  assert_int_equal(sftd_config_load(c, NULL, NULL, NULL, 0, &err), 0);

  char db[64];
  assert_int_equal(sftd_config_database_path(c, "/d", db, sizeof(db)), 0);
  assert_string_equal(db, "/d/sft.db");
  assert_int_equal(sftd_config_database_path(c, "/dd", db, 10),
                   SFT_ERR_TOO_LARGE);
  strcpy(c->database_path, "/x.db");
  assert_int_equal(sftd_config_database_path(c, "/d", db, sizeof(db)), 0);
  assert_string_equal(db, "/x.db");
  free(c);
}

/* etc/sft.conf loads cleanly, shows every default, and mentions every
 * setting (the print-out's keys all appear in it). */
static void test_example_file(void **state) {
  (void)state;
  struct sftd_config *c = cfg_new(), *d = cfg_new();
  struct sftd_config_err err;
  const char *path = SFT_SOURCE_DIR "/etc/sft.conf";
  int rc = sftd_config_load_file(c, path, &err);
  if (rc)
    fail_msg("%s", err.msg);
  assert_true(sftd_config_equal(c, d));
  assert_int_equal(sftd_config_load(c, path, NULL, NULL, 0, &err), 0);

  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  static char text[SFTD_CFG_FILE_MAX];
  size_t n = fread(text, 1, sizeof(text) - 1, f);
  fclose(f);
  text[n] = 0;
  static char out[SFTD_CFG_PRINT_MAX];
  assert_int_equal(sftd_config_print(d, 0, out, sizeof(out), NULL), 0);
  int nkeys = 0;
  for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
    char key[64];
    int end1 = -1, end2 = -1;
    sscanf(line, "%63[a-z_] =%n", key, &end1);
    if (end1 < 0)
      sscanf(line, "# %63[a-z_] = (unset)%n", key, &end2);
    if (end1 > 0 || end2 > 0) {
      char pat[80];
      snprintf(pat, sizeof(pat), "\n%s = ", key);
      char pat2[80];
      snprintf(pat2, sizeof(pat2), "\n# %s = ", key);
      if (!strstr(text, pat) && !strstr(text, pat2))
        fail_msg("etc/sft.conf does not document %s", key);
      nkeys++;
    }
  }
  assert_int_equal(nkeys, SFTD_CFG_NKEYS);
  assert_int_equal(
      sftd_config_load_file(c, SFT_SOURCE_DIR "/etc/nonexistent", &err),
      SFT_ERR_NOT_FOUND);
  free(c);
  free(d);
}

static const char full_text[] =
    "\xef\xbb\xbf# every setting changed\r\n"
    "[transfer]\n"
    "chunk_size = 256K\n"
    "data_shards=20\n"
    "  parity_shards\t=  auto  \n"
    "hash = SHA256\n"
    "bwlimit = 10M\n"
    "per_transfer_bwlimit = 2500k\n"
    "; semicolon comment\n"
    "[network]\n"
    "quic_bind_addr = [::]:6000\n"
    "congestion_control = cubic\n"
    "transport = tcp\n"
    "idle_timeout = 1500ms\n"
    "[api]\n"
    "api_bind_addr = localhost:9090\n"
    "grpc_bind_addr = [::1]:0\n"
    "cors_origins = http://localhost:3000 , https://[::1]:8443,*\n"
    "body_limit = 2MiB\n"
    "rate_limit = none\n"
    "[storage]\n"
    "data_dir = /var/lib/sft data\n"
    "download_dir = ./in#coming\n"
    "database_path = /db/s.db\n"
    "cleanup_days = 0\n"
    "[ receive ]\n"
    "accept_any = yes\n"
    "overwrite = ON\n"
    "max_file_size = 1T\n"
    "[log]\n"
    "level = debug\n"
    "[transfer]\n"     /* reopening a section is fine */
    "max_retries = 0"; /* no final newline */

static void check_full(const struct sftd_config *c) {
  assert_int_equal(c->chunk_size, 256 * 1024);
  assert_int_equal(c->data_shards, 20);
  assert_int_equal(c->parity_shards, SFTD_PARITY_AUTO);
  assert_int_equal(c->max_retries, 0);
  assert_int_equal(c->hash, SFTD_HASH_SHA256);
  assert_int_equal(c->bwlimit, 10000000);
  assert_int_equal(c->per_transfer_bwlimit, 2500000);
  assert_string_equal(c->quic_bind_addr.host, "::");
  assert_int_equal(c->quic_bind_addr.ipv6, 1);
  assert_int_equal(c->quic_bind_addr.port, 6000);
  assert_int_equal(c->congestion_control, SFTD_CC_CUBIC);
  assert_int_equal(c->transport, SFTD_TRANSPORT_TCP);
  assert_int_equal(c->idle_timeout_ms, 1500);
  assert_string_equal(c->api_bind_addr.host, "localhost");
  assert_int_equal(c->api_bind_addr.port, 9090);
  assert_string_equal(c->grpc_bind_addr.host, "::1");
  assert_int_equal(c->grpc_bind_addr.port, 0);
  assert_string_equal(c->cors_origins,
                      "http://localhost:3000,https://[::1]:8443,*");
  assert_int_equal(c->body_limit, 2 * 1024 * 1024);
  assert_int_equal(c->rate_limit, 0);
  assert_string_equal(c->data_dir, "/var/lib/sft data");
  assert_string_equal(c->download_dir, "./in#coming");
  assert_string_equal(c->database_path, "/db/s.db");
  assert_int_equal(c->cleanup_days, 0);
  assert_int_equal(c->accept_any, 1);
  assert_int_equal(c->overwrite, 1);
  assert_int_equal(c->max_file_size, 1ull << 40);
  assert_int_equal(c->log_level, SFTD_LOG_DEBUG);
}

static void test_full_file(void **state) {
  (void)state;
  struct sftd_config *c = cfg_new();
  struct sftd_config_err err;
  int rc = parse(c, full_text, &err);
  if (rc)
    fail_msg("%s", err.msg);
  check_full(c);
  assert_string_equal(c->origin[0], "t.conf:3");
  assert_string_equal(c->origin[3], "t.conf:33"); /* max_retries */
  assert_int_equal(sftd_config_check(c, &err), 0);
  free(c);
}

static void test_file_errors(void **state) {
  (void)state;
  expect_err("[transfer]\n\n\n\n\n\n\n\n\n\n\nparity_shards = 300\n",
             SFT_ERR_INVAL,
             "t.conf:12: parity_shards = 300: must be auto or 0..254 with "
             "data_shards + parity_shards <= 255");
  expect_err("[transfer]\n[foo]\n", SFT_ERR_INVAL,
             "t.conf:2: [foo]: unknown section (known: transfer, network, "
             "api, storage, receive, log)");
  expect_err("[Transfer]\n", SFT_ERR_INVAL,
             "t.conf:1: [Transfer]: unknown section (known: transfer, "
             "network, api, storage, receive, log)");
  expect_err("[transfer]\nchunk = 4K\n", SFT_ERR_INVAL,
             "t.conf:2: chunk: unknown key in [transfer]");
  expect_err("[network]\nchunk_size = 4K\n", SFT_ERR_INVAL,
             "t.conf:2: chunk_size: unknown key in [network] (it belongs in "
             "[transfer])");
  expect_err("data_shards = 4\n", SFT_ERR_INVAL,
             "t.conf:1: data_shards: key outside a [section]");
  expect_err("[transfer]\ndata_shards = 4\n# x\ndata_shards = 5\n",
             SFT_ERR_INVAL,
             "t.conf:4: data_shards: duplicate key (first set on line 2)");
  expect_err("[transfer]\ndata_shards = 4\n[api]\n[transfer]\ndata_shards=4\n",
             SFT_ERR_INVAL,
             "t.conf:5: data_shards: duplicate key (first set on line 2)");
  /* wrong type, bad unit, out of range, bad address, empty */
  expect_err("[transfer]\ndata_shards = ten\n", SFT_ERR_INVAL,
             "t.conf:2: data_shards = ten: not a number");
  expect_err("[transfer]\ndata_shards = 0\n", SFT_ERR_INVAL,
             "t.conf:2: data_shards = 0: must be 1..255");
  expect_err("[transfer]\ndata_shards = 4 # comment\n", SFT_ERR_INVAL,
             "t.conf:2: data_shards = 4 # comment: not a number");
  expect_err("[transfer]\nchunk_size = 4X\n", SFT_ERR_INVAL,
             "t.conf:2: chunk_size = 4X: unknown unit (use K, M, G, T or P: "
             "powers of 1024)");
  expect_err("[transfer]\nchunk_size = 32M\n", SFT_ERR_INVAL,
             "t.conf:2: chunk_size = 32M: must be auto or 4K..16M");
  expect_err("[transfer]\nchunk_size = 99999999999999999999G\n", SFT_ERR_INVAL,
             "t.conf:2: chunk_size = 99999999999999999999G: must be auto or "
             "4K..16M");
  expect_err("[transfer]\nbwlimit = 10Mbps\n", SFT_ERR_INVAL,
             "t.conf:2: bwlimit = 10Mbps: unknown unit (use k, M, G or T: "
             "powers of 1000 bit/s)");
  expect_err("[transfer]\nhash = md5\n", SFT_ERR_INVAL,
             "t.conf:2: hash = md5: must be blake3 or sha256");
  expect_err("[network]\nidle_timeout = 30\n", SFT_ERR_INVAL,
             "t.conf:2: idle_timeout = 30: missing unit (ms, s, m or h)");
  expect_err("[network]\nidle_timeout = 2h\n", SFT_ERR_INVAL,
             "t.conf:2: idle_timeout = 2h: must be 1s..1h (units ms, s, m, h)");
  expect_err("[network]\nquic_bind_addr = ::1:5000\n", SFT_ERR_INVAL,
             "t.conf:2: quic_bind_addr = ::1:5000: an IPv6 address needs "
             "brackets: [addr]:port");
  expect_err("[network]\nquic_bind_addr = 10.0.0.300:5000\n", SFT_ERR_INVAL,
             "t.conf:2: quic_bind_addr = 10.0.0.300:5000: bad IPv4 address");
  expect_err("[api]\napi_bind_addr = 127.0.0.1:80800\n", SFT_ERR_INVAL,
             "t.conf:2: api_bind_addr = 127.0.0.1:80800: port must be "
             "0..65535");
  expect_err("[api]\ncors_origins = ftp://x\n", SFT_ERR_INVAL,
             "t.conf:2: cors_origins = ftp://x: bad origin (use * or "
             "http(s)://host[:port], comma-separated)");
  expect_err("[receive]\noverwrite = maybe\n", SFT_ERR_INVAL,
             "t.conf:2: overwrite = maybe: must be true/false, yes/no, on/off "
             "or 1/0");
  expect_err("[storage]\ndata_dir =\n", SFT_ERR_INVAL,
             "t.conf:2: data_dir = : empty value");
  /* syntax */
  expect_err("[transfer]\njust words\n", SFT_ERR_MALFORMED,
             "t.conf:2: expected 'key = value', '[section]' or a comment");
  expect_err("[transfer\n", SFT_ERR_MALFORMED,
             "t.conf:1: section header without ']'");
  expect_err("[transfer]\n = 4\n", SFT_ERR_MALFORMED,
             "t.conf:2: missing key before '='");
  expect_err("[log]\nlevel = in\x01o\n", SFT_ERR_MALFORMED,
             "t.conf:2: control character 0x01");
  {
    struct sftd_config *c = cfg_new();
    struct sftd_config_err err;
    static const char nul[] = "[log]\nlevel = i\0nfo\n";
    assert_int_equal(
        sftd_config_parse_buffer(c, "t.conf", nul, sizeof(nul) - 1, &err),
        SFT_ERR_MALFORMED);
    assert_string_equal(err.msg, "t.conf:2: NUL byte");
    free(c);
  }
  /* a long value is echoed cut at 64 bytes */
  expect_err("[log]\nlevel = "
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "bbbb\n",
             SFT_ERR_INVAL,
             "t.conf:2: level = "
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "...: must be error, warn, info or debug");
}

/* Line bound: 4096 bytes pass (also with CRLF), 4097 do not; file bound:
 * 1 MiB passes, one byte more does not. */
static void test_bounds(void **state) {
  (void)state;
  struct sftd_config *c = cfg_new();
  struct sftd_config_err err;
  static char buf[SFTD_CFG_FILE_MAX + 16];
  size_t n;

  /* a 4096-byte line passes (also with CRLF), 4097 bytes do not */
  n = (size_t)sprintf(buf, "[storage]\n# ");
  memset(buf + n, 'c', 4094);
  n += 4094;
  memcpy(buf + n, "\r\ndata_dir = /d\n", 16);
  assert_int_equal(sftd_config_parse_buffer(c, "t.conf", buf, n + 16, &err), 0);
  assert_string_equal(c->data_dir, "/d");
  sftd_config_defaults(c);
  buf[n] = 'c';
  assert_int_equal(sftd_config_parse_buffer(c, "t.conf", buf, n + 16, &err),
                   SFT_ERR_MALFORMED);
  assert_string_equal(err.msg, "t.conf:2: line longer than 4096 bytes");

  /* a path: 4064 bytes pass, 4065 do not, also in a file */
  memset(buf, 'q', 4064);
  buf[4064] = 0;
  assert_int_equal(sftd_config_set(c, "storage.data_dir", buf, NULL, &err), 0);
  assert_int_equal(strlen(c->data_dir), 4064);
  buf[4064] = 'q';
  buf[4065] = 0;
  assert_int_equal(sftd_config_set(c, "data_dir", buf, "--data-dir", &err),
                   SFT_ERR_INVAL);
  assert_string_equal(
      err.msg,
      "--data-dir: data_dir = "
      "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"
      "...: path longer than 4064 bytes");
  memset(buf, 'q', 5000);
  buf[5000] = 0;
  assert_int_equal(sftd_config_set(c, "data_dir", buf, "--data-dir", &err),
                   SFT_ERR_INVAL);
  assert_string_equal(err.msg, "--data-dir: value longer than 4096 bytes");

  /* file size: exactly 1 MiB of comment lines, then one byte more */
  memset(buf, '#', SFTD_CFG_FILE_MAX);
  for (size_t i = 100; i < SFTD_CFG_FILE_MAX; i += 100)
    buf[i] = '\n';
  assert_int_equal(
      sftd_config_parse_buffer(c, "big.conf", buf, SFTD_CFG_FILE_MAX, &err), 0);
  assert_int_equal(
      sftd_config_parse_buffer(c, "big.conf", buf, SFTD_CFG_FILE_MAX + 1, &err),
      SFT_ERR_TOO_LARGE);
  assert_string_equal(err.msg, "big.conf: file larger than 1048576 bytes");

  /* the same through a real file */
  char path[] = "/tmp/sft-test-config-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(buf, 1, SFTD_CFG_FILE_MAX + 1, f),
                   SFTD_CFG_FILE_MAX + 1);
  fclose(f);
  assert_int_equal(sftd_config_load_file(c, path, &err), SFT_ERR_TOO_LARGE);
  f = fopen(path, "wb");
  assert_non_null(f);
  fputs("[transfer]\ndata_shards = 7\n", f);
  fclose(f);
  assert_int_equal(sftd_config_load_file(c, path, &err), 0);
  assert_int_equal(c->data_shards, 7);
  char want[128];
  snprintf(want, sizeof(want), "%s:2", path);
  assert_string_equal(c->origin[1], want);
  remove(path);
  free(c);
}

static void test_env_and_flags(void **state) {
  (void)state;
  struct sftd_config *c = cfg_new();
  struct sftd_config_err err;
  char path[] = "/tmp/sft-test-config-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "wb");
  assert_non_null(f);
  fputs("[transfer]\ndata_shards = 4\nmax_retries = 1\nchunk_size = 8K\n"
        "[api]\napi_bind_addr = 127.0.0.1:1\n",
        f);
  fclose(f);

  char *env[] = {
      S("HOME=/root"),
      S("SFT_DATA_DIR=/ignored"), /* not a config variable */
      S("SFT_TRANSFER_DATA_SHARDS=5"),
      S("SFT_TRANSFER_MAX_RETRIES=2"),
      S("SFT_TRANSFER_MAX_RETRIES=200"), /* repeated: the first wins */
      S("SFT_API_API_BIND_ADDR=[::1]:7"),
      S("SFT_TRANSFER_CHUNK_SIZE=16K"),
      NULL,
  };
  const char *args[] = {"transfer.data_shards=6", "chunk_size=32K"};

  /* file only */
  assert_int_equal(sftd_config_load(c, path, NULL, NULL, 0, &err), 0);
  assert_int_equal(c->data_shards, 4);
  /* file < env */
  assert_int_equal(sftd_config_load(c, path, env, NULL, 0, &err), 0);
  assert_int_equal(c->data_shards, 5);
  assert_int_equal(c->max_retries, 2);
  assert_int_equal(c->chunk_size, 16 * 1024);
  assert_string_equal(c->api_bind_addr.host, "::1");
  assert_int_equal(c->api_bind_addr.port, 7);
  assert_string_equal(c->origin[1], "environment SFT_TRANSFER_DATA_SHARDS");
  assert_string_equal(c->data_dir, "");
  /* env < flags */
  assert_int_equal(sftd_config_load(c, path, env, args, 2, &err), 0);
  assert_int_equal(c->data_shards, 6);
  assert_int_equal(c->chunk_size, 32 * 1024);
  assert_int_equal(c->max_retries, 2);
  assert_string_equal(c->origin[1], "--set transfer.data_shards=6");
  /* a flag with the daemon's own label */
  assert_int_equal(sftd_config_set(c, "bwlimit", "1G", "--bwlimit", &err), 0);
  assert_int_equal(c->bwlimit, 1000000000ull);
  assert_string_equal(c->origin[5], "--bwlimit");

  /* errors name the variable or flag */
  char *bad_env[] = {S("SFT_TRANSFER_DATA_SHARDS=0"), NULL};
  assert_int_equal(sftd_config_apply_env(c, bad_env, &err), SFT_ERR_INVAL);
  assert_string_equal(
      err.msg,
      "environment SFT_TRANSFER_DATA_SHARDS: data_shards = 0: must be 1..255");
  char *bad_env2[] = {S("SFT_TRANSFER_DATASHARDS=5"), NULL};
  assert_int_equal(sftd_config_apply_env(c, bad_env2, &err), SFT_ERR_INVAL);
  assert_string_equal(err.msg,
                      "environment SFT_TRANSFER_DATASHARDS: unknown setting "
                      "in [transfer] (SFT_TRANSFER_* names are reserved for "
                      "the configuration)");
  char *lower_env[] = {S("SFT_TRANSFER_data_shards=5"), NULL};
  assert_int_equal(sftd_config_apply_env(c, lower_env, &err), SFT_ERR_INVAL);
  assert_int_equal(
      sftd_config_set(c, "data_shards", "256", "--data-shards", &err),
      SFT_ERR_INVAL);
  assert_string_equal(err.msg,
                      "--data-shards: data_shards = 256: must be 1..255");
  assert_int_equal(
      sftd_config_set_arg(c, "transfer.parity_shards=x", NULL, &err),
      SFT_ERR_INVAL);
  assert_string_equal(err.msg, "--set transfer.parity_shards=x: "
                               "parity_shards = x: not a number");
  assert_int_equal(sftd_config_set_arg(c, "network.chunk_size=4K", NULL, &err),
                   SFT_ERR_INVAL);
  assert_string_equal(err.msg, "--set network.chunk_size=4K: unknown setting "
                               "'network.chunk_size'");
  assert_int_equal(sftd_config_set_arg(c, "chunk_size", NULL, &err),
                   SFT_ERR_INVAL);
  assert_string_equal(err.msg, "--set chunk_size: expected section.key=value");
  const char *bad_args[] = {"log.level=loud"};
  assert_int_equal(sftd_config_load(c, path, env, bad_args, 1, &err),
                   SFT_ERR_INVAL);
  assert_string_equal(err.msg, "--set log.level=loud: level = loud: must be "
                               "error, warn, info or debug");
  remove(path);
  free(c);
}

static void test_cross_field(void **state) {
  (void)state;
  struct sftd_config *c = cfg_new();
  struct sftd_config_err err;
  char *env[] = {S("SFT_TRANSFER_PARITY_SHARDS=100"), NULL};
  const char *ok[] = {"parity_shards=auto"};
  static const char text[] = "[transfer]\ndata_shards = 200\n";
  assert_int_equal(parse(c, text, &err), 0);
  assert_int_equal(sftd_config_apply_env(c, env, &err), 0);
  assert_int_equal(sftd_config_check(c, &err), SFT_ERR_INVAL);
  assert_string_equal(err.msg,
                      "data_shards = 200 (t.conf:2) + parity_shards = 100 "
                      "(environment SFT_TRANSFER_PARITY_SHARDS) = 300: must "
                      "be <= 255");
  /* auto parity is never over the sum; 255 + 0 is fine, 255 + 1 not */
  assert_int_equal(sftd_config_set_arg(c, ok[0], NULL, &err), 0);
  assert_int_equal(sftd_config_check(c, &err), 0);
  assert_int_equal(sftd_config_set(c, "data_shards", "255", NULL, &err), 0);
  assert_int_equal(sftd_config_set(c, "parity_shards", "0", NULL, &err), 0);
  assert_int_equal(sftd_config_check(c, &err), 0);
  assert_int_equal(sftd_config_set(c, "parity_shards", "1", NULL, &err), 0);
  assert_int_equal(sftd_config_check(c, &err), SFT_ERR_INVAL);
  assert_int_equal(sftd_config_set(c, "data_shards", "1", NULL, &err), 0);
  assert_int_equal(sftd_config_set(c, "parity_shards", "254", NULL, &err), 0);
  assert_int_equal(sftd_config_check(c, &err), 0);
  free(c);
}

static void roundtrip(const struct sftd_config *c, unsigned flags) {
  static char out[SFTD_CFG_PRINT_MAX];
  size_t n = 0;
  struct sftd_config_err err;
  struct sftd_config *d = cfg_new();
  assert_int_equal(sftd_config_print(c, flags, out, sizeof(out), &n), 0);
  assert_int_equal(strlen(out), n);
  int rc = sftd_config_parse_buffer(d, "printed", out, n, &err);
  if (rc)
    fail_msg("%s\n%s", err.msg, out);
  assert_true(sftd_config_equal(c, d));
  /* printing is stable */
  static char out2[SFTD_CFG_PRINT_MAX];
  assert_int_equal(sftd_config_print(d, 0, out2, sizeof(out2), NULL), 0);
  assert_int_equal(sftd_config_print(c, 0, out, sizeof(out), NULL), 0);
  assert_string_equal(out, out2);
  free(d);
}

static void test_print_roundtrip(void **state) {
  (void)state;
  struct sftd_config *c = cfg_new(), *d = cfg_new();
  struct sftd_config_err err;
  roundtrip(c, 0);
  assert_int_equal(parse(c, full_text, &err), 0);
  assert_false(sftd_config_equal(c, d));
  roundtrip(c, 0);
  roundtrip(c, SFTD_PRINT_ORIGINS);
  /* odd values: not multiples of a unit, maxima, long paths */
  const char *sets[][2] = {
      {"chunk_size", "4097"},
      {"parity_shards", "0"},
      {"bwlimit", "10T"},
      {"per_transfer_bwlimit", "1234567"},
      {"idle_timeout", "1h"},
      {"body_limit", "1G"},
      {"max_file_size", "1P"},
      {"rate_limit", "1000000"},
      {"cleanup_days", "36500"},
      {"max_retries", "255"},
      {"quic_bind_addr", "a-b.c:1"},
      {"log.level", "error"},
      {"cors_origins", "*"},
      {"congestion_control", "reno"},
  };
  for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
    assert_int_equal(sftd_config_set(c, sets[i][0], sets[i][1], NULL, &err), 0);
  static char longpath[SFTD_CFG_PATH_VALUE_MAX + 1];
  memset(longpath, 'z', SFTD_CFG_PATH_VALUE_MAX);
  longpath[0] = '/';
  assert_int_equal(sftd_config_set(c, "database_path", longpath, NULL, &err),
                   0);
  assert_int_equal(sftd_config_set(c, "download_dir", longpath, NULL, &err), 0);
  roundtrip(c, SFTD_PRINT_ORIGINS);
  static char out[SFTD_CFG_PRINT_MAX];
  size_t n;
  /* a too small buffer */
  assert_int_equal(sftd_config_print(c, 0, out, 100, &n), SFT_ERR_NOSPACE);
  assert_string_equal(out, "");
  /* to a stream */
  FILE *f = tmpfile();
  assert_non_null(f);
  assert_int_equal(sftd_config_write(c, 0, f), 0);
  assert_true(ftell(f) > 100);
  fclose(f);
  free(c);
  free(d);
}

static void test_parse_size(void **state) {
  (void)state;
  uint64_t v = 77;
  const char *why = NULL;
  assert_int_equal(sftd_parse_size("0", &v, NULL), 0);
  assert_int_equal(v, 0);
  assert_int_equal(sftd_parse_size("4K", &v, NULL), 0);
  assert_int_equal(v, 4096);
  assert_int_equal(sftd_parse_size("4KiB", &v, NULL), 0);
  assert_int_equal(v, 4096);
  assert_int_equal(sftd_parse_size("16m", &v, NULL), 0);
  assert_int_equal(v, 16u << 20);
  assert_int_equal(sftd_parse_size("3G", &v, NULL), 0);
  assert_int_equal(v, 3ull << 30);
  assert_int_equal(sftd_parse_size("18446744073709551615", &v, NULL), 0);
  assert_int_equal(v, UINT64_MAX);
  assert_int_equal(sftd_parse_size("16383P", &v, NULL), 0);
  assert_int_equal(v, 16383ull << 50);
  v = 77;
  assert_int_equal(sftd_parse_size("18446744073709551616", &v, &why),
                   SFT_ERR_RANGE);
  assert_string_equal(why, "number too large");
  assert_int_equal(sftd_parse_size("16384P", &v, NULL), SFT_ERR_RANGE);
  assert_int_equal(sftd_parse_size("16777216T", &v, NULL), SFT_ERR_RANGE);
  assert_int_equal(sftd_parse_size("99999999999999999999G", &v, NULL),
                   SFT_ERR_RANGE);
  assert_int_equal(v, 77); /* untouched on error */
  static const char *const bad[] = {"",    "K",     "4KB", "4 K",  " 4K",
                                    "4K ", "-1",    "+1",  "1.5M", "0x10",
                                    "4Ki", "4KiBB", "1e3"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (sftd_parse_size(bad[i], &v, NULL) != SFT_ERR_INVAL)
      fail_msg("size \"%s\" accepted", bad[i]);
  char longnum[80];
  memset(longnum, '0', 65);
  longnum[65] = 0;
  assert_int_equal(sftd_parse_size(longnum, &v, &why), SFT_ERR_INVAL);
  assert_string_equal(why, "value too long");
  longnum[64] = 0; /* 64 zeros: fine */
  assert_int_equal(sftd_parse_size(longnum, &v, NULL), 0);
  assert_int_equal(v, 0);
}

static void test_parse_bps(void **state) {
  (void)state;
  uint64_t v;
  assert_int_equal(sftd_parse_bits_per_sec("10M", &v, NULL), 0);
  assert_int_equal(v, 10000000);
  assert_int_equal(sftd_parse_bits_per_sec("10k", &v, NULL), 0);
  assert_int_equal(v, 10000);
  assert_int_equal(sftd_parse_bits_per_sec("10K", &v, NULL), 0);
  assert_int_equal(v, 10000);
  assert_int_equal(sftd_parse_bits_per_sec("2G", &v, NULL), 0);
  assert_int_equal(v, 2000000000ull);
  assert_int_equal(sftd_parse_bits_per_sec("1T", &v, NULL), 0);
  assert_int_equal(v, 1000000000000ull);
  assert_int_equal(sftd_parse_bits_per_sec("none", &v, NULL), 0);
  assert_int_equal(v, 0);
  assert_int_equal(sftd_parse_bits_per_sec("0", &v, NULL), 0);
  assert_int_equal(v, 0);
  assert_int_equal(sftd_parse_bits_per_sec("18446744073709551615", &v, NULL),
                   0);
  assert_int_equal(v, UINT64_MAX);
  assert_int_equal(sftd_parse_bits_per_sec("18446744073709551k", &v, NULL), 0);
  assert_int_equal(sftd_parse_bits_per_sec("18446744073709552k", &v, NULL),
                   SFT_ERR_RANGE);
  assert_int_equal(sftd_parse_bits_per_sec("18446744073709551616", &v, NULL),
                   SFT_ERR_RANGE);
  assert_int_equal(sftd_parse_bits_per_sec("99999999999999999999G", &v, NULL),
                   SFT_ERR_RANGE);
  static const char *const bad[] = {"",     "M",  "10m",  "10Mb", "10Mbit/s",
                                    "1.5M", "-1", "10 M", "nonee"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (sftd_parse_bits_per_sec(bad[i], &v, NULL) != SFT_ERR_INVAL)
      fail_msg("rate \"%s\" accepted", bad[i]);
  /* the setting's bound: 10T passes, one more bit does not */
  struct sftd_config *c = cfg_new();
  struct sftd_config_err err;
  assert_int_equal(sftd_config_set(c, "bwlimit", "10000000000000", NULL, &err),
                   0);
  assert_int_equal(sftd_config_set(c, "bwlimit", "10000000000001", NULL, &err),
                   SFT_ERR_INVAL);
  assert_int_equal(
      sftd_config_set(c, "bwlimit", "99999999999999999999G", "--bwlimit", &err),
      SFT_ERR_INVAL);
  assert_string_equal(err.msg, "--bwlimit: bwlimit = 99999999999999999999G: "
                               "must be none or 1..10T bit/s (k, M, G, T: "
                               "powers of 1000)");
  free(c);
}

static void test_parse_duration_bool(void **state) {
  (void)state;
  uint64_t v;
  int b = 5;
  assert_int_equal(sftd_parse_duration_ms("0", &v, NULL), 0);
  assert_int_equal(v, 0);
  assert_int_equal(sftd_parse_duration_ms("250ms", &v, NULL), 0);
  assert_int_equal(v, 250);
  assert_int_equal(sftd_parse_duration_ms("30s", &v, NULL), 0);
  assert_int_equal(v, 30000);
  assert_int_equal(sftd_parse_duration_ms("5m", &v, NULL), 0);
  assert_int_equal(v, 300000);
  assert_int_equal(sftd_parse_duration_ms("2h", &v, NULL), 0);
  assert_int_equal(v, 7200000);
  assert_int_equal(sftd_parse_duration_ms("18446744073709551615ms", &v, NULL),
                   0);
  assert_int_equal(sftd_parse_duration_ms("18446744073709552s", &v, NULL),
                   SFT_ERR_RANGE);
  static const char *const bad[] = {"",   "5",    "s",    "5 s", "5S",
                                    "1d", "5sec", "1.5s", "-1s", "5mss"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (sftd_parse_duration_ms(bad[i], &v, NULL) != SFT_ERR_INVAL)
      fail_msg("duration \"%s\" accepted", bad[i]);
  /* the setting's bound */
  struct sftd_config *c = cfg_new();
  struct sftd_config_err err;
  assert_int_equal(sftd_config_set(c, "idle_timeout", "999ms", NULL, &err),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_config_set(c, "idle_timeout", "1000ms", NULL, &err), 0);
  assert_int_equal(sftd_config_set(c, "idle_timeout", "60m", NULL, &err), 0);
  assert_int_equal(sftd_config_set(c, "idle_timeout", "3600001ms", NULL, &err),
                   SFT_ERR_INVAL);
  /* other settings' bounds: 0, min, max, max + 1 */
  static const struct {
    const char *k, *v;
    int ok;
  } bnd[] = {
      {"data_shards", "0", 0},       {"data_shards", "1", 1},
      {"data_shards", "255", 1},     {"data_shards", "256", 0},
      {"parity_shards", "0", 1},     {"parity_shards", "254", 1},
      {"parity_shards", "255", 0},   {"parity_shards", "AUTO", 1},
      {"chunk_size", "0", 0},        {"chunk_size", "4095", 0},
      {"chunk_size", "4K", 1},       {"chunk_size", "16M", 1},
      {"chunk_size", "16777217", 0}, {"max_retries", "256", 0},
      {"rate_limit", "0", 1},        {"rate_limit", "1000001", 0},
      {"body_limit", "1023", 0},     {"body_limit", "1025", 1},
      {"max_file_size", "0", 1},     {"max_file_size", "1025P", 0},
      {"cleanup_days", "36501", 0},  {"data_shards", "4294967297", 0},
  };
  for (size_t i = 0; i < sizeof(bnd) / sizeof(bnd[0]); i++) {
    int rc = sftd_config_set(c, bnd[i].k, bnd[i].v, NULL, &err);
    if ((rc == 0) != bnd[i].ok)
      fail_msg("%s = %s: rc %d", bnd[i].k, bnd[i].v, rc);
  }
  free(c);

  static const char *const t[] = {"true", "TRUE", "yes", "on", "1", "On"};
  static const char *const f[] = {"false", "no", "off", "0", "NO"};
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    assert_int_equal(sftd_parse_bool(t[i], &b, NULL), 0);
    assert_int_equal(b, 1);
  }
  for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
    assert_int_equal(sftd_parse_bool(f[i], &b, NULL), 0);
    assert_int_equal(b, 0);
  }
  b = 5;
  static const char *const bb[] = {"", "2", "y", "tru", "true ", "enable"};
  for (size_t i = 0; i < sizeof(bb) / sizeof(bb[0]); i++)
    assert_int_equal(sftd_parse_bool(bb[i], &b, NULL), SFT_ERR_INVAL);
  assert_int_equal(b, 5);
}

static void test_parse_hostport(void **state) {
  (void)state;
  struct sftd_hostport hp;
  char text[300];
  static const struct {
    const char *in, *host;
    unsigned port;
    int v6;
  } good[] = {
      {"0.0.0.0:5000", "0.0.0.0", 5000, 0},
      {"[::]:0", "::", 0, 1},
      {"[::1]:65535", "::1", 65535, 1},
      {"[2001:db8::1]:443", "2001:db8::1", 443, 1},
      {"[::ffff:1.2.3.4]:1", "::ffff:1.2.3.4", 1, 1},
      {"localhost:8080", "localhost", 8080, 0},
      {"a-b.example.com:1", "a-b.example.com", 1, 0},
      {"x1:00080", "x1", 80, 0},
  };
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    const char *why = NULL;
    if (sftd_parse_hostport(good[i].in, &hp, &why) != 0)
      fail_msg("%s: %s", good[i].in, why);
    assert_string_equal(hp.host, good[i].host);
    assert_int_equal(hp.port, good[i].port);
    assert_int_equal(hp.ipv6, good[i].v6);
    struct sftd_hostport hp2;
    assert_true(sftd_format_hostport(&hp, text, sizeof(text)) > 0);
    assert_int_equal(sftd_parse_hostport(text, &hp2, NULL), 0);
    assert_string_equal(hp2.host, hp.host);
    assert_int_equal(hp2.port, hp.port);
  }
  assert_int_equal(sftd_format_hostport(&hp, text, 3), SFT_ERR_NOSPACE);
  static const char *const bad[] = {
      "",
      ":80",
      "host",
      "host:",
      "host:65536",
      "host:-1",
      "host:8o",
      "host:123456",
      "::1:80",
      "[::1]",
      "[::1]80",
      "[::1:80",
      "[fe80::1%eth0]:1",
      "[1.2.3.4]:1",
      "1.2.3.256:1",
      "1.2.3:1",
      "-a:1",
      "a-:1",
      "a..b:1",
      "a_b:1",
      "a b:1",
      "a.:1",
      "[]:1",
      "host:99999999999999999999",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (sftd_parse_hostport(bad[i], &hp, NULL) != SFT_ERR_INVAL)
      fail_msg("address \"%s\" accepted", bad[i]);
  /* a 63-byte label passes, 64 not; 253-byte names pass, 254 not */
  char name[300];
  memset(name, 'a', 63);
  strcpy(name + 63, ":1");
  assert_int_equal(sftd_parse_hostport(name, &hp, NULL), 0);
  memset(name, 'a', 64);
  strcpy(name + 64, ":1");
  assert_int_equal(sftd_parse_hostport(name, &hp, NULL), SFT_ERR_INVAL);
  size_t n = 0;
  while (n + 2 <= 253) { /* "a." repeated, ending in "a" */
    name[n++] = 'a';
    name[n++] = '.';
  }
  name[n++] = 'a'; /* 253 */
  strcpy(name + n, ":1");
  assert_int_equal(sftd_parse_hostport(name, &hp, NULL), 0);
  assert_int_equal(strlen(hp.host), 253);
  memmove(name + 1, name, strlen(name) + 1);
  name[0] = 'b'; /* 254 */
  assert_int_equal(sftd_parse_hostport(name, &hp, NULL), SFT_ERR_INVAL);
}

static void test_parse_uint_origins(void **state) {
  (void)state;
  uint64_t v;
  assert_int_equal(sftd_parse_uint("0", 0, &v, NULL), 0);
  assert_int_equal(sftd_parse_uint("255", 255, &v, NULL), 0);
  assert_int_equal(sftd_parse_uint("256", 255, &v, NULL), SFT_ERR_RANGE);
  assert_int_equal(
      sftd_parse_uint("18446744073709551615", UINT64_MAX, &v, NULL), 0);
  assert_int_equal(
      sftd_parse_uint("18446744073709551616", UINT64_MAX, &v, NULL),
      SFT_ERR_RANGE);

  struct sftd_config *c = cfg_new();
  struct sftd_config_err err;
  static const char *const good[] = {"none",
                                     "*",
                                     "http://a",
                                     "https://a.b:1",
                                     "http://[::1]",
                                     "http://[::1]:80",
                                     "http://1.2.3.4:5,https://x",
                                     "NONE"};
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    if (sftd_config_set(c, "cors_origins", good[i], NULL, &err))
      fail_msg("%s", err.msg);
  static const char *const bad[] = {"http://",
                                    "http://a/",
                                    "http://a:",
                                    "https://a b",
                                    "a,,b",
                                    "http://a,",
                                    "ws://a",
                                    "http://a:1:2",
                                    "**",
                                    ",",
                                    "*,*,*,*,*,*,*,*,*,*,*,*,*,*,*,*,*"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (sftd_config_set(c, "cors_origins", bad[i], NULL, &err) != SFT_ERR_INVAL)
      fail_msg("origins \"%s\" accepted", bad[i]);
  assert_int_equal(sftd_config_set(c, "cors_origins",
                                   "*,*,*,*,*,*,*,*,*,*,*,*,*,*,*,*", NULL,
                                   &err),
                   0);
  free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),
      cmocka_unit_test(test_example_file),
      cmocka_unit_test(test_full_file),
      cmocka_unit_test(test_file_errors),
      cmocka_unit_test(test_bounds),
      cmocka_unit_test(test_env_and_flags),
      cmocka_unit_test(test_cross_field),
      cmocka_unit_test(test_print_roundtrip),
      cmocka_unit_test(test_parse_size),
      cmocka_unit_test(test_parse_bps),
      cmocka_unit_test(test_parse_duration_bool),
      cmocka_unit_test(test_parse_hostport),
      cmocka_unit_test(test_parse_uint_origins),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
