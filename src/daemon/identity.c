/* Data directory, fingerprint text and the trust files. See identity.h and
 * docs/internals/security.md. */
#define _GNU_SOURCE /* mkostemp */
#include "daemon/identity.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sft/err.h"
#include "sft/name.h"

static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

#define FP_PREFIX "SFT1-"
#define FP_PREFIX_LEN 5
#define FP_DATA_CHARS 52
#define FP_BODY_CHARS 56
#define FP_GROUP 7

static void set_err(struct sftd_id_err *err, unsigned line, const char *fmt,
                    ...) __attribute__((format(printf, 3, 4)));

static void set_err(struct sftd_id_err *err, unsigned line, const char *fmt,
                    ...) {
  va_list ap;
  if (!err)
    return;
  err->line = line;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
  va_end(ap);
}

/* ---- fingerprint text ---------------------------------------------------- */

/* CRC-20, polynomial x^20 + x^3 + 1, init 0xFFFFF, MSB first, no final
 * xor. A degree-20 polynomial with a non-zero constant term detects every
 * error burst of up to 20 bits, i.e. any error inside 4 characters. */
static uint32_t crc20(const uint8_t *p, size_t n) {
  uint32_t crc = 0xfffff;
  for (size_t i = 0; i < n; i++)
    for (int b = 7; b >= 0; b--) {
      uint32_t in = (p[i] >> b) & 1u;
      uint32_t top = (crc >> 19) & 1u;
      crc = (crc << 1) & 0xfffff;
      if (top ^ in)
        crc ^= 0x00009;
    }
  return crc;
}

/* Bit |i| (MSB first) of the 276-bit string fp || 0000 || crc20. */
static unsigned body_bit(const uint8_t fp[SFTD_FP_LEN], uint32_t crc,
                         size_t i) {
  if (i < 256)
    return (fp[i / 8] >> (7 - i % 8)) & 1u;
  if (i < 260)
    return 0; /* pad the data to 52 characters */
  return (crc >> (19 - (i - 260))) & 1u;
}

void sftd_fp_format(const uint8_t fp[SFTD_FP_LEN],
                    char out[SFTD_FP_TEXT_SIZE]) {
  uint32_t crc = crc20(fp, SFTD_FP_LEN);
  size_t o = FP_PREFIX_LEN;
  memcpy(out, FP_PREFIX, FP_PREFIX_LEN);
  for (size_t c = 0; c < FP_BODY_CHARS; c++) {
    unsigned v = 0;
    if (c > 0 && c % FP_GROUP == 0)
      out[o++] = '-';
    for (size_t b = 0; b < 5; b++)
      v = (v << 1) | body_bit(fp, crc, c * 5 + b);
    out[o++] = b32[v];
  }
  out[o] = '\0';
}

static int b32_value(char ch) {
  if (ch >= 'A' && ch <= 'Z')
    return ch - 'A';
  if (ch >= '2' && ch <= '7')
    return ch - '2' + 26;
  return -1;
}

int sftd_fp_parse(const char *text, size_t len, uint8_t fp[SFTD_FP_LEN]) {
  uint8_t raw[SFTD_FP_LEN];
  uint32_t crc = 0;
  unsigned pad = 0;
  size_t o = FP_PREFIX_LEN, bit = 0;
  if (!text || len != SFTD_FP_TEXT_LEN ||
      memcmp(text, FP_PREFIX, FP_PREFIX_LEN) != 0)
    return SFT_ERR_MALFORMED;
  memset(raw, 0, sizeof(raw));
  for (size_t c = 0; c < FP_BODY_CHARS; c++) {
    int v;
    if (c > 0 && c % FP_GROUP == 0 && text[o++] != '-')
      return SFT_ERR_MALFORMED;
    v = b32_value(text[o++]);
    if (v < 0)
      return SFT_ERR_MALFORMED;
    for (int b = 4; b >= 0; b--, bit++) {
      unsigned x = ((unsigned)v >> b) & 1u;
      if (bit < 256)
        raw[bit / 8] |= (uint8_t)(x << (7 - bit % 8));
      else if (bit < 260)
        pad |= x;
      else
        crc = (crc << 1) | x;
    }
  }
  if (pad || crc != crc20(raw, SFTD_FP_LEN))
    return SFT_ERR_DIGEST;
  memcpy(fp, raw, SFTD_FP_LEN);
  return 0;
}

/* ---- data directory ------------------------------------------------------ */

static int put_path(char *out, size_t cap, const char *a, const char *b) {
  int n = snprintf(out, cap, "%s%s", a, b);
  if (n < 0 || (size_t)n >= cap) {
    if (cap)
      out[0] = '\0';
    return SFT_ERR_TOO_LARGE;
  }
  return 0;
}

int sftd_datadir_resolve(const char *explicit_dir, char *out, size_t cap) {
  const char *v;
  if (!out || cap == 0)
    return SFT_ERR_INVAL;
  out[0] = '\0';
  if (explicit_dir && explicit_dir[0])
    return put_path(out, cap, explicit_dir, "");
  v = getenv("SFT_DATA_DIR");
  if (v && v[0])
    return put_path(out, cap, v, "");
  v = getenv("XDG_DATA_HOME");
  if (v && v[0] == '/')
    return put_path(out, cap, v, "/sft");
  v = getenv("HOME");
  if (v && v[0] == '/')
    return put_path(out, cap, v, "/.local/share/sft");
  return SFT_ERR_NOT_FOUND;
}

int sftd_datadir_file(const char *dir, const char *file, char *out,
                      size_t cap) {
  int n;
  if (!dir || !file || !out || cap == 0)
    return SFT_ERR_INVAL;
  n = snprintf(out, cap, "%s/%s", dir, file);
  if (n < 0 || (size_t)n >= cap) {
    out[0] = '\0';
    return SFT_ERR_TOO_LARGE;
  }
  return 0;
}

static int errno_to_sft(int e) {
  switch (e) {
  case ENOENT:
    return SFT_ERR_NOT_FOUND;
  case ENOTDIR:
  case ELOOP:
  case ENAMETOOLONG:
    return SFT_ERR_PATH;
  case ENOSPC:
  case EDQUOT:
    return SFT_ERR_NOSPACE;
  case ENOMEM:
    return SFT_ERR_NOMEM;
  default:
    return SFT_ERR_IO;
  }
}

int sftd_datadir_ensure(const char *dir, struct sftd_id_err *err) {
  char buf[PATH_MAX];
  size_t len;
  struct stat st;
  bool created = false;
  if (!dir || !dir[0]) {
    set_err(err, 0, "empty data directory path");
    return SFT_ERR_INVAL;
  }
  len = strlen(dir);
  if (len >= sizeof(buf)) {
    set_err(err, 0, "data directory path too long");
    return SFT_ERR_TOO_LARGE;
  }
  memcpy(buf, dir, len + 1);
  /* mkdir -p, each new level 0700 */
  for (size_t i = 1; i <= len; i++) {
    if (i < len && buf[i] != '/')
      continue;
    if (i < len && buf[i - 1] == '/')
      continue; /* "//" */
    buf[i] = '\0';
    if (mkdir(buf, 0700) == 0) {
      created = i == len;
    } else if (errno != EEXIST) {
      int e = errno;
      set_err(err, 0, "cannot create %s: %s", buf, strerror(e));
      return errno_to_sft(e);
    }
    if (i < len)
      buf[i] = '/';
  }
  if (stat(dir, &st) != 0) {
    int e = errno;
    set_err(err, 0, "cannot stat data directory %s: %s", dir, strerror(e));
    return errno_to_sft(e);
  }
  if (!S_ISDIR(st.st_mode)) {
    set_err(err, 0, "data directory %s is not a directory", dir);
    return SFT_ERR_PATH;
  }
  if (st.st_uid != geteuid()) {
    set_err(err, 0,
            "data directory %s is owned by uid %u, not by this user (uid %u)",
            dir, (unsigned)st.st_uid, (unsigned)geteuid());
    return SFT_ERR_PATH;
  }
  if (created && (st.st_mode & 0777) != 0700) {
    /* a umask like 0277 would leave the new directory unusable */
    if (chmod(dir, 0700) != 0) {
      int e = errno;
      set_err(err, 0, "cannot chmod 700 %s: %s", dir, strerror(e));
      return errno_to_sft(e);
    }
    st.st_mode = (st.st_mode & ~(mode_t)0777) | 0700;
  }
  if (st.st_mode & 022) {
    set_err(err, 0,
            "data directory %s is group- or world-writable (mode %04o): "
            "other users could replace its keys and trust files; "
            "fix with: chmod go-w '%s'",
            dir, (unsigned)(st.st_mode & 07777), dir);
    return SFT_ERR_PATH;
  }
  return 0;
}

/* ---- trust files: loading -------------------------------------------------
 */

/* Reads the whole file into a NUL-terminated heap buffer. A missing file
 * gives an empty buffer (and |*exists| false). */
static int load_file(const char *path, char **out, size_t *out_len,
                     bool *exists, struct sftd_id_err *err) {
  struct stat st;
  char *buf;
  size_t got = 0;
  int fd;
  *out = NULL;
  *out_len = 0;
  *exists = false;
  if (!path) {
    set_err(err, 0, "no file path");
    return SFT_ERR_INVAL;
  }
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) {
      *out = calloc(1, 1);
      return *out ? 0 : SFT_ERR_NOMEM;
    }
    set_err(err, 0, "cannot open %s: %s", path, strerror(e));
    return errno_to_sft(e);
  }
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    set_err(err, 0, "cannot stat %s: %s", path, strerror(e));
    return errno_to_sft(e);
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    set_err(err, 0, "%s is not a regular file", path);
    return SFT_ERR_PATH;
  }
  if (st.st_mode & 022) {
    close(fd);
    set_err(err, 0,
            "%s is group- or world-writable (mode %04o); fix with: "
            "chmod 600 '%s'",
            path, (unsigned)(st.st_mode & 07777), path);
    return SFT_ERR_PATH;
  }
  if (st.st_size > SFTD_TRUST_MAX_BYTES) {
    close(fd);
    set_err(err, 0, "%s is larger than %d bytes", path, SFTD_TRUST_MAX_BYTES);
    return SFT_ERR_TOO_LARGE;
  }
  buf = malloc((size_t)SFTD_TRUST_MAX_BYTES + 1);
  if (!buf) {
    close(fd);
    return SFT_ERR_NOMEM;
  }
  /* read to EOF, never past the bound, even if the file grows */
  for (;;) {
    ssize_t n = read(fd, buf + got, (size_t)SFTD_TRUST_MAX_BYTES + 1 - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      free(buf);
      set_err(err, 0, "cannot read %s: %s", path, strerror(e));
      return errno_to_sft(e);
    }
    if (n == 0)
      break;
    got += (size_t)n;
    if (got > SFTD_TRUST_MAX_BYTES) {
      close(fd);
      free(buf);
      set_err(err, 0, "%s is larger than %d bytes", path, SFTD_TRUST_MAX_BYTES);
      return SFT_ERR_TOO_LARGE;
    }
  }
  close(fd);
  buf[got] = '\0';
  *out = buf;
  *out_len = got;
  *exists = true;
  return 0;
}

/* ---- trust files: lines ---------------------------------------------------
 */

enum kind { KNOWN, TRUSTED };

struct entry {
  bool is_entry;    /* false: blank or comment line */
  const char *host; /* KNOWN: HOST:PORT token */
  size_t host_len;
  uint8_t fp[SFTD_FP_LEN];
  const char *label; /* TRUSTED: label (may be empty) */
  size_t label_len;
};

static bool is_ws(char c) {
  return c == ' ' || c == '\t';
}

static char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int hostport_check_n(const char *s, size_t n) {
  size_t colon, i, hl;
  unsigned long port = 0;
  if (n == 0 || n > SFTD_HOSTPORT_MAX)
    return SFT_ERR_INVAL;
  colon = n;
  while (colon > 0 && s[colon - 1] != ':')
    colon--;
  if (colon == 0)
    return SFT_ERR_INVAL;
  colon--; /* index of the last ':' */
  /* port */
  if (colon + 1 == n || n - colon - 1 > 5 || s[colon + 1] == '0')
    return SFT_ERR_INVAL;
  for (i = colon + 1; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return SFT_ERR_INVAL;
    port = port * 10 + (unsigned long)(s[i] - '0');
  }
  if (port < 1 || port > 65535)
    return SFT_ERR_INVAL;
  hl = colon;
  if (hl == 0)
    return SFT_ERR_INVAL;
  if (s[0] == '[') {
    bool zone = false, colon_seen = false;
    if (hl < 4 || s[hl - 1] != ']' || hl - 2 > 64)
      return SFT_ERR_INVAL;
    for (i = 1; i < hl - 1; i++) {
      char c = s[i];
      if (zone) {
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
          return SFT_ERR_INVAL;
      } else if (c == '%' && i > 1 && i + 1 < hl - 1) {
        zone = true;
      } else if (c == ':') {
        colon_seen = true;
      } else if (!((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                   (c >= '0' && c <= '9') || c == '.')) {
        return SFT_ERR_INVAL;
      }
    }
    return colon_seen ? 0 : SFT_ERR_INVAL;
  }
  if (hl > 253 || s[0] == '.' || s[0] == '-')
    return SFT_ERR_INVAL;
  for (i = 0; i < hl; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_'))
      return SFT_ERR_INVAL;
  }
  return 0;
}

int sftd_hostport_check(const char *hostport) {
  if (!hostport)
    return SFT_ERR_INVAL;
  return hostport_check_n(hostport, strnlen(hostport, SFTD_HOSTPORT_MAX + 1));
}

static bool host_eq(const char *a, size_t an, const char *b, size_t bn) {
  if (an != bn)
    return false;
  for (size_t i = 0; i < an; i++)
    if (lower(a[i]) != lower(b[i]))
      return false;
  return true;
}

/* NULL if the line is printable text (tabs allowed as separators), else
 * what is wrong with it. */
static const char *line_text_problem(const char *s, size_t n) {
  size_t a = 0;
  for (;;) {
    size_t b = a;
    while (b < n && s[b] != '\t')
      b++;
    if (sft_text_check(s + a, b - a) != 0) {
      for (size_t j = a; j < b; j++)
        if ((unsigned char)s[j] < 0x20 || s[j] == 0x7f)
          return "control character";
      return "invalid UTF-8 or invisible character";
    }
    if (b >= n)
      return NULL;
    a = b + 1;
  }
}

/* Parses one line (without its '\n'; a final '\r' already removed). */
static int parse_line(enum kind k, const char *s, size_t n, struct entry *e,
                      const char **why) {
  size_t i = 0, start;
  int rc;
  memset(e, 0, sizeof(*e));
  *why = line_text_problem(s, n);
  if (*why)
    return SFT_ERR_MALFORMED;
  while (i < n && is_ws(s[i]))
    i++;
  if (i == n || s[i] == '#')
    return 0;
  e->is_entry = true;
  if (k == KNOWN) {
    start = i;
    while (i < n && !is_ws(s[i]))
      i++;
    e->host = s + start;
    e->host_len = i - start;
    if (hostport_check_n(e->host, e->host_len) != 0) {
      *why = "expected HOST:PORT (port 1-65535)";
      return SFT_ERR_MALFORMED;
    }
    while (i < n && is_ws(s[i]))
      i++;
  }
  start = i;
  while (i < n && !is_ws(s[i]))
    i++;
  rc = sftd_fp_parse(s + start, i - start, e->fp);
  if (rc == SFT_ERR_DIGEST) {
    *why = "fingerprint checksum mismatch (typo?)";
    return SFT_ERR_MALFORMED;
  }
  if (rc != 0) {
    *why = k == KNOWN ? "expected a fingerprint SFT1-... after HOST:PORT"
                      : "expected a fingerprint SFT1-...";
    return SFT_ERR_MALFORMED;
  }
  while (i < n && is_ws(s[i]))
    i++;
  if (k == KNOWN) {
    if (i != n) {
      *why = "unexpected text after the fingerprint";
      return SFT_ERR_MALFORMED;
    }
    return 0;
  }
  /* label: the rest, trailing blanks trimmed */
  while (n > i && is_ws(s[n - 1]))
    n--;
  if (n - i > SFTD_LABEL_MAX) {
    *why = "label longer than 200 bytes";
    return SFT_ERR_MALFORMED;
  }
  e->label = s + i;
  e->label_len = n - i;
  return 0;
}

/* Calls |cb| for every line of |buf| (|len| bytes), in order, with its
 * parsed form; stops at the first malformed line or when |cb| returns
 * non-zero. |cb| gets the raw line including its '\n' (if any). */
typedef int (*line_cb)(void *ctx, const struct entry *e, const char *raw,
                       size_t raw_len);

static int scan(enum kind k, const char *path, const char *buf, size_t len,
                line_cb cb, void *ctx, struct sftd_id_err *err) {
  size_t pos = 0;
  unsigned line = 0;
  while (pos < len) {
    const char *nl = memchr(buf + pos, '\n', len - pos);
    size_t end = nl ? (size_t)(nl - buf) : len;
    size_t n = end - pos, raw = n + (nl ? 1 : 0);
    struct entry e;
    const char *why = NULL;
    int rc;
    if (++line > SFTD_TRUST_MAX_LINES) {
      set_err(err, line, "%s: more than %d lines", path, SFTD_TRUST_MAX_LINES);
      return SFT_ERR_TOO_LARGE;
    }
    if (n > SFTD_TRUST_MAX_LINE) {
      set_err(err, line, "%s:%u: line longer than %d bytes", path, line,
              SFTD_TRUST_MAX_LINE);
      return SFT_ERR_MALFORMED;
    }
    if (n > 0 && buf[pos + n - 1] == '\r')
      n--; /* tolerate CRLF */
    rc = parse_line(k, buf + pos, n, &e, &why);
    if (rc != 0) {
      set_err(err, line, "%s:%u: %s", path, line, why);
      return rc;
    }
    rc = cb(ctx, &e, buf + pos, raw);
    if (rc != 0)
      return rc;
    pos += raw;
  }
  return 0;
}

/* ---- trust files: atomic rewrite ----------------------------------------- */

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w < 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int rewrite(const char *path, const char *data, size_t len,
                   struct sftd_id_err *err) {
  char tmp[PATH_MAX], dir[PATH_MAX];
  const char *slash;
  int fd, dfd, e;
  if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp)) {
    set_err(err, 0, "path too long: %s", path);
    return SFT_ERR_TOO_LARGE;
  }
  fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
  if (fd < 0) {
    e = errno;
    set_err(err, 0, "cannot create a temporary file next to %s: %s", path,
            strerror(e));
    return errno_to_sft(e);
  }
  if (fchmod(fd, 0600) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0)
    goto fail;
  if (close(fd) != 0) {
    fd = -1;
    goto fail;
  }
  fd = -1;
  if (rename(tmp, path) != 0)
    goto fail;
  /* make the rename durable */
  slash = strrchr(path, '/');
  if (slash) {
    size_t dl = slash == path ? 1 : (size_t)(slash - path);
    memcpy(dir, path, dl);
    dir[dl] = '\0';
  } else {
    strcpy(dir, ".");
  }
  dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  return 0;
fail:
  e = errno;
  if (fd >= 0)
    close(fd);
  unlink(tmp);
  set_err(err, 0, "cannot write %s: %s", path, strerror(e));
  return errno_to_sft(e);
}

/* An output buffer for rewrites; never larger than the file bound plus one
 * line. */
struct out {
  char *p;
  size_t len, cap;
};

static int out_put(struct out *o, const char *s, size_t n) {
  if (o->len + n > o->cap)
    return SFT_ERR_TOO_LARGE;
  memcpy(o->p + o->len, s, n);
  o->len += n;
  return 0;
}

/* Copies a raw line; adds the '\n' a last line may lack. */
static int out_line(struct out *o, const char *raw, size_t n) {
  int rc = out_put(o, raw, n);
  if (rc == 0 && (n == 0 || raw[n - 1] != '\n'))
    rc = out_put(o, "\n", 1);
  return rc;
}

/* ---- known_peers ----------------------------------------------------------
 */

struct known_ctx {
  const char *host;
  size_t host_len;
  const uint8_t *fp;
  bool seen, match;
  struct out *out; /* rewrite: lines to keep */
};

static int known_cb(void *vctx, const struct entry *e, const char *raw,
                    size_t raw_len) {
  struct known_ctx *c = vctx;
  bool mine =
      e->is_entry && host_eq(e->host, e->host_len, c->host, c->host_len);
  if (mine) {
    c->seen = true;
    if (c->fp && memcmp(e->fp, c->fp, SFTD_FP_LEN) == 0)
      c->match = true;
  }
  if (c->out && !mine)
    return out_line(c->out, raw, raw_len);
  return 0;
}

static int known_begin(const char *path, const char *hostport,
                       struct sftd_id_err *err) {
  if (err) {
    err->line = 0;
    err->msg[0] = '\0';
  }
  if (!path) {
    set_err(err, 0, "no file path");
    return SFT_ERR_INVAL;
  }
  if (sftd_hostport_check(hostport) != 0) {
    set_err(err, 0, "invalid HOST:PORT");
    return SFT_ERR_INVAL;
  }
  return 0;
}

int sftd_known_peers_check(const char *path, const char *hostport,
                           const uint8_t fp[SFTD_FP_LEN],
                           struct sftd_id_err *err) {
  struct known_ctx c = {0};
  char *buf;
  size_t len;
  bool exists;
  int rc = known_begin(path, hostport, err);
  if (rc != 0)
    return rc;
  if (!fp)
    return SFT_ERR_INVAL;
  rc = load_file(path, &buf, &len, &exists, err);
  if (rc != 0)
    return rc;
  c.host = hostport;
  c.host_len = strlen(hostport);
  c.fp = fp;
  rc = scan(KNOWN, path, buf, len, known_cb, &c, err);
  free(buf);
  if (rc != 0)
    return rc;
  if (!c.seen)
    return SFT_ERR_NOT_FOUND;
  if (!c.match) {
    set_err(err, 0, "the key of %s differs from the one recorded in %s",
            hostport, path);
    return SFT_ERR_AUTH;
  }
  return 0;
}

/* Loads, filters out |hostport|'s entries and, if |fp|, appends one. */
static int known_edit(const char *path, const char *hostport, const uint8_t *fp,
                      bool must_exist, struct sftd_id_err *err) {
  struct known_ctx c = {0};
  struct out o = {0};
  char *buf;
  size_t len;
  bool exists;
  int rc = known_begin(path, hostport, err);
  if (rc != 0)
    return rc;
  rc = load_file(path, &buf, &len, &exists, err);
  if (rc != 0)
    return rc;
  o.cap = len + SFTD_TRUST_MAX_LINE + 2;
  o.p = malloc(o.cap);
  if (!o.p) {
    free(buf);
    return SFT_ERR_NOMEM;
  }
  c.host = hostport;
  c.host_len = strlen(hostport);
  c.out = &o;
  rc = scan(KNOWN, path, buf, len, known_cb, &c, err);
  free(buf);
  if (rc == 0 && must_exist && !c.seen)
    rc = SFT_ERR_NOT_FOUND;
  if (rc == 0 && fp) {
    char text[SFTD_FP_TEXT_SIZE], line[SFTD_HOSTPORT_MAX + 80];
    size_t n = 0;
    for (const char *h = hostport; *h; h++)
      line[n++] = lower(*h);
    line[n++] = ' ';
    sftd_fp_format(fp, text);
    memcpy(line + n, text, SFTD_FP_TEXT_LEN);
    n += SFTD_FP_TEXT_LEN;
    line[n++] = '\n';
    rc = out_put(&o, line, n);
  }
  if (rc == 0 && o.len > SFTD_TRUST_MAX_BYTES) {
    set_err(err, 0, "%s would exceed %d bytes", path, SFTD_TRUST_MAX_BYTES);
    rc = SFT_ERR_TOO_LARGE;
  }
  if (rc == 0)
    rc = rewrite(path, o.p, o.len, err);
  free(o.p);
  return rc;
}

int sftd_known_peers_set(const char *path, const char *hostport,
                         const uint8_t fp[SFTD_FP_LEN],
                         struct sftd_id_err *err) {
  if (!fp)
    return SFT_ERR_INVAL;
  return known_edit(path, hostport, fp, false, err);
}

int sftd_known_peers_remove(const char *path, const char *hostport,
                            struct sftd_id_err *err) {
  return known_edit(path, hostport, NULL, true, err);
}

/* ---- trusted_peers --------------------------------------------------------
 */

struct trusted_ctx {
  const uint8_t *fp;
  bool found;
  char *label;
  size_t label_cap;
  struct out *out;
};

static int trusted_cb(void *vctx, const struct entry *e, const char *raw,
                      size_t raw_len) {
  struct trusted_ctx *c = vctx;
  bool mine = e->is_entry && memcmp(e->fp, c->fp, SFTD_FP_LEN) == 0;
  if (mine && !c->found) {
    c->found = true;
    if (c->label && c->label_cap > 0) {
      size_t n =
          e->label_len < c->label_cap - 1 ? e->label_len : c->label_cap - 1;
      while (n > 0 && n < e->label_len &&
             ((unsigned char)e->label[n] & 0xc0) == 0x80)
        n--; /* cut at a character boundary */
      memcpy(c->label, e->label, n);
      c->label[n] = '\0';
    }
  }
  if (c->out && !mine)
    return out_line(c->out, raw, raw_len);
  return 0;
}

static int trusted_load_scan(const char *path, struct trusted_ctx *c,
                             struct sftd_id_err *err) {
  char *buf;
  size_t len;
  bool exists;
  int rc;
  if (err) {
    err->line = 0;
    err->msg[0] = '\0';
  }
  if (!c->fp)
    return SFT_ERR_INVAL;
  rc = load_file(path, &buf, &len, &exists, err);
  if (rc != 0)
    return rc;
  if (c->out) {
    c->out->cap = len + SFTD_TRUST_MAX_LINE + 2;
    c->out->p = malloc(c->out->cap);
    if (!c->out->p) {
      free(buf);
      return SFT_ERR_NOMEM;
    }
  }
  rc = scan(TRUSTED, path, buf, len, trusted_cb, c, err);
  free(buf);
  return rc;
}

int sftd_trusted_peers_lookup(const char *path, const uint8_t fp[SFTD_FP_LEN],
                              char *label, size_t label_cap,
                              struct sftd_id_err *err) {
  struct trusted_ctx c = {.fp = fp, .label = label, .label_cap = label_cap};
  int rc;
  if (label && label_cap > 0)
    label[0] = '\0';
  rc = trusted_load_scan(path, &c, err);
  if (rc != 0)
    return rc;
  return c.found ? 0 : SFT_ERR_NOT_FOUND;
}

int sftd_trusted_peers_add(const char *path, const uint8_t fp[SFTD_FP_LEN],
                           const char *label, struct sftd_id_err *err) {
  struct out o = {0};
  struct trusted_ctx c = {.fp = fp, .out = &o};
  size_t ll = label ? strlen(label) : 0;
  char line[SFTD_FP_TEXT_SIZE + SFTD_LABEL_MAX + 2];
  size_t n;
  int rc;
  if (ll > SFTD_LABEL_MAX || sft_text_check(label, ll) != 0 ||
      (ll > 0 && (label[0] == ' ' || label[ll - 1] == ' '))) {
    set_err(err, 0, "invalid label (at most %d bytes of printable text)",
            SFTD_LABEL_MAX);
    return SFT_ERR_INVAL;
  }
  rc = trusted_load_scan(path, &c, err);
  if (rc == 0 && c.found)
    rc = SFT_ERR_EXISTS;
  if (rc == 0) {
    sftd_fp_format(fp, line);
    n = SFTD_FP_TEXT_LEN;
    if (ll > 0) {
      line[n++] = ' ';
      memcpy(line + n, label, ll);
      n += ll;
    }
    line[n++] = '\n';
    rc = out_put(&o, line, n);
  }
  if (rc == 0 && o.len > SFTD_TRUST_MAX_BYTES) {
    set_err(err, 0, "%s would exceed %d bytes", path, SFTD_TRUST_MAX_BYTES);
    rc = SFT_ERR_TOO_LARGE;
  }
  if (rc == 0)
    rc = rewrite(path, o.p, o.len, err);
  free(o.p);
  return rc;
}

int sftd_trusted_peers_remove(const char *path, const uint8_t fp[SFTD_FP_LEN],
                              struct sftd_id_err *err) {
  struct out o = {0};
  struct trusted_ctx c = {.fp = fp, .out = &o};
  int rc = trusted_load_scan(path, &c, err);
  if (rc == 0 && !c.found)
    rc = SFT_ERR_NOT_FOUND;
  if (rc == 0)
    rc = rewrite(path, o.p, o.len, err);
  free(o.p);
  return rc;
}
