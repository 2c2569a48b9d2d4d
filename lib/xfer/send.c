/* The sender machine of one file transfer. See sft/xfer.h and
 * docs/internals/xfer.md.
 *
 * Per chunk: a flag byte, a retry counter, a slot number and a digest.
 * Outstanding reads live in a fixed table of max_inflight slots; the slots
 * of chunks sent and awaiting an ACK are also linked in issue order, which
 * is deadline order because the resend timeout is a constant and time never
 * goes back: the list head is the next timeout, and every operation on the
 * list is O(1). Two counters (chunks needing a send, chunks needing a
 * hash-only read) let poll() stop without scanning, and a cursor finds the
 * next chunk in index order.
 *
 * FEC (stripe_k > 0): per stripe, counts of data chunks with a digest and
 * acked, parity shards issued and wanted; a FIFO ring of stripes with
 * parity wanted (each stripe at most once in it) and a ring of chunks to
 * report as CANCEL_CHUNK (at most one per freed inflight slot, emitted
 * before any new read, so it never holds more than max_inflight). */
#include <stdlib.h>
#include <string.h>

#include "sft/chunk.h"
#include "sft/xfer.h"

#define NIL UINT32_MAX

enum { F_ACKED = 1, F_DIGEST = 2, F_INFLIGHT = 4, F_HASHING = 8 };
enum { K_FREE = 0, K_SEND, K_HASH };

struct slot {
  uint64_t index;
  uint64_t deadline;   /* K_SEND only */
  uint32_t prev, next; /* timeout list (K_SEND), free list (K_FREE) */
  uint8_t kind;
};

enum { SS_PRO = 1, SS_QUEUED = 2 };

struct sstripe {
  uint16_t ndig, nack; /* data chunks with a digest / acked */
  uint8_t sent;        /* parity shards issued (next parity index) */
  uint8_t want;        /* parity shards queued, not yet issued */
  uint8_t flags;       /* SS_* */
};

struct sft_xsend {
  enum sft_xfer_state st;
  int reason;
  bool reported; /* DONE / FAILED already returned by poll */
  bool net_down;
  bool root_known; /* root computed once (digests never change after) */
  bool early_due;  /* Transferring: send COMPLETE before every chunk is acked */
  bool early_sent; /* ...sent, and the network has not failed since */
  bool accept_due; /* started before the receiver's ACCEPT: it merges */
  enum sft_hash_algo algo;
  uint64_t size;
  uint32_t chunk_size;
  uint64_t count;
  struct sft_xsend_params p;
  uint64_t now; /* latest time seen */

  uint64_t n_acked, n_digest, n_need_send, n_need_hash, bytes_acked;
  uint64_t cursor;
  uint32_t n_used, free_head, head, tail;
  uint64_t complete_deadline;
  uint8_t root[SFT_HASH_LEN];
  uint64_t sends, resends, hash_reads;

  /* FEC */
  uint64_t nstripes;
  uint32_t m_pro;
  uint32_t pq_head, pq_n; /* ring of stripes with parity wanted */
  uint32_t cq_head, cq_n; /* ring of CANCEL_CHUNK indices */
  uint64_t parity_shards, need_parity, need_resends, refetches, cancels;
  struct sstripe *stripes; /* [nstripes] */
  uint32_t *pq;            /* [nstripes] */
  uint64_t *cq;            /* [max_inflight] */

  struct slot *slots; /* [max_inflight] */
  uint8_t *digests;   /* [count * SFT_HASH_LEN] */
  uint32_t *slot_of;  /* [count], valid with F_INFLIGHT | F_HASHING */
  uint8_t *flags;     /* [count] */
  uint8_t *tries;     /* [count] */
};

static uint64_t clock_in(struct sft_xsend *s, uint64_t now) {
  if (now > s->now)
    s->now = now;
  return s->now;
}

/* A chunk with a hash-only read outstanding waits for it (one slot per
 * chunk at a time). */
static bool need_send(uint8_t f) {
  return !(f & (F_ACKED | F_INFLIGHT | F_HASHING));
}
static bool need_hash(uint8_t f) {
  return (f & F_ACKED) && !(f & (F_DIGEST | F_HASHING));
}

static void pq_push(struct sft_xsend *s, uint64_t st) {
  struct sstripe *e = &s->stripes[st];
  if (e->flags & SS_QUEUED)
    return;
  e->flags |= SS_QUEUED;
  /* each stripe is in the ring at most once: never full */
  s->pq[(s->pq_head + s->pq_n) % s->nstripes] = (uint32_t)st;
  s->pq_n++;
}

/* Stripe bookkeeping for a flag change of chunk |i| (FEC only). */
static void stripe_flags(struct sft_xsend *s, uint64_t i, uint8_t of,
                         uint8_t nf) {
  uint32_t k = s->p.stripe_k;
  struct sstripe *e = &s->stripes[i / k];
  e->nack = (uint16_t)(e->nack + ((nf & F_ACKED) != 0) - ((of & F_ACKED) != 0));
  if ((nf & F_DIGEST) && !(of & F_DIGEST)) {
    e->ndig++;
    uint32_t len = sft_stripe_len(s->count, k, i / k);
    /* the stripe's data is all read: proactive parity, once */
    if (e->ndig == len && s->m_pro > 0 && !(e->flags & SS_PRO) &&
        e->nack < len) {
      e->flags |= SS_PRO;
      uint32_t left = s->p.stripe_m - e->sent - e->want;
      uint32_t n =
          s->m_pro > e->sent + e->want ? s->m_pro - e->sent - e->want : 0;
      n = n < left ? n : left;
      if (n > 0) {
        e->want = (uint8_t)(e->want + n);
        pq_push(s, i / k);
      }
    }
  } else if (!(nf & F_DIGEST) && (of & F_DIGEST)) {
    e->ndig--;
  }
}

/* Every flag change goes through here so the counters stay exact. */
static void set_flags(struct sft_xsend *s, uint64_t i, uint8_t nf) {
  uint8_t of = s->flags[i];
  if (s->p.stripe_k)
    stripe_flags(s, i, of, nf);
  uint64_t len = sft_chunk_len(s->size, s->chunk_size, i);
  s->n_need_send += need_send(nf);
  s->n_need_send -= need_send(of);
  s->n_need_hash += need_hash(nf);
  s->n_need_hash -= need_hash(of);
  s->n_acked += (nf & F_ACKED) != 0;
  s->n_acked -= (of & F_ACKED) != 0;
  s->bytes_acked += (nf & F_ACKED) ? len : 0;
  s->bytes_acked -= (of & F_ACKED) ? len : 0;
  s->n_digest += (nf & F_DIGEST) != 0;
  s->n_digest -= (of & F_DIGEST) != 0;
  s->flags[i] = nf;
}

/* ---- slots and the timeout list ---- */

static void list_unlink(struct sft_xsend *s, uint32_t id) {
  struct slot *e = &s->slots[id];
  if (e->prev != NIL)
    s->slots[e->prev].next = e->next;
  else
    s->head = e->next;
  if (e->next != NIL)
    s->slots[e->next].prev = e->prev;
  else
    s->tail = e->prev;
  e->prev = e->next = NIL;
}

static void list_append(struct sft_xsend *s, uint32_t id) {
  struct slot *e = &s->slots[id];
  e->prev = s->tail;
  e->next = NIL;
  if (s->tail != NIL)
    s->slots[s->tail].next = id;
  else
    s->head = id;
  s->tail = id;
}

static void list_push_front(struct sft_xsend *s, uint32_t id) {
  struct slot *e = &s->slots[id];
  e->prev = NIL;
  e->next = s->head;
  if (s->head != NIL)
    s->slots[s->head].prev = id;
  else
    s->tail = id;
  s->head = id;
}

static uint32_t slot_get(struct sft_xsend *s, uint64_t index, uint8_t kind) {
  uint32_t id = s->free_head;
  if (id == NIL)
    return NIL;
  struct slot *e = &s->slots[id];
  s->free_head = e->next;
  e->index = index;
  e->kind = kind;
  e->deadline = UINT64_MAX;
  e->prev = e->next = NIL;
  s->n_used++;
  s->slot_of[index] = id;
  return id;
}

static void slot_put(struct sft_xsend *s, uint32_t id) {
  struct slot *e = &s->slots[id];
  if (e->kind == K_SEND)
    list_unlink(s, id);
  e->kind = K_FREE;
  e->next = s->free_head;
  s->free_head = id;
  s->n_used--;
}

/* Chunk |i| is no longer awaited (acked, or its connection is gone). */
static void drop_inflight(struct sft_xsend *s, uint64_t i) {
  if (s->flags[i] & F_INFLIGHT) {
    slot_put(s, s->slot_of[i]);
    set_flags(s, i, s->flags[i] & (uint8_t)~F_INFLIGHT);
  }
}

/* All chunks in flight get deadline |d| (same value: the list stays
 * sorted). */
static void refresh_deadlines(struct sft_xsend *s, uint64_t d) {
  for (uint32_t id = s->head; id != NIL; id = s->slots[id].next)
    s->slots[id].deadline = d;
}

static uint64_t deadline_after(const struct sft_xsend *s, uint64_t now) {
  uint64_t d = now + s->p.resend_timeout_ns;
  return d < now ? UINT64_MAX - 1 : d; /* saturate */
}

static void fail(struct sft_xsend *s, int reason) {
  if (sft_xfer_fsm_apply(&s->st, SFT_XE_FAIL) == 0)
    s->reason = reason;
}

/* ---- life cycle ---- */

void sft_xsend_params_default(struct sft_xsend_params *p) {
  p->max_inflight = 64;
  p->resend_timeout_ns = 2000000000ull;
  p->max_retries = 8;
  p->stripe_k = 0;
  p->stripe_m = 0;
}

static size_t align8(size_t n) {
  return (n + 7) & ~(size_t)7;
}

int sft_xsend_new(struct sft_xsend **out, uint64_t size, uint32_t chunk_size,
                  enum sft_hash_algo algo, const struct sft_xsend_params *p) {
  struct sft_xsend_params def;
  if (!out)
    return SFT_ERR_INVAL;
  *out = NULL;
  if (!p) {
    sft_xsend_params_default(&def);
    p = &def;
  }
  if (p->max_inflight == 0 || p->max_inflight > SFT_XSEND_MAX_INFLIGHT ||
      p->resend_timeout_ns == 0 || p->max_retries > SFT_XFER_MAX_RETRIES ||
      (p->stripe_k == 0 && p->stripe_m != 0) || p->stripe_k > SFT_MAX_STRIPE ||
      p->stripe_m > SFT_MAX_STRIPE - p->stripe_k)
    return SFT_ERR_INVAL;
  int rc = sft_xfer_geometry_check(size, chunk_size, algo);
  if (rc)
    return rc;
  /* count <= SFT_MAX_CHUNKS (2^26): no overflow below */
  uint64_t count = sft_chunk_count(size, chunk_size);
  size_t off_slots = align8(sizeof(struct sft_xsend));
  size_t off_dig = off_slots + align8(p->max_inflight * sizeof(struct slot));
  size_t off_slotof = off_dig + align8((size_t)count * SFT_HASH_LEN);
  size_t off_flags = off_slotof + align8((size_t)count * sizeof(uint32_t));
  size_t off_tries = off_flags + align8((size_t)count);
  uint64_t nstripes = p->stripe_k ? sft_stripe_count(count, p->stripe_k) : 0;
  size_t off_stripes = off_tries + align8((size_t)count);
  size_t off_pq =
      off_stripes + align8((size_t)nstripes * sizeof(struct sstripe));
  size_t off_cq = off_pq + align8((size_t)nstripes * sizeof(uint32_t));
  /* (the CANCEL_CHUNK ring: FEC, and a merged early ACCEPT) */
  size_t total = off_cq + align8(p->max_inflight * sizeof(uint64_t));
  uint8_t *mem = calloc(1, total);
  if (!mem)
    return SFT_ERR_NOMEM;
  struct sft_xsend *s = (struct sft_xsend *)(void *)mem;
  s->st = SFT_XS_IDLE;
  s->algo = algo;
  s->size = size;
  s->chunk_size = chunk_size;
  s->count = count;
  s->p = *p;
  s->slots = (struct slot *)(void *)(mem + off_slots);
  s->digests = mem + off_dig;
  s->slot_of = (uint32_t *)(void *)(mem + off_slotof);
  s->flags = mem + off_flags;
  s->tries = mem + off_tries;
  s->nstripes = nstripes;
  s->stripes = (struct sstripe *)(void *)(mem + off_stripes);
  s->pq = (uint32_t *)(void *)(mem + off_pq);
  s->cq = (uint64_t *)(void *)(mem + off_cq);
  s->n_need_send = count; /* every chunk: not acked, not in flight */
  s->head = s->tail = NIL;
  s->free_head = NIL;
  for (uint32_t i = p->max_inflight; i-- > 0;) {
    s->slots[i].kind = K_FREE;
    s->slots[i].prev = NIL;
    s->slots[i].next = s->free_head;
    s->free_head = i;
  }
  s->complete_deadline = UINT64_MAX;
  *out = s;
  return 0;
}

void sft_xsend_del(struct sft_xsend *s) {
  free(s);
}

int sft_xsend_start(struct sft_xsend *s, uint64_t now) {
  if (!s)
    return SFT_ERR_INVAL;
  clock_in(s, now);
  if (s->st != SFT_XS_IDLE)
    return SFT_ERR_STATE;
  return sft_xfer_fsm_apply(&s->st, SFT_XE_START);
}

static bool bit(const uint8_t *bm, size_t len, uint64_t i) {
  return (i >> 3) < len && ((bm[i >> 3] >> (i & 7)) & 1);
}

/* Chunk |i| (not acked yet) is held by the receiver. |cancel|: report it
 * if in flight whatever its stripe (else only in a stripe with parity). */
static void ack_chunk(struct sft_xsend *s, uint64_t i, bool cancel) {
  if ((s->flags[i] & F_INFLIGHT) && s->cq_n < s->p.max_inflight &&
      (cancel || (s->p.stripe_k && s->stripes[i / s->p.stripe_k].sent > 0))) {
    /* maybe rebuilt from parity while its stream is still open */
    s->cq[(s->cq_head + s->cq_n) % s->p.max_inflight] = i;
    s->cq_n++;
  }
  drop_inflight(s, i);
  set_flags(s, i, s->flags[i] | F_ACKED);
}

int sft_xsend_start_early(struct sft_xsend *s, uint64_t now) {
  if (!s)
    return SFT_ERR_INVAL;
  clock_in(s, now);
  if (s->st != SFT_XS_PREPARING)
    return SFT_ERR_STATE;
  s->cursor = 0;
  int rc = sft_xfer_fsm_apply(&s->st, SFT_XE_START);
  if (rc == 0)
    s->accept_due = true;
  return rc;
}

int sft_xsend_on_accept(struct sft_xsend *s, uint64_t now, const uint8_t *have,
                        size_t have_len) {
  if (!s)
    return SFT_ERR_INVAL;
  now = clock_in(s, now);
  int rc = sft_xfer_bitmap_check(have, have_len, s->count);
  if (rc)
    return rc;
  switch (s->st) {
  case SFT_XS_PREPARING:
    for (size_t b = 0; b < have_len; b++) {
      if (!have[b])
        continue;
      for (uint64_t i = (uint64_t)b * 8; i < (uint64_t)b * 8 + 8; i++)
        if (bit(have, have_len, i))
          set_flags(s, i, s->flags[i] | F_ACKED);
    }
    s->cursor = 0;
    return sft_xfer_fsm_apply(&s->st, SFT_XE_START);
  case SFT_XS_TRANSFERRING:
  case SFT_XS_PAUSED:
  case SFT_XS_COMPLETING:
    if (s->accept_due) {
      /* The answer to an offer whose chunks went early: what it holds is
       * acked (reported if in flight), nothing else changes. */
      s->accept_due = false;
      for (uint64_t i = 0; i < s->count; i++)
        if (bit(have, have_len, i) && !(s->flags[i] & F_ACKED)) {
          ack_chunk(s, i, true);
          (void)sft_xfer_fsm_apply(&s->st, SFT_XE_CHUNK_COMPLETED);
        }
      return 0;
    }
    /* Re-accept after a reconnect: the receiver's bitmap is the truth and
     * the old connection's chunks in flight are gone. */
    for (uint64_t i = 0; i < s->count; i++) {
      drop_inflight(s, i);
      uint8_t f = s->flags[i] & (uint8_t)~F_ACKED;
      if (bit(have, have_len, i))
        f |= F_ACKED;
      set_flags(s, i, f);
    }
    s->cursor = 0;
    /* parity sent on the old connection may be gone with it */
    for (uint64_t st = 0; st < s->nstripes; st++)
      s->stripes[st].sent = 0;
    s->cq_n = 0; /* the old connection's streams are gone */
    s->early_sent = false; /* and maybe the receiver's copy of the root */
    if (s->st == SFT_XS_COMPLETING) {
      if (s->n_acked < s->count) {
        s->complete_deadline = UINT64_MAX;
        return sft_xfer_fsm_apply(&s->st, SFT_XE_CHUNK_FAILED);
      }
      s->complete_deadline = now; /* send COMPLETE again at once */
    }
    return 0;
  default:
    return SFT_ERR_STATE;
  }
}

int sft_xsend_chunk_read(struct sft_xsend *s, uint64_t now, uint64_t index,
                         const uint8_t digest[SFT_HASH_LEN]) {
  if (!s || !digest)
    return SFT_ERR_INVAL;
  clock_in(s, now);
  if (index >= s->count)
    return SFT_ERR_RANGE;
  if (s->st == SFT_XS_IDLE || sft_xfer_state_terminal(s->st))
    return SFT_ERR_STATE;
  uint8_t *d = s->digests + index * SFT_HASH_LEN;
  uint8_t f = s->flags[index];
  if (f & F_DIGEST) {
    if (memcmp(d, digest, SFT_HASH_LEN) != 0) {
      fail(s, SFT_ERR_DIGEST); /* the source changed under us */
      return SFT_ERR_DIGEST;
    }
  } else {
    memcpy(d, digest, SFT_HASH_LEN);
    f |= F_DIGEST;
  }
  if (f & F_HASHING) {
    slot_put(s, s->slot_of[index]);
    f &= (uint8_t)~F_HASHING;
  }
  set_flags(s, index, f);
  return 0;
}

static int ack_state_ok(const struct sft_xsend *s) {
  return s->st == SFT_XS_TRANSFERRING || s->st == SFT_XS_PAUSED ||
         s->st == SFT_XS_COMPLETING;
}

int sft_xsend_on_ack(struct sft_xsend *s, uint64_t now,
                     const struct sft_xfer_range *r, size_t n) {
  if (!s)
    return SFT_ERR_INVAL;
  clock_in(s, now);
  int rc = sft_xfer_ranges_check(r, n, s->count);
  if (rc)
    return rc;
  if (!ack_state_ok(s))
    return SFT_ERR_STATE;
  for (size_t k = 0; k < n; k++) {
    for (uint64_t i = r[k].first; i <= r[k].last; i++) {
      if (s->flags[i] & F_ACKED)
        continue; /* idempotent */
      ack_chunk(s, i, false);
      /* Completing has every chunk acked, so this is Transferring/Paused */
      (void)sft_xfer_fsm_apply(&s->st, SFT_XE_CHUNK_COMPLETED);
    }
  }
  return 0;
}

static void due_now(struct sft_xsend *s, uint64_t i, uint64_t now) {
  uint32_t id = s->slot_of[i];
  list_unlink(s, id);
  s->slots[id].deadline = now; /* due now; the head is the next due */
  list_push_front(s, id);
}

int sft_xsend_set_parity(struct sft_xsend *s, uint32_t m_pro) {
  if (!s)
    return SFT_ERR_INVAL;
  if (m_pro > s->p.stripe_m)
    return SFT_ERR_RANGE;
  s->m_pro = m_pro;
  return 0;
}

int sft_xsend_on_need_stripe(struct sft_xsend *s, uint64_t now, uint64_t stripe,
                             uint32_t count) {
  if (!s)
    return SFT_ERR_INVAL;
  now = clock_in(s, now);
  if (s->p.stripe_k == 0)
    return SFT_ERR_STATE;
  if (stripe >= s->nstripes || count == 0 || count > SFT_MAX_STRIPE)
    return SFT_ERR_RANGE;
  if (!ack_state_ok(s))
    return SFT_ERR_STATE;
  uint32_t k = s->p.stripe_k;
  uint32_t len = sft_stripe_len(s->count, k, stripe);
  uint64_t first = stripe * k;
  struct sstripe *e = &s->stripes[stripe];
  if (count > len) {
    /* the receiver dropped chunks it had acked: send the stripe again */
    s->refetches++;
    for (uint64_t i = first; i < first + len; i++) {
      if (s->flags[i] & F_ACKED)
        set_flags(s, i, s->flags[i] & (uint8_t)~F_ACKED);
      else if (s->flags[i] & F_INFLIGHT)
        due_now(s, i, now);
    }
    if (first < s->cursor)
      s->cursor = first;
    if (s->st == SFT_XS_COMPLETING && s->n_acked < s->count) {
      s->complete_deadline = UINT64_MAX;
      (void)sft_xfer_fsm_apply(&s->st, SFT_XE_CHUNK_FAILED);
    }
    return 0;
  }
  uint32_t left = s->p.stripe_m - e->sent - e->want;
  uint32_t np = count < left ? count : left;
  if (np > 0) {
    e->want = (uint8_t)(e->want + np);
    s->need_parity += np;
    pq_push(s, stripe);
  }
  uint32_t rest = count - np;
  for (uint64_t i = first; i < first + len && rest > 0; i++) {
    if ((s->flags[i] & (F_ACKED | F_INFLIGHT)) == F_INFLIGHT) {
      due_now(s, i, now);
      s->need_resends++;
      rest--;
    }
  }
  return 0;
}

int sft_xsend_on_need(struct sft_xsend *s, uint64_t now,
                      const struct sft_xfer_range *r, size_t n) {
  if (!s)
    return SFT_ERR_INVAL;
  now = clock_in(s, now);
  int rc = sft_xfer_ranges_check(r, n, s->count);
  if (rc)
    return rc;
  if (!ack_state_ok(s))
    return SFT_ERR_STATE;
  for (size_t k = 0; k < n; k++) {
    for (uint64_t i = r[k].first; i <= r[k].last; i++) {
      if (!(s->flags[i] & F_INFLIGHT))
        continue;
      due_now(s, i, now);
    }
  }
  return 0;
}

int sft_xsend_pause(struct sft_xsend *s, uint64_t now) {
  if (!s)
    return SFT_ERR_INVAL;
  clock_in(s, now);
  return sft_xfer_fsm_apply(&s->st, SFT_XE_PAUSE);
}

int sft_xsend_resume(struct sft_xsend *s, uint64_t now) {
  if (!s)
    return SFT_ERR_INVAL;
  now = clock_in(s, now);
  int rc = sft_xfer_fsm_apply(&s->st, SFT_XE_RESUME);
  if (rc == 0)
    refresh_deadlines(s, deadline_after(s, now));
  return rc;
}

int sft_xsend_cancel(struct sft_xsend *s, uint64_t now) {
  if (!s)
    return SFT_ERR_INVAL;
  clock_in(s, now);
  int rc = sft_xfer_fsm_apply(&s->st, SFT_XE_CANCEL);
  if (rc == 0)
    s->reason = SFT_ERR_CANCELLED;
  return rc;
}

int sft_xsend_abort(struct sft_xsend *s, uint64_t now, int reason) {
  if (!s || reason >= 0)
    return SFT_ERR_INVAL;
  clock_in(s, now);
  int rc = sft_xfer_fsm_apply(&s->st, SFT_XE_FAIL);
  if (rc == 0)
    s->reason = reason;
  return rc;
}

int sft_xsend_on_network_failure(struct sft_xsend *s, uint64_t now) {
  if (!s)
    return SFT_ERR_INVAL;
  clock_in(s, now);
  int rc = sft_xfer_fsm_apply(&s->st, SFT_XE_NETWORK_FAILURE);
  if (rc == 0) {
    s->net_down = true;
    s->early_sent = false; /* it may have been lost with the connection */
  }
  return rc;
}

int sft_xsend_on_network_recovered(struct sft_xsend *s, uint64_t now) {
  if (!s)
    return SFT_ERR_INVAL;
  now = clock_in(s, now);
  int rc = sft_xfer_fsm_apply(&s->st, SFT_XE_NETWORK_RECOVERED);
  if (rc == 0 && s->net_down) {
    s->net_down = false;
    refresh_deadlines(s, deadline_after(s, now));
    if (s->st == SFT_XS_COMPLETING)
      s->complete_deadline = now;
    else if (s->st == SFT_XS_TRANSFERRING && s->root_known)
      s->early_due = true;
  }
  return rc;
}

int sft_xsend_on_control_lost(struct sft_xsend *s, uint64_t now) {
  if (!s)
    return SFT_ERR_INVAL;
  now = clock_in(s, now);
  if (s->st == SFT_XS_COMPLETING) {
    s->complete_deadline = now;
  } else if ((s->st == SFT_XS_TRANSFERRING || s->st == SFT_XS_PAUSED) &&
             s->root_known) {
    s->early_sent = false;
    s->early_due = true;
  } else if (s->st != SFT_XS_TRANSFERRING && s->st != SFT_XS_PAUSED) {
    return SFT_ERR_STATE;
  }
  return 0;
}

int sft_xsend_on_complete_confirm(struct sft_xsend *s, uint64_t now,
                                  const uint8_t root[SFT_HASH_LEN]) {
  if (!s || !root)
    return SFT_ERR_INVAL;
  clock_in(s, now);
  if (s->st == SFT_XS_COMPLETED)
    return memcmp(root, s->root, SFT_HASH_LEN) == 0 ? 0 : SFT_ERR_DIGEST;
  if (s->st == SFT_XS_TRANSFERRING && s->root_known &&
      memcmp(root, s->root, SFT_HASH_LEN) == 0) {
    /* back in Transferring after a refetch, and the receiver verified the
     * whole file before our last ACKs arrived: it holds every chunk */
    for (uint64_t i = 0; i < s->count; i++)
      if (!(s->flags[i] & F_ACKED))
        ack_chunk(s, i, false);
    (void)sft_xfer_fsm_apply(&s->st, SFT_XE_TRANSFER_COMPLETE);
    return sft_xfer_fsm_apply(&s->st, SFT_XE_TRANSFER_COMPLETE);
  }
  if (s->st != SFT_XS_COMPLETING)
    return SFT_ERR_STATE;
  if (memcmp(root, s->root, SFT_HASH_LEN) != 0) {
    fail(s, SFT_ERR_DIGEST);
    return SFT_ERR_DIGEST;
  }
  return sft_xfer_fsm_apply(&s->st, SFT_XE_TRANSFER_COMPLETE);
}

/* ---- output ---- */

static bool all_done(const struct sft_xsend *s) {
  return s->n_acked == s->count && s->n_digest == s->count;
}

static bool has_work(const struct sft_xsend *s) {
  return s->n_used < s->p.max_inflight &&
         (s->n_need_send != 0 || s->n_need_hash != 0);
}

/* Next chunk needing a send or a hash-only read, from the cursor on (one
 * wrap: chunks behind it may need work again after a re-accept or an
 * ack of a never-read chunk). */
static bool find_work(struct sft_xsend *s, uint64_t *idx) {
  for (int pass = 0; pass < 2; pass++) {
    for (; s->cursor < s->count; s->cursor++) {
      uint8_t f = s->flags[s->cursor];
      if (need_send(f) || need_hash(f)) {
        *idx = s->cursor;
        return true;
      }
    }
    s->cursor = 0;
  }
  return false;
}

static void read_action(const struct sft_xsend *s, struct sft_xsend_action *a,
                        uint64_t i, bool send) {
  a->type = SFT_XSEND_READ_CHUNK;
  a->index = i;
  a->offset = sft_chunk_offset(i, s->chunk_size);
  a->len = sft_chunk_len(s->size, s->chunk_size, i);
  a->send = send;
  a->attempt = send ? s->tries[i] : 0;
}

static int report_end(struct sft_xsend *s, struct sft_xsend_action *a) {
  a->expiry = UINT64_MAX;
  if (!s->reported) {
    s->reported = true;
    if (s->st == SFT_XS_FAILED) {
      a->type = SFT_XSEND_FAILED;
      a->reason = s->reason;
    } else {
      a->type = SFT_XSEND_DONE;
    }
  }
  return 0;
}

int sft_xsend_poll(struct sft_xsend *s, uint64_t now,
                   struct sft_xsend_action *a) {
  if (!s || !a)
    return SFT_ERR_INVAL;
  now = clock_in(s, now);
  memset(a, 0, sizeof(*a));
  a->type = SFT_XSEND_NONE;

  if (s->cq_n > 0) {
    /* 0. acked while in flight: let the daemon reset the stream */
    a->type = SFT_XSEND_CANCEL_CHUNK;
    a->index = s->cq[s->cq_head];
    s->cq_head = (s->cq_head + 1) % s->p.max_inflight;
    s->cq_n--;
    s->cancels++;
    return 0;
  }

  if (sft_xfer_state_terminal(s->st))
    return report_end(s, a);

  if (s->st == SFT_XS_TRANSFERRING && !s->net_down) {
    /* 1. resend the oldest chunk whose timeout passed */
    if (s->head != NIL && s->slots[s->head].deadline <= now) {
      uint32_t id = s->head;
      uint64_t i = s->slots[id].index;
      if (s->tries[i] >= s->p.max_retries) {
        fail(s, SFT_ERR_RETRIES);
        return report_end(s, a);
      }
      s->tries[i]++;
      s->resends++;
      (void)sft_xfer_fsm_apply(&s->st, SFT_XE_CHUNK_FAILED);
      list_unlink(s, id);
      s->slots[id].deadline = deadline_after(s, now);
      list_append(s, id);
      read_action(s, a, i, true);
      return 0;
    }
    /* 2. parity wanted (proactive or NEED), stripe by stripe */
    while (s->pq_n > 0) {
      uint64_t st = s->pq[s->pq_head];
      s->pq_head = (uint32_t)((s->pq_head + 1) % s->nstripes);
      s->pq_n--;
      struct sstripe *e = &s->stripes[st];
      e->flags &= (uint8_t)~SS_QUEUED;
      uint32_t n = e->want;
      uint32_t len = sft_stripe_len(s->count, s->p.stripe_k, st);
      e->want = 0;
      if (n == 0 || e->nack == len)
        continue; /* nothing missing any more */
      a->type = SFT_XSEND_ENCODE_PARITY;
      a->stripe = st;
      a->index = st * s->p.stripe_k;
      a->offset = sft_chunk_offset(a->index, s->chunk_size);
      a->len = s->chunk_size;
      a->nchunks = len;
      a->parity_first = e->sent;
      a->parity_count = n;
      e->sent = (uint8_t)(e->sent + n);
      s->parity_shards += n;
      return 0;
    }
    /* 3. a new read, in index order */
    uint64_t i;
    if (has_work(s) && find_work(s, &i)) {
      uint8_t f = s->flags[i];
      if (need_send(f)) {
        uint32_t id = slot_get(s, i, K_SEND);
        s->slots[id].deadline = deadline_after(s, now);
        list_append(s, id);
        set_flags(s, i, f | F_INFLIGHT);
        s->sends++;
        read_action(s, a, i, true);
      } else {
        (void)slot_get(s, i, K_HASH);
        set_flags(s, i, f | F_HASHING);
        s->hash_reads++;
        read_action(s, a, i, false);
      }
      return 0;
    }
    /* 4. everything acked and hashed: COMPLETE */
    if (all_done(s)) {
      int rc = sft_root(s->algo, s->digests, (size_t)s->count, s->root);
      if (rc) {
        fail(s, rc);
        return report_end(s, a);
      }
      s->root_known = true;
      s->early_due = false;
      (void)sft_xfer_fsm_apply(&s->st, SFT_XE_TRANSFER_COMPLETE);
      /* sent just below, unless it went early on this connection */
      s->complete_deadline = s->early_sent ? deadline_after(s, now) : now;
    } else if (s->n_digest == s->count && !s->root_known) {
      /* 5. every digest known, chunks still unacked: COMPLETE now, so the
       * receiver checks the root as soon as its last chunk is in, instead
       * of a round trip after our last ACK arrives */
      int rc = sft_root(s->algo, s->digests, (size_t)s->count, s->root);
      if (rc) {
        fail(s, rc);
        return report_end(s, a);
      }
      s->root_known = true;
      s->early_due = true;
    }
    if (s->early_due) {
      s->early_due = false;
      s->early_sent = true;
      a->type = SFT_XSEND_SEND_COMPLETE;
      memcpy(a->root, s->root, SFT_HASH_LEN);
      return 0;
    }
  }

  if (s->st == SFT_XS_COMPLETING && !s->net_down &&
      s->complete_deadline <= now) {
    s->complete_deadline = deadline_after(s, now);
    a->type = SFT_XSEND_SEND_COMPLETE;
    memcpy(a->root, s->root, SFT_HASH_LEN);
    return 0;
  }
  a->expiry = sft_xsend_expiry(s);
  return 0;
}

uint64_t sft_xsend_expiry(const struct sft_xsend *s) {
  if (!s)
    return UINT64_MAX;
  if (sft_xfer_state_terminal(s->st))
    return s->reported ? UINT64_MAX : 0;
  if (s->cq_n > 0)
    return 0;
  if (s->net_down)
    return UINT64_MAX;
  if (s->st == SFT_XS_TRANSFERRING) {
    if (has_work(s) || all_done(s) || s->pq_n > 0 || s->early_due ||
        (s->n_digest == s->count && !s->root_known))
      return 0;
    return s->head != NIL ? s->slots[s->head].deadline : UINT64_MAX;
  }
  if (s->st == SFT_XS_COMPLETING)
    return s->complete_deadline;
  return UINT64_MAX;
}

enum sft_xfer_state sft_xsend_state(const struct sft_xsend *s) {
  return s->st;
}
int sft_xsend_reason(const struct sft_xsend *s) {
  return s->st == SFT_XS_FAILED ? s->reason : 0;
}
bool sft_xsend_network_down(const struct sft_xsend *s) {
  return s->net_down;
}

bool sft_xsend_acked(const struct sft_xsend *s, uint64_t index) {
  return s && s->flags && index < s->count && (s->flags[index] & F_ACKED);
}

void sft_xsend_stats(const struct sft_xsend *s, struct sft_xsend_stats *st) {
  st->chunks_total = s->count;
  st->chunks_acked = s->n_acked;
  st->bytes_total = s->size;
  st->bytes_acked = s->bytes_acked;
  st->inflight = s->n_used;
  st->sends = s->sends;
  st->resends = s->resends;
  st->hash_reads = s->hash_reads;
  st->parity_shards = s->parity_shards;
  st->need_parity = s->need_parity;
  st->need_resends = s->need_resends;
  st->refetches = s->refetches;
  st->cancels = s->cancels;
}
