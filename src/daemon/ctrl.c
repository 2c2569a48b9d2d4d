#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "daemon/ctrl.h"
#include "daemon/xport.h"

void ctrl_init(struct ctrl *k) {
  memset(k, 0, sizeof(*k));
  k->sid = -1;
}

void ctrl_free(struct ctrl *k) {
  free(k->rx);
  k->rx = NULL;
  k->rx_len = k->rx_cap = 0;
}

int ctrl_feed(struct ctrl *k, const uint8_t *data, size_t len,
              ctrl_frame_fn fn, void *ud) {
  size_t off = 0;
  int rv;

  if (!len)
    return 0;
  if (k->rx_len + len > k->rx_cap) {
    size_t need = k->rx_len + len, cap = k->rx_cap ? k->rx_cap : 4096;
    uint8_t *p;
    /* One frame is at most SFT_FRAME_HDR_MAX + SFT_MAX_CTRL_MSG bytes; the
     * buffer never needs more than that plus one read's worth. */
    if (need > (size_t)SFT_FRAME_HDR_MAX + SFT_MAX_CTRL_MSG + len)
      return SFT_ERR_TOO_LARGE;
    while (cap < need)
      cap *= 2;
    p = realloc(k->rx, cap);
    if (!p)
      return SFT_ERR_NOMEM;
    k->rx = p;
    k->rx_cap = cap;
  }
  memcpy(k->rx + k->rx_len, data, len);
  k->rx_len += len;

  for (;;) {
    struct sft_frame f;
    size_t used;
    rv = sft_frame_parse(k->rx + off, k->rx_len - off, &f, &used);
    if (rv == SFT_ERR_AGAIN) {
      rv = 0;
      break;
    }
    if (rv)
      break;
    off += used;
    rv = fn(ud, &f);
    if (rv)
      break;
  }
  if (off) {
    memmove(k->rx, k->rx + off, k->rx_len - off);
    k->rx_len -= off;
  }
  /* Give memory back after a large frame. */
  if (k->rx_cap > 65536 && k->rx_len < 4096) {
    uint8_t *p = realloc(k->rx, 4096);
    if (p) {
      k->rx = p;
      k->rx_cap = 4096;
    }
  }
  return rv;
}

int ctrl_write(struct ctrl *k, const uint8_t *frame, size_t len) {
  sftq_iov iov = {frame, len};
  if (k->sid < 0)
    return SFT_ERR_STATE;
  return XP(stream_write, k->c, k->sid, &iov, 1, SFTQ_WRITE_COPY);
}

int ctrl_send_error(struct ctrl *k, int code, uint64_t file_id,
                    const char *fmt, ...) {
  struct sft_msg_error m;
  va_list ap;
  int n;
  memset(&m, 0, sizeof(m));
  m.code = (uint16_t)(code < 0 ? -code : code);
  m.file_id = file_id;
  va_start(ap, fmt);
  n = vsnprintf(m.text, sizeof(m.text), fmt, ap);
  va_end(ap);
  m.text_len = n < 0 ? 0 : (size_t)n < sizeof(m.text) ? (size_t)n
                                                       : sizeof(m.text) - 1;
  return CTRL_SEND(k, sft_msg_error_encode, &m);
}
