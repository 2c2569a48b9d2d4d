/*
 * sft command-line interface: one file per subcommand, each exporting
 * `int cmd_<name>_main(int argc, char **argv)` where argv[0] is the
 * subcommand's name. The CLI talks to libsft and, later, to a daemon only
 * through its public API; it never includes daemon internals.
 */
#ifndef SFT_CLI_H
#define SFT_CLI_H

/* Exit codes, documented in `sft --help` and the README. */
enum sft_exit {
  SFT_EXIT_OK = 0,       /* success */
  SFT_EXIT_FAILURE = 1,  /* runtime failure (I/O, internal) */
  SFT_EXIT_USAGE = 2,    /* bad arguments or configuration */
  SFT_EXIT_VERIFY = 3,   /* data failed verification */
  SFT_EXIT_AUTH = 4,     /* peer identity refused or not trusted */
  SFT_EXIT_NETWORK = 5,  /* peer unreachable, connection lost for good */
  SFT_EXIT_REFUSED = 6,  /* receiver refused (exists, no space, too big) */
  SFT_EXIT_CANCELLED = 7 /* cancelled or interrupted */
};

/* Print "sft: <fmt>\n" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse a size such as 65536, 64K, 64KiB, 1M, 1MiB (binary multiples).
 * Returns 0 and sets *out, or -1 on a malformed or overflowing value. */
int cli_parse_size(const char *s, unsigned long long *out);

int cmd_version_main(int argc, char **argv);
int cmd_send_main(int argc, char **argv);
int cmd_recv_main(int argc, char **argv);
int cmd_id_main(int argc, char **argv);
int cmd_trust_main(int argc, char **argv);
int cmd_daemon_main(int argc, char **argv);
int cmd_ls_main(int argc, char **argv);
int cmd_status_main(int argc, char **argv);
int cmd_pause_main(int argc, char **argv);
int cmd_resume_main(int argc, char **argv);
int cmd_cancel_main(int argc, char **argv);
int cmd_hash_main(int argc, char **argv);

#endif /* SFT_CLI_H */
