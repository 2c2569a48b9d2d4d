/*
 * Malicious-sender harness for the receiver engine (src/daemon/recv.c).
 *
 * Each test forks a child that runs sftd_recv() (accept_any, a fresh
 * download directory and data directories under a mkdtemp directory,
 * 127.0.0.1 port 0); the child reports its port through a pipe. The parent
 * is the hostile sender: its own uv loop and sftq client context (its own
 * node identity), a control stream spoken by hand with the sft/proto.h
 * encoders (or raw bytes), and chunk streams with forged headers. Replies
 * are awaited by running the loop until a condition or a bounded deadline.
 * At the end the child is stopped (SIGTERM, waitpid: it must exit cleanly,
 * so an ASan report in the child fails the test) and the file system is
 * checked: a sentinel file outside the download directory keeps its bytes
 * and nothing appears or changes outside the download directory.
 *
 * Reliability checklist items 14-18 (shared/notes/reliability.md §5).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/ctrl.h"
#include "daemon/quic/quic.h"
#include "daemon/sftd.h"
#include "sft/chunk.h"
#include "sft/fec.h"
#include "sft/hash.h"
#include "sft/limits.h"
#include "sft/proto.h"
#include "sft/wire.h"

#define CS 4096u /* chunk size of the small test files */
#define SENTINEL_TEXT "sentinel: must never change\n"
#define CODE_PEER ((uint16_t)-SFT_ERR_PEER)

/* ---- helpers ------------------------------------------------------------- */

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int rm_cb(const char *p, const struct stat *sb, int flag,
                 struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(p);
}

static void write_file(const char *path, const void *p, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, p, n), (ssize_t)n);
  close(fd);
}

/* Reads at most |cap| bytes; returns the count or -1. */
static ssize_t read_file(const char *path, void *p, size_t cap) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW);
  ssize_t n;
  if (fd < 0)
    return -1;
  n = read(fd, p, cap);
  close(fd);
  return n;
}

static void fill(uint8_t *p, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (uint8_t)(seed >> 16) | 1; /* never zero: holes are visible */
  }
}

/* ---- file-system snapshot (everything outside the download dir) --------- */

#define SNAP_MAX 64
struct snap {
  size_t n;
  char path[SNAP_MAX][512];
  off_t size[SNAP_MAX];
  mode_t mode[SNAP_MAX];
};

static struct snap *g_snap_fill;
static const char *g_snap_skip;

static int snap_cb(const char *p, const struct stat *sb, int flag,
                   struct FTW *ftw) {
  struct snap *s = g_snap_fill;
  (void)flag;
  (void)ftw;
  if (!strncmp(p, g_snap_skip, strlen(g_snap_skip)) &&
      (p[strlen(g_snap_skip)] == 0 || p[strlen(g_snap_skip)] == '/'))
    return 0; /* the download dir: judged separately */
  if (s->n >= SNAP_MAX)
    return 1;
  snprintf(s->path[s->n], sizeof(s->path[0]), "%s", p);
  s->size[s->n] = S_ISREG(sb->st_mode) ? sb->st_size : 0;
  s->mode[s->n] = sb->st_mode & S_IFMT;
  s->n++;
  return 0;
}

static void snap_take(struct snap *s, const char *base, const char *skip) {
  memset(s, 0, sizeof(*s));
  g_snap_fill = s;
  g_snap_skip = skip;
  assert_int_equal(nftw(base, snap_cb, 16, FTW_PHYS), 0);
}

/* Names of the entries of |dir| (not recursive), sorted, joined by '|'. */
static int list_dir(const char *dir, char *out, size_t cap) {
  struct dirent **v;
  int n = scandir(dir, &v, NULL, alphasort), k = 0;
  size_t off = 0;
  out[0] = 0;
  if (n < 0)
    return -1;
  for (int i = 0; i < n; i++) {
    if (strcmp(v[i]->d_name, ".") && strcmp(v[i]->d_name, "..")) {
      off += (size_t)snprintf(out + off, off < cap ? cap - off : 0, "%s%s",
                              k ? "|" : "", v[i]->d_name);
      k++;
    }
    free(v[i]);
  }
  free(v);
  return k;
}

/* ---- the harness ----------------------------------------------------------- */

struct rmsg {
  uint64_t type;
  uint8_t *body;
  size_t len;
};

struct hx {
  char base[256], dl[300], sentinel[300], rdata[300], sdata[300];
  struct sftd_node rnode, snode;
  struct snap before;
  pid_t pid;
  uint16_t port;
  /* client */
  uv_loop_t loop;
  uv_timer_t tick;
  sftq_ctx *q;
  sftq_conn *c;
  struct ctrl ctl;
  int connected, closed, close_reason;
  int streams_acked; /* our streams whose every byte the receiver has */
  int streams_reset; /* ...or that it reset */
  uint64_t close_app;
  /* an optional second connection (link) of the same session */
  sftq_conn *c2;
  int c2_connected, c2_closed;
  size_t c2_rx; /* bytes the receiver sent on it (its HELLO answer) */
  int ctl_bad; /* the receiver sent a frame we could not parse */
  int ctl_fin; /* the receiver ended its side of the control stream */
  struct rmsg *msgs;
  size_t nmsgs, capmsgs;
};

/* The running child and the current temp dir, so that a failed assertion
 * (cmocka longjmps out of the test) still stops the receiver and removes
 * the directory: see teardown(). */
static pid_t g_child = -1;
static char g_base[256];
static struct hx *g_hx;

static void child_event(const struct sftd_event *ev, void *ud) {
  int fd = *(int *)ud;
  if (ev->type == SFTD_EV_LISTENING) {
    uint16_t port = ev->port;
    if (write(fd, &port, sizeof(port)) != (ssize_t)sizeof(port))
      _exit(3);
    close(fd);
  }
}

static void hx_start_child(struct hx *h, int overwrite, int once) {
  int pfd[2];
  uint16_t port = 0;
  pid_t parent = getpid();
  assert_int_equal(pipe(pfd), 0);
  h->pid = fork();
  assert_true(h->pid >= 0);
  if (h->pid == 0) {
    struct sftd_recv_opts o;
    struct sftd_result res;
    int wfd = pfd[1];
    close(pfd[0]);
    /* never outlive the test program */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
      _exit(4);
    memset(&o, 0, sizeof(o));
    o.node = &h->rnode;
    o.dir = h->dl;
    o.listen_addr = "127.0.0.1";
    o.listen_port = 0;
    o.once = once;
    o.accept_any = 1;
    o.overwrite = overwrite;
    o.on_event = child_event;
    o.ud = &wfd;
    (void)sftd_recv(&o, &res);
    _exit(0); /* the result is judged by the parent from the outside */
  }
  g_child = h->pid;
  close(pfd[1]);
  {
    ssize_t n;
    do
      n = read(pfd[0], &port, sizeof(port));
    while (n < 0 && errno == EINTR);
    assert_int_equal(n, (ssize_t)sizeof(port));
  }
  close(pfd[0]);
  assert_true(port != 0);
  h->port = port;
}

/* Fixture: directories, identities, sentinel, snapshot, child. */
static void hx_init(struct hx *h, int overwrite) {
  char why[256];
  memset(h, 0, sizeof(*h));
  strcpy(h->base, "/tmp/sft-hostile-XXXXXX");
  assert_non_null(mkdtemp(h->base));
  snprintf(g_base, sizeof(g_base), "%s", h->base);
  g_hx = h;
  snprintf(h->dl, sizeof(h->dl), "%s/dl", h->base);
  snprintf(h->sentinel, sizeof(h->sentinel), "%s/sentinel", h->base);
  snprintf(h->rdata, sizeof(h->rdata), "%s/rdata", h->base);
  snprintf(h->sdata, sizeof(h->sdata), "%s/sdata", h->base);
  assert_int_equal(mkdir(h->dl, 0755), 0);
  write_file(h->sentinel, SENTINEL_TEXT, strlen(SENTINEL_TEXT));
  assert_int_equal(sftd_node_load(h->rdata, &h->rnode, why, sizeof(why)), 0);
  assert_int_equal(sftd_node_load(h->sdata, &h->snode, why, sizeof(why)), 0);
  h->pid = -1;
  (void)overwrite;
}

/* The snapshot is taken once the test has prepared the download dir. */
static void hx_begin(struct hx *h, int overwrite, int once) {
  snap_take(&h->before, h->base, h->dl);
  hx_start_child(h, overwrite, once);
}

/* ---- client callbacks ---- */

static int cl_frame(void *ud, const struct sft_frame *f) {
  struct hx *h = ud;
  struct rmsg *m;
  if (h->nmsgs == h->capmsgs) {
    size_t cap = h->capmsgs ? h->capmsgs * 2 : 32;
    struct rmsg *v = realloc(h->msgs, cap * sizeof(*v));
    if (!v)
      return SFT_ERR_NOMEM;
    h->msgs = v;
    h->capmsgs = cap;
  }
  m = &h->msgs[h->nmsgs];
  m->type = f->type;
  m->len = f->body_len;
  m->body = malloc(f->body_len ? f->body_len : 1);
  if (!m->body)
    return SFT_ERR_NOMEM;
  memcpy(m->body, f->body, f->body_len);
  h->nmsgs++;
  return 0;
}

static void cl_stream_acked(sftq_conn *c, int64_t sid, void *ud) {
  struct hx *h = ud;
  (void)c;
  (void)sid;
  h->streams_acked++;
}

static void cl_stream_close(sftq_conn *c, int64_t sid, uint64_t app_error,
                            void *ud) {
  struct hx *h = ud;
  (void)c;
  (void)sid;
  h->streams_reset += app_error != 0;
}

static void cl_connected(sftq_conn *c, void *ud) {
  struct hx *h = ud;
  if (h->c2 && c == h->c2) {
    h->c2_connected = 1;
    return;
  }
  h->connected = 1;
}

static void cl_stream_data(sftq_conn *c, int64_t sid, const uint8_t *data,
                           size_t len, int fin, void *ud) {
  struct hx *h = ud;
  if (c != h->c) { /* the second link's answers are counted, not parsed */
    h->c2_rx += len;
    return;
  }
  if (sid == h->ctl.sid && fin)
    h->ctl_fin = 1;
  if (sid == h->ctl.sid && ctrl_feed(&h->ctl, data, len, cl_frame, h))
    h->ctl_bad = 1;
}

static void cl_closed(sftq_conn *c, int reason, uint64_t app_error,
                      void *ud) {
  struct hx *h = ud;
  if (h->c2 && c == h->c2) {
    h->c2_closed = 1;
    h->c2 = NULL;
    return;
  }
  h->closed = 1;
  h->close_reason = reason;
  h->close_app = app_error;
  h->c = NULL;
}

static void on_tick(uv_timer_t *t) { (void)t; }

typedef int (*hx_pred)(struct hx *h, const void *arg);

/* Runs the client loop until |pred| holds or |ms| pass. */
static int hx_run(struct hx *h, hx_pred pred, const void *arg, uint64_t ms) {
  uint64_t end = mono_ms() + ms;
  while (!pred(h, arg)) {
    if (mono_ms() >= end)
      return 0;
    uv_run(&h->loop, UV_RUN_ONCE);
  }
  return 1;
}

static int p_connected(struct hx *h, const void *a) {
  (void)a;
  return h->connected || h->closed;
}
static int p_closed(struct hx *h, const void *a) {
  (void)a;
  return h->closed;
}

/* Connects; with |ctl| opens the control stream (nothing sent on it yet). */
static void hx_connect(struct hx *h, int ctl) {
  sftq_config cfg;
  memset(&cfg, 0, sizeof(cfg));
  cfg.cert_path = h->snode.cert_path;
  cfg.key_path = h->snode.key_path;
  cfg.idle_timeout_ms = 10000;
  cfg.cb.connected = cl_connected;
  cfg.cb.stream_data = cl_stream_data;
  cfg.cb.closed = cl_closed;
  cfg.cb.stream_acked = cl_stream_acked;
  cfg.cb.stream_close = cl_stream_close;
  cfg.user_data = h;
  assert_int_equal(uv_loop_init(&h->loop), 0);
  uv_timer_init(&h->loop, &h->tick);
  uv_timer_start(&h->tick, on_tick, 10, 10);
  ctrl_init(&h->ctl);
  assert_int_equal(sftq_ctx_new(&h->q, &h->loop, &cfg), 0);
  assert_int_equal(sftq_connect(h->q, "127.0.0.1", h->port, h, &h->c), 0);
  assert_true(hx_run(h, p_connected, NULL, 10000));
  assert_true(h->connected);
  assert_false(h->closed);
  h->ctl.c = h->c;
  if (ctl)
    assert_int_equal(sftq_stream_open_bidi(h->c, &h->ctl.sid), 0);
}

static void hx_send_raw(struct hx *h, int64_t sid, const void *p, size_t n,
                        int fin) {
  sftq_iov iov = {p, n};
  assert_int_equal(sftq_stream_write(h->c, sid, &iov, n ? 1 : 0,
                                     SFTQ_WRITE_COPY | (fin ? SFTQ_WRITE_FIN
                                                            : 0)),
                   0);
}

#define HX_SEND(h, encfn, msgp)                                               \
  do {                                                                        \
    uint8_t buf_[SFT_MAX_NAME + 1024];                                        \
    size_t n_ = 0;                                                            \
    assert_int_equal(encfn(buf_, sizeof(buf_), (msgp), &n_), 0);              \
    hx_send_raw((h), (h)->ctl.sid, buf_, n_, 0);                              \
  } while (0)

static void hx_hello(struct hx *h) {
  struct sft_msg_hello m;
  memset(&m, 0, sizeof(m));
  m.version_current = SFT_PROTO_VERSION_CURRENT;
  m.version_min = SFT_PROTO_VERSION_MIN;
  memset(m.session_id, 0x5a, sizeof(m.session_id));
  m.role = SFT_ROLE_SENDER;
  m.agent_len = (size_t)snprintf(m.agent, sizeof(m.agent), "hostile/1");
  HX_SEND(h, sft_msg_hello_encode, &m);
}

static void mk_manifest(struct sft_manifest *man, const char *name,
                        size_t name_len, uint64_t size, uint32_t cs) {
  sft_manifest_init(man);
  assert_int_equal(sft_manifest_set_name(man, name, name_len), 0);
  assert_int_equal(sft_manifest_set_geometry(man, size, cs), 0);
}

static void hx_offer(struct hx *h, uint64_t id, const char *name,
                     size_t name_len, uint64_t size, uint32_t cs) {
  struct sft_msg_offer *m = calloc(1, sizeof(*m));
  assert_non_null(m);
  m->file_id = id;
  m->priority = SFT_PROTO_PRIO_NORMAL;
  mk_manifest(&m->manifest, name, name_len, size, cs);
  HX_SEND(h, sft_msg_offer_encode, m);
  free(m);
}

/* OFFER with a stripe geometry k+m (m = 0: no FEC). */
static void hx_offer_km(struct hx *h, uint64_t id, const char *name,
                        uint64_t size, uint32_t cs, uint32_t k, uint32_t m) {
  struct sft_msg_offer *o = calloc(1, sizeof(*o));
  assert_non_null(o);
  o->file_id = id;
  o->priority = SFT_PROTO_PRIO_NORMAL;
  mk_manifest(&o->manifest, name, strlen(name), size, cs);
  o->manifest.stripe_k = k;
  o->manifest.stripe_m = m;
  HX_SEND(h, sft_msg_offer_encode, o);
  free(o);
}

static void hx_complete(struct hx *h, uint64_t id, const uint8_t root[32]) {
  struct sft_msg_complete m = {.file_id = id};
  memcpy(m.root, root, SFT_HASH_LEN);
  HX_SEND(h, sft_msg_complete_encode, &m);
}

/* Opens a chunk stream and writes |hdr| (encoded) then |n| payload bytes;
 * returns the stream id. */
static int64_t hx_chunk(struct hx *h, const struct sft_chunk_hdr *hdr,
                        const uint8_t *payload, size_t n, int fin) {
  uint8_t hb[SFT_CHUNK_HDR_MAX];
  size_t hl = 0;
  int64_t sid;
  assert_int_equal(sft_chunk_hdr_encode(hb, sizeof(hb), hdr, &hl), 0);
  assert_int_equal(sftq_stream_open_uni(h->c, &sid), 0);
  hx_send_raw(h, sid, hb, hl, 0);
  hx_send_raw(h, sid, payload, n, fin);
  return sid;
}

static struct sft_chunk_hdr data_hdr(uint64_t id, uint64_t index,
                                     const uint8_t *payload, uint32_t len) {
  struct sft_chunk_hdr c;
  memset(&c, 0, sizeof(c));
  c.kind = SFT_CHUNK_DATA;
  c.file_id = id;
  c.index = index;
  c.payload_len = len;
  sft_blake3(payload, len, c.digest);
  return c;
}

/* ---- received-message queries ---- */

struct find {
  uint64_t type, file_id;
};

/* The file id a received message is about (decoded with its decoder). */
static int msg_file_id(const struct rmsg *m, uint64_t *id) {
  static struct sft_ack_range st[SFT_MAX_ACK_RANGES];
  switch (m->type) {
  case SFT_MSG_ACCEPT: {
    struct sft_msg_accept a;
    if (sft_msg_accept_decode(m->body, m->len, &a))
      return -1;
    *id = a.file_id;
    return 0;
  }
  case SFT_MSG_ACK: {
    struct sft_msg_ack a;
    if (sft_msg_ack_decode(m->body, m->len, &a, st, SFT_MAX_ACK_RANGES))
      return -1;
    *id = a.file_id;
    return 0;
  }
  case SFT_MSG_COMPLETE: {
    struct sft_msg_complete a;
    if (sft_msg_complete_decode(m->body, m->len, &a))
      return -1;
    *id = a.file_id;
    return 0;
  }
  case SFT_MSG_CANCEL: {
    struct sft_msg_cancel a;
    if (sft_msg_cancel_decode(m->body, m->len, &a))
      return -1;
    *id = a.file_id;
    return 0;
  }
  case SFT_MSG_ERROR: {
    static struct sft_msg_error a;
    if (sft_msg_error_decode(m->body, m->len, &a))
      return -1;
    *id = a.file_id;
    return 0;
  }
  default:
    *id = SFT_FILE_ID_ALL;
    return 0;
  }
}

static int find_msg(struct hx *h, uint64_t type, uint64_t file_id,
                    size_t *at) {
  for (size_t i = 0; i < h->nmsgs; i++) {
    struct rmsg *m = &h->msgs[i];
    uint64_t id = 0;
    if (m->type != type)
      continue;
    if (file_id != UINT64_MAX - 1) {
      if (msg_file_id(m, &id))
        fail_msg("the receiver sent a malformed %s",
                 sft_msg_type_name(m->type));
      if (id != file_id)
        continue;
    }
    if (at)
      *at = i;
    return 1;
  }
  return 0;
}
#define ANY_FILE (UINT64_MAX - 1)

static int p_msg(struct hx *h, const void *a) {
  const struct find *f = a;
  return find_msg(h, f->type, f->file_id, NULL) || h->closed;
}

static void wait_msg(struct hx *h, uint64_t type, uint64_t file_id,
                     size_t *at) {
  struct find f = {type, file_id};
  hx_run(h, p_msg, &f, 10000);
  if (!find_msg(h, type, file_id, at))
    fail_msg("no %s for file %llu from the receiver (closed=%d app=%llu)",
             sft_msg_type_name(type), (unsigned long long)file_id, h->closed,
             (unsigned long long)h->close_app);
}

static void get_accept(struct hx *h, uint64_t id, struct sft_msg_accept *a) {
  size_t at;
  wait_msg(h, SFT_MSG_ACCEPT, id, &at);
  assert_int_equal(
      sft_msg_accept_decode(h->msgs[at].body, h->msgs[at].len, a), 0);
}

/* Is chunk |idx| of |id| covered by any ACK received so far? */
static int acked(struct hx *h, uint64_t id, uint64_t idx) {
  static struct sft_ack_range st[SFT_MAX_ACK_RANGES];
  for (size_t i = 0; i < h->nmsgs; i++) {
    struct sft_msg_ack a;
    if (h->msgs[i].type != SFT_MSG_ACK)
      continue;
    assert_int_equal(sft_msg_ack_decode(h->msgs[i].body, h->msgs[i].len, &a,
                                        st, SFT_MAX_ACK_RANGES),
                     0);
    if (a.file_id != id)
      continue;
    for (size_t k = 0; k < a.nranges; k++)
      if (st[k].first <= idx && idx <= st[k].last)
        return 1;
  }
  return 0;
}

struct ackq {
  uint64_t id;
  const uint64_t *idx;
  size_t n;
};
static int p_acked(struct hx *h, const void *arg) {
  const struct ackq *q = arg;
  if (h->closed)
    return 1;
  for (size_t i = 0; i < q->n; i++)
    if (!acked(h, q->id, q->idx[i]))
      return 0;
  return 1;
}

/* ---- teardown and the file-system verdict ---- */

static void hx_client_free(struct hx *h) {
  if (!h->q)
    return;
  sftq_ctx_free(h->q);
  h->q = NULL;
  uv_timer_stop(&h->tick);
  uv_close((uv_handle_t *)&h->tick, NULL);
  uv_run(&h->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&h->loop), 0);
  ctrl_free(&h->ctl);
}

/* Stops the child; it must exit cleanly (status 0: no sanitizer report). */
static void hx_stop_child(struct hx *h) {
  int st = 0;
  pid_t w = 0;
  uint64_t end;
  if (h->pid <= 0)
    return;
  g_child = -1;
  kill(h->pid, SIGTERM);
  end = mono_ms() + 20000;
  while ((w = waitpid(h->pid, &st, WNOHANG)) == 0 && mono_ms() < end) {
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL); /* bounded poll for the exit, not a fixed wait */
  }
  if (w == 0) {
    kill(h->pid, SIGKILL);
    waitpid(h->pid, &st, 0);
    h->pid = -1;
    fail_msg("the receiver did not stop on SIGTERM");
  }
  h->pid = -1;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    fail_msg("the receiver died: %s %d",
             WIFSIGNALED(st) ? "signal" : "exit status",
             WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

/* Client gone, child stopped, then: the sentinel and every path outside the
 * download dir are as before; /etc/passwd-x never appeared. */
static void hx_finish(struct hx *h) {
  struct snap after;
  char buf[256];
  ssize_t n;
  hx_client_free(h);
  hx_stop_child(h);
  n = read_file(h->sentinel, buf, sizeof(buf));
  assert_int_equal(n, (ssize_t)strlen(SENTINEL_TEXT));
  assert_memory_equal(buf, SENTINEL_TEXT, (size_t)n);
  snap_take(&after, h->base, h->dl);
  assert_int_equal(after.n, h->before.n);
  for (size_t i = 0; i < after.n; i++) {
    assert_string_equal(after.path[i], h->before.path[i]);
    assert_int_equal(after.size[i], h->before.size[i]);
    assert_int_equal(after.mode[i], h->before.mode[i]);
  }
  assert_int_equal(access("/etc/passwd-x", F_OK), -1);
  for (size_t i = 0; i < h->nmsgs; i++)
    free(h->msgs[i].body);
  free(h->msgs);
  h->msgs = NULL;
  h->nmsgs = h->capmsgs = 0;
}

static void hx_cleanup(struct hx *h) {
  nftw(h->base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  g_base[0] = 0;
  g_hx = NULL;
}

/* After every test, passed or failed: no receiver left running, no temp
 * dir left behind. */
static int teardown(void **state) {
  (void)state;
  if (g_hx) {
    struct hx *h = g_hx;
    g_hx = NULL;
    if (h->q) { /* the test failed half-way: release the client too */
      sftq_ctx_free(h->q);
      h->q = NULL;
      uv_close((uv_handle_t *)&h->tick, NULL);
      uv_run(&h->loop, UV_RUN_DEFAULT);
      uv_loop_close(&h->loop);
      ctrl_free(&h->ctl);
    }
    for (size_t i = 0; i < h->nmsgs; i++)
      free(h->msgs[i].body);
    free(h->msgs);
    h->msgs = NULL;
    h->nmsgs = h->capmsgs = 0;
  }
  if (g_child > 0) {
    kill(g_child, SIGKILL);
    waitpid(g_child, NULL, 0);
    g_child = -1;
  }
  if (g_base[0]) {
    nftw(g_base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    g_base[0] = 0;
  }
  return 0;
}

static void assert_dl(struct hx *h, const char *expect) {
  char got[1024];
  assert_true(list_dir(h->dl, got, sizeof(got)) >= 0);
  assert_string_equal(got, expect);
}

/* ---- 1. hostile names ------------------------------------------------------ */

struct bad_name {
  const char *p;
  size_t len; /* 0: strlen */
};

static void test_hostile_names_refused(void **state) {
  static char long_comp[300], long_comp2[300];
  struct bad_name names[] = {
      {"../x", 0},
      {"a/../../x", 0},
      {"/etc/passwd-x", 0},
      {"a//b", 0},
      {".", 0},
      {"..", 0},
      {"a/", 0},
      {"x\\y", 0},
      {"\\\\server\\share\\x", 0},
      {"C:x", 0},
      {"C:\\x", 0},
      {"esc\x1b[31mred", 0},
      {"cr\rx", 0},
      {"lf\nx", 0},
      {"bel\x07x", 0},
      {"del\x7fx", 0},
      {"c1\xc2\x9bx", 0},          /* U+009B CSI */
      {"zw\xe2\x80\x8bx", 0},      /* U+200B zero width space */
      {"rlo\xe2\x80\xaetxt.exe", 0}, /* U+202E */
      {"x.sft-part", 0},
      {"d/X.SFT-PART", 0},
      {"CON", 0},
      {"nul.txt", 0},
      {"trail.", 0},
      {"trail ", 0},
      {long_comp, 0},              /* 256-byte component */
      {long_comp2, 0},             /* d/ + 256-byte component */
      {"\xff\xfe", 0},             /* invalid UTF-8 */
      {"\xc0\xae\xc0\xae/x", 0},   /* overlong ".." */
      {"cut\xe2\x80", 0},          /* truncated sequence */
      {"\xed\xa0\x80x", 0},        /* surrogate */
  };
  size_t nn = sizeof(names) / sizeof(names[0]);
  static struct hx h; /* static: teardown() may use it after a failure */
  (void)state;
  memset(long_comp, 'a', 256);
  long_comp[256] = 0;
  memcpy(long_comp2, "d/", 2);
  memset(long_comp2 + 2, 'b', 256);
  long_comp2[258] = 0;

  hx_init(&h, 0);
  hx_begin(&h, 0, 0);
  hx_connect(&h, 1);
  hx_hello(&h);
  for (size_t i = 0; i < nn; i++) {
    size_t len = names[i].len ? names[i].len : strlen(names[i].p);
    hx_offer(&h, i, names[i].p, len, 2 * CS, CS);
  }
  for (size_t i = 0; i < nn; i++) {
    struct sft_msg_accept a;
    get_accept(&h, i, &a);
    if (a.status != SFT_ACCEPT_REFUSED || a.reason != SFT_REASON_BAD_NAME)
      fail_msg("name #%zu (%s) not refused as BAD_NAME: status %d reason %u",
               i, names[i].p, (int)a.status, a.reason);
  }
  assert_false(h.closed); /* refusals do not end the session */
  assert_dl(&h, "");
  hx_finish(&h);
  assert_dl(&h, "");
  hx_cleanup(&h);
}

/* A 4097-byte name exceeds the wire bound (SFT_MAX_NAME): the OFFER cannot
 * be decoded, which is a protocol violation (ERROR PEER + close), not a
 * refusal. The encoder refuses such a name, so the frame is forged from one
 * with a 4096-byte name. */
static void test_name_over_wire_bound(void **state) {
  static char name[SFT_MAX_NAME + 2];
  static uint8_t fr[SFT_MAX_NAME + 1024], body[SFT_MAX_NAME + 1024],
      out[SFT_MAX_NAME + 1024];
  struct sft_msg_offer *m = calloc(1, sizeof(*m));
  struct sft_frame f;
  size_t n = 0, used = 0, bl = 0, pos = SIZE_MAX;
  struct sft_wr w;
  static struct hx h; /* static: teardown() may use it after a failure */
  (void)state;
  assert_non_null(m);
  memset(name, 'n', SFT_MAX_NAME);
  m->file_id = 0;
  m->priority = SFT_PROTO_PRIO_NORMAL;
  mk_manifest(&m->manifest, name, SFT_MAX_NAME, 2 * CS, CS);
  assert_int_equal(sft_msg_offer_encode(fr, sizeof(fr), m, &n), 0);
  free(m);
  assert_int_equal(sft_frame_parse(fr, n, &f, &used), 0);
  /* name length varint 4096 = 0x50 0x00, then the name bytes */
  for (size_t i = 0; i + 3 < f.body_len; i++)
    if (f.body[i] == 0x50 && f.body[i + 1] == 0x00 && f.body[i + 2] == 'n' &&
        f.body[i + 3] == 'n') {
      pos = i;
      break;
    }
  assert_true(pos != SIZE_MAX);
  memcpy(body, f.body, pos);
  body[pos] = 0x50;
  body[pos + 1] = 0x01; /* 4097 */
  body[pos + 2] = 'n';
  memcpy(body + pos + 3, f.body + pos + 2, f.body_len - pos - 2);
  bl = f.body_len + 1;
  sft_wr_init(&w, out, sizeof(out));
  sft_wr_varint(&w, SFT_MSG_OFFER);
  sft_wr_varint(&w, bl);
  sft_wr_bytes(&w, body, bl);
  assert_int_equal(w.err, 0);

  hx_init(&h, 0);
  hx_begin(&h, 0, 0);
  hx_connect(&h, 1);
  hx_hello(&h);
  hx_send_raw(&h, h.ctl.sid, out, w.off, 0);
  assert_true(hx_run(&h, p_closed, NULL, 10000));
  assert_int_equal(h.close_reason, SFT_ERR_CLOSED);
  assert_int_equal(h.close_app, CODE_PEER);
  assert_false(find_msg(&h, SFT_MSG_ACCEPT, ANY_FILE, NULL));
  hx_finish(&h);
  assert_dl(&h, "");
  hx_cleanup(&h);
}

/* ---- 2. symlinks and existing files --------------------------------------- */

static void test_symlinks_and_existing(void **state) {
  char p[400], q[400], buf[64];
  struct sft_msg_accept a;
  static struct hx h; /* static: teardown() may use it after a failure */
  (void)state;
  hx_init(&h, 0);
  /* dl/link -> the parent temp dir; dl/target -> the sentinel;
   * dl/existing: a file the sender must not replace. */
  snprintf(p, sizeof(p), "%s/link", h.dl);
  assert_int_equal(symlink(h.base, p), 0);
  snprintf(p, sizeof(p), "%s/target", h.dl);
  assert_int_equal(symlink(h.sentinel, p), 0);
  snprintf(p, sizeof(p), "%s/existing", h.dl);
  write_file(p, "KEEP", 4);
  hx_begin(&h, 0, 0);
  hx_connect(&h, 1);
  hx_hello(&h);
  hx_offer(&h, 0, "link/evil", 9, 2 * CS, CS);
  hx_offer(&h, 1, "link/sentinel", 13, 2 * CS, CS);
  hx_offer(&h, 2, "target", 6, 2 * CS, CS);
  hx_offer(&h, 3, "existing", 8, 2 * CS, CS);
  get_accept(&h, 0, &a);
  assert_int_equal(a.status, SFT_ACCEPT_REFUSED);
  assert_int_equal(a.reason, SFT_REASON_BAD_NAME);
  get_accept(&h, 1, &a);
  assert_int_equal(a.status, SFT_ACCEPT_REFUSED);
  assert_int_equal(a.reason, SFT_REASON_BAD_NAME);
  get_accept(&h, 2, &a); /* the symlink is an existing final name */
  assert_int_equal(a.status, SFT_ACCEPT_REFUSED);
  assert_int_equal(a.reason, SFT_REASON_EXISTS);
  get_accept(&h, 3, &a);
  assert_int_equal(a.status, SFT_ACCEPT_REFUSED);
  assert_int_equal(a.reason, SFT_REASON_EXISTS);
  hx_finish(&h);
  assert_dl(&h, "existing|link|target");
  snprintf(p, sizeof(p), "%s/existing", h.dl);
  assert_int_equal(read_file(p, buf, sizeof(buf)), 4);
  assert_memory_equal(buf, "KEEP", 4);
  snprintf(p, sizeof(p), "%s/evil", h.base);
  assert_int_equal(access(p, F_OK), -1);
  hx_cleanup(&h);

  /* With --overwrite, a symlink under the final name is replaced by the
   * received file (rename), never written through; "link/evil" is still
   * refused (a parent is a symlink). */
  hx_init(&h, 1);
  snprintf(p, sizeof(p), "%s/link", h.dl);
  assert_int_equal(symlink(h.base, p), 0);
  snprintf(p, sizeof(p), "%s/target", h.dl);
  assert_int_equal(symlink(h.sentinel, p), 0);
  hx_begin(&h, 1, 0);
  hx_connect(&h, 1);
  hx_hello(&h);
  hx_offer(&h, 0, "link/evil", 9, CS, CS);
  hx_offer(&h, 1, "target", 6, CS, CS);
  get_accept(&h, 0, &a);
  assert_int_equal(a.status, SFT_ACCEPT_REFUSED);
  assert_int_equal(a.reason, SFT_REASON_BAD_NAME);
  get_accept(&h, 1, &a);
  if (a.status == SFT_ACCEPT_OK) {
    static uint8_t data[CS];
    uint8_t root[32];
    struct sft_chunk_hdr c;
    const uint64_t idx0 = 0;
    struct ackq aq = {1, &idx0, 1};
    fill(data, CS, 7);
    c = data_hdr(1, 0, data, CS);
    sft_root(SFT_HASH_BLAKE3, c.digest, 1, root);
    hx_chunk(&h, &c, data, CS, 1);
    hx_run(&h, p_acked, &aq, 10000);
    assert_true(acked(&h, 1, 0));
    hx_complete(&h, 1, root);
    wait_msg(&h, SFT_MSG_COMPLETE, 1, NULL);
    hx_finish(&h);
    snprintf(q, sizeof(q), "%s/target", h.dl);
    {
      struct stat sb;
      static uint8_t back[CS + 1];
      assert_int_equal(lstat(q, &sb), 0);
      assert_true(S_ISREG(sb.st_mode)); /* the link itself was replaced */
      assert_int_equal(read_file(q, back, sizeof(back)), (ssize_t)CS);
      assert_memory_equal(back, data, CS);
    }
  } else {
    assert_int_equal(a.status, SFT_ACCEPT_REFUSED);
    hx_finish(&h);
  }
  snprintf(p, sizeof(p), "%s/evil", h.base);
  assert_int_equal(access(p, F_OK), -1);
  hx_cleanup(&h);
}

/* ---- 3. protocol violations ------------------------------------------------ */

enum viol {
  V_BEFORE_HELLO,
  V_ID_OUT_OF_ORDER,
  V_INDEX_PAST_END,
  V_WRONG_PAYLOAD_LEN,
  V_EXTRA_PAYLOAD,
  V_TRUNCATED_HDR,
  V_CTL_NOT_FIRST,
  V_NONMINIMAL_VARINT,
  V_BODY_TOO_LONG,
  V_SECOND_HELLO,
  V_PARITY_CHUNK,
  V_PARITY_STRIPE_PAST_END,
  V_PARITY_BAD_LEN,
  V_PARITY_NO_FEC,
  V_COUNT
};

static const char *viol_name[V_COUNT] = {
    "control message before HELLO",
    "file id out of order",
    "chunk index past the end",
    "payload length != chunk length",
    "more payload than announced",
    "truncated header then FIN",
    "control stream not the first bidi stream",
    "non-minimal varint in a frame",
    "frame body length over the limit",
    "second HELLO",
    "parity index past the stripe",
    "parity for a stripe past the end",
    "parity payload != chunk size",
    "parity for a file without FEC (stripe_m 0)"};

/* Returns 1 if the receiver sent an ERROR frame with |code| before closing. */
static int run_violation(enum viol v) {
  static uint8_t data[2 * CS + 16];
  static struct hx h; /* static: teardown() may use it after a failure */
  struct sft_msg_accept a;
  struct sft_chunk_hdr c;
  int got_error = 0;
  size_t at;

  fill(data, sizeof(data), 11);
  hx_init(&h, 0);
  hx_begin(&h, 0, 0);
  hx_connect(&h, v != V_CTL_NOT_FIRST);
  if (v == V_CTL_NOT_FIRST) {
    /* bidi 0 opened and never used; HELLO on bidi 4 */
    int64_t unused;
    assert_int_equal(sftq_stream_open_bidi(h.c, &unused), 0);
    assert_int_equal(sftq_stream_open_bidi(h.c, &h.ctl.sid), 0);
    assert_true(h.ctl.sid != 0);
    hx_hello(&h);
  }
  if (v != V_BEFORE_HELLO && v != V_CTL_NOT_FIRST && v != V_NONMINIMAL_VARINT &&
      v != V_BODY_TOO_LONG)
    hx_hello(&h);
  if (v >= V_INDEX_PAST_END && v <= V_TRUNCATED_HDR) {
    hx_offer(&h, 0, "f", 1, 2 * CS, CS);
    get_accept(&h, 0, &a);
    assert_int_equal(a.status, SFT_ACCEPT_OK);
    assert_int_equal(a.chunk_count, 2);
  }
  if (v >= V_PARITY_CHUNK && v <= V_PARITY_NO_FEC) {
    /* 2 chunks of CS, stripe 10+3 (one stripe), or 10+0 */
    hx_offer_km(&h, 0, "f", 2 * CS, CS, 10, v == V_PARITY_NO_FEC ? 0 : 3);
    get_accept(&h, 0, &a);
    assert_int_equal(a.status, SFT_ACCEPT_OK);
  }
  switch (v) {
  case V_BEFORE_HELLO:
    hx_offer(&h, 0, "f", 1, 2 * CS, CS);
    break;
  case V_ID_OUT_OF_ORDER:
    hx_offer(&h, 5, "f", 1, 2 * CS, CS);
    break;
  case V_INDEX_PAST_END:
    c = data_hdr(0, 2, data, CS);
    hx_chunk(&h, &c, data, CS, 1);
    break;
  case V_WRONG_PAYLOAD_LEN:
    c = data_hdr(0, 0, data, 100);
    hx_chunk(&h, &c, data, 100, 1);
    break;
  case V_EXTRA_PAYLOAD:
    c = data_hdr(0, 0, data, CS);
    hx_chunk(&h, &c, data, CS + 1, 1);
    break;
  case V_TRUNCATED_HDR: {
    uint8_t hb[SFT_CHUNK_HDR_MAX];
    size_t hl = 0;
    int64_t sid;
    c = data_hdr(0, 0, data, CS);
    assert_int_equal(sft_chunk_hdr_encode(hb, sizeof(hb), &c, &hl), 0);
    assert_int_equal(sftq_stream_open_uni(h.c, &sid), 0);
    hx_send_raw(&h, sid, hb, hl / 2, 1);
    break;
  }
  case V_CTL_NOT_FIRST:
    break;
  case V_NONMINIMAL_VARINT: {
    /* HELLO's type 0x01 as a 2-byte varint */
    static const uint8_t b[] = {0x40, 0x01, 0x00};
    hx_send_raw(&h, h.ctl.sid, b, sizeof(b), 0);
    break;
  }
  case V_BODY_TOO_LONG: {
    /* OFFER with body length SFT_MAX_CTRL_MSG + 1 (4-byte varint) */
    uint8_t b[8];
    struct sft_wr w;
    sft_wr_init(&w, b, sizeof(b));
    sft_wr_varint(&w, SFT_MSG_OFFER);
    sft_wr_varint(&w, (uint64_t)SFT_MAX_CTRL_MSG + 1);
    assert_int_equal(w.err, 0);
    hx_send_raw(&h, h.ctl.sid, b, w.off, 0);
    break;
  }
  case V_SECOND_HELLO:
    hx_hello(&h);
    break;
  case V_PARITY_CHUNK: /* the offer's stripe is 10+3: parity 0..2 */
    c = data_hdr(0, 0, data, CS);
    c.kind = SFT_CHUNK_PARITY;
    c.parity_index = 3;
    hx_chunk(&h, &c, data, CS, 1);
    break;
  case V_PARITY_STRIPE_PAST_END: /* 2 chunks: stripe 0 only */
    c = data_hdr(0, 1, data, CS);
    c.kind = SFT_CHUNK_PARITY;
    hx_chunk(&h, &c, data, CS, 1);
    break;
  case V_PARITY_BAD_LEN: /* parity is always a whole chunk_size */
    c = data_hdr(0, 0, data, CS - 1);
    c.kind = SFT_CHUNK_PARITY;
    hx_chunk(&h, &c, data, CS - 1, 1);
    break;
  case V_PARITY_NO_FEC:
    c = data_hdr(0, 0, data, CS);
    c.kind = SFT_CHUNK_PARITY;
    hx_chunk(&h, &c, data, CS, 1);
    break;
  default:
    break;
  }
  if (!hx_run(&h, p_closed, NULL, 10000))
    fail_msg("%s: the receiver did not close the session", viol_name[v]);
  if (h.close_reason != SFT_ERR_CLOSED || h.close_app != CODE_PEER)
    fail_msg("%s: closed with reason %d app %llu, want CLOSED/PEER(20)",
             viol_name[v], h.close_reason,
             (unsigned long long)h.close_app);
  assert_false(h.ctl_bad);
  /* no file was accepted by mistake, nothing was committed */
  assert_false(find_msg(&h, SFT_MSG_COMPLETE, ANY_FILE, NULL));
  if (find_msg(&h, SFT_MSG_ERROR, ANY_FILE, &at)) {
    struct sft_msg_error e;
    assert_int_equal(sft_msg_error_decode(h.msgs[at].body, h.msgs[at].len, &e),
                     0);
    if (e.code != CODE_PEER)
      fail_msg("%s: ERROR code %u, want 20 (PEER)", viol_name[v], e.code);
    got_error = 1;
  }
  hx_finish(&h);
  assert_dl(&h, ""); /* the part file (if any) was removed */
  hx_cleanup(&h);
  return got_error;
}

/* Chunks may come before their file's OFFER, and before HELLO (the sender
 * starts a fresh file before our ACCEPT; a lost packet can reorder them):
 * they are parked and adopted when the OFFER is read, dropped if it is
 * refused; chunks and COMPLETE of a refused file are not session errors. */
/* The receiver has every byte of *arg of our streams (so it has read
 * them: QUIC delivers before it acknowledges), or reset them. */
static int p_streams_acked(struct hx *h, const void *arg) {
  return h->streams_acked + h->streams_reset >= *(const int *)arg;
}

static void test_early_chunks(void **state) {
  static struct hx h;
  static uint8_t f0[CS], f1[CS], x[CS], out[CS];
  struct sft_chunk_hdr c0, c1, cx;
  struct sft_msg_accept a;
  uint8_t r0[32], r1[32];
  char p[700];
  size_t at;
  (void)state;
  fill(f0, CS, 1);
  fill(f1, CS, 2);
  fill(x, CS, 3);
  c0 = data_hdr(0, 0, f0, CS);
  c1 = data_hdr(1, 0, f1, CS);
  cx = data_hdr(2, 0, x, CS);
  sft_root(SFT_HASH_BLAKE3, c0.digest, 1, r0);
  sft_root(SFT_HASH_BLAKE3, c1.digest, 1, r1);
  hx_init(&h, 0);
  hx_begin(&h, 0, 0);
  snprintf(p, sizeof(p), "%s/x", h.dl);
  write_file(p, "old", 3); /* file 2 will be refused: it exists */
  hx_connect(&h, 0);
  hx_chunk(&h, &c0, f0, CS, 1);   /* before the control stream and HELLO */
  assert_true(hx_run(&h, p_streams_acked, &(int){1}, 10000));
  assert_int_equal(sftq_stream_open_bidi(h.c, &h.ctl.sid), 0);
  hx_hello(&h);
  hx_chunk(&h, &c1, f1, CS, 1); /* before its OFFER */
  hx_chunk(&h, &cx, x, CS, 1);  /* before its OFFER, which is refused */
  assert_true(hx_run(&h, p_streams_acked, &(int){3}, 10000));
  hx_offer(&h, 0, "f", 1, CS, CS);
  get_accept(&h, 0, &a);
  assert_int_equal(a.status, SFT_ACCEPT_OK);
  hx_complete(&h, 0, r0); /* the root before the chunk's ACK: kept */
  wait_msg(&h, SFT_MSG_COMPLETE, 0, &at);
  hx_offer(&h, 1, "g", 1, CS, CS);
  get_accept(&h, 1, &a);
  assert_int_equal(a.status, SFT_ACCEPT_OK);
  hx_complete(&h, 1, r1);
  wait_msg(&h, SFT_MSG_COMPLETE, 1, &at);
  hx_offer(&h, 2, "x", 1, CS, CS);
  get_accept(&h, 2, &a);
  assert_int_equal(a.status, SFT_ACCEPT_REFUSED);
  hx_chunk(&h, &cx, x, CS, 1); /* after the refusal */
  /* a file more than SFT_PROTO_PARK_FILES ids past the last offered one
   * (a sender does not start one that far ahead): reset (STOP_SENDING,
   * which comes too late if the whole chunk is in already), not kept, and
   * not a session error */
  {
    struct sft_chunk_hdr far = data_hdr(3 + SFT_PROTO_PARK_FILES, 0, x, CS);
    hx_chunk(&h, &far, x, CS, 1);
    assert_true(hx_run(&h, p_streams_acked, &(int){5}, 10000));
  }
  hx_complete(&h, 2, r1);      /* COMPLETE of a refused file: ignored */
  {
    const uint64_t idx[] = {0};
    struct ackq aq = {1, idx, 1};
    hx_run(&h, p_acked, &aq, 2000);
  }
  assert_false(h.closed);
  assert_false(find_msg(&h, SFT_MSG_ERROR, ANY_FILE, NULL));
  hx_finish(&h);
  snprintf(p, sizeof(p), "%s/f", h.dl);
  assert_int_equal(read_file(p, out, sizeof(out)), (ssize_t)CS);
  assert_memory_equal(out, f0, CS);
  snprintf(p, sizeof(p), "%s/g", h.dl);
  assert_int_equal(read_file(p, out, sizeof(out)), (ssize_t)CS);
  assert_memory_equal(out, f1, CS);
  snprintf(p, sizeof(p), "%s/x", h.dl);
  assert_int_equal(read_file(p, out, sizeof(out)), 3); /* untouched */
  hx_cleanup(&h);
}

static void test_protocol_violations(void **state) {
  int missing = 0;
  char list[1024] = "";
  (void)state;
  for (int v = 0; v < V_COUNT; v++) {
    int got = run_violation((enum viol)v);
    /* Without a control stream there is nowhere to send an ERROR: the
     * CONNECTION_CLOSE code (checked above) is the whole answer. */
    if (!got && v != V_CTL_NOT_FIRST) {
      missing++;
      strncat(list, viol_name[v], sizeof(list) - strlen(list) - 3);
      strncat(list, "; ", sizeof(list) - strlen(list) - 1);
    }
  }
  /* RECEIVER BUG (see the report): sess_fail() queues the ERROR frame and
   * closes the connection in the same callback; sftq closes without
   * flushing stream data, so the ERROR never leaves the receiver. */
  if (missing)
    fail_msg("no ERROR frame before the close in %d case(s): %s", missing,
             list);
}

/* ---- 4. digests and roots -------------------------------------------------- */

static void test_bad_digest_and_root(void **state) {
  static uint8_t data[3 * CS], bad[CS], part[3 * CS + 1], fin[3 * CS + 1],
      g[CS];
  uint8_t digests[3 * 32], root[32], groot[32], wrong[32];
  struct sft_chunk_hdr c[3], gc;
  struct sft_msg_accept a;
  struct sft_msg_cancel cancel;
  char p[400];
  size_t at;
  static struct hx h; /* static: teardown() may use it after a failure */
  (void)state;
  fill(data, sizeof(data), 1234);
  for (int i = 0; i < 3; i++) {
    c[i] = data_hdr(0, (uint64_t)i, data + i * CS, CS);
    memcpy(digests + i * 32, c[i].digest, 32);
  }
  sft_root(SFT_HASH_BLAKE3, digests, 3, root);
  memcpy(bad, data + CS, CS);
  bad[100] ^= 0x40; /* chunk 1 corrupted, header keeps the true digest */

  hx_init(&h, 0);
  hx_begin(&h, 0, 0);
  hx_connect(&h, 1);
  hx_hello(&h);
  hx_offer(&h, 0, "f", 1, 3 * CS, CS);
  get_accept(&h, 0, &a);
  assert_int_equal(a.status, SFT_ACCEPT_OK);
  assert_int_equal(a.chunk_count, 3);
  /* the bad chunk first, then the good 0 and 2 */
  hx_chunk(&h, &c[1], bad, CS, 1);
  hx_chunk(&h, &c[0], data, CS, 1);
  hx_chunk(&h, &c[2], data + 2 * CS, CS, 1);
  {
    const uint64_t idx[] = {0, 2};
    struct ackq aq = {0, idx, 2};
    hx_run(&h, p_acked, &aq, 10000);
  }
  assert_false(h.closed); /* a bad chunk is not a session error */
  assert_true(acked(&h, 0, 0));
  assert_true(acked(&h, 0, 2));
  assert_false(acked(&h, 0, 1));
  snprintf(p, sizeof(p), "%s/f.sft-part", h.dl);
  assert_int_equal(read_file(p, part, sizeof(part)), (ssize_t)(3 * CS));
  assert_memory_equal(part, data, CS);
  assert_memory_equal(part + 2 * CS, data + 2 * CS, CS);
  for (size_t i = CS; i < 2 * CS; i++)
    if (part[i] != 0)
      fail_msg("byte %zu of the corrupted chunk reached the part file", i);
  assert_dl(&h, "f.sft-part");

  /* the correct chunk 1, then COMPLETE with the right root */
  hx_chunk(&h, &c[1], data + CS, CS, 1);
  {
    const uint64_t idx[] = {1};
    struct ackq aq = {0, idx, 1};
    hx_run(&h, p_acked, &aq, 10000);
  }
  assert_true(acked(&h, 0, 1));
  hx_complete(&h, 0, root);
  wait_msg(&h, SFT_MSG_COMPLETE, 0, &at);
  {
    struct sft_msg_complete m;
    assert_int_equal(
        sft_msg_complete_decode(h.msgs[at].body, h.msgs[at].len, &m), 0);
    assert_memory_equal(m.root, root, 32);
  }

  /* file 1: good data, COMPLETE with a wrong root */
  fill(g, CS, 99);
  gc = data_hdr(1, 0, g, CS);
  sft_root(SFT_HASH_BLAKE3, gc.digest, 1, groot);
  memcpy(wrong, groot, 32);
  wrong[0] ^= 1;
  hx_offer(&h, 1, "g", 1, CS, CS);
  get_accept(&h, 1, &a);
  assert_int_equal(a.status, SFT_ACCEPT_OK);
  hx_chunk(&h, &gc, g, CS, 1);
  {
    const uint64_t idx[] = {0};
    struct ackq aq = {1, idx, 1};
    hx_run(&h, p_acked, &aq, 10000);
  }
  assert_true(acked(&h, 1, 0));
  hx_complete(&h, 1, wrong);
  wait_msg(&h, SFT_MSG_CANCEL, 1, &at);
  assert_int_equal(
      sft_msg_cancel_decode(h.msgs[at].body, h.msgs[at].len, &cancel), 0);
  assert_int_equal(cancel.reason, SFT_REASON_INTEGRITY);
  assert_false(find_msg(&h, SFT_MSG_COMPLETE, 1, NULL));
  assert_false(h.closed);
  hx_finish(&h);

  snprintf(p, sizeof(p), "%s/f", h.dl);
  assert_int_equal(read_file(p, fin, sizeof(fin)), (ssize_t)(3 * CS));
  assert_memory_equal(fin, data, 3 * CS);
  snprintf(p, sizeof(p), "%s/g", h.dl);
  assert_int_equal(access(p, F_OK), -1); /* never under the final name */
  {
    char got[256];
    list_dir(h.dl, got, sizeof(got));
    if (strcmp(got, "f") && strcmp(got, "f|g.sft-part"))
      fail_msg("download dir holds '%s'", got);
  }
  hx_cleanup(&h);
}

/* ---- 5. huge declared size ------------------------------------------------- */

static uint64_t dir_blocks(const char *dir) {
  struct dirent **v;
  uint64_t b = 0;
  int n = scandir(dir, &v, NULL, NULL);
  for (int i = 0; i < n; i++) {
    char p[600];
    struct stat sb;
    snprintf(p, sizeof(p), "%s/%s", dir, v[i]->d_name);
    if (lstat(p, &sb) == 0 && S_ISREG(sb.st_mode))
      b += (uint64_t)sb.st_blocks;
    free(v[i]);
  }
  free(v);
  return b;
}

static void test_huge_size_refused(void **state) {
  struct sft_msg_accept a;
  static struct hx h; /* static: teardown() may use it after a failure */
  (void)state;
  hx_init(&h, 0);
  hx_begin(&h, 0, 0);
  hx_connect(&h, 1);
  hx_hello(&h);
  hx_offer(&h, 0, "huge", 4, SFT_MAX_FILE_SIZE, SFT_CHUNK_SIZE_MAX); /* 1 PiB */
  get_accept(&h, 0, &a);
  assert_int_equal(a.status, SFT_ACCEPT_REFUSED);
  if (a.reason != SFT_REASON_NOSPACE && a.reason != SFT_REASON_TOO_LARGE)
    fail_msg("1 PiB refused with reason %u, want NOSPACE or TOO_LARGE",
             a.reason);
  assert_int_equal(dir_blocks(h.dl), 0);
  assert_dl(&h, "");
  assert_false(h.closed);
  hx_finish(&h);
  assert_dl(&h, "");
  hx_cleanup(&h);
}

/* ---- 6. memory bound ------------------------------------------------------- */

static long child_rss_kib(pid_t pid) {
  char p[64], line[256];
  long kib = -1;
  FILE *f;
  snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
  f = fopen(p, "r");
  if (!f)
    return -1;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
      break;
  fclose(f);
  return kib;
}

#define NSTREAMS 300
#define BIG_CS (1u << 20)

struct sentq {
  uint64_t target;
};
static int p_sent(struct hx *h, const void *arg) {
  const struct sentq *s = arg;
  sftq_stats st;
  if (h->closed || !h->c)
    return 1;
  if (sftq_conn_stats(h->c, &st))
    return 1;
  return st.stream_bytes_sent >= s->target;
}

static void test_memory_bound(void **state) {
  static uint8_t payload[BIG_CS]; /* referenced, never changed */
  struct sft_msg_accept a;
  struct sft_chunk_hdr c;
  sftq_stats st;
  static struct hx h; /* static: teardown() may use it after a failure */
  long rss0, rss;
  int w, stt;
  (void)state;
  fill(payload, sizeof(payload), 5);
  hx_init(&h, 0);
  hx_begin(&h, 0, 0);
  hx_connect(&h, 1);
  hx_hello(&h);
  /* 8 chunks of 1 MiB; 300 streams cycle over them, each with a valid
   * header (so the receiver sizes a 1 MiB buffer) and 1 MiB - 1 payload
   * bytes, never finished: 300 MiB offered, nothing completes. */
  hx_offer(&h, 0, "m", 1, 8 * (uint64_t)BIG_CS, BIG_CS);
  get_accept(&h, 0, &a);
  assert_int_equal(a.status, SFT_ACCEPT_OK);
  rss0 = child_rss_kib(h.pid);
  assert_true(rss0 > 0);
  memset(&c, 0, sizeof(c));
  c.kind = SFT_CHUNK_DATA;
  c.payload_len = BIG_CS;
  sft_blake3(payload, BIG_CS, c.digest);
  for (int i = 0; i < NSTREAMS; i++) {
    uint8_t hb[SFT_CHUNK_HDR_MAX];
    size_t hl = 0;
    int64_t sid;
    sftq_iov iov = {payload, BIG_CS - 1};
    c.index = (uint64_t)(i % 8);
    assert_int_equal(sft_chunk_hdr_encode(hb, sizeof(hb), &c, &hl), 0);
    assert_int_equal(sftq_stream_open_uni(h.c, &sid), 0);
    hx_send_raw(&h, sid, hb, hl, 0);
    assert_int_equal(sftq_stream_write(h.c, sid, &iov, 1, 0), 0);
  }
  /* Run until the transport stops moving data (flow control) or 48 MiB
   * went out; either way bounded in time. */
  {
    struct sentq sq = {48u << 20};
    uint64_t last = 0, still = 0, end = mono_ms() + 15000;
    while (!p_sent(&h, &sq) && mono_ms() < end) {
      uv_run(&h.loop, UV_RUN_ONCE);
      if (sftq_conn_stats(h.c, &st) == 0) {
        if (st.stream_bytes_sent != last) {
          last = st.stream_bytes_sent;
          still = mono_ms();
        } else if (last && mono_ms() - still > 1000) {
          break; /* blocked by the receiver's windows for 1 s */
        }
      }
    }
  }
  assert_false(h.closed);
  assert_int_equal(sftq_conn_stats(h.c, &st), 0);
  rss = child_rss_kib(h.pid);
  w = waitpid(h.pid, &stt, WNOHANG);
  assert_int_equal(w, 0); /* still alive */
  print_message("memory bound: %llu stream bytes accepted of %llu offered, "
                "receiver RSS %ld -> %ld KiB\n",
                (unsigned long long)st.stream_bytes_sent,
                (unsigned long long)NSTREAMS * BIG_CS, rss0, rss);
  /* flow control, not the attacker, decides how much is buffered */
  assert_true(st.stream_bytes_sent < 100ull << 20);
  assert_true(rss > 0 && rss < 400L * 1024);
  hx_finish(&h);
  assert_dl(&h, ""); /* the part file went with the session */
  hx_cleanup(&h);
}


/* ---- 7. reset chunk streams give their flow-control credit back ---------- */

struct unsentq {
  int64_t sid;
};
static int p_unsent0(struct hx *h, const void *arg) {
  const struct unsentq *u = arg;
  return h->closed || !h->c || sftq_stream_unsent(h->c, u->sid) == 0;
}

/* A sender that starts chunks and resets their streams (a hostile one, or
 * an honest one cancelling work) must not be able to shrink the
 * receiver's connection window to nothing: the bytes the receiver took
 * from a reset stream have to be credited back, else the session stalls
 * for good once the initial window (16 MiB) is used up. 24 x 1 MiB are
 * sent and reset, then one small chunk must still get through. */
static void test_reset_streams_keep_credit(void **state) {
  static uint8_t payload[BIG_CS], small[CS];
  struct sft_msg_accept a;
  struct sft_chunk_hdr c, sc;
  static struct hx h; /* static: teardown() may use it after a failure */
  int drained = 0;
  (void)state;
  fill(payload, sizeof(payload), 77);
  fill(small, sizeof(small), 78);
  hx_init(&h, 0);
  hx_begin(&h, 0, 0);
  hx_connect(&h, 1);
  hx_hello(&h);
  hx_offer(&h, 0, "r", 1, BIG_CS, BIG_CS);
  hx_offer(&h, 1, "s", 1, CS, CS);
  get_accept(&h, 0, &a);
  assert_int_equal(a.status, SFT_ACCEPT_OK);
  get_accept(&h, 1, &a);
  assert_int_equal(a.status, SFT_ACCEPT_OK);
  c = data_hdr(0, 0, payload, BIG_CS);
  for (int i = 0; i < 24; i++) {
    uint8_t hb[SFT_CHUNK_HDR_MAX];
    size_t hl = 0;
    struct unsentq u;
    sftq_iov iov = {payload, BIG_CS - 1};
    assert_int_equal(sft_chunk_hdr_encode(hb, sizeof(hb), &c, &hl), 0);
    assert_int_equal(sftq_stream_open_uni(h.c, &u.sid), 0);
    hx_send_raw(&h, u.sid, hb, hl, 0);
    assert_int_equal(sftq_stream_write(h.c, u.sid, &iov, 1, 0), 0);
    if (!hx_run(&h, p_unsent0, &u, 3000))
      break; /* the receiver's window is closed */
    assert_false(h.closed);
    drained++;
    assert_int_equal(sftq_stream_cancel(h.c, u.sid, 99), 0);
  }
  sc = data_hdr(1, 0, small, CS);
  hx_chunk(&h, &sc, small, CS, 1);
  {
    const uint64_t idx[] = {0};
    struct ackq aq = {1, idx, 1};
    hx_run(&h, p_acked, &aq, 5000);
  }
  assert_false(h.closed);
  /* RECEIVER BUG (see the report): cb_stream_close() frees the chunk
   * state of a reset stream without sftq_stream_consume(k->credit). */
  if (drained < 24 || !acked(&h, 1, 0))
    fail_msg("flow-control credit leaked by reset streams: only %d of 24 "
             "reset 1 MiB streams drained, small chunk %s",
             drained, acked(&h, 1, 0) ? "acked" : "never acked");
  hx_finish(&h);
  hx_cleanup(&h);
}

/* ---- 8. FEC over the wire: parity, rebuilds, NEED ------------------------- */

#define FCS (16u * 1024) /* chunk size of the FEC files */

/* A test file with its stripe geometry, digests and root. */
struct ffile {
  uint64_t id, size, count, nstripes;
  uint32_t cs, k, m;
  uint8_t *data;    /* size bytes */
  uint8_t *digests; /* count x 32 */
  uint8_t root[32];
};

static void ff_init(struct ffile *f, uint64_t id, uint64_t size, uint32_t cs,
                    uint32_t k, uint32_t m, uint32_t seed) {
  memset(f, 0, sizeof(*f));
  f->id = id;
  f->size = size;
  f->cs = cs;
  f->k = k;
  f->m = m;
  f->count = sft_chunk_count(size, cs);
  f->nstripes = sft_stripe_count(f->count, k);
  f->data = malloc(size ? size : 1);
  f->digests = malloc(f->count * 32 + 1);
  assert_non_null(f->data);
  assert_non_null(f->digests);
  fill(f->data, size, seed);
  for (uint64_t i = 0; i < f->count; i++)
    sft_blake3(f->data + sft_chunk_offset(i, cs), sft_chunk_len(size, cs, i),
               f->digests + i * 32);
  sft_root(SFT_HASH_BLAKE3, f->digests, (size_t)f->count, f->root);
}

static void ff_free(struct ffile *f) {
  free(f->data);
  free(f->digests);
  f->data = f->digests = NULL;
}

/* The m parity shards of stripe |s| into par[0 .. m * cs): lib/fec over the
 * data chunks zero-padded to cs, zero shards past the end of the file. */
static void ff_parity(const struct ffile *f, uint64_t s, uint8_t *par) {
  struct sft_fec *fec = NULL;
  const uint8_t *d[SFT_MAX_STRIPE];
  uint8_t *p[SFT_MAX_STRIPE];
  uint8_t *shards = calloc(f->k, f->cs);
  assert_non_null(shards);
  for (uint32_t j = 0; j < f->k; j++) {
    uint64_t i = s * f->k + j;
    if (i < f->count)
      memcpy(shards + (size_t)j * f->cs, f->data + sft_chunk_offset(i, f->cs),
             sft_chunk_len(f->size, f->cs, i));
    d[j] = shards + (size_t)j * f->cs;
  }
  for (uint32_t j = 0; j < f->m; j++)
    p[j] = par + (size_t)j * f->cs;
  assert_int_equal(sft_fec_new(&fec, f->k, f->m), 0);
  assert_int_equal(sft_fec_encode(fec, d, p, f->cs), 0);
  sft_fec_del(fec);
  free(shards);
}

static void ff_offer(struct hx *h, const struct ffile *f, const char *name) {
  struct sft_msg_accept a;
  hx_offer_km(h, f->id, name, f->size, f->cs, f->k, f->m);
  get_accept(h, f->id, &a);
  assert_int_equal(a.status, SFT_ACCEPT_OK);
  assert_int_equal(a.chunk_count, f->count);
}

static void ff_send_data(struct hx *h, const struct ffile *f, uint64_t i) {
  const uint8_t *p = f->data + sft_chunk_offset(i, f->cs);
  uint32_t n = sft_chunk_len(f->size, f->cs, i);
  struct sft_chunk_hdr c = data_hdr(f->id, i, p, n);
  hx_chunk(h, &c, p, n, 1);
}

/* Same, the payload referenced (f->data must outlive the connection). */
static void ff_send_data_ref(struct hx *h, const struct ffile *f,
                             uint64_t i) {
  const uint8_t *p = f->data + sft_chunk_offset(i, f->cs);
  uint32_t n = sft_chunk_len(f->size, f->cs, i);
  struct sft_chunk_hdr c = data_hdr(f->id, i, p, n);
  uint8_t hb[SFT_CHUNK_HDR_MAX];
  size_t hl = 0;
  int64_t sid;
  sftq_iov iov = {p, n};
  assert_int_equal(sft_chunk_hdr_encode(hb, sizeof(hb), &c, &hl), 0);
  assert_int_equal(sftq_stream_open_uni(h->c, &sid), 0);
  hx_send_raw(h, sid, hb, hl, 0);
  assert_int_equal(sftq_stream_write(h->c, sid, &iov, 1, SFTQ_WRITE_FIN), 0);
}

/* A PARITY stream for shard (s, pidx) with |payload| (cs bytes) and the
 * header digest |digest| (NULL: the payload's own). With |copy| 0 the
 * payload is referenced and must outlive the connection. */
static void ff_send_parity(struct hx *h, const struct ffile *f, uint64_t s,
                           uint32_t pidx, const uint8_t *payload,
                           const uint8_t *digest, int copy) {
  struct sft_chunk_hdr c;
  uint8_t hb[SFT_CHUNK_HDR_MAX];
  size_t hl = 0;
  int64_t sid;
  sftq_iov iov = {payload, f->cs};
  memset(&c, 0, sizeof(c));
  c.kind = SFT_CHUNK_PARITY;
  c.file_id = f->id;
  c.index = s;
  c.parity_index = pidx;
  c.payload_len = f->cs;
  if (digest)
    memcpy(c.digest, digest, 32);
  else
    sft_blake3(payload, f->cs, c.digest);
  if (copy) {
    hx_chunk(h, &c, payload, f->cs, 1);
    return;
  }
  assert_int_equal(sft_chunk_hdr_encode(hb, sizeof(hb), &c, &hl), 0);
  assert_int_equal(sftq_stream_open_uni(h->c, &sid), 0);
  hx_send_raw(h, sid, hb, hl, 0);
  assert_int_equal(sftq_stream_write(h->c, sid, &iov, 1, SFTQ_WRITE_FIN), 0);
}

/* Incremental view of the receiver's ACK and NEED messages for one file
 * (the receiver may send many NEEDs: each message is decoded once). */
struct ftrack {
  const struct ffile *f;
  size_t scanned;
  uint8_t *acked;      /* per chunk */
  uint32_t *need_last; /* per stripe: count of the latest NEED, 0 = none */
  uint64_t *need_n;    /* per stripe: NEEDs received */
  size_t *need_at;     /* per stripe: message index of the latest NEED */
  uint64_t nneeds, nacked;
};

static void ft_init(struct ftrack *t, const struct ffile *f) {
  memset(t, 0, sizeof(*t));
  t->f = f;
  t->acked = calloc(f->count + 1, 1);
  t->need_last = calloc(f->nstripes + 1, sizeof(*t->need_last));
  t->need_n = calloc(f->nstripes + 1, sizeof(*t->need_n));
  t->need_at = calloc(f->nstripes + 1, sizeof(*t->need_at));
  assert_true(t->acked && t->need_last && t->need_n && t->need_at);
}

static void ft_free(struct ftrack *t) {
  free(t->acked);
  free(t->need_last);
  free(t->need_n);
  free(t->need_at);
  memset(t, 0, sizeof(*t));
}

static void ft_scan(struct hx *h, struct ftrack *t) {
  static struct sft_ack_range st[SFT_MAX_ACK_RANGES];
  for (; t->scanned < h->nmsgs; t->scanned++) {
    const struct rmsg *m = &h->msgs[t->scanned];
    if (m->type == SFT_MSG_ACK) {
      struct sft_msg_ack a;
      assert_int_equal(
          sft_msg_ack_decode(m->body, m->len, &a, st, SFT_MAX_ACK_RANGES), 0);
      if (a.file_id != t->f->id)
        continue;
      for (size_t r = 0; r < a.nranges; r++) {
        if (st[r].last >= t->f->count)
          fail_msg("ACK range [%llu,%llu] past the file's %llu chunks",
                   (unsigned long long)st[r].first,
                   (unsigned long long)st[r].last,
                   (unsigned long long)t->f->count);
        for (uint64_t i = st[r].first; i <= st[r].last; i++) {
          t->nacked += !t->acked[i];
          t->acked[i] = 1;
        }
      }
    } else if (m->type == SFT_MSG_NEED) {
      struct sft_msg_need n;
      assert_int_equal(sft_msg_need_decode(m->body, m->len, &n), 0);
      if (n.file_id != t->f->id)
        continue;
      if (n.stripe >= t->f->nstripes)
        fail_msg("NEED for stripe %llu of %llu",
                 (unsigned long long)n.stripe,
                 (unsigned long long)t->f->nstripes);
      t->need_last[n.stripe] = n.count;
      t->need_n[n.stripe]++;
      t->need_at[n.stripe] = t->scanned;
      t->nneeds++;
    }
  }
}

static int p_ft_all_acked(struct hx *h, const void *arg) {
  struct ftrack *t = (struct ftrack *)(uintptr_t)arg;
  ft_scan(h, t);
  return h->closed || t->nacked == t->f->count;
}

struct needq {
  struct ftrack *t;
  uint64_t stripe;
  uint32_t count;
};
static int p_ft_need(struct hx *h, const void *arg) {
  const struct needq *q = arg;
  ft_scan(h, q->t);
  return h->closed || (q->t->need_n[q->stripe] &&
                       q->t->need_last[q->stripe] == q->count);
}

/* COMPLETE with the right root -> COMPLETE echoed (FINALIZE ran), then the
 * session ends and the file holds exactly the sent bytes. */
static void ff_complete_and_check(struct hx *h, const struct ffile *f,
                                  const char *name) {
  struct sft_msg_complete m;
  char p[400];
  size_t at;
  uint8_t *back = malloc(f->size + 2);
  assert_non_null(back);
  hx_complete(h, f->id, f->root);
  wait_msg(h, SFT_MSG_COMPLETE, f->id, &at);
  assert_int_equal(sft_msg_complete_decode(h->msgs[at].body, h->msgs[at].len,
                                           &m),
                   0);
  assert_memory_equal(m.root, f->root, 32);
  assert_false(h->closed);
  hx_finish(h);
  snprintf(p, sizeof(p), "%s/%s", h->dl, name);
  assert_int_equal(read_file(p, back, f->size + 1), (ssize_t)f->size);
  assert_memory_equal(back, f->data, f->size);
  free(back);
  assert_dl(h, name);
}

/* 10+3, 10 chunks: 7 data chunks and the 3 parity shards arrive, the
 * receiver rebuilds chunks 7..9 and acks them; they are never sent. */
static void test_fec_rebuild_from_parity(void **state) {
  static struct hx h; /* static: teardown() may use it after a failure */
  struct ffile f;
  struct ftrack t;
  uint8_t *par = malloc(3 * FCS);
  (void)state;
  assert_non_null(par);
  ff_init(&f, 0, 10 * (uint64_t)FCS, FCS, 10, 3, 4242);
  ff_parity(&f, 0, par);
  hx_init(&h, 0);
  hx_begin(&h, 0, 0);
  hx_connect(&h, 1);
  hx_hello(&h);
  ff_offer(&h, &f, "fec1");
  ft_init(&t, &f);
  for (uint64_t i = 0; i < 7; i++)
    ff_send_data(&h, &f, i);
  for (uint32_t p = 0; p < 3; p++)
    ff_send_parity(&h, &f, 0, p, par + (size_t)p * FCS, NULL, 1);
  hx_run(&h, p_ft_all_acked, &t, 10000);
  assert_false(h.closed);
  for (uint64_t i = 0; i < f.count; i++)
    if (!t.acked[i])
      fail_msg("chunk %llu never acked (%s)", (unsigned long long)i,
               i >= 7 ? "not rebuilt from parity" : "data chunk");
  print_message("fec rebuild: 10 chunks acked, 3 rebuilt from parity, "
                "0 resends, %llu NEED(s) seen\n",
                (unsigned long long)t.nneeds);
  ff_complete_and_check(&h, &f, "fec1");
  ft_free(&t);
  ff_free(&f);
  free(par);
  hx_cleanup(&h);
}

/* 13 chunks, 10+3, last chunk short: stripe 0 (10 chunks) loses chunk 4 and
 * gets parity 1; the short stripe 1 (chunks 10..12, zero shards for 3..9)
 * gets chunk 10 and parity 0 and 2. Both are rebuilt. */
static void test_fec_rebuild_short_stripe(void **state) {
  static struct hx h; /* static: teardown() may use it after a failure */
  struct ffile f;
  struct ftrack t;
  uint8_t *p0 = malloc(3 * FCS), *p1 = malloc(3 * FCS);
  (void)state;
  assert_true(p0 && p1);
  ff_init(&f, 0, 12 * (uint64_t)FCS + 5000, FCS, 10, 3, 777);
  assert_int_equal(f.count, 13);
  assert_int_equal(f.nstripes, 2);
  ff_parity(&f, 0, p0);
  ff_parity(&f, 1, p1);
  hx_init(&h, 0);
  hx_begin(&h, 0, 0);
  hx_connect(&h, 1);
  hx_hello(&h);
  ff_offer(&h, &f, "fec2");
  ft_init(&t, &f);
  for (uint64_t i = 0; i < 11; i++)
    if (i != 4)
      ff_send_data(&h, &f, i);
  ff_send_parity(&h, &f, 0, 1, p0 + FCS, NULL, 1);
  ff_send_parity(&h, &f, 1, 0, p1, NULL, 1);
  ff_send_parity(&h, &f, 1, 2, p1 + 2 * FCS, NULL, 1);
  hx_run(&h, p_ft_all_acked, &t, 10000);
  assert_false(h.closed);
  for (uint64_t i = 0; i < f.count; i++)
    if (!t.acked[i])
      fail_msg("chunk %llu never acked", (unsigned long long)i);
  ff_complete_and_check(&h, &f, "fec2");
  ft_free(&t);
  ff_free(&f);
  free(p0);
  free(p1);
  hx_cleanup(&h);
}

/* Parity 2 arrives corrupted (header: the true digest). It must not be
 * kept: with only 2 good shards for 3 missing chunks the receiver asks
 * NEED(stripe 0, 1) and rebuilds nothing; the data chunks then complete
 * the file. (Had the bad shard been used, chunks 7..9 would be rebuilt
 * wrong and acked, and no NEED with count 1 would come.) */
static void test_fec_bad_parity_ignored(void **state) {
  static struct hx h; /* static: teardown() may use it after a failure */
  struct ffile f;
  struct ftrack t;
  uint8_t d2[32];
  uint8_t *par = malloc(3 * FCS);
  struct needq nq;
  (void)state;
  assert_non_null(par);
  ff_init(&f, 0, 10 * (uint64_t)FCS, FCS, 10, 3, 99);
  ff_parity(&f, 0, par);
  sft_blake3(par + 2 * FCS, FCS, d2);
  par[2 * FCS + 1234] ^= 0x10;
  hx_init(&h, 0);
  hx_begin(&h, 0, 0);
  hx_connect(&h, 1);
  hx_hello(&h);
  ff_offer(&h, &f, "fec3");
  ft_init(&t, &f);
  for (uint64_t i = 0; i < 7; i++)
    ff_send_data(&h, &f, i);
  ff_send_parity(&h, &f, 0, 2, par + 2 * FCS, d2, 1); /* the bad one first */
  ff_send_parity(&h, &f, 0, 0, par, NULL, 1);
  ff_send_parity(&h, &f, 0, 1, par + FCS, NULL, 1);
  nq.t = &t;
  nq.stripe = 0;
  nq.count = 1;
  hx_run(&h, p_ft_need, &nq, 10000);
  assert_false(h.closed);
  if (!t.need_n[0] || t.need_last[0] != 1)
    fail_msg("no NEED(stripe 0, count 1): %llu NEEDs, last count %u",
             (unsigned long long)t.need_n[0], t.need_last[0]);
  for (uint64_t i = 7; i < 10; i++)
    if (t.acked[i])
      fail_msg("chunk %llu acked: rebuilt with the corrupt parity shard",
               (unsigned long long)i);
  for (uint64_t i = 7; i < 10; i++)
    ff_send_data(&h, &f, i);
  hx_run(&h, p_ft_all_acked, &t, 10000);
  assert_int_equal(t.nacked, f.count);
  ff_complete_and_check(&h, &f, "fec3");
  ft_free(&t);
  ff_free(&f);
  free(par);
  hx_cleanup(&h);
}

/* 13 chunks (10+3), chunk 3 never sent, no parity: the receiver asks
 * NEED(stripe 0, count 1) within a bounded time (2 x rtt, 100 ms before
 * the first RTT sample) and never for the complete stripe 1. The NEED is
 * answered with parity shard 0, as a sender does: rebuilt, complete. */
static void test_fec_need_for_gap(void **state) {
  static struct hx h; /* static: teardown() may use it after a failure */
  struct ffile f;
  struct ftrack t;
  struct needq nq;
  uint64_t t0, t1;
  uint8_t *par = malloc(3 * FCS);
  (void)state;
  assert_non_null(par);
  ff_init(&f, 0, 13 * (uint64_t)FCS, FCS, 10, 3, 31337);
  ff_parity(&f, 0, par);
  hx_init(&h, 0);
  hx_begin(&h, 0, 0);
  hx_connect(&h, 1);
  hx_hello(&h);
  ff_offer(&h, &f, "fec5");
  ft_init(&t, &f);
  for (uint64_t i = 0; i < f.count; i++)
    if (i != 3)
      ff_send_data(&h, &f, i);
  t0 = mono_ms();
  nq.t = &t;
  nq.stripe = 0;
  nq.count = 1;
  hx_run(&h, p_ft_need, &nq, 5000);
  t1 = mono_ms();
  assert_false(h.closed);
  if (!t.need_n[0] || t.need_last[0] != 1)
    fail_msg("no NEED(stripe 0, count 1) within 5 s: %llu NEEDs, last %u",
             (unsigned long long)t.need_n[0], t.need_last[0]);
  assert_int_equal(t.need_n[1], 0); /* stripe 1 is whole */
  assert_false(t.acked[3]);
  print_message("NEED(stripe 0, 1) %llu ms after the last chunk was queued\n",
                (unsigned long long)(t1 - t0));
  ff_send_parity(&h, &f, 0, 0, par, NULL, 1);
  hx_run(&h, p_ft_all_acked, &t, 10000);
  assert_int_equal(t.nacked, f.count);
  assert_int_equal(t.need_n[1], 0);
  print_message("NEEDs received for stripe 0 in %llu ms: %llu\n",
                (unsigned long long)(mono_ms() - t0),
                (unsigned long long)t.need_n[0]);
  ff_complete_and_check(&h, &f, "fec5");
  ft_free(&t);
  ff_free(&f);
  free(par);
  hx_cleanup(&h);
}

#if defined(__SANITIZE_ADDRESS__)
#define HX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HX_ASAN 1
#endif
#endif

struct needall {
  struct ftrack *t;
  size_t mark;
};
/* Every stripe got a NEED after message |mark|. */
static int p_ft_need_all(struct hx *h, const void *arg) {
  const struct needall *q = arg;
  ft_scan(h, q->t);
  if (h->closed)
    return 1;
  for (uint64_t s = 0; s < q->t->f->nstripes; s++)
    if (!q->t->need_n[s] || q->t->need_at[s] < q->mark)
      return 0;
  return 1;
}

struct rebuiltq {
  struct ftrack *t;
  const uint8_t *kept; /* per stripe */
  uint64_t dropped;    /* a stripe whose parity was not kept */
};
static int p_flood_done(struct hx *h, const void *arg) {
  const struct rebuiltq *q = arg;
  ft_scan(h, q->t);
  if (h->closed)
    return 1;
  for (uint64_t s = 0; s < q->t->f->nstripes; s++)
    if (q->kept[s] && !q->t->acked[2 * s + 1])
      return 0;
  return q->t->acked[2 * q->dropped] && q->t->need_last[q->dropped] == 1;
}

#define FLOOD_CS (64u * 1024)
#define FLOOD_STRIPES 512
#define FLOOD_MAX_KEPT 64 /* sft_xrecv_params.max_parity_stripes default */

/* 2+1 stripes, 512 of them (64 MiB file), no data: one valid parity shard
 * per stripe (32 MiB). Each shard is "needed" (2 missing, 1 held), so only
 * the parity table bounds what the receiver keeps: at most 64 stripes'
 * shards (4 MiB), the rest dropped. Counted from the receiver's behaviour:
 * NEED(s, 1) = 1 shard held, NEED(s, 2) = none; then data chunk 2s of
 * each kept stripe must be rebuilt into 2s + 1 (parity really held), and
 * the data chunk of a dropped stripe is not (NEED(s, 1) instead). */
static void test_fec_parity_flood_bounded(void **state) {
  static struct hx h; /* static: teardown() may use it after a failure */
  static uint8_t small[CS];
  struct ffile f;
  struct ftrack t;
  struct sft_chunk_hdr sc;
  uint8_t *par = NULL;
  uint8_t kept[FLOOD_STRIPES];
  uint64_t nkept = 0, ndropped = 0, dropped = UINT64_MAX, rebuilt = 0;
  long rss0, rss1;
  (void)state;
  hx_init(&h, 0);
  hx_begin(&h, 0, 0); /* fork first: the child does not map our buffers */
  par = malloc((size_t)FLOOD_STRIPES * FLOOD_CS);
  assert_non_null(par);
  ff_init(&f, 0, 2ull * FLOOD_STRIPES * FLOOD_CS, FLOOD_CS, 2, 1, 5150);
  for (uint64_t s = 0; s < FLOOD_STRIPES; s++)
    ff_parity(&f, s, par + s * FLOOD_CS);
  fill(small, CS, 3);
  hx_connect(&h, 1);
  hx_hello(&h);
  ff_offer(&h, &f, "flood");
  hx_offer_km(&h, 1, "marker", CS, CS, 10, 0);
  {
    struct sft_msg_accept a;
    get_accept(&h, 1, &a);
    assert_int_equal(a.status, SFT_ACCEPT_OK);
  }
  ft_init(&t, &f);
  rss0 = child_rss_kib(h.pid);
  for (uint64_t s = 0; s < FLOOD_STRIPES; s++)
    ff_send_parity(&h, &f, s, 0, par + s * FLOOD_CS, NULL, 0);
  {
    struct sentq sq = {(uint64_t)FLOOD_STRIPES * FLOOD_CS};
    hx_run(&h, p_sent, &sq, 30000);
    assert_false(h.closed);
    assert_true(p_sent(&h, &sq));
  }
  /* a chunk of another file after the flood: once it is acked the parity
   * streams before it have been taken; then one more NEED round. */
  sc = data_hdr(1, 0, small, CS);
  hx_chunk(&h, &sc, small, CS, 1);
  {
    const uint64_t idx[] = {0};
    struct ackq aq = {1, idx, 1};
    hx_run(&h, p_acked, &aq, 10000);
    assert_true(acked(&h, 1, 0));
  }
  {
    struct needall q = {&t, h.nmsgs};
    hx_run(&h, p_ft_need_all, &q, 10000);
    assert_false(h.closed);
    assert_true(p_ft_need_all(&h, &q));
  }
  rss1 = child_rss_kib(h.pid);
  for (uint64_t s = 0; s < FLOOD_STRIPES; s++) {
    kept[s] = t.need_last[s] == 1;
    nkept += kept[s];
    if (t.need_last[s] == 2) {
      ndropped++;
      if (dropped == UINT64_MAX)
        dropped = s;
    }
  }
  print_message("parity flood: %d shards of %u KiB, %llu kept, %llu dropped, "
                "%llu NEEDs; receiver RSS %ld -> %ld KiB\n",
                FLOOD_STRIPES, FLOOD_CS / 1024, (unsigned long long)nkept,
                (unsigned long long)ndropped, (unsigned long long)t.nneeds,
                rss0, rss1);
  assert_int_equal(nkept + ndropped, FLOOD_STRIPES);
  assert_true(nkept >= 1 && nkept <= FLOOD_MAX_KEPT);
  assert_true(dropped != UINT64_MAX);
  assert_int_equal(t.nacked, 0);
#ifndef HX_ASAN
  /* kept parity: <= 4 MiB; all of it would be 32 MiB. (Under ASan freed
   * buffers sit in the quarantine, so RSS says nothing there.) */
  assert_true(rss0 > 0 && rss1 > 0);
  assert_true(rss1 - rss0 < 24L * 1024);
#endif
  /* data chunk 2s of every kept stripe -> 2s + 1 rebuilt from parity */
  for (uint64_t s = 0; s < FLOOD_STRIPES; s++)
    if (kept[s])
      ff_send_data_ref(&h, &f, 2 * s);
  ff_send_data_ref(&h, &f, 2 * dropped);
  {
    struct rebuiltq q = {&t, kept, dropped};
    uint64_t t0 = mono_ms();
    if (!hx_run(&h, p_flood_done, &q, 20000))
      print_message("flood: rebuilds not all seen after %llu ms (%llu "
                    "chunks acked)\n",
                    (unsigned long long)(mono_ms() - t0),
                    (unsigned long long)t.nacked);
    assert_false(h.closed);
  }
  for (uint64_t s = 0; s < FLOOD_STRIPES; s++)
    if (kept[s] && !t.acked[2 * s + 1])
      print_message("stripe %llu: parity kept, chunk %llu %s, chunk %llu "
                    "not rebuilt, %llu NEEDs, last NEED count %u\n",
                    (unsigned long long)s, (unsigned long long)(2 * s),
                    t.acked[2 * s] ? "acked" : "NOT acked",
                    (unsigned long long)(2 * s + 1),
                    (unsigned long long)t.need_n[s], t.need_last[s]);
  for (uint64_t s = 0; s < FLOOD_STRIPES; s++)
    if (kept[s]) {
      if (!t.acked[2 * s + 1])
        fail_msg("stripe %llu: parity kept but chunk %llu not rebuilt",
                 (unsigned long long)s, (unsigned long long)(2 * s + 1));
      rebuilt++;
    }
  assert_int_equal(rebuilt, nkept);

  assert_true(t.acked[2 * dropped]);
  assert_int_equal(t.need_last[dropped], 1);
  assert_false(t.acked[2 * dropped + 1]); /* nothing to rebuild it from */
  assert_int_equal(t.nacked, 2 * nkept + 1);
  hx_finish(&h);
  ft_free(&t);
  ff_free(&f);
  free(par); /* referenced by the streams: only after the client is gone */
  hx_cleanup(&h);
}

/* ---- 6. end of session ------------------------------------------------------ */

static int p_c2_connected(struct hx *h, const void *a) {
  (void)a;
  return h->c2_connected || h->c2_closed;
}
static int p_c2_answered(struct hx *h, const void *a) {
  (void)a;
  return h->c2_rx > 0 || h->c2_closed;
}
static int p_c2_closed(struct hx *h, const void *a) {
  (void)a;
  return h->c2_closed;
}

/* A session over two connections: every file done, then the sender ends the
 * control stream (FIN) on the first. The session is over, so the receiver
 * closes both connections at once and a --once receiver exits: it must not
 * wait for the sender's CONNECTION_CLOSE on the second one, which a lossy
 * link can lose (session 6: a --once receiver with 4 connections exited
 * 40 s after the sender at 10 % loss, the idle timeout). */
static void test_fin_ends_every_link(void **state) {
  static struct hx h;
  struct ffile f;
  struct ftrack t;
  struct sft_msg_hello m;
  uint8_t buf[512];
  size_t n = 0;
  int64_t sid2 = -1;
  uint64_t t0;
  int st = 0;
  pid_t w = 0;
  (void)state;
  ff_init(&f, 0, 3 * (uint64_t)FCS, FCS, 10, 3, 77);
  hx_init(&h, 0);
  hx_begin(&h, 0, 1);
  hx_connect(&h, 1);
  hx_hello(&h);
  /* the second link: its own connection, control stream and HELLO */
  assert_int_equal(sftq_connect(h.q, "127.0.0.1", h.port, &h, &h.c2), 0);
  assert_true(hx_run(&h, p_c2_connected, NULL, 10000));
  assert_true(h.c2_connected);
  assert_int_equal(sftq_stream_open_bidi(h.c2, &sid2), 0);
  memset(&m, 0, sizeof(m));
  m.version_current = SFT_PROTO_VERSION_CURRENT;
  m.version_min = SFT_PROTO_VERSION_MIN;
  memset(m.session_id, 0x5a, sizeof(m.session_id)); /* hx_hello's session */
  m.role = SFT_ROLE_SENDER;
  m.agent_len = (size_t)snprintf(m.agent, sizeof(m.agent), "hostile/2");
  assert_int_equal(sft_msg_hello_encode(buf, sizeof(buf), &m, &n), 0);
  {
    sftq_iov iov = {buf, n};
    assert_int_equal(sftq_stream_write(h.c2, sid2, &iov, 1, SFTQ_WRITE_COPY),
                     0);
  }
  /* the receiver answered: the link is attached to the session */
  assert_true(hx_run(&h, p_c2_answered, NULL, 10000));
  assert_false(h.c2_closed);
  /* one file, complete and echoed */
  ff_offer(&h, &f, "done1");
  ft_init(&t, &f);
  for (uint64_t i = 0; i < f.count; i++)
    ff_send_data(&h, &f, i);
  hx_run(&h, p_ft_all_acked, &t, 10000);
  assert_int_equal(t.nacked, f.count);
  {
    size_t at;
    hx_complete(&h, f.id, f.root);
    wait_msg(&h, SFT_MSG_COMPLETE, f.id, &at);
  }
  assert_false(h.closed);
  assert_false(h.c2_closed);
  /* end the session on link 1 only */
  t0 = mono_ms();
  hx_send_raw(&h, h.ctl.sid, NULL, 0, 1);
  hx_run(&h, p_c2_closed, NULL, 5000);
  if (!h.c2_closed)
    fail_msg("the second connection was still open %llu ms after the "
             "session ended", (unsigned long long)(mono_ms() - t0));
  hx_run(&h, p_closed, NULL, 5000);
  assert_true(h.closed);
  /* on link 1 it answered our FIN with its own before closing (closing at
   * once could lose the ACK of ours with its CONNECTION_CLOSE) */
  assert_true(h.ctl_fin);
  /* --once: the receiver exits by itself, cleanly */
  while ((w = waitpid(h.pid, &st, WNOHANG)) == 0 && mono_ms() < t0 + 5000) {
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
  if (w != h.pid)
    fail_msg("the --once receiver had not exited %llu ms after the session "
             "ended", (unsigned long long)(mono_ms() - t0));
  assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  print_message("session end over 2 links: both closed and the receiver "
                "exited %llu ms after the FIN\n",
                (unsigned long long)(mono_ms() - t0));
  h.pid = -1;
  g_child = -1;
  hx_finish(&h);
  {
    char p[400];
    uint8_t *back = malloc(f.size + 1);
    assert_non_null(back);
    snprintf(p, sizeof(p), "%s/done1", h.dl);
    assert_int_equal(read_file(p, back, f.size + 1), (ssize_t)f.size);
    assert_memory_equal(back, f.data, f.size);
    free(back);
  }
  ft_free(&t);
  ff_free(&f);
  hx_cleanup(&h);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_hostile_names_refused, teardown),
      cmocka_unit_test_teardown(test_name_over_wire_bound, teardown),
      cmocka_unit_test_teardown(test_symlinks_and_existing, teardown),
      cmocka_unit_test_teardown(test_protocol_violations, teardown),
      cmocka_unit_test_teardown(test_early_chunks, teardown),
      cmocka_unit_test_teardown(test_bad_digest_and_root, teardown),
      cmocka_unit_test_teardown(test_huge_size_refused, teardown),
      cmocka_unit_test_teardown(test_memory_bound, teardown),
      cmocka_unit_test_teardown(test_reset_streams_keep_credit, teardown),
      cmocka_unit_test_teardown(test_fec_rebuild_from_parity, teardown),
      cmocka_unit_test_teardown(test_fec_rebuild_short_stripe, teardown),
      cmocka_unit_test_teardown(test_fec_bad_parity_ignored, teardown),
      cmocka_unit_test_teardown(test_fec_need_for_gap, teardown),
      cmocka_unit_test_teardown(test_fec_parity_flood_bounded, teardown),
      cmocka_unit_test_teardown(test_fin_ends_every_link, teardown),
  };
  signal(SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests(tests, NULL, NULL);
}
