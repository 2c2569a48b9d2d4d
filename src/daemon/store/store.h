/*
 * The daemon's session store: sessions, their files (manifest + chunk
 * bitmap), peers and a per-session event log, behind a small vtable
 * (after OpenSMTPD's queue backends). Two backends:
 *
 *   sftd_store_open_sqlite()  SQLite 3 in WAL mode (the only file in sft that
 *                             includes sqlite3.h is store_sqlite.c)
 *   sftd_store_new_mem()      an in-memory double with the same semantics,
 *                             for tests of the coordinator
 *
 * Threading: a store handle is single-threaded. The daemon's loop thread is
 * the one writer; no function may be called concurrently on one handle.
 *
 * Time: every timestamp is wall-clock nanoseconds passed in by the caller;
 * the store never reads a clock. Timestamps, byte counts and limits must be
 * <= INT64_MAX (SQLite integers are signed 64-bit): SFT_ERR_RANGE otherwise.
 *
 * Transactions and durability (docs/internals/persistence.md):
 *   - Outside a batch every write call is one transaction of its own.
 *   - sftd_store_begin() opens a batch: later write calls join it, each one
 *     atomic on its own (a call that fails leaves the batch as if it had not
 *     been made); sftd_store_commit() commits the lot in ONE transaction.
 *   - SFTD_STORE_SYNC_FULL (a flag of begin and of the single-call writers)
 *     marks a milestone: the commit returns only after the WAL is fsync'd,
 *     so it survives power loss, and so does everything committed before
 *     it. Without the flag (synchronous=NORMAL) a commit survives a crash of
 *     the process (SIGKILL, abort) but the last commits may roll back on
 *     power loss or a kernel crash. The database is never corrupted.
 *
 * Validation: every string has a bound (arrays below are sized bound + 1
 * and must contain a NUL: no NUL -> SFT_ERR_TOO_LARGE); every enum-like
 * field has a range (SFT_ERR_RANGE); BLOB lengths are bounded
 * (SFT_ERR_TOO_LARGE). A stored row that breaks any rule on load (oversize
 * or malformed BLOB/text, value out of range, undecodable manifest) is
 * reported as SFT_ERR_MALFORMED, never trusted.
 *
 * Errors common to every call: SFT_ERR_INVAL (NULL argument), SFT_ERR_NOMEM,
 * SFT_ERR_IO (the database failed; sftd_store_errmsg() says why),
 * SFT_ERR_NOSPACE (disk full), SFT_ERR_AGAIN (database locked by another
 * process past the busy timeout), SFT_ERR_MALFORMED (corrupt row or file).
 */
#ifndef SFTD_STORE_H
#define SFTD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/identity.h"
#include "sft/chunk.h"
#include "sft/limits.h"

/* ---- bounds ------------------------------------------------------------- */

#define SFTD_STORE_ID_LEN SFT_SESSION_ID_LEN /* 16 */
#define SFTD_STORE_FP_LEN SFTD_FP_LEN        /* 32 */
#define SFTD_STORE_ROOT_LEN 32
#define SFTD_STORE_ADDR_MAX SFTD_HOSTPORT_MAX   /* peer address text */
#define SFTD_STORE_ERROR_MAX SFT_MAX_ERROR_TEXT /* session error text */
#define SFTD_STORE_PATH_MAX 4096                /* local path text */
#define SFTD_STORE_LABEL_MAX SFTD_LABEL_MAX     /* peer label */
#define SFTD_STORE_EVENT_TEXT_MAX 1024          /* event text */
#define SFTD_STORE_EVENTS_KEEP 1000 /* events kept per session (newest) */
#define SFTD_STORE_MAX_FILE_ID (SFT_MAX_FILES - 1)
#define SFTD_STORE_BITMAP_MAX ((size_t)(SFT_MAX_CHUNKS / 8)) /* 8 MiB */
#define SFTD_STORE_CLEANUP_MAX_DAYS 36500u
#define SFTD_STORE_ERRBUF_SIZE 256
#define SFTD_STORE_DAY_NS (86400ull * 1000000000ull)

/* Bitmap bytes for |chunk_count| chunks: (chunk_count + 7) / 8. */
static inline size_t sftd_store_bitmap_len(uint64_t chunk_count) {
  return (size_t)((chunk_count + 7) / 8);
}

/* ---- values -------------------------------------------------------------- */

enum sftd_store_dir { SFTD_DIR_SEND = 0, SFTD_DIR_RECV = 1 };

/* state fields hold an enum sft_xfer_state (sft/xfer.h): 0..SFT_XS_COUNT-1
 * (Idle, Preparing, Transferring, Paused, Completing, Completed, Failed). */
#define SFTD_STORE_STATE_COUNT 7
/* Status filters are bit masks of states; 0 means every state. */
#define SFTD_STORE_STATE_BIT(st) (1u << (st))
#define SFTD_STORE_PRIO_COUNT 3 /* priority class 0..2 */

struct sftd_store_session {
  uint8_t id[SFTD_STORE_ID_LEN];
  int direction; /* enum sftd_store_dir */
  uint8_t peer_fp[SFTD_STORE_FP_LEN];
  char peer_addr[SFTD_STORE_ADDR_MAX + 1];   /* NUL-terminated, may be "" */
  int priority;                              /* 0..2 */
  int state;                                 /* enum sft_xfer_state */
  int32_t error_code;                        /* SFT_ERR_* or 0 */
  char error_text[SFTD_STORE_ERROR_MAX + 1]; /* NUL-terminated, may be "" */
  uint64_t created_ns;                       /* caller's wall clock */
  uint64_t updated_ns;
  uint64_t bytes_total;
  uint64_t bytes_done;   /* <= bytes_total */
  uint64_t bw_limit_bps; /* bits/s, 0 = none */
  uint32_t flags;        /* opaque to the store */
};

/*
 * A file of a session. The manifest is stored as its canonical encoding
 * (sft_manifest_encode) and decoded (hence verified) on load.
 *
 * bitmap: chunk i is bit (i % 8) of byte i / 8; bitmap_len <=
 * sftd_store_bitmap_len(manifest.chunk_count); missing trailing bytes read
 * as zero (the store keeps the bytes given, it does not pad); bits past
 * chunk_count must be zero. Ownership: on save the store only reads
 * bitmap[0..bitmap_len); after sftd_store_load_file() it is heap memory
 * owned by the struct (free with sftd_store_file_clear()); in a
 * sftd_store_list_files() callback it belongs to the store and is valid
 * only during the call.
 */
struct sftd_store_file {
  uint8_t session_id[SFTD_STORE_ID_LEN];
  uint32_t file_id;                   /* 0..SFTD_STORE_MAX_FILE_ID */
  int state;                          /* enum sft_xfer_state */
  char path[SFTD_STORE_PATH_MAX + 1]; /* local path, NUL-terminated */
  struct sft_manifest manifest;       /* must verify */
  uint8_t root[SFTD_STORE_ROOT_LEN];
  uint64_t bytes_done; /* <= manifest.size */
  uint8_t *bitmap;
  size_t bitmap_len;
};

/* One entry of a bitmap batch (the hot path). The store reads bitmap only
 * during the call. */
struct sftd_store_bitmap_update {
  uint8_t session_id[SFTD_STORE_ID_LEN];
  uint32_t file_id;
  const uint8_t *bitmap;
  size_t bitmap_len;   /* same rules as in the file */
  uint64_t bytes_done; /* <= manifest.size */
};

struct sftd_store_peer {
  uint8_t fp[SFTD_STORE_FP_LEN];
  char label[SFTD_STORE_LABEL_MAX + 1];    /* NUL-terminated, may be "" */
  char last_addr[SFTD_STORE_ADDR_MAX + 1]; /* NUL-terminated, may be "" */
  uint64_t first_seen_ns;                  /* kept from the first put */
  uint64_t last_seen_ns;
};

struct sftd_store_event {
  uint64_t seq; /* store-assigned, increasing, >= 1,
                   never reused */
  uint8_t session_id[SFTD_STORE_ID_LEN];
  uint64_t ts_ns;
  uint8_t kind; /* caller-defined small int */
  size_t text_len;
  char text[SFTD_STORE_EVENT_TEXT_MAX + 1]; /* NUL-terminated */
};

/* ---- handle ------------------------------------------------------------- */

struct sftd_store;

/* Flags of sftd_store_begin() and of the single-call writers. */
#define SFTD_STORE_SYNC_FULL 0x1u /* milestone: fsync before returning */

/* Opens (creating if absent, mode 0600; an existing file with group/other
 * bits is chmod'ed to 0600) the SQLite database at |path|, sets WAL,
 * synchronous=NORMAL, foreign keys, a busy timeout, and applies pending
 * schema migrations, each in its own transaction.
 * Errors: SFT_ERR_INVAL, SFT_ERR_IO (cannot open/create, not a database,
 * WAL refused), SFT_ERR_VERSION (the schema is NEWER than this code knows:
 * the file is left untouched), SFT_ERR_MALFORMED (corrupt file),
 * SFT_ERR_NOMEM, SFT_ERR_AGAIN. On error *out is NULL and |errbuf| (may be
 * NULL, SFTD_STORE_ERRBUF_SIZE bytes) holds a message. */
int sftd_store_open_sqlite(const char *path, struct sftd_store **out,
                           char *errbuf);

/* The schema version this code writes (PRAGMA user_version). */
int sftd_store_sqlite_schema_version(void);

/* A new empty in-memory store. SFT_ERR_NOMEM, SFT_ERR_INVAL. */
int sftd_store_new_mem(struct sftd_store **out);

/* Closes and frees; an open batch is rolled back. NULL is a no-op. */
void sftd_store_close(struct sftd_store *st);

/* Last backend error message (static "" if none). Valid until the next
 * call on |st|. */
const char *sftd_store_errmsg(const struct sftd_store *st);

/* PRAGMA integrity_check: 0 only when it reports "ok"; SFT_ERR_MALFORMED
 * otherwise. The memory store checks its own invariants. */
int sftd_store_integrity(struct sftd_store *st);

/* ---- batches ------------------------------------------------------------ */

/* Opens a batch (see the top of this file). |flags|: SFTD_STORE_SYNC_FULL
 * or 0. SFT_ERR_STATE if a batch is already open. */
int sftd_store_begin(struct sftd_store *st, unsigned flags);
/* Commits the open batch. SFT_ERR_STATE if none. On failure the whole batch
 * is rolled back and the store is out of the batch. */
int sftd_store_commit(struct sftd_store *st);
/* Discards the open batch (every write since begin). SFT_ERR_STATE if
 * none. */
int sftd_store_rollback(struct sftd_store *st);
bool sftd_store_in_batch(const struct sftd_store *st);

/* ---- sessions ----------------------------------------------------------- */

/* Inserts or replaces the session with s->id (its files and events are
 * kept). Errors: SFT_ERR_RANGE (direction, priority, state, bytes_done >
 * bytes_total, a value > INT64_MAX), SFT_ERR_TOO_LARGE (a string without
 * NUL in its array). Flags: SFTD_STORE_SYNC_FULL (milestone; ignored inside
 * a batch, where begin's flags rule). */
int sftd_store_save_session(struct sftd_store *st,
                            const struct sftd_store_session *s, unsigned flags);

/* SFT_ERR_NOT_FOUND, SFT_ERR_MALFORMED (corrupt row). */
int sftd_store_load_session(struct sftd_store *st,
                            const uint8_t id[SFTD_STORE_ID_LEN],
                            struct sftd_store_session *out);

/* Sessions whose state is in |state_mask| (0 = all), ordered by
 * (created_ns, id) ascending, skipping |offset|, at most |cap| into
 * |out|; *n = number written. A corrupt row fails the call with
 * SFT_ERR_MALFORMED. */
int sftd_store_list_sessions(struct sftd_store *st, unsigned state_mask,
                             size_t offset, struct sftd_store_session *out,
                             size_t cap, size_t *n);

int sftd_store_count_sessions(struct sftd_store *st, unsigned state_mask,
                              uint64_t *n);

int sftd_store_session_exists(struct sftd_store *st,
                              const uint8_t id[SFTD_STORE_ID_LEN],
                              bool *exists);

/* Deletes the session, its files, its events and its request.
 * SFT_ERR_NOT_FOUND. */
int sftd_store_delete_session(struct sftd_store *st,
                              const uint8_t id[SFTD_STORE_ID_LEN]);

/* Deletes every Completed or Failed session with
 *   updated_ns + days * SFTD_STORE_DAY_NS <= now_ns
 * i.e. at least |days| days old, INCLUSIVE (exactly N days old is deleted,
 * one nanosecond younger is kept), with their files and events. *deleted =
 * count (their requests go too). SFT_ERR_RANGE: days >
 * SFTD_STORE_CLEANUP_MAX_DAYS or now_ns > INT64_MAX. */
int sftd_store_cleanup(struct sftd_store *st, uint64_t now_ns, unsigned days,
                       uint64_t *deleted);

/* ---- files -------------------------------------------------------------- */

/* Inserts or replaces file (f->session_id, f->file_id). Errors:
 * SFT_ERR_NOT_FOUND (no such session), SFT_ERR_RANGE (file_id, state,
 * bytes_done > manifest.size), SFT_ERR_TOO_LARGE (path without NUL, bitmap
 * longer than the chunk count allows), SFT_ERR_INVAL (bitmap bits set past
 * chunk_count, bitmap NULL with a length), the manifest's
 * sft_manifest_verify() error. Flags as for save_session. */
int sftd_store_save_file(struct sftd_store *st, const struct sftd_store_file *f,
                         unsigned flags);

/* Fills |out| (out->bitmap is malloc'ed, bitmap_len may be 0 with a NULL
 * bitmap; free with sftd_store_file_clear). SFT_ERR_NOT_FOUND,
 * SFT_ERR_MALFORMED. */
int sftd_store_load_file(struct sftd_store *st,
                         const uint8_t session_id[SFTD_STORE_ID_LEN],
                         uint32_t file_id, struct sftd_store_file *out);

/* Frees f->bitmap and sets it to NULL / 0. */
void sftd_store_file_clear(struct sftd_store_file *f);

/* Calls |cb| for each file of the session in file_id order; a non-zero
 * return from cb stops the walk and is returned. |f| (and its bitmap) is
 * valid only during the call. A session without files (or no such session)
 * visits nothing and returns 0. The store must not be called from cb. */
typedef int (*sftd_store_file_cb)(const struct sftd_store_file *f, void *ud);
int sftd_store_list_files(struct sftd_store *st,
                          const uint8_t session_id[SFTD_STORE_ID_LEN],
                          sftd_store_file_cb cb, void *ud);

/* The hot path: applies n bitmap + bytes_done updates in ONE transaction
 * (synchronous=NORMAL unless inside a SYNC_FULL batch), all or nothing:
 * every entry is checked first. Errors: SFT_ERR_NOT_FOUND (a file does not
 * exist), SFT_ERR_TOO_LARGE / SFT_ERR_INVAL / SFT_ERR_RANGE (as
 * save_file). n == 0 is a no-op. */
int sftd_store_update_bitmaps(struct sftd_store *st,
                              const struct sftd_store_bitmap_update *u,
                              size_t n);

/* ---- peers -------------------------------------------------------------- */

/* Upsert by fingerprint: a new peer is stored as given; an existing one
 * gets label, last_addr and last_seen_ns from |p| and keeps first_seen_ns.
 * SFT_ERR_TOO_LARGE, SFT_ERR_RANGE. */
int sftd_store_peer_put(struct sftd_store *st, const struct sftd_store_peer *p);
/* SFT_ERR_NOT_FOUND, SFT_ERR_MALFORMED. */
int sftd_store_peer_get(struct sftd_store *st,
                        const uint8_t fp[SFTD_STORE_FP_LEN],
                        struct sftd_store_peer *out);

/* ---- events ------------------------------------------------------------- */

/* Appends an event (text: |len| bytes, no NUL inside) and trims the
 * session's log to its newest SFTD_STORE_EVENTS_KEEP entries. *seq (may be
 * NULL) = the new seq. Errors: SFT_ERR_NOT_FOUND (no such session),
 * SFT_ERR_TOO_LARGE (len > SFTD_STORE_EVENT_TEXT_MAX), SFT_ERR_INVAL (NUL
 * in text), SFT_ERR_RANGE (ts_ns). */
int sftd_store_event_append(struct sftd_store *st,
                            const uint8_t session_id[SFTD_STORE_ID_LEN],
                            uint64_t ts_ns, uint8_t kind, const char *text,
                            size_t len, uint64_t *seq);

/* Events of the session with seq > after_seq, oldest first, at most |cap|;
 * *n = number written. */
int sftd_store_event_list(struct sftd_store *st,
                          const uint8_t session_id[SFTD_STORE_ID_LEN],
                          uint64_t after_seq, struct sftd_store_event *out,
                          size_t cap, size_t *n);

/* ---- requests ----------------------------------------------------------- */

/* The request that started a session (the daemon keeps the JSON body of
 * POST /api/transfer/send or its gRPC / CLI equivalent), kept so that an
 * outgoing transfer can be restarted after a daemon restart. At most one
 * per session; opaque bytes to the store. */
#define SFTD_STORE_REQUEST_MAX (1u << 20) /* bytes of one request blob */

/* Stores |len| bytes (opaque to the store; the daemon keeps JSON) as the
 * request of session |id|, replacing any previous one. The store only
 * reads blob[0..len) during the call (blob may be NULL when len is 0).
 * Errors: SFT_ERR_NOT_FOUND (no such session), SFT_ERR_TOO_LARGE (len >
 * SFTD_STORE_REQUEST_MAX), SFT_ERR_INVAL (blob NULL with len > 0).
 * Flags as for save_session. Deleted with its session (delete, cleanup);
 * re-saving the session keeps it. */
int sftd_store_put_request(struct sftd_store *st,
                           const uint8_t id[SFTD_STORE_ID_LEN],
                           const void *blob, size_t len, unsigned flags);
/* *blob: malloc'ed copy (free() it), *len its length; a zero-length
 * request gives a non-NULL 1-byte allocation and *len 0. On error *blob
 * is NULL and *len 0. Errors: SFT_ERR_NOT_FOUND (no session or no
 * request), SFT_ERR_MALFORMED (a stored blob longer than
 * SFTD_STORE_REQUEST_MAX, or not a BLOB), SFT_ERR_NOMEM. */
int sftd_store_get_request(struct sftd_store *st,
                           const uint8_t id[SFTD_STORE_ID_LEN], void **blob,
                           size_t *len);

#endif /* SFTD_STORE_H */
