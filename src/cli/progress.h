/*
 * Transfer progress for the CLI: a live one-line display on a terminal, one
 * JSON object per line with --json, and nothing decorative otherwise.
 */
#ifndef SFT_CLI_PROGRESS_H
#define SFT_CLI_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

#include "daemon/sftd.h" /* struct sftd_path_stat */

enum progress_mode {
  PROGRESS_NONE, /* not a terminal: final summary lines only */
  PROGRESS_TTY,  /* live line, redrawn at most 10 times a second */
  PROGRESS_JSON, /* one JSON event per line on stdout */
};

struct progress_snapshot {
  uint64_t bytes_done, bytes_total;
  uint64_t chunks_done, chunks_total;
  uint64_t chunks_rebuilt; /* data chunks rebuilt from parity (receiver) */
  uint64_t parity_sent;    /* parity chunks sent (sender) */
  uint64_t pkt_parity_sent; /* parity packets sent, packet FEC (sender) */
  uint64_t pkts_rebuilt;    /* packets rebuilt from them (receiver) */
  uint64_t links_up;       /* connections carrying the transfer */
  uint64_t files_done, files_total;
  double rtt_ms, loss;     /* loss in [0,1]; negative = unknown */
  const char *name;        /* current file, may be NULL */
  unsigned npaths;         /* sender: its paths (shown when more than one) */
  const struct sftd_path_stat *paths;
};

struct progress {
  enum progress_mode mode;
  FILE *out;
  uint64_t start_ns, last_draw_ns;
  uint64_t rate_t0_ns, rate_b0;  /* window for the displayed rate */
  double rate_bps;               /* smoothed bytes per second */
  int drawn;                     /* a live line is on screen */
  unsigned path_lines;           /* per-path lines drawn below it */
};

/* Choose the mode: JSON if |json|, TTY if |out| is a terminal, else NONE. */
void progress_init(struct progress *p, FILE *out, int json, uint64_t now_ns);

/* Update the display; redraws at most every 100 ms unless |force|. */
void progress_update(struct progress *p, const struct progress_snapshot *s,
                     uint64_t now_ns, int force);

/* Clear the live line (before printing something else). */
void progress_clear(struct progress *p);

/* Emit a JSON event {"event":EVENT, ...fields} where |fields| is a
 * pre-formatted JSON member list ("\"a\":1,\"b\":\"x\"") or NULL. Only in
 * JSON mode. */
void progress_event(struct progress *p, const char *event, const char *fields);

/* Human-readable helpers: "1.5 MiB", "12.3 MB/s", "1:02:03". */
void fmt_bytes(char *buf, size_t len, double bytes);
void fmt_rate(char *buf, size_t len, double bytes_per_s);
void fmt_duration(char *buf, size_t len, double seconds);

/* Write |s| as a JSON string literal (with quotes) into |buf|, escaping
 * quotes, backslashes and every control byte; truncates safely. Returns
 * |buf|. */
char *json_quote(char *buf, size_t len, const char *s);

#endif
