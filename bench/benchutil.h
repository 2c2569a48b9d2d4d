/*
 * Helpers for the micro benchmarks (`make bench-micro`). Each bench program
 * prints `name=value` lines; values are medians over SFT_BENCH_RUNS runs.
 */
#ifndef SFT_BENCHUTIL_H
#define SFT_BENCHUTIL_H

#include <stddef.h>
#include <stdint.h>

#define SFT_BENCH_RUNS 5

/* Monotonic time in seconds. */
double bench_now(void);

/* Median of |n| values (sorts |v| in place). */
double bench_median(double *v, size_t n);

/* Fill |p| with |n| deterministic pseudo-random bytes from |seed|. */
void bench_fill(void *p, size_t n, uint64_t seed);

/* Keep the compiler from discarding a computed value. */
extern volatile uint8_t bench_sink;
void bench_consume(const void *p, size_t n);

#endif
