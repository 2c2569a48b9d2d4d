#include <stdio.h>
#include <stdlib.h>

#include "daemon/engine.h"
#include "daemon/xfer_int.h"
#include "daemon/xport.h"

void engine_init(struct engine *e, void *owner, uv_signal_cb on_signal) {
  uv_loop_init(&e->loop);
  uv_signal_init(&e->loop, &e->sigint);
  uv_signal_init(&e->loop, &e->sigterm);
  e->sigint.data = e->sigterm.data = owner;
  uv_signal_start(&e->sigint, on_signal, SIGINT);
  uv_signal_start(&e->sigterm, on_signal, SIGTERM);
  e->q = NULL;
  e->t = NULL;
  e->recv = NULL;
}

/* ---- dispatch by connection role ------------------------------------------ */

static int d_verify(sftq_conn *c, const uint8_t fp[SFTQ_FP_LEN], void *ud) {
  struct engine *e = ud;
  if (!XP(conn_is_server, c))
    return send_cb_verify(c, fp);
  return e->recv ? recv_cb_verify(e->recv, c, fp) : -1;
}

static void d_connected(sftq_conn *c, void *ud) {
  struct engine *e = ud;
  if (!XP(conn_is_server, c))
    send_cb_connected(c);
  else if (e->recv)
    recv_cb_connected(e->recv, c);
}

static void d_early(sftq_conn *c, void *ud) {
  (void)ud;
  if (!XP(conn_is_server, c))
    send_cb_early(c);
}

static void d_stream_open(sftq_conn *c, int64_t sid, void *ud) {
  struct engine *e = ud;
  if (XP(conn_is_server, c) && e->recv)
    recv_cb_stream_open(e->recv, c, sid);
}

static void d_stream_data(sftq_conn *c, int64_t sid, const uint8_t *data,
                          size_t len, int fin, void *ud) {
  struct engine *e = ud;
  if (!XP(conn_is_server, c))
    send_cb_stream_data(c, sid, data, len, fin);
  else if (e->recv)
    recv_cb_stream_data(e->recv, c, sid, data, len, fin);
}

static void d_stream_close(sftq_conn *c, int64_t sid, uint64_t app_error,
                           void *ud) {
  struct engine *e = ud;
  if (!XP(conn_is_server, c))
    send_cb_stream_close(c, sid, app_error);
  else if (e->recv)
    recv_cb_stream_close(e->recv, c, sid, app_error);
}

/* Every byte written on a stream was acknowledged: the sender's chunk buffer
 * is free (same as a close for the sender); the receiver's last words
 * (ERROR + FIN) were delivered. */
static void d_stream_acked(sftq_conn *c, int64_t sid, void *ud) {
  struct engine *e = ud;
  if (!XP(conn_is_server, c))
    send_cb_stream_close(c, sid, 0);
  else if (e->recv)
    recv_cb_stream_acked(e->recv, c, sid);
}

static void d_writable(sftq_conn *c, void *ud) {
  (void)ud;
  if (!XP(conn_is_server, c))
    send_cb_writable(c);
}

static void d_closed(sftq_conn *c, int reason, uint64_t app_error, void *ud) {
  struct engine *e = ud;
  if (!XP(conn_is_server, c))
    send_cb_closed(c, reason, app_error);
  else if (e->recv)
    recv_cb_closed(e->recv, c, reason, app_error);
}

static void debug_log(const char *line, void *ud) {
  (void)ud;
  fprintf(stderr, "[quic] %s\n", line);
}

int engine_quic(struct engine *e, const struct sftd_node *node,
                const char *cc, sftq_config *cfg, struct sftd_result *res) {
  int rv;
  cfg->cert_path = node->cert_path;
  cfg->key_path = node->key_path;
  if (cc && sftq_cc_parse(cc, &cfg->cc)) {
    res->err = SFT_ERR_INVAL;
    snprintf(res->why, sizeof(res->why),
             "unknown congestion controller '%s' (bbr2, bbr, cubic, reno)",
             cc);
    return res->err;
  }
  if (getenv("SFT_DEBUG"))
    cfg->cb.log = debug_log;
  {
    /* Tuning knob (tests use it to see reconnects within seconds): the
     * QUIC idle timeout in ms, 1000..600000; default 30 s. */
    const char *v = getenv("SFT_IDLE_TIMEOUT_MS");
    char *end = NULL;
    unsigned long ms = v ? strtoul(v, &end, 10) : 0;
    if (v && *v && !*end && ms >= 1000 && ms <= 600000)
      cfg->idle_timeout_ms = (uint32_t)ms;
  }
  cfg->cb.verify_peer = d_verify;
  cfg->cb.connected = d_connected;
  cfg->cb.early = d_early;
  cfg->cb.stream_open = d_stream_open;
  cfg->cb.stream_data = d_stream_data;
  cfg->cb.stream_close = d_stream_close;
  cfg->cb.stream_acked = d_stream_acked;
  cfg->cb.writable = d_writable;
  cfg->cb.closed = d_closed;
  cfg->user_data = e;
  rv = sftq_ctx_new(&e->q, &e->loop, cfg);
  if (!rv)
    rv = sftt_ctx_new(&e->t, &e->loop, cfg);
  if (rv) {
    res->err = rv;
    snprintf(res->why, sizeof(res->why),
             "cannot load this node's identity from %s: %s", node->data_dir,
             sft_strerror(rv));
  }
  return rv;
}

void engine_stop(struct engine *e) {
  uv_signal_stop(&e->sigint);
  uv_signal_stop(&e->sigterm);
}

static void close_cb(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}

void engine_teardown(struct engine *e) {
  if (e->q)
    sftq_ctx_free(e->q);
  if (e->t)
    sftt_ctx_free(e->t);
  e->q = NULL;
  e->t = NULL;
  uv_walk(&e->loop, close_cb, NULL);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  uv_loop_close(&e->loop);
}
