/* Tests of lib/sched: the priority scheduler. Time is a fake clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sft/sched.h"

#define MS 1000000ull
#define KIB 1024u
#define MIB (1024u * 1024u)

static uint64_t rng_next(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static struct sft_sched_item mk(uint64_t xfer, uint64_t seq, int cls,
                                uint32_t size, uint64_t u) {
  struct sft_sched_item it;
  memset(&it, 0, sizeof(it));
  it.xfer = xfer;
  it.seq = seq;
  it.cls = (uint8_t)cls;
  it.size = size;
  it.user.u64 = u;
  return it;
}

static sft_sched *new_default(void) {
  sft_sched *s = NULL;
  assert_int_equal(sft_sched_new(&s, NULL), 0);
  assert_non_null(s);
  return s;
}

static void enq(sft_sched *s, uint64_t xfer, uint64_t seq, int cls,
                uint32_t size, uint64_t now) {
  struct sft_sched_item it = mk(xfer, seq, cls, size, xfer * 1000 + seq);
  assert_int_equal(sft_sched_enqueue(s, &it, now), 0);
}

static struct sft_sched_item deq(sft_sched *s, uint64_t now) {
  struct sft_sched_item it;
  assert_int_equal(sft_sched_dequeue(s, now, &it), 0);
  assert_true(it.user.u64 == it.xfer * 1000 + it.seq);
  return it;
}

static void expect_seq(sft_sched *s, uint64_t now, uint64_t xfer,
                       uint64_t seq) {
  struct sft_sched_item it = deq(s, now);
  if (it.xfer != xfer || it.seq != seq)
    print_message("got %llu/%llu want %llu/%llu\n", (unsigned long long)it.xfer,
                  (unsigned long long)it.seq, (unsigned long long)xfer,
                  (unsigned long long)seq);
  assert_true(it.xfer == xfer);
  assert_true(it.seq == seq);
}

static void expect_empty(sft_sched *s, uint64_t now) {
  struct sft_sched_item it;
  assert_int_equal(sft_sched_dequeue(s, now, &it), SFT_ERR_EMPTY);
}

/* ---- ordering ------------------------------------------------------------*/

static void test_fifo_in_order(void **state) {
  sft_sched *s = new_default();
  (void)state;
  for (uint64_t i = 0; i < 10; i++)
    enq(s, 7, i, SFT_SCHED_NORMAL, 4 * KIB, 0);
  for (uint64_t i = 0; i < 10; i++)
    expect_seq(s, 1, 7, i);
  expect_empty(s, 2);
  assert_int_equal(sft_sched_len(s), 0);
  sft_sched_del(s);
}

static void test_out_of_order_enqueue(void **state) {
  static const uint64_t in[] = {50, 30, 90, 10, 70, 20, 80, 60, 40, 0, 100};
  sft_sched *s = new_default();
  (void)state;
  for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++)
    enq(s, 3, in[i], SFT_SCHED_HIGH, 1000, 0);
  for (uint64_t i = 0; i <= 100; i += 10)
    expect_seq(s, 0, 3, i);
  expect_empty(s, 0);
  sft_sched_del(s);
}

static void test_order_after_requeue(void **state) {
  sft_sched *s = new_default();
  struct sft_sched_item a, b;
  uint64_t t = 5 * MS, nr = 0;
  (void)state;
  for (uint64_t i = 0; i < 8; i++)
    enq(s, 1, i, SFT_SCHED_NORMAL, 1000, 0);
  a = deq(s, t); /* 0 */
  b = deq(s, t); /* 1 */
  assert_true(a.seq == 0 && b.seq == 1);
  assert_int_equal(b.retries, 0);
  assert_int_equal(sft_sched_requeue(s, &b, t), 0);
  assert_int_equal(sft_sched_requeue(s, &a, t + 1), 0);
  assert_int_equal(sft_sched_next_ready(s, &nr), 0);
  assert_true(nr == t + 100 * MS);
  /* while 0 and 1 back off, later items flow */
  expect_seq(s, t, 1, 2);
  expect_seq(s, t + 50 * MS, 1, 3);
  /* at t+100ms seq 1 is eligible (0 not yet: it was requeued at t+1) and
   * goes before 4 */
  expect_seq(s, t + 100 * MS, 1, 1);
  expect_seq(s, t + 100 * MS + 1, 1, 0);
  expect_seq(s, t + 100 * MS + 1, 1, 4);
  /* a requeued seq 5 waits while 6, 7 go; once eligible it comes first */
  b = deq(s, t + 101 * MS);
  assert_true(b.seq == 5);
  assert_int_equal(sft_sched_requeue(s, &b, t + 101 * MS), 0);
  expect_seq(s, t + 101 * MS, 1, 6);
  enq(s, 1, 8, SFT_SCHED_NORMAL, 1000, t + 102 * MS);
  b = deq(s, t + 201 * MS); /* 5 is eligible again: before 7 and 8 */
  assert_true(b.seq == 5);
  assert_int_equal(b.retries, 1);
  expect_seq(s, t + 201 * MS, 1, 7);
  expect_seq(s, t + 201 * MS, 1, 8);
  expect_empty(s, t + 300 * MS);
  sft_sched_del(s);
}

static void test_two_transfers_each_in_order(void **state) {
  sft_sched *s = new_default();
  uint64_t next[2] = {0, 0};
  (void)state;
  for (uint64_t i = 0; i < 20; i++) {
    enq(s, 10, i, SFT_SCHED_NORMAL, 8 * KIB, 0);
    enq(s, 11, i, SFT_SCHED_NORMAL, 8 * KIB, 0);
  }
  for (int i = 0; i < 40; i++) {
    struct sft_sched_item it = deq(s, 1);
    assert_true(it.seq == next[it.xfer - 10]);
    next[it.xfer - 10]++;
    /* equal sizes: strict alternation */
    assert_true(it.xfer == (uint64_t)(10 + (i & 1)));
  }
  sft_sched_del(s);
}

/* ---- shares --------------------------------------------------------------*/

#define XPC 3 /* transfers per class */

struct harness {
  sft_sched *s;
  uint64_t rng;
  uint64_t seq[SFT_SCHED_NCLASS * XPC];
  unsigned live; /* classes kept backlogged */
  uint64_t bytes[SFT_SCHED_NCLASS];
  uint64_t now;
};

static void h_push(struct harness *h, int cls, int x) {
  uint32_t size = (uint32_t)(KIB + rng_next(&h->rng) % (MIB - KIB + 1));
  uint64_t id = (uint64_t)(cls * XPC + x);
  enq(h->s, 100 + id, h->seq[id]++, cls, size, h->now);
}

static void h_activate(struct harness *h, int cls) {
  h->live |= 1u << cls;
  for (int x = 0; x < XPC; x++)
    for (int k = 0; k < 8; k++)
      h_push(h, cls, x);
}

static void h_deactivate(struct harness *h, int cls) {
  h->live &= ~(1u << cls);
  for (int x = 0; x < XPC; x++)
    assert_int_equal(sft_sched_remove(h->s, 100 + (uint64_t)(cls * XPC + x),
                                      NULL, NULL, NULL),
                     0);
}

static void h_run(struct harness *h, int n) {
  memset(h->bytes, 0, sizeof(h->bytes));
  for (int i = 0; i < n; i++) {
    struct sft_sched_item it = deq(h->s, ++h->now);
    assert_true(h->live >> it.cls & 1);
    h->bytes[it.cls] += it.size;
    h_push(h, it.cls, (int)((it.xfer - 100) % XPC));
  }
}

static void h_check(const struct harness *h, double c, double hi, double no) {
  double tot = (double)(h->bytes[0] + h->bytes[1] + h->bytes[2]);
  double want[3] = {c, hi, no};
  for (int k = 0; k < 3; k++) {
    double got = (double)h->bytes[k] / tot;
    if (want[k] == 0) {
      assert_true(h->bytes[k] == 0);
    } else if (fabs(got / want[k] - 1.0) > 0.02) {
      fail_msg("class %d share %.4f, want %.4f", k, got, want[k]);
    }
  }
}

static void h_init(struct harness *h, uint64_t seed) {
  memset(h, 0, sizeof(*h));
  h->s = new_default();
  h->rng = seed;
}

static void test_shares_50_30_20(void **state) {
  struct harness h;
  (void)state;
  h_init(&h, 0x1234567);
  for (int c = 0; c < SFT_SCHED_NCLASS; c++)
    h_activate(&h, c);
  h_run(&h, 10000);
  h_check(&h, 0.5, 0.3, 0.2);
  sft_sched_del(h.s);
}

static void test_shares_redistribution(void **state) {
  struct harness h;
  (void)state;
  h_init(&h, 0xabcdef);
  /* only High + Normal: 60/40 */
  h_activate(&h, SFT_SCHED_HIGH);
  h_activate(&h, SFT_SCHED_NORMAL);
  h_run(&h, 10000);
  h_check(&h, 0, 0.6, 0.4);
  /* Critical becomes active again: back to 50/30/20 */
  h_activate(&h, SFT_SCHED_CRITICAL);
  h_run(&h, 10000);
  h_check(&h, 0.5, 0.3, 0.2);
  /* High goes idle: Critical + Normal 50:20 */
  h_deactivate(&h, SFT_SCHED_HIGH);
  h_run(&h, 10000);
  h_check(&h, 50.0 / 70, 0, 20.0 / 70);
  /* only Normal: everything */
  h_deactivate(&h, SFT_SCHED_CRITICAL);
  h_run(&h, 2000);
  h_check(&h, 0, 0, 1.0);
  /* only Critical + High: 62.5/37.5 */
  h_deactivate(&h, SFT_SCHED_NORMAL);
  h_activate(&h, SFT_SCHED_CRITICAL);
  h_activate(&h, SFT_SCHED_HIGH);
  h_run(&h, 10000);
  h_check(&h, 0.625, 0.375, 0);
  sft_sched_del(h.s);
}

static void test_custom_weights(void **state) {
  struct sft_sched_config cfg;
  struct harness h;
  (void)state;
  sft_sched_config_default(&cfg);
  cfg.weight[0] = 1;
  cfg.weight[1] = 1;
  cfg.weight[2] = 2;
  cfg.quantum_unit = 64 * KIB;
  memset(&h, 0, sizeof(h));
  h.rng = 99;
  assert_int_equal(sft_sched_new(&h.s, &cfg), 0);
  for (int c = 0; c < SFT_SCHED_NCLASS; c++)
    h_activate(&h, c);
  h_run(&h, 10000);
  h_check(&h, 0.25, 0.25, 0.5);
  sft_sched_del(h.s);
}

/* Small items, quanta much larger than items, and the opposite. */
static void test_shares_extreme_sizes(void **state) {
  sft_sched *s = new_default();
  uint64_t bytes[3] = {0, 0, 0}, seq[3] = {0, 0, 0};
  static const uint32_t size[3] = {16 * MIB, 4 * KIB, 1000};
  (void)state;
  for (int c = 0; c < 3; c++)
    for (int k = 0; k < 4; k++)
      enq(s, (uint64_t)c, seq[c]++, c, size[c], 0);
  for (int i = 0; i < 1000000; i++) {
    struct sft_sched_item it = deq(s, 0);
    bytes[it.cls] += it.size;
    enq(s, it.xfer, seq[it.cls]++, it.cls, size[it.cls], 0);
  }
  double tot = (double)(bytes[0] + bytes[1] + bytes[2]);
  assert_true(fabs((double)bytes[0] / tot - 0.5) < 0.01);
  assert_true(fabs((double)bytes[1] / tot - 0.3) < 0.01);
  assert_true(fabs((double)bytes[2] / tot - 0.2) < 0.01);
  sft_sched_del(s);
}

/* Work conservation: any single class gets every dequeue. */
static void test_single_class_work_conserving(void **state) {
  (void)state;
  for (int c = 0; c < SFT_SCHED_NCLASS; c++) {
    sft_sched *s = new_default();
    for (uint64_t i = 0; i < 100; i++)
      enq(s, 5, i, c, (uint32_t)(1 + i * 9999), 0);
    for (uint64_t i = 0; i < 100; i++) {
      struct sft_sched_item it = deq(s, 0);
      assert_int_equal(it.cls, c);
      assert_true(it.seq == i);
    }
    expect_empty(s, 0);
    sft_sched_del(s);
  }
}

/* DRR: a class that went idle does not bank the credit it left unused, so
 * when it comes back it sends at most one quantum (200 KB for Critical) per
 * turn: two 100 KiB items, not four. */
static void test_idle_class_banks_no_credit(void **state) {
  sft_sched *s = new_default();
  int run = 0, max_run = 0, crit = 0;
  (void)state;
  enq(s, 1, 0, SFT_SCHED_CRITICAL, 1000, 0);
  for (uint64_t i = 0; i < 60; i++)
    enq(s, 2, i, SFT_SCHED_HIGH, 100 * KIB, 0);
  assert_int_equal(deq(s, 0).cls, SFT_SCHED_CRITICAL);
  for (int i = 0; i < 10; i++)
    assert_int_equal(deq(s, 0).cls, SFT_SCHED_HIGH);
  for (uint64_t i = 1; i <= 10; i++)
    enq(s, 1, i, SFT_SCHED_CRITICAL, 100 * KIB, 0);
  for (int i = 0; i < 30; i++) {
    struct sft_sched_item it = deq(s, 0);
    run = it.cls == SFT_SCHED_CRITICAL ? run + 1 : 0;
    crit += it.cls == SFT_SCHED_CRITICAL;
    if (run > max_run)
      max_run = run;
  }
  assert_int_equal(max_run, 2);
  assert_true(crit >= 10); /* and it still gets its 50:30 share */
  sft_sched_del(s);
}

/* Byte fairness between transfers of one class. */
static void test_transfers_fair_by_bytes(void **state) {
  sft_sched *s = new_default();
  uint64_t bytes[2] = {0, 0}, seq[2] = {0, 0};
  static const uint32_t size[2] = {64 * KIB, MIB};
  (void)state;
  for (int x = 0; x < 2; x++)
    for (int k = 0; k < 4; k++)
      enq(s, (uint64_t)x, seq[x]++, SFT_SCHED_HIGH, size[x], 0);
  while (bytes[0] + bytes[1] < 512ull * MIB) {
    struct sft_sched_item it = deq(s, 0);
    bytes[it.xfer] += it.size;
    enq(s, it.xfer, seq[it.xfer]++, SFT_SCHED_HIGH, size[it.xfer], 0);
  }
  /* within one large item */
  assert_true(llabs((long long)bytes[0] - (long long)bytes[1]) <=
              (long long)MIB);
  /* a newcomer gets neither credit nor debt from the others' history: while
   * it sends its 4 MiB, each of the others sends about as much */
  uint64_t during[3] = {0, 0, 0};
  int left2 = 4;
  for (int k = 0; k < 4; k++)
    enq(s, 2, (uint64_t)k, SFT_SCHED_HIGH, MIB, 0);
  while (left2 > 0) {
    struct sft_sched_item it = deq(s, 0);
    during[it.xfer] += it.size;
    if (it.xfer == 2)
      left2--;
    else
      enq(s, it.xfer, seq[it.xfer]++, SFT_SCHED_HIGH, size[it.xfer], 0);
  }
  assert_true(during[0] >= 2 * MIB && during[0] <= 5 * MIB);
  assert_true(during[1] >= 2 * MIB && during[1] <= 5 * MIB);
  sft_sched_del(s);
}

/* ---- backoff -------------------------------------------------------------*/

static void test_backoff_timing(void **state) {
  sft_sched *s = new_default();
  struct sft_sched_item it;
  struct sft_sched_stats st;
  uint64_t t = 1000000007ull, nr = 0;
  (void)state;
  assert_int_equal(sft_sched_next_ready(s, &nr), SFT_ERR_EMPTY);
  enq(s, 9, 0, SFT_SCHED_CRITICAL, 1000, t);
  it = deq(s, t);
  for (unsigned n = 0; n < SFT_SCHED_DEFAULT_MAX_RETRIES; n++) {
    uint64_t d = (100 * MS) << n;
    assert_int_equal(it.retries, n);
    assert_int_equal(sft_sched_requeue(s, &it, t), 0);
    assert_int_equal(sft_sched_next_ready(s, &nr), 0);
    assert_true(nr == t + d);
    expect_empty(s, t);
    expect_empty(s, t + d - 1000); /* t + 99.999 ms for the first */
    expect_empty(s, t + d - 1);
    assert_int_equal(sft_sched_len(s), 1);
    it = deq(s, t + d);
    assert_true(it.seq == 0 && it.xfer == 9);
    assert_int_equal(sft_sched_next_ready(s, &nr), SFT_ERR_EMPTY);
    t += d + 12345;
  }
  assert_int_equal(it.retries, 5);
  assert_int_equal(sft_sched_requeue(s, &it, t), SFT_ERR_RETRIES);
  assert_int_equal(sft_sched_len(s), 0);
  expect_empty(s, UINT64_MAX);
  assert_int_equal(sft_sched_get_stats(s, &st), 0);
  assert_true(st.cls[SFT_SCHED_CRITICAL].requeues == 5);
  assert_true(st.cls[SFT_SCHED_CRITICAL].drops == 1);
  assert_true(st.all.drops == 1);
  sft_sched_del(s);
}

static void test_backoff_configurable(void **state) {
  struct sft_sched_config cfg;
  sft_sched *s;
  struct sft_sched_item it;
  uint64_t nr;
  (void)state;
  sft_sched_config_default(&cfg);
  cfg.max_retries = 0;
  assert_int_equal(sft_sched_new(&s, &cfg), 0);
  enq(s, 1, 0, SFT_SCHED_HIGH, 10, 0);
  it = deq(s, 0);
  assert_int_equal(sft_sched_requeue(s, &it, 0), SFT_ERR_RETRIES);
  sft_sched_del(s);

  cfg.max_retries = 2;
  cfg.backoff_base_ns = 7;
  assert_int_equal(sft_sched_new(&s, &cfg), 0);
  enq(s, 1, 0, SFT_SCHED_HIGH, 10, 0);
  it = deq(s, 0);
  assert_int_equal(sft_sched_requeue(s, &it, 100), 0);
  assert_int_equal(sft_sched_next_ready(s, &nr), 0);
  assert_true(nr == 107);
  expect_empty(s, 106);
  it = deq(s, 107);
  assert_int_equal(sft_sched_requeue(s, &it, 200), 0);
  assert_int_equal(sft_sched_next_ready(s, &nr), 0);
  assert_true(nr == 214);
  it = deq(s, 214);
  assert_int_equal(sft_sched_requeue(s, &it, 300), SFT_ERR_RETRIES);
  /* the delay saturates instead of wrapping */
  it.retries = 1;
  assert_int_equal(sft_sched_requeue(s, &it, UINT64_MAX - 3), 0);
  assert_int_equal(sft_sched_next_ready(s, &nr), 0);
  assert_true(nr == UINT64_MAX);
  expect_empty(s, UINT64_MAX - 1);
  it = deq(s, UINT64_MAX);
  sft_sched_del(s);
}

/* Several backed-off items of several transfers come back in time order
 * and each transfer stays in sequence order. */
static void test_backoff_many(void **state) {
  sft_sched *s = new_default();
  struct sft_sched_item it[6];
  uint64_t nr;
  (void)state;
  for (uint64_t x = 0; x < 2; x++)
    for (uint64_t q = 0; q < 3; q++)
      enq(s, x, q, SFT_SCHED_NORMAL, 100, 0);
  for (int i = 0; i < 6; i++)
    it[i] = deq(s, 0);
  /* requeue in reverse order at different times */
  for (int i = 5; i >= 0; i--)
    assert_int_equal(sft_sched_requeue(s, &it[i], (uint64_t)(5 - i) * MS), 0);
  assert_int_equal(sft_sched_next_ready(s, &nr), 0);
  assert_true(nr == 100 * MS);
  expect_empty(s, 100 * MS - 1);
  /* at 200 ms everything is back: both transfers in seq order */
  uint64_t next[2] = {0, 0};
  for (int i = 0; i < 6; i++) {
    struct sft_sched_item o = deq(s, 200 * MS);
    assert_true(o.seq == next[o.xfer]);
    next[o.xfer]++;
    assert_int_equal(o.retries, 1);
  }
  expect_empty(s, 300 * MS);
  sft_sched_del(s);
}

/* ---- capacity ------------------------------------------------------------*/

static void test_capacity(void **state) {
  struct sft_sched_config cfg;
  struct sft_sched_stats st;
  struct sft_sched_item it;
  sft_sched *s;
  (void)state;
  sft_sched_config_default(&cfg);
  cfg.capacity = 4;
  cfg.max_xfers = 2;
  assert_int_equal(sft_sched_new(&s, &cfg), 0);
  for (uint64_t i = 0; i < 4; i++)
    enq(s, 1, i, SFT_SCHED_NORMAL, 100, 0);
  it = mk(1, 4, SFT_SCHED_NORMAL, 100, 0);
  assert_int_equal(sft_sched_enqueue(s, &it, 0), SFT_ERR_FULL);
  it = mk(2, 0, SFT_SCHED_HIGH, 100, 0);
  assert_int_equal(sft_sched_enqueue(s, &it, 0), SFT_ERR_FULL);
  assert_int_equal(sft_sched_len(s), 4);
  assert_int_equal(sft_sched_get_stats(s, &st), 0);
  assert_true(st.cls[SFT_SCHED_NORMAL].pending_items == 4);
  assert_true(st.cls[SFT_SCHED_HIGH].pending_items == 0);
  assert_int_equal(st.xfers, 1);
  /* requeue into a full queue is refused with nothing changed */
  it = mk(1, 9, SFT_SCHED_NORMAL, 100, 1009);
  assert_int_equal(sft_sched_requeue(s, &it, 0), SFT_ERR_FULL);
  assert_int_equal(sft_sched_next_ready(s, &(uint64_t){0}), SFT_ERR_EMPTY);
  /* room after a dequeue */
  expect_seq(s, 0, 1, 0);
  assert_int_equal(sft_sched_enqueue(s, &it, 0), 0);
  assert_int_equal(sft_sched_enqueue(s, &it, 0), SFT_ERR_FULL);
  for (uint64_t i = 1; i < 4; i++)
    expect_seq(s, 0, 1, i);
  expect_seq(s, 0, 1, 9);
  /* transfer records: 2 */
  enq(s, 1, 0, SFT_SCHED_NORMAL, 100, 0);
  enq(s, 2, 0, SFT_SCHED_NORMAL, 100, 0);
  it = mk(3, 0, SFT_SCHED_NORMAL, 100, 3000);
  assert_int_equal(sft_sched_enqueue(s, &it, 0), SFT_ERR_FULL);
  assert_int_equal(sft_sched_pause(s, 3), SFT_ERR_FULL);
  assert_int_equal(sft_sched_pause(s, 2), 0); /* known: fine */
  (void)deq(s, 0);                            /* xfer 1 leaves */
  assert_int_equal(sft_sched_enqueue(s, &it, 0), 0);
  sft_sched_del(s);
}

/* ---- pause / resume / remove / set_class ---------------------------------*/

struct collect {
  uint64_t sum;
  size_t n;
  int seen_retry;
};

static void collect_cb(const struct sft_sched_item *it, void *arg) {
  struct collect *c = arg;
  c->sum += it->user.u64;
  c->n++;
  if (it->retries)
    c->seen_retry = 1;
}

static void test_pause_resume(void **state) {
  sft_sched *s = new_default();
  struct sft_sched_stats st;
  (void)state;
  for (uint64_t i = 0; i < 3; i++) {
    enq(s, 1, i, SFT_SCHED_CRITICAL, 1000, 0);
    enq(s, 2, i, SFT_SCHED_NORMAL, 1000, 0);
  }
  assert_int_equal(sft_sched_pause(s, 1), 0);
  assert_int_equal(sft_sched_pause(s, 1), 0);
  assert_int_equal(sft_sched_is_paused(s, 1), 1);
  assert_int_equal(sft_sched_is_paused(s, 2), 0);
  for (uint64_t i = 0; i < 3; i++)
    expect_seq(s, 0, 2, i);
  expect_empty(s, 0); /* xfer 1 still holds items */
  assert_int_equal(sft_sched_len(s), 3);
  assert_int_equal(sft_sched_get_stats(s, &st), 0);
  assert_int_equal(st.paused_xfers, 1);
  assert_true(st.cls[SFT_SCHED_CRITICAL].pending_items == 3);
  /* items enqueued while paused wait too */
  enq(s, 1, 3, SFT_SCHED_CRITICAL, 1000, 0);
  expect_empty(s, 0);
  assert_int_equal(sft_sched_resume(s, 1), 0);
  assert_int_equal(sft_sched_resume(s, 1), 0);
  for (uint64_t i = 0; i < 4; i++)
    expect_seq(s, 0, 1, i);
  expect_empty(s, 0);
  assert_int_equal(sft_sched_resume(s, 1), SFT_ERR_NOT_FOUND);

  /* pause before the first item; the record survives while empty */
  assert_int_equal(sft_sched_pause(s, 5), 0);
  assert_int_equal(sft_sched_is_paused(s, 5), 1);
  enq(s, 5, 0, SFT_SCHED_HIGH, 10, 0);
  enq(s, 6, 0, SFT_SCHED_NORMAL, 10, 0);
  expect_seq(s, 0, 6, 0);
  expect_empty(s, 0);
  assert_int_equal(sft_sched_resume(s, 5), 0);
  struct sft_sched_item it = deq(s, 0);
  assert_true(it.xfer == 5 && it.cls == SFT_SCHED_HIGH);
  /* an empty paused record is freed by resume */
  assert_int_equal(sft_sched_pause(s, 8), 0);
  assert_int_equal(sft_sched_get_stats(s, &st), 0);
  assert_int_equal(st.xfers, 1);
  assert_int_equal(sft_sched_resume(s, 8), 0);
  assert_int_equal(sft_sched_get_stats(s, &st), 0);
  assert_int_equal(st.xfers, 0);
  assert_int_equal(st.paused_xfers, 0);

  /* a paused transfer's item finishing its backoff stays put */
  enq(s, 4, 0, SFT_SCHED_NORMAL, 10, 0);
  it = deq(s, 0);
  assert_int_equal(sft_sched_requeue(s, &it, 0), 0);
  assert_int_equal(sft_sched_pause(s, 4), 0);
  expect_empty(s, 200 * MS);
  assert_int_equal(sft_sched_next_ready(s, &(uint64_t){0}), SFT_ERR_EMPTY);
  assert_int_equal(sft_sched_resume(s, 4), 0);
  it = deq(s, 200 * MS);
  assert_true(it.xfer == 4 && it.retries == 1);
  sft_sched_del(s);
}

static void test_remove(void **state) {
  sft_sched *s = new_default();
  struct sft_sched_stats st;
  struct collect col = {0, 0, 0};
  struct sft_sched_item it;
  size_t n = 99;
  uint64_t want = 0;
  (void)state;
  assert_int_equal(sft_sched_remove(s, 1, NULL, NULL, &n), SFT_ERR_NOT_FOUND);
  for (uint64_t i = 0; i < 10; i++) {
    enq(s, 1, i, SFT_SCHED_HIGH, 100, 0);
    enq(s, 2, i, SFT_SCHED_HIGH, 100, 0);
  }
  /* put some of xfer 1 into the pairing heap and the backoff heap */
  for (int i = 0; i < 8; i++) {
    it = deq(s, 0);
    if (it.xfer == 2)
      continue;
    if (it.seq == 1) /* will come back out of order */
      assert_int_equal(sft_sched_requeue(s, &it, 0), 0);
    else if (it.seq == 2) /* still backing off at remove time */
      assert_int_equal(sft_sched_requeue(s, &it, 50 * MS), 0);
  }
  enq(s, 1, 0, SFT_SCHED_HIGH, 100, 0); /* out of order: pairing heap */
  assert_int_equal(sft_sched_pause(s, 1), 0);
  expect_seq(s, 100 * MS, 2, 4); /* promotes seq 1 of the paused xfer 1 */
  /* xfer 1 holds: 0, 1 (heaps), 2 (backoff), 4..9 */
  for (uint64_t i = 0; i < 10; i++)
    if (i != 3)
      want += 1000 + i;
  assert_int_equal(sft_sched_remove(s, 1, collect_cb, &col, &n), 0);
  assert_int_equal(n, 9);
  assert_int_equal(col.n, 9);
  assert_true(col.sum == want);
  assert_int_equal(col.seen_retry, 1);
  assert_int_equal(sft_sched_is_paused(s, 1), 0);
  assert_int_equal(sft_sched_next_ready(s, &(uint64_t){0}), SFT_ERR_EMPTY);
  assert_int_equal(sft_sched_get_stats(s, &st), 0);
  assert_true(st.cls[SFT_SCHED_HIGH].removed == 9);
  assert_true(st.cls[SFT_SCHED_HIGH].pending_items == 5);
  assert_true(st.cls[SFT_SCHED_HIGH].pending_bytes == 500);
  assert_int_equal(st.xfers, 1);
  assert_int_equal(st.paused_xfers, 0);
  assert_int_equal(sft_sched_len(s), 5);
  /* the other transfer is intact and in order */
  for (uint64_t i = 5; i < 10; i++)
    expect_seq(s, 200 * MS, 2, i);
  expect_empty(s, 300 * MS);
  /* a removed transfer id can be reused, unpaused */
  enq(s, 1, 0, SFT_SCHED_NORMAL, 1, 0);
  expect_seq(s, 0, 1, 0);
  /* removing leaves other transfers' backoff entries alone */
  for (uint64_t x = 10; x < 20; x++) {
    enq(s, x, 0, SFT_SCHED_NORMAL, 1, 0);
    it = deq(s, 0);
    assert_int_equal(sft_sched_requeue(s, &it, x * MS), 0);
  }
  assert_int_equal(sft_sched_remove(s, 13, NULL, NULL, NULL), 0);
  assert_int_equal(sft_sched_remove(s, 10, NULL, NULL, NULL), 0);
  uint64_t nr = 0, prev = 0;
  for (int i = 0; i < 8; i++) {
    assert_int_equal(sft_sched_next_ready(s, &nr), 0);
    assert_true(nr > prev);
    prev = nr;
    it = deq(s, nr);
    assert_true(it.xfer != 10 && it.xfer != 13);
    assert_true(nr == 100 * MS + it.xfer * MS);
  }
  expect_empty(s, UINT64_MAX);
  sft_sched_del(s);
}

static void test_set_class(void **state) {
  sft_sched *s = new_default();
  struct sft_sched_stats st;
  struct sft_sched_item it;
  (void)state;
  assert_int_equal(sft_sched_set_class(s, 1, SFT_SCHED_HIGH),
                   SFT_ERR_NOT_FOUND);
  enq(s, 1, 0, SFT_SCHED_NORMAL, 100, 0);
  enq(s, 1, 1, SFT_SCHED_NORMAL, 100, 0);
  /* the known transfer's class wins over the item's */
  enq(s, 1, 2, SFT_SCHED_CRITICAL, 100, 0);
  assert_int_equal(sft_sched_get_stats(s, &st), 0);
  assert_true(st.cls[SFT_SCHED_NORMAL].pending_items == 3);
  assert_int_equal(sft_sched_set_class(s, 1, SFT_SCHED_CRITICAL), 0);
  assert_int_equal(sft_sched_set_class(s, 1, 3), SFT_ERR_INVAL);
  assert_int_equal(sft_sched_get_stats(s, &st), 0);
  assert_true(st.cls[SFT_SCHED_NORMAL].pending_items == 0);
  assert_true(st.cls[SFT_SCHED_CRITICAL].pending_items == 3);
  assert_true(st.cls[SFT_SCHED_CRITICAL].pending_bytes == 300);
  it = deq(s, 0);
  assert_int_equal(it.cls, SFT_SCHED_CRITICAL);
  assert_true(it.seq == 0);
  /* an in-flight item requeued with its old class joins the new one */
  it.cls = SFT_SCHED_NORMAL;
  assert_int_equal(sft_sched_requeue(s, &it, 0), 0);
  assert_int_equal(sft_sched_get_stats(s, &st), 0);
  assert_true(st.cls[SFT_SCHED_CRITICAL].pending_items == 3);
  assert_true(st.cls[SFT_SCHED_CRITICAL].requeues == 1);
  for (uint64_t i = 0; i < 3; i++) {
    it = deq(s, 100 * MS);
    assert_int_equal(it.cls, SFT_SCHED_CRITICAL);
    assert_true(it.seq == i);
  }
  sft_sched_del(s);
}

/* ---- stats ---------------------------------------------------------------*/

static void test_stats_scripted(void **state) {
  sft_sched *s = new_default();
  struct sft_sched_stats st;
  struct sft_sched_item it;
  const struct sft_sched_class_stats *c, *h, *n, *a;
  (void)state;
  enq(s, 1, 0, SFT_SCHED_CRITICAL, 1000, 0);
  enq(s, 2, 0, SFT_SCHED_HIGH, 2000, 0);
  enq(s, 3, 0, SFT_SCHED_NORMAL, 3000, 10);
  enq(s, 4, 0, SFT_SCHED_NORMAL, 500, 10);
  assert_int_equal(sft_sched_pause(s, 4), 0);
  assert_int_equal(sft_sched_get_stats(s, &st), 0);
  assert_true(st.cls[0].pending_items == 1 && st.cls[0].pending_bytes == 1000);
  assert_true(st.cls[1].pending_items == 1 && st.cls[1].pending_bytes == 2000);
  assert_true(st.cls[2].pending_items == 2 && st.cls[2].pending_bytes == 3500);
  assert_true(st.all.pending_items == 4 && st.all.pending_bytes == 6500);
  assert_int_equal(st.xfers, 4);
  assert_int_equal(st.paused_xfers, 1);

  it = deq(s, 100); /* critical first, waited 100 */
  assert_true(it.xfer == 1);
  it = deq(s, 300); /* high, waited 300 */
  assert_true(it.xfer == 2);
  struct sft_sched_item hi = it;
  it = deq(s, 1010); /* normal, waited 1000 */
  assert_true(it.xfer == 3);
  expect_empty(s, 1010); /* xfer 4 paused */
  assert_int_equal(sft_sched_requeue(s, &hi, 2000), 0);
  assert_int_equal(sft_sched_get_stats(s, &st), 0);
  assert_true(st.backoff_items == 1);
  assert_true(st.cls[1].pending_items == 1);
  it = deq(s, 2000 + 100 * MS + 500); /* waited 500 after its backoff */
  assert_true(it.xfer == 2 && it.retries == 1);
  it.retries = SFT_SCHED_DEFAULT_MAX_RETRIES;
  assert_int_equal(sft_sched_requeue(s, &it, 0), SFT_ERR_RETRIES);
  assert_int_equal(sft_sched_remove(s, 4, NULL, NULL, NULL), 0);

  assert_int_equal(sft_sched_get_stats(s, &st), 0);
  c = &st.cls[0];
  h = &st.cls[1];
  n = &st.cls[2];
  a = &st.all;
  assert_true(c->dequeued_items == 1 && c->dequeued_bytes == 1000);
  assert_true(c->wait_sum_ns == 100 && c->wait_avg_ns == 100);
  assert_true(c->wait_max_ns == 100);
  assert_true(c->requeues == 0 && c->drops == 0 && c->removed == 0);
  assert_true(h->dequeued_items == 2 && h->dequeued_bytes == 4000);
  assert_true(h->wait_sum_ns == 800 && h->wait_avg_ns == 400);
  assert_true(h->wait_max_ns == 500);
  assert_true(h->requeues == 1 && h->drops == 1 && h->removed == 0);
  assert_true(n->dequeued_items == 1 && n->dequeued_bytes == 3000);
  assert_true(n->wait_sum_ns == 1000 && n->wait_avg_ns == 1000);
  assert_true(n->wait_max_ns == 1000);
  assert_true(n->requeues == 0 && n->drops == 0 && n->removed == 1);
  assert_true(a->dequeued_items == 4 && a->dequeued_bytes == 8000);
  assert_true(a->wait_sum_ns == 1900 && a->wait_avg_ns == 475);
  assert_true(a->wait_max_ns == 1000);
  assert_true(a->requeues == 1 && a->drops == 1 && a->removed == 1);
  assert_true(a->pending_items == 0 && a->pending_bytes == 0);
  for (int k = 0; k < 3; k++)
    assert_true(st.cls[k].pending_items == 0 && st.cls[k].pending_bytes == 0);
  assert_true(st.backoff_items == 0);
  assert_int_equal(st.xfers, 0);
  assert_int_equal(st.paused_xfers, 0);
  sft_sched_del(s);
}

/* ---- arguments, config, allocation ---------------------------------------*/

static void test_invalid_args(void **state) {
  sft_sched *s = new_default();
  struct sft_sched_item it = mk(1, 0, SFT_SCHED_NORMAL, 1, 0), o;
  struct sft_sched_stats st;
  enum sft_sched_class cls;
  uint64_t t;
  (void)state;
  assert_int_equal(sft_sched_enqueue(NULL, &it, 0), SFT_ERR_INVAL);
  assert_int_equal(sft_sched_enqueue(s, NULL, 0), SFT_ERR_INVAL);
  it.cls = 3;
  assert_int_equal(sft_sched_enqueue(s, &it, 0), SFT_ERR_INVAL);
  assert_int_equal(sft_sched_requeue(s, &it, 0), SFT_ERR_INVAL);
  it.cls = 255;
  assert_int_equal(sft_sched_enqueue(s, &it, 0), SFT_ERR_INVAL);
  it.cls = SFT_SCHED_NORMAL;
  it.size = 0;
  assert_int_equal(sft_sched_enqueue(s, &it, 0), SFT_ERR_INVAL);
  assert_int_equal(sft_sched_requeue(s, &it, 0), SFT_ERR_INVAL);
  assert_int_equal(sft_sched_len(s), 0);
  assert_int_equal(sft_sched_dequeue(s, 0, NULL), SFT_ERR_INVAL);
  assert_int_equal(sft_sched_dequeue(NULL, 0, &o), SFT_ERR_INVAL);
  assert_int_equal(sft_sched_requeue(NULL, &it, 0), SFT_ERR_INVAL);
  assert_int_equal(sft_sched_next_ready(s, NULL), SFT_ERR_INVAL);
  assert_int_equal(sft_sched_next_ready(NULL, &t), SFT_ERR_INVAL);
  assert_int_equal(sft_sched_remove(NULL, 1, NULL, NULL, NULL), SFT_ERR_INVAL);
  assert_int_equal(sft_sched_pause(NULL, 1), SFT_ERR_INVAL);
  assert_int_equal(sft_sched_resume(NULL, 1), SFT_ERR_INVAL);
  assert_int_equal(sft_sched_set_class(s, 1, -1), SFT_ERR_INVAL);
  assert_int_equal(sft_sched_get_stats(s, NULL), SFT_ERR_INVAL);
  assert_int_equal(sft_sched_get_stats(NULL, &st), SFT_ERR_INVAL);
  assert_int_equal(sft_sched_is_paused(NULL, 1), 0);
  assert_int_equal(sft_sched_len(NULL), 0);
  assert_string_equal(sft_sched_class_name(SFT_SCHED_CRITICAL), "critical");
  assert_string_equal(sft_sched_class_name(SFT_SCHED_HIGH), "high");
  assert_string_equal(sft_sched_class_name(SFT_SCHED_NORMAL), "normal");
  assert_null(sft_sched_class_name(3));
  assert_null(sft_sched_class_name(-1));
  assert_int_equal(sft_sched_class_parse("high", &cls), 0);
  assert_int_equal(cls, SFT_SCHED_HIGH);
  assert_int_equal(sft_sched_class_parse("High", &cls), SFT_ERR_INVAL);
  assert_int_equal(sft_sched_class_parse(NULL, &cls), SFT_ERR_INVAL);
  sft_sched_del(s);
  sft_sched_del(NULL);
}

static void *dummy_zalloc(size_t n, size_t sz, void *ud) {
  (void)ud;
  return calloc(n, sz);
}

static void test_config_bounds(void **state) {
  struct sft_sched_config cfg, bad;
  sft_sched *s = (sft_sched *)&cfg; /* must be reset to NULL on failure */
  (void)state;
  assert_int_equal(sft_sched_new(NULL, NULL), SFT_ERR_INVAL);
  sft_sched_config_default(&cfg);
#define BAD(stmt)                                                              \
  do {                                                                         \
    bad = cfg;                                                                 \
    stmt;                                                                      \
    s = (sft_sched *)&cfg;                                                     \
    assert_int_equal(sft_sched_new(&s, &bad), SFT_ERR_INVAL);                  \
    assert_null(s);                                                            \
  } while (0)
  BAD(bad.capacity = 0);
  BAD(bad.capacity = SFT_SCHED_MAX_CAPACITY + 1);
  BAD(bad.max_xfers = SFT_SCHED_MAX_CAPACITY + 1);
  BAD(bad.weight[0] = 0);
  BAD(bad.weight[2] = SFT_SCHED_MAX_WEIGHT + 1);
  BAD(bad.quantum_unit = 0);
  BAD(bad.quantum_unit = SFT_SCHED_MAX_QUANTUM_UNIT + 1);
  BAD(bad.max_retries = SFT_SCHED_MAX_RETRIES + 1);
  BAD(bad.backoff_base_ns = 0);
  BAD(bad.mem.zalloc = dummy_zalloc);
#undef BAD
  /* extremes that are valid */
  cfg.capacity = 1;
  cfg.weight[0] = cfg.weight[1] = cfg.weight[2] = SFT_SCHED_MAX_WEIGHT;
  cfg.quantum_unit = SFT_SCHED_MAX_QUANTUM_UNIT;
  cfg.max_retries = SFT_SCHED_MAX_RETRIES;
  assert_int_equal(sft_sched_new(&s, &cfg), 0);
  struct sft_sched_item it = mk(1, 0, 0, UINT32_MAX, 1000);
  assert_int_equal(sft_sched_enqueue(s, &it, 0), 0);
  it = deq(s, 0);
  it.retries = SFT_SCHED_MAX_RETRIES - 1; /* 2^63 * 100 ms saturates */
  assert_int_equal(sft_sched_requeue(s, &it, 5), 0);
  uint64_t nr;
  assert_int_equal(sft_sched_next_ready(s, &nr), 0);
  assert_true(nr == UINT64_MAX);
  sft_sched_del(s);
}

struct failing {
  int allow; /* allocations that succeed before the first failure */
  int live;
};

static void *failing_zalloc(size_t n, size_t sz, void *ud) {
  struct failing *f = ud;
  if (f->allow-- <= 0)
    return NULL;
  f->live++;
  return calloc(n, sz);
}

static void failing_free(void *p, void *ud) {
  struct failing *f = ud;
  if (p)
    f->live--;
  free(p);
}

static void test_alloc_failures(void **state) {
  struct sft_sched_config cfg;
  struct failing f;
  int n, rc = -1;
  (void)state;
  sft_sched_config_default(&cfg);
  cfg.capacity = 100;
  cfg.mem.zalloc = failing_zalloc;
  cfg.mem.free = failing_free;
  cfg.mem.ud = &f;
  for (n = 0; n < 20; n++) {
    sft_sched *s = (sft_sched *)&f;
    f.allow = n;
    f.live = 0;
    rc = sft_sched_new(&s, &cfg);
    if (rc == 0) {
      enq(s, 1, 0, SFT_SCHED_HIGH, 5, 0);
      expect_seq(s, 0, 1, 0);
      sft_sched_del(s);
      assert_int_equal(f.live, 0);
      break;
    }
    assert_int_equal(rc, SFT_ERR_NOMEM);
    assert_null(s);
    assert_int_equal(f.live, 0);
  }
  assert_int_equal(rc, 0);
  assert_int_equal(n, 6); /* each of the 6 allocations failed once */
}

/* ---- randomized model check ----------------------------------------------*/

#define M_CAP 200
#define M_XF 16

struct m_item {
  int used;
  uint64_t xfer, seq, ready;
  uint32_t size;
  uint8_t retries;
};

struct model {
  struct m_item it[M_CAP];
  int paused[M_XF];
  int cls[M_XF]; /* -1: unknown */
};

static int m_known(const struct model *m, int x) {
  if (m->paused[x])
    return 1;
  for (int i = 0; i < M_CAP; i++)
    if (m->it[i].used && m->it[i].xfer == (uint64_t)x)
      return 1;
  return 0;
}

static int m_count(const struct model *m) {
  int n = 0;
  for (int i = 0; i < M_CAP; i++)
    n += m->it[i].used;
  return n;
}

static int m_slot(struct model *m) {
  for (int i = 0; i < M_CAP; i++)
    if (!m->it[i].used)
      return i;
  return -1;
}

/* Index of the item dequeue may return for transfer x at |now|: the
 * lowest-seq eligible one; -1 if none. */
static int m_head(const struct model *m, int x, uint64_t now) {
  int best = -1;
  if (m->paused[x])
    return -1;
  for (int i = 0; i < M_CAP; i++)
    if (m->it[i].used && m->it[i].xfer == (uint64_t)x &&
        m->it[i].ready <= now && (best < 0 || m->it[i].seq < m->it[best].seq))
      best = i;
  return best;
}

static void test_random_model(void **state) {
  struct sft_sched_config cfg;
  struct model m;
  sft_sched *s;
  uint64_t rng = 0x5eed5eed, now = 0, ctr = 0;
  (void)state;
  sft_sched_config_default(&cfg);
  cfg.capacity = M_CAP;
  cfg.max_retries = 3;
  cfg.backoff_base_ns = 1000;
  assert_int_equal(sft_sched_new(&s, &cfg), 0);
  memset(&m, 0, sizeof(m));
  for (int x = 0; x < M_XF; x++)
    m.cls[x] = -1;

  for (int step = 0; step < 40000; step++) {
    unsigned op = (unsigned)(rng_next(&rng) % 100);
    int x = (int)(rng_next(&rng) % M_XF);
    now += rng_next(&rng) % 300;
    if (op < 45) { /* enqueue, sometimes out of order */
      struct sft_sched_item it;
      uint64_t c = ++ctr, seq = (c << 12) | (c & 0xfff);
      if (rng_next(&rng) % 4 == 0)
        seq -= (rng_next(&rng) % 64) << 12;
      it = mk((uint64_t)x, seq, (int)(rng_next(&rng) % 3),
              (uint32_t)(1 + rng_next(&rng) % 5000), seq);
      int slot = m_slot(&m), rc = sft_sched_enqueue(s, &it, now);
      if (slot < 0) {
        assert_int_equal(rc, SFT_ERR_FULL);
        continue;
      }
      assert_int_equal(rc, 0);
      if (m.cls[x] < 0 || !m_known(&m, x))
        m.cls[x] = it.cls;
      m.it[slot] = (struct m_item){1, it.xfer, seq, now, it.size, 0};
    } else if (op < 85) { /* dequeue, sometimes requeue */
      struct sft_sched_item it;
      int rc = sft_sched_dequeue(s, now, &it), any = 0;
      for (int y = 0; y < M_XF; y++)
        any |= m_head(&m, y, now) >= 0;
      if (!any) {
        assert_int_equal(rc, SFT_ERR_EMPTY);
        continue;
      }
      assert_int_equal(rc, 0);
      int k = m_head(&m, (int)it.xfer, now);
      assert_true(k >= 0);
      assert_true(m.it[k].seq == it.seq);
      assert_true(it.user.u64 == it.seq);
      assert_int_equal(it.retries, m.it[k].retries);
      assert_int_equal(it.cls, m.cls[it.xfer]);
      assert_true(it.size == m.it[k].size);
      m.it[k].used = 0;
      if (rng_next(&rng) % 3 == 0) {
        rc = sft_sched_requeue(s, &it, now);
        if (it.retries >= 3) {
          assert_int_equal(rc, SFT_ERR_RETRIES);
        } else {
          assert_int_equal(rc, 0);
          if (m.cls[it.xfer] < 0 || !m_known(&m, (int)it.xfer))
            m.cls[it.xfer] = it.cls;
          m.it[k].used = 1;
          m.it[k].ready = now + (1000ull << it.retries);
          m.it[k].retries = (uint8_t)(it.retries + 1);
        }
      }
    } else if (op < 91) {
      if (m.paused[x]) {
        assert_int_equal(sft_sched_resume(s, (uint64_t)x), 0);
        m.paused[x] = 0;
      } else {
        assert_int_equal(sft_sched_pause(s, (uint64_t)x), 0);
        if (!m_known(&m, x))
          m.cls[x] = -1;
        m.paused[x] = 1;
      }
    } else if (op < 94) {
      size_t n = 0;
      int known = m_known(&m, x), cnt = 0;
      int rc = sft_sched_remove(s, (uint64_t)x, NULL, NULL, &n);
      assert_int_equal(rc, known ? 0 : SFT_ERR_NOT_FOUND);
      for (int i = 0; i < M_CAP; i++)
        if (m.it[i].used && m.it[i].xfer == (uint64_t)x) {
          m.it[i].used = 0;
          cnt++;
        }
      if (known)
        assert_int_equal(n, cnt);
      m.paused[x] = 0;
      m.cls[x] = -1;
    } else if (op < 97) {
      int c = (int)(rng_next(&rng) % 3);
      int rc = sft_sched_set_class(s, (uint64_t)x, c);
      assert_int_equal(rc, m_known(&m, x) ? 0 : SFT_ERR_NOT_FOUND);
      if (rc == 0)
        m.cls[x] = c;
    } else {
      uint64_t nr = 0, want = UINT64_MAX;
      int rc = sft_sched_next_ready(s, &nr);
      (void)rc;
      /* items not yet promoted (ready > last dequeue) bound next_ready */
      for (int i = 0; i < M_CAP; i++)
        if (m.it[i].used && m.it[i].retries && m.it[i].ready > now &&
            m.it[i].ready < want)
          want = m.it[i].ready;
      if (want != UINT64_MAX) {
        assert_int_equal(rc, 0);
        assert_true(nr <= want);
      }
    }
    assert_int_equal(sft_sched_len(s), m_count(&m));
  }
  /* drain: everything comes out once resumed and time has passed */
  for (int x = 0; x < M_XF; x++)
    if (m.paused[x])
      assert_int_equal(sft_sched_resume(s, (uint64_t)x), 0);
  struct sft_sched_item it;
  while (sft_sched_dequeue(s, UINT64_MAX, &it) == 0)
    ;
  assert_int_equal(sft_sched_len(s), 0);
  struct sft_sched_stats st;
  assert_int_equal(sft_sched_get_stats(s, &st), 0);
  assert_true(st.all.pending_items == 0 && st.all.pending_bytes == 0);
  assert_int_equal(st.xfers, 0);
  sft_sched_del(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fifo_in_order),
      cmocka_unit_test(test_out_of_order_enqueue),
      cmocka_unit_test(test_order_after_requeue),
      cmocka_unit_test(test_two_transfers_each_in_order),
      cmocka_unit_test(test_shares_50_30_20),
      cmocka_unit_test(test_shares_redistribution),
      cmocka_unit_test(test_custom_weights),
      cmocka_unit_test(test_shares_extreme_sizes),
      cmocka_unit_test(test_single_class_work_conserving),
      cmocka_unit_test(test_idle_class_banks_no_credit),
      cmocka_unit_test(test_transfers_fair_by_bytes),
      cmocka_unit_test(test_backoff_timing),
      cmocka_unit_test(test_backoff_configurable),
      cmocka_unit_test(test_backoff_many),
      cmocka_unit_test(test_capacity),
      cmocka_unit_test(test_pause_resume),
      cmocka_unit_test(test_remove),
      cmocka_unit_test(test_set_class),
      cmocka_unit_test(test_stats_scripted),
      cmocka_unit_test(test_invalid_args),
      cmocka_unit_test(test_config_bounds),
      cmocka_unit_test(test_alloc_failures),
      cmocka_unit_test(test_random_model),
  };
  return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
