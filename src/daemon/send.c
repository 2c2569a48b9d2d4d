/*
 * One-shot sender: `sft send PATH... HOST:PORT`.
 *
 * Owns a libuv loop, one QUIC connection and, per file, a pure sender
 * machine (sft/xfer.h). Chunks are read and hashed on the libuv thread pool
 * (hashing while reading: there is no separate pass over the file), then
 * each travels on its own unidirectional QUIC stream: chunk header + payload,
 * referenced (not copied) until the transport releases the stream. The
 * amount of chunk data held in memory is bounded (see budget_bytes()).
 * See docs/internals/transfer.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/clock.h"
#include "daemon/ctrl.h"
#include "daemon/engine.h"
#include "daemon/fsafe.h"
#include "daemon/identity.h"
#include "daemon/paths.h"
#include "daemon/quic/quic.h"
#include "daemon/sftd.h"
#include "daemon/share.h"
#include "daemon/walk.h"
#include "daemon/xfer_int.h"
#include "daemon/xport.h"
#include "sft/adapt.h"
#include "sft/chunk.h"
#include "sft/fec.h"
#include "sft/hash.h"
#include "sft/metrics.h"
#include "sft/name.h"
#include "sft/path.h"
#include "sft/proto.h"
#include "sft/xfer.h"

#define OFFER_WINDOW 64       /* files offered and not finished */
#define BUDGET_MIN (8u << 20) /* chunk bytes held in memory */
#define BUDGET_MAX (64u << 20)
#define UNSENT_MAX (16u << 20) /* bytes queued in QUIC, unsent */
#define LINKQ_MIN (2u << 20)   /* several links: unsent per link at least */
#define LINKQ_NS 250000000ull  /* ...else what it delivers in this time */
#define SPATHS 64              /* stripes remembered for parity steering */
#define BACKOFF_MIN_MS 1000u   /* reconnect backoff: 1, 2, 4 .. 30 s */
#define BACKOFF_MAX_MS 30000u
#define STALL_MIN_NS 1000000000ull   /* a link without progress for */
#define STALL_SOLO_NS 20000000000ull /* ...this long is dead (see stall) */

enum sfile_state { SF_WAIT, SF_OFFERED, SF_ACTIVE, SF_DONE, SF_FAILED };

struct sender;

struct sfile {
  struct sender *s;
  struct walk_entry *e;
  uint64_t id;
  struct sft_manifest man;
  struct sft_xsend *xs;
  int fd;
  enum sfile_state st;
  int err;
  int refused;
  int complete_sent; /* COMPLETE went on the control link since its OFFER */
  int spec;          /* its chunks go before the receiver's ACCEPT */
  /* The root of our COMPLETE, once sent. Not in man.root: a manifest with
   * a root lacks SFT_MANIFEST_HAS_ROOT (an OFFER never carries one), and a
   * re-offer after a reconnect then failed to encode (MALFORMED), which
   * ended the session ("cannot send the offer"). */
  uint8_t root[SFT_HASH_LEN];
  uint32_t jobs;     /* read jobs outstanding */
};

struct slink;

struct sjob {
  uv_work_t w;
  struct sfile *f;
  struct sjob *next;          /* read queue */
  struct slink *l;            /* the link carrying it, once on a stream */
  struct sjob *wprev, *wnext; /* the link's list of chunks on streams */
  uint64_t index, offset;
  uint32_t len;
  int send;
  int err;
  int cancelled; /* its stream was reset (pause, link loss): resend later */
  int parity;    /* a parity shard (index = stripe, pidx): never resent */
  uint32_t pidx;
  int64_t sid;
  uint64_t sent_at; /* its stream was opened */
  size_t hdr_len;
  uint8_t hdr[SFT_CHUNK_HDR_MAX];
  uint8_t digest[SFT_HASH_LEN];
  uint8_t data[];
};

/* One connection of the session. A session has up to SFTD_LINKS_MAX of
 * them (parallel connections on one path, or several paths); each has its
 * own control stream and carries chunk streams. A lost link is reopened
 * with exponential backoff and joins the session again (HELLO ATTACH). */
struct slink {
  struct sender *s;
  uint64_t fec_seen; /* its connection's parity packets already counted */
  unsigned idx;
  unsigned tgt; /* index into the sender's targets (path) */
  sftq_conn *c; /* NULL while down */
  struct ctrl ctl;
  int connected, hello_ok;
  int fin_sent; /* its control stream is ended (FIN written) */
  uint64_t fallback_at; /* auto: start TCP+TLS at this time (0: no) */
  sftq_conn *qwait;     /* the QUIC attempt, still running while the
                           TCP+TLS one started at fallback_at races it */
  int tcp;              /* fell back to TCP+TLS: reconnect over TCP */
  unsigned attempts;    /* consecutive failed (re)connects */
  uint64_t reopen_at;   /* down: reconnect at this time (0: never) */
  struct sjob *wire;    /* chunks on its streams */
  uint64_t wire_n;
  uint64_t progress_at; /* last sign of life: a packet from the peer */
  uint64_t pkts_recv;   /* ...counted here */
  int last_err;
  int was_up;          /* completed HELLO before: a comeback is a reconnect */
  uint64_t bytes_sent; /* chunk bytes handed to this link */
  char why[256];       /* why it went down */
};

/* A path: one address of the receiver, and the local address to send
 * from ("" = the kernel's choice). */
struct target {
  char numeric[256];
  uint16_t port;
  char via[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
};

struct sender {
  uv_loop_t *loop;
  sftq_ctx *q;
  sftt_ctx *t;
  struct target tg[SFTD_PEERS_MAX]; /* tg[0]: HOST:PORT, then more_peers */
  unsigned ntg;
  uv_timer_t timer;  /* the pump's next deadline */
  uv_timer_t ptimer; /* progress events */
  int handles_open;  /* timers not yet closed */
  uint32_t work;     /* thread-pool jobs not yet completed */
  int released;      /* send_session_free was called */
  int drop_echo;     /* test knob SFT_TEST_DROP_ECHO: COMPLETE echoes and the
                        receiver's FIN unread, as if they were lost */
  send_done_fn done;
  void *done_ud;
  int done_called;
  const struct sftd_send_opts *o;
  struct sftd_result *res;
  struct slink links[SFTD_LINKS_MAX];
  unsigned nlinks;
  struct slink *ctl; /* the link control messages go on (hello_ok) */
  int ever_up;       /* some link completed HELLO once */
  int announced;     /* SFTD_EV_CONNECTED emitted */
  uint64_t answered; /* files 0 .. answered-1 have their ACCEPT (the
                        receiver read their OFFERs) */
  int down;          /* no link is up: files are in network failure */
  int max_retries;
  struct walk_list wl;
  struct sfile *files;
  size_t nfiles, next_offer, open_offers, finished;
  struct sjob *sq_head, *sq_tail; /* read, waiting for a stream */
  uint64_t held_bytes;            /* chunk bytes in jobs and on streams */
  uint8_t session_id[SFT_SESSION_ID_LEN];
  int closing;
  uint64_t ending_at; /* all done: FIN sent on the control stream; close
                         once the receiver has it, or at this time */
  int paused;
  struct sft_xfer_range *plost; /* chunks whose streams pause reset: */
  size_t nplost, cap_plost;     /* sent again first on resume */
  uint64_t *plost_file;
  struct sft_adapt adapt;   /* chunk size, parity, connections from RTT/loss */
  struct sft_path_table pt; /* status of each link (path id = link index) */
  /* Which links carried the data chunks of recent stripes, so that a
   * stripe's parity goes on another path (sft_path_pick_parity). A ring
   * keyed by (file, stripe); an overwritten entry only loses the hint. */
  struct {
    const struct sfile *f;
    uint64_t stripe;
    uint32_t n[SFTD_LINKS_MAX];
  } spaths[SPATHS];
  uint64_t tick_sent, tick_lost; /* packet counters at the last sample */
  uint64_t chunks_lost;          /* chunk streams lost with a link or reset */
  uint64_t tick_csent, tick_clost;
  double chunk_loss;    /* EWMA of lost / sent chunks */
  uint32_t m_pro;       /* proactive parity per stripe now */
  struct sft_rate rate; /* this transfer's bandwidth limit */
  uint64_t rate_wait;   /* a chunk waits for tokens until then; 0 none */
  uint64_t granted;     /* bytes the daemon's link share gave us, unused */
  int offered_data;     /* a non-empty regular file was offered */
  int rate_known;       /* a delivery rate was measured (adapt_tick) */
  uint64_t up_at;       /* the first connection came up */
  int share_wait;       /* a want is pending at the link share */
  int tofu_new;
  int fp_seen; /* a connection verified the receiver (res->peer_fp_text) */
  uint64_t t0;
  char host[256];
};

static void pump(struct sender *s);
static void share_forget(struct sender *s);
static void on_timer(uv_timer_t *t) {
  pump(t->data);
}
static void conn_abandon(sftq_conn *c);
static void keep_quic(struct slink *l, sftq_conn *q);
static void finish(struct sender *s, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static uint64_t now(void) {
  return sftd_now_ns();
}
static void progress_tick(uv_timer_t *t);

static int link_live(const struct slink *l) {
  return l->c != NULL;
}

static unsigned links_live(const struct sender *s) {
  unsigned n = 0;
  for (unsigned i = 0; i < s->nlinks; i++)
    n += link_live(&s->links[i]);
  return n;
}

static unsigned links_up(const struct sender *s) {
  unsigned n = 0;
  for (unsigned i = 0; i < s->nlinks; i++)
    n += s->links[i].c && s->links[i].hello_ok;
  return n;
}

static void warn(struct sender *s, const char *text);
static void path_label(const struct target *tg, char *out, size_t cap);

/* The session is over: tell the owner (once). */
static void complete(struct sender *s) {
  if (s->done_called)
    return;
  s->done_called = 1;
  uv_timer_stop(&s->timer);
  uv_timer_stop(&s->ptimer);
  progress_tick(&s->ptimer);
  for (unsigned i = 0; s->ever_up && i < s->nlinks && i < s->ntg; i++) {
    const struct slink *l = &s->links[i];
    if (!l->was_up) {
      char text[400], name[SFTD_PATH_ADDR_MAX];
      path_label(&s->tg[l->tgt], name, sizeof(name));
      snprintf(text, sizeof(text), "path %s never answered: not used%s%s",
               name, l->why[0] ? ": " : "", l->why);
      warn(s, text);
    }
  }
  s->res->seconds = (double)(now() - s->t0) / 1e9;
  if (s->done)
    s->done(s, s->done_ud);
}

static void emit(struct sender *s, struct sftd_event *ev) {
  if (s->o->on_event)
    s->o->on_event(ev, s->o->ud);
}

static void warn(struct sender *s, const char *text) {
  struct sftd_event ev = {.type = SFTD_EV_WARN, .text = text};
  emit(s, &ev);
}

static void set_why(struct sender *s, int err, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
static void set_why(struct sender *s, int err, const char *fmt, va_list ap) {
  if (s->res->err)
    return;
  s->res->err = err;
  vsnprintf(s->res->why, sizeof(s->res->why), fmt, ap);
}

/* Ends the session: close every connection; complete() follows once the
 * last one is gone. |err| 0 means success. */
static void finish(struct sender *s, int err, const char *fmt, ...) {
  if (err && fmt) {
    va_list ap;
    va_start(ap, fmt);
    set_why(s, err, fmt, ap);
    va_end(ap);
  }
  if (s->closing)
    return;
  s->closing = 1;
  share_forget(s);
  for (unsigned i = 0; i < s->nlinks; i++) {
    conn_abandon(s->links[i].qwait);
    s->links[i].qwait = NULL;
    if (s->links[i].c)
      XPV(conn_close, s->links[i].c, err ? (uint64_t)-err : 0);
  }
  uv_timer_stop(&s->timer);
  uv_timer_stop(&s->ptimer);
  if (!links_live(s))
    complete(s);
}

/* ---- budget ------------------------------------------------------------ */

/* Chunk bytes we allow in memory: about two bandwidth-delay products (from
 * the transport's delivery rate and RTT), within [BUDGET_MIN, BUDGET_MAX]. */
static uint64_t budget_bytes(struct sender *s) {
  uint64_t b = BUDGET_MIN, bdp = 0;
  for (unsigned i = 0; i < s->nlinks; i++) {
    sftq_stats st;
    struct slink *l = &s->links[i];
    if (l->c && l->hello_ok && XP(conn_stats, l->c, &st) == 0 &&
        st.delivery_rate && st.srtt_ns)
      bdp += st.delivery_rate * (st.srtt_ns / 1000) / 1000000;
  }
  if (2 * bdp + (4u << 20) > b)
    b = 2 * bdp + (4u << 20);
  return b > BUDGET_MAX ? BUDGET_MAX : b;
}

/* ---- files ------------------------------------------------------------- */

static void file_end(struct sfile *f, enum sfile_state st, int err,
                     const char *why) {
  struct sender *s = f->s;
  struct sftd_event ev = {0};
  if (f->st == SF_DONE || f->st == SF_FAILED)
    return;
  f->st = st;
  f->err = err;
  if (f->fd >= 0) {
    close(f->fd);
    f->fd = -1;
  }
  s->open_offers--;
  s->finished++;
  ev.name = f->man.name;
  ev.size = f->man.size;
  if (st == SF_DONE) {
    s->res->files_ok++;
    s->res->bytes += f->man.size;
    ev.type = SFTD_EV_FILE_DONE;
    sft_hex(f->root, SFT_HASH_LEN, ev.root_hex);
  } else {
    if (f->refused)
      s->res->files_refused++;
    else
      s->res->files_failed++;
    ev.type = SFTD_EV_FILE_FAILED;
    ev.err = err;
    ev.text = why;
    if (!s->res->err) {
      s->res->err = err;
      snprintf(s->res->why, sizeof(s->res->why), "%s: %s", f->man.name, why);
    }
  }
  emit(s, &ev);
}

static int make_manifest(struct sender *s, struct sfile *f) {
  struct walk_entry *e = f->e;
  struct sft_manifest *m = &f->man;
  uint32_t cs = s->o->chunk_size ? s->o->chunk_size : SFT_CHUNK_SIZE_DEFAULT;
  int rv;
  sft_manifest_init(m);
  m->kind = e->kind == WALK_DIR ? SFT_FILE_DIR : SFT_FILE_REGULAR;
  m->hash_algo = SFT_HASH_BLAKE3;
  m->mtime_sec = e->mtime_s;
  m->mtime_nsec = e->mtime_ns;
  m->mode = e->mode & SFT_MODE_MASK;
  m->stripe_k = s->o->fec_k ? s->o->fec_k : 10;
  m->stripe_m = s->o->fec_off ? 0 : s->o->fec_k ? s->o->fec_m : 3;
  rv = sft_manifest_set_name(m, e->name, strlen(e->name));
  if (!rv)
    rv =
        sft_manifest_set_geometry(m, m->kind == SFT_FILE_DIR ? 0 : e->size, cs);
  if (!rv)
    rv = sft_manifest_verify(m);
  return rv;
}

/* Every file is finished: end the control stream (FIN) so the receiver
 * knows the session is over even if our CONNECTION_CLOSE is lost (a
 * `--once` receiver would otherwise wait for its idle timeout), then close
 * when the FIN is acknowledged or after max(2 s, 20 srtt) (<= 15 s). */
static void end_gracefully(struct sender *s) {
  struct slink *l = s->ctl;
  if (s->closing || s->ending_at)
    return;
  if (!l || !l->c ||
      (!l->fin_sent &&
       XP(stream_write, l->c, l->ctl.sid, NULL, 0, SFTQ_WRITE_FIN) != 0)) {
    finish(s, 0, NULL);
    return;
  }
  {
    /* Long enough for a few retransmissions on a lossy long link. */
    sftq_stats st;
    uint64_t wait = 2000000000ull;
    if (XP(conn_stats, l->c, &st) == 0 && 20 * st.srtt_ns > wait)
      wait = 20 * st.srtt_ns;
    if (wait > 15000000000ull)
      wait = 15000000000ull;
    s->ending_at = now() + wait;
    uv_timer_start(&s->timer, on_timer, wait / 1000000, 0);
  }
}

/* Every file is offered and each is finished or has its COMPLETE on the
 * control link: nothing more goes on it. */
static int all_complete_out(const struct sender *s) {
  if (s->next_offer < s->nfiles)
    return 0;
  for (size_t i = 0; i < s->nfiles; i++) {
    const struct sfile *f = &s->files[i];
    if (f->st != SF_DONE && f->st != SF_FAILED &&
        !(f->st == SF_ACTIVE && f->complete_sent))
      return 0;
  }
  return 1;
}

/* Once all_complete_out, the control stream ends now (FIN) rather than
 * after the last COMPLETE echo. The receiver then ends the session as soon
 * as its last file is finished, and its echo and FIN arrive together: one
 * round trip less at the end (docs/internals/protocol.md). */
static void fin_early(struct sender *s) {
  struct slink *l = s->ctl;
  if (!l || !l->c || !l->hello_ok || l->fin_sent || s->closing ||
      !all_complete_out(s))
    return;
  if (XP(stream_write, l->c, l->ctl.sid, NULL, 0, SFTQ_WRITE_FIN) == 0)
    l->fin_sent = 1;
}

/* A link closed with SFT_PROTO_CLOSE_DONE: the receiver finished every file
 * of the session, each verified against the root of our COMPLETE, and gave
 * up waiting for us to take its echoes (lost on a bad link). The files
 * whose COMPLETE went end as if their echo had come. Only once
 * all_complete_out, as when fin_early sends the FIN: a code at any other
 * time says nothing we could trust about the rest. */
static void peer_done(struct sender *s) {
  if (!all_complete_out(s))
    return;
  for (size_t i = 0; i < s->nfiles; i++) {
    struct sfile *f = &s->files[i];
    if (f->st == SF_ACTIVE &&
        sft_xsend_on_complete_confirm(f->xs, now(), f->root) == 0 &&
        sft_xsend_state(f->xs) == SFT_XS_COMPLETED)
      file_end(f, SF_DONE, 0, NULL);
  }
}

static int send_offer(struct sender *s, struct sfile *f) {
  struct sft_msg_offer m;
  memset(&m, 0, sizeof(m));
  m.file_id = f->id;
  m.priority = (enum sft_proto_prio)s->o->priority;
  m.manifest = f->man;
  f->complete_sent = 0;
  return CTRL_SEND(&s->ctl->ctl, sft_msg_offer_encode, &m);
}

/* Offers again, on the control link, the files offered before and not
 * finished: those waiting for their ACCEPT and those whose chunks went
 * before it, or (|all_active|, the session was down) every active one. An
 * offer that cannot be sent ends the session: ignored, the link came up
 * and nothing more happened (the sessions stuck on the re-offer that could
 * not encode, fixed in 7416e61). 0, or the error. */
static int offer_again(struct sender *s, int all_active) {
  for (size_t i = 0; i < s->next_offer; i++) {
    struct sfile *f = &s->files[i];
    int rv;
    if (f->st != SF_OFFERED && !(f->st == SF_ACTIVE && (all_active || f->spec)))
      continue;
    if ((rv = send_offer(s, f)) != 0) {
      finish(s, rv, "cannot send the offer for %s: %s", f->man.name,
             sft_strerror(rv));
      return rv;
    }
  }
  return 0;
}

/* While the link's rate is unknown (the first RATE_WAIT_NS after the
 * first connection, before a delivery-rate sample), only the first file is
 * offered: the others get a chunk size chosen from a measured rate. */
#define RATE_WAIT_NS 1500000000ull
#define PARITY_PKT_LOSS 0.2          /* proactive parity from packet loss */
#define RATE_MIN_BYTES (256u * 1024) /* carried before a rate counts */

static int file_begin(struct sender *s, struct sfile *f, int early,
                      const uint8_t *bm, size_t bml);

static void offer_more(struct sender *s) {
  while (s->ctl && !s->closing && s->next_offer < s->nfiles &&
         s->open_offers < OFFER_WINDOW) {
    if (s->offered_data && !s->rate_known && !s->o->chunk_size &&
        now() < s->up_at + RATE_WAIT_NS)
      break; /* adapt_tick offers the rest once the rate is measured */
    struct sfile *f = &s->files[s->next_offer++];
    struct sftd_event ev = {.type = SFTD_EV_FILE_START};
    struct sft_manifest prev;
    int rv, resumed = 0;
    s->open_offers++;
    f->st = SF_OFFERED;
    if (f->man.kind == SFT_FILE_REGULAR && f->man.size)
      s->offered_data = 1;
    if (s->o->offered_manifest &&
        s->o->offered_manifest(s->o->ud, f->id, &prev) == 0) {
      if (prev.kind != f->man.kind || prev.size != f->man.size ||
          prev.mtime_sec != f->man.mtime_sec ||
          prev.mtime_nsec != f->man.mtime_nsec ||
          prev.name_len != f->man.name_len ||
          memcmp(prev.name, f->man.name, prev.name_len) ||
          sft_manifest_verify(&prev)) {
        /* Offering it again under the same id with another manifest would
         * break the session: this file alone fails. */
        file_end(f, SF_FAILED, SFT_ERR_STATE,
                 "the file changed since the transfer started (size, "
                 "modification time or name); send it again");
        continue;
      }
      /* A resumed session offers what it offered before (the receiver
       * matches the chunks it holds against that geometry). */
      f->man = prev;
      resumed = 1;
    } else if (!s->o->chunk_size && f->man.kind == SFT_FILE_REGULAR) {
      /* The chunk size follows the link as measured so far. */
      struct sft_adapt_decision d;
      sft_adapt_get(&s->adapt, &d);
      if (d.chunk_size && d.chunk_size != f->man.chunk_size &&
          sft_manifest_set_geometry(&f->man, f->man.size, d.chunk_size) == 0)
        sft_manifest_verify(&f->man);
    }
    rv = send_offer(s, f);
    if (rv) {
      finish(s, rv, "cannot send the offer for %s: %s", f->man.name,
             sft_strerror(rv));
      return;
    }
    ev.name = f->man.name;
    ev.size = f->man.size;
    ev.file_id = f->id;
    ev.man = &f->man;
    ev.path = f->e->path;
    emit(s, &ev);
    /* A fresh file's chunks go now, a round trip before its ACCEPT, if
     * the receiver can park them (protocol.md); a resumed one waits for
     * the receiver's bitmap. */
    if (!resumed && f->man.kind == SFT_FILE_REGULAR && f->man.size &&
        f->id < s->answered + SFT_PROTO_PARK_FILES)
      (void)file_begin(s, f, 1, NULL, 0);
  }
  if (s->ever_up && s->finished == s->nfiles)
    end_gracefully(s);
}

/* ---- chunk reads on the thread pool ------------------------------------ */

static void job_work(uv_work_t *w) {
  struct sjob *j = w->data;
  j->err = sftd_pread_full(j->f->fd, j->data, j->len, j->offset);
  if (j->err)
    return;
  sft_hash(j->f->man.hash_algo, j->data, j->len, j->digest);
}

static void wire_unlink(struct sjob *j) {
  struct slink *l = j->l;
  if (!l)
    return;
  if (j->wprev)
    j->wprev->wnext = j->wnext;
  else
    l->wire = j->wnext;
  if (j->wnext)
    j->wnext->wprev = j->wprev;
  j->wprev = j->wnext = NULL;
  j->l = NULL;
  l->wire_n--;
}

static void job_free(struct sender *s, struct sjob *j) {
  wire_unlink(j);
  s->held_bytes -= j->len;
  j->f->jobs--;
  free(j);
}

/* Chunk |j| will not arrive (its stream was reset or its link died): the
 * machine sends it again (at once, or after a pause). */
static void job_lost(struct sjob *j) {
  struct sfile *f = j->f;
  if (!j->parity && f->st == SF_ACTIVE && f->xs) {
    f->s->chunks_lost++;
    struct sft_xfer_range r = {.first = j->index, .last = j->index};
    sft_xsend_on_need(f->xs, now(), &r, 1);
  }
}

/* This transfer's token bucket must allow |n| bytes (0), else *at is when
 * to try again. rate_charge() then takes them. */
static int rate_allow(struct sender *s, uint64_t n, uint64_t *at) {
  return sft_rate_check(&s->rate, now(), n, at) ? SFT_ERR_AGAIN : 0;
}

static void rate_charge(struct sender *s, uint64_t n) {
  uint64_t at;
  sft_rate_take(&s->rate, now(), n, &at);
  if (s->o->share)
    s->granted -= n;
}

static void flush_sendq(struct sender *s);

static void share_granted(void *ud, uint32_t bytes) {
  struct sender *s = ud;
  s->share_wait = 0;
  s->granted += bytes;
  flush_sendq(s);
}

/* Under the daemon's global limit (its link share, which orders transfers
 * by priority class) the next |n| bytes must have been granted: 0 when they
 * were, else a want is (or already was) queued and share_granted() brings
 * us back. */
static int share_allow(struct sender *s, uint64_t n) {
  int rv;
  if (!s->o->share || s->granted >= n)
    return 0;
  if (s->share_wait)
    return SFT_ERR_AGAIN;
  rv = sftd_share_want(s->o->share, (uint64_t)(uintptr_t)s, (int)s->o->priority,
                       (uint32_t)(n - s->granted), share_granted, s);
  if (rv) /* queue full: poll again with the pump */
    return rv;
  s->share_wait = 1;
  return SFT_ERR_AGAIN;
}

static void share_forget(struct sender *s) {
  if (s->o->share && s->share_wait)
    sftd_share_forget(s->o->share, (uint64_t)(uintptr_t)s);
  s->share_wait = 0;
}

/* 1 if link |l| can carry chunks: up (HELLO answered), or the session's
 * first link before the answer (the chunks of fresh files go early). */
static int link_carries(const struct sender *s, const struct slink *l) {
  return l->c && (l->hello_ok || (l == s->ctl && l->ctl.c && !s->ever_up));
}

/* 1 if link |l| carries chunks and its path is not Failed (lib/path: loss
 * above 50 %, or silent for 3 PTOs with data outstanding). */
static int link_usable(struct sender *s, const struct slink *l) {
  struct sft_path_info pi;
  if (!link_carries(s, l))
    return 0;
  return sft_path_get(&s->pt, l->idx, &pi) != 0 || pi.status != SFT_PATH_FAILED;
}

/* Bytes link |l| may hold unsent in its connection. One link: UNSENT_MAX,
 * deep enough to keep any path full. Several: what the link delivers in
 * LINKQ_NS at its measured rate, at least LINKQ_MIN. Shallow queues are
 * what spreads the chunks by delivery rate (a faster path drains sooner
 * and is offered the next chunk sooner), keep a stripe's chunks arriving
 * close together on all paths (a chunk queued seconds behind others on a
 * slow path looked lost to the receiver, whose NEED timer then fired), and
 * keep the end of the transfer from waiting on a deep queue of the
 * slowest path. */
static uint64_t link_qmax(struct sender *s, const struct slink *l) {
  struct sft_path_info pi;
  uint64_t q;
  if (s->nlinks < 2)
    return UNSENT_MAX;
  if (sft_path_get(&s->pt, l->idx, &pi) || !pi.delivery_rate)
    return LINKQ_MIN;
  q = pi.delivery_rate / (1000000000ull / LINKQ_NS);
  return q < LINKQ_MIN ? LINKQ_MIN : q > UNSENT_MAX ? UNSENT_MAX : q;
}

/* 1 if link |l| can take a chunk of |len| bytes now: up, not marked in
 * |tried| (its stream limit was hit in this round), not Failed while
 * another link is usable (|any_usable|), and its unsent bytes with the
 * chunk within link_qmax() (an empty queue takes any chunk). */
static int link_open_for(struct sender *s, const struct slink *l,
                         unsigned tried, int any_usable, uint64_t len) {
  uint64_t unsent;
  if (!link_carries(s, l) || (tried & (1u << l->idx)))
    return 0;
  if (any_usable && !link_usable(s, l))
    return 0; /* a Failed path gets nothing while another works */
  unsent = XP(conn_unsent, l->c);
  return unsent == 0 || unsent + len <= link_qmax(s, l);
}

static unsigned stripe_slot(const struct sfile *f, uint64_t stripe) {
  return (unsigned)((stripe + f->id * 7) % SPATHS);
}

/* Data chunk |j| went on link |l|: count it for its stripe's parity. */
static void stripe_note(struct sender *s, const struct sjob *j,
                        const struct slink *l) {
  uint64_t stripe;
  unsigned k;
  if (j->parity || !j->f->man.stripe_k || !j->f->man.stripe_m)
    return;
  stripe = j->index / j->f->man.stripe_k;
  k = stripe_slot(j->f, stripe);
  if (s->spaths[k].f != j->f || s->spaths[k].stripe != stripe) {
    memset(&s->spaths[k], 0, sizeof(s->spaths[k]));
    s->spaths[k].f = j->f;
    s->spaths[k].stripe = stripe;
  }
  s->spaths[k].n[l->idx]++;
}

/* The link for chunk |j|, or NULL (none can take it now: writable(), an
 * acknowledged stream, the progress tick or a link coming up calls us
 * again). lib/path chooses (sft_path_pick: Critical -> the lowest-RTT
 * usable path; High/Normal -> weighted by delivery rate; parity ->
 * sft_path_pick_parity, away from the path that carried most of the
 * stripe's data). If its choice cannot take the chunk now, a High/Normal
 * chunk or parity goes to the open link with the fewest unsent bytes
 * (backpressure outranks the weights), while a Critical one waits for its
 * path unless that path is down. */
static struct slink *pick_link(struct sender *s, const struct sjob *j,
                               unsigned tried) {
  struct slink *best = NULL;
  uint64_t best_key = UINT64_MAX, t = now();
  int any_usable = 0;
  unsigned id;
  int rv;
  for (unsigned i = 0; i < s->nlinks; i++)
    any_usable |= link_usable(s, &s->links[i]);
  for (unsigned i = 0; i < s->nlinks; i++) {
    struct slink *l = &s->links[i];
    uint64_t key;
    if (!link_open_for(s, l, tried, any_usable, j->hdr_len + j->len))
      continue;
    key = XP(conn_unsent, l->c);
    if (key < best_key) {
      best_key = key;
      best = l;
    }
  }
  if (!best || s->nlinks < 2)
    return best;
  if (j->parity) {
    uint64_t stripe = j->index;
    unsigned k = stripe_slot(j->f, stripe);
    uint32_t none[SFTD_LINKS_MAX] = {0};
    const uint32_t *counts = none;
    if (s->spaths[k].f == j->f && s->spaths[k].stripe == stripe)
      counts = s->spaths[k].n;
    rv = sft_path_pick_parity(&s->pt, counts, s->nlinks, t, &id);
  } else {
    rv = sft_path_pick(&s->pt, (int)s->o->priority, t,
                       j->hdr_len + j->len, &id);
  }
  if (rv == 0 && id < s->nlinks) {
    struct slink *l = &s->links[id];
    if (link_open_for(s, l, tried, any_usable, j->hdr_len + j->len))
      return l;
    if (s->o->priority == SFTD_PRIO_CRITICAL && !j->parity &&
        link_carries(s, l) && !(tried & (1u << id)))
      return NULL; /* its path is up but full: wait for it */
  }
  return best;
}

/* Opens streams for read chunks while the transport lets us. */
static void flush_sendq(struct sender *s) {
  unsigned tried = 0;
  s->rate_wait = 0;
  while (s->sq_head && !s->closing && !s->paused) {
    struct sjob *j = s->sq_head;
    struct slink *l;
    sftq_iov iov[2];
    int64_t sid;
    uint64_t at;
    int rv;
    if (!j->parity && (j->f->st != SF_ACTIVE || !j->f->xs ||
                       sft_xsend_acked(j->f->xs, j->index))) {
      /* Acknowledged while it waited (the receiver got it another way:
       * a rebuild, an earlier copy, gRPC SendChunk): not sent. */
      s->sq_head = j->next;
      if (!s->sq_head)
        s->sq_tail = NULL;
      s->res->chunks_skipped++;
      job_free(s, j);
      continue;
    }
    if (rate_allow(s, j->hdr_len + j->len, &at)) {
      s->rate_wait = at; /* the pump's timer brings us back */
      return;
    }
    rv = share_allow(s, j->hdr_len + j->len);
    if (rv == SFT_ERR_AGAIN)
      return;
    if (rv) {
      s->rate_wait = now() + 10000000ull;
      return;
    }
    l = pick_link(s, j, tried);
    if (!l)
      return; /* see pick_link() for what brings us back */
    rv = XP(stream_open_uni, l->c, &sid);
    if (rv == SFT_ERR_AGAIN) {
      tried |= 1u << l->idx;
      continue;
    }
    if (rv) {
      XPV(conn_close, l->c, (uint64_t)-rv); /* the link is broken */
      tried |= 1u << l->idx;
      continue;
    }
    rate_charge(s, j->hdr_len + j->len);
    s->sq_head = j->next;
    if (!s->sq_head)
      s->sq_tail = NULL;
    j->sid = sid;
    iov[0].base = j->hdr;
    iov[0].len = j->hdr_len;
    iov[1].base = j->data;
    iov[1].len = j->len;
    XP(stream_set_user, l->c, sid, j);
    XP(stream_set_urgency, l->c, sid, 3 + (unsigned)s->o->priority);
    rv = XP(stream_write, l->c, sid, iov, 2, SFTQ_WRITE_FIN);
    if (rv) {
      XP(stream_set_user, l->c, sid, NULL);
      job_lost(j);
      job_free(s, j);
      XPV(conn_close, l->c, (uint64_t)-rv);
      tried |= 1u << l->idx;
      continue;
    }
    j->sent_at = now();
    l->bytes_sent += j->len;
    stripe_note(s, j, l);
    if (!l->wire_n)
      l->progress_at = j->sent_at;
    j->l = l;
    j->wnext = l->wire;
    if (l->wire)
      l->wire->wprev = j;
    l->wire = j;
    l->wire_n++;
    s->res->chunks_sent++;
  }
}

static void try_free(struct sender *s);

static void job_done(uv_work_t *w, int status) {
  struct sjob *j = w->data;
  struct sfile *f = j->f;
  struct sender *s = f->s;
  int rv;

  s->work--;
  if (s->released) {
    job_free(s, j);
    try_free(s);
    return;
  }
  if (status || s->closing || f->st != SF_ACTIVE) {
    job_free(s, j);
    if (!s->closing)
      pump(s);
    return;
  }
  if (j->err) {
    sft_xsend_abort(f->xs, now(), j->err);
    job_free(s, j);
    pump(s);
    return;
  }
  rv = sft_xsend_chunk_read(f->xs, now(), j->index, j->digest);
  if (rv || !j->send) {
    job_free(s, j);
    pump(s);
    return;
  }
  {
    struct sft_chunk_hdr h = {.kind = SFT_CHUNK_DATA,
                              .file_id = f->id,
                              .index = j->index,
                              .payload_len = j->len};
    memcpy(h.digest, j->digest, SFT_HASH_LEN);
    rv = sft_chunk_hdr_encode(j->hdr, sizeof(j->hdr), &h, &j->hdr_len);
  }
  if (rv) {
    job_free(s, j);
    finish(s, rv, "cannot encode a chunk header: %s", sft_strerror(rv));
    return;
  }
  j->next = NULL;
  if (s->sq_tail)
    s->sq_tail->next = j;
  else
    s->sq_head = j;
  s->sq_tail = j;
  flush_sendq(s);
  pump(s);
}

static int submit_read(struct sender *s, struct sfile *f,
                       const struct sft_xsend_action *a) {
  struct sjob *j = malloc(sizeof(*j) + a->len);
  if (!j)
    return SFT_ERR_NOMEM;
  memset(j, 0, sizeof(*j));
  j->w.data = j;
  j->f = f;
  j->index = a->index;
  j->offset = a->offset;
  j->len = a->len;
  j->send = a->send;
  j->sid = -1;
  if (a->attempt)
    s->res->chunks_resent++;
  if (!a->send)
    s->res->chunks_skipped++;
  s->held_bytes += a->len;
  f->jobs++;
  if (uv_queue_work(s->loop, &j->w, job_work, job_done)) {
    job_free(s, j);
    return SFT_ERR_IO;
  }
  s->work++;
  return 0;
}

/* ---- parity on the thread pool ------------------------------------------ */

/* One ENCODE_PARITY: the stripe's data is read again from the file (the
 * chunks were released when they were sent), zero-padded to chunk_size,
 * encoded, and each parity shard asked for becomes a chunk job queued
 * ahead of new data (parity is useful only while the stripe is young). */
struct pjob {
  uv_work_t w;
  struct sfile *f;
  uint64_t stripe, offset;
  uint32_t nchunks, len, first, count, k, m;
  int err;
  struct sjob *out[SFT_MAX_STRIPE];
};

static void pjob_work(uv_work_t *w) {
  struct pjob *p = w->data;
  struct sfile *f = p->f;
  uint64_t want = (uint64_t)p->nchunks * p->len;
  uint8_t *data, *scratch;
  const uint8_t *dp[SFT_MAX_STRIPE];
  uint8_t *pp[SFT_MAX_STRIPE];
  struct sft_fec *fec = NULL;
  if (p->offset + want > f->man.size)
    want = f->man.size - p->offset;
  data = calloc((size_t)p->k, p->len);
  scratch = malloc(p->len);
  if (!data || !scratch || sft_fec_new(&fec, p->k, p->m)) {
    p->err = SFT_ERR_NOMEM;
    goto out;
  }
  p->err = sftd_pread_full(f->fd, data, (size_t)want, p->offset);
  if (p->err)
    goto out;
  for (uint32_t i = 0; i < p->k; i++)
    dp[i] = data + (size_t)i * p->len;
  for (uint32_t i = 0; i < p->m; i++)
    pp[i] = i >= p->first && i < p->first + p->count
                ? p->out[i - p->first]->data
                : scratch; /* shards not asked for are thrown away */
  p->err = sft_fec_encode(fec, dp, pp, p->len);
  for (uint32_t i = 0; !p->err && i < p->count; i++)
    sft_hash(f->man.hash_algo, p->out[i]->data, p->len, p->out[i]->digest);
out:
  sft_fec_del(fec);
  free(scratch);
  free(data);
}

static void pjob_done(uv_work_t *w, int status) {
  struct pjob *p = w->data;
  struct sfile *f = p->f;
  struct sender *s = f->s;
  s->work--;
  for (uint32_t i = 0; i < p->count; i++) {
    struct sjob *j = p->out[i];
    struct sft_chunk_hdr h = {.kind = SFT_CHUNK_PARITY,
                              .file_id = f->id,
                              .index = p->stripe,
                              .parity_index = j->pidx,
                              .payload_len = p->len};
    memcpy(h.digest, j->digest, SFT_HASH_LEN);
    if (status || p->err || s->released || s->closing || f->st != SF_ACTIVE ||
        sft_chunk_hdr_encode(j->hdr, sizeof(j->hdr), &h, &j->hdr_len)) {
      job_free(s, j);
      continue;
    }
    /* Ahead of the data chunks waiting for a stream. */
    j->next = s->sq_head;
    s->sq_head = j;
    if (!s->sq_tail)
      s->sq_tail = j;
    s->res->parity_sent++;
  }
  free(p);
  if (s->released) {
    try_free(s);
    return;
  }
  flush_sendq(s);
  pump(s);
}

static int submit_parity(struct sender *s, struct sfile *f,
                         const struct sft_xsend_action *a) {
  struct pjob *p = calloc(1, sizeof(*p));
  uint32_t i;
  if (!p)
    return SFT_ERR_NOMEM;
  p->w.data = p;
  p->f = f;
  p->stripe = a->stripe;
  p->offset = a->offset;
  p->nchunks = a->nchunks;
  p->len = a->len;
  p->first = a->parity_first;
  p->count = a->parity_count;
  p->k = f->man.stripe_k;
  p->m = f->man.stripe_m;
  if (!p->count || p->first + p->count > p->m || p->nchunks > p->k) {
    free(p);
    return SFT_ERR_STATE;
  }
  for (i = 0; i < p->count; i++) {
    struct sjob *j = calloc(1, sizeof(*j) + p->len);
    if (!j)
      break;
    j->w.data = j;
    j->f = f;
    j->index = p->stripe;
    j->len = p->len;
    j->send = 1;
    j->parity = 1;
    j->pidx = p->first + i;
    j->sid = -1;
    s->held_bytes += p->len;
    f->jobs++;
    p->out[i] = j;
  }
  if (i < p->count || uv_queue_work(s->loop, &p->w, pjob_work, pjob_done)) {
    for (uint32_t n = 0; n < i; n++)
      job_free(s, p->out[n]);
    free(p);
    return SFT_ERR_NOMEM;
  }
  s->work++;
  return 0;
}

/* CANCEL_CHUNK: the receiver acked chunk |index| while its stream is still
 * open (rebuilt from parity): stop sending it. */
static void cancel_chunk(struct sender *s, struct sfile *f, uint64_t index) {
  for (unsigned i = 0; i < s->nlinks; i++) {
    struct slink *l = &s->links[i];
    for (struct sjob *j = l->wire; j; j = j->wnext)
      if (j->f == f && j->index == index && !j->parity && !j->cancelled) {
        j->cancelled = 1;
        XP(stream_cancel, l->c, j->sid, (uint64_t)-SFT_ERR_CANCELLED);
        return;
      }
  }
}

/* ---- links: connect, fall back, lose, reconnect ------------------------- */

/* The control messages sent on the control link may be lost with it: every
 * file in flight sends its COMPLETE again (and fin_early waits for it). */
static void control_lost(struct sender *s) {
  for (size_t i = 0; i < s->next_offer; i++) {
    struct sfile *f = &s->files[i];
    f->complete_sent = 0;
    if (f->st == SF_ACTIVE)
      sft_xsend_on_control_lost(f->xs, now());
  }
}

/* Link |l| gives up connection |c| (NULL: gone). Chunks still on it (a
 * first link dropped before HELLO was answered carries the chunks of fresh
 * files) are sent again; if it carried the control messages before the
 * session was up, the next link to come up carries them and makes the
 * offers again (link_hello). */
static void link_drop(struct slink *l, sftq_conn *c) {
  struct sender *s = l->s;
  while (l->wire) {
    struct sjob *j = l->wire;
    if (c)
      XP(stream_set_user, c, j->sid, NULL);
    if (!j->cancelled)
      job_lost(j);
    job_free(s, j);
  }
  if (s->ctl == l && !s->ever_up) {
    s->ctl = NULL;
    control_lost(s);
  }
  ctrl_free(&l->ctl);
  ctrl_init(&l->ctl);
}

static void link_reset(struct slink *l) {
  link_drop(l, l->c);
  l->c = NULL;
  l->connected = l->hello_ok = l->fin_sent = 0;
  l->fallback_at = 0;
  l->wire_n = 0;
  l->progress_at = 0;
  l->fec_seen = 0; /* the next connection counts from 0 */
}

/* Starts a connection for link |l| (QUIC, or TCP+TLS when asked for or
 * after an earlier fallback). 0 or an error (nothing started). */
static int link_open(struct sender *s, struct slink *l) {
  int rv;
  link_reset(l);
  l->reopen_at = 0;
  if (l->tcp || s->o->transport == SFTD_TRANSPORT_TCP_ONLY) {
    sftt_conn *tc = NULL;
    if (!s->t)
      return SFT_ERR_UNSUPPORTED;
    rv = sftt_connect_via(s->t, s->tg[l->tgt].via, s->tg[l->tgt].numeric,
                          s->tg[l->tgt].port, l, &tc);
    if (!rv)
      l->c = (sftq_conn *)(void *)tc;
    return rv;
  }
  rv = sftq_connect_via(s->q, s->tg[l->tgt].via, s->tg[l->tgt].numeric,
                        s->tg[l->tgt].port, l, &l->c);
  if (rv) {
    l->c = NULL;
    return rv;
  }
  /* TCP fallback is decided on the first contact only: a reconnect that
   * fails during an outage is retried, not switched to TCP. */
  if (s->o->transport == SFTD_TRANSPORT_ANY && s->t && !s->ever_up)
    l->fallback_at = now() + (uint64_t)SFTD_FALLBACK_MS * 1000000u;
  return 0;
}

/* No QUIC handshake completed yet (UDP blocked, or a slow handshake on a
 * very lossy link): start the same protocol over TCP+TLS to the same port
 * number, and let the QUIC attempt go on (l->qwait). The first handshake to
 * complete carries the link (race_won); if one attempt fails, the other
 * goes on alone. If QUIC itself failed, |l->c| is NULL here. */
static void fall_back(struct slink *l, const char *why) {
  struct sender *s = l->s;
  sftq_conn *old = l->c;
  char text[160];
  struct sftd_event ev = {.type = SFTD_EV_FALLBACK, .text = text};
  int rv;
  snprintf(text, sizeof(text), "%s:%u: %s: trying TCP+TLS", s->host, s->o->port,
           why);
  emit(s, &ev);
  conn_abandon(l->qwait);
  l->qwait = NULL;
  l->tcp = 1;
  s->res->fell_back = 1;
  rv = link_open(s, l);
  if (rv) {
    l->c = NULL;
    if (old) {
      keep_quic(l, old);
      return;
    }
    finish(s, rv, "cannot connect over TCP to %s:%u: %s", s->host, s->o->port,
           sft_strerror(rv));
    return;
  }
  l->qwait = old;
}

/* Is a loss with this reason worth reconnecting for? Authentication,
 * version and protocol errors are not. */
static int retryable(int reason, uint64_t app_error) {
  if (reason == SFT_ERR_AUTH || reason == SFT_ERR_VERSION ||
      reason == SFT_ERR_PEER)
    return 0;
  if (reason == SFT_ERR_CLOSED && (app_error == (uint64_t)-SFT_ERR_PEER ||
                                   app_error == (uint64_t)-SFT_ERR_VERSION ||
                                   app_error == (uint64_t)-SFT_ERR_AUTH ||
                                   app_error == (uint64_t)-SFT_ERR_CANCELLED))
    return 0;
  return 1;
}

static uint64_t backoff_ms(unsigned attempt) {
  uint64_t ms = BACKOFF_MIN_MS;
  uint32_t jitter = 0;
  while (attempt-- > 1 && ms < BACKOFF_MAX_MS)
    ms *= 2;
  if (ms > BACKOFF_MAX_MS)
    ms = BACKOFF_MAX_MS;
  if (getrandom(&jitter, sizeof(jitter), GRND_NONBLOCK) != sizeof(jitter))
    jitter = 0;
  return ms - ms / 4 + jitter % (ms / 2 + 1); /* +-25 % */
}

/* The whole session lost its connections: the machines stop their timers
 * (nothing is failed for being unacknowledged while we are away). */
static void session_down(struct sender *s) {
  if (s->down)
    return;
  s->down = 1;
  s->ctl = NULL;
  for (size_t i = 0; i < s->next_offer; i++)
    if (s->files[i].st == SF_ACTIVE)
      sft_xsend_on_network_failure(s->files[i].xs, now());
}

static struct slink *first_up(struct sender *s) {
  for (unsigned i = 0; i < s->nlinks; i++)
    if (s->links[i].c && s->links[i].hello_ok)
      return &s->links[i];
  return NULL;
}

/* A link completed HELLO. The first one after the session was down (or the
 * new control link after the old one died) re-offers what is unfinished:
 * the receiver answers with its bitmap and nothing it holds is sent again. */
/* "HOST:PORT", "[V6]:PORT", plus " via LOCAL" for a --via path (so two
 * paths to one address have distinct names). */
static void path_label(const struct target *tg, char *out, size_t cap) {
  int n = snprintf(out, cap, strchr(tg->numeric, ':') ? "[%s]:%u" : "%s:%u",
                   tg->numeric, tg->port);
  if (tg->via[0] && n > 0 && (size_t)n < cap)
    snprintf(out + n, cap - (size_t)n, " via %s", tg->via);
}

/* Feeds link |l|'s connection statistics to its path record. Its
 * delivery rate counts only once it has carried RATE_MIN_BYTES of chunks:
 * before that it measures the handshake and control messages, and a path
 * weighted by that tiny figure would never get the chunks that would
 * measure it (lib/path gives a path without a rate the average share). */
static void path_feed(struct sender *s, const struct slink *l,
                      const sftq_stats *st) {
  struct sft_path_sample smp = {.srtt_ns = st->srtt_ns,
                                .rttvar_ns = st->rttvar_ns,
                                .delivery_rate = l->bytes_sent >= RATE_MIN_BYTES
                                                     ? st->delivery_rate
                                                     : 0,
                                .pkts_sent = st->pkts_sent,
                                .pkts_lost = st->pkts_lost,
                                .last_ack_ns = l->progress_at,
                                .bytes_in_flight = st->bytes_in_flight};
  sft_path_sample(&s->pt, l->idx, now(), &smp);
}

static void link_up(struct slink *l) {
  struct sender *s = l->s;
  struct sftd_event ev = {.type = SFTD_EV_LINK_UP};
  int reattach = s->ever_up && (s->down || !s->ctl);
  l->hello_ok = 1;
  l->attempts = 0;
  l->progress_at = now();
  {
    /* A new connection starts a new path record (Active, no history). */
    unsigned id;
    sft_path_remove(&s->pt, l->idx);
    sftq_stats st;
    if (sft_path_add(&s->pt, now(), &id) == 0 && id != l->idx)
      sft_path_remove(&s->pt, id); /* cannot happen: ids = link indices */
    /* the handshake measured an RTT: Critical chunks can choose at once */
    if (XP(conn_stats, l->c, &st) == 0)
      path_feed(s, l, &st);
  }
  if (l->was_up)
    s->res->reconnects++;
  l->was_up = 1;
  if (!s->ever_up)
    s->up_at = now();
  s->ever_up = 1;
  if (!s->ctl)
    s->ctl = l;
  for (unsigned i = 0; i < s->nlinks; i++) {
    struct slink *o = &s->links[i];
    if (!o->c && o->reopen_at == UINT64_MAX) {
      o->tcp = l->tcp; /* the others follow the first one's transport */
      o->reopen_at = now();
    }
  }
  ev.port = (uint16_t)links_up(s);
  emit(s, &ev);
  /* Also when the session's first connection failed before this one came
   * up (a persistent sender): nothing runs while the session is down. */
  if (s->down) {
    s->down = 0;
    for (size_t i = 0; i < s->next_offer; i++)
      if (s->files[i].st == SF_ACTIVE)
        sft_xsend_on_network_recovered(s->files[i].xs, now());
  }
  if (reattach)
    (void)offer_again(s, 1);
}

/* The control link died while others are up: offers in flight on it are
 * sent again on the new one, and COMPLETE is repeated. */
static void ctl_moved(struct sender *s) {
  s->ctl = first_up(s);
  if (!s->ctl)
    return;
  control_lost(s);
  (void)offer_again(s, 0);
}

/* Link |l|'s connection is gone (|reason| as in sftq's closed callback). Its
 * chunks in flight are sent again on the other links; the link itself is
 * reopened with backoff unless the loss is fatal or retries are used up.
 * Returns with the session finished when nothing can carry it any more. */
static void link_lost(struct slink *l, int reason, uint64_t app_error,
                      const char *why) {
  struct sender *s = l->s;
  struct sftd_event ev = {.type = SFTD_EV_LINK_DOWN};
  int was_ctl = s->ctl == l;
  int fatal = !retryable(reason, app_error);
  while (l->wire) {
    struct sjob *j = l->wire;
    XP(stream_set_user, l->c, j->sid, NULL);
    if (!j->cancelled)
      job_lost(j);
    job_free(s, j);
  }
  link_reset(l);
  sft_path_set_failed(&s->pt, l->idx, now());
  l->last_err = reason ? reason : SFT_ERR_CLOSED;
  snprintf(l->why, sizeof(l->why), "%s", why);
  if (s->closing) {
    if (!links_live(s))
      complete(s);
    return;
  }
  if (fatal && s->ever_up) {
    finish(s, l->last_err, "%s", why);
    return;
  }
  if (fatal || s->max_retries < 0 || l->attempts >= (unsigned)s->max_retries) {
    l->reopen_at = 0;
  } else {
    l->attempts++;
    l->reopen_at = now() + backoff_ms(l->attempts) * 1000000u;
  }
  if (was_ctl)
    s->ctl = NULL;
  if (!first_up(s))
    session_down(s);
  else if (was_ctl)
    ctl_moved(s);
  ev.text = why;
  ev.err = l->last_err;
  ev.port = (uint16_t)links_up(s);
  ev.size = l->reopen_at ? (l->reopen_at - now()) / 1000000 : 0;
  if (s->ever_up)
    emit(s, &ev);
  /* Nothing left that could carry the session? */
  for (unsigned i = 0; i < s->nlinks; i++)
    if (s->links[i].c ||
        (s->links[i].reopen_at && s->links[i].reopen_at != UINT64_MAX))
      return;
  finish(s, l->last_err, "%s (gave up after %u attempts to reconnect)", why,
         l->attempts);
}

/* A link with chunks outstanding that hears nothing from the peer for too
 * long is dead even if the transport has not noticed yet (a blackholed
 * path): close it, so its chunks go to the other links. With other links up,
 * "too long" is a few PTOs (at least STALL_MIN_NS) so they take over quickly;
 * alone, STALL_SOLO_NS. */
static uint64_t stall_check(struct sender *s, struct slink *l, uint64_t t) {
  sftq_stats st;
  uint64_t limit = STALL_SOLO_NS;
  if (!l->c || !l->hello_ok || XP(conn_stats, l->c, &st))
    return UINT64_MAX;
  if (st.pkts_recv != l->pkts_recv || !l->wire_n || !l->progress_at) {
    /* Alive (the peer's packets arrive), or nothing expected of it. */
    l->pkts_recv = st.pkts_recv;
    l->progress_at = t;
  }
  if (!l->wire_n)
    return UINT64_MAX;
  if (links_up(s) > 1) {
    uint64_t pto = st.srtt_ns + 4 * st.rttvar_ns + 25000000u;
    limit = 3 * pto > STALL_MIN_NS ? 3 * pto : STALL_MIN_NS;
  }
  if (t - l->progress_at < limit) {
    uint64_t at = l->progress_at + limit, poll = t + 100000000u;
    return at < poll ? at : poll; /* look again soon: packets arrive */
  }
  if (links_up(s) > 1) {
    /* Only a path that is silent while another one is heard is dead: when
     * every link is silent it is an outage of the peer or of the network,
     * and closing links would only throw their chunks away (QUIC's idle
     * timeout and the reconnect logic handle a long one). */
    int other_alive = 0;
    for (unsigned i = 0; i < s->nlinks; i++) {
      struct slink *o = &s->links[i];
      if (o != l && o->c && o->hello_ok && t - o->progress_at < STALL_MIN_NS)
        other_alive = 1;
    }
    if (!other_alive)
      return t + 100000000u;
  }
  XPV(conn_close, l->c, (uint64_t)-SFT_ERR_TIMEOUT);
  return UINT64_MAX;
}

/* ---- the pump: run every machine until it has nothing to do ------------- */

static int links_full(struct sender *s) {
  for (unsigned i = 0; i < s->nlinks; i++) {
    struct slink *l = &s->links[i];
    if (link_carries(s, l) && XP(conn_unsent, l->c) <= link_qmax(s, l))
      return 0;
  }
  return 1;
}

static void pump(struct sender *s) {
  uint64_t t = now(), next = UINT64_MAX, budget;
  int more = 1;

  if (s->closing)
    return;
  if (s->ending_at) {
    if (t >= s->ending_at)
      finish(s, 0, NULL);
    else /* woken early: libuv times timers from its cached loop time,
            which lags ours; without this the session waited for the idle
            timeout (30 s) when the receiver's answer to our FIN was lost */
      uv_timer_start(&s->timer, on_timer, (s->ending_at - t + 999999) / 1000000,
                     0);
    return;
  }
  for (unsigned i = 0; i < s->nlinks && !s->closing; i++) {
    struct slink *l = &s->links[i];
    uint64_t at;
    if (l->c && !l->connected && l->fallback_at) {
      if (t >= l->fallback_at) {
        sftq_stats st;
        if (XP(conn_stats, l->c, &st) == 0 && st.pkts_recv > 0)
          l->fallback_at = 0; /* UDP works: a slow handshake (a very lossy
                                 link), which QUIC finishes on its own */
        else {
          char why[64];
          snprintf(why, sizeof(why), "no QUIC handshake within %u ms",
                   SFTD_FALLBACK_MS);
          fall_back(l, why);
        }
      } else if (l->fallback_at < next)
        next = l->fallback_at;
    } else if (!l->c && l->reopen_at) {
      if (t >= l->reopen_at) {
        int rv = link_open(s, l);
        if (rv)
          link_lost(l, rv, 0, sft_strerror(rv));
      } else if (l->reopen_at < next) {
        next = l->reopen_at;
      }
    }
    at = stall_check(s, l, t);
    if (at < next)
      next = at;
  }
  if (s->closing)
    return;
  if (s->ctl && !s->down) {
    if (s->rate_wait && s->rate_wait <= t)
      flush_sendq(s);
    if (s->rate_wait && s->rate_wait < next)
      next = s->rate_wait;
    budget = budget_bytes(s);
    for (size_t i = 0; i < s->next_offer && more; i++) {
      struct sfile *f = &s->files[i];
      struct sft_xsend_action a;
      if (f->st != SF_ACTIVE)
        continue;
      for (;;) {
        if (s->held_bytes >= budget || links_full(s)) {
          more = 0; /* memory or queues full: wait for streams to drain */
          break;
        }
        if (sft_xsend_poll(f->xs, t, &a))
          break;
        if (a.type == SFT_XSEND_NONE) {
          if (a.expiry < next)
            next = a.expiry;
          break;
        }
        if (a.type == SFT_XSEND_READ_CHUNK) {
          int rv = submit_read(s, f, &a);
          if (rv) {
            sft_xsend_abort(f->xs, t, rv);
          }
        } else if (a.type == SFT_XSEND_SEND_COMPLETE) {
          struct sft_msg_complete m = {.file_id = f->id};
          memcpy(m.root, a.root, SFT_HASH_LEN);
          memcpy(f->root, a.root, SFT_HASH_LEN);
          if (CTRL_SEND(&s->ctl->ctl, sft_msg_complete_encode, &m) == 0)
            f->complete_sent = 1;
        } else if (a.type == SFT_XSEND_ENCODE_PARITY) {
          submit_parity(s, f, &a); /* on failure the stripe relies on NEED */
        } else if (a.type == SFT_XSEND_CANCEL_CHUNK) {
          cancel_chunk(s, f, a.index);
        } else if (a.type == SFT_XSEND_DONE) {
          file_end(f, SF_DONE, 0, NULL);
          break;
        } else if (a.type == SFT_XSEND_FAILED) {
          file_end(f, SF_FAILED, a.reason, sft_strerror(a.reason));
          break;
        }
      }
    }
    offer_more(s);
    fin_early(s);
  }
  if (s->closing)
    return;
  if (next != UINT64_MAX) {
    uint64_t ms = next > t ? (next - t + 999999) / 1000000 : 0;
    uv_timer_start(&s->timer, on_timer, ms, 0);
  }
}

/* ---- control messages --------------------------------------------------- */

static struct sfile *file_by_id(struct sender *s, uint64_t id) {
  return id < s->next_offer ? &s->files[id] : NULL;
}

static const char *reason_text(uint16_t r) {
  switch (r) {
  case SFT_REASON_EXISTS:
    return "the file exists on the receiver (it was started without "
           "--overwrite)";
  case SFT_REASON_NOSPACE:
    return "not enough free space on the receiver";
  case SFT_REASON_BAD_NAME:
    return "the receiver refused the file name as unsafe or invalid";
  case SFT_REASON_TOO_LARGE:
    return "the file exceeds the receiver's size limit (--max-size)";
  case SFT_REASON_POLICY:
    return "refused by the receiver's policy";
  case SFT_REASON_BUSY:
    return "the receiver is busy, try again later";
  case SFT_REASON_INTEGRITY:
    return "integrity check failed on the receiver";
  case SFT_REASON_SHUTDOWN:
    return "the receiver is shutting down";
  case SFT_REASON_INTERNAL:
    return "the receiver failed to write the file";
  default:
    return "refused by the receiver";
  }
}

static int reason_err(uint16_t r) {
  switch (r) {
  case SFT_REASON_EXISTS:
    return SFT_ERR_EXISTS;
  case SFT_REASON_NOSPACE:
    return SFT_ERR_NOSPACE;
  case SFT_REASON_BAD_NAME:
    return SFT_ERR_PATH;
  case SFT_REASON_TOO_LARGE:
    return SFT_ERR_TOO_LARGE;
  case SFT_REASON_INTEGRITY:
    return SFT_ERR_DIGEST;
  default:
    return SFT_ERR_PEER;
  }
}

/* Opens offered file |f| and starts its machine: on the receiver's ACCEPT
 * (|bm|, |bml|: its have-bitmap), or, |early|, right after the OFFER of a
 * fresh file (its chunks go a round trip sooner; the ACCEPT then merges,
 * sft_xsend_start_early). Returns 0 (SF_ACTIVE), or the file has failed. */
static int file_begin(struct sender *s, struct sfile *f, int early,
                      const uint8_t *bm, size_t bml) {
  struct sft_xsend_params p;
  int rv;
  f->fd = open(f->e->path, O_RDONLY | O_CLOEXEC);
  if (f->fd < 0) {
    char why[512];
    snprintf(why, sizeof(why), "cannot open %s: %s", f->e->path,
             strerror(errno));
    file_end(f, SF_FAILED, SFT_ERR_IO, why);
    CTRL_SEND(&s->ctl->ctl, sft_msg_cancel_encode,
              (&(struct sft_msg_cancel){.file_id = f->id,
                                        .reason = SFT_REASON_INTERNAL}));
    return SFT_ERR_IO;
  }
  sft_xsend_params_default(&p);
  p.max_inflight = SFT_XSEND_MAX_INFLIGHT;
  p.resend_timeout_ns = 60ull * 1000000000u;
  p.max_retries = SFT_XFER_MAX_RETRIES; /* link losses and pauses count */
  if (f->man.stripe_m) {
    p.stripe_k = f->man.stripe_k;
    p.stripe_m = f->man.stripe_m;
  }
  rv = sft_xsend_new(&f->xs, f->man.size, f->man.chunk_size, f->man.hash_algo,
                     &p);
  if (!rv)
    rv = sft_xsend_start(f->xs, now());
  if (!rv)
    rv = early ? sft_xsend_start_early(f->xs, now())
               : sft_xsend_on_accept(f->xs, now(), bm, bml);
  if (rv) {
    file_end(f, SF_FAILED, rv, sft_strerror(rv));
    return rv;
  }
  f->st = SF_ACTIVE;
  f->spec = early;
  if (f->man.stripe_m)
    sft_xsend_set_parity(f->xs, s->m_pro < f->man.stripe_m ? s->m_pro
                                                           : f->man.stripe_m);
  if (s->paused)
    sft_xsend_pause(f->xs, now());
  return 0;
}

static int on_accept(struct sender *s, const struct sft_msg_accept *m) {
  struct sfile *f = file_by_id(s, m->file_id);
  if (f && m->file_id >= s->answered)
    s->answered = m->file_id + 1;
  if (f && f->st == SF_ACTIVE &&
      sft_xfer_state_terminal(sft_xsend_state(f->xs)))
    return 0; /* ended before its ACCEPT (failed, or confirmed on another
                 link first): the pump reaps it */
  if (f && f->st == SF_ACTIVE && f->spec) {
    /* The answer to an offer whose chunks went early. */
    f->spec = 0;
    if (m->status == SFT_ACCEPT_REFUSED) {
      f->refused = 1; /* (its chunks in flight are dropped there) */
      file_end(f, SF_FAILED, reason_err(m->reason), reason_text(m->reason));
      return 0;
    }
    if (m->chunk_count != f->man.chunk_count ||
        sft_xsend_on_accept(f->xs, now(), m->bitmap, m->bitmap_len))
      return SFT_ERR_PEER;
    return 0;
  }
  if (f && f->st == SF_ACTIVE && m->status == SFT_ACCEPT_OK) {
    /* A re-accept after a reconnect: the receiver's bitmap is the truth. */
    if (m->chunk_count != f->man.chunk_count ||
        sft_xsend_on_accept(f->xs, now(), m->bitmap, m->bitmap_len))
      return SFT_ERR_PEER;
    return 0;
  }
  if (f && (f->st == SF_DONE || f->st == SF_FAILED))
    return 0; /* the answer to a re-offer that crossed the end */
  if (!f || f->st != SF_OFFERED)
    return SFT_ERR_PEER;
  if (m->status == SFT_ACCEPT_REFUSED) {
    f->refused = 1;
    file_end(f, SF_FAILED, reason_err(m->reason), reason_text(m->reason));
    return 0;
  }
  if (m->chunk_count != f->man.chunk_count)
    return SFT_ERR_PEER;
  if (f->man.kind == SFT_FILE_DIR) {
    file_end(f, SF_DONE, 0, NULL);
    return 0;
  }
  (void)file_begin(s, f, 0, m->bitmap, m->bitmap_len);
  return 0;
}

static int on_frame(void *ud, const struct sft_frame *fr) {
  struct slink *l = ud;
  struct sender *s = l->s;
  int rv = 0;
  switch (fr->type) {
  case SFT_MSG_HELLO: {
    struct sft_msg_hello h;
    uint32_t v;
    rv = sft_msg_hello_decode(fr->body, fr->body_len, &h);
    if (rv)
      return rv;
    rv = sft_proto_negotiate(SFT_PROTO_VERSION_MIN, SFT_PROTO_VERSION_CURRENT,
                             h.version_min, h.version_current, &v);
    if (rv) {
      finish(s, SFT_ERR_VERSION,
             "the receiver speaks protocol versions %u..%u, we speak %u..%u: "
             "upgrade the older side",
             h.version_min, h.version_current, SFT_PROTO_VERSION_MIN,
             SFT_PROTO_VERSION_CURRENT);
      return SFT_ERR_VERSION;
    }
    if (h.role != SFT_ROLE_RECEIVER || l->hello_ok ||
        memcmp(h.session_id, s->session_id, SFT_SESSION_ID_LEN))
      return SFT_ERR_PEER;
    link_up(l);
    offer_more(s);
    flush_sendq(s);
    break;
  }
  case SFT_MSG_ACCEPT: {
    struct sft_msg_accept m;
    rv = sft_msg_accept_decode(fr->body, fr->body_len, &m);
    if (!rv)
      rv = on_accept(s, &m);
    break;
  }
  case SFT_MSG_ACK: {
    static struct sft_ack_range r[SFT_MAX_ACK_RANGES];
    struct sft_msg_ack m;
    struct sfile *f;
    rv = sft_msg_ack_decode(fr->body, fr->body_len, &m, r, SFT_MAX_ACK_RANGES);
    if (rv)
      return rv;
    f = file_by_id(s, m.file_id);
    if (!f)
      return SFT_ERR_PEER;
    /* The receiver sends every ACK on every link: a late copy may find the
     * machine already ended (COMPLETED before the pump reaps it). */
    if (f->st == SF_ACTIVE &&
        !sft_xfer_state_terminal(sft_xsend_state(f->xs))) {
      _Static_assert(sizeof(struct sft_ack_range) ==
                         sizeof(struct sft_xfer_range),
                     "range layouts");
      rv = sft_xsend_on_ack(f->xs, now(), (const struct sft_xfer_range *)r,
                            m.nranges);
      if (rv)
        return SFT_ERR_PEER;
    }
    break;
  }
  case SFT_MSG_NEED: {
    struct sft_msg_need m;
    struct sfile *f;
    rv = sft_msg_need_decode(fr->body, fr->body_len, &m);
    if (rv)
      return rv;
    f = file_by_id(s, m.file_id);
    if (!f)
      return SFT_ERR_PEER;
    if (f->st == SF_ACTIVE &&
        sft_xsend_on_need_stripe(f->xs, now(), m.stripe, m.count) ==
            SFT_ERR_RANGE)
      return SFT_ERR_PEER;
    break;
  }
  case SFT_MSG_COMPLETE: {
    struct sft_msg_complete m;
    struct sfile *f;
    rv = sft_msg_complete_decode(fr->body, fr->body_len, &m);
    if (rv)
      return rv;
    f = file_by_id(s, m.file_id);
    if (!f)
      return SFT_ERR_PEER;
    if (f->st == SF_ACTIVE && !s->drop_echo) {
      rv = sft_xsend_on_complete_confirm(f->xs, now(), m.root);
      if (rv == SFT_ERR_DIGEST)
        file_end(f, SF_FAILED, rv, "the receiver computed a different root");
      rv = 0;
    }
    break;
  }
  case SFT_MSG_CANCEL: {
    struct sft_msg_cancel m;
    rv = sft_msg_cancel_decode(fr->body, fr->body_len, &m);
    if (rv)
      return rv;
    for (size_t i = 0; i < s->next_offer; i++) {
      struct sfile *f = &s->files[i];
      if (m.file_id != SFT_FILE_ID_ALL && m.file_id != f->id)
        continue;
      if (f->st == SF_ACTIVE || f->st == SF_OFFERED) {
        f->refused = 1;
        file_end(f, SF_FAILED, reason_err(m.reason), reason_text(m.reason));
      }
    }
    break;
  }
  case SFT_MSG_ERROR: {
    struct sft_msg_error m;
    char text[SFT_MAX_ERROR_TEXT * 4 + 1];
    rv = sft_msg_error_decode(fr->body, fr->body_len, &m);
    if (rv)
      return rv;
    sft_name_escape(m.text, m.text_len, text, sizeof(text));
    finish(s, SFT_ERR_PEER, "the receiver reported an error: %s", text);
    break;
  }
  default:
    /* Unknown or unexpected types from a v1 peer are a protocol error. */
    return SFT_ERR_PEER;
  }
  return rv;
}

/* ---- transport callbacks ----------------------------------------------- */

/* The link of |c|, or NULL for an abandoned connection (QUIC attempt given
 * up for TCP, or a link already reset). */
static struct slink *link_of(sftq_conn *c) {
  struct slink *l = XP(conn_user, c);
  return l && (l->c == c || (c && l->qwait == c)) ? l : NULL;
}

/* The link goes on with the QUIC attempt |q| alone (no TCP+TLS). */
static void keep_quic(struct slink *l, sftq_conn *q) {
  l->c = q;
  l->qwait = NULL;
  l->tcp = 0;
  l->s->res->fell_back = 0;
}

/* Closes |c| and ignores its callbacks from now on. */
static void conn_abandon(sftq_conn *c) {
  if (!c)
    return;
  XP(conn_set_user, c, NULL);
  XPV(conn_close, c, 0);
}

/* The fallback race is decided: |winner| (the link's TCP+TLS connection or
 * its waiting QUIC attempt) carries the link, the other is abandoned. */
static void race_won(struct slink *l, sftq_conn *winner) {
  if (!l->qwait)
    return;
  if (winner == l->qwait) {
    conn_abandon(l->c);
    keep_quic(l, winner);
  } else {
    conn_abandon(l->qwait);
    l->qwait = NULL;
  }
}

int send_cb_verify(sftq_conn *c, const uint8_t fp[SFTQ_FP_LEN]) {
  struct slink *l = link_of(c);
  struct sender *s;
  char text[SFTD_FP_TEXT_MAX];
  if (!l)
    return -1;
  s = l->s;
  sftd_fp_format(fp, text);
  if (s->fp_seen) {
    /* Every other connection (another path, a reconnect) must reach the
     * receiver the first verified connection reached. */
    char name[SFTD_PATH_ADDR_MAX];
    if (strcmp(text, s->res->peer_fp_text) == 0)
      return 0;
    path_label(&s->tg[l->tgt], name, sizeof(name));
    finish(s, SFT_ERR_AUTH,
           "the receiver at %s presents %s, not %s as the session's first "
           "connection verified: refusing to continue",
           name, text, s->res->peer_fp_text);
    return -1;
  }
  memcpy(s->res->peer_fp_text, text, sizeof(text));
  if (s->o->peer_fp) {
    if (memcmp(fp, s->o->peer_fp, SFTQ_FP_LEN) == 0) {
      s->fp_seen = 1;
      return 0;
    }
    {
      char want[SFTD_FP_TEXT_MAX];
      sftd_fp_format(s->o->peer_fp, want);
      finish(s, SFT_ERR_AUTH,
             "the receiver at %s is %s, not the --peer-id %s you gave: "
             "refusing to send",
             s->host, s->res->peer_fp_text, want);
    }
    return -1;
  }
  {
    int rv = sftd_node_check_known(s->o->node, s->host, s->o->port, fp,
                                   &s->tofu_new);
    if (rv == SFT_ERR_AUTH) {
      finish(
          s, SFT_ERR_AUTH,
          "\n@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
          "@  WARNING: THE RECEIVER'S IDENTITY HAS CHANGED!        @\n"
          "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@\n"
          "%s:%u now presents %s,\nnot the identity recorded in known_peers.\n"
          "Someone could be intercepting the transfer, or the receiver "
          "was reinstalled.\nNothing was sent. If the change is expected, "
          "remove the line for %s:%u from\n%s/known_peers or pass "
          "--peer-id %s.",
          s->host, s->o->port, s->res->peer_fp_text, s->host, s->o->port,
          s->o->node->data_dir, s->res->peer_fp_text);
      return -1;
    }
    if (rv) {
      finish(s, rv, "cannot read %s/known_peers: %s", s->o->node->data_dir,
             sft_strerror(rv));
      return -1;
    }
  }
  s->fp_seen = 1;
  return 0;
}

/* The handshake with the receiver is complete on our side (its identity is
 * verified): record a new receiver (TOFU) and say so, once per session. */
static void link_contact(struct slink *l, sftq_conn *c) {
  struct sender *s = l->s;
  if (s->tofu_new) {
    uint8_t fp[SFTQ_FP_LEN];
    struct sftd_event pe = {.type = SFTD_EV_PEER_NEW,
                            .text = s->res->peer_fp_text};
    s->tofu_new = 0;
    if (XP(conn_peer_fp, c, fp) == 0 &&
        sftd_node_add_known(s->o->node, s->host, s->o->port, fp) == 0)
      emit(s, &pe);
  }
  if (!s->ever_up && !s->announced) {
    struct sftd_event ev = {.type = SFTD_EV_CONNECTED,
                            .text = s->res->peer_fp_text};
    s->announced = 1;
    sft_hex(s->session_id, SFT_SESSION_ID_LEN, ev.session_hex);
    emit(s, &ev);
  }
}

/* Opens link |l|'s control stream on |c| and sends HELLO; on the session's
 * first contact, the first OFFERs follow at once on the same stream instead
 * of a round trip later (the receiver reads HELLO first; if it cannot speak
 * our version it closes before reading them, docs/internals/protocol.md).
 * Does nothing if the stream is open already. */
static void link_hello(struct slink *l, sftq_conn *c) {
  struct sender *s = l->s;
  struct sft_msg_hello h;
  int rv;
  if (l->ctl.c == c)
    return;
  if (l->ctl.c) {
    /* the stream was opened on this link's other attempt (fallback race):
     * what went on it goes again on this one */
    link_drop(l, l->ctl.c);
    l->fin_sent = 0;
  }
  rv = XP(stream_open_bidi, c, &l->ctl.sid);
  if (rv) {
    XPV(conn_close, c, (uint64_t)-rv);
    return;
  }
  l->ctl.c = c;
  memset(&h, 0, sizeof(h));
  h.version_current = SFT_PROTO_VERSION_CURRENT;
  h.version_min = SFT_PROTO_VERSION_MIN;
  memcpy(h.session_id, s->session_id, SFT_SESSION_ID_LEN);
  h.role = SFT_ROLE_SENDER;
  /* Every connection but the session's very first joins it. */
  h.flags = (s->ever_up || links_live(s) > 1 || s->o->session_id)
                ? SFT_HELLO_F_ATTACH
                : 0;
  h.agent_len = (size_t)snprintf(h.agent, sizeof(h.agent), "sft/0.1");
  XP(stream_set_urgency, c, l->ctl.sid, 0);
  rv = CTRL_SEND(&l->ctl, sft_msg_hello_encode, &h);
  if (rv) {
    XPV(conn_close, c, (uint64_t)-rv);
    return;
  }
  if (s->ever_up || s->ctl || s->closing)
    return;
  /* First contact: this link carries the control messages. Offers made on
   * a link that died before the receiver answered are made again here. */
  s->ctl = l;
  if (!s->up_at)
    s->up_at = now();
  if (offer_again(s, 0) == 0)
    offer_more(s);
}

/* QUIC: our side of the handshake is complete (sftq's `early`): HELLO and
 * the first OFFERs go out now, a round trip before `connected`. Not while
 * the TCP fallback races this attempt: the winner is not known yet. */
void send_cb_early(sftq_conn *c) {
  struct slink *l = link_of(c);
  if (!l || l->qwait || l->c != c || l->s->closing)
    return;
  link_contact(l, c);
  link_hello(l, c);
  pump(l->s); /* the first files' chunks go now */
}

void send_cb_connected(sftq_conn *c) {
  struct slink *l = link_of(c);
  if (!l)
    return;
  race_won(l, c);
  l->fallback_at = 0;
  l->connected = 1;
  link_contact(l, c);
  link_hello(l, c);
}

void send_cb_stream_data(sftq_conn *c, int64_t sid, const uint8_t *data,
                         size_t len, int fin) {
  struct slink *l = link_of(c);
  struct sender *s;
  int rv;
  if (!l)
    return;
  s = l->s;
  if (sid != l->ctl.sid) {
    /* The receiver never opens streams towards us in sft/1. */
    XP(stream_cancel, c, sid, (uint64_t)-SFT_ERR_PEER);
    return;
  }
  rv = ctrl_feed(&l->ctl, data, len, on_frame, l);
  if (rv && !s->closing)
    finish(s, SFT_ERR_PEER, "the receiver sent an invalid control message (%s)",
           sft_strerror(rv));
  pump(s); /* (reaps a file whose echo came with the receiver's FIN) */
  if (fin && !s->closing && s->finished < s->nfiles && !s->drop_echo)
    XPV(conn_close, c, 0); /* reconnects unless the receiver said why */
}

void send_cb_stream_close(sftq_conn *c, int64_t sid, uint64_t app_error) {
  struct slink *l = link_of(c);
  struct sjob *j;
  (void)app_error;
  if (l && sid == l->ctl.sid && l->s->ending_at && l == l->s->ctl) {
    finish(l->s, 0, NULL); /* the receiver has our FIN */
    return;
  }
  if (!l || sid == l->ctl.sid)
    return;
  j = XP(stream_user, c, sid);
  if (!j)
    return;
  XP(stream_set_user, c, sid, NULL);
  l->progress_at = now();
  if (app_error && !j->cancelled) {
    job_lost(j); /* reset by the receiver: it did not take the chunk */
  } else if (!app_error && !j->parity) {
    if (l->s->o->m_chunk_duration)
      sft_metric_observe(l->s->o->m_chunk_duration,
                         (double)(now() - j->sent_at) / 1e9);
    if (l->s->o->m_chunk_size)
      sft_metric_observe(l->s->o->m_chunk_size, (double)j->len);
  }
  job_free(l->s, j);
  flush_sendq(l->s); /* its link has room again */
  pump(l->s);
}

void send_cb_writable(sftq_conn *c) {
  struct slink *l = link_of(c);
  if (!l)
    return;
  flush_sendq(l->s);
  pump(l->s);
}

/* The first contact timed out (no handshake within its 10 s): it gets one
 * more attempt, a fresh connection, if --retries allows any. A handshake's
 * PTOs back off from 300 ms, so one attempt sends its Initial only 6 times
 * (0, 0.3, 0.9, 2.1, 4.5 and 9.3 s): at 30 % loss in bursts each way 1
 * first contact in 50 got no answer in that time (bench/sessions.sh); a
 * second schedule makes that rare. A peer that stays silent is reported
 * after about 21 s instead of 10; a refused one at once, as before. */
static int first_contact_again(struct slink *l, int reason) {
  return reason == SFT_ERR_TIMEOUT && l->attempts == 0 && l->s->max_retries > 0;
}

void send_cb_closed(sftq_conn *c, int reason, uint64_t app_error) {
  struct slink *l = link_of(c);
  struct sender *s;
  char why[300];
  if (!l)
    return; /* an abandoned attempt */
  s = l->s;
  if (c == l->qwait) { /* QUIC lost the race by failing: TCP goes on */
    l->qwait = NULL;
    return;
  }
  if (l->qwait && !l->connected) {
    /* TCP+TLS failed (nothing listens on TCP, or it is blocked too): the
     * QUIC attempt goes on alone until its own handshake timeout. */
    keep_quic(l, l->qwait);
    return;
  }
  if (!l->connected && l->fallback_at && !s->closing &&
      sftq_conn_kind(c) == SFTQ_KIND_QUIC && reason != SFT_ERR_AUTH) {
    /* QUIC failed before its handshake completed (e.g. ICMP port
     * unreachable): fall back now instead of waiting. */
    l->c = NULL;
    fall_back(l, reason == SFT_ERR_REFUSED
                     ? "the UDP port refused QUIC (nothing listens on it)"
                     : "QUIC connection failed");
    return;
  }
  switch (reason) {
  case SFT_ERR_AUTH:
    snprintf(why, sizeof(why),
             "the receiver refused this node's identity %s: on the receiver, "
             "run `sft trust %s` (or start it with --accept-any)",
             s->o->node->fp_text, s->o->node->fp_text);
    break;
  case SFT_ERR_REFUSED:
    snprintf(why, sizeof(why),
             "%s:%u refused the connection: nothing listens on %s port %u "
             "(is `sft recv` running there?)",
             s->tg[l->tgt].numeric, s->tg[l->tgt].port,
             sftq_conn_kind(c) == SFTQ_KIND_QUIC ? "UDP" : "TCP",
             s->tg[l->tgt].port);
    break;
  case SFT_ERR_TIMEOUT:
    snprintf(why, sizeof(why),
             "no answer from %s:%u (is `sft recv` running there, and is UDP "
             "port %u reachable?)",
             s->tg[l->tgt].numeric, s->tg[l->tgt].port, s->tg[l->tgt].port);
    break;
  case SFT_ERR_CLOSED:
    snprintf(why, sizeof(why),
             "the receiver closed the connection (code %llu) before the "
             "transfer finished",
             (unsigned long long)app_error);
    break;
  default:
    snprintf(why, sizeof(why), "the connection to %s:%u was lost: %s",
             s->tg[l->tgt].numeric, s->tg[l->tgt].port,
             sft_strerror(reason ? reason : SFT_ERR_CLOSED));
  }
  if (!s->ever_up && !s->closing && reason != SFT_ERR_AUTH &&
      links_live(s) > 1) {
    /* Another path's first contact is under way: this one is skipped for
     * now and tried again once a link is up. */
    char text[400];
    snprintf(text, sizeof(text), "path %s:%u skipped: %s",
             s->tg[l->tgt].numeric, s->tg[l->tgt].port, why);
    warn(s, text);
    link_reset(l);
    if (s->ctl == l)
      s->ctl = NULL; /* its offers are made again on the next link */
    sft_path_set_failed(&s->pt, l->idx, now());
    l->reopen_at = UINT64_MAX;
    return;
  }
  if (!s->ever_up && !s->o->persistent && !s->closing &&
      first_contact_again(l, reason)) {
    char text[400];
    snprintf(text, sizeof(text), "%s: trying once more", why);
    warn(s, text);
    link_lost(l, reason, app_error, why); /* reopens after the backoff */
    l->tcp = 0; /* QUIC first again, with its TCP fallback */
    pump(s);
    return;
  }
  if (!s->ever_up && !s->o->persistent && !s->closing) {
    /* The first connection failed (twice if it timed out): say so now
     * rather than retry. */
    link_lost(l, reason, app_error, why);
    finish(s, reason ? reason : SFT_ERR_CLOSED, "%s", why);
    if (!links_live(s))
      complete(s);
    return;
  }
  if (reason == SFT_ERR_CLOSED && app_error == SFT_PROTO_CLOSE_DONE)
    peer_done(s);
  if (s->finished == s->nfiles && !s->closing)
    finish(s, 0, NULL);
  link_lost(l, reason, app_error, why);
  if (s->closing && !links_live(s))
    complete(s);
  else
    pump(s);
}

/* Re-evaluates the tuning from the last 100 ms (sft/adapt.h): parity per
 * stripe, connections, chunk size for files not offered yet.
 *
 * Parity: QUIC already repairs packet loss inside each chunk stream, so
 * parity is sized from CHUNK loss (streams lost with a link, reset, or
 * stalled), plus one shard per stripe when the long-run packet loss is
 * very high (>= PARITY_PKT_LOSS): there a stripe's last chunks are often
 * late, and a rebuild completes it without waiting (the late copy is then
 * cancelled). Below that, congestion control fills the link and every
 * parity byte is a data byte less: at 5-10 % loss on a 100 Mbit/s link the
 * old 5 % threshold cost 10-12 % of the goodput (bench/lossy.sh,
 * docs/internals/adapt.md). */
static void adapt_tick(struct sender *s, uint64_t sent, uint64_t lost,
                       uint64_t srtt_ns, uint64_t min_rtt_ns) {
  struct sft_adapt_sample smp = {.srtt_ns = srtt_ns, .min_rtt_ns = min_rtt_ns};
  struct sft_adapt_decision d;
  uint64_t ds = sent - s->tick_sent, dl = lost - s->tick_lost;
  uint64_t cs = s->res->chunks_sent - s->tick_csent;
  uint64_t cl = s->chunks_lost - s->tick_clost;
  uint32_t k = s->adapt.cfg.k, m = s->adapt.cfg.m, pro;
  double ll;
  int pkt_fec = 0; /* a link's packet-FEC shim repairs its packet loss */
  if (sent < s->tick_sent || lost < s->tick_lost)
    ds = dl = 0; /* a link was replaced: counters restarted */
  s->tick_sent = sent;
  s->tick_lost = lost;
  s->tick_csent = s->res->chunks_sent;
  s->tick_clost = s->chunks_lost;
  if (cs)
    s->chunk_loss = 0.8 * s->chunk_loss + 0.2 * ((double)cl / (double)cs);
  if (!ds || !s->ever_up)
    return;
  smp.loss_ppm = (uint32_t)(dl * 1000000 / ds);
  {
    /* The delivery rate means something only once data has flowed: before
     * that it measures the handshake and control messages. */
    uint64_t rate = 0, carried = 0;
    for (unsigned i = 0; i < s->nlinks; i++) {
      sftq_stats st;
      struct slink *l = &s->links[i];
      if (l->c && l->hello_ok && XP(conn_stats, l->c, &st) == 0) {
        rate += st.delivery_rate;
        carried += st.stream_bytes_sent;
        if (st.fec_active)
          pkt_fec = 1;
      }
    }
    if (carried >= RATE_MIN_BYTES)
      smp.delivery_rate = rate;
  }
  if (s->o->bwlimit_bps)
    smp.link_rate = s->o->bwlimit_bps / 8;
  if (sft_adapt_update(&s->adapt, &smp, now()) < 0)
    return;
  if (!s->rate_known && (smp.delivery_rate || smp.link_rate)) {
    s->rate_known = 1;
    offer_more(s); /* the files held back for a measured chunk size */
  }
  sft_adapt_get(&s->adapt, &d);
  pro = m ? sft_adapt_parity(k, m, (uint32_t)(s->chunk_loss * 1e6)) : 0;
  /* lib/adapt's long-run packet loss: BBR's start-up overshoot into a
   * drop-tail queue is not a lossy link */
  if (m && pro < 1 && !pkt_fec && sft_adapt_long_loss(&s->adapt, &ll) &&
      ll >= PARITY_PKT_LOSS)
    pro = 1;
  if (pro > m)
    pro = m;
  if (pro != s->m_pro) {
    s->m_pro = pro;
    for (size_t i = 0; i < s->next_offer; i++)
      if (s->files[i].st == SF_ACTIVE && s->files[i].man.stripe_m)
        sft_xsend_set_parity(s->files[i].xs, pro);
  }
  /* More connections when RTT x loss is high: each backs off alone. Not
   * with several paths: those are several connections already, and an
   * extra one would be a second "path" to the same address. */
  if (!s->o->conns && s->ntg == 1 && d.conns > s->nlinks && !pkt_fec &&
      d.conns <= SFTD_LINKS_MAX) {
    for (unsigned i = s->nlinks; i < d.conns; i++) {
      s->links[i].tcp = s->links[0].tcp;
      s->links[i].reopen_at = now();
    }
    /* (links past the paths wrap round them: tgt = idx % ntg) */
    s->nlinks = d.conns;
    pump(s);
  }
}

static void progress_tick(uv_timer_t *t) {
  struct sender *s = t->data;
  struct sftd_event ev = {.type = SFTD_EV_PROGRESS};
  sftq_stats st;
  uint64_t sent = 0, lost = 0, min_rtt = 0;
  for (size_t i = 0; i < s->nfiles; i++) {
    struct sfile *f = &s->files[i];
    ev.p.bytes_total += f->man.size;
    ev.p.chunks_total += f->man.chunk_count;
    if (f->st == SF_DONE) {
      ev.p.bytes_done += f->man.size;
      ev.p.chunks_done += f->man.chunk_count;
      ev.p.files_done++;
    } else if (f->xs) {
      struct sft_xsend_stats xs;
      sft_xsend_stats(f->xs, &xs);
      ev.p.bytes_done += xs.bytes_acked;
      ev.p.chunks_done += xs.chunks_acked;
    }
  }
  ev.p.files_total = s->nfiles;
  for (struct sjob *j = s->sq_head; j; j = j->next)
    ev.p.chunks_queued++;
  ev.p.chunks_resent = s->res->chunks_resent;
  ev.p.links_up = links_up(s);
  ev.p.reconnects = s->res->reconnects;
  ev.p.loss = -1;
  for (unsigned i = 0; i < s->nlinks; i++) {
    struct slink *l = &s->links[i];
    struct sftd_path_stat *ps = &ev.p.paths[ev.p.npaths++];
    struct sft_path_info pi;
    const struct target *tg = &s->tg[l->tgt];
    path_label(tg, ps->peer, sizeof(ps->peer));
    ps->loss = -1;
    ps->bytes_sent = l->bytes_sent;
    ps->up = l->c && l->hello_ok;
    if (l->c && l->connected && XP(conn_stats, l->c, &st) == 0) {
      if (l->hello_ok)
        path_feed(s, l, &st);
      /* socket buffers follow the bandwidth-delay product */
      if (sftq_conn_kind(l->c) == SFTQ_KIND_QUIC)
        sftq_conn_tune_buffers(l->c, now(), NULL);
      if (ev.p.rtt_ms == 0 || (double)st.srtt_ns / 1e6 < ev.p.rtt_ms)
        ev.p.rtt_ms = (double)st.srtt_ns / 1e6;
      if (st.min_rtt_ns && (!min_rtt || st.min_rtt_ns < min_rtt))
        min_rtt = st.min_rtt_ns;
      sent += st.pkts_sent;
      lost += st.pkts_lost;
      ps->rtt_ms = (double)st.srtt_ns / 1e6;
      ps->rate_bps = 8 * st.delivery_rate;
      /* packet FEC: parity packets, counted by delta (link_reset zeroes
       * fec_seen for a new connection) */
      s->res->pkt_parity_sent += st.fec_parity_sent >= l->fec_seen
                                     ? st.fec_parity_sent - l->fec_seen
                                     : st.fec_parity_sent;
      l->fec_seen = st.fec_parity_sent;
    }
    if (sft_path_get(&s->pt, l->idx, &pi) == 0) {
      /* Not up: failed, except while its very first connection is being
       * made (no "failed" flash at the start of a transfer). */
      ps->state = ps->up || (l->c && !l->was_up && !l->attempts)
                      ? pi.status
                      : SFTD_PATH_FAILED;
      ps->changes = pi.changes;
      if (pi.loss_judged)
        ps->loss = (double)pi.loss_ppm / 1e6;
    } else {
      ps->state = SFTD_PATH_FAILED;
    }
  }
  if (sent)
    ev.p.loss = (double)lost / (double)sent;
  ev.p.parity_sent = s->res->parity_sent;
  ev.p.pkt_parity_sent = s->res->pkt_parity_sent;
  adapt_tick(s, sent, lost, (uint64_t)(ev.p.rtt_ms * 1e6), min_rtt);
  if (s->nlinks > 1 && s->ctl && !s->closing)
    flush_sendq(s); /* links drained since: refill their shallow queues */
  if (!s->rate_known && s->ctl && !s->closing)
    offer_more(s); /* held back until a rate sample, or RATE_WAIT_NS */
  emit(s, &ev);
}

/* ---- entry ----------------------------------------------------------------
 */

/* --via: every peer address x every local address of its family, each
 * peer's first path before any peer's second one, at most SFTD_PEERS_MAX
 * (the rest are dropped with a warning). 0, or an error with |why| set:
 * SFT_ERR_INVAL (a bad list: sftd_via_parse's message), SFT_ERR_NOT_FOUND
 * (no local address of a peer's family). */
static int via_expand(struct sender *s, const char *via, char *why,
                      size_t cap) {
  struct sftd_local ifs[64], v[SFTD_VIA_MAX];
  struct target peers[SFTD_PEERS_MAX];
  char vtext[SFTD_VIA_MAX][sizeof(s->tg[0].via)];
  size_t nifs = 0, nv = 0, dropped = 0;
  unsigned np = s->ntg;
  char msg[300];
  int rv;
  if (sftd_ifaddrs_list(ifs, sizeof(ifs) / sizeof(ifs[0]), &nifs))
    nifs = 0; /* loopback vias still parse */
  rv = sftd_via_parse(via, strlen(via), ifs, nifs, v, SFTD_VIA_MAX, &nv, msg,
                      sizeof(msg));
  if (rv) {
    snprintf(why, cap, "bad --via list: %s", msg);
    return rv;
  }
  for (size_t i = 0; i < nv; i++) {
    char host[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
    if (getnameinfo((const struct sockaddr *)&v[i].addr, v[i].addrlen, host,
                    sizeof(host), NULL, 0, NI_NUMERICHOST)) {
      snprintf(why, cap, "bad --via list: entry %zu has no numeric form",
               i + 1);
      return SFT_ERR_INVAL;
    }
    snprintf(vtext[i], sizeof(vtext[i]), "%s", host);
  }
  memcpy(peers, s->tg, sizeof(peers));
  s->ntg = 0;
  for (size_t round = 0; round < nv; round++) {
    for (unsigned p = 0; p < np; p++) {
      /* the round-th local address of this peer's family */
      int v6 = strchr(peers[p].numeric, ':') != NULL;
      size_t k = 0, i;
      for (i = 0; i < nv; i++) {
        if ((v[i].addr.ss_family == AF_INET6) != v6)
          continue;
        if (k++ == round)
          break;
      }
      if (i == nv)
        continue;
      if (s->ntg == SFTD_PEERS_MAX) {
        dropped++;
        continue;
      }
      s->tg[s->ntg] = peers[p];
      snprintf(s->tg[s->ntg].via, sizeof(s->tg[s->ntg].via), "%s", vtext[i]);
      s->ntg++;
    }
  }
  if (!s->ntg) {
    snprintf(why, cap,
             "--via %s: no local address of the receiver's address family",
             via);
    return SFT_ERR_NOT_FOUND;
  }
  if (dropped) {
    char w[200];
    snprintf(w, sizeof(w),
             "--via: %zu path(s) past the first %u not used", dropped,
             (unsigned)SFTD_PEERS_MAX);
    warn(s, w);
  }
  return 0;
}

static int resolve(const char *host, uint16_t port, char *out, size_t cap) {
  struct addrinfo hints = {0}, *ai = NULL;
  char sport[8];
  int rv;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_ADDRCONFIG;
  snprintf(sport, sizeof(sport), "%u", port);
  rv = getaddrinfo(host, sport, &hints, &ai);
  if (rv || !ai)
    return SFT_ERR_NOT_FOUND;
  rv = getnameinfo(ai->ai_addr, ai->ai_addrlen, out, (socklen_t)cap, NULL, 0,
                   NI_NUMERICHOST);
  freeaddrinfo(ai);
  return rv ? SFT_ERR_NOT_FOUND : 0;
}

static void free_now(struct sender *s) {
  for (size_t i = 0; i < s->nfiles; i++) {
    if (s->files[i].fd >= 0)
      close(s->files[i].fd);
    sft_xsend_del(s->files[i].xs);
  }
  while (s->sq_head) {
    struct sjob *j = s->sq_head;
    s->sq_head = j->next;
    job_free(s, j);
  }
  free(s->files);
  free(s->plost);
  free(s->plost_file);
  walk_free(&s->wl);
  for (unsigned i = 0; i < SFTD_LINKS_MAX; i++)
    ctrl_free(&s->links[i].ctl);
  free(s);
}

static void timer_closed(uv_handle_t *h) {
  struct sender *s = h->data;
  if (--s->handles_open == 0)
    free_now(s);
}

/* Frees once released, no job is running and every connection is gone. */
static void try_free(struct sender *s) {
  if (!s->released || s->work || s->handles_open != 2 || links_live(s) ||
      uv_is_closing((uv_handle_t *)&s->timer))
    return; /* (called again before the close callbacks ran: once only) */
  uv_close((uv_handle_t *)&s->timer, timer_closed);
  uv_close((uv_handle_t *)&s->ptimer, timer_closed);
}

void send_session_free(struct sender *s) {
  if (!s)
    return;
  s->released = 1;
  if (links_live(s)) {
    /* Released before the end: close; freed when the connections are. */
    s->done = NULL;
    finish(s, SFT_ERR_CANCELLED, "cancelled");
    return;
  }
  try_free(s);
}

/* Pause: besides stopping new reads and streams, reset the streams of the
 * chunks still on the wire so that no chunk byte flows while paused; those
 * chunks are sent again on resume. */
int send_session_pause(struct sender *s) {
  if (s->closing || s->paused)
    return SFT_ERR_STATE;
  s->paused = 1;
  share_forget(s);
  for (size_t i = 0; i < s->next_offer; i++)
    if (s->files[i].st == SF_ACTIVE)
      sft_xsend_pause(s->files[i].xs, now());
  for (unsigned i = 0; i < s->nlinks; i++) {
    struct slink *l = &s->links[i];
    for (struct sjob *j = l->wire; j; j = j->wnext) {
      if (j->cancelled)
        continue;
      if (s->nplost == s->cap_plost) {
        size_t cap = s->cap_plost ? 2 * s->cap_plost : 64;
        struct sft_xfer_range *v = realloc(s->plost, cap * sizeof(*v));
        uint64_t *w = v ? realloc(s->plost_file, cap * sizeof(*w)) : NULL;
        if (v)
          s->plost = v;
        if (!w)
          continue; /* not reset: it drains, as before */
        s->plost_file = w;
        s->cap_plost = cap;
      }
      s->plost[s->nplost].first = s->plost[s->nplost].last = j->index;
      s->plost_file[s->nplost++] = j->f->id;
      j->cancelled = 1;
      XP(stream_cancel, l->c, j->sid, (uint64_t)-SFT_ERR_CANCELLED);
    }
  }
  return 0;
}

int send_session_resume(struct sender *s) {
  if (s->closing || !s->paused)
    return SFT_ERR_STATE;
  s->paused = 0;
  for (size_t i = 0; i < s->next_offer; i++)
    if (s->files[i].st == SF_ACTIVE)
      sft_xsend_resume(s->files[i].xs, now());
  /* The chunks reset by the pause are due now (acked ones are ignored). */
  for (size_t i = 0; i < s->nplost; i++) {
    struct sfile *f = file_by_id(s, s->plost_file[i]);
    if (f && f->st == SF_ACTIVE)
      sft_xsend_on_need(f->xs, now(), &s->plost[i], 1);
  }
  s->nplost = 0;
  flush_sendq(s);
  pump(s);
  return 0;
}

void send_session_cancel(struct sender *s) {
  finish(s, SFT_ERR_CANCELLED, "cancelled");
}

int send_session_start(uv_loop_t *loop, sftq_ctx *q, sftt_ctx *t,
                       const struct sftd_send_opts *o, struct sftd_result *res,
                       send_done_fn done, void *ud, struct sender **out) {
  struct sender *s;
  int rv;

  *out = NULL;
  memset(res, 0, sizeof(*res));
  s = calloc(1, sizeof(*s));
  if (!s) {
    res->err = SFT_ERR_NOMEM;
    snprintf(res->why, sizeof(res->why), "out of memory");
    return res->err;
  }
  s->loop = loop;
  s->q = q;
  s->t = t;
  s->o = o;
  /* Test knob: read no COMPLETE echo and ignore the receiver's FIN, as if
   * the end of its control stream had been lost (the session must then
   * still end well: SFT_PROTO_CLOSE_DONE). A FIN cannot come before the
   * echoes it follows, so the FIN is ignored too: without that the sender
   * closed on it first (the end of a session with files unfinished). */
  s->drop_echo = getenv("SFT_TEST_DROP_ECHO") != NULL;
  s->res = res;
  s->done = done;
  s->done_ud = ud;
  s->t0 = now();
  s->nlinks = o->conns ? o->conns : 1;
  if (s->nlinks > SFTD_LINKS_MAX)
    s->nlinks = SFTD_LINKS_MAX;
  s->max_retries = o->retries ? o->retries : SFTD_RETRIES_DEFAULT;
  for (unsigned i = 0; i < SFTD_LINKS_MAX; i++) {
    s->links[i].s = s;
    s->links[i].idx = i;
    ctrl_init(&s->links[i].ctl);
  }
  sft_rate_init(&s->rate, o->bwlimit_bps, 0, s->t0);
  {
    struct sft_adapt_config ac;
    sft_adapt_config_default(&ac);
    ac.k = o->fec_k ? o->fec_k : 10;
    ac.m = o->fec_off ? 0 : o->fec_k ? o->fec_m : 3;
    ac.initial.parity = 0;
    ac.initial.chunk_size =
        o->chunk_size ? o->chunk_size : SFT_CHUNK_SIZE_DEFAULT;
    ac.max_conns = 4;
    if (sft_adapt_init(&s->adapt, &ac)) {
      ac.k = 10;
      ac.m = 3;
      sft_adapt_init(&s->adapt, &ac);
    }
  }
  sft_path_init(&s->pt, NULL);
  for (unsigned i = 0; i < SFTD_LINKS_MAX; i++) {
    unsigned id; /* ids 0.. = link indices (nlinks may grow) */
    sft_path_add(&s->pt, s->t0, &id);
  }
  snprintf(s->host, sizeof(s->host), "%s", o->host);
  uv_timer_init(loop, &s->timer);
  uv_timer_init(loop, &s->ptimer);
  s->timer.data = s->ptimer.data = s;
  s->handles_open = 2;

  for (size_t i = 0; i < o->npaths; i++) {
    const char *bad = NULL;
    rv = walk_add(&s->wl, o->paths[i], NULL, NULL, &bad);
    if (rv) {
      res->err = rv;
      snprintf(res->why, sizeof(res->why), "%s: %s", bad ? bad : o->paths[i],
               rv == SFT_ERR_NOT_FOUND     ? "no such file or directory"
               : rv == SFT_ERR_UNSUPPORTED ? "not a regular file or directory"
                                           : sft_strerror(rv));
      goto fail;
    }
  }
  if (s->wl.skipped) {
    char w[128];
    snprintf(w, sizeof(w), "%zu symbolic link(s) or special file(s) skipped",
             s->wl.skipped);
    warn(s, w);
  }
  s->nfiles = s->wl.n;
  s->files = calloc(s->nfiles ? s->nfiles : 1, sizeof(*s->files));
  if (!s->files) {
    res->err = SFT_ERR_NOMEM;
    snprintf(res->why, sizeof(res->why), "out of memory");
    goto fail;
  }
  for (size_t i = 0; i < s->nfiles; i++) {
    struct sfile *f = &s->files[i];
    f->s = s;
    f->e = &s->wl.v[i];
    f->id = i;
    f->fd = -1;
    rv = make_manifest(s, f);
    if (rv) {
      res->err = rv;
      snprintf(res->why, sizeof(res->why), "%s: cannot describe the file: %s",
               f->e->path, sft_strerror(rv));
      goto fail;
    }
  }
  if (o->session_id) {
    memcpy(s->session_id, o->session_id, SFT_SESSION_ID_LEN);
  } else if (getrandom(s->session_id, sizeof(s->session_id), 0) !=
             (ssize_t)sizeof(s->session_id)) {
    res->err = SFT_ERR_IO;
    snprintf(res->why, sizeof(res->why), "no randomness for the session id");
    goto fail;
  }
  memcpy(res->session_id, s->session_id, SFT_SESSION_ID_LEN);
  rv = resolve(o->host, o->port, s->tg[0].numeric, sizeof(s->tg[0].numeric));
  if (rv) {
    res->err = rv;
    snprintf(res->why, sizeof(res->why),
             "cannot resolve the receiver's address '%s'", o->host);
    goto fail;
  }
  s->tg[0].port = o->port;
  s->ntg = 1;
  if (o->more_peers && *o->more_peers) {
    struct sftd_peer pv[SFTD_PEERS_MAX];
    size_t np = 0;
    char msg[300];
    rv = sftd_peerlist_parse(o->more_peers, strlen(o->more_peers), o->port, pv,
                             SFTD_PEERS_MAX - 1, &np, msg, sizeof(msg));
    if (rv) {
      res->err = rv;
      snprintf(res->why, sizeof(res->why), "bad peer list: %s", msg);
      goto fail;
    }
    for (size_t i = 0; i < np; i++) {
      struct target *tg = &s->tg[s->ntg];
      if (resolve(pv[i].host, pv[i].port, tg->numeric, sizeof(tg->numeric))) {
        char w[400];
        snprintf(w, sizeof(w), "path %s:%u skipped: cannot resolve it",
                 pv[i].host, pv[i].port);
        warn(s, w);
        continue;
      }
      tg->port = pv[i].port;
      s->ntg++;
    }
  }
  if (o->via && *o->via) {
    rv = via_expand(s, o->via, res->why, sizeof(res->why));
    if (rv) {
      res->err = rv;
      goto fail;
    }
  }
  if (s->nlinks < s->ntg)
    s->nlinks = s->ntg;
  for (unsigned i = 0; i < SFTD_LINKS_MAX; i++)
    s->links[i].tgt = i % s->ntg;
  /* Links not in use are Failed, so sft_path_pick never weighs them; a
   * link that comes up later (more connections) gets a fresh record. */
  for (unsigned i = s->nlinks; i < SFTD_LINKS_MAX; i++)
    sft_path_set_failed(&s->pt, i, s->t0);
  /* The first link alone: the others join once it has verified the
   * receiver (trust on first use happens once). */
  rv = link_open(s, &s->links[0]);
  if (rv) {
    s->links[0].c = NULL;
    res->err = rv;
    snprintf(res->why, sizeof(res->why), "cannot connect to %s:%u: %s", o->host,
             o->port, sft_strerror(rv));
    goto fail;
  }
  /* Every path at once (an unreachable one must not hold the others for
   * its handshake timeout; the first connection verified fixes the
   * receiver's identity for the rest: send_cb_verify). Extra connections
   * on the same paths wait for a link to be up. */
  for (unsigned i = 1; i < s->nlinks; i++) {
    struct slink *l = &s->links[i];
    l->reopen_at = UINT64_MAX; /* opened by link_up */
    if (i < s->ntg && link_open(s, l) != 0) {
      l->c = NULL;
      l->reopen_at = UINT64_MAX;
    }
  }
  if (s->links[0].fallback_at)
    uv_timer_start(&s->timer, on_timer, SFTD_FALLBACK_MS, 0);
  uv_timer_start(&s->ptimer, progress_tick, 100, 100);
  *out = s;
  return 0;

fail:
  s->done = NULL;
  s->released = 1;
  try_free(s);
  return res->err;
}

/* ---- one-shot `sft send` --------------------------------------------------
 */

static void oneshot_done(struct sender *s, void *ud) {
  struct engine *e = ud;
  (void)s;
  engine_stop(e);
  uv_stop(&e->loop);
}

static void oneshot_signal(uv_signal_t *h, int signum) {
  (void)signum;
  send_session_cancel(h->data);
}

int sftd_send(const struct sftd_send_opts *o, struct sftd_result *res) {
  struct engine e;
  struct sender *s = NULL;
  sftq_config cfg;
  int rv;

  memset(res, 0, sizeof(*res));
  engine_init(&e, NULL, oneshot_signal);
  memset(&cfg, 0, sizeof(cfg));
  cfg.handshake_timeout_ms = 10000;
  cfg.copy_limit = 32u << 20;
  cfg.pfec = engine_pfec(o->packet_fec);
  rv = engine_quic(&e, o->node, o->cc, &cfg, res);
  if (!rv)
    rv = send_session_start(&e.loop, e.q, e.t, o, res, oneshot_done, &e, &s);
  if (!rv) {
    e.sigint.data = e.sigterm.data = s;
    uv_run(&e.loop, UV_RUN_DEFAULT);
    /* Reads still on the thread pool (a session that ended early, e.g. a
     * refused identity, while the first chunks were being read) finish
     * first: the teardown below would close the session's timers under it
     * and it could never free itself. */
    while (s->work)
      uv_run(&e.loop, UV_RUN_ONCE);
    send_session_free(s);
  }
  engine_teardown(&e);
  return res->err;
}
