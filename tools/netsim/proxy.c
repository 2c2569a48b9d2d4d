/* netsim UDP proxy and echo server; see proxy.h. Linux (recvmmsg). */
#define _GNU_SOURCE 1 /* recvmmsg, sendmmsg */
#include "netsim/pq.h"
#include "netsim/proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sft/err.h"

#define BATCH 32
#define SLOT 65536

/* ---- addresses ---------------------------------------------------------- */

int netsim_addr_parse(const char *s, struct sockaddr_storage *ss,
                      socklen_t *len) {
  char host[64];
  const char *colon, *hs = s;
  size_t hl;
  if (!s)
    return SFT_ERR_INVAL;
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (!rb || rb[1] != ':')
      return SFT_ERR_INVAL;
    hs = s + 1;
    hl = (size_t)(rb - hs);
    colon = rb + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon)
      return SFT_ERR_INVAL;
    hl = (size_t)(colon - s);
  }
  if (hl == 0 || hl >= sizeof(host))
    return SFT_ERR_INVAL;
  memcpy(host, hs, hl);
  host[hl] = '\0';
  const char *ps = colon + 1;
  if (*ps == '\0' || strlen(ps) > 5)
    return SFT_ERR_INVAL;
  unsigned long port = 0;
  for (const char *q = ps; *q; q++) {
    if (*q < '0' || *q > '9')
      return SFT_ERR_INVAL;
    port = port * 10 + (unsigned long)(*q - '0');
  }
  if (port > 65535)
    return SFT_ERR_RANGE;
  if (strcmp(host, "localhost") == 0)
    strcpy(host, "127.0.0.1");
  memset(ss, 0, sizeof(*ss));
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *len = sizeof(*a4);
    return 0;
  }
  if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *len = sizeof(*a6);
    return 0;
  }
  return SFT_ERR_INVAL;
}

int netsim_addr_format(const struct sockaddr *sa, char *buf, size_t cap) {
  char h[INET6_ADDRSTRLEN];
  int n;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)sa;
    inet_ntop(AF_INET, &a->sin_addr, h, sizeof(h));
    n = snprintf(buf, cap, "%s:%u", h, ntohs(a->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a =
        (const struct sockaddr_in6 *)(const void *)sa;
    inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof(h));
    n = snprintf(buf, cap, "[%s]:%u", h, ntohs(a->sin6_port));
  } else {
    return SFT_ERR_INVAL;
  }
  return (n < 0 || (size_t)n >= cap) ? SFT_ERR_NOSPACE : 0;
}

static bool sa_equal(const struct sockaddr_storage *a,
                     const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family)
    return false;
  if (a->ss_family == AF_INET) {
    const struct sockaddr_in *x = (const struct sockaddr_in *)a,
                             *y = (const struct sockaddr_in *)b;
    return x->sin_port == y->sin_port &&
           x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a,
                            *y = (const struct sockaddr_in6 *)b;
  return x->sin6_port == y->sin6_port &&
         memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0 &&
         x->sin6_scope_id == y->sin6_scope_id;
}

/* Non-blocking UDP socket with big buffers; bound to |bind_sa| if given,
 * connected to |conn_sa| if given. -1 on failure. */
static int udp_socket(int family, const struct sockaddr *bind_sa,
                      socklen_t blen, const struct sockaddr *conn_sa,
                      socklen_t clen, int bufsz) {
  int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  if (bufsz > 0) {
    /* FORCE works as root beyond rmem_max; fall back silently. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof(bufsz)))
      (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof(bufsz)))
      (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
  }
  if ((bind_sa && bind(fd, bind_sa, blen) != 0) ||
      (conn_sa && connect(fd, conn_sa, clen) != 0)) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Receive slots shared by the proxy's sockets (one loop, one thread). */
struct rxbuf {
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  struct sockaddr_storage from[BATCH];
  uint8_t *data; /* BATCH * SLOT */
};

static int rxbuf_init(struct rxbuf *rx) {
  rx->data = malloc((size_t)BATCH * SLOT);
  return rx->data ? 0 : SFT_ERR_NOMEM;
}

/* One recvmmsg; returns the count (>0), 0 on EAGAIN/error. */
static int rx_batch(struct rxbuf *rx, int fd) {
  for (int i = 0; i < BATCH; i++) {
    rx->iov[i].iov_base = rx->data + (size_t)i * SLOT;
    rx->iov[i].iov_len = SLOT;
    memset(&rx->msgs[i].msg_hdr, 0, sizeof(rx->msgs[i].msg_hdr));
    rx->msgs[i].msg_hdr.msg_iov = &rx->iov[i];
    rx->msgs[i].msg_hdr.msg_iovlen = 1;
    rx->msgs[i].msg_hdr.msg_name = &rx->from[i];
    rx->msgs[i].msg_hdr.msg_namelen = sizeof(rx->from[i]);
  }
  for (;;) {
    int n = recvmmsg(fd, rx->msgs, BATCH, MSG_DONTWAIT, NULL);
    if (n > 0)
      return n;
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
      return 0;
    if (n < 0 && errno != EAGAIN) {
      /* ICMP errors (ECONNREFUSED...) are reported once; keep reading. */
      int e = errno;
      if (e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH)
        continue;
    }
    return 0;
  }
}

/* sendmmsg all |n| messages; returns how many were refused. */
static uint64_t tx_all(int fd, struct mmsghdr *m, unsigned n) {
  unsigned done = 0;
  uint64_t refused = 0;
  while (done < n) {
    int r = sendmmsg(fd, m + done, n - done, MSG_DONTWAIT);
    if (r > 0) {
      done += (unsigned)r;
      continue;
    }
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      refused += n - done; /* socket buffer full: drop the rest */
      break;
    }
    refused++; /* this message failed (ICMP error, EMSGSIZE...): skip it */
    done++;
  }
  return refused;
}

/* ---- proxy -------------------------------------------------------------- */

struct client;

struct pkt {
  struct netsim_pq_item h; /* first: delivery time and order */
  struct client *cl;
  uint32_t len;
  uint8_t up; /* 1: to the target via cl->fd; 0: to cl->addr via listen */
  uint8_t data[];
};

struct client {
  struct netsim_proxy *p;
  struct sockaddr_storage addr;
  socklen_t alen;
  int fd;
  uv_poll_t poll;
  uint64_t last_active;
  uint32_t refs; /* pending packets pointing here */
};

struct netsim_proxy {
  uv_loop_t *loop;
  struct netsim_proxy_cfg cfg;
  int lfd;
  struct sockaddr_storage laddr;
  socklen_t laddr_len;
  uv_poll_t lpoll;
  uv_timer_t timer; /* delivery */
  uv_timer_t sweep; /* idle clients */
  struct netsim_model up, down;
  struct client **clients; /* cfg.max_clients slots, NULL = free */
  struct netsim_pq heap; /* pending datagrams by delivery time */
  uint64_t pending_bytes, seq;
  struct rxbuf rx;
  struct netsim_proxy_stats st;
  int closing; /* handles still to close */
  bool close_requested;
  void (*close_cb)(void *);
  void *close_arg;
};

void netsim_proxy_cfg_default(struct netsim_proxy_cfg *c) {
  memset(c, 0, sizeof(*c));
  netsim_spec_default(&c->spec);
  c->max_clients = 64;
  c->idle_ns = 60 * NETSIM_NS_PER_S;
  c->max_pending = 65536;
  c->max_pending_bytes = 64ull << 20;
  c->sockbuf = 8 << 20;
}

static struct pkt *heap_pop(struct netsim_proxy *p) {
  return (struct pkt *)(void *)netsim_pq_pop(&p->heap);
}

static void on_timer(uv_timer_t *t);

static void arm_timer(struct netsim_proxy *p, uint64_t now) {
  if (p->heap.n == 0) {
    uv_timer_stop(&p->timer);
    return;
  }
  uint64_t t = p->heap.v[0]->t;
  uint64_t ms = t > now ? (t - now + NETSIM_NS_PER_MS - 1) / NETSIM_NS_PER_MS
                        : 0;
  uv_update_time(p->loop);
  uv_timer_start(&p->timer, on_timer, ms, 0);
}

/* Sends every pending datagram due at |now|, batching consecutive ones that
 * leave through the same socket. */
static void drain(struct netsim_proxy *p, uint64_t now) {
  struct mmsghdr m[BATCH];
  struct iovec iov[BATCH];
  struct pkt *b[BATCH];
  unsigned n = 0;
  int bfd = -1;
  for (;;) {
    struct pkt *x = (p->heap.n && p->heap.v[0]->t <= now) ? heap_pop(p) : NULL;
    int fd = x ? (x->up ? x->cl->fd : p->lfd) : -1;
    if (n && (!x || fd != bfd || n == BATCH)) {
      uint64_t refused = tx_all(bfd, m, n);
      uint64_t ok = n - refused;
      p->st.drop_send += refused;
      if (b[0]->up)
        p->st.sent_up += ok;
      else
        p->st.sent_down += ok;
      for (unsigned i = 0; i < n; i++) {
        b[i]->cl->refs--;
        p->pending_bytes -= b[i]->len;
        free(b[i]);
      }
      n = 0;
    }
    if (!x)
      break;
    bfd = fd;
    iov[n].iov_base = x->data;
    iov[n].iov_len = x->len;
    memset(&m[n], 0, sizeof(m[n]));
    m[n].msg_hdr.msg_iov = &iov[n];
    m[n].msg_hdr.msg_iovlen = 1;
    if (!x->up) {
      m[n].msg_hdr.msg_name = &x->cl->addr;
      m[n].msg_hdr.msg_namelen = x->cl->alen;
    }
    b[n++] = x;
  }
  arm_timer(p, now);
}

static void on_timer(uv_timer_t *t) {
  struct netsim_proxy *p = t->data;
  drain(p, uv_hrtime());
}

static void enqueue(struct netsim_proxy *p, struct client *cl, bool up,
                    const uint8_t *data, size_t len,
                    const struct netsim_decision *d) {
  for (unsigned i = 0; i < d->ncopies; i++) {
    if (p->heap.n >= p->cfg.max_pending ||
        p->pending_bytes + len > p->cfg.max_pending_bytes) {
      p->st.drop_limit++;
      continue;
    }
    if (netsim_pq_reserve(&p->heap)) {
      p->st.drop_limit++;
      continue;
    }
    struct pkt *x = malloc(sizeof(*x) + len);
    if (!x) {
      p->st.drop_limit++;
      continue;
    }
    x->h.t = d->copy[i].deliver_ns;
    x->h.seq = p->seq++;
    x->cl = cl;
    x->len = (uint32_t)len;
    x->up = up;
    memcpy(x->data, data, len);
    netsim_copy_apply(&d->copy[i], x->data, len);
    cl->refs++;
    p->pending_bytes += len;
    netsim_pq_push(&p->heap, &x->h);
  }
}

static void on_client_closed(uv_handle_t *h);
static void on_upstream(uv_poll_t *h, int status, int events);

static void client_drop(struct netsim_proxy *p, size_t slot) {
  struct client *cl = p->clients[slot];
  p->clients[slot] = NULL;
  p->st.clients_active--;
  uv_poll_stop(&cl->poll);
  p->closing++;
  uv_close((uv_handle_t *)&cl->poll, on_client_closed);
}

static struct client *client_get(struct netsim_proxy *p,
                                 const struct sockaddr_storage *from,
                                 socklen_t alen, uint64_t now) {
  size_t freeslot = SIZE_MAX, oldest = SIZE_MAX;
  for (size_t i = 0; i < p->cfg.max_clients; i++) {
    struct client *cl = p->clients[i];
    if (!cl) {
      if (freeslot == SIZE_MAX)
        freeslot = i;
      continue;
    }
    if (sa_equal(&cl->addr, from))
      return cl;
    if (cl->refs == 0 &&
        (oldest == SIZE_MAX ||
         cl->last_active < p->clients[oldest]->last_active))
      oldest = i;
  }
  if (freeslot == SIZE_MAX) {
    if (oldest == SIZE_MAX)
      return NULL;
    client_drop(p, oldest);
    p->st.clients_expired++;
    freeslot = oldest;
  }
  struct client *cl = calloc(1, sizeof(*cl));
  if (!cl)
    return NULL;
  cl->p = p;
  cl->addr = *from;
  cl->alen = alen;
  cl->last_active = now;
  cl->fd = udp_socket(p->cfg.target.ss_family, NULL, 0,
                      (const struct sockaddr *)&p->cfg.target,
                      p->cfg.target_len, p->cfg.sockbuf);
  if (cl->fd < 0 || uv_poll_init(p->loop, &cl->poll, cl->fd) != 0) {
    if (cl->fd >= 0)
      close(cl->fd);
    free(cl);
    return NULL;
  }
  cl->poll.data = cl;
  uv_poll_start(&cl->poll, UV_READABLE, on_upstream);
  p->clients[freeslot] = cl;
  p->st.clients_created++;
  p->st.clients_active++;
  return cl;
}

static void on_listen(uv_poll_t *h, int status, int events) {
  struct netsim_proxy *p = h->data;
  (void)events;
  if (status < 0)
    return;
  for (int round = 0; round < 64; round++) {
    int n = rx_batch(&p->rx, p->lfd);
    if (n <= 0)
      break;
    uint64_t now = uv_hrtime();
    for (int i = 0; i < n; i++) {
      struct msghdr *mh = &p->rx.msgs[i].msg_hdr;
      size_t len = p->rx.msgs[i].msg_len;
      struct client *cl = client_get(p, &p->rx.from[i], mh->msg_namelen, now);
      if (!cl) {
        p->st.drop_noclient++;
        continue;
      }
      cl->last_active = now;
      struct netsim_decision d;
      netsim_model_packet(&p->up, now, len, &d);
      enqueue(p, cl, true, p->rx.iov[i].iov_base, len, &d);
    }
    drain(p, now);
    if (n < BATCH)
      break;
  }
}

static void on_upstream(uv_poll_t *h, int status, int events) {
  struct client *cl = h->data;
  struct netsim_proxy *p = cl->p;
  (void)events;
  if (status < 0)
    return;
  for (int round = 0; round < 64; round++) {
    int n = rx_batch(&p->rx, cl->fd);
    if (n <= 0)
      break;
    uint64_t now = uv_hrtime();
    cl->last_active = now;
    for (int i = 0; i < n; i++) {
      size_t len = p->rx.msgs[i].msg_len;
      struct netsim_decision d;
      netsim_model_packet(&p->down, now, len, &d);
      enqueue(p, cl, false, p->rx.iov[i].iov_base, len, &d);
    }
    drain(p, now);
    if (n < BATCH)
      break;
  }
}

static void on_sweep(uv_timer_t *t) {
  struct netsim_proxy *p = t->data;
  uint64_t now = uv_hrtime();
  for (size_t i = 0; i < p->cfg.max_clients; i++) {
    struct client *cl = p->clients[i];
    if (cl && cl->refs == 0 && now - cl->last_active > p->cfg.idle_ns) {
      client_drop(p, i);
      p->st.clients_expired++;
    }
  }
}

static void proxy_free(struct netsim_proxy *p) {
  while (p->heap.n)
    free(heap_pop(p));
  netsim_pq_free(&p->heap);
  free(p->clients);
  free(p->rx.data);
  if (p->lfd >= 0)
    close(p->lfd);
  free(p);
}

static void closed_one(struct netsim_proxy *p) {
  if (--p->closing > 0 || !p->close_requested)
    return;
  void (*cb)(void *) = p->close_cb;
  void *arg = p->close_arg;
  proxy_free(p);
  if (cb)
    cb(arg);
}

static void on_client_closed(uv_handle_t *h) {
  struct client *cl = h->data;
  struct netsim_proxy *p = cl->p;
  close(cl->fd);
  free(cl);
  closed_one(p);
}

static void on_proxy_handle_closed(uv_handle_t *h) {
  closed_one(h->data);
}

int netsim_proxy_new(struct netsim_proxy **pp, uv_loop_t *loop,
                     const struct netsim_proxy_cfg *cfg) {
  *pp = NULL;
  if ((cfg->listen.ss_family != AF_INET && cfg->listen.ss_family != AF_INET6) ||
      (cfg->target.ss_family != AF_INET && cfg->target.ss_family != AF_INET6) ||
      cfg->max_clients == 0 || cfg->max_pending == 0)
    return SFT_ERR_INVAL;
  struct netsim_proxy *p = calloc(1, sizeof(*p));
  if (!p)
    return SFT_ERR_NOMEM;
  p->loop = loop;
  p->cfg = *cfg;
  p->lfd = -1;
  p->clients = calloc(cfg->max_clients, sizeof(*p->clients));
  if (!p->clients || rxbuf_init(&p->rx) != 0)
    goto fail_nomem;
  p->lfd = udp_socket(cfg->listen.ss_family,
                      (const struct sockaddr *)&cfg->listen, cfg->listen_len,
                      NULL, 0, cfg->sockbuf);
  if (p->lfd < 0)
    goto fail_io;
  p->laddr_len = sizeof(p->laddr);
  if (getsockname(p->lfd, (struct sockaddr *)&p->laddr, &p->laddr_len) != 0)
    goto fail_io;
  if (uv_poll_init(loop, &p->lpoll, p->lfd) != 0)
    goto fail_io;
  uint64_t now = uv_hrtime();
  /* distinct streams per direction from one seed */
  netsim_model_init(&p->up, &cfg->spec.up, cfg->spec.seed * 2 + 1, now);
  netsim_model_init(&p->down, &cfg->spec.down, cfg->spec.seed * 2 + 2, now);
  p->lpoll.data = p;
  uv_timer_init(loop, &p->timer);
  uv_timer_init(loop, &p->sweep);
  p->timer.data = p;
  p->sweep.data = p;
  uv_poll_start(&p->lpoll, UV_READABLE, on_listen);
  uv_timer_start(&p->sweep, on_sweep, 1000, 1000);
  *pp = p;
  return 0;
fail_io:
  proxy_free(p);
  return SFT_ERR_IO;
fail_nomem:
  proxy_free(p);
  return SFT_ERR_NOMEM;
}

void netsim_proxy_local_addr(const struct netsim_proxy *p,
                             struct sockaddr_storage *ss, socklen_t *len) {
  *ss = p->laddr;
  *len = p->laddr_len;
}

void netsim_proxy_set_spec(struct netsim_proxy *p,
                           const struct netsim_spec *s) {
  p->cfg.spec = *s;
  netsim_model_set_cfg(&p->up, &s->up);
  netsim_model_set_cfg(&p->down, &s->down);
}

void netsim_proxy_set_blackhole(struct netsim_proxy *p, bool on) {
  netsim_model_set_blackhole(&p->up, on);
  netsim_model_set_blackhole(&p->down, on);
}

bool netsim_proxy_blackhole(const struct netsim_proxy *p) {
  return p->up.blackhole;
}

void netsim_proxy_get_stats(const struct netsim_proxy *p,
                            struct netsim_proxy_stats *st) {
  *st = p->st;
  st->up = p->up.c;
  st->down = p->down.c;
  st->pending = p->heap.n;
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

int netsim_proxy_stats_json(const struct netsim_proxy_stats *st, char *buf,
                            size_t cap) {
  char u[512], d[512];
  json_counters(u, sizeof(u), "up", &st->up);
  json_counters(d, sizeof(d), "down", &st->down);
  int n = snprintf(
      buf, cap,
      "{%s,%s,\"drop_limit\":%" PRIu64 ",\"drop_send\":%" PRIu64
      ",\"drop_noclient\":%" PRIu64 ",\"sent_up\":%" PRIu64
      ",\"sent_down\":%" PRIu64 ",\"clients_created\":%" PRIu64
      ",\"clients_expired\":%" PRIu64 ",\"clients_active\":%" PRIu32
      ",\"pending\":%" PRIu64 "}",
      u, d, st->drop_limit, st->drop_send, st->drop_noclient, st->sent_up,
      st->sent_down, st->clients_created, st->clients_expired,
      st->clients_active, st->pending);
  return (n < 0 || (size_t)n >= cap) ? SFT_ERR_NOSPACE : 0;
}

void netsim_proxy_close(struct netsim_proxy *p, void (*cb)(void *),
                        void *arg) {
  p->close_requested = true;
  p->close_cb = cb;
  p->close_arg = arg;
  p->closing = 1; /* guard while issuing closes */
  for (size_t i = 0; i < p->cfg.max_clients; i++)
    if (p->clients[i])
      client_drop(p, i);
  uv_timer_stop(&p->timer);
  uv_timer_stop(&p->sweep);
  uv_poll_stop(&p->lpoll);
  p->closing += 3;
  uv_close((uv_handle_t *)&p->lpoll, on_proxy_handle_closed);
  uv_close((uv_handle_t *)&p->timer, on_proxy_handle_closed);
  uv_close((uv_handle_t *)&p->sweep, on_proxy_handle_closed);
  p->closing--; /* handles' callbacks run later from the loop */
}

/* ---- echo --------------------------------------------------------------- */

struct netsim_echo {
  int fd;
  bool sink;
  uv_poll_t poll;
  struct sockaddr_storage addr;
  socklen_t alen;
  struct rxbuf rx;
  uint64_t pkts, bytes;
  void (*cb)(void *);
  void *arg;
};

static void on_echo(uv_poll_t *h, int status, int events) {
  struct netsim_echo *e = h->data;
  (void)events;
  if (status < 0)
    return;
  for (int round = 0; round < 64; round++) {
    int n = rx_batch(&e->rx, e->fd);
    if (n <= 0)
      break;
    for (int i = 0; i < n; i++) {
      e->pkts++;
      e->bytes += e->rx.msgs[i].msg_len;
      e->rx.iov[i].iov_len = e->rx.msgs[i].msg_len;
    }
    if (!e->sink)
      (void)tx_all(e->fd, e->rx.msgs, (unsigned)n);
    if (n < BATCH)
      break;
  }
}

int netsim_echo_new(struct netsim_echo **pe, uv_loop_t *loop,
                    const struct sockaddr *addr, socklen_t alen, bool sink) {
  *pe = NULL;
  struct netsim_echo *e = calloc(1, sizeof(*e));
  if (!e || rxbuf_init(&e->rx) != 0) {
    free(e);
    return SFT_ERR_NOMEM;
  }
  e->sink = sink;
  e->fd = udp_socket(addr->sa_family, addr, alen, NULL, 0, 8 << 20);
  e->alen = sizeof(e->addr);
  if (e->fd < 0 ||
      getsockname(e->fd, (struct sockaddr *)&e->addr, &e->alen) != 0 ||
      uv_poll_init(loop, &e->poll, e->fd) != 0) {
    if (e->fd >= 0)
      close(e->fd);
    free(e->rx.data);
    free(e);
    return SFT_ERR_IO;
  }
  e->poll.data = e;
  uv_poll_start(&e->poll, UV_READABLE, on_echo);
  *pe = e;
  return 0;
}

void netsim_echo_local_addr(const struct netsim_echo *e,
                            struct sockaddr_storage *ss, socklen_t *len) {
  *ss = e->addr;
  *len = e->alen;
}

void netsim_echo_counts(const struct netsim_echo *e, uint64_t *pkts,
                        uint64_t *bytes) {
  *pkts = e->pkts;
  *bytes = e->bytes;
}

static void on_echo_closed(uv_handle_t *h) {
  struct netsim_echo *e = h->data;
  void (*cb)(void *) = e->cb;
  void *arg = e->arg;
  close(e->fd);
  free(e->rx.data);
  free(e);
  if (cb)
    cb(arg);
}

void netsim_echo_close(struct netsim_echo *e, void (*cb)(void *), void *arg) {
  e->cb = cb;
  e->arg = arg;
  uv_poll_stop(&e->poll);
  uv_close((uv_handle_t *)&e->poll, on_echo_closed);
}
