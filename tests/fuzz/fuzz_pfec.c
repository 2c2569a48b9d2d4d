/* Fuzz lib/pfec: a receiver fed arbitrary datagrams (mixed with genuine
 * DATA/PARITY from a sender object, some of them dropped) never reads out
 * of bounds, never hands QUIC a packet outside 1..SFT_PFEC_MAX_PKT bytes,
 * and the sender's output stays well formed whatever REPORTs it gets.
 *
 * Input: 2 bytes of settings (byte 0: sender max_k, bit 7 a 0.3 margin;
 * byte 1: receiver hold_ns, bit 6 sender by policy instead of always on,
 * bit 7 receiver force -1), then records [op:8 | len:16 | len bytes] (the
 * last record takes what is left). op:
 *   bits 0-2  time step (x 1 ms, x 10 ms with bit 3)
 *   bits 4-5  0: datagram to the receiver; 1: datagram to the sender;
 *             2: the sender wraps the bytes as a QUIC packet (if on);
 *             3: flush the sender's block, observe counters from the bytes
 *                (body[0] more sent, body[1] % (1 + body[0]) more lost;
 *                min RTT body[2] ms, srtt body[3] ms, 0 = unknown; when
 *                absent, both 20 ms: the queue short)
 *   bit 6     drop the wrapped DATA (op 2)
 *   bit 7     drop every other PARITY of a block that closes now
 * and bit 15 of len (the length is the other 15 bits): skip the
 * sft_pfec_parity() call after this record (wraps pile up in a block, up
 * to max_k: then sft_pfec_wrap() must say SFT_ERR_FULL, and
 * sft_pfec_deadline() must be 0).
 *
 * Control datagrams: one sent at |now| had sft_pfec_deadline() <= now just
 * before; no PROBE once the peer answered, none with force -1, PROBEs at
 * least probe_ns (100 ms) apart, and at most 5 from the receiver (never
 * observed, so its policy never wants the shim: only the early ones).
 *
 * When the sender turns on, its loss estimate (what the first blocks'
 * parity is sized for, until REPORT samples) is within [on_loss, 0.5]. */
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sft/pfec.h"

#define MS 1000000ull
#define MAX_RECORDS 2000
#define ON_LOSS 0.14 /* default on_loss */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t g_par[SFT_PFEC_MAX_N * SFT_PFEC_MAX_DGRAM];

/* Reads every byte of a released packet (ASan sees a bad pointer). */
static void drain(struct sft_pfec *pf) {
  const uint8_t *p;
  size_t len;
  int rc;
  unsigned guard = 0;
  while ((rc = sft_pfec_next(pf, &p, &len)) == 1) {
    volatile uint8_t x = 0;
    if (p == NULL || len < 1 || len > SFT_PFEC_MAX_PKT)
      abort();
    for (size_t i = 0; i < len; i++)
      x ^= p[i];
    (void)x;
    if (++guard > 1000000)
      abort();
  }
  if (rc != 0)
    abort();
}

/* Hands |pf| an exact-size copy (so ASan catches a read past |len|). */
static void feed(struct sft_pfec *pf, uint64_t now, const uint8_t *dg,
                 size_t len) {
  uint8_t *c;
  int rc;
  if (!sft_pfec_is_shim(dg, len))
    return;
  c = malloc(len);
  if (c == NULL)
    return;
  memcpy(c, dg, len);
  rc = sft_pfec_input(pf, now, c, len);
  free(c);
  if (rc != 0 && rc != SFT_ERR_MALFORMED && rc != SFT_ERR_NOMEM)
    abort();
  drain(pf);
}

/* What one side's PROBEs must respect. */
struct prober {
  int force;       /* its opts.force */
  unsigned max;    /* most PROBEs it may send in all (UINT_MAX: any) */
  unsigned probes; /* sent so far */
  uint64_t last;   /* when the last went */
};

/* Whatever control datagram |from| has goes to |to|. */
static void control(struct sft_pfec *from, struct sft_pfec *to, uint64_t now,
                    struct prober *pr) {
  uint8_t out[64];
  size_t len = 0;
  uint64_t d = sft_pfec_deadline(from);
  struct sft_pfec_stats st;
  sft_pfec_get_stats(from, &st);
  if (sft_pfec_control(from, now, out, sizeof(out), &len) != 0)
    abort();
  if (len == 0)
    return;
  if (d > now)
    abort(); /* work the deadline did not announce */
  if (len > sizeof(out) || !sft_pfec_is_shim(out, len))
    abort();
  if (out[0] == SFT_PFEC_T_PROBE) {
    if (len != 1 || st.peer_ok || pr->force < 0 || pr->probes >= pr->max ||
        (pr->probes && now - pr->last < 100 * MS))
      abort();
    pr->probes++;
    pr->last = now;
  }
  if (out[0] == SFT_PFEC_T_REPORT && len != SFT_PFEC_REPORT_LEN)
    abort();
  feed(to, now, out, len);
}

/* Closes the sender's block if due; its PARITY goes to the receiver.
 * |*inblk| counts the packets wrapped into the open block. */
static void parity(struct sft_pfec *s, struct sft_pfec *r, uint64_t now,
                   int drop_odd, unsigned *inblk) {
  size_t seg = 0, n = 0;
  if (sft_pfec_parity(s, now, g_par, sizeof(g_par), &seg, &n) != 0)
    abort();
  if (n == 0) {
    if (now == UINT64_MAX && *inblk != 0)
      abort(); /* a flush closes whatever is open */
    return;
  }
  /* a closed block has >= 1 PARITY, k = what was wrapped, k + m <= 255 */
  if (seg <= SFT_PFEC_OVERHEAD || seg > SFT_PFEC_MAX_DGRAM || *inblk == 0 ||
      *inblk + n > SFT_PFEC_MAX_N)
    abort();
  for (size_t i = 0; i < n; i++) {
    const uint8_t *d = g_par + i * seg;
    if (d[0] != SFT_PFEC_T_PARITY || d[5] == 0 || d[5] > SFT_PFEC_MAX_K ||
        d[5] != *inblk || d[4] != *inblk + i ||
        (unsigned)d[4] >= SFT_PFEC_MAX_N)
      abort();
    if (!(drop_odd && (i & 1)))
      feed(r, now, d, seg);
  }
  *inblk = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct sft_pfec_opts so, ro;
  struct sft_pfec *s = NULL, *r = NULL;
  uint64_t now = 1000 * MS, sent = 0, lost = 0;
  unsigned records = 0, inblk = 0;
  int was_on = 0;
  struct prober sp = {0, UINT_MAX, 0, 0}, rp = {0, 5, 0, 0};
  static uint8_t buf[SFT_PFEC_DATA_HDR + SFT_PFEC_MAX_PKT];
  static uint8_t ref[sizeof(buf)];

  if (size < 2)
    return 0;
  memset(&so, 0, sizeof(so));
  so.force = (data[1] & 0x40) ? 0 : 1;
  so.max_k = 1 + data[0] % SFT_PFEC_MAX_K;
  so.margin = (data[0] >> 7) ? 0.3 : 0.0;
  memset(&ro, 0, sizeof(ro));
  ro.hold_ns = (uint64_t)(1 + data[1] % 64) * MS;
  ro.force = (data[1] & 0x80) ? -1 : 0;
  sp.force = so.force;
  rp.force = ro.force;
  data += 2;
  size -= 2;
  if (sft_pfec_new(&s, &so) != 0 || sft_pfec_new(&r, &ro) != 0)
    goto out;

  while (size >= 3 && records++ < MAX_RECORDS) {
    uint8_t op = data[0];
    size_t len = (size_t)(data[1] & 0x7f) << 8 | data[2];
    int burst = data[1] & 0x80;
    const uint8_t *body = data + 3;
    uint64_t d;
    data += 3;
    size -= 3;
    if (len > size)
      len = size;
    data += len;
    size -= len;

    now += (uint64_t)(op & 7) * ((op & 8) ? 10 * MS : MS);
    switch ((op >> 4) & 3) {
    case 0:
      feed(r, now, body, len);
      break;
    case 1:
      feed(s, now, body, len);
      break;
    case 2:
      if (sft_pfec_active(s) && len > 0) {
        size_t plen = len > SFT_PFEC_MAX_PKT ? SFT_PFEC_MAX_PKT : len;
        int rc;
        memcpy(buf + SFT_PFEC_DATA_HDR, body, plen);
        buf[SFT_PFEC_DATA_HDR] |= 0x40;
        memcpy(ref, buf, SFT_PFEC_DATA_HDR + plen);
        rc = sft_pfec_wrap(s, now, buf, plen);
        if (inblk >= so.max_k) {
          /* the open block is full (no parity call in between): refused,
           * nothing written */
          if (rc != SFT_ERR_FULL ||
              memcmp(buf, ref, SFT_PFEC_DATA_HDR + plen) != 0)
            abort();
          break;
        }
        if (rc != 0)
          abort();
        if (buf[0] != SFT_PFEC_T_DATA || buf[5] == 0 || buf[4] >= buf[5] ||
            buf[5] > SFT_PFEC_MAX_K || buf[4] != inblk)
          abort();
        inblk++;
        if (!(op & 0x40))
          feed(r, now, buf, plen + SFT_PFEC_DATA_HDR);
      } else if (!sft_pfec_active(s) && len > 0) {
        if (sft_pfec_wrap(s, now, buf, 1) != SFT_ERR_STATE)
          abort();
      }
      break;
    case 3: {
      uint64_t min_rtt = len > 2 ? (uint64_t)body[2] * MS : 20 * MS;
      uint64_t srtt = len > 3 ? (uint64_t)body[3] * MS : min_rtt;
      parity(s, r, UINT64_MAX, op & 0x80, &inblk);
      sent += len > 0 ? body[0] : 0;
      lost += len > 1 ? body[1] % (1 + (len > 0 ? body[0] : 0)) : 0;
      sft_pfec_observe(s, now, sent, lost, srtt, min_rtt);
      break;
    }
    }
    if (!burst)
      parity(s, r, now, op & 0x80, &inblk);
    sft_pfec_tick(r, now);
    drain(r);
    sft_pfec_tick(s, now);
    drain(s);
    if (inblk >= so.max_k && sft_pfec_deadline(s) != 0)
      abort(); /* a full block is due at once */
    control(r, s, now, &rp);
    control(s, r, now, &sp);
    d = sft_pfec_deadline(r);
    if (d != UINT64_MAX && d > now + 3600 * 1000 * MS)
      abort(); /* a deadline hours away: something is off */
    (void)sft_pfec_deadline(s);
    {
      struct sft_pfec_stats st;
      sft_pfec_get_stats(r, &st);
      if (st.loss < 0 || st.loss > 1)
        abort();
      sft_pfec_get_stats(s, &st);
      if (st.loss < 0 || st.loss > 1)
        abort();
      /* just turned on: at most one REPORT came since (it only sets the
       * base of the next sample), so the estimate is the first loss */
      if (st.active && !was_on &&
          !(st.loss >= ON_LOSS - 1e-12 && st.loss <= 0.5 + 1e-12))
        abort();
      was_on = st.active;
    }
  }
  /* the end: everything held comes out */
  now += 3600 * 1000 * MS;
  parity(s, r, UINT64_MAX, 0, &inblk);
  sft_pfec_tick(r, now);
  drain(r);
out:
  sft_pfec_del(s);
  sft_pfec_del(r);
  return 0;
}
