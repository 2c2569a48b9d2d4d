/* Frame codec of the TCP transport (format in tcp.h and
 * docs/internals/tcp.md). Pure functions over buffers. */
#include <string.h>

#include "daemon/tcp/tcp.h"
#include "sft/wire.h"

int sftt_frame_decode(const uint8_t *buf, size_t len, sftt_frame *f) {
  memset(f, 0, sizeof *f);
  if (len == 0)
    return 0;
  struct sft_rd r;
  sft_rd_init(&r, buf, len);
  f->type = sft_rd_u8(&r);
  switch (f->type) {
  case SFTT_F_SETTINGS:
    for (int i = 0; i < 4; i++)
      f->v[i] = sft_rd_varint(&r);
    break;
  case SFTT_F_OPEN:
    f->sid = sft_rd_varint(&r);
    f->flags = sft_rd_u8(&r);
    if (!r.err && (f->flags > 1 || f->flags != ((f->sid >> 1) & 1)))
      return SFT_ERR_MALFORMED;
    break;
  case SFTT_F_DATA:
    f->sid = sft_rd_varint(&r);
    f->flags = sft_rd_u8(&r);
    if (!r.err && (f->flags & ~SFTT_DATA_FIN))
      return SFT_ERR_MALFORMED;
    f->len = (size_t)sft_rd_varint_max(&r, SFTT_MAX_PAYLOAD);
    f->data = sft_rd_bytes(&r, f->len);
    break;
  case SFTT_F_RESET:
    f->sid = sft_rd_varint(&r);
    f->v[0] = sft_rd_varint(&r);
    break;
  case SFTT_F_CREDIT:
    f->sid = sft_rd_varint(&r);
    f->v[0] = sft_rd_varint(&r);
    break;
  case SFTT_F_MAX_STREAMS:
    f->flags = sft_rd_u8(&r);
    if (!r.err && f->flags > 1)
      return SFT_ERR_MALFORMED;
    f->v[0] = sft_rd_varint_max(&r, SFTT_MAX_STREAMS_COUNT);
    break;
  case SFTT_F_PING:
  case SFTT_F_PONG:
    break;
  case SFTT_F_CLOSE:
    f->flags = sft_rd_u8(&r);
    if (!r.err && f->flags > 3)
      return SFT_ERR_MALFORMED;
    f->v[0] = sft_rd_varint(&r);
    break;
  default:
    return SFT_ERR_MALFORMED;
  }
  if (r.err == SFT_ERR_TRUNCATED) {
    f->data = NULL;
    return 0;
  }
  if (r.err)
    return r.err;
  return (int)r.off;
}

int sftt_frame_encode(const sftt_frame *f, uint8_t *out) {
  struct sft_wr w;
  sft_wr_init(&w, out, SFTT_MAX_HDR);
  sft_wr_u8(&w, f->type);
  switch (f->type) {
  case SFTT_F_SETTINGS:
    for (int i = 0; i < 4; i++)
      sft_wr_varint(&w, f->v[i]);
    break;
  case SFTT_F_OPEN:
    sft_wr_varint(&w, f->sid);
    sft_wr_u8(&w, (uint8_t)((f->sid >> 1) & 1));
    break;
  case SFTT_F_DATA:
    if (f->len > SFTT_MAX_PAYLOAD || (f->flags & ~SFTT_DATA_FIN))
      return SFT_ERR_RANGE;
    sft_wr_varint(&w, f->sid);
    sft_wr_u8(&w, f->flags);
    sft_wr_varint(&w, f->len);
    break;
  case SFTT_F_RESET:
  case SFTT_F_CREDIT:
    sft_wr_varint(&w, f->sid);
    sft_wr_varint(&w, f->v[0]);
    break;
  case SFTT_F_MAX_STREAMS:
    if (f->flags > 1 || f->v[0] > SFTT_MAX_STREAMS_COUNT)
      return SFT_ERR_RANGE;
    sft_wr_u8(&w, f->flags);
    sft_wr_varint(&w, f->v[0]);
    break;
  case SFTT_F_PING:
  case SFTT_F_PONG:
    break;
  case SFTT_F_CLOSE:
    if (f->flags > 3)
      return SFT_ERR_RANGE;
    sft_wr_u8(&w, f->flags);
    sft_wr_varint(&w, f->v[0]);
    break;
  default:
    return SFT_ERR_RANGE;
  }
  if (w.err)
    return SFT_ERR_RANGE;
  return (int)w.off;
}
