/*
 * `sft daemon`: one long-running process that receives (QUIC listener),
 * sends on request, and serves the REST control API, all on one libuv loop.
 *
 *   configuration   config.c (file < SFT_<SECTION>_<KEY> < --set flags)
 *   identity        node.c (data directory, key, trust files)
 *   transfers       engine.c + send.c / recv.c (sessions on one QUIC context)
 *   sessions        store/ (SQLite): each outgoing transfer is recorded with
 *                   durable milestones (created, completed, failed, cancelled)
 *   API             api/http.c (libwebsockets on this loop, bearer token)
 *
 * Routes: docs/internals/daemon.md. Not yet: resume of interrupted transfers
 * after a restart (they are recorded as failed with reason "interrupted"),
 * incoming sessions in the store, the priority scheduler across transfers.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/api/http.h"
#include "daemon/clock.h"
#include "daemon/config.h"
#include "daemon/engine.h"
#include "daemon/grpc/grpc.h"
#include "daemon/paths.h"
#include "daemon/sftd.h"
#include "daemon/share.h"
#include "daemon/store/store.h"
#include "daemon/xfer_int.h"
#include "sft/hash.h"
#include "sft/limits.h"
#include "sft/metrics.h"
#include "sft/xfer.h"

#define MAX_XFERS 4096         /* transfers kept in memory (live + recent) */
#define MAX_PATHS 1024         /* paths in one send request */
#define SFTD_DEFAULT_PORT 5000 /* a peer list entry without :PORT */

struct daemon;

/* One outgoing transfer requested through the API. */
/* Longest "via" (local bind addresses) a send request may carry. */
#define VIA_TEXT_MAX 512

struct dxfer {
  struct daemon *d;
  uint8_t id[SFT_SESSION_ID_LEN];
  char id_hex[2 * SFT_SESSION_ID_LEN + 1];
  char peer[300]; /* host:port as given */
  char host[300]; /* its host part */
  char **paths;
  size_t npaths;
  struct sftd_send_opts opts;
  struct sftd_result res;
  struct sender *s;
  int state; /* enum sft_xfer_state */
  int paused;
  struct sftd_progress p; /* last progress snapshot */
  uint64_t created_ns;
  uint8_t peer_fp[SFTD_FP_LEN];
  int have_peer_fp;
  uint8_t sid[SFT_SESSION_ID_LEN]; /* a reloaded transfer's session id */
  unsigned paths_seen;        /* network paths reported so far (PathUpdate) */
  char via[VIA_TEXT_MAX + 1]; /* "ADDR[,ADDR]" (opts.via points here) */
  uint64_t rate_t, rate_b;    /* rate estimate window */
  double rate_bps;
};

struct daemon {
  struct engine e;
  struct sftd_config cfg;
  struct sftd_node node;
  struct sftd_store *store;
  struct receiver *recv;
  struct sftd_recv_opts ropts;
  struct sftd_result rres;
  sftd_http *http;
  struct sftd_grpc *grpc;
  char token[128];
  char download_dir[4096];
  char listen_host[256];
  struct dxfer *x[MAX_XFERS];
  size_t max_xfers; /* MAX_XFERS; SFT_MAX_XFERS_IN_MEMORY (tests) lowers it */
  size_t nx;
  uint64_t recv_files, recv_bytes;
  struct sftd_share *share; /* the global bwlimit, shared by priority class */
  sft_metrics *metrics;     /* Prometheus registry, GET /metrics */
  struct sft_metrics_std m;
  sft_metric_family *path_rate, *path_state; /* {transfer, path} */
  int stopping;
  int log_level; /* 0 error .. 3 debug: [log] level, or $SFT_LOG */
  uint64_t started_ns;
};

static void log_line(struct daemon *d, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_line(struct daemon *d, int level, const char *fmt, ...) {
  static const char *names[] = {"error", "warn", "info", "debug"};
  char msg[2048], ts[40];
  va_list ap;
  time_t t = time(NULL);
  struct tm tm;
  if (level > d->log_level)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  gmtime_r(&t, &tm);
  strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
  /* logfmt: one event per line, the message quoted and escaped. */
  fprintf(stderr, "time=%s level=%s msg=\"", ts, names[level < 4 ? level : 3]);
  for (const char *p = msg; *p; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"' || c == '\\')
      fprintf(stderr, "\\%c", c);
    else if (c < 0x20 || c == 0x7f)
      fprintf(stderr, "\\x%02x", c);
    else
      fputc(c, stderr);
  }
  fputs("\"\n", stderr);
}

static const char *prio_name(int p) {
  return p == 0 ? "critical" : p == 1 ? "high" : "normal";
}

/* ---- persistence of outgoing transfers ----------------------------------- */

static void store_save(struct dxfer *x, int milestone) {
  struct sftd_store_session ss;
  struct daemon *d = x->d;
  int rv;
  if (!d->store)
    return;
  memset(&ss, 0, sizeof(ss));
  memcpy(ss.id, x->id, sizeof(ss.id));
  ss.direction = SFTD_DIR_SEND;
  if (x->have_peer_fp)
    memcpy(ss.peer_fp, x->peer_fp, sizeof(ss.peer_fp));
  snprintf(ss.peer_addr, sizeof(ss.peer_addr), "%s", x->peer);
  ss.priority = (int)x->opts.priority;
  ss.state = x->state;
  ss.error_code = x->res.err;
  if (x->res.err)
    snprintf(ss.error_text, sizeof(ss.error_text), "%s", x->res.why);
  ss.created_ns = x->created_ns;
  ss.updated_ns = sftd_wall_ns();
  ss.bytes_total = x->p.bytes_total;
  ss.bytes_done = x->p.bytes_done;
  rv = sftd_store_save_session(d->store, &ss,
                               milestone ? SFTD_STORE_SYNC_FULL : 0);
  if (rv)
    log_line(d, 1, "cannot record transfer %s: %s", x->id_hex,
             sft_strerror(rv));
}

static const char *state_name(int st);

/* The network paths of |x| (its connections), for GET /api/transfer/{id}. */
static json_t *net_paths_json(const struct dxfer *x) {
  json_t *a = json_array();
  for (unsigned i = 0; i < x->p.npaths && i < 8; i++) {
    const struct sftd_path_stat *ps = &x->p.paths[i];
    json_array_append_new(
        a, json_pack("{s:i, s:s, s:s, s:b, s:f, s:o, s:I, s:I, s:I}", "path",
                     (int)i, "peer", ps->peer, "state",
                     sft_path_status_name(ps->state), "up", ps->up, "rtt_ms",
                     ps->rtt_ms, "loss",
                     ps->loss >= 0 ? json_real(ps->loss) : json_null(),
                     "rate_bps", (json_int_t)ps->rate_bps, "bytes_sent",
                     (json_int_t)ps->bytes_sent, "state_changes",
                     (json_int_t)ps->changes));
  }
  return a;
}

/* ---- WebSocket events (schema: docs/internals/api.md)
 * ------------------------ */

/* Publishes |ev| (stolen) on |topic| after adding "ts": the wall-clock time
 * of the event in Unix milliseconds (microsecond resolution), so clients can
 * measure delivery latency. With a |throttle_key| at most one message per
 * key goes out per 100 ms; the latest is always delivered (api.md). */
static void ws_emit(struct daemon *d, const char *topic, json_t *ev,
                    const char *throttle_key) {
  char *js;
  if (!d->http || !ev) {
    json_decref(ev);
    return;
  }
  json_object_set_new(ev, "ts",
                      json_real((double)(sftd_wall_ns() / 1000) / 1e3));
  js = json_dumps(ev, JSON_COMPACT);
  json_decref(ev);
  if (!js)
    return;
  if (throttle_key)
    sftd_http_ws_broadcast_throttled(d->http, topic, throttle_key, js,
                                     strlen(js), 100);
  else
    sftd_http_ws_publish(d->http, topic, js, strlen(js), 0);
  free(js);
}

/* NetworkEvent of transfer |x|: kind, the peer and a detail text. */
static void ws_network_event(struct dxfer *x, const char *kind,
                             const char *detail) {
  ws_emit(x->d, x->id_hex,
          json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "NetworkEvent", "id",
                    x->id_hex, "kind", kind, "peer", x->peer, "detail",
                    detail ? detail : ""),
          NULL);
}

/* ---- transfer events --------------------------------------------------------
 */

static void on_send_event(const struct sftd_event *ev, void *ud) {
  struct dxfer *x = ud;
  switch (ev->type) {
  case SFTD_EV_PROGRESS: {
    uint64_t t = sftd_now_ns();
    double dt = x->rate_t ? (double)(t - x->rate_t) / 1e9 : 0;
    if (dt >= 0.5) {
      x->rate_bps = 8.0 * (double)(ev->p.bytes_done - x->rate_b) / dt;
      x->rate_t = t;
      x->rate_b = ev->p.bytes_done;
    } else if (!x->rate_t) {
      x->rate_t = t;
      x->rate_b = ev->p.bytes_done;
    }
    if (x->state == SFT_XS_PREPARING && ev->p.bytes_done)
      x->state = SFT_XS_TRANSFERRING;
    if (ev->p.bytes_done != x->p.bytes_done ||
        ev->p.chunks_done != x->p.chunks_done) {
      char key[SFTD_WS_TOPIC_MAX + 1];
      json_t *eta =
          x->rate_bps > 0 && ev->p.bytes_total >= ev->p.bytes_done
              ? json_real(8.0 * (double)(ev->p.bytes_total - ev->p.bytes_done) /
                          x->rate_bps)
              : json_null();
      /* at most 10 per second per transfer; the last value always goes */
      snprintf(key, sizeof(key), "progress:%s", x->id_hex);
      ws_emit(x->d, x->id_hex,
              json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:o, s:s}", "type",
                        "TransferProgress", "id", x->id_hex, "bytes_done",
                        (json_int_t)ev->p.bytes_done, "bytes_total",
                        (json_int_t)ev->p.bytes_total, "chunks_done",
                        (json_int_t)ev->p.chunks_done, "chunks_total",
                        (json_int_t)ev->p.chunks_total, "rate_bps", x->rate_bps,
                        "eta_s", eta, "state", state_name(x->state)),
              key);
    }
    if (ev->p.chunks_done > x->p.chunks_done) {
      /* Chunks completed so far (cumulative, so coalescing loses nothing),
       * batched to at most one message per 100 ms per transfer. The sender
       * reports counts, not chunk indices (docs/internals/api.md). */
      char key[SFTD_WS_TOPIC_MAX + 1];
      snprintf(key, sizeof(key), "chunks:%s", x->id_hex);
      ws_emit(x->d, x->id_hex,
              json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "type",
                        "ChunkCompleted", "id", x->id_hex, "chunks_done",
                        (json_int_t)ev->p.chunks_done, "chunks_total",
                        (json_int_t)ev->p.chunks_total, "chunks_rebuilt",
                        (json_int_t)ev->p.chunks_rebuilt, "chunks_resent",
                        (json_int_t)ev->p.chunks_resent),
              key);
    }
    for (unsigned i = 0; i < ev->p.npaths && i < 8; i++) {
      const struct sftd_path_stat *ps = &ev->p.paths[i];
      int was = i < x->paths_seen ? x->p.paths[i].state : -1;
      if (ps->state == was)
        continue;
      ws_emit(x->d, x->id_hex,
              json_pack("{s:s, s:s, s:i, s:s, s:s, s:s?, s:b, s:f, s:o, s:I, "
                        "s:I}",
                        "type", "PathUpdate", "id", x->id_hex, "path", (int)i,
                        "peer", ps->peer, "state",
                        sft_path_status_name(ps->state), "previous",
                        was < 0 ? NULL : sft_path_status_name(was), "up",
                        ps->up, "rtt_ms", ps->rtt_ms, "loss",
                        ps->loss >= 0 ? json_real(ps->loss) : json_null(),
                        "rate_bps", (json_int_t)ps->rate_bps, "bytes_sent",
                        (json_int_t)ps->bytes_sent),
              NULL);
      log_line(x->d, was < 0 ? 3 : 2, "transfer %s: path %u (%s) %s%s%s",
               x->id_hex, i + 1, ps->peer,
               was < 0 ? "" : sft_path_status_name(was), was < 0 ? "" : " -> ",
               sft_path_status_name(ps->state));
    }
    if (ev->p.npaths > x->paths_seen)
      x->paths_seen = ev->p.npaths;
    x->p = ev->p;
    break;
  }
  case SFTD_EV_CONNECTED:
    if (x->state == SFT_XS_PREPARING)
      x->state = x->paused ? SFT_XS_PAUSED : SFT_XS_TRANSFERRING;
    ws_network_event(x, "connected", ev->text);
    break;
  case SFTD_EV_FALLBACK:
    ws_network_event(x, "fallback", ev->text);
    break;
  case SFTD_EV_LINK_DOWN:
    ws_network_event(x, "link_down", ev->text);
    break;
  case SFTD_EV_LINK_UP:
    ws_network_event(x, "link_up", NULL);
    break;
  case SFTD_EV_FILE_START:
    /* The geometry the file is offered with, for a restart (offered
     * manifest): committed before the receiver can act on the offer
     * being read (WAL; a process crash keeps it). */
    if (x->d->store && ev->man && ev->path &&
        ev->file_id <= SFTD_STORE_MAX_FILE_ID &&
        strlen(ev->path) <= SFTD_STORE_PATH_MAX) {
      struct sftd_store_file row;
      int rv;
      memset(&row, 0, sizeof(row));
      memcpy(row.session_id, x->id, sizeof(row.session_id));
      row.file_id = (uint32_t)ev->file_id;
      row.state = SFT_XS_TRANSFERRING;
      snprintf(row.path, sizeof(row.path), "%s", ev->path);
      row.manifest = *ev->man;
      rv = sftd_store_save_file(x->d->store, &row, 0);
      if (rv)
        log_line(x->d, 1, "transfer %s: cannot record %s: %s", x->id_hex,
                 ev->name, sft_strerror(rv));
    }
    break;
  case SFTD_EV_FILE_FAILED:
    log_line(x->d, 1, "transfer %s: %s: %s", x->id_hex, ev->name,
             ev->text ? ev->text : "");
    break;
  case SFTD_EV_WARN:
    log_line(x->d, 1, "transfer %s: %s", x->id_hex, ev->text);
    break;
  default:
    break;
  }
}

static void on_send_done(struct sender *s, void *ud) {
  struct dxfer *x = ud;
  (void)s;
  if (x->d->stopping && x->res.err == SFT_ERR_CANCELLED) {
    /* Stopped with the daemon (SIGTERM): recorded as it was (transferring
     * or paused), so the next start resumes it (reload_transfers). */
    log_line(x->d, 2, "transfer %s interrupted: resumes on the next start",
             x->id_hex);
    store_save(x, 1);
    send_session_free(x->s);
    x->s = NULL;
    return;
  }
  x->state = x->res.err ? SFT_XS_FAILED : SFT_XS_COMPLETED;
  if (!x->res.err)
    x->p.bytes_done = x->p.bytes_total;
  log_line(x->d, 2, "transfer %s to %s %s%s%s", x->id_hex, x->peer,
           x->res.err ? "failed: " : "completed", x->res.err ? x->res.why : "",
           "");
  store_save(x, 1);
  if (x->res.err)
    ws_emit(x->d, x->id_hex,
            json_pack("{s:s, s:s, s:s, s:s}", "type", "TransferFailed", "id",
                      x->id_hex, "code", sft_err_name(x->res.err), "message",
                      x->res.why),
            NULL);
  else
    ws_emit(x->d, x->id_hex,
            json_pack("{s:s, s:s, s:I, s:f, s:I}", "type", "TransferCompleted",
                      "id", x->id_hex, "bytes", (json_int_t)x->res.bytes,
                      "seconds", x->res.seconds, "files",
                      (json_int_t)x->res.files_ok),
            NULL);
  if (x->d->metrics) {
    sft_metric_inc(x->d->m.chunks_sent, (double)x->res.chunks_sent);
    sft_metric_inc(x->d->m.retries, (double)x->res.chunks_resent);
    sft_metric_inc(x->d->m.bytes_transferred, (double)x->res.bytes);
    if (x->res.err)
      sft_metric_inc(x->d->m.chunks_failed,
                     (double)(x->p.chunks_total > x->p.chunks_done
                                  ? x->p.chunks_total - x->p.chunks_done
                                  : 0));
  }
  send_session_free(x->s);
  x->s = NULL;
}

static void on_recv_event(const struct sftd_event *ev, void *ud) {
  struct daemon *d = ud;
  switch (ev->type) {
  case SFTD_EV_FILE_DONE:
    d->recv_files++;
    d->recv_bytes += ev->size;
    if (d->metrics) {
      sft_metric_inc(d->m.bytes_transferred, (double)ev->size);
      sft_metric_inc(d->m.chunks_received, (double)ev->p.chunks_done);
      if (ev->p.chunks_rebuilt && d->m.chunks_rebuilt)
        sft_metric_inc(d->m.chunks_rebuilt, (double)ev->p.chunks_rebuilt);
    }
    log_line(d, 2,
             "received %s (%" PRIu64 " bytes, %" PRIu64 " chunks, %" PRIu64
             " rebuilt from parity, %" PRIu64
             " duplicates: chunks that arrived again after being verified)",
             ev->name, ev->size, ev->p.chunks_done, ev->p.chunks_rebuilt,
             ev->p.chunks_resent);
    break;
  case SFTD_EV_FILE_FAILED:
    log_line(d, 1, "receiving %s failed: %s", ev->name,
             ev->text ? ev->text : "");
    break;
  case SFTD_EV_REFUSED_PEER:
    log_line(d, 1,
             "refused a connection from %s: not in trusted_peers (sft trust "
             "%s)",
             ev->text, ev->text);
    break;
  case SFTD_EV_LISTENING:
    log_line(d, 2, "receiving on %s into %s", ev->text, d->download_dir);
    break;
  case SFTD_EV_CONNECTED:
    log_line(d, 2, "incoming session %s from %s", ev->session_hex,
             ev->text ? ev->text : "?");
    break;
  case SFTD_EV_WARN:
    log_line(d, 1, "%s", ev->text);
    break;
  default:
    break;
  }
}

/* ---- JSON views
 * ---------------------------------------------------------------- */

static const char *state_name(int st) {
  return sft_xfer_state_name((enum sft_xfer_state)st);
}

static json_t *xfer_progress_json(const struct dxfer *x) {
  double pct = x->p.bytes_total
                   ? 100.0 * (double)x->p.bytes_done / (double)x->p.bytes_total
                   : (x->state == SFT_XS_COMPLETED ? 100.0 : 0.0);
  return json_pack(
      "{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f}", "id", x->id_hex,
      "state", state_name(x->state), "bytes_done", (json_int_t)x->p.bytes_done,
      "bytes_total", (json_int_t)x->p.bytes_total, "chunks_done",
      (json_int_t)x->p.chunks_done, "chunks_total",
      (json_int_t)x->p.chunks_total, "files_done", (json_int_t)x->p.files_done,
      "files_total", (json_int_t)x->p.files_total, "percent", pct, "rtt_ms",
      x->p.rtt_ms);
}

static json_t *xfer_json(const struct dxfer *x) {
  json_t *o = xfer_progress_json(x);
  json_t *paths = json_array();
  for (size_t i = 0; i < x->npaths; i++)
    json_array_append_new(paths, json_string(x->paths[i]));
  json_object_set_new(o, "direction", json_string("send"));
  json_object_set_new(o, "network_paths", net_paths_json(x));
  {
    char sh[2 * SFT_SESSION_ID_LEN + 1];
    sft_hex(x->res.session_id, SFT_SESSION_ID_LEN, sh);
    json_object_set_new(o, "session_id", json_string(sh));
  }
  json_object_set_new(o, "peer", json_string(x->peer));
  json_object_set_new(o, "peer_id", json_string(x->res.peer_fp_text));
  json_object_set_new(o, "priority",
                      json_string(prio_name((int)x->opts.priority)));
  json_object_set_new(o, "paths", paths);
  json_object_set_new(o, "files_ok", json_integer((json_int_t)x->res.files_ok));
  json_object_set_new(
      o, "files_failed",
      json_integer((json_int_t)(x->res.files_failed + x->res.files_refused)));
  json_object_set_new(o, "chunks_sent",
                      json_integer((json_int_t)x->res.chunks_sent));
  json_object_set_new(o, "chunks_resent",
                      json_integer((json_int_t)x->res.chunks_resent));
  if (x->res.err)
    json_object_set_new(o, "error",
                        json_pack("{s:s, s:s}", "code",
                                  sft_err_name(x->res.err), "message",
                                  x->res.why));
  return o;
}

/* ---- routes
 * ---------------------------------------------------------------------- */

static struct dxfer *find(struct daemon *d, const char *id) {
  for (size_t i = 0; i < d->nx; i++)
    if (!strcmp(d->x[i]->id_hex, id))
      return d->x[i];
  return NULL;
}

static struct dxfer *lookup(struct daemon *d, const struct sftd_http_req *req,
                            struct sftd_http_resp *resp) {
  const char *id = sftd_http_param(req, "id");
  struct dxfer *x = id ? find(d, id) : NULL;
  if (!x)
    sftd_http_resp_error(resp, 404, "not_found", "no transfer with id '%s'",
                         id ? id : "");
  return x;
}

static int h_health(const struct sftd_http_req *req,
                    struct sftd_http_resp *resp, void *ud) {
  struct daemon *d = ud;
  (void)req;
  sftd_http_resp_json(resp, 200,
                      json_pack("{s:s, s:s, s:f}", "status", "ok", "node",
                                d->node.fp_text, "uptime_s",
                                (double)(sftd_now_ns() - d->started_ns) / 1e9));
  return SFTD_HTTP_DONE;
}

static void free_xfer(struct dxfer *x) {
  for (size_t i = 0; i < x->npaths; i++)
    free(x->paths[i]);
  free(x->paths);
  free(x);
}

/* A transfer request, from REST or gRPC, or reloaded from the store. */
struct send_req {
  const char *const *paths;
  size_t npaths;
  const char *peer;     /* HOST:PORT[,HOST:PORT...] (several: multi-path) */
  const char *peer_id;  /* SFT1-... or NULL */
  const char *priority; /* critical|high|normal or NULL */
  uint32_t chunk_size;  /* 0: configuration */
  const char *bwlimit;  /* rate text or NULL */
  const char *fec;      /* "auto", "off", "K+M" or NULL */
  const char *via;      /* local addresses "ADDR[,ADDR]", NULL or "": any */
  /* reload only: the transfer's id, session id, creation time, state */
  const uint8_t *id, *session_id;
  uint64_t created_ns;
  int paused;
};

/* Saves the request that started |x| (JSON), so that a restarted daemon
 * starts it again (reload_transfers). */
static void store_request(struct dxfer *x, const struct send_req *rq) {
  char sid[2 * SFT_SESSION_ID_LEN + 1];
  json_t *o, *paths = json_array();
  char *js;
  int rv;
  if (!x->d->store)
    return;
  for (size_t i = 0; i < x->npaths; i++)
    json_array_append_new(paths, json_string(x->paths[i]));
  sft_hex(x->res.session_id, SFT_SESSION_ID_LEN, sid);
  o = json_pack("{s:i, s:o, s:s, s:s, s:s, s:I, s:s?, s:s?, s:s?, s:s?}", "v",
                1, "paths", paths, "peer", x->peer, "session_id", sid,
                "priority", prio_name((int)x->opts.priority), "chunk_size",
                (json_int_t)rq->chunk_size, "bwlimit", rq->bwlimit, "peer_id",
                rq->peer_id && *rq->peer_id ? rq->peer_id : NULL, "fec",
                rq->fec, "via", x->opts.via);
  js = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
  rv = js ? sftd_store_put_request(x->d->store, x->id, js, strlen(js),
                                   SFTD_STORE_SYNC_FULL)
          : SFT_ERR_NOMEM;
  free(js);
  if (rv)
    log_line(x->d, 1, "transfer %s will not resume after a restart: %s",
             x->id_hex, sft_strerror(rv));
}

/* The manifest a resumed transfer offered file |file_id| with. */
static int offered_manifest(void *ud, uint64_t file_id,
                            struct sft_manifest *out) {
  struct dxfer *x = ud;
  struct sftd_store_file row;
  if (!x->d->store || file_id > SFTD_STORE_MAX_FILE_ID ||
      sftd_store_load_file(x->d->store, x->id, (uint32_t)file_id, &row))
    return SFT_ERR_NOT_FOUND;
  *out = row.manifest;
  sftd_store_file_clear(&row);
  return 0;
}

/* Validates and starts a transfer. Returns 0 and *out (a new transfer, or
 * *dup = 1 and the running one with the same paths and peer); else an
 * SFT_ERR_* with |msg|: SFT_ERR_INVAL (bad request), SFT_ERR_NOT_FOUND (a
 * path), SFT_ERR_FULL (too many transfers), others (start failed). */
static int start_transfer(struct daemon *d, const struct send_req *rq,
                          struct dxfer **out, int *dup, char *msg, size_t cap) {
  struct dxfer *x;
  struct sftd_peer peers[SFTD_PEERS_MAX];
  size_t npeers = 0;
  const char *comma;
  int rv;

  *out = NULL;
  *dup = 0;
  if (!rq->npaths || rq->npaths > MAX_PATHS)
    return snprintf(msg, cap, "paths: 1 to %d entries", MAX_PATHS),
           SFT_ERR_INVAL;
  for (size_t i = 0; i < rq->npaths; i++) {
    size_t n = strlen(rq->paths[i]);
    if (!n || n >= 4096)
      return snprintf(msg, cap, "paths[%zu] must be a non-empty path", i),
             SFT_ERR_INVAL;
    if (rq->paths[i][0] != '/')
      return snprintf(msg, cap,
                      "paths[%zu] must be an absolute path (the daemon does "
                      "not share your working directory)",
                      i),
             SFT_ERR_INVAL;
  }
  if (strlen(rq->peer) >= sizeof(x->peer) ||
      sftd_peerlist_parse(rq->peer, strlen(rq->peer), SFTD_DEFAULT_PORT, peers,
                          SFTD_PEERS_MAX, &npeers, msg, cap))
    return snprintf(msg, cap,
                    "peer must be HOST:PORT (or several, comma-separated: "
                    "one path each), not '%.300s'",
                    rq->peer),
           SFT_ERR_INVAL;
  if (!strchr(rq->peer, ':') || (rq->peer[0] == '[' && !strstr(rq->peer, "]:")))
    return snprintf(msg, cap, "peer must be HOST:PORT, not '%.300s'", rq->peer),
           SFT_ERR_INVAL;
  for (size_t i = 0; i < d->nx; i++) {
    struct dxfer *o = d->x[i];
    size_t k = 0;
    if (sft_xfer_state_terminal((enum sft_xfer_state)o->state) ||
        strcmp(o->peer, rq->peer) || o->npaths != rq->npaths)
      continue;
    while (k < o->npaths && !strcmp(o->paths[k], rq->paths[k]))
      k++;
    if (k == o->npaths) {
      *out = o;
      *dup = 1;
      return 0;
    }
  }
  if (d->nx >= d->max_xfers) {
    /* Forget the oldest finished transfer (its record stays in the store:
     * GET /api/sessions?... lists memory, the store keeps history). */
    for (size_t i = 0; i < d->nx; i++) {
      struct dxfer *o = d->x[i];
      if (o->s || !sft_xfer_state_terminal((enum sft_xfer_state)o->state))
        continue;
      free_xfer(o);
      memmove(&d->x[i], &d->x[i + 1], (d->nx - i - 1) * sizeof(d->x[0]));
      d->nx--;
      break;
    }
  }
  if (d->nx >= d->max_xfers)
    return snprintf(msg, cap, "too many transfers running (%zu)", d->max_xfers),
           SFT_ERR_FULL;
  x = calloc(1, sizeof(*x));
  if (!x || !(x->paths = calloc(rq->npaths, sizeof(char *)))) {
    free(x);
    return snprintf(msg, cap, "out of memory"), SFT_ERR_NOMEM;
  }
  x->d = d;
  x->npaths = rq->npaths;
  for (size_t i = 0; i < rq->npaths; i++)
    x->paths[i] = strdup(rq->paths[i]);
  snprintf(x->peer, sizeof(x->peer), "%s", rq->peer);
  snprintf(x->host, sizeof(x->host), "%s", peers[0].host);
  comma = strchr(x->peer, ',');
  x->opts.more_peers = comma ? comma + 1 : NULL;
  x->opts.port = peers[0].port;
  x->opts.host = x->host;
  x->opts.priority = SFTD_PRIO_NORMAL;
  rv = 0;
  if (rq->priority && *rq->priority) {
    if (!strcmp(rq->priority, "critical"))
      x->opts.priority = SFTD_PRIO_CRITICAL;
    else if (!strcmp(rq->priority, "high"))
      x->opts.priority = SFTD_PRIO_HIGH;
    else if (strcmp(rq->priority, "normal")) {
      snprintf(msg, cap, "priority must be critical, high or normal");
      rv = SFT_ERR_INVAL;
    }
  }
  if (!rv && rq->peer_id && *rq->peer_id) {
    if (sftd_fp_parse(rq->peer_id, strlen(rq->peer_id), x->peer_fp)) {
      snprintf(msg, cap, "peer_id is not a valid identity (SFT1-...)");
      rv = SFT_ERR_INVAL;
    }
    x->have_peer_fp = 1;
    x->opts.peer_fp = x->peer_fp;
  }
  x->opts.bwlimit_bps = d->cfg.per_transfer_bwlimit;
  if (!rv && rq->bwlimit) {
    const char *why = NULL;
    if (sftd_parse_rate(rq->bwlimit, &x->opts.bwlimit_bps, &why)) {
      snprintf(msg, cap, "bwlimit: %s", why ? why : "not a rate (e.g. 10M)");
      rv = SFT_ERR_INVAL;
    }
  }
  /* [transfer] data_shards / parity_shards; a request's "fec" overrides
   * them. (max_retries is not used: each connection of a transfer is
   * reopened up to SFTD_RETRIES_DEFAULT times in a row, with backoff.) */
  if (d->cfg.data_shards &&
      (d->cfg.data_shards != 10 || d->cfg.parity_shards != SFTD_PARITY_AUTO)) {
    x->opts.fec_k = d->cfg.data_shards;
    x->opts.fec_m =
        d->cfg.parity_shards == SFTD_PARITY_AUTO ? 3 : d->cfg.parity_shards;
    x->opts.fec_off = d->cfg.parity_shards == 0;
  }
  if (!rv && rq->fec) {
    const char *why = NULL;
    if (sftd_parse_fec(rq->fec, &x->opts.fec_k, &x->opts.fec_m,
                       &x->opts.fec_off, &why)) {
      snprintf(msg, cap, "fec: %s", why);
      rv = SFT_ERR_INVAL;
    }
  }
  /* "via": checked against this host's interfaces by h_send; a reloaded
   * request is taken as stored (an interface may come up later). */
  if (!rv && rq->via && *rq->via) {
    if (strlen(rq->via) >= sizeof(x->via)) {
      snprintf(msg, cap, "via: longer than %d bytes", VIA_TEXT_MAX);
      rv = SFT_ERR_INVAL;
    } else {
      snprintf(x->via, sizeof(x->via), "%s", rq->via);
      x->opts.via = x->via;
    }
  }
  if (rv) {
    free_xfer(x);
    return rv;
  }
  x->opts.share = d->share;
  if (d->metrics) {
    x->opts.m_chunk_duration = d->m.chunk_duration;
    x->opts.m_chunk_size = d->m.chunk_size;
  }
  x->opts.chunk_size = rq->chunk_size ? rq->chunk_size : d->cfg.chunk_size;
  x->opts.node = &d->node;
  x->opts.paths = (const char *const *)x->paths;
  x->opts.npaths = x->npaths;
  x->opts.on_event = on_send_event;
  x->opts.ud = x;
  x->created_ns = rq->created_ns ? rq->created_ns : sftd_wall_ns();
  x->state = SFT_XS_PREPARING;
  if (rq->session_id) {
    /* A reloaded transfer continues its session: same id, same geometry
     * for the files it offered, and it keeps trying to reconnect. */
    memcpy(x->sid, rq->session_id, sizeof(x->sid));
    x->opts.session_id = x->sid;
    x->opts.offered_manifest = offered_manifest;
    x->opts.persistent = 1;
  }
  x->opts.transport =
      d->cfg.transport == SFTD_TRANSPORT_QUIC  ? SFTD_TRANSPORT_QUIC_ONLY
      : d->cfg.transport == SFTD_TRANSPORT_TCP ? SFTD_TRANSPORT_TCP_ONLY
                                               : SFTD_TRANSPORT_ANY;
  rv = send_session_start(&d->e.loop, d->e.q, d->e.t, &x->opts, &x->res,
                          on_send_done, x, &x->s);
  if (rv) {
    snprintf(msg, cap, "%s", x->res.why);
    free_xfer(x);
    return rv;
  }
  if (rq->id)
    memcpy(x->id, rq->id, sizeof(x->id));
  else if (getrandom(x->id, sizeof(x->id), 0) != (ssize_t)sizeof(x->id))
    memset(x->id, 0, sizeof(x->id));
  sft_hex(x->id, sizeof(x->id), x->id_hex);
  d->x[d->nx++] = x;
  if (rq->paused && send_session_pause(x->s) == 0) {
    x->paused = 1;
    x->state = SFT_XS_PAUSED;
  }
  store_save(x, 1);
  if (!rq->session_id)
    store_request(x, rq);
  log_line(d, 2, "transfer %s: %zu path(s) to %s (%s)", x->id_hex, x->npaths,
           x->peer, prio_name((int)x->opts.priority));
  *out = x;
  return 0;
}

/* Checks a request's "via" against this host's up interfaces (and
 * loopback): 0, or SFT_ERR_* with |msg| naming the field. */
static int via_check(const char *via, char *msg, size_t cap) {
  struct sftd_local ifs[SFTD_IFADDRS_MAX], out[SFTD_VIA_MAX];
  size_t nifs = 0, n = 0;
  char why[256];
  int rv;
  if (sftd_ifaddrs_list(ifs, SFTD_IFADDRS_MAX, &nifs))
    nifs = 0; /* loopback addresses are still accepted */
  rv = sftd_via_parse(via, strlen(via), ifs, nifs, out, SFTD_VIA_MAX, &n, why,
                      sizeof(why));
  if (rv) {
    /* The parser speaks of "--via"; the field is "via". */
    if (!strncmp(why, "--via", 5))
      snprintf(msg, cap, "%s", why + 2);
    else
      snprintf(msg, cap, "via: %s", why);
  }
  return rv;
}

static int h_send(const struct sftd_http_req *req, struct sftd_http_resp *resp,
                  void *ud) {
  static const struct sftd_http_field fields[] = {
      {"paths", SFTD_F_ARRAY, 1, 1, MAX_PATHS},
      {"peer", SFTD_F_STRING, 1, 3, 280},
      {"peer_id", SFTD_F_STRING, 0, 1, 128},
      {"priority", SFTD_F_STRING, 0, 1, 16},
      {"chunk_size", SFTD_F_INT, 0, 4096, 16 << 20},
      {"bwlimit", SFTD_F_STRING, 0, 1, 32},
      {"fec", SFTD_F_STRING, 0, 1, 16},
      {"via", SFTD_F_STRING, 0, 0, VIA_TEXT_MAX},
  };
  struct daemon *d = ud;
  struct send_req rq;
  const char *paths[MAX_PATHS];
  struct dxfer *x;
  json_t *v;
  char msg[1100];
  size_t i;
  int dup, rv;

  if (sftd_http_validate(resp, req->body, fields,
                         sizeof(fields) / sizeof(fields[0])))
    return SFTD_HTTP_DONE;
  memset(&rq, 0, sizeof(rq));
  json_array_foreach(json_object_get(req->body, "paths"), i, v) {
    if (!json_is_string(v)) {
      sftd_http_resp_error(resp, 400, "invalid_field",
                           "paths[%zu] must be a string", i);
      return SFTD_HTTP_DONE;
    }
    paths[i] = json_string_value(v);
  }
  rq.paths = paths;
  rq.npaths = json_array_size(json_object_get(req->body, "paths"));
  rq.peer = json_string_value(json_object_get(req->body, "peer"));
  rq.peer_id = json_string_value(json_object_get(req->body, "peer_id"));
  rq.priority = json_string_value(json_object_get(req->body, "priority"));
  rq.bwlimit = json_string_value(json_object_get(req->body, "bwlimit"));
  rq.fec = json_string_value(json_object_get(req->body, "fec"));
  rq.via = json_string_value(json_object_get(req->body, "via"));
  if (rq.via && *rq.via && via_check(rq.via, msg, sizeof(msg))) {
    sftd_http_resp_error(resp, 400, "invalid_field", "%s", msg);
    return SFTD_HTTP_DONE;
  }
  rq.chunk_size =
      (uint32_t)json_integer_value(json_object_get(req->body, "chunk_size"));
  rv = start_transfer(d, &rq, &x, &dup, msg, sizeof(msg));
  if (rv) {
    sftd_http_resp_error(resp,
                         rv == SFT_ERR_INVAL || rv == SFT_ERR_NOT_FOUND ||
                                 rv == SFT_ERR_UNSUPPORTED
                             ? 400
                         : rv == SFT_ERR_FULL ? 503
                                              : 500,
                         rv == SFT_ERR_INVAL       ? "invalid_field"
                         : rv == SFT_ERR_NOT_FOUND ? "not_found"
                                                   : "send_failed",
                         "%s", msg);
    return SFTD_HTTP_DONE;
  }
  if (dup) {
    json_t *o = xfer_json(x);
    json_object_set_new(o, "duplicate", json_true());
    sftd_http_resp_json(resp, 200, o);
    return SFTD_HTTP_DONE;
  }
  sftd_http_resp_json(resp, 202, xfer_json(x));
  return SFTD_HTTP_DONE;
}

static int h_get(const struct sftd_http_req *req, struct sftd_http_resp *resp,
                 void *ud) {
  struct dxfer *x = lookup(ud, req, resp);
  if (x)
    sftd_http_resp_json(resp, 200, xfer_json(x));
  return SFTD_HTTP_DONE;
}

static int h_progress(const struct sftd_http_req *req,
                      struct sftd_http_resp *resp, void *ud) {
  struct dxfer *x = lookup(ud, req, resp);
  if (x)
    sftd_http_resp_json(resp, 200, xfer_progress_json(x));
  return SFTD_HTTP_DONE;
}

/* Pause (0), resume (1) or cancel (2) a transfer: 0, or SFT_ERR_STATE when
 * it does not apply (already over, not paused, ...). */
static int act(struct dxfer *x, int what) {
  int rv = 0;
  if (sft_xfer_state_terminal((enum sft_xfer_state)x->state) || !x->s)
    return SFT_ERR_STATE;
  if (what == 0) {
    rv = send_session_pause(x->s);
    if (!rv) {
      x->paused = 1;
      x->state = SFT_XS_PAUSED;
    }
  } else if (what == 1) {
    rv = send_session_resume(x->s);
    if (!rv) {
      x->paused = 0;
      x->state = SFT_XS_TRANSFERRING;
    }
  } else {
    send_session_cancel(x->s);
  }
  if (!rv)
    store_save(x, 0);
  return rv;
}

static int h_action(const struct sftd_http_req *req,
                    struct sftd_http_resp *resp, void *ud, int what) {
  struct dxfer *x;
  /* No body, or an empty object: any field is unknown (400). */
  if (sftd_http_validate(resp, req->body, NULL, 0))
    return SFTD_HTTP_DONE;
  x = lookup(ud, req, resp);
  if (!x)
    return SFTD_HTTP_DONE;
  if (act(x, what)) {
    sftd_http_resp_error(resp, 409, "conflict", "transfer %s is %s", x->id_hex,
                         state_name(x->state));
    return SFTD_HTTP_DONE;
  }
  sftd_http_resp_json(resp, 200, xfer_json(x));
  return SFTD_HTTP_DONE;
}

static int h_pause(const struct sftd_http_req *r, struct sftd_http_resp *p,
                   void *ud) {
  return h_action(r, p, ud, 0);
}
static int h_resume(const struct sftd_http_req *r, struct sftd_http_resp *p,
                    void *ud) {
  return h_action(r, p, ud, 1);
}
static int h_cancel(const struct sftd_http_req *r, struct sftd_http_resp *p,
                    void *ud) {
  return h_action(r, p, ud, 2);
}

static int h_sessions(const struct sftd_http_req *req,
                      struct sftd_http_resp *resp, void *ud) {
  struct daemon *d = ud;
  const char *status = sftd_http_query(req, "status");
  json_t *arr = json_array();
  for (size_t i = d->nx; i-- > 0;) {
    struct dxfer *x = d->x[i];
    if (status && strcasecmp(status, state_name(x->state)))
      continue;
    json_array_append_new(arr, xfer_json(x));
  }
  sftd_http_resp_json(resp, 200, json_pack("{s:o}", "sessions", arr));
  return SFTD_HTTP_DONE;
}

static int h_metrics(const struct sftd_http_req *req,
                     struct sftd_http_resp *resp, void *ud) {
  struct daemon *d = ud;
  json_t *classes = json_object();
  uint64_t active = 0, sent_chunks = 0, bytes = 0;
  static const char *names[] = {"critical", "high", "normal"};
  uint64_t per[3] = {0, 0, 0};
  struct sft_sched_stats qs;
  (void)req;
  memset(&qs, 0, sizeof(qs));
  for (size_t i = 0; i < d->nx; i++) {
    struct dxfer *x = d->x[i];
    if (!sft_xfer_state_terminal((enum sft_xfer_state)x->state)) {
      active++;
      per[x->opts.priority]++;
    }
    sent_chunks += x->res.chunks_sent;
    bytes += x->p.bytes_done;
  }
  if (d->share)
    sftd_share_stats(d->share, &qs);
  for (int c = 0; c < 3; c++)
    json_object_set_new(
        classes, names[c],
        json_pack("{s:I, s:I, s:I, s:I, s:f}", "active", (json_int_t)per[c],
                  "queued_chunks", (json_int_t)qs.cls[c].pending_items,
                  "granted_bytes", (json_int_t)qs.cls[c].dequeued_bytes,
                  "granted_chunks", (json_int_t)qs.cls[c].dequeued_items,
                  "wait_avg_ms", (double)qs.cls[c].wait_avg_ns / 1e6));
  sftd_http_resp_json(
      resp, 200,
      json_pack("{s:I, s:I, s:I, s:I, s:I, s:o}", "active_sessions",
                (json_int_t)active, "chunks_sent_total",
                (json_int_t)sent_chunks, "bytes_sent_total", (json_int_t)bytes,
                "files_received_total", (json_int_t)d->recv_files,
                "bytes_received_total", (json_int_t)d->recv_bytes, "classes",
                classes));
  return SFTD_HTTP_DONE;
}

/* Process metrics from /proc (Linux). */
static void process_metrics(struct daemon *d) {
  FILE *f = fopen("/proc/self/stat", "r");
  long tck = sysconf(_SC_CLK_TCK);
  if (f) {
    unsigned long ut = 0, st = 0;
    long rss = 0;
    /* fields 14, 15 (utime, stime) and 24 (rss, pages) */
    if (fscanf(f,
               "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu "
               "%*d %*d %*d %*d %*d %*d %*u %*u %ld",
               &ut, &st, &rss) == 3) {
      sft_metric_set(d->m.cpu_seconds, (double)(ut + st) / (double)tck);
      sft_metric_set(d->m.resident_bytes,
                     (double)rss * (double)sysconf(_SC_PAGESIZE));
    }
    fclose(f);
  }
  {
    DIR *dir = opendir("/proc/self/fd");
    int n = 0;
    if (dir) {
      while (readdir(dir))
        n++;
      closedir(dir);
      sft_metric_set(d->m.open_fds, n > 3 ? n - 3 : 0); /* ., .., dir fd */
    }
  }
}

static int h_prometheus(const struct sftd_http_req *req,
                        struct sftd_http_resp *resp, void *ud) {
  struct daemon *d = ud;
  uint64_t active = 0, per[3] = {0, 0, 0};
  double rate = 0;
  char *out = NULL;
  size_t len = 0;
  (void)req;
  sft_metrics_clear(d->m.path_rtt);
  sft_metrics_clear(d->m.path_loss);
  sft_metrics_clear(d->path_rate);
  sft_metrics_clear(d->path_state);
  for (size_t i = 0; i < d->nx; i++) {
    struct dxfer *x = d->x[i];
    if (sft_xfer_state_terminal((enum sft_xfer_state)x->state))
      continue;
    active++;
    per[x->opts.priority] += x->p.chunks_queued;
    rate += x->rate_bps; /* measured over the last >= 0.5 s */
    for (unsigned k = 0; k < x->p.npaths && k < 8 && d->path_state; k++) {
      const struct sftd_path_stat *ps = &x->p.paths[k];
      const char *lv[2] = {x->id_hex, ps->peer};
      sft_metric *m;
      if (sft_metrics_child(d->path_state, lv, &m) == 0)
        sft_metric_set(m, ps->state);
      char pl[2 * SFT_SESSION_ID_LEN + SFTD_PATH_ADDR_MAX + 2];
      /* The standard per-path families have one label: TRANSFER/PEER. */
      snprintf(pl, sizeof(pl), "%s/%s", x->id_hex, ps->peer);
      if (ps->up && ps->rtt_ms > 0 &&
          sft_metrics_child1(d->m.path_rtt, pl, &m) == 0)
        sft_metric_set(m, ps->rtt_ms / 1e3);
      if (ps->up && ps->loss >= 0 &&
          sft_metrics_child1(d->m.path_loss, pl, &m) == 0)
        sft_metric_set(m, ps->loss);
      if (ps->up && sft_metrics_child(d->path_rate, lv, &m) == 0)
        sft_metric_set(m, (double)ps->rate_bps);
    }
  }
  sft_metric_set(d->m.active_sessions, (double)active);
  for (int c = 0; c < 3; c++)
    sft_metric_set(d->m.queue_size[c], (double)per[c]);
  sft_metric_set(d->m.bandwidth_bps, rate);
  process_metrics(d);
  if (sft_metrics_format_alloc(d->metrics, 16u << 20, &out, &len)) {
    sftd_http_resp_error(resp, 500, "metrics", "cannot format metrics");
    return SFTD_HTTP_DONE;
  }
  sftd_http_resp_text(resp, 200, "text/plain; version=0.0.4; charset=utf-8",
                      out, len);
  sft_metrics_buf_free(d->metrics, out);
  return SFTD_HTTP_DONE;
}

/* ---- gRPC (sft.v1.Agent), on the loop thread
 * ---------------------------------- */

static void grpc_fill(const struct dxfer *x, struct sftd_grpc_status *o) {
  memset(o, 0, sizeof(*o));
  snprintf(o->id, sizeof(o->id), "%s", x->id_hex);
  o->state = (enum sftd_grpc_state)(x->state + 1); /* proto = seed + 1 */
  o->priority = x->opts.priority == SFTD_PRIO_CRITICAL ? SFTD_GRPC_PRIO_CRITICAL
                : x->opts.priority == SFTD_PRIO_HIGH   ? SFTD_GRPC_PRIO_HIGH
                                                       : SFTD_GRPC_PRIO_NORMAL;
  o->bytes_done = x->p.bytes_done;
  o->bytes_total = x->p.bytes_total;
  o->chunks_done = x->p.chunks_done;
  o->chunks_total = x->p.chunks_total;
  o->rate_bps = x->rate_bps / 8;
  if (x->res.err)
    snprintf(o->error, sizeof(o->error), "%s", x->res.why);
  snprintf(o->peer, sizeof(o->peer), "%s", x->peer);
}

static enum sftd_grpc_code g_status(void *ud, const char *id,
                                    struct sftd_grpc_status *out, char *msg) {
  struct dxfer *x = find(ud, id);
  if (!x) {
    snprintf(msg, SFTD_GRPC_TEXT_MAX, "no transfer with id '%s'", id);
    return SFTD_GRPC_NOT_FOUND;
  }
  grpc_fill(x, out);
  return SFTD_GRPC_OK;
}

static enum sftd_grpc_code g_act(void *ud, const char *id,
                                 struct sftd_grpc_status *out, char *msg,
                                 int what) {
  struct dxfer *x = find(ud, id);
  if (!x) {
    snprintf(msg, SFTD_GRPC_TEXT_MAX, "no transfer with id '%s'", id);
    return SFTD_GRPC_NOT_FOUND;
  }
  if (act(x, what)) {
    snprintf(msg, SFTD_GRPC_TEXT_MAX, "transfer %s is %s", x->id_hex,
             state_name(x->state));
    return SFTD_GRPC_FAILED_PRECONDITION;
  }
  grpc_fill(x, out);
  return SFTD_GRPC_OK;
}

static enum sftd_grpc_code g_pause(void *ud, const char *id,
                                   struct sftd_grpc_status *o, char *m) {
  return g_act(ud, id, o, m, 0);
}
static enum sftd_grpc_code g_resume(void *ud, const char *id,
                                    struct sftd_grpc_status *o, char *m) {
  return g_act(ud, id, o, m, 1);
}
static enum sftd_grpc_code g_cancel(void *ud, const char *id,
                                    struct sftd_grpc_status *o, char *m) {
  return g_act(ud, id, o, m, 2);
}

static enum sftd_grpc_code g_send_file(void *ud,
                                       const struct sftd_grpc_send_file *in,
                                       char id_out[SFTD_GRPC_ID_MAX + 1],
                                       char *msg) {
  static const char *prio[] = {NULL, "normal", "high", "critical"};
  struct send_req rq = {.paths = in->paths,
                        .npaths = in->npaths,
                        .peer = in->peer,
                        .peer_id = in->peer_id,
                        .priority = prio[in->priority]};
  struct dxfer *x;
  char m[1100];
  int dup, rv = start_transfer(ud, &rq, &x, &dup, m, sizeof(m));
  if (rv) {
    snprintf(msg, SFTD_GRPC_TEXT_MAX, "%s", m);
    return rv == SFT_ERR_INVAL || rv == SFT_ERR_NOT_FOUND
               ? SFTD_GRPC_INVALID_ARGUMENT
               : sftd_grpc_code_from_err(rv);
  }
  snprintf(id_out, SFTD_GRPC_ID_MAX + 1, "%s", x->id_hex);
  return SFTD_GRPC_OK;
}

static enum sftd_grpc_code g_list(void *ud, enum sftd_grpc_state filter,
                                  struct sftd_grpc_list *out, char *msg) {
  struct daemon *d = ud;
  (void)msg;
  for (size_t i = d->nx; i-- > 0;) {
    struct sftd_grpc_status st;
    grpc_fill(d->x[i], &st);
    if (filter != SFTD_GRPC_STATE_UNSPECIFIED && st.state != filter)
      continue;
    if (sftd_grpc_list_add(out, &st) == SFT_ERR_FULL)
      break;
  }
  return SFTD_GRPC_OK;
}

static int unhex(const char *h, uint8_t *out, size_t n);

/* SendChunk: a chunk (its digest already checked on the gRPC thread) for a
 * session this daemon is receiving: written and taken like one from the
 * sender, who is then acknowledged for it. */
static enum sftd_grpc_code g_send_chunk(void *ud,
                                        const struct sftd_grpc_chunk *in,
                                        bool *accepted, char *msg) {
  struct daemon *d = ud;
  uint8_t sid[SFT_SESSION_ID_LEN];
  int rv;
  *accepted = false;
  if (unhex(in->session_id, sid, sizeof(sid))) {
    snprintf(msg, SFTD_GRPC_TEXT_MAX,
             "session_id must be 32 lowercase hex digits (a receiving "
             "session's id)");
    return SFTD_GRPC_INVALID_ARGUMENT;
  }
  rv = d->recv ? recv_accept_chunk(d->recv, sid, in->file_id, in->chunk_index,
                                   in->data, in->len, in->digest)
               : SFT_ERR_NOT_FOUND;
  switch (rv) {
  case 0:
    *accepted = true;
    return SFTD_GRPC_OK;
  case SFT_ERR_NOT_FOUND:
    snprintf(msg, SFTD_GRPC_TEXT_MAX,
             "no receiving session %s with file %" PRIu64, in->session_id,
             in->file_id);
    return SFTD_GRPC_NOT_FOUND;
  case SFT_ERR_EXISTS:
  case SFT_ERR_STATE:
    /* A valid request the session does not need: not an error. */
    snprintf(msg, SFTD_GRPC_TEXT_MAX, "%s",
             rv == SFT_ERR_EXISTS ? "chunk already held"
                                  : "file is not being received");
    return SFTD_GRPC_OK;
  case SFT_ERR_RANGE:
  case SFT_ERR_INVAL:
    snprintf(msg, SFTD_GRPC_TEXT_MAX, "%s",
             rv == SFT_ERR_RANGE ? "chunk_index past the file's last chunk"
                                 : "data length is not the chunk's length");
    return SFTD_GRPC_INVALID_ARGUMENT;
  default:
    snprintf(msg, SFTD_GRPC_TEXT_MAX, "%s", sft_strerror(rv));
    return SFTD_GRPC_INTERNAL;
  }
}

/* ---- start-up and shutdown
 * ------------------------------------------------------ */

static int unhex(const char *h, uint8_t *out, size_t n) {
  if (!h || strlen(h) != 2 * n)
    return SFT_ERR_MALFORMED;
  for (size_t i = 0; i < 2 * n; i++) {
    int c = h[i], v = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                             : -1;
    if (v < 0)
      return SFT_ERR_MALFORMED;
    out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | v : v << 4);
  }
  return 0;
}

/* Starts outgoing transfer |row| again from its stored request. */
static int reload_one(struct daemon *d, const struct sftd_store_session *row,
                      char *msg, size_t cap) {
  void *blob = NULL;
  size_t len = 0, i;
  json_t *o, *v, *pa;
  const char *paths[MAX_PATHS];
  uint8_t sid[SFT_SESSION_ID_LEN];
  struct send_req rq;
  struct dxfer *x;
  int dup, rv;

  rv = sftd_store_get_request(d->store, row->id, &blob, &len);
  if (rv)
    return snprintf(msg, cap, "no stored request (%s)", sft_strerror(rv)), rv;
  o = json_loadb(blob, len, JSON_REJECT_DUPLICATES, NULL);
  free(blob);
  pa = json_object_get(o, "paths");
  memset(&rq, 0, sizeof(rq));
  rq.peer = json_string_value(json_object_get(o, "peer"));
  rv = !json_is_object(o) || !json_is_array(pa) || !json_array_size(pa) ||
               json_array_size(pa) > MAX_PATHS || !rq.peer ||
               unhex(json_string_value(json_object_get(o, "session_id")), sid,
                     sizeof(sid))
           ? SFT_ERR_MALFORMED
           : 0;
  json_array_foreach(pa, i, v) {
    if (rv || !json_is_string(v)) {
      rv = SFT_ERR_MALFORMED;
      break;
    }
    paths[i] = json_string_value(v);
  }
  if (rv) {
    json_decref(o);
    return snprintf(msg, cap, "stored request unreadable"), rv;
  }
  rq.paths = paths;
  rq.npaths = json_array_size(pa);
  rq.peer_id = json_string_value(json_object_get(o, "peer_id"));
  rq.priority = json_string_value(json_object_get(o, "priority"));
  rq.bwlimit = json_string_value(json_object_get(o, "bwlimit"));
  rq.fec = json_string_value(json_object_get(o, "fec"));
  rq.via = json_string_value(json_object_get(o, "via"));
  v = json_object_get(o, "chunk_size");
  rq.chunk_size = json_is_integer(v) && json_integer_value(v) > 0 &&
                          json_integer_value(v) <= SFT_CHUNK_SIZE_MAX
                      ? (uint32_t)json_integer_value(v)
                      : 0;
  rq.id = row->id;
  rq.session_id = sid;
  rq.created_ns = row->created_ns;
  rq.paused = row->state == SFT_XS_PAUSED;
  rv = start_transfer(d, &rq, &x, &dup, msg, cap);
  json_decref(o);
  if (!rv)
    log_line(d, 2, "transfer %s resumed (%s)", x->id_hex,
             rq.paused ? "paused" : "reconnecting");
  return rv;
}

/* Outgoing transfers that were running or paused when the daemon last
 * stopped (SIGTERM, crash, power loss) start again from their stored
 * requests, in the same sessions: the receiver answers the re-offers with
 * the chunks it holds, so verified chunks do not cross the wire again.
 * One that cannot restart (its request or files are gone) is recorded as
 * failed with the reason. Receiving sessions wait for their senders
 * (recv.c loads them when a sender reattaches); their rows are marked
 * interrupted. */
static void reload_transfers(struct daemon *d) {
  unsigned live = SFTD_STORE_STATE_BIT(SFT_XS_IDLE) |
                  SFTD_STORE_STATE_BIT(SFT_XS_PREPARING) |
                  SFTD_STORE_STATE_BIT(SFT_XS_TRANSFERRING) |
                  SFTD_STORE_STATE_BIT(SFT_XS_PAUSED) |
                  SFTD_STORE_STATE_BIT(SFT_XS_COMPLETING);
  struct sftd_store_session *v = calloc(MAX_XFERS, sizeof(*v));
  size_t n = 0, got = 0;
  char msg[1100];
  if (!v)
    return;
  while (n < MAX_XFERS &&
         sftd_store_list_sessions(d->store, live, n, v + n,
                                  MAX_XFERS - n < 64 ? MAX_XFERS - n : 64,
                                  &got) == 0 &&
         got) {
    n += got;
    if (got < 64)
      break;
  }
  for (size_t i = 0; i < n; i++) {
    struct sftd_store_session *ss = &v[i];
    int rv = SFT_ERR_CANCELLED;
    snprintf(msg, sizeof(msg), "interrupted: the daemon stopped");
    if (ss->direction == SFTD_DIR_SEND)
      rv = reload_one(d, ss, msg, sizeof(msg));
    if (!rv)
      continue;
    if (ss->direction == SFTD_DIR_SEND)
      log_line(d, 1, "transfer cannot resume: %s", msg);
    ss->state = SFT_XS_FAILED;
    ss->error_code = rv;
    snprintf(ss->error_text, sizeof(ss->error_text), "%s", msg);
    ss->updated_ns = sftd_wall_ns();
    sftd_store_save_session(d->store, ss, SFTD_STORE_SYNC_FULL);
  }
  free(v);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct daemon *d = h->data;
  log_line(d, 2, "signal %d: stopping", signum);
  if (d->stopping)
    return;
  d->stopping = 1;
  /* Close everything and let the loop run down by itself, so libuv-hosted
   * libraries (libwebsockets) finish their own clean-up. */
  for (size_t i = 0; i < d->nx; i++)
    if (d->x[i]->s)
      send_session_cancel(d->x[i]->s);
  engine_stop(&d->e);
  if (d->share)
    sftd_share_close(d->share);
  d->share = NULL;
  sftd_http_free(d->http);
  d->http = NULL;
  sftd_grpc_free(d->grpc);
  d->grpc = NULL;
  recv_shutdown(d->recv);
  sftq_ctx_free(d->e.q);
  d->e.q = NULL;
  sftt_ctx_free(d->e.t);
  d->e.t = NULL;
}

static int fail(char *why, size_t whylen, int rv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *why, size_t whylen, int rv, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
  return rv;
}

int sftd_daemon_run(const struct sftd_daemon_opts *o, char *why,
                    size_t whylen) {
  struct daemon *d = calloc(1, sizeof(*d));
  struct sftd_config_err cerr = {0};
  struct sftd_http_config hc;
  sftq_config qc;
  char path[4300], errbuf[SFTD_STORE_ERRBUF_SIZE];
  char origins_buf[SFTD_CFG_ORIGINS_MAX], *origins[17];
  const char *data_dir;
  int rv;

  if (!d)
    return fail(why, whylen, SFT_ERR_NOMEM, "out of memory");
  d->started_ns = sftd_now_ns();
  d->max_xfers = MAX_XFERS;
  {
    const char *e = getenv("SFT_MAX_XFERS_IN_MEMORY");
    long v = e ? strtol(e, NULL, 10) : 0;
    if (v > 0 && v < MAX_XFERS)
      d->max_xfers = (size_t)v;
  }
  rv = sftd_config_load(&d->cfg, o->config_path, o->envp, o->sets, o->nsets,
                        &cerr);
  if (rv) {
    free(d);
    return fail(why, whylen, SFT_ERR_INVAL, "%s", cerr.msg);
  }
  d->log_level = (int)d->cfg.log_level;
  {
    static const char *lv[] = {"error", "warn", "info", "debug"};
    const char *env = getenv("SFT_LOG");
    for (int i = 0; env && i < 4; i++)
      if (!strcasecmp(env, lv[i]))
        d->log_level = i;
  }
  if (o->print_config) {
    sftd_config_write(&d->cfg, SFTD_PRINT_ORIGINS, stdout);
    free(d);
    return 0;
  }
  data_dir = o->data_dir          ? o->data_dir
             : d->cfg.data_dir[0] ? d->cfg.data_dir
                                  : NULL;
  rv = sftd_node_load(data_dir, &d->node, why, whylen);
  if (rv) {
    free(d);
    return rv;
  }
  if (d->cfg.download_dir[0])
    snprintf(d->download_dir, sizeof(d->download_dir), "%s",
             d->cfg.download_dir);
  else
    snprintf(d->download_dir, sizeof(d->download_dir), "%s/downloads",
             d->node.data_dir);
  if (mkdir(d->download_dir, 0700) != 0 && errno != EEXIST) {
    rv = fail(why, whylen, SFT_ERR_IO, "cannot create %s: %s", d->download_dir,
              strerror(errno));
    free(d);
    return rv;
  }
  if (sftd_config_database_path(&d->cfg, d->node.data_dir, path,
                                sizeof(path)) ||
      sftd_store_open_sqlite(path, &d->store, errbuf)) {
    rv = fail(why, whylen, SFT_ERR_IO, "cannot open the session store %s: %s",
              path, errbuf);
    free(d);
    return rv;
  }
  if (d->cfg.cleanup_days) {
    uint64_t gone = 0;
    sftd_store_cleanup(d->store, sftd_wall_ns(), d->cfg.cleanup_days, &gone);
  }
  if (sft_metrics_new(&d->metrics, NULL) == 0 &&
      sft_metrics_std_register(d->metrics, &d->m) == 0) {
    static const char *const pl[2] = {"transfer", "path"};
    static const struct {
      const char *name, *help;
    } pf[2] = {
        {"path_delivery_rate_bps",
         "Delivery rate of a network path of a transfer, bits per second."},
        {"path_state", "State of a network path of a transfer: 0 active, 1 "
                       "degraded, 2 failed."},
    };
    sft_metric_family **fam[2] = {&d->path_rate, &d->path_state};
    sft_metric_set(d->m.start_time, (double)sftd_wall_ns() / 1e9);
    for (int k = 0; k < 2; k++) {
      struct sft_metric_desc md = {.name = pf[k].name,
                                   .help = pf[k].help,
                                   .type = SFT_METRIC_GAUGE,
                                   .labels = pl,
                                   .nlabels = 2};
      if (sft_metrics_register(d->metrics, &md, fam[k]))
        *fam[k] = NULL;
    }
  } else {
    sft_metrics_del(d->metrics);
    d->metrics = NULL;
    log_line(d, 1, "metrics unavailable");
  }
  engine_init(&d->e, d, on_signal);
  if (d->cfg.bwlimit &&
      (rv = sftd_share_new(&d->e.loop, d->cfg.bwlimit, NULL, &d->share))) {
    fail(why, whylen, rv, "bandwidth limit: %s", sft_strerror(rv));
    goto out;
  }
  memset(&qc, 0, sizeof(qc));
  qc.manual_rx_credit = 1;
  qc.copy_limit = 32u << 20;
  qc.idle_timeout_ms = (uint32_t)d->cfg.idle_timeout_ms;
  qc.handshake_timeout_ms = 10000;
  qc.pfec = engine_pfec(d->cfg.packet_fec);
  {
    static const char *cc[] = {"bbr2", "bbr", "cubic", "reno"};
    rv = engine_quic(&d->e, &d->node, cc[d->cfg.congestion_control], &qc,
                     &d->rres);
  }
  if (rv) {
    snprintf(why, whylen, "%s", d->rres.why);
    goto out;
  }
  snprintf(d->listen_host, sizeof(d->listen_host), "%s",
           d->cfg.quic_bind_addr.host);
  d->ropts.node = &d->node;
  d->ropts.dir = d->download_dir;
  d->ropts.listen_addr = d->listen_host;
  d->ropts.listen_port = d->cfg.quic_bind_addr.port;
  d->ropts.accept_any = d->cfg.accept_any;
  d->ropts.overwrite = d->cfg.overwrite;
  d->ropts.max_size = d->cfg.max_file_size;
  d->ropts.transport =
      d->cfg.transport == SFTD_TRANSPORT_QUIC  ? SFTD_TRANSPORT_QUIC_ONLY
      : d->cfg.transport == SFTD_TRANSPORT_TCP ? SFTD_TRANSPORT_TCP_ONLY
                                               : SFTD_TRANSPORT_ANY;
  d->ropts.store = d->store; /* receiving sessions survive a restart */
  d->ropts.on_event = on_recv_event;
  d->ropts.ud = d;
  rv = recv_create(&d->e, &d->ropts, &d->rres, &d->recv);
  if (rv) {
    snprintf(why, whylen, "%s", d->rres.why);
    goto out;
  }
  if (sftd_datadir_file(d->node.data_dir, "api.token", path, sizeof(path)) ||
      (rv = sftd_http_token_load_or_create(path, d->token, sizeof(d->token)))) {
    rv = fail(why, whylen, rv ? rv : SFT_ERR_IO,
              "cannot read or create the API token %s: %s", path,
              sft_strerror(rv ? rv : SFT_ERR_IO));
    goto out;
  }
  sftd_http_config_default(&hc);
  hc.addr = d->cfg.api_bind_addr.host;
  hc.port = d->cfg.api_bind_addr.port;
  hc.token = d->token;
  hc.body_limit = (size_t)d->cfg.body_limit;
  hc.rate_per_s = d->cfg.rate_limit;
  {
    /* [api] cors_origins = "a,b": split into the server's list (the
     * configuration parser validated each origin). */
    char *p = origins_buf;
    size_t n = 0;
    snprintf(origins_buf, sizeof(origins_buf), "%s", d->cfg.cors_origins);
    while (p && *p && n < 16) {
      char *c = strchr(p, ',');
      if (c)
        *c = 0;
      while (*p == ' ')
        p++;
      if (*p)
        origins[n++] = p;
      p = c ? c + 1 : NULL;
    }
    origins[n] = NULL;
    hc.cors_origins = (const char *const *)origins;
  }
  rv = sftd_http_new(&d->http, &d->e.loop, &hc);
  if (rv) {
    rv = fail(why, whylen, rv,
              "cannot serve the API on %s:%u: %s (is another daemon "
              "running?)",
              hc.addr, d->cfg.api_bind_addr.port, sft_strerror(rv));
    goto out;
  }
  sftd_http_route(d->http, SFTD_HTTP_GET, "/healthz", h_health, d,
                  SFTD_HTTP_PUBLIC);
  sftd_http_route(d->http, SFTD_HTTP_POST, "/api/transfer/send", h_send, d, 0);
  sftd_http_route(d->http, SFTD_HTTP_GET, "/api/transfer/{id}", h_get, d, 0);
  sftd_http_route(d->http, SFTD_HTTP_GET, "/api/transfer/{id}/progress",
                  h_progress, d, 0);
  sftd_http_route(d->http, SFTD_HTTP_POST, "/api/transfer/{id}/pause", h_pause,
                  d, 0);
  sftd_http_route(d->http, SFTD_HTTP_POST, "/api/transfer/{id}/resume",
                  h_resume, d, 0);
  sftd_http_route(d->http, SFTD_HTTP_POST, "/api/transfer/{id}/cancel",
                  h_cancel, d, 0);
  sftd_http_route(d->http, SFTD_HTTP_GET, "/api/sessions", h_sessions, d, 0);
  sftd_http_route(d->http, SFTD_HTTP_GET, "/api/metrics", h_metrics, d, 0);
  if (d->metrics)
    sftd_http_route(d->http, SFTD_HTTP_GET, "/metrics", h_prometheus, d, 0);
  log_line(d, 2, "node %s; API on http://%s:%d (token in %s/api.token)",
           d->node.fp_text, hc.addr, sftd_http_port(d->http), d->node.data_dir);
  {
    static const struct sftd_grpc_handlers gh = {.send_chunk = g_send_chunk,
                                                 .get_status = g_status,
                                                 .send_file = g_send_file,
                                                 .pause = g_pause,
                                                 .resume = g_resume,
                                                 .cancel = g_cancel,
                                                 .list = g_list};
    struct sftd_grpc_config gc = {0};
    char bind[300];
    snprintf(bind, sizeof(bind),
             d->cfg.grpc_bind_addr.ipv6 ? "[%s]:%u" : "%s:%u",
             d->cfg.grpc_bind_addr.host, d->cfg.grpc_bind_addr.port);
    gc.bind = bind;
    gc.token = d->token;
    rv = sftd_grpc_new(&d->grpc, &d->e.loop, &gc, &gh, d);
    if (rv) {
      rv = fail(why, whylen, rv, "cannot serve gRPC on %s: %s", bind,
                sft_strerror(rv));
      goto out;
    }
    log_line(d, 2, "gRPC on %s:%d", d->cfg.grpc_bind_addr.host,
             sftd_grpc_port(d->grpc));
    printf("grpc %s:%d\n", d->cfg.grpc_bind_addr.host, sftd_grpc_port(d->grpc));
  }
  printf("api %s:%d\n", hc.addr, sftd_http_port(d->http));
  fflush(stdout);
  reload_transfers(d);
  uv_run(&d->e.loop, UV_RUN_DEFAULT);
  rv = 0;

out:
  for (size_t i = 0; i < d->nx; i++)
    if (d->x[i]->s)
      store_save(d->x[i], 1); /* interrupted: resumes on the next start */
  if (d->http)
    sftd_http_free(d->http);
  if (d->grpc)
    sftd_grpc_free(d->grpc);
  if (d->share)
    sftd_share_close(d->share);
  engine_teardown(&d->e);
  recv_destroy(d->recv);
  for (size_t i = 0; i < d->nx; i++)
    free_xfer(d->x[i]);
  sftd_store_close(d->store);
  sft_metrics_del(d->metrics);
  free(d);
  return rv;
}
