/* The receiver machine of one file transfer. See sft/xfer.h and
 * docs/internals/xfer.md.
 *
 * Per chunk: a flag byte and a digest, plus the persisted bitmap (chunks
 * verified AND written). Chunks to acknowledge collect in a bounded pending
 * list (a flag keeps each index in it once); poll() sorts and merges it
 * into ranges. A duplicate chunk is acknowledged again: the sender only
 * resends what it did not see acked, so a duplicate usually means a lost
 * ACK.
 *
 * FEC (stripe_k, stripe_m > 0): per stripe, chunks held and written, a
 * parity slot (or none) and a place in the NEED list. Parity slots: a fixed
 * table of max_parity_stripes entries (the set of parity indices held for
 * one stripe) with a free list; a stripe whose held parity covers its
 * missing chunks is "ready" (counted, so poll scans the table only when
 * one is). The NEED list holds the stripes with missing chunks below a
 * stripe completed in this session (the gap is not "not sent yet"), in
 * order of their next NEED time; the timeout is 2 * rtt, which may change,
 * so the order is approximate (a NEED is at most one old timeout late). */
#include <stdlib.h>
#include <string.h>

#include "sft/chunk.h"
#include "sft/xfer.h"

#define NIL UINT32_MAX
#define RTT_DEFAULT_NS 100000000ull
#define PARITY_STRIPES_DEFAULT 64u
#define REBUILDS_DEFAULT 2u

enum {
  R_HAVE = 1,
  R_DIGEST = 2,
  R_HASHING = 4,
  R_ACKPEND = 8,
  R_REBUILT = 16, /* held because rebuilt (undone on a root mismatch) */
};

enum { G_LISTED = 1, G_REBUILDING = 2, G_REFETCH = 4 };

struct rstripe {
  uint64_t need_at;    /* next NEED, when G_LISTED */
  uint32_t prev, next; /* NEED list */
  uint32_t pslot;      /* parity slot or NIL */
  uint16_t nhave, nwritten;
  uint8_t flags; /* G_* */
};

struct pslot {
  struct sft_fec_mask held; /* parity indices held */
  uint64_t stripe;
  uint32_t n;         /* bits in held */
  uint32_t next_free; /* free list */
  bool ready;
};

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

  /* FEC */
  bool fec;        /* stripe_k > 0 and stripe_m > 0 */
  bool no_rebuild; /* after a rollback */
  uint64_t nstripes, rtt, gap_scan;
  uint32_t nslots, n_ready, n_rebuilding, free_slot, g_head, g_tail;
  uint64_t n_rebuilt_held;
  uint64_t parity_kept, parity_dropped, parity_digest_failures,
      parity_overflows, rebuilds, chunks_rebuilt, needs_sent, rollbacks;
  struct rstripe *stripes; /* [nstripes] */
  struct pslot *pslots;    /* [max_parity_stripes] */

  uint32_t pcap;                 /* ack_batch (+ stripe_m with FEC: the
                                    chunks of one rebuild always fit) */
  uint64_t *pend;                /* [pcap] */
  struct sft_xfer_range *ranges; /* [pcap] */
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

static void slot_update(struct sft_xrecv *r, uint64_t s);

static void set_written(struct sft_xrecv *r, uint64_t i) {
  uint8_t m = (uint8_t)(1u << (i & 7));
  if (!(r->written[i >> 3] & m)) {
    r->written[i >> 3] |= m;
    r->n_written++;
    if (r->fec) {
      uint64_t s = i / r->p.stripe_k;
      r->stripes[s].nwritten++;
      slot_update(r, s);
    }
  }
}

/* ---- FEC: stripes, parity slots, the NEED list ---- */

static uint32_t stripe_len(const struct sft_xrecv *r, uint64_t s) {
  return sft_stripe_len(r->count, r->p.stripe_k, s);
}

static uint64_t need_timeout(const struct sft_xrecv *r, uint64_t now) {
  uint64_t d = now + 2 * r->rtt;
  return d < now ? UINT64_MAX - 1 : d;
}

static void g_unlink(struct sft_xrecv *r, uint64_t s) {
  struct rstripe *e = &r->stripes[s];
  if (!(e->flags & G_LISTED))
    return;
  if (e->prev != NIL)
    r->stripes[e->prev].next = e->next;
  else
    r->g_head = e->next;
  if (e->next != NIL)
    r->stripes[e->next].prev = e->prev;
  else
    r->g_tail = e->prev;
  e->prev = e->next = NIL;
  e->flags &= (uint8_t)~G_LISTED;
}

static void g_append(struct sft_xrecv *r, uint64_t s, uint64_t at) {
  struct rstripe *e = &r->stripes[s];
  g_unlink(r, s);
  e->need_at = at;
  e->prev = r->g_tail;
  e->next = NIL;
  if (r->g_tail != NIL)
    r->stripes[r->g_tail].next = (uint32_t)s;
  else
    r->g_head = (uint32_t)s;
  r->g_tail = (uint32_t)s;
  e->flags |= G_LISTED;
}

/* Recomputes the ready bit of stripe |s|'s parity slot: enough parity for
 * the missing chunks, every held chunk written (REBUILD reads them back). */
static void slot_update(struct sft_xrecv *r, uint64_t s) {
  struct rstripe *e = &r->stripes[s];
  if (e->pslot == NIL)
    return;
  struct pslot *ps = &r->pslots[e->pslot];
  uint32_t missing = stripe_len(r, s) - e->nhave;
  bool ready = !r->no_rebuild && !(e->flags & G_REBUILDING) && missing > 0 &&
               ps->n >= missing && e->nwritten == e->nhave;
  r->n_ready += ready;
  r->n_ready -= ps->ready;
  ps->ready = ready;
}

static void slot_free(struct sft_xrecv *r, uint64_t s) {
  struct rstripe *e = &r->stripes[s];
  struct pslot *ps = &r->pslots[e->pslot];
  r->n_ready -= ps->ready;
  ps->ready = false;
  ps->n = 0;
  memset(&ps->held, 0, sizeof(ps->held));
  ps->next_free = r->free_slot;
  r->free_slot = e->pslot;
  e->pslot = NIL;
}

/* Data of stripe |s| arrived, so every stripe below it was sent whole
 * (the sender reads in index order): those still incomplete are gaps. */
static void gaps_below(struct sft_xrecv *r, uint64_t now, uint64_t s) {
  for (; r->gap_scan < s; r->gap_scan++) {
    struct rstripe *g = &r->stripes[r->gap_scan];
    if (g->nhave < stripe_len(r, r->gap_scan) && !(g->flags & G_LISTED))
      g_append(r, r->gap_scan, need_timeout(r, now));
  }
}

/* Chunk |i| became held. Returns true if its stripe completed while it had
 * parity kept (the daemon frees those payloads). */
static bool stripe_gained(struct sft_xrecv *r, uint64_t now, uint64_t i) {
  uint64_t s = i / r->p.stripe_k;
  struct rstripe *e = &r->stripes[s];
  gaps_below(r, now, s);
  e->nhave++;
  if (e->nhave < stripe_len(r, s)) {
    slot_update(r, s);
    return false;
  }
  bool release = false;
  g_unlink(r, s);
  e->flags &= (uint8_t)~G_REFETCH;
  if (e->flags & G_REBUILDING) {
    e->flags &= (uint8_t)~G_REBUILDING;
    r->n_rebuilding--;
  }
  if (e->pslot != NIL) {
    slot_free(r, s);
    release = true;
  }
  return release;
}

static void fail(struct sft_xrecv *r, int reason) {
  if (sft_xfer_fsm_apply(&r->st, SFT_XE_FAIL) == 0)
    r->reason = reason;
}

void sft_xrecv_params_default(struct sft_xrecv_params *p) {
  p->ack_batch = 32;
  p->ack_delay_ns = 20000000ull;
  p->max_hash_inflight = 4;
  p->stripe_k = 0;
  p->stripe_m = 0;
  p->max_parity_stripes = 0;
  p->max_rebuilds = 0;
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
      p->max_hash_inflight > SFT_XSEND_MAX_INFLIGHT ||
      (p->stripe_k == 0 && p->stripe_m != 0) || p->stripe_k > SFT_MAX_STRIPE ||
      p->stripe_m > SFT_MAX_STRIPE - p->stripe_k ||
      p->max_parity_stripes > SFT_XSEND_MAX_INFLIGHT ||
      p->max_rebuilds > SFT_XSEND_MAX_INFLIGHT)
    return SFT_ERR_INVAL;
  int rc = sft_xfer_geometry_check(size, chunk_size, algo);
  if (rc)
    return rc;
  uint64_t count = sft_chunk_count(size, chunk_size);
  rc = sft_xfer_bitmap_check(have, have_len, count);
  if (rc)
    return rc;
  size_t off_pend = align8(sizeof(struct sft_xrecv));
  bool fec = p->stripe_k > 0 && p->stripe_m > 0;
  uint32_t pcap = p->ack_batch + (fec ? p->stripe_m : 0);
  if (pcap > SFT_MAX_ACK_RANGES)
    pcap = SFT_MAX_ACK_RANGES;
  size_t off_ranges = off_pend + align8(pcap * sizeof(uint64_t));
  size_t off_dig = off_ranges + align8(pcap * sizeof(struct sft_xfer_range));
  size_t off_flags = off_dig + align8((size_t)count * SFT_HASH_LEN);
  size_t off_bm = off_flags + align8((size_t)count);
  uint64_t nstripes = fec ? sft_stripe_count(count, p->stripe_k) : 0;
  uint32_t nslots = !fec                    ? 0
                    : p->max_parity_stripes ? p->max_parity_stripes
                                            : PARITY_STRIPES_DEFAULT;
  size_t off_stripes = off_bm + align8((size_t)(count + 7) / 8);
  size_t off_slots =
      off_stripes + align8((size_t)nstripes * sizeof(struct rstripe));
  size_t total = off_slots + align8((size_t)nslots * sizeof(struct pslot));
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
  r->fec = fec;
  r->pcap = pcap;
  r->nslots = nslots;
  r->nstripes = nstripes;
  r->rtt = RTT_DEFAULT_NS;
  r->stripes = (struct rstripe *)(void *)(mem + off_stripes);
  r->pslots = (struct pslot *)(void *)(mem + off_slots);
  if (fec && p->max_rebuilds == 0)
    r->p.max_rebuilds = REBUILDS_DEFAULT;
  r->g_head = r->g_tail = NIL;
  r->free_slot = NIL;
  for (uint32_t k = nslots; k-- > 0;) {
    r->pslots[k].next_free = r->free_slot;
    r->free_slot = k;
  }
  for (uint64_t s = 0; s < nstripes; s++) {
    r->stripes[s].prev = r->stripes[s].next = r->stripes[s].pslot = NIL;
  }
  for (size_t b = 0; b < have_len; b++) {
    if (!have[b])
      continue;
    for (uint64_t i = (uint64_t)b * 8; i < (uint64_t)b * 8 + 8; i++) {
      if ((have[b] >> (i & 7)) & 1) {
        set_flags(r, i, R_HAVE); /* digest unknown: re-hashed later */
        if (fec)
          r->stripes[i / p->stripe_k].nhave++;
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
  if (r->n_pend >= r->pcap) {
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
  struct sft_xrecv_chunk res = {SFT_XRECV_DUPLICATE,
                                index,
                                sft_chunk_offset(index, r->chunk_size),
                                want,
                                false,
                                0};
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
  if (r->fec && stripe_gained(r, now, index)) {
    res.release_parity = true;
    res.stripe = index / r->p.stripe_k;
  }
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

/* ---- FEC inputs ---- */

/* Shared by both parity entry points (|pre| as in take_chunk). */
static int take_parity(struct sft_xrecv *r, uint64_t now, uint64_t stripe,
                       uint32_t pidx, const void *data, size_t len,
                       const uint8_t *pre, const uint8_t digest[SFT_HASH_LEN],
                       struct sft_xrecv_parity *out) {
  uint8_t got[SFT_HASH_LEN];
  int rc;
  now = clock_in(r, now);
  if (!r->fec)
    return SFT_ERR_PEER;
  if (stripe >= r->nstripes || pidx >= r->p.stripe_m)
    return SFT_ERR_RANGE;
  if (len != r->chunk_size)
    return SFT_ERR_MALFORMED;
  if (!data_state(r))
    return SFT_ERR_STATE;
  struct sft_xrecv_parity res = {SFT_XRECV_DROP, stripe, pidx};
  struct rstripe *e = &r->stripes[stripe];
  uint32_t missing = stripe_len(r, stripe) - e->nhave;
  /* parity is sent after the stripe's data: a gap in it is not "not sent
   * yet" (whatever the digest says: the timer only asks, never trusts) */
  gaps_below(r, now, stripe);
  if (missing > 0 && !(e->flags & G_LISTED))
    g_append(r, stripe, need_timeout(r, now));
  struct pslot *ps = e->pslot != NIL ? &r->pslots[e->pslot] : NULL;
  bool needed =
      !r->no_rebuild && missing > 0 && !(e->flags & G_REBUILDING) &&
      !(ps && (ps->n >= missing || sft_fec_mask_test(&ps->held, pidx)));
  if (needed && !ps && r->free_slot == NIL) {
    r->parity_overflows++;
    needed = false;
  }
  if (!needed) {
    r->parity_dropped++;
    *out = res;
    return 0;
  }
  if (pre)
    memcpy(got, pre, SFT_HASH_LEN);
  else if ((rc = sft_hash(r->algo, data, len, got)) != 0)
    return rc;
  if (memcmp(got, digest, SFT_HASH_LEN) != 0) {
    r->parity_digest_failures++;
    return SFT_ERR_DIGEST;
  }
  if (!ps) {
    e->pslot = r->free_slot;
    ps = &r->pslots[e->pslot];
    r->free_slot = ps->next_free;
    ps->stripe = stripe;
    ps->n = 0;
    ps->ready = false;
    memset(&ps->held, 0, sizeof(ps->held));
  }
  sft_fec_mask_set(&ps->held, pidx);
  ps->n++;
  slot_update(r, stripe);
  r->parity_kept++;
  res.verdict = SFT_XRECV_KEEP;
  *out = res;
  return 0;
}

int sft_xrecv_on_parity(struct sft_xrecv *r, uint64_t now, uint64_t stripe,
                        uint32_t pidx, const void *data, size_t len,
                        const uint8_t digest[SFT_HASH_LEN],
                        struct sft_xrecv_parity *out) {
  if (!r || (!data && len > 0) || !digest || !out)
    return SFT_ERR_INVAL;
  return take_parity(r, now, stripe, pidx, data, len, NULL, digest, out);
}

int sft_xrecv_on_parity_hashed(struct sft_xrecv *r, uint64_t now,
                               uint64_t stripe, uint32_t pidx, size_t len,
                               const uint8_t got[SFT_HASH_LEN],
                               const uint8_t digest[SFT_HASH_LEN],
                               struct sft_xrecv_parity *out) {
  if (!r || !got || !digest || !out)
    return SFT_ERR_INVAL;
  return take_parity(r, now, stripe, pidx, NULL, len, got, digest, out);
}

int sft_xrecv_on_rebuilt(struct sft_xrecv *r, uint64_t now, uint64_t index,
                         const uint8_t digest[SFT_HASH_LEN],
                         struct sft_xrecv_chunk *out) {
  if (!r || !digest || !out)
    return SFT_ERR_INVAL;
  now = clock_in(r, now);
  if (index >= r->count)
    return SFT_ERR_RANGE;
  if (!r->fec || !data_state(r))
    return SFT_ERR_STATE;
  struct sft_xrecv_chunk res = {SFT_XRECV_DUPLICATE,
                                index,
                                sft_chunk_offset(index, r->chunk_size),
                                sft_chunk_len(r->size, r->chunk_size, index),
                                false,
                                0};
  if (r->flags[index] & R_HAVE) {
    *out = res; /* the chunk itself arrived meanwhile */
    return 0;
  }
  if (!(r->stripes[index / r->p.stripe_k].flags & G_REBUILDING))
    return SFT_ERR_STATE;
  memcpy(r->digests + index * SFT_HASH_LEN, digest, SFT_HASH_LEN);
  set_flags(r, index, r->flags[index] | R_HAVE | R_DIGEST | R_REBUILT);
  r->n_rebuilt_held++;
  r->chunks_rebuilt++;
  ack_add(r, now, index);
  (void)sft_xfer_fsm_apply(&r->st, SFT_XE_CHUNK_COMPLETED);
  (void)stripe_gained(r, now, index); /* no slot while rebuilding */
  res.verdict = SFT_XRECV_WRITE;
  *out = res;
  return 0;
}

int sft_xrecv_rebuild_failed(struct sft_xrecv *r, uint64_t now,
                             uint64_t stripe) {
  if (!r)
    return SFT_ERR_INVAL;
  now = clock_in(r, now);
  if (!r->fec || stripe >= r->nstripes)
    return SFT_ERR_RANGE;
  struct rstripe *e = &r->stripes[stripe];
  if (e->flags & G_REBUILDING) {
    e->flags &= (uint8_t)~G_REBUILDING;
    r->n_rebuilding--;
    if (!(e->flags & G_LISTED))
      g_append(r, stripe, now); /* ask for what is missing */
  }
  return 0;
}

void sft_xrecv_set_rtt(struct sft_xrecv *r, uint64_t rtt_ns) {
  if (r && rtt_ns > 0)
    r->rtt = rtt_ns < UINT64_MAX / 4 ? rtt_ns : UINT64_MAX / 4;
}

/* Root mismatch with rebuilt chunks held: drop them all, disable rebuilds
 * (we cannot tell which decode was wrong) and refetch their stripes. */
static void rollback(struct sft_xrecv *r, uint64_t now) {
  r->no_rebuild = true;
  r->n_ready = 0;
  for (uint32_t k = 0; k < r->nslots; k++)
    r->pslots[k].ready = false;
  for (uint64_t i = 0; i < r->count && r->n_rebuilt_held > 0; i++) {
    uint8_t f = r->flags[i];
    if (!(f & R_REBUILT))
      continue;
    r->n_rebuilt_held--;
    set_flags(r, i, f & (uint8_t) ~(R_HAVE | R_DIGEST | R_REBUILT));
    uint8_t m = (uint8_t)(1u << (i & 7));
    struct rstripe *e = &r->stripes[i / r->p.stripe_k];
    if (r->written[i >> 3] & m) {
      r->written[i >> 3] &= (uint8_t)~m;
      r->n_written--;
      e->nwritten--;
    }
    e->nhave--;
    e->flags |= G_REFETCH;
    if (!(e->flags & G_LISTED))
      g_append(r, i / r->p.stripe_k, now);
  }
  /* an ACK still pending must not claim the dropped chunks */
  uint32_t n = 0;
  for (uint32_t k = 0; k < r->n_pend; k++) {
    uint64_t i = r->pend[k];
    if (r->flags[i] & R_HAVE)
      r->pend[n++] = i;
    else
      r->flags[i] &= (uint8_t)~R_ACKPEND;
  }
  r->n_pend = n;
  if (n == 0)
    r->ack_deadline = UINT64_MAX;
  r->rollbacks++;
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

static bool rebuild_due(const struct sft_xrecv *r) {
  return r->n_ready > 0 && r->st != SFT_XS_PAUSED &&
         r->n_rebuilding < r->p.max_rebuilds;
}

static bool need_due(const struct sft_xrecv *r, uint64_t now) {
  return r->st == SFT_XS_TRANSFERRING && !r->net_down && r->g_head != NIL &&
         r->stripes[r->g_head].need_at <= now;
}

/* REBUILD of ready stripe |s|: the daemon takes its parity payloads. */
static void rebuild_action(struct sft_xrecv *r, uint64_t s,
                           struct sft_xrecv_action *a) {
  struct rstripe *e = &r->stripes[s];
  struct pslot *ps = &r->pslots[e->pslot];
  uint32_t k = r->p.stripe_k, len = stripe_len(r, s);
  uint32_t missing = len - e->nhave;
  uint64_t first = s * k;
  struct sft_fec_mask pm = {{0, 0, 0, 0}};
  for (uint32_t i = 0; i < k; i++)
    if (i >= len || (r->flags[first + i] & R_HAVE))
      sft_fec_mask_set(&pm, i);
  for (uint32_t p = 0, used = 0; p < r->p.stripe_m && used < missing; p++) {
    if (sft_fec_mask_test(&ps->held, p)) {
      sft_fec_mask_set(&pm, k + p);
      used++;
    }
  }
  slot_free(r, s);
  e->flags |= G_REBUILDING;
  r->n_rebuilding++;
  r->rebuilds++;
  a->type = SFT_XRECV_REBUILD;
  a->stripe = s;
  a->index = first;
  a->offset = sft_chunk_offset(first, r->chunk_size);
  a->len = r->chunk_size;
  a->nchunks = len;
  a->nmissing = missing;
  a->present = pm;
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

  if (rebuild_due(r)) {
    for (uint32_t k = 0; k < r->nslots; k++) {
      if (r->pslots[k].ready) {
        rebuild_action(r, r->pslots[k].stripe, a);
        return 0;
      }
    }
  }

  if (need_due(r, now)) {
    /* each pass moves the head to the tail with a later time: bounded */
    while (r->g_head != NIL && r->stripes[r->g_head].need_at <= now) {
      uint64_t s = r->g_head;
      struct rstripe *e = &r->stripes[s];
      uint32_t len = stripe_len(r, s);
      uint32_t missing = len - e->nhave;
      uint32_t held = e->pslot != NIL ? r->pslots[e->pslot].n : 0;
      uint32_t count = 0;
      if (e->flags & G_REFETCH) {
        count = len + 1; /* "chunks I had acked": the whole stripe, once */
        e->flags &= (uint8_t)~G_REFETCH;
      } else if (!(e->flags & G_REBUILDING) && held < missing)
        count = missing - held;
      g_append(r, s, need_timeout(r, now));
      if (count > 0) {
        r->needs_sent++;
        a->type = SFT_XRECV_SEND_NEED;
        a->stripe = s;
        a->count = count;
        return 0;
      }
    }
  }

  if (r->st == SFT_XS_TRANSFERRING && r->n_have == r->count)
    (void)sft_xfer_fsm_apply(&r->st, SFT_XE_TRANSFER_COMPLETE);
  if (r->st == SFT_XS_COMPLETING && r->have_root && r->n_digest == r->count) {
    uint8_t mine[SFT_HASH_LEN];
    int rc = sft_root(r->algo, r->digests, (size_t)r->count, mine);
    if (rc) {
      fail(r, rc);
    } else if (memcmp(mine, r->root, SFT_HASH_LEN) != 0 &&
               r->n_rebuilt_held > 0) {
      rollback(r, now);
      (void)sft_xfer_fsm_apply(&r->st, SFT_XE_CHUNK_FAILED);
      a->expiry = 0;
      return 0;
    } else if (memcmp(mine, r->root, SFT_HASH_LEN) != 0) {
      fail(r, SFT_ERR_DIGEST);
    } else
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
  if (ack_due(r, r->now) || hash_due(r) || check_due(r) || rebuild_due(r))
    return 0;
  uint64_t e = (r->n_pend > 0 && !r->net_down) ? r->ack_deadline : UINT64_MAX;
  if (r->st == SFT_XS_TRANSFERRING && !r->net_down && r->g_head != NIL &&
      r->stripes[r->g_head].need_at < e)
    e = r->stripes[r->g_head].need_at;
  return e;
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
  st->parity_kept = r->parity_kept;
  st->parity_dropped = r->parity_dropped;
  st->parity_digest_failures = r->parity_digest_failures;
  st->parity_overflows = r->parity_overflows;
  st->rebuilds = r->rebuilds;
  st->chunks_rebuilt = r->chunks_rebuilt;
  st->needs_sent = r->needs_sent;
  st->rollbacks = r->rollbacks;
}

const uint8_t *sft_xrecv_bitmap(const struct sft_xrecv *r, size_t *len) {
  if (len)
    *len = (size_t)((r->count + 7) / 8);
  return r->written;
}
