/* Path table: windowed loss, status with hysteresis, chunk placement.
 * Contracts in lib/include/sft/path.h; design notes in
 * docs/internals/path.md. */
#include "sft/path.h"

#include <string.h>

#define NONE (-1)
#define MS 1000000ull
#define WEIGHT_SCALE 65536u /* normalised weight of the fastest path */
#define CREDIT_CAP ((int64_t)1 << 60)

void sft_path_config_default(struct sft_path_config *cfg) {
  if (!cfg)
    return;
  memset(cfg, 0, sizeof(*cfg));
  cfg->degrade_enter_ppm = 200000;
  cfg->degrade_exit_ppm = 150000;
  cfg->fail_enter_ppm = 500000;
  cfg->fail_exit_ppm = 350000;
  cfg->min_pkts = 20;
  cfg->ack_timeout_ptos = 3;
  cfg->recover_acks = 3;
  cfg->recover_ns = 1000 * MS;
  cfg->probe_min_ns = 100 * MS;
  cfg->probe_max_ns = 2000 * MS;
}

int sft_path_init(struct sft_path_table *t, const struct sft_path_config *cfg) {
  struct sft_path_config def;
  if (!t)
    return SFT_ERR_INVAL;
  if (!cfg) {
    sft_path_config_default(&def);
    cfg = &def;
  }
  if (cfg->degrade_exit_ppm > cfg->degrade_enter_ppm ||
      cfg->degrade_enter_ppm > cfg->fail_enter_ppm ||
      cfg->fail_enter_ppm > SFT_PATH_PPM ||
      cfg->fail_exit_ppm > cfg->fail_enter_ppm || cfg->ack_timeout_ptos == 0 ||
      cfg->probe_min_ns == 0 || cfg->probe_min_ns > cfg->probe_max_ns)
    return SFT_ERR_INVAL;
  memset(t, 0, sizeof(*t));
  t->cfg = *cfg;
  return 0;
}

static struct sft_path_slot *slot(struct sft_path_table *t, unsigned id) {
  if (!t || id >= SFT_PATH_MAX || !t->p[id].used)
    return NULL;
  return &t->p[id];
}

static int usable(const struct sft_path_slot *p) {
  return p->used && p->status != SFT_PATH_FAILED;
}

int sft_path_add(struct sft_path_table *t, uint64_t now, unsigned *id) {
  if (!t || !id)
    return SFT_ERR_INVAL;
  for (unsigned i = 0; i < SFT_PATH_MAX; i++) {
    struct sft_path_slot *p = &t->p[i];
    if (p->used)
      continue;
    memset(p, 0, sizeof(*p));
    p->used = 1;
    p->status = SFT_PATH_ACTIVE;
    p->reason = SFT_PATH_R_NONE;
    p->better_target = NONE;
    p->progress_at = now;
    p->changed_at = now;
    p->pto_ns = 1000 * MS;
    *id = i;
    return 0;
  }
  return SFT_ERR_FULL;
}

int sft_path_remove(struct sft_path_table *t, unsigned id) {
  struct sft_path_slot *p;
  if (!t)
    return SFT_ERR_INVAL;
  if (!(p = slot(t, id)))
    return SFT_ERR_NOT_FOUND;
  memset(p, 0, sizeof(*p));
  return 0;
}

static void set_status(struct sft_path_table *t, unsigned id, int st,
                       int reason, uint64_t now) {
  struct sft_path_slot *p = &t->p[id];
  int old = p->status;
  if (old == st)
    return;
  p->status = st;
  p->reason = reason;
  p->changed_at = now;
  p->changes++;
  p->better_target = NONE;
  if (st == SFT_PATH_FAILED) {
    /* Fresh evidence only: the window restarts, probing starts now. */
    p->win_len = 0;
    p->win_pos = 0;
    p->acks_since_fail = 0;
    p->probe_at = now;
    p->probe_iv = t->cfg.probe_min_ns;
  } else if (old == SFT_PATH_FAILED) {
    p->progress_at = now;
  }
  t->seq++;
  if (t->cfg.on_change)
    t->cfg.on_change(t->cfg.ud, id, old, st, reason, now);
}

/* Windowed loss in ppm; *judged = enough packets to trust it. */
static uint32_t window_loss(const struct sft_path_table *t,
                            const struct sft_path_slot *p, int *judged) {
  uint64_t sent = 0, lost = 0;
  for (unsigned i = 0; i < p->win_len; i++) {
    sent += p->win_sent[i];
    lost += p->win_lost[i];
  }
  *judged = sent > 0 && sent >= t->cfg.min_pkts;
  if (sent == 0)
    return 0;
  if (lost >= sent)
    return SFT_PATH_PPM;
  return (uint32_t)(lost * SFT_PATH_PPM / sent);
}

/* Delta of a cumulative counter; a counter that went backwards restarted. */
static uint64_t delta(uint64_t cur, uint64_t prev) {
  return cur >= prev ? cur - prev : cur;
}

static uint32_t clamp32(uint64_t v) {
  return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static int severity(int st) {
  return st; /* Active 0 < Degraded 1 < Failed 2 */
}

int sft_path_sample(struct sft_path_table *t, unsigned id, uint64_t now,
                    const struct sft_path_sample *s) {
  struct sft_path_slot *p;
  const struct sft_path_config *c;
  uint64_t ds, dl;
  int progress, judged, worse = NONE, worse_reason = SFT_PATH_R_NONE;
  int better = NONE;
  uint32_t loss;
  if (!t || !s)
    return SFT_ERR_INVAL;
  if (!(p = slot(t, id)))
    return SFT_ERR_NOT_FOUND;
  c = &t->cfg;

  /* Metrics. */
  if (s->srtt_ns) {
    p->srtt_ns = s->srtt_ns;
    p->rttvar_ns = s->rttvar_ns;
  }
  if (s->delivery_rate)
    p->rate = s->delivery_rate;
  if (s->pto_ns) {
    p->pto_ns = s->pto_ns;
  } else if (p->srtt_ns) {
    uint64_t v = 4 * p->rttvar_ns;
    p->pto_ns = p->srtt_ns + (v > MS ? v : MS) + 25 * MS;
  }

  /* Loss window: one entry per sample that carried packets. */
  ds = p->has_sample ? delta(s->pkts_sent, p->last_sent) : s->pkts_sent;
  dl = p->has_sample ? delta(s->pkts_lost, p->last_lost) : s->pkts_lost;
  if (ds || dl) {
    p->win_sent[p->win_pos] = clamp32(ds);
    p->win_lost[p->win_pos] = clamp32(dl);
    p->win_pos = (p->win_pos + 1) % SFT_PATH_LOSS_WINDOW;
    if (p->win_len < SFT_PATH_LOSS_WINDOW)
      p->win_len++;
  }

  /* Acknowledgement progress. */
  if (p->has_sample)
    progress = delta(s->bytes_acked, p->last_acked) > 0 ||
               s->last_ack_ns > p->last_ack_ns;
  else
    progress = s->bytes_acked > 0 || s->last_ack_ns > 0;
  if (progress)
    p->progress_at = now;
  else if (s->bytes_in_flight && !p->in_flight)
    p->progress_at = now; /* data just became outstanding: clock starts */
  p->last_sent = s->pkts_sent;
  p->last_lost = s->pkts_lost;
  p->last_acked = s->bytes_acked;
  if (s->last_ack_ns > p->last_ack_ns)
    p->last_ack_ns = s->last_ack_ns;
  p->in_flight = s->bytes_in_flight;
  p->has_sample = 1;
  if (p->status == SFT_PATH_FAILED && progress)
    p->acks_since_fail++;

  /* Getting worse: immediate. */
  loss = window_loss(t, p, &judged);
  if (s->bytes_in_flight && now > p->progress_at &&
      now - p->progress_at > (uint64_t)c->ack_timeout_ptos * p->pto_ns) {
    worse = SFT_PATH_FAILED;
    worse_reason = SFT_PATH_R_ACK_TIMEOUT;
  } else if (judged && loss > c->fail_enter_ppm) {
    worse = SFT_PATH_FAILED;
    worse_reason = SFT_PATH_R_LOSS;
  } else if (judged && loss > c->degrade_enter_ppm) {
    worse = SFT_PATH_DEGRADED;
    worse_reason = SFT_PATH_R_LOSS;
  }
  if (worse != NONE && severity(worse) > severity(p->status)) {
    set_status(t, id, worse, worse_reason, now);
    return 0;
  }

  /* Getting better: below the exit threshold for recover_ns. */
  if (p->status == SFT_PATH_DEGRADED) {
    if (judged && loss < c->degrade_exit_ppm && worse == NONE)
      better = SFT_PATH_ACTIVE;
  } else if (p->status == SFT_PATH_FAILED) {
    if (p->acks_since_fail >= c->recover_acks &&
        worse_reason != SFT_PATH_R_ACK_TIMEOUT &&
        (!judged || loss < c->fail_exit_ppm))
      better = judged && loss >= c->degrade_exit_ppm ? SFT_PATH_DEGRADED
                                                     : SFT_PATH_ACTIVE;
  }
  if (better == NONE) {
    p->better_target = NONE;
  } else if (p->better_target != better) {
    p->better_target = better;
    p->better_since = now;
  }
  if (better != NONE && now - p->better_since >= c->recover_ns)
    set_status(t, id, better, SFT_PATH_R_RECOVERED, now);
  return 0;
}

int sft_path_set_failed(struct sft_path_table *t, unsigned id, uint64_t now) {
  if (!t)
    return SFT_ERR_INVAL;
  if (!slot(t, id))
    return SFT_ERR_NOT_FOUND;
  set_status(t, id, SFT_PATH_FAILED, SFT_PATH_R_MANUAL, now);
  return 0;
}

int sft_path_want_probe(struct sft_path_table *t, unsigned id, uint64_t now) {
  struct sft_path_slot *p = slot(t, id);
  if (!p || p->status != SFT_PATH_FAILED || now < p->probe_at)
    return 0;
  p->probe_at = now + p->probe_iv;
  p->probe_iv = p->probe_iv * 2 > t->cfg.probe_max_ns ? t->cfg.probe_max_ns
                                                      : p->probe_iv * 2;
  p->probes++;
  return 1;
}

int sft_path_next_probe(const struct sft_path_table *t, uint64_t *at) {
  int found = 0;
  uint64_t best = UINT64_MAX;
  if (!t || !at)
    return SFT_ERR_INVAL;
  for (unsigned i = 0; i < SFT_PATH_MAX; i++) {
    const struct sft_path_slot *p = &t->p[i];
    if (p->used && p->status == SFT_PATH_FAILED && p->probe_at <= best) {
      best = p->probe_at;
      found = 1;
    }
  }
  if (!found)
    return SFT_ERR_EMPTY;
  *at = best;
  return 0;
}

static uint64_t rtt_key(const struct sft_path_slot *p) {
  return p->srtt_ns ? p->srtt_ns : UINT64_MAX;
}

/* Lowest RTT among paths of status |st|; NONE if there is none. */
static int lowest_rtt(const struct sft_path_table *t, int st) {
  int best = NONE;
  for (unsigned i = 0; i < SFT_PATH_MAX; i++) {
    const struct sft_path_slot *p = &t->p[i];
    if (!p->used || p->status != st)
      continue;
    if (best == NONE || rtt_key(p) < rtt_key(&t->p[best]))
      best = (int)i;
  }
  return best;
}

static int pick_weighted(struct sft_path_table *t, uint32_t bytes) {
  unsigned mask = 0, n = 0, nknown = 0;
  uint64_t w[SFT_PATH_MAX], sum_known = 0, maxw = 0, total = 0;
  int best = NONE;
  for (unsigned i = 0; i < SFT_PATH_MAX; i++) {
    if (!usable(&t->p[i]))
      continue;
    mask |= 1u << i;
    n++;
    if (t->p[i].rate) {
      nknown++;
      sum_known += t->p[i].rate > UINT64_MAX / SFT_PATH_MAX
                       ? UINT64_MAX / SFT_PATH_MAX
                       : t->p[i].rate;
    }
  }
  if (n == 0)
    return NONE;
  if (mask != t->usable_mask) { /* the set changed: start a fresh round */
    for (unsigned i = 0; i < SFT_PATH_MAX; i++)
      t->p[i].credit = 0;
    t->usable_mask = mask;
  }
  for (unsigned i = 0; i < SFT_PATH_MAX; i++) {
    if (!(mask & (1u << i)))
      continue;
    if (nknown == 0)
      w[i] = 1;
    else if (t->p[i].rate)
      w[i] = t->p[i].rate;
    else
      w[i] = sum_known / nknown; /* untried path: an average share */
    if (w[i] > maxw)
      maxw = w[i];
  }
  for (unsigned i = 0; i < SFT_PATH_MAX; i++) {
    if (!(mask & (1u << i)))
      continue;
    __extension__ unsigned __int128 s =
        (unsigned __int128)w[i] * WEIGHT_SCALE / maxw;
    w[i] = s ? (uint64_t)s : 1;
    total += w[i];
  }
  /* Smooth weighted round robin with byte-sized steps: every usable path
   * earns weight * bytes, the richest sends and pays total * bytes. */
  for (unsigned i = 0; i < SFT_PATH_MAX; i++) {
    struct sft_path_slot *p = &t->p[i];
    if (!(mask & (1u << i)))
      continue;
    p->credit += (int64_t)(w[i] * bytes);
    if (p->credit > CREDIT_CAP)
      p->credit = CREDIT_CAP;
    if (best == NONE || p->credit > t->p[best].credit)
      best = (int)i;
  }
  t->p[best].credit -= (int64_t)(total * bytes);
  if (t->p[best].credit < -CREDIT_CAP)
    t->p[best].credit = -CREDIT_CAP;
  return best;
}

int sft_path_pick(struct sft_path_table *t, int cls, uint64_t now,
                  uint32_t bytes, unsigned *id) {
  int best;
  (void)now;
  if (!t || !id || cls < SFT_SCHED_CRITICAL || cls > SFT_SCHED_NORMAL)
    return SFT_ERR_INVAL;
  if (cls == SFT_SCHED_CRITICAL) {
    best = lowest_rtt(t, SFT_PATH_ACTIVE);
    if (best == NONE)
      best = lowest_rtt(t, SFT_PATH_DEGRADED);
  } else {
    if (bytes == 0)
      return SFT_ERR_INVAL;
    best = pick_weighted(t, bytes);
  }
  if (best == NONE)
    return SFT_ERR_AGAIN;
  t->p[best].picks++;
  t->p[best].picked_bytes += bytes;
  *id = (unsigned)best;
  return 0;
}

int sft_path_pick_parity(struct sft_path_table *t, const uint32_t *data_counts,
                         size_t n, uint64_t now, unsigned *id) {
  int best = NONE;
  uint32_t bc = 0;
  (void)now;
  if (!t || !id || n > SFT_PATH_MAX || (n && !data_counts))
    return SFT_ERR_INVAL;
  for (unsigned i = 0; i < SFT_PATH_MAX; i++) {
    const struct sft_path_slot *p = &t->p[i];
    uint32_t cnt = i < n ? data_counts[i] : 0;
    if (!usable(p))
      continue;
    if (best != NONE) {
      const struct sft_path_slot *b = &t->p[best];
      if (cnt > bc)
        continue;
      if (cnt == bc) {
        if (p->status > b->status)
          continue;
        if (p->status == b->status && rtt_key(p) >= rtt_key(b))
          continue;
      }
    }
    best = (int)i;
    bc = cnt;
  }
  if (best == NONE)
    return SFT_ERR_AGAIN;
  t->p[best].picks++;
  *id = (unsigned)best;
  return 0;
}

int sft_path_get(const struct sft_path_table *t, unsigned id,
                 struct sft_path_info *out) {
  const struct sft_path_slot *p;
  int judged;
  if (!t || !out)
    return SFT_ERR_INVAL;
  if (id >= SFT_PATH_MAX || !t->p[id].used)
    return SFT_ERR_NOT_FOUND;
  p = &t->p[id];
  memset(out, 0, sizeof(*out));
  out->status = p->status;
  out->reason = p->reason;
  out->loss_ppm = window_loss(t, p, &judged);
  out->loss_judged = (uint32_t)judged;
  if (!judged)
    out->loss_ppm = 0;
  out->srtt_ns = p->srtt_ns;
  out->delivery_rate = p->rate;
  out->pto_ns = p->pto_ns;
  out->changed_at = p->changed_at;
  out->changes = p->changes;
  out->picks = p->picks;
  out->picked_bytes = p->picked_bytes;
  out->probes = p->probes;
  return 0;
}

uint64_t sft_path_seq(const struct sft_path_table *t) {
  return t ? t->seq : 0;
}

unsigned sft_path_count(const struct sft_path_table *t) {
  unsigned n = 0;
  for (unsigned i = 0; t && i < SFT_PATH_MAX; i++)
    n += t->p[i].used != 0;
  return n;
}

unsigned sft_path_usable(const struct sft_path_table *t) {
  unsigned n = 0;
  for (unsigned i = 0; t && i < SFT_PATH_MAX; i++)
    n += usable(&t->p[i]);
  return n;
}

const char *sft_path_status_name(int status) {
  switch (status) {
  case SFT_PATH_ACTIVE:
    return "active";
  case SFT_PATH_DEGRADED:
    return "degraded";
  case SFT_PATH_FAILED:
    return "failed";
  default:
    return NULL;
  }
}
