/*
 * Chunk hashing throughput on one core: 1 MiB chunks hashed one-shot with
 * sft_hash(), the way the sender hashes what it reads. 256 MiB per run, taken
 * from a 64 MiB buffer of pseudo-random bytes; prints GB/s (1e9 bytes/s),
 * the median of SFT_BENCH_RUNS runs, plus the sft root over 1 Mi digests.
 */
#include <stdio.h>
#include <stdlib.h>

#include "benchutil.h"
#include "sft/hash.h"

#define CHUNK (1024u * 1024)
#define BUF_BYTES (64u * CHUNK)
#define RUN_BYTES (256u * CHUNK)

static double chunk_gbps(enum sft_hash_algo algo, const uint8_t *buf) {
  double v[SFT_BENCH_RUNS];
  uint8_t d[SFT_HASH_LEN];
  /* warm-up: page faults, CPU dispatch */
  for (size_t off = 0; off < BUF_BYTES; off += CHUNK)
    (void)sft_hash(algo, buf + off, CHUNK, d);
  for (int r = 0; r < SFT_BENCH_RUNS; r++) {
    double t0 = bench_now();
    for (size_t done = 0; done < RUN_BYTES; done += CHUNK) {
      (void)sft_hash(algo, buf + done % BUF_BYTES, CHUNK, d);
      bench_consume(d, 1);
    }
    v[r] = (double)RUN_BYTES / (bench_now() - t0) / 1e9;
  }
  return bench_median(v, SFT_BENCH_RUNS);
}

/* Millions of chunk digests folded into a root per second. */
static double root_mleaves(void) {
  enum { N = 1 << 20 };
  double v[SFT_BENCH_RUNS];
  uint8_t *d = malloc((size_t)N * SFT_HASH_LEN), out[SFT_HASH_LEN];
  if (!d)
    return 0;
  bench_fill(d, (size_t)N * SFT_HASH_LEN, 7);
  for (int r = 0; r < SFT_BENCH_RUNS; r++) {
    double t0 = bench_now();
    (void)sft_root(SFT_HASH_BLAKE3, d, N, out);
    bench_consume(out, sizeof(out));
    v[r] = N / (bench_now() - t0) / 1e6;
  }
  free(d);
  return bench_median(v, SFT_BENCH_RUNS);
}

int main(void) {
  uint8_t *buf = malloc(BUF_BYTES);
  if (!buf) {
    fprintf(stderr, "bench_hash: out of memory\n");
    return 1;
  }
  bench_fill(buf, BUF_BYTES, 42);
  printf("blake3_gbps=%.2f\n", chunk_gbps(SFT_HASH_BLAKE3, buf));
  printf("sha256_gbps=%.2f\n", chunk_gbps(SFT_HASH_SHA256, buf));
  printf("root_blake3_mleaves_per_s=%.2f\n", root_mleaves());
  free(buf);
  return 0;
}
