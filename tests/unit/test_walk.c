/* Tests of src/daemon/walk: what `sft send PATH...` turns into. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/walk.h"
#include "sft/err.h"

static char root[64];

static void mkfile(const char *rel, size_t size, mode_t mode) {
  char p[256];
  FILE *f;
  snprintf(p, sizeof(p), "%s/%s", root, rel);
  f = fopen(p, "wb");
  assert_non_null(f);
  for (size_t i = 0; i < size; i++)
    fputc((int)(i & 0xff), f);
  fclose(f);
  assert_int_equal(chmod(p, mode), 0);
}

static int setup(void **state) {
  char p[256];
  (void)state;
  snprintf(root, sizeof(root), "/tmp/sft-walk-XXXXXX");
  assert_non_null(mkdtemp(root));
  snprintf(p, sizeof(p), "%s/tree", root);
  mkdir(p, 0755);
  snprintf(p, sizeof(p), "%s/tree/sub", root);
  mkdir(p, 0750);
  snprintf(p, sizeof(p), "%s/tree/empty", root);
  mkdir(p, 0700);
  mkfile("tree/b.txt", 10, 0644);
  mkfile("tree/a.bin", 3000, 0600);
  mkfile("tree/sub/c", 0, 0755);
  mkfile("single", 77, 0640);
  snprintf(p, sizeof(p), "%s/tree/link", root);
  assert_int_equal(symlink("/etc/passwd", p), 0);
  return 0;
}

static int teardown(void **state) {
  char cmd[128];
  (void)state;
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
  return system(cmd);
}

static void test_directory_recursive_sorted(void **state) {
  struct walk_list l = {0};
  char p[256];
  const char *err = NULL;
  static const char *want[] = {"tree",       "tree/a.bin", "tree/b.txt",
                               "tree/empty", "tree/sub",   "tree/sub/c"};
  (void)state;
  snprintf(p, sizeof(p), "%s/tree/", root);
  assert_int_equal(walk_add(&l, p, NULL, NULL, &err), 0);
  assert_int_equal(l.n, 6);
  for (size_t i = 0; i < 6; i++)
    assert_string_equal(l.v[i].name, want[i]);
  assert_int_equal(l.skipped, 1); /* the symlink, never followed */
  assert_int_equal(l.v[0].kind, WALK_DIR);
  assert_int_equal(l.v[1].kind, WALK_FILE);
  assert_int_equal(l.v[1].size, 3000);
  assert_int_equal(l.v[1].mode, 0600);
  assert_int_equal(l.v[3].mode, 0700);
  assert_int_equal(l.v[4].mode, 0750);
  assert_int_equal(l.v[5].size, 0);
  assert_int_equal(l.total_bytes, 3010);
  walk_free(&l);
}

static int warned;
static void on_warn(const char *path, const char *reason, void *ud) {
  (void)ud;
  assert_non_null(strstr(path, "link"));
  assert_non_null(strstr(reason, "symbolic link"));
  warned++;
}

static void test_file_and_warnings(void **state) {
  struct walk_list l = {0};
  char p[256];
  (void)state;
  snprintf(p, sizeof(p), "%s/single", root);
  assert_int_equal(walk_add(&l, p, on_warn, NULL, NULL), 0);
  snprintf(p, sizeof(p), "%s/tree", root);
  assert_int_equal(walk_add(&l, p, on_warn, NULL, NULL), 0);
  assert_int_equal(warned, 1);
  assert_string_equal(l.v[0].name, "single");
  assert_int_equal(l.v[0].size, 77);
  assert_int_equal(l.n, 7);
  walk_free(&l);
  assert_int_equal(l.n, 0);
}

static void test_errors_name_the_path(void **state) {
  struct walk_list l = {0};
  char p[256];
  const char *err = NULL;
  (void)state;
  snprintf(p, sizeof(p), "%s/missing", root);
  assert_int_equal(walk_add(&l, p, NULL, NULL, &err), SFT_ERR_NOT_FOUND);
  assert_string_equal(err, p);
  assert_int_equal(walk_add(&l, "/dev/null", NULL, NULL, &err),
                   SFT_ERR_UNSUPPORTED);
  assert_int_equal(l.n, 0);
  walk_free(&l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_directory_recursive_sorted),
      cmocka_unit_test(test_file_and_warnings),
      cmocka_unit_test(test_errors_name_the_path),
  };
  return cmocka_run_group_tests_name("walk", tests, setup, teardown);
}
