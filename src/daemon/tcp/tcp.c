/* sft/1 over TLS 1.3 on TCP: non-blocking sockets under uv_poll, GnuTLS
 * driven through memory push/pull functions, stream multiplexing by the
 * frames of tcp.h, per-stream and per-connection credit, urgency-ordered
 * sending in frames of at most 16 KiB. See docs/internals/tcp.md. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/paths.h"
#include "daemon/tcp/tcp.h"
#include "sft/hash.h"
#include "sft/wire.h"

#define MAX_IOV 16
#define MAX_SEGS_PER_STREAM 4096
#define TX_HIGH (512u << 10) /* ciphertext queued before we stop framing */
#define PT_BATCH (64u << 10) /* plaintext framed per encryption batch */
#define RBUF_CAP (64u << 10) /* plaintext awaiting frame parsing */
#define RX_READ (256u << 10) /* one recv() */
#define RX_READS 8           /* recv() calls per readable event */
#define FLUSH_ROUNDS 8
#define CLOSE_LINGER_MS 1000 /* wait for the peer's EOF after our CLOSE */
#define NOTSENT_LOWAT (512u << 10)
#define MS 1000000ull

typedef struct sftt_tls {
  gnutls_certificate_credentials_t cred;
  char alpn[32];
} sftt_tls;

static int conn_verify_hook(sftt_conn *c, const uint8_t fp[SFTQ_FP_LEN]);

static const char PRIORITY[] =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
    "+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
    "+GROUP-SECP384R1";

/* Runs on both sides when the peer's Certificate has arrived, before the
 * handshake completes; non-zero aborts it with an alert. */
static int tls_verify(gnutls_session_t s) {
  sftt_conn *c = gnutls_session_get_ptr(s);
  unsigned n = 0;
  const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
  if (!certs || n == 0)
    return GNUTLS_E_NO_CERTIFICATE_FOUND;
  if (gnutls_certificate_type_get2(s, GNUTLS_CTYPE_PEERS) != GNUTLS_CRT_X509)
    return GNUTLS_E_CERTIFICATE_ERROR;
  uint8_t fp[SFTQ_FP_LEN];
  if (sftq_identity_fp_of_der(certs[0].data, certs[0].size, fp) != 0)
    return GNUTLS_E_CERTIFICATE_ERROR;
  return conn_verify_hook(c, fp) == 0 ? 0 : GNUTLS_E_CERTIFICATE_ERROR;
}

static int tls_init(sftt_tls *t, const char *cert, const char *key,
                    const char *alpn) {
  memset(t, 0, sizeof *t);
  if (!cert || !key)
    return SFT_ERR_INVAL;
  if (!alpn)
    alpn = SFTQ_ALPN;
  size_t al = strlen(alpn);
  if (al == 0 || al >= sizeof t->alpn)
    return SFT_ERR_INVAL;
  memcpy(t->alpn, alpn, al + 1);
  int rv = sftq_identity_check_pair(cert, key);
  if (rv)
    return rv;
  if (gnutls_certificate_allocate_credentials(&t->cred) < 0)
    return SFT_ERR_NOMEM;
  int r = gnutls_certificate_set_x509_key_file(t->cred, cert, key,
                                               GNUTLS_X509_FMT_PEM);
  if (r < 0) {
    gnutls_certificate_free_credentials(t->cred);
    t->cred = NULL;
    if (r == GNUTLS_E_FILE_ERROR)
      return SFT_ERR_IO;
    if (r == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
      return SFT_ERR_AUTH;
    return SFT_ERR_MALFORMED;
  }
  gnutls_certificate_set_verify_function(t->cred, tls_verify);
  return 0;
}

static void tls_free(sftt_tls *t) {
  if (t->cred)
    gnutls_certificate_free_credentials(t->cred);
  t->cred = NULL;
}

static int tls_session(sftt_tls *t, gnutls_session_t *out, bool server,
                       sftt_conn *c, gnutls_push_func push,
                       gnutls_pull_func pull,
                       gnutls_pull_timeout_func pull_timeout) {
  gnutls_session_t s;
  *out = NULL;
  unsigned flags = (server ? GNUTLS_SERVER : GNUTLS_CLIENT) | GNUTLS_NONBLOCK |
                   GNUTLS_NO_TICKETS | GNUTLS_NO_SIGNAL;
  if (gnutls_init(&s, flags) < 0)
    return SFT_ERR_NOMEM;
  if (gnutls_priority_set_direct(s, PRIORITY, NULL) < 0)
    goto fail;
  if (gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, t->cred) < 0)
    goto fail;
  if (server)
    gnutls_certificate_server_set_request(s, GNUTLS_CERT_REQUIRE);
  gnutls_datum_t alpn = {(unsigned char *)t->alpn, (unsigned)strlen(t->alpn)};
  if (gnutls_alpn_set_protocols(s, &alpn, 1, GNUTLS_ALPN_MANDATORY) < 0)
    goto fail;
  gnutls_handshake_set_timeout(s, 0); /* our own timer */
  gnutls_session_set_ptr(s, c);
  gnutls_transport_set_ptr(s, c);
  gnutls_transport_set_push_function(s, push);
  gnutls_transport_set_pull_function(s, pull);
  gnutls_transport_set_pull_timeout_function(s, pull_timeout);
  *out = s;
  return 0;
fail:
  gnutls_deinit(s);
  return SFT_ERR_UNSUPPORTED;
}

static bool tls_alpn_ok(gnutls_session_t s, const sftt_tls *t) {
  gnutls_datum_t p = {NULL, 0};
  if (gnutls_alpn_get_selected_protocol(s, &p) < 0)
    return false;
  size_t al = strlen(t->alpn);
  return p.size == al && memcmp(p.data, t->alpn, al) == 0;
}

/* ---- types ----------------------------------------------------------------
 */

typedef struct txseg {
  struct txseg *next;
  const uint8_t *base;
  size_t len;
  uint8_t *owned;
} txseg;

typedef struct tstream {
  int64_t sid;
  void *user;
  txseg *head, *tail; /* queued, not yet framed */
  size_t head_off;
  unsigned nseg;
  uint64_t queued, sent, tx_max;         /* send side */
  uint64_t rx_recv, rx_consumed, rx_max; /* receive side */
  uint8_t urgency;
  bool local, can_send, can_recv;
  bool fin_queued, fin_sent, fin_acked, fin_recv, blocked, in_q;
  struct tstream *qnext, *qprev;
} tstream;

typedef struct smap_ent {
  int64_t sid; /* -1 empty, -2 tombstone */
  tstream *st;
} smap_ent;

typedef struct smap {
  smap_ent *tab;
  size_t cap, count, tombs;
} smap;

typedef struct bytebuf {
  uint8_t *p;
  size_t off, len, cap; /* data is p[off, off + len) */
} bytebuf;

typedef struct ackmark {
  int64_t sid;
  uint64_t mark; /* enc_total after the FIN frame; UINT64_MAX: not yet */
} ackmark;

typedef struct pendclose {
  int64_t sid;
  uint64_t code;
} pendclose;

enum cstate { C_LIVE, C_CLOSING, C_DEAD };

struct sftt_conn {
  uint32_t kind; /* SFTQ_KIND_TCP: first member (see quic.h) */
  sftt_ctx *ctx;
  int fd;
  uv_poll_t poll;
  uv_timer_t timer;
  int poll_events;
  unsigned handles; /* uv handles not yet closed */
  gnutls_session_t tls;
  enum cstate st;
  bool server, connecting, hs_done, settings_rx, connected;
  bool fire_connected, fire_writable, want_writable;
  bool fp_known, auth_failed, reported, close_req, in_dirty, shut_wr;
  bool pong_pending, ping_pending, credit_pending, ms_pending[2];
  uint64_t close_app;
  uint8_t peer_fp[SFTQ_FP_LEN];
  void *user;
  struct sockaddr_storage remote;
  socklen_t remote_len;
  smap streams;
  tstream *qhead[8], *qtail[8];
  uint64_t unsent;
  size_t copied;
  /* flow control; index [0] bidi, [1] uni */
  uint64_t tx_max_data, tx_data;
  uint64_t rx_max_data, rx_data, rx_consumed;
  uint64_t peer_stream_window;
  uint64_t peer_max_streams[2], local_opened[2];
  uint64_t my_max_streams[2], peer_opened[2];
  /* buffers */
  bytebuf cout;       /* ciphertext for the socket */
  bytebuf ctl;        /* framed control plaintext, sent before any data */
  const uint8_t *cin; /* ciphertext being fed to GnuTLS (during a read) */
  size_t cin_len;
  uint8_t *rbuf; /* plaintext awaiting parsing */
  size_t rbuf_len;
  uint64_t wr_total, enc_total;
  ackmark *acks;
  size_t acks_head, acks_len, acks_cap;
  pendclose *pcl;
  size_t npcl, pcl_cap;
  uint64_t created_ns, last_rx_ns, last_ping_ns, close_deadline_ns;
  uint64_t min_rtt_ns;
  sftq_stats s;
  sftt_conn *next, *prev, *dnext;
};

typedef struct sftt_lst {
  sftt_ctx *ctx;
  int fd;
  uv_poll_t poll;
  struct sftt_lst *next;
} sftt_lst;

struct sftt_ctx {
  uv_loop_t *loop;
  sftq_config cfg;
  char *cert, *key, *alpn;
  sftt_tls tls;
  uv_prepare_t prep;
  uv_check_t check;
  sftt_lst *lsts;
  sftt_conn *conns, *dirty;
  size_t nserver;
  unsigned nhandles;
  bool freeing;
  uint8_t rxbuf[RX_READ];
  uint8_t pt[PT_BATCH];
};

static void conn_mark(sftt_conn *c);

static uint64_t now_ns(void) {
  return uv_hrtime();
}

static void logf_(sftt_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logf_(sftt_ctx *ctx, const char *fmt, ...) {
  if (!ctx->cfg.cb.log)
    return;
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  ctx->cfg.cb.log(line, ctx->cfg.user_data);
}

static sftq_conn *Q(sftt_conn *c) {
  return (sftq_conn *)(void *)c;
}

/* ---- byte buffers -----------------------------------------------------------
 */

static int buf_append(bytebuf *b, const void *d, size_t n) {
  if (b->off + b->len + n > b->cap) {
    if (b->off) {
      memmove(b->p, b->p + b->off, b->len);
      b->off = 0;
    }
    if (b->len + n > b->cap) {
      size_t nc = b->cap ? b->cap : 4096;
      while (nc < b->len + n)
        nc *= 2;
      uint8_t *np = realloc(b->p, nc);
      if (!np)
        return SFT_ERR_NOMEM;
      b->p = np;
      b->cap = nc;
    }
  }
  memcpy(b->p + b->off + b->len, d, n);
  b->len += n;
  return 0;
}

static void buf_consume(bytebuf *b, size_t n) {
  b->off += n;
  b->len -= n;
  if (!b->len)
    b->off = 0;
}

static void buf_free(bytebuf *b) {
  free(b->p);
  memset(b, 0, sizeof *b);
}

/* ---- stream map
 * -------------------------------------------------------------- */

static size_t smap_slot(int64_t sid, size_t cap) {
  uint64_t h = (uint64_t)sid * 0x9e3779b97f4a7c15ull;
  return (size_t)(h >> 17) & (cap - 1);
}

static int smap_init(smap *m) {
  m->cap = 16;
  m->count = m->tombs = 0;
  m->tab = malloc(m->cap * sizeof *m->tab);
  if (!m->tab)
    return SFT_ERR_NOMEM;
  for (size_t i = 0; i < m->cap; i++)
    m->tab[i].sid = -1;
  return 0;
}

static tstream *smap_get(const smap *m, int64_t sid) {
  if (sid < 0)
    return NULL;
  size_t i = smap_slot(sid, m->cap);
  for (size_t n = 0; n < m->cap; n++, i = (i + 1) & (m->cap - 1)) {
    if (m->tab[i].sid == -1)
      return NULL;
    if (m->tab[i].sid == sid)
      return m->tab[i].st;
  }
  return NULL;
}

static int smap_put(smap *m, int64_t sid, tstream *st) {
  if ((m->count + m->tombs + 1) * 2 > m->cap) {
    size_t ncap = m->cap;
    while ((m->count + 1) * 4 > ncap)
      ncap *= 2;
    smap_ent *nt = malloc(ncap * sizeof *nt);
    if (!nt)
      return SFT_ERR_NOMEM;
    for (size_t i = 0; i < ncap; i++)
      nt[i].sid = -1;
    for (size_t i = 0; i < m->cap; i++) {
      if (m->tab[i].sid < 0)
        continue;
      size_t j = smap_slot(m->tab[i].sid, ncap);
      while (nt[j].sid != -1)
        j = (j + 1) & (ncap - 1);
      nt[j] = m->tab[i];
    }
    free(m->tab);
    m->tab = nt;
    m->cap = ncap;
    m->tombs = 0;
  }
  size_t i = smap_slot(sid, m->cap);
  while (m->tab[i].sid >= 0)
    i = (i + 1) & (m->cap - 1);
  if (m->tab[i].sid == -2)
    m->tombs--;
  m->tab[i].sid = sid;
  m->tab[i].st = st;
  m->count++;
  return 0;
}

static void smap_del(smap *m, int64_t sid) {
  size_t i = smap_slot(sid, m->cap);
  for (size_t n = 0; n < m->cap; n++, i = (i + 1) & (m->cap - 1)) {
    if (m->tab[i].sid == -1)
      return;
    if (m->tab[i].sid == sid) {
      m->tab[i].sid = -2;
      m->tab[i].st = NULL;
      m->count--;
      m->tombs++;
      return;
    }
  }
}

/* ---- stream ids -------------------------------------------------------------
 */

static int sid_kind(uint64_t sid) {
  return (int)((sid >> 1) & 1);
}
static bool sid_local(const sftt_conn *c, uint64_t sid) {
  return (sid & 1) == (c->server ? 1u : 0u);
}
/* A stream that existed and is gone (frames for it are stale). */
static bool sid_old(const sftt_conn *c, uint64_t sid) {
  uint64_t idx = sid >> 2;
  int k = sid_kind(sid);
  return sid_local(c, sid) ? idx < c->local_opened[k] : idx < c->peer_opened[k];
}

/* ---- streams ----------------------------------------------------------------
 */

static bool stream_has_work(const tstream *st) {
  return st->can_send && !st->blocked &&
         (st->sent < st->queued || (st->fin_queued && !st->fin_sent));
}

static void q_remove(sftt_conn *c, tstream *st) {
  if (!st->in_q)
    return;
  unsigned u = st->urgency;
  if (st->qprev)
    st->qprev->qnext = st->qnext;
  else
    c->qhead[u] = st->qnext;
  if (st->qnext)
    st->qnext->qprev = st->qprev;
  else
    c->qtail[u] = st->qprev;
  st->qnext = st->qprev = NULL;
  st->in_q = false;
}

static void q_update(sftt_conn *c, tstream *st) {
  bool want = stream_has_work(st);
  if (want == st->in_q)
    return;
  if (!want) {
    q_remove(c, st);
    return;
  }
  unsigned u = st->urgency;
  st->qprev = c->qtail[u];
  st->qnext = NULL;
  if (c->qtail[u])
    c->qtail[u]->qnext = st;
  else
    c->qhead[u] = st;
  c->qtail[u] = st;
  st->in_q = true;
}

static void stream_drop_segs(sftt_conn *c, tstream *st) {
  for (txseg *s = st->head, *n; s; s = n) {
    n = s->next;
    if (s->owned) {
      c->copied -= s->len;
      free(s->owned);
      if (c->want_writable)
        c->fire_writable = true;
    }
    free(s);
  }
  st->head = st->tail = NULL;
  st->head_off = 0;
  st->nseg = 0;
  c->unsent -= st->queued - st->sent;
  st->queued = st->sent;
}

/* Unlinks and frees |st| (no callback). */
static void stream_remove(sftt_conn *c, tstream *st) {
  stream_drop_segs(c, st);
  q_remove(c, st);
  smap_del(&c->streams, st->sid);
  free(st);
}

static tstream *stream_new(sftt_conn *c, int64_t sid, bool local) {
  tstream *st = calloc(1, sizeof *st);
  if (!st)
    return NULL;
  st->sid = sid;
  st->local = local;
  st->urgency = (sid & 2) ? 4 : 1;
  bool uni = (sid & 2) != 0;
  st->can_send = local || !uni;
  st->can_recv = !local || !uni;
  st->tx_max = c->peer_stream_window;
  st->rx_max = c->ctx->cfg.initial_max_stream_data;
  if (smap_put(&c->streams, sid, st) != 0) {
    free(st);
    return NULL;
  }
  return st;
}

/* ---- control frames
 * ---------------------------------------------------------- */

static int ctl_frame(sftt_conn *c, const sftt_frame *f) {
  uint8_t hdr[SFTT_MAX_HDR];
  int n = sftt_frame_encode(f, hdr);
  if (n < 0)
    return n;
  int rv = buf_append(&c->ctl, hdr, (size_t)n);
  conn_mark(c);
  return rv;
}

/* Moves coalesced control state into the control queue. */
static void ctl_pending(sftt_conn *c) {
  sftt_frame f;
  memset(&f, 0, sizeof f);
  if (c->credit_pending) {
    c->credit_pending = false;
    f.type = SFTT_F_CREDIT;
    f.sid = 0;
    f.v[0] = c->rx_max_data;
    (void)ctl_frame(c, &f);
  }
  for (int k = 0; k < 2; k++) {
    if (!c->ms_pending[k])
      continue;
    c->ms_pending[k] = false;
    f.type = SFTT_F_MAX_STREAMS;
    f.flags = (uint8_t)k;
    f.v[0] = c->my_max_streams[k];
    (void)ctl_frame(c, &f);
  }
  memset(&f, 0, sizeof f);
  if (c->pong_pending) {
    c->pong_pending = false;
    f.type = SFTT_F_PONG;
    (void)ctl_frame(c, &f);
  }
  if (c->ping_pending) {
    c->ping_pending = false;
    f.type = SFTT_F_PING;
    (void)ctl_frame(c, &f);
  }
}

/* |n| bytes of |st| (NULL: a stream already gone) were consumed. */
static void credit_consumed(sftt_conn *c, tstream *st, uint64_t n) {
  const sftq_config *cfg = &c->ctx->cfg;
  c->rx_consumed += n;
  if (c->rx_consumed > c->rx_data)
    c->rx_consumed = c->rx_data;
  uint64_t w = cfg->initial_max_data;
  if (c->rx_consumed + w >= c->rx_max_data + w / 2) {
    c->rx_max_data = c->rx_consumed + w;
    c->credit_pending = true;
    conn_mark(c);
  }
  if (!st || !st->can_recv || st->fin_recv)
    return;
  st->rx_consumed += n;
  if (st->rx_consumed > st->rx_recv)
    st->rx_consumed = st->rx_recv;
  w = cfg->initial_max_stream_data;
  if (st->rx_consumed + w >= st->rx_max + w / 2) {
    st->rx_max = st->rx_consumed + w;
    sftt_frame f;
    memset(&f, 0, sizeof f);
    f.type = SFTT_F_CREDIT;
    f.sid = (uint64_t)st->sid + 1;
    f.v[0] = st->rx_max;
    (void)ctl_frame(c, &f);
  }
}

/* ---- connection lifecycle
 * ---------------------------------------------------- */

static int alert_reason(int alert) {
  switch (alert) {
  case GNUTLS_A_HANDSHAKE_FAILURE:
  case GNUTLS_A_BAD_CERTIFICATE:
  case GNUTLS_A_UNSUPPORTED_CERTIFICATE:
  case GNUTLS_A_CERTIFICATE_REVOKED:
  case GNUTLS_A_CERTIFICATE_EXPIRED:
  case GNUTLS_A_CERTIFICATE_UNKNOWN:
  case GNUTLS_A_UNKNOWN_CA:
  case GNUTLS_A_ACCESS_DENIED:
  case GNUTLS_A_DECRYPT_ERROR:
  case GNUTLS_A_CERTIFICATE_REQUIRED:
    return SFT_ERR_AUTH;
  case GNUTLS_A_PROTOCOL_VERSION:
  case GNUTLS_A_NO_APPLICATION_PROTOCOL:
    return SFT_ERR_VERSION;
  default:
    return SFT_ERR_PEER;
  }
}

static void report_closed(sftt_conn *c, int reason, uint64_t app) {
  if (c->reported)
    return;
  c->reported = true;
  logf_(c->ctx, "tcp conn %p closed: %s app=%llu", (void *)c,
        sft_err_name(reason), (unsigned long long)app);
  if (c->ctx->cfg.cb.closed)
    c->ctx->cfg.cb.closed(Q(c), reason, app, c->ctx->cfg.user_data);
}

/* Gone now: the socket is closed when the conn is destroyed (next flush). */
static void conn_kill(sftt_conn *c, int reason, uint64_t app) {
  if (c->st == C_DEAD)
    return;
  if (c->st == C_LIVE)
    report_closed(c, reason, app);
  c->st = C_DEAD;
  conn_mark(c);
}

static void arm_timer(sftt_conn *c);

/* Enters the closing period: what is in |cout| (a CLOSE frame or an alert)
 * is flushed, then SHUT_WR, then we wait for the peer's EOF (bounded). */
static void conn_start_closing(sftt_conn *c, int reason, uint64_t app) {
  if (c->st != C_LIVE)
    return;
  c->st = C_CLOSING;
  c->close_deadline_ns = now_ns() + CLOSE_LINGER_MS * MS;
  report_closed(c, reason, app);
  conn_mark(c);
}

static int tls_send_all(sftt_conn *c, const uint8_t *p, size_t n) {
  size_t off = 0;
  while (off < n) {
    ssize_t r = gnutls_record_send(c->tls, p + off, n - off);
    if (r == GNUTLS_E_INTERRUPTED)
      continue;
    if (r <= 0)
      return SFT_ERR_IO; /* our push never blocks */
    off += (size_t)r;
  }
  return 0;
}

/* Writes CLOSE(kind, app) (if the handshake is done) and starts closing. */
static void conn_close_with(sftt_conn *c, uint8_t kind, uint64_t app,
                            int reason) {
  if (c->st != C_LIVE)
    return;
  if (c->hs_done) {
    sftt_frame f;
    memset(&f, 0, sizeof f);
    f.type = SFTT_F_CLOSE;
    f.flags = kind;
    f.v[0] = app;
    uint8_t hdr[SFTT_MAX_HDR];
    int n = sftt_frame_encode(&f, hdr);
    if (n > 0)
      (void)tls_send_all(c, hdr, (size_t)n);
  }
  conn_start_closing(c, reason, app);
}

static void conn_proto_error(sftt_conn *c, const char *what) {
  logf_(c->ctx, "tcp conn %p protocol error: %s", (void *)c, what);
  conn_close_with(c, 1, 0, SFT_ERR_PEER);
}

static void on_poll(uv_poll_t *h, int status, int events);

static void update_poll(sftt_conn *c) {
  if (c->st == C_DEAD)
    return;
  int ev = UV_READABLE;
  if (c->cout.len || c->connecting)
    ev |= UV_WRITABLE;
  if (ev == c->poll_events)
    return;
  c->poll_events = ev;
  uv_poll_start(&c->poll, ev, on_poll);
}

/* ---- GnuTLS transport
 * -------------------------------------------------------- */

static ssize_t tls_push(gnutls_transport_ptr_t p, const void *d, size_t n) {
  sftt_conn *c = p;
  if (buf_append(&c->cout, d, n) != 0) {
    gnutls_transport_set_errno(c->tls, ENOMEM);
    return -1;
  }
  c->enc_total += n;
  return (ssize_t)n;
}

static ssize_t tls_pull(gnutls_transport_ptr_t p, void *d, size_t n) {
  sftt_conn *c = p;
  if (!c->cin_len) {
    gnutls_transport_set_errno(c->tls, EAGAIN);
    return -1;
  }
  if (n > c->cin_len)
    n = c->cin_len;
  memcpy(d, c->cin, n);
  c->cin += n;
  c->cin_len -= n;
  return (ssize_t)n;
}

static int tls_pull_timeout(gnutls_transport_ptr_t p, unsigned ms) {
  sftt_conn *c = p;
  (void)ms;
  return c->cin_len ? 1 : 0;
}

/* ---- receiving frames
 * -------------------------------------------------------- */

/* Checks |st| for completion in both directions; reports stream_close. */
static void maybe_close(sftt_conn *c, tstream *st) {
  bool sd = !st->can_send || st->fin_acked;
  bool rd = !st->can_recv || st->fin_recv;
  if (!sd || !rd)
    return;
  int64_t sid = st->sid;
  bool remote = !st->local;
  stream_remove(c, st);
  if (remote) {
    int k = sid_kind((uint64_t)sid);
    c->my_max_streams[k]++;
    c->ms_pending[k] = true;
    conn_mark(c);
  }
  if (c->ctx->cfg.cb.stream_close)
    c->ctx->cfg.cb.stream_close(Q(c), sid, 0, c->ctx->cfg.user_data);
}

static void fire_connected(sftt_conn *c) {
  if (!c->fire_connected)
    return;
  c->fire_connected = false;
  if (c->st == C_LIVE && c->ctx->cfg.cb.connected)
    c->ctx->cfg.cb.connected(Q(c), c->ctx->cfg.user_data);
}

static bool conn_rx_account(sftt_conn *c, uint64_t len) {
  if (c->rx_data + len > c->rx_max_data) {
    conn_proto_error(c, "connection flow control");
    return false;
  }
  c->rx_data += len;
  return true;
}

static void on_data(sftt_conn *c, const sftt_frame *f) {
  sftt_ctx *ctx = c->ctx;
  int64_t sid = (int64_t)f->sid;
  tstream *st = smap_get(&c->streams, sid);
  if (!st) {
    if (!sid_old(c, f->sid)) {
      conn_proto_error(c, "data on an unopened stream");
      return;
    }
    /* In flight when we reset the stream: counts on the connection. */
    if (conn_rx_account(c, f->len))
      credit_consumed(c, NULL, f->len);
    return;
  }
  if (!st->can_recv || st->fin_recv) {
    conn_proto_error(c, "data on a finished or send-only stream");
    return;
  }
  if (st->rx_recv + f->len > st->rx_max) {
    conn_proto_error(c, "stream flow control");
    return;
  }
  if (!conn_rx_account(c, f->len))
    return;
  st->rx_recv += f->len;
  c->s.stream_bytes_recv += f->len;
  bool fin = (f->flags & SFTT_DATA_FIN) != 0;
  if (fin)
    st->fin_recv = true;
  fire_connected(c);
  if (ctx->cfg.cb.stream_data)
    ctx->cfg.cb.stream_data(Q(c), sid, f->data, f->len, fin,
                            ctx->cfg.user_data);
  if (c->st != C_LIVE)
    return;
  st = smap_get(&c->streams, sid); /* the callback may have cancelled it */
  if (!ctx->cfg.manual_rx_credit && f->len) {
    /* the stream part only matters while the stream can still receive */
    credit_consumed(c, st, f->len);
  }
  if (fin && st)
    maybe_close(c, st);
}

static void on_open(sftt_conn *c, const sftt_frame *f) {
  int k = sid_kind(f->sid);
  uint64_t idx = f->sid >> 2;
  if (sid_local(c, f->sid) || idx != c->peer_opened[k]) {
    conn_proto_error(c, "bad stream id in STREAM_OPEN");
    return;
  }
  if (idx >= c->my_max_streams[k]) {
    conn_proto_error(c, "stream limit exceeded");
    return;
  }
  c->peer_opened[k]++;
  if (!stream_new(c, (int64_t)f->sid, false)) {
    logf_(c->ctx, "out of memory for a stream");
    conn_close_with(c, 2, 0, SFT_ERR_NOMEM);
    return;
  }
  fire_connected(c);
  if (c->ctx->cfg.cb.stream_open)
    c->ctx->cfg.cb.stream_open(Q(c), (int64_t)f->sid, c->ctx->cfg.user_data);
}

static void on_reset(sftt_conn *c, const sftt_frame *f) {
  tstream *st = smap_get(&c->streams, (int64_t)f->sid);
  if (!st) {
    if (!sid_old(c, f->sid))
      conn_proto_error(c, "reset of an unopened stream");
    return; /* both sides reset it: already reported */
  }
  int64_t sid = st->sid;
  bool remote = !st->local;
  stream_remove(c, st);
  if (remote) {
    int k = sid_kind(f->sid);
    c->my_max_streams[k]++;
    c->ms_pending[k] = true;
    conn_mark(c);
  }
  if (c->ctx->cfg.cb.stream_close)
    c->ctx->cfg.cb.stream_close(Q(c), sid, f->v[0], c->ctx->cfg.user_data);
}

static void on_credit(sftt_conn *c, const sftt_frame *f) {
  if (f->sid == 0) {
    if (f->v[0] > c->tx_max_data) {
      c->tx_max_data = f->v[0];
      conn_mark(c);
    }
    return;
  }
  uint64_t sid = f->sid - 1;
  tstream *st = smap_get(&c->streams, (int64_t)sid);
  if (!st) {
    if (!sid_old(c, sid))
      conn_proto_error(c, "credit for an unopened stream");
    return;
  }
  if (!st->can_send) {
    conn_proto_error(c, "credit for a receive-only stream");
    return;
  }
  if (f->v[0] > st->tx_max) {
    st->tx_max = f->v[0];
    if (st->blocked) {
      st->blocked = false;
      q_update(c, st);
    }
    conn_mark(c);
  }
}

static void on_settings(sftt_conn *c, const sftt_frame *f) {
  c->settings_rx = true;
  c->tx_max_data = f->v[0];
  c->peer_stream_window = f->v[1];
  for (int k = 0; k < 2; k++)
    c->peer_max_streams[k] = f->v[2 + k] > SFTT_MAX_STREAMS_COUNT
                                 ? SFTT_MAX_STREAMS_COUNT
                                 : f->v[2 + k];
  if (c->hs_done && !c->connected) {
    c->connected = true;
    c->fire_connected = true;
    conn_mark(c);
  }
}

static void handle_frame(sftt_conn *c, const sftt_frame *f) {
  if (!c->settings_rx && f->type != SFTT_F_SETTINGS &&
      f->type != SFTT_F_CLOSE) {
    conn_proto_error(c, "frame before SETTINGS");
    return;
  }
  switch (f->type) {
  case SFTT_F_SETTINGS:
    if (c->settings_rx)
      conn_proto_error(c, "second SETTINGS");
    else
      on_settings(c, f);
    break;
  case SFTT_F_OPEN:
    on_open(c, f);
    break;
  case SFTT_F_DATA:
    on_data(c, f);
    break;
  case SFTT_F_RESET:
    on_reset(c, f);
    break;
  case SFTT_F_CREDIT:
    on_credit(c, f);
    break;
  case SFTT_F_MAX_STREAMS:
    if (f->v[0] > c->peer_max_streams[f->flags]) {
      c->peer_max_streams[f->flags] = f->v[0];
      if (c->want_writable)
        c->fire_writable = true;
      conn_mark(c);
    }
    break;
  case SFTT_F_PING:
    c->pong_pending = true;
    conn_mark(c);
    break;
  case SFTT_F_PONG:
    break;
  case SFTT_F_CLOSE:
    conn_kill(c,
              f->flags == 0   ? SFT_ERR_CLOSED
              : f->flags == 3 ? SFT_ERR_TIMEOUT
                              : SFT_ERR_PEER,
              f->v[0]);
    break;
  default:
    conn_proto_error(c, "unknown frame");
  }
}

static void parse_frames(sftt_conn *c) {
  size_t off = 0;
  while (c->st == C_LIVE && off < c->rbuf_len) {
    sftt_frame f;
    int n = sftt_frame_decode(c->rbuf + off, c->rbuf_len - off, &f);
    if (n == 0)
      break;
    if (n < 0) {
      conn_proto_error(c, "malformed frame");
      break;
    }
    off += (size_t)n;
    handle_frame(c, &f);
  }
  if (c->st != C_LIVE) {
    c->rbuf_len = 0;
    return;
  }
  memmove(c->rbuf, c->rbuf + off, c->rbuf_len - off);
  c->rbuf_len -= off;
}

static int hs_reason(sftt_conn *c, int r) {
  if (c->auth_failed)
    return SFT_ERR_AUTH;
  switch (r) {
  case GNUTLS_E_FATAL_ALERT_RECEIVED:
    return alert_reason((int)gnutls_alert_get(c->tls));
  case GNUTLS_E_NO_APPLICATION_PROTOCOL:
  case GNUTLS_E_UNSUPPORTED_VERSION_PACKET:
    return SFT_ERR_VERSION;
  case GNUTLS_E_CERTIFICATE_ERROR:
  case GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR:
  case GNUTLS_E_NO_CERTIFICATE_FOUND:
  case GNUTLS_E_CERTIFICATE_REQUIRED:
  case GNUTLS_E_PK_SIG_VERIFY_FAILED:
    return SFT_ERR_AUTH;
  default:
    return SFT_ERR_PEER;
  }
}

/* A fatal TLS error |r|: answer with an alert unless we received one. */
static void tls_fail(sftt_conn *c, int r) {
  int reason = hs_reason(c, r);
  logf_(c->ctx, "tcp conn %p TLS error: %s", (void *)c, gnutls_strerror(r));
  if (r == GNUTLS_E_FATAL_ALERT_RECEIVED) {
    conn_kill(c, reason, 0);
    return;
  }
  (void)gnutls_alert_send_appropriate(c->tls, r);
  conn_start_closing(c, reason, 0);
}

static void send_settings(sftt_conn *c) {
  const sftq_config *cfg = &c->ctx->cfg;
  sftt_frame f;
  memset(&f, 0, sizeof f);
  f.type = SFTT_F_SETTINGS;
  f.v[0] = cfg->initial_max_data;
  f.v[1] = cfg->initial_max_stream_data;
  f.v[2] = cfg->max_streams_bidi;
  f.v[3] = cfg->max_streams_uni;
  (void)ctl_frame(c, &f);
}

static void do_handshake(sftt_conn *c) {
  int r, tries = 0;
  do {
    r = gnutls_handshake(c->tls);
  } while (r < 0 && r != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(r) &&
           ++tries < 16);
  if (r < 0 && r != GNUTLS_E_AGAIN && !gnutls_error_is_fatal(r))
    return; /* e.g. a warning alert: resumed by the next read */
  if (r == GNUTLS_E_AGAIN)
    return;
  if (r < 0) {
    tls_fail(c, r);
    return;
  }
  if (!tls_alpn_ok(c->tls, &c->ctx->tls)) {
    logf_(c->ctx, "tcp conn %p: ALPN not negotiated", (void *)c);
    (void)gnutls_alert_send(c->tls, GNUTLS_AL_FATAL,
                            GNUTLS_A_NO_APPLICATION_PROTOCOL);
    conn_start_closing(c, SFT_ERR_VERSION, 0);
    return;
  }
  c->hs_done = true;
  send_settings(c);
}

/* Decrypts what the pull function can provide and parses frames. */
static void tls_read(sftt_conn *c) {
  int nonfatal = 0;
  while (c->st == C_LIVE) {
    if (!c->hs_done) {
      do_handshake(c);
      if (!c->hs_done)
        return;
      continue;
    }
    ssize_t r = gnutls_record_recv(c->tls, c->rbuf + c->rbuf_len,
                                   RBUF_CAP - c->rbuf_len);
    if (r == GNUTLS_E_AGAIN)
      return;
    if (r == GNUTLS_E_INTERRUPTED)
      continue;
    if (r == 0) { /* close_notify */
      conn_kill(c, SFT_ERR_CLOSED, 0);
      return;
    }
    if (r < 0) {
      if (!gnutls_error_is_fatal((int)r) && ++nonfatal < 16)
        continue;
      tls_fail(c, (int)r);
      return;
    }
    c->rbuf_len += (size_t)r;
    parse_frames(c);
  }
}

static void conn_readable(sftt_conn *c) {
  sftt_ctx *ctx = c->ctx;
  for (int i = 0; i < RX_READS && c->st != C_DEAD; i++) {
    ssize_t n = recv(c->fd, ctx->rxbuf, sizeof ctx->rxbuf, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        return;
      logf_(ctx, "tcp conn %p recv: %s", (void *)c, strerror(errno));
      conn_kill(c, SFT_ERR_IO, 0);
      return;
    }
    if (n == 0) {
      conn_kill(c, SFT_ERR_CLOSED, 0);
      return;
    }
    c->s.pkts_recv++;
    c->s.bytes_recv += (uint64_t)n;
    c->last_rx_ns = now_ns();
    if (c->st != C_LIVE)
      continue; /* closing: discard until EOF */
    c->cin = ctx->rxbuf;
    c->cin_len = (size_t)n;
    tls_read(c);
    c->cin = NULL;
    c->cin_len = 0;
    if ((size_t)n < sizeof ctx->rxbuf)
      return;
  }
}

/* ---- sending
 * ------------------------------------------------------------------ */

static tstream *next_stream(sftt_conn *c) {
  for (unsigned u = 0; u < 8; u++)
    if (c->qhead[u])
      return c->qhead[u];
  return NULL;
}

static void seg_copy(sftt_conn *c, tstream *st, uint8_t *dst, size_t n) {
  while (n) {
    txseg *s = st->head;
    size_t left = s->len - st->head_off;
    size_t k = n < left ? n : left;
    memcpy(dst, s->base + st->head_off, k);
    dst += k;
    n -= k;
    st->head_off += k;
    if (st->head_off == s->len) {
      st->head = s->next;
      if (!st->head)
        st->tail = NULL;
      st->head_off = 0;
      st->nseg--;
      if (s->owned) {
        c->copied -= s->len;
        free(s->owned);
        if (c->want_writable)
          c->fire_writable = true;
      }
      free(s);
    }
  }
}

static int push_ack(sftt_conn *c, int64_t sid) {
  if (c->acks_head + c->acks_len == c->acks_cap) {
    if (c->acks_head) {
      memmove(c->acks, c->acks + c->acks_head, c->acks_len * sizeof *c->acks);
      c->acks_head = 0;
    } else {
      size_t nc = c->acks_cap ? c->acks_cap * 2 : 64;
      ackmark *na = realloc(c->acks, nc * sizeof *na);
      if (!na)
        return SFT_ERR_NOMEM;
      c->acks = na;
      c->acks_cap = nc;
    }
  }
  c->acks[c->acks_head + c->acks_len++] = (ackmark){sid, UINT64_MAX};
  return 0;
}

/* Appends data frames to |pt| (holding |n| bytes) while streams have data
 * and credit. Returns the new length. */
static size_t fill_data(sftt_conn *c, uint8_t *pt, size_t n) {
  while (PT_BATCH - n > SFTT_MAX_HDR) {
    tstream *st = next_stream(c);
    if (!st)
      break;
    uint64_t avail = st->queued - st->sent;
    uint64_t take = avail < SFTT_MAX_PAYLOAD ? avail : SFTT_MAX_PAYLOAD;
    uint64_t scred = st->tx_max > st->sent ? st->tx_max - st->sent : 0;
    uint64_t ccred =
        c->tx_max_data > c->tx_data ? c->tx_max_data - c->tx_data : 0;
    uint64_t room = PT_BATCH - n - SFTT_MAX_HDR;
    if (take > scred)
      take = scred;
    if (take > ccred)
      take = ccred;
    if (take > room)
      take = room;
    bool fin = st->fin_queued && take == avail;
    if (take == 0 && !fin) {
      if (scred == 0) { /* wait for CREDIT on this stream */
        st->blocked = true;
        q_remove(c, st);
        continue;
      }
      break; /* connection credit or room */
    }
    if (fin && push_ack(c, st->sid) != 0)
      break;
    sftt_frame f;
    memset(&f, 0, sizeof f);
    f.type = SFTT_F_DATA;
    f.sid = (uint64_t)st->sid;
    f.flags = fin ? SFTT_DATA_FIN : 0;
    f.len = (size_t)take;
    int h = sftt_frame_encode(&f, pt + n);
    if (h < 0)
      break;
    n += (size_t)h;
    seg_copy(c, st, pt + n, (size_t)take);
    n += (size_t)take;
    st->sent += take;
    c->tx_data += take;
    c->unsent -= take;
    c->s.stream_bytes_sent += take;
    if (fin)
      st->fin_sent = true;
    q_update(c, st);
  }
  return n;
}

/* Frames and encrypts into |cout| until TX_HIGH or nothing is left. */
static bool fill(sftt_conn *c) {
  uint8_t *pt = c->ctx->pt;
  bool produced = false;
  while (c->st == C_LIVE && c->cout.len < TX_HIGH) {
    ctl_pending(c);
    size_t n = c->ctl.len < PT_BATCH ? c->ctl.len : PT_BATCH;
    if (n) {
      memcpy(pt, c->ctl.p + c->ctl.off, n);
      buf_consume(&c->ctl, n);
    }
    if (!c->ctl.len && c->connected)
      n = fill_data(c, pt, n);
    if (!n)
      break;
    if (tls_send_all(c, pt, n) != 0) {
      conn_kill(c, SFT_ERR_IO, 0);
      return produced;
    }
    for (size_t i = c->acks_len; i > 0; i--) {
      ackmark *a = &c->acks[c->acks_head + i - 1];
      if (a->mark != UINT64_MAX)
        break;
      a->mark = c->enc_total;
    }
    produced = true;
  }
  return produced;
}

static void sock_flush(sftt_conn *c) {
  while (c->cout.len && c->st != C_DEAD) {
    ssize_t n = send(c->fd, c->cout.p + c->cout.off, c->cout.len, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        break;
      logf_(c->ctx, "tcp conn %p send: %s", (void *)c, strerror(errno));
      conn_kill(c, SFT_ERR_IO, 0);
      return;
    }
    buf_consume(&c->cout, (size_t)n);
    c->wr_total += (uint64_t)n;
    c->s.bytes_sent += (uint64_t)n;
    c->s.pkts_sent++;
  }
}

/* stream_acked for every FIN whose frame is now in the kernel. */
static void process_acks(sftt_conn *c) {
  while (c->acks_len && c->st == C_LIVE) {
    ackmark a = c->acks[c->acks_head];
    if (a.mark == UINT64_MAX || a.mark > c->wr_total)
      break;
    c->acks_head++;
    c->acks_len--;
    if (!c->acks_len)
      c->acks_head = 0;
    tstream *st = smap_get(&c->streams, a.sid);
    if (!st)
      continue; /* cancelled meanwhile */
    st->fin_acked = true;
    if (c->ctx->cfg.cb.stream_acked)
      c->ctx->cfg.cb.stream_acked(Q(c), a.sid, c->ctx->cfg.user_data);
    st = smap_get(&c->streams, a.sid);
    if (st)
      maybe_close(c, st);
  }
}

static void run_pending_closes(sftt_conn *c) {
  for (size_t i = 0; i < c->npcl && c->st == C_LIVE; i++) {
    pendclose p = c->pcl[i];
    if (c->ctx->cfg.cb.stream_close)
      c->ctx->cfg.cb.stream_close(Q(c), p.sid, p.code, c->ctx->cfg.user_data);
  }
  c->npcl = 0;
}

static void conn_write(sftt_conn *c) {
  sftt_ctx *ctx = c->ctx;
  fire_connected(c);
  if (c->fire_writable && c->st == C_LIVE) {
    c->fire_writable = false;
    c->want_writable = false;
    if (ctx->cfg.cb.writable)
      ctx->cfg.cb.writable(Q(c), ctx->cfg.user_data);
  }
  run_pending_closes(c);
  if (c->st == C_DEAD || c->connecting)
    return;
  if (c->st == C_LIVE && c->close_req)
    conn_close_with(c, 0, c->close_app, SFT_OK);
  if (c->st == C_CLOSING) {
    sock_flush(c);
    if (c->st == C_CLOSING && !c->cout.len && !c->shut_wr) {
      (void)shutdown(c->fd, SHUT_WR);
      c->shut_wr = true;
    }
    update_poll(c);
    arm_timer(c);
    return;
  }
  for (int round = 0; round < FLUSH_ROUNDS && c->st == C_LIVE; round++) {
    bool produced = c->hs_done ? fill(c) : false;
    sock_flush(c);
    if (c->st != C_LIVE)
      break;
    process_acks(c);
    if (!produced || c->cout.len)
      break;
  }
  update_poll(c);
  arm_timer(c);
}

/* ---- loop integration -----------------------------------------------------
 */

static void conn_destroy(sftt_conn *c);

static void conn_mark(sftt_conn *c) {
  if (c->in_dirty)
    return;
  c->in_dirty = true;
  c->dnext = c->ctx->dirty;
  c->ctx->dirty = c;
}

static void on_timer(uv_timer_t *t);

static void flush(sftt_ctx *ctx) {
  for (int round = 0; round < FLUSH_ROUNDS && ctx->dirty; round++) {
    sftt_conn *list = ctx->dirty;
    ctx->dirty = NULL;
    while (list) {
      sftt_conn *c = list;
      list = c->dnext;
      c->in_dirty = false;
      c->dnext = NULL;
      if (c->st != C_DEAD)
        conn_write(c);
      if (c->st == C_DEAD)
        conn_destroy(c);
    }
  }
  for (sftt_conn *c = ctx->dirty; c; c = c->dnext)
    uv_timer_start(&c->timer, on_timer, 0, 0);
}

static void on_prepare(uv_prepare_t *h) {
  flush(h->data);
}
static void on_check(uv_check_t *h) {
  flush(h->data);
}

static void arm_timer(sftt_conn *c) {
  const sftq_config *cfg = &c->ctx->cfg;
  if (c->st == C_DEAD)
    return;
  uint64_t now = now_ns(), dl;
  if (c->st == C_CLOSING) {
    dl = c->close_deadline_ns;
  } else {
    dl = c->last_rx_ns + cfg->idle_timeout_ms * MS;
    if (!c->connected) {
      uint64_t h = c->created_ns + cfg->handshake_timeout_ms * MS;
      if (h < dl)
        dl = h;
    } else if (cfg->keepalive_ms != UINT32_MAX) {
      uint64_t base =
          c->last_rx_ns > c->last_ping_ns ? c->last_rx_ns : c->last_ping_ns;
      uint64_t p = base + cfg->keepalive_ms * MS;
      if (p < dl)
        dl = p;
    }
  }
  uint64_t ms = dl > now ? (dl - now + MS - 1) / MS : 0;
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void on_timer(uv_timer_t *t) {
  sftt_conn *c = t->data;
  const sftq_config *cfg = &c->ctx->cfg;
  uint64_t now = now_ns();
  if (c->st == C_CLOSING) {
    if (now >= c->close_deadline_ns)
      conn_kill(c, SFT_OK, 0);
  } else if (c->st == C_LIVE) {
    if (!c->connected &&
        now >= c->created_ns + cfg->handshake_timeout_ms * MS) {
      logf_(c->ctx, "tcp conn %p handshake timeout", (void *)c);
      conn_kill(c, SFT_ERR_TIMEOUT, 0);
    } else if (now >= c->last_rx_ns + cfg->idle_timeout_ms * MS) {
      logf_(c->ctx, "tcp conn %p idle timeout", (void *)c);
      conn_close_with(c, 3, 0, SFT_ERR_TIMEOUT); /* the peer reports it too */
    } else if (c->connected && cfg->keepalive_ms != UINT32_MAX) {
      uint64_t base =
          c->last_rx_ns > c->last_ping_ns ? c->last_rx_ns : c->last_ping_ns;
      if (now >= base + cfg->keepalive_ms * MS) {
        c->ping_pending = true;
        c->last_ping_ns = now;
      }
    }
  }
  conn_mark(c); /* conn_write re-arms the timer */
}

static void on_poll(uv_poll_t *h, int status, int events) {
  sftt_conn *c = h->data;
  if (c->st == C_DEAD)
    return;
  if (c->connecting) {
    if (status < 0 && !(events & UV_WRITABLE))
      events = UV_WRITABLE;
    if (!(events & UV_WRITABLE))
      return;
    int err = 0;
    socklen_t el = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
      err = errno;
    if (err == EINPROGRESS)
      return;
    if (err) {
      logf_(c->ctx, "tcp connect: %s", strerror(err));
      conn_kill(c, err == ECONNREFUSED ? SFT_ERR_REFUSED : SFT_ERR_IO, 0);
      return;
    }
    c->connecting = false;
    c->last_rx_ns = now_ns();
    do_handshake(c); /* ClientHello into cout */
    conn_mark(c);
    return;
  }
  if (events & UV_READABLE || status < 0)
    conn_readable(c);
  conn_mark(c);
}

static void on_conn_handle_closed(uv_handle_t *h) {
  sftt_conn *c = h->data;
  sftt_ctx *ctx = c->ctx;
  ctx->nhandles--;
  if (--c->handles == 0) {
    if (c->fd >= 0)
      close(c->fd);
    free(c);
  }
  if (ctx->freeing && ctx->nhandles == 0) {
    tls_free(&ctx->tls);
    free(ctx->cert);
    free(ctx->key);
    free(ctx->alpn);
    free(ctx);
  }
}

static void conn_destroy(sftt_conn *c) {
  sftt_ctx *ctx = c->ctx;
  if (c->prev)
    c->prev->next = c->next;
  else
    ctx->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  if (c->server)
    ctx->nserver--;
  if (c->in_dirty) {
    sftt_conn **pp = &ctx->dirty;
    while (*pp && *pp != c)
      pp = &(*pp)->dnext;
    if (*pp)
      *pp = c->dnext;
    c->in_dirty = false;
  }
  for (size_t i = 0; i < c->streams.cap; i++)
    if (c->streams.tab[i].sid >= 0) {
      tstream *st = c->streams.tab[i].st;
      for (txseg *s = st->head, *n; s; s = n) {
        n = s->next;
        free(s->owned);
        free(s);
      }
      free(st);
    }
  free(c->streams.tab);
  c->streams.tab = NULL;
  c->streams.cap = 0;
  buf_free(&c->cout);
  buf_free(&c->ctl);
  free(c->rbuf);
  free(c->acks);
  free(c->pcl);
  if (c->tls)
    gnutls_deinit(c->tls);
  c->tls = NULL;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
  uv_close((uv_handle_t *)&c->poll, on_conn_handle_closed);
}

static void tune_socket(const sftt_ctx *ctx, int fd) {
  int one = 1;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int sb = ctx->cfg.sockbuf > INT32_MAX ? INT32_MAX : (int)ctx->cfg.sockbuf;
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sb, sizeof sb);
  /* Bound what waits unsent in the kernel so a control-stream frame is not
   * queued behind megabytes of chunk data. */
  int lowat = NOTSENT_LOWAT;
  (void)setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
  static const char *const cc[] = {"bbr", "bbr", "cubic", "reno"};
  const char *name = cc[ctx->cfg.cc];
  (void)setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name,
                   (socklen_t)strlen(name));
}

/* A connection on connected/connecting socket |fd| (owned from now on). */
static sftt_conn *conn_new(sftt_ctx *ctx, int fd, bool server) {
  sftt_conn *c = calloc(1, sizeof *c);
  if (c)
    c->kind = SFTQ_KIND_TCP;
  if (!c) {
    close(fd);
    return NULL;
  }
  c->ctx = ctx;
  c->fd = fd;
  c->server = server;
  const sftq_config *cfg = &ctx->cfg;
  c->rx_max_data = cfg->initial_max_data;
  c->my_max_streams[0] = cfg->max_streams_bidi;
  c->my_max_streams[1] = cfg->max_streams_uni;
  c->created_ns = c->last_rx_ns = now_ns();
  c->min_rtt_ns = UINT64_MAX;
  c->rbuf = malloc(RBUF_CAP);
  if (!c->rbuf || smap_init(&c->streams) != 0 ||
      tls_session(&ctx->tls, &c->tls, server, c, tls_push, tls_pull,
                  tls_pull_timeout) != 0 ||
      uv_poll_init_socket(ctx->loop, &c->poll, fd) != 0) {
    if (c->tls)
      gnutls_deinit(c->tls);
    free(c->streams.tab);
    free(c->rbuf);
    free(c);
    close(fd);
    return NULL;
  }
  uv_timer_init(ctx->loop, &c->timer);
  c->poll.data = c->timer.data = c;
  c->handles = 2;
  ctx->nhandles += 2;
  c->next = ctx->conns;
  if (ctx->conns)
    ctx->conns->prev = c;
  ctx->conns = c;
  if (server)
    ctx->nserver++;
  tune_socket(ctx, fd);
  c->remote_len = sizeof c->remote;
  if (getpeername(fd, (struct sockaddr *)&c->remote, &c->remote_len) != 0)
    c->remote_len = 0;
  c->poll_events = UV_READABLE;
  uv_poll_start(&c->poll, UV_READABLE, on_poll);
  arm_timer(c);
  return c;
}

static void on_lst_poll(uv_poll_t *h, int status, int events) {
  sftt_lst *l = h->data;
  sftt_ctx *ctx = l->ctx;
  (void)events;
  if (status < 0 || ctx->freeing)
    return;
  for (int i = 0; i < 64; i++) {
    int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      return; /* EAGAIN, EMFILE...: next readiness */
    }
    if (ctx->nserver >= ctx->cfg.max_conns) {
      close(fd);
      continue;
    }
    sftt_conn *c = conn_new(ctx, fd, true);
    if (c)
      logf_(ctx, "tcp accepted conn %p", (void *)c);
  }
}

static void on_lst_closed(uv_handle_t *h) {
  sftt_lst *l = h->data;
  sftt_ctx *ctx = l->ctx;
  close(l->fd);
  free(l);
  ctx->nhandles--;
  if (ctx->freeing && ctx->nhandles == 0) {
    tls_free(&ctx->tls);
    free(ctx->cert);
    free(ctx->key);
    free(ctx->alpn);
    free(ctx);
  }
}



static int conn_verify_hook(sftt_conn *c, const uint8_t fp[SFTQ_FP_LEN]) {
  memcpy(c->peer_fp, fp, SFTQ_FP_LEN);
  c->fp_known = true;
  int rv = 0;
  if (c->ctx->cfg.cb.verify_peer)
    rv = c->ctx->cfg.cb.verify_peer(Q(c), fp, c->ctx->cfg.user_data);
  if (rv) {
    c->auth_failed = true;
    logf_(c->ctx, "tcp peer rejected by verify_peer");
  }
  return rv;
}

/* ---- public API -------------------------------------------------------------
 */

int sftt_ctx_new(sftt_ctx **out, uv_loop_t *loop, const sftq_config *cfg) {
  if (!out)
    return SFT_ERR_INVAL;
  *out = NULL;
  if (!loop || !cfg || !cfg->cert_path || !cfg->key_path ||
      (unsigned)cfg->cc > SFTQ_CC_RENO)
    return SFT_ERR_INVAL;
  sftt_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx)
    return SFT_ERR_NOMEM;
  ctx->loop = loop;
  ctx->cfg = *cfg;
  sftq_config *c = &ctx->cfg;
  if (!c->idle_timeout_ms)
    c->idle_timeout_ms = 30000;
  if (!c->keepalive_ms)
    c->keepalive_ms = c->idle_timeout_ms / 3;
  if (!c->keepalive_ms)
    c->keepalive_ms = 1;
  if (!c->handshake_timeout_ms)
    c->handshake_timeout_ms = 10000;
  if (!c->initial_max_data)
    c->initial_max_data = 16u << 20;
  if (!c->initial_max_stream_data)
    c->initial_max_stream_data = 2u << 20;
  if (!c->max_streams_uni)
    c->max_streams_uni = 1024;
  if (!c->max_streams_bidi)
    c->max_streams_bidi = 16;
  if (!c->max_conns)
    c->max_conns = 1024;
  if (!c->sockbuf)
    c->sockbuf = 8u << 20;
  if (!c->copy_limit)
    c->copy_limit = 4u << 20;
  if (c->initial_max_data > SFT_VARINT_MAX / 2 ||
      c->initial_max_stream_data > SFT_VARINT_MAX / 2) {
    free(ctx);
    return SFT_ERR_RANGE;
  }
  int rv = SFT_ERR_NOMEM;
  ctx->cert = strdup(cfg->cert_path);
  ctx->key = strdup(cfg->key_path);
  ctx->alpn = strdup(cfg->alpn ? cfg->alpn : SFTQ_ALPN);
  if (!ctx->cert || !ctx->key || !ctx->alpn)
    goto fail;
  c->cert_path = ctx->cert;
  c->key_path = ctx->key;
  c->alpn = ctx->alpn;
  if ((rv = tls_init(&ctx->tls, ctx->cert, ctx->key, ctx->alpn)) != 0)
    goto fail;
  uv_prepare_init(loop, &ctx->prep);
  uv_check_init(loop, &ctx->check);
  ctx->prep.data = ctx->check.data = ctx;
  uv_prepare_start(&ctx->prep, on_prepare);
  uv_check_start(&ctx->check, on_check);
  uv_unref((uv_handle_t *)&ctx->prep);
  uv_unref((uv_handle_t *)&ctx->check);
  ctx->nhandles = 2;
  *out = ctx;
  return 0;
fail:
  free(ctx->cert);
  free(ctx->key);
  free(ctx->alpn);
  free(ctx);
  return rv;
}

static void on_ctx_handle_closed(uv_handle_t *h) {
  sftt_ctx *ctx = h->data;
  if (--ctx->nhandles == 0) {
    tls_free(&ctx->tls);
    free(ctx->cert);
    free(ctx->key);
    free(ctx->alpn);
    free(ctx);
  }
}

void sftt_ctx_free(sftt_ctx *ctx) {
  if (!ctx || ctx->freeing)
    return;
  ctx->freeing = true;
  ctx->dirty = NULL;
  while (ctx->conns) {
    sftt_conn *c = ctx->conns;
    c->in_dirty = false;
    if (c->st == C_LIVE && c->hs_done && !c->reported) {
      sftt_frame f;
      memset(&f, 0, sizeof f);
      f.type = SFTT_F_CLOSE;
      uint8_t hdr[SFTT_MAX_HDR];
      int n = sftt_frame_encode(&f, hdr);
      if (n > 0 && tls_send_all(c, hdr, (size_t)n) == 0)
        sock_flush(c);
    }
    if (c->st == C_LIVE)
      report_closed(c, SFT_ERR_CANCELLED, 0);
    c->st = C_DEAD;
    conn_destroy(c);
  }
  while (ctx->lsts) {
    sftt_lst *l = ctx->lsts;
    ctx->lsts = l->next;
    uv_close((uv_handle_t *)&l->poll, on_lst_closed);
  }
  uv_prepare_stop(&ctx->prep);
  uv_check_stop(&ctx->check);
  uv_close((uv_handle_t *)&ctx->prep, on_ctx_handle_closed);
  uv_close((uv_handle_t *)&ctx->check, on_ctx_handle_closed);
}

int sftt_listen(sftt_ctx *ctx, const char *addr, uint16_t port,
                uint16_t *bound_port) {
  if (!ctx || ctx->freeing)
    return SFT_ERR_STATE;
  struct sockaddr_storage ss;
  socklen_t len;
  int rv = sftd_addr_parse(addr, port, &ss, &len);
  if (rv)
    return rv;
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return SFT_ERR_IO;
  int one = 1;
  (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (ss.ss_family == AF_INET6)
    (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  /* Accepted sockets inherit the buffer sizes (window scale is fixed at
   * SYN time, so they must be set before listen). */
  int sb = ctx->cfg.sockbuf > INT32_MAX ? INT32_MAX : (int)ctx->cfg.sockbuf;
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sb, sizeof sb);
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
  if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 128) != 0) {
    close(fd);
    return SFT_ERR_IO;
  }
  sftt_lst *l = calloc(1, sizeof *l);
  if (!l) {
    close(fd);
    return SFT_ERR_NOMEM;
  }
  if (uv_poll_init_socket(ctx->loop, &l->poll, fd) != 0) {
    close(fd);
    free(l);
    return SFT_ERR_IO;
  }
  l->ctx = ctx;
  l->fd = fd;
  l->poll.data = l;
  ctx->nhandles++;
  uv_poll_start(&l->poll, UV_READABLE, on_lst_poll);
  l->next = ctx->lsts;
  ctx->lsts = l;
  if (bound_port) {
    struct sockaddr_storage la;
    socklen_t ll = sizeof la;
    *bound_port = 0;
    if (getsockname(fd, (struct sockaddr *)&la, &ll) == 0)
      *bound_port = ntohs(la.ss_family == AF_INET
                              ? ((struct sockaddr_in *)&la)->sin_port
                              : ((struct sockaddr_in6 *)&la)->sin6_port);
  }
  return 0;
}

int sftt_connect(sftt_ctx *ctx, const char *host, uint16_t port,
                 void *conn_user, sftt_conn **out) {
  return sftt_connect_via(ctx, NULL, host, port, conn_user, out);
}

int sftt_connect_via(sftt_ctx *ctx, const char *local, const char *host,
                     uint16_t port, void *conn_user, sftt_conn **out) {
  if (!out)
    return SFT_ERR_INVAL;
  *out = NULL;
  if (!ctx)
    return SFT_ERR_INVAL;
  if (ctx->freeing)
    return SFT_ERR_STATE;
  struct sockaddr_storage peer;
  socklen_t plen;
  int rv = sftd_addr_parse(host, port, &peer, &plen);
  if (rv)
    return rv;
  struct sockaddr_storage src;
  socklen_t slen = 0;
  if (local && local[0]) {
    if ((rv = sftd_addr_parse_local(local, &src, &slen)) != 0)
      return rv;
    if (src.ss_family != peer.ss_family)
      return SFT_ERR_INVAL;
  }
  int fd =
      socket(peer.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return SFT_ERR_IO;
  if (slen) {
#ifdef IP_BIND_ADDRESS_NO_PORT
    /* The port is chosen at connect() time with the peer known: binding
     * many sources does not use up the ephemeral range. */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
    if (bind(fd, (struct sockaddr *)&src, slen) != 0) {
      close(fd);
      return SFT_ERR_IO;
    }
  }
  int sb = ctx->cfg.sockbuf > INT32_MAX ? INT32_MAX : (int)ctx->cfg.sockbuf;
  (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sb, sizeof sb);
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
  if (connect(fd, (struct sockaddr *)&peer, plen) != 0 &&
      errno != EINPROGRESS) {
    int refused = errno == ECONNREFUSED;
    close(fd);
    return refused ? SFT_ERR_REFUSED : SFT_ERR_IO;
  }
  sftt_conn *c = conn_new(ctx, fd, false);
  if (!c)
    return SFT_ERR_NOMEM;
  c->user = conn_user;
  memcpy(&c->remote, &peer, plen);
  c->remote_len = plen;
  c->connecting = true; /* completion is seen by on_poll (writable) */
  update_poll(c);
  *out = c;
  return 0;
}

void *sftt_conn_user(const sftt_conn *c) {
  return c->user;
}
void sftt_conn_set_user(sftt_conn *c, void *user) {
  c->user = user;
}
int sftt_conn_is_server(const sftt_conn *c) {
  return c->server;
}

int sftt_conn_peer_fp(const sftt_conn *c, uint8_t fp[SFTQ_FP_LEN]) {
  if (!c->fp_known)
    return SFT_ERR_STATE;
  memcpy(fp, c->peer_fp, SFTQ_FP_LEN);
  return 0;
}

int sftt_conn_peer_addr(const sftt_conn *c, struct sockaddr_storage *sa,
                        socklen_t *salen) {
  if (!c->remote_len)
    return SFT_ERR_STATE;
  memcpy(sa, &c->remote, sizeof c->remote);
  *salen = c->remote_len;
  return 0;
}

void sftt_conn_close(sftt_conn *c, uint64_t app_error) {
  if (c->close_req || c->st != C_LIVE)
    return;
  c->close_req = true;
  c->close_app = app_error;
  conn_mark(c);
}

int sftt_conn_stats(sftt_conn *c, sftq_stats *out) {
  *out = c->s;
  if (c->st == C_DEAD)
    return SFT_ERR_STATE;
  struct tcp_info ti;
  socklen_t tl = sizeof ti;
  memset(&ti, 0, sizeof ti);
  if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) != 0)
    return SFT_ERR_IO;
  out->srtt_ns = (uint64_t)ti.tcpi_rtt * 1000;
  out->latest_rtt_ns = out->srtt_ns;
  out->rttvar_ns = (uint64_t)ti.tcpi_rttvar * 1000;
  if (out->srtt_ns && out->srtt_ns < c->min_rtt_ns)
    c->min_rtt_ns = out->srtt_ns;
  out->min_rtt_ns = c->min_rtt_ns == UINT64_MAX ? 0 : c->min_rtt_ns;
  out->cwnd = (uint64_t)ti.tcpi_snd_cwnd * ti.tcpi_snd_mss;
  out->bytes_in_flight = (uint64_t)ti.tcpi_unacked * ti.tcpi_snd_mss;
  out->pkts_lost = ti.tcpi_total_retrans;
  out->max_udp_payload = ti.tcpi_snd_mss;
  return 0;
}

static int open_stream(sftt_conn *c, int64_t *sid, int kind) {
  if (!sid)
    return SFT_ERR_INVAL;
  if (c->st != C_LIVE || c->close_req || !c->connected)
    return SFT_ERR_STATE;
  if (c->local_opened[kind] >= c->peer_max_streams[kind]) {
    c->want_writable = true;
    return SFT_ERR_AGAIN;
  }
  int64_t id = (int64_t)((c->local_opened[kind] << 2) | ((uint64_t)kind << 1) |
                         (c->server ? 1u : 0u));
  tstream *st = stream_new(c, id, true);
  if (!st)
    return SFT_ERR_NOMEM;
  sftt_frame f;
  memset(&f, 0, sizeof f);
  f.type = SFTT_F_OPEN;
  f.sid = (uint64_t)id;
  if (ctl_frame(c, &f) != 0) {
    smap_del(&c->streams, id);
    free(st);
    return SFT_ERR_NOMEM;
  }
  c->local_opened[kind]++;
  *sid = id;
  return 0;
}

int sftt_stream_open_bidi(sftt_conn *c, int64_t *sid) {
  return open_stream(c, sid, 0);
}
int sftt_stream_open_uni(sftt_conn *c, int64_t *sid) {
  return open_stream(c, sid, 1);
}

int sftt_stream_write(sftt_conn *c, int64_t sid, const sftq_iov *iov, size_t n,
                      unsigned flags) {
  if (n > MAX_IOV || (n && !iov))
    return SFT_ERR_INVAL;
  if (c->st != C_LIVE || c->close_req)
    return SFT_ERR_STATE;
  tstream *st = smap_get(&c->streams, sid);
  if (!st)
    return SFT_ERR_NOT_FOUND;
  if (!st->can_send || st->fin_queued)
    return SFT_ERR_STATE;
  size_t total = 0, nonempty = 0;
  for (size_t i = 0; i < n; i++) {
    total += iov[i].len;
    nonempty += iov[i].len != 0;
  }
  if (st->nseg + nonempty > MAX_SEGS_PER_STREAM)
    return SFT_ERR_FULL;
  bool copy = flags & SFTQ_WRITE_COPY;
  if (copy && c->copied + total > c->ctx->cfg.copy_limit) {
    c->want_writable = true;
    return SFT_ERR_AGAIN;
  }
  txseg *first = NULL, *last = NULL;
  for (size_t i = 0; i < n; i++) {
    if (!iov[i].len)
      continue;
    txseg *s = calloc(1, sizeof *s);
    if (!s)
      goto nomem;
    if (copy) {
      s->owned = malloc(iov[i].len);
      if (!s->owned) {
        free(s);
        goto nomem;
      }
      memcpy(s->owned, iov[i].base, iov[i].len);
      s->base = s->owned;
    } else {
      s->base = iov[i].base;
    }
    s->len = iov[i].len;
    if (last)
      last->next = s;
    else
      first = s;
    last = s;
  }
  if (first) {
    if (st->tail)
      st->tail->next = first;
    else
      st->head = first;
    st->tail = last;
    st->nseg += (unsigned)nonempty;
    if (copy)
      c->copied += total;
  }
  st->queued += total;
  c->unsent += total;
  if (flags & SFTQ_WRITE_FIN)
    st->fin_queued = true;
  q_update(c, st);
  conn_mark(c);
  return 0;
nomem:
  for (txseg *s = first, *nx; s; s = nx) {
    nx = s->next;
    free(s->owned);
    free(s);
  }
  return SFT_ERR_NOMEM;
}

uint64_t sftt_stream_unsent(sftt_conn *c, int64_t sid) {
  tstream *st = smap_get(&c->streams, sid);
  return st ? st->queued - st->sent : 0;
}

uint64_t sftt_conn_unsent(const sftt_conn *c) {
  return c->unsent;
}

int sftt_stream_set_urgency(sftt_conn *c, int64_t sid, unsigned urgency) {
  if (urgency > 7)
    return SFT_ERR_RANGE;
  tstream *st = smap_get(&c->streams, sid);
  if (!st)
    return SFT_ERR_NOT_FOUND;
  bool inq = st->in_q;
  q_remove(c, st);
  st->urgency = (uint8_t)urgency;
  if (inq)
    q_update(c, st);
  return 0;
}

int sftt_stream_set_user(sftt_conn *c, int64_t sid, void *user) {
  tstream *st = smap_get(&c->streams, sid);
  if (!st)
    return SFT_ERR_NOT_FOUND;
  st->user = user;
  return 0;
}

void *sftt_stream_user(sftt_conn *c, int64_t sid) {
  tstream *st = smap_get(&c->streams, sid);
  return st ? st->user : NULL;
}

int sftt_stream_cancel(sftt_conn *c, int64_t sid, uint64_t app_error) {
  if (c->st != C_LIVE)
    return SFT_ERR_STATE;
  tstream *st = smap_get(&c->streams, sid);
  if (!st)
    return SFT_ERR_NOT_FOUND;
  if (c->npcl == c->pcl_cap) {
    size_t nc = c->pcl_cap ? c->pcl_cap * 2 : 16;
    pendclose *np = realloc(c->pcl, nc * sizeof *np);
    if (!np)
      return SFT_ERR_NOMEM;
    c->pcl = np;
    c->pcl_cap = nc;
  }
  sftt_frame f;
  memset(&f, 0, sizeof f);
  f.type = SFTT_F_RESET;
  f.sid = (uint64_t)sid;
  f.v[0] = app_error;
  if (ctl_frame(c, &f) != 0)
    return SFT_ERR_NOMEM;
  bool remote = !st->local;
  stream_remove(c, st);
  if (remote) {
    int k = sid_kind((uint64_t)sid);
    c->my_max_streams[k]++;
    c->ms_pending[k] = true;
  }
  c->pcl[c->npcl++] = (pendclose){sid, app_error};
  conn_mark(c);
  return 0;
}

int sftt_stream_consume(sftt_conn *c, int64_t sid, size_t n) {
  if (c->st != C_LIVE)
    return SFT_ERR_STATE;
  if (!c->ctx->cfg.manual_rx_credit)
    return SFT_ERR_STATE;
  credit_consumed(c, smap_get(&c->streams, sid), n);
  return 0;
}
