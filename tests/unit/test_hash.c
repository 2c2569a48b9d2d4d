/* Tests of lib/hash: BLAKE3 against the official vectors, SHA-256 known
 * answers, streaming vs one-shot, the sft root (structure, count binding,
 * bit flips pinned to their chunk), hex and algorithm names. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <blake3.h>

#include "sft/hash.h"

#define VECTORS_FILE SFT_VECTORS_DIR "/blake3_test_vectors.json"
#define VEC_CASES 35    /* cases in the official file */
#define VEC_OUT_LEN 131 /* extended output length of every case */

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint64_t rng(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

static void fill_random(uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(rng() >> 24);
}

static int hexval(int c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1;
}

/* Strict lower-case hex to bytes: exactly 2 * n digits. */
static void unhex(const char *s, uint8_t *out, size_t n) {
  assert_int_equal(strlen(s), 2 * n);
  for (size_t i = 0; i < n; i++) {
    int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
    assert_true(hi >= 0 && lo >= 0);
    out[i] = (uint8_t)(hi << 4 | lo);
  }
}

static void assert_hex_equal(const uint8_t *p, size_t n, const char *hex) {
  char buf[2 * 256 + 1];
  assert_true(n <= 256);
  sft_hex(p, n, buf);
  assert_string_equal(buf, hex);
}

/* ---- a strict scanner for blake3_test_vectors.json ---------------------
 * The file is one object: "_comment", "key", "context_string" (strings) and
 * "cases", an array of objects each with exactly "input_len" (unsigned
 * integer), "hash", "keyed_hash" and "derive_key" (hex strings). Anything
 * else fails the test. */
struct scan {
  const char *p, *end;
};

static void sc_ws(struct scan *s) {
  while (s->p < s->end &&
         (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
    s->p++;
}

static void sc_expect(struct scan *s, char c) {
  sc_ws(s);
  assert_true(s->p < s->end);
  assert_int_equal(*s->p, c);
  s->p++;
}

/* Next non-blank character is |c|? Consumes it if so. */
static int sc_accept(struct scan *s, char c) {
  sc_ws(s);
  if (s->p < s->end && *s->p == c) {
    s->p++;
    return 1;
  }
  return 0;
}

/* A string with only \" and \\ escapes (all this file uses). */
static void sc_string(struct scan *s, char *out, size_t cap) {
  size_t n = 0;
  sc_expect(s, '"');
  for (;;) {
    char c;
    assert_true(s->p < s->end);
    c = *s->p++;
    if (c == '"')
      break;
    assert_true((unsigned char)c >= 0x20);
    if (c == '\\') {
      assert_true(s->p < s->end);
      c = *s->p++;
      assert_true(c == '"' || c == '\\');
    }
    assert_true(n + 1 < cap);
    out[n++] = c;
  }
  out[n] = '\0';
}

static uint64_t sc_uint(struct scan *s) {
  uint64_t v = 0;
  int digits = 0;
  sc_ws(s);
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
    assert_true(v < 1000000000);
    v = v * 10 + (uint64_t)(*s->p++ - '0');
    digits++;
  }
  assert_true(digits > 0);
  return v;
}

struct vec_case {
  uint64_t input_len;
  uint8_t hash[VEC_OUT_LEN], keyed[VEC_OUT_LEN], derive[VEC_OUT_LEN];
};

struct vec_file {
  char key[64];
  char context[128];
  size_t ncases;
  struct vec_case cases[64];
};

static void sc_case(struct scan *s, struct vec_case *vc) {
  char name[32], hex[2 * VEC_OUT_LEN + 1];
  unsigned seen = 0;
  sc_expect(s, '{');
  do {
    sc_string(s, name, sizeof(name));
    sc_expect(s, ':');
    if (!strcmp(name, "input_len")) {
      assert_false(seen & 1);
      seen |= 1;
      vc->input_len = sc_uint(s);
    } else {
      uint8_t *dst;
      unsigned bit;
      if (!strcmp(name, "hash")) {
        dst = vc->hash, bit = 2;
      } else if (!strcmp(name, "keyed_hash")) {
        dst = vc->keyed, bit = 4;
      } else {
        assert_string_equal(name, "derive_key");
        dst = vc->derive, bit = 8;
      }
      assert_false(seen & bit);
      seen |= bit;
      sc_string(s, hex, sizeof(hex));
      unhex(hex, dst, VEC_OUT_LEN);
    }
  } while (sc_accept(s, ','));
  sc_expect(s, '}');
  assert_int_equal(seen, 15);
}

static void load_vectors(struct vec_file *vf) {
  static char text[256 * 1024];
  FILE *f = fopen(VECTORS_FILE, "rb");
  size_t len;
  struct scan s;
  char name[32], scratch[2048];
  unsigned seen = 0;
  if (!f)
    fail_msg("cannot open %s", VECTORS_FILE);
  len = fread(text, 1, sizeof(text), f);
  assert_int_equal(ferror(f), 0);
  assert_true(len < sizeof(text)); /* read it all */
  fclose(f);
  s.p = text;
  s.end = text + len;
  memset(vf, 0, sizeof(*vf));
  sc_expect(&s, '{');
  do {
    sc_string(&s, name, sizeof(name));
    sc_expect(&s, ':');
    if (!strcmp(name, "_comment")) {
      sc_string(&s, scratch, sizeof(scratch));
      seen |= 1;
    } else if (!strcmp(name, "key")) {
      sc_string(&s, vf->key, sizeof(vf->key));
      seen |= 2;
    } else if (!strcmp(name, "context_string")) {
      sc_string(&s, vf->context, sizeof(vf->context));
      seen |= 4;
    } else {
      assert_string_equal(name, "cases");
      assert_false(seen & 8);
      seen |= 8;
      sc_expect(&s, '[');
      do {
        assert_true(vf->ncases < sizeof(vf->cases) / sizeof(vf->cases[0]));
        sc_case(&s, &vf->cases[vf->ncases++]);
      } while (sc_accept(&s, ','));
      sc_expect(&s, ']');
    }
  } while (sc_accept(&s, ','));
  sc_expect(&s, '}');
  sc_ws(&s);
  assert_true(s.p == s.end);
  assert_int_equal(seen, 15);
}

static void test_blake3_official_vectors(void **state) {
  static struct vec_file vf;
  static uint8_t input[128 * 1024];
  (void)state;
  load_vectors(&vf);
  assert_int_equal(vf.ncases, VEC_CASES);
  assert_int_equal(strlen(vf.key), BLAKE3_KEY_LEN);
  assert_string_equal(vf.context,
                      "BLAKE3 2019-12-27 16:29:52 test vectors context");
  for (size_t i = 0; i < sizeof(input); i++)
    input[i] = (uint8_t)(i % 251);
  for (size_t c = 0; c < vf.ncases; c++) {
    const struct vec_case *vc = &vf.cases[c];
    size_t n = (size_t)vc->input_len;
    uint8_t out[VEC_OUT_LEN], d[SFT_HASH_LEN];
    blake3_hasher b;
    struct sft_hasher h;
    assert_true(n <= sizeof(input));

    /* hash mode: extended output, then every sft entry point */
    blake3_hasher_init(&b);
    blake3_hasher_update(&b, input, n);
    blake3_hasher_finalize(&b, out, VEC_OUT_LEN);
    assert_memory_equal(out, vc->hash, VEC_OUT_LEN);
    sft_blake3(input, n, d);
    assert_memory_equal(d, vc->hash, SFT_HASH_LEN);
    memset(d, 0, sizeof(d));
    assert_int_equal(sft_hash(SFT_HASH_BLAKE3, input, n, d), 0);
    assert_memory_equal(d, vc->hash, SFT_HASH_LEN);
    assert_int_equal(sft_hasher_init(&h, SFT_HASH_BLAKE3), 0);
    sft_hasher_update(&h, input, n / 3);
    sft_hasher_update(&h, input + n / 3, n - n / 3);
    sft_hasher_final(&h, d);
    assert_memory_equal(d, vc->hash, SFT_HASH_LEN);

    /* keyed_hash mode */
    blake3_hasher_init_keyed(&b, (const uint8_t *)vf.key);
    blake3_hasher_update(&b, input, n);
    blake3_hasher_finalize(&b, out, VEC_OUT_LEN);
    assert_memory_equal(out, vc->keyed, VEC_OUT_LEN);
    blake3_hasher_finalize(&b, out, BLAKE3_OUT_LEN);
    assert_memory_equal(out, vc->keyed, BLAKE3_OUT_LEN);

    /* derive_key mode */
    blake3_hasher_init_derive_key(&b, vf.context);
    blake3_hasher_update(&b, input, n);
    blake3_hasher_finalize(&b, out, VEC_OUT_LEN);
    assert_memory_equal(out, vc->derive, VEC_OUT_LEN);
    blake3_hasher_finalize(&b, out, BLAKE3_OUT_LEN);
    assert_memory_equal(out, vc->derive, BLAKE3_OUT_LEN);
  }
}

/* ---- SHA-256 ------------------------------------------------------------ */

static void test_sha256_known_answers(void **state) {
  static const struct {
    const char *msg, *hex;
  } kat[] = {
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc",
       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
  };
  static const char *million_a =
      "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  uint8_t d[SFT_HASH_LEN], block[1000];
  struct sft_hasher h;
  char *big;
  (void)state;
  for (size_t i = 0; i < sizeof(kat) / sizeof(kat[0]); i++) {
    assert_int_equal(
        sft_hash(SFT_HASH_SHA256, kat[i].msg, strlen(kat[i].msg), d), 0);
    assert_hex_equal(d, SFT_HASH_LEN, kat[i].hex);
  }
  /* one million 'a': one shot, and streamed in 1000-byte blocks */
  big = malloc(1000000);
  assert_non_null(big);
  memset(big, 'a', 1000000);
  assert_int_equal(sft_hash(SFT_HASH_SHA256, big, 1000000, d), 0);
  assert_hex_equal(d, SFT_HASH_LEN, million_a);
  free(big);
  memset(block, 'a', sizeof(block));
  assert_int_equal(sft_hasher_init(&h, SFT_HASH_SHA256), 0);
  for (int i = 0; i < 1000; i++)
    sft_hasher_update(&h, block, sizeof(block));
  sft_hasher_final(&h, d);
  assert_hex_equal(d, SFT_HASH_LEN, million_a);
}

/* ---- streaming == one-shot ---------------------------------------------- */

static void test_streaming_equals_one_shot(void **state) {
  static const enum sft_hash_algo algos[] = {SFT_HASH_BLAKE3, SFT_HASH_SHA256};
  enum { N = 3 * 65536 + 777 };
  static uint8_t buf[N];
  static const size_t fixed[] = {0,     1,     63,    64,    65,
                                 1023,  1024,  1025,  2048,  4095,
                                 16384, 65535, 65536, N - 1, N};
  (void)state;
  fill_random(buf, N);
  for (size_t a = 0; a < 2; a++) {
    uint8_t want[SFT_HASH_LEN], got[SFT_HASH_LEN];
    struct sft_hasher h;
    assert_int_equal(sft_hash(algos[a], buf, N, want), 0);
    /* two-piece splits: fixed boundaries and random ones */
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]) + 40; i++) {
      size_t cut = i < sizeof(fixed) / sizeof(fixed[0])
                       ? fixed[i]
                       : (size_t)(rng() % (N + 1));
      assert_int_equal(sft_hasher_init(&h, algos[a]), 0);
      sft_hasher_update(&h, buf, cut);
      sft_hasher_update(&h, buf + cut, N - cut);
      sft_hasher_final(&h, got);
      assert_memory_equal(got, want, SFT_HASH_LEN);
    }
    /* many small random pieces, including empty ones */
    for (int rep = 0; rep < 8; rep++) {
      size_t off = 0;
      assert_int_equal(sft_hasher_init(&h, algos[a]), 0);
      while (off < N) {
        size_t k = (size_t)(rng() % (rep < 4 ? 200 : 20000));
        if (k > N - off)
          k = N - off;
        sft_hasher_update(&h, buf + off, k);
        off += k;
      }
      sft_hasher_update(&h, NULL, 0);
      sft_hasher_final(&h, got);
      assert_memory_equal(got, want, SFT_HASH_LEN);
    }
    /* the hasher can be re-initialised and reused after final */
    assert_int_equal(sft_hasher_init(&h, algos[a]), 0);
    sft_hasher_update(&h, buf, 10);
    sft_hasher_final(&h, got);
    assert_int_equal(sft_hasher_init(&h, algos[a]), 0);
    sft_hasher_update(&h, buf, N);
    sft_hasher_final(&h, got);
    assert_memory_equal(got, want, SFT_HASH_LEN);
  }
}

static void test_unknown_algorithm(void **state) {
  struct sft_hasher h;
  struct sft_root_ctx r;
  uint8_t d[SFT_HASH_LEN], zero[SFT_HASH_LEN] = {0};
  (void)state;
  assert_int_equal(sft_hasher_init(&h, (enum sft_hash_algo)0), SFT_ERR_INVAL);
  sft_hasher_update(&h, "x", 1);
  memset(d, 0xaa, sizeof(d));
  sft_hasher_final(&h, d);
  assert_memory_equal(d, zero, SFT_HASH_LEN);
  assert_int_equal(sft_hash((enum sft_hash_algo)3, "x", 1, d), SFT_ERR_INVAL);
  assert_int_equal(sft_root((enum sft_hash_algo)7, NULL, 0, d), SFT_ERR_INVAL);
  assert_int_equal(sft_root(SFT_HASH_BLAKE3, NULL, 1, d), SFT_ERR_INVAL);
  assert_int_equal(sft_root_init(&r, (enum sft_hash_algo)9), SFT_ERR_INVAL);
  assert_int_equal(sft_root_push(&r, zero), SFT_ERR_INVAL);
  memset(d, 0xaa, sizeof(d));
  assert_int_equal(sft_root_final(&r, d), SFT_ERR_INVAL);
  assert_memory_equal(d, zero, SFT_HASH_LEN);
  /* a spent context refuses more digests */
  assert_int_equal(sft_root_init(&r, SFT_HASH_BLAKE3), 0);
  assert_int_equal(sft_root_push(&r, zero), 0);
  assert_int_equal(sft_root_final(&r, d), 0);
  assert_int_equal(sft_root_push(&r, zero), SFT_ERR_INVAL);
}

/* ---- the sft root: a reference written the obvious way ------------------ */

static void ref_tagged(enum sft_hash_algo algo, uint8_t tag, const uint8_t *a,
                       size_t alen, const uint8_t *b, size_t blen,
                       uint8_t out[SFT_HASH_LEN]) {
  uint8_t msg[1 + 2 * SFT_HASH_LEN + 8];
  assert_true(1 + alen + blen <= sizeof(msg));
  msg[0] = tag;
  memcpy(msg + 1, a, alen);
  if (blen)
    memcpy(msg + 1 + alen, b, blen);
  assert_int_equal(sft_hash(algo, msg, 1 + alen + blen, out), 0);
}

static void ref_leaf(enum sft_hash_algo algo, const uint8_t *d, uint8_t *out) {
  ref_tagged(algo, 0x00, d, SFT_HASH_LEN, NULL, 0, out);
}

static void ref_node(enum sft_hash_algo algo, const uint8_t *l,
                     const uint8_t *r, uint8_t *out) {
  ref_tagged(algo, 0x01, l, SFT_HASH_LEN, r, SFT_HASH_LEN, out);
}

static void ref_final(enum sft_hash_algo algo, uint64_t n, const uint8_t *top,
                      uint8_t *out) {
  uint8_t le[8];
  for (int i = 0; i < 8; i++)
    le[i] = (uint8_t)(n >> (8 * i));
  ref_tagged(algo, 0x02, le, 8, top, top ? SFT_HASH_LEN : 0, out);
}

/* Level by level: pair neighbours left to right; an odd last node is
 * promoted to the next level unchanged. */
static void ref_root(enum sft_hash_algo algo, const uint8_t *digests, size_t n,
                     uint8_t out[SFT_HASH_LEN]) {
  uint8_t *level;
  size_t m = n;
  if (n == 0) {
    ref_final(algo, 0, NULL, out);
    return;
  }
  level = malloc(n * SFT_HASH_LEN);
  assert_non_null(level);
  for (size_t i = 0; i < n; i++)
    ref_leaf(algo, digests + i * SFT_HASH_LEN, level + i * SFT_HASH_LEN);
  while (m > 1) {
    size_t k = 0;
    for (size_t i = 0; i + 1 < m; i += 2, k++)
      ref_node(algo, level + i * SFT_HASH_LEN, level + (i + 1) * SFT_HASH_LEN,
               level + k * SFT_HASH_LEN);
    if (m % 2)
      memmove(level + k++ * SFT_HASH_LEN, level + (m - 1) * SFT_HASH_LEN,
              SFT_HASH_LEN);
    m = k;
  }
  ref_final(algo, n, level, out);
  free(level);
}

static void root_both_ways(enum sft_hash_algo algo, const uint8_t *digests,
                           size_t n, uint8_t out[SFT_HASH_LEN]) {
  struct sft_root_ctx r;
  uint8_t inc[SFT_HASH_LEN];
  assert_int_equal(sft_root(algo, digests, n, out), 0);
  assert_int_equal(sft_root_init(&r, algo), 0);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(sft_root_push(&r, digests + i * SFT_HASH_LEN), 0);
  assert_int_equal(sft_root_final(&r, inc), 0);
  assert_memory_equal(inc, out, SFT_HASH_LEN);
}

static void test_root_small_structures(void **state) {
  static const enum sft_hash_algo algos[] = {SFT_HASH_BLAKE3, SFT_HASH_SHA256};
  (void)state;
  for (size_t a = 0; a < 2; a++) {
    enum sft_hash_algo al = algos[a];
    uint8_t d[5][SFT_HASH_LEN], L[5][SFT_HASH_LEN];
    uint8_t n01[SFT_HASH_LEN], n23[SFT_HASH_LEN], n0123[SFT_HASH_LEN];
    uint8_t t[SFT_HASH_LEN], want[SFT_HASH_LEN], got[SFT_HASH_LEN];
    fill_random(&d[0][0], sizeof(d));
    for (int i = 0; i < 5; i++)
      ref_leaf(al, d[i], L[i]);
    ref_node(al, L[0], L[1], n01);
    ref_node(al, L[2], L[3], n23);
    ref_node(al, n01, n23, n0123);

    ref_final(al, 0, NULL, want); /* empty: H(0x02 || le64(0)) */
    root_both_ways(al, NULL, 0, got);
    assert_memory_equal(got, want, SFT_HASH_LEN);

    ref_final(al, 1, L[0], want); /* 1: the leaf itself is the top */
    root_both_ways(al, &d[0][0], 1, got);
    assert_memory_equal(got, want, SFT_HASH_LEN);

    ref_final(al, 2, n01, want);
    root_both_ways(al, &d[0][0], 2, got);
    assert_memory_equal(got, want, SFT_HASH_LEN);

    ref_node(al, n01, L[2], t); /* 3: L2 promoted */
    ref_final(al, 3, t, want);
    root_both_ways(al, &d[0][0], 3, got);
    assert_memory_equal(got, want, SFT_HASH_LEN);

    ref_final(al, 4, n0123, want);
    root_both_ways(al, &d[0][0], 4, got);
    assert_memory_equal(got, want, SFT_HASH_LEN);

    ref_node(al, n0123, L[4], t); /* 5: L4 promoted twice */
    ref_final(al, 5, t, want);
    root_both_ways(al, &d[0][0], 5, got);
    assert_memory_equal(got, want, SFT_HASH_LEN);
  }
}

/* Golden values pin the definition in docs/internals/integrity.md. */
static void test_root_golden(void **state) {
  uint8_t got[SFT_HASH_LEN], d[3 * SFT_HASH_LEN];
  (void)state;
  assert_int_equal(sft_root(SFT_HASH_BLAKE3, NULL, 0, got), 0);
  assert_hex_equal(
      got, SFT_HASH_LEN,
      "c837765444815de6db1a10b88c56b546eb45d640b9323beb30f37038174a2c97");
  assert_int_equal(sft_root(SFT_HASH_SHA256, NULL, 0, got), 0);
  assert_hex_equal(
      got, SFT_HASH_LEN,
      "4322fd2bc0a137d1375b37b3b2e2b4715b3d3dd7ca9682438d4fea0f8437fad3");
  /* three chunks "a", "b", "c" of a 3-byte file with chunk size 1 */
  sft_blake3("a", 1, d);
  sft_blake3("b", 1, d + SFT_HASH_LEN);
  sft_blake3("c", 1, d + 2 * SFT_HASH_LEN);
  assert_int_equal(sft_root(SFT_HASH_BLAKE3, d, 3, got), 0);
  assert_hex_equal(
      got, SFT_HASH_LEN,
      "ed602f7bb1c3f55da36b8174f8ee72db00b26c8625b7fd4c2c04183983207e20");
}

static void test_root_matches_reference_up_to_1000(void **state) {
  enum { N = 1000 };
  uint8_t *d = malloc(N * SFT_HASH_LEN);
  static const size_t counts[] = {6,  7,   8,   9,   15,  16,  17,  31,  32, 33,
                                  63, 100, 127, 128, 129, 255, 257, 999, N};
  (void)state;
  assert_non_null(d);
  fill_random(d, N * SFT_HASH_LEN);
  for (size_t a = 0; a < 2; a++) {
    enum sft_hash_algo al = a ? SFT_HASH_SHA256 : SFT_HASH_BLAKE3;
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
      uint8_t want[SFT_HASH_LEN], got[SFT_HASH_LEN];
      ref_root(al, d, counts[i], want);
      root_both_ways(al, d, counts[i], got);
      assert_memory_equal(got, want, SFT_HASH_LEN);
    }
  }
  free(d);
}

/* The count is bound in and leaves are not nodes: none of these collide. */
static void test_root_no_confusion(void **state) {
  enum { N = 64 };
  uint8_t d[N * SFT_HASH_LEN], roots[N + 1][SFT_HASH_LEN];
  uint8_t l0[SFT_HASH_LEN], l1[SFT_HASH_LEN], pair[2 * SFT_HASH_LEN];
  uint8_t r1[SFT_HASH_LEN], r2[SFT_HASH_LEN], b3[SFT_HASH_LEN],
      sha[SFT_HASH_LEN];
  (void)state;
  fill_random(d, sizeof(d));
  /* prefixes of one digest list: all roots distinct */
  for (size_t n = 0; n <= N; n++)
    assert_int_equal(sft_root(SFT_HASH_BLAKE3, d, n, roots[n]), 0);
  for (size_t i = 0; i <= N; i++)
    for (size_t j = i + 1; j <= N; j++)
      assert_memory_not_equal(roots[i], roots[j], SFT_HASH_LEN);
  /* a one-leaf tree whose digest is the two-leaf tree's node input does not
   * give the two-leaf root (leaf vs node domain, and the count) */
  ref_leaf(SFT_HASH_BLAKE3, d, l0);
  ref_leaf(SFT_HASH_BLAKE3, d + SFT_HASH_LEN, l1);
  memcpy(pair, l0, SFT_HASH_LEN);
  memcpy(pair + SFT_HASH_LEN, l1, SFT_HASH_LEN);
  assert_int_equal(sft_root(SFT_HASH_BLAKE3, d, 2, r2), 0);
  sft_blake3(pair, sizeof(pair), l0);
  assert_int_equal(sft_root(SFT_HASH_BLAKE3, l0, 1, r1), 0);
  assert_memory_not_equal(r1, r2, SFT_HASH_LEN);
  /* order matters; the algorithms differ */
  memcpy(pair, d + SFT_HASH_LEN, SFT_HASH_LEN);
  memcpy(pair + SFT_HASH_LEN, d, SFT_HASH_LEN);
  assert_int_equal(sft_root(SFT_HASH_BLAKE3, pair, 2, r1), 0);
  assert_memory_not_equal(r1, r2, SFT_HASH_LEN);
  assert_int_equal(sft_root(SFT_HASH_BLAKE3, d, 7, b3), 0);
  assert_int_equal(sft_root(SFT_HASH_SHA256, d, 7, sha), 0);
  assert_memory_not_equal(b3, sha, SFT_HASH_LEN);
}

/* ---- a flipped bit changes the root and exactly its chunk's digest ------ */

static void chunk_digests(enum sft_hash_algo algo, const uint8_t *buf,
                          size_t size, size_t cs, uint8_t *out, size_t *n) {
  size_t k = 0;
  for (size_t off = 0; off < size; off += cs, k++) {
    size_t len = size - off < cs ? size - off : cs;
    assert_int_equal(sft_hash(algo, buf + off, len, out + k * SFT_HASH_LEN), 0);
  }
  *n = k;
}

static void flip_check(enum sft_hash_algo algo, size_t random_flips) {
  enum { CS = 4096, NCHUNK = 23, SIZE = (NCHUNK - 1) * CS + 1000 };
  static uint8_t buf[SIZE];
  static uint8_t base[NCHUNK * SFT_HASH_LEN], cur[NCHUNK * SFT_HASH_LEN];
  uint8_t root0[SFT_HASH_LEN], root[SFT_HASH_LEN];
  size_t n, positions[2 * NCHUNK + 64], npos = 0;
  assert_true(random_flips <= 64);
  fill_random(buf, SIZE);
  chunk_digests(algo, buf, SIZE, CS, base, &n);
  assert_int_equal(n, NCHUNK);
  assert_int_equal(sft_root(algo, base, n, root0), 0);
  for (size_t c = 0; c < NCHUNK; c++) {
    positions[npos++] = c * CS; /* first */
    positions[npos++] = c + 1 < NCHUNK ? (c + 1) * CS - 1 : SIZE - 1; /* last */
  }
  for (size_t i = 0; i < random_flips; i++)
    positions[npos++] = (size_t)(rng() % SIZE);
  for (size_t i = 0; i < npos; i++) {
    size_t pos = positions[i], hit = pos / CS;
    uint8_t bit = (uint8_t)(1u << (rng() % 8));
    buf[pos] ^= bit;
    chunk_digests(algo, buf, SIZE, CS, cur, &n);
    assert_int_equal(sft_root(algo, cur, n, root), 0);
    assert_memory_not_equal(root, root0, SFT_HASH_LEN);
    for (size_t c = 0; c < NCHUNK; c++) {
      if (c == hit)
        assert_memory_not_equal(cur + c * SFT_HASH_LEN, base + c * SFT_HASH_LEN,
                                SFT_HASH_LEN);
      else
        assert_memory_equal(cur + c * SFT_HASH_LEN, base + c * SFT_HASH_LEN,
                            SFT_HASH_LEN);
    }
    buf[pos] ^= bit;
  }
  /* restored: the same root again */
  chunk_digests(algo, buf, SIZE, CS, cur, &n);
  assert_int_equal(sft_root(algo, cur, n, root), 0);
  assert_memory_equal(root, root0, SFT_HASH_LEN);
}

static void test_root_flipped_bit_pinned_to_chunk(void **state) {
  (void)state;
  flip_check(SFT_HASH_BLAKE3, 64);
  flip_check(SFT_HASH_SHA256, 16);
}

/* ---- hex and names ------------------------------------------------------ */

static void test_hex_and_names(void **state) {
  static const uint8_t bytes[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
  char out[2 * sizeof(bytes) + 1];
  enum sft_hash_algo a = (enum sft_hash_algo)0;
  (void)state;
  memset(out, 'x', sizeof(out));
  sft_hex(bytes, sizeof(bytes), out);
  assert_string_equal(out, "00017f80abff");
  sft_hex(bytes, 0, out);
  assert_string_equal(out, "");

  assert_string_equal(sft_hash_algo_name(SFT_HASH_BLAKE3), "blake3");
  assert_string_equal(sft_hash_algo_name(SFT_HASH_SHA256), "sha256");
  assert_null(sft_hash_algo_name((enum sft_hash_algo)0));
  assert_null(sft_hash_algo_name((enum sft_hash_algo)42));
  assert_int_equal(sft_hash_algo_parse("blake3", &a), 0);
  assert_int_equal(a, SFT_HASH_BLAKE3);
  assert_int_equal(sft_hash_algo_parse("sha256", &a), 0);
  assert_int_equal(a, SFT_HASH_SHA256);
  a = SFT_HASH_BLAKE3;
  assert_int_equal(sft_hash_algo_parse("BLAKE3", &a), SFT_ERR_INVAL);
  assert_int_equal(sft_hash_algo_parse("sha2567", &a), SFT_ERR_INVAL);
  assert_int_equal(sft_hash_algo_parse("", &a), SFT_ERR_INVAL);
  assert_int_equal(sft_hash_algo_parse(NULL, &a), SFT_ERR_INVAL);
  assert_int_equal(a, SFT_HASH_BLAKE3); /* untouched on error */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_blake3_official_vectors),
      cmocka_unit_test(test_sha256_known_answers),
      cmocka_unit_test(test_streaming_equals_one_shot),
      cmocka_unit_test(test_unknown_algorithm),
      cmocka_unit_test(test_root_small_structures),
      cmocka_unit_test(test_root_golden),
      cmocka_unit_test(test_root_matches_reference_up_to_1000),
      cmocka_unit_test(test_root_no_confusion),
      cmocka_unit_test(test_root_flipped_bit_pinned_to_chunk),
      cmocka_unit_test(test_hex_and_names),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
