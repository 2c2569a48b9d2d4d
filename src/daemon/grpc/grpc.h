/*
 * sftd gRPC service (proto/sft.proto, package sft.v1, service Agent).
 *
 * Thread model (docs/internals/grpc.md): the gRPC core completion queue runs
 * on a thread of its own. That thread accepts calls, checks the bearer token,
 * decodes and bounds each request (protobuf-c) and, for SendChunk, verifies
 * BLAKE3(data) against the digest. It then queues a work item to the libuv
 * loop (mutex + uv_async_send). The handlers below run ON THE LOOP THREAD,
 * one at a time, and fill a plain C reply; the module hands the reply back
 * to the gRPC thread, which encodes and sends it. The daemon therefore never
 * sees a protobuf type nor a gRPC object, and never hashes for gRPC.
 *
 * Every entry point (new, port, free, stats) is for the loop thread.
 */
#ifndef SFTD_GRPC_H
#define SFTD_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "sft/err.h"
#include "sft/hash.h"

/* gRPC status codes, numerically equal to grpc_status_code. */
enum sftd_grpc_code {
  SFTD_GRPC_OK = 0,
  SFTD_GRPC_CANCELLED = 1,
  SFTD_GRPC_UNKNOWN = 2,
  SFTD_GRPC_INVALID_ARGUMENT = 3,
  SFTD_GRPC_DEADLINE_EXCEEDED = 4,
  SFTD_GRPC_NOT_FOUND = 5,
  SFTD_GRPC_ALREADY_EXISTS = 6,
  SFTD_GRPC_PERMISSION_DENIED = 7,
  SFTD_GRPC_RESOURCE_EXHAUSTED = 8,
  SFTD_GRPC_FAILED_PRECONDITION = 9,
  SFTD_GRPC_ABORTED = 10,
  SFTD_GRPC_OUT_OF_RANGE = 11,
  SFTD_GRPC_UNIMPLEMENTED = 12,
  SFTD_GRPC_INTERNAL = 13,
  SFTD_GRPC_UNAVAILABLE = 14,
  SFTD_GRPC_DATA_LOSS = 15,
  SFTD_GRPC_UNAUTHENTICATED = 16,
};

/* Transfer state, the values of sft.v1.TransferState: the seed's machine
 * (enum sft_xfer_state + 1). COMPLETED and FAILED are terminal. */
enum sftd_grpc_state {
  SFTD_GRPC_STATE_UNSPECIFIED = 0, /* as a ListTransfers filter: any */
  SFTD_GRPC_STATE_IDLE = 1,
  SFTD_GRPC_STATE_PREPARING = 2,
  SFTD_GRPC_STATE_TRANSFERRING = 3,
  SFTD_GRPC_STATE_PAUSED = 4,
  SFTD_GRPC_STATE_COMPLETING = 5,
  SFTD_GRPC_STATE_COMPLETED = 6,
  SFTD_GRPC_STATE_FAILED = 7,
};

/* Scheduling class, the values of sft.v1.Priority. */
enum sftd_grpc_priority {
  SFTD_GRPC_PRIO_UNSPECIFIED = 0, /* the daemon's default */
  SFTD_GRPC_PRIO_NORMAL = 1,
  SFTD_GRPC_PRIO_HIGH = 2,
  SFTD_GRPC_PRIO_CRITICAL = 3,
};

/* Bounds (bytes without the NUL unless stated). Requests breaking one get
 * INVALID_ARGUMENT before any handler runs. */
#define SFTD_GRPC_ID_MAX 64       /* transfer and session ids */
#define SFTD_GRPC_TEXT_MAX 256    /* error, reason, status details */
#define SFTD_GRPC_PEER_MAX 255    /* host:port */
#define SFTD_GRPC_PEER_ID_MAX 128 /* key fingerprint */
#define SFTD_GRPC_PATHS_MAX 1024  /* SendFile paths (entries) */
#define SFTD_GRPC_PATH_MAX 4096   /* one SendFile path */
#define SFTD_GRPC_LIST_MAX 4096   /* ListTransfers entries */
#define SFTD_GRPC_CHUNK_DATA_MAX (16u * 1024 * 1024) /* SFT_CHUNK_SIZE_MAX */
#define SFTD_GRPC_CHUNK_MSG_MAX (32u * 1024 * 1024)  /* SendChunk request */
#define SFTD_GRPC_SMALL_MSG_MAX (64u * 1024)         /* other requests */

/* One transfer, as the daemon reports it. Strings are NUL-terminated. */
struct sftd_grpc_status {
  char id[SFTD_GRPC_ID_MAX + 1];
  enum sftd_grpc_state state;
  enum sftd_grpc_priority priority;
  uint64_t bytes_done, bytes_total;
  uint64_t chunks_done, chunks_total;
  double rate_bps; /* bytes per second */
  char error[SFTD_GRPC_TEXT_MAX + 1];
  char peer[SFTD_GRPC_PEER_MAX + 1];
};

/* SendChunk input. Everything is borrowed: valid only until the handler
 * returns (copy what must outlive it). |digest| == BLAKE3(data), already
 * verified on the gRPC thread. */
struct sftd_grpc_chunk {
  const char *session_id; /* 1..SFTD_GRPC_ID_MAX bytes */
  uint64_t file_id;
  uint64_t chunk_index;
  const uint8_t *data; /* may be NULL when len == 0 */
  size_t len;          /* <= SFTD_GRPC_CHUNK_DATA_MAX */
  uint8_t digest[SFT_HASH_LEN];
};

/* SendFile input; borrowed like sftd_grpc_chunk. */
struct sftd_grpc_send_file {
  const char *const *paths; /* npaths entries, each 1..SFTD_GRPC_PATH_MAX */
  size_t npaths;            /* 1..SFTD_GRPC_PATHS_MAX */
  const char *peer;         /* host:port, 1..SFTD_GRPC_PEER_MAX */
  const char *peer_id;      /* 0..SFTD_GRPC_PEER_ID_MAX ("" = none) */
  enum sftd_grpc_priority priority; /* one of the enum's values */
};

/* ListTransfers accumulator (owned by the module). */
struct sftd_grpc_list;

/* Appends a copy of |st| to |l|. 0; SFT_ERR_FULL once SFTD_GRPC_LIST_MAX
 * entries are held (the reply then says truncated); SFT_ERR_NOMEM. */
int sftd_grpc_list_add(struct sftd_grpc_list *l,
                       const struct sftd_grpc_status *st);

/*
 * The daemon's side: one function per RPC, each called on the loop thread
 * with the |ud| given to sftd_grpc_new. Each returns a code; OK sends the
 * reply, anything else ends the call with that code and |msg| as details.
 * |msg| points at SFTD_GRPC_TEXT_MAX + 1 bytes holding "" on entry. Output
 * structs are zeroed on entry. A NULL pointer makes the RPC UNIMPLEMENTED.
 * Handlers must not call sftd_grpc_free.
 */
struct sftd_grpc_handlers {
  /* SendChunk. On OK, *accepted says whether the chunk went into its session;
   * when not, |msg| is the reason sent back. */
  enum sftd_grpc_code (*send_chunk)(void *ud, const struct sftd_grpc_chunk *in,
                                    bool *accepted, char *msg);
  /* GetTransferStatus; also polled by WatchTransfer (see below). */
  enum sftd_grpc_code (*get_status)(void *ud, const char *id,
                                    struct sftd_grpc_status *out, char *msg);
  /* SendFile: writes the new transfer's id (1..SFTD_GRPC_ID_MAX bytes). */
  enum sftd_grpc_code (*send_file)(void *ud,
                                   const struct sftd_grpc_send_file *in,
                                   char id_out[SFTD_GRPC_ID_MAX + 1],
                                   char *msg);
  /* Pause / Resume / Cancel: the transfer's status after the action. */
  enum sftd_grpc_code (*pause)(void *ud, const char *id,
                               struct sftd_grpc_status *out, char *msg);
  enum sftd_grpc_code (*resume)(void *ud, const char *id,
                                struct sftd_grpc_status *out, char *msg);
  enum sftd_grpc_code (*cancel)(void *ud, const char *id,
                                struct sftd_grpc_status *out, char *msg);
  /* ListTransfers: sftd_grpc_list_add each transfer in |filter|'s state
   * (UNSPECIFIED: all), stop on SFT_ERR_FULL. */
  enum sftd_grpc_code (*list)(void *ud, enum sftd_grpc_state filter,
                              struct sftd_grpc_list *out, char *msg);
};

/* WatchTransfer needs no handler of its own: the module calls get_status
 * when the stream opens and then every watch_interval_ms, sends a message
 * whenever the status differs from the last one sent, and ends the stream
 * with OK after a terminal state (or with get_status's non-OK code). */

struct sftd_grpc_config {
  const char *bind;  /* "host:port"; port 0 picks a free port */
  const char *token; /* bearer token, required and non-empty; not kept (only
                        its BLAKE3 digest is) */
  const char *tls_cert_path;  /* PEM chain; with tls_key_path, or both NULL */
  const char *tls_key_path;   /* PEM private key */
  unsigned watch_interval_ms; /* 0: 200 */
  unsigned max_calls;         /* calls open at once, beyond which new calls get
                                 RESOURCE_EXHAUSTED; 0: 256 */
};

struct sftd_grpc;

/* Counters, read on the loop thread (relaxed atomics: a snapshot). */
struct sftd_grpc_stats {
  uint64_t calls;   /* calls accepted from gRPC */
  uint64_t unauth;  /* ended UNAUTHENTICATED */
  uint64_t invalid; /* ended INVALID_ARGUMENT before reaching the loop */
  uint64_t handled; /* handler invocations on the loop */
  uint64_t open;    /* calls currently open */
  uint64_t queued;  /* work items waiting for the loop */
};

/* Starts the server: binds, starts the gRPC thread, registers a uv_async on
 * |loop| (which keeps the loop alive until sftd_grpc_free). |cfg| and |h| are
 * copied (the strings in |cfg| need not outlive the call); |ud| is passed
 * to the handlers. *pg is NULL on failure. Errors: SFT_ERR_INVAL (NULL
 * argument, empty token or bind, only one of cert/key), SFT_ERR_IO (a TLS
 * file unreadable, bind failed), SFT_ERR_NOMEM. */
int sftd_grpc_new(struct sftd_grpc **pg, uv_loop_t *loop,
                  const struct sftd_grpc_config *cfg,
                  const struct sftd_grpc_handlers *h, void *ud);

/* The TCP port bound (useful with port 0). */
int sftd_grpc_port(const struct sftd_grpc *g);

void sftd_grpc_get_stats(const struct sftd_grpc *g,
                         struct sftd_grpc_stats *out);

/* Stops the server (NULL: no-op): cancels open calls (their clients see
 * CANCELLED or UNAVAILABLE), answers queued work without running handlers,
 * drains the completion queue and joins the thread, then closes the
 * uv_async. Blocks for that (usually a few ms). The memory is released by
 * the close callback, so the loop must run once more (uv_run) before
 * uv_loop_close. Not from inside a handler. */
void sftd_grpc_free(struct sftd_grpc *g);

/* Test and fuzz hook: decodes and validates |n| bytes as the request of
 * |method| (e.g. "/sft.v1.Agent/SendChunk") exactly as the gRPC thread does
 * (size bound, protobuf-c, field bounds, enum ranges, SendChunk digest) and
 * frees everything. Returns the code the call would end with before any
 * handler runs: OK if it would be queued to the loop, UNIMPLEMENTED for an
 * unknown method. Thread-safe; needs no server. */
enum sftd_grpc_code sftd_grpc_check_request(const char *method,
                                            const uint8_t *p, size_t n);

/* SFT_ERR_* -> code, for handlers: 0 OK, NOT_FOUND, INVAL/RANGE/MALFORMED/
 * TOO_LARGE/PATH/TRUNCATED/DIGEST INVALID_ARGUMENT, STATE
 * FAILED_PRECONDITION, EXISTS ALREADY_EXISTS, FULL/NOMEM/NOSPACE
 * RESOURCE_EXHAUSTED, AUTH PERMISSION_DENIED, AGAIN/CLOSED UNAVAILABLE,
 * TIMEOUT DEADLINE_EXCEEDED, CANCELLED CANCELLED, UNSUPPORTED UNIMPLEMENTED,
 * anything else INTERNAL. */
enum sftd_grpc_code sftd_grpc_code_from_err(int err);

#endif /* SFTD_GRPC_H */
