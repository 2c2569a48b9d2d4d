/*
 * WebSocket /ws of the HTTP API layer. The server runs on a libuv loop in
 * this process (127.0.0.1:0); a client thread speaks RFC 6455 over blocking
 * sockets with a minimal client written here (handshake with the
 * Sec-WebSocket-Accept check, masked frames, server frame parser). The
 * client asks the loop to broadcast through loop_call(), which runs a
 * function on the loop thread and waits for it. Each run ends with
 * sftd_http_free and uv_loop_close() == 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/api/http.h"

#define TOKEN "test-token-0123456789abcdef"
#define AUTH "Authorization: Bearer " TOKEN "\r\n"

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- a minimal WebSocket client ------------------------------------------- */

#define CBUF (256 * 1024)

struct wconn {
  int fd;
  int status;         /* HTTP status of the upgrade answer */
  char hdrs[2048];    /* answer headers, lower-cased */
  char body[1024];    /* body of a refusal */
  uint8_t *buf;       /* received, not yet parsed */
  size_t len;
};

static int tconnect(int port, int rcvbuf) {
  struct sockaddr_in a;
  struct timeval tv = {.tv_sec = 10};
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  if (fd < 0)
    return -1;
  if (rcvbuf)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
    close(fd);
    return -1;
  }
  return fd;
}

static int send_all(int fd, const void *p, size_t n) {
  const uint8_t *b = p;
  while (n) {
    ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
    if (w <= 0)
      return -1;
    b += w;
    n -= (size_t)w;
  }
  return 0;
}

static int cfill(struct wconn *c) {
  if (c->len == CBUF)
    return -1;
  ssize_t n = recv(c->fd, c->buf + c->len, CBUF - c->len, 0);
  if (n <= 0)
    return -1;
  c->len += (size_t)n;
  return 0;
}

static void b64(const uint8_t *in, size_t n, char *out) {
  static const char t[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i, o = 0;
  for (i = 0; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = t[v >> 18];
    out[o++] = t[(v >> 12) & 63];
    out[o++] = t[(v >> 6) & 63];
    out[o++] = t[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = t[v >> 18];
    out[o++] = t[(v >> 12) & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = t[v >> 18];
    out[o++] = t[(v >> 12) & 63];
    out[o++] = t[(v >> 6) & 63];
    out[o++] = '=';
  }
  out[o] = '\0';
}

/* Opens a WebSocket on |target| ("/ws?x") with |extra| header lines.
 * Returns 1 when upgraded (101 and a correct Sec-WebSocket-Accept), 0 when
 * refused (c->status, c->body), -1 on a transport error. */
static int ws_open(struct wconn *c, int port, const char *target,
                   const char *extra, int rcvbuf) {
  uint8_t nonce[16], dig[20];
  char key[32], expect[64], acc[128], req[2048], *e;
  memset(c, 0, offsetof(struct wconn, buf));
  if (!c->buf && !(c->buf = malloc(CBUF)))
    return -1;
  c->len = 0;
  c->fd = tconnect(port, rcvbuf);
  if (c->fd < 0)
    return -1;
  for (int i = 0; i < 16; i++)
    nonce[i] = (uint8_t)(rand() & 0xff);
  b64(nonce, 16, key);
  snprintf(acc, sizeof(acc), "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
  gnutls_hash_fast(GNUTLS_DIG_SHA1, acc, strlen(acc), dig);
  b64(dig, 20, expect);
  snprintf(req, sizeof(req),
           "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
           "Sec-WebSocket-Version: 13\r\n%s\r\n",
           target, port, key, extra ? extra : "");
  if (send_all(c->fd, req, strlen(req)))
    return -1;
  while (!(e = memmem(c->buf, c->len, "\r\n\r\n", 4)))
    if (cfill(c))
      return -1;
  size_t hl = (size_t)(e - (char *)c->buf) + 4;
  if (hl >= sizeof(c->hdrs))
    return -1;
  memcpy(c->hdrs, c->buf, hl);
  c->hdrs[hl] = '\0';
  memmove(c->buf, c->buf + hl, c->len - hl);
  c->len -= hl;
  if (sscanf(c->hdrs, "HTTP/1.%*d %d", &c->status) != 1)
    return -1;
  for (char *p = c->hdrs; *p; p++)
    if (*p >= 'A' && *p <= 'Z')
      *p = (char)(*p - 'A' + 'a');
  if (c->status != 101) {
    char *cl = strstr(c->hdrs, "content-length:");
    size_t n = cl ? strtoul(cl + 15, NULL, 10) : 0;
    while (c->len < n && n < sizeof(c->body))
      if (cfill(c))
        break;
    if (n < sizeof(c->body) && c->len >= n) {
      memcpy(c->body, c->buf, n);
      c->body[n] = '\0';
    }
    close(c->fd);
    c->fd = -1;
    return 0;
  }
  /* the accept value is case-sensitive base64: find it in the raw copy */
  char want[96];
  snprintf(want, sizeof(want), "sec-websocket-accept: %s", expect);
  for (char *p = want; *p; p++)
    if (*p >= 'A' && *p <= 'Z')
      *p = (char)(*p - 'A' + 'a');
  if (!strstr(c->hdrs, want))
    return -1;
  return 1;
}

static void ws_close_fd(struct wconn *c) {
  if (c->fd >= 0)
    close(c->fd);
  c->fd = -1;
  free(c->buf);
  c->buf = NULL;
}

/* Sends one masked frame with the first byte |b0| (FIN/RSV/opcode). */
static int ws_frame(struct wconn *c, uint8_t b0, const void *data,
                    size_t len) {
  uint8_t *f = malloc(len + 14), mask[4];
  size_t h = 0;
  int rc;
  for (int i = 0; i < 4; i++)
    mask[i] = (uint8_t)(rand() & 0xff);
  f[h++] = b0;
  if (len < 126) {
    f[h++] = (uint8_t)(0x80 | len);
  } else if (len < 65536) {
    f[h++] = 0x80 | 126;
    f[h++] = (uint8_t)(len >> 8);
    f[h++] = (uint8_t)len;
  } else {
    f[h++] = 0x80 | 127;
    for (int i = 7; i >= 0; i--)
      f[h++] = (uint8_t)((uint64_t)len >> (8 * i));
  }
  memcpy(f + h, mask, 4);
  h += 4;
  for (size_t i = 0; i < len; i++)
    f[h + i] = ((const uint8_t *)data)[i] ^ mask[i & 3];
  rc = send_all(c->fd, f, h + len);
  free(f);
  return rc;
}

static int ws_text(struct wconn *c, const char *s) {
  return ws_frame(c, 0x81, s, strlen(s));
}

/* Reads one server frame. Returns its opcode (1 text, 8 close, ...) with
 * the payload in |out| (NUL-terminated, |cap| > payload), or -1 (EOF,
 * timeout, malformed, masked, too big). */
static int ws_read(struct wconn *c, char *out, size_t cap, size_t *olen) {
  for (;;) {
    if (c->len >= 2) {
      uint8_t b0 = c->buf[0], b1 = c->buf[1];
      size_t h = 2;
      uint64_t n = b1 & 0x7f;
      if (b1 & 0x80)
        return -1; /* servers never mask */
      if (n == 126) {
        if (c->len < 4)
          goto more;
        n = (uint64_t)c->buf[2] << 8 | c->buf[3];
        h = 4;
      } else if (n == 127) {
        if (c->len < 10)
          goto more;
        n = 0;
        for (int i = 0; i < 8; i++)
          n = n << 8 | c->buf[2 + i];
        h = 10;
      }
      if (n + 1 > cap || h + n > CBUF || !(b0 & 0x80))
        return -1;
      if (c->len >= h + n) {
        memcpy(out, c->buf + h, n);
        out[n] = '\0';
        *olen = n;
        memmove(c->buf, c->buf + h + n, c->len - h - n);
        c->len -= h + n;
        return b0 & 0x0f;
      }
    }
  more:
    if (cfill(c))
      return -1;
  }
}

/* Next text message (pings answered, nothing else expected). */
static int ws_recv_text(struct wconn *c, char *out, size_t cap) {
  size_t n;
  for (;;) {
    int op = ws_read(c, out, cap, &n);
    if (op == 1)
      return (int)n;
    if (op == 9) {
      ws_frame(c, 0x8a, out, n);
      continue;
    }
    return -1;
  }
}

/* Reads until a close frame: its code, 0 at EOF without one, -1 timeout. */
static int ws_wait_close(struct wconn *c) {
  static char big[CBUF];
  size_t n;
  for (;;) {
    int op = ws_read(c, big, sizeof(big), &n);
    if (op == 8)
      return n >= 2 ? ((uint8_t)big[0] << 8 | (uint8_t)big[1]) : 1005;
    if (op < 0)
      return errno == EAGAIN || errno == EWOULDBLOCK ? -1 : 0;
  }
}

/* ---- a tiny HTTP request ---------------------------------------------------- */

static int http_get_status(int port, const char *path) {
  char req[256], buf[1024];
  int fd = tconnect(port, 0), st = 0;
  size_t len = 0;
  if (fd < 0)
    return -1;
  snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: a\r\n" AUTH "\r\n",
           path);
  if (!send_all(fd, req, strlen(req))) {
    while (len < sizeof(buf) - 1 && !memmem(buf, len, "\r\n", 2)) {
      ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
      if (n <= 0)
        break;
      len += (size_t)n;
    }
    buf[len] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", &st) != 1)
      st = -1;
  }
  close(fd);
  return st;
}

/* ---- harness ------------------------------------------------------------------ */

struct env;
typedef void (*client_fn)(struct env *e);
typedef void (*loop_fn)(struct env *e, void *arg);

#define NLOAD 100
#define NMSG 20

struct env {
  uv_loop_t loop;
  sftd_http *srv;
  int port;
  client_fn client;
  pthread_t th;
  uv_async_t done, call;
  uv_timer_t watchdog;
  int timed_out;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  loop_fn call_fn;
  void *call_arg;
  int call_done;
  struct sftd_http_stats st;
  /* loop-side facts */
  size_t count;
  int rc;
  uint64_t got_client;
  char got_msg[256];
  uv_timer_t tick;
  int ticks;
  uint64_t tick_t0, tick_t1;
  uint64_t bcast_ns[NMSG];
  /* connections left open for the shutdown test */
  struct wconn keep[4];
  int nkeep;
};

static void *client_main(void *arg) {
  struct env *e = arg;
  e->client(e);
  uv_async_send(&e->done);
  return NULL;
}

static void on_done(uv_async_t *a) {
  struct env *e = a->data;
  sftd_http_get_stats(e->srv, &e->st);
  uv_close((uv_handle_t *)a, NULL);
  uv_close((uv_handle_t *)&e->call, NULL);
  uv_timer_stop(&e->watchdog);
  uv_close((uv_handle_t *)&e->watchdog, NULL);
  sftd_http_free(e->srv);
  e->srv = NULL;
}

static void on_call(uv_async_t *a) {
  struct env *e = a->data;
  loop_fn fn;
  void *arg;
  pthread_mutex_lock(&e->mu);
  fn = e->call_fn;
  arg = e->call_arg;
  pthread_mutex_unlock(&e->mu);
  if (!fn)
    return;
  fn(e, arg);
  pthread_mutex_lock(&e->mu);
  e->call_fn = NULL;
  e->call_done = 1;
  pthread_cond_signal(&e->cv);
  pthread_mutex_unlock(&e->mu);
}

/* Runs fn(e, arg) on the loop thread and waits for it. */
static void loop_call(struct env *e, loop_fn fn, void *arg) {
  pthread_mutex_lock(&e->mu);
  e->call_fn = fn;
  e->call_arg = arg;
  e->call_done = 0;
  pthread_mutex_unlock(&e->mu);
  uv_async_send(&e->call);
  pthread_mutex_lock(&e->mu);
  while (!e->call_done)
    pthread_cond_wait(&e->cv, &e->mu);
  pthread_mutex_unlock(&e->mu);
}

static void on_watchdog(uv_timer_t *t) {
  struct env *e = t->data;
  e->timed_out = 1;
  uv_stop(t->loop);
}

static int h_health(const struct sftd_http_req *req,
                    struct sftd_http_resp *resp, void *ud) {
  (void)req;
  (void)ud;
  sftd_http_resp_json(resp, 200, json_pack("{s:b}", "ok", 1));
  return SFTD_HTTP_DONE;
}

/* Daemon-side message callback: remembers it and answers the sender. */
static void on_ws_msg(sftd_http *srv, uint64_t client, json_t *msg, void *ud) {
  struct env *e = ud;
  char *s = json_dumps(msg, JSON_COMPACT | JSON_SORT_KEYS);
  e->got_client = client;
  snprintf(e->got_msg, sizeof(e->got_msg), "%s", s ? s : "");
  free(s);
  e->rc = sftd_http_ws_send(srv, client, "{\"type\":\"Echo\"}", 15);
}

static void run(struct env *e, struct sftd_http_config *cfg, client_fn fn) {
  memset(e, 0, sizeof(*e));
  pthread_mutex_init(&e->mu, NULL);
  pthread_cond_init(&e->cv, NULL);
  assert_int_equal(uv_loop_init(&e->loop), 0);
  assert_int_equal(sftd_http_new(&e->srv, &e->loop, cfg), 0);
  e->port = sftd_http_port(e->srv);
  assert_true(e->port > 0);
  assert_int_equal(sftd_http_route(e->srv, SFTD_HTTP_GET, "/healthz",
                                   h_health, NULL, 0),
                   0);
  sftd_http_ws_on_message(e->srv, on_ws_msg, e);
  e->client = fn;
  uv_async_init(&e->loop, &e->done, on_done);
  e->done.data = e;
  uv_async_init(&e->loop, &e->call, on_call);
  e->call.data = e;
  uv_timer_init(&e->loop, &e->watchdog);
  e->watchdog.data = e;
  uv_timer_start(&e->watchdog, on_watchdog, 50000, 0);
  assert_int_equal(pthread_create(&e->th, NULL, client_main, e), 0);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  pthread_join(e->th, NULL);
  for (int i = 0; i < e->nkeep; i++)
    ws_close_fd(&e->keep[i]);
  assert_false(e->timed_out);
  assert_null(e->srv);
  assert_int_equal(uv_loop_close(&e->loop), 0);
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->cv);
}

static void cfg_default(struct sftd_http_config *c) {
  static const char *const origins[] = {"http://dash.example:8080", NULL};
  sftd_http_config_default(c);
  c->port = 0;
  c->token = TOKEN;
  c->rate_per_s = 0;
  c->cors_origins = origins;
}

static void l_count(struct env *e, void *arg) {
  (void)arg;
  e->count = sftd_http_ws_count(e->srv);
  sftd_http_get_stats(e->srv, &e->st);
}

struct pub {
  const char *topic, *json;
};

static void l_publish(struct env *e, void *arg) {
  struct pub *p = arg;
  e->rc = sftd_http_ws_publish(e->srv, p->topic, p->json, strlen(p->json), 0);
}

static int body_code_is(const struct wconn *c, const char *code) {
  char want[96];
  snprintf(want, sizeof(want), "\"code\":\"%s\"", code);
  return strstr(c->body, want) != NULL;
}

/* ---- auth, origin, path --------------------------------------------------------- */

struct auth_res {
  int rc[16];
  struct wconn c[16];
  size_t count_open;
};

static struct auth_res g_auth;

static void c_auth(struct env *e) {
  struct auth_res *r = &g_auth;
  int p = e->port;
  r->rc[0] = ws_open(&r->c[0], p, "/ws", NULL, 0);
  r->rc[1] = ws_open(&r->c[1], p, "/ws",
                     "Authorization: Bearer test-token-0123456789abcdeX\r\n",
                     0);
  r->rc[2] = ws_open(&r->c[2], p, "/ws", AUTH, 0);
  r->rc[3] = ws_open(&r->c[3], p, "/ws?token=" TOKEN, NULL, 0);
  r->rc[4] = ws_open(&r->c[4], p, "/ws?a=1&token=wrong", NULL, 0);
  r->rc[5] = ws_open(&r->c[5], p, "/ws",
                     "Sec-WebSocket-Protocol: sft.v1, bearer." TOKEN "\r\n",
                     0);
  r->rc[6] = ws_open(&r->c[6], p, "/ws",
                     "Sec-WebSocket-Protocol: bearer." TOKEN "\r\n", 0);
  r->rc[7] = ws_open(&r->c[7], p, "/ws", AUTH "Origin: http://evil.example\r\n",
                     0);
  r->rc[8] = ws_open(&r->c[8], p, "/ws",
                     AUTH "Origin: http://dash.example:8080\r\n", 0);
  char same[128];
  snprintf(same, sizeof(same), AUTH "Origin: http://127.0.0.1:%d\r\n", p);
  r->rc[9] = ws_open(&r->c[9], p, "/ws", same, 0);
  r->rc[10] = ws_open(&r->c[10], p, "/api/transfer/x", AUTH, 0);
  r->rc[11] = ws_open(&r->c[11], p, "/ws",
                      "Sec-WebSocket-Protocol: sft.v1, bearer.nope\r\n", 0);
  /* header wins over query: a wrong header is not rescued */
  r->rc[12] = ws_open(&r->c[12], p, "/ws?token=" TOKEN,
                      "Authorization: Bearer nope\r\n", 0);
  loop_call(e, l_count, NULL);
  r->count_open = e->count;
  for (int i = 0; i < 13; i++)
    ws_close_fd(&r->c[i]);
}

static void test_auth(void **state) {
  (void)state;
  struct env e;
  struct sftd_http_config cfg;
  struct auth_res *r = &g_auth;
  memset(r, 0, sizeof(*r));
  cfg_default(&cfg);
  run(&e, &cfg, c_auth);
  assert_int_equal(r->rc[0], 0);
  assert_int_equal(r->c[0].status, 401);
  assert_true(body_code_is(&r->c[0], "unauthorized"));
  assert_non_null(strstr(r->c[0].hdrs, "www-authenticate: bearer"));
  assert_int_equal(r->rc[1], 0);
  assert_int_equal(r->c[1].status, 401);
  assert_int_equal(r->rc[2], 1);
  assert_int_equal(r->rc[3], 1);
  assert_int_equal(r->rc[4], 0);
  assert_int_equal(r->c[4].status, 401);
  assert_int_equal(r->rc[5], 1);
  assert_non_null(strstr(r->c[5].hdrs, "sec-websocket-protocol: sft.v1"));
  assert_int_equal(r->rc[6], 0);
  assert_int_equal(r->c[6].status, 400);
  assert_int_equal(r->rc[7], 0);
  assert_int_equal(r->c[7].status, 403);
  assert_true(body_code_is(&r->c[7], "cors_denied"));
  assert_int_equal(r->rc[8], 1);
  assert_int_equal(r->rc[9], 1);
  assert_int_equal(r->rc[10], 0);
  assert_int_equal(r->c[10].status, 404);
  assert_int_equal(r->rc[11], 0);
  assert_int_equal(r->c[11].status, 401);
  assert_int_equal(r->rc[12], 0);
  assert_int_equal(r->c[12].status, 401);
  assert_int_equal(r->count_open, 5); /* 2, 3, 5, 8, 9 */
  assert_int_equal(e.st.ws_accepted, 5);
  assert_int_equal(e.st.ws_rejected, 8);
}

/* ---- broadcast, topics, client messages ----------------------------------------- */

struct bc_res {
  int ok[3];
  char got[3][4][256];
  char ack_b[256], ack_c[256], ack_c2[256], echo[256];
  size_t count;
  int pub_rc[3];
};
static struct bc_res g_bc;

static void c_broadcast(struct env *e) {
  struct bc_res *r = &g_bc;
  struct wconn c[3] = {{0}};
  int p = e->port;
  for (int i = 0; i < 3; i++)
    r->ok[i] = ws_open(&c[i], p, "/ws", AUTH, 0);
  if (r->ok[0] != 1 || r->ok[1] != 1 || r->ok[2] != 1)
    goto out;
  ws_text(&c[1], "{\"subscribe\":\"t1\"}");
  ws_recv_text(&c[1], r->ack_b, sizeof(r->ack_b));
  /* a message fragmented into two frames */
  ws_frame(&c[2], 0x01, "{\"subscribe\":[\"t2\",", 19);
  ws_frame(&c[2], 0x80, "\"t3\",\"t4\"]}", 11);
  ws_recv_text(&c[2], r->ack_c, sizeof(r->ack_c));
  ws_text(&c[2], "{\"unsubscribe\":\"t4\"}");
  ws_recv_text(&c[2], r->ack_c2, sizeof(r->ack_c2));
  loop_call(e, l_count, NULL);
  r->count = e->count;
  struct pub m[3] = {{"t1", "{\"n\":1}"}, {"t2", "{\"n\":2}"}, {"", "{\"n\":3}"}};
  for (int i = 0; i < 3; i++) {
    loop_call(e, l_publish, &m[i]);
    r->pub_rc[i] = e->rc;
  }
  for (int i = 0; i < 3; i++) /* A: everything */
    ws_recv_text(&c[0], r->got[0][i], sizeof(r->got[0][i]));
  for (int i = 0; i < 2; i++) {
    ws_recv_text(&c[1], r->got[1][i], sizeof(r->got[1][i]));
    ws_recv_text(&c[2], r->got[2][i], sizeof(r->got[2][i]));
  }
  /* a message for the daemon callback, answered with sftd_http_ws_send */
  ws_text(&c[0], "{\"hello\":[1,2]}");
  ws_recv_text(&c[0], r->echo, sizeof(r->echo));
out:
  for (int i = 0; i < 3; i++)
    ws_close_fd(&c[i]);
}

static void test_broadcast_topics(void **state) {
  (void)state;
  struct env e;
  struct sftd_http_config cfg;
  struct bc_res *r = &g_bc;
  memset(r, 0, sizeof(*r));
  cfg_default(&cfg);
  run(&e, &cfg, c_broadcast);
  for (int i = 0; i < 3; i++)
    assert_int_equal(r->ok[i], 1);
  assert_string_equal(r->ack_b, "{\"type\":\"Subscribed\",\"topics\":[\"t1\"]}");
  assert_string_equal(r->ack_c,
                      "{\"type\":\"Subscribed\",\"topics\":[\"t2\",\"t3\",\"t4\"]}");
  assert_string_equal(r->ack_c2,
                      "{\"type\":\"Subscribed\",\"topics\":[\"t2\",\"t3\"]}");
  assert_int_equal(r->count, 3);
  assert_int_equal(r->pub_rc[0], 2); /* A and B */
  assert_int_equal(r->pub_rc[1], 2); /* A and C */
  assert_int_equal(r->pub_rc[2], 3);
  assert_string_equal(r->got[0][0], "{\"n\":1}");
  assert_string_equal(r->got[0][1], "{\"n\":2}");
  assert_string_equal(r->got[0][2], "{\"n\":3}");
  assert_string_equal(r->got[1][0], "{\"n\":1}");
  assert_string_equal(r->got[1][1], "{\"n\":3}");
  assert_string_equal(r->got[2][0], "{\"n\":2}");
  assert_string_equal(r->got[2][1], "{\"n\":3}");
  assert_string_equal(e.got_msg, "{\"hello\":[1,2]}");
  assert_int_equal(e.rc, 0);
  assert_string_equal(r->echo, "{\"type\":\"Echo\"}");
}

/* ---- throttling --------------------------------------------------------------------- */

static void progress(struct env *e, const char *id, int i) {
  char key[64], js[256];
  snprintf(key, sizeof(key), "progress:%s", id);
  snprintf(js, sizeof(js),
           "{\"type\":\"TransferProgress\",\"id\":\"%s\",\"bytes_done\":%d}",
           id, i);
  (void)sftd_http_ws_broadcast_throttled(e->srv, id, key, js, strlen(js), 100);
}

/* 100 updates for each of two transfers within one loop turn. */
static void l_burst(struct env *e, void *arg) {
  (void)arg;
  for (int i = 1; i <= 100; i++) {
    progress(e, "a", i);
    progress(e, "b", i);
  }
}

static void on_tick(uv_timer_t *t) {
  struct env *e = t->data;
  progress(e, "c", ++e->ticks);
  if (e->ticks == 100) {
    e->tick_t1 = uv_now(&e->loop);
    uv_close((uv_handle_t *)t, NULL);
  }
}

/* 100 updates spread by a 1 ms timer (about 100 ms or more). */
static void l_spread(struct env *e, void *arg) {
  (void)arg;
  uv_timer_init(&e->loop, &e->tick);
  e->tick.data = e;
  e->tick_t0 = uv_now(&e->loop);
  uv_timer_start(&e->tick, on_tick, 1, 1);
}

struct thr_res {
  int ok;
  int n[3], last[3], first[3];
  uint64_t coalesced;
};
static struct thr_res g_thr;

static void c_throttle(struct env *e) {
  struct thr_res *r = &g_thr;
  struct wconn c = {0};
  char buf[512];
  r->ok = ws_open(&c, e->port, "/ws", AUTH, 0);
  if (r->ok != 1)
    goto out;
  loop_call(e, l_burst, NULL);
  while (r->last[0] != 100 || r->last[1] != 100) {
    char id[8];
    int v;
    if (ws_recv_text(&c, buf, sizeof(buf)) < 0 ||
        sscanf(buf, "{\"type\":\"TransferProgress\",\"id\":\"%1[ab]\","
                    "\"bytes_done\":%d}", id, &v) != 2)
      goto out;
    int k = id[0] - 'a';
    if (!r->n[k]++)
      r->first[k] = v;
    r->last[k] = v;
  }
  loop_call(e, l_spread, NULL);
  while (r->last[2] != 100) {
    int v;
    if (ws_recv_text(&c, buf, sizeof(buf)) < 0 ||
        sscanf(buf, "{\"type\":\"TransferProgress\",\"id\":\"c\","
                    "\"bytes_done\":%d}", &v) != 1)
      goto out;
    if (!r->n[2]++)
      r->first[2] = v;
    r->last[2] = v;
  }
  loop_call(e, l_count, NULL);
  r->coalesced = e->st.ws_coalesced;
out:
  ws_close_fd(&c);
}

static void test_throttle(void **state) {
  (void)state;
  struct env e;
  struct sftd_http_config cfg;
  struct thr_res *r = &g_thr;
  memset(r, 0, sizeof(*r));
  cfg_default(&cfg);
  run(&e, &cfg, c_throttle);
  assert_int_equal(r->ok, 1);
  for (int k = 0; k < 2; k++) { /* burst: the first at once, the last later */
    assert_int_equal(r->n[k], 2);
    assert_int_equal(r->first[k], 1);
    assert_int_equal(r->last[k], 100);
  }
  /* spread: at most one per started 100 ms, plus the first; last kept */
  uint64_t el = e.tick_t1 - e.tick_t0;
  printf("throttle spread: 100 updates over %llu ms -> %d delivered\n",
         (unsigned long long)el, r->n[2]);
  assert_int_equal(r->first[2], 1);
  assert_int_equal(r->last[2], 100);
  assert_true(r->n[2] >= 2);
  assert_true((uint64_t)r->n[2] <= el / 100 + 2);
  assert_int_equal(r->coalesced, 98 * 2 + (uint64_t)(100 - r->n[2]));
}

/* ---- slow client --------------------------------------------------------------------- */

#define BIG (64 * 1024)

static int g_seq;
static void l_big(struct env *e, void *arg) {
  int k = *(int *)arg;
  static char js[BIG + 64];
  for (int i = 0; i < k; i++) {
    int n = snprintf(js, sizeof(js), "{\"seq\":%d,\"pad\":\"", ++g_seq);
    memset(js + n, 'x', BIG - (size_t)n - 2);
    memcpy(js + BIG - 2, "\"}", 3);
    e->rc = sftd_http_ws_broadcast(e->srv, js, BIG, 0);
  }
  sftd_http_get_stats(e->srv, &e->st);
  e->count = sftd_http_ws_count(e->srv);
}

struct slow_res {
  int ok_fast, ok_slow;
  int fast_in_order, sent_until_drop, dropped, count_after, rest_status;
  int after_ok, slow_close;
};
static struct slow_res g_slow;

static void c_slow(struct env *e) {
  struct slow_res *r = &g_slow;
  struct wconn f = {0}, s = {0};
  static char buf[BIG + 64];
  int four = 4, expect = 1;
  g_seq = 0;
  r->ok_slow = ws_open(&s, e->port, "/ws", AUTH, 4096);
  r->ok_fast = ws_open(&f, e->port, "/ws", AUTH, 0);
  if (r->ok_fast != 1 || r->ok_slow != 1)
    goto out;
  r->fast_in_order = 1;
  for (int round = 0; round < 200 && !e->st.ws_dropped_slow; round++) {
    loop_call(e, l_big, &four);
    for (int i = 0; i < 4; i++) {
      int seq;
      if (ws_recv_text(&f, buf, sizeof(buf)) != BIG ||
          sscanf(buf, "{\"seq\":%d", &seq) != 1 || seq != expect++)
        r->fast_in_order = 0;
    }
  }
  r->sent_until_drop = g_seq;
  r->dropped = (int)e->st.ws_dropped_slow;
  r->count_after = (int)e->count;
  /* the loop still answers REST and still feeds the fast client */
  r->rest_status = http_get_status(e->port, "/healthz");
  loop_call(e, l_big, &four);
  r->after_ok = 1;
  for (int i = 0; i < 4; i++) {
    int seq;
    if (ws_recv_text(&f, buf, sizeof(buf)) != BIG ||
        sscanf(buf, "{\"seq\":%d", &seq) != 1 || seq != expect++)
      r->after_ok = 0;
  }
  /* the slow client finally reads: data, then a 1008 close or EOF */
  r->slow_close = ws_wait_close(&s);
out:
  ws_close_fd(&f);
  ws_close_fd(&s);
}

static void test_slow_client(void **state) {
  (void)state;
  struct env e;
  struct sftd_http_config cfg;
  struct slow_res *r = &g_slow;
  memset(r, 0, sizeof(*r));
  cfg_default(&cfg);
  run(&e, &cfg, c_slow);
  assert_int_equal(r->ok_fast, 1);
  assert_int_equal(r->ok_slow, 1);
  printf("slow client dropped after %d x 64 KiB broadcasts\n",
         r->sent_until_drop);
  assert_int_equal(r->dropped, 1);
  assert_true(r->fast_in_order);
  assert_int_equal(r->count_after, 1);
  assert_int_equal(r->rest_status, 200);
  assert_true(r->after_ok);
  assert_true(r->slow_close == 1008 || r->slow_close == 0);
}

/* ---- malformed input ------------------------------------------------------------------ */

#define NBAD 12
static int g_bad[NBAD];
static int g_bad_after;

static void c_malformed(struct env *e) {
  static char big[6000];
  char topics[65 * 8 + 32];
  struct wconn c = {0};
  int p = e->port, n;
  memset(big, 'a', sizeof(big));
  big[0] = '"';
  big[4999] = '"';
  n = snprintf(topics, sizeof(topics), "{\"subscribe\":[");
  for (int i = 0; i < 65; i++)
    n += snprintf(topics + n, sizeof(topics) - (size_t)n, "%s\"t%d\"",
                  i ? "," : "", i);
  snprintf(topics + n, sizeof(topics) - (size_t)n, "]}");
  for (int i = 0; i < NBAD; i++) {
    if (ws_open(&c, p, "/ws", AUTH, 0) != 1) {
      g_bad[i] = -2;
      continue;
    }
    switch (i) {
    case 0: /* reserved opcode */
      ws_frame(&c, 0x83, "x", 1);
      break;
    case 1: /* RSV1 without an extension */
      ws_frame(&c, 0xc1, "{}", 2);
      break;
    case 2: /* binary */
      ws_frame(&c, 0x82, "\x01\x02", 2);
      break;
    case 3: /* invalid UTF-8 */
      ws_frame(&c, 0x81, "\"\xc3\x28\"", 4);
      break;
    case 4:
      ws_text(&c, "not json");
      break;
    case 5:
      ws_text(&c, "{\"subscribe\":5}");
      break;
    case 6:
      ws_text(&c, topics);
      break;
    case 7: /* 5000 bytes in one frame */
      ws_frame(&c, 0x81, big, 5000);
      break;
    case 8: /* 3 x 2000 bytes in fragments */
      ws_frame(&c, 0x01, big, 2000);
      ws_frame(&c, 0x00, big, 2000);
      ws_frame(&c, 0x80, big, 2000);
      break;
    case 9: /* continuation without a start */
      ws_frame(&c, 0x80, "{}", 2);
      break;
    case 10: /* fragmented control frame */
      ws_frame(&c, 0x09, "", 0);
      break;
    case 11: /* garbage bytes */
      send_all(c.fd, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 12);
      break;
    }
    g_bad[i] = ws_wait_close(&c);
    ws_close_fd(&c);
  }
  /* the server still serves */
  struct pub m = {"", "{\"ok\":1}"};
  char buf[64];
  if (ws_open(&c, p, "/ws", AUTH, 0) == 1) {
    loop_call(e, l_publish, &m);
    g_bad_after = ws_recv_text(&c, buf, sizeof(buf)) == 8 &&
                  !strcmp(buf, "{\"ok\":1}");
  }
  ws_close_fd(&c);
  loop_call(e, l_count, NULL);
}

static void test_malformed(void **state) {
  (void)state;
  struct env e;
  struct sftd_http_config cfg;
  static const int want[NBAD] = {1002, 1002, 1003, 1007, 1007, 1007,
                                 1008, 1009, 1009, 1002, 1002, -3};
  cfg_default(&cfg);
  run(&e, &cfg, c_malformed);
  for (int i = 0; i < NBAD; i++) {
    if (want[i] == -3) /* garbage: any close (a frame or EOF), no hang */
      assert_true(g_bad[i] >= 0);
    else if (g_bad[i] != want[i])
      fail_msg("case %d: close %d, want %d", i, g_bad[i], want[i]);
  }
  assert_true(g_bad_after);
  assert_int_equal(e.st.ws_closed_bad, 6); /* ours: 1003, 1007 x3, ... */
}

/* ---- shutdown with clients and pending throttled messages ------------------------- */

static void l_pending(struct env *e, void *arg) {
  (void)arg;
  progress(e, "z", 1); /* sent */
  progress(e, "z", 2); /* pending for 100 ms when the server is freed */
  e->count = sftd_http_ws_count(e->srv);
}

static void c_shutdown(struct env *e) {
  char buf[256];
  for (int i = 0; i < 3; i++)
    if (ws_open(&e->keep[e->nkeep], e->port, "/ws", AUTH, 0) == 1)
      e->nkeep++;
  loop_call(e, l_pending, NULL);
  if (e->nkeep == 3 && ws_recv_text(&e->keep[0], buf, sizeof(buf)) < 0)
    e->nkeep = -1;
}

static void test_shutdown(void **state) {
  (void)state;
  struct env e;
  struct sftd_http_config cfg;
  cfg_default(&cfg);
  run(&e, &cfg, c_shutdown); /* frees the server with 3 clients connected */
  assert_int_equal(e.nkeep, 3);
  assert_int_equal(e.count, 3);
}

/* ---- pure argument checks ---------------------------------------------------------- */

static void l_args(struct env *e, void *arg) {
  int *rc = arg;
  char t[SFTD_WS_TOPIC_MAX + 2];
  memset(t, 'a', sizeof(t) - 1);
  t[sizeof(t) - 1] = '\0';
  rc[0] = sftd_http_ws_broadcast(e->srv, "{}", 2, 1);
  rc[1] = sftd_http_ws_publish(e->srv, t, "{}", 2, 0);
  rc[2] = sftd_http_ws_broadcast(e->srv, "{}", 2, 0); /* no clients: 0 */
  rc[3] = sftd_http_ws_send(e->srv, 12345, "{}", 2);
  rc[4] = sftd_http_ws_broadcast_throttled(e->srv, "", "", "{}", 2, 100);
  rc[5] = sftd_http_ws_broadcast(e->srv, "{}", (1u << 20) + 1, 0);
}

static int g_args[6];
static void c_args(struct env *e) { loop_call(e, l_args, g_args); }

static void test_args(void **state) {
  (void)state;
  struct env e;
  struct sftd_http_config cfg;
  cfg_default(&cfg);
  run(&e, &cfg, c_args);
  assert_int_equal(g_args[0], SFT_ERR_INVAL);
  assert_int_equal(g_args[1], SFT_ERR_INVAL);
  assert_int_equal(g_args[2], 0);
  assert_int_equal(g_args[3], SFT_ERR_NOT_FOUND);
  assert_int_equal(g_args[4], SFT_ERR_INVAL);
  assert_int_equal(g_args[5], SFT_ERR_TOO_LARGE);
  assert_int_equal(sftd_http_ws_count(NULL), 0);
}

/* ---- load: 100 clients x 20 broadcasts, latency ------------------------------------ */

static void l_completed(struct env *e, void *arg) {
  int i = *(int *)arg;
  char js[256];
  int n = snprintf(js, sizeof(js),
                   "{\"type\":\"TransferCompleted\",\"id\":\"t%d\",\"bytes\":"
                   "1048576,\"seconds\":0.5,\"root\":\"%064d\"}",
                   i, 0);
  e->bcast_ns[i] = now_ns();
  e->rc = sftd_http_ws_broadcast(e->srv, js, (size_t)n, 0);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

struct load_res {
  int opened, all_ok, rc_sum;
  uint64_t lat[NLOAD * NMSG];
  size_t nlat;
  double secs;
};
static struct load_res g_load;

static void c_load(struct env *e) {
  struct load_res *r = &g_load;
  static struct wconn c[NLOAD];
  struct pollfd pf[NLOAD];
  static char buf[1024];
  uint64_t t0;
  for (int i = 0; i < NLOAD; i++)
    if (ws_open(&c[i], e->port, "/ws", AUTH, 0) == 1)
      r->opened++;
  if (r->opened != NLOAD)
    goto out;
  r->all_ok = 1;
  t0 = now_ns();
  for (int m = 0; m < NMSG; m++) {
    int left = NLOAD;
    char want[32];
    int got[NLOAD] = {0};
    loop_call(e, l_completed, &m);
    r->rc_sum += e->rc;
    snprintf(want, sizeof(want), "\"id\":\"t%d\"", m);
    while (left) {
      for (int i = 0; i < NLOAD; i++) {
        pf[i].fd = got[i] ? -1 : c[i].fd;
        pf[i].events = POLLIN;
        pf[i].revents = 0;
      }
      if (poll(pf, NLOAD, 10000) <= 0) {
        r->all_ok = 0;
        goto out;
      }
      for (int i = 0; i < NLOAD; i++) {
        if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
          continue;
        if (ws_recv_text(&c[i], buf, sizeof(buf)) < 0 || !strstr(buf, want)) {
          r->all_ok = 0;
          goto out;
        }
        r->lat[r->nlat++] = now_ns() - e->bcast_ns[m];
        got[i] = 1;
        left--;
      }
    }
  }
  r->secs = (double)(now_ns() - t0) / 1e9;
out:
  for (int i = 0; i < NLOAD; i++)
    ws_close_fd(&c[i]);
}

static void test_load(void **state) {
  (void)state;
  struct env e;
  struct sftd_http_config cfg;
  struct load_res *r = &g_load;
  memset(r, 0, sizeof(*r));
  cfg_default(&cfg);
  run(&e, &cfg, c_load);
  assert_int_equal(r->opened, NLOAD);
  assert_true(r->all_ok);
  assert_int_equal(r->rc_sum, NLOAD * NMSG);
  assert_int_equal(r->nlat, NLOAD * NMSG);
  qsort(r->lat, r->nlat, sizeof(r->lat[0]), cmp_u64);
  printf("ws_load clients=%d broadcasts=%d p50_us=%.1f p99_us=%.1f "
         "max_us=%.1f total_s=%.3f\n",
         NLOAD, NMSG, (double)r->lat[r->nlat / 2] / 1e3,
         (double)r->lat[r->nlat * 99 / 100] / 1e3,
         (double)r->lat[r->nlat - 1] / 1e3, r->secs);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_args),
      cmocka_unit_test(test_auth),
      cmocka_unit_test(test_broadcast_topics),
      cmocka_unit_test(test_throttle),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_slow_client),
      cmocka_unit_test(test_shutdown),
      cmocka_unit_test(test_load),
  };
  srand((unsigned)time(NULL));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
