/*
 * gRPC service (src/daemon/grpc): the server runs on a uv loop with a FAKE
 * handler table (an in-memory table of transfers); a python3-grpcio client
 * (tests/integration/test_grpc.py) is spawned with uv_spawn and drives every
 * RPC. Also: the request decoder without a server, constructor errors,
 * shutdown with calls in flight, TLS. Every server test ends with
 * uv_loop_close() == 0.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "daemon/grpc/grpc.h"
#include "sft/hash.h"

#define TOKEN "test-token-0123456789abcdef"
#define PY_SCRIPT SFT_SOURCE_DIR "/tests/integration/test_grpc.py"

/* ---- the fake daemon ----------------------------------------------------- */

struct fake {
  struct sftd_grpc_status t[16];
  size_t n;
  unsigned next_id;
  unsigned chunks_accepted, chunks_rejected;
  uint64_t last_file_id, last_chunk_index;
  size_t last_len;
  bool digests_ok;   /* every chunk's digest matched its data */
  bool wrong_thread; /* a handler ran off the loop thread */
  unsigned watch_polls;
  size_t sendfile_npaths;
  pthread_t loop_thread;
};

static void on_loop(struct fake *f) {
  if (!pthread_equal(pthread_self(), f->loop_thread))
    f->wrong_thread = true;
}

static struct sftd_grpc_status mk(const char *id, enum sftd_grpc_state st,
                                  uint64_t cd, uint64_t ct) {
  struct sftd_grpc_status s;
  memset(&s, 0, sizeof(s));
  snprintf(s.id, sizeof(s.id), "%s", id);
  s.state = st;
  s.priority = SFTD_GRPC_PRIO_NORMAL;
  s.chunks_done = cd;
  s.chunks_total = ct;
  s.bytes_done = cd * 1000;
  s.bytes_total = ct * 1000;
  return s;
}

static void fake_init(struct fake *f) {
  memset(f, 0, sizeof(*f));
  f->loop_thread = pthread_self();
  f->digests_ok = true;
  f->next_id = 4;
  f->t[0] = mk("t1", SFTD_GRPC_STATE_TRANSFERRING, 1, 10);
  f->t[0].rate_bps = 12345.5;
  snprintf(f->t[0].peer, sizeof(f->t[0].peer), "10.0.0.2:7000");
  f->t[1] = mk("t2", SFTD_GRPC_STATE_PAUSED, 3, 10);
  f->t[2] = mk("t3", SFTD_GRPC_STATE_COMPLETED, 10, 10);
  f->t[3] = mk("w1", SFTD_GRPC_STATE_TRANSFERRING, 0, 5);
  f->n = 4;
}

static struct sftd_grpc_status *find(struct fake *f, const char *id) {
  for (size_t i = 0; i < f->n; i++)
    if (strcmp(f->t[i].id, id) == 0)
      return &f->t[i];
  return NULL;
}

static bool is_terminal(enum sftd_grpc_state s) {
  return s == SFTD_GRPC_STATE_COMPLETED || s == SFTD_GRPC_STATE_FAILED;
}

static enum sftd_grpc_code h_chunk(void *ud, const struct sftd_grpc_chunk *in,
                                   bool *accepted, char *msg) {
  struct fake *f = ud;
  on_loop(f);
  uint8_t d[SFT_HASH_LEN];
  sft_blake3(in->data, in->len, d);
  if (memcmp(d, in->digest, SFT_HASH_LEN) != 0)
    f->digests_ok = false;
  if (strcmp(in->session_id, "s1") != 0) {
    f->chunks_rejected++;
    *accepted = false;
    snprintf(msg, SFTD_GRPC_TEXT_MAX + 1, "unknown session");
    return SFTD_GRPC_OK;
  }
  f->chunks_accepted++;
  f->last_file_id = in->file_id;
  f->last_chunk_index = in->chunk_index;
  f->last_len = in->len;
  *accepted = true;
  return SFTD_GRPC_OK;
}

static enum sftd_grpc_code h_status(void *ud, const char *id,
                                    struct sftd_grpc_status *out, char *msg) {
  struct fake *f = ud;
  on_loop(f);
  struct sftd_grpc_status *s = find(f, id);
  if (!s) {
    snprintf(msg, SFTD_GRPC_TEXT_MAX + 1, "no such transfer: %s", id);
    return SFTD_GRPC_NOT_FOUND;
  }
  if (strcmp(id, "w1") == 0 && !is_terminal(s->state)) {
    /* w1 progresses by one chunk each time anyone looks at it */
    f->watch_polls++;
    s->chunks_done++;
    s->bytes_done += 1000;
    if (s->chunks_done == s->chunks_total)
      s->state = SFTD_GRPC_STATE_COMPLETED;
  }
  *out = *s;
  return SFTD_GRPC_OK;
}

static enum sftd_grpc_code h_send_file(void *ud,
                                       const struct sftd_grpc_send_file *in,
                                       char id_out[SFTD_GRPC_ID_MAX + 1],
                                       char *msg) {
  struct fake *f = ud;
  on_loop(f);
  if (!strchr(in->peer, ':')) {
    snprintf(msg, SFTD_GRPC_TEXT_MAX + 1, "peer must be host:port");
    return SFTD_GRPC_INVALID_ARGUMENT;
  }
  if (f->n == sizeof(f->t) / sizeof(f->t[0]))
    return SFTD_GRPC_RESOURCE_EXHAUSTED;
  char id[16];
  snprintf(id, sizeof(id), "t%u", f->next_id++);
  struct sftd_grpc_status *s = &f->t[f->n++];
  *s = mk(id, SFTD_GRPC_STATE_IDLE, 0, 0);
  s->priority = in->priority ? in->priority : SFTD_GRPC_PRIO_NORMAL;
  snprintf(s->peer, sizeof(s->peer), "%s", in->peer);
  f->sendfile_npaths = in->npaths;
  snprintf(id_out, SFTD_GRPC_ID_MAX + 1, "%s", id);
  return SFTD_GRPC_OK;
}

static enum sftd_grpc_code act(struct fake *f, const char *id,
                               struct sftd_grpc_status *out, char *msg,
                               int what) {
  on_loop(f);
  struct sftd_grpc_status *s = find(f, id);
  if (!s) {
    snprintf(msg, SFTD_GRPC_TEXT_MAX + 1, "no such transfer");
    return SFTD_GRPC_NOT_FOUND;
  }
  if (is_terminal(s->state) ||
      (what == 1 && s->state != SFTD_GRPC_STATE_PAUSED)) {
    snprintf(msg, SFTD_GRPC_TEXT_MAX + 1, "not allowed in this state");
    return SFTD_GRPC_FAILED_PRECONDITION;
  }
  if (what == 0)
    s->state = SFTD_GRPC_STATE_PAUSED;
  else if (what == 1)
    s->state = SFTD_GRPC_STATE_TRANSFERRING;
  else {
    s->state = SFTD_GRPC_STATE_FAILED;
    snprintf(s->error, sizeof(s->error), "cancelled");
  }
  *out = *s;
  return SFTD_GRPC_OK;
}

static enum sftd_grpc_code h_pause(void *ud, const char *id,
                                   struct sftd_grpc_status *out, char *msg) {
  return act(ud, id, out, msg, 0);
}
static enum sftd_grpc_code h_resume(void *ud, const char *id,
                                    struct sftd_grpc_status *out, char *msg) {
  return act(ud, id, out, msg, 1);
}
static enum sftd_grpc_code h_cancel(void *ud, const char *id,
                                    struct sftd_grpc_status *out, char *msg) {
  return act(ud, id, out, msg, 2);
}

static enum sftd_grpc_code h_list(void *ud, enum sftd_grpc_state filter,
                                  struct sftd_grpc_list *out, char *msg) {
  struct fake *f = ud;
  (void)msg;
  on_loop(f);
  for (size_t i = 0; i < f->n; i++)
    if (filter == SFTD_GRPC_STATE_UNSPECIFIED || f->t[i].state == filter)
      if (sftd_grpc_list_add(out, &f->t[i]) == SFT_ERR_FULL)
        break;
  return SFTD_GRPC_OK;
}

static const struct sftd_grpc_handlers handlers = {
    .send_chunk = h_chunk,
    .get_status = h_status,
    .send_file = h_send_file,
    .pause = h_pause,
    .resume = h_resume,
    .cancel = h_cancel,
    .list = h_list,
};

/* ---- running the python client on the loop ------------------------------ */

struct py {
  uv_process_t proc;
  uv_pipe_t out;
  struct sftd_grpc **g; /* freed on READY when free_on_ready */
  bool free_on_ready;
  bool exited, eof;
  uint64_t queued_at_free;
  int64_t status;
  char buf[8192];
  size_t len;
  char line[256];
  size_t line_len;
};

static void py_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b) {
  struct py *p = h->data;
  (void)hint;
  b->base = p->buf;
  b->len = sizeof(p->buf);
}

static void on_line(struct py *p) {
  if (p->free_on_ready && strcmp(p->line, "READY") == 0 && *p->g) {
    /* The client has calls open. Hold the loop until the gRPC thread has
     * queued work for it too, then stop the server under all of them. */
    struct sftd_grpc_stats st;
    uint64_t t0 = uv_hrtime();
    do {
      sched_yield();
      sftd_grpc_get_stats(*p->g, &st);
      assert_true(uv_hrtime() - t0 < 10ull * 1000 * 1000 * 1000);
    } while (st.queued == 0);
    p->queued_at_free = st.queued;
    sftd_grpc_free(*p->g);
    *p->g = NULL;
  }
}

static void py_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  struct py *p = s->data;
  if (n < 0) {
    p->eof = true;
    uv_close((uv_handle_t *)s, NULL);
    return;
  }
  fwrite(b->base, 1, (size_t)n, stdout);
  fflush(stdout);
  for (ssize_t i = 0; i < n; i++) {
    char ch = b->base[i];
    if (ch == '\n') {
      p->line[p->line_len] = '\0';
      on_line(p);
      p->line_len = 0;
    } else if (p->line_len + 1 < sizeof(p->line)) {
      p->line[p->line_len++] = ch;
    }
  }
}

static void py_exit(uv_process_t *pr, int64_t st, int sig) {
  struct py *p = pr->data;
  p->exited = true;
  p->status = sig ? 128 + sig : st;
  uv_close((uv_handle_t *)pr, NULL);
}

/* Runs test_grpc.py to completion on |loop|. Returns its exit status. */
static struct py py_state; /* handles must outlive run_python until closed */

static int64_t run_python(uv_loop_t *loop, int port, const char *mode,
                          const char *extra, struct sftd_grpc **g,
                          bool free_on_ready) {
  struct py *p = &py_state;
  memset(p, 0, sizeof(*p));
  p->g = g;
  p->free_on_ready = free_on_ready;
  char portbuf[16];
  snprintf(portbuf, sizeof(portbuf), "%d", port);
  char *args[] = {(char[]){"python3"},
                  (char[]){PY_SCRIPT},
                  portbuf,
                  (char[]){TOKEN},
                  (char *)(uintptr_t)mode,
                  (char *)(uintptr_t)extra,
                  NULL};
  assert_int_equal(uv_pipe_init(loop, &p->out, 0), 0);
  p->out.data = p;
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
  stdio[1].data.stream = (uv_stream_t *)&p->out;
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  uv_process_options_t o;
  memset(&o, 0, sizeof(o));
  o.file = "/usr/bin/python3";
  o.args = args;
  o.exit_cb = py_exit;
  o.stdio = stdio;
  o.stdio_count = 3;
  p->proc.data = p;
  int rc = uv_spawn(loop, &p->proc, &o);
  if (rc) {
    uv_close((uv_handle_t *)&p->out, NULL);
    uv_close((uv_handle_t *)&p->proc, NULL);
    return 77;
  }
  assert_int_equal(uv_read_start((uv_stream_t *)&p->out, py_alloc, py_read), 0);
  /* Runs until the client is done: the server's uv_async keeps the loop
   * alive, so step it while our handles are open. */
  while (!p->exited || !p->eof)
    uv_run(loop, UV_RUN_ONCE);
  return p->status;
}

/* Steps the loop until the server reports no open call (the gRPC thread
 * cleans up a cancelled call asynchronously). */
static void wait_idle(uv_loop_t *loop, struct sftd_grpc *g) {
  struct sftd_grpc_stats st;
  uint64_t t0 = uv_hrtime();
  for (;;) {
    sftd_grpc_get_stats(g, &st);
    if (st.open == 0)
      return;
    assert_true(uv_hrtime() - t0 < 10ull * 1000 * 1000 * 1000);
    uv_run(loop, UV_RUN_NOWAIT);
    sched_yield();
  }
}

static void finish_loop(uv_loop_t *loop, struct sftd_grpc *g) {
  sftd_grpc_free(g);
  assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(loop), 0);
}

static struct sftd_grpc *start(uv_loop_t *loop, struct fake *f,
                               const char *cert, const char *key) {
  struct sftd_grpc_config cfg = {.bind = "127.0.0.1:0",
                                 .token = TOKEN,
                                 .tls_cert_path = cert,
                                 .tls_key_path = key,
                                 .watch_interval_ms = 10};
  struct sftd_grpc *g = NULL;
  assert_int_equal(uv_loop_init(loop), 0);
  assert_int_equal(sftd_grpc_new(&g, loop, &cfg, &handlers, f), 0);
  assert_non_null(g);
  assert_true(sftd_grpc_port(g) > 0);
  return g;
}

/* ---- tests --------------------------------------------------------------- */

static void test_python_client(void **state) {
  (void)state;
  uv_loop_t loop;
  struct fake f;
  fake_init(&f);
  struct sftd_grpc *g = start(&loop, &f, NULL, NULL);
  int64_t rc = run_python(&loop, sftd_grpc_port(g), "all", NULL, &g, false);
  if (rc == 77) {
    finish_loop(&loop, g);
    skip();
  }
  assert_int_equal(rc, 0);
  wait_idle(&loop, g);

  struct sftd_grpc_stats st;
  sftd_grpc_get_stats(g, &st);
  assert_false(f.wrong_thread);
  assert_true(f.digests_ok);
  assert_int_equal(f.chunks_accepted, 2); /* 16 KiB + 4 MiB */
  assert_int_equal(f.chunks_rejected, 1);
  assert_int_equal(f.last_file_id, 3);
  assert_int_equal(f.last_len, 4u * 1024 * 1024);
  assert_int_equal(f.sendfile_npaths, 2);
  assert_int_equal(find(&f, "w1")->state, SFTD_GRPC_STATE_COMPLETED);
  assert_int_equal(f.watch_polls, 5);
  assert_true(st.unauth >= 5);
  assert_true(st.invalid >= 10);
  assert_true(st.calls > 2000);
  assert_int_equal(st.open, 0);
  finish_loop(&loop, g);
}

static void test_shutdown_inflight(void **state) {
  (void)state;
  uv_loop_t loop;
  struct fake f;
  fake_init(&f);
  struct sftd_grpc *g = start(&loop, &f, NULL, NULL);
  int64_t rc = run_python(&loop, sftd_grpc_port(g), "inflight", NULL, &g, true);
  if (rc == 77) {
    finish_loop(&loop, g);
    skip();
  }
  assert_int_equal(rc, 0);
  assert_null(g);                           /* freed on READY */
  assert_true(py_state.queued_at_free > 0); /* the drain path ran */
  assert_false(f.wrong_thread);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_tls(void **state) {
  (void)state;
  char dir[] = "/tmp/sft-grpc-tls-XXXXXX";
  if (access("/usr/bin/openssl", X_OK) != 0)
    skip();
  assert_non_null(mkdtemp(dir));
  char cert[128], key[128], cmd[1024];
  snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
  snprintf(key, sizeof(key), "%s/key.pem", dir);
  snprintf(cmd, sizeof(cmd),
           "/usr/bin/openssl req -x509 -newkey ec -pkeyopt "
           "ec_paramgen_curve:P-256 -nodes -keyout %s -out %s -days 1 "
           "-subj /CN=localhost -addext subjectAltName=DNS:localhost "
           ">/dev/null 2>&1",
           key, cert);
  assert_int_equal(system(cmd), 0);

  uv_loop_t loop;
  struct fake f;
  fake_init(&f);
  struct sftd_grpc *g = start(&loop, &f, cert, key);
  int64_t rc = run_python(&loop, sftd_grpc_port(g), "tls", cert, &g, false);
  finish_loop(&loop, g);
  unlink(cert);
  unlink(key);
  rmdir(dir);
  if (rc == 77)
    skip();
  assert_int_equal(rc, 0);
}

static void test_start_stop(void **state) {
  (void)state;
  uv_loop_t loop;
  struct fake f;
  fake_init(&f);
  for (int i = 0; i < 3; i++) {
    struct sftd_grpc *g = start(&loop, &f, NULL, NULL);
    struct sftd_grpc_stats st;
    sftd_grpc_get_stats(g, &st);
    assert_int_equal(st.calls, 0);
    finish_loop(&loop, g);
  }
  sftd_grpc_free(NULL);
}

static void test_new_errors(void **state) {
  (void)state;
  uv_loop_t loop;
  struct sftd_grpc *g = (struct sftd_grpc *)&loop; /* must become NULL */
  struct sftd_grpc_config cfg = {.bind = "127.0.0.1:0", .token = TOKEN};
  assert_int_equal(uv_loop_init(&loop), 0);

  assert_int_equal(sftd_grpc_new(NULL, &loop, &cfg, &handlers, NULL),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_grpc_new(&g, NULL, &cfg, &handlers, NULL),
                   SFT_ERR_INVAL);
  assert_null(g);
  cfg.token = "";
  assert_int_equal(sftd_grpc_new(&g, &loop, &cfg, &handlers, NULL),
                   SFT_ERR_INVAL);
  cfg.token = NULL;
  assert_int_equal(sftd_grpc_new(&g, &loop, &cfg, &handlers, NULL),
                   SFT_ERR_INVAL);
  cfg.token = TOKEN;
  cfg.tls_cert_path = "/nonexistent/cert.pem"; /* key missing */
  assert_int_equal(sftd_grpc_new(&g, &loop, &cfg, &handlers, NULL),
                   SFT_ERR_INVAL);
  cfg.tls_key_path = "/nonexistent/key.pem";
  assert_int_equal(sftd_grpc_new(&g, &loop, &cfg, &handlers, NULL), SFT_ERR_IO);
  cfg.tls_cert_path = cfg.tls_key_path = NULL;
  cfg.bind = "192.0.2.1:50051"; /* TEST-NET-1: not a local address */
  assert_int_equal(sftd_grpc_new(&g, &loop, &cfg, &handlers, NULL), SFT_ERR_IO);
  assert_null(g);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Protobuf by hand: field |f| of wire type |wt| and its payload. */
static size_t put_varint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}
static size_t put_bytes(uint8_t *p, unsigned field, const void *b, size_t len) {
  size_t n = put_varint(p, (uint64_t)field << 3 | 2);
  n += put_varint(p + n, len);
  memcpy(p + n, b, len);
  return n + len;
}

static void test_check_request(void **state) {
  (void)state;
  static uint8_t m[1 << 16];
  uint8_t data[1000], d[SFT_HASH_LEN];
  memset(data, 0x5a, sizeof(data));
  sft_blake3(data, sizeof(data), d);
  const char *sc = "/sft.v1.Agent/SendChunk";

  size_t n = put_bytes(m, 1, "s1", 2);
  n += put_bytes(m + n, 4, data, sizeof(data));
  size_t before_digest = n;
  n += put_bytes(m + n, 5, d, sizeof(d));
  assert_int_equal(sftd_grpc_check_request(sc, m, n), SFTD_GRPC_OK);
  m[n - 1] ^= 1; /* digest off by one bit */
  assert_int_equal(sftd_grpc_check_request(sc, m, n),
                   SFTD_GRPC_INVALID_ARGUMENT);
  n = before_digest + put_bytes(m + before_digest, 5, d, 31);
  assert_int_equal(sftd_grpc_check_request(sc, m, n),
                   SFTD_GRPC_INVALID_ARGUMENT);
  /* truncated anywhere: never OK, never a crash */
  for (size_t k = 0; k < before_digest + 33; k++)
    assert_int_not_equal(sftd_grpc_check_request(sc, m, k), SFTD_GRPC_OK);

  const char *gs = "/sft.v1.Agent/GetTransferStatus";
  n = put_bytes(m, 1, "t1", 2);
  assert_int_equal(sftd_grpc_check_request(gs, m, n), SFTD_GRPC_OK);
  assert_int_equal(sftd_grpc_check_request(gs, m, 0),
                   SFTD_GRPC_INVALID_ARGUMENT); /* empty id */
  static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff};
  assert_int_equal(sftd_grpc_check_request(gs, garbage, sizeof(garbage)),
                   SFTD_GRPC_INVALID_ARGUMENT);
  static uint8_t big[SFTD_GRPC_SMALL_MSG_MAX + 1];
  assert_int_equal(sftd_grpc_check_request(gs, big, sizeof(big)),
                   SFTD_GRPC_RESOURCE_EXHAUSTED);
  assert_int_equal(sftd_grpc_check_request("/sft.v1.Agent/Nope", m, n),
                   SFTD_GRPC_UNIMPLEMENTED);

  const char *sf = "/sft.v1.Agent/SendFile";
  n = put_bytes(m, 1, "/a", 2);
  n += put_bytes(m + n, 2, "h:1", 3);
  assert_int_equal(sftd_grpc_check_request(sf, m, n), SFTD_GRPC_OK);
  m[n++] = 4 << 3; /* priority = 7: unknown */
  m[n++] = 7;
  assert_int_equal(sftd_grpc_check_request(sf, m, n),
                   SFTD_GRPC_INVALID_ARGUMENT);
  n = put_bytes(m, 2, "h:1", 3); /* no paths */
  assert_int_equal(sftd_grpc_check_request(sf, m, n),
                   SFTD_GRPC_INVALID_ARGUMENT);
  n = 0; /* 1025 paths */
  for (int i = 0; i < SFTD_GRPC_PATHS_MAX + 1; i++)
    n += put_bytes(m + n, 1, "p", 1);
  n += put_bytes(m + n, 2, "h:1", 3);
  assert_int_equal(sftd_grpc_check_request(sf, m, n),
                   SFTD_GRPC_INVALID_ARGUMENT);

  const char *ls = "/sft.v1.Agent/ListTransfers";
  assert_int_equal(sftd_grpc_check_request(ls, m, 0), SFTD_GRPC_OK);
  m[0] = 1 << 3;
  m[1] = SFTD_GRPC_STATE_PAUSED;
  assert_int_equal(sftd_grpc_check_request(ls, m, 2), SFTD_GRPC_OK);
  m[1] = 8;
  assert_int_equal(sftd_grpc_check_request(ls, m, 2),
                   SFTD_GRPC_INVALID_ARGUMENT);
}

static void test_list_and_codes(void **state) {
  (void)state;
  /* the accumulator, reached through a list handler without a server is
   * not possible (opaque), so check the code map and argument errors */
  assert_int_equal(sftd_grpc_list_add(NULL, NULL), SFT_ERR_INVAL);
  assert_int_equal(sftd_grpc_code_from_err(0), SFTD_GRPC_OK);
  assert_int_equal(sftd_grpc_code_from_err(SFT_ERR_NOT_FOUND),
                   SFTD_GRPC_NOT_FOUND);
  assert_int_equal(sftd_grpc_code_from_err(SFT_ERR_STATE),
                   SFTD_GRPC_FAILED_PRECONDITION);
  assert_int_equal(sftd_grpc_code_from_err(SFT_ERR_INVAL),
                   SFTD_GRPC_INVALID_ARGUMENT);
  assert_int_equal(sftd_grpc_code_from_err(SFT_ERR_FULL),
                   SFTD_GRPC_RESOURCE_EXHAUSTED);
  assert_int_equal(sftd_grpc_code_from_err(SFT_ERR_IO), SFTD_GRPC_INTERNAL);
  assert_int_equal(sftd_grpc_code_from_err(-999), SFTD_GRPC_INTERNAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_check_request),
      cmocka_unit_test(test_list_and_codes),
      cmocka_unit_test(test_new_errors),
      cmocka_unit_test(test_start_stop),
      cmocka_unit_test(test_python_client),
      cmocka_unit_test(test_shutdown_inflight),
      cmocka_unit_test(test_tls),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
