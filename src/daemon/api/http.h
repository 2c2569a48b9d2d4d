/*
 * The daemon's HTTP control API layer: a libwebsockets 4.1 server on the
 * daemon's libuv loop (no threads), a method + pattern router, bearer-token
 * auth, CORS, a per-IP token-bucket rate limit, a request-body limit and
 * strict JSON validation helpers. JSON is Jansson. Design and error format:
 * docs/internals/api.md.
 *
 * It also serves the WebSocket endpoint /ws on the same port (event push to
 * the dashboard/CLI: sftd_http_ws_*; see "WebSocket" in api.md).
 *
 * Everything here runs on the loop thread; nothing is thread-safe.
 *
 * The pure parts (router, query parsing, JSON field validation, token
 * comparison, rate limiter) need no sockets and are fuzzed by
 * tests/fuzz/fuzz_http_route.c.
 */
#ifndef SFTD_API_HTTP_H
#define SFTD_API_HTTP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "sft/err.h"

/* ---- methods, limits -------------------------------------------------- */

enum {
  SFTD_HTTP_GET = 1u << 0,
  SFTD_HTTP_POST = 1u << 1,
  SFTD_HTTP_PUT = 1u << 2,
  SFTD_HTTP_DELETE = 1u << 3,
  SFTD_HTTP_PATCH = 1u << 4,
  SFTD_HTTP_HEAD = 1u << 5,    /* served by GET routes, body dropped */
  SFTD_HTTP_OPTIONS = 1u << 6, /* answered by the layer (CORS preflight) */
};

#define SFTD_HTTP_MAX_PARAMS 8  /* {name} segments per pattern */
#define SFTD_HTTP_MAX_QUERY 16  /* query arguments kept per request */
#define SFTD_HTTP_PATH_MAX 1024 /* longer paths: 414 */
#define SFTD_HTTP_TOKEN_MAX 256 /* longest accepted bearer token */
#define SFTD_HTTP_MAX_ROUTES 128

/* Route flags. */
enum {
  SFTD_HTTP_PUBLIC = 1u << 0,   /* no token needed (e.g. /healthz) */
  SFTD_HTTP_RAW_BODY = 1u << 1, /* body not parsed: req->raw_body, any type */
};

/* Handler results. */
enum {
  SFTD_HTTP_DONE = 0,    /* the response is in |resp| */
  SFTD_HTTP_PENDING = 1, /* answered later with sftd_http_respond*(req->id) */
};

struct sftd_http_kv {
  const char *key;
  const char *val;
};

/* What a handler sees. Every pointer is borrowed and valid only during the
 * handler call (keep req->id, not the pointer, for a deferred answer). */
struct sftd_http_req {
  unsigned method;  /* one SFTD_HTTP_* bit */
  const char *path; /* decoded path, without the query */
  size_t nparams;
  struct sftd_http_kv params[SFTD_HTTP_MAX_PARAMS]; /* {name} -> segment */
  size_t nquery;
  struct sftd_http_kv query[SFTD_HTTP_MAX_QUERY]; /* "a=1&b" -> a:1, b:"" */
  json_t *body;            /* parsed JSON body (borrowed) or NULL if none */
  const uint8_t *raw_body; /* the body bytes (RAW_BODY routes), or NULL */
  size_t raw_len;
  const char *remote; /* peer IP address as text */
  uint64_t id;        /* handle for sftd_http_respond; never 0 */
};

/* Opaque response under construction; see sftd_http_resp_*. */
struct sftd_http_resp;

/* A handler fills |resp| and returns SFTD_HTTP_DONE, or returns
 * SFTD_HTTP_PENDING and later completes the request with
 * sftd_http_respond*(srv, req->id, ...) from the loop thread. DONE with no
 * response set is answered 500. */
typedef int (*sftd_http_handler)(const struct sftd_http_req *req,
                                 struct sftd_http_resp *resp, void *ud);

/* Lookup helpers: value of path parameter / query argument |name|, or NULL. */
const char *sftd_http_param(const struct sftd_http_req *req, const char *name);
const char *sftd_http_query(const struct sftd_http_req *req, const char *name);

/* ---- building a response (inside a handler) ---------------------------- */

/* Status + JSON body. Steals |body| (may be NULL: no body). Replaces any
 * earlier response. */
void sftd_http_resp_json(struct sftd_http_resp *resp, int status,
                         json_t *body);
/* Status + text body of type |ctype| (e.g. Prometheus "text/plain;
 * version=0.0.4"); copies |len| bytes of |data|. SFT_ERR_NOMEM. */
int sftd_http_resp_text(struct sftd_http_resp *resp, int status,
                        const char *ctype, const char *data, size_t len);
/* The standard error body {"error":{"code":|code|,"message":...}}. */
void sftd_http_resp_error(struct sftd_http_resp *resp, int status,
                          const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- strict JSON body validation --------------------------------------- */

enum sftd_http_ftype {
  SFTD_F_STRING,  /* min/max bound the byte length */
  SFTD_F_INT,     /* min/max bound the value */
  SFTD_F_NUMBER,  /* integer or real; not bounded */
  SFTD_F_BOOL,
  SFTD_F_OBJECT,
  SFTD_F_ARRAY,   /* min/max bound the element count */
};

struct sftd_http_field {
  const char *name;
  enum sftd_http_ftype type;
  int required;
  int64_t min, max; /* ignored when min > max (e.g. both 0 for "any") */
};

/* Checks that |body| is an object whose members are all listed in
 * |fields| (unknown fields rejected), with the listed types and bounds, and
 * that every required field is present. Returns 0, or SFT_ERR_INVAL with a
 * message naming the field in |msg| (capacity |cap|, always terminated).
 * NULL |body| is an empty object. Pure: used without sockets. */
int sftd_http_json_check(const json_t *body,
                         const struct sftd_http_field *fields, size_t n,
                         char *msg, size_t cap);

/* The same for a handler: on failure also fills |resp| with 400
 * {"error":{"code":"invalid_field","message":...}}. */
int sftd_http_validate(struct sftd_http_resp *resp, const json_t *body,
                       const struct sftd_http_field *fields, size_t n);

/* json_unpack_ex with JSON_STRICT (unknown fields and wrong types fail); on
 * failure fills |resp| with 400 "invalid_field" and Jansson's message and
 * returns SFT_ERR_INVAL. Prefer sftd_http_validate when the message must
 * name the field. */
int sftd_http_unpack(struct sftd_http_resp *resp, json_t *body,
                     const char *fmt, ...);

/* ---- router (pure; embedded in the server, usable alone) ---------------- */

struct sftd_http_route {
  unsigned methods;
  unsigned flags;
  sftd_http_handler fn;
  void *ud;
  char pattern[128];
};

struct sftd_http_router {
  size_t n;
  struct sftd_http_route routes[SFTD_HTTP_MAX_ROUTES];
};

void sftd_http_router_init(struct sftd_http_router *r);

/* Adds a route. |pattern| starts with '/', segments are literals or
 * "{name}" (binds a non-empty segment). |methods| is a mask of
 * SFTD_HTTP_GET... SFT_ERR_INVAL (bad pattern, more than
 * SFTD_HTTP_MAX_PARAMS params, no method), SFT_ERR_FULL, SFT_ERR_EXISTS
 * (same pattern and overlapping methods). */
int sftd_http_router_add(struct sftd_http_router *r, unsigned methods,
                         const char *pattern, sftd_http_handler fn, void *ud,
                         unsigned flags);

/* Matches |path| (|len| bytes, not necessarily terminated) for |method|.
 * Returns 0 and the route in *out with parameters bound in |req|: values are
 * copied, NUL-terminated, into |buf| (capacity |cap|). SFT_ERR_NOT_FOUND: no
 * pattern matches the path. SFT_ERR_UNSUPPORTED: patterns match but not for
 * this method; *allow gets the allowed mask. SFT_ERR_TOO_LARGE: |buf| too
 * small. HEAD matches GET routes. Literal matches win over {params}. */
int sftd_http_router_match(const struct sftd_http_router *r, unsigned method,
                           const char *path, size_t len,
                           struct sftd_http_req *req, char *buf, size_t cap,
                           const struct sftd_http_route **out,
                           unsigned *allow);

/* Parses one query argument "k=v" or "k" (in place; |kv| must stay alive)
 * into req->query; arguments past SFTD_HTTP_MAX_QUERY are dropped. */
void sftd_http_query_add(struct sftd_http_req *req, char *kv);

/* "GET, POST" for a method mask into |out|. */
void sftd_http_methods_str(unsigned mask, char *out, size_t cap);

/* Constant-time comparison of a presented token (|given|, |glen| bytes)
 * with |expected| (NUL-terminated): the time depends only on
 * strlen(expected). 1 if equal. */
int sftd_http_token_eq(const char *expected, const char *given, size_t glen);

/* Extracts the token of an "Authorization: Bearer <token>" value (scheme
 * case-insensitive). Returns 0 and *tok, *toklen pointing into |hdr|, or
 * SFT_ERR_AUTH. */
int sftd_http_bearer(const char *hdr, size_t len, const char **tok,
                     size_t *toklen);

/* ---- per-client rate limit (pure: time passed in) ----------------------- */

#define SFTD_RL_SLOTS 256

struct sftd_rl_slot {
  uint8_t key[16];
  uint8_t keylen; /* 0: free */
  uint64_t units; /* tokens in 1/1000 request */
  uint64_t last_ms;
};

struct sftd_ratelimit {
  uint32_t rate;  /* requests per second; 0 = unlimited */
  uint32_t burst; /* bucket size in requests */
  struct sftd_rl_slot slots[SFTD_RL_SLOTS];
};

void sftd_ratelimit_init(struct sftd_ratelimit *rl, uint32_t rate,
                         uint32_t burst);
/* Takes one request for client |key| (1..16 bytes) at |now_ms|. 0: allowed.
 * SFT_ERR_AGAIN: over the rate; *retry_s = seconds until one token (>= 1).
 * A full table evicts the least recently seen of the probed slots. */
int sftd_ratelimit_take(struct sftd_ratelimit *rl, const uint8_t *key,
                        size_t keylen, uint64_t now_ms, uint32_t *retry_s);

/* ---- the server ---------------------------------------------------------- */

struct sftd_http_config {
  const char *addr;   /* IP literal to bind; default "127.0.0.1" */
  int port;           /* default 8080; 0 = ephemeral (see _port) */
  const char *token;  /* required bearer token (copied); must be set */
  /* NULL-terminated list of origins ("http://host:port") allowed by CORS
   * (copied). Default none: only same-origin use, no CORS headers. */
  const char *const *cors_origins;
  size_t body_limit;          /* bytes; default 1 MiB. Larger -> 413 */
  uint32_t rate_per_s;        /* per remote IP; default 200; 0 = off */
  uint32_t rate_burst;        /* 0 (default): 2 * rate_per_s */
  unsigned timeout_s;         /* headers/body/idle network timeout; 20 */
  unsigned keepalive_s;       /* idle keep-alive connection; default 5 */
  unsigned deferred_timeout_ms; /* pending answer deadline -> 504; 30000 */
  /* WebSocket /ws (zero = default) */
  unsigned ws_max_clients; /* default 256; more upgrades get 503 */
  size_t ws_queue_msgs;    /* per-client outgoing queue; default 256 */
  size_t ws_queue_bytes;   /* ... and bytes; default 1 MiB. Overflow drops
                              the client (close 1008) */
  size_t ws_max_msg;       /* largest client message; default 4096 -> 1009 */
};

/* Fills |cfg| with the defaults above (token NULL). */
void sftd_http_config_default(struct sftd_http_config *cfg);

typedef struct sftd_http sftd_http;

/* Creates the server and starts listening on |loop| (which must outlive it
 * and keep running after sftd_http_free until it drains). Zero fields of
 * |cfg| take the defaults except port (0 = ephemeral). Returns 0,
 * SFT_ERR_INVAL (no token, bad address, too many origins), SFT_ERR_NOMEM,
 * SFT_ERR_IO (lws context or bind failed, e.g. port in use). *out is NULL on
 * failure. */
int sftd_http_new(sftd_http **out, uv_loop_t *loop,
                  const struct sftd_http_config *cfg);

/* Closes the listener and every connection (pending requests are dropped)
 * and releases the server once its handles have closed: the caller keeps
 * running the loop, which then exits if nothing else is active. NULL ok. */
void sftd_http_free(sftd_http *srv);

/* The bound port (useful with port 0). */
int sftd_http_port(const sftd_http *srv);

/* Registers a route (see sftd_http_router_add). */
int sftd_http_route(sftd_http *srv, unsigned methods, const char *pattern,
                    sftd_http_handler fn, void *ud, unsigned flags);

/* Completes a PENDING request. Steals |body| in every case. 0, or
 * SFT_ERR_NOT_FOUND if |id| is unknown: already answered, timed out (504
 * sent) or the client went away. */
int sftd_http_respond(sftd_http *srv, uint64_t id, int status, json_t *body);
/* Same with a text body (copied). */
int sftd_http_respond_text(sftd_http *srv, uint64_t id, int status,
                           const char *ctype, const char *data, size_t len);

/* Counters for tests and /metrics. */
struct sftd_http_stats {
  uint64_t requests, errors_4xx, errors_5xx, rate_limited, pending;
  /* WebSocket: connected now, upgrades accepted / refused (401, 403, 404,
   * 429, 503, 400), clients dropped for a full queue, clients closed for a
   * bad frame or message (1002/1003/1007/1008/1009), messages written,
   * throttled messages superseded by a newer one for the same key. */
  uint64_t ws_clients, ws_accepted, ws_rejected, ws_dropped_slow,
      ws_closed_bad, ws_sent, ws_coalesced;
};
void sftd_http_get_stats(const sftd_http *srv, struct sftd_http_stats *st);

/* ---- WebSocket /ws (same port, same token) ------------------------------------ *
 * Upgrade on GET /ws. Auth: "Authorization: Bearer <t>", or the query
 * argument token=<t>, or a Sec-WebSocket-Protocol element "bearer.<t>" next
 * to SFTD_WS_PROTOCOL (browsers cannot set headers); constant-time compare.
 * Refusals are plain HTTP answers with the REST error body: 401 (token),
 * 403 (Origin neither in cors_origins nor same-origin with Host), 404 (other
 * path), 429 (rate limit), 503 (ws_max_clients), 400 (bad subprotocol list).
 * Server -> client: text messages (JSON from the daemon). Client -> server:
 * text JSON objects; {"subscribe": "id" | ["id", ...]} and {"unsubscribe":
 * ...} are handled here (answered with {"type":"Subscribed","topics":[...]});
 * any other object goes to the sftd_http_ws_on_message callback. */

#define SFTD_WS_PATH "/ws"
#define SFTD_WS_PROTOCOL "sft.v1" /* the one subprotocol (optional) */
#define SFTD_WS_TOPIC_MAX 128     /* bytes in a topic */
#define SFTD_WS_MAX_TOPICS 64     /* subscriptions per client */
#define SFTD_WS_THROTTLE_KEYS 1024 /* throttled keys tracked at once */

/* Close codes sent by the server. */
enum {
  SFTD_WS_CLOSE_PROTOCOL = 1002, /* bad frame (sent by lws) */
  SFTD_WS_CLOSE_BINARY = 1003,   /* binary message: only text is accepted */
  SFTD_WS_CLOSE_BAD_DATA = 1007, /* invalid UTF-8, JSON, or message shape */
  SFTD_WS_CLOSE_POLICY = 1008,   /* slow consumer (queue full), >64 topics */
  SFTD_WS_CLOSE_TOO_BIG = 1009,  /* message over ws_max_msg */
};

/* Called for each client message that is a JSON object without
 * "subscribe"/"unsubscribe". |msg| is borrowed for the call; |client|
 * identifies the sender for sftd_http_ws_send. */
typedef void (*sftd_http_ws_msg_fn)(sftd_http *srv, uint64_t client,
                                    json_t *msg, void *ud);
void sftd_http_ws_on_message(sftd_http *srv, sftd_http_ws_msg_fn fn,
                             void *ud);

/* Queues the text message |json| (|len| bytes, valid UTF-8; copied once and
 * shared) for every connected client, as topic "" (global: delivered to all
 * clients whatever their subscriptions). |flags| must be 0 (reserved).
 * Never blocks: a client whose queue would exceed ws_queue_msgs or
 * ws_queue_bytes is dropped (close 1008, stats.ws_dropped_slow). Returns the
 * number of clients it was queued for (>= 0), SFT_ERR_INVAL (NULL args,
 * flags), SFT_ERR_TOO_LARGE (len > ws_queue_bytes), SFT_ERR_NOMEM. */
int sftd_http_ws_broadcast(sftd_http *srv, const char *json, size_t len,
                           unsigned flags);

/* The same for |topic| (NULL or "" = global; at most SFTD_WS_TOPIC_MAX
 * bytes, else SFT_ERR_INVAL): delivered to clients with no subscriptions and
 * to clients subscribed to |topic|. */
int sftd_http_ws_publish(sftd_http *srv, const char *topic, const char *json,
                         size_t len, unsigned flags);

/* Rate-limited publish for |key| (e.g. "progress:<id>"; 1..128 bytes): sent
 * at once if nothing was sent for |key| in the last |min_interval_ms|;
 * otherwise it replaces any message waiting for |key| and a loop timer sends
 * the latest one when the interval ends (the last value is never lost, only
 * superseded ones; stats.ws_coalesced). |json| is copied. Returns the number
 * of clients reached when sent now, 0 when deferred, or the errors of
 * sftd_http_ws_publish. With SFTD_WS_THROTTLE_KEYS keys pending, a new key
 * is published at once. */
int sftd_http_ws_broadcast_throttled(sftd_http *srv, const char *topic,
                                     const char *key, const char *json,
                                     size_t len, unsigned min_interval_ms);

/* Queues |json| for one client (e.g. an answer to its message); a full
 * queue drops that client as above. 0, SFT_ERR_NOT_FOUND (unknown or gone),
 * SFT_ERR_INVAL, SFT_ERR_TOO_LARGE, SFT_ERR_NOMEM. */
int sftd_http_ws_send(sftd_http *srv, uint64_t client, const char *json,
                      size_t len);

/* Connected WebSocket clients (not counting dropped ones still closing). */
size_t sftd_http_ws_count(const sftd_http *srv);

/* ---- token file ------------------------------------------------------------ */

/* Reads the API token from |path|, or creates it first (256 random bits as
 * 64 hex chars, mode 0600, O_EXCL) if absent. The read is bounded; the file
 * must be a regular file not readable by group/other. |out| (capacity |cap|
 * >= 65) gets the NUL-terminated token. Returns 0, SFT_ERR_INVAL (cap),
 * SFT_ERR_AUTH (file accessible to others), SFT_ERR_MALFORMED (bad
 * content), SFT_ERR_IO. */
int sftd_http_token_load_or_create(const char *path, char *out, size_t cap);

#endif /* SFTD_API_HTTP_H */
