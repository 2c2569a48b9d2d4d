/* Tests of src/daemon/fsafe: confinement beneath the download directory
 * against planted symlinks, hard links, FIFOs and a racing attacker, the
 * part file life cycle, and the final rename. Every test runs twice: with
 * the real openat2(2) and with openat2 reporting ENOSYS (the per-component
 * fallback). Each test works in its own mkdtemp directory under /tmp:
 *   BASE/root      the download directory
 *   BASE/outside   a directory the peer must never reach, holding
 *                  "sentinel" (content checked after every attack). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/fsafe.h"
#include "sft/err.h"

#define SENTINEL "SENTINEL: must never change\n"

struct fx {
  char base[64];
  char root[96];
  char outside[96];
  int root_fd;
};

static atomic_int g_hook_calls;

static int enosys_hook(int dirfd, const char *path, int flags, mode_t mode,
                       uint64_t resolve) {
  (void)dirfd, (void)path, (void)flags, (void)mode, (void)resolve;
  atomic_fetch_add(&g_hook_calls, 1);
  errno = ENOSYS;
  return -1;
}

static int eperm_hook(int dirfd, const char *path, int flags, mode_t mode,
                      uint64_t resolve) {
  (void)dirfd, (void)path, (void)flags, (void)mode, (void)resolve;
  atomic_fetch_add(&g_hook_calls, 1);
  errno = EPERM;
  return -1;
}

/* The real system call, counted, to prove openat2 is what runs. */
#include <linux/openat2.h>
#include <sys/syscall.h>
static int counting_hook(int dirfd, const char *path, int flags, mode_t mode,
                         uint64_t resolve) {
  struct open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = (uint64_t)(unsigned)flags;
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = resolve;
  atomic_fetch_add(&g_hook_calls, 1);
  return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

static void put_file(const char *path, const char *content) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  assert_int_equal(fputs(content, f) >= 0, 1);
  assert_int_equal(fclose(f), 0);
}

static void read_file(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  size_t n;
  assert_non_null(f);
  n = fread(buf, 1, cap - 1, f);
  buf[n] = '\0';
  fclose(f);
}

static int setup(void **state) {
  struct fx *fx = calloc(1, sizeof(*fx));
  char p[160];
  assert_non_null(fx);
  strcpy(fx->base, "/tmp/sft-fsafe-XXXXXX");
  assert_non_null(mkdtemp(fx->base));
  snprintf(fx->root, sizeof(fx->root), "%s/root", fx->base);
  snprintf(fx->outside, sizeof(fx->outside), "%s/outside", fx->base);
  assert_int_equal(mkdir(fx->root, 0755), 0);
  assert_int_equal(mkdir(fx->outside, 0755), 0);
  snprintf(p, sizeof(p), "%s/sentinel", fx->outside);
  put_file(p, SENTINEL);
  assert_int_equal(sftd_fsafe_open_root(fx->root, &fx->root_fd), 0);
  *state = fx;
  return 0;
}

static int rm_cb(const char *path, const struct stat *sb, int flag,
                 struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static int teardown(void **state) {
  struct fx *fx = *state;
  close(fx->root_fd);
  nftw(fx->base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  free(fx);
  return 0;
}

/* The outside directory holds exactly the sentinel (plus |extra| if not
 * NULL), with its original content. */
static void assert_outside_untouched(const struct fx *fx, const char *extra) {
  char p[160], buf[128];
  DIR *d = opendir(fx->outside);
  struct dirent *e;
  int n = 0;
  assert_non_null(d);
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
      continue;
    if (strcmp(e->d_name, "sentinel") != 0 &&
        !(extra && strcmp(e->d_name, extra) == 0))
      fail_msg("unexpected entry outside root: %s", e->d_name);
    n++;
  }
  closedir(d);
  assert_true(n >= 1);
  snprintf(p, sizeof(p), "%s/sentinel", fx->outside);
  read_file(p, buf, sizeof(buf));
  assert_string_equal(buf, SENTINEL);
}

static void rpath(const struct fx *fx, const char *rel, char *out, size_t cap) {
  int n = snprintf(out, cap, "%s/%s", fx->root, rel);
  assert_true(n > 0 && (size_t)n < cap);
}

static void write_all(int fd, const char *s) {
  size_t n = strlen(s);
  assert_int_equal(pwrite(fd, s, n, 0), (ssize_t)n);
}

/* ---- tests --------------------------------------------------------------- */

static void test_nested_mkdirs(void **state) {
  struct fx *fx = *state;
  struct stat a, b;
  char p[256];
  int fd;
  mode_t old = umask(022);
  assert_int_equal(sftd_fsafe_mkdirs(fx->root_fd, "a/b/c/d", 0750, &fd), 0);
  rpath(fx, "a/b/c/d", p, sizeof(p));
  assert_int_equal(stat(p, &a), 0);
  assert_true(S_ISDIR(a.st_mode));
  assert_int_equal(a.st_mode & 0777, 0750);
  assert_int_equal(fstat(fd, &b), 0);
  assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
  close(fd);
  /* idempotent; setuid/sticky bits are masked off */
  assert_int_equal(sftd_fsafe_mkdirs(fx->root_fd, "a/b/c/d", 0750, NULL), 0);
  assert_int_equal(sftd_fsafe_mkdirs(fx->root_fd, "a/x", 07777, NULL), 0);
  rpath(fx, "a/x", p, sizeof(p));
  assert_int_equal(stat(p, &a), 0);
  assert_int_equal(a.st_mode & 07777, 0755);
  /* a file where a directory is wanted */
  rpath(fx, "a/file", p, sizeof(p));
  put_file(p, "x");
  assert_int_equal(sftd_fsafe_mkdirs(fx->root_fd, "a/file/sub", 0755, NULL),
                   SFT_ERR_PATH);
  umask(old);
}

static void test_bad_names_refused(void **state) {
  static const char *const bad[] = {"../x",       "/etc/x", "a/../../x",
                                    "a//b",       "",       ".",
                                    "x.sft-part", "a\\b",   "a/"};
  struct fx *fx = *state;
  int fd = 99;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    assert_int_equal(sftd_fsafe_mkdirs(fx->root_fd, bad[i], 0755, &fd),
                     SFT_ERR_PATH);
    assert_int_equal(fd, -1);
    assert_int_equal(
        sftd_fsafe_open_part(fx->root_fd, bad[i], SFTD_FSAFE_FRESH, 0755, &fd),
        SFT_ERR_PATH);
    assert_int_equal(fd, -1);
    assert_int_equal(sftd_fsafe_check_final(fx->root_fd, bad[i], false),
                     SFT_ERR_PATH);
    assert_int_equal(sftd_fsafe_remove_part(fx->root_fd, bad[i]), SFT_ERR_PATH);
    assert_int_equal(
        sftd_fsafe_finalize(fx->root_fd, bad[i], 0, 0644, NULL, false),
        SFT_ERR_PATH);
  }
  assert_int_equal(sftd_fsafe_mkdirs(-1, "a", 0755, NULL), SFT_ERR_INVAL);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, NULL, SFTD_FSAFE_FRESH, 0755, &fd),
      SFT_ERR_INVAL);
  assert_outside_untouched(fx, NULL);
}

/* A symlink at the part name or at the final name, pointing at the
 * sentinel outside root. */
static void test_symlink_leaf_outside(void **state) {
  struct fx *fx = *state;
  char p[256], target[160], buf[128];
  struct stat st;
  int fd;
  snprintf(target, sizeof(target), "%s/sentinel", fx->outside);
  /* planted part file */
  rpath(fx, "x.sft-part", p, sizeof(p));
  assert_int_equal(symlink(target, p), 0);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "x", SFTD_FSAFE_FRESH, 0755, &fd),
      SFT_ERR_EXISTS);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "x", SFTD_FSAFE_RESUME, 0755, &fd),
      SFT_ERR_PATH);
  assert_int_equal(fd, -1);
  /* cancel removes the link itself, not its target */
  assert_int_equal(sftd_fsafe_remove_part(fx->root_fd, "x"), 0);
  assert_int_equal(lstat(p, &st), -1);
  assert_outside_untouched(fx, NULL);

  /* planted final name */
  rpath(fx, "y", p, sizeof(p));
  assert_int_equal(symlink(target, p), 0);
  assert_int_equal(sftd_fsafe_check_final(fx->root_fd, "y", false),
                   SFT_ERR_EXISTS);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "y", SFTD_FSAFE_FRESH, 0755, &fd), 0);
  write_all(fd, "peer data\n");
  assert_int_equal(sftd_fsafe_finalize(fx->root_fd, "y", fd, 0644, NULL, false),
                   SFT_ERR_EXISTS);
  assert_outside_untouched(fx, NULL);
  /* with overwrite the link itself is replaced; its target is not written */
  assert_int_equal(sftd_fsafe_check_final(fx->root_fd, "y", true), 0);
  assert_int_equal(sftd_fsafe_finalize(fx->root_fd, "y", fd, 0644, NULL, true),
                   0);
  close(fd);
  assert_int_equal(lstat(p, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  read_file(p, buf, sizeof(buf));
  assert_string_equal(buf, "peer data\n");
  assert_outside_untouched(fx, NULL);
}

/* A parent directory that is a symlink: to outside, to inside root, or
 * deeper in the path. */
static void test_symlink_parent(void **state) {
  struct fx *fx = *state;
  char p[256];
  int fd = 7;
  rpath(fx, "d", p, sizeof(p));
  assert_int_equal(symlink(fx->outside, p), 0);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "d/f", SFTD_FSAFE_FRESH, 0755, &fd),
      SFT_ERR_PATH);
  assert_int_equal(fd, -1);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "d/f", SFTD_FSAFE_RESUME, 0755, &fd),
      SFT_ERR_PATH);
  assert_int_equal(sftd_fsafe_open_part(fx->root_fd, "d/sentinel",
                                        SFTD_FSAFE_RESUME, 0755, &fd),
                   SFT_ERR_PATH);
  assert_int_equal(sftd_fsafe_mkdirs(fx->root_fd, "d/sub", 0755, NULL),
                   SFT_ERR_PATH);
  assert_int_equal(sftd_fsafe_check_final(fx->root_fd, "d/sentinel", true),
                   SFT_ERR_PATH);
  assert_int_equal(sftd_fsafe_remove_part(fx->root_fd, "d/f"), SFT_ERR_PATH);
  assert_outside_untouched(fx, NULL);

  /* relative symlink to a directory inside root: refused as well */
  rpath(fx, "real", p, sizeof(p));
  assert_int_equal(mkdir(p, 0755), 0);
  rpath(fx, "alias", p, sizeof(p));
  assert_int_equal(symlink("real", p), 0);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "alias/f", SFTD_FSAFE_FRESH, 0755, &fd),
      SFT_ERR_PATH);
  /* symlink in the middle of a deep path */
  assert_int_equal(sftd_fsafe_mkdirs(fx->root_fd, "a/b", 0755, NULL), 0);
  rpath(fx, "a/b/c", p, sizeof(p));
  assert_int_equal(symlink(fx->outside, p), 0);
  assert_int_equal(sftd_fsafe_mkdirs(fx->root_fd, "a/b/c/d/e", 0755, NULL),
                   SFT_ERR_PATH);
  assert_int_equal(sftd_fsafe_open_part(fx->root_fd, "a/b/c/d/f",
                                        SFTD_FSAFE_FRESH, 0755, &fd),
                   SFT_ERR_PATH);
  /* a dangling symlink where a directory would be created */
  rpath(fx, "dang", p, sizeof(p));
  assert_int_equal(symlink("../outside/newdir", p), 0);
  assert_int_equal(sftd_fsafe_mkdirs(fx->root_fd, "dang/x", 0755, NULL),
                   SFT_ERR_PATH);
  assert_outside_untouched(fx, NULL);
}

static void test_final_exists(void **state) {
  struct fx *fx = *state;
  char p[256], buf[64];
  int fd;
  assert_int_equal(sftd_fsafe_check_final(fx->root_fd, "new/dir/f", false), 0);
  assert_int_equal(sftd_fsafe_mkdirs(fx->root_fd, "sub", 0755, NULL), 0);
  rpath(fx, "sub/f", p, sizeof(p));
  put_file(p, "old content\n");
  assert_int_equal(sftd_fsafe_check_final(fx->root_fd, "sub/f", false),
                   SFT_ERR_EXISTS);
  assert_int_equal(sftd_fsafe_check_final(fx->root_fd, "sub/f", true), 0);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "sub/f", SFTD_FSAFE_FRESH, 0755, &fd),
      0);
  write_all(fd, "new content\n");
  assert_int_equal(
      sftd_fsafe_finalize(fx->root_fd, "sub/f", fd, 0644, NULL, false),
      SFT_ERR_EXISTS);
  read_file(p, buf, sizeof(buf));
  assert_string_equal(buf, "old content\n");
  rpath(fx, "sub/f.sft-part", p, sizeof(p));
  assert_int_equal(access(p, F_OK), 0); /* part file kept */
  assert_int_equal(
      sftd_fsafe_finalize(fx->root_fd, "sub/f", fd, 0644, NULL, true), 0);
  close(fd);
  assert_int_equal(access(p, F_OK), -1);
  rpath(fx, "sub/f", p, sizeof(p));
  read_file(p, buf, sizeof(buf));
  assert_string_equal(buf, "new content\n");
  /* a directory at the final name is never replaced */
  assert_int_equal(sftd_fsafe_mkdirs(fx->root_fd, "sub/dir", 0755, NULL), 0);
  assert_int_equal(sftd_fsafe_check_final(fx->root_fd, "sub/dir", false),
                   SFT_ERR_EXISTS);
  assert_int_equal(sftd_fsafe_check_final(fx->root_fd, "sub/dir", true),
                   SFT_ERR_PATH);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "sub/dir", SFTD_FSAFE_FRESH, 0755, &fd),
      0);
  assert_int_equal(
      sftd_fsafe_finalize(fx->root_fd, "sub/dir", fd, 0644, NULL, true),
      SFT_ERR_PATH);
  close(fd);
}

static void test_finalize_atomic_rename(void **state) {
  struct fx *fx = *state;
  char part[256], fin[256], buf[64];
  struct stat st, pst;
  struct timespec mt = {1234567890, 123456789};
  int fd;
  assert_int_equal(sftd_fsafe_open_part(fx->root_fd, "dir/f.bin",
                                        SFTD_FSAFE_FRESH, 0755, &fd),
                   0);
  rpath(fx, "dir/f.bin.sft-part", part, sizeof(part));
  rpath(fx, "dir/f.bin", fin, sizeof(fin));
  assert_int_equal(stat(part, &pst), 0);
  assert_int_equal(pst.st_mode & 07777, 0600); /* private while incomplete */
  assert_int_equal(access(fin, F_OK), -1);
  write_all(fd, "verified bytes\n");
  assert_int_equal(
      sftd_fsafe_finalize(fx->root_fd, "dir/f.bin", fd, 04751, &mt, false), 0);
  close(fd);
  assert_int_equal(lstat(part, &st), -1);
  assert_int_equal(errno, ENOENT);
  assert_int_equal(lstat(fin, &st), 0);
  assert_true(S_ISREG(st.st_mode));
  assert_true(st.st_ino == pst.st_ino);       /* the same inode, renamed */
  assert_int_equal(st.st_mode & 07777, 0751); /* setuid dropped */
  assert_int_equal(st.st_mtim.tv_sec, 1234567890);
  assert_int_equal(st.st_mtim.tv_nsec, 123456789);
  read_file(fin, buf, sizeof(buf));
  assert_string_equal(buf, "verified bytes\n");
  /* without an mtime, the mtime is left alone */
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "g", SFTD_FSAFE_FRESH, 0755, &fd), 0);
  assert_int_equal(sftd_fsafe_finalize(fx->root_fd, "g", fd, 0600, NULL, false),
                   0);
  close(fd);
  rpath(fx, "g", fin, sizeof(fin));
  assert_int_equal(stat(fin, &st), 0);
  assert_true(st.st_mtim.tv_sec > 1234567890);
}

static void test_fresh_resume_and_links(void **state) {
  struct fx *fx = *state;
  char p[256], target[160], buf[64];
  int fd, fd2;
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "r", SFTD_FSAFE_FRESH, 0755, &fd), 0);
  write_all(fd, "first half");
  close(fd);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "r", SFTD_FSAFE_FRESH, 0755, &fd),
      SFT_ERR_EXISTS);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "r", SFTD_FSAFE_RESUME, 0755, &fd2), 0);
  assert_int_equal(pread(fd2, buf, sizeof(buf), 0), 10); /* not truncated */
  close(fd2);
  /* resume of a vanished part file starts empty */
  assert_int_equal(sftd_fsafe_remove_part(fx->root_fd, "r"), 0);
  assert_int_equal(sftd_fsafe_remove_part(fx->root_fd, "r"), 0); /* again */
  assert_int_equal(sftd_fsafe_remove_part(fx->root_fd, "no/such/dir/r"), 0);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "r", SFTD_FSAFE_RESUME, 0755, &fd2), 0);
  assert_int_equal(pread(fd2, buf, sizeof(buf), 0), 0);
  close(fd2);
  /* a hard link to a file outside, planted as the part file */
  snprintf(target, sizeof(target), "%s/sentinel", fx->outside);
  rpath(fx, "h.sft-part", p, sizeof(p));
  assert_int_equal(link(target, p), 0);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "h", SFTD_FSAFE_RESUME, 0755, &fd),
      SFT_ERR_PATH);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "h", SFTD_FSAFE_FRESH, 0755, &fd),
      SFT_ERR_EXISTS);
  /* a FIFO planted as the part file */
  rpath(fx, "q.sft-part", p, sizeof(p));
  assert_int_equal(mkfifo(p, 0600), 0);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "q", SFTD_FSAFE_RESUME, 0755, &fd),
      SFT_ERR_PATH);
  /* a directory planted as the part file */
  rpath(fx, "e.sft-part", p, sizeof(p));
  assert_int_equal(mkdir(p, 0700), 0);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "e", SFTD_FSAFE_RESUME, 0755, &fd),
      SFT_ERR_PATH);
  assert_outside_untouched(fx, NULL);
}

/* The part name is swapped for another file between open and finalize:
 * finalize must not rename the stranger into place. */
static void test_swapped_part_refused(void **state) {
  struct fx *fx = *state;
  char p[256], other[256];
  int fd;
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "s", SFTD_FSAFE_FRESH, 0755, &fd), 0);
  rpath(fx, "s.sft-part", p, sizeof(p));
  rpath(fx, "stranger", other, sizeof(other));
  put_file(other, "not ours\n");
  assert_int_equal(rename(other, p), 0);
  assert_int_equal(sftd_fsafe_finalize(fx->root_fd, "s", fd, 0644, NULL, false),
                   SFT_ERR_PATH);
  rpath(fx, "s", p, sizeof(p));
  assert_int_equal(access(p, F_OK), -1);
  close(fd);
}

static void test_long_leaf(void **state) {
  struct fx *fx = *state;
  char leaf[256], leaf2[256], part[256], part2[256], p[400];
  int fd;
  memset(leaf, 'L', 255);
  leaf[255] = '\0';
  memcpy(leaf2, leaf, sizeof(leaf));
  leaf2[254] = 'M'; /* same 229-byte prefix, different name */
  assert_int_equal(sftd_fsafe_part_leaf(leaf, part, sizeof(part)), 0);
  assert_int_equal(sftd_fsafe_part_leaf(leaf2, part2, sizeof(part2)), 0);
  assert_int_equal(strlen(part), 255);
  assert_string_equal(part + 255 - 9, ".sft-part");
  assert_true(strcmp(part, part2) != 0);
  assert_int_equal(sftd_fsafe_part_leaf(leaf, part2, sizeof(part2)), 0);
  assert_string_equal(part, part2); /* deterministic */
  /* short names just get the suffix; 246 bytes is the longest such */
  leaf[246] = '\0';
  assert_int_equal(sftd_fsafe_part_leaf(leaf, part, sizeof(part)), 0);
  assert_int_equal(strlen(part), 255);
  assert_memory_equal(part, leaf, 246);
  leaf[246] = 'L';
  /* UTF-8 is not cut in the middle of a character */
  for (int i = 0; i < 85; i++)
    memcpy(leaf2 + 3 * i, "\xe6\x97\xa5", 3);
  leaf2[255] = '\0';
  assert_int_equal(sftd_fsafe_part_leaf(leaf2, part, sizeof(part)), 0);
  assert_int_equal(strchr(part, '~') - part, 228); /* 76 whole chars */
  assert_int_equal(sftd_fsafe_part_leaf(leaf, part, 100), SFT_ERR_INVAL);
  /* end to end with a 255-byte final name */
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, leaf, SFTD_FSAFE_FRESH, 0755, &fd), 0);
  assert_int_equal(
      sftd_fsafe_finalize(fx->root_fd, leaf, fd, 0644, NULL, false), 0);
  close(fd);
  rpath(fx, leaf, p, sizeof(p));
  assert_int_equal(access(p, F_OK), 0);
}

static void test_free_space(void **state) {
  struct fx *fx = *state;
  uint64_t avail = 0;
  assert_int_equal(sftd_fsafe_check_space(fx->root_fd, 0, 0, &avail), 0);
  assert_true(avail > 0);
  assert_int_equal(sftd_fsafe_check_space(fx->root_fd, 1, 0, NULL), 0);
  assert_int_equal(
      sftd_fsafe_check_space(fx->root_fd, UINT64_MAX / 2, 0, &avail),
      SFT_ERR_NOSPACE);
  assert_true(avail > 0);
  assert_int_equal(sftd_fsafe_check_space(fx->root_fd, avail, 0, NULL), 0);
  assert_int_equal(sftd_fsafe_check_space(fx->root_fd, avail, 1, NULL),
                   SFT_ERR_NOSPACE);
  assert_int_equal(sftd_fsafe_check_space(fx->root_fd, 1, avail, NULL),
                   SFT_ERR_NOSPACE);
  assert_int_equal(sftd_fsafe_check_space(fx->root_fd, UINT64_MAX, 1, NULL),
                   SFT_ERR_NOSPACE); /* no wrap-around */
  assert_int_equal(sftd_fsafe_check_space(-1, 0, 0, &avail), SFT_ERR_INVAL);
  assert_int_equal(avail, 0);
}

static void test_open_root_and_errno(void **state) {
  struct fx *fx = *state;
  char p[160];
  int fd;
  snprintf(p, sizeof(p), "%s/nope", fx->base);
  assert_int_equal(sftd_fsafe_open_root(p, &fd), SFT_ERR_NOT_FOUND);
  assert_int_equal(fd, -1);
  snprintf(p, sizeof(p), "%s/sentinel", fx->outside);
  assert_int_equal(sftd_fsafe_open_root(p, &fd), SFT_ERR_PATH);
  assert_int_equal(sftd_fsafe_err(ENOSPC), SFT_ERR_NOSPACE);
  assert_int_equal(sftd_fsafe_err(EDQUOT), SFT_ERR_NOSPACE);
  assert_int_equal(sftd_fsafe_err(EEXIST), SFT_ERR_EXISTS);
  assert_int_equal(sftd_fsafe_err(ELOOP), SFT_ERR_PATH);
  assert_int_equal(sftd_fsafe_err(EXDEV), SFT_ERR_PATH);
  assert_int_equal(sftd_fsafe_err(EIO), SFT_ERR_IO);
  assert_int_equal(sftd_fsafe_err(EACCES), SFT_ERR_IO);
  assert_int_equal(sftd_fsafe_err(0), 0);
}

/* reliability.md item 15: an attacker thread swaps a directory and a
 * symlink to outside (RENAME_EXCHANGE, atomic) while we create files and
 * directories through that name. Nothing may appear outside. */
struct flipper {
  int root_fd;
  atomic_int stop;
  int flips;
};

static void *flip_main(void *arg) {
  struct flipper *f = arg;
  while (!atomic_load(&f->stop)) {
    if (renameat2(f->root_fd, "d", f->root_fd, "s", RENAME_EXCHANGE) == 0)
      f->flips++;
  }
  return NULL;
}

static void test_race_flipping_parent(void **state) {
  struct fx *fx = *state;
  struct flipper f = {.root_fd = fx->root_fd};
  pthread_t th;
  char p[256], name[64];
  int created = 0, refused = 0;
  rpath(fx, "d", p, sizeof(p));
  assert_int_equal(mkdir(p, 0755), 0);
  rpath(fx, "s", p, sizeof(p));
  assert_int_equal(symlink(fx->outside, p), 0);
  assert_int_equal(pthread_create(&th, NULL, flip_main, &f), 0);
  for (int i = 0; i < 600; i++) {
    int fd, rc;
    snprintf(name, sizeof(name), "d/f%d", i);
    rc = sftd_fsafe_open_part(fx->root_fd, name, SFTD_FSAFE_FRESH, 0755, &fd);
    if (rc == 0) {
      created++;
      close(fd);
    } else {
      assert_int_equal(rc, SFT_ERR_PATH);
      refused++;
    }
    snprintf(name, sizeof(name), "d/sub%d/x", i);
    rc = sftd_fsafe_mkdirs(fx->root_fd, name, 0755, NULL);
    assert_true(rc == 0 || rc == SFT_ERR_PATH);
  }
  atomic_store(&f.stop, 1);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_true(f.flips > 0);
  assert_true(created + refused == 600);
  assert_outside_untouched(fx, NULL);
}

/* ---- openat2 availability -------------------------------------------------
 */

static void test_openat2_is_used(void **state) {
  struct fx *fx = *state;
  int fd;
  atomic_store(&g_hook_calls, 0);
  sftd_fsafe_set_openat2(counting_hook);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "a/b/c", SFTD_FSAFE_FRESH, 0755, &fd),
      0);
  close(fd);
  assert_int_equal(atomic_load(&g_hook_calls), 3); /* a, b, c.sft-part */
  sftd_fsafe_set_openat2(NULL);
}

/* EPERM (a seccomp filter) falls back each time without being cached, and
 * the walk gives the real answer. */
static void test_eperm_falls_back(void **state) {
  struct fx *fx = *state;
  char p[256];
  int fd;
  atomic_store(&g_hook_calls, 0);
  sftd_fsafe_set_openat2(eperm_hook);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "x/y", SFTD_FSAFE_FRESH, 0755, &fd), 0);
  close(fd);
  assert_int_equal(atomic_load(&g_hook_calls), 2);
  rpath(fx, "l", p, sizeof(p));
  assert_int_equal(symlink(fx->outside, p), 0);
  assert_int_equal(
      sftd_fsafe_open_part(fx->root_fd, "l/y", SFTD_FSAFE_FRESH, 0755, &fd),
      SFT_ERR_PATH);
  sftd_fsafe_set_openat2(NULL);
  assert_outside_untouched(fx, NULL);
}

static int use_real(void **state) {
  (void)state;
  sftd_fsafe_set_openat2(NULL);
  return 0;
}

static int use_fallback(void **state) {
  (void)state;
  atomic_store(&g_hook_calls, 0);
  sftd_fsafe_set_openat2(enosys_hook);
  return 0;
}

static int fallback_done(void **state) {
  (void)state;
  /* ENOSYS is remembered: the hook ran once, then only the walk. */
  int calls = atomic_load(&g_hook_calls);
  sftd_fsafe_set_openat2(NULL);
  if (calls != 1) {
    fprintf(stderr, "openat2 hook called %d times, want 1\n", calls);
    return -1;
  }
  return 0;
}

/* sftd_pread_full / sftd_pwrite_full / sftd_writeback: exact lengths at
 * offsets, end of file is TRUNCATED, a bad descriptor is IO. */
static void test_full_io(void **state) {
  char path[] = "/tmp/sft-fsafe-io.XXXXXX";
  uint8_t w[10000], r[10000];
  int fd = mkstemp(path);
  (void)state;
  assert_true(fd >= 0);
  unlink(path);
  for (size_t i = 0; i < sizeof(w); i++)
    w[i] = (uint8_t)(i * 7);
  assert_int_equal(sftd_pwrite_full(fd, w, sizeof(w), 4096), 0);
  /* writeback started on the written range (and past the end): the data
   * stays as written */
  assert_int_equal(sftd_writeback(fd, 4096, sizeof(w)), 0);
  assert_int_equal(sftd_writeback(fd, 0, 1u << 30), 0);
  assert_int_equal(sftd_pread_full(fd, r, sizeof(r), 4096), 0);
  assert_memory_equal(r, w, sizeof(w));
  assert_int_equal(sftd_pread_full(fd, r, 100, 4096 + 9950), SFT_ERR_TRUNCATED);
  assert_int_equal(sftd_pread_full(fd, r, 0, 1u << 30), 0);
  close(fd);
  assert_int_equal(sftd_pread_full(fd, r, 10, 0), SFT_ERR_IO);
  assert_int_equal(sftd_pwrite_full(fd, w, 10, 0), SFT_ERR_IO);
#ifdef __linux__
  assert_int_equal(sftd_writeback(fd, 0, 10), SFT_ERR_IO);
#endif
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
  const struct CMUnitTest real[] = {
      T(test_nested_mkdirs),
      T(test_full_io),
      T(test_bad_names_refused),
      T(test_symlink_leaf_outside),
      T(test_symlink_parent),
      T(test_final_exists),
      T(test_finalize_atomic_rename),
      T(test_fresh_resume_and_links),
      T(test_swapped_part_refused),
      T(test_long_leaf),
      T(test_free_space),
      T(test_open_root_and_errno),
      T(test_race_flipping_parent),
      T(test_openat2_is_used),
      T(test_eperm_falls_back),
  };
  const struct CMUnitTest fallback[] = {
      T(test_nested_mkdirs),
      T(test_bad_names_refused),
      T(test_symlink_leaf_outside),
      T(test_symlink_parent),
      T(test_final_exists),
      T(test_finalize_atomic_rename),
      T(test_fresh_resume_and_links),
      T(test_swapped_part_refused),
      T(test_long_leaf),
      T(test_race_flipping_parent),
  };
  int rc = cmocka_run_group_tests_name("fsafe_openat2", real, use_real, NULL);
  rc += cmocka_run_group_tests_name("fsafe_enosys_fallback", fallback,
                                    use_fallback, fallback_done);
  return rc;
}
