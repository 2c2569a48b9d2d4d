/*
 * sft bandwidth limiter: a token bucket (lib/rate).
 *
 * Pure and deterministic: time is the `now` argument in nanoseconds (from
 * any monotonic clock; a `now` earlier than one seen before is treated as
 * that earlier-seen time, so time never runs backwards inside a bucket). No
 * allocation, no I/O. Not thread-safe: one owner.
 *
 * Rate is in bits per second (0 = unlimited: every take succeeds). Burst is
 * in bytes: the bucket never holds more than `burst` bytes' worth of tokens,
 * however long it stays idle. burst 0 at init means "auto":
 * max(SFT_RATE_BURST_MIN, rate * SFT_RATE_BURST_NS / 8e9), i.e. 64 KiB or
 * 10 ms at the configured rate, whichever is larger; an auto burst follows
 * the rate when it changes.
 *
 * Accounting is exact: tokens are kept in bit-nanoseconds (1 byte =
 * 8e9 units, one nanosecond at r bit/s adds r units), in a 128-bit integer,
 * so rounding never accumulates and the long-run average is the rate to the
 * nanosecond. Every product is computed in 128 bits and every time result
 * saturates at UINT64_MAX: any rate, burst and size up to UINT64_MAX is safe.
 *
 * Requests larger than the burst: allowed as soon as the bucket is FULL, and
 * they drive it into debt (negative tokens) that later requests must wait
 * out. So a 16 MiB chunk through a 64 KiB bucket is neither refused nor
 * split; the long-run average still holds. In general a request of n bytes
 * is allowed when the bucket holds at least min(n, burst) bytes.
 *
 * Hierarchical limits (a global bucket and a per-transfer bucket that must
 * both allow a send) are the caller's job: check both with sft_rate_check(),
 * and only if both return 0 take from both with sft_rate_take(); otherwise
 * wait until the later of the two `at` times. (Taking from one and then
 * failing on the other would charge bytes that were never sent.)
 */
#ifndef SFT_RATE_H
#define SFT_RATE_H

#include <stdint.h>

#include "sft/err.h"

#define SFT_RATE_BURST_MIN (64u * 1024) /* bytes: auto burst floor */
#define SFT_RATE_BURST_NS 10000000ull   /* auto burst: 10 ms at rate */

/* Embedded by the caller; the fields are private (use the functions). */
struct sft_rate {
  uint64_t rate;                 /* bit/s, 0 = unlimited */
  uint64_t burst;                /* effective burst, bytes */
  uint64_t burst_cfg;            /* 0 = auto */
  uint64_t last;                 /* time of the last refill, ns */
  __extension__ __int128 tokens; /* bit-ns; negative = debt */
};

/* Initialises |b| at time |now| with |rate_bps| (0 = unlimited) and
 * |burst_bytes| (0 = auto, see above). The bucket starts full. Never fails. */
void sft_rate_init(struct sft_rate *b, uint64_t rate_bps, uint64_t burst_bytes,
                   uint64_t now);

/* Changes the rate at time |now| without losing accounting: tokens earned
 * up to |now| at the old rate are kept (capped at the new burst if it is
 * smaller), and debt is kept too. Going from unlimited to limited starts
 * with a full bucket. An auto burst is recomputed. Never fails. */
void sft_rate_set(struct sft_rate *b, uint64_t rate_bps, uint64_t now);

/* Would |bytes| be allowed at |now|? 0 if yes (nothing consumed);
 * SFT_ERR_AGAIN if not, and then *at (if not NULL) is the earliest time at
 * which they will be, assuming no other take in between (saturates at
 * UINT64_MAX). On 0, *at = now. Refills the bucket up to |now|. */
int sft_rate_check(struct sft_rate *b, uint64_t now, uint64_t bytes,
                   uint64_t *at);

/* Takes |bytes| at |now|: 0 and consumes them if allowed, or SFT_ERR_AGAIN
 * with *at as in sft_rate_check() and nothing consumed (never partial).
 * Taking 0 bytes always succeeds. Unlimited rate: always 0. */
int sft_rate_take(struct sft_rate *b, uint64_t now, uint64_t bytes,
                  uint64_t *at);

/* Bytes that could be taken at |now| without waiting (0 while in debt;
 * UINT64_MAX when unlimited). Refills the bucket up to |now|. */
uint64_t sft_rate_avail(struct sft_rate *b, uint64_t now);

/* The configured rate (bit/s, 0 = unlimited) and effective burst (bytes). */
uint64_t sft_rate_get(const struct sft_rate *b);
uint64_t sft_rate_burst(const struct sft_rate *b);

#endif /* SFT_RATE_H */
