/*
 * Reed-Solomon erasure coding through ISA-L (see sft/fec.h and
 * docs/internals/fec.md).
 *
 * Decoding does not invert the k x k survivor matrix the textbook way. The
 * present data shards are identity rows, so only the e x e block of the
 * Cauchy matrix that links the e lost data shards to the e parity shards used
 * is inverted (any square block of a Cauchy matrix is invertible). For 200+55
 * that is a 55 x 55 inversion instead of 200 x 200 (about 50x less work).
 */
#include <isa-l/erasure_code.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "sft/fec.h"

/* ISA-L takes an int length: longer shards are coded in slices. */
#define FEC_SLICE ((size_t)1 << 30)

struct fec_slot {
  struct sft_fec_mask used; /* key: the k shards read (survivors) */
  struct sft_fec_mask outs; /* key: the shards rebuilt */
  uint64_t stamp;           /* last use (codec clock); 0 = empty slot */
  unsigned nout;            /* number of rebuilt shards */
  uint8_t *tbls;            /* ec_init_tables(k, nout, rows): 32*k*nout B */
  size_t cap;               /* bytes allocated at tbls */
};

struct sft_fec {
  unsigned k, m, emax; /* emax = min(k, m): largest lost-data count */
  uint8_t *mat;        /* (k+m) x k Cauchy generator; parity rows at k*k */
  uint8_t *enc_tbls;   /* ec_init_tables(k, m, parity rows) */
  uint8_t *cmat;       /* scratch e x e: block to invert (destroyed) */
  uint8_t *cinv;       /* scratch e x e: its inverse */
  uint8_t *rows;       /* scratch nout x k: decode matrix */
  struct fec_slot *slots;
  unsigned nslots;
  uint64_t clock; /* LRU clock, bumped on every lookup */
  struct sft_fec_stats st;
  void *(*alloc)(void *ud, size_t n);
  void (*dealloc)(void *ud, void *p);
  void *ud;
};

static void *std_alloc(void *ud, size_t n) {
  (void)ud;
  return malloc(n);
}

static void std_dealloc(void *ud, void *p) {
  (void)ud;
  free(p);
}

/* ISA-L's prototypes take non-const source pointers but never write them. */
static unsigned char *unconst(const uint8_t *p) {
  return (unsigned char *)(uintptr_t)p;
}

static void *fec_zalloc(struct sft_fec *fec, size_t n) {
  void *p = fec->alloc(fec->ud, n ? n : 1);
  if (p)
    memset(p, 0, n ? n : 1);
  return p;
}

void sft_fec_del(struct sft_fec *fec) {
  if (!fec)
    return;
  if (fec->slots)
    for (unsigned i = 0; i < fec->nslots; i++)
      fec->dealloc(fec->ud, fec->slots[i].tbls);
  fec->dealloc(fec->ud, fec->slots);
  fec->dealloc(fec->ud, fec->rows);
  fec->dealloc(fec->ud, fec->cinv);
  fec->dealloc(fec->ud, fec->cmat);
  fec->dealloc(fec->ud, fec->enc_tbls);
  fec->dealloc(fec->ud, fec->mat);
  fec->dealloc(fec->ud, fec);
}

int sft_fec_new_opts(struct sft_fec **out, unsigned k, unsigned m,
                     const struct sft_fec_opts *opts) {
  struct sft_fec *fec;
  void *(*alloc)(void *, size_t) = std_alloc;
  void (*dealloc)(void *, void *) = std_dealloc;
  void *ud = NULL;
  unsigned nslots = SFT_FEC_CACHE_DEFAULT;

  if (!out)
    return SFT_ERR_INVAL;
  *out = NULL;
  if (k == 0)
    return SFT_ERR_INVAL;
  if (k > SFT_MAX_STRIPE || m > SFT_MAX_STRIPE - k)
    return SFT_ERR_RANGE;
  if (opts) {
    if (!opts->alloc != !opts->dealloc)
      return SFT_ERR_INVAL;
    if (opts->cache_slots > SFT_FEC_CACHE_MAX)
      return SFT_ERR_RANGE;
    if (opts->cache_slots)
      nslots = opts->cache_slots;
    if (opts->alloc) {
      alloc = opts->alloc;
      dealloc = opts->dealloc;
      ud = opts->ud;
    }
  }

  fec = alloc(ud, sizeof(*fec));
  if (!fec)
    return SFT_ERR_NOMEM;
  memset(fec, 0, sizeof(*fec));
  fec->alloc = alloc;
  fec->dealloc = dealloc;
  fec->ud = ud;
  fec->k = k;
  fec->m = m;
  fec->emax = k < m ? k : m;
  fec->nslots = nslots;
  fec->st.slots = nslots;

  /* All sizes are bounded: k * (k+m) <= 255 * 255, tables <= 32 * 127 * 128. */
  fec->mat = fec_zalloc(fec, (size_t)(k + m) * k);
  fec->enc_tbls = fec_zalloc(fec, (size_t)32 * k * m);
  fec->cmat = fec_zalloc(fec, (size_t)fec->emax * fec->emax);
  fec->cinv = fec_zalloc(fec, (size_t)fec->emax * fec->emax);
  fec->rows = fec_zalloc(fec, (size_t)m * k);
  fec->slots = fec_zalloc(fec, sizeof(*fec->slots) * nslots);
  if (!fec->mat || !fec->enc_tbls || !fec->cmat || !fec->cinv || !fec->rows ||
      !fec->slots) {
    sft_fec_del(fec);
    return SFT_ERR_NOMEM;
  }
  gf_gen_cauchy1_matrix(fec->mat, (int)(k + m), (int)k);
  if (m)
    ec_init_tables((int)k, (int)m, fec->mat + (size_t)k * k, fec->enc_tbls);
  *out = fec;
  return 0;
}

int sft_fec_new(struct sft_fec **out, unsigned k, unsigned m) {
  return sft_fec_new_opts(out, k, m, NULL);
}

unsigned sft_fec_k(const struct sft_fec *fec) {
  return fec->k;
}
unsigned sft_fec_m(const struct sft_fec *fec) {
  return fec->m;
}

void sft_fec_get_stats(const struct sft_fec *fec, struct sft_fec_stats *out) {
  *out = fec->st;
}

/* ec_encode_data over |len| bytes, in int-sized slices. */
static void run_tables(size_t len, unsigned k, unsigned rows, uint8_t *tbls,
                       unsigned char **src, unsigned char **dst) {
  unsigned char *s[SFT_MAX_STRIPE], *d[SFT_MAX_STRIPE];
  size_t off = 0;

  if (len <= FEC_SLICE) {
    ec_encode_data((int)len, (int)k, (int)rows, tbls, src, dst);
    return;
  }
  while (off < len) {
    size_t n = len - off < FEC_SLICE ? len - off : FEC_SLICE;
    for (unsigned i = 0; i < k; i++)
      s[i] = src[i] + off;
    for (unsigned i = 0; i < rows; i++)
      d[i] = dst[i] + off;
    ec_encode_data((int)n, (int)k, (int)rows, tbls, s, d);
    off += n;
  }
}

int sft_fec_encode(const struct sft_fec *fec, const uint8_t *const data[],
                   uint8_t *const parity[], size_t len) {
  unsigned char *src[SFT_MAX_STRIPE], *dst[SFT_MAX_STRIPE];

  if (!fec || !data || len == 0)
    return SFT_ERR_INVAL;
  if (fec->m == 0)
    return 0;
  if (!parity)
    return SFT_ERR_INVAL;
  for (unsigned i = 0; i < fec->k; i++) {
    if (!data[i])
      return SFT_ERR_INVAL;
    src[i] = unconst(data[i]);
  }
  for (unsigned i = 0; i < fec->m; i++) {
    if (!parity[i])
      return SFT_ERR_INVAL;
    dst[i] = parity[i];
  }
  run_tables(len, fec->k, fec->m, fec->enc_tbls, src, dst);
  return 0;
}

static int mask_equal(const struct sft_fec_mask *a,
                      const struct sft_fec_mask *b) {
  return memcmp(a, b, sizeof(*a)) == 0;
}

/*
 * Builds the decode matrix fec->rows (nout x k, one row per rebuilt shard,
 * columns in survivor order) for survivors |used| = the k-e present data
 * shards then e parity shards par[0..e-1], lost data lost[0..e-1] and lost
 * parity outp[0..np-1]. Returns 0 or SFT_ERR_INVAL if the block is singular
 * (impossible for a Cauchy matrix; kept as a guard).
 */
static int build_rows(struct sft_fec *fec, const unsigned *dpres,
                      const unsigned *lost, unsigned e, const unsigned *par,
                      const unsigned *outp, unsigned np) {
  const unsigned k = fec->k;
  const uint8_t *M = fec->mat; /* M[i*k + j]: shard i from data shard j */
  uint8_t *R = fec->rows;
  unsigned nd = k - e; /* present data shards = first nd survivor columns */

  if (e) {
    /* C[a][b] = M[par[a]][lost[b]]; lost data = Cinv * (parity - known). */
    for (unsigned a = 0; a < e; a++)
      for (unsigned b = 0; b < e; b++)
        fec->cmat[a * e + b] = M[(size_t)par[a] * k + lost[b]];
    if (gf_invert_matrix(fec->cmat, fec->cinv, (int)e) != 0)
      return SFT_ERR_INVAL;
    for (unsigned b = 0; b < e; b++) {
      uint8_t *row = R + (size_t)b * k;
      const uint8_t *ci = fec->cinv + (size_t)b * e;
      for (unsigned c = 0; c < nd; c++) { /* present data column */
        uint8_t acc = 0;
        for (unsigned a = 0; a < e; a++)
          acc ^= gf_mul(ci[a], M[(size_t)par[a] * k + dpres[c]]);
        row[c] = acc;
      }
      for (unsigned a = 0; a < e; a++) /* parity column */
        row[nd + a] = ci[a];
    }
  }
  for (unsigned q = 0; q < np; q++) {
    /* parity = sum_j M[p][j] d_j, with lost d_j replaced by their rows */
    uint8_t *row = R + (size_t)(e + q) * k;
    const uint8_t *mp = M + (size_t)outp[q] * k;
    for (unsigned c = 0; c < k; c++) {
      uint8_t acc = c < nd ? mp[dpres[c]] : 0;
      for (unsigned b = 0; b < e; b++)
        acc ^= gf_mul(mp[lost[b]], R[(size_t)b * k + c]);
      row[c] = acc;
    }
  }
  return 0;
}

int sft_fec_decode(struct sft_fec *fec, uint8_t *const shards[],
                   const struct sft_fec_mask *present, size_t len,
                   unsigned flags) {
  unsigned char *src[SFT_MAX_STRIPE], *dst[SFT_MAX_STRIPE];
  unsigned dpres[SFT_MAX_STRIPE], lost[SFT_MAX_STRIPE], par[SFT_MAX_STRIPE];
  unsigned outp[SFT_MAX_STRIPE];
  unsigned k, n, e = 0, nd = 0, npar = 0, np = 0, missing, nout;
  struct sft_fec_mask all, used = {{0}}, outs = {{0}};
  struct fec_slot *slot = NULL, *victim = NULL;
  uint8_t *tbls;

  if (!fec || !shards || !present || len == 0 || (flags & ~SFT_FEC_PARITY))
    return SFT_ERR_INVAL;
  k = fec->k;
  n = k + fec->m;
  all = sft_fec_mask_first(n);
  missing = 0;
  for (unsigned w = 0; w < 4; w++) {
    if (present->w[w] & ~all.w[w])
      return SFT_ERR_INVAL;
    missing += (unsigned)__builtin_popcountll(all.w[w] & ~present->w[w]);
  }
  if (missing > fec->m)
    return SFT_ERR_ERASURES;

  /* Survivors: every present data shard, then the first e present parity
   * shards (= the first k present shards by index). */
  for (unsigned i = 0; i < k; i++) {
    if (sft_fec_mask_test(present, i))
      dpres[nd++] = i;
    else
      lost[e++] = i;
  }
  for (unsigned i = k; i < n; i++) {
    if (sft_fec_mask_test(present, i)) {
      if (npar < e)
        par[npar++] = i;
    } else if (flags & SFT_FEC_PARITY) {
      outp[np++] = i;
    }
  }
  nout = e + np;
  if (nout == 0)
    return 0;

  for (unsigned c = 0; c < nd; c++)
    src[c] = shards[dpres[c]];
  for (unsigned a = 0; a < e; a++)
    src[nd + a] = shards[par[a]];
  for (unsigned b = 0; b < e; b++)
    dst[b] = shards[lost[b]];
  for (unsigned q = 0; q < np; q++)
    dst[e + q] = shards[outp[q]];
  for (unsigned i = 0; i < k; i++)
    if (!src[i])
      return SFT_ERR_INVAL;
  for (unsigned i = 0; i < nout; i++)
    if (!dst[i])
      return SFT_ERR_INVAL;

  for (unsigned c = 0; c < nd; c++)
    sft_fec_mask_set(&used, dpres[c]);
  for (unsigned a = 0; a < e; a++)
    sft_fec_mask_set(&used, par[a]);
  for (unsigned b = 0; b < e; b++)
    sft_fec_mask_set(&outs, lost[b]);
  for (unsigned q = 0; q < np; q++)
    sft_fec_mask_set(&outs, outp[q]);

  /* Cache lookup; remember the least recently used (or an empty) slot. */
  fec->clock++;
  for (unsigned s = 0; s < fec->nslots; s++) {
    struct fec_slot *z = &fec->slots[s];
    if (z->stamp == 0) {
      if (!victim || victim->stamp != 0)
        victim = z;
      continue;
    }
    if (mask_equal(&z->used, &used) && mask_equal(&z->outs, &outs)) {
      slot = z;
      break;
    }
    if (!victim || (victim->stamp != 0 && z->stamp < victim->stamp))
      victim = z;
  }

  if (slot) {
    fec->st.hits++;
  } else {
    size_t need = (size_t)32 * k * nout;
    int rv = build_rows(fec, dpres, lost, e, par, outp, np);
    if (rv)
      return rv;
    slot = victim;
    if (slot->cap < need) {
      /* Allocate before dropping the old entry so a failure leaves the cache
       * as it was. */
      uint8_t *p = fec->alloc(fec->ud, need);
      if (!p)
        return SFT_ERR_NOMEM;
      fec->dealloc(fec->ud, slot->tbls);
      slot->tbls = p;
      slot->cap = need;
    }
    if (slot->stamp != 0)
      fec->st.evictions++;
    else
      fec->st.entries++;
    ec_init_tables((int)k, (int)nout, fec->rows, slot->tbls);
    slot->used = used;
    slot->outs = outs;
    slot->nout = nout;
    fec->st.misses++;
  }
  slot->stamp = fec->clock;
  tbls = slot->tbls;
  run_tables(len, k, nout, tbls, src, dst);
  return 0;
}
