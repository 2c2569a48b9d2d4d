/*
 * The host of transfer sessions: one libuv loop, SIGINT/SIGTERM handling and
 * one QUIC context whose callbacks dispatch client connections to their
 * outgoing session (send.c) and server connections to the receiver (recv.c).
 * The one-shot commands and the daemon both build on it.
 */
#ifndef SFTD_ENGINE_H
#define SFTD_ENGINE_H

#include <uv.h>

#include "daemon/config.h"
#include "daemon/quic/quic.h"
#include "daemon/sftd.h"
#include "daemon/tcp/tcp.h"

struct receiver;

struct engine {
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  sftq_ctx *q;           /* QUIC */
  sftt_ctx *t;           /* TCP+TLS, the fallback when UDP is blocked */
  struct receiver *recv; /* server connections go here; NULL: refused */
};

/* Initialises the loop and handles; every handle's data is |owner|;
 * |on_signal| runs on SIGINT and SIGTERM. */
void engine_init(struct engine *e, void *owner, uv_signal_cb on_signal);

/* Completes |cfg| (identity paths, congestion controller |cc|, the
 * dispatching callbacks, debug log when $SFT_DEBUG is set; the caller sets
 * the other options) and creates the QUIC and the TCP+TLS contexts (same
 * configuration and callbacks). On error, fills res->err and res->why. */
int engine_quic(struct engine *e, const struct sftd_node *node,
                const char *cc, sftq_config *cfg, struct sftd_result *res);

/* sftq_config.pfec for a packet_fec mode (enum sftd_pfec_mode): auto 0,
 * on 1, off -1. */
static inline int engine_pfec(int mode) {
  return mode == SFTD_PFEC_ON ? 1 : mode == SFTD_PFEC_OFF ? -1 : 0;
}

/* Stops the signal handlers (the loop then runs down). */
void engine_stop(struct engine *e);

/* Frees the QUIC context, closes every handle, runs the loop until all
 * callbacks (thread-pool jobs included) are done and closes it. */
void engine_teardown(struct engine *e);

#endif
