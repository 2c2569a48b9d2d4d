/*
 * Packet-level forward error correction under QUIC (lib/pfec).
 *
 * Why: at 30 % random loss every congestion controller in ngtcp2 0.12.1
 * collapses (a BBR2 connection falls from ~60 to ~10 Mbit/s within a
 * second on a 100 Mbit/s link: performance.md 3.3, BENCHMARKS.md "Lossy
 * link"). Chunk-level parity cannot help: QUIC repairs every lost packet
 * itself, and its controller has already backed off. This shim sits
 * between a QUIC connection and its UDP socket. When the measured loss is
 * high, the sender groups the QUIC packets it sends into blocks of k and
 * follows each block with m Reed-Solomon parity datagrams; the receiver
 * rebuilds lost packets from any k of the k+m and hands QUIC every packet
 * in the order sent, so QUIC (and its controller) sees only the loss that
 * parity could not repair. See docs/internals/pfec.md.
 *
 * Wire. Every shim datagram starts with a byte in 0x20..0x3f, which no
 * packet ngtcp2 0.12.1 writes can start with: long headers have 0x80 set;
 * a short header's first byte is the fixed bit 0x40 (cleared at random
 * when the peer allows greasing it, RFC 9287, which ngtcp2 always does),
 * the unset spin bit 0x20 and five protected low bits. So shim and plain
 * QUIC datagrams share one socket, with no negotiation on receive:
 *
 *   DATA    0x21 | block:24 | index:8 | kplan:8 | QUIC packet
 *   PARITY  0x22 | block:24 | index:8 | k:8     | shard (L bytes)
 *   REPORT  0x23 | block:24 | received:32 | failed:32
 *   PROBE   0x24
 *
 * Integers are big-endian. A block's data packet i (0 <= i < k) is the
 * shard [len:16 | packet | zeros] of L = 2 + the block's longest packet;
 * PARITY index i (k <= i < k+m) is row i of lib/fec's Cauchy code (the
 * same for every m). kplan is the k the sender planned when it opened the
 * block (the real k is smaller when the block closed on time, and PARITY
 * carries it). REPORT: every shim datagram the receiver counted in blocks
 * up to |block| (cumulative, mod 2^32) and the blocks it gave up on;
 * block 0xffffff = none yet. PROBE asks for a REPORT (capability check).
 * Nothing here is authenticated: QUIC authenticates every packet handed
 * to it, so a forged shim datagram can at worst waste parity or hold
 * packets until a deadline (both bounded).
 *
 * The receiver assumes datagrams arrive in the order sent (reordering is
 * harmless but costs the repair of the block it hits): only one block is
 * open at a time, and a datagram of a later block retires the earlier
 * ones at once (the sender sends a block's data, then its parity, then
 * the next block), so a held packet waits at most one block.
 *
 * Limits: datagrams up to SFT_PFEC_MAX_DGRAM bytes; a wrapped DATA is
 * SFT_PFEC_DATA_HDR bytes longer than its packet and a PARITY
 * SFT_PFEC_OVERHEAD longer than the block's longest packet, so QUIC's own
 * packets must leave SFT_PFEC_OVERHEAD bytes of room under the path MTU.
 * k <= SFT_PFEC_MAX_K, k + m <= SFT_PFEC_MAX_N.
 *
 * Pure computation: time (ns, any monotonic origin) is an input; no I/O,
 * no clocks, no global state. Memory: sft_pfec_new() allocates the sender
 * half's block store (SFT_PFEC_MAX_K shards); the receiver half's window
 * (SFT_PFEC_WINDOW blocks of SFT_PFEC_MAX_N shards) is allocated on the
 * first DATA or PARITY datagram. One object per QUIC connection; not
 * thread-safe.
 */
#ifndef SFT_PFEC_H
#define SFT_PFEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sft/err.h"

#define SFT_PFEC_T_DATA 0x21
#define SFT_PFEC_T_PARITY 0x22
#define SFT_PFEC_T_REPORT 0x23
#define SFT_PFEC_T_PROBE 0x24

#define SFT_PFEC_MAX_DGRAM 1472u /* largest datagram handled (IPv4, 1500) */
#define SFT_PFEC_DATA_HDR 6u     /* DATA header bytes */
#define SFT_PFEC_PARITY_HDR 6u   /* PARITY header bytes (then the shard) */
#define SFT_PFEC_OVERHEAD 8u     /* PARITY header + the shard's length */
#define SFT_PFEC_REPORT_LEN 12u
#define SFT_PFEC_MAX_PKT (SFT_PFEC_MAX_DGRAM - SFT_PFEC_OVERHEAD)
#define SFT_PFEC_MAX_K 128u /* data packets per block */
#define SFT_PFEC_MAX_N 255u /* data + parity per block (GF(2^8)) */
#define SFT_PFEC_WINDOW 2u  /* receiver's block slots (one is open) */

/* Is |pkt| a shim datagram (first byte 0x20..0x3f)? Plain QUIC otherwise. */
static inline bool sft_pfec_is_shim(const uint8_t *pkt, size_t len) {
  return len > 0 && (pkt[0] & 0xe0) == 0x20;
}

/* Policy knobs; zero-initialise, then set (0 = the default shown). */
struct sft_pfec_opts {
  double on_loss;          /* turn on at this window loss (0.14) ... */
  unsigned on_windows;     /* ... in this many windows in a row with srtt
                              <= clean_rtt x min RTT (2) ... */
  unsigned on_windows_any; /* ... or in this many whatever the RTT (6) */
  double clean_rtt;    /* "queue short": srtt / min RTT at most this (1.3) */
  uint64_t window_ns;  /* loss window while off (100 ms) */
  uint32_t window_min; /* packets a window needs to count (50) */
  double off_loss;     /* turn off below this raw loss (0.08) ... */
  uint64_t off_ns;     /* ... for this long (2 s) */
  double fail_target;  /* block failure probability aimed at (0.02) */
  double margin;       /* added to the loss estimate (0.01) */
  uint64_t block_ns;   /* a block closes this long after it opened
                          (10 ms) or at max_k packets */
  unsigned max_k;      /* data packets per block (SFT_PFEC_MAX_K).
                          Larger blocks need less parity for the
                          same failure rate; decoding inverts a k x k
                          matrix per block with losses, O(k^3) */
  uint64_t hold_ns;    /* longest a receiver holds a packet for its
                          block's parity (25 ms) */
  uint64_t report_ns;  /* receiver reports at most this often (20 ms) */
  uint64_t probe_ns;   /* sender re-probes this often (100 ms) */
  int force;           /* 1 always on once the peer answered, -1 never
                          on (receive side still works), 0 policy */
};

struct sft_pfec_stats {
  bool active;          /* sender wrapping now */
  bool peer_ok;         /* peer speaks the shim (a shim datagram seen) */
  double loss;          /* sender's raw loss estimate (fraction) */
  uint64_t data_sent;   /* DATA datagrams sent */
  uint64_t parity_sent; /* PARITY datagrams sent */
  uint64_t blocks_sent;
  double ratio;           /* m / k of the blocks closed (EWMA, 1/4) */
  uint64_t data_recv;     /* DATA datagrams received */
  uint64_t parity_recv;   /* PARITY datagrams received */
  uint64_t recovered;     /* packets rebuilt from parity */
  uint64_t blocks_failed; /* blocks given up with packets missing */
  uint64_t late;          /* DATA of a retired block (passed on as is) */
  uint64_t dropped;       /* malformed or out-of-window shim datagrams */
  uint64_t peer_failed;   /* blocks the peer reported given up */
};

struct sft_pfec;

/* Creates a shim into |*out| (NULL on failure). |opts| may be NULL.
 * SFT_ERR_INVAL for out NULL or a knob out of range (loss outside [0,1),
 * max_k above SFT_PFEC_MAX_K, clean_rtt below 1, force outside -1..1),
 * SFT_ERR_NOMEM. */
int sft_pfec_new(struct sft_pfec **out, const struct sft_pfec_opts *opts);
/* NULL is a no-op. */
void sft_pfec_del(struct sft_pfec *pf);

/* ---- sender ------------------------------------------------------------ */

/* Feeds the sender's policy with the QUIC connection's cumulative packet
 * counters (sent, declared lost), its smoothed and lowest RTT (0 unknown)
 * at |now|; call it at least every window while sending. While off it
 * measures loss per window and wants the shim after on_windows windows in
 * a row at >= on_loss with the queue short (srtt <= clean_rtt x min RTT),
 * or on_windows_any at >= on_loss whatever the RTT. Measured at 0 % loss on
 * a 50 ms drop-tail queue, BBR's start-up overshoot gave 4 windows of
 * 12-27 % loss in a row, with srtt at 1.9 x the minimum in the first 3. It
 * turns on once the peer has answered (until then sft_pfec_control() has
 * a PROBE to send). While on, the loss comes from the peer's REPORTs and
 * these inputs are ignored. */
void sft_pfec_observe(struct sft_pfec *pf, uint64_t now, uint64_t sent,
                      uint64_t lost, uint64_t srtt_ns, uint64_t min_rtt_ns);

/* Wrapping now? If so, write each QUIC packet at buf + SFT_PFEC_DATA_HDR
 * and call sft_pfec_wrap(); packets must be at most SFT_PFEC_MAX_PKT. */
bool sft_pfec_active(const struct sft_pfec *pf);

/* Turns the QUIC packet of |len| bytes at buf + SFT_PFEC_DATA_HDR into a
 * DATA datagram of len + SFT_PFEC_DATA_HDR bytes starting at |buf| and
 * keeps a copy for the block's parity. Opens a block if none is open.
 * Call sft_pfec_parity() after each wrap: a block holds at most max_k
 * packets. SFT_ERR_STATE if not active, SFT_ERR_TOO_LARGE for len 0 or
 * above SFT_PFEC_MAX_PKT, SFT_ERR_FULL when the open block has max_k
 * packets (nothing written for any of them). */
int sft_pfec_wrap(struct sft_pfec *pf, uint64_t now, uint8_t *buf, size_t len);

/* If the open block is due (max_k packets, or block_ns old at |now|, or
 * |now| == UINT64_MAX: close whatever is open), closes it and writes its
 * PARITY datagrams back to back into |out| (|cap| bytes), each |*seg|
 * bytes, and returns their number in |*n| (0: nothing due). A closed block
 * gets at least one PARITY, which also tells the receiver its k. m comes
 * from the loss estimate plus margin: until the first REPORT sample, 1.5 x
 * the mean loss of the windows that turned the shim on, within [on_loss,
 * 0.5] (on_loss with force 1).
 * SFT_ERR_NOSPACE when |cap| cannot hold them (the block stays open). */
int sft_pfec_parity(struct sft_pfec *pf, uint64_t now, uint8_t *out, size_t cap,
                    size_t *seg, size_t *n);

/* Parity for k data packets at raw loss |loss|: the smallest m with
 * P(more than m of k+m lost) <= |fail| (independent losses), capped so
 * k + m <= SFT_PFEC_MAX_N. 0 for loss <= 0. */
unsigned sft_pfec_parity_for(unsigned k, double loss, double fail);

/* ---- receiver ---------------------------------------------------------- */

/* Takes one shim datagram (sft_pfec_is_shim() true) received at |now|.
 * REPORT and PROBE update the sender half (a PROBE makes a REPORT due).
 * DATA and PARITY are stored; packets that may go to QUIC now are queued
 * for sft_pfec_next(). Every DATA and PARITY within reach is counted in
 * the REPORTs, including those of a block already retired (the rest of
 * its parity). A PARITY more than 2 blocks ahead of the open one is
 * dropped (only a DATA, routed by its packet's CID, may move it further).
 * Malformed datagrams, and those more than 4096 blocks
 * ahead of or behind the open block (unless 64 in a row are ahead and the
 * last is a DATA: the sender really moved on), are counted in stats.dropped and
 * ignored (returns SFT_ERR_MALFORMED); never reads past |len|. */
int sft_pfec_input(struct sft_pfec *pf, uint64_t now, const uint8_t *dg,
                   size_t len);

/* Next packet for QUIC, in the order sent: returns 1 and sets *pkt and
 * *len (valid until the next call of any function here), or 0 when none is
 * ready. Rebuilt packets come out too (stats.recovered). Drain it after
 * every sft_pfec_input() and sft_pfec_tick(): both start by discarding
 * what is still queued. A DATA of a block already retired comes out as
 * is, at once (stats.late). */
int sft_pfec_next(struct sft_pfec *pf, const uint8_t **pkt, size_t *len);

/* Acts on deadlines at |now|: gives up a block whose packets have waited
 * hold_ns (they become ready, the missing ones stay missing). Only one
 * block is open at a time: a datagram of a later block retires the earlier
 * ones at once, since the sender sends a block's data, then its parity,
 * then the next block (a reordered straggler then comes out late). */
void sft_pfec_tick(struct sft_pfec *pf, uint64_t now);

/* ---- both -------------------------------------------------------------- */

/* A control datagram to send now, if any: a REPORT (receiver: due every
 * report_ns while blocks were retired, or at once after a PROBE) or a
 * PROBE (the peer has not answered yet: the first 5 from the first call,
 * wanted or not, so that a link that turns lossy later switches at once;
 * then while the policy wants the shim; at most every probe_ns; never
 * with force -1). Writes it into |out| and returns its length in
 * |*len| (0: nothing to send). |cap| >= SFT_PFEC_REPORT_LEN. */
int sft_pfec_control(struct sft_pfec *pf, uint64_t now, uint8_t *out,
                     size_t cap, size_t *len);

/* Earliest time one of the above has work (block to close, hold to give
 * up, report or probe due); UINT64_MAX if none. */
uint64_t sft_pfec_deadline(const struct sft_pfec *pf);

void sft_pfec_get_stats(const struct sft_pfec *pf, struct sft_pfec_stats *st);

#endif /* SFT_PFEC_H */
