/*
 * Bounded binary cursors shared by every codec in libsft (wire messages,
 * manifests, persisted records).
 *
 * Both cursors carry a sticky error: after the first failure every further
 * call is a no-op and `err` keeps the first code, so a decoder reads all its
 * fields and checks `err` once. A reader never reads past `len`; a writer
 * never writes past `cap`. A writer with `p == NULL` only counts bytes, which
 * gives the encoded size without a buffer.
 *
 * Integers are big-endian. Varints are QUIC's (RFC 9000 §16): 1, 2, 4 or 8
 * bytes, values up to 2^62-1; the decoder rejects non-minimal encodings so
 * that every value has exactly one encoding (decode(encode(x)) == x and
 * encode(decode(b)) == b).
 */
#ifndef SFT_WIRE_H
#define SFT_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sft/err.h"

#define SFT_VARINT_MAX ((uint64_t)0x3fffffffffffffffULL)

struct sft_rd {
  const uint8_t *p; /* input, borrowed */
  size_t len;       /* bytes in p */
  size_t off;       /* next byte to read */
  int err;          /* 0, or the first error (sticky) */
};

struct sft_wr {
  uint8_t *p; /* output, or NULL to count only */
  size_t cap; /* capacity of p (ignored when p is NULL) */
  size_t off; /* bytes written (or counted) so far */
  int err;    /* 0, or the first error (sticky) */
};

static inline void sft_rd_init(struct sft_rd *r, const void *p, size_t len) {
  r->p = (const uint8_t *)p;
  r->len = len;
  r->off = 0;
  r->err = 0;
}

static inline size_t sft_rd_left(const struct sft_rd *r) {
  return r->err ? 0 : r->len - r->off;
}

static inline void sft_rd_fail(struct sft_rd *r, int err) {
  if (!r->err)
    r->err = err;
}

/* Borrow |n| bytes; NULL (and SFT_ERR_TRUNCATED) when fewer remain. */
static inline const uint8_t *sft_rd_bytes(struct sft_rd *r, size_t n) {
  const uint8_t *q;
  if (r->err)
    return NULL;
  if (n > r->len - r->off) {
    r->err = SFT_ERR_TRUNCATED;
    return NULL;
  }
  q = r->p + r->off;
  r->off += n;
  return q;
}

static inline void sft_rd_copy(struct sft_rd *r, void *dst, size_t n) {
  const uint8_t *q = sft_rd_bytes(r, n);
  if (q)
    memcpy(dst, q, n);
  else
    memset(dst, 0, n);
}

static inline uint64_t sft_rd_uint(struct sft_rd *r, size_t n) {
  const uint8_t *q = sft_rd_bytes(r, n);
  uint64_t v = 0;
  size_t i;
  if (!q)
    return 0;
  for (i = 0; i < n; i++)
    v = (v << 8) | q[i];
  return v;
}

static inline uint8_t sft_rd_u8(struct sft_rd *r) {
  return (uint8_t)sft_rd_uint(r, 1);
}
static inline uint16_t sft_rd_u16(struct sft_rd *r) {
  return (uint16_t)sft_rd_uint(r, 2);
}
static inline uint32_t sft_rd_u32(struct sft_rd *r) {
  return (uint32_t)sft_rd_uint(r, 4);
}
static inline uint64_t sft_rd_u64(struct sft_rd *r) {
  return sft_rd_uint(r, 8);
}

static inline uint64_t sft_rd_varint(struct sft_rd *r) {
  const uint8_t *q;
  size_t n;
  uint64_t v;
  if (r->err)
    return 0;
  if (r->off >= r->len) {
    r->err = SFT_ERR_TRUNCATED;
    return 0;
  }
  n = (size_t)1 << (r->p[r->off] >> 6);
  q = sft_rd_bytes(r, n);
  if (!q)
    return 0;
  v = q[0] & 0x3f;
  for (size_t i = 1; i < n; i++)
    v = (v << 8) | q[i];
  /* Reject non-minimal encodings: one value, one encoding. */
  if ((n == 2 && v < 64) || (n == 4 && v < 16384) ||
      (n == 8 && v < 1073741824)) {
    r->err = SFT_ERR_MALFORMED;
    return 0;
  }
  return v;
}

/* A varint that must not exceed |max|; SFT_ERR_TOO_LARGE otherwise. */
static inline uint64_t sft_rd_varint_max(struct sft_rd *r, uint64_t max) {
  uint64_t v = sft_rd_varint(r);
  if (!r->err && v > max) {
    r->err = SFT_ERR_TOO_LARGE;
    return 0;
  }
  return v;
}

/* SFT_ERR_MALFORMED if bytes remain: for messages that must be consumed
 * exactly. Returns the cursor's error. */
static inline int sft_rd_end(struct sft_rd *r) {
  if (!r->err && r->off != r->len)
    r->err = SFT_ERR_MALFORMED;
  return r->err;
}

static inline void sft_wr_init(struct sft_wr *w, void *p, size_t cap) {
  w->p = (uint8_t *)p;
  w->cap = p ? cap : 0;
  w->off = 0;
  w->err = 0;
}

/* Reserve |n| bytes; returns where to write them, or NULL when counting only
 * or on overflow (then err = SFT_ERR_TOO_LARGE). */
static inline uint8_t *sft_wr_reserve(struct sft_wr *w, size_t n) {
  uint8_t *q;
  if (w->err)
    return NULL;
  if (!w->p) {
    w->off += n;
    return NULL;
  }
  if (n > w->cap - w->off) {
    w->err = SFT_ERR_TOO_LARGE;
    return NULL;
  }
  q = w->p + w->off;
  w->off += n;
  return q;
}

static inline void sft_wr_bytes(struct sft_wr *w, const void *src, size_t n) {
  uint8_t *q = sft_wr_reserve(w, n);
  if (q && n)
    memcpy(q, src, n);
}

static inline void sft_wr_uint(struct sft_wr *w, uint64_t v, size_t n) {
  uint8_t *q = sft_wr_reserve(w, n);
  if (!q)
    return;
  for (size_t i = n; i > 0; i--) {
    q[i - 1] = (uint8_t)v;
    v >>= 8;
  }
}

static inline void sft_wr_u8(struct sft_wr *w, uint8_t v) { sft_wr_uint(w, v, 1); }
static inline void sft_wr_u16(struct sft_wr *w, uint16_t v) { sft_wr_uint(w, v, 2); }
static inline void sft_wr_u32(struct sft_wr *w, uint32_t v) { sft_wr_uint(w, v, 4); }
static inline void sft_wr_u64(struct sft_wr *w, uint64_t v) { sft_wr_uint(w, v, 8); }

static inline size_t sft_varint_len(uint64_t v) {
  return v < 64 ? 1 : v < 16384 ? 2 : v < 1073741824 ? 4 : 8;
}

/* Values above SFT_VARINT_MAX set SFT_ERR_RANGE. */
static inline void sft_wr_varint(struct sft_wr *w, uint64_t v) {
  size_t n;
  uint8_t *q;
  if (w->err)
    return;
  if (v > SFT_VARINT_MAX) {
    w->err = SFT_ERR_RANGE;
    return;
  }
  n = sft_varint_len(v);
  sft_wr_uint(w, v, n);
  q = w->p && !w->err ? w->p + w->off - n : NULL;
  if (q)
    q[0] |= (uint8_t)((n == 1 ? 0 : n == 2 ? 1 : n == 4 ? 2 : 3) << 6);
}

#endif /* SFT_WIRE_H */
