/* Fuzz the peer-list parser (CLI/API input) and the --via parser on the
 * same bytes. Never crashes or reads out of bounds; the message is always
 * terminated; on success: 1..SFTD_PEERS_MAX peers, ports 1..65535, hosts
 * terminated and non-empty, numeric peers carry an address, and printing
 * the peers back as "host:port,..." parses to the same peers. The path
 * list built from them is bounded and only pairs equal families. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/paths.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_msg(const char *msg, size_t cap) {
  if (!memchr(msg, 0, cap))
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct sftd_peer p[SFTD_PEERS_MAX], q[SFTD_PEERS_MAX];
  static struct sftd_local ifs[2], via[SFTD_VIA_MAX];
  static struct sftd_path_spec ps[SFTD_PATHS_MAX];
  static char text[SFTD_PEERS_MAX * (SFTD_HOST_MAX + 10)];
  char msg[96];
  size_t n = 1234, m, nv, np, drop, nifs = 0;
  uint16_t defport;
  int rc;

  if (size < 2)
    return 0;
  defport = (uint16_t)(data[0] << 8 | data[1]);
  data += 2;
  size -= 2;
  memset(msg, 'x', sizeof(msg));
  rc = sftd_peerlist_parse((const char *)data, size, defport, p, SFTD_PEERS_MAX,
                           &n, msg, sizeof(msg));
  check_msg(msg, sizeof(msg));
  if (rc != 0) {
    if (n != 0 || msg[0] == 0)
      abort();
  } else {
    size_t o = 0;
    if (n == 0 || n > SFTD_PEERS_MAX || defport == 0)
      abort();
    for (size_t i = 0; i < n; i++) {
      size_t hl = strnlen(p[i].host, sizeof(p[i].host));
      int w;
      if (hl == 0 || hl == sizeof(p[i].host) || p[i].port == 0)
        abort();
      if (!p[i].is_name && p[i].addrlen == 0)
        abort();
      if (p[i].is_name && p[i].addrlen != 0)
        abort();
      w = snprintf(text + o, sizeof(text) - o, "%s%s%s%s:%u", i ? "," : "",
                   strchr(p[i].host, ':') ? "[" : "", p[i].host,
                   strchr(p[i].host, ':') ? "]" : "", (unsigned)p[i].port);
      if (w < 0 || (size_t)w >= sizeof(text) - o)
        abort();
      o += (size_t)w;
    }
    if (sftd_peerlist_parse(text, o, 1, q, SFTD_PEERS_MAX, &m, msg,
                            sizeof(msg)) != 0 ||
        m != n)
      abort();
    for (size_t i = 0; i < n; i++)
      if (strcmp(p[i].host, q[i].host) != 0 || p[i].port != q[i].port ||
          p[i].addrlen != q[i].addrlen ||
          memcmp(&p[i].addr, &q[i].addr, p[i].addrlen) != 0)
        abort();
    /* Locals: the first two numeric peers (ports cleared). */
    for (size_t i = 0; i < n && nifs < 2; i++) {
      if (!p[i].addrlen)
        continue;
      memset(&ifs[nifs], 0, sizeof(ifs[nifs]));
      ifs[nifs].addr = p[i].addr;
      ifs[nifs].addrlen = p[i].addrlen;
      nifs++;
    }
    rc = sftd_paths_build(p, n, ifs, nifs, ps, SFTD_PATHS_MAX, &np, &drop, msg,
                          sizeof(msg));
    check_msg(msg, sizeof(msg));
    if (np > SFTD_PATHS_MAX || (rc == 0) != (np > 0))
      abort();
    for (size_t i = 0; i < np; i++)
      if (ps[i].peer_index >= n ||
          (ps[i].has_local &&
           ps[i].local.addr.ss_family != ps[i].peer.ss_family))
        abort();
  }
  memset(msg, 'x', sizeof(msg));
  rc = sftd_via_parse((const char *)data, size, ifs, nifs, via, SFTD_VIA_MAX,
                      &nv, msg, sizeof(msg));
  check_msg(msg, sizeof(msg));
  if ((rc == 0) != (nv > 0) || nv > SFTD_VIA_MAX)
    abort();
  return 0;
}
