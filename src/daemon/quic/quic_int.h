/* Internal declarations shared by quic.c, udp.c, tls.c and cidmap.c. Not
 * part of the module's API (include daemon/quic/quic.h instead). */
#ifndef SFTD_QUIC_INT_H
#define SFTD_QUIC_INT_H

#include <gnutls/gnutls.h>
#include <netinet/in.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <stdbool.h>

#include "daemon/quic/quic.h"

/* Every CID we issue: 8 random bytes (64 bits; QUIC's minimum for a
 * client's first DCID). Each 1-RTT packet carries the peer's CID, so 18
 * bytes (ngtcp2's examples) cost 10 bytes per 1444-byte packet, 0.7 % of
 * the link. The CID map's hash is seeded per context. */
#define SFTQ_CIDLEN 8
#define SFTQ_INITIAL_RTT_MS 100 /* RTT assumed before the first sample */
#define SFTQ_RETRY_LOAD 16 /* handshakes in progress before Retry (default) */
#define SFTQ_MAX_GSO_SEGS 64    /* kernel 6.1 limit */
#define SFTQ_GSO_MAX_BYTES 65000 /* one UDP_SEGMENT super-datagram */
#define SFTQ_RXBUF 65536        /* one GRO read */
#define SFTQ_TXBUF (SFTQ_MAX_GSO_SEGS * 1500)

/* ---- cidmap.c: CID -> connection ----------------------------------------- */

typedef struct sftq_cidmap_ent {
  uint8_t len;
  uint8_t cid[NGTCP2_MAX_CIDLEN];
  sftq_conn *conn;
  uint8_t used; /* 0 empty, 1 used, 2 tombstone */
} sftq_cidmap_ent;

typedef struct sftq_cidmap {
  sftq_cidmap_ent *tab;
  size_t cap, count, tombs;
  uint64_t seed;
} sftq_cidmap;

int sftq_cidmap_init(sftq_cidmap *m, uint64_t seed);
void sftq_cidmap_free(sftq_cidmap *m);
/* SFT_ERR_EXISTS if present (any conn), SFT_ERR_NOMEM. */
int sftq_cidmap_put(sftq_cidmap *m, const uint8_t *cid, size_t len,
                    sftq_conn *c);
sftq_conn *sftq_cidmap_get(const sftq_cidmap *m, const uint8_t *cid,
                           size_t len);
/* Removes |cid| if it maps to |c|. */
void sftq_cidmap_del(sftq_cidmap *m, const uint8_t *cid, size_t len,
                     const sftq_conn *c);

/* ---- udp.c: sockets ------------------------------------------------------ */

typedef struct sftq_addr {
  struct sockaddr_storage ss;
  socklen_t len;
} sftq_addr;

typedef struct sftq_ep sftq_ep;

typedef struct sftq_udp {
  int fd;
  int family;
  bool gso;      /* UDP_SEGMENT usable (cleared on EIO/EINVAL) */
  bool gro;      /* UDP_GRO enabled */
  bool wildcard; /* bound to 0.0.0.0/:: -> set the source with PKTINFO */
  sftq_addr local; /* getsockname() */
  uint32_t bufsize; /* SO_RCVBUF/SO_SNDBUF last asked for */
  bool refused;     /* a connected socket got ECONNREFUSED (ICMP port
                       unreachable) since the owner last looked */
} sftq_udp;

/* Asks for |want| bytes of receive and send buffer (SO_*BUFFORCE when
 * privileged, else capped by rmem_max/wmem_max); records it in bufsize. */
void sftq_udp_set_bufs(sftq_udp *u, uint32_t want);

/* Creates a non-blocking socket bound to |bind_addr| (ephemeral port if 0),
 * connected to |peer| if non-NULL, with big buffers, PKTINFO, GRO. */
int sftq_udp_open(sftq_udp *u, const struct sockaddr *bind_addr,
                  socklen_t bind_len, const struct sockaddr *peer,
                  socklen_t peer_len, uint32_t sockbuf, int no_gso,
                  int no_gro);
void sftq_udp_close(sftq_udp *u);

/* Sends |len| bytes as datagrams of |seg| bytes (the last may be shorter);
 * seg == len or !u->gso means one datagram per sendmsg. |local| is the
 * source to force (wildcard sockets) or NULL; |remote| NULL on a connected
 * socket. Returns 0, SFT_ERR_AGAIN (nothing sent), SFT_ERR_IO. On EIO/EINVAL
 * with GSO it falls back to one datagram per call and clears u->gso. Sets
 * *nsent_pkts to the datagrams actually passed to the kernel. */
int sftq_udp_send(sftq_udp *u, const sftq_addr *local, const sftq_addr *remote,
                  const uint8_t *buf, size_t len, size_t seg,
                  size_t *nsent_bytes, uint64_t *nsyscalls);

/* Receives one (possibly GRO-coalesced) read. Returns bytes (> 0) or 0 when
 * nothing is left, SFT_ERR_IO on error. |*seg| is the datagram size
 * (== return value without GRO); |local| filled from PKTINFO (port from the
 * socket), |remote| from the source address. */
/* Takes the socket's pending error (SO_ERROR, which clears it); notes a
 * refusal in u->refused. For a poll that reported POLLERR. */
void sftq_udp_take_error(sftq_udp *u);

int sftq_udp_recv(sftq_udp *u, uint8_t *buf, size_t cap, size_t *seg,
                  sftq_addr *local, sftq_addr *remote);

bool sftq_addr_is_loopback(const struct sockaddr *sa);

/* ---- tls.c ---------------------------------------------------------------- */

typedef struct sftq_tls {
  gnutls_certificate_credentials_t cred;
  char alpn[32];
} sftq_tls;

int sftq_tls_init(sftq_tls *t, const char *cert, const char *key,
                  const char *alpn);
void sftq_tls_free(sftq_tls *t);
/* New session for |c| (server or client), with ngtcp2 glue installed; the
 * session's ptr is |ref| (an ngtcp2_crypto_conn_ref whose user_data is the
 * sftq_conn). */
int sftq_tls_session(sftq_tls *t, gnutls_session_t *out, bool server,
                     ngtcp2_crypto_conn_ref *ref);

/* Called by the TLS verify hook (quic.c implements it): 0 accept. */
int sftq_conn_verify_hook(sftq_conn *c, const uint8_t fp[SFTQ_FP_LEN]);
sftq_conn *sftq_conn_of_ref(ngtcp2_crypto_conn_ref *ref);

#endif /* SFTD_QUIC_INT_H */
