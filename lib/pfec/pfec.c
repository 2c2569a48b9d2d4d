/* Packet-level FEC shim: block coding of QUIC packets, in-order release,
 * on/off policy. Contracts in lib/include/sft/pfec.h; design and figures in
 * docs/internals/pfec.md. */
#include "sft/pfec.h"

#include <stdlib.h>
#include <string.h>

#include "sft/fec.h"

#define MS 1000000ull
#define STRIDE SFT_PFEC_MAX_DGRAM /* one shard: len:16 | packet | zeros */
#define BLK_MASK 0xffffffu
#define BLK_NONE 0xffffffu
#define RING 1024u     /* sender: cumulative count at the end of each block */
#define CODECS 8u      /* (k, m) codecs kept */
#define ALPHA 0.25     /* weight of a new raw-loss sample (first samples) */
#define NSMP 32u       /* loss samples kept (one per REPORT, >= SAMPLE_MIN) */
#define SMP_RANK 0.3   /* the estimate: this quantile of the samples kept */
#define SAMPLE_MIN 64u /* datagrams a loss sample needs */
#define MAX_JUMP                                                               \
  4096u                 /* blocks a datagram may be ahead of (or behind) the   \
                           open one (~30 s at 100 Mbit/s) */
#define EARLY_PROBES 5u /* PROBEs sent from the start, wanted or not */
#define FAR_RESYNC 64u
#define PARITY_AHEAD                                                           \
  2u /* blocks a PARITY may be ahead of the open one */ /* ... unless this     \
                                                           many in a row are   \
                                                           all farther */

struct codec {
  struct sft_fec *fec;
  unsigned k, m;
  uint64_t used;
};

struct rblk {
  uint32_t blk;
  bool used;
  unsigned k;       /* from PARITY; 0 = not known yet */
  unsigned top;     /* highest index seen + 1 */
  unsigned dtop;    /* highest data index seen + 1 */
  unsigned rel;     /* next data index to release */
  unsigned count;   /* datagrams stored (data + parity) */
  size_t L;         /* parity shard length; 0 = no parity yet */
  uint64_t hold_ts; /* when a packet first waited; 0 = none waiting */
  bool bad;         /* a decode rebuilt garbage: do not decode again */
  struct sft_fec_mask have;
  uint8_t *sh; /* SFT_PFEC_MAX_N shards of STRIDE bytes */
};

struct sft_pfec {
  struct sft_pfec_opts o;
  struct sft_pfec_stats st;
  struct codec codecs[CODECS];
  uint64_t tick;

  /* ---- sender ---- */
  uint8_t *store; /* max_k shards of STRIDE bytes */
  uint16_t len[SFT_PFEC_MAX_K];
  unsigned k;
  size_t maxlen;
  bool open;
  uint64_t open_ts;
  uint32_t blk; /* next block id */
  uint32_t cum; /* shim datagrams sent, cumulative */
  uint32_t ring_blk[RING], ring_cum[RING];
  bool ring_set[RING];
  bool want, close_now;
  bool win_init;
  uint64_t win_start, win_sent, win_lost;
  unsigned hot;       /* windows in a row at >= on_loss */
  unsigned hot_clean; /* ... of which the last ones with srtt near min */
  double hot_sum;
  double want_loss; /* first_loss() when the run wanted the shim */
  bool have_base;
  uint32_t base_blk, base_rcv, base_cum, base_failed;
  double extra;     /* margin added after the peer reported failed blocks */
  double smp[NSMP]; /* recent loss samples (ring) */
  unsigned nsmp, smp_pos;
  uint64_t low_since;
  uint64_t last_probe;
  unsigned nprobes;
  unsigned pm_k, pm_q, pm_m; /* parity_for cache */

  /* ---- receiver ---- */
  struct rblk win[SFT_PFEC_WINDOW];
  uint8_t *rstore; /* SFT_PFEC_WINDOW * SFT_PFEC_MAX_N * STRIDE */
  bool started;
  uint32_t head; /* oldest block not yet retired */
  uint32_t cum_rcv, cum_failed, last_retired;
  unsigned far; /* datagrams in a row more than MAX_JUMP ahead */
  bool report_due, retired_since;
  uint64_t last_report;
  /* released packets, copied; emptied at the start of input/tick */
  uint8_t *q;
  uint16_t *qlen;
  size_t qn, qpos, qcap;
};

/* ---- helpers ------------------------------------------------------------ */

static uint32_t rd24(const uint8_t *p) {
  return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}
static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}
static void wr24(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 16);
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)v;
}
static void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* a - b in block-id serial arithmetic (24 bits, signed). */
static int32_t bdiff(uint32_t a, uint32_t b) {
  uint32_t d = (a - b) & BLK_MASK;
  return d & 0x800000u ? (int32_t)d - 0x1000000 : (int32_t)d;
}

static struct sft_fec *codec_get(struct sft_pfec *pf, unsigned k, unsigned m,
                                 bool exact) {
  struct codec *lru = &pf->codecs[0];
  pf->tick++;
  for (unsigned i = 0; i < CODECS; i++) {
    struct codec *c = &pf->codecs[i];
    if (c->fec && c->k == k && (exact ? c->m == m : c->m >= m)) {
      c->used = pf->tick;
      return c->fec;
    }
    if (!c->fec || c->used < lru->used)
      lru = c;
  }
  /* One decode table cached per codec: at random loss every block's loss
   * pattern differs (a review measured 0 hits in 193 decodes and +31 MB
   * with the default 64 slots x 8 codecs at k 128). */
  struct sft_fec_opts fo = {.cache_slots = 1};
  struct sft_fec *f = NULL;
  if (sft_fec_new_opts(&f, k, m, &fo) != 0)
    return NULL;
  sft_fec_del(lru->fec);
  lru->fec = f;
  lru->k = k;
  lru->m = m;
  lru->used = pf->tick;
  return f;
}

unsigned sft_pfec_parity_for(unsigned k, double loss, double fail) {
  if (k == 0 || k >= SFT_PFEC_MAX_N || !(loss > 0))
    return 0;
  unsigned cap = SFT_PFEC_MAX_N - k;
  if (loss >= 0.9)
    return cap;
  double q = 1 - loss, r = loss / q;
  for (unsigned m = 0; m <= cap; m++) {
    unsigned n = k + m;
    double pmf = 1;
    for (unsigned i = 0; i < n; i++)
      pmf *= q; /* P(X = 0) */
    double cdf = 0;
    for (unsigned i = 0; i <= m; i++) {
      cdf += pmf;
      pmf *= (double)(n - i) / (double)(i + 1) * r;
    }
    if (1 - cdf <= fail)
      return m;
  }
  return cap;
}

/* ---- lifecycle ---------------------------------------------------------- */

int sft_pfec_new(struct sft_pfec **out, const struct sft_pfec_opts *opts) {
  if (!out)
    return SFT_ERR_INVAL;
  *out = NULL;
  struct sft_pfec_opts o = {0};
  if (opts)
    o = *opts;
  if (!o.on_loss)
    o.on_loss = 0.14;
  if (!o.on_windows)
    o.on_windows = 2;
  if (!o.on_windows_any)
    o.on_windows_any = 6;
  if (!o.clean_rtt)
    o.clean_rtt = 1.3;
  if (!o.window_ns)
    o.window_ns = 100 * MS;
  if (!o.window_min)
    o.window_min = 50;
  if (!o.off_loss)
    o.off_loss = 0.08;
  if (!o.off_ns)
    o.off_ns = 2000 * MS;
  if (!o.fail_target)
    o.fail_target = 0.02;
  if (!o.margin)
    o.margin = 0.01;
  if (!o.block_ns)
    o.block_ns = 10 * MS;
  if (!o.max_k)
    o.max_k = SFT_PFEC_MAX_K;
  if (!o.hold_ns)
    o.hold_ns = 25 * MS;
  if (!o.report_ns)
    o.report_ns = 20 * MS;
  if (!o.probe_ns)
    o.probe_ns = 100 * MS;
  if (!(o.on_loss > 0 && o.on_loss < 1) || !(o.clean_rtt >= 1) ||
      !(o.off_loss > 0 && o.off_loss < 1) ||
      !(o.fail_target > 0 && o.fail_target < 1) ||
      !(o.margin >= 0 && o.margin < 1) || o.max_k > SFT_PFEC_MAX_K ||
      o.force < -1 || o.force > 1)
    return SFT_ERR_INVAL;
  struct sft_pfec *pf = calloc(1, sizeof *pf);
  if (!pf)
    return SFT_ERR_NOMEM;
  pf->o = o;
  pf->want = o.force == 1;
  pf->last_retired = BLK_NONE;
  *out = pf;
  return 0;
}

void sft_pfec_del(struct sft_pfec *pf) {
  if (!pf)
    return;
  for (unsigned i = 0; i < CODECS; i++)
    sft_fec_del(pf->codecs[i].fec);
  free(pf->store);
  free(pf->rstore);
  free(pf->q);
  free(pf->qlen);
  free(pf);
}

void sft_pfec_get_stats(const struct sft_pfec *pf, struct sft_pfec_stats *st) {
  *st = pf->st;
}

/* ---- sender ------------------------------------------------------------- */

bool sft_pfec_active(const struct sft_pfec *pf) {
  return pf->st.active;
}

static void activate(struct sft_pfec *pf, double loss) {
  /* the sender's block store only for a shim that is used */
  if (!pf->store && !(pf->store = malloc((size_t)SFT_PFEC_MAX_K * STRIDE)))
    return; /* stays off; tried again at the next chance */
  pf->st.active = true;
  pf->st.loss = loss;
  pf->low_since = 0;
  pf->have_base = false;
  pf->nsmp = 0;
  pf->smp_pos = 0;
}

/* The loss parity must cover: a low quantile of the recent samples, not
 * their mean. Parity itself is traffic the controller does not see (it
 * paces QUIC's packets only), so when the link is full a drop-tail queue
 * drops bursts, the samples of those moments read high, and a mean would
 * answer with more parity, which fills the queue more: measured, the
 * estimate ran from 0.3 to 0.7 within a second at 30 % random loss. The
 * random loss is what most samples show; congestion shows in a few. */
static double loss_quantile(struct sft_pfec *pf, double l) {
  pf->smp[pf->smp_pos] = l;
  pf->smp_pos = (pf->smp_pos + 1) % NSMP;
  if (pf->nsmp < NSMP)
    pf->nsmp++;
  if (pf->nsmp < 4)
    return pf->st.loss * (1 - ALPHA) + l * ALPHA;
  double v[NSMP];
  unsigned n = pf->nsmp;
  memcpy(v, pf->smp, n * sizeof v[0]);
  for (unsigned i = 1; i < n; i++) { /* insertion sort: n <= 32 */
    double x = v[i];
    unsigned j = i;
    for (; j > 0 && v[j - 1] > x; j--)
      v[j] = v[j - 1];
    v[j] = x;
  }
  return v[(unsigned)(SMP_RANK * (n - 1) + 0.5)];
}

/* The loss to size the first blocks' parity for, until REPORTs come: the
 * mean of the windows that turned the shim on, x 1.5 (a window counts the
 * losses declared in it against the packets sent in it, and losses are
 * declared about an RTT after the send: while the rate grows a window
 * reads low; at 30 % loss the first windows read 0.14-0.22), at least
 * on_loss, at most 0.5. */
static double first_loss(const struct sft_pfec *pf) {
  double l = pf->hot ? 1.5 * pf->hot_sum / pf->hot : pf->o.on_loss;
  if (l < pf->o.on_loss)
    l = pf->o.on_loss;
  return l > 0.5 ? 0.5 : l;
}

/* On when the policy wants it and the peer has shown it speaks the shim
 * (by any shim datagram: its PROBE, REPORT, DATA or PARITY). */
static void maybe_activate(struct sft_pfec *pf) {
  if (pf->want && pf->st.peer_ok && !pf->st.active && pf->o.force >= 0)
    activate(pf, pf->want_loss ? pf->want_loss : pf->o.on_loss);
}

static void deactivate(struct sft_pfec *pf) {
  pf->st.active = false;
  pf->want = false;
  pf->hot = 0;
  pf->hot_clean = 0;
  pf->hot_sum = 0;
  pf->want_loss = 0;
  pf->win_init = false;
  pf->close_now = pf->open;
}

void sft_pfec_observe(struct sft_pfec *pf, uint64_t now, uint64_t sent,
                      uint64_t lost, uint64_t srtt_ns, uint64_t min_rtt_ns) {
  if (pf->st.active || pf->o.force != 0)
    return;
  if (!pf->win_init) {
    pf->win_init = true;
    pf->win_start = now;
    pf->win_sent = sent;
    pf->win_lost = lost;
    return;
  }
  if (now < pf->win_start || now - pf->win_start < pf->o.window_ns)
    return;
  uint64_t ds = sent >= pf->win_sent ? sent - pf->win_sent : 0;
  uint64_t dl = lost >= pf->win_lost ? lost - pf->win_lost : 0;
  if (dl > ds)
    dl = ds;
  if (ds >= pf->o.window_min) {
    double l = (double)dl / (double)ds;
    /* The queue is short when srtt is close to the lowest RTT: loss then
     * is the link's, not an overflow of our own making. */
    bool clean = min_rtt_ns && srtt_ns &&
                 (double)srtt_ns <= pf->o.clean_rtt * (double)min_rtt_ns;
    if (l >= pf->o.on_loss) {
      pf->hot++;
      pf->hot_sum += l;
      pf->hot_clean = clean ? pf->hot_clean + 1 : 0;
    } else {
      pf->hot = 0;
      pf->hot_sum = 0;
      pf->hot_clean = 0;
    }
    if (pf->hot_clean >= pf->o.on_windows || pf->hot >= pf->o.on_windows_any)
      pf->want = true;
    /* the run that wanted it (it grows until the peer answers; a cool
     * window after it does not undo it) */
    if (pf->want && pf->hot)
      pf->want_loss = first_loss(pf);
  }
  pf->win_start = now;
  pf->win_sent = sent;
  pf->win_lost = lost;
  maybe_activate(pf);
}

int sft_pfec_wrap(struct sft_pfec *pf, uint64_t now, uint8_t *buf, size_t len) {
  if (!pf->st.active)
    return SFT_ERR_STATE;
  if (len == 0 || len > SFT_PFEC_MAX_PKT)
    return SFT_ERR_TOO_LARGE;
  if (pf->open && pf->k >= pf->o.max_k)
    return SFT_ERR_FULL;
  if (!pf->open) {
    pf->open = true;
    pf->open_ts = now;
    pf->k = 0;
    pf->maxlen = 0;
  }
  uint8_t *s = pf->store + (size_t)pf->k * STRIDE;
  s[0] = (uint8_t)(len >> 8);
  s[1] = (uint8_t)len;
  memcpy(s + 2, buf + SFT_PFEC_DATA_HDR, len);
  buf[0] = SFT_PFEC_T_DATA;
  wr24(buf + 1, pf->blk);
  buf[4] = (uint8_t)pf->k;
  buf[5] = (uint8_t)pf->o.max_k;
  pf->len[pf->k] = (uint16_t)len;
  if (len > pf->maxlen)
    pf->maxlen = len;
  pf->k++;
  pf->cum++;
  pf->st.data_sent++;
  return 0;
}

static void ring_put(struct sft_pfec *pf, uint32_t blk, uint32_t cum) {
  unsigned i = blk & (RING - 1);
  pf->ring_blk[i] = blk;
  pf->ring_cum[i] = cum;
  pf->ring_set[i] = true;
}

int sft_pfec_parity(struct sft_pfec *pf, uint64_t now, uint8_t *out, size_t cap,
                    size_t *seg, size_t *n) {
  *n = 0;
  *seg = 0;
  if (!pf->open || pf->k == 0) {
    pf->close_now = false;
    return 0;
  }
  bool due = pf->k >= pf->o.max_k || now == UINT64_MAX || pf->close_now ||
             !pf->st.active ||
             (now >= pf->open_ts && now - pf->open_ts >= pf->o.block_ns);
  if (!due)
    return 0;
  unsigned k = pf->k;
  double p = pf->st.loss + pf->o.margin + pf->extra;
  if (pf->pm_k != k || pf->pm_q != (unsigned)(p * 1000)) {
    pf->pm_k = k;
    pf->pm_q = (unsigned)(p * 1000);
    pf->pm_m = sft_pfec_parity_for(k, p, pf->o.fail_target);
  }
  unsigned m = pf->pm_m ? pf->pm_m : 1;
  if (k + m > SFT_PFEC_MAX_N)
    m = SFT_PFEC_MAX_N - k;
  size_t L = pf->maxlen + 2;
  size_t sz = SFT_PFEC_PARITY_HDR + L;
  if (cap < (size_t)m * sz)
    return SFT_ERR_NOSPACE;
  struct sft_fec *f = codec_get(pf, k, m, true);
  if (!f) { /* close it without parity rather than keep it due forever */
    ring_put(pf, pf->blk, pf->cum);
    pf->blk = (pf->blk + 1) & BLK_MASK;
    pf->open = false;
    pf->close_now = false;
    return SFT_ERR_NOMEM;
  }
  const uint8_t *data[SFT_PFEC_MAX_K];
  uint8_t *par[SFT_PFEC_MAX_N];
  for (unsigned i = 0; i < k; i++) {
    uint8_t *s = pf->store + (size_t)i * STRIDE;
    memset(s + 2 + pf->len[i], 0, L - 2 - pf->len[i]);
    data[i] = s;
  }
  for (unsigned j = 0; j < m; j++) {
    uint8_t *d = out + (size_t)j * sz;
    d[0] = SFT_PFEC_T_PARITY;
    wr24(d + 1, pf->blk);
    d[4] = (uint8_t)(k + j);
    d[5] = (uint8_t)k;
    par[j] = d + SFT_PFEC_PARITY_HDR;
  }
  int rv = sft_fec_encode(f, data, par, L);
  if (rv != 0)
    return rv;
  pf->cum += m;
  ring_put(pf, pf->blk, pf->cum);
  pf->st.parity_sent += m;
  pf->st.blocks_sent++;
  /* smoothed: one small block (closed on time) must not swing the
   * in-flight bound the caller derives from it */
  double r = (double)m / (double)k;
  pf->st.ratio = pf->st.blocks_sent == 1 ? r : 0.75 * pf->st.ratio + 0.25 * r;
  pf->blk = (pf->blk + 1) & BLK_MASK;
  pf->open = false;
  pf->close_now = false;
  *seg = sz;
  *n = m;
  return 0;
}

static void on_report(struct sft_pfec *pf, uint64_t now, uint32_t blk,
                      uint32_t rcv, uint32_t failed) {
  if (blk == BLK_NONE)
    return;
  unsigned i = blk & (RING - 1);
  if (!pf->ring_set[i] || pf->ring_blk[i] != blk)
    return;
  uint32_t sent = pf->ring_cum[i];
  if (!pf->have_base) {
    pf->have_base = true;
    pf->base_blk = blk;
    pf->base_rcv = rcv;
    pf->base_cum = sent;
    pf->base_failed = failed;
    return;
  }
  if (bdiff(blk, pf->base_blk) <= 0)
    return; /* old or repeated */
  uint32_t ds = sent - pf->base_cum, dr = rcv - pf->base_rcv;
  uint32_t df = failed - pf->base_failed;
  if (ds < SAMPLE_MIN || ds > (1u << 30))
    return;
  if (dr > ds)
    dr = ds;
  double l = 1 - (double)dr / (double)ds;
  pf->base_blk = blk;
  pf->base_rcv = rcv;
  pf->base_cum = sent;
  pf->base_failed = failed;
  if (df > 0 && df < (1u << 20)) {
    pf->st.peer_failed += df;
    pf->extra += 0.02 * df;
    if (pf->extra > 0.15)
      pf->extra = 0.15;
  } else {
    pf->extra *= 0.9;
  }
  if (!pf->st.active)
    return;
  pf->st.loss = loss_quantile(pf, l);
  if (pf->o.force != 0)
    return;
  if (pf->st.loss < pf->o.off_loss) {
    if (!pf->low_since)
      pf->low_since = now ? now : 1;
    if (now - pf->low_since >= pf->o.off_ns)
      deactivate(pf);
  } else {
    pf->low_since = 0;
  }
}

/* ---- receiver ----------------------------------------------------------- */

static int rx_alloc(struct sft_pfec *pf) {
  if (pf->rstore)
    return 0;
  size_t nsh = (size_t)SFT_PFEC_WINDOW * SFT_PFEC_MAX_N;
  pf->rstore = malloc(nsh * STRIDE);
  pf->qcap = nsh + 1;
  pf->q = malloc(pf->qcap * STRIDE);
  pf->qlen = malloc(pf->qcap * sizeof *pf->qlen);
  if (!pf->rstore || !pf->q || !pf->qlen) {
    free(pf->rstore);
    free(pf->q);
    free(pf->qlen);
    pf->rstore = pf->q = NULL;
    pf->qlen = NULL;
    return SFT_ERR_NOMEM;
  }
  for (unsigned i = 0; i < SFT_PFEC_WINDOW; i++)
    pf->win[i].sh = pf->rstore + (size_t)i * SFT_PFEC_MAX_N * STRIDE;
  return 0;
}

static void q_push(struct sft_pfec *pf, const uint8_t *p, size_t len) {
  if (pf->qn >= pf->qcap)
    return; /* cannot happen: sized for the window */
  memcpy(pf->q + pf->qn * STRIDE, p, len);
  pf->qlen[pf->qn++] = (uint16_t)len;
}

static void q_reset(struct sft_pfec *pf) {
  pf->qn = 0;
  pf->qpos = 0;
}

static struct rblk *slot(struct sft_pfec *pf, uint32_t blk) {
  return &pf->win[blk % SFT_PFEC_WINDOW];
}

/* The block's data shard |i|: its packet length, 0 if unusable. */
static size_t shard_len(const struct rblk *b, unsigned i) {
  const uint8_t *s = b->sh + (size_t)i * STRIDE;
  return (size_t)s[0] << 8 | s[1];
}

/* Rebuilds the missing data packets of |b| if k of them are in. */
static void try_decode(struct sft_pfec *pf, struct rblk *b) {
  if (!b->k || !b->L || b->count < b->k || b->bad)
    return;
  unsigned missing = 0;
  for (unsigned i = 0; i < b->k; i++)
    if (!sft_fec_mask_test(&b->have, i))
      missing++;
  if (!missing)
    return;
  unsigned m = b->top > b->k ? b->top - b->k : 0;
  if (m == 0)
    return;
  /* every row: the Cauchy rows do not depend on m, so one decode codec
   * per k serves every block */
  struct sft_fec *f = codec_get(pf, b->k, SFT_PFEC_MAX_N - b->k, false);
  if (!f)
    return;
  uint8_t *sh[SFT_PFEC_MAX_N];
  struct sft_fec_mask present = {{0, 0, 0, 0}};
  unsigned got = 0;
  for (unsigned i = 0; i < SFT_PFEC_MAX_N; i++) /* the codec has 255 rows */
    sh[i] = b->sh + (size_t)i * STRIDE;
  for (unsigned i = 0; i < b->k + m; i++) {
    if (!sft_fec_mask_test(&b->have, i))
      continue;
    if (i < b->k) {
      size_t l = shard_len(b, i);
      if (l + 2 > b->L)
        return; /* longer than the parity: inconsistent */
      memset(sh[i] + 2 + l, 0, b->L - 2 - l);
    }
    sft_fec_mask_set(&present, i);
    got++;
  }
  if (got < b->k)
    return;
  if (sft_fec_decode(f, sh, &present, b->L, 0) != 0)
    return;
  for (unsigned i = 0; i < b->k; i++) {
    if (sft_fec_mask_test(&b->have, i))
      continue;
    size_t l = shard_len(b, i);
    if (l == 0 || l + 2 > b->L) {
      b->bad = true; /* garbage (forged parity): no more decodes of it */
      continue;      /* and leave it missing */
    }
    sft_fec_mask_set(&b->have, i);
    pf->st.recovered++;
  }
}

/* Releases what |b| can give in order; true when the block is complete. */
static bool release(struct sft_pfec *pf, struct rblk *b) {
  unsigned lim = b->k ? b->k : SFT_PFEC_MAX_N;
  while (b->rel < lim && b->rel < b->top &&
         sft_fec_mask_test(&b->have, b->rel)) {
    q_push(pf, b->sh + (size_t)b->rel * STRIDE + 2, shard_len(b, b->rel));
    b->rel++;
  }
  if (b->k && b->rel >= b->k)
    return true;
  /* Something stored beyond the release point is waiting. */
  bool waiting = false;
  for (unsigned i = b->rel; i < b->top && !waiting; i++)
    waiting = sft_fec_mask_test(&b->have, i);
  if (!waiting)
    b->hold_ts = 0;
  return false;
}

/* Retires the head block: releases every packet it has, in order. */
static void retire_head(struct sft_pfec *pf) {
  struct rblk *b = slot(pf, pf->head);
  bool failed = false;
  if (b->used && b->blk == pf->head) {
    try_decode(pf, b);
    unsigned lim = b->k ? b->k : b->top;
    if (lim > b->top && b->k)
      failed = true; /* tail data never seen */
    for (unsigned i = b->rel; i < lim && i < SFT_PFEC_MAX_N; i++) {
      if (sft_fec_mask_test(&b->have, i))
        q_push(pf, b->sh + (size_t)i * STRIDE + 2, shard_len(b, i));
      else
        failed = true;
    }
    pf->cum_rcv += b->count;
    b->used = false;
  }
  if (failed) {
    pf->cum_failed++;
    pf->st.blocks_failed++;
  }
  pf->last_retired = pf->head;
  pf->retired_since = true;
  pf->head = (pf->head + 1) & BLK_MASK;
}

/* Releases from the head on; stops at the first block that must wait. */
static void advance(struct sft_pfec *pf) {
  for (unsigned guard = 0; guard <= SFT_PFEC_WINDOW; guard++) {
    struct rblk *b = slot(pf, pf->head);
    if (!b->used || b->blk != pf->head)
      return;
    try_decode(pf, b);
    if (!release(pf, b))
      return;
    retire_head(pf);
  }
}

static int rx_store(struct sft_pfec *pf, uint64_t now, uint32_t blk,
                    unsigned idx, const uint8_t *p, size_t len, bool parity,
                    unsigned k) {
  if (!pf->started) {
    pf->started = true;
    pf->head = blk;
  }
  int32_t d = bdiff(blk, pf->head);
  if (d < 0) { /* its block is gone: the rest of a block's parity after the
                  block was complete, or a straggler */
    if (d < -(int32_t)MAX_JUMP)
      return SFT_ERR_MALFORMED;
    pf->cum_rcv++; /* the sender counted it in that block */
    if (parity) {
      pf->st.parity_recv++;
      return 0;
    }
    pf->st.data_recv++;
    pf->st.late++;
    q_push(pf, p, len);
    return 0;
  }
  /* A PARITY (matched to its connection by address only) may not move the
   * open block far: a forged one could otherwise make the next blocks
   * "late" (passed on without repair). Only a DATA, which carries its
   * connection's CID, can. */
  if (d > (int32_t)MAX_JUMP) {
    /* Far ahead: a forged block number, or a real jump after a long
     * outage. Follow it only when nothing else arrives in between, and
     * only on a DATA. */
    if (++pf->far < FAR_RESYNC || parity)
      return SFT_ERR_MALFORMED;
  } else if (parity && d > (int32_t)PARITY_AHEAD) {
    return SFT_ERR_MALFORMED;
  }
  pf->far = 0;
  /* A datagram of a later block: the earlier blocks' datagrams have all
   * come (the sender sends a block's data, then its parity, then the next
   * block), so settle them now. Only the head block is ever open. */
  for (unsigned g = 0; bdiff(blk, pf->head) > 0 && g < SFT_PFEC_WINDOW; g++)
    retire_head(pf);
  if (bdiff(blk, pf->head) > 0)
    pf->head = blk; /* skipped whole blocks */
  struct rblk *b = slot(pf, blk);
  if (!b->used || b->blk != blk) {
    uint8_t *sh = b->sh; /* the slot's storage stays */
    memset(b, 0, sizeof *b);
    b->sh = sh;
    b->blk = blk;
    b->used = true;
  }
  if (parity) {
    /* one k and one shard length per block; no data at or beyond k */
    if ((b->k && b->k != k) || (b->L && b->L != len) || b->dtop > k)
      return SFT_ERR_MALFORMED;
  } else if (b->k && idx >= b->k) {
    return SFT_ERR_MALFORMED;
  }
  if (sft_fec_mask_test(&b->have, idx))
    return 0; /* duplicate */
  uint8_t *s = b->sh + (size_t)idx * STRIDE;
  if (parity) {
    memcpy(s, p, len);
    b->k = k;
    b->L = len;
    pf->st.parity_recv++;
  } else {
    s[0] = (uint8_t)(len >> 8);
    s[1] = (uint8_t)len;
    memcpy(s + 2, p, len);
    if (idx + 1 > b->dtop)
      b->dtop = idx + 1;
    pf->st.data_recv++;
  }
  sft_fec_mask_set(&b->have, idx);
  b->count++;
  if (idx + 1 > b->top)
    b->top = idx + 1;
  if (!b->hold_ts)
    b->hold_ts = now ? now : 1;
  advance(pf);
  return 0;
}

static int dropped(struct sft_pfec *pf) {
  pf->st.dropped++;
  return SFT_ERR_MALFORMED;
}

static int input(struct sft_pfec *pf, uint64_t now, const uint8_t *dg,
                 size_t len);

int sft_pfec_input(struct sft_pfec *pf, uint64_t now, const uint8_t *dg,
                   size_t len) {
  int rv = input(pf, now, dg, len);
  maybe_activate(pf);
  return rv;
}

static int input(struct sft_pfec *pf, uint64_t now, const uint8_t *dg,
                 size_t len) {
  q_reset(pf);
  if (!sft_pfec_is_shim(dg, len))
    return dropped(pf);
  switch (dg[0]) {
  case SFT_PFEC_T_PROBE:
    pf->st.peer_ok = true;
    pf->report_due = true;
    return 0;
  case SFT_PFEC_T_REPORT:
    if (len < SFT_PFEC_REPORT_LEN)
      return dropped(pf);
    pf->st.peer_ok = true;
    on_report(pf, now, rd24(dg + 1), rd32(dg + 4), rd32(dg + 8));
    return 0;
  case SFT_PFEC_T_DATA: {
    if (len <= SFT_PFEC_DATA_HDR || len - SFT_PFEC_DATA_HDR > SFT_PFEC_MAX_PKT)
      return dropped(pf);
    unsigned idx = dg[4], kplan = dg[5];
    if (kplan == 0 || kplan > SFT_PFEC_MAX_K || idx >= kplan)
      return dropped(pf);
    if (rx_alloc(pf) != 0)
      return SFT_ERR_NOMEM;
    pf->st.peer_ok = true;
    int rv = rx_store(pf, now, rd24(dg + 1), idx, dg + SFT_PFEC_DATA_HDR,
                      len - SFT_PFEC_DATA_HDR, false, 0);
    return rv ? dropped(pf) : 0;
  }
  case SFT_PFEC_T_PARITY: {
    if (len < SFT_PFEC_PARITY_HDR + 3 || len > SFT_PFEC_MAX_DGRAM)
      return dropped(pf);
    unsigned idx = dg[4], k = dg[5];
    if (k == 0 || k > SFT_PFEC_MAX_K || idx < k || idx >= SFT_PFEC_MAX_N)
      return dropped(pf);
    if (rx_alloc(pf) != 0)
      return SFT_ERR_NOMEM;
    pf->st.peer_ok = true;
    int rv = rx_store(pf, now, rd24(dg + 1), idx, dg + SFT_PFEC_PARITY_HDR,
                      len - SFT_PFEC_PARITY_HDR, true, k);
    return rv ? dropped(pf) : 0;
  }
  default:
    return dropped(pf);
  }
}

int sft_pfec_next(struct sft_pfec *pf, const uint8_t **pkt, size_t *len) {
  if (pf->qpos >= pf->qn)
    return 0;
  *pkt = pf->q + pf->qpos * STRIDE;
  *len = pf->qlen[pf->qpos];
  pf->qpos++;
  return 1;
}

void sft_pfec_tick(struct sft_pfec *pf, uint64_t now) {
  q_reset(pf);
  if (!pf->started)
    return;
  for (unsigned guard = 0; guard < SFT_PFEC_WINDOW; guard++) {
    struct rblk *b = slot(pf, pf->head);
    if (!b->used || b->blk != pf->head || !b->hold_ts)
      return;
    if (now < b->hold_ts || now - b->hold_ts < pf->o.hold_ns)
      return;
    retire_head(pf);
    advance(pf);
  }
}

/* ---- both --------------------------------------------------------------- */

/* Probe while the policy wants the shim, and a few times from the start
 * anyway, so that a connection that turns lossy later can switch at once. */
static bool probe_wanted(const struct sft_pfec *pf) {
  return !pf->st.peer_ok && pf->o.force >= 0 &&
         (pf->want || pf->nprobes < EARLY_PROBES);
}

int sft_pfec_control(struct sft_pfec *pf, uint64_t now, uint8_t *out,
                     size_t cap, size_t *len) {
  *len = 0;
  if (cap < SFT_PFEC_REPORT_LEN)
    return SFT_ERR_NOSPACE;
  if (pf->report_due ||
      (pf->retired_since &&
       (now < pf->last_report || now - pf->last_report >= pf->o.report_ns))) {
    out[0] = SFT_PFEC_T_REPORT;
    wr24(out + 1, pf->last_retired);
    wr32(out + 4, pf->cum_rcv);
    wr32(out + 8, pf->cum_failed);
    *len = SFT_PFEC_REPORT_LEN;
    pf->report_due = false;
    pf->retired_since = false;
    pf->last_report = now;
    return 0;
  }
  if (probe_wanted(pf) && (!pf->nprobes || now < pf->last_probe ||
                           now - pf->last_probe >= pf->o.probe_ns)) {
    out[0] = SFT_PFEC_T_PROBE;
    *len = 1;
    pf->nprobes++;
    pf->last_probe = now;
  }
  return 0;
}

static uint64_t at(uint64_t t, uint64_t d) {
  return t > UINT64_MAX - d ? UINT64_MAX : t + d;
}

uint64_t sft_pfec_deadline(const struct sft_pfec *pf) {
  uint64_t t = UINT64_MAX;
  if (pf->open && pf->k) {
    uint64_t c = pf->close_now || !pf->st.active || pf->k >= pf->o.max_k
                     ? 0
                     : at(pf->open_ts, pf->o.block_ns);
    if (c < t)
      t = c;
  }
  if (pf->started) {
    const struct rblk *b = &pf->win[pf->head % SFT_PFEC_WINDOW];
    if (b->used && b->blk == pf->head && b->hold_ts) {
      uint64_t h = at(b->hold_ts, pf->o.hold_ns);
      if (h < t)
        t = h;
    }
  }
  if (pf->report_due)
    t = 0;
  else if (pf->retired_since) {
    uint64_t r = at(pf->last_report, pf->o.report_ns);
    if (r < t)
      t = r;
  }
  if (probe_wanted(pf)) {
    uint64_t p = pf->nprobes ? at(pf->last_probe, pf->o.probe_ns) : 0;
    if (p < t)
      t = p;
  }
  return t;
}
