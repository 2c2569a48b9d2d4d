/*
 * The daemon's public API, used by the CLI (src/cli/ includes this header
 * and nothing else from src/daemon/). Today it offers the one-shot transfer
 * engine: `sftd_send` and `sftd_recv` each run their own libuv loop until
 * the transfer is over. Events (progress, files, warnings) are reported to
 * a callback on the loop thread.
 */
#ifndef SFTD_H
#define SFTD_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/identity.h" /* fingerprint text: sftd_fp_format/parse */
#include "sft/err.h"
#include "sft/path.h"
#include "sft/rate.h"

struct sft_manifest;
struct sft_metric;

#define SFTD_FP_TEXT_MAX SFTD_FP_TEXT_SIZE

struct sftd_store;

/* ---- node identity --------------------------------------------------- */

struct sftd_node {
  char data_dir[4096];
  char key_path[4096];
  char cert_path[4096];
  uint8_t fp[SFTD_FP_LEN];
  char fp_text[SFTD_FP_TEXT_MAX]; /* "SFT1-..." */
};

/* Resolves the data directory (|data_dir| if not NULL, else $SFT_DATA_DIR,
 * else ~/.local/share/sft), creates it (0700) and, on first use, the node's
 * key and self-signed certificate (0600). Fills |node|. On error |why|
 * (capacity |whylen|) says what failed. */
int sftd_node_load(const char *data_dir, struct sftd_node *node, char *why,
                   size_t whylen);

/* Adds |fp| (with an optional |label|) to the node's trusted_peers.
 * SFT_ERR_EXISTS if it is already there. */
int sftd_trust_add(const struct sftd_node *node, const uint8_t fp[SFTD_FP_LEN],
                   const char *label, char *why, size_t whylen);

/* Sender side, trust on first use: checks |fp| presented by host:port
 * against known_peers. 0: known and equal, or unknown (then *is_new = 1);
 * SFT_ERR_AUTH: known with another identity (refuse, warn loudly); other
 * errors: the file is unreadable or malformed. */
int sftd_node_check_known(const struct sftd_node *node, const char *host,
                          uint16_t port, const uint8_t fp[SFTD_FP_LEN],
                          int *is_new);
/* Records |fp| for host:port in known_peers. */
int sftd_node_add_known(const struct sftd_node *node, const char *host,
                        uint16_t port, const uint8_t fp[SFTD_FP_LEN]);
/* Receiver side: 0 if |fp| is in trusted_peers, SFT_ERR_NOT_FOUND if not,
 * another error if the file cannot be read. */
int sftd_node_trusted(const struct sftd_node *node,
                      const uint8_t fp[SFTD_FP_LEN]);

/* ---- events ------------------------------------------------------------ */

enum sftd_event_type {
  SFTD_EV_LISTENING,    /* receiver bound: .text = "ADDR:PORT", .port */
  SFTD_EV_CONNECTED,    /* handshake done: .text = peer fingerprint */
  SFTD_EV_PEER_NEW,     /* sender: first contact, peer recorded (TOFU) */
  SFTD_EV_FILE_START,   /* .name, .size */
  SFTD_EV_FILE_DONE,    /* .name, .size, .root_hex */
  SFTD_EV_FILE_FAILED,  /* .name, .err, .text (reason) */
  SFTD_EV_PROGRESS,     /* .p filled */
  SFTD_EV_WARN,         /* .text */
  SFTD_EV_REFUSED_PEER, /* receiver: a peer was refused (.text = its id) */
  SFTD_EV_FALLBACK,     /* sender: no QUIC handshake, trying TCP+TLS */
  SFTD_EV_LINK_DOWN,    /* sender: a connection of the session was lost;
                           .text why, .err, .port = connections still up;
                           .size = ms until the next attempt (0: none) */
  SFTD_EV_LINK_UP,      /* sender: a connection (re)joined the session;
                           .port = connections up */
};

/* One network path (connection) of an outgoing session, as last sampled. */
enum sftd_path_state { /* lib/path's statuses (sft_path_status_name) */
                       SFTD_PATH_ACTIVE =
                           SFT_PATH_ACTIVE, /* usable, preferred */
                       SFTD_PATH_DEGRADED =
                           SFT_PATH_DEGRADED, /* usable, loss > 20 % */
                       SFTD_PATH_FAILED =
                           SFT_PATH_FAILED, /* not used: loss > 50 %, silent
                                               for 3 PTO, or its connection is
                                               down (being reopened) */
};
#define SFTD_PATH_ADDR_MAX 128
struct sftd_path_stat {
  char peer[SFTD_PATH_ADDR_MAX]; /* "HOST:PORT" [" via LOCAL"] */
  int state;                     /* enum sftd_path_state */
  int up;                        /* its connection is established */
  double rtt_ms;                 /* smoothed RTT, 0 unknown */
  double loss;         /* windowed packet loss fraction, < 0 unknown */
  uint64_t rate_bps;   /* delivery rate, bits/s, 0 unknown */
  uint64_t bytes_sent; /* chunk bytes handed to this path */
  uint64_t changes;    /* state changes so far */
};

struct sftd_progress {
  uint64_t bytes_done, bytes_total;
  uint64_t chunks_done, chunks_total;
  uint64_t chunks_rebuilt;
  uint64_t chunks_resent;
  uint64_t parity_sent;
  uint64_t pkt_parity_sent; /* sender: parity packets (packet FEC) sent */
  uint64_t pkts_rebuilt;    /* receiver: packets rebuilt from them */
  uint64_t files_done, files_total;
  uint64_t links_up, reconnects;
  double rtt_ms;          /* smoothed RTT, 0 unknown */
  double loss;            /* fraction of packets lost, < 0 unknown */
  uint64_t chunks_queued; /* sender: chunks read and waiting for the wire */
  unsigned npaths;        /* sender: its paths (connections), in link order */
  struct sftd_path_stat paths[8];
};

struct sftd_event {
  enum sftd_event_type type;
  const char *name; /* file name (already validated/escaped as needed) */
  const char *text;
  uint64_t size;
  uint16_t port;
  int err; /* SFT_ERR_* for failures */
  char root_hex[65];
  char session_hex[33]; /* SFTD_EV_CONNECTED: the session id (hex) */
  struct sftd_progress p;
  /* sender, SFTD_EV_FILE_START: the file as offered (its geometry is then
   * fixed for the session) and the local path it is read from */
  uint64_t file_id;
  const struct sft_manifest *man;
  const char *path;
};

typedef void (*sftd_event_fn)(const struct sftd_event *ev, void *ud);

/* ---- one-shot transfers ------------------------------------------------ */

enum sftd_priority { SFTD_PRIO_CRITICAL = 0, SFTD_PRIO_HIGH, SFTD_PRIO_NORMAL };

/* Transports: auto = QUIC, falling back to TCP+TLS on the same port number
 * when no QUIC handshake completes within SFTD_FALLBACK_MS (UDP blocked). */
enum {
  SFTD_TRANSPORT_ANY = 0,
  SFTD_TRANSPORT_QUIC_ONLY = 1,
  SFTD_TRANSPORT_TCP_ONLY = 2
};
#define SFTD_FALLBACK_MS 3000

struct sftd_send_opts {
  const struct sftd_node *node;
  const char *host; /* numeric address or name */
  uint16_t port;
  const char *more_peers;   /* other addresses of the same receiver,
                               "HOST:PORT[,HOST:PORT...]" (multi-path:
                               one connection per path), or NULL */
  const char *via;          /* local addresses to send from, "ADDR[,ADDR]"
                               (numeric IPv4/IPv6, at most SFTD_VIA_MAX):
                               one path per peer address x local address;
                               NULL or "": the kernel picks the source */
  const char *const *paths; /* files and directories */
  size_t npaths;
  const uint8_t *peer_fp; /* pinned receiver identity, or NULL: TOFU */
  enum sftd_priority priority;
  uint32_t chunk_size;       /* 0: chosen by the tuning policy */
  uint64_t bwlimit_bps;      /* this transfer's limit, bits/s; 0: none */
  struct sftd_share *share;  /* the daemon's global limit, shared with
                                other transfers by priority class, or NULL */
  const char *cc;            /* congestion controller name, NULL: bbr2 */
  int transport;             /* SFTD_TRANSPORT_* */
  int packet_fec;            /* enum sftd_pfec_mode: packet FEC under QUIC */
  unsigned conns;            /* parallel connections (1..SFTD_LINKS_MAX;
                                0: 1) */
  int retries;               /* reconnect attempts per connection after a
                                loss, with exponential backoff; 0: the
                                default (SFTD_RETRIES_DEFAULT), < 0: none */
  int persistent;            /* 1: retry the first connection too (a
                                resumed session); 0: a first connection
                                that fails ends the session at once */
  uint32_t fec_k, fec_m;     /* Reed-Solomon stripe k data + m parity
                                chunks; k 0: 10+3. m parity chunks are
                                the most a stripe can get; how many are
                                sent proactively follows measured loss */
  int fec_off;               /* 1: no parity at all */
  const uint8_t *session_id; /* SFT_SESSION_ID_LEN bytes to resume a
                                session, or NULL: a new random id */
  /* A resumed session: the manifest file |file_id| was offered with
   * before (0), so it is offered with the same geometry; else non-zero.
   * NULL: none (a new session). */
  int (*offered_manifest)(void *ud, uint64_t file_id, struct sft_manifest *out);
  /* Histograms observed per data chunk delivered (its stream acknowledged
   * in full): seconds from stream open to acknowledgement, and bytes. NULL:
   * none. Loop thread only. */
  struct sft_metric *m_chunk_duration, *m_chunk_size;
  sftd_event_fn on_event;
  void *ud;
};

#define SFTD_LINKS_MAX 8
#define SFTD_RETRIES_DEFAULT 10

/* Result details for the CLI's messages and exit code. */
struct sftd_result {
  int err;        /* first fatal error, 0 if none */
  char why[1024]; /* human-readable explanation of err */
  uint64_t files_ok, files_failed, files_refused;
  uint64_t bytes; /* file bytes delivered and verified */
  uint64_t chunks_sent, chunks_resent, chunks_skipped;
  uint64_t parity_sent;    /* sender: parity chunks sent */
  uint64_t chunks_rebuilt; /* receiver: data chunks rebuilt from parity */
  uint64_t pkt_parity_sent; /* sender: parity packets sent under QUIC
                               (lib/pfec), counted each progress tick */
  uint64_t pkts_rebuilt;    /* receiver: QUIC packets rebuilt from them */
  double seconds;          /* wall time including connection set-up */
  int fell_back;           /* sent over TCP+TLS after QUIC failed */
  uint64_t reconnects;     /* connections re-established after a loss */
  uint8_t session_id[16];  /* the session's id (SFT_SESSION_ID_LEN) */
  char peer_fp_text[SFTD_FP_TEXT_MAX];
};

/* Sends every path to the receiver at host:port. Returns 0 when every file
 * was delivered and verified; otherwise the result says what failed:
 * SFT_ERR_AUTH (identity refused or mismatched), SFT_ERR_TIMEOUT /
 * SFT_ERR_REFUSED (nothing listens) / SFT_ERR_CLOSED / SFT_ERR_IO (network),
 * SFT_ERR_EXISTS / SFT_ERR_NOSPACE / SFT_ERR_TOO_LARGE / SFT_ERR_PATH (refused
 * by the receiver), SFT_ERR_DIGEST (verification), SFT_ERR_NOT_FOUND (a local
 * path). */
int sftd_send(const struct sftd_send_opts *o, struct sftd_result *res);

struct sftd_recv_opts {
  const struct sftd_node *node;
  const char *dir;          /* download directory (must exist) */
  const char *listen_addr;  /* numeric, e.g. "0.0.0.0" */
  uint16_t listen_port;     /* 0: ephemeral (reported by SFTD_EV_LISTENING) */
  int once;                 /* exit after the first session ends */
  int accept_any;           /* accept senders that are not trusted */
  int overwrite;            /* replace existing files */
  uint64_t max_size;        /* refuse files larger than this (0: no limit) */
  int transport;            /* SFTD_TRANSPORT_*: which listeners */
  int packet_fec;           /* enum sftd_pfec_mode: packet FEC under QUIC */
  struct sftd_store *store; /* the daemon's session store, or NULL: with
                               it, received chunks are committed in
                               batches (<= 100 ms) and ACKed only once
                               committed; files and part files survive a
                               restart and a reattaching sender resumes */
  uint32_t linger_ms;       /* keep an interrupted session (files, part
                               files) this long for its sender to come back;
                               0: SFTD_LINGER_MS_DEFAULT */
  const char *cc;
  sftd_event_fn on_event;
  void *ud;
};

#define SFTD_LINGER_MS_DEFAULT 600000u

/* Receives until interrupted (SIGINT/SIGTERM) or, with |once|, until the
 * first session ends. Returns 0 if every file of the (last) session was
 * received and verified. */
int sftd_recv(const struct sftd_recv_opts *o, struct sftd_result *res);

/* Parses a rate in bits per second: "10M" = 10,000,000 bit/s (k, M, G, T
 * are powers of 1000), "none" or "0" = unlimited. 0 or SFT_ERR_INVAL /
 * SFT_ERR_RANGE with a static reason in *why. */
int sftd_parse_rate(const char *s, uint64_t *bps, const char **why);

/* Parses an FEC setting: "auto" (k 0: 10+3, parity sent as loss demands),
 * "off" (no parity), or "K+M" (K 1..254 data and M 0..254 parity chunks per
 * stripe, K + M <= 255). 0, or SFT_ERR_INVAL with *why. */
int sftd_parse_fec(const char *s, uint32_t *k, uint32_t *m, int *off,
                   const char **why);

/* ---- the daemon -------------------------------------------------------- */

struct sftd_daemon_opts {
  const char *config_path; /* INI file, or NULL */
  const char *const *sets; /* "section.key=value" overrides */
  size_t nsets;
  char *const *envp;    /* environment for SFT_<SECTION>_<KEY> */
  const char *data_dir; /* --data-dir, or NULL */
  int print_config;     /* print the effective configuration and exit */
};

/* Runs the daemon until SIGINT/SIGTERM. Returns 0, or an error with |why|:
 * SFT_ERR_INVAL for a bad configuration (the message names the file, line
 * and reason), others for start-up failures. */
int sftd_daemon_run(const struct sftd_daemon_opts *o, char *why, size_t whylen);

#endif /* SFTD_H */
