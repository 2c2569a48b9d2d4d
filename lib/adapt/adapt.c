/* Adaptation policy: rules and the hysteresis state machine. Contracts in
 * lib/include/sft/adapt.h; rationale in docs/internals/adapt.md. */
#include "sft/adapt.h"

#include <string.h>

#define MS 1000000ull
#define SEC 1000000000ull
#define LOSS_NO_PARITY 5000u /* 0.5 % */
#define TAIL_TARGET 0.01     /* P(stripe needs a resend) */
#define WORSE 1.25           /* dead band: inputs made 25 % worse */

__extension__ typedef unsigned __int128 uwide;

static uint64_t pow2_floor(uint64_t v) {
  uint64_t p = 1;
  if (v == 0)
    return 0;
  while (p <= v / 2)
    p *= 2;
  return p;
}

static uint64_t pow2_ceil(uint64_t v) {
  uint64_t p = 1;
  while (p < v && p <= UINT64_MAX / 2)
    p *= 2;
  return p;
}

static uint64_t clamp64(uint64_t v, uint64_t lo, uint64_t hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

uint32_t sft_adapt_chunk_size(uint64_t srtt_ns, uint32_t loss_ppm,
                              uint64_t rate) {
  uint32_t c = SFT_ADAPT_CHUNK_MAX;
  if (srtt_ns > 200 * MS || loss_ppm > 100000)
    c = SFT_ADAPT_CHUNK_MIN;
  else if (srtt_ns > 100 * MS || loss_ppm > 50000)
    c = SFT_ADAPT_CHUNK_MID;
  if (rate) { /* one chunk in <= 1 s at the rate */
    uint64_t cap = pow2_floor(rate);
    if (cap < SFT_ADAPT_CHUNK_MIN)
      cap = SFT_ADAPT_CHUNK_MIN;
    if (cap < c)
      c = (uint32_t)cap;
  }
  return c;
}

double sft_adapt_binom_tail(unsigned n, double p, unsigned t) {
  /* dp[j] = P(j losses so far), j <= t; dp[t + 1] = P(more than t). */
  double dp[257];
  if (t >= n || n > 255)
    return 0.0;
  if (!(p > 0.0))
    return 0.0;
  if (p >= 1.0)
    return 1.0;
  memset(dp, 0, sizeof(dp));
  dp[0] = 1.0;
  for (unsigned i = 0; i < n; i++) {
    dp[t + 1] += dp[t] * p; /* one more loss crosses into the tail */
    for (unsigned j = t; j > 0; j--)
      dp[j] = dp[j] * (1.0 - p) + dp[j - 1] * p;
    dp[0] *= 1.0 - p;
  }
  return dp[t + 1];
}

uint32_t sft_adapt_parity(uint32_t k, uint32_t m, uint32_t loss_ppm) {
  double p;
  if (k == 0 || k + m > 255 || k > 255 || m > 255)
    return 0;
  if (loss_ppm < LOSS_NO_PARITY)
    return 0;
  p = loss_ppm >= SFT_ADAPT_PPM ? 1.0 : (double)loss_ppm / SFT_ADAPT_PPM;
  for (uint32_t mm = 0; mm < m; mm++)
    if (sft_adapt_binom_tail(k + mm, p, mm) < TAIL_TARGET)
      return mm;
  return m;
}

uint32_t sft_adapt_conns(uint64_t srtt_ns, uint32_t loss_ppm,
                         uint32_t max_conns) {
  /* x = RTT(ms) * loss(fraction) = srtt_ns * loss_ppm / 1e12 */
  uwide x = (uwide)srtt_ns * loss_ppm;
  uwide unit = (uwide)1000000000000ull;
  uint32_t n;
  if (x < 8 * unit)
    n = 1;
  else if (x < 12 * unit)
    n = 2;
  else if (x < 16 * unit)
    n = 3;
  else
    n = 4;
  if (max_conns == 0)
    max_conns = 1;
  return n < max_conns ? n : max_conns;
}

static uint64_t bdp(uint64_t srtt_ns, uint64_t rate) {
  uwide b = (uwide)srtt_ns * rate / SEC;
  return b > UINT64_MAX / 8 ? UINT64_MAX / 8 : (uint64_t)b;
}

uint64_t sft_adapt_window(uint64_t srtt_ns, uint64_t rate) {
  if (!srtt_ns || !rate)
    return SFT_ADAPT_WINDOW_MIN;
  return clamp64(pow2_ceil(4 * bdp(srtt_ns, rate)), SFT_ADAPT_WINDOW_MIN,
                 SFT_ADAPT_WINDOW_MAX);
}

uint64_t sft_adapt_sockbuf(uint64_t srtt_ns, uint64_t rate) {
  if (!srtt_ns || !rate)
    return SFT_ADAPT_SOCKBUF_MIN;
  return clamp64(pow2_ceil(2 * bdp(srtt_ns, rate)), SFT_ADAPT_SOCKBUF_MIN,
                 SFT_ADAPT_SOCKBUF_MAX);
}

void sft_adapt_config_default(struct sft_adapt_config *cfg) {
  if (!cfg)
    return;
  memset(cfg, 0, sizeof(*cfg));
  cfg->k = 10;
  cfg->m = 3;
  cfg->max_conns = 4;
  cfg->hold_ns = 3 * SEC;
  cfg->initial.chunk_size = SFT_ADAPT_CHUNK_MAX;
  cfg->initial.parity = cfg->m;
  cfg->initial.conns = 1;
  cfg->initial.window = SFT_ADAPT_WINDOW_MIN;
  cfg->initial.sockbuf = SFT_ADAPT_SOCKBUF_MIN;
}

int sft_adapt_init(struct sft_adapt *a, const struct sft_adapt_config *cfg) {
  struct sft_adapt_config def;
  if (!a)
    return SFT_ERR_INVAL;
  if (!cfg) {
    sft_adapt_config_default(&def);
    cfg = &def;
  }
  const struct sft_adapt_decision *in = &cfg->initial;
  if (cfg->k == 0 || cfg->k > 255 || cfg->m > 255 || cfg->k + cfg->m > 255 ||
      cfg->max_conns == 0 || cfg->max_conns > SFT_ADAPT_MAX_CONNS ||
      in->chunk_size < SFT_ADAPT_CHUNK_MIN ||
      in->chunk_size > SFT_ADAPT_CHUNK_MAX || in->parity > cfg->m ||
      in->conns == 0 || in->conns > cfg->max_conns ||
      in->window < SFT_ADAPT_WINDOW_MIN || in->window > SFT_ADAPT_WINDOW_MAX ||
      in->sockbuf < SFT_ADAPT_SOCKBUF_MIN ||
      in->sockbuf > SFT_ADAPT_SOCKBUF_MAX)
    return SFT_ERR_INVAL;
  memset(a, 0, sizeof(*a));
  a->cfg = *cfg;
  a->cur = *in;
  return 0;
}

static double ewma(double old, double x) {
  return old + (x - old) / 4.0;
}

static uint64_t to_u64(double v) {
  if (!(v > 0.0))
    return 0;
  if (v >= 1.8e19)
    return UINT64_MAX;
  return (uint64_t)v;
}

enum { F_CHUNK, F_PARITY, F_CONNS, F_WINDOW, F_SOCKBUF, NFIELD };

/* The rules at smoothed inputs scaled by |worse| (>= 1: RTT and loss up,
 * the chunk-cap rate down, window BDP up). */
static void rules(const struct sft_adapt *a, double worse, uint64_t out[]) {
  double rtt = a->have_rtt ? a->rtt_ns * worse : 0.0;
  double loss = a->loss * worse;
  double lo = 0.0, hi = 0.0;
  uint32_t lppm;
  if (loss > 1.0)
    loss = 1.0;
  lppm = (uint32_t)(loss * SFT_ADAPT_PPM + 0.5);
  if (a->have_drate && a->have_lrate) {
    lo = a->drate < a->lrate ? a->drate : a->lrate;
    hi = a->drate > a->lrate ? a->drate : a->lrate;
  } else if (a->have_drate) {
    lo = hi = a->drate;
  } else if (a->have_lrate) {
    lo = hi = a->lrate;
  }
  out[F_CHUNK] = sft_adapt_chunk_size(to_u64(rtt), lppm, to_u64(lo / worse));
  out[F_PARITY] = sft_adapt_parity(a->cfg.k, a->cfg.m, lppm);
  {
    double ll = a->lloss * worse;
    uint32_t llppm = (uint32_t)((ll > 1.0 ? 1.0 : ll) * SFT_ADAPT_PPM + 0.5);
    /* the path's own RTT, not the queue our connections build */
    double base = a->min_rtt ? (double)a->min_rtt * worse : rtt;
    out[F_CONNS] = a->nloss < SFT_ADAPT_CONNS_MIN_SAMPLES
                       ? a->cur.conns
                       : sft_adapt_conns(to_u64(base), llppm, a->cfg.max_conns);
  }
  out[F_WINDOW] = sft_adapt_window(to_u64(rtt), to_u64(hi));
  out[F_SOCKBUF] = sft_adapt_sockbuf(to_u64(rtt), to_u64(hi));
}

/* 1 if |v| is safer than |cur| for field |f|. */
static int safer(int f, uint64_t v, uint64_t cur) {
  return f == F_CHUNK ? v < cur : v > cur;
}

int sft_adapt_update(struct sft_adapt *a, const struct sft_adapt_sample *s,
                     uint64_t now) {
  uint64_t raw[NFIELD], band[NFIELD], cur[NFIELD];
  int changed = 0;
  static const int bit[NFIELD] = {
      SFT_ADAPT_CHANGED_CHUNK, SFT_ADAPT_CHANGED_PARITY,
      SFT_ADAPT_CHANGED_CONNS, SFT_ADAPT_CHANGED_WINDOW,
      SFT_ADAPT_CHANGED_WINDOW};
  if (!a || !s || s->loss_ppm > SFT_ADAPT_PPM)
    return SFT_ERR_INVAL;
  double loss = (double)s->loss_ppm / SFT_ADAPT_PPM;
  int first = a->updates == 0;
  a->loss = first ? loss : ewma(a->loss, loss);
  a->nloss++;
  a->lloss += (loss - a->lloss) / (double)(a->nloss < 16 ? a->nloss : 16);
  if (s->srtt_ns) {
    a->rtt_ns =
        a->have_rtt ? ewma(a->rtt_ns, (double)s->srtt_ns) : (double)s->srtt_ns;
    a->have_rtt = 1;
  }
  if (s->min_rtt_ns && (!a->min_rtt || s->min_rtt_ns < a->min_rtt))
    a->min_rtt = s->min_rtt_ns;
  if (s->delivery_rate) {
    a->drate = a->have_drate ? ewma(a->drate, (double)s->delivery_rate)
                             : (double)s->delivery_rate;
    a->have_drate = 1;
  }
  if (s->link_rate) {
    a->lrate = a->have_lrate ? ewma(a->lrate, (double)s->link_rate)
                             : (double)s->link_rate;
    a->have_lrate = 1;
  }
  a->updates++;

  rules(a, 1.0, raw);
  rules(a, WORSE, band);
  cur[F_CHUNK] = a->cur.chunk_size;
  cur[F_PARITY] = a->cur.parity;
  cur[F_CONNS] = a->cur.conns;
  cur[F_WINDOW] = a->cur.window;
  cur[F_SOCKBUF] = a->cur.sockbuf;
  for (int f = 0; f < NFIELD; f++) {
    uint64_t v = cur[f];
    if (first || safer(f, raw[f], cur[f])) {
      v = raw[f];
      a->pend[f] = 0;
    } else if (safer(f, cur[f], band[f])) {
      /* Relaxing: only what the worse inputs still allow, held long. */
      if (!a->pend[f] || a->pend_val[f] != band[f]) {
        a->pend[f] = 1;
        a->pend_val[f] = band[f];
        a->pend_since[f] = now;
      }
      if (now - a->pend_since[f] >= a->cfg.hold_ns) {
        v = band[f];
        a->pend[f] = 0;
      }
    } else {
      a->pend[f] = 0;
    }
    if (v != cur[f]) {
      cur[f] = v;
      changed |= bit[f];
    }
  }
  a->cur.chunk_size = (uint32_t)cur[F_CHUNK];
  a->cur.parity = (uint32_t)cur[F_PARITY];
  a->cur.conns = (uint32_t)cur[F_CONNS];
  a->cur.window = cur[F_WINDOW];
  a->cur.sockbuf = cur[F_SOCKBUF];
  return changed;
}

int sft_adapt_long_loss(const struct sft_adapt *a, double *loss) {
  if (!a || a->nloss < SFT_ADAPT_CONNS_MIN_SAMPLES)
    return 0;
  *loss = a->lloss;
  return 1;
}

void sft_adapt_get(const struct sft_adapt *a, struct sft_adapt_decision *d) {
  if (a && d)
    *d = a->cur;
}
