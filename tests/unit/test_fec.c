/* Tests of lib/fec: Reed-Solomon erasure coding through ISA-L. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "sft/fec.h"
#include "sft/hash.h"

#define GARBAGE 0xA5

/* ---- helpers ------------------------------------------------------------ */

static uint64_t rng_next(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static void fill_random(uint8_t *p, size_t n, uint64_t seed) {
  uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(rng_next(&x) >> 24);
}

/* One encoded stripe: each shard its own heap block of exactly |len| bytes
 * (so ASan sees any overrun of our code), plus a pristine copy. */
struct stripe {
  unsigned k, m, n;
  size_t len;
  uint8_t *shard[SFT_MAX_STRIPE];
  uint8_t *orig[SFT_MAX_STRIPE];
};

static void stripe_make(struct stripe *s, struct sft_fec *fec, size_t len,
                        uint64_t seed) {
  memset(s, 0, sizeof(*s));
  s->k = sft_fec_k(fec);
  s->m = sft_fec_m(fec);
  s->n = s->k + s->m;
  s->len = len;
  for (unsigned i = 0; i < s->n; i++) {
    s->shard[i] = malloc(len);
    s->orig[i] = malloc(len);
    assert_non_null(s->shard[i]);
    assert_non_null(s->orig[i]);
    if (i < s->k)
      fill_random(s->shard[i], len, seed * 1000 + i);
    else
      memset(s->shard[i], GARBAGE, len);
  }
  assert_int_equal(sft_fec_encode(fec, (const uint8_t *const *)s->shard,
                                  s->shard + s->k, len),
                   0);
  for (unsigned i = 0; i < s->n; i++)
    memcpy(s->orig[i], s->shard[i], len);
}

static void stripe_free(struct stripe *s) {
  for (unsigned i = 0; i < s->n; i++) {
    free(s->shard[i]);
    free(s->orig[i]);
  }
}

/* Restore every shard in |present| from the copy, wipe the others. */
static void stripe_wipe(struct stripe *s, const struct sft_fec_mask *present) {
  for (unsigned i = 0; i < s->n; i++) {
    if (sft_fec_mask_test(present, i))
      memcpy(s->shard[i], s->orig[i], s->len);
    else
      memset(s->shard[i], GARBAGE, s->len);
  }
}

static int shard_is(const uint8_t *p, uint8_t v, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (p[i] != v)
      return 0;
  return 1;
}

/* Lose the shards outside |present|, decode, and check every shard: data
 * (and parity with SFT_FEC_PARITY) equal the original byte for byte;
 * without the flag, lost parity is left untouched. */
static void check_decode(struct sft_fec *fec, struct stripe *s,
                         const struct sft_fec_mask *present, unsigned flags) {
  stripe_wipe(s, present);
  assert_int_equal(sft_fec_decode(fec, s->shard, present, s->len, flags), 0);
  for (unsigned i = 0; i < s->n; i++) {
    if (i < s->k || sft_fec_mask_test(present, i) || (flags & SFT_FEC_PARITY))
      assert_memory_equal(s->shard[i], s->orig[i], s->len);
    else
      assert_true(shard_is(s->shard[i], GARBAGE, s->len));
  }
}

/* Shards i < n (and i < 32) whose bit is set in |bits|. */
static struct sft_fec_mask mask_from_bits(uint32_t bits, unsigned n) {
  struct sft_fec_mask p = {{0}};
  for (unsigned i = 0; i < n && i < 32; i++)
    if (bits >> i & 1)
      sft_fec_mask_set(&p, i);
  return p;
}

/* Every erasure pattern of up to m shards (n = k + m <= 31), both flag
 * settings, several lengths. Returns the number of patterns tried. */
static unsigned exhaustive(unsigned k, unsigned m) {
  static const size_t lens[] = {1, 7, 64, 1000, 4096 + 1};
  const unsigned n = k + m;
  unsigned patterns = 0;
  struct sft_fec *fec;

  assert_int_equal(sft_fec_new(&fec, k, m), 0);
  for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
    struct stripe s;
    stripe_make(&s, fec, lens[li], li + 1);
    patterns = 0;
    for (uint32_t lostbits = 0; lostbits < (1u << n); lostbits++) {
      struct sft_fec_mask present;
      if ((unsigned)__builtin_popcount(lostbits) > m)
        continue;
      present = mask_from_bits(~lostbits, n);
      check_decode(fec, &s, &present, SFT_FEC_PARITY);
      check_decode(fec, &s, &present, 0);
      patterns++;
    }
    stripe_free(&s);
  }
  sft_fec_del(fec);
  return patterns;
}

/* ---- tests -------------------------------------------------------------- */

static void test_exhaustive_10_3(void **state) {
  (void)state;
  /* 1 + 13 + 78 + 286 patterns */
  assert_int_equal(exhaustive(10, 3), 378);
}

static void test_exhaustive_4_9(void **state) {
  (void)state;
  /* sum over i <= 9 of C(13, i) = 8192 - 286 - 78 - 13 - 1 */
  assert_int_equal(exhaustive(4, 9), 7814);
}

static void test_random_200_55(void **state) {
  struct sft_fec *fec;
  struct stripe s;
  struct sft_fec_stats st;
  uint64_t x = 12345;
  unsigned idx[255];
  (void)state;

  assert_int_equal(sft_fec_new(&fec, 200, 55), 0);
  stripe_make(&s, fec, 333, 7);
  for (unsigned t = 0; t < 300; t++) {
    /* Every third pattern loses exactly m; the rest lose 1..55. */
    unsigned e = t % 3 == 0 ? 55 : 1 + (unsigned)(rng_next(&x) % 55);
    struct sft_fec_mask present = sft_fec_mask_first(255);
    for (unsigned i = 0; i < 255; i++)
      idx[i] = i;
    for (unsigned i = 0; i < e; i++) { /* partial Fisher-Yates */
      unsigned j = i + (unsigned)(rng_next(&x) % (255 - i));
      unsigned tmp = idx[i];
      idx[i] = idx[j];
      idx[j] = tmp;
      sft_fec_mask_clear(&present, idx[i]);
    }
    check_decode(fec, &s, &present, t & 1 ? 0 : SFT_FEC_PARITY);
  }
  /* All 55 data shards 0..54 lost: the largest inversion (55 x 55). */
  {
    struct sft_fec_mask present = sft_fec_mask_first(255);
    for (unsigned i = 0; i < 55; i++)
      sft_fec_mask_clear(&present, i);
    check_decode(fec, &s, &present, SFT_FEC_PARITY);
  }
  sft_fec_get_stats(fec, &st);
  assert_true(st.entries <= SFT_FEC_CACHE_DEFAULT);
  assert_int_equal(st.hits + st.misses, 301);
  stripe_free(&s);
  sft_fec_del(fec);
}

/* Too many erasures: SFT_ERR_ERASURES and not one byte written. */
static void test_too_many_missing(void **state) {
  static const unsigned geo[][3] = {
      {10, 3, 4}, {200, 55, 56}, {4, 9, 10}, {1, 0, 1}, {3, 1, 3}};
  (void)state;
  for (size_t g = 0; g < sizeof(geo) / sizeof(geo[0]); g++) {
    struct sft_fec *fec;
    struct stripe s;
    struct sft_fec_mask present = sft_fec_mask_first(geo[g][0] + geo[g][1]);
    assert_int_equal(sft_fec_new(&fec, geo[g][0], geo[g][1]), 0);
    stripe_make(&s, fec, 1001, g);
    /* lose the last |lost| shards (parity first, then data) */
    for (unsigned i = 0; i < geo[g][2]; i++)
      sft_fec_mask_clear(&present, s.n - 1 - i);
    stripe_wipe(&s, &present);
    assert_int_equal(
        sft_fec_decode(fec, s.shard, &present, s.len, SFT_FEC_PARITY),
        SFT_ERR_ERASURES);
    assert_int_equal(sft_fec_decode(fec, s.shard, &present, s.len, 0),
                     SFT_ERR_ERASURES);
    for (unsigned i = 0; i < s.n; i++) {
      if (sft_fec_mask_test(&present, i))
        assert_memory_equal(s.shard[i], s.orig[i], s.len);
      else
        assert_true(shard_is(s.shard[i], GARBAGE, s.len));
    }
    stripe_free(&s);
    sft_fec_del(fec);
  }
}

static void test_edge_k1_m0(void **state) {
  struct sft_fec *fec;
  struct stripe s;
  struct sft_fec_mask present;
  uint8_t data[5] = {1, 2, 3, 4, 5};
  const uint8_t *dp[1] = {data};
  uint8_t *sp[1] = {data};
  struct sft_fec_stats st;
  (void)state;

  /* k = 1, m = 2: any one shard rebuilds the others */
  assert_int_equal(sft_fec_new(&fec, 1, 2), 0);
  stripe_make(&s, fec, 7, 3);
  for (unsigned keep = 0; keep < 3; keep++) {
    present = mask_from_bits(1u << keep, 3);
    check_decode(fec, &s, &present, SFT_FEC_PARITY);
  }
  stripe_free(&s);
  sft_fec_del(fec);

  /* k = 1, m = 0: nothing to encode, nothing missing is a no-op, one
   * missing is too many */
  assert_int_equal(sft_fec_new(&fec, 1, 0), 0);
  assert_int_equal(sft_fec_encode(fec, dp, NULL, sizeof(data)), 0);
  present = sft_fec_mask_first(1);
  assert_int_equal(sft_fec_decode(fec, sp, &present, sizeof(data), 0), 0);
  present = sft_fec_mask_first(0);
  assert_int_equal(sft_fec_decode(fec, sp, &present, sizeof(data), 0),
                   SFT_ERR_ERASURES);
  assert_int_equal(data[0], 1);
  sft_fec_get_stats(fec, &st);
  assert_int_equal(st.hits + st.misses, 0);
  sft_fec_del(fec);

  /* widest stripes */
  assert_int_equal(sft_fec_new(&fec, 255, 0), 0);
  sft_fec_del(fec);
  assert_int_equal(sft_fec_new(&fec, 1, 254), 0);
  stripe_make(&s, fec, 3, 9);
  present = mask_from_bits(0, 255);
  sft_fec_mask_set(&present, 200); /* only one parity shard survives */
  check_decode(fec, &s, &present, SFT_FEC_PARITY);
  stripe_free(&s);
  sft_fec_del(fec);

  /* no data lost, only parity: without the flag a no-op, with it a rebuild
   * from the data alone */
  assert_int_equal(sft_fec_new(&fec, 10, 3), 0);
  stripe_make(&s, fec, 100, 4);
  present = sft_fec_mask_first(11);
  check_decode(fec, &s, &present, 0);
  sft_fec_get_stats(fec, &st);
  assert_int_equal(st.hits + st.misses, 0);
  check_decode(fec, &s, &present, SFT_FEC_PARITY);
  stripe_free(&s);
  sft_fec_del(fec);
}

static void *plain_alloc(void *ud, size_t n) {
  (void)ud;
  return malloc(n);
}

static void plain_dealloc(void *ud, void *p) {
  (void)ud;
  free(p);
}

static void test_invalid_parameters(void **state) {
  struct sft_fec *fec = (struct sft_fec *)&fec; /* must be reset to NULL */
  struct sft_fec_opts o;
  struct stripe s;
  struct sft_fec_mask present;
  uint8_t *save;
  (void)state;

  assert_int_equal(sft_fec_new(&fec, 0, 3), SFT_ERR_INVAL);
  assert_null(fec);
  assert_int_equal(sft_fec_new(&fec, 253, 3), SFT_ERR_RANGE);
  assert_int_equal(sft_fec_new(&fec, 255, 1), SFT_ERR_RANGE);
  assert_int_equal(sft_fec_new(&fec, 1, 255), SFT_ERR_RANGE);
  assert_int_equal(sft_fec_new(&fec, 256, 0), SFT_ERR_RANGE);
  assert_int_equal(sft_fec_new(&fec, 10, UINT_MAX), SFT_ERR_RANGE);
  assert_int_equal(sft_fec_new(&fec, UINT_MAX, 10), SFT_ERR_RANGE);
  assert_null(fec);
  assert_int_equal(sft_fec_new(NULL, 10, 3), SFT_ERR_INVAL);
  memset(&o, 0, sizeof(o));
  o.cache_slots = SFT_FEC_CACHE_MAX + 1;
  assert_int_equal(sft_fec_new_opts(&fec, 10, 3, &o), SFT_ERR_RANGE);
  o.cache_slots = 0;
  o.dealloc = plain_dealloc; /* alloc without dealloc or vice versa */
  assert_int_equal(sft_fec_new_opts(&fec, 10, 3, &o), SFT_ERR_INVAL);
  o.dealloc = NULL;
  o.alloc = plain_alloc;
  assert_int_equal(sft_fec_new_opts(&fec, 10, 3, &o), SFT_ERR_INVAL);
  assert_null(fec);
  assert_int_equal(sft_fec_new_opts(&fec, 10, 3, NULL), 0);
  sft_fec_del(fec);
  sft_fec_del(NULL);

  assert_int_equal(sft_fec_new(&fec, 10, 3), 0);
  stripe_make(&s, fec, 50, 1);
  /* encode */
  assert_int_equal(
      sft_fec_encode(fec, (const uint8_t *const *)s.shard, s.shard + 10, 0),
      SFT_ERR_INVAL);
  assert_int_equal(
      sft_fec_encode(NULL, (const uint8_t *const *)s.shard, s.shard + 10, 50),
      SFT_ERR_INVAL);
  assert_int_equal(sft_fec_encode(fec, NULL, s.shard + 10, 50), SFT_ERR_INVAL);
  assert_int_equal(
      sft_fec_encode(fec, (const uint8_t *const *)s.shard, NULL, 50),
      SFT_ERR_INVAL);
  save = s.shard[3];
  s.shard[3] = NULL;
  assert_int_equal(
      sft_fec_encode(fec, (const uint8_t *const *)s.shard, s.shard + 10, 50),
      SFT_ERR_INVAL);
  /* decode: a NULL buffer for a lost data shard, for a survivor */
  present = sft_fec_mask_first(13);
  sft_fec_mask_clear(&present, 3);
  assert_int_equal(sft_fec_decode(fec, s.shard, &present, 50, 0),
                   SFT_ERR_INVAL);
  s.shard[3] = save;
  save = s.shard[10];
  s.shard[10] = NULL;
  assert_int_equal(sft_fec_decode(fec, s.shard, &present, 50, 0),
                   SFT_ERR_INVAL);
  s.shard[10] = save;
  /* a lost parity shard may be NULL when parity is not rebuilt */
  sft_fec_mask_clear(&present, 12);
  save = s.shard[12];
  s.shard[12] = NULL;
  assert_int_equal(sft_fec_decode(fec, s.shard, &present, 50, 0), 0);
  assert_int_equal(sft_fec_decode(fec, s.shard, &present, 50, SFT_FEC_PARITY),
                   SFT_ERR_INVAL);
  s.shard[12] = save;
  /* stray mask bit, unknown flag, zero length, NULL arguments */
  sft_fec_mask_set(&present, 13);
  assert_int_equal(sft_fec_decode(fec, s.shard, &present, 50, 0),
                   SFT_ERR_INVAL);
  sft_fec_mask_clear(&present, 13);
  sft_fec_mask_set(&present, 255);
  assert_int_equal(sft_fec_decode(fec, s.shard, &present, 50, 0),
                   SFT_ERR_INVAL);
  sft_fec_mask_clear(&present, 255);
  assert_int_equal(sft_fec_decode(fec, s.shard, &present, 50, 2),
                   SFT_ERR_INVAL);
  assert_int_equal(sft_fec_decode(fec, s.shard, &present, 0, 0), SFT_ERR_INVAL);
  assert_int_equal(sft_fec_decode(NULL, s.shard, &present, 50, 0),
                   SFT_ERR_INVAL);
  assert_int_equal(sft_fec_decode(fec, NULL, &present, 50, 0), SFT_ERR_INVAL);
  assert_int_equal(sft_fec_decode(fec, s.shard, NULL, 50, 0), SFT_ERR_INVAL);
  stripe_free(&s);
  sft_fec_del(fec);
}

/* Counting allocator that can fail the Nth call. */
struct counting {
  long calls;   /* allocations attempted */
  long fail_at; /* fail the call with this 0-based index; -1 = never */
  long live;    /* blocks not yet freed */
};

static void *count_alloc(void *ud, size_t n) {
  struct counting *c = ud;
  if (c->calls++ == c->fail_at)
    return NULL;
  c->live++;
  return malloc(n);
}

static void count_dealloc(void *ud, void *p) {
  struct counting *c = ud;
  if (p)
    c->live--;
  free(p);
}

static void test_cache_hits_and_bounded(void **state) {
  struct counting c = {0, -1, 0};
  struct sft_fec_opts o = {0, count_alloc, count_dealloc, &c};
  struct sft_fec *fec;
  struct stripe s;
  struct sft_fec_stats st;
  struct sft_fec_mask present, lost0;
  long calls;
  uint32_t bits;
  unsigned distinct = 0;
  (void)state;

  assert_int_equal(sft_fec_new_opts(&fec, 10, 3, &o), 0);
  stripe_make(&s, fec, 4097, 5);
  sft_fec_get_stats(fec, &st);
  assert_int_equal(st.slots, SFT_FEC_CACHE_DEFAULT);
  assert_int_equal(st.entries, 0);

  /* First decode of a pattern misses (one table allocation), the same
   * pattern again hits: no allocation, no new miss. */
  present = lost0 = sft_fec_mask_first(13);
  sft_fec_mask_clear(&lost0, 0);
  sft_fec_mask_clear(&lost0, 4);
  sft_fec_mask_clear(&lost0, 9);
  calls = c.calls;
  check_decode(fec, &s, &lost0, 0);
  sft_fec_get_stats(fec, &st);
  assert_int_equal(st.misses, 1);
  assert_int_equal(st.hits, 0);
  assert_int_equal(st.entries, 1);
  assert_int_equal(c.calls, calls + 1);
  calls = c.calls;
  for (int i = 0; i < 10; i++)
    check_decode(fec, &s, &lost0, 0);
  sft_fec_get_stats(fec, &st);
  assert_int_equal(st.misses, 1);
  assert_int_equal(st.hits, 10);
  assert_int_equal(c.calls, calls);

  /* The key is (shards read, shards rebuilt). Lost {0}: reads data 1..9 and
   * parity 10. Lost {0, 12} or {0, 11} without parity rebuild read the same
   * shards -> hits; lost {0, 10} reads parity 11 -> miss; lost {0, 12} with
   * parity rebuilt has other outputs -> miss. */
  {
    static const struct {
      unsigned lost2; /* second lost shard, 0 = none */
      unsigned flags;
      uint64_t misses, hits;
    } steps[] = {{0, 0, 2, 10},
                 {12, 0, 2, 11},
                 {11, 0, 2, 12},
                 {10, 0, 3, 12},
                 {12, SFT_FEC_PARITY, 4, 12},
                 {12, SFT_FEC_PARITY, 4, 13}};
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
      present = sft_fec_mask_first(13);
      sft_fec_mask_clear(&present, 0);
      if (steps[i].lost2)
        sft_fec_mask_clear(&present, steps[i].lost2);
      check_decode(fec, &s, &present, steps[i].flags);
      sft_fec_get_stats(fec, &st);
      assert_int_equal(st.misses, steps[i].misses);
      assert_int_equal(st.hits, steps[i].hits);
    }
  }

  /* Every pattern of 10+3 with parity rebuilt: 377 non-empty patterns; the
   * cache never grows past its 64 slots and evicts the rest. */
  sft_fec_del(fec);
  assert_int_equal(c.live, 0);
  assert_int_equal(sft_fec_new_opts(&fec, 10, 3, &o), 0);
  for (bits = 1; bits < (1u << 13); bits++) {
    if (__builtin_popcount(bits) > 3)
      continue;
    present = mask_from_bits(~bits, 13);
    check_decode(fec, &s, &present, SFT_FEC_PARITY);
    distinct++;
    sft_fec_get_stats(fec, &st);
    assert_true(st.entries <= SFT_FEC_CACHE_DEFAULT);
    assert_true(c.live <= 7 + SFT_FEC_CACHE_DEFAULT); /* 7 from _new */
  }
  sft_fec_get_stats(fec, &st);
  assert_int_equal(distinct, 377);
  assert_int_equal(st.misses, 377);
  assert_int_equal(st.hits, 0);
  assert_int_equal(st.entries, SFT_FEC_CACHE_DEFAULT);
  assert_int_equal(st.evictions, 377 - SFT_FEC_CACHE_DEFAULT);
  /* The 64 most recent patterns are all still cached (LRU). */
  {
    unsigned seen = 0;
    for (bits = (1u << 13) - 1; bits > 0 && seen < SFT_FEC_CACHE_DEFAULT;
         bits--) {
      if (__builtin_popcount(bits) > 3)
        continue;
      present = mask_from_bits(~bits, 13);
      check_decode(fec, &s, &present, SFT_FEC_PARITY);
      seen++;
    }
  }
  sft_fec_get_stats(fec, &st);
  assert_int_equal(st.misses, 377);
  assert_int_equal(st.hits, SFT_FEC_CACHE_DEFAULT);
  sft_fec_del(fec);
  assert_int_equal(c.live, 0);

  /* LRU order with two slots: A B A C -> C evicts B; A still hits. */
  o.cache_slots = 2;
  assert_int_equal(sft_fec_new_opts(&fec, 10, 3, &o), 0);
  {
    struct sft_fec_mask pa = sft_fec_mask_first(13), pb, pc;
    pb = pc = pa;
    sft_fec_mask_clear(&pa, 1);
    sft_fec_mask_clear(&pb, 2);
    sft_fec_mask_clear(&pc, 3);
    check_decode(fec, &s, &pa, 0);
    check_decode(fec, &s, &pb, 0);
    check_decode(fec, &s, &pa, 0);
    check_decode(fec, &s, &pc, 0);
    sft_fec_get_stats(fec, &st);
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.evictions, 1);
    check_decode(fec, &s, &pa, 0);
    sft_fec_get_stats(fec, &st);
    assert_int_equal(st.hits, 2);
    check_decode(fec, &s, &pb, 0);
    sft_fec_get_stats(fec, &st);
    assert_int_equal(st.misses, 4);
    assert_int_equal(st.entries, 2);
  }
  sft_fec_del(fec);
  assert_int_equal(c.live, 0);
  stripe_free(&s);
}

/* Every allocation failure is reported as SFT_ERR_NOMEM, leaks nothing, and
 * a failed cache miss writes nothing and keeps the cache intact. */
static void test_nomem(void **state) {
  struct counting c = {0, -1, 0};
  struct sft_fec_opts o = {0, count_alloc, count_dealloc, &c};
  struct sft_fec *fec = NULL;
  struct stripe s;
  struct sft_fec_mask present;
  struct sft_fec_stats st;
  long n;
  int rv;
  (void)state;

  for (n = 0;; n++) {
    c.calls = 0;
    c.fail_at = n;
    rv = sft_fec_new_opts(&fec, 10, 3, &o);
    if (rv == 0)
      break;
    assert_int_equal(rv, SFT_ERR_NOMEM);
    assert_null(fec);
    assert_int_equal(c.live, 0);
  }
  assert_true(n >= 2);
  c.fail_at = -1;
  stripe_make(&s, fec, 999, 11);
  present = sft_fec_mask_first(13);
  sft_fec_mask_clear(&present, 2);
  sft_fec_mask_clear(&present, 11);
  stripe_wipe(&s, &present);
  c.calls = 0;
  c.fail_at = 0;
  assert_int_equal(
      sft_fec_decode(fec, s.shard, &present, s.len, SFT_FEC_PARITY),
      SFT_ERR_NOMEM);
  assert_true(shard_is(s.shard[2], GARBAGE, s.len));
  assert_true(shard_is(s.shard[11], GARBAGE, s.len));
  sft_fec_get_stats(fec, &st);
  assert_int_equal(st.entries, 0);
  assert_int_equal(st.misses, 0);
  c.fail_at = -1;
  check_decode(fec, &s, &present, SFT_FEC_PARITY);
  stripe_free(&s);
  sft_fec_del(fec);
  assert_int_equal(c.live, 0);
}

/* Digest check before decoding: corrupt shards are found by their BLAKE3
 * digest and treated as erased, so the decode is exact; trusting them
 * instead yields wrong data. */
static void mark_corrupt(const struct stripe *s,
                         const uint8_t (*digest)[SFT_HASH_LEN],
                         struct sft_fec_mask *present) {
  for (unsigned i = 0; i < s->n; i++) {
    uint8_t d[SFT_HASH_LEN];
    if (!sft_fec_mask_test(present, i))
      continue;
    sft_blake3(s->shard[i], s->len, d);
    if (memcmp(d, digest[i], SFT_HASH_LEN) != 0)
      sft_fec_mask_clear(present, i);
  }
}

static void test_digest_catches_corruption(void **state) {
  struct sft_fec *fec;
  struct stripe s;
  uint8_t digest[13][SFT_HASH_LEN];
  struct sft_fec_mask present, expect;
  (void)state;

  assert_int_equal(sft_fec_new(&fec, 10, 3), 0);
  stripe_make(&s, fec, 4096 + 1, 21);
  for (unsigned i = 0; i < s.n; i++)
    sft_blake3(s.shard[i], s.len, digest[i]);

  /* Shard 5 never arrived; shards 2 (data) and 11 (parity) arrived with one
   * flipped bit each. */
  present = sft_fec_mask_first(13);
  sft_fec_mask_clear(&present, 5);
  memset(s.shard[5], GARBAGE, s.len);
  s.shard[2][1234] ^= 0x10;
  s.shard[11][4096] ^= 0x01;

  /* Without the check the decode trusts shard 2 and rebuilds shard 5
   * wrongly. */
  assert_int_equal(sft_fec_decode(fec, s.shard, &present, s.len, 0), 0);
  assert_memory_not_equal(s.shard[5], s.orig[5], s.len);

  /* With it, exactly the corrupt shards are marked erased ... */
  memset(s.shard[5], GARBAGE, s.len);
  mark_corrupt(&s, (const uint8_t(*)[SFT_HASH_LEN])digest, &present);
  expect = sft_fec_mask_first(13);
  sft_fec_mask_clear(&expect, 2);
  sft_fec_mask_clear(&expect, 5);
  sft_fec_mask_clear(&expect, 11);
  assert_memory_equal(&present, &expect, sizeof(present));

  /* ... and the decode restores every shard exactly, digests included. */
  assert_int_equal(
      sft_fec_decode(fec, s.shard, &present, s.len, SFT_FEC_PARITY), 0);
  for (unsigned i = 0; i < s.n; i++) {
    uint8_t d[SFT_HASH_LEN];
    assert_memory_equal(s.shard[i], s.orig[i], s.len);
    sft_blake3(s.shard[i], s.len, d);
    assert_memory_equal(d, digest[i], SFT_HASH_LEN);
  }
  stripe_free(&s);
  sft_fec_del(fec);
}

/* Parity is a fixed function of the data (pins the Cauchy generator):
 * encoding is deterministic and linear: P(a ^ b) = P(a) ^ P(b). */
static void test_encode_linear_and_systematic(void **state) {
  struct sft_fec *fec;
  struct stripe a, b;
  uint8_t *x[13];
  (void)state;
  assert_int_equal(sft_fec_new(&fec, 10, 3), 0);
  stripe_make(&a, fec, 257, 31);
  stripe_make(&b, fec, 257, 32);
  for (unsigned i = 0; i < 13; i++) {
    x[i] = malloc(257);
    assert_non_null(x[i]);
    for (unsigned j = 0; j < 257; j++)
      x[i][j] = (uint8_t)(i < 10 ? a.orig[i][j] ^ b.orig[i][j] : 0);
  }
  assert_int_equal(sft_fec_encode(fec, (const uint8_t *const *)x, x + 10, 257),
                   0);
  for (unsigned i = 10; i < 13; i++) {
    for (unsigned j = 0; j < 257; j++)
      assert_int_equal(x[i][j], a.orig[i][j] ^ b.orig[i][j]);
    /* parity of random data is not a copy of any data shard */
    assert_memory_not_equal(a.orig[i], a.orig[0], 257);
  }
  /* single non-zero byte in data shard j -> parity byte = M[p][j] != 0 */
  for (unsigned i = 0; i < 13; i++)
    memset(x[i], 0, 257);
  x[3][100] = 1;
  assert_int_equal(sft_fec_encode(fec, (const uint8_t *const *)x, x + 10, 257),
                   0);
  for (unsigned i = 10; i < 13; i++) {
    assert_int_not_equal(x[i][100], 0);
    assert_int_equal(x[i][99], 0);
    assert_int_equal(x[i][101], 0);
  }
  for (unsigned i = 0; i < 13; i++)
    free(x[i]);
  stripe_free(&a);
  stripe_free(&b);
  sft_fec_del(fec);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_invalid_parameters),
      cmocka_unit_test(test_edge_k1_m0),
      cmocka_unit_test(test_encode_linear_and_systematic),
      cmocka_unit_test(test_too_many_missing),
      cmocka_unit_test(test_cache_hits_and_bounded),
      cmocka_unit_test(test_nomem),
      cmocka_unit_test(test_digest_catches_corruption),
      cmocka_unit_test(test_exhaustive_10_3),
      cmocka_unit_test(test_exhaustive_4_9),
      cmocka_unit_test(test_random_200_55),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
