/* netsim spec parser and formatter; syntax in spec.h. */
#include "netsim/spec.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sft/err.h"

#define MAX_TIME_NS (10 * NETSIM_NS_PER_S)          /* delay, jitter, queue */
#define MAX_OUTAGE_NS (1000000ull * NETSIM_NS_PER_S) /* outage times */
#define MAX_OUTAGE_COUNT 1000000u
#define MIN_RATE 1000ull
#define MAX_RATE 100000000000ull

void netsim_spec_default(struct netsim_spec *s) {
  memset(s, 0, sizeof(*s));
  netsim_dir_cfg_default(&s->up);
  netsim_dir_cfg_default(&s->down);
}

/* ---- numbers ------------------------------------------------------------ */

static const uint64_t pow10_tab[] = {1ull,          10ull,         100ull,
                                     1000ull,       10000ull,      100000ull,
                                     1000000ull,    10000000ull,   100000000ull,
                                     1000000000ull, 10000000000ull};

/* "I[.F]" at s[0..n): value * 10^scale into *out (an integer part of more
 * than 64 bits is RANGE); at most |scale| fraction digits (else MALFORMED);
 * *used = bytes read. Wide, so that "20386597900ns" (what the formatter
 * writes for 20.3865979s) is not refused for a scale-9 intermediate that a
 * 64-bit value could not hold. */
static int parse_fixed_wide(const char *s, size_t n, unsigned scale,
                            unsigned __int128 *out, size_t *used) {
  size_t i = 0;
  uint64_t ip = 0, fp = 0;
  unsigned fd = 0;
  bool any = false, big = false;
  while (i < n && s[i] >= '0' && s[i] <= '9') {
    uint64_t dg = (uint64_t)(s[i] - '0');
    if (big || ip > (UINT64_MAX - dg) / 10)
      big = true;
    else
      ip = ip * 10 + dg;
    any = true;
    i++;
  }
  if (i < n && s[i] == '.') {
    i++;
    bool anyf = false;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
      if (fd >= scale)
        return SFT_ERR_MALFORMED;
      fp = fp * 10 + (uint64_t)(s[i] - '0');
      fd++;
      anyf = true;
      i++;
    }
    if (!anyf)
      return SFT_ERR_MALFORMED;
  }
  if (!any)
    return SFT_ERR_MALFORMED;
  if (big)
    return SFT_ERR_RANGE;
  *out = (unsigned __int128)ip * pow10_tab[scale] +
         (unsigned __int128)fp * pow10_tab[scale - fd];
  *used = i;
  return 0;
}

/* As parse_fixed_wide, the value bounded by |limit| (else RANGE). */
static int parse_fixed(const char *s, size_t n, unsigned scale,
                       uint64_t limit, uint64_t *out, size_t *used) {
  unsigned __int128 v;
  int rv = parse_fixed_wide(s, n, scale, &v, used);
  if (rv)
    return rv;
  if (v > limit)
    return SFT_ERR_RANGE;
  *out = (uint64_t)v;
  return 0;
}

static size_t unit_len(const char *s, size_t n) {
  size_t i = 0;
  while (i < n && ((s[i] >= 'a' && s[i] <= 'z') || s[i] == '%'))
    i++;
  return i;
}

static bool unit_is(const char *u, size_t n, const char *lit) {
  return strlen(lit) == n && memcmp(u, lit, n) == 0;
}

/* Number with a unit from |units| (multipliers of 10^-scale), exact integer
 * result. Used for times (ns) and rates (bit/s). */
struct unit {
  const char *name;
  uint64_t mult;
};

static const struct unit time_units[] = {
    {"s", 1000000000ull}, {"ms", 1000000ull}, {"us", 1000ull}, {"ns", 1ull},
    {NULL, 0}};
static const struct unit rate_units[] = {{"gbit", 1000000000ull},
                                         {"mbit", 1000000ull},
                                         {"kbit", 1000ull},
                                         {"bit", 1ull},
                                         {NULL, 0}};

static int parse_unit_num(const char *s, size_t n, const struct unit *units,
                          uint64_t max, uint64_t *out, size_t *used) {
  unsigned __int128 v; /* < 2^64 * 10^9: times a unit <= 10^9 fits */
  size_t u;
  int rv = parse_fixed_wide(s, n, 9, &v, &u);
  if (rv)
    return rv;
  size_t ul = unit_len(s + u, n - u);
  for (const struct unit *t = units; t->name; t++) {
    if (!unit_is(s + u, ul, t->name))
      continue;
    unsigned __int128 x = v * t->mult;
    if (x % 1000000000u)
      return SFT_ERR_MALFORMED; /* finer than the base unit */
    x /= 1000000000u;
    if (x > max)
      return SFT_ERR_RANGE;
    *out = (uint64_t)x;
    *used = u + ul;
    return 0;
  }
  return SFT_ERR_MALFORMED;
}

static int parse_pct_at(const char *s, size_t n, uint32_t *out, size_t *used) {
  uint64_t v;
  size_t u;
  int rv = parse_fixed(s, n, 7, 100000000000ull, &v, &u);
  if (rv)
    return rv;
  if (u >= n || s[u] != '%')
    return SFT_ERR_MALFORMED;
  if (v > NETSIM_PPB)
    return SFT_ERR_RANGE;
  *out = (uint32_t)v;
  *used = u + 1;
  return 0;
}

static int parse_pct(const char *s, size_t n, uint32_t *out) {
  size_t u;
  int rv = parse_pct_at(s, n, out, &u);
  return rv ? rv : (u == n ? 0 : SFT_ERR_MALFORMED);
}

static int parse_time(const char *s, size_t n, uint64_t max, uint64_t *out) {
  size_t u;
  int rv = parse_unit_num(s, n, time_units, max, out, &u);
  return rv ? rv : (u == n ? 0 : SFT_ERR_MALFORMED);
}

/* [Nx]D[/P]@S */
static int parse_outage(const char *s, size_t n, struct netsim_outage *o) {
  size_t i = 0, u;
  uint64_t cnt = 1;
  while (i < n && s[i] >= '0' && s[i] <= '9')
    i++;
  if (i < n && s[i] == 'x') {
    int rv = parse_fixed(s, i, 0, UINT32_MAX, &cnt, &u);
    if (rv)
      return rv;
    if (u != i)
      return SFT_ERR_MALFORMED;
    i++;
  } else {
    i = 0;
  }
  uint64_t d, p = 0, st;
  int rv = parse_unit_num(s + i, n - i, time_units, MAX_OUTAGE_NS, &d, &u);
  if (rv)
    return rv;
  i += u;
  bool have_p = false;
  if (i < n && s[i] == '/') {
    i++;
    rv = parse_unit_num(s + i, n - i, time_units, MAX_OUTAGE_NS, &p, &u);
    if (rv)
      return rv;
    i += u;
    have_p = true;
  }
  if (i >= n || s[i] != '@')
    return SFT_ERR_MALFORMED;
  i++;
  rv = parse_unit_num(s + i, n - i, time_units, MAX_OUTAGE_NS, &st, &u);
  if (rv)
    return rv;
  if (i + u != n)
    return SFT_ERR_MALFORMED;
  if (cnt < 1 || cnt > MAX_OUTAGE_COUNT || d == 0)
    return SFT_ERR_RANGE;
  if (cnt > 1 && (!have_p || p < d || p == 0))
    return SFT_ERR_RANGE;
  o->count = (uint32_t)cnt;
  o->dur_ns = d;
  o->period_ns = cnt > 1 ? p : 0;
  o->start_ns = st;
  return 0;
}

/* ---- items -------------------------------------------------------------- */

enum key_id {
  K_LOSS, K_GE, K_GE_PGB, K_GE_PBG, K_GE_LOSSG, K_GE_LOSSB, K_DELAY,
  K_JITTER, K_JITTERDIST, K_RATE, K_QUEUE, K_REORDER, K_REORDERDELAY, K_DUP,
  K_CORRUPT, K_OUTAGE, K_SEED, K_NONE
};

static const char *const key_names[] = {
    "loss",  "ge",         "ge_pgb", "ge_pbg",  "ge_lossg",     "ge_lossb",
    "delay", "jitter",     "jitterdist", "rate", "queue",       "reorder",
    "reorderdelay", "dup", "corrupt", "outage", "seed"};

static enum key_id lookup_key(const char *k, size_t n) {
  for (int i = 0; i < K_NONE; i++)
    if (unit_is(k, n, key_names[i]))
      return (enum key_id)i;
  return K_NONE;
}

static int apply_dir(struct netsim_dir_cfg *c, enum key_id k, const char *v,
                     size_t n) {
  int rv;
  switch (k) {
  case K_LOSS: return parse_pct(v, n, &c->loss_ppb);
  case K_GE_PGB: return parse_pct(v, n, &c->ge_pgb);
  case K_GE_PBG: return parse_pct(v, n, &c->ge_pbg);
  case K_GE_LOSSG: return parse_pct(v, n, &c->ge_loss_good);
  case K_GE_LOSSB: return parse_pct(v, n, &c->ge_loss_bad);
  case K_REORDER: return parse_pct(v, n, &c->reorder_ppb);
  case K_DUP: return parse_pct(v, n, &c->dup_ppb);
  case K_CORRUPT: return parse_pct(v, n, &c->corrupt_ppb);
  case K_DELAY: return parse_time(v, n, MAX_TIME_NS, &c->delay_ns);
  case K_JITTER: return parse_time(v, n, MAX_TIME_NS, &c->jitter_ns);
  case K_QUEUE: return parse_time(v, n, MAX_TIME_NS, &c->queue_ns);
  case K_REORDERDELAY:
    return parse_time(v, n, MAX_TIME_NS, &c->reorder_delay_ns);
  case K_JITTERDIST:
    if (unit_is(v, n, "uniform"))
      c->jitter_dist = NETSIM_JITTER_UNIFORM;
    else if (unit_is(v, n, "normal"))
      c->jitter_dist = NETSIM_JITTER_NORMAL;
    else
      return SFT_ERR_MALFORMED;
    return 0;
  case K_RATE: {
    size_t u;
    uint64_t r;
    rv = parse_unit_num(v, n, rate_units, UINT64_MAX, &r, &u);
    if (rv)
      return rv;
    if (u != n)
      return SFT_ERR_MALFORMED;
    if (r < MIN_RATE || r > MAX_RATE)
      return SFT_ERR_RANGE;
    c->rate_bps = r;
    return 0;
  }
  case K_GE: {
    uint32_t loss;
    uint64_t burst;
    size_t u, u2;
    rv = parse_pct_at(v, n, &loss, &u);
    if (rv)
      return rv;
    if (u >= n || v[u] != ':')
      return SFT_ERR_MALFORMED;
    rv = parse_fixed(v + u + 1, n - u - 1, 3, 1000000000ull, &burst, &u2);
    if (rv)
      return rv;
    if (u + 1 + u2 != n)
      return SFT_ERR_MALFORMED;
    return netsim_ge_from_loss_burst(c, (double)loss / NETSIM_PPB,
                                     (double)burst / 1000.0);
  }
  case K_OUTAGE: {
    struct netsim_outage o;
    rv = parse_outage(v, n, &o);
    if (rv)
      return rv;
    if (c->n_outages >= NETSIM_MAX_OUTAGES)
      return SFT_ERR_FULL;
    c->outages[c->n_outages++] = o;
    return 0;
  }
  default: return SFT_ERR_INVAL;
  }
}

static void set_err(struct netsim_spec_err *err, const char *key, size_t n,
                    size_t off) {
  if (!err)
    return;
  if (n >= sizeof(err->key))
    n = sizeof(err->key) - 1;
  memcpy(err->key, key, n);
  err->key[n] = '\0';
  err->offset = off;
}

int netsim_spec_parse(const char *str, size_t len, struct netsim_spec *out,
                      struct netsim_spec_err *err) {
  struct netsim_spec s;
  netsim_spec_default(&s);
  set_err(err, "", 0, 0);
  if (len > NETSIM_SPEC_MAX_LEN)
    return SFT_ERR_TOO_LARGE;
  size_t pos = 0;
  while (len > 0) {
    const char *it = str + pos;
    size_t end = pos;
    while (end < len && str[end] != ',')
      end++;
    size_t n = end - pos;
    const char *eq = memchr(it, '=', n);
    size_t kn = eq ? (size_t)(eq - it) : n;
    set_err(err, it, kn, pos);
    if (!eq || kn == 0)
      return SFT_ERR_INVAL;
    const char *k = it;
    int which = 3; /* bit 0 up, bit 1 down */
    if (kn > 3 && memcmp(k, "up.", 3) == 0) {
      which = 1;
      k += 3;
    } else if (kn > 5 && memcmp(k, "down.", 5) == 0) {
      which = 2;
      k += 5;
    }
    enum key_id id = lookup_key(k, kn - (size_t)(k - it));
    if (id == K_NONE)
      return SFT_ERR_INVAL;
    const char *v = eq + 1;
    size_t vn = n - kn - 1;
    int rv;
    if (id == K_SEED) {
      size_t u;
      if (which != 3)
        return SFT_ERR_INVAL;
      rv = parse_fixed(v, vn, 0, UINT64_MAX, &s.seed, &u);
      if (rv == 0 && (u != vn || memchr(v, '.', vn)))
        rv = SFT_ERR_MALFORMED;
      if (rv)
        return rv;
    } else {
      if ((which & 1) && (rv = apply_dir(&s.up, id, v, vn)) != 0)
        return rv;
      if ((which & 2) && (rv = apply_dir(&s.down, id, v, vn)) != 0)
        return rv;
    }
    if (end == len)
      break;
    pos = end + 1;
    if (pos == len) { /* trailing comma */
      set_err(err, "", 0, pos);
      return SFT_ERR_INVAL;
    }
  }
  set_err(err, "", 0, 0);
  *out = s;
  return 0;
}

/* ---- formatter ---------------------------------------------------------- */

struct fmt {
  char *buf;
  size_t cap, len;
  bool over;
};

static void put(struct fmt *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(struct fmt *f, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  size_t room = f->len < f->cap ? f->cap - f->len : 0;
  int n = vsnprintf(f->buf + (room ? f->len : 0), room, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= room) {
    f->over = true;
    f->len = f->cap;
  } else {
    f->len += (size_t)n;
  }
}

static void fmt_pct(char *o, size_t cap, uint32_t ppb) {
  uint32_t ip = ppb / 10000000u, fp = ppb % 10000000u;
  if (fp == 0) {
    snprintf(o, cap, "%" PRIu32 "%%", ip);
    return;
  }
  char frac[8];
  snprintf(frac, sizeof(frac), "%07" PRIu32, fp);
  size_t l = 7;
  while (l > 0 && frac[l - 1] == '0')
    l--;
  frac[l] = '\0';
  snprintf(o, cap, "%" PRIu32 ".%s%%", ip, frac);
}

static void fmt_units(char *o, size_t cap, uint64_t v,
                      const struct unit *units) {
  const struct unit *t = units;
  for (; t[1].name; t++)
    if (v % t->mult == 0)
      break;
  snprintf(o, cap, "%" PRIu64 "%s", v / t->mult, t->name);
}

static void fmt_outage(char *o, size_t cap, const struct netsim_outage *x) {
  char d[32], p[32], s[32];
  fmt_units(d, sizeof(d), x->dur_ns, time_units);
  fmt_units(p, sizeof(p), x->period_ns, time_units);
  fmt_units(s, sizeof(s), x->start_ns, time_units);
  if (x->count > 1)
    snprintf(o, cap, "%" PRIu32 "x%s/%s@%s", x->count, d, p, s);
  else
    snprintf(o, cap, "%s@%s", d, s);
}

/* Value of key |k| in |c| as text into |o|; false if at the default. */
static bool field_text(const struct netsim_dir_cfg *c, enum key_id k, char *o,
                       size_t cap) {
  struct netsim_dir_cfg d;
  netsim_dir_cfg_default(&d);
  switch (k) {
#define PCT(id, f)                                                             \
  case id:                                                                     \
    if (c->f == d.f)                                                           \
      return false;                                                            \
    fmt_pct(o, cap, c->f);                                                     \
    return true;
#define TIM(id, f)                                                             \
  case id:                                                                     \
    if (c->f == d.f)                                                           \
      return false;                                                            \
    fmt_units(o, cap, c->f, time_units);                                       \
    return true;
    PCT(K_LOSS, loss_ppb)
    PCT(K_GE_PGB, ge_pgb)
    PCT(K_GE_PBG, ge_pbg)
    PCT(K_GE_LOSSG, ge_loss_good)
    PCT(K_GE_LOSSB, ge_loss_bad)
    PCT(K_REORDER, reorder_ppb)
    PCT(K_DUP, dup_ppb)
    PCT(K_CORRUPT, corrupt_ppb)
    TIM(K_DELAY, delay_ns)
    TIM(K_JITTER, jitter_ns)
    TIM(K_QUEUE, queue_ns)
    TIM(K_REORDERDELAY, reorder_delay_ns)
#undef PCT
#undef TIM
  case K_JITTERDIST:
    if (c->jitter_dist == d.jitter_dist)
      return false;
    snprintf(o, cap, "%s",
             c->jitter_dist == NETSIM_JITTER_NORMAL ? "normal" : "uniform");
    return true;
  case K_RATE:
    if (c->rate_bps == 0)
      return false;
    fmt_units(o, cap, c->rate_bps, rate_units);
    return true;
  default: return false;
  }
}

static bool outages_equal(const struct netsim_dir_cfg *a,
                          const struct netsim_dir_cfg *b) {
  if (a->n_outages != b->n_outages)
    return false;
  for (uint32_t i = 0; i < a->n_outages && i < NETSIM_MAX_OUTAGES; i++) {
    const struct netsim_outage *x = &a->outages[i], *y = &b->outages[i];
    if (x->count != y->count || x->start_ns != y->start_ns ||
        x->dur_ns != y->dur_ns || x->period_ns != y->period_ns)
      return false;
  }
  return true;
}

int netsim_spec_format(const struct netsim_spec *s, char *buf, size_t cap) {
  struct fmt f = {buf, cap, 0, false};
  char a[128], b[128];
  const char *sep = "";
  if (cap)
    buf[0] = '\0';
  for (int k = 0; k < K_NONE; k++) {
    if (k == K_GE || k == K_OUTAGE || k == K_SEED)
      continue;
    bool ha = field_text(&s->up, (enum key_id)k, a, sizeof(a));
    bool hb = field_text(&s->down, (enum key_id)k, b, sizeof(b));
    if (ha && hb && strcmp(a, b) == 0) {
      put(&f, "%s%s=%s", sep, key_names[k], a);
      sep = ",";
      continue;
    }
    if (ha) {
      put(&f, "%sup.%s=%s", sep, key_names[k], a);
      sep = ",";
    }
    if (hb) {
      put(&f, "%sdown.%s=%s", sep, key_names[k], b);
      sep = ",";
    }
  }
  if (outages_equal(&s->up, &s->down)) {
    for (uint32_t i = 0; i < s->up.n_outages && i < NETSIM_MAX_OUTAGES; i++) {
      fmt_outage(a, sizeof(a), &s->up.outages[i]);
      put(&f, "%soutage=%s", sep, a);
      sep = ",";
    }
  } else {
    for (int d = 0; d < 2; d++) {
      const struct netsim_dir_cfg *c = d ? &s->down : &s->up;
      for (uint32_t i = 0; i < c->n_outages && i < NETSIM_MAX_OUTAGES; i++) {
        fmt_outage(a, sizeof(a), &c->outages[i]);
        put(&f, "%s%s.outage=%s", sep, d ? "down" : "up", a);
        sep = ",";
      }
    }
  }
  if (s->seed) {
    put(&f, "%sseed=%" PRIu64, sep, s->seed);
  }
  if (f.over) {
    if (cap)
      buf[cap - 1] = '\0';
    return SFT_ERR_NOSPACE;
  }
  return 0;
}

bool netsim_dir_cfg_equal(const struct netsim_dir_cfg *a,
                          const struct netsim_dir_cfg *b) {
  return a->loss_ppb == b->loss_ppb && a->ge_pgb == b->ge_pgb &&
         a->ge_pbg == b->ge_pbg && a->ge_loss_good == b->ge_loss_good &&
         a->ge_loss_bad == b->ge_loss_bad && a->delay_ns == b->delay_ns &&
         a->jitter_ns == b->jitter_ns && a->jitter_dist == b->jitter_dist &&
         a->rate_bps == b->rate_bps && a->queue_ns == b->queue_ns &&
         a->reorder_ppb == b->reorder_ppb &&
         a->reorder_delay_ns == b->reorder_delay_ns &&
         a->dup_ppb == b->dup_ppb && a->corrupt_ppb == b->corrupt_ppb &&
         outages_equal(a, b);
}

bool netsim_spec_equal(const struct netsim_spec *a,
                       const struct netsim_spec *b) {
  return a->seed == b->seed && netsim_dir_cfg_equal(&a->up, &b->up) &&
         netsim_dir_cfg_equal(&a->down, &b->down);
}
