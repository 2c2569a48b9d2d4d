/*
 * Metric registry and Prometheus text exposition (format 0.0.4).
 *
 * Layout, chosen so that formatting is mostly memcpy:
 * - a family precomputes its "# HELP ...\n# TYPE ...\n" header and, for a
 *   histogram, the text of each bound;
 * - a child is ONE allocation: the struct, the histogram's per-bucket counts
 *   (not cumulative: observe touches one counter, the formatter sums), the
 *   raw label values (for lookups) and the rendered, escaped label set
 *   `a="x",b="y"` (for output);
 * - children sit on a doubly linked list in insertion order (output order)
 *   and in a chained hash table keyed by FNV-1a over the raw values.
 */
#include "sft/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sft_metric {
  sft_metric_family *fam;
  sft_metric *prev, *next; /* insertion order */
  sft_metric *hnext;       /* hash chain */
  uint64_t hash;
  double value;     /* counter / gauge value; histogram _sum */
  uint64_t count;   /* histogram _count */
  uint64_t *counts; /* histogram: nbounds per-bucket counts (not cumulative) */
  const char *vals; /* raw label values, each NUL-terminated, back to back */
  size_t vals_len;  /* bytes of vals, NULs included */
  const char *lbl;  /* rendered label set without braces, "" if none */
  size_t lbl_len;
};

struct sft_metric_family {
  sft_metrics *reg;
  enum sft_metric_type type;
  char *name;
  size_t name_len;
  char *header; /* "# HELP name text\n# TYPE name type\n" */
  size_t header_len;
  size_t nlabels;
  char **labels;
  double *bounds;
  char **le; /* formatted bounds */
  size_t *le_len;
  size_t nbounds;
  uint32_t max_children;
  uint32_t nchildren;
  sft_metric *head, *tail;
  sft_metric **table;  /* hash buckets, labeled families only */
  uint32_t table_size; /* power of two */
  sft_metric *single;  /* the child of an unlabeled family */
};

struct sft_metrics {
  struct sft_metrics_mem mem;
  sft_metric_family **fams;
  uint32_t nfams;
  sft_metric *dropped; /* sft_metrics_dropped_series_total */
  size_t size_hint;    /* last output length, for format_alloc */
};

const double sft_metrics_default_buckets[SFT_METRICS_DEFAULT_NBUCKETS] = {
    .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};

/* ---- memory ---------------------------------------------------------- */

static void *std_zalloc(size_t nmemb, size_t size, void *ud) {
  (void)ud;
  return calloc(nmemb, size);
}

static void std_free(void *p, void *ud) {
  (void)ud;
  free(p);
}

static void *mz(const sft_metrics *r, size_t n) {
  return r->mem.zalloc(1, n ? n : 1, r->mem.ud);
}

static void mf(const sft_metrics *r, void *p) {
  if (p)
    r->mem.free(p, r->mem.ud);
}

static char *mdup(const sft_metrics *r, const char *s, size_t n) {
  char *p = mz(r, n + 1);
  if (p)
    memcpy(p, s, n);
  return p;
}

/* ---- validation ------------------------------------------------------ */

static int name_ok(const char *s, int colon) {
  size_t n = 0;
  for (; s[n]; n++) {
    unsigned char c = (unsigned char)s[n];
    int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                (colon && c == ':');
    if (!alpha && !(n > 0 && c >= '0' && c <= '9'))
      return 0;
    if (n >= SFT_METRICS_MAX_NAME)
      return 0;
  }
  return n > 0;
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF). */
static int utf8_ok(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    size_t k;
    uint32_t cp, min;
    if (c < 0x80) {
      i++;
      continue;
    }
    if ((c & 0xe0) == 0xc0) {
      k = 1, cp = c & 0x1fu, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      k = 2, cp = c & 0x0fu, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      k = 3, cp = c & 0x07u, min = 0x10000;
    } else {
      return 0;
    }
    if (n - i - 1 < k)
      return 0;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xc0) != 0x80)
        return 0;
      cp = (cp << 6) | (s[i + j] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += k + 1;
  }
  return 1;
}

/* ---- text helpers ---------------------------------------------------- */

struct out {
  char *buf;
  size_t cap;
  size_t pos;
};

static void put(struct out *o, const char *s, size_t n) {
  if (o->pos < o->cap) {
    size_t room = o->cap - o->pos;
    memcpy(o->buf + o->pos, s, n < room ? n : room);
  }
  o->pos += n;
}

static void putc1(struct out *o, char c) {
  if (o->pos < o->cap)
    o->buf[o->pos] = c;
  o->pos++;
}

/* Escapes per the text format: backslash and newline always, the double
 * quote only in label values (|quote|). Returns the escaped length. */
static size_t escape(struct out *o, const char *s, size_t n, int quote) {
  size_t start = o->pos;
  size_t run = 0; /* bytes copied verbatim in one go */
  for (size_t i = 0; i < n; i++) {
    const char *esc = NULL;
    if (s[i] == '\\')
      esc = "\\\\";
    else if (s[i] == '\n')
      esc = "\\n";
    else if (quote && s[i] == '"')
      esc = "\\\"";
    if (esc) {
      put(o, s + run, i - run);
      put(o, esc, 2);
      run = i + 1;
    }
  }
  put(o, s + run, n - run);
  return o->pos - start;
}

static size_t fmt_u64(uint64_t v, char *buf) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++)
    buf[i] = tmp[n - 1 - i];
  return n;
}

/* Fast path for a fractional value with 1e-4 <= |v| < 2^53: the smallest k
 * (1..22) such that m = round(|v| * 10^k) is below 2^53 and m / 10^k == |v|
 * in double arithmetic. Both m and 10^k are exact doubles and division is
 * correctly rounded, so the decimal m * 10^-k reads back as v; the smallest
 * k leaves no trailing zero. Prints [-]I.F without exponent, e.g. 0.0021.
 * Returns 0 when no such k exists (then snprintf takes over). About ten
 * times cheaper than snprintf + strtod. */
static size_t fmt_decimal(double v, char *buf) {
  static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  const double lim = 9007199254740992.0; /* 2^53 */
  double a = v < 0 ? -v : v;
  char digits[24];
  size_t n = 0, nd;
  if (!(a >= 1e-4 && a < lim))
    return 0;
  for (int k = 1; k <= 22; k++) {
    double x = a * p10[k], m;
    if (!(x < lim))
      return 0;
    m = (double)(uint64_t)(x + 0.5);
    if (m / p10[k] != a)
      continue;
    nd = fmt_u64((uint64_t)m, digits);
    if (v < 0)
      buf[n++] = '-';
    if (nd <= (size_t)k) { /* 0.000ddd */
      buf[n++] = '0';
      buf[n++] = '.';
      for (size_t z = nd; z < (size_t)k; z++)
        buf[n++] = '0';
      memcpy(buf + n, digits, nd);
      n += nd;
    } else { /* iii.ddd */
      memcpy(buf + n, digits, nd - (size_t)k);
      n += nd - (size_t)k;
      buf[n++] = '.';
      memcpy(buf + n, digits + nd - (size_t)k, (size_t)k);
      n += (size_t)k;
    }
    return n;
  }
  return 0;
}

size_t sft_metrics_fmt_double(double v, char *buf, size_t cap) {
  char tmp[40];
  size_t n;
  if (isnan(v)) {
    memcpy(tmp, "NaN", n = 3);
  } else if (isinf(v)) {
    memcpy(tmp, v > 0 ? "+Inf" : "-Inf", n = 4);
  } else if (v > -9223372036854775808.0 && v < 9223372036854775808.0 &&
             (double)(int64_t)v == v) {
    int64_t i = (int64_t)v; /* exact: integral and in range */
    n = 0;
    if (i < 0)
      tmp[n++] = '-';
    n += fmt_u64(i < 0 ? 0 - (uint64_t)i : (uint64_t)i, tmp + n);
  } else if ((n = fmt_decimal(v, tmp)) > 0) {
    /* done: plain decimal */
  } else {
    /* Shortest of %.15g .. %.17g that reads back as the same double; %.17g
     * always does. In the fast path's range its failure means more than 16
     * digits (or a 16-digit mantissa >= 2^53): go straight to %.17g. */
    double a = v < 0 ? -v : v;
    int len = 0;
    for (int prec = a >= 1e-4 && a < 9007199254740992.0 ? 17 : 15; prec <= 17;
         prec++) {
      len = snprintf(tmp, sizeof tmp, "%.*g", prec, v);
      if (prec == 17 || strtod(tmp, NULL) == v)
        break;
    }
    n = len > 0 ? (size_t)len : 0;
    for (size_t i = 0; i < n; i++) /* a foreign locale's decimal comma */
      if (tmp[i] == ',')
        tmp[i] = '.';
  }
  if (!buf || cap < n + 1)
    return 0;
  memcpy(buf, tmp, n);
  buf[n] = '\0';
  return n;
}

static void put_double(struct out *o, double v) {
  char tmp[40];
  put(o, tmp, sft_metrics_fmt_double(v, tmp, sizeof tmp));
}

static void put_u64(struct out *o, uint64_t v) {
  char tmp[24];
  put(o, tmp, fmt_u64(v, tmp));
}

/* ---- registry -------------------------------------------------------- */

static void child_free(sft_metrics *r, sft_metric *m) {
  mf(r, m);
}

static void family_free(sft_metrics *r, sft_metric_family *f) {
  if (!f)
    return;
  for (sft_metric *m = f->head, *nx; m; m = nx) {
    nx = m->next;
    child_free(r, m);
  }
  if (f->labels)
    for (size_t i = 0; i < f->nlabels; i++)
      mf(r, f->labels[i]);
  if (f->le)
    for (size_t i = 0; i < f->nbounds; i++)
      mf(r, f->le[i]);
  mf(r, f->labels);
  mf(r, f->le);
  mf(r, f->le_len);
  mf(r, f->bounds);
  mf(r, f->table);
  mf(r, f->header);
  mf(r, f->name);
  mf(r, f);
}

int sft_metrics_new(sft_metrics **pr, const struct sft_metrics_mem *mem) {
  struct sft_metrics_mem m = {std_zalloc, std_free, NULL};
  sft_metrics *r;
  int rv;

  if (!pr)
    return SFT_ERR_INVAL;
  *pr = NULL;
  if (mem) {
    if (!mem->zalloc != !mem->free)
      return SFT_ERR_INVAL;
    if (mem->zalloc)
      m = *mem;
  }
  r = m.zalloc(1, sizeof *r, m.ud);
  if (!r)
    return SFT_ERR_NOMEM;
  r->mem = m;
  r->fams = mz(r, SFT_METRICS_MAX_FAMILIES * sizeof *r->fams);
  if (!r->fams) {
    rv = SFT_ERR_NOMEM;
    goto fail_fams;
  }
  rv = sft_metrics_add_counter(
      r, "sft_metrics_dropped_series_total",
      "Series not created because their family reached its child limit.",
      &r->dropped);
  if (rv)
    goto fail_dropped;
  *pr = r;
  return 0;

fail_dropped:
  mf(r, r->fams);
fail_fams:
  m.free(r, m.ud);
  return rv;
}

void sft_metrics_del(sft_metrics *r) {
  if (!r)
    return;
  for (uint32_t i = 0; i < r->nfams; i++)
    family_free(r, r->fams[i]);
  mf(r, r->fams);
  r->mem.free(r, r->mem.ud);
}

static int has_suffix(const char *s, size_t n, const char *base, size_t bn,
                      const char *suffix) {
  size_t sn = strlen(suffix);
  return n == bn + sn && !memcmp(s, base, bn) && !memcmp(s + bn, suffix, sn);
}

/* Does series name |n| clash with histogram |h|'s generated names? */
static int hist_clash(const char *n, size_t nl, const char *h, size_t hl) {
  return has_suffix(n, nl, h, hl, "_bucket") ||
         has_suffix(n, nl, h, hl, "_sum") || has_suffix(n, nl, h, hl, "_count");
}

static int name_taken(const sft_metrics *r, const char *name, size_t nl,
                      enum sft_metric_type type) {
  for (uint32_t i = 0; i < r->nfams; i++) {
    const sft_metric_family *f = r->fams[i];
    if (f->name_len == nl && !memcmp(f->name, name, nl))
      return 1;
    if (f->type == SFT_METRIC_HISTOGRAM &&
        hist_clash(name, nl, f->name, f->name_len))
      return 1;
    if (type == SFT_METRIC_HISTOGRAM &&
        hist_clash(f->name, f->name_len, name, nl))
      return 1;
  }
  return 0;
}

static int check_desc(const sft_metrics *r, const struct sft_metric_desc *d,
                      size_t *help_len) {
  size_t nl;
  if (d->type != SFT_METRIC_COUNTER && d->type != SFT_METRIC_GAUGE &&
      d->type != SFT_METRIC_HISTOGRAM)
    return SFT_ERR_INVAL;
  if (!d->name)
    return SFT_ERR_INVAL;
  nl = strnlen(d->name, SFT_METRICS_MAX_NAME + 1);
  if (nl > SFT_METRICS_MAX_NAME)
    return SFT_ERR_TOO_LARGE;
  if (!name_ok(d->name, 1))
    return SFT_ERR_INVAL;
  *help_len = 0;
  if (d->help) {
    *help_len = strnlen(d->help, SFT_METRICS_MAX_HELP + 1);
    if (*help_len > SFT_METRICS_MAX_HELP)
      return SFT_ERR_TOO_LARGE;
    if (!utf8_ok((const unsigned char *)d->help, *help_len))
      return SFT_ERR_INVAL;
  }
  if (d->nlabels > SFT_METRICS_MAX_LABELS)
    return SFT_ERR_TOO_LARGE;
  if (d->nlabels && !d->labels)
    return SFT_ERR_INVAL;
  for (size_t i = 0; i < d->nlabels; i++) {
    const char *l = d->labels[i];
    if (!l)
      return SFT_ERR_INVAL;
    if (strnlen(l, SFT_METRICS_MAX_NAME + 1) > SFT_METRICS_MAX_NAME)
      return SFT_ERR_TOO_LARGE;
    if (!name_ok(l, 0) || (l[0] == '_' && l[1] == '_'))
      return SFT_ERR_INVAL;
    if (d->type == SFT_METRIC_HISTOGRAM && !strcmp(l, "le"))
      return SFT_ERR_INVAL;
    for (size_t j = 0; j < i; j++)
      if (!strcmp(l, d->labels[j]))
        return SFT_ERR_INVAL;
  }
  if (d->type == SFT_METRIC_HISTOGRAM) {
    if (d->nbuckets > SFT_METRICS_MAX_BUCKETS)
      return SFT_ERR_TOO_LARGE;
    if (d->nbuckets && !d->buckets)
      return SFT_ERR_INVAL;
    for (size_t i = 0; i < d->nbuckets; i++) {
      if (!isfinite(d->buckets[i]))
        return SFT_ERR_INVAL;
      if (i > 0 && !(d->buckets[i] > d->buckets[i - 1]))
        return SFT_ERR_INVAL;
    }
  }
  if (d->max_children > SFT_METRICS_MAX_CHILDREN)
    return SFT_ERR_TOO_LARGE;
  if (r->nfams >= SFT_METRICS_MAX_FAMILIES)
    return SFT_ERR_FULL;
  if (name_taken(r, d->name, nl, d->type))
    return SFT_ERR_EXISTS;
  return 0;
}

static const char *type_name(enum sft_metric_type t) {
  switch (t) {
  case SFT_METRIC_COUNTER:
    return "counter";
  case SFT_METRIC_GAUGE:
    return "gauge";
  case SFT_METRIC_HISTOGRAM:
    return "histogram";
  }
  return "untyped";
}

static int build_header(sft_metric_family *f, const char *help,
                        size_t help_len) {
  const sft_metrics *r = f->reg;
  const char *t = type_name(f->type);
  struct out o = {NULL, 0, 0};
  /* Pass 1 measures, pass 2 writes. */
  for (int pass = 0; pass < 2; pass++) {
    o.pos = 0;
    put(&o, "# HELP ", 7);
    put(&o, f->name, f->name_len);
    putc1(&o, ' ');
    escape(&o, help, help_len, 0);
    put(&o, "\n# TYPE ", 8);
    put(&o, f->name, f->name_len);
    putc1(&o, ' ');
    put(&o, t, strlen(t));
    putc1(&o, '\n');
    if (pass == 0) {
      o.cap = o.pos;
      o.buf = f->header = mz(r, o.cap + 1);
      if (!o.buf)
        return SFT_ERR_NOMEM;
    }
  }
  f->header_len = o.pos;
  return 0;
}

static sft_metric *child_alloc(sft_metric_family *f, const char *const *values,
                               const size_t *vlen, uint64_t hash);

int sft_metrics_register(sft_metrics *r, const struct sft_metric_desc *d,
                         sft_metric_family **pf) {
  sft_metric_family *f;
  size_t help_len;
  int rv;

  if (pf)
    *pf = NULL;
  if (!r || !d)
    return SFT_ERR_INVAL;
  rv = check_desc(r, d, &help_len);
  if (rv)
    return rv;
  f = mz(r, sizeof *f);
  if (!f)
    return SFT_ERR_NOMEM;
  f->reg = r;
  f->type = d->type;
  f->name_len = strlen(d->name);
  f->max_children =
      d->max_children ? d->max_children : SFT_METRICS_DEFAULT_CHILDREN;
  rv = SFT_ERR_NOMEM;
  f->name = mdup(r, d->name, f->name_len);
  if (!f->name)
    goto fail;
  rv = build_header(f, d->help ? d->help : "", help_len);
  if (rv)
    goto fail;
  rv = SFT_ERR_NOMEM;
  if (d->nlabels) {
    f->labels = mz(r, d->nlabels * sizeof *f->labels);
    if (!f->labels)
      goto fail;
    f->nlabels = d->nlabels;
    for (size_t i = 0; i < d->nlabels; i++) {
      f->labels[i] = mdup(r, d->labels[i], strlen(d->labels[i]));
      if (!f->labels[i])
        goto fail;
    }
    f->table_size = 16;
    f->table = mz(r, f->table_size * sizeof *f->table);
    if (!f->table)
      goto fail;
  }
  if (d->type == SFT_METRIC_HISTOGRAM && d->nbuckets) {
    f->bounds = mz(r, d->nbuckets * sizeof *f->bounds);
    f->le = mz(r, d->nbuckets * sizeof *f->le);
    f->le_len = mz(r, d->nbuckets * sizeof *f->le_len);
    if (!f->bounds || !f->le || !f->le_len)
      goto fail;
    f->nbounds = d->nbuckets;
    for (size_t i = 0; i < d->nbuckets; i++) {
      char tmp[40];
      f->bounds[i] = d->buckets[i];
      f->le_len[i] = sft_metrics_fmt_double(d->buckets[i], tmp, sizeof tmp);
      f->le[i] = mdup(r, tmp, f->le_len[i]);
      if (!f->le[i])
        goto fail;
    }
  }
  if (!d->nlabels) {
    f->single = child_alloc(f, NULL, NULL, 0);
    if (!f->single)
      goto fail;
    f->head = f->tail = f->single;
    f->nchildren = 1;
  }
  r->fams[r->nfams++] = f;
  if (pf)
    *pf = f;
  return 0;

fail:
  family_free(r, f);
  return rv;
}

static int add_simple(sft_metrics *r, const char *name, const char *help,
                      enum sft_metric_type type, const double *buckets,
                      size_t nbuckets, sft_metric **pm) {
  struct sft_metric_desc d = {0};
  sft_metric_family *f;
  int rv;
  if (pm)
    *pm = NULL;
  d.name = name;
  d.help = help;
  d.type = type;
  d.buckets = buckets;
  d.nbuckets = nbuckets;
  rv = sft_metrics_register(r, &d, &f);
  if (rv)
    return rv;
  if (pm)
    *pm = f->single;
  return 0;
}

int sft_metrics_add_counter(sft_metrics *r, const char *name, const char *help,
                            sft_metric **pm) {
  return add_simple(r, name, help, SFT_METRIC_COUNTER, NULL, 0, pm);
}

int sft_metrics_add_gauge(sft_metrics *r, const char *name, const char *help,
                          sft_metric **pm) {
  return add_simple(r, name, help, SFT_METRIC_GAUGE, NULL, 0, pm);
}

int sft_metrics_add_histogram(sft_metrics *r, const char *name,
                              const char *help, const double *buckets,
                              size_t nbuckets, sft_metric **pm) {
  return add_simple(r, name, help, SFT_METRIC_HISTOGRAM, buckets, nbuckets, pm);
}

/* ---- children -------------------------------------------------------- */

#define FNV_OFF 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

/* Validates the values, measures them into vlen[], hashes them. */
static int values_check(const sft_metric_family *f, const char *const *values,
                        size_t *vlen, uint64_t *hash) {
  uint64_t h = FNV_OFF;
  if (!values)
    return SFT_ERR_INVAL;
  for (size_t i = 0; i < f->nlabels; i++) {
    const char *v = values[i];
    if (!v)
      return SFT_ERR_INVAL;
    vlen[i] = strnlen(v, SFT_METRICS_MAX_LABEL_VALUE + 1);
    if (vlen[i] > SFT_METRICS_MAX_LABEL_VALUE)
      return SFT_ERR_TOO_LARGE;
    if (!utf8_ok((const unsigned char *)v, vlen[i]))
      return SFT_ERR_INVAL;
    for (size_t j = 0; j < vlen[i]; j++)
      h = (h ^ (unsigned char)v[j]) * FNV_PRIME;
    h = (h ^ 0xffu) * FNV_PRIME; /* separator: never a UTF-8 byte */
  }
  *hash = h;
  return 0;
}

static int values_eq(const sft_metric *m, const char *const *values,
                     const size_t *vlen, size_t nlabels) {
  const char *p = m->vals;
  for (size_t i = 0; i < nlabels; i++) {
    if (memcmp(p, values[i], vlen[i] + 1)) /* the NUL too */
      return 0;
    p += vlen[i] + 1;
  }
  return 1;
}

static sft_metric *lookup(const sft_metric_family *f, const char *const *values,
                          const size_t *vlen, uint64_t hash,
                          sft_metric ***link) {
  sft_metric **pp = &f->table[hash & (f->table_size - 1)];
  for (; *pp; pp = &(*pp)->hnext)
    if ((*pp)->hash == hash && values_eq(*pp, values, vlen, f->nlabels))
      break;
  if (link)
    *link = pp;
  return *pp;
}

static sft_metric *child_alloc(sft_metric_family *f, const char *const *values,
                               const size_t *vlen, uint64_t hash) {
  const sft_metrics *r = f->reg;
  size_t vals_len = 0, lbl_len = 0, size;
  struct out o = {NULL, 0, 0};
  sft_metric *m;
  char *p;

  for (size_t i = 0; i < f->nlabels; i++) {
    vals_len += vlen[i] + 1;
    o.pos = 0;
    lbl_len += (i ? 1 : 0) + strlen(f->labels[i]) + 3 +
               escape(&o, values[i], vlen[i], 1);
  }
  size = sizeof *m + f->nbounds * sizeof(uint64_t) + vals_len + lbl_len + 1;
  m = mz(r, size);
  if (!m)
    return NULL;
  m->fam = f;
  m->hash = hash;
  m->counts = (uint64_t *)(void *)(m + 1);
  p = (char *)(m->counts + f->nbounds);
  m->vals = p;
  m->vals_len = vals_len;
  for (size_t i = 0; i < f->nlabels; i++) {
    memcpy(p, values[i], vlen[i]); /* NUL from zalloc */
    p += vlen[i] + 1;
  }
  o.buf = p;
  o.cap = lbl_len;
  o.pos = 0;
  for (size_t i = 0; i < f->nlabels; i++) {
    if (i)
      putc1(&o, ',');
    put(&o, f->labels[i], strlen(f->labels[i]));
    put(&o, "=\"", 2);
    escape(&o, values[i], vlen[i], 1);
    putc1(&o, '"');
  }
  m->lbl = p;
  m->lbl_len = lbl_len;
  return m;
}

/* Doubles the hash table (best effort: a failed allocation only makes the
 * chains longer). */
static void table_grow(sft_metric_family *f) {
  const sft_metrics *r = f->reg;
  uint32_t n = f->table_size * 2;
  sft_metric **t = mz(r, (size_t)n * sizeof *t);
  if (!t)
    return;
  for (uint32_t i = 0; i < f->table_size; i++) {
    for (sft_metric *m = f->table[i], *nx; m; m = nx) {
      nx = m->hnext;
      m->hnext = t[m->hash & (n - 1)];
      t[m->hash & (n - 1)] = m;
    }
  }
  mf(r, f->table);
  f->table = t;
  f->table_size = n;
}

int sft_metrics_child(sft_metric_family *f, const char *const *values,
                      sft_metric **pm) {
  size_t vlen[SFT_METRICS_MAX_LABELS];
  sft_metric **link, *m;
  uint64_t hash;
  int rv;

  if (pm)
    *pm = NULL;
  if (!f || !pm)
    return SFT_ERR_INVAL;
  if (!f->nlabels) {
    *pm = f->single;
    return 0;
  }
  rv = values_check(f, values, vlen, &hash);
  if (rv)
    return rv;
  m = lookup(f, values, vlen, hash, &link);
  if (!m) {
    if (f->nchildren >= f->max_children) {
      f->reg->dropped->value += 1;
      return SFT_ERR_FULL;
    }
    m = child_alloc(f, values, vlen, hash);
    if (!m)
      return SFT_ERR_NOMEM;
    *link = m;
    m->prev = f->tail;
    if (f->tail)
      f->tail->next = m;
    else
      f->head = m;
    f->tail = m;
    f->nchildren++;
    if (f->nchildren > f->table_size && f->table_size < (1u << 20))
      table_grow(f);
  }
  *pm = m;
  return 0;
}

int sft_metrics_child1(sft_metric_family *f, const char *value,
                       sft_metric **pm) {
  if (pm)
    *pm = NULL;
  if (!f || f->nlabels != 1)
    return SFT_ERR_INVAL;
  return sft_metrics_child(f, &value, pm);
}

static void unlink_child(sft_metric_family *f, sft_metric *m) {
  sft_metric **pp = &f->table[m->hash & (f->table_size - 1)];
  while (*pp != m)
    pp = &(*pp)->hnext;
  *pp = m->hnext;
  if (m->prev)
    m->prev->next = m->next;
  else
    f->head = m->next;
  if (m->next)
    m->next->prev = m->prev;
  else
    f->tail = m->prev;
  f->nchildren--;
  child_free(f->reg, m);
}

int sft_metrics_remove(sft_metric_family *f, const char *const *values) {
  size_t vlen[SFT_METRICS_MAX_LABELS];
  sft_metric *m;
  uint64_t hash;
  int rv;

  if (!f || !f->nlabels)
    return SFT_ERR_INVAL;
  rv = values_check(f, values, vlen, &hash);
  if (rv)
    return rv == SFT_ERR_TOO_LARGE ? SFT_ERR_NOT_FOUND : rv;
  m = lookup(f, values, vlen, hash, NULL);
  if (!m)
    return SFT_ERR_NOT_FOUND;
  unlink_child(f, m);
  return 0;
}

int sft_metrics_remove1(sft_metric_family *f, const char *value) {
  if (!f || f->nlabels != 1)
    return SFT_ERR_INVAL;
  return sft_metrics_remove(f, &value);
}

void sft_metrics_clear(sft_metric_family *f) {
  if (!f || !f->nlabels)
    return;
  for (sft_metric *m = f->head, *nx; m; m = nx) {
    nx = m->next;
    child_free(f->reg, m);
  }
  memset(f->table, 0, f->table_size * sizeof *f->table);
  f->head = f->tail = NULL;
  f->nchildren = 0;
}

size_t sft_metrics_children(const sft_metric_family *f) {
  return f ? f->nchildren : 0;
}

/* ---- updates --------------------------------------------------------- */

int sft_metric_inc(sft_metric *m, double v) {
  if (!m)
    return SFT_ERR_INVAL;
  switch (m->fam->type) {
  case SFT_METRIC_COUNTER:
    if (!(v >= 0)) /* negative or NaN */
      return SFT_ERR_INVAL;
    break;
  case SFT_METRIC_GAUGE:
    break;
  case SFT_METRIC_HISTOGRAM:
    return SFT_ERR_INVAL;
  }
  m->value += v;
  return 0;
}

int sft_metric_set(sft_metric *m, double v) {
  if (!m)
    return SFT_ERR_INVAL;
  switch (m->fam->type) {
  case SFT_METRIC_COUNTER:
    if (!(v >= m->value)) /* decreasing or NaN */
      return SFT_ERR_INVAL;
    break;
  case SFT_METRIC_GAUGE:
    break;
  case SFT_METRIC_HISTOGRAM:
    return SFT_ERR_INVAL;
  }
  m->value = v;
  return 0;
}

int sft_metric_observe(sft_metric *m, double v) {
  const sft_metric_family *f;
  size_t lo = 0, hi;
  if (!m || m->fam->type != SFT_METRIC_HISTOGRAM || isnan(v))
    return SFT_ERR_INVAL;
  f = m->fam;
  /* First bound >= v; nbounds means only +Inf holds it. */
  hi = f->nbounds;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (f->bounds[mid] >= v)
      hi = mid;
    else
      lo = mid + 1;
  }
  if (lo < f->nbounds)
    m->counts[lo]++;
  m->count++;
  m->value += v;
  return 0;
}

double sft_metric_value(const sft_metric *m) {
  return m ? m->value : NAN;
}

uint64_t sft_metric_count(const sft_metric *m) {
  return m && m->fam->type == SFT_METRIC_HISTOGRAM ? m->count : 0;
}

/* ---- formatting ------------------------------------------------------ */

/* name[suffix]{labels[,extra]} */
static void put_series(struct out *o, const sft_metric_family *f,
                       const char *suffix, size_t suffix_len,
                       const sft_metric *m) {
  put(o, f->name, f->name_len);
  put(o, suffix, suffix_len);
  if (m->lbl_len) {
    putc1(o, '{');
    put(o, m->lbl, m->lbl_len);
    putc1(o, '}');
  }
  putc1(o, ' ');
}

static void format_hist(struct out *o, const sft_metric_family *f,
                        const sft_metric *m) {
  uint64_t cum = 0;
  for (size_t i = 0; i <= f->nbounds; i++) {
    put(o, f->name, f->name_len);
    put(o, "_bucket{", 8);
    if (m->lbl_len) {
      put(o, m->lbl, m->lbl_len);
      putc1(o, ',');
    }
    put(o, "le=\"", 4);
    if (i < f->nbounds) {
      put(o, f->le[i], f->le_len[i]);
      cum += m->counts[i];
    } else {
      put(o, "+Inf", 4);
      cum = m->count;
    }
    put(o, "\"} ", 3);
    put_u64(o, cum);
    putc1(o, '\n');
  }
  put_series(o, f, "_sum", 4, m);
  put_double(o, m->value);
  putc1(o, '\n');
  put_series(o, f, "_count", 6, m);
  put_u64(o, m->count);
  putc1(o, '\n');
}

int sft_metrics_format(const sft_metrics *r, char *buf, size_t cap,
                       size_t *len) {
  struct out o;
  if (len)
    *len = 0;
  if (!r || !len || (!buf && cap))
    return SFT_ERR_INVAL;
  o.buf = buf;
  o.cap = cap;
  o.pos = 0;
  for (uint32_t i = 0; i < r->nfams; i++) {
    const sft_metric_family *f = r->fams[i];
    put(&o, f->header, f->header_len);
    for (const sft_metric *m = f->head; m; m = m->next) {
      if (f->type == SFT_METRIC_HISTOGRAM) {
        format_hist(&o, f, m);
      } else {
        put_series(&o, f, "", 0, m);
        put_double(&o, m->value);
        putc1(&o, '\n');
      }
    }
  }
  *len = o.pos;
  return o.pos > cap ? SFT_ERR_NOSPACE : 0;
}

int sft_metrics_format_alloc(sft_metrics *r, size_t max, char **out,
                             size_t *len) {
  size_t need = 0, cap;
  char *buf;
  int rv;

  if (out)
    *out = NULL;
  if (len)
    *len = 0;
  if (!r || !out || !len)
    return SFT_ERR_INVAL;
  /* Guess from the last size (plus slack for growth), else measure. */
  cap = r->size_hint ? r->size_hint + r->size_hint / 8 + 256 : 0;
  if (cap > max)
    cap = max;
  if (!cap) {
    rv = sft_metrics_format(r, NULL, 0, &need);
    if (rv && rv != SFT_ERR_NOSPACE)
      return rv;
    if (need > max)
      return SFT_ERR_TOO_LARGE;
    cap = need;
  }
  for (int attempt = 0; attempt < 2; attempt++) {
    buf = mz(r, cap + 1);
    if (!buf)
      return SFT_ERR_NOMEM;
    rv = sft_metrics_format(r, buf, cap, &need);
    if (!rv) {
      buf[need] = '\0';
      r->size_hint = need;
      *out = buf;
      *len = need;
      return 0;
    }
    mf(r, buf);
    if (rv != SFT_ERR_NOSPACE)
      return rv;
    r->size_hint = need;
    if (need > max)
      return SFT_ERR_TOO_LARGE;
    cap = need;
  }
  return SFT_ERR_NOSPACE; /* unreachable: the second pass had room */
}

void sft_metrics_buf_free(sft_metrics *r, char *p) {
  if (r)
    mf(r, p);
}
