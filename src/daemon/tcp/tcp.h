/*
 * sft TCP+TLS transport: the sft/1 protocol over TLS 1.3 on TCP (GnuTLS),
 * for networks where UDP is blocked. Same API shape as daemon/quic/quic.h,
 * prefixed sftt_: contexts, connections, one bidirectional control stream
 * and one unidirectional stream per chunk, multiplexed over the single TLS
 * byte stream by a small framing layer (below; docs/internals/tcp.md).
 *
 * Types shared with the QUIC module (deliberate, so the engine keeps ONE
 * callback set and one config): sftq_config, sftq_callbacks, sftq_iov,
 * sftq_stats, SFTQ_WRITE_*, SFTQ_FP_LEN, SFTQ_ALPN. Callbacks receive an
 * `sftq_conn *` that is really an sftt_conn: convert it with sftt_conn_of()
 * and never pass it to an sftq_* function. A caller that runs both
 * transports tells them apart by cfg.user_data (one value per context).
 *
 * Config fields used: cert_path, key_path, cc (-> TCP_CONGESTION, best
 * effort), idle_timeout_ms, keepalive_ms, handshake_timeout_ms,
 * initial_max_data, initial_max_stream_data, max_streams_uni,
 * max_streams_bidi, max_conns, sockbuf, copy_limit, manual_rx_credit, alpn,
 * cb, user_data. Ignored: max_window, max_stream_window (windows are fixed at
 * the initial values), retry, no_gso, no_gro.
 *
 * Identity: the same certificate/key files and the same fingerprint
 * (BLAKE3 over the DER SubjectPublicKeyInfo) as QUIC; verify_peer runs during
 * the handshake on both sides; the server requires a client certificate.
 *
 * Semantics that differ from QUIC (documented in docs/internals/tcp.md):
 *  - stream_acked fires when the FIN-carrying frame of the stream has been
 *    encrypted and written into the kernel socket buffer (TCP then delivers
 *    it unless the connection dies, which is reported by `closed`). The
 *    caller's buffers are in fact no longer referenced once unsent == 0.
 *  - sftt_stream_cancel resets both directions (one STREAM_RESET frame).
 *  - EOF without a CLOSE frame: closed(SFT_ERR_CLOSED, 0); a socket error:
 *    closed(SFT_ERR_IO).
 *
 * Threading and re-entrancy: as quic.h. Every function must be called on
 * the loop's thread; from a callback any function except sftt_ctx_free may
 * be called; writes and closes are performed when the callback returns.
 */
#ifndef SFTD_TCP_H
#define SFTD_TCP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "daemon/quic/quic.h" /* shared types only */
#include "sft/err.h"

typedef struct sftt_ctx sftt_ctx;
typedef struct sftt_conn sftt_conn;

/* The pointer the callbacks receive is an sftt_conn. */
static inline sftt_conn *sftt_conn_of(sftq_conn *c) {
  return (sftt_conn *)(void *)c;
}

/* ---- context ------------------------------------------------------------- */

/* Creates a context on |loop|: loads certificate and key (SFT_ERR_AUTH if
 * they do not match, SFT_ERR_IO if unreadable, SFT_ERR_MALFORMED), copies
 * the config (strings too). SFT_ERR_INVAL on NULL arguments. */
int sftt_ctx_new(sftt_ctx **out, uv_loop_t *loop, const sftq_config *cfg);

/* Closes every connection (CLOSE frame written once if possible, closed
 * callbacks with SFT_ERR_CANCELLED), every listener, and frees the context
 * when libuv has closed the handles: run the loop afterwards until it
 * returns. Safe with NULL. Never call from a callback. */
void sftt_ctx_free(sftt_ctx *ctx);

/* Listens on numeric |addr|:|port| (0 = ephemeral; bound port in
 * |*bound_port| if non-NULL). Errors: SFT_ERR_INVAL (bad address),
 * SFT_ERR_IO (socket/bind/listen), SFT_ERR_NOMEM, SFT_ERR_STATE. */
int sftt_listen(sftt_ctx *ctx, const char *addr, uint16_t port,
                uint16_t *bound_port);

/* Starts a non-blocking TCP connect + TLS handshake to numeric
 * |host|:|port|. |*out| valid until the closed callback (which may report a
 * refused connection as SFT_ERR_IO). Errors: SFT_ERR_INVAL, SFT_ERR_IO,
 * SFT_ERR_NOMEM, SFT_ERR_STATE (context closing). */
int sftt_connect(sftt_ctx *ctx, const char *host, uint16_t port,
                 void *conn_user, sftt_conn **out);

/* sftt_connect from a chosen source: the socket binds numeric |local|
 * (ephemeral port) before the connect. |local| is an IPv4 or IPv6 literal,
 * no port; IPv6 may be "[bracketed]" and carry a "%zone" (interface name
 * or index: a link-local source). |local| NULL or "" is sftt_connect (the
 * kernel picks the source). Errors: SFT_ERR_INVAL (NULL ctx/out, |host| or
 * |local| not a numeric address, unknown zone, |local| and |host| of
 * different families), SFT_ERR_IO (socket, bind failed: e.g.
 * EADDRNOTAVAIL for an address not on this host, or connect failed at
 * once), SFT_ERR_NOMEM, SFT_ERR_STATE. No closed callback follows an
 * error. */
int sftt_connect_via(sftt_ctx *ctx, const char *local, const char *host,
                     uint16_t port, void *conn_user, sftt_conn **out);

/* ---- connections --------------------------------------------------------- */

void *sftt_conn_user(const sftt_conn *c);
void sftt_conn_set_user(sftt_conn *c, void *user);
int sftt_conn_is_server(const sftt_conn *c);
/* Peer fingerprint; SFT_ERR_STATE before verify_peer ran. */
int sftt_conn_peer_fp(const sftt_conn *c, uint8_t fp[SFTQ_FP_LEN]);
int sftt_conn_peer_addr(const sftt_conn *c, struct sockaddr_storage *sa,
                        socklen_t *salen);
/* Application close with |app_error| (CLOSE frame). Idempotent. closed
 * (SFT_OK) follows once the CLOSE frame is queued. */
void sftt_conn_close(sftt_conn *c, uint64_t app_error);
/* RTT/cwnd from TCP_INFO (srtt, rttvar, latest = srtt, min_rtt = smallest
 * srtt sampled by this call, cwnd = snd_cwnd*mss, bytes_in_flight =
 * unacked*mss, pkts_lost = total_retrans); byte counters are TLS records on
 * the socket (bytes_*) and stream payload (stream_bytes_*); pkts_* count
 * send/recv system calls. */
int sftt_conn_stats(sftt_conn *c, sftq_stats *st);

/* ---- streams (contracts as the sftq_ counterparts) ------------------------
 */

/* After connected. SFT_ERR_AGAIN at the peer's stream limit (writable
 * follows when it is raised), SFT_ERR_STATE if not connected or closing. */
int sftt_stream_open_bidi(sftt_conn *c, int64_t *sid);
int sftt_stream_open_uni(sftt_conn *c, int64_t *sid);
/* Queues n <= 16 buffers (+ FIN). Zero-copy unless SFTQ_WRITE_COPY: the
 * buffers must stay valid until stream_acked / stream_close / closed.
 * SFT_ERR_AGAIN (copy limit), SFT_ERR_NOT_FOUND, SFT_ERR_STATE (FIN queued,
 * receive-only stream, closing), SFT_ERR_FULL (> 4096 queued buffers),
 * SFT_ERR_INVAL, SFT_ERR_NOMEM. */
int sftt_stream_write(sftt_conn *c, int64_t sid, const sftq_iov *iov, size_t n,
                      unsigned flags);
uint64_t sftt_stream_unsent(sftt_conn *c, int64_t sid);
uint64_t sftt_conn_unsent(const sftt_conn *c);
/* 0 (first) .. 7; default 1 bidi, 4 uni; FIFO within one urgency, decided
 * again for every frame (<= 16 KiB), so a control-stream write waits for at
 * most one chunk frame. SFT_ERR_RANGE, SFT_ERR_NOT_FOUND. */
int sftt_stream_set_urgency(sftt_conn *c, int64_t sid, unsigned urgency);
int sftt_stream_set_user(sftt_conn *c, int64_t sid, void *user);
void *sftt_stream_user(sftt_conn *c, int64_t sid);
/* Resets both directions (STREAM_RESET with |app_error|), drops queued data;
 * stream_close(app_error) follows from the loop. */
int sftt_stream_cancel(sftt_conn *c, int64_t sid, uint64_t app_error);
/* With cfg.manual_rx_credit: |n| more bytes of |sid| consumed; returns the
 * credit (the connection's part even if the stream is already closed). */
int sftt_stream_consume(sftt_conn *c, int64_t sid, size_t n);

/* ---- framing (internal; exposed for tests and the fuzz target) ------------
 *
 * Inside TLS, the byte stream is a sequence of frames:
 *   type u8, then per type (varints are QUIC varints, minimal encoding):
 *   0x01 SETTINGS     max_data, max_stream_data, max_streams_bidi,
 *                     max_streams_uni                 (first frame, once)
 *   0x02 STREAM_OPEN  sid, kind u8 (0 bidi, 1 uni; must match sid bit 1)
 *   0x03 STREAM_DATA  sid, flags u8 (0x1 FIN), len (<= 16384), payload
 *   0x04 STREAM_RESET sid, app_error
 *   0x05 CREDIT       target (0 = connection, sid + 1), limit (absolute)
 *   0x06 MAX_STREAMS  kind u8, count (cumulative, <= 2^60)
 *   0x07 PING         -
 *   0x08 PONG         -
 *   0x09 CLOSE        reason u8 (0 application, 1 protocol error,
 *                     2 internal error, 3 idle timeout), app_error
 */
#define SFTT_MAX_PAYLOAD 16384u
#define SFTT_MAX_HDR 40u /* longest encoded header (SETTINGS: 33) */
#define SFTT_MAX_STREAMS_COUNT ((uint64_t)1 << 60)

enum sftt_ftype {
  SFTT_F_SETTINGS = 0x01,
  SFTT_F_OPEN = 0x02,
  SFTT_F_DATA = 0x03,
  SFTT_F_RESET = 0x04,
  SFTT_F_CREDIT = 0x05,
  SFTT_F_MAX_STREAMS = 0x06,
  SFTT_F_PING = 0x07,
  SFTT_F_PONG = 0x08,
  SFTT_F_CLOSE = 0x09,
};

#define SFTT_DATA_FIN 0x1

typedef struct sftt_frame {
  uint8_t type;
  uint8_t flags;       /* DATA: SFTT_DATA_FIN; OPEN / MAX_STREAMS: kind; CLOSE:
                          reason */
  uint64_t sid;        /* OPEN, DATA, RESET; CREDIT: target */
  uint64_t v[4];       /* SETTINGS: 4 values; RESET/CLOSE: v[0] app_error;
                          CREDIT: v[0] limit; MAX_STREAMS: v[0] count */
  const uint8_t *data; /* DATA payload (points into the input) */
  size_t len;
} sftt_frame;

/* Decodes one frame from |buf|. Returns the bytes consumed (> 0), 0 if the
 * buffer holds only a prefix of a valid frame (read more), or
 * SFT_ERR_MALFORMED (unknown type, bad flags or kind, non-minimal varint)
 * / SFT_ERR_TOO_LARGE (payload > SFTT_MAX_PAYLOAD, count too big). Never
 * reads past |len|. A complete frame is at most SFTT_MAX_HDR +
 * SFTT_MAX_PAYLOAD bytes. Pure. */
int sftt_frame_decode(const uint8_t *buf, size_t len, sftt_frame *f);

/* Encodes the header of |f| (for DATA: without the payload, f->len is the
 * payload length) into |out| (at least SFTT_MAX_HDR bytes). Returns the
 * length, or SFT_ERR_RANGE for an out-of-range value. */
int sftt_frame_encode(const sftt_frame *f, uint8_t *out);

#endif /* SFTD_TCP_H */
