/*
 * Reed-Solomon throughput, one core: 10+3 encode, and decode of 3 lost DATA
 * shards with the decode tables already cached. GB/s counts source data
 * (k * shard length) per second, 1 GB = 1e9 bytes; each figure is the median
 * of SFT_BENCH_RUNS runs of about 0.15 s.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "benchutil.h"
#include "sft/fec.h"

#define K 10
#define M 3
#define RUN_SECONDS 0.15

static uint8_t *xalloc(size_t n) {
  void *p = NULL;
  if (posix_memalign(&p, 64, n) != 0) {
    fprintf(stderr, "out of memory\n");
    exit(1);
  }
  return p;
}

/* One timed run: repeat |op| until RUN_SECONDS pass; returns GB/s. */
static double run(struct sft_fec *fec, uint8_t **sh, size_t len, int decode) {
  struct sft_fec_mask present = sft_fec_mask_first(K + M);
  long iters = 0;
  double t0, t;

  sft_fec_mask_clear(&present, 0);
  sft_fec_mask_clear(&present, 4);
  sft_fec_mask_clear(&present, 7);
  t0 = bench_now();
  do {
    for (int i = 0; i < 8; i++) {
      int rv =
          decode ? sft_fec_decode(fec, sh, &present, len, 0)
                 : sft_fec_encode(fec, (const uint8_t *const *)sh, sh + K, len);
      if (rv) {
        fprintf(stderr, "fec error %d\n", rv);
        exit(1);
      }
    }
    iters += 8;
    t = bench_now() - t0;
  } while (t < RUN_SECONDS);
  bench_consume(sh[0], 64);
  bench_consume(sh[K], 64);
  return (double)iters * K * (double)len / t / 1e9;
}

/* Median encode and decode3 GB/s for shards of |len| bytes. */
static void bench_size(struct sft_fec *fec, size_t len, double *enc_gbps,
                       double *dec_gbps) {
  uint8_t *sh[K + M], *orig[K];
  double enc[SFT_BENCH_RUNS], dec[SFT_BENCH_RUNS];

  for (int i = 0; i < K + M; i++) {
    sh[i] = xalloc(len);
    bench_fill(sh[i], len, (uint64_t)i + 1);
  }
  for (int i = 0; i < K; i++) {
    orig[i] = xalloc(len);
    memcpy(orig[i], sh[i], len);
  }
  (void)run(fec, sh, len, 0); /* warm up: pages, dispatch */
  for (int r = 0; r < SFT_BENCH_RUNS; r++)
    enc[r] = run(fec, sh, len, 0);
  (void)run(fec, sh, len, 1); /* warm up + fills the table cache */
  for (int r = 0; r < SFT_BENCH_RUNS; r++)
    dec[r] = run(fec, sh, len, 1);
  /* sanity: the decoded shards are the originals */
  for (int i = 0; i < K; i++)
    if (memcmp(sh[i], orig[i], len) != 0) {
      fprintf(stderr, "decode mismatch on shard %d\n", i);
      exit(1);
    }
  *enc_gbps = bench_median(enc, SFT_BENCH_RUNS);
  *dec_gbps = bench_median(dec, SFT_BENCH_RUNS);
  for (int i = 0; i < K + M; i++)
    free(sh[i]);
  for (int i = 0; i < K; i++)
    free(orig[i]);
}

/* Cost of a cache miss (matrix inversion + ec_init_tables + a 64-byte
 * decode), in microseconds: one cache slot, two alternating patterns of
 * |lost| lost data shards, so every decode misses. */
static double miss_us(unsigned k, unsigned m, unsigned lost) {
  struct sft_fec_opts o = {1, NULL, NULL, NULL};
  struct sft_fec *fec;
  struct sft_fec_mask p[2];
  struct sft_fec_stats st;
  uint8_t *sh[SFT_MAX_STRIPE];
  double v[SFT_BENCH_RUNS];
  const size_t len = 64;

  if (sft_fec_new_opts(&fec, k, m, &o) != 0) {
    fprintf(stderr, "sft_fec_new_opts failed\n");
    exit(1);
  }
  for (unsigned i = 0; i < k + m; i++) {
    sh[i] = xalloc(len);
    bench_fill(sh[i], len, i + 1);
  }
  p[0] = p[1] = sft_fec_mask_first(k + m);
  for (unsigned i = 0; i < lost; i++) {
    sft_fec_mask_clear(&p[0], i);
    sft_fec_mask_clear(&p[1], i + 1);
  }
  for (int r = 0; r < SFT_BENCH_RUNS; r++) {
    long n = 0;
    double t0 = bench_now(), t;
    do {
      if (sft_fec_decode(fec, sh, &p[n & 1], len, 0) != 0) {
        fprintf(stderr, "decode failed\n");
        exit(1);
      }
      n++;
      t = bench_now() - t0;
    } while (t < 0.05 || (n & 1)); /* even n: the next run starts missing */
    v[r] = t / (double)n * 1e6;
  }
  sft_fec_get_stats(fec, &st);
  if (st.hits != 0) {
    fprintf(stderr, "unexpected cache hits\n");
    exit(1);
  }
  for (unsigned i = 0; i < k + m; i++)
    free(sh[i]);
  sft_fec_del(fec);
  return bench_median(v, SFT_BENCH_RUNS);
}

int main(void) {
  struct sft_fec *fec;
  struct sft_fec_stats st;
  double e256, d256, e1m, d1m;
  if (sft_fec_new(&fec, K, M) != 0) {
    fprintf(stderr, "sft_fec_new failed\n");
    return 1;
  }
  bench_size(fec, 256 * 1024, &e256, &d256);
  bench_size(fec, 1024 * 1024, &e1m, &d1m);
  sft_fec_get_stats(fec, &st);
  if (st.misses != 1) { /* every timed decode must be a cache hit */
    fprintf(stderr, "unexpected cache misses: %llu\n",
            (unsigned long long)st.misses);
    return 1;
  }
  sft_fec_del(fec);
  printf("fec_10_3_encode_gbps_256k=%.2f\n", e256);
  printf("fec_10_3_encode_gbps_1m=%.2f\n", e1m);
  printf("fec_10_3_decode3_gbps_256k=%.2f\n", d256);
  printf("fec_10_3_decode3_gbps_1m=%.2f\n", d1m);
  printf("fec_10_3_decode3_miss_us=%.2f\n", miss_us(10, 3, 3));
  printf("fec_200_55_decode55_miss_us=%.1f\n", miss_us(200, 55, 55));
  return 0;
}
