/*
 * What the one-shot sender and receiver share: their libuv loop, a pump
 * timer, a progress timer, SIGINT/SIGTERM handling and the QUIC context.
 */
#ifndef SFTD_ENGINE_H
#define SFTD_ENGINE_H

#include <uv.h>

#include "daemon/quic/quic.h"
#include "daemon/sftd.h"

struct engine {
  uv_loop_t loop;
  uv_timer_t timer;  /* the pump's next deadline */
  uv_timer_t ptimer; /* progress events, every 100 ms */
  uv_signal_t sigint, sigterm;
  sftq_ctx *q;
};

/* Initialises the loop and handles; every handle's data is |owner|;
 * |on_signal| runs on SIGINT and SIGTERM. */
void engine_init(struct engine *e, void *owner, uv_signal_cb on_signal);

/* Completes |cfg| (identity paths, congestion controller |cc|, debug log
 * when $SFT_DEBUG is set; the caller sets callbacks and options) and creates
 * the QUIC context. On error, fills res->err and res->why. */
int engine_quic(struct engine *e, const struct sftd_node *node,
                const char *cc, sftq_config *cfg, struct sftd_result *res);

/* Stops the timers and signal handlers (the loop then runs down). */
void engine_stop(struct engine *e);

/* Frees the QUIC context, closes every handle, runs the loop until all
 * callbacks (thread-pool jobs included) are done and closes it. */
void engine_teardown(struct engine *e);

#endif
