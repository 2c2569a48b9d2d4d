/* Path discovery (getifaddrs) and the peer / --via list parsers. Contracts
 * in paths.h; see docs/internals/path.md. */
#include "daemon/paths.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ENTRY_SHOW 64 /* bytes of an offending entry quoted in a message */

static void msgf(char *msg, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void msgf(char *msg, size_t cap, const char *fmt, ...) {
  va_list ap;
  if (!msg || cap == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, cap, fmt, ap);
  va_end(ap);
}

/* Printable, bounded copy of untrusted text for messages. */
static void show(char out[ENTRY_SHOW + 4], const char *s, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n && o < ENTRY_SHOW; i++)
    out[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
  if (n > ENTRY_SHOW) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = 0;
}

static int is_blank(char c) {
  return c == ' ' || c == '\t';
}

int sftd_addr_format(const struct sockaddr *sa, char *buf, size_t cap) {
  char h[INET6_ADDRSTRLEN];
  unsigned port;
  int n;
  if (!sa || !buf)
    return SFT_ERR_INVAL;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)sa;
    inet_ntop(AF_INET, &a->sin_addr, h, sizeof(h));
    port = ntohs(a->sin_port);
    n = port ? snprintf(buf, cap, "%s:%u", h, port)
             : snprintf(buf, cap, "%s", h);
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a =
        (const struct sockaddr_in6 *)(const void *)sa;
    inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof(h));
    port = ntohs(a->sin6_port);
    n = port ? snprintf(buf, cap, "[%s]:%u", h, port)
             : snprintf(buf, cap, "[%s]", h);
  } else {
    return SFT_ERR_INVAL;
  }
  if (n < 0 || (size_t)n >= cap)
    return SFT_ERR_NOSPACE;
  return n;
}

/* ---- address helpers ------------------------------------------------------
 */

static socklen_t fill_v4(struct sockaddr_storage *ss, const void *a,
                         uint16_t port) {
  struct sockaddr_in *s = (struct sockaddr_in *)(void *)ss;
  memset(ss, 0, sizeof(*ss));
  s->sin_family = AF_INET;
  s->sin_port = htons(port);
  memcpy(&s->sin_addr, a, 4);
  return sizeof(*s);
}

static socklen_t fill_v6(struct sockaddr_storage *ss, const void *a,
                         uint16_t port, uint32_t scope) {
  struct sockaddr_in6 *s = (struct sockaddr_in6 *)(void *)ss;
  memset(ss, 0, sizeof(*ss));
  s->sin6_family = AF_INET6;
  s->sin6_port = htons(port);
  s->sin6_scope_id = scope;
  memcpy(&s->sin6_addr, a, 16);
  return sizeof(*s);
}

static const struct sockaddr_in *v4(const struct sockaddr_storage *ss) {
  return (const struct sockaddr_in *)(const void *)ss;
}
static const struct sockaddr_in6 *v6(const struct sockaddr_storage *ss) {
  return (const struct sockaddr_in6 *)(const void *)ss;
}

static int is_loopback(const struct sockaddr_storage *ss) {
  if (ss->ss_family == AF_INET)
    return (ntohl(v4(ss)->sin_addr.s_addr) >> 24) == 127;
  if (ss->ss_family == AF_INET6)
    return IN6_IS_ADDR_LOOPBACK(&v6(ss)->sin6_addr);
  return 0;
}

static int is_ll6(const struct sockaddr_storage *ss) {
  return ss->ss_family == AF_INET6 && IN6_IS_ADDR_LINKLOCAL(&v6(ss)->sin6_addr);
}

/* Same family and address bytes (ports and scopes ignored). */
static int same_ip(const struct sockaddr_storage *a,
                   const struct sockaddr_storage *b) {
  if (a->ss_family != b->ss_family)
    return 0;
  if (a->ss_family == AF_INET)
    return memcmp(&v4(a)->sin_addr, &v4(b)->sin_addr, 4) == 0;
  if (a->ss_family == AF_INET6)
    return memcmp(&v6(a)->sin6_addr, &v6(b)->sin6_addr, 16) == 0;
  return 0;
}

/* ---- discovery ------------------------------------------------------------
 */

int sftd_ifaddrs_list(struct sftd_local *out, size_t cap, size_t *n) {
  struct ifaddrs *ifa = NULL;
  size_t k = 0;
  if (!n || (!out && cap))
    return SFT_ERR_INVAL;
  *n = 0;
  if (getifaddrs(&ifa) != 0)
    return SFT_ERR_IO;
  for (struct ifaddrs *i = ifa; i && k < cap; i = i->ifa_next) {
    struct sftd_local *l = &out[k];
    if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) ||
        (i->ifa_flags & IFF_LOOPBACK))
      continue;
    if (i->ifa_addr->sa_family == AF_INET) {
      const struct sockaddr_in *a =
          (const struct sockaddr_in *)(const void *)i->ifa_addr;
      l->addrlen = fill_v4(&l->addr, &a->sin_addr, 0);
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      const struct sockaddr_in6 *a =
          (const struct sockaddr_in6 *)(const void *)i->ifa_addr;
      l->addrlen = fill_v6(&l->addr, &a->sin6_addr, 0, a->sin6_scope_id);
    } else {
      continue;
    }
    if (is_loopback(&l->addr)) /* e.g. 127.0.0.2 on a non-lo interface */
      continue;
    snprintf(l->ifname, sizeof(l->ifname), "%s",
             i->ifa_name ? i->ifa_name : "");
    k++;
  }
  freeifaddrs(ifa);
  *n = k;
  return 0;
}

/* ---- peer list ------------------------------------------------------------
 */

static int parse_port(const char *s, size_t n, uint16_t *port) {
  uint32_t v = 0;
  if (n == 0 || n > 5)
    return SFT_ERR_INVAL;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9')
      return SFT_ERR_INVAL;
    v = v * 10 + (uint32_t)(s[i] - '0');
  }
  if (v == 0 || v > 65535)
    return SFT_ERR_INVAL;
  *port = (uint16_t)v;
  return 0;
}

/* RFC 1123 host name: labels of [A-Za-z0-9-], 1..63 bytes, no '-' at
 * either end, 253 bytes at most. */
static int name_ok(const char *s, size_t n) {
  size_t lab = 0;
  if (n == 0 || n > 253)
    return 0;
  for (size_t i = 0; i <= n; i++) {
    char c = i < n ? s[i] : '.';
    if (c == '.') {
      if (lab == 0 || lab > 63 || s[i - 1] == '-')
        return 0;
      lab = 0;
    } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '-') {
      if (lab == 0 && c == '-')
        return 0;
      lab++;
    } else {
      return 0;
    }
  }
  return 1;
}

/* One trimmed, non-empty entry into |p|. Returns 0 or SFT_ERR_INVAL with
 * *why set. */
static int parse_peer(const char *e, size_t n, uint16_t defport,
                      struct sftd_peer *p, const char **why) {
  const char *host, *port = NULL;
  size_t hn, pn = 0;
  unsigned char a[16];
  memset(p, 0, sizeof(*p));
  if (e[0] == '[') {
    const char *rb = memchr(e, ']', n);
    if (!rb) {
      *why = "missing ']' after an IPv6 address";
      return SFT_ERR_INVAL;
    }
    host = e + 1;
    hn = (size_t)(rb - host);
    if (rb + 1 < e + n) {
      if (rb[1] != ':') {
        *why = "unexpected text after ']' (want [addr]:port)";
        return SFT_ERR_INVAL;
      }
      port = rb + 2;
      pn = (size_t)(e + n - port);
    }
    if (hn == 0 || hn >= SFTD_HOST_MAX) {
      *why = "bad IPv6 address";
      return SFT_ERR_INVAL;
    }
    if (memchr(host, '%', hn)) {
      *why = "scoped IPv6 addresses (%zone) are not supported";
      return SFT_ERR_INVAL;
    }
    memcpy(p->host, host, hn);
    p->host[hn] = 0;
    if (inet_pton(AF_INET6, p->host, a) != 1) {
      *why = "bad IPv6 address";
      return SFT_ERR_INVAL;
    }
    p->addrlen = fill_v6(&p->addr, a, 0, 0);
  } else {
    const char *c1 = memchr(e, ':', n);
    if (c1 && memchr(c1 + 1, ':', (size_t)(e + n - c1 - 1))) {
      *why = "an IPv6 address needs brackets: [addr]:port";
      return SFT_ERR_INVAL;
    }
    host = e;
    hn = c1 ? (size_t)(c1 - e) : n;
    if (c1) {
      port = c1 + 1;
      pn = (size_t)(e + n - port);
    }
    if (hn == 0) {
      *why = "missing host";
      return SFT_ERR_INVAL;
    }
    if (hn >= SFTD_HOST_MAX) {
      *why = "host name too long";
      return SFT_ERR_INVAL;
    }
    memcpy(p->host, host, hn);
    p->host[hn] = 0;
    if (strspn(p->host, "0123456789.") == hn) {
      if (inet_pton(AF_INET, p->host, a) != 1) {
        *why = "bad IPv4 address";
        return SFT_ERR_INVAL;
      }
      p->addrlen = fill_v4(&p->addr, a, 0);
    } else {
      if (!name_ok(p->host, hn)) {
        *why = "bad host name";
        return SFT_ERR_INVAL;
      }
      p->is_name = 1;
    }
  }
  if (port) {
    if (parse_port(port, pn, &p->port) != 0) {
      *why = pn ? "port must be 1..65535" : "missing port after ':'";
      return SFT_ERR_INVAL;
    }
  } else {
    p->port = defport;
  }
  if (p->addrlen) {
    if (p->addr.ss_family == AF_INET)
      ((struct sockaddr_in *)(void *)&p->addr)->sin_port = htons(p->port);
    else
      ((struct sockaddr_in6 *)(void *)&p->addr)->sin6_port = htons(p->port);
  }
  return 0;
}

static int same_peer(const struct sftd_peer *a, const struct sftd_peer *b) {
  if (a->port != b->port || a->is_name != b->is_name)
    return 0;
  if (a->is_name)
    return strcasecmp(a->host, b->host) == 0;
  return same_ip(&a->addr, &b->addr);
}

int sftd_peerlist_parse(const char *s, size_t len, uint16_t default_port,
                        struct sftd_peer *out, size_t cap, size_t *n, char *msg,
                        size_t msgcap) {
  size_t max = cap < SFTD_PEERS_MAX ? cap : SFTD_PEERS_MAX, k = 0, pos = 0;
  char shown[ENTRY_SHOW + 4];
  if (msg && msgcap)
    msg[0] = 0;
  if (n)
    *n = 0;
  if (!s || !out || !n || default_port == 0) {
    msgf(msg, msgcap, "invalid arguments");
    return SFT_ERR_INVAL;
  }
  if (len > SFTD_PEERLIST_MAX_LEN) {
    msgf(msg, msgcap, "peer list longer than %u bytes",
         (unsigned)SFTD_PEERLIST_MAX_LEN);
    return SFT_ERR_TOO_LARGE;
  }
  if (memchr(s, 0, len)) {
    msgf(msg, msgcap, "peer list contains a NUL byte");
    return SFT_ERR_INVAL;
  }
  for (;;) {
    const char *comma = memchr(s + pos, ',', len - pos);
    size_t end = comma ? (size_t)(comma - s) : len, b = pos, e = end;
    const char *why = NULL;
    while (b < e && is_blank(s[b]))
      b++;
    while (e > b && is_blank(s[e - 1]))
      e--;
    if (b == e) {
      msgf(msg, msgcap, "%s",
           len == 0 || (!comma && k == 0 && pos == 0)
               ? "empty peer list"
               : "empty entry in the peer list");
      return SFT_ERR_INVAL;
    }
    show(shown, s + b, e - b);
    if (k == max) {
      msgf(msg, msgcap, "too many peers (at most %zu)", max);
      return SFT_ERR_TOO_LARGE;
    }
    if (parse_peer(s + b, e - b, default_port, &out[k], &why) != 0) {
      msgf(msg, msgcap, "peer %zu \"%s\": %s", k + 1, shown, why);
      return SFT_ERR_INVAL;
    }
    for (size_t j = 0; j < k; j++)
      if (same_peer(&out[j], &out[k])) {
        msgf(msg, msgcap, "peer %zu \"%s\": duplicate of peer %zu", k + 1,
             shown, j + 1);
        return SFT_ERR_INVAL;
      }
    k++;
    if (!comma)
      break;
    pos = end + 1;
  }
  *n = k;
  return 0;
}

int sftd_peer_resolve(struct sftd_peer *p, char *msg, size_t msgcap) {
  struct addrinfo hints, *ai = NULL;
  char sport[8];
  int rv;
  if (!p)
    return SFT_ERR_INVAL;
  if (!p->is_name && p->addrlen)
    return 0;
  memset(&hints, 0, sizeof(hints));
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_ADDRCONFIG;
  snprintf(sport, sizeof(sport), "%u", (unsigned)p->port);
  rv = getaddrinfo(p->host, sport, &hints, &ai);
  if (rv != 0 || !ai || (size_t)ai->ai_addrlen > sizeof(p->addr)) {
    msgf(msg, msgcap, "cannot resolve %s: %s", p->host,
         rv ? gai_strerror(rv) : "no address");
    if (ai)
      freeaddrinfo(ai);
    return SFT_ERR_NOT_FOUND;
  }
  memset(&p->addr, 0, sizeof(p->addr));
  memcpy(&p->addr, ai->ai_addr, ai->ai_addrlen);
  p->addrlen = (socklen_t)ai->ai_addrlen;
  freeaddrinfo(ai);
  return 0;
}

/* ---- --via ----------------------------------------------------------------
 */

int sftd_via_parse(const char *s, size_t len, const struct sftd_local *ifs,
                   size_t nifs, struct sftd_local *out, size_t cap, size_t *n,
                   char *msg, size_t msgcap) {
  size_t max = cap < SFTD_VIA_MAX ? cap : SFTD_VIA_MAX, k = 0, pos = 0;
  char shown[ENTRY_SHOW + 4], text[INET6_ADDRSTRLEN + 1];
  if (msg && msgcap)
    msg[0] = 0;
  if (n)
    *n = 0;
  if (!s || !out || !n || (!ifs && nifs)) {
    msgf(msg, msgcap, "invalid arguments");
    return SFT_ERR_INVAL;
  }
  if (len > SFTD_PEERLIST_MAX_LEN) {
    msgf(msg, msgcap, "--via list too long");
    return SFT_ERR_TOO_LARGE;
  }
  if (memchr(s, 0, len)) {
    msgf(msg, msgcap, "--via list contains a NUL byte");
    return SFT_ERR_INVAL;
  }
  for (;;) {
    const char *comma = memchr(s + pos, ',', len - pos);
    size_t end = comma ? (size_t)(comma - s) : len, b = pos, e = end;
    unsigned char a[16];
    struct sftd_local l;
    while (b < e && is_blank(s[b]))
      b++;
    while (e > b && is_blank(s[e - 1]))
      e--;
    if (b == e) {
      msgf(msg, msgcap, "empty entry in the --via list");
      return SFT_ERR_INVAL;
    }
    show(shown, s + b, e - b);
    if (k == max) {
      msgf(msg, msgcap, "too many --via addresses (at most %zu)", max);
      return SFT_ERR_TOO_LARGE;
    }
    if (s[b] == '[' && s[e - 1] == ']') { /* brackets optional for IPv6 */
      b++;
      e--;
    }
    if (e - b == 0 || e - b >= sizeof(text)) {
      msgf(msg, msgcap, "--via \"%s\": not an IP address", shown);
      return SFT_ERR_INVAL;
    }
    memcpy(text, s + b, e - b);
    text[e - b] = 0;
    memset(&l, 0, sizeof(l));
    if (inet_pton(AF_INET, text, a) == 1) {
      l.addrlen = fill_v4(&l.addr, a, 0);
    } else if (inet_pton(AF_INET6, text, a) == 1) {
      l.addrlen = fill_v6(&l.addr, a, 0, 0);
    } else {
      msgf(msg, msgcap,
           "--via \"%s\": not an IP address (a port is not "
           "allowed)",
           shown);
      return SFT_ERR_INVAL;
    }
    if (!is_loopback(&l.addr)) {
      size_t i;
      for (i = 0; i < nifs; i++)
        if (same_ip(&ifs[i].addr, &l.addr))
          break;
      if (i == nifs) {
        msgf(msg, msgcap, "--via %s: not an address of an up local interface",
             shown);
        return SFT_ERR_INVAL;
      }
      l = ifs[i]; /* interface name, IPv6 scope */
      l.ifname[sizeof(l.ifname) - 1] = 0;
    }
    for (size_t j = 0; j < k; j++)
      if (same_ip(&out[j].addr, &l.addr)) {
        msgf(msg, msgcap, "--via %s: given twice", shown);
        return SFT_ERR_INVAL;
      }
    out[k++] = l;
    if (!comma)
      break;
    pos = end + 1;
  }
  *n = k;
  return 0;
}

/* ---- path list ------------------------------------------------------------
 */

static int compatible(const struct sftd_local *l, const struct sftd_peer *p) {
  return l->addr.ss_family == p->addr.ss_family &&
         is_loopback(&l->addr) == is_loopback(&p->addr) &&
         is_ll6(&l->addr) == is_ll6(&p->addr);
}

static void msg_append(char *msg, size_t cap, const char *text) {
  size_t have;
  if (!msg || cap == 0)
    return;
  have = strnlen(msg, cap);
  if (have + 1 < cap)
    snprintf(msg + have, cap - have, "%s%s", have ? "; " : "", text);
}

int sftd_paths_build(const struct sftd_peer *peers, size_t npeers,
                     const struct sftd_local *locals, size_t nlocals,
                     struct sftd_path_spec *out, size_t cap, size_t *n,
                     size_t *dropped, char *msg, size_t msgcap) {
  size_t k = 0, drop = 0, rounds = nlocals ? nlocals : 1;
  char line[SFTD_HOST_MAX + 96];
  if (msg && msgcap)
    msg[0] = 0;
  if (n)
    *n = 0;
  if (dropped)
    *dropped = 0;
  if (!n || (!peers && npeers) || (!locals && nlocals) || (!out && cap))
    return SFT_ERR_INVAL;
  /* Warnings first: peers that get no path at all. */
  for (size_t pi = 0; pi < npeers; pi++) {
    const struct sftd_peer *p = &peers[pi];
    size_t li = 0;
    if (!p->addrlen) {
      snprintf(line, sizeof(line), "peer %s skipped: not resolved", p->host);
      msg_append(msg, msgcap, line);
      continue;
    }
    while (li < nlocals && !compatible(&locals[li], p))
      li++;
    if (nlocals && li == nlocals) {
      snprintf(line, sizeof(line),
               "peer %s skipped: no usable local address for it", p->host);
      msg_append(msg, msgcap, line);
    }
  }
  /* Round r gives every peer its r-th compatible local address. */
  for (size_t r = 0; r < rounds; r++) {
    for (size_t pi = 0; pi < npeers; pi++) {
      const struct sftd_peer *p = &peers[pi];
      size_t seen = 0, li;
      if (!p->addrlen)
        continue;
      if (nlocals) {
        for (li = 0; li < nlocals; li++)
          if (compatible(&locals[li], p) && seen++ == r)
            break;
        if (li == nlocals)
          continue;
      }
      if (k == cap) {
        drop++;
        continue;
      }
      struct sftd_path_spec *ps = &out[k++];
      memset(ps, 0, sizeof(*ps));
      ps->peer = p->addr;
      ps->peerlen = p->addrlen;
      ps->peer_index = (unsigned)pi;
      if (nlocals) {
        ps->has_local = 1;
        ps->local = locals[li];
        if (is_ll6(&p->addr)) /* the link is the local address's */
          ((struct sockaddr_in6 *)(void *)&ps->peer)->sin6_scope_id =
              v6(&locals[li].addr)->sin6_scope_id;
      }
    }
  }
  *n = k;
  if (dropped)
    *dropped = drop;
  if (k == 0) {
    if (!msg || !msg[0])
      msgf(msg, msgcap, "no path: no peer address");
    return SFT_ERR_NOT_FOUND;
  }
  return 0;
}

/* ---- numeric addresses (the transports' connect/listen) ---- */

int sftd_addr_parse(const char *host, uint16_t port,
                      struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  if (!host) return SFT_ERR_INVAL;
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    *len = sizeof *a4;
    return 0;
  }
  if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons(port);
    *len = sizeof *a6;
    return 0;
  }
  return SFT_ERR_INVAL;
}

int sftd_addr_parse_local(const char *s, struct sockaddr_storage *ss,
                       socklen_t *len) {
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 4];
  size_t n = strlen(s);
  char *p = buf, *zone;
  int bracket = 0, rv;
  if (n >= sizeof buf)
    return SFT_ERR_INVAL;
  memcpy(buf, s, n + 1);
  if (p[0] == '[') {
    if (n < 3 || p[n - 1] != ']')
      return SFT_ERR_INVAL;
    p[n - 1] = 0;
    p++;
    bracket = 1;
  }
  zone = strchr(p, '%');
  if (zone)
    *zone++ = 0;
  if ((rv = sftd_addr_parse(p, 0, ss, len)) != 0)
    return rv;
  if ((bracket || zone) && ss->ss_family != AF_INET6)
    return SFT_ERR_INVAL;
  if (zone) {
    unsigned long idx = if_nametoindex(zone);
    if (!idx && zone[0] >= '1' && zone[0] <= '9' && strlen(zone) <= 9 &&
        strspn(zone, "0123456789") == strlen(zone))
      idx = strtoul(zone, NULL, 10);
    if (!idx)
      return SFT_ERR_INVAL;
    ((struct sockaddr_in6 *)ss)->sin6_scope_id = (uint32_t)idx;
  }
  return 0;
}
