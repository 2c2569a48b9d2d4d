/* Tests of lib/adapt: the tuning rules and their hysteresis. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "sft/adapt.h"

#define MS 1000000ull
#define SEC (1000 * MS)
#define KIB 1024u
#define MIB (1024u * 1024u)
#define MBIT(x) ((uint64_t)(x)*1000000ull / 8) /* bytes/s */

static void test_chunk_table(void **state) {
  (void)state;
  /* RTT boundaries (strictly greater). */
  assert_int_equal(sft_adapt_chunk_size(0, 0, 0), 1 * MIB);
  assert_int_equal(sft_adapt_chunk_size(100 * MS, 0, 0), 1 * MIB);
  assert_int_equal(sft_adapt_chunk_size(100 * MS + 1, 0, 0), 256 * KIB);
  assert_int_equal(sft_adapt_chunk_size(200 * MS, 0, 0), 256 * KIB);
  assert_int_equal(sft_adapt_chunk_size(200 * MS + 1, 0, 0), 64 * KIB);
  /* Loss boundaries. */
  assert_int_equal(sft_adapt_chunk_size(10 * MS, 50000, 0), 1 * MIB);
  assert_int_equal(sft_adapt_chunk_size(10 * MS, 50001, 0), 256 * KIB);
  assert_int_equal(sft_adapt_chunk_size(10 * MS, 100000, 0), 256 * KIB);
  assert_int_equal(sft_adapt_chunk_size(10 * MS, 100001, 0), 64 * KIB);
  assert_int_equal(sft_adapt_chunk_size(10 * MS, 1000000, 0), 64 * KIB);
  /* Rate cap: one chunk per second at most, power of two, floor 64 KiB. */
  assert_int_equal(sft_adapt_chunk_size(10 * MS, 0, MBIT(1)), 64 * KIB);
  assert_int_equal(sft_adapt_chunk_size(10 * MS, 0, 1), 64 * KIB);
  assert_int_equal(sft_adapt_chunk_size(10 * MS, 0, MBIT(4)), 256 * KIB);
  assert_int_equal(sft_adapt_chunk_size(10 * MS, 0, 262143), 128 * KIB);
  assert_int_equal(sft_adapt_chunk_size(10 * MS, 0, 262144), 256 * KIB);
  assert_int_equal(sft_adapt_chunk_size(10 * MS, 0, 1048575), 512 * KIB);
  assert_int_equal(sft_adapt_chunk_size(10 * MS, 0, 1048576), 1 * MIB);
  assert_int_equal(sft_adapt_chunk_size(10 * MS, 0, MBIT(100)), 1 * MIB);
  assert_int_equal(sft_adapt_chunk_size(10 * MS, 0, UINT64_MAX), 1 * MIB);
  /* The cap never raises what the table chose. */
  assert_int_equal(sft_adapt_chunk_size(300 * MS, 0, MBIT(100)), 64 * KIB);
  /* Same RTT: 1 Mbit/s gives smaller chunks than 100 Mbit/s. */
  for (uint64_t rtt = 1; rtt <= 100; rtt += 33)
    assert_true(sft_adapt_chunk_size(rtt * MS, 1000, MBIT(1)) <
                sft_adapt_chunk_size(rtt * MS, 1000, MBIT(100)));
}

static void test_binomial(void **state) {
  (void)state;
  /* Reference values: sum_{i>t} C(n,i) p^i (1-p)^(n-i), from Python's
   * math.comb in double precision. */
  assert_true(fabs(sft_adapt_binom_tail(13, 0.1, 3) - 0.03416072092300002) <
              1e-12);
  assert_true(fabs(sft_adapt_binom_tail(20, 0.5, 10) - 0.41190147399902344) <
              1e-12);
  assert_true(fabs(sft_adapt_binom_tail(10, 0.01, 0) - 0.09561792499119552) <
              1e-12);
  assert_true(fabs(sft_adapt_binom_tail(12, 0.02, 2) - 0.0015370299834177) <
              1e-12);
  assert_true(fabs(sft_adapt_binom_tail(255, 0.3, 80) - 0.2901716155215557) <
              1e-9);
  /* Edges. */
  assert_true(sft_adapt_binom_tail(10, 0.5, 10) == 0.0);
  assert_true(sft_adapt_binom_tail(10, 0.5, 99) == 0.0);
  assert_true(sft_adapt_binom_tail(10, 0.0, 0) == 0.0);
  assert_true(sft_adapt_binom_tail(10, 1.0, 9) == 1.0);
  assert_true(sft_adapt_binom_tail(256, 0.5, 1) == 0.0); /* out of range */
  /* P(X > 0) = 1 - (1-p)^n. */
  assert_true(fabs(sft_adapt_binom_tail(7, 0.2, 0) - (1 - pow(0.8, 7))) <
              1e-12);
}

static void test_parity(void **state) {
  (void)state;
  /* 10+3: the values the header documents. */
  assert_int_equal(sft_adapt_parity(10, 3, 0), 0);
  assert_int_equal(sft_adapt_parity(10, 3, 4999), 0);
  assert_int_equal(sft_adapt_parity(10, 3, 5000), 1);
  assert_int_equal(sft_adapt_parity(10, 3, 10000), 1);
  assert_int_equal(sft_adapt_parity(10, 3, 20000), 2);
  assert_int_equal(sft_adapt_parity(10, 3, 30000), 2);
  assert_int_equal(sft_adapt_parity(10, 3, 50000), 3);
  assert_int_equal(sft_adapt_parity(10, 3, 300000), 3); /* capped */
  assert_int_equal(sft_adapt_parity(10, 3, 1000000), 3);
  assert_int_equal(sft_adapt_parity(10, 0, 300000), 0);
  /* Bad geometry. */
  assert_int_equal(sft_adapt_parity(0, 3, 50000), 0);
  assert_int_equal(sft_adapt_parity(250, 6, 50000), 0);
  /* Monotone in loss and capped, for several geometries; the choice meets
   * the target whenever it is below the cap, and one less would not. */
  static const uint32_t geo[][2] = {
      {10, 3}, {20, 6}, {4, 2}, {1, 8}, {200, 55}};
  for (size_t g = 0; g < sizeof(geo) / sizeof(geo[0]); g++) {
    uint32_t k = geo[g][0], m = geo[g][1], prev = 0;
    for (uint32_t loss = 0; loss <= 1000000; loss += 2500) {
      uint32_t p = sft_adapt_parity(k, m, loss);
      assert_true(p >= prev);
      assert_true(p <= m);
      if (loss >= 5000 && p < m)
        assert_true(sft_adapt_binom_tail(k + p, loss / 1e6, p) < 0.01);
      if (loss >= 5000 && p > 0)
        assert_true(sft_adapt_binom_tail(k + p - 1, loss / 1e6, p - 1) >= 0.01);
      prev = p;
    }
    assert_int_equal(prev, m);
  }
}

static void test_conns_and_windows(void **state) {
  (void)state;
  assert_int_equal(sft_adapt_conns(50 * MS, 10000, 4), 1);   /* x 0.5 */
  assert_int_equal(sft_adapt_conns(50 * MS, 100000, 4), 1);  /* x 5 */
  assert_int_equal(sft_adapt_conns(80 * MS, 99999, 4), 1);   /* x 7.99 */
  assert_int_equal(sft_adapt_conns(80 * MS, 100000, 4), 2);  /* x 8 */
  assert_int_equal(sft_adapt_conns(200 * MS, 50000, 4), 2);  /* x 10 */
  assert_int_equal(sft_adapt_conns(40 * MS, 300000, 4), 3);  /* x 12 */
  assert_int_equal(sft_adapt_conns(50 * MS, 300000, 4), 3);  /* x 15 */
  assert_int_equal(sft_adapt_conns(80 * MS, 200000, 4), 4);  /* x 16 */
  assert_int_equal(sft_adapt_conns(200 * MS, 300000, 4), 4); /* x 60 */
  assert_int_equal(sft_adapt_conns(200 * MS, 300000, 2), 2); /* capped */
  assert_int_equal(sft_adapt_conns(200 * MS, 300000, 0), 1);
  assert_int_equal(sft_adapt_conns(0, 300000, 4), 1); /* RTT unknown */
  assert_int_equal(sft_adapt_conns(UINT64_MAX, 1000000, 4), 4);

  /* Windows: 4 BDP / 2 BDP, powers of two, clamped. */
  assert_int_equal(sft_adapt_window(0, MBIT(100)), 16 * MIB);
  assert_int_equal(sft_adapt_window(100 * MS, 0), 16 * MIB);
  assert_int_equal(sft_adapt_window(100 * MS, MBIT(100)), 16 * MIB);
  /* 1 Gbit/s x 200 ms = 25 MB; x4 = 100 MB -> 128 MiB */
  assert_int_equal(sft_adapt_window(200 * MS, MBIT(1000)), 128ull * MIB);
  assert_int_equal(sft_adapt_window(500 * MS, MBIT(10000)), 256ull * MIB);
  assert_int_equal(sft_adapt_window(UINT64_MAX, UINT64_MAX), 256ull * MIB);
  /* 50 ms x 100 Mbit/s = 625 kB; x2 = 1.25 MB -> 2 MiB */
  assert_int_equal(sft_adapt_sockbuf(50 * MS, MBIT(100)), 2 * MIB);
  assert_int_equal(sft_adapt_sockbuf(1 * MS, MBIT(1)), 1 * MIB);
  assert_int_equal(sft_adapt_sockbuf(200 * MS, MBIT(10000)), 64ull * MIB);
  /* Monotone in RTT. */
  for (uint64_t r = 1; r < 1000; r += 7)
    assert_true(sft_adapt_window(r * MS, MBIT(500)) <=
                sft_adapt_window((r + 7) * MS, MBIT(500)));
}

static void test_init_and_first_update(void **state) {
  struct sft_adapt a;
  struct sft_adapt_config cfg;
  struct sft_adapt_decision d;
  struct sft_adapt_sample s = {0};
  (void)state;
  assert_int_equal(sft_adapt_init(NULL, NULL), SFT_ERR_INVAL);
  sft_adapt_config_default(&cfg);
  cfg.k = 0;
  assert_int_equal(sft_adapt_init(&a, &cfg), SFT_ERR_INVAL);
  sft_adapt_config_default(&cfg);
  cfg.k = 250;
  cfg.m = 6;
  assert_int_equal(sft_adapt_init(&a, &cfg), SFT_ERR_INVAL);
  sft_adapt_config_default(&cfg);
  cfg.max_conns = SFT_ADAPT_MAX_CONNS + 1;
  assert_int_equal(sft_adapt_init(&a, &cfg), SFT_ERR_INVAL);
  sft_adapt_config_default(&cfg);
  cfg.initial.parity = 4;
  assert_int_equal(sft_adapt_init(&a, &cfg), SFT_ERR_INVAL);
  sft_adapt_config_default(&cfg);
  cfg.initial.chunk_size = 4096;
  assert_int_equal(sft_adapt_init(&a, &cfg), SFT_ERR_INVAL);

  assert_int_equal(sft_adapt_init(&a, NULL), 0);
  sft_adapt_get(&a, &d);
  assert_int_equal(d.chunk_size, 1 * MIB);
  assert_int_equal(d.parity, 3);
  assert_int_equal(d.conns, 1);
  assert_int_equal(d.window, 16 * MIB);
  s.loss_ppm = 1000001;
  assert_int_equal(sft_adapt_update(&a, &s, 0), SFT_ERR_INVAL);
  assert_int_equal(sft_adapt_update(&a, NULL, 0), SFT_ERR_INVAL);

  /* First sample replaces the placeholder at once (even relaxing). */
  s.srtt_ns = 250 * MS;
  s.loss_ppm = 0;
  s.delivery_rate = MBIT(1000);
  int rc = sft_adapt_update(&a, &s, 0);
  assert_int_equal(rc, SFT_ADAPT_CHANGED_CHUNK | SFT_ADAPT_CHANGED_PARITY |
                           SFT_ADAPT_CHANGED_WINDOW);
  sft_adapt_get(&a, &d);
  assert_int_equal(d.chunk_size, 64 * KIB);
  assert_int_equal(d.parity, 0);
  assert_int_equal(d.conns, 1);
  assert_int_equal(d.window, 128ull * MIB); /* 31 MB BDP x4 = 125 MB */
  assert_int_equal(d.sockbuf, 64ull * MIB);
  /* Same sample again: nothing changes. */
  assert_int_equal(sft_adapt_update(&a, &s, 1 * SEC), 0);
}

/* Feeds |s| every 100 ms from *now for |dur|; returns the number of update
 * calls that changed the chunk size; *first_change gets the time of the
 * first change (0 if none). */
static unsigned run(struct sft_adapt *a, const struct sft_adapt_sample *s,
                    uint64_t *now, uint64_t dur, int bit,
                    uint64_t *first_change) {
  unsigned n = 0;
  uint64_t end = *now + dur;
  if (first_change)
    *first_change = 0;
  while (*now < end) {
    *now += 100 * MS;
    int rc = sft_adapt_update(a, s, *now);
    assert_true(rc >= 0);
    if (rc & bit) {
      n++;
      if (first_change && !*first_change)
        *first_change = *now;
    }
  }
  return n;
}

static void test_hysteresis(void **state) {
  struct sft_adapt a;
  struct sft_adapt_decision d;
  struct sft_adapt_sample s = {.srtt_ns = 40 * MS, .delivery_rate = MBIT(100)};
  uint64_t now = 0, t0, tc;
  (void)state;
  assert_int_equal(sft_adapt_init(&a, NULL), 0);
  run(&a, &s, &now, 2 * SEC, 0, NULL);
  sft_adapt_get(&a, &d);
  assert_int_equal(d.chunk_size, 1 * MIB);
  assert_int_equal(d.parity, 0);

  /* Loss jumps to 8 %: safer decisions follow within a few samples. */
  s.loss_ppm = 80000;
  t0 = now;
  assert_int_equal(run(&a, &s, &now, 2 * SEC, SFT_ADAPT_CHANGED_CHUNK, &tc), 1);
  assert_true(tc - t0 <= 500 * MS);
  sft_adapt_get(&a, &d);
  assert_int_equal(d.chunk_size, 256 * KIB);
  assert_int_equal(d.parity, 3);

  /* Noise across the 5 % threshold (3.5 % / 6.5 %, mean 5 %): no flip. */
  for (int i = 0; i < 300; i++) {
    s.loss_ppm = (i & 1) ? 65000 : 35000;
    now += 100 * MS;
    assert_int_equal(sft_adapt_update(&a, &s, now) & SFT_ADAPT_CHANGED_CHUNK,
                     0);
  }
  sft_adapt_get(&a, &d);
  assert_int_equal(d.chunk_size, 256 * KIB);

  /* 4.5 %: below the table's 5 % but inside the dead band (x1.25 = 5.6 %):
   * stays. */
  s.loss_ppm = 45000;
  assert_int_equal(run(&a, &s, &now, 20 * SEC, SFT_ADAPT_CHANGED_CHUNK, NULL),
                   0);
  /* 1 %: relaxes, but only after the 3 s hold. */
  s.loss_ppm = 10000;
  t0 = now;
  assert_int_equal(run(&a, &s, &now, 10 * SEC, SFT_ADAPT_CHANGED_CHUNK, &tc),
                   1);
  assert_true(tc - t0 >= 3 * SEC);
  assert_true(tc - t0 <= 4 * SEC);
  sft_adapt_get(&a, &d);
  assert_int_equal(d.chunk_size, 1 * MIB);
  assert_int_equal(d.parity, 1);

  /* A relaxation is cancelled by a relapse during the hold. */
  s.loss_ppm = 80000;
  run(&a, &s, &now, 2 * SEC, 0, NULL);
  sft_adapt_get(&a, &d);
  assert_int_equal(d.chunk_size, 256 * KIB);
  s.loss_ppm = 0;
  run(&a, &s, &now, 1500 * MS, 0, NULL);
  s.loss_ppm = 80000;
  run(&a, &s, &now, 300 * MS, 0, NULL);
  s.loss_ppm = 0;
  t0 = now;
  assert_int_equal(run(&a, &s, &now, 10 * SEC, SFT_ADAPT_CHANGED_CHUNK, &tc),
                   1);
  assert_true(tc - t0 >= 3 * SEC);
}

static void test_rate_drives_chunk(void **state) {
  struct sft_adapt lo, hi;
  struct sft_adapt_decision dl, dh;
  struct sft_adapt_sample s = {.srtt_ns = 30 * MS};
  uint64_t now = 0;
  (void)state;
  assert_int_equal(sft_adapt_init(&lo, NULL), 0);
  assert_int_equal(sft_adapt_init(&hi, NULL), 0);
  for (int i = 0; i < 50; i++) {
    now += 100 * MS;
    s.delivery_rate = MBIT(1);
    assert_true(sft_adapt_update(&lo, &s, now) >= 0);
    s.delivery_rate = MBIT(100);
    assert_true(sft_adapt_update(&hi, &s, now) >= 0);
  }
  sft_adapt_get(&lo, &dl);
  sft_adapt_get(&hi, &dh);
  assert_int_equal(dl.chunk_size, 64 * KIB);
  assert_int_equal(dh.chunk_size, 1 * MIB);
  assert_true(dl.chunk_size < dh.chunk_size);

  /* A configured 1 Mbit/s link estimate shrinks chunks even if the
   * delivery rate says more; windows follow the larger rate. */
  struct sft_adapt a;
  struct sft_adapt_decision d;
  assert_int_equal(sft_adapt_init(&a, NULL), 0);
  s.srtt_ns = 200 * MS;
  s.delivery_rate = MBIT(1000);
  s.link_rate = MBIT(1);
  assert_true(sft_adapt_update(&a, &s, 0) >= 0);
  sft_adapt_get(&a, &d);
  assert_int_equal(d.chunk_size, 64 * KIB);
  assert_int_equal(d.window, 128ull * MIB);

  /* Conns rise at once with RTT x loss; fall only after the hold. */
  assert_int_equal(sft_adapt_init(&a, NULL), 0);
  s.link_rate = 0;
  s.loss_ppm = 0;
  now = 0;
  run(&a, &s, &now, 1 * SEC, 0, NULL);
  sft_adapt_get(&a, &d);
  assert_int_equal(d.conns, 1);
  s.loss_ppm = 100000; /* 200 ms x 10 % = 20 */
  run(&a, &s, &now, 4 * SEC, 0, NULL);
  sft_adapt_get(&a, &d);
  assert_int_equal(d.conns, 4);
  s.loss_ppm = 0;
  uint64_t t0 = now, tc;
  assert_true(run(&a, &s, &now, 20 * SEC, SFT_ADAPT_CHANGED_CONNS, &tc) >= 1);
  assert_true(tc - t0 >= 3 * SEC);
  sft_adapt_get(&a, &d);
  assert_int_equal(d.conns, 1);

  /* Start-up overshoot into a drop-tail queue on a clean 50 ms link: a
   * burst of heavy loss, then ~1 %. The long-run loss keeps 1 connection
   * (the per-sample EWMA alone would have asked for 3 at once). */
  assert_int_equal(sft_adapt_init(&a, NULL), 0);
  s.srtt_ns = 50 * MS;
  now = 0;
  s.loss_ppm = 400000;
  run(&a, &s, &now, 300 * MS, 0, NULL);
  s.loss_ppm = 10000;
  assert_int_equal(run(&a, &s, &now, 10 * SEC, SFT_ADAPT_CHANGED_CONNS, NULL),
                   0);
  sft_adapt_get(&a, &d);
  assert_int_equal(d.conns, 1);

  /* A lossy link from the first sample (50 ms, 30 %, x 15): 1 connection
   * until SFT_ADAPT_CONNS_MIN_SAMPLES samples, then 3. */
  assert_int_equal(sft_adapt_init(&a, NULL), 0);
  now = 0;
  s.loss_ppm = 300000;
  double ll = -1.0;
  for (int i = 1; i < SFT_ADAPT_CONNS_MIN_SAMPLES; i++) {
    assert_true(sft_adapt_update(&a, &s, now) >= 0);
    now += 100 * MS;
    sft_adapt_get(&a, &d);
    assert_int_equal(d.conns, 1);
    assert_int_equal(sft_adapt_long_loss(&a, &ll), 0);
  }
  assert_true(sft_adapt_update(&a, &s, now) >= 0);
  sft_adapt_get(&a, &d);
  assert_int_equal(d.conns, 3);
  assert_int_equal(sft_adapt_long_loss(&a, &ll), 1);
  assert_true(ll > 0.2999 && ll < 0.3001);
  assert_int_equal(sft_adapt_long_loss(NULL, &ll), 0);

  /* 10 % loss on a 50 ms path whose queue one connection keeps full (srtt
   * 90 ms): x is 5 from the path's own RTT (min_rtt), not 9 from srtt, so
   * 1 connection stays; without a min_rtt, srtt decides (2). */
  assert_int_equal(sft_adapt_init(&a, NULL), 0);
  now = 0;
  s.srtt_ns = 90 * MS;
  s.min_rtt_ns = 50 * MS;
  s.loss_ppm = 100000;
  assert_int_equal(run(&a, &s, &now, 10 * SEC, SFT_ADAPT_CHANGED_CONNS, NULL),
                   0);
  sft_adapt_get(&a, &d);
  assert_int_equal(d.conns, 1);
  /* a later, higher min_rtt sample does not raise the base */
  s.min_rtt_ns = 200 * MS;
  assert_int_equal(run(&a, &s, &now, 2 * SEC, SFT_ADAPT_CHANGED_CONNS, NULL),
                   0);
  assert_int_equal(sft_adapt_init(&a, NULL), 0);
  now = 0;
  s.min_rtt_ns = 0;
  run(&a, &s, &now, 2 * SEC, 0, NULL);
  sft_adapt_get(&a, &d);
  assert_int_equal(d.conns, 2);
  /* and 30 % on the same path still gets 3 (x 15) */
  assert_int_equal(sft_adapt_init(&a, NULL), 0);
  now = 0;
  s.min_rtt_ns = 50 * MS;
  s.loss_ppm = 300000;
  run(&a, &s, &now, 2 * SEC, 0, NULL);
  sft_adapt_get(&a, &d);
  assert_int_equal(d.conns, 3);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_chunk_table),
      cmocka_unit_test(test_binomial),
      cmocka_unit_test(test_parity),
      cmocka_unit_test(test_conns_and_windows),
      cmocka_unit_test(test_init_and_first_update),
      cmocka_unit_test(test_hysteresis),
      cmocka_unit_test(test_rate_drives_chunk),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
