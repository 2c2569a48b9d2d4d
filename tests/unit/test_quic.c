/* Tests of src/daemon/quic: identities, mutual authentication, streams,
 * CID routing with several clients, Retry, stateless reset, version
 * negotiation, idle timeout, teardown. Everything runs on 127.0.0.1 in one
 * process on one uv loop; every test ends with uv_loop_close() == 0. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include "fdcount.h"
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/quic/quic.h"

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
static char g_pkey[128], g_pcert[128]; /* ECDSA P-256 identity */

static int rm_cb(const char *p, const struct stat *sb, int flag,
                 struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(p);
}

static int group_setup(void **state) {
  (void)state;
  strcpy(g_dir, "/tmp/sftq-test-XXXXXX");
  if (!mkdtemp(g_dir)) return -1;
  snprintf(g_skey, sizeof g_skey, "%s/server.key", g_dir);
  snprintf(g_scert, sizeof g_scert, "%s/server.crt", g_dir);
  snprintf(g_ckey, sizeof g_ckey, "%s/client.key", g_dir);
  snprintf(g_ccert, sizeof g_ccert, "%s/client.crt", g_dir);
  snprintf(g_pkey, sizeof g_pkey, "%s/p256.key", g_dir);
  snprintf(g_pcert, sizeof g_pcert, "%s/p256.crt", g_dir);
  if (sftq_identity_generate(g_skey, g_scert) != 0) return -1;
  if (sftq_identity_generate(g_ckey, g_ccert) != 0) return -1;
  if (sftq_identity_generate_type(g_pkey, g_pcert, SFTQ_KEY_ECDSA_P256) != 0)
    return -1;
  return 0;
}

static int group_teardown(void **state) {
  (void)state;
  nftw(g_dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
  return 0;
}

/* Deterministic content: byte |off| of stream |sid|. */
static uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static void gen(uint64_t sid, uint64_t off, uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint64_t o = off + i;
    uint64_t w = splitmix((sid << 40) ^ (o >> 3));
    p[i] = (uint8_t)(w >> (8 * (o & 7)));
  }
}

/* Per-stream receive record. */
typedef struct rx {
  const sftq_conn *conn;
  int64_t sid;
  uint64_t got;
  int fin, bad, closed;
  uint64_t close_code;
} rx;

#define MAX_RX 1024

typedef struct side {
  sftq_ctx *ctx;
  const char *name;
  int connected, closed, reason, verify_calls, reject, opened;
  int early, early_first; /* `early` calls; ...before `connected` */
  int early_write;        /* 1: on `early`, open a stream and write to it */
  uint64_t close_app;
  uint8_t fp[SFTQ_FP_LEN];
  int have_fp;
  sftq_conn *conn;       /* last connected conn */
  /* receive bookkeeping (server) */
  rx rxs[MAX_RX];
  int nrx, fins;
  uint64_t bytes;
  int verify_content;    /* 1: gen(); 2: pattern */
  int echo;              /* echo bidi data back */
  uint8_t echo_buf[4096];
  size_t echo_len;
  int writable_calls, acked, stream_closes;
  uint64_t last_close_code;
  uint64_t t_first, t_fin;
  struct side *peer_of_conn; /* unused */
} side;

static const uint8_t *g_pattern;
static size_t g_pattern_len;

static rx *rx_get(side *s, const sftq_conn *c, int64_t sid) {
  for (int i = 0; i < s->nrx; i++)
    if (s->rxs[i].sid == sid && s->rxs[i].conn == c) return &s->rxs[i];
  if (s->nrx == MAX_RX) return NULL;
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
  s->have_fp = 1;
  return s->reject;
}

static void cb_connected(sftq_conn *c, void *ud) {
  side *s = ud;
  s->connected++;
  s->conn = c;
  if (!s->t_first) s->t_first = uv_hrtime();
}

static const char g_early_msg[] = "sent before connected";

static void cb_early(sftq_conn *c, void *ud) {
  side *s = ud;
  int64_t sid;
  s->early++;
  s->early_first += !s->connected;
  if (s->early_write) {
    sftq_iov v = {g_early_msg, sizeof g_early_msg - 1};
    assert_int_equal(sftq_stream_open_bidi(c, &sid), 0);
    assert_int_equal(sftq_stream_write(c, sid, &v, 1, SFTQ_WRITE_FIN), 0);
  }
}

static void cb_stream_open(sftq_conn *c, int64_t sid, void *ud) {
  side *s = ud;
  (void)c;
  (void)sid;
  s->opened++;
}

static void cb_stream_data(sftq_conn *c, int64_t sid, const uint8_t *data,
                           size_t len, int fin, void *ud) {
  side *s = ud;
  rx *r = rx_get(s, c, sid);
  assert_non_null(r);
  if (s->verify_content == 1 && len) {
    uint8_t tmp[4096];
    for (size_t o = 0; o < len; o += sizeof tmp) {
      size_t n = len - o < sizeof tmp ? len - o : sizeof tmp;
      gen((uint64_t)sid, r->got + o, tmp, n);
      if (memcmp(tmp, data + o, n) != 0) r->bad = 1;
    }
  } else if (s->verify_content == 2 && len) {
    for (size_t o = 0; o < len;) {
      size_t po = (size_t)((r->got + o) % g_pattern_len);
      size_t n = g_pattern_len - po < len - o ? g_pattern_len - po : len - o;
      if (memcmp(g_pattern + po, data + o, n) != 0) r->bad = 1;
      o += n;
    }
  }
  if (s->echo && (sid & 2) == 0) {
    sftq_iov v = {data, len};
    assert_int_equal(sftq_stream_write(c, sid, &v, len ? 1 : 0,
                                       SFTQ_WRITE_COPY |
                                           (fin ? SFTQ_WRITE_FIN : 0)),
                     0);
  } else if ((sid & 2) == 0 && s->echo_len + len <= sizeof s->echo_buf) {
    memcpy(s->echo_buf + s->echo_len, data, len);
    s->echo_len += len;
  }
  r->got += len;
  s->bytes += len;
  if (fin) {
    r->fin = 1;
    s->fins++;
    s->t_fin = uv_hrtime();
  }
}

static void cb_stream_close(sftq_conn *c, int64_t sid, uint64_t code,
                            void *ud) {
  side *s = ud;
  (void)c;
  s->stream_closes++;
  s->last_close_code = code;
  rx *r = rx_get(s, c, sid);
  if (r) {
    r->closed = 1;
    r->close_code = code;
  }
}

static void cb_closed(sftq_conn *c, int reason, uint64_t app, void *ud) {
  side *s = ud;
  (void)c;
  s->closed++;
  s->reason = reason;
  s->close_app = app;
  if (s->conn == c) s->conn = NULL;
}

/* Client-side sender state for the many-streams tests. */
typedef struct sender {
  side *s;
  sftq_conn *c;
  int total, opened, acked;
  size_t size;
  uint8_t *bufs[MAX_RX];
  int64_t sids[MAX_RX];
  int copy;
} sender;

static void sender_pump(sender *sd) {
  while (sd->opened < sd->total) {
    int64_t sid;
    int rv = sftq_stream_open_uni(sd->c, &sid);
    if (rv == SFT_ERR_AGAIN) return; /* writable will call us again */
    assert_int_equal(rv, 0);
    int i = sd->opened++;
    uint8_t *b = malloc(sd->size);
    assert_non_null(b);
    gen((uint64_t)sid, 0, b, sd->size);
    sd->bufs[i] = b;
    sd->sids[i] = sid;
    assert_int_equal(sftq_stream_set_user(sd->c, sid, b), 0);
    /* two iovs, to exercise the vector path */
    sftq_iov v[2] = {{b, sd->size / 3}, {b + sd->size / 3, sd->size - sd->size / 3}};
    assert_int_equal(sftq_stream_write(sd->c, sid, v, 2, SFTQ_WRITE_FIN), 0);
  }
}

static void cb_writable(sftq_conn *c, void *ud) {
  side *s = ud;
  s->writable_calls++;
  sender *sd = sftq_conn_user(c);
  if (sd) sender_pump(sd);
}

static void cb_stream_acked(sftq_conn *c, int64_t sid, void *ud) {
  side *s = ud;
  s->acked++;
  sender *sd = sftq_conn_user(c);
  if (sd) {
    uint8_t *b = sftq_stream_user(c, sid);
    for (int i = 0; i < sd->opened; i++)
      if (sd->sids[i] == sid && sd->bufs[i] == b && b) {
        free(b);
        sd->bufs[i] = NULL;
        sd->acked++;
      }
  }
}

static void cb_log(const char *line, void *ud) {
  side *s = ud;
  if (getenv("SFTQ_TEST_LOG")) fprintf(stderr, "[%s] %s\n", s->name, line);
}

static void base_cfg(sftq_config *cfg, side *s, const char *cert,
                     const char *key) {
  memset(cfg, 0, sizeof *cfg);
  cfg->cert_path = cert;
  cfg->key_path = key;
  cfg->cb.verify_peer = cb_verify;
  cfg->cb.connected = cb_connected;
  cfg->cb.early = cb_early;
  cfg->cb.stream_open = cb_stream_open;
  cfg->cb.stream_data = cb_stream_data;
  cfg->cb.stream_close = cb_stream_close;
  cfg->cb.stream_acked = cb_stream_acked;
  cfg->cb.writable = cb_writable;
  cfg->cb.closed = cb_closed;
  cfg->cb.log = cb_log;
  cfg->user_data = s;
}

/* Runs the loop until pred() or |ms| elapse; returns pred(). */
static int g_expired;
static void on_guard(uv_timer_t *t) {
  (void)t;
  g_expired = 1;
}

static int run_until(uv_loop_t *loop, int (*pred)(void *), void *arg,
                     unsigned ms) {
  uv_timer_t guard;
  uv_timer_init(loop, &guard);
  g_expired = 0;
  uv_timer_start(&guard, on_guard, ms, 0);
  while (!pred(arg) && !g_expired) uv_run(loop, UV_RUN_ONCE);
  uv_timer_stop(&guard);
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return pred(arg);
}

typedef struct pair {
  side *a, *b;
  int n;
} pair;

static int both_connected(void *p) {
  pair *x = p;
  return x->a->connected >= x->n && x->b->connected >= 1;
}
static int both_closed(void *p) {
  pair *x = p;
  return x->a->closed >= x->n && x->b->closed >= 1;
}

static void finish(uv_loop_t *loop, sftq_ctx *a, sftq_ctx *b) {
  sftq_ctx_free(a);
  sftq_ctx_free(b);
  assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(loop), 0);
}

/* Server on 127.0.0.1:ephemeral + one client; returns the port. */
static uint16_t start_server(uv_loop_t *loop, side *srv, sftq_config *cfg) {
  uint16_t port = 0;
  assert_int_equal(sftq_ctx_new(&srv->ctx, loop, cfg), 0);
  assert_int_equal(sftq_listen(srv->ctx, "127.0.0.1", 0, &port), 0);
  assert_true(port != 0);
  return port;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_identity(void **state) {
  (void)state;
  struct stat st;
  assert_int_equal(stat(g_skey, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_int_equal(stat(g_scert, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  uint8_t a[32], a2[32], b[32], p[32];
  assert_int_equal(sftq_identity_fingerprint(g_scert, a), 0);
  assert_int_equal(sftq_identity_fingerprint(g_scert, a2), 0);
  assert_int_equal(sftq_identity_fingerprint(g_ccert, b), 0);
  assert_int_equal(sftq_identity_fingerprint(g_pcert, p), 0);
  assert_memory_equal(a, a2, 32);
  assert_memory_not_equal(a, b, 32);
  assert_memory_not_equal(a, p, 32);
  assert_int_equal(sftq_identity_fingerprint(g_skey, a2), SFT_ERR_MALFORMED);
  char missing[160];
  snprintf(missing, sizeof missing, "%s/nope.crt", g_dir);
  assert_int_equal(sftq_identity_fingerprint(missing, a2), SFT_ERR_IO);
  /* no leftover temp files */
  char tmpl[200];
  snprintf(tmpl, sizeof tmpl, "ls %s | grep -c tmp >/dev/null", g_dir);
  assert_int_not_equal(system(tmpl), 0);
  /* A certificate with somebody else's key cannot be used. */
  uv_loop_t loop;
  uv_loop_init(&loop);
  sftq_config cfg;
  side s = {0};
  base_cfg(&cfg, &s, g_scert, g_ckey);
  sftq_ctx *ctx = NULL;
  assert_int_equal(sftq_ctx_new(&ctx, &loop, &cfg), SFT_ERR_AUTH);
  assert_null(ctx);
  base_cfg(&cfg, &s, missing, g_ckey);
  assert_int_equal(sftq_ctx_new(&ctx, &loop, &cfg), SFT_ERR_IO);
  enum sftq_cc cc;
  assert_int_equal(sftq_cc_parse("bbr2", &cc), 0);
  assert_int_equal(cc, SFTQ_CC_BBR2);
  assert_int_equal(sftq_cc_parse("cubic", &cc), 0);
  assert_string_equal(sftq_cc_name(cc), "cubic");
  assert_int_equal(sftq_cc_parse("vegas", &cc), SFT_ERR_INVAL);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* Handshake between |scert|/|skey| and |ccert|/|ckey|; checks fingerprints,
 * then an application close with code 7. */
static void handshake_case(const char *scert, const char *skey,
                           const char *ccert, const char *ckey) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  side srv = {.name = "server"}, cli = {.name = "client"};
  sftq_config scfg, ccfg;
  base_cfg(&scfg, &srv, scert, skey);
  base_cfg(&ccfg, &cli, ccert, ckey);
  uint16_t port = start_server(&loop, &srv, &scfg);
  assert_int_equal(sftq_ctx_new(&cli.ctx, &loop, &ccfg), 0);
  sftq_conn *c;
  assert_int_equal(sftq_connect(cli.ctx, "127.0.0.1", port, NULL, &c), 0);
  int64_t sid;
  assert_int_equal(sftq_stream_open_bidi(c, &sid), SFT_ERR_STATE);
  pair p = {&cli, &srv, 1};
  assert_true(run_until(&loop, both_connected, &p, 5000));
  uint8_t sfp[32], cfp[32], got[32];
  assert_int_equal(sftq_identity_fingerprint(scert, sfp), 0);
  assert_int_equal(sftq_identity_fingerprint(ccert, cfp), 0);
  assert_memory_equal(cli.fp, sfp, 32); /* client saw the server's identity */
  assert_memory_equal(srv.fp, cfp, 32); /* server saw the client's identity */
  assert_int_equal(sftq_conn_peer_fp(c, got), 0);
  assert_memory_equal(got, sfp, 32);
  assert_int_equal(sftq_conn_peer_fp(srv.conn, got), 0);
  assert_memory_equal(got, cfp, 32);
  assert_true(sftq_conn_is_server(srv.conn));
  assert_false(sftq_conn_is_server(c));
  sftq_stats st;
  assert_int_equal(sftq_conn_stats(c, &st), 0);
  assert_true(st.srtt_ns > 0);
  assert_true(st.cwnd > 0);
  assert_true(st.pkts_sent > 0 && st.pkts_recv > 0);
  sftq_conn_close(c, 7);
  assert_true(run_until(&loop, both_closed, &p, 5000));
  assert_int_equal(cli.reason, SFT_OK);
  assert_int_equal(srv.reason, SFT_ERR_CLOSED);
  assert_int_equal(srv.close_app, 7);
  assert_int_equal(cli.closed, 1);
  assert_int_equal(srv.closed, 1);
  finish(&loop, srv.ctx, cli.ctx);
}

static void test_handshake_ed25519(void **state) {
  (void)state;
  handshake_case(g_scert, g_skey, g_ccert, g_ckey);
}

static void test_handshake_p256_mixed(void **state) {
  (void)state;
  handshake_case(g_pcert, g_pkey, g_ccert, g_ckey); /* P-256 server */
  handshake_case(g_scert, g_skey, g_pcert, g_pkey); /* P-256 client */
}

static void reject_case(int server_rejects) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  side srv = {.name = "server"}, cli = {.name = "client"};
  sftq_config scfg, ccfg;
  base_cfg(&scfg, &srv, g_scert, g_skey);
  base_cfg(&ccfg, &cli, g_ccert, g_ckey);
  srv.reject = server_rejects;
  cli.reject = !server_rejects;
  cli.early_write = 1; /* refused by the server: never read */
  uint16_t port = start_server(&loop, &srv, &scfg);
  assert_int_equal(sftq_ctx_new(&cli.ctx, &loop, &ccfg), 0);
  sftq_conn *c;
  assert_int_equal(sftq_connect(cli.ctx, "127.0.0.1", port, NULL, &c), 0);
  pair p = {&cli, &srv, 1};
  assert_true(run_until(&loop, both_closed, &p, 5000));
  assert_int_equal(cli.reason, SFT_ERR_AUTH);
  assert_int_equal(srv.reason, SFT_ERR_AUTH);
  assert_int_equal(cli.connected, 0);
  assert_int_equal(srv.connected, 0);
  assert_int_equal(srv.bytes, 0);
  assert_int_equal(srv.opened, 0);
  assert_int_equal(srv.early, 0);
  /* the server refuses only after our side completed: `early` came */
  assert_int_equal(cli.early, server_rejects);
  finish(&loop, srv.ctx, cli.ctx);
}

static int early_arrived(void *p) {
  side *srv = p;
  return srv->bytes >= sizeof g_early_msg - 1 && srv->fins >= 1;
}

/* The client writes on `early`, a round trip before `connected`: the
 * server reads it (once it has accepted the client's certificate). */
static void test_early_write(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  side srv = {.name = "server"}, cli = {.name = "client", .early_write = 1};
  sftq_config scfg, ccfg;
  base_cfg(&scfg, &srv, g_scert, g_skey);
  base_cfg(&ccfg, &cli, g_ccert, g_ckey);
  uint16_t port = start_server(&loop, &srv, &scfg);
  assert_int_equal(sftq_ctx_new(&cli.ctx, &loop, &ccfg), 0);
  sftq_conn *c;
  assert_int_equal(sftq_connect(cli.ctx, "127.0.0.1", port, NULL, &c), 0);
  assert_int_equal(sftq_stream_open_bidi(c, &(int64_t){0}), SFT_ERR_STATE);
  assert_true(run_until(&loop, early_arrived, &srv, 5000));
  pair p = {&cli, &srv, 1};
  assert_true(run_until(&loop, both_connected, &p, 5000));
  assert_int_equal(cli.early, 1);
  assert_int_equal(cli.early_first, 1);
  assert_int_equal(srv.early, 0); /* client only */
  assert_int_equal(srv.bytes, sizeof g_early_msg - 1);
  finish(&loop, srv.ctx, cli.ctx);
}

static void test_verify_reject_by_server(void **state) {
  (void)state;
  reject_case(1);
}

static void test_verify_reject_by_client(void **state) {
  (void)state;
  reject_case(0);
}

static void test_alpn_mismatch(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  side srv = {.name = "server"}, cli = {.name = "client"};
  sftq_config scfg, ccfg;
  base_cfg(&scfg, &srv, g_scert, g_skey);
  base_cfg(&ccfg, &cli, g_ccert, g_ckey);
  ccfg.alpn = "other/9";
  uint16_t port = start_server(&loop, &srv, &scfg);
  assert_int_equal(sftq_ctx_new(&cli.ctx, &loop, &ccfg), 0);
  sftq_conn *c;
  assert_int_equal(sftq_connect(cli.ctx, "127.0.0.1", port, NULL, &c), 0);
  pair p = {&cli, &srv, 1};
  assert_true(run_until(&loop, both_closed, &p, 5000));
  assert_int_equal(cli.connected, 0);
  assert_int_equal(srv.connected, 0);
  assert_int_equal(cli.reason, SFT_ERR_VERSION);
  assert_int_equal(srv.reason, SFT_ERR_VERSION);
  finish(&loop, srv.ctx, cli.ctx);
}

static int echo_done(void *p) {
  side *cli = p;
  return cli->fins >= 1;
}

static void test_bidi_echo(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  side srv = {.name = "server", .echo = 1}, cli = {.name = "client"};
  sftq_config scfg, ccfg;
  base_cfg(&scfg, &srv, g_scert, g_skey);
  base_cfg(&ccfg, &cli, g_ccert, g_ckey);
  uint16_t port = start_server(&loop, &srv, &scfg);
  assert_int_equal(sftq_ctx_new(&cli.ctx, &loop, &ccfg), 0);
  sftq_conn *c;
  assert_int_equal(sftq_connect(cli.ctx, "127.0.0.1", port, NULL, &c), 0);
  pair p = {&cli, &srv, 1};
  assert_true(run_until(&loop, both_connected, &p, 5000));
  int64_t sid;
  assert_int_equal(sftq_stream_open_bidi(c, &sid), 0);
  assert_int_equal(sid, 0);
  assert_int_equal(sftq_stream_set_urgency(c, sid, 0), 0);
  assert_int_equal(sftq_stream_set_urgency(c, sid, 8), SFT_ERR_RANGE);
  static const char m1[] = "HELLO control ";
  static const char m2[] = "stream, echo me";
  sftq_iov v[2] = {{m1, sizeof m1 - 1}, {m2, sizeof m2 - 1}};
  assert_int_equal(sftq_stream_write(c, sid, v, 1, SFTQ_WRITE_COPY), 0);
  assert_int_equal(sftq_stream_write(c, sid, v + 1, 1,
                                     SFTQ_WRITE_COPY | SFTQ_WRITE_FIN),
                   0);
  /* FIN already queued: no more writes */
  assert_int_equal(sftq_stream_write(c, sid, v, 1, SFTQ_WRITE_COPY),
                   SFT_ERR_STATE);
  assert_int_equal(sftq_stream_write(c, 99, v, 1, 0), SFT_ERR_NOT_FOUND);
  assert_true(run_until(&loop, echo_done, &cli, 5000));
  assert_int_equal(cli.echo_len, sizeof m1 + sizeof m2 - 2);
  assert_memory_equal(cli.echo_buf, "HELLO control stream, echo me",
                      cli.echo_len);
  assert_int_equal(srv.opened, 1);
  finish(&loop, srv.ctx, cli.ctx);
}

static int all_streams_done(void *p) {
  pair *x = p;
  sender *sd = sftq_conn_user(x->a->conn);
  return x->b->fins >= x->n && sd && sd->acked >= x->n;
}

static void test_many_uni_streams(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  side srv = {.name = "server", .verify_content = 1}, cli = {.name = "client"};
  sftq_config scfg, ccfg;
  base_cfg(&scfg, &srv, g_scert, g_skey);
  base_cfg(&ccfg, &cli, g_ccert, g_ckey);
  scfg.max_streams_uni = 64; /* fewer than the 200 streams: exercises
                                SFT_ERR_AGAIN + writable + MAX_STREAMS */
  scfg.initial_max_stream_data = 64 << 10; /* flow-control blocking too */
  uint16_t port = start_server(&loop, &srv, &scfg);
  assert_int_equal(sftq_ctx_new(&cli.ctx, &loop, &ccfg), 0);
  sender sd = {.s = &cli, .total = 200, .size = 256 << 10};
  sftq_conn *c;
  assert_int_equal(sftq_connect(cli.ctx, "127.0.0.1", port, &sd, &c), 0);
  sd.c = c;
  pair p = {&cli, &srv, 1};
  assert_true(run_until(&loop, both_connected, &p, 5000));
  sender_pump(&sd);
  assert_int_equal(sd.opened, 64);
  p.n = 200;
  int ok = run_until(&loop, all_streams_done, &p, 40000);
  if (!ok)
    fprintf(stderr, "opened=%d acked=%d srv fins=%d closes=%d nrx=%d writable=%d unsent=%llu\n",
            sd.opened, sd.acked, srv.fins, srv.stream_closes, srv.nrx, cli.writable_calls,
            (unsigned long long)sftq_conn_unsent(c));
  assert_true(ok);
  assert_int_equal(srv.nrx, 200);
  for (int i = 0; i < srv.nrx; i++) {
    assert_int_equal(srv.rxs[i].got, 256 << 10);
    assert_int_equal(srv.rxs[i].bad, 0);
    assert_int_equal(srv.rxs[i].fin, 1);
  }
  assert_true(cli.writable_calls > 0);
  assert_int_equal(sd.acked, 200);
  assert_int_equal(sftq_conn_unsent(c), 0);
  sftq_stats st;
  assert_int_equal(sftq_conn_stats(c, &st), 0);
  assert_true(st.stream_bytes_sent == 200ull * (256 << 10));
  finish(&loop, srv.ctx, cli.ctx);
  for (int i = 0; i < sd.opened; i++) free(sd.bufs[i]);
}

/* Several clients on one server socket, with Retry on. */
#define NCLI 4
static int multi_done(void *p) {
  side **s = p;
  for (int i = 0; i < NCLI; i++) {
    sftq_conn *c = s[i]->conn;
    sender *sd = c ? sftq_conn_user(c) : NULL;
    if (!sd || sd->acked < sd->total) return 0;
  }
  return s[NCLI]->fins >= NCLI * 10;
}

/* NCLI clients connect at once and each sends 10 streams. |retry| and
 * |load| configure the server's Retry policy; |want_retried| is how many
 * clients must have taken a Retry. */
static void multi_clients(int retry, uint32_t load, int want_retried) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  side srv = {.name = "server", .verify_content = 1};
  side cli[NCLI];
  sender sd[NCLI];
  sftq_config scfg, ccfg;
  base_cfg(&scfg, &srv, g_scert, g_skey);
  scfg.retry = retry;
  scfg.retry_load = load;
  uint16_t port = start_server(&loop, &srv, &scfg);
  side *all[NCLI + 1];
  for (int i = 0; i < NCLI; i++) {
    memset(&cli[i], 0, sizeof cli[i]);
    cli[i].name = "client";
    base_cfg(&ccfg, &cli[i], g_ccert, g_ckey);
    assert_int_equal(sftq_ctx_new(&cli[i].ctx, &loop, &ccfg), 0);
    memset(&sd[i], 0, sizeof sd[i]);
    sd[i].s = &cli[i];
    sd[i].total = 10;
    sd[i].size = 256 << 10;
    assert_int_equal(
        sftq_connect(cli[i].ctx, "127.0.0.1", port, &sd[i], &sd[i].c), 0);
    all[i] = &cli[i];
  }
  all[NCLI] = &srv;
  /* start sending as soon as each is connected */
  for (int round = 0; round < 2000; round++) {
    int ready = 0;
    for (int i = 0; i < NCLI; i++)
      if (cli[i].connected) {
        if (sd[i].opened == 0) sender_pump(&sd[i]);
        ready++;
      }
    if (ready == NCLI) break;
    uv_run(&loop, UV_RUN_ONCE);
  }
  assert_int_equal(srv.connected, NCLI);
  assert_true(run_until(&loop, multi_done, all, 30000));
  assert_int_equal(srv.nrx, NCLI * 10); /* keyed by (conn, stream id) */
  for (int i = 0; i < srv.nrx; i++) assert_int_equal(srv.rxs[i].bad, 0);
  assert_int_equal(srv.bytes, (uint64_t)NCLI * 10 * (256 << 10));
  int retried = 0;
  for (int i = 0; i < NCLI; i++) {
    sftq_stats st;
    assert_int_equal(sftq_conn_stats(sd[i].c, &st), 0);
    assert_true(st.retries <= 1);
    retried += (int)st.retries;
  }
  assert_int_equal(retried, want_retried);
  for (int i = 0; i < NCLI; i++) sftq_ctx_free(cli[i].ctx);
  sftq_ctx_free(srv.ctx);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
  for (int i = 0; i < NCLI; i++) {
    assert_int_equal(cli[i].closed, 1);
    assert_int_equal(cli[i].reason, SFT_ERR_CANCELLED);
    for (int j = 0; j < sd[i].opened; j++) free(sd[i].bufs[j]);
  }
}

/* Retry always (retry 1, even on loopback): every client takes one. */
static void test_multi_clients_retry(void **state) {
  (void)state;
  multi_clients(1, 0, NCLI);
}

/* Retry under load (retry 3: the policy of non-loopback listeners), 2
 * handshakes: the clients' Initials arrive together, the first two are
 * accepted at once and every later one gets a Retry while those two are
 * still in their handshakes. With the default load (16) no client takes
 * one: a lone client does not pay Retry's round trip. */
static void test_retry_under_load(void **state) {
  (void)state;
  multi_clients(3, 2, NCLI - 2);
  multi_clients(3, 0, 0);
  multi_clients(0, 0, 0); /* loopback default: never */
}

static int bulk_done(void *p) {
  side *s = p;
  return s->fins >= 1;
}

/* Writes |nbuf| references to the same |len|-byte buffer on stream |sid|
 * (16 per write), the last with FIN. */
static void write_repeated(sftq_conn *c, int64_t sid, const uint8_t *buf,
                           size_t len, size_t nbuf) {
  for (size_t i = 0; i < nbuf; i += 16) {
    sftq_iov v[16];
    size_t n = nbuf - i < 16 ? nbuf - i : 16;
    for (size_t k = 0; k < n; k++)
      v[k] = (sftq_iov){buf, len};
    assert_int_equal(
        sftq_stream_write(c, sid, v, n, i + n == nbuf ? SFTQ_WRITE_FIN : 0), 0);
  }
}

static void test_bulk_throughput(void **state) {
  (void)state;
  const uint64_t total = UNDER_ASAN ? (32ull << 20) : (256ull << 20);
  static uint8_t pattern[1 << 20];
  gen(12345, 0, pattern, sizeof pattern);
  g_pattern = pattern;
  g_pattern_len = sizeof pattern;
  const char *ccname = getenv("SFTQ_TEST_CC");
  enum sftq_cc cc = SFTQ_CC_BBR2;
  if (ccname) assert_int_equal(sftq_cc_parse(ccname, &cc), 0);

  uv_loop_t loop;
  uv_loop_init(&loop);
  side srv = {.name = "server", .verify_content = 2}, cli = {.name = "client"};
  sftq_config scfg, ccfg;
  base_cfg(&scfg, &srv, g_scert, g_skey);
  base_cfg(&ccfg, &cli, g_ccert, g_ckey);
  scfg.cc = ccfg.cc = cc;
  uint16_t port = start_server(&loop, &srv, &scfg);
  assert_int_equal(sftq_ctx_new(&cli.ctx, &loop, &ccfg), 0);
  sftq_conn *c;
  assert_int_equal(sftq_connect(cli.ctx, "127.0.0.1", port, NULL, &c), 0);
  pair p = {&cli, &srv, 1};
  assert_true(run_until(&loop, both_connected, &p, 5000));
  int64_t sid;
  assert_int_equal(sftq_stream_open_uni(c, &sid), 0);
  /* The same 1 MiB buffer referenced total/1MiB times (16 per write). */
  uint64_t t0 = uv_hrtime();
  size_t nbuf = (size_t)(total / sizeof pattern);
  write_repeated(c, sid, pattern, sizeof pattern, nbuf);
  assert_true(run_until(&loop, bulk_done, &srv, 50000));
  uint64_t dt = srv.t_fin - t0;
  assert_int_equal(srv.rxs[0].got, total);
  assert_int_equal(srv.rxs[0].bad, 0);
  sftq_stats st;
  assert_int_equal(sftq_conn_stats(c, &st), 0);
  double mbs = (double)total / ((double)dt / 1e9) / 1e6;
  printf("quic bulk: %llu MiB cc=%s in %.3f s = %.0f MB/s; srtt=%.3f ms "
         "cwnd=%llu pkts=%llu lost=%llu gso_batches=%llu (%.1f pkts/batch) "
         "udp_payload=%zu overhead=%.3f%s\n",
         (unsigned long long)(total >> 20), sftq_cc_name(cc), (double)dt / 1e9,
         mbs, (double)st.srtt_ns / 1e6, (unsigned long long)st.cwnd,
         (unsigned long long)st.pkts_sent, (unsigned long long)st.pkts_lost,
         (unsigned long long)st.gso_batches,
         st.gso_batches ? (double)st.pkts_sent / (double)st.gso_batches : 0.0,
         st.max_udp_payload,
         (double)st.bytes_sent / (double)st.stream_bytes_sent,
         UNDER_ASAN ? " (ASan build)" : "");
  assert_int_equal(st.stream_bytes_sent, total);
  /* PMTUD raised the packet size from QUIC's 1200 (loopback takes ngtcp2's
   * largest probe, 1444): it did not while conn_write gave ngtcp2 only the
   * current size to write into, where no probe fits */
  assert_true(st.max_udp_payload >= 1400);
  finish(&loop, srv.ctx, cli.ctx);
}

/* The packet-FEC shim (lib/pfec) forced on at both ends: once the PROBE /
 * REPORT exchange after the handshake has switched it on, a bulk transfer
 * goes through it (every packet wrapped in DATA, parity after each block,
 * packets released to QUIC in order) and arrives intact; parity was sent;
 * nothing needed rebuilding on loopback. */
static sftq_conn *g_fec_conn;
static int fec_on(void *p) {
  (void)p;
  sftq_stats st;
  return sftq_conn_stats(g_fec_conn, &st) == 0 && st.fec_active;
}
static void test_packet_fec_on(void **state) {
  (void)state;
  const uint64_t total = UNDER_ASAN ? (8ull << 20) : (32ull << 20);
  static uint8_t pattern[1 << 20];
  gen(12345, 0, pattern, sizeof pattern);
  g_pattern = pattern;
  g_pattern_len = sizeof pattern;
  uv_loop_t loop;
  uv_loop_init(&loop);
  side srv = {.name = "server", .verify_content = 2}, cli = {.name = "client"};
  sftq_config scfg, ccfg;
  base_cfg(&scfg, &srv, g_scert, g_skey);
  base_cfg(&ccfg, &cli, g_ccert, g_ckey);
  scfg.pfec = ccfg.pfec = 1;
  uint16_t port = start_server(&loop, &srv, &scfg);
  assert_int_equal(sftq_ctx_new(&cli.ctx, &loop, &ccfg), 0);
  sftq_conn *c;
  assert_int_equal(sftq_connect(cli.ctx, "127.0.0.1", port, NULL, &c), 0);
  pair p = {&cli, &srv, 1};
  assert_true(run_until(&loop, both_connected, &p, 5000));
  g_fec_conn = c;
  assert_true(run_until(&loop, fec_on, NULL, 3000));
  int64_t sid;
  assert_int_equal(sftq_stream_open_uni(c, &sid), 0);
  size_t nbuf = (size_t)(total / sizeof pattern);
  write_repeated(c, sid, pattern, sizeof pattern, nbuf);
  assert_true(run_until(&loop, bulk_done, &srv, 50000));
  assert_int_equal(srv.rxs[0].got, total);
  assert_int_equal(srv.rxs[0].bad, 0);
  sftq_stats st;
  assert_int_equal(sftq_conn_stats(c, &st), 0);
  printf("quic with packet FEC: %llu MiB, %llu packets, %llu parity, "
         "udp_payload=%zu\n",
         (unsigned long long)(total >> 20), (unsigned long long)st.pkts_sent,
         (unsigned long long)st.fec_parity_sent, st.max_udp_payload);
  assert_true(st.fec_active);
  /* parity for blocks of up to 128 packets: at least one per block */
  assert_true(st.fec_parity_sent >= st.pkts_sent / 128 / 2);
  assert_int_equal(st.fec_blocks_failed, 0);
  finish(&loop, srv.ctx, cli.ctx);
}

/* Socket buffers follow the BDP: they start at the configured size (256
 * KiB here), stay there while nothing has flowed, grow (1 MiB steps, so to
 * at least 1 MiB) once data has a delivery rate, and never shrink. */
static void test_tune_buffers(void **state) {
  (void)state;
  const uint64_t total = 8ull << 20;
  static uint8_t pattern[1 << 20];
  gen(12345, 0, pattern, sizeof pattern);
  g_pattern = pattern;
  g_pattern_len = sizeof pattern;
  uv_loop_t loop;
  uv_loop_init(&loop);
  side srv = {.name = "server", .verify_content = 2}, cli = {.name = "client"};
  sftq_config scfg, ccfg;
  base_cfg(&scfg, &srv, g_scert, g_skey);
  base_cfg(&ccfg, &cli, g_ccert, g_ckey);
  scfg.sockbuf = ccfg.sockbuf = 256u << 10;
  uint16_t port = start_server(&loop, &srv, &scfg);
  assert_int_equal(sftq_ctx_new(&cli.ctx, &loop, &ccfg), 0);
  sftq_conn *c;
  uint64_t sz = 0;
  assert_int_equal(sftq_conn_tune_buffers(NULL, 1, &sz), SFT_ERR_STATE);
  assert_int_equal(sftq_connect(cli.ctx, "127.0.0.1", port, NULL, &c), 0);
  pair p = {&cli, &srv, 1};
  assert_true(run_until(&loop, both_connected, &p, 5000));
  assert_int_equal(sftq_conn_tune_buffers(c, uv_hrtime(), &sz), 0);
  assert_int_equal(sz, 256u << 10); /* nothing carried yet */
  int64_t sid;
  assert_int_equal(sftq_stream_open_uni(c, &sid), 0);
  sftq_iov v[8];
  for (size_t k = 0; k < 8; k++) v[k] = (sftq_iov){pattern, sizeof pattern};
  assert_int_equal(sftq_stream_write(c, sid, v, 8, SFTQ_WRITE_FIN), 0);
  assert_true(run_until(&loop, bulk_done, &srv, 20000));
  assert_int_equal(srv.rxs[0].got, total);
  sftq_stats st;
  assert_int_equal(sftq_conn_stats(c, &st), 0);
  assert_true(st.delivery_rate > 0 && st.srtt_ns > 0);
  assert_int_equal(sftq_conn_tune_buffers(c, uv_hrtime(), &sz), 0);
  assert_true(sz >= (1u << 20) && sz <= SFTQ_SOCKBUF_MAX);
  assert_int_equal(sz % (1u << 20), 0);
  uint64_t sz2 = 0;
  assert_int_equal(sftq_conn_tune_buffers(c, uv_hrtime(), &sz2), 0);
  assert_true(sz2 >= sz); /* never shrinks */
  finish(&loop, srv.ctx, cli.ctx);
}

static void test_idle_timeout(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  side srv = {.name = "server"}, cli = {.name = "client"};
  sftq_config scfg, ccfg;
  base_cfg(&scfg, &srv, g_scert, g_skey);
  base_cfg(&ccfg, &cli, g_ccert, g_ckey);
  scfg.idle_timeout_ms = ccfg.idle_timeout_ms = 300;
  scfg.keepalive_ms = ccfg.keepalive_ms = UINT32_MAX; /* silent */
  uint16_t port = start_server(&loop, &srv, &scfg);
  assert_int_equal(sftq_ctx_new(&cli.ctx, &loop, &ccfg), 0);
  sftq_conn *c;
  assert_int_equal(sftq_connect(cli.ctx, "127.0.0.1", port, NULL, &c), 0);
  pair p = {&cli, &srv, 1};
  assert_true(run_until(&loop, both_connected, &p, 5000));
  uint64_t t0 = uv_hrtime();
  assert_true(run_until(&loop, both_closed, &p, 5000));
  uint64_t dt = uv_hrtime() - t0;
  assert_int_equal(cli.reason, SFT_ERR_TIMEOUT);
  assert_int_equal(srv.reason, SFT_ERR_TIMEOUT);
  assert_true(dt >= 250u * 1000000u); /* not before the idle timeout */
  finish(&loop, srv.ctx, cli.ctx);
}

static int never(void *p) {
  (void)p;
  return 0;
}

static void test_keepalive(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  side srv = {.name = "server"}, cli = {.name = "client"};
  sftq_config scfg, ccfg;
  base_cfg(&scfg, &srv, g_scert, g_skey);
  base_cfg(&ccfg, &cli, g_ccert, g_ckey);
  scfg.idle_timeout_ms = ccfg.idle_timeout_ms = 300; /* keepalive 100 ms */
  uint16_t port = start_server(&loop, &srv, &scfg);
  assert_int_equal(sftq_ctx_new(&cli.ctx, &loop, &ccfg), 0);
  sftq_conn *c;
  assert_int_equal(sftq_connect(cli.ctx, "127.0.0.1", port, NULL, &c), 0);
  pair p = {&cli, &srv, 1};
  assert_true(run_until(&loop, both_connected, &p, 5000));
  run_until(&loop, never, NULL, 1200); /* 4 idle timeouts of silence */
  assert_int_equal(cli.closed, 0);
  assert_int_equal(srv.closed, 0);
  finish(&loop, srv.ctx, cli.ctx);
  assert_int_equal(cli.reason, SFT_ERR_CANCELLED);
}

static int got_bytes(void *p) {
  side *s = p;
  return s->bytes >= (1u << 20);
}

static void test_free_with_live_conns(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  side srv = {.name = "server"}, cli = {.name = "client"};
  sftq_config scfg, ccfg;
  base_cfg(&scfg, &srv, g_scert, g_skey);
  base_cfg(&ccfg, &cli, g_ccert, g_ckey);
  uint16_t port = start_server(&loop, &srv, &scfg);
  assert_int_equal(sftq_ctx_new(&cli.ctx, &loop, &ccfg), 0);
  sftq_conn *c;
  assert_int_equal(sftq_connect(cli.ctx, "127.0.0.1", port, NULL, &c), 0);
  pair p = {&cli, &srv, 1};
  assert_true(run_until(&loop, both_connected, &p, 5000));
  /* streams in flight, copied data, a bidi stream: all must be freed */
  uint8_t *big = malloc(8 << 20);
  assert_non_null(big);
  memset(big, 0x5a, 8 << 20);
  for (int i = 0; i < 4; i++) {
    int64_t sid;
    assert_int_equal(sftq_stream_open_uni(c, &sid), 0);
    sftq_iov v = {big, 2 << 20};
    assert_int_equal(sftq_stream_write(c, sid, &v, 1, 0), 0);
  }
  int64_t b;
  assert_int_equal(sftq_stream_open_bidi(c, &b), 0);
  sftq_iov v = {"abc", 3};
  assert_int_equal(sftq_stream_write(c, b, &v, 1, SFTQ_WRITE_COPY), 0);
  assert_true(run_until(&loop, got_bytes, &srv, 5000));
  assert_int_equal(cli.closed, 0);
  finish(&loop, srv.ctx, cli.ctx);
  assert_int_equal(cli.closed, 1);
  assert_int_equal(srv.closed, 1);
  assert_int_equal(cli.reason, SFT_ERR_CANCELLED);
  assert_int_equal(srv.reason, SFT_ERR_CANCELLED);
  free(big);
}

static int stream_closed_both(void *p) {
  pair *x = p;
  return x->a->stream_closes >= 1 && x->b->stream_closes >= 1;
}

static void test_stream_cancel(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  side srv = {.name = "server"}, cli = {.name = "client"};
  sftq_config scfg, ccfg;
  base_cfg(&scfg, &srv, g_scert, g_skey);
  base_cfg(&ccfg, &cli, g_ccert, g_ckey);
  scfg.initial_max_stream_data = 64 << 10; /* the stream cannot finish */
  scfg.max_stream_window = 64 << 10;
  scfg.manual_rx_credit = 1;               /* and the server never credits */
  uint16_t port = start_server(&loop, &srv, &scfg);
  assert_int_equal(sftq_ctx_new(&cli.ctx, &loop, &ccfg), 0);
  sftq_conn *c;
  assert_int_equal(sftq_connect(cli.ctx, "127.0.0.1", port, NULL, &c), 0);
  pair p = {&cli, &srv, 1};
  assert_true(run_until(&loop, both_connected, &p, 5000));
  int64_t sid;
  assert_int_equal(sftq_stream_open_uni(c, &sid), 0);
  uint8_t *buf = calloc(1, 1 << 20);
  sftq_iov v = {buf, 1 << 20};
  assert_int_equal(sftq_stream_write(c, sid, &v, 1, SFTQ_WRITE_FIN), 0);
  side *s = &srv;
  assert_true(run_until(&loop, got_bytes, s, 300) == 0); /* blocked */
  assert_true(srv.bytes > 0 && srv.bytes <= (64 << 10));
  assert_true(sftq_stream_unsent(c, sid) > 0);
  assert_int_equal(sftq_stream_cancel(c, sid, 42), 0);
  assert_int_equal(sftq_stream_unsent(c, sid), 0);
  assert_true(run_until(&loop, stream_closed_both, &p, 5000));
  assert_int_equal(srv.last_close_code, 42);
  assert_int_equal(cli.stream_closes, 1);
  assert_int_equal(srv.fins, 0);
  /* The cancelled bytes left the connection's unsent count once: it used
   * to be subtracted again when the stream retired (an underflow that
   * made the connection look full forever after a pause). */
  assert_int_equal(sftq_conn_unsent(c), 0);
  assert_int_equal(sftq_stream_cancel(c, sid, 1), SFT_ERR_NOT_FOUND);
  finish(&loop, srv.ctx, cli.ctx);
  free(buf); /* released by stream_close */
}

/* Raw UDP probes: stateless reset for an unknown short-header packet and
 * version negotiation for an unknown version. */
typedef struct probe {
  int fd;
  uint8_t buf[2048];
  ssize_t n;
} probe;

static int probe_got(void *p) {
  probe *pr = p;
  if (pr->n > 0) return 1;
  pr->n = recv(pr->fd, pr->buf, sizeof pr->buf, MSG_DONTWAIT);
  return pr->n > 0;
}

static void test_stateless_reset_and_vn(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  side srv = {.name = "server"};
  sftq_config scfg;
  base_cfg(&scfg, &srv, g_scert, g_skey);
  uint16_t port = start_server(&loop, &srv, &scfg);
  probe pr;
  pr.n = 0;
  pr.fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(pr.fd, (struct sockaddr *)&a, sizeof a), 0);
  /* short header, 18-byte unknown DCID */
  uint8_t pkt[1200];
  gen(1, 0, pkt, sizeof pkt);
  pkt[0] = 0x40 | (pkt[0] & 0x3f);
  assert_int_equal(send(pr.fd, pkt, 100, 0), 100);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_true(run_until(&loop, probe_got, &pr, 2000));
  assert_true(pr.n < 100 && pr.n >= 21);
  assert_int_equal(pr.buf[0] & 0xc0, 0x40); /* looks like a short header */
  /* a tiny packet gets no reset (it could not be smaller) */
  assert_int_equal(send(pr.fd, pkt, 20, 0), 20);
  /* long header with an unsupported version, padded to 1200 */
  pkt[0] = 0xc0;
  pkt[1] = 0x1a;
  pkt[2] = 0x2b;
  pkt[3] = 0x3c;
  pkt[4] = 0x4d;
  pkt[5] = 8;  /* dcid len */
  pkt[14] = 8; /* scid len */
  assert_int_equal(send(pr.fd, pkt, 1200, 0), 1200);
  pr.n = 0;
  assert_true(run_until(&loop, probe_got, &pr, 2000));
  assert_true(pr.n > 7);
  assert_true(pr.buf[0] & 0x80);
  assert_memory_equal(pr.buf + 1, "\0\0\0\0", 4); /* version 0: VN */
  close(pr.fd);
  sftq_ctx_free(srv.ctx);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static uint16_t sa_port(const struct sockaddr_storage *ss) {
  return ntohs(ss->ss_family == AF_INET
                   ? ((const struct sockaddr_in *)ss)->sin_port
                   : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

typedef struct via_wait {
  side *cli, *srv;
  int cli_want, srv_want, closed;
} via_wait;

static int via_connected(void *p) {
  via_wait *w = p;
  return w->cli->connected >= w->cli_want && w->srv->connected >= w->srv_want;
}

static int via_closed(void *p) {
  via_wait *w = p;
  return w->cli->closed >= w->closed;
}

/* One connection from |local| to |host|:|port| of |srv|'s listener: the
 * server must see |want_src| (with a non-zero port) as the peer address. */
static void via_ok_case(uv_loop_t *loop, side *srv, sftq_ctx *cctx,
                        side *cli, const char *local, const char *host,
                        uint16_t port, const char *want_src) {
  sftq_conn *c = NULL;
  via_wait w = {cli, srv, cli->connected + 1, srv->connected + 1, 0};
  assert_int_equal(sftq_connect_via(cctx, local, host, port, NULL, &c), 0);
  assert_non_null(c);
  assert_true(run_until(loop, via_connected, &w, 5000));
  struct sockaddr_storage ss;
  socklen_t sl = 0;
  assert_int_equal(sftq_conn_peer_addr(srv->conn, &ss, &sl), 0);
  char txt[INET6_ADDRSTRLEN];
  const void *a = ss.ss_family == AF_INET
                      ? (const void *)&((struct sockaddr_in *)&ss)->sin_addr
                      : (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
  assert_non_null(inet_ntop(ss.ss_family, a, txt, sizeof txt));
  assert_string_equal(txt, want_src);
  assert_true(sa_port(&ss) != 0);
  /* The client's own view of the peer is the server's listener. */
  assert_int_equal(sftq_conn_peer_addr(c, &ss, &sl), 0);
  assert_int_equal(sa_port(&ss), port);
  w.closed = cli->closed + 1;
  sftq_conn_close(c, 0);
  assert_true(run_until(loop, via_closed, &w, 5000));
  assert_int_equal(cli->reason, SFT_OK);
}

/* sftq_connect_via: the source address is the bound one; family mismatch
 * and an address that is not on this host fail at once, without a closed
 * callback and without leaking the socket. */
/* A free UDP port on 127.0.0.1 (bound, then closed: nothing listens). */
static uint16_t closed_udp_port(void) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET};
  socklen_t al = sizeof a;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_true(fd >= 0);
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
  close(fd);
  return ntohs(a.sin_port);
}

static int cli_closed(void *p) {
  return ((side *)p)->closed >= 1;
}

/* Nothing listens on the port: the ICMP port unreachable fails the
 * handshake with SFT_ERR_REFUSED (it waited for the 10 s handshake timeout,
 * deaf: libuv had stopped the poll handle on POLLERR). */
static void test_connect_refused(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  side cli = {.name = "client"};
  sftq_config ccfg;
  base_cfg(&ccfg, &cli, g_ccert, g_ckey);
  assert_int_equal(sftq_ctx_new(&cli.ctx, &loop, &ccfg), 0);
  sftq_conn *c;
  assert_int_equal(
      sftq_connect(cli.ctx, "127.0.0.1", closed_udp_port(), NULL, &c), 0);
  assert_true(run_until(&loop, cli_closed, &cli, 8000));
  assert_int_equal(cli.reason, SFT_ERR_REFUSED);
  assert_int_equal(cli.connected, 0);
  sftq_ctx_free(cli.ctx);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

/* A UDP relay between a client and the server, on a port of its own that
 * it can leave and take again (the client's socket is connected to it). */
typedef struct relay {
  uv_loop_t *loop;
  uv_udp_t u;
  int open;
  uint16_t port, server_port;
  struct sockaddr_in client;
  int have_client;
  uint64_t fwd;
} relay;

static void relay_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b) {
  static char buf[65536];
  (void)h;
  (void)sz;
  *b = uv_buf_init(buf, sizeof buf);
}

static void relay_recv(uv_udp_t *u, ssize_t n, const uv_buf_t *b,
                       const struct sockaddr *from, unsigned flags) {
  relay *r = u->data;
  struct sockaddr_in to = {.sin_family = AF_INET};
  (void)flags;
  if (n <= 0 || !from || from->sa_family != AF_INET)
    return;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (((const struct sockaddr_in *)from)->sin_port == htons(r->server_port)) {
    if (!r->have_client)
      return;
    to = r->client;
  } else {
    memcpy(&r->client, from, sizeof r->client);
    r->have_client = 1;
    to.sin_port = htons(r->server_port);
  }
  uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
  if (uv_udp_try_send(u, &out, 1, (const struct sockaddr *)&to) == n)
    r->fwd++;
}

static void relay_open(relay *r) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(r->port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(uv_udp_init(r->loop, &r->u), 0);
  r->u.data = r;
  assert_int_equal(
      uv_udp_bind(&r->u, (const struct sockaddr *)&a, UV_UDP_REUSEADDR), 0);
  if (!r->port) {
    int al = sizeof a;
    assert_int_equal(uv_udp_getsockname(&r->u, (struct sockaddr *)&a, &al), 0);
    r->port = ntohs(a.sin_port);
  }
  assert_int_equal(uv_udp_recv_start(&r->u, relay_alloc, relay_recv), 0);
  r->open = 1;
}

static void relay_close(relay *r) {
  uv_close((uv_handle_t *)&r->u, NULL);
  uv_run(r->loop, UV_RUN_NOWAIT); /* the port is free when this returns */
  r->open = 0;
}

/* The client sent a packet more than |base| (on loopback the ICMP error
 * of a closed port is queued before sendmsg returns). */
typedef struct sent_more {
  sftq_conn *c;
  uint64_t base;
} sent_more;

static int client_sent_more(void *p) {
  sent_more *x = p;
  sftq_stats st;
  return sftq_conn_stats(x->c, &st) == 0 && st.pkts_sent > x->base;
}

/* After the handshake an ICMP port unreachable (the relay's port closed
 * for a moment) neither ends the connection nor deafens it: the echo
 * written while the port was closed arrives once it is open again. Before
 * the fix the client's poll handle stayed stopped (libuv stops it on
 * POLLERR) and the echo never came back. */
static void test_icmp_after_handshake(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  side srv = {.name = "server", .echo = 1}, cli = {.name = "client"};
  sftq_config scfg, ccfg;
  base_cfg(&scfg, &srv, g_scert, g_skey);
  base_cfg(&ccfg, &cli, g_ccert, g_ckey);
  relay r = {.loop = &loop};
  r.server_port = start_server(&loop, &srv, &scfg);
  relay_open(&r);
  assert_int_equal(sftq_ctx_new(&cli.ctx, &loop, &ccfg), 0);
  sftq_conn *c;
  assert_int_equal(sftq_connect(cli.ctx, "127.0.0.1", r.port, NULL, &c), 0);
  pair p = {&cli, &srv, 1};
  assert_true(run_until(&loop, both_connected, &p, 5000));

  relay_close(&r);
  sftq_stats st0;
  assert_int_equal(sftq_conn_stats(c, &st0), 0);
  sent_more sm = {c, st0.pkts_sent};
  int64_t sid;
  static const char m[] = "written while the port was closed";
  sftq_iov v = {m, sizeof m - 1};
  assert_int_equal(sftq_stream_open_bidi(c, &sid), 0);
  assert_int_equal(
      sftq_stream_write(c, sid, &v, 1, SFTQ_WRITE_COPY | SFTQ_WRITE_FIN), 0);
  /* the client sends into the closed port and gets the ICMP error; the
   * next loop turn polls it (POLLERR) */
  assert_true(run_until(&loop, client_sent_more, &sm, 5000));
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(cli.closed, 0); /* ignored after the handshake */
  relay_open(&r);
  assert_true(run_until(&loop, echo_done, &cli, 8000));
  assert_int_equal(cli.echo_len, sizeof m - 1);
  assert_memory_equal(cli.echo_buf, m, cli.echo_len);
  assert_int_equal(cli.closed, 0);
  relay_close(&r);
  finish(&loop, srv.ctx, cli.ctx);
}

static void test_connect_via(void **state) {
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  side srv = {.name = "server"}, cli = {.name = "client"};
  sftq_config scfg, ccfg;
  base_cfg(&scfg, &srv, g_scert, g_skey);
  base_cfg(&ccfg, &cli, g_ccert, g_ckey);
  uint16_t port = start_server(&loop, &srv, &scfg);
  assert_int_equal(sftq_ctx_new(&cli.ctx, &loop, &ccfg), 0);
  via_ok_case(&loop, &srv, cli.ctx, &cli, "127.0.0.1", "127.0.0.1", port,
              "127.0.0.1");
  /* 127.0.0.2 (lo's 127/8): only the bind makes the kernel use it. */
  via_ok_case(&loop, &srv, cli.ctx, &cli, "127.0.0.2", "127.0.0.1", port,
              "127.0.0.2");
  /* NULL and "" keep the old behaviour: the kernel picks 127.0.0.1. */
  via_ok_case(&loop, &srv, cli.ctx, &cli, "", "127.0.0.1", port, "127.0.0.1");
  via_ok_case(&loop, &srv, cli.ctx, &cli, NULL, "127.0.0.1", port,
              "127.0.0.1");

  int fds = count_fds();
  int closed = cli.closed;
  sftq_conn *c = (sftq_conn *)&c;
  assert_int_equal(sftq_connect_via(cli.ctx, "::1", "127.0.0.1", port, NULL, &c),
                   SFT_ERR_INVAL);
  assert_null(c);
  assert_int_equal(
      sftq_connect_via(cli.ctx, "127.0.0.1", "::1", port, NULL, &c),
      SFT_ERR_INVAL);
  assert_int_equal(
      sftq_connect_via(cli.ctx, "127.0.0.1:9", "127.0.0.1", port, NULL, &c),
      SFT_ERR_INVAL);
  assert_int_equal(
      sftq_connect_via(cli.ctx, "localhost", "127.0.0.1", port, NULL, &c),
      SFT_ERR_INVAL);
  /* brackets and %zone only with IPv6; an unknown zone */
  assert_int_equal(
      sftq_connect_via(cli.ctx, "[127.0.0.1]", "127.0.0.1", port, NULL, &c),
      SFT_ERR_INVAL);
  assert_int_equal(
      sftq_connect_via(cli.ctx, "127.0.0.1%lo", "127.0.0.1", port, NULL, &c),
      SFT_ERR_INVAL);
  assert_int_equal(
      sftq_connect_via(cli.ctx, "::1%nosuchif0", "::1", port, NULL, &c),
      SFT_ERR_INVAL);
  assert_int_equal(sftq_connect_via(cli.ctx, "[::1", "::1", port, NULL, &c),
                   SFT_ERR_INVAL);
  c = (sftq_conn *)&c;
  assert_int_equal(
      sftq_connect_via(cli.ctx, "192.0.2.1", "127.0.0.1", port, NULL, &c),
      SFT_ERR_IO); /* TEST-NET-1: not on this host, bind EADDRNOTAVAIL */
  assert_null(c);
  assert_int_equal(
      sftq_connect_via(NULL, "127.0.0.1", "127.0.0.1", port, NULL, &c),
      SFT_ERR_INVAL);
  /* No failed call leaves a descriptor behind. Fewer is not a leak: one
   * fresh-clone run under heavy load counted one fewer here (popen-based
   * count then; cause not found). */
  assert_true(count_fds() <= fds);
  uv_run(&loop, UV_RUN_NOWAIT);
  assert_int_equal(cli.closed, closed); /* nothing was reported */

  /* IPv6 when the host has ::1 (some CI containers do not). */
  sftq_ctx *s6 = NULL;
  side srv6 = {.name = "server6"};
  sftq_config scfg6;
  base_cfg(&scfg6, &srv6, g_scert, g_skey);
  assert_int_equal(sftq_ctx_new(&s6, &loop, &scfg6), 0);
  srv6.ctx = s6;
  uint16_t port6 = 0;
  if (sftq_listen(s6, "::1", 0, &port6) == 0) {
    via_ok_case(&loop, &srv6, cli.ctx, &cli, "::1", "::1", port6, "::1");
    via_ok_case(&loop, &srv6, cli.ctx, &cli, "[::1]", "::1", port6, "::1");
    via_ok_case(&loop, &srv6, cli.ctx, &cli, "::1%lo", "::1", port6, "::1");
    assert_int_equal(
        sftq_connect_via(cli.ctx, "2001:db8::1", "::1", port6, NULL, &c),
        SFT_ERR_IO); /* documentation prefix: not on this host */
  } else {
    print_message("no ::1 here: IPv6 via case skipped\n");
  }
  sftq_ctx_free(s6);
  finish(&loop, srv.ctx, cli.ctx);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_identity),
      cmocka_unit_test(test_handshake_ed25519),
      cmocka_unit_test(test_handshake_p256_mixed),
      cmocka_unit_test(test_early_write),
      cmocka_unit_test(test_verify_reject_by_server),
      cmocka_unit_test(test_verify_reject_by_client),
      cmocka_unit_test(test_alpn_mismatch),
      cmocka_unit_test(test_bidi_echo),
      cmocka_unit_test(test_many_uni_streams),
      cmocka_unit_test(test_multi_clients_retry),
      cmocka_unit_test(test_retry_under_load),
      cmocka_unit_test(test_bulk_throughput),
      cmocka_unit_test(test_packet_fec_on),
      cmocka_unit_test(test_tune_buffers),
      cmocka_unit_test(test_idle_timeout),
      cmocka_unit_test(test_keepalive),
      cmocka_unit_test(test_free_with_live_conns),
      cmocka_unit_test(test_stream_cancel),
      cmocka_unit_test(test_stateless_reset_and_vn),
      cmocka_unit_test(test_connect_via),
      cmocka_unit_test(test_connect_refused),
      cmocka_unit_test(test_icmp_after_handshake),
  };
  return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
