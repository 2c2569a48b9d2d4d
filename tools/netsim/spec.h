/*
 * netsim spec strings: the command-line / test syntax for an impairment
 * configuration, parsed strictly and printed back canonically.
 *
 *   spec  := "" | item ("," item)*
 *   item  := [("up." | "down.")] key "=" value
 *
 * A key without prefix sets both directions ("up" = client -> server,
 * "down" = server -> client); items apply left to right, so
 * "delay=10ms,down.delay=30ms" gives up 10 ms, down 30 ms. Keys, values:
 *   loss=P          Bernoulli loss                     P: "5%", "0.25%"
 *   ge=P:B          Gilbert-Elliott from average loss P, mean burst B pkts
 *   ge_pgb=P ge_pbg=P ge_lossg=P ge_lossb=P   raw Gilbert-Elliott
 *   delay=T jitter=T   (each <= 10 s)           T: "25ms" "1.5s" "200us" "7ns"
 *   jitterdist=uniform|normal
 *   rate=R          1kbit..100gbit                     R: "100mbit" "1.5gbit"
 *   queue=T         drop-tail queue size at rate (<= 10 s; default 50ms)
 *   reorder=P reorderdelay=T (<= 10 s; default 10ms)
 *   dup=P corrupt=P
 *   outage=[Nx]D[/P]@S  N windows of D, one every P (P >= D, needed when
 *                   N > 1), the first at S; repeated keys append (<= 16)
 *   seed=N          decimal uint64, no prefix
 * Percentages have at most 7 decimals (1 ppb), times at most ns precision,
 * rates integral bits/s. Units are lowercase; no spaces.
 */
#ifndef NETSIM_SPEC_H
#define NETSIM_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netsim/model.h"

#define NETSIM_SPEC_MAX_LEN 4096   /* longest accepted spec string */
#define NETSIM_SPEC_FMT_MAX 8192   /* enough for any formatted spec */

struct netsim_spec {
  struct netsim_dir_cfg up;    /* client -> server */
  struct netsim_dir_cfg down;  /* server -> client */
  uint64_t seed;
};

/* What failed: the offending item's key (with prefix, truncated, NUL
 * terminated; "" if the spec as a whole is at fault) and its offset. */
struct netsim_spec_err {
  char key[40];
  size_t offset;
};

/* Both directions clean (netsim_dir_cfg_default), seed 0. */
void netsim_spec_default(struct netsim_spec *s);

/* Parses |len| bytes of |str| (need not be NUL terminated) into |*out|
 * (written only on success). |err| may be NULL. Returns 0, or
 * SFT_ERR_TOO_LARGE (longer than NETSIM_SPEC_MAX_LEN), SFT_ERR_INVAL
 * (unknown key, bad prefix, missing "=", empty item), SFT_ERR_MALFORMED
 * (bad number or unit), SFT_ERR_RANGE (value outside its bounds),
 * SFT_ERR_FULL (more than NETSIM_MAX_OUTAGES outages). */
int netsim_spec_parse(const char *str, size_t len, struct netsim_spec *out,
                      struct netsim_spec_err *err);

/* Prints |s| canonically into |buf| (NUL terminated); only non-default
 * fields appear, so a clean spec prints "". The result parses back to an
 * equal spec. Returns 0 or SFT_ERR_NOSPACE (|buf| holds a truncated
 * string). */
int netsim_spec_format(const struct netsim_spec *s, char *buf, size_t cap);

/* Field-wise equality (padding ignored). */
bool netsim_spec_equal(const struct netsim_spec *a, const struct netsim_spec *b);
bool netsim_dir_cfg_equal(const struct netsim_dir_cfg *a,
                          const struct netsim_dir_cfg *b);

#endif /* NETSIM_SPEC_H */
