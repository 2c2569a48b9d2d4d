/* Confined file creation beneath a download directory fd. See fsafe.h and
 * docs/internals/security.md. */
#define _GNU_SOURCE /* renameat2, RENAME_NOREPLACE */
#include "daemon/fsafe.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sft/err.h"
#include "sft/name.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

#define RESOLVE_FLAGS                                                          \
  (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

static _Atomic(sftd_fsafe_openat2_fn) g_openat2_hook;
static atomic_int g_openat2_missing; /* 1 once openat2 said ENOSYS/EPERM */

void sftd_fsafe_set_openat2(sftd_fsafe_openat2_fn fn) {
  atomic_store(&g_openat2_hook, fn);
  atomic_store(&g_openat2_missing, 0);
}

int sftd_fsafe_err(int e) {
  switch (e) {
  case 0:
    return 0;
  case ENOSPC:
  case EDQUOT:
    return SFT_ERR_NOSPACE;
  case EEXIST:
  case ENOTEMPTY:
    return SFT_ERR_EXISTS;
  case ELOOP:
  case EXDEV:
  case ENOTDIR:
  case EISDIR:
  case ENAMETOOLONG:
    return SFT_ERR_PATH;
  case ENOENT:
    return SFT_ERR_NOT_FOUND;
  case ENOMEM:
    return SFT_ERR_NOMEM;
  default:
    return SFT_ERR_IO;
  }
}

static int sys_openat2(int dirfd, const char *path, int flags, mode_t mode,
                       uint64_t resolve) {
  struct open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = (uint64_t)(unsigned)flags;
  how.mode = (flags & O_CREAT) ? (uint64_t)mode : 0;
  how.resolve = resolve;
  return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* The fallback: one openat per component, none followed if a symlink.
 * Intermediate components must be directories; "." and ".." are refused
 * (validated names never hold them; this is defence in depth). */
static int walk_open(int dirfd, const char *path, int flags, mode_t mode) {
  char buf[SFT_MAX_NAME + 1];
  char *comp, *slash;
  int cur = dirfd, fd;
  size_t len = strlen(path);
  if (len == 0 || len > SFT_MAX_NAME) {
    errno = len ? ENAMETOOLONG : ENOENT;
    return -1;
  }
  if (path[0] == '/') {
    errno = EXDEV; /* what RESOLVE_BENEATH says */
    return -1;
  }
  memcpy(buf, path, len + 1);
  comp = buf;
  for (;;) {
    slash = strchr(comp, '/');
    if (slash)
      *slash = '\0';
    if (comp[0] == '\0' || strcmp(comp, ".") == 0 || strcmp(comp, "..") == 0) {
      if (cur != dirfd)
        close(cur);
      errno = EXDEV;
      return -1;
    }
    if (!slash)
      break;
    fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (cur != dirfd) {
      int saved = errno;
      close(cur);
      errno = saved;
    }
    if (fd < 0)
      return -1;
    cur = fd;
    comp = slash + 1;
  }
  fd = openat(cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
  if (cur != dirfd) {
    int saved = errno;
    close(cur);
    errno = saved;
  }
  return fd;
}

/* Opens |path| (relative, '/'-separated) beneath |dirfd| without following
 * any symlink. Returns an fd, or -1 with errno set. */
static int open_beneath(int dirfd, const char *path, int flags, mode_t mode) {
  if (!atomic_load(&g_openat2_missing)) {
    sftd_fsafe_openat2_fn hook = atomic_load(&g_openat2_hook);
    int fd;
    flags |= O_NOFOLLOW | O_CLOEXEC;
    do {
      fd = hook ? hook(dirfd, path, flags, mode, RESOLVE_FLAGS)
                : sys_openat2(dirfd, path, flags, mode, RESOLVE_FLAGS);
      /* EAGAIN: only a ".." race under RESOLVE_BENEATH; retry. */
    } while (fd < 0 && (errno == EINTR || errno == EAGAIN));
    if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
      return fd;
    if (errno == ENOSYS)
      atomic_store(&g_openat2_missing, 1);
    /* EPERM may be a seccomp filter refusing the syscall (old container
     * runtimes) or a real refusal: the walk gives the real answer. */
  }
  return walk_open(dirfd, path, flags, mode);
}

int sftd_fsafe_open_root(const char *path, int *out_fd) {
  int fd;
  if (!path || !out_fd)
    return SFT_ERR_INVAL;
  *out_fd = -1;
  fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return sftd_fsafe_err(errno);
  *out_fd = fd;
  return 0;
}

/* Copies component |k| of |name| into |buf| (>= 256 bytes). */
static void comp_copy(const char *name, const struct sft_name_parts *p,
                      size_t k, char *buf) {
  memcpy(buf, name + p->comp[k].off, p->comp[k].len);
  buf[p->comp[k].len] = '\0';
}

/* Opens the directory made of the first |n| components of |name| beneath
 * |root_fd| into |*out| (a dup of root when |n| is 0). With |create|,
 * missing components are made with |mode|. */
static int open_dirs(int root_fd, const char *name,
                     const struct sft_name_parts *p, size_t n, bool create,
                     mode_t mode, int *out) {
  char comp[SFT_MAX_NAME_COMPONENT + 1];
  int cur;
  *out = -1;
  cur = fcntl(root_fd, F_DUPFD_CLOEXEC, 0);
  if (cur < 0)
    return errno == EBADF ? SFT_ERR_INVAL : sftd_fsafe_err(errno);
  for (size_t k = 0; k < n; k++) {
    int fd;
    comp_copy(name, p, k, comp);
    if (create) {
      if (mkdirat(cur, comp, mode & 0777) == 0) {
        /* make the new entry durable before anything is put in it */
        if (fsync(cur) != 0) {
          int rc = sftd_fsafe_err(errno);
          close(cur);
          return rc;
        }
      } else if (errno != EEXIST) {
        int rc = sftd_fsafe_err(errno);
        close(cur);
        return rc;
      }
    }
    fd = open_beneath(cur, comp, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) {
      int rc = sftd_fsafe_err(errno);
      close(cur);
      return rc;
    }
    close(cur);
    cur = fd;
  }
  *out = cur;
  return 0;
}

int sftd_fsafe_mkdirs(int root_fd, const char *rel_dir, mode_t mode,
                      int *out_fd) {
  struct sft_name_parts p;
  int fd, rc;
  if (out_fd)
    *out_fd = -1;
  if (!rel_dir || root_fd < 0)
    return SFT_ERR_INVAL;
  if (sft_name_split(rel_dir, strlen(rel_dir), &p, NULL) != 0)
    return SFT_ERR_PATH;
  rc = open_dirs(root_fd, rel_dir, &p, p.count, true, mode, &fd);
  if (rc != 0)
    return rc;
  if (out_fd)
    *out_fd = fd;
  else
    close(fd);
  return 0;
}

int sftd_fsafe_part_leaf(const char *leaf, char *out, size_t cap) {
  size_t len, keep;
  uint64_t h = 0xcbf29ce484222325ull;
  if (!leaf || !out || cap < SFTD_FSAFE_LEAF_MAX + 1)
    return SFT_ERR_INVAL;
  len = strlen(leaf);
  if (len == 0 || len > SFT_MAX_NAME_COMPONENT || memchr(leaf, '/', len))
    return SFT_ERR_PATH;
  if (len + SFT_NAME_PART_SUFFIX_LEN <= SFTD_FSAFE_LEAF_MAX) {
    memcpy(out, leaf, len);
    memcpy(out + len, SFT_NAME_PART_SUFFIX, SFT_NAME_PART_SUFFIX_LEN + 1);
    return 0;
  }
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)leaf[i];
    h *= 0x100000001b3ull;
  }
  /* prefix + '~' + 16 hex + suffix = 255 */
  keep = SFTD_FSAFE_LEAF_MAX - SFT_NAME_PART_SUFFIX_LEN - 17;
  while (keep > 0 && ((unsigned char)leaf[keep] & 0xc0) == 0x80)
    keep--; /* do not cut a UTF-8 sequence */
  memcpy(out, leaf, keep);
  snprintf(out + keep, cap - keep, "~%016llx%s", (unsigned long long)h,
           SFT_NAME_PART_SUFFIX);
  return 0;
}

/* Validates |name|, opens its parent directory (creating it when |create|)
 * and fills the final leaf and the part leaf. */
static int prepare(int root_fd, const char *name, bool create, mode_t mode,
                   int *parent, char leaf[SFT_MAX_NAME_COMPONENT + 1],
                   char part[SFTD_FSAFE_LEAF_MAX + 1]) {
  struct sft_name_parts p;
  int rc;
  *parent = -1;
  if (!name || root_fd < 0)
    return SFT_ERR_INVAL;
  if (sft_name_split(name, strlen(name), &p, NULL) != 0)
    return SFT_ERR_PATH;
  comp_copy(name, &p, p.count - 1, leaf);
  rc = sftd_fsafe_part_leaf(leaf, part, SFTD_FSAFE_LEAF_MAX + 1);
  if (rc != 0)
    return rc;
  return open_dirs(root_fd, name, &p, p.count - 1, create, mode, parent);
}

int sftd_fsafe_open_part(int root_fd, const char *name,
                         enum sftd_fsafe_part_mode how, mode_t dir_mode,
                         int *out_fd) {
  char leaf[SFT_MAX_NAME_COMPONENT + 1], part[SFTD_FSAFE_LEAF_MAX + 1];
  int parent, fd, rc, flags = O_RDWR | O_CREAT;
  struct stat st;
  if (!out_fd)
    return SFT_ERR_INVAL;
  *out_fd = -1;
  if (how != SFTD_FSAFE_FRESH && how != SFTD_FSAFE_RESUME)
    return SFT_ERR_INVAL;
  rc = prepare(root_fd, name, true, dir_mode, &parent, leaf, part);
  if (rc != 0)
    return rc;
  if (how == SFTD_FSAFE_FRESH)
    flags |= O_EXCL;
  fd = open_beneath(parent, part, flags, 0600);
  rc = fd < 0 ? sftd_fsafe_err(errno) : 0;
  close(parent);
  if (rc != 0)
    return rc;
  if (fstat(fd, &st) != 0) {
    rc = sftd_fsafe_err(errno);
    close(fd);
    return rc;
  }
  if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
    close(fd);
    return SFT_ERR_PATH;
  }
  *out_fd = fd;
  return 0;
}

/* rename without replacing: renameat2(RENAME_NOREPLACE), or where the
 * filesystem does not support it, link (fails on an existing target) then
 * unlink of the old name. */
static int rename_noreplace(int dirfd, const char *from, const char *to) {
  if (renameat2(dirfd, from, dirfd, to, RENAME_NOREPLACE) == 0)
    return 0;
  if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
    return -1;
  if (linkat(dirfd, from, dirfd, to, 0) != 0)
    return -1;
  if (unlinkat(dirfd, from, 0) != 0)
    return -1;
  return 0;
}

int sftd_fsafe_finalize(int root_fd, const char *name, int part_fd, mode_t mode,
                        const struct timespec *mtime, bool overwrite) {
  char leaf[SFT_MAX_NAME_COMPONENT + 1], part[SFTD_FSAFE_LEAF_MAX + 1];
  struct stat fst, pst;
  int parent, rc;
  if (part_fd < 0)
    return SFT_ERR_INVAL;
  rc = prepare(root_fd, name, false, 0, &parent, leaf, part);
  if (rc != 0)
    return rc;
  if (fchmod(part_fd, mode & 0777) != 0)
    goto fail_errno;
  if (mtime) {
    struct timespec ts[2];
    ts[0].tv_sec = 0;
    ts[0].tv_nsec = UTIME_OMIT;
    ts[1] = *mtime;
    if (futimens(part_fd, ts) != 0)
      goto fail_errno;
  }
  if (fsync(part_fd) != 0)
    goto fail_errno;
  /* The part name must still be our inode: never rename a file someone
   * swapped in under that name. */
  if (fstat(part_fd, &fst) != 0)
    goto fail_errno;
  if (fstatat(parent, part, &pst, AT_SYMLINK_NOFOLLOW) != 0)
    goto fail_errno;
  if (fst.st_dev != pst.st_dev || fst.st_ino != pst.st_ino) {
    close(parent);
    return SFT_ERR_PATH;
  }
  if (overwrite ? renameat(parent, part, parent, leaf) != 0
                : rename_noreplace(parent, part, leaf) != 0)
    goto fail_errno;
  if (fsync(parent) != 0)
    goto fail_errno;
  close(parent);
  return 0;
fail_errno:
  rc = sftd_fsafe_err(errno);
  close(parent);
  return rc;
}

int sftd_fsafe_check_final(int root_fd, const char *name, bool overwrite) {
  char leaf[SFT_MAX_NAME_COMPONENT + 1], part[SFTD_FSAFE_LEAF_MAX + 1];
  struct stat st;
  int parent, rc;
  rc = prepare(root_fd, name, false, 0, &parent, leaf, part);
  if (rc == SFT_ERR_NOT_FOUND)
    return 0; /* parent directory missing: the name cannot exist */
  if (rc != 0)
    return rc;
  if (fstatat(parent, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    rc = errno == ENOENT ? 0 : sftd_fsafe_err(errno);
    close(parent);
    return rc;
  }
  close(parent);
  if (!overwrite)
    return SFT_ERR_EXISTS;
  return S_ISDIR(st.st_mode) ? SFT_ERR_PATH : 0;
}

int sftd_fsafe_check_space(int dir_fd, uint64_t need, uint64_t reserve,
                           uint64_t *avail) {
  struct statvfs sv;
  uint64_t bytes, want;
  if (avail)
    *avail = 0;
  if (fstatvfs(dir_fd, &sv) != 0)
    return errno == EBADF ? SFT_ERR_INVAL : sftd_fsafe_err(errno);
  if (__builtin_mul_overflow((uint64_t)sv.f_bavail, (uint64_t)sv.f_frsize,
                             &bytes))
    bytes = UINT64_MAX;
  if (avail)
    *avail = bytes;
  if (__builtin_add_overflow(need, reserve, &want) || want > bytes)
    return SFT_ERR_NOSPACE;
  return 0;
}

int sftd_fsafe_remove_part(int root_fd, const char *name) {
  char leaf[SFT_MAX_NAME_COMPONENT + 1], part[SFTD_FSAFE_LEAF_MAX + 1];
  int parent, rc;
  rc = prepare(root_fd, name, false, 0, &parent, leaf, part);
  if (rc == SFT_ERR_NOT_FOUND)
    return 0;
  if (rc != 0)
    return rc;
  rc = unlinkat(parent, part, 0) == 0 || errno == ENOENT
           ? 0
           : sftd_fsafe_err(errno);
  close(parent);
  return rc;
}

int sftd_pread_full(int fd, void *buf, size_t len, uint64_t off) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = pread(fd, (uint8_t *)buf + got, len - got, (off_t)(off + got));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n == 0 ? SFT_ERR_TRUNCATED : SFT_ERR_IO;
    got += (size_t)n;
  }
  return 0;
}

int sftd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off) {
  size_t done = 0;
  while (done < len) {
    ssize_t n = pwrite(fd, (const uint8_t *)buf + done, len - done,
                       (off_t)(off + done));
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return n < 0 && errno == ENOSPC ? SFT_ERR_NOSPACE : SFT_ERR_IO;
    done += (size_t)n;
  }
  return 0;
}

int sftd_writeback(int fd, uint64_t off, uint64_t len) {
#ifdef __linux__
  if (sync_file_range(fd, (off_t)off, (off_t)len, SYNC_FILE_RANGE_WRITE) != 0)
    return SFT_ERR_IO;
#else
  (void)fd;
  (void)off;
  (void)len;
#endif
  return 0;
}
