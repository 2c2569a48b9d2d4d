/*
 * sft/1 control-stream framing, message type names and version
 * negotiation. Layouts in docs/internals/protocol.md.
 */
#include "sft/proto.h"
#include "sft/wire.h"

int sft_proto_negotiate(uint32_t our_min, uint32_t our_cur, uint32_t peer_min,
                        uint32_t peer_cur, uint32_t *out) {
  uint32_t v;
  if (our_min == 0 || peer_min == 0 || our_min > our_cur ||
      peer_min > peer_cur)
    return SFT_ERR_INVAL;
  v = our_cur < peer_cur ? our_cur : peer_cur;
  if (v < our_min || v < peer_min)
    return SFT_ERR_VERSION;
  *out = v;
  return 0;
}

bool sft_msg_type_known(uint64_t type) {
  return type >= SFT_MSG_HELLO && type <= SFT_MSG_ERROR;
}

const char *sft_msg_type_name(uint64_t type) {
  static const char *const names[] = {
      "UNKNOWN", "HELLO", "OFFER",  "ACCEPT",   "ACK",  "NEED",
      "PAUSE",   "RESUME", "CANCEL", "COMPLETE", "ERROR",
  };
  return sft_msg_type_known(type) ? names[type] : names[0];
}

int sft_frame_parse(const uint8_t *p, size_t len, struct sft_frame *f,
                    size_t *consumed) {
  struct sft_rd r;
  uint64_t type, body_len;
  sft_rd_init(&r, p, len);
  type = sft_rd_varint(&r);
  body_len = sft_rd_varint(&r);
  if (r.err)
    return r.err == SFT_ERR_TRUNCATED ? SFT_ERR_AGAIN : r.err;
  /* Judge the length as soon as the header is complete: a peer announcing
   * an oversized message is cut off before we buffer anything of it. */
  if (body_len > SFT_MAX_CTRL_MSG)
    return SFT_ERR_TOO_LARGE;
  if (body_len > sft_rd_left(&r))
    return SFT_ERR_AGAIN;
  f->type = type;
  f->body = p + r.off;
  f->body_len = (size_t)body_len;
  *consumed = r.off + (size_t)body_len;
  return 0;
}
