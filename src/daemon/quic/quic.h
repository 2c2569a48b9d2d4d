/*
 * sft QUIC transport: the only module that knows ngtcp2 (0.12.1) and GnuTLS.
 *
 * One sftq_ctx is bound to one libuv loop (single-threaded: every function
 * below must be called on the loop's thread). It holds the node identity
 * (certificate + key), any number of listening UDP sockets and any number of
 * connections (server side routed by connection ID, client side one socket
 * each). TLS 1.3 only, ALPN "sft/1", mutual authentication with self-signed
 * certificates: the identity of a peer is its fingerprint, BLAKE3 over the
 * DER SubjectPublicKeyInfo of its certificate, checked by the application's
 * verify_peer callback during the handshake. See docs/internals/quic.md.
 *
 * Errors are negative SFT_ERR_* codes (sft/err.h). Nothing is printed; an
 * optional log callback receives debug lines.
 *
 * Re-entrancy: callbacks run from inside the module. From a callback the
 * application may call any function of this header except sftq_ctx_free.
 * Sends and closes requested from callbacks are performed when the callback
 * returns (writes are batched once per loop iteration).
 */
#ifndef SFTD_QUIC_H
#define SFTD_QUIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "sft/err.h"

#define SFTQ_FP_LEN 32      /* identity fingerprint: BLAKE3-256 of the SPKI */
#define SFTQ_ALPN "sft/1"   /* mandatory ALPN */

typedef struct sftq_ctx sftq_ctx;
typedef struct sftq_conn sftq_conn;

/* The TCP+TLS transport (src/daemon/tcp) shares these types; every
 * connection object of either module starts with a 32-bit kind tag so the
 * engine can tell them apart behind a sftq_conn pointer. */
#define SFTQ_KIND_QUIC 0x51554943u /* "QUIC" */
#define SFTQ_KIND_TCP 0x54435020u  /* "TCP " */
static inline uint32_t sftq_conn_kind(const sftq_conn *c) {
  return *(const uint32_t *)(const void *)c;
}

/* ---- identity (tls.c) ---------------------------------------------------- */

enum sftq_key_type {
  SFTQ_KEY_ED25519 = 0, /* default */
  SFTQ_KEY_ECDSA_P256 = 1,
};

/* Generates a new key pair and a self-signed certificate (CN "sft", serial
 * random, validity from now to 9999-12-31, the RFC 5280 "no expiry" value)
 * and writes both as PEM, each file mode 0600, atomically (temp file in the
 * same directory + fsync + rename + fsync of the directory). Existing files
 * are replaced. Errors: SFT_ERR_INVAL (NULL path), SFT_ERR_IO (file system),
 * SFT_ERR_UNSUPPORTED (GnuTLS cannot generate), SFT_ERR_NOMEM. */
int sftq_identity_generate(const char *key_path, const char *cert_path);
int sftq_identity_generate_type(const char *key_path, const char *cert_path,
                                enum sftq_key_type type);

/* Fingerprint of the certificate in the PEM file |cert_path|: BLAKE3 over the
 * DER SubjectPublicKeyInfo. Errors: SFT_ERR_IO (cannot read),
 * SFT_ERR_MALFORMED (not a certificate). */
int sftq_identity_fingerprint(const char *cert_path, uint8_t fp[SFTQ_FP_LEN]);

/* The same fingerprint for a DER certificate as presented in a handshake
 * (the TCP+TLS transport uses it too, so both give one identity).
 * SFT_ERR_MALFORMED, SFT_ERR_TOO_LARGE, SFT_ERR_NOMEM. */
int sftq_identity_fp_of_der(const uint8_t *der, size_t len,
                            uint8_t fp[SFTQ_FP_LEN]);

/* 0 if the certificate in |cert_path| carries the public half of the key
 * in |key_path|; SFT_ERR_AUTH if not; SFT_ERR_IO, SFT_ERR_MALFORMED. */
int sftq_identity_check_pair(const char *cert_path, const char *key_path);

/* ---- configuration ------------------------------------------------------- */

enum sftq_cc {
  SFTQ_CC_BBR2 = 0, /* default */
  SFTQ_CC_BBR = 1,  /* BBR v1 */
  SFTQ_CC_CUBIC = 2,
  SFTQ_CC_RENO = 3,
};

/* "bbr2", "bbr", "cubic", "reno" -> enum. SFT_ERR_INVAL if unknown. */
int sftq_cc_parse(const char *name, enum sftq_cc *out);
const char *sftq_cc_name(enum sftq_cc cc);

typedef struct sftq_callbacks {
  /* Called during the handshake with the peer's fingerprint (both sides).
   * Return 0 to accept; anything else aborts the handshake with a TLS alert
   * (the connection then closes with SFT_ERR_AUTH on both sides). NULL
   * accepts every peer that proves possession of its key. */
  int (*verify_peer)(sftq_conn *c, const uint8_t fp[SFTQ_FP_LEN], void *ud);
  /* Handshake complete and confirmed: both sides authenticated. Streams may
   * be opened from now on. */
  void (*connected)(sftq_conn *c, void *ud);
  /* Client only, optional: our side of the handshake is complete (the
   * server is authenticated), a round trip before `connected`. Streams may
   * be opened and written from now on; the server reads them only once it
   * has accepted our certificate (if it refuses, the connection closes
   * with SFT_ERR_AUTH and `connected` never fires). */
  void (*early)(sftq_conn *c, void *ud);
  /* The peer opened stream |sid| (first frame received). */
  void (*stream_open)(sftq_conn *c, int64_t sid, void *ud);
  /* In-order data of stream |sid|; |data| is valid only during the call.
   * Flow-control credit is returned when the call returns (or by
   * sftq_stream_consume if cfg.manual_rx_credit). |fin| marks the end. */
  void (*stream_data)(sftq_conn *c, int64_t sid, const uint8_t *data,
                      size_t len, int fin, void *ud);
  /* Stream fully closed (both directions done or reset). |app_error| is the
   * peer's or our reset code, 0 for a clean close. After this call every
   * buffer written to the stream is released back to the caller. */
  void (*stream_close)(sftq_conn *c, int64_t sid, uint64_t app_error,
                       void *ud);
  /* The peer acknowledged every byte and the FIN written on |sid|: the
   * caller's buffers for this stream may be freed or reused. */
  void (*stream_acked)(sftq_conn *c, int64_t sid, void *ud);
  /* A call that returned SFT_ERR_AGAIN on this connection may now succeed
   * (stream credit arrived, queue space freed). Edge-triggered, once per
   * SFT_ERR_AGAIN. */
  void (*writable)(sftq_conn *c, void *ud);
  /* The connection is gone for the application (exactly once per connection
   * that was returned by sftq_connect or that reached the server's accept
   * stage). |reason|: SFT_OK (we closed it), SFT_ERR_CLOSED (peer closed;
   * |app_error| is its code), SFT_ERR_AUTH (verify_peer or TLS
   * authentication failed, either side), SFT_ERR_VERSION (ALPN/QUIC version
   * mismatch), SFT_ERR_TIMEOUT (idle or handshake timeout), SFT_ERR_CANCELLED
   * (context freed), SFT_ERR_PEER (protocol violation), SFT_ERR_IO.
   * The conn pointer must not be used after this callback returns. */
  void (*closed)(sftq_conn *c, int reason, uint64_t app_error, void *ud);
  /* Optional debug log (one line, no newline). */
  void (*log)(const char *line, void *ud);
} sftq_callbacks;

typedef struct sftq_config {
  const char *cert_path; /* PEM certificate (required) */
  const char *key_path;  /* PEM private key (required) */
  enum sftq_cc cc;       /* default BBR2 */
  uint32_t idle_timeout_ms;  /* 0 -> 30000 */
  uint32_t keepalive_ms;     /* 0 -> idle_timeout/3; UINT32_MAX -> none */
  uint32_t handshake_timeout_ms; /* 0 -> 10000 */
  uint64_t max_window;        /* conn flow-control ceiling, 0 -> 64 MiB */
  uint64_t max_stream_window; /* per-stream ceiling, 0 -> 64 MiB */
  uint64_t initial_max_data;  /* 0 -> 16 MiB */
  uint64_t initial_max_stream_data; /* 0 -> 2 MiB */
  uint32_t max_streams_uni;   /* peer may open this many at once; 0 -> 1024 */
  uint32_t max_streams_bidi;  /* 0 -> 16 */
  uint32_t max_conns;         /* server connections per ctx; 0 -> 1024 */
  int retry;        /* address validation by Retry: -1/0 default = under
                       load (below) unless the listen address is loopback
                       (then off); 1 always; 2 off; 3 under load whatever
                       the address (tests) */
  uint32_t retry_load; /* "under load": an Initial without a token gets a
                          Retry while this many server handshakes are in
                          progress; 0 -> 16 */
  int no_gso;       /* 1: never use UDP_SEGMENT */
  int no_gro;       /* 1: never use UDP_GRO */
  uint32_t sockbuf; /* SO_RCVBUF/SO_SNDBUF wish, 0 -> 8 MiB */
  uint32_t copy_limit; /* bytes of SFTQ_WRITE_COPY data held per connection
                          until acked, 0 -> 4 MiB */
  int manual_rx_credit; /* 1: credit given back by sftq_stream_consume */
  int pfec; /* packet FEC under QUIC (lib/pfec): 0 auto (on at >= 14 %
               loss, off below 8 %), 1 whenever the peer speaks it, -1
               never sent (received parity is always used) */
  const char *alpn;     /* NULL -> SFTQ_ALPN (other values: tests only) */
  sftq_callbacks cb;
  void *user_data;      /* passed to every callback */
} sftq_config;

/* ---- context ------------------------------------------------------------- */

/* Creates a context on |loop|. Loads the certificate and key (they must
 * match: SFT_ERR_AUTH otherwise; SFT_ERR_IO if unreadable). The config is
 * copied (strings too). */
int sftq_ctx_new(sftq_ctx **out, uv_loop_t *loop, const sftq_config *cfg);

/* Closes every connection (CONNECTION_CLOSE sent once, no waiting, closed
 * callbacks with SFT_ERR_CANCELLED), stops every socket and frees the context
 * once libuv has closed its handles: run the loop afterwards until it
 * returns. Safe with NULL. Never call from a callback. */
void sftq_ctx_free(sftq_ctx *ctx);

/* Binds a UDP socket to numeric |addr| ("0.0.0.0", "::", "127.0.0.1", ...)
 * and |port| (0 = ephemeral) and accepts connections on it. The bound port
 * is stored in |*bound_port| if non-NULL. Errors: SFT_ERR_INVAL (bad
 * address), SFT_ERR_IO (socket/bind), SFT_ERR_NOMEM. */
int sftq_listen(sftq_ctx *ctx, const char *addr, uint16_t port,
                uint16_t *bound_port);

/* Starts a client connection to numeric |host|:|port| from a new ephemeral
 * UDP socket. |conn_user| is stored (sftq_conn_user). On success |*out| is
 * valid until the closed callback. Errors: SFT_ERR_INVAL, SFT_ERR_IO,
 * SFT_ERR_NOMEM, SFT_ERR_STATE (context closing). */
int sftq_connect(sftq_ctx *ctx, const char *host, uint16_t port,
                 void *conn_user, sftq_conn **out);

/* sftq_connect from a chosen source: the UDP socket binds numeric |local|
 * (port 0: ephemeral) before connecting, so every datagram of the
 * connection leaves from that address and the ngtcp2 path's local address
 * is the bound one (getsockname). |local| is an IPv4 or IPv6 literal, no
 * port; IPv6 may be "[bracketed]" and carry a "%zone" (interface name or
 * index: a link-local source). |local| NULL or "" is sftq_connect (wildcard
 * bind, the kernel picks the source). Errors: SFT_ERR_INVAL (NULL ctx/out,
 * |host| or |local| not a numeric address, unknown zone, |local| and |host|
 * of different families), SFT_ERR_IO (socket, or bind failed: e.g.
 * EADDRNOTAVAIL for an address not on this host), SFT_ERR_NOMEM,
 * SFT_ERR_STATE (context closing). No closed callback follows an error. */
int sftq_connect_via(sftq_ctx *ctx, const char *local, const char *host,
                     uint16_t port, void *conn_user, sftq_conn **out);

/* ---- connections --------------------------------------------------------- */

void *sftq_conn_user(const sftq_conn *c);
void sftq_conn_set_user(sftq_conn *c, void *user);
int sftq_conn_is_server(const sftq_conn *c);
/* Peer fingerprint; SFT_ERR_STATE before verify_peer ran. */
int sftq_conn_peer_fp(const sftq_conn *c, uint8_t fp[SFTQ_FP_LEN]);
/* Remote address of the current path. */
int sftq_conn_peer_addr(const sftq_conn *c, struct sockaddr_storage *sa,
                        socklen_t *salen);

/* Asks for an application close with |app_error| (sent in CONNECTION_CLOSE).
 * Idempotent. The closed callback (reason SFT_OK) follows when the close was
 * sent; the connection lingers internally for the closing period. */
void sftq_conn_close(sftq_conn *c, uint64_t app_error);

typedef struct sftq_stats {
  uint64_t srtt_ns, min_rtt_ns, rttvar_ns, latest_rtt_ns;
  uint64_t cwnd, bytes_in_flight;
  uint64_t delivery_rate; /* bytes/s, as estimated by the controller */
  double pacing_rate;     /* bytes/ns, 0 if not paced */
  uint64_t pkts_sent, pkts_recv;   /* UDP datagrams */
  uint64_t bytes_sent, bytes_recv; /* UDP payload bytes */
  uint64_t stream_bytes_sent;      /* first transmissions of stream data */
  uint64_t stream_bytes_recv;      /* delivered to stream_data */
  uint64_t pkts_lost;   /* packets carrying STREAM frames declared lost
                           (ngtcp2_conn_get_stream_loss_count summed; may
                           include spurious losses; other frames unseen) */
  uint64_t pto_count;
  uint64_t gso_batches; /* sendmsg calls that carried more than 1 packet */
  size_t max_udp_payload;
  uint32_t retries; /* Retry packets taken (client side) */
  /* packet FEC shim (lib/pfec, docs/internals/pfec.md) */
  bool fec_active;            /* this end wraps its packets now */
  double fec_loss;            /* raw loss it measured (fraction) */
  uint64_t fec_parity_sent;   /* PARITY datagrams sent */
  uint64_t fec_recovered;     /* packets rebuilt from received parity */
  uint64_t fec_blocks_failed; /* received blocks parity could not repair */
} sftq_stats;

int sftq_conn_stats(sftq_conn *c, sftq_stats *st);

#define SFTQ_SOCKBUF_MAX (64u << 20)
/* Grows the connection's socket buffers to twice its bandwidth-delay
 * product: max(send delivery rate, receive rate since the previous call at
 * |now| ns) x smoothed RTT, rounded up to 1 MiB, at most SFTQ_SOCKBUF_MAX;
 * never shrinks them, never below the context's sockbuf. Call it
 * periodically (the daemon: every progress tick). A server connection's
 * socket is the listening one, shared. *bufsize (may be NULL) gets the size
 * now asked for. Errors: SFT_ERR_STATE (no connection state). */
int sftq_conn_tune_buffers(sftq_conn *c, uint64_t now, uint64_t *bufsize);

/* ---- streams ------------------------------------------------------------- */

/* Opens a local stream (after connected). SFT_ERR_AGAIN when the peer's
 * stream limit is reached (writable follows when it is raised),
 * SFT_ERR_STATE if not connected or closing. */
int sftq_stream_open_bidi(sftq_conn *c, int64_t *sid);
int sftq_stream_open_uni(sftq_conn *c, int64_t *sid);

typedef struct sftq_iov {
  const void *base;
  size_t len;
} sftq_iov;

#define SFTQ_WRITE_FIN 0x1  /* these are the last bytes of the stream */
#define SFTQ_WRITE_COPY 0x2 /* copy the bytes (bounded by cfg.copy_limit) */

/* Queues |n| buffers (n <= 16) on stream |sid|, optionally with FIN. Without
 * SFTQ_WRITE_COPY the buffers are referenced, not copied: they must stay
 * valid and unchanged until stream_acked or stream_close for |sid| (or the
 * connection's closed callback). With SFTQ_WRITE_COPY the module copies and
 * frees the copy when acknowledged; SFT_ERR_AGAIN if the copy limit would be
 * exceeded. n == 0 with FIN ends the stream. Errors: SFT_ERR_NOT_FOUND
 * (unknown stream), SFT_ERR_STATE (FIN already queued, stream not writable,
 * connection closing), SFT_ERR_FULL (more than 4096 queued buffers on the
 * stream), SFT_ERR_NOMEM. */
int sftq_stream_write(sftq_conn *c, int64_t sid, const sftq_iov *iov,
                      size_t n, unsigned flags);

/* Bytes queued on |sid| and not yet sent for the first time. */
uint64_t sftq_stream_unsent(sftq_conn *c, int64_t sid);
/* Bytes queued on the connection, not yet sent for the first time. */
uint64_t sftq_conn_unsent(const sftq_conn *c);

/* Send priority 0 (first) .. 7; default 1 for bidi, 4 for uni streams.
 * Streams of equal urgency are served FIFO (a stream is written until it is
 * finished or blocked). */
int sftq_stream_set_urgency(sftq_conn *c, int64_t sid, unsigned urgency);

/* Per-stream application pointer. */
int sftq_stream_set_user(sftq_conn *c, int64_t sid, void *user);
void *sftq_stream_user(sftq_conn *c, int64_t sid);

/* Cancels a stream in both directions (RESET_STREAM + STOP_SENDING with
 * |app_error|); queued data is dropped; stream_close follows. */
int sftq_stream_cancel(sftq_conn *c, int64_t sid, uint64_t app_error);

/* With cfg.manual_rx_credit: the application consumed |n| more bytes of
 * stream |sid|; gives the credit back to the peer. */
int sftq_stream_consume(sftq_conn *c, int64_t sid, size_t n);

#endif /* SFTD_QUIC_H */
