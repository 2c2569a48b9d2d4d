/*
 * File manifests: defaults, setters, verification and the versioned binary
 * encoding. Layout (version 1) in docs/internals/chunk.md.
 */
#include <string.h>

#include "sft/chunk.h"
#include "sft/wire.h"

_Static_assert(SFT_MAX_NAME < 16384, "name length varint is at most 2 bytes");
/* version, kind, flags, algo (4) + name varint (2) + name + size varint (8)
 * + mtime (8 + 4) + mode (2) + chunk_size (4) + chunk_count varint (4)
 * + k, m (2) + root (32) */
_Static_assert(4 + 2 + SFT_MAX_NAME + 8 + 12 + 2 + 4 + 4 + 2 + SFT_HASH_LEN <=
                   SFT_MANIFEST_ENC_MAX,
               "SFT_MANIFEST_ENC_MAX too small");
_Static_assert(SFT_MAX_CHUNKS < 1073741824u, "chunk count varint <= 4 bytes");

void sft_manifest_init(struct sft_manifest *m) {
  memset(m, 0, sizeof(*m));
  m->kind = SFT_FILE_REGULAR;
  m->hash_algo = SFT_HASH_BLAKE3;
  m->chunk_size = SFT_CHUNK_SIZE_DEFAULT;
  m->chunk_count = 0;
  m->stripe_k = 10;
  m->stripe_m = 3;
  m->mode = 0644;
}

int sft_manifest_set_name(struct sft_manifest *m, const char *name,
                          size_t len) {
  if (len > SFT_MAX_NAME)
    return SFT_ERR_TOO_LARGE;
  if (len == 0 || !name || memchr(name, '\0', len))
    return SFT_ERR_PATH;
  memcpy(m->name, name, len);
  m->name[len] = '\0';
  m->name_len = len;
  return 0;
}

int sft_manifest_set_geometry(struct sft_manifest *m, uint64_t size,
                              uint32_t chunk_size) {
  uint64_t n;
  if (size > SFT_MAX_FILE_SIZE)
    return SFT_ERR_TOO_LARGE;
  if (chunk_size < SFT_CHUNK_SIZE_MIN || chunk_size > SFT_CHUNK_SIZE_MAX)
    return SFT_ERR_RANGE;
  n = sft_chunk_count(size, chunk_size);
  if (n > SFT_MAX_CHUNKS)
    return SFT_ERR_TOO_LARGE;
  m->size = size;
  m->chunk_size = chunk_size;
  m->chunk_count = n;
  return 0;
}

void sft_manifest_set_root(struct sft_manifest *m,
                           const uint8_t root[SFT_HASH_LEN]) {
  memcpy(m->root, root, SFT_HASH_LEN);
  m->flags |= SFT_MANIFEST_HAS_ROOT;
}

static bool all_zero(const uint8_t *p, size_t n) {
  uint8_t acc = 0;
  for (size_t i = 0; i < n; i++)
    acc |= p[i];
  return acc == 0;
}

int sft_manifest_verify(const struct sft_manifest *m) {
  if (m->kind != SFT_FILE_REGULAR && m->kind != SFT_FILE_DIR)
    return SFT_ERR_MALFORMED;
  if (m->flags & ~(uint32_t)SFT_MANIFEST_FLAGS_KNOWN)
    return SFT_ERR_MALFORMED;
  if (m->name_len > SFT_MAX_NAME)
    return SFT_ERR_TOO_LARGE;
  if (m->name_len == 0 || memchr(m->name, '\0', m->name_len) ||
      m->name[m->name_len] != '\0')
    return SFT_ERR_PATH;
  if (m->hash_algo != SFT_HASH_BLAKE3 && m->hash_algo != SFT_HASH_SHA256)
    return SFT_ERR_UNSUPPORTED;
  if (m->size > SFT_MAX_FILE_SIZE)
    return SFT_ERR_TOO_LARGE;
  if (m->chunk_size < SFT_CHUNK_SIZE_MIN || m->chunk_size > SFT_CHUNK_SIZE_MAX)
    return SFT_ERR_RANGE;
  if (m->chunk_count > SFT_MAX_CHUNKS)
    return SFT_ERR_TOO_LARGE;
  if (m->chunk_count != sft_chunk_count(m->size, m->chunk_size))
    return SFT_ERR_MALFORMED;
  if (m->stripe_k == 0 || m->stripe_k > SFT_MAX_STRIPE ||
      m->stripe_m > SFT_MAX_STRIPE - m->stripe_k)
    return SFT_ERR_RANGE;
  if (m->mode & ~SFT_MODE_MASK)
    return SFT_ERR_RANGE;
  if (m->mtime_nsec >= 1000000000u)
    return SFT_ERR_RANGE;
  if (m->kind == SFT_FILE_DIR &&
      (m->size != 0 || (m->flags & SFT_MANIFEST_HAS_ROOT)))
    return SFT_ERR_MALFORMED;
  if (!(m->flags & SFT_MANIFEST_HAS_ROOT) && !all_zero(m->root, SFT_HASH_LEN))
    return SFT_ERR_MALFORMED;
  return 0;
}

static void put_manifest(struct sft_wr *w, const struct sft_manifest *m) {
  sft_wr_u8(w, SFT_MANIFEST_VERSION_CURRENT);
  sft_wr_u8(w, (uint8_t)m->kind);
  sft_wr_u8(w, (uint8_t)m->flags);
  sft_wr_u8(w, (uint8_t)m->hash_algo);
  sft_wr_varint(w, m->name_len);
  sft_wr_bytes(w, m->name, m->name_len);
  sft_wr_varint(w, m->size);
  sft_wr_u64(w, (uint64_t)m->mtime_sec);
  sft_wr_u32(w, m->mtime_nsec);
  sft_wr_u16(w, (uint16_t)m->mode);
  sft_wr_u32(w, m->chunk_size);
  sft_wr_varint(w, m->chunk_count);
  sft_wr_u8(w, (uint8_t)m->stripe_k);
  sft_wr_u8(w, (uint8_t)m->stripe_m);
  if (m->flags & SFT_MANIFEST_HAS_ROOT)
    sft_wr_bytes(w, m->root, SFT_HASH_LEN);
}

int sft_manifest_encode(uint8_t *buf, size_t cap, const struct sft_manifest *m,
                        size_t *out_len) {
  struct sft_wr w;
  int rv = sft_manifest_verify(m);
  if (rv)
    return rv;
  sft_wr_init(&w, NULL, 0);
  put_manifest(&w, m); /* a verified manifest always fits the limits */
  *out_len = w.off;
  if (!buf)
    return 0;
  if (w.off > cap)
    return SFT_ERR_TOO_LARGE;
  sft_wr_init(&w, buf, cap);
  put_manifest(&w, m);
  return w.err;
}

int sft_manifest_decode(const uint8_t *buf, size_t len,
                        struct sft_manifest *m) {
  struct sft_rd r;
  const uint8_t *name;
  uint8_t version, kind, algo;
  sft_rd_init(&r, buf, len);
  memset(m, 0, sizeof(*m));
  version = sft_rd_u8(&r);
  if (r.err)
    return r.err;
  if (version < SFT_MANIFEST_VERSION_MIN ||
      version > SFT_MANIFEST_VERSION_CURRENT)
    return SFT_ERR_VERSION;
  kind = sft_rd_u8(&r);
  m->flags = sft_rd_u8(&r);
  algo = sft_rd_u8(&r);
  if (r.err)
    return r.err;
  /* Reject unknown enum values now: casting them into the enum fields is
   * fine in C, but failing early gives the precise code. */
  if (kind != SFT_FILE_REGULAR && kind != SFT_FILE_DIR)
    return SFT_ERR_MALFORMED;
  if (m->flags & ~(uint32_t)SFT_MANIFEST_FLAGS_KNOWN)
    return SFT_ERR_MALFORMED;
  if (algo != SFT_HASH_BLAKE3 && algo != SFT_HASH_SHA256)
    return SFT_ERR_UNSUPPORTED;
  m->kind = (enum sft_file_kind)kind;
  m->hash_algo = (enum sft_hash_algo)algo;
  m->name_len = (size_t)sft_rd_varint_max(&r, SFT_MAX_NAME);
  name = sft_rd_bytes(&r, m->name_len);
  if (r.err)
    return r.err;
  memcpy(m->name, name, m->name_len);
  m->name[m->name_len] = '\0';
  m->size = sft_rd_varint_max(&r, SFT_MAX_FILE_SIZE);
  m->mtime_sec = (int64_t)sft_rd_u64(&r);
  m->mtime_nsec = sft_rd_u32(&r);
  m->mode = sft_rd_u16(&r);
  m->chunk_size = sft_rd_u32(&r);
  m->chunk_count = sft_rd_varint_max(&r, SFT_MAX_CHUNKS);
  m->stripe_k = sft_rd_u8(&r);
  m->stripe_m = sft_rd_u8(&r);
  if (m->flags & SFT_MANIFEST_HAS_ROOT)
    sft_rd_copy(&r, m->root, SFT_HASH_LEN);
  if (sft_rd_end(&r))
    return r.err;
  return sft_manifest_verify(m);
}

bool sft_manifest_equal(const struct sft_manifest *a,
                        const struct sft_manifest *b) {
  return a->kind == b->kind && a->flags == b->flags &&
         a->hash_algo == b->hash_algo && a->size == b->size &&
         a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec &&
         a->mode == b->mode && a->chunk_size == b->chunk_size &&
         a->chunk_count == b->chunk_count && a->stripe_k == b->stripe_k &&
         a->stripe_m == b->stripe_m &&
         memcmp(a->root, b->root, SFT_HASH_LEN) == 0 &&
         a->name_len == b->name_len &&
         memcmp(a->name, b->name, a->name_len) == 0;
}
