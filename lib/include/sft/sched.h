/*
 * sft priority scheduler: decides whose chunk goes on the wire next.
 *
 * Three classes, Critical / High / Normal, share the wire by BYTES in
 * proportion to their weights (default 50/30/20) through deficit round robin
 * over the classes (quantum = weight * quantum_unit). A class with nothing
 * eligible is skipped, so its share goes to the others: a dequeue never
 * reports SFT_ERR_EMPTY while any eligible item exists (work-conserving).
 *
 * Within a class, transfers share by bytes (start-time fair queueing: the
 * transfer that has sent the fewest bytes since it became active goes next,
 * ties in round-robin order). Within a transfer, items leave in ascending
 * sequence order, requeued items included: a requeued item with a lower
 * sequence number goes before later ones of its transfer once it is eligible.
 *
 * A failed item is requeued with backoff: after n previous retries it becomes
 * eligible at now + backoff_base * 2^n (100 ms, 200 ms, 400 ms ...); once it
 * has been retried max_retries times the next requeue gives it back with
 * SFT_ERR_RETRIES. sft_sched_next_ready() tells the caller when to arm its
 * timer.
 *
 * Pure and deterministic: no clock (time is the `now` argument, nanoseconds,
 * expected non-decreasing), no I/O, no threads. All storage is allocated by
 * sft_sched_new(); no other call allocates. Not thread-safe: one owner.
 *
 * Complexity (T active transfers in the class, b items backing off, k items
 * of one transfer): enqueue O(1), O(log T) when it activates its transfer
 * (an out-of-order sequence number goes into a pairing heap, still O(1));
 * dequeue O(log T), plus amortized O(log k) when the item comes from the
 * pairing heap, plus O(log b) per item whose backoff ended; requeue
 * O(log b); pause/resume/set_class O(log T); remove O(k + b).
 * See docs/internals/sched.md.
 */
#ifndef SFT_SCHED_H
#define SFT_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "sft/err.h"

enum sft_sched_class {
  SFT_SCHED_CRITICAL = 0,
  SFT_SCHED_HIGH = 1,
  SFT_SCHED_NORMAL = 2,
};
#define SFT_SCHED_NCLASS 3

/* Bounds checked by sft_sched_new(). */
#define SFT_SCHED_MAX_CAPACITY (1u << 24) /* items (and transfer records) */
#define SFT_SCHED_MAX_WEIGHT 1000000u
#define SFT_SCHED_MAX_QUANTUM_UNIT (16u * 1024 * 1024)
#define SFT_SCHED_MAX_RETRIES 64u

/* Defaults set by sft_sched_config_default(). */
#define SFT_SCHED_DEFAULT_CAPACITY 65536u
#define SFT_SCHED_DEFAULT_MAX_RETRIES 5u
#define SFT_SCHED_DEFAULT_BACKOFF_NS 100000000ull /* 100 ms */
#define SFT_SCHED_DEFAULT_QUANTUM_UNIT 4096u      /* bytes per weight point */

/* One unit of work: a chunk (or anything with a size) of one transfer. */
struct sft_sched_item {
  uint64_t xfer; /* transfer id, any value */
  uint64_t seq;  /* order within the transfer (ascending); ties: any order */
  union sft_sched_user {
    void *ptr;
    uint64_t u64;
  } user;        /* opaque, copied in and out untouched */
  uint32_t size; /* bytes on the wire, > 0 */
  uint8_t cls;   /* enum sft_sched_class */
  /* Number of previous requeues. Ignored (taken as 0) by enqueue; set by
   * dequeue and remove; read by requeue, which trusts it. */
  uint8_t retries;
};

/* Allocator hooks (for tests that fail the Nth allocation). Both NULL ->
 * calloc/free. zalloc must return zeroed memory or NULL. */
struct sft_sched_mem {
  void *(*zalloc)(size_t nmemb, size_t size, void *ud);
  void (*free)(void *p, void *ud);
  void *ud;
};

struct sft_sched_config {
  uint32_t capacity;  /* max queued items (ready + backed off + paused) */
  uint32_t max_xfers; /* max transfer records (a transfer with queued items
                         or paused); 0 -> capacity */
  uint32_t weight[SFT_SCHED_NCLASS]; /* byte shares, each 1..MAX_WEIGHT */
  uint32_t quantum_unit; /* DRR bytes per weight point, 1..MAX_QUANTUM_UNIT */
  uint32_t max_retries;  /* requeues allowed per item, 0..MAX_RETRIES */
  uint64_t backoff_base_ns; /* first retry delay, > 0 */
  struct sft_sched_mem mem;
};

/* Per class (and overall) counters. Waits are measured on the injected
 * clock from the moment an item became eligible (enqueue time, or the end
 * of its backoff for a requeued item) to its dequeue; time spent paused
 * counts as waiting. */
struct sft_sched_class_stats {
  uint64_t pending_items; /* queued now: ready, backed off or paused */
  uint64_t pending_bytes;
  uint64_t dequeued_items; /* items processed (handed out by dequeue) */
  uint64_t dequeued_bytes;
  uint64_t wait_sum_ns;
  uint64_t wait_avg_ns; /* wait_sum_ns / dequeued_items, 0 if none */
  uint64_t wait_max_ns;
  uint64_t requeues; /* accepted requeues */
  uint64_t drops;    /* requeues refused with SFT_ERR_RETRIES */
  uint64_t removed;  /* items taken out by sft_sched_remove() */
};

struct sft_sched_stats {
  struct sft_sched_class_stats cls[SFT_SCHED_NCLASS];
  struct sft_sched_class_stats all; /* sums; wait max/avg over all classes */
  uint64_t backoff_items;           /* items currently waiting out a backoff */
  uint32_t xfers;                   /* transfer records in use */
  uint32_t paused_xfers;
};

typedef struct sft_sched sft_sched;

/* Fills |cfg| with the defaults: capacity 65536, max_xfers 0 (= capacity),
 * weights 50/30/20, quantum_unit 4096, max_retries 5, backoff 100 ms,
 * calloc/free. */
void sft_sched_config_default(struct sft_sched_config *cfg);

/* Creates a scheduler; |cfg| NULL means the defaults. Allocates all storage
 * now. On success *ps owns the scheduler (free with sft_sched_del()); on
 * failure *ps is NULL. Errors: SFT_ERR_INVAL (ps NULL, a bound violated,
 * only one of the two allocator hooks set), SFT_ERR_NOMEM. */
int sft_sched_new(sft_sched **ps, const struct sft_sched_config *cfg);

/* Frees |s| (NULL is a no-op). Queued items are dropped without callbacks;
 * call sft_sched_remove() first if their user data needs releasing. */
void sft_sched_del(sft_sched *s);

/* Queues a copy of |it| (retries taken as 0), eligible from |now|. If the
 * transfer is already known (it has queued items, or is paused), the item
 * joins the transfer's current class and it->cls is only validated.
 * Errors (nothing changed): SFT_ERR_INVAL (NULL, class out of range, size
 * 0), SFT_ERR_FULL (capacity reached, or a new transfer record is needed and
 * max_xfers are in use). */
int sft_sched_enqueue(sft_sched *s, const struct sft_sched_item *it,
                      uint64_t now);

/* Hands out the next item at time |now| into |out|: first moves every
 * backed-off item whose time has come (eligible_at <= now) back into its
 * transfer, then picks the class (DRR), the transfer (byte-fair) and its
 * lowest sequence number. out->cls is the class it left from, out->retries
 * its previous requeue count. The item leaves the scheduler (its slot is
 * free again). Errors: SFT_ERR_INVAL (NULL), SFT_ERR_EMPTY (nothing
 * eligible now: queue empty, all paused, or all backing off). */
int sft_sched_dequeue(sft_sched *s, uint64_t now, struct sft_sched_item *out);

/* Gives back an item that failed (as returned by dequeue, it->retries
 * unchanged). With n = it->retries < max_retries it is queued again,
 * eligible at now + backoff_base * 2^n, with retries n + 1, and keeps its
 * place in its transfer's sequence order. Otherwise SFT_ERR_RETRIES: the
 * item is not queued (the caller keeps it) and counted as a drop.
 * Other errors (nothing changed): SFT_ERR_INVAL, SFT_ERR_FULL as enqueue. */
int sft_sched_requeue(sft_sched *s, const struct sft_sched_item *it,
                      uint64_t now);

/* Earliest time at which a backed-off item becomes eligible (it may already
 * be <= now if no dequeue ran since; it may belong to a paused transfer, in
 * which case the wake-up finds nothing: harmless). SFT_ERR_EMPTY (and *t
 * untouched) when no item is backing off; SFT_ERR_INVAL for NULL. */
int sft_sched_next_ready(const sft_sched *s, uint64_t *t);

/* Called by sft_sched_remove() once per removed item; must not call back
 * into the scheduler. */
typedef void (*sft_sched_item_cb)(const struct sft_sched_item *it, void *arg);

/* Cancel: removes every queued item of transfer |xfer| (ready, backed off,
 * paused) and forgets the transfer (its pause too). |cb| (may be NULL) sees
 * each removed item, in no particular order, so the caller can release its
 * user data; *removed (may be NULL) gets the count. Cancelled ids are not
 * remembered: items of the transfer still in the caller's hands must not be
 * requeued afterwards (they would recreate it). Errors:
 * SFT_ERR_NOT_FOUND (unknown transfer), SFT_ERR_INVAL (s NULL). */
int sft_sched_remove(sft_sched *s, uint64_t xfer, sft_sched_item_cb cb,
                     void *arg, size_t *removed);

/* Pause: the transfer's items stay queued (and keep counting in stats and
 * capacity) but are never dequeued until resumed; items enqueued while
 * paused wait too. Pausing an unknown transfer creates its record (so that
 * items arriving later wait); pausing twice is a no-op. Errors:
 * SFT_ERR_FULL (no transfer record free), SFT_ERR_INVAL. */
int sft_sched_pause(sft_sched *s, uint64_t xfer);

/* Resume: makes a paused transfer's items eligible again; resuming a
 * transfer that is not paused is a no-op. Errors: SFT_ERR_NOT_FOUND
 * (unknown transfer), SFT_ERR_INVAL. */
int sft_sched_resume(sft_sched *s, uint64_t xfer);

/* Moves a known transfer (all its queued items, and items enqueued later)
 * to class |cls|. Errors: SFT_ERR_NOT_FOUND, SFT_ERR_INVAL (bad class). */
int sft_sched_set_class(sft_sched *s, uint64_t xfer, int cls);

/* 1 if the transfer is known and paused, 0 otherwise. */
int sft_sched_is_paused(const sft_sched *s, uint64_t xfer);

/* Queued items in all states (0 for NULL). */
size_t sft_sched_len(const sft_sched *s);

/* Snapshot of the counters. Errors: SFT_ERR_INVAL (NULL). */
int sft_sched_get_stats(const sft_sched *s, struct sft_sched_stats *st);

/* "critical", "high", "normal"; NULL for a value out of range. */
const char *sft_sched_class_name(int cls);

/* Inverse of sft_sched_class_name (exact, lower case). SFT_ERR_INVAL for
 * anything else or NULL. */
int sft_sched_class_parse(const char *name, enum sft_sched_class *out);

#endif /* SFT_SCHED_H */
