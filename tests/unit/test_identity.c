/* Tests of src/daemon/identity: fingerprint text (round trip, fixed
 * vectors cross-checked with an independent Python implementation, typo
 * detection), the data directory, known_peers and trusted_peers. Files go
 * to a mkdtemp directory under /tmp. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/identity.h"
#include "sft/err.h"

struct fx {
  char dir[64];
  char known[128];
  char trusted[128];
};

static int setup(void **state) {
  struct fx *fx = calloc(1, sizeof(*fx));
  assert_non_null(fx);
  strcpy(fx->dir, "/tmp/sft-identity-XXXXXX");
  assert_non_null(mkdtemp(fx->dir));
  snprintf(fx->known, sizeof(fx->known), "%s/known_peers", fx->dir);
  snprintf(fx->trusted, sizeof(fx->trusted), "%s/trusted_peers", fx->dir);
  *state = fx;
  return 0;
}

static int rm_cb(const char *path, const struct stat *sb, int flag,
                 struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  chmod(path, 0700);
  return remove(path);
}

static int teardown(void **state) {
  struct fx *fx = *state;
  nftw(fx->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  free(fx);
  return 0;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void random_fp(uint8_t fp[SFTD_FP_LEN]) {
  for (size_t i = 0; i < SFTD_FP_LEN; i++)
    fp[i] = (uint8_t)rnd();
}

static void put_text(const char *path, const char *text, mode_t mode) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
  assert_int_equal(chmod(path, mode), 0);
}

static size_t slurp(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  size_t n;
  assert_non_null(f);
  n = fread(buf, 1, cap - 1, f);
  buf[n] = '\0';
  fclose(f);
  return n;
}

/* ---- fingerprint text ---------------------------------------------------- */

static void test_fp_vectors(void **state) {
  static const char *const want[] = {
      "SFT1-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAAAAA-AAAPOPW",
      "SFT1-AAAQEAY-EAUDAOC-AJBIFQY-DIOB4IB-CEQTCQK-RMFYYDE-NBWHA5D-YPQDBRQ",
      "SFT1-7777777-7777777-7777777-7777777-7777777-7777777-7777777-77QZ5Z7",
  };
  uint8_t fp[3][SFTD_FP_LEN], back[SFTD_FP_LEN];
  char text[SFTD_FP_TEXT_SIZE];
  (void)state;
  memset(fp[0], 0, SFTD_FP_LEN);
  for (int i = 0; i < SFTD_FP_LEN; i++)
    fp[1][i] = (uint8_t)i;
  memset(fp[2], 0xff, SFTD_FP_LEN);
  for (int k = 0; k < 3; k++) {
    sftd_fp_format(fp[k], text);
    assert_string_equal(text, want[k]);
    assert_int_equal(sftd_fp_parse(want[k], strlen(want[k]), back), 0);
    assert_memory_equal(back, fp[k], SFTD_FP_LEN);
  }
}

static void test_fp_round_trip(void **state) {
  (void)state;
  for (int k = 0; k < 2000; k++) {
    uint8_t fp[SFTD_FP_LEN], back[SFTD_FP_LEN];
    char text[SFTD_FP_TEXT_SIZE];
    random_fp(fp);
    sftd_fp_format(fp, text);
    assert_int_equal(strlen(text), SFTD_FP_TEXT_LEN);
    assert_memory_equal(text, "SFT1-", 5);
    for (int g = 1; g < 8; g++)
      assert_int_equal(text[4 + 8 * g], '-');
    assert_int_equal(sftd_fp_parse(text, SFTD_FP_TEXT_LEN, back), 0);
    assert_memory_equal(back, fp, SFTD_FP_LEN);
  }
}

/* Every single-character change (any byte value at any position), every
 * swap of two different neighbours, every insertion and deletion of one
 * character is rejected; a wrong character of the right alphabet in the
 * body is reported as a checksum error. */
static void test_fp_typos_rejected(void **state) {
  (void)state;
  for (int k = 0; k < 6; k++) {
    uint8_t fp[SFTD_FP_LEN], out[SFTD_FP_LEN];
    char text[SFTD_FP_TEXT_SIZE], t[SFTD_FP_TEXT_SIZE + 1];
    random_fp(fp);
    if (k == 0)
      memset(fp, 0, sizeof(fp));
    sftd_fp_format(fp, text);
    for (size_t pos = 0; pos < SFTD_FP_TEXT_LEN; pos++) {
      for (int b = 0; b < 256; b++) {
        int rc;
        if ((char)b == text[pos])
          continue;
        memcpy(t, text, SFTD_FP_TEXT_SIZE);
        t[pos] = (char)b;
        rc = sftd_fp_parse(t, SFTD_FP_TEXT_LEN, out);
        if (rc == 0)
          fail_msg("change at %zu to 0x%02x accepted", pos, b);
        if (pos >= 5 && text[pos] != '-' &&
            ((b >= 'A' && b <= 'Z') || (b >= '2' && b <= '7')))
          assert_int_equal(rc, SFT_ERR_DIGEST);
      }
      if (pos + 1 < SFTD_FP_TEXT_LEN && text[pos] != text[pos + 1]) {
        memcpy(t, text, SFTD_FP_TEXT_SIZE);
        t[pos] = text[pos + 1];
        t[pos + 1] = text[pos];
        assert_true(sftd_fp_parse(t, SFTD_FP_TEXT_LEN, out) != 0);
      }
      /* deletion */
      memcpy(t, text, pos);
      memcpy(t + pos, text + pos + 1, SFTD_FP_TEXT_LEN - pos);
      assert_int_equal(sftd_fp_parse(t, SFTD_FP_TEXT_LEN - 1, out),
                       SFT_ERR_MALFORMED);
    }
    /* insertion, surrounding blanks, lower case */
    memcpy(t, text, SFTD_FP_TEXT_SIZE);
    t[SFTD_FP_TEXT_LEN] = 'A';
    assert_int_equal(sftd_fp_parse(t, SFTD_FP_TEXT_LEN + 1, out),
                     SFT_ERR_MALFORMED);
    t[0] = ' ';
    memcpy(t + 1, text, SFTD_FP_TEXT_LEN);
    assert_int_equal(sftd_fp_parse(t, SFTD_FP_TEXT_LEN + 1, out),
                     SFT_ERR_MALFORMED);
    for (size_t i = 0; i < SFTD_FP_TEXT_LEN; i++)
      t[i] =
          (text[i] >= 'A' && text[i] <= 'Z') ? (char)(text[i] + 32) : text[i];
    assert_int_equal(sftd_fp_parse(t, SFTD_FP_TEXT_LEN, out),
                     SFT_ERR_MALFORMED);
  }
  assert_int_equal(sftd_fp_parse(NULL, 68, NULL), SFT_ERR_MALFORMED);
  assert_int_equal(sftd_fp_parse("", 0, NULL), SFT_ERR_MALFORMED);
}

/* ---- data directory --------------------------------------------------------
 */

static void test_datadir_resolve(void **state) {
  char out[256];
  (void)state;
  setenv("SFT_DATA_DIR", "/srv/sft", 1);
  setenv("XDG_DATA_HOME", "/home/u/.data", 1);
  setenv("HOME", "/home/u", 1);
  assert_int_equal(sftd_datadir_resolve("/explicit", out, sizeof(out)), 0);
  assert_string_equal(out, "/explicit");
  assert_int_equal(sftd_datadir_resolve("", out, sizeof(out)), 0);
  assert_string_equal(out, "/srv/sft");
  assert_int_equal(sftd_datadir_resolve(NULL, out, sizeof(out)), 0);
  assert_string_equal(out, "/srv/sft");
  unsetenv("SFT_DATA_DIR");
  assert_int_equal(sftd_datadir_resolve(NULL, out, sizeof(out)), 0);
  assert_string_equal(out, "/home/u/.data/sft");
  setenv("XDG_DATA_HOME", "relative", 1); /* ignored, as the spec says */
  assert_int_equal(sftd_datadir_resolve(NULL, out, sizeof(out)), 0);
  assert_string_equal(out, "/home/u/.local/share/sft");
  unsetenv("XDG_DATA_HOME");
  assert_int_equal(sftd_datadir_resolve(NULL, out, sizeof(out)), 0);
  assert_string_equal(out, "/home/u/.local/share/sft");
  assert_int_equal(sftd_datadir_resolve(NULL, out, 10), SFT_ERR_TOO_LARGE);
  assert_string_equal(out, "");
  unsetenv("HOME");
  assert_int_equal(sftd_datadir_resolve(NULL, out, sizeof(out)),
                   SFT_ERR_NOT_FOUND);
  assert_int_equal(sftd_datadir_resolve("./rel", out, sizeof(out)), 0);
  assert_string_equal(out, "./rel");
  assert_int_equal(sftd_datadir_file("/d", "known_peers", out, sizeof(out)), 0);
  assert_string_equal(out, "/d/known_peers");
  assert_int_equal(sftd_datadir_file("/d", "known_peers", out, 8),
                   SFT_ERR_TOO_LARGE);
}

static void test_datadir_ensure(void **state) {
  struct fx *fx = *state;
  struct sftd_id_err err;
  char p[192], q[192];
  struct stat st;
  mode_t old;
  snprintf(p, sizeof(p), "%s/a/b/sft", fx->dir);
  assert_int_equal(sftd_datadir_ensure(p, &err), 0);
  assert_int_equal(stat(p, &st), 0);
  assert_true(S_ISDIR(st.st_mode));
  assert_int_equal(st.st_mode & 07777, 0700);
  snprintf(q, sizeof(q), "%s/a", fx->dir);
  assert_int_equal(stat(q, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0700); /* intermediate levels too */
  assert_int_equal(sftd_datadir_ensure(p, &err), 0); /* idempotent */
  /* an existing group-readable directory is fine; writable is refused */
  assert_int_equal(chmod(p, 0755), 0);
  assert_int_equal(sftd_datadir_ensure(p, &err), 0);
  assert_int_equal(chmod(p, 0775), 0);
  assert_int_equal(sftd_datadir_ensure(p, &err), SFT_ERR_PATH);
  assert_non_null(strstr(err.msg, "group- or world-writable"));
  assert_non_null(strstr(err.msg, "chmod go-w"));
  assert_int_equal(chmod(p, 0702), 0);
  assert_int_equal(sftd_datadir_ensure(p, &err), SFT_ERR_PATH);
  assert_int_equal(stat(p, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0702); /* refused, not "fixed" */
  /* a file where the directory should be */
  snprintf(q, sizeof(q), "%s/file", fx->dir);
  put_text(q, "x", 0600);
  assert_int_equal(sftd_datadir_ensure(q, &err), SFT_ERR_PATH);
  assert_non_null(strstr(err.msg, "not a directory"));
  snprintf(q, sizeof(q), "%s/file/sub", fx->dir);
  assert_true(sftd_datadir_ensure(q, &err) < 0);
  /* a restrictive umask still yields a usable 0700 directory */
  old = umask(0277);
  snprintf(q, sizeof(q), "%s/umasked", fx->dir);
  assert_int_equal(sftd_datadir_ensure(q, &err), 0);
  umask(old);
  assert_int_equal(stat(q, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0700);
  assert_int_equal(sftd_datadir_ensure("", &err), SFT_ERR_INVAL);
}

/* ---- known_peers -----------------------------------------------------------
 */

static void test_hostport(void **state) {
  static const char *const good[] = {
      "example.com:5000",  "10.0.0.1:1", "host:65535",     "[::1]:5000",
      "[fe80::1%eth0]:22", "a_b-c.d:80", "EXAMPLE.com:443"};
  static const char *const bad[] = {
      "example.com", "example.com:", ":5000",   "host:0",  "host:65536",
      "host:05000",  "host:50a",     "ho st:1", "[::1]",   "::1:5000",
      "[::1:5000",   "[xyz]:1",      "-host:1", ".host:1", "host:123456",
      "[]:1",        "h\xc3\xa9:1",  "host:1 ", "",        "[%eth0]:1"};
  (void)state;
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
    if (sftd_hostport_check(good[i]) != 0)
      fail_msg("rejected %s", good[i]);
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    if (sftd_hostport_check(bad[i]) != SFT_ERR_INVAL)
      fail_msg("accepted %s", bad[i]);
  assert_int_equal(sftd_hostport_check(NULL), SFT_ERR_INVAL);
}

static void test_known_peers(void **state) {
  struct fx *fx = *state;
  struct sftd_id_err err;
  uint8_t a[SFTD_FP_LEN], b[SFTD_FP_LEN], c[SFTD_FP_LEN];
  char buf[4096], ta[SFTD_FP_TEXT_SIZE], tb[SFTD_FP_TEXT_SIZE];
  struct stat st;
  random_fp(a);
  random_fp(b);
  random_fp(c);
  sftd_fp_format(a, ta);
  sftd_fp_format(b, tb);
  /* first use: no file */
  assert_int_equal(sftd_known_peers_check(fx->known, "h1:5000", a, &err),
                   SFT_ERR_NOT_FOUND);
  assert_int_equal(sftd_known_peers_set(fx->known, "H1:5000", a, &err), 0);
  assert_int_equal(stat(fx->known, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(sftd_known_peers_check(fx->known, "h1:5000", a, &err), 0);
  assert_int_equal(sftd_known_peers_check(fx->known, "H1:5000", a, &err), 0);
  /* same host, other port: unknown */
  assert_int_equal(sftd_known_peers_check(fx->known, "h1:5001", a, &err),
                   SFT_ERR_NOT_FOUND);
  /* the key changed: a distinct code */
  assert_int_equal(sftd_known_peers_check(fx->known, "h1:5000", b, &err),
                   SFT_ERR_AUTH);
  assert_non_null(strstr(err.msg, "h1:5000"));
  assert_int_equal(sftd_known_peers_set(fx->known, "[::1]:7000", b, &err), 0);
  assert_int_equal(sftd_known_peers_check(fx->known, "[::1]:7000", b, &err), 0);
  slurp(fx->known, buf, sizeof(buf));
  {
    char want[512];
    snprintf(want, sizeof(want), "h1:5000 %s\n[::1]:7000 %s\n", ta, tb);
    assert_string_equal(buf, want);
  }
  /* accepting a new key replaces the entry; comments survive */
  put_text(fx->known, "", 0600);
  {
    char content[512];
    snprintf(content, sizeof(content),
             "# my peers\n\nh1:5000 %s\n  # indented comment\nh2:1 %s\n"
             "h1:5000 %s", /* duplicate host, no final newline */
             ta, tb, tb);
    put_text(fx->known, content, 0600);
  }
  assert_int_equal(sftd_known_peers_check(fx->known, "h1:5000", b, &err), 0);
  assert_int_equal(sftd_known_peers_check(fx->known, "h1:5000", c, &err),
                   SFT_ERR_AUTH);
  assert_int_equal(sftd_known_peers_set(fx->known, "h1:5000", c, &err), 0);
  assert_int_equal(sftd_known_peers_check(fx->known, "h1:5000", a, &err),
                   SFT_ERR_AUTH);
  assert_int_equal(sftd_known_peers_check(fx->known, "h1:5000", c, &err), 0);
  assert_int_equal(sftd_known_peers_check(fx->known, "h2:1", b, &err), 0);
  slurp(fx->known, buf, sizeof(buf));
  assert_non_null(strstr(buf, "# my peers\n\n"));
  assert_non_null(strstr(buf, "  # indented comment\n"));
  assert_null(strstr(buf, ta)); /* both old h1 lines gone */
  /* remove */
  assert_int_equal(sftd_known_peers_remove(fx->known, "h1:5000", &err), 0);
  assert_int_equal(sftd_known_peers_check(fx->known, "h1:5000", c, &err),
                   SFT_ERR_NOT_FOUND);
  assert_int_equal(sftd_known_peers_remove(fx->known, "h1:5000", &err),
                   SFT_ERR_NOT_FOUND);
  assert_int_equal(sftd_known_peers_check(fx->known, "h2:1", b, &err), 0);
  /* bad arguments */
  assert_int_equal(sftd_known_peers_set(fx->known, "nohost", a, &err),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_known_peers_check(fx->known, "a b:1", a, &err),
                   SFT_ERR_INVAL);
  assert_int_equal(stat(fx->known, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
}

/* ---- trusted_peers ---------------------------------------------------------
 */

static void test_trusted_peers(void **state) {
  struct fx *fx = *state;
  struct sftd_id_err err;
  uint8_t a[SFTD_FP_LEN], b[SFTD_FP_LEN], c[SFTD_FP_LEN];
  char label[64], before[4096], after[4096], big[300];
  struct stat st;
  random_fp(a);
  random_fp(b);
  random_fp(c);
  assert_int_equal(
      sftd_trusted_peers_lookup(fx->trusted, a, label, sizeof(label), &err),
      SFT_ERR_NOT_FOUND);
  assert_int_equal(
      sftd_trusted_peers_add(fx->trusted, a, "laptop \xc3\xa9t\xc3\xa9", &err),
      0);
  assert_int_equal(stat(fx->trusted, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
  assert_int_equal(sftd_trusted_peers_add(fx->trusted, b, NULL, &err), 0);
  assert_int_equal(
      sftd_trusted_peers_lookup(fx->trusted, a, label, sizeof(label), &err), 0);
  assert_string_equal(label, "laptop \xc3\xa9t\xc3\xa9");
  assert_int_equal(
      sftd_trusted_peers_lookup(fx->trusted, b, label, sizeof(label), &err), 0);
  assert_string_equal(label, "");
  assert_int_equal(sftd_trusted_peers_lookup(fx->trusted, c, NULL, 0, &err),
                   SFT_ERR_NOT_FOUND);
  /* a cut label never splits a character */
  assert_int_equal(sftd_trusted_peers_lookup(fx->trusted, a, label, 10, &err),
                   0);
  assert_string_equal(label, "laptop \xc3\xa9");
  /* duplicates: refused, file unchanged */
  slurp(fx->trusted, before, sizeof(before));
  assert_int_equal(sftd_trusted_peers_add(fx->trusted, a, "again", &err),
                   SFT_ERR_EXISTS);
  slurp(fx->trusted, after, sizeof(after));
  assert_string_equal(before, after);
  /* bad labels */
  assert_int_equal(sftd_trusted_peers_add(fx->trusted, c, "evil\x1b[2J", &err),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_trusted_peers_add(fx->trusted, c, "a\nb", &err),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_trusted_peers_add(fx->trusted, c, " pad", &err),
                   SFT_ERR_INVAL);
  assert_int_equal(
      sftd_trusted_peers_add(fx->trusted, c, "rlo\xe2\x80\xae", &err),
      SFT_ERR_INVAL);
  memset(big, 'x', 201);
  big[201] = '\0';
  assert_int_equal(sftd_trusted_peers_add(fx->trusted, c, big, &err),
                   SFT_ERR_INVAL);
  big[200] = '\0';
  assert_int_equal(sftd_trusted_peers_add(fx->trusted, c, big, &err), 0);
  /* remove */
  assert_int_equal(sftd_trusted_peers_remove(fx->trusted, a, &err), 0);
  assert_int_equal(sftd_trusted_peers_lookup(fx->trusted, a, NULL, 0, &err),
                   SFT_ERR_NOT_FOUND);
  assert_int_equal(sftd_trusted_peers_remove(fx->trusted, a, &err),
                   SFT_ERR_NOT_FOUND);
  assert_int_equal(sftd_trusted_peers_lookup(fx->trusted, b, NULL, 0, &err), 0);
  assert_int_equal(stat(fx->trusted, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);
}

/* ---- malformed and unsafe files ------------------------------------------ */

static void expect_bad(const char *path, const char *content, int want_rc,
                       unsigned want_line, const char *want_text) {
  struct sftd_id_err err;
  uint8_t fp[SFTD_FP_LEN] = {0};
  char before[8192], after[8192];
  int rc;
  put_text(path, content, 0600);
  if (strstr(path, "known"))
    rc = sftd_known_peers_check(path, "h:1", fp, &err);
  else
    rc = sftd_trusted_peers_lookup(path, fp, NULL, 0, &err);
  if (rc != want_rc || err.line != want_line)
    fail_msg("rc %d line %u (%s), want rc %d line %u", rc, err.line, err.msg,
             want_rc, want_line);
  if (want_text && !strstr(err.msg, want_text))
    fail_msg("message \"%s\" lacks \"%s\"", err.msg, want_text);
  /* writers refuse to touch a bad file */
  slurp(path, before, sizeof(before));
  if (strstr(path, "known"))
    rc = sftd_known_peers_set(path, "h:1", fp, &err);
  else
    rc = sftd_trusted_peers_add(path, fp, NULL, &err);
  assert_int_equal(rc, want_rc);
  slurp(path, after, sizeof(after));
  assert_string_equal(before, after);
}

static void test_malformed_files(void **state) {
  struct fx *fx = *state;
  uint8_t fp[SFTD_FP_LEN];
  char t[SFTD_FP_TEXT_SIZE], bad_sum[SFTD_FP_TEXT_SIZE], c[2048];
  random_fp(fp);
  sftd_fp_format(fp, t);
  memcpy(bad_sum, t, sizeof(t));
  bad_sum[10] = bad_sum[10] == 'A' ? 'B' : 'A';

  snprintf(c, sizeof(c), "# c\n\nh:2 %s\nh:3 SFT1-nope\n", t);
  expect_bad(fx->known, c, SFT_ERR_MALFORMED, 4, ":4: expected a finger");
  snprintf(c, sizeof(c), "h:2 %s\nh:3 %s\n", t, bad_sum);
  expect_bad(fx->known, c, SFT_ERR_MALFORMED, 2, "checksum");
  snprintf(c, sizeof(c), "h:2 %s extra\n", t);
  expect_bad(fx->known, c, SFT_ERR_MALFORMED, 1, "after the fingerprint");
  snprintf(c, sizeof(c), "%s h:2\n", t);
  expect_bad(fx->known, c, SFT_ERR_MALFORMED, 1, "HOST:PORT");
  snprintf(c, sizeof(c), "h:2\n");
  expect_bad(fx->known, c, SFT_ERR_MALFORMED, 1, NULL);
  snprintf(c, sizeof(c), "\n\nh:2 %s\x1b[2J\n", t);
  expect_bad(fx->known, c, SFT_ERR_MALFORMED, 3, "control");
  snprintf(c, sizeof(c), "# \xff\xfe\n");
  expect_bad(fx->known, c, SFT_ERR_MALFORMED, 1, "UTF-8");
  snprintf(c, sizeof(c), "%s\n%s label\nnot a fingerprint\n", t, bad_sum);
  expect_bad(fx->trusted, c, SFT_ERR_MALFORMED, 2, "checksum");
  snprintf(c, sizeof(c), "%s ok\nnot a fingerprint\n", t);
  expect_bad(fx->trusted, c, SFT_ERR_MALFORMED, 2, ":2:");
  /* line too long */
  memset(c, '#', 600);
  c[600] = '\n';
  c[601] = '\0';
  expect_bad(fx->trusted, c, SFT_ERR_MALFORMED, 1, "longer than 512");
  /* too many lines */
  {
    char *many = malloc(SFTD_TRUST_MAX_LINES + 2);
    memset(many, '\n', SFTD_TRUST_MAX_LINES + 1);
    many[SFTD_TRUST_MAX_LINES + 1] = '\0';
    expect_bad(fx->trusted, many, SFT_ERR_TOO_LARGE, SFTD_TRUST_MAX_LINES + 1,
               "more than");
    many[SFTD_TRUST_MAX_LINES] = '\0'; /* exactly the limit is fine */
    put_text(fx->trusted, many, 0600);
    assert_int_equal(sftd_trusted_peers_lookup(fx->trusted, fp, NULL, 0, NULL),
                     SFT_ERR_NOT_FOUND);
    free(many);
  }
  /* too large */
  {
    char *huge = malloc(SFTD_TRUST_MAX_BYTES + 2);
    memset(huge, '#', SFTD_TRUST_MAX_BYTES + 1);
    huge[SFTD_TRUST_MAX_BYTES + 1] = '\0';
    expect_bad(fx->trusted, huge, SFT_ERR_TOO_LARGE, 0, "larger than");
    free(huge);
  }
  /* CRLF and tabs are tolerated */
  snprintf(c, sizeof(c), "# windows\r\n%s\tlabel\twith tab\r\n", t);
  put_text(fx->trusted, c, 0600);
  {
    char label[64];
    assert_int_equal(
        sftd_trusted_peers_lookup(fx->trusted, fp, label, sizeof(label), NULL),
        0);
    assert_string_equal(label, "label\twith tab");
  }
}

static void test_unsafe_files(void **state) {
  struct fx *fx = *state;
  struct sftd_id_err err;
  uint8_t fp[SFTD_FP_LEN] = {1};
  put_text(fx->trusted, "", 0622);
  assert_int_equal(sftd_trusted_peers_lookup(fx->trusted, fp, NULL, 0, &err),
                   SFT_ERR_PATH);
  assert_non_null(strstr(err.msg, "chmod 600"));
  assert_int_equal(sftd_trusted_peers_add(fx->trusted, fp, NULL, &err),
                   SFT_ERR_PATH);
  put_text(fx->trusted, "", 0644); /* readable by others is allowed */
  assert_int_equal(sftd_trusted_peers_add(fx->trusted, fp, NULL, &err), 0);
  /* the rewrite leaves it 0600 */
  {
    struct stat st;
    assert_int_equal(stat(fx->trusted, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
  }
  /* a directory in place of the file */
  assert_int_equal(mkdir(fx->known, 0700), 0);
  assert_int_equal(sftd_known_peers_check(fx->known, "h:1", fp, &err),
                   SFT_ERR_PATH);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fp_vectors),
      cmocka_unit_test(test_fp_round_trip),
      cmocka_unit_test(test_fp_typos_rejected),
      cmocka_unit_test(test_datadir_resolve),
      T(test_datadir_ensure),
      cmocka_unit_test(test_hostport),
      T(test_known_peers),
      T(test_trusted_peers),
      T(test_malformed_files),
      T(test_unsafe_files),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
