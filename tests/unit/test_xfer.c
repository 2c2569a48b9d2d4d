/* Tests of lib/xfer: the seed's state machine (every pair), the sender and
 * receiver machines one behaviour at a time, and whole transfers between
 * the two over a lossy in-memory network driven by a seeded PRNG, with the
 * test playing the daemon (reads, hashes, writes) on a fake clock. */
/* cmocka needs these first, in this order */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
// clang-format on
#include <stdlib.h>
#include <string.h>

#include "sft/chunk.h"
#include "sft/fec.h"
#include "sft/hash.h"
#include "sft/xfer.h"

#define NS_MS 1000000ull

/* ---- helpers ------------------------------------------------------------ */

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* uniform in [0, 1000) */
static unsigned permille(uint64_t *s) {
  return (unsigned)(splitmix(s) % 1000);
}

static void fake_digest(uint64_t i, uint8_t d[SFT_HASH_LEN]) {
  for (int k = 0; k < SFT_HASH_LEN; k++)
    d[k] = (uint8_t)(i * 31 + (uint64_t)k * 7 + 1);
}

static bool bm_get(const uint8_t *bm, size_t len, uint64_t i) {
  return (i >> 3) < len && ((bm[i >> 3] >> (i & 7)) & 1);
}
static void bm_set(uint8_t *bm, uint64_t i) {
  bm[i >> 3] |= (uint8_t)(1u << (i & 7));
}

/* ---- the state machine -------------------------------------------------- */

struct trans {
  enum sft_xfer_state from;
  enum sft_xfer_event ev;
  enum sft_xfer_state to;
};

/* The table of docs/internals/xfer.md, written out independently. */
static const struct trans valid[] = {
    {SFT_XS_IDLE, SFT_XE_START, SFT_XS_PREPARING},
    {SFT_XS_IDLE, SFT_XE_CANCEL, SFT_XS_FAILED},
    {SFT_XS_IDLE, SFT_XE_FAIL, SFT_XS_FAILED},
    {SFT_XS_PREPARING, SFT_XE_START, SFT_XS_TRANSFERRING},
    {SFT_XS_PREPARING, SFT_XE_CANCEL, SFT_XS_FAILED},
    {SFT_XS_PREPARING, SFT_XE_NETWORK_FAILURE, SFT_XS_PREPARING},
    {SFT_XS_PREPARING, SFT_XE_NETWORK_RECOVERED, SFT_XS_PREPARING},
    {SFT_XS_PREPARING, SFT_XE_FAIL, SFT_XS_FAILED},
    {SFT_XS_TRANSFERRING, SFT_XE_CHUNK_COMPLETED, SFT_XS_TRANSFERRING},
    {SFT_XS_TRANSFERRING, SFT_XE_CHUNK_FAILED, SFT_XS_TRANSFERRING},
    {SFT_XS_TRANSFERRING, SFT_XE_PAUSE, SFT_XS_PAUSED},
    {SFT_XS_TRANSFERRING, SFT_XE_CANCEL, SFT_XS_FAILED},
    {SFT_XS_TRANSFERRING, SFT_XE_NETWORK_FAILURE, SFT_XS_TRANSFERRING},
    {SFT_XS_TRANSFERRING, SFT_XE_NETWORK_RECOVERED, SFT_XS_TRANSFERRING},
    {SFT_XS_TRANSFERRING, SFT_XE_TRANSFER_COMPLETE, SFT_XS_COMPLETING},
    {SFT_XS_TRANSFERRING, SFT_XE_FAIL, SFT_XS_FAILED},
    {SFT_XS_PAUSED, SFT_XE_CHUNK_COMPLETED, SFT_XS_PAUSED},
    {SFT_XS_PAUSED, SFT_XE_CHUNK_FAILED, SFT_XS_PAUSED},
    {SFT_XS_PAUSED, SFT_XE_RESUME, SFT_XS_TRANSFERRING},
    {SFT_XS_PAUSED, SFT_XE_CANCEL, SFT_XS_FAILED},
    {SFT_XS_PAUSED, SFT_XE_NETWORK_FAILURE, SFT_XS_PAUSED},
    {SFT_XS_PAUSED, SFT_XE_NETWORK_RECOVERED, SFT_XS_PAUSED},
    {SFT_XS_PAUSED, SFT_XE_FAIL, SFT_XS_FAILED},
    {SFT_XS_COMPLETING, SFT_XE_CHUNK_FAILED, SFT_XS_TRANSFERRING},
    {SFT_XS_COMPLETING, SFT_XE_CANCEL, SFT_XS_FAILED},
    {SFT_XS_COMPLETING, SFT_XE_NETWORK_FAILURE, SFT_XS_COMPLETING},
    {SFT_XS_COMPLETING, SFT_XE_NETWORK_RECOVERED, SFT_XS_COMPLETING},
    {SFT_XS_COMPLETING, SFT_XE_TRANSFER_COMPLETE, SFT_XS_COMPLETED},
    {SFT_XS_COMPLETING, SFT_XE_FAIL, SFT_XS_FAILED},
};
#define NVALID (sizeof(valid) / sizeof(valid[0]))

static void test_fsm_every_valid_transition(void **state) {
  (void)state;
  for (size_t k = 0; k < NVALID; k++) {
    enum sft_xfer_state st = valid[k].from;
    assert_int_equal(sft_xfer_fsm_apply(&st, valid[k].ev), 0);
    assert_int_equal(st, valid[k].to);
  }
}

static void test_fsm_every_invalid_pair(void **state) {
  (void)state;
  int invalid = 0;
  for (int s = 0; s < SFT_XS_COUNT; s++) {
    for (int e = 0; e < SFT_XE_COUNT; e++) {
      bool ok = false;
      for (size_t k = 0; k < NVALID; k++)
        ok |= (int)valid[k].from == s && (int)valid[k].ev == e;
      if (ok)
        continue;
      enum sft_xfer_state st = (enum sft_xfer_state)s;
      assert_int_equal(sft_xfer_fsm_apply(&st, (enum sft_xfer_event)e),
                       SFT_ERR_STATE);
      assert_int_equal(st, s);
      invalid++;
    }
  }
  assert_int_equal(invalid, SFT_XS_COUNT * SFT_XE_COUNT - (int)NVALID);
  /* terminal states accept nothing */
  for (int e = 0; e < SFT_XE_COUNT; e++) {
    enum sft_xfer_state st = SFT_XS_COMPLETED;
    assert_int_equal(sft_xfer_fsm_apply(&st, (enum sft_xfer_event)e),
                     SFT_ERR_STATE);
    st = SFT_XS_FAILED;
    assert_int_equal(sft_xfer_fsm_apply(&st, (enum sft_xfer_event)e),
                     SFT_ERR_STATE);
  }
  /* values outside the enums */
  enum sft_xfer_state st = SFT_XS_IDLE;
  assert_int_equal(sft_xfer_fsm_apply(&st, (enum sft_xfer_event)SFT_XE_COUNT),
                   SFT_ERR_INVAL);
  st = (enum sft_xfer_state)SFT_XS_COUNT;
  assert_int_equal(sft_xfer_fsm_apply(&st, SFT_XE_START), SFT_ERR_INVAL);
  assert_int_equal(st, SFT_XS_COUNT);
  assert_int_equal(sft_xfer_fsm_apply(NULL, SFT_XE_START), SFT_ERR_INVAL);
}

static void test_fsm_names(void **state) {
  (void)state;
  assert_string_equal(sft_xfer_state_name(SFT_XS_IDLE), "Idle");
  assert_string_equal(sft_xfer_state_name(SFT_XS_TRANSFERRING), "Transferring");
  assert_string_equal(sft_xfer_state_name(SFT_XS_FAILED), "Failed");
  assert_string_equal(sft_xfer_state_name((enum sft_xfer_state)99), "Unknown");
  assert_string_equal(sft_xfer_event_name(SFT_XE_NETWORK_RECOVERED),
                      "NetworkRecovered");
  assert_string_equal(sft_xfer_event_name(SFT_XE_TRANSFER_COMPLETE),
                      "TransferComplete");
  assert_string_equal(sft_xfer_event_name((enum sft_xfer_event) - 1),
                      "Unknown");
  for (int a = 0; a < SFT_XS_COUNT; a++)
    for (int b = a + 1; b < SFT_XS_COUNT; b++)
      assert_string_not_equal(sft_xfer_state_name((enum sft_xfer_state)a),
                              sft_xfer_state_name((enum sft_xfer_state)b));
  for (int a = 0; a < SFT_XE_COUNT; a++)
    for (int b = a + 1; b < SFT_XE_COUNT; b++)
      assert_string_not_equal(sft_xfer_event_name((enum sft_xfer_event)a),
                              sft_xfer_event_name((enum sft_xfer_event)b));
  assert_true(sft_xfer_state_terminal(SFT_XS_COMPLETED));
  assert_false(sft_xfer_state_terminal(SFT_XS_COMPLETING));
}

/* ---- sender units ------------------------------------------------------- */

#define CS 4096u

static struct sft_xsend *mk_send(uint64_t nchunks, uint32_t inflight,
                                 uint64_t timeout, uint32_t retries) {
  struct sft_xsend_params p = {inflight, timeout, retries};
  struct sft_xsend *s = NULL;
  assert_int_equal(sft_xsend_new(&s, nchunks * CS, CS, SFT_HASH_BLAKE3, &p), 0);
  assert_non_null(s);
  return s;
}

/* start + accept(have) */
static struct sft_xsend *mk_send_running(uint64_t nchunks, uint32_t inflight,
                                         uint64_t timeout, uint32_t retries,
                                         const uint8_t *have, size_t len) {
  struct sft_xsend *s = mk_send(nchunks, inflight, timeout, retries);
  assert_int_equal(sft_xsend_start(s, 0), 0);
  assert_int_equal(sft_xsend_state(s), SFT_XS_PREPARING);
  assert_int_equal(sft_xsend_on_accept(s, 0, have, len), 0);
  assert_int_equal(sft_xsend_state(s), SFT_XS_TRANSFERRING);
  return s;
}

/* Polls until NONE; answers READ_CHUNK with chunk_read (fake digests);
 * counts reads per chunk. Returns the number of READ_CHUNK actions. */
/* Early COMPLETEs (Transferring) drain_send passed over, and the last. */
static int g_early;
static uint8_t g_early_root[SFT_HASH_LEN];

static int drain_send(struct sft_xsend *s, uint64_t now, int *sends,
                      int *hashes, struct sft_xsend_action *last) {
  struct sft_xsend_action a;
  int reads = 0;
  for (int guard = 0; guard < 100000; guard++) {
    assert_int_equal(sft_xsend_poll(s, now, &a), 0);
    if (a.type == SFT_XSEND_SEND_COMPLETE &&
        sft_xsend_state(s) == SFT_XS_TRANSFERRING) {
      g_early++;
      memcpy(g_early_root, a.root, SFT_HASH_LEN);
      continue;
    }
    if (a.type != SFT_XSEND_READ_CHUNK)
      break;
    uint8_t d[SFT_HASH_LEN];
    fake_digest(a.index, d);
    assert_int_equal(sft_xsend_chunk_read(s, now, a.index, d), 0);
    if (a.send && sends)
      sends[a.index]++;
    if (!a.send && hashes)
      hashes[a.index]++;
    reads++;
  }
  if (last)
    *last = a;
  return reads;
}

static void test_send_params_and_geometry(void **state) {
  (void)state;
  struct sft_xsend *s = (struct sft_xsend *)1;
  struct sft_xsend_params p = {0, 1, 1};
  assert_int_equal(sft_xsend_new(&s, 10, CS, SFT_HASH_BLAKE3, &p),
                   SFT_ERR_INVAL);
  assert_null(s);
  p.max_inflight = SFT_XSEND_MAX_INFLIGHT + 1;
  assert_int_equal(sft_xsend_new(&s, 10, CS, SFT_HASH_BLAKE3, &p),
                   SFT_ERR_INVAL);
  p = (struct sft_xsend_params){4, 0, 1};
  assert_int_equal(sft_xsend_new(&s, 10, CS, SFT_HASH_BLAKE3, &p),
                   SFT_ERR_INVAL);
  assert_int_equal(sft_xsend_new(&s, 10, 1000, SFT_HASH_BLAKE3, NULL),
                   SFT_ERR_RANGE);
  assert_int_equal(sft_xsend_new(&s, 10, CS, (enum sft_hash_algo)7, NULL),
                   SFT_ERR_INVAL);
  assert_int_equal(sft_xsend_new(&s, SFT_MAX_FILE_SIZE + 1, SFT_CHUNK_SIZE_MAX,
                                 SFT_HASH_BLAKE3, NULL),
                   SFT_ERR_RANGE);
  /* 2^26 chunks of 4 KiB = 256 GiB is the largest; one more chunk is not */
  assert_int_equal(
      sft_xsend_new(&s, SFT_MAX_CHUNKS * CS + 1, CS, SFT_HASH_BLAKE3, NULL),
      SFT_ERR_RANGE);
  assert_int_equal(sft_xsend_new(NULL, 10, CS, SFT_HASH_BLAKE3, NULL),
                   SFT_ERR_INVAL);
  assert_int_equal(sft_xsend_new(&s, 10, CS, SFT_HASH_SHA256, NULL), 0);
  assert_int_equal(sft_xsend_state(s), SFT_XS_IDLE);
  /* nothing happens before start/accept */
  struct sft_xsend_action a;
  assert_int_equal(sft_xsend_poll(s, 0, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_NONE);
  assert_true(a.expiry == UINT64_MAX);
  struct sft_xfer_range r = {0, 0};
  assert_int_equal(sft_xsend_on_ack(s, 0, &r, 1), SFT_ERR_STATE);
  assert_int_equal(sft_xsend_on_accept(s, 0, NULL, 0), SFT_ERR_STATE);
  assert_int_equal(sft_xsend_pause(s, 0), SFT_ERR_STATE);
  assert_int_equal(sft_xsend_start(s, 0), 0);
  assert_int_equal(sft_xsend_start(s, 0), SFT_ERR_STATE);
  assert_int_equal(sft_xsend_poll(s, 0, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_NONE); /* waiting for ACCEPT */
  sft_xsend_del(s);
  sft_xsend_del(NULL);
}

static void test_send_have_bitmap_skipping(void **state) {
  (void)state;
  enum { N = 20 };
  uint8_t have[3] = {0};
  const uint64_t held[] = {0, 3, 7, 19};
  for (size_t k = 0; k < 4; k++)
    bm_set(have, held[k]);
  struct sft_xsend *s = mk_send_running(N, 100, 1000, 3, have, sizeof(have));
  struct sft_xsend_stats st;
  sft_xsend_stats(s, &st);
  assert_int_equal(st.chunks_acked, 4);
  assert_int_equal(st.bytes_acked, 4 * CS);
  int sends[N] = {0}, hashes[N] = {0};
  struct sft_xsend_action a;
  g_early = 0;
  assert_int_equal(drain_send(s, 0, sends, hashes, &a), N);
  assert_int_equal(a.type, SFT_XSEND_NONE);
  /* every digest known: COMPLETE went once, before any ACK */
  assert_int_equal(g_early, 1);
  assert_int_equal(sft_xsend_state(s), SFT_XS_TRANSFERRING);
  for (uint64_t i = 0; i < N; i++) {
    bool h = bm_get(have, sizeof(have), i);
    assert_int_equal(sends[i], h ? 0 : 1);
    assert_int_equal(hashes[i], h ? 1 : 0);
  }
  /* sft_xsend_acked: held chunks are acked, the others not yet */
  for (uint64_t i = 0; i < N; i++)
    assert_int_equal(sft_xsend_acked(s, i), bm_get(have, sizeof(have), i));
  assert_false(sft_xsend_acked(s, N)); /* out of range */
  assert_false(sft_xsend_acked(NULL, 0));
  /* ack everything not held (ranges around the held ones) */
  struct sft_xfer_range r[] = {{1, 2}, {4, 6}, {8, 18}};
  assert_int_equal(sft_xsend_on_ack(s, 1, r, 3), 0);
  for (uint64_t i = 0; i < N; i++)
    assert_true(sft_xsend_acked(s, i));
  /* all acked: not sent again on this connection until the timeout */
  assert_int_equal(sft_xsend_poll(s, 1, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_NONE);
  assert_true(a.expiry == 1 + 1000);
  assert_int_equal(sft_xsend_state(s), SFT_XS_COMPLETING);
  uint8_t dig[N * SFT_HASH_LEN], root[SFT_HASH_LEN];
  for (uint64_t i = 0; i < N; i++)
    fake_digest(i, dig + i * SFT_HASH_LEN);
  assert_int_equal(sft_root(SFT_HASH_BLAKE3, dig, N, root), 0);
  assert_memory_equal(g_early_root, root, SFT_HASH_LEN);
  /* no further resend of anything, even much later */
  assert_int_equal(drain_send(s, 1, sends, hashes, &a), 0);
  sft_xsend_stats(s, &st);
  assert_int_equal(st.sends, N - 4);
  assert_int_equal(st.hash_reads, 4);
  assert_int_equal(st.resends, 0);
  assert_int_equal(sft_xsend_on_complete_confirm(s, 2, root), 0);
  assert_int_equal(sft_xsend_state(s), SFT_XS_COMPLETED);
  assert_int_equal(sft_xsend_poll(s, 3, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_DONE);
  assert_int_equal(sft_xsend_poll(s, 3, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_NONE); /* DONE only once */
  assert_int_equal(sft_xsend_on_complete_confirm(s, 4, root), 0); /* dup */
  assert_int_equal(sft_xsend_on_ack(s, 4, r, 1), SFT_ERR_STATE);
  assert_int_equal(sft_xsend_cancel(s, 4), SFT_ERR_STATE);
  sft_xsend_del(s);
}

static void test_send_ack_idempotent(void **state) {
  (void)state;
  struct sft_xsend *s = mk_send_running(10, 10, 1000, 3, NULL, 0);
  assert_int_equal(drain_send(s, 0, NULL, NULL, NULL), 10);
  struct sft_xfer_range r[] = {{0, 2}, {5, 5}};
  struct sft_xsend_stats st;
  for (int k = 0; k < 3; k++) {
    assert_int_equal(sft_xsend_on_ack(s, 1, r, 2), 0);
    sft_xsend_stats(s, &st);
    assert_int_equal(st.chunks_acked, 4);
    assert_int_equal(st.bytes_acked, 4 * CS);
    assert_int_equal(st.inflight, 6);
  }
  /* an empty list is a no-op */
  assert_int_equal(sft_xsend_on_ack(s, 1, NULL, 0), 0);
  /* acked chunks are never resent, the others are, after the timeout */
  int sends[10] = {0};
  assert_int_equal(drain_send(s, 1000, sends, NULL, NULL), 6);
  for (int i = 0; i < 10; i++)
    assert_int_equal(sends[i], (i <= 2 || i == 5) ? 0 : 1);
  sft_xsend_del(s);
}

static void test_send_garbage_ranges(void **state) {
  (void)state;
  enum { N = 10 };
  struct sft_xsend *s = mk_send_running(N, N, 1000, 3, NULL, 0);
  assert_int_equal(drain_send(s, 0, NULL, NULL, NULL), N);
  struct sft_xfer_range ok = {4, 4};
  assert_int_equal(sft_xsend_on_ack(s, 0, &ok, 1), 0);
  struct sft_xsend_stats before, after;
  sft_xsend_stats(s, &before);
  struct {
    struct sft_xfer_range r[2];
    size_t n;
    int err;
  } bad[] = {
      {{{5, 3}}, 1, SFT_ERR_RANGE}, /* first > last */
      {{{0, N}}, 1, SFT_ERR_RANGE}, /* last == count */
      {{{N, N}}, 1, SFT_ERR_RANGE}, /* out of range */
      {{{0, UINT64_MAX}}, 1, SFT_ERR_RANGE},
      {{{UINT64_MAX, UINT64_MAX}}, 1, SFT_ERR_RANGE},
      {{{6, 7}, {0, 1}}, 2, SFT_ERR_RANGE},     /* unsorted */
      {{{0, 3}, {3, 5}}, 2, SFT_ERR_RANGE},     /* overlapping */
      {{{0, 1}, {1, 1}}, 2, SFT_ERR_RANGE},     /* duplicate index */
      {{{0, 1}, {0, 1}}, 2, SFT_ERR_RANGE},     /* duplicate range */
      {{{0, 1}, {8, N + 5}}, 2, SFT_ERR_RANGE}, /* valid, then garbage */
  };
  for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
    assert_int_equal(sft_xsend_on_ack(s, 0, bad[k].r, bad[k].n), bad[k].err);
    assert_int_equal(sft_xsend_on_need(s, 0, bad[k].r, bad[k].n), bad[k].err);
    sft_xsend_stats(s, &after);
    assert_memory_equal(&before, &after, sizeof(before));
    assert_int_equal(sft_xsend_state(s), SFT_XS_TRANSFERRING);
  }
  assert_int_equal(sft_xsend_on_ack(s, 0, NULL, 1), SFT_ERR_INVAL);
  struct sft_xfer_range *many = calloc(SFT_MAX_ACK_RANGES + 1, sizeof(*many));
  assert_non_null(many);
  assert_int_equal(sft_xsend_on_ack(s, 0, many, SFT_MAX_ACK_RANGES + 1),
                   SFT_ERR_TOO_LARGE);
  free(many);
  sft_xsend_stats(s, &after);
  assert_memory_equal(&before, &after, sizeof(before));
  /* the machine still works: a valid ack after the garbage */
  struct sft_xfer_range good[] = {{0, 3}, {5, 9}};
  assert_int_equal(sft_xsend_on_ack(s, 0, good, 2), 0);
  struct sft_xsend_action a;
  assert_int_equal(sft_xsend_poll(s, 0, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_NONE); /* COMPLETE went early */
  assert_int_equal(sft_xsend_state(s), SFT_XS_COMPLETING);
  /* bad have-bitmaps */
  struct sft_xsend *s2 = mk_send(N, 4, 1000, 3);
  assert_int_equal(sft_xsend_start(s2, 0), 0);
  uint8_t bm[3] = {0, 0x04, 0}; /* bit 10 = count */
  assert_int_equal(sft_xsend_on_accept(s2, 0, bm, 2), SFT_ERR_RANGE);
  assert_int_equal(sft_xsend_on_accept(s2, 0, bm, 3), SFT_ERR_TOO_LARGE);
  assert_int_equal(sft_xsend_on_accept(s2, 0, NULL, 1), SFT_ERR_INVAL);
  assert_int_equal(sft_xsend_state(s2), SFT_XS_PREPARING);
  bm[1] = 0x02; /* bit 9, the last chunk: fine */
  assert_int_equal(sft_xsend_on_accept(s2, 0, bm, 2), 0);
  sft_xsend_del(s2);
  sft_xsend_del(s);
}

static void test_send_resend_after_timeout(void **state) {
  (void)state;
  const uint64_t T = 100 * NS_MS;
  struct sft_xsend *s = mk_send_running(3, 3, T, 2, NULL, 0);
  struct sft_xsend_action a;
  int sends[3] = {0};
  assert_int_equal(drain_send(s, 0, sends, NULL, &a), 3);
  assert_int_equal(a.type, SFT_XSEND_NONE);
  assert_true(a.expiry == T);
  assert_true(sft_xsend_expiry(s) == T);
  assert_int_equal(sft_xsend_poll(s, T - 1, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_NONE);
  /* at the deadline, the three come back oldest first, attempt 1 */
  for (uint64_t i = 0; i < 3; i++) {
    assert_int_equal(sft_xsend_poll(s, T, &a), 0);
    assert_int_equal(a.type, SFT_XSEND_READ_CHUNK);
    assert_int_equal(a.index, i);
    assert_true(a.send);
    assert_int_equal(a.attempt, 1);
  }
  assert_int_equal(sft_xsend_poll(s, T, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_NONE);
  assert_true(a.expiry == 2 * T);
  struct sft_xfer_range r = {1, 1};
  assert_int_equal(sft_xsend_on_ack(s, T + 5, &r, 1), 0);
  assert_int_equal(sft_xsend_poll(s, 2 * T, &a), 0);
  assert_int_equal(a.index, 0);
  assert_int_equal(a.attempt, 2);
  assert_int_equal(sft_xsend_poll(s, 2 * T, &a), 0);
  assert_int_equal(a.index, 2);
  assert_int_equal(a.attempt, 2);
  struct sft_xsend_stats st;
  sft_xsend_stats(s, &st);
  assert_int_equal(st.sends, 3);
  assert_int_equal(st.resends, 5);
  /* a loss hint makes chunk 2 due now (a retry beyond max_retries) */
  r.first = r.last = 2;
  assert_int_equal(sft_xsend_on_need(s, 2 * T + 1, &r, 1), 0);
  assert_true(sft_xsend_expiry(s) == 2 * T + 1);
  /* the third timeout is one too many: Failed(RETRIES) */
  assert_int_equal(sft_xsend_poll(s, 2 * T + 1, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_FAILED);
  assert_int_equal(a.reason, SFT_ERR_RETRIES);
  assert_int_equal(sft_xsend_state(s), SFT_XS_FAILED);
  assert_int_equal(sft_xsend_reason(s), SFT_ERR_RETRIES);
  assert_int_equal(sft_xsend_poll(s, 10 * T, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_NONE);
  assert_true(a.expiry == UINT64_MAX);
  sft_xsend_del(s);
}

static void test_send_pause_means_no_reads(void **state) {
  (void)state;
  const uint64_t T = 100;
  struct sft_xsend *s = mk_send_running(10, 4, T, 3, NULL, 0);
  assert_int_equal(drain_send(s, 0, NULL, NULL, NULL), 4);
  assert_int_equal(sft_xsend_pause(s, 1), 0);
  assert_int_equal(sft_xsend_state(s), SFT_XS_PAUSED);
  assert_int_equal(sft_xsend_pause(s, 1), SFT_ERR_STATE);
  assert_true(sft_xsend_expiry(s) == UINT64_MAX);
  /* acks of chunks that were in flight still land while paused */
  struct sft_xfer_range r = {0, 1};
  assert_int_equal(sft_xsend_on_ack(s, 2, &r, 1), 0);
  assert_int_equal(sft_xsend_state(s), SFT_XS_PAUSED);
  for (uint64_t t = 0; t < 50 * T; t += 7)
    assert_int_equal(drain_send(s, t, NULL, NULL, NULL), 0);
  struct sft_xsend_stats st;
  sft_xsend_stats(s, &st);
  assert_int_equal(st.sends + st.resends, 4);
  /* resume: the two in flight get a fresh timeout, two new chunks go */
  uint64_t now = 50 * T;
  assert_int_equal(sft_xsend_resume(s, now), 0);
  assert_int_equal(sft_xsend_resume(s, now), SFT_ERR_STATE);
  int sends[10] = {0};
  assert_int_equal(drain_send(s, now, sends, NULL, NULL), 2);
  assert_int_equal(sends[4] + sends[5], 2);
  assert_true(sft_xsend_expiry(s) == now + T);
  sft_xsend_del(s);
}

static void test_send_max_inflight(void **state) {
  (void)state;
  struct sft_xsend *s = mk_send_running(100, 8, 1000, 3, NULL, 0);
  struct sft_xsend_action a;
  assert_int_equal(drain_send(s, 0, NULL, NULL, &a), 8);
  assert_int_equal(a.type, SFT_XSEND_NONE);
  struct sft_xsend_stats st;
  sft_xsend_stats(s, &st);
  assert_int_equal(st.inflight, 8);
  struct sft_xfer_range r = {3, 3};
  assert_int_equal(sft_xsend_on_ack(s, 1, &r, 1), 0);
  assert_int_equal(drain_send(s, 1, NULL, NULL, NULL), 1);
  struct sft_xfer_range r3[] = {{0, 1}, {5, 5}};
  assert_int_equal(sft_xsend_on_ack(s, 2, r3, 2), 0);
  assert_int_equal(drain_send(s, 2, NULL, NULL, NULL), 3);
  sft_xsend_stats(s, &st);
  assert_int_equal(st.inflight, 8);
  /* at the timeouts (issued at 0, 1, 2), resends use the same slots:
   * never more than 8 out */
  assert_int_equal(drain_send(s, 1000, NULL, NULL, NULL), 4);
  assert_int_equal(drain_send(s, 1002, NULL, NULL, NULL), 4);
  sft_xsend_stats(s, &st);
  assert_int_equal(st.inflight, 8);
  sft_xsend_del(s);
}

static void test_send_network_failure(void **state) {
  (void)state;
  const uint64_t T = 100;
  struct sft_xsend *s = mk_send_running(10, 4, T, 1, NULL, 0);
  assert_int_equal(drain_send(s, 0, NULL, NULL, NULL), 4);
  assert_int_equal(sft_xsend_on_network_failure(s, 1), 0);
  assert_true(sft_xsend_network_down(s));
  assert_int_equal(sft_xsend_state(s), SFT_XS_TRANSFERRING);
  struct sft_xfer_range r = {0, 0};
  assert_int_equal(sft_xsend_on_ack(s, 1, &r, 1), 0); /* still taken */
  for (uint64_t t = 0; t < 20 * T; t += 10)
    assert_int_equal(drain_send(s, t, NULL, NULL, NULL), 0);
  /* no timeout counted while down: max_retries 1 is not exhausted */
  assert_int_equal(sft_xsend_on_network_recovered(s, 20 * T), 0);
  assert_false(sft_xsend_network_down(s));
  assert_int_equal(drain_send(s, 20 * T, NULL, NULL, NULL), 1);
  assert_int_equal(drain_send(s, 21 * T, NULL, NULL, NULL), 4); /* resends */
  assert_int_equal(sft_xsend_state(s), SFT_XS_TRANSFERRING);
  /* reconnect: the receiver re-accepts holding 0..5; 1..3 were sent and
   * un-acked; now they are held, so only 6..9 remain */
  uint8_t have[2] = {0x3f, 0};
  assert_int_equal(sft_xsend_on_accept(s, 22 * T, have, 1), 0);
  int sends[10] = {0}, hashes[10] = {0};
  assert_int_equal(drain_send(s, 22 * T, sends, hashes, NULL), 5);
  for (int i = 0; i < 10; i++) {
    assert_int_equal(sends[i], i >= 6 ? 1 : 0);
    /* 5 was never read: its digest comes from a hash-only read */
    assert_int_equal(hashes[i], i == 5 ? 1 : 0);
  }
  sft_xsend_del(s);
}

static void test_send_failures(void **state) {
  (void)state;
  uint8_t d[SFT_HASH_LEN], root[SFT_HASH_LEN];
  /* confirm with another root */
  struct sft_xsend *s = mk_send_running(2, 4, 100, 1, NULL, 0);
  g_early = 0;
  assert_int_equal(drain_send(s, 0, NULL, NULL, NULL), 2);
  assert_int_equal(g_early, 1);
  memcpy(root, g_early_root, SFT_HASH_LEN);
  struct sft_xfer_range r = {0, 1};
  assert_int_equal(sft_xsend_on_ack(s, 0, &r, 1), 0);
  struct sft_xsend_action a;
  assert_int_equal(sft_xsend_poll(s, 0, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_NONE); /* it went early */
  /* COMPLETE is repeated every timeout until confirmed */
  assert_true(sft_xsend_expiry(s) == 100);
  assert_int_equal(sft_xsend_poll(s, 100, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_SEND_COMPLETE);
  assert_memory_equal(a.root, root, SFT_HASH_LEN);
  assert_true(sft_xsend_expiry(s) == 200);
  assert_int_equal(sft_xsend_poll(s, 200, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_SEND_COMPLETE);
  root[0] ^= 1;
  assert_int_equal(sft_xsend_on_complete_confirm(s, 101, root), SFT_ERR_DIGEST);
  assert_int_equal(sft_xsend_state(s), SFT_XS_FAILED);
  assert_int_equal(sft_xsend_poll(s, 101, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_FAILED);
  assert_int_equal(a.reason, SFT_ERR_DIGEST);
  sft_xsend_del(s);

  /* the source changes: a re-read gives another digest */
  s = mk_send_running(2, 4, 100, 1, NULL, 0);
  assert_int_equal(drain_send(s, 0, NULL, NULL, NULL), 2);
  fake_digest(0, d);
  d[5] ^= 0xff;
  assert_int_equal(sft_xsend_chunk_read(s, 1, 0, d), SFT_ERR_DIGEST);
  assert_int_equal(sft_xsend_reason(s), SFT_ERR_DIGEST);
  assert_int_equal(sft_xsend_chunk_read(s, 1, 2, d), SFT_ERR_RANGE);
  sft_xsend_del(s);

  /* cancel and abort */
  s = mk_send_running(2, 4, 100, 1, NULL, 0);
  assert_int_equal(sft_xsend_abort(s, 0, 5), SFT_ERR_INVAL);
  assert_int_equal(sft_xsend_cancel(s, 0), 0);
  assert_int_equal(sft_xsend_reason(s), SFT_ERR_CANCELLED);
  assert_int_equal(sft_xsend_poll(s, 0, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_FAILED);
  assert_int_equal(a.reason, SFT_ERR_CANCELLED);
  assert_int_equal(sft_xsend_abort(s, 0, SFT_ERR_IO), SFT_ERR_STATE);
  sft_xsend_del(s);
  s = mk_send(2, 4, 100, 1);
  assert_int_equal(sft_xsend_abort(s, 0, SFT_ERR_IO), 0);
  assert_int_equal(sft_xsend_reason(s), SFT_ERR_IO);
  sft_xsend_del(s);

  /* re-accept in Completing with chunks missing: back to Transferring */
  s = mk_send_running(4, 4, 100, 1, NULL, 0);
  assert_int_equal(drain_send(s, 0, NULL, NULL, NULL), 4);
  r = (struct sft_xfer_range){0, 3};
  assert_int_equal(sft_xsend_on_ack(s, 0, &r, 1), 0);
  assert_int_equal(sft_xsend_poll(s, 0, &a), 0);
  assert_int_equal(sft_xsend_state(s), SFT_XS_COMPLETING);
  uint8_t have = 0x0b; /* chunk 2 lost by the receiver */
  assert_int_equal(sft_xsend_on_accept(s, 1, &have, 1), 0);
  assert_int_equal(sft_xsend_state(s), SFT_XS_TRANSFERRING);
  int sends[4] = {0};
  assert_int_equal(drain_send(s, 1, sends, NULL, &a), 1);
  assert_int_equal(sends[2], 1);
  r = (struct sft_xfer_range){2, 2};
  assert_int_equal(sft_xsend_on_ack(s, 2, &r, 1), 0);
  assert_int_equal(sft_xsend_poll(s, 2, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_SEND_COMPLETE);
  sft_xsend_del(s);
}

/* COMPLETE goes as soon as every digest is known, before the ACKs: once per
 * connection, again after a network recovery; a confirmation that arrives
 * before our last ACKs completes the transfer. */
static void test_send_early_complete(void **state) {
  (void)state;
  enum { N = 4 };
  uint8_t dig[N * SFT_HASH_LEN], root[SFT_HASH_LEN];
  for (uint64_t i = 0; i < N; i++)
    fake_digest(i, dig + i * SFT_HASH_LEN);
  assert_int_equal(sft_root(SFT_HASH_BLAKE3, dig, N, root), 0);
  struct sft_xsend *s = mk_send_running(N, N, 100, 1, NULL, 0);
  struct sft_xsend_action a;
  g_early = 0;
  assert_int_equal(drain_send(s, 0, NULL, NULL, &a), N);
  assert_int_equal(g_early, 1);
  assert_memory_equal(g_early_root, root, SFT_HASH_LEN);
  assert_int_equal(a.type, SFT_XSEND_NONE);
  assert_true(a.expiry == 100); /* the chunks' resend timeout, no sooner */
  assert_int_equal(sft_xsend_state(s), SFT_XS_TRANSFERRING);
  /* the connection failed: it may have taken COMPLETE with it */
  assert_int_equal(sft_xsend_on_network_failure(s, 10), 0);
  assert_int_equal(sft_xsend_poll(s, 10, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_NONE); /* nothing while down */
  assert_int_equal(sft_xsend_on_network_recovered(s, 20), 0);
  assert_int_equal(sft_xsend_poll(s, 20, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_SEND_COMPLETE);
  assert_memory_equal(a.root, root, SFT_HASH_LEN);
  assert_int_equal(sft_xsend_state(s), SFT_XS_TRANSFERRING);
  assert_int_equal(sft_xsend_poll(s, 20, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_NONE);
  /* the receiver verified the whole file before our ACKs arrived */
  assert_int_equal(sft_xsend_on_complete_confirm(s, 30, root), 0);
  assert_int_equal(sft_xsend_state(s), SFT_XS_COMPLETED);
  assert_int_equal(sft_xsend_poll(s, 30, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_DONE);
  sft_xsend_del(s);

  /* the control link died (chunks elsewhere): COMPLETE again, and a chunk
   * its loss made due (NEED) is still due now, not after a fresh timeout */
  s = mk_send_running(N, N, 100, 1, NULL, 0);
  g_early = 0;
  assert_int_equal(drain_send(s, 0, NULL, NULL, NULL), N);
  assert_int_equal(g_early, 1);
  struct sft_xfer_range lost = {2, 2};
  assert_int_equal(sft_xsend_on_need(s, 5, &lost, 1), 0);
  assert_int_equal(sft_xsend_on_control_lost(s, 5), 0);
  int resent = 0, completes = 0;
  for (int i = 0; i < 4; i++) {
    assert_int_equal(sft_xsend_poll(s, 5, &a), 0);
    if (a.type == SFT_XSEND_READ_CHUNK) {
      assert_int_equal(a.index, 2);
      assert_true(a.send);
      uint8_t d[SFT_HASH_LEN];
      fake_digest(2, d);
      assert_int_equal(sft_xsend_chunk_read(s, 5, 2, d), 0);
      resent++;
    } else if (a.type == SFT_XSEND_SEND_COMPLETE) {
      assert_memory_equal(a.root, root, SFT_HASH_LEN);
      completes++;
    }
  }
  assert_int_equal(resent, 1);
  assert_int_equal(completes, 1);
  assert_int_equal(sft_xsend_on_control_lost(NULL, 5), SFT_ERR_INVAL);
  assert_int_equal(sft_xsend_cancel(s, 6), 0);
  assert_int_equal(sft_xsend_on_control_lost(s, 6), SFT_ERR_STATE);
  sft_xsend_del(s);

  /* a failure after the early COMPLETE, then every ACK: COMPLETE at once */
  s = mk_send_running(N, N, 100, 1, NULL, 0);
  g_early = 0;
  assert_int_equal(drain_send(s, 0, NULL, NULL, NULL), N);
  assert_int_equal(g_early, 1);
  assert_int_equal(sft_xsend_on_network_failure(s, 1), 0);
  struct sft_xfer_range r = {0, N - 1};
  assert_int_equal(sft_xsend_on_ack(s, 2, &r, 1), 0);
  assert_int_equal(sft_xsend_on_network_recovered(s, 3), 0);
  assert_int_equal(sft_xsend_poll(s, 3, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_SEND_COMPLETE);
  assert_int_equal(sft_xsend_state(s), SFT_XS_COMPLETING);
  assert_int_equal(sft_xsend_poll(s, 3, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_NONE);
  assert_true(a.expiry == 103);
  sft_xsend_del(s);
}

/* start_early: chunks go before the ACCEPT; the ACCEPT then merges (held
 * chunks acked, the held one in flight reported) instead of re-accepting
 * (which would send every chunk in flight again). */
static void test_send_start_early(void **state) {
  (void)state;
  enum { N = 6 };
  struct sft_xsend *s = mk_send(N, N, 100, 2);
  struct sft_xsend_action a;
  assert_int_equal(sft_xsend_start_early(s, 0), SFT_ERR_STATE); /* Idle */
  assert_int_equal(sft_xsend_start(s, 0), 0);
  assert_int_equal(sft_xsend_start_early(NULL, 0), SFT_ERR_INVAL);
  assert_int_equal(sft_xsend_start_early(s, 0), 0);
  assert_int_equal(sft_xsend_state(s), SFT_XS_TRANSFERRING);
  assert_int_equal(sft_xsend_start_early(s, 0), SFT_ERR_STATE);
  /* three chunks read and in flight */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(sft_xsend_poll(s, 1, &a), 0);
    assert_int_equal(a.type, SFT_XSEND_READ_CHUNK);
    assert_int_equal(a.index, (uint64_t)i);
    assert_true(a.send);
    uint8_t d[SFT_HASH_LEN];
    fake_digest(a.index, d);
    assert_int_equal(sft_xsend_chunk_read(s, 1, a.index, d), 0);
  }
  /* the receiver holds 1 (in flight) and 4 (not read yet) */
  uint8_t have = 0x12;
  assert_int_equal(sft_xsend_on_accept(s, 2, &have, 1), 0);
  assert_true(sft_xsend_acked(s, 1) && sft_xsend_acked(s, 4));
  assert_false(sft_xsend_acked(s, 0) || sft_xsend_acked(s, 2));
  assert_int_equal(sft_xsend_poll(s, 2, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_CANCEL_CHUNK);
  assert_int_equal(a.index, 1);
  int sends[N] = {0}, hashes[N] = {0};
  assert_int_equal(drain_send(s, 2, sends, hashes, &a), 3);
  /* 0 and 2 not sent again; 3 and 5 sent; 4 only hashed; 1 not read */
  assert_int_equal(sends[0] + sends[1] + sends[2], 0);
  assert_int_equal(sends[3], 1);
  assert_int_equal(sends[5], 1);
  assert_int_equal(hashes[4], 1);
  struct sft_xsend_stats st;
  sft_xsend_stats(s, &st);
  assert_int_equal(st.resends, 0);
  /* a second ACCEPT (after a reconnect) re-accepts: 0 and 2 were lost */
  have = 0x3a; /* 1, 3, 4, 5 */
  assert_int_equal(sft_xsend_on_accept(s, 3, &have, 1), 0);
  memset(sends, 0, sizeof(sends));
  assert_int_equal(drain_send(s, 3, sends, NULL, &a), 2);
  assert_int_equal(sends[0], 1);
  assert_int_equal(sends[2], 1);
  sft_xsend_del(s);
}

/* ---- receiver units ----------------------------------------------------- */

static struct sft_xrecv *mk_recv(uint64_t size, uint32_t batch, uint64_t delay,
                                 const uint8_t *have, size_t len) {
  struct sft_xrecv_params p = {batch, delay, 2};
  struct sft_xrecv *r = NULL;
  assert_int_equal(sft_xrecv_new(&r, size, CS, SFT_HASH_BLAKE3, have, len, &p),
                   0);
  assert_int_equal(sft_xrecv_start(r, 0), 0);
  assert_int_equal(sft_xrecv_accepted(r, 0), 0);
  assert_int_equal(sft_xrecv_state(r), SFT_XS_TRANSFERRING);
  return r;
}

static uint8_t *rand_buf(size_t n, uint64_t seed) {
  uint8_t *b = malloc(n ? n : 1);
  assert_non_null(b);
  for (size_t i = 0; i < n; i++)
    b[i] = (uint8_t)splitmix(&seed);
  return b;
}

static int put(struct sft_xrecv *r, uint64_t now, const uint8_t *buf,
               uint64_t size, uint64_t i, struct sft_xrecv_chunk *out) {
  uint8_t d[SFT_HASH_LEN];
  uint32_t len = sft_chunk_len(size, CS, i);
  sft_blake3(buf + i * CS, len, d);
  return sft_xrecv_on_chunk(r, now, i, buf + i * CS, len, d, out);
}

static void test_recv_chunk_checks(void **state) {
  (void)state;
  const uint64_t size = 2 * CS + 100;
  uint8_t *buf = rand_buf(size, 1);
  uint8_t d[SFT_HASH_LEN];
  struct sft_xrecv_chunk c;
  struct sft_xrecv_stats st;
  struct sft_xrecv *r0 = NULL;
  assert_int_equal(sft_xrecv_new(&r0, size, CS, SFT_HASH_BLAKE3, NULL, 0, NULL),
                   0);
  assert_int_equal(put(r0, 0, buf, size, 0, &c), SFT_ERR_STATE); /* Idle */
  sft_xrecv_del(r0);

  struct sft_xrecv *r = mk_recv(size, 8, 1000, NULL, 0);
  sft_blake3(buf, CS, d);
  /* out of range index */
  assert_int_equal(sft_xrecv_on_chunk(r, 0, 3, buf, CS, d, &c), SFT_ERR_RANGE);
  assert_int_equal(sft_xrecv_on_chunk(r, 0, UINT64_MAX, buf, CS, d, &c),
                   SFT_ERR_RANGE);
  /* wrong length: short, long, and the short last chunk given whole */
  assert_int_equal(sft_xrecv_on_chunk(r, 0, 0, buf, CS - 1, d, &c),
                   SFT_ERR_MALFORMED);
  assert_int_equal(sft_xrecv_on_chunk(r, 0, 0, buf, CS + 1, d, &c),
                   SFT_ERR_MALFORMED);
  assert_int_equal(sft_xrecv_on_chunk(r, 0, 2, buf + 2 * CS, CS, d, &c),
                   SFT_ERR_MALFORMED);
  assert_int_equal(sft_xrecv_on_chunk(r, 0, 0, NULL, CS, d, &c), SFT_ERR_INVAL);
  /* wrong digest: the right data, the next chunk's digest; one flipped
   * data byte */
  sft_blake3(buf + CS, CS, d);
  assert_int_equal(sft_xrecv_on_chunk(r, 0, 0, buf, CS, d, &c), SFT_ERR_DIGEST);
  uint8_t *bad = malloc(CS);
  assert_non_null(bad);
  memcpy(bad, buf, CS);
  bad[CS / 2] ^= 0x10;
  sft_blake3(buf, CS, d);
  assert_int_equal(sft_xrecv_on_chunk(r, 0, 0, bad, CS, d, &c), SFT_ERR_DIGEST);
  free(bad);
  sft_xrecv_stats(r, &st);
  assert_int_equal(st.chunks_done, 0);
  assert_int_equal(st.digest_failures, 2);
  struct sft_xrecv_action a;
  assert_int_equal(sft_xrecv_poll(r, 5000, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_NONE); /* nothing to ack */
  /* the right chunk */
  assert_int_equal(put(r, 0, buf, size, 2, &c), 0);
  assert_int_equal(c.verdict, SFT_XRECV_WRITE);
  assert_int_equal(c.index, 2);
  assert_int_equal(c.offset, 2 * CS);
  assert_int_equal(c.len, 100);
  /* duplicate: no double count */
  assert_int_equal(put(r, 0, buf, size, 2, &c), 0);
  assert_int_equal(c.verdict, SFT_XRECV_DUPLICATE);
  sft_xrecv_stats(r, &st);
  assert_int_equal(st.chunks_done, 1);
  assert_int_equal(st.bytes_done, 100);
  assert_int_equal(st.duplicates, 1);
  assert_int_equal(st.chunks_written, 0);
  /* the persisted bitmap follows on_written, not verification */
  size_t len;
  const uint8_t *bm = sft_xrecv_bitmap(r, &len);
  assert_int_equal(len, 1);
  assert_int_equal(bm[0], 0);
  assert_int_equal(sft_xrecv_on_written(r, 1), SFT_ERR_STATE);
  assert_int_equal(sft_xrecv_on_written(r, 3), SFT_ERR_RANGE);
  assert_int_equal(sft_xrecv_on_written(r, 2), 0);
  assert_int_equal(sft_xrecv_on_written(r, 2), 0);
  bm = sft_xrecv_bitmap(r, &len);
  assert_int_equal(bm[0], 0x04);
  sft_xrecv_stats(r, &st);
  assert_int_equal(st.chunks_written, 1);
  /* the pre-hashed entry point (the daemon hashed on a worker) */
  uint8_t got[SFT_HASH_LEN];
  sft_blake3(buf + CS, CS, got);
  memcpy(d, got, SFT_HASH_LEN);
  d[31] ^= 0x80;
  assert_int_equal(sft_xrecv_on_chunk_hashed(r, 0, 1, got, d, &c),
                   SFT_ERR_DIGEST);
  assert_int_equal(sft_xrecv_on_chunk_hashed(r, 0, 3, got, got, &c),
                   SFT_ERR_RANGE);
  assert_int_equal(sft_xrecv_on_chunk_hashed(r, 0, 1, NULL, got, &c),
                   SFT_ERR_INVAL);
  assert_int_equal(sft_xrecv_on_chunk_hashed(r, 0, 1, got, got, &c), 0);
  assert_int_equal(c.verdict, SFT_XRECV_WRITE);
  assert_int_equal(c.offset, CS);
  assert_int_equal(c.len, CS);
  assert_int_equal(sft_xrecv_on_chunk_hashed(r, 0, 1, got, got, &c), 0);
  assert_int_equal(c.verdict, SFT_XRECV_DUPLICATE);
  sft_xrecv_stats(r, &st);
  assert_int_equal(st.chunks_done, 2);
  /* its digest is the one used for the root: chunk 1 hashed by the
   * daemon, 0 and 2 by the machine */
  assert_int_equal(put(r, 0, buf, size, 0, &c), 0);
  uint8_t dig[3 * SFT_HASH_LEN], root[SFT_HASH_LEN];
  for (uint64_t i = 0; i < 3; i++)
    sft_blake3(buf + i * CS, sft_chunk_len(size, CS, i),
               dig + i * SFT_HASH_LEN);
  assert_int_equal(sft_root(SFT_HASH_BLAKE3, dig, 3, root), 0);
  assert_int_equal(sft_xrecv_on_complete(r, 0, root), 0);
  struct sft_xrecv_action a2;
  assert_int_equal(sft_xrecv_poll(r, 0, &a2), 0);
  assert_int_equal(a2.type, SFT_XRECV_SEND_ACK);
  assert_int_equal(sft_xrecv_poll(r, 0, &a2), 0);
  assert_int_equal(a2.type, SFT_XRECV_FINALIZE);
  free(buf);
  sft_xrecv_del(r);
}

static void expect_ack(struct sft_xrecv *r, uint64_t now,
                       const struct sft_xfer_range *want, size_t n) {
  struct sft_xrecv_action a;
  assert_int_equal(sft_xrecv_poll(r, now, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_SEND_ACK);
  assert_int_equal(a.nranges, n);
  assert_memory_equal(a.ranges, want, n * sizeof(*want));
}

static void test_recv_ack_batching(void **state) {
  (void)state;
  const uint64_t size = 10 * CS;
  uint8_t *buf = rand_buf(size, 2);
  struct sft_xrecv *r = mk_recv(size, 4, 1000, NULL, 0);
  struct sft_xrecv_chunk c;
  struct sft_xrecv_action a;
  assert_int_equal(put(r, 0, buf, size, 5, &c), 0);
  assert_int_equal(put(r, 1, buf, size, 0, &c), 0);
  assert_int_equal(put(r, 2, buf, size, 1, &c), 0);
  assert_int_equal(sft_xrecv_poll(r, 2, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_NONE);
  assert_true(a.expiry == 1000); /* from the first pending chunk */
  assert_int_equal(put(r, 3, buf, size, 2, &c), 0); /* 4th: batch full */
  const struct sft_xfer_range w1[] = {{0, 2}, {5, 5}};
  expect_ack(r, 3, w1, 2);
  assert_int_equal(sft_xrecv_poll(r, 3, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_NONE);
  assert_true(a.expiry == UINT64_MAX);
  /* one chunk, acked when the delay expires */
  assert_int_equal(put(r, 10, buf, size, 7, &c), 0);
  assert_int_equal(sft_xrecv_poll(r, 1009, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_NONE);
  assert_true(a.expiry == 1010);
  const struct sft_xfer_range w2[] = {{7, 7}};
  expect_ack(r, 1010, w2, 1);
  /* a duplicate is acked again (its first ACK may have been lost) */
  assert_int_equal(put(r, 1100, buf, size, 0, &c), 0);
  assert_int_equal(c.verdict, SFT_XRECV_DUPLICATE);
  assert_int_equal(put(r, 1100, buf, size, 0, &c), 0);
  const struct sft_xfer_range w3[] = {{0, 0}};
  expect_ack(r, 2100, w3, 1);
  /* no ACK while the network is down; it goes when it is back */
  assert_int_equal(sft_xrecv_on_network_failure(r, 2200), 0);
  assert_int_equal(put(r, 2200, buf, size, 3, &c), 0);
  assert_int_equal(sft_xrecv_poll(r, 9000, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_NONE);
  assert_int_equal(sft_xrecv_on_network_recovered(r, 9000), 0);
  const struct sft_xfer_range w4[] = {{3, 3}};
  expect_ack(r, 9000, w4, 1);
  /* the last chunks: acked at once, then Completing */
  assert_int_equal(put(r, 9001, buf, size, 4, &c), 0);
  assert_int_equal(put(r, 9001, buf, size, 6, &c), 0);
  assert_int_equal(put(r, 9001, buf, size, 8, &c), 0);
  assert_int_equal(put(r, 9001, buf, size, 9, &c), 0);
  const struct sft_xfer_range w5[] = {{4, 4}, {6, 6}, {8, 9}};
  expect_ack(r, 9001, w5, 3);
  assert_int_equal(sft_xrecv_poll(r, 9001, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_NONE);
  assert_int_equal(sft_xrecv_state(r), SFT_XS_COMPLETING);
  /* COMPLETE with the right root -> FINALIZE, once */
  uint8_t dig[10 * SFT_HASH_LEN], root[SFT_HASH_LEN];
  for (int i = 0; i < 10; i++)
    sft_blake3(buf + i * CS, CS, dig + i * SFT_HASH_LEN);
  assert_int_equal(sft_root(SFT_HASH_BLAKE3, dig, 10, root), 0);
  assert_int_equal(sft_xrecv_on_complete(r, 9002, root), 0);
  assert_int_equal(sft_xrecv_poll(r, 9002, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_FINALIZE);
  assert_memory_equal(a.root, root, SFT_HASH_LEN);
  assert_int_equal(sft_xrecv_state(r), SFT_XS_COMPLETED);
  assert_int_equal(sft_xrecv_poll(r, 9002, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_NONE);
  assert_int_equal(sft_xrecv_on_complete(r, 9003, root), 0); /* repeat */
  root[3] ^= 1;
  assert_int_equal(sft_xrecv_on_complete(r, 9003, root), SFT_ERR_DIGEST);
  assert_int_equal(put(r, 9003, buf, size, 0, &c), SFT_ERR_STATE);
  free(buf);
  sft_xrecv_del(r);
}

static void test_recv_root_mismatch(void **state) {
  (void)state;
  const uint64_t size = 3 * CS;
  uint8_t *buf = rand_buf(size, 3);
  struct sft_xrecv *r = mk_recv(size, 8, 1000, NULL, 0);
  struct sft_xrecv_chunk c;
  struct sft_xrecv_action a;
  uint8_t root[SFT_HASH_LEN] = {1, 2, 3};
  /* COMPLETE may come early; it is checked once everything is in */
  assert_int_equal(sft_xrecv_on_complete(r, 0, root), 0);
  root[0] = 9;
  assert_int_equal(sft_xrecv_on_complete(r, 0, root), SFT_ERR_PEER);
  for (uint64_t i = 0; i < 3; i++)
    assert_int_equal(put(r, 0, buf, size, i, &c), 0);
  assert_int_equal(sft_xrecv_poll(r, 0, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_SEND_ACK);
  assert_int_equal(sft_xrecv_poll(r, 0, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_FAILED);
  assert_int_equal(a.reason, SFT_ERR_DIGEST);
  assert_int_equal(sft_xrecv_state(r), SFT_XS_FAILED);
  assert_int_equal(sft_xrecv_reason(r), SFT_ERR_DIGEST);
  assert_int_equal(sft_xrecv_poll(r, 0, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_NONE);
  free(buf);
  sft_xrecv_del(r);
}

static void test_recv_resume_hashing(void **state) {
  (void)state;
  const uint64_t size = 9 * CS + 1; /* 10 chunks */
  uint8_t *buf = rand_buf(size, 4);
  struct sft_xrecv *bad = (struct sft_xrecv *)1;
  uint8_t have[2] = {0x00, 0x04}; /* bit 10 = count */
  assert_int_equal(
      sft_xrecv_new(&bad, size, CS, SFT_HASH_BLAKE3, have, 2, NULL),
      SFT_ERR_RANGE);
  assert_null(bad);
  assert_int_equal(
      sft_xrecv_new(&bad, size, CS, SFT_HASH_BLAKE3, have, 3, NULL),
      SFT_ERR_TOO_LARGE);
  have[0] = 0x0d; /* 0, 2, 3 */
  have[1] = 0x02; /* 9 */
  struct sft_xrecv *r = NULL;
  struct sft_xrecv_params p = {8, 1000, 2};
  assert_int_equal(sft_xrecv_new(&r, size, CS, SFT_HASH_BLAKE3, have, 2, &p),
                   0);
  struct sft_xrecv_stats st;
  sft_xrecv_stats(r, &st);
  assert_int_equal(st.chunks_done, 4);
  assert_int_equal(st.bytes_done, 3 * CS + 1);
  assert_int_equal(st.chunks_written, 4);
  size_t len;
  const uint8_t *bm = sft_xrecv_bitmap(r, &len);
  assert_int_equal(len, 2);
  assert_memory_equal(bm, have, 2);
  struct sft_xrecv_action a;
  assert_int_equal(sft_xrecv_poll(r, 0, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_NONE); /* Idle: no hashing yet */
  assert_int_equal(sft_xrecv_start(r, 0), 0);
  assert_int_equal(sft_xrecv_accepted(r, 0), 0);
  /* held chunks are re-hashed, at most 2 at a time */
  uint64_t idx[4];
  assert_int_equal(sft_xrecv_poll(r, 0, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_HASH_CHUNK);
  idx[0] = a.index;
  assert_int_equal(sft_xrecv_poll(r, 0, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_HASH_CHUNK);
  idx[1] = a.index;
  assert_int_equal(sft_xrecv_poll(r, 0, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_NONE);
  assert_int_equal(idx[0], 0);
  assert_int_equal(idx[1], 2);
  /* no hashing while paused */
  uint8_t d[SFT_HASH_LEN];
  sft_blake3(buf, CS, d);
  assert_int_equal(sft_xrecv_pause(r, 1), 0);
  assert_int_equal(sft_xrecv_on_hashed(r, 0, d), 0);
  assert_int_equal(sft_xrecv_poll(r, 1, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_NONE);
  assert_int_equal(sft_xrecv_resume(r, 2), 0);
  assert_int_equal(sft_xrecv_poll(r, 2, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_HASH_CHUNK);
  assert_int_equal(a.index, 3);
  /* a different digest for an already-hashed chunk is refused */
  d[0] ^= 1;
  assert_int_equal(sft_xrecv_on_hashed(r, 0, d), SFT_ERR_DIGEST);
  assert_int_equal(sft_xrecv_on_hashed(r, 1, d), SFT_ERR_STATE); /* not held */
  assert_int_equal(sft_xrecv_on_hashed(r, 10, d), SFT_ERR_RANGE);
  /* a held chunk sent again is a duplicate */
  struct sft_xrecv_chunk c;
  assert_int_equal(put(r, 3, buf, size, 9, &c), 0);
  assert_int_equal(c.verdict, SFT_XRECV_DUPLICATE);
  assert_int_equal(c.len, 1);
  free(buf);
  sft_xrecv_del(r);
}

/* ---- whole transfers over a lossy in-memory network --------------------- */

enum { M_CHUNK, M_ACK, M_COMPLETE, M_CONFIRM, M_PARITY, M_NEED };

struct msg {
  int type;
  uint64_t at;
  uint64_t index;               /* CHUNK; PARITY, NEED: stripe */
  uint8_t digest[SFT_HASH_LEN]; /* CHUNK digest; COMPLETE/CONFIRM root */
  struct sft_xfer_range *ranges;
  size_t n;
  uint32_t pidx, count; /* PARITY; NEED */
  uint8_t *payload;     /* PARITY (owned by the message) */
};

struct sim {
  /* configuration */
  uint64_t size;
  uint32_t cs;
  enum sft_hash_algo algo;
  unsigned drop_chunk, dup_chunk, drop_ack, dup_ack, drop_ctl; /* permille */
  uint64_t crash_at_written; /* 0 = no crash; else restart the receiver */
  bool sender_restarts;      /* on crash: a fresh sender too */
  /* state */
  uint64_t rng, now, count;
  const uint8_t *src;
  uint8_t *src_buf;
  uint8_t *dst;
  struct sft_xsend *s;
  struct sft_xrecv *r;
  struct msg *q;
  size_t nq, capq;
  bool done, finalized, crashed;
  /* observations */
  uint64_t dropped_chunks, dup_chunks, dropped_acks, dup_acks, dropped_ctl;
  uint64_t sent_chunks, writes, steps;
  uint64_t reordered, last_rx; /* chunks arriving after a higher index */
  /* FEC (k == 0: none) */
  uint32_t k, mm, m_pro;
  uint64_t resend_timeout;    /* 0: 100 ms */
  const uint64_t *drop_first; /* chunks whose first send is lost */
  size_t ndrop_first;
  uint64_t drop_parity_of; /* stripe whose parity is always lost, or ~0 */
  bool corrupt_rebuild;    /* the "daemon" botches its first rebuild */
  bool corrupted;
  uint64_t nstripes;
  struct sft_fec *fec;
  uint32_t *nsend;     /* [count] data sends */
  uint8_t *lost_first; /* [count] first send dropped */
  uint8_t *rebuilt;    /* [count] */
  uint8_t *cancelled;  /* [count] CANCEL_CHUNK seen */
  uint8_t **kept;      /* [nstripes * mm] parity payloads kept */
  uint64_t *parity_rx; /* [nstripes] bitmask of parity indices delivered */
  uint64_t parity_sent, needs_rx, rebuild_actions;
  uint8_t *held; /* bitmap at the crash */
  size_t held_len;
  uint64_t held_count;  /* chunks in it */
  uint64_t resent_held; /* sends of held chunks after the crash */
  uint64_t hash_reads_after;
};

static void digest(const struct sim *m, const void *p, size_t n,
                   uint8_t out[SFT_HASH_LEN]) {
  if (m->algo == SFT_HASH_BLAKE3)
    sft_blake3(p, n, out);
  else
    assert_int_equal(sft_hash(m->algo, p, n, out), 0);
}

static void q_push(struct sim *m, const struct msg *x) {
  if (m->nq == m->capq) {
    m->capq = m->capq ? 2 * m->capq : 64;
    m->q = realloc(m->q, m->capq * sizeof(*m->q));
    assert_non_null(m->q);
  }
  m->q[m->nq++] = *x;
}

/* Send through the network: maybe dropped, maybe twice, each copy with its
 * own latency (5..25 ms) so messages reorder. */
static void net_send(struct sim *m, struct msg x, unsigned drop, unsigned dup,
                     uint64_t *ndrop, uint64_t *ndup) {
  if (permille(&m->rng) < drop) {
    (*ndrop)++;
    return;
  }
  int copies = 1;
  if (permille(&m->rng) < dup) {
    (*ndup)++;
    copies = 2;
  }
  for (int k = 0; k < copies; k++) {
    struct msg y = x;
    y.at = m->now + 5 * NS_MS + splitmix(&m->rng) % (20 * NS_MS);
    if (x.n) {
      y.ranges = malloc(x.n * sizeof(*x.ranges));
      assert_non_null(y.ranges);
      memcpy(y.ranges, x.ranges, x.n * sizeof(*x.ranges));
    }
    if (x.payload) {
      y.payload = malloc(m->cs);
      assert_non_null(y.payload);
      memcpy(y.payload, x.payload, m->cs);
    }
    q_push(m, &y);
  }
}

static void q_clear(struct sim *m) {
  for (size_t k = 0; k < m->nq; k++) {
    free(m->q[k].ranges);
    free(m->q[k].payload);
  }
  m->nq = 0;
}

static void handshake(struct sim *m, const uint8_t *have, size_t have_len) {
  struct sft_xrecv_params rp = {8, 5 * NS_MS, 4};
  rp.stripe_k = m->k;
  rp.stripe_m = m->mm;
  assert_int_equal(
      sft_xrecv_new(&m->r, m->size, m->cs, m->algo, have, have_len, &rp), 0);
  sft_xrecv_set_rtt(m->r, 30 * NS_MS);
  assert_int_equal(sft_xrecv_start(m->r, m->now), 0);
  assert_int_equal(sft_xrecv_accepted(m->r, m->now), 0);
  size_t len;
  const uint8_t *bm = sft_xrecv_bitmap(m->r, &len);
  assert_int_equal(sft_xsend_on_accept(m->s, m->now, bm, len), 0);
}

static void new_sender(struct sim *m) {
  struct sft_xsend_params sp = {16, 100 * NS_MS, 30};
  if (m->resend_timeout)
    sp.resend_timeout_ns = m->resend_timeout;
  sp.stripe_k = m->k;
  sp.stripe_m = m->mm;
  assert_int_equal(sft_xsend_new(&m->s, m->size, m->cs, m->algo, &sp), 0);
  assert_int_equal(sft_xsend_set_parity(m->s, m->m_pro), 0);
  assert_int_equal(sft_xsend_start(m->s, m->now), 0);
}

static void crash(struct sim *m) {
  size_t len;
  const uint8_t *bm = sft_xrecv_bitmap(m->r, &len);
  m->held = malloc(len ? len : 1);
  assert_non_null(m->held);
  memcpy(m->held, bm, len);
  m->held_len = len;
  for (size_t b = 0; b < len; b++)
    m->held_count += (uint64_t)__builtin_popcount(m->held[b]);
  sft_xrecv_del(m->r);
  m->r = NULL;
  q_clear(m); /* the old connection's messages are gone */
  if (m->sender_restarts) {
    sft_xsend_del(m->s);
    new_sender(m);
  } else {
    assert_int_equal(sft_xsend_on_network_failure(m->s, m->now), 0);
    m->now += 3000 * NS_MS; /* the outage */
    assert_int_equal(sft_xsend_on_network_recovered(m->s, m->now), 0);
  }
  handshake(m, m->held, m->held_len);
  m->crashed = true;
}

/* The sender daemon's ENCODE_PARITY: re-read the stripe, pad, encode with
 * lib/fec, send the asked shards. */
static void encode_parity(struct sim *m, const struct sft_xsend_action *a) {
  assert_true(m->k > 0 && a->stripe < m->nstripes);
  assert_true(a->index == a->stripe * m->k && a->offset == a->index * m->cs);
  assert_int_equal(a->len, m->cs);
  assert_int_equal(a->nchunks, sft_stripe_len(m->count, m->k, a->stripe));
  assert_true(a->parity_count >= 1 &&
              a->parity_first + a->parity_count <= m->mm);
  uint8_t *buf = calloc((size_t)(m->k + m->mm), m->cs);
  assert_non_null(buf);
  const uint8_t *data[SFT_MAX_STRIPE];
  uint8_t *par[SFT_MAX_STRIPE];
  for (uint32_t i = 0; i < m->k; i++) {
    data[i] = buf + (size_t)i * m->cs;
    if (i < a->nchunks)
      memcpy(buf + (size_t)i * m->cs, m->src + a->offset + (size_t)i * m->cs,
             sft_chunk_len(m->size, m->cs, a->index + i));
  }
  for (uint32_t p = 0; p < m->mm; p++)
    par[p] = buf + (size_t)(m->k + p) * m->cs;
  assert_int_equal(sft_fec_encode(m->fec, data, par, m->cs), 0);
  for (uint32_t p = a->parity_first; p < a->parity_first + a->parity_count;
       p++) {
    struct msg x = {M_PARITY, 0, a->stripe, {0}, NULL, 0, p, 0, par[p]};
    digest(m, par[p], m->cs, x.digest);
    m->parity_sent++;
    if (a->stripe == m->drop_parity_of)
      m->dropped_chunks++;
    else
      net_send(m, x, m->drop_chunk, m->dup_chunk, &m->dropped_chunks,
               &m->dup_chunks);
  }
  free(buf);
}

static void free_kept(struct sim *m, uint64_t stripe) {
  for (uint32_t p = 0; p < m->mm; p++) {
    free(m->kept[stripe * m->mm + p]);
    m->kept[stripe * m->mm + p] = NULL;
  }
}

/* The receiver daemon's REBUILD: read the present chunks back from the
 * "part file", decode with lib/fec, hash and hand back each rebuilt chunk. */
static void rebuild(struct sim *m, const struct sft_xrecv_action *a) {
  assert_true(m->k > 0 && a->stripe < m->nstripes);
  assert_true(a->index == a->stripe * m->k && a->len == m->cs);
  assert_int_equal(a->nchunks, sft_stripe_len(m->count, m->k, a->stripe));
  uint8_t *buf = calloc(m->k, m->cs);
  assert_non_null(buf);
  uint8_t *sh[SFT_MAX_STRIPE] = {0};
  uint32_t missing = 0, npar = 0;
  for (uint32_t i = 0; i < m->k; i++) {
    sh[i] = buf + (size_t)i * m->cs;
    bool present = sft_fec_mask_test(&a->present, i);
    if (i >= a->nchunks)
      assert_true(present); /* padding shards are zero and present */
    else if (present)
      memcpy(sh[i], m->dst + a->offset + (size_t)i * m->cs,
             sft_chunk_len(m->size, m->cs, a->index + i));
    else
      missing++;
  }
  for (uint32_t p = 0; p < m->mm; p++) {
    if (sft_fec_mask_test(&a->present, m->k + p)) {
      sh[m->k + p] = m->kept[a->stripe * m->mm + p];
      assert_non_null(sh[m->k + p]); /* only shards we were told to keep */
      npar++;
    }
  }
  assert_int_equal(missing, a->nmissing);
  assert_int_equal(npar, missing);
  assert_int_equal(sft_fec_decode(m->fec, sh, &a->present, m->cs, 0), 0);
  for (uint32_t i = 0; i < a->nchunks; i++) {
    if (sft_fec_mask_test(&a->present, i))
      continue;
    uint64_t idx = a->index + i;
    uint32_t len = sft_chunk_len(m->size, m->cs, idx);
    if (m->corrupt_rebuild && !m->corrupted) {
      sh[i][0] ^= 0x5a; /* a wrong decode: only the root can tell */
      m->corrupted = true;
    }
    uint8_t d[SFT_HASH_LEN];
    digest(m, sh[i], len, d);
    struct sft_xrecv_chunk c;
    assert_int_equal(sft_xrecv_on_rebuilt(m->r, m->now, idx, d, &c), 0);
    assert_false(c.release_parity); /* the REBUILD took the parity */
    if (c.verdict == SFT_XRECV_WRITE) {
      memcpy(m->dst + c.offset, sh[i], len);
      m->writes++;
      m->rebuilt[idx] = 1;
      assert_int_equal(sft_xrecv_on_written(m->r, idx), 0);
    }
  }
  free(buf);
  free_kept(m, a->stripe); /* every payload kept for the stripe */
  m->rebuild_actions++;
}

static void pump_sender(struct sim *m) {
  struct sft_xsend_action a;
  for (;;) {
    assert_int_equal(sft_xsend_poll(m->s, m->now, &a), 0);
    switch (a.type) {
    case SFT_XSEND_NONE:
      return;
    case SFT_XSEND_READ_CHUNK: {
      assert_true(a.index < m->count);
      assert_true(a.offset == a.index * m->cs);
      assert_true(a.len == sft_chunk_len(m->size, m->cs, a.index));
      struct msg x = {M_CHUNK, 0, a.index, {0}, NULL, 0};
      digest(m, m->src + a.offset, a.len, x.digest);
      assert_int_equal(sft_xsend_chunk_read(m->s, m->now, a.index, x.digest),
                       0);
      if (!a.send) {
        m->hash_reads_after += m->crashed;
        break;
      }
      m->sent_chunks++;
      if (m->crashed && bm_get(m->held, m->held_len, a.index))
        m->resent_held++;
      if (m->nsend && m->nsend[a.index]++ == 0) {
        for (size_t k = 0; k < m->ndrop_first; k++) {
          if (m->drop_first[k] == a.index) {
            m->lost_first[a.index] = 1;
            m->dropped_chunks++;
            goto sent;
          }
        }
        uint64_t before = m->dropped_chunks;
        net_send(m, x, m->drop_chunk, m->dup_chunk, &m->dropped_chunks,
                 &m->dup_chunks);
        m->lost_first[a.index] = m->dropped_chunks != before;
        break;
      }
      net_send(m, x, m->drop_chunk, m->dup_chunk, &m->dropped_chunks,
               &m->dup_chunks);
    sent:
      break;
    }
    case SFT_XSEND_ENCODE_PARITY:
      encode_parity(m, &a);
      break;
    case SFT_XSEND_CANCEL_CHUNK:
      assert_true(a.index < m->count);
      m->cancelled[a.index] = 1;
      break;
    case SFT_XSEND_SEND_COMPLETE: {
      struct msg x = {M_COMPLETE, 0, 0, {0}, NULL, 0};
      memcpy(x.digest, a.root, SFT_HASH_LEN);
      net_send(m, x, m->drop_ctl, m->dup_ack, &m->dropped_ctl, &m->dup_acks);
      break;
    }
    case SFT_XSEND_DONE:
      m->done = true;
      break;
    case SFT_XSEND_FAILED:
      fail_msg("sender failed: %s", sft_err_name(a.reason));
    }
  }
}

static void send_confirm(struct sim *m, const uint8_t root[SFT_HASH_LEN]) {
  struct msg x = {M_CONFIRM, 0, 0, {0}, NULL, 0};
  memcpy(x.digest, root, SFT_HASH_LEN);
  net_send(m, x, m->drop_ctl, m->dup_ack, &m->dropped_ctl, &m->dup_acks);
}

static void pump_receiver(struct sim *m) {
  struct sft_xrecv_action a;
  for (;;) {
    assert_int_equal(sft_xrecv_poll(m->r, m->now, &a), 0);
    switch (a.type) {
    case SFT_XRECV_NONE:
      return;
    case SFT_XRECV_SEND_ACK: {
      assert_true(a.nranges > 0);
      assert_int_equal(sft_xfer_ranges_check(a.ranges, a.nranges, m->count), 0);
      struct sft_xfer_range tmp[64];
      assert_true(a.nranges <= 64);
      memcpy(tmp, a.ranges, a.nranges * sizeof(tmp[0]));
      struct msg x = {M_ACK, 0, 0, {0}, tmp, a.nranges};
      net_send(m, x, m->drop_ack, m->dup_ack, &m->dropped_acks, &m->dup_acks);
      break;
    }
    case SFT_XRECV_HASH_CHUNK: {
      uint8_t d[SFT_HASH_LEN];
      assert_true(a.len == sft_chunk_len(m->size, m->cs, a.index));
      digest(m, m->dst + a.offset, a.len, d); /* from the "part file" */
      assert_int_equal(sft_xrecv_on_hashed(m->r, a.index, d), 0);
      break;
    }
    case SFT_XRECV_FINALIZE:
      m->finalized = true;
      send_confirm(m, a.root);
      break;
    case SFT_XRECV_FAILED:
      fail_msg("receiver failed: %s", sft_err_name(a.reason));
      break;
    case SFT_XRECV_REBUILD:
      rebuild(m, &a);
      break;
    case SFT_XRECV_SEND_NEED: {
      assert_true(a.stripe < m->nstripes && a.count >= 1 &&
                  a.count <= SFT_MAX_STRIPE);
      struct msg x = {M_NEED, 0, a.stripe, {0}, NULL, 0, 0, a.count, NULL};
      /* the control stream: reliable, in order, never duplicated (a copy
       * would ask for parity twice, then for data) */
      net_send(m, x, 0, 0, &m->dropped_ctl, &m->dup_acks);
      break;
    }
    }
  }
}

static void deliver(struct sim *m, struct msg *x) {
  int rc;
  switch (x->type) {
  case M_CHUNK: {
    struct sft_xrecv_chunk c;
    uint64_t off = x->index * m->cs;
    uint32_t len = sft_chunk_len(m->size, m->cs, x->index);
    m->reordered += x->index < m->last_rx;
    m->last_rx = x->index;
    rc = sft_xrecv_on_chunk(m->r, m->now, x->index, m->src + off, len,
                            x->digest, &c);
    if (sft_xfer_state_terminal(sft_xrecv_state(m->r))) {
      assert_int_equal(rc, SFT_ERR_STATE);
      break;
    }
    assert_int_equal(rc, 0);
    if (c.verdict == SFT_XRECV_WRITE) {
      assert_true(c.offset == off && c.len == len);
      memcpy(m->dst + c.offset, m->src + off, c.len); /* pwrite */
      m->writes++;
      assert_int_equal(sft_xrecv_on_written(m->r, c.index), 0);
    }
    if (c.release_parity) {
      assert_true(m->k > 0 && c.stripe == x->index / m->k);
      free_kept(m, c.stripe);
    }
    break;
  }
  case M_PARITY: {
    struct sft_xrecv_parity o;
    m->parity_rx[x->index] |= (uint64_t)1 << x->pidx;
    rc = sft_xrecv_on_parity(m->r, m->now, x->index, x->pidx, x->payload, m->cs,
                             x->digest, &o);
    if (sft_xfer_state_terminal(sft_xrecv_state(m->r))) {
      assert_int_equal(rc, SFT_ERR_STATE);
      break;
    }
    assert_int_equal(rc, 0);
    assert_true(o.stripe == x->index && o.pidx == x->pidx);
    if (o.verdict == SFT_XRECV_KEEP) {
      uint8_t **slot = &m->kept[x->index * m->mm + x->pidx];
      assert_null(*slot); /* never asked to keep a shard twice */
      *slot = x->payload;
      x->payload = NULL; /* ownership moved */
    } else {
      assert_int_equal(o.verdict, SFT_XRECV_DROP);
    }
    break;
  }
  case M_NEED:
    m->needs_rx++;
    rc = sft_xsend_on_need_stripe(m->s, m->now, x->index, x->count);
    if (sft_xfer_state_terminal(sft_xsend_state(m->s)))
      assert_int_equal(rc, SFT_ERR_STATE);
    else
      assert_int_equal(rc, 0);
    break;
  case M_ACK:
    rc = sft_xsend_on_ack(m->s, m->now, x->ranges, x->n);
    if (sft_xfer_state_terminal(sft_xsend_state(m->s)))
      assert_int_equal(rc, SFT_ERR_STATE);
    else
      assert_int_equal(rc, 0);
    break;
  case M_COMPLETE: {
    bool was_done = sft_xrecv_state(m->r) == SFT_XS_COMPLETED;
    assert_int_equal(sft_xrecv_on_complete(m->r, m->now, x->digest), 0);
    if (was_done && m->finalized)
      send_confirm(m, x->digest); /* the sender missed our confirmation */
    break;
  }
  case M_CONFIRM:
    assert_int_equal(sft_xsend_on_complete_confirm(m->s, m->now, x->digest), 0);
    break;
  }
}

static uint64_t min3(uint64_t a, uint64_t b, uint64_t c) {
  uint64_t x = a < b ? a : b;
  return x < c ? x : c;
}

/* Runs a whole transfer and checks its outcome; sim_free() releases it
 * (tests inspect the sim in between). */
static void sim_run_keep(struct sim *m, uint64_t seed) {
  m->rng = seed;
  m->count = sft_chunk_count(m->size, m->cs);
  m->src_buf = rand_buf(m->size, seed ^ 0x5eed);
  m->src = m->src_buf;
  m->dst = calloc(1, m->size ? m->size : 1);
  assert_non_null(m->dst);
  if (m->k) {
    m->nstripes = sft_stripe_count(m->count, m->k);
    assert_int_equal(sft_fec_new(&m->fec, m->k, m->mm), 0);
    m->nsend = calloc(m->count + 1, sizeof(*m->nsend));
    m->lost_first = calloc(m->count + 1, 1);
    m->rebuilt = calloc(m->count + 1, 1);
    m->cancelled = calloc(m->count + 1, 1);
    m->kept = calloc(m->nstripes * m->mm + 1, sizeof(*m->kept));
    m->parity_rx = calloc(m->nstripes + 1, sizeof(*m->parity_rx));
    assert_true(m->nsend && m->lost_first && m->rebuilt && m->cancelled &&
                m->kept && m->parity_rx);
  }
  new_sender(m);
  handshake(m, NULL, 0);

  const uint64_t max_steps = 200000;
  for (m->steps = 0; m->steps < max_steps; m->steps++) {
    pump_sender(m);
    pump_receiver(m);
    if (m->done && m->finalized)
      break;
    if (m->crash_at_written && !m->crashed) {
      struct sft_xrecv_stats st;
      sft_xrecv_stats(m->r, &st);
      if (st.chunks_written >= m->crash_at_written) {
        crash(m);
        continue;
      }
    }
    /* deliver everything due (in arrival order), then re-pump */
    bool any = false;
    for (;;) {
      size_t best = m->nq;
      for (size_t k = 0; k < m->nq; k++)
        if (m->q[k].at <= m->now &&
            (best == m->nq || m->q[k].at < m->q[best].at))
          best = k;
      if (best == m->nq)
        break;
      struct msg x = m->q[best];
      m->q[best] = m->q[--m->nq];
      deliver(m, &x);
      free(x.ranges);
      free(x.payload);
      any = true;
    }
    if (any)
      continue;
    /* advance the clock to the next event */
    uint64_t next_msg = UINT64_MAX;
    for (size_t k = 0; k < m->nq; k++)
      if (m->q[k].at < next_msg)
        next_msg = m->q[k].at;
    uint64_t next =
        min3(next_msg, sft_xsend_expiry(m->s), sft_xrecv_expiry(m->r));
    assert_true(next != UINT64_MAX); /* otherwise it would be stuck */
    m->now = next > m->now ? next : m->now + 1;
  }
  assert_true(m->steps < max_steps);
  assert_int_equal(sft_xsend_state(m->s), SFT_XS_COMPLETED);
  assert_int_equal(sft_xrecv_state(m->r), SFT_XS_COMPLETED);
  assert_memory_equal(m->dst, m->src, m->size);

  /* the root both agreed on is the root of the source */
  uint8_t *dig = malloc((m->count ? m->count : 1) * SFT_HASH_LEN);
  uint8_t root[SFT_HASH_LEN];
  assert_non_null(dig);
  for (uint64_t i = 0; i < m->count; i++)
    digest(m, m->src + i * m->cs, sft_chunk_len(m->size, m->cs, i),
           dig + i * SFT_HASH_LEN);
  assert_int_equal(sft_root(m->algo, dig, (size_t)m->count, root), 0);
  uint8_t again[SFT_HASH_LEN];
  memcpy(again, root, SFT_HASH_LEN);
  assert_int_equal(sft_xsend_on_complete_confirm(m->s, m->now, again), 0);
  assert_int_equal(sft_xrecv_on_complete(m->r, m->now, again), 0);
  again[0] ^= 1;
  assert_int_equal(sft_xsend_on_complete_confirm(m->s, m->now, again),
                   SFT_ERR_DIGEST);
  free(dig);

  struct sft_xrecv_stats rs;
  struct sft_xsend_stats ss;
  sft_xrecv_stats(m->r, &rs);
  sft_xsend_stats(m->s, &ss);
  assert_true(rs.chunks_done == m->count && rs.bytes_done == m->size);
  assert_true(rs.chunks_written == m->count);
  assert_true(ss.chunks_acked == m->count && ss.bytes_acked == m->size);
  print_message(
      "size=%llu chunks=%llu steps=%llu sent=%llu writes=%llu "
      "drop_chunk=%llu dup_chunk=%llu drop_ack=%llu dup_ack=%llu "
      "dup_rx=%llu resends=%llu t=%llums\n",
      (unsigned long long)m->size, (unsigned long long)m->count,
      (unsigned long long)m->steps, (unsigned long long)m->sent_chunks,
      (unsigned long long)m->writes, (unsigned long long)m->dropped_chunks,
      (unsigned long long)m->dup_chunks, (unsigned long long)m->dropped_acks,
      (unsigned long long)m->dup_acks, (unsigned long long)rs.duplicates,
      (unsigned long long)ss.resends, (unsigned long long)(m->now / NS_MS));

  if (m->k) {
    /* every kept parity payload was released (stripe done or REBUILD) */
    for (uint64_t k = 0; k < m->nstripes * m->mm; k++)
      assert_null(m->kept[k]);
    /* every rebuilt chunk still in flight at the sender was reported */
    for (uint64_t i = 0; i < m->count; i++)
      if (m->rebuilt[i])
        assert_true(m->cancelled[i]);
    uint64_t nrebuilt = 0;
    for (uint64_t i = 0; i < m->count; i++)
      nrebuilt += m->rebuilt[i];
    assert_int_equal(rs.chunks_rebuilt, nrebuilt);
    if (rs.rollbacks == 0)
      assert_true(m->writes == m->count); /* each chunk written once */
    print_message(
        "fec: k=%u m=%u m_pro=%u parity_sent=%llu kept=%llu "
        "dropped=%llu rebuilds=%llu rebuilt=%llu needs=%llu "
        "need_parity=%llu need_resends=%llu refetches=%llu "
        "cancels=%llu rollbacks=%llu\n",
        m->k, m->mm, m->m_pro, (unsigned long long)m->parity_sent,
        (unsigned long long)rs.parity_kept,
        (unsigned long long)rs.parity_dropped, (unsigned long long)rs.rebuilds,
        (unsigned long long)rs.chunks_rebuilt,
        (unsigned long long)rs.needs_sent, (unsigned long long)ss.need_parity,
        (unsigned long long)ss.need_resends, (unsigned long long)ss.refetches,
        (unsigned long long)ss.cancels, (unsigned long long)rs.rollbacks);
  }
}

static void sim_free(struct sim *m) {
  q_clear(m);
  free(m->q);
  free(m->held);
  free(m->dst);
  free(m->src_buf);
  free(m->nsend);
  free(m->lost_first);
  free(m->rebuilt);
  free(m->cancelled);
  free(m->kept);
  free(m->parity_rx);
  sft_fec_del(m->fec);
  sft_xsend_del(m->s);
  sft_xrecv_del(m->r);
}

static void sim_run(struct sim *m, uint64_t seed) {
  sim_run_keep(m, seed);
  sim_free(m);
}

static struct sim lossy(uint64_t size) {
  struct sim m;
  memset(&m, 0, sizeof(m));
  m.size = size;
  m.cs = 64 * 1024;
  m.algo = SFT_HASH_BLAKE3;
  m.drop_chunk = 200;
  m.dup_chunk = 100;
  m.drop_ack = 200;
  m.dup_ack = 100;
  m.drop_ctl = 100;
  m.drop_parity_of = UINT64_MAX;
  return m;
}

static void test_transfer_lossy_5mib(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= 3; seed++) {
    struct sim m = lossy(5 * 1024 * 1024 + 123);
    sim_run(&m, seed);
    /* the loss really happened, and was repaired */
    assert_int_equal(m.count, 81);
    assert_true(m.dropped_chunks > 0 && m.dup_chunks > 0);
    assert_true(m.dropped_acks > 0 && m.dup_acks > 0);
    assert_true(m.reordered > 0);
    assert_true(m.sent_chunks > m.count);
    assert_true(m.writes == m.count); /* every chunk written exactly once */
  }
}

static void test_transfer_small_files(void **state) {
  (void)state;
  const uint64_t sizes[] = {0, 1, 1000, 64 * 1024, 64 * 1024 + 1};
  for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
    for (uint64_t seed = 10; seed < 16; seed++) {
      struct sim m = lossy(sizes[k]);
      sim_run(&m, seed);
      assert_true(m.writes == m.count);
    }
  }
}

static void test_transfer_sha256_clean(void **state) {
  (void)state;
  struct sim m = lossy(300 * 1024 + 5);
  m.algo = SFT_HASH_SHA256;
  m.cs = 16 * 1024;
  m.drop_chunk = m.dup_chunk = m.drop_ack = m.dup_ack = m.drop_ctl = 0;
  sim_run(&m, 77);
  assert_int_equal(m.sent_chunks, m.count); /* no loss: no resend */
  assert_int_equal(m.writes, m.count);
}

static void run_resume(bool sender_restarts) {
  for (uint64_t seed = 21; seed <= 23; seed++) {
    struct sim m = lossy(5 * 1024 * 1024 + 123);
    m.crash_at_written = 40;
    m.sender_restarts = sender_restarts;
    sim_run(&m, seed);
    assert_true(m.crashed);
    uint64_t held = m.held_count;
    assert_true(held >= 40 && held < m.count);
    /* no chunk the receiver had verified crossed the wire again */
    assert_int_equal(m.resent_held, 0);
    if (sender_restarts)
      assert_int_equal(m.hash_reads_after, held); /* digests for the root */
  }
}

static void test_transfer_resume_receiver_restart(void **state) {
  (void)state;
  run_resume(false); /* the sender survives, re-accepts */
}

static void test_transfer_resume_both_restart(void **state) {
  (void)state;
  run_resume(true); /* a fresh sender too: hash-only reads for held chunks */
}

/* ---- FEC: stripes, parity, NEED, rebuilds ------------------------------ */

#define FCS (16u * 1024)

/* 10+3, no ACK loss (so every data resend is a chunk the receiver lacked),
 * a resend timeout long enough that only NEED or parity repair loss. */
static struct sim fec_sim(uint64_t size, unsigned loss, uint32_t m_pro) {
  struct sim m = lossy(size);
  m.cs = FCS;
  m.k = 10;
  m.mm = 3;
  m.m_pro = m_pro;
  m.drop_chunk = loss;
  m.dup_chunk = 50;
  m.drop_ack = 0;
  m.dup_ack = 50;
  m.drop_ctl = 0;
  m.resend_timeout = 1000 * NS_MS;
  return m;
}

static uint32_t popc64(uint64_t x) {
  return (uint32_t)__builtin_popcountll(x);
}

/* Stripes whose lost data chunks were at most the parity shards delivered
 * are rebuilt: none of their data chunks crossed the wire twice. */
static void check_coverable(const struct sim *m, uint64_t *covered,
                            uint64_t *lost_total) {
  for (uint64_t s = 0; s < m->nstripes; s++) {
    uint32_t len = sft_stripe_len(m->count, m->k, s);
    uint32_t lost = 0;
    for (uint64_t i = s * m->k; i < s * m->k + len; i++)
      lost += m->lost_first[i];
    *lost_total += lost;
    if (lost == 0 || lost > popc64(m->parity_rx[s]))
      continue;
    for (uint64_t i = s * m->k; i < s * m->k + len; i++) {
      assert_int_equal(m->nsend[i], 1);
      if (m->lost_first[i]) {
        assert_true(m->rebuilt[i]);
        (*covered)++;
      }
    }
  }
}

static void test_fec_transfer_loss(void **state) {
  (void)state;
  const unsigned losses[] = {50, 200};
  for (size_t l = 0; l < 2; l++) {
    uint64_t covered = 0, lost = 0, rebuilt = 0, resends = 0;
    for (uint64_t seed = 31; seed <= 34; seed++) {
      /* 204 chunks: 21 stripes, the last of 4 chunks ending short */
      struct sim m = fec_sim(203 * FCS + 777, losses[l], 2);
      sim_run_keep(&m, seed);
      check_coverable(&m, &covered, &lost);
      for (uint64_t i = 0; i < m.count; i++) {
        rebuilt += m.rebuilt[i];
        resends += m.nsend[i] - 1;
      }
      /* proactive parity: 2 shards per stripe at least */
      assert_true(m.parity_sent >= 2 * m.nstripes);
      sim_free(&m);
    }
    print_message("loss=%u permille: lost=%llu covered+rebuilt=%llu "
                  "rebuilt=%llu data resends=%llu\n",
                  losses[l], (unsigned long long)lost,
                  (unsigned long long)covered, (unsigned long long)rebuilt,
                  (unsigned long long)resends);
    assert_true(lost > 0 && covered > 0 && rebuilt >= covered);
    /* most loss is repaired by parity, not by sending data again */
    assert_true(resends < lost);
  }
}

static void test_fec_need_answered_with_parity(void **state) {
  (void)state;
  /* no proactive parity: the receiver's NEED brings it */
  const uint64_t drops[] = {3, 25};
  struct sim m = fec_sim(60 * FCS, 0, 0);
  m.drop_first = drops;
  m.ndrop_first = 2;
  sim_run_keep(&m, 41);
  struct sft_xsend_stats ss;
  sft_xsend_stats(m.s, &ss);
  assert_true(m.rebuilt[3] && m.rebuilt[25]);
  assert_int_equal(m.nsend[3], 1);
  assert_int_equal(m.nsend[25], 1);
  assert_int_equal(ss.resends, 0);
  assert_int_equal(ss.need_parity, 2); /* one shard per stripe */
  assert_int_equal(ss.parity_shards, 2);
  assert_true(m.needs_rx >= 2);
  assert_true(m.now < m.resend_timeout); /* no timeout was needed */
  sim_free(&m);
}

static void test_fec_parity_lost_falls_back_to_resend(void **state) {
  (void)state;
  /* stripe 0 loses 2 chunks and every parity shard it is ever sent */
  const uint64_t drops[] = {3, 4};
  struct sim m = fec_sim(60 * FCS, 0, 2);
  m.drop_first = drops;
  m.ndrop_first = 2;
  m.drop_parity_of = 0;
  m.resend_timeout = 5000 * NS_MS;
  sim_run_keep(&m, 42);
  struct sft_xsend_stats ss;
  sft_xsend_stats(m.s, &ss);
  assert_false(m.rebuilt[3] || m.rebuilt[4]);
  assert_int_equal(m.nsend[3], 2); /* sent again because of NEED */
  assert_int_equal(m.nsend[4], 2);
  assert_true(ss.need_resends >= 2);
  assert_int_equal(ss.need_parity, 1); /* m = 3: only one shard was left */
  assert_true(m.now < m.resend_timeout);
  /* the other stripes lost nothing: their parity was never needed */
  sim_free(&m);
}

static void test_fec_short_last_stripe(void **state) {
  (void)state;
  /* 23 chunks, the last stripe is 20..22 and chunk 22 is 100 bytes */
  const uint64_t drops[] = {20, 22};
  struct sim m = fec_sim(22 * FCS + 100, 0, 2);
  m.drop_first = drops;
  m.ndrop_first = 2;
  sim_run_keep(&m, 43);
  assert_true(m.rebuilt[20] && m.rebuilt[22]);
  assert_int_equal(m.nsend[20], 1);
  assert_int_equal(m.nsend[22], 1);
  assert_int_equal(m.nstripes, 3);
  sim_free(&m);
}

static void test_fec_bad_rebuild_rolls_back(void **state) {
  (void)state;
  const uint64_t drops[] = {12};
  struct sim m = fec_sim(40 * FCS, 0, 2);
  m.drop_first = drops;
  m.ndrop_first = 1;
  m.corrupt_rebuild = true;
  sim_run_keep(&m, 44); /* ends with the right bytes */
  struct sft_xsend_stats ss;
  struct sft_xrecv_stats rs;
  sft_xsend_stats(m.s, &ss);
  sft_xrecv_stats(m.r, &rs);
  assert_true(m.corrupted && m.rebuilt[12]);
  assert_int_equal(rs.rollbacks, 1);
  /* every stripe with a rebuilt chunk was fetched again, whole, once (the
   * jitter reorders chunks behind their parity: more than stripe 1 had
   * rebuilt chunks); the others were sent once */
  uint64_t stripes_rebuilt = 0;
  for (uint64_t s = 0; s < m.nstripes; s++) {
    bool any = false;
    for (uint64_t i = s * 10; i < s * 10 + 10; i++)
      any |= m.rebuilt[i] != 0;
    stripes_rebuilt += any;
    /* (the root is checked as soon as the last chunk is in, maybe before
     * every ACK reached the sender: a NEED for a refetched stripe still in
     * flight can send one of its chunks a third time) */
    for (uint64_t i = s * 10; i < s * 10 + 10; i++) {
      assert_true(m.nsend[i] >= (any ? 2 : 1));
      assert_true(m.nsend[i] <= (any ? 3 : 1));
    }
  }
  assert_int_equal(ss.refetches, stripes_rebuilt);
  assert_true(rs.needs_sent >= stripes_rebuilt);
  assert_true(stripes_rebuilt >= 1);
  sim_free(&m);
}

static struct sft_xrecv *mk_recv_fec(uint64_t nchunks, uint64_t last,
                                     uint32_t k, uint32_t mm, uint32_t slots) {
  struct sft_xrecv_params p;
  sft_xrecv_params_default(&p);
  p.ack_batch = 1;
  p.stripe_k = k;
  p.stripe_m = mm;
  p.max_parity_stripes = slots;
  struct sft_xrecv *r = NULL;
  assert_int_equal(sft_xrecv_new(&r, (nchunks - 1) * CS + last, CS,
                                 SFT_HASH_BLAKE3, NULL, 0, &p),
                   0);
  assert_int_equal(sft_xrecv_start(r, 0), 0);
  assert_int_equal(sft_xrecv_accepted(r, 0), 0);
  return r;
}

static void test_fec_recv_hostile(void **state) {
  (void)state;
  uint8_t *par = rand_buf(CS, 5);
  uint8_t d[SFT_HASH_LEN], bad[SFT_HASH_LEN];
  sft_blake3(par, CS, d);
  memcpy(bad, d, SFT_HASH_LEN);
  bad[7] ^= 1;
  struct sft_xrecv_parity o;
  struct sft_xrecv_stats st;

  /* bad parameters */
  struct sft_xrecv_params p;
  sft_xrecv_params_default(&p);
  struct sft_xrecv *r = NULL;
  p.stripe_k = 200;
  p.stripe_m = 56; /* 256 > SFT_MAX_STRIPE */
  assert_int_equal(sft_xrecv_new(&r, CS, CS, SFT_HASH_BLAKE3, NULL, 0, &p),
                   SFT_ERR_INVAL);
  p.stripe_k = 0;
  p.stripe_m = 3;
  assert_int_equal(sft_xrecv_new(&r, CS, CS, SFT_HASH_BLAKE3, NULL, 0, &p),
                   SFT_ERR_INVAL);
  assert_null(r);

  /* a file with m = 0 takes no parity at all */
  r = mk_recv_fec(25, CS, 10, 0, 0);
  assert_int_equal(sft_xrecv_on_parity(r, 1, 0, 0, par, CS, d, &o),
                   SFT_ERR_PEER);
  sft_xrecv_del(r);

  /* 25 chunks = stripes 0, 1 (10 each) and 2 (5) */
  r = mk_recv_fec(25, CS, 10, 3, 1);
  assert_int_equal(sft_xrecv_on_parity(r, 1, 3, 0, par, CS, d, &o),
                   SFT_ERR_RANGE); /* stripe out of range */
  assert_int_equal(sft_xrecv_on_parity(r, 1, UINT64_MAX, 0, par, CS, d, &o),
                   SFT_ERR_RANGE);
  assert_int_equal(sft_xrecv_on_parity(r, 1, 0, 3, par, CS, d, &o),
                   SFT_ERR_RANGE); /* pidx >= m */
  assert_int_equal(sft_xrecv_on_parity(r, 1, 0, 0, par, CS - 1, d, &o),
                   SFT_ERR_MALFORMED);
  assert_int_equal(sft_xrecv_on_parity(r, 1, 0, 0, NULL, CS, d, &o),
                   SFT_ERR_INVAL);
  /* wrong digest: rejected and counted, nothing kept */
  assert_int_equal(sft_xrecv_on_parity(r, 1, 0, 0, par, CS, bad, &o),
                   SFT_ERR_DIGEST);
  assert_int_equal(sft_xrecv_on_parity_hashed(r, 1, 0, 1, CS, d, bad, &o),
                   SFT_ERR_DIGEST);
  sft_xrecv_stats(r, &st);
  assert_int_equal(st.parity_digest_failures, 2);
  assert_int_equal(st.parity_kept, 0);
  /* good one: kept; the same shard again: dropped */
  assert_int_equal(sft_xrecv_on_parity(r, 1, 0, 0, par, CS, d, &o), 0);
  assert_int_equal(o.verdict, SFT_XRECV_KEEP);
  assert_int_equal(sft_xrecv_on_parity(r, 1, 0, 0, par, CS, d, &o), 0);
  assert_int_equal(o.verdict, SFT_XRECV_DROP);
  /* one parity slot: another stripe's parity is dropped (bounded) */
  assert_int_equal(sft_xrecv_on_parity(r, 1, 1, 0, par, CS, d, &o), 0);
  assert_int_equal(o.verdict, SFT_XRECV_DROP);
  sft_xrecv_stats(r, &st);
  assert_int_equal(st.parity_kept, 1);
  assert_int_equal(st.parity_dropped, 2);
  assert_int_equal(st.parity_overflows, 1);
  /* rebuilt chunks only for a stripe being rebuilt */
  struct sft_xrecv_chunk c;
  assert_int_equal(sft_xrecv_on_rebuilt(r, 1, 25, d, &c), SFT_ERR_RANGE);
  assert_int_equal(sft_xrecv_on_rebuilt(r, 1, 3, d, &c), SFT_ERR_STATE);
  assert_int_equal(sft_xrecv_rebuild_failed(r, 1, 3), SFT_ERR_RANGE);
  assert_int_equal(sft_xrecv_rebuild_failed(r, 1, 0), 0); /* no-op */
  sft_xrecv_del(r);
  free(par);
}

/* Receiver decisions on a hand-driven stripe: REBUILD only once the held
 * chunks are written and the parity covers the gap; NEED only for a gap
 * below a completed stripe, rate-limited; chunks completing a stripe
 * release its parity. */
static void test_fec_recv_rebuild_and_need(void **state) {
  (void)state;
  const uint64_t n = 25;
  uint8_t *buf = rand_buf(n * CS, 6);
  struct sft_xrecv *r = mk_recv_fec(n, CS, 10, 3, 4);
  sft_xrecv_set_rtt(r, 10 * NS_MS);
  struct sft_xrecv_chunk c;
  struct sft_xrecv_action a;
  struct sft_xrecv_parity o;
  uint8_t pd[SFT_HASH_LEN];
  uint8_t *par = rand_buf(CS, 9);
  sft_blake3(par, CS, pd);
  /* stripe 0: all but 2 and 7; stripe 1 complete */
  for (uint64_t i = 0; i < 20; i++) {
    if (i == 2 || i == 7)
      continue;
    assert_int_equal(put(r, 1, buf, n * CS, i, &c), 0);
    assert_int_equal(c.verdict, SFT_XRECV_WRITE);
    if (i != 5)
      assert_int_equal(sft_xrecv_on_written(r, i), 0);
  }
  /* drain acks */
  do
    assert_int_equal(sft_xrecv_poll(r, 1, &a), 0);
  while (a.type == SFT_XRECV_SEND_ACK);
  assert_int_equal(a.type, SFT_XRECV_NONE);
  assert_true(a.expiry == 1 + 20 * NS_MS); /* NEED timer: 2 * rtt */
  /* two parity shards; chunk 5 not yet written: no REBUILD */
  assert_int_equal(sft_xrecv_on_parity(r, 2, 0, 2, par, CS, pd, &o), 0);
  assert_int_equal(o.verdict, SFT_XRECV_KEEP);
  assert_int_equal(sft_xrecv_poll(r, 3, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_NONE);
  /* NEED at the deadline: count = missing 2 - held 1 */
  assert_int_equal(sft_xrecv_poll(r, 1 + 20 * NS_MS, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_SEND_NEED);
  assert_int_equal(a.stripe, 0);
  assert_int_equal(a.count, 1);
  assert_int_equal(sft_xrecv_poll(r, 1 + 20 * NS_MS, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_NONE); /* rate-limited */
  assert_true(a.expiry == 1 + 40 * NS_MS);
  assert_int_equal(sft_xrecv_on_parity(r, 30 * NS_MS, 0, 0, par, CS, pd, &o),
                   0);
  assert_int_equal(o.verdict, SFT_XRECV_KEEP);
  /* enough parity now: a third shard is not needed */
  assert_int_equal(sft_xrecv_on_parity(r, 30 * NS_MS, 0, 1, par, CS, pd, &o),
                   0);
  assert_int_equal(o.verdict, SFT_XRECV_DROP);
  assert_int_equal(sft_xrecv_poll(r, 30 * NS_MS, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_NONE); /* chunk 5 still unwritten */
  assert_int_equal(sft_xrecv_on_written(r, 5), 0);
  assert_int_equal(sft_xrecv_poll(r, 30 * NS_MS, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_REBUILD);
  assert_int_equal(a.stripe, 0);
  assert_int_equal(a.index, 0);
  assert_int_equal(a.nchunks, 10);
  assert_int_equal(a.nmissing, 2);
  assert_int_equal(a.len, CS);
  for (unsigned i = 0; i < 13; i++)
    assert_int_equal(sft_fec_mask_test(&a.present, i),
                     i != 2 && i != 7 && i != 11); /* parity 0 and 2 */
  /* while rebuilding: no NEED for it, parity dropped */
  assert_int_equal(sft_xrecv_on_parity(r, 30 * NS_MS, 0, 1, par, CS, pd, &o),
                   0);
  assert_int_equal(o.verdict, SFT_XRECV_DROP);
  assert_int_equal(sft_xrecv_poll(r, 100 * NS_MS, &a), 0);
  assert_int_equal(a.type, SFT_XRECV_NONE);
  /* the real chunk 7 arrives meanwhile: rebuilt 7 is a duplicate */
  assert_int_equal(put(r, 100 * NS_MS, buf, n * CS, 7, &c), 0);
  assert_int_equal(c.verdict, SFT_XRECV_WRITE);
  assert_false(c.release_parity);
  uint8_t d2[SFT_HASH_LEN];
  sft_blake3(buf + 2 * CS, CS, d2);
  assert_int_equal(sft_xrecv_on_rebuilt(r, 100 * NS_MS, 2, d2, &c), 0);
  assert_int_equal(c.verdict, SFT_XRECV_WRITE);
  assert_int_equal(sft_xrecv_on_rebuilt(r, 100 * NS_MS, 7, d2, &c), 0);
  assert_int_equal(c.verdict, SFT_XRECV_DUPLICATE);
  struct sft_xrecv_stats st;
  sft_xrecv_stats(r, &st);
  assert_int_equal(st.chunks_rebuilt, 1);
  assert_int_equal(st.rebuilds, 1);
  assert_int_equal(st.needs_sent, 1);
  assert_int_equal(st.chunks_done, 20);
  /* stripe 2 (short, 5 chunks): parity kept, then data completes it */
  assert_int_equal(sft_xrecv_on_parity(r, 101 * NS_MS, 2, 0, par, CS, pd, &o),
                   0);
  assert_int_equal(o.verdict, SFT_XRECV_KEEP);
  bool released = false;
  for (uint64_t i = 20; i < 25; i++) {
    assert_int_equal(put(r, 101 * NS_MS, buf, n * CS, i, &c), 0);
    released |= c.release_parity;
    if (c.release_parity)
      assert_int_equal(c.stripe, 2);
  }
  assert_true(released);
  free(par);
  free(buf);
  sft_xrecv_del(r);
}

static struct sft_xsend *mk_send_fec(uint64_t nchunks, uint32_t k,
                                     uint32_t mm) {
  struct sft_xsend_params p = {64, 100 * NS_MS, 3, k, mm};
  struct sft_xsend *s = NULL;
  assert_int_equal(sft_xsend_new(&s, nchunks * CS, CS, SFT_HASH_BLAKE3, &p), 0);
  assert_int_equal(sft_xsend_start(s, 0), 0);
  assert_int_equal(sft_xsend_on_accept(s, 0, NULL, 0), 0);
  return s;
}

static void test_fec_send_parity_and_need(void **state) {
  (void)state;
  struct sft_xsend_params p = {64, 100 * NS_MS, 3, 200, 56};
  struct sft_xsend *s = NULL;
  assert_int_equal(sft_xsend_new(&s, CS, CS, SFT_HASH_BLAKE3, &p),
                   SFT_ERR_INVAL);
  p.stripe_k = 0;
  p.stripe_m = 1;
  assert_int_equal(sft_xsend_new(&s, CS, CS, SFT_HASH_BLAKE3, &p),
                   SFT_ERR_INVAL);

  /* 25 chunks: stripes of 10, 10, 5 */
  s = mk_send_fec(25, 10, 3);
  assert_int_equal(sft_xsend_set_parity(s, 4), SFT_ERR_RANGE);
  assert_int_equal(sft_xsend_set_parity(s, 2), 0);
  assert_int_equal(sft_xsend_on_need_stripe(s, 0, 3, 1), SFT_ERR_RANGE);
  assert_int_equal(sft_xsend_on_need_stripe(s, 0, 0, 0), SFT_ERR_RANGE);
  assert_int_equal(sft_xsend_on_need_stripe(s, 0, 0, 256), SFT_ERR_RANGE);
  /* reads in index order; parity of a stripe right after its last read */
  struct sft_xsend_action a;
  int parity_actions = 0, early = 0;
  uint64_t order[64];
  int n = 0;
  for (;;) {
    assert_int_equal(sft_xsend_poll(s, 1, &a), 0);
    if (a.type == SFT_XSEND_NONE)
      break;
    if (a.type == SFT_XSEND_READ_CHUNK) {
      uint8_t d[SFT_HASH_LEN];
      fake_digest(a.index, d);
      assert_int_equal(sft_xsend_chunk_read(s, 1, a.index, d), 0);
      order[n++] = a.index;
      continue;
    }
    if (a.type == SFT_XSEND_SEND_COMPLETE) {
      /* early, once every digest is known: after the last parity */
      assert_int_equal(n, 28);
      assert_int_equal(sft_xsend_state(s), SFT_XS_TRANSFERRING);
      early++;
      continue;
    }
    assert_int_equal(a.type, SFT_XSEND_ENCODE_PARITY);
    assert_int_equal(a.parity_first, 0);
    assert_int_equal(a.parity_count, 2);
    assert_int_equal(a.len, CS);
    assert_int_equal(a.index, a.stripe * 10);
    assert_int_equal(a.offset, a.stripe * 10 * CS);
    assert_int_equal(a.nchunks, a.stripe == 2 ? 5 : 10);
    assert_int_equal(order[n - 1], a.index + a.nchunks - 1);
    order[n++] = 1000 + a.stripe;
    parity_actions++;
  }
  assert_int_equal(parity_actions, 3); /* once per stripe */
  assert_int_equal(n, 28);
  assert_int_equal(early, 1);
  /* NEED 2 for stripe 0: one parity shard left (index 2), then one resend */
  assert_int_equal(sft_xsend_on_need_stripe(s, 2, 0, 2), 0);
  assert_int_equal(sft_xsend_poll(s, 2, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_READ_CHUNK); /* due now */
  assert_int_equal(a.index, 0);
  assert_int_equal(a.attempt, 1);
  assert_int_equal(sft_xsend_poll(s, 2, &a), 0);
  assert_int_equal(a.type, SFT_XSEND_ENCODE_PARITY);
  assert_int_equal(a.stripe, 0);
  assert_int_equal(a.parity_first, 2);
  assert_int_equal(a.parity_count, 1);
  /* acks: a chunk acked while in flight in a stripe with parity sent is
   * reported (it may be rebuilt; its stream may still be open) */
  struct sft_xfer_range r0 = {0, 24};
  assert_int_equal(sft_xsend_on_ack(s, 3, &r0, 1), 0);
  int cancels = 0;
  for (;;) {
    assert_int_equal(sft_xsend_poll(s, 3, &a), 0);
    if (a.type != SFT_XSEND_CANCEL_CHUNK)
      break;
    assert_int_equal(a.index, (uint64_t)cancels);
    cancels++;
  }
  assert_int_equal(cancels, 25);
  /* parity never blocks completion (COMPLETE itself went early) */
  assert_int_equal(a.type, SFT_XSEND_NONE);
  assert_int_equal(sft_xsend_state(s), SFT_XS_COMPLETING);
  /* NEED for a fully acked stripe: parity left none, nothing to resend */
  assert_int_equal(sft_xsend_on_need_stripe(s, 4, 0, 1), 0);
  assert_int_equal(sft_xsend_state(s), SFT_XS_COMPLETING);
  /* count > stripe length: the receiver lost acked chunks -> refetch */
  assert_int_equal(sft_xsend_on_need_stripe(s, 4, 2, 6), 0);
  assert_int_equal(sft_xsend_state(s), SFT_XS_TRANSFERRING);
  int resent = 0;
  for (;;) {
    assert_int_equal(sft_xsend_poll(s, 5, &a), 0);
    if (a.type != SFT_XSEND_READ_CHUNK)
      break;
    assert_true(a.index >= 20 && a.index < 25 && a.send);
    uint8_t d[SFT_HASH_LEN];
    fake_digest(a.index, d);
    assert_int_equal(sft_xsend_chunk_read(s, 5, a.index, d), 0);
    resent++;
  }
  assert_int_equal(resent, 5);
  struct sft_xsend_stats st;
  sft_xsend_stats(s, &st);
  assert_int_equal(st.parity_shards, 7);
  assert_int_equal(st.need_parity, 1);
  assert_int_equal(st.need_resends, 1);
  assert_int_equal(st.refetches, 1);
  assert_int_equal(st.cancels, 25);
  sft_xsend_del(s);

  /* m_pro = 0, or no stripes: no parity, NEED without stripes refused */
  s = mk_send_fec(25, 10, 3);
  int reads = drain_send(s, 1, NULL, NULL, &a);
  assert_int_equal(reads, 25);
  assert_int_equal(a.type, SFT_XSEND_NONE);
  sft_xsend_del(s);
  s = mk_send_running(25, 64, 100 * NS_MS, 3, NULL, 0);
  assert_int_equal(sft_xsend_on_need_stripe(s, 1, 0, 1), SFT_ERR_STATE);
  assert_int_equal(sft_xsend_set_parity(s, 1), SFT_ERR_RANGE);
  sft_xsend_del(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fsm_every_valid_transition),
      cmocka_unit_test(test_fsm_every_invalid_pair),
      cmocka_unit_test(test_fsm_names),
      cmocka_unit_test(test_send_params_and_geometry),
      cmocka_unit_test(test_send_have_bitmap_skipping),
      cmocka_unit_test(test_send_ack_idempotent),
      cmocka_unit_test(test_send_garbage_ranges),
      cmocka_unit_test(test_send_resend_after_timeout),
      cmocka_unit_test(test_send_pause_means_no_reads),
      cmocka_unit_test(test_send_max_inflight),
      cmocka_unit_test(test_send_network_failure),
      cmocka_unit_test(test_send_failures),
      cmocka_unit_test(test_send_early_complete),
      cmocka_unit_test(test_send_start_early),
      cmocka_unit_test(test_recv_chunk_checks),
      cmocka_unit_test(test_recv_ack_batching),
      cmocka_unit_test(test_recv_root_mismatch),
      cmocka_unit_test(test_recv_resume_hashing),
      cmocka_unit_test(test_transfer_lossy_5mib),
      cmocka_unit_test(test_transfer_small_files),
      cmocka_unit_test(test_transfer_sha256_clean),
      cmocka_unit_test(test_transfer_resume_receiver_restart),
      cmocka_unit_test(test_transfer_resume_both_restart),
      cmocka_unit_test(test_fec_recv_hostile),
      cmocka_unit_test(test_fec_recv_rebuild_and_need),
      cmocka_unit_test(test_fec_send_parity_and_need),
      cmocka_unit_test(test_fec_transfer_loss),
      cmocka_unit_test(test_fec_need_answered_with_parity),
      cmocka_unit_test(test_fec_parity_lost_falls_back_to_resend),
      cmocka_unit_test(test_fec_short_last_stripe),
      cmocka_unit_test(test_fec_bad_rebuild_rolls_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
