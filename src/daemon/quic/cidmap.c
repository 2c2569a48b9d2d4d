/* CID -> connection map: open addressing, linear probing, keyed hash (the
 * seed is random per context, so a client choosing its own initial DCIDs
 * cannot aim at one bucket chain). */
#include <stdlib.h>
#include <string.h>

#include "daemon/quic/quic_int.h"

static uint64_t cid_hash(uint64_t seed, const uint8_t *p, size_t n) {
  uint64_t h = seed ^ (0x9e3779b97f4a7c15ull * (n + 1));
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
    h ^= h >> 29;
  }
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

int sftq_cidmap_init(sftq_cidmap *m, uint64_t seed) {
  memset(m, 0, sizeof *m);
  m->seed = seed;
  m->cap = 64;
  m->tab = calloc(m->cap, sizeof *m->tab);
  return m->tab ? 0 : SFT_ERR_NOMEM;
}

void sftq_cidmap_free(sftq_cidmap *m) {
  free(m->tab);
  memset(m, 0, sizeof *m);
}

static sftq_cidmap_ent *find(const sftq_cidmap *m, const uint8_t *cid,
                             size_t len) {
  size_t mask = m->cap - 1;
  size_t i = (size_t)cid_hash(m->seed, cid, len) & mask;
  for (size_t n = 0; n < m->cap; n++, i = (i + 1) & mask) {
    sftq_cidmap_ent *e = &m->tab[i];
    if (e->used == 0) return NULL;
    if (e->used == 1 && e->len == len && memcmp(e->cid, cid, len) == 0)
      return e;
  }
  return NULL;
}

static int rehash(sftq_cidmap *m, size_t ncap) {
  sftq_cidmap_ent *old = m->tab;
  size_t ocap = m->cap;
  sftq_cidmap_ent *nt = calloc(ncap, sizeof *nt);
  if (!nt) return SFT_ERR_NOMEM;
  m->tab = nt;
  m->cap = ncap;
  m->tombs = 0;
  for (size_t i = 0; i < ocap; i++) {
    if (old[i].used != 1) continue;
    size_t j = (size_t)cid_hash(m->seed, old[i].cid, old[i].len) & (ncap - 1);
    while (nt[j].used) j = (j + 1) & (ncap - 1);
    nt[j] = old[i];
  }
  free(old);
  return 0;
}

int sftq_cidmap_put(sftq_cidmap *m, const uint8_t *cid, size_t len,
                    sftq_conn *c) {
  if (len > NGTCP2_MAX_CIDLEN) return SFT_ERR_INVAL;
  if (find(m, cid, len)) return SFT_ERR_EXISTS;
  if ((m->count + m->tombs + 1) * 2 > m->cap) {
    size_t ncap = m->cap;
    while ((m->count + 1) * 4 > ncap) ncap *= 2; /* load <= 1/4 after */
    int rv = rehash(m, ncap);
    if (rv) return rv;
  }
  size_t i = (size_t)cid_hash(m->seed, cid, len) & (m->cap - 1);
  while (m->tab[i].used == 1) i = (i + 1) & (m->cap - 1);
  if (m->tab[i].used == 2) m->tombs--;
  sftq_cidmap_ent *e = &m->tab[i];
  e->used = 1;
  e->len = (uint8_t)len;
  memcpy(e->cid, cid, len);
  e->conn = c;
  m->count++;
  return 0;
}

sftq_conn *sftq_cidmap_get(const sftq_cidmap *m, const uint8_t *cid,
                           size_t len) {
  if (len > NGTCP2_MAX_CIDLEN) return NULL;
  sftq_cidmap_ent *e = find(m, cid, len);
  return e ? e->conn : NULL;
}

void sftq_cidmap_del(sftq_cidmap *m, const uint8_t *cid, size_t len,
                     const sftq_conn *c) {
  if (len > NGTCP2_MAX_CIDLEN) return;
  sftq_cidmap_ent *e = find(m, cid, len);
  if (!e || e->conn != c) return;
  e->used = 2;
  e->conn = NULL;
  m->count--;
  m->tombs++;
}
