/*
 * lib/hash: BLAKE3 (the official C code) and SHA-256 (nettle) behind one
 * streaming interface, plus the sft root (docs/internals/integrity.md).
 * The only file in sft that includes <blake3.h> or <nettle/sha2.h>.
 */
#include <stdalign.h>
#include <string.h>

#include <blake3.h>
#include <nettle/sha2.h>

#include "sft/hash.h"

#define HASHER_STATE_SIZE sizeof(((struct sft_hasher *)0)->state)

_Static_assert(sizeof(blake3_hasher) <= HASHER_STATE_SIZE,
               "struct sft_hasher.state too small for blake3_hasher");
_Static_assert(sizeof(struct sha256_ctx) <= HASHER_STATE_SIZE,
               "struct sft_hasher.state too small for sha256_ctx");
_Static_assert(alignof(blake3_hasher) <= 64 && alignof(struct sha256_ctx) <= 64,
               "struct sft_hasher.state under-aligned");
_Static_assert(BLAKE3_OUT_LEN == SFT_HASH_LEN &&
                   SHA256_DIGEST_SIZE == SFT_HASH_LEN,
               "every digest is SFT_HASH_LEN bytes");

/* Domain-separation tags of the sft root (integrity.md). */
enum { ROOT_TAG_LEAF = 0x00, ROOT_TAG_NODE = 0x01, ROOT_TAG_ROOT = 0x02 };

static blake3_hasher *as_blake3(struct sft_hasher *h) {
  return (blake3_hasher *)(void *)h->state;
}

static struct sha256_ctx *as_sha256(struct sft_hasher *h) {
  return (struct sha256_ctx *)(void *)h->state;
}

int sft_hasher_init(struct sft_hasher *h, enum sft_hash_algo algo) {
  switch (algo) {
  case SFT_HASH_BLAKE3:
    h->algo = SFT_HASH_BLAKE3;
    blake3_hasher_init(as_blake3(h));
    return 0;
  case SFT_HASH_SHA256:
    h->algo = SFT_HASH_SHA256;
    sha256_init(as_sha256(h));
    return 0;
  }
  h->algo = 0;
  return SFT_ERR_INVAL;
}

void sft_hasher_update(struct sft_hasher *h, const void *p, size_t n) {
  if (n == 0)
    return; /* p may be NULL */
  switch (h->algo) {
  case SFT_HASH_BLAKE3:
    blake3_hasher_update(as_blake3(h), p, n);
    break;
  case SFT_HASH_SHA256:
    sha256_update(as_sha256(h), n, p);
    break;
  default:
    break;
  }
}

void sft_hasher_final(struct sft_hasher *h, uint8_t out[SFT_HASH_LEN]) {
  switch (h->algo) {
  case SFT_HASH_BLAKE3:
    blake3_hasher_finalize(as_blake3(h), out, SFT_HASH_LEN);
    break;
  case SFT_HASH_SHA256:
    sha256_digest(as_sha256(h), SFT_HASH_LEN, out);
    break;
  default:
    memset(out, 0, SFT_HASH_LEN);
    break;
  }
}

int sft_hash(enum sft_hash_algo algo, const void *p, size_t n,
             uint8_t out[SFT_HASH_LEN]) {
  struct sft_hasher h;
  int rc = sft_hasher_init(&h, algo);
  if (rc != 0)
    return rc;
  sft_hasher_update(&h, p, n);
  sft_hasher_final(&h, out);
  return 0;
}

void sft_blake3(const void *p, size_t n, uint8_t out[SFT_HASH_LEN]) {
  blake3_hasher h;
  blake3_hasher_init(&h);
  if (n)
    blake3_hasher_update(&h, p, n);
  blake3_hasher_finalize(&h, out, SFT_HASH_LEN);
}

/* ---- the sft root ------------------------------------------------------ */

/* H(tag || a || b) with |b| optional (NULL): the leaf and node functions. */
static void tagged(int algo, uint8_t tag, const uint8_t *a, size_t alen,
                   const uint8_t *b, size_t blen, uint8_t out[SFT_HASH_LEN]) {
  struct sft_hasher h;
  (void)sft_hasher_init(&h, (enum sft_hash_algo)algo);
  sft_hasher_update(&h, &tag, 1);
  sft_hasher_update(&h, a, alen);
  sft_hasher_update(&h, b, blen);
  sft_hasher_final(&h, out);
}

int sft_root_init(struct sft_root_ctx *r, enum sft_hash_algo algo) {
  if (algo != SFT_HASH_BLAKE3 && algo != SFT_HASH_SHA256) {
    r->algo = 0;
    return SFT_ERR_INVAL;
  }
  r->algo = algo;
  r->count = 0;
  r->depth = 0;
  return 0;
}

/* The stack holds the roots of the perfect subtrees completed so far, left to
 * right, of strictly decreasing size: one per set bit of |count|. Pushing
 * leaf number count+1 merges as many times as count+1 has trailing zeros.
 * With count < 2^63 the stack never holds more than 64 entries. */
int sft_root_push(struct sft_root_ctx *r, const uint8_t digest[SFT_HASH_LEN]) {
  uint8_t(*st)[SFT_HASH_LEN] = r->stack;
  if (r->algo != SFT_HASH_BLAKE3 && r->algo != SFT_HASH_SHA256)
    return SFT_ERR_INVAL;
  if (r->count >= SFT_ROOT_MAX_LEAVES)
    return SFT_ERR_TOO_LARGE;
  tagged(r->algo, ROOT_TAG_LEAF, digest, SFT_HASH_LEN, NULL, 0, st[r->depth]);
  r->depth++;
  r->count++;
  for (uint64_t c = r->count; (c & 1) == 0; c >>= 1) {
    r->depth--;
    tagged(r->algo, ROOT_TAG_NODE, st[r->depth - 1], SFT_HASH_LEN, st[r->depth],
           SFT_HASH_LEN, st[r->depth - 1]);
  }
  return 0;
}

int sft_root_final(struct sft_root_ctx *r, uint8_t out[SFT_HASH_LEN]) {
  uint8_t(*st)[SFT_HASH_LEN] = r->stack;
  uint8_t msg[8 + SFT_HASH_LEN];
  if (r->algo != SFT_HASH_BLAKE3 && r->algo != SFT_HASH_SHA256) {
    memset(out, 0, SFT_HASH_LEN);
    return SFT_ERR_INVAL;
  }
  /* Fold the pending subtrees right to left: a smaller subtree on the right
   * is promoted unchanged until it meets its left neighbour. */
  while (r->depth > 1) {
    r->depth--;
    tagged(r->algo, ROOT_TAG_NODE, st[r->depth - 1], SFT_HASH_LEN, st[r->depth],
           SFT_HASH_LEN, st[r->depth - 1]);
  }
  /* root = H(0x02 || le64(count) [|| top]) */
  for (int i = 0; i < 8; i++)
    msg[i] = (uint8_t)(r->count >> (8 * i));
  if (r->count)
    memcpy(msg + 8, st[0], SFT_HASH_LEN);
  tagged(r->algo, ROOT_TAG_ROOT, msg, r->count ? sizeof(msg) : 8, NULL, 0, out);
  r->depth = 0;
  r->algo = 0; /* spent */
  return 0;
}

int sft_root(enum sft_hash_algo algo, const uint8_t *digests, size_t n,
             uint8_t out[SFT_HASH_LEN]) {
  struct sft_root_ctx r;
  int rc;
  if (n && !digests)
    return SFT_ERR_INVAL;
  rc = sft_root_init(&r, algo);
  if (rc != 0)
    return rc;
  for (size_t i = 0; i < n; i++) {
    rc = sft_root_push(&r, digests + i * SFT_HASH_LEN);
    if (rc != 0)
      return rc;
  }
  return sft_root_final(&r, out);
}

/* ---- names and hex ----------------------------------------------------- */

const char *sft_hash_algo_name(enum sft_hash_algo algo) {
  switch (algo) {
  case SFT_HASH_BLAKE3:
    return "blake3";
  case SFT_HASH_SHA256:
    return "sha256";
  }
  return NULL;
}

int sft_hash_algo_parse(const char *name, enum sft_hash_algo *out) {
  if (name && !strcmp(name, "blake3")) {
    *out = SFT_HASH_BLAKE3;
    return 0;
  }
  if (name && !strcmp(name, "sha256")) {
    *out = SFT_HASH_SHA256;
    return 0;
  }
  return SFT_ERR_INVAL;
}

void sft_hex(const uint8_t *p, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[p[i] >> 4];
    out[2 * i + 1] = digits[p[i] & 15];
  }
  out[2 * n] = '\0';
}
