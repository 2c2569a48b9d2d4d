/*
 * Adaptive policies: chunk size from RTT and loss, parity count from loss.
 * Pure functions of their arguments (rationale in docs/internals/chunk.md).
 */
#include "sft/chunk.h"

uint32_t sft_policy_chunk_size(uint64_t rtt_ns, uint32_t loss_ppm) {
  if (loss_ppm > SFT_PPM)
    loss_ppm = SFT_PPM;
  if (rtt_ns > SFT_POLICY_RTT_HIGH_NS || loss_ppm > SFT_POLICY_LOSS_HIGH_PPM)
    return 64u * 1024;
  if (rtt_ns > SFT_POLICY_RTT_MID_NS || loss_ppm > SFT_POLICY_LOSS_MID_PPM)
    return 256u * 1024;
  return 1024u * 1024;
}

/* P[Binomial(n, p) > m] for 0 < p < 1, computed as 1 - P[X <= m]. The pmf
 * terms come from the recurrence t(i+1) = t(i) * (n-i)/(i+1) * p/q starting
 * at q^n. When q^n underflows (q < ~0.06 with n near 255) the terms are all
 * zero and the tail reads 1, which is the true value to double precision
 * for every m the caller asks about (m < n/2 while the mean is > 0.94 n).
 * The absolute error (~1e-15) is far below the 1e-4 target, and a 1 ppm step
 * of p moves the tail near the target by orders of magnitude more, so the
 * result is monotone in p at ppm resolution (the tests walk it). */
static double binom_tail(uint32_t n, uint32_t m, double p) {
  double q = 1.0 - p, t = 1.0, cdf;
  if (m >= n)
    return 0.0;
  for (uint32_t i = 0; i < n; i++)
    t *= q;
  cdf = t;
  for (uint32_t i = 0; i < m; i++) {
    t = t * (double)(n - i) / (double)(i + 1) * p / q;
    cdf += t;
  }
  return cdf >= 1.0 ? 0.0 : 1.0 - cdf;
}

int sft_policy_parity(uint32_t k, uint32_t loss_ppm, uint32_t *m_out) {
  uint32_t cap, m;
  double p;
  if (k == 0 || k > SFT_MAX_STRIPE || loss_ppm > SFT_PPM)
    return SFT_ERR_RANGE;
  cap = SFT_POLICY_PARITY_CAP(k);
  if (loss_ppm == 0) {
    *m_out = 0;
    return 0;
  }
  p = (double)loss_ppm / SFT_PPM * (1.0 + SFT_POLICY_PARITY_MARGIN);
  if (p >= 1.0) {
    *m_out = cap;
    return 0;
  }
  for (m = 0; m < cap; m++)
    if (binom_tail(k + m, m, p) < SFT_POLICY_PARITY_TARGET)
      break;
  *m_out = m;
  return 0;
}
