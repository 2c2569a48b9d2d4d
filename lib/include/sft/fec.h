/*
 * Reed-Solomon erasure coding over GF(2^8) for sft stripes (lib/fec).
 *
 * A stripe is k data shards followed by m parity shards, all the same length:
 * shard i for 0 <= i < k is data, k <= i < k+m is parity (systematic code:
 * data shards are sent unchanged). The generator is ISA-L's Cauchy matrix, so
 * ANY k of the k+m shards rebuild the stripe. Limits: 1 <= k, 0 <= m,
 * k + m <= SFT_MAX_STRIPE (255). Any shard length >= 1; no alignment needed.
 * See docs/internals/fec.md.
 *
 * Pure computation: no I/O, no clocks, no global state. Memory is allocated
 * only by sft_fec_new*() and when sft_fec_decode() misses its decode-table
 * cache (bounded number of entries, see below).
 *
 * Threads: sft_fec_encode() only reads the codec and may run concurrently on
 * one codec; sft_fec_decode() updates the cache, so give each thread its own
 * codec (or serialise decodes).
 */
#ifndef SFT_FEC_H
#define SFT_FEC_H

#include <stddef.h>
#include <stdint.h>

#include "sft/err.h"
#include "sft/limits.h"

/* Decode-table cache entries per codec unless sft_fec_opts says otherwise. */
#define SFT_FEC_CACHE_DEFAULT 64u
#define SFT_FEC_CACHE_MAX 4096u

/* sft_fec_decode() flag: also rebuild missing PARITY shards (by default only
 * missing data shards are rebuilt and missing parity buffers are ignored). */
#define SFT_FEC_PARITY 1u

/* A set of shard indices 0..255, e.g. the shards of a stripe that arrived.
 * Plain value type; zero-initialise ({0}) for the empty set. */
struct sft_fec_mask {
  uint64_t w[4];
};

/* Add / remove / test shard |i| (i < 256; larger i is not checked). */
static inline void sft_fec_mask_set(struct sft_fec_mask *s, unsigned i) {
  s->w[(i >> 6) & 3] |= (uint64_t)1 << (i & 63);
}
static inline void sft_fec_mask_clear(struct sft_fec_mask *s, unsigned i) {
  s->w[(i >> 6) & 3] &= ~((uint64_t)1 << (i & 63));
}
static inline int sft_fec_mask_test(const struct sft_fec_mask *s, unsigned i) {
  return (int)((s->w[(i >> 6) & 3] >> (i & 63)) & 1);
}
/* The set {0, ..., n-1} (n <= 256): "every shard arrived". */
static inline struct sft_fec_mask sft_fec_mask_first(unsigned n) {
  struct sft_fec_mask s = {{0, 0, 0, 0}};
  for (unsigned i = 0; i < 4; i++) {
    if (n >= 64 * (i + 1))
      s.w[i] = ~(uint64_t)0;
    else if (n > 64 * i)
      s.w[i] = ((uint64_t)1 << (n - 64 * i)) - 1;
  }
  return s;
}

/* Optional settings for sft_fec_new_opts(). Zero-initialise, then set. */
struct sft_fec_opts {
  /* Decode-table cache entries; 0 = SFT_FEC_CACHE_DEFAULT. SFT_ERR_RANGE above
   * SFT_FEC_CACHE_MAX. */
  unsigned cache_slots;
  /* Allocator; both NULL = malloc/free, otherwise both must be set
   * (SFT_ERR_INVAL). alloc returns NULL on failure; dealloc(ud, NULL) must be
   * harmless. Used for every allocation the codec makes. */
  void *(*alloc)(void *ud, size_t n);
  void (*dealloc)(void *ud, void *p);
  void *ud;
};

/* Decode-table cache counters (for tests and metrics). */
struct sft_fec_stats {
  uint64_t hits;      /* decodes that found their tables cached */
  uint64_t misses;    /* decodes that inverted a matrix and built tables */
  uint64_t evictions; /* cached patterns dropped to make room (LRU) */
  unsigned entries;   /* patterns cached now, <= slots */
  unsigned slots;     /* cache capacity */
};

struct sft_fec;

/* Creates a codec for |k| data + |m| parity shards into |*out|; free it with
 * sft_fec_del(). Returns 0, SFT_ERR_INVAL (out NULL, k == 0),
 * SFT_ERR_RANGE (k + m > SFT_MAX_STRIPE) or SFT_ERR_NOMEM. *out is NULL on
 * failure. */
int sft_fec_new(struct sft_fec **out, unsigned k, unsigned m);

/* As sft_fec_new() with settings; |opts| may be NULL (defaults). Also
 * SFT_ERR_RANGE for opts->cache_slots > SFT_FEC_CACHE_MAX and SFT_ERR_INVAL
 * for only one of alloc/dealloc set. */
int sft_fec_new_opts(struct sft_fec **out, unsigned k, unsigned m,
                     const struct sft_fec_opts *opts);

/* Frees the codec and its cache. NULL is a no-op. */
void sft_fec_del(struct sft_fec *fec);

/* k and m of a codec (|fec| must not be NULL). */
unsigned sft_fec_k(const struct sft_fec *fec);
unsigned sft_fec_m(const struct sft_fec *fec);

/* Computes the m parity shards of one stripe. |data| holds k pointers to
 * |len|-byte data shards (read only), |parity| m pointers to caller-owned
 * |len|-byte buffers that are overwritten; parity buffers must not overlap
 * the data. m == 0 is a no-op (parity may be NULL). Returns 0 or
 * SFT_ERR_INVAL (NULL codec/array/pointer, len == 0). Allocates nothing. */
int sft_fec_encode(const struct sft_fec *fec, const uint8_t *const data[],
                   uint8_t *const parity[], size_t len);

/* Rebuilds the missing shards of one stripe in place. |shards| holds k+m
 * pointers in stripe order; |present| says which shards arrived (bits at or
 * above k+m must be clear). The first k present shards (by index) are read;
 * every missing data shard is written into its caller-owned |len|-byte
 * buffer shards[i], and with |flags| & SFT_FEC_PARITY every missing parity
 * shard too. Pointers of shards that are neither read nor written may be
 * NULL. Present shards are never written. Corrupt shards must be marked
 * missing by the caller (check their digests first): a decode trusts its
 * input.
 *
 * Returns 0 (nothing missing is a successful no-op), SFT_ERR_ERASURES when
 * more than m shards are missing (nothing is written), SFT_ERR_INVAL (NULL
 * codec/array/needed pointer, len == 0, unknown flag, stray mask bit) or
 * SFT_ERR_NOMEM (cache miss could not allocate; nothing written). A cache hit
 * allocates nothing and inverts no matrix. */
int sft_fec_decode(struct sft_fec *fec, uint8_t *const shards[],
                   const struct sft_fec_mask *present, size_t len,
                   unsigned flags);

/* Copies the cache counters into |out| (neither may be NULL). */
void sft_fec_get_stats(const struct sft_fec *fec, struct sft_fec_stats *out);

#endif /* SFT_FEC_H */
