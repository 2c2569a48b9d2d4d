/*
 * Metrics formatting and update costs, median of SFT_BENCH_RUNS runs.
 *
 *   metrics_format_us=<us>      1000 labeled gauge series with fractional
 *                               values (the slow float path), plus the
 *                               predefined set, into a caller buffer
 *   metrics_format_int_us=<us>  the same with integral values
 *   metrics_bytes=<n>           size of that exposition
 *   metrics_inc_ns=<ns>         one counter increment through its handle
 *   metrics_observe_ns=<ns>     one histogram observation (14 bounds)
 *   metrics_child_ns=<ns>       one labeled lookup (1000 children, hashed)
 */
#include <stdio.h>
#include <stdlib.h>

#include "benchutil.h"
#include "sft/metrics.h"

#define NSERIES 1000
#define FMT_ITERS 200
#define UPD_ITERS 2000000

static void die(const char *what) {
  fprintf(stderr, "bench_metrics: %s failed\n", what);
  exit(1);
}

int main(void) {
  static char buf[1 << 20];
  double fmt[SFT_BENCH_RUNS], fmti[SFT_BENCH_RUNS], inc[SFT_BENCH_RUNS],
      obs[SFT_BENCH_RUNS], child[SFT_BENCH_RUNS];
  struct sft_metrics_std s;
  sft_metric *h[NSERIES], *m;
  char names[NSERIES][48];
  sft_metrics *r;
  size_t len = 0;

  if (sft_metrics_new(&r, NULL) || sft_metrics_std_register(r, &s))
    die("setup");
  for (int i = 0; i < NSERIES; i++) {
    snprintf(names[i], sizeof names[i], "10.0.%d.%d:4433->10.1.0.1:4433",
             i / 250, i % 250);
    if (sft_metrics_child1(s.path_rtt, names[i], &h[i]))
      die("child");
  }
  for (int run = 0; run < SFT_BENCH_RUNS; run++) {
    double t0;
    for (int i = 0; i < NSERIES; i++)
      sft_metric_set(h[i], 0.0001 * (i + 1) + 1.0 / 3);
    t0 = bench_now();
    for (int k = 0; k < FMT_ITERS; k++)
      if (sft_metrics_format(r, buf, sizeof buf, &len))
        die("format");
    fmt[run] = (bench_now() - t0) / FMT_ITERS * 1e6;
    bench_consume(buf, len);

    for (int i = 0; i < NSERIES; i++)
      sft_metric_set(h[i], (double)(i * 1000 + run));
    t0 = bench_now();
    for (int k = 0; k < FMT_ITERS; k++)
      if (sft_metrics_format(r, buf, sizeof buf, &len))
        die("format");
    fmti[run] = (bench_now() - t0) / FMT_ITERS * 1e6;
    bench_consume(buf, len);

    t0 = bench_now();
    for (int k = 0; k < UPD_ITERS; k++)
      sft_metric_inc(s.chunks_sent, 1);
    inc[run] = (bench_now() - t0) / UPD_ITERS * 1e9;

    t0 = bench_now();
    for (int k = 0; k < UPD_ITERS; k++)
      sft_metric_observe(s.chunk_duration, (double)(k & 1023) * 0.01);
    obs[run] = (bench_now() - t0) / UPD_ITERS * 1e9;

    t0 = bench_now();
    for (int k = 0; k < UPD_ITERS / 10; k++)
      if (sft_metrics_child1(s.path_rtt, names[k % NSERIES], &m))
        die("lookup");
    child[run] = (bench_now() - t0) / (UPD_ITERS / 10) * 1e9;
    bench_consume(&m, sizeof m);
  }
  printf("metrics_format_us=%.1f\n", bench_median(fmt, SFT_BENCH_RUNS));
  printf("metrics_format_int_us=%.1f\n", bench_median(fmti, SFT_BENCH_RUNS));
  printf("metrics_bytes=%zu\n", len);
  printf("metrics_inc_ns=%.2f\n", bench_median(inc, SFT_BENCH_RUNS));
  printf("metrics_observe_ns=%.2f\n", bench_median(obs, SFT_BENCH_RUNS));
  printf("metrics_child_ns=%.1f\n", bench_median(child, SFT_BENCH_RUNS));
  sft_metrics_del(r);
  return 0;
}
