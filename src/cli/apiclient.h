/*
 * A small blocking HTTP/1.1 client for the daemon's REST API (loopback by
 * default). The CLI's daemon commands use it; it knows nothing of the
 * daemon's internals, only routes and JSON.
 */
#ifndef SFT_CLI_APICLIENT_H
#define SFT_CLI_APICLIENT_H

#include <jansson.h>

struct api {
  char host[256];
  unsigned port;
  char token[256];
  char why[512]; /* last error, for messages */
};

/* Resolves the API address (|addr| "HOST:PORT", else $SFT_API_API_BIND_ADDR,
 * else 127.0.0.1:8080) and reads the token from |data_dir|/api.token
 * (|data_dir| as for every command). Returns 0 or -1 with a->why. */
int api_init(struct api *a, const char *addr, const char *data_dir);

/* Is a daemon answering /healthz? (short timeout, no token needed) */
int api_alive(struct api *a);

/* Sends |method| |path| with an optional JSON |body| (not stolen).
 * Returns the HTTP status (and *out = parsed JSON body or NULL), or -1 if
 * the daemon cannot be reached (a->why says why). */
int api_call(struct api *a, const char *method, const char *path,
             const json_t *body, json_t **out);

/* The "message" of an {"error":{...}} body, or a generic text. */
const char *api_error_text(const json_t *body, int status);

/* `sft send` through a running daemon: POSTs |req| to /api/transfer/send
 * and follows the transfer with the progress display until it ends.
 * Returns the exit code. */
int cli_send_via_daemon(struct api *a, json_t *req, int json);

#endif
