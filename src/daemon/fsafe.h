/*
 * Confined file creation for the receiver.
 *
 * Every file and directory a peer causes us to create lives strictly beneath
 * one download directory, held open as a directory fd ("root"). Names given
 * to these functions are relative names as accepted by sft_name_validate()
 * (sft/name.h); every function validates them again and returns SFT_ERR_PATH
 * for a bad one. Resolution never follows a symbolic link anywhere beneath
 * root, never crosses ".." and never leaves root: openat2(2) with
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS, or, where the
 * kernel lacks openat2 (ENOSYS, or EPERM from an old seccomp profile), a walk
 * of one openat(O_NOFOLLOW) per component. Symlinks *in the path of root
 * itself* are the user's business and are followed by sftd_fsafe_open_root.
 *
 * Errors (all functions): 0 on success, else a negative SFT_ERR_*:
 *   SFT_ERR_PATH      bad name; a symlink, a non-directory parent, a
 *                     non-regular file, or an escape attempt (ELOOP, EXDEV,
 *                     ENOTDIR, EISDIR, ENAMETOOLONG)
 *   SFT_ERR_EXISTS    EEXIST: the final name (or a fresh part file) exists
 *   SFT_ERR_NOSPACE   ENOSPC, EDQUOT, or the free-space check failed
 *   SFT_ERR_NOT_FOUND ENOENT (e.g. the root directory does not exist)
 *   SFT_ERR_NOMEM     ENOMEM
 *   SFT_ERR_INVAL     bad argument (negative fd, NULL pointer)
 *   SFT_ERR_IO        any other errno (EACCES, EIO, EROFS, ...)
 * File descriptors returned are O_CLOEXEC and owned by the caller.
 * Thread-safe: no shared state besides the openat2 availability flag.
 */
#ifndef SFTD_FSAFE_H
#define SFTD_FSAFE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Largest leaf name of a part file (Linux NAME_MAX). */
#define SFTD_FSAFE_LEAF_MAX 255

/* Opens the download directory |path| (O_RDONLY | O_DIRECTORY) into
 * |*out_fd|. |path| is trusted local configuration: symlinks in it are
 * followed. */
int sftd_fsafe_open_root(const char *path, int *out_fd);

/* mkdir -p of the relative directory |rel_dir| beneath |root_fd|: each
 * missing component is created with mkdirat(mode & 0777, minus the umask)
 * and its parent fsynced; every component (new or existing) is then opened
 * without following symlinks. A component that exists as a symlink or a
 * non-directory gives SFT_ERR_PATH. If |out_fd| is not NULL it receives an
 * fd of the last directory. */
int sftd_fsafe_mkdirs(int root_fd, const char *rel_dir, mode_t mode,
                      int *out_fd);

/* How sftd_fsafe_open_part treats an existing part file. */
enum sftd_fsafe_part_mode {
  /* Start a transfer: O_CREAT | O_EXCL. An existing part file (left by an
   * earlier transfer kept after cancel, or by someone else) gives
   * SFT_ERR_EXISTS; the caller decides (resume it, or remove it and retry).
   * O_EXCL also refuses a symlink planted at the part name. */
  SFTD_FSAFE_FRESH,
  /* Resume: O_CREAT without O_EXCL and without O_TRUNC, so chunks already
   * written stay (they are re-verified by hash). A missing part file is
   * recreated empty. The file must be a regular file with one link (a hard
   * link planted to a file elsewhere gives SFT_ERR_PATH). */
  SFTD_FSAFE_RESUME,
};

/* Opens (creating as |how| says) the part file of the final name |name|,
 * O_RDWR, mode 0600 while incomplete, in the directory of |name| beneath
 * |root_fd|, creating missing parent directories with |dir_mode| (as
 * sftd_fsafe_mkdirs). The part file's leaf is sftd_fsafe_part_leaf() of
 * |name|'s last component. On success |*out_fd| is the open part file. */
int sftd_fsafe_open_part(int root_fd, const char *name,
                         enum sftd_fsafe_part_mode how, mode_t dir_mode,
                         int *out_fd);

/* Writes the part file leaf for the final leaf |leaf| (one component,
 * NUL-terminated) into |out| (capacity |cap| >= SFTD_FSAFE_LEAF_MAX + 1):
 * "LEAF.sft-part" when that fits in 255 bytes, else the first bytes of LEAF
 * (cut at a UTF-8 boundary), '~', 16 hex digits of the FNV-1a-64 hash of the
 * whole LEAF, and ".sft-part" (at most 255 bytes). Deterministic, so a
 * resumed transfer finds its part file. */
int sftd_fsafe_part_leaf(const char *leaf, char *out, size_t cap);

/* Completes a verified transfer: sets the permission bits |mode| & 0777 on
 * |part_fd| (fchmod; setuid, setgid and sticky are never applied), its
 * mtime to |*mtime| if |mtime| is not NULL (futimens; atime untouched),
 * fsyncs it, checks that the part name beneath root still names the same
 * inode as |part_fd| (else SFT_ERR_PATH), renames the part file to |name|
 * (renameat2 RENAME_NOREPLACE, or link+unlink where the filesystem lacks it;
 * with |overwrite|, plain renameat, which replaces a file or symlink but not
 * a directory) and fsyncs the parent directory. Without |overwrite| an
 * existing final name gives SFT_ERR_EXISTS and nothing changes. |part_fd|
 * stays open (the caller closes it). */
int sftd_fsafe_finalize(int root_fd, const char *name, int part_fd, mode_t mode,
                        const struct timespec *mtime, bool overwrite);

/* Checks the final name before a transfer starts: 0 if |name| does not exist
 * beneath root (a missing parent directory counts as not existing) or exists
 * as a non-directory and |overwrite| is set; SFT_ERR_EXISTS if it exists
 * and |overwrite| is not set; SFT_ERR_PATH if it exists as a directory with
 * |overwrite|, or if a parent is a symlink or not a directory. */
int sftd_fsafe_check_final(int root_fd, const char *name, bool overwrite);

/* Free space of the filesystem holding |dir_fd| (fstatvfs, f_bavail *
 * f_frsize: what an unprivileged writer may use). Returns SFT_ERR_NOSPACE
 * when |need| + |reserve| exceeds it (no overflow), else 0. |*avail| (if
 * not NULL) receives the available bytes either way, 0 on error. */
int sftd_fsafe_check_space(int dir_fd, uint64_t need, uint64_t reserve,
                           uint64_t *avail);

/* Removes the part file of |name| (cancel). A part file or parent directory
 * that is already gone is success. Directories created for it stay. */
int sftd_fsafe_remove_part(int root_fd, const char *name);

/* The errno -> SFT_ERR_* mapping used above (0 for 0). */
int sftd_fsafe_err(int e);

/* Test hook: replace the openat2(2) call. |fn| returns an fd or -1 with
 * errno set; NULL restores the real system call and forgets a cached
 * "openat2 unavailable" result. */
typedef int (*sftd_fsafe_openat2_fn)(int dirfd, const char *path, int flags,
                                     mode_t mode, uint64_t resolve);
void sftd_fsafe_set_openat2(sftd_fsafe_openat2_fn fn);

/* Reads/writes exactly |len| bytes at |off| (retrying short transfers and
 * EINTR), for the thread-pool jobs. pread: 0, SFT_ERR_TRUNCATED (end of
 * file first), SFT_ERR_IO. pwrite: 0, SFT_ERR_NOSPACE, SFT_ERR_IO. */
int sftd_pread_full(int fd, void *buf, size_t len, uint64_t off);
int sftd_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);

/* Starts writing [off, off+len) of |fd| back to the disk, without waiting
 * (Linux: sync_file_range(SYNC_FILE_RANGE_WRITE); elsewhere nothing), so
 * that the fsync at the end of a file waits only for what is still dirty:
 * measured, the final fsync of a 100 MiB file went from 50 ms to ~1 ms.
 * Advisory: 0, or SFT_ERR_IO when the kernel refused (the fsync that
 * follows is what reports write errors). */
int sftd_writeback(int fd, uint64_t off, uint64_t len);

#endif /* SFTD_FSAFE_H */
