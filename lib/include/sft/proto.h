/*
 * sft/1 wire messages (lib/proto): control-stream framing, the control
 * messages, the chunk-stream header and version negotiation.
 *
 * Byte layouts and the rationale: docs/internals/protocol.md.
 *
 * Control stream: a sequence of frames
 *     type (varint) | body length (varint, <= SFT_MAX_CTRL_MSG) | body
 * sft_frame_parse() cuts one frame from a byte stream; the per-message
 * decoders then decode the body. Every encoder writes a WHOLE frame
 * (type, length, body) and supports size-query mode: buf == NULL sets
 * *out_len to the exact size and writes nothing. With a buffer, a short
 * |cap| gives SFT_ERR_TOO_LARGE (and *out_len = size needed).
 *
 * Chunk streams: each chunk travels on its own unidirectional stream,
 * starting with a chunk header (sft_chunk_hdr_*) followed by payload_len
 * payload bytes. The session is implied by the connection (HELLO carries
 * the session id), so the header does not repeat it.
 *
 * Decoder contract (all of them):
 *   - decode exactly |len| bytes (body decoders) and never read past them;
 *   - every length/count is checked against its bound before it is used;
 *   - nothing is allocated: variable-length parts are copied into small
 *     inline arrays (agent, error text, manifest name) or BORROWED as
 *     pointers into the input (ACCEPT bitmap, HELLO extensions): those
 *     pointers are valid only while the input buffer is;
 *   - ACK ranges are written into caller-provided storage;
 *   - error codes: SFT_ERR_TRUNCATED (body ends early), SFT_ERR_MALFORMED
 *     (trailing bytes, non-minimal varint, unknown enum value, fields that
 *     contradict each other), SFT_ERR_TOO_LARGE (a length or count above
 *     its bound), SFT_ERR_RANGE (a numeric value outside its domain),
 *     SFT_ERR_VERSION (HELLO versions; manifest version), plus the
 *     manifest codes (sft/chunk.h) for OFFER;
 *   - on error the output struct's contents are unspecified.
 * Encoders validate their input with the same rules (error codes as the
 * decoder would return, or SFT_ERR_INVAL for a bad argument), so
 * decode(encode(x)) == x and, the encoding being canonical,
 * encode(decode(b)) == b for every accepted b.
 */
#ifndef SFT_PROTO_H
#define SFT_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sft/chunk.h"
#include "sft/err.h"
#include "sft/hash.h"
#include "sft/limits.h"

/* ---- versions -------------------------------------------------------- */

/* Protocol versions spoken by this build. Policy: each peer sends its MIN
 * and CURRENT in HELLO; the session runs at v = min(CURRENT_a, CURRENT_b)
 * provided v >= MIN_a and v >= MIN_b, else SFT_ERR_VERSION. The meaning of
 * a released version (message types, layouts, semantics) never changes:
 * any change is a new version number. HELLO's leading fields (the two
 * versions) keep their place in every version; HELLO's extension area is
 * how later versions add fields an older peer can skip. */
#define SFT_PROTO_VERSION_MIN 1
#define SFT_PROTO_VERSION_CURRENT 1
#define SFT_PROTO_ALPN "sft/1" /* QUIC/TLS ALPN; stays for every version */

/* A chunk stream may arrive before its file's OFFER (the sender starts a
 * fresh file before the ACCEPT): the receiver keeps (parks) it when its
 * file id is below (OFFERs read) + SFT_PROTO_PARK_FILES, and the sender
 * starts a file early only when its id is below (OFFERs answered) + this
 * (docs/internals/protocol.md, "Pipelining"). */
#define SFT_PROTO_PARK_FILES 64

/* The application code of a receiver's connection close that says "every
 * file this session offered is finished and verified here, each against
 * the root of its COMPLETE". A receiver uses it once its last echo was
 * acknowledged, or when it gives up waiting for that: a sender that did
 * not get the echoes then ends those files as if they had come. Other
 * closes carry -SFT_ERR_* (0: no error, nothing said about the files).
 * (docs/internals/protocol.md, "The end of a session") */
#define SFT_PROTO_CLOSE_DONE 0x100u

/* Negotiate as described above. Errors: SFT_ERR_INVAL (a min of 0 or a
 * min > current on either side), SFT_ERR_VERSION (no common version).
 * *out set only on success. */
int sft_proto_negotiate(uint32_t our_min, uint32_t our_cur, uint32_t peer_min,
                        uint32_t peer_cur, uint32_t *out);

/* ---- framing --------------------------------------------------------- */

enum sft_msg_type {
  SFT_MSG_HELLO = 0x01,
  SFT_MSG_OFFER = 0x02,
  SFT_MSG_ACCEPT = 0x03,
  SFT_MSG_ACK = 0x04,
  SFT_MSG_NEED = 0x05,
  SFT_MSG_PAUSE = 0x06,
  SFT_MSG_RESUME = 0x07,
  SFT_MSG_CANCEL = 0x08,
  SFT_MSG_COMPLETE = 0x09,
  SFT_MSG_ERROR = 0x0a,
};

/* Known message type? (The framer does not judge types.) */
bool sft_msg_type_known(uint64_t type);
/* "HELLO", "OFFER", ... or "UNKNOWN". Static string. */
const char *sft_msg_type_name(uint64_t type);

struct sft_frame {
  uint64_t type;        /* message type, any varint value */
  const uint8_t *body;  /* borrowed from the input */
  size_t body_len;      /* <= SFT_MAX_CTRL_MSG */
};

/* Longest frame header: two 8-byte varints. */
#define SFT_FRAME_HDR_MAX 16

/* Cuts one frame from the start of p[0..len).
 * Returns 0 with *f filled and *consumed = header + body bytes;
 * SFT_ERR_AGAIN: need more bytes (nothing consumed; call again with the
 *   same bytes plus more);
 * SFT_ERR_TOO_LARGE: body length > SFT_MAX_CTRL_MSG (bad frame: the stream
 *   cannot be resynchronised, close it);
 * SFT_ERR_MALFORMED: a non-minimal varint in the header (bad frame).
 * A bad frame is reported as soon as the header is complete, before the body
 * arrives. *f and *consumed are set only on success. */
int sft_frame_parse(const uint8_t *p, size_t len, struct sft_frame *f,
                    size_t *consumed);

/* ---- common enums ---------------------------------------------------- */

/* File ids are per session, 0 .. SFT_MAX_FILES-1. In PAUSE, RESUME,
 * CANCEL and ERROR the value SFT_FILE_ID_ALL means "the whole session"
 * (ERROR: "no particular file"). */
#define SFT_FILE_ID_ALL UINT64_MAX

enum sft_proto_prio {
  SFT_PROTO_PRIO_CRITICAL = 0,
  SFT_PROTO_PRIO_HIGH = 1,
  SFT_PROTO_PRIO_NORMAL = 2,
};

/* Reason codes for ACCEPT (refused) and CANCEL. Encoded as u16; decoders
 * accept any u16 (unknown values mean "unspecified") so that new reasons do
 * not need a new version. */
enum sft_reason {
  SFT_REASON_NONE = 0,
  SFT_REASON_USER = 1,      /* a user asked (cancel, refuse) */
  SFT_REASON_EXISTS = 2,    /* target exists, overwrite not allowed */
  SFT_REASON_NOSPACE = 3,   /* not enough disk space */
  SFT_REASON_BAD_NAME = 4,  /* unsafe or invalid name */
  SFT_REASON_TOO_LARGE = 5, /* exceeds a configured limit */
  SFT_REASON_POLICY = 6,    /* refused by local policy / not trusted */
  SFT_REASON_BUSY = 7,      /* try later */
  SFT_REASON_INTEGRITY = 8, /* root or digest mismatch */
  SFT_REASON_SHUTDOWN = 9,  /* peer is shutting down */
  SFT_REASON_INTERNAL = 10, /* local failure (I/O ...) */
};

/* ---- HELLO ----------------------------------------------------------- */

enum sft_role {
  SFT_ROLE_SENDER = 1,
  SFT_ROLE_RECEIVER = 2,
};

/* HELLO flags (varint bit set). Unknown bits are accepted and preserved
 * (later versions may define them); receivers ignore bits they don't know. */
#define SFT_HELLO_F_ATTACH 0x01u /* attach to an existing session (reconnect
                                    or an extra path), not a new one */

#define SFT_PROTO_MAX_AGENT 64      /* agent string, bytes */
#define SFT_PROTO_MAX_HELLO_EXT 1024 /* extension area, bytes */

struct sft_msg_hello {
  uint32_t version_current;  /* >= 1 */
  uint32_t version_min;      /* 1 <= min <= current */
  uint8_t session_id[SFT_SESSION_ID_LEN];
  enum sft_role role;
  uint64_t flags;            /* SFT_HELLO_F_*, <= SFT_VARINT_MAX */
  size_t agent_len;          /* 0 .. SFT_PROTO_MAX_AGENT */
  char agent[SFT_PROTO_MAX_AGENT + 1]; /* printable ASCII 0x20..0x7e, NUL-terminated */
  const uint8_t *ext;        /* extension area, BORROWED; NULL if ext_len 0 */
  size_t ext_len;            /* 0 .. SFT_PROTO_MAX_HELLO_EXT; opaque in v1 */
};

int sft_msg_hello_encode(uint8_t *buf, size_t cap,
                         const struct sft_msg_hello *m, size_t *out_len);
/* SFT_ERR_VERSION if version_min is 0 or > version_current (a version
 * field this build cannot interpret); SFT_ERR_RANGE if a version exceeds
 * UINT32_MAX; SFT_ERR_MALFORMED for an unknown role or a bad agent byte. */
int sft_msg_hello_decode(const uint8_t *body, size_t len,
                         struct sft_msg_hello *m);

/* ---- OFFER ----------------------------------------------------------- */

struct sft_msg_offer {
  uint64_t file_id;             /* < SFT_MAX_FILES */
  enum sft_proto_prio priority;
  struct sft_manifest manifest; /* copied in (inline name) */
};

int sft_msg_offer_encode(uint8_t *buf, size_t cap,
                         const struct sft_msg_offer *m, size_t *out_len);
int sft_msg_offer_decode(const uint8_t *body, size_t len,
                         struct sft_msg_offer *m);

/* ---- ACCEPT ---------------------------------------------------------- */

enum sft_accept_status {
  SFT_ACCEPT_OK = 0,
  SFT_ACCEPT_REFUSED = 1,
};

/* Longest have-bitmap in an ACCEPT, so that the frame always fits
 * SFT_MAX_CTRL_MSG. Chunks past the bitmap are "not held"; a receiver
 * holding chunks beyond it (only possible near SFT_MAX_CHUNKS) simply
 * leaves them out and they are sent again. */
#define SFT_PROTO_MAX_BITMAP (SFT_MAX_CTRL_MSG - 64)

/*
 * Have-bitmap: chunk i is held iff bit (i % 8) (value 1 << (i % 8)) of
 * byte i / 8 is set. The bitmap may be shorter than (chunk_count + 7) / 8:
 * missing bytes are zero. Canonical form (checked by both sides): no
 * trailing zero byte, no bit set at or beyond chunk_count,
 * bitmap_len <= min((chunk_count + 7) / 8, SFT_PROTO_MAX_BITMAP).
 * Refused: chunk_count == 0, bitmap_len == 0, reason set.
 * Accepted: reason == SFT_REASON_NONE.
 */
struct sft_msg_accept {
  uint64_t file_id;               /* < SFT_MAX_FILES */
  enum sft_accept_status status;
  uint16_t reason;                /* enum sft_reason when refused */
  uint64_t chunk_count;           /* <= SFT_MAX_CHUNKS; must match OFFER */
  const uint8_t *bitmap;          /* BORROWED (input / caller buffer) */
  size_t bitmap_len;              /* bytes */
};

int sft_msg_accept_encode(uint8_t *buf, size_t cap,
                          const struct sft_msg_accept *m, size_t *out_len);
int sft_msg_accept_decode(const uint8_t *body, size_t len,
                          struct sft_msg_accept *m);

/* Is chunk |i| marked in a have-bitmap of |len| bytes? (false past it) */
static inline bool sft_have_bit(const uint8_t *bm, size_t len, uint64_t i) {
  return (i >> 3) < len && ((bm[i >> 3] >> (i & 7)) & 1);
}
/* Length of |bm| without its trailing zero bytes (the canonical length). */
size_t sft_have_trim(const uint8_t *bm, size_t len);

/* ---- ACK ------------------------------------------------------------- */

/* Closed range of data chunk indexes [first, last]. */
struct sft_ack_range {
  uint64_t first;
  uint64_t last;
};

/* Ranges: 1 .. SFT_MAX_ACK_RANGES, each first <= last < SFT_MAX_CHUNKS,
 * sorted, non-overlapping and non-adjacent (next.first > prev.last + 1,
 * adjacent ranges must be merged: canonical form). */
struct sft_msg_ack {
  uint64_t file_id;              /* < SFT_MAX_FILES */
  size_t nranges;
  struct sft_ack_range *ranges;  /* encode: read; decode: caller storage */
};

int sft_msg_ack_encode(uint8_t *buf, size_t cap, const struct sft_msg_ack *m,
                       size_t *out_len);
/* Writes the ranges into storage[0..cap); m->ranges = storage.
 * SFT_ERR_TOO_LARGE if the count exceeds SFT_MAX_ACK_RANGES,
 * SFT_ERR_FULL if it exceeds |cap| (pass SFT_MAX_ACK_RANGES entries to
 * never see FULL), SFT_ERR_MALFORMED for zero ranges, SFT_ERR_RANGE for an
 * index >= SFT_MAX_CHUNKS. */
int sft_msg_ack_decode(const uint8_t *body, size_t len, struct sft_msg_ack *m,
                       struct sft_ack_range *storage, size_t cap);

/* ---- NEED ------------------------------------------------------------ */

/* "Send any |count| more chunks (data or parity) of stripe |stripe|." */
struct sft_msg_need {
  uint64_t file_id;  /* < SFT_MAX_FILES */
  uint64_t stripe;   /* < SFT_MAX_CHUNKS */
  uint32_t count;    /* 1 .. SFT_MAX_STRIPE */
};

int sft_msg_need_encode(uint8_t *buf, size_t cap, const struct sft_msg_need *m,
                        size_t *out_len);
int sft_msg_need_decode(const uint8_t *body, size_t len,
                        struct sft_msg_need *m);

/* ---- PAUSE / RESUME / CANCEL ----------------------------------------- */

/* PAUSE and RESUME: one file or the whole session (SFT_FILE_ID_ALL). */
struct sft_msg_pause {
  uint64_t file_id;  /* < SFT_MAX_FILES or SFT_FILE_ID_ALL */
};

int sft_msg_pause_encode(uint8_t *buf, size_t cap,
                         const struct sft_msg_pause *m, size_t *out_len);
int sft_msg_pause_decode(const uint8_t *body, size_t len,
                         struct sft_msg_pause *m);
int sft_msg_resume_encode(uint8_t *buf, size_t cap,
                          const struct sft_msg_pause *m, size_t *out_len);
int sft_msg_resume_decode(const uint8_t *body, size_t len,
                          struct sft_msg_pause *m);

struct sft_msg_cancel {
  uint64_t file_id;  /* < SFT_MAX_FILES or SFT_FILE_ID_ALL */
  uint16_t reason;   /* enum sft_reason (any u16 accepted) */
};

int sft_msg_cancel_encode(uint8_t *buf, size_t cap,
                          const struct sft_msg_cancel *m, size_t *out_len);
int sft_msg_cancel_decode(const uint8_t *body, size_t len,
                          struct sft_msg_cancel *m);

/* ---- COMPLETE -------------------------------------------------------- */

/* Sender: "all chunks sent, this is the root". Receiver: "verified, root
 * matches, file committed" (echoes the root). */
struct sft_msg_complete {
  uint64_t file_id;  /* < SFT_MAX_FILES */
  uint8_t root[SFT_HASH_LEN];
};

int sft_msg_complete_encode(uint8_t *buf, size_t cap,
                            const struct sft_msg_complete *m, size_t *out_len);
int sft_msg_complete_decode(const uint8_t *body, size_t len,
                            struct sft_msg_complete *m);

/* ---- ERROR ----------------------------------------------------------- */

/* code: -SFT_ERR_* of the failure as a positive u16 (e.g. 20 = PEER);
 * any u16 is accepted. Text: UTF-8 for humans, no NUL, <= 1024 bytes. */
struct sft_msg_error {
  uint16_t code;
  uint64_t file_id;  /* < SFT_MAX_FILES or SFT_FILE_ID_ALL (none) */
  size_t text_len;   /* 0 .. SFT_MAX_ERROR_TEXT */
  char text[SFT_MAX_ERROR_TEXT + 1]; /* NUL-terminated copy */
};

int sft_msg_error_encode(uint8_t *buf, size_t cap,
                         const struct sft_msg_error *m, size_t *out_len);
int sft_msg_error_decode(const uint8_t *body, size_t len,
                         struct sft_msg_error *m);

/* ---- chunk stream header --------------------------------------------- */

enum sft_chunk_kind {
  SFT_CHUNK_DATA = 0,
  SFT_CHUNK_PARITY = 1,
};

/* Longest encoded chunk header. */
#define SFT_CHUNK_HDR_MAX 64

struct sft_chunk_hdr {
  enum sft_chunk_kind kind;
  uint64_t file_id;      /* < SFT_MAX_FILES */
  uint64_t index;        /* DATA: chunk index; PARITY: stripe index;
                            both < SFT_MAX_CHUNKS */
  uint32_t parity_index; /* PARITY: 0 .. SFT_MAX_STRIPE-2; DATA: 0 */
  uint32_t payload_len;  /* 1 .. SFT_CHUNK_SIZE_MAX */
  uint8_t digest[SFT_HASH_LEN]; /* of the payload, manifest's algorithm */
};

/* Writes the header only (the payload follows it on the stream). */
int sft_chunk_hdr_encode(uint8_t *buf, size_t cap,
                         const struct sft_chunk_hdr *h, size_t *out_len);
/* Decodes the header at the start of p[0..len); bytes after it (payload)
 * are not examined. Returns 0 with *hdr_len = header bytes (the payload
 * starts at p + *hdr_len); SFT_ERR_AGAIN if |len| is too short to hold the
 * whole header yet (call again with more bytes); SFT_ERR_MALFORMED,
 * SFT_ERR_RANGE, SFT_ERR_TOO_LARGE as for the control decoders.
 * *hdr_len set only on success. */
int sft_chunk_hdr_decode(const uint8_t *p, size_t len, struct sft_chunk_hdr *h,
                         size_t *hdr_len);

#endif /* SFT_PROTO_H */
