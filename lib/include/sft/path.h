/*
 * sft path table: metrics, status and chunk placement for the network paths
 * of one session (lib/path). A path is one QUIC connection (one local
 * address / peer address pair, or one striped connection on the same pair).
 *
 * The daemon feeds each path a sample from its connection statistics every
 * few hundred milliseconds (sft_path_sample()); the table derives a windowed
 * loss fraction and a status:
 *
 *   Active    usable, preferred;
 *   Degraded  usable, loss > degrade_enter (20 %);
 *   Failed    never picked: loss > fail_enter (50 %), or no acknowledgement
 *             progress for ack_timeout_ptos (3) PTOs while data is
 *             outstanding, or sft_path_set_failed().
 *
 * Hysteresis: getting worse is immediate; getting better needs the loss to
 * fall below an exit threshold lower than the entry one (degrade_exit 15 %,
 * fail_exit 35 %) AND that to hold continuously for recover_ns (1 s). A
 * Failed path additionally needs recover_acks (3) samples showing ack
 * progress after it failed; its loss window restarts when it fails so old
 * losses do not keep it down. While Failed, sft_path_want_probe() tells the
 * caller when to send a probe (exponential backoff probe_min_ns 100 ms ..
 * probe_max_ns 2 s).
 *
 * Loss is windowed, not lifetime: the counters of each sample (cumulative,
 * as ngtcp2 reports them) are turned into deltas; the loss is the sum of
 * lost over the sum of sent packets of the last SFT_PATH_LOSS_WINDOW samples
 * that sent anything. It is judged only once the window holds at least
 * min_pkts packets (below that, the loss rules do not change the status).
 * A counter that goes backwards (a reconnected connection) restarts its
 * delta from the new value.
 *
 * Every status change increments the table's sequence number
 * (sft_path_seq(), for a poller) and calls cfg.on_change if set.
 *
 * Selection (sft_path_pick): Critical -> lowest smoothed RTT among Active
 * paths, else among Degraded ones (unknown RTT ranks last; ties lowest id).
 * High/Normal -> smooth weighted round robin by bytes, weight = delivery
 * rate (a path with no rate yet gets the mean of the known ones; all unknown
 * -> equal weights), among Active and Degraded paths. Over many picks each
 * path's share of the bytes converges to its share of the total rate (error
 * at most one chunk per path). Deterministic: no randomness.
 *
 * Pure and deterministic (time is the `now` argument, ns, non-decreasing),
 * no allocation, no I/O. The table is a plain struct embedded by the caller;
 * its fields are private. Not thread-safe: one owner.
 * See docs/internals/path.md.
 */
#ifndef SFT_PATH_H
#define SFT_PATH_H

#include <stddef.h>
#include <stdint.h>

#include "sft/err.h"
#include "sft/sched.h"

#define SFT_PATH_MAX 8          /* paths per table; ids 0..SFT_PATH_MAX-1 */
#define SFT_PATH_LOSS_WINDOW 16 /* samples in the loss window */
#define SFT_PATH_PPM 1000000u   /* loss fractions are parts per million */

enum sft_path_status {
  SFT_PATH_ACTIVE = 0,
  SFT_PATH_DEGRADED = 1,
  SFT_PATH_FAILED = 2,
};

/* Why the last status change happened. */
enum sft_path_reason {
  SFT_PATH_R_NONE = 0,    /* never changed (added Active) */
  SFT_PATH_R_LOSS,        /* loss crossed an entry threshold */
  SFT_PATH_R_ACK_TIMEOUT, /* no ack progress for N*PTO with data out */
  SFT_PATH_R_MANUAL,      /* sft_path_set_failed() */
  SFT_PATH_R_RECOVERED,   /* loss below the exit threshold long enough */
};

typedef void (*sft_path_change_cb)(void *ud, unsigned id, int old_status,
                                   int new_status, int reason, uint64_t now);

struct sft_path_config {
  uint32_t degrade_enter_ppm;   /* loss above -> Degraded (200000) */
  uint32_t degrade_exit_ppm;    /* Degraded -> Active below (150000) */
  uint32_t fail_enter_ppm;      /* loss above -> Failed (500000) */
  uint32_t fail_exit_ppm;       /* Failed may recover below (350000) */
  uint32_t min_pkts;            /* packets in the window to judge loss (20) */
  uint32_t ack_timeout_ptos;    /* N of the no-progress rule (3), >= 1 */
  uint32_t recover_acks;        /* ack-progress samples to leave Failed (3) */
  uint64_t recover_ns;          /* a better state must hold this long (1 s) */
  uint64_t probe_min_ns;        /* first probe interval (100 ms) */
  uint64_t probe_max_ns;        /* probe interval cap (2 s) */
  sft_path_change_cb on_change; /* may be NULL; must not call the table */
  void *ud;
};

/* One observation of a path's connection, as the daemon reads it from
 * sftq_conn_stats() (or the TCP transport). Counters are cumulative. */
struct sft_path_sample {
  uint64_t srtt_ns;         /* smoothed RTT, 0 = unknown */
  uint64_t rttvar_ns;       /* used to derive a PTO when pto_ns is 0 */
  uint64_t pto_ns;          /* probe timeout, 0 = derive from srtt/rttvar */
  uint64_t delivery_rate;   /* bytes/s, 0 = unknown */
  uint64_t pkts_sent;       /* cumulative */
  uint64_t pkts_lost;       /* cumulative */
  uint64_t bytes_acked;     /* cumulative bytes acknowledged: progress */
  uint64_t last_ack_ns;     /* time of the last ack seen, 0 = unknown;
                               advancing also counts as progress */
  uint64_t bytes_in_flight; /* outstanding bytes (> 0: acks are due) */
};

/* Read-only view of one path. */
struct sft_path_info {
  int status;           /* enum sft_path_status */
  int reason;           /* enum sft_path_reason of the last change */
  uint32_t loss_ppm;    /* windowed loss, 0 until judged */
  uint32_t loss_judged; /* 1 if the window holds >= min_pkts packets */
  uint64_t srtt_ns;
  uint64_t delivery_rate; /* bytes/s */
  uint64_t pto_ns;        /* effective PTO */
  uint64_t changed_at;    /* time of the last status change (or add) */
  uint64_t changes;       /* status changes of this path */
  uint64_t picks;         /* chunks placed by pick / pick_parity */
  uint64_t picked_bytes;  /* bytes placed by pick */
  uint64_t probes;        /* probes requested */
};

/* Private per-path state. */
struct sft_path_slot {
  int used, status, reason;
  uint64_t srtt_ns, rttvar_ns, pto_ns, rate;
  uint64_t last_sent, last_lost, last_acked, last_ack_ns;
  uint32_t win_sent[SFT_PATH_LOSS_WINDOW], win_lost[SFT_PATH_LOSS_WINDOW];
  unsigned win_pos, win_len;
  uint64_t in_flight;
  uint64_t progress_at; /* last ack progress, or when data became outstanding */
  uint64_t better_since; /* the better condition holds since; 0 = not */
  int better_target;     /* status it would move to */
  uint32_t acks_since_fail;
  uint64_t probe_at, probe_iv;
  int64_t credit; /* smooth weighted round robin */
  uint64_t changed_at, changes, picks, picked_bytes, probes;
  int has_sample;
};

struct sft_path_table {
  struct sft_path_config cfg;
  struct sft_path_slot p[SFT_PATH_MAX];
  uint64_t seq;
  unsigned usable_mask; /* usable set at the last weighted pick */
};

/* Fills |cfg| with the defaults above (no callback). */
void sft_path_config_default(struct sft_path_config *cfg);

/* Initialises an empty table; |cfg| NULL means the defaults (copied).
 * Errors: SFT_ERR_INVAL (t NULL; thresholds not ordered as
 * degrade_exit <= degrade_enter <= fail_enter <= 1e6 and
 * fail_exit <= fail_enter; ack_timeout_ptos 0; probe_min 0 or > max). */
int sft_path_init(struct sft_path_table *t, const struct sft_path_config *cfg);

/* Adds a path (status Active, no metrics) at the lowest free id, written to
 * *id. Errors: SFT_ERR_INVAL (NULL), SFT_ERR_FULL (SFT_PATH_MAX in use). */
int sft_path_add(struct sft_path_table *t, uint64_t now, unsigned *id);

/* Forgets path |id| (no change is reported). Errors: SFT_ERR_INVAL (NULL),
 * SFT_ERR_NOT_FOUND (id out of range or unused). */
int sft_path_remove(struct sft_path_table *t, unsigned id);

/* Feeds one sample of path |id| at |now| and re-evaluates its status.
 * Errors: SFT_ERR_INVAL (NULL), SFT_ERR_NOT_FOUND (bad id). */
int sft_path_sample(struct sft_path_table *t, unsigned id, uint64_t now,
                    const struct sft_path_sample *s);

/* Marks path |id| Failed now (connection closed, bind error). Idempotent.
 * Errors: SFT_ERR_INVAL, SFT_ERR_NOT_FOUND. */
int sft_path_set_failed(struct sft_path_table *t, unsigned id, uint64_t now);

/* 1 if path |id| is Failed and a probe is due at |now| (and records it: the
 * next one is due after the doubled interval); 0 otherwise (also for a bad
 * id or NULL). */
int sft_path_want_probe(struct sft_path_table *t, unsigned id, uint64_t now);

/* Earliest time a probe of any Failed path is due, for arming a timer.
 * SFT_ERR_EMPTY when no path is Failed; SFT_ERR_INVAL for NULL. */
int sft_path_next_probe(const struct sft_path_table *t, uint64_t *at);

/* Chooses the path for one chunk of class |cls| (enum sft_sched_class) and
 * |bytes| bytes (> 0; only High/Normal use it) at |now|, into *id.
 * Errors: SFT_ERR_AGAIN (no usable path), SFT_ERR_INVAL (NULL, bad class,
 * bytes 0 for High/Normal). */
int sft_path_pick(struct sft_path_table *t, int cls, uint64_t now,
                  uint32_t bytes, unsigned *id);

/* Chooses the path for a parity chunk of a stripe: data_counts[i] is the
 * number of the stripe's data chunks sent on path i (n entries, n <=
 * SFT_PATH_MAX; missing entries count 0). Among usable paths it takes the
 * one with the fewest of the stripe's data chunks, so never the one that
 * carried most of them unless it is the only usable path; ties: Active
 * before Degraded, then lowest RTT, then lowest id. Errors: SFT_ERR_AGAIN
 * (no usable path), SFT_ERR_INVAL (NULL, n > SFT_PATH_MAX). */
int sft_path_pick_parity(struct sft_path_table *t, const uint32_t *data_counts,
                         size_t n, uint64_t now, unsigned *id);

/* Copies path |id|'s view. Errors: SFT_ERR_INVAL, SFT_ERR_NOT_FOUND. */
int sft_path_get(const struct sft_path_table *t, unsigned id,
                 struct sft_path_info *out);

/* Status-change sequence number (0 for NULL): increases by one per change,
 * so a poller compares it with the value it saw last. */
uint64_t sft_path_seq(const struct sft_path_table *t);

/* Number of paths in use / usable (Active or Degraded). 0 for NULL. */
unsigned sft_path_count(const struct sft_path_table *t);
unsigned sft_path_usable(const struct sft_path_table *t);

/* "active", "degraded", "failed"; NULL out of range. */
const char *sft_path_status_name(int status);

#endif /* SFT_PATH_H */
