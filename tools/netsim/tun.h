/*
 * netsim TUN link (libuv, Linux, root): two network namespaces, one TUN
 * device in each (IFF_TUN | IFF_NO_PI, MTU 1500, IPv6 off), addressed as a
 * point-to-point pair; every IP packet read from one device goes through the
 * impairment model ("up" model A -> B, "down" model B -> A) into a min-heap
 * of pending packets ordered by (delivery time, arrival), written to the
 * other device when due (one uv_timer armed for the heap top, plus a drain
 * after each read batch). So any TCP or UDP tool run with `ip netns exec`
 * sees the emulated link. Nothing is thread-safe; everything runs on the
 * caller's uv loop (the setup runs synchronously in netsim_link_new).
 *
 * Namespaces: a namespace that already exists is refused (SFT_ERR_EXISTS,
 * with the `ip netns delete` command in the message) unless cfg.reuse;
 * namespaces this link created are deleted by netsim_link_close and on
 * every failure path of netsim_link_new; reused ones are left in place (the
 * TUN devices disappear with their file descriptors either way). The
 * namespaces are managed with the `ip` program (iproute2, found in PATH):
 * `ip netns add/delete`, `ip -n NS addr/link/route`.
 */
#ifndef NETSIM_TUN_H
#define NETSIM_TUN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "netsim/model.h"
#include "netsim/spec.h"

#define NETSIM_NS_NAME_MAX 32  /* namespace name incl. NUL */
#define NETSIM_DEV_NAME_MAX 16 /* IFNAMSIZ */

struct netsim_link_cfg {
  char ns_a[NETSIM_NS_NAME_MAX], ns_b[NETSIM_NS_NAME_MAX]; /* "sftA" "sftB" */
  char dev[NETSIM_DEV_NAME_MAX]; /* device name in both ("sftlink0") */
  struct in_addr addr_a, addr_b; /* 10.77.0.1, 10.77.0.2 */
  unsigned prefix_a, prefix_b;   /* 30, 30 (1..32) */
  uint32_t mtu;                  /* 1500 (68..65535) */
  uint32_t txqueuelen;           /* device queue, packets (4096) */
  bool reuse;                    /* accept namespaces that already exist */
  struct netsim_spec spec;       /* up = A -> B, down = B -> A */
  uint32_t max_pending;          /* pending packets (65536) */
  uint64_t max_pending_bytes;    /* pending bytes (64 MiB) */
};

/* The defaults above, clean spec. */
void netsim_link_cfg_default(struct netsim_link_cfg *c);

/* "10.77.0.1/30" -> address and prefix (1..32). 0 or SFT_ERR_INVAL. */
int netsim_cidr_parse(const char *s, struct in_addr *a, unsigned *prefix);

/* True if a network namespace |name| exists (/run/netns/NAME). */
bool netsim_netns_exists(const char *name);

struct netsim_link_stats {
  struct netsim_counters up, down; /* model counters per direction */
  uint64_t drop_limit;         /* delivered by the model, pending heap full */
  uint64_t drop_send;          /* write() to the TUN device failed */
  uint64_t rx_errors;          /* read() failures other than EAGAIN */
  uint64_t sent_up, sent_down; /* packets written to B / to A */
  uint64_t pending;            /* packets in the heap now */
};

struct netsim_link;

/* Creates (or, with cfg->reuse, adopts) the namespaces, the two TUN devices
 * and their addresses, up, MTU, peer routes; starts forwarding on |loop|.
 * Blocks while `ip` runs (~tens of ms). The config is copied. On failure
 * everything created so far is removed and a one-line reason goes into
 * |err| (NUL terminated, may be NULL). Returns 0 and *pl, or
 * SFT_ERR_INVAL (bad names, equal addresses or namespaces), SFT_ERR_EXISTS
 * (a namespace exists and !reuse), SFT_ERR_UNSUPPORTED (no /dev/net/tun or
 * not permitted), SFT_ERR_IO (ip or a system call failed), SFT_ERR_NOMEM.
 * Outage windows count from this call. Changes the calling thread's network
 * namespace temporarily (restored before returning). */
int netsim_link_new(struct netsim_link **pl, uv_loop_t *loop,
                    const struct netsim_link_cfg *cfg, char *err,
                    size_t errcap);

/* Replaces both directions' impairments (PRNG, queue, counters kept). */
void netsim_link_set_spec(struct netsim_link *l, const struct netsim_spec *s);
/* Manual outage of both directions (drops counted as drop_outage). */
void netsim_link_set_blackhole(struct netsim_link *l, bool on);
bool netsim_link_blackhole(const struct netsim_link *l);

void netsim_link_get_stats(const struct netsim_link *l,
                           struct netsim_link_stats *st);
/* One-line JSON object of |st|. 0 or SFT_ERR_NOSPACE. */
int netsim_link_stats_json(const struct netsim_link_stats *st, char *buf,
                           size_t cap);

/* Stops forwarding, drops pending packets, closes the handles; once the
 * loop has run their close callbacks the TUN devices are closed, the
 * namespaces this link created are deleted (synchronously, `ip netns
 * delete`), |l| is freed and |cb|(arg) runs (cb may be NULL). */
void netsim_link_close(struct netsim_link *l, void (*cb)(void *), void *arg);

#endif /* NETSIM_TUN_H */
