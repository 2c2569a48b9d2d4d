/* Tests of lib/chunk: manifest verification and encoding, stripe geometry,
 * the chunk-size and parity policies. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sft/chunk.h"
#include "sft/wire.h"

/* ---- helpers ---------------------------------------------------------- */

static void make_file(struct sft_manifest *m, const char *name, uint64_t size,
                      uint32_t chunk_size) {
  sft_manifest_init(m);
  assert_int_equal(sft_manifest_set_name(m, name, strlen(name)), 0);
  assert_int_equal(sft_manifest_set_geometry(m, size, chunk_size), 0);
}

/* Encode, decode, compare; also size query and a short buffer. */
static void roundtrip(const struct sft_manifest *m) {
  static uint8_t buf[SFT_MANIFEST_ENC_MAX];
  static struct sft_manifest back;
  size_t n = 0, n2 = 0;
  assert_int_equal(sft_manifest_encode(NULL, 0, m, &n), 0);
  assert_true(n > 0 && n <= SFT_MANIFEST_ENC_MAX);
  assert_int_equal(sft_manifest_encode(buf, sizeof(buf), m, &n2), 0);
  assert_int_equal(n, n2);
  assert_int_equal(sft_manifest_decode(buf, n, &back), 0);
  assert_true(sft_manifest_equal(m, &back));
  assert_int_equal(back.name[back.name_len], '\0');
  /* one byte short of the size */
  assert_int_equal(sft_manifest_encode(buf, n - 1, m, &n2), SFT_ERR_TOO_LARGE);
  assert_int_equal(n2, n);
}

/* A raw manifest writer that bypasses verification, to forge bad input. */
struct raw {
  uint64_t version, kind, flags, algo, name_len;
  const char *name;
  uint64_t size;
  int64_t mtime_sec;
  uint64_t nsec, mode, chunk_size, chunk_count, k, m;
  int root; /* write 32 bytes of root */
};

static void raw_default(struct raw *r) {
  memset(r, 0, sizeof(*r));
  r->version = 1;
  r->algo = SFT_HASH_BLAKE3;
  r->name = "dir/file.bin";
  r->name_len = strlen(r->name);
  r->size = 10000;
  r->mtime_sec = 1700000000;
  r->nsec = 5;
  r->mode = 0644;
  r->chunk_size = 4096;
  r->chunk_count = 3;
  r->k = 10;
  r->m = 3;
}

static size_t raw_encode(const struct raw *r, uint8_t *buf, size_t cap) {
  struct sft_wr w;
  sft_wr_init(&w, buf, cap);
  sft_wr_u8(&w, (uint8_t)r->version);
  sft_wr_u8(&w, (uint8_t)r->kind);
  sft_wr_u8(&w, (uint8_t)r->flags);
  sft_wr_u8(&w, (uint8_t)r->algo);
  sft_wr_varint(&w, r->name_len);
  sft_wr_bytes(&w, r->name, strlen(r->name));
  sft_wr_varint(&w, r->size);
  sft_wr_u64(&w, (uint64_t)r->mtime_sec);
  sft_wr_u32(&w, (uint32_t)r->nsec);
  sft_wr_u16(&w, (uint16_t)r->mode);
  sft_wr_u32(&w, (uint32_t)r->chunk_size);
  sft_wr_varint(&w, r->chunk_count);
  sft_wr_u8(&w, (uint8_t)r->k);
  sft_wr_u8(&w, (uint8_t)r->m);
  if (r->root)
    for (int i = 0; i < 32; i++)
      sft_wr_u8(&w, (uint8_t)(i + 1));
  assert_int_equal(w.err, 0);
  return w.off;
}

static int raw_decode(const struct raw *r) {
  static uint8_t buf[2 * SFT_MANIFEST_ENC_MAX];
  static struct sft_manifest m;
  size_t n = raw_encode(r, buf, sizeof(buf));
  return sft_manifest_decode(buf, n, &m);
}

/* ---- manifest --------------------------------------------------------- */

static void test_manifest_defaults_and_setters(void **state) {
  static struct sft_manifest m;
  static char big[SFT_MAX_NAME + 2];
  (void)state;
  sft_manifest_init(&m);
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_PATH); /* no name yet */
  assert_int_equal(sft_manifest_set_name(&m, "", 0), SFT_ERR_PATH);
  assert_int_equal(sft_manifest_set_name(&m, "a\0b", 3), SFT_ERR_PATH);
  memset(big, 'x', sizeof(big));
  assert_int_equal(sft_manifest_set_name(&m, big, SFT_MAX_NAME + 1),
                   SFT_ERR_TOO_LARGE);
  assert_int_equal(m.name_len, 0); /* unchanged on error */
  assert_int_equal(sft_manifest_set_name(&m, big, SFT_MAX_NAME), 0);
  assert_int_equal(m.name_len, SFT_MAX_NAME);
  assert_int_equal(m.name[SFT_MAX_NAME], '\0');
  assert_int_equal(sft_manifest_verify(&m), 0);
  assert_int_equal(m.chunk_size, SFT_CHUNK_SIZE_DEFAULT);
  assert_int_equal(m.stripe_k, 10);
  assert_int_equal(m.stripe_m, 3);
  assert_int_equal(m.hash_algo, SFT_HASH_BLAKE3);

  assert_int_equal(sft_manifest_set_geometry(&m, SFT_MAX_FILE_SIZE + 1, 1u << 24),
                   SFT_ERR_TOO_LARGE);
  assert_int_equal(sft_manifest_set_geometry(&m, 100, SFT_CHUNK_SIZE_MIN - 1),
                   SFT_ERR_RANGE);
  assert_int_equal(sft_manifest_set_geometry(&m, 100, SFT_CHUNK_SIZE_MAX + 1),
                   SFT_ERR_RANGE);
  /* 1 PiB in 4 KiB chunks is 2^38 chunks: too many */
  assert_int_equal(sft_manifest_set_geometry(&m, SFT_MAX_FILE_SIZE,
                                             SFT_CHUNK_SIZE_MIN),
                   SFT_ERR_TOO_LARGE);
  assert_int_equal(m.size, 0); /* unchanged on error */
  assert_int_equal(sft_manifest_set_geometry(&m, SFT_MAX_FILE_SIZE,
                                             SFT_CHUNK_SIZE_MAX),
                   0);
  assert_true(m.chunk_count == SFT_MAX_CHUNKS);
  assert_int_equal(sft_manifest_verify(&m), 0);
  /* max chunks + 1: one byte more in max-size chunks */
  assert_int_equal(sft_manifest_set_geometry(&m, SFT_MAX_FILE_SIZE + 1,
                                             SFT_CHUNK_SIZE_MAX),
                   SFT_ERR_TOO_LARGE);
}

static void test_manifest_roundtrip_boundaries(void **state) {
  static struct sft_manifest m;
  static char big[SFT_MAX_NAME];
  uint8_t root[32];
  (void)state;
  for (int i = 0; i < 32; i++)
    root[i] = (uint8_t)(0xa0 + i);

  make_file(&m, "a", 0, SFT_CHUNK_SIZE_MIN); /* empty file, 1-byte name */
  assert_int_equal(m.chunk_count, 0);
  roundtrip(&m);
  sft_manifest_set_root(&m, root); /* empty file with its root */
  roundtrip(&m);

  make_file(&m, "x/y/z.iso", 1, SFT_CHUNK_SIZE_MAX);
  assert_int_equal(m.chunk_count, 1);
  m.mtime_sec = INT64_MIN;
  m.mtime_nsec = 999999999;
  m.mode = 07777;
  m.stripe_k = 1;
  m.stripe_m = 254;
  m.hash_algo = SFT_HASH_SHA256;
  roundtrip(&m);

  make_file(&m, "big", SFT_MAX_FILE_SIZE, SFT_CHUNK_SIZE_MAX);
  m.mtime_sec = INT64_MAX;
  m.stripe_k = 255;
  m.stripe_m = 0;
  sft_manifest_set_root(&m, root);
  roundtrip(&m);

  memset(big, 'n', sizeof(big));
  sft_manifest_init(&m);
  assert_int_equal(sft_manifest_set_name(&m, big, sizeof(big)), 0);
  assert_int_equal(sft_manifest_set_geometry(&m, 12345678, 65536), 0);
  m.mtime_sec = -1;
  sft_manifest_set_root(&m, root);
  roundtrip(&m);
  {
    size_t n;
    assert_int_equal(sft_manifest_encode(NULL, 0, &m, &n), 0);
    assert_true(n <= SFT_MANIFEST_ENC_MAX);
  }

  /* a directory */
  sft_manifest_init(&m);
  m.kind = SFT_FILE_DIR;
  m.mode = 0755;
  assert_int_equal(sft_manifest_set_name(&m, "photos/2024", 11), 0);
  roundtrip(&m);
}

static void test_manifest_verify_codes(void **state) {
  static struct sft_manifest m, good;
  uint8_t buf[64];
  size_t n;
  (void)state;
  make_file(&good, "f", 10000, 4096);

  m = good; m.kind = (enum sft_file_kind)2;
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_MALFORMED);
  m = good; m.flags = 0x02;
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_MALFORMED);
  m = good; m.name_len = SFT_MAX_NAME + 1;
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_TOO_LARGE);
  m = good; m.name_len = 0;
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_PATH);
  m = good; m.name[1] = 'x'; /* not NUL-terminated at name_len */
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_PATH);
  m = good; m.hash_algo = (enum sft_hash_algo)3;
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_UNSUPPORTED);
  m = good; m.size = SFT_MAX_FILE_SIZE + 1;
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_TOO_LARGE);
  m = good; m.chunk_size = SFT_CHUNK_SIZE_MIN - 1;
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_RANGE);
  m = good; m.chunk_size = SFT_CHUNK_SIZE_MAX + 1;
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_RANGE);
  m = good; m.chunk_count = 2; /* 10000 / 4096 -> 3 */
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_MALFORMED);
  m = good; m.chunk_count = 4;
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_MALFORMED);
  m = good; m.chunk_count = SFT_MAX_CHUNKS + 1;
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_TOO_LARGE);
  m = good; m.stripe_k = 0;
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_RANGE);
  m = good; m.stripe_k = 200; m.stripe_m = 56;
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_RANGE);
  m = good; m.stripe_k = 200; m.stripe_m = 55;
  assert_int_equal(sft_manifest_verify(&m), 0);
  m = good; m.stripe_k = 256; m.stripe_m = 0;
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_RANGE);
  m = good; m.stripe_k = 1; m.stripe_m = UINT32_MAX; /* no wrap-around */
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_RANGE);
  m = good; m.mode = 010000;
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_RANGE);
  m = good; m.mtime_nsec = 1000000000u;
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_RANGE);
  m = good; m.root[5] = 1; /* root bytes without HAS_ROOT */
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_MALFORMED);
  /* directories: no size, no chunks, no root */
  m = good; m.kind = SFT_FILE_DIR;
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_MALFORMED);
  assert_int_equal(sft_manifest_set_geometry(&m, 0, 4096), 0);
  assert_int_equal(sft_manifest_verify(&m), 0);
  m.flags = SFT_MANIFEST_HAS_ROOT;
  assert_int_equal(sft_manifest_verify(&m), SFT_ERR_MALFORMED);
  /* the encoder refuses what verify refuses */
  m = good; m.stripe_k = 0;
  assert_int_equal(sft_manifest_encode(buf, sizeof(buf), &m, &n),
                   SFT_ERR_RANGE);
  assert_int_equal(sft_manifest_encode(NULL, 0, &m, &n), SFT_ERR_RANGE);
}

static void test_manifest_decode_rejects(void **state) {
  struct raw r;
  static char big[SFT_MAX_NAME + 1];
  uint8_t buf[128];
  size_t n;
  (void)state;
  raw_default(&r);
  assert_int_equal(raw_decode(&r), 0);
  raw_default(&r); r.version = 0;
  assert_int_equal(raw_decode(&r), SFT_ERR_VERSION);
  raw_default(&r); r.version = 2;
  assert_int_equal(raw_decode(&r), SFT_ERR_VERSION);
  raw_default(&r); r.kind = 2;
  assert_int_equal(raw_decode(&r), SFT_ERR_MALFORMED);
  raw_default(&r); r.flags = 0x80;
  assert_int_equal(raw_decode(&r), SFT_ERR_MALFORMED);
  raw_default(&r); r.algo = 0;
  assert_int_equal(raw_decode(&r), SFT_ERR_UNSUPPORTED);
  raw_default(&r); r.algo = 3;
  assert_int_equal(raw_decode(&r), SFT_ERR_UNSUPPORTED);
  raw_default(&r); r.name = ""; r.name_len = 0;
  assert_int_equal(raw_decode(&r), SFT_ERR_PATH);
  raw_default(&r); r.name = "a"; r.name_len = 1;
  assert_int_equal(raw_decode(&r), 0);
  /* a name length above the bound is refused before the bytes are read */
  raw_default(&r); r.name_len = SFT_MAX_NAME + 1; r.name = "";
  assert_int_equal(raw_decode(&r), SFT_ERR_TOO_LARGE);
  memset(big, 'q', SFT_MAX_NAME);
  raw_default(&r); r.name = big; r.name_len = SFT_MAX_NAME;
  assert_int_equal(raw_decode(&r), 0);
  /* declared length longer than the input */
  raw_default(&r); r.name_len = 100;
  assert_int_equal(raw_decode(&r), SFT_ERR_TRUNCATED);
  raw_default(&r); r.size = SFT_MAX_FILE_SIZE + 1;
  assert_int_equal(raw_decode(&r), SFT_ERR_TOO_LARGE);
  raw_default(&r); r.nsec = 1000000000;
  assert_int_equal(raw_decode(&r), SFT_ERR_RANGE);
  raw_default(&r); r.mode = 010644;
  assert_int_equal(raw_decode(&r), SFT_ERR_RANGE);
  raw_default(&r); r.chunk_size = 4095;
  assert_int_equal(raw_decode(&r), SFT_ERR_RANGE);
  raw_default(&r); r.chunk_count = 2;
  assert_int_equal(raw_decode(&r), SFT_ERR_MALFORMED);
  raw_default(&r); r.chunk_count = SFT_MAX_CHUNKS + 1;
  assert_int_equal(raw_decode(&r), SFT_ERR_TOO_LARGE);
  raw_default(&r); r.k = 0;
  assert_int_equal(raw_decode(&r), SFT_ERR_RANGE);
  raw_default(&r); r.k = 200; r.m = 56;
  assert_int_equal(raw_decode(&r), SFT_ERR_RANGE);
  raw_default(&r); r.kind = SFT_FILE_DIR;
  assert_int_equal(raw_decode(&r), SFT_ERR_MALFORMED);
  raw_default(&r); r.kind = SFT_FILE_DIR; r.size = 0; r.chunk_count = 0;
  assert_int_equal(raw_decode(&r), 0);
  raw_default(&r); r.flags = SFT_MANIFEST_HAS_ROOT; r.root = 1;
  assert_int_equal(raw_decode(&r), 0);
  raw_default(&r); r.flags = SFT_MANIFEST_HAS_ROOT; /* root missing */
  assert_int_equal(raw_decode(&r), SFT_ERR_TRUNCATED);
  raw_default(&r); r.root = 1; /* root present without the flag: trailing */
  assert_int_equal(raw_decode(&r), SFT_ERR_MALFORMED);

  /* trailing byte */
  raw_default(&r);
  n = raw_encode(&r, buf, sizeof(buf));
  buf[n] = 0;
  {
    static struct sft_manifest m;
    assert_int_equal(sft_manifest_decode(buf, n + 1, &m), SFT_ERR_MALFORMED);
    /* non-minimal name length varint: 0x40 0x0c instead of 0x0c */
    memmove(buf + 6, buf + 5, n - 5);
    buf[4] = 0x40;
    buf[5] = (uint8_t)r.name_len;
    assert_int_equal(sft_manifest_decode(buf, n + 1, &m), SFT_ERR_MALFORMED);
  }
}

static void test_manifest_truncation_every_offset(void **state) {
  static struct sft_manifest m, back;
  static uint8_t buf[SFT_MANIFEST_ENC_MAX];
  uint8_t root[32] = {1, 2, 3};
  size_t n;
  (void)state;
  make_file(&m, "some/dir/name.dat", 123456789, 65536);
  m.mtime_sec = -5;
  sft_manifest_set_root(&m, root);
  assert_int_equal(sft_manifest_encode(buf, sizeof(buf), &m, &n), 0);
  for (size_t i = 0; i < n; i++) {
    /* decode from a heap copy of exactly i bytes so ASan sees any
     * over-read */
    uint8_t *p = malloc(i ? i : 1);
    assert_non_null(p);
    memcpy(p, buf, i);
    assert_int_equal(sft_manifest_decode(p, i, &back), SFT_ERR_TRUNCATED);
    free(p);
  }
  assert_int_equal(sft_manifest_decode(buf, n, &back), 0);
  assert_true(sft_manifest_equal(&m, &back));
}

static void test_manifest_bitflips(void **state) {
  /* Flipping any single bit either yields an error or a manifest that
   * re-encodes to exactly the mutated bytes (canonical encoding). */
  static struct sft_manifest m, back;
  static uint8_t buf[256], again[256];
  size_t n, n2;
  int accepted = 0;
  (void)state;
  make_file(&m, "abc/def", 99999, 4096);
  assert_int_equal(sft_manifest_encode(buf, sizeof(buf), &m, &n), 0);
  for (size_t i = 0; i < n * 8; i++) {
    int rv;
    buf[i / 8] ^= (uint8_t)(1u << (i % 8));
    rv = sft_manifest_decode(buf, n, &back);
    if (rv == 0) {
      accepted++;
      assert_int_equal(sft_manifest_verify(&back), 0);
      assert_int_equal(sft_manifest_encode(again, sizeof(again), &back, &n2),
                       0);
      assert_int_equal(n2, n);
      assert_memory_equal(again, buf, n);
    } else {
      assert_true(rv < 0);
    }
    buf[i / 8] ^= (uint8_t)(1u << (i % 8));
  }
  assert_true(accepted > 0); /* e.g. name bytes, mtime bits */
}

static void test_stripe_geometry(void **state) {
  (void)state;
  assert_int_equal(sft_stripe_count(0, 10), 0);
  assert_int_equal(sft_stripe_count(1, 10), 1);
  assert_int_equal(sft_stripe_count(10, 10), 1);
  assert_int_equal(sft_stripe_count(11, 10), 2);
  assert_int_equal(sft_stripe_count(SFT_MAX_CHUNKS, 1), SFT_MAX_CHUNKS);
  assert_int_equal(sft_stripe_of(9, 10), 0);
  assert_int_equal(sft_stripe_of(10, 10), 1);
  assert_int_equal(sft_stripe_len(25, 10, 0), 10);
  assert_int_equal(sft_stripe_len(25, 10, 2), 5);
  assert_int_equal(sft_stripe_len(25, 10, 3), 0);
  assert_int_equal(sft_stripe_len(20, 10, 1), 10);
}

/* ---- policies --------------------------------------------------------- */

static void test_chunk_size_policy_boundaries(void **state) {
  const uint64_t ms = 1000000;
  (void)state;
  assert_int_equal(sft_policy_chunk_size(0, 0), 1024 * 1024);
  /* RTT: 100 ms exactly is not "> 100 ms" */
  assert_int_equal(sft_policy_chunk_size(100 * ms - 1, 0), 1024 * 1024);
  assert_int_equal(sft_policy_chunk_size(100 * ms, 0), 1024 * 1024);
  assert_int_equal(sft_policy_chunk_size(100 * ms + 1, 0), 256 * 1024);
  assert_int_equal(sft_policy_chunk_size(200 * ms - 1, 0), 256 * 1024);
  assert_int_equal(sft_policy_chunk_size(200 * ms, 0), 256 * 1024);
  assert_int_equal(sft_policy_chunk_size(200 * ms + 1, 0), 64 * 1024);
  assert_int_equal(sft_policy_chunk_size(UINT64_MAX, 0), 64 * 1024);
  /* loss in ppm: 5 % = 50000, 10 % = 100000 */
  assert_int_equal(sft_policy_chunk_size(0, 49999), 1024 * 1024);
  assert_int_equal(sft_policy_chunk_size(0, 50000), 1024 * 1024);
  assert_int_equal(sft_policy_chunk_size(0, 50001), 256 * 1024);
  assert_int_equal(sft_policy_chunk_size(0, 99999), 256 * 1024);
  assert_int_equal(sft_policy_chunk_size(0, 100000), 256 * 1024);
  assert_int_equal(sft_policy_chunk_size(0, 100001), 64 * 1024);
  assert_int_equal(sft_policy_chunk_size(0, SFT_PPM), 64 * 1024);
  assert_int_equal(sft_policy_chunk_size(0, UINT32_MAX), 64 * 1024);
  /* either condition is enough */
  assert_int_equal(sft_policy_chunk_size(200 * ms + 1, 1), 64 * 1024);
  assert_int_equal(sft_policy_chunk_size(1, 100001), 64 * 1024);
  assert_int_equal(sft_policy_chunk_size(100 * ms + 1, 100000), 256 * 1024);
  assert_int_equal(sft_policy_chunk_size(150 * ms, 60000), 256 * 1024);
  /* the result is always a valid chunk size */
  for (uint32_t l = 0; l <= SFT_PPM; l += 4999)
    for (uint64_t rtt = 0; rtt < 400 * ms; rtt += 7 * ms) {
      uint32_t c = sft_policy_chunk_size(rtt, l);
      assert_true(c >= SFT_CHUNK_SIZE_MIN && c <= SFT_CHUNK_SIZE_MAX);
    }
}

/* Independent reference: P[Binomial(n,p) > m] summed from the top in long
 * double with exact binomial coefficients via lgammal. */
static long double ref_tail(uint32_t n, uint32_t m, long double p) {
  long double s = 0;
  for (uint32_t i = m + 1; i <= n; i++) {
    long double lc = lgammal(n + 1.0L) - lgammal(i + 1.0L) -
                     lgammal(n - i + 1.0L);
    s += expl(lc + i * logl(p) + (n - i) * log1pl(-p));
  }
  return s;
}

static uint32_t parity(uint32_t k, uint32_t ppm) {
  uint32_t m = 12345;
  assert_int_equal(sft_policy_parity(k, ppm, &m), 0);
  return m;
}

static void test_parity_policy_boundaries(void **state) {
  uint32_t m = 77;
  (void)state;
  assert_int_equal(sft_policy_parity(0, 1000, &m), SFT_ERR_RANGE);
  assert_int_equal(sft_policy_parity(256, 1000, &m), SFT_ERR_RANGE);
  assert_int_equal(sft_policy_parity(10, SFT_PPM + 1, &m), SFT_ERR_RANGE);
  assert_int_equal(m, 77); /* untouched on error */
  /* zero loss: no parity, whatever k */
  for (uint32_t k = 1; k <= SFT_MAX_STRIPE; k++)
    assert_int_equal(parity(k, 0), 0);
  /* k = 10: p' = 1.25 p; 1 - (1 - p')^10 < 1e-4 iff p' < ~1.00005e-5,
   * i.e. p <= 8 ppm keeps m = 0 and 9 ppm needs one parity chunk. */
  assert_int_equal(parity(10, 7), 0);
  assert_int_equal(parity(10, 8), 0);
  assert_int_equal(parity(10, 9), 1);
  /* k = 1: the tail is p' itself, so m = 0 iff p' < 1e-4 iff p < 80 ppm.
   * At exactly 80 ppm the tail equals the target up to rounding (a knife
   * edge, not pinned); one unit either side is. */
  assert_int_equal(parity(1, 79), 0);
  assert_int_equal(parity(1, 81), 1);
  /* caps: m <= min(k, 255 - k) */
  assert_int_equal(parity(10, SFT_PPM), 10);
  assert_int_equal(parity(1, SFT_PPM), 1);
  assert_int_equal(parity(200, SFT_PPM), 55);
  assert_int_equal(parity(254, SFT_PPM), 1);
  assert_int_equal(parity(255, SFT_PPM), 0);
  assert_int_equal(parity(127, SFT_PPM), 127);
  assert_int_equal(parity(128, SFT_PPM), 127);
  /* p' >= 1 from 800000 ppm on */
  assert_int_equal(parity(10, 800000), 10);
}

static void test_parity_policy_matches_reference(void **state) {
  static const uint32_t ks[] = {1, 2, 4, 10, 16, 32, 64, 100, 128, 200, 254};
  static const uint32_t losses[] = {1,     9,     100,    1000,   5000,
                                    10000, 20000, 50000,  100000, 150000,
                                    200000, 300000, 500000, 799999};
  (void)state;
  for (size_t a = 0; a < sizeof(ks) / sizeof(ks[0]); a++)
    for (size_t b = 0; b < sizeof(losses) / sizeof(losses[0]); b++) {
      uint32_t k = ks[a], cap = SFT_POLICY_PARITY_CAP(k);
      uint32_t m = parity(k, losses[b]);
      long double p = (long double)losses[b] / SFT_PPM * 1.25L;
      assert_true(m <= cap);
      if (m < cap) /* m meets the target ... */
        assert_true(ref_tail(k + m, m, p) < 1e-4L);
      if (m > 0) /* ... and m - 1 does not (minimality) */
        assert_true(ref_tail(k + m - 1, m - 1, p) >= 1e-4L);
    }
}

static void test_parity_policy_monotone(void **state) {
  static const uint32_t ks[] = {1, 3, 10, 50, 128, 200, 255};
  (void)state;
  for (size_t a = 0; a < sizeof(ks) / sizeof(ks[0]); a++) {
    uint32_t prev = 0;
    /* every ppm up to 2 %, then a prime stride to the end */
    for (uint32_t l = 0; l <= SFT_PPM;) {
      uint32_t m = parity(ks[a], l);
      assert_true(m >= prev);
      prev = m;
      l += l < 20000 ? 1 : 997;
    }
    assert_int_equal(parity(ks[a], SFT_PPM), SFT_POLICY_PARITY_CAP(ks[a]));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_manifest_defaults_and_setters),
      cmocka_unit_test(test_manifest_roundtrip_boundaries),
      cmocka_unit_test(test_manifest_verify_codes),
      cmocka_unit_test(test_manifest_decode_rejects),
      cmocka_unit_test(test_manifest_truncation_every_offset),
      cmocka_unit_test(test_manifest_bitflips),
      cmocka_unit_test(test_stripe_geometry),
      cmocka_unit_test(test_chunk_size_policy_boundaries),
      cmocka_unit_test(test_parity_policy_boundaries),
      cmocka_unit_test(test_parity_policy_matches_reference),
      cmocka_unit_test(test_parity_policy_monotone),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
