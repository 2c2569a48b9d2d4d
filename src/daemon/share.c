/* The daemon's link share (share.h): lib/sched decides whose want goes
 * next, lib/rate decides when. See docs/internals/share.md. */
#include "daemon/share.h"

#include <stdlib.h>

#include "daemon/clock.h"
#include "sft/err.h"
#include "sft/rate.h"

/* Grants per timer callback before yielding to the loop (a very high rate
 * with clients that re-want from their callback would otherwise keep the
 * loop in one callback for as long as the burst lasts). */
#define GRANTS_PER_RUN 64u
#define MAP_MIN_BUCKETS 64u

/* One pending want; the scheduler item's user pointer points here. */
struct want {
  uint64_t key;
  sftd_share_grant_fn fn;
  void *ud;
  struct want *next; /* hash chain, or the free list */
};

struct sftd_share {
  uv_loop_t *loop;
  uv_timer_t timer;
  sft_sched *q;
  struct sft_rate bucket;
  uint64_t seq; /* item sequence numbers (one item per key: any order) */

  /* key -> pending want (queued or held) */
  struct want **bucket_of;
  uint32_t nbuckets; /* power of two */
  uint32_t nwants;
  struct want *free_wants;

  struct sft_sched_item next; /* the held item, when has_next */
  int has_next;
  int in_run; /* inside on_timer: a want or forget needs no kick */
  int closing;
};

static uint64_t hash_key(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  return k;
}

static struct want **slot_of(struct sftd_share *sh, uint64_t key) {
  struct want **p = &sh->bucket_of[hash_key(key) & (sh->nbuckets - 1)];
  while (*p && (*p)->key != key)
    p = &(*p)->next;
  return p;
}

/* Doubles the table when chains get long; a failed allocation keeps the
 * current size (longer chains, still correct). */
static void map_grow(struct sftd_share *sh) {
  uint32_t nb = sh->nbuckets * 2;
  struct want **b;
  if (sh->nwants <= sh->nbuckets || nb > 4 * SFTD_SHARE_MAX_WANTS)
    return;
  b = calloc(nb, sizeof *b);
  if (!b)
    return;
  for (uint32_t i = 0; i < sh->nbuckets; i++) {
    struct want *w = sh->bucket_of[i];
    while (w) {
      struct want *n = w->next;
      struct want **h = &b[hash_key(w->key) & (nb - 1)];
      w->next = *h;
      *h = w;
      w = n;
    }
  }
  free(sh->bucket_of);
  sh->bucket_of = b;
  sh->nbuckets = nb;
}

static void want_release(struct sftd_share *sh, struct want *w) {
  w->next = sh->free_wants;
  sh->free_wants = w;
}

/* Unlinks |key|'s want from the map (not from the scheduler). */
static struct want *map_take(struct sftd_share *sh, uint64_t key) {
  struct want **p = slot_of(sh, key);
  struct want *w = *p;
  if (w) {
    *p = w->next;
    sh->nwants--;
  }
  return w;
}

static void on_timer(uv_timer_t *t);

/* Arms the timer |ns| from now (rounded up to libuv's milliseconds). */
static void arm(struct sftd_share *sh, uint64_t ns) {
  uint64_t ms = ns / 1000000 + (ns % 1000000 != 0);
  uv_update_time(sh->loop); /* so that the due time is not early */
  uv_timer_start(&sh->timer, on_timer, ms, 0);
}

/* Something changed (a want arrived, the held item was forgotten, the rate
 * changed): look again from the loop, unless we are already in on_timer,
 * which looks again itself. */
static void kick(struct sftd_share *sh) {
  if (!sh->in_run && !sh->closing)
    arm(sh, 0);
}

static void on_timer(uv_timer_t *t) {
  struct sftd_share *sh = t->data;
  unsigned grants = 0;
  sh->in_run = 1;
  while (!sh->closing) {
    uint64_t now = sftd_now_ns(), at = now;
    struct want *w;
    sftd_share_grant_fn fn;
    void *ud;
    uint32_t bytes;
    if (!sh->has_next) {
      if (sft_sched_dequeue(sh->q, now, &sh->next))
        break; /* nothing wants: a want kicks us again */
      sh->has_next = 1;
    }
    if (grants == GRANTS_PER_RUN) {
      arm(sh, 0);
      break;
    }
    if (sft_rate_take(&sh->bucket, now, sh->next.size, &at)) {
      arm(sh, at > now ? at - now : 0);
      break;
    }
    w = sh->next.user.ptr;
    sh->has_next = 0;
    map_take(sh, w->key);
    fn = w->fn;
    ud = w->ud;
    bytes = sh->next.size;
    want_release(sh, w);
    grants++;
    fn(ud, bytes); /* may want, forget, set_rate or close */
  }
  sh->in_run = 0;
}

int sftd_share_new(uv_loop_t *loop, uint64_t rate_bps,
                   const uint32_t weight[SFT_SCHED_NCLASS],
                   struct sftd_share **out) {
  struct sft_sched_config cfg;
  struct sftd_share *sh;
  int rv;
  if (!out)
    return SFT_ERR_INVAL;
  *out = NULL;
  if (!loop || !rate_bps)
    return SFT_ERR_INVAL;
  sft_sched_config_default(&cfg);
  cfg.capacity = SFTD_SHARE_MAX_WANTS;
  if (weight)
    for (unsigned c = 0; c < SFT_SCHED_NCLASS; c++)
      cfg.weight[c] = weight[c];
  sh = calloc(1, sizeof *sh);
  if (!sh)
    return SFT_ERR_NOMEM;
  rv = sft_sched_new(&sh->q, &cfg);
  if (rv)
    goto fail_sched;
  sh->nbuckets = MAP_MIN_BUCKETS;
  sh->bucket_of = calloc(sh->nbuckets, sizeof *sh->bucket_of);
  if (!sh->bucket_of) {
    rv = SFT_ERR_NOMEM;
    goto fail_map;
  }
  sh->loop = loop;
  sft_rate_init(&sh->bucket, rate_bps, 0, sftd_now_ns());
  uv_timer_init(loop, &sh->timer);
  sh->timer.data = sh;
  *out = sh;
  return 0;

fail_map:
  sft_sched_del(sh->q);
fail_sched:
  free(sh);
  return rv;
}

int sftd_share_want(struct sftd_share *sh, uint64_t key, int cls,
                    uint32_t bytes, sftd_share_grant_fn fn, void *ud) {
  struct sft_sched_item it = {0};
  struct want **p, *w;
  int rv;
  if (!sh || !fn || !bytes || cls < 0 || cls >= SFT_SCHED_NCLASS)
    return SFT_ERR_INVAL;
  if (sh->closing)
    return SFT_ERR_STATE;
  p = slot_of(sh, key);
  if (*p)
    return SFT_ERR_STATE;
  if (sh->nwants >= SFTD_SHARE_MAX_WANTS)
    return SFT_ERR_FULL;
  w = sh->free_wants;
  if (w)
    sh->free_wants = w->next;
  else if (!(w = malloc(sizeof *w)))
    return SFT_ERR_NOMEM;
  it.xfer = key;
  it.seq = sh->seq++;
  it.user.ptr = w;
  it.size = bytes;
  it.cls = (uint8_t)cls;
  rv = sft_sched_enqueue(sh->q, &it, sftd_now_ns());
  if (rv) {
    want_release(sh, w);
    return rv;
  }
  w->key = key;
  w->fn = fn;
  w->ud = ud;
  w->next = NULL;
  *p = w;
  sh->nwants++;
  map_grow(sh);
  if (!sh->has_next)
    kick(sh);
  return 0;
}

void sftd_share_forget(struct sftd_share *sh, uint64_t key) {
  struct want *w;
  if (!sh || sh->closing)
    return;
  w = map_take(sh, key);
  if (!w)
    return;
  if (sh->has_next && sh->next.user.ptr == w) {
    sh->has_next = 0; /* its tokens were not taken: look at the next one */
    kick(sh);
  } else {
    sft_sched_remove(sh->q, key, NULL, NULL, NULL);
  }
  want_release(sh, w);
}

int sftd_share_set_rate(struct sftd_share *sh, uint64_t rate_bps) {
  if (!sh || !rate_bps || sh->closing)
    return SFT_ERR_INVAL;
  sft_rate_set(&sh->bucket, rate_bps, sftd_now_ns());
  if (sh->has_next)
    kick(sh); /* the held item's time changed */
  return 0;
}

void sftd_share_stats(const struct sftd_share *sh, struct sft_sched_stats *st) {
  struct sft_sched_stats z = {0};
  if (!st)
    return;
  if (!sh || sh->closing || sft_sched_get_stats(sh->q, st)) {
    *st = z;
    return;
  }
  if (sh->has_next) {
    st->cls[sh->next.cls].pending_items++;
    st->cls[sh->next.cls].pending_bytes += sh->next.size;
    st->all.pending_items++;
    st->all.pending_bytes += sh->next.size;
  }
}

static void on_close(uv_handle_t *h) {
  struct sftd_share *sh = h->data;
  struct want *w;
  for (uint32_t i = 0; i < sh->nbuckets; i++)
    while ((w = sh->bucket_of[i])) {
      sh->bucket_of[i] = w->next;
      free(w);
    }
  while ((w = sh->free_wants)) {
    sh->free_wants = w->next;
    free(w);
  }
  free(sh->bucket_of);
  sft_sched_del(sh->q);
  free(sh);
}

void sftd_share_close(struct sftd_share *sh) {
  if (!sh || sh->closing)
    return;
  sh->closing = 1;
  sh->has_next = 0;
  uv_timer_stop(&sh->timer);
  uv_close((uv_handle_t *)&sh->timer, on_close);
}
