/*
 * File manifests and the adaptive chunk/parity policies (lib/chunk).
 *
 * A manifest describes one file (or directory) of a session: its relative
 * name, size, mtime, permission bits, how it is cut into chunks, the
 * Reed-Solomon stripe geometry, the hash algorithm and (once known) the sft
 * root. It travels inside OFFER (sft/proto.h) and may be persisted as is.
 *
 * Pure code: no allocation, no I/O, no global state. See
 * docs/internals/chunk.md for the byte layout and the policy rationale.
 */
#ifndef SFT_CHUNK_H
#define SFT_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sft/err.h"
#include "sft/hash.h"
#include "sft/limits.h"

/* ---- manifest ---------------------------------------------------------- */

/* Encoding versions. The encoder always writes CURRENT; the decoder accepts
 * MIN..CURRENT and returns SFT_ERR_VERSION for anything else. A version's
 * layout is never changed once released: a new layout is a new number. */
#define SFT_MANIFEST_VERSION_MIN 1
#define SFT_MANIFEST_VERSION_CURRENT 1

/* Upper bound of an encoded manifest (name of SFT_MAX_NAME bytes, every
 * varint at its widest, root present). Size a buffer with this or ask
 * sft_manifest_encode() with a NULL buffer for the exact size. */
#define SFT_MANIFEST_ENC_MAX (SFT_MAX_NAME + 96)

enum sft_file_kind {
  SFT_FILE_REGULAR = 0, /* bytes cut into chunks */
  SFT_FILE_DIR = 1,     /* a directory: size 0, no chunks, no root */
};

/* flags */
#define SFT_MANIFEST_HAS_ROOT 0x01u /* root[] is valid (else all zero) */
#define SFT_MANIFEST_FLAGS_KNOWN SFT_MANIFEST_HAS_ROOT

#define SFT_MODE_MASK 07777u /* permission bits kept (incl. suid/sgid/sticky) */

/*
 * The manifest is a plain value: the name is stored INLINE (NUL-terminated,
 * name_len bytes without the NUL), so a manifest can be copied with `=` and
 * owns nothing. It is about 4.2 KiB: keep one per active file, not one per
 * file of a million-file session.
 *
 * A valid manifest (sft_manifest_verify() == 0) satisfies:
 *   1 <= name_len <= SFT_MAX_NAME, no NUL in name[0..name_len), name[name_len]=0
 *   size <= SFT_MAX_FILE_SIZE
 *   SFT_CHUNK_SIZE_MIN <= chunk_size <= SFT_CHUNK_SIZE_MAX
 *   chunk_count == sft_chunk_count(size, chunk_size) <= SFT_MAX_CHUNKS
 *   1 <= stripe_k, stripe_k + stripe_m <= SFT_MAX_STRIPE
 *   hash_algo is SFT_HASH_BLAKE3 or SFT_HASH_SHA256
 *   mode <= 07777, mtime_nsec < 1e9, flags only SFT_MANIFEST_FLAGS_KNOWN
 *   root all zero unless HAS_ROOT
 *   kind DIR: size == 0, chunk_count == 0, HAS_ROOT clear
 * Directories still carry a valid chunk_size/k/m/hash_algo (any valid value;
 * sft_manifest_init() sets defaults) so that every field has one meaning.
 */
struct sft_manifest {
  enum sft_file_kind kind;
  uint32_t flags;                 /* SFT_MANIFEST_* */
  enum sft_hash_algo hash_algo;   /* chunk digests and root */
  uint64_t size;                  /* bytes */
  int64_t mtime_sec;              /* seconds since the epoch, may be < 0 */
  uint32_t mtime_nsec;            /* 0..999999999 */
  uint32_t mode;                  /* permission bits, & SFT_MODE_MASK */
  uint32_t chunk_size;            /* bytes per chunk (last may be short) */
  uint64_t chunk_count;           /* sft_chunk_count(size, chunk_size) */
  uint32_t stripe_k;              /* data chunks per stripe */
  uint32_t stripe_m;              /* parity chunks per stripe */
  uint8_t root[SFT_HASH_LEN];     /* sft root; zero unless HAS_ROOT */
  size_t name_len;                /* bytes in name, without the NUL */
  char name[SFT_MAX_NAME + 1];    /* relative path, UTF-8, NUL-terminated */
};

/* Defaults for a fresh manifest: regular file, empty name (so not yet
 * valid), size 0, chunk_size SFT_CHUNK_SIZE_DEFAULT, k=10 m=3, BLAKE3,
 * mode 0644, no root. Never fails. */
void sft_manifest_init(struct sft_manifest *m);

/* Copies |len| bytes of |name| into m->name and NUL-terminates it.
 * Errors: SFT_ERR_PATH (len 0 or a NUL inside), SFT_ERR_TOO_LARGE
 * (len > SFT_MAX_NAME). On error m is unchanged. Does not judge path
 * safety ("..", absolute paths): that is the path-safety module's job. */
int sft_manifest_set_name(struct sft_manifest *m, const char *name,
                          size_t len);

/* Sets size, chunk_size and the derived chunk_count.
 * Errors: SFT_ERR_TOO_LARGE (size > SFT_MAX_FILE_SIZE, or more than
 * SFT_MAX_CHUNKS chunks), SFT_ERR_RANGE (chunk_size out of bounds).
 * On error m is unchanged. */
int sft_manifest_set_geometry(struct sft_manifest *m, uint64_t size,
                              uint32_t chunk_size);

/* Sets the root and the HAS_ROOT flag. */
void sft_manifest_set_root(struct sft_manifest *m,
                           const uint8_t root[SFT_HASH_LEN]);

/* Checks every invariant listed above. Returns 0 or, for the first broken
 * rule in this order:
 *   SFT_ERR_MALFORMED   unknown kind or flags; DIR with size/chunks/root;
 *                       chunk_count != sft_chunk_count(size, chunk_size);
 *                       root non-zero without HAS_ROOT
 *   SFT_ERR_PATH        empty name, NUL inside, or name[name_len] != 0
 *   SFT_ERR_TOO_LARGE   name_len > SFT_MAX_NAME, size > SFT_MAX_FILE_SIZE,
 *                       chunk_count > SFT_MAX_CHUNKS
 *   SFT_ERR_RANGE       chunk_size, stripe k/m, mode, mtime_nsec
 *   SFT_ERR_UNSUPPORTED unknown hash algorithm
 * (The precise order is in chunk.c; tests pin each code.) */
int sft_manifest_verify(const struct sft_manifest *m);

/* Encodes |m| (which must verify; else that error) at version CURRENT.
 * |buf| NULL: only *out_len is set to the exact encoded size.
 * Otherwise writes at most |cap| bytes; SFT_ERR_TOO_LARGE if cap is short
 * (*out_len is then still the size needed). Canonical: one manifest, one
 * encoding. */
int sft_manifest_encode(uint8_t *buf, size_t cap, const struct sft_manifest *m,
                        size_t *out_len);

/* Decodes exactly |len| bytes into |m| (fully overwritten; on error its
 * contents are unspecified but safe to pass to verify). Never reads past
 * |len|; lengths are checked before use; the result is verified.
 * Errors: SFT_ERR_TRUNCATED (input ends early), SFT_ERR_VERSION (version
 * byte outside MIN..CURRENT), SFT_ERR_MALFORMED (trailing bytes, unknown
 * kind/flags, non-minimal varint, inconsistent fields), SFT_ERR_TOO_LARGE
 * (name, size or chunk count above its bound), SFT_ERR_RANGE,
 * SFT_ERR_PATH, SFT_ERR_UNSUPPORTED (as sft_manifest_verify). */
int sft_manifest_decode(const uint8_t *buf, size_t len,
                        struct sft_manifest *m);

/* Field-by-field equality (name compared over name_len). */
bool sft_manifest_equal(const struct sft_manifest *a,
                        const struct sft_manifest *b);

/* ---- stripe geometry --------------------------------------------------- */

/* Stripe s holds data chunks [s*k, min((s+1)*k, chunk_count)); the last
 * stripe may be short. k must be >= 1. */
static inline uint64_t sft_stripe_count(uint64_t chunk_count, uint32_t k) {
  return chunk_count / k + (chunk_count % k != 0);
}
static inline uint64_t sft_stripe_of(uint64_t chunk_index, uint32_t k) {
  return chunk_index / k;
}
/* Data chunks in stripe s (0 past the end). */
static inline uint32_t sft_stripe_len(uint64_t chunk_count, uint32_t k,
                                      uint64_t s) {
  uint64_t first = s * k;
  if (first >= chunk_count)
    return 0;
  return chunk_count - first < k ? (uint32_t)(chunk_count - first) : k;
}

/* ---- adaptive policies (pure functions) -------------------------------- */

/* Loss is given as an integer in parts per million (0 = no loss,
 * 1000000 = everything lost), so that boundaries are exact. */
#define SFT_PPM 1000000u

/* Seed table, strict '>' comparisons:
 *   rtt_ns > 200 ms  or loss_ppm > 100000 (10 %) -> 64 KiB
 *   rtt_ns > 100 ms  or loss_ppm >  50000 (5 %)  -> 256 KiB
 *   otherwise                                    -> 1 MiB
 * loss_ppm above SFT_PPM is treated as SFT_PPM. Never fails. */
#define SFT_POLICY_RTT_HIGH_NS 200000000ull
#define SFT_POLICY_RTT_MID_NS 100000000ull
#define SFT_POLICY_LOSS_HIGH_PPM 100000u
#define SFT_POLICY_LOSS_MID_PPM 50000u
uint32_t sft_policy_chunk_size(uint64_t rtt_ns, uint32_t loss_ppm);

/* Parity policy. The loss used is p' = p * (1 + 1/4) (a 25 % safety margin
 * for measurement noise; zero stays zero), capped at 1. The result m is the
 * smallest m >= 0 such that P[Binomial(k+m, p') > m] < 1e-4 (i.e. the
 * stripe fails to decode with probability below the target), capped at
 * SFT_POLICY_PARITY_CAP(k) = min(k, SFT_MAX_STRIPE - k) (parity never
 * exceeds the data; NEED requests cover the rest). m == 0 at zero loss.
 * Monotone non-decreasing in loss_ppm for a fixed k.
 * Errors: SFT_ERR_RANGE (k == 0, k > SFT_MAX_STRIPE, loss_ppm > SFT_PPM).
 * *m_out is set only on success. */
#define SFT_POLICY_PARITY_TARGET 1e-4
#define SFT_POLICY_PARITY_MARGIN 0.25
#define SFT_POLICY_PARITY_CAP(k)                                              \
  ((k) < SFT_MAX_STRIPE - (k) ? (k) : SFT_MAX_STRIPE - (k))
int sft_policy_parity(uint32_t k, uint32_t loss_ppm, uint32_t *m_out);

#endif /* SFT_CHUNK_H */
