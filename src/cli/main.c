#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#ifndef SFT_VERSION
#define SFT_VERSION "0.1.0"
#endif

struct subcommand {
  const char *name;
  int (*main)(int argc, char **argv);
  const char *help;
};

static const struct subcommand subcommands[] = {
    {"send", cmd_send_main, "send files and directories to `sft recv`"},
    {"recv", cmd_recv_main, "receive files into a directory"},
    {"id", cmd_id_main, "print this node's identity (SFT1-...)"},
    {"trust", cmd_trust_main, "let a sender's identity send to this node"},
    {"daemon", cmd_daemon_main, "run as a service: receive, send, REST API"},
    {"ls", cmd_ls_main, "list the daemon's transfers"},
    {"status", cmd_status_main, "show one transfer of the daemon"},
    {"pause", cmd_pause_main, "pause a transfer of the daemon"},
    {"resume", cmd_resume_main, "resume a paused transfer"},
    {"cancel", cmd_cancel_main, "cancel a transfer of the daemon"},
    {"hash", cmd_hash_main, "hash files as b3sum does; --chunks: the sft root"},
    {"version", cmd_version_main, "print sft's version"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: sft <command> [options]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
    fprintf(f, "  %-8s %s\n", subcommands[i].name, subcommands[i].help);
  fprintf(f,
          "\n`sft <command> --help` describes a command.\n\n"
          "exit codes:\n"
          "  0  success\n"
          "  1  runtime failure (I/O, internal error)\n"
          "  2  bad arguments or configuration\n"
          "  3  data failed verification\n"
          "  4  peer identity refused or not trusted\n"
          "  5  network failure (peer unreachable, connection lost)\n"
          "  6  refused by the receiver (file exists, no space, too large)\n"
          "  7  cancelled or interrupted\n");
}

void cli_error(const char *fmt, ...) {
  va_list ap;
  fputs("sft: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

int cli_parse_size(const char *s, unsigned long long *out) {
  unsigned long long v = 0, mul = 1;
  const char *p = s;
  if (!s || !*s)
    return -1;
  for (; *p >= '0' && *p <= '9'; p++) {
    if (v > (~0ULL - 9) / 10)
      return -1;
    v = v * 10 + (unsigned)(*p - '0');
  }
  if (p == s)
    return -1;
  if (*p) {
    switch (*p) {
    case 'k': case 'K': mul = 1ULL << 10; break;
    case 'm': case 'M': mul = 1ULL << 20; break;
    case 'g': case 'G': mul = 1ULL << 30; break;
    default: return -1;
    }
    p++;
    if (strcmp(p, "") != 0 && strcmp(p, "i") != 0 && strcmp(p, "iB") != 0 &&
        strcmp(p, "B") != 0)
      return -1;
  }
  if (v > ~0ULL / mul)
    return -1;
  *out = v * mul;
  return 0;
}

int cmd_version_main(int argc, char **argv) {
  (void)argc;
  (void)argv;
  printf("sft %s\n", SFT_VERSION);
  return SFT_EXIT_OK;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return SFT_EXIT_USAGE;
  }
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "help")) {
    usage(stdout);
    return SFT_EXIT_OK;
  }
  if (!strcmp(argv[1], "--version"))
    return cmd_version_main(argc - 1, argv + 1);
  for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
    if (!strcmp(argv[1], subcommands[i].name))
      return subcommands[i].main(argc - 1, argv + 1);
  cli_error("unknown command '%s' (see `sft --help`)", argv[1]);
  return SFT_EXIT_USAGE;
}
