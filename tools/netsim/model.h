/*
 * netsim model: the pure, deterministic impairment model of sft's network
 * simulator. No clocks, sockets or files: the caller passes the arrival time
 * of each datagram (ns, any monotonic origin) and its size; the model answers
 * drop (with the cause) or deliver at a later time, possibly twice
 * (duplicate), each copy possibly corrupted (the caller applies the
 * corruption with netsim_copy_apply()). One model per direction.
 *
 * Order of application (docs/internals/netsim.md):
 *   outage -> loss (Bernoulli, then Gilbert-Elliott) -> queue/rate ->
 *   delay/jitter (no reordering) -> reorder -> duplicate -> corrupt.
 *
 * Probabilities are integers in parts per billion (NETSIM_PPB = 100 %) so a
 * configuration prints and re-parses exactly. Times are uint64_t ns.
 */
#ifndef NETSIM_MODEL_H
#define NETSIM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NETSIM_PPB 1000000000u       /* probability 1.0 */
#define NETSIM_MAX_OUTAGES 16        /* outage entries per direction */
#define NETSIM_NS_PER_MS 1000000ull
#define NETSIM_NS_PER_S 1000000000ull

/* xoshiro256** seeded through splitmix64. */
struct netsim_rng {
  uint64_t s[4];
};

/* Seeds |r| from |seed| (any value, 0 included). */
void netsim_rng_seed(struct netsim_rng *r, uint64_t seed);
/* Next 64 random bits. */
uint64_t netsim_rng_next(struct netsim_rng *r);
/* True with probability ppb / NETSIM_PPB (ppb >= NETSIM_PPB: always). */
bool netsim_rng_chance(struct netsim_rng *r, uint32_t ppb);

enum netsim_jitter_dist {
  NETSIM_JITTER_UNIFORM = 0, /* offset uniform in [-jitter, +jitter] */
  NETSIM_JITTER_NORMAL = 1,  /* N(0, (jitter/2)^2) clamped to +-jitter */
};

/* "count outages of dur_ns, one every period_ns, the first at start_ns"
 * (relative to the model's epoch). count == 1 is a single window; period is
 * then ignored (0). Window i is [start + i*period, start + i*period + dur). */
struct netsim_outage {
  uint32_t count;
  uint64_t start_ns;
  uint64_t dur_ns;
  uint64_t period_ns;
};

/* Impairments of one direction. All-zero = a clean link (the default) except
 * queue_ns and reorder_delay_ns, see netsim_dir_cfg_default(). */
struct netsim_dir_cfg {
  uint32_t loss_ppb;          /* Bernoulli loss */
  /* Gilbert-Elliott: per packet, Good->Bad with ge_pgb, Bad->Good with
   * ge_pbg (transition decided before the loss draw of the packet); loss
   * probability ge_loss_good in Good, ge_loss_bad in Bad. Off if ge_pgb == 0
   * and ge_loss_good == 0. */
  uint32_t ge_pgb, ge_pbg, ge_loss_good, ge_loss_bad;
  uint64_t delay_ns;          /* fixed one-way delay */
  uint64_t jitter_ns;         /* bound of the jitter offset */
  enum netsim_jitter_dist jitter_dist;
  uint64_t rate_bps;          /* 0 = unlimited */
  uint64_t queue_ns;          /* drop-tail queue size in time at rate_bps */
  uint32_t reorder_ppb;       /* probability a packet is held back */
  uint64_t reorder_delay_ns;  /* extra delay of a held-back packet */
  uint32_t dup_ppb;           /* probability of a second copy */
  uint32_t corrupt_ppb;       /* per copy: one random byte XORed (nonzero) */
  uint32_t n_outages;
  struct netsim_outage outages[NETSIM_MAX_OUTAGES];
};

#define NETSIM_DEFAULT_QUEUE_NS (50 * NETSIM_NS_PER_MS)
#define NETSIM_DEFAULT_REORDER_DELAY_NS (10 * NETSIM_NS_PER_MS)

/* Fills |c| with a clean link: no impairment, queue 50 ms, reorder delay
 * 10 ms. */
void netsim_dir_cfg_default(struct netsim_dir_cfg *c);

/* Gilbert (simple) parameterisation from an average loss rate and a mean
 * burst length in packets: loss in Good = 0, loss in Bad = 100 %,
 * p_bg = 1/burst, p_gb = loss * p_bg / (1 - loss); then the stationary
 * probability of Bad (= average loss) is p_gb / (p_gb + p_bg) and bursts are
 * geometric with mean 1/p_bg. |loss| in [0, 1), |burst| >= 1, else
 * SFT_ERR_RANGE (cfg untouched). */
int netsim_ge_from_loss_burst(struct netsim_dir_cfg *c, double loss,
                              double burst);

/* True if |rel_ns| (time since the epoch) lies inside an outage window. */
bool netsim_in_outage(const struct netsim_dir_cfg *c, uint64_t rel_ns);

struct netsim_counters {
  uint64_t pkts_in, bytes_in;
  uint64_t pkts_out, bytes_out;  /* copies delivered (duplicates included) */
  uint64_t drop_outage, drop_loss, drop_queue;
  uint64_t duplicated, corrupted, reordered;
};

enum netsim_verdict {
  NETSIM_DELIVER = 0,
  NETSIM_DROP_OUTAGE,  /* scripted outage or black hole */
  NETSIM_DROP_LOSS,    /* Bernoulli or Gilbert-Elliott */
  NETSIM_DROP_QUEUE,   /* drop-tail queue full */
};

struct netsim_copy {
  uint64_t deliver_ns;  /* absolute, same origin as the arrival time */
  uint32_t corrupt_off; /* byte to XOR when corrupt_xor != 0 */
  uint8_t corrupt_xor;  /* 0 = intact */
};

struct netsim_decision {
  enum netsim_verdict verdict;
  unsigned ncopies;     /* 0 (dropped), 1, or 2 (duplicated) */
  bool reordered;       /* held back by reorder_delay_ns */
  struct netsim_copy copy[2];
};

/* One direction's model state. Embed by value; no heap. */
struct netsim_model {
  struct netsim_dir_cfg cfg;
  struct netsim_rng rng;
  uint64_t epoch_ns;      /* outage windows are relative to this */
  uint64_t link_free_ns;  /* when the rate-limited link is next idle */
  uint64_t last_deliver_ns; /* latest in-order delivery time */
  bool ge_bad;            /* Gilbert-Elliott state */
  bool blackhole;         /* manual outage: drop everything */
  struct netsim_counters c;
};

/* Initialises |m| with a copy of |cfg|, the PRNG seeded from |seed|, outage
 * times counted from |epoch_ns|, zero counters. */
void netsim_model_init(struct netsim_model *m, const struct netsim_dir_cfg *cfg,
                       uint64_t seed, uint64_t epoch_ns);

/* Replaces the configuration (copied), keeping PRNG, queue and counters. */
void netsim_model_set_cfg(struct netsim_model *m,
                          const struct netsim_dir_cfg *cfg);

/* Manual outage: while on, every packet is dropped as NETSIM_DROP_OUTAGE. */
void netsim_model_set_blackhole(struct netsim_model *m, bool on);

/* Decides the fate of one datagram of |len| bytes arriving at |now_ns|
 * (callers pass non-decreasing times; an earlier time is treated as the
 * latest one seen by the queue). Fills |d|, updates counters. Never fails. */
void netsim_model_packet(struct netsim_model *m, uint64_t now_ns, size_t len,
                         struct netsim_decision *d);

/* Applies |c|'s corruption to |buf| (|len| bytes): no-op if intact or the
 * offset is out of range. */
void netsim_copy_apply(const struct netsim_copy *c, uint8_t *buf, size_t len);

#endif /* NETSIM_MODEL_H */
