/*
 * The predefined metric set: the seed's names, kept verbatim so existing
 * dashboards keep working, plus the per-path gauges and process metrics.
 */
#include <string.h>

#include "sft/metrics.h"
#include "sft/sched.h"

_Static_assert(SFT_METRICS_NCLASS == SFT_SCHED_NCLASS,
               "priority_queue_size children follow enum sft_sched_class");

const double sft_metrics_duration_buckets[SFT_METRICS_DURATION_NBUCKETS] = {
    .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30};

const double sft_metrics_size_buckets[SFT_METRICS_SIZE_NBUCKETS] = {
    64.0 * 1024, 256.0 * 1024, 1024.0 * 1024, 4096.0 * 1024, 16384.0 * 1024};

static int labeled_gauge(sft_metrics *r, const char *name, const char *help,
                         const char *label, sft_metric_family **pf) {
  struct sft_metric_desc d = {0};
  d.name = name;
  d.help = help;
  d.type = SFT_METRIC_GAUGE;
  d.labels = &label;
  d.nlabels = 1;
  return sft_metrics_register(r, &d, pf);
}

int sft_metrics_std_register(sft_metrics *r, struct sft_metrics_std *s) {
  static const char *const cls[SFT_METRICS_NCLASS] = {"critical", "high",
                                                      "normal"};
  sft_metric_family *queue;
  int rv;

  if (!r || !s)
    return SFT_ERR_INVAL;
  memset(s, 0, sizeof *s);
#define TRY(call)                                                              \
  do {                                                                         \
    rv = (call);                                                               \
    if (rv)                                                                    \
      goto fail;                                                               \
  } while (0)
  TRY(sft_metrics_add_counter(r, "chunks_sent_total",
                              "Chunks sent (data and parity).",
                              &s->chunks_sent));
  TRY(sft_metrics_add_counter(r, "chunks_received_total",
                              "Chunks received and verified.",
                              &s->chunks_received));
  TRY(sft_metrics_add_counter(r, "chunks_failed_total",
                              "Chunks that failed (digest mismatch, loss or "
                              "timeout).",
                              &s->chunks_failed));
  TRY(sft_metrics_add_counter(r, "bytes_transferred_total",
                              "Payload bytes sent or received.",
                              &s->bytes_transferred));
  TRY(sft_metrics_add_counter(r, "chunks_rebuilt_total",
                              "Chunks rebuilt from Reed-Solomon parity.",
                              &s->chunks_rebuilt));
  TRY(sft_metrics_add_counter(r, "retries_total", "Chunk retransmissions.",
                              &s->retries));
  TRY(sft_metrics_add_gauge(r, "active_sessions",
                            "Transfer sessions in progress.",
                            &s->active_sessions));
  TRY(labeled_gauge(r, "priority_queue_size",
                    "Chunks queued for sending, per priority class.", "class",
                    &queue));
  for (int i = 0; i < SFT_METRICS_NCLASS; i++)
    TRY(sft_metrics_child1(queue, cls[i], &s->queue_size[i]));
  TRY(sft_metrics_add_gauge(r, "network_bandwidth_bps",
                            "Estimated network bandwidth in bits per second.",
                            &s->bandwidth_bps));
  TRY(sft_metrics_add_histogram(
      r, "chunk_transfer_duration_seconds",
      "Time from a chunk's first send to its acknowledgement.",
      sft_metrics_duration_buckets, SFT_METRICS_DURATION_NBUCKETS,
      &s->chunk_duration));
  TRY(sft_metrics_add_histogram(r, "chunk_size_bytes", "Chunk sizes in bytes.",
                                sft_metrics_size_buckets,
                                SFT_METRICS_SIZE_NBUCKETS, &s->chunk_size));
  TRY(labeled_gauge(r, "sft_path_rtt_seconds",
                    "Smoothed round-trip time per network path.", "path",
                    &s->path_rtt));
  TRY(labeled_gauge(r, "sft_path_loss_ratio",
                    "Estimated packet loss ratio (0..1) per network path.",
                    "path", &s->path_loss));
  TRY(sft_metrics_add_counter(r, "process_cpu_seconds_total",
                              "Total user and system CPU time spent in "
                              "seconds.",
                              &s->cpu_seconds));
  TRY(sft_metrics_add_gauge(r, "process_resident_memory_bytes",
                            "Resident memory size in bytes.",
                            &s->resident_bytes));
  TRY(sft_metrics_add_gauge(r, "process_open_fds",
                            "Number of open file descriptors.", &s->open_fds));
  TRY(sft_metrics_add_gauge(r, "process_start_time_seconds",
                            "Start time of the process since unix epoch in "
                            "seconds.",
                            &s->start_time));
#undef TRY
  return 0;

fail:
  memset(s, 0, sizeof *s);
  return rv;
}
