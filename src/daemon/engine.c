#include <stdio.h>
#include <stdlib.h>

#include "daemon/engine.h"

void engine_init(struct engine *e, void *owner, uv_signal_cb on_signal) {
  uv_loop_init(&e->loop);
  uv_timer_init(&e->loop, &e->timer);
  uv_timer_init(&e->loop, &e->ptimer);
  uv_signal_init(&e->loop, &e->sigint);
  uv_signal_init(&e->loop, &e->sigterm);
  e->timer.data = e->ptimer.data = e->sigint.data = e->sigterm.data = owner;
  uv_signal_start(&e->sigint, on_signal, SIGINT);
  uv_signal_start(&e->sigterm, on_signal, SIGTERM);
  e->q = NULL;
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
  rv = sftq_ctx_new(&e->q, &e->loop, cfg);
  if (rv) {
    res->err = rv;
    snprintf(res->why, sizeof(res->why),
             "cannot load this node's identity from %s: %s", node->data_dir,
             sft_strerror(rv));
  }
  return rv;
}

void engine_stop(struct engine *e) {
  uv_timer_stop(&e->timer);
  uv_timer_stop(&e->ptimer);
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
  e->q = NULL;
  uv_walk(&e->loop, close_cb, NULL);
  uv_run(&e->loop, UV_RUN_DEFAULT);
  uv_loop_close(&e->loop);
}
