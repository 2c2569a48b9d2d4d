/* Tests of lib/pfec: the packet-level FEC shim under QUIC.
 *
 * Most tests wire a sender object and a receiver object back to back in
 * memory: the sender wraps fake QUIC packets and emits PARITY, a "link"
 * drops a chosen subset of the datagrams, and the receiver must hand out
 * exactly the packets the code can give back, byte for byte and in order.
 * Every datagram handed to sft_pfec_input() lives in a heap block of exactly
 * its length, so ASan catches any read past |len|. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sft/fec.h"
#include "sft/pfec.h"

#define MS 1000000ull
#define SEC (1000 * MS)
#define T0 (5 * SEC) /* a time origin that is not 0 */
#define HDR SFT_PFEC_DATA_HDR
#define NO_BLOCK 0xffffffu
#define HOLD (25 * MS) /* default hold_ns */
#define WIN (100 * MS) /* default window_ns */
#define ON_LOSS 0.14   /* default on_loss */
#define RTT (40 * MS)  /* a path's lowest RTT in the policy tests */

/* Room for the largest possible parity burst. */
static uint8_t g_par[SFT_PFEC_MAX_N * SFT_PFEC_MAX_DGRAM];

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static double rng_unit(uint64_t *x) {
  return (double)(rng_next(x) >> 11) / 9007199254740992.0;
}

static uint32_t get24(const uint8_t *p) {
  return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

static void put24(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 16);
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  put24(p + 1, v);
}

/* A growable list of byte strings; |tag| is free for the test (for a
 * datagram trace: 1 = dropped on the link). */
struct blob {
  uint8_t *b;
  size_t len;
  int tag;
};
struct blobs {
  struct blob *v;
  size_t n, cap;
};

static void blobs_push(struct blobs *bs, const uint8_t *p, size_t len,
                       int tag) {
  uint8_t *c;
  if (bs->n == bs->cap) {
    bs->cap = bs->cap ? 2 * bs->cap : 64;
    bs->v = realloc(bs->v, bs->cap * sizeof(*bs->v));
    assert_non_null(bs->v);
  }
  c = malloc(len ? len : 1);
  assert_non_null(c);
  if (len)
    memcpy(c, p, len);
  bs->v[bs->n].b = c;
  bs->v[bs->n].len = len;
  bs->v[bs->n].tag = tag;
  bs->n++;
}

static void blobs_free(struct blobs *bs) {
  for (size_t i = 0; i < bs->n; i++)
    free(bs->v[i].b);
  free(bs->v);
  memset(bs, 0, sizeof(*bs));
}

/* Fake QUIC packet |id|: fixed bit 0x40 set, the id in bytes 1..4 (when
 * there is room), the rest pseudo-random. */
static void pkt_fill(uint8_t *p, size_t len, uint32_t id) {
  uint64_t x = (uint64_t)id * 0x9e3779b97f4a7c15ULL + 77;
  for (size_t i = 0; i < len; i++)
    p[i] = (uint8_t)(rng_next(&x) >> 24);
  p[0] |= 0x40;
  if (len >= 5)
    put32(p + 1, id);
}

/* Packet lengths: the maximum, tiny ones, and a spread in between. */
static size_t pkt_len(uint32_t id) {
  switch (id % 7) {
  case 0:
    return SFT_PFEC_MAX_PKT;
  case 3:
    return 1 + id % 5;
  default:
    return 1 + (size_t)((id * 2654435761u) % SFT_PFEC_MAX_PKT);
  }
}

static struct sft_pfec *mk(const struct sft_pfec_opts *o) {
  struct sft_pfec *pf = NULL;
  assert_int_equal(sft_pfec_new(&pf, o), 0);
  assert_non_null(pf);
  return pf;
}

static struct sft_pfec_stats stats(const struct sft_pfec *pf) {
  struct sft_pfec_stats st;
  memset(&st, 0, sizeof(st));
  sft_pfec_get_stats(pf, &st);
  return st;
}

/* The options most back-to-back tests use: always on once the peer
 * answered, blocks of 10, and parity for 34 % loss (on_loss 0.14 until a
 * sample, plus a margin of 0.2: m = 12 for k = 10 at fail_target 0.02). */
static struct sft_pfec_opts opts_fec(void) {
  struct sft_pfec_opts o;
  memset(&o, 0, sizeof(o));
  o.force = 1;
  o.max_k = 10;
  o.margin = 0.2;
  return o;
}

/* sft_pfec_input() on an exact-size heap copy of |p|. */
static int input_exact(struct sft_pfec *pf, uint64_t now, const uint8_t *p,
                       size_t len) {
  uint8_t *c = malloc(len ? len : 1);
  int rc;
  assert_non_null(c);
  if (len)
    memcpy(c, p, len);
  rc = sft_pfec_input(pf, now, c, len);
  free(c);
  return rc;
}

/* One control datagram of |pf| at |now| into |out| (64 bytes). */
static size_t ctl(struct sft_pfec *pf, uint64_t now, uint8_t *out) {
  size_t len = 999;
  assert_int_equal(sft_pfec_control(pf, now, out, 64, &len), 0);
  assert_true(len <= 64);
  if (len)
    assert_true(sft_pfec_is_shim(out, len));
  return len;
}

/* Everything |r| has ready, copied into |out|. */
static void drain(struct sft_pfec *r, struct blobs *out) {
  const uint8_t *p = NULL;
  size_t len = 0;
  int rc;
  while ((rc = sft_pfec_next(r, &p, &len)) == 1) {
    assert_non_null(p);
    assert_true(len >= 1 && len <= SFT_PFEC_MAX_PKT);
    blobs_push(out, p, len, 0);
  }
  assert_int_equal(rc, 0);
}

/* The capability exchange: |s| (force 1) probes, |r| reports, |s| is on. */
static void handshake(struct sft_pfec *s, struct sft_pfec *r, uint64_t now) {
  uint8_t b[64];
  size_t n;
  assert_false(sft_pfec_active(s));
  n = ctl(s, now, b);
  assert_int_equal(n, 1);
  assert_int_equal(b[0], SFT_PFEC_T_PROBE);
  assert_int_equal(input_exact(r, now, b, n), 0);
  n = ctl(r, now, b);
  assert_int_equal(n, SFT_PFEC_REPORT_LEN);
  assert_int_equal(b[0], SFT_PFEC_T_REPORT);
  assert_int_equal(input_exact(s, now, b, n), 0);
  assert_true(stats(s).peer_ok);
  assert_true(sft_pfec_active(s));
}

/* A hand-made PROBE to |r|, and |r|'s REPORT to |s|: |s| knows the peer
 * speaks the shim without having asked. */
static void answer(struct sft_pfec *s, struct sft_pfec *r, uint64_t now) {
  const uint8_t probe[1] = {SFT_PFEC_T_PROBE};
  uint8_t b[64];
  size_t n;
  assert_int_equal(input_exact(r, now, probe, 1), 0);
  n = ctl(r, now, b);
  assert_int_equal(n, SFT_PFEC_REPORT_LEN);
  assert_int_equal(b[0], SFT_PFEC_T_REPORT);
  assert_int_equal(input_exact(s, now, b, n), 0);
  assert_true(stats(s).peer_ok);
}

/* Wraps |p| at |now| and appends the DATA datagram to |tr|. */
static void wrap_one(struct sft_pfec *s, uint64_t now, const uint8_t *p,
                     size_t len, struct blobs *tr) {
  uint8_t *buf = malloc(HDR + len);
  assert_non_null(buf);
  memcpy(buf + HDR, p, len);
  assert_int_equal(sft_pfec_wrap(s, now, buf, len), 0);
  assert_int_equal(buf[0], SFT_PFEC_T_DATA);
  assert_true(buf[5] >= 1 && buf[5] <= SFT_PFEC_MAX_K); /* kplan */
  assert_true(buf[4] < buf[5]);                         /* index < kplan */
  assert_memory_equal(buf + HDR, p, len);
  blobs_push(tr, buf, HDR + len, 0);
  free(buf);
}

/* Closes |s|'s block if due at |now| and appends its PARITY datagrams to
 * |tr|; returns how many. */
static size_t parity_out(struct sft_pfec *s, uint64_t now, struct blobs *tr) {
  size_t seg = 0, n = 0;
  assert_int_equal(sft_pfec_parity(s, now, g_par, sizeof(g_par), &seg, &n), 0);
  for (size_t i = 0; i < n; i++) {
    const uint8_t *d = g_par + i * seg;
    assert_true(seg > SFT_PFEC_OVERHEAD && seg <= SFT_PFEC_MAX_DGRAM);
    assert_int_equal(d[0], SFT_PFEC_T_PARITY);
    blobs_push(tr, d, seg, 0);
  }
  return n;
}

/* Sends |count| new packets through |s| at |now| (ids continue |sent|):
 * wrap, then sft_pfec_parity() after each; |flush| closes the last block
 * with now = UINT64_MAX. */
static void send_pkts(struct sft_pfec *s, uint64_t now, struct blobs *sent,
                      struct blobs *tr, uint32_t count, int flush) {
  static uint8_t p[SFT_PFEC_MAX_PKT];
  for (uint32_t i = 0; i < count; i++) {
    uint32_t id = (uint32_t)sent->n;
    size_t len = pkt_len(id);
    pkt_fill(p, len, id);
    blobs_push(sent, p, len, 0);
    wrap_one(s, now, p, len, tr);
    parity_out(s, now, tr);
  }
  if (flush)
    parity_out(s, UINT64_MAX, tr);
}

/* Per-block view of a datagram trace (blocks contiguous, in send order). */
struct blk {
  uint32_t id;
  unsigned k, m, kfield; /* DATA count, PARITY count, PARITY's k field */
  unsigned recv;         /* datagrams not dropped */
  unsigned data_lost;
  size_t first_data, first_parity; /* trace positions (SIZE_MAX: none) */
};
struct plan {
  struct blk *b;
  size_t nb;
  size_t *bi; /* block of each trace entry */
};

static void analyse(const struct blobs *tr, struct plan *pl) {
  pl->b = calloc(tr->n + 1, sizeof(*pl->b));
  pl->bi = calloc(tr->n + 1, sizeof(*pl->bi));
  pl->nb = 0;
  assert_non_null(pl->b);
  assert_non_null(pl->bi);
  for (size_t i = 0; i < tr->n; i++) {
    const uint8_t *d = tr->v[i].b;
    uint32_t id = get24(d + 1);
    struct blk *x;
    if (pl->nb == 0 || pl->b[pl->nb - 1].id != id) {
      x = &pl->b[pl->nb++];
      x->id = id;
      x->first_data = x->first_parity = SIZE_MAX;
    }
    x = &pl->b[pl->nb - 1];
    pl->bi[i] = pl->nb - 1;
    if (d[0] == SFT_PFEC_T_DATA) {
      if (x->first_data == SIZE_MAX)
        x->first_data = i;
      assert_int_equal(d[4], x->k); /* indices 0, 1, ... in order */
      x->k++;
      if (tr->v[i].tag)
        x->data_lost++;
    } else {
      assert_int_equal(d[0], SFT_PFEC_T_PARITY);
      if (x->first_parity == SIZE_MAX)
        x->first_parity = i;
      x->kfield = d[5];
      x->m++;
    }
    if (!tr->v[i].tag)
      x->recv++;
  }
}

static void plan_free(struct plan *pl) {
  free(pl->b);
  free(pl->bi);
}

/* What the receiver must hand out for |tr| with its drops: every packet of
 * a block that kept at least k of its k+m datagrams, the surviving packets
 * of the others; packets rebuilt and blocks that lost packets for good. */
static void expect_out(const struct blobs *tr, const struct blobs *sent,
                       struct blobs *exp, uint64_t *recovered,
                       uint64_t *failed) {
  struct plan pl;
  size_t j = 0;
  analyse(tr, &pl);
  *recovered = *failed = 0;
  for (size_t b = 0; b < pl.nb; b++) {
    if (pl.b[b].recv >= pl.b[b].k)
      *recovered += pl.b[b].data_lost;
    else if (pl.b[b].data_lost)
      (*failed)++;
  }
  for (size_t i = 0; i < tr->n; i++) {
    const struct blk *x = &pl.b[pl.bi[i]];
    if (tr->v[i].b[0] != SFT_PFEC_T_DATA)
      continue;
    assert_true(j < sent->n);
    assert_int_equal(tr->v[i].len, sent->v[j].len + HDR);
    if (!tr->v[i].tag || x->recv >= x->k)
      blobs_push(exp, sent->v[j].b, sent->v[j].len, 0);
    j++;
  }
  assert_int_equal(j, sent->n);
  plan_free(&pl);
}

/* |got| is exactly |exp|: same packets, same bytes, same order. */
static void assert_same(const struct blobs *got, const struct blobs *exp) {
  size_t n = got->n < exp->n ? got->n : exp->n;
  for (size_t i = 0; i < n; i++) {
    if (got->v[i].len != exp->v[i].len ||
        memcmp(got->v[i].b, exp->v[i].b, got->v[i].len) != 0)
      fail_msg("packet %zu of %zu differs: got %zu bytes, expected %zu", i,
               exp->n, got->v[i].len, exp->v[i].len);
  }
  if (got->n != exp->n)
    fail_msg("released %zu packets, expected %zu", got->n, exp->n);
}

/* Delivers the datagrams of |tr| not tagged dropped, in |order| (NULL:
 * trace order), to |r| from *now on, |step| ns apart (a dropped datagram
 * takes its slot too; step 0: all at one time), ticking after each. */
static void deliver(struct sft_pfec *r, const struct blobs *tr,
                    const size_t *order, uint64_t *now, uint64_t step,
                    struct blobs *out) {
  for (size_t o = 0; o < tr->n; o++) {
    size_t i = order ? order[o] : o;
    if (!tr->v[i].tag) {
      int rc = input_exact(r, *now, tr->v[i].b, tr->v[i].len);
      if (rc != 0)
        fail_msg("input of genuine datagram %zu (type %#x, block %u, index "
                 "%u) returned %d",
                 i, tr->v[i].b[0], get24(tr->v[i].b + 1), tr->v[i].b[4], rc);
      drain(r, out);
    }
    if (step) {
      sft_pfec_tick(r, *now);
      drain(r, out);
      *now += step;
    }
  }
}

/* Ends a run: gives up whatever is held and drains. */
static void settle(struct sft_pfec *r, uint64_t *now, struct blobs *out) {
  *now += 10 * SEC;
  sft_pfec_tick(r, *now);
  drain(r, out);
}

/* P(X > t) for X ~ Bin(n, p), summed in log space. */
static double binom_tail(unsigned n, double p, unsigned t) {
  double s = 0;
  for (unsigned i = t + 1; i <= n; i++)
    s += exp(lgamma(n + 1.0) - lgamma(i + 1.0) - lgamma(n - i + 1.0) +
             i * log(p) + (n - i) * log1p(-p));
  return s;
}

/* ---- basics ------------------------------------------------------------- */

static void test_is_shim(void **state) {
  uint8_t b[1] = {0x21};
  (void)state;
  assert_false(sft_pfec_is_shim(b, 0));
  for (unsigned v = 0; v < 256; v++) {
    b[0] = (uint8_t)v;
    assert_int_equal(sft_pfec_is_shim(b, 1), v >= 0x20 && v <= 0x3f);
  }
  /* What ngtcp2 writes is never a shim datagram: long headers (0x80 set),
   * short headers with the fixed bit 0x40, and short headers whose fixed
   * bit is greased away (RFC 9287): spin bit 0x20 unset, any low bits. */
  for (unsigned low = 0; low < 0x20; low++) {
    b[0] = (uint8_t)(0x80 | 0x40 | low);
    assert_false(sft_pfec_is_shim(b, 1));
    b[0] = (uint8_t)(0x40 | low);
    assert_false(sft_pfec_is_shim(b, 1));
    b[0] = (uint8_t)low;
    assert_false(sft_pfec_is_shim(b, 1));
  }
  /* every shim type is one */
  b[0] = SFT_PFEC_T_DATA;
  assert_true(sft_pfec_is_shim(b, 1));
  b[0] = SFT_PFEC_T_PARITY;
  assert_true(sft_pfec_is_shim(b, 1));
  b[0] = SFT_PFEC_T_REPORT;
  assert_true(sft_pfec_is_shim(b, 1));
  b[0] = SFT_PFEC_T_PROBE;
  assert_true(sft_pfec_is_shim(b, 1));
  assert_true(SFT_PFEC_MAX_PKT + SFT_PFEC_OVERHEAD == SFT_PFEC_MAX_DGRAM);
}

static void test_new_args(void **state) {
  struct sft_pfec *pf = (struct sft_pfec *)&pf;
  struct sft_pfec_opts o;
  (void)state;
  assert_int_equal(sft_pfec_new(NULL, NULL), SFT_ERR_INVAL);

  memset(&o, 0, sizeof(o));
  o.on_loss = 1.0;
  assert_int_equal(sft_pfec_new(&pf, &o), SFT_ERR_INVAL);
  assert_null(pf);
  o.on_loss = -0.1;
  pf = (struct sft_pfec *)&pf;
  assert_int_equal(sft_pfec_new(&pf, &o), SFT_ERR_INVAL);
  assert_null(pf);
  memset(&o, 0, sizeof(o));
  o.off_loss = 1.5;
  assert_int_equal(sft_pfec_new(&pf, &o), SFT_ERR_INVAL);
  assert_null(pf);
  memset(&o, 0, sizeof(o));
  o.max_k = SFT_PFEC_MAX_K + 1;
  pf = (struct sft_pfec *)&pf;
  assert_int_equal(sft_pfec_new(&pf, &o), SFT_ERR_INVAL);
  assert_null(pf);

  memset(&o, 0, sizeof(o));
  o.fail_target = 1.0;
  pf = (struct sft_pfec *)&pf;
  assert_int_equal(sft_pfec_new(&pf, &o), SFT_ERR_INVAL);
  assert_null(pf);
  memset(&o, 0, sizeof(o));
  o.margin = 1.0;
  pf = (struct sft_pfec *)&pf;
  assert_int_equal(sft_pfec_new(&pf, &o), SFT_ERR_INVAL);
  assert_null(pf);
  memset(&o, 0, sizeof(o));
  o.force = 2;
  pf = (struct sft_pfec *)&pf;
  assert_int_equal(sft_pfec_new(&pf, &o), SFT_ERR_INVAL);
  assert_null(pf);

  memset(&o, 0, sizeof(o));
  o.max_k = SFT_PFEC_MAX_K;
  pf = mk(&o);
  sft_pfec_del(pf);
  o.max_k = 1;
  pf = mk(&o);
  sft_pfec_del(pf);
  pf = mk(NULL);
  /* A fresh object (policy default) is off; its only work is the first of
   * its early PROBEs, due at once (the first call). */
  assert_false(sft_pfec_active(pf));
  assert_false(stats(pf).active);
  assert_false(stats(pf).peer_ok);
  assert_true(sft_pfec_deadline(pf) == 0);
  {
    const uint8_t *p;
    size_t len;
    assert_int_equal(sft_pfec_next(pf, &p, &len), 0);
  }
  sft_pfec_del(pf);
  /* force 1: the same; force -1 never probes and has nothing to do. */
  memset(&o, 0, sizeof(o));
  o.force = 1;
  pf = mk(&o);
  assert_false(sft_pfec_active(pf));
  assert_true(sft_pfec_deadline(pf) == 0);
  sft_pfec_del(pf);
  o.force = -1;
  pf = mk(&o);
  assert_false(sft_pfec_active(pf));
  assert_true(sft_pfec_deadline(pf) == UINT64_MAX);
  {
    uint8_t b[64];
    assert_int_equal(ctl(pf, T0, b), 0);
  }
  sft_pfec_del(pf);
  sft_pfec_del(NULL);
}

/* ---- sft_pfec_parity_for ------------------------------------------------ */

static void test_parity_for_shape(void **state) {
  static const unsigned ks[] = {1, 2, 5, 10, 32, 64, 100, 128};
  (void)state;
  for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++) {
    unsigned prev = 0;
    assert_int_equal(sft_pfec_parity_for(ks[i], 0.0, 0.005), 0);
    assert_int_equal(sft_pfec_parity_for(ks[i], -0.2, 0.005), 0);
    /* monotone in loss, always within GF(2^8) */
    for (int pc = 1; pc <= 99; pc++) {
      unsigned m = sft_pfec_parity_for(ks[i], pc / 100.0, 0.005);
      assert_true(m >= prev);
      assert_true(ks[i] + m <= SFT_PFEC_MAX_N);
      assert_true(m >= 1); /* any loss at all needs parity at 0.5 % */
      prev = m;
    }
    /* a stricter target never needs less parity */
    assert_true(sft_pfec_parity_for(ks[i], 0.1, 1e-4) >=
                sft_pfec_parity_for(ks[i], 0.1, 0.005));
    assert_true(sft_pfec_parity_for(ks[i], 0.1, 0.005) >=
                sft_pfec_parity_for(ks[i], 0.1, 0.05));
  }
  /* monotone in k while the cap k + m <= 255 does not bite (above it,
   * m = 255 - k falls as k grows) */
  for (int pc = 1; pc <= 50; pc += 7) {
    unsigned prev = 0;
    for (unsigned k = 1; k <= SFT_PFEC_MAX_K; k++) {
      unsigned m = sft_pfec_parity_for(k, pc / 100.0, 0.005);
      if (k + m < SFT_PFEC_MAX_N)
        assert_true(m >= prev);
      else
        assert_int_equal(k + m, SFT_PFEC_MAX_N);
      prev = m;
    }
  }
  /* the capped corner */
  assert_int_equal(sft_pfec_parity_for(128, 0.9, 0.005), 127);
  assert_int_equal(sft_pfec_parity_for(128, 0.99, 0.005), 127);
  /* the 30 % case the module exists for */
  {
    unsigned m = sft_pfec_parity_for(100, 0.3, 0.005);
    assert_true(m >= 60 && m <= 75);
    assert_true(100 + m <= SFT_PFEC_MAX_N);
    assert_int_equal(m, 65); /* Python: math.comb, exact sum */
  }
  /* small known values (Python, exact binomial sums) */
  assert_int_equal(sft_pfec_parity_for(10, 0.2, 0.005), 8);
  assert_int_equal(sft_pfec_parity_for(1, 0.02, 0.005), 1);
  assert_int_equal(sft_pfec_parity_for(128, 0.02, 0.005), 8);
  assert_int_equal(sft_pfec_parity_for(20, 0.25, 0.005), 16);
}

/* The definition itself: P(Bin(k+m, p) > m) <= fail, and m - 1 misses it. */
static void test_parity_for_binomial_tail(void **state) {
  static const unsigned ks[] = {1, 2, 5, 10, 32, 64, 100, 128};
  static const double ps[] = {0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.45};
  static const double fs[] = {0.05, 0.005, 1e-4};
  unsigned checked = 0;
  (void)state;
  for (size_t a = 0; a < sizeof(ks) / sizeof(ks[0]); a++)
    for (size_t b = 0; b < sizeof(ps) / sizeof(ps[0]); b++)
      for (size_t c = 0; c < sizeof(fs) / sizeof(fs[0]); c++) {
        unsigned k = ks[a], m = sft_pfec_parity_for(k, ps[b], fs[c]);
        double t;
        assert_true(k + m <= SFT_PFEC_MAX_N);
        if (k + m == SFT_PFEC_MAX_N)
          continue; /* capped: the target may be out of reach */
        t = binom_tail(k + m, ps[b], m);
        if (!(t <= fs[c] * (1 + 1e-9)))
          fail_msg("k=%u p=%g fail=%g: m=%u gives %.6g", k, ps[b], fs[c], m, t);
        if (m > 0) {
          t = binom_tail(k + m - 1, ps[b], m - 1);
          if (!(t > fs[c] * (1 - 1e-9)))
            fail_msg("k=%u p=%g fail=%g: m=%u is not the smallest (m-1 "
                     "gives %.6g)",
                     k, ps[b], fs[c], m, t);
        }
        checked++;
      }
  assert_true(checked > 100);
}

/* ---- capability exchange ------------------------------------------------ */

static void test_handshake(void **state) {
  struct sft_pfec_opts so = opts_fec(), ro;
  struct sft_pfec *s, *r;
  uint8_t b[64];
  size_t n;
  (void)state;
  so.probe_ns = 100 * MS;
  s = mk(&so);
  memset(&ro, 0, sizeof(ro));
  ro.force = -1; /* never sends with the shim, still receives */
  r = mk(&ro);

  /* Not answered yet: off, wrap refused, a PROBE due. */
  assert_false(sft_pfec_active(s));
  assert_true(sft_pfec_deadline(s) != UINT64_MAX);
  n = ctl(s, T0, b);
  assert_int_equal(n, 1);
  assert_int_equal(b[0], SFT_PFEC_T_PROBE);
  /* at most every probe_ns */
  assert_int_equal(ctl(s, T0 + 1, b), 0);
  assert_int_equal(ctl(s, T0 + 100 * MS - 1, b), 0);
  assert_true(sft_pfec_deadline(s) <= T0 + 100 * MS);
  n = ctl(s, T0 + 100 * MS + 1, b);
  assert_int_equal(n, 1);
  assert_int_equal(b[0], SFT_PFEC_T_PROBE);

  /* The receiver answers at once with a REPORT of nothing. */
  {
    uint8_t b2[64];
    assert_int_equal(ctl(r, T0, b2), 0);
  }
  assert_int_equal(input_exact(r, T0 + 101 * MS, b, 1), 0);
  assert_true(sft_pfec_deadline(r) <= T0 + 101 * MS);
  n = ctl(r, T0 + 101 * MS, b);
  assert_int_equal(n, SFT_PFEC_REPORT_LEN);
  assert_int_equal(b[0], SFT_PFEC_T_REPORT);
  assert_int_equal(get24(b + 1), NO_BLOCK);
  assert_int_equal(get32(b + 4), 0);
  assert_int_equal(get32(b + 8), 0);
  /* once */
  {
    uint8_t b2[64];
    assert_int_equal(ctl(r, T0 + 101 * MS, b2), 0);
  }
  /* A force -1 object never probes. */
  assert_int_equal(ctl(r, T0 + 10 * SEC, (uint8_t[64]){0}), 0);
  assert_false(sft_pfec_active(r));

  assert_int_equal(input_exact(s, T0 + 102 * MS, b, n), 0);
  assert_true(sft_pfec_active(s));
  assert_true(stats(s).active);
  assert_true(stats(s).peer_ok);
  /* answered: no more probes */
  assert_int_equal(ctl(s, T0 + 10 * SEC, b), 0);

  /* The force -1 side still receives: a short run comes through. */
  {
    struct blobs sent = {0}, tr = {0}, out = {0}, exp = {0};
    uint64_t now = T0 + SEC, rec, failed;
    send_pkts(s, now, &sent, &tr, 25, 1);
    deliver(r, &tr, NULL, &now, MS, &out);
    settle(r, &now, &out);
    expect_out(&tr, &sent, &exp, &rec, &failed);
    assert_same(&out, &exp);
    assert_int_equal(stats(r).dropped, 0);
    blobs_free(&sent);
    blobs_free(&tr);
    blobs_free(&out);
    blobs_free(&exp);
  }
  sft_pfec_del(s);
  sft_pfec_del(r);
}

/* ---- sender: the wire ---------------------------------------------------- */

/* The PARITY datagrams of the block at tr[first..first+k+m) are rows k..
 * k+m-1 of lib/fec's code over the shards [len:16 | packet | zeros]. */
static void check_parity_rows(const struct blobs *tr, size_t first, unsigned k,
                              unsigned m) {
  size_t L = tr->v[first + k].len - SFT_PFEC_PARITY_HDR, longest = 0;
  uint8_t **shard = calloc(k + m, sizeof(*shard));
  struct sft_fec *fec;
  assert_non_null(shard);
  for (unsigned i = 0; i < k; i++) {
    size_t plen = tr->v[first + i].len - HDR;
    if (plen > longest)
      longest = plen;
    shard[i] = calloc(1, L);
    assert_non_null(shard[i]);
    assert_true(plen + 2 <= L);
    shard[i][0] = (uint8_t)(plen >> 8);
    shard[i][1] = (uint8_t)plen;
    memcpy(shard[i] + 2, tr->v[first + i].b + HDR, plen);
  }
  assert_int_equal(L, longest + 2);
  for (unsigned j = 0; j < m; j++) {
    assert_int_equal(tr->v[first + k + j].len, SFT_PFEC_PARITY_HDR + L);
    shard[k + j] = malloc(L);
    assert_non_null(shard[k + j]);
  }
  assert_int_equal(sft_fec_new(&fec, k, m), 0);
  assert_int_equal(
      sft_fec_encode(fec, (const uint8_t *const *)shard, shard + k, L), 0);
  for (unsigned j = 0; j < m; j++)
    assert_memory_equal(tr->v[first + k + j].b + SFT_PFEC_PARITY_HDR,
                        shard[k + j], L);
  sft_fec_del(fec);
  for (unsigned i = 0; i < k + m; i++)
    free(shard[i]);
  free(shard);
}

static void test_wire_format(void **state) {
  struct sft_pfec_opts o = opts_fec();
  struct sft_pfec *s = mk(&o), *r = mk(NULL);
  struct blobs sent = {0}, tr = {0};
  struct plan pl;
  uint32_t b0;
  struct sft_pfec_stats st;
  (void)state;
  handshake(s, r, T0);

  /* A full block: 10 DATA, then its PARITY right after the 10th. */
  send_pkts(s, T0, &sent, &tr, 9, 0);
  assert_int_equal(tr.n, 9); /* nothing due before max_k */
  send_pkts(s, T0, &sent, &tr, 1, 0);
  assert_true(tr.n > 10);
  b0 = get24(tr.v[0].b + 1);
  for (size_t i = 0; i < 10; i++) {
    assert_int_equal(tr.v[i].b[0], SFT_PFEC_T_DATA);
    assert_int_equal(get24(tr.v[i].b + 1), b0);
    assert_int_equal(tr.v[i].b[4], i);
    assert_int_equal(tr.v[i].b[5], 10); /* kplan: index 9 < kplan <= max_k */
    assert_int_equal(tr.v[i].len, sent.v[i].len + HDR);
    assert_memory_equal(tr.v[i].b + HDR, sent.v[i].b, sent.v[i].len);
  }
  {
    unsigned m = (unsigned)(tr.n - 10);
    assert_true(m >= sft_pfec_parity_for(10, 0.2, 0.005));
    /* on_loss + margin at the default fail_target */
    assert_int_equal(m, sft_pfec_parity_for(10, ON_LOSS + 0.2, 0.02));
    assert_true(10 + m <= SFT_PFEC_MAX_N);
    for (unsigned j = 0; j < m; j++) {
      const uint8_t *d = tr.v[10 + j].b;
      assert_int_equal(d[0], SFT_PFEC_T_PARITY);
      assert_int_equal(get24(d + 1), b0);
      assert_int_equal(d[4], 10 + j);
      assert_int_equal(d[5], 10);
    }
    check_parity_rows(&tr, 0, 10, m);
    st = stats(s);
    assert_true(fabs(st.ratio - m / 10.0) < 1e-9); /* m / k */
    assert_int_equal(st.data_sent, 10);
    assert_int_equal(st.parity_sent, m);
    assert_int_equal(st.blocks_sent, 1);
  }

  /* A short block closed by the flush: k = 3 in PARITY, the next block
   * number, DATA's kplan above the real k. */
  {
    size_t first = tr.n;
    double r_prev = stats(s).ratio;
    send_pkts(s, T0, &sent, &tr, 3, 0);
    assert_int_equal(tr.n, first + 3);
    assert_true(parity_out(s, UINT64_MAX, &tr) >= 1);
    for (size_t i = first; i < first + 3; i++) {
      assert_int_equal(get24(tr.v[i].b + 1), (b0 + 1) & 0xffffff);
      assert_int_equal(tr.v[i].b[4], i - first);
      assert_true(tr.v[i].b[5] >= 3);
    }
    for (size_t i = first + 3; i < tr.n; i++) {
      assert_int_equal(get24(tr.v[i].b + 1), (b0 + 1) & 0xffffff);
      assert_int_equal(tr.v[i].b[5], 3);
      assert_int_equal(tr.v[i].b[4], 3 + (i - first - 3));
    }
    check_parity_rows(&tr, first, 3, (unsigned)(tr.n - first - 3));
    /* ratio: EWMA (1/4) of each block's m / k */
    assert_true(
        fabs(stats(s).ratio -
             (0.75 * r_prev + 0.25 * (double)(tr.n - first - 3) / 3.0)) < 1e-9);
  }
  /* Nothing open: a flush is a no-op. */
  assert_int_equal(parity_out(s, UINT64_MAX, &tr), 0);
  st = stats(s);
  assert_int_equal(st.data_sent, 13);
  assert_int_equal(st.blocks_sent, 2);
  analyse(&tr, &pl);
  assert_int_equal(pl.nb, 2);
  assert_int_equal(st.parity_sent, pl.b[0].m + pl.b[1].m);
  plan_free(&pl);

  blobs_free(&sent);
  blobs_free(&tr);
  sft_pfec_del(s);
  sft_pfec_del(r);
}

static void test_block_closes_on_time(void **state) {
  struct sft_pfec_opts o = opts_fec();
  struct sft_pfec *s, *r = mk(NULL);
  struct blobs sent = {0}, tr = {0};
  uint64_t open = T0 + 7 * MS, d;
  (void)state;
  o.max_k = 0; /* default: SFT_PFEC_MAX_K */
  o.block_ns = 10 * MS;
  s = mk(&o);
  handshake(s, r, T0);
  send_pkts(s, open, &sent, &tr, 3, 0);
  send_pkts(s, open + 2 * MS, &sent, &tr, 2, 0);
  assert_int_equal(tr.n, 5);
  d = sft_pfec_deadline(s);
  assert_true(d > open && d <= open + 10 * MS + 1);
  assert_int_equal(parity_out(s, d - 1, &tr), 0);
  assert_true(parity_out(s, d, &tr) >= 1);
  assert_int_equal(tr.v[5].b[5], 5); /* k */
  check_parity_rows(&tr, 0, 5, (unsigned)(tr.n - 5));
  blobs_free(&sent);
  blobs_free(&tr);
  sft_pfec_del(s);
  sft_pfec_del(r);
}

static void test_wrap_errors(void **state) {
  struct sft_pfec_opts o = opts_fec();
  struct sft_pfec *s = mk(&o), *r = mk(NULL);
  static uint8_t buf[HDR + SFT_PFEC_MAX_PKT + 1], ref[sizeof(buf)];
  size_t seg = 0, n = 0;
  (void)state;
  memset(buf, 0xEA, sizeof(buf)); /* 0x40 set: looks like QUIC */
  memcpy(ref, buf, sizeof(buf));
  assert_int_equal(sft_pfec_wrap(s, T0, buf, 100), SFT_ERR_STATE);
  assert_memory_equal(buf, ref, sizeof(buf));

  handshake(s, r, T0);
  assert_int_equal(sft_pfec_wrap(s, T0, buf, 0), SFT_ERR_TOO_LARGE);
  assert_int_equal(sft_pfec_wrap(s, T0, buf, SFT_PFEC_MAX_PKT + 1),
                   SFT_ERR_TOO_LARGE);
  assert_memory_equal(buf, ref, sizeof(buf));
  assert_int_equal(stats(s).data_sent, 0);
  assert_int_equal(
      sft_pfec_parity(s, UINT64_MAX, g_par, sizeof(g_par), &seg, &n), 0);
  assert_int_equal(n, 0);

  /* The largest packet fits, and its PARITY is a full-size datagram. */
  assert_int_equal(sft_pfec_wrap(s, T0, buf, SFT_PFEC_MAX_PKT), 0);
  assert_int_equal(buf[0], SFT_PFEC_T_DATA);
  assert_memory_equal(buf + HDR, ref + HDR, SFT_PFEC_MAX_PKT);
  assert_int_equal(
      sft_pfec_parity(s, UINT64_MAX, g_par, sizeof(g_par), &seg, &n), 0);
  assert_true(n >= 1);
  assert_int_equal(seg, SFT_PFEC_MAX_DGRAM);
  sft_pfec_del(s);
  sft_pfec_del(r);
}

static void test_parity_nospace(void **state) {
  struct sft_pfec_opts o = opts_fec();
  struct sft_pfec *s = mk(&o), *r = mk(NULL);
  static uint8_t small[100];
  uint8_t buf[HDR + 300];
  size_t seg = 0, n = 0, seg1, n1;
  (void)state;
  handshake(s, r, T0);
  for (int round = 0; round < 2; round++) {
    for (unsigned i = 0; i < 10; i++) {
      size_t len = 50 + 20 * i;
      pkt_fill(buf + HDR, len, 1000 * (unsigned)round + i);
      assert_int_equal(sft_pfec_wrap(s, T0, buf, len), 0);
      if (i < 9) { /* nothing due: a small buffer is fine */
        n = 99;
        assert_int_equal(sft_pfec_parity(s, T0, small, sizeof(small), &seg, &n),
                         0);
        assert_int_equal(n, 0);
      }
    }
    if (round == 0) {
      assert_int_equal(sft_pfec_parity(s, T0, small, sizeof(small), &seg, &n),
                       SFT_ERR_NOSPACE);
      /* the block stays open: a big enough buffer gets it */
      assert_int_equal(sft_pfec_parity(s, T0, g_par, sizeof(g_par), &seg1, &n1),
                       0);
      assert_true(n1 >= 1);
      assert_int_equal(seg1, SFT_PFEC_OVERHEAD + 50 + 20 * 9);
      assert_int_equal(stats(s).blocks_sent, 1);
    } else {
      /* same k, same lengths: exactly seg1 * n1 bytes are needed */
      assert_int_equal(sft_pfec_parity(s, T0, g_par, seg1 * n1 - 1, &seg, &n),
                       SFT_ERR_NOSPACE);
      assert_int_equal(sft_pfec_parity(s, T0, g_par, seg1 * n1, &seg, &n), 0);
      assert_int_equal(n, n1);
      assert_int_equal(seg, seg1);
      assert_int_equal(stats(s).blocks_sent, 2);
    }
  }
  sft_pfec_del(s);
  sft_pfec_del(r);
}

/* ---- back to back: recovery and order ------------------------------------ */

struct b2b {
  struct sft_pfec *s, *r;
  struct blobs sent, tr, out, exp;
  uint64_t now;
};

static void b2b_init_o(struct b2b *t, const struct sft_pfec_opts *o,
                       uint32_t npkts, int flush) {
  memset(t, 0, sizeof(*t));
  t->s = mk(o);
  t->r = mk(NULL);
  handshake(t->s, t->r, T0);
  send_pkts(t->s, T0, &t->sent, &t->tr, npkts, flush);
  t->now = T0 + SEC;
}

static void b2b_init(struct b2b *t, uint32_t npkts, int flush) {
  struct sft_pfec_opts o = opts_fec();
  memset(t, 0, sizeof(*t));
  t->s = mk(&o);
  t->r = mk(NULL);
  handshake(t->s, t->r, T0);
  send_pkts(t->s, T0, &t->sent, &t->tr, npkts, flush);
  t->now = T0 + SEC;
}

static void b2b_free(struct b2b *t) {
  sft_pfec_del(t->s);
  sft_pfec_del(t->r);
  blobs_free(&t->sent);
  blobs_free(&t->tr);
  blobs_free(&t->out);
  blobs_free(&t->exp);
}

/* Delivers with the drops tagged, checks the output and the counters. */
static void b2b_check(struct b2b *t, const size_t *order, uint64_t step,
                      int check_counts) {
  uint64_t rec, failed;
  size_t ndata = 0, nparity = 0;
  struct sft_pfec_stats st;
  deliver(t->r, &t->tr, order, &t->now, step, &t->out);
  settle(t->r, &t->now, &t->out);
  expect_out(&t->tr, &t->sent, &t->exp, &rec, &failed);
  assert_same(&t->out, &t->exp);
  for (size_t i = 0; i < t->tr.n; i++)
    if (!t->tr.v[i].tag) {
      if (t->tr.v[i].b[0] == SFT_PFEC_T_DATA)
        ndata++;
      else
        nparity++;
    }
  st = stats(t->r);
  assert_int_equal(st.recovered, rec);
  assert_int_equal(st.blocks_failed, failed);
  if (!check_counts)
    return;
  assert_int_equal(st.data_recv, ndata);
  assert_int_equal(st.parity_recv, nparity);
  assert_int_equal(st.dropped, 0);
  assert_int_equal(st.late, 0);
}

static void test_roundtrip_no_loss(void **state) {
  struct b2b t;
  (void)state;
  b2b_init(&t, 57, 1); /* 5 full blocks and one of 7 */
  b2b_check(&t, NULL, MS, 1);
  assert_int_equal(t.out.n, 57);
  assert_int_equal(stats(t.r).recovered, 0);
  b2b_free(&t);
  /* all at one instant, no ticks until the end */
  b2b_init(&t, 57, 1);
  b2b_check(&t, NULL, 0, 1);
  b2b_free(&t);
}

/* Tags DATA |data[0..nd)| of block |b| and its first |np| PARITY as
 * dropped. */
static void drop_in(struct b2b *t, const struct plan *pl, size_t b,
                    const unsigned *data, size_t nd, unsigned np) {
  const struct blk *x = &pl->b[b];
  for (size_t i = 0; i < nd; i++) {
    assert_true(data[i] < x->k);
    t->tr.v[x->first_data + data[i]].tag = 1;
  }
  assert_true(np <= x->m);
  for (unsigned j = 0; j < np; j++)
    t->tr.v[x->first_parity + j].tag = 1;
}

static void test_roundtrip_drops_within_parity(void **state) {
  struct b2b t;
  struct plan pl;
  uint64_t rec = 0;
  (void)state;
  b2b_init(&t, 87, 1); /* 8 blocks of 10 and one of 7 */
  analyse(&t.tr, &pl);
  assert_int_equal(pl.nb, 9);
  for (size_t b = 0; b < pl.nb; b++) {
    assert_true(pl.b[b].m >= 6);
    assert_int_equal(pl.b[b].kfield, pl.b[b].k);
  }
  {
    const unsigned m = pl.b[3].m, m6 = pl.b[6].m;
    unsigned all[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    const unsigned d1[] = {0}, d2[] = {3, 4, 5}, d5[] = {9},
                   d6[] = {1, 3, 5, 7}, d7[] = {9}, d8[] = {6};
    drop_in(&t, &pl, 1, d1, 1, 0);
    drop_in(&t, &pl, 2, d2, 3, 0);
    drop_in(&t, &pl, 3, all, m < 10 ? m : 10, m < 10 ? 0 : m - 10);
    drop_in(&t, &pl, 4, NULL, 0, pl.b[4].m); /* all parity, no data */
    drop_in(&t, &pl, 5, d5, 1, pl.b[5].m - 1);
    drop_in(&t, &pl, 6, d6, 4, m6 - 4);
    drop_in(&t, &pl, 7, d7, 1, 0); /* last of a full block */
    drop_in(&t, &pl, 8, d8, 1, 0); /* last of the short block */
    rec = 1 + 3 + (m < 10 ? m : 10) + 1 + 4 + 1 + 1;
  }
  plan_free(&pl);
  b2b_check(&t, NULL, MS, 1);
  assert_int_equal(t.out.n, 87);
  assert_int_equal(stats(t.r).recovered, rec);
  assert_int_equal(stats(t.r).blocks_failed, 0);
  b2b_free(&t);
}

static void test_roundtrip_random_drops(void **state) {
  static const double loss[] = {0.1, 0.25, 0.4};
  uint64_t tot_rec = 0, tot_failed = 0;
  (void)state;
  for (uint64_t seed = 1; seed <= 30; seed++) {
    struct b2b t;
    uint64_t x = seed * 0x2545F4914F6CDD1DULL;
    double p = loss[seed % 3];
    b2b_init(&t, 60, 1);
    for (size_t i = 0; i < t.tr.n; i++)
      t.tr.v[i].tag = rng_unit(&x) < p;
    b2b_check(&t, NULL, MS, 1);
    tot_rec += stats(t.r).recovered;
    tot_failed += stats(t.r).blocks_failed;
    b2b_free(&t);
  }
  /* the patterns exercised both outcomes */
  assert_true(tot_rec > 50);
  assert_true(tot_failed > 0);
}

/* Inputs trace entries |idx[0..n)| (exact copies) at |now|, draining after
 * each. */
static void put_some(struct b2b *t, uint64_t now, const size_t *idx, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const struct blob *d = &t->tr.v[idx[i]];
    int rc = input_exact(t->r, now, d->b, d->len);
    if (rc != 0)
      fail_msg("genuine datagram %zu (type %#x, index %u): input returned %d",
               idx[i], d->b[0], d->b[4], rc);
    drain(t->r, &t->out);
  }
}

/* Trace positions of block |x|'s DATA |from..to) except |skip| (-1: none). */
static size_t data_idx(const struct blk *x, unsigned from, unsigned to,
                       int skip, size_t *idx) {
  size_t n = 0;
  for (unsigned i = from; i < to; i++)
    if ((int)i != skip)
      idx[n++] = x->first_data + i;
  return n;
}

/* The packets |ids| of t->sent, in that order, are exactly t->out. */
static void assert_out_ids(struct b2b *t, const unsigned *ids, size_t n) {
  struct blobs exp = {0};
  for (size_t i = 0; i < n; i++)
    blobs_push(&exp, t->sent.v[ids[i]].b, t->sent.v[ids[i]].len, 0);
  assert_same(&t->out, &exp);
  blobs_free(&exp);
}

/* More than m of a block lost: the packets after the gap are held until
 * the hold deadline, then the survivors come out in order and the block
 * counts as failed; the blocks after it are unaffected. */
static void test_block_failure_releases_survivors(void **state) {
  struct b2b t;
  struct plan pl;
  size_t idx[64], n;
  const unsigned d0[] = {2, 5, 7}, d2[] = {2};
  const unsigned surv[] = {0, 1, 3, 4, 6, 8, 9};
  uint64_t at;
  (void)state;
  b2b_init(&t, 30, 1);
  analyse(&t.tr, &pl);
  assert_int_equal(pl.nb, 3);
  assert_true(pl.b[0].m >= 2);
  /* 3 DATA and m - 2 PARITY lost: m + 1 in all, 9 of 10 needed remain */
  drop_in(&t, &pl, 0, d0, 3, pl.b[0].m - 2);
  drop_in(&t, &pl, 2, d2, 1, 0);

  at = t.now;
  n = 0;
  for (size_t i = pl.b[0].first_data; i < pl.b[1].first_data; i++)
    if (!t.tr.v[i].tag)
      idx[n++] = i;
  put_some(&t, at, idx, n);
  assert_int_equal(t.out.n, 2); /* 0 and 1; 3.. wait behind the gap */
  assert_true(sft_pfec_deadline(t.r) != UINT64_MAX);
  assert_true(sft_pfec_deadline(t.r) <= at + HOLD + 1);
  sft_pfec_tick(t.r, at + HOLD / 2);
  drain(t.r, &t.out);
  assert_int_equal(t.out.n, 2);
  assert_int_equal(stats(t.r).blocks_failed, 0);
  sft_pfec_tick(t.r, at + HOLD + 2 * MS);
  drain(t.r, &t.out);
  assert_int_equal(stats(t.r).blocks_failed, 1);
  assert_int_equal(stats(t.r).recovered, 0);
  assert_out_ids(&t, surv, 7);

  /* the next blocks: one whole, one rebuilt */
  n = 0;
  for (size_t i = pl.b[1].first_data; i < t.tr.n; i++)
    if (!t.tr.v[i].tag)
      idx[n++] = i;
  put_some(&t, at + HOLD + 3 * MS, idx, n);
  settle(t.r, &t.now, &t.out);
  {
    uint64_t rec, failed;
    expect_out(&t.tr, &t.sent, &t.exp, &rec, &failed);
    assert_int_equal(failed, 1);
    assert_int_equal(rec, 1);
    assert_same(&t.out, &t.exp);
  }
  assert_int_equal(t.out.n, 27);
  assert_int_equal(stats(t.r).blocks_failed, 1);
  assert_int_equal(stats(t.r).recovered, 1);
  plan_free(&pl);
  b2b_free(&t);
}

/* A gap holds the packets after it until parity fills it. */
static void test_hold_until_parity(void **state) {
  struct b2b t;
  struct plan pl;
  const struct blk *b0;
  size_t idx[64], n;
  unsigned ids[20];
  (void)state;
  b2b_init(&t, 20, 1);
  analyse(&t.tr, &pl);
  assert_int_equal(pl.nb, 2);
  b0 = &pl.b[0];
  for (unsigned i = 0; i < 3; i++) {
    n = data_idx(b0, i, i + 1, -1, idx);
    put_some(&t, t.now, idx, n);
    assert_int_equal(t.out.n, i + 1); /* in order: out at once */
  }
  /* DATA 3 lost; 4..9 (4 twice) wait */
  n = data_idx(b0, 4, 10, -1, idx);
  idx[n++] = b0->first_data + 4;
  put_some(&t, t.now, idx, n);
  assert_int_equal(t.out.n, 3);
  assert_true(sft_pfec_deadline(t.r) != UINT64_MAX);
  assert_true(sft_pfec_deadline(t.r) <= t.now + HOLD + 1);
  sft_pfec_tick(t.r, t.now + 2 * MS);
  drain(t.r, &t.out);
  assert_int_equal(t.out.n, 3);

  /* one PARITY: 3 rebuilt, 3..9 go out, each once */
  idx[0] = b0->first_parity;
  put_some(&t, t.now + 3 * MS, idx, 1);
  assert_int_equal(stats(t.r).recovered, 1);
  for (unsigned i = 0; i < 10; i++)
    ids[i] = i;
  assert_out_ids(&t, ids, 10);
  /* the rest of its PARITY changes nothing */
  for (unsigned j = 1; j < b0->m; j++)
    idx[j - 1] = b0->first_parity + j;
  put_some(&t, t.now + 3 * MS, idx, b0->m - 1);
  assert_int_equal(t.out.n, 10);
  /* the second block */
  n = 0;
  for (size_t i = pl.b[1].first_data; i < t.tr.n; i++)
    idx[n++] = i;
  put_some(&t, t.now + 4 * MS, idx, n);
  settle(t.r, &t.now, &t.out);
  for (unsigned i = 0; i < 20; i++)
    ids[i] = i;
  assert_out_ids(&t, ids, 20);
  assert_int_equal(stats(t.r).recovered, 1);
  assert_int_equal(stats(t.r).blocks_failed, 0);
  assert_int_equal(stats(t.r).dropped, 0);
  plan_free(&pl);
  b2b_free(&t);
}

/* No parity comes: the hold deadline gives the block up; a late DATA of it
 * is then passed on as is, a late PARITY changes nothing. */
static void test_hold_deadline_and_late_data(void **state) {
  struct b2b t;
  struct plan pl;
  const struct blk *b0;
  size_t idx[64], n;
  unsigned ids[20];
  uint64_t at;
  int rc;
  (void)state;
  b2b_init(&t, 20, 1);
  analyse(&t.tr, &pl);
  b0 = &pl.b[0];
  at = t.now;
  n = data_idx(b0, 0, 10, 3, idx);
  put_some(&t, at, idx, n);
  assert_int_equal(t.out.n, 3);
  assert_true(sft_pfec_deadline(t.r) <= at + HOLD + 1);
  sft_pfec_tick(t.r, at + 10 * MS);
  drain(t.r, &t.out);
  assert_int_equal(t.out.n, 3);
  sft_pfec_tick(t.r, at + HOLD + 2 * MS);
  drain(t.r, &t.out);
  assert_int_equal(stats(t.r).blocks_failed, 1);
  assert_int_equal(stats(t.r).recovered, 0);
  n = 0;
  for (unsigned i = 0; i < 10; i++)
    if (i != 3)
      ids[n++] = i;
  assert_out_ids(&t, ids, n);

  /* late DATA 3: passed on as is */
  idx[0] = b0->first_data + 3;
  put_some(&t, at + HOLD + 3 * MS, idx, 1);
  ids[n++] = 3;
  assert_out_ids(&t, ids, n);
  assert_int_equal(stats(t.r).late, 1);
  assert_int_equal(stats(t.r).data_recv, 10);
  /* late PARITY: counted, nothing rebuilt, nothing comes out */
  for (unsigned j = 0; j < b0->m; j++) {
    const struct blob *d = &t.tr.v[b0->first_parity + j];
    rc = input_exact(t.r, at + HOLD + 4 * MS, d->b, d->len);
    assert_int_equal(rc, 0);
    drain(t.r, &t.out);
  }
  assert_int_equal(t.out.n, n);
  assert_int_equal(stats(t.r).recovered, 0);
  assert_int_equal(stats(t.r).parity_recv, b0->m);
  assert_int_equal(stats(t.r).dropped, 0);
  /* the next block as usual */
  {
    size_t m = 0;
    for (size_t i = pl.b[1].first_data; i < t.tr.n; i++)
      idx[m++] = i;
    put_some(&t, at + HOLD + 5 * MS, idx, m);
  }
  settle(t.r, &t.now, &t.out);
  for (unsigned i = 10; i < 20; i++)
    ids[n++] = i;
  assert_out_ids(&t, ids, n);
  assert_int_equal(stats(t.r).blocks_failed, 1);
  plan_free(&pl);
  b2b_free(&t);
}

/* In-order arrival is assumed: a datagram of the next block retires the
 * held block at once (no wait for hold_ns). Block 0 lost DATA 3 and all
 * its PARITY: when block 1's first DATA comes, 4..9 come out behind 0..2,
 * then 10; block 0 counts as failed. Its PARITY arriving after that is
 * counted but repairs nothing; a late DATA 3 is passed on as is. */
static void test_next_block_retires_held_block(void **state) {
  struct b2b t;
  struct plan pl;
  const struct blk *b0, *b1;
  size_t idx[64], n;
  unsigned ids[24], ni = 0;
  uint64_t at;
  struct sft_pfec_stats st;
  (void)state;
  b2b_init(&t, 20, 1);
  analyse(&t.tr, &pl);
  assert_int_equal(pl.nb, 2);
  b0 = &pl.b[0];
  b1 = &pl.b[1];
  at = t.now;
  n = data_idx(b0, 0, 10, 3, idx);
  put_some(&t, at, idx, n);
  assert_int_equal(t.out.n, 3);
  assert_true(sft_pfec_deadline(t.r) <= at + HOLD + 1);

  /* 1 ms later, far before the hold deadline: block 1's DATA 0 */
  idx[0] = b1->first_data;
  put_some(&t, at + MS, idx, 1);
  for (unsigned i = 0; i < 11; i++)
    if (i != 3)
      ids[ni++] = i;
  assert_out_ids(&t, ids, ni);
  st = stats(t.r);
  assert_int_equal(st.blocks_failed, 1);
  assert_int_equal(st.recovered, 0);
  assert_int_equal(st.late, 0);
  assert_int_equal(st.dropped, 0);

  /* block 0's PARITY now: counted, nothing rebuilt, nothing out */
  for (unsigned j = 0; j < b0->m; j++)
    idx[j] = b0->first_parity + j;
  put_some(&t, at + 2 * MS, idx, b0->m);
  assert_int_equal(t.out.n, ni);
  st = stats(t.r);
  assert_int_equal(st.parity_recv, b0->m);
  assert_int_equal(st.recovered, 0);
  assert_int_equal(st.blocks_failed, 1);
  assert_int_equal(st.dropped, 0);

  /* a straggling DATA 3: out at once, as is */
  idx[0] = b0->first_data + 3;
  put_some(&t, at + 3 * MS, idx, 1);
  ids[ni++] = 3;
  assert_out_ids(&t, ids, ni);
  assert_int_equal(stats(t.r).late, 1);

  /* the rest of block 1 as usual */
  n = 0;
  for (size_t i = b1->first_data + 1; i < t.tr.n; i++)
    idx[n++] = i;
  put_some(&t, at + 4 * MS, idx, n);
  settle(t.r, &t.now, &t.out);
  for (unsigned i = 11; i < 20; i++)
    ids[ni++] = i;
  assert_out_ids(&t, ids, ni);
  st = stats(t.r);
  assert_int_equal(st.blocks_failed, 1);
  assert_int_equal(st.recovered, 0);
  assert_int_equal(st.data_recv, 9 + 1 + 10);
  assert_int_equal(st.parity_recv, b0->m + b1->m);
  plan_free(&pl);
  b2b_free(&t);
}

/* The queue holds what the last sft_pfec_input() or sft_pfec_tick() made
 * ready; the next call discards whatever the caller did not take. */
static void test_queue_discarded_if_not_drained(void **state) {
  struct b2b t;
  struct plan pl;
  const struct blk *b0;
  const uint8_t *p;
  size_t len;
  unsigned ids[12];
  (void)state;
  b2b_init(&t, 20, 1);
  analyse(&t.tr, &pl);
  b0 = &pl.b[0];
  /* 4 in-order DATA without draining: only the last one is still there */
  for (unsigned i = 0; i < 4; i++)
    assert_int_equal(input_exact(t.r, t.now, t.tr.v[b0->first_data + i].b,
                                 t.tr.v[b0->first_data + i].len),
                     0);
  drain(t.r, &t.out);
  ids[0] = 3;
  assert_out_ids(&t, ids, 1);
  /* DATA 4 queued, then a tick (nothing due) empties the queue */
  assert_int_equal(input_exact(t.r, t.now, t.tr.v[b0->first_data + 4].b,
                               t.tr.v[b0->first_data + 4].len),
                   0);
  sft_pfec_tick(t.r, t.now);
  drain(t.r, &t.out);
  assert_int_equal(t.out.n, 1);
  /* DATA 5 lost; 6..9 wait; one PARITY releases 5..9: take one, then the
   * next input (a PARITY of the finished block) discards the other four */
  for (unsigned i = 6; i < 10; i++) {
    assert_int_equal(input_exact(t.r, t.now, t.tr.v[b0->first_data + i].b,
                                 t.tr.v[b0->first_data + i].len),
                     0);
    drain(t.r, &t.out);
  }
  assert_int_equal(t.out.n, 1);
  assert_int_equal(input_exact(t.r, t.now, t.tr.v[b0->first_parity].b,
                               t.tr.v[b0->first_parity].len),
                   0);
  assert_int_equal(stats(t.r).recovered, 1);
  assert_int_equal(sft_pfec_next(t.r, &p, &len), 1);
  blobs_push(&t.out, p, len, 0);
  ids[1] = 5;
  assert_out_ids(&t, ids, 2);
  assert_int_equal(input_exact(t.r, t.now, t.tr.v[b0->first_parity + 1].b,
                               t.tr.v[b0->first_parity + 1].len),
                   0);
  drain(t.r, &t.out);
  assert_int_equal(t.out.n, 2);
  /* discarded packets never come back; block 1 comes through whole */
  for (size_t i = pl.b[1].first_data; i < t.tr.n; i++) {
    assert_int_equal(input_exact(t.r, t.now, t.tr.v[i].b, t.tr.v[i].len), 0);
    drain(t.r, &t.out);
  }
  settle(t.r, &t.now, &t.out);
  for (unsigned i = 10; i < 20; i++)
    ids[i - 8] = i;
  assert_out_ids(&t, ids, 12);
  assert_int_equal(stats(t.r).blocks_failed, 0);
  assert_int_equal(stats(t.r).late, 0);
  plan_free(&pl);
  b2b_free(&t);
}

/* Sets |order| to the trace order with trace entry |what| moved to just
 * after entry |after|. */
static void move_after(size_t *order, size_t n, size_t what, size_t after) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (i == what)
      continue;
    order[o++] = i;
    if (i == after)
      order[o++] = what;
  }
  assert_int_equal(o, n);
}

/* Reordering. Within a block (adjacent DATA swapped) it is harmless: every
 * packet once, in order, repairs as usual. Across blocks it retires the
 * earlier block early: a straggler DATA then comes out late (each packet
 * still exactly once), and PARITY overtaken by the next block's DATA
 * repairs nothing. */
static void test_reorder(void **state) {
  (void)state;
  /* within blocks; variant 1 also loses DATA 3 of each block */
  for (int variant = 0; variant < 2; variant++) {
    struct b2b t;
    struct plan pl;
    size_t *order, no = 0;
    b2b_init(&t, 40, 1);
    analyse(&t.tr, &pl);
    assert_int_equal(pl.nb, 4);
    order = calloc(t.tr.n, sizeof(*order));
    assert_non_null(order);
    for (size_t b = 0; b < pl.nb; b++) {
      const struct blk *x = &pl.b[b];
      for (unsigned i = 0; i < x->k; i += 2) {
        order[no++] = x->first_data + i + 1;
        order[no++] = x->first_data + i;
      }
      for (unsigned j = 0; j < x->m; j++)
        order[no++] = x->first_parity + j;
      if (variant)
        t.tr.v[x->first_data + 3].tag = 1;
    }
    assert_int_equal(no, t.tr.n);
    b2b_check(&t, order, 0, 1); /* exact output, counters, late 0 */
    assert_int_equal(t.out.n, 40);
    assert_int_equal(stats(t.r).recovered, variant ? 4 : 0);
    assert_int_equal(stats(t.r).blocks_failed, 0);
    free(order);
    plan_free(&pl);
    b2b_free(&t);
  }

  /* A straggler: block 0's DATA 5 arrives after block 1's DATA 0, and
   * block 0's PARITY is lost. Block 0 is given up when block 1 starts
   * (survivors out at once), then DATA 5 comes out late. */
  {
    struct b2b t;
    struct plan pl;
    size_t *order;
    unsigned ids[40], ni = 0;
    struct sft_pfec_stats st;
    b2b_init(&t, 40, 1);
    analyse(&t.tr, &pl);
    order = calloc(t.tr.n, sizeof(*order));
    assert_non_null(order);
    move_after(order, t.tr.n, pl.b[0].first_data + 5, pl.b[1].first_data);
    for (unsigned j = 0; j < pl.b[0].m; j++)
      t.tr.v[pl.b[0].first_parity + j].tag = 1;
    deliver(t.r, &t.tr, order, &t.now, MS, &t.out);
    settle(t.r, &t.now, &t.out);
    for (unsigned i = 0; i <= 10; i++)
      if (i != 5)
        ids[ni++] = i;
    ids[ni++] = 5;
    for (unsigned i = 11; i < 40; i++)
      ids[ni++] = i;
    assert_out_ids(&t, ids, ni);
    st = stats(t.r);
    assert_int_equal(st.late, 1);
    assert_int_equal(st.blocks_failed, 1);
    assert_int_equal(st.recovered, 0);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.data_recv, 40);
    free(order);
    plan_free(&pl);
    b2b_free(&t);
  }

  /* Each block's PARITY overtaken by the next block's DATA 0. Without loss
   * nothing changes. With DATA 3 lost in each block, the PARITY comes too
   * late to repair blocks 0..2 (given up when the next block starts, each
   * packet still at most once, in order); the last block is repaired. */
  for (int variant = 0; variant < 2; variant++) {
    struct b2b t;
    struct plan pl;
    size_t *order, no = 0;
    unsigned ids[40], ni = 0;
    struct sft_pfec_stats st;
    b2b_init(&t, 40, 1);
    analyse(&t.tr, &pl);
    assert_int_equal(pl.nb, 4);
    order = calloc(t.tr.n, sizeof(*order));
    assert_non_null(order);
    for (size_t b = 0; b < pl.nb; b++) {
      const struct blk *x = &pl.b[b];
      for (unsigned i = b ? 1 : 0; i < x->k; i++)
        order[no++] = x->first_data + i;
      if (b + 1 < pl.nb)
        order[no++] = pl.b[b + 1].first_data;
      for (unsigned j = 0; j < x->m; j++)
        order[no++] = x->first_parity + j;
      if (variant)
        t.tr.v[x->first_data + 3].tag = 1;
    }
    assert_int_equal(no, t.tr.n);
    deliver(t.r, &t.tr, order, &t.now, MS, &t.out);
    settle(t.r, &t.now, &t.out);
    for (unsigned i = 0; i < 40; i++)
      if (!variant || i % 10 != 3 || i >= 30)
        ids[ni++] = i;
    assert_out_ids(&t, ids, ni);
    st = stats(t.r);
    assert_int_equal(st.blocks_failed, variant ? 3 : 0);
    assert_int_equal(st.recovered, variant ? 1 : 0);
    assert_int_equal(st.late, 0);
    assert_int_equal(st.dropped, 0);
    free(order);
    plan_free(&pl);
    b2b_free(&t);
  }

  /* A DATA overtaken by its own block's PARITY: the block is rebuilt and
   * finished without it, so the original then comes out again, late (QUIC
   * discards the duplicate). */
  {
    struct b2b t;
    struct plan pl;
    size_t *order;
    unsigned ids[21], ni = 0;
    b2b_init(&t, 20, 1);
    analyse(&t.tr, &pl);
    order = calloc(t.tr.n, sizeof(*order));
    assert_non_null(order);
    move_after(order, t.tr.n, pl.b[0].first_data + 4, pl.b[0].first_parity);
    deliver(t.r, &t.tr, order, &t.now, MS, &t.out);
    settle(t.r, &t.now, &t.out);
    for (unsigned i = 0; i < 10; i++)
      ids[ni++] = i;
    ids[ni++] = 4;
    for (unsigned i = 10; i < 20; i++)
      ids[ni++] = i;
    assert_out_ids(&t, ids, ni);
    assert_int_equal(stats(t.r).recovered, 1);
    assert_int_equal(stats(t.r).late, 1);
    assert_int_equal(stats(t.r).blocks_failed, 0);
    free(order);
    plan_free(&pl);
    b2b_free(&t);
  }
}

/* ---- receiver: hostile input ----------------------------------------------
 */

static void test_first_block_any_number(void **state) {
  struct sft_pfec *r = mk(NULL);
  struct blobs out = {0};
  uint8_t d[HDR + 20];
  (void)state;
  for (unsigned i = 0; i < 2; i++) {
    d[0] = SFT_PFEC_T_DATA;
    put24(d + 1, 0xabcd);
    d[4] = (uint8_t)i;
    d[5] = 3;
    pkt_fill(d + HDR, 20, i);
    assert_int_equal(input_exact(r, T0, d, sizeof(d)), 0);
    drain(r, &out);
    assert_int_equal(out.n, i + 1);
    assert_memory_equal(out.v[i].b, d + HDR, 20);
  }
  blobs_free(&out);
  sft_pfec_del(r);
}

static void test_malformed(void **state) {
  struct mal {
    const char *what;
    uint8_t type;
    uint32_t block;
    uint8_t index, k;
    size_t len;
  };
  static const struct mal cases[] = {
      {"DATA, 1 byte", SFT_PFEC_T_DATA, 0, 0, 0, 1},
      {"DATA, 5 bytes", SFT_PFEC_T_DATA, 0, 0, 4, 5},
      {"DATA, header only", SFT_PFEC_T_DATA, 0, 0, 4, 6},
      {"DATA, kplan 0", SFT_PFEC_T_DATA, 0, 0, 0, 40},
      {"DATA, index = kplan", SFT_PFEC_T_DATA, 0, 5, 5, 40},
      {"DATA, index > kplan", SFT_PFEC_T_DATA, 0, 200, 5, 40},
      {"DATA, kplan > MAX_K", SFT_PFEC_T_DATA, 0, 0, SFT_PFEC_MAX_K + 1, 40},
      {"DATA, packet > MAX_PKT", SFT_PFEC_T_DATA, 0, 0, 4,
       HDR + SFT_PFEC_MAX_PKT + 1},
      {"DATA, > MAX_DGRAM", SFT_PFEC_T_DATA, 0, 0, 4, SFT_PFEC_MAX_DGRAM + 1},
      {"PARITY, 1 byte", SFT_PFEC_T_PARITY, 0, 0, 0, 1},
      {"PARITY, 5 bytes", SFT_PFEC_T_PARITY, 0, 4, 4, 5},
      {"PARITY, no shard", SFT_PFEC_T_PARITY, 0, 4, 4, 6},
      {"PARITY, 1-byte shard", SFT_PFEC_T_PARITY, 0, 4, 4, 7},
      {"PARITY, 2-byte shard", SFT_PFEC_T_PARITY, 0, 4, 4, 8},
      {"PARITY, k 0", SFT_PFEC_T_PARITY, 0, 0, 0, 40},
      {"PARITY, k 0 index 5", SFT_PFEC_T_PARITY, 0, 5, 0, 40},
      {"PARITY, index < k", SFT_PFEC_T_PARITY, 0, 3, 10, 40},
      {"PARITY, index 255", SFT_PFEC_T_PARITY, 0, 255, 10, 40},
      {"PARITY, k > MAX_K", SFT_PFEC_T_PARITY, 0, 200, SFT_PFEC_MAX_K + 1, 40},
      {"PARITY, > MAX_DGRAM", SFT_PFEC_T_PARITY, 0, 10, 4,
       SFT_PFEC_MAX_DGRAM + 1},
      {"REPORT, 1 byte", SFT_PFEC_T_REPORT, 0, 0, 0, 1},
      {"REPORT, 11 bytes", SFT_PFEC_T_REPORT, 0, 0, 0, 11},
      {"type 0x26", 0x26, 0, 0, 4, 40},
      {"type 0x20", 0x20, 0, 0, 4, 40},
      {"type 0x25", 0x25, 0, 0, 4, 40},
      {"type 0x3f", 0x3f, 0, 0, 4, 40},
  };
  const size_t nc = sizeof(cases) / sizeof(cases[0]);
  struct sft_pfec *r = mk(NULL);
  struct blobs out = {0};
  char why[2048];
  size_t wl = 0;
  unsigned bad = 0;
  (void)state;
  why[0] = 0;
  for (int pass = 0; pass < 2; pass++) {
    for (size_t c = 0; c < nc; c++) {
      const struct mal *m = &cases[c];
      uint8_t *d = malloc(m->len);
      uint64_t before = stats(r).dropped;
      int rc;
      assert_non_null(d);
      for (size_t i = 0; i < m->len; i++)
        d[i] = (uint8_t)(0x40 + i * 7);
      d[0] = m->type;
      if (m->len >= 4)
        put24(d + 1, m->block);
      if (m->len >= 5)
        d[4] = m->index;
      if (m->len >= 6)
        d[5] = m->k;
      rc = sft_pfec_input(r, T0 + (uint64_t)c * MS, d, m->len);
      free(d);
      drain(r, &out);
      if (pass == 0 && (rc != SFT_ERR_MALFORMED ||
                        stats(r).dropped != before + 1 || out.n != 0)) {
        bad++;
        if (wl < sizeof(why) - 100)
          wl += (size_t)snprintf(
              why + wl, sizeof(why) - wl,
              "\n  %s: rc %d, dropped +%llu, %zu out", m->what, rc,
              (unsigned long long)(stats(r).dropped - before), out.n);
      }
      blobs_free(&out);
    }
    sft_pfec_tick(r, T0 + 10 * SEC);
    drain(r, &out);
    if (out.n && pass == 0 && wl < sizeof(why) - 100) {
      bad++;
      wl += (size_t)snprintf(why + wl, sizeof(why) - wl,
                             "\n  %zu packet(s) came out at the hold "
                             "deadline",
                             out.n);
    }
    blobs_free(&out);
  }
  if (bad)
    fail_msg("%u of %zu malformed datagrams not refused:%s", bad, nc, why);
  assert_int_equal(stats(r).dropped, 2 * nc);
  assert_int_equal(stats(r).recovered, 0);

  /* The same object still works afterwards. */
  {
    struct sft_pfec_opts so = opts_fec();
    struct sft_pfec *s = mk(&so);
    struct blobs sent = {0}, tr = {0};
    uint64_t now = T0 + 20 * SEC;
    handshake(s, r, now);
    send_pkts(s, now, &sent, &tr, 23, 1);
    tr.v[4].tag = 1;
    deliver(r, &tr, NULL, &now, MS, &out);
    settle(r, &now, &out);
    assert_same(&out, &sent);
    assert_int_equal(stats(r).recovered, 1);
    assert_int_equal(stats(r).dropped, 2 * nc);
    blobs_free(&sent);
    blobs_free(&tr);
    sft_pfec_del(s);
  }
  blobs_free(&out);
  sft_pfec_del(r);
}

/* A block of k = 2: DATA 0 carries |p0|; PARITY (index 2) is lib/fec's row
 * over [len|p0|0...] and a second shard whose length field says |len1|,
 * followed by |p1| (forged when len1 does not fit the shard). */
static void forged_block(struct sft_pfec *r, uint64_t now, const uint8_t *p0,
                         size_t n0, uint16_t len1, const uint8_t *p1, size_t n1,
                         struct blobs *out) {
  size_t L = 2 + (n0 > n1 ? n0 : n1);
  uint8_t *sh[3], *dg;
  struct sft_fec *fec;
  int rc;
  for (int i = 0; i < 3; i++) {
    sh[i] = calloc(1, L);
    assert_non_null(sh[i]);
  }
  sh[0][0] = (uint8_t)(n0 >> 8);
  sh[0][1] = (uint8_t)n0;
  memcpy(sh[0] + 2, p0, n0);
  sh[1][0] = (uint8_t)(len1 >> 8);
  sh[1][1] = (uint8_t)len1;
  memcpy(sh[1] + 2, p1, n1);
  assert_int_equal(sft_fec_new(&fec, 2, 1), 0);
  assert_int_equal(sft_fec_encode(fec, (const uint8_t *const *)sh, sh + 2, L),
                   0);
  sft_fec_del(fec);

  dg = malloc(HDR + L);
  assert_non_null(dg);
  dg[0] = SFT_PFEC_T_DATA;
  put24(dg + 1, 0);
  dg[4] = 0;
  dg[5] = 2;
  memcpy(dg + HDR, p0, n0);
  assert_int_equal(input_exact(r, now, dg, HDR + n0), 0);
  drain(r, out);
  dg[0] = SFT_PFEC_T_PARITY;
  dg[4] = 2;
  dg[5] = 2;
  memcpy(dg + SFT_PFEC_PARITY_HDR, sh[2], L);
  rc = input_exact(r, now, dg, SFT_PFEC_PARITY_HDR + L);
  assert_true(rc == 0 || rc == SFT_ERR_MALFORMED);
  drain(r, out);
  sft_pfec_tick(r, now + SEC);
  drain(r, out);
  free(dg);
  for (int i = 0; i < 3; i++)
    free(sh[i]);
}

static void test_forged_shard_length(void **state) {
  uint8_t p0[40], p1[40];
  static const uint16_t bad[] = {0, 41, 42, 0x100, 0xffff};
  (void)state;
  pkt_fill(p0, sizeof(p0), 1);
  pkt_fill(p1, sizeof(p1), 2);
  /* genuine: 4 bytes; and the longest a 42-byte shard holds (40) */
  for (int v = 0; v < 2; v++) {
    struct sft_pfec *r = mk(NULL);
    struct blobs out = {0};
    uint16_t l1 = v ? 40 : 4;
    forged_block(r, T0, p0, 40, l1, p1, v ? 40 : 4, &out);
    assert_int_equal(out.n, 2);
    assert_memory_equal(out.v[0].b, p0, 40);
    assert_int_equal(out.v[1].len, l1);
    assert_memory_equal(out.v[1].b, p1, l1);
    assert_int_equal(stats(r).recovered, 1);
    blobs_free(&out);
    sft_pfec_del(r);
  }
  /* length fields the shard cannot hold (or 0): never handed out */
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct sft_pfec *r = mk(NULL);
    struct blobs out = {0};
    forged_block(r, T0, p0, 40, bad[i], p1, 4, &out);
    if (out.n != 1)
      fail_msg("length field %u: %zu packets out", bad[i], out.n);
    assert_memory_equal(out.v[0].b, p0, 40);
    assert_int_equal(stats(r).recovered, 0);
    blobs_free(&out);
    sft_pfec_del(r);
  }
}

/* A PARITY whose shard is shorter than a DATA of its block already holds
 * (impossible from a real sender): no rebuild, the DATA unharmed, in
 * either arrival order. */
static void test_parity_shorter_than_data(void **state) {
  (void)state;
  for (int parity_first = 0; parity_first < 2; parity_first++) {
    struct sft_pfec *r = mk(NULL);
    struct blobs out = {0};
    uint8_t data[HDR + 100], par[SFT_PFEC_PARITY_HDR + 10];
    data[0] = SFT_PFEC_T_DATA;
    put24(data + 1, 0);
    data[4] = 0;
    data[5] = 2;
    pkt_fill(data + HDR, 100, 9);
    par[0] = SFT_PFEC_T_PARITY;
    put24(par + 1, 0);
    par[4] = 2;
    par[5] = 2;
    for (size_t i = SFT_PFEC_PARITY_HDR; i < sizeof(par); i++)
      par[i] = (uint8_t)(i * 31);
    if (parity_first) {
      int rc = input_exact(r, T0, par, sizeof(par));
      assert_true(rc == 0 || rc == SFT_ERR_MALFORMED);
      drain(r, &out);
      assert_int_equal(input_exact(r, T0, data, sizeof(data)), 0);
    } else {
      int rc;
      assert_int_equal(input_exact(r, T0, data, sizeof(data)), 0);
      drain(r, &out);
      rc = input_exact(r, T0, par, sizeof(par));
      assert_true(rc == 0 || rc == SFT_ERR_MALFORMED);
    }
    drain(r, &out);
    sft_pfec_tick(r, T0 + SEC);
    drain(r, &out);
    assert_int_equal(out.n, 1);
    assert_int_equal(out.v[0].len, 100);
    assert_memory_equal(out.v[0].b, data + HDR, 100);
    assert_int_equal(stats(r).recovered, 0);
    blobs_free(&out);
    sft_pfec_del(r);
  }
}

/* A hand-made DATA (or PARITY: index and k from |idx| and |kk|) of block
 * |blk| with a 30-byte body from |seed|, input as an exact-size copy. */
static int input_forged(struct sft_pfec *r, uint64_t now, uint8_t type,
                        uint32_t blk, uint8_t idx, uint8_t kk, uint32_t seed,
                        uint8_t *body_out) {
  uint8_t d[HDR + 30];
  d[0] = type;
  put24(d + 1, blk & 0xffffff);
  d[4] = idx;
  d[5] = kk;
  pkt_fill(d + HDR, 30, seed);
  if (body_out)
    memcpy(body_out, d + HDR, 30);
  return input_exact(r, now, d, sizeof(d));
}

/* A forged DATA or PARITY of a block more than 4096 blocks ahead of or
 * behind the open one (up to half the number space away, either way) is
 * refused: SFT_ERR_MALFORMED, stats.dropped, nothing out, and the block in
 * progress is unharmed. 4096 away is within reach: ahead, it is followed
 * (the open block retires); behind, a DATA is passed on late and a PARITY
 * counted. */
static void test_far_block(void **state) {
  static const int32_t far[] = {0x400000, 0x7fffff, -0x800000, -0x400000,
                                4097,     -4097,    100000,    -100000};
  char why[1024];
  size_t wl = 0;
  (void)state;
  why[0] = 0;
  for (size_t f = 0; f < sizeof(far) / sizeof(far[0]); f++) {
    struct b2b t;
    struct plan pl;
    uint32_t b0, fb;
    size_t idx[64], n;
    int rc_d, rc_p, ok;
    struct sft_pfec_stats st0, st1;
    uint64_t rec, failed;
    b2b_init(&t, 20, 1);
    analyse(&t.tr, &pl);
    b0 = pl.b[0].id;
    fb = (uint32_t)((int64_t)b0 + far[f]) & 0xffffff;
    /* DATA 3 lost: 4 waits behind the gap */
    t.tr.v[pl.b[0].first_data + 3].tag = 1;
    n = data_idx(&pl.b[0], 0, 5, 3, idx);
    put_some(&t, t.now, idx, n);
    assert_int_equal(t.out.n, 3);
    st0 = stats(t.r);
    rc_d = input_forged(t.r, t.now, SFT_PFEC_T_DATA, fb, 0, 10, 777, NULL);
    drain(t.r, &t.out);
    rc_p = input_forged(t.r, t.now, SFT_PFEC_T_PARITY, fb, 10, 10, 778, NULL);
    drain(t.r, &t.out);
    st1 = stats(t.r);
    ok = rc_d == SFT_ERR_MALFORMED && rc_p == SFT_ERR_MALFORMED &&
         st1.dropped == st0.dropped + 2 && t.out.n == 3 &&
         st1.data_recv == st0.data_recv && st1.parity_recv == st0.parity_recv &&
         st1.late == st0.late && st1.blocks_failed == 0;
    if (!ok && wl < sizeof(why) - 160)
      wl += (size_t)snprintf(
          why + wl, sizeof(why) - wl,
          "\n  block %+d: DATA rc %d, PARITY rc %d, dropped +%llu, late "
          "+%llu, failed %llu, %zu out (want 3)",
          (int)far[f], rc_d, rc_p,
          (unsigned long long)(st1.dropped - st0.dropped),
          (unsigned long long)(st1.late - st0.late),
          (unsigned long long)st1.blocks_failed, t.out.n);
    /* the rest: block 0 repaired, block 1 whole */
    n = 0;
    for (size_t i = pl.b[0].first_data + 5; i < t.tr.n; i++)
      if (!t.tr.v[i].tag)
        idx[n++] = i;
    put_some(&t, t.now + MS, idx, n);
    settle(t.r, &t.now, &t.out);
    expect_out(&t.tr, &t.sent, &t.exp, &rec, &failed);
    assert_same(&t.out, &t.exp);
    assert_int_equal(stats(t.r).recovered, 1);
    assert_int_equal(stats(t.r).blocks_failed, 0);
    b2b_free(&t);
    plan_free(&pl);
  }
  if (wl)
    fail_msg("far-away blocks mishandled:%s", why);

  /* exactly 4096 behind: within reach, a DATA passed on late, a PARITY
   * counted */
  {
    struct sft_pfec *r = mk(NULL);
    struct blobs out = {0};
    uint8_t body[30];
    assert_int_equal(input_forged(r, T0, SFT_PFEC_T_DATA, 5000, 0, 10, 1, body),
                     0);
    drain(r, &out);
    assert_int_equal(out.n, 1);
    assert_int_equal(
        input_forged(r, T0, SFT_PFEC_T_DATA, 5000 - 4096, 0, 10, 2, body), 0);
    drain(r, &out);
    assert_int_equal(out.n, 2);
    assert_memory_equal(out.v[1].b, body, 30);
    assert_int_equal(stats(r).late, 1);
    assert_int_equal(
        input_forged(r, T0, SFT_PFEC_T_PARITY, 5000 - 4096, 10, 10, 3, NULL),
        0);
    drain(r, &out);
    assert_int_equal(out.n, 2);
    assert_int_equal(stats(r).parity_recv, 1);
    assert_int_equal(stats(r).dropped, 0);
    blobs_free(&out);
    sft_pfec_del(r);
  }
  /* exactly 4096 ahead: followed; the open block's survivors come out */
  {
    struct sft_pfec *r = mk(NULL);
    struct blobs out = {0};
    uint8_t b0[30], b2[30], b9[30];
    assert_int_equal(input_forged(r, T0, SFT_PFEC_T_DATA, 7, 0, 10, 1, b0), 0);
    drain(r, &out);
    assert_int_equal(input_forged(r, T0, SFT_PFEC_T_DATA, 7, 2, 10, 2, b2), 0);
    drain(r, &out);
    assert_int_equal(out.n, 1); /* 2 waits for 1 */
    assert_memory_equal(out.v[0].b, b0, 30);
    assert_int_equal(
        input_forged(r, T0, SFT_PFEC_T_DATA, 7 + 4096, 0, 10, 9, b9), 0);
    drain(r, &out);
    assert_int_equal(out.n, 3);
    assert_memory_equal(out.v[1].b, b2, 30);
    assert_memory_equal(out.v[2].b, b9, 30);
    assert_int_equal(stats(r).blocks_failed, 1);
    assert_int_equal(stats(r).dropped, 0);
    blobs_free(&out);
    sft_pfec_del(r);
  }
}

/* One forged DATA far ahead (65536 blocks) in the middle of a block: refused
 * and counted, and FEC keeps working for the genuine blocks (the header: a
 * forged datagram "can at worst waste parity or hold packets until a
 * deadline"). */
static void test_forged_far_ahead_does_not_wedge(void **state) {
  struct b2b t;
  struct plan pl;
  size_t idx[600], n;
  uint64_t rec, failed;
  int rc;
  (void)state;
  b2b_init(&t, 40, 1);
  analyse(&t.tr, &pl);
  assert_int_equal(pl.nb, 4);
  n = data_idx(&pl.b[0], 0, 5, -1, idx);
  put_some(&t, t.now, idx, n);
  assert_int_equal(t.out.n, 5);
  rc = input_forged(t.r, t.now, SFT_PFEC_T_DATA, pl.b[0].id + 0x10000, 0, 10,
                    778, NULL);
  assert_int_equal(rc, SFT_ERR_MALFORMED);
  drain(t.r, &t.out);
  assert_int_equal(t.out.n, 5);
  assert_int_equal(stats(t.r).dropped, 1);
  /* one DATA lost in each real block */
  for (size_t b = 0; b < pl.nb; b++)
    t.tr.v[pl.b[b].first_data + 7].tag = 1;
  n = 0;
  for (size_t i = pl.b[0].first_data + 5; i < t.tr.n; i++)
    if (!t.tr.v[i].tag)
      idx[n++] = i;
  put_some(&t, t.now, idx, n);
  settle(t.r, &t.now, &t.out);
  expect_out(&t.tr, &t.sent, &t.exp, &rec, &failed);
  assert_int_equal(rec, 4);
  if (stats(t.r).recovered != rec)
    fail_msg("after a forged DATA 65536 blocks ahead: %llu of %llu lost "
             "packets rebuilt, %llu blocks failed, %llu late",
             (unsigned long long)stats(t.r).recovered, (unsigned long long)rec,
             (unsigned long long)stats(t.r).blocks_failed,
             (unsigned long long)stats(t.r).late);
  assert_same(&t.out, &t.exp);
  assert_int_equal(stats(t.r).blocks_failed, 0);
  assert_int_equal(stats(t.r).late, 0);
  assert_int_equal(stats(t.r).dropped, 1);
  plan_free(&pl);
  b2b_free(&t);
}

/* A forged PARITY (matched by address only) 3 to 4096 blocks ahead is
 * refused and moves nothing: with the old rule one such datagram at
 * +4096 retired the open block and left the next 4096 real blocks "late"
 * (passed on without repair; found in review). 64 in a row far ahead do
 * not resync either: only a DATA does. The real blocks then repair as
 * usual. */
static void test_forged_parity_ahead(void **state) {
  struct b2b t;
  struct plan pl;
  size_t idx[600], n;
  uint64_t rec, failed;
  (void)state;
  b2b_init(&t, 40, 1);
  analyse(&t.tr, &pl);
  n = data_idx(&pl.b[0], 0, 5, -1, idx);
  put_some(&t, t.now, idx, n);
  assert_int_equal(t.out.n, 5);
  uint32_t ahead[] = {3, 100, 4096, 5000};
  for (size_t i = 0; i < 4; i++) {
    int rc = input_forged(t.r, t.now, SFT_PFEC_T_PARITY, pl.b[0].id + ahead[i],
                          12, 10, 900 + (uint32_t)i, NULL);
    if (rc != SFT_ERR_MALFORMED)
      fail_msg("forged PARITY %u blocks ahead taken (rc %d)", ahead[i], rc);
    drain(t.r, &t.out);
  }
  for (unsigned j = 0; j < 70; j++) {
    assert_int_equal(input_forged(t.r, t.now, SFT_PFEC_T_PARITY,
                                  pl.b[0].id + 0x10000 + j, 12, 10, 1000 + j,
                                  NULL),
                     SFT_ERR_MALFORMED);
    drain(t.r, &t.out);
  }
  assert_int_equal(t.out.n, 5);
  assert_int_equal(stats(t.r).dropped, 74);
  for (size_t b = 0; b < pl.nb; b++)
    t.tr.v[pl.b[b].first_data + 7].tag = 1;
  n = 0;
  for (size_t i = pl.b[0].first_data + 5; i < t.tr.n; i++)
    if (!t.tr.v[i].tag)
      idx[n++] = i;
  put_some(&t, t.now, idx, n);
  settle(t.r, &t.now, &t.out);
  expect_out(&t.tr, &t.sent, &t.exp, &rec, &failed);
  assert_int_equal(stats(t.r).recovered, rec);
  assert_same(&t.out, &t.exp);
  assert_int_equal(stats(t.r).blocks_failed, 0);
  assert_int_equal(stats(t.r).late, 0);
  plan_free(&pl);
  b2b_free(&t);
}

/* Far-ahead datagrams are followed only when 64 come in a row: 63 (then a
 * genuine one) are all refused; when the sender really jumps 65536 blocks,
 * its first 63 datagrams are refused, the 64th is taken and everything
 * after it comes through as usual (as if the 63 were lost). */
static void test_far_ahead_resync(void **state) {
  struct b2b t;
  struct plan pl;
  const uint32_t jump = 0x10000;
  size_t nf = 0, first_jumped, nout;
  uint64_t dropped, rec, failed;
  struct sft_pfec_stats st;
  (void)state;
  b2b_init(&t, 100, 1);
  analyse(&t.tr, &pl);
  assert_int_equal(pl.nb, 10);
  /* blocks 0..2, with 63 forgeries far ahead after blocks 0 and 1 (the
   * first datagram ever sets the open block, so a genuine one comes first;
   * and none right before the jump, which would be part of the row) */
  for (size_t b = 0; b < 3; b++) {
    for (size_t i = pl.b[b].first_data; i < pl.b[b + 1].first_data; i++) {
      assert_int_equal(input_exact(t.r, t.now, t.tr.v[i].b, t.tr.v[i].len), 0);
      drain(t.r, &t.out);
    }
    t.now += MS;
    for (unsigned j = 0; j < 63 && b < 2; j++, nf++) {
      int rc = input_forged(t.r, t.now, SFT_PFEC_T_DATA,
                            pl.b[0].id + 0x200000 + (uint32_t)nf,
                            (uint8_t)(j % 10), 10, 5000 + (uint32_t)nf, NULL);
      if (rc != SFT_ERR_MALFORMED)
        fail_msg("forgery %zu (63 in a row at most) taken: rc %d", nf, rc);
      drain(t.r, &t.out);
    }
  }
  assert_int_equal(t.out.n, 30);
  assert_int_equal(stats(t.r).dropped, 126);
  assert_int_equal(stats(t.r).blocks_failed, 0);
  /* the sender jumps: blocks 3..9 are numbered 65536 higher */
  first_jumped = pl.b[3].first_data;
  assert_true(t.tr.n - first_jumped > 64 + 18);
  for (size_t i = first_jumped; i < t.tr.n; i++)
    put24(t.tr.v[i].b + 1, (get24(t.tr.v[i].b + 1) + jump) & 0xffffff);
  dropped = stats(t.r).dropped;
  nout = t.out.n;
  size_t refused = 0;
  bool resynced = false;
  for (size_t i = first_jumped; i < t.tr.n; i++) {
    int rc = input_exact(t.r, t.now, t.tr.v[i].b, t.tr.v[i].len);
    bool par = t.tr.v[i].b[0] == SFT_PFEC_T_PARITY;
    if (i - first_jumped < 63 || (!resynced && par)) {
      /* the first 63, and PARITY until a DATA has resynced: only a DATA
       * (routed by its packet's CID) may move the open block far */
      if (rc != SFT_ERR_MALFORMED)
        fail_msg("jumped datagram %zu taken before the resync",
                 i - first_jumped);
      t.tr.v[i].tag = 1; /* as good as lost */
      refused++;
    } else if (rc != 0) {
      fail_msg("jumped datagram %zu (after 63 refused) not taken: rc %d",
               i - first_jumped, rc);
    } else {
      resynced = true;
    }
    drain(t.r, &t.out);
    assert_true(i - first_jumped >= 63 || t.out.n == nout);
    t.now += MS / 10;
  }
  settle(t.r, &t.now, &t.out);
  expect_out(&t.tr, &t.sent, &t.exp, &rec, &failed);
  assert_same(&t.out, &t.exp);
  assert_true(t.out.n >= 30 + 20); /* at least the last two blocks */
  st = stats(t.r);
  assert_true(resynced);
  assert_int_equal(st.dropped, dropped + refused);
  assert_int_equal(st.recovered, rec);
  assert_int_equal(st.late, 0);
  /* the block the 64th falls in may fail; wholly skipped ones may count */
  assert_true(st.blocks_failed <= failed);
  plan_free(&pl);
  b2b_free(&t);
}

/* DATA whose index is not below its kplan, or whose kplan is 0 (or above
 * SFT_PFEC_MAX_K), is malformed: refused and counted, and it neither fills
 * a gap nor retires the open block. */
static void test_data_kplan(void **state) {
  struct b2b t;
  struct plan pl;
  const struct blk *b0;
  size_t idx[64], n;
  uint64_t rec, failed;
  static const uint8_t bad[][2] = {
      /* index, kplan */
      {0, 0}, {3, 0},    {3, 3},     {4, 3},
      {9, 9}, {200, 10}, {255, 255}, {0, SFT_PFEC_MAX_K + 1}};
  const size_t nb = sizeof(bad) / sizeof(bad[0]);
  (void)state;
  /* a fresh receiver: refused, nothing starts */
  {
    struct sft_pfec *r = mk(NULL);
    struct blobs out = {0};
    uint8_t body[30];
    for (size_t i = 0; i < nb; i++) {
      assert_int_equal(input_forged(r, T0, SFT_PFEC_T_DATA, 40, bad[i][0],
                                    bad[i][1], (uint32_t)i, NULL),
                       SFT_ERR_MALFORMED);
      drain(r, &out);
    }
    assert_int_equal(out.n, 0);
    assert_int_equal(stats(r).dropped, nb);
    assert_int_equal(stats(r).data_recv, 0);
    /* the limits themselves are fine: index kplan - 1, kplan 1 and MAX_K */
    assert_int_equal(input_forged(r, T0, SFT_PFEC_T_DATA, 40, 0, 1, 90, body),
                     0);
    drain(r, &out);
    assert_int_equal(out.n, 1);
    assert_memory_equal(out.v[0].b, body, 30);
    assert_int_equal(
        input_forged(r, T0, SFT_PFEC_T_DATA, 41, 0, SFT_PFEC_MAX_K, 91, body),
        0);
    drain(r, &out);
    assert_int_equal(input_forged(r, T0, SFT_PFEC_T_DATA, 41,
                                  SFT_PFEC_MAX_K - 1, SFT_PFEC_MAX_K, 92, body),
                     0);
    drain(r, &out);
    sft_pfec_tick(r, T0 + SEC);
    drain(r, &out);
    assert_int_equal(out.n, 3);
    assert_memory_equal(out.v[2].b, body, 30);
    assert_int_equal(stats(r).dropped, nb);
    blobs_free(&out);
    sft_pfec_del(r);
  }
  /* in a block with a gap at DATA 3: forgeries of this block (at the gap
   * too) and of the next one change nothing; PARITY repairs the gap */
  b2b_init(&t, 20, 1);
  analyse(&t.tr, &pl);
  b0 = &pl.b[0];
  t.tr.v[b0->first_data + 3].tag = 1;
  n = data_idx(b0, 0, 10, 3, idx);
  put_some(&t, t.now, idx, n);
  assert_int_equal(t.out.n, 3);
  for (size_t i = 0; i < nb; i++) {
    assert_int_equal(input_forged(t.r, t.now, SFT_PFEC_T_DATA, b0->id,
                                  bad[i][0], bad[i][1], 100 + (uint32_t)i,
                                  NULL),
                     SFT_ERR_MALFORMED);
    drain(t.r, &t.out);
    assert_int_equal(input_forged(t.r, t.now, SFT_PFEC_T_DATA, b0->id + 1,
                                  bad[i][0], bad[i][1], 200 + (uint32_t)i,
                                  NULL),
                     SFT_ERR_MALFORMED);
    drain(t.r, &t.out);
  }
  assert_int_equal(t.out.n, 3);
  assert_int_equal(stats(t.r).blocks_failed, 0);
  assert_int_equal(stats(t.r).dropped, 2 * nb);
  n = 0;
  for (size_t i = b0->first_parity; i < t.tr.n; i++)
    idx[n++] = i;
  put_some(&t, t.now + MS, idx, n);
  settle(t.r, &t.now, &t.out);
  expect_out(&t.tr, &t.sent, &t.exp, &rec, &failed);
  assert_same(&t.out, &t.exp);
  assert_int_equal(t.out.n, 20);
  assert_int_equal(stats(t.r).recovered, 1);
  assert_int_equal(stats(t.r).blocks_failed, 0);
  assert_int_equal(stats(t.r).late, 0);
  assert_int_equal(stats(t.r).dropped, 2 * nb);
  plan_free(&pl);
  b2b_free(&t);
}

/* REPORT counts what arrived in the blocks it covers. */
static void test_report_counts(void **state) {
  struct b2b t;
  struct plan pl;
  uint8_t b[64];
  size_t n;
  uint32_t rb;
  uint64_t want = 0;
  const unsigned d1[] = {4};
  (void)state;
  b2b_init(&t, 30, 1);
  analyse(&t.tr, &pl);
  assert_int_equal(pl.nb, 3);
  drop_in(&t, &pl, 1, d1, 1, 0);
  drop_in(&t, &pl, 2, NULL, 0, 2);
  plan_free(&pl);
  analyse(&t.tr, &pl);
  deliver(t.r, &t.tr, NULL, &t.now, MS, &t.out);
  settle(t.r, &t.now, &t.out);
  assert_same(&t.out, &t.sent);
  n = ctl(t.r, t.now, b);
  assert_int_equal(n, SFT_PFEC_REPORT_LEN);
  assert_int_equal(b[0], SFT_PFEC_T_REPORT);
  rb = get24(b + 1);
  assert_int_equal(rb, pl.b[2].id); /* everything retired by now */
  for (size_t i = 0; i < pl.nb; i++)
    want += pl.b[i].recv;
  assert_int_equal(get32(b + 4), (uint32_t)want);
  assert_int_equal(get32(b + 8), 0);
  assert_int_equal(stats(t.r).data_recv + stats(t.r).parity_recv, want);
  /* nothing new: no second REPORT */
  {
    uint8_t b2[64];
    assert_int_equal(ctl(t.r, t.now + 1, b2), 0);
  }
  assert_int_equal(input_exact(t.s, t.now, b, n), 0);
  assert_int_equal(stats(t.s).peer_failed, 0);
  plan_free(&pl);
  b2b_free(&t);
}

/* REPORT.received is the number of DATA and PARITY delivered in the blocks
 * up to the one it names, counting the PARITY that arrives after its block
 * was complete (on a clean link, all but the first of each block) or after
 * the next block began (every third block here: the next block's DATA 0
 * overtakes the last two PARITY). Checked at every REPORT; fed to the
 * sender, they take its loss estimate from on_loss to about 0. */
static void test_report_counts_late_parity(void **state) {
  struct b2b t;
  struct plan pl;
  size_t *order, no = 0, delivered = 0, ndata = 0;
  uint32_t *per_blk;
  unsigned reports = 0;
  uint8_t c[64];
  double loss0;
  struct sft_pfec_stats st;
  (void)state;
  b2b_init(&t, 600, 1);
  analyse(&t.tr, &pl);
  assert_int_equal(pl.nb, 60);
  loss0 = stats(t.s).loss;
  assert_true(loss0 > 0.1); /* on_loss until the first sample */
  order = calloc(t.tr.n, sizeof(*order));
  per_blk = calloc(pl.nb, sizeof(*per_blk));
  assert_non_null(order);
  assert_non_null(per_blk);
  for (size_t b = 0; b < pl.nb; b++) {
    const struct blk *x = &pl.b[b];
    int early = b > 0 && (b - 1) % 3 == 0; /* its DATA 0 already went */
    assert_true(x->m >= 3);
    for (unsigned i = early ? 1 : 0; i < x->k; i++)
      order[no++] = x->first_data + i;
    for (unsigned j = 0; j < x->m; j++) {
      if (b % 3 == 0 && b + 1 < pl.nb && j == x->m - 2)
        order[no++] = pl.b[b + 1].first_data;
      order[no++] = x->first_parity + j;
    }
  }
  assert_int_equal(no, t.tr.n);
  for (size_t o = 0; o < no; o++) {
    const struct blob *d = &t.tr.v[order[o]];
    size_t n;
    assert_int_equal(input_exact(t.r, t.now, d->b, d->len), 0);
    drain(t.r, &t.out);
    per_blk[pl.bi[order[o]]]++;
    delivered++;
    ndata += d->b[0] == SFT_PFEC_T_DATA;
    t.now += MS;
    sft_pfec_tick(t.r, t.now);
    drain(t.r, &t.out);
    n = ctl(t.r, t.now, c);
    if (n) {
      uint32_t rb = get24(c + 1), want = 0;
      size_t b;
      assert_int_equal(n, SFT_PFEC_REPORT_LEN);
      assert_int_equal(c[0], SFT_PFEC_T_REPORT);
      for (b = 0; b < pl.nb && pl.b[b].id != rb; b++)
        ;
      if (b == pl.nb)
        fail_msg("REPORT names block %u, not one sent", rb);
      for (size_t i = 0; i <= b; i++)
        want += per_blk[i];
      if (get32(c + 4) != want)
        fail_msg("REPORT %u (block %u, after %zu datagrams): received %u, "
                 "%u were delivered in blocks up to it",
                 reports, rb, delivered, get32(c + 4), want);
      assert_int_equal(get32(c + 8), 0);
      assert_int_equal(input_exact(t.s, t.now, c, n), 0);
      reports++;
    }
  }
  settle(t.r, &t.now, &t.out);
  assert_same(&t.out, &t.sent);
  /* the last REPORT covers everything */
  if (ctl(t.r, t.now, c)) {
    assert_int_equal(get24(c + 1), pl.b[pl.nb - 1].id);
    assert_int_equal(get32(c + 4), (uint32_t)delivered);
    assert_int_equal(input_exact(t.s, t.now, c, SFT_PFEC_REPORT_LEN), 0);
  }
  assert_true(reports >= 20);
  st = stats(t.r);
  assert_int_equal(st.data_recv, ndata);
  assert_int_equal(st.parity_recv, delivered - ndata);
  assert_int_equal(st.late, 0);
  assert_int_equal(st.dropped, 0);
  assert_int_equal(st.blocks_failed, 0);
  st = stats(t.s);
  if (!(st.loss < 0.01))
    fail_msg("clean link: sender's loss estimate %.4f after %u REPORTs "
             "(from %.3f)",
             st.loss, reports, loss0);
  assert_true(st.active); /* force 1 */
  assert_int_equal(st.peer_failed, 0);
  free(order);
  free(per_blk);
  plan_free(&pl);
  b2b_free(&t);
}

/* ---- policy: a simulated connection ----------------------------------------
 */

/* One packet a millisecond (100 in a default 100 ms window); the QUIC
 * counters show |obs_loss| and the RTTs |srtt| and |min_rtt| (both RTT by
 * default: the queue short), the link drops |path_loss| of the DATA and
 * PARITY; control datagrams pass both ways while |link| is set (R's
 * REPORTs always pass). R is a policy-default object that never observes,
 * so the only PROBEs it sends are its early ones (counted in |r_probes|). */
struct sim {
  struct sft_pfec *s, *r;
  uint64_t now, qsent, qlost;
  uint64_t srtt, min_rtt;
  double obs_loss, path_loss, acc;
  uint64_t rng;
  int link; /* S's control datagrams reach R, R's PROBEs reach S */
  int was_active, ever_active;
  uint64_t on_at, off_at; /* first turn-on, first turn-off after it */
  unsigned probes, r_probes;
  uint64_t first_probe, last_probe, min_probe_gap;
  unsigned reports;
  int exact_reports; /* clean link: REPORT.received is all that arrived */
  double off_loss;
  uint64_t low_at; /* first time on with the estimate below off_loss */
  struct blobs sent, tr, out;
};

static void sim_init(struct sim *sm, const struct sft_pfec_opts *so,
                     uint64_t seed) {
  memset(sm, 0, sizeof(*sm));
  sm->s = mk(so);
  sm->r = mk(NULL);
  sm->now = T0;
  sm->rng = seed * 0x9E3779B97F4A7C15ULL + 1;
  sm->link = 1;
  sm->min_probe_gap = UINT64_MAX;
  sm->off_loss = so->off_loss ? so->off_loss : 0.08;
  sm->srtt = sm->min_rtt = RTT;
  sft_pfec_observe(sm->s, sm->now, 0, 0, sm->srtt, sm->min_rtt);
}

static void sim_free(struct sim *sm) {
  sft_pfec_del(sm->s);
  sft_pfec_del(sm->r);
  blobs_free(&sm->sent);
  blobs_free(&sm->tr);
  blobs_free(&sm->out);
}

/* Sends trace entries from |from| on over the link. */
static void sim_link(struct sim *sm, size_t from) {
  for (size_t i = from; i < sm->tr.n; i++) {
    sm->tr.v[i].tag = sm->path_loss > 0 && rng_unit(&sm->rng) < sm->path_loss;
    if (!sm->tr.v[i].tag) {
      assert_int_equal(
          input_exact(sm->r, sm->now, sm->tr.v[i].b, sm->tr.v[i].len), 0);
      drain(sm->r, &sm->out);
    }
  }
}

/* A REPORT never claims more than arrived in the blocks it covers. */
static void sim_check_report(struct sim *sm, const uint8_t *b) {
  uint32_t blk = get24(b + 1), recv = get32(b + 4), failed = get32(b + 8);
  uint64_t arrived = 0;
  if (blk == NO_BLOCK)
    return;
  for (size_t i = 0; i < sm->tr.n; i++) {
    uint32_t id = get24(sm->tr.v[i].b + 1);
    if (((blk - id) & 0xffffff) < 0x800000 && !sm->tr.v[i].tag)
      arrived++;
  }
  assert_true(recv <= arrived);
  assert_true(failed <= stats(sm->r).blocks_failed);
  if (sm->exact_reports && (recv != arrived || failed != 0))
    fail_msg("clean link: REPORT of block %u says %u received, %u failed; "
             "%llu arrived",
             blk, recv, failed, (unsigned long long)arrived);
}

static void sim_step(struct sim *sm) {
  uint8_t c[64];
  size_t n, from = sm->tr.n;
  int act;
  sm->now += MS;
  sm->qsent++;
  sm->acc += sm->obs_loss;
  if (sm->acc >= 1.0 - 1e-9) {
    sm->qlost++;
    sm->acc -= 1.0;
  }
  sft_pfec_observe(sm->s, sm->now, sm->qsent, sm->qlost, sm->srtt, sm->min_rtt);
  n = ctl(sm->s, sm->now, c);
  if (n) {
    if (c[0] == SFT_PFEC_T_PROBE) {
      assert_int_equal(n, 1);
      assert_false(stats(sm->s).peer_ok); /* no PROBE once answered */
      if (sm->probes && sm->now - sm->last_probe < sm->min_probe_gap)
        sm->min_probe_gap = sm->now - sm->last_probe;
      if (!sm->probes)
        sm->first_probe = sm->now;
      sm->probes++;
      sm->last_probe = sm->now;
    }
    if (sm->link)
      assert_int_equal(input_exact(sm->r, sm->now, c, n), 0);
  }
  if (sft_pfec_active(sm->s)) {
    uint8_t p[400];
    uint32_t id = (uint32_t)sm->sent.n;
    size_t len = 20 + (id * 37) % 300;
    pkt_fill(p, len, id);
    blobs_push(&sm->sent, p, len, 0);
    wrap_one(sm->s, sm->now, p, len, &sm->tr);
  } else {
    /* off: QUIC packets go out plain; wrap refuses */
    uint8_t p[HDR + 20];
    memset(p, 0x55, sizeof(p));
    assert_int_equal(sft_pfec_wrap(sm->s, sm->now, p, 20), SFT_ERR_STATE);
  }
  parity_out(sm->s, sm->now, &sm->tr);
  sim_link(sm, from);
  sft_pfec_tick(sm->r, sm->now);
  drain(sm->r, &sm->out);
  n = ctl(sm->r, sm->now, c);
  if (n && c[0] == SFT_PFEC_T_PROBE) {
    assert_int_equal(n, 1);
    assert_false(stats(sm->r).peer_ok);
    sm->r_probes++;
    if (sm->link)
      assert_int_equal(input_exact(sm->s, sm->now, c, n), 0);
  } else if (n) {
    assert_int_equal(n, SFT_PFEC_REPORT_LEN);
    assert_int_equal(c[0], SFT_PFEC_T_REPORT);
    sim_check_report(sm, c);
    sm->reports++;
    assert_int_equal(input_exact(sm->s, sm->now, c, n), 0);
  }
  act = sft_pfec_active(sm->s);
  assert_int_equal(stats(sm->s).active, act);
  if (act && !sm->low_at && stats(sm->s).loss < sm->off_loss)
    sm->low_at = sm->now;
  if (act && !sm->was_active && !sm->on_at)
    sm->on_at = sm->now;
  if (!act && sm->was_active && sm->on_at && !sm->off_at)
    sm->off_at = sm->now;
  sm->ever_active |= act;
  sm->was_active = act;
}

static void sim_run(struct sim *sm, uint64_t ns) {
  uint64_t end = sm->now + ns;
  while (sm->now < end)
    sim_step(sm);
}

/* Closes the last block, gives up what is held, checks R's output. */
static void sim_finish(struct sim *sm, int exact_failed) {
  size_t from = sm->tr.n;
  struct blobs exp = {0};
  uint64_t rec, failed;
  struct sft_pfec_stats st;
  parity_out(sm->s, UINT64_MAX, &sm->tr);
  sim_link(sm, from);
  settle(sm->r, &sm->now, &sm->out);
  expect_out(&sm->tr, &sm->sent, &exp, &rec, &failed);
  assert_same(&sm->out, &exp);
  {
    /* every closed block got at least one PARITY, carrying its k */
    struct plan pl;
    analyse(&sm->tr, &pl);
    for (size_t b = 0; b < pl.nb; b++) {
      if (pl.b[b].m < 1)
        fail_msg("block %u (k %u) closed without PARITY", pl.b[b].id,
                 pl.b[b].k);
      assert_int_equal(pl.b[b].kfield, pl.b[b].k);
    }
    plan_free(&pl);
  }
  st = stats(sm->r);
  assert_int_equal(st.recovered, rec);
  if (exact_failed)
    assert_int_equal(st.blocks_failed, failed);
  else
    assert_true(st.blocks_failed >= failed);
  assert_int_equal(st.dropped, 0);
  blobs_free(&exp);
}

static struct sft_pfec_opts opts_policy(void) {
  struct sft_pfec_opts o;
  memset(&o, 0, sizeof(o));
  o.max_k = 20;
  return o;
}

/* The loss the first blocks' parity is sized for (until a REPORT sample),
 * for windows of mean loss |mean| that turned the shim on: 1.5 x the mean,
 * at least on_loss, at most 0.5 (pfec.c first_loss()). */
static double first_loss_of(double mean, double on_loss) {
  double l = 1.5 * mean;
  if (l < on_loss)
    l = on_loss;
  return l > 0.5 ? 0.5 : l;
}

/* Loss in the QUIC counters with the queue short (srtt = min RTT): not on
 * after one 100 ms window, on at the end of the second (the peer answered
 * the first PROBE at once). The first block's parity is for 1.5 x the two
 * windows' mean loss (0.45 at 30 %, 0.24 at 16 %, clamped to 0.5 at 40 %)
 * plus the default margin (0.01), at the default failure target (0.02);
 * then it stays on. */
static void test_policy_turns_on(void **state) {
  static const double loss[] = {0.3, 0.16, 0.4};
  (void)state;
  for (size_t i = 0; i < sizeof(loss) / sizeof(loss[0]); i++) {
    struct sft_pfec_opts o = opts_policy();
    struct sim sm;
    struct sft_pfec_stats st;
    double l1, l2, want;
    uint64_t lost1;
    sim_init(&sm, &o, 1);
    sm.obs_loss = loss[i];
    /* one window is not enough */
    sim_run(&sm, WIN);
    assert_int_equal(sm.qsent, 100);
    lost1 = sm.qlost;
    l1 = (double)lost1 / 100;
    assert_true(l1 >= ON_LOSS);
    assert_false(sm.ever_active);
    assert_true(stats(sm.s).peer_ok);
    sim_run(&sm, WIN - MS);
    assert_false(sm.ever_active);
    sim_step(&sm);
    if (sm.on_at != T0 + 2 * WIN)
      fail_msg("loss %.2f: on at +%.0f ms, want at the end of the second "
               "window (+200 ms)",
               loss[i], sm.on_at ? (double)(sm.on_at - T0) / MS : -1.0);
    assert_true(sm.probes >= 1);
    l2 = (double)(sm.qlost - lost1) / 100;
    want = first_loss_of((l1 + l2) / 2, ON_LOSS);
    st = stats(sm.s);
    assert_true(st.peer_ok);
    if (fabs(st.loss - want) > 1e-9)
      fail_msg("loss %.2f: windows %.3f, %.3f: first loss %.6f, want 1.5 x "
               "their mean in [0.14, 0.5] = %.6f",
               loss[i], l1, l2, st.loss, want);
    sim_run(&sm, 12 * MS);
    {
      struct plan pl;
      unsigned m;
      double l = first_loss_of(loss[i], ON_LOSS);
      analyse(&sm.tr, &pl);
      assert_true(pl.nb >= 1 && pl.b[0].m > 0);
      assert_true(pl.b[0].m >=
                  sft_pfec_parity_for(pl.b[0].k, l - 0.03 + 0.01, 0.02));
      assert_true(pl.b[0].m <=
                  sft_pfec_parity_for(pl.b[0].k, l + 0.03 + 0.01, 0.02));
      m = sft_pfec_parity_for(pl.b[0].k, st.loss + 0.01, 0.02);
      if (pl.b[0].m != (m ? m : 1))
        fail_msg("loss %.2f: first block k %u has m %u, want %u (estimate "
                 "%.4f + margin 0.01, fail_target 0.02)",
                 loss[i], pl.b[0].k, pl.b[0].m, m ? m : 1, st.loss);
      plan_free(&pl);
    }
    sim_run(&sm, 300 * MS);
    assert_true(sft_pfec_active(sm.s));
    sim_finish(&sm, 1);
    sim_free(&sm);
  }
}

/* The policy wants the shim but the peer never answers (control
 * datagrams lost both ways): the 5 early PROBEs from the first call, then
 * PROBEs every probe_ns while the policy wants the shim, never on; once
 * the peer answers, on. With srtt at 2 x the minimum it takes 6 windows
 * of 100 ms at 30 % (on_windows_any), so there is a gap between the early
 * PROBEs and the wanted ones; with the queue short, 2 windows, and the
 * wanted PROBEs follow the early ones without a gap. */
static void test_policy_waits_for_peer(void **state) {
  struct sft_pfec_opts o = opts_policy();
  struct sim sm;
  (void)state;
  sim_init(&sm, &o, 2);
  sm.link = 0;
  sm.obs_loss = 0.3;
  sm.srtt = 2 * sm.min_rtt;
  sim_run(&sm, 590 * MS);
  assert_int_equal(sm.probes, 5);
  assert_int_equal(sm.first_probe, T0 + MS); /* the first call */
  assert_int_equal(sm.last_probe, T0 + 401 * MS);
  assert_int_equal(sm.min_probe_gap, 100 * MS);
  assert_int_equal(sm.r_probes, 5); /* R's own early ones, lost too */
  /* not wanted yet, early PROBEs used up: no probe time in the deadline */
  assert_true(sft_pfec_deadline(sm.s) == UINT64_MAX);
  while (sm.probes == 5 && sm.now < T0 + 2 * SEC)
    sim_step(&sm);
  assert_int_equal(sm.now, T0 + 6 * WIN); /* wanted from here on */
  assert_true(sft_pfec_deadline(sm.s) == sm.now + 100 * MS);
  sim_run(&sm, 900 * MS);
  assert_int_equal(sm.now, T0 + 1500 * MS);
  assert_false(sm.ever_active);
  assert_false(stats(sm.s).peer_ok);
  assert_int_equal(sm.probes, 5 + 10); /* 600, 700, ..., 1500 ms */
  assert_int_equal(sm.min_probe_gap, 100 * MS);
  assert_int_equal(sm.r_probes, 5);
  assert_true(sft_pfec_deadline(sm.s) == sm.last_probe + 100 * MS);
  sm.link = 1;
  sim_run(&sm, 250 * MS);
  assert_true(sft_pfec_active(sm.s));
  assert_int_equal(sm.on_at, T0 + 1600 * MS);
  assert_int_equal(sm.probes, 5 + 11); /* the one at 1600 ms was answered */
  sim_finish(&sm, 1);
  sim_free(&sm);

  /* the queue short: wanted at 200 ms, PROBEs every 100 ms throughout */
  sim_init(&sm, &o, 2);
  sm.link = 0;
  sm.obs_loss = 0.3;
  sim_run(&sm, 590 * MS);
  assert_int_equal(sm.probes, 6); /* 1, 101, ..., 501 ms */
  assert_int_equal(sm.first_probe, T0 + MS);
  assert_int_equal(sm.last_probe, T0 + 501 * MS);
  assert_int_equal(sm.min_probe_gap, 100 * MS);
  assert_true(sft_pfec_deadline(sm.s) == sm.last_probe + 100 * MS);
  sim_run(&sm, 910 * MS);
  assert_int_equal(sm.probes, 15); /* ..., 1401 ms */
  assert_int_equal(sm.min_probe_gap, 100 * MS);
  assert_false(sm.ever_active);
  assert_false(stats(sm.s).peer_ok);
  sm.link = 1;
  sim_run(&sm, 250 * MS);
  assert_true(sft_pfec_active(sm.s));
  assert_int_equal(sm.on_at, T0 + 1501 * MS); /* that PROBE answered */
  assert_int_equal(sm.probes, 16);
  sim_finish(&sm, 1);
  sim_free(&sm);
}

/* Loss below on_loss never turns the shim on. Unanswered, S sends its 5
 * early PROBEs and no more (the policy does not want the shim); answered
 * by hand afterwards, it still sends none and stays off. With the peer
 * there from the start, the first PROBE is answered at once and is the
 * only one; answered after the second, the third is the last. */
static void test_policy_low_loss_never(void **state) {
  static const double loss[] = {0.0, 0.05, 0.13}; /* 0.13: 13 of 100 */
  (void)state;
  for (size_t i = 0; i < 3; i++) {
    struct sft_pfec_opts o = opts_policy();
    struct sim sm;
    sim_init(&sm, &o, 3);
    sm.link = 0;
    sm.obs_loss = loss[i];
    sim_run(&sm, 1500 * MS);
    assert_int_equal(sm.probes, 5); /* early ones only */
    assert_int_equal(sm.first_probe, T0 + MS);
    assert_int_equal(sm.last_probe, T0 + 401 * MS);
    assert_int_equal(sm.min_probe_gap, 100 * MS);
    assert_false(stats(sm.s).peer_ok);
    assert_true(sft_pfec_deadline(sm.s) == UINT64_MAX);
    sm.link = 1;
    answer(sm.s, sm.r, sm.now);
    sim_run(&sm, 1500 * MS);
    assert_int_equal(sm.probes, 5);
    if (sm.ever_active)
      fail_msg("loss %.2f turned the shim on", loss[i]);
    assert_true(stats(sm.s).loss < ON_LOSS);
    sim_free(&sm);

    /* the peer answers the first PROBE */
    sim_init(&sm, &o, 3);
    sm.obs_loss = loss[i];
    sim_run(&sm, 1500 * MS);
    assert_int_equal(sm.probes, 1);
    assert_int_equal(sm.r_probes, 0); /* R heard S first */
    assert_true(stats(sm.s).peer_ok);
    assert_true(stats(sm.r).peer_ok);
    if (sm.ever_active)
      fail_msg("loss %.2f turned the shim on (peer there)", loss[i]);
    sim_free(&sm);

    /* the peer answers the third */
    sim_init(&sm, &o, 3);
    sm.link = 0;
    sm.obs_loss = loss[i];
    sim_run(&sm, 150 * MS);
    assert_int_equal(sm.probes, 2);
    sm.link = 1;
    sim_run(&sm, 1350 * MS);
    assert_int_equal(sm.probes, 3);
    assert_int_equal(sm.last_probe, T0 + 201 * MS);
    assert_true(stats(sm.s).peer_ok);
    assert_false(sm.ever_active);
    sim_free(&sm);
  }
}

/* Hot windows that never make a run long enough must not turn it on:
 * one window of 100 % loss then clean, every other window at 100 %, with
 * the queue short (2 needed); five windows in a row at 100 % twice with
 * srtt at 2 x the minimum (6 needed); runs of five at 100 % whose srtt
 * alternates short and long (never 2 short ones in a row). */
static void test_policy_burst_never(void **state) {
  (void)state;
  for (int variant = 0; variant < 4; variant++) {
    struct sft_pfec_opts o = opts_policy();
    struct sim sm;
    sim_init(&sm, &o, 4);
    answer(sm.s, sm.r, sm.now);
    for (unsigned ms = 0; ms < 3000; ms++) {
      unsigned w = ms / 100; /* the window this packet counts in */
      int bad;
      sm.srtt = sm.min_rtt;
      if (variant == 0) {
        bad = w == 0; /* one burst */
      } else if (variant == 1) {
        bad = w % 2 == 0; /* every other window */
      } else if (variant == 2) {
        bad = w < 5 || (w >= 10 && w < 15); /* five, twice */
        sm.srtt = 2 * sm.min_rtt;
      } else {
        bad = w % 6 != 5; /* five, one clean, five, ... */
        if (w % 2)
          sm.srtt = 2 * sm.min_rtt;
      }
      sm.obs_loss = bad ? 1.0 : 0.0;
      sim_step(&sm);
    }
    if (sm.ever_active)
      fail_msg("burst variant %d turned the shim on", variant);
    sim_free(&sm);
  }
}

/* force -1 never probes, wanted by the loss or not, answered or not, and
 * never turns on; its deadline holds no probe time. */
static void test_policy_force_never(void **state) {
  struct sft_pfec_opts o = opts_policy();
  struct sim sm;
  (void)state;
  o.force = -1;
  sim_init(&sm, &o, 5);
  sm.link = 0;
  sm.obs_loss = 0.5;
  assert_true(sft_pfec_deadline(sm.s) == UINT64_MAX);
  sim_run(&sm, 1000 * MS);
  assert_int_equal(sm.probes, 0);
  assert_int_equal(sm.r_probes, 5);
  assert_true(sft_pfec_deadline(sm.s) == UINT64_MAX);
  sm.link = 1;
  sim_run(&sm, 500 * MS);
  assert_int_equal(sm.probes, 0);
  answer(sm.s, sm.r, sm.now);
  sim_run(&sm, 1500 * MS);
  assert_int_equal(sm.probes, 0);
  assert_false(sm.ever_active);
  assert_true(sft_pfec_deadline(sm.s) == UINT64_MAX);
  sim_free(&sm);

  /* the peer there from the start: its PROBE answered, none sent */
  sim_init(&sm, &o, 5);
  sm.obs_loss = 0.5;
  sim_run(&sm, 1500 * MS);
  assert_int_equal(sm.probes, 0);
  assert_int_equal(sm.r_probes, 1);
  assert_true(stats(sm.s).peer_ok);
  assert_true(stats(sm.r).peer_ok);
  assert_false(sm.ever_active);
  sim_free(&sm);
}

/* On by policy; then the peer's REPORTs show no loss (while the QUIC
 * counters, ignored while on, still show 30 %): off after off_ns. */
static void test_turns_off_on_clean_reports(void **state) {
  struct sft_pfec_opts o = opts_policy();
  struct sim sm;
  (void)state;
  sim_init(&sm, &o, 6);
  sm.obs_loss = 0.3;
  while (!sm.on_at && sm.now < T0 + 2 * SEC)
    sim_step(&sm);
  assert_true(sm.on_at != 0);
  while (!sm.off_at && sm.now < sm.on_at + 4 * SEC)
    sim_step(&sm);
  if (!sm.off_at)
    fail_msg("still on %.0f ms after turning on (loss %.3f, %u reports)",
             (double)(sm.now - sm.on_at) / MS, stats(sm.s).loss, sm.reports);
  assert_true(sm.reports >= 10);
  assert_true(sm.off_at >= sm.on_at + 2 * SEC - MS);
  assert_true(sm.off_at <= sm.on_at + 3 * SEC);
  sm.obs_loss = 0.0;
  sim_finish(&sm, 0);
  sim_free(&sm);
}

/* On by policy (force 0) with off_ns 1 s, then a clean link: every
 * REPORT counts exactly what arrived (late PARITY included), so the
 * sender's estimate falls to about 0, and the shim turns off off_ns after
 * it fell below off_loss. */
static void test_clean_link_turns_off(void **state) {
  struct sft_pfec_opts o = opts_policy();
  struct sim sm;
  struct sft_pfec_stats st;
  (void)state;
  o.off_ns = 1000 * MS;
  sim_init(&sm, &o, 8);
  sm.exact_reports = 1;
  sm.obs_loss = 0.3;
  while (!sm.on_at && sm.now < T0 + 2 * SEC)
    sim_step(&sm);
  assert_true(sm.on_at != 0);
  assert_true(stats(sm.s).loss > 0.2);
  sm.obs_loss = 0.0; /* ignored while on; keeps it off afterwards */
  sim_run(&sm, 800 * MS);
  st = stats(sm.s);
  assert_true(sft_pfec_active(sm.s));
  if (!(st.loss < 0.01))
    fail_msg("clean link, 800 ms on: sender's loss estimate %.4f (%u "
             "reports)",
             st.loss, sm.reports);
  assert_true(sm.low_at != 0);
  assert_true(sm.low_at <= sm.on_at + 500 * MS);
  while (!sm.off_at && sm.now < sm.on_at + 4 * SEC)
    sim_step(&sm);
  if (!sm.off_at)
    fail_msg("still on %.0f ms after the estimate fell below off_loss "
             "(loss %.4f)",
             (double)(sm.now - sm.low_at) / MS, stats(sm.s).loss);
  if (sm.off_at < sm.low_at + 1000 * MS || sm.off_at > sm.low_at + 1200 * MS)
    fail_msg("off %.0f ms after the estimate fell below off_loss, off_ns "
             "1000 ms",
             (double)(sm.off_at - sm.low_at) / MS);
  assert_int_equal(stats(sm.s).peer_failed, 0);
  sim_run(&sm, 700 * MS); /* stays off: the QUIC counters show no loss */
  assert_false(sft_pfec_active(sm.s));
  /* The counters show 30 % again: the policy starts afresh and turns it
   * on after two hot windows (the first may be the one in progress). */
  {
    uint64_t t = sm.now;
    sm.obs_loss = 0.3;
    while (!sft_pfec_active(sm.s) && sm.now < t + SEC)
      sim_step(&sm);
    if (!sft_pfec_active(sm.s) || sm.now < t + WIN || sm.now > t + 3 * WIN)
      fail_msg("on again %.0f ms after the loss came back, want 100-300",
               (double)(sm.now - t) / MS);
    st = stats(sm.s);
    assert_true(st.loss >= ON_LOSS && st.loss <= 0.5);
    sim_run(&sm, 100 * MS);
    assert_true(sft_pfec_active(sm.s));
  }
  sim_finish(&sm, 1);
  assert_int_equal(stats(sm.r).blocks_failed, 0);
  sim_free(&sm);
}

/* On by policy; the link loses 30 % of the shim datagrams (the QUIC
 * counters show none, since FEC repairs it): stays on, and every
 * recoverable packet comes through in order. */
static void test_stays_on_under_loss(void **state) {
  struct sft_pfec_opts o = opts_policy();
  struct sim sm;
  struct sft_pfec_stats st;
  (void)state;
  sim_init(&sm, &o, 7);
  sm.obs_loss = 0.3;
  while (!sm.on_at && sm.now < T0 + 2 * SEC)
    sim_step(&sm);
  assert_true(sm.on_at != 0);
  sm.obs_loss = 0.0;
  sm.path_loss = 0.3;
  sim_run(&sm, 3 * SEC);
  assert_int_equal(sm.off_at, 0);
  assert_true(sft_pfec_active(sm.s));
  assert_true(sm.reports >= 10);
  st = stats(sm.s);
  if (!(st.loss > 0.2 && st.loss < 0.4))
    fail_msg("sender's loss estimate %.3f, link loses 0.30", st.loss);
  assert_true(st.peer_failed <= stats(sm.r).blocks_failed);
  assert_true(stats(sm.r).recovered > 500);
  sim_finish(&sm, 0);
  sim_free(&sm);
}

/* ---- policy: windows fed by hand ---------------------------------------- */

/* A sender |s| whose windows the test writes itself: |now| and the QUIC
 * counters |sent| and |lost| move by whole windows. Answered by |r| (so it
 * is on as soon as the policy wants the shim) unless told otherwise. */
struct pol {
  struct sft_pfec *s, *r;
  uint64_t now, sent, lost, win;
};

static void pol_init(struct pol *p, const struct sft_pfec_opts *o,
                     int answered) {
  memset(p, 0, sizeof(*p));
  p->s = mk(o);
  p->r = mk(NULL);
  p->now = T0;
  p->win = o && o->window_ns ? o->window_ns : WIN;
  if (answered)
    answer(p->s, p->r, p->now);
  assert_false(sft_pfec_active(p->s));
  sft_pfec_observe(p->s, p->now, 0, 0, RTT, RTT); /* opens the first */
}

/* One window: |n| packets sent, |nl| of them declared lost, srtt and min
 * RTT |srtt| and |min| (a call halfway through, with half the counts, and
 * one just before the window ends change nothing). On after it? */
static bool pol_win(struct pol *p, uint64_t n, uint64_t nl, uint64_t srtt,
                    uint64_t min) {
  bool was = sft_pfec_active(p->s);
  sft_pfec_observe(p->s, p->now + p->win / 2, p->sent + n / 2, p->lost + nl / 2,
                   srtt, min);
  sft_pfec_observe(p->s, p->now + p->win - 1, p->sent + n, p->lost + nl, srtt,
                   min);
  assert_int_equal(sft_pfec_active(p->s), was);
  p->now += p->win;
  p->sent += n;
  p->lost += nl;
  sft_pfec_observe(p->s, p->now, p->sent, p->lost, srtt, min);
  return sft_pfec_active(p->s);
}

/* |k| windows of 100 packets at |pc| % loss; on after the last? */
static bool pol_wins(struct pol *p, unsigned k, uint64_t pc, uint64_t srtt,
                     uint64_t min) {
  bool on = false;
  for (unsigned i = 0; i < k; i++) {
    on = pol_win(p, 100, pc, srtt, min);
    if (on && i + 1 < k)
      fail_msg("on after window %u of %u (%llu %% loss, srtt %.1f ms, min "
               "%.1f ms)",
               i + 1, k, (unsigned long long)pc, (double)srtt / MS,
               (double)min / MS);
  }
  return on;
}

static void pol_free(struct pol *p) {
  sft_pfec_del(p->s);
  sft_pfec_del(p->r);
}

/* The policy wants the shim before the peer has answered; the peer's own
 * PROBE is then the first shim datagram that arrives. It proves the peer
 * speaks the shim, so the sender must turn on at once (a first version
 * turned on only on a REPORT, and a connection whose peer's PROBE came
 * first never did). A cool window between the run that wanted it and the
 * answer does not lower the loss the first blocks are sized for. */
static void test_policy_on_by_peer_probe(void **state) {
  struct pol p;
  uint8_t b[64];
  size_t n = 0;
  (void)state;
  pol_init(&p, NULL, 0);
  assert_false(pol_win(&p, 100, 30, RTT, RTT));
  assert_false(pol_win(&p, 100, 30, RTT, RTT)); /* wanted, nobody answered */
  assert_false(pol_win(&p, 100, 0, RTT, RTT));  /* a cool window */
  assert_false(sft_pfec_active(p.s));
  /* the receiver's early PROBE reaches the sender */
  assert_int_equal(sft_pfec_control(p.r, p.now, b, sizeof(b), &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(b[0], SFT_PFEC_T_PROBE);
  assert_int_equal(sft_pfec_input(p.s, p.now, b, n), 0);
  assert_true(stats(p.s).peer_ok);
  assert_true(sft_pfec_active(p.s));
  /* 1.5 x the mean of the two 30 % windows, not on_loss */
  if (fabs(stats(p.s).loss - 0.45) > 1e-9)
    fail_msg("first loss %.3f, want 0.45", stats(p.s).loss);
  pol_free(&p);
}

/* (a) Two windows in a row at >= on_loss (0.14) with the queue short
 * (srtt <= clean_rtt 1.3 x min RTT) turn it on: at 30 % with srtt = min,
 * at exactly 14 %, at srtt exactly 1.3 x min; a window 100 ms long
 * (default window_ns): calls less than 100 ms after the window opened do
 * not close it. Not in a row, or at 13 %, or just above 1.3 x min: not. */
static void test_policy_clean_two_windows(void **state) {
  struct pol p;
  (void)state;
  pol_init(&p, NULL, 1);
  assert_false(pol_win(&p, 100, 30, RTT, RTT));
  assert_true(pol_win(&p, 100, 30, RTT, RTT));
  assert_true(stats(p.s).active);
  assert_true(fabs(stats(p.s).loss - 0.45) < 1e-9);
  pol_free(&p);

  /* exactly on_loss; a window of 13 % neither counts nor belongs to a run */
  pol_init(&p, NULL, 1);
  assert_false(pol_win(&p, 100, 13, RTT, RTT));
  assert_false(pol_win(&p, 100, 14, RTT, RTT));
  assert_false(pol_win(&p, 100, 13, RTT, RTT));
  assert_false(pol_win(&p, 100, 14, RTT, RTT));
  assert_true(pol_win(&p, 200, 28, RTT, RTT));
  pol_free(&p);

  /* hot, cool, hot: not in a row */
  pol_init(&p, NULL, 1);
  assert_false(pol_win(&p, 100, 50, RTT, RTT));
  assert_false(pol_win(&p, 100, 10, RTT, RTT));
  assert_false(pol_win(&p, 100, 50, RTT, RTT));
  assert_true(pol_win(&p, 100, 50, RTT, RTT));
  pol_free(&p);

  /* srtt exactly clean_rtt x min (130 ms over 100) is short; 131 is not */
  pol_init(&p, NULL, 1);
  assert_true(pol_wins(&p, 2, 30, 130 * MS, 100 * MS));
  pol_free(&p);
  pol_init(&p, NULL, 1);
  assert_false(pol_wins(&p, 5, 30, 131 * MS, 100 * MS));
  pol_free(&p);

  /* the window is 100 ms: calls at +99 ms do not close it */
  pol_init(&p, NULL, 1);
  sft_pfec_observe(p.s, T0 + 99 * MS, 100, 30, RTT, RTT);
  sft_pfec_observe(p.s, T0 + 198 * MS, 200, 60, RTT, RTT); /* one window */
  sft_pfec_observe(p.s, T0 + 297 * MS, 300, 90, RTT, RTT);
  assert_false(sft_pfec_active(p.s));
  sft_pfec_observe(p.s, T0 + 298 * MS, 300, 90, RTT, RTT); /* the second */
  assert_true(sft_pfec_active(p.s));
  pol_free(&p);

  /* the peer not there yet: wanted (PROBEs go on past the early ones),
   * on as soon as it answers */
  pol_init(&p, NULL, 0);
  assert_false(pol_wins(&p, 2, 30, RTT, RTT));
  assert_false(stats(p.s).peer_ok);
  {
    uint8_t b[64];
    unsigned n = 0;
    for (uint64_t t = p.now; t < p.now + SEC; t += MS)
      n += ctl(p.s, t, b) ? 1 : 0;
    assert_int_equal(n, 10); /* every probe_ns, none left unsent */
    assert_true(sft_pfec_deadline(p.s) != UINT64_MAX);
  }
  answer(p.s, p.r, p.now + SEC);
  assert_true(sft_pfec_active(p.s));
  assert_true(fabs(stats(p.s).loss - 0.45) < 1e-9);
  pol_free(&p);
}

/* (b) BBR's start-up overshoot as measured at 0 % loss on a 50 ms
 * drop-tail queue: four 100 ms windows in a row at 19, 12.5, 14 and 27 %
 * with srtt at 1.93, 1.94, 1.94 and 1.09 x the minimum, then clean. Never
 * on, whether the peer answered before or after. The same losses with
 * srtt = min in every window do turn it on (at the fourth: 0.14 and 0.27
 * in a row), so it is the RTT that keeps it off. */
static void test_policy_bbr_startup_never(void **state) {
  static const uint64_t lost[] = {190, 125, 140, 270}; /* of 1000 */
  static const double ratio[] = {1.93, 1.94, 1.94, 1.09};
  const uint64_t min = 50 * MS;
  (void)state;
  for (int answered = 1; answered >= 0; answered--) {
    struct pol p;
    pol_init(&p, NULL, answered);
    for (size_t i = 0; i < 4; i++)
      if (pol_win(&p, 1000, lost[i], (uint64_t)(ratio[i] * (double)min), min))
        fail_msg("overshoot window %zu (loss %.3f, srtt %.2f x min) turned "
                 "the shim on",
                 i + 1, lost[i] / 1000.0, ratio[i]);
    for (unsigned i = 0; i < 30; i++)
      assert_false(pol_win(&p, 1000, 0, min + min / 20, min));
    if (!answered) {
      answer(p.s, p.r, p.now);
      assert_false(sft_pfec_active(p.s));
      assert_false(pol_win(&p, 1000, 0, min, min));
    }
    /* answered and not wanted: nothing to send, nothing due */
    {
      uint8_t b[64];
      assert_true(sft_pfec_deadline(p.s) == UINT64_MAX);
      assert_int_equal(ctl(p.s, p.now + SEC, b), 0);
    }
    pol_free(&p);
  }
  {
    struct pol p;
    pol_init(&p, NULL, 1);
    assert_false(pol_win(&p, 1000, lost[0], min, min));
    assert_false(pol_win(&p, 1000, lost[1], min, min));
    assert_false(pol_win(&p, 1000, lost[2], min, min));
    assert_true(pol_win(&p, 1000, lost[3], min, min));
    pol_free(&p);
  }
}

/* (c) Whatever the RTT: six windows in a row at >= 14 % with srtt at
 * 2 x the minimum turn it on, five do not; the same with the RTT unknown
 * (0). A cool window breaks the run; two short-queue windows at the end of
 * a run are enough; short-queue windows that are never two in a row are
 * not, until the run is six long. */
static void test_policy_any_rtt_six_windows(void **state) {
  static const uint64_t rtts[][2] = {
      {2 * RTT, RTT}, {0, RTT}, {2 * RTT, 0}, {0, 0}, {10 * RTT, RTT}};
  struct pol p;
  (void)state;
  for (size_t v = 0; v < sizeof(rtts) / sizeof(rtts[0]); v++) {
    pol_init(&p, NULL, 1);
    if (pol_wins(&p, 5, 30, rtts[v][0], rtts[v][1]))
      fail_msg("srtt %llu min %llu: on after 5 windows",
               (unsigned long long)rtts[v][0], (unsigned long long)rtts[v][1]);
    if (!pol_win(&p, 100, 30, rtts[v][0], rtts[v][1]))
      fail_msg("srtt %llu min %llu: not on after 6 windows",
               (unsigned long long)rtts[v][0], (unsigned long long)rtts[v][1]);
    assert_true(fabs(stats(p.s).loss - 0.45) < 1e-9);
    pol_free(&p);
  }

  /* five, a cool one, five: not; the sixth of the second run: on */
  pol_init(&p, NULL, 1);
  assert_false(pol_wins(&p, 5, 30, 2 * RTT, RTT));
  assert_false(pol_win(&p, 100, 13, 2 * RTT, RTT));
  assert_false(pol_wins(&p, 5, 30, 2 * RTT, RTT));
  assert_true(pol_win(&p, 100, 30, 2 * RTT, RTT));
  pol_free(&p);

  /* long, long, long, short, short: on at the fifth */
  pol_init(&p, NULL, 1);
  assert_false(pol_wins(&p, 3, 30, 2 * RTT, RTT));
  assert_false(pol_win(&p, 100, 30, RTT, RTT));
  assert_true(pol_win(&p, 100, 30, RTT, RTT));
  pol_free(&p);

  /* short, long, short, long, short: not; a sixth (long): on */
  pol_init(&p, NULL, 1);
  for (unsigned i = 0; i < 5; i++)
    assert_false(pol_win(&p, 100, 30, i % 2 ? 2 * RTT : RTT, RTT));
  assert_true(pol_win(&p, 100, 30, 2 * RTT, RTT));
  pol_free(&p);
}

/* (d) A window with fewer than window_min (50) packets neither counts nor
 * breaks a run, whatever its loss (none, all); one of exactly 50 counts. */
static void test_policy_small_window(void **state) {
  struct pol p;
  (void)state;
  /* short queue: hot, small, hot: on */
  for (uint64_t nl = 0; nl <= 49; nl += 49) {
    pol_init(&p, NULL, 1);
    assert_false(pol_win(&p, 100, 30, RTT, RTT));
    assert_false(pol_win(&p, 49, nl, RTT, RTT));
    assert_false(pol_win(&p, 0, 0, RTT, RTT)); /* idle */
    assert_true(pol_win(&p, 100, 30, RTT, RTT));
    /* the mean of the two that counted */
    assert_true(fabs(stats(p.s).loss - 0.45) < 1e-9);
    pol_free(&p);
  }
  /* small windows all lost do not make a run */
  pol_init(&p, NULL, 1);
  for (unsigned i = 0; i < 10; i++)
    assert_false(pol_win(&p, 49, 49, RTT, RTT));
  assert_false(pol_win(&p, 100, 30, RTT, RTT));
  assert_false(pol_win(&p, 49, 49, RTT, RTT));
  assert_true(pol_win(&p, 50, 50, RTT, RTT)); /* 50 counts: 2 in a row */
  pol_free(&p);
  /* any RTT: five hot, small ones between, the sixth: on */
  for (uint64_t nl = 0; nl <= 49; nl += 49) {
    pol_init(&p, NULL, 1);
    assert_false(pol_wins(&p, 3, 30, 2 * RTT, RTT));
    assert_false(pol_win(&p, 49, nl, 2 * RTT, RTT));
    assert_false(pol_wins(&p, 2, 30, 2 * RTT, RTT));
    assert_false(pol_win(&p, 10, nl ? 10 : 0, 2 * RTT, RTT));
    assert_true(pol_win(&p, 100, 30, 2 * RTT, RTT));
    pol_free(&p);
  }
}

/* (e) The first blocks' parity, until a REPORT sample: for the loss
 * 1.5 x the mean of the windows that turned it on, at least on_loss, at
 * most 0.5, plus margin, at fail_target: m = parity_for(k, first_loss +
 * margin, fail_target), here for a block of 100 (max_k 128). */
static void test_policy_first_parity(void **state) {
  static const struct {
    uint64_t pc[6];
    unsigned n;
    uint64_t srtt;
    double margin, fail, want; /* 0: the defaults 0.01, 0.02 */
  } c[] = {
      {{30, 20}, 2, RTT, 0, 0, 0.375},
      {{40, 40}, 2, RTT, 0, 0, 0.5}, /* 0.6 clamped */
      {{14, 14}, 2, RTT, 0, 0, 0.21},
      {{14, 20, 30, 25, 15, 16}, 6, 2 * RTT, 0, 0, 0.3},
      {{90, 100}, 2, RTT, 0, 0, 0.5},
      {{30, 20}, 2, RTT, 0.05, 0.005, 0.375},
  };
  (void)state;
  /* the 1.5 tells itself from the plain mean at k = 100 */
  assert_true(sft_pfec_parity_for(100, 0.375 + 0.01, 0.02) !=
              sft_pfec_parity_for(100, 0.25 + 0.01, 0.02));
  for (size_t v = 0; v < sizeof(c) / sizeof(c[0]); v++) {
    struct sft_pfec_opts o;
    struct pol p;
    struct blobs sent = {0}, tr = {0};
    struct plan pl;
    double margin = c[v].margin ? c[v].margin : 0.01;
    double fail = c[v].fail ? c[v].fail : 0.02;
    unsigned m;
    memset(&o, 0, sizeof(o));
    o.margin = c[v].margin;
    o.fail_target = c[v].fail;
    pol_init(&p, &o, 1);
    for (unsigned i = 0; i < c[v].n; i++)
      assert_int_equal(pol_win(&p, 100, c[v].pc[i], c[v].srtt, RTT),
                       i + 1 == c[v].n);
    if (fabs(stats(p.s).loss - c[v].want) > 1e-9)
      fail_msg("case %zu: first loss %.6f, want %.6f", v, stats(p.s).loss,
               c[v].want);
    send_pkts(p.s, p.now, &sent, &tr, 100, 1);
    analyse(&tr, &pl);
    assert_int_equal(pl.nb, 1);
    assert_int_equal(pl.b[0].k, 100);
    m = sft_pfec_parity_for(100, c[v].want + margin, fail);
    assert_true(m >= 1);
    if (pl.b[0].m != m)
      fail_msg("case %zu: first block of 100 has %u PARITY, want "
               "parity_for(100, %.3f + %.3f, %.3f) = %u",
               v, pl.b[0].m, c[v].want, margin, fail, m);
    check_parity_rows(&tr, 0, 100, pl.b[0].m);
    plan_free(&pl);
    blobs_free(&sent);
    blobs_free(&tr);
    pol_free(&p);
  }
}

/* The policy knobs are honoured: on_loss 0.2, on_windows 3,
 * on_windows_any 4, clean_rtt 2 (1.9 x min is short, 2.1 is not),
 * window_ns 50 ms, window_min 10. */
static void test_policy_knobs(void **state) {
  struct sft_pfec_opts o;
  struct pol p;
  (void)state;
  memset(&o, 0, sizeof(o));
  o.on_loss = 0.2;
  o.on_windows = 3;
  o.on_windows_any = 4;
  o.clean_rtt = 2.0;
  o.window_ns = 50 * MS;
  o.window_min = 10;
  pol_init(&p, &o, 1);
  assert_true(pol_wins(&p, 3, 20, RTT * 19 / 10, RTT));
  assert_true(fabs(stats(p.s).loss - 0.3) < 1e-9);
  pol_free(&p);
  pol_init(&p, &o, 1);
  assert_true(pol_wins(&p, 4, 20, RTT * 21 / 10, RTT));
  pol_free(&p);
  pol_init(&p, &o, 1);
  assert_false(pol_wins(&p, 20, 19, RTT, RTT)); /* below on_loss */
  pol_free(&p);
  /* 10 packets make a window; 9 do not */
  pol_init(&p, &o, 1);
  assert_false(pol_win(&p, 10, 5, RTT, RTT));
  assert_false(pol_win(&p, 9, 9, RTT, RTT));
  assert_false(pol_win(&p, 10, 5, RTT, RTT));
  assert_true(pol_win(&p, 10, 5, RTT, RTT));
  pol_free(&p);
  /* the window is 50 ms: a call at +49 ms does not close it */
  pol_init(&p, &o, 1);
  sft_pfec_observe(p.s, T0 + 49 * MS, 100, 30, RTT, RTT);
  sft_pfec_observe(p.s, T0 + 50 * MS, 100, 30, RTT, RTT);
  sft_pfec_observe(p.s, T0 + 99 * MS, 200, 60, RTT, RTT);
  sft_pfec_observe(p.s, T0 + 100 * MS, 200, 60, RTT, RTT);
  assert_false(sft_pfec_active(p.s));
  sft_pfec_observe(p.s, T0 + 150 * MS, 300, 90, RTT, RTT);
  assert_true(sft_pfec_active(p.s));
  pol_free(&p);
}

/* (f) clean_rtt below 1 is rejected (srtt is never below the minimum);
 * 1 and above, and 0 (the default 1.3), are accepted. */
static void test_new_clean_rtt(void **state) {
  static const double bad[] = {0.99, 0.5, 1e-9, -1.0};
  static const double good[] = {0, 1.0, 1.3, 2.5};
  struct sft_pfec_opts o;
  struct sft_pfec *pf;
  (void)state;
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    memset(&o, 0, sizeof(o));
    o.clean_rtt = bad[i];
    pf = (struct sft_pfec *)&pf;
    if (sft_pfec_new(&pf, &o) != SFT_ERR_INVAL)
      fail_msg("clean_rtt %g accepted", bad[i]);
    assert_null(pf);
  }
  for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
    memset(&o, 0, sizeof(o));
    o.clean_rtt = good[i];
    pf = NULL;
    if (sft_pfec_new(&pf, &o) != 0)
      fail_msg("clean_rtt %g rejected", good[i]);
    sft_pfec_del(pf);
  }
  /* clean_rtt 1: srtt = min is short, anything above is not */
  {
    struct pol p;
    memset(&o, 0, sizeof(o));
    o.clean_rtt = 1.0;
    pol_init(&p, &o, 1);
    assert_true(pol_wins(&p, 2, 30, RTT, RTT));
    pol_free(&p);
    pol_init(&p, &o, 1);
    assert_false(pol_wins(&p, 5, 30, RTT + MS, RTT));
    pol_free(&p);
  }
  /* on_windows_any, any value: accepted */
  memset(&o, 0, sizeof(o));
  o.on_windows_any = 1000;
  pf = mk(&o);
  sft_pfec_del(pf);
}

/* max_k = 0 means SFT_PFEC_MAX_K (128): a block closes at its 128th
 * packet (and 64, the former default, is still a valid choice). With the
 * other knobs at their defaults too (force 1: loss on_loss 0.14 until a
 * sample, margin 0.01, fail_target 0.02), m = parity_for(k, 0.15, 0.02),
 * which tells them from other values (0.005 or margin 0.02: more). */
static void test_default_max_k(void **state) {
  static const unsigned maxk[] = {0, SFT_PFEC_MAX_K, 64};
  (void)state;
  assert_int_equal(SFT_PFEC_MAX_K, 128);
  assert_true(sft_pfec_parity_for(128, ON_LOSS + 0.01, 0.02) !=
              sft_pfec_parity_for(128, ON_LOSS + 0.01, 0.005));
  assert_true(sft_pfec_parity_for(128, ON_LOSS + 0.01, 0.02) !=
              sft_pfec_parity_for(128, ON_LOSS + 0.02, 0.02));
  /* ... and from the former default on_loss 0.15 */
  assert_true(sft_pfec_parity_for(128, ON_LOSS + 0.01, 0.02) !=
              sft_pfec_parity_for(128, 0.15 + 0.01, 0.02));
  for (size_t v = 0; v < sizeof(maxk) / sizeof(maxk[0]); v++) {
    struct sft_pfec_opts o;
    struct b2b t;
    unsigned want = maxk[v] ? maxk[v] : SFT_PFEC_MAX_K, m;
    memset(&o, 0, sizeof(o));
    o.force = 1;
    o.max_k = maxk[v];
    b2b_init_o(&t, &o, want - 1, 0);
    if (t.tr.n != want - 1)
      fail_msg("max_k %u: a block closed after %u packets (kplan %u), want "
               "%u",
               maxk[v], (unsigned)t.tr.v[t.tr.n - 1].b[5],
               (unsigned)t.tr.v[0].b[5], want);
    assert_true(sft_pfec_deadline(t.s) > T0); /* not full yet */
    send_pkts(t.s, T0, &t.sent, &t.tr, 1, 0);
    assert_true(t.tr.n > want);
    for (unsigned i = 0; i < want; i++)
      assert_int_equal(t.tr.v[i].b[5], want); /* kplan */
    assert_int_equal(t.tr.v[want].b[0], SFT_PFEC_T_PARITY);
    assert_int_equal(t.tr.v[want].b[5], want); /* k */
    m = sft_pfec_parity_for(want, ON_LOSS + 0.01, 0.02);
    if (t.tr.n - want != m)
      fail_msg("max_k %u: %u PARITY for k %u, want %u (loss 0.14 + margin "
               "0.01, fail_target 0.02)",
               maxk[v], (unsigned)(t.tr.n - want), want, m);
    check_parity_rows(&t.tr, 0, want, (unsigned)(t.tr.n - want));
    /* a few DATA lost, rebuilt */
    for (unsigned i = 0; i < want; i += want / 4)
      t.tr.v[i + 1].tag = 1;
    b2b_check(&t, NULL, 0, 1);
    assert_int_equal(stats(t.r).recovered, 4);
    assert_int_equal(t.out.n, want);
    b2b_free(&t);
  }
}

/* The early PROBEs: a policy-default object whose policy never wants the
 * shim (a clean connection observed, or nothing observed), with nobody
 * answering, sends exactly 5 PROBEs, the first at the first call and the
 * others probe_ns apart, then none for good; sft_pfec_deadline() is <= now
 * exactly when a PROBE goes out (0 before the first, the next one's time
 * after each, UINT64_MAX after the fifth), and a caller that only wakes at
 * the deadline gets the same 5. force 1 (wanted) goes on probing; force -1
 * never probes. */
static void test_early_probes(void **state) {
  static const uint64_t pns[] = {0, 30 * MS, 100 * MS};
  (void)state;
  for (size_t v = 0; v < sizeof(pns) / sizeof(pns[0]); v++) {
    struct sft_pfec_opts o;
    struct sft_pfec *pf;
    const uint64_t P = pns[v] ? pns[v] : 100 * MS;
    const uint64_t start = T0 + 7 * MS + 123; /* the first call */
    uint64_t at[8], sent = 0;
    unsigned n = 0;
    memset(&o, 0, sizeof(o));
    o.probe_ns = pns[v];
    pf = mk(&o);
    assert_true(sft_pfec_deadline(pf) == 0);
    if (v == 2)
      sft_pfec_observe(pf, start - SEC, 0, 0, RTT, RTT);
    for (uint64_t now = start; now < start + 3 * SEC; now += MS / 4) {
      uint8_t b[64];
      uint64_t d = sft_pfec_deadline(pf);
      size_t len;
      if (v == 2) { /* a clean connection: the policy never wants it */
        sent += 10;
        sft_pfec_observe(pf, now, sent, 0, RTT, RTT);
        d = sft_pfec_deadline(pf);
      }
      len = ctl(pf, now, b);
      if (len) {
        assert_int_equal(len, 1);
        assert_int_equal(b[0], SFT_PFEC_T_PROBE);
        if (n < 8)
          at[n] = now;
        n++;
        if (d > now)
          fail_msg("probe_ns %llu: PROBE %u at %llu, deadline %llu after it",
                   (unsigned long long)P, n, (unsigned long long)now,
                   (unsigned long long)d);
        d = sft_pfec_deadline(pf);
        if (n < 5)
          assert_true(d == now + P);
        else
          assert_true(d == UINT64_MAX);
      } else if (d <= now) {
        fail_msg("probe_ns %llu: deadline %llu passed at %llu, nothing to "
                 "send (%u PROBEs so far)",
                 (unsigned long long)P, (unsigned long long)d,
                 (unsigned long long)now, n);
      }
    }
    if (n != 5)
      fail_msg("probe_ns %llu: %u PROBEs in 3 s with no answer, want 5",
               (unsigned long long)P, n);
    for (unsigned i = 0; i < 5; i++)
      assert_true(at[i] == start + i * P);
    assert_false(sft_pfec_active(pf));
    assert_false(stats(pf).peer_ok);
    assert_true(sft_pfec_deadline(pf) == UINT64_MAX);
    sft_pfec_del(pf);

    /* woken only at the deadline */
    pf = mk(&o);
    {
      uint64_t now = start;
      n = 0;
      for (unsigned guard = 0; guard < 100; guard++) {
        uint64_t d = sft_pfec_deadline(pf);
        uint8_t b[64];
        if (d == UINT64_MAX)
          break;
        if (d > now)
          now = d;
        assert_int_equal(ctl(pf, now, b), 1);
        assert_int_equal(b[0], SFT_PFEC_T_PROBE);
        assert_true(now == start + n * P);
        n++;
      }
      assert_int_equal(n, 5);
    }
    sft_pfec_del(pf);
  }

  /* force 1 wants the shim: PROBEs go on, probe_ns apart */
  {
    struct sft_pfec_opts o;
    struct sft_pfec *pf;
    unsigned n = 0;
    memset(&o, 0, sizeof(o));
    o.force = 1;
    pf = mk(&o);
    for (uint64_t now = T0; now < T0 + 3 * SEC; now += MS) {
      uint8_t b[64];
      if (ctl(pf, now, b)) {
        assert_int_equal(b[0], SFT_PFEC_T_PROBE);
        assert_true(now == T0 + n * 100 * MS);
        n++;
      }
    }
    assert_int_equal(n, 30);
    assert_true(sft_pfec_deadline(pf) == T0 + 3 * SEC);
    sft_pfec_del(pf);
  }
  /* force -1: none, and nothing in the deadline */
  {
    struct sft_pfec_opts o;
    struct sft_pfec *pf;
    memset(&o, 0, sizeof(o));
    o.force = -1;
    pf = mk(&o);
    for (uint64_t now = T0; now < T0 + 3 * SEC; now += MS) {
      uint8_t b[64];
      assert_true(sft_pfec_deadline(pf) == UINT64_MAX);
      assert_int_equal(ctl(pf, now, b), 0);
    }
    sft_pfec_del(pf);
  }
}

/* The early PROBEs stop as soon as the peer answered, whatever shim
 * datagram it sent (PROBE, REPORT, DATA or PARITY): 2 went out, the answer
 * comes, then none (a PROBE gets its REPORT), and the deadline holds no
 * probe time. */
static void test_early_probes_stop_when_answered(void **state) {
  static const uint8_t kinds[] = {SFT_PFEC_T_PROBE, SFT_PFEC_T_REPORT,
                                  SFT_PFEC_T_DATA, SFT_PFEC_T_PARITY};
  (void)state;
  for (size_t v = 0; v < sizeof(kinds) / sizeof(kinds[0]); v++) {
    struct sft_pfec *pf = mk(NULL);
    struct blobs out = {0};
    uint64_t now = T0;
    unsigned probes = 0, reports = 0;
    uint8_t b[64];
    for (; now < T0 + 150 * MS; now += MS) {
      if (ctl(pf, now, b)) {
        assert_int_equal(b[0], SFT_PFEC_T_PROBE);
        probes++;
      }
    }
    assert_int_equal(probes, 2);
    assert_false(stats(pf).peer_ok);
    switch (kinds[v]) {
    case SFT_PFEC_T_PROBE:
      b[0] = SFT_PFEC_T_PROBE;
      assert_int_equal(input_exact(pf, now, b, 1), 0);
      break;
    case SFT_PFEC_T_REPORT:
      memset(b, 0, SFT_PFEC_REPORT_LEN);
      b[0] = SFT_PFEC_T_REPORT;
      put24(b + 1, NO_BLOCK);
      assert_int_equal(input_exact(pf, now, b, SFT_PFEC_REPORT_LEN), 0);
      break;
    case SFT_PFEC_T_DATA:
      assert_int_equal(
          input_forged(pf, now, SFT_PFEC_T_DATA, 7, 0, 1, 300, NULL), 0);
      break;
    default:
      assert_int_equal(
          input_forged(pf, now, SFT_PFEC_T_PARITY, 7, 1, 1, 301, NULL), 0);
      break;
    }
    drain(pf, &out);
    assert_true(stats(pf).peer_ok);
    assert_false(sft_pfec_active(pf)); /* the policy does not want it */
    for (; now < T0 + 3 * SEC; now += MS) {
      size_t len;
      sft_pfec_tick(pf, now);
      drain(pf, &out);
      len = ctl(pf, now, b);
      if (len) {
        if (b[0] == SFT_PFEC_T_PROBE)
          fail_msg("answered by type %#x: PROBE at +%llu ms", kinds[v],
                   (unsigned long long)((now - T0) / MS));
        assert_int_equal(b[0], SFT_PFEC_T_REPORT);
        assert_int_equal(len, SFT_PFEC_REPORT_LEN);
        reports++;
      }
    }
    assert_true(reports <= 1);
    if (kinds[v] == SFT_PFEC_T_PROBE)
      assert_int_equal(reports, 1);
    assert_true(sft_pfec_deadline(pf) == UINT64_MAX);
    blobs_free(&out);
    sft_pfec_del(pf);
  }
}

/* sft_pfec_deadline() is 0 (not merely <= now) while the open block holds
 * max_k packets, however far off block_ns would close it, also while wrap
 * refuses more; before the last packet it is the block's close time, and
 * once sft_pfec_parity() closed it, UINT64_MAX again. */
static void test_deadline_zero_when_full(void **state) {
  static const unsigned maxk[] = {1, 10, 0};
  (void)state;
  for (size_t v = 0; v < sizeof(maxk) / sizeof(maxk[0]); v++) {
    struct sft_pfec_opts o = opts_fec();
    struct b2b t;
    const unsigned K = maxk[v] ? maxk[v] : SFT_PFEC_MAX_K;
    const uint64_t t1 = T0 + 50 * SEC, bns = 1000 * SEC;
    uint8_t buf[HDR + 40];
    size_t seg, n;
    o.max_k = maxk[v];
    o.block_ns = bns;
    b2b_init_o(&t, &o, 0, 0);
    assert_true(sft_pfec_deadline(t.s) == UINT64_MAX);
    for (unsigned i = 0; i < K; i++) {
      uint64_t d = sft_pfec_deadline(t.s);
      if (i > 0 && d != t1 + bns)
        fail_msg("max_k %u: %u packets open since t1: deadline %llu, want "
                 "t1 + block_ns",
                 K, i, (unsigned long long)d);
      pkt_fill(buf + HDR, 40, i);
      assert_int_equal(sft_pfec_wrap(t.s, t1 + i, buf, 40), 0);
    }
    if (sft_pfec_deadline(t.s) != 0)
      fail_msg("max_k %u: full block, deadline %llu, want 0", K,
               (unsigned long long)sft_pfec_deadline(t.s));
    for (unsigned j = 0; j < 3; j++) {
      assert_int_equal(sft_pfec_wrap(t.s, t1 + K + j, buf, 40), SFT_ERR_FULL);
      assert_true(sft_pfec_deadline(t.s) == 0);
    }
    assert_int_equal(
        sft_pfec_parity(t.s, t1 + K, g_par, sizeof(g_par), &seg, &n), 0);
    assert_true(n >= 1);
    assert_int_equal(g_par[5], K);
    assert_true(sft_pfec_deadline(t.s) == UINT64_MAX);
    assert_int_equal(sft_pfec_wrap(t.s, t1 + SEC, buf, 40), 0);
    if (K == 1) {
      assert_true(sft_pfec_deadline(t.s) == 0);
    } else {
      assert_true(sft_pfec_deadline(t.s) == t1 + SEC + bns);
    }
    b2b_free(&t);
  }
}

/* A caller that wraps before asking for parity: the block takes max_k
 * packets, then wrap says SFT_ERR_FULL and writes nothing, however often;
 * sft_pfec_parity() then closes it (k = max_k) and wrapping goes on in the
 * next block. Every DATA is well formed and the receiver gets it all. Run
 * last: a heap overflow of the sender's block store ends the program. */
static void test_wrap_full(void **state) {
  static const unsigned maxk[] = {10, 64, 0, SFT_PFEC_MAX_K};
  (void)state;
  for (size_t v = 0; v < sizeof(maxk) / sizeof(maxk[0]); v++) {
    struct sft_pfec_opts o = opts_fec();
    struct b2b t;
    const unsigned K = maxk[v] ? maxk[v] : SFT_PFEC_MAX_K;
    uint8_t buf[HDR + 100], ref[HDR + 100];
    o.max_k = maxk[v];
    o.margin = 0.02;
    b2b_init_o(&t, &o, 0, 0);
    for (unsigned round = 0; round < 2; round++) {
      size_t first = t.tr.n;
      uint8_t kplan = 0;
      for (unsigned i = 0; i < K; i++) {
        uint32_t id = (uint32_t)t.sent.n;
        size_t len = 20 + id % 80;
        pkt_fill(buf + HDR, len, id);
        blobs_push(&t.sent, buf + HDR, len, 0);
        assert_int_equal(sft_pfec_wrap(t.s, T0, buf, len), 0);
        if (i == 0)
          kplan = buf[5];
        if (!(buf[0] == SFT_PFEC_T_DATA && buf[4] == i && buf[5] > i &&
              buf[5] <= SFT_PFEC_MAX_K && buf[5] == kplan))
          fail_msg("max_k %u: wrap %u without sft_pfec_parity() wrote DATA "
                   "index %u, kplan %u",
                   K, i, buf[4], buf[5]);
        if (get24(buf + 1) != (uint32_t)round)
          fail_msg("max_k %u: wrap %u in block %u, want %u", K, i,
                   get24(buf + 1), round);
        blobs_push(&t.tr, buf, HDR + len, 0);
      }
      for (unsigned j = 0; j < 3; j++) {
        memset(buf, 0xC3, sizeof(buf));
        pkt_fill(buf + HDR, 50, 99999);
        memcpy(ref, buf, sizeof(buf));
        if (sft_pfec_wrap(t.s, T0 + j, buf, 50) != SFT_ERR_FULL)
          fail_msg("max_k %u: wrap %u into a full block not refused", K, K + j);
        assert_memory_equal(buf, ref, sizeof(buf));
      }
      assert_int_equal(stats(t.s).data_sent, (uint64_t)K * (round + 1));
      assert_int_equal(stats(t.s).blocks_sent, round);
      if (sft_pfec_deadline(t.s) != 0)
        fail_msg("max_k %u: deadline of a full block %llu, want 0", K,
                 (unsigned long long)sft_pfec_deadline(t.s));
      /* due now, without waiting for block_ns */
      {
        size_t n = parity_out(t.s, T0, &t.tr);
        assert_true(n >= 1);
        assert_int_equal(t.tr.v[first + K].b[5], K);
        check_parity_rows(&t.tr, first, K, (unsigned)n);
      }
      assert_int_equal(stats(t.s).blocks_sent, round + 1);
      assert_true(sft_pfec_deadline(t.s) == UINT64_MAX); /* nothing open */
    }
    /* two DATA lost in each block */
    for (size_t i = 0; i < t.tr.n; i++)
      if (t.tr.v[i].b[0] == SFT_PFEC_T_DATA && t.tr.v[i].b[4] % (K / 2) == 1)
        t.tr.v[i].tag = 1;
    b2b_check(&t, NULL, MS / 10, 1); /* a block within hold_ns */
    assert_int_equal(stats(t.r).recovered, 4);
    assert_int_equal(t.out.n, 2 * K);
    b2b_free(&t);
  }
}

/* The header: sft_pfec_deadline() is the earliest time sft_pfec_parity()
 * has work, and a block with max_k packets is due at once. */
static void test_deadline_full_block(void **state) {
  struct sft_pfec_opts o = opts_fec();
  struct b2b t;
  uint8_t buf[HDR + 40];
  uint64_t d;
  (void)state;
  o.block_ns = 10 * MS;
  b2b_init_o(&t, &o, 0, 0);
  for (unsigned i = 0; i < 10; i++) {
    pkt_fill(buf + HDR, 40, i);
    assert_int_equal(sft_pfec_wrap(t.s, T0, buf, 40), 0);
  }
  d = sft_pfec_deadline(t.s);
  b2b_free(&t);
  if (d > T0)
    fail_msg("a full block (10 of max_k 10) wrapped at T0: deadline T0 + "
             "%.3f ms, but sft_pfec_parity() closes it at T0",
             (double)(d - T0) / MS);
}

/* A closed block gets at least one PARITY, even when the loss estimate
 * plus margin asks for none (sft_pfec_parity_for() = 0 at the default
 * fail_target 0.02): blocks of 1, 5 and max_k (default SFT_PFEC_MAX_K)
 * packets, closed by flush, when full and on time; the one PARITY
 * rebuilds a lost DATA. */
static void test_parity_at_least_one(void **state) {
  struct sft_pfec_opts o;
  struct b2b t;
  struct plan pl;
  size_t n;
  (void)state;
  memset(&o, 0, sizeof(o));
  o.force = 1;
  o.on_loss = 1e-6;
  o.margin = 1e-9;
  for (unsigned k = 1; k <= SFT_PFEC_MAX_K; k++)
    assert_int_equal(sft_pfec_parity_for(k, 1e-6 + 1e-9, 0.02), 0);
  b2b_init_o(&t, &o, 1, 1);                              /* k 1, flush */
  send_pkts(t.s, T0, &t.sent, &t.tr, 5, 1);              /* k 5, flush */
  send_pkts(t.s, T0, &t.sent, &t.tr, SFT_PFEC_MAX_K, 0); /* full */
  send_pkts(t.s, T0 + SEC, &t.sent, &t.tr, 3, 0);
  assert_int_equal(parity_out(t.s, T0 + SEC + 9 * MS, &t.tr), 0);
  n = parity_out(t.s, T0 + SEC + 10 * MS, &t.tr); /* on time */
  assert_true(n >= 1);
  analyse(&t.tr, &pl);
  assert_int_equal(pl.nb, 4);
  for (size_t b = 0; b < pl.nb; b++) {
    static const unsigned ks[] = {1, 5, SFT_PFEC_MAX_K, 3};
    assert_int_equal(pl.b[b].k, ks[b]);
    if (pl.b[b].m < 1)
      fail_msg("block of %u closed without PARITY", ks[b]);
    assert_int_equal(pl.b[b].kfield, ks[b]);
    assert_true(pl.b[b].m <= 2);
    check_parity_rows(&t.tr, pl.b[b].first_data, pl.b[b].k, pl.b[b].m);
  }
  /* the only DATA of block 0 and one of each other block lost */
  for (size_t b = 0; b < pl.nb; b++)
    t.tr.v[pl.b[b].first_data + pl.b[b].k / 2].tag = 1;
  t.now = T0 + 2 * SEC;
  b2b_check(&t, NULL, MS / 10, 1);
  assert_int_equal(stats(t.r).recovered, 4);
  assert_int_equal(t.out.n, 1 + 5 + SFT_PFEC_MAX_K + 3);
  plan_free(&pl);
  b2b_free(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_is_shim),
      cmocka_unit_test(test_new_args),
      cmocka_unit_test(test_parity_for_shape),
      cmocka_unit_test(test_parity_for_binomial_tail),
      cmocka_unit_test(test_handshake),
      cmocka_unit_test(test_wire_format),
      cmocka_unit_test(test_block_closes_on_time),
      cmocka_unit_test(test_wrap_errors),
      cmocka_unit_test(test_parity_nospace),
      cmocka_unit_test(test_roundtrip_no_loss),
      cmocka_unit_test(test_roundtrip_drops_within_parity),
      cmocka_unit_test(test_roundtrip_random_drops),
      cmocka_unit_test(test_block_failure_releases_survivors),
      cmocka_unit_test(test_hold_until_parity),
      cmocka_unit_test(test_hold_deadline_and_late_data),
      cmocka_unit_test(test_next_block_retires_held_block),
      cmocka_unit_test(test_queue_discarded_if_not_drained),
      cmocka_unit_test(test_reorder),
      cmocka_unit_test(test_first_block_any_number),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_forged_shard_length),
      cmocka_unit_test(test_parity_shorter_than_data),
      cmocka_unit_test(test_far_block),
      cmocka_unit_test(test_forged_far_ahead_does_not_wedge),
      cmocka_unit_test(test_far_ahead_resync),
      cmocka_unit_test(test_forged_parity_ahead),
      cmocka_unit_test(test_data_kplan),
      cmocka_unit_test(test_report_counts),
      cmocka_unit_test(test_report_counts_late_parity),
      cmocka_unit_test(test_policy_turns_on),
      cmocka_unit_test(test_policy_waits_for_peer),
      cmocka_unit_test(test_policy_low_loss_never),
      cmocka_unit_test(test_policy_burst_never),
      cmocka_unit_test(test_policy_force_never),
      cmocka_unit_test(test_turns_off_on_clean_reports),
      cmocka_unit_test(test_clean_link_turns_off),
      cmocka_unit_test(test_stays_on_under_loss),
      cmocka_unit_test(test_policy_on_by_peer_probe),
      cmocka_unit_test(test_policy_clean_two_windows),
      cmocka_unit_test(test_policy_bbr_startup_never),
      cmocka_unit_test(test_policy_any_rtt_six_windows),
      cmocka_unit_test(test_policy_small_window),
      cmocka_unit_test(test_policy_first_parity),
      cmocka_unit_test(test_policy_knobs),
      cmocka_unit_test(test_new_clean_rtt),
      cmocka_unit_test(test_default_max_k),
      cmocka_unit_test(test_parity_at_least_one),
      cmocka_unit_test(test_deadline_full_block),
      cmocka_unit_test(test_early_probes),
      cmocka_unit_test(test_early_probes_stop_when_answered),
      cmocka_unit_test(test_deadline_zero_when_full),
      cmocka_unit_test(test_wrap_full), /* keep last */
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
