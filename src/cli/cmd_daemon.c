/*
 * sft daemon, and the commands that talk to a running daemon through its
 * REST API: sft ls, sft status ID, sft pause ID, sft resume ID, sft cancel ID.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apiclient.h"
#include "cli.h"
#include "daemon/sftd.h"
#include "progress.h"

extern char **environ;

static void daemon_usage(FILE *f) {
  fprintf(f, "usage: sft daemon [--config FILE] [--set SECTION.KEY=VALUE]... "
             "[--data-dir DIR] [--print-config]\n"
             "Runs sft as a service: receives on quic_bind_addr, sends on "
             "request and serves\nthe REST API on api_bind_addr (token in "
             "DATA_DIR/api.token). Settings come\nfrom the file, then "
             "SFT_<SECTION>_<KEY> variables, then --set (see etc/sft.conf).\n"
             "SIGINT/SIGTERM stop it.\n");
}

int cmd_daemon_main(int argc, char **argv) {
  static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                       {"set", required_argument, 0, 's'},
                                       {"data-dir", required_argument, 0, 'd'},
                                       {"print-config", no_argument, 0, 'p'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  struct sftd_daemon_opts o;
  const char *sets[64];
  char why[1024];
  int c, rv;
  memset(&o, 0, sizeof(o));
  o.sets = sets;
  o.envp = environ;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 'c':
      o.config_path = optarg;
      break;
    case 's':
      if (o.nsets == 64) {
        cli_error("too many --set options (64 at most)");
        return SFT_EXIT_USAGE;
      }
      sets[o.nsets++] = optarg;
      break;
    case 'd':
      o.data_dir = optarg;
      break;
    case 'p':
      o.print_config = 1;
      break;
    case 'h':
      daemon_usage(stdout);
      return SFT_EXIT_OK;
    default:
      daemon_usage(stderr);
      return SFT_EXIT_USAGE;
    }
  }
  if (optind != argc) {
    cli_error("unexpected argument '%s'", argv[optind]);
    return SFT_EXIT_USAGE;
  }
  why[0] = 0;
  rv = sftd_daemon_run(&o, why, sizeof(why));
  if (rv) {
    cli_error("%s", why[0] ? why : sft_strerror(rv));
    return rv == SFT_ERR_INVAL ? SFT_EXIT_USAGE : SFT_EXIT_FAILURE;
  }
  return SFT_EXIT_OK;
}

/* ---- API commands
 * ------------------------------------------------------------ */

/* Common options: --api HOST:PORT --data-dir DIR --json. */
static int api_opts(int argc, char **argv, const char **addr,
                    const char **data_dir, int *json, int nargs,
                    const char *usage) {
  static const struct option opts[] = {{"api", required_argument, 0, 'a'},
                                       {"data-dir", required_argument, 0, 'd'},
                                       {"json", no_argument, 0, 'j'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    if (c == 'a')
      *addr = optarg;
    else if (c == 'd')
      *data_dir = optarg;
    else if (c == 'j')
      *json = 1;
    else if (c == 'h') {
      printf("usage: %s [--api HOST:PORT] [--data-dir DIR] [--json]\n", usage);
      exit(SFT_EXIT_OK);
    } else
      return -1;
  }
  if (argc - optind != nargs) {
    cli_error("usage: %s", usage);
    return -1;
  }
  return 0;
}

static int connect_api(struct api *a, const char *addr, const char *data_dir) {
  if (api_init(a, addr, data_dir)) {
    cli_error("%s", a->why);
    return -1;
  }
  return 0;
}

static void print_xfer(const json_t *x) {
  char done[32], total[32];
  fmt_bytes(done, sizeof(done),
            (double)json_integer_value(json_object_get(x, "bytes_done")));
  fmt_bytes(total, sizeof(total),
            (double)json_integer_value(json_object_get(x, "bytes_total")));
  printf("%s  %-12s %5.1f%%  %s / %s  %s -> %s\n",
         json_string_value(json_object_get(x, "id")),
         json_string_value(json_object_get(x, "state")),
         json_real_value(json_object_get(x, "percent")), done, total,
         json_string_value(json_object_get(x, "priority"))
             ? json_string_value(json_object_get(x, "priority"))
             : "",
         json_string_value(json_object_get(x, "peer"))
             ? json_string_value(json_object_get(x, "peer"))
             : "");
  if (json_object_get(x, "error"))
    printf("    error: %s\n", json_string_value(json_object_get(
                                  json_object_get(x, "error"), "message")));
}

static int call_and_show(const char *addr, const char *data_dir, int json,
                         const char *method, const char *path) {
  struct api a;
  json_t *out = NULL;
  int st;
  if (connect_api(&a, addr, data_dir))
    return SFT_EXIT_FAILURE;
  st = api_call(&a, method, path, NULL, &out);
  if (st < 0) {
    cli_error("%s", a.why);
    return SFT_EXIT_NETWORK;
  }
  if (st >= 400) {
    cli_error("%s", api_error_text(out, st));
    json_decref(out);
    return st == 404 || st == 400 || st == 409 ? SFT_EXIT_USAGE
                                               : SFT_EXIT_FAILURE;
  }
  if (json) {
    char *s = json_dumps(out, JSON_COMPACT);
    printf("%s\n", s ? s : "null");
    free(s);
  } else if (json_object_get(out, "sessions")) {
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(out, "sessions"), i, x) print_xfer(x);
  } else {
    size_t i;
    json_t *np;
    print_xfer(out);
    /* sft status: one line per network path */
    json_array_foreach(json_object_get(out, "network_paths"), i, np) {
      json_t *loss = json_object_get(np, "loss");
      char rate[32], sent[32];
      fmt_rate(rate, sizeof(rate),
               (double)json_integer_value(json_object_get(np, "rate_bps")) / 8);
      fmt_bytes(sent, sizeof(sent),
                (double)json_integer_value(json_object_get(np, "bytes_sent")));
      printf(
          "    path %zu  %-22s %-8s rtt %6.1f ms  loss %s%.1f%%  %s  sent %s\n",
          i + 1, json_string_value(json_object_get(np, "peer")),
          json_string_value(json_object_get(np, "state")),
          json_real_value(json_object_get(np, "rtt_ms")),
          json_is_real(loss) ? "" : "~",
          json_is_real(loss) ? 100 * json_real_value(loss) : 0.0, rate, sent);
    }
  }
  json_decref(out);
  return SFT_EXIT_OK;
}

int cmd_ls_main(int argc, char **argv) {
  const char *addr = NULL, *dd = NULL;
  int json = 0;
  if (api_opts(argc, argv, &addr, &dd, &json, 0, "sft ls"))
    return SFT_EXIT_USAGE;
  return call_and_show(addr, dd, json, "GET", "/api/sessions");
}

static int id_cmd(int argc, char **argv, const char *method, const char *suffix,
                  const char *usage) {
  const char *addr = NULL, *dd = NULL;
  char path[256];
  int json = 0;
  const char *id;
  if (api_opts(argc, argv, &addr, &dd, &json, 1, usage))
    return SFT_EXIT_USAGE;
  id = argv[optind];
  if (strlen(id) != 32 || strspn(id, "0123456789abcdef") != 32) {
    cli_error("'%s' is not a transfer id (32 hex digits, see `sft ls`)", id);
    return SFT_EXIT_USAGE;
  }
  snprintf(path, sizeof(path), "/api/transfer/%s%s", id, suffix);
  return call_and_show(addr, dd, json, method, path);
}

int cmd_status_main(int argc, char **argv) {
  return id_cmd(argc, argv, "GET", "", "sft status ID");
}
int cmd_pause_main(int argc, char **argv) {
  return id_cmd(argc, argv, "POST", "/pause", "sft pause ID");
}
int cmd_resume_main(int argc, char **argv) {
  return id_cmd(argc, argv, "POST", "/resume", "sft resume ID");
}
int cmd_cancel_main(int argc, char **argv) {
  return id_cmd(argc, argv, "POST", "/cancel", "sft cancel ID");
}

/* ---- sft send through a running daemon
 * ------------------------------------------ */

static int exit_for(const char *code) {
  if (!code)
    return SFT_EXIT_FAILURE;
  if (!strcmp(code, "AUTH"))
    return SFT_EXIT_AUTH;
  if (!strcmp(code, "DIGEST"))
    return SFT_EXIT_VERIFY;
  if (!strcmp(code, "EXISTS") || !strcmp(code, "NOSPACE") ||
      !strcmp(code, "TOO_LARGE") || !strcmp(code, "PATH"))
    return SFT_EXIT_REFUSED;
  if (!strcmp(code, "CANCELLED"))
    return SFT_EXIT_CANCELLED;
  if (!strcmp(code, "TIMEOUT") || !strcmp(code, "CLOSED"))
    return SFT_EXIT_NETWORK;
  return SFT_EXIT_FAILURE;
}

int cli_send_via_daemon(struct api *a, json_t *req, int json) {
  json_t *out = NULL;
  struct progress pr;
  char id[64];
  int st = api_call(a, "POST", "/api/transfer/send", req, &out);
  struct timespec ts;
  if (st < 0) {
    cli_error("%s", a->why);
    return SFT_EXIT_NETWORK;
  }
  if (st >= 400) {
    cli_error("the daemon refused the transfer: %s", api_error_text(out, st));
    json_decref(out);
    return st == 400 ? SFT_EXIT_USAGE : SFT_EXIT_FAILURE;
  }
  snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(out, "id")));
  json_decref(out);
  clock_gettime(CLOCK_MONOTONIC, &ts);
  progress_init(&pr, json ? stdout : stderr, json,
                (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
  if (!json)
    fprintf(stderr, "sft: handed to the daemon as transfer %s\n", id);
  for (;;) {
    char path[128];
    const char *state;
    struct progress_snapshot s;
    snprintf(path, sizeof(path), "/api/transfer/%s", id);
    st = api_call(a, "GET", path, NULL, &out);
    if (st != 200) {
      cli_error("lost track of transfer %s: %s", id,
                st < 0 ? a->why : api_error_text(out, st));
      json_decref(out);
      return SFT_EXIT_FAILURE;
    }
    state = json_string_value(json_object_get(out, "state"));
    memset(&s, 0, sizeof(s));
    s.bytes_done =
        (uint64_t)json_integer_value(json_object_get(out, "bytes_done"));
    s.bytes_total =
        (uint64_t)json_integer_value(json_object_get(out, "bytes_total"));
    s.chunks_done =
        (uint64_t)json_integer_value(json_object_get(out, "chunks_done"));
    s.chunks_total =
        (uint64_t)json_integer_value(json_object_get(out, "chunks_total"));
    s.files_done =
        (uint64_t)json_integer_value(json_object_get(out, "files_done"));
    s.files_total =
        (uint64_t)json_integer_value(json_object_get(out, "files_total"));
    s.loss = -1;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    progress_update(
        &pr, &s, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec, 0);
    if (state && (!strcmp(state, "Completed") || !strcmp(state, "Failed"))) {
      int rc = SFT_EXIT_OK;
      progress_clear(&pr);
      if (!strcmp(state, "Failed")) {
        json_t *e = json_object_get(out, "error");
        cli_error("%s", json_string_value(json_object_get(e, "message"))
                            ? json_string_value(json_object_get(e, "message"))
                            : "the transfer failed");
        rc = exit_for(json_string_value(json_object_get(e, "code")));
      } else if (json) {
        char *js = json_dumps(out, JSON_COMPACT);
        printf("{\"event\":\"summary\",\"transfer\":%s}\n", js ? js : "null");
        free(js);
      } else {
        char b[32];
        fmt_bytes(b, sizeof(b), (double)s.bytes_total);
        printf("sent %" PRIu64 " file(s), %s via the daemon, verified\n",
               s.files_total, b);
      }
      json_decref(out);
      return rc;
    }
    json_decref(out);
    usleep(200000);
  }
}
