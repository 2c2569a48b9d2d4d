/*
 * netsim UDP proxy (libuv, Linux): clients send datagrams to the listen
 * address; each distinct client address gets its own upstream socket
 * connected to the target, so replies map back to the client. Datagrams go
 * through the impairment model ("up" model client -> target, "down" model
 * target -> client; one model per direction shared by all clients, like one
 * bottleneck link) into a min-heap of pending datagrams ordered by delivery
 * time, drained by one uv_timer (and right after each receive batch).
 * Sockets are non-blocking, read with recvmmsg until EAGAIN, written with
 * sendmmsg; a send that would block is dropped and counted (drop_send).
 *
 * Also a tiny echo/sink server used by the tests and `sft-netsim echo`.
 * Everything runs on the caller's uv loop; nothing is thread-safe.
 */
#ifndef NETSIM_PROXY_H
#define NETSIM_PROXY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "netsim/model.h"
#include "netsim/spec.h"

/* "1.2.3.4:5", "[::1]:5", "localhost:5" (numeric hosts; "localhost" maps to
 * 127.0.0.1). Returns 0 or SFT_ERR_INVAL / SFT_ERR_RANGE (port > 65535). */
int netsim_addr_parse(const char *s, struct sockaddr_storage *ss,
                      socklen_t *len);
/* "ADDR:PORT" ("[v6]:PORT") into |buf|. 0 or SFT_ERR_NOSPACE/INVAL. */
int netsim_addr_format(const struct sockaddr *sa, char *buf, size_t cap);

struct netsim_proxy_cfg {
  struct sockaddr_storage listen;
  socklen_t listen_len;
  struct sockaddr_storage target;
  socklen_t target_len;
  struct netsim_spec spec;
  uint32_t max_clients;       /* client table size (default 64) */
  uint64_t idle_ns;           /* idle client entries expire (default 60 s) */
  uint32_t max_pending;       /* pending datagrams (default 65536) */
  uint64_t max_pending_bytes; /* pending payload bytes (default 64 MiB) */
  int sockbuf;                /* SO_RCVBUF/SO_SNDBUF wish (default 8 MiB) */
};

/* Defaults above, clean spec, addresses zeroed (caller sets them). */
void netsim_proxy_cfg_default(struct netsim_proxy_cfg *c);

struct netsim_proxy_stats {
  struct netsim_counters up, down; /* model counters per direction */
  uint64_t drop_limit;      /* delivered by the model, pending queue full */
  uint64_t drop_send;       /* sendmmsg refused (EAGAIN, ICMP error...) */
  uint64_t drop_noclient;   /* client table full, nothing idle to evict */
  uint64_t sent_up, sent_down; /* datagrams actually written */
  uint64_t clients_created, clients_expired;
  uint32_t clients_active;
  uint64_t pending;         /* datagrams waiting in the heap now */
};

struct netsim_proxy;

/* Binds the listen socket (port 0 = ephemeral) and starts serving on
 * |loop|. The config is copied. Returns 0 and *pp, or SFT_ERR_INVAL (bad
 * addresses), SFT_ERR_IO (socket/bind failed), SFT_ERR_NOMEM; *pp NULL on
 * failure. Outage windows count from this call. */
int netsim_proxy_new(struct netsim_proxy **pp, uv_loop_t *loop,
                     const struct netsim_proxy_cfg *cfg);

/* The bound listen address (real port when 0 was asked). */
void netsim_proxy_local_addr(const struct netsim_proxy *p,
                             struct sockaddr_storage *ss, socklen_t *len);

/* Replaces both directions' impairments (seed and PRNG state, queue state
 * and counters kept). */
void netsim_proxy_set_spec(struct netsim_proxy *p, const struct netsim_spec *s);

/* Manual outage of both directions (drops counted as drop_outage). */
void netsim_proxy_set_blackhole(struct netsim_proxy *p, bool on);
bool netsim_proxy_blackhole(const struct netsim_proxy *p);

void netsim_proxy_get_stats(const struct netsim_proxy *p,
                            struct netsim_proxy_stats *st);

/* One-line JSON object of |st| into |buf|. 0 or SFT_ERR_NOSPACE. */
int netsim_proxy_stats_json(const struct netsim_proxy_stats *st, char *buf,
                            size_t cap);

/* Stops, closes every handle and socket, drops pending datagrams; |p| is
 * freed once the loop has run the close callbacks, then |cb|(arg) runs (cb
 * may be NULL). |p| must not be used after this call. */
void netsim_proxy_close(struct netsim_proxy *p, void (*cb)(void *), void *arg);

/* ---- echo / sink server ---- */

struct netsim_echo;

/* Binds |addr| on |loop|; every datagram received is sent back to its
 * sender unless |sink|. 0 or SFT_ERR_IO / SFT_ERR_NOMEM. */
int netsim_echo_new(struct netsim_echo **pe, uv_loop_t *loop,
                    const struct sockaddr *addr, socklen_t alen, bool sink);
void netsim_echo_local_addr(const struct netsim_echo *e,
                            struct sockaddr_storage *ss, socklen_t *len);
/* Datagrams and bytes received so far. */
void netsim_echo_counts(const struct netsim_echo *e, uint64_t *pkts,
                        uint64_t *bytes);
/* Like netsim_proxy_close. */
void netsim_echo_close(struct netsim_echo *e, void (*cb)(void *), void *arg);

#endif /* NETSIM_PROXY_H */
