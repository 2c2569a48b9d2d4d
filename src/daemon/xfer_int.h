/*
 * Internal interface between the transfer sessions (send.c, recv.c) and the
 * engine that hosts them (engine.c): one libuv loop and one QUIC context
 * can carry any number of outgoing sessions (client connections) and one
 * receiver (server connections). engine.c installs QUIC callbacks that
 * dispatch on the connection's role to the functions below.
 */
#ifndef SFTD_XFER_INT_H
#define SFTD_XFER_INT_H

#include <uv.h>

#include "daemon/quic/quic.h"
#include "daemon/sftd.h"
#include "daemon/tcp/tcp.h"

struct sender;
struct receiver;

/* ---- outgoing sessions (send.c) ------------------------------------------ */

typedef void (*send_done_fn)(struct sender *s, void *ud);

/* Starts a session on |loop| and |q| (enumerates the paths, connects).
 * |done| is called once when it is over (res filled); then call
 * send_session_free. On an immediate error nothing is started, res says
 * why and *out is NULL. |o| and |res| must outlive the session. */
int send_session_start(uv_loop_t *loop, sftq_ctx *q, sftt_ctx *t,
                       const struct sftd_send_opts *o, struct sftd_result *res,
                       send_done_fn done, void *ud, struct sender **out);
/* Cancels (done follows). */
void send_session_cancel(struct sender *s);
/* Pause: no chunk is read or started any more (bytes already queued in the
 * transport, at most a few MiB, still drain). Resume: continues where it
 * stopped. Return SFT_ERR_STATE when not applicable. */
int send_session_pause(struct sender *s);
int send_session_resume(struct sender *s);
/* Releases the session after done: memory is freed once no thread-pool job
 * refers to it any more (possibly later, from the loop). */
void send_session_free(struct sender *s);

int send_cb_verify(sftq_conn *c, const uint8_t fp[SFTQ_FP_LEN]);
void send_cb_connected(sftq_conn *c);
void send_cb_early(sftq_conn *c);
void send_cb_stream_data(sftq_conn *c, int64_t sid, const uint8_t *data,
                         size_t len, int fin);
void send_cb_stream_close(sftq_conn *c, int64_t sid, uint64_t app_error);
void send_cb_writable(sftq_conn *c);
void send_cb_closed(sftq_conn *c, int reason, uint64_t app_error);

/* ---- the receiver (recv.c) -------------------------------------------------
 */

struct engine;

/* Creates the receiver on |e| (e->q must exist): opens the download
 * directory, listens on o->listen_addr:o->listen_port (reported with
 * SFTD_EV_LISTENING) and sets e->recv. On error res says why. */
int recv_create(struct engine *e, const struct sftd_recv_opts *o,
                struct sftd_result *res, struct receiver **out);
/* Stops its timers (the loop can then run down once the QUIC context is
 * freed). */
void recv_shutdown(struct receiver *r);
/* Frees it after the engine's teardown (handles closed, jobs drained). */
void recv_destroy(struct receiver *r);

int recv_cb_verify(struct receiver *r, sftq_conn *c,
                   const uint8_t fp[SFTQ_FP_LEN]);
void recv_cb_connected(struct receiver *r, sftq_conn *c);
void recv_cb_stream_open(struct receiver *r, sftq_conn *c, int64_t sid);
void recv_cb_stream_data(struct receiver *r, sftq_conn *c, int64_t sid,
                         const uint8_t *data, size_t len, int fin);
void recv_cb_stream_close(struct receiver *r, sftq_conn *c, int64_t sid,
                          uint64_t app_error);
void recv_cb_stream_acked(struct receiver *r, sftq_conn *c, int64_t sid);
void recv_cb_closed(struct receiver *r, sftq_conn *c, int reason,
                    uint64_t app_error);

/* A data chunk for session |sid| from outside its connections (gRPC
 * SendChunk). The caller checked |digest| = hash(data); it is hashed again
 * on the pool, written, and taken by the file's machine like a chunk from
 * the sender (which is then acknowledged for it and never sends it).
 * Returns 0 once queued; SFT_ERR_NOT_FOUND (no such session or file),
 * SFT_ERR_STATE (the file is not being received), SFT_ERR_RANGE (index),
 * SFT_ERR_INVAL (length is not the chunk's), SFT_ERR_EXISTS (held and
 * verified already: never overwritten), SFT_ERR_NOMEM. */
int recv_accept_chunk(struct receiver *r, const uint8_t *sid, uint64_t file_id,
                      uint64_t index, const uint8_t *data, size_t len,
                      const uint8_t *digest);

#endif
