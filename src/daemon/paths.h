/*
 * Path discovery and path-list parsing for multi-path sends (daemon side).
 *
 * - sftd_ifaddrs_list(): the local interface addresses a path may start
 *   from: interfaces that are up, not loopback, IPv4 and IPv6 (getifaddrs).
 * - sftd_peerlist_parse(): "HOST1:PORT,HOST2:PORT" from the CLI or the API
 *   (untrusted): HOST is an IPv4 literal, "[IPv6]" or a DNS name; ":PORT"
 *   may be left out (default port). Bounded: at most SFTD_PEERS_MAX entries
 *   and SFTD_PEERLIST_MAX_LEN bytes. No lookup happens here: numeric hosts
 *   get their address at once, names are resolved by sftd_peer_resolve().
 * - sftd_via_parse(): "--via ADDR[,ADDR]": local bind addresses (IPv4,
 *   IPv6 with or without brackets, no port); each must be loopback or an
 *   address of an up interface from the list given.
 * - sftd_paths_build(): the (local, peer) pairs the sender will try.
 *
 * Errors are SFT_ERR_* codes; where a |msg| buffer is given (may be NULL,
 * any capacity), it receives a one-line explanation naming the offending
 * entry. Nothing here keeps state; all outputs are caller-owned arrays.
 */
#ifndef SFTD_PATHS_H
#define SFTD_PATHS_H

#include <stddef.h>
#include <stdint.h>

#include <net/if.h>
#include <sys/socket.h>

#include "sft/err.h"
#include "sft/path.h"

#define SFTD_PEERS_MAX 8            /* entries in a peer list */
#define SFTD_PEERLIST_MAX_LEN 2048  /* bytes of a peer list */
#define SFTD_VIA_MAX 8              /* entries in a --via list */
#define SFTD_IFADDRS_MAX 64         /* local addresses considered */
#define SFTD_PATHS_MAX SFT_PATH_MAX /* paths built for one session */
#define SFTD_HOST_MAX 254           /* host text with NUL (253 + 1) */

/* One parsed peer. addr is valid when addrlen > 0 (numeric host, or after
 * sftd_peer_resolve()). */
struct sftd_peer {
  char host[SFTD_HOST_MAX]; /* as given, without brackets */
  uint16_t port;
  int is_name; /* 1: DNS name, 0: numeric */
  struct sockaddr_storage addr;
  socklen_t addrlen;
};

/* One local address (discovered or given with --via). */
struct sftd_local {
  char ifname[IF_NAMESIZE];     /* "" when unknown (loopback via) */
  struct sockaddr_storage addr; /* port 0 */
  socklen_t addrlen;
};

/* A path to try: bind |local| (port 0), connect to |peer|. has_local 0 means
 * "let the kernel choose" (wildcard bind). */
struct sftd_path_spec {
  int has_local;
  struct sftd_local local;
  struct sockaddr_storage peer;
  socklen_t peerlen;
  unsigned peer_index; /* index into the peer array */
};

/* Lists up, non-loopback IPv4/IPv6 interface addresses into out[0..cap),
 * in getifaddrs order; *n = count. More than |cap| are silently cut (cap is
 * a bound, not an error). Errors: SFT_ERR_INVAL (NULL), SFT_ERR_IO
 * (getifaddrs failed). */
int sftd_ifaddrs_list(struct sftd_local *out, size_t cap, size_t *n);

/* Parses |len| bytes of |s| (no NUL needed; an embedded NUL is an error).
 * Entries are separated by ',', blanks around an entry are ignored.
 * |default_port| (1..65535) fills entries without ":PORT". On success
 * out[0..*n) holds the peers (n >= 1). Errors (SFT_ERR_INVAL unless said):
 * empty list or entry, SFT_ERR_TOO_LARGE (longer than SFTD_PEERLIST_MAX_LEN
 * or more than min(cap, SFTD_PEERS_MAX) entries), bad IPv4/IPv6 literal,
 * IPv6 without brackets, bad host name, port not 1..65535, duplicate peer,
 * scoped IPv6 (%zone) unsupported. *n is 0 on error. */
int sftd_peerlist_parse(const char *s, size_t len, uint16_t default_port,
                        struct sftd_peer *out, size_t cap, size_t *n, char *msg,
                        size_t msgcap);

/* Resolves a peer whose host is a name (blocking getaddrinfo: call it off
 * the event loop); numeric peers are left as they are. Takes the first
 * address. Errors: SFT_ERR_INVAL (NULL), SFT_ERR_NOT_FOUND (no address). */
int sftd_peer_resolve(struct sftd_peer *p, char *msg, size_t msgcap);

/* Parses a --via list: "ADDR[,ADDR...]", at most min(cap, SFTD_VIA_MAX).
 * Each address must be loopback (127/8, ::1) or equal to an address in
 * ifs[0..nifs) (normally from sftd_ifaddrs_list()); its ifname is copied.
 * Errors: SFT_ERR_INVAL (syntax, or "ADDR is not an address of an up local
 * interface"), SFT_ERR_TOO_LARGE (too many/too long), SFT_ERR_EXISTS is
 * not used: duplicates are SFT_ERR_INVAL. *n is 0 on error. */
int sftd_via_parse(const char *s, size_t len, const struct sftd_local *ifs,
                   size_t nifs, struct sftd_local *out, size_t cap, size_t *n,
                   char *msg, size_t msgcap);

/* Builds the path list: every compatible (local, peer) pair, ordered so
 * that each peer gets its first path before any peer gets a second one.
 * nlocals == 0 -> one wildcard path per peer. Compatible: same family;
 * loopback only with loopback; an IPv6 link-local local address only with
 * a link-local peer. Peers without an address (unresolved names) are
 * skipped. Paths past |cap| are dropped and counted in *dropped (may be
 * NULL). Skipped peers are named in |msg| (a warning, not an error).
 * Errors: SFT_ERR_INVAL (NULL), SFT_ERR_NOT_FOUND (no path at all; msg
 * says why). */
int sftd_paths_build(const struct sftd_peer *peers, size_t npeers,
                     const struct sftd_local *locals, size_t nlocals,
                     struct sftd_path_spec *out, size_t cap, size_t *n,
                     size_t *dropped, char *msg, size_t msgcap);

/* Formats |sa| as "1.2.3.4:5" / "[::1]:5" (port omitted when 0). Returns
 * the length, or SFT_ERR_NOSPACE / SFT_ERR_INVAL (unknown family). */
int sftd_addr_format(const struct sockaddr *sa, char *buf, size_t cap);

/* Numeric |host| (IPv4 or IPv6 literal, no brackets) and |port| into
 * *ss / *len. Errors: SFT_ERR_INVAL (NULL or not a literal). */
int sftd_addr_parse(const char *host, uint16_t port,
                    struct sockaddr_storage *ss, socklen_t *len);

/* A local bind address for the transports' *_connect_via: a numeric IPv4 or
 * IPv6 literal, IPv6 optionally in brackets and with a "%zone" (interface
 * name or index: link-local sources); port 0. SFT_ERR_INVAL otherwise. */
int sftd_addr_parse_local(const char *s, struct sockaddr_storage *ss,
                          socklen_t *len);

#endif /* SFTD_PATHS_H */
