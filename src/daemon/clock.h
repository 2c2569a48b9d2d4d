/* The daemon's clocks: the only place time enters sft; libsft takes it as an
 * argument. */
#ifndef SFTD_CLOCK_H
#define SFTD_CLOCK_H

#include <stdint.h>

/* Monotonic nanoseconds (CLOCK_MONOTONIC), for timers and rates. */
uint64_t sftd_now_ns(void);

/* Wall-clock nanoseconds since the epoch, for mtimes and records. */
uint64_t sftd_wall_ns(void);

#endif
