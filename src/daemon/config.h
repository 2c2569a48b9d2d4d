/*
 * The daemon's configuration (`sft daemon --config FILE`).
 *
 * Loading order, each step overriding the one before:
 *   1. defaults                 sftd_config_defaults()
 *   2. the INI file (optional)  sftd_config_load_file() / _parse_buffer()
 *   3. environment              sftd_config_apply_env(): SFT_<SECTION>_<KEY>
 *   4. command-line overrides   sftd_config_set() / sftd_config_set_arg()
 *   5. cross-field checks       sftd_config_check()
 * sftd_config_load() runs the whole sequence. Every setting, its default
 * and its bounds are listed in docs/internals/config.md and etc/sft.conf.
 *
 * File syntax (a strict INI subset, parsed here by a bounded line parser
 * with no allocation; inih is not used so that every error can say why):
 *   - `[section]` headers; `key = value` lines; blank lines; comment lines
 *     whose first non-blank byte is '#' or ';'. There are NO inline
 *     comments: everything after '=' (trimmed) is the value.
 *   - A section may be reopened; a key set twice in one file is an error.
 *   - Lines end in LF or CRLF; a leading UTF-8 BOM is skipped. A line is at
 *     most SFTD_CFG_LINE_MAX bytes, a file at most SFTD_CFG_FILE_MAX bytes.
 *     NUL and other control bytes (except TAB) are refused.
 *
 * Errors stop loading and return SFT_ERR_INVAL (a bad setting or value) or
 * SFT_ERR_MALFORMED (file syntax: no '=', bad header, over-long line, NUL),
 * SFT_ERR_TOO_LARGE (file over 1 MiB), SFT_ERR_IO / SFT_ERR_NOT_FOUND (file
 * unreadable), with err->msg set to one line:
 *   <origin>: <what>: <reason>
 * where origin is "FILE:LINE" for the file, "environment SFT_X_Y" for the
 * environment and the caller's label (e.g. "--bwlimit") for overrides, e.g.
 *   sft.conf:12: parity_shards = 300: must be auto or 0..254 with
 *     data_shards + parity_shards <= 255
 * The daemon prints it and exits 2. On error the config may be partly
 * updated (the caller exits anyway).
 *
 * Not thread-safe; no global state. Values echoed in messages are cut at
 * 64 bytes and control bytes escaped.
 */
#ifndef SFTD_CONFIG_H
#define SFTD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sft/err.h"

#define SFTD_CFG_LINE_MAX 4096           /* bytes per line, without EOL */
#define SFTD_CFG_FILE_MAX (1024u * 1024) /* bytes per file */
#define SFTD_CFG_PATH_MAX 4096           /* path fields, with NUL */
/* Longest path value: "database_path = " + path must fit in one line, so
 * that a printed configuration always parses back. */
#define SFTD_CFG_PATH_VALUE_MAX 4064
#define SFTD_CFG_HOST_MAX 254       /* host part, with NUL */
#define SFTD_CFG_ORIGINS_MAX 1024   /* cors_origins text, with NUL */
#define SFTD_CFG_ORIGIN_MAX 96      /* where a setting came from */
#define SFTD_CFG_NKEYS 25           /* number of settings */
#define SFTD_PARITY_AUTO UINT32_MAX /* parity_shards = auto */
/* Enough for sftd_config_print() of any valid config, with origins. */
#define SFTD_CFG_PRINT_MAX (5 * SFTD_CFG_PATH_MAX + 8192)

enum sftd_hash_alg { SFTD_HASH_BLAKE3 = 0, SFTD_HASH_SHA256 };
enum sftd_cc { SFTD_CC_BBR2 = 0, SFTD_CC_BBR, SFTD_CC_CUBIC, SFTD_CC_RENO };
enum sftd_transport {
  SFTD_TRANSPORT_AUTO = 0,
  SFTD_TRANSPORT_QUIC,
  SFTD_TRANSPORT_TCP
};
/* Packet-level FEC under QUIC (lib/pfec, docs/internals/pfec.md). */
enum sftd_pfec_mode { SFTD_PFEC_AUTO = 0, SFTD_PFEC_ON, SFTD_PFEC_OFF };
enum sftd_log_level {
  SFTD_LOG_ERROR = 0,
  SFTD_LOG_WARN,
  SFTD_LOG_INFO,
  SFTD_LOG_DEBUG
};

/* host:port. host is a numeric IPv4 address, a numeric IPv6 address (in
 * brackets in text, stored without them) or a DNS name. */
struct sftd_hostport {
  char host[SFTD_CFG_HOST_MAX];
  uint16_t port;
  int ipv6; /* host is an IPv6 literal */
};

struct sftd_config {
  /* [transfer] */
  uint32_t chunk_size;    /* bytes, 0 = auto (tuning policy) */
  uint32_t data_shards;   /* k, 1..255 */
  uint32_t parity_shards; /* m, 0..254 or SFTD_PARITY_AUTO */
  uint32_t max_retries;   /* 0..255 */
  enum sftd_hash_alg hash;
  uint64_t bwlimit;              /* bit/s, whole daemon, 0 = unlimited */
  uint64_t per_transfer_bwlimit; /* bit/s, each transfer, 0 = unlimited */
  /* [network] */
  struct sftd_hostport quic_bind_addr;
  enum sftd_cc congestion_control;
  enum sftd_transport transport;
  enum sftd_pfec_mode packet_fec;
  uint64_t idle_timeout_ms;
  /* [api] */
  struct sftd_hostport api_bind_addr;
  struct sftd_hostport grpc_bind_addr;
  char cors_origins[SFTD_CFG_ORIGINS_MAX]; /* "a,b", "" = none */
  uint64_t body_limit;                     /* bytes */
  uint32_t rate_limit; /* requests/s per client, 0 = unlimited */
  /* [storage]: "" = unset */
  char data_dir[SFTD_CFG_PATH_MAX];      /* unset: caller resolves */
  char download_dir[SFTD_CFG_PATH_MAX];  /* unset: caller decides */
  char database_path[SFTD_CFG_PATH_MAX]; /* unset: <data_dir>/sft.db */
  uint32_t cleanup_days;                 /* 0 = never clean */
  /* [receive] */
  int accept_any;
  int overwrite;
  uint64_t max_file_size; /* bytes, 0 = no limit */
  /* [log] */
  enum sftd_log_level log_level;

  /* Where each setting's value came from, indexed like the settings table
   * ("default", "sft.conf:3", "environment SFT_...", "--bwlimit"). */
  char origin[SFTD_CFG_NKEYS][SFTD_CFG_ORIGIN_MAX];
};

struct sftd_config_err {
  int code;      /* SFT_ERR_*, 0 if none */
  char msg[768]; /* one line, no trailing newline */
};

/* Fills |c| with the defaults. Never fails. */
void sftd_config_defaults(struct sftd_config *c);

/* Parses |len| bytes of INI text (need not be NUL-terminated) into |c| on
 * top of what it holds. |name| names the file in messages. Errors as in the
 * header comment. */
int sftd_config_parse_buffer(struct sftd_config *c, const char *name,
                             const char *buf, size_t len,
                             struct sftd_config_err *err);

/* Reads the file at |path| (at most SFTD_CFG_FILE_MAX bytes, refused with
 * SFT_ERR_TOO_LARGE beyond) and parses it; messages name |path|.
 * SFT_ERR_NOT_FOUND if it does not exist, SFT_ERR_IO if unreadable. */
int sftd_config_load_file(struct sftd_config *c, const char *path,
                          struct sftd_config_err *err);

/* Applies SFT_<SECTION>_<KEY>=value entries of |envp| (NULL-terminated,
 * like environ; NULL = none). Variables outside the SFT_<SECTION>_ prefixes
 * are ignored; an unknown key under a known section prefix is an error
 * (the prefixes are reserved). If a name repeats, the first wins (getenv). */
int sftd_config_apply_env(struct sftd_config *c, char *const *envp,
                          struct sftd_config_err *err);

/* Sets one setting: |name| is "section.key" or a bare "key" (keys are
 * unique across sections). |origin| labels it in messages and in
 * c->origin (NULL: "--set section.key"). */
int sftd_config_set(struct sftd_config *c, const char *name, const char *value,
                    const char *origin, struct sftd_config_err *err);

/* Same with one "section.key=value" (or "key=value") string. */
int sftd_config_set_arg(struct sftd_config *c, const char *arg,
                        const char *origin, struct sftd_config_err *err);

/* Cross-field checks, after everything is loaded: data_shards +
 * parity_shards <= 255 (unless parity is auto). Message names both keys and
 * where each was set. */
int sftd_config_check(const struct sftd_config *c, struct sftd_config_err *err);

/* The whole sequence: defaults, |path| (NULL: none), |envp| (NULL: none),
 * the |nargs| "section.key=value" strings of |args| (labelled "--set ARG"),
 * then the checks. */
int sftd_config_load(struct sftd_config *c, const char *path, char *const *envp,
                     const char *const *args, size_t nargs,
                     struct sftd_config_err *err);

/* Effective database path: database_path if set, else "<data_dir>/sft.db"
 * with |data_dir| the caller-resolved data directory. SFT_ERR_TOO_LARGE if
 * it does not fit |cap|. */
int sftd_config_database_path(const struct sftd_config *c, const char *data_dir,
                              char *buf, size_t cap);

#define SFTD_PRINT_ORIGINS 1u /* add "# from ORIGIN" above non-defaults */

/* Writes the effective configuration as INI into |buf| (capacity |cap|,
 * NUL-terminated; SFTD_CFG_PRINT_MAX is always enough), *len = its length
 * without the NUL. The text parses back to an equal config (unset paths are
 * printed as comment lines). SFT_ERR_NOSPACE if |cap| is too small. */
int sftd_config_print(const struct sftd_config *c, unsigned flags, char *buf,
                      size_t cap, size_t *len);

/* Same, to a stdio stream. SFT_ERR_IO on a write error. */
int sftd_config_write(const struct sftd_config *c, unsigned flags, FILE *f);

/* 1 if every setting of |a| and |b| is equal (origins are not compared). */
int sftd_config_equal(const struct sftd_config *a, const struct sftd_config *b);

/* ---- value parsers, shared with the CLI ------------------------------
 * Each takes a NUL-terminated string with no surrounding blanks, accepts at
 * most 64 bytes (addresses: 270), never overflows, and returns 0,
 * SFT_ERR_INVAL (syntax, unit) or SFT_ERR_RANGE (overflow / out of range).
 * On error *why (if not NULL) gets a static reason and *out is untouched. */

/* Unsigned decimal integer, no sign, no suffix, <= max. */
int sftd_parse_uint(const char *s, uint64_t max, uint64_t *out,
                    const char **why);
/* Bits per second: decimal integer with an optional decimal suffix k/K
 * (1e3), M (1e6), G (1e9), T (1e12), e.g. "10M" = 10,000,000 bit/s.
 * "none" and "0" give 0 (unlimited). */
int sftd_parse_bits_per_sec(const char *s, uint64_t *bps, const char **why);
/* Size in bytes: decimal integer with an optional binary suffix K, M, G, T
 * (case-insensitive, optionally followed by "iB"), e.g. "4K" = 4096. */
int sftd_parse_size(const char *s, uint64_t *bytes, const char **why);
/* Duration: "0", or a decimal integer with a unit ms, s, m or h; in ms. */
int sftd_parse_duration_ms(const char *s, uint64_t *ms, const char **why);
/* true/false, yes/no, on/off, 1/0 (case-insensitive) -> 1/0. */
int sftd_parse_bool(const char *s, int *out, const char **why);
/* host:port, "[v6]:port"; port 0..65535 required. */
int sftd_parse_hostport(const char *s, struct sftd_hostport *out,
                        const char **why);
/* Formats |hp| as parse_hostport accepts it. Returns the length, or
 * SFT_ERR_NOSPACE. */
int sftd_format_hostport(const struct sftd_hostport *hp, char *buf, size_t cap);

#endif /* SFTD_CONFIG_H */
