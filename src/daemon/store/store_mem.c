/*
 * The in-memory store: a test double with the SQLite store's semantics
 * (same ordering, same errors, same cascade and cleanup rules, same event
 * trimming and seq numbering, batches with rollback). Plain arrays and
 * linear search: it is meant for tests, not for millions of rows.
 * A batch snapshots the whole data set at begin; rollback restores it.
 * Every operation validates before it changes anything, so a failed call
 * leaves the store as it was.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon/store/store_int.h"
#include "sft/err.h"

/* A session's request: len bytes at body (NULL when len is 0). */
struct mem_req {
  uint8_t id[SFTD_STORE_ID_LEN];
  uint8_t *body; /* owned */
  size_t len;
};

struct mem_data {
  struct sftd_store_session *sess;
  size_t nsess, capsess;
  struct sftd_store_file *files; /* bitmaps owned */
  size_t nfiles, capfiles;
  struct sftd_store_peer *peers;
  size_t npeers, cappeers;
  struct sftd_store_event *events; /* in seq order */
  size_t nevents, capevents;
  struct mem_req *reqs; /* bodies owned */
  size_t nreqs, capreqs;
  uint64_t next_seq;
};

struct mem_store {
  struct sftd_store base; /* first */
  struct mem_data cur;
  struct mem_data snap; /* valid while a batch is open */
};

static struct mem_store *M(struct sftd_store *st) {
  return (struct mem_store *)st;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return 0;
  size_t ncap = *cap ? *cap * 2 : 8;
  while (ncap < need)
    ncap *= 2;
  void *p = realloc(*arr, ncap * elem);
  if (!p)
    return SFT_ERR_NOMEM;
  *arr = p;
  *cap = ncap;
  return 0;
}

static void data_free(struct mem_data *d) {
  for (size_t i = 0; i < d->nfiles; i++)
    free(d->files[i].bitmap);
  for (size_t i = 0; i < d->nreqs; i++)
    free(d->reqs[i].body);
  free(d->reqs);
  free(d->sess);
  free(d->files);
  free(d->peers);
  free(d->events);
  memset(d, 0, sizeof(*d));
  d->next_seq = 1;
}

static void *dup_bytes(const void *p, size_t n) {
  if (n == 0)
    return NULL;
  void *q = malloc(n);
  if (q)
    memcpy(q, p, n);
  return q;
}

static int data_clone(struct mem_data *dst, const struct mem_data *src) {
  memset(dst, 0, sizeof(*dst));
  dst->next_seq = src->next_seq;
#define CLONE(field, n, cap)                                                   \
  if (src->n) {                                                                \
    dst->field = dup_bytes(src->field, src->n * sizeof(*src->field));          \
    if (!dst->field)                                                           \
      goto fail;                                                               \
    dst->n = dst->cap = src->n;                                                \
  }
  CLONE(sess, nsess, capsess)
  CLONE(peers, npeers, cappeers)
  CLONE(events, nevents, capevents)
  if (src->nfiles) {
    dst->files = calloc(src->nfiles, sizeof(*dst->files));
    if (!dst->files)
      goto fail;
    dst->capfiles = src->nfiles;
    for (size_t i = 0; i < src->nfiles; i++) {
      dst->files[i] = src->files[i];
      dst->files[i].bitmap = NULL;
      dst->nfiles = i + 1;
      if (src->files[i].bitmap_len) {
        dst->files[i].bitmap =
            dup_bytes(src->files[i].bitmap, src->files[i].bitmap_len);
        if (!dst->files[i].bitmap)
          goto fail;
      }
    }
  }
  if (src->nreqs) {
    dst->reqs = calloc(src->nreqs, sizeof(*dst->reqs));
    if (!dst->reqs)
      goto fail;
    dst->capreqs = src->nreqs;
    for (size_t i = 0; i < src->nreqs; i++) {
      dst->reqs[i] = src->reqs[i];
      dst->reqs[i].body = NULL;
      dst->nreqs = i + 1;
      if (src->reqs[i].len &&
          !(dst->reqs[i].body = dup_bytes(src->reqs[i].body, src->reqs[i].len)))
        goto fail;
    }
  }
#undef CLONE
  return 0;
fail:
  data_free(dst);
  return SFT_ERR_NOMEM;
}

static struct sftd_store_session *find_sess(struct mem_data *d,
                                            const uint8_t *id) {
  for (size_t i = 0; i < d->nsess; i++)
    if (memcmp(d->sess[i].id, id, SFTD_STORE_ID_LEN) == 0)
      return &d->sess[i];
  return NULL;
}

static struct mem_req *find_req(struct mem_data *d, const uint8_t *id) {
  for (size_t i = 0; i < d->nreqs; i++)
    if (memcmp(d->reqs[i].id, id, SFTD_STORE_ID_LEN) == 0)
      return &d->reqs[i];
  return NULL;
}

static struct sftd_store_file *find_file(struct mem_data *d, const uint8_t *sid,
                                         uint32_t fid) {
  for (size_t i = 0; i < d->nfiles; i++)
    if (d->files[i].file_id == fid &&
        memcmp(d->files[i].session_id, sid, SFTD_STORE_ID_LEN) == 0)
      return &d->files[i];
  return NULL;
}

/* ---- handle -------------------------------------------------------------- */

static void mem_close(struct sftd_store *st) {
  struct mem_store *m = M(st);
  if (st->in_batch)
    data_free(&m->snap);
  data_free(&m->cur);
  free(m);
}

static int mem_integrity(struct sftd_store *st) {
  struct mem_data *d = &M(st)->cur;
  for (size_t i = 0; i < d->nsess; i++)
    if (sftd_store__check_session(&d->sess[i]) != 0)
      return SFT_ERR_MALFORMED;
  for (size_t i = 0; i < d->nfiles; i++)
    if (!find_sess(d, d->files[i].session_id) ||
        sftd_store__check_file(&d->files[i]) != 0)
      return SFT_ERR_MALFORMED;
  for (size_t i = 0; i < d->nevents; i++)
    if (!find_sess(d, d->events[i].session_id) ||
        (i > 0 && d->events[i].seq <= d->events[i - 1].seq))
      return SFT_ERR_MALFORMED;
  for (size_t i = 0; i < d->nreqs; i++)
    if (!find_sess(d, d->reqs[i].id) ||
        d->reqs[i].len > SFTD_STORE_REQUEST_MAX ||
        (d->reqs[i].len > 0) != (d->reqs[i].body != NULL) ||
        find_req(d, d->reqs[i].id) != &d->reqs[i])
      return SFT_ERR_MALFORMED;
  return 0;
}

static int mem_begin(struct sftd_store *st, unsigned flags) {
  (void)flags;
  return data_clone(&M(st)->snap, &M(st)->cur);
}

static int mem_commit(struct sftd_store *st) {
  data_free(&M(st)->snap);
  return 0;
}

static int mem_rollback(struct sftd_store *st) {
  struct mem_store *m = M(st);
  data_free(&m->cur);
  m->cur = m->snap;
  memset(&m->snap, 0, sizeof(m->snap));
  return 0;
}

/* ---- sessions ------------------------------------------------------------ */

static int mem_save_session(struct sftd_store *st,
                            const struct sftd_store_session *s,
                            unsigned flags) {
  struct mem_data *d = &M(st)->cur;
  (void)flags;
  struct sftd_store_session *old = find_sess(d, s->id);
  if (old) {
    *old = *s;
    return 0;
  }
  if (grow((void **)&d->sess, &d->capsess, d->nsess + 1, sizeof(*d->sess)))
    return SFT_ERR_NOMEM;
  d->sess[d->nsess++] = *s;
  return 0;
}

static int mem_load_session(struct sftd_store *st, const uint8_t *id,
                            struct sftd_store_session *out) {
  struct sftd_store_session *s = find_sess(&M(st)->cur, id);
  if (!s)
    return SFT_ERR_NOT_FOUND;
  *out = *s;
  return 0;
}

static int sess_cmp(const void *a, const void *b) {
  const struct sftd_store_session *x =
      *(const struct sftd_store_session *const *)a;
  const struct sftd_store_session *y =
      *(const struct sftd_store_session *const *)b;
  if (x->created_ns != y->created_ns)
    return x->created_ns < y->created_ns ? -1 : 1;
  return memcmp(x->id, y->id, SFTD_STORE_ID_LEN);
}

static int mem_list_sessions(struct sftd_store *st, unsigned mask,
                             size_t offset, struct sftd_store_session *out,
                             size_t cap, size_t *n) {
  struct mem_data *d = &M(st)->cur;
  const struct sftd_store_session **v;
  size_t k = 0;
  if (d->nsess == 0)
    return 0;
  v = malloc(d->nsess * sizeof(*v));
  if (!v)
    return SFT_ERR_NOMEM;
  for (size_t i = 0; i < d->nsess; i++)
    if (mask & SFTD_STORE_STATE_BIT(d->sess[i].state))
      v[k++] = &d->sess[i];
  qsort(v, k, sizeof(*v), sess_cmp);
  for (size_t i = offset; i < k && *n < cap; i++)
    out[(*n)++] = *v[i];
  free(v);
  return 0;
}

static int mem_count_sessions(struct sftd_store *st, unsigned mask,
                              uint64_t *n) {
  struct mem_data *d = &M(st)->cur;
  *n = 0;
  for (size_t i = 0; i < d->nsess; i++)
    if (mask & SFTD_STORE_STATE_BIT(d->sess[i].state))
      (*n)++;
  return 0;
}

static int mem_session_exists(struct sftd_store *st, const uint8_t *id,
                              bool *ex) {
  *ex = find_sess(&M(st)->cur, id) != NULL;
  return 0;
}

static void remove_session(struct mem_data *d, size_t idx) {
  const uint8_t *id = d->sess[idx].id;
  size_t k = 0;
  for (size_t i = 0; i < d->nfiles; i++) {
    if (memcmp(d->files[i].session_id, id, SFTD_STORE_ID_LEN) == 0)
      free(d->files[i].bitmap);
    else
      d->files[k++] = d->files[i];
  }
  d->nfiles = k;
  k = 0;
  for (size_t i = 0; i < d->nevents; i++)
    if (memcmp(d->events[i].session_id, id, SFTD_STORE_ID_LEN) != 0)
      d->events[k++] = d->events[i];
  d->nevents = k;
  k = 0;
  for (size_t i = 0; i < d->nreqs; i++) {
    if (memcmp(d->reqs[i].id, id, SFTD_STORE_ID_LEN) == 0)
      free(d->reqs[i].body);
    else
      d->reqs[k++] = d->reqs[i];
  }
  d->nreqs = k;
  memmove(&d->sess[idx], &d->sess[idx + 1],
          (d->nsess - idx - 1) * sizeof(*d->sess));
  d->nsess--;
}

static int mem_delete_session(struct sftd_store *st, const uint8_t *id) {
  struct mem_data *d = &M(st)->cur;
  struct sftd_store_session *s = find_sess(d, id);
  if (!s)
    return SFT_ERR_NOT_FOUND;
  remove_session(d, (size_t)(s - d->sess));
  return 0;
}

static int mem_cleanup(struct sftd_store *st, int64_t cutoff,
                       uint64_t *deleted) {
  struct mem_data *d = &M(st)->cur;
  for (size_t i = 0; i < d->nsess;) {
    const struct sftd_store_session *s = &d->sess[i];
    if ((s->state == 5 || s->state == 6) && cutoff >= 0 &&
        s->updated_ns <= (uint64_t)cutoff) {
      remove_session(d, i);
      (*deleted)++;
    } else {
      i++;
    }
  }
  return 0;
}

/* ---- files --------------------------------------------------------------- */

static int mem_save_file(struct sftd_store *st, const struct sftd_store_file *f,
                         unsigned flags) {
  struct mem_data *d = &M(st)->cur;
  uint8_t *bm = NULL;
  (void)flags;
  if (!find_sess(d, f->session_id))
    return SFT_ERR_NOT_FOUND;
  if (f->bitmap_len && !(bm = dup_bytes(f->bitmap, f->bitmap_len)))
    return SFT_ERR_NOMEM;
  struct sftd_store_file *old = find_file(d, f->session_id, f->file_id);
  if (!old) {
    if (grow((void **)&d->files, &d->capfiles, d->nfiles + 1,
             sizeof(*d->files))) {
      free(bm);
      return SFT_ERR_NOMEM;
    }
    old = &d->files[d->nfiles++];
    old->bitmap = NULL;
  }
  free(old->bitmap);
  *old = *f;
  old->bitmap = bm;
  return 0;
}

static int mem_load_file(struct sftd_store *st, const uint8_t *sid,
                         uint32_t fid, struct sftd_store_file *out) {
  struct sftd_store_file *f = find_file(&M(st)->cur, sid, fid);
  uint8_t *bm = NULL;
  if (!f)
    return SFT_ERR_NOT_FOUND;
  if (f->bitmap_len && !(bm = dup_bytes(f->bitmap, f->bitmap_len)))
    return SFT_ERR_NOMEM;
  *out = *f;
  out->bitmap = bm;
  return 0;
}

static int file_cmp(const void *a, const void *b) {
  const struct sftd_store_file *x = *(const struct sftd_store_file *const *)a;
  const struct sftd_store_file *y = *(const struct sftd_store_file *const *)b;
  return x->file_id < y->file_id ? -1 : x->file_id > y->file_id;
}

static int mem_list_files(struct sftd_store *st, const uint8_t *sid,
                          sftd_store_file_cb cb, void *ud) {
  struct mem_data *d = &M(st)->cur;
  const struct sftd_store_file **v;
  size_t k = 0;
  int rc = 0;
  if (d->nfiles == 0)
    return 0;
  v = malloc(d->nfiles * sizeof(*v));
  if (!v)
    return SFT_ERR_NOMEM;
  for (size_t i = 0; i < d->nfiles; i++)
    if (memcmp(d->files[i].session_id, sid, SFTD_STORE_ID_LEN) == 0)
      v[k++] = &d->files[i];
  qsort(v, k, sizeof(*v), file_cmp);
  for (size_t i = 0; i < k && rc == 0; i++)
    rc = cb(v[i], ud);
  free(v);
  return rc;
}

static int mem_update_bitmaps(struct sftd_store *st,
                              const struct sftd_store_bitmap_update *u,
                              size_t n) {
  struct mem_data *d = &M(st)->cur;
  uint8_t **bms;
  int rc = 0;
  /* Check everything, then allocate everything, then apply: all or
   * nothing. */
  for (size_t i = 0; i < n; i++) {
    struct sftd_store_file *f = find_file(d, u[i].session_id, u[i].file_id);
    if (!f)
      return SFT_ERR_NOT_FOUND;
    if ((rc = sftd_store__check_bitmap(u[i].bitmap, u[i].bitmap_len,
                                       f->manifest.chunk_count)) != 0)
      return rc;
    if (u[i].bytes_done > f->manifest.size)
      return SFT_ERR_RANGE;
  }
  if (!(bms = calloc(n, sizeof(*bms))))
    return SFT_ERR_NOMEM;
  for (size_t i = 0; i < n; i++)
    if (u[i].bitmap_len && !(bms[i] = dup_bytes(u[i].bitmap, u[i].bitmap_len)))
      rc = SFT_ERR_NOMEM;
  if (rc == 0) {
    for (size_t i = 0; i < n; i++) {
      struct sftd_store_file *f = find_file(d, u[i].session_id, u[i].file_id);
      free(f->bitmap);
      f->bitmap = bms[i];
      f->bitmap_len = u[i].bitmap_len;
      f->bytes_done = u[i].bytes_done;
      bms[i] = NULL;
    }
  }
  for (size_t i = 0; i < n; i++)
    free(bms[i]);
  free(bms);
  return rc;
}

/* ---- peers and events ---------------------------------------------------- */

static int mem_peer_put(struct sftd_store *st,
                        const struct sftd_store_peer *p) {
  struct mem_data *d = &M(st)->cur;
  for (size_t i = 0; i < d->npeers; i++) {
    if (memcmp(d->peers[i].fp, p->fp, SFTD_STORE_FP_LEN) == 0) {
      uint64_t first = d->peers[i].first_seen_ns;
      d->peers[i] = *p;
      d->peers[i].first_seen_ns = first;
      return 0;
    }
  }
  if (grow((void **)&d->peers, &d->cappeers, d->npeers + 1, sizeof(*d->peers)))
    return SFT_ERR_NOMEM;
  d->peers[d->npeers++] = *p;
  return 0;
}

static int mem_peer_get(struct sftd_store *st, const uint8_t *fp,
                        struct sftd_store_peer *out) {
  struct mem_data *d = &M(st)->cur;
  for (size_t i = 0; i < d->npeers; i++) {
    if (memcmp(d->peers[i].fp, fp, SFTD_STORE_FP_LEN) == 0) {
      *out = d->peers[i];
      return 0;
    }
  }
  return SFT_ERR_NOT_FOUND;
}

static int mem_event_append(struct sftd_store *st, const uint8_t *sid,
                            uint64_t ts, uint8_t kind, const char *text,
                            size_t len, uint64_t *seq) {
  struct mem_data *d = &M(st)->cur;
  size_t count = 0;
  if (!find_sess(d, sid))
    return SFT_ERR_NOT_FOUND;
  if (grow((void **)&d->events, &d->capevents, d->nevents + 1,
           sizeof(*d->events)))
    return SFT_ERR_NOMEM;
  struct sftd_store_event *e = &d->events[d->nevents++];
  memset(e, 0, sizeof(*e));
  e->seq = d->next_seq++;
  memcpy(e->session_id, sid, SFTD_STORE_ID_LEN);
  e->ts_ns = ts;
  e->kind = kind;
  e->text_len = len;
  memcpy(e->text, text, len);
  e->text[len] = '\0';
  *seq = e->seq;
  /* Trim to the newest KEEP of this session (oldest first in the array). */
  for (size_t i = 0; i < d->nevents; i++)
    count += memcmp(d->events[i].session_id, sid, SFTD_STORE_ID_LEN) == 0;
  if (count > SFTD_STORE_EVENTS_KEEP) {
    size_t drop = count - SFTD_STORE_EVENTS_KEEP, k = 0;
    for (size_t i = 0; i < d->nevents; i++) {
      if (drop &&
          memcmp(d->events[i].session_id, sid, SFTD_STORE_ID_LEN) == 0) {
        drop--;
        continue;
      }
      d->events[k++] = d->events[i];
    }
    d->nevents = k;
  }
  return 0;
}

static int mem_event_list(struct sftd_store *st, const uint8_t *sid,
                          uint64_t after_seq, struct sftd_store_event *out,
                          size_t cap, size_t *n) {
  struct mem_data *d = &M(st)->cur;
  for (size_t i = 0; i < d->nevents && *n < cap; i++)
    if (d->events[i].seq > after_seq &&
        memcmp(d->events[i].session_id, sid, SFTD_STORE_ID_LEN) == 0)
      out[(*n)++] = d->events[i];
  return 0;
}

/* ---- requests ------------------------------------------------------------ */

static int mem_put_request(struct sftd_store *st, const uint8_t *id,
                           const void *blob, size_t len, unsigned flags) {
  struct mem_data *d = &M(st)->cur;
  uint8_t *body = NULL;
  (void)flags;
  if (!find_sess(d, id))
    return SFT_ERR_NOT_FOUND;
  if (len && !(body = dup_bytes(blob, len)))
    return SFT_ERR_NOMEM;
  struct mem_req *r = find_req(d, id);
  if (!r) {
    if (grow((void **)&d->reqs, &d->capreqs, d->nreqs + 1, sizeof(*d->reqs))) {
      free(body);
      return SFT_ERR_NOMEM;
    }
    r = &d->reqs[d->nreqs++];
    memcpy(r->id, id, SFTD_STORE_ID_LEN);
    r->body = NULL;
  }
  free(r->body);
  r->body = body;
  r->len = len;
  return 0;
}

static int mem_get_request(struct sftd_store *st, const uint8_t *id,
                           void **blob, size_t *len) {
  struct mem_req *r = find_req(&M(st)->cur, id);
  void *p;
  if (!r)
    return SFT_ERR_NOT_FOUND;
  if (r->len > SFTD_STORE_REQUEST_MAX)
    return SFT_ERR_MALFORMED;
  if (!(p = malloc(r->len ? r->len : 1)))
    return SFT_ERR_NOMEM;
  if (r->len)
    memcpy(p, r->body, r->len);
  *blob = p;
  *len = r->len;
  return 0;
}

static const struct sftd_store_ops mem_ops = {
    .close = mem_close,
    .integrity = mem_integrity,
    .begin = mem_begin,
    .commit = mem_commit,
    .rollback = mem_rollback,
    .save_session = mem_save_session,
    .load_session = mem_load_session,
    .list_sessions = mem_list_sessions,
    .count_sessions = mem_count_sessions,
    .session_exists = mem_session_exists,
    .delete_session = mem_delete_session,
    .cleanup = mem_cleanup,
    .save_file = mem_save_file,
    .load_file = mem_load_file,
    .list_files = mem_list_files,
    .update_bitmaps = mem_update_bitmaps,
    .peer_put = mem_peer_put,
    .peer_get = mem_peer_get,
    .event_append = mem_event_append,
    .event_list = mem_event_list,
    .put_request = mem_put_request,
    .get_request = mem_get_request,
};

int sftd_store_new_mem(struct sftd_store **out) {
  struct mem_store *m;
  if (!out)
    return SFT_ERR_INVAL;
  *out = NULL;
  if (!(m = calloc(1, sizeof(*m))))
    return SFT_ERR_NOMEM;
  m->base.ops = &mem_ops;
  m->cur.next_seq = 1;
  *out = &m->base;
  return 0;
}
