#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "apiclient.h"
#include "daemon/sftd.h"

#define API_TIMEOUT_MS 10000
#define API_MAX_RESPONSE (8u << 20)

int api_init(struct api *a, const char *addr, const char *data_dir) {
  char dir[4096], path[4200];
  const char *colon;
  FILE *f;
  size_t n;
  memset(a, 0, sizeof(*a));
  if (!addr)
    addr = getenv("SFT_API_API_BIND_ADDR");
  if (!addr || !*addr)
    addr = "127.0.0.1:8080";
  colon = strrchr(addr, ':');
  if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(a->host)) {
    snprintf(a->why, sizeof(a->why), "bad API address '%s' (HOST:PORT)", addr);
    return -1;
  }
  snprintf(a->host, sizeof(a->host), "%.*s", (int)(colon - addr), addr);
  if (a->host[0] == '[') { /* [v6] */
    memmove(a->host, a->host + 1, strlen(a->host));
    a->host[strcspn(a->host, "]")] = 0;
  }
  a->port = (unsigned)strtoul(colon + 1, NULL, 10);
  if (!a->port || a->port > 65535) {
    snprintf(a->why, sizeof(a->why), "bad API port in '%s'", addr);
    return -1;
  }
  if (sftd_datadir_resolve(data_dir, dir, sizeof(dir)) ||
      snprintf(path, sizeof(path), "%s/api.token", dir) >= (int)sizeof(path)) {
    snprintf(a->why, sizeof(a->why), "no data directory (pass --data-dir)");
    return -1;
  }
  f = fopen(path, "r");
  if (!f) {
    snprintf(a->why, sizeof(a->why),
             "cannot read the API token %s: %s (is `sft daemon` running with "
             "this data directory?)",
             path, strerror(errno));
    return -1;
  }
  n = fread(a->token, 1, sizeof(a->token) - 1, f);
  fclose(f);
  a->token[n] = 0;
  a->token[strcspn(a->token, "\r\n")] = 0;
  return 0;
}

static int connect_to(struct api *a, int timeout_ms) {
  struct addrinfo hints = {0}, *ai = NULL;
  char port[8];
  int fd, rv;
  struct pollfd p;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(port, sizeof(port), "%u", a->port);
  if (getaddrinfo(a->host, port, &hints, &ai) || !ai) {
    snprintf(a->why, sizeof(a->why), "cannot resolve %s", a->host);
    return -1;
  }
  fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    freeaddrinfo(ai);
    return -1;
  }
  rv = connect(fd, ai->ai_addr, ai->ai_addrlen);
  freeaddrinfo(ai);
  if (rv && errno != EINPROGRESS)
    goto fail;
  p.fd = fd;
  p.events = POLLOUT;
  if (poll(&p, 1, timeout_ms) != 1)
    goto fail;
  {
    int err = 0;
    socklen_t l = sizeof(err);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
      errno = err;
      goto fail;
    }
  }
  fcntl(fd, F_SETFL, 0);
  return fd;
fail:
  snprintf(a->why, sizeof(a->why), "no daemon at %s:%u (%s)", a->host,
           a->port, strerror(errno ? errno : ETIMEDOUT));
  close(fd);
  return -1;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

int api_call(struct api *a, const char *method, const char *path,
             const json_t *body, json_t **out) {
  char *js = body ? json_dumps(body, JSON_COMPACT) : NULL;
  char hdr[1024], *buf = NULL, *p;
  size_t len = 0, cap = 0, clen = 0, hlen;
  int fd, status = -1;
  if (out)
    *out = NULL;
  fd = connect_to(a, 2000);
  if (fd < 0) {
    free(js);
    return -1;
  }
  {
    struct timeval tv = {API_TIMEOUT_MS / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }
  snprintf(hdr, sizeof(hdr),
           "%s %s HTTP/1.1\r\nHost: %s:%u\r\nAuthorization: Bearer %s\r\n"
           "Connection: close\r\n%s%s%zu\r\n\r\n",
           method, path, a->host, a->port, a->token,
           js ? "Content-Type: application/json\r\n" : "", "Content-Length: ",
           js ? strlen(js) : 0);
  if (write_all(fd, hdr, strlen(hdr)) || (js && write_all(fd, js, strlen(js)))) {
    snprintf(a->why, sizeof(a->why), "cannot talk to the daemon");
    goto out;
  }
  for (;;) {
    ssize_t r;
    if (len + 4096 + 1 > cap) {
      char *nb;
      if (cap >= API_MAX_RESPONSE)
        break;
      cap = cap ? cap * 2 : 16384;
      nb = realloc(buf, cap);
      if (!nb)
        goto out;
      buf = nb;
    }
    r = read(fd, buf + len, cap - len - 1);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    len += (size_t)r;
  }
  if (!buf || len < 12 || strncmp(buf, "HTTP/1.", 7)) {
    snprintf(a->why, sizeof(a->why), "the daemon sent no HTTP answer");
    goto out;
  }
  buf[len] = 0;
  status = atoi(buf + 9);
  p = strstr(buf, "\r\n\r\n");
  hlen = p ? (size_t)(p - buf) + 4 : len;
  clen = len - hlen;
  if (out && clen) {
    json_error_t e;
    *out = json_loadb(buf + hlen, clen, 0, &e);
  }
out:
  close(fd);
  free(buf);
  free(js);
  return status;
}

int api_alive(struct api *a) {
  int fd = connect_to(a, 300);
  if (fd < 0)
    return 0;
  close(fd);
  return 1;
}

const char *api_error_text(const json_t *body, int status) {
  const char *m = json_string_value(
      json_object_get(json_object_get(body, "error"), "message"));
  if (m)
    return m;
  return status == 401 ? "the daemon refused the API token"
                       : "the daemon answered with an error";
}
