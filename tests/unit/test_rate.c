/* Tests of lib/rate: the token bucket. Time is simulated nanoseconds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "sft/rate.h"

#define NS 1000000000ull
#define KIB 1024ull
#define MIB (1024ull * 1024ull)

static uint64_t rng_next(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

/* Mixed sizes: mostly 1..64 KiB, sometimes 1200 B, sometimes 1 MiB (larger
 * than a small burst). */
static uint64_t mixed_size(uint64_t *x) {
  uint64_t r = rng_next(x);
  switch (r % 8) {
  case 0:
    return 1200;
  case 1:
    return 1 * MIB;
  default:
    return 1 + (r >> 8) % (64 * KIB);
  }
}

/* Sends greedily from |t0| to |t1|: every refused take waits exactly until
 * the reported time, where the same take must succeed. Returns the bytes
 * sent; *t is where the simulation stopped. */
static uint64_t run_greedy(struct sft_rate *b, uint64_t t0, uint64_t t1,
                           uint64_t *seed, uint64_t *t) {
  uint64_t now = t0, sent = 0;
  while (now < t1) {
    uint64_t n = mixed_size(seed), at = 0;
    int rc = sft_rate_take(b, now, n, &at);
    if (rc == SFT_ERR_AGAIN) {
      assert_true(at > now);
      /* one nanosecond earlier is still too early: `at` is exact */
      assert_int_equal(sft_rate_check(b, at - 1, n, NULL), SFT_ERR_AGAIN);
      now = at;
      assert_int_equal(sft_rate_take(b, now, n, &at), 0);
      assert_int_equal(at, now);
    } else {
      assert_int_equal(rc, 0);
    }
    sent += n;
  }
  *t = now;
  return sent;
}

static void assert_within(double got, double want, double tol) {
  if (fabs(got - want) > tol * want)
    fail_msg("got %.1f, want %.1f +- %.2f %%", got, want, tol * 100);
}

static void test_long_run_average(void **state) {
  (void)state;
  static const uint64_t rates[] = {1000000ull, 7777777ull, 10000000ull,
                                   1000000000ull};
  for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
    struct sft_rate b;
    uint64_t seed = 0x9e3779b97f4a7c15ull + i, end;
    uint64_t secs = rates[i] >= 1000000000ull ? 10 : 60;
    sft_rate_init(&b, rates[i], 0, 5 * NS);
    uint64_t sent = run_greedy(&b, 5 * NS, (5 + secs) * NS, &seed, &end);
    double bps = (double)sent * 8.0 / ((double)(end - 5 * NS) / 1e9);
    assert_within(bps, (double)rates[i], 0.01);
  }
}

static void test_unlimited(void **state) {
  (void)state;
  struct sft_rate b;
  uint64_t at = 7;
  sft_rate_init(&b, 0, 0, 100);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(sft_rate_take(&b, 100, UINT64_MAX, &at), 0);
  assert_int_equal(at, 100);
  assert_int_equal(sft_rate_avail(&b, 100), UINT64_MAX);
  assert_int_equal(sft_rate_get(&b), 0);
  assert_int_equal(sft_rate_burst(&b), SFT_RATE_BURST_MIN);
}

static void test_burst_cap(void **state) {
  (void)state;
  struct sft_rate b;
  uint64_t at;
  /* 8 Mbit/s = 1 MB/s: auto burst = max(64 KiB, 10 kB) = 64 KiB. */
  sft_rate_init(&b, 8000000, 0, 0);
  assert_int_equal(sft_rate_burst(&b), 64 * KIB);
  assert_int_equal(sft_rate_avail(&b, 0), 64 * KIB);
  /* An hour idle still holds one burst, not an hour's worth. */
  uint64_t t = 3600 * NS;
  assert_int_equal(sft_rate_avail(&b, t), 64 * KIB);
  assert_int_equal(sft_rate_take(&b, t, 64 * KIB, &at), 0);
  assert_int_equal(sft_rate_avail(&b, t), 0);
  /* one byte = 8 bits at 8e6 bit/s = 1000 ns */
  assert_int_equal(sft_rate_take(&b, t, 1, &at), SFT_ERR_AGAIN);
  assert_int_equal(at, t + 1000);
  assert_int_equal(sft_rate_take(&b, t + 999, 1, &at), SFT_ERR_AGAIN);
  assert_int_equal(at, t + 1000);
  assert_int_equal(sft_rate_take(&b, t + 1000, 1, &at), 0);
  /* A partly drained bucket refills to the burst, not beyond. */
  assert_int_equal(sft_rate_take(&b, 2 * t, 1024, &at), 0);
  assert_int_equal(sft_rate_avail(&b, 3 * t), 64 * KIB);

  /* 1 Gbit/s: auto burst is 10 ms = 1.25 MB. */
  sft_rate_init(&b, 1000000000ull, 0, 0);
  assert_int_equal(sft_rate_burst(&b), 1250000);
  /* explicit burst */
  sft_rate_init(&b, 1000000000ull, 4096, 0);
  assert_int_equal(sft_rate_burst(&b), 4096);
  assert_int_equal(sft_rate_avail(&b, 10 * NS), 4096);
}

static void test_larger_than_burst(void **state) {
  (void)state;
  struct sft_rate b;
  uint64_t at;
  sft_rate_init(&b, 8000000, 0, 0); /* 1 MB/s, burst 64 KiB */
  /* Full bucket: a 1 MiB request passes at once and leaves a debt. */
  assert_int_equal(sft_rate_take(&b, 0, MIB, &at), 0);
  assert_int_equal(sft_rate_avail(&b, 0), 0);
  /* debt = 1 MiB - 64 KiB; one more byte after that: (debt + 1) us */
  uint64_t debt = MIB - 64 * KIB;
  assert_int_equal(sft_rate_take(&b, 0, 1, &at), SFT_ERR_AGAIN);
  assert_int_equal(at, (debt + 1) * 1000);
  /* Another big request waits for a FULL bucket: debt + burst. */
  assert_int_equal(sft_rate_check(&b, 0, MIB, &at), SFT_ERR_AGAIN);
  assert_int_equal(at, (debt + 64 * KIB) * 1000);
  assert_int_equal(sft_rate_take(&b, at - 1, MIB, NULL), SFT_ERR_AGAIN);
  assert_int_equal(sft_rate_take(&b, at, MIB, NULL), 0);
  /* A partly filled bucket refuses a big request: nothing consumed. */
  uint64_t t = at + 32 * KIB * 1000 + 1000 * debt; /* debt repaid + 32 KiB */
  assert_int_equal(sft_rate_avail(&b, t), 32 * KIB);
  assert_int_equal(sft_rate_take(&b, t, MIB, &at), SFT_ERR_AGAIN);
  assert_int_equal(at, t + 32 * KIB * 1000);
  assert_int_equal(sft_rate_avail(&b, t), 32 * KIB);
}

static void test_rate_change(void **state) {
  (void)state;
  struct sft_rate b;
  uint64_t seed = 42, end, at;
  sft_rate_init(&b, 10000000ull, 0, 0);
  uint64_t s1 = run_greedy(&b, 0, 20 * NS, &seed, &end);
  assert_within((double)s1 * 8 / ((double)end / 1e9), 10e6, 0.01);
  sft_rate_set(&b, 100000000ull, end);
  assert_int_equal(sft_rate_get(&b), 100000000ull);
  assert_int_equal(sft_rate_burst(&b), 125000); /* auto follows the rate */
  uint64_t t0 = end;
  uint64_t s2 = run_greedy(&b, t0, t0 + 10 * NS, &seed, &end);
  assert_within((double)s2 * 8 / ((double)(end - t0) / 1e9), 100e6, 0.01);

  /* Accounting survives the change: tokens earned at the old rate stay. */
  sft_rate_init(&b, 8000000, 0, 0);
  assert_int_equal(sft_rate_take(&b, 0, 64 * KIB, &at), 0);
  /* 10 ms at 1 MB/s = 10000 bytes earned, then the rate doubles */
  sft_rate_set(&b, 16000000, 10000000);
  assert_int_equal(sft_rate_avail(&b, 10000000), 10000);
  /* 10 ms more at 2 MB/s = 20000 bytes */
  assert_int_equal(sft_rate_avail(&b, 20000000), 30000);
  /* Lowering the burst caps stored tokens. */
  sft_rate_init(&b, 800000000ull, 0, 0); /* burst 1e6 bytes */
  assert_int_equal(sft_rate_avail(&b, 0), 1000000);
  sft_rate_set(&b, 8000000, 0); /* burst back to 64 KiB */
  assert_int_equal(sft_rate_avail(&b, 0), 64 * KIB);
  /* Debt survives a change; to unlimited and back starts full. */
  assert_int_equal(sft_rate_take(&b, 0, MIB, NULL), 0);
  sft_rate_set(&b, 16000000, 0);
  assert_int_equal(sft_rate_take(&b, 0, 1, &at), SFT_ERR_AGAIN);
  assert_int_equal(at, (MIB - 64 * KIB + 1) * 500);
  sft_rate_set(&b, 0, 0);
  assert_int_equal(sft_rate_take(&b, 0, MIB, NULL), 0);
  sft_rate_set(&b, 8000000, 0);
  assert_int_equal(sft_rate_avail(&b, 0), 64 * KIB);
}

static void test_extremes(void **state) {
  (void)state;
  struct sft_rate b;
  uint64_t at;
  /* Huge rate, huge sizes, huge times: nothing overflows. */
  sft_rate_init(&b, UINT64_MAX, 0, 0);
  assert_int_equal(sft_rate_burst(&b), UINT64_MAX / 800);
  assert_int_equal(sft_rate_take(&b, 0, UINT64_MAX, &at), 0);
  assert_int_equal(sft_rate_take(&b, 0, UINT64_MAX, &at), SFT_ERR_AGAIN);
  assert_true(at > 0 && at < UINT64_MAX);
  assert_int_equal(sft_rate_take(&b, UINT64_MAX, UINT64_MAX, &at), 0);
  assert_int_equal(sft_rate_avail(&b, UINT64_MAX), 0);

  /* Tiny rate, huge burst: the wait saturates at UINT64_MAX. */
  sft_rate_init(&b, 1, UINT64_MAX, 0);
  assert_int_equal(sft_rate_avail(&b, 0), UINT64_MAX);
  assert_int_equal(sft_rate_take(&b, 0, UINT64_MAX, NULL), 0);
  assert_int_equal(sft_rate_take(&b, 0, 1, &at), SFT_ERR_AGAIN);
  assert_int_equal(at, 8 * NS); /* one byte at 1 bit/s */
  assert_int_equal(sft_rate_take(&b, 0, UINT64_MAX, &at), SFT_ERR_AGAIN);
  assert_int_equal(at, UINT64_MAX);
  /* A full idle refill over the whole time range. */
  sft_rate_init(&b, UINT64_MAX, 1, 0);
  assert_int_equal(sft_rate_take(&b, 0, 1, NULL), 0);
  assert_int_equal(sft_rate_avail(&b, UINT64_MAX), 1);

  /* Near the end of time, `at` saturates rather than wrapping. */
  sft_rate_init(&b, 8, 1, UINT64_MAX - 10);
  assert_int_equal(sft_rate_take(&b, UINT64_MAX - 10, 1, NULL), 0);
  assert_int_equal(sft_rate_take(&b, UINT64_MAX - 10, 1, &at), SFT_ERR_AGAIN);
  assert_int_equal(at, UINT64_MAX);

  /* Time going backwards earns nothing and is clamped. */
  sft_rate_init(&b, 8000000, 0, 10 * NS);
  assert_int_equal(sft_rate_take(&b, 10 * NS, 64 * KIB, NULL), 0);
  assert_int_equal(sft_rate_take(&b, 1 * NS, 1, &at), SFT_ERR_AGAIN);
  assert_int_equal(at, 10 * NS + 1000);
  assert_int_equal(sft_rate_avail(&b, 0), 0);

  /* Zero bytes always pass. */
  assert_int_equal(sft_rate_take(&b, 10 * NS, 0, &at), 0);
  assert_int_equal(at, 10 * NS);
}

/* Hierarchical use as the header describes: check both, then take both. */
static void test_hierarchy(void **state) {
  (void)state;
  struct sft_rate global, per[2];
  uint64_t sent[2] = {0, 0}, now = 0;
  sft_rate_init(&global, 16000000, 0, 0); /* 2 MB/s */
  sft_rate_init(&per[0], 8000000, 0, 0);  /* 1 MB/s */
  sft_rate_init(&per[1], 80000000, 0, 0); /* 10 MB/s */
  while (now < 20 * NS) {
    uint64_t next = UINT64_MAX;
    for (int i = 0; i < 2; i++) {
      uint64_t a1, a2;
      int r1 = sft_rate_check(&global, now, 16 * KIB, &a1);
      int r2 = sft_rate_check(&per[i], now, 16 * KIB, &a2);
      if (r1 == 0 && r2 == 0) {
        assert_int_equal(sft_rate_take(&global, now, 16 * KIB, NULL), 0);
        assert_int_equal(sft_rate_take(&per[i], now, 16 * KIB, NULL), 0);
        sent[i] += 16 * KIB;
        next = now;
      } else {
        uint64_t a = a1 > a2 ? a1 : a2;
        if (a < next)
          next = a;
      }
    }
    now = next;
  }
  double s = (double)now / 1e9;
  assert_within((double)(sent[0] + sent[1]) / s, 2e6, 0.01);
  assert_within((double)sent[0] / s, 1e6, 0.01);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_long_run_average),
      cmocka_unit_test(test_unlimited),
      cmocka_unit_test(test_burst_cap),
      cmocka_unit_test(test_larger_than_burst),
      cmocka_unit_test(test_rate_change),
      cmocka_unit_test(test_extremes),
      cmocka_unit_test(test_hierarchy),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
