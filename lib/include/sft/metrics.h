/*
 * sft metrics: a registry of Prometheus metric families and a formatter for
 * the text exposition format 0.0.4 (served by the daemon at GET /metrics).
 *
 * A registry holds families (counter, gauge, histogram), each with a name,
 * HELP text and a fixed list of label names. A family has children (series),
 * one per tuple of label values; a family without labels has exactly one
 * child, created at registration. Children are reached through handles
 * (sft_metric *) that stay valid until the child is removed or the registry
 * is deleted, so the hot path is a pointer update: O(1) for counters and
 * gauges, O(log buckets) for a histogram observation. Looking a labeled
 * child up (or creating it) hashes the label values: O(1) expected.
 *
 * Cardinality: each family has at most max_children children (default
 * 1024). Creating one more is refused with SFT_ERR_FULL and counted in the
 * counter sft_metrics_dropped_series_total, which every registry registers
 * first (so it is always the first family in the output).
 *
 * Output order is deterministic: families in registration order, children in
 * insertion order (a removed and re-created child goes to the end), histogram
 * buckets ascending then +Inf, _sum, _count.
 *
 * Pure: no I/O, no clock, no global mutable state (the values of the process
 * metrics are supplied by the caller). Not thread-safe: one owner (the
 * daemon's loop thread). Numbers are printed assuming the C locale's
 * LC_NUMERIC, which the daemon never changes.
 * See docs/internals/metrics.md.
 */
#ifndef SFT_METRICS_H
#define SFT_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "sft/err.h"

/* Bounds checked at registration / child creation. */
#define SFT_METRICS_MAX_FAMILIES 256u /* per registry, the built-in one too */
#define SFT_METRICS_MAX_NAME 128u     /* metric or label name, bytes */
#define SFT_METRICS_MAX_HELP 1024u    /* HELP text, bytes (unescaped) */
#define SFT_METRICS_MAX_LABELS 8u     /* label names per family */
#define SFT_METRICS_MAX_LABEL_VALUE 256u /* label value, bytes (unescaped) */
#define SFT_METRICS_MAX_BUCKETS 64u      /* histogram bounds, +Inf excluded */
#define SFT_METRICS_MAX_CHILDREN 65536u  /* highest max_children allowed */
#define SFT_METRICS_DEFAULT_CHILDREN 1024u

enum sft_metric_type {
  SFT_METRIC_COUNTER = 0,
  SFT_METRIC_GAUGE = 1,
  SFT_METRIC_HISTOGRAM = 2,
};

typedef struct sft_metrics sft_metrics;             /* the registry */
typedef struct sft_metric_family sft_metric_family; /* one metric name */
typedef struct sft_metric sft_metric;               /* one series (child) */

/* Allocator hooks (for tests that fail the Nth allocation). Both NULL ->
 * calloc/free. zalloc must return zeroed memory or NULL. */
struct sft_metrics_mem {
  void *(*zalloc)(size_t nmemb, size_t size, void *ud);
  void (*free)(void *p, void *ud);
  void *ud;
};

/* What to register. The registry copies every string and array. */
struct sft_metric_desc {
  const char *name; /* [a-zA-Z_:][a-zA-Z0-9_:]*, 1..MAX_NAME bytes */
  const char *help; /* UTF-8, at most MAX_HELP bytes; NULL -> "" */
  enum sft_metric_type type;
  /* Label names, [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", distinct,
   * not "le" for a histogram. nlabels 0..MAX_LABELS (labels may be NULL
   * when 0). */
  const char *const *labels;
  size_t nlabels;
  /* Histogram only (ignored otherwise): upper bounds, finite and strictly
   * increasing, 0..MAX_BUCKETS of them; the +Inf bucket is implicit. */
  const double *buckets;
  size_t nbuckets;
  uint32_t max_children; /* 0 -> DEFAULT_CHILDREN; at most MAX_CHILDREN */
};

/* Creates an empty registry (plus sft_metrics_dropped_series_total). |mem|
 * NULL -> calloc/free; it is copied. On success *pr owns the registry (free
 * with sft_metrics_del()); on failure *pr is NULL. Errors: SFT_ERR_INVAL
 * (pr NULL, only one allocator hook set), SFT_ERR_NOMEM. */
int sft_metrics_new(sft_metrics **pr, const struct sft_metrics_mem *mem);

/* Frees the registry, its families and children (NULL is a no-op). Every
 * handle from it becomes invalid. */
void sft_metrics_del(sft_metrics *r);

/* Registers a family; *pf (may be NULL) gets its handle, owned by the
 * registry. An unlabeled family gets its single child now (fetch it with
 * sft_metrics_child(f, NULL, &m)). Errors (nothing registered, *pf NULL):
 * SFT_ERR_INVAL (r or d NULL, bad name, label name, HELP not UTF-8, bad
 * buckets, bad type), SFT_ERR_TOO_LARGE (a length or count bound),
 * SFT_ERR_EXISTS (the name, or one of the series names a histogram adds
 * (_bucket, _sum, _count), collides with a registered family's),
 * SFT_ERR_FULL (MAX_FAMILIES registered), SFT_ERR_NOMEM. */
int sft_metrics_register(sft_metrics *r, const struct sft_metric_desc *d,
                         sft_metric_family **pf);

/* Shorthands for sft_metrics_register() of an unlabeled counter / gauge /
 * histogram (default max_children): *pm gets the single child directly. */
int sft_metrics_add_counter(sft_metrics *r, const char *name, const char *help,
                            sft_metric **pm);
int sft_metrics_add_gauge(sft_metrics *r, const char *name, const char *help,
                          sft_metric **pm);
int sft_metrics_add_histogram(sft_metrics *r, const char *name,
                              const char *help, const double *buckets,
                              size_t nbuckets, sft_metric **pm);

/* Finds the child of |f| with label values |values| (nlabels of them, each
 * UTF-8, at most MAX_LABEL_VALUE bytes, copied), creating it (value 0, at
 * the end of the order) if absent. For an unlabeled family |values| is
 * ignored and the single child is returned. *pm gets the handle (NULL on
 * error). Errors: SFT_ERR_INVAL (NULL argument, a NULL or non-UTF-8 value),
 * SFT_ERR_TOO_LARGE (a value too long), SFT_ERR_FULL (max_children reached:
 * the series is dropped and sft_metrics_dropped_series_total incremented),
 * SFT_ERR_NOMEM. */
int sft_metrics_child(sft_metric_family *f, const char *const *values,
                      sft_metric **pm);

/* sft_metrics_child() for a family with exactly one label. SFT_ERR_INVAL if
 * the family does not have exactly one label. */
int sft_metrics_child1(sft_metric_family *f, const char *value,
                       sft_metric **pm);

/* Removes the child with label values |values| (its series disappears from
 * the output; a handle to it becomes invalid). Errors: SFT_ERR_INVAL (NULL,
 * or the family is unlabeled: its single child cannot be removed),
 * SFT_ERR_NOT_FOUND (no such child). */
int sft_metrics_remove(sft_metric_family *f, const char *const *values);
int sft_metrics_remove1(sft_metric_family *f, const char *value);

/* Removes every child of a labeled family (handles become invalid). No-op
 * for an unlabeled family or NULL. */
void sft_metrics_clear(sft_metric_family *f);

/* Number of children of |f| (0 for NULL). */
size_t sft_metrics_children(const sft_metric_family *f);

/* Updates. All return SFT_ERR_INVAL (and change nothing) for a NULL handle,
 * so a series dropped by the cardinality limit can be updated harmlessly.
 *
 * inc: counter or gauge += v. A counter refuses v < 0 and NaN
 *   (SFT_ERR_INVAL). Histogram: SFT_ERR_INVAL.
 * set: gauge = v (any value, NaN and infinities included). Counter: only to
 *   mirror a counter kept elsewhere (e.g. process_cpu_seconds_total): v must
 *   be >= the current value and not NaN, else SFT_ERR_INVAL. Histogram:
 *   SFT_ERR_INVAL.
 * observe: histogram only; v goes into the first bucket whose bound is
 *   >= v (le is inclusive), _sum += v, _count += 1. NaN -> SFT_ERR_INVAL. */
int sft_metric_inc(sft_metric *m, double v);
int sft_metric_set(sft_metric *m, double v);
int sft_metric_observe(sft_metric *m, double v);

/* Reads (for tests and the JSON API): the value of a counter or gauge, the
 * _sum of a histogram; NaN for NULL. */
double sft_metric_value(const sft_metric *m);
/* _count of a histogram, 0 otherwise. */
uint64_t sft_metric_count(const sft_metric *m);

/* Writes the exposition (text format 0.0.4, content type
 * "text/plain; version=0.0.4; charset=utf-8") into buf[0..cap). *len
 * always gets the full length needed (no NUL terminator is written or
 * counted). buf may be NULL when cap is 0 (size query). Errors:
 * SFT_ERR_INVAL (r or len NULL, buf NULL with cap > 0), SFT_ERR_NOSPACE
 * (cap < *len: buf holds a truncated prefix). */
int sft_metrics_format(const sft_metrics *r, char *buf, size_t cap,
                       size_t *len);

/* Same, into a buffer it allocates with the registry's allocator: *out (free
 * with sft_metrics_buf_free()) holds *len bytes plus a NUL terminator.
 * One formatting pass when the previous output size still fits (it keeps
 * that size as a hint), two otherwise. Errors (*out NULL): SFT_ERR_INVAL,
 * SFT_ERR_TOO_LARGE (the output would exceed |max| bytes), SFT_ERR_NOMEM. */
int sft_metrics_format_alloc(sft_metrics *r, size_t max, char **out,
                             size_t *len);
void sft_metrics_buf_free(sft_metrics *r, char *p);

/* Formats |v| as Prometheus parses it, always reading back as exactly v:
 * "NaN", "+Inf", "-Inf"; an integer without exponent when v is integral and
 * |v| < 2^63; a plain decimal ("0.0021") when 1e-4 <= |v| < 2^53 and at
 * most 16 significant digits read back exactly; otherwise %.17g in that
 * range ("0.30000000000000004"), and outside it the shortest of %.15g,
 * %.16g, %.17g that reads back exactly ("1.5e-07", "1e+20"). Writes at most
 * |cap| bytes including a NUL (32 is always enough); returns the length
 * (without NUL), or 0 if cap was too small. */
size_t sft_metrics_fmt_double(double v, char *buf, size_t cap);

/* Prometheus' default histogram bounds (.005 .. 10 seconds). */
#define SFT_METRICS_DEFAULT_NBUCKETS 11u
extern const double sft_metrics_default_buckets[SFT_METRICS_DEFAULT_NBUCKETS];

/* ---- the predefined set (the seed's names) ------------------------------ */

/* priority_queue_size children, indexed like enum sft_sched_class; their
 * "class" label values are "critical", "high", "normal". */
#define SFT_METRICS_NCLASS 3

/* Handles to the predefined metrics, all owned by the registry. */
struct sft_metrics_std {
  sft_metric *chunks_sent;       /* counter chunks_sent_total */
  sft_metric *chunks_received;   /* counter chunks_received_total */
  sft_metric *chunks_failed;     /* counter chunks_failed_total */
  sft_metric *bytes_transferred; /* counter bytes_transferred_total */
  sft_metric *chunks_rebuilt;    /* counter chunks_rebuilt_total */
  sft_metric *retries;           /* counter retries_total */
  sft_metric *active_sessions;   /* gauge active_sessions */
  sft_metric *queue_size[SFT_METRICS_NCLASS]; /* gauge priority_queue_size */
  sft_metric *bandwidth_bps;                  /* gauge network_bandwidth_bps */
  sft_metric *chunk_duration; /* histogram chunk_transfer_duration_seconds */
  sft_metric *chunk_size;     /* histogram chunk_size_bytes */
  /* Per-path gauges, label "path": create with sft_metrics_child1(), drop
   * with sft_metrics_remove1() when the path ends. */
  sft_metric_family *path_rtt;  /* gauge sft_path_rtt_seconds */
  sft_metric_family *path_loss; /* gauge sft_path_loss_ratio */
  /* Process metrics; the daemon sets them from /proc before formatting. */
  sft_metric *cpu_seconds;    /* counter process_cpu_seconds_total (set) */
  sft_metric *resident_bytes; /* gauge process_resident_memory_bytes */
  sft_metric *open_fds;       /* gauge process_open_fds */
  sft_metric *start_time;     /* gauge process_start_time_seconds */
};

/* Registers the predefined families (in the order of the struct above) into
 * |r| and fills |s|. Errors: as sft_metrics_register() (e.g. SFT_ERR_EXISTS
 * if called twice on one registry); on error |r| may hold some of them and
 * |s| is zeroed. */
int sft_metrics_std_register(sft_metrics *r, struct sft_metrics_std *s);

/* Bounds of chunk_transfer_duration_seconds and chunk_size_bytes. */
#define SFT_METRICS_DURATION_NBUCKETS 14u
extern const double sft_metrics_duration_buckets[SFT_METRICS_DURATION_NBUCKETS];
#define SFT_METRICS_SIZE_NBUCKETS 5u
extern const double sft_metrics_size_buckets[SFT_METRICS_SIZE_NBUCKETS];

#endif /* SFT_METRICS_H */
