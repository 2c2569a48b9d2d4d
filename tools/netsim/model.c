/* netsim impairment model; see model.h and docs/internals/netsim.md. */
#include "netsim/model.h"

#include <math.h>
#include <string.h>

#include "sft/err.h"

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

void netsim_rng_seed(struct netsim_rng *r, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

uint64_t netsim_rng_next(struct netsim_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

/* Uniform in [0, n) for n > 0 (Lemire's multiply-shift; bias < n/2^64). */
static uint64_t rng_below(struct netsim_rng *r, uint64_t n) {
  return (uint64_t)(((unsigned __int128)netsim_rng_next(r) * n) >> 64);
}

bool netsim_rng_chance(struct netsim_rng *r, uint32_t ppb) {
  if (ppb == 0)
    return false;
  if (ppb >= NETSIM_PPB)
    return true;
  return rng_below(r, NETSIM_PPB) < ppb;
}

/* Uniform double in [0, 1). */
static double rng_unit(struct netsim_rng *r) {
  return (double)(netsim_rng_next(r) >> 11) * 0x1.0p-53;
}

void netsim_dir_cfg_default(struct netsim_dir_cfg *c) {
  memset(c, 0, sizeof(*c));
  c->queue_ns = NETSIM_DEFAULT_QUEUE_NS;
  c->reorder_delay_ns = NETSIM_DEFAULT_REORDER_DELAY_NS;
}

static uint32_t to_ppb(double p) {
  double v = p * (double)NETSIM_PPB + 0.5;
  if (v <= 0)
    return 0;
  if (v >= (double)NETSIM_PPB)
    return NETSIM_PPB;
  return (uint32_t)v;
}

int netsim_ge_from_loss_burst(struct netsim_dir_cfg *c, double loss,
                              double burst) {
  if (!(loss >= 0 && loss < 1) || !(burst >= 1 && burst <= 1e9))
    return SFT_ERR_RANGE;
  double pbg = 1.0 / burst;
  double pgb = loss * pbg / (1.0 - loss);
  if (pgb > 1.0)
    return SFT_ERR_RANGE; /* e.g. 90 % loss with bursts of 1 */
  c->ge_pbg = to_ppb(pbg);
  c->ge_pgb = to_ppb(pgb);
  c->ge_loss_good = 0;
  c->ge_loss_bad = loss > 0 ? NETSIM_PPB : 0;
  return 0;
}

bool netsim_in_outage(const struct netsim_dir_cfg *c, uint64_t rel) {
  for (uint32_t i = 0; i < c->n_outages && i < NETSIM_MAX_OUTAGES; i++) {
    const struct netsim_outage *o = &c->outages[i];
    if (o->count == 0 || rel < o->start_ns)
      continue;
    uint64_t off = rel - o->start_ns;
    if (o->count == 1 || o->period_ns == 0) {
      if (off < o->dur_ns)
        return true;
      continue;
    }
    uint64_t k = off / o->period_ns;
    if (k < o->count && off - k * o->period_ns < o->dur_ns)
      return true;
  }
  return false;
}

void netsim_model_init(struct netsim_model *m, const struct netsim_dir_cfg *cfg,
                       uint64_t seed, uint64_t epoch_ns) {
  memset(m, 0, sizeof(*m));
  m->cfg = *cfg;
  netsim_rng_seed(&m->rng, seed);
  m->epoch_ns = epoch_ns;
}

void netsim_model_set_cfg(struct netsim_model *m,
                          const struct netsim_dir_cfg *cfg) {
  m->cfg = *cfg;
}

void netsim_model_set_blackhole(struct netsim_model *m, bool on) {
  m->blackhole = on;
}

static bool ge_lose(struct netsim_model *m) {
  const struct netsim_dir_cfg *c = &m->cfg;
  if (c->ge_pgb == 0 && c->ge_loss_good == 0 && !m->ge_bad)
    return false;
  if (m->ge_bad) {
    if (netsim_rng_chance(&m->rng, c->ge_pbg))
      m->ge_bad = false;
  } else if (netsim_rng_chance(&m->rng, c->ge_pgb)) {
    m->ge_bad = true;
  }
  return netsim_rng_chance(&m->rng,
                           m->ge_bad ? c->ge_loss_bad : c->ge_loss_good);
}

/* Signed jitter offset in [-J, +J]. */
static int64_t jitter_offset(struct netsim_model *m) {
  uint64_t j = m->cfg.jitter_ns;
  if (j == 0)
    return 0;
  if (m->cfg.jitter_dist == NETSIM_JITTER_NORMAL) {
    /* Box-Muller, sigma = J/2, clamped to +-J. */
    double u1 = rng_unit(&m->rng), u2 = rng_unit(&m->rng);
    double z = sqrt(-2.0 * log(1.0 - u1)) * cos(6.283185307179586 * u2);
    double v = z * (double)j / 2.0;
    if (v > (double)j)
      v = (double)j;
    if (v < -(double)j)
      v = -(double)j;
    return (int64_t)llround(v);
  }
  return (int64_t)rng_below(&m->rng, 2 * j + 1) - (int64_t)j;
}

static void corrupt_draw(struct netsim_model *m, struct netsim_copy *cp,
                         size_t len) {
  cp->corrupt_xor = 0;
  cp->corrupt_off = 0;
  if (len == 0 || !netsim_rng_chance(&m->rng, m->cfg.corrupt_ppb))
    return;
  cp->corrupt_off = (uint32_t)rng_below(&m->rng, len);
  cp->corrupt_xor = (uint8_t)(1 + rng_below(&m->rng, 255));
  m->c.corrupted++;
}

void netsim_model_packet(struct netsim_model *m, uint64_t now, size_t len,
                         struct netsim_decision *d) {
  const struct netsim_dir_cfg *c = &m->cfg;
  memset(d, 0, sizeof(*d));
  m->c.pkts_in++;
  m->c.bytes_in += len;

  /* 1. outage */
  uint64_t rel = now >= m->epoch_ns ? now - m->epoch_ns : 0;
  if (m->blackhole || netsim_in_outage(c, rel)) {
    d->verdict = NETSIM_DROP_OUTAGE;
    m->c.drop_outage++;
    return;
  }
  /* 2. loss: Bernoulli, then Gilbert-Elliott (GE state advances per packet
   * reaching this stage) */
  bool lost = netsim_rng_chance(&m->rng, c->loss_ppb);
  if (ge_lose(m))
    lost = true;
  if (lost) {
    d->verdict = NETSIM_DROP_LOSS;
    m->c.drop_loss++;
    return;
  }
  /* 3. drop-tail queue in front of a link of rate_bps */
  uint64_t t = now;
  if (c->rate_bps) {
    uint64_t start = m->link_free_ns > now ? m->link_free_ns : now;
    if (start - now > c->queue_ns) {
      d->verdict = NETSIM_DROP_QUEUE;
      m->c.drop_queue++;
      return;
    }
    uint64_t tx = ((uint64_t)len * 8u * NETSIM_NS_PER_S + c->rate_bps - 1) /
                  c->rate_bps;
    m->link_free_ns = start + tx;
    t = m->link_free_ns;
  }
  /* 4. delay + jitter, never earlier than the previous in-order delivery */
  int64_t off = jitter_offset(m);
  uint64_t dl = c->delay_ns;
  if (off < 0 && (uint64_t)(-off) > dl)
    dl = 0;
  else
    dl = (uint64_t)((int64_t)dl + off);
  t += dl;
  /* 5. reorder: a held-back packet gets an extra delay and does not hold
   * back the ones after it */
  if (netsim_rng_chance(&m->rng, c->reorder_ppb)) {
    t = (t > m->last_deliver_ns ? t : m->last_deliver_ns) + c->reorder_delay_ns;
    d->reordered = true;
    m->c.reordered++;
  } else {
    if (t < m->last_deliver_ns)
      t = m->last_deliver_ns;
    m->last_deliver_ns = t;
  }
  d->verdict = NETSIM_DELIVER;
  d->ncopies = 1;
  d->copy[0].deliver_ns = t;
  /* 6. duplicate: second copy right after the first */
  if (netsim_rng_chance(&m->rng, c->dup_ppb)) {
    d->ncopies = 2;
    d->copy[1].deliver_ns = t;
    m->c.duplicated++;
  }
  /* 7. corrupt, per copy */
  for (unsigned i = 0; i < d->ncopies; i++)
    corrupt_draw(m, &d->copy[i], len);
  m->c.pkts_out += d->ncopies;
  m->c.bytes_out += (uint64_t)len * d->ncopies;
}

void netsim_copy_apply(const struct netsim_copy *c, uint8_t *buf, size_t len) {
  if (c->corrupt_xor && c->corrupt_off < len)
    buf[c->corrupt_off] ^= c->corrupt_xor;
}
