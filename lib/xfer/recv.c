/* The receiver machine of one file transfer. See sft/xfer.h and
 * docs/internals/xfer.md.
 *
 * Per chunk: a flag byte and a digest, plus the persisted bitmap (chunks
 * verified AND written). Chunks to acknowledge collect in a bounded pending
 * list (a flag keeps each index in it once); poll() sorts and merges it
 * into ranges. A duplicate chunk is acknowledged again: the sender only
 * resends what it did not see acked, so a duplicate usually means a lost
 * ACK. */
#include <stdlib.h>
#include <string.h>

#include "sft/xfer.h"

enum { R_HAVE = 1, R_DIGEST = 2, R_HASHING = 4, R_ACKPEND = 8 };

struct sft_xrecv {
  enum sft_xfer_state st;
  int reason;
  bool reported;
  bool net_down;
  bool have_root;
  enum sft_hash_algo algo;
  uint64_t size;
  uint32_t chunk_size;
  uint64_t count;
  struct sft_xrecv_params p;
  uint64_t now;

  uint64_t n_have, bytes_have, n_digest, n_need_hash, n_written;
  uint32_t n_hashing;
  uint64_t hash_cursor;
  uint8_t root[SFT_HASH_LEN]; /* the sender's, once have_root */

  uint32_t n_pend;
  uint64_t ack_deadline;
  uint64_t duplicates, digest_failures, acks_sent, ack_overflows;

  uint64_t *pend;                /* [ack_batch] */
  struct sft_xfer_range *ranges; /* [ack_batch] */
  uint8_t *digests;              /* [count * SFT_HASH_LEN] */
  uint8_t *flags;                /* [count] */
  uint8_t *written;              /* [(count + 7) / 8] persisted bitmap */
};

static uint64_t clock_in(struct sft_xrecv *r, uint64_t now) {
  if (now > r->now)
    r->now = now;
  return r->now;
}

static bool need_hash(uint8_t f) {
  return (f & R_HAVE) && !(f & (R_DIGEST | R_HASHING));
}

static void set_flags(struct sft_xrecv *r, uint64_t i, uint8_t nf) {
  uint8_t of = r->flags[i];
  uint64_t len = sft_chunk_len(r->size, r->chunk_size, i);
  r->n_have += (nf & R_HAVE) != 0;
  r->n_have -= (of & R_HAVE) != 0;
  r->bytes_have += (nf & R_HAVE) ? len : 0;
  r->bytes_have -= (of & R_HAVE) ? len : 0;
  r->n_digest += (nf & R_DIGEST) != 0;
  r->n_digest -= (of & R_DIGEST) != 0;
  r->n_need_hash += need_hash(nf);
  r->n_need_hash -= need_hash(of);
  r->flags[i] = nf;
}

static void set_written(struct sft_xrecv *r, uint64_t i) {
  uint8_t m = (uint8_t)(1u << (i & 7));
  if (!(r->written[i >> 3] & m)) {
    r->written[i >> 3] |= m;
    r->n_written++;
  }
}

static void fail(struct sft_xrecv *r, int reason) {
  if (sft_xfer_fsm_apply(&r->st, SFT_XE_FAIL) == 0)
    r->reason = reason;
}

void sft_xrecv_params_default(struct sft_xrecv_params *p) {
  p->ack_batch = 32;
  p->ack_delay_ns = 20000000ull;
  p->max_hash_inflight = 4;
}

static size_t align8(size_t n) {
  return (n + 7) & ~(size_t)7;
}

int sft_xrecv_new(struct sft_xrecv **out, uint64_t size, uint32_t chunk_size,
                  enum sft_hash_algo algo, const uint8_t *have, size_t have_len,
                  const struct sft_xrecv_params *p) {
  struct sft_xrecv_params def;
  if (!out)
    return SFT_ERR_INVAL;
  *out = NULL;
  if (!p) {
    sft_xrecv_params_default(&def);
    p = &def;
  }
  if (p->ack_batch == 0 || p->ack_batch > SFT_MAX_ACK_RANGES ||
      p->max_hash_inflight == 0 ||
      p->max_hash_inflight > SFT_XSEND_MAX_INFLIGHT)
    return SFT_ERR_INVAL;
  int rc = sft_xfer_geometry_check(size, chunk_size, algo);
  if (rc)
    return rc;
  uint64_t count = sft_chunk_count(size, chunk_size);
  rc = sft_xfer_bitmap_check(have, have_len, count);
  if (rc)
    return rc;
  size_t off_pend = align8(sizeof(struct sft_xrecv));
  size_t off_ranges = off_pend + align8(p->ack_batch * sizeof(uint64_t));
  size_t off_dig =
      off_ranges + align8(p->ack_batch * sizeof(struct sft_xfer_range));
  size_t off_flags = off_dig + align8((size_t)count * SFT_HASH_LEN);
  size_t off_bm = off_flags + align8((size_t)count);
  size_t total = off_bm + align8((size_t)(count + 7) / 8);
  uint8_t *mem = calloc(1, total);
  if (!mem)
    return SFT_ERR_NOMEM;
  struct sft_xrecv *r = (struct sft_xrecv *)(void *)mem;
  r->st = SFT_XS_IDLE;
  r->algo = algo;
  r->size = size;
  r->chunk_size = chunk_size;
  r->count = count;
  r->p = *p;
  r->pend = (uint64_t *)(void *)(mem + off_pend);
  r->ranges = (struct sft_xfer_range *)(void *)(mem + off_ranges);
  r->digests = mem + off_dig;
  r->flags = mem + off_flags;
  r->written = mem + off_bm;
  r->ack_deadline = UINT64_MAX;
  for (size_t b = 0; b < have_len; b++) {
    if (!have[b])
      continue;
    for (uint64_t i = (uint64_t)b * 8; i < (uint64_t)b * 8 + 8; i++) {
      if ((have[b] >> (i & 7)) & 1) {
        set_flags(r, i, R_HAVE); /* digest unknown: re-hashed later */
        set_written(r, i);
      }
    }
  }
  *out = r;
  return 0;
}

void sft_xrecv_del(struct sft_xrecv *r) {
  free(r);
}

int sft_xrecv_start(struct sft_xrecv *r, uint64_t now) {
  if (!r)
    return SFT_ERR_INVAL;
  clock_in(r, now);
  if (r->st != SFT_XS_IDLE)
    return SFT_ERR_STATE;
  return sft_xfer_fsm_apply(&r->st, SFT_XE_START);
}

int sft_xrecv_accepted(struct sft_xrecv *r, uint64_t now) {
  if (!r)
    return SFT_ERR_INVAL;
  clock_in(r, now);
  if (r->st != SFT_XS_PREPARING)
    return SFT_ERR_STATE;
  return sft_xfer_fsm_apply(&r->st, SFT_XE_START);
}

static bool data_state(const struct sft_xrecv *r) {
  return r->st == SFT_XS_TRANSFERRING || r->st == SFT_XS_PAUSED ||
         r->st == SFT_XS_COMPLETING;
}

/* Queue chunk |i| for the next ACK. If the list is full (the daemon did not
 * poll), the ACK is skipped: the sender's resend will be acked then. */
static void ack_add(struct sft_xrecv *r, uint64_t now, uint64_t i) {
  if (r->flags[i] & R_ACKPEND)
    return;
  if (r->n_pend >= r->p.ack_batch) {
    r->ack_overflows++;
    return;
  }
  if (r->n_pend == 0) {
    uint64_t d = now + r->p.ack_delay_ns;
    r->ack_deadline = d < now ? UINT64_MAX - 1 : d;
  }
  r->pend[r->n_pend++] = i;
  r->flags[i] |= R_ACKPEND; /* not a counted flag */
}

/* Shared by both entry points: |pre| is the digest the daemon computed
 * over a payload whose length it checked (then |data|, |len| are unused);
 * NULL: check |len| and hash |data| here, once the cheap checks passed. */
static int take_chunk(struct sft_xrecv *r, uint64_t now, uint64_t index,
                      const void *data, size_t len, const uint8_t *pre,
                      const uint8_t digest[SFT_HASH_LEN],
                      struct sft_xrecv_chunk *out) {
  uint8_t got[SFT_HASH_LEN];
  int rc;
  now = clock_in(r, now);
  if (index >= r->count)
    return SFT_ERR_RANGE;
  uint32_t want = sft_chunk_len(r->size, r->chunk_size, index);
  if (!pre && len != want)
    return SFT_ERR_MALFORMED;
  if (!data_state(r))
    return SFT_ERR_STATE;
  struct sft_xrecv_chunk res = {SFT_XRECV_DUPLICATE, index,
                                sft_chunk_offset(index, r->chunk_size), want};
  if (r->flags[index] & R_HAVE) {
    r->duplicates++;
    ack_add(r, now, index);
    *out = res;
    return 0;
  }
  if (pre)
    memcpy(got, pre, SFT_HASH_LEN);
  else if ((rc = sft_hash(r->algo, data, len, got)) != 0)
    return rc;
  if (memcmp(got, digest, SFT_HASH_LEN) != 0) {
    r->digest_failures++;
    (void)sft_xfer_fsm_apply(&r->st, SFT_XE_CHUNK_FAILED);
    return SFT_ERR_DIGEST;
  }
  memcpy(r->digests + index * SFT_HASH_LEN, got, SFT_HASH_LEN);
  set_flags(r, index, r->flags[index] | R_HAVE | R_DIGEST);
  ack_add(r, now, index);
  (void)sft_xfer_fsm_apply(&r->st, SFT_XE_CHUNK_COMPLETED);
  res.verdict = SFT_XRECV_WRITE;
  *out = res;
  return 0;
}

int sft_xrecv_on_chunk(struct sft_xrecv *r, uint64_t now, uint64_t index,
                       const void *data, size_t len,
                       const uint8_t digest[SFT_HASH_LEN],
                       struct sft_xrecv_chunk *out) {
  if (!r || (!data && len > 0) || !digest || !out)
    return SFT_ERR_INVAL;
  return take_chunk(r, now, index, data, len, NULL, digest, out);
}

int sft_xrecv_on_chunk_hashed(struct sft_xrecv *r, uint64_t now, uint64_t index,
                              const uint8_t got[SFT_HASH_LEN],
                              const uint8_t digest[SFT_HASH_LEN],
                              struct sft_xrecv_chunk *out) {
  if (!r || !got || !digest || !out)
    return SFT_ERR_INVAL;
  return take_chunk(r, now, index, NULL, 0, got, digest, out);
}

int sft_xrecv_on_written(struct sft_xrecv *r, uint64_t index) {
  if (!r)
    return SFT_ERR_INVAL;
  if (index >= r->count)
    return SFT_ERR_RANGE;
  if (!(r->flags[index] & R_HAVE))
    return SFT_ERR_STATE;
  set_written(r, index);
  return 0;
}

int sft_xrecv_on_hashed(struct sft_xrecv *r, uint64_t index,
                        const uint8_t digest[SFT_HASH_LEN]) {
  if (!r || !digest)
    return SFT_ERR_INVAL;
  if (index >= r->count)
    return SFT_ERR_RANGE;
  uint8_t f = r->flags[index];
  if (!(f & R_HAVE) || sft_xfer_state_terminal(r->st))
    return SFT_ERR_STATE;
  uint8_t *d = r->digests + index * SFT_HASH_LEN;
  if (f & R_DIGEST) {
    if (memcmp(d, digest, SFT_HASH_LEN) != 0)
      return SFT_ERR_DIGEST;
  } else {
    memcpy(d, digest, SFT_HASH_LEN);
    f |= R_DIGEST;
  }
  if (f & R_HASHING) {
    f &= (uint8_t)~R_HASHING;
    r->n_hashing--;
  }
  set_flags(r, index, f);
  return 0;
}

int sft_xrecv_on_complete(struct sft_xrecv *r, uint64_t now,
                          const uint8_t root[SFT_HASH_LEN]) {
  if (!r || !root)
    return SFT_ERR_INVAL;
  clock_in(r, now);
  if (r->st == SFT_XS_COMPLETED)
    return memcmp(root, r->root, SFT_HASH_LEN) == 0 ? 0 : SFT_ERR_DIGEST;
  if (!data_state(r))
    return SFT_ERR_STATE;
  if (r->have_root)
    return memcmp(root, r->root, SFT_HASH_LEN) == 0 ? 0 : SFT_ERR_PEER;
  memcpy(r->root, root, SFT_HASH_LEN);
  r->have_root = true;
  return 0;
}

int sft_xrecv_pause(struct sft_xrecv *r, uint64_t now) {
  if (!r)
    return SFT_ERR_INVAL;
  clock_in(r, now);
  return sft_xfer_fsm_apply(&r->st, SFT_XE_PAUSE);
}

int sft_xrecv_resume(struct sft_xrecv *r, uint64_t now) {
  if (!r)
    return SFT_ERR_INVAL;
  clock_in(r, now);
  return sft_xfer_fsm_apply(&r->st, SFT_XE_RESUME);
}

int sft_xrecv_cancel(struct sft_xrecv *r, uint64_t now) {
  if (!r)
    return SFT_ERR_INVAL;
  clock_in(r, now);
  int rc = sft_xfer_fsm_apply(&r->st, SFT_XE_CANCEL);
  if (rc == 0)
    r->reason = SFT_ERR_CANCELLED;
  return rc;
}

int sft_xrecv_abort(struct sft_xrecv *r, uint64_t now, int reason) {
  if (!r || reason >= 0)
    return SFT_ERR_INVAL;
  clock_in(r, now);
  int rc = sft_xfer_fsm_apply(&r->st, SFT_XE_FAIL);
  if (rc == 0)
    r->reason = reason;
  return rc;
}

int sft_xrecv_on_network_failure(struct sft_xrecv *r, uint64_t now) {
  if (!r)
    return SFT_ERR_INVAL;
  clock_in(r, now);
  int rc = sft_xfer_fsm_apply(&r->st, SFT_XE_NETWORK_FAILURE);
  if (rc == 0)
    r->net_down = true;
  return rc;
}

int sft_xrecv_on_network_recovered(struct sft_xrecv *r, uint64_t now) {
  if (!r)
    return SFT_ERR_INVAL;
  clock_in(r, now);
  int rc = sft_xfer_fsm_apply(&r->st, SFT_XE_NETWORK_RECOVERED);
  if (rc == 0)
    r->net_down = false;
  return rc;
}

/* ---- output ---- */

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static bool ack_due(const struct sft_xrecv *r, uint64_t now) {
  return r->n_pend > 0 && !r->net_down &&
         (r->n_pend >= r->p.ack_batch || r->n_have == r->count ||
          now >= r->ack_deadline);
}

static bool hash_due(const struct sft_xrecv *r) {
  return r->st != SFT_XS_PAUSED && r->n_need_hash > 0 &&
         r->n_hashing < r->p.max_hash_inflight;
}

static bool check_due(const struct sft_xrecv *r) {
  return (r->st == SFT_XS_TRANSFERRING && r->n_have == r->count) ||
         (r->st == SFT_XS_COMPLETING && r->have_root &&
          r->n_digest == r->count);
}

static int report_end(struct sft_xrecv *r, struct sft_xrecv_action *a) {
  a->expiry = UINT64_MAX;
  if (!r->reported) {
    r->reported = true;
    if (r->st == SFT_XS_FAILED) {
      a->type = SFT_XRECV_FAILED;
      a->reason = r->reason;
    } else {
      a->type = SFT_XRECV_FINALIZE;
      memcpy(a->root, r->root, SFT_HASH_LEN);
    }
  }
  return 0;
}

int sft_xrecv_poll(struct sft_xrecv *r, uint64_t now,
                   struct sft_xrecv_action *a) {
  if (!r || !a)
    return SFT_ERR_INVAL;
  now = clock_in(r, now);
  memset(a, 0, sizeof(*a));
  a->type = SFT_XRECV_NONE;
  if (sft_xfer_state_terminal(r->st))
    return report_end(r, a);
  if (r->st == SFT_XS_IDLE || r->st == SFT_XS_PREPARING) {
    a->expiry = UINT64_MAX;
    return 0;
  }

  if (ack_due(r, now)) {
    qsort(r->pend, r->n_pend, sizeof(r->pend[0]), cmp_u64);
    size_t n = 0;
    for (uint32_t k = 0; k < r->n_pend; k++) {
      uint64_t i = r->pend[k];
      r->flags[i] &= (uint8_t)~R_ACKPEND;
      if (n > 0 && r->ranges[n - 1].last + 1 == i) {
        r->ranges[n - 1].last = i;
      } else {
        r->ranges[n].first = r->ranges[n].last = i;
        n++;
      }
    }
    r->n_pend = 0;
    r->ack_deadline = UINT64_MAX;
    r->acks_sent++;
    a->type = SFT_XRECV_SEND_ACK;
    a->ranges = r->ranges;
    a->nranges = n;
    return 0;
  }

  if (hash_due(r)) {
    for (int pass = 0; pass < 2; pass++) {
      for (; r->hash_cursor < r->count; r->hash_cursor++) {
        uint64_t i = r->hash_cursor;
        if (need_hash(r->flags[i])) {
          set_flags(r, i, r->flags[i] | R_HASHING);
          r->n_hashing++;
          a->type = SFT_XRECV_HASH_CHUNK;
          a->index = i;
          a->offset = sft_chunk_offset(i, r->chunk_size);
          a->len = sft_chunk_len(r->size, r->chunk_size, i);
          return 0;
        }
      }
      r->hash_cursor = 0;
    }
  }

  if (r->st == SFT_XS_TRANSFERRING && r->n_have == r->count)
    (void)sft_xfer_fsm_apply(&r->st, SFT_XE_TRANSFER_COMPLETE);
  if (r->st == SFT_XS_COMPLETING && r->have_root && r->n_digest == r->count) {
    uint8_t mine[SFT_HASH_LEN];
    int rc = sft_root(r->algo, r->digests, (size_t)r->count, mine);
    if (rc)
      fail(r, rc);
    else if (memcmp(mine, r->root, SFT_HASH_LEN) != 0)
      fail(r, SFT_ERR_DIGEST);
    else
      (void)sft_xfer_fsm_apply(&r->st, SFT_XE_TRANSFER_COMPLETE);
    return report_end(r, a);
  }
  a->expiry = sft_xrecv_expiry(r);
  return 0;
}

uint64_t sft_xrecv_expiry(const struct sft_xrecv *r) {
  if (!r)
    return UINT64_MAX;
  if (sft_xfer_state_terminal(r->st))
    return r->reported ? UINT64_MAX : 0;
  if (r->st == SFT_XS_IDLE || r->st == SFT_XS_PREPARING)
    return UINT64_MAX;
  if (ack_due(r, r->now) || hash_due(r) || check_due(r))
    return 0;
  return (r->n_pend > 0 && !r->net_down) ? r->ack_deadline : UINT64_MAX;
}

enum sft_xfer_state sft_xrecv_state(const struct sft_xrecv *r) {
  return r->st;
}
int sft_xrecv_reason(const struct sft_xrecv *r) {
  return r->st == SFT_XS_FAILED ? r->reason : 0;
}
bool sft_xrecv_network_down(const struct sft_xrecv *r) {
  return r->net_down;
}

void sft_xrecv_stats(const struct sft_xrecv *r, struct sft_xrecv_stats *st) {
  st->chunks_total = r->count;
  st->chunks_done = r->n_have;
  st->bytes_total = r->size;
  st->bytes_done = r->bytes_have;
  st->chunks_written = r->n_written;
  st->duplicates = r->duplicates;
  st->digest_failures = r->digest_failures;
  st->acks_sent = r->acks_sent;
  st->ack_overflows = r->ack_overflows;
}

const uint8_t *sft_xrecv_bitmap(const struct sft_xrecv *r, size_t *len) {
  if (len)
    *len = (size_t)((r->count + 7) / 8);
  return r->written;
}
