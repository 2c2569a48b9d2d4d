/*
 * The SQLite store (the only file in sft that includes sqlite3.h).
 *
 * One connection, used by one thread (the daemon's loop): the handle is
 * opened with SQLITE_OPEN_NOMUTEX and must never be shared. WAL journal,
 * synchronous=NORMAL by default, FULL around milestone transactions (the
 * pragma cannot change inside a transaction, so it is switched just before
 * BEGIN and back just after COMMIT/ROLLBACK). Statements are prepared once
 * (SQLITE_PREPARE_PERSISTENT) and cached per handle.
 *
 * Every row read back is validated (types, lengths, ranges, manifest
 * decode): a database edited or damaged behind our back yields
 * SFT_ERR_MALFORMED, never an oversize copy. See
 * docs/internals/persistence.md for the schema and durability contract.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "daemon/store/store_int.h"
#include "sft/err.h"

#define BUSY_TIMEOUT_MS 1000

/* ---- schema -------------------------------------------------------------- */

/* Migration i takes the schema from version i to i + 1. Append only: a
 * released step is never edited (databases in the field already ran it). */
static const char *const migrations[] = {
    /* 0 -> 1: sessions and their files */
    "CREATE TABLE sessions("
    " id BLOB PRIMARY KEY NOT NULL,"
    " direction INTEGER NOT NULL,"
    " peer_fp BLOB NOT NULL,"
    " peer_addr TEXT NOT NULL,"
    " priority INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " error_code INTEGER NOT NULL,"
    " error_text TEXT NOT NULL,"
    " created_ns INTEGER NOT NULL,"
    " updated_ns INTEGER NOT NULL,"
    " bytes_total INTEGER NOT NULL,"
    " bytes_done INTEGER NOT NULL,"
    " bw_limit_bps INTEGER NOT NULL,"
    " flags INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX sessions_by_created ON sessions(created_ns, id);"
    "CREATE INDEX sessions_by_state ON sessions(state, updated_ns);"
    "CREATE TABLE files("
    " session_id BLOB NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    " file_id INTEGER NOT NULL,"
    " path TEXT NOT NULL,"
    " manifest BLOB NOT NULL,"
    " chunk_count INTEGER NOT NULL,"
    " size INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " bitmap BLOB NOT NULL,"
    " root BLOB NOT NULL,"
    " bytes_done INTEGER NOT NULL,"
    " PRIMARY KEY(session_id, file_id)"
    ");",
    /* 1 -> 2: peers and the per-session event log */
    "CREATE TABLE peers("
    " fp BLOB PRIMARY KEY NOT NULL,"
    " label TEXT NOT NULL,"
    " last_addr TEXT NOT NULL,"
    " first_seen_ns INTEGER NOT NULL,"
    " last_seen_ns INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE events("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " session_id BLOB NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    " ts_ns INTEGER NOT NULL,"
    " kind INTEGER NOT NULL,"
    " text TEXT NOT NULL"
    ");"
    "CREATE INDEX events_by_session ON events(session_id, seq);",
    /* 2 -> 3: the request that started each session (at most one) */
    "CREATE TABLE requests("
    " session_id BLOB PRIMARY KEY NOT NULL"
    "  REFERENCES sessions(id) ON DELETE CASCADE,"
    " body BLOB NOT NULL"
    ") WITHOUT ROWID;",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

int sftd_store_sqlite_schema_version(void) {
  return SCHEMA_VERSION;
}

/* ---- cached statements --------------------------------------------------- */

#define SESS_COLS                                                              \
  "id,direction,peer_fp,peer_addr,priority,state,error_code,error_text,"       \
  "created_ns,updated_ns,bytes_total,bytes_done,bw_limit_bps,flags"
#define FILE_COLS                                                              \
  "file_id,path,manifest,chunk_count,size,state,bitmap,root,bytes_done"

enum {
  S_BEGIN,
  S_COMMIT,
  S_ROLLBACK,
  S_SAVEPOINT,
  S_RELEASE,
  S_ROLLBACK_TO,
  S_SESS_UPSERT,
  S_SESS_GET,
  S_SESS_LIST,
  S_SESS_COUNT,
  S_SESS_EXISTS,
  S_SESS_DEL,
  S_CLEANUP,
  S_FILE_UPSERT,
  S_FILE_GET,
  S_FILE_LIST,
  S_FILE_GEOM,
  S_FILE_BITMAP,
  S_PEER_UPSERT,
  S_PEER_GET,
  S_EV_INSERT,
  S_EV_TRIM,
  S_EV_LIST,
  S_REQ_UPSERT,
  S_REQ_GET,
  S_COUNT
};

static const char *const sql_text[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT op",
    [S_RELEASE] = "RELEASE op",
    [S_ROLLBACK_TO] = "ROLLBACK TO op",
    /* An upsert, not INSERT OR REPLACE: REPLACE deletes the old row and
     * the foreign keys would cascade the delete to files and events. */
    [S_SESS_UPSERT] =
        "INSERT INTO sessions(" SESS_COLS ") VALUES(?1,?2,?3,?4,?5,?6,?7,?8,"
        "?9,?10,?11,?12,?13,?14) ON CONFLICT(id) DO UPDATE SET "
        "direction=?2,peer_fp=?3,peer_addr=?4,priority=?5,state=?6,"
        "error_code=?7,error_text=?8,created_ns=?9,updated_ns=?10,"
        "bytes_total=?11,bytes_done=?12,bw_limit_bps=?13,flags=?14",
    [S_SESS_GET] = "SELECT " SESS_COLS " FROM sessions WHERE id=?1",
    /* A row with a state outside 0..6 is always listed, so that the load
     * reports it as MALFORMED instead of hiding it. */
    [S_SESS_LIST] = "SELECT " SESS_COLS " FROM sessions "
                    "WHERE state NOT BETWEEN 0 AND 6 OR (?1 >> state) & 1 "
                    "ORDER BY created_ns, id LIMIT ?2 OFFSET ?3",
    [S_SESS_COUNT] = "SELECT count(*) FROM sessions "
                     "WHERE state BETWEEN 0 AND 6 AND (?1 >> state) & 1",
    [S_SESS_EXISTS] = "SELECT 1 FROM sessions WHERE id=?1",
    [S_SESS_DEL] = "DELETE FROM sessions WHERE id=?1",
    [S_CLEANUP] =
        "DELETE FROM sessions WHERE state IN (5,6) AND updated_ns <= ?1",
    [S_FILE_UPSERT] =
        "INSERT INTO files(session_id," FILE_COLS ") VALUES(?1,?2,?3,?4,?5,"
        "?6,?7,?8,?9,?10) ON CONFLICT(session_id,file_id) DO UPDATE SET "
        "path=?3,manifest=?4,chunk_count=?5,size=?6,state=?7,bitmap=?8,"
        "root=?9,bytes_done=?10",
    [S_FILE_GET] =
        "SELECT " FILE_COLS " FROM files WHERE session_id=?1 AND file_id=?2",
    [S_FILE_LIST] = "SELECT " FILE_COLS " FROM files WHERE session_id=?1 "
                    "ORDER BY file_id",
    [S_FILE_GEOM] = "SELECT chunk_count,size FROM files "
                    "WHERE session_id=?1 AND file_id=?2",
    [S_FILE_BITMAP] = "UPDATE files SET bitmap=?3,bytes_done=?4 "
                      "WHERE session_id=?1 AND file_id=?2",
    [S_PEER_UPSERT] =
        "INSERT INTO peers(fp,label,last_addr,first_seen_ns,last_seen_ns) "
        "VALUES(?1,?2,?3,?4,?5) ON CONFLICT(fp) DO UPDATE SET "
        "label=?2,last_addr=?3,last_seen_ns=?5",
    [S_PEER_GET] = "SELECT fp,label,last_addr,first_seen_ns,last_seen_ns "
                   "FROM peers WHERE fp=?1",
    [S_EV_INSERT] =
        "INSERT INTO events(session_id,ts_ns,kind,text) VALUES(?1,?2,?3,?4)",
    [S_EV_TRIM] = "DELETE FROM events WHERE session_id=?1 AND seq <= "
                  "(SELECT seq FROM events WHERE session_id=?1 "
                  "ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
    [S_EV_LIST] = "SELECT seq,ts_ns,kind,text FROM events WHERE "
                  "session_id=?1 AND seq>?2 ORDER BY seq LIMIT ?3",
    [S_REQ_UPSERT] = "INSERT INTO requests(session_id,body) VALUES(?1,?2) "
                     "ON CONFLICT(session_id) DO UPDATE SET body=?2",
    [S_REQ_GET] = "SELECT body FROM requests WHERE session_id=?1",
};

struct sql_store {
  struct sftd_store base; /* first */
  sqlite3 *db;
  sqlite3_stmt *stmt[S_COUNT];
  uint8_t *scratch; /* bitmap copy handed to list_files callbacks */
  size_t scratch_cap;
};

static struct sql_store *Q(struct sftd_store *st) {
  return (struct sql_store *)st;
}

static int map_rc(struct sql_store *q, int rc) {
  snprintf(q->base.errmsg, sizeof(q->base.errmsg), "sqlite: %s (%d)",
           sqlite3_errmsg(q->db), rc);
  switch (rc & 0xff) {
  case SQLITE_NOMEM:
    return SFT_ERR_NOMEM;
  case SQLITE_BUSY:
  case SQLITE_LOCKED:
    return SFT_ERR_AGAIN;
  case SQLITE_FULL:
    return SFT_ERR_NOSPACE;
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB:
    return SFT_ERR_MALFORMED;
  case SQLITE_TOOBIG:
    return SFT_ERR_TOO_LARGE;
  default:
    return SFT_ERR_IO;
  }
}

static int malformed(struct sql_store *q, const char *what) {
  snprintf(q->base.errmsg, sizeof(q->base.errmsg), "corrupt row: %s", what);
  return SFT_ERR_MALFORMED;
}

/* Returns the cached statement |i|, preparing it on first use. */
static int stmt(struct sql_store *q, int i, sqlite3_stmt **out) {
  if (!q->stmt[i]) {
    int rc = sqlite3_prepare_v3(q->db, sql_text[i], -1,
                                SQLITE_PREPARE_PERSISTENT, &q->stmt[i], NULL);
    if (rc != SQLITE_OK)
      return map_rc(q, rc);
  }
  *out = q->stmt[i];
  return 0;
}

static void done(sqlite3_stmt *s) {
  sqlite3_reset(s);
  sqlite3_clear_bindings(s);
}

/* Steps a statement that returns no rows, then resets it. */
static int run(struct sql_store *q, sqlite3_stmt *s) {
  int rc = sqlite3_step(s);
  int err = (rc == SQLITE_DONE || rc == SQLITE_ROW) ? 0 : map_rc(q, rc);
  done(s);
  return err;
}

static int run_i(struct sql_store *q, int i) {
  sqlite3_stmt *s = NULL;
  int rc = stmt(q, i, &s);
  return rc ? rc : run(q, s);
}

/* PRAGMA synchronous takes effect when it is PREPARED, not when a prepared
 * statement is stepped (checked on 3.40: stepping a cached "=FULL" after
 * "=NORMAL" leaves NORMAL unless SQLite happens to re-prepare). So it is
 * never a cached statement: sqlite3_exec each time, negligible next to the
 * fsync a FULL commit pays. */
static int set_sync(struct sql_store *q, bool full) {
  int rc = sqlite3_exec(
      q->db, full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
      NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : map_rc(q, rc);
}

/* Binding failures are SQLITE_NOMEM/TOOBIG/RANGE: map through map_rc. */
#define B(call)                                                                \
  do {                                                                         \
    int brc_ = (call);                                                         \
    if (brc_ != SQLITE_OK) {                                                   \
      int e_ = map_rc(q, brc_);                                                \
      done(s);                                                                 \
      return e_;                                                               \
    }                                                                          \
  } while (0)

/* ---- transactions -------------------------------------------------------- */

/* Outside a batch: BEGIN IMMEDIATE (with synchronous=FULL around it for a
 * milestone). Inside a batch: a savepoint, so that a failing call undoes
 * only its own changes. */
static int tx_begin(struct sql_store *q, unsigned flags) {
  int rc;
  if (q->base.in_batch) {
    /* Some errors (I/O, disk full, NOMEM) make SQLite roll back the whole
     * transaction. A SAVEPOINT would then silently start a new one and
     * RELEASE commit it: refuse until the caller ends the lost batch. */
    if (sqlite3_get_autocommit(q->db)) {
      snprintf(q->base.errmsg, sizeof(q->base.errmsg),
               "the batch was rolled back by an earlier error");
      return SFT_ERR_STATE;
    }
    return run_i(q, S_SAVEPOINT);
  }
  if ((flags & SFTD_STORE_SYNC_FULL) && (rc = set_sync(q, true)) != 0)
    return rc;
  if ((rc = run_i(q, S_BEGIN)) != 0 && (flags & SFTD_STORE_SYNC_FULL))
    set_sync(q, false);
  return rc;
}

static int tx_end(struct sql_store *q, unsigned flags, int rc) {
  if (q->base.in_batch) {
    if (rc == 0 && (rc = run_i(q, S_RELEASE)) == 0)
      return 0;
    run_i(q, S_ROLLBACK_TO);
    run_i(q, S_RELEASE);
    return rc;
  }
  if (rc == 0)
    rc = run_i(q, S_COMMIT);
  if (rc != 0 && !sqlite3_get_autocommit(q->db))
    run_i(q, S_ROLLBACK);
  if (flags & SFTD_STORE_SYNC_FULL)
    set_sync(q, false);
  return rc;
}

static int sql_begin(struct sftd_store *st, unsigned flags) {
  return tx_begin(Q(st), flags); /* in_batch is still false here */
}

static int sql_commit(struct sftd_store *st) {
  struct sql_store *q = Q(st);
  if (sqlite3_get_autocommit(q->db)) { /* lost to an earlier error */
    if (st->batch_flags & SFTD_STORE_SYNC_FULL)
      set_sync(q, false);
    snprintf(q->base.errmsg, sizeof(q->base.errmsg),
             "the batch was rolled back by an earlier error");
    return SFT_ERR_IO;
  }
  return tx_end(q, st->batch_flags, 0); /* in_batch already false */
}

static int sql_rollback(struct sftd_store *st) {
  struct sql_store *q = Q(st);
  int rc = sqlite3_get_autocommit(q->db) ? 0 : run_i(q, S_ROLLBACK);
  if (st->batch_flags & SFTD_STORE_SYNC_FULL)
    set_sync(q, false);
  return rc;
}

/* ---- column readers (validate everything) -------------------------------- */

static int col_blob(struct sql_store *q, sqlite3_stmt *s, int c, uint8_t *dst,
                    size_t len, const char *what) {
  if (sqlite3_column_type(s, c) != SQLITE_BLOB ||
      (size_t)sqlite3_column_bytes(s, c) != len)
    return malformed(q, what);
  memcpy(dst, sqlite3_column_blob(s, c), len);
  return 0;
}

/* Text into char[cap]: at most cap - 1 bytes, no NUL inside. */
static int col_text(struct sql_store *q, sqlite3_stmt *s, int c, char *dst,
                    size_t cap, size_t *len_out, const char *what) {
  if (sqlite3_column_type(s, c) != SQLITE_TEXT)
    return malformed(q, what);
  const unsigned char *t = sqlite3_column_text(s, c);
  size_t len = (size_t)sqlite3_column_bytes(s, c);
  if (!t) /* sqlite3_column_text NULL for a TEXT value means NOMEM */
    return SFT_ERR_NOMEM;
  if (len >= cap || memchr(t, '\0', len))
    return malformed(q, what);
  memcpy(dst, t, len);
  dst[len] = '\0';
  if (len_out)
    *len_out = len;
  return 0;
}

static int col_i64(struct sql_store *q, sqlite3_stmt *s, int c, int64_t lo,
                   int64_t hi, int64_t *v, const char *what) {
  if (sqlite3_column_type(s, c) != SQLITE_INTEGER)
    return malformed(q, what);
  *v = sqlite3_column_int64(s, c);
  if (*v < lo || *v > hi)
    return malformed(q, what);
  return 0;
}

static int col_u64(struct sql_store *q, sqlite3_stmt *s, int c, uint64_t *v,
                   const char *what) {
  int64_t x = 0;
  int rc = col_i64(q, s, c, 0, INT64_MAX, &x, what);
  *v = (uint64_t)x;
  return rc;
}

#define TRY(x)                                                                 \
  do {                                                                         \
    int trc_ = (x);                                                            \
    if (trc_ != 0)                                                             \
      return trc_;                                                             \
  } while (0)

static int read_session(struct sql_store *q, sqlite3_stmt *s,
                        struct sftd_store_session *o) {
  int64_t v;
  memset(o, 0, sizeof(*o));
  TRY(col_blob(q, s, 0, o->id, sizeof(o->id), "session id"));
  TRY(col_i64(q, s, 1, 0, 1, &v, "direction"));
  o->direction = (int)v;
  TRY(col_blob(q, s, 2, o->peer_fp, sizeof(o->peer_fp), "peer fingerprint"));
  TRY(col_text(q, s, 3, o->peer_addr, sizeof(o->peer_addr), NULL,
               "peer address"));
  TRY(col_i64(q, s, 4, 0, SFTD_STORE_PRIO_COUNT - 1, &v, "priority"));
  o->priority = (int)v;
  TRY(col_i64(q, s, 5, 0, SFTD_STORE_STATE_COUNT - 1, &v, "state"));
  o->state = (int)v;
  TRY(col_i64(q, s, 6, INT32_MIN, INT32_MAX, &v, "error code"));
  o->error_code = (int32_t)v;
  TRY(col_text(q, s, 7, o->error_text, sizeof(o->error_text), NULL,
               "error text"));
  TRY(col_u64(q, s, 8, &o->created_ns, "created"));
  TRY(col_u64(q, s, 9, &o->updated_ns, "updated"));
  TRY(col_u64(q, s, 10, &o->bytes_total, "bytes total"));
  TRY(col_u64(q, s, 11, &o->bytes_done, "bytes done"));
  TRY(col_u64(q, s, 12, &o->bw_limit_bps, "bandwidth limit"));
  TRY(col_i64(q, s, 13, 0, UINT32_MAX, &v, "flags"));
  o->flags = (uint32_t)v;
  if (sftd_store__check_session(o) != 0)
    return malformed(q, "session values");
  return 0;
}

/* Reads a files row (FILE_COLS). The bitmap is left pointing into the
 * statement (*bm, valid until the next step/reset). */
static int read_file(struct sql_store *q, sqlite3_stmt *s, const uint8_t *sid,
                     struct sftd_store_file *o, const uint8_t **bm) {
  int64_t v;
  uint64_t cc, size;
  memcpy(o->session_id, sid, SFTD_STORE_ID_LEN);
  TRY(col_i64(q, s, 0, 0, SFTD_STORE_MAX_FILE_ID, &v, "file id"));
  o->file_id = (uint32_t)v;
  TRY(col_text(q, s, 1, o->path, sizeof(o->path), NULL, "path"));
  if (sqlite3_column_type(s, 2) != SQLITE_BLOB ||
      (size_t)sqlite3_column_bytes(s, 2) > SFT_MANIFEST_ENC_MAX)
    return malformed(q, "manifest");
  const uint8_t *mb = sqlite3_column_blob(s, 2);
  if (sft_manifest_decode(mb, (size_t)sqlite3_column_bytes(s, 2),
                          &o->manifest) != 0)
    return malformed(q, "manifest");
  TRY(col_u64(q, s, 3, &cc, "chunk count"));
  TRY(col_u64(q, s, 4, &size, "size"));
  if (cc != o->manifest.chunk_count || size != o->manifest.size)
    return malformed(q, "geometry differs from the manifest");
  TRY(col_i64(q, s, 5, 0, SFTD_STORE_STATE_COUNT - 1, &v, "file state"));
  o->state = (int)v;
  if (sqlite3_column_type(s, 6) != SQLITE_BLOB)
    return malformed(q, "bitmap");
  o->bitmap_len = (size_t)sqlite3_column_bytes(s, 6);
  *bm = o->bitmap_len ? sqlite3_column_blob(s, 6) : NULL;
  if (o->bitmap_len && !*bm)
    return SFT_ERR_NOMEM;
  if (sftd_store__check_bitmap(*bm, o->bitmap_len, cc) != 0)
    return malformed(q, "bitmap");
  TRY(col_blob(q, s, 7, o->root, sizeof(o->root), "root"));
  TRY(col_u64(q, s, 8, &o->bytes_done, "file bytes done"));
  if (o->bytes_done > o->manifest.size)
    return malformed(q, "file bytes done");
  o->bitmap = NULL;
  return 0;
}

/* ---- sessions ------------------------------------------------------------ */

static int do_save_session(struct sql_store *q,
                           const struct sftd_store_session *x) {
  sqlite3_stmt *s = NULL;
  TRY(stmt(q, S_SESS_UPSERT, &s));
  B(sqlite3_bind_blob(s, 1, x->id, SFTD_STORE_ID_LEN, SQLITE_STATIC));
  B(sqlite3_bind_int(s, 2, x->direction));
  B(sqlite3_bind_blob(s, 3, x->peer_fp, SFTD_STORE_FP_LEN, SQLITE_STATIC));
  B(sqlite3_bind_text(s, 4, x->peer_addr, -1, SQLITE_STATIC));
  B(sqlite3_bind_int(s, 5, x->priority));
  B(sqlite3_bind_int(s, 6, x->state));
  B(sqlite3_bind_int(s, 7, x->error_code));
  B(sqlite3_bind_text(s, 8, x->error_text, -1, SQLITE_STATIC));
  B(sqlite3_bind_int64(s, 9, (int64_t)x->created_ns));
  B(sqlite3_bind_int64(s, 10, (int64_t)x->updated_ns));
  B(sqlite3_bind_int64(s, 11, (int64_t)x->bytes_total));
  B(sqlite3_bind_int64(s, 12, (int64_t)x->bytes_done));
  B(sqlite3_bind_int64(s, 13, (int64_t)x->bw_limit_bps));
  B(sqlite3_bind_int64(s, 14, x->flags));
  return run(q, s);
}

static int sql_save_session(struct sftd_store *st,
                            const struct sftd_store_session *x,
                            unsigned flags) {
  struct sql_store *q = Q(st);
  TRY(tx_begin(q, flags));
  return tx_end(q, flags, do_save_session(q, x));
}

static int sql_load_session(struct sftd_store *st, const uint8_t *id,
                            struct sftd_store_session *out) {
  struct sql_store *q = Q(st);
  sqlite3_stmt *s = NULL;
  int rc;
  TRY(stmt(q, S_SESS_GET, &s));
  B(sqlite3_bind_blob(s, 1, id, SFTD_STORE_ID_LEN, SQLITE_STATIC));
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW)
    rc = read_session(q, s, out);
  else
    rc = rc == SQLITE_DONE ? SFT_ERR_NOT_FOUND : map_rc(q, rc);
  done(s);
  return rc;
}

static int64_t clamp_i64(size_t v) {
  return v > (size_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

static int sql_list_sessions(struct sftd_store *st, unsigned mask,
                             size_t offset, struct sftd_store_session *out,
                             size_t cap, size_t *n) {
  struct sql_store *q = Q(st);
  sqlite3_stmt *s = NULL;
  int rc;
  TRY(stmt(q, S_SESS_LIST, &s));
  B(sqlite3_bind_int64(s, 1, mask));
  B(sqlite3_bind_int64(s, 2, clamp_i64(cap)));
  B(sqlite3_bind_int64(s, 3, clamp_i64(offset)));
  while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < cap) {
    if ((rc = read_session(q, s, &out[*n])) != 0)
      break;
    (*n)++;
  }
  if (rc == SQLITE_DONE || rc == SQLITE_ROW)
    rc = 0;
  else if (rc > 0)
    rc = map_rc(q, rc);
  done(s);
  if (rc)
    *n = 0;
  return rc;
}

static int sql_count_sessions(struct sftd_store *st, unsigned mask,
                              uint64_t *n) {
  struct sql_store *q = Q(st);
  sqlite3_stmt *s = NULL;
  int rc;
  TRY(stmt(q, S_SESS_COUNT, &s));
  B(sqlite3_bind_int64(s, 1, mask));
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    *n = (uint64_t)sqlite3_column_int64(s, 0);
    rc = 0;
  } else {
    rc = map_rc(q, rc);
  }
  done(s);
  return rc;
}

static int exists(struct sql_store *q, const uint8_t *id, bool *ex) {
  sqlite3_stmt *s = NULL;
  int rc;
  TRY(stmt(q, S_SESS_EXISTS, &s));
  B(sqlite3_bind_blob(s, 1, id, SFTD_STORE_ID_LEN, SQLITE_STATIC));
  rc = sqlite3_step(s);
  *ex = rc == SQLITE_ROW;
  rc = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? 0 : map_rc(q, rc);
  done(s);
  return rc;
}

static int sql_session_exists(struct sftd_store *st, const uint8_t *id,
                              bool *ex) {
  return exists(Q(st), id, ex);
}

static int sql_delete_session(struct sftd_store *st, const uint8_t *id) {
  struct sql_store *q = Q(st);
  sqlite3_stmt *s = NULL;
  int rc;
  TRY(tx_begin(q, 0));
  if ((rc = stmt(q, S_SESS_DEL, &s)) == 0) {
    if ((rc = sqlite3_bind_blob(s, 1, id, SFTD_STORE_ID_LEN, SQLITE_STATIC)))
      rc = map_rc(q, rc);
    else if ((rc = run(q, s)) == 0 && sqlite3_changes(q->db) == 0)
      rc = SFT_ERR_NOT_FOUND;
    done(s);
  }
  return tx_end(q, 0, rc);
}

static int sql_cleanup(struct sftd_store *st, int64_t cutoff,
                       uint64_t *deleted) {
  struct sql_store *q = Q(st);
  sqlite3_stmt *s = NULL;
  int rc;
  TRY(tx_begin(q, 0));
  if ((rc = stmt(q, S_CLEANUP, &s)) == 0) {
    if ((rc = sqlite3_bind_int64(s, 1, cutoff)))
      rc = map_rc(q, rc);
    else if ((rc = run(q, s)) == 0)
      *deleted = (uint64_t)sqlite3_changes64(q->db); /* direct rows only */
    done(s);
  }
  rc = tx_end(q, 0, rc);
  if (rc)
    *deleted = 0;
  return rc;
}

/* ---- files --------------------------------------------------------------- */

static int do_save_file(struct sql_store *q, const struct sftd_store_file *f) {
  sqlite3_stmt *s = NULL;
  uint8_t enc[SFT_MANIFEST_ENC_MAX];
  size_t enc_len;
  bool ex;
  TRY(exists(q, f->session_id, &ex));
  if (!ex)
    return SFT_ERR_NOT_FOUND;
  TRY(sft_manifest_encode(enc, sizeof(enc), &f->manifest, &enc_len));
  TRY(stmt(q, S_FILE_UPSERT, &s));
  B(sqlite3_bind_blob(s, 1, f->session_id, SFTD_STORE_ID_LEN, SQLITE_STATIC));
  B(sqlite3_bind_int64(s, 2, f->file_id));
  B(sqlite3_bind_text(s, 3, f->path, -1, SQLITE_STATIC));
  B(sqlite3_bind_blob(s, 4, enc, (int)enc_len, SQLITE_STATIC));
  B(sqlite3_bind_int64(s, 5, (int64_t)f->manifest.chunk_count));
  B(sqlite3_bind_int64(s, 6, (int64_t)f->manifest.size));
  B(sqlite3_bind_int(s, 7, f->state));
  /* zeroblob(0) rather than NULL for an empty bitmap: the column is a BLOB,
   * always. */
  if (f->bitmap_len)
    B(sqlite3_bind_blob(s, 8, f->bitmap, (int)f->bitmap_len, SQLITE_STATIC));
  else
    B(sqlite3_bind_zeroblob(s, 8, 0));
  B(sqlite3_bind_blob(s, 9, f->root, SFTD_STORE_ROOT_LEN, SQLITE_STATIC));
  B(sqlite3_bind_int64(s, 10, (int64_t)f->bytes_done));
  return run(q, s);
}

static int sql_save_file(struct sftd_store *st, const struct sftd_store_file *f,
                         unsigned flags) {
  struct sql_store *q = Q(st);
  TRY(tx_begin(q, flags));
  return tx_end(q, flags, do_save_file(q, f));
}

static int sql_load_file(struct sftd_store *st, const uint8_t *sid,
                         uint32_t fid, struct sftd_store_file *out) {
  struct sql_store *q = Q(st);
  sqlite3_stmt *s = NULL;
  const uint8_t *bm = NULL;
  int rc;
  TRY(stmt(q, S_FILE_GET, &s));
  B(sqlite3_bind_blob(s, 1, sid, SFTD_STORE_ID_LEN, SQLITE_STATIC));
  B(sqlite3_bind_int64(s, 2, fid));
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    if ((rc = read_file(q, s, sid, out, &bm)) == 0 && out->bitmap_len) {
      if (!(out->bitmap = malloc(out->bitmap_len)))
        rc = SFT_ERR_NOMEM;
      else
        memcpy(out->bitmap, bm, out->bitmap_len);
    }
  } else {
    rc = rc == SQLITE_DONE ? SFT_ERR_NOT_FOUND : map_rc(q, rc);
  }
  done(s);
  if (rc) {
    out->bitmap = NULL;
    out->bitmap_len = 0;
  }
  return rc;
}

static int sql_list_files(struct sftd_store *st, const uint8_t *sid,
                          sftd_store_file_cb cb, void *ud) {
  struct sql_store *q = Q(st);
  sqlite3_stmt *s = NULL;
  struct sftd_store_file *f;
  int rc;
  if (!(f = malloc(sizeof(*f)))) /* ~8.5 KiB: not on the stack */
    return SFT_ERR_NOMEM;
  if ((rc = stmt(q, S_FILE_LIST, &s)) != 0)
    goto out;
  if ((rc = sqlite3_bind_blob(s, 1, sid, SFTD_STORE_ID_LEN, SQLITE_STATIC))) {
    rc = map_rc(q, rc);
    goto out_reset;
  }
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const uint8_t *bm;
    if ((rc = read_file(q, s, sid, f, &bm)) != 0)
      goto out_reset;
    if (f->bitmap_len > q->scratch_cap) {
      uint8_t *p = realloc(q->scratch, f->bitmap_len);
      if (!p) {
        rc = SFT_ERR_NOMEM;
        goto out_reset;
      }
      q->scratch = p;
      q->scratch_cap = f->bitmap_len;
    }
    if (f->bitmap_len)
      memcpy(q->scratch, bm, f->bitmap_len);
    f->bitmap = f->bitmap_len ? q->scratch : NULL;
    if ((rc = cb(f, ud)) != 0)
      goto out_reset;
  }
  rc = rc == SQLITE_DONE ? 0 : map_rc(q, rc);
out_reset:
  done(s);
out:
  free(f);
  return rc;
}

/* Stored geometry of a file: SFT_ERR_NOT_FOUND if there is no such file. */
static int file_geom(struct sql_store *q, const uint8_t *sid, uint32_t fid,
                     uint64_t *cc, uint64_t *size) {
  sqlite3_stmt *s = NULL;
  int rc;
  TRY(stmt(q, S_FILE_GEOM, &s));
  B(sqlite3_bind_blob(s, 1, sid, SFTD_STORE_ID_LEN, SQLITE_STATIC));
  B(sqlite3_bind_int64(s, 2, fid));
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    if (!(rc = col_u64(q, s, 0, cc, "chunk count")))
      rc = col_u64(q, s, 1, size, "size");
  } else {
    rc = rc == SQLITE_DONE ? SFT_ERR_NOT_FOUND : map_rc(q, rc);
  }
  done(s);
  return rc;
}

static int do_update_bitmaps(struct sql_store *q,
                             const struct sftd_store_bitmap_update *u,
                             size_t n) {
  sqlite3_stmt *s = NULL;
  TRY(stmt(q, S_FILE_BITMAP, &s));
  for (size_t i = 0; i < n; i++) {
    uint64_t cc = 0, size = 0;
    /* Checked against the stored geometry inside the transaction, so the
     * row cannot change between check and update; a failure rolls back
     * the entries already applied. */
    TRY(file_geom(q, u[i].session_id, u[i].file_id, &cc, &size));
    TRY(sftd_store__check_bitmap(u[i].bitmap, u[i].bitmap_len, cc));
    if (u[i].bytes_done > size)
      return SFT_ERR_RANGE;
    B(sqlite3_bind_blob(s, 1, u[i].session_id, SFTD_STORE_ID_LEN,
                        SQLITE_STATIC));
    B(sqlite3_bind_int64(s, 2, u[i].file_id));
    if (u[i].bitmap_len)
      B(sqlite3_bind_blob(s, 3, u[i].bitmap, (int)u[i].bitmap_len,
                          SQLITE_STATIC));
    else
      B(sqlite3_bind_zeroblob(s, 3, 0));
    B(sqlite3_bind_int64(s, 4, (int64_t)u[i].bytes_done));
    TRY(run(q, s));
  }
  return 0;
}

static int sql_update_bitmaps(struct sftd_store *st,
                              const struct sftd_store_bitmap_update *u,
                              size_t n) {
  struct sql_store *q = Q(st);
  TRY(tx_begin(q, 0));
  return tx_end(q, 0, do_update_bitmaps(q, u, n));
}

/* ---- peers and events ---------------------------------------------------- */

static int do_peer_put(struct sql_store *q, const struct sftd_store_peer *p) {
  sqlite3_stmt *s = NULL;
  TRY(stmt(q, S_PEER_UPSERT, &s));
  B(sqlite3_bind_blob(s, 1, p->fp, SFTD_STORE_FP_LEN, SQLITE_STATIC));
  B(sqlite3_bind_text(s, 2, p->label, -1, SQLITE_STATIC));
  B(sqlite3_bind_text(s, 3, p->last_addr, -1, SQLITE_STATIC));
  B(sqlite3_bind_int64(s, 4, (int64_t)p->first_seen_ns));
  B(sqlite3_bind_int64(s, 5, (int64_t)p->last_seen_ns));
  return run(q, s);
}

static int sql_peer_put(struct sftd_store *st,
                        const struct sftd_store_peer *p) {
  struct sql_store *q = Q(st);
  TRY(tx_begin(q, 0));
  return tx_end(q, 0, do_peer_put(q, p));
}

static int sql_peer_get(struct sftd_store *st, const uint8_t *fp,
                        struct sftd_store_peer *o) {
  struct sql_store *q = Q(st);
  sqlite3_stmt *s = NULL;
  int rc;
  TRY(stmt(q, S_PEER_GET, &s));
  B(sqlite3_bind_blob(s, 1, fp, SFTD_STORE_FP_LEN, SQLITE_STATIC));
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    memset(o, 0, sizeof(*o));
    if (!(rc = col_blob(q, s, 0, o->fp, sizeof(o->fp), "peer fingerprint")) &&
        !(rc = col_text(q, s, 1, o->label, sizeof(o->label), NULL, "label")) &&
        !(rc = col_text(q, s, 2, o->last_addr, sizeof(o->last_addr), NULL,
                        "peer address")) &&
        !(rc = col_u64(q, s, 3, &o->first_seen_ns, "first seen")))
      rc = col_u64(q, s, 4, &o->last_seen_ns, "last seen");
  } else {
    rc = rc == SQLITE_DONE ? SFT_ERR_NOT_FOUND : map_rc(q, rc);
  }
  done(s);
  return rc;
}

static int do_event_append(struct sql_store *q, const uint8_t *sid, uint64_t ts,
                           uint8_t kind, const char *text, size_t len,
                           uint64_t *seq) {
  sqlite3_stmt *s = NULL;
  bool ex;
  TRY(exists(q, sid, &ex));
  if (!ex)
    return SFT_ERR_NOT_FOUND;
  TRY(stmt(q, S_EV_INSERT, &s));
  B(sqlite3_bind_blob(s, 1, sid, SFTD_STORE_ID_LEN, SQLITE_STATIC));
  B(sqlite3_bind_int64(s, 2, (int64_t)ts));
  B(sqlite3_bind_int(s, 3, kind));
  B(sqlite3_bind_text(s, 4, text, (int)len, SQLITE_STATIC));
  TRY(run(q, s));
  *seq = (uint64_t)sqlite3_last_insert_rowid(q->db);
  TRY(stmt(q, S_EV_TRIM, &s));
  B(sqlite3_bind_blob(s, 1, sid, SFTD_STORE_ID_LEN, SQLITE_STATIC));
  B(sqlite3_bind_int(s, 2, SFTD_STORE_EVENTS_KEEP));
  return run(q, s);
}

static int sql_event_append(struct sftd_store *st, const uint8_t *sid,
                            uint64_t ts, uint8_t kind, const char *text,
                            size_t len, uint64_t *seq) {
  struct sql_store *q = Q(st);
  TRY(tx_begin(q, 0));
  return tx_end(q, 0, do_event_append(q, sid, ts, kind, text, len, seq));
}

static int sql_event_list(struct sftd_store *st, const uint8_t *sid,
                          uint64_t after_seq, struct sftd_store_event *out,
                          size_t cap, size_t *n) {
  struct sql_store *q = Q(st);
  sqlite3_stmt *s = NULL;
  int rc;
  TRY(stmt(q, S_EV_LIST, &s));
  B(sqlite3_bind_blob(s, 1, sid, SFTD_STORE_ID_LEN, SQLITE_STATIC));
  B(sqlite3_bind_int64(s, 2,
                       after_seq > INT64_MAX ? INT64_MAX : (int64_t)after_seq));
  B(sqlite3_bind_int64(s, 3, clamp_i64(cap)));
  while ((rc = sqlite3_step(s)) == SQLITE_ROW && *n < cap) {
    struct sftd_store_event *e = &out[*n];
    int64_t v;
    memset(e, 0, sizeof(*e));
    memcpy(e->session_id, sid, SFTD_STORE_ID_LEN);
    if ((rc = col_u64(q, s, 0, &e->seq, "event seq")) ||
        (rc = col_u64(q, s, 1, &e->ts_ns, "event time")) ||
        (rc = col_i64(q, s, 2, 0, UINT8_MAX, &v, "event kind")) ||
        (rc = col_text(q, s, 3, e->text, sizeof(e->text), &e->text_len,
                       "event text")))
      break;
    e->kind = (uint8_t)v;
    (*n)++;
  }
  if (rc == SQLITE_DONE || rc == SQLITE_ROW)
    rc = 0;
  else if (rc > 0)
    rc = map_rc(q, rc);
  done(s);
  if (rc)
    *n = 0;
  return rc;
}

/* ---- requests ------------------------------------------------------------ */

static int do_put_request(struct sql_store *q, const uint8_t *id,
                          const void *blob, size_t len) {
  sqlite3_stmt *s = NULL;
  bool ex;
  TRY(exists(q, id, &ex));
  if (!ex)
    return SFT_ERR_NOT_FOUND;
  TRY(stmt(q, S_REQ_UPSERT, &s));
  B(sqlite3_bind_blob(s, 1, id, SFTD_STORE_ID_LEN, SQLITE_STATIC));
  /* len <= SFTD_STORE_REQUEST_MAX (checked by store.c) fits an int;
   * zeroblob(0) for an empty request: the column is a BLOB, always. */
  if (len)
    B(sqlite3_bind_blob(s, 2, blob, (int)len, SQLITE_STATIC));
  else
    B(sqlite3_bind_zeroblob(s, 2, 0));
  return run(q, s);
}

static int sql_put_request(struct sftd_store *st, const uint8_t *id,
                           const void *blob, size_t len, unsigned flags) {
  struct sql_store *q = Q(st);
  TRY(tx_begin(q, flags));
  return tx_end(q, flags, do_put_request(q, id, blob, len));
}

static int sql_get_request(struct sftd_store *st, const uint8_t *id,
                           void **blob, size_t *len) {
  struct sql_store *q = Q(st);
  sqlite3_stmt *s = NULL;
  int rc;
  TRY(stmt(q, S_REQ_GET, &s));
  B(sqlite3_bind_blob(s, 1, id, SFTD_STORE_ID_LEN, SQLITE_STATIC));
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    /* Type, then length (column_type is undefined after a conversion,
     * which column_bytes may do): nothing past the bound is copied. */
    bool is_blob = sqlite3_column_type(s, 0) == SQLITE_BLOB;
    size_t n = is_blob ? (size_t)sqlite3_column_bytes(s, 0) : 0;
    const void *b = NULL;
    void *p;
    if (!is_blob || n > SFTD_STORE_REQUEST_MAX) {
      rc = malformed(q, "request");
    } else if (n && !(b = sqlite3_column_blob(s, 0))) {
      rc = SFT_ERR_NOMEM;
    } else if (!(p = malloc(n ? n : 1))) {
      rc = SFT_ERR_NOMEM;
    } else {
      if (n)
        memcpy(p, b, n);
      *blob = p;
      *len = n;
      rc = 0;
    }
  } else {
    rc = rc == SQLITE_DONE ? SFT_ERR_NOT_FOUND : map_rc(q, rc);
  }
  done(s);
  return rc;
}

/* ---- handle -------------------------------------------------------------- */

static int sql_integrity(struct sftd_store *st) {
  struct sql_store *q = Q(st);
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(q->db, "PRAGMA integrity_check", -1, &s, NULL);
  int ok = 0, rows = 0;
  if (rc != SQLITE_OK)
    return map_rc(q, rc);
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    const unsigned char *t = sqlite3_column_text(s, 0);
    rows++;
    ok = t && strcmp((const char *)t, "ok") == 0;
    if (!ok)
      snprintf(q->base.errmsg, sizeof(q->base.errmsg), "integrity: %s",
               t ? (const char *)t : "?");
  }
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE)
    return map_rc(q, rc) == SFT_ERR_MALFORMED ? SFT_ERR_MALFORMED : SFT_ERR_IO;
  return rows == 1 && ok ? 0 : SFT_ERR_MALFORMED;
}

static void sql_close(struct sftd_store *st) {
  struct sql_store *q = Q(st);
  if (st->in_batch && !sqlite3_get_autocommit(q->db))
    sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
  for (int i = 0; i < S_COUNT; i++)
    sqlite3_finalize(q->stmt[i]);
  sqlite3_close(q->db);
  free(q->scratch);
  free(q);
}

static const struct sftd_store_ops sql_ops = {
    .close = sql_close,
    .integrity = sql_integrity,
    .begin = sql_begin,
    .commit = sql_commit,
    .rollback = sql_rollback,
    .save_session = sql_save_session,
    .load_session = sql_load_session,
    .list_sessions = sql_list_sessions,
    .count_sessions = sql_count_sessions,
    .session_exists = sql_session_exists,
    .delete_session = sql_delete_session,
    .cleanup = sql_cleanup,
    .save_file = sql_save_file,
    .load_file = sql_load_file,
    .list_files = sql_list_files,
    .update_bitmaps = sql_update_bitmaps,
    .peer_put = sql_peer_put,
    .peer_get = sql_peer_get,
    .event_append = sql_event_append,
    .event_list = sql_event_list,
    .put_request = sql_put_request,
    .get_request = sql_get_request,
};

/* ---- open and migrate ---------------------------------------------------- */

static int exec_sql(struct sql_store *q, const char *sql) {
  int rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? 0 : map_rc(q, rc);
}

static int pragma_int(struct sql_store *q, const char *sql, int *v) {
  sqlite3_stmt *s = NULL;
  int rc = sqlite3_prepare_v2(q->db, sql, -1, &s, NULL);
  if (rc != SQLITE_OK)
    return map_rc(q, rc);
  rc = sqlite3_step(s);
  if (rc == SQLITE_ROW) {
    *v = sqlite3_column_int(s, 0);
    rc = 0;
  } else {
    rc = map_rc(q, rc);
  }
  sqlite3_finalize(s);
  return rc;
}

/* Runs pending migrations, each in its own transaction with
 * synchronous=FULL, with foreign keys off (a future step may rebuild a
 * table, SQLite's "12-step ALTER") and a foreign_key_check before
 * commit. */
static int migrate(struct sql_store *q, int from) {
  int rc = 0;
  char sql[64];
  TRY(exec_sql(q, "PRAGMA foreign_keys=OFF; PRAGMA synchronous=FULL"));
  for (int v = from; v < SCHEMA_VERSION && rc == 0; v++) {
    int bad = 0;
    if ((rc = exec_sql(q, "BEGIN IMMEDIATE")) != 0)
      break;
    snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", v + 1);
    if ((rc = exec_sql(q, migrations[v])) == 0 &&
        (rc = exec_sql(q, sql)) == 0) {
      sqlite3_stmt *s = NULL;
      if (sqlite3_prepare_v2(q->db, "PRAGMA foreign_key_check", -1, &s, NULL) !=
          SQLITE_OK)
        rc = map_rc(q, sqlite3_errcode(q->db));
      else {
        bad = sqlite3_step(s) == SQLITE_ROW;
        sqlite3_finalize(s);
      }
      if (rc == 0 && bad) {
        snprintf(q->base.errmsg, sizeof(q->base.errmsg),
                 "migration to v%d breaks a foreign key", v + 1);
        rc = SFT_ERR_MALFORMED;
      }
    } else if (rc) {
      char m[SFTD_STORE_ERRBUF_SIZE];
      snprintf(m, sizeof(m), "%s", q->base.errmsg);
      snprintf(q->base.errmsg, sizeof(q->base.errmsg),
               "migration to v%d: %.200s", v + 1, m);
    }
    if (rc == 0)
      rc = exec_sql(q, "COMMIT");
    if (rc != 0 && !sqlite3_get_autocommit(q->db))
      sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
  }
  if (rc == 0)
    rc = exec_sql(q, "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL");
  return rc;
}

/* Creates the file 0600 (SQLite would create it 0644 & ~umask; its -wal
 * and -shm files inherit the database file's mode), or tightens an
 * existing one. */
static int prepare_file(const char *path, char *msg, size_t cap) {
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  struct stat sb;
  if (fd < 0) {
    snprintf(msg, cap, "%s: %s", path, strerror(errno));
    return SFT_ERR_IO;
  }
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
      ((sb.st_mode & 077) && fchmod(fd, 0600) != 0)) {
    snprintf(msg, cap, "%s: not a regular file we can make 0600", path);
    close(fd);
    return SFT_ERR_IO;
  }
  close(fd);
  return 0;
}

int sftd_store_open_sqlite(const char *path, struct sftd_store **out,
                           char *errbuf) {
  struct sql_store *q;
  char jm[16] = "";
  int rc, ver = 0;
  if (errbuf)
    errbuf[0] = '\0';
  if (!out)
    return SFT_ERR_INVAL;
  *out = NULL;
  if (!path || !*path)
    return SFT_ERR_INVAL;
  if (!(q = calloc(1, sizeof(*q))))
    return SFT_ERR_NOMEM;
  q->base.ops = &sql_ops;
  if ((rc = prepare_file(path, q->base.errmsg, sizeof(q->base.errmsg))) != 0)
    goto fail;
  rc = sqlite3_open_v2(path, &q->db,
                       SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
                           SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE,
                       NULL);
  if (rc != SQLITE_OK) {
    rc = q->db ? map_rc(q, rc) : SFT_ERR_NOMEM;
    goto fail;
  }
  sqlite3_busy_timeout(q->db, BUSY_TIMEOUT_MS);
  /* The file is data, not code: no schema-defined functions or virtual
   * tables, no writable_schema tricks through our own SQL. */
  sqlite3_db_config(q->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
  sqlite3_db_config(q->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
  /* Refuse a newer schema before touching anything (not even WAL). */
  if ((rc = pragma_int(q, "PRAGMA user_version", &ver)) != 0)
    goto fail;
  if (ver > SCHEMA_VERSION || ver < 0) {
    snprintf(q->base.errmsg, sizeof(q->base.errmsg),
             "database schema version %d is newer than this sft supports "
             "(%d): refusing to open it",
             ver, SCHEMA_VERSION);
    rc = SFT_ERR_VERSION;
    goto fail;
  }
  {
    sqlite3_stmt *s = NULL;
    rc = sqlite3_prepare_v2(q->db, "PRAGMA journal_mode=WAL", -1, &s, NULL);
    if (rc != SQLITE_OK) {
      rc = map_rc(q, rc);
      goto fail;
    }
    if ((rc = sqlite3_step(s)) == SQLITE_ROW && sqlite3_column_text(s, 0))
      snprintf(jm, sizeof(jm), "%s", (const char *)sqlite3_column_text(s, 0));
    rc = rc == SQLITE_ROW ? 0 : map_rc(q, rc);
    sqlite3_finalize(s);
    if (rc)
      goto fail;
    if (strcmp(jm, "wal") != 0) {
      snprintf(q->base.errmsg, sizeof(q->base.errmsg),
               "WAL journal refused (got %s)", jm);
      rc = SFT_ERR_IO;
      goto fail;
    }
  }
  if ((rc = migrate(q, ver)) != 0)
    goto fail;
  *out = &q->base;
  return 0;
fail:
  if (errbuf)
    snprintf(errbuf, SFTD_STORE_ERRBUF_SIZE, "%s", q->base.errmsg);
  sqlite3_close(q->db);
  free(q);
  return rc;
}
