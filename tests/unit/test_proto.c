/* Tests of lib/proto: version negotiation, framing, every control message,
 * the chunk-stream header. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "sft/proto.h"
#include "sft/wire.h"

/* Big enough for the largest frame (an ACCEPT with the longest bitmap). */
static uint8_t big[SFT_MAX_CTRL_MSG + SFT_FRAME_HDR_MAX];
static uint8_t big2[SFT_MAX_CTRL_MSG + SFT_FRAME_HDR_MAX];
static struct sft_ack_range ranges_in[SFT_MAX_ACK_RANGES + 1];
static struct sft_ack_range ranges_out[SFT_MAX_ACK_RANGES];

/* ---- helpers ---------------------------------------------------------- */

/* Checks the size query against the real encoding and that one byte less
 * of capacity gives TOO_LARGE; returns the frame length in |buf|. */
#define ENCODE(fn, msg, buf, cap)                                             \
  ({                                                                          \
    size_t n_ = 0, n2_ = 0;                                                   \
    assert_int_equal(fn(NULL, 0, (msg), &n_), 0);                             \
    assert_int_equal(fn((buf), (cap), (msg), &n2_), 0);                       \
    assert_int_equal(n_, n2_);                                                \
    assert_int_equal(fn((buf), n_ - 1, (msg), &n2_), SFT_ERR_TOO_LARGE);      \
    assert_int_equal(n2_, n_);                                                \
    n_;                                                                       \
  })

/* Parses |n| bytes as exactly one frame of |type|; returns the body. */
static const uint8_t *body_of(const uint8_t *buf, size_t n, uint64_t type,
                              size_t *body_len) {
  struct sft_frame f;
  size_t used = 0;
  assert_int_equal(sft_frame_parse(buf, n, &f, &used), 0);
  assert_int_equal(used, n);
  assert_int_equal(f.type, type);
  *body_len = f.body_len;
  return f.body;
}

/* Decode a body of any type into throw-away storage. */
static int decode_any(uint64_t type, const uint8_t *p, size_t n) {
  static struct sft_msg_hello hello;
  static struct sft_msg_offer offer;
  static struct sft_msg_accept accept;
  static struct sft_msg_ack ack;
  static struct sft_msg_need need;
  static struct sft_msg_pause pause;
  static struct sft_msg_cancel cancel;
  static struct sft_msg_complete complete;
  static struct sft_msg_error error;
  switch (type) {
  case SFT_MSG_HELLO: return sft_msg_hello_decode(p, n, &hello);
  case SFT_MSG_OFFER: return sft_msg_offer_decode(p, n, &offer);
  case SFT_MSG_ACCEPT: return sft_msg_accept_decode(p, n, &accept);
  case SFT_MSG_ACK:
    return sft_msg_ack_decode(p, n, &ack, ranges_out, SFT_MAX_ACK_RANGES);
  case SFT_MSG_NEED: return sft_msg_need_decode(p, n, &need);
  case SFT_MSG_PAUSE: return sft_msg_pause_decode(p, n, &pause);
  case SFT_MSG_RESUME: return sft_msg_resume_decode(p, n, &pause);
  case SFT_MSG_CANCEL: return sft_msg_cancel_decode(p, n, &cancel);
  case SFT_MSG_COMPLETE: return sft_msg_complete_decode(p, n, &complete);
  case SFT_MSG_ERROR: return sft_msg_error_decode(p, n, &error);
  default: fail(); return 0;
  }
}

/* Every strict prefix of a valid body is TRUNCATED (decoded from an exact
 * heap copy so ASan catches any over-read); one extra byte is MALFORMED. */
static void check_truncation(uint64_t type, const uint8_t *body, size_t n) {
  uint8_t *p;
  for (size_t i = 0; i < n; i++) {
    p = malloc(i ? i : 1);
    assert_non_null(p);
    memcpy(p, body, i);
    assert_int_equal(decode_any(type, p, i), SFT_ERR_TRUNCATED);
    free(p);
  }
  p = malloc(n + 1);
  assert_non_null(p);
  memcpy(p, body, n);
  p[n] = 0;
  assert_int_equal(decode_any(type, p, n), 0);
  assert_int_equal(decode_any(type, p, n + 1), SFT_ERR_MALFORMED);
  free(p);
}

/* Raw body writer for forged input. */
struct raw {
  uint8_t b[512];
  struct sft_wr w;
};
static void raw_init(struct raw *r) { sft_wr_init(&r->w, r->b, sizeof(r->b)); }

/* ---- negotiation ------------------------------------------------------ */

static void test_negotiate_table(void **state) {
  static const struct {
    uint32_t amin, acur, bmin, bcur;
    int rv;
    uint32_t v;
  } t[] = {
      {1, 1, 1, 1, 0, 1},
      {1, 3, 1, 2, 0, 2},
      {1, 2, 1, 3, 0, 2},
      {2, 3, 1, 2, 0, 2},
      {1, 2, 2, 3, 0, 2},
      {3, 5, 1, 4, 0, 4},
      {3, 5, 1, 2, SFT_ERR_VERSION, 0}, /* b too old for a */
      {1, 2, 3, 5, SFT_ERR_VERSION, 0}, /* a too old for b */
      {2, 2, 1, 1, SFT_ERR_VERSION, 0},
      {4, 9, 4, 9, 0, 9},
      {1, UINT32_MAX, 1, UINT32_MAX, 0, UINT32_MAX},
      {0, 1, 1, 1, SFT_ERR_INVAL, 0},
      {1, 1, 0, 1, SFT_ERR_INVAL, 0},
      {2, 1, 1, 1, SFT_ERR_INVAL, 0},
      {1, 1, 3, 2, SFT_ERR_INVAL, 0},
  };
  (void)state;
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    uint32_t v = 4242;
    int rv = sft_proto_negotiate(t[i].amin, t[i].acur, t[i].bmin, t[i].bcur,
                                 &v);
    assert_int_equal(rv, t[i].rv);
    assert_int_equal(v, rv ? 4242u : t[i].v);
    /* symmetric */
    v = 4242;
    assert_int_equal(sft_proto_negotiate(t[i].bmin, t[i].bcur, t[i].amin,
                                         t[i].acur, &v),
                     t[i].rv);
    assert_int_equal(v, rv ? 4242u : t[i].v);
  }
  {
    uint32_t v;
    assert_int_equal(sft_proto_negotiate(SFT_PROTO_VERSION_MIN,
                                         SFT_PROTO_VERSION_CURRENT,
                                         SFT_PROTO_VERSION_MIN,
                                         SFT_PROTO_VERSION_CURRENT, &v),
                     0);
    assert_int_equal(v, SFT_PROTO_VERSION_CURRENT);
  }
}

/* ---- framing ---------------------------------------------------------- */

static void test_frame_names(void **state) {
  (void)state;
  assert_string_equal(sft_msg_type_name(SFT_MSG_HELLO), "HELLO");
  assert_string_equal(sft_msg_type_name(SFT_MSG_ERROR), "ERROR");
  assert_string_equal(sft_msg_type_name(0), "UNKNOWN");
  assert_string_equal(sft_msg_type_name(11), "UNKNOWN");
  assert_string_equal(sft_msg_type_name(UINT64_MAX), "UNKNOWN");
  assert_false(sft_msg_type_known(0));
  assert_true(sft_msg_type_known(SFT_MSG_COMPLETE));
  assert_false(sft_msg_type_known(0x0b));
}

static void test_frame_bad_and_partial(void **state) {
  struct sft_frame f;
  size_t used = 99;
  struct raw r;
  (void)state;
  assert_int_equal(sft_frame_parse(NULL, 0, &f, &used), SFT_ERR_AGAIN);
  /* an empty body is a complete frame */
  {
    const uint8_t b[] = {0x06, 0x00, 0xee};
    assert_int_equal(sft_frame_parse(b, 1, &f, &used), SFT_ERR_AGAIN);
    assert_int_equal(sft_frame_parse(b, 3, &f, &used), 0);
    assert_int_equal(used, 2);
    assert_int_equal(f.body_len, 0);
    assert_int_equal(f.type, 6);
  }
  /* unknown types are framed (the dispatcher judges them) */
  {
    const uint8_t b[] = {0x7f, 0xff, 0x02, 0xaa, 0xbb};
    assert_int_equal(sft_frame_parse(b, sizeof(b), &f, &used), 0);
    assert_int_equal(f.type, 0x3fff);
    assert_int_equal(f.body_len, 2);
    assert_ptr_equal(f.body, b + 3);
  }
  /* length exactly the bound: partial body -> need more */
  raw_init(&r);
  sft_wr_varint(&r.w, SFT_MSG_ACCEPT);
  sft_wr_varint(&r.w, SFT_MAX_CTRL_MSG);
  assert_int_equal(sft_frame_parse(r.b, r.w.off, &f, &used), SFT_ERR_AGAIN);
  /* bound + 1: bad frame as soon as the header is complete */
  raw_init(&r);
  sft_wr_varint(&r.w, SFT_MSG_ACCEPT);
  sft_wr_varint(&r.w, SFT_MAX_CTRL_MSG + 1);
  assert_int_equal(sft_frame_parse(r.b, r.w.off, &f, &used),
                   SFT_ERR_TOO_LARGE);
  for (size_t i = 0; i < r.w.off; i++)
    assert_int_equal(sft_frame_parse(r.b, i, &f, &used), SFT_ERR_AGAIN);
  /* huge 8-byte length */
  {
    const uint8_t b[] = {0x01, 0xff, 0xff, 0xff, 0xff,
                         0xff, 0xff, 0xff, 0xff};
    assert_int_equal(sft_frame_parse(b, sizeof(b), &f, &used),
                     SFT_ERR_TOO_LARGE);
  }
  /* non-minimal varints in the header */
  {
    const uint8_t t[] = {0x40, 0x01, 0x00};
    const uint8_t l[] = {0x01, 0x40, 0x00};
    assert_int_equal(sft_frame_parse(t, sizeof(t), &f, &used),
                     SFT_ERR_MALFORMED);
    assert_int_equal(sft_frame_parse(l, sizeof(l), &f, &used),
                     SFT_ERR_MALFORMED);
  }
  assert_int_equal(used, 5); /* untouched by the failures above */
}

/* ---- sample messages -------------------------------------------------- */

static uint8_t sample_ext[3] = {9, 8, 7};
static uint8_t sample_bitmap[3] = {0xff, 0x00, 0x05};

static void sample_hello(struct sft_msg_hello *m) {
  memset(m, 0, sizeof(*m));
  m->version_current = SFT_PROTO_VERSION_CURRENT;
  m->version_min = SFT_PROTO_VERSION_MIN;
  for (int i = 0; i < SFT_SESSION_ID_LEN; i++)
    m->session_id[i] = (uint8_t)(0xc0 + i);
  m->role = SFT_ROLE_SENDER;
  m->flags = SFT_HELLO_F_ATTACH;
  strcpy(m->agent, "sft/0.1.0 (linux)");
  m->agent_len = strlen(m->agent);
  m->ext = sample_ext;
  m->ext_len = sizeof(sample_ext);
}

static void sample_offer(struct sft_msg_offer *m) {
  memset(m, 0, sizeof(*m));
  m->file_id = 7;
  m->priority = SFT_PROTO_PRIO_HIGH;
  sft_manifest_init(&m->manifest);
  assert_int_equal(sft_manifest_set_name(&m->manifest, "a/b.iso", 7), 0);
  assert_int_equal(sft_manifest_set_geometry(&m->manifest, 5000000, 65536),
                   0);
  m->manifest.mtime_sec = 1234567890;
  m->manifest.mtime_nsec = 42;
}

static void sample_accept(struct sft_msg_accept *m) {
  memset(m, 0, sizeof(*m));
  m->file_id = 7;
  m->status = SFT_ACCEPT_OK;
  m->chunk_count = 20; /* bits 16 and 18 in the third byte */
  m->bitmap = sample_bitmap;
  m->bitmap_len = sizeof(sample_bitmap);
}

static struct sft_ack_range sample_ranges[] = {
    {0, 9}, {11, 11}, {13, 1000}, {SFT_MAX_CHUNKS - 1, SFT_MAX_CHUNKS - 1}};

static void sample_ack(struct sft_msg_ack *m) {
  m->file_id = 3;
  m->ranges = sample_ranges;
  m->nranges = sizeof(sample_ranges) / sizeof(sample_ranges[0]);
}

/* ---- HELLO ------------------------------------------------------------ */

static void hello_rt(const struct sft_msg_hello *m) {
  static struct sft_msg_hello back;
  size_t n = ENCODE(sft_msg_hello_encode, m, big, sizeof(big)), bl;
  const uint8_t *body = body_of(big, n, SFT_MSG_HELLO, &bl);
  assert_int_equal(sft_msg_hello_decode(body, bl, &back), 0);
  assert_int_equal(back.version_current, m->version_current);
  assert_int_equal(back.version_min, m->version_min);
  assert_memory_equal(back.session_id, m->session_id, SFT_SESSION_ID_LEN);
  assert_int_equal(back.role, m->role);
  assert_true(back.flags == m->flags);
  assert_int_equal(back.agent_len, m->agent_len);
  assert_memory_equal(back.agent, m->agent, m->agent_len);
  assert_int_equal(back.agent[back.agent_len], '\0');
  assert_int_equal(back.ext_len, m->ext_len);
  if (m->ext_len) {
    assert_memory_equal(back.ext, m->ext, m->ext_len);
    assert_true(back.ext >= body && back.ext + back.ext_len <= body + bl);
  } else {
    assert_null(back.ext);
  }
}

static void test_hello(void **state) {
  static struct sft_msg_hello m;
  static uint8_t ext[SFT_PROTO_MAX_HELLO_EXT + 1];
  size_t n;
  (void)state;
  sample_hello(&m);
  hello_rt(&m);
  m.role = SFT_ROLE_RECEIVER;
  m.flags = SFT_VARINT_MAX; /* unknown bits are kept */
  m.agent_len = 0;
  m.ext_len = 0;
  m.ext = NULL;
  hello_rt(&m);
  m.version_min = 3;
  m.version_current = UINT32_MAX;
  memset(m.agent, '~', SFT_PROTO_MAX_AGENT);
  m.agent_len = SFT_PROTO_MAX_AGENT;
  m.ext = ext;
  m.ext_len = SFT_PROTO_MAX_HELLO_EXT;
  hello_rt(&m);
  /* encoder bounds */
  m.agent_len = SFT_PROTO_MAX_AGENT + 1;
  assert_int_equal(sft_msg_hello_encode(NULL, 0, &m, &n), SFT_ERR_TOO_LARGE);
  m.agent_len = 1;
  m.agent[0] = '\n';
  assert_int_equal(sft_msg_hello_encode(NULL, 0, &m, &n), SFT_ERR_MALFORMED);
  m.agent[0] = 'a';
  m.ext_len = SFT_PROTO_MAX_HELLO_EXT + 1;
  assert_int_equal(sft_msg_hello_encode(NULL, 0, &m, &n), SFT_ERR_TOO_LARGE);
  m.ext_len = 1;
  m.ext = NULL;
  assert_int_equal(sft_msg_hello_encode(NULL, 0, &m, &n), SFT_ERR_INVAL);
  sample_hello(&m);
  m.version_min = 0;
  assert_int_equal(sft_msg_hello_encode(NULL, 0, &m, &n), SFT_ERR_VERSION);
  m.version_min = 2;
  m.version_current = 1;
  assert_int_equal(sft_msg_hello_encode(NULL, 0, &m, &n), SFT_ERR_VERSION);
  sample_hello(&m);
  m.role = (enum sft_role)3;
  assert_int_equal(sft_msg_hello_encode(NULL, 0, &m, &n), SFT_ERR_MALFORMED);
}

/* HELLO body writer with every field explicit. */
static int hello_raw(uint64_t cur, uint64_t min, uint8_t role, uint64_t alen,
                     const char *agent, uint64_t elen) {
  static struct sft_msg_hello m;
  struct raw r;
  raw_init(&r);
  sft_wr_varint(&r.w, cur);
  sft_wr_varint(&r.w, min);
  for (int i = 0; i < SFT_SESSION_ID_LEN; i++)
    sft_wr_u8(&r.w, (uint8_t)i);
  sft_wr_u8(&r.w, role);
  sft_wr_varint(&r.w, 0);
  sft_wr_varint(&r.w, alen);
  sft_wr_bytes(&r.w, agent, strlen(agent));
  sft_wr_varint(&r.w, elen);
  for (uint64_t i = 0; i < elen && i < 100; i++)
    sft_wr_u8(&r.w, 0);
  assert_int_equal(r.w.err, 0);
  return sft_msg_hello_decode(r.b, r.w.off, &m);
}

static void test_hello_rejects(void **state) {
  (void)state;
  assert_int_equal(hello_raw(1, 1, 1, 2, "ok", 0), 0);
  assert_int_equal(hello_raw(1, 1, 2, 0, "", 3), 0);
  assert_int_equal(hello_raw(1, 0, 1, 0, "", 0), SFT_ERR_VERSION);
  assert_int_equal(hello_raw(1, 2, 1, 0, "", 0), SFT_ERR_VERSION);
  assert_int_equal(hello_raw(0, 0, 1, 0, "", 0), SFT_ERR_VERSION);
  assert_int_equal(hello_raw((uint64_t)UINT32_MAX + 1, 1, 1, 0, "", 0),
                   SFT_ERR_RANGE);
  assert_int_equal(hello_raw(1, (uint64_t)UINT32_MAX + 1, 1, 0, "", 0),
                   SFT_ERR_RANGE);
  /* a future peer (min 5, cur 9) decodes fine: negotiation rejects it */
  assert_int_equal(hello_raw(9, 5, 1, 0, "", 0), 0);
  assert_int_equal(hello_raw(1, 1, 0, 0, "", 0), SFT_ERR_MALFORMED);
  assert_int_equal(hello_raw(1, 1, 3, 0, "", 0), SFT_ERR_MALFORMED);
  assert_int_equal(hello_raw(1, 1, 1, SFT_PROTO_MAX_AGENT + 1, "", 0),
                   SFT_ERR_TOO_LARGE);
  assert_int_equal(hello_raw(1, 1, 1, 3, "a\tb", 0), SFT_ERR_MALFORMED);
  assert_int_equal(hello_raw(1, 1, 1, 1, "\x7f", 0), SFT_ERR_MALFORMED);
  assert_int_equal(hello_raw(1, 1, 1, 1, "\x80", 0), SFT_ERR_MALFORMED);
  assert_int_equal(hello_raw(1, 1, 1, 0, "", SFT_PROTO_MAX_HELLO_EXT + 1),
                   SFT_ERR_TOO_LARGE);
  /* declared ext longer than what follows */
  assert_int_equal(hello_raw(1, 1, 1, 0, "", 200), SFT_ERR_TRUNCATED);
}

/* ---- OFFER ------------------------------------------------------------ */

static void test_offer(void **state) {
  static struct sft_msg_offer m, back;
  size_t n, bl;
  const uint8_t *body;
  struct raw r;
  (void)state;
  sample_offer(&m);
  for (int prio = 0; prio <= 2; prio++) {
    m.priority = (enum sft_proto_prio)prio;
    m.file_id = prio == 2 ? SFT_MAX_FILES - 1 : (uint64_t)prio;
    n = ENCODE(sft_msg_offer_encode, &m, big, sizeof(big));
    body = body_of(big, n, SFT_MSG_OFFER, &bl);
    assert_int_equal(sft_msg_offer_decode(body, bl, &back), 0);
    assert_true(back.file_id == m.file_id);
    assert_int_equal(back.priority, m.priority);
    assert_true(sft_manifest_equal(&back.manifest, &m.manifest));
  }
  /* the longest offer still fits one frame */
  {
    static char name[SFT_MAX_NAME];
    uint8_t root[32] = {1};
    memset(name, 'z', sizeof(name));
    assert_int_equal(sft_manifest_set_name(&m.manifest, name, sizeof(name)),
                     0);
    sft_manifest_set_root(&m.manifest, root);
    n = ENCODE(sft_msg_offer_encode, &m, big, sizeof(big));
    body = body_of(big, n, SFT_MSG_OFFER, &bl);
    assert_int_equal(sft_msg_offer_decode(body, bl, &back), 0);
    assert_true(sft_manifest_equal(&back.manifest, &m.manifest));
  }
  /* encoder rejects */
  sample_offer(&m);
  m.file_id = SFT_MAX_FILES;
  assert_int_equal(sft_msg_offer_encode(NULL, 0, &m, &n), SFT_ERR_RANGE);
  sample_offer(&m);
  m.priority = (enum sft_proto_prio)3;
  assert_int_equal(sft_msg_offer_encode(NULL, 0, &m, &n), SFT_ERR_MALFORMED);
  sample_offer(&m);
  m.manifest.chunk_count++;
  assert_int_equal(sft_msg_offer_encode(NULL, 0, &m, &n), SFT_ERR_MALFORMED);
  /* decoder rejects: forge the prefix, reuse a valid manifest */
  sample_offer(&m);
  n = ENCODE(sft_msg_offer_encode, &m, big, sizeof(big));
  body = body_of(big, n, SFT_MSG_OFFER, &bl);
  memcpy(big2 + 8, body + 2, bl - 2); /* the manifest (file id 7: 1 byte) */
  raw_init(&r);
  sft_wr_varint(&r.w, SFT_MAX_FILES);
  sft_wr_u8(&r.w, 1);
  memcpy(big2 + 8 - r.w.off, r.b, r.w.off);
  assert_int_equal(sft_msg_offer_decode(big2 + 8 - r.w.off, r.w.off + bl - 2,
                                        &back),
                   SFT_ERR_RANGE);
  big2[7] = 3; /* priority 3 */
  big2[6] = 7; /* file id 7 */
  assert_int_equal(sft_msg_offer_decode(big2 + 6, bl, &back),
                   SFT_ERR_MALFORMED);
  big2[7] = 2;
  assert_int_equal(sft_msg_offer_decode(big2 + 6, bl, &back), 0);
  big2[8] = 9; /* manifest version 9 */
  assert_int_equal(sft_msg_offer_decode(big2 + 6, bl, &back), SFT_ERR_VERSION);
}

/* ---- ACCEPT ----------------------------------------------------------- */

static int accept_raw(uint64_t count, const uint8_t *bm, uint64_t len) {
  static struct sft_msg_accept m;
  struct raw r;
  raw_init(&r);
  sft_wr_varint(&r.w, 1);
  sft_wr_u8(&r.w, SFT_ACCEPT_OK);
  sft_wr_varint(&r.w, count);
  sft_wr_varint(&r.w, len);
  if (bm)
    sft_wr_bytes(&r.w, bm, len);
  assert_int_equal(r.w.err, 0);
  return sft_msg_accept_decode(r.b, r.w.off, &m);
}

static void test_accept(void **state) {
  static struct sft_msg_accept m, back;
  size_t n, bl;
  const uint8_t *body;
  (void)state;
  sample_accept(&m);
  n = ENCODE(sft_msg_accept_encode, &m, big, sizeof(big));
  body = body_of(big, n, SFT_MSG_ACCEPT, &bl);
  assert_int_equal(sft_msg_accept_decode(body, bl, &back), 0);
  assert_int_equal(back.status, SFT_ACCEPT_OK);
  assert_int_equal(back.chunk_count, 20);
  assert_int_equal(back.bitmap_len, 3);
  assert_memory_equal(back.bitmap, sample_bitmap, 3);
  assert_true(back.bitmap > body && back.bitmap + 3 == body + bl); /* borrowed */
  assert_true(sft_have_bit(back.bitmap, back.bitmap_len, 0));
  assert_true(sft_have_bit(back.bitmap, back.bitmap_len, 7));
  assert_false(sft_have_bit(back.bitmap, back.bitmap_len, 8));
  assert_true(sft_have_bit(back.bitmap, back.bitmap_len, 16));
  assert_false(sft_have_bit(back.bitmap, back.bitmap_len, 17));
  assert_true(sft_have_bit(back.bitmap, back.bitmap_len, 18));
  assert_false(sft_have_bit(back.bitmap, back.bitmap_len, 19));
  assert_false(sft_have_bit(back.bitmap, back.bitmap_len, 1000));
  /* nothing held, empty file */
  m.bitmap = NULL;
  m.bitmap_len = 0;
  m.chunk_count = 0;
  n = ENCODE(sft_msg_accept_encode, &m, big, sizeof(big));
  body = body_of(big, n, SFT_MSG_ACCEPT, &bl);
  assert_int_equal(sft_msg_accept_decode(body, bl, &back), 0);
  assert_null(back.bitmap);
  assert_int_equal(back.bitmap_len, 0);
  /* refused */
  memset(&m, 0, sizeof(m));
  m.file_id = SFT_MAX_FILES - 1;
  m.status = SFT_ACCEPT_REFUSED;
  m.reason = SFT_REASON_NOSPACE;
  n = ENCODE(sft_msg_accept_encode, &m, big, sizeof(big));
  body = body_of(big, n, SFT_MSG_ACCEPT, &bl);
  assert_int_equal(sft_msg_accept_decode(body, bl, &back), 0);
  assert_int_equal(back.status, SFT_ACCEPT_REFUSED);
  assert_int_equal(back.reason, SFT_REASON_NOSPACE);
  assert_true(back.file_id == SFT_MAX_FILES - 1);
  m.reason = 0xffff; /* unknown reasons pass */
  n = ENCODE(sft_msg_accept_encode, &m, big, sizeof(big));
  body = body_of(big, n, SFT_MSG_ACCEPT, &bl);
  assert_int_equal(sft_msg_accept_decode(body, bl, &back), 0);
  assert_int_equal(back.reason, 0xffff);
  m.chunk_count = 1; /* refused carries no bitmap state */
  assert_int_equal(sft_msg_accept_encode(NULL, 0, &m, &n), SFT_ERR_INVAL);

  /* the largest bitmap: every chunk of a max-chunk file held, capped */
  memset(&m, 0, sizeof(m));
  m.status = SFT_ACCEPT_OK;
  m.chunk_count = SFT_MAX_CHUNKS;
  memset(big2, 0xff, SFT_PROTO_MAX_BITMAP);
  m.bitmap = big2;
  m.bitmap_len = SFT_PROTO_MAX_BITMAP;
  n = ENCODE(sft_msg_accept_encode, &m, big, sizeof(big));
  body = body_of(big, n, SFT_MSG_ACCEPT, &bl);
  assert_true(bl <= SFT_MAX_CTRL_MSG);
  assert_int_equal(sft_msg_accept_decode(body, bl, &back), 0);
  assert_int_equal(back.bitmap_len, SFT_PROTO_MAX_BITMAP);
  m.bitmap_len = SFT_PROTO_MAX_BITMAP + 1;
  assert_int_equal(sft_msg_accept_encode(NULL, 0, &m, &n), SFT_ERR_TOO_LARGE);

  /* encoder rejects non-canonical bitmaps */
  sample_accept(&m);
  m.chunk_count = 18; /* bit 18 is past the end */
  assert_int_equal(sft_msg_accept_encode(NULL, 0, &m, &n), SFT_ERR_MALFORMED);
  m.chunk_count = 16; /* three bytes for 16 chunks */
  assert_int_equal(sft_msg_accept_encode(NULL, 0, &m, &n), SFT_ERR_MALFORMED);
  m.chunk_count = SFT_MAX_CHUNKS + 1;
  assert_int_equal(sft_msg_accept_encode(NULL, 0, &m, &n), SFT_ERR_TOO_LARGE);
  m.chunk_count = 20;
  m.reason = 1; /* accepted with a reason */
  assert_int_equal(sft_msg_accept_encode(NULL, 0, &m, &n), SFT_ERR_INVAL);

  /* decoder rejects */
  {
    const uint8_t ok[] = {0x01, 0x01}; /* chunks 0 and 8 */
    const uint8_t trail0[] = {0x01, 0x00};
    const uint8_t past[] = {0x01, 0x02};
    assert_int_equal(accept_raw(9, ok, 2), 0);
    assert_int_equal(accept_raw(16, ok, 2), 0);
    assert_int_equal(accept_raw(8, ok, 2), SFT_ERR_MALFORMED); /* too long */
    assert_int_equal(accept_raw(9, trail0, 2), SFT_ERR_MALFORMED);
    assert_int_equal(accept_raw(9, trail0, 1), 0); /* trimmed */
    assert_int_equal(accept_raw(9, past, 2), SFT_ERR_MALFORMED); /* bit 9 */
    assert_int_equal(accept_raw(10, past, 2), 0);
    assert_int_equal(accept_raw(SFT_MAX_CHUNKS, ok, 2), 0);
    assert_int_equal(accept_raw(SFT_MAX_CHUNKS + 1, ok, 2),
                     SFT_ERR_TOO_LARGE);
    assert_int_equal(accept_raw(SFT_MAX_CHUNKS, NULL,
                                SFT_PROTO_MAX_BITMAP + 1),
                     SFT_ERR_TOO_LARGE);
    assert_int_equal(accept_raw(100, NULL, 5), SFT_ERR_TRUNCATED);
  }
  {
    const uint8_t bad_status[] = {0x01, 0x02, 0x00, 0x00};
    assert_int_equal(sft_msg_accept_decode(bad_status, sizeof(bad_status),
                                           &back),
                     SFT_ERR_MALFORMED);
  }
  assert_int_equal(sft_have_trim(sample_bitmap, 3), 3);
  assert_int_equal(sft_have_trim((const uint8_t[]){1, 0, 0}, 3), 1);
  assert_int_equal(sft_have_trim((const uint8_t[]){0, 0}, 2), 0);
}

/* ---- ACK -------------------------------------------------------------- */

static void test_ack(void **state) {
  struct sft_msg_ack m, back;
  size_t n, bl;
  const uint8_t *body;
  struct raw r;
  (void)state;
  sample_ack(&m);
  n = ENCODE(sft_msg_ack_encode, &m, big, sizeof(big));
  body = body_of(big, n, SFT_MSG_ACK, &bl);
  assert_int_equal(sft_msg_ack_decode(body, bl, &back, ranges_out,
                                      SFT_MAX_ACK_RANGES),
                   0);
  assert_int_equal(back.nranges, m.nranges);
  assert_ptr_equal(back.ranges, ranges_out);
  assert_memory_equal(back.ranges, m.ranges,
                      m.nranges * sizeof(struct sft_ack_range));
  /* exactly enough storage, then one short */
  assert_int_equal(sft_msg_ack_decode(body, bl, &back, ranges_out, 4), 0);
  assert_int_equal(sft_msg_ack_decode(body, bl, &back, ranges_out, 3),
                   SFT_ERR_FULL);
  assert_int_equal(sft_msg_ack_decode(body, bl, &back, NULL, 0), SFT_ERR_FULL);

  /* the maximum number of ranges */
  for (size_t i = 0; i <= SFT_MAX_ACK_RANGES; i++) {
    ranges_in[i].first = 3 * i;
    ranges_in[i].last = 3 * i + (i & 1);
  }
  m.ranges = ranges_in;
  m.nranges = SFT_MAX_ACK_RANGES;
  n = ENCODE(sft_msg_ack_encode, &m, big, sizeof(big));
  body = body_of(big, n, SFT_MSG_ACK, &bl);
  assert_int_equal(sft_msg_ack_decode(body, bl, &back, ranges_out,
                                      SFT_MAX_ACK_RANGES),
                   0);
  assert_int_equal(back.nranges, SFT_MAX_ACK_RANGES);
  assert_memory_equal(back.ranges, ranges_in,
                      SFT_MAX_ACK_RANGES * sizeof(struct sft_ack_range));
  m.nranges = SFT_MAX_ACK_RANGES + 1;
  assert_int_equal(sft_msg_ack_encode(NULL, 0, &m, &n), SFT_ERR_TOO_LARGE);
  /* ... and a forged count above the bound */
  raw_init(&r);
  sft_wr_varint(&r.w, 0);
  sft_wr_varint(&r.w, SFT_MAX_ACK_RANGES + 1);
  assert_int_equal(sft_msg_ack_decode(r.b, r.w.off, &back, ranges_out,
                                      SFT_MAX_ACK_RANGES),
                   SFT_ERR_TOO_LARGE);

  /* encoder rejects bad lists */
  {
    struct sft_ack_range bad[2];
    m.ranges = bad;
    m.nranges = 0;
    assert_int_equal(sft_msg_ack_encode(NULL, 0, &m, &n), SFT_ERR_MALFORMED);
    m.nranges = 1;
    bad[0] = (struct sft_ack_range){5, 4};
    assert_int_equal(sft_msg_ack_encode(NULL, 0, &m, &n), SFT_ERR_MALFORMED);
    bad[0] = (struct sft_ack_range){0, SFT_MAX_CHUNKS};
    assert_int_equal(sft_msg_ack_encode(NULL, 0, &m, &n), SFT_ERR_RANGE);
    bad[0] = (struct sft_ack_range){0, SFT_MAX_CHUNKS - 1};
    assert_int_equal(sft_msg_ack_encode(NULL, 0, &m, &n), 0);
    m.nranges = 2;
    bad[0] = (struct sft_ack_range){0, 4};
    bad[1] = (struct sft_ack_range){5, 9}; /* adjacent: must be merged */
    assert_int_equal(sft_msg_ack_encode(NULL, 0, &m, &n), SFT_ERR_MALFORMED);
    bad[1] = (struct sft_ack_range){3, 9}; /* overlapping */
    assert_int_equal(sft_msg_ack_encode(NULL, 0, &m, &n), SFT_ERR_MALFORMED);
    bad[0] = (struct sft_ack_range){10, 12};
    bad[1] = (struct sft_ack_range){1, 2}; /* unsorted */
    assert_int_equal(sft_msg_ack_encode(NULL, 0, &m, &n), SFT_ERR_MALFORMED);
    bad[1] = (struct sft_ack_range){14, 14};
    assert_int_equal(sft_msg_ack_encode(NULL, 0, &m, &n), 0);
    m.file_id = SFT_MAX_FILES;
    assert_int_equal(sft_msg_ack_encode(NULL, 0, &m, &n), SFT_ERR_RANGE);
  }
  /* decoder rejects */
  raw_init(&r);
  sft_wr_varint(&r.w, 0);
  sft_wr_varint(&r.w, 0); /* zero ranges */
  assert_int_equal(sft_msg_ack_decode(r.b, r.w.off, &back, ranges_out, 8),
                   SFT_ERR_MALFORMED);
  raw_init(&r);
  sft_wr_varint(&r.w, 0);
  sft_wr_varint(&r.w, 2);
  sft_wr_varint(&r.w, SFT_MAX_CHUNKS - 3);
  sft_wr_varint(&r.w, 0); /* [max-3, max-3] */
  sft_wr_varint(&r.w, 0);
  sft_wr_varint(&r.w, 1); /* [max-1, max] : last out of range */
  assert_int_equal(sft_msg_ack_decode(r.b, r.w.off, &back, ranges_out, 8),
                   SFT_ERR_RANGE);
  r.b[r.w.off - 1] = 0; /* [max-1, max-1]: fine */
  assert_int_equal(sft_msg_ack_decode(r.b, r.w.off, &back, ranges_out, 8), 0);
  assert_true(back.ranges[1].first == SFT_MAX_CHUNKS - 1);
  raw_init(&r);
  sft_wr_varint(&r.w, 0);
  sft_wr_varint(&r.w, 1);
  sft_wr_varint(&r.w, SFT_VARINT_MAX); /* absurd delta */
  sft_wr_varint(&r.w, 0);
  assert_int_equal(sft_msg_ack_decode(r.b, r.w.off, &back, ranges_out, 8),
                   SFT_ERR_RANGE);
}

/* ---- small messages ---------------------------------------------------- */

static void test_need(void **state) {
  struct sft_msg_need m = {.file_id = 5, .stripe = 123456, .count = 3}, back;
  size_t n, bl;
  const uint8_t *body;
  struct raw r;
  (void)state;
  n = ENCODE(sft_msg_need_encode, &m, big, sizeof(big));
  body = body_of(big, n, SFT_MSG_NEED, &bl);
  assert_int_equal(sft_msg_need_decode(body, bl, &back), 0);
  assert_true(back.file_id == 5 && back.stripe == 123456 && back.count == 3);
  m.stripe = SFT_MAX_CHUNKS - 1;
  m.count = SFT_MAX_STRIPE;
  n = ENCODE(sft_msg_need_encode, &m, big, sizeof(big));
  body = body_of(big, n, SFT_MSG_NEED, &bl);
  assert_int_equal(sft_msg_need_decode(body, bl, &back), 0);
  assert_true(back.stripe == SFT_MAX_CHUNKS - 1 && back.count == 255);
  m.count = 0;
  assert_int_equal(sft_msg_need_encode(NULL, 0, &m, &n), SFT_ERR_RANGE);
  m.count = 256;
  assert_int_equal(sft_msg_need_encode(NULL, 0, &m, &n), SFT_ERR_RANGE);
  m.count = 1;
  m.stripe = SFT_MAX_CHUNKS;
  assert_int_equal(sft_msg_need_encode(NULL, 0, &m, &n), SFT_ERR_RANGE);
  for (int i = 0; i < 3; i++) {
    const uint64_t vals[3][3] = {{SFT_MAX_FILES, 0, 1},
                                 {0, SFT_MAX_CHUNKS, 1},
                                 {0, 0, 256}};
    raw_init(&r);
    for (int j = 0; j < 3; j++)
      sft_wr_varint(&r.w, vals[i][j]);
    assert_int_equal(sft_msg_need_decode(r.b, r.w.off, &back), SFT_ERR_RANGE);
  }
  raw_init(&r);
  sft_wr_varint(&r.w, 0);
  sft_wr_varint(&r.w, 0);
  sft_wr_varint(&r.w, 0);
  assert_int_equal(sft_msg_need_decode(r.b, r.w.off, &back), SFT_ERR_RANGE);
}

static void test_pause_resume_cancel(void **state) {
  static const uint64_t ids[] = {0, 1, SFT_MAX_FILES - 1, SFT_FILE_ID_ALL};
  struct sft_msg_pause p, pb;
  struct sft_msg_cancel c, cb;
  size_t n, bl;
  const uint8_t *body;
  (void)state;
  for (size_t i = 0; i < 4; i++) {
    p.file_id = ids[i];
    n = ENCODE(sft_msg_pause_encode, &p, big, sizeof(big));
    body = body_of(big, n, SFT_MSG_PAUSE, &bl);
    assert_int_equal(sft_msg_pause_decode(body, bl, &pb), 0);
    assert_true(pb.file_id == ids[i]);
    n = ENCODE(sft_msg_resume_encode, &p, big, sizeof(big));
    body = body_of(big, n, SFT_MSG_RESUME, &bl);
    assert_int_equal(sft_msg_resume_decode(body, bl, &pb), 0);
    assert_true(pb.file_id == ids[i]);
    c.file_id = ids[i];
    c.reason = (uint16_t)(i * 20000);
    n = ENCODE(sft_msg_cancel_encode, &c, big, sizeof(big));
    body = body_of(big, n, SFT_MSG_CANCEL, &bl);
    assert_int_equal(sft_msg_cancel_decode(body, bl, &cb), 0);
    assert_true(cb.file_id == ids[i] && cb.reason == c.reason);
  }
  p.file_id = SFT_MAX_FILES;
  assert_int_equal(sft_msg_pause_encode(NULL, 0, &p, &n), SFT_ERR_RANGE);
  assert_int_equal(sft_msg_resume_encode(NULL, 0, &p, &n), SFT_ERR_RANGE);
  c.file_id = SFT_FILE_ID_ALL - 1;
  assert_int_equal(sft_msg_cancel_encode(NULL, 0, &c, &n), SFT_ERR_RANGE);
  {
    const uint8_t scope2[] = {0x02};
    const uint8_t all_with_id[] = {0x01, 0x05};
    const uint8_t file_big[] = {0x00, 0x80, 0x0f, 0x42, 0x40}; /* 1000000 */
    const uint8_t cancel_short[] = {0x01, 0x00};
    assert_int_equal(sft_msg_pause_decode(scope2, 1, &pb), SFT_ERR_MALFORMED);
    assert_int_equal(sft_msg_resume_decode(all_with_id, 2, &pb),
                     SFT_ERR_MALFORMED);
    assert_int_equal(sft_msg_pause_decode(file_big, sizeof(file_big), &pb),
                     SFT_ERR_RANGE);
    assert_int_equal(sft_msg_cancel_decode(cancel_short, 2, &cb),
                     SFT_ERR_TRUNCATED);
  }
}

static void test_complete(void **state) {
  struct sft_msg_complete m, back;
  size_t n, bl;
  const uint8_t *body;
  (void)state;
  m.file_id = SFT_MAX_FILES - 1;
  for (int i = 0; i < 32; i++)
    m.root[i] = (uint8_t)(255 - i);
  n = ENCODE(sft_msg_complete_encode, &m, big, sizeof(big));
  body = body_of(big, n, SFT_MSG_COMPLETE, &bl);
  assert_int_equal(sft_msg_complete_decode(body, bl, &back), 0);
  assert_true(back.file_id == m.file_id);
  assert_memory_equal(back.root, m.root, 32);
  m.file_id = SFT_FILE_ID_ALL; /* COMPLETE is per file */
  assert_int_equal(sft_msg_complete_encode(NULL, 0, &m, &n), SFT_ERR_RANGE);
}

static void test_error(void **state) {
  static struct sft_msg_error m, back;
  size_t n, bl;
  const uint8_t *body;
  struct raw r;
  (void)state;
  memset(&m, 0, sizeof(m));
  m.code = (uint16_t)-SFT_ERR_PEER;
  m.file_id = SFT_FILE_ID_ALL;
  n = ENCODE(sft_msg_error_encode, &m, big, sizeof(big)); /* empty text */
  body = body_of(big, n, SFT_MSG_ERROR, &bl);
  assert_int_equal(sft_msg_error_decode(body, bl, &back), 0);
  assert_int_equal(back.code, 20);
  assert_true(back.file_id == SFT_FILE_ID_ALL);
  assert_int_equal(back.text_len, 0);
  assert_string_equal(back.text, "");
  m.file_id = 9;
  memset(m.text, 'e', SFT_MAX_ERROR_TEXT);
  m.text_len = SFT_MAX_ERROR_TEXT;
  m.code = 0xffff;
  n = ENCODE(sft_msg_error_encode, &m, big, sizeof(big));
  body = body_of(big, n, SFT_MSG_ERROR, &bl);
  assert_int_equal(sft_msg_error_decode(body, bl, &back), 0);
  assert_int_equal(back.text_len, SFT_MAX_ERROR_TEXT);
  assert_memory_equal(back.text, m.text, SFT_MAX_ERROR_TEXT);
  assert_int_equal(back.text[SFT_MAX_ERROR_TEXT], '\0');
  assert_int_equal(back.code, 0xffff);
  assert_true(back.file_id == 9);
  m.text_len = SFT_MAX_ERROR_TEXT + 1;
  assert_int_equal(sft_msg_error_encode(NULL, 0, &m, &n), SFT_ERR_TOO_LARGE);
  m.text_len = 5;
  m.text[2] = '\0';
  assert_int_equal(sft_msg_error_encode(NULL, 0, &m, &n), SFT_ERR_MALFORMED);
  /* decoder: NUL in text, text above the bound */
  raw_init(&r);
  sft_wr_u16(&r.w, 1);
  sft_wr_u8(&r.w, 1);
  sft_wr_varint(&r.w, 3);
  sft_wr_bytes(&r.w, "a\0b", 3);
  assert_int_equal(sft_msg_error_decode(r.b, r.w.off, &back),
                   SFT_ERR_MALFORMED);
  raw_init(&r);
  sft_wr_u16(&r.w, 1);
  sft_wr_u8(&r.w, 1);
  sft_wr_varint(&r.w, SFT_MAX_ERROR_TEXT + 1);
  assert_int_equal(sft_msg_error_decode(r.b, r.w.off, &back),
                   SFT_ERR_TOO_LARGE);
}

/* ---- truncation and streams over every message ------------------------- */

/* One valid frame of each type, back to back in |out|; returns the length
 * and the frame boundaries in ends[]. */
static size_t all_frames(uint8_t *out, size_t cap, size_t ends[10]) {
  static struct sft_msg_hello hello;
  static struct sft_msg_offer offer;
  static struct sft_msg_accept accept;
  static struct sft_msg_error err;
  struct sft_msg_ack ack;
  struct sft_msg_need need = {.file_id = 7, .stripe = 70, .count = 2};
  struct sft_msg_pause pause = {.file_id = 7};
  struct sft_msg_cancel cancel = {.file_id = SFT_FILE_ID_ALL, .reason = 1};
  struct sft_msg_complete complete = {.file_id = 7, .root = {1, 2, 3}};
  size_t off = 0, n = 0;
  int k = 0;
  sample_hello(&hello);
  sample_offer(&offer);
  sample_accept(&accept);
  sample_ack(&ack);
  memset(&err, 0, sizeof(err));
  err.code = 5;
  err.file_id = 7;
  strcpy(err.text, "bad chunk");
  err.text_len = 9;
#define PUT(fn, m)                                                            \
  do {                                                                        \
    assert_int_equal(fn(out + off, cap - off, (m), &n), 0);                   \
    off += n;                                                                 \
    ends[k++] = off;                                                          \
  } while (0)
  PUT(sft_msg_hello_encode, &hello);
  PUT(sft_msg_offer_encode, &offer);
  PUT(sft_msg_accept_encode, &accept);
  PUT(sft_msg_ack_encode, &ack);
  PUT(sft_msg_need_encode, &need);
  PUT(sft_msg_pause_encode, &pause);
  PUT(sft_msg_resume_encode, &pause);
  PUT(sft_msg_cancel_encode, &cancel);
  PUT(sft_msg_complete_encode, &complete);
  PUT(sft_msg_error_encode, &err);
#undef PUT
  return off;
}

static void test_truncation_every_message(void **state) {
  size_t ends[10], len, off = 0;
  (void)state;
  len = all_frames(big, sizeof(big), ends);
  for (int i = 0; i < 10; i++) {
    struct sft_frame f;
    size_t used;
    assert_int_equal(sft_frame_parse(big + off, len - off, &f, &used), 0);
    assert_int_equal(f.type, (uint64_t)(i + 1));
    assert_int_equal(off + used, ends[i]);
    check_truncation(f.type, f.body, f.body_len);
    off += used;
  }
  assert_int_equal(off, len);
}

static void test_frame_stream_byte_by_byte(void **state) {
  size_t ends[10], len, start = 0, got = 0;
  (void)state;
  len = all_frames(big2, sizeof(big2), ends);
  /* Feed the stream one byte at a time into a receive buffer. */
  for (size_t have = 0; have <= len; have++) {
    for (;;) {
      struct sft_frame f;
      size_t used = 0;
      int rv = sft_frame_parse(big2 + start, have - start, &f, &used);
      if (rv == SFT_ERR_AGAIN)
        break;
      assert_int_equal(rv, 0);
      /* a frame completes exactly when its last byte arrives */
      assert_int_equal(start + used, ends[got]);
      assert_int_equal(have, ends[got]);
      assert_int_equal(f.type, got + 1);
      assert_int_equal(decode_any(f.type, f.body, f.body_len), 0);
      start += used;
      got++;
    }
  }
  assert_int_equal(got, 10);
  assert_int_equal(start, len);
}

/* ---- chunk header ------------------------------------------------------ */

static void test_chunk_hdr(void **state) {
  struct sft_chunk_hdr h, back;
  uint8_t buf[SFT_CHUNK_HDR_MAX + 8];
  size_t n, hl;
  (void)state;
  memset(&h, 0, sizeof(h));
  h.kind = SFT_CHUNK_DATA;
  h.file_id = SFT_MAX_FILES - 1;
  h.index = SFT_MAX_CHUNKS - 1;
  h.payload_len = SFT_CHUNK_SIZE_MAX;
  for (int i = 0; i < 32; i++)
    h.digest[i] = (uint8_t)(i * 7);
  for (int pass = 0; pass < 3; pass++) {
    n = ENCODE(sft_chunk_hdr_encode, &h, buf, sizeof(buf));
    assert_true(n <= SFT_CHUNK_HDR_MAX);
    buf[n] = 0xab; /* payload follows, not examined */
    assert_int_equal(sft_chunk_hdr_decode(buf, n + 1, &back, &hl), 0);
    assert_int_equal(hl, n);
    assert_int_equal(back.kind, h.kind);
    assert_true(back.file_id == h.file_id && back.index == h.index);
    assert_int_equal(back.parity_index, h.parity_index);
    assert_int_equal(back.payload_len, h.payload_len);
    assert_memory_equal(back.digest, h.digest, 32);
    for (size_t i = 0; i < n; i++) {
      uint8_t *p = malloc(i ? i : 1);
      assert_non_null(p);
      memcpy(p, buf, i);
      hl = 777;
      assert_int_equal(sft_chunk_hdr_decode(p, i, &back, &hl), SFT_ERR_AGAIN);
      assert_int_equal(hl, 777);
      free(p);
    }
    /* next pass: a parity chunk, then the smallest values */
    if (pass == 0) {
      h.kind = SFT_CHUNK_PARITY;
      h.parity_index = SFT_MAX_STRIPE - 2;
    } else {
      h.file_id = 0;
      h.index = 0;
      h.parity_index = 0;
      h.payload_len = 1;
    }
  }
  /* encoder rejects */
  h.kind = SFT_CHUNK_PARITY;
  h.parity_index = SFT_MAX_STRIPE - 1;
  assert_int_equal(sft_chunk_hdr_encode(NULL, 0, &h, &n), SFT_ERR_RANGE);
  h.kind = SFT_CHUNK_DATA;
  h.parity_index = 1;
  assert_int_equal(sft_chunk_hdr_encode(NULL, 0, &h, &n), SFT_ERR_RANGE);
  h.parity_index = 0;
  h.payload_len = 0;
  assert_int_equal(sft_chunk_hdr_encode(NULL, 0, &h, &n), SFT_ERR_RANGE);
  h.payload_len = SFT_CHUNK_SIZE_MAX + 1;
  assert_int_equal(sft_chunk_hdr_encode(NULL, 0, &h, &n), SFT_ERR_TOO_LARGE);
  h.payload_len = 1;
  h.index = SFT_MAX_CHUNKS;
  assert_int_equal(sft_chunk_hdr_encode(NULL, 0, &h, &n), SFT_ERR_RANGE);
  h.index = 0;
  h.kind = (enum sft_chunk_kind)2;
  assert_int_equal(sft_chunk_hdr_encode(NULL, 0, &h, &n), SFT_ERR_MALFORMED);
  /* decoder rejects, as soon as the bad field is seen */
  {
    const uint8_t kind2[] = {0x02};
    const uint8_t fid[] = {0x00, 0x80, 0x0f, 0x42, 0x40};
    const uint8_t idx[] = {0x00, 0x00, 0x84, 0x00, 0x00, 0x00};
    const uint8_t pidx[] = {0x01, 0x00, 0x00, 0xfe};
    const uint8_t plen0[] = {0x00, 0x00, 0x00, 0x00};
    const uint8_t plenbig[] = {0x00, 0x00, 0x00, 0x81, 0x00, 0x00, 0x01};
    const uint8_t nonmin[] = {0x00, 0x40, 0x01};
    assert_int_equal(sft_chunk_hdr_decode(kind2, 1, &back, &hl),
                     SFT_ERR_MALFORMED);
    assert_int_equal(sft_chunk_hdr_decode(fid, sizeof(fid), &back, &hl),
                     SFT_ERR_RANGE);
    assert_int_equal(sft_chunk_hdr_decode(idx, sizeof(idx), &back, &hl),
                     SFT_ERR_RANGE);
    assert_int_equal(sft_chunk_hdr_decode(pidx, sizeof(pidx), &back, &hl),
                     SFT_ERR_RANGE);
    assert_int_equal(sft_chunk_hdr_decode(plen0, sizeof(plen0), &back, &hl),
                     SFT_ERR_RANGE);
    assert_int_equal(sft_chunk_hdr_decode(plenbig, sizeof(plenbig), &back,
                                          &hl),
                     SFT_ERR_TOO_LARGE);
    assert_int_equal(sft_chunk_hdr_decode(nonmin, sizeof(nonmin), &back, &hl),
                     SFT_ERR_MALFORMED);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_negotiate_table),
      cmocka_unit_test(test_frame_names),
      cmocka_unit_test(test_frame_bad_and_partial),
      cmocka_unit_test(test_hello),
      cmocka_unit_test(test_hello_rejects),
      cmocka_unit_test(test_offer),
      cmocka_unit_test(test_accept),
      cmocka_unit_test(test_ack),
      cmocka_unit_test(test_need),
      cmocka_unit_test(test_pause_resume_cancel),
      cmocka_unit_test(test_complete),
      cmocka_unit_test(test_error),
      cmocka_unit_test(test_truncation_every_message),
      cmocka_unit_test(test_frame_stream_byte_by_byte),
      cmocka_unit_test(test_chunk_hdr),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
