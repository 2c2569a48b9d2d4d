/* Raw non-blocking UDP sockets for QUIC: GSO (UDP_SEGMENT) on send, GRO
 * (UDP_GRO) on receive, IP_PKTINFO/IPV6_RECVPKTINFO for the local address of
 * wildcard binds, large socket buffers. libuv's uv_udp can do none of the
 * cmsg parts (dependencies.md section 6), so quic.c drives these fds with
 * uv_poll. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon/quic/quic_int.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

bool sftq_addr_is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
    return (ntohl(s->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
    return IN6_IS_ADDR_LOOPBACK(&s->sin6_addr);
  }
  return false;
}

static bool is_wildcard(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == INADDR_ANY;
  if (sa->sa_family == AF_INET6)
    return IN6_IS_ADDR_UNSPECIFIED(
        &((const struct sockaddr_in6 *)sa)->sin6_addr);
  return false;
}

static void set_bufs(int fd, uint32_t want) {
  int v = (int)(want > (1u << 30) ? (1u << 30) : want);
  /* SO_*BUFFORCE passes the rmem_max/wmem_max caps (needs CAP_NET_ADMIN);
   * without the privilege fall back silently to the capped request. */
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) != 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof v) != 0)
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
}

void sftq_udp_set_bufs(sftq_udp *u, uint32_t want) {
  if (u->fd < 0) return;
  set_bufs(u->fd, want);
  u->bufsize = want;
}

int sftq_udp_open(sftq_udp *u, const struct sockaddr *bind_addr,
                  socklen_t bind_len, const struct sockaddr *peer,
                  socklen_t peer_len, uint32_t sockbuf, int no_gso,
                  int no_gro) {
  memset(u, 0, sizeof *u);
  u->fd = -1;
  u->family = bind_addr->sa_family;
  int fd = socket(u->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return SFT_ERR_IO;
  int one = 1;
  set_bufs(fd, sockbuf);
  u->bufsize = sockbuf;
  if (u->family == AF_INET6) {
    (void)setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
  } else {
    (void)setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof one);
    /* Don't fragment: QUIC does its own PMTU discovery. */
    int pmtu = IP_PMTUDISC_DO;
    (void)setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof pmtu);
  }
  if (bind(fd, bind_addr, bind_len) != 0) goto fail;
  if (peer && connect(fd, peer, peer_len) != 0) goto fail;
  u->local.len = sizeof u->local.ss;
  if (getsockname(fd, (struct sockaddr *)&u->local.ss, &u->local.len) != 0)
    goto fail;
  u->wildcard = !peer && is_wildcard(bind_addr);
  if (!no_gso) {
    int seg = 0;
    socklen_t sl = sizeof seg;
    u->gso = getsockopt(fd, SOL_UDP, UDP_SEGMENT, &seg, &sl) == 0;
  }
  if (!no_gro)
    u->gro = setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0;
  u->fd = fd;
  return 0;
fail:
  close(fd);
  return SFT_ERR_IO;
}

void sftq_udp_close(sftq_udp *u) {
  if (u->fd >= 0) close(u->fd);
  u->fd = -1;
}

/* One sendmsg: |seg| != 0 adds UDP_SEGMENT. */
static ssize_t send1(sftq_udp *u, const sftq_addr *local,
                     const sftq_addr *remote, const uint8_t *buf, size_t len,
                     size_t seg) {
  struct iovec iov = {(void *)(uintptr_t)buf, len};
  struct msghdr m;
  memset(&m, 0, sizeof m);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  if (remote) {
    m.msg_name = (void *)(uintptr_t)&remote->ss;
    m.msg_namelen = remote->len;
  }
  union {
    char buf[CMSG_SPACE(sizeof(uint16_t)) +
             CMSG_SPACE(sizeof(struct in6_pktinfo))];
    struct cmsghdr align;
  } ctrl;
  memset(&ctrl, 0, sizeof ctrl);
  size_t clen = 0;
  m.msg_control = ctrl.buf;
  m.msg_controllen = sizeof ctrl.buf;
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  if (seg && len > seg) {
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t g = (uint16_t)seg;
    memcpy(CMSG_DATA(c), &g, sizeof g);
    clen += CMSG_SPACE(sizeof(uint16_t));
    c = CMSG_NXTHDR(&m, c);
  }
  if (local && u->wildcard && c) {
    if (local->ss.ss_family == AF_INET) {
      struct in_pktinfo pi;
      memset(&pi, 0, sizeof pi);
      pi.ipi_spec_dst = ((const struct sockaddr_in *)&local->ss)->sin_addr;
      c->cmsg_level = IPPROTO_IP;
      c->cmsg_type = IP_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof pi);
      memcpy(CMSG_DATA(c), &pi, sizeof pi);
      clen += CMSG_SPACE(sizeof pi);
    } else if (local->ss.ss_family == AF_INET6) {
      struct in6_pktinfo pi;
      memset(&pi, 0, sizeof pi);
      pi.ipi6_addr = ((const struct sockaddr_in6 *)&local->ss)->sin6_addr;
      c->cmsg_level = IPPROTO_IPV6;
      c->cmsg_type = IPV6_PKTINFO;
      c->cmsg_len = CMSG_LEN(sizeof pi);
      memcpy(CMSG_DATA(c), &pi, sizeof pi);
      clen += CMSG_SPACE(sizeof pi);
    }
  }
  m.msg_controllen = clen;
  if (!clen) m.msg_control = NULL;
  ssize_t n;
  do n = sendmsg(u->fd, &m, 0);
  while (n < 0 && errno == EINTR);
  return n;
}

int sftq_udp_send(sftq_udp *u, const sftq_addr *local, const sftq_addr *remote,
                  const uint8_t *buf, size_t len, size_t seg,
                  size_t *nsent_bytes, uint64_t *nsyscalls) {
  *nsent_bytes = 0;
  if (seg == 0 || seg > len) seg = len;
  if (u->gso && len > seg) {
    ssize_t n = send1(u, local, remote, buf, len, seg);
    (*nsyscalls)++;
    if (n >= 0) {
      *nsent_bytes = len;
      return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return SFT_ERR_AGAIN;
    if (errno != EIO && errno != EINVAL) return SFT_ERR_IO;
    u->gso = false; /* the path or the NIC refuses GSO: per packet from now */
  }
  size_t off = 0;
  while (off < len) {
    size_t n1 = len - off < seg ? len - off : seg;
    ssize_t n = send1(u, local, remote, buf + off, n1, 0);
    (*nsyscalls)++;
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        *nsent_bytes = off;
        return SFT_ERR_AGAIN;
      }
      /* EMSGSIZE (PMTU probe too big), ECONNREFUSED (ICMP): the datagram is
       * lost like on the wire; QUIC recovers (a refusal is noted: before
       * the handshake it fails the connection, quic.c ep_refused). */
      if (errno == ECONNREFUSED)
        u->refused = true;
      if (errno != EMSGSIZE && errno != ECONNREFUSED && errno != EHOSTUNREACH &&
          errno != ENETUNREACH && errno != EPERM)
        return SFT_ERR_IO;
    }
    off += n1;
  }
  *nsent_bytes = len;
  return 0;
}

void sftq_udp_take_error(sftq_udp *u) {
  int err = 0;
  socklen_t el = sizeof err;
  if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 &&
      err == ECONNREFUSED)
    u->refused = true;
}

int sftq_udp_recv(sftq_udp *u, uint8_t *buf, size_t cap, size_t *seg,
                  sftq_addr *local, sftq_addr *remote) {
  for (;;) {
    struct iovec iov = {buf, cap};
    struct msghdr m;
    union {
      char buf[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(struct in6_pktinfo)) +
               64];
      struct cmsghdr align;
    } ctrl;
    memset(&m, 0, sizeof m);
    m.msg_name = &remote->ss;
    m.msg_namelen = sizeof remote->ss;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = ctrl.buf;
    m.msg_controllen = sizeof ctrl.buf;
    ssize_t n = recvmsg(u->fd, &m, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
      /* ICMP errors reported on connected sockets: skip (a refusal is
       * noted, as on send). */
      if (errno == ECONNREFUSED)
        u->refused = true;
      if (errno == ECONNREFUSED || errno == EHOSTUNREACH ||
          errno == ENETUNREACH)
        continue;
      return SFT_ERR_IO;
    }
    if (n == 0) continue; /* empty datagram: ignore */
    remote->len = m.msg_namelen;
    *local = u->local;
    int gso = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
        memcpy(&gso, CMSG_DATA(c), sizeof gso);
      } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        struct in_pktinfo pi;
        memcpy(&pi, CMSG_DATA(c), sizeof pi);
        if (local->ss.ss_family == AF_INET)
          ((struct sockaddr_in *)&local->ss)->sin_addr = pi.ipi_addr;
      } else if (c->cmsg_level == IPPROTO_IPV6 &&
                 c->cmsg_type == IPV6_PKTINFO) {
        struct in6_pktinfo pi;
        memcpy(&pi, CMSG_DATA(c), sizeof pi);
        if (local->ss.ss_family == AF_INET6)
          ((struct sockaddr_in6 *)&local->ss)->sin6_addr = pi.ipi6_addr;
      }
    }
    *seg = gso > 0 ? (size_t)gso : (size_t)n;
    return (int)n;
  }
}
