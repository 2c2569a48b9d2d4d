/*
 * The delivery queue shared by the proxy and the TUN link: a binary
 * min-heap of packets ordered by delivery time, then arrival sequence (so
 * packets due at the same time keep their order). Packets embed a
 * struct netsim_pq_item as their FIRST member; the heap stores pointers.
 */
#ifndef NETSIM_PQ_H
#define NETSIM_PQ_H

#include <stddef.h>
#include <stdint.h>

struct netsim_pq_item {
  uint64_t t;   /* delivery time, ns */
  uint64_t seq; /* arrival order */
};

struct netsim_pq {
  struct netsim_pq_item **v;
  size_t n, cap;
};

/* Makes room for one more item. 0 or SFT_ERR_NOMEM. */
int netsim_pq_reserve(struct netsim_pq *q);
/* Adds |x|; the caller reserved room first. */
void netsim_pq_push(struct netsim_pq *q, struct netsim_pq_item *x);
/* Removes and returns the earliest item; the queue must not be empty. */
struct netsim_pq_item *netsim_pq_pop(struct netsim_pq *q);
/* Frees the array (not the items). */
void netsim_pq_free(struct netsim_pq *q);

#endif
