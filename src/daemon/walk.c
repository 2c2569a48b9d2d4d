#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/walk.h"
#include "sft/err.h"
#include "sft/limits.h"

static char errbuf[PATH_MAX];

static int fail(int err, const char *path, const char **errpath) {
  size_t n = strnlen(path, sizeof(errbuf) - 1);
  memcpy(errbuf, path, n);
  errbuf[n] = 0;
  if (errpath)
    *errpath = errbuf;
  return err;
}

static int push(struct walk_list *l, const char *path, const char *name,
                const struct stat *st) {
  struct walk_entry *e;
  if (l->n >= SFT_MAX_FILES)
    return SFT_ERR_TOO_LARGE;
  if (strlen(name) > SFT_MAX_NAME)
    return SFT_ERR_TOO_LARGE;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    struct walk_entry *v = realloc(l->v, cap * sizeof(*v));
    if (!v)
      return SFT_ERR_NOMEM;
    l->v = v;
    l->cap = cap;
  }
  e = &l->v[l->n];
  memset(e, 0, sizeof(*e));
  e->path = strdup(path);
  e->name = strdup(name);
  if (!e->path || !e->name) {
    free(e->path);
    free(e->name);
    return SFT_ERR_NOMEM;
  }
  e->kind = S_ISDIR(st->st_mode) ? WALK_DIR : WALK_FILE;
  e->size = e->kind == WALK_FILE ? (uint64_t)st->st_size : 0;
  e->mtime_s = st->st_mtim.tv_sec;
  e->mtime_ns = (uint32_t)st->st_mtim.tv_nsec;
  e->mode = st->st_mode & 07777;
  l->total_bytes += e->size;
  l->n++;
  return 0;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk_dir(struct walk_list *l, const char *path, const char *name,
                    int depth, walk_warn_fn warn, void *ud,
                    const char **errpath) {
  DIR *d;
  struct dirent *de;
  char **names = NULL;
  size_t n = 0, cap = 0;
  int rv = 0;

  if (depth > SFT_MAX_NAME_DEPTH)
    return fail(SFT_ERR_TOO_LARGE, path, errpath);
  d = opendir(path);
  if (!d)
    return fail(errno == ENOENT ? SFT_ERR_NOT_FOUND : SFT_ERR_IO, path,
                errpath);
  /* Sorted, so a send is deterministic and names arrive in a stable order. */
  while ((de = readdir(d))) {
    if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
      continue;
    if (n == cap) {
      size_t c = cap ? cap * 2 : 32;
      char **v = realloc(names, c * sizeof(*v));
      if (!v) {
        rv = SFT_ERR_NOMEM;
        goto out;
      }
      names = v;
      cap = c;
    }
    if (!(names[n] = strdup(de->d_name))) {
      rv = SFT_ERR_NOMEM;
      goto out;
    }
    n++;
  }
  if (n)
    qsort(names, n, sizeof(*names), cmp_name);
  for (size_t i = 0; i < n && !rv; i++) {
    char cpath[PATH_MAX], cname[SFT_MAX_NAME + 2];
    struct stat st;
    if (snprintf(cpath, sizeof(cpath), "%s/%s", path, names[i]) >=
            (int)sizeof(cpath) ||
        snprintf(cname, sizeof(cname), "%s/%s", name, names[i]) >
            SFT_MAX_NAME) {
      rv = fail(SFT_ERR_TOO_LARGE, cpath, errpath);
      break;
    }
    if (lstat(cpath, &st) != 0) {
      rv = fail(SFT_ERR_IO, cpath, errpath);
      break;
    }
    if (S_ISLNK(st.st_mode) || (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))) {
      l->skipped++;
      if (warn)
        warn(cpath, S_ISLNK(st.st_mode) ? "symbolic link skipped"
                                         : "special file skipped",
             ud);
      continue;
    }
    rv = push(l, cpath, cname, &st);
    if (rv)
      rv = fail(rv, cpath, errpath);
    else if (S_ISDIR(st.st_mode))
      rv = walk_dir(l, cpath, cname, depth + 1, warn, ud, errpath);
  }
out:
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  closedir(d);
  return rv;
}

int walk_add(struct walk_list *l, const char *path, walk_warn_fn warn,
             void *ud, const char **errpath) {
  struct stat st;
  char buf[PATH_MAX];
  const char *base;
  size_t len;
  int rv;

  if (stat(path, &st) != 0)
    return fail(errno == ENOENT ? SFT_ERR_NOT_FOUND : SFT_ERR_IO, path,
                errpath);
  if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
    return fail(SFT_ERR_UNSUPPORTED, path, errpath);

  /* The sent name is the last component of the argument ("a/b/" -> "b"). */
  len = strlen(path);
  if (len >= sizeof(buf))
    return fail(SFT_ERR_TOO_LARGE, path, errpath);
  memcpy(buf, path, len + 1);
  while (len > 1 && buf[len - 1] == '/')
    buf[--len] = 0;
  base = strrchr(buf, '/');
  base = base ? base + 1 : buf;
  if (!*base || !strcmp(base, ".") || !strcmp(base, "..")) {
    /* "." or "/" : use the directory's real name. */
    char *rp = realpath(path, NULL);
    const char *b;
    if (!rp)
      return fail(SFT_ERR_IO, path, errpath);
    b = strrchr(rp, '/');
    b = b && b[1] ? b + 1 : "root";
    snprintf(buf, sizeof(buf), "%s", b);
    free(rp);
    base = buf;
  }
  {
    char name[SFT_MAX_NAME + 1];
    snprintf(name, sizeof(name), "%s", base);
    rv = push(l, path, name, &st);
    if (rv)
      return fail(rv, path, errpath);
    if (S_ISDIR(st.st_mode))
      return walk_dir(l, path, name, 1, warn, ud, errpath);
  }
  return 0;
}

void walk_free(struct walk_list *l) {
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].path);
    free(l->v[i].name);
  }
  free(l->v);
  memset(l, 0, sizeof(*l));
}
