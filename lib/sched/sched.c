/*
 * Priority scheduler (see sft/sched.h and docs/internals/sched.md).
 *
 * Storage: every array is allocated by sft_sched_new() and addressed by
 * 32-bit indices (NONE = UINT32_MAX), so no call after creation allocates.
 *
 *   nodes[]   one per queued item. A node is in exactly one place: the free
 *             list, its transfer's FIFO, its transfer's pairing heap, or the
 *             backoff heap (theap).
 *   xf[]      transfer records, found by id through a chained hash table
 *             (bucket[]). A record lives while its transfer has queued items
 *             or is paused.
 *   cheap[c]  per class, a binary min-heap of the ACTIVE transfers of class
 *             c (not paused, at least one eligible item), keyed by their
 *             start tag (start-time fair queueing), ties by activation order.
 *   theap     binary min-heap of backed-off nodes by eligible time.
 *
 * Why two structures per transfer: sequence numbers nearly always arrive in
 * order, so the FIFO (append if seq >= tail) is O(1) both ways. The rare
 * out-of-order item (a requeue whose backoff ended, or a late enqueue) goes
 * to an intrusive pairing heap; dequeue takes the smaller of the two heads,
 * which keeps the whole transfer in ascending sequence order.
 */
#include <stdlib.h>
#include <string.h>

#include "sft/sched.h"

#define NONE UINT32_MAX
#define CLS_NONE 0xffu /* record created by pause, no item seen yet */

struct node {
  uint64_t seq;
  union sft_sched_user user;
  uint64_t ready_at; /* eligible from (enqueue time or end of backoff) */
  uint32_t size;
  uint32_t xf;    /* owning transfer record */
  uint32_t next;  /* FIFO next, pairing-heap sibling, or free-list next */
  uint32_t child; /* pairing-heap first child */
  uint32_t tpos;  /* index in theap while backing off */
  uint8_t retries;
};

struct xfer {
  uint64_t id;
  uint64_t stag;       /* start tag while active (class virtual time, bytes) */
  uint64_t ftag;       /* finish tag of the last item served */
  uint64_t stamp;      /* activation order, breaks ties between equal tags */
  uint64_t bytes;      /* queued bytes, all states */
  uint32_t items;      /* queued items, all states */
  uint32_t nready;     /* items in the FIFO + pairing heap */
  uint32_t head, tail; /* FIFO */
  uint32_t proot;      /* pairing heap root */
  uint32_t hpos;       /* index in cheap[cls], NONE when inactive */
  uint32_t hnext;      /* hash chain, or free-list next */
  uint8_t cls;
  uint8_t paused;
};

struct cstats {
  uint64_t pend_items, pend_bytes, deq_items, deq_bytes;
  uint64_t wait_sum, wait_max, requeues, drops, removed;
};

struct sft_sched {
  struct sft_sched_mem mem;
  uint32_t cap, max_xfers, max_retries;
  uint64_t backoff;

  /* DRR over classes */
  int64_t quantum[SFT_SCHED_NCLASS];
  int64_t deficit[SFT_SCHED_NCLASS];
  unsigned cur;

  /* fair queueing between the transfers of a class */
  uint64_t vtime[SFT_SCHED_NCLASS];
  uint64_t stamp;

  struct node *nodes;
  uint32_t free_node, nlen;

  struct xfer *xf;
  uint32_t free_xf, nxf, npaused;
  uint32_t *bucket;
  unsigned bshift;

  uint32_t *cheap[SFT_SCHED_NCLASS];
  uint32_t chn[SFT_SCHED_NCLASS];

  uint32_t *theap;
  uint32_t tn;

  struct cstats st[SFT_SCHED_NCLASS];
};

/* ---- allocation ---------------------------------------------------------*/

static void *def_zalloc(size_t nmemb, size_t size, void *ud) {
  (void)ud;
  return calloc(nmemb, size);
}

static void def_free(void *p, void *ud) {
  (void)ud;
  free(p);
}

static void *zalloc(const struct sft_sched_mem *m, size_t nmemb, size_t size) {
  return m->zalloc(nmemb, size, m->ud);
}

void sft_sched_config_default(struct sft_sched_config *cfg) {
  if (!cfg)
    return;
  memset(cfg, 0, sizeof(*cfg));
  cfg->capacity = SFT_SCHED_DEFAULT_CAPACITY;
  cfg->max_xfers = 0;
  cfg->weight[SFT_SCHED_CRITICAL] = 50;
  cfg->weight[SFT_SCHED_HIGH] = 30;
  cfg->weight[SFT_SCHED_NORMAL] = 20;
  cfg->quantum_unit = SFT_SCHED_DEFAULT_QUANTUM_UNIT;
  cfg->max_retries = SFT_SCHED_DEFAULT_MAX_RETRIES;
  cfg->backoff_base_ns = SFT_SCHED_DEFAULT_BACKOFF_NS;
}

static int config_check(const struct sft_sched_config *c) {
  if (c->capacity < 1 || c->capacity > SFT_SCHED_MAX_CAPACITY)
    return SFT_ERR_INVAL;
  if (c->max_xfers > SFT_SCHED_MAX_CAPACITY)
    return SFT_ERR_INVAL;
  for (int i = 0; i < SFT_SCHED_NCLASS; i++)
    if (c->weight[i] < 1 || c->weight[i] > SFT_SCHED_MAX_WEIGHT)
      return SFT_ERR_INVAL;
  if (c->quantum_unit < 1 || c->quantum_unit > SFT_SCHED_MAX_QUANTUM_UNIT)
    return SFT_ERR_INVAL;
  if (c->max_retries > SFT_SCHED_MAX_RETRIES)
    return SFT_ERR_INVAL;
  if (c->backoff_base_ns == 0)
    return SFT_ERR_INVAL;
  if ((c->mem.zalloc == NULL) != (c->mem.free == NULL))
    return SFT_ERR_INVAL;
  return 0;
}

int sft_sched_new(sft_sched **ps, const struct sft_sched_config *cfg) {
  struct sft_sched_config defcfg;
  struct sft_sched_mem mem;
  struct sft_sched *s;
  uint32_t nb;
  unsigned bits;

  if (!ps)
    return SFT_ERR_INVAL;
  *ps = NULL;
  if (!cfg) {
    sft_sched_config_default(&defcfg);
    cfg = &defcfg;
  }
  if (config_check(cfg))
    return SFT_ERR_INVAL;
  mem = cfg->mem;
  if (!mem.zalloc) {
    mem.zalloc = def_zalloc;
    mem.free = def_free;
    mem.ud = NULL;
  }

  s = zalloc(&mem, 1, sizeof(*s));
  if (!s)
    goto fail_sched;
  s->mem = mem;
  s->cap = cfg->capacity;
  s->max_xfers = cfg->max_xfers ? cfg->max_xfers : cfg->capacity;
  s->max_retries = cfg->max_retries;
  s->backoff = cfg->backoff_base_ns;
  for (int c = 0; c < SFT_SCHED_NCLASS; c++)
    s->quantum[c] = (int64_t)cfg->weight[c] * cfg->quantum_unit;

  s->nodes = zalloc(&mem, s->cap, sizeof(*s->nodes));
  if (!s->nodes)
    goto fail_nodes;
  s->xf = zalloc(&mem, s->max_xfers, sizeof(*s->xf));
  if (!s->xf)
    goto fail_xf;
  /* buckets: a power of two >= 2 * max_xfers */
  for (bits = 4; ((uint64_t)1 << bits) < 2 * (uint64_t)s->max_xfers; bits++)
    ;
  nb = (uint32_t)1 << bits;
  s->bshift = 64 - bits;
  s->bucket = zalloc(&mem, nb, sizeof(*s->bucket));
  if (!s->bucket)
    goto fail_bucket;
  s->cheap[0] = zalloc(&mem, (size_t)s->max_xfers * SFT_SCHED_NCLASS,
                       sizeof(*s->cheap[0]));
  if (!s->cheap[0])
    goto fail_cheap;
  s->theap = zalloc(&mem, s->cap, sizeof(*s->theap));
  if (!s->theap)
    goto fail_theap;

  for (int c = 1; c < SFT_SCHED_NCLASS; c++)
    s->cheap[c] = s->cheap[0] + (size_t)c * s->max_xfers;
  for (uint32_t i = 0; i < nb; i++)
    s->bucket[i] = NONE;
  for (uint32_t i = 0; i < s->cap; i++)
    s->nodes[i].next = i + 1 < s->cap ? i + 1 : NONE;
  s->free_node = 0;
  for (uint32_t i = 0; i < s->max_xfers; i++)
    s->xf[i].hnext = i + 1 < s->max_xfers ? i + 1 : NONE;
  s->free_xf = 0;
  s->cur = SFT_SCHED_NORMAL; /* first pick moves on to Critical */
  *ps = s;
  return 0;

fail_theap:
  mem.free(s->cheap[0], mem.ud);
fail_cheap:
  mem.free(s->bucket, mem.ud);
fail_bucket:
  mem.free(s->xf, mem.ud);
fail_xf:
  mem.free(s->nodes, mem.ud);
fail_nodes:
  mem.free(s, mem.ud);
fail_sched:
  return SFT_ERR_NOMEM;
}

void sft_sched_del(sft_sched *s) {
  if (!s)
    return;
  struct sft_sched_mem mem = s->mem;
  mem.free(s->theap, mem.ud);
  mem.free(s->cheap[0], mem.ud);
  mem.free(s->bucket, mem.ud);
  mem.free(s->xf, mem.ud);
  mem.free(s->nodes, mem.ud);
  mem.free(s, mem.ud);
}

/* ---- transfer records ---------------------------------------------------*/

static uint32_t hash_id(const struct sft_sched *s, uint64_t id) {
  return (uint32_t)((id * 0x9E3779B97F4A7C15ull) >> s->bshift);
}

static uint32_t xf_find(const struct sft_sched *s, uint64_t id) {
  uint32_t x = s->bucket[hash_id(s, id)];
  while (x != NONE && s->xf[x].id != id)
    x = s->xf[x].hnext;
  return x;
}

/* Takes a free record for |id| (caller checked free_xf != NONE). */
static uint32_t xf_create(struct sft_sched *s, uint64_t id, unsigned cls) {
  uint32_t x = s->free_xf, h = hash_id(s, id);
  struct xfer *r = &s->xf[x];
  s->free_xf = r->hnext;
  memset(r, 0, sizeof(*r));
  r->id = id;
  r->head = r->tail = r->proot = r->hpos = NONE;
  r->cls = (uint8_t)cls;
  r->hnext = s->bucket[h];
  s->bucket[h] = x;
  s->nxf++;
  return x;
}

static void xf_release(struct sft_sched *s, uint32_t x) {
  uint32_t *pp = &s->bucket[hash_id(s, s->xf[x].id)];
  while (*pp != x)
    pp = &s->xf[*pp].hnext;
  *pp = s->xf[x].hnext;
  s->xf[x].hnext = s->free_xf;
  s->free_xf = x;
  s->nxf--;
}

/* ---- class heaps of active transfers ------------------------------------*/

static int xf_less(const struct sft_sched *s, uint32_t a, uint32_t b) {
  const struct xfer *p = &s->xf[a], *q = &s->xf[b];
  return p->stag < q->stag || (p->stag == q->stag && p->stamp < q->stamp);
}

static void ch_set(struct sft_sched *s, unsigned c, uint32_t i, uint32_t x) {
  s->cheap[c][i] = x;
  s->xf[x].hpos = i;
}

static void ch_up(struct sft_sched *s, unsigned c, uint32_t i) {
  uint32_t x = s->cheap[c][i];
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (!xf_less(s, x, s->cheap[c][p]))
      break;
    ch_set(s, c, i, s->cheap[c][p]);
    i = p;
  }
  ch_set(s, c, i, x);
}

static void ch_down(struct sft_sched *s, unsigned c, uint32_t i) {
  uint32_t n = s->chn[c], x = s->cheap[c][i];
  for (;;) {
    uint32_t l = 2 * i + 1, m;
    if (l >= n)
      break;
    m = l;
    if (l + 1 < n && xf_less(s, s->cheap[c][l + 1], s->cheap[c][l]))
      m = l + 1;
    if (!xf_less(s, s->cheap[c][m], x))
      break;
    ch_set(s, c, i, s->cheap[c][m]);
    i = m;
  }
  ch_set(s, c, i, x);
}

/* Transfer |x| gets its first eligible item (or is resumed): it joins its
 * class at max(its finish tag, class virtual time), so an idle transfer
 * neither banks credit nor loses its place. */
static void activate(struct sft_sched *s, uint32_t x) {
  struct xfer *r = &s->xf[x];
  unsigned c = r->cls;
  r->stag = r->ftag > s->vtime[c] ? r->ftag : s->vtime[c];
  r->stamp = ++s->stamp;
  s->cheap[c][s->chn[c]++] = x;
  ch_up(s, c, s->chn[c] - 1);
}

static void deactivate(struct sft_sched *s, uint32_t x) {
  struct xfer *r = &s->xf[x];
  unsigned c = r->cls;
  uint32_t i = r->hpos, last = s->cheap[c][--s->chn[c]];
  r->hpos = NONE;
  if (i == s->chn[c])
    return;
  ch_set(s, c, i, last);
  ch_up(s, c, i);
  ch_down(s, c, s->xf[last].hpos);
}

/* ---- per-transfer ready set: FIFO + pairing heap by seq ----------------*/

static uint32_t ph_meld(struct node *nd, uint32_t a, uint32_t b) {
  if (a == NONE)
    return b;
  if (b == NONE)
    return a;
  if (nd[b].seq < nd[a].seq) {
    uint32_t t = a;
    a = b;
    b = t;
  }
  nd[b].next = nd[a].child;
  nd[a].child = b;
  return a;
}

/* Removes the root; returns the new root (two-pass pairing). */
static uint32_t ph_pop(struct node *nd, uint32_t root) {
  uint32_t c = nd[root].child, acc = NONE, r = NONE;
  while (c != NONE) {
    uint32_t a = c, b = nd[a].next, m;
    if (b == NONE) {
      nd[a].next = acc;
      acc = a;
      break;
    }
    c = nd[b].next;
    nd[a].next = nd[b].next = NONE;
    m = ph_meld(nd, a, b);
    nd[m].next = acc;
    acc = m;
  }
  while (acc != NONE) {
    uint32_t n = nd[acc].next;
    nd[acc].next = NONE;
    r = ph_meld(nd, r, acc);
    acc = n;
  }
  return r;
}

static void ready_insert(struct sft_sched *s, uint32_t x, uint32_t n) {
  struct xfer *r = &s->xf[x];
  struct node *nd = s->nodes;
  nd[n].next = NONE;
  nd[n].child = NONE;
  if (r->head == NONE) {
    r->head = r->tail = n;
  } else if (nd[n].seq >= nd[r->tail].seq) {
    nd[r->tail].next = n;
    r->tail = n;
  } else {
    r->proot = ph_meld(nd, r->proot, n);
  }
  r->nready++;
  if (!r->paused && r->hpos == NONE)
    activate(s, x);
}

static uint32_t ready_pop(struct sft_sched *s, struct xfer *r) {
  struct node *nd = s->nodes;
  uint32_t h = r->head, p = r->proot;
  r->nready--;
  if (p != NONE && (h == NONE || nd[p].seq < nd[h].seq)) {
    r->proot = ph_pop(nd, p);
    return p;
  }
  r->head = nd[h].next;
  if (r->head == NONE)
    r->tail = NONE;
  return h;
}

/* ---- backoff heap --------------------------------------------------------*/

static void th_set(struct sft_sched *s, uint32_t i, uint32_t n) {
  s->theap[i] = n;
  s->nodes[n].tpos = i;
}

static void th_up(struct sft_sched *s, uint32_t i) {
  uint32_t n = s->theap[i];
  uint64_t t = s->nodes[n].ready_at;
  while (i > 0) {
    uint32_t p = (i - 1) / 2;
    if (s->nodes[s->theap[p]].ready_at <= t)
      break;
    th_set(s, i, s->theap[p]);
    i = p;
  }
  th_set(s, i, n);
}

static void th_down(struct sft_sched *s, uint32_t i) {
  uint32_t n = s->theap[i];
  uint64_t t = s->nodes[n].ready_at;
  for (;;) {
    uint32_t l = 2 * i + 1, m;
    if (l >= s->tn)
      break;
    m = l;
    if (l + 1 < s->tn &&
        s->nodes[s->theap[l + 1]].ready_at < s->nodes[s->theap[l]].ready_at)
      m = l + 1;
    if (s->nodes[s->theap[m]].ready_at >= t)
      break;
    th_set(s, i, s->theap[m]);
    i = m;
  }
  th_set(s, i, n);
}

/* Moves every node whose backoff has ended into its transfer. */
static void promote(struct sft_sched *s, uint64_t now) {
  while (s->tn && s->nodes[s->theap[0]].ready_at <= now) {
    uint32_t n = s->theap[0];
    if (--s->tn) {
      th_set(s, 0, s->theap[s->tn]);
      th_down(s, 0);
    }
    s->nodes[n].tpos = NONE;
    ready_insert(s, s->nodes[n].xf, n);
  }
}

/* ---- class selection: deficit round robin --------------------------------*/

/* Deficit round robin with carried debt: the current class sends while its
 * deficit is positive (an item may overdraw it; the debt is repaid from later
 * quanta), then the turn passes and the next eligible class gets its
 * quantum. A class without eligible items is skipped and loses unused credit
 * (work conservation); it keeps its debt. When items are much larger than
 * the quanta, whole rounds in which nobody can send are skipped arithmetically
 * so a pick costs at most 7 steps. Returns -1 when nothing is eligible. */
static int pick_class(struct sft_sched *s) {
  unsigned elig = 0, jumped = 0;
  for (unsigned c = 0; c < SFT_SCHED_NCLASS; c++)
    if (s->chn[c])
      elig |= 1u << c;
  if (!elig)
    return -1;
  for (unsigned step = 0;; step++) {
    unsigned c = s->cur;
    if (elig >> c & 1) {
      if (s->deficit[c] > 0)
        return (int)c;
    } else if (s->deficit[c] > 0) {
      s->deficit[c] = 0;
    }
    if (step == SFT_SCHED_NCLASS && !jumped) {
      /* Every eligible class was replenished and is still <= 0: add the
       * k - 1 rounds after which the first of them turns positive. */
      int64_t k = INT64_MAX;
      for (unsigned e = 0; e < SFT_SCHED_NCLASS; e++) {
        if (elig >> e & 1) {
          int64_t need =
              (1 - s->deficit[e] + s->quantum[e] - 1) / s->quantum[e];
          if (need < k)
            k = need;
        }
      }
      for (unsigned e = 0; e < SFT_SCHED_NCLASS; e++)
        if (elig >> e & 1)
          s->deficit[e] += (k - 1) * s->quantum[e];
      jumped = 1;
    }
    c = c + 1 == SFT_SCHED_NCLASS ? 0 : c + 1;
    s->cur = c;
    if (elig >> c & 1)
      s->deficit[c] += s->quantum[c];
  }
}

/* ---- public operations ---------------------------------------------------*/

static int item_check(const struct sft_sched_item *it) {
  if (!it || it->cls >= SFT_SCHED_NCLASS || it->size == 0)
    return SFT_ERR_INVAL;
  return 0;
}

/* Finds or creates the record for an item about to be queued; NONE if it
 * must be created and none is free. A node must be free too. */
static uint32_t xf_for_item(struct sft_sched *s,
                            const struct sft_sched_item *it) {
  uint32_t x = xf_find(s, it->xfer);
  if (x == NONE) {
    if (s->free_xf == NONE)
      return NONE;
    x = xf_create(s, it->xfer, it->cls);
  } else if (s->xf[x].cls == CLS_NONE) {
    s->xf[x].cls = it->cls; /* paused before its first item */
  }
  return x;
}

static uint32_t node_take(struct sft_sched *s, uint32_t x,
                          const struct sft_sched_item *it, uint64_t ready_at,
                          uint8_t retries) {
  uint32_t n = s->free_node;
  struct node *nd = &s->nodes[n];
  struct xfer *r = &s->xf[x];
  s->free_node = nd->next;
  s->nlen++;
  nd->seq = it->seq;
  nd->user = it->user;
  nd->ready_at = ready_at;
  nd->size = it->size;
  nd->xf = x;
  nd->retries = retries;
  nd->tpos = NONE;
  r->items++;
  r->bytes += it->size;
  s->st[r->cls].pend_items++;
  s->st[r->cls].pend_bytes += it->size;
  return n;
}

static void node_put(struct sft_sched *s, uint32_t n) {
  s->nodes[n].next = s->free_node;
  s->free_node = n;
  s->nlen--;
}

int sft_sched_enqueue(sft_sched *s, const struct sft_sched_item *it,
                      uint64_t now) {
  uint32_t x, n;
  if (!s || item_check(it))
    return SFT_ERR_INVAL;
  if (s->free_node == NONE)
    return SFT_ERR_FULL;
  x = xf_for_item(s, it);
  if (x == NONE)
    return SFT_ERR_FULL;
  n = node_take(s, x, it, now, 0);
  ready_insert(s, x, n);
  return 0;
}

int sft_sched_dequeue(sft_sched *s, uint64_t now, struct sft_sched_item *out) {
  struct xfer *r;
  struct node *nd;
  struct cstats *st;
  uint32_t x, n;
  uint64_t wait;
  int c;

  if (!s || !out)
    return SFT_ERR_INVAL;
  promote(s, now);
  c = pick_class(s);
  if (c < 0)
    return SFT_ERR_EMPTY;
  x = s->cheap[c][0];
  r = &s->xf[x];
  n = ready_pop(s, r);
  nd = &s->nodes[n];

  /* fair queueing inside the class */
  s->vtime[c] = r->stag;
  r->ftag = r->stag + nd->size;
  if (r->nready) {
    r->stag = r->ftag;
    r->stamp = ++s->stamp;
    ch_down(s, (unsigned)c, 0);
  } else {
    deactivate(s, x);
  }
  s->deficit[c] -= nd->size;

  out->xfer = r->id;
  out->seq = nd->seq;
  out->user = nd->user;
  out->size = nd->size;
  out->cls = (uint8_t)c;
  out->retries = nd->retries;

  wait = now > nd->ready_at ? now - nd->ready_at : 0;
  st = &s->st[c];
  st->pend_items--;
  st->pend_bytes -= nd->size;
  st->deq_items++;
  st->deq_bytes += nd->size;
  st->wait_sum += wait;
  if (wait > st->wait_max)
    st->wait_max = wait;

  r->items--;
  r->bytes -= nd->size;
  if (r->items == 0 && !r->paused)
    xf_release(s, x);
  node_put(s, n);
  return 0;
}

static uint64_t backoff_at(uint64_t now, uint64_t base, unsigned n) {
  uint64_t d = n >= 64 || base > (UINT64_MAX >> n) ? UINT64_MAX : base << n;
  return d > UINT64_MAX - now ? UINT64_MAX : now + d;
}

int sft_sched_requeue(sft_sched *s, const struct sft_sched_item *it,
                      uint64_t now) {
  uint32_t x, n;
  unsigned cls;
  if (!s || item_check(it))
    return SFT_ERR_INVAL;
  x = xf_find(s, it->xfer);
  cls = x != NONE && s->xf[x].cls != CLS_NONE ? s->xf[x].cls : it->cls;
  if (it->retries >= s->max_retries) {
    s->st[cls].drops++;
    return SFT_ERR_RETRIES;
  }
  if (s->free_node == NONE)
    return SFT_ERR_FULL;
  x = xf_for_item(s, it);
  if (x == NONE)
    return SFT_ERR_FULL;
  n = node_take(s, x, it, backoff_at(now, s->backoff, it->retries),
                (uint8_t)(it->retries + 1));
  s->st[s->xf[x].cls].requeues++;
  th_set(s, s->tn++, n);
  th_up(s, s->tn - 1);
  return 0;
}

int sft_sched_next_ready(const sft_sched *s, uint64_t *t) {
  if (!s || !t)
    return SFT_ERR_INVAL;
  if (!s->tn)
    return SFT_ERR_EMPTY;
  *t = s->nodes[s->theap[0]].ready_at;
  return 0;
}

static void give_back(const struct sft_sched *s, uint32_t n, unsigned cls,
                      sft_sched_item_cb cb, void *arg) {
  const struct node *nd = &s->nodes[n];
  struct sft_sched_item it;
  if (!cb)
    return;
  memset(&it, 0, sizeof(it));
  it.xfer = s->xf[nd->xf].id;
  it.seq = nd->seq;
  it.user = nd->user;
  it.size = nd->size;
  it.cls = (uint8_t)cls;
  it.retries = nd->retries;
  cb(&it, arg);
}

int sft_sched_remove(sft_sched *s, uint64_t xfer, sft_sched_item_cb cb,
                     void *arg, size_t *removed) {
  struct node *nd;
  struct xfer *r;
  uint32_t x, n, count = 0;
  unsigned cls;

  if (!s)
    return SFT_ERR_INVAL;
  x = xf_find(s, xfer);
  if (x == NONE)
    return SFT_ERR_NOT_FOUND;
  nd = s->nodes;
  r = &s->xf[x];
  cls = r->cls;
  if (r->hpos != NONE)
    deactivate(s, x);

  /* FIFO */
  for (n = r->head; n != NONE;) {
    uint32_t next = nd[n].next;
    give_back(s, n, cls, cb, arg);
    node_put(s, n);
    count++;
    n = next;
  }
  /* Pairing heap, seen as a binary tree (child = left, next = right),
   * flattened by right rotations: O(k) without a stack. */
  for (n = r->proot; n != NONE;) {
    uint32_t c = nd[n].child;
    if (c != NONE) {
      nd[n].child = nd[c].next;
      nd[c].next = n;
      n = c;
    } else {
      uint32_t next = nd[n].next;
      give_back(s, n, cls, cb, arg);
      node_put(s, n);
      count++;
      n = next;
    }
  }
  /* Backoff heap: filter out this transfer's nodes, then re-heapify. */
  if (r->items > r->nready) {
    uint32_t j = 0;
    for (uint32_t i = 0; i < s->tn; i++) {
      n = s->theap[i];
      if (nd[n].xf == x) {
        give_back(s, n, cls, cb, arg);
        nd[n].tpos = NONE;
        node_put(s, n);
        count++;
      } else {
        th_set(s, j++, n);
      }
    }
    s->tn = j;
    for (uint32_t i = j / 2; i-- > 0;)
      th_down(s, i);
  }

  if (cls != CLS_NONE) {
    s->st[cls].pend_items -= r->items;
    s->st[cls].pend_bytes -= r->bytes;
    s->st[cls].removed += count;
  }
  if (r->paused)
    s->npaused--;
  xf_release(s, x);
  if (removed)
    *removed = count;
  return 0;
}

int sft_sched_pause(sft_sched *s, uint64_t xfer) {
  uint32_t x;
  struct xfer *r;
  if (!s)
    return SFT_ERR_INVAL;
  x = xf_find(s, xfer);
  if (x == NONE) {
    if (s->free_xf == NONE)
      return SFT_ERR_FULL;
    x = xf_create(s, xfer, CLS_NONE);
  }
  r = &s->xf[x];
  if (r->paused)
    return 0;
  r->paused = 1;
  s->npaused++;
  if (r->hpos != NONE)
    deactivate(s, x);
  return 0;
}

int sft_sched_resume(sft_sched *s, uint64_t xfer) {
  uint32_t x;
  struct xfer *r;
  if (!s)
    return SFT_ERR_INVAL;
  x = xf_find(s, xfer);
  if (x == NONE)
    return SFT_ERR_NOT_FOUND;
  r = &s->xf[x];
  if (!r->paused)
    return 0;
  r->paused = 0;
  s->npaused--;
  if (r->items == 0)
    xf_release(s, x);
  else if (r->nready)
    activate(s, x);
  return 0;
}

int sft_sched_set_class(sft_sched *s, uint64_t xfer, int cls) {
  uint32_t x;
  struct xfer *r;
  int active;
  if (!s || cls < 0 || cls >= SFT_SCHED_NCLASS)
    return SFT_ERR_INVAL;
  x = xf_find(s, xfer);
  if (x == NONE)
    return SFT_ERR_NOT_FOUND;
  r = &s->xf[x];
  if (r->cls == (unsigned)cls)
    return 0;
  active = r->hpos != NONE;
  if (active)
    deactivate(s, x);
  if (r->cls != CLS_NONE) {
    s->st[r->cls].pend_items -= r->items;
    s->st[r->cls].pend_bytes -= r->bytes;
  }
  s->st[cls].pend_items += r->items;
  s->st[cls].pend_bytes += r->bytes;
  r->cls = (uint8_t)cls;
  r->ftag = 0; /* tags of another class are meaningless here */
  if (active)
    activate(s, x);
  return 0;
}

int sft_sched_is_paused(const sft_sched *s, uint64_t xfer) {
  uint32_t x;
  if (!s)
    return 0;
  x = xf_find(s, xfer);
  return x != NONE && s->xf[x].paused;
}

size_t sft_sched_len(const sft_sched *s) {
  return s ? s->nlen : 0;
}

int sft_sched_get_stats(const sft_sched *s, struct sft_sched_stats *st) {
  struct sft_sched_class_stats *a;
  if (!s || !st)
    return SFT_ERR_INVAL;
  memset(st, 0, sizeof(*st));
  a = &st->all;
  for (int c = 0; c < SFT_SCHED_NCLASS; c++) {
    const struct cstats *in = &s->st[c];
    struct sft_sched_class_stats *o = &st->cls[c];
    o->pending_items = in->pend_items;
    o->pending_bytes = in->pend_bytes;
    o->dequeued_items = in->deq_items;
    o->dequeued_bytes = in->deq_bytes;
    o->wait_sum_ns = in->wait_sum;
    o->wait_avg_ns = in->deq_items ? in->wait_sum / in->deq_items : 0;
    o->wait_max_ns = in->wait_max;
    o->requeues = in->requeues;
    o->drops = in->drops;
    o->removed = in->removed;
    a->pending_items += o->pending_items;
    a->pending_bytes += o->pending_bytes;
    a->dequeued_items += o->dequeued_items;
    a->dequeued_bytes += o->dequeued_bytes;
    a->wait_sum_ns += o->wait_sum_ns;
    if (o->wait_max_ns > a->wait_max_ns)
      a->wait_max_ns = o->wait_max_ns;
    a->requeues += o->requeues;
    a->drops += o->drops;
    a->removed += o->removed;
  }
  a->wait_avg_ns = a->dequeued_items ? a->wait_sum_ns / a->dequeued_items : 0;
  st->backoff_items = s->tn;
  st->xfers = s->nxf;
  st->paused_xfers = s->npaused;
  return 0;
}

static const char *const class_names[SFT_SCHED_NCLASS] = {"critical", "high",
                                                          "normal"};

const char *sft_sched_class_name(int cls) {
  return cls >= 0 && cls < SFT_SCHED_NCLASS ? class_names[cls] : NULL;
}

int sft_sched_class_parse(const char *name, enum sft_sched_class *out) {
  if (!name || !out)
    return SFT_ERR_INVAL;
  for (int c = 0; c < SFT_SCHED_NCLASS; c++) {
    if (strcmp(name, class_names[c]) == 0) {
      *out = (enum sft_sched_class)c;
      return 0;
    }
  }
  return SFT_ERR_INVAL;
}
