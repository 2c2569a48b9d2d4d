/* Tests of src/daemon/paths: interface discovery, peer and --via lists,
 * path list building. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "daemon/paths.h"

static int parse(const char *s, uint16_t defport, struct sftd_peer *out,
                 size_t cap, size_t *n, char *msg, size_t msgcap) {
  return sftd_peerlist_parse(s, strlen(s), defport, out, cap, n, msg, msgcap);
}

static void fmt_peer(const struct sftd_peer *p, char *buf, size_t cap) {
  assert_true(p->addrlen > 0);
  assert_true(sftd_addr_format((const struct sockaddr *)&p->addr, buf, cap) >
              0);
}

static void test_peerlist_good(void **state) {
  struct sftd_peer p[SFTD_PEERS_MAX];
  size_t n = 99;
  char msg[256], buf[64];
  (void)state;
  assert_int_equal(parse("10.0.0.1:6000, [::1]:7000 ,example.com:80,"
                         "[2001:db8::5],192.168.1.2,host-a.b",
                         5000, p, SFTD_PEERS_MAX, &n, msg, sizeof(msg)),
                   0);
  assert_int_equal(n, 6);
  assert_string_equal(msg, "");
  fmt_peer(&p[0], buf, sizeof(buf));
  assert_string_equal(buf, "10.0.0.1:6000");
  assert_int_equal(p[0].is_name, 0);
  fmt_peer(&p[1], buf, sizeof(buf));
  assert_string_equal(buf, "[::1]:7000");
  assert_string_equal(p[1].host, "::1");
  assert_string_equal(p[2].host, "example.com");
  assert_int_equal(p[2].is_name, 1);
  assert_int_equal(p[2].port, 80);
  assert_int_equal(p[2].addrlen, 0); /* not resolved yet */
  fmt_peer(&p[3], buf, sizeof(buf));
  assert_string_equal(buf, "[2001:db8::5]:5000"); /* default port */
  fmt_peer(&p[4], buf, sizeof(buf));
  assert_string_equal(buf, "192.168.1.2:5000");
  assert_int_equal(p[5].port, 5000);
  /* Single entry, port limits, not NUL-terminated input. */
  assert_int_equal(parse("1.2.3.4:65535", 1, p, 1, &n, NULL, 0), 0);
  assert_int_equal(p[0].port, 65535);
  assert_int_equal(
      sftd_peerlist_parse("1.2.3.4:1xyz", 9, 5000, p, 8, &n, msg, sizeof(msg)),
      0);
  assert_int_equal(p[0].port, 1);
  /* Numeric resolve is a no-op. */
  assert_int_equal(sftd_peer_resolve(&p[0], msg, sizeof(msg)), 0);
  /* "localhost" resolves (via /etc/hosts) to a loopback address. */
  assert_int_equal(parse("localhost:9", 5000, p, 8, &n, msg, sizeof(msg)), 0);
  if (sftd_peer_resolve(&p[0], msg, sizeof(msg)) == 0) {
    assert_true(p[0].addrlen > 0);
    fmt_peer(&p[0], buf, sizeof(buf));
    assert_true(strstr(buf, ":9") != NULL);
  }
}

static void expect_bad(const char *s, int rc, const char *needle) {
  struct sftd_peer p[SFTD_PEERS_MAX];
  size_t n = 77;
  char msg[160];
  int got = parse(s, 5000, p, SFTD_PEERS_MAX, &n, msg, sizeof(msg));
  if (got != rc || !strstr(msg, needle))
    fail_msg("\"%s\": rc %d msg \"%s\" (want %d, \"%s\")", s, got, msg, rc,
             needle);
  assert_int_equal(n, 0);
}

static void test_peerlist_bad(void **state) {
  char big[SFTD_PEERLIST_MAX_LEN + 2];
  struct sftd_peer p[SFTD_PEERS_MAX];
  size_t n;
  char msg[8];
  (void)state;
  expect_bad("", SFT_ERR_INVAL, "empty peer list");
  expect_bad("   ", SFT_ERR_INVAL, "empty peer list");
  expect_bad("a:1,,b:2", SFT_ERR_INVAL, "empty entry");
  expect_bad("a:1,", SFT_ERR_INVAL, "empty entry");
  expect_bad(",a:1", SFT_ERR_INVAL, "empty entry");
  expect_bad("::1:5000", SFT_ERR_INVAL, "needs brackets");
  expect_bad("[::1:5000", SFT_ERR_INVAL, "missing ']'");
  expect_bad("[::1]5000", SFT_ERR_INVAL, "after ']'");
  expect_bad("[]:5000", SFT_ERR_INVAL, "bad IPv6");
  expect_bad("[1.2.3.4]:5000", SFT_ERR_INVAL, "bad IPv6");
  expect_bad("[fe80::1%eth0]:5000", SFT_ERR_INVAL, "scoped");
  expect_bad("1.2.3.256:5000", SFT_ERR_INVAL, "bad IPv4");
  expect_bad("1.2.3:5000", SFT_ERR_INVAL, "bad IPv4");
  expect_bad(":5000", SFT_ERR_INVAL, "missing host");
  expect_bad("a:", SFT_ERR_INVAL, "missing port");
  expect_bad("a:0", SFT_ERR_INVAL, "1..65535");
  expect_bad("a:65536", SFT_ERR_INVAL, "1..65535");
  expect_bad("a:123456", SFT_ERR_INVAL, "1..65535");
  expect_bad("a:+80", SFT_ERR_INVAL, "1..65535");
  expect_bad("a:-1", SFT_ERR_INVAL, "1..65535");
  expect_bad("a b:80", SFT_ERR_INVAL, "bad host name");
  expect_bad("-a.com:80", SFT_ERR_INVAL, "bad host name");
  expect_bad("a-.com:80", SFT_ERR_INVAL, "bad host name");
  expect_bad("a..com:80", SFT_ERR_INVAL, "bad host name");
  expect_bad("a_b:80", SFT_ERR_INVAL, "bad host name");
  expect_bad("h\x01x:80", SFT_ERR_INVAL, "\"h?x:80\""); /* shown safely */
  expect_bad("1.2.3.4:80,1.2.3.4:80", SFT_ERR_INVAL, "duplicate of peer 1");
  expect_bad("[::1]:80,[0::1]:80", SFT_ERR_INVAL, "duplicate");
  expect_bad("A.com,a.COM:5000", SFT_ERR_INVAL, "duplicate");
  expect_bad("a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9", SFT_ERR_TOO_LARGE,
             "too many peers (at most 8)");
  /* A label of 64 bytes; a name over 253. */
  char lab[80];
  memset(lab, 'a', 64);
  strcpy(lab + 64, ":1");
  expect_bad(lab, SFT_ERR_INVAL, "bad host name");
  memset(big, 'a', sizeof(big));
  for (size_t i = 60; i < 300; i += 61)
    big[i] = '.';
  strcpy(big + 300, ":1");
  expect_bad(big, SFT_ERR_INVAL, "too long");
  memset(big, 'a', sizeof(big) - 1);
  big[sizeof(big) - 1] = 0;
  expect_bad(big, SFT_ERR_TOO_LARGE, "longer than");
  /* Embedded NUL, bad arguments, cap smaller than the list, tiny msg. */
  assert_int_equal(sftd_peerlist_parse("a:1\0b", 5, 5000, p, 8, &n, NULL, 0),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_peerlist_parse("a:1", 3, 0, p, 8, &n, NULL, 0),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_peerlist_parse(NULL, 0, 1, p, 8, &n, NULL, 0),
                   SFT_ERR_INVAL);
  assert_int_equal(parse("a:1,b:2", 5000, p, 1, &n, msg, sizeof(msg)),
                   SFT_ERR_TOO_LARGE);
  assert_int_equal(strlen(msg), sizeof(msg) - 1); /* cut, terminated */
}

static void test_discovery(void **state) {
  struct sftd_local l[SFTD_IFADDRS_MAX];
  size_t n = 999, n2;
  char buf[64];
  (void)state;
  assert_int_equal(sftd_ifaddrs_list(l, SFTD_IFADDRS_MAX, &n), 0);
  assert_true(n <= SFTD_IFADDRS_MAX);
  for (size_t i = 0; i < n; i++) {
    int fam = l[i].addr.ss_family;
    assert_true(fam == AF_INET || fam == AF_INET6);
    assert_true(l[i].ifname[0] != 0);
    assert_string_not_equal(l[i].ifname, "lo");
    assert_true(sftd_addr_format((const struct sockaddr *)&l[i].addr, buf,
                                 sizeof(buf)) > 0);
    assert_true(strncmp(buf, "127.", 4) != 0);
    assert_string_not_equal(buf, "[::1]");
    if (fam == AF_INET)
      assert_int_equal(l[i].addrlen, sizeof(struct sockaddr_in));
    else
      assert_int_equal(l[i].addrlen, sizeof(struct sockaddr_in6));
  }
  /* cap bounds the output; 0 is allowed. */
  assert_int_equal(sftd_ifaddrs_list(l, 1, &n2), 0);
  assert_true(n2 == (n > 0 ? 1u : 0u));
  assert_int_equal(sftd_ifaddrs_list(NULL, 0, &n2), 0);
  assert_int_equal(n2, 0);
  assert_int_equal(sftd_ifaddrs_list(l, 4, NULL), SFT_ERR_INVAL);
  /* Every discovered address is accepted by --via. */
  for (size_t i = 0; i < n && i < SFTD_VIA_MAX; i++) {
    struct sftd_local v[1];
    size_t nv;
    char msg[128];
    assert_true(sftd_addr_format((const struct sockaddr *)&l[i].addr, buf,
                                 sizeof(buf)) > 0);
    assert_int_equal(
        sftd_via_parse(buf, strlen(buf), l, n, v, 1, &nv, msg, sizeof(msg)), 0);
    assert_string_equal(v[0].ifname, l[i].ifname);
  }
}

/* A fake interface list: eth0 10.1.0.5 and 2001:db8::5, fe80::5 (scope 3),
 * wlan0 192.168.7.9. */
static size_t fake_ifs(struct sftd_local *l) {
  struct sftd_peer p[4];
  size_t n;
  assert_int_equal(parse("10.1.0.5,[2001:db8::5],[fe80::5],192.168.7.9", 1, p,
                         4, &n, NULL, 0),
                   0);
  for (size_t i = 0; i < 4; i++) {
    memset(&l[i], 0, sizeof(l[i]));
    l[i].addr = p[i].addr;
    l[i].addrlen = p[i].addrlen;
    if (l[i].addr.ss_family == AF_INET)
      ((struct sockaddr_in *)(void *)&l[i].addr)->sin_port = 0;
    else
      ((struct sockaddr_in6 *)(void *)&l[i].addr)->sin6_port = 0;
    snprintf(l[i].ifname, sizeof(l[i].ifname), "%s", i == 3 ? "wlan0" : "eth0");
  }
  ((struct sockaddr_in6 *)(void *)&l[2].addr)->sin6_scope_id = 3;
  return 4;
}

static void test_via(void **state) {
  struct sftd_local ifs[4], v[SFTD_VIA_MAX];
  size_t nifs = fake_ifs(ifs), n = 7;
  char msg[160];
  (void)state;
  assert_int_equal(sftd_via_parse("192.168.7.9, 127.0.0.1,::1,[2001:db8::5]",
                                  40, ifs, nifs, v, SFTD_VIA_MAX, &n, msg,
                                  sizeof(msg)),
                   0);
  assert_int_equal(n, 4);
  assert_string_equal(v[0].ifname, "wlan0");
  assert_string_equal(v[1].ifname, ""); /* loopback needs no interface */
  assert_int_equal(v[2].addr.ss_family, AF_INET6);
  assert_string_equal(v[3].ifname, "eth0");
  /* Link-local: scope taken from the interface. */
  assert_int_equal(
      sftd_via_parse("fe80::5", 7, ifs, nifs, v, 1, &n, msg, sizeof(msg)), 0);
  assert_int_equal(((struct sockaddr_in6 *)(void *)&v[0].addr)->sin6_scope_id,
                   3);
  /* Unknown address: error text names it. */
  assert_int_equal(sftd_via_parse("10.1.0.5,10.9.9.9", 17, ifs, nifs, v,
                                  SFTD_VIA_MAX, &n, msg, sizeof(msg)),
                   SFT_ERR_INVAL);
  assert_int_equal(n, 0);
  assert_string_equal(msg, "--via 10.9.9.9: not an address of an up local "
                           "interface");
  assert_int_equal(
      sftd_via_parse("10.1.0.5", 8, NULL, 0, v, 1, &n, msg, sizeof(msg)),
      SFT_ERR_INVAL); /* no interfaces known */
  assert_int_equal(
      sftd_via_parse("10.1.0.5:80", 11, ifs, nifs, v, 1, &n, msg, sizeof(msg)),
      SFT_ERR_INVAL);
  assert_non_null(strstr(msg, "port is not allowed"));
  assert_int_equal(
      sftd_via_parse("eth0", 4, ifs, nifs, v, 1, &n, msg, sizeof(msg)),
      SFT_ERR_INVAL);
  assert_int_equal(sftd_via_parse("", 0, ifs, nifs, v, 1, &n, msg, sizeof(msg)),
                   SFT_ERR_INVAL);
  assert_int_equal(
      sftd_via_parse("[]", 2, ifs, nifs, v, 1, &n, msg, sizeof(msg)),
      SFT_ERR_INVAL);
  assert_int_equal(sftd_via_parse("127.0.0.1,127.0.0.1", 19, ifs, nifs, v, 4,
                                  &n, msg, sizeof(msg)),
                   SFT_ERR_INVAL);
  assert_non_null(strstr(msg, "twice"));
  assert_int_equal(sftd_via_parse("127.0.0.1,127.0.0.2", 19, ifs, nifs, v, 1,
                                  &n, msg, sizeof(msg)),
                   SFT_ERR_TOO_LARGE);
}

static void test_build(void **state) {
  struct sftd_local ifs[4];
  struct sftd_peer p[SFTD_PEERS_MAX];
  struct sftd_path_spec ps[16];
  size_t nifs = fake_ifs(ifs), np, n, drop;
  char msg[256], b1[64], b2[64];
  (void)state;
  /* Two IPv4 peers x two IPv4 locals; the v6 peer gets its global local;
   * the name is skipped (unresolved). Round-robin order. */
  assert_int_equal(parse("203.0.113.1:5000,198.51.100.2:6000,[2001:db8::9]:7,"
                         "peer.example",
                         5000, p, SFTD_PEERS_MAX, &np, NULL, 0),
                   0);
  assert_int_equal(
      sftd_paths_build(p, np, ifs, nifs, ps, 16, &n, &drop, msg, sizeof(msg)),
      0);
  assert_int_equal(n, 5);
  assert_int_equal(drop, 0);
  assert_non_null(strstr(msg, "peer.example skipped: not resolved"));
  static const char *want[5][2] = {{"10.1.0.5", "203.0.113.1:5000"},
                                   {"10.1.0.5", "198.51.100.2:6000"},
                                   {"[2001:db8::5]", "[2001:db8::9]:7"},
                                   {"192.168.7.9", "203.0.113.1:5000"},
                                   {"192.168.7.9", "198.51.100.2:6000"}};
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(ps[i].has_local, 1);
    assert_true(sftd_addr_format((const struct sockaddr *)&ps[i].local.addr, b1,
                                 sizeof(b1)) > 0);
    assert_true(sftd_addr_format((const struct sockaddr *)&ps[i].peer, b2,
                                 sizeof(b2)) > 0);
    assert_string_equal(b1, want[i][0]);
    assert_string_equal(b2, want[i][1]);
  }
  assert_int_equal(ps[2].peer_index, 2);
  /* Bounded: cap 3 keeps the first round, drops the rest. */
  assert_int_equal(
      sftd_paths_build(p, np, ifs, nifs, ps, 3, &n, &drop, NULL, 0), 0);
  assert_int_equal(n, 3);
  assert_int_equal(drop, 2);
  /* No locals: one wildcard path per resolved peer. */
  assert_int_equal(
      sftd_paths_build(p, np, NULL, 0, ps, 16, &n, NULL, msg, sizeof(msg)), 0);
  assert_int_equal(n, 3);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(ps[i].has_local, 0);
  /* Loopback peer with only non-loopback locals: no path, clear message. */
  assert_int_equal(parse("127.0.0.1:5000", 5000, p, 8, &np, NULL, 0), 0);
  assert_int_equal(
      sftd_paths_build(p, np, ifs, nifs, ps, 16, &n, NULL, msg, sizeof(msg)),
      SFT_ERR_NOT_FOUND);
  assert_int_equal(n, 0);
  assert_non_null(strstr(msg, "127.0.0.1 skipped: no usable local"));
  /* Link-local peer: only the link-local local, scope copied over. */
  assert_int_equal(parse("[fe80::9]:5000", 5000, p, 8, &np, NULL, 0), 0);
  assert_int_equal(
      sftd_paths_build(p, np, ifs, nifs, ps, 16, &n, NULL, msg, sizeof(msg)),
      0);
  assert_int_equal(n, 1);
  assert_int_equal(((struct sockaddr_in6 *)(void *)&ps[0].peer)->sin6_scope_id,
                   3);
  /* Nothing at all. */
  assert_int_equal(
      sftd_paths_build(p, 0, ifs, nifs, ps, 16, &n, NULL, msg, sizeof(msg)),
      SFT_ERR_NOT_FOUND);
  assert_int_equal(
      sftd_paths_build(p, np, ifs, nifs, ps, 16, NULL, NULL, NULL, 0),
      SFT_ERR_INVAL);
  /* Format helper bounds. */
  assert_int_equal(
      sftd_addr_format((const struct sockaddr *)&ifs[1].addr, b1, 4),
      SFT_ERR_NOSPACE);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_peerlist_good), cmocka_unit_test(test_peerlist_bad),
      cmocka_unit_test(test_discovery),     cmocka_unit_test(test_via),
      cmocka_unit_test(test_build),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
