/* Tests of tools/netsim: the impairment model's statistics and invariants,
 * the spec parser/formatter, and the UDP proxy in-process on 127.0.0.1. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "netsim/model.h"
#include "netsim/proxy.h"
#include "netsim/spec.h"
#include "sft/err.h"

#define MS NETSIM_NS_PER_MS
#define SEC NETSIM_NS_PER_S

static void assert_within(double got, double want, double rel) {
  if (fabs(got - want) > rel * want) {
    fprintf(stderr, "got %f want %f (+-%.1f%%)\n", got, want, rel * 100);
    fail();
  }
}

static struct netsim_dir_cfg spec_dir(const char *s) {
  struct netsim_spec sp;
  struct netsim_spec_err e;
  int rv = netsim_spec_parse(s, strlen(s), &sp, &e);
  if (rv)
    fprintf(stderr, "spec %s: %s at %s\n", s, sft_err_name(rv), e.key);
  assert_int_equal(rv, 0);
  return sp.up;
}

/* ---- model -------------------------------------------------------------- */

static void test_bernoulli_loss(void **st) {
  (void)st;
  static const char *specs[] = {"loss=1%", "loss=10%", "loss=30%"};
  static const double want[] = {0.01, 0.10, 0.30};
  for (int k = 0; k < 3; k++) {
    struct netsim_dir_cfg c = spec_dir(specs[k]);
    struct netsim_model m;
    struct netsim_decision d;
    netsim_model_init(&m, &c, 7 + (uint64_t)k, 0);
    uint64_t lost = 0, n = 200000;
    for (uint64_t i = 0; i < n; i++) {
      netsim_model_packet(&m, i * 1000, 1200, &d);
      lost += d.verdict == NETSIM_DROP_LOSS;
      assert_true(d.verdict == NETSIM_DELIVER || d.verdict == NETSIM_DROP_LOSS);
    }
    assert_int_equal(m.c.drop_loss, lost);
    assert_int_equal(m.c.pkts_out + lost, n);
    assert_within((double)lost / (double)n, want[k], 0.05);
  }
}

static void test_gilbert_elliott(void **st) {
  (void)st;
  static const char *specs[] = {"ge=5%:4", "ge=1%:10", "ge=20%:2.5"};
  static const double loss[] = {0.05, 0.01, 0.20}, burst[] = {4, 10, 2.5};
  for (int k = 0; k < 3; k++) {
    struct netsim_dir_cfg c = spec_dir(specs[k]);
    struct netsim_model m;
    struct netsim_decision d;
    netsim_model_init(&m, &c, 99, 0);
    uint64_t n = 2000000, lost = 0, bursts = 0;
    bool prev = false;
    for (uint64_t i = 0; i < n; i++) {
      netsim_model_packet(&m, i * 1000, 100, &d);
      bool l = d.verdict == NETSIM_DROP_LOSS;
      lost += l;
      bursts += l && !prev;
      prev = l;
    }
    assert_within((double)lost / (double)n, loss[k], 0.05);
    assert_within((double)lost / (double)bursts, burst[k], 0.05);
  }
  struct netsim_dir_cfg c;
  netsim_dir_cfg_default(&c);
  assert_int_equal(netsim_ge_from_loss_burst(&c, 1.0, 5), SFT_ERR_RANGE);
  assert_int_equal(netsim_ge_from_loss_burst(&c, 0.1, 0.5), SFT_ERR_RANGE);
  assert_int_equal(netsim_ge_from_loss_burst(&c, 0.9, 1), SFT_ERR_RANGE);
  assert_int_equal(netsim_ge_from_loss_burst(&c, 0.5, 2), 0);
  assert_int_equal(c.ge_pbg, NETSIM_PPB / 2);
  assert_int_equal(c.ge_pgb, NETSIM_PPB / 2);
}

static void test_delay_jitter(void **st) {
  (void)st;
  static const char *specs[] = {"delay=25ms,jitter=2ms",
                                "delay=25ms,jitter=2ms,jitterdist=normal",
                                "delay=1ms,jitter=3ms"};
  for (int k = 0; k < 3; k++) {
    struct netsim_dir_cfg c = spec_dir(specs[k]);
    struct netsim_model m;
    struct netsim_decision d;
    netsim_model_init(&m, &c, 3, 0);
    double sum = 0, sum2 = 0;
    uint64_t lo = UINT64_MAX, hi = 0, n = 100000;
    for (uint64_t i = 0; i < n; i++) {
      uint64_t t = i * 20 * MS; /* spaced wider than the jitter span */
      netsim_model_packet(&m, t, 1200, &d);
      assert_int_equal(d.verdict, NETSIM_DELIVER);
      uint64_t dl = d.copy[0].deliver_ns - t;
      sum += (double)dl;
      sum2 += (double)dl * (double)dl;
      lo = dl < lo ? dl : lo;
      hi = dl > hi ? dl : hi;
    }
    double mean = sum / (double)n, sd = sqrt(sum2 / (double)n - mean * mean);
    if (k == 2) { /* jitter > delay: clamped at 0, never negative */
      assert_int_equal(lo, 0);
      assert_true(hi <= 4 * MS);
      continue;
    }
    assert_within(mean, 25.0 * MS, 0.05);
    assert_true(lo >= 23 * MS && hi <= 27 * MS);
    if (k == 0) { /* uniform on [-J, J]: sd = J/sqrt(3) */
      assert_within(sd, 2.0 * MS / sqrt(3.0), 0.05);
      assert_true(lo < 23 * MS + MS / 10 && hi > 27 * MS - MS / 10);
    } else { /* normal, sigma J/2 clamped at 2 sigma: sd 0.9595 sigma */
      assert_within(sd, 0.9595 * MS, 0.05);
    }
  }
}

static void test_no_reorder_by_default(void **st) {
  (void)st;
  struct netsim_dir_cfg c = spec_dir("delay=10ms,jitter=5ms,loss=10%,dup=5%");
  struct netsim_model m;
  struct netsim_decision d;
  netsim_model_init(&m, &c, 5, 0);
  uint64_t last = 0;
  for (uint64_t i = 0; i < 200000; i++) {
    netsim_model_packet(&m, i * 100000, 1200, &d); /* every 100 us */
    for (unsigned j = 0; j < d.ncopies; j++) {
      assert_true(d.copy[j].deliver_ns >= last);
      last = d.copy[j].deliver_ns;
    }
  }
  assert_int_equal(m.c.reordered, 0);
}

static void test_rate_queue(void **st) {
  (void)st;
  /* 1200-byte packets offered at 20 Mbit/s (480 us apart) to a 10 Mbit/s
   * link with a 50 ms queue for 10 s. */
  struct netsim_dir_cfg c = spec_dir("rate=10mbit,queue=50ms");
  struct netsim_model m;
  struct netsim_decision d;
  netsim_model_init(&m, &c, 1, 0);
  uint64_t first = 0, lastd = 0, bytes = 0, n = 20000 * 25 / 10;
  uint64_t tx = 1200 * 8 * SEC / 10000000; /* 960 us */
  for (uint64_t i = 0; i < n; i++) {
    uint64_t t = i * 480000;
    netsim_model_packet(&m, t, 1200, &d);
    if (d.verdict != NETSIM_DELIVER) {
      assert_int_equal(d.verdict, NETSIM_DROP_QUEUE);
      continue;
    }
    uint64_t dt = d.copy[0].deliver_ns;
    /* waited in the queue no longer than its size */
    assert_true(dt - t - tx <= 50 * MS);
    assert_true(dt >= t + tx);
    if (!first)
      first = dt;
    else
      bytes += 1200;
    lastd = dt;
  }
  double rate = (double)bytes * 8 / ((double)(lastd - first) / 1e9);
  assert_within(rate, 10e6, 0.05);
  assert_within((double)m.c.drop_queue, (double)n / 2, 0.05);
  /* below the rate: nothing dropped, no queueing */
  netsim_model_init(&m, &c, 1, 0);
  for (uint64_t i = 0; i < 10000; i++) {
    netsim_model_packet(&m, i * 2 * MS, 1200, &d);
    assert_int_equal(d.verdict, NETSIM_DELIVER);
    assert_int_equal(d.copy[0].deliver_ns, i * 2 * MS + tx);
  }
}

static void test_reorder_dup_corrupt(void **st) {
  (void)st;
  struct netsim_dir_cfg c =
      spec_dir("delay=5ms,reorder=5%,reorderdelay=3ms,dup=3%,corrupt=2%");
  struct netsim_model m;
  struct netsim_decision d;
  netsim_model_init(&m, &c, 11, 0);
  uint64_t n = 200000, inversions = 0, last = 0, copies = 0, corrupt = 0;
  for (uint64_t i = 0; i < n; i++) {
    netsim_model_packet(&m, i * 100000, 1000, &d);
    assert_int_equal(d.verdict, NETSIM_DELIVER);
    if (d.reordered)
      assert_int_equal(d.copy[0].deliver_ns, i * 100000 + 8 * MS);
    else if (d.copy[0].deliver_ns < last)
      inversions++;
    if (!d.reordered)
      last = d.copy[0].deliver_ns;
    for (unsigned j = 0; j < d.ncopies; j++) {
      copies++;
      if (d.copy[j].corrupt_xor) {
        uint8_t buf[1000] = {0};
        corrupt++;
        assert_true(d.copy[j].corrupt_off < 1000);
        netsim_copy_apply(&d.copy[j], buf, sizeof(buf));
        int changed = 0;
        for (int b = 0; b < 1000; b++)
          changed += buf[b] != 0;
        assert_int_equal(changed, 1);
      }
    }
  }
  assert_int_equal(inversions, 0);
  assert_within((double)m.c.reordered, 0.05 * (double)n, 0.05);
  assert_within((double)m.c.duplicated, 0.03 * (double)n, 0.05);
  assert_within((double)corrupt, 0.02 * (double)copies, 0.05);
  assert_int_equal(m.c.corrupted, corrupt);
  assert_int_equal(copies, n + m.c.duplicated);
  assert_int_equal(m.c.pkts_out, copies);
  /* held-back packets really arrive after later ones: with 100 us spacing
   * and 3 ms extra, ~30 later packets overtake each */
  netsim_model_init(&m, &c, 11, 0);
  bool seen = false;
  uint64_t held = UINT64_MAX;
  for (uint64_t i = 0; i < 1000 && !seen; i++) {
    netsim_model_packet(&m, i * 100000, 1000, &d);
    if (d.reordered && held == UINT64_MAX)
      held = d.copy[0].deliver_ns;
    else if (!d.reordered && held != UINT64_MAX)
      seen = d.copy[0].deliver_ns < held;
  }
  assert_true(seen);
}

static bool in_windows(uint64_t t) {
  /* outage=5x2s/4s@3s,outage=500ms@30s */
  if (t >= 30 * SEC && t < 30 * SEC + 500 * MS)
    return true;
  if (t < 3 * SEC)
    return false;
  uint64_t k = (t - 3 * SEC) / (4 * SEC);
  return k < 5 && (t - 3 * SEC) % (4 * SEC) < 2 * SEC;
}

static void test_outages(void **st) {
  (void)st;
  struct netsim_dir_cfg c = spec_dir("outage=5x2s/4s@3s,outage=500ms@30s");
  struct netsim_model m;
  struct netsim_decision d;
  uint64_t epoch = 123456789;
  netsim_model_init(&m, &c, 2, epoch);
  uint64_t drops = 0;
  for (uint64_t t = 0; t < 40 * SEC; t += 250 * 1000) { /* every 250 us */
    netsim_model_packet(&m, epoch + t, 100, &d);
    bool in = in_windows(t);
    assert_int_equal(d.verdict, in ? NETSIM_DROP_OUTAGE : NETSIM_DELIVER);
    drops += in;
  }
  assert_int_equal(drops, (10 * SEC + 500 * MS) / (250 * 1000));
  assert_int_equal(m.c.drop_outage, drops);
  /* exact edges */
  assert_false(netsim_in_outage(&c, 3 * SEC - 1));
  assert_true(netsim_in_outage(&c, 3 * SEC));
  assert_true(netsim_in_outage(&c, 5 * SEC - 1));
  assert_false(netsim_in_outage(&c, 5 * SEC));
  assert_true(netsim_in_outage(&c, 19 * SEC));
  assert_false(netsim_in_outage(&c, 21 * SEC));
  assert_false(netsim_in_outage(&c, 23 * SEC)); /* a 6th window: no */
  /* the manual black hole */
  netsim_model_set_blackhole(&m, true);
  netsim_model_packet(&m, epoch + 50 * SEC, 100, &d);
  assert_int_equal(d.verdict, NETSIM_DROP_OUTAGE);
  netsim_model_set_blackhole(&m, false);
  netsim_model_packet(&m, epoch + 50 * SEC, 100, &d);
  assert_int_equal(d.verdict, NETSIM_DELIVER);
}

static uint64_t run_trace(uint64_t seed, int n) {
  struct netsim_dir_cfg c =
      spec_dir("loss=10%,ge=2%:3,delay=5ms,jitter=1ms,rate=50mbit,"
               "reorder=2%,dup=2%,corrupt=2%");
  struct netsim_model m;
  struct netsim_decision d;
  uint64_t h = 1469598103934665603ull;
  netsim_model_init(&m, &c, seed, 0);
  for (int i = 0; i < n; i++) {
    netsim_model_packet(&m, (uint64_t)i * 150000, 1200, &d);
    uint64_t v[4] = {d.verdict, d.ncopies, d.copy[0].deliver_ns,
                     (uint64_t)d.copy[0].corrupt_off << 8 |
                         d.copy[0].corrupt_xor};
    for (int j = 0; j < 4; j++)
      h = (h ^ v[j]) * 1099511628211ull;
  }
  return h;
}

static void test_determinism(void **st) {
  (void)st;
  assert_int_equal(run_trace(42, 20000), run_trace(42, 20000));
  assert_int_not_equal(run_trace(42, 20000), run_trace(43, 20000));
  struct netsim_rng a, b;
  netsim_rng_seed(&a, 0);
  netsim_rng_seed(&b, 1);
  assert_int_not_equal(netsim_rng_next(&a), netsim_rng_next(&b));
}

/* ---- spec --------------------------------------------------------------- */

static void test_spec_valid(void **st) {
  (void)st;
  static const struct {
    const char *in, *canon;
  } ok[] = {
      {"", ""},
      {"loss=5%", "loss=5%"},
      {"loss=0.0000001%", "loss=0.0000001%"},
      {"loss=100%", "loss=100%"},
      {"delay=1.5s", "delay=1500ms"},
      {"delay=25ms,down.delay=30ms", "up.delay=25ms,down.delay=30ms"},
      {"up.loss=1%", "up.loss=1%"},
      {"rate=1.5gbit,queue=20ms", "rate=1500mbit,queue=20ms"},
      {"rate=1kbit", "rate=1kbit"},
      {"queue=50ms", ""},
      {"jitter=7ns,jitterdist=normal", "jitter=7ns,jitterdist=normal"},
      {"outage=2s@3s", "outage=2s@3s"},
      {"outage=5x2s/4s@3s,up.outage=1ms@0ns",
       "up.outage=5x2s/4s@3s,up.outage=1ms@0s,down.outage=5x2s/4s@3s"},
      {"ge_pgb=1%,ge_pbg=10%,ge_lossb=50%,ge_lossg=0.5%",
       "ge_pgb=1%,ge_pbg=10%,ge_lossg=0.5%,ge_lossb=50%"},
      {"seed=18446744073709551615", "seed=18446744073709551615"},
      /* the formatter writes ns here; the parser once refused any value
       * above 10^9 before applying its unit (found by fuzz_netsim_spec) */
      {"outage=20.3865979s@3s", "outage=20386597900ns@3s"},
      {"outage=20386597900ns@3s", "outage=20386597900ns@3s"},
      {"delay=1500000000ns", "delay=1500ms"},
      {"rate=1500000000bit", "rate=1500mbit"},
      {"dup=1%,corrupt=2%,reorder=3%,reorderdelay=1us",
       "reorder=3%,reorderdelay=1us,dup=1%,corrupt=2%"},
  };
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    struct netsim_spec s, s2;
    struct netsim_spec_err e;
    char out[NETSIM_SPEC_FMT_MAX];
    int rv = netsim_spec_parse(ok[i].in, strlen(ok[i].in), &s, &e);
    if (rv)
      fprintf(stderr, "%s: %s at \"%s\"\n", ok[i].in, sft_err_name(rv), e.key);
    assert_int_equal(rv, 0);
    assert_int_equal(netsim_spec_format(&s, out, sizeof(out)), 0);
    assert_string_equal(out, ok[i].canon);
    assert_int_equal(netsim_spec_parse(out, strlen(out), &s2, NULL), 0);
    assert_true(netsim_spec_equal(&s, &s2));
  }
  /* the brief's example, field by field */
  const char *ex = "loss=5%,delay=25ms,jitter=2ms,rate=100mbit,queue=50ms,"
                   "reorder=1%,dup=1%,corrupt=2%,ge=1%:10,"
                   "outage=5x2s/4s@3s,seed=42";
  struct netsim_spec s;
  assert_int_equal(netsim_spec_parse(ex, strlen(ex), &s, NULL), 0);
  assert_int_equal(s.seed, 42);
  assert_int_equal(s.down.loss_ppb, 50000000);
  assert_int_equal(s.up.delay_ns, 25 * MS);
  assert_int_equal(s.up.jitter_ns, 2 * MS);
  assert_int_equal(s.up.rate_bps, 100000000);
  assert_int_equal(s.up.queue_ns, 50 * MS);
  assert_int_equal(s.up.reorder_ppb, 10000000);
  assert_int_equal(s.up.corrupt_ppb, 20000000);
  assert_int_equal(s.up.ge_pbg, 100000000);
  assert_int_equal(s.up.ge_loss_bad, NETSIM_PPB);
  assert_int_equal(s.up.n_outages, 1);
  assert_int_equal(s.up.outages[0].count, 5);
  assert_int_equal(s.up.outages[0].dur_ns, 2 * SEC);
  assert_int_equal(s.up.outages[0].period_ns, 4 * SEC);
  assert_int_equal(s.up.outages[0].start_ns, 3 * SEC);
  /* the formatter reports a short buffer */
  char tiny[8];
  assert_int_equal(netsim_spec_format(&s, tiny, sizeof(tiny)), SFT_ERR_NOSPACE);
  assert_true(strlen(tiny) < sizeof(tiny));
}

static void test_spec_invalid(void **st) {
  (void)st;
  static const struct {
    const char *in;
    int rv;
    const char *key;
  } bad[] = {
      {"bogus=1", SFT_ERR_INVAL, "bogus"},
      {"loss", SFT_ERR_INVAL, "loss"},
      {"=5%", SFT_ERR_INVAL, ""},
      {"loss=5%,", SFT_ERR_INVAL, ""},
      {",loss=5%", SFT_ERR_INVAL, ""},
      {"loss=5%,,dup=1%", SFT_ERR_INVAL, ""},
      {"side.loss=5%", SFT_ERR_INVAL, "side.loss"},
      {"up.seed=1", SFT_ERR_INVAL, "up.seed"},
      {"up.=1%", SFT_ERR_INVAL, "up."},
      {"loss=5", SFT_ERR_MALFORMED, "loss"},
      {"loss=5%%", SFT_ERR_MALFORMED, "loss"},
      {"loss=-1%", SFT_ERR_MALFORMED, "loss"},
      {"loss=.5%", SFT_ERR_MALFORMED, "loss"},
      {"loss=5.%", SFT_ERR_MALFORMED, "loss"},
      {"loss=0.00000001%", SFT_ERR_MALFORMED, "loss"},
      {"loss=100.1%", SFT_ERR_RANGE, "loss"},
      {"loss=99999999999999999999999%", SFT_ERR_RANGE, "loss"},
      {"down.dup=101%", SFT_ERR_RANGE, "down.dup"},
      {"delay=25", SFT_ERR_MALFORMED, "delay"},
      {"delay=25MS", SFT_ERR_MALFORMED, "delay"},
      {"delay=25 ms", SFT_ERR_MALFORMED, "delay"},
      {"delay=0.5ns", SFT_ERR_MALFORMED, "delay"},
      {"delay=11s", SFT_ERR_RANGE, "delay"},
      {"jitter=1h", SFT_ERR_MALFORMED, "jitter"},
      {"jitterdist=gauss", SFT_ERR_MALFORMED, "jitterdist"},
      {"rate=100mbps", SFT_ERR_MALFORMED, "rate"},
      {"rate=999bit", SFT_ERR_RANGE, "rate"},
      {"rate=101gbit", SFT_ERR_RANGE, "rate"},
      {"rate=0.5bit", SFT_ERR_MALFORMED, "rate"},
      {"queue=20s", SFT_ERR_RANGE, "queue"},
      {"ge=1%", SFT_ERR_MALFORMED, "ge"},
      {"ge=1%:0.5", SFT_ERR_RANGE, "ge"},
      {"ge=100%:5", SFT_ERR_RANGE, "ge"},
      {"ge=1%:10x", SFT_ERR_MALFORMED, "ge"},
      {"outage=2s", SFT_ERR_MALFORMED, "outage"},
      {"outage=5x2s@3s", SFT_ERR_RANGE, "outage"},
      {"outage=5x2s/1s@3s", SFT_ERR_RANGE, "outage"},
      {"outage=0x2s/4s@3s", SFT_ERR_RANGE, "outage"},
      {"outage=0s@3s", SFT_ERR_RANGE, "outage"},
      {"outage=2s@3s@4s", SFT_ERR_MALFORMED, "outage"},
      {"outage=x2s@3s", SFT_ERR_MALFORMED, "outage"},
      {"seed=-1", SFT_ERR_MALFORMED, "seed"},
      {"seed=1.5", SFT_ERR_MALFORMED, "seed"},
      {"seed=18446744073709551616", SFT_ERR_RANGE, "seed"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct netsim_spec s;
    struct netsim_spec_err e;
    memset(&s, 0xa5, sizeof(s));
    int rv = netsim_spec_parse(bad[i].in, strlen(bad[i].in), &s, &e);
    if (rv != bad[i].rv || strcmp(e.key, bad[i].key) != 0)
      fprintf(stderr, "%s: got %s \"%s\"\n", bad[i].in, sft_err_name(rv),
              e.key);
    assert_int_equal(rv, bad[i].rv);
    assert_string_equal(e.key, bad[i].key);
    assert_int_equal(s.seed, 0xa5a5a5a5a5a5a5a5ull); /* untouched */
  }
  /* 17 outages: FULL */
  char big[NETSIM_SPEC_MAX_LEN + 16];
  size_t n = 0;
  for (int i = 0; i < 17; i++)
    n += (size_t)snprintf(big + n, sizeof(big) - n, "%soutage=1s@%ds",
                          i ? "," : "", i * 2);
  struct netsim_spec s;
  struct netsim_spec_err e;
  assert_int_equal(netsim_spec_parse(big, n, &s, &e), SFT_ERR_FULL);
  assert_string_equal(e.key, "outage");
  memset(big, 'a', sizeof(big));
  assert_int_equal(netsim_spec_parse(big, NETSIM_SPEC_MAX_LEN + 1, &s, &e),
                   SFT_ERR_TOO_LARGE);
}

/* ---- proxy -------------------------------------------------------------- */

struct client {
  uv_udp_t udp;
  int id;
  uint64_t got, bad, out_of_order, next;
  uint64_t sent_at, rtt_min;
  char buf[2048];
};

struct rig {
  uv_loop_t loop;
  struct netsim_echo *echo;
  struct netsim_proxy *proxy;
  struct sockaddr_storage paddr;
  socklen_t plen;
  uv_timer_t deadline;
  bool expired;
};

static void rig_up(struct rig *r, const char *spec) {
  struct sockaddr_storage a;
  socklen_t al;
  struct netsim_proxy_cfg cfg;
  memset(r, 0, sizeof(*r));
  assert_int_equal(uv_loop_init(&r->loop), 0);
  assert_int_equal(netsim_addr_parse("127.0.0.1:0", &a, &al), 0);
  assert_int_equal(
      netsim_echo_new(&r->echo, &r->loop, (struct sockaddr *)&a, al, false), 0);
  netsim_proxy_cfg_default(&cfg);
  cfg.listen = a;
  cfg.listen_len = al;
  netsim_echo_local_addr(r->echo, &cfg.target, &cfg.target_len);
  assert_int_equal(
      netsim_spec_parse(spec, strlen(spec), &cfg.spec, NULL), 0);
  assert_int_equal(netsim_proxy_new(&r->proxy, &r->loop, &cfg), 0);
  netsim_proxy_local_addr(r->proxy, &r->paddr, &r->plen);
  uv_timer_init(&r->loop, &r->deadline);
  r->deadline.data = r;
}

static void on_deadline(uv_timer_t *t) {
  struct rig *r = t->data;
  r->expired = true;
}

/* Runs the loop until |cond|(arg) holds or 20 s pass; returns cond. */
static bool rig_run(struct rig *r, bool (*cond)(struct rig *, void *),
                    void *arg) {
  r->expired = false;
  uv_timer_start(&r->deadline, on_deadline, 20000, 0);
  while (!cond(r, arg) && !r->expired)
    uv_run(&r->loop, UV_RUN_ONCE);
  uv_timer_stop(&r->deadline);
  return cond(r, arg);
}

static void rig_down(struct rig *r) {
  netsim_proxy_close(r->proxy, NULL, NULL);
  netsim_echo_close(r->echo, NULL, NULL);
  uv_close((uv_handle_t *)&r->deadline, NULL);
  uv_run(&r->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&r->loop), 0);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  struct client *c = h->data;
  (void)sz;
  *b = uv_buf_init(c->buf, sizeof(c->buf));
}

/* Payload: [client id][seq u64][pattern to 1000 bytes]. */
#define PLEN 1000
static void fill(uint8_t *p, int id, uint64_t seq) {
  p[0] = (uint8_t)id;
  memcpy(p + 1, &seq, 8);
  for (int i = 9; i < PLEN; i++)
    p[i] = (uint8_t)(seq * 31 + (uint64_t)i);
}

static void on_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *b,
                    const struct sockaddr *from, unsigned flags) {
  struct client *c = u->data;
  (void)from;
  (void)flags;
  if (n <= 0)
    return;
  uint8_t want[PLEN];
  uint64_t seq;
  memcpy(&seq, b->base + 1, 8);
  fill(want, c->id, seq);
  if (n != PLEN || memcmp(b->base, want, PLEN) != 0)
    c->bad++;
  if (seq != c->next)
    c->out_of_order++;
  c->next = seq + 1;
  c->got++;
  uint64_t rtt = uv_hrtime() - c->sent_at;
  if (rtt < c->rtt_min)
    c->rtt_min = rtt;
}

static void client_up(struct rig *r, struct client *c, int id) {
  struct sockaddr_storage a;
  socklen_t al;
  memset(c, 0, sizeof(*c));
  c->id = id;
  c->rtt_min = UINT64_MAX;
  assert_int_equal(uv_udp_init(&r->loop, &c->udp), 0);
  c->udp.data = c;
  assert_int_equal(netsim_addr_parse("127.0.0.1:0", &a, &al), 0);
  assert_int_equal(uv_udp_bind(&c->udp, (struct sockaddr *)&a, 0), 0);
  int big = 4 << 20;
  uv_recv_buffer_size((uv_handle_t *)&c->udp, &big);
  assert_int_equal(uv_udp_recv_start(&c->udp, on_alloc, on_recv), 0);
}

static void client_send(struct rig *r, struct client *c, uint64_t seq) {
  uint8_t p[PLEN];
  fill(p, c->id, seq);
  uv_buf_t b = uv_buf_init((char *)p, PLEN);
  c->sent_at = uv_hrtime();
  assert_int_equal(
      uv_udp_try_send(&c->udp, &b, 1, (struct sockaddr *)&r->paddr), PLEN);
}

struct want {
  struct client *c;
  int nc;
  uint64_t n;
};

static bool all_got(struct rig *r, void *arg) {
  struct want *w = arg;
  (void)r;
  for (int i = 0; i < w->nc; i++)
    if (w->c[i].got < w->n)
      return false;
  return true;
}

static void test_proxy_clean(void **st) {
  (void)st;
  struct rig r;
  struct client c;
  rig_up(&r, "");
  client_up(&r, &c, 1);
  struct want w = {&c, 1, 0};
  for (uint64_t i = 0; i < 2000; i++) { /* windows of 100 in flight */
    client_send(&r, &c, i);
    if (i % 100 == 99) {
      w.n = i + 1;
      assert_true(rig_run(&r, all_got, &w));
    }
  }
  assert_int_equal(c.got, 2000);
  assert_int_equal(c.bad, 0);
  assert_int_equal(c.out_of_order, 0);
  struct netsim_proxy_stats ps;
  netsim_proxy_get_stats(r.proxy, &ps);
  assert_int_equal(ps.up.pkts_in, 2000);
  assert_int_equal(ps.sent_up, 2000);
  assert_int_equal(ps.sent_down, 2000);
  assert_int_equal(ps.clients_created, 1);
  char js[2048];
  assert_int_equal(netsim_proxy_stats_json(&ps, js, sizeof(js)), 0);
  assert_non_null(strstr(js, "\"sent_down\":2000"));
  uv_close((uv_handle_t *)&c.udp, NULL);
  rig_down(&r);
}

struct lossy {
  struct client *c;
  uint64_t n;
};

static bool settled(struct rig *r, void *arg) {
  struct lossy *l = arg;
  struct netsim_proxy_stats ps;
  uint64_t ep, eb;
  netsim_proxy_get_stats(r->proxy, &ps);
  netsim_echo_counts(r->echo, &ep, &eb);
  return ps.up.pkts_in == l->n && ps.pending == 0 && ep == ps.sent_up &&
         ps.down.pkts_in == ep && l->c->got == ps.sent_down;
}

static void test_proxy_loss(void **st) {
  (void)st;
  struct rig r;
  struct client c;
  rig_up(&r, "up.loss=50%,seed=9");
  client_up(&r, &c, 2);
  struct lossy l = {&c, 0};
  for (uint64_t i = 0; i < 2000; i++) {
    client_send(&r, &c, i);
    if (i % 100 == 99) {
      l.n = i + 1;
      assert_true(rig_run(&r, settled, &l));
    }
  }
  struct netsim_proxy_stats ps;
  netsim_proxy_get_stats(r.proxy, &ps);
  assert_int_equal(ps.up.pkts_in, 2000);
  assert_true(ps.up.drop_loss > 850 && ps.up.drop_loss < 1150);
  assert_int_equal(ps.up.drop_loss + ps.up.pkts_out, 2000);
  assert_int_equal(c.got, ps.up.pkts_out);
  assert_int_equal(ps.down.drop_loss, 0);
  assert_int_equal(c.bad, 0);
  uv_close((uv_handle_t *)&c.udp, NULL);
  rig_down(&r);
}

static void test_proxy_delay(void **st) {
  (void)st;
  struct rig r;
  struct client c;
  rig_up(&r, "delay=50ms");
  client_up(&r, &c, 3);
  struct want w = {&c, 1, 0};
  for (uint64_t i = 0; i < 4; i++) {
    client_send(&r, &c, i);
    w.n = i + 1;
    assert_true(rig_run(&r, all_got, &w));
  }
  assert_true(c.rtt_min >= 100 * MS);
  assert_int_equal(c.bad, 0);
  uv_close((uv_handle_t *)&c.udp, NULL);
  rig_down(&r);
}

static bool up_in_201(struct rig *r, void *arg) {
  struct netsim_proxy_stats ps;
  (void)arg;
  netsim_proxy_get_stats(r->proxy, &ps);
  return ps.up.pkts_in == 201 && ps.pending == 0;
}

static void test_proxy_clients(void **st) {
  (void)st;
  struct rig r;
  struct client c[4];
  rig_up(&r, "delay=1ms");
  for (int i = 0; i < 4; i++)
    client_up(&r, &c[i], 10 + i);
  for (uint64_t s = 0; s < 50; s++)
    for (int i = 0; i < 4; i++)
      client_send(&r, &c[i], s);
  struct want w = {c, 4, 50};
  assert_true(rig_run(&r, all_got, &w));
  for (int i = 0; i < 4; i++) {
    assert_int_equal(c[i].got, 50); /* own id checked by the pattern */
    assert_int_equal(c[i].bad, 0);
    assert_int_equal(c[i].out_of_order, 0);
  }
  struct netsim_proxy_stats ps;
  netsim_proxy_get_stats(r.proxy, &ps);
  assert_int_equal(ps.clients_created, 4);
  assert_int_equal(ps.clients_active, 4);
  /* the black hole drops everything */
  netsim_proxy_set_blackhole(r.proxy, true);
  client_send(&r, &c[0], 50);
  assert_true(rig_run(&r, up_in_201, NULL));
  netsim_proxy_get_stats(r.proxy, &ps);
  assert_int_equal(ps.up.drop_outage, 1);
  assert_int_equal(c[0].got, 50);
  for (int i = 0; i < 4; i++)
    uv_close((uv_handle_t *)&c[i].udp, NULL);
  rig_down(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bernoulli_loss),
      cmocka_unit_test(test_gilbert_elliott),
      cmocka_unit_test(test_delay_jitter),
      cmocka_unit_test(test_no_reorder_by_default),
      cmocka_unit_test(test_rate_queue),
      cmocka_unit_test(test_reorder_dup_corrupt),
      cmocka_unit_test(test_outages),
      cmocka_unit_test(test_determinism),
      cmocka_unit_test(test_spec_valid),
      cmocka_unit_test(test_spec_invalid),
      cmocka_unit_test(test_proxy_clean),
      cmocka_unit_test(test_proxy_loss),
      cmocka_unit_test(test_proxy_delay),
      cmocka_unit_test(test_proxy_clients),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
