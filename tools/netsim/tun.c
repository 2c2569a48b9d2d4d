/* netsim TUN link between two network namespaces; see tun.h. Linux. */
#define _GNU_SOURCE 1 /* setns, CLONE_NEWNET */
#include "netsim/pq.h"
#include "netsim/tun.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sft/err.h"

#define RXCAP 65536  /* one read: the largest IP packet */
#define RX_ROUND 256 /* packets read per poll callback before yielding */
#define RX_DRAIN 32  /* drain the heap every this many reads */

/* ---- helpers ------------------------------------------------------------ */

static void errf(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t cap, const char *fmt, ...) {
  if (!err || cap == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

/* Namespace and device names: [A-Za-z0-9_.-], not "." / "..". */
static bool name_ok(const char *s, size_t cap) {
  size_t n = strnlen(s, cap);
  if (n == 0 || n >= cap || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
    return false;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
      return false;
  }
  return true;
}

int netsim_cidr_parse(const char *s, struct in_addr *a, unsigned *prefix) {
  char host[INET_ADDRSTRLEN];
  const char *slash = s ? strchr(s, '/') : NULL;
  if (!slash || (size_t)(slash - s) >= sizeof(host) || slash == s)
    return SFT_ERR_INVAL;
  memcpy(host, s, (size_t)(slash - s));
  host[slash - s] = '\0';
  const char *p = slash + 1;
  if (*p == '\0' || strlen(p) > 2)
    return SFT_ERR_INVAL;
  unsigned v = 0;
  for (; *p; p++) {
    if (*p < '0' || *p > '9')
      return SFT_ERR_INVAL;
    v = v * 10 + (unsigned)(*p - '0');
  }
  if (v < 1 || v > 32 || inet_pton(AF_INET, host, a) != 1)
    return SFT_ERR_INVAL;
  *prefix = v;
  return 0;
}

bool netsim_netns_exists(const char *name) {
  char path[64 + NETSIM_NS_NAME_MAX];
  struct stat st;
  snprintf(path, sizeof(path), "/run/netns/%s", name);
  return stat(path, &st) == 0;
}

/* Runs `ip ARGS...` (argv[0] must be "ip"); 0 if it exited with 0. Its
 * stderr is passed through; stdout discarded. */
static int run_ip(const char *const argv[]) {
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    int nul = open("/dev/null", O_WRONLY);
    if (nul >= 0)
      dup2(nul, 1);
    execvp("ip", (char *const *)(uintptr_t)argv);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR)
      return -1;
  return (WIFEXITED(status) && WEXITSTATUS(status) == 0) ? 0 : -1;
}

static int ns_add(const char *ns) {
  const char *argv[] = {"ip", "netns", "add", ns, NULL};
  return run_ip(argv);
}

static int ns_delete(const char *ns) {
  const char *argv[] = {"ip", "netns", "delete", ns, NULL};
  return run_ip(argv);
}

/* ---- pending packets: min-heap on (delivery time, arrival seq) ---------- */

struct tpkt {
  struct netsim_pq_item h; /* first: delivery time and order */
  uint32_t len;
  uint8_t up; /* 1: A -> B (write to B's device); 0: B -> A */
  uint8_t data[];
};

static struct tpkt *pq_pop(struct netsim_pq *q) {
  return (struct tpkt *)(void *)netsim_pq_pop(q);
}

/* ---- the link ----------------------------------------------------------- */

struct side {
  struct netsim_link *l;
  int fd;
  bool up; /* packets read here travel A -> B */
  uv_poll_t poll;
};

struct netsim_link {
  uv_loop_t *loop;
  struct netsim_link_cfg cfg;
  bool created[2];     /* namespaces to delete on close */
  struct side side[2]; /* [0] = A, [1] = B */
  uv_timer_t timer;
  struct netsim_model up, down;
  struct netsim_pq heap;
  uint64_t pending_bytes, seq;
  uint8_t *rx;
  struct netsim_link_stats st;
  int closing;
  void (*close_cb)(void *);
  void *close_arg;
};

void netsim_link_cfg_default(struct netsim_link_cfg *c) {
  memset(c, 0, sizeof(*c));
  strcpy(c->ns_a, "sftA");
  strcpy(c->ns_b, "sftB");
  strcpy(c->dev, "sftlink0");
  c->addr_a.s_addr = htonl(0x0a4d0001); /* 10.77.0.1 */
  c->addr_b.s_addr = htonl(0x0a4d0002); /* 10.77.0.2 */
  c->prefix_a = c->prefix_b = 30;
  c->mtu = 1500;
  c->txqueuelen = 4096;
  netsim_spec_default(&c->spec);
  c->max_pending = 65536;
  c->max_pending_bytes = 64ull << 20;
}

static void on_timer(uv_timer_t *t);

static void arm_timer(struct netsim_link *l, uint64_t now) {
  if (l->heap.n == 0) {
    uv_timer_stop(&l->timer);
    return;
  }
  uint64_t t = l->heap.v[0]->t;
  uint64_t ms =
      t > now ? (t - now + NETSIM_NS_PER_MS - 1) / NETSIM_NS_PER_MS : 0;
  uv_update_time(l->loop);
  uv_timer_start(&l->timer, on_timer, ms, 0);
}

/* Writes every pending packet due at |now| to its device. */
static void drain(struct netsim_link *l, uint64_t now) {
  while (l->heap.n && l->heap.v[0]->t <= now) {
    struct tpkt *x = pq_pop(&l->heap);
    int fd = l->side[x->up ? 1 : 0].fd;
    ssize_t w;
    do
      w = write(fd, x->data, x->len);
    while (w < 0 && errno == EINTR);
    if (w == (ssize_t)x->len) {
      if (x->up)
        l->st.sent_up++;
      else
        l->st.sent_down++;
    } else {
      l->st.drop_send++; /* EAGAIN, ENOBUFS, EIO (device down)... */
    }
    l->pending_bytes -= x->len;
    free(x);
  }
  arm_timer(l, now);
}

static void on_timer(uv_timer_t *t) {
  struct netsim_link *l = t->data;
  drain(l, uv_hrtime());
}

static void enqueue(struct netsim_link *l, bool up, const uint8_t *data,
                    size_t len, const struct netsim_decision *d) {
  for (unsigned i = 0; i < d->ncopies; i++) {
    if (l->heap.n >= l->cfg.max_pending ||
        l->pending_bytes + len > l->cfg.max_pending_bytes ||
        netsim_pq_reserve(&l->heap) != 0) {
      l->st.drop_limit++;
      continue;
    }
    struct tpkt *x = malloc(sizeof(*x) + len);
    if (!x) {
      l->st.drop_limit++;
      continue;
    }
    x->h.t = d->copy[i].deliver_ns;
    x->h.seq = l->seq++;
    x->len = (uint32_t)len;
    x->up = up;
    memcpy(x->data, data, len);
    netsim_copy_apply(&d->copy[i], x->data, len);
    l->pending_bytes += len;
    netsim_pq_push(&l->heap, &x->h);
  }
}

static void on_tun(uv_poll_t *h, int status, int events) {
  struct side *s = h->data;
  struct netsim_link *l = s->l;
  struct netsim_model *m = s->up ? &l->up : &l->down;
  uint64_t now = uv_hrtime();
  (void)events;
  if (status < 0)
    return;
  for (int i = 0; i < RX_ROUND; i++) {
    ssize_t n = read(s->fd, l->rx, RXCAP);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        l->st.rx_errors++;
      break;
    }
    if (n == 0)
      break;
    now = uv_hrtime();
    struct netsim_decision d;
    netsim_model_packet(m, now, (size_t)n, &d);
    enqueue(l, s->up, l->rx, (size_t)n, &d);
    if ((i + 1) % RX_DRAIN == 0)
      drain(l, now);
  }
  drain(l, now);
}

/* Opens a TUN device named cfg->dev inside namespace |ns| (the calling
 * thread enters it and returns to |home|). Returns the fd or -1 with a
 * reason in |err| and *rv set. */
static int open_tun_in(const struct netsim_link_cfg *cfg, const char *ns,
                       int home, int *rv, char *err, size_t errcap) {
  char path[64 + NETSIM_NS_NAME_MAX];
  snprintf(path, sizeof(path), "/run/netns/%s", ns);
  int nsfd = open(path, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) {
    errf(err, errcap, "%s: %s", path, strerror(errno));
    *rv = SFT_ERR_IO;
    return -1;
  }
  if (setns(nsfd, CLONE_NEWNET) != 0) {
    int e = errno;
    errf(err, errcap, "setns %s: %s", ns, strerror(e));
    *rv = e == EPERM ? SFT_ERR_UNSUPPORTED : SFT_ERR_IO;
    close(nsfd);
    return -1;
  }
  close(nsfd);
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    errf(err, errcap, "/dev/net/tun: %s", strerror(errno));
    *rv = SFT_ERR_UNSUPPORTED;
  } else {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    memcpy(ifr.ifr_name, cfg->dev, strlen(cfg->dev));
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
      int e = errno;
      errf(err, errcap, "TUNSETIFF %s in %s: %s", cfg->dev, ns, strerror(e));
      *rv = e == EPERM ? SFT_ERR_UNSUPPORTED : SFT_ERR_IO;
      close(fd);
      fd = -1;
    } else {
      /* No IPv6 on the link: no router/neighbour solicitations, so the
       * link carries only what the tools send (best effort). /proc/sys/net
       * shows the namespace of the opening thread. */
      char sp[128];
      snprintf(sp, sizeof(sp), "/proc/sys/net/ipv6/conf/%s/disable_ipv6",
               cfg->dev);
      int sf = open(sp, O_WRONLY | O_CLOEXEC);
      if (sf >= 0) {
        if (write(sf, "1", 1) != 1) { /* IPv6 stays on; harmless */
        }
        close(sf);
      }
    }
  }
  if (setns(home, CLONE_NEWNET) != 0) { /* cannot happen with a valid fd */
    errf(err, errcap, "setns back: %s", strerror(errno));
    if (fd >= 0)
      close(fd);
    *rv = SFT_ERR_IO;
    return -1;
  }
  return fd;
}

/* ip -n NS: lo up, address, mtu/txqueuelen/up, route to the peer. */
static int configure(const struct netsim_link_cfg *cfg, const char *ns,
                     struct in_addr self, unsigned prefix, struct in_addr peer,
                     char *err, size_t errcap) {
  char a[INET_ADDRSTRLEN + 4], p[INET_ADDRSTRLEN + 4], mtu[16], q[16];
  const char *dev = cfg->dev, *n = ns;
  inet_ntop(AF_INET, &self, a, INET_ADDRSTRLEN);
  snprintf(a + strlen(a), 4, "/%u", prefix);
  inet_ntop(AF_INET, &peer, p, INET_ADDRSTRLEN);
  strcat(p, "/32");
  snprintf(mtu, sizeof(mtu), "%" PRIu32, cfg->mtu);
  snprintf(q, sizeof(q), "%" PRIu32, cfg->txqueuelen);
  const char *c1[] = {"ip", "-n", n, "link", "set", "lo", "up", NULL};
  const char *c2[] = {"ip", "-n", n, "addr", "add", a, "dev", dev, NULL};
  const char *c3[] = {"ip", "-n",         n, "link", "set", "dev", dev, "mtu",
                      mtu,  "txqueuelen", q, "up",   NULL};
  const char *c4[] = {"ip", "-n", n, "route", "replace", p, "dev", dev, NULL};
  const char *const *cmds[] = {c1, c2, c3, c4};
  for (size_t i = 0; i < 4; i++) {
    if (run_ip(cmds[i]) != 0) {
      char line[256] = "";
      for (const char *const *w = cmds[i]; *w; w++) {
        strncat(line, *w, sizeof(line) - strlen(line) - 2);
        strcat(line, " ");
      }
      errf(err, errcap, "failed: %s", line);
      return SFT_ERR_IO;
    }
  }
  return 0;
}

/* Deletes the namespaces this link created (fds must be closed). */
static void remove_namespaces(struct netsim_link *l) {
  const char *names[2] = {l->cfg.ns_a, l->cfg.ns_b};
  for (int i = 0; i < 2; i++) {
    if (!l->created[i])
      continue;
    if (ns_delete(names[i]) != 0)
      fprintf(stderr,
              "sft-netsim: could not delete namespace %s; run: "
              "ip netns delete %s\n",
              names[i], names[i]);
    l->created[i] = false;
  }
}

static void link_free(struct netsim_link *l) {
  while (l->heap.n)
    free(pq_pop(&l->heap));
  netsim_pq_free(&l->heap);
  for (int i = 0; i < 2; i++)
    if (l->side[i].fd >= 0)
      close(l->side[i].fd);
  remove_namespaces(l);
  free(l->rx);
  free(l);
}

int netsim_link_new(struct netsim_link **pl, uv_loop_t *loop,
                    const struct netsim_link_cfg *cfg, char *err,
                    size_t errcap) {
  *pl = NULL;
  errf(err, errcap, "%s", "");
  if (!name_ok(cfg->ns_a, sizeof(cfg->ns_a)) ||
      !name_ok(cfg->ns_b, sizeof(cfg->ns_b)) ||
      !name_ok(cfg->dev, sizeof(cfg->dev)) ||
      strcmp(cfg->ns_a, cfg->ns_b) == 0) {
    errf(err, errcap, "bad or equal namespace/device names");
    return SFT_ERR_INVAL;
  }
  if (cfg->addr_a.s_addr == cfg->addr_b.s_addr || cfg->prefix_a < 1 ||
      cfg->prefix_a > 32 || cfg->prefix_b < 1 || cfg->prefix_b > 32 ||
      cfg->mtu < 68 || cfg->mtu > 65535 || cfg->max_pending == 0) {
    errf(err, errcap, "bad addresses, prefix or mtu");
    return SFT_ERR_INVAL;
  }
  const char *names[2] = {cfg->ns_a, cfg->ns_b};
  bool ex[2] = {netsim_netns_exists(names[0]), netsim_netns_exists(names[1])};
  if ((ex[0] || ex[1]) && !cfg->reuse) {
    const char *x = ex[0] ? names[0] : names[1];
    if (ex[0] && ex[1])
      errf(err, errcap,
           "network namespaces %s and %s already exist (stale from a crashed "
           "run?); delete them with: ip netns delete %s; ip netns delete %s "
           "(or pass --reuse)",
           names[0], names[1], names[0], names[1]);
    else
      errf(err, errcap,
           "network namespace %s already exists (stale from a crashed run?); "
           "delete it with: ip netns delete %s (or pass --reuse)",
           x, x);
    return SFT_ERR_EXISTS;
  }
  if (access("/dev/net/tun", R_OK | W_OK) != 0) {
    errf(err, errcap, "/dev/net/tun: %s", strerror(errno));
    return SFT_ERR_UNSUPPORTED;
  }
  struct netsim_link *l = calloc(1, sizeof(*l));
  if (!l)
    return SFT_ERR_NOMEM;
  l->loop = loop;
  l->cfg = *cfg;
  l->side[0].fd = l->side[1].fd = -1;
  int rv = SFT_ERR_NOMEM, home = -1;
  l->rx = malloc(RXCAP);
  if (!l->rx)
    goto fail;
  for (int i = 0; i < 2; i++) {
    if (netsim_netns_exists(names[i]))
      continue; /* reused */
    if (ns_add(names[i]) != 0) {
      errf(err, errcap, "ip netns add %s failed", names[i]);
      rv = geteuid() != 0 ? SFT_ERR_UNSUPPORTED : SFT_ERR_IO;
      goto fail;
    }
    l->created[i] = true;
  }
  home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (home < 0) {
    errf(err, errcap, "/proc/self/ns/net: %s", strerror(errno));
    rv = SFT_ERR_IO;
    goto fail;
  }
  for (int i = 0; i < 2; i++) {
    l->side[i].fd = open_tun_in(cfg, names[i], home, &rv, err, errcap);
    if (l->side[i].fd < 0)
      goto fail;
  }
  close(home);
  home = -1;
  if ((rv = configure(cfg, cfg->ns_a, cfg->addr_a, cfg->prefix_a, cfg->addr_b,
                      err, errcap)) != 0 ||
      (rv = configure(cfg, cfg->ns_b, cfg->addr_b, cfg->prefix_b, cfg->addr_a,
                      err, errcap)) != 0)
    goto fail;
  for (int i = 0; i < 2; i++) {
    if (uv_poll_init(loop, &l->side[i].poll, l->side[i].fd) != 0) {
      /* a failed init registers nothing; if B's failed, A's handle (in
       * |l|) must be closed before |l| is freed: one loop turn runs it */
      errf(err, errcap, "uv_poll_init failed");
      rv = SFT_ERR_IO;
      if (i == 1) {
        uv_close((uv_handle_t *)&l->side[0].poll, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
      }
      goto fail;
    }
  }
  uint64_t now = uv_hrtime();
  netsim_model_init(&l->up, &cfg->spec.up, cfg->spec.seed * 2 + 1, now);
  netsim_model_init(&l->down, &cfg->spec.down, cfg->spec.seed * 2 + 2, now);
  uv_timer_init(loop, &l->timer);
  l->timer.data = l;
  for (int i = 0; i < 2; i++) {
    l->side[i].l = l;
    l->side[i].up = i == 0;
    l->side[i].poll.data = &l->side[i];
    uv_poll_start(&l->side[i].poll, UV_READABLE, on_tun);
  }
  *pl = l;
  return 0;
fail:
  if (home >= 0)
    close(home);
  link_free(l); /* closes the devices, deletes created namespaces */
  return rv;
}

void netsim_link_set_spec(struct netsim_link *l, const struct netsim_spec *s) {
  l->cfg.spec = *s;
  netsim_model_set_cfg(&l->up, &s->up);
  netsim_model_set_cfg(&l->down, &s->down);
}

void netsim_link_set_blackhole(struct netsim_link *l, bool on) {
  netsim_model_set_blackhole(&l->up, on);
  netsim_model_set_blackhole(&l->down, on);
}

bool netsim_link_blackhole(const struct netsim_link *l) {
  return l->up.blackhole;
}

void netsim_link_get_stats(const struct netsim_link *l,
                           struct netsim_link_stats *st) {
  *st = l->st;
  st->up = l->up.c;
  st->down = l->down.c;
  st->pending = l->heap.n;
}

static int json_counters(char *buf, size_t cap, const char *name,
                         const struct netsim_counters *c) {
  return snprintf(buf, cap,
                  "\"%s\":{\"pkts_in\":%" PRIu64 ",\"bytes_in\":%" PRIu64
                  ",\"pkts_out\":%" PRIu64 ",\"bytes_out\":%" PRIu64
                  ",\"drop_outage\":%" PRIu64 ",\"drop_loss\":%" PRIu64
                  ",\"drop_queue\":%" PRIu64 ",\"duplicated\":%" PRIu64
                  ",\"corrupted\":%" PRIu64 ",\"reordered\":%" PRIu64 "}",
                  name, c->pkts_in, c->bytes_in, c->pkts_out, c->bytes_out,
                  c->drop_outage, c->drop_loss, c->drop_queue, c->duplicated,
                  c->corrupted, c->reordered);
}

int netsim_link_stats_json(const struct netsim_link_stats *st, char *buf,
                           size_t cap) {
  char u[512], d[512];
  json_counters(u, sizeof(u), "up", &st->up);
  json_counters(d, sizeof(d), "down", &st->down);
  int n = snprintf(buf, cap,
                   "{%s,%s,\"drop_limit\":%" PRIu64 ",\"drop_send\":%" PRIu64
                   ",\"rx_errors\":%" PRIu64 ",\"sent_up\":%" PRIu64
                   ",\"sent_down\":%" PRIu64 ",\"pending\":%" PRIu64 "}",
                   u, d, st->drop_limit, st->drop_send, st->rx_errors,
                   st->sent_up, st->sent_down, st->pending);
  return (n < 0 || (size_t)n >= cap) ? SFT_ERR_NOSPACE : 0;
}

static void on_link_handle_closed(uv_handle_t *h) {
  struct netsim_link *l = h->data;
  if (--l->closing > 0)
    return;
  void (*cb)(void *) = l->close_cb;
  void *arg = l->close_arg;
  link_free(l);
  if (cb)
    cb(arg);
}

void netsim_link_close(struct netsim_link *l, void (*cb)(void *), void *arg) {
  l->close_cb = cb;
  l->close_arg = arg;
  l->closing = 3;
  uv_timer_stop(&l->timer);
  for (int i = 0; i < 2; i++) {
    uv_poll_stop(&l->side[i].poll);
    l->side[i].poll.data = l;
    uv_close((uv_handle_t *)&l->side[i].poll, on_link_handle_closed);
  }
  uv_close((uv_handle_t *)&l->timer, on_link_handle_closed);
}
