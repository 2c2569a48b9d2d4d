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

/* Streaming hasher. Caller-allocated; opaque contents. */
struct sft_hasher {
  int algo;
  _Alignas(64) uint8_t state[2048]; /* large enough for either algorithm */
};

/* SFT_ERR_INVAL for an unknown algorithm. */
int sft_hasher_init(struct sft_hasher *h, enum sft_hash_algo algo);
void sft_hasher_update(struct sft_hasher *h, const void *p, size_t n);
/* Writes the 32-byte digest; the hasher may be re-initialised after. */
void sft_hasher_final(struct sft_hasher *h, uint8_t out[SFT_HASH_LEN]);

/* One-shot digest of |n| bytes. SFT_ERR_INVAL for an unknown algorithm. */
int sft_hash(enum sft_hash_algo algo, const void *p, size_t n,
             uint8_t out[SFT_HASH_LEN]);

/* BLAKE3 one-shot, the common case. */
void sft_blake3(const void *p, size_t n, uint8_t out[SFT_HASH_LEN]);

/* The sft root over |n| chunk digests stored back to back in |digests|
 * (n * SFT_HASH_LEN bytes), computed with |algo|. n == 0 is the empty file.
 * See docs/internals/integrity.md for the exact tree. */
int sft_root(enum sft_hash_algo algo, const uint8_t *digests, size_t n,
             uint8_t out[SFT_HASH_LEN]);

/* Name ("blake3", "sha256") <-> algorithm. Unknown -> NULL / SFT_ERR_INVAL. */
const char *sft_hash_algo_name(enum sft_hash_algo algo);
int sft_hash_algo_parse(const char *name, enum sft_hash_algo *out);

/* Lower-case hex of |n| bytes into |out| (2n+1 bytes, NUL-terminated). */
void sft_hex(const uint8_t *p, size_t n, char *out);

#endif /* SFT_HASH_H */
