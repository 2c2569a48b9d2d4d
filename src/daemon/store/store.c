/*
 * Backend-independent half of the store: argument checks, value
 * validation shared by both backends, and dispatch through the vtable.
 * Validating here (not in each backend) is what keeps the SQLite store and
 * the memory double rejecting exactly the same inputs.
 */
#include "daemon/store/store_int.h"

#include <stdlib.h>
#include <string.h>

#include "sft/err.h"

#define I64_MAX_U ((uint64_t)INT64_MAX)

size_t sftd_store__strlen(const char *s, size_t cap) {
  const char *nul = memchr(s, '\0', cap);
  return nul ? (size_t)(nul - s) : SIZE_MAX;
}

static bool state_ok(int st) {
  return st >= 0 && st < SFTD_STORE_STATE_COUNT;
}

int sftd_store__check_session(const struct sftd_store_session *s) {
  if (sftd_store__strlen(s->peer_addr, sizeof(s->peer_addr)) == SIZE_MAX ||
      sftd_store__strlen(s->error_text, sizeof(s->error_text)) == SIZE_MAX)
    return SFT_ERR_TOO_LARGE;
  if ((s->direction != SFTD_DIR_SEND && s->direction != SFTD_DIR_RECV) ||
      s->priority < 0 || s->priority >= SFTD_STORE_PRIO_COUNT ||
      !state_ok(s->state) || s->created_ns > I64_MAX_U ||
      s->updated_ns > I64_MAX_U || s->bytes_total > I64_MAX_U ||
      s->bytes_done > s->bytes_total || s->bw_limit_bps > I64_MAX_U)
    return SFT_ERR_RANGE;
  return 0;
}

int sftd_store__check_bitmap(const uint8_t *bm, size_t len,
                             uint64_t chunk_count) {
  size_t full = sftd_store_bitmap_len(chunk_count);
  if (len > full)
    return SFT_ERR_TOO_LARGE;
  if (len > 0 && bm == NULL)
    return SFT_ERR_INVAL;
  /* Bits past the last chunk must be clear: one bitmap, one meaning. */
  if (len == full && len > 0 && chunk_count % 8 != 0) {
    uint8_t spare = (uint8_t)(0xffu << (chunk_count % 8));
    if (bm[len - 1] & spare)
      return SFT_ERR_INVAL;
  }
  return 0;
}

int sftd_store__check_file(const struct sftd_store_file *f) {
  int rc;
  if (sftd_store__strlen(f->path, sizeof(f->path)) == SIZE_MAX)
    return SFT_ERR_TOO_LARGE;
  if (f->file_id > SFTD_STORE_MAX_FILE_ID || !state_ok(f->state))
    return SFT_ERR_RANGE;
  if ((rc = sft_manifest_verify(&f->manifest)) != 0)
    return rc;
  if (f->bytes_done > f->manifest.size)
    return SFT_ERR_RANGE;
  return sftd_store__check_bitmap(f->bitmap, f->bitmap_len,
                                  f->manifest.chunk_count);
}

int sftd_store__check_peer(const struct sftd_store_peer *p) {
  if (sftd_store__strlen(p->label, sizeof(p->label)) == SIZE_MAX ||
      sftd_store__strlen(p->last_addr, sizeof(p->last_addr)) == SIZE_MAX)
    return SFT_ERR_TOO_LARGE;
  if (p->first_seen_ns > I64_MAX_U || p->last_seen_ns > I64_MAX_U)
    return SFT_ERR_RANGE;
  return 0;
}

int sftd_store__check_event_text(const char *text, size_t len) {
  if (len > SFTD_STORE_EVENT_TEXT_MAX)
    return SFT_ERR_TOO_LARGE;
  if (len > 0 && (text == NULL || memchr(text, '\0', len) != NULL))
    return SFT_ERR_INVAL;
  return 0;
}

/* ---- dispatch ------------------------------------------------------------ */

void sftd_store_close(struct sftd_store *st) {
  if (st)
    st->ops->close(st);
}

const char *sftd_store_errmsg(const struct sftd_store *st) {
  return st ? st->errmsg : "";
}

int sftd_store_integrity(struct sftd_store *st) {
  if (!st)
    return SFT_ERR_INVAL;
  return st->ops->integrity(st);
}

int sftd_store_begin(struct sftd_store *st, unsigned flags) {
  int rc;
  if (!st || (flags & ~SFTD_STORE_SYNC_FULL))
    return SFT_ERR_INVAL;
  if (st->in_batch)
    return SFT_ERR_STATE;
  if ((rc = st->ops->begin(st, flags)) != 0)
    return rc;
  st->in_batch = true;
  st->batch_flags = flags;
  return 0;
}

int sftd_store_commit(struct sftd_store *st) {
  if (!st)
    return SFT_ERR_INVAL;
  if (!st->in_batch)
    return SFT_ERR_STATE;
  st->in_batch = false; /* out of the batch whatever happens */
  return st->ops->commit(st);
}

int sftd_store_rollback(struct sftd_store *st) {
  if (!st)
    return SFT_ERR_INVAL;
  if (!st->in_batch)
    return SFT_ERR_STATE;
  st->in_batch = false;
  return st->ops->rollback(st);
}

bool sftd_store_in_batch(const struct sftd_store *st) {
  return st && st->in_batch;
}

int sftd_store_save_session(struct sftd_store *st,
                            const struct sftd_store_session *s,
                            unsigned flags) {
  int rc;
  if (!st || !s || (flags & ~SFTD_STORE_SYNC_FULL))
    return SFT_ERR_INVAL;
  if ((rc = sftd_store__check_session(s)) != 0)
    return rc;
  return st->ops->save_session(st, s, flags);
}

int sftd_store_load_session(struct sftd_store *st,
                            const uint8_t id[SFTD_STORE_ID_LEN],
                            struct sftd_store_session *out) {
  if (!st || !id || !out)
    return SFT_ERR_INVAL;
  return st->ops->load_session(st, id, out);
}

int sftd_store_list_sessions(struct sftd_store *st, unsigned state_mask,
                             size_t offset, struct sftd_store_session *out,
                             size_t cap, size_t *n) {
  if (!st || !n || (cap > 0 && !out))
    return SFT_ERR_INVAL;
  *n = 0;
  if (state_mask == 0)
    state_mask = (1u << SFTD_STORE_STATE_COUNT) - 1;
  if (cap == 0)
    return 0;
  return st->ops->list_sessions(st, state_mask, offset, out, cap, n);
}

int sftd_store_count_sessions(struct sftd_store *st, unsigned state_mask,
                              uint64_t *n) {
  if (!st || !n)
    return SFT_ERR_INVAL;
  if (state_mask == 0)
    state_mask = (1u << SFTD_STORE_STATE_COUNT) - 1;
  return st->ops->count_sessions(st, state_mask, n);
}

int sftd_store_session_exists(struct sftd_store *st,
                              const uint8_t id[SFTD_STORE_ID_LEN],
                              bool *exists) {
  if (!st || !id || !exists)
    return SFT_ERR_INVAL;
  return st->ops->session_exists(st, id, exists);
}

int sftd_store_delete_session(struct sftd_store *st,
                              const uint8_t id[SFTD_STORE_ID_LEN]) {
  if (!st || !id)
    return SFT_ERR_INVAL;
  return st->ops->delete_session(st, id);
}

int sftd_store_cleanup(struct sftd_store *st, uint64_t now_ns, unsigned days,
                       uint64_t *deleted) {
  uint64_t dummy;
  if (!st)
    return SFT_ERR_INVAL;
  if (!deleted)
    deleted = &dummy;
  *deleted = 0;
  if (days > SFTD_STORE_CLEANUP_MAX_DAYS || now_ns > I64_MAX_U)
    return SFT_ERR_RANGE;
  /* days * DAY <= 3.2e18 < INT64_MAX: no overflow; the cutoff may be
   * negative (then nothing is old enough). */
  int64_t cutoff = (int64_t)now_ns - (int64_t)(days * SFTD_STORE_DAY_NS);
  return st->ops->cleanup(st, cutoff, deleted);
}

int sftd_store_save_file(struct sftd_store *st, const struct sftd_store_file *f,
                         unsigned flags) {
  int rc;
  if (!st || !f || (flags & ~SFTD_STORE_SYNC_FULL))
    return SFT_ERR_INVAL;
  if ((rc = sftd_store__check_file(f)) != 0)
    return rc;
  return st->ops->save_file(st, f, flags);
}

int sftd_store_load_file(struct sftd_store *st,
                         const uint8_t session_id[SFTD_STORE_ID_LEN],
                         uint32_t file_id, struct sftd_store_file *out) {
  if (!st || !session_id || !out)
    return SFT_ERR_INVAL;
  out->bitmap = NULL;
  out->bitmap_len = 0;
  return st->ops->load_file(st, session_id, file_id, out);
}

void sftd_store_file_clear(struct sftd_store_file *f) {
  if (!f)
    return;
  free(f->bitmap);
  f->bitmap = NULL;
  f->bitmap_len = 0;
}

int sftd_store_list_files(struct sftd_store *st,
                          const uint8_t session_id[SFTD_STORE_ID_LEN],
                          sftd_store_file_cb cb, void *ud) {
  if (!st || !session_id || !cb)
    return SFT_ERR_INVAL;
  return st->ops->list_files(st, session_id, cb, ud);
}

int sftd_store_update_bitmaps(struct sftd_store *st,
                              const struct sftd_store_bitmap_update *u,
                              size_t n) {
  if (!st || (n > 0 && !u))
    return SFT_ERR_INVAL;
  for (size_t i = 0; i < n; i++) {
    if (u[i].bitmap_len > 0 && !u[i].bitmap)
      return SFT_ERR_INVAL;
    if (u[i].bitmap_len > SFTD_STORE_BITMAP_MAX)
      return SFT_ERR_TOO_LARGE;
    if (u[i].file_id > SFTD_STORE_MAX_FILE_ID)
      return SFT_ERR_RANGE;
  }
  if (n == 0)
    return 0;
  return st->ops->update_bitmaps(st, u, n);
}

int sftd_store_peer_put(struct sftd_store *st,
                        const struct sftd_store_peer *p) {
  int rc;
  if (!st || !p)
    return SFT_ERR_INVAL;
  if ((rc = sftd_store__check_peer(p)) != 0)
    return rc;
  return st->ops->peer_put(st, p);
}

int sftd_store_peer_get(struct sftd_store *st,
                        const uint8_t fp[SFTD_STORE_FP_LEN],
                        struct sftd_store_peer *out) {
  if (!st || !fp || !out)
    return SFT_ERR_INVAL;
  return st->ops->peer_get(st, fp, out);
}

int sftd_store_event_append(struct sftd_store *st,
                            const uint8_t session_id[SFTD_STORE_ID_LEN],
                            uint64_t ts_ns, uint8_t kind, const char *text,
                            size_t len, uint64_t *seq) {
  int rc;
  uint64_t dummy;
  if (!st || !session_id)
    return SFT_ERR_INVAL;
  if ((rc = sftd_store__check_event_text(text, len)) != 0)
    return rc;
  if (ts_ns > I64_MAX_U)
    return SFT_ERR_RANGE;
  return st->ops->event_append(st, session_id, ts_ns, kind, len ? text : "",
                               len, seq ? seq : &dummy);
}

int sftd_store_event_list(struct sftd_store *st,
                          const uint8_t session_id[SFTD_STORE_ID_LEN],
                          uint64_t after_seq, struct sftd_store_event *out,
                          size_t cap, size_t *n) {
  if (!st || !session_id || !n || (cap > 0 && !out))
    return SFT_ERR_INVAL;
  *n = 0;
  if (cap == 0)
    return 0;
  return st->ops->event_list(st, session_id, after_seq, out, cap, n);
}

int sftd_store_put_request(struct sftd_store *st,
                           const uint8_t id[SFTD_STORE_ID_LEN],
                           const void *blob, size_t len, unsigned flags) {
  if (!st || !id || (flags & ~SFTD_STORE_SYNC_FULL))
    return SFT_ERR_INVAL;
  if (len > SFTD_STORE_REQUEST_MAX)
    return SFT_ERR_TOO_LARGE;
  if (len > 0 && !blob)
    return SFT_ERR_INVAL;
  return st->ops->put_request(st, id, blob, len, flags);
}

int sftd_store_get_request(struct sftd_store *st,
                           const uint8_t id[SFTD_STORE_ID_LEN], void **blob,
                           size_t *len) {
  int rc;
  if (blob)
    *blob = NULL;
  if (len)
    *len = 0;
  if (!st || !id || !blob || !len)
    return SFT_ERR_INVAL;
  if ((rc = st->ops->get_request(st, id, blob, len)) != 0) {
    free(*blob); /* a backend sets it only on success; belt and braces */
    *blob = NULL;
    *len = 0;
  }
  return rc;
}
