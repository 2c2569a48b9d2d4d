/*
 * HTTP control API layer: the server runs on a libuv loop in this process
 * (127.0.0.1:0); a client thread speaks raw HTTP/1.1 over blocking sockets
 * and records what it got; the loop thread then checks the records. Each
 * run ends with sftd_http_free and uv_loop_close() == 0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon/api/http.h"

#define TOKEN "test-token-0123456789abcdef"
#define AUTH "Authorization: Bearer " TOKEN "\r\n"

/* ---- a tiny blocking HTTP/1.1 client ------------------------------------- */

struct hresp {
  int status;   /* 0: no response (EOF / error) */
  char hdrs[4096];
  char body[8192];
  size_t blen;
};

static int hconnect(int port) {
  struct sockaddr_in a;
  struct timeval tv = {.tv_sec = 10};
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  if (fd < 0)
    return -1;
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

static int send_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Per-connection read buffer so pipelined responses are not lost. */
struct hconn {
  int fd;
  char buf[65536];
  size_t len;
};

static int fill(struct hconn *c) {
  if (c->len == sizeof(c->buf))
    return -1;
  ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
  if (n <= 0)
    return -1;
  c->len += (size_t)n;
  return 0;
}

/* Reads one response; |head| = response to HEAD (no body). */
static void hread(struct hconn *c, struct hresp *r, int head) {
  char *e;
  size_t hl, cl = 0;
  memset(r, 0, sizeof(*r));
  while (!(e = memmem(c->buf, c->len, "\r\n\r\n", 4)))
    if (fill(c))
      return;
  hl = (size_t)(e - c->buf) + 4;
  if (hl >= sizeof(r->hdrs))
    return;
  memcpy(r->hdrs, c->buf, hl);
  r->hdrs[hl] = '\0';
  for (char *p = r->hdrs; *p; p++) /* lower-case names for lookups */
    if (*p >= 'A' && *p <= 'Z')
      *p = (char)(*p - 'A' + 'a');
  char *cls = strstr(r->hdrs, "content-length:");
  if (cls)
    cl = strtoul(cls + 15, NULL, 10);
  if (head)
    cl = 0;
  while (c->len < hl + cl)
    if (fill(c))
      return;
  if (cl >= sizeof(r->body))
    return;
  memcpy(r->body, c->buf + hl, cl);
  r->body[cl] = '\0';
  r->blen = cl;
  if (sscanf(r->hdrs, "http/1.%*d %d", &r->status) != 1)
    r->status = -1;
  memmove(c->buf, c->buf + hl + cl, c->len - hl - cl);
  c->len -= hl + cl;
}

/* One request on a fresh connection. */
static void req1(int port, const char *raw, size_t rawlen, struct hresp *r) {
  struct hconn c = {.fd = hconnect(port)};
  memset(r, 0, sizeof(*r));
  if (c.fd < 0)
    return;
  if (!send_all(c.fd, raw, rawlen ? rawlen : strlen(raw)))
    hread(&c, r, !strncmp(raw, "HEAD ", 5));
  close(c.fd);
}

static int is_eof(int fd) {
  char b;
  return recv(fd, &b, 1, 0) == 0;
}

/* ---- harness --------------------------------------------------------------- */

struct env;
typedef void (*client_fn)(struct env *e);

#define NRES 24
struct env {
  uv_loop_t loop;
  sftd_http *srv;
  int port;
  client_fn client;
  pthread_t th;
  uv_async_t done;
  uv_timer_t watchdog;
  int timed_out;
  struct sftd_http_stats st;
  struct hresp r[NRES];
  int flags[8]; /* client-side facts */
  /* loop-side facts */
  int deferred_rc;
  uv_timer_t dtimer;
  uint64_t did;
  int late_rc;
  int pending_seen;
};

static struct env *g_env;

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
  uv_timer_stop(&e->watchdog);
  uv_close((uv_handle_t *)&e->watchdog, NULL);
  sftd_http_free(e->srv);
  e->srv = NULL;
}

static void on_watchdog(uv_timer_t *t) {
  struct env *e = t->data;
  e->timed_out = 1;
  uv_stop(t->loop);
}

/* ---- handlers ------------------------------------------------------------------- */

static int h_echo(const struct sftd_http_req *req, struct sftd_http_resp *resp,
                  void *ud) {
  (void)ud;
  const char *id = sftd_http_param(req, "id");
  const char *q = sftd_http_query(req, "x");
  sftd_http_resp_json(resp, 200,
                      json_pack("{s:s,s:s?,s:s,s:i}", "id", id ? id : "",
                                "x", q, "path", req->path, "method",
                                (int)req->method));
  return SFTD_HTTP_DONE;
}

static int h_health(const struct sftd_http_req *req,
                    struct sftd_http_resp *resp, void *ud) {
  (void)req;
  (void)ud;
  sftd_http_resp_json(resp, 200, json_pack("{s:b}", "ok", 1));
  return SFTD_HTTP_DONE;
}

static int h_metrics(const struct sftd_http_req *req,
                     struct sftd_http_resp *resp, void *ud) {
  (void)req;
  (void)ud;
  static const char m[] = "# TYPE sft_up gauge\nsft_up 1\n";
  sftd_http_resp_text(resp, 200, "text/plain; version=0.0.4", m,
                      sizeof(m) - 1);
  return SFTD_HTTP_DONE;
}

static const struct sftd_http_field send_fields[] = {
    {"path", SFTD_F_STRING, 1, 1, 4096},
    {"peer", SFTD_F_STRING, 1, 1, 256},
    {"streams", SFTD_F_INT, 0, 1, 64},
    {"verify", SFTD_F_BOOL, 0, 0, 0},
};

static int h_send(const struct sftd_http_req *req, struct sftd_http_resp *resp,
                  void *ud) {
  (void)ud;
  if (sftd_http_validate(resp, req->body, send_fields, 4))
    return SFTD_HTTP_DONE;
  json_t *s = json_object_get(req->body, "streams");
  sftd_http_resp_json(
      resp, 201,
      json_pack("{s:s,s:I}", "path",
                json_string_value(json_object_get(req->body, "path")),
                "streams", s ? json_integer_value(s) : (json_int_t)4));
  return SFTD_HTTP_DONE;
}

static int h_raw(const struct sftd_http_req *req, struct sftd_http_resp *resp,
                 void *ud) {
  (void)ud;
  sftd_http_resp_json(resp, 200, json_pack("{s:I}", "len",
                                           (json_int_t)req->raw_len));
  return SFTD_HTTP_DONE;
}

static void on_dtimer(uv_timer_t *t) {
  struct env *e = t->data;
  e->deferred_rc = sftd_http_respond(e->srv, e->did, 202,
                                     json_pack("{s:s}", "state", "paused"));
  uv_close((uv_handle_t *)t, NULL);
}

static int h_deferred(const struct sftd_http_req *req,
                      struct sftd_http_resp *resp, void *ud) {
  struct env *e = ud;
  (void)resp;
  e->did = req->id;
  e->pending_seen++;
  uv_timer_init(&e->loop, &e->dtimer);
  e->dtimer.data = e;
  uv_timer_start(&e->dtimer, on_dtimer, 20, 0);
  return SFTD_HTTP_PENDING;
}

static uint64_t g_never_id;
static int h_never(const struct sftd_http_req *req, struct sftd_http_resp *resp,
                   void *ud) {
  (void)resp;
  (void)ud;
  g_never_id = req->id;
  return SFTD_HTTP_PENDING;
}

static int h_nothing(const struct sftd_http_req *req,
                     struct sftd_http_resp *resp, void *ud) {
  (void)req;
  (void)resp;
  (void)ud;
  return SFTD_HTTP_DONE;
}

static void run(struct env *e, struct sftd_http_config *cfg, client_fn fn) {
  memset(e, 0, sizeof(*e));
  g_env = e;
  assert_int_equal(uv_loop_init(&e->loop), 0);
  assert_int_equal(sftd_http_new(&e->srv, &e->loop, cfg), 0);
  e->port = sftd_http_port(e->srv);
  assert_true(e->port > 0);
  sftd_http *s = e->srv;
  assert_int_equal(sftd_http_route(s, SFTD_HTTP_POST, "/api/transfer/{id}/pause",
                                   h_echo, NULL, 0), 0);
  assert_int_equal(sftd_http_route(s, SFTD_HTTP_GET,
                                   "/api/transfer/{id}/progress", h_echo,
                                   NULL, 0), 0);
  assert_int_equal(sftd_http_route(s, SFTD_HTTP_GET, "/api/transfer/list",
                                   h_health, NULL, 0), 0);
  assert_int_equal(sftd_http_route(s, SFTD_HTTP_GET, "/healthz", h_health,
                                   NULL, SFTD_HTTP_PUBLIC), 0);
  assert_int_equal(sftd_http_route(s, SFTD_HTTP_GET, "/metrics", h_metrics,
                                   NULL, 0), 0);
  assert_int_equal(sftd_http_route(s, SFTD_HTTP_POST, "/api/transfer/send",
                                   h_send, NULL, 0), 0);
  assert_int_equal(sftd_http_route(s, SFTD_HTTP_PUT, "/api/raw", h_raw, NULL,
                                   SFTD_HTTP_RAW_BODY), 0);
  assert_int_equal(sftd_http_route(s, SFTD_HTTP_POST, "/api/deferred",
                                   h_deferred, e, 0), 0);
  assert_int_equal(sftd_http_route(s, SFTD_HTTP_GET, "/api/never", h_never,
                                   NULL, 0), 0);
  assert_int_equal(sftd_http_route(s, SFTD_HTTP_GET, "/api/nothing",
                                   h_nothing, NULL, 0), 0);
  e->client = fn;
  uv_async_init(&e->loop, &e->done, on_done);
  e->done.data = e;
  uv_timer_init(&e->loop, &e->watchdog);
  e->watchdog.data = e;
  uv_timer_start(&e->watchdog, on_watchdog, 30000, 0);
  assert_int_equal(pthread_create(&e->th, NULL, client_main, e), 0);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  pthread_join(e->th, NULL);
  assert_false(e->timed_out);
  assert_null(e->srv);
  assert_int_equal(uv_loop_close(&e->loop), 0);
}

static void cfg_default(struct sftd_http_config *c) {
  sftd_http_config_default(c);
  c->port = 0;
  c->token = TOKEN;
  c->rate_per_s = 0;
}

static int has_hdr(const struct hresp *r, const char *line) {
  return strstr(r->hdrs, line) != NULL;
}

static int err_code_is(const struct hresp *r, const char *code) {
  json_error_t je;
  json_t *j = json_loadb(r->body, r->blen, 0, &je);
  const char *c = NULL;
  int ok;
  if (!j)
    return 0;
  json_unpack(j, "{s:{s:s}}", "error", "code", &c);
  ok = c && !strcmp(c, code) &&
       json_is_string(json_object_get(json_object_get(j, "error"), "message"));
  json_decref(j);
  return ok;
}

/* ---- routing, auth ------------------------------------------------------------ */

static void c_routes(struct env *e) {
  int p = e->port;
  req1(p, "POST /api/transfer/t42/pause?x=7&y HTTP/1.1\r\nHost: a\r\n" AUTH
          "Content-Length: 0\r\n\r\n", 0, &e->r[0]);
  req1(p, "GET /nope HTTP/1.1\r\nHost: a\r\n" AUTH "\r\n", 0, &e->r[1]);
  req1(p, "GET /api/transfer/t42/pause HTTP/1.1\r\nHost: a\r\n" AUTH "\r\n", 0,
       &e->r[2]);
  req1(p, "GET /api/transfer/t1/progress HTTP/1.1\r\nHost: a\r\n\r\n", 0,
       &e->r[3]);
  req1(p, "GET /api/transfer/t1/progress HTTP/1.1\r\nHost: a\r\n"
          "Authorization: Bearer test-token-0123456789abcdeX\r\n\r\n", 0,
       &e->r[4]);
  req1(p, "GET /api/transfer/t1/progress HTTP/1.1\r\nHost: a\r\n" AUTH "\r\n",
       0, &e->r[5]);
  req1(p, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 0, &e->r[6]);
  req1(p, "GET /api/transfer/list HTTP/1.1\r\nHost: a\r\n" AUTH "\r\n", 0,
       &e->r[7]);
  req1(p, "GET /metrics HTTP/1.1\r\nHost: a\r\n" AUTH "\r\n", 0, &e->r[8]);
  req1(p, "HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 0, &e->r[9]);
  req1(p, "GET /api/transfer/t1/progress HTTP/1.1\r\nHost: a\r\n"
          "Authorization: Basic dXNlcjpwYXNz\r\n\r\n", 0, &e->r[10]);
  req1(p, "GET /api/nothing HTTP/1.1\r\nHost: a\r\n" AUTH "\r\n", 0,
       &e->r[11]);
  req1(p, "GET /api/transfer//progress HTTP/1.1\r\nHost: a\r\n" AUTH "\r\n", 0,
       &e->r[12]);
  req1(p, "POST /api/transfer/t42/pause HTTP/1.1\r\nHost: a\r\n" AUTH "\r\n",
       0, &e->r[13]);
}

static void test_routes_auth(void **state) {
  (void)state;
  struct env e;
  struct sftd_http_config cfg;
  cfg_default(&cfg);
  run(&e, &cfg, c_routes);
  struct hresp *r = e.r;
  assert_int_equal(r[0].status, 200);
  assert_non_null(strstr(r[0].body, "\"id\":\"t42\""));
  assert_non_null(strstr(r[0].body, "\"x\":\"7\""));
  assert_non_null(strstr(r[0].body, "\"path\":\"/api/transfer/t42/pause\""));
  assert_true(has_hdr(&r[0], "content-type: application/json"));
  assert_int_equal(r[1].status, 404);
  assert_true(err_code_is(&r[1], "not_found"));
  assert_int_equal(r[2].status, 405);
  assert_true(err_code_is(&r[2], "method_not_allowed"));
  assert_true(has_hdr(&r[2], "allow: post, options"));
  assert_int_equal(r[3].status, 401);
  assert_true(err_code_is(&r[3], "unauthorized"));
  assert_true(has_hdr(&r[3], "www-authenticate: bearer"));
  assert_int_equal(r[4].status, 401);
  assert_true(has_hdr(&r[4], "www-authenticate: bearer"));
  assert_int_equal(r[5].status, 200);
  assert_non_null(strstr(r[5].body, "\"id\":\"t1\""));
  assert_int_equal(r[6].status, 200); /* public */
  assert_string_equal(r[6].body, "{\"ok\":true}");
  assert_int_equal(r[7].status, 200); /* literal beats {id} */
  assert_string_equal(r[7].body, "{\"ok\":true}");
  assert_int_equal(r[8].status, 200);
  assert_true(has_hdr(&r[8], "content-type: text/plain; version=0.0.4"));
  assert_string_equal(r[8].body, "# TYPE sft_up gauge\nsft_up 1\n");
  assert_int_equal(r[9].status, 200); /* HEAD: headers only */
  assert_true(has_hdr(&r[9], "content-length: 11"));
  assert_int_equal(r[10].status, 401);
  assert_int_equal(r[11].status, 500);
  assert_true(err_code_is(&r[11], "internal"));
  assert_int_equal(r[12].status, 404); /* lws collapses "//": no empty id */
  assert_int_equal(r[13].status, 411); /* POST without Content-Length */
  assert_true(e.st.requests >= 14);
  assert_true(e.st.errors_4xx >= 7);
}

/* ---- JSON bodies ------------------------------------------------------------------- */

static void post(int port, const char *path, const char *ctype,
                 const char *body, struct hresp *r) {
  char raw[4096];
  int n = snprintf(raw, sizeof(raw),
                   "POST %s HTTP/1.1\r\nHost: a\r\n" AUTH
                   "Content-Type: %s\r\nContent-Length: %zu\r\n\r\n%s",
                   path, ctype, strlen(body), body);
  req1(port, raw, (size_t)n, r);
}

static void c_json(struct env *e) {
  int p = e->port;
  const char *J = "application/json";
  post(p, "/api/transfer/send", J, "{\"path\":\"/tmp/a\",\"peer\":\"b\"}",
       &e->r[0]);
  post(p, "/api/transfer/send", J, "{\"path\":\"/tmp/a\",", &e->r[1]);
  post(p, "/api/transfer/send", J,
       "{\"path\":\"/tmp/a\",\"peer\":\"b\",\"bogus\":1}", &e->r[2]);
  post(p, "/api/transfer/send", J, "{\"path\":\"/tmp/a\",\"peer\":\"b\","
       "\"streams\":\"8\"}", &e->r[3]);
  post(p, "/api/transfer/send", "text/plain", "{\"path\":\"x\"}", &e->r[4]);
  post(p, "/api/transfer/send", J, "{\"peer\":\"b\"}", &e->r[5]);
  post(p, "/api/transfer/send", J, "[1,2]", &e->r[6]);
  post(p, "/api/transfer/send", J, "{\"path\":\"a\",\"peer\":\"b\","
       "\"streams\":65}", &e->r[7]);
  post(p, "/api/transfer/send", "application/json; charset=utf-8",
       "{\"path\":\"/x\",\"peer\":\"b\",\"streams\":8,\"verify\":true}",
       &e->r[8]);
  post(p, "/api/transfer/send", J, "{\"path\":\"a\",\"path\":\"b\"}",
       &e->r[9]);
  /* 413: announced 2 MiB, nothing sent; must be answered without reading */
  req1(p, "POST /api/transfer/send HTTP/1.1\r\nHost: a\r\n" AUTH
          "Content-Type: application/json\r\nContent-Length: 2097152\r\n\r\n",
       0, &e->r[10]);
  /* raw body route: any content type */
  req1(p, "PUT /api/raw HTTP/1.1\r\nHost: a\r\n" AUTH
          "Content-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\n"
          "\x01\x02\x03\x04\x05", 0, &e->r[11]);
  req1(p, "POST /api/transfer/send HTTP/1.1\r\nHost: a\r\n" AUTH
          "Content-Type: application/json\r\nContent-Length: 1x\r\n\r\n", 0,
       &e->r[12]);
  /* a body exactly at the limit (1024) is accepted */
  {
    char body[1024 + 1];
    memset(body, ' ', 1024);
    memcpy(body, "{\"path\":\"a\",\"peer\":\"b\"}", 23);
    body[1024] = '\0';
    post(p, "/api/transfer/send", J, body, &e->r[13]);
    char big[1025 + 1];
    memset(big, ' ', 1025);
    memcpy(big, "{}", 2);
    big[1025] = '\0';
    post(p, "/api/transfer/send", J, big, &e->r[14]);
  }
}

static void test_json_bodies(void **state) {
  (void)state;
  struct env e;
  struct sftd_http_config cfg;
  cfg_default(&cfg);
  cfg.body_limit = 1024;
  run(&e, &cfg, c_json);
  struct hresp *r = e.r;
  assert_int_equal(r[0].status, 201);
  assert_string_equal(r[0].body, "{\"path\":\"/tmp/a\",\"streams\":4}");
  assert_int_equal(r[1].status, 400);
  assert_true(err_code_is(&r[1], "bad_json"));
  assert_int_equal(r[2].status, 400);
  assert_true(err_code_is(&r[2], "invalid_field"));
  assert_non_null(strstr(r[2].body, "unknown field 'bogus'"));
  assert_int_equal(r[3].status, 400);
  assert_non_null(strstr(r[3].body, "field 'streams' must be an integer"));
  assert_int_equal(r[4].status, 415);
  assert_true(err_code_is(&r[4], "unsupported_media_type"));
  assert_int_equal(r[5].status, 400);
  assert_non_null(strstr(r[5].body, "missing field 'path'"));
  assert_int_equal(r[6].status, 400);
  assert_non_null(strstr(r[6].body, "must be a JSON object"));
  assert_int_equal(r[7].status, 400);
  assert_non_null(strstr(r[7].body, "'streams' out of range"));
  assert_int_equal(r[8].status, 201);
  assert_non_null(strstr(r[8].body, "\"streams\":8"));
  assert_int_equal(r[9].status, 400); /* duplicate keys rejected */
  assert_true(err_code_is(&r[9], "bad_json"));
  assert_int_equal(r[10].status, 413);
  assert_true(err_code_is(&r[10], "payload_too_large"));
  assert_true(has_hdr(&r[10], "connection: close"));
  assert_int_equal(r[11].status, 200);
  assert_string_equal(r[11].body, "{\"len\":5}");
  assert_int_equal(r[12].status, 400);
  assert_int_equal(r[13].status, 201);
  assert_int_equal(r[14].status, 413);
}

/* ---- rate limit --------------------------------------------------------------------- */

static void c_rate(struct env *e) {
  struct hconn c = {.fd = hconnect(e->port)};
  static const char g[] = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
  for (int i = 0; i < 6 && c.fd >= 0; i++) {
    if (send_all(c.fd, g, sizeof(g) - 1))
      break;
    hread(&c, &e->r[i], 0);
  }
  if (c.fd >= 0)
    close(c.fd);
}

static void test_rate_limit(void **state) {
  (void)state;
  struct env e;
  struct sftd_http_config cfg;
  cfg_default(&cfg);
  cfg.rate_per_s = 1;
  cfg.rate_burst = 5;
  run(&e, &cfg, c_rate);
  for (int i = 0; i < 5; i++)
    assert_int_equal(e.r[i].status, 200);
  assert_int_equal(e.r[5].status, 429);
  assert_true(err_code_is(&e.r[5], "rate_limited"));
  assert_true(has_hdr(&e.r[5], "retry-after: 1"));
  assert_int_equal(e.st.rate_limited, 1);
}

/* ---- CORS ----------------------------------------------------------------------------- */

static void c_cors(struct env *e) {
  int p = e->port;
  req1(p, "OPTIONS /api/transfer/x/pause HTTP/1.1\r\nHost: a\r\n"
          "Origin: http://ui.example:3000\r\n"
          "Access-Control-Request-Method: POST\r\n\r\n", 0, &e->r[0]);
  req1(p, "OPTIONS /api/transfer/x/pause HTTP/1.1\r\nHost: a\r\n"
          "Origin: http://evil.example\r\n"
          "Access-Control-Request-Method: POST\r\n\r\n", 0, &e->r[1]);
  req1(p, "GET /healthz HTTP/1.1\r\nHost: a\r\nOrigin: http://ui.example:3000"
          "\r\n\r\n", 0, &e->r[2]);
  req1(p, "GET /healthz HTTP/1.1\r\nHost: a\r\nOrigin: http://evil.example"
          "\r\n\r\n", 0, &e->r[3]);
  req1(p, "OPTIONS /nope HTTP/1.1\r\nHost: a\r\n"
          "Origin: http://ui.example:3000\r\n\r\n", 0, &e->r[4]);
  req1(p, "OPTIONS /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 0, &e->r[5]);
  req1(p, "GET /healthz HTTP/1.1\r\nHost: a:8080\r\n"
          "Origin: http://a:8080\r\n\r\n", 0, &e->r[6]);
}

static void test_cors(void **state) {
  (void)state;
  struct env e;
  struct sftd_http_config cfg;
  static const char *const origins[] = {"http://ui.example:3000", NULL};
  cfg_default(&cfg);
  cfg.cors_origins = origins;
  run(&e, &cfg, c_cors);
  struct hresp *r = e.r;
  assert_int_equal(r[0].status, 204);
  assert_true(has_hdr(&r[0],
                      "access-control-allow-origin: http://ui.example:3000"));
  assert_true(has_hdr(&r[0], "access-control-allow-methods: post, options"));
  assert_true(has_hdr(&r[0], "access-control-allow-headers: authorization"));
  assert_int_equal(r[1].status, 403);
  assert_true(err_code_is(&r[1], "cors_denied"));
  assert_null(strstr(r[1].hdrs, "access-control-allow-origin"));
  assert_int_equal(r[2].status, 200);
  assert_true(has_hdr(&r[2], "access-control-allow-origin: http://ui.example"));
  assert_true(has_hdr(&r[2], "vary: origin"));
  /* a simple request from another origin is refused too, not served
   * without the header (it needs no preflight, so it would still act) */
  assert_int_equal(r[3].status, 403);
  assert_true(err_code_is(&r[3], "cors_denied"));
  assert_null(strstr(r[3].hdrs, "access-control-allow-origin"));
  assert_int_equal(r[4].status, 404);
  assert_int_equal(r[5].status, 204);
  assert_true(has_hdr(&r[5], "allow: get, head, options"));
  /* same origin (the dashboard): served, no CORS headers needed */
  assert_int_equal(r[6].status, 200);
  assert_null(strstr(r[6].hdrs, "access-control-allow-origin"));
}

/* ---- deferred responses ---------------------------------------------------------------- */

static uv_timer_t g_late;
static int g_client_done, g_late_fired;

/* The late answer must reach a live server: whichever of "client done" and
 * "late timer" comes second frees it. */
static void on_late(uv_timer_t *t) {
  struct env *e = t->data;
  /* the 504 went out already: the id is dead */
  e->late_rc = sftd_http_respond(e->srv, g_never_id, 200, json_object());
  uv_close((uv_handle_t *)t, NULL);
  g_late_fired = 1;
  if (g_client_done)
    on_done(&e->done);
}

static void on_done_late(uv_async_t *a) {
  g_client_done = 1;
  if (g_late_fired)
    on_done(a);
}

static void c_deferred(struct env *e) {
  struct hconn c = {.fd = hconnect(e->port)};
  static const char d[] = "POST /api/deferred HTTP/1.1\r\nHost: a\r\n" AUTH
                          "Content-Length: 0\r\n\r\n";
  static const char n[] = "GET /api/never HTTP/1.1\r\nHost: a\r\n" AUTH "\r\n";
  static const char h[] = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
  if (c.fd < 0)
    return;
  send_all(c.fd, d, sizeof(d) - 1);
  hread(&c, &e->r[0], 0);
  send_all(c.fd, n, sizeof(n) - 1);
  hread(&c, &e->r[1], 0);
  send_all(c.fd, h, sizeof(h) - 1); /* the connection is still usable */
  hread(&c, &e->r[2], 0);
  close(c.fd);
}

static void test_deferred(void **state) {
  (void)state;
  struct env e;
  struct sftd_http_config cfg;
  cfg_default(&cfg);
  cfg.deferred_timeout_ms = 150;
  run(&e, &cfg, c_deferred);
  assert_int_equal(e.pending_seen, 1);
  assert_int_equal(e.deferred_rc, 0);
  assert_int_equal(e.r[0].status, 202);
  assert_string_equal(e.r[0].body, "{\"state\":\"paused\"}");
  assert_int_equal(e.r[1].status, 504);
  assert_true(err_code_is(&e.r[1], "timeout"));
  assert_int_equal(e.r[2].status, 200);
  assert_int_equal(e.st.pending, 0);
}

/* A late answer after the timeout, and free with a request still pending
 * and an idle keep-alive connection open. */
static void c_shutdown(struct env *e) {
  struct hconn a = {.fd = hconnect(e->port)};
  struct hconn b = {.fd = hconnect(e->port)};
  static const char n[] = "GET /api/never HTTP/1.1\r\nHost: a\r\n" AUTH "\r\n";
  static const char h[] = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
  if (a.fd < 0 || b.fd < 0)
    return;
  send_all(b.fd, h, sizeof(h) - 1);
  hread(&b, &e->r[0], 0);
  send_all(a.fd, n, sizeof(n) - 1);
  /* let the request reach the handler: a second request on another
   * connection is served after it in order */
  struct hconn c = {.fd = hconnect(e->port)};
  send_all(c.fd, h, sizeof(h) - 1);
  hread(&c, &e->r[1], 0);
  close(c.fd);
  /* ask the loop to free the server now (client_main signals done) and
   * remember the sockets so the check runs after the free */
  e->flags[0] = a.fd;
  e->flags[1] = b.fd;
}

static void test_shutdown_pending(void **state) {
  (void)state;
  struct env e;
  struct sftd_http_config cfg;
  cfg_default(&cfg);
  run(&e, &cfg, c_shutdown);
  assert_int_equal(e.r[0].status, 200);
  assert_int_equal(e.r[1].status, 200);
  /* both connections were closed by the server */
  assert_true(is_eof(e.flags[0]));
  assert_true(is_eof(e.flags[1]));
  close(e.flags[0]);
  close(e.flags[1]);
}

static int h_never_late(const struct sftd_http_req *req,
                        struct sftd_http_resp *resp, void *ud) {
  struct env *e = ud;
  h_never(req, resp, NULL);
  uv_timer_init(&e->loop, &g_late);
  g_late.data = e;
  uv_timer_start(&g_late, on_late, 150, 0);
  return SFTD_HTTP_PENDING;
}

static void c_late(struct env *e) {
  req1(e->port, "GET /api/late HTTP/1.1\r\nHost: a\r\n" AUTH "\r\n", 0,
       &e->r[0]);
}

static void test_deferred_late(void **state) {
  (void)state;
  struct env e;
  struct sftd_http_config cfg;
  cfg_default(&cfg);
  cfg.deferred_timeout_ms = 50;
  memset(&e, 0, sizeof(e));
  /* register the extra route through a custom run */
  assert_int_equal(uv_loop_init(&e.loop), 0);
  assert_int_equal(sftd_http_new(&e.srv, &e.loop, &cfg), 0);
  e.port = sftd_http_port(e.srv);
  assert_int_equal(sftd_http_route(e.srv, SFTD_HTTP_GET, "/api/late",
                                   h_never_late, &e, 0), 0);
  e.client = c_late;
  e.late_rc = 1;
  g_client_done = g_late_fired = 0;
  uv_async_init(&e.loop, &e.done, on_done_late);
  e.done.data = &e;
  uv_timer_init(&e.loop, &e.watchdog);
  e.watchdog.data = &e;
  uv_timer_start(&e.watchdog, on_watchdog, 30000, 0);
  assert_int_equal(pthread_create(&e.th, NULL, client_main, &e), 0);
  uv_run(&e.loop, UV_RUN_DEFAULT);
  pthread_join(e.th, NULL);
  assert_false(e.timed_out);
  assert_int_equal(uv_loop_close(&e.loop), 0);
  assert_null(e.srv);
  assert_int_equal(e.r[0].status, 504);
  /* answered by the server's timeout: a late answer gets NOT_FOUND */
  assert_int_equal(e.late_rc, SFT_ERR_NOT_FOUND);
}

/* ---- keep-alive, pipelining ------------------------------------------------------------ */

static void c_keepalive(struct env *e) {
  struct hconn c = {.fd = hconnect(e->port)};
  static const char g[] =
      "GET /api/transfer/k/progress HTTP/1.1\r\nHost: a\r\n" AUTH "\r\n";
  static const char p0[] = "POST /api/transfer/k/pause HTTP/1.1\r\nHost: a\r\n"
                           AUTH "Content-Length: 0\r\n\r\n";
  static const char p1[] = "POST /api/transfer/send HTTP/1.1\r\nHost: a\r\n"
                           AUTH "Content-Type: application/json\r\n"
                           "Content-Length: 23\r\n\r\n"
                           "{\"path\":\"p\",\"peer\":\"q\"}";
  char pipe[2048];
  int n;
  if (c.fd < 0)
    return;
  for (int i = 0; i < 4; i++) {
    send_all(c.fd, g, sizeof(g) - 1);
    hread(&c, &e->r[i], 0);
  }
  /* pipelined in one write: GET, empty POST, GET */
  n = snprintf(pipe, sizeof(pipe), "%s%s%s", g, p0, g);
  send_all(c.fd, pipe, (size_t)n);
  for (int i = 4; i < 7; i++)
    hread(&c, &e->r[i], 0);
  /* GET, POST with a body, GET: lws 4.1 hands such a pipelined POST its
   * own header bytes as body; it is refused and the connection closed
   * (see http.c on_body/finish) */
  n = snprintf(pipe, sizeof(pipe), "%s%s%s", g, p1, g);
  send_all(c.fd, pipe, (size_t)n);
  hread(&c, &e->r[7], 0);
  hread(&c, &e->r[8], 0);
  hread(&c, &e->r[9], 0);
  close(c.fd);
  /* the loop is not stuck: a new connection is served; Connection: close
   * is honoured */
  c.fd = hconnect(e->port);
  c.len = 0;
  static const char cl[] =
      "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  send_all(c.fd, cl, sizeof(cl) - 1);
  hread(&c, &e->r[10], 0);
  e->flags[0] = is_eof(c.fd);
  close(c.fd);
}

static void test_keepalive(void **state) {
  (void)state;
  struct env e;
  struct sftd_http_config cfg;
  cfg_default(&cfg);
  run(&e, &cfg, c_keepalive);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(e.r[i].status, 200);
    assert_non_null(strstr(e.r[i].body, "\"id\":\"k\""));
    assert_null(strstr(e.r[i].hdrs, "connection: close"));
  }
  assert_int_equal(e.r[4].status, 200);
  assert_int_equal(e.r[5].status, 200);
  assert_null(strstr(e.r[5].hdrs, "connection: close"));
  assert_int_equal(e.r[6].status, 200);
  assert_int_equal(e.r[7].status, 200);
  assert_int_equal(e.r[8].status, 400);
  assert_true(err_code_is(&e.r[8], "pipelining_unsupported"));
  assert_true(has_hdr(&e.r[8], "connection: close"));
  assert_int_equal(e.r[9].status, 0); /* dropped with the connection */
  assert_int_equal(e.r[10].status, 200);
  assert_true(e.flags[0]);
}

/* ---- garbage ------------------------------------------------------------------------------ */

static void c_garbage(struct env *e) {
  int p = e->port;
  uint32_t x = 12345;
  /* random bytes */
  for (int k = 0; k < 4; k++) {
    int fd = hconnect(p);
    char buf[2048];
    for (size_t i = 0; i < sizeof(buf); i++) {
      x = x * 1103515245u + 12345u;
      buf[i] = (char)(x >> 16);
    }
    if (k == 1)
      memcpy(buf, "GET /", 5); /* plausible start */
    send_all(fd, buf, sizeof(buf));
    shutdown(fd, SHUT_WR);
    char sink[4096];
    while (recv(fd, sink, sizeof(sink), 0) > 0)
      ;
    close(fd);
  }
  /* truncated request, then close */
  int fd = hconnect(p);
  send_all(fd, "POST /api/transfer/send HTTP/1.1\r\nHost: a\r\nContent-Le",
           52);
  close(fd);
  /* truncated body, then close */
  fd = hconnect(p);
  static const char tb[] = "POST /api/transfer/send HTTP/1.1\r\nHost: a\r\n"
                           AUTH "Content-Type: application/json\r\n"
                           "Content-Length: 100\r\n\r\n{\"pa";
  send_all(fd, tb, sizeof(tb) - 1);
  close(fd);
  /* enormous header */
  {
    static char big[16384];
    size_t n = (size_t)snprintf(big, sizeof(big),
                                "GET /healthz HTTP/1.1\r\nX-Big: ");
    memset(big + n, 'a', sizeof(big) - n - 4);
    memcpy(big + sizeof(big) - 4, "\r\n\r\n", 4);
    struct hresp r;
    req1(p, big, sizeof(big), &r);
    e->flags[0] = r.status; /* an error or a close, never 200 */
  }
  req1(p, "GET /" "%00%ff/../../etc HTTP/1.1\r\nHost: a\r\n" AUTH "\r\n", 0,
       &e->r[1]);
  req1(p, "BREW /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 0, &e->r[2]);
  req1(p, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 0, &e->r[0]);
}

static void test_garbage(void **state) {
  (void)state;
  struct env e;
  struct sftd_http_config cfg;
  cfg_default(&cfg);
  run(&e, &cfg, c_garbage);
  assert_int_equal(e.r[0].status, 200); /* still answering */
  assert_int_not_equal(e.flags[0], 200);
  assert_true(e.r[1].status == 0 || (e.r[1].status >= 400 &&
                                     e.r[1].status < 500));
  assert_int_not_equal(e.r[2].status, 200);
}

/* ---- pure parts ------------------------------------------------------------------------------ */

static int h_dummy(const struct sftd_http_req *req, struct sftd_http_resp *resp,
                   void *ud) {
  (void)req;
  (void)resp;
  (void)ud;
  return SFTD_HTTP_DONE;
}

static void test_router_pure(void **state) {
  (void)state;
  static struct sftd_http_router r;
  struct sftd_http_req req;
  const struct sftd_http_route *rt;
  unsigned allow;
  char buf[256];
  sftd_http_router_init(&r);
  assert_int_equal(sftd_http_router_add(&r, SFTD_HTTP_GET, "/a/{x}/b/{y}",
                                        h_dummy, NULL, 0), 0);
  assert_int_equal(sftd_http_router_add(&r, SFTD_HTTP_GET, "/a/{x}/b/{y}",
                                        h_dummy, NULL, 0), SFT_ERR_EXISTS);
  assert_int_equal(sftd_http_router_add(&r, SFTD_HTTP_DELETE, "/a/{x}/b/{y}",
                                        h_dummy, NULL, 0), 0);
  assert_int_equal(sftd_http_router_add(&r, SFTD_HTTP_GET, "/a//b", h_dummy,
                                        NULL, 0), SFT_ERR_INVAL);
  assert_int_equal(sftd_http_router_add(&r, SFTD_HTTP_GET, "a", h_dummy, NULL,
                                        0), SFT_ERR_INVAL);
  assert_int_equal(sftd_http_router_add(&r, SFTD_HTTP_GET, "/a/{x", h_dummy,
                                        NULL, 0), SFT_ERR_INVAL);
  assert_int_equal(sftd_http_router_add(&r, 0, "/z", h_dummy, NULL, 0),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_http_router_add(&r, SFTD_HTTP_GET, "/", h_dummy, NULL,
                                        0), 0);
  assert_int_equal(sftd_http_router_match(&r, SFTD_HTTP_GET, "/a/1/b/22", 9,
                                          &req, buf, sizeof(buf), &rt, &allow),
                   0);
  assert_int_equal(req.nparams, 2);
  assert_string_equal(sftd_http_param(&req, "x"), "1");
  assert_string_equal(sftd_http_param(&req, "y"), "22");
  assert_null(sftd_http_param(&req, "z"));
  assert_int_equal(sftd_http_router_match(&r, SFTD_HTTP_POST, "/a/1/b/22", 9,
                                          &req, buf, sizeof(buf), &rt, &allow),
                   SFT_ERR_UNSUPPORTED);
  assert_int_equal(allow, SFTD_HTTP_GET | SFTD_HTTP_DELETE);
  assert_int_equal(sftd_http_router_match(&r, SFTD_HTTP_GET, "/a/1/b/", 7,
                                          &req, buf, sizeof(buf), &rt, &allow),
                   SFT_ERR_NOT_FOUND);
  assert_int_equal(sftd_http_router_match(&r, SFTD_HTTP_GET, "/a/1/b/2/", 9,
                                          &req, buf, sizeof(buf), &rt, &allow),
                   SFT_ERR_NOT_FOUND);
  assert_int_equal(sftd_http_router_match(&r, SFTD_HTTP_HEAD, "/", 1, &req,
                                          buf, sizeof(buf), &rt, &allow), 0);
  assert_int_equal(sftd_http_router_match(&r, SFTD_HTTP_GET, "/a/1/b/22", 9,
                                          &req, buf, 4, &rt, &allow),
                   SFT_ERR_TOO_LARGE);

  char methods[64];
  sftd_http_methods_str(SFTD_HTTP_GET | SFTD_HTTP_POST, methods,
                        sizeof(methods));
  assert_string_equal(methods, "GET, POST");

  char q1[] = "a=1", q2[] = "flag", q3[] = "b=x=y";
  memset(&req, 0, sizeof(req));
  sftd_http_query_add(&req, q1);
  sftd_http_query_add(&req, q2);
  sftd_http_query_add(&req, q3);
  assert_string_equal(sftd_http_query(&req, "a"), "1");
  assert_string_equal(sftd_http_query(&req, "flag"), "");
  assert_string_equal(sftd_http_query(&req, "b"), "x=y");
}

static void test_auth_pure(void **state) {
  (void)state;
  const char *t;
  size_t tl;
  assert_true(sftd_http_token_eq("secret", "secret", 6));
  assert_false(sftd_http_token_eq("secret", "secreT", 6));
  assert_false(sftd_http_token_eq("secret", "secre", 5));
  assert_false(sftd_http_token_eq("secret", "secretx", 7));
  assert_false(sftd_http_token_eq("secret", "", 0));
  assert_int_equal(sftd_http_bearer("Bearer abc", 10, &t, &tl), 0);
  assert_int_equal(tl, 3);
  assert_memory_equal(t, "abc", 3);
  assert_int_equal(sftd_http_bearer("bearer  abc ", 12, &t, &tl), 0);
  assert_int_equal(tl, 3);
  assert_int_equal(sftd_http_bearer("Basic abc", 9, &t, &tl), SFT_ERR_AUTH);
  assert_int_equal(sftd_http_bearer("Bearer ", 7, &t, &tl), SFT_ERR_AUTH);
}

static void test_ratelimit_pure(void **state) {
  (void)state;
  static struct sftd_ratelimit rl;
  uint32_t retry;
  const uint8_t a[4] = {127, 0, 0, 1}, b[4] = {10, 0, 0, 1};
  sftd_ratelimit_init(&rl, 10, 3);
  for (int i = 0; i < 3; i++)
    assert_int_equal(sftd_ratelimit_take(&rl, a, 4, 1000, &retry), 0);
  assert_int_equal(sftd_ratelimit_take(&rl, a, 4, 1000, &retry),
                   SFT_ERR_AGAIN);
  assert_int_equal(retry, 1);
  assert_int_equal(sftd_ratelimit_take(&rl, b, 4, 1000, &retry), 0);
  assert_int_equal(sftd_ratelimit_take(&rl, a, 4, 1099, &retry),
                   SFT_ERR_AGAIN); /* 0.99 token */
  assert_int_equal(sftd_ratelimit_take(&rl, a, 4, 1100, &retry), 0);
  assert_int_equal(sftd_ratelimit_take(&rl, a, 4, 100000, &retry), 0);
  assert_int_equal(sftd_ratelimit_take(&rl, a, 4, 100000, &retry), 0);
  assert_int_equal(sftd_ratelimit_take(&rl, a, 4, 100000, &retry), 0);
  assert_int_equal(sftd_ratelimit_take(&rl, a, 4, 100000, &retry),
                   SFT_ERR_AGAIN); /* refill capped at the burst */
  /* many clients: the table evicts, never fails */
  for (uint32_t i = 0; i < 5000; i++) {
    uint8_t k[4];
    memcpy(k, &i, 4);
    assert_int_equal(sftd_ratelimit_take(&rl, k, 4, 200000 + i, &retry), 0);
  }
  sftd_ratelimit_init(&rl, 0, 0);
  assert_int_equal(sftd_ratelimit_take(&rl, a, 4, 0, &retry), 0);
}

static void test_json_check_pure(void **state) {
  (void)state;
  char msg[128];
  json_t *j = json_pack("{s:s,s:i}", "path", "x", "streams", 3);
  assert_int_equal(sftd_http_json_check(j, send_fields, 4, msg, sizeof(msg)),
                   SFT_ERR_INVAL);
  assert_string_equal(msg, "missing field 'peer'");
  json_object_set_new(j, "peer", json_string("p"));
  assert_int_equal(sftd_http_json_check(j, send_fields, 4, msg, sizeof(msg)),
                   0);
  json_object_set_new(j, "verify", json_integer(1));
  assert_int_equal(sftd_http_json_check(j, send_fields, 4, msg, sizeof(msg)),
                   SFT_ERR_INVAL);
  assert_string_equal(msg, "field 'verify' must be a boolean");
  json_object_del(j, "verify");
  json_object_set_new(j, "a\nb\"", json_true());
  assert_int_equal(sftd_http_json_check(j, send_fields, 4, msg, sizeof(msg)),
                   SFT_ERR_INVAL);
  assert_string_equal(msg, "unknown field 'a?b?'");
  json_decref(j);
  assert_int_equal(sftd_http_json_check(NULL, send_fields, 4, msg,
                                        sizeof(msg)), SFT_ERR_INVAL);
  assert_int_equal(sftd_http_json_check(NULL, send_fields + 2, 2, msg,
                                        sizeof(msg)), 0);
}

/* ---- config, token file ------------------------------------------------------------------------ */

static void test_new_errors(void **state) {
  (void)state;
  uv_loop_t loop;
  sftd_http *s = (sftd_http *)1, *s2;
  struct sftd_http_config cfg;
  assert_int_equal(uv_loop_init(&loop), 0);
  cfg_default(&cfg);
  cfg.token = NULL;
  assert_int_equal(sftd_http_new(&s, &loop, &cfg), SFT_ERR_INVAL);
  assert_null(s);
  cfg.token = TOKEN;
  cfg.addr = "not-an-ip";
  assert_int_equal(sftd_http_new(&s, &loop, &cfg), SFT_ERR_INVAL);
  cfg.addr = "127.0.0.1";
  assert_int_equal(sftd_http_new(&s, &loop, &cfg), 0);
  /* the same port again: bind fails cleanly */
  cfg.port = sftd_http_port(s);
  assert_int_equal(sftd_http_new(&s2, &loop, &cfg), SFT_ERR_IO);
  assert_null(s2);
  sftd_http_free(s);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_token_file(void **state) {
  (void)state;
  char dir[] = "/tmp/sft_http_tokXXXXXX", path[256], t1[80], t2[80];
  struct stat st;
  assert_non_null(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/api.token", dir);
  assert_int_equal(sftd_http_token_load_or_create(path, t1, sizeof(t1)), 0);
  assert_int_equal(strlen(t1), 64);
  for (size_t i = 0; i < 64; i++)
    assert_non_null(strchr("0123456789abcdef", t1[i]));
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(sftd_http_token_load_or_create(path, t2, sizeof(t2)), 0);
  assert_string_equal(t1, t2);
  assert_int_equal(sftd_http_token_load_or_create(path, t2, 10),
                   SFT_ERR_INVAL);
  chmod(path, 0644);
  assert_int_equal(sftd_http_token_load_or_create(path, t2, sizeof(t2)),
                   SFT_ERR_AUTH);
  unlink(path);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "has space in it\n", 16), 16);
  close(fd);
  assert_int_equal(sftd_http_token_load_or_create(path, t2, sizeof(t2)),
                   SFT_ERR_MALFORMED);
  unlink(path);
  fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  static char big[4096];
  memset(big, 'a', sizeof(big));
  assert_int_equal(write(fd, big, sizeof(big)), (ssize_t)sizeof(big));
  close(fd);
  assert_int_equal(sftd_http_token_load_or_create(path, t2, sizeof(t2)),
                   SFT_ERR_MALFORMED);
  unlink(path);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_router_pure),
      cmocka_unit_test(test_auth_pure),
      cmocka_unit_test(test_ratelimit_pure),
      cmocka_unit_test(test_json_check_pure),
      cmocka_unit_test(test_token_file),
      cmocka_unit_test(test_new_errors),
      cmocka_unit_test(test_routes_auth),
      cmocka_unit_test(test_json_bodies),
      cmocka_unit_test(test_rate_limit),
      cmocka_unit_test(test_cors),
      cmocka_unit_test(test_deferred),
      cmocka_unit_test(test_deferred_late),
      cmocka_unit_test(test_shutdown_pending),
      cmocka_unit_test(test_keepalive),
      cmocka_unit_test(test_garbage),
  };
  if (getenv("SFT_TEST_FILTER"))
    cmocka_set_test_filter(getenv("SFT_TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
