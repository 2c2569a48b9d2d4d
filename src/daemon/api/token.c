/*
 * The API bearer token file: created once with 256 random bits (hex) and
 * mode 0600, read back on every start. See sftd_http_token_load_or_create.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/api/http.h"

#define TOKEN_BYTES 32
#define FILE_MAX 512 /* read at most this much */

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return SFT_ERR_IO;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int create_token(const char *path) {
  static const char hex[] = "0123456789abcdef";
  unsigned char raw[TOKEN_BYTES];
  char txt[2 * TOKEN_BYTES + 1];
  size_t got = 0;
  int fd, rc;

  while (got < sizeof(raw)) {
    ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return SFT_ERR_IO;
    got += (size_t)n;
  }
  for (size_t i = 0; i < sizeof(raw); i++) {
    txt[2 * i] = hex[raw[i] >> 4];
    txt[2 * i + 1] = hex[raw[i] & 15];
  }
  txt[2 * TOKEN_BYTES] = '\n';
  explicit_bzero(raw, sizeof(raw));
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    explicit_bzero(txt, sizeof(txt));
    return errno == EEXIST ? SFT_ERR_EXISTS : SFT_ERR_IO;
  }
  rc = write_all(fd, txt, sizeof(txt));
  explicit_bzero(txt, sizeof(txt));
  if (!rc && fsync(fd))
    rc = SFT_ERR_IO;
  if (close(fd) && !rc)
    rc = SFT_ERR_IO;
  if (rc)
    unlink(path);
  return rc;
}

static int read_token(const char *path, char *out, size_t cap) {
  char buf[FILE_MAX + 1];
  struct stat st;
  size_t len = 0, start = 0;
  int fd, rc = 0;

  fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? SFT_ERR_NOT_FOUND : SFT_ERR_IO;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
    close(fd);
    return SFT_ERR_IO;
  }
  if (st.st_mode & 077) {
    close(fd);
    return SFT_ERR_AUTH;
  }
  while (len < sizeof(buf)) {
    ssize_t n = read(fd, buf + len, sizeof(buf) - len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      rc = SFT_ERR_IO;
      break;
    }
    if (n == 0)
      break;
    len += (size_t)n;
  }
  close(fd);
  if (!rc && len > FILE_MAX)
    rc = SFT_ERR_MALFORMED;
  while (!rc && len > 0 &&
         (buf[len - 1] == '\n' || buf[len - 1] == '\r' ||
          buf[len - 1] == ' ' || buf[len - 1] == '\t'))
    len--;
  while (!rc && start < len && (buf[start] == ' ' || buf[start] == '\t'))
    start++;
  if (!rc && (len - start < 16 || len - start > SFTD_HTTP_TOKEN_MAX))
    rc = SFT_ERR_MALFORMED;
  for (size_t i = start; !rc && i < len; i++)
    if (buf[i] <= 0x20 || buf[i] >= 0x7f)
      rc = SFT_ERR_MALFORMED;
  if (!rc && len - start + 1 > cap)
    rc = SFT_ERR_INVAL;
  if (!rc) {
    memcpy(out, buf + start, len - start);
    out[len - start] = '\0';
  }
  explicit_bzero(buf, sizeof(buf));
  return rc;
}

int sftd_http_token_load_or_create(const char *path, char *out, size_t cap) {
  int rc;
  if (!path || !out || cap < 2 * TOKEN_BYTES + 1)
    return SFT_ERR_INVAL;
  out[0] = '\0';
  rc = read_token(path, out, cap);
  if (rc != SFT_ERR_NOT_FOUND)
    return rc;
  rc = create_token(path);
  if (rc && rc != SFT_ERR_EXISTS) /* EXISTS: lost a race, read theirs */
    return rc;
  return read_token(path, out, cap);
}
