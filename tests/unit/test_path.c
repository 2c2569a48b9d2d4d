/* Tests of lib/path: path metrics, status machine, placement. Time is
 * simulated nanoseconds; samples come every 100 ms unless said otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "sft/path.h"

#define MS 1000000ull
#define SEC (1000 * MS)
#define MB 1000000ull

/* A simulated connection: cumulative counters as ngtcp2 reports them. */
struct sim {
  struct sft_path_sample s;
};

/* One 100-packet interval with |lost| of them lost; acks progress unless
 * |stalled|. */
static void step(struct sft_path_table *t, unsigned id, struct sim *c,
                 uint64_t now, uint32_t sent, uint32_t lost, int stalled) {
  c->s.pkts_sent += sent;
  c->s.pkts_lost += lost;
  if (!stalled)
    c->s.bytes_acked += (uint64_t)(sent - lost) * 1200;
  c->s.bytes_in_flight = 64 * 1024;
  assert_int_equal(sft_path_sample(t, id, now, &c->s), 0);
}

static int status(const struct sft_path_table *t, unsigned id) {
  struct sft_path_info in;
  assert_int_equal(sft_path_get(t, id, &in), 0);
  return in.status;
}

static void init_paths(struct sft_path_table *t, unsigned n,
                       const uint64_t *rtt_ms, const uint64_t *rate_mb,
                       struct sim *c) {
  assert_int_equal(sft_path_init(t, NULL), 0);
  for (unsigned i = 0; i < n; i++) {
    unsigned id;
    assert_int_equal(sft_path_add(t, 0, &id), 0);
    assert_int_equal(id, i);
    memset(&c[i], 0, sizeof(c[i]));
    c[i].s.srtt_ns = rtt_ms[i] * MS;
    c[i].s.rttvar_ns = rtt_ms[i] * MS / 4;
    c[i].s.delivery_rate = rate_mb[i] * MB;
    step(t, i, &c[i], 0, 100, 0, 0);
  }
}

/* Callback log. */
struct log {
  unsigned n;
  unsigned id[64];
  int from[64], to[64], why[64];
};
static void on_change(void *ud, unsigned id, int o, int n, int why,
                      uint64_t now) {
  struct log *l = ud;
  (void)now;
  if (l->n < 64) {
    l->id[l->n] = id;
    l->from[l->n] = o;
    l->to[l->n] = n;
    l->why[l->n] = why;
  }
  l->n++;
}

static void test_config_and_bounds(void **state) {
  struct sft_path_table t;
  struct sft_path_config cfg;
  struct sft_path_info in;
  unsigned id;
  (void)state;
  assert_int_equal(sft_path_init(NULL, NULL), SFT_ERR_INVAL);
  sft_path_config_default(&cfg);
  cfg.degrade_exit_ppm = cfg.degrade_enter_ppm + 1;
  assert_int_equal(sft_path_init(&t, &cfg), SFT_ERR_INVAL);
  sft_path_config_default(&cfg);
  cfg.fail_enter_ppm = SFT_PATH_PPM + 1;
  assert_int_equal(sft_path_init(&t, &cfg), SFT_ERR_INVAL);
  sft_path_config_default(&cfg);
  cfg.ack_timeout_ptos = 0;
  assert_int_equal(sft_path_init(&t, &cfg), SFT_ERR_INVAL);
  sft_path_config_default(&cfg);
  cfg.probe_min_ns = cfg.probe_max_ns + 1;
  assert_int_equal(sft_path_init(&t, &cfg), SFT_ERR_INVAL);

  assert_int_equal(sft_path_init(&t, NULL), 0);
  assert_int_equal(sft_path_pick(&t, SFT_SCHED_NORMAL, 0, 1000, &id),
                   SFT_ERR_AGAIN);
  for (unsigned i = 0; i < SFT_PATH_MAX; i++) {
    assert_int_equal(sft_path_add(&t, 0, &id), 0);
    assert_int_equal(id, i);
  }
  assert_int_equal(sft_path_add(&t, 0, &id), SFT_ERR_FULL);
  assert_int_equal(sft_path_count(&t), SFT_PATH_MAX);
  assert_int_equal(sft_path_remove(&t, 3), 0);
  assert_int_equal(sft_path_remove(&t, 3), SFT_ERR_NOT_FOUND);
  assert_int_equal(sft_path_get(&t, 3, &in), SFT_ERR_NOT_FOUND);
  assert_int_equal(sft_path_add(&t, 0, &id), 0);
  assert_int_equal(id, 3); /* lowest free id is reused */

  struct sft_path_sample s = {0};
  assert_int_equal(sft_path_sample(&t, SFT_PATH_MAX, 0, &s), SFT_ERR_NOT_FOUND);
  assert_int_equal(sft_path_sample(&t, UINT32_MAX, 0, &s), SFT_ERR_NOT_FOUND);
  assert_int_equal(sft_path_sample(&t, 0, 0, NULL), SFT_ERR_INVAL);
  assert_int_equal(sft_path_set_failed(&t, SFT_PATH_MAX, 0), SFT_ERR_NOT_FOUND);
  assert_int_equal(sft_path_get(&t, SFT_PATH_MAX, &in), SFT_ERR_NOT_FOUND);
  assert_int_equal(sft_path_want_probe(&t, SFT_PATH_MAX, 0), 0);
  assert_int_equal(sft_path_remove(&t, SFT_PATH_MAX), SFT_ERR_NOT_FOUND);
  assert_int_equal(sft_path_pick(&t, 3, 0, 1, &id), SFT_ERR_INVAL);
  assert_int_equal(sft_path_pick(&t, -1, 0, 1, &id), SFT_ERR_INVAL);
  assert_int_equal(sft_path_pick(&t, SFT_SCHED_HIGH, 0, 0, &id), SFT_ERR_INVAL);
  assert_int_equal(sft_path_pick(&t, SFT_SCHED_HIGH, 0, 1, NULL),
                   SFT_ERR_INVAL);
  uint32_t counts[SFT_PATH_MAX + 1] = {0};
  assert_int_equal(sft_path_pick_parity(&t, counts, SFT_PATH_MAX + 1, 0, &id),
                   SFT_ERR_INVAL);
  assert_int_equal(sft_path_pick_parity(&t, NULL, 1, 0, &id), SFT_ERR_INVAL);
  assert_int_equal(sft_path_pick_parity(&t, NULL, 0, 0, &id), 0);
  uint64_t at;
  assert_int_equal(sft_path_next_probe(&t, &at), SFT_ERR_EMPTY);
  assert_int_equal(sft_path_seq(NULL), 0);
  assert_string_equal(sft_path_status_name(SFT_PATH_DEGRADED), "degraded");
  assert_null(sft_path_status_name(3));
}

static void test_degrade_hysteresis_and_window(void **state) {
  struct sft_path_table t;
  struct sft_path_config cfg;
  struct log lg = {0};
  struct sim c = {0};
  struct sft_path_info in;
  unsigned id;
  uint64_t now = 0;
  (void)state;
  sft_path_config_default(&cfg);
  cfg.on_change = on_change;
  cfg.ud = &lg;
  assert_int_equal(sft_path_init(&t, &cfg), 0);
  assert_int_equal(sft_path_add(&t, 0, &id), 0);
  c.s.srtt_ns = 50 * MS;

  /* Few packets: 50 % loss of 10 packets is not judged. */
  step(&t, id, &c, now += 100 * MS, 10, 5, 0);
  assert_int_equal(status(&t, id), SFT_PATH_ACTIVE);
  assert_int_equal(sft_path_get(&t, id, &in), 0);
  assert_int_equal(in.loss_judged, 0);
  /* 16 clean samples push that out of the window. */
  for (int i = 0; i < SFT_PATH_LOSS_WINDOW; i++)
    step(&t, id, &c, now += 100 * MS, 100, 0, 0);
  assert_int_equal(sft_path_get(&t, id, &in), 0);
  assert_int_equal(in.loss_ppm, 0);
  assert_int_equal(in.loss_judged, 1);

  /* 25 % loss: Degraded at once, reported. */
  uint64_t seq = sft_path_seq(&t);
  for (int i = 0; i < SFT_PATH_LOSS_WINDOW; i++)
    step(&t, id, &c, now += 100 * MS, 100, 25, 0);
  assert_int_equal(status(&t, id), SFT_PATH_DEGRADED);
  assert_int_equal(sft_path_seq(&t), seq + 1);
  assert_int_equal(lg.n, 1);
  assert_int_equal(lg.from[0], SFT_PATH_ACTIVE);
  assert_int_equal(lg.to[0], SFT_PATH_DEGRADED);
  assert_int_equal(lg.why[0], SFT_PATH_R_LOSS);

  /* 18 %: under the entry threshold but above the exit: stays Degraded. */
  for (int i = 0; i < 100; i++)
    step(&t, id, &c, now += 100 * MS, 100, 18, 0);
  assert_int_equal(status(&t, id), SFT_PATH_DEGRADED);
  assert_int_equal(lg.n, 1);

  /* 5 %: the window needs time to fall below 15 %, then it must hold for
   * 1 s before Active. */
  uint64_t below = 0;
  while (status(&t, id) == SFT_PATH_DEGRADED) {
    step(&t, id, &c, now += 100 * MS, 100, 5, 0);
    assert_int_equal(sft_path_get(&t, id, &in), 0);
    if (in.loss_ppm < cfg.degrade_exit_ppm && !below)
      below = now;
    assert_true(now < 100 * SEC); /* guard: must end */
  }
  assert_true(below != 0);
  assert_true(now - below >= cfg.recover_ns);
  assert_true(now - below < cfg.recover_ns + 200 * MS);
  assert_int_equal(lg.n, 2);
  assert_int_equal(lg.why[1], SFT_PATH_R_RECOVERED);

  /* Noise around the threshold: alternating 14 % / 26 % samples keep the
   * windowed loss near 20 %: at most one change (into Degraded), no
   * flapping. */
  unsigned before = lg.n;
  for (int i = 0; i < 400; i++)
    step(&t, id, &c, now += 100 * MS, 100, (i & 1) ? 26 : 14, 0);
  assert_true(lg.n - before <= 1);
}

static void test_fail_on_loss_and_recover(void **state) {
  struct sft_path_table t;
  struct sim c = {0};
  struct sft_path_info in;
  unsigned id;
  uint64_t now = 0, at;
  (void)state;
  assert_int_equal(sft_path_init(&t, NULL), 0);
  assert_int_equal(sft_path_add(&t, 0, &id), 0);
  c.s.srtt_ns = 20 * MS;
  /* 60 % loss over enough packets: Failed straight from Active. */
  step(&t, id, &c, now += 100 * MS, 100, 60, 0);
  assert_int_equal(status(&t, id), SFT_PATH_FAILED);
  assert_int_equal(sft_path_get(&t, id, &in), 0);
  assert_int_equal(in.reason, SFT_PATH_R_LOSS);
  assert_int_equal(in.loss_judged, 0); /* window restarted */
  assert_int_equal(sft_path_usable(&t), 0);
  assert_int_equal(sft_path_pick(&t, SFT_SCHED_CRITICAL, now, 1, &id),
                   SFT_ERR_AGAIN);

  /* Probing: due at once, then 100, 200, 400 ms ... capped at 2 s. */
  uint64_t t0 = now;
  assert_int_equal(sft_path_next_probe(&t, &at), 0);
  assert_int_equal(at, t0);
  assert_int_equal(sft_path_want_probe(&t, id, t0), 1);
  assert_int_equal(sft_path_want_probe(&t, id, t0), 0);
  assert_int_equal(sft_path_want_probe(&t, id, t0 + 100 * MS - 1), 0);
  assert_int_equal(sft_path_want_probe(&t, id, t0 + 100 * MS), 1);
  assert_int_equal(sft_path_next_probe(&t, &at), 0);
  assert_int_equal(at, t0 + 300 * MS);
  uint64_t p = t0 + 300 * MS, iv = 200 * MS;
  for (int i = 0; i < 8; i++) {
    assert_int_equal(sft_path_want_probe(&t, id, p - 1), 0);
    assert_int_equal(sft_path_want_probe(&t, id, p), 1);
    iv = iv * 2 > 2 * SEC ? 2 * SEC : iv * 2;
    p += iv;
  }
  assert_int_equal(sft_path_next_probe(&t, &at), 0);
  assert_int_equal(at - (p - iv), 2 * SEC);

  /* Still losing 40 % (above fail_exit 35 %) with acks: stays Failed. */
  now = p;
  for (int i = 0; i < 30; i++)
    step(&t, id, &c, now += 100 * MS, 100, 40, 0);
  assert_int_equal(status(&t, id), SFT_PATH_FAILED);
  /* 25 %: recovers, but only to Degraded, 1 s after the window fell
   * below 35 %. */
  uint64_t ok = 0;
  for (int i = 0; i < 60 && status(&t, id) == SFT_PATH_FAILED; i++) {
    step(&t, id, &c, now += 100 * MS, 100, 25, 0);
    assert_int_equal(sft_path_get(&t, id, &in), 0);
    if (!ok && in.loss_ppm < 350000)
      ok = now;
  }
  assert_int_equal(status(&t, id), SFT_PATH_DEGRADED);
  assert_true(now - ok >= 1 * SEC);
  assert_int_equal(sft_path_get(&t, id, &in), 0);
  assert_int_equal(in.reason, SFT_PATH_R_RECOVERED);
  assert_int_equal(sft_path_want_probe(&t, id, now + 100 * SEC), 0);
  assert_int_equal(sft_path_next_probe(&t, &at), SFT_ERR_EMPTY);
}

static void test_ack_timeout(void **state) {
  struct sft_path_table t;
  struct sim c = {0};
  struct sft_path_info in;
  unsigned id;
  uint64_t now = 0;
  (void)state;
  assert_int_equal(sft_path_init(&t, NULL), 0);
  assert_int_equal(sft_path_add(&t, 0, &id), 0);
  c.s.srtt_ns = 100 * MS;
  c.s.pto_ns = 200 * MS; /* 3 PTOs = 600 ms */
  step(&t, id, &c, now += 100 * MS, 100, 0, 0);
  uint64_t last = now;

  /* Nothing outstanding and no acks: idle, not failed. */
  c.s.bytes_in_flight = 0;
  for (int i = 0; i < 50; i++) {
    now += 100 * MS;
    assert_int_equal(sft_path_sample(&t, id, now, &c.s), 0);
  }
  assert_int_equal(status(&t, id), SFT_PATH_ACTIVE);

  /* Data goes out, nothing is acknowledged: the clock starts when it became
   * outstanding; failed after more than 600 ms, not before. */
  last = now + 100 * MS;
  while (status(&t, id) == SFT_PATH_ACTIVE) {
    step(&t, id, &c, now += 100 * MS, 5, 0, 1);
    assert_true(now - last <= 700 * MS);
  }
  assert_true(now - last > 600 * MS);
  assert_int_equal(sft_path_get(&t, id, &in), 0);
  assert_int_equal(in.reason, SFT_PATH_R_ACK_TIMEOUT);
  assert_int_equal(in.pto_ns, 200 * MS);

  /* Acks come back (probes answered): 3 progress samples + 1 s -> Active.
   * Few packets, so loss is not judged and does not block recovery. */
  uint64_t back = now + 100 * MS;
  while (status(&t, id) == SFT_PATH_FAILED) {
    step(&t, id, &c, now += 100 * MS, 2, 0, 0);
    assert_true(now - back <= 1200 * MS);
  }
  assert_int_equal(status(&t, id), SFT_PATH_ACTIVE);
  assert_true(now - back >= 1 * SEC);

  /* A derived PTO when the transport gives none. */
  c.s.pto_ns = 0;
  c.s.srtt_ns = 40 * MS;
  c.s.rttvar_ns = 10 * MS;
  step(&t, id, &c, now += 100 * MS, 10, 0, 0);
  assert_int_equal(sft_path_get(&t, id, &in), 0);
  assert_int_equal(in.pto_ns, (40 + 40 + 25) * MS);
}

static void test_manual_fail_and_counter_reset(void **state) {
  struct sft_path_table t;
  struct sim c = {0};
  struct sft_path_info in;
  unsigned id;
  uint64_t now = 0;
  (void)state;
  assert_int_equal(sft_path_init(&t, NULL), 0);
  assert_int_equal(sft_path_add(&t, 0, &id), 0);
  for (int i = 0; i < 10; i++)
    step(&t, id, &c, now += 100 * MS, 1000, 10, 0);
  /* Reconnect: counters restart lower. No bogus huge delta, no change. */
  c.s.pkts_sent = 100;
  c.s.pkts_lost = 1;
  c.s.bytes_acked = 1000;
  assert_int_equal(sft_path_sample(&t, id, now += 100 * MS, &c.s), 0);
  assert_int_equal(sft_path_get(&t, id, &in), 0);
  assert_int_equal(in.status, SFT_PATH_ACTIVE);
  assert_true(in.loss_ppm < 20000);

  uint64_t seq = sft_path_seq(&t);
  assert_int_equal(sft_path_set_failed(&t, id, now), 0);
  assert_int_equal(sft_path_set_failed(&t, id, now), 0); /* idempotent */
  assert_int_equal(sft_path_seq(&t), seq + 1);
  assert_int_equal(sft_path_get(&t, id, &in), 0);
  assert_int_equal(in.reason, SFT_PATH_R_MANUAL);
  assert_int_equal(in.changes, 1);
}

/* Byte shares over 10,000 picks of mixed sizes. */
static void check_split(unsigned n, const uint64_t *rate_mb) {
  struct sft_path_table t;
  struct sim c[SFT_PATH_MAX];
  uint64_t rtt[SFT_PATH_MAX] = {10, 20, 30, 40};
  uint64_t bytes[SFT_PATH_MAX] = {0}, total = 0, sum_rate = 0, x = 88172645;
  init_paths(&t, n, rtt, rate_mb, c);
  for (unsigned i = 0; i < n; i++)
    sum_rate += rate_mb[i];
  for (int k = 0; k < 10000; k++) {
    unsigned id;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    uint32_t sz =
        (x % 4) ? 1024 * 1024 : 64 * 1024 + (uint32_t)(x >> 40) % 4096;
    assert_int_equal(sft_path_pick(&t,
                                   k & 1 ? SFT_SCHED_HIGH : SFT_SCHED_NORMAL, 0,
                                   sz, &id),
                     0);
    assert_true(id < n);
    bytes[id] += sz;
    total += sz;
  }
  for (unsigned i = 0; i < n; i++) {
    double share = (double)bytes[i] / (double)total;
    double want = (double)rate_mb[i] / (double)sum_rate;
    assert_true(share >= want * 0.95 && share <= want * 1.05);
  }
}

static void test_split_two_and_three(void **state) {
  (void)state;
  check_split(2, (const uint64_t[]){30, 70});
  check_split(2, (const uint64_t[]){50, 50});
  check_split(3, (const uint64_t[]){10, 20, 70});
  check_split(3, (const uint64_t[]){1, 1000, 100});
}

static void test_unknown_rate_gets_average(void **state) {
  struct sft_path_table t;
  struct sim c[3];
  unsigned cnt[3] = {0};
  (void)state;
  init_paths(&t, 3, (const uint64_t[]){10, 10, 10},
             (const uint64_t[]){20, 40, 0}, c);
  for (int k = 0; k < 9000; k++) {
    unsigned id;
    assert_int_equal(sft_path_pick(&t, SFT_SCHED_NORMAL, 0, 1000, &id), 0);
    cnt[id]++;
  }
  /* weights 20 : 40 : 30 */
  assert_in_range(cnt[0], 1990, 2010);
  assert_in_range(cnt[1], 3990, 4010);
  assert_in_range(cnt[2], 2990, 3010);
}

static void test_critical_lowest_rtt(void **state) {
  struct sft_path_table t;
  struct sim c[4];
  uint64_t rtt[4] = {80, 20, 50, 30};
  unsigned id;
  uint64_t now = 0, x = 12345;
  (void)state;
  init_paths(&t, 4, rtt, (const uint64_t[]){50, 10, 50, 50}, c);
  for (int k = 0; k < 200; k++) {
    /* RTTs move around; critical always follows the lowest. */
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    unsigned j = (unsigned)(x % 4);
    c[j].s.srtt_ns = (5 + (x >> 20) % 200) * MS;
    step(&t, j, &c[j], now += 10 * MS, 100, 0, 0);
    unsigned best = 0;
    for (unsigned i = 1; i < 4; i++)
      if (c[i].s.srtt_ns < c[best].s.srtt_ns)
        best = i;
    assert_int_equal(sft_path_pick(&t, SFT_SCHED_CRITICAL, now, 1, &id), 0);
    assert_int_equal(id, best);
  }
  /* Active preferred over a lower-RTT Degraded path. */
  c[0].s.srtt_ns = 1 * MS;
  for (int i = 0; i < SFT_PATH_LOSS_WINDOW; i++)
    step(&t, 0, &c[0], now += 100 * MS, 100, 30, 0);
  assert_int_equal(status(&t, 0), SFT_PATH_DEGRADED);
  assert_int_equal(sft_path_pick(&t, SFT_SCHED_CRITICAL, now, 1, &id), 0);
  assert_int_not_equal(id, 0);
  /* Only Degraded left: it is used. */
  for (unsigned i = 1; i < 4; i++)
    assert_int_equal(sft_path_set_failed(&t, i, now), 0);
  assert_int_equal(sft_path_pick(&t, SFT_SCHED_CRITICAL, now, 1, &id), 0);
  assert_int_equal(id, 0);
}

static void test_failover_and_return(void **state) {
  struct sft_path_table t;
  struct sim c[2];
  unsigned id, cnt[2] = {0};
  uint64_t now = 0;
  (void)state;
  init_paths(&t, 2, (const uint64_t[]){20, 80}, (const uint64_t[]){50, 50}, c);
  /* Path 1 goes dark: no acks with data outstanding. */
  while (status(&t, 1) != SFT_PATH_FAILED) {
    step(&t, 0, &c[0], now += 100 * MS, 100, 0, 0);
    step(&t, 1, &c[1], now, 10, 0, 1);
    assert_true(now < 2 * SEC);
  }
  for (int k = 0; k < 1000; k++) {
    assert_int_equal(sft_path_pick(&t, SFT_SCHED_NORMAL, now, 65536, &id), 0);
    assert_int_equal(id, 0);
    assert_int_equal(sft_path_pick(&t, SFT_SCHED_CRITICAL, now, 1, &id), 0);
    assert_int_equal(id, 0);
  }
  /* Comes back: acks again, recovered after the hold, used again at its
   * share. */
  while (status(&t, 1) == SFT_PATH_FAILED) {
    step(&t, 0, &c[0], now += 100 * MS, 100, 0, 0);
    step(&t, 1, &c[1], now, 100, 0, 0);
    assert_true(now < 10 * SEC);
  }
  for (int k = 0; k < 1000; k++) {
    assert_int_equal(sft_path_pick(&t, SFT_SCHED_NORMAL, now, 65536, &id), 0);
    cnt[id]++;
  }
  assert_int_equal(cnt[0], 500);
  assert_int_equal(cnt[1], 500);
}

static void test_parity_steering(void **state) {
  struct sft_path_table t;
  struct sim c[3];
  unsigned id;
  uint64_t now = 0;
  (void)state;
  init_paths(&t, 3, (const uint64_t[]){30, 60, 10},
             (const uint64_t[]){50, 50, 50}, c);
  /* Away from the heaviest, to the lightest. */
  assert_int_equal(
      sft_path_pick_parity(&t, (const uint32_t[]){7, 3, 0}, 3, now, &id), 0);
  assert_int_equal(id, 2);
  assert_int_equal(
      sft_path_pick_parity(&t, (const uint32_t[]){0, 3, 7}, 3, now, &id), 0);
  assert_int_equal(id, 0);
  /* Ties: lowest RTT among the lightest. */
  assert_int_equal(
      sft_path_pick_parity(&t, (const uint32_t[]){2, 2, 6}, 3, now, &id), 0);
  assert_int_equal(id, 0);
  assert_int_equal(
      sft_path_pick_parity(&t, (const uint32_t[]){10, 0, 0}, 3, now, &id), 0);
  assert_int_equal(id, 2);
  /* Short array: missing entries count 0. */
  assert_int_equal(
      sft_path_pick_parity(&t, (const uint32_t[]){5, 5}, 2, now, &id), 0);
  assert_int_equal(id, 2);
  /* A Failed path is skipped even if it carried nothing. */
  assert_int_equal(sft_path_set_failed(&t, 2, now), 0);
  assert_int_equal(
      sft_path_pick_parity(&t, (const uint32_t[]){7, 3, 0}, 3, now, &id), 0);
  assert_int_equal(id, 1);
  /* Two equal: lowest RTT; a Degraded path loses the tie to Active. */
  for (int i = 0; i < SFT_PATH_LOSS_WINDOW; i++)
    step(&t, 0, &c[0], now += 100 * MS, 100, 30, 0);
  assert_int_equal(status(&t, 0), SFT_PATH_DEGRADED);
  assert_int_equal(
      sft_path_pick_parity(&t, (const uint32_t[]){4, 4, 0}, 3, now, &id), 0);
  assert_int_equal(id, 1);
  /* Only the heaviest is usable: it is returned. */
  assert_int_equal(sft_path_set_failed(&t, 1, now), 0);
  assert_int_equal(
      sft_path_pick_parity(&t, (const uint32_t[]){9, 0, 0}, 3, now, &id), 0);
  assert_int_equal(id, 0);
  assert_int_equal(sft_path_set_failed(&t, 0, now), 0);
  assert_int_equal(
      sft_path_pick_parity(&t, (const uint32_t[]){9, 0, 0}, 3, now, &id),
      SFT_ERR_AGAIN);
  assert_int_equal(sft_path_pick(&t, SFT_SCHED_NORMAL, now, 100, &id),
                   SFT_ERR_AGAIN);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_config_and_bounds),
      cmocka_unit_test(test_degrade_hysteresis_and_window),
      cmocka_unit_test(test_fail_on_loss_and_recover),
      cmocka_unit_test(test_ack_timeout),
      cmocka_unit_test(test_manual_fail_and_counter_reset),
      cmocka_unit_test(test_split_two_and_three),
      cmocka_unit_test(test_unknown_rate_gets_average),
      cmocka_unit_test(test_critical_lowest_rtt),
      cmocka_unit_test(test_failover_and_return),
      cmocka_unit_test(test_parity_steering),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
