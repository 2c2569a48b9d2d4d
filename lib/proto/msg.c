/*
 * sft/1 control messages and the chunk-stream header: validation, encoding
 * and decoding. Each message has one check_* (shared by the encoder), one
 * put_* (body writer, run twice: count, then write) and one decoder that
 * applies the same rules to the wire. Layouts in docs/internals/protocol.md.
 */
#include <string.h>

#include "sft/proto.h"
#include "sft/wire.h"

_Static_assert(SFT_MAX_FILES < 1073741824, "file id varint <= 4 bytes");
_Static_assert(SFT_CHUNK_SIZE_MAX < 1073741824u, "payload varint <= 4 bytes");
_Static_assert(1 + 8 + 8 + 1 + 4 + SFT_HASH_LEN <= SFT_CHUNK_HDR_MAX,
               "SFT_CHUNK_HDR_MAX too small");

/* Scope byte of PAUSE, RESUME, CANCEL and ERROR. */
#define SCOPE_FILE 0
#define SCOPE_ALL 1

typedef void (*put_fn)(struct sft_wr *w, const void *m);

/* Writes type | body length | body. The body is counted first so that the
 * length prefix is exact; nothing is written on any error. */
static int encode_frame(uint8_t *buf, size_t cap, uint64_t type, put_fn put,
                        const void *m, size_t *out_len) {
  struct sft_wr w;
  size_t body, total;
  sft_wr_init(&w, NULL, 0);
  put(&w, m);
  if (w.err)
    return w.err;
  body = w.off;
  if (body > SFT_MAX_CTRL_MSG)
    return SFT_ERR_TOO_LARGE;
  total = sft_varint_len(type) + sft_varint_len(body) + body;
  *out_len = total;
  if (!buf)
    return 0;
  if (total > cap)
    return SFT_ERR_TOO_LARGE;
  sft_wr_init(&w, buf, cap);
  sft_wr_varint(&w, type);
  sft_wr_varint(&w, body);
  put(&w, m);
  return w.err;
}

static int check_file_id(uint64_t id) {
  return id < SFT_MAX_FILES ? 0 : SFT_ERR_RANGE;
}

static int check_target(uint64_t id) {
  return id == SFT_FILE_ID_ALL ? 0 : check_file_id(id);
}

static uint64_t get_file_id(struct sft_rd *r) {
  uint64_t id = sft_rd_varint(r);
  if (!r->err && id >= SFT_MAX_FILES)
    sft_rd_fail(r, SFT_ERR_RANGE);
  return r->err ? 0 : id;
}

static void put_target(struct sft_wr *w, uint64_t id) {
  if (id == SFT_FILE_ID_ALL) {
    sft_wr_u8(w, SCOPE_ALL);
  } else {
    sft_wr_u8(w, SCOPE_FILE);
    sft_wr_varint(w, id);
  }
}

static uint64_t get_target(struct sft_rd *r) {
  uint8_t scope = sft_rd_u8(r);
  if (r->err)
    return 0;
  if (scope == SCOPE_ALL)
    return SFT_FILE_ID_ALL;
  if (scope != SCOPE_FILE) {
    sft_rd_fail(r, SFT_ERR_MALFORMED);
    return 0;
  }
  return get_file_id(r);
}

/* ---- HELLO ---------------------------------------------------------- */

static bool agent_ok(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
      return false;
  return true;
}

static int check_hello(const struct sft_msg_hello *m) {
  if (m->version_min == 0 || m->version_min > m->version_current)
    return SFT_ERR_VERSION;
  if (m->role != SFT_ROLE_SENDER && m->role != SFT_ROLE_RECEIVER)
    return SFT_ERR_MALFORMED;
  if (m->flags > SFT_VARINT_MAX)
    return SFT_ERR_RANGE;
  if (m->agent_len > SFT_PROTO_MAX_AGENT || m->ext_len > SFT_PROTO_MAX_HELLO_EXT)
    return SFT_ERR_TOO_LARGE;
  if (!agent_ok(m->agent, m->agent_len))
    return SFT_ERR_MALFORMED;
  if (m->ext_len && !m->ext)
    return SFT_ERR_INVAL;
  return 0;
}

static void put_hello(struct sft_wr *w, const void *p) {
  const struct sft_msg_hello *m = p;
  sft_wr_varint(w, m->version_current);
  sft_wr_varint(w, m->version_min);
  sft_wr_bytes(w, m->session_id, SFT_SESSION_ID_LEN);
  sft_wr_u8(w, (uint8_t)m->role);
  sft_wr_varint(w, m->flags);
  sft_wr_varint(w, m->agent_len);
  sft_wr_bytes(w, m->agent, m->agent_len);
  sft_wr_varint(w, m->ext_len);
  sft_wr_bytes(w, m->ext, m->ext_len);
}

int sft_msg_hello_encode(uint8_t *buf, size_t cap,
                         const struct sft_msg_hello *m, size_t *out_len) {
  int rv = check_hello(m);
  return rv ? rv : encode_frame(buf, cap, SFT_MSG_HELLO, put_hello, m, out_len);
}

int sft_msg_hello_decode(const uint8_t *body, size_t len,
                         struct sft_msg_hello *m) {
  struct sft_rd r;
  uint64_t cur, min;
  uint8_t role;
  const uint8_t *agent;
  sft_rd_init(&r, body, len);
  memset(m, 0, sizeof(*m));
  /* The versions come first in every version of HELLO. */
  cur = sft_rd_varint(&r);
  min = sft_rd_varint(&r);
  if (r.err)
    return r.err;
  if (cur > UINT32_MAX || min > UINT32_MAX)
    return SFT_ERR_RANGE;
  if (min == 0 || min > cur)
    return SFT_ERR_VERSION;
  m->version_current = (uint32_t)cur;
  m->version_min = (uint32_t)min;
  sft_rd_copy(&r, m->session_id, SFT_SESSION_ID_LEN);
  role = sft_rd_u8(&r);
  if (!r.err && role != SFT_ROLE_SENDER && role != SFT_ROLE_RECEIVER)
    return SFT_ERR_MALFORMED;
  m->role = (enum sft_role)role;
  m->flags = sft_rd_varint(&r);
  m->agent_len = (size_t)sft_rd_varint_max(&r, SFT_PROTO_MAX_AGENT);
  agent = sft_rd_bytes(&r, m->agent_len);
  if (r.err)
    return r.err;
  memcpy(m->agent, agent, m->agent_len);
  m->agent[m->agent_len] = '\0';
  if (!agent_ok(m->agent, m->agent_len))
    return SFT_ERR_MALFORMED;
  m->ext_len = (size_t)sft_rd_varint_max(&r, SFT_PROTO_MAX_HELLO_EXT);
  m->ext = sft_rd_bytes(&r, m->ext_len);
  if (sft_rd_end(&r))
    return r.err;
  if (m->ext_len == 0)
    m->ext = NULL;
  return 0;
}

/* ---- OFFER ---------------------------------------------------------- */

static int check_prio(uint64_t p) {
  return p <= SFT_PROTO_PRIO_NORMAL ? 0 : SFT_ERR_MALFORMED;
}

static void put_offer(struct sft_wr *w, const void *p) {
  const struct sft_msg_offer *m = p;
  size_t n;
  uint8_t *dst;
  sft_wr_varint(w, m->file_id);
  sft_wr_u8(w, (uint8_t)m->priority);
  /* The manifest is the rest of the body. */
  if (sft_manifest_encode(NULL, 0, &m->manifest, &n)) {
    w->err = w->err ? w->err : SFT_ERR_INVAL;
    return;
  }
  dst = sft_wr_reserve(w, n);
  if (dst && sft_manifest_encode(dst, n, &m->manifest, &n))
    w->err = SFT_ERR_INVAL;
}

int sft_msg_offer_encode(uint8_t *buf, size_t cap,
                         const struct sft_msg_offer *m, size_t *out_len) {
  int rv = check_file_id(m->file_id);
  if (!rv)
    rv = check_prio(m->priority);
  if (!rv)
    rv = sft_manifest_verify(&m->manifest);
  return rv ? rv : encode_frame(buf, cap, SFT_MSG_OFFER, put_offer, m, out_len);
}

int sft_msg_offer_decode(const uint8_t *body, size_t len,
                         struct sft_msg_offer *m) {
  struct sft_rd r;
  uint8_t prio;
  size_t rest;
  sft_rd_init(&r, body, len);
  m->file_id = get_file_id(&r);
  prio = sft_rd_u8(&r);
  if (r.err)
    return r.err;
  if (check_prio(prio))
    return SFT_ERR_MALFORMED;
  m->priority = (enum sft_proto_prio)prio;
  rest = sft_rd_left(&r);
  return sft_manifest_decode(sft_rd_bytes(&r, rest), rest, &m->manifest);
}

/* ---- ACCEPT --------------------------------------------------------- */

size_t sft_have_trim(const uint8_t *bm, size_t len) {
  while (len > 0 && bm[len - 1] == 0)
    len--;
  return len;
}

/* Shared by encoder and decoder: the canonical-bitmap rules. */
static int check_bitmap(uint64_t count, const uint8_t *bm, size_t len) {
  uint64_t full = (count + 7) / 8;
  if (len > SFT_PROTO_MAX_BITMAP)
    return SFT_ERR_TOO_LARGE;
  if (len > full)
    return SFT_ERR_MALFORMED;
  if (len == 0)
    return 0;
  if (bm[len - 1] == 0)
    return SFT_ERR_MALFORMED; /* trailing zero byte: not canonical */
  if (len == full && (count & 7) && (bm[len - 1] >> (count & 7)))
    return SFT_ERR_MALFORMED; /* a bit at or beyond chunk_count */
  return 0;
}

static int check_accept(const struct sft_msg_accept *m) {
  int rv = check_file_id(m->file_id);
  if (rv)
    return rv;
  if (m->status == SFT_ACCEPT_REFUSED)
    return m->chunk_count || m->bitmap_len ? SFT_ERR_INVAL : 0;
  if (m->status != SFT_ACCEPT_OK)
    return SFT_ERR_MALFORMED;
  if (m->reason != SFT_REASON_NONE)
    return SFT_ERR_INVAL;
  if (m->chunk_count > SFT_MAX_CHUNKS)
    return SFT_ERR_TOO_LARGE;
  if (m->bitmap_len && !m->bitmap)
    return SFT_ERR_INVAL;
  return check_bitmap(m->chunk_count, m->bitmap, m->bitmap_len);
}

static void put_accept(struct sft_wr *w, const void *p) {
  const struct sft_msg_accept *m = p;
  sft_wr_varint(w, m->file_id);
  sft_wr_u8(w, (uint8_t)m->status);
  if (m->status == SFT_ACCEPT_REFUSED) {
    sft_wr_u16(w, m->reason);
    return;
  }
  sft_wr_varint(w, m->chunk_count);
  sft_wr_varint(w, m->bitmap_len);
  sft_wr_bytes(w, m->bitmap, m->bitmap_len);
}

int sft_msg_accept_encode(uint8_t *buf, size_t cap,
                          const struct sft_msg_accept *m, size_t *out_len) {
  int rv = check_accept(m);
  return rv ? rv
            : encode_frame(buf, cap, SFT_MSG_ACCEPT, put_accept, m, out_len);
}

int sft_msg_accept_decode(const uint8_t *body, size_t len,
                          struct sft_msg_accept *m) {
  struct sft_rd r;
  uint8_t status;
  int rv;
  sft_rd_init(&r, body, len);
  memset(m, 0, sizeof(*m));
  m->file_id = get_file_id(&r);
  status = sft_rd_u8(&r);
  if (r.err)
    return r.err;
  if (status == SFT_ACCEPT_REFUSED) {
    m->status = SFT_ACCEPT_REFUSED;
    m->reason = sft_rd_u16(&r);
    return sft_rd_end(&r);
  }
  if (status != SFT_ACCEPT_OK)
    return SFT_ERR_MALFORMED;
  m->status = SFT_ACCEPT_OK;
  m->chunk_count = sft_rd_varint_max(&r, SFT_MAX_CHUNKS);
  m->bitmap_len = (size_t)sft_rd_varint_max(&r, SFT_PROTO_MAX_BITMAP);
  if (r.err)
    return r.err;
  if (m->bitmap_len > (m->chunk_count + 7) / 8)
    return SFT_ERR_MALFORMED;
  m->bitmap = sft_rd_bytes(&r, m->bitmap_len);
  if (sft_rd_end(&r))
    return r.err;
  rv = check_bitmap(m->chunk_count, m->bitmap, m->bitmap_len);
  if (m->bitmap_len == 0)
    m->bitmap = NULL;
  return rv;
}

/* ---- ACK ------------------------------------------------------------ */

/* Ranges travel as deltas: the first as (first, last - first), each next
 * as (first - prev.last - 2, last - first). Any decoded list is therefore
 * sorted, disjoint and non-adjacent; only the upper bound needs checking. */

static int check_ack(const struct sft_msg_ack *m) {
  int rv = check_file_id(m->file_id);
  if (rv)
    return rv;
  if (m->nranges == 0)
    return SFT_ERR_MALFORMED;
  if (m->nranges > SFT_MAX_ACK_RANGES)
    return SFT_ERR_TOO_LARGE;
  if (!m->ranges)
    return SFT_ERR_INVAL;
  for (size_t i = 0; i < m->nranges; i++) {
    const struct sft_ack_range *a = &m->ranges[i];
    if (a->first > a->last)
      return SFT_ERR_MALFORMED;
    if (a->last >= SFT_MAX_CHUNKS)
      return SFT_ERR_RANGE;
    if (i > 0 && a->first <= m->ranges[i - 1].last + 1)
      return SFT_ERR_MALFORMED; /* unsorted, overlapping or adjacent */
  }
  return 0;
}

static void put_ack(struct sft_wr *w, const void *p) {
  const struct sft_msg_ack *m = p;
  sft_wr_varint(w, m->file_id);
  sft_wr_varint(w, m->nranges);
  for (size_t i = 0; i < m->nranges; i++) {
    const struct sft_ack_range *a = &m->ranges[i];
    sft_wr_varint(w, i == 0 ? a->first : a->first - m->ranges[i - 1].last - 2);
    sft_wr_varint(w, a->last - a->first);
  }
}

int sft_msg_ack_encode(uint8_t *buf, size_t cap, const struct sft_msg_ack *m,
                       size_t *out_len) {
  int rv = check_ack(m);
  return rv ? rv : encode_frame(buf, cap, SFT_MSG_ACK, put_ack, m, out_len);
}

int sft_msg_ack_decode(const uint8_t *body, size_t len, struct sft_msg_ack *m,
                       struct sft_ack_range *storage, size_t cap) {
  struct sft_rd r;
  uint64_t n, next = 0; /* smallest index the next range may start at */
  sft_rd_init(&r, body, len);
  m->file_id = get_file_id(&r);
  m->nranges = 0;
  m->ranges = storage;
  n = sft_rd_varint_max(&r, SFT_MAX_ACK_RANGES);
  if (r.err)
    return r.err;
  if (n == 0)
    return SFT_ERR_MALFORMED;
  if (n > cap || !storage)
    return SFT_ERR_FULL;
  for (size_t i = 0; i < n; i++) {
    /* Bounding each delta by SFT_MAX_CHUNKS keeps the sums far from
     * overflow; the sum is then checked against the same bound. */
    uint64_t gap = sft_rd_varint_max(&r, SFT_MAX_CHUNKS);
    uint64_t span = sft_rd_varint_max(&r, SFT_MAX_CHUNKS);
    if (r.err)
      return r.err == SFT_ERR_TOO_LARGE ? SFT_ERR_RANGE : r.err;
    storage[i].first = next + gap;
    storage[i].last = storage[i].first + span;
    if (storage[i].last >= SFT_MAX_CHUNKS)
      return SFT_ERR_RANGE;
    next = storage[i].last + 2;
  }
  m->nranges = (size_t)n;
  return sft_rd_end(&r);
}

/* ---- NEED ----------------------------------------------------------- */

static int check_need(const struct sft_msg_need *m) {
  int rv = check_file_id(m->file_id);
  if (rv)
    return rv;
  if (m->stripe >= SFT_MAX_CHUNKS || m->count == 0 ||
      m->count > SFT_MAX_STRIPE)
    return SFT_ERR_RANGE;
  return 0;
}

static void put_need(struct sft_wr *w, const void *p) {
  const struct sft_msg_need *m = p;
  sft_wr_varint(w, m->file_id);
  sft_wr_varint(w, m->stripe);
  sft_wr_varint(w, m->count);
}

int sft_msg_need_encode(uint8_t *buf, size_t cap, const struct sft_msg_need *m,
                        size_t *out_len) {
  int rv = check_need(m);
  return rv ? rv : encode_frame(buf, cap, SFT_MSG_NEED, put_need, m, out_len);
}

int sft_msg_need_decode(const uint8_t *body, size_t len,
                        struct sft_msg_need *m) {
  struct sft_rd r;
  uint64_t count;
  sft_rd_init(&r, body, len);
  m->file_id = get_file_id(&r);
  m->stripe = sft_rd_varint(&r);
  count = sft_rd_varint(&r);
  if (sft_rd_end(&r))
    return r.err;
  if (m->stripe >= SFT_MAX_CHUNKS || count == 0 || count > SFT_MAX_STRIPE)
    return SFT_ERR_RANGE;
  m->count = (uint32_t)count;
  return 0;
}

/* ---- PAUSE / RESUME / CANCEL ---------------------------------------- */

static void put_pause(struct sft_wr *w, const void *p) {
  const struct sft_msg_pause *m = p;
  put_target(w, m->file_id);
}

static int pause_decode(const uint8_t *body, size_t len,
                        struct sft_msg_pause *m) {
  struct sft_rd r;
  sft_rd_init(&r, body, len);
  m->file_id = get_target(&r);
  return sft_rd_end(&r);
}

int sft_msg_pause_encode(uint8_t *buf, size_t cap,
                         const struct sft_msg_pause *m, size_t *out_len) {
  int rv = check_target(m->file_id);
  return rv ? rv : encode_frame(buf, cap, SFT_MSG_PAUSE, put_pause, m, out_len);
}

int sft_msg_pause_decode(const uint8_t *body, size_t len,
                         struct sft_msg_pause *m) {
  return pause_decode(body, len, m);
}

int sft_msg_resume_encode(uint8_t *buf, size_t cap,
                          const struct sft_msg_pause *m, size_t *out_len) {
  int rv = check_target(m->file_id);
  return rv ? rv
            : encode_frame(buf, cap, SFT_MSG_RESUME, put_pause, m, out_len);
}

int sft_msg_resume_decode(const uint8_t *body, size_t len,
                          struct sft_msg_pause *m) {
  return pause_decode(body, len, m);
}

static void put_cancel(struct sft_wr *w, const void *p) {
  const struct sft_msg_cancel *m = p;
  put_target(w, m->file_id);
  sft_wr_u16(w, m->reason);
}

int sft_msg_cancel_encode(uint8_t *buf, size_t cap,
                          const struct sft_msg_cancel *m, size_t *out_len) {
  int rv = check_target(m->file_id);
  return rv ? rv
            : encode_frame(buf, cap, SFT_MSG_CANCEL, put_cancel, m, out_len);
}

int sft_msg_cancel_decode(const uint8_t *body, size_t len,
                          struct sft_msg_cancel *m) {
  struct sft_rd r;
  sft_rd_init(&r, body, len);
  m->file_id = get_target(&r);
  m->reason = sft_rd_u16(&r);
  return sft_rd_end(&r);
}

/* ---- COMPLETE ------------------------------------------------------- */

static void put_complete(struct sft_wr *w, const void *p) {
  const struct sft_msg_complete *m = p;
  sft_wr_varint(w, m->file_id);
  sft_wr_bytes(w, m->root, SFT_HASH_LEN);
}

int sft_msg_complete_encode(uint8_t *buf, size_t cap,
                            const struct sft_msg_complete *m,
                            size_t *out_len) {
  int rv = check_file_id(m->file_id);
  return rv ? rv
            : encode_frame(buf, cap, SFT_MSG_COMPLETE, put_complete, m,
                           out_len);
}

int sft_msg_complete_decode(const uint8_t *body, size_t len,
                            struct sft_msg_complete *m) {
  struct sft_rd r;
  sft_rd_init(&r, body, len);
  m->file_id = get_file_id(&r);
  sft_rd_copy(&r, m->root, SFT_HASH_LEN);
  return sft_rd_end(&r);
}

/* ---- ERROR ---------------------------------------------------------- */

static void put_error(struct sft_wr *w, const void *p) {
  const struct sft_msg_error *m = p;
  sft_wr_u16(w, m->code);
  put_target(w, m->file_id);
  sft_wr_varint(w, m->text_len);
  sft_wr_bytes(w, m->text, m->text_len);
}

int sft_msg_error_encode(uint8_t *buf, size_t cap,
                         const struct sft_msg_error *m, size_t *out_len) {
  int rv = check_target(m->file_id);
  if (rv)
    return rv;
  if (m->text_len > SFT_MAX_ERROR_TEXT)
    return SFT_ERR_TOO_LARGE;
  if (memchr(m->text, '\0', m->text_len))
    return SFT_ERR_MALFORMED;
  return encode_frame(buf, cap, SFT_MSG_ERROR, put_error, m, out_len);
}

int sft_msg_error_decode(const uint8_t *body, size_t len,
                         struct sft_msg_error *m) {
  struct sft_rd r;
  const uint8_t *text;
  sft_rd_init(&r, body, len);
  m->code = sft_rd_u16(&r);
  m->file_id = get_target(&r);
  m->text_len = (size_t)sft_rd_varint_max(&r, SFT_MAX_ERROR_TEXT);
  text = sft_rd_bytes(&r, m->text_len);
  if (sft_rd_end(&r)) {
    m->text_len = 0;
    m->text[0] = '\0';
    return r.err;
  }
  memcpy(m->text, text, m->text_len);
  m->text[m->text_len] = '\0';
  if (memchr(m->text, '\0', m->text_len))
    return SFT_ERR_MALFORMED;
  return 0;
}

/* ---- chunk stream header -------------------------------------------- */

static int check_chunk_hdr(const struct sft_chunk_hdr *h) {
  int rv = check_file_id(h->file_id);
  if (rv)
    return rv;
  if (h->kind != SFT_CHUNK_DATA && h->kind != SFT_CHUNK_PARITY)
    return SFT_ERR_MALFORMED;
  if (h->index >= SFT_MAX_CHUNKS)
    return SFT_ERR_RANGE;
  if (h->kind == SFT_CHUNK_PARITY ? h->parity_index > SFT_MAX_STRIPE - 2
                                  : h->parity_index != 0)
    return SFT_ERR_RANGE;
  if (h->payload_len > SFT_CHUNK_SIZE_MAX)
    return SFT_ERR_TOO_LARGE;
  if (h->payload_len == 0)
    return SFT_ERR_RANGE;
  return 0;
}

int sft_chunk_hdr_encode(uint8_t *buf, size_t cap,
                         const struct sft_chunk_hdr *h, size_t *out_len) {
  struct sft_wr w;
  size_t n;
  int rv = check_chunk_hdr(h);
  if (rv)
    return rv;
  n = 1 + sft_varint_len(h->file_id) + sft_varint_len(h->index) +
      (h->kind == SFT_CHUNK_PARITY) + sft_varint_len(h->payload_len) +
      SFT_HASH_LEN;
  *out_len = n;
  if (!buf)
    return 0;
  if (n > cap)
    return SFT_ERR_TOO_LARGE;
  sft_wr_init(&w, buf, cap);
  sft_wr_u8(&w, (uint8_t)h->kind);
  sft_wr_varint(&w, h->file_id);
  sft_wr_varint(&w, h->index);
  if (h->kind == SFT_CHUNK_PARITY)
    sft_wr_u8(&w, (uint8_t)h->parity_index);
  sft_wr_varint(&w, h->payload_len);
  sft_wr_bytes(&w, h->digest, SFT_HASH_LEN);
  return w.err;
}

int sft_chunk_hdr_decode(const uint8_t *p, size_t len, struct sft_chunk_hdr *h,
                         size_t *hdr_len) {
  struct sft_rd r;
  uint8_t kind;
  uint64_t plen;
  sft_rd_init(&r, p, len);
  memset(h, 0, sizeof(*h));
  kind = sft_rd_u8(&r);
  if (!r.err && kind != SFT_CHUNK_DATA && kind != SFT_CHUNK_PARITY)
    return SFT_ERR_MALFORMED;
  h->kind = (enum sft_chunk_kind)kind;
  h->file_id = get_file_id(&r);
  h->index = sft_rd_varint(&r);
  if (!r.err && h->index >= SFT_MAX_CHUNKS)
    return SFT_ERR_RANGE;
  if (kind == SFT_CHUNK_PARITY) {
    h->parity_index = sft_rd_u8(&r);
    if (!r.err && h->parity_index > SFT_MAX_STRIPE - 2)
      return SFT_ERR_RANGE;
  }
  plen = sft_rd_varint_max(&r, SFT_CHUNK_SIZE_MAX);
  if (!r.err && plen == 0)
    return SFT_ERR_RANGE;
  h->payload_len = (uint32_t)plen;
  sft_rd_copy(&r, h->digest, SFT_HASH_LEN);
  if (r.err)
    return r.err == SFT_ERR_TRUNCATED ? SFT_ERR_AGAIN : r.err;
  *hdr_len = r.off;
  return 0;
}
