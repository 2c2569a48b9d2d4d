/*
 * sft-netsim: sft's network simulator.
 *
 *   sft-netsim proxy --listen ADDR:PORT --to ADDR:PORT
 *                    [--spec SPEC | --spec-file FILE] [--stats-json FILE]
 *                    [--duration S] [--max-clients N]
 *       UDP impairment proxy. Prints "listening ADDR:PORT" once bound. Runs
 *       until SIGINT/SIGTERM or --duration, then prints "stats {json}" (and
 *       writes the JSON to --stats-json). SIGUSR1 toggles a black hole of
 *       both directions; SIGHUP re-reads --spec-file.
 *   sft-netsim echo --listen ADDR:PORT [--sink] [--duration S]
 *       UDP echo (or sink) server; prints "listening ..." and on exit
 *       "received PKTS BYTES".
 *   sft-netsim blast --to ADDR:PORT [--size N] [--rate 100mbit] [--duration S]
 *       Sends datagrams of N bytes (paced at --rate, unpaced if omitted),
 *       counts replies; prints "sent=.. received=.. sent_pps=.. recv_pps=..".
 *   sft-netsim link [--spec SPEC | --spec-file FILE] [--ns-a NAME]
 *                   [--ns-b NAME] [--addr-a CIDR] [--addr-b CIDR] [--dev NAME]
 *                   [--reuse] [--duration S] [--stats-json FILE]
 *       TUN link between two network namespaces it creates (default sftA,
 *       sftB; 10.77.0.1/30, 10.77.0.2/30; up = A -> B). Prints
 *       "ready A=.. B=.." once forwarding; on SIGINT/SIGTERM or --duration
 *       deletes the namespaces and prints "stats {json}". SIGUSR1/SIGHUP as
 *       for proxy. Needs root and /dev/net/tun.
 *   sft-netsim check SPEC      parse SPEC, print it canonically.
 */
#define _GNU_SOURCE 1
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "netsim/proxy.h"
#include "netsim/spec.h"
#include "netsim/tun.h"
#include "sft/err.h"

static void usage(void) {
  fprintf(stderr,
          "usage: sft-netsim proxy --listen ADDR:PORT --to ADDR:PORT\n"
          "                  [--spec SPEC | --spec-file FILE]\n"
          "                  [--stats-json FILE] [--duration S] "
          "[--max-clients N]\n"
          "       sft-netsim echo --listen ADDR:PORT [--sink] [--duration S]\n"
          "       sft-netsim blast --to ADDR:PORT [--size N] [--rate R] "
          "[--duration S]\n"
          "       sft-netsim link [--spec SPEC | --spec-file FILE] "
          "[--ns-a NAME] [--ns-b NAME]\n"
          "                  [--addr-a CIDR] [--addr-b CIDR] [--dev NAME] "
          "[--reuse]\n"
          "                  [--duration S] [--stats-json FILE]\n"
          "       sft-netsim check SPEC\n");
}

static int parse_spec_str(const char *s, struct netsim_spec *out) {
  struct netsim_spec_err e;
  int rv = netsim_spec_parse(s, strlen(s), out, &e);
  if (rv)
    fprintf(stderr, "sft-netsim: bad spec at \"%s\" (offset %zu): %s\n",
            e.key, e.offset, sft_strerror(rv));
  return rv;
}

static int read_spec_file(const char *path, struct netsim_spec *out) {
  char buf[NETSIM_SPEC_MAX_LEN + 2];
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "sft-netsim: %s: %s\n", path, strerror(errno));
    return SFT_ERR_IO;
  }
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* the spec is the file with all whitespace removed ('#' starts a comment
   * to the end of the line) */
  size_t w = 0;
  bool comment = false;
  for (size_t i = 0; i < n; i++) {
    char c = buf[i];
    if (c == '\n')
      comment = false;
    else if (c == '#')
      comment = true;
    if (comment || c == ' ' || c == '\t' || c == '\n' || c == '\r')
      continue;
    buf[w++] = c;
  }
  buf[w] = '\0';
  return parse_spec_str(buf, out);
}

static double parse_seconds(const char *s) {
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end || !(v > 0) || v > 1e7) {
    fprintf(stderr, "sft-netsim: bad duration \"%s\"\n", s);
    exit(2);
  }
  return v;
}

/* ---- proxy ---- */

struct proxy_app {
  uv_loop_t *loop;
  struct netsim_proxy *p;
  const char *spec_file, *stats_json;
  uv_signal_t sig[4];
  uv_timer_t dur;
  bool stopping;
};

/* --stats-json FILE: the counters as one JSON line (if a path was given). */
static void write_stats_file(const char *path, const char *js) {
  FILE *f;
  if (!path)
    return;
  f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "sft-netsim: %s: %s\n", path, strerror(errno));
    return;
  }
  fprintf(f, "%s\n", js);
  fclose(f);
}

static void app_stop(struct proxy_app *a) {
  if (a->stopping)
    return;
  a->stopping = true;
  struct netsim_proxy_stats st;
  char js[2048];
  netsim_proxy_get_stats(a->p, &st);
  netsim_proxy_stats_json(&st, js, sizeof(js));
  printf("stats %s\n", js);
  fflush(stdout);
  write_stats_file(a->stats_json, js);
  for (int i = 0; i < 4; i++)
    uv_close((uv_handle_t *)&a->sig[i], NULL);
  uv_close((uv_handle_t *)&a->dur, NULL);
  netsim_proxy_close(a->p, NULL, NULL);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct proxy_app *a = h->data;
  if (signum == SIGUSR1) {
    bool on = !netsim_proxy_blackhole(a->p);
    netsim_proxy_set_blackhole(a->p, on);
    fprintf(stderr, "sft-netsim: black hole %s\n", on ? "on" : "off");
    return;
  }
  if (signum == SIGHUP) {
    struct netsim_spec s;
    char txt[NETSIM_SPEC_FMT_MAX];
    if (a->spec_file && read_spec_file(a->spec_file, &s) == 0) {
      netsim_proxy_set_spec(a->p, &s);
      netsim_spec_format(&s, txt, sizeof(txt));
      fprintf(stderr, "sft-netsim: spec now \"%s\"\n", txt);
    }
    return;
  }
  app_stop(a);
}

static void on_duration(uv_timer_t *t) { app_stop(t->data); }

static int cmd_proxy(int argc, char **argv) {
  struct netsim_proxy_cfg cfg;
  struct proxy_app a;
  const char *listen = NULL, *to = NULL, *spec = NULL;
  double duration = 0;
  memset(&a, 0, sizeof(a));
  netsim_proxy_cfg_default(&cfg);
  for (int i = 1; i < argc; i += 2) { /* option-value pairs */
    const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) {
      usage();
      return 2;
    }
    if (strcmp(o, "--listen") == 0)
      listen = v;
    else if (strcmp(o, "--to") == 0)
      to = v;
    else if (strcmp(o, "--spec") == 0)
      spec = v;
    else if (strcmp(o, "--spec-file") == 0)
      a.spec_file = v;
    else if (strcmp(o, "--stats-json") == 0)
      a.stats_json = v;
    else if (strcmp(o, "--duration") == 0)
      duration = parse_seconds(v);
    else if (strcmp(o, "--max-clients") == 0)
      cfg.max_clients = (uint32_t)strtoul(v, NULL, 10);
    else {
      usage();
      return 2;
    }
  }
  if (!listen || !to || (spec && a.spec_file)) {
    usage();
    return 2;
  }
  if (netsim_addr_parse(listen, &cfg.listen, &cfg.listen_len) ||
      netsim_addr_parse(to, &cfg.target, &cfg.target_len)) {
    fprintf(stderr, "sft-netsim: bad address\n");
    return 2;
  }
  if ((spec && parse_spec_str(spec, &cfg.spec)) ||
      (a.spec_file && read_spec_file(a.spec_file, &cfg.spec)))
    return 2;
  a.loop = uv_default_loop();
  int rv = netsim_proxy_new(&a.p, a.loop, &cfg);
  if (rv) {
    fprintf(stderr, "sft-netsim: proxy: %s\n", sft_strerror(rv));
    return 1;
  }
  struct sockaddr_storage ss;
  socklen_t sl;
  char abuf[80];
  netsim_proxy_local_addr(a.p, &ss, &sl);
  netsim_addr_format((struct sockaddr *)&ss, abuf, sizeof(abuf));
  printf("listening %s\n", abuf);
  fflush(stdout);
  static const int sigs[4] = {SIGINT, SIGTERM, SIGUSR1, SIGHUP};
  for (int i = 0; i < 4; i++) {
    uv_signal_init(a.loop, &a.sig[i]);
    a.sig[i].data = &a;
    uv_signal_start(&a.sig[i], on_signal, sigs[i]);
  }
  uv_timer_init(a.loop, &a.dur);
  a.dur.data = &a;
  if (duration > 0)
    uv_timer_start(&a.dur, on_duration, (uint64_t)(duration * 1000), 0);
  uv_run(a.loop, UV_RUN_DEFAULT);
  uv_loop_close(a.loop);
  return 0;
}

/* ---- echo ---- */

struct echo_app {
  struct netsim_echo *e;
  uv_signal_t sig[2];
  uv_timer_t dur;
  bool stopping;
};

static void echo_stop(struct echo_app *a) {
  if (a->stopping)
    return;
  a->stopping = true;
  uint64_t p, b;
  netsim_echo_counts(a->e, &p, &b);
  printf("received %" PRIu64 " %" PRIu64 "\n", p, b);
  fflush(stdout);
  uv_close((uv_handle_t *)&a->sig[0], NULL);
  uv_close((uv_handle_t *)&a->sig[1], NULL);
  uv_close((uv_handle_t *)&a->dur, NULL);
  netsim_echo_close(a->e, NULL, NULL);
}

static void on_echo_signal(uv_signal_t *h, int signum) {
  (void)signum;
  echo_stop(h->data);
}

static void on_echo_duration(uv_timer_t *t) { echo_stop(t->data); }

static int cmd_echo(int argc, char **argv) {
  struct echo_app a;
  const char *listen = NULL;
  bool sink = false;
  double duration = 0;
  memset(&a, 0, sizeof(a));
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--sink") == 0) {
      sink = true;
      continue;
    }
    if (i + 1 >= argc) {
      usage();
      return 2;
    }
    if (strcmp(argv[i], "--listen") == 0)
      listen = argv[++i];
    else if (strcmp(argv[i], "--duration") == 0)
      duration = parse_seconds(argv[++i]);
    else {
      usage();
      return 2;
    }
  }
  struct sockaddr_storage ss;
  socklen_t sl;
  if (!listen || netsim_addr_parse(listen, &ss, &sl)) {
    usage();
    return 2;
  }
  uv_loop_t *loop = uv_default_loop();
  if (netsim_echo_new(&a.e, loop, (struct sockaddr *)&ss, sl, sink)) {
    fprintf(stderr, "sft-netsim: echo: cannot bind %s\n", listen);
    return 1;
  }
  char abuf[80];
  netsim_echo_local_addr(a.e, &ss, &sl);
  netsim_addr_format((struct sockaddr *)&ss, abuf, sizeof(abuf));
  printf("listening %s\n", abuf);
  fflush(stdout);
  uv_signal_init(loop, &a.sig[0]);
  uv_signal_init(loop, &a.sig[1]);
  a.sig[0].data = a.sig[1].data = &a;
  uv_signal_start(&a.sig[0], on_echo_signal, SIGINT);
  uv_signal_start(&a.sig[1], on_echo_signal, SIGTERM);
  uv_timer_init(loop, &a.dur);
  a.dur.data = &a;
  if (duration > 0)
    uv_timer_start(&a.dur, on_echo_duration, (uint64_t)(duration * 1000), 0);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_loop_close(loop);
  return 0;
}

/* ---- blast ---- */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmd_blast(int argc, char **argv) {
  const char *to = NULL;
  size_t size = 1200;
  uint64_t rate = 0;
  double duration = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--to") == 0) {
      to = argv[i + 1];
    } else if (strcmp(argv[i], "--size") == 0) {
      size = strtoul(argv[i + 1], NULL, 10);
    } else if (strcmp(argv[i], "--duration") == 0) {
      duration = parse_seconds(argv[i + 1]);
    } else if (strcmp(argv[i], "--rate") == 0) {
      struct netsim_spec s;
      char tmp[64];
      snprintf(tmp, sizeof(tmp), "rate=%s", argv[i + 1]);
      if (parse_spec_str(tmp, &s))
        return 2;
      rate = s.up.rate_bps;
    } else {
      usage();
      return 2;
    }
  }
  struct sockaddr_storage ss;
  socklen_t sl;
  if (!to || netsim_addr_parse(to, &ss, &sl) || size < 8 || size > 65507) {
    usage();
    return 2;
  }
  int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    perror("sft-netsim: blast");
    return 1;
  }
  int big = 8 << 20;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big)))
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big)))
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
    perror("sft-netsim: blast");
    return 1;
  }
  enum { B = 32 };
  static uint8_t buf[B][65536];
  struct mmsghdr m[B];
  struct iovec iov[B];
  uint64_t sent = 0, recvd = 0, t0 = now_ns();
  uint64_t end = t0 + (uint64_t)(duration * 1e9);
  uint64_t gap = rate ? (uint64_t)size * 8 * 1000000000ull / rate : 0;
  for (;;) {
    uint64_t t = now_ns();
    if (t >= end)
      break;
    unsigned n = B;
    if (rate) {
      uint64_t due = (t - t0) / gap + 1;
      n = due > sent ? (unsigned)(due - sent < B ? due - sent : B) : 0;
    }
    for (unsigned i = 0; i < n; i++) {
      memcpy(buf[i], &sent, sizeof(sent));
      sent++;
      iov[i].iov_base = buf[i];
      iov[i].iov_len = size;
      memset(&m[i], 0, sizeof(m[i]));
      m[i].msg_hdr.msg_iov = &iov[i];
      m[i].msg_hdr.msg_iovlen = 1;
    }
    if (n) {
      int r = sendmmsg(fd, m, n, 0);
      if (r < (int)n)
        sent -= n - (unsigned)(r > 0 ? r : 0); /* buffer full: retry later */
    }
    for (;;) { /* drain replies */
      for (unsigned i = 0; i < B; i++) {
        iov[i].iov_base = buf[i];
        iov[i].iov_len = sizeof(buf[i]);
        memset(&m[i], 0, sizeof(m[i]));
        m[i].msg_hdr.msg_iov = &iov[i];
        m[i].msg_hdr.msg_iovlen = 1;
      }
      int r = recvmmsg(fd, m, B, MSG_DONTWAIT, NULL);
      if (r <= 0)
        break;
      recvd += (uint64_t)r;
    }
    if (rate || n == 0) {
      struct timespec ts = {0, 200000};
      nanosleep(&ts, NULL);
    }
  }
  /* late replies: wait up to 500 ms of silence */
  uint64_t quiet = now_ns() + 500000000ull;
  while (now_ns() < quiet) {
    for (unsigned i = 0; i < B; i++) {
      iov[i].iov_base = buf[i];
      iov[i].iov_len = sizeof(buf[i]);
      memset(&m[i], 0, sizeof(m[i]));
      m[i].msg_hdr.msg_iov = &iov[i];
      m[i].msg_hdr.msg_iovlen = 1;
    }
    int r = recvmmsg(fd, m, B, MSG_DONTWAIT, NULL);
    if (r > 0) {
      recvd += (uint64_t)r;
      quiet = now_ns() + 500000000ull;
    } else {
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, NULL);
    }
  }
  close(fd);
  double secs = duration;
  printf("sent=%" PRIu64 " received=%" PRIu64 " sent_pps=%.0f recv_pps=%.0f "
         "sent_mbit=%.1f\n",
         sent, recvd, (double)sent / secs, (double)recvd / secs,
         (double)sent * (double)size * 8 / secs / 1e6);
  return 0;
}

/* ---- link ---- */

struct link_app {
  struct netsim_link *l;
  const char *spec_file, *stats_json;
  uv_signal_t sig[4];
  uv_timer_t dur;
  bool stopping;
  char js[2048]; /* final stats */
};

static void link_stop(struct link_app *a) {
  if (a->stopping)
    return;
  a->stopping = true;
  struct netsim_link_stats st;
  char *js = a->js;
  netsim_link_get_stats(a->l, &st);
  netsim_link_stats_json(&st, js, sizeof(a->js));
  write_stats_file(a->stats_json, js);
  for (int i = 0; i < 4; i++)
    uv_close((uv_handle_t *)&a->sig[i], NULL);
  uv_close((uv_handle_t *)&a->dur, NULL);
  /* the namespaces are deleted from the close callbacks; "stats" is
   * printed once they are gone (cmd_link, after uv_run) */
  netsim_link_close(a->l, NULL, NULL);
}

static void on_link_signal(uv_signal_t *h, int signum) {
  struct link_app *a = h->data;
  if (signum == SIGUSR1) {
    bool on = !netsim_link_blackhole(a->l);
    netsim_link_set_blackhole(a->l, on);
    fprintf(stderr, "sft-netsim: black hole %s\n", on ? "on" : "off");
    return;
  }
  if (signum == SIGHUP) {
    struct netsim_spec s;
    char txt[NETSIM_SPEC_FMT_MAX];
    if (a->spec_file && read_spec_file(a->spec_file, &s) == 0) {
      netsim_link_set_spec(a->l, &s);
      netsim_spec_format(&s, txt, sizeof(txt));
      fprintf(stderr, "sft-netsim: spec now \"%s\"\n", txt);
    }
    return;
  }
  link_stop(a);
}

static void on_link_duration(uv_timer_t *t) { link_stop(t->data); }

static int copy_name(char *dst, size_t cap, const char *v) {
  if (strlen(v) >= cap) {
    fprintf(stderr, "sft-netsim: name too long: %s\n", v);
    return 2;
  }
  strcpy(dst, v);
  return 0;
}

static int cmd_link(int argc, char **argv) {
  struct netsim_link_cfg cfg;
  struct link_app a;
  const char *spec = NULL;
  double duration = 0;
  memset(&a, 0, sizeof(a));
  netsim_link_cfg_default(&cfg);
  for (int i = 1; i < argc; i++) {
    const char *o = argv[i];
    if (strcmp(o, "--reuse") == 0) {
      cfg.reuse = true;
      continue;
    }
    const char *v = i + 1 < argc ? argv[++i] : NULL;
    int bad = !v;
    if (bad)
      ;
    else if (strcmp(o, "--spec") == 0)
      spec = v;
    else if (strcmp(o, "--spec-file") == 0)
      a.spec_file = v;
    else if (strcmp(o, "--stats-json") == 0)
      a.stats_json = v;
    else if (strcmp(o, "--duration") == 0)
      duration = parse_seconds(v);
    else if (strcmp(o, "--ns-a") == 0)
      bad = copy_name(cfg.ns_a, sizeof(cfg.ns_a), v);
    else if (strcmp(o, "--ns-b") == 0)
      bad = copy_name(cfg.ns_b, sizeof(cfg.ns_b), v);
    else if (strcmp(o, "--dev") == 0)
      bad = copy_name(cfg.dev, sizeof(cfg.dev), v);
    else if (strcmp(o, "--addr-a") == 0)
      bad = netsim_cidr_parse(v, &cfg.addr_a, &cfg.prefix_a) != 0;
    else if (strcmp(o, "--addr-b") == 0)
      bad = netsim_cidr_parse(v, &cfg.addr_b, &cfg.prefix_b) != 0;
    else
      bad = 1;
    if (bad) {
      usage();
      return 2;
    }
  }
  if (spec && a.spec_file) {
    usage();
    return 2;
  }
  if ((spec && parse_spec_str(spec, &cfg.spec)) ||
      (a.spec_file && read_spec_file(a.spec_file, &cfg.spec)))
    return 2;
  /* A signal during setup must not kill us with namespaces in place: hold
   * the stop signals until libuv's handlers are installed (then a pending
   * one stops the link at once). A closed stdout must not kill us either. */
  sigset_t hold, old;
  sigemptyset(&hold);
  sigaddset(&hold, SIGINT);
  sigaddset(&hold, SIGTERM);
  sigaddset(&hold, SIGHUP);
  sigaddset(&hold, SIGUSR1);
  signal(SIGPIPE, SIG_IGN);
  sigprocmask(SIG_BLOCK, &hold, &old);
  uv_loop_t *loop = uv_default_loop();
  char err[512];
  int rv = netsim_link_new(&a.l, loop, &cfg, err, sizeof(err));
  if (rv) {
    sigprocmask(SIG_SETMASK, &old, NULL);
    fprintf(stderr, "sft-netsim: link: %s: %s\n", sft_strerror(rv), err);
    return rv == SFT_ERR_UNSUPPORTED ? 3 : 1;
  }
  static const int sigs[4] = {SIGINT, SIGTERM, SIGUSR1, SIGHUP};
  for (int i = 0; i < 4; i++) {
    uv_signal_init(loop, &a.sig[i]);
    a.sig[i].data = &a;
    uv_signal_start(&a.sig[i], on_link_signal, sigs[i]);
  }
  uv_timer_init(loop, &a.dur);
  a.dur.data = &a;
  if (duration > 0)
    uv_timer_start(&a.dur, on_link_duration, (uint64_t)(duration * 1000), 0);
  char ha[INET_ADDRSTRLEN], hb[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &cfg.addr_a, ha, sizeof(ha));
  inet_ntop(AF_INET, &cfg.addr_b, hb, sizeof(hb));
  printf("ready A=%s B=%s\n", ha, hb);
  fflush(stdout);
  sigprocmask(SIG_SETMASK, &old, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  printf("stats %s\n", a.js);
  fflush(stdout);
  uv_loop_close(loop);
  return 0;
}

static int cmd_check(int argc, char **argv) {
  struct netsim_spec s;
  char out[NETSIM_SPEC_FMT_MAX];
  if (argc != 2) {
    usage();
    return 2;
  }
  if (parse_spec_str(argv[1], &s))
    return 1;
  netsim_spec_format(&s, out, sizeof(out));
  printf("%s\n", out);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage();
    return 2;
  }
  if (strcmp(argv[1], "proxy") == 0)
    return cmd_proxy(argc - 1, argv + 1);
  if (strcmp(argv[1], "echo") == 0)
    return cmd_echo(argc - 1, argv + 1);
  if (strcmp(argv[1], "blast") == 0)
    return cmd_blast(argc - 1, argv + 1);
  if (strcmp(argv[1], "check") == 0)
    return cmd_check(argc - 1, argv + 1);
  if (strcmp(argv[1], "link") == 0)
    return cmd_link(argc - 1, argv + 1);
  usage();
  return 2;
}
