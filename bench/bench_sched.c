/*
 * Scheduler throughput: millions of enqueue+dequeue pairs per second on one
 * core, median of SFT_BENCH_RUNS runs.
 *
 * Mix: 64 transfers (4 Critical, 12 High, 48 Normal) with chunk sizes of
 * 64 KiB, 256 KiB or 1 MiB, a steady backlog of 4096 queued items, each
 * iteration one dequeue and one enqueue for a random transfer; 1 % of the
 * dequeued items fail and are requeued instead (they come back after their
 * backoff on the fake clock, which advances 1 us per iteration).
 *
 *   sched_mops=<M pairs/s>   sched_ns_per_pair=<ns>
 */
#include <stdio.h>
#include <stdlib.h>

#include "benchutil.h"
#include "sft/sched.h"

#define NXF 64
#define DEPTH 4096
#define PAIRS 2000000

static uint64_t xs(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

static double run(uint64_t seed) {
  static const uint32_t sizes[3] = {64 * 1024, 256 * 1024, 1024 * 1024};
  struct sft_sched_config cfg;
  struct sft_sched_item it;
  sft_sched *s;
  uint64_t seq[NXF] = {0}, rng = seed, now = 0, sink = 0;
  uint8_t cls[NXF];
  uint32_t size[NXF];
  double t0, t1;

  sft_sched_config_default(&cfg);
  cfg.capacity = DEPTH * 2;
  if (sft_sched_new(&s, &cfg)) {
    fprintf(stderr, "sft_sched_new failed\n");
    exit(1);
  }
  for (int x = 0; x < NXF; x++) {
    cls[x] = x < 4    ? SFT_SCHED_CRITICAL
             : x < 16 ? SFT_SCHED_HIGH
                      : SFT_SCHED_NORMAL;
    size[x] = sizes[xs(&rng) % 3];
  }
  it.retries = 0;
  for (int i = 0; i < DEPTH; i++) {
    int x = (int)(xs(&rng) % NXF);
    it.xfer = (uint64_t)x;
    it.seq = seq[x]++;
    it.cls = cls[x];
    it.size = size[x];
    it.user.u64 = it.seq;
    (void)sft_sched_enqueue(s, &it, now);
  }

  t0 = bench_now();
  for (int i = 0; i < PAIRS; i++) {
    uint64_t r = xs(&rng);
    now += 1000;
    if (sft_sched_dequeue(s, now, &it) == 0) {
      sink += it.seq;
      if (r % 100 == 0 && sft_sched_requeue(s, &it, now) == 0)
        continue;
    }
    int x = (int)((r >> 8) % NXF);
    it.xfer = (uint64_t)x;
    it.seq = seq[x]++;
    it.cls = cls[x];
    it.size = size[x];
    it.user.u64 = it.seq;
    if (sft_sched_enqueue(s, &it, now)) {
      fprintf(stderr, "enqueue failed\n");
      exit(1);
    }
  }
  t1 = bench_now();
  bench_consume(&sink, sizeof(sink));
  sft_sched_del(s);
  return (double)PAIRS / (t1 - t0) / 1e6;
}

int main(void) {
  double v[SFT_BENCH_RUNS];
  for (int i = 0; i < SFT_BENCH_RUNS; i++)
    v[i] = run(0x9e3779b97f4a7c15ull + (uint64_t)i);
  double m = bench_median(v, SFT_BENCH_RUNS);
  printf("sched_mops=%.2f\n", m);
  printf("sched_ns_per_pair=%.1f\n", 1e3 / m);
  return 0;
}
