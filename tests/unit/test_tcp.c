/* Tests of src/daemon/tcp (sft/1 over TLS 1.3 on TCP): frame codec,
 * identities and mutual authentication (same fingerprints as QUIC), bidi
 * echo, cancel, 200 uni streams, manual credit bounding a slow receiver,
 * 4 concurrent clients, a 256 MiB transfer (throughput printed), idle,
 * keep-alive and handshake timeouts, ALPN mismatch. Everything runs on
 * 127.0.0.1 in one process on one uv loop; every test ends with
 * uv_loop_close() == 0. */
#define _GNU_SOURCE
/* clang-format off: cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "fdcount.h"
/* clang-format on */
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/tcp/tcp.h"
#include "sft/wire.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* ---- fixture ------------------------------------------------------------- */

static char g_dir[64];
static char g_skey[128], g_scert[128], g_ckey[128], g_ccert[128];

static int rm_cb(const char *p, const struct stat *sb, int flag,
                 struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(p);
}

static int group_setup(void **state) {
  (void)state;
  strcpy(g_dir, "/tmp/sftt-test-XXXXXX");
  if (!mkdtemp(g_dir))
    return -1;
  snprintf(g_skey, sizeof g_skey, "%s/server.key", g_dir);
  snprintf(g_scert, sizeof g_scert, "%s/server.crt", g_dir);
  snprintf(g_ckey, sizeof g_ckey, "%s/client.key", g_dir);
  snprintf(g_ccert, sizeof g_ccert, "%s/client.crt", g_dir);
  if (sftq_identity_generate(g_skey, g_scert) != 0)
    return -1;
  if (sftq_identity_generate_type(g_ckey, g_ccert, SFTQ_KEY_ECDSA_P256) != 0)
    return -1;
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  nftw(g_dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
  return 0;
}

/* ---- harness ---------------------------------------------------------------
 */

#define MAX_RX 512
#define NCLI 4

typedef struct rx {
  sftt_conn *conn;
  int64_t sid;
  uint64_t got;
  int fin, bad, closed;
  uint64_t code;
} rx;

typedef struct side {
  sftt_ctx *ctx;
  int server;
  int reject, verify_calls, connected, closed, reason, opened;
  uint64_t close_app;
  uint8_t fp[SFTQ_FP_LEN];
  sftt_conn *conn;
  sftt_conn *conns[8];
  int nconns;
  rx rxs[MAX_RX];
  int nrx, fins, stream_closes, acked, writable;
  uint64_t bytes, last_code;
  int echo;    /* server: echo bidi data back */
  int verify;  /* check the header + pattern content */
  int consume; /* manual credit: consume on receipt */
  uint8_t echo_buf[8192];
  size_t echo_len;
} side;

static uv_loop_t g_loop;
static int g_stop_connected, g_stop_closed, g_stop_fins;
static uint64_t g_stop_bytes;
static side *g_stop_side;
static uint8_t *g_pat; /* shared payload pattern */
static size_t g_pat_len;

static void check_stop(side *s) {
  if (s != g_stop_side)
    return;
  if ((g_stop_connected && s->connected >= g_stop_connected) ||
      (g_stop_closed && s->closed >= g_stop_closed) ||
      (g_stop_fins && s->fins >= g_stop_fins) ||
      (g_stop_bytes && s->bytes >= g_stop_bytes))
    uv_stop(&g_loop);
}

static rx *rx_get(side *s, sftt_conn *c, int64_t sid) {
  for (int i = s->nrx - 1; i >= 0; i--)
    if (s->rxs[i].sid == sid && s->rxs[i].conn == c)
      return &s->rxs[i];
  if (s->nrx == MAX_RX)
    return NULL;
  rx *r = &s->rxs[s->nrx++];
  memset(r, 0, sizeof *r);
  r->sid = sid;
  r->conn = c;
  return r;
}

static int cb_verify(sftq_conn *c, const uint8_t fp[SFTQ_FP_LEN], void *ud) {
  side *s = ud;
  (void)c;
  s->verify_calls++;
  memcpy(s->fp, fp, SFTQ_FP_LEN);
  return s->reject;
}

static void cb_connected(sftq_conn *qc, void *ud) {
  side *s = ud;
  s->connected++;
  s->conn = sftt_conn_of(qc);
  if (s->nconns < 8)
    s->conns[s->nconns++] = s->conn;
  check_stop(s);
}

static void cb_stream_open(sftq_conn *c, int64_t sid, void *ud) {
  side *s = ud;
  (void)c;
  (void)sid;
  s->opened++;
}

/* Stream content: 8-byte big-endian stream id, then g_pat repeated. */
static void verify_bytes(rx *r, const uint8_t *d, size_t len) {
  for (size_t i = 0; i < len;) {
    uint64_t off = r->got + i;
    if (off < 8) {
      uint8_t want = (uint8_t)((uint64_t)r->sid >> (8 * (7 - off)));
      if (d[i] != want)
        r->bad = 1;
      i++;
      continue;
    }
    size_t po = (size_t)((off - 8) % g_pat_len);
    size_t n = g_pat_len - po < len - i ? g_pat_len - po : len - i;
    if (memcmp(g_pat + po, d + i, n) != 0)
      r->bad = 1;
    i += n;
  }
}

static void cb_stream_data(sftq_conn *qc, int64_t sid, const uint8_t *data,
                           size_t len, int fin, void *ud) {
  side *s = ud;
  sftt_conn *c = sftt_conn_of(qc);
  rx *r = rx_get(s, c, sid);
  assert_non_null(r);
  if (s->verify)
    verify_bytes(r, data, len);
  if (s->echo && (sid & 2) == 0) {
    sftq_iov v = {data, len};
    assert_int_equal(
        sftt_stream_write(c, sid, &v, len ? 1 : 0,
                          SFTQ_WRITE_COPY | (fin ? SFTQ_WRITE_FIN : 0)),
        0);
  } else if ((sid & 2) == 0 && s->echo_len + len <= sizeof s->echo_buf) {
    memcpy(s->echo_buf + s->echo_len, data, len);
    s->echo_len += len;
  }
  if (s->consume)
    assert_int_equal(sftt_stream_consume(c, sid, len), 0);
  r->got += len;
  s->bytes += len;
  check_stop(s);
  if (fin) {
    r->fin = 1;
    s->fins++;
    check_stop(s);
  }
}

static void cb_stream_close(sftq_conn *qc, int64_t sid, uint64_t code,
                            void *ud) {
  side *s = ud;
  rx *r = rx_get(s, sftt_conn_of(qc), sid);
  if (r) {
    r->closed++;
    r->code = code;
  }
  s->stream_closes++;
  s->last_code = code;
}

static void cb_acked(sftq_conn *c, int64_t sid, void *ud) {
  side *s = ud;
  (void)c;
  (void)sid;
  s->acked++;
}

static void cb_writable(sftq_conn *c, void *ud);

static void cb_closed(sftq_conn *qc, int reason, uint64_t app, void *ud) {
  side *s = ud;
  sftt_conn *c = sftt_conn_of(qc);
  s->closed++;
  s->reason = reason;
  s->close_app = app;
  if (s->conn == c)
    s->conn = NULL;
  for (int i = 0; i < s->nconns; i++)
    if (s->conns[i] == c)
      s->conns[i] = NULL;
  check_stop(s);
}

static void base_cfg(sftq_config *cfg, side *s, int server) {
  memset(cfg, 0, sizeof *cfg);
  cfg->cert_path = server ? g_scert : g_ccert;
  cfg->key_path = server ? g_skey : g_ckey;
  cfg->cb.verify_peer = cb_verify;
  cfg->cb.connected = cb_connected;
  cfg->cb.stream_open = cb_stream_open;
  cfg->cb.stream_data = cb_stream_data;
  cfg->cb.stream_close = cb_stream_close;
  cfg->cb.stream_acked = cb_acked;
  cfg->cb.writable = cb_writable;
  cfg->cb.closed = cb_closed;
  cfg->user_data = s;
  s->server = server;
}

static void run_until(side *s, int connected, int closed, int fins) {
  g_stop_side = s;
  g_stop_connected = connected;
  g_stop_closed = closed;
  g_stop_fins = fins;
  if (!(connected && s->connected >= connected) &&
      !(closed && s->closed >= closed) && !(fins && s->fins >= fins))
    uv_run(&g_loop, UV_RUN_DEFAULT);
  g_stop_side = NULL;
}

static void on_guard(uv_timer_t *t) {
  (void)t;
  fail_msg("test timed out");
}

static uv_timer_t g_guard;

static void loop_begin(void) {
  assert_int_equal(uv_loop_init(&g_loop), 0);
  uv_timer_init(&g_loop, &g_guard);
  uv_timer_start(&g_guard, on_guard, 50000, 0);
  uv_unref((uv_handle_t *)&g_guard);
}

static void loop_end(sftt_ctx *a, sftt_ctx *b) {
  sftt_ctx_free(a);
  sftt_ctx_free(b);
  uv_close((uv_handle_t *)&g_guard, NULL);
  uv_run(&g_loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&g_loop), 0);
}

/* Server and client contexts on g_loop; |port| is the listening port. */
static void pair(side *sv, side *cl, sftq_config *scfg, sftq_config *ccfg,
                 uint16_t *port) {
  assert_int_equal(sftt_ctx_new(&sv->ctx, &g_loop, scfg), 0);
  assert_int_equal(sftt_ctx_new(&cl->ctx, &g_loop, ccfg), 0);
  assert_int_equal(sftt_listen(sv->ctx, "127.0.0.1", 0, port), 0);
  assert_true(*port != 0);
}

/* ---- uni stream sender ------------------------------------------------------
 */

typedef struct sender {
  sftt_conn *c;
  int total, opened;
  size_t len; /* bytes per stream, header included */
  uint8_t hdr[MAX_RX][8];
} sender;

static sender *g_sender;

static void sender_pump(sender *sd) {
  while (sd->opened < sd->total) {
    int64_t sid;
    int rv = sftt_stream_open_uni(sd->c, &sid);
    if (rv == SFT_ERR_AGAIN)
      return; /* writable follows */
    assert_int_equal(rv, 0);
    uint8_t *h = sd->hdr[sd->opened++];
    for (int i = 0; i < 8; i++)
      h[i] = (uint8_t)((uint64_t)sid >> (8 * (7 - i)));
    sftq_iov v[16];
    size_t n = 0, left = sd->len - 8;
    v[n++] = (sftq_iov){h, 8};
    while (left && n < 16) {
      size_t k = left < g_pat_len ? left : g_pat_len;
      v[n++] = (sftq_iov){g_pat, k};
      left -= k;
    }
    assert_int_equal(left, 0);
    assert_int_equal(sftt_stream_write(sd->c, sid, v, n, SFTQ_WRITE_FIN), 0);
  }
}

static void cb_writable(sftq_conn *c, void *ud) {
  side *s = ud;
  (void)c;
  s->writable++;
  if (g_sender && !s->server)
    sender_pump(g_sender);
}

static void make_pattern(size_t n) {
  free(g_pat);
  g_pat = malloc(n);
  assert_non_null(g_pat);
  uint64_t x = 0x1234567;
  for (size_t i = 0; i < n; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    g_pat[i] = (uint8_t)(x >> 56);
  }
  g_pat_len = n;
}

/* ---- tests: frame codec
 * ------------------------------------------------------- */

static void test_frame_codec(void **state) {
  (void)state;
  uint8_t buf[SFTT_MAX_HDR + 100];
  sftt_frame f, g;
  memset(&f, 0, sizeof f);
  f.type = SFTT_F_DATA;
  f.sid = 4 * 1000 + 2;
  f.flags = SFTT_DATA_FIN;
  f.len = 100;
  int h = sftt_frame_encode(&f, buf);
  assert_true(h > 0);
  memset(buf + h, 0xab, 100);
  assert_int_equal(sftt_frame_decode(buf, (size_t)h + 100, &g), h + 100);
  assert_int_equal(g.type, SFTT_F_DATA);
  assert_int_equal(g.sid, f.sid);
  assert_int_equal(g.flags, SFTT_DATA_FIN);
  assert_int_equal(g.len, 100);
  assert_ptr_equal(g.data, buf + h);
  /* every strict prefix asks for more */
  for (size_t l = 0; l < (size_t)h + 100; l++)
    assert_int_equal(sftt_frame_decode(buf, l, &g), 0);
  /* payload too large */
  uint8_t big[] = {SFTT_F_DATA, 2, 0, 0x80, 0x00, 0x40, 0x01};
  assert_int_equal(sftt_frame_decode(big, sizeof big, &g), SFT_ERR_TOO_LARGE);
  /* bad flags, bad kind, unknown type, non-minimal varint */
  uint8_t badf[] = {SFTT_F_DATA, 2, 0x02, 0};
  assert_int_equal(sftt_frame_decode(badf, sizeof badf, &g), SFT_ERR_MALFORMED);
  uint8_t badk[] = {SFTT_F_OPEN, 2, 0};
  assert_int_equal(sftt_frame_decode(badk, sizeof badk, &g), SFT_ERR_MALFORMED);
  uint8_t unk[] = {0x42};
  assert_int_equal(sftt_frame_decode(unk, sizeof unk, &g), SFT_ERR_MALFORMED);
  uint8_t nonmin[] = {SFTT_F_RESET, 0x40, 0x01, 0};
  assert_int_equal(sftt_frame_decode(nonmin, sizeof nonmin, &g),
                   SFT_ERR_MALFORMED);
  /* round trips of the other types */
  const uint8_t types[] = {SFTT_F_SETTINGS, SFTT_F_OPEN,        SFTT_F_RESET,
                           SFTT_F_CREDIT,   SFTT_F_MAX_STREAMS, SFTT_F_PING,
                           SFTT_F_PONG,     SFTT_F_CLOSE};
  for (size_t i = 0; i < sizeof types; i++) {
    memset(&f, 0, sizeof f);
    f.type = types[i];
    f.sid = 7;
    f.flags = types[i] == SFTT_F_CLOSE ? 3 : 1;
    if (types[i] == SFTT_F_MAX_STREAMS)
      f.flags = 1;
    f.v[0] = 1u << 30;
    f.v[1] = 5;
    f.v[2] = 16;
    f.v[3] = SFT_VARINT_MAX;
    if (types[i] == SFTT_F_OPEN)
      f.sid = 6;
    h = sftt_frame_encode(&f, buf);
    assert_true(h > 0 && (unsigned)h <= SFTT_MAX_HDR);
    assert_int_equal(sftt_frame_decode(buf, (size_t)h, &g), h);
    assert_int_equal(g.type, f.type);
  }
}

/* ---- tests: connections
 * ------------------------------------------------------- */

static void test_handshake_fp(void **state) {
  (void)state;
  side sv = {0}, cl = {0};
  sftq_config scfg, ccfg;
  loop_begin();
  base_cfg(&scfg, &sv, 1);
  base_cfg(&ccfg, &cl, 0);
  uint16_t port;
  pair(&sv, &cl, &scfg, &ccfg, &port);
  sftt_conn *c;
  int tag = 5;
  assert_int_equal(sftt_connect(cl.ctx, "127.0.0.1", port, &tag, &c), 0);
  assert_ptr_equal(sftt_conn_user(c), &tag);
  uint8_t fp[SFTQ_FP_LEN];
  assert_int_equal(sftt_conn_peer_fp(c, fp), SFT_ERR_STATE);
  run_until(&cl, 1, 0, 0);
  run_until(&sv, 1, 0, 0);
  assert_ptr_equal(cl.conn, c);
  assert_false(sftt_conn_is_server(c));
  assert_true(sftt_conn_is_server(sv.conn));
  /* the same fingerprints as the QUIC module computes from the files */
  uint8_t sfp[SFTQ_FP_LEN], cfp[SFTQ_FP_LEN];
  assert_int_equal(sftq_identity_fingerprint(g_scert, sfp), 0);
  assert_int_equal(sftq_identity_fingerprint(g_ccert, cfp), 0);
  assert_memory_equal(cl.fp, sfp, SFTQ_FP_LEN);
  assert_memory_equal(sv.fp, cfp, SFTQ_FP_LEN);
  assert_int_equal(sftt_conn_peer_fp(c, fp), 0);
  assert_memory_equal(fp, sfp, SFTQ_FP_LEN);
  assert_int_equal(sftt_conn_peer_fp(sv.conn, fp), 0);
  assert_memory_equal(fp, cfp, SFTQ_FP_LEN);
  struct sockaddr_storage sa;
  socklen_t sl;
  assert_int_equal(sftt_conn_peer_addr(c, &sa, &sl), 0);
  assert_int_equal(sa.ss_family, AF_INET);
  assert_int_equal(ntohs(((struct sockaddr_in *)&sa)->sin_port), port);
  sftq_stats st;
  assert_int_equal(sftt_conn_stats(c, &st), 0);
  assert_true(st.bytes_sent > 0 && st.bytes_recv > 0);
  assert_true(st.srtt_ns > 0);
  /* application close: SFT_OK here, SFT_ERR_CLOSED + code there */
  sftt_conn_close(c, 77);
  sftt_conn_close(c, 78); /* idempotent */
  run_until(&sv, 0, 1, 0);
  assert_int_equal(cl.closed, 1);
  assert_int_equal(cl.reason, SFT_OK);
  assert_int_equal(sv.reason, SFT_ERR_CLOSED);
  assert_int_equal(sv.close_app, 77);
  loop_end(cl.ctx, sv.ctx);
  assert_int_equal(cl.closed, 1);
  assert_int_equal(sv.closed, 1);
}

static void test_reject(void **state) {
  (void)state;
  for (int who = 0; who < 2; who++) {
    side sv = {0}, cl = {0};
    sftq_config scfg, ccfg;
    loop_begin();
    base_cfg(&scfg, &sv, 1);
    base_cfg(&ccfg, &cl, 0);
    if (who == 0)
      sv.reject = 1;
    else
      cl.reject = 1;
    uint16_t port;
    pair(&sv, &cl, &scfg, &ccfg, &port);
    sftt_conn *c;
    assert_int_equal(sftt_connect(cl.ctx, "127.0.0.1", port, NULL, &c), 0);
    run_until(&cl, 0, 1, 0);
    run_until(&sv, 0, 1, 0);
    assert_int_equal(cl.connected, 0);
    assert_int_equal(sv.connected, 0);
    assert_int_equal(cl.reason, SFT_ERR_AUTH);
    assert_int_equal(sv.reason, SFT_ERR_AUTH);
    assert_true((who == 0 ? sv.verify_calls : cl.verify_calls) == 1);
    loop_end(cl.ctx, sv.ctx);
    assert_int_equal(cl.closed, 1);
    assert_int_equal(sv.closed, 1);
  }
}

static void test_alpn_mismatch(void **state) {
  (void)state;
  side sv = {0}, cl = {0};
  sftq_config scfg, ccfg;
  loop_begin();
  base_cfg(&scfg, &sv, 1);
  base_cfg(&ccfg, &cl, 0);
  ccfg.alpn = "sft/0";
  uint16_t port;
  pair(&sv, &cl, &scfg, &ccfg, &port);
  sftt_conn *c;
  assert_int_equal(sftt_connect(cl.ctx, "127.0.0.1", port, NULL, &c), 0);
  run_until(&cl, 0, 1, 0);
  run_until(&sv, 0, 1, 0);
  assert_int_equal(cl.reason, SFT_ERR_VERSION);
  assert_int_equal(sv.reason, SFT_ERR_VERSION);
  loop_end(cl.ctx, sv.ctx);
}

static void test_echo_and_cancel(void **state) {
  (void)state;
  side sv = {0}, cl = {0};
  sftq_config scfg, ccfg;
  loop_begin();
  base_cfg(&scfg, &sv, 1);
  base_cfg(&ccfg, &cl, 0);
  sv.echo = 1;
  uint16_t port;
  pair(&sv, &cl, &scfg, &ccfg, &port);
  sftt_conn *c;
  assert_int_equal(sftt_connect(cl.ctx, "127.0.0.1", port, NULL, &c), 0);
  run_until(&cl, 1, 0, 0);
  int64_t sid;
  assert_int_equal(sftt_stream_open_bidi(c, &sid), 0);
  assert_int_equal(sid, 0);
  int u = 1;
  assert_int_equal(sftt_stream_set_user(c, sid, &u), 0);
  assert_ptr_equal(sftt_stream_user(c, sid), &u);
  assert_int_equal(sftt_stream_set_urgency(c, sid, 8), SFT_ERR_RANGE);
  assert_int_equal(sftt_stream_set_urgency(c, sid, 0), 0);
  static const char a[] = "hello, ", b[] = "sft over tcp";
  sftq_iov v[2] = {{a, strlen(a)}, {b, strlen(b)}};
  assert_int_equal(sftt_stream_write(c, sid, v, 2, SFTQ_WRITE_FIN), 0);
  assert_int_equal(sftt_stream_unsent(c, sid), strlen(a) + strlen(b));
  assert_int_equal(sftt_stream_write(c, sid, v, 1, 0), SFT_ERR_STATE);
  assert_int_equal(sftt_stream_write(c, 4, v, 1, 0), SFT_ERR_NOT_FOUND);
  run_until(&cl, 0, 0, 1);
  assert_int_equal(cl.echo_len, strlen(a) + strlen(b));
  assert_memory_equal(cl.echo_buf, "hello, sft over tcp", cl.echo_len);
  assert_int_equal(cl.acked, 1);
  assert_int_equal(sftt_conn_unsent(c), 0);
  /* both directions finished: closed with code 0 on both sides */
  assert_int_equal(cl.stream_closes, 1);
  assert_int_equal(cl.last_code, 0);

  /* cancel: a uni stream reset with code 9 closes on both sides */
  int64_t u1;
  assert_int_equal(sftt_stream_open_uni(c, &u1), 0);
  assert_int_equal(u1, 2);
  sftq_iov w = {g_pat, 1000};
  assert_int_equal(sftt_stream_write(c, u1, &w, 1, 0), 0);
  assert_int_equal(sftt_stream_cancel(c, u1, 9), 0);
  assert_int_equal(sftt_stream_unsent(c, u1), 0);
  assert_int_equal(sftt_stream_cancel(c, u1, 9), SFT_ERR_NOT_FOUND);
  /* a second bidi stream echoes after the reset: ordering preserved */
  assert_int_equal(sftt_stream_open_bidi(c, &sid), 0);
  assert_int_equal(sid, 4);
  assert_int_equal(sftt_stream_write(c, sid, v, 1, SFTQ_WRITE_FIN), 0);
  run_until(&cl, 0, 0, 2);
  assert_int_equal(cl.stream_closes, 3);
  rx *r = rx_get(&cl, c, u1);
  assert_int_equal(r->closed, 1);
  assert_int_equal(r->code, 9);
  r = rx_get(&sv, sv.conn, u1);
  assert_int_equal(r->closed, 1);
  assert_int_equal(r->code, 9);
  assert_int_equal(sv.opened, 3);
  loop_end(cl.ctx, sv.ctx);
  assert_int_equal(cl.reason, SFT_ERR_CANCELLED);
}

static void test_uni_200(void **state) {
  (void)state;
  side sv = {0}, cl = {0};
  sftq_config scfg, ccfg;
  loop_begin();
  make_pattern(256 << 10);
  base_cfg(&scfg, &sv, 1);
  base_cfg(&ccfg, &cl, 0);
  scfg.max_streams_uni = 64; /* forces SFT_ERR_AGAIN + writable */
  sv.verify = 1;
  uint16_t port;
  pair(&sv, &cl, &scfg, &ccfg, &port);
  sftt_conn *c;
  assert_int_equal(sftt_connect(cl.ctx, "127.0.0.1", port, NULL, &c), 0);
  run_until(&cl, 1, 0, 0);
  sender sd = {.c = c, .total = 200, .len = 256 << 10};
  g_sender = &sd;
  sender_pump(&sd);
  assert_int_equal(sd.opened, 64);
  run_until(&sv, 0, 0, 200);
  g_sender = NULL;
  assert_int_equal(sd.opened, 200);
  assert_true(cl.writable >= 1);
  assert_int_equal(sv.nrx, 200);
  for (int i = 0; i < sv.nrx; i++) {
    assert_int_equal(sv.rxs[i].got, 256 << 10);
    assert_int_equal(sv.rxs[i].bad, 0);
    assert_int_equal(sv.rxs[i].fin, 1);
    assert_int_equal(sv.rxs[i].closed, 1);
  }
  assert_int_equal(sv.bytes, 200ull * (256 << 10));
  assert_int_equal(cl.acked, 200);
  assert_int_equal(cl.stream_closes, 200);
  assert_int_equal(sftt_conn_unsent(c), 0);
  loop_end(cl.ctx, sv.ctx);
}

/* ---- manual credit
 * ------------------------------------------------------------ */

static uv_timer_t g_t;
static void on_stop_timer(uv_timer_t *t) {
  (void)t;
  uv_stop(&g_loop);
}

static void test_manual_credit(void **state) {
  (void)state;
  side sv = {0}, cl = {0};
  sftq_config scfg, ccfg;
  loop_begin();
  make_pattern(512 << 10);
  base_cfg(&scfg, &sv, 1);
  base_cfg(&ccfg, &cl, 0);
  scfg.manual_rx_credit = 1;
  scfg.initial_max_stream_data = 256 << 10;
  scfg.initial_max_data = 1 << 20;
  sv.verify = 1;
  uint16_t port;
  pair(&sv, &cl, &scfg, &ccfg, &port);
  sftt_conn *c;
  assert_int_equal(sftt_connect(cl.ctx, "127.0.0.1", port, NULL, &c), 0);
  run_until(&cl, 1, 0, 0);
  /* 8 streams x 512 KiB; stream window 256 KiB, connection window 1 MiB */
  sender sd = {.c = c, .total = 8, .len = 512 << 10};
  sender_pump(&sd);
  assert_int_equal(sd.opened, 8);
  /* the connection window arrives, then nothing more for 300 ms with a
   * receiver that consumes nothing */
  g_stop_side = &sv;
  g_stop_bytes = 1 << 20;
  uv_run(&g_loop, UV_RUN_DEFAULT);
  g_stop_bytes = 0;
  g_stop_side = NULL;
  uv_timer_init(&g_loop, &g_t);
  uv_timer_start(&g_t, on_stop_timer, 300, 0);
  uv_run(&g_loop, UV_RUN_DEFAULT);
  assert_int_equal(sv.bytes, 1 << 20); /* exactly the connection window */
  for (int i = 0; i < sv.nrx; i++) {
    assert_true(sv.rxs[i].got <= 256 << 10);
    assert_int_equal(sv.rxs[i].bad, 0);
  }
  assert_int_equal(sv.fins, 0);
  assert_int_equal(sftt_conn_unsent(c), 8 * (512 << 10) - (1 << 20));
  assert_true(sftt_stream_unsent(c, 2) > 0);
  assert_int_equal(cl.acked, 0);
  /* now consume what arrived and everything that follows */
  sv.consume = 1;
  sftt_conn *s = sv.conn;
  for (int i = 0; i < sv.nrx; i++)
    assert_int_equal(sftt_stream_consume(s, sv.rxs[i].sid, sv.rxs[i].got), 0);
  run_until(&sv, 0, 0, 8);
  assert_int_equal(sv.bytes, 8 * (512 << 10));
  for (int i = 0; i < sv.nrx; i++)
    assert_int_equal(sv.rxs[i].bad, 0);
  assert_int_equal(sftt_conn_unsent(c), 0);
  uv_close((uv_handle_t *)&g_t, NULL);
  loop_end(cl.ctx, sv.ctx);
}

/* ---- several clients
 * ------------------------------------------------------------ */

static void test_four_clients(void **state) {
  (void)state;
  side sv = {0}, cl[NCLI];
  memset(cl, 0, sizeof cl);
  sftq_config scfg, ccfg;
  loop_begin();
  make_pattern(1 << 20);
  base_cfg(&scfg, &sv, 1);
  sv.verify = 1;
  assert_int_equal(sftt_ctx_new(&sv.ctx, &g_loop, &scfg), 0);
  uint16_t port;
  assert_int_equal(sftt_listen(sv.ctx, "127.0.0.1", 0, &port), 0);
  sftt_conn *c[NCLI];
  for (int i = 0; i < NCLI; i++) {
    base_cfg(&ccfg, &cl[i], 0);
    assert_int_equal(sftt_ctx_new(&cl[i].ctx, &g_loop, &ccfg), 0);
    assert_int_equal(sftt_connect(cl[i].ctx, "127.0.0.1", port, NULL, &c[i]),
                     0);
  }
  for (int i = 0; i < NCLI; i++)
    run_until(&cl[i], 1, 0, 0);
  sender sd[NCLI];
  for (int i = 0; i < NCLI; i++) {
    sd[i] = (sender){.c = c[i], .total = 2, .len = 4 << 20};
    sender_pump(&sd[i]);
  }
  run_until(&sv, 0, 0, 2 * NCLI);
  assert_int_equal(sv.connected, NCLI);
  assert_int_equal(sv.nrx, 2 * NCLI);
  for (int i = 0; i < sv.nrx; i++) {
    assert_int_equal(sv.rxs[i].got, 4 << 20);
    assert_int_equal(sv.rxs[i].bad, 0);
  }
  /* each connection carried its own two streams (ids 2 and 6) */
  for (int i = 0; i < NCLI; i++) {
    int n = 0;
    for (int j = 0; j < sv.nrx; j++)
      n += sv.rxs[j].conn == sv.conns[i];
    assert_int_equal(n, 2);
  }
  for (int i = 1; i < NCLI; i++)
    sftt_ctx_free(cl[i].ctx);
  loop_end(cl[0].ctx, sv.ctx);
  for (int i = 0; i < NCLI; i++)
    assert_int_equal(cl[i].closed, 1);
  assert_int_equal(sv.closed, NCLI);
}

/* ---- throughput
 * ---------------------------------------------------------------- */

static void test_bulk_256m(void **state) {
  (void)state;
  side sv = {0}, cl = {0};
  sftq_config scfg, ccfg;
  loop_begin();
  make_pattern(1 << 20);
  base_cfg(&scfg, &sv, 1);
  base_cfg(&ccfg, &cl, 0);
  sv.verify = 1;
  uint16_t port;
  pair(&sv, &cl, &scfg, &ccfg, &port);
  sftt_conn *c;
  assert_int_equal(sftt_connect(cl.ctx, "127.0.0.1", port, NULL, &c), 0);
  run_until(&cl, 1, 0, 0);
  /* 256 chunk streams of 1 MiB: 256 MiB */
  const int n = 256;
  sender sd = {.c = c, .total = n, .len = 1 << 20};
  g_sender = &sd;
  uint64_t t0 = uv_hrtime();
  sender_pump(&sd);
  run_until(&sv, 0, 0, n);
  uint64_t dt = uv_hrtime() - t0;
  g_sender = NULL;
  assert_int_equal(sv.bytes, (uint64_t)n << 20);
  for (int i = 0; i < sv.nrx; i++)
    assert_int_equal(sv.rxs[i].bad, 0);
  sftq_stats st;
  assert_int_equal(sftt_conn_stats(c, &st), 0);
  assert_true(st.stream_bytes_sent >= (uint64_t)n << 20);
  assert_true(st.bytes_sent > st.stream_bytes_sent); /* TLS + frame overhead */
  printf("tcp_loopback_256MiB_MBps=%.1f (%s)\n",
         (double)((uint64_t)n << 20) / 1e6 / ((double)dt / 1e9),
         UNDER_ASAN ? "asan" : "release");
  loop_end(cl.ctx, sv.ctx);
}

/* ---- timeouts
 * ----------------------------------------------------------------- */

static void test_idle_timeout(void **state) {
  (void)state;
  side sv = {0}, cl = {0};
  sftq_config scfg, ccfg;
  loop_begin();
  base_cfg(&scfg, &sv, 1);
  base_cfg(&ccfg, &cl, 0);
  scfg.idle_timeout_ms = ccfg.idle_timeout_ms = 300;
  scfg.keepalive_ms = ccfg.keepalive_ms = UINT32_MAX;
  uint16_t port;
  pair(&sv, &cl, &scfg, &ccfg, &port);
  sftt_conn *c;
  assert_int_equal(sftt_connect(cl.ctx, "127.0.0.1", port, NULL, &c), 0);
  run_until(&cl, 1, 0, 0);
  uint64_t t0 = uv_hrtime();
  run_until(&cl, 0, 1, 0);
  run_until(&sv, 0, 1, 0);
  uint64_t dt = uv_hrtime() - t0;
  assert_int_equal(cl.reason, SFT_ERR_TIMEOUT);
  assert_int_equal(sv.reason, SFT_ERR_TIMEOUT);
  assert_true(dt >= 250 * 1000000ull && dt < 5000 * 1000000ull);
  loop_end(cl.ctx, sv.ctx);
}

static void test_keepalive(void **state) {
  (void)state;
  side sv = {0}, cl = {0};
  sftq_config scfg, ccfg;
  loop_begin();
  base_cfg(&scfg, &sv, 1);
  base_cfg(&ccfg, &cl, 0);
  scfg.idle_timeout_ms = ccfg.idle_timeout_ms = 300;
  ccfg.keepalive_ms = 80; /* only the client pings */
  scfg.keepalive_ms = UINT32_MAX;
  uint16_t port;
  pair(&sv, &cl, &scfg, &ccfg, &port);
  sftt_conn *c;
  assert_int_equal(sftt_connect(cl.ctx, "127.0.0.1", port, NULL, &c), 0);
  run_until(&cl, 1, 0, 0);
  uv_timer_init(&g_loop, &g_t);
  uv_timer_start(&g_t, on_stop_timer, 1000, 0);
  uv_run(&g_loop, UV_RUN_DEFAULT);
  assert_int_equal(cl.closed, 0); /* PING/PONG kept both sides alive */
  assert_int_equal(sv.closed, 0);
  sftt_conn_close(c, 0);
  run_until(&sv, 0, 1, 0);
  assert_int_equal(sv.reason, SFT_ERR_CLOSED);
  assert_int_equal(cl.reason, SFT_OK);
  uv_close((uv_handle_t *)&g_t, NULL);
  loop_end(cl.ctx, sv.ctx);
}

static void test_handshake_timeout(void **state) {
  (void)state;
  side cl = {0};
  sftq_config ccfg;
  loop_begin();
  base_cfg(&ccfg, &cl, 0);
  ccfg.handshake_timeout_ms = 200;
  assert_int_equal(sftt_ctx_new(&cl.ctx, &g_loop, &ccfg), 0);
  /* a TCP listener that never speaks TLS (the kernel accepts for it) */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 4), 0);
  socklen_t al = sizeof a;
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
  sftt_conn *c;
  assert_int_equal(
      sftt_connect(cl.ctx, "127.0.0.1", ntohs(a.sin_port), NULL, &c), 0);
  run_until(&cl, 0, 1, 0);
  assert_int_equal(cl.reason, SFT_ERR_TIMEOUT);
  assert_int_equal(cl.connected, 0);
  /* refused connection: SFT_ERR_REFUSED (was SFT_ERR_IO: the sender could
   * not say "nothing listens") */
  close(fd);
  assert_int_equal(
      sftt_connect(cl.ctx, "127.0.0.1", ntohs(a.sin_port), NULL, &c), 0);
  run_until(&cl, 0, 2, 0);
  assert_int_equal(cl.reason, SFT_ERR_REFUSED);
  assert_int_equal(sftt_connect(cl.ctx, "not-an-ip", 1, NULL, &c),
                   SFT_ERR_INVAL);
  loop_end(cl.ctx, NULL);
}

static void test_bad_config(void **state) {
  (void)state;
  uv_loop_t loop;
  assert_int_equal(uv_loop_init(&loop), 0);
  side s = {0};
  sftq_config cfg;
  base_cfg(&cfg, &s, 0);
  sftt_ctx *ctx;
  cfg.key_path = g_skey; /* server key with client certificate */
  assert_int_equal(sftt_ctx_new(&ctx, &loop, &cfg), SFT_ERR_AUTH);
  cfg.key_path = "/nonexistent/key";
  assert_int_equal(sftt_ctx_new(&ctx, &loop, &cfg), SFT_ERR_IO);
  cfg.key_path = NULL;
  assert_int_equal(sftt_ctx_new(&ctx, &loop, &cfg), SFT_ERR_INVAL);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* One connection from |local| to |host|:|port|: the server must see
 * |want_src| as the peer address; then a clean close. */
static void via_ok_case(side *sv, side *cl, const char *local, const char *host,
                        uint16_t port, const char *want_src) {
  sftt_conn *c = NULL;
  int sconn = sv->connected, cconn = cl->connected;
  int sclosed = sv->closed;
  assert_int_equal(sftt_connect_via(cl->ctx, local, host, port, NULL, &c), 0);
  assert_non_null(c);
  run_until(cl, cconn + 1, 0, 0);
  run_until(sv, sconn + 1, 0, 0);
  assert_int_equal(cl->connected, cconn + 1);
  assert_int_equal(sv->connected, sconn + 1);
  struct sockaddr_storage ss;
  socklen_t sl = 0;
  assert_int_equal(sftt_conn_peer_addr(sv->conn, &ss, &sl), 0);
  char txt[INET6_ADDRSTRLEN];
  const void *a = ss.ss_family == AF_INET
                      ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                      : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
  assert_non_null(inet_ntop(ss.ss_family, a, txt, sizeof txt));
  assert_string_equal(txt, want_src);
  sftt_conn_close(c, 0);
  run_until(sv, 0, sclosed + 1, 0);
  assert_int_equal(sv->closed, sclosed + 1);
}

/* sftt_connect_via: the source address is the bound one; family mismatch
 * and an address that is not on this host fail at once, without a closed
 * callback and without leaking the socket. */
static void test_connect_via(void **state) {
  (void)state;
  side sv = {0}, cl = {0};
  sftq_config scfg, ccfg;
  loop_begin();
  base_cfg(&scfg, &sv, 1);
  base_cfg(&ccfg, &cl, 0);
  uint16_t port;
  pair(&sv, &cl, &scfg, &ccfg, &port);
  via_ok_case(&sv, &cl, "127.0.0.1", "127.0.0.1", port, "127.0.0.1");
  /* 127.0.0.2 (lo's 127/8): only the bind makes the kernel use it. */
  via_ok_case(&sv, &cl, "127.0.0.2", "127.0.0.1", port, "127.0.0.2");
  via_ok_case(&sv, &cl, "", "127.0.0.1", port, "127.0.0.1");
  via_ok_case(&sv, &cl, NULL, "127.0.0.1", port, "127.0.0.1");

  int fds = count_fds();
  int closed = cl.closed;
  sftt_conn *c = (sftt_conn *)&c;
  assert_int_equal(sftt_connect_via(cl.ctx, "::1", "127.0.0.1", port, NULL, &c),
                   SFT_ERR_INVAL);
  assert_null(c);
  assert_int_equal(sftt_connect_via(cl.ctx, "127.0.0.1", "::1", port, NULL, &c),
                   SFT_ERR_INVAL);
  assert_int_equal(
      sftt_connect_via(cl.ctx, "127.0.0.1:9", "127.0.0.1", port, NULL, &c),
      SFT_ERR_INVAL);
  assert_int_equal(
      sftt_connect_via(cl.ctx, "localhost", "127.0.0.1", port, NULL, &c),
      SFT_ERR_INVAL);
  /* brackets and %zone only with IPv6; an unknown zone */
  assert_int_equal(
      sftt_connect_via(cl.ctx, "[127.0.0.1]", "127.0.0.1", port, NULL, &c),
      SFT_ERR_INVAL);
  assert_int_equal(
      sftt_connect_via(cl.ctx, "127.0.0.1%lo", "127.0.0.1", port, NULL, &c),
      SFT_ERR_INVAL);
  assert_int_equal(
      sftt_connect_via(cl.ctx, "::1%nosuchif0", "::1", port, NULL, &c),
      SFT_ERR_INVAL);
  assert_int_equal(sftt_connect_via(cl.ctx, "[::1", "::1", port, NULL, &c),
                   SFT_ERR_INVAL);
  c = (sftt_conn *)&c;
  assert_int_equal(
      sftt_connect_via(cl.ctx, "192.0.2.1", "127.0.0.1", port, NULL, &c),
      SFT_ERR_IO); /* TEST-NET-1: not on this host, bind EADDRNOTAVAIL */
  assert_null(c);
  assert_int_equal(
      sftt_connect_via(NULL, "127.0.0.1", "127.0.0.1", port, NULL, &c),
      SFT_ERR_INVAL);
  /* No failed call leaves a descriptor behind. Fewer is not a leak: one
   * fresh-clone run under heavy load counted one fewer here (popen-based
   * count then; cause not found). */
  assert_true(count_fds() <= fds);
  uv_run(&g_loop, UV_RUN_NOWAIT);
  assert_int_equal(cl.closed, closed); /* nothing was reported */

  /* IPv6 when the host has ::1 (some CI containers do not). */
  side sv6 = {0};
  sftq_config scfg6;
  base_cfg(&scfg6, &sv6, 1);
  assert_int_equal(sftt_ctx_new(&sv6.ctx, &g_loop, &scfg6), 0);
  uint16_t port6 = 0;
  if (sftt_listen(sv6.ctx, "::1", 0, &port6) == 0) {
    via_ok_case(&sv6, &cl, "::1", "::1", port6, "::1");
    via_ok_case(&sv6, &cl, "[::1]", "::1", port6, "::1");
    via_ok_case(&sv6, &cl, "::1%lo", "::1", port6, "::1");
    assert_int_equal(
        sftt_connect_via(cl.ctx, "2001:db8::1", "::1", port6, NULL, &c),
        SFT_ERR_IO); /* documentation prefix: not on this host */
  } else {
    print_message("no ::1 here: IPv6 via case skipped\n");
  }
  sftt_ctx_free(sv6.ctx);
  loop_end(cl.ctx, sv.ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_frame_codec),
      cmocka_unit_test(test_bad_config),
      cmocka_unit_test(test_handshake_fp),
      cmocka_unit_test(test_reject),
      cmocka_unit_test(test_alpn_mismatch),
      cmocka_unit_test(test_echo_and_cancel),
      cmocka_unit_test(test_uni_200),
      cmocka_unit_test(test_manual_credit),
      cmocka_unit_test(test_four_clients),
      cmocka_unit_test(test_bulk_256m),
      cmocka_unit_test(test_idle_timeout),
      cmocka_unit_test(test_keepalive),
      cmocka_unit_test(test_handshake_timeout),
      cmocka_unit_test(test_connect_via),
  };
  int rv = cmocka_run_group_tests(tests, group_setup, group_teardown);
  free(g_pat);
  return rv;
}
