/*
 * The control stream of one sft/1 connection: the bidirectional stream the
 * client opens first, carrying framed control messages (sft/proto.h) in both
 * directions. Incoming bytes are reassembled here, bounded by one frame of
 * at most SFT_MAX_CTRL_MSG; outgoing frames are copied into the transport.
 */
#ifndef SFTD_CTRL_H
#define SFTD_CTRL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "daemon/quic/quic.h"
#include "sft/proto.h"

struct ctrl {
  sftq_conn *c;
  int64_t sid;     /* -1 until opened or accepted */
  uint8_t *rx;     /* reassembly buffer */
  size_t rx_len, rx_cap;
  int fin;         /* the peer ended the stream */
};

void ctrl_init(struct ctrl *k);
void ctrl_free(struct ctrl *k);

/* Called for every complete frame; a non-zero return stops feeding and is
 * returned by ctrl_feed. */
typedef int (*ctrl_frame_fn)(void *ud, const struct sft_frame *f);

/* Appends |len| bytes and delivers every complete frame. Returns 0, the
 * callback's error, SFT_ERR_TOO_LARGE / SFT_ERR_MALFORMED for a bad frame
 * header (the stream cannot be resynchronised: close the connection), or
 * SFT_ERR_NOMEM. */
int ctrl_feed(struct ctrl *k, const uint8_t *data, size_t len,
              ctrl_frame_fn fn, void *ud);

/* Queues an encoded frame (copied). */
int ctrl_write(struct ctrl *k, const uint8_t *frame, size_t len);

/* Encodes |msgp| with encoder |encfn| (size query, then encode) and queues
 * the frame. Evaluates to 0 or an SFT_ERR_* code. */
#define CTRL_SEND(k, encfn, msgp)                                             \
  ({                                                                          \
    size_t n_ = 0;                                                            \
    int r_ = encfn(NULL, 0, (msgp), &n_);                                     \
    if (!r_) {                                                                \
      uint8_t *b_ = malloc(n_);                                               \
      r_ = b_ ? encfn(b_, n_, (msgp), &n_) : SFT_ERR_NOMEM;                   \
      if (!r_)                                                                \
        r_ = ctrl_write((k), b_, n_);                                         \
      free(b_);                                                               \
    }                                                                         \
    r_;                                                                       \
  })

/* Sends an ERROR frame with |code| (a negative SFT_ERR_*), |file_id|
 * (SFT_FILE_ID_ALL for none) and a printf-style text. */
int ctrl_send_error(struct ctrl *k, int code, uint64_t file_id,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
