/*
 * One-shot receiver: `sft recv --dir DIR`.
 *
 * Listens for QUIC connections; each is a session with a control stream
 * (HELLO, OFFER/ACCEPT, ACK, COMPLETE) and one unidirectional stream per
 * chunk. A hostile sender is expected: names are validated before any file
 * system call and files are created beneath DIR only (fsafe.c); every chunk
 * is hashed and compared with its header's digest BEFORE it is written
 * (pwrite into NAME.sft-part, on the thread pool); a file appears under its
 * name only after the whole-file root matched, fsync and an atomic rename.
 * Memory is bounded by the transport's flow control: stream credit is given
 * back only once a chunk is written (manual_rx_credit).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/clock.h"
#include "daemon/ctrl.h"
#include "daemon/engine.h"
#include "daemon/fsafe.h"
#include "daemon/quic/quic.h"
#include "daemon/sftd.h"
#include "daemon/store/store.h"
#include "daemon/xfer_int.h"
#include "daemon/xport.h"
#include "sft/chunk.h"
#include "sft/fec.h"
#include "sft/hash.h"
#include "sft/name.h"
#include "sft/proto.h"
#include "sft/xfer.h"

#define SPACE_RESERVE (64u << 20) /* keep this much free on the disk */

enum rfile_state { RF_ACTIVE, RF_FINALIZING, RF_DONE, RF_FAILED };

struct receiver;
struct rsess;

/* A verified parity shard kept for a stripe that may need a rebuild. */
struct rpar {
  struct rpar *next;
  uint64_t stripe;
  uint32_t pidx;
  uint8_t *data; /* chunk_size bytes */
};

struct rfile {
  struct rpar *parity; /* bounded by the machine (max_parity_stripes x m) */
  uint8_t *committed;  /* store: the bitmap as last committed (ACKed) */
  int dirty;           /* store: chunks written since the last commit */
  struct rsess *ss;
  uint64_t id;
  struct sft_manifest man;
  struct sft_xrecv *xr;
  int fd;
  enum rfile_state st;
  uint32_t jobs;
  char shown[SFT_MAX_NAME * 4 + 1]; /* escaped name for messages */
};

/* One connection. It belongs to a session once its HELLO named one; a
 * session may have several (parallel connections, several paths, or a
 * reconnect overlapping the old connection's timeout). */
struct rlink {
  struct receiver *r;
  struct rsess *ss;   /* NULL until HELLO */
  struct rlink *next; /* in ss->links, or in r->pending before HELLO */
  sftq_conn *c;       /* NULL once closed */
  struct ctrl ctl;
  int hello_ok;
  uint64_t fec_seen;     /* packets rebuilt from parity, already counted */
  int fail_code;         /* the ERROR sent; close once it is delivered */
  int peer_fin;          /* the sender ended its control stream */
  int ending;            /* our FIN answered the sender's: close once it
                            is delivered */
  uint64_t close_at;     /* either: close at this time if not yet */
  uint64_t last_rx;      /* last chunk bytes received on it */
  uint32_t jobs;         /* chunk jobs that return credit to it */
  struct rchunk *chunks; /* its chunk streams still being received */
  uint8_t fp[SFTQ_FP_LEN];
  char peer[SFTD_FP_TEXT_MAX];
};

/* A transfer session: files and their state outlive connections. When its
 * last connection is gone with files unfinished, it lingers (part files
 * kept) until the sender attaches again or linger_ms pass. */
struct rsess {
  struct receiver *r;
  struct rsess *next;
  uint8_t id[SFT_SESSION_ID_LEN];
  uint8_t fp[SFTQ_FP_LEN]; /* the sender that owns it */
  struct rlink *links;
  struct rfile **files;
  size_t nfiles, cap;
  int failed, ended;
  int stored;            /* has a row in the store */
  uint64_t linger_until; /* no link: give up at this time (0: not lingering) */
  uint64_t files_ok, files_failed, bytes_ok;
  char peer[SFTD_FP_TEXT_MAX];
};

/* One incoming chunk stream. */
struct rchunk {
  uv_work_t w;
  struct rsess *ss;
  struct rfile *f;
  struct rlink *l;
  struct rchunk *lprev, *lnext; /* in l->chunks until its job starts */
  int listed;
  int64_t sid;
  int stream_gone;
  size_t hdr_got;
  uint8_t hdrbuf[SFT_CHUNK_HDR_MAX];
  int have_hdr;
  struct sft_chunk_hdr h;
  size_t hdr_len;
  uint8_t *data;
  size_t got, cap; /* bytes in, bytes allocated */
  size_t credit; /* stream bytes consumed, credit not yet returned */
  int match, werr;
  uint8_t computed[SFT_HASH_LEN];
  int parked;  /* its file is not offered yet (chunks sent early) */
  int fin;     /* ...and all of it is in */
  int discard; /* a refused file's chunk (sent before the refusal) */
};

/* Chunk streams whose file is not offered yet (the sender starts a fresh
 * file before our ACCEPT, and its OFFER, or HELLO, may come later than the
 * chunks when a packet is lost) are parked on their link, for file ids up
 * to SFT_PROTO_PARK_FILES ahead, and adopted when the OFFER is read
 * (protocol.md). Their buffers grow with the bytes that arrive, so their
 * memory is bounded by the flow-control credit they hold. */

struct rfin {
  uv_work_t w;
  struct rfile *f;
  int err;
};

struct receiver {
  struct engine *eng; /* host of the loop and the QUIC context */
  uv_loop_t *loop;
  uv_timer_t timer, ptimer;
  const struct sftd_recv_opts *o;
  struct sftd_result *res;
  int root_fd;
  struct rsess *sessions;
  struct rlink *pending; /* connections before their HELLO */
  int stopping;
};

static void pump(struct receiver *r);
static int sess_check_fin(struct rsess *ss);
static int park_adopt(struct rsess *ss, uint64_t id, struct rfile *f);
static void on_timer(uv_timer_t *t) {
  pump(t->data);
}
static uint64_t now(void) {
  return sftd_now_ns();
}

static void emit(struct receiver *r, struct sftd_event *ev) {
  if (r->o->on_event)
    r->o->on_event(ev, r->o->ud);
}

static void stop(struct receiver *r) {
  if (r->stopping)
    return;
  r->stopping = 1;
  uv_timer_stop(&r->timer);
  uv_timer_stop(&r->ptimer);
  engine_stop(r->eng);
  uv_stop(r->loop);
}

/* The link that answers for the session: the one that most recently
 * delivered chunk data (it is certainly alive), else any with HELLO done. */
static struct rlink *best_link(struct rsess *ss) {
  struct rlink *best = NULL;
  for (struct rlink *l = ss->links; l; l = l->next)
    if (l->c && l->hello_ok && !l->fail_code &&
        (!best || l->last_rx > best->last_rx))
      best = l;
  return best;
}

/* Sends on the session's best link (dropped when it has none: the sender
 * re-offers on reconnect and learns everything again). */
#define SESS_SEND(ss, encfn, msgp)                                             \
  ({                                                                           \
    struct rlink *bl_ = best_link(ss);                                         \
    bl_ ? CTRL_SEND(&bl_->ctl, encfn, msgp) : 0;                               \
  })

/* Sends on every live link of the session: for ACK and the COMPLETE echo,
 * which the sender takes twice without harm. A single copy on the best
 * link is lost for good if that link dies before delivering it (a path
 * blackholed just now still delivers its queued chunk data, so it can be
 * the best link), and nothing repeats it: the chunk's own stream, maybe on
 * another link, is already acknowledged, and the sender's resend timeout
 * is 60 s. */
#define SESS_SEND_ALL(ss, encfn, msgp)                                         \
  do {                                                                         \
    for (struct rlink *al_ = (ss)->links; al_; al_ = al_->next)                \
      if (al_->c && al_->hello_ok && !al_->fail_code)                          \
        (void)CTRL_SEND(&al_->ctl, encfn, msgp);                               \
  } while (0)

/* Link |l| failed for a protocol reason: tell the peer and close it. */
static void link_fail(struct rlink *l, int err, const char *text) {
  if (l->fail_code || !l->c)
    return;
  l->fail_code = err;
  /* Tell the peer why: ERROR then FIN on the control stream, and close the
   * connection once that is acknowledged (recv_cb_stream_acked) or after
   * two seconds (pump). Closing at once would drop the queued ERROR. */
  if (l->ctl.sid >= 0 &&
      ctrl_send_error(&l->ctl, err, SFT_FILE_ID_ALL, "%s", text) == 0 &&
      XP(stream_write, l->c, l->ctl.sid, NULL, 0, SFTQ_WRITE_FIN) == 0) {
    l->close_at = now() + 2000000000ull;
    return;
  }
  XPV(conn_close, l->c, (uint64_t)-err);
}

static void sess_end_files(struct rsess *ss, int err, const char *why);

/* The session failed for a protocol reason: tell the peer on every link,
 * close them, and fail its files (a hostile or broken sender gets no
 * second chance). |l| is the link that misbehaved (NULL: none). */
static void sess_fail(struct rsess *ss, struct rlink *l, int err,
                      const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sess_fail(struct rsess *ss, struct rlink *l, int err,
                      const char *fmt, ...) {
  char text[512];
  va_list ap;
  struct sftd_event ev = {.type = SFTD_EV_WARN, .text = text};
  struct receiver *r = l ? l->r : ss->r;
  va_start(ap, fmt);
  vsnprintf(text, sizeof(text), fmt, ap);
  va_end(ap);
  if (ss && ss->failed)
    return;
  emit(r, &ev);
  if (!r->res->err) {
    r->res->err = err;
    snprintf(r->res->why, sizeof(r->res->why), "%s", text);
  }
  if (!ss) {
    link_fail(l, err, text);
    return;
  }
  ss->failed = 1;
  for (struct rlink *k = ss->links; k; k = k->next)
    link_fail(k, err, text);
  sess_end_files(ss, SFT_ERR_PEER, "the session failed");
}

/* Every file the session offered is finished and verified here (none
 * refused or failed): its links close with SFT_PROTO_CLOSE_DONE. */
static int sess_all_ok(const struct rsess *ss) {
  if (ss->failed || !ss->nfiles)
    return 0;
  for (size_t i = 0; i < ss->nfiles; i++)
    if (!ss->files[i] || ss->files[i]->st != RF_DONE)
      return 0;
  return 1;
}

/* The application code |l| closes with: its error, or at the end of a
 * session whose files all succeeded, SFT_PROTO_CLOSE_DONE (a sender whose
 * echoes were lost learns from it that they did). */
static uint64_t link_close_code(const struct rlink *l) {
  if (l->fail_code)
    return (uint64_t)-l->fail_code;
  return l->ss && sess_all_ok(l->ss) ? SFT_PROTO_CLOSE_DONE : 0;
}

void recv_cb_stream_acked(struct receiver *r, sftq_conn *c, int64_t sid) {
  struct rlink *l = XP(conn_user, c);
  (void)r;
  if (l && (l->fail_code || l->ending) && l->c && sid == l->ctl.sid)
    XPV(conn_close, c, link_close_code(l));
}

/* ---- files ----------------------------------------------------------------
 */

/* |len| without trailing zero bytes (the stored and the sent bitmaps). */
static size_t bitmap_trim(const uint8_t *bm, size_t len) {
  while (len && !bm[len - 1])
    len--;
  return len;
}

/* The canonical length of a have-bitmap (proto.h): at most
 * SFT_PROTO_MAX_BITMAP bytes, no trailing zero byte. */
static size_t bitmap_canon(const uint8_t *bm, size_t len) {
  return bitmap_trim(bm,
                     len > SFT_PROTO_MAX_BITMAP ? SFT_PROTO_MAX_BITMAP : len);
}

/* ---- the session store (daemon only) ---------------------------------------
 */

static int sess_store_row(struct rsess *ss, int state, unsigned flags) {
  struct sftd_store_session row;
  struct receiver *r = ss->r;
  if (!r->o->store)
    return 0;
  memset(&row, 0, sizeof(row));
  if (ss->stored && sftd_store_load_session(r->o->store, ss->id, &row) != 0)
    memset(&row, 0, sizeof(row));
  memcpy(row.id, ss->id, SFTD_STORE_ID_LEN);
  row.direction = SFTD_DIR_RECV;
  memcpy(row.peer_fp, ss->fp, SFTD_STORE_FP_LEN);
  row.priority = 2;
  row.state = state;
  if (!row.created_ns)
    row.created_ns = sftd_wall_ns();
  row.updated_ns = sftd_wall_ns();
  if (sftd_store_save_session(r->o->store, &row, flags))
    return SFT_ERR_IO;
  ss->stored = 1;
  return 0;
}

/* The file's row: manifest, state, root, and the committed bitmap. */
static int file_store_row(struct rfile *f, int state) {
  struct receiver *r = f->ss->r;
  struct sftd_store_file row;
  if (!r->o->store || !f->ss->stored)
    return 0;
  memset(&row, 0, sizeof(row));
  memcpy(row.session_id, f->ss->id, SFTD_STORE_ID_LEN);
  row.file_id = (uint32_t)f->id;
  row.state = state;
  row.manifest = f->man;
  memcpy(row.root, f->man.root, SFTD_STORE_ROOT_LEN);
  if (state == SFT_XS_COMPLETED) {
    row.bytes_done = f->man.size;
  } else if (f->committed) {
    row.bitmap = f->committed;
    row.bitmap_len =
        bitmap_trim(f->committed, (size_t)((f->man.chunk_count + 7) / 8));
  }
  return sftd_store_save_file(r->o->store, &row, SFTD_STORE_SYNC_FULL)
             ? SFT_ERR_IO
             : 0;
}

static void file_end(struct rfile *f, enum rfile_state st, int err,
                     const char *why) {
  struct rsess *ss = f->ss;
  struct sftd_event ev = {0};
  if (f->st == RF_DONE || f->st == RF_FAILED)
    return;
  f->st = st;
  ev.name = f->shown;
  ev.size = f->man.size;
  if (st == RF_DONE) {
    ss->files_ok++;
    ss->bytes_ok += f->man.size;
    ss->r->res->files_ok++;
    ss->r->res->bytes += f->man.size;
    ev.type = SFTD_EV_FILE_DONE;
    sft_hex(f->man.root, SFT_HASH_LEN, ev.root_hex);
    ev.p.chunks_done = ev.p.chunks_total = f->man.chunk_count;
    if (f->xr) {
      /* duplicates: chunks that arrived when already verified here */
      struct sft_xrecv_stats xs;
      sft_xrecv_stats(f->xr, &xs);
      ev.p.chunks_resent = xs.duplicates;
      ev.p.chunks_rebuilt = xs.chunks_rebuilt;
    }
    file_store_row(f, SFT_XS_COMPLETED);
  } else {
    file_store_row(f, SFT_XS_FAILED);
    ss->files_failed++;
    ss->r->res->files_failed++;
    ev.type = SFTD_EV_FILE_FAILED;
    ev.err = err;
    ev.text = why;
    /* Incomplete data never stays under a name a user would take for the
     * file, and a failed file's part file goes. */
    if (f->man.kind == SFT_FILE_REGULAR && f->fd >= 0)
      sftd_fsafe_remove_part(ss->r->root_fd, f->man.name);
  }
  if (f->fd >= 0 && !f->jobs) {
    close(f->fd);
    f->fd = -1;
  }
  emit(ss->r, &ev);
}

/* Unlinks the parity kept for |stripe| (every stripe if UINT64_MAX) and
 * returns it as a list. */
static struct rpar *parity_take(struct rfile *f, uint64_t stripe) {
  struct rpar *out = NULL, **pp = &f->parity;
  while (*pp) {
    struct rpar *p = *pp;
    if (stripe == UINT64_MAX || p->stripe == stripe) {
      *pp = p->next;
      p->next = out;
      out = p;
    } else {
      pp = &p->next;
    }
  }
  return out;
}

static void parity_free(struct rpar *p) {
  while (p) {
    struct rpar *n = p->next;
    free(p->data);
    free(p);
    p = n;
  }
}

static void rfile_free(struct rfile *f) {
  parity_free(parity_take(f, UINT64_MAX));
  free(f->committed);
  if (f->fd >= 0)
    close(f->fd);
  sft_xrecv_del(f->xr);
  free(f);
}

static void sess_end_files(struct rsess *ss, int err, const char *why) {
  for (size_t i = 0; i < ss->nfiles; i++) {
    struct rfile *f = ss->files[i];
    if (f && f->st == RF_ACTIVE) {
      sft_xrecv_abort(f->xr, now(), err);
      file_end(f, RF_FAILED, err, why);
    }
  }
}

/* Frees an ended session once no connection and no thread-pool job refers
 * to it any more. Returns 1 if it was freed. */
static int sess_maybe_free(struct rsess *ss) {
  if (!ss->ended || ss->links)
    return 0;
  for (size_t i = 0; i < ss->nfiles; i++)
    if (ss->files[i] && ss->files[i]->jobs)
      return 0;
  for (size_t i = 0; i < ss->nfiles; i++)
    if (ss->files[i])
      rfile_free(ss->files[i]);
  free(ss->files);
  free(ss);
  return 1;
}

static void apply_dir_modes(struct rsess *ss);

/* The session is over (no connection left, nothing to wait for). */
static void sess_end(struct rsess *ss) {
  struct receiver *r = ss->r;
  struct rsess **pp;
  if (ss->ended)
    return;
  ss->ended = 1;
  apply_dir_modes(ss);
  if (!r->res->err && ss->files_failed) {
    r->res->err = SFT_ERR_CLOSED;
    snprintf(r->res->why, sizeof(r->res->why),
             "%llu file(s) of the session with %s were not received",
             (unsigned long long)ss->files_failed, ss->peer);
  }
  for (pp = &r->sessions; *pp; pp = &(*pp)->next)
    if (*pp == ss) {
      *pp = ss->next;
      break;
    }
  ss->next = NULL;
  sess_maybe_free(ss); /* now, or when its last job completes */
  if (r->o->once)
    stop(r);
}

static int sess_unfinished(const struct rsess *ss) {
  for (size_t i = 0; i < ss->nfiles; i++)
    if (ss->files[i] &&
        (ss->files[i]->st == RF_ACTIVE || ss->files[i]->st == RF_FINALIZING))
      return 1;
  return 0;
}

static void link_free_maybe(struct rlink *l) {
  if (l->c || l->jobs)
    return;
  ctrl_free(&l->ctl);
  free(l);
}

static int refuse(struct rlink *l, uint64_t id, uint16_t reason,
                  const char *shown, const char *why) {
  struct rsess *ss = l->ss;
  /* A refusal carries no chunk count and no bitmap (protocol.md). */
  struct sft_msg_accept a = {
      .file_id = id, .status = SFT_ACCEPT_REFUSED, .reason = reason};
  char text[SFT_MAX_NAME * 4 + 200];
  struct sftd_event ev = {.type = SFTD_EV_FILE_FAILED, .name = shown};
  snprintf(text, sizeof(text), "refused: %s", why);
  ev.text = text;
  ev.err = SFT_ERR_PEER;
  park_adopt(ss, id, NULL);
  emit(ss->r, &ev);
  ss->files_failed++;
  ss->r->res->files_refused++;
  return CTRL_SEND(&l->ctl, sft_msg_accept_encode, &a);
}

static int same_manifest(const struct sft_manifest *a,
                         const struct sft_manifest *b) {
  return a->kind == b->kind && a->size == b->size &&
         a->chunk_size == b->chunk_size && a->chunk_count == b->chunk_count &&
         a->hash_algo == b->hash_algo && a->name_len == b->name_len &&
         memcmp(a->name, b->name, a->name_len) == 0 &&
         a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec &&
         a->stripe_k == b->stripe_k && a->stripe_m == b->stripe_m;
}

/* A file offered again (the sender reconnected): answer with what we hold,
 * so that nothing verified crosses the wire twice. */
static int on_reoffer(struct rlink *l, const struct sft_msg_offer *m) {
  struct rsess *ss = l->ss;
  struct rfile *f = ss->files[m->file_id];
  struct sft_msg_accept a = {.file_id = m->file_id, .status = SFT_ACCEPT_OK};
  uint8_t *full = NULL;
  int rv;
  if (!f || f->st == RF_FAILED) {
    a.status = SFT_ACCEPT_REFUSED;
    a.reason = SFT_REASON_INTERNAL;
    return CTRL_SEND(&l->ctl, sft_msg_accept_encode, &a);
  }
  if (!same_manifest(&f->man, &m->manifest))
    return SFT_ERR_PEER; /* file ids are not reused for other files */
  a.chunk_count = f->man.chunk_count;
  if (f->man.kind == SFT_FILE_DIR) {
    a.chunk_count = 0;
  } else if (f->st == RF_ACTIVE) {
    a.bitmap = sft_xrecv_bitmap(f->xr, &a.bitmap_len);
  } else {
    /* Finalizing or done: everything is held. */
    a.bitmap_len = (size_t)((f->man.chunk_count + 7) / 8);
    full = malloc(a.bitmap_len ? a.bitmap_len : 1);
    if (!full)
      return SFT_ERR_NOMEM;
    memset(full, 0xff, a.bitmap_len);
    if (f->man.chunk_count % 8)
      full[a.bitmap_len - 1] = (uint8_t)((1u << (f->man.chunk_count % 8)) - 1);
    a.bitmap = full;
  }
  a.bitmap_len = a.bitmap ? bitmap_canon(a.bitmap, a.bitmap_len) : 0;
  rv = CTRL_SEND(&l->ctl, sft_msg_accept_encode, &a);
  free(full);
  return rv;
}

static int on_offer(struct rlink *l, const struct sft_msg_offer *m) {
  struct rsess *ss = l->ss;
  struct receiver *r = ss->r;
  const struct sft_manifest *man = &m->manifest;
  struct rfile *f;
  enum sft_name_reason why;
  size_t off;
  char shown[SFT_MAX_NAME * 4 + 1];
  int rv;

  /* File ids are assigned 0, 1, 2, ... by the sender (protocol.md); a known
   * id is offered again after a reconnect. */
  if (m->file_id < ss->nfiles)
    return on_reoffer(l, m);
  if (m->file_id != ss->nfiles)
    return SFT_ERR_PEER;
  sft_name_escape(man->name, man->name_len, shown, sizeof(shown));
  if (ss->nfiles == ss->cap) {
    size_t cap = ss->cap ? ss->cap * 2 : 16;
    struct rfile **v = realloc(ss->files, cap * sizeof(*v));
    if (!v)
      return SFT_ERR_NOMEM;
    ss->files = v;
    ss->cap = cap;
  }
  ss->files[ss->nfiles++] = NULL; /* refused files keep a NULL slot */

  if (sft_name_validate(man->name, man->name_len, &why, &off) != 0)
    return refuse(l, m->file_id, SFT_REASON_BAD_NAME, shown,
                  sft_name_reason_str(why));
  if (man->kind == SFT_FILE_REGULAR) {
    if (r->o->max_size && man->size > r->o->max_size)
      return refuse(l, m->file_id, SFT_REASON_TOO_LARGE, shown,
                    "larger than --max-size");
    rv = sftd_fsafe_check_final(r->root_fd, man->name, r->o->overwrite != 0);
    if (rv == SFT_ERR_EXISTS)
      return refuse(l, m->file_id, SFT_REASON_EXISTS, shown,
                    "the file exists (start the receiver with --overwrite "
                    "to replace it)");
    if (rv)
      return refuse(l, m->file_id, SFT_REASON_BAD_NAME, shown,
                    "the path is blocked (a parent is not a directory "
                    "or is a symbolic link)");
    if (sftd_fsafe_check_space(r->root_fd, man->size, SPACE_RESERVE, NULL))
      return refuse(l, m->file_id, SFT_REASON_NOSPACE, shown,
                    "not enough free disk space");
  }

  f = calloc(1, sizeof(*f));
  if (!f)
    return SFT_ERR_NOMEM;
  f->ss = ss;
  f->id = m->file_id;
  f->man = *man;
  f->fd = -1;
  memcpy(f->shown, shown, sizeof(f->shown));

  if (man->kind == SFT_FILE_DIR) {
    /* Created owner-writable now so files can be put inside; its own mode
     * is applied when the session ends. */
    rv = sftd_fsafe_mkdirs(r->root_fd, man->name, 0700, NULL);
    if (rv) {
      free(f);
      return refuse(l, m->file_id, SFT_REASON_BAD_NAME, shown,
                    "cannot create the directory");
    }
    ss->files[m->file_id] = f;
    f->st = RF_DONE;
    {
      struct sft_msg_accept a = {
          .file_id = f->id, .status = SFT_ACCEPT_OK, .chunk_count = 0};
      struct sftd_event ev = {.type = SFTD_EV_FILE_DONE, .name = f->shown};
      ss->files_ok++;
      r->res->files_ok++;
      emit(r, &ev);
      rv = CTRL_SEND(&l->ctl, sft_msg_accept_encode, &a);
      return rv ? rv : park_adopt(ss, f->id, f); /* none: PEER */
    }
  }

  rv = sftd_fsafe_open_part(r->root_fd, man->name, SFTD_FSAFE_FRESH, 0700,
                            &f->fd);
  if (rv == SFT_ERR_EXISTS) {
    /* A part file left by an earlier, interrupted transfer: start over. */
    sftd_fsafe_remove_part(r->root_fd, man->name);
    rv = sftd_fsafe_open_part(r->root_fd, man->name, SFTD_FSAFE_FRESH, 0700,
                              &f->fd);
  }
  if (rv) {
    free(f);
    return refuse(l, m->file_id,
                  rv == SFT_ERR_NOSPACE ? SFT_REASON_NOSPACE
                  : rv == SFT_ERR_PATH  ? SFT_REASON_BAD_NAME
                                        : SFT_REASON_INTERNAL,
                  shown, sft_strerror(rv));
  }
  if (man->size) {
    rv = posix_fallocate(f->fd, 0, (off_t)man->size);
    if (rv == ENOSPC) {
      sftd_fsafe_remove_part(r->root_fd, man->name);
      close(f->fd);
      free(f);
      return refuse(l, m->file_id, SFT_REASON_NOSPACE, shown,
                    "not enough free disk space");
    }
  }
  {
    struct sft_xrecv_params xp;
    sft_xrecv_params_default(&xp);
    if (man->stripe_m) {
      xp.stripe_k = man->stripe_k;
      xp.stripe_m = man->stripe_m;
    }
    rv = sft_xrecv_new(&f->xr, man->size, man->chunk_size, man->hash_algo, NULL,
                       0, &xp);
  }
  if (!rv)
    rv = sft_xrecv_start(f->xr, now());
  if (!rv)
    rv = sft_xrecv_accepted(f->xr, now());
  if (!rv)
    sft_xrecv_set_rtt(f->xr, 1000000000u); /* see progress_tick */
  if (rv) {
    sftd_fsafe_remove_part(r->root_fd, man->name);
    rfile_free(f);
    return refuse(l, m->file_id, SFT_REASON_INTERNAL, shown, sft_strerror(rv));
  }
  ss->files[m->file_id] = f;
  f->st = RF_ACTIVE;
  if (r->o->store) {
    /* Resumable from now on: the file's row before its ACCEPT. */
    f->committed = calloc(1, (size_t)((man->chunk_count + 7) / 8) + 1);
    if (!f->committed ||
        (!ss->stored &&
         sess_store_row(ss, SFT_XS_TRANSFERRING, SFTD_STORE_SYNC_FULL)) ||
        file_store_row(f, SFT_XS_TRANSFERRING)) {
      ss->files[m->file_id] = NULL;
      sftd_fsafe_remove_part(r->root_fd, man->name);
      rfile_free(f);
      return refuse(l, m->file_id, SFT_REASON_INTERNAL, shown,
                    "cannot record the file in the session store");
    }
  }
  {
    struct sft_msg_accept a = {.file_id = f->id,
                               .status = SFT_ACCEPT_OK,
                               .chunk_count = man->chunk_count};
    struct sftd_event ev = {
        .type = SFTD_EV_FILE_START, .name = f->shown, .size = man->size};
    emit(r, &ev);
    rv = CTRL_SEND(&l->ctl, sft_msg_accept_encode, &a);
    return rv ? rv : park_adopt(ss, f->id, f);
  }
}

/* ---- finalize on the thread pool ----------------------------------------- */

static void fin_work(uv_work_t *w) {
  struct rfin *j = w->data;
  struct rfile *f = j->f;
  struct timespec mt = {.tv_sec = f->man.mtime_sec,
                        .tv_nsec = f->man.mtime_nsec};
  j->err = sftd_fsafe_finalize(f->ss->r->root_fd, f->man.name, f->fd,
                               (mode_t)(f->man.mode & 0777), &mt,
                               f->ss->r->o->overwrite != 0);
}

/* A session without connections ends once nothing is left to finish. */
static void sess_check_idle(struct rsess *ss) {
  if (!ss->ended && !ss->links && !sess_unfinished(ss))
    sess_end(ss);
}

static void fin_done(uv_work_t *w, int status) {
  struct rfin *j = w->data;
  struct rfile *f = j->f;
  struct rsess *ss = f->ss;
  struct receiver *r = ss->r;
  f->jobs--;
  if (status == 0 && j->err == 0) {
    struct sft_msg_complete m = {.file_id = f->id};
    memcpy(m.root, f->man.root, SFT_HASH_LEN);
    SESS_SEND_ALL(ss, sft_msg_complete_encode, &m);
    file_end(f, RF_DONE, 0, NULL);
  } else {
    int err = status ? SFT_ERR_IO : j->err;
    SESS_SEND(ss, sft_msg_cancel_encode,
              (&(struct sft_msg_cancel){.file_id = f->id,
                                        .reason = err == SFT_ERR_EXISTS
                                                      ? SFT_REASON_EXISTS
                                                      : SFT_REASON_INTERNAL}));
    file_end(f, RF_FAILED, err, sft_strerror(err));
  }
  free(j);
  sess_check_idle(ss);
  sess_maybe_free(ss);
  pump(r);
}

/* ---- chunks on the thread pool --------------------------------------------
 */

/* Hash, compare with the header's digest, and only then write. */
static void chunk_work(uv_work_t *w) {
  struct rchunk *k = w->data;
  uint64_t off;
  sft_hash(k->f->man.hash_algo, k->data, k->got, k->computed);
  k->match = memcmp(k->computed, k->h.digest, SFT_HASH_LEN) == 0;
  if (!k->match || k->h.kind == SFT_CHUNK_PARITY)
    return; /* parity stays in memory */
  off = sft_chunk_offset(k->h.index, k->f->man.chunk_size);
  k->werr = sftd_pwrite_full(k->f->fd, k->data, k->got, off);
  if (!k->werr)
    (void)sftd_writeback(k->f->fd, off, k->got); /* the final fsync is short */
}

static void rchunk_unlist(struct rchunk *k) {
  if (!k->listed)
    return;
  if (k->lprev)
    k->lprev->lnext = k->lnext;
  else
    k->l->chunks = k->lnext;
  if (k->lnext)
    k->lnext->lprev = k->lprev;
  k->lprev = k->lnext = NULL;
  k->listed = 0;
}

static void rchunk_free(struct rchunk *k) {
  rchunk_unlist(k);
  free(k->data);
  free(k);
}

static void chunk_done(uv_work_t *w, int status) {
  struct rchunk *k = w->data;
  struct rfile *f = k->f;
  struct rsess *ss = k->ss;
  struct rlink *l = k->l;
  struct receiver *r = ss->r;
  f->jobs--;
  if (l)
    l->jobs--;
  /* Always give the credit back: the stream may be closed already, but the
   * connection-level window still counts these bytes. */
  if (l && l->c)
    XP(stream_consume, l->c, k->sid, k->credit);
  if (status == 0 && f->st == RF_ACTIVE) {
    if (k->werr) {
      sft_xrecv_abort(f->xr, now(), k->werr);
    } else if (k->h.kind == SFT_CHUNK_PARITY) {
      struct sft_xrecv_parity out;
      struct rpar *p;
      int rv = sft_xrecv_on_parity_hashed(f->xr, now(), k->h.index,
                                          k->h.parity_index, k->got,
                                          k->computed, k->h.digest, &out);
      if (rv == 0 && out.verdict == SFT_XRECV_KEEP &&
          (p = calloc(1, sizeof(*p))) != NULL) {
        p->stripe = k->h.index;
        p->pidx = k->h.parity_index;
        p->data = k->data;
        k->data = NULL;
        p->next = f->parity;
        f->parity = p;
      }
    } else if (!k->match) {
      /* Nothing written; the sender resends after its timeout. */
      r->res->chunks_resent++;
    } else {
      struct sft_xrecv_chunk out;
      int rv = sft_xrecv_on_chunk_hashed(f->xr, now(), k->h.index, k->computed,
                                         k->h.digest, &out);
      if (rv == 0 && out.verdict == SFT_XRECV_WRITE)
        sft_xrecv_on_written(f->xr, k->h.index);
      if (rv == 0 && out.release_parity)
        parity_free(parity_take(f, out.stripe));
    }
  }
  if (f->st != RF_ACTIVE && !f->jobs && f->fd >= 0 &&
      (f->st == RF_DONE || f->st == RF_FAILED)) {
    close(f->fd);
    f->fd = -1;
  }
  if (l && !k->stream_gone && l->c)
    XP(stream_set_user, l->c, k->sid, NULL);
  rchunk_free(k);
  if (l) /* NULL: a chunk from gRPC SendChunk */
    link_free_maybe(l);
  sess_maybe_free(ss);
  pump(r);
}

static void chunk_submit(struct rchunk *k) {
  struct receiver *r = k->ss->r;
  rchunk_unlist(k); /* the job owns it now */
  k->w.data = k;
  k->f->jobs++;
  if (k->l)
    k->l->jobs++;
  if (uv_queue_work(r->loop, &k->w, chunk_work, chunk_done)) {
    k->f->jobs--;
    if (k->l)
      k->l->jobs--;
    rchunk_free(k);
  }
}

static struct rsess *sess_find(struct receiver *r, const uint8_t *id);

int recv_accept_chunk(struct receiver *r, const uint8_t *sid, uint64_t file_id,
                      uint64_t index, const uint8_t *data, size_t len,
                      const uint8_t *digest) {
  struct rsess *ss = r ? sess_find(r, sid) : NULL;
  struct rfile *f;
  struct rchunk *k;
  const uint8_t *bm;
  size_t bml = 0;
  if (!ss || ss->failed || file_id >= ss->nfiles || !ss->files[file_id])
    return SFT_ERR_NOT_FOUND;
  f = ss->files[file_id];
  if (f->st != RF_ACTIVE || !f->xr || f->man.kind != SFT_FILE_REGULAR)
    return SFT_ERR_STATE;
  if (index >= f->man.chunk_count)
    return SFT_ERR_RANGE;
  if (len != sft_chunk_len(f->man.size, f->man.chunk_size, index))
    return SFT_ERR_INVAL;
  bm = sft_xrecv_bitmap(f->xr, &bml);
  if (bm && index / 8 < bml && (bm[index / 8] >> (index % 8)) & 1)
    return SFT_ERR_EXISTS; /* held and verified: never overwritten */
  k = calloc(1, sizeof(*k));
  if (!k || !(k->data = malloc(len ? len : 1))) {
    free(k);
    return SFT_ERR_NOMEM;
  }
  memcpy(k->data, data, len);
  k->ss = ss;
  k->f = f;
  k->sid = -1;
  k->stream_gone = 1;
  k->have_hdr = 1;
  k->h.kind = SFT_CHUNK_DATA;
  k->h.file_id = file_id;
  k->h.index = index;
  k->h.payload_len = (uint32_t)len;
  memcpy(k->h.digest, digest, SFT_HASH_LEN);
  k->got = len;
  chunk_submit(k); /* hashed again, written, then the machine takes it */
  return 0;
}

/* A chunk header against its file's manifest: 0 or SFT_ERR_PEER. */
static int chunk_hdr_check(const struct rfile *f,
                           const struct sft_chunk_hdr *h) {
  if (f->man.kind != SFT_FILE_REGULAR)
    return SFT_ERR_PEER;
  if (h->kind == SFT_CHUNK_PARITY) {
    /* index = stripe, parity_index < m, a full chunk_size payload. */
    if (!f->man.stripe_m ||
        h->index >= sft_stripe_count(f->man.chunk_count, f->man.stripe_k) ||
        h->parity_index >= f->man.stripe_m ||
        h->payload_len != f->man.chunk_size)
      return SFT_ERR_PEER;
  } else if (h->kind != SFT_CHUNK_DATA || h->index >= f->man.chunk_count ||
             h->payload_len !=
                 sft_chunk_len(f->man.size, f->man.chunk_size, h->index)) {
    return SFT_ERR_PEER;
  }
  return 0;
}

/* File |id| of |ss| was offered: its parked chunks (on every link) go to
 * |f|, or are dropped (|f| NULL: refused). 0, or SFT_ERR_PEER for a chunk
 * that does not fit the manifest (the caller fails the session). */
static int park_adopt(struct rsess *ss, uint64_t id, struct rfile *f) {
  for (struct rlink *l = ss->links; l; l = l->next) {
    struct rchunk *k = l->chunks, *next;
    for (; k; k = next) {
      next = k->lnext;
      if (!k->parked || k->h.file_id != id)
        continue;
      if (f && chunk_hdr_check(f, &k->h))
        return SFT_ERR_PEER;
      k->parked = 0;
      k->f = f;
      if (!f || f->st != RF_ACTIVE) {
        /* Refused (or not a file to write): its bytes are consumed, the
         * rest of its stream too (no user: recv_cb_stream_data). */
        if (l->c) {
          XP(stream_consume, l->c, k->sid, k->credit);
          if (!k->stream_gone)
            XP(stream_set_user, l->c, k->sid, NULL);
        }
        rchunk_free(k);
      } else if (k->fin) {
        chunk_submit(k);
      }
    }
  }
  return 0;
}

/* Feeds bytes of a chunk stream. Returns 0, SFT_ERR_AGAIN (a chunk of a
 * file not offered yet that cannot be parked: the caller resets its
 * stream), or an error that fails the session (protocol violation). */
static int chunk_feed(struct rchunk *k, const uint8_t *data, size_t len,
                      int fin) {
  struct rsess *ss = k->ss;
  k->credit += len;
  if (!k->have_hdr) {
    size_t take = sizeof(k->hdrbuf) - k->hdr_got;
    int rv;
    struct rfile *f;
    if (take > len)
      take = len;
    memcpy(k->hdrbuf + k->hdr_got, data, take);
    k->hdr_got += take;
    rv = sft_chunk_hdr_decode(k->hdrbuf, k->hdr_got, &k->h, &k->hdr_len);
    if (rv == SFT_ERR_AGAIN) {
      if (fin)
        return SFT_ERR_TRUNCATED;
      return 0;
    }
    if (rv)
      return rv;
    if (!ss || k->h.file_id >= ss->nfiles) {
      /* Its file is not offered yet: parked until it is (or refused). Too
       * far ahead, or too many: reset, and the sender sends it again. */
      if (k->h.payload_len > SFT_CHUNK_SIZE_MAX)
        return SFT_ERR_PEER;
      if (k->h.file_id >= (ss ? ss->nfiles : 0) + SFT_PROTO_PARK_FILES)
        return SFT_ERR_AGAIN;
      k->parked = 1;
    } else {
      f = ss->files[k->h.file_id];
      if (!f) {
        /* Refused: sent before our refusal reached the sender. */
        k->discard = 1;
      } else {
        rv = chunk_hdr_check(f, &k->h);
        if (rv)
          return rv;
        k->f = f;
      }
    }
    k->have_hdr = 1;
    if (!k->discard && !k->parked) {
      k->data = malloc(k->h.payload_len ? k->h.payload_len : 1);
      if (!k->data)
        return SFT_ERR_NOMEM;
      k->cap = k->h.payload_len;
    }
    /* Bytes past the header in what we copied are payload. */
    data += take - (k->hdr_got - k->hdr_len);
    len -= take - (k->hdr_got - k->hdr_len);
  }
  if (len > k->h.payload_len - k->got)
    return SFT_ERR_PEER;
  if (!k->discard && k->got + len > k->cap) {
    /* parked: the buffer grows with what arrives (twice, up to the chunk) */
    size_t cap = k->cap ? k->cap : 64 * 1024;
    uint8_t *d;
    while (cap < k->got + len)
      cap *= 2;
    if (cap > k->h.payload_len)
      cap = k->h.payload_len;
    if (!(d = realloc(k->data, cap ? cap : 1)))
      return SFT_ERR_NOMEM;
    k->data = d;
    k->cap = cap;
  }
  if (!k->discard)
    memcpy(k->data + k->got, data, len);
  k->got += len;
  if (k->discard) {
    XP(stream_consume, k->l->c, k->sid, k->credit);
    k->credit = 0;
  }
  if (fin) {
    if (k->got != k->h.payload_len)
      return SFT_ERR_TRUNCATED;
    if (k->parked) {
      k->fin = 1; /* submitted when its OFFER is read */
      return 0;
    }
    if (k->discard || k->f->st != RF_ACTIVE) {
      /* Late chunk of a finished or failed file: drop it. */
      XP(stream_consume, k->l->c, k->sid, k->credit);
      XP(stream_set_user, k->l->c, k->sid, NULL);
      rchunk_free(k);
      return 0;
    }
    chunk_submit(k);
  }
  return 0;
}

/* ---- rebuild from parity on the thread pool ------------------------------ */

/* One REBUILD: present data chunks are read back from the part file, the
 * kept parity shards are used as they are, sft_fec_decode fills the missing
 * data chunks, each is hashed (its real length) and written. The machine
 * then takes each rebuilt chunk (on_rebuilt); the whole-file root at
 * COMPLETE is the final check of every rebuilt byte. */
struct rbuild {
  uv_work_t w;
  struct rfile *f;
  struct sft_xrecv_action a;
  uint32_t k, m;
  struct rpar *par; /* owned: the stripe's kept parity */
  uint8_t *buf[SFT_MAX_STRIPE];
  uint8_t digest[SFT_MAX_STRIPE][SFT_HASH_LEN];
  int err;
};

static void rbuild_work(uv_work_t *w) {
  struct rbuild *b = w->data;
  struct rfile *f = b->f;
  struct sft_fec *fec = NULL;
  uint32_t len = b->a.len;
  for (struct rpar *p = b->par; p; p = p->next)
    if (p->pidx < b->m)
      b->buf[b->k + p->pidx] = p->data;
  for (uint32_t i = 0; i < b->k + b->m; i++) {
    int present = sft_fec_mask_test(&b->a.present, i);
    if (i >= b->k) {
      if (present && !b->buf[i]) {
        b->err = SFT_ERR_STATE; /* a parity shard the machine counted */
        return;
      }
      continue;
    }
    if (i >= b->a.nchunks) { /* zero padding of a short last stripe */
      b->buf[i] = calloc(1, len);
      if (!b->buf[i]) {
        b->err = SFT_ERR_NOMEM;
        return;
      }
      continue;
    }
    b->buf[i] = calloc(1, len);
    if (!b->buf[i]) {
      b->err = SFT_ERR_NOMEM;
      return;
    }
    if (present) {
      uint64_t idx = b->a.index + i;
      size_t clen = sft_chunk_len(f->man.size, f->man.chunk_size, idx);
      if (sftd_pread_full(f->fd, b->buf[i], clen,
                          sft_chunk_offset(idx, f->man.chunk_size))) {
        b->err = SFT_ERR_IO;
        return;
      }
    }
  }
  if (sft_fec_new(&fec, b->k, b->m)) {
    b->err = SFT_ERR_NOMEM;
    return;
  }
  b->err = sft_fec_decode(fec, b->buf, &b->a.present, len, 0);
  sft_fec_del(fec);
  for (uint32_t i = 0; !b->err && i < b->a.nchunks; i++) {
    uint64_t idx = b->a.index + i;
    size_t clen;
    if (sft_fec_mask_test(&b->a.present, i))
      continue;
    clen = sft_chunk_len(f->man.size, f->man.chunk_size, idx);
    sft_hash(f->man.hash_algo, b->buf[i], clen, b->digest[i]);
    b->err = sftd_pwrite_full(f->fd, b->buf[i], clen,
                              sft_chunk_offset(idx, f->man.chunk_size));
  }
}

static void rbuild_done(uv_work_t *w, int status) {
  struct rbuild *b = w->data;
  struct rfile *f = b->f;
  struct rsess *ss = f->ss;
  struct receiver *r = ss->r;
  f->jobs--;
  if (f->st == RF_ACTIVE) {
    if (status || b->err) {
      sft_xrecv_rebuild_failed(f->xr, now(), b->a.stripe);
    } else {
      for (uint32_t i = 0; i < b->a.nchunks; i++) {
        struct sft_xrecv_chunk out;
        uint64_t idx = b->a.index + i;
        if (sft_fec_mask_test(&b->a.present, i))
          continue;
        if (sft_xrecv_on_rebuilt(f->xr, now(), idx, b->digest[i], &out) == 0 &&
            out.verdict == SFT_XRECV_WRITE) {
          sft_xrecv_on_written(f->xr, idx);
          r->res->chunks_rebuilt++;
        }
      }
    }
  }
  for (uint32_t i = 0; i < b->k; i++)
    free(b->buf[i]);
  parity_free(b->par);
  free(b);
  sess_maybe_free(ss);
  pump(r);
}

static void rbuild_submit(struct receiver *r, struct rfile *f,
                          const struct sft_xrecv_action *a) {
  struct rbuild *b = calloc(1, sizeof(*b));
  if (!b) {
    parity_free(parity_take(f, a->stripe));
    sft_xrecv_rebuild_failed(f->xr, now(), a->stripe);
    return;
  }
  b->w.data = b;
  b->f = f;
  b->a = *a;
  b->k = f->man.stripe_k;
  b->m = f->man.stripe_m;
  b->par = parity_take(f, a->stripe);
  f->jobs++;
  if (uv_queue_work(r->loop, &b->w, rbuild_work, rbuild_done)) {
    f->jobs--;
    parity_free(b->par);
    free(b);
    sft_xrecv_rebuild_failed(f->xr, now(), a->stripe);
  }
}

/* ---- re-hashing held chunks of a resumed file ------------------------------
 */

struct rhash {
  uv_work_t w;
  struct rfile *f;
  uint64_t index, offset;
  uint32_t len;
  int err;
  uint8_t digest[SFT_HASH_LEN];
};

static void rhash_work(uv_work_t *w) {
  struct rhash *h = w->data;
  uint8_t *buf = malloc(h->len ? h->len : 1);
  if (!buf) {
    h->err = SFT_ERR_NOMEM;
    return;
  }
  if (sftd_pread_full(h->f->fd, buf, h->len, h->offset))
    h->err = SFT_ERR_IO;
  if (!h->err)
    sft_hash(h->f->man.hash_algo, buf, h->len, h->digest);
  free(buf);
}

static void rhash_done(uv_work_t *w, int status) {
  struct rhash *h = w->data;
  struct rfile *f = h->f;
  struct rsess *ss = f->ss;
  struct receiver *r = ss->r;
  f->jobs--;
  if (f->st == RF_ACTIVE) {
    if (status || h->err)
      sft_xrecv_abort(f->xr, now(), h->err ? h->err : SFT_ERR_IO);
    else
      sft_xrecv_on_hashed(f->xr, h->index, h->digest);
  }
  free(h);
  sess_maybe_free(ss);
  pump(r);
}

static void rhash_submit(struct receiver *r, struct rfile *f,
                         const struct sft_xrecv_action *a) {
  struct rhash *h = calloc(1, sizeof(*h));
  if (!h) {
    sft_xrecv_abort(f->xr, now(), SFT_ERR_NOMEM);
    return;
  }
  h->w.data = h;
  h->f = f;
  h->index = a->index;
  h->offset = a->offset;
  h->len = a->len;
  f->jobs++;
  if (uv_queue_work(r->loop, &h->w, rhash_work, rhash_done)) {
    f->jobs--;
    free(h);
    sft_xrecv_abort(f->xr, now(), SFT_ERR_IO);
  }
}

/* ---- pump -----------------------------------------------------------------
 */

static void pump_file(struct receiver *r, struct rfile *f, uint64_t t,
                      uint64_t *next) {
  struct sft_xrecv_action a;
  struct rsess *ss = f->ss;
  while (f->st == RF_ACTIVE) {
    if (sft_xrecv_poll(f->xr, t, &a))
      return;
    switch (a.type) {
    case SFT_XRECV_NONE:
      if (a.expiry < *next)
        *next = a.expiry;
      return;
    case SFT_XRECV_SEND_ACK: {
      static struct sft_ack_range rr[SFT_MAX_ACK_RANGES];
      if (r->o->store)
        break; /* with a store, ACKs follow commits (store_commit) */
      struct sft_msg_ack m = {.file_id = f->id, .ranges = rr};
      m.nranges =
          a.nranges < SFT_MAX_ACK_RANGES ? a.nranges : SFT_MAX_ACK_RANGES;
      for (size_t i = 0; i < m.nranges; i++) {
        rr[i].first = a.ranges[i].first;
        rr[i].last = a.ranges[i].last;
      }
      SESS_SEND_ALL(ss, sft_msg_ack_encode, &m);
      break;
    }
    case SFT_XRECV_HASH_CHUNK:
      /* A resumed file: the held chunks' digests for the root. */
      rhash_submit(r, f, &a);
      break;
    case SFT_XRECV_REBUILD:
      rbuild_submit(r, f, &a);
      break;
    case SFT_XRECV_SEND_NEED: {
      struct sft_msg_need m = {
          .file_id = f->id, .stripe = a.stripe, .count = a.count};
      SESS_SEND(ss, sft_msg_need_encode, &m);
      break;
    }
    case SFT_XRECV_FINALIZE: {
      struct rfin *j = calloc(1, sizeof(*j));
      memcpy(f->man.root, a.root, SFT_HASH_LEN);
      f->st = RF_FINALIZING;
      if (!j) {
        file_end(f, RF_FAILED, SFT_ERR_NOMEM, "out of memory");
        return;
      }
      j->f = f;
      j->w.data = j;
      f->jobs++;
      uv_queue_work(r->loop, &j->w, fin_work, fin_done);
      return;
    }
    case SFT_XRECV_FAILED:
      file_end(f, RF_FAILED, a.reason,
               a.reason == SFT_ERR_DIGEST
                   ? "the file's root did not match: data corrupted"
                   : sft_strerror(a.reason));
      SESS_SEND(
          ss, sft_msg_cancel_encode,
          (&(struct sft_msg_cancel){.file_id = f->id,
                                    .reason = a.reason == SFT_ERR_DIGEST
                                                  ? SFT_REASON_INTEGRITY
                                                  : SFT_REASON_INTERNAL}));
      return;
    }
  }
}

static void link_deadline(struct rlink *l, uint64_t t, uint64_t *next) {
  if (!l->c || !l->close_at)
    return;
  if (l->close_at <= t) {
    l->close_at = 0;
    XPV(conn_close, l->c, link_close_code(l));
  } else if (l->close_at < *next) {
    *next = l->close_at;
  }
}

static void pump(struct receiver *r) {
  uint64_t t = now(), next = UINT64_MAX;
  struct rsess *ss, *ss_next;
  if (r->stopping)
    return;
  for (struct rlink *l = r->pending; l; l = l->next)
    link_deadline(l, t, &next);
  for (ss = r->sessions; ss; ss = ss_next) {
    ss_next = ss->next;
    for (struct rlink *l = ss->links; l; l = l->next)
      link_deadline(l, t, &next);
    if (ss->failed)
      continue;
    if (ss->linger_until && !ss->links) {
      if (ss->linger_until <= t) {
        char why[200];
        snprintf(why, sizeof(why), "the sender did not come back within %u s",
                 (r->o->linger_ms ? r->o->linger_ms : SFTD_LINGER_MS_DEFAULT) /
                     1000);
        if (r->o->store) {
          sess_end(ss); /* resumable later from the store */
          continue;
        }
        sess_end_files(ss, SFT_ERR_CLOSED, why);
        sess_check_idle(ss);
        continue;
      }
      if (ss->linger_until < next)
        next = ss->linger_until;
    }
    for (size_t i = 0; i < ss->nfiles; i++)
      if (ss->files[i])
        pump_file(r, ss->files[i], t, &next);
    if (sess_check_fin(ss))
      for (struct rlink *l = ss->links; l; l = l->next)
        link_deadline(l, t, &next);
  }
  if (next != UINT64_MAX) {
    uint64_t ms = next > t ? (next - t + 999999) / 1000000 : 0;
    uv_timer_start(&r->timer, on_timer, ms, 0);
  }
}

/* ---- sessions -------------------------------------------------------------
 */

static void list_remove(struct rlink **head, struct rlink *l) {
  for (struct rlink **pp = head; *pp; pp = &(*pp)->next)
    if (*pp == l) {
      *pp = l->next;
      break;
    }
  l->next = NULL;
}

static struct rsess *sess_find(struct receiver *r, const uint8_t *id) {
  for (struct rsess *ss = r->sessions; ss; ss = ss->next)
    if (!ss->ended && memcmp(ss->id, id, SFT_SESSION_ID_LEN) == 0)
      return ss;
  return NULL;
}

/* ---- resuming a stored session ----------------------------------------------
 */

static int slot_reserve(struct rsess *ss, size_t n) {
  if (n <= ss->cap)
    return 0;
  {
    size_t cap = ss->cap ? ss->cap : 16;
    struct rfile **v;
    while (cap < n)
      cap *= 2;
    v = realloc(ss->files, cap * sizeof(*v));
    if (!v)
      return SFT_ERR_NOMEM;
    memset(v + ss->cap, 0, (cap - ss->cap) * sizeof(*v));
    ss->files = v;
    ss->cap = cap;
  }
  return 0;
}

/* One stored file row back into memory: a finished file as done, an
 * unfinished one resumed from its committed bitmap (its part file opened
 * again; held chunks are hashed again for the root). */
static int load_file_cb(const struct sftd_store_file *row, void *ud) {
  struct rsess *ss = ud;
  struct receiver *r = ss->r;
  struct rfile *f;
  int rv;
  if (row->file_id >= SFT_MAX_FILES || slot_reserve(ss, row->file_id + 1))
    return 0;
  f = calloc(1, sizeof(*f));
  if (!f)
    return 0;
  f->ss = ss;
  f->id = row->file_id;
  f->man = row->manifest;
  memcpy(f->man.root, row->root, SFT_HASH_LEN);
  f->fd = -1;
  sft_name_escape(f->man.name, f->man.name_len, f->shown, sizeof(f->shown));
  if (ss->nfiles < row->file_id + 1)
    ss->nfiles = row->file_id + 1;
  ss->files[row->file_id] = f;
  if (row->state == SFT_XS_COMPLETED || f->man.kind == SFT_FILE_DIR) {
    f->st = RF_DONE;
    return 0;
  }
  f->st = RF_FAILED;
  if (row->state == SFT_XS_FAILED)
    return 0;
  f->committed = calloc(1, (size_t)((f->man.chunk_count + 7) / 8) + 1);
  if (!f->committed)
    return 0;
  memcpy(f->committed, row->bitmap, row->bitmap_len);
  rv = sftd_fsafe_open_part(r->root_fd, f->man.name, SFTD_FSAFE_RESUME, 0700,
                            &f->fd);
  if (!rv) {
    struct sft_xrecv_params xp;
    sft_xrecv_params_default(&xp);
    if (f->man.stripe_m) {
      xp.stripe_k = f->man.stripe_k;
      xp.stripe_m = f->man.stripe_m;
    }
    rv = sft_xrecv_new(&f->xr, f->man.size, f->man.chunk_size, f->man.hash_algo,
                       row->bitmap, row->bitmap_len, &xp);
  }
  if (!rv)
    rv = sft_xrecv_start(f->xr, now());
  if (!rv)
    rv = sft_xrecv_accepted(f->xr, now());
  if (!rv) {
    f->st = RF_ACTIVE;
    sft_xrecv_set_rtt(f->xr, 1000000000u); /* see progress_tick */
  }
  return 0;
}

/* A session this receiver does not hold in memory: known to the store
 * (this daemon was restarted)? 0: loaded or unknown; SFT_ERR_AUTH: it
 * belongs to another sender. */
static int sess_load(struct rsess *ss) {
  struct receiver *r = ss->r;
  struct sftd_store_session row;
  if (!r->o->store || sftd_store_load_session(r->o->store, ss->id, &row) != 0)
    return 0;
  if (row.direction != SFTD_DIR_RECV ||
      memcmp(row.peer_fp, ss->fp, SFTQ_FP_LEN) != 0)
    return SFT_ERR_AUTH;
  ss->stored = 1;
  sftd_store_list_files(r->o->store, ss->id, load_file_cb, ss);
  return 0;
}

/* HELLO on link |l|: join the session it names (the same sender only), or
 * start it. */
static int link_attach(struct rlink *l, const struct sft_msg_hello *h) {
  struct receiver *r = l->r;
  struct rsess *ss = sess_find(r, h->session_id);
  if (ss && (memcmp(ss->fp, l->fp, SFTQ_FP_LEN) || ss->failed)) {
    sess_fail(NULL, l, SFT_ERR_AUTH,
              "%s tried to join a session it does not own", l->peer);
    return SFT_ERR_AUTH;
  }
  if (!ss) {
    struct sftd_event ev = {.type = SFTD_EV_CONNECTED, .text = l->peer};
    ss = calloc(1, sizeof(*ss));
    if (!ss)
      return SFT_ERR_NOMEM;
    ss->r = r;
    memcpy(ss->id, h->session_id, SFT_SESSION_ID_LEN);
    sft_hex(ss->id, SFT_SESSION_ID_LEN, ev.session_hex);
    memcpy(ss->fp, l->fp, SFTQ_FP_LEN);
    memcpy(ss->peer, l->peer, sizeof(ss->peer));
    if (sess_load(ss)) {
      free(ss);
      sess_fail(NULL, l, SFT_ERR_AUTH,
                "%s tried to join a session it does not own", l->peer);
      return SFT_ERR_AUTH;
    }
    ss->next = r->sessions;
    r->sessions = ss;
    emit(r, &ev);
  }
  list_remove(&r->pending, l);
  l->ss = ss;
  l->next = ss->links;
  ss->links = l;
  ss->linger_until = 0;
  l->hello_ok = 1;
  /* Chunk streams that came before HELLO join the session; those of files
   * it knows already are adopted now, the others when offered. */
  for (struct rchunk *k = l->chunks; k; k = k->lnext)
    k->ss = ss;
  for (int again = 1; again;) {
    again = 0;
    for (struct rchunk *k = l->chunks; k; k = k->lnext)
      if (k->parked && k->h.file_id < ss->nfiles) {
        if (park_adopt(ss, k->h.file_id, ss->files[k->h.file_id]))
          return SFT_ERR_PEER;
        again = 1; /* the list changed */
        break;
      }
  }
  return 0;
}

/* ---- control ---------------------------------------------------------------
 */

static int on_frame(void *ud, const struct sft_frame *fr) {
  struct rlink *l = ud;
  struct rsess *ss = l->ss;
  int rv;
  if (!l->hello_ok && fr->type != SFT_MSG_HELLO)
    return SFT_ERR_PEER;
  switch (fr->type) {
  case SFT_MSG_HELLO: {
    struct sft_msg_hello h, me;
    uint32_t v;
    if (l->hello_ok)
      return SFT_ERR_PEER;
    rv = sft_msg_hello_decode(fr->body, fr->body_len, &h);
    if (rv)
      return rv;
    if (h.role != SFT_ROLE_SENDER)
      return SFT_ERR_PEER;
    memset(&me, 0, sizeof(me));
    me.version_current = SFT_PROTO_VERSION_CURRENT;
    me.version_min = SFT_PROTO_VERSION_MIN;
    memcpy(me.session_id, h.session_id, SFT_SESSION_ID_LEN);
    me.role = SFT_ROLE_RECEIVER;
    me.agent_len = (size_t)snprintf(me.agent, sizeof(me.agent), "sft/0.1");
    /* Answer first, so an older peer learns our versions either way. */
    rv = CTRL_SEND(&l->ctl, sft_msg_hello_encode, &me);
    if (rv)
      return rv;
    if (sft_proto_negotiate(SFT_PROTO_VERSION_MIN, SFT_PROTO_VERSION_CURRENT,
                            h.version_min, h.version_current, &v))
      return SFT_ERR_VERSION;
    return link_attach(l, &h);
  }
  case SFT_MSG_OFFER: {
    struct sft_msg_offer *m = malloc(sizeof(*m));
    if (!m)
      return SFT_ERR_NOMEM;
    rv = sft_msg_offer_decode(fr->body, fr->body_len, m);
    if (!rv)
      rv = on_offer(l, m);
    free(m);
    return rv;
  }
  case SFT_MSG_COMPLETE: {
    struct sft_msg_complete m;
    struct rfile *f;
    rv = sft_msg_complete_decode(fr->body, fr->body_len, &m);
    if (rv)
      return rv;
    if (m.file_id >= ss->nfiles)
      return SFT_ERR_PEER;
    f = ss->files[m.file_id];
    if (!f)
      return 0; /* refused: sent before our refusal reached the sender */
    if (f->man.kind != SFT_FILE_REGULAR)
      return SFT_ERR_PEER;
    if (f->st == RF_ACTIVE)
      sft_xrecv_on_complete(f->xr, now(), m.root);
    else if (f->st == RF_DONE && memcmp(m.root, f->man.root, SFT_HASH_LEN) == 0)
      /* Our echo was lost with a connection: say it again. */
      CTRL_SEND(&l->ctl, sft_msg_complete_encode, &m);
    return 0;
  }
  case SFT_MSG_CANCEL: {
    struct sft_msg_cancel m;
    rv = sft_msg_cancel_decode(fr->body, fr->body_len, &m);
    if (rv)
      return rv;
    for (size_t i = 0; i < ss->nfiles; i++) {
      struct rfile *f = ss->files[i];
      if (f && f->st == RF_ACTIVE &&
          (m.file_id == SFT_FILE_ID_ALL || m.file_id == f->id)) {
        sft_xrecv_cancel(f->xr, now());
        file_end(f, RF_FAILED, SFT_ERR_CANCELLED, "cancelled by the sender");
      }
    }
    return 0;
  }
  case SFT_MSG_ERROR: {
    struct sft_msg_error m;
    char text[SFT_MAX_ERROR_TEXT * 4 + 1];
    struct sftd_event ev = {.type = SFTD_EV_WARN, .text = text};
    rv = sft_msg_error_decode(fr->body, fr->body_len, &m);
    if (rv)
      return rv;
    sft_name_escape(m.text, m.text_len, text, sizeof(text));
    emit(l->r, &ev);
    return 0;
  }
  default:
    return SFT_ERR_PEER;
  }
}

/* ---- transport callbacks
 * ----------------------------------------------------- */

int recv_cb_verify(struct receiver *r, sftq_conn *c,
                   const uint8_t fp[SFTQ_FP_LEN]) {
  char text[SFTD_FP_TEXT_MAX];
  int rv;
  (void)c;
  if (r->o->accept_any)
    return 0;
  rv = sftd_node_trusted(r->o->node, fp);
  if (rv == 0)
    return 0;
  sftd_fp_format(fp, text);
  {
    struct sftd_event ev = {
        .type = SFTD_EV_REFUSED_PEER, .text = text, .err = rv};
    emit(r, &ev);
  }
  return -1;
}

void recv_cb_connected(struct receiver *r, sftq_conn *c) {
  struct rlink *l = calloc(1, sizeof(*l));
  if (!l) {
    XPV(conn_close, c, (uint64_t)-SFT_ERR_NOMEM);
    return;
  }
  l->r = r;
  l->c = c;
  ctrl_init(&l->ctl);
  l->ctl.c = c;
  if (XP(conn_peer_fp, c, l->fp) == 0)
    sftd_fp_format(l->fp, l->peer);
  XP(conn_set_user, c, l);
  l->next = r->pending;
  r->pending = l;
}

void recv_cb_stream_open(struct receiver *r, sftq_conn *c, int64_t sid) {
  struct rlink *l = XP(conn_user, c);
  struct rchunk *k;
  (void)r;
  if (!l)
    return;
  if (l->ctl.sid < 0 && (sid & 3) == 0) {
    /* The control stream: the client's first bidirectional one (QUIC
     * client-initiated bidi ids have the two low bits 00). Chunk streams
     * may come before it (a lost packet): they wait (parked). */
    if (sid != 0) {
      sess_fail(NULL, l, SFT_ERR_PEER,
                "the sender's control stream is not "
                "its first stream");
      return;
    }
    l->ctl.sid = sid;
    XP(stream_set_urgency, c, sid, 0);
    return;
  }
  if ((sid & 3) != 2) { /* chunks: client-initiated unidirectional */
    XP(stream_cancel, c, sid, (uint64_t)-SFT_ERR_PEER);
    return;
  }
  k = calloc(1, sizeof(*k));
  if (!k) {
    XP(stream_cancel, c, sid, (uint64_t)-SFT_ERR_NOMEM);
    return;
  }
  k->ss = l->ss;
  k->l = l;
  k->sid = sid;
  k->lnext = l->chunks;
  if (l->chunks)
    l->chunks->lprev = k;
  l->chunks = k;
  k->listed = 1;
  XP(stream_set_user, c, sid, k);
}

/* How long a link at the end of a session waits before it closes.
 * |acked|: it closes as soon as our FIN is acknowledged (everything we sent
 * on its control stream arrived, the last COMPLETE echo with it), so the
 * deadline only bounds a wait for an answer that does not come: long
 * enough for QUIC to repeat a lost echo several times (16 PTOs: the
 * original and 4 backed-off repeats), 2 s to 10 s. At 30 % loss and 100 ms
 * of delay the earlier max(300 ms, 4 srtt) let the echo and its one
 * repeat both be lost, the sender never learnt that its file had arrived,
 * and a --once receiver was gone (test_badnet_loss30 a, CI of session 8).
 * Other links carry no FIN of ours: max(300 ms, 4 srtt), at most 2 s. */
static uint64_t end_wait(struct rlink *l, int acked) {
  sftq_stats st;
  uint64_t wait = acked ? 2000000000ull : 300000000ull;
  uint64_t cap = acked ? 10000000000ull : 2000000000ull;
  if (XP(conn_stats, l->c, &st) == 0) {
    uint64_t w = acked ? 16 * (st.srtt_ns + 4 * st.rttvar_ns + 25000000ull)
                       : 4 * st.srtt_ns;
    if (w > wait)
      wait = w;
  }
  return wait > cap ? cap : wait;
}

/* The sender ended the session (FIN on a control stream) and every file is
 * finished. On each link whose control stream the sender ended, answer with
 * our own FIN and close once it is acknowledged (or after end_wait):
 * closing at once sent CONNECTION_CLOSE before the ACK of the sender's FIN,
 * and when that one packet was lost the sender waited max(2 s, 20 srtt)
 * (1 run in 3-6 at 5 % loss took 2 s longer); now the ACK goes out first
 * and QUIC repeats it, and the sender ends on it. Every other link closes
 * after end_wait too, not at once: it may still carry our last COMPLETE
 * echo (the sender's FIN comes with its last COMPLETE, before the echo; a
 * link closed at once dropped it, test_multipath b), and a deadline keeps
 * the sender's lost CONNECTION_CLOSE from holding the session (and a --once
 * receiver) until the idle timeout. Either way, a session whose files all
 * succeeded closes with SFT_PROTO_CLOSE_DONE (link_close_code). */
static void sess_end_links(struct rsess *ss) {
  for (struct rlink *o = ss->links; o; o = o->next) {
    if (!o->c || o->fail_code || o->ending)
      continue;
    if (o->peer_fin &&
        XP(stream_write, o->c, o->ctl.sid, NULL, 0, SFTQ_WRITE_FIN) == 0) {
      o->ending = 1;
      o->close_at = now() + end_wait(o, 1);
    } else if (!o->close_at) {
      o->close_at = now() + end_wait(o, 0);
    }
  }
}

/* A sender that ended its control stream early (its FIN came with the last
 * COMPLETE) ends the session once the last file is finished. 1 if done. */
static int sess_check_fin(struct rsess *ss) {
  if (ss->failed || sess_unfinished(ss))
    return 0;
  for (struct rlink *l = ss->links; l; l = l->next)
    if (l->peer_fin && !l->ending && l->c && !l->fail_code) {
      sess_end_links(ss);
      return 1;
    }
  return 0;
}

void recv_cb_stream_data(struct receiver *r, sftq_conn *c, int64_t sid,
                         const uint8_t *data, size_t len, int fin) {
  struct rlink *l = XP(conn_user, c);
  int rv;
  if (!l || l->fail_code || (l->ss && l->ss->failed))
    return;
  if (sid == l->ctl.sid) {
    XP(stream_consume, c, sid, len);
    rv = ctrl_feed(&l->ctl, data, len, on_frame, l);
    if (!rv && fin && l->ss) {
      /* The sender ended its control stream: it sends nothing more. The
       * session ends when every file is finished: now, or when the last one
       * is (pump, sess_check_fin; the sender ends it early, with its last
       * COMPLETE, to save the round trip). */
      l->peer_fin = 1;
      if (!sess_unfinished(l->ss)) {
        sess_end_links(l->ss);
        pump(r);
        return;
      }
    }
    if (rv)
      sess_fail(l->ss, l,
                rv == SFT_ERR_VERSION ? SFT_ERR_VERSION
                : rv == SFT_ERR_AUTH  ? SFT_ERR_AUTH
                                      : SFT_ERR_PEER,
                "invalid control message from %s: %s", l->peer,
                sft_strerror(rv));
  } else {
    struct rchunk *k = XP(stream_user, c, sid);
    if (!k) {
      XP(stream_consume, c, sid, len);
      return;
    }
    l->last_rx = now();
    rv = chunk_feed(k, data, len, fin);
    if (rv == SFT_ERR_AGAIN) {
      /* not parked (see chunk_feed): reset, the sender sends it again */
      XP(stream_cancel, c, sid, (uint64_t)-SFT_ERR_AGAIN);
      XP(stream_set_user, c, sid, NULL);
      XP(stream_consume, c, sid, k->credit);
      rchunk_free(k);
    } else if (rv) {
      XP(stream_set_user, c, sid, NULL);
      XP(stream_consume, c, sid, k->credit);
      rchunk_free(k);
      sess_fail(l->ss, l, SFT_ERR_PEER, "invalid chunk stream from %s: %s",
                l->peer, sft_strerror(rv));
    }
  }
  pump(r);
}

void recv_cb_stream_close(struct receiver *r, sftq_conn *c, int64_t sid,
                          uint64_t app_error) {
  struct rlink *l = XP(conn_user, c);
  struct rchunk *k;
  (void)app_error;
  (void)r;
  if (!l || sid == l->ctl.sid)
    return;
  k = XP(stream_user, c, sid);
  if (!k)
    return;
  XP(stream_set_user, c, sid, NULL);
  if ((k->have_hdr && k->got == k->h.payload_len && k->f && k->f->jobs &&
       k->w.data == k) ||
      (k->parked && k->fin)) {
    k->stream_gone = 1; /* a job owns it, or it waits for its OFFER */
    return;
  }
  /* A stream reset before its chunk was complete: give back the flow-control
   * credit of the bytes it delivered, or the connection's window shrinks
   * with every reset stream (a hostile sender could stall us). */
  if (k->credit)
    XP(stream_consume, c, sid, k->credit);
  rchunk_free(k);
}

static void apply_dir_modes(struct rsess *ss) {
  /* Deepest first, so a read-only parent does not block its children. */
  for (size_t i = ss->nfiles; i-- > 0;) {
    struct rfile *f = ss->files[i];
    int fd;
    if (!f || f->man.kind != SFT_FILE_DIR)
      continue;
    if (sftd_fsafe_mkdirs(ss->r->root_fd, f->man.name, 0700, &fd) == 0) {
      fchmod(fd, (mode_t)(f->man.mode & 0777));
      close(fd);
    }
  }
}

void recv_cb_closed(struct receiver *r, sftq_conn *c, int reason,
                    uint64_t app_error) {
  struct rlink *l = XP(conn_user, c);
  struct rsess *ss;
  (void)app_error;
  (void)reason;
  if (!l)
    return;
  ss = l->ss;
  l->c = NULL;
  /* Streams of this connection are gone without close callbacks: chunks
   * still being received are dropped here; the jobs that hold complete
   * chunks of it skip the credit (l->c is NULL). */
  while (l->chunks)
    rchunk_free(l->chunks);
  if (!ss) {
    list_remove(&r->pending, l);
    link_free_maybe(l);
    return;
  }
  list_remove(&ss->links, l);
  link_free_maybe(l);
  if (ss->links || ss->ended)
    return;
  if (r->stopping && r->o->store) {
    sess_end(ss); /* the files stay resumable: rows and part files kept */
    return;
  }
  if (ss->failed || r->stopping || !sess_unfinished(ss)) {
    sess_end_files(ss, SFT_ERR_CLOSED,
                   "the sender disconnected before the file was complete");
    sess_check_idle(ss);
    return;
  }
  /* Unfinished files: keep them for the sender to come back. */
  ss->linger_until =
      now() +
      (uint64_t)(r->o->linger_ms ? r->o->linger_ms : SFTD_LINGER_MS_DEFAULT) *
          1000000u;
  {
    char text[200];
    struct sftd_event ev = {.type = SFTD_EV_WARN, .text = text};
    snprintf(text, sizeof(text),
             "the connection with %s was lost; waiting up to %u s for it to "
             "come back",
             ss->peer,
             (r->o->linger_ms ? r->o->linger_ms : SFTD_LINGER_MS_DEFAULT) /
                 1000);
    emit(r, &ev);
  }
  pump(r);
}

/* Sends ACKs for the chunks set in |now_bm| and not in |old| (bytes
 * [0, len)), as ranges, several ACK messages if needed. */
static void ack_new_bits(struct rfile *f, const uint8_t *now_bm,
                         const uint8_t *old, size_t len) {
  static struct sft_ack_range rr[SFT_MAX_ACK_RANGES];
  struct sft_msg_ack m = {.file_id = f->id, .ranges = rr};
  uint64_t n = f->man.chunk_count;
  for (uint64_t i = 0; i < n;) {
    uint64_t first;
    if (!(i / 8 < len && (now_bm[i / 8] & ~old[i / 8] & (1u << (i % 8))))) {
      i++;
      continue;
    }
    first = i;
    while (i < n && i / 8 < len &&
           (now_bm[i / 8] & ~old[i / 8] & (1u << (i % 8))))
      i++;
    rr[m.nranges].first = first;
    rr[m.nranges].last = i - 1;
    if (++m.nranges == SFT_MAX_ACK_RANGES) {
      SESS_SEND_ALL(f->ss, sft_msg_ack_encode, &m);
      m.nranges = 0;
    }
  }
  if (m.nranges)
    SESS_SEND_ALL(f->ss, sft_msg_ack_encode, &m);
}

/* Every 100 ms: one transaction (synchronous=NORMAL) with the bitmaps of
 * the files that got chunks, then ACKs for exactly those chunks. So every
 * chunk the sender saw acknowledged survives a crash of this process. */
static void store_commit(struct receiver *r) {
  struct sftd_store_bitmap_update u[64];
  struct rfile *fv[64];
  size_t n = 0;
  if (!r->o->store)
    return;
  for (struct rsess *ss = r->sessions; ss; ss = ss->next) {
    for (size_t i = 0; i < ss->nfiles; i++) {
      struct rfile *f = ss->files[i];
      const uint8_t *bm;
      size_t len, full;
      struct sft_xrecv_stats xs;
      if (!f || f->st != RF_ACTIVE || !f->committed || !f->xr || n == 64)
        continue;
      bm = sft_xrecv_bitmap(f->xr, &len);
      full = (size_t)((f->man.chunk_count + 7) / 8);
      if (len > full)
        len = full;
      if (!bm || memcmp(bm, f->committed, len) == 0)
        continue;
      sft_xrecv_stats(f->xr, &xs);
      memset(&u[n], 0, sizeof(u[n]));
      memcpy(u[n].session_id, ss->id, SFTD_STORE_ID_LEN);
      u[n].file_id = (uint32_t)f->id;
      u[n].bitmap = bm;
      u[n].bitmap_len = bitmap_trim(bm, len);
      u[n].bytes_done = xs.bytes_done;
      fv[n++] = f;
    }
  }
  if (!n || sftd_store_update_bitmaps(r->o->store, u, n) != 0)
    return; /* nothing new, or retried at the next tick (no ACK sent) */
  for (size_t i = 0; i < n; i++) {
    size_t len = u[i].bitmap_len;
    ack_new_bits(fv[i], u[i].bitmap, fv[i]->committed, len);
    memcpy(fv[i]->committed, u[i].bitmap, len);
  }
}

static void progress_tick(uv_timer_t *t) {
  struct receiver *r = t->data;
  store_commit(r);
  struct sftd_event ev = {.type = SFTD_EV_PROGRESS};
  ev.p.loss = -1;
  for (struct rsess *ss = r->sessions; ss; ss = ss->next) {
    sftq_stats st;
    struct rlink *bl = best_link(ss);
    for (size_t i = 0; i < ss->nfiles; i++) {
      struct rfile *f = ss->files[i];
      struct sft_xrecv_stats xs;
      if (!f)
        continue;
      ev.p.files_total++;
      ev.p.bytes_total += f->man.size;
      ev.p.chunks_total += f->man.chunk_count;
      if (f->st == RF_DONE) {
        ev.p.files_done++;
        ev.p.bytes_done += f->man.size;
        ev.p.chunks_done += f->man.chunk_count;
      } else if (f->xr) {
        sft_xrecv_stats(f->xr, &xs);
        ev.p.bytes_done += xs.bytes_done;
        ev.p.chunks_done += xs.chunks_done;
      }
    }
    for (struct rlink *l = ss->links; l; l = l->next) {
      ev.p.links_up++;
      /* socket buffers follow the bandwidth-delay product */
      if (l->c && sftq_conn_kind(l->c) == SFTQ_KIND_QUIC)
        sftq_conn_tune_buffers(l->c, now(), NULL);
      if (l->c && XP(conn_stats, l->c, &st) == 0 &&
          st.fec_recovered > l->fec_seen) {
        r->res->pkts_rebuilt += st.fec_recovered - l->fec_seen;
        l->fec_seen = st.fec_recovered;
      }
    }
    if (bl && XP(conn_stats, bl->c, &st) == 0) {
      ev.p.rtt_ms = (double)st.srtt_ns / 1e6;
      /* NEED is a backstop (QUIC delivers every chunk stream unless its
       * connection dies, and then the sender reassigns the chunks): a
       * stripe's gap must last well beyond a round trip and the time the
       * chunks in flight take to drain before parity or a resend is asked
       * for, or chunks merely late are sent twice. NEED fires after
       * 2 x this "RTT": max(4 x srtt, 1 s). */
      uint64_t rtt =
          4 * st.srtt_ns > 1000000000u ? 4 * st.srtt_ns : 1000000000u;
      for (size_t i = 0; i < ss->nfiles; i++)
        if (ss->files[i] && ss->files[i]->st == RF_ACTIVE)
          sft_xrecv_set_rtt(ss->files[i]->xr, rtt);
    }
  }
  ev.p.chunks_rebuilt = r->res->chunks_rebuilt;
  ev.p.pkts_rebuilt = r->res->pkts_rebuilt;
  if (ev.p.files_total)
    emit(r, &ev);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct engine *e = h->data;
  struct receiver *r = e->recv;
  (void)signum;
  if (!r->res->err) {
    r->res->err = SFT_ERR_CANCELLED;
    snprintf(r->res->why, sizeof(r->res->why), "interrupted");
  }
  stop(r);
}

int recv_create(struct engine *e, const struct sftd_recv_opts *o,
                struct sftd_result *res, struct receiver **out) {
  struct receiver *r;
  uint16_t port = 0;
  int rv;

  *out = NULL;
  r = calloc(1, sizeof(*r));
  if (!r)
    return res->err = SFT_ERR_NOMEM;
  r->o = o;
  r->res = res;
  r->root_fd = -1;
  rv = sftd_fsafe_open_root(o->dir, &r->root_fd);
  if (rv) {
    res->err = rv;
    snprintf(res->why, sizeof(res->why),
             "cannot open the download directory %s: %s%s", o->dir,
             sft_strerror(rv),
             rv == SFT_ERR_NOT_FOUND ? " (create it first)" : "");
    free(r);
    return rv;
  }
  r->eng = e;
  r->loop = &e->loop;
  /* QUIC on UDP and, for senders whose UDP is blocked, the same protocol
   * over TCP+TLS on the same port number. */
  rv = 0;
  port = o->listen_port;
  if (o->transport != SFTD_TRANSPORT_TCP_ONLY)
    rv = sftq_listen(e->q, o->listen_addr, o->listen_port, &port);
  if (!rv && o->transport != SFTD_TRANSPORT_QUIC_ONLY && e->t) {
    uint16_t tport = 0;
    int trv = sftt_listen(e->t, o->listen_addr, port, &tport);
    if (trv && o->transport == SFTD_TRANSPORT_TCP_ONLY)
      rv = trv;
    else if (trv) {
      char text[200];
      struct sftd_event ev = {.type = SFTD_EV_WARN, .text = text};
      snprintf(text, sizeof(text),
               "no TCP fallback: cannot listen on TCP port %u: %s", port,
               sft_strerror(trv));
      emit(r, &ev);
    } else if (o->transport == SFTD_TRANSPORT_TCP_ONLY) {
      port = tport;
    }
  }
  if (rv) {
    res->err = rv;
    snprintf(res->why, sizeof(res->why),
             "cannot listen on %s:%u: %s (is another receiver running there?)",
             o->listen_addr, o->listen_port, sft_strerror(rv));
    close(r->root_fd);
    free(r);
    return rv;
  }
  uv_timer_init(r->loop, &r->timer);
  uv_timer_init(r->loop, &r->ptimer);
  r->timer.data = r->ptimer.data = r;
  e->recv = r;
  {
    char text[300];
    struct sftd_event ev = {
        .type = SFTD_EV_LISTENING, .text = text, .port = port};
    snprintf(text, sizeof(text),
             strchr(o->listen_addr, ':') ? "[%s]:%u" : "%s:%u", o->listen_addr,
             port);
    emit(r, &ev);
  }
  uv_timer_start(&r->ptimer, progress_tick, 100, 100);
  *out = r;
  return 0;
}

void recv_shutdown(struct receiver *r) {
  if (!r)
    return;
  r->stopping = 1;
  uv_timer_stop(&r->timer);
  uv_timer_stop(&r->ptimer);
}

void recv_destroy(struct receiver *r) {
  if (!r)
    return;
  /* Sessions still waiting for their sender: their part files go (a later
   * sender starts those files over). The jobs are drained by now. */
  while (r->sessions) {
    struct rsess *ss = r->sessions;
    r->sessions = ss->next;
    if (!r->o->store)
      sess_end_files(ss, SFT_ERR_CANCELLED, "the receiver stopped");
    ss->ended = 1;
    ss->links = NULL; /* every connection was closed by the teardown */
    sess_maybe_free(ss);
  }
  close(r->root_fd);
  free(r);
}

static void oneshot_signal(uv_signal_t *h, int signum) {
  struct engine *e = h->data;
  if (e->recv)
    on_signal(&e->sigint, signum);
  else
    uv_stop(&e->loop);
}

int sftd_recv(const struct sftd_recv_opts *o, struct sftd_result *res) {
  struct receiver *r = NULL;
  struct engine e;
  sftq_config cfg;
  uint64_t t0 = now();

  memset(res, 0, sizeof(*res));
  engine_init(&e, &e, oneshot_signal);
  memset(&cfg, 0, sizeof(cfg));
  cfg.manual_rx_credit = 1;
  cfg.copy_limit = 32u << 20;
  cfg.pfec = engine_pfec(o->packet_fec);
  if (engine_quic(&e, o->node, o->cc, &cfg, res) == 0 &&
      recv_create(&e, o, res, &r) == 0) {
    uv_run(&e.loop, UV_RUN_DEFAULT);
    r->stopping = 1;
  }
  engine_teardown(&e); /* drains jobs and handles */
  recv_destroy(r);
  res->seconds = (double)(now() - t0) / 1e9;
  return res->err;
}
