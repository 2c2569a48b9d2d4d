#include <stdbool.h>
#include <stdlib.h>

#include "netsim/pq.h"
#include "sft/err.h"

static bool before(const struct netsim_pq_item *a,
                   const struct netsim_pq_item *b) {
  return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

int netsim_pq_reserve(struct netsim_pq *q) {
  struct netsim_pq_item **v;
  size_t nc;
  if (q->n < q->cap)
    return 0;
  nc = q->cap ? q->cap * 2 : 256;
  v = realloc(q->v, nc * sizeof(*v));
  if (!v)
    return SFT_ERR_NOMEM;
  q->v = v;
  q->cap = nc;
  return 0;
}

void netsim_pq_push(struct netsim_pq *q, struct netsim_pq_item *x) {
  size_t i = q->n++;
  while (i > 0) {
    size_t par = (i - 1) / 2;
    if (!before(x, q->v[par]))
      break;
    q->v[i] = q->v[par];
    i = par;
  }
  q->v[i] = x;
}

struct netsim_pq_item *netsim_pq_pop(struct netsim_pq *q) {
  struct netsim_pq_item *top = q->v[0], *last = q->v[--q->n];
  size_t i = 0, n = q->n;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && before(q->v[c + 1], q->v[c]))
      c++;
    if (!before(q->v[c], last))
      break;
    q->v[i] = q->v[c];
    i = c;
  }
  if (n)
    q->v[i] = last;
  return top;
}

void netsim_pq_free(struct netsim_pq *q) {
  free(q->v);
  q->v = NULL;
  q->n = q->cap = 0;
}
