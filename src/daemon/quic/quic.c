/* QUIC connections on a libuv loop: ngtcp2 0.12.1 binding, CID routing,
 * Retry, stateless reset, version negotiation, stream send queues, the GSO
 * write loop and the connection lifecycle. See docs/internals/quic.md. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <net/if.h>
#include <gnutls/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/paths.h"
#include "daemon/quic/quic_int.h"
#include "sft/pfec.h"

#define MAX_IOV 16
#define MAX_SEGS_PER_STREAM 4096
#define MAX_CONN_CIDS 16
#define RESET_RATE 100 /* stateless resets / version negotiations per s */
#define RETRY_TOKEN_TIMEOUT (10 * NGTCP2_SECONDS)
#define FLUSH_ROUNDS 8

/* ---- types ---------------------------------------------------------------- */

typedef struct txseg {
  struct txseg *next;
  const uint8_t *base;
  size_t len;
  uint64_t end; /* stream offset just past this segment */
  uint8_t *owned;
} txseg;

typedef struct sftq_stream {
  int64_t sid;
  void *user;
  txseg *head, *tail; /* queued and not yet acknowledged */
  txseg *cur;         /* first segment with unsent bytes (NULL: none) */
  size_t cur_off;
  uint64_t queued, sent, acked;
  unsigned nseg;
  uint8_t urgency;
  bool fin_queued, fin_sent, acked_reported, blocked, tx_dead, in_q;
  bool local;
  struct sftq_stream *qnext, *qprev; /* send queue */
  struct sftq_stream *gnext;         /* graveyard */
} sftq_stream;

typedef struct smap_ent {
  int64_t sid; /* -1 empty, -2 tombstone */
  sftq_stream *st;
} smap_ent;

typedef struct smap {
  smap_ent *tab;
  size_t cap, count, tombs;
} smap;

enum cstate { C_LIVE, C_CLOSING, C_DRAINING, C_DEAD };

struct sftq_ep {
  sftq_ctx *ctx;
  sftq_udp u;
  uv_poll_t poll;
  bool listening, closing, blocked;
  enum { RETRY_NEVER, RETRY_ALWAYS, RETRY_LOAD } retry;
  uint8_t *pend;
  size_t pendlen, pendseg;
  sftq_addr pend_local, pend_remote;
  bool pend_has_remote;
  sftq_ep *next;
};

struct sftq_conn {
  uint32_t kind; /* SFTQ_KIND_QUIC: first member (see quic.h) */
  sftq_ctx *ctx;
  sftq_ep *ep;
  ngtcp2_conn *q;
  gnutls_session_t tls;
  ngtcp2_crypto_conn_ref ref;
  uv_timer_t timer;
  sftq_addr local, remote;
  enum cstate st;
  bool server, connected, fire_connected, fire_writable, want_writable;
  bool early, fire_early; /* client: handshake complete, not yet confirmed */
  bool fp_known, auth_failed, reported, close_req, in_dirty, sreset;
  uint64_t close_app;
  uint8_t peer_fp[SFTQ_FP_LEN];
  void *user;
  smap streams;
  sftq_stream *qhead[8], *qtail[8];
  sftq_stream *grave;
  uint64_t unsent;
  size_t copied;
  uint8_t *closebuf;
  size_t closelen;
  uint64_t close_rx, close_tx_next;
  ngtcp2_cid cids[MAX_CONN_CIDS];
  size_t ncids;
  sftq_stats s;
  uint64_t tune_at, tune_rx; /* sftq_conn_tune_buffers: last call */
  uint64_t lost_closed;
  struct sft_pfec *pf; /* packet FEC shim (lib/pfec); NULL only if OOM */
  uint64_t pf_obs_at;  /* last sft_pfec_observe() */
  sftq_conn *next, *prev, *dnext;
};

struct sftq_ctx {
  uv_loop_t *loop;
  sftq_config cfg;
  char *cert, *key, *alpn;
  sftq_tls tls;
  sftq_cidmap cids;
  uint8_t secret[32];
  uv_prepare_t prep;
  uv_check_t check;
  sftq_ep *eps;
  sftq_conn *conns, *dirty;
  size_t nserver;
  unsigned nhandles;
  bool freeing;
  double rl_tokens;
  uint64_t rl_ts;
  uint8_t rxbuf[SFTQ_RXBUF];
  uint8_t txbuf[SFTQ_TXBUF];
  uint8_t pfbuf[SFT_PFEC_MAX_N * SFT_PFEC_MAX_DGRAM]; /* one block's parity */
};

static void conn_mark(sftq_conn *c);
static void conn_destroy(sftq_conn *c);
static void ep_close(sftq_ep *ep);

static uint64_t now_ns(void) { return uv_hrtime(); }

static void logf_(sftq_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logf_(sftq_ctx *ctx, const char *fmt, ...) {
  if (!ctx->cfg.cb.log) return;
  char line[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  ctx->cfg.cb.log(line, ctx->cfg.user_data);
}

/* ---- stream map ------------------------------------------------------------ */

static size_t smap_slot(int64_t sid, size_t cap) {
  uint64_t h = (uint64_t)sid * 0x9e3779b97f4a7c15ull;
  return (size_t)(h >> 17) & (cap - 1);
}

static int smap_init(smap *m) {
  m->cap = 16;
  m->count = m->tombs = 0;
  m->tab = malloc(m->cap * sizeof *m->tab);
  if (!m->tab) return SFT_ERR_NOMEM;
  for (size_t i = 0; i < m->cap; i++) m->tab[i].sid = -1;
  return 0;
}

static sftq_stream *smap_get(const smap *m, int64_t sid) {
  size_t i = smap_slot(sid, m->cap);
  for (size_t n = 0; n < m->cap; n++, i = (i + 1) & (m->cap - 1)) {
    if (m->tab[i].sid == -1) return NULL;
    if (m->tab[i].sid == sid) return m->tab[i].st;
  }
  return NULL;
}

static int smap_put(smap *m, int64_t sid, sftq_stream *st) {
  if ((m->count + m->tombs + 1) * 2 > m->cap) {
    size_t ncap = m->cap;
    while ((m->count + 1) * 4 > ncap) ncap *= 2;
    smap_ent *nt = malloc(ncap * sizeof *nt);
    if (!nt) return SFT_ERR_NOMEM;
    for (size_t i = 0; i < ncap; i++) nt[i].sid = -1;
    for (size_t i = 0; i < m->cap; i++) {
      if (m->tab[i].sid < 0) continue;
      size_t j = smap_slot(m->tab[i].sid, ncap);
      while (nt[j].sid != -1) j = (j + 1) & (ncap - 1);
      nt[j] = m->tab[i];
    }
    free(m->tab);
    m->tab = nt;
    m->cap = ncap;
    m->tombs = 0;
  }
  size_t i = smap_slot(sid, m->cap);
  while (m->tab[i].sid >= 0) i = (i + 1) & (m->cap - 1);
  if (m->tab[i].sid == -2) m->tombs--;
  m->tab[i].sid = sid;
  m->tab[i].st = st;
  m->count++;
  return 0;
}

static void smap_del(smap *m, int64_t sid) {
  size_t i = smap_slot(sid, m->cap);
  for (size_t n = 0; n < m->cap; n++, i = (i + 1) & (m->cap - 1)) {
    if (m->tab[i].sid == -1) return;
    if (m->tab[i].sid == sid) {
      m->tab[i].sid = -2;
      m->tab[i].st = NULL;
      m->count--;
      m->tombs++;
      return;
    }
  }
}

/* ---- streams --------------------------------------------------------------- */

static bool stream_has_work(const sftq_stream *st) {
  return !st->tx_dead && !st->blocked &&
         (st->cur || (st->fin_queued && !st->fin_sent));
}

static void q_remove(sftq_conn *c, sftq_stream *st) {
  if (!st->in_q) return;
  unsigned u = st->urgency;
  if (st->qprev) st->qprev->qnext = st->qnext;
  else c->qhead[u] = st->qnext;
  if (st->qnext) st->qnext->qprev = st->qprev;
  else c->qtail[u] = st->qprev;
  st->qnext = st->qprev = NULL;
  st->in_q = false;
}

static void q_update(sftq_conn *c, sftq_stream *st) {
  bool want = stream_has_work(st);
  if (want == st->in_q) return;
  if (!want) {
    q_remove(c, st);
    return;
  }
  unsigned u = st->urgency;
  st->qprev = c->qtail[u];
  st->qnext = NULL;
  if (c->qtail[u]) c->qtail[u]->qnext = st;
  else c->qhead[u] = st;
  c->qtail[u] = st;
  st->in_q = true;
}

/* Forgets the stream's unsent bytes (reset, STOP_SENDING, shut): they leave
 * the connection's unsent count exactly once (st->sent catches up, so a
 * second call or the retire does not subtract them again). */
static void stream_drop_unsent(sftq_conn *c, sftq_stream *st) {
  uint64_t left = st->queued - st->sent;
  c->unsent -= left;
  st->sent = st->queued;
  st->cur = NULL;
  st->tx_dead = true;
  q_remove(c, st);
}

static void stream_free(sftq_conn *c, sftq_stream *st) {
  for (txseg *s = st->head, *n; s; s = n) {
    n = s->next;
    if (s->owned) {
      c->copied -= s->len;
      free(s->owned);
    }
    free(s);
  }
  free(st);
}

static sftq_stream *stream_new(sftq_conn *c, int64_t sid, bool local) {
  sftq_stream *st = calloc(1, sizeof *st);
  if (!st) return NULL;
  st->sid = sid;
  st->local = local;
  st->urgency = (sid & 2) ? 4 : 1;
  if (smap_put(&c->streams, sid, st) != 0) {
    free(st);
    return NULL;
  }
  ngtcp2_conn_set_stream_user_data(c->q, sid, st);
  return st;
}

/* The stream is finished in ngtcp2: drop it from the map and queue, free
 * it after the current operation (the write loop may hold a pointer). */
static void stream_retire(sftq_conn *c, sftq_stream *st) {
  if (st->queued > st->sent) c->unsent -= st->queued - st->sent;
  st->cur = NULL;
  q_remove(c, st);
  smap_del(&c->streams, st->sid);
  st->gnext = c->grave;
  c->grave = st;
}

static void grave_free(sftq_conn *c) {
  while (c->grave) {
    sftq_stream *st = c->grave;
    c->grave = st->gnext;
    stream_free(c, st);
  }
}

/* ---- ngtcp2 callbacks --------------------------------------------------- */

static void fire_connected(sftq_conn *c) {
  if (c->fire_early) {
    c->fire_early = false;
    if (c->st == C_LIVE && c->ctx->cfg.cb.early)
      c->ctx->cfg.cb.early(c, c->ctx->cfg.user_data);
  }
  if (!c->fire_connected) return;
  c->fire_connected = false;
  if (c->st == C_LIVE && c->ctx->cfg.cb.connected)
    c->ctx->cfg.cb.connected(c, c->ctx->cfg.user_data);
}

static void rand_cb(uint8_t *dest, size_t len, const ngtcp2_rand_ctx *rctx) {
  (void)rctx;
  (void)gnutls_rnd(GNUTLS_RND_RANDOM, dest, len);
}

/* The stateless-reset (and Retry token) secret is derived from the node's
 * private key, so a node restarted after a crash answers packets of its old
 * connections with a valid stateless reset: the peer learns at once that
 * the connection is gone instead of waiting for its idle timeout (and
 * reconnects). The key never leaves this process; HMAC-SHA256 with a fixed
 * label makes the secret useless for anything else. Random if the key
 * cannot be read. */
static void derive_secret(sftq_ctx *ctx) {
  uint8_t key[16384];
  size_t n = 0;
  FILE *f = fopen(ctx->key, "rb");
  static const char label[] = "sft/1 quic stateless reset secret";
  if (!f) return;
  n = fread(key, 1, sizeof key, f);
  fclose(f);
  if (n > 0 && n < sizeof key)
    (void)gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, n, label, sizeof label - 1,
                           ctx->secret);
  gnutls_memset(key, 0, sizeof key);
}

static int reset_token(const sftq_ctx *ctx, const uint8_t *cid, size_t len,
                       uint8_t *token) {
  ngtcp2_cid k;
  ngtcp2_cid_init(&k, cid, len);
  return ngtcp2_crypto_generate_stateless_reset_token(
      token, ctx->secret, sizeof ctx->secret, &k);
}

static int conn_add_cid(sftq_conn *c, const uint8_t *cid, size_t len) {
  if (c->ncids == MAX_CONN_CIDS) return SFT_ERR_FULL;
  int rv = sftq_cidmap_put(&c->ctx->cids, cid, len, c);
  if (rv) return rv;
  ngtcp2_cid_init(&c->cids[c->ncids++], cid, len);
  return 0;
}

static void conn_del_cid(sftq_conn *c, const uint8_t *cid, size_t len) {
  sftq_cidmap_del(&c->ctx->cids, cid, len, c);
  for (size_t i = 0; i < c->ncids; i++) {
    if (c->cids[i].datalen == len && memcmp(c->cids[i].data, cid, len) == 0) {
      c->cids[i] = c->cids[--c->ncids];
      return;
    }
  }
}

static int get_new_cid_cb(ngtcp2_conn *q, ngtcp2_cid *cid, uint8_t *token,
                          size_t cidlen, void *ud) {
  sftq_conn *c = ud;
  (void)q;
  for (int tries = 0; tries < 4; tries++) {
    if (gnutls_rnd(GNUTLS_RND_RANDOM, cid->data, cidlen) < 0) break;
    cid->datalen = cidlen;
    if (reset_token(c->ctx, cid->data, cidlen, token) != 0) break;
    int rv = conn_add_cid(c, cid->data, cidlen);
    if (rv == 0) return 0;
    if (rv != SFT_ERR_EXISTS) break;
  }
  return NGTCP2_ERR_CALLBACK_FAILURE;
}

static int remove_cid_cb(ngtcp2_conn *q, const ngtcp2_cid *cid, void *ud) {
  (void)q;
  conn_del_cid(ud, cid->data, cid->datalen);
  return 0;
}

static int handshake_completed_cb(ngtcp2_conn *q, void *ud) {
  sftq_conn *c = ud;
  (void)q;
  /* Server: completion means the client's certificate was verified. The
   * client waits for HANDSHAKE_DONE (confirmed) before `connected`: only
   * then has the server accepted the client's certificate. It may send
   * from now on (`early`): 1-RTT keys are installed and the server is
   * authenticated, which saves the application a round trip. */
  if (c->server) {
    c->connected = true;
    c->fire_connected = true;
  } else {
    c->early = true;
    c->fire_early = true;
  }
  conn_mark(c);
  return 0;
}

static int handshake_confirmed_cb(ngtcp2_conn *q, void *ud) {
  sftq_conn *c = ud;
  (void)q;
  if (!c->server) {
    c->connected = true;
    c->fire_connected = true;
    conn_mark(c);
  }
  return 0;
}

static int stream_open_cb(ngtcp2_conn *q, int64_t sid, void *ud) {
  sftq_conn *c = ud;
  (void)q;
  fire_connected(c);
  if (!stream_new(c, sid, false)) return NGTCP2_ERR_CALLBACK_FAILURE;
  if (c->ctx->cfg.cb.stream_open)
    c->ctx->cfg.cb.stream_open(c, sid, c->ctx->cfg.user_data);
  return 0;
}

/* ngtcp2 0.12.1 never closes a peer-initiated unidirectional stream (fixed
 * upstream by 1d591bde, after 0.12.1): stream_close is not called and the
 * peer's stream credit is never renewed. We emulate the close when the
 * stream is finished (FIN delivered or RESET_STREAM received). ngtcp2 keeps
 * its own small per-stream object until the connection ends. */
static bool remote_uni(ngtcp2_conn *q, int64_t sid) {
  return (sid & 2) && !ngtcp2_conn_is_local_stream(q, sid);
}

static void emulate_close(sftq_conn *c, sftq_stream *st, int64_t sid,
                          uint64_t app_error) {
  if (!st || st->tx_dead) return; /* tx_dead marks "already closed" here */
  st->tx_dead = true;
  ngtcp2_conn_set_stream_user_data(c->q, sid, NULL);
  /* The application's close comes first, while sftq_stream_user() still
   * finds the stream's pointer (it frees what hangs off it). */
  if (c->ctx->cfg.cb.stream_close)
    c->ctx->cfg.cb.stream_close(c, sid, app_error, c->ctx->cfg.user_data);
  stream_retire(c, st);
  ngtcp2_conn_extend_max_streams_uni(c->q, 1);
}

static int recv_stream_data_cb(ngtcp2_conn *q, uint32_t flags, int64_t sid,
                               uint64_t off, const uint8_t *data, size_t len,
                               void *ud, void *sud) {
  sftq_conn *c = ud;
  (void)off;
  (void)sud;
  fire_connected(c);
  c->s.stream_bytes_recv += len;
  if (c->ctx->cfg.cb.stream_data)
    c->ctx->cfg.cb.stream_data(c, sid, data, len,
                               (flags & NGTCP2_STREAM_DATA_FLAG_FIN) != 0,
                               c->ctx->cfg.user_data);
  if (!c->ctx->cfg.manual_rx_credit && len) {
    ngtcp2_conn_extend_max_stream_offset(q, sid, len);
    ngtcp2_conn_extend_max_offset(q, len);
  }
  if ((flags & NGTCP2_STREAM_DATA_FLAG_FIN) && remote_uni(q, sid))
    emulate_close(c, sud ? sud : smap_get(&c->streams, sid), sid, 0);
  return 0;
}

static int acked_cb(ngtcp2_conn *q, int64_t sid, uint64_t off, uint64_t len,
                    void *ud, void *sud) {
  sftq_conn *c = ud;
  sftq_stream *st = sud;
  (void)q;
  if (!st) st = smap_get(&c->streams, sid);
  if (!st) return 0;
  if (off + len > st->acked) st->acked = off + len;
  while (st->head && st->head->end <= st->acked && st->head != st->cur) {
    txseg *s = st->head;
    st->head = s->next;
    if (!st->head) st->tail = NULL;
    if (s->owned) {
      c->copied -= s->len;
      free(s->owned);
      if (c->want_writable) c->fire_writable = true;
    }
    st->nseg--;
    free(s);
  }
  if (!st->acked_reported && st->fin_sent && st->acked >= st->queued) {
    st->acked_reported = true;
    if (c->ctx->cfg.cb.stream_acked)
      c->ctx->cfg.cb.stream_acked(c, sid, c->ctx->cfg.user_data);
  }
  return 0;
}

static int stream_close_cb(ngtcp2_conn *q, uint32_t flags, int64_t sid,
                           uint64_t app_error, void *ud, void *sud) {
  sftq_conn *c = ud;
  sftq_stream *st = sud ? sud : smap_get(&c->streams, sid);
  if (!st && remote_uni(q, sid)) return 0; /* close was emulated */
  c->lost_closed += ngtcp2_conn_get_stream_loss_count(q, sid);
  if (!(flags & NGTCP2_STREAM_CLOSE_FLAG_APP_ERROR_CODE_SET)) app_error = 0;
  /* Application first, so sftq_stream_user() still works in its callback. */
  if (c->ctx->cfg.cb.stream_close)
    c->ctx->cfg.cb.stream_close(c, sid, app_error, c->ctx->cfg.user_data);
  st = smap_get(&c->streams, sid);
  if (st) stream_retire(c, st);
  /* Peer-initiated: let the peer open another one. */
  if (!ngtcp2_conn_is_local_stream(q, sid)) {
    if (sid & 2) ngtcp2_conn_extend_max_streams_uni(q, 1);
    else ngtcp2_conn_extend_max_streams_bidi(q, 1);
  }
  return 0;
}

static int stream_reset_cb(ngtcp2_conn *q, int64_t sid, uint64_t final_size,
                           uint64_t app_error, void *ud, void *sud) {
  sftq_conn *c = ud;
  (void)final_size;
  /* Bidi and local streams: reported by stream_close with the code. */
  if (remote_uni(q, sid))
    emulate_close(c, sud ? sud : smap_get(&c->streams, sid), sid, app_error);
  return 0;
}

static int stop_sending_cb(ngtcp2_conn *q, int64_t sid, uint64_t app_error,
                           void *ud, void *sud) {
  sftq_conn *c = ud;
  sftq_stream *st = sud ? sud : smap_get(&c->streams, sid);
  (void)app_error;
  /* The peer does not want the rest: stop sending it (RESET_STREAM). */
  (void)q; /* ngtcp2 0.12 sends RESET_STREAM by itself */
  if (st) stream_drop_unsent(c, st);
  conn_mark(c);
  return 0;
}

static int extend_max_stream_data_cb(ngtcp2_conn *q, int64_t sid,
                                     uint64_t max, void *ud, void *sud) {
  sftq_conn *c = ud;
  sftq_stream *st = sud ? sud : smap_get(&c->streams, sid);
  (void)q;
  (void)max;
  if (st && st->blocked) {
    st->blocked = false;
    q_update(c, st);
    conn_mark(c);
  }
  return 0;
}

static int extend_max_streams_cb(ngtcp2_conn *q, uint64_t max, void *ud) {
  sftq_conn *c = ud;
  (void)q;
  logf_(c->ctx, "peer allows %llu streams", (unsigned long long)max);
  if (c->want_writable) {
    c->fire_writable = true;
    conn_mark(c);
  }
  return 0;
}

static int recv_stateless_reset_cb(ngtcp2_conn *q,
                                   const ngtcp2_pkt_stateless_reset *sr,
                                   void *ud) {
  (void)q;
  (void)sr;
  ((sftq_conn *)ud)->sreset = true;
  return 0;
}

static ngtcp2_conn *get_conn_cb(ngtcp2_crypto_conn_ref *ref) {
  return ((sftq_conn *)ref->user_data)->q;
}

sftq_conn *sftq_conn_of_ref(ngtcp2_crypto_conn_ref *ref) {
  return ref->user_data;
}

int sftq_conn_verify_hook(sftq_conn *c, const uint8_t fp[SFTQ_FP_LEN]) {
  memcpy(c->peer_fp, fp, SFTQ_FP_LEN);
  c->fp_known = true;
  int rv = 0;
  if (c->ctx->cfg.cb.verify_peer)
    rv = c->ctx->cfg.cb.verify_peer(c, fp, c->ctx->cfg.user_data);
  if (rv) {
    c->auth_failed = true;
    logf_(c->ctx, "peer rejected by verify_peer");
  }
  return rv;
}

static int recv_retry_cb(ngtcp2_conn *q, const ngtcp2_pkt_hd *hd, void *ud) {
  sftq_conn *c = ud;
  c->s.retries++;
  return ngtcp2_crypto_recv_retry_cb(q, hd, ud);
}

static void make_callbacks(ngtcp2_callbacks *cb, bool server) {
  memset(cb, 0, sizeof *cb);
  if (server) {
    cb->recv_client_initial = ngtcp2_crypto_recv_client_initial_cb;
  } else {
    cb->client_initial = ngtcp2_crypto_client_initial_cb;
    cb->recv_retry = recv_retry_cb;
  }
  cb->recv_crypto_data = ngtcp2_crypto_recv_crypto_data_cb;
  cb->encrypt = ngtcp2_crypto_encrypt_cb;
  cb->decrypt = ngtcp2_crypto_decrypt_cb;
  cb->hp_mask = ngtcp2_crypto_hp_mask_cb;
  cb->update_key = ngtcp2_crypto_update_key_cb;
  cb->delete_crypto_aead_ctx = ngtcp2_crypto_delete_crypto_aead_ctx_cb;
  cb->delete_crypto_cipher_ctx = ngtcp2_crypto_delete_crypto_cipher_ctx_cb;
  cb->get_path_challenge_data = ngtcp2_crypto_get_path_challenge_data_cb;
  cb->version_negotiation = ngtcp2_crypto_version_negotiation_cb;
  cb->rand = rand_cb;
  cb->get_new_connection_id = get_new_cid_cb;
  cb->remove_connection_id = remove_cid_cb;
  cb->handshake_completed = handshake_completed_cb;
  cb->handshake_confirmed = handshake_confirmed_cb;
  cb->stream_open = stream_open_cb;
  cb->recv_stream_data = recv_stream_data_cb;
  cb->acked_stream_data_offset = acked_cb;
  cb->stream_close = stream_close_cb;
  cb->stream_reset = stream_reset_cb;
  cb->stream_stop_sending = stop_sending_cb;
  cb->extend_max_stream_data = extend_max_stream_data_cb;
  cb->extend_max_local_streams_bidi = extend_max_streams_cb;
  cb->extend_max_local_streams_uni = extend_max_streams_cb;
  cb->recv_stateless_reset = recv_stateless_reset_cb;
}

static void make_settings(sftq_ctx *ctx, ngtcp2_settings *s,
                          ngtcp2_transport_params *p) {
  const sftq_config *cfg = &ctx->cfg;
  ngtcp2_settings_default(s);
  s->initial_ts = now_ns();
  static const ngtcp2_cc_algo algo[] = {NGTCP2_CC_ALGO_BBR2, NGTCP2_CC_ALGO_BBR,
                                        NGTCP2_CC_ALGO_CUBIC,
                                        NGTCP2_CC_ALGO_RENO};
  s->cc_algo = algo[cfg->cc];
  s->max_window = cfg->max_window;
  s->max_stream_window = cfg->max_stream_window;
  s->handshake_timeout = cfg->handshake_timeout_ms * NGTCP2_MILLISECONDS;
  /* RFC 9002's 333 ms default makes the first PTO about 1 s: one lost
   * Initial or Handshake packet delayed the transfer's start by 1 s (at 10 %
   * loss 1 run in 3 took 1.2 s to connect instead of 0.18 s). 100 ms (as
   * Chromium uses) costs at most a spurious small retransmission on a path
   * slower than that. */
  s->initial_rtt = SFTQ_INITIAL_RTT_MS * NGTCP2_MILLISECONDS;
  ngtcp2_transport_params_default(p);
  p->initial_max_streams_bidi = cfg->max_streams_bidi;
  p->initial_max_streams_uni = cfg->max_streams_uni;
  p->initial_max_stream_data_bidi_local = cfg->initial_max_stream_data;
  p->initial_max_stream_data_bidi_remote = cfg->initial_max_stream_data;
  p->initial_max_stream_data_uni = cfg->initial_max_stream_data;
  p->initial_max_data = cfg->initial_max_data;
  p->max_idle_timeout = cfg->idle_timeout_ms * NGTCP2_MILLISECONDS;
  p->active_connection_id_limit = 7;
}

/* ---- connection lifecycle ------------------------------------------------ */

static int alert_reason(uint8_t alert) {
  switch (alert) {
  case 40:  /* handshake_failure */
  case 42:  /* bad_certificate */
  case 43:  /* unsupported_certificate */
  case 44:  /* certificate_revoked */
  case 45:  /* certificate_expired */
  case 46:  /* certificate_unknown */
  case 48:  /* unknown_ca */
  case 49:  /* access_denied */
  case 51:  /* decrypt_error (CertificateVerify) */
  case 116: /* certificate_required */
    return SFT_ERR_AUTH;
  case 70:  /* protocol_version */
  case 120: /* no_application_protocol */
    return SFT_ERR_VERSION;
  default:
    return SFT_ERR_PEER;
  }
}

static void report_closed(sftq_conn *c, int reason, uint64_t app) {
  if (c->reported) return;
  c->reported = true;
  logf_(c->ctx, "conn %p closed: %s app=%llu", (void *)c, sft_err_name(reason),
        (unsigned long long)app);
  if (c->ctx->cfg.cb.closed)
    c->ctx->cfg.cb.closed(c, reason, app, c->ctx->cfg.user_data);
}

static void conn_kill(sftq_conn *c, int reason, uint64_t app) {
  report_closed(c, reason, app);
  c->st = C_DEAD;
  uv_timer_stop(&c->timer);
  conn_mark(c);
}

static void on_conn_timer(uv_timer_t *t);
static void conn_read(sftq_conn *c, const uint8_t *pkt, size_t len,
                      const sftq_addr *local, const sftq_addr *remote);

/* Hands QUIC the packets the FEC shim has ready, in the order sent. */
static void pf_drain(sftq_conn *c, const sftq_addr *local,
                     const sftq_addr *remote) {
  const uint8_t *p;
  size_t l;
  while (c->st == C_LIVE && sft_pfec_next(c->pf, &p, &l))
    conn_read(c, p, l, local, remote);
}

static void arm_close_timer(sftq_conn *c) {
  uint64_t pto = ngtcp2_conn_get_pto(c->q);
  uint64_t ms = 3 * pto / NGTCP2_MILLISECONDS + 1;
  uv_timer_start(&c->timer, on_conn_timer, ms, 0);
}

static void ep_send_raw(sftq_ep *ep, const sftq_addr *local,
                        const sftq_addr *remote, const uint8_t *buf,
                        size_t len);

/* Server sockets are unconnected (one per many peers): give the address.
 * Client sockets are connected. */
static const sftq_addr *conn_remote(const sftq_conn *c) {
  return c->server ? &c->remote : NULL;
}

static void conn_send_close(sftq_conn *c) {
  if (c->closebuf && !c->ep->blocked)
    ep_send_raw(c->ep, &c->local, conn_remote(c), c->closebuf, c->closelen);
}

/* Writes CONNECTION_CLOSE (once), enters the closing period. */
static void conn_start_closing(sftq_conn *c, const ngtcp2_connection_close_error *e,
                               int reason, uint64_t app) {
  if (c->st != C_LIVE) return;
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi;
  uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
  ngtcp2_ssize n = ngtcp2_conn_write_connection_close(c->q, &ps.path, &pi, buf,
                                                      sizeof buf, e, now_ns());
  if (n <= 0) { /* nothing to say (e.g. no keys yet): just drop */
    conn_kill(c, reason, app);
    return;
  }
  c->closebuf = malloc((size_t)n);
  if (!c->closebuf) {
    conn_kill(c, reason, app);
    return;
  }
  memcpy(c->closebuf, buf, (size_t)n);
  c->closelen = (size_t)n;
  c->st = C_CLOSING;
  c->close_tx_next = 1;
  /* Twice: a peer that loses it waits for its idle timeout or its own
   * deadline (a receiver at the end of a session, up to 10 s), and the
   * closing period below answers only the packets that still come: a
   * sender that closes on its last echo has nothing more coming. */
  conn_send_close(c);
  conn_send_close(c);
  report_closed(c, reason, app);
  arm_close_timer(c);
}

static void conn_start_draining(sftq_conn *c, int reason, uint64_t app) {
  if (c->st != C_LIVE) return;
  c->st = C_DRAINING;
  report_closed(c, reason, app);
  arm_close_timer(c);
}

/* A fatal ngtcp2 error |rv| from read_pkt / handle_expiry / writev. */
static void conn_on_error(sftq_conn *c, int rv) {
  ngtcp2_connection_close_error e;
  ngtcp2_connection_close_error_default(&e);
  switch (rv) {
  case NGTCP2_ERR_DRAINING: {
    ngtcp2_connection_close_error pe;
    ngtcp2_conn_get_connection_close_error(c->q, &pe);
    int reason = SFT_ERR_CLOSED;
    uint64_t app = 0;
    if (pe.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_APPLICATION) {
      app = pe.error_code;
    } else if (pe.type == NGTCP2_CONNECTION_CLOSE_ERROR_CODE_TYPE_TRANSPORT) {
      if ((pe.error_code & ~(uint64_t)0xff) == NGTCP2_CRYPTO_ERROR)
        reason = alert_reason((uint8_t)(pe.error_code & 0xff));
      else if (pe.error_code != NGTCP2_NO_ERROR)
        reason = SFT_ERR_PEER;
    }
    if (c->sreset) reason = SFT_ERR_CLOSED;
    if (c->auth_failed) reason = SFT_ERR_AUTH;
    conn_start_draining(c, reason, app);
    return;
  }
  case NGTCP2_ERR_CRYPTO: {
    uint8_t alert = ngtcp2_conn_get_tls_alert(c->q);
    ngtcp2_connection_close_error_set_transport_error_tls_alert(&e, alert,
                                                                NULL, 0);
    conn_start_closing(c, &e, c->auth_failed ? SFT_ERR_AUTH : alert_reason(alert),
                       0);
    return;
  }
  case NGTCP2_ERR_IDLE_CLOSE:
  case NGTCP2_ERR_HANDSHAKE_TIMEOUT:
    conn_kill(c, SFT_ERR_TIMEOUT, 0);
    return;
  case NGTCP2_ERR_DROP_CONN:
  case NGTCP2_ERR_RETRY:
    conn_kill(c, SFT_ERR_PEER, 0);
    return;
  case NGTCP2_ERR_RECV_VERSION_NEGOTIATION:
  case NGTCP2_ERR_VERSION_NEGOTIATION_FAILURE:
    conn_kill(c, SFT_ERR_VERSION, 0);
    return;
  case NGTCP2_ERR_CLOSING:
    conn_kill(c, SFT_ERR_CLOSED, 0);
    return;
  default:
    ngtcp2_connection_close_error_set_transport_error_liberr(&e, rv, NULL, 0);
    logf_(c->ctx, "conn %p error %s", (void *)c, ngtcp2_strerror(rv));
    conn_start_closing(c, &e, rv == NGTCP2_ERR_NOMEM ? SFT_ERR_NOMEM
                                                    : SFT_ERR_PEER,
                       0);
  }
}

static void arm_timer(sftq_conn *c) {
  if (c->st != C_LIVE) return;
  ngtcp2_tstamp exp = ngtcp2_conn_get_expiry(c->q), now = now_ns();
  if (c->pf) {
    /* rounded up to the next ms (ngtcp2's below is rounded down): a shim
     * deadline has no early allowance, and a 0 ms timer before it would
     * spin until it passes */
    uint64_t fe = sft_pfec_deadline(c->pf);
    if (fe != UINT64_MAX && fe > now)
      fe = now + (fe - now + NGTCP2_MILLISECONDS - 1) / NGTCP2_MILLISECONDS *
                     NGTCP2_MILLISECONDS;
    if (fe < exp)
      exp = fe;
  }
  if (exp == UINT64_MAX) {
    uv_timer_stop(&c->timer);
    return;
  }
  /* Round down: ngtcp2 lets a paced packet go up to 1 ms early
   * (NGTCP2_PKT_PACING_OVERHEAD), so a 0 ms timer is not a busy loop. */
  uint64_t ms = exp > now ? (exp - now) / NGTCP2_MILLISECONDS : 0;
  uv_timer_start(&c->timer, on_conn_timer, ms, 0);
}

static void on_conn_timer(uv_timer_t *t) {
  sftq_conn *c = t->data;
  if (c->st == C_CLOSING || c->st == C_DRAINING) {
    c->st = C_DEAD;
    conn_mark(c);
    return;
  }
  if (c->st != C_LIVE) return;
  uint64_t now = now_ns();
  int rv = ngtcp2_conn_handle_expiry(c->q, now);
  if (rv) conn_on_error(c, rv);
  if (c->pf && c->st == C_LIVE) {
    sft_pfec_tick(c->pf, now); /* held packets whose parity never came */
    pf_drain(c, &c->local, &c->remote);
  }
  conn_mark(c);
}

static void on_timer_closed(uv_handle_t *h) {
  sftq_conn *c = h->data;
  sftq_ctx *ctx = c->ctx;
  free(c);
  ctx->nhandles--;
  if (ctx->freeing && ctx->nhandles == 0) {
    sftq_cidmap_free(&ctx->cids);
    sftq_tls_free(&ctx->tls);
    free(ctx->cert);
    free(ctx->key);
    free(ctx->alpn);
    free(ctx);
  }
}

static sftq_conn *conn_alloc(sftq_ctx *ctx, sftq_ep *ep, bool server) {
  sftq_conn *c = calloc(1, sizeof *c);
  if (c)
    c->kind = SFTQ_KIND_QUIC;
  if (!c) return NULL;
  c->ctx = ctx;
  c->ep = ep;
  c->server = server;
  c->ref.get_conn = get_conn_cb;
  c->ref.user_data = c;
  if (smap_init(&c->streams) != 0) {
    free(c);
    return NULL;
  }
  struct sft_pfec_opts po = {0};
  po.force = ctx->cfg.pfec;
  if (sft_pfec_new(&c->pf, &po) != 0)
    c->pf = NULL; /* FEC off, still works */
  uv_timer_init(ctx->loop, &c->timer);
  c->timer.data = c;
  ctx->nhandles++;
  c->next = ctx->conns;
  if (ctx->conns) ctx->conns->prev = c;
  ctx->conns = c;
  if (server) ctx->nserver++;
  return c;
}

/* Frees everything now except the memory of |c| (freed when its timer
 * handle is closed). Never called from inside ngtcp2. */
static void conn_destroy(sftq_conn *c) {
  sftq_ctx *ctx = c->ctx;
  while (c->ncids) conn_del_cid(c, c->cids[0].data, c->cids[0].datalen);
  if (c->prev) c->prev->next = c->next;
  else ctx->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  if (c->server) ctx->nserver--;
  if (c->in_dirty) { /* unlink from the dirty list */
    sftq_conn **pp = &ctx->dirty;
    while (*pp && *pp != c) pp = &(*pp)->dnext;
    if (*pp) *pp = c->dnext;
    c->in_dirty = false;
  }
  for (size_t i = 0; i < c->streams.cap; i++)
    if (c->streams.tab[i].sid >= 0) stream_free(c, c->streams.tab[i].st);
  free(c->streams.tab);
  grave_free(c);
  if (c->q) ngtcp2_conn_del(c->q);
  if (c->tls) gnutls_deinit(c->tls);
  sft_pfec_del(c->pf);
  c->pf = NULL;
  free(c->closebuf);
  if (!c->server && c->ep) ep_close(c->ep);
  uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

/* ---- writing ----------------------------------------------------------- */

static sftq_stream *next_stream(sftq_conn *c) {
  for (unsigned u = 0; u < 8; u++)
    if (c->qhead[u]) return c->qhead[u];
  return NULL;
}

static size_t stream_vec(sftq_stream *st, ngtcp2_vec *v, bool *all) {
  size_t n = 0;
  txseg *s = st->cur;
  size_t off = st->cur_off;
  while (s && n < MAX_IOV) {
    v[n].base = (uint8_t *)(uintptr_t)(s->base + off);
    v[n].len = s->len - off;
    n++;
    off = 0;
    s = s->next;
  }
  *all = s == NULL;
  return n;
}

static void stream_advance(sftq_conn *c, sftq_stream *st, size_t nd,
                           bool fin_flag, bool all) {
  st->sent += nd;
  c->unsent -= nd;
  c->s.stream_bytes_sent += nd;
  while (nd && st->cur) {
    size_t left = st->cur->len - st->cur_off;
    if (nd < left) {
      st->cur_off += nd;
      nd = 0;
      break;
    }
    nd -= left;
    st->cur = st->cur->next;
    st->cur_off = 0;
  }
  if (fin_flag && all && !st->cur) st->fin_sent = true;
  q_update(c, st);
}

static int ep_send(sftq_ep *ep, const sftq_addr *local, const sftq_addr *remote,
                   const uint8_t *buf, size_t len, size_t seg, sftq_stats *s);

/* Packets declared lost among those carrying stream data (summed over the
 * streams; closed ones kept in lost_closed). */
static uint64_t conn_lost(const sftq_conn *c) {
  uint64_t lost = c->lost_closed;
  for (size_t i = 0; i < c->streams.cap; i++)
    if (c->streams.tab[i].sid >= 0)
      lost += ngtcp2_conn_get_stream_loss_count(c->q, c->streams.tab[i].sid);
  return lost;
}

/* Sends |n| parity datagrams of |seg| bytes from ctx->pfbuf, in GSO
 * batches. 1 if the socket blocked (the rest of that batch is kept). */
static int pf_send_parity(sftq_conn *c, const sftq_addr *remote, size_t seg,
                          size_t n) {
  size_t per = SFTQ_GSO_MAX_BYTES / seg;
  if (per > SFTQ_MAX_GSO_SEGS)
    per = SFTQ_MAX_GSO_SEGS;
  for (size_t i = 0; i < n; i += per) {
    size_t cnt = n - i < per ? n - i : per;
    if (ep_send(c->ep, &c->local, remote, c->ctx->pfbuf + i * seg, cnt * seg,
                seg, &c->s) != 0)
      return 1;
  }
  return 0;
}

/* The FEC shim's due work after a write: feed its policy (every 50 ms),
 * close a block that is due (time, or the shim turned off) and send its
 * parity, then its control datagrams (REPORT, PROBE). */
static void pf_flush(sftq_conn *c, uint64_t ts, const sftq_addr *remote) {
  if (!c->pf || c->ep->blocked)
    return;
  if (ts - c->pf_obs_at >= 50 * NGTCP2_MILLISECONDS) {
    c->pf_obs_at = ts;
    ngtcp2_conn_stat cs;
    ngtcp2_conn_get_conn_stat(c->q, &cs);
    sft_pfec_observe(c->pf, ts, c->s.pkts_sent, conn_lost(c),
                     cs.smoothed_rtt,
                     cs.min_rtt == UINT64_MAX ? 0 : cs.min_rtt);
  }
  size_t seg = 0, n = 0;
  if (sft_pfec_parity(c->pf, ts, c->ctx->pfbuf, sizeof c->ctx->pfbuf, &seg,
                      &n) == 0 &&
      n && pf_send_parity(c, remote, seg, n) != 0)
    return;
  uint8_t ctl[SFT_PFEC_REPORT_LEN];
  for (int i = 0; i < 2; i++) {
    size_t cl = 0;
    if (sft_pfec_control(c->pf, ts, ctl, sizeof ctl, &cl) != 0 || !cl)
      break;
    ep_send_raw(c->ep, &c->local, remote, ctl, cl);
  }
}

static void conn_write(sftq_conn *c) {
  sftq_ctx *ctx = c->ctx;
  fire_connected(c);
  if (c->fire_writable) {
    c->fire_writable = false;
    c->want_writable = false;
    if (ctx->cfg.cb.writable) ctx->cfg.cb.writable(c, ctx->cfg.user_data);
  }
  if (c->st != C_LIVE) return;
  if (c->close_req) {
    ngtcp2_connection_close_error e;
    ngtcp2_connection_close_error_set_application_error(&e, c->close_app, NULL,
                                                        0);
    conn_start_closing(c, &e, SFT_OK, c->close_app);
    return;
  }
  if (c->ep->blocked) return; /* re-marked when the socket drains */

  ngtcp2_tstamp ts = now_ns();
  /* |mtu| is the path's current size (1200 until PMTUD raises it); packets
   * are written into |room| bytes, the configured maximum, because ngtcp2
   * writes a PMTUD probe only when it fits in the buffer it is given (with
   * |mtu| the probes never went out and every packet stayed at 1200 bytes:
   * 7.4 % of the link in headers instead of 6.2 % at 1444). */
  size_t mtu = ngtcp2_conn_get_path_max_tx_udp_payload_size(c->q);
  size_t room = ngtcp2_conn_get_max_tx_udp_payload_size(c->q);
  if (room < mtu) room = mtu;
  /* FEC shim on: each packet is written after room for its DATA header */
  /* (a PARITY is SFT_PFEC_OVERHEAD bytes longer than its block's longest
   * packet, so packets leave that much room under the validated path size;
   * PMTUD probes, which would not fit, wait while the shim is on) */
  bool fec = c->pf && sft_pfec_active(c->pf);
  size_t hdr = fec ? SFT_PFEC_DATA_HDR : 0;
  if (fec) {
    room = mtu > 1200 + SFT_PFEC_OVERHEAD ? mtu - SFT_PFEC_OVERHEAD : 1200;
    if (room > SFT_PFEC_MAX_PKT)
      room = SFT_PFEC_MAX_PKT;
  }
  size_t maxpk = ngtcp2_conn_get_send_quantum(c->q) / mtu;
  if (maxpk > SFTQ_MAX_GSO_SEGS) maxpk = SFTQ_MAX_GSO_SEGS;
  if (maxpk > SFTQ_GSO_MAX_BYTES / mtu) maxpk = SFTQ_GSO_MAX_BYTES / mtu;
  if (maxpk < 1) maxpk = 1;
  const sftq_addr *remote = conn_remote(c);

  uint8_t *buf = ctx->txbuf;
  size_t off = 0, npk = 0, segsz = 0, total = 0;
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_zero(&ps);
  ngtcp2_pkt_info pi;
  /* Parity is traffic the controller does not see: keep the data in
   * flight under cwnd / (1 + m/k) so that data and parity together stay
   * within cwnd. Without this, at 30 % loss the link's drop-tail queue
   * stayed full and dropped 35-73k packets per 100 MiB (against 5-7k with
   * it); a tighter bound (x 1.5) starved BBR's bandwidth estimate instead
   * (docs/internals/pfec.md). */
  double pf_scale = 0;
  if (fec) {
    struct sft_pfec_stats fs;
    sft_pfec_get_stats(c->pf, &fs);
    pf_scale = 1 + fs.ratio;
  }
  for (;;) {
    sftq_stream *st = c->connected || c->early ? next_stream(c) : NULL;
    if (st && pf_scale > 0) {
      ngtcp2_conn_stat cs;
      ngtcp2_conn_get_conn_stat(c->q, &cs);
      if ((double)cs.bytes_in_flight * pf_scale > (double)cs.cwnd)
        st = NULL;
    }
    ngtcp2_vec v[MAX_IOV];
    size_t nv = 0;
    bool all = true;
    uint32_t flags = NGTCP2_WRITE_STREAM_FLAG_MORE;
    int64_t sid = -1;
    if (st) {
      sid = st->sid;
      nv = stream_vec(st, v, &all);
      if (all && st->fin_queued) flags |= NGTCP2_WRITE_STREAM_FLAG_FIN;
    }
    ngtcp2_ssize nd = -1;
    ngtcp2_ssize nw = ngtcp2_conn_writev_stream(
        c->q, &ps.path, &pi, buf + off + hdr, room, &nd, flags, sid, v, nv, ts);
    if (nw < 0) {
      if (nw == NGTCP2_ERR_WRITE_MORE) {
        stream_advance(c, st, (size_t)nd, flags & NGTCP2_WRITE_STREAM_FLAG_FIN,
                       all);
        continue;
      }
      if (nw == NGTCP2_ERR_STREAM_DATA_BLOCKED && st) {
        st->blocked = true;
        q_remove(c, st);
        continue;
      }
      if ((nw == NGTCP2_ERR_STREAM_SHUT_WR ||
           nw == NGTCP2_ERR_STREAM_NOT_FOUND) && st) {
        stream_drop_unsent(c, st);
        continue;
      }
      conn_on_error(c, (int)nw);
      break;
    }
    if (st && nd >= 0)
      stream_advance(c, st, (size_t)nd, flags & NGTCP2_WRITE_STREAM_FLAG_FIN,
                     all);
    if (nw == 0) break;
    size_t n = (size_t)nw;
    c->s.pkts_sent++;
    c->s.bytes_sent += n;
    if (fec && sft_pfec_wrap(c->pf, ts, buf + off, n) == 0) {
      n += hdr;
    } else if (hdr) { /* cannot happen (sizes checked): send it bare */
      memmove(buf + off, buf + off + hdr, n);
    }
    if (npk > 0 && n > segsz) {
      /* Larger than the batch's segment size: send the batch, then start a
       * new one with this packet. */
      if (ep_send(c->ep, &c->local, remote, buf, off, segsz, &c->s) != 0) {
        off = 0; /* kept by ep_block: not to be sent again below */
        break;
      }
      memmove(buf, buf + off, n);
      off = 0;
      npk = 0;
    }
    if (npk == 0) segsz = n;
    off += n;
    npk++;
    total++;
    size_t pseg = 0, np = 0;
    if (fec &&
        sft_pfec_parity(c->pf, ts, ctx->pfbuf, sizeof ctx->pfbuf, &pseg, &np) ==
            0 &&
        np) {
      /* the block closed: its data, then its parity, go out now */
      int rv = ep_send(c->ep, &c->local, remote, buf, off, segsz, &c->s);
      off = 0;
      npk = 0;
      if (rv != 0 || pf_send_parity(c, remote, pseg, np) != 0)
        break;
      if (total >= maxpk)
        break;
      continue;
    }
    if (n < segsz || npk >= maxpk || off + room > SFTQ_GSO_MAX_BYTES) {
      int rv = ep_send(c->ep, &c->local, remote, buf, off, segsz, &c->s);
      off = 0;
      npk = 0;
      if (rv != 0 || total >= maxpk) break;
    }
  }
  if (off) ep_send(c->ep, &c->local, remote, buf, off, segsz, &c->s);
  pf_flush(c, ts, remote);
  if (c->st == C_LIVE) {
    ngtcp2_conn_update_pkt_tx_time(c->q, ts);
    arm_timer(c);
  }
}

static void ep_refused(sftq_ep *ep);

static void conn_mark(sftq_conn *c) {
  if (c->in_dirty) return;
  c->in_dirty = true;
  c->dnext = c->ctx->dirty;
  c->ctx->dirty = c;
}

static void flush(sftq_ctx *ctx) {
  for (int round = 0; round < FLUSH_ROUNDS && ctx->dirty; round++) {
    sftq_conn *list = ctx->dirty;
    ctx->dirty = NULL;
    while (list) {
      sftq_conn *c = list;
      list = c->dnext;
      c->in_dirty = false;
      c->dnext = NULL;
      if (c->st != C_DEAD) conn_write(c);
      /* a send took the refusal (the socket reports it once) */
      if (c->st == C_LIVE && c->ep && c->ep->u.refused)
        ep_refused(c->ep);
      if (c->st == C_DEAD) {
        /* Remove the rest of the snapshot? It is still linked via |list|. */
        conn_destroy(c);
      } else {
        grave_free(c);
      }
    }
  }
  /* Still dirty (callbacks keep re-marking): retry on the next iteration. */
  for (sftq_conn *c = ctx->dirty; c; c = c->dnext)
    uv_timer_start(&c->timer, on_conn_timer, 0, 0);
}

static void on_prepare(uv_prepare_t *h) { flush(h->data); }
static void on_check(uv_check_t *h) { flush(h->data); }

/* ---- endpoints ------------------------------------------------------------ */

static void on_poll(uv_poll_t *h, int status, int events);

static void ep_block(sftq_ep *ep, const sftq_addr *local,
                     const sftq_addr *remote, const uint8_t *buf, size_t len,
                     size_t seg) {
  ep->pend = malloc(len);
  if (!ep->pend) return; /* dropped: QUIC retransmits */
  memcpy(ep->pend, buf, len);
  ep->pendlen = len;
  ep->pendseg = seg;
  ep->pend_local = *local;
  ep->pend_has_remote = remote != NULL;
  if (remote) ep->pend_remote = *remote;
  ep->blocked = true;
  uv_poll_start(&ep->poll, UV_READABLE | UV_WRITABLE, on_poll);
}

static int ep_send(sftq_ep *ep, const sftq_addr *local, const sftq_addr *remote,
                   const uint8_t *buf, size_t len, size_t seg, sftq_stats *s) {
  size_t sent = 0;
  uint64_t calls = 0;
  int rv = sftq_udp_send(&ep->u, local, remote, buf, len, seg, &sent, &calls);
  if (s && len > seg && ep->u.gso) s->gso_batches++;
  if (rv == SFT_ERR_AGAIN) {
    ep_block(ep, local, remote, buf + sent, len - sent, seg);
    return 1;
  }
  return 0; /* hard errors: the datagrams are lost, QUIC recovers */
}

static void ep_send_raw(sftq_ep *ep, const sftq_addr *local,
                        const sftq_addr *remote, const uint8_t *buf,
                        size_t len) {
  if (ep->blocked) return;
  size_t sent = 0;
  uint64_t calls = 0;
  (void)sftq_udp_send(&ep->u, local, remote, buf, len, len, &sent, &calls);
}

static bool ratelimit_ok(sftq_ctx *ctx) {
  uint64_t now = now_ns();
  ctx->rl_tokens += (double)(now - ctx->rl_ts) * RESET_RATE / 1e9;
  if (ctx->rl_tokens > RESET_RATE) ctx->rl_tokens = RESET_RATE;
  ctx->rl_ts = now;
  if (ctx->rl_tokens < 1) return false;
  ctx->rl_tokens -= 1;
  return true;
}

static void send_version_negotiation(sftq_ep *ep, const ngtcp2_version_cid *vc,
                                     const sftq_addr *local,
                                     const sftq_addr *remote) {
  if (!ratelimit_ok(ep->ctx)) return;
  uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE], r;
  uint32_t sv[2] = {0x1a2a3a4au, NGTCP2_PROTO_VER_V1}; /* grease + v1 */
  (void)gnutls_rnd(GNUTLS_RND_NONCE, &r, 1);
  ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(
      buf, sizeof buf, r, vc->scid, vc->scidlen, vc->dcid, vc->dcidlen, sv, 2);
  if (n > 0) ep_send_raw(ep, local, remote, buf, (size_t)n);
}

static void send_stateless_reset(sftq_ep *ep, const ngtcp2_version_cid *vc,
                                 size_t pktlen, const sftq_addr *local,
                                 const sftq_addr *remote) {
  /* Only for our CID format; always smaller than the trigger (no loops). */
  if (vc->dcidlen != SFTQ_CIDLEN) return;
  size_t len = pktlen > 43 ? 43 : pktlen - 1;
  if (len < 1 + NGTCP2_MIN_STATELESS_RESET_RANDLEN +
                NGTCP2_STATELESS_RESET_TOKENLEN)
    return;
  if (!ratelimit_ok(ep->ctx)) return;
  uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN], rnd[64], buf[64];
  if (reset_token(ep->ctx, vc->dcid, vc->dcidlen, token) != 0) return;
  size_t rl = len - NGTCP2_STATELESS_RESET_TOKENLEN;
  (void)gnutls_rnd(GNUTLS_RND_NONCE, rnd, rl);
  ngtcp2_ssize n =
      ngtcp2_pkt_write_stateless_reset(buf, len, token, rnd, rl);
  logf_(ep->ctx, "stateless reset (%zd bytes) for a %zu-byte packet", n, pktlen);
  if (n > 0) ep_send_raw(ep, local, remote, buf, (size_t)n);
}

static void send_retry(sftq_ep *ep, const ngtcp2_pkt_hd *hd, size_t pktlen,
                       const sftq_addr *local, const sftq_addr *remote) {
  ngtcp2_cid scid;
  scid.datalen = SFTQ_CIDLEN;
  if (gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen) < 0) return;
  uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
  ngtcp2_ssize tl = ngtcp2_crypto_generate_retry_token(
      token, ep->ctx->secret, sizeof ep->ctx->secret, hd->version,
      (const ngtcp2_sockaddr *)&remote->ss, remote->len, &scid, &hd->dcid,
      now_ns());
  if (tl < 0) return;
  uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
  size_t cap = pktlen * 3 < sizeof buf ? pktlen * 3 : sizeof buf;
  ngtcp2_ssize n = ngtcp2_crypto_write_retry(buf, cap, hd->version, &hd->scid,
                                             &scid, &hd->dcid, token,
                                             (size_t)tl);
  if (n > 0) ep_send_raw(ep, local, remote, buf, (size_t)n);
}

static void send_invalid_token_close(sftq_ep *ep, const ngtcp2_pkt_hd *hd,
                                     const sftq_addr *local,
                                     const sftq_addr *remote) {
  uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
  ngtcp2_ssize n = ngtcp2_crypto_write_connection_close(
      buf, sizeof buf, hd->version, &hd->scid, &hd->dcid,
      NGTCP2_INVALID_TOKEN, NULL, 0);
  if (n > 0) ep_send_raw(ep, local, remote, buf, (size_t)n);
}

static void conn_read(sftq_conn *c, const uint8_t *pkt, size_t len,
                      const sftq_addr *local, const sftq_addr *remote) {
  if (c->st == C_CLOSING) {
    /* Answer with the same CONNECTION_CLOSE, backing off exponentially. */
    if (++c->close_rx >= c->close_tx_next) {
      c->close_tx_next *= 2;
      conn_send_close(c);
    }
    return;
  }
  if (c->st != C_LIVE) return;
  ngtcp2_path path = {{(ngtcp2_sockaddr *)(uintptr_t)&local->ss, local->len},
                      {(ngtcp2_sockaddr *)(uintptr_t)&remote->ss, remote->len},
                      NULL};
  ngtcp2_pkt_info pi = {0};
  c->s.pkts_recv++;
  c->s.bytes_recv += len;
  int rv = ngtcp2_conn_read_pkt(c->q, &path, &pi, pkt, len, now_ns());
  if (rv) {
    conn_on_error(c, rv);
  } else {
    /* Track the current path (migration / NAT rebinding). */
    const ngtcp2_path *cp = ngtcp2_conn_get_path(c->q);
    if (cp->remote.addrlen <= sizeof c->remote.ss) {
      memcpy(&c->remote.ss, cp->remote.addr, cp->remote.addrlen);
      c->remote.len = cp->remote.addrlen;
    }
    if (cp->local.addrlen <= sizeof c->local.ss) {
      memcpy(&c->local.ss, cp->local.addr, cp->local.addrlen);
      c->local.len = cp->local.addrlen;
    }
  }
  conn_mark(c);
}

/* Server connections whose handshake is in progress (the Retry load). */
static uint32_t handshakes(const sftq_ctx *ctx) {
  uint32_t n = 0;
  for (const sftq_conn *c = ctx->conns; c; c = c->next)
    if (c->server && !c->connected && c->st == C_LIVE) n++;
  return n;
}

static void server_accept(sftq_ep *ep, const uint8_t *pkt, size_t len,
                          const sftq_addr *local, const sftq_addr *remote) {
  sftq_ctx *ctx = ep->ctx;
  ngtcp2_pkt_hd hd;
  int rv = ngtcp2_accept(&hd, pkt, len);
  if (rv == NGTCP2_ERR_RETRY) {
    send_retry(ep, &hd, len, local, remote);
    return;
  }
  if (rv != 0) return;
  if (ctx->nserver >= ctx->cfg.max_conns) return;
  ngtcp2_cid ocid;
  bool have_ocid = false;
  bool token = hd.token.len > 0 &&
               hd.token.base[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY;
  if (ep->retry != RETRY_NEVER && !token &&
      (ep->retry == RETRY_ALWAYS || handshakes(ctx) >= ctx->cfg.retry_load)) {
    send_retry(ep, &hd, len, local, remote);
    return;
  }
  if (ep->retry != RETRY_NEVER && token) {
    if (ngtcp2_crypto_verify_retry_token(
            &ocid, hd.token.base, hd.token.len, ctx->secret,
            sizeof ctx->secret, hd.version,
            (const ngtcp2_sockaddr *)&remote->ss, remote->len, &hd.dcid,
            RETRY_TOKEN_TIMEOUT, now_ns()) != 0) {
      send_invalid_token_close(ep, &hd, local, remote);
      return;
    }
    have_ocid = true;
  } else {
    hd.token.base = NULL;
    hd.token.len = 0;
  }

  sftq_conn *c = conn_alloc(ctx, ep, true);
  if (!c) return;
  c->local = *local;
  c->remote = *remote;
  ngtcp2_cid scid;
  scid.datalen = SFTQ_CIDLEN;
  if (gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen) < 0) goto fail;
  ngtcp2_settings s;
  ngtcp2_transport_params p;
  make_settings(ctx, &s, &p);
  s.token = hd.token;
  p.original_dcid = have_ocid ? ocid : hd.dcid;
  if (have_ocid) {
    p.retry_scid_present = 1;
    p.retry_scid = hd.dcid;
  }
  p.stateless_reset_token_present = 1;
  if (reset_token(ctx, scid.data, scid.datalen, p.stateless_reset_token) != 0)
    goto fail;
  ngtcp2_callbacks cb;
  make_callbacks(&cb, true);
  ngtcp2_path path = {{(ngtcp2_sockaddr *)&c->local.ss, c->local.len},
                      {(ngtcp2_sockaddr *)&c->remote.ss, c->remote.len},
                      NULL};
  if (ngtcp2_conn_server_new(&c->q, &hd.scid, &scid, &path, hd.version, &cb,
                             &s, &p, NULL, c) != 0)
    goto fail;
  if (sftq_tls_session(&ctx->tls, &c->tls, true, &c->ref) != 0) goto fail;
  ngtcp2_conn_set_tls_native_handle(c->q, c->tls);
  if (ctx->cfg.keepalive_ms != UINT32_MAX)
    ngtcp2_conn_set_keep_alive_timeout(c->q, ctx->cfg.keepalive_ms *
                                                 NGTCP2_MILLISECONDS);
  if (conn_add_cid(c, scid.data, scid.datalen) != 0 ||
      conn_add_cid(c, hd.dcid.data, hd.dcid.datalen) != 0)
    goto fail;
  logf_(ctx, "accepted conn %p", (void *)c);
  conn_read(c, pkt, len, local, remote);
  return;
fail:
  c->reported = true; /* never visible to the application */
  c->st = C_DEAD;
  conn_destroy(c);
}

static bool addr_eq(const sftq_addr *a, const sftq_addr *b) {
  const struct sockaddr *x = (const struct sockaddr *)&a->ss;
  const struct sockaddr *y = (const struct sockaddr *)&b->ss;
  if (x->sa_family != y->sa_family)
    return false;
  if (x->sa_family == AF_INET) {
    const struct sockaddr_in *p = (const void *)x, *q = (const void *)y;
    return p->sin_port == q->sin_port &&
           p->sin_addr.s_addr == q->sin_addr.s_addr;
  }
  if (x->sa_family == AF_INET6) {
    const struct sockaddr_in6 *p = (const void *)x, *q = (const void *)y;
    return p->sin6_port == q->sin6_port &&
           !memcmp(&p->sin6_addr, &q->sin6_addr, sizeof p->sin6_addr);
  }
  return false;
}

/* A datagram of the packet-FEC shim: DATA finds its connection by the
 * wrapped packet's CID, PARITY/REPORT/PROBE by the sender's address. Never
 * creates a connection. */
static void ep_shim(sftq_ep *ep, const uint8_t *pkt, size_t len,
                    const sftq_addr *local, const sftq_addr *remote) {
  sftq_ctx *ctx = ep->ctx;
  sftq_conn *c = NULL;
  ngtcp2_version_cid vc;
  if (pkt[0] == SFT_PFEC_T_DATA && len > SFT_PFEC_DATA_HDR &&
      ngtcp2_pkt_decode_version_cid(&vc, pkt + SFT_PFEC_DATA_HDR,
                                    len - SFT_PFEC_DATA_HDR, SFTQ_CIDLEN) == 0)
    c = sftq_cidmap_get(&ctx->cids, vc.dcid, vc.dcidlen);
  if (!c)
    for (sftq_conn *x = ctx->conns; x && !c; x = x->next)
      if (x->ep == ep && x->st == C_LIVE && addr_eq(&x->remote, remote))
        c = x;
  if (pkt[0] == SFT_PFEC_T_DATA && len > SFT_PFEC_DATA_HDR) {
    const uint8_t *in = pkt + SFT_PFEC_DATA_HDR;
    size_t inlen = len - SFT_PFEC_DATA_HDR;
    if (c && c->ep == ep && c->st == C_CLOSING) {
      conn_read(c, in, inlen, local, remote); /* answers with the close */
      return;
    }
    if (!c && !(in[0] & 0x80) &&
        ngtcp2_pkt_decode_version_cid(&vc, in, inlen, SFTQ_CIDLEN) == 0) {
      send_stateless_reset(ep, &vc, inlen, local, remote); /* gone */
      return;
    }
  }
  /* Nothing from the shim before the handshake has completed (and the
   * peer is authenticated): it would cost memory and CPU for anyone. */
  if (!c || c->ep != ep || !c->pf || c->st != C_LIVE || !c->connected)
    return;
  sft_pfec_input(c->pf, now_ns(), pkt, len);
  pf_drain(c, local, remote);
  conn_mark(c); /* a REPORT may be due */
}

static void ep_datagram(sftq_ep *ep, const uint8_t *pkt, size_t len,
                        const sftq_addr *local, const sftq_addr *remote) {
  sftq_ctx *ctx = ep->ctx;
  if (sft_pfec_is_shim(pkt, len)) {
    ep_shim(ep, pkt, len, local, remote);
    return;
  }
  ngtcp2_version_cid vc;
  int rv = ngtcp2_pkt_decode_version_cid(&vc, pkt, len, SFTQ_CIDLEN);
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    if (ep->listening) send_version_negotiation(ep, &vc, local, remote);
    return;
  }
  if (rv != 0) {
    logf_(ctx, "undecodable datagram (%zu bytes): %s", len, ngtcp2_strerror(rv));
    return;
  }
  sftq_conn *c = sftq_cidmap_get(&ctx->cids, vc.dcid, vc.dcidlen);
  if (c) {
    if (c->ep == ep) conn_read(c, pkt, len, local, remote);
    return;
  }
  if (pkt[0] & 0x80) { /* long header */
    if (ep->listening && !ctx->freeing) server_accept(ep, pkt, len, local, remote);
    return;
  }
  send_stateless_reset(ep, &vc, len, local, remote);
}

static void ep_flush_pending(sftq_ep *ep) {
  uint8_t *d = ep->pend;
  size_t len = ep->pendlen;
  ep->pend = NULL;
  ep->blocked = false;
  int rv = ep_send(ep, &ep->pend_local,
                   ep->pend_has_remote ? &ep->pend_remote : NULL, d, len,
                   ep->pendseg, NULL);
  free(d);
  if (rv == 0) {
    uv_poll_start(&ep->poll, UV_READABLE, on_poll);
    for (sftq_conn *c = ep->ctx->conns; c; c = c->next)
      if (c->ep == ep) conn_mark(c);
  }
}

/* The peer of client endpoint |ep| refused a datagram (ICMP port
 * unreachable: nothing listens on that port). A connection whose handshake
 * is not complete fails at once with SFT_ERR_REFUSED instead of waiting
 * for its handshake timeout (10 s). After the handshake the refusal is
 * ignored, as QUIC says (RFC 9000 s. 14.2: ICMP is unauthenticated); the
 * idle timeout or the application notices a peer that is gone. */
static void ep_refused(sftq_ep *ep) {
  ep->u.refused = false;
  for (sftq_conn *c = ep->ctx->conns; c; c = c->next)
    if (c->ep == ep && !c->server && c->st == C_LIVE && !c->connected &&
        !c->early)
      conn_kill(c, SFT_ERR_REFUSED, 0);
}

static void on_poll(uv_poll_t *h, int status, int events) {
  sftq_ep *ep = h->data;
  sftq_ctx *ctx = ep->ctx;
  if (ep->closing)
    return;
  if (status < 0) {
    /* libuv stops a poll handle that reports POLLERR and says UV_EBADF: an
     * ICMP error on a connected socket (a client's). Without a restart the
     * endpoint went deaf: the connection lived on until its idle timeout
     * and its handshake until the handshake timeout. Take the error (a
     * refusal fails a handshake, ep_refused), poll again and read. */
    sftq_udp_take_error(&ep->u);
    uv_poll_start(&ep->poll,
                  ep->blocked ? UV_READABLE | UV_WRITABLE : UV_READABLE,
                  on_poll);
    events = UV_READABLE;
  }
  if ((events & UV_WRITABLE) && ep->blocked) ep_flush_pending(ep);
  if (events & UV_READABLE) {
    for (int i = 0; i < 64 && !ep->closing; i++) {
      sftq_addr local, remote;
      size_t seg = 0;
      int n = sftq_udp_recv(&ep->u, ctx->rxbuf, sizeof ctx->rxbuf, &seg, &local,
                            &remote);
      if (n <= 0)
        break;
      for (size_t o = 0; o < (size_t)n; o += seg) {
        size_t l = (size_t)n - o < seg ? (size_t)n - o : seg;
        ep_datagram(ep, ctx->rxbuf + o, l, &local, &remote);
      }
    }
  }
  if (ep->u.refused && !ep->closing)
    ep_refused(ep);
}

static void on_ep_closed(uv_handle_t *h) {
  sftq_ep *ep = h->data;
  sftq_ctx *ctx = ep->ctx;
  sftq_udp_close(&ep->u);
  free(ep->pend);
  free(ep);
  ctx->nhandles--;
  if (ctx->freeing && ctx->nhandles == 0) {
    sftq_cidmap_free(&ctx->cids);
    sftq_tls_free(&ctx->tls);
    free(ctx->cert);
    free(ctx->key);
    free(ctx->alpn);
    free(ctx);
  }
}

static void ep_close(sftq_ep *ep) {
  if (ep->closing) return;
  ep->closing = true;
  sftq_ep **pp = &ep->ctx->eps;
  while (*pp && *pp != ep) pp = &(*pp)->next;
  if (*pp) *pp = ep->next;
  uv_close((uv_handle_t *)&ep->poll, on_ep_closed);
}

static int ep_open(sftq_ctx *ctx, const struct sockaddr *bind_addr,
                   socklen_t bind_len, const struct sockaddr *peer,
                   socklen_t peer_len, sftq_ep **out) {
  sftq_ep *ep = calloc(1, sizeof *ep);
  if (!ep) return SFT_ERR_NOMEM;
  ep->ctx = ctx;
  int rv = sftq_udp_open(&ep->u, bind_addr, bind_len, peer, peer_len,
                         ctx->cfg.sockbuf, ctx->cfg.no_gso, ctx->cfg.no_gro);
  if (rv) {
    free(ep);
    return rv;
  }
  if (uv_poll_init_socket(ctx->loop, &ep->poll, ep->u.fd) != 0) {
    sftq_udp_close(&ep->u);
    free(ep);
    return SFT_ERR_IO;
  }
  ep->poll.data = ep;
  ctx->nhandles++;
  uv_poll_start(&ep->poll, UV_READABLE, on_poll);
  ep->next = ctx->eps;
  ctx->eps = ep;
  *out = ep;
  return 0;
}



/* ---- public API ------------------------------------------------------------ */

int sftq_cc_parse(const char *name, enum sftq_cc *out) {
  static const char *const names[] = {"bbr2", "bbr", "cubic", "reno"};
  for (int i = 0; name && i < 4; i++)
    if (strcmp(name, names[i]) == 0) {
      *out = (enum sftq_cc)i;
      return 0;
    }
  return SFT_ERR_INVAL;
}

const char *sftq_cc_name(enum sftq_cc cc) {
  static const char *const names[] = {"bbr2", "bbr", "cubic", "reno"};
  return (unsigned)cc < 4 ? names[cc] : "?";
}

int sftq_ctx_new(sftq_ctx **out, uv_loop_t *loop, const sftq_config *cfg) {
  *out = NULL;
  if (!loop || !cfg || !cfg->cert_path || !cfg->key_path ||
      (unsigned)cfg->cc > SFTQ_CC_RENO)
    return SFT_ERR_INVAL;
  sftq_ctx *ctx = calloc(1, sizeof *ctx);
  if (!ctx) return SFT_ERR_NOMEM;
  ctx->loop = loop;
  ctx->cfg = *cfg;
  sftq_config *c = &ctx->cfg;
  if (!c->idle_timeout_ms) c->idle_timeout_ms = 30000;
  if (!c->keepalive_ms) c->keepalive_ms = c->idle_timeout_ms / 3;
  if (!c->handshake_timeout_ms) c->handshake_timeout_ms = 10000;
  if (!c->retry_load) c->retry_load = SFTQ_RETRY_LOAD;
  if (!c->max_window) c->max_window = 64u << 20;
  if (!c->max_stream_window) c->max_stream_window = 64u << 20;
  if (!c->initial_max_data) c->initial_max_data = 16u << 20;
  if (!c->initial_max_stream_data) c->initial_max_stream_data = 2u << 20;
  if (!c->max_streams_uni) c->max_streams_uni = 1024;
  if (!c->max_streams_bidi) c->max_streams_bidi = 16;
  if (!c->max_conns) c->max_conns = 1024;
  if (!c->sockbuf) c->sockbuf = 8u << 20;
  if (!c->copy_limit) c->copy_limit = 4u << 20;
  int rv = SFT_ERR_NOMEM;
  ctx->cert = strdup(cfg->cert_path);
  ctx->key = strdup(cfg->key_path);
  ctx->alpn = strdup(cfg->alpn ? cfg->alpn : SFTQ_ALPN);
  if (!ctx->cert || !ctx->key || !ctx->alpn) goto fail;
  c->cert_path = ctx->cert;
  c->key_path = ctx->key;
  c->alpn = ctx->alpn;
  uint64_t seed;
  if (gnutls_rnd(GNUTLS_RND_RANDOM, ctx->secret, sizeof ctx->secret) < 0 ||
      gnutls_rnd(GNUTLS_RND_RANDOM, &seed, sizeof seed) < 0) {
    rv = SFT_ERR_IO;
    goto fail;
  }
  derive_secret(ctx);
  if ((rv = sftq_cidmap_init(&ctx->cids, seed)) != 0) goto fail;
  if ((rv = sftq_tls_init(&ctx->tls, ctx->cert, ctx->key, ctx->alpn)) != 0)
    goto fail_map;
  ctx->rl_tokens = RESET_RATE;
  ctx->rl_ts = now_ns();
  uv_prepare_init(loop, &ctx->prep);
  uv_check_init(loop, &ctx->check);
  ctx->prep.data = ctx->check.data = ctx;
  uv_prepare_start(&ctx->prep, on_prepare);
  uv_check_start(&ctx->check, on_check);
  uv_unref((uv_handle_t *)&ctx->prep); /* they must not keep the loop alive */
  uv_unref((uv_handle_t *)&ctx->check);
  ctx->nhandles = 2;
  *out = ctx;
  return 0;
fail_map:
  sftq_cidmap_free(&ctx->cids);
fail:
  free(ctx->cert);
  free(ctx->key);
  free(ctx->alpn);
  free(ctx);
  return rv;
}

static void on_ctx_handle_closed(uv_handle_t *h) {
  sftq_ctx *ctx = h->data;
  ctx->nhandles--;
  if (ctx->nhandles == 0) {
    sftq_cidmap_free(&ctx->cids);
    sftq_tls_free(&ctx->tls);
    free(ctx->cert);
    free(ctx->key);
    free(ctx->alpn);
    free(ctx);
  }
}

void sftq_ctx_free(sftq_ctx *ctx) {
  if (!ctx || ctx->freeing) return;
  ctx->freeing = true;
  while (ctx->conns) {
    sftq_conn *c = ctx->conns;
    if (c->st == C_LIVE && c->q && !c->reported) {
      ngtcp2_connection_close_error e;
      ngtcp2_connection_close_error_set_application_error(&e, 0, NULL, 0);
      ngtcp2_path_storage ps;
      ngtcp2_path_storage_zero(&ps);
      ngtcp2_pkt_info pi;
      uint8_t buf[NGTCP2_MAX_UDP_PAYLOAD_SIZE];
      ngtcp2_ssize n = ngtcp2_conn_write_connection_close(
          c->q, &ps.path, &pi, buf, sizeof buf, &e, now_ns());
      if (n > 0)
        ep_send_raw(c->ep, &c->local, conn_remote(c), buf, (size_t)n);
    }
    report_closed(c, SFT_ERR_CANCELLED, 0);
    c->st = C_DEAD;
    conn_destroy(c);
  }
  while (ctx->eps) ep_close(ctx->eps);
  uv_prepare_stop(&ctx->prep);
  uv_check_stop(&ctx->check);
  uv_close((uv_handle_t *)&ctx->prep, on_ctx_handle_closed);
  uv_close((uv_handle_t *)&ctx->check, on_ctx_handle_closed);
}

int sftq_listen(sftq_ctx *ctx, const char *addr, uint16_t port,
                uint16_t *bound_port) {
  if (!ctx || ctx->freeing) return SFT_ERR_STATE;
  struct sockaddr_storage ss;
  socklen_t len;
  int rv = sftd_addr_parse(addr, port, &ss, &len);
  if (rv) return rv;
  sftq_ep *ep;
  if ((rv = ep_open(ctx, (struct sockaddr *)&ss, len, NULL, 0, &ep)) != 0)
    return rv;
  ep->listening = true;
  /* Retry costs every client a round trip (and on a lossy link one more
   * flight that can be lost), so by default it is asked for only while
   * many handshakes are in progress: the state that spoofed Initials could
   * exhaust. ngtcp2's 3x amplification limit holds either way. */
  int r = ctx->cfg.retry;
  ep->retry = r == 1   ? RETRY_ALWAYS
              : r == 3 ? RETRY_LOAD
              : r == 2 ? RETRY_NEVER
              : sftq_addr_is_loopback((struct sockaddr *)&ss) ? RETRY_NEVER
                                                               : RETRY_LOAD;
  if (bound_port) {
    const struct sockaddr *la = (const struct sockaddr *)&ep->u.local.ss;
    *bound_port = ntohs(la->sa_family == AF_INET
                            ? ((const struct sockaddr_in *)la)->sin_port
                            : ((const struct sockaddr_in6 *)la)->sin6_port);
  }
  return 0;
}

int sftq_connect(sftq_ctx *ctx, const char *host, uint16_t port,
                 void *conn_user, sftq_conn **out) {
  return sftq_connect_via(ctx, NULL, host, port, conn_user, out);
}

int sftq_connect_via(sftq_ctx *ctx, const char *local, const char *host,
                     uint16_t port, void *conn_user, sftq_conn **out) {
  if (!out) return SFT_ERR_INVAL;
  *out = NULL;
  if (!ctx) return SFT_ERR_INVAL;
  if (ctx->freeing) return SFT_ERR_STATE;
  struct sockaddr_storage peer, src;
  socklen_t plen, slen;
  int rv = sftd_addr_parse(host, port, &peer, &plen);
  if (rv) return rv;
  if (local && local[0]) {
    /* Bind the given source address (port 0: ephemeral); the kernel then
     * routes from it and getsockname() below reports it. */
    if ((rv = sftd_addr_parse_local(local, &src, &slen)) != 0) return rv;
    if (src.ss_family != peer.ss_family) return SFT_ERR_INVAL;
  } else {
    memset(&src, 0, sizeof src);
    src.ss_family = peer.ss_family;
    slen = plen;
  }
  sftq_ep *ep;
  if ((rv = ep_open(ctx, (struct sockaddr *)&src, slen, (struct sockaddr *)&peer,
                    plen, &ep)) != 0)
    return rv;
  sftq_conn *c = conn_alloc(ctx, ep, false);
  if (!c) {
    ep_close(ep);
    return SFT_ERR_NOMEM;
  }
  c->user = conn_user;
  c->local = ep->u.local;
  memcpy(&c->remote.ss, &peer, plen);
  c->remote.len = plen;
  ngtcp2_cid dcid, scid;
  dcid.datalen = scid.datalen = SFTQ_CIDLEN;
  rv = SFT_ERR_IO;
  if (gnutls_rnd(GNUTLS_RND_RANDOM, dcid.data, dcid.datalen) < 0 ||
      gnutls_rnd(GNUTLS_RND_RANDOM, scid.data, scid.datalen) < 0)
    goto fail;
  ngtcp2_settings s;
  ngtcp2_transport_params p;
  make_settings(ctx, &s, &p);
  ngtcp2_callbacks cb;
  make_callbacks(&cb, false);
  ngtcp2_path path = {{(ngtcp2_sockaddr *)&c->local.ss, c->local.len},
                      {(ngtcp2_sockaddr *)&c->remote.ss, c->remote.len},
                      NULL};
  rv = SFT_ERR_NOMEM;
  if (ngtcp2_conn_client_new(&c->q, &dcid, &scid, &path, NGTCP2_PROTO_VER_V1,
                             &cb, &s, &p, NULL, c) != 0)
    goto fail;
  if ((rv = sftq_tls_session(&ctx->tls, &c->tls, false, &c->ref)) != 0)
    goto fail;
  ngtcp2_conn_set_tls_native_handle(c->q, c->tls);
  if (ctx->cfg.keepalive_ms != UINT32_MAX)
    ngtcp2_conn_set_keep_alive_timeout(c->q, ctx->cfg.keepalive_ms *
                                                 NGTCP2_MILLISECONDS);
  if ((rv = conn_add_cid(c, scid.data, scid.datalen)) != 0) goto fail;
  conn_mark(c);
  *out = c;
  return 0;
fail:
  c->reported = true;
  c->st = C_DEAD;
  conn_destroy(c); /* closes ep too */
  return rv;
}

void *sftq_conn_user(const sftq_conn *c) { return c->user; }
void sftq_conn_set_user(sftq_conn *c, void *user) { c->user = user; }
int sftq_conn_is_server(const sftq_conn *c) { return c->server; }

int sftq_conn_peer_fp(const sftq_conn *c, uint8_t fp[SFTQ_FP_LEN]) {
  if (!c->fp_known) return SFT_ERR_STATE;
  memcpy(fp, c->peer_fp, SFTQ_FP_LEN);
  return 0;
}

int sftq_conn_peer_addr(const sftq_conn *c, struct sockaddr_storage *sa,
                        socklen_t *salen) {
  memcpy(sa, &c->remote.ss, sizeof c->remote.ss);
  *salen = c->remote.len;
  return 0;
}

void sftq_conn_close(sftq_conn *c, uint64_t app_error) {
  if (c->close_req || c->st != C_LIVE) return;
  c->close_req = true;
  c->close_app = app_error;
  conn_mark(c);
}

int sftq_conn_stats(sftq_conn *c, sftq_stats *out) {
  *out = c->s;
  if (!c->q) return SFT_ERR_STATE;
  ngtcp2_conn_stat cs;
  ngtcp2_conn_get_conn_stat(c->q, &cs);
  out->srtt_ns = cs.smoothed_rtt;
  out->min_rtt_ns = cs.min_rtt == UINT64_MAX ? 0 : cs.min_rtt;
  out->rttvar_ns = cs.rttvar;
  out->latest_rtt_ns = cs.latest_rtt;
  out->cwnd = cs.cwnd;
  out->bytes_in_flight = cs.bytes_in_flight;
  out->delivery_rate = cs.delivery_rate_sec;
  out->pacing_rate = cs.pacing_rate;
  out->pto_count = cs.pto_count;
  out->max_udp_payload = ngtcp2_conn_get_path_max_tx_udp_payload_size(c->q);
  out->pkts_lost = conn_lost(c);
  if (c->pf) {
    struct sft_pfec_stats fs;
    sft_pfec_get_stats(c->pf, &fs);
    out->fec_active = fs.active;
    out->fec_loss = fs.loss;
    out->fec_parity_sent = fs.parity_sent;
    out->fec_recovered = fs.recovered;
    out->fec_blocks_failed = fs.blocks_failed;
  }
  return 0;
}

/* Socket buffers sized for the bandwidth-delay product: twice the bytes
 * one smoothed RTT carries at the higher of the send delivery rate and the
 * receive rate since the last call, in 1 MiB steps, never below the
 * configured size and never above SFTQ_SOCKBUF_MAX; buffers only grow.
 * A server connection's socket is the shared listening one. */
int sftq_conn_tune_buffers(sftq_conn *c, uint64_t now, uint64_t *bufsize) {
  if (!c || !c->q || !c->ep) return SFT_ERR_STATE;
  ngtcp2_conn_stat cs;
  ngtcp2_conn_get_conn_stat(c->q, &cs);
  uint64_t rx = 0;
  if (c->tune_at && now > c->tune_at && c->s.bytes_recv >= c->tune_rx)
    rx = (uint64_t)((double)(c->s.bytes_recv - c->tune_rx) * 1e9 /
                    (double)(now - c->tune_at));
  c->tune_at = now;
  c->tune_rx = c->s.bytes_recv;
  uint64_t rate = cs.delivery_rate_sec > rx ? cs.delivery_rate_sec : rx;
  /* No stream data yet: the rate is that of the handshake and the PMTUD
   * probes, which says nothing about the path's bandwidth. */
  if (!c->s.stream_bytes_sent && !c->s.stream_bytes_recv) rate = 0;
  double bdp = (double)rate * (double)cs.smoothed_rtt / 1e9;
  uint64_t want = bdp * 2 > (double)SFTQ_SOCKBUF_MAX ? SFTQ_SOCKBUF_MAX
                                                      : (uint64_t)(bdp * 2);
  /* SFTQ_SOCKBUF_MAX is a MiB multiple: rounding up stays within it */
  want = (want + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
  sftq_udp *u = &c->ep->u;
  if (want > u->bufsize) sftq_udp_set_bufs(u, (uint32_t)want);
  if (bufsize) *bufsize = u->bufsize;
  return 0;
}

static int open_stream(sftq_conn *c, int64_t *sid, bool bidi) {
  if (c->st != C_LIVE || c->close_req || !(c->connected || c->early))
    return SFT_ERR_STATE;
  int rv = bidi ? ngtcp2_conn_open_bidi_stream(c->q, sid, NULL)
                : ngtcp2_conn_open_uni_stream(c->q, sid, NULL);
  if (rv == NGTCP2_ERR_STREAM_ID_BLOCKED) {
    c->want_writable = true;
    return SFT_ERR_AGAIN;
  }
  if (rv) return SFT_ERR_NOMEM;
  if (!stream_new(c, *sid, true)) {
    ngtcp2_conn_shutdown_stream(c->q, *sid, 0);
    return SFT_ERR_NOMEM;
  }
  return 0;
}

int sftq_stream_open_bidi(sftq_conn *c, int64_t *sid) {
  return open_stream(c, sid, true);
}
int sftq_stream_open_uni(sftq_conn *c, int64_t *sid) {
  return open_stream(c, sid, false);
}

int sftq_stream_write(sftq_conn *c, int64_t sid, const sftq_iov *iov, size_t n,
                      unsigned flags) {
  if (n > MAX_IOV || (n && !iov)) return SFT_ERR_INVAL;
  if (c->st != C_LIVE || c->close_req) return SFT_ERR_STATE;
  sftq_stream *st = smap_get(&c->streams, sid);
  if (!st) return SFT_ERR_NOT_FOUND;
  if (!st->local && (sid & 2)) return SFT_ERR_STATE; /* peer's uni stream */
  if (st->fin_queued || st->tx_dead) return SFT_ERR_STATE;
  size_t total = 0, nonempty = 0;
  for (size_t i = 0; i < n; i++) {
    total += iov[i].len;
    nonempty += iov[i].len != 0;
  }
  if (st->nseg + nonempty > MAX_SEGS_PER_STREAM) return SFT_ERR_FULL;
  bool copy = flags & SFTQ_WRITE_COPY;
  if (copy && c->copied + total > c->ctx->cfg.copy_limit) {
    c->want_writable = true;
    return SFT_ERR_AGAIN;
  }
  txseg *first = NULL, *last = NULL;
  uint64_t end = st->queued;
  for (size_t i = 0; i < n; i++) {
    if (!iov[i].len) continue;
    txseg *s = calloc(1, sizeof *s);
    if (!s) goto nomem;
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
    end += s->len;
    s->end = end;
    if (last) last->next = s;
    else first = s;
    last = s;
  }
  if (first) {
    if (st->tail) st->tail->next = first;
    else st->head = first;
    st->tail = last;
    if (!st->cur) {
      st->cur = first;
      st->cur_off = 0;
    }
    st->nseg += (unsigned)nonempty;
    if (copy) c->copied += total;
  }
  st->queued = end;
  c->unsent += total;
  if (flags & SFTQ_WRITE_FIN) st->fin_queued = true;
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

uint64_t sftq_stream_unsent(sftq_conn *c, int64_t sid) {
  sftq_stream *st = smap_get(&c->streams, sid);
  return st && !st->tx_dead ? st->queued - st->sent : 0;
}

uint64_t sftq_conn_unsent(const sftq_conn *c) { return c->unsent; }

int sftq_stream_set_urgency(sftq_conn *c, int64_t sid, unsigned urgency) {
  if (urgency > 7) return SFT_ERR_RANGE;
  sftq_stream *st = smap_get(&c->streams, sid);
  if (!st) return SFT_ERR_NOT_FOUND;
  bool inq = st->in_q;
  q_remove(c, st);
  st->urgency = (uint8_t)urgency;
  if (inq) q_update(c, st);
  return 0;
}

int sftq_stream_set_user(sftq_conn *c, int64_t sid, void *user) {
  sftq_stream *st = smap_get(&c->streams, sid);
  if (!st) return SFT_ERR_NOT_FOUND;
  st->user = user;
  return 0;
}

void *sftq_stream_user(sftq_conn *c, int64_t sid) {
  sftq_stream *st = smap_get(&c->streams, sid);
  return st ? st->user : NULL;
}

int sftq_stream_cancel(sftq_conn *c, int64_t sid, uint64_t app_error) {
  if (c->st != C_LIVE) return SFT_ERR_STATE;
  sftq_stream *st = smap_get(&c->streams, sid);
  if (!st) return SFT_ERR_NOT_FOUND;
  stream_drop_unsent(c, st);
  if (ngtcp2_conn_shutdown_stream(c->q, sid, app_error) != 0)
    return SFT_ERR_NOT_FOUND;
  conn_mark(c);
  return 0;
}

int sftq_stream_consume(sftq_conn *c, int64_t sid, size_t n) {
  if (c->st != C_LIVE) return SFT_ERR_STATE;
  if (!c->ctx->cfg.manual_rx_credit) return SFT_ERR_STATE;
  ngtcp2_conn_extend_max_stream_offset(c->q, sid, n);
  ngtcp2_conn_extend_max_offset(c->q, n);
  conn_mark(c);
  return 0;
}
