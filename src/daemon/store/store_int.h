/*
 * Internal: the backend vtable behind struct sftd_store and the validators
 * shared by both backends (so that both reject exactly the same input).
 * The public wrappers in store.c check arguments and validate values before
 * dispatching; a backend sees only valid input on the write side, and must
 * itself check what it loads (sftd_store__check_* return SFT_ERR_MALFORMED
 * mapping is the backend's job).
 */
#ifndef SFTD_STORE_INT_H
#define SFTD_STORE_INT_H

#include "daemon/store/store.h"

struct sftd_store_ops {
  void (*close)(struct sftd_store *st);
  int (*integrity)(struct sftd_store *st);
  int (*begin)(struct sftd_store *st, unsigned flags);
  int (*commit)(struct sftd_store *st);
  int (*rollback)(struct sftd_store *st);
  int (*save_session)(struct sftd_store *st, const struct sftd_store_session *s,
                      unsigned flags);
  int (*load_session)(struct sftd_store *st, const uint8_t *id,
                      struct sftd_store_session *out);
  int (*list_sessions)(struct sftd_store *st, unsigned mask, size_t offset,
                       struct sftd_store_session *out, size_t cap, size_t *n);
  int (*count_sessions)(struct sftd_store *st, unsigned mask, uint64_t *n);
  int (*session_exists)(struct sftd_store *st, const uint8_t *id, bool *ex);
  int (*delete_session)(struct sftd_store *st, const uint8_t *id);
  int (*cleanup)(struct sftd_store *st, int64_t cutoff_ns, uint64_t *deleted);
  int (*save_file)(struct sftd_store *st, const struct sftd_store_file *f,
                   unsigned flags);
  int (*load_file)(struct sftd_store *st, const uint8_t *sid, uint32_t fid,
                   struct sftd_store_file *out);
  int (*list_files)(struct sftd_store *st, const uint8_t *sid,
                    sftd_store_file_cb cb, void *ud);
  int (*update_bitmaps)(struct sftd_store *st,
                        const struct sftd_store_bitmap_update *u, size_t n);
  int (*peer_put)(struct sftd_store *st, const struct sftd_store_peer *p);
  int (*peer_get)(struct sftd_store *st, const uint8_t *fp,
                  struct sftd_store_peer *out);
  int (*event_append)(struct sftd_store *st, const uint8_t *sid, uint64_t ts,
                      uint8_t kind, const char *text, size_t len,
                      uint64_t *seq);
  int (*event_list)(struct sftd_store *st, const uint8_t *sid,
                    uint64_t after_seq, struct sftd_store_event *out,
                    size_t cap, size_t *n);
  int (*put_request)(struct sftd_store *st, const uint8_t *id, const void *blob,
                     size_t len, unsigned flags);
  /* *blob and *len are NULL and 0 on entry; set only on success. */
  int (*get_request)(struct sftd_store *st, const uint8_t *id, void **blob,
                     size_t *len);
};

/* Every backend's handle starts with this. */
struct sftd_store {
  const struct sftd_store_ops *ops;
  bool in_batch;
  unsigned batch_flags;
  char errmsg[SFTD_STORE_ERRBUF_SIZE];
};

/* Length of the NUL-terminated string in a char[cap] array; SIZE_MAX when
 * there is no NUL (oversize). */
size_t sftd_store__strlen(const char *s, size_t cap);

/* Value checks, shared by save (error as documented in store.h) and load
 * (the backend turns any error into SFT_ERR_MALFORMED). */
int sftd_store__check_session(const struct sftd_store_session *s);
int sftd_store__check_file(const struct sftd_store_file *f);
int sftd_store__check_bitmap(const uint8_t *bm, size_t len,
                             uint64_t chunk_count);
int sftd_store__check_peer(const struct sftd_store_peer *p);
int sftd_store__check_event_text(const char *text, size_t len);

#endif /* SFTD_STORE_INT_H */
