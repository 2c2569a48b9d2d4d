/*
 * sft adaptation policy (lib/adapt): from measured RTT, loss and rate to
 * chunk size, proactive parity, connections per path and window sizes.
 *
 * Rules (each a pure function below; the state machine adds smoothing and
 * hysteresis). Rates are bytes/s, loss in parts per million.
 *
 *  chunk size   the seed's table: RTT > 200 ms or loss > 10 % -> 64 KiB;
 *               RTT > 100 ms or loss > 5 % -> 256 KiB; else 1 MiB. Then
 *               capped so one chunk takes <= 1 s at the rate: the largest
 *               power of two <= rate * 1 s, floor 64 KiB (1 Mbit/s ->
 *               64 KiB, 4 Mbit/s -> 256 KiB, >= 8.4 Mbit/s -> no cap).
 *               Rate 0 (unknown) -> no cap.
 *  parity       for a k+m stripe: 0 when loss < 0.5 %; else the smallest m'
 *               in 0..m with P(more than m' of k+m' chunks lost) < 1 %
 *               (independent chunk losses at the given rate: packet loss
 *               is the proxy); m if none is. 10+3: 0.5-1 % -> 1,
 *               2-3 % -> 2, 5 % -> 3, above ~7 % capped at 3.
 *  connections  x = RTT (ms) * loss (fraction): 1 if x < 8, 2 if x < 12,
 *               3 if x < 16, else 4; capped at max_conns. Measured on the
 *               100 Mbit/s, 50 ms TUN link (bench/lossy.sh, docs/internals/
 *               adapt.md): one BBR2 connection carries 83 Mbit/s at 10 %
 *               (x 5) where 3 striped ones carried 42-81 (they overflow the
 *               drop-tail queue together), and collapses at 30 % (x 15)
 *               where 4 carry 19-25. The loss is the LONG-RUN average
 *               (below), so BBR's start-up overshoot into a drop-tail
 *               queue does not count as a lossy link. The RTT is the
 *               lowest seen (min_rtt_ns) when known: a connection that
 *               fills the queue raised srtt from 50 to 90-100 ms, x from 5
 *               to 9, and the extra connections then overflowed the queue
 *               (loss 23-71 %, 4 connections, 64-74 Mbit/s at 10 %).
 *  window       flow-control window = 4 x BDP rounded up to a power of two,
 *               clamped to [16 MiB, 256 MiB]; socket buffer = 2 x BDP,
 *               power of two, clamped to [1 MiB, 64 MiB]. BDP = RTT x rate,
 *               and unknown RTT or rate gives the minimum.
 *
 * Rate used: the smaller of the known values of delivery rate and link
 * estimate for the chunk cap (a 1 Mbit/s limit must shrink chunks even on a
 * fast NIC); the larger for windows (a window must never cap the rate it is
 * sized from).
 *
 * State machine (sft_adapt_update): inputs are smoothed (EWMA, 1/4 weight
 * to the new sample; the first sample is taken as is). The connections rule
 * reads a slower loss average instead: the mean of the samples so far, then
 * an EWMA of weight 1/16 from the 16th on, and it keeps 1 connection until
 * SFT_ADAPT_CONNS_MIN_SAMPLES samples (1 s at the daemon's 100 ms tick)
 * have been seen. The first update
 * replaces the placeholder initial decision outright). A decision moves in
 * the SAFER direction (smaller chunk, more parity, more connections, larger
 * window) as soon as the smoothed inputs call for it. It RELAXES only if the
 * rule still calls for it with the inputs made 25 % worse (RTT and loss
 * x 1.25, rate x 0.8: a dead band around every threshold) and that holds
 * continuously for hold_ns (3 s). So noise around a threshold cannot flip a
 * decision back and forth.
 *
 * Pure, deterministic, no allocation, no I/O. Not thread-safe: one owner.
 * See docs/internals/adapt.md.
 */
#ifndef SFT_ADAPT_H
#define SFT_ADAPT_H

#include <stdint.h>

#include "sft/err.h"

#define SFT_ADAPT_PPM 1000000u
#define SFT_ADAPT_CHUNK_MIN (64u * 1024)
#define SFT_ADAPT_CHUNK_MID (256u * 1024)
#define SFT_ADAPT_CHUNK_MAX (1024u * 1024)
#define SFT_ADAPT_MAX_CONNS 16u
#define SFT_ADAPT_WINDOW_MIN (16ull * 1024 * 1024)
#define SFT_ADAPT_WINDOW_MAX (256ull * 1024 * 1024)
#define SFT_ADAPT_SOCKBUF_MIN (1ull * 1024 * 1024)
#define SFT_ADAPT_SOCKBUF_MAX (64ull * 1024 * 1024)

/* Bits of the sft_adapt_update() result. */
#define SFT_ADAPT_CHANGED_CHUNK 0x1
#define SFT_ADAPT_CHANGED_PARITY 0x2
#define SFT_ADAPT_CHANGED_CONNS 0x4
#define SFT_ADAPT_CHANGED_WINDOW 0x8 /* window and/or socket buffer */

struct sft_adapt_sample {
  uint64_t srtt_ns;       /* smoothed RTT, 0 = unknown (not averaged in) */
  uint64_t min_rtt_ns;    /* lowest RTT seen (the path's own, without our
                             queue), 0 = unknown: srtt is used */
  uint32_t loss_ppm;      /* packet loss fraction, <= 1e6 */
  uint64_t delivery_rate; /* measured bytes/s, 0 = unknown */
  uint64_t link_rate;     /* bottleneck estimate (a configured limit, the
                             controller's bandwidth estimate), 0 = unknown */
};

struct sft_adapt_decision {
  uint32_t chunk_size; /* bytes, 64 KiB .. 1 MiB */
  uint32_t parity;     /* proactive parity chunks per stripe, 0..m */
  uint32_t conns;      /* QUIC connections per path, 1..max_conns */
  uint64_t window;     /* flow-control window, bytes */
  uint64_t sockbuf;    /* socket send/receive buffer, bytes */
};

struct sft_adapt_config {
  uint32_t k, m;      /* stripe geometry: k 1..255, k + m <= 255 */
  uint32_t max_conns; /* 1..SFT_ADAPT_MAX_CONNS (4) */
  uint64_t hold_ns;   /* relaxing needs this long (3 s) */
  struct sft_adapt_decision initial; /* before any sample: 1 MiB, parity m,
                                        1 connection, minimum window/buffer */
};

/* Embedded by the caller; fields private. */
struct sft_adapt {
  struct sft_adapt_config cfg;
  struct sft_adapt_decision cur;
  double rtt_ns, loss, drate, lrate; /* smoothed; loss a fraction */
  double lloss;     /* long-run loss (fraction) for the connections rule */
  uint64_t min_rtt; /* lowest min_rtt_ns fed, 0 = none yet */
  uint64_t nloss;   /* samples in lloss */
  int have_rtt, have_drate, have_lrate;
  /* Pending relaxation per field: target value and since when. */
  uint64_t pend_val[5], pend_since[5];
  int pend[5];
  uint64_t updates;
};

/* Samples before the connections rule may add a connection. */
#define SFT_ADAPT_CONNS_MIN_SAMPLES 10

/* Defaults: k 10, m 3, max_conns 4, hold 3 s, initial as above. */
void sft_adapt_config_default(struct sft_adapt_config *cfg);

/* Initialises |a| (cfg NULL -> defaults); the decision is cfg->initial.
 * Errors: SFT_ERR_INVAL (a NULL; k 0; k + m > 255; max_conns out of
 * range; an initial value out of its range). */
int sft_adapt_init(struct sft_adapt *a, const struct sft_adapt_config *cfg);

/* Feeds one sample at |now| (ns, non-decreasing). Returns a bitmask of the
 * decisions that changed (0 = none), or SFT_ERR_INVAL (NULL, loss > 1e6). */
int sft_adapt_update(struct sft_adapt *a, const struct sft_adapt_sample *s,
                     uint64_t now);

/* The long-run loss (fraction, the connections rule's input) into |*loss|:
 * 1, or 0 while fewer than SFT_ADAPT_CONNS_MIN_SAMPLES samples were seen. */
int sft_adapt_long_loss(const struct sft_adapt *a, double *loss);

/* Current decision (never fails for a valid |a|). */
void sft_adapt_get(const struct sft_adapt *a, struct sft_adapt_decision *d);

/* ---- the rules, stateless ------------------------------------------------ */

/* Chunk size from RTT (0 = unknown: ignored), loss and rate (0 = unknown). */
uint32_t sft_adapt_chunk_size(uint64_t srtt_ns, uint32_t loss_ppm,
                              uint64_t rate);

/* P(X > t) for X ~ Binomial(n, p), n <= 255, p in [0, 1]; 0 if t >= n.
 * Exact dynamic programme (no libm), O(n * t). */
double sft_adapt_binom_tail(unsigned n, double p, unsigned t);

/* Proactive parity for a k+m stripe at loss |loss_ppm| (rule above).
 * k >= 1, k + m <= 255 (else 0). */
uint32_t sft_adapt_parity(uint32_t k, uint32_t m, uint32_t loss_ppm);

/* Connections per path (rule above), 1..max_conns (max_conns 0 -> 1). */
uint32_t sft_adapt_conns(uint64_t srtt_ns, uint32_t loss_ppm,
                         uint32_t max_conns);

/* Window and socket buffer from RTT and rate (rule above). */
uint64_t sft_adapt_window(uint64_t srtt_ns, uint64_t rate);
uint64_t sft_adapt_sockbuf(uint64_t srtt_ns, uint64_t rate);

#endif /* SFT_ADAPT_H */
