/*
 * sftd gRPC service: gRPC core C API + protobuf-c on a thread of its own,
 * handlers on the libuv loop. See grpc.h for the contract and
 * docs/internals/grpc.md for the design (hand-off, wake-up trick, shutdown).
 *
 * Ownership: a struct gcall belongs to the gRPC thread, except while it sits
 * in the loop queue or runs its handler (then the loop owns it until it posts
 * the call's "back" tag). c->pending counts what can still come back for it
 * (completion-queue tags, the loop, the watch list); at zero it is freed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/grpc/grpc.h"
#include "sft.pb-c.h"

/* ---- methods ------------------------------------------------------------ */

enum rpc {
  RPC_SEND_CHUNK,
  RPC_GET_STATUS,
  RPC_SEND_FILE,
  RPC_PAUSE,
  RPC_RESUME,
  RPC_CANCEL,
  RPC_LIST,
  RPC_WATCH,
  RPC_COUNT,
};

static const struct {
  const char *path;
  size_t max; /* request bytes */
} methods[RPC_COUNT] = {
    [RPC_SEND_CHUNK] = {"/sft.v1.Agent/SendChunk", SFTD_GRPC_CHUNK_MSG_MAX},
    [RPC_GET_STATUS] = {"/sft.v1.Agent/GetTransferStatus",
                        SFTD_GRPC_SMALL_MSG_MAX},
    [RPC_SEND_FILE] = {"/sft.v1.Agent/SendFile", SFTD_GRPC_SMALL_MSG_MAX},
    [RPC_PAUSE] = {"/sft.v1.Agent/Pause", SFTD_GRPC_SMALL_MSG_MAX},
    [RPC_RESUME] = {"/sft.v1.Agent/Resume", SFTD_GRPC_SMALL_MSG_MAX},
    [RPC_CANCEL] = {"/sft.v1.Agent/Cancel", SFTD_GRPC_SMALL_MSG_MAX},
    [RPC_LIST] = {"/sft.v1.Agent/ListTransfers", SFTD_GRPC_SMALL_MSG_MAX},
    [RPC_WATCH] = {"/sft.v1.Agent/WatchTransfer", SFTD_GRPC_SMALL_MSG_MAX},
};

static int rpc_from_path(const char *p, size_t n) {
  for (int i = 0; i < RPC_COUNT; i++)
    if (strlen(methods[i].path) == n && memcmp(methods[i].path, p, n) == 0)
      return i;
  return -1;
}

/* ---- requests: decode and validate (gRPC thread) ------------------------ */

struct req {
  ProtobufCMessage *msg; /* unpacked request, owns the strings below */
  union {
    struct sftd_grpc_chunk chunk;
    struct sftd_grpc_send_file sf;
    const char *id;
    enum sftd_grpc_state filter;
  } in;
};

static void req_free(struct req *r) {
  if (r->msg)
    protobuf_c_message_free_unpacked(r->msg, NULL);
  r->msg = NULL;
}

static void set_text(char *text, const char *s) {
  snprintf(text, SFTD_GRPC_TEXT_MAX + 1, "%s", s);
}

/* A string field within [min, max] bytes (strlen: protobuf-c strings are
 * NUL-terminated; an embedded NUL just shortens it). */
static bool str_ok(const char *s, size_t min, size_t max) {
  if (!s)
    return min == 0;
  size_t n = strnlen(s, max + 1);
  return n >= min && n <= max;
}

static bool digest_equal(const uint8_t *a, const uint8_t *b) {
  unsigned char d = 0;
  for (size_t i = 0; i < SFT_HASH_LEN; i++)
    d |= (unsigned char)(a[i] ^ b[i]);
  return d == 0;
}

/* Decodes |p|/|n| as |rpc|'s request into |r| (r->msg owned by |r| even on
 * error: call req_free). Writes the details of a failure into |text|. */
static enum sftd_grpc_code req_decode(struct req *r, int rpc, const uint8_t *p,
                                      size_t n, char *text) {
  memset(r, 0, sizeof(*r));
  if (n > methods[rpc].max) {
    set_text(text, "request too large");
    return SFTD_GRPC_RESOURCE_EXHAUSTED;
  }
  switch (rpc) {
  case RPC_SEND_CHUNK: {
    Sft__V1__SendChunkRequest *m =
        sft__v1__send_chunk_request__unpack(NULL, n, p);
    r->msg = (ProtobufCMessage *)m;
    if (!m)
      break;
    if (!str_ok(m->session_id, 1, SFTD_GRPC_ID_MAX)) {
      set_text(text, "session_id must be 1..64 bytes");
      return SFTD_GRPC_INVALID_ARGUMENT;
    }
    if (m->data.len > SFTD_GRPC_CHUNK_DATA_MAX) {
      set_text(text, "chunk data larger than 16 MiB");
      return SFTD_GRPC_INVALID_ARGUMENT;
    }
    if (m->digest.len != SFT_HASH_LEN) {
      set_text(text, "digest must be 32 bytes");
      return SFTD_GRPC_INVALID_ARGUMENT;
    }
    /* The loop never hashes: verify here, on the gRPC thread. */
    uint8_t d[SFT_HASH_LEN];
    sft_blake3(m->data.data, m->data.len, d);
    if (!digest_equal(d, m->digest.data)) {
      set_text(text, "digest mismatch");
      return SFTD_GRPC_INVALID_ARGUMENT;
    }
    r->in.chunk.session_id = m->session_id;
    r->in.chunk.file_id = m->file_id;
    r->in.chunk.chunk_index = m->chunk_index;
    r->in.chunk.data = m->data.data;
    r->in.chunk.len = m->data.len;
    memcpy(r->in.chunk.digest, m->digest.data, SFT_HASH_LEN);
    return SFTD_GRPC_OK;
  }
  case RPC_GET_STATUS: {
    Sft__V1__GetTransferStatusRequest *m =
        sft__v1__get_transfer_status_request__unpack(NULL, n, p);
    r->msg = (ProtobufCMessage *)m;
    if (!m)
      break;
    r->in.id = m->id;
    goto check_id;
  }
  case RPC_PAUSE:
  case RPC_RESUME:
  case RPC_CANCEL: {
    Sft__V1__TransferIdRequest *m =
        sft__v1__transfer_id_request__unpack(NULL, n, p);
    r->msg = (ProtobufCMessage *)m;
    if (!m)
      break;
    r->in.id = m->id;
    goto check_id;
  }
  case RPC_WATCH: {
    Sft__V1__WatchTransferRequest *m =
        sft__v1__watch_transfer_request__unpack(NULL, n, p);
    r->msg = (ProtobufCMessage *)m;
    if (!m)
      break;
    r->in.id = m->id;
    goto check_id;
  }
  case RPC_SEND_FILE: {
    Sft__V1__SendFileRequest *m =
        sft__v1__send_file_request__unpack(NULL, n, p);
    r->msg = (ProtobufCMessage *)m;
    if (!m)
      break;
    if (m->n_paths < 1 || m->n_paths > SFTD_GRPC_PATHS_MAX) {
      set_text(text, "paths must have 1..1024 entries");
      return SFTD_GRPC_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < m->n_paths; i++)
      if (!str_ok(m->paths[i], 1, SFTD_GRPC_PATH_MAX)) {
        set_text(text, "each path must be 1..4096 bytes");
        return SFTD_GRPC_INVALID_ARGUMENT;
      }
    if (!str_ok(m->peer, 1, SFTD_GRPC_PEER_MAX)) {
      set_text(text, "peer must be host:port, 1..255 bytes");
      return SFTD_GRPC_INVALID_ARGUMENT;
    }
    if (!str_ok(m->peer_id, 0, SFTD_GRPC_PEER_ID_MAX)) {
      set_text(text, "peer_id must be at most 128 bytes");
      return SFTD_GRPC_INVALID_ARGUMENT;
    }
    if ((int)m->priority < 0 || (int)m->priority > SFTD_GRPC_PRIO_CRITICAL) {
      set_text(text, "unknown priority");
      return SFTD_GRPC_INVALID_ARGUMENT;
    }
    r->in.sf.paths = (const char *const *)m->paths;
    r->in.sf.npaths = m->n_paths;
    r->in.sf.peer = m->peer;
    r->in.sf.peer_id = m->peer_id ? m->peer_id : "";
    r->in.sf.priority = (enum sftd_grpc_priority)m->priority;
    return SFTD_GRPC_OK;
  }
  case RPC_LIST: {
    Sft__V1__ListTransfersRequest *m =
        sft__v1__list_transfers_request__unpack(NULL, n, p);
    r->msg = (ProtobufCMessage *)m;
    if (!m)
      break;
    if ((int)m->state < 0 || (int)m->state > SFTD_GRPC_STATE_FAILED) {
      set_text(text, "unknown state");
      return SFTD_GRPC_INVALID_ARGUMENT;
    }
    r->in.filter = (enum sftd_grpc_state)m->state;
    return SFTD_GRPC_OK;
  }
  default:
    set_text(text, "unknown method");
    return SFTD_GRPC_UNIMPLEMENTED;
  }
  /* unpack failed */
  r->msg = NULL;
  set_text(text, "malformed request");
  return SFTD_GRPC_INVALID_ARGUMENT;

check_id:
  if (!str_ok(r->in.id, 1, SFTD_GRPC_ID_MAX)) {
    set_text(text, "id must be 1..64 bytes");
    return SFTD_GRPC_INVALID_ARGUMENT;
  }
  return SFTD_GRPC_OK;
}

enum sftd_grpc_code sftd_grpc_check_request(const char *method,
                                            const uint8_t *p, size_t n) {
  char text[SFTD_GRPC_TEXT_MAX + 1];
  struct req r;
  if (!method)
    return SFTD_GRPC_INVALID_ARGUMENT;
  int rpc = rpc_from_path(method, strlen(method));
  if (rpc < 0)
    return SFTD_GRPC_UNIMPLEMENTED;
  enum sftd_grpc_code code = req_decode(&r, rpc, p, n, text);
  req_free(&r);
  return code;
}

/* ---- replies: encode (gRPC thread) -------------------------------------- */

struct sftd_grpc_list {
  struct sftd_grpc_status *v;
  size_t n, cap;
  bool truncated;
};

int sftd_grpc_list_add(struct sftd_grpc_list *l,
                       const struct sftd_grpc_status *st) {
  if (!l || !st)
    return SFT_ERR_INVAL;
  if (l->n >= SFTD_GRPC_LIST_MAX) {
    l->truncated = true;
    return SFT_ERR_FULL;
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    if (cap > SFTD_GRPC_LIST_MAX)
      cap = SFTD_GRPC_LIST_MAX;
    struct sftd_grpc_status *v = realloc(l->v, cap * sizeof(*v));
    if (!v)
      return SFT_ERR_NOMEM;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n] = *st;
  /* never trust the daemon's strings to be terminated */
  l->v[l->n].id[SFTD_GRPC_ID_MAX] = '\0';
  l->v[l->n].error[SFTD_GRPC_TEXT_MAX] = '\0';
  l->v[l->n].peer[SFTD_GRPC_PEER_MAX] = '\0';
  l->n++;
  return 0;
}

static void list_free(struct sftd_grpc_list *l) {
  if (l) {
    free(l->v);
    free(l);
  }
}

static void status_to_pb(struct sftd_grpc_status *s,
                         Sft__V1__TransferStatus *m) {
  sft__v1__transfer_status__init(m);
  s->id[SFTD_GRPC_ID_MAX] = '\0';
  s->error[SFTD_GRPC_TEXT_MAX] = '\0';
  s->peer[SFTD_GRPC_PEER_MAX] = '\0';
  m->id = s->id;
  m->state = (Sft__V1__TransferState)s->state;
  m->bytes_done = s->bytes_done;
  m->bytes_total = s->bytes_total;
  m->chunks_done = s->chunks_done;
  m->chunks_total = s->chunks_total;
  m->rate_bps = s->rate_bps;
  m->error = s->error;
  m->peer = s->peer;
  m->priority = (Sft__V1__Priority)s->priority;
}

/* Packs |m| into a new byte buffer (NULL on allocation failure). */
static grpc_byte_buffer *pack(const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf)
    return NULL;
  protobuf_c_message_pack(m, buf);
  grpc_slice s = grpc_slice_new(buf, n, free); /* takes |buf| */
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

/* ---- server state -------------------------------------------------------- */

enum tag_kind { T_NEW, T_RECV, T_CLOSE, T_SEND, T_BACK };

struct gcall;
struct tag {
  struct gcall *c;
  enum tag_kind kind;
};

struct gcall {
  struct sftd_grpc *g;
  struct gcall *next; /* loop queue or watch list */
  grpc_call *call;
  grpc_call_details details;
  grpc_metadata_array md;
  grpc_byte_buffer *req_bb;
  grpc_byte_buffer *resp_bb;
  grpc_slice details_slice;
  bool has_details_slice;
  int close_cancelled; /* out-param of RECV_CLOSE_ON_SERVER */
  atomic_bool gone;    /* client cancelled / call dead: skip the handler */
  struct tag t_new, t_recv, t_close, t_send, t_back;
  int pending;
  int rpc;
  bool accepted_call; /* counted in stats.open */
  bool md_sent, final_sent;
  /* the work item */
  struct req req;
  enum sftd_grpc_code code;
  char text[SFTD_GRPC_TEXT_MAX + 1];
  bool accepted;
  struct sftd_grpc_status st;
  char new_id[SFTD_GRPC_ID_MAX + 1];
  struct sftd_grpc_list *list;
  /* WatchTransfer */
  struct sftd_grpc_status last;
  bool have_last;
  uint64_t due_ms;
};

struct sftd_grpc {
  uv_loop_t *loop;
  uv_async_t async;
  struct sftd_grpc_handlers h;
  void *ud;
  uint8_t token_digest[SFT_HASH_LEN]; /* BLAKE3("Bearer " token) */
  unsigned watch_ms, max_calls;
  int port;

  grpc_server *server;
  grpc_completion_queue *cq;
  pthread_t thread;
  bool thread_started;
  int shutdown_tag;

  pthread_mutex_t mu; /* guards queue, stopping */
  struct gcall *qhead, *qtail;
  bool stopping;
  atomic_bool stop_flag; /* same as stopping, readable without the lock */

  /* gRPC thread only */
  size_t live; /* gcall objects alive */
  size_t open; /* accepted calls alive */
  bool shutdown_seen, cq_shut;
  struct gcall *watch; /* waiting for their next poll */

  _Atomic uint64_t n_calls, n_unauth, n_invalid, n_handled, n_open, n_queued;
};

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- call lifetime (gRPC thread) ---------------------------------------- */

static void request_new_call(struct sftd_grpc *g);

static void release(struct gcall *c) {
  struct sftd_grpc *g = c->g;
  req_free(&c->req);
  list_free(c->list);
  if (c->req_bb)
    grpc_byte_buffer_destroy(c->req_bb);
  if (c->resp_bb)
    grpc_byte_buffer_destroy(c->resp_bb);
  if (c->has_details_slice)
    grpc_slice_unref(c->details_slice);
  grpc_call_details_destroy(&c->details);
  grpc_metadata_array_destroy(&c->md);
  if (c->call)
    grpc_call_unref(c->call);
  if (c->accepted_call) {
    g->open--;
    atomic_fetch_sub_explicit(&g->n_open, 1, memory_order_relaxed);
  }
  g->live--;
  free(c);
}

static void unpend(struct gcall *c) {
  if (--c->pending == 0)
    release(c);
}

static void start(struct gcall *c, const grpc_op *ops, size_t n,
                  struct tag *t) {
  c->pending++;
  grpc_call_error e = grpc_call_start_batch(c->call, ops, n, t, NULL);
  if (e != GRPC_CALL_OK) {
    /* Only on misuse; keep the books straight rather than leak. */
    fprintf(stderr, "sftd grpc: start_batch: %d\n", (int)e);
    atomic_store(&c->gone, true);
    c->pending--;
  }
}

/* Ends the call: initial metadata if not sent yet, an optional message
 * (taken), then the status. */
static void finish(struct gcall *c, enum sftd_grpc_code code, const char *text,
                   grpc_byte_buffer *msg) {
  grpc_op ops[3];
  size_t n = 0;
  memset(ops, 0, sizeof(ops));
  if (!c->md_sent) {
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    c->md_sent = true;
  }
  if (msg) {
    if (c->resp_bb)
      grpc_byte_buffer_destroy(c->resp_bb);
    c->resp_bb = msg;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = msg;
  }
  if (c->has_details_slice)
    grpc_slice_unref(c->details_slice);
  c->details_slice = grpc_slice_from_copied_string(text ? text : "");
  c->has_details_slice = true;
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = (grpc_status_code)code;
  ops[n++].data.send_status_from_server.status_details = &c->details_slice;
  c->final_sent = true;
  if (code == SFTD_GRPC_UNAUTHENTICATED)
    atomic_fetch_add_explicit(&c->g->n_unauth, 1, memory_order_relaxed);
  start(c, ops, n, &c->t_send);
}

/* Queues |c| to the loop. False when the server is stopping (the caller
 * then answers UNAVAILABLE itself). */
static bool to_loop(struct gcall *c) {
  struct sftd_grpc *g = c->g;
  pthread_mutex_lock(&g->mu);
  if (g->stopping) {
    pthread_mutex_unlock(&g->mu);
    return false;
  }
  c->pending++; /* comes back through t_back */
  c->next = NULL;
  if (g->qtail)
    g->qtail->next = c;
  else
    g->qhead = c;
  g->qtail = c;
  atomic_fetch_add_explicit(&g->n_queued, 1, memory_order_relaxed);
  pthread_mutex_unlock(&g->mu);
  uv_async_send(&g->async);
  return true;
}

static void send_to_loop(struct gcall *c) {
  if (!to_loop(c))
    finish(c, SFTD_GRPC_UNAVAILABLE, "server shutting down", NULL);
}

static void watch_schedule(struct gcall *c) {
  struct sftd_grpc *g = c->g;
  c->due_ms = now_ms() + g->watch_ms;
  c->pending++;
  c->next = g->watch;
  g->watch = c;
}

/* Polls the watchers whose time has come (all of them when stopping).
 * Returns the ms until the next one is due (capped). */
static uint64_t watch_run(struct sftd_grpc *g) {
  uint64_t now = now_ms(), wait = 1000;
  bool stopping = atomic_load(&g->stop_flag);
  struct gcall **pp = &g->watch;
  while (*pp) {
    struct gcall *c = *pp;
    if (!stopping && c->due_ms > now && !atomic_load(&c->gone)) {
      if (c->due_ms - now < wait)
        wait = c->due_ms - now;
      pp = &c->next;
      continue;
    }
    *pp = c->next;
    c->next = NULL;
    if (!atomic_load(&c->gone)) {
      if (stopping)
        finish(c, SFTD_GRPC_UNAVAILABLE, "server shutting down", NULL);
      else
        send_to_loop(c);
    }
    unpend(c); /* the watch list's reference */
  }
  return wait;
}

/* Constant-time check of "authorization: Bearer <token>" (exactly one). */
static bool auth_ok(struct sftd_grpc *g, const grpc_metadata_array *md) {
  const grpc_slice *val = NULL;
  size_t found = 0;
  for (size_t i = 0; i < md->count; i++)
    if (grpc_slice_str_cmp(md->metadata[i].key, "authorization") == 0) {
      val = &md->metadata[i].value;
      found++;
    }
  if (found != 1 || GRPC_SLICE_LENGTH(*val) > 4096)
    return false;
  uint8_t d[SFT_HASH_LEN];
  sft_blake3(GRPC_SLICE_START_PTR(*val), GRPC_SLICE_LENGTH(*val), d);
  return digest_equal(d, g->token_digest);
}

static void on_new(struct gcall *c, bool ok) {
  struct sftd_grpc *g = c->g;
  if (!ok) { /* shutting down: never became a call */
    unpend(c);
    return;
  }
  if (!atomic_load(&g->stop_flag))
    request_new_call(g);
  c->accepted_call = true;
  g->open++;
  atomic_fetch_add_explicit(&g->n_open, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&g->n_calls, 1, memory_order_relaxed);

  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &c->close_cancelled;
  start(c, &op, 1, &c->t_close);

  c->rpc = rpc_from_path((const char *)GRPC_SLICE_START_PTR(c->details.method),
                         GRPC_SLICE_LENGTH(c->details.method));
  if (!auth_ok(g, &c->md)) {
    finish(c, SFTD_GRPC_UNAUTHENTICATED, "missing or invalid bearer token",
           NULL);
  } else if (c->rpc < 0) {
    finish(c, SFTD_GRPC_UNIMPLEMENTED, "unknown method", NULL);
  } else if (g->open > g->max_calls) {
    finish(c, SFTD_GRPC_RESOURCE_EXHAUSTED, "too many calls", NULL);
  } else {
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->req_bb;
    start(c, &op, 1, &c->t_recv);
  }
  unpend(c); /* t_new */
}

static void on_recv(struct gcall *c, bool ok) {
  struct sftd_grpc *g = c->g;
  if (!ok || atomic_load(&c->gone)) {
    unpend(c);
    return;
  }
  if (!c->req_bb) {
    atomic_fetch_add_explicit(&g->n_invalid, 1, memory_order_relaxed);
    finish(c, SFTD_GRPC_INVALID_ARGUMENT, "missing request message", NULL);
    unpend(c);
    return;
  }
  enum sftd_grpc_code code;
  if (grpc_byte_buffer_length(c->req_bb) > methods[c->rpc].max) {
    set_text(c->text, "request too large");
    code = SFTD_GRPC_RESOURCE_EXHAUSTED;
  } else {
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, c->req_bb)) {
      set_text(c->text, "undecodable message");
      code = SFTD_GRPC_INVALID_ARGUMENT;
    } else {
      grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
      grpc_byte_buffer_reader_destroy(&rd);
      code = req_decode(&c->req, c->rpc, GRPC_SLICE_START_PTR(s),
                        GRPC_SLICE_LENGTH(s), c->text);
      grpc_slice_unref(s);
    }
  }
  grpc_byte_buffer_destroy(c->req_bb);
  c->req_bb = NULL;
  if (code != SFTD_GRPC_OK) {
    if (code == SFTD_GRPC_INVALID_ARGUMENT)
      atomic_fetch_add_explicit(&g->n_invalid, 1, memory_order_relaxed);
    finish(c, code, c->text, NULL);
  } else {
    send_to_loop(c);
  }
  unpend(c);
}

static bool status_differs(const struct sftd_grpc_status *a,
                           const struct sftd_grpc_status *b) {
  return a->state != b->state || a->priority != b->priority ||
         a->bytes_done != b->bytes_done || a->bytes_total != b->bytes_total ||
         a->chunks_done != b->chunks_done ||
         a->chunks_total != b->chunks_total || a->rate_bps != b->rate_bps ||
         strcmp(a->id, b->id) != 0 || strcmp(a->error, b->error) != 0 ||
         strcmp(a->peer, b->peer) != 0;
}

static bool terminal(enum sftd_grpc_state s) {
  return s == SFTD_GRPC_STATE_COMPLETED || s == SFTD_GRPC_STATE_FAILED;
}

/* The loop has answered: encode and send (gRPC thread). */
static void on_back(struct gcall *c) {
  if (atomic_load(&c->gone)) {
    unpend(c);
    return;
  }
  if (c->code != SFTD_GRPC_OK) {
    finish(c, c->code, c->text, NULL);
    unpend(c);
    return;
  }
  grpc_byte_buffer *bb = NULL;
  switch (c->rpc) {
  case RPC_SEND_CHUNK: {
    Sft__V1__SendChunkReply m;
    sft__v1__send_chunk_reply__init(&m);
    m.accepted = c->accepted;
    static char empty[1];
    m.reason = c->accepted ? empty : c->text;
    bb = pack(&m.base);
    break;
  }
  case RPC_SEND_FILE: {
    Sft__V1__SendFileReply m;
    sft__v1__send_file_reply__init(&m);
    c->new_id[SFTD_GRPC_ID_MAX] = '\0';
    m.id = c->new_id;
    bb = pack(&m.base);
    break;
  }
  case RPC_GET_STATUS:
  case RPC_PAUSE:
  case RPC_RESUME:
  case RPC_CANCEL: {
    Sft__V1__TransferStatus m;
    status_to_pb(&c->st, &m);
    bb = pack(&m.base);
    break;
  }
  case RPC_LIST: {
    Sft__V1__ListTransfersReply m;
    sft__v1__list_transfers_reply__init(&m);
    size_t n = c->list ? c->list->n : 0;
    Sft__V1__TransferStatus *v = calloc(n ? n : 1, sizeof(*v));
    Sft__V1__TransferStatus **pv = calloc(n ? n : 1, sizeof(*pv));
    if (v && pv) {
      for (size_t i = 0; i < n; i++) {
        status_to_pb(&c->list->v[i], &v[i]);
        pv[i] = &v[i];
      }
      m.n_transfers = n;
      m.transfers = pv;
      m.truncated = c->list && c->list->truncated;
      bb = pack(&m.base);
    }
    free(v);
    free(pv);
    break;
  }
  case RPC_WATCH: {
    if (c->have_last && !status_differs(&c->st, &c->last)) {
      watch_schedule(c); /* nothing new: poll again later */
      unpend(c);
      return;
    }
    Sft__V1__TransferStatus m;
    status_to_pb(&c->st, &m);
    bb = pack(&m.base);
    if (!bb)
      break;
    c->last = c->st;
    c->have_last = true;
    grpc_op ops[2];
    size_t n = 0;
    memset(ops, 0, sizeof(ops));
    if (!c->md_sent) {
      ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
      c->md_sent = true;
    }
    if (c->resp_bb)
      grpc_byte_buffer_destroy(c->resp_bb);
    c->resp_bb = bb;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = bb;
    start(c, ops, n, &c->t_send);
    unpend(c);
    return;
  }
  }
  if (!bb)
    finish(c, SFTD_GRPC_INTERNAL, "out of memory", NULL);
  else
    finish(c, SFTD_GRPC_OK, "", bb);
  unpend(c);
}

static void on_send(struct gcall *c, bool ok) {
  if (!c->final_sent && c->rpc == RPC_WATCH) { /* a stream message went */
    if (ok && !atomic_load(&c->gone)) {
      if (terminal(c->last.state))
        finish(c, SFTD_GRPC_OK, "", NULL);
      else
        watch_schedule(c);
    }
  }
  unpend(c);
}

static void dispatch(struct tag *t, bool ok) {
  struct gcall *c = t->c;
  switch (t->kind) {
  case T_NEW:
    on_new(c, ok);
    break;
  case T_RECV:
    on_recv(c, ok);
    break;
  case T_CLOSE:
    /* The call is over for the client (cancelled, or after our status). */
    atomic_store(&c->gone, true);
    unpend(c);
    break;
  case T_SEND:
    on_send(c, ok);
    break;
  case T_BACK:
    on_back(c);
    break;
  }
}

static void request_new_call(struct sftd_grpc *g) {
  struct gcall *c = calloc(1, sizeof(*c));
  if (!c)
    return; /* the other outstanding requests keep serving */
  c->g = g;
  c->rpc = -1;
  c->t_new = (struct tag){c, T_NEW};
  c->t_recv = (struct tag){c, T_RECV};
  c->t_close = (struct tag){c, T_CLOSE};
  c->t_send = (struct tag){c, T_SEND};
  c->t_back = (struct tag){c, T_BACK};
  atomic_init(&c->gone, false);
  grpc_call_details_init(&c->details);
  grpc_metadata_array_init(&c->md);
  g->live++;
  c->pending = 1;
  grpc_call_error e = grpc_server_request_call(g->server, &c->call, &c->details,
                                               &c->md, g->cq, g->cq, &c->t_new);
  if (e != GRPC_CALL_OK)
    unpend(c);
}

#define ACCEPT_BACKLOG 8 /* request_call kept outstanding */

static void *grpc_thread(void *arg) {
  struct sftd_grpc *g = arg;
  for (int i = 0; i < ACCEPT_BACKLOG; i++)
    request_new_call(g);
  for (;;) {
    uint64_t wait = watch_run(g);
    if (g->shutdown_seen && g->live == 0 && !g->cq_shut) {
      grpc_completion_queue_shutdown(g->cq);
      g->cq_shut = true;
    }
    gpr_timespec dl =
        gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                     gpr_time_from_millis((int64_t)wait, GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_next(g->cq, dl, NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      break;
    if (ev.type != GRPC_OP_COMPLETE)
      continue;
    if (ev.tag == &g->shutdown_tag)
      g->shutdown_seen = true;
    else
      dispatch(ev.tag, ev.success != 0);
  }
  return NULL;
}

/* ---- loop side ----------------------------------------------------------- */

static void run_handler(struct sftd_grpc *g, struct gcall *c) {
  const struct sftd_grpc_handlers *h = &g->h;
  c->text[0] = '\0';
  memset(&c->st, 0, sizeof(c->st));
  atomic_fetch_add_explicit(&g->n_handled, 1, memory_order_relaxed);
  switch (c->rpc) {
  case RPC_SEND_CHUNK:
    c->accepted = false;
    c->code = h->send_chunk ? h->send_chunk(g->ud, &c->req.in.chunk,
                                            &c->accepted, c->text)
                            : SFTD_GRPC_UNIMPLEMENTED;
    break;
  case RPC_GET_STATUS:
  case RPC_WATCH:
    c->code = h->get_status
                  ? h->get_status(g->ud, c->req.in.id, &c->st, c->text)
                  : SFTD_GRPC_UNIMPLEMENTED;
    break;
  case RPC_SEND_FILE:
    memset(c->new_id, 0, sizeof(c->new_id));
    c->code = h->send_file
                  ? h->send_file(g->ud, &c->req.in.sf, c->new_id, c->text)
                  : SFTD_GRPC_UNIMPLEMENTED;
    break;
  case RPC_PAUSE:
    c->code = h->pause ? h->pause(g->ud, c->req.in.id, &c->st, c->text)
                       : SFTD_GRPC_UNIMPLEMENTED;
    break;
  case RPC_RESUME:
    c->code = h->resume ? h->resume(g->ud, c->req.in.id, &c->st, c->text)
                        : SFTD_GRPC_UNIMPLEMENTED;
    break;
  case RPC_CANCEL:
    c->code = h->cancel ? h->cancel(g->ud, c->req.in.id, &c->st, c->text)
                        : SFTD_GRPC_UNIMPLEMENTED;
    break;
  case RPC_LIST:
    if (!h->list) {
      c->code = SFTD_GRPC_UNIMPLEMENTED;
      break;
    }
    if (!c->list)
      c->list = calloc(1, sizeof(*c->list));
    if (!c->list) {
      c->code = SFTD_GRPC_RESOURCE_EXHAUSTED;
      break;
    }
    c->code = h->list(g->ud, c->req.in.filter, c->list, c->text);
    break;
  default:
    c->code = SFTD_GRPC_INTERNAL;
  }
  if ((unsigned)c->code > SFTD_GRPC_UNAUTHENTICATED)
    c->code = SFTD_GRPC_UNKNOWN;
  c->text[SFTD_GRPC_TEXT_MAX] = '\0';
  if (c->code == SFTD_GRPC_UNIMPLEMENTED && !c->text[0])
    set_text(c->text, "not implemented by this daemon");
}

/* Hands |c| back to the gRPC thread: an empty batch on the call completes at
 * once on the call's completion queue with |c->t_back| (grpc.h: an empty
 * batch is thread-compatible; the gRPC thread never starts a batch on a call
 * the loop holds). */
static void post_back(struct gcall *c) {
  grpc_call_error e = grpc_call_start_batch(c->call, NULL, 0, &c->t_back, NULL);
  if (e != GRPC_CALL_OK)
    fprintf(stderr, "sftd grpc: hand-back failed: %d\n", (int)e);
}

static void on_async(uv_async_t *a) {
  struct sftd_grpc *g = a->data;
  pthread_mutex_lock(&g->mu);
  struct gcall *c = g->qhead;
  g->qhead = g->qtail = NULL;
  pthread_mutex_unlock(&g->mu);
  while (c) {
    struct gcall *next = c->next;
    atomic_fetch_sub_explicit(&g->n_queued, 1, memory_order_relaxed);
    c->next = NULL;
    if (!atomic_load(&c->gone))
      run_handler(g, c);
    post_back(c);
    c = next;
  }
}

/* ---- construction / destruction ----------------------------------------- */

static int read_file(const char *path, char **out) {
  *out = NULL;
  FILE *f = fopen(path, "rbe");
  if (!f)
    return SFT_ERR_IO;
  size_t cap = 1 << 16, n = 0; /* PEM files are small */
  char *buf = malloc(cap + 1);
  if (!buf) {
    fclose(f);
    return SFT_ERR_NOMEM;
  }
  n = fread(buf, 1, cap, f);
  bool bad = ferror(f) || !feof(f) || n == 0;
  fclose(f);
  if (bad) {
    explicit_bzero(buf, cap + 1);
    free(buf);
    return SFT_ERR_IO;
  }
  buf[n] = '\0';
  *out = buf;
  return 0;
}

static void free_secret(char *s) {
  if (s) {
    explicit_bzero(s, strlen(s));
    free(s);
  }
}

static grpc_server_credentials *make_creds(const struct sftd_grpc_config *cfg,
                                           int *err) {
  *err = 0;
  if (!cfg->tls_cert_path && !cfg->tls_key_path)
    return grpc_insecure_server_credentials_create();
  char *cert = NULL, *key = NULL;
  grpc_server_credentials *cr = NULL;
  *err = read_file(cfg->tls_cert_path, &cert);
  if (!*err)
    *err = read_file(cfg->tls_key_path, &key);
  if (!*err) {
    grpc_ssl_pem_key_cert_pair pair = {key, cert};
    cr = grpc_ssl_server_credentials_create_ex(
        NULL, &pair, 1, GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, NULL);
    if (!cr)
      *err = SFT_ERR_IO;
  }
  free(cert);
  free_secret(key);
  return cr;
}

static void on_close(uv_handle_t *hd) {
  struct sftd_grpc *g = hd->data;
  pthread_mutex_destroy(&g->mu);
  free(g);
}

int sftd_grpc_new(struct sftd_grpc **pg, uv_loop_t *loop,
                  const struct sftd_grpc_config *cfg,
                  const struct sftd_grpc_handlers *h, void *ud) {
  int rc;
  if (!pg)
    return SFT_ERR_INVAL;
  *pg = NULL;
  if (!loop || !cfg || !h || !cfg->bind || !cfg->bind[0] || !cfg->token ||
      !cfg->token[0] || !cfg->tls_cert_path != !cfg->tls_key_path ||
      strlen(cfg->token) > 1024)
    return SFT_ERR_INVAL;

  struct sftd_grpc *g = calloc(1, sizeof(*g));
  if (!g)
    return SFT_ERR_NOMEM;
  g->loop = loop;
  g->h = *h;
  g->ud = ud;
  g->watch_ms = cfg->watch_interval_ms ? cfg->watch_interval_ms : 200;
  g->max_calls = cfg->max_calls ? cfg->max_calls : 256;
  atomic_init(&g->stop_flag, false);
  {
    char bearer[1100];
    int n = snprintf(bearer, sizeof(bearer), "Bearer %s", cfg->token);
    sft_blake3(bearer, (size_t)n, g->token_digest);
    explicit_bzero(bearer, sizeof(bearer));
  }
  if (pthread_mutex_init(&g->mu, NULL)) {
    rc = SFT_ERR_NOMEM;
    goto fail_mutex;
  }

  grpc_init();
  static char k_recv[] = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  static char k_streams[] = GRPC_ARG_MAX_CONCURRENT_STREAMS;
  static char k_md[] = GRPC_ARG_MAX_METADATA_SIZE;
  grpc_arg args[3];
  memset(args, 0, sizeof(args));
  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = k_recv;
  args[0].value.integer = (int)SFTD_GRPC_CHUNK_MSG_MAX;
  args[1].type = GRPC_ARG_INTEGER;
  args[1].key = k_streams;
  args[1].value.integer = 128;
  args[2].type = GRPC_ARG_INTEGER;
  args[2].key = k_md;
  args[2].value.integer = 16 * 1024;
  grpc_channel_args cargs = {3, args};
  g->server = grpc_server_create(&cargs, NULL);
  g->cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(g->server, g->cq, NULL);

  grpc_server_credentials *creds = make_creds(cfg, &rc);
  if (!creds)
    goto fail_server;
  g->port = grpc_server_add_http2_port(g->server, cfg->bind, creds);
  grpc_server_credentials_release(creds);
  if (g->port <= 0) {
    rc = SFT_ERR_IO;
    goto fail_server;
  }
  if (uv_async_init(loop, &g->async, on_async)) {
    rc = SFT_ERR_NOMEM;
    goto fail_server;
  }
  g->async.data = g;
  grpc_server_start(g->server);
  if (pthread_create(&g->thread, NULL, grpc_thread, g)) {
    g->thread_started = false;
    sftd_grpc_free(g); /* closes the async; g freed in on_close */
    return SFT_ERR_NOMEM;
  }
  g->thread_started = true;
  *pg = g;
  return 0;

fail_server:
  /* Not started: no calls, the queue only needs shutting down. */
  grpc_server_shutdown_and_notify(g->server, g->cq, &g->shutdown_tag);
  grpc_completion_queue_shutdown(g->cq);
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(
        g->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      break;
  }
  grpc_server_destroy(g->server);
  grpc_completion_queue_destroy(g->cq);
  grpc_shutdown();
  pthread_mutex_destroy(&g->mu);
fail_mutex:
  free(g);
  return rc;
}

int sftd_grpc_port(const struct sftd_grpc *g) {
  return g ? g->port : 0;
}

void sftd_grpc_get_stats(const struct sftd_grpc *g,
                         struct sftd_grpc_stats *out) {
  memset(out, 0, sizeof(*out));
  if (!g)
    return;
  out->calls = atomic_load_explicit(&g->n_calls, memory_order_relaxed);
  out->unauth = atomic_load_explicit(&g->n_unauth, memory_order_relaxed);
  out->invalid = atomic_load_explicit(&g->n_invalid, memory_order_relaxed);
  out->handled = atomic_load_explicit(&g->n_handled, memory_order_relaxed);
  out->open = atomic_load_explicit(&g->n_open, memory_order_relaxed);
  out->queued = atomic_load_explicit(&g->n_queued, memory_order_relaxed);
}

void sftd_grpc_free(struct sftd_grpc *g) {
  if (!g)
    return;
  pthread_mutex_lock(&g->mu);
  g->stopping = true;
  atomic_store(&g->stop_flag, true);
  struct gcall *q = g->qhead;
  g->qhead = g->qtail = NULL;
  pthread_mutex_unlock(&g->mu);

  grpc_server_shutdown_and_notify(g->server, g->cq, &g->shutdown_tag);
  grpc_server_cancel_all_calls(g->server);
  /* Work still queued to the loop: answer without running handlers. */
  while (q) {
    struct gcall *next = q->next;
    atomic_fetch_sub_explicit(&g->n_queued, 1, memory_order_relaxed);
    q->next = NULL;
    q->code = SFTD_GRPC_UNAVAILABLE;
    set_text(q->text, "server shutting down");
    post_back(q);
    q = next;
  }
  if (g->thread_started)
    pthread_join(g->thread, NULL);
  else {
    /* no thread ever ran: drain here */
    grpc_completion_queue_shutdown(g->cq);
    for (;;) {
      grpc_event ev = grpc_completion_queue_next(
          g->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
      if (ev.type == GRPC_QUEUE_SHUTDOWN)
        break;
    }
  }
  grpc_server_destroy(g->server);
  grpc_completion_queue_destroy(g->cq);
  g->server = NULL;
  g->cq = NULL;
  grpc_shutdown();
  uv_close((uv_handle_t *)&g->async, on_close);
}

enum sftd_grpc_code sftd_grpc_code_from_err(int err) {
  switch (err) {
  case 0:
    return SFTD_GRPC_OK;
  case SFT_ERR_NOT_FOUND:
    return SFTD_GRPC_NOT_FOUND;
  case SFT_ERR_INVAL:
  case SFT_ERR_RANGE:
  case SFT_ERR_MALFORMED:
  case SFT_ERR_TOO_LARGE:
  case SFT_ERR_PATH:
  case SFT_ERR_TRUNCATED:
  case SFT_ERR_DIGEST:
    return SFTD_GRPC_INVALID_ARGUMENT;
  case SFT_ERR_STATE:
    return SFTD_GRPC_FAILED_PRECONDITION;
  case SFT_ERR_EXISTS:
    return SFTD_GRPC_ALREADY_EXISTS;
  case SFT_ERR_FULL:
  case SFT_ERR_NOMEM:
  case SFT_ERR_NOSPACE:
    return SFTD_GRPC_RESOURCE_EXHAUSTED;
  case SFT_ERR_AUTH:
    return SFTD_GRPC_PERMISSION_DENIED;
  case SFT_ERR_AGAIN:
  case SFT_ERR_CLOSED:
  case SFT_ERR_REFUSED:
    return SFTD_GRPC_UNAVAILABLE;
  case SFT_ERR_TIMEOUT:
    return SFTD_GRPC_DEADLINE_EXCEEDED;
  case SFT_ERR_CANCELLED:
    return SFTD_GRPC_CANCELLED;
  case SFT_ERR_UNSUPPORTED:
    return SFTD_GRPC_UNIMPLEMENTED;
  default:
    return SFTD_GRPC_INTERNAL;
  }
}
