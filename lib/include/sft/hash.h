/*
 * Hashing for sft: BLAKE3 (default) and SHA-256 (the seed's second checksum
 * type), chunk digests, streaming file digests and the sft root, a Merkle
 * tree over chunk digests defined in docs/internals/integrity.md.
 *
 * Pure computation: no allocation unless stated, no I/O. The one library
 * behind each algorithm (BLAKE3's official C code, nettle) is confined to
 * lib/hash.
 */
#ifndef SFT_HASH_H
#define SFT_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "sft/err.h"

#define SFT_HASH_LEN 32 /* every digest sft stores or sends is 32 bytes */

enum sft_hash_algo {
  SFT_HASH_BLAKE3 = 1,
  SFT_HASH_SHA256 = 2,
};

/* Streaming hasher. Caller-allocated (about 2 KiB, fine on the stack);
 * opaque contents. hash.c asserts at compile time that |state| holds either
 * algorithm's context. */
struct sft_hasher {
  int algo;
  _Alignas(64) uint8_t state[2048]; /* large enough for either algorithm */
};

/* SFT_ERR_INVAL for an unknown algorithm (the hasher is then unusable:
 * update ignores input and final writes 32 zero bytes). */
int sft_hasher_init(struct sft_hasher *h, enum sft_hash_algo algo);
/* Adds |n| bytes (|p| may be NULL when n == 0). BLAKE3 uses its SIMD paths
 * only on large updates: feed it 16 KiB or more at a time where possible. */
void sft_hasher_update(struct sft_hasher *h, const void *p, size_t n);
/* Writes the 32-byte digest; the hasher must be re-initialised before it is
 * used again. */
void sft_hasher_final(struct sft_hasher *h, uint8_t out[SFT_HASH_LEN]);

/* One-shot digest of |n| bytes. SFT_ERR_INVAL for an unknown algorithm. */
int sft_hash(enum sft_hash_algo algo, const void *p, size_t n,
             uint8_t out[SFT_HASH_LEN]);

/* BLAKE3 one-shot, the common case (same as sft_hash(SFT_HASH_BLAKE3...)). */
void sft_blake3(const void *p, size_t n, uint8_t out[SFT_HASH_LEN]);

/* The sft root over |n| chunk digests stored back to back in |digests|
 * (n * SFT_HASH_LEN bytes), computed with |algo|. n == 0 is the empty file
 * (|digests| may then be NULL). See docs/internals/integrity.md for the exact
 * tree: domain-separated leaves and nodes, odd subtrees promoted, the chunk
 * count bound into the final hash. O(n) time, O(log n) memory (on the stack,
 * no allocation). SFT_ERR_INVAL for an unknown algorithm or NULL |digests|
 * with n > 0. */
int sft_root(enum sft_hash_algo algo, const uint8_t *digests, size_t n,
             uint8_t out[SFT_HASH_LEN]);

/* Incremental form of sft_root, for digests that arrive one at a time in
 * chunk order: init, push each chunk digest, final. Same result as sft_root
 * over the same digests. Caller-allocated (about 2 KiB), no allocation. */
#define SFT_ROOT_MAX_LEAVES (UINT64_MAX >> 1)
struct sft_root_ctx {
  int algo;
  unsigned depth;                  /* entries used in |stack| */
  uint64_t count;                  /* digests pushed */
  uint8_t stack[64][SFT_HASH_LEN]; /* roots of completed perfect subtrees */
};

/* SFT_ERR_INVAL for an unknown algorithm (the context is then unusable). */
int sft_root_init(struct sft_root_ctx *r, enum sft_hash_algo algo);
/* Adds the digest of the next chunk. SFT_ERR_INVAL if sft_root_init failed
 * or |r| is spent, SFT_ERR_TOO_LARGE past SFT_ROOT_MAX_LEAVES digests. */
int sft_root_push(struct sft_root_ctx *r, const uint8_t digest[SFT_HASH_LEN]);
/* Writes the root of the digests pushed so far and spends |r| (call
 * sft_root_init before reusing it). On an unusable context writes 32 zero
 * bytes and returns SFT_ERR_INVAL. */
int sft_root_final(struct sft_root_ctx *r, uint8_t out[SFT_HASH_LEN]);

/* Name ("blake3", "sha256", exact lower case) <-> algorithm. Unknown -> NULL
 * / SFT_ERR_INVAL (*out is then left untouched). */
const char *sft_hash_algo_name(enum sft_hash_algo algo);
int sft_hash_algo_parse(const char *name, enum sft_hash_algo *out);

/* Lower-case hex of |n| bytes into |out| (2n+1 bytes, NUL-terminated). */
void sft_hex(const uint8_t *p, size_t n, char *out);

#endif /* SFT_HASH_H */
