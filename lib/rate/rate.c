/* Token bucket; see sft/rate.h for the contract. */
#include "sft/rate.h"

#include <stddef.h>

__extension__ typedef __int128 i128;
__extension__ typedef unsigned __int128 u128;

#define UNITS_PER_BYTE ((u128)8000000000ull) /* bit-ns per byte */

static uint64_t auto_burst(uint64_t rate) {
  /* rate * 10 ms / 8 bits, in bytes: rate / 800. */
  uint64_t b = rate / (8ull * 1000000000ull / SFT_RATE_BURST_NS);
  return b > SFT_RATE_BURST_MIN ? b : SFT_RATE_BURST_MIN;
}

static i128 cap_units(const struct sft_rate *b) {
  return (i128)((u128)b->burst * UNITS_PER_BYTE); /* <= 2^97 */
}

/* Adds the tokens earned since b->last, capped at the burst. */
static void refill(struct sft_rate *b, uint64_t now) {
  if (now <= b->last)
    return; /* time never runs backwards inside a bucket */
  uint64_t dt = now - b->last;
  b->last = now;
  if (b->rate == 0)
    return;
  i128 cap = cap_units(b);
  if (b->tokens >= cap)
    return;
  u128 room = (u128)(cap - b->tokens); /* < 2^98 */
  u128 earned = (u128)dt * b->rate;    /* < 2^128: no overflow */
  b->tokens = earned >= room ? cap : b->tokens + (i128)earned;
}

void sft_rate_init(struct sft_rate *b, uint64_t rate_bps, uint64_t burst_bytes,
                   uint64_t now) {
  b->rate = rate_bps;
  b->burst_cfg = burst_bytes;
  b->burst = burst_bytes ? burst_bytes : auto_burst(rate_bps);
  b->last = now;
  b->tokens = cap_units(b);
}

void sft_rate_set(struct sft_rate *b, uint64_t rate_bps, uint64_t now) {
  int was_unlimited = b->rate == 0;
  refill(b, now); /* settle at the old rate */
  b->rate = rate_bps;
  if (b->burst_cfg == 0)
    b->burst = auto_burst(rate_bps);
  i128 cap = cap_units(b);
  if (was_unlimited || b->tokens > cap)
    b->tokens = cap;
}

/* 0 if |bytes| fit now; else SFT_ERR_AGAIN and *at. */
static int check(struct sft_rate *b, uint64_t now, uint64_t bytes,
                 uint64_t *at) {
  if (now < b->last)
    now = b->last;
  refill(b, now);
  if (b->rate == 0 || bytes == 0) {
    if (at)
      *at = now;
    return 0;
  }
  uint64_t need_bytes = bytes < b->burst ? bytes : b->burst;
  i128 need = (i128)((u128)need_bytes * UNITS_PER_BYTE);
  if (b->tokens >= need) {
    if (at)
      *at = now;
    return 0;
  }
  if (at) {
    u128 deficit = (u128)(need - b->tokens); /* > 0, < 2^99 */
    u128 wait = (deficit + b->rate - 1) / b->rate;
    u128 t = (u128)now + wait;
    *at = t > UINT64_MAX ? UINT64_MAX : (uint64_t)t;
  }
  return SFT_ERR_AGAIN;
}

int sft_rate_check(struct sft_rate *b, uint64_t now, uint64_t bytes,
                   uint64_t *at) {
  return check(b, now, bytes, at);
}

int sft_rate_take(struct sft_rate *b, uint64_t now, uint64_t bytes,
                  uint64_t *at) {
  int rc = check(b, now, bytes, at);
  if (rc == 0 && b->rate != 0)
    /* tokens >= min(bytes, burst) > 0 here, so the debt after this is at
     * most bytes * 8e9 < 2^97: no overflow however many times it happens
     * (the next big take again needs a full bucket first). */
    b->tokens -= (i128)((u128)bytes * UNITS_PER_BYTE);
  return rc;
}

uint64_t sft_rate_avail(struct sft_rate *b, uint64_t now) {
  refill(b, now);
  if (b->rate == 0)
    return UINT64_MAX;
  if (b->tokens <= 0)
    return 0;
  return (uint64_t)((u128)b->tokens / UNITS_PER_BYTE);
}

uint64_t sft_rate_get(const struct sft_rate *b) {
  return b->rate;
}

uint64_t sft_rate_burst(const struct sft_rate *b) {
  return b->burst;
}
