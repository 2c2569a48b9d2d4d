/*
 * sft send / sft recv / sft id / sft trust: the one-shot transfer commands,
 * on top of the daemon's public API (daemon/sftd.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apiclient.h"
#include "cli.h"
#include "daemon/config.h"
#include "daemon/paths.h"
#include "daemon/sftd.h"
#include "progress.h"
#include "sft/limits.h"

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Maps an engine error to the documented exit code. */
static int exit_code(int err) {
  switch (err) {
  case 0:
    return SFT_EXIT_OK;
  case SFT_ERR_INVAL:
    return SFT_EXIT_USAGE;
  case SFT_ERR_DIGEST:
    return SFT_EXIT_VERIFY;
  case SFT_ERR_AUTH:
    return SFT_EXIT_AUTH;
  case SFT_ERR_TIMEOUT:
  case SFT_ERR_REFUSED:
  case SFT_ERR_CLOSED:
  case SFT_ERR_VERSION:
    return SFT_EXIT_NETWORK;
  case SFT_ERR_EXISTS:
  case SFT_ERR_NOSPACE:
  case SFT_ERR_TOO_LARGE:
  case SFT_ERR_PATH:
    return SFT_EXIT_REFUSED;
  case SFT_ERR_CANCELLED:
    return SFT_EXIT_CANCELLED;
  default:
    return SFT_EXIT_FAILURE;
  }
}

/* "host:port", "[v6]:port", ":port" (host = |defhost|). */
static int parse_hostport(const char *s, const char *defhost, char *host,
                          size_t cap, uint16_t *port) {
  const char *colon;
  unsigned long p;
  char *end;
  size_t hl;
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (!rb || rb[1] != ':')
      return -1;
    hl = (size_t)(rb - s - 1);
    if (hl == 0 || hl >= cap)
      return -1;
    memcpy(host, s + 1, hl);
    host[hl] = 0;
    colon = rb + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon)
      return -1;
    hl = (size_t)(colon - s);
    if (hl >= cap)
      return -1;
    if (hl == 0) {
      if (!defhost)
        return -1;
      snprintf(host, cap, "%s", defhost);
    } else {
      memcpy(host, s, hl);
      host[hl] = 0;
    }
  }
  p = strtoul(colon + 1, &end, 10);
  if (!colon[1] || *end || p > 65535)
    return -1;
  *port = (uint16_t)p;
  return 0;
}

static int load_node(const char *data_dir, struct sftd_node *node) {
  char why[1024];
  int rv = sftd_node_load(data_dir, node, why, sizeof(why));
  if (rv)
    cli_error("%s", why);
  return rv;
}

/* A decimal number in [lo, hi] (the whole text). 0 or -1. */
static int parse_num(const char *s, unsigned long lo, unsigned long hi,
                     unsigned long *out) {
  char *end = NULL;
  unsigned long v;
  if (!*s || *s == '-')
    return -1;
  v = strtoul(s, &end, 10);
  if (*end || v < lo || v > hi)
    return -1;
  *out = v;
  return 0;
}

static int parse_transport(const char *s, int *out) {
  if (!strcmp(s, "auto"))
    *out = SFTD_TRANSPORT_ANY;
  else if (!strcmp(s, "quic"))
    *out = SFTD_TRANSPORT_QUIC_ONLY;
  else if (!strcmp(s, "tcp"))
    *out = SFTD_TRANSPORT_TCP_ONLY;
  else {
    cli_error("--transport must be quic, tcp or auto, not '%s'", s);
    return -1;
  }
  return 0;
}

static int parse_packet_fec(const char *s, int *out) {
  if (!strcmp(s, "auto"))
    *out = SFTD_PFEC_AUTO;
  else if (!strcmp(s, "on"))
    *out = SFTD_PFEC_ON;
  else if (!strcmp(s, "off"))
    *out = SFTD_PFEC_OFF;
  else {
    cli_error("--packet-fec must be auto, on or off, not '%s'", s);
    return -1;
  }
  return 0;
}

/* ---- event rendering --------------------------------------------------------
 */

struct ui {
  struct progress pr;
  int json;
  const char *verb; /* "sent" / "received" */
};

/* A JSON event with one string member: {"event":EVENT,"KEY":"VALUE"}. */
static void json_event1(struct ui *u, const char *event, const char *key,
                        const char *value) {
  char q[2048], fields[2200];
  snprintf(fields, sizeof(fields), "\"%s\":%s", key,
           json_quote(q, sizeof(q), value ? value : ""));
  progress_event(&u->pr, event, fields);
}

static void on_event(const struct sftd_event *ev, void *ud) {
  struct ui *u = ud;
  char q[SFT_MAX_NAME * 6 + 8], q2[2048], size[32];
  switch (ev->type) {
  case SFTD_EV_PROGRESS: {
    struct progress_snapshot s = {
        .bytes_done = ev->p.bytes_done,
        .bytes_total = ev->p.bytes_total,
        .chunks_done = ev->p.chunks_done,
        .chunks_total = ev->p.chunks_total,
        .chunks_rebuilt = ev->p.chunks_rebuilt,
        .parity_sent = ev->p.parity_sent,
        .pkt_parity_sent = ev->p.pkt_parity_sent,
        .pkts_rebuilt = ev->p.pkts_rebuilt,
        .links_up = ev->p.links_up,
        .files_done = ev->p.files_done,
        .files_total = ev->p.files_total,
        .rtt_ms = ev->p.rtt_ms,
        .loss = ev->p.loss,
        .npaths = ev->p.npaths,
        .paths = ev->p.paths,
    };
    progress_update(&u->pr, &s, mono_ns(), 0);
    break;
  }
  case SFTD_EV_LISTENING:
    if (u->json) {
      char fields[512];
      snprintf(fields, sizeof(fields), "\"address\":%s,\"port\":%u",
               json_quote(q2, sizeof(q2), ev->text), ev->port);
      progress_event(&u->pr, "listening", fields);
    } else {
      printf("listening on %s\n", ev->text);
      fflush(stdout);
    }
    break;
  case SFTD_EV_CONNECTED:
    if (u->json) {
      char fields[2300];
      snprintf(fields, sizeof(fields), "\"peer\":%s,\"session_id\":\"%s\"",
               json_quote(q2, sizeof(q2), ev->text ? ev->text : ""),
               ev->session_hex);
      progress_event(&u->pr, "connected", fields);
    }
    break;
  case SFTD_EV_PEER_NEW:
    progress_clear(&u->pr);
    if (u->json) {
      json_event1(u, "peer_recorded", "peer", ev->text);
    } else {
      fprintf(stderr,
              "sft: first contact with this receiver; its identity %s is now "
              "recorded in known_peers\n",
              ev->text);
    }
    break;
  case SFTD_EV_FILE_START:
    if (u->json) {
      char fields[SFT_MAX_NAME * 6 + 64];
      snprintf(fields, sizeof(fields), "\"name\":%s,\"size\":%" PRIu64,
               json_quote(q, sizeof(q), ev->name), ev->size);
      progress_event(&u->pr, "file_start", fields);
    }
    break;
  case SFTD_EV_FILE_DONE:
    if (u->json) {
      char fields[SFT_MAX_NAME * 6 + 160];
      snprintf(fields, sizeof(fields),
               "\"name\":%s,\"size\":%" PRIu64 ",\"root\":\"%s\"",
               json_quote(q, sizeof(q), ev->name), ev->size, ev->root_hex);
      progress_event(&u->pr, "file_done", fields);
    } else if (u->pr.mode == PROGRESS_TTY) {
      progress_clear(&u->pr);
      fmt_bytes(size, sizeof(size), (double)ev->size);
      fprintf(u->pr.out, "%s %s (%s)\n", u->verb, ev->name, size);
    }
    break;
  case SFTD_EV_FILE_FAILED:
    if (u->json) {
      char fields[SFT_MAX_NAME * 6 + 2200];
      snprintf(fields, sizeof(fields), "\"name\":%s,\"error\":%s",
               json_quote(q, sizeof(q), ev->name),
               json_quote(q2, sizeof(q2), ev->text ? ev->text : ""));
      progress_event(&u->pr, "file_failed", fields);
    } else {
      progress_clear(&u->pr);
      fprintf(stderr, "sft: %s: %s\n", ev->name, ev->text ? ev->text : "");
    }
    break;
  case SFTD_EV_WARN:
    if (u->json) {
      json_event1(u, "warning", "message", ev->text);
    } else {
      progress_clear(&u->pr);
      fprintf(stderr, "sft: warning: %s\n", ev->text);
    }
    break;
  case SFTD_EV_LINK_DOWN:
    if (u->json) {
      char fields[2400];
      snprintf(fields, sizeof(fields),
               "\"message\":%s,\"links_up\":%u,\"retry_ms\":%" PRIu64,
               json_quote(q2, sizeof(q2), ev->text ? ev->text : ""), ev->port,
               ev->size);
      progress_event(&u->pr, "link_down", fields);
    } else {
      progress_clear(&u->pr);
      if (ev->port)
        fprintf(stderr, "sft: a connection was lost (%s); %u still up\n",
                ev->text, ev->port);
      else if (ev->size)
        fprintf(stderr, "sft: connection lost (%s); reconnecting in %.1f s\n",
                ev->text, (double)ev->size / 1000);
      else
        fprintf(stderr, "sft: connection lost (%s)\n", ev->text);
    }
    break;
  case SFTD_EV_LINK_UP:
    if (u->json) {
      char fields[64];
      snprintf(fields, sizeof(fields), "\"links_up\":%u", ev->port);
      progress_event(&u->pr, "link_up", fields);
    }
    break;
  case SFTD_EV_FALLBACK:
    if (u->json) {
      json_event1(u, "fallback", "message", ev->text);
    } else {
      progress_clear(&u->pr);
      fprintf(stderr, "sft: %s\n", ev->text);
    }
    break;
  case SFTD_EV_REFUSED_PEER:
    if (u->json) {
      json_event1(u, "peer_refused", "peer", ev->text);
    } else {
      progress_clear(&u->pr);
      fprintf(stderr,
              "sft: refused a connection from %s: it is not in "
              "trusted_peers.\n     To accept it: sft trust %s  (or run "
              "`sft recv` with --accept-any)\n",
              ev->text, ev->text);
    }
    break;
  }
}

static void summary(struct ui *u, const struct sftd_result *res,
                    const char *verb) {
  char b[32], r[32];
  double rate = res->seconds > 0 ? (double)res->bytes / res->seconds : 0;
  progress_clear(&u->pr);
  if (u->json) {
    char fields[2400], q[2200];
    snprintf(fields, sizeof(fields),
             "\"ok\":%s,\"files_ok\":%" PRIu64 ",\"files_failed\":%" PRIu64
             ",\"files_refused\":%" PRIu64 ",\"bytes\":%" PRIu64
             ",\"seconds\":%.3f,\"rate_bps\":%.0f,\"chunks_sent\":%" PRIu64
             ",\"chunks_resent\":%" PRIu64 ",\"reconnects\":%" PRIu64
             ",\"parity_sent\":%" PRIu64 ",\"chunks_rebuilt\":%" PRIu64
             ",\"pkt_parity_sent\":%" PRIu64 ",\"pkts_rebuilt\":%" PRIu64
             ",\"error\":%s",
             res->err ? "false" : "true", res->files_ok, res->files_failed,
             res->files_refused, res->bytes, res->seconds, rate * 8,
             res->chunks_sent, res->chunks_resent, res->reconnects,
             res->parity_sent, res->chunks_rebuilt, res->pkt_parity_sent,
             res->pkts_rebuilt,
             json_quote(q, sizeof(q), res->err ? res->why : ""));
    progress_event(&u->pr, "summary", fields);
    return;
  }
  fmt_bytes(b, sizeof(b), (double)res->bytes);
  fmt_rate(r, sizeof(r), rate);
  printf("%s %" PRIu64 " file(s), %s in %.2f s (%s), verified", verb,
         res->files_ok, b, res->seconds, r);
  if (res->parity_sent)
    printf("; %" PRIu64 " parity chunks sent", res->parity_sent);
  if (res->chunks_rebuilt)
    printf("; %" PRIu64 " chunks rebuilt from parity", res->chunks_rebuilt);
  if (res->pkt_parity_sent)
    printf("; %" PRIu64 " parity packets sent", res->pkt_parity_sent);
  if (res->pkts_rebuilt)
    printf("; %" PRIu64 " packets rebuilt from parity", res->pkts_rebuilt);
  if (res->reconnects)
    printf("; %" PRIu64 " reconnect(s)", res->reconnects);
  printf("\n");
}

/* ---- sft send --------------------------------------------------------------
 */

/* Checks a --via list against this host's up interfaces (loopback is always
 * accepted); on error prints why, with the addresses that would do. */
static int check_via(const char *via) {
  struct sftd_local ifs[SFTD_IFADDRS_MAX], out[SFTD_VIA_MAX];
  size_t nifs = 0, n = 0;
  char msg[300], list[400];
  size_t used = 0;
  if (sftd_ifaddrs_list(ifs, SFTD_IFADDRS_MAX, &nifs))
    nifs = 0;
  if (!sftd_via_parse(via, strlen(via), ifs, nifs, out, SFTD_VIA_MAX, &n, msg,
                      sizeof(msg)))
    return 0;
  if (!strstr(msg, "local interface")) {
    cli_error("%s", msg);
    return -1;
  }
  list[0] = 0;
  for (size_t i = 0; i < nifs && used + 2 < sizeof(list); i++) {
    char a[INET6_ADDRSTRLEN + 8];
    if (sftd_addr_format((const struct sockaddr *)&ifs[i].addr, a, sizeof(a)) <
        0)
      continue;
    int k =
        snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "", a);
    if (k < 0 || (size_t)k >= sizeof(list) - used)
      break;
    used += (size_t)k;
  }
  cli_error("%s (local addresses: %s%sloopback)", msg, list, used ? ", " : "");
  return -1;
}

static void send_usage(FILE *f) {
  fprintf(f,
          "usage: sft send PATH... HOST:PORT [options]\n"
          "Sends files and directories (recursively) to `sft recv` on "
          "HOST:PORT.\n"
          "HOST1:PORT,HOST2:PORT... names several addresses of the same "
          "receiver:\none connection per path, used at once, with "
          "failover.\n\n"
          "  --peer-id ID       the receiver's identity (SFT1-...); without "
          "it the\n"
          "                     first contact is trusted and recorded in "
          "known_peers\n"
          "  --priority CLASS   critical, high or normal (default)\n"
          "  --chunk-size SIZE  e.g. 256K, 1M (default 1M)\n"
          "  --cc NAME          congestion controller: bbr2 (default), bbr, "
          "cubic, reno\n"
          "  --packet-fec MODE  parity packets under QUIC: auto (default: on "
          "while\n"
          "                     packet loss is high), on (always), off\n"
          "  --bwlimit RATE     at most RATE bits/s (k, M, G: powers of 1000; "
          "e.g. 50M)\n"
          "  --transport T      quic, tcp, or auto (default: QUIC, TCP+TLS "
          "if no QUIC\n"
          "                     handshake completes within 3 s)\n"
          "  --fec K+M|auto|off Reed-Solomon stripes of K data + M parity\n"
          "                     chunks (default auto: 10+3, parity sent as\n"
          "                     measured loss demands; off: none)\n"
          "  --conns N          parallel connections (1-8, default 1); "
          "each has its\n"
          "                     own congestion control: helps on lossy "
          "long links\n"
          "  --retries N        reconnect attempts after a lost connection "
          "(default 10,\n"
          "                     backoff 1 s doubling to 30 s; 0 = none)\n"
          "  --via ADDR[,ADDR]  send from these local addresses (IPv4/IPv6 "
          "of up\n"
          "                     interfaces, or loopback): one path per "
          "receiver\n"
          "                     address x local address of the same family\n"
          "  --json             one JSON event per line on stdout\n"
          "  --data-dir DIR     node identity and trust files (default "
          "$SFT_DATA_DIR\n"
          "                     or ~/.local/share/sft)\n"
          "  --no-daemon        send from this process even if `sft daemon` "
          "runs\n"
          "  --api HOST:PORT    the daemon's API (default 127.0.0.1:8080)\n"
          "When a daemon with this data directory is running, it takes the "
          "transfer.\n");
}

int cmd_send_main(int argc, char **argv) {
  static const struct option opts[] = {
      {"peer-id", required_argument, 0, 'p'},
      {"priority", required_argument, 0, 'P'},
      {"chunk-size", required_argument, 0, 'c'},
      {"cc", required_argument, 0, 'C'},
      {"packet-fec", required_argument, 0, 'Q'},
      {"json", no_argument, 0, 'j'},
      {"data-dir", required_argument, 0, 'd'},
      {"no-daemon", no_argument, 0, 'N'},
      {"bwlimit", required_argument, 0, 'B'},
      {"transport", required_argument, 0, 'T'},
      {"api", required_argument, 0, 'A'},
      {"conns", required_argument, 0, 'n'},
      {"retries", required_argument, 0, 'R'},
      {"fec", required_argument, 0, 'F'},
      {"via", required_argument, 0, 'V'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  struct sftd_send_opts o;
  int no_daemon = 0;
  const char *api_addr = NULL, *peer_id_text = NULL, *prio_text = "normal";
  const char *bwlimit_text = NULL, *fec_text = NULL;
  struct sftd_node node;
  struct sftd_result res;
  struct ui u;
  const char *data_dir = NULL;
  uint8_t peer_fp[SFTD_FP_LEN];
  char host[256];
  int c, json = 0, rv;

  memset(&o, 0, sizeof(o));
  o.priority = SFTD_PRIO_NORMAL;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'p':
      rv = sftd_fp_parse(optarg, strlen(optarg), peer_fp);
      if (rv) {
        cli_error("--peer-id '%s' is not a valid identity%s (it looks like "
                  "SFT1-XXXXXXX-...; `sft id` prints it on the receiver)",
                  optarg,
                  rv == SFT_ERR_DIGEST ? " (check characters do not "
                                         "match: a typo?)"
                                       : "");
        return SFT_EXIT_USAGE;
      }
      o.peer_fp = peer_fp;
      peer_id_text = optarg;
      break;
    case 'P':
      if (!strcmp(optarg, "critical"))
        o.priority = SFTD_PRIO_CRITICAL;
      else if (!strcmp(optarg, "high"))
        o.priority = SFTD_PRIO_HIGH;
      else if (!strcmp(optarg, "normal"))
        o.priority = SFTD_PRIO_NORMAL;
      else {
        cli_error("--priority must be critical, high or normal, not '%s'",
                  optarg);
        return SFT_EXIT_USAGE;
      }
      prio_text = optarg;
      break;
    case 'c': {
      unsigned long long v;
      if (cli_parse_size(optarg, &v) || v < SFT_CHUNK_SIZE_MIN ||
          v > SFT_CHUNK_SIZE_MAX) {
        cli_error("--chunk-size '%s' must be a size between 4K and 16M",
                  optarg);
        return SFT_EXIT_USAGE;
      }
      o.chunk_size = (uint32_t)v;
      break;
    }
    case 'C':
      o.cc = optarg;
      break;
    case 'Q':
      if (parse_packet_fec(optarg, &o.packet_fec))
        return SFT_EXIT_USAGE;
      break;
    case 'j':
      json = 1;
      break;
    case 'd':
      data_dir = optarg;
      break;
    case 'N':
      no_daemon = 1;
      break;
    case 'T':
      if (parse_transport(optarg, &o.transport))
        return SFT_EXIT_USAGE;
      break;
    case 'B': {
      const char *why = NULL;
      if (sftd_parse_rate(optarg, &o.bwlimit_bps, &why)) {
        cli_error("--bwlimit '%s': %s (e.g. 10M = 10 Mbit/s)", optarg,
                  why ? why : "not a rate");
        return SFT_EXIT_USAGE;
      }
      bwlimit_text = optarg;
      break;
    }
    case 'A':
      api_addr = optarg;
      break;
    case 'n': {
      unsigned long v;
      if (parse_num(optarg, 1, SFTD_LINKS_MAX, &v)) {
        cli_error("--conns '%s' must be a number from 1 to %u", optarg,
                  SFTD_LINKS_MAX);
        return SFT_EXIT_USAGE;
      }
      o.conns = (unsigned)v;
      break;
    }
    case 'R': {
      unsigned long v;
      if (parse_num(optarg, 0, 1000, &v)) {
        cli_error("--retries '%s' must be a number from 0 to 1000", optarg);
        return SFT_EXIT_USAGE;
      }
      o.retries = v ? (int)v : -1;
      break;
    }
    case 'F': {
      const char *why = NULL;
      if (sftd_parse_fec(optarg, &o.fec_k, &o.fec_m, &o.fec_off, &why)) {
        cli_error("--fec '%s': %s", optarg, why);
        return SFT_EXIT_USAGE;
      }
      fec_text = optarg;
      break;
    }
    case 'V':
      /* "" is no --via (the kernel picks the source), as in the API. */
      if (*optarg && check_via(optarg))
        return SFT_EXIT_USAGE;
      o.via = *optarg ? optarg : NULL;
      break;
    case 'h':
      send_usage(stdout);
      return SFT_EXIT_OK;
    default:
      send_usage(stderr);
      return SFT_EXIT_USAGE;
    }
  }
  if (argc - optind < 2) {
    cli_error("send needs at least one PATH and the receiver's HOST:PORT");
    send_usage(stderr);
    return SFT_EXIT_USAGE;
  }
  {
    /* HOST:PORT, or several addresses of the receiver (one path each):
     * HOST1:PORT,HOST2:PORT... */
    char first[600];
    const char *last = argv[argc - 1], *comma = strchr(last, ',');
    size_t n = comma ? (size_t)(comma - last) : strlen(last);
    if (n >= sizeof(first) ||
        (memcpy(first, last, n), first[n] = 0,
         parse_hostport(first, NULL, host, sizeof(host), &o.port)) ||
        o.port == 0) {
      cli_error("'%s' is not HOST:PORT[,HOST:PORT...] (the last argument "
                "names the receiver, e.g. 192.0.2.7:5000)",
                last);
      return SFT_EXIT_USAGE;
    }
    if (comma)
      o.more_peers = comma + 1;
  }
  if (!no_daemon) {
    /* A running daemon (its API answering, its token readable) takes the
     * transfer: it survives this command, and shares the link by priority
     * with the daemon's other transfers. */
    struct api a;
    if (api_init(&a, api_addr, data_dir) == 0 && api_alive(&a)) {
      json_t *req = json_object(), *paths = json_array();
      int rc;
      for (int i = optind; i < argc - 1; i++) {
        char *rp = realpath(argv[i], NULL);
        if (!rp) {
          cli_error("%s: %s", argv[i], strerror(errno));
          json_decref(req);
          json_decref(paths);
          return SFT_EXIT_FAILURE;
        }
        json_array_append_new(paths, json_string(rp));
        free(rp);
      }
      json_object_set_new(req, "paths", paths);
      json_object_set_new(req, "peer", json_string(argv[argc - 1]));
      json_object_set_new(req, "priority", json_string(prio_text));
      if (peer_id_text)
        json_object_set_new(req, "peer_id", json_string(peer_id_text));
      if (o.chunk_size)
        json_object_set_new(req, "chunk_size", json_integer(o.chunk_size));
      if (bwlimit_text)
        json_object_set_new(req, "bwlimit", json_string(bwlimit_text));
      if (fec_text)
        json_object_set_new(req, "fec", json_string(fec_text));
      if (o.via)
        json_object_set_new(req, "via", json_string(o.via));
      rc = cli_send_via_daemon(&a, req, json);
      json_decref(req);
      return rc;
    }
    if (api_addr) {
      cli_error("%s", a.why[0] ? a.why : "the daemon does not answer");
      return SFT_EXIT_NETWORK;
    }
  }
  if (load_node(data_dir, &node))
    return SFT_EXIT_FAILURE;
  o.node = &node;
  o.host = host;
  o.paths = (const char *const *)&argv[optind];
  o.npaths = (size_t)(argc - 1 - optind);
  memset(&u, 0, sizeof(u));
  u.json = json;
  u.verb = "sent";
  progress_init(&u.pr, json ? stdout : stderr, json, mono_ns());
  o.on_event = on_event;
  o.ud = &u;
  rv = sftd_send(&o, &res);
  if (rv) {
    progress_clear(&u.pr);
    if (json)
      summary(&u, &res, "sent");
    cli_error("%s", res.why[0] ? res.why : sft_strerror(rv));
    return exit_code(rv);
  }
  summary(&u, &res, "sent");
  return SFT_EXIT_OK;
}

/* ---- sft recv --------------------------------------------------------------
 */

static void recv_usage(FILE *f) {
  fprintf(f, "usage: sft recv --dir DIR [options]\n"
             "Receives files sent with `sft send` into DIR.\n\n"
             "  --dir DIR          download directory (must exist)\n"
             "  --listen ADDR:PORT address to listen on (default 0.0.0.0:5000; "
             "port 0 = any)\n"
             "  --once             exit after the first transfer session\n"
             "  --accept-any       accept senders not listed in trusted_peers\n"
             "  --overwrite        replace existing files\n"
             "  --max-size SIZE    refuse files larger than SIZE\n"
             "  --linger SEC       keep an interrupted transfer this long for "
             "its sender\n"
             "                     to reconnect (default 600)\n"
             "  --transport T      listen on quic (UDP), tcp, or auto (both, "
             "default)\n"
             "  --cc NAME          congestion controller (bbr2, bbr, cubic, "
             "reno)\n"
             "  --packet-fec MODE  parity packets under QUIC: auto (default), "
             "on, off\n"
             "  --json             one JSON event per line on stdout\n"
             "  --data-dir DIR     node identity and trust files\n");
}

int cmd_recv_main(int argc, char **argv) {
  static const struct option opts[] = {
      {"dir", required_argument, 0, 'D'},
      {"listen", required_argument, 0, 'l'},
      {"once", no_argument, 0, 'o'},
      {"accept-any", no_argument, 0, 'a'},
      {"overwrite", no_argument, 0, 'w'},
      {"max-size", required_argument, 0, 'm'},
      {"transport", required_argument, 0, 'T'},
      {"cc", required_argument, 0, 'C'},
      {"packet-fec", required_argument, 0, 'Q'},
      {"json", no_argument, 0, 'j'},
      {"data-dir", required_argument, 0, 'd'},
      {"linger", required_argument, 0, 'L'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  struct sftd_recv_opts o;
  struct sftd_node node;
  struct sftd_result res;
  struct ui u;
  const char *data_dir = NULL, *listen = "0.0.0.0:5000";
  char host[256];
  int c, json = 0, rv;

  memset(&o, 0, sizeof(o));
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'D':
      o.dir = optarg;
      break;
    case 'l':
      listen = optarg;
      break;
    case 'o':
      o.once = 1;
      break;
    case 'a':
      o.accept_any = 1;
      break;
    case 'w':
      o.overwrite = 1;
      break;
    case 'T':
      if (parse_transport(optarg, &o.transport))
        return SFT_EXIT_USAGE;
      break;
    case 'm': {
      unsigned long long v;
      if (cli_parse_size(optarg, &v) || v == 0) {
        cli_error("--max-size '%s' is not a size (e.g. 10G)", optarg);
        return SFT_EXIT_USAGE;
      }
      o.max_size = v;
      break;
    }
    case 'C':
      o.cc = optarg;
      break;
    case 'Q':
      if (parse_packet_fec(optarg, &o.packet_fec))
        return SFT_EXIT_USAGE;
      break;
    case 'j':
      json = 1;
      break;
    case 'd':
      data_dir = optarg;
      break;
    case 'L': {
      unsigned long v;
      if (parse_num(optarg, 1, 86400, &v)) {
        cli_error("--linger '%s' must be seconds from 1 to 86400", optarg);
        return SFT_EXIT_USAGE;
      }
      o.linger_ms = (uint32_t)v * 1000u;
      break;
    }
    case 'h':
      recv_usage(stdout);
      return SFT_EXIT_OK;
    default:
      recv_usage(stderr);
      return SFT_EXIT_USAGE;
    }
  }
  if (optind != argc) {
    cli_error("unexpected argument '%s'", argv[optind]);
    recv_usage(stderr);
    return SFT_EXIT_USAGE;
  }
  if (!o.dir) {
    cli_error("recv needs --dir DIR (where received files go)");
    return SFT_EXIT_USAGE;
  }
  if (parse_hostport(listen, "0.0.0.0", host, sizeof(host), &o.listen_port)) {
    cli_error("--listen '%s' is not ADDR:PORT (e.g. 0.0.0.0:5000 or :5000)",
              listen);
    return SFT_EXIT_USAGE;
  }
  if (load_node(data_dir, &node))
    return SFT_EXIT_FAILURE;
  o.node = &node;
  o.listen_addr = host;
  memset(&u, 0, sizeof(u));
  u.json = json;
  u.verb = "received";
  progress_init(&u.pr, json ? stdout : stderr, json, mono_ns());
  o.on_event = on_event;
  o.ud = &u;
  if (!json)
    fprintf(stderr, "sft: this receiver is %s\n", node.fp_text);
  rv = sftd_recv(&o, &res);
  if (rv) {
    progress_clear(&u.pr);
    if (json)
      summary(&u, &res, "received");
    cli_error("%s", res.why[0] ? res.why : sft_strerror(rv));
    return exit_code(rv);
  }
  summary(&u, &res, "received");
  return SFT_EXIT_OK;
}

/* ---- sft id / sft trust ----------------------------------------------------
 */

int cmd_id_main(int argc, char **argv) {
  static const struct option opts[] = {{"data-dir", required_argument, 0, 'd'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *data_dir = NULL;
  struct sftd_node node;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (c == 'd') {
      data_dir = optarg;
    } else if (c == 'h') {
      printf("usage: sft id [--data-dir DIR]\nPrints this node's identity "
             "(creating it on first use).\n");
      return SFT_EXIT_OK;
    } else {
      return SFT_EXIT_USAGE;
    }
  }
  if (optind != argc) {
    cli_error("unexpected argument '%s'", argv[optind]);
    return SFT_EXIT_USAGE;
  }
  if (load_node(data_dir, &node))
    return SFT_EXIT_FAILURE;
  printf("%s\n", node.fp_text);
  return SFT_EXIT_OK;
}

int cmd_trust_main(int argc, char **argv) {
  static const struct option opts[] = {{"data-dir", required_argument, 0, 'd'},
                                       {"label", required_argument, 0, 'L'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *data_dir = NULL, *label = NULL;
  struct sftd_node node;
  uint8_t fp[SFTD_FP_LEN];
  char why[512];
  int c, rv;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (c == 'd') {
      data_dir = optarg;
    } else if (c == 'L') {
      label = optarg;
    } else if (c == 'h') {
      printf("usage: sft trust ID [--label TEXT] [--data-dir DIR]\nLets the "
             "sender with identity ID (SFT1-..., from `sft id` on the "
             "sender) send to this node's `sft recv`.\n");
      return SFT_EXIT_OK;
    } else {
      return SFT_EXIT_USAGE;
    }
  }
  if (argc - optind != 1) {
    cli_error("trust needs exactly one identity (SFT1-...)");
    return SFT_EXIT_USAGE;
  }
  rv = sftd_fp_parse(argv[optind], strlen(argv[optind]), fp);
  if (rv) {
    cli_error("'%s' is not a valid identity%s", argv[optind],
              rv == SFT_ERR_DIGEST ? " (check characters do not match: a "
                                     "typo?)"
                                   : "");
    return SFT_EXIT_USAGE;
  }
  if (load_node(data_dir, &node))
    return SFT_EXIT_FAILURE;
  rv = sftd_trust_add(&node, fp, label, why, sizeof(why));
  if (rv == SFT_ERR_EXISTS) {
    printf("%s is already trusted\n", argv[optind]);
    return SFT_EXIT_OK;
  }
  if (rv) {
    cli_error("cannot add to trusted_peers: %s", why);
    return rv == SFT_ERR_INVAL ? SFT_EXIT_USAGE : SFT_EXIT_FAILURE;
  }
  printf("trusted %s\n", argv[optind]);
  return SFT_EXIT_OK;
}
