#include <stdlib.h>
#include <time.h>

#include "benchutil.h"

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_median(double *v, size_t n) {
  qsort(v, n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_fill(void *p, size_t n, uint64_t seed) {
  uint8_t *q = p;
  uint64_t x = seed ? seed : 0x9e3779b97f4a7c15ULL;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    q[i] = (uint8_t)x;
  }
}

volatile uint8_t bench_sink;

void bench_consume(const void *p, size_t n) {
  const uint8_t *q = p;
  uint8_t x = 0;
  for (size_t i = 0; i < n; i++)
    x ^= q[i];
  bench_sink = x;
}
