/* Tests of src/daemon/share (the daemon's link share): a real uv loop and
 * fake clients that want, get granted, and want again from their grant
 * callback. Rate bound over measured intervals, class shares 50/30/20 by
 * bytes, work conservation (an idle class's share goes to the others), a
 * late critical client, forget of a queued and of the held want, double
 * want, bad arguments, queue full, set_rate, close (also from a grant). Every
 * test ends with uv_loop_close() == 0. */
/* cmocka needs these first */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "daemon/clock.h"
#include "daemon/share.h"
#include "sft/err.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define MAXREC 4096

struct fixture;

struct client {
  struct fixture *fx;
  uint64_t key;
  int cls;
  uint32_t size;
  int active; /* wants again from its grant callback */
  unsigned ngrants;
  uint64_t granted; /* bytes */
  uint64_t at_mark; /* bytes granted before the fixture's mark */
  uint64_t at_stop; /* bytes granted when the total reached stop_at */
  uint64_t first;   /* fixture total before its first grant */
};

struct fixture {
  uv_loop_t loop;
  struct sftd_share *sh;
  struct client c[4];
  unsigned n;
  uint64_t total;
  uint64_t stop_at; /* clients stop wanting once total reaches this */
  int stopped;
  /* arrival of a late client: when total reaches late_at, c[late] starts */
  uint64_t late_at;
  int late;
  uint64_t total_at_mark;
  /* grant log */
  uint64_t t[MAXREC], cum[MAXREC];
  unsigned nrec;
  int close_in_grant; /* close the share from the first grant */
};

static void on_grant(void *ud, uint32_t bytes);

static int want(struct client *c) {
  return sftd_share_want(c->fx->sh, c->key, c->cls, c->size, on_grant, c);
}

static void on_grant(void *ud, uint32_t bytes) {
  struct client *c = ud;
  struct fixture *fx = c->fx;
  assert_int_equal(bytes, c->size);
  if (!c->ngrants)
    c->first = fx->total;
  c->ngrants++;
  c->granted += bytes;
  fx->total += bytes;
  if (fx->nrec < MAXREC) {
    fx->t[fx->nrec] = sftd_now_ns();
    fx->cum[fx->nrec++] = fx->total;
  }
  if (fx->close_in_grant) {
    sftd_share_close(fx->sh);
    /* a want from a grant callback after close is refused */
    assert_int_equal(want(c), SFT_ERR_STATE);
    return;
  }
  if (fx->late >= 0 && !fx->c[fx->late].active && fx->total >= fx->late_at) {
    struct client *l = &fx->c[fx->late];
    fx->total_at_mark = fx->total;
    for (unsigned i = 0; i < fx->n; i++)
      fx->c[i].at_mark = fx->c[i].granted;
    l->active = 1;
    assert_int_equal(want(l), 0);
  }
  if (!fx->stopped && fx->total >= fx->stop_at) {
    fx->stopped = 1;
    for (unsigned i = 0; i < fx->n; i++)
      fx->c[i].at_stop = fx->c[i].granted;
  }
  if (c->active && !fx->stopped)
    assert_int_equal(want(c), 0);
}

static void fx_init(struct fixture *fx, uint64_t rate_bps) {
  memset(fx, 0, sizeof *fx);
  fx->late = -1;
  fx->stop_at = UINT64_MAX;
  assert_int_equal(uv_loop_init(&fx->loop), 0);
  assert_int_equal(sftd_share_new(&fx->loop, rate_bps, NULL, &fx->sh), 0);
}

static struct client *fx_client(struct fixture *fx, int cls, uint32_t size) {
  struct client *c = &fx->c[fx->n];
  c->fx = fx;
  c->key = 1000 + fx->n;
  c->cls = cls;
  c->size = size;
  fx->n++;
  return c;
}

/* Closes the share (unless a test did), runs the loop until its close
 * callback freed it, and checks that nothing is left. */
static void fx_done(struct fixture *fx) {
  if (!fx->close_in_grant)
    sftd_share_close(fx->sh);
  uv_run(&fx->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&fx->loop), 0);
}

static double pct(uint64_t part, uint64_t whole) {
  return whole ? 100.0 * (double)part / (double)whole : 0.0;
}

/* ---- tests ----------------------------------------------------------------*/

/* Over every interval between two grants, the bytes granted after the first
 * and up to the second fit in rate x interval + burst; and the rate is
 * reached (work conserving), not merely respected. */
static void test_rate_bound(void **state) {
  (void)state;
  struct fixture fx;
  const uint64_t rate = 200000000; /* 200 Mbit/s: 25 MB/s */
  const uint64_t burst = 250000;   /* auto burst: 10 ms at the rate */
  uint64_t t0, t1;
  fx_init(&fx, rate);
  t0 = sftd_now_ns();
  struct client *c = fx_client(&fx, SFT_SCHED_NORMAL, 16 * KIB);
  c->active = 1;
  fx.stop_at = 2 * MIB;
  assert_int_equal(want(c), 0);
  assert_int_equal(c->ngrants, 0); /* never granted from inside want */
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  t1 = sftd_now_ns();
  assert_true(fx.nrec >= 128);
  /* grant times are read just after the take: allow 0.5 ms of slack */
  for (unsigned i = 0; i < fx.nrec; i++) {
    /* from creation (the bucket starts full) */
    double lim0 =
        (double)rate * (double)(fx.t[i] - t0 + 500000) / 8e9 + (double)burst;
    assert_true((double)fx.cum[i] <= lim0);
    for (unsigned j = i + 1; j < fx.nrec; j++) {
      double lim = (double)rate * (double)(fx.t[j] - fx.t[i] + 500000) / 8e9 +
                   (double)burst;
      assert_true((double)(fx.cum[j] - fx.cum[i]) <= lim);
    }
  }
  double secs = (double)(t1 - t0) / 1e9;
  double got = (double)fx.total * 8 / secs;
  printf("share_rate_bound: %.1f Mbit/s granted at a 200 Mbit/s limit "
         "(%llu bytes in %.1f ms, the first 250 kB from the full bucket)\n",
         got / 1e6, (unsigned long long)fx.total, secs * 1e3);
  assert_true(got >= (double)rate * 0.6);
  fx_done(&fx);
}

/* Three always-wanting clients in classes 0/1/2 get 50/30/20 % +-3 of the
 * granted bytes. 16 MiB so that the DRR's bounded error (one quantum, 200
 * KiB, plus one item per class) stays well inside 3 %. */
static void test_class_shares(void **state) {
  (void)state;
  struct fixture fx;
  fx_init(&fx, 1000000000);
  for (int k = 0; k < 3; k++) {
    struct client *c = fx_client(&fx, k, 64 * KIB);
    c->active = 1;
  }
  fx.stop_at = 16 * MIB;
  /* the normal one first: arrival order does not matter */
  for (int k = 2; k >= 0; k--)
    assert_int_equal(want(&fx.c[k]), 0);
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  assert_true(fx.stopped);
  uint64_t all = fx.c[0].at_stop + fx.c[1].at_stop + fx.c[2].at_stop;
  double p[3];
  for (int k = 0; k < 3; k++)
    p[k] = pct(fx.c[k].at_stop, all);
  printf("share_classes: critical=%.1f%% high=%.1f%% normal=%.1f%%\n", p[0],
         p[1], p[2]);
  assert_true(p[0] >= 47 && p[0] <= 53);
  assert_true(p[1] >= 27 && p[1] <= 33);
  assert_true(p[2] >= 17 && p[2] <= 23);
  /* the stats saw every grant (and the wants left at the stop) */
  struct sft_sched_stats st;
  sftd_share_stats(fx.sh, &st);
  assert_int_equal(st.all.pending_items, 0);
  assert_int_equal(st.all.dequeued_bytes, fx.total);
  fx_done(&fx);
}

/* A class alone gets the whole rate; two classes without the critical one
 * split by their weights (30:20 = 60/40 %). */
static void test_work_conserving(void **state) {
  (void)state;
  struct fixture fx;
  uint64_t t0, t1;
  const uint64_t rate = 200000000;
  fx_init(&fx, rate);
  struct client *c = fx_client(&fx, SFT_SCHED_NORMAL, 64 * KIB);
  c->active = 1;
  fx.stop_at = 4 * MIB;
  t0 = sftd_now_ns();
  assert_int_equal(want(c), 0);
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  t1 = sftd_now_ns();
  double got = (double)fx.total * 8 / ((double)(t1 - t0) / 1e9);
  printf("share_alone: normal alone %.1f Mbit/s of 200\n", got / 1e6);
  /* 20 % would be 40 Mbit/s; the whole link is 200 */
  assert_true(got >= (double)rate * 0.6);
  fx_done(&fx);

  fx_init(&fx, 1000000000);
  fx_client(&fx, SFT_SCHED_HIGH, 64 * KIB)->active = 1;
  fx_client(&fx, SFT_SCHED_NORMAL, 64 * KIB)->active = 1;
  fx.stop_at = 12 * MIB;
  assert_int_equal(want(&fx.c[0]), 0);
  assert_int_equal(want(&fx.c[1]), 0);
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  double ph = pct(fx.c[0].at_stop, fx.c[0].at_stop + fx.c[1].at_stop);
  printf("share_two: high=%.1f%% normal=%.1f%%\n", ph, 100 - ph);
  assert_true(ph >= 57 && ph <= 63);
  fx_done(&fx);
}

/* Two clients of one class with equal wants share it equally. */
static void test_fair_in_class(void **state) {
  (void)state;
  struct fixture fx;
  fx_init(&fx, 1000000000);
  fx_client(&fx, SFT_SCHED_HIGH, 64 * KIB)->active = 1;
  fx_client(&fx, SFT_SCHED_HIGH, 64 * KIB)->active = 1;
  fx_client(&fx, SFT_SCHED_NORMAL, 64 * KIB)->active = 1;
  fx.stop_at = 8 * MIB;
  for (unsigned i = 0; i < 3; i++)
    assert_int_equal(want(&fx.c[i]), 0);
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  uint64_t all = fx.c[0].at_stop + fx.c[1].at_stop + fx.c[2].at_stop;
  double a = pct(fx.c[0].at_stop, all), b = pct(fx.c[1].at_stop, all);
  printf("share_in_class: high a=%.1f%% b=%.1f%% normal=%.1f%%\n", a, b,
         100 - a - b);
  /* high is 30/(30+20) = 60 %, split in two */
  assert_true(a >= 27 && a <= 33 && b >= 27 && b <= 33);
  fx_done(&fx);
}

/* High and normal run; a critical client arrives after 4 MiB and gets its
 * 50 % from its arrival on (the others 30/20). */
static void test_late_critical(void **state) {
  (void)state;
  struct fixture fx;
  fx_init(&fx, 1000000000);
  fx_client(&fx, SFT_SCHED_HIGH, 64 * KIB)->active = 1;
  fx_client(&fx, SFT_SCHED_NORMAL, 64 * KIB)->active = 1;
  fx_client(&fx, SFT_SCHED_CRITICAL, 64 * KIB); /* inactive until late_at */
  fx.late = 2;
  fx.late_at = 4 * MIB;
  fx.stop_at = 4 * MIB + 16 * MIB;
  assert_int_equal(want(&fx.c[0]), 0);
  assert_int_equal(want(&fx.c[1]), 0);
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  assert_true(fx.c[2].active);
  assert_int_equal(fx.c[2].at_mark, 0);
  uint64_t d[3], all = 0;
  for (int k = 0; k < 3; k++)
    all += d[k] = fx.c[k].at_stop - fx.c[k].at_mark;
  printf("share_late: after arrival critical=%.1f%% high=%.1f%% "
         "normal=%.1f%% (of %llu bytes)\n",
         pct(d[2], all), pct(d[0], all), pct(d[1], all),
         (unsigned long long)all);
  assert_true(pct(d[2], all) >= 47 && pct(d[2], all) <= 53);
  assert_true(pct(d[0], all) >= 27 && pct(d[0], all) <= 33);
  assert_true(pct(d[1], all) >= 17 && pct(d[1], all) <= 23);
  /* and its first grant came quickly: others got at most the held item,
   * the rest of the current class's quantum and the next class's quantum
   * (each overdrawn by one item) in between: < 512 KiB */
  uint64_t between = fx.c[2].first - fx.total_at_mark;
  printf("share_late: %llu bytes granted to others before its first grant\n",
         (unsigned long long)between);
  assert_true(between < 512 * KIB);
  fx_done(&fx);
}

/* Forget of a queued want: its callback never runs, the others proceed. */
static void test_forget_queued(void **state) {
  (void)state;
  struct fixture fx;
  fx_init(&fx, 200000000);
  struct client *a = fx_client(&fx, SFT_SCHED_CRITICAL, 16 * KIB);
  struct client *b = fx_client(&fx, SFT_SCHED_NORMAL, 16 * KIB);
  assert_int_equal(want(a), 0);
  assert_int_equal(want(b), 0);
  struct sft_sched_stats st;
  sftd_share_stats(fx.sh, &st);
  assert_int_equal(st.all.pending_items, 2);
  sftd_share_forget(fx.sh, a->key);
  sftd_share_forget(fx.sh, a->key);     /* twice: no-op */
  sftd_share_forget(fx.sh, 0xdeadbeef); /* unknown: no-op */
  sftd_share_stats(fx.sh, &st);
  assert_int_equal(st.all.pending_items, 1);
  assert_int_equal(st.cls[SFT_SCHED_NORMAL].pending_items, 1);
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  assert_int_equal(a->ngrants, 0);
  assert_int_equal(b->ngrants, 1);
  /* a forgotten key may want again */
  assert_int_equal(want(a), 0);
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  assert_int_equal(a->ngrants, 1);
  fx_done(&fx);
}

/* Forget of the held next item (dequeued, waiting for tokens). At 8 Mbit/s
 * (1 MB/s, burst 64 KiB) a's first 64 KiB want is granted at once; its
 * second want is held ~65 ms for tokens. A test timer at 10 ms queues b's
 * want behind it, then forgets a: no callback for a, and b goes next. */
struct held_ctx {
  struct fixture *fx;
  struct client *a, *b;
  int fired;
};

static void on_forget_timer(uv_timer_t *t) {
  struct held_ctx *h = t->data;
  struct sft_sched_stats st;
  h->fired = 1;
  assert_int_equal(want(h->b), 0);
  sftd_share_stats(h->fx->sh, &st);
  /* a's second want was dequeued (held) and counts as pending */
  assert_int_equal(st.cls[SFT_SCHED_CRITICAL].dequeued_items, 2);
  assert_int_equal(st.cls[SFT_SCHED_CRITICAL].pending_items, 1);
  assert_int_equal(st.cls[SFT_SCHED_NORMAL].pending_items, 1);
  assert_int_equal(st.all.pending_items, 2);
  assert_int_equal(h->a->ngrants, 1);
  assert_int_equal(h->b->ngrants, 0);
  /* a second want for the held key is refused too */
  assert_int_equal(want(h->a), SFT_ERR_STATE);
  sftd_share_forget(h->fx->sh, h->a->key);
  sftd_share_stats(h->fx->sh, &st);
  assert_int_equal(st.cls[SFT_SCHED_CRITICAL].pending_items, 0);
  assert_int_equal(st.all.pending_items, 1);
  uv_close((uv_handle_t *)t, NULL);
}

static void test_forget_held(void **state) {
  (void)state;
  struct fixture fx;
  struct held_ctx h = {0};
  uv_timer_t tm;
  fx_init(&fx, 8000000);
  h.fx = &fx;
  h.a = fx_client(&fx, SFT_SCHED_CRITICAL, 64 * KIB);
  h.b = fx_client(&fx, SFT_SCHED_NORMAL, 64 * KIB);
  h.a->active = 1;           /* wants again from its first grant */
  fx.stop_at = 64 * KIB + 1; /* ... and only from its first */
  assert_int_equal(want(h.a), 0);
  uv_timer_init(&fx.loop, &tm);
  tm.data = &h;
  uv_timer_start(&tm, on_forget_timer, 10, 0);
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  assert_true(h.fired);
  assert_int_equal(h.a->ngrants, 1);
  assert_int_equal(h.b->ngrants, 1);
  /* b waited for the tokens a's forgotten want did not take: ~65 ms after
   * a's grant, not ~130 */
  assert_true(fx.t[1] - fx.t[0] < 110000000ull);
  fx_done(&fx);
}

static void test_double_want(void **state) {
  (void)state;
  struct fixture fx;
  fx_init(&fx, 200000000);
  struct client *a = fx_client(&fx, SFT_SCHED_HIGH, 1000);
  assert_int_equal(want(a), 0);
  assert_int_equal(want(a), SFT_ERR_STATE);
  /* another class or size for the same key: still one want per key */
  assert_int_equal(sftd_share_want(fx.sh, a->key, 0, 5, on_grant, a),
                   SFT_ERR_STATE);
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  assert_int_equal(a->ngrants, 1);
  assert_int_equal(want(a), 0); /* granted: the key may want again */
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  assert_int_equal(a->ngrants, 2);
  fx_done(&fx);
}

static void test_bad_args(void **state) {
  (void)state;
  uv_loop_t loop;
  struct sftd_share *sh = (struct sftd_share *)&loop;
  uint32_t w0[3] = {50, 0, 20}, wbig[3] = {1, 1, SFT_SCHED_MAX_WEIGHT + 1};
  uint32_t wok[3] = {1, 1, 1};
  struct sft_sched_stats st;
  int dummy;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(sftd_share_new(&loop, 0, NULL, &sh), SFT_ERR_INVAL);
  assert_null(sh);
  assert_int_equal(sftd_share_new(NULL, 1000, NULL, &sh), SFT_ERR_INVAL);
  assert_int_equal(sftd_share_new(&loop, 1000, NULL, NULL), SFT_ERR_INVAL);
  assert_int_equal(sftd_share_new(&loop, 1000, w0, &sh), SFT_ERR_INVAL);
  assert_null(sh);
  assert_int_equal(sftd_share_new(&loop, 1000, wbig, &sh), SFT_ERR_INVAL);
  assert_int_equal(sftd_share_new(&loop, 1000, wok, &sh), 0);
  assert_int_equal(sftd_share_want(NULL, 1, 0, 1, on_grant, &dummy),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_share_want(sh, 1, 0, 1, NULL, &dummy), SFT_ERR_INVAL);
  assert_int_equal(sftd_share_want(sh, 1, 0, 0, on_grant, &dummy),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_share_want(sh, 1, -1, 1, on_grant, &dummy),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_share_want(sh, 1, 3, 1, on_grant, &dummy),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_share_set_rate(sh, 0), SFT_ERR_INVAL);
  assert_int_equal(sftd_share_set_rate(NULL, 1000), SFT_ERR_INVAL);
  assert_int_equal(sftd_share_set_rate(sh, 1000), 0);
  sftd_share_forget(NULL, 1);
  sftd_share_forget(sh, 1);
  sftd_share_stats(sh, NULL);
  memset(&st, 0xff, sizeof st);
  sftd_share_stats(NULL, &st);
  assert_int_equal(st.all.pending_items, 0);
  assert_int_equal(st.xfers, 0);
  sftd_share_stats(sh, &st);
  assert_int_equal(st.all.pending_items, 0);
  sftd_share_close(NULL);
  sftd_share_close(sh);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* SFTD_SHARE_MAX_WANTS keys may want at once; one more is FULL; a forget
 * frees a place. */
static void test_full(void **state) {
  (void)state;
  struct fixture fx;
  fx_init(&fx, 1000);
  struct client *a = fx_client(&fx, SFT_SCHED_NORMAL, 1);
  for (uint64_t k = 0; k < SFTD_SHARE_MAX_WANTS; k++)
    assert_int_equal(sftd_share_want(fx.sh, k, (int)(k % 3), 1, on_grant, a),
                     0);
  assert_int_equal(
      sftd_share_want(fx.sh, SFTD_SHARE_MAX_WANTS, 0, 1, on_grant, a),
      SFT_ERR_FULL);
  struct sft_sched_stats st;
  sftd_share_stats(fx.sh, &st);
  assert_int_equal(st.all.pending_items, SFTD_SHARE_MAX_WANTS);
  sftd_share_forget(fx.sh, 7);
  assert_int_equal(
      sftd_share_want(fx.sh, SFTD_SHARE_MAX_WANTS, 0, 1, on_grant, a), 0);
  /* close with all of them pending: no callback, no leak (ASan) */
  fx_done(&fx);
  assert_int_equal(a->ngrants, 0);
}

/* A held want waiting ~0.5 s at 1 Mbit/s is granted soon after the rate is
 * raised to 1 Gbit/s. */
struct rate_ctx {
  struct fixture *fx;
  uint64_t t_set;
};

static void on_rate_timer(uv_timer_t *t) {
  struct rate_ctx *r = t->data;
  assert_int_equal(r->fx->c[0].ngrants, 1);
  r->t_set = sftd_now_ns();
  assert_int_equal(sftd_share_set_rate(r->fx->sh, 1000000000), 0);
  uv_close((uv_handle_t *)t, NULL);
}

static void test_set_rate(void **state) {
  (void)state;
  struct fixture fx;
  struct rate_ctx r = {&fx, 0};
  uv_timer_t tm;
  fx_init(&fx, 1000000); /* 125 kB/s, burst 64 KiB */
  struct client *a = fx_client(&fx, SFT_SCHED_HIGH, 64 * KIB);
  a->active = 1;
  fx.stop_at = 2 * 64 * KIB; /* two grants */
  assert_int_equal(want(a), 0);
  uv_timer_init(&fx.loop, &tm);
  tm.data = &r;
  uv_timer_start(&tm, on_rate_timer, 5, 0);
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  assert_int_equal(a->ngrants, 2);
  uint64_t waited = fx.t[1] - r.t_set;
  printf("share_set_rate: second grant %.2f ms after the rate change "
         "(%.0f ms at the old rate)\n",
         (double)waited / 1e6, 64.0 * 1024 * 8 / 1e6 * 1e3);
  assert_true(waited < 100000000ull); /* old rate: ~520 ms */
  fx_done(&fx);
}

/* Closing from inside a grant: no further callbacks, memory freed. */
static void test_close_in_grant(void **state) {
  (void)state;
  struct fixture fx;
  fx_init(&fx, 200000000);
  struct client *a = fx_client(&fx, SFT_SCHED_HIGH, 1000);
  struct client *b = fx_client(&fx, SFT_SCHED_HIGH, 1000);
  fx.close_in_grant = 1;
  assert_int_equal(want(a), 0);
  assert_int_equal(want(b), 0);
  uv_run(&fx.loop, UV_RUN_DEFAULT);
  assert_int_equal(a->ngrants + b->ngrants, 1);
  fx_done(&fx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rate_bound),
      cmocka_unit_test(test_class_shares),
      cmocka_unit_test(test_work_conserving),
      cmocka_unit_test(test_fair_in_class),
      cmocka_unit_test(test_late_critical),
      cmocka_unit_test(test_forget_queued),
      cmocka_unit_test(test_forget_held),
      cmocka_unit_test(test_double_want),
      cmocka_unit_test(test_bad_args),
      cmocka_unit_test(test_full),
      cmocka_unit_test(test_set_rate),
      cmocka_unit_test(test_close_in_grant),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
