/* The daemon's link share: one global bandwidth limit handed out to the
 * transfers that want to send, in lib/sched's order (classes by byte
 * weights 50/30/20, fair within a class), one chunk at a time. Loop thread
 * only.
 *
 * Each want is one item of an sft_sched queue (xfer = key). The share holds
 * at most one dequeued "next" item: the scheduler decides the order, a
 * token bucket (lib/rate, auto burst: max(64 KiB, 10 ms at the rate))
 * decides the time. When the bucket holds the next item's bytes they are
 * taken, its grant is called, and the following item is dequeued;
 * otherwise a uv_timer is armed for when it will. Grants are always
 * delivered from the share's timer callback, never synchronously. A grant
 * callback may call want (to re-want), forget, set_rate, stats and close.
 *
 * Within a class, fairness is per want: a key with one want queued at a
 * time is served round robin with the other keys of its class (equal
 * shares when their want sizes are equal). Between classes the split is
 * by bytes. See docs/internals/share.md. */
#ifndef SFTD_SHARE_H
#define SFTD_SHARE_H
#include "sft/sched.h"
#include <stdint.h>
#include <uv.h>

/* Keys that may want at the same time (the scheduler's capacity). */
#define SFTD_SHARE_MAX_WANTS 4096u

struct sftd_share;
/* Called from the loop (never from inside sftd_share_want) once |bytes|
 * were taken from the bucket for this client's want. The want is over when
 * this runs: the callback may want again for the same key. */
typedef void (*sftd_share_grant_fn)(void *ud, uint32_t bytes);

/* rate_bps > 0 (bits per second). Weights NULL -> 50/30/20 (each
 * 1..SFT_SCHED_MAX_WEIGHT). |loop| must outlive the share. On success *out
 * owns it (release with sftd_share_close); on failure *out is NULL.
 * Errors: SFT_ERR_INVAL (NULL loop/out, rate 0, a weight out of range),
 * SFT_ERR_NOMEM. */
int sftd_share_new(uv_loop_t *loop, uint64_t rate_bps,
                   const uint32_t weight[SFT_SCHED_NCLASS],
                   struct sftd_share **out);
/* At most one want per |key| (a transfer): asks for |bytes| (> 0) in
 * class |cls| (enum sft_sched_class). A second want for a key with one
 * pending returns SFT_ERR_STATE. SFT_ERR_INVAL for bad arguments,
 * SFT_ERR_NOMEM/SFT_ERR_FULL when the queue is full. |ud| is not owned;
 * it must stay valid until the grant runs or the key is forgotten. */
int sftd_share_want(struct sftd_share *sh, uint64_t key, int cls,
                    uint32_t bytes, sftd_share_grant_fn fn, void *ud);
/* Drops |key|'s pending want, if any (pause, cancel, end of a transfer);
 * its callback is never called afterwards. Safe for unknown keys. */
void sftd_share_forget(struct sftd_share *sh, uint64_t key);
/* Changes the rate (config reload); 0 is invalid. Tokens earned so far
 * are kept (capped at the new burst), debt too. Errors: SFT_ERR_INVAL. */
int sftd_share_set_rate(struct sftd_share *sh, uint64_t rate_bps);
/* Queue statistics (for GET /api/metrics and priority_queue_size). The
 * held "next" item counts as pending in its class (and in .all). NULL sh:
 * all zero. */
void sftd_share_stats(const struct sftd_share *sh, struct sft_sched_stats *st);
/* Closes the timer; memory is freed from the close callback (run the loop).
 * Pending wants are dropped without callbacks. No other call on |sh|
 * afterwards (except from a grant callback that is running: want then
 * returns SFT_ERR_STATE). NULL: no-op. */
void sftd_share_close(struct sftd_share *sh);
#endif
