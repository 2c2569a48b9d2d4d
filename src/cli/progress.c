#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "progress.h"

void progress_init(struct progress *p, FILE *out, int json, uint64_t now_ns) {
  memset(p, 0, sizeof(*p));
  p->out = out;
  p->mode = json                  ? PROGRESS_JSON
            : isatty(fileno(out)) ? PROGRESS_TTY
                                  : PROGRESS_NONE;
  p->start_ns = p->rate_t0_ns = now_ns;
}

void fmt_bytes(char *buf, size_t len, double b) {
  static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int i = 0;
  while (b >= 1024 && i < 5) {
    b /= 1024;
    i++;
  }
  snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

void fmt_rate(char *buf, size_t len, double r) {
  static const char *u[] = {"B/s", "kB/s", "MB/s", "GB/s"};
  int i = 0;
  while (r >= 1000 && i < 3) {
    r /= 1000;
    i++;
  }
  snprintf(buf, len, "%.1f %s", r, u[i]);
}

void fmt_duration(char *buf, size_t len, double s) {
  unsigned long t;
  if (s < 0 || s > 359999)
    s = 359999;
  t = (unsigned long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, len, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(buf, len, "%lu:%02lu", t / 60, t % 60);
}

char *json_quote(char *buf, size_t len, const char *s) {
  size_t o = 0;
  if (len < 3) {
    if (len)
      buf[0] = 0;
    return buf;
  }
  buf[o++] = '"';
  for (; s && *s && o + 8 < len; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      buf[o++] = '\\';
      buf[o++] = (char)c;
    } else if (c < 0x20 || c == 0x7f) {
      o += (size_t)snprintf(buf + o, len - o, "\\u%04x", c);
    } else {
      buf[o++] = (char)c;
    }
  }
  buf[o++] = '"';
  buf[o] = 0;
  return buf;
}

/* Back to the start of the live line, erasing it and the path lines. */
static void erase_live(struct progress *p) {
  if (p->path_lines)
    fprintf(p->out, "\033[%uA", p->path_lines);
  fputs("\r\033[J", p->out);
  p->path_lines = 0;
}

void progress_clear(struct progress *p) {
  if (p->mode == PROGRESS_TTY && p->drawn) {
    erase_live(p);
    fflush(p->out);
    p->drawn = 0;
  }
}

/* ,"paths":[{...},...] for JSON progress, when there are several. */
static void paths_json(char *buf, size_t cap,
                       const struct progress_snapshot *s) {
  size_t n = 0;
  buf[0] = 0;
  if (s->npaths < 2 || !s->paths)
    return;
  n += (size_t)snprintf(buf + n, cap - n, ",\"paths\":[");
  for (unsigned i = 0; i < s->npaths && n < cap; i++) {
    const struct sftd_path_stat *ps = &s->paths[i];
    char q[2 * SFTD_PATH_ADDR_MAX];
    n += (size_t)snprintf(
        buf + n, cap - n,
        "%s{\"peer\":%s,\"state\":\"%s\",\"up\":%s,\"rtt_ms\":%.1f,"
        "\"loss\":%.4f,\"rate_bps\":%" PRIu64 ",\"bytes_sent\":%" PRIu64 "}",
        i ? "," : "", json_quote(q, sizeof(q), ps->peer),
        sft_path_status_name(ps->state), ps->up ? "true" : "false", ps->rtt_ms,
        ps->loss, ps->rate_bps, ps->bytes_sent);
  }
  if (n < cap)
    snprintf(buf + n, cap - n, "]");
  if (n >= cap)
    buf[0] = 0; /* never a cut object */
}

void progress_event(struct progress *p, const char *event, const char *fields) {
  if (p->mode != PROGRESS_JSON)
    return;
  fprintf(p->out, "{\"event\":\"%s\"%s%s}\n", event, fields ? "," : "",
          fields ? fields : "");
  fflush(p->out);
}

void progress_update(struct progress *p, const struct progress_snapshot *s,
                     uint64_t now_ns, int force) {
  double dt, pct, eta;
  char done[32], total[32], rate[32], etab[32], extra[160], name[64];

  if (!force && now_ns - p->last_draw_ns < 100000000u)
    return;
  p->last_draw_ns = now_ns;

  /* Rate over a sliding window of about two seconds, smoothed. */
  dt = (double)(now_ns - p->rate_t0_ns) / 1e9;
  if (dt >= 0.25) {
    double inst = (double)(s->bytes_done - p->rate_b0) / dt;
    p->rate_bps = p->rate_bps > 0 ? 0.7 * p->rate_bps + 0.3 * inst : inst;
    if (dt >= 2.0) {
      p->rate_t0_ns = now_ns;
      p->rate_b0 = s->bytes_done;
    }
  }
  pct = s->bytes_total ? 100.0 * (double)s->bytes_done / (double)s->bytes_total
                       : 100.0;
  /* Unknown below 1 byte/s (a stall): no absurd ETA like 5e94 s. */
  eta = p->rate_bps >= 1
            ? (double)(s->bytes_total - s->bytes_done) / p->rate_bps
            : -1;

  if (p->mode == PROGRESS_JSON) {
    char q[600], pj[2048];
    paths_json(pj, sizeof(pj), s);
    fprintf(p->out,
            "{\"event\":\"progress\",\"name\":%s,\"bytes_done\":%" PRIu64
            ",\"bytes_total\":%" PRIu64 ",\"chunks_done\":%" PRIu64
            ",\"chunks_total\":%" PRIu64 ",\"chunks_rebuilt\":%" PRIu64
            ",\"parity_sent\":%" PRIu64 ",\"pkt_parity_sent\":%" PRIu64
            ",\"pkts_rebuilt\":%" PRIu64 ",\"links_up\":%" PRIu64
            ",\"files_done\":%" PRIu64 ",\"files_total\":%" PRIu64
            ",\"rate_bps\":%.0f,\"eta_s\":%.1f%s}\n",
            json_quote(q, sizeof(q), s->name ? s->name : ""), s->bytes_done,
            s->bytes_total, s->chunks_done, s->chunks_total, s->chunks_rebuilt,
            s->parity_sent, s->pkt_parity_sent, s->pkts_rebuilt, s->links_up,
            s->files_done, s->files_total, p->rate_bps * 8, eta, pj);
    fflush(p->out);
    return;
  }
  if (p->mode != PROGRESS_TTY)
    return;

  fmt_bytes(done, sizeof(done), (double)s->bytes_done);
  fmt_bytes(total, sizeof(total), (double)s->bytes_total);
  fmt_rate(rate, sizeof(rate), p->rate_bps);
  if (eta >= 0)
    fmt_duration(etab, sizeof(etab), eta);
  else
    snprintf(etab, sizeof(etab), "--:--");
  extra[0] = 0;
  if (s->chunks_rebuilt)
    snprintf(extra, sizeof(extra), "  parity-rebuilt %" PRIu64,
             s->chunks_rebuilt);
  else if (s->parity_sent)
    snprintf(extra, sizeof(extra), "  parity %" PRIu64, s->parity_sent);
  if (s->pkts_rebuilt || s->pkt_parity_sent) {
    /* packet FEC: what the receiver rebuilt, or what the sender sent */
    size_t n = strlen(extra);
    if (s->pkts_rebuilt)
      snprintf(extra + n, sizeof(extra) - n, "  pkts-rebuilt %" PRIu64,
               s->pkts_rebuilt);
    else
      snprintf(extra + n, sizeof(extra) - n, "  pkt-parity %" PRIu64,
               s->pkt_parity_sent);
  }
  if (s->links_up > 1) {
    size_t n = strlen(extra);
    snprintf(extra + n, sizeof(extra) - n, "  conns %" PRIu64, s->links_up);
  }
  if (s->loss >= 0 && s->rtt_ms > 0) {
    size_t n = strlen(extra);
    snprintf(extra + n, sizeof(extra) - n, "  rtt %.0f ms loss %.1f%%",
             s->rtt_ms, s->loss * 100);
  }
  name[0] = 0;
  if (s->files_total > 1)
    snprintf(name, sizeof(name), "  [%" PRIu64 "/%" PRIu64 " files]",
             s->files_done, s->files_total);
  if (p->drawn)
    erase_live(p);
  fprintf(p->out,
          "\r\033[K%5.1f%%  %s / %s  %s  ETA %s  chunks %" PRIu64 "/%" PRIu64
          "%s%s",
          pct, done, total, rate, etab, s->chunks_done, s->chunks_total, extra,
          name);
  for (unsigned i = 0; s->npaths > 1 && s->paths && i < s->npaths; i++) {
    const struct sftd_path_stat *ps = &s->paths[i];
    char pr[32], sent[32];
    fmt_rate(pr, sizeof(pr), (double)ps->rate_bps / 8);
    fmt_bytes(sent, sizeof(sent), (double)ps->bytes_sent);
    fprintf(p->out, "\n  path %u  %-22s %-8s", i + 1, ps->peer,
            sft_path_status_name(ps->state));
    if (ps->up && ps->rtt_ms > 0)
      fprintf(p->out, "  rtt %5.1f ms", ps->rtt_ms);
    if (ps->up && ps->loss >= 0)
      fprintf(p->out, "  loss %4.1f%%", ps->loss * 100);
    if (ps->up && ps->rate_bps)
      fprintf(p->out, "  %s", pr);
    fprintf(p->out, "  sent %s", sent);
    p->path_lines++;
  }
  fflush(p->out);
  p->drawn = 1;
}
