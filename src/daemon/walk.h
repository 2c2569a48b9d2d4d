/*
 * Source enumeration for `sft send`: turns the user's PATH arguments into a
 * flat list of entries with the relative names the receiver will use.
 *
 * A file argument is sent under its base name; a directory argument is sent
 * recursively under its base name (like `scp -r`), keeping empty directories
 * and permission bits. Symbolic links inside a directory are skipped and
 * reported (never followed), so a send cannot leak files outside the tree.
 */
#ifndef SFTD_WALK_H
#define SFTD_WALK_H

#include <stddef.h>
#include <stdint.h>

enum walk_kind { WALK_FILE = 0, WALK_DIR = 1 };

struct walk_entry {
  char *path;      /* path to open locally (owned) */
  char *name;      /* relative name sent to the receiver (owned) */
  int kind;        /* enum walk_kind */
  uint64_t size;   /* bytes (0 for directories) */
  int64_t mtime_s; /* modification time */
  uint32_t mtime_ns;
  uint32_t mode;   /* permission bits (07777) */
};

struct walk_list {
  struct walk_entry *v;
  size_t n, cap;
  uint64_t total_bytes;
  size_t skipped; /* symlinks and special files skipped */
};

/* Called for each skipped entry (symlink, socket, ...) with a reason. */
typedef void (*walk_warn_fn)(const char *path, const char *reason, void *ud);

/* Append |path| (file or directory, recursively) to |list|. Returns 0, or
 * SFT_ERR_NOT_FOUND / SFT_ERR_IO / SFT_ERR_UNSUPPORTED (top-level argument
 * is neither file nor directory) / SFT_ERR_TOO_LARGE (more than
 * SFT_MAX_FILES entries or a name longer than SFT_MAX_NAME) / SFT_ERR_NOMEM.
 * On error *errpath (if non-NULL) points to a static copy of the failing
 * path. */
int walk_add(struct walk_list *list, const char *path, walk_warn_fn warn,
             void *ud, const char **errpath);

void walk_free(struct walk_list *list);

#endif
