/*
 * libwebsockets glue of the HTTP control API: one lws context on the
 * daemon's libuv loop (LWS_SERVER_OPTION_LIBUV + foreign_loops), one HTTP
 * protocol whose callback routes every request.
 *
 * Why the shapes below:
 * - lws frees and re-zeroes the per-session user space after every HTTP/1
 *   transaction (lws_bind_protocol), so `struct pss` is per request and all
 *   its resources are released in cleanup() from DROP_PROTOCOL / CLOSED_HTTP.
 * - Responses go out as one lws_write(LWS_WRITE_HTTP) of headers + body,
 *   the way lws_return_http_status does for HTTP/1; lws buffers a partial
 *   write itself and defers transaction completion until it drains. The
 *   build buffers are per server and reused, so a GET allocates nothing of
 *   ours besides what Jansson needs for the handler's body.
 * - An error found before a request body is read (401, 413, 415, 429, ...)
 *   is answered with "Connection: close" and the connection is closed: the
 *   body is never read or buffered.
 * - Deferred (PENDING) requests sit in a list ordered by deadline (all share
 *   one timeout, so append order is deadline order) with one uv timer.
 * - WebSocket /ws is a second protocol ("sft.v1") made the vhost default
 *   (pvo "default"), so upgrades without Sec-WebSocket-Protocol bind to it;
 *   plain HTTP still goes to protocols[0] (no mounts). The upgrade is vetted
 *   in HTTP_CONFIRM_UPGRADE, which lws sends to whichever protocol the wsi is
 *   bound to, so both callbacks call ws_confirm(). Each broadcast is one
 *   refcounted buffer with LWS_PRE headroom shared by every client queue;
 *   SERVER_WRITEABLE writes one message and asks again. lws may overwrite
 *   the LWS_PRE bytes with the frame header, which is identical for every
 *   client (server frames are unmasked; no extensions are enabled).
 */
#define _GNU_SOURCE
#ifndef NDEBUG
#define NDEBUG /* lws_config.h defines _DEBUG otherwise */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/api/http.h"

#define MAX_ORIGINS 16
#define ORIGIN_MAX 256
#define HDR_SPACE 1024 /* room for our response headers */
#define QBUF 1024
#define MAX_LWS_HANDLES 32

struct sftd_http_resp {
  int status;
  int set;
  json_t *json;     /* owned */
  const char *text; /* borrowed (server text buffer or pss copy) */
  size_t text_len;
  char ctype[96];
  sftd_http *srv;
};

enum pss_state { ST_NEW = 0, ST_BODY, ST_PENDING, ST_READY, ST_DONE };

struct pss {
  sftd_http *srv;
  struct lws *wsi;
  enum pss_state state;
  int cors_ok;
  int in_pending;
  int body_close; /* a body was read: close after answering (see top) */
  int bad_pipeline;
  const struct sftd_http_route *route;
  struct sftd_http_req req;
  uint8_t *body; /* malloc'd, at most body_limit (+1 for a NUL) */
  size_t body_len, body_cap, content_length;
  /* deferred */
  struct pss *next, *prev;
  uint64_t deadline_ms;
  struct sftd_http_resp d;
  char *d_text;
  char origin[ORIGIN_MAX];
  char path[SFTD_HTTP_PATH_MAX];
  char pbuf[SFTD_HTTP_PATH_MAX + 2 * SFTD_HTTP_MAX_PARAMS];
  char qbuf[QBUF];
  char remote[INET6_ADDRSTRLEN];
};

/* A queued WebSocket message: LWS_PRE headroom, then the payload. */
struct wsmsg {
  size_t refs;
  size_t len;
  uint8_t buf[]; /* LWS_PRE + len */
};

/* WebSocket per-session data (zeroed by lws when bound). */
struct wsc {
  sftd_http *srv; /* NULL until ESTABLISHED and after release */
  struct lws *wsi;
  struct wsc *next, *prev;
  uint64_t id;
  struct wsmsg **q; /* ring of srv->ws_qmsgs */
  size_t qhead, qn, qbytes;
  uint8_t *rx; /* message being received, ws_max_msg bytes */
  size_t rxlen;
  int in_msg;
  char (*topics)[SFTD_WS_TOPIC_MAX + 1];
  size_t ntopics;
};

/* One throttled key. */
struct thr {
  struct thr *next;
  uint64_t last_ms; /* when a message for this key was last sent */
  unsigned interval;
  char *pending; /* the latest unsent message (malloc) or NULL */
  size_t plen;
  char topic[SFTD_WS_TOPIC_MAX + 1];
  char key[SFTD_WS_TOPIC_MAX + 1];
};

struct sftd_http {
  uv_loop_t *loop;
  struct lws_context *ctx;
  struct sftd_http_router router;
  struct sftd_ratelimit rl;
  char token[SFTD_HTTP_TOKEN_MAX + 1];
  char origins[MAX_ORIGINS][ORIGIN_MAX];
  size_t norigins;
  size_t body_limit;
  unsigned deferred_timeout_ms;
  int port;
  uint64_t next_id;
  struct pss *phead, *ptail; /* pending, by deadline */
  uv_timer_t timer;
  uv_idle_t reaper; /* finishes the lws destroy, see sftd_http_free */
  int closing_handles;
  void *lws_handles[MAX_LWS_HANDLES]; /* lws' own uv handles */
  int lws_htype[MAX_LWS_HANDLES];
  size_t n_lws_handles;
  int lws_alive;
  struct sftd_http_stats st;
  uint8_t *out; /* LWS_PRE + headers + body */
  size_t out_cap;
  char *jbuf; /* serialized JSON */
  size_t jbuf_cap;
  char *tbuf; /* text bodies of immediate responses */
  size_t tbuf_cap;
  struct lws_protocols protocols[3];
  struct lws_protocol_vhost_options pvo, pvo_default;
  char addr[INET6_ADDRSTRLEN];
  /* WebSocket */
  struct wsc *ws_head;
  size_t ws_n;
  uint64_t ws_next_id;
  unsigned ws_max_clients;
  size_t ws_qmsgs, ws_qbytes, ws_max_msg;
  sftd_http_ws_msg_fn ws_fn;
  void *ws_ud;
  struct thr *thr_head;
  size_t thr_n;
  uv_timer_t thr_timer;
};

/* ---- small helpers --------------------------------------------------------- */

void sftd_http_config_default(struct sftd_http_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->addr = "127.0.0.1";
  cfg->port = 8080;
  cfg->body_limit = 1u << 20;
  cfg->rate_per_s = 200;
  cfg->rate_burst = 0; /* 2 * rate_per_s, whatever rate the caller sets */
  cfg->timeout_s = 20;
  cfg->keepalive_s = 5;
  cfg->deferred_timeout_ms = 30000;
  cfg->ws_max_clients = 256;
  cfg->ws_queue_msgs = 256;
  cfg->ws_queue_bytes = 1u << 20;
  cfg->ws_max_msg = 4096;
}

static int grow(void *pp, size_t *cap, size_t need) {
  void **p = pp;
  size_t n = *cap ? *cap : 4096;
  void *q;
  if (need <= *cap)
    return 0;
  while (n < need)
    n *= 2;
  q = realloc(*p, n);
  if (!q)
    return SFT_ERR_NOMEM;
  *p = q;
  *cap = n;
  return 0;
}

static void resp_reset(struct sftd_http_resp *r) {
  json_decref(r->json);
  r->json = NULL;
  r->text = NULL;
  r->text_len = 0;
  r->ctype[0] = '\0';
  r->set = 0;
  r->status = 0;
}

void sftd_http_resp_json(struct sftd_http_resp *resp, int status,
                         json_t *body) {
  resp_reset(resp);
  resp->status = status;
  resp->json = body;
  resp->set = 1;
}

int sftd_http_resp_text(struct sftd_http_resp *resp, int status,
                        const char *ctype, const char *data, size_t len) {
  sftd_http *srv = resp->srv;
  resp_reset(resp);
  if (grow(&srv->tbuf, &srv->tbuf_cap, len + 1))
    return SFT_ERR_NOMEM;
  if (len)
    memcpy(srv->tbuf, data, len);
  resp->status = status;
  resp->text = srv->tbuf;
  resp->text_len = len;
  snprintf(resp->ctype, sizeof(resp->ctype), "%s",
           ctype ? ctype : "text/plain");
  resp->set = 1;
  return 0;
}

static json_t *error_body(const char *code, const char *msg) {
  return json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
}

void sftd_http_resp_error(struct sftd_http_resp *resp, int status,
                          const char *code, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  sftd_http_resp_json(resp, status, error_body(code, msg));
}

int sftd_http_validate(struct sftd_http_resp *resp, const json_t *body,
                       const struct sftd_http_field *fields, size_t n) {
  char msg[256];
  int rc = sftd_http_json_check(body, fields, n, msg, sizeof(msg));
  if (rc)
    sftd_http_resp_error(resp, 400, "invalid_field", "%s", msg);
  return rc;
}

int sftd_http_unpack(struct sftd_http_resp *resp, json_t *body,
                     const char *fmt, ...) {
  json_error_t err;
  va_list ap;
  int rc;
  if (!body) {
    sftd_http_resp_error(resp, 400, "invalid_body", "a JSON body is required");
    return SFT_ERR_INVAL;
  }
  va_start(ap, fmt);
  rc = json_vunpack_ex(body, &err, JSON_STRICT, fmt, ap);
  va_end(ap);
  if (rc) {
    sftd_http_resp_error(resp, 400, "invalid_field", "%s", err.text);
    return SFT_ERR_INVAL;
  }
  return 0;
}

/* ---- writing responses ---------------------------------------------------- */

struct extra {
  unsigned allow;     /* Allow: header for 405 / OPTIONS */
  uint32_t retry;     /* Retry-After */
  int www_auth;       /* WWW-Authenticate: Bearer */
  int close;          /* Connection: close, then close */
  int preflight;      /* CORS preflight headers (allow = methods) */
};

static int add_hdr(struct lws *wsi, const char *name, const char *val,
                   unsigned char **p, unsigned char *end) {
  return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                     (const unsigned char *)val,
                                     (int)strlen(val), p, end);
}

/* Writes status + headers + body in one lws_write. Returns 0 or -1 (the
 * caller closes the connection). */
static int write_resp(struct pss *ps, struct lws *wsi, int status,
                      const char *ctype, const char *body, size_t blen,
                      const struct extra *x) {
  sftd_http *srv = ps->srv;
  unsigned char *start, *p, *end;
  char num[32], methods[96];
  size_t wlen = ps->req.method == SFTD_HTTP_HEAD ? 0 : blen;

  if (grow(&srv->out, &srv->out_cap, LWS_PRE + HDR_SPACE + wlen))
    return -1;
  start = srv->out + LWS_PRE;
  p = start;
  end = start + HDR_SPACE - 1;
  if (status >= 500)
    srv->st.errors_5xx++;
  else if (status >= 400)
    srv->st.errors_4xx++;
  if (lws_add_http_header_status(wsi, (unsigned)status, &p, end))
    return -1;
  if (ctype && lws_add_http_header_by_token(
                   wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                   (const unsigned char *)ctype, (int)strlen(ctype), &p, end))
    return -1;
  snprintf(num, sizeof(num), "%zu", blen);
  if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH,
                                   (const unsigned char *)num,
                                   (int)strlen(num), &p, end))
    return -1;
  if (x && x->allow) {
    sftd_http_methods_str(x->allow | SFTD_HTTP_OPTIONS |
                              ((x->allow & SFTD_HTTP_GET) ? SFTD_HTTP_HEAD : 0),
                          methods, sizeof(methods));
    if (add_hdr(wsi, x->preflight ? "access-control-allow-methods:" : "allow:",
                methods, &p, end))
      return -1;
  }
  if (x && x->preflight &&
      (add_hdr(wsi, "access-control-allow-headers:",
               "Authorization, Content-Type", &p, end) ||
       add_hdr(wsi, "access-control-max-age:", "600", &p, end)))
    return -1;
  if (x && x->retry) {
    snprintf(num, sizeof(num), "%u", (unsigned)x->retry);
    if (add_hdr(wsi, "retry-after:", num, &p, end))
      return -1;
  }
  if (x && x->www_auth &&
      add_hdr(wsi, "www-authenticate:", "Bearer realm=\"sft\"", &p, end))
    return -1;
  if (ps->cors_ok && (add_hdr(wsi, "access-control-allow-origin:",
                              ps->origin, &p, end) ||
                      add_hdr(wsi, "vary:", "Origin", &p, end)))
    return -1;
  if (add_hdr(wsi, "cache-control:", "no-store", &p, end) ||
      add_hdr(wsi, "x-content-type-options:", "nosniff", &p, end))
    return -1;
  if (x && x->close &&
      lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION,
                                   (const unsigned char *)"close", 5, &p, end))
    return -1;
  if (lws_finalize_http_header(wsi, &p, end))
    return -1;
  if (wlen)
    memcpy(p, body, wlen);
  size_t n = (size_t)(p - start) + wlen;
  if (lws_write(wsi, start, n, LWS_WRITE_HTTP) != (int)n)
    return -1;
  return 0;
}

/* Serializes and sends |r| (consumed). */
static int send_resp(struct pss *ps, struct lws *wsi, struct sftd_http_resp *r,
                     const struct extra *x) {
  sftd_http *srv = ps->srv;
  int rc;
  if (!r->set) {
    sftd_http_resp_error(r, 500, "internal", "the handler gave no response");
  }
  if (r->json) {
    size_t need = json_dumpb(r->json, srv->jbuf, srv->jbuf_cap, JSON_COMPACT);
    if (need > srv->jbuf_cap) {
      if (grow(&srv->jbuf, &srv->jbuf_cap, need)) {
        resp_reset(r);
        return -1;
      }
      need = json_dumpb(r->json, srv->jbuf, srv->jbuf_cap, JSON_COMPACT);
    }
    if (need == 0) { /* cannot serialize (e.g. NaN) */
      resp_reset(r);
      static const char b[] =
          "{\"error\":{\"code\":\"internal\",\"message\":\"unserializable\"}}";
      return write_resp(ps, wsi, 500, "application/json", b, sizeof(b) - 1, x);
    }
    rc = write_resp(ps, wsi, r->status, "application/json", srv->jbuf, need, x);
  } else if (r->text) {
    rc = write_resp(ps, wsi, r->status, r->ctype, r->text, r->text_len, x);
  } else {
    rc = write_resp(ps, wsi, r->status, NULL, NULL, 0, x);
  }
  resp_reset(r);
  return rc;
}

/* Sends an error and finishes the transaction: returns the callback's
 * return value (-1 closes). */
static int fail(struct pss *ps, struct lws *wsi, int status, const char *code,
                const char *msg, struct extra *x) {
  struct sftd_http_resp r = {.srv = ps->srv};
  struct extra none = {0};
  if (!x)
    x = &none;
  if (ps->state == ST_BODY || ps->content_length || ps->body_close)
    x->close = 1; /* body unread, or read (see finish()) */
  sftd_http_resp_json(&r, status, error_body(code, msg));
  if (send_resp(ps, wsi, &r, x) || x->close)
    return -1;
  ps->state = ST_DONE;
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- pending list ---------------------------------------------------------- */

static void pending_unlink(sftd_http *srv, struct pss *ps) {
  if (!ps->in_pending)
    return;
  if (ps->prev)
    ps->prev->next = ps->next;
  else
    srv->phead = ps->next;
  if (ps->next)
    ps->next->prev = ps->prev;
  else
    srv->ptail = ps->prev;
  ps->next = ps->prev = NULL;
  ps->in_pending = 0;
  srv->st.pending--;
}

static void on_deadline(uv_timer_t *t);

static void arm_timer(sftd_http *srv) {
  if (!srv->phead) {
    uv_timer_stop(&srv->timer);
    return;
  }
  uint64_t now = uv_now(srv->loop);
  uint64_t d = srv->phead->deadline_ms > now ? srv->phead->deadline_ms - now : 0;
  uv_timer_start(&srv->timer, on_deadline, d, 0);
}

static void cleanup(struct pss *ps) {
  if (ps->srv)
    pending_unlink(ps->srv, ps);
  free(ps->body);
  ps->body = NULL;
  ps->body_cap = ps->body_len = 0;
  resp_reset(&ps->d);
  free(ps->d_text);
  ps->d_text = NULL;
  if (ps->req.body) {
    json_decref(ps->req.body);
    ps->req.body = NULL;
  }
}

static void on_deadline(uv_timer_t *t) {
  sftd_http *srv = t->data;
  uint64_t now = uv_now(srv->loop);
  while (srv->phead && srv->phead->deadline_ms <= now) {
    struct pss *ps = srv->phead;
    pending_unlink(srv, ps);
    ps->d.srv = srv;
    sftd_http_resp_error(&ps->d, 504, "timeout",
                         "the operation did not complete in time");
    ps->state = ST_READY;
    lws_callback_on_writable(ps->wsi);
  }
  arm_timer(srv);
}

static struct pss *pending_find(sftd_http *srv, uint64_t id) {
  for (struct pss *ps = srv->phead; ps; ps = ps->next)
    if (ps->req.id == id)
      return ps;
  return NULL;
}

int sftd_http_respond(sftd_http *srv, uint64_t id, int status, json_t *body) {
  struct pss *ps = srv ? pending_find(srv, id) : NULL;
  if (!ps) {
    json_decref(body);
    return SFT_ERR_NOT_FOUND;
  }
  pending_unlink(srv, ps);
  arm_timer(srv);
  ps->d.srv = srv;
  sftd_http_resp_json(&ps->d, status, body);
  ps->state = ST_READY;
  lws_callback_on_writable(ps->wsi);
  return 0;
}

int sftd_http_respond_text(sftd_http *srv, uint64_t id, int status,
                           const char *ctype, const char *data, size_t len) {
  struct pss *ps = srv ? pending_find(srv, id) : NULL;
  char *copy;
  if (!ps)
    return SFT_ERR_NOT_FOUND;
  copy = malloc(len ? len : 1);
  if (!copy)
    return SFT_ERR_NOMEM;
  if (len)
    memcpy(copy, data, len);
  pending_unlink(srv, ps);
  arm_timer(srv);
  ps->d.srv = srv;
  resp_reset(&ps->d);
  free(ps->d_text);
  ps->d_text = copy;
  ps->d.status = status;
  ps->d.text = copy;
  ps->d.text_len = len;
  snprintf(ps->d.ctype, sizeof(ps->d.ctype), "%s",
           ctype ? ctype : "text/plain");
  ps->d.set = 1;
  ps->state = ST_READY;
  lws_callback_on_writable(ps->wsi);
  return 0;
}

/* ---- request processing ------------------------------------------------------ */

static unsigned req_method(struct lws *wsi) {
  static const struct {
    enum lws_token_indexes tok;
    unsigned m;
  } t[] = {{WSI_TOKEN_GET_URI, SFTD_HTTP_GET},
           {WSI_TOKEN_POST_URI, SFTD_HTTP_POST},
           {WSI_TOKEN_PUT_URI, SFTD_HTTP_PUT},
           {WSI_TOKEN_DELETE_URI, SFTD_HTTP_DELETE},
           {WSI_TOKEN_PATCH_URI, SFTD_HTTP_PATCH},
           {WSI_TOKEN_HEAD_URI, SFTD_HTTP_HEAD},
           {WSI_TOKEN_OPTIONS_URI, SFTD_HTTP_OPTIONS}};
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
    if (lws_hdr_total_length(wsi, t[i].tok))
      return t[i].m;
  return 0;
}

/* Peer address: text into ps->remote, raw bytes for the rate limiter. */
static size_t peer_key(struct pss *ps, struct lws *wsi, uint8_t key[16]) {
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  int fd = lws_get_socket_fd(wsi);
  snprintf(ps->remote, sizeof(ps->remote), "?");
  if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &sl))
    return 0;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    memcpy(key, &a->sin_addr, 4);
    inet_ntop(AF_INET, &a->sin_addr, ps->remote, sizeof(ps->remote));
    return 4;
  }
  if (ss.ss_family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &a->sin6_addr, ps->remote, sizeof(ps->remote));
    if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
      memcpy(key, &a->sin6_addr.s6_addr[12], 4);
      return 4;
    }
    memcpy(key, &a->sin6_addr, 16);
    return 16;
  }
  return 0;
}

static int same_origin(struct lws *wsi, const char *origin);

static int origin_allowed(const sftd_http *srv, const char *o) {
  for (size_t i = 0; i < srv->norigins; i++)
    if (!strcmp(srv->origins[i], o))
      return 1;
  return 0;
}

static int is_json_ctype(const char *ct) {
  size_t n = strlen("application/json");
  if (strncasecmp(ct, "application/json", n))
    return 0;
  return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

/* Sends |r| and ends the transaction; callback result. After a non-empty
 * body the connection is closed instead of kept: lws 4.1 (up to 4.5)
 * spins forever in lws_http_action's buflist loop when a transaction that
 * read a body from its buflist completes inside BODY_COMPLETION while more
 * pipelined bytes follow (lws_read_h1 consumes 0 bytes in
 * LRS_DEFERRING_ACTION). Closing leaves that loop via bail. */
static int finish(struct pss *ps, struct lws *wsi, struct sftd_http_resp *r) {
  struct extra x = {0};
  x.close = ps->body_close;
  if (send_resp(ps, wsi, r, &x) || x.close)
    return -1;
  ps->state = ST_DONE;
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* Runs the handler and answers (or parks the request). Callback result. */
static int dispatch(struct pss *ps, struct lws *wsi) {
  sftd_http *srv = ps->srv;
  struct sftd_http_resp r = {.srv = srv};
  int rc = ps->route->fn(&ps->req, &r, ps->route->ud);
  if (rc == SFTD_HTTP_PENDING) {
    resp_reset(&r);
    ps->state = ST_PENDING;
    ps->deadline_ms = uv_now(srv->loop) + srv->deferred_timeout_ms;
    ps->prev = srv->ptail;
    ps->next = NULL;
    if (srv->ptail)
      srv->ptail->next = ps;
    else
      srv->phead = ps;
    srv->ptail = ps;
    ps->in_pending = 1;
    srv->st.pending++;
    if (srv->phead == ps)
      arm_timer(srv);
    /* the request is not idle: keep lws from timing it out before ours */
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    return 0;
  }
  return finish(ps, wsi, &r);
}

/* Parses Content-Length strictly. 0: absent (*present = 0) or parsed. */
static int content_length(struct lws *wsi, size_t *out, int *present) {
  char buf[32];
  int n;
  *present = 0;
  *out = 0;
  if (!lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH))
    return 0;
  n = lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_CONTENT_LENGTH);
  if (n <= 0 || n > 18)
    return -1;
  size_t v = 0;
  for (int i = 0; i < n; i++) {
    if (buf[i] < '0' || buf[i] > '9')
      return -1;
    v = v * 10 + (size_t)(buf[i] - '0');
  }
  *present = 1;
  *out = v;
  return 0;
}

static int on_http(struct pss *ps, struct lws *wsi, const char *uri,
                   size_t len) {
  sftd_http *srv = lws_context_user(lws_get_context(wsi));
  struct extra x = {0};
  uint8_t key[16];
  size_t klen, cl = 0, qused = 0;
  int cl_present, rc;
  unsigned allow = 0;
  char hdr[SFTD_HTTP_TOKEN_MAX + 16];

  memset(&ps->req, 0, sizeof(ps->req));
  ps->srv = srv;
  ps->wsi = wsi;
  ps->state = ST_NEW;
  srv->st.requests++;
  ps->req.id = ++srv->next_id;
  ps->req.method = req_method(wsi);
  klen = peer_key(ps, wsi, key);
  ps->req.remote = ps->remote;

  if (content_length(wsi, &cl, &cl_present)) {
    ps->content_length = 1; /* force close */
    return fail(ps, wsi, 400, "bad_request", "invalid Content-Length", NULL);
  }
  ps->content_length = cl;
  /* lws reads a body for POST with an explicit length (even 0) or any
   * positive length */
  if (cl > 0 || (cl_present && ps->req.method == SFTD_HTTP_POST))
    ps->state = ST_BODY;

  if (klen && srv->rl.rate) {
    uint32_t retry = 0;
    if (sftd_ratelimit_take(&srv->rl, key, klen, uv_now(srv->loop), &retry)) {
      srv->st.rate_limited++;
      x.retry = retry;
      return fail(ps, wsi, 429, "rate_limited", "too many requests", &x);
    }
  }
  if (!ps->req.method)
    return fail(ps, wsi, 501, "not_implemented", "method not supported",
                NULL);
  if ((ps->req.method &
       (SFTD_HTTP_POST | SFTD_HTTP_PUT | SFTD_HTTP_PATCH)) &&
      !cl_present) {
    ps->content_length = 1; /* lws would wait for a body: close */
    return fail(ps, wsi, 411, "length_required",
                "a Content-Length header is required", NULL);
  }
  if (len == 0 || len >= sizeof(ps->path))
    return fail(ps, wsi, 414, "uri_too_long", "the path is too long", NULL);
  memcpy(ps->path, uri, len);
  ps->path[len] = '\0';
  ps->req.path = ps->path;

  /* An Origin outside cors_origins that is not the daemon's own is
   * refused on every method (below, once the route is known), not only on
   * preflights: a "simple" cross-origin request needs no preflight, and
   * answering it without access-control-allow-origin would hide the
   * response from the page but still carry out the request. */
  int foreign = 0;
  if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) > 0) {
    int got =
        lws_hdr_copy(wsi, ps->origin, sizeof(ps->origin), WSI_TOKEN_ORIGIN);
    if (got > 0 && origin_allowed(srv, ps->origin))
      ps->cors_ok = 1;
    else
      foreign = got <= 0 || !same_origin(wsi, ps->origin);
    if (!ps->cors_ok)
      ps->origin[0] = '\0';
  }

  rc = sftd_http_router_match(&srv->router, ps->req.method, ps->path, len,
                              &ps->req, ps->pbuf, sizeof(ps->pbuf),
                              &ps->route, &allow);
  if (ps->req.method == SFTD_HTTP_OPTIONS) {
    if (rc == SFT_ERR_NOT_FOUND)
      return fail(ps, wsi, 404, "not_found", "no such resource", NULL);
    x.allow = allow;
    struct sftd_http_resp r = {.srv = srv};
    if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) > 0) {
      if (!ps->cors_ok)
        return fail(ps, wsi, 403, "cors_denied", "origin not allowed", NULL);
      x.preflight = 1;
    }
    if (ps->state == ST_BODY)
      x.close = 1;
    sftd_http_resp_json(&r, 204, NULL);
    if (send_resp(ps, wsi, &r, &x) || x.close)
      return -1;
    ps->state = ST_DONE;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
  }
  if (rc == SFT_ERR_NOT_FOUND)
    return fail(ps, wsi, 404, "not_found", "no such resource", NULL);
  if (rc == SFT_ERR_UNSUPPORTED) {
    x.allow = allow;
    return fail(ps, wsi, 405, "method_not_allowed",
                "method not allowed for this resource", &x);
  }
  if (foreign)
    return fail(ps, wsi, 403, "cors_denied", "origin not allowed", NULL);
  if (rc)
    return fail(ps, wsi, 414, "uri_too_long", "the path is too long", NULL);

  if (!(ps->route->flags & SFTD_HTTP_PUBLIC)) {
    const char *tok = NULL;
    size_t tlen = 0;
    int n = -1;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) <
        (int)sizeof(hdr))
      n = lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n <= 0 || sftd_http_bearer(hdr, (size_t)n, &tok, &tlen) ||
        !sftd_http_token_eq(srv->token, tok, tlen)) {
      x.www_auth = 1;
      return fail(ps, wsi, 401, "unauthorized",
                  n <= 0 ? "missing bearer token" : "invalid bearer token",
                  &x);
    }
  }
  if (cl > srv->body_limit)
    return fail(ps, wsi, 413, "payload_too_large",
                "the request body exceeds the limit", NULL);
  if (cl > 0 && !(ps->route->flags & SFTD_HTTP_RAW_BODY)) {
    char ct[128];
    if (lws_hdr_copy(wsi, ct, sizeof(ct), WSI_TOKEN_HTTP_CONTENT_TYPE) <= 0 ||
        !is_json_ctype(ct))
      return fail(ps, wsi, 415, "unsupported_media_type",
                  "the body must be application/json", NULL);
  }
  for (int i = 0; i < SFTD_HTTP_MAX_QUERY && qused + 2 < sizeof(ps->qbuf);
       i++) {
    int n = lws_hdr_copy_fragment(wsi, ps->qbuf + qused,
                                  (int)(sizeof(ps->qbuf) - qused),
                                  WSI_TOKEN_HTTP_URI_ARGS, i);
    if (n < 0)
      break;
    sftd_http_query_add(&ps->req, ps->qbuf + qused);
    qused += (size_t)n + 1;
  }
  if (ps->state == ST_BODY)
    return 0; /* wait for BODY / BODY_COMPLETION */
  return dispatch(ps, wsi);
}

static const char *method_name(unsigned m) {
  switch (m) {
  case SFTD_HTTP_POST:
    return "POST ";
  case SFTD_HTTP_PUT:
    return "PUT ";
  case SFTD_HTTP_PATCH:
    return "PATCH ";
  case SFTD_HTTP_DELETE:
    return "DELETE ";
  case SFTD_HTTP_GET:
    return "GET ";
  default:
    return "\1";
  }
}

static int on_body(struct pss *ps, const void *in, size_t len) {
  sftd_http *srv = ps->srv;
  if (ps->state != ST_BODY)
    return -1;
  if (ps->body_len + len > srv->body_limit)
    return -1; /* cannot happen with a checked Content-Length */
  if (!ps->body && len > strlen(ps->path) &&
      memmem(in, len < 16 + strlen(ps->path) ? len : 16 + strlen(ps->path),
             ps->path, strlen(ps->path)) &&
      !memcmp(in, method_name(ps->req.method), strlen(method_name(ps->req.method)))) {
    /* lws 4.1 bug: a pipelined request's body read from the buflist starts
     * at the request's own header bytes. Refuse rather than misparse. */
    ps->bad_pipeline = 1;
    return 0;
  }
  if (ps->bad_pipeline)
    return 0;
  if (!ps->body) {
    /* one allocation of exactly the announced size (+ NUL) */
    ps->body_cap = ps->content_length + 1;
    ps->body = malloc(ps->body_cap);
    if (!ps->body)
      return -1;
  }
  if (ps->body_len + len + 1 > ps->body_cap)
    return -1;
  if (len)
    memcpy(ps->body + ps->body_len, in, len);
  ps->body_len += len;
  return 0;
}

static int on_body_done(struct pss *ps, struct lws *wsi) {
  if (ps->state != ST_BODY)
    return -1;
  ps->content_length = 0;
  ps->state = ST_NEW;
  ps->body_close = ps->body_len > 0;
  if (ps->bad_pipeline) {
    ps->body_close = 1;
    return fail(ps, wsi, 400, "pipelining_unsupported",
                "a pipelined request with a body; send it on its own", NULL);
  }
  if (ps->route->flags & SFTD_HTTP_RAW_BODY) {
    ps->req.raw_body = ps->body;
    ps->req.raw_len = ps->body_len;
  } else if (ps->body_len) {
    json_error_t err;
    ps->req.body = json_loadb((const char *)ps->body, ps->body_len,
                              JSON_REJECT_DUPLICATES, &err);
    if (!ps->req.body) {
      char msg[256];
      snprintf(msg, sizeof(msg), "malformed JSON at line %d column %d: %s",
               err.line, err.column, err.text);
      return fail(ps, wsi, 400, "bad_json", msg, NULL);
    }
  }
  return dispatch(ps, wsi);
}

/* ---- WebSocket /ws ------------------------------------------------------------- */

static void msg_unref(struct wsmsg *m) {
  if (m && --m->refs == 0)
    free(m);
}

static struct wsmsg *msg_new(const char *json, size_t len) {
  struct wsmsg *m = malloc(sizeof(*m) + LWS_PRE + len + 1);
  if (!m)
    return NULL;
  m->refs = 1;
  m->len = len;
  if (len)
    memcpy(m->buf + LWS_PRE, json, len);
  return m;
}

/* Unlinks |c| and frees what it holds; lws still owns the pss memory. */
static void ws_release(struct wsc *c) {
  sftd_http *srv = c->srv;
  if (!srv)
    return;
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->ws_head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  c->next = c->prev = NULL;
  srv->ws_n--;
  srv->st.ws_clients = srv->ws_n;
  while (c->qn) {
    msg_unref(c->q[c->qhead]);
    c->qhead = (c->qhead + 1) % srv->ws_qmsgs;
    c->qn--;
  }
  free(c->q);
  c->q = NULL;
  c->qbytes = 0;
  free(c->rx);
  c->rx = NULL;
  free(c->topics);
  c->topics = NULL;
  c->ntopics = 0;
  c->srv = NULL;
}

/* Drops a client from outside its callbacks (its queue is full): the close
 * frame follows whatever lws still has buffered, and lws kills the socket
 * after at most 5 s if the peer never reads. */
static void ws_drop(struct wsc *c, int code, const char *why) {
  struct lws *wsi = c->wsi;
  c->srv->st.ws_dropped_slow++;
  ws_release(c);
  lws_close_reason(wsi, (enum lws_close_status)code,
                   (unsigned char *)(uintptr_t)why, strlen(why));
  lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

/* Appends |m| to |c|'s queue, or drops |c| when the queue is full.
 * 1 queued, 0 dropped. */
static int ws_enqueue(struct wsc *c, struct wsmsg *m) {
  sftd_http *srv = c->srv;
  if (c->qn == srv->ws_qmsgs || c->qbytes + m->len > srv->ws_qbytes) {
    ws_drop(c, SFTD_WS_CLOSE_POLICY, "slow consumer");
    return 0;
  }
  c->q[(c->qhead + c->qn) % srv->ws_qmsgs] = m;
  c->qn++;
  c->qbytes += m->len;
  m->refs++;
  if (c->qn == 1) /* invariant: a non-empty queue has asked for WRITEABLE */
    lws_callback_on_writable(c->wsi);
  return 1;
}

static int topic_match(const struct wsc *c, const char *topic) {
  if (!topic[0] || !c->ntopics)
    return 1;
  for (size_t i = 0; i < c->ntopics; i++)
    if (!strcmp(c->topics[i], topic))
      return 1;
  return 0;
}

int sftd_http_ws_publish(sftd_http *srv, const char *topic, const char *json,
                         size_t len, unsigned flags) {
  struct wsmsg *m;
  int n = 0;
  if (!srv || !json || flags)
    return SFT_ERR_INVAL;
  if (!topic)
    topic = "";
  if (strlen(topic) > SFTD_WS_TOPIC_MAX)
    return SFT_ERR_INVAL;
  if (len > srv->ws_qbytes)
    return SFT_ERR_TOO_LARGE;
  if (!srv->ws_head)
    return 0;
  m = msg_new(json, len);
  if (!m)
    return SFT_ERR_NOMEM;
  for (struct wsc *c = srv->ws_head, *next; c; c = next) {
    next = c->next; /* c may be dropped */
    if (topic_match(c, topic))
      n += ws_enqueue(c, m);
  }
  msg_unref(m);
  return n;
}

int sftd_http_ws_broadcast(sftd_http *srv, const char *json, size_t len,
                           unsigned flags) {
  return sftd_http_ws_publish(srv, "", json, len, flags);
}

int sftd_http_ws_send(sftd_http *srv, uint64_t client, const char *json,
                      size_t len) {
  struct wsc *c;
  struct wsmsg *m;
  int ok;
  if (!srv || !json)
    return SFT_ERR_INVAL;
  if (len > srv->ws_qbytes)
    return SFT_ERR_TOO_LARGE;
  for (c = srv->ws_head; c && c->id != client; c = c->next)
    ;
  if (!c)
    return SFT_ERR_NOT_FOUND;
  if (!(m = msg_new(json, len)))
    return SFT_ERR_NOMEM;
  ok = ws_enqueue(c, m);
  msg_unref(m);
  return ok ? 0 : SFT_ERR_NOT_FOUND;
}

size_t sftd_http_ws_count(const sftd_http *srv) { return srv ? srv->ws_n : 0; }

void sftd_http_ws_on_message(sftd_http *srv, sftd_http_ws_msg_fn fn,
                             void *ud) {
  srv->ws_fn = fn;
  srv->ws_ud = ud;
}

/* ---- throttling ---- */

static void on_thr(uv_timer_t *t);

/* Arms the timer for the earliest key whose interval ends: pending keys
 * are sent then, idle keys are forgotten then. */
static void thr_arm(sftd_http *srv) {
  uint64_t now = uv_now(srv->loop), due = UINT64_MAX;
  for (struct thr *t = srv->thr_head; t; t = t->next)
    if (t->last_ms + t->interval < due)
      due = t->last_ms + t->interval;
  if (due == UINT64_MAX)
    uv_timer_stop(&srv->thr_timer);
  else
    uv_timer_start(&srv->thr_timer, on_thr, due > now ? due - now : 0, 0);
}

static void on_thr(uv_timer_t *timer) {
  sftd_http *srv = timer->data;
  uint64_t now = uv_now(srv->loop);
  for (struct thr **pp = &srv->thr_head, *t; (t = *pp);) {
    if (now < t->last_ms + t->interval) {
      pp = &t->next;
      continue;
    }
    if (t->pending) {
      /* an error (NOMEM) loses only this message */
      (void)sftd_http_ws_publish(srv, t->topic, t->pending, t->plen, 0);
      free(t->pending);
      t->pending = NULL;
      t->last_ms = now;
      pp = &t->next;
      continue;
    }
    *pp = t->next; /* idle for a whole interval: forget the key */
    free(t);
    srv->thr_n--;
  }
  thr_arm(srv);
}

static void thr_free_all(sftd_http *srv) {
  while (srv->thr_head) {
    struct thr *t = srv->thr_head;
    srv->thr_head = t->next;
    free(t->pending);
    free(t);
  }
  srv->thr_n = 0;
}

int sftd_http_ws_broadcast_throttled(sftd_http *srv, const char *topic,
                                     const char *key, const char *json,
                                     size_t len, unsigned min_interval_ms) {
  struct thr *t;
  uint64_t now;
  char *copy;
  if (!srv || !key || !json || !key[0] || strlen(key) > SFTD_WS_TOPIC_MAX)
    return SFT_ERR_INVAL;
  if (!topic)
    topic = "";
  if (strlen(topic) > SFTD_WS_TOPIC_MAX)
    return SFT_ERR_INVAL;
  if (len > srv->ws_qbytes)
    return SFT_ERR_TOO_LARGE;
  if (!min_interval_ms)
    return sftd_http_ws_publish(srv, topic, json, len, 0);
  now = uv_now(srv->loop);
  for (t = srv->thr_head; t && strcmp(t->key, key); t = t->next)
    ;
  if (!t) {
    if (srv->thr_n >= SFTD_WS_THROTTLE_KEYS || !(t = calloc(1, sizeof(*t))))
      return sftd_http_ws_publish(srv, topic, json, len, 0);
    snprintf(t->key, sizeof(t->key), "%s", key);
    snprintf(t->topic, sizeof(t->topic), "%s", topic);
    t->interval = min_interval_ms;
    t->last_ms = now;
    t->next = srv->thr_head;
    srv->thr_head = t;
    srv->thr_n++;
    thr_arm(srv);
    return sftd_http_ws_publish(srv, topic, json, len, 0);
  }
  t->interval = min_interval_ms;
  snprintf(t->topic, sizeof(t->topic), "%s", topic);
  if (!t->pending && now >= t->last_ms + t->interval) {
    t->last_ms = now;
    thr_arm(srv);
    return sftd_http_ws_publish(srv, topic, json, len, 0);
  }
  copy = malloc(len ? len : 1);
  if (!copy)
    return SFT_ERR_NOMEM;
  if (len)
    memcpy(copy, json, len);
  if (t->pending)
    srv->st.ws_coalesced++;
  free(t->pending);
  t->pending = copy;
  t->plen = len;
  thr_arm(srv);
  return 0;
}

/* ---- upgrade: auth, origin, path ---- */

/* Same origin: Origin is "http://" + the Host header. */
static int same_origin(struct lws *wsi, const char *origin) {
  char host[ORIGIN_MAX];
  if (strncasecmp(origin, "http://", 7) ||
      lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST) <= 0)
    return 0;
  return !strcasecmp(origin + 7, host);
}

/* Checks the Sec-WebSocket-Protocol list the way lws 4.1 will parse it
 * (lws_process_ws_upgrade): the list must fit 127 bytes, and SFTD_WS_PROTOCOL
 * must come before any element longer than 63 bytes, or lws hangs up without
 * an answer. Also finds a "bearer.<token>" element. 0 ok (or no header),
 * -1 unusable. */
static int ws_subprotocols(struct lws *wsi, char *buf, size_t cap,
                           const char **tok, size_t *tlen) {
  int n, seen = 0;
  int total = lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL);
  *tok = NULL;
  *tlen = 0;
  if (total <= 0)
    return 0;
  if (total > 127 || (size_t)total >= cap)
    return -1;
  n = lws_hdr_copy(wsi, buf, (int)cap, WSI_TOKEN_PROTOCOL);
  if (n <= 0)
    return -1;
  for (char *p = buf, *e; p < buf + n; p = e + 1) {
    size_t l;
    while (*p == ' ' || *p == '\t')
      p++;
    e = memchr(p, ',', (size_t)(buf + n - p));
    if (!e)
      e = buf + n;
    l = (size_t)(e - p);
    while (l && (p[l - 1] == ' ' || p[l - 1] == '\t'))
      l--;
    if (l == strlen(SFTD_WS_PROTOCOL) && !memcmp(p, SFTD_WS_PROTOCOL, l))
      seen = 1;
    else if (l > 63 && !seen)
      return -1;
    if (l > 7 && !strncmp(p, "bearer.", 7) && !*tok) {
      *tok = p + 7;
      *tlen = l - 7;
    }
  }
  return seen ? 0 : -1;
}

/* HTTP_CONFIRM_UPGRADE: 0 lets lws upgrade; -1 closes, after an HTTP
 * refusal (or a plain hang-up for non-WebSocket upgrades, as before). Never
 * touches the callback's user data (it may belong to either protocol). */
static int ws_confirm(struct lws *wsi, const char *up) {
  sftd_http *srv = lws_context_user(lws_get_context(wsi));
  struct pss *ps;
  struct extra x = {0};
  uint8_t key[16];
  size_t klen, tlen = 0;
  const char *tok = NULL, *msg = NULL, *code = NULL;
  char hdr[SFTD_HTTP_TOKEN_MAX + 16], pbuf[160], qv[SFTD_HTTP_TOKEN_MAX + 16];
  int status = 0, n;

  if (!up || strcasecmp(up, "websocket"))
    return -1; /* h2c and others: not served */
  ps = calloc(1, sizeof(*ps)); /* scratch for fail() / write_resp() */
  if (!ps)
    return -1;
  ps->srv = srv;
  ps->wsi = wsi;
  ps->req.method = SFTD_HTTP_GET;
  srv->st.requests++;
  x.close = 1;
  klen = peer_key(ps, wsi, key);
  if (klen && srv->rl.rate) {
    uint32_t retry = 0;
    if (sftd_ratelimit_take(&srv->rl, key, klen, uv_now(srv->loop), &retry)) {
      srv->st.rate_limited++;
      x.retry = retry;
      status = 429, code = "rate_limited", msg = "too many requests";
      goto refuse;
    }
  }
  n = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI);
  if (n <= 0 || n >= (int)sizeof(ps->path) ||
      lws_hdr_copy(wsi, ps->path, sizeof(ps->path), WSI_TOKEN_GET_URI) <= 0) {
    status = 400, code = "bad_request";
    msg = "a WebSocket upgrade must be a GET";
    goto refuse;
  }
  if (strcmp(ps->path, SFTD_WS_PATH)) {
    status = 404, code = "not_found", msg = "no WebSocket endpoint here";
    goto refuse;
  }
  if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) > 0) {
    if (lws_hdr_copy(wsi, ps->origin, sizeof(ps->origin), WSI_TOKEN_ORIGIN) <=
            0 ||
        !(origin_allowed(srv, ps->origin) || same_origin(wsi, ps->origin))) {
      ps->origin[0] = '\0';
      status = 403, code = "cors_denied", msg = "origin not allowed";
      goto refuse;
    }
  }
  if (ws_subprotocols(wsi, pbuf, sizeof(pbuf), &tok, &tlen)) {
    status = 400, code = "bad_request";
    msg = "Sec-WebSocket-Protocol must offer " SFTD_WS_PROTOCOL
          " first (list <= 127 bytes)";
    goto refuse;
  }
  /* the token: the header, else the query token=, else bearer.<t> */
  if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) > 0) {
    n = -1;
    if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION) <
        (int)sizeof(hdr))
      n = lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n <= 0 || sftd_http_bearer(hdr, (size_t)n, &tok, &tlen))
      tok = "", tlen = 0; /* present but unusable: wrong */
  } else {
    for (int i = 0; i < SFTD_HTTP_MAX_QUERY; i++) {
      int m = lws_hdr_copy_fragment(wsi, qv, sizeof(qv),
                                    WSI_TOKEN_HTTP_URI_ARGS, i);
      if (m < 0)
        break;
      if (m >= 6 && !strncmp(qv, "token=", 6)) {
        tok = qv + 6;
        tlen = (size_t)m - 6;
        break;
      }
    }
  }
  if (!tok || !sftd_http_token_eq(srv->token, tok, tlen)) {
    x.www_auth = 1;
    status = 401, code = "unauthorized";
    msg = tok ? "invalid bearer token" : "missing bearer token";
    goto refuse;
  }
  if (srv->ws_n >= srv->ws_max_clients) {
    status = 503, code = "busy", msg = "too many WebSocket clients";
    goto refuse;
  }
  free(ps);
  return 0;

refuse:
  srv->st.ws_rejected++;
  (void)fail(ps, wsi, status, code, msg, &x); /* x.close: always -1 */
  free(ps);
  return -1;
}

/* ---- per-connection callbacks ---- */

static int ws_close(struct wsc *c, int code, const char *why) {
  c->srv->st.ws_closed_bad++;
  lws_close_reason(c->wsi, (enum lws_close_status)code,
                   (unsigned char *)(uintptr_t)why, strlen(why));
  return -1;
}

/* Adds (|add|) or removes one topic. 0, or -1: too many topics. */
static int ws_topic(struct wsc *c, const char *t, int add) {
  size_t i;
  for (i = 0; i < c->ntopics && strcmp(c->topics[i], t); i++)
    ;
  if (!add) {
    if (i < c->ntopics) {
      memmove(c->topics[i], c->topics[i + 1],
              (c->ntopics - i - 1) * sizeof(c->topics[0]));
      c->ntopics--;
    }
    return 0;
  }
  if (i < c->ntopics)
    return 0;
  if (c->ntopics == SFTD_WS_MAX_TOPICS)
    return -1;
  if (!c->topics &&
      !(c->topics = malloc(SFTD_WS_MAX_TOPICS * sizeof(c->topics[0]))))
    return -1;
  snprintf(c->topics[c->ntopics++], sizeof(c->topics[0]), "%s", t);
  return 0;
}

/* Applies a subscribe/unsubscribe value (a topic or an array of topics).
 * 0, or the close code. */
static int ws_topics(struct wsc *c, json_t *v, int add) {
  size_t n = json_is_array(v) ? json_array_size(v) : 1;
  if (!json_is_string(v) && !json_is_array(v))
    return SFTD_WS_CLOSE_BAD_DATA;
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
    if (!json_is_string(e) || json_string_length(e) == 0 ||
        json_string_length(e) > SFTD_WS_TOPIC_MAX ||
        strlen(json_string_value(e)) != json_string_length(e))
      return SFTD_WS_CLOSE_BAD_DATA;
    if (ws_topic(c, json_string_value(e), add))
      return SFTD_WS_CLOSE_POLICY;
  }
  return 0;
}

/* A complete client message in c->rx. Callback result. */
static int ws_message(struct wsc *c) {
  sftd_http *srv = c->srv;
  json_error_t err;
  json_t *j = json_loadb((const char *)c->rx, c->rxlen, JSON_REJECT_DUPLICATES,
                         &err);
  json_t *sub, *unsub, *ack, *arr;
  char *txt;
  int code = 0;
  if (!j || !json_is_object(j)) {
    json_decref(j);
    return ws_close(c, SFTD_WS_CLOSE_BAD_DATA, "expected a JSON object");
  }
  sub = json_object_get(j, "subscribe");
  unsub = json_object_get(j, "unsubscribe");
  if (!sub && !unsub) {
    if (srv->ws_fn)
      srv->ws_fn(srv, c->id, j, srv->ws_ud);
    json_decref(j);
    return 0;
  }
  if (unsub)
    code = ws_topics(c, unsub, 0);
  if (!code && sub)
    code = ws_topics(c, sub, 1);
  json_decref(j);
  if (code)
    return ws_close(c, code,
                    code == SFTD_WS_CLOSE_POLICY
                        ? "too many topics"
                        : "topics must be non-empty strings");
  ack = json_pack("{s:s,s:[]}", "type", "Subscribed", "topics");
  arr = ack ? json_object_get(ack, "topics") : NULL;
  for (size_t i = 0; arr && i < c->ntopics; i++)
    json_array_append_new(arr, json_string(c->topics[i]));
  txt = ack ? json_dumps(ack, JSON_COMPACT) : NULL;
  json_decref(ack);
  if (txt) {
    struct wsmsg *m = msg_new(txt, strlen(txt));
    if (m) {
      (void)ws_enqueue(c, m);
      msg_unref(m);
    }
    free(txt);
  }
  return 0;
}

static int ws_receive(struct wsc *c, struct lws *wsi, const void *in,
                      size_t len) {
  sftd_http *srv = c->srv;
  if (!srv)
    return -1;
  if (lws_frame_is_binary(wsi))
    return ws_close(c, SFTD_WS_CLOSE_BINARY, "text messages only");
  if (!c->in_msg) {
    c->in_msg = 1;
    c->rxlen = 0;
  }
  if (c->rxlen + len + lws_remaining_packet_payload(wsi) > srv->ws_max_msg)
    return ws_close(c, SFTD_WS_CLOSE_TOO_BIG, "message too large");
  if (!c->rx && !(c->rx = malloc(srv->ws_max_msg + 1)))
    return -1;
  if (len)
    memcpy(c->rx + c->rxlen, in, len);
  c->rxlen += len;
  if (!lws_is_final_fragment(wsi))
    return 0;
  c->in_msg = 0;
  return ws_message(c);
}

/* One queued message per WRITEABLE. */
static int ws_writeable(struct wsc *c, struct lws *wsi) {
  sftd_http *srv = c->srv;
  struct wsmsg *m;
  int n;
  if (!srv || !c->qn)
    return 0;
  m = c->q[c->qhead];
  c->qhead = (c->qhead + 1) % srv->ws_qmsgs;
  c->qn--;
  c->qbytes -= m->len;
  n = lws_write(wsi, m->buf + LWS_PRE, m->len, LWS_WRITE_TEXT);
  msg_unref(m);
  if (n < 0)
    return -1;
  srv->st.ws_sent++;
  if (c->qn)
    lws_callback_on_writable(wsi);
  return 0;
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason,
                       void *user, void *in, size_t len) {
  struct wsc *c = user;
  sftd_http *srv;
  switch (reason) {
  case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    return ws_confirm(wsi, in);
  case LWS_CALLBACK_ESTABLISHED:
    srv = lws_context_user(lws_get_context(wsi));
    if (!c)
      return -1;
    memset(c, 0, sizeof(*c));
    c->q = calloc(srv->ws_qmsgs, sizeof(*c->q));
    if (!c->q)
      return -1;
    c->srv = srv;
    c->wsi = wsi;
    c->id = ++srv->ws_next_id;
    c->next = srv->ws_head;
    if (srv->ws_head)
      srv->ws_head->prev = c;
    srv->ws_head = c;
    srv->ws_n++;
    srv->st.ws_clients = srv->ws_n;
    srv->st.ws_accepted++;
    return 0;
  case LWS_CALLBACK_RECEIVE:
    return c ? ws_receive(c, wsi, in, len) : -1;
  case LWS_CALLBACK_SERVER_WRITEABLE:
    return c ? ws_writeable(c, wsi) : 0;
  case LWS_CALLBACK_CLOSED:
    if (c)
      ws_release(c);
    return 0;
  default:
    break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason,
                    void *user, void *in, size_t len) {
  struct pss *ps = user;
  switch (reason) {
  case LWS_CALLBACK_HTTP:
    return on_http(ps, wsi, in, len);
  case LWS_CALLBACK_HTTP_BODY:
    return on_body(ps, in, len);
  case LWS_CALLBACK_HTTP_BODY_COMPLETION:
    return on_body_done(ps, wsi);
  case LWS_CALLBACK_HTTP_WRITEABLE:
    if (ps && ps->state == ST_READY) {
      struct sftd_http_resp r = ps->d;
      int rc;
      char *text = ps->d_text; /* r.text may point here */
      memset(&ps->d, 0, sizeof(ps->d)); /* ownership moves to r */
      ps->d_text = NULL;
      rc = finish(ps, wsi, &r); /* may free ps (protocol rebind) */
      free(text);
      return rc;
    }
    return 0;
  case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
  case LWS_CALLBACK_CLOSED_HTTP:
    if (ps)
      cleanup(ps);
    break;
  case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    return ws_confirm(wsi, in);
  default:
    break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* ---- lifecycle ------------------------------------------------------------------ */

int sftd_http_route(sftd_http *srv, unsigned methods, const char *pattern,
                    sftd_http_handler fn, void *ud, unsigned flags) {
  return sftd_http_router_add(&srv->router, methods, pattern, fn, ud, flags);
}

int sftd_http_port(const sftd_http *srv) { return srv->port; }

void sftd_http_get_stats(const sftd_http *srv, struct sftd_http_stats *st) {
  *st = srv->st;
}

static void on_timer_closed(uv_handle_t *h);

struct walk {
  void **v;
  size_t n, cap;
  int oom;
};

static void collect_cb(uv_handle_t *h, void *arg) {
  struct walk *w = arg;
  if (w->n == w->cap) {
    size_t nc = w->cap ? 2 * w->cap : 64;
    void **nv = realloc(w->v, nc * sizeof(*nv));
    if (!nv) {
      w->oom = 1;
      return;
    }
    w->v = nv;
    w->cap = nc;
  }
  w->v[w->n++] = h;
}

struct track {
  sftd_http *srv;
  struct walk *before;
};

static void track_cb(uv_handle_t *h, void *arg) {
  struct track *t = arg;
  sftd_http *srv = t->srv;
  if (h == (uv_handle_t *)&srv->timer || h == (uv_handle_t *)&srv->reaper ||
      h == (uv_handle_t *)&srv->thr_timer)
    return;
  for (size_t i = 0; i < t->before->n; i++)
    if (t->before->v[i] == h)
      return;
  if (srv->n_lws_handles < MAX_LWS_HANDLES) {
    srv->lws_handles[srv->n_lws_handles] = h;
    srv->lws_htype[srv->n_lws_handles] = (int)h->type;
    srv->n_lws_handles++;
  }
}

static void alive_cb(uv_handle_t *h, void *arg) {
  sftd_http *srv = arg;
  for (size_t i = 0; i < srv->n_lws_handles; i++)
    if (srv->lws_handles[i] == h && srv->lws_htype[i] == (int)h->type)
      srv->lws_alive = 1;
}

/* Runs every loop iteration during shutdown (a few iterations). */
static void on_reap(uv_idle_t *idle) {
  sftd_http *srv = idle->data;
  srv->lws_alive = 0;
  uv_walk(srv->loop, alive_cb, srv);
  if (srv->lws_alive)
    return;
  lws_context_destroy(srv->ctx); /* phase 2: frees the context */
  srv->ctx = NULL;
  uv_idle_stop(idle);
  srv->closing_handles = 3;
  uv_close((uv_handle_t *)&srv->timer, on_timer_closed);
  uv_close((uv_handle_t *)&srv->reaper, on_timer_closed);
  uv_close((uv_handle_t *)&srv->thr_timer, on_timer_closed);
}

/* Checks that addr:port can be bound (as lws will, with SO_REUSEADDR)
 * before creating the lws context: see the !vh case below. */
static int bind_probe(const char *addr, int v6, int port) {
  struct sockaddr_storage ss;
  socklen_t sl;
  int fd, one = 1, rc;
  if (port == 0)
    return 0;
  memset(&ss, 0, sizeof(ss));
  if (v6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    inet_pton(AF_INET6, addr, &a->sin6_addr);
    sl = sizeof(*a);
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, addr, &a->sin_addr);
    sl = sizeof(*a);
  }
  fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  rc = bind(fd, (struct sockaddr *)&ss, sl);
  close(fd);
  return rc;
}

int sftd_http_new(sftd_http **out, uv_loop_t *loop,
                  const struct sftd_http_config *cfg) {
  struct sftd_http_config d;
  struct lws_context_creation_info info;
  unsigned char abuf[sizeof(struct in6_addr)];
  sftd_http *srv;
  void *foreign[1];
  int v6;

  *out = NULL;
  sftd_http_config_default(&d);
  if (!loop || !cfg || !cfg->token || !cfg->token[0] ||
      strlen(cfg->token) > SFTD_HTTP_TOKEN_MAX || cfg->port < 0 ||
      cfg->port > 65535)
    return SFT_ERR_INVAL;
  const char *addr = cfg->addr ? cfg->addr : d.addr;
  v6 = strchr(addr, ':') != NULL;
  if (inet_pton(v6 ? AF_INET6 : AF_INET, addr, abuf) != 1 ||
      strlen(addr) >= INET6_ADDRSTRLEN)
    return SFT_ERR_INVAL;
  if (bind_probe(addr, v6, cfg->port))
    return SFT_ERR_IO;
  srv = calloc(1, sizeof(*srv));
  if (!srv)
    return SFT_ERR_NOMEM;
  srv->loop = loop;
  snprintf(srv->token, sizeof(srv->token), "%s", cfg->token);
  snprintf(srv->addr, sizeof(srv->addr), "%s", addr);
  if (cfg->cors_origins) {
    for (size_t i = 0; cfg->cors_origins[i]; i++) {
      if (i == MAX_ORIGINS || strlen(cfg->cors_origins[i]) >= ORIGIN_MAX) {
        free(srv);
        return SFT_ERR_INVAL;
      }
      snprintf(srv->origins[i], ORIGIN_MAX, "%s", cfg->cors_origins[i]);
      srv->norigins = i + 1;
    }
  }
  srv->body_limit = cfg->body_limit ? cfg->body_limit : d.body_limit;
  srv->deferred_timeout_ms =
      cfg->deferred_timeout_ms ? cfg->deferred_timeout_ms
                               : d.deferred_timeout_ms;
  sftd_ratelimit_init(&srv->rl, cfg->rate_per_s,
                      cfg->rate_burst ? cfg->rate_burst : 2 * cfg->rate_per_s);
  sftd_http_router_init(&srv->router);
  uv_timer_init(loop, &srv->timer);
  srv->timer.data = srv;
  uv_timer_init(loop, &srv->thr_timer);
  srv->thr_timer.data = srv;
  srv->ws_max_clients =
      cfg->ws_max_clients ? cfg->ws_max_clients : d.ws_max_clients;
  srv->ws_qmsgs = cfg->ws_queue_msgs ? cfg->ws_queue_msgs : d.ws_queue_msgs;
  srv->ws_qbytes =
      cfg->ws_queue_bytes ? cfg->ws_queue_bytes : d.ws_queue_bytes;
  srv->ws_max_msg = cfg->ws_max_msg ? cfg->ws_max_msg : d.ws_max_msg;

  srv->protocols[0].name = "sftd-http";
  srv->protocols[0].callback = callback;
  srv->protocols[0].per_session_data_size = sizeof(struct pss);
  /* WebSocket: the vhost default, so upgrades without a subprotocol bind
   * here (HTTP without mounts always binds protocols[0]) */
  srv->protocols[1].name = SFTD_WS_PROTOCOL;
  srv->protocols[1].callback = ws_callback;
  srv->protocols[1].per_session_data_size = sizeof(struct wsc);
  srv->protocols[1].rx_buffer_size = 4096;
  srv->pvo_default.name = "default";
  srv->pvo_default.value = "1";
  srv->pvo.name = SFTD_WS_PROTOCOL;
  srv->pvo.value = "";
  srv->pvo.options = &srv->pvo_default;

  lws_set_log_level(LLL_ERR, NULL);
  memset(&info, 0, sizeof(info));
  info.port = cfg->port;
  info.iface = srv->addr;
  info.protocols = srv->protocols;
  info.pvo = &srv->pvo;
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 |
                 (v6 ? 0 : LWS_SERVER_OPTION_DISABLE_IPV6);
  foreign[0] = loop;
  info.foreign_loops = foreign;
  info.user = srv;
  info.server_string = "sftd";
  info.timeout_secs = cfg->timeout_s ? cfg->timeout_s : d.timeout_s;
  info.keepalive_timeout = (int)(cfg->keepalive_s ? cfg->keepalive_s
                                                  : d.keepalive_s);
  info.max_http_header_pool = 256;
  uv_idle_init(loop, &srv->reaper);
  srv->reaper.data = srv;
  struct walk w = {0};
  uv_walk(loop, collect_cb, &w); /* handles before lws */
  srv->ctx = lws_create_context(&info);
  if (srv->ctx && !w.oom)
    uv_walk(loop, track_cb, &(struct track){srv, &w});
  free(w.v);
  if (!srv->ctx) {
    srv->closing_handles = 3;
    uv_close((uv_handle_t *)&srv->timer, on_timer_closed);
    uv_close((uv_handle_t *)&srv->reaper, on_timer_closed);
    uv_close((uv_handle_t *)&srv->thr_timer, on_timer_closed);
    return SFT_ERR_IO;
  }
  struct lws_vhost *vh = lws_get_vhost_by_name(srv->ctx, "default");
  if (!vh) {
    /* Lost a race for the port after bind_probe(). lws 4.1.6 crashes in
     * the loop when destroying a context whose default vhost failed, so the
     * context (and srv, its user) is deliberately leaked; the daemon exits
     * on this error anyway. */
    return SFT_ERR_IO;
  }
  srv->port = lws_get_vhost_listen_port(vh);
  *out = srv;
  return 0;
}

static void on_timer_closed(uv_handle_t *h) {
  sftd_http *srv = h->data;
  if (--srv->closing_handles > 0)
    return;
  free(srv->out);
  free(srv->jbuf);
  free(srv->tbuf);
  thr_free_all(srv);
  free(srv);
}

void sftd_http_free(sftd_http *srv) {
  if (!srv)
    return;
  /* Phase 1: lws closes every wsi (CLOSED_HTTP -> cleanup) and then its
   * own uv handles. On a foreign loop lws 4.1 needs a second
   * lws_context_destroy once those handles are closed (its minimal example
   * calls it after uv_run returns); calling it earlier crashes. The reaper
   * idle handle watches the handles lws created and makes that call. */
  lws_context_destroy(srv->ctx);
  srv->phead = srv->ptail = NULL;
  uv_timer_stop(&srv->timer);
  uv_timer_stop(&srv->thr_timer);
  uv_idle_start(&srv->reaper, on_reap);
}
