/* Tests of src/daemon/store: one behaviour suite run against BOTH backends
 * (group "store_mem" and group "store_sqlite", same test functions, the
 * backend chosen by the fixture), then SQLite-only tests: persistence
 * across reopen, file modes, rows corrupted by raw SQL through a second
 * sqlite3 handle, migrations (v0, a hand-made v1 and v2), refusal of a newer
 * schema, integrity_check on a damaged file, fsync counting through a
 * wrapping VFS (NORMAL batches do not sync, milestones do), and a crash
 * test (SIGKILL of a writing child at random moments). Databases go to a
 * mkdtemp directory under /tmp. Prints one "store-bench:" line of commit
 * costs (informational, not asserted). */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "daemon/store/store.h"
#include "sft/err.h"

struct fx {
  bool sql;
  char dir[64];
  char path[128];
  struct sftd_store *st;
};

static int open_store(struct fx *fx) {
  char err[SFTD_STORE_ERRBUF_SIZE];
  int rc = fx->sql ? sftd_store_open_sqlite(fx->path, &fx->st, err)
                   : sftd_store_new_mem(&fx->st);
  if (rc)
    fprintf(stderr, "open: %s %s\n", sft_err_name(rc), err);
  return rc;
}

static int setup_common(void **state, bool sql) {
  struct fx *fx = calloc(1, sizeof(*fx));
  assert_non_null(fx);
  fx->sql = sql;
  strcpy(fx->dir, "/tmp/sft-store-XXXXXX");
  assert_non_null(mkdtemp(fx->dir));
  snprintf(fx->path, sizeof(fx->path), "%s/state.db", fx->dir);
  assert_int_equal(open_store(fx), 0);
  *state = fx;
  return 0;
}
static int setup_mem(void **state) {
  return setup_common(state, false);
}
static int setup_sql(void **state) {
  return setup_common(state, true);
}

static int rm_cb(const char *path, const struct stat *sb, int flag,
                 struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

static int teardown(void **state) {
  struct fx *fx = *state;
  sftd_store_close(fx->st);
  nftw(fx->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  free(fx);
  return 0;
}

static void reopen(struct fx *fx) {
  sftd_store_close(fx->st);
  fx->st = NULL;
  assert_int_equal(open_store(fx), 0);
}

/* ---- builders ------------------------------------------------------------ */

static void mk_id(uint8_t id[SFTD_STORE_ID_LEN], unsigned n) {
  memset(id, 0, SFTD_STORE_ID_LEN);
  id[0] = 0xa5;
  id[14] = (uint8_t)(n >> 8);
  id[15] = (uint8_t)n;
}

static void mk_session(struct sftd_store_session *s, unsigned n, int state,
                       uint64_t created, uint64_t updated) {
  memset(s, 0, sizeof(*s));
  mk_id(s->id, n);
  s->direction = n % 2 ? SFTD_DIR_RECV : SFTD_DIR_SEND;
  memset(s->peer_fp, (int)(0x10 + n), sizeof(s->peer_fp));
  snprintf(s->peer_addr, sizeof(s->peer_addr), "192.0.2.%u:4433", n % 250);
  s->priority = (int)(n % 3);
  s->state = state;
  s->error_code = state == 6 ? SFT_ERR_DIGEST : 0;
  snprintf(s->error_text, sizeof(s->error_text), "%s",
           state == 6 ? "digest mismatch on chunk 7" : "");
  s->created_ns = created;
  s->updated_ns = updated;
  s->bytes_total = 1000000ull * (n + 1);
  s->bytes_done = 1000ull * n;
  s->bw_limit_bps = n % 2 ? 0 : 100000000ull;
  s->flags = 0x80000001u ^ n;
}

static void assert_session_eq(const struct sftd_store_session *a,
                              const struct sftd_store_session *b) {
  assert_memory_equal(a->id, b->id, SFTD_STORE_ID_LEN);
  assert_int_equal(a->direction, b->direction);
  assert_memory_equal(a->peer_fp, b->peer_fp, SFTD_STORE_FP_LEN);
  assert_string_equal(a->peer_addr, b->peer_addr);
  assert_int_equal(a->priority, b->priority);
  assert_int_equal(a->state, b->state);
  assert_int_equal(a->error_code, b->error_code);
  assert_string_equal(a->error_text, b->error_text);
  assert_true(a->created_ns == b->created_ns);
  assert_true(a->updated_ns == b->updated_ns);
  assert_true(a->bytes_total == b->bytes_total);
  assert_true(a->bytes_done == b->bytes_done);
  assert_true(a->bw_limit_bps == b->bw_limit_bps);
  assert_int_equal(a->flags, b->flags);
}

/* A file of |size| bytes in 64 KiB chunks; the bitmap is |bm| (borrowed). */
static struct sftd_store_file *mk_file(const uint8_t *sid, uint32_t fid,
                                       uint64_t size) {
  struct sftd_store_file *f = calloc(1, sizeof(*f));
  char name[64];
  assert_non_null(f);
  memcpy(f->session_id, sid, SFTD_STORE_ID_LEN);
  f->file_id = fid;
  f->state = 2;
  snprintf(f->path, sizeof(f->path), "/srv/in/dir/file-%u.bin", fid);
  sft_manifest_init(&f->manifest);
  snprintf(name, sizeof(name), "dir/file-%u.bin", fid);
  assert_int_equal(sft_manifest_set_name(&f->manifest, name, strlen(name)), 0);
  assert_int_equal(sft_manifest_set_geometry(&f->manifest, size, 64 * 1024), 0);
  f->manifest.mtime_sec = 1700000000 + fid;
  memset(f->root, (int)(0xc0 + fid), sizeof(f->root));
  return f;
}

static void assert_file_eq(const struct sftd_store_file *a,
                           const struct sftd_store_file *b) {
  assert_memory_equal(a->session_id, b->session_id, SFTD_STORE_ID_LEN);
  assert_int_equal(a->file_id, b->file_id);
  assert_int_equal(a->state, b->state);
  assert_string_equal(a->path, b->path);
  assert_true(sft_manifest_equal(&a->manifest, &b->manifest));
  assert_memory_equal(a->root, b->root, SFTD_STORE_ROOT_LEN);
  assert_true(a->bytes_done == b->bytes_done);
  assert_int_equal(a->bitmap_len, b->bitmap_len);
  if (a->bitmap_len)
    assert_memory_equal(a->bitmap, b->bitmap, a->bitmap_len);
}

static void assert_bitmap(struct sftd_store *st, const uint8_t *sid,
                          uint32_t fid, const uint8_t *bm, size_t len,
                          uint64_t done) {
  struct sftd_store_file *f = calloc(1, sizeof(*f));
  assert_non_null(f);
  assert_int_equal(sftd_store_load_file(st, sid, fid, f), 0);
  assert_int_equal(f->bitmap_len, len);
  if (len)
    assert_memory_equal(f->bitmap, bm, len);
  assert_true(f->bytes_done == done);
  sftd_store_file_clear(f);
  free(f);
}

static uint64_t count(struct sftd_store *st, unsigned mask) {
  uint64_t n = 99;
  assert_int_equal(sftd_store_count_sessions(st, mask, &n), 0);
  return n;
}

/* ---- behaviour suite (both backends) ------------------------------------ */

static void t_session_roundtrip(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session s, out;
  bool ex = true;
  uint8_t id[SFTD_STORE_ID_LEN];

  mk_session(&s, 1, 2, 1000, 2000);
  assert_int_equal(sftd_store_save_session(fx->st, &s, SFTD_STORE_SYNC_FULL),
                   0);
  assert_int_equal(sftd_store_load_session(fx->st, s.id, &out), 0);
  assert_session_eq(&s, &out);
  assert_int_equal(sftd_store_session_exists(fx->st, s.id, &ex), 0);
  assert_true(ex);

  /* Update in place: the files of the session survive (upsert, no
   * delete-and-insert cascade). */
  struct sftd_store_file *f = mk_file(s.id, 0, 100000);
  assert_int_equal(sftd_store_save_file(fx->st, f, 0), 0);
  s.state = 3;
  s.updated_ns = 3000;
  s.bytes_done = s.bytes_total;
  snprintf(s.error_text, sizeof(s.error_text), "paused by user");
  assert_int_equal(sftd_store_save_session(fx->st, &s, 0), 0);
  assert_int_equal(sftd_store_load_session(fx->st, s.id, &out), 0);
  assert_session_eq(&s, &out);
  assert_int_equal(count(fx->st, 0), 1);
  assert_bitmap(fx->st, s.id, 0, NULL, 0, 0);

  mk_id(id, 77);
  assert_int_equal(sftd_store_load_session(fx->st, id, &out),
                   SFT_ERR_NOT_FOUND);
  assert_int_equal(sftd_store_session_exists(fx->st, id, &ex), 0);
  assert_false(ex);

  /* Extremes round-trip: maximal strings, INT64_MAX values, flags. */
  mk_session(&s, 2, 6, INT64_MAX, INT64_MAX);
  memset(s.peer_addr, 'a', SFTD_STORE_ADDR_MAX);
  s.peer_addr[SFTD_STORE_ADDR_MAX] = '\0';
  memset(s.error_text, 'e', SFTD_STORE_ERROR_MAX);
  s.error_text[SFTD_STORE_ERROR_MAX] = '\0';
  s.bytes_total = s.bytes_done = s.bw_limit_bps = INT64_MAX;
  s.flags = UINT32_MAX;
  s.error_code = INT32_MIN;
  assert_int_equal(sftd_store_save_session(fx->st, &s, 0), 0);
  assert_int_equal(sftd_store_load_session(fx->st, s.id, &out), 0);
  assert_session_eq(&s, &out);
  free(f);
}

static void t_session_bounds(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session s;
#define CASE(body, e)                                                          \
  do {                                                                         \
    mk_session(&s, 3, 2, 10, 10);                                              \
    body;                                                                      \
    assert_int_equal(sftd_store_save_session(fx->st, &s, 0), e);               \
  } while (0)
  CASE(s.direction = 2, SFT_ERR_RANGE);
  CASE(s.direction = -1, SFT_ERR_RANGE);
  CASE(s.priority = 3, SFT_ERR_RANGE);
  CASE(s.state = 7, SFT_ERR_RANGE);
  CASE(s.state = -1, SFT_ERR_RANGE);
  CASE(s.bytes_done = s.bytes_total + 1, SFT_ERR_RANGE);
  CASE(s.created_ns = (uint64_t)INT64_MAX + 1, SFT_ERR_RANGE);
  CASE(s.updated_ns = UINT64_MAX, SFT_ERR_RANGE);
  CASE(s.bytes_total = s.bytes_done = (uint64_t)INT64_MAX + 1, SFT_ERR_RANGE);
  CASE(s.bw_limit_bps = UINT64_MAX, SFT_ERR_RANGE);
  CASE(memset(s.peer_addr, 'x', sizeof(s.peer_addr)), SFT_ERR_TOO_LARGE);
  CASE(memset(s.error_text, 'x', sizeof(s.error_text)), SFT_ERR_TOO_LARGE);
#undef CASE
  assert_int_equal(sftd_store_save_session(fx->st, NULL, 0), SFT_ERR_INVAL);
  mk_session(&s, 3, 2, 10, 10);
  assert_int_equal(sftd_store_save_session(fx->st, &s, 0x80), SFT_ERR_INVAL);
  assert_int_equal(count(fx->st, 0), 0); /* nothing stored */
}

static void t_list_filters(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session s, out[16];
  size_t n = 99;
  /* 12 sessions: state n % 7, created in a scrambled order; sessions 10
   * and 11 share a created time (tie broken by id). */
  static const uint64_t created[12] = {50, 10, 90, 30,  70, 20,
                                       80, 40, 60, 100, 5,  5};
  for (unsigned i = 0; i < 12; i++) {
    mk_session(&s, i, (int)(i % 7), created[i], created[i]);
    assert_int_equal(sftd_store_save_session(fx->st, &s, 0), 0);
  }
  assert_int_equal(sftd_store_list_sessions(fx->st, 0, 0, out, 16, &n), 0);
  assert_int_equal(n, 12);
  /* ordered by (created, id): 10 (5), 11 (5), 1 (10), 5 (20), 3 (30)... */
  static const unsigned order[12] = {10, 11, 1, 5, 3, 7, 0, 8, 4, 6, 2, 9};
  for (unsigned i = 0; i < 12; i++) {
    mk_session(&s, order[i], (int)(order[i] % 7), created[order[i]],
               created[order[i]]);
    assert_session_eq(&out[i], &s);
  }
  /* paging */
  assert_int_equal(sftd_store_list_sessions(fx->st, 0, 3, out, 4, &n), 0);
  assert_int_equal(n, 4);
  assert_int_equal(out[0].id[15], 5);
  assert_int_equal(out[3].id[15], 0);
  assert_int_equal(sftd_store_list_sessions(fx->st, 0, 10, out, 4, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(sftd_store_list_sessions(fx->st, 0, 12, out, 4, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(sftd_store_list_sessions(fx->st, 0, 0, out, 0, &n), 0);
  assert_int_equal(n, 0);
  /* filter: Completed (5) or Failed (6): sessions 5, 6, 12? (i%7: 5, 6) */
  unsigned term = SFTD_STORE_STATE_BIT(5) | SFTD_STORE_STATE_BIT(6);
  assert_int_equal(sftd_store_list_sessions(fx->st, term, 0, out, 16, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(out[0].id[15], 5); /* created 20 */
  assert_int_equal(out[1].id[15], 6); /* created 80 */
  assert_true(count(fx->st, term) == 2);
  /* state 0: sessions 0 and 7; state 3: 3 and 10 */
  unsigned m = SFTD_STORE_STATE_BIT(0) | SFTD_STORE_STATE_BIT(3);
  assert_int_equal(sftd_store_list_sessions(fx->st, m, 1, out, 16, &n), 0);
  assert_int_equal(n, 3); /* 10, 3, 7, 0 minus the first */
  assert_int_equal(out[0].id[15], 3);
  assert_int_equal(out[1].id[15], 7);
  assert_int_equal(out[2].id[15], 0);
  assert_true(count(fx->st, m) == 4);
  assert_true(count(fx->st, 0) == 12);
  assert_true(count(fx->st, SFTD_STORE_STATE_BIT(4)) == 2); /* 4, 11 */
  assert_int_equal(sftd_store_list_sessions(fx->st, 0, 0, NULL, 4, &n),
                   SFT_ERR_INVAL);
}

static size_t g_seen;
static int count_cb(const struct sftd_store_file *f, void *ud) {
  (void)f, (void)ud;
  g_seen++;
  return 0;
}

static void t_delete_cascade(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session a, b, out;
  struct sftd_store_event ev[4];
  size_t n;
  mk_session(&a, 1, 2, 1, 1);
  mk_session(&b, 2, 2, 2, 2);
  assert_int_equal(sftd_store_save_session(fx->st, &a, 0), 0);
  assert_int_equal(sftd_store_save_session(fx->st, &b, 0), 0);
  for (uint32_t i = 0; i < 3; i++) {
    struct sftd_store_file *f = mk_file(a.id, i, 1000);
    assert_int_equal(sftd_store_save_file(fx->st, f, 0), 0);
    memcpy(f->session_id, b.id, SFTD_STORE_ID_LEN);
    assert_int_equal(sftd_store_save_file(fx->st, f, 0), 0);
    free(f);
  }
  assert_int_equal(sftd_store_event_append(fx->st, a.id, 5, 1, "a", 1, NULL),
                   0);
  assert_int_equal(sftd_store_event_append(fx->st, b.id, 5, 1, "b", 1, NULL),
                   0);
  assert_int_equal(sftd_store_delete_session(fx->st, a.id), 0);
  assert_int_equal(sftd_store_load_session(fx->st, a.id, &out),
                   SFT_ERR_NOT_FOUND);
  assert_int_equal(sftd_store_delete_session(fx->st, a.id), SFT_ERR_NOT_FOUND);
  g_seen = 0;
  assert_int_equal(sftd_store_list_files(fx->st, a.id, count_cb, NULL), 0);
  assert_int_equal(g_seen, 0);
  struct sftd_store_file *f = calloc(1, sizeof(*f));
  assert_int_equal(sftd_store_load_file(fx->st, a.id, 1, f), SFT_ERR_NOT_FOUND);
  assert_int_equal(sftd_store_event_list(fx->st, a.id, 0, ev, 4, &n), 0);
  assert_int_equal(n, 0);
  /* b untouched */
  g_seen = 0;
  assert_int_equal(sftd_store_list_files(fx->st, b.id, count_cb, NULL), 0);
  assert_int_equal(g_seen, 3);
  assert_int_equal(sftd_store_event_list(fx->st, b.id, 0, ev, 4, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(ev[0].text, "b");
  /* re-creating a's id finds no stale children */
  assert_int_equal(sftd_store_save_session(fx->st, &a, 0), 0);
  g_seen = 0;
  assert_int_equal(sftd_store_list_files(fx->st, a.id, count_cb, NULL), 0);
  assert_int_equal(g_seen, 0);
  assert_int_equal(sftd_store_event_list(fx->st, a.id, 0, ev, 4, &n), 0);
  assert_int_equal(n, 0);
  free(f);
}

static void t_cleanup(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session s;
  const uint64_t D = SFTD_STORE_DAY_NS, now = 100 * D;
  uint64_t del = 99;
  bool ex;
  /* Inclusive boundary: age >= 7 days is deleted, age 7 d - 1 ns is kept;
   * only Completed (5) and Failed (6) sessions are candidates. */
  static const struct {
    unsigned id;
    int state;
  } rows[7] = {{1, 5}, {2, 5}, {3, 6}, {4, 6}, {5, 2}, {6, 3}, {7, 5}};
  const int64_t ages[7] = {0,                     /* completed just now */
                           (int64_t)(7 * D),      /* exactly 7 d: gone */
                           (int64_t)(7 * D) - 1,  /* 1 ns short: kept */
                           (int64_t)(8 * D),      /* failed 8 d: gone */
                           (int64_t)(30 * D),     /* transferring: kept */
                           (int64_t)(30 * D),     /* paused: kept */
                           (int64_t)(7 * D) + 1}; /* gone */
  const bool gone[7] = {false, true, false, true, false, false, true};
  for (size_t i = 0; i < 7; i++) {
    mk_session(&s, rows[i].id, rows[i].state, 1, now - (uint64_t)ages[i]);
    assert_int_equal(sftd_store_save_session(fx->st, &s, 0), 0);
    struct sftd_store_file *f = mk_file(s.id, 0, 10);
    assert_int_equal(sftd_store_save_file(fx->st, f, 0), 0);
    free(f);
    assert_int_equal(sftd_store_event_append(fx->st, s.id, 1, 1, "x", 1, NULL),
                     0);
  }
  assert_int_equal(sftd_store_cleanup(fx->st, now, 7, &del), 0);
  assert_true(del == 3);
  for (size_t i = 0; i < 7; i++) {
    uint8_t id[SFTD_STORE_ID_LEN];
    struct sftd_store_event ev[2];
    size_t n;
    mk_id(id, rows[i].id);
    assert_int_equal(sftd_store_session_exists(fx->st, id, &ex), 0);
    assert_int_equal(ex, !gone[i]);
    g_seen = 0;
    assert_int_equal(sftd_store_list_files(fx->st, id, count_cb, NULL), 0);
    assert_int_equal(g_seen, gone[i] ? 0 : 1);
    assert_int_equal(sftd_store_event_list(fx->st, id, 0, ev, 2, &n), 0);
    assert_int_equal(n, gone[i] ? 0 : 1);
  }
  /* Again: nothing more. One ns later, session 3 is exactly 7 days old. */
  assert_int_equal(sftd_store_cleanup(fx->st, now, 7, &del), 0);
  assert_true(del == 0);
  assert_int_equal(sftd_store_cleanup(fx->st, now + 1, 7, &del), 0);
  assert_true(del == 1);
  /* days = 0: every terminal session updated at or before now. */
  assert_int_equal(sftd_store_cleanup(fx->st, now, 0, &del), 0);
  assert_true(del == 1); /* session 1 */
  assert_true(count(fx->st, 0) == 2);
  /* now earlier than N days: nothing, no underflow */
  mk_session(&s, 9, 5, 0, 0);
  assert_int_equal(sftd_store_save_session(fx->st, &s, 0), 0);
  assert_int_equal(sftd_store_cleanup(fx->st, D, 7, &del), 0);
  assert_true(del == 0);
  assert_int_equal(sftd_store_cleanup(fx->st, 7 * D, 7, &del), 0);
  assert_true(del == 1); /* updated 0, exactly 7 days at now = 7 D */
  assert_int_equal(sftd_store_cleanup(fx->st, now, 36501, &del), SFT_ERR_RANGE);
  assert_int_equal(sftd_store_cleanup(fx->st, UINT64_MAX, 1, &del),
                   SFT_ERR_RANGE);
}

struct collect {
  uint32_t ids[8];
  size_t n;
  int stop_at;
  struct sftd_store_file *copy;
};
static int collect_cb(const struct sftd_store_file *f, void *ud) {
  struct collect *c = ud;
  if (c->copy && c->n == 0) {
    uint8_t *keep = c->copy->bitmap;
    *c->copy = *f;
    c->copy->bitmap = keep;
    memcpy(keep, f->bitmap, f->bitmap_len);
  }
  c->ids[c->n++] = f->file_id;
  return (int)c->n == c->stop_at ? 42 : 0;
}

static void t_files(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session s;
  uint8_t bm[2] = {0x0f, 0x01};
  mk_session(&s, 1, 2, 1, 1);
  assert_int_equal(sftd_store_save_session(fx->st, &s, 0), 0);
  struct sftd_store_file *f[3], *out = calloc(1, sizeof(*out));
  static const uint32_t ids[3] = {7, 0, 3};
  for (int i = 0; i < 3; i++) {
    /* 9 chunks of 64 KiB: bitmap 2 bytes, bits 1..7 of byte 1 spare */
    f[i] = mk_file(s.id, ids[i], 9 * 65536 - 5);
    f[i]->bitmap = bm;
    f[i]->bitmap_len = 2;
    f[i]->bytes_done = 5 * 65536;
    assert_int_equal(sftd_store_save_file(fx->st, f[i], 0), 0);
  }
  sft_manifest_set_root(&f[0]->manifest, f[0]->root);
  assert_int_equal(sftd_store_save_file(fx->st, f[0], 0), 0); /* replace */
  for (int i = 0; i < 3; i++) {
    assert_int_equal(sftd_store_load_file(fx->st, s.id, ids[i], out), 0);
    assert_file_eq(f[i], out);
    sftd_store_file_clear(out);
    assert_null(out->bitmap);
  }
  struct collect c = {.stop_at = 0};
  uint8_t cbm[8];
  c.copy = calloc(1, sizeof(*c.copy));
  c.copy->bitmap = cbm;
  assert_int_equal(sftd_store_list_files(fx->st, s.id, collect_cb, &c), 0);
  assert_int_equal(c.n, 3);
  assert_int_equal(c.ids[0], 0);
  assert_int_equal(c.ids[1], 3);
  assert_int_equal(c.ids[2], 7);
  assert_file_eq(f[1], c.copy);
  struct collect c2 = {.stop_at = 2};
  assert_int_equal(sftd_store_list_files(fx->st, s.id, collect_cb, &c2), 42);
  assert_int_equal(c2.n, 2);
  assert_int_equal(sftd_store_load_file(fx->st, s.id, 1, out),
                   SFT_ERR_NOT_FOUND);
  /* a file needs its session */
  f[0]->session_id[0] ^= 1;
  assert_int_equal(sftd_store_save_file(fx->st, f[0], 0), SFT_ERR_NOT_FOUND);
  f[0]->session_id[0] ^= 1;
  /* an empty file, no bitmap */
  struct sftd_store_file *e = mk_file(s.id, SFTD_STORE_MAX_FILE_ID, 0);
  assert_int_equal(sftd_store_save_file(fx->st, e, SFTD_STORE_SYNC_FULL), 0);
  assert_int_equal(
      sftd_store_load_file(fx->st, s.id, SFTD_STORE_MAX_FILE_ID, out), 0);
  assert_file_eq(e, out);
  for (int i = 0; i < 3; i++)
    free(f[i]);
  free(e);
  free(out);
  free(c.copy);
}

static void t_file_bounds(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session s;
  uint8_t bm[3] = {0xff, 0x01, 0};
  mk_session(&s, 1, 2, 1, 1);
  assert_int_equal(sftd_store_save_session(fx->st, &s, 0), 0);
  struct sftd_store_file *f = mk_file(s.id, 0, 9 * 65536); /* 9 chunks */
#define FCASE(body, e)                                                         \
  do {                                                                         \
    struct sftd_store_file *g = mk_file(s.id, 0, 9 * 65536);                   \
    body;                                                                      \
    assert_int_equal(sftd_store_save_file(fx->st, g, 0), e);                   \
    free(g);                                                                   \
  } while (0)
  FCASE((g->bitmap = bm, g->bitmap_len = 3), SFT_ERR_TOO_LARGE);
  FCASE((bm[1] = 0x02, g->bitmap = bm, g->bitmap_len = 2), SFT_ERR_INVAL);
  FCASE((g->bitmap = NULL, g->bitmap_len = 1), SFT_ERR_INVAL);
  FCASE(g->bytes_done = 9 * 65536 + 1, SFT_ERR_RANGE);
  FCASE(g->file_id = SFTD_STORE_MAX_FILE_ID + 1, SFT_ERR_RANGE);
  FCASE(g->state = 7, SFT_ERR_RANGE);
  FCASE(memset(g->path, 'p', sizeof(g->path)), SFT_ERR_TOO_LARGE);
  FCASE((g->manifest.name_len = 0, g->manifest.name[0] = 0), SFT_ERR_PATH);
  FCASE(g->manifest.chunk_count = 8, SFT_ERR_MALFORMED);
#undef FCASE
  bm[1] = 0x01;
  f->bitmap = bm;
  f->bitmap_len = 2;
  f->bytes_done = 9 * 65536;
  assert_int_equal(sftd_store_save_file(fx->st, f, 0), 0);
  memset(f->path, 'p', SFTD_STORE_PATH_MAX); /* maximal path is fine */
  f->path[SFTD_STORE_PATH_MAX] = '\0';
  assert_int_equal(sftd_store_save_file(fx->st, f, 0), 0);
  struct sftd_store_file *out = calloc(1, sizeof(*out));
  assert_int_equal(sftd_store_load_file(fx->st, s.id, 0, out), 0);
  assert_file_eq(f, out);
  sftd_store_file_clear(out);
  free(out);
  free(f);
}

static void t_bitmap_batch(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session s;
  struct sftd_store_bitmap_update u[4];
  uint8_t b0[2] = {0x03, 0x00}, b1[1] = {0x55}, b2[2] = {0xff, 0x01};
  uint8_t big[3] = {0}, spare[2] = {0, 0x80};
  mk_session(&s, 1, 2, 1, 1);
  assert_int_equal(sftd_store_save_session(fx->st, &s, 0), 0);
  for (uint32_t i = 0; i < 3; i++) {
    struct sftd_store_file *f = mk_file(s.id, i, 9 * 65536);
    assert_int_equal(sftd_store_save_file(fx->st, f, 0), 0);
    free(f);
  }
  memset(u, 0, sizeof(u));
  for (int i = 0; i < 4; i++)
    memcpy(u[i].session_id, s.id, SFTD_STORE_ID_LEN);
  u[0] = (struct sftd_store_bitmap_update){
      .file_id = 0, .bitmap = b0, .bitmap_len = 2, .bytes_done = 2};
  u[1] = (struct sftd_store_bitmap_update){
      .file_id = 1, .bitmap = b1, .bitmap_len = 1, .bytes_done = 4};
  u[2] = (struct sftd_store_bitmap_update){
      .file_id = 2, .bitmap = b2, .bitmap_len = 2, .bytes_done = 9 * 65536};
  for (int i = 0; i < 4; i++)
    memcpy(u[i].session_id, s.id, SFTD_STORE_ID_LEN);
  assert_int_equal(sftd_store_update_bitmaps(fx->st, u, 3), 0);
  assert_bitmap(fx->st, s.id, 0, b0, 2, 2);
  assert_bitmap(fx->st, s.id, 1, b1, 1, 4);
  assert_bitmap(fx->st, s.id, 2, b2, 2, 9 * 65536);
  assert_int_equal(sftd_store_update_bitmaps(fx->st, u, 0), 0);

  /* All or nothing: a bad LAST entry leaves the first ones unapplied. */
  uint8_t n0[2] = {0xff, 0x00};
  struct sftd_store_bitmap_update v[2];
  v[0] = u[0];
  v[0].bitmap = n0;
  v[0].bytes_done = 8;
  v[1] = u[1];
  v[1].file_id = 9; /* no such file */
  assert_int_equal(sftd_store_update_bitmaps(fx->st, v, 2), SFT_ERR_NOT_FOUND);
  v[1] = u[1];
  v[1].bitmap = big;
  v[1].bitmap_len = 3;
  assert_int_equal(sftd_store_update_bitmaps(fx->st, v, 2), SFT_ERR_TOO_LARGE);
  v[1].bitmap = spare;
  v[1].bitmap_len = 2;
  assert_int_equal(sftd_store_update_bitmaps(fx->st, v, 2), SFT_ERR_INVAL);
  v[1] = u[1];
  v[1].bytes_done = 9 * 65536 + 1;
  assert_int_equal(sftd_store_update_bitmaps(fx->st, v, 2), SFT_ERR_RANGE);
  v[1] = u[1];
  v[1].file_id = SFTD_STORE_MAX_FILE_ID + 1;
  assert_int_equal(sftd_store_update_bitmaps(fx->st, v, 2), SFT_ERR_RANGE);
  v[1] = u[1];
  v[1].bitmap_len = SFTD_STORE_BITMAP_MAX + 1;
  assert_int_equal(sftd_store_update_bitmaps(fx->st, v, 2), SFT_ERR_TOO_LARGE);
  assert_bitmap(fx->st, s.id, 0, b0, 2, 2);
  /* empty bitmap (reset), and the same file twice: last one wins */
  v[0] = u[0];
  v[0].bitmap = NULL;
  v[0].bitmap_len = 0;
  v[0].bytes_done = 0;
  v[1] = u[0];
  v[1].bitmap = n0;
  v[1].bytes_done = 8;
  assert_int_equal(sftd_store_update_bitmaps(fx->st, v, 1), 0);
  assert_bitmap(fx->st, s.id, 0, NULL, 0, 0);
  assert_int_equal(sftd_store_update_bitmaps(fx->st, v, 2), 0);
  assert_bitmap(fx->st, s.id, 0, n0, 2, 8);
}

static void t_batches(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session s, t, out;
  bool ex;
  mk_session(&s, 1, 1, 1, 1);
  mk_session(&t, 2, 1, 2, 2);
  assert_int_equal(sftd_store_commit(fx->st), SFT_ERR_STATE);
  assert_int_equal(sftd_store_rollback(fx->st), SFT_ERR_STATE);
  assert_int_equal(sftd_store_begin(fx->st, 0x4), SFT_ERR_INVAL);

  /* milestone batch: session + file + event, committed together */
  assert_int_equal(sftd_store_begin(fx->st, SFTD_STORE_SYNC_FULL), 0);
  assert_true(sftd_store_in_batch(fx->st));
  assert_int_equal(sftd_store_begin(fx->st, 0), SFT_ERR_STATE);
  assert_int_equal(sftd_store_save_session(fx->st, &s, SFTD_STORE_SYNC_FULL),
                   0);
  struct sftd_store_file *f = mk_file(s.id, 0, 100);
  assert_int_equal(sftd_store_save_file(fx->st, f, 0), 0);
  /* a failing call inside the batch undoes only itself */
  f->session_id[0] ^= 1;
  assert_int_equal(sftd_store_save_file(fx->st, f, 0), SFT_ERR_NOT_FOUND);
  f->session_id[0] ^= 1;
  assert_int_equal(
      sftd_store_event_append(fx->st, s.id, 1, 2, "created", 7, NULL), 0);
  uint8_t bm[1] = {1};
  struct sftd_store_bitmap_update u = {
      .file_id = 0, .bitmap = bm, .bitmap_len = 1, .bytes_done = 100};
  memcpy(u.session_id, s.id, SFTD_STORE_ID_LEN);
  assert_int_equal(sftd_store_update_bitmaps(fx->st, &u, 1), 0);
  /* reads inside the batch see its writes */
  assert_int_equal(sftd_store_session_exists(fx->st, s.id, &ex), 0);
  assert_true(ex);
  assert_int_equal(sftd_store_commit(fx->st), 0);
  assert_false(sftd_store_in_batch(fx->st));
  assert_int_equal(sftd_store_load_session(fx->st, s.id, &out), 0);
  assert_session_eq(&s, &out);
  assert_bitmap(fx->st, s.id, 0, bm, 1, 100);

  /* rolled back batch: nothing of it remains, earlier data intact */
  assert_int_equal(sftd_store_begin(fx->st, 0), 0);
  assert_int_equal(sftd_store_save_session(fx->st, &t, 0), 0);
  s.state = 3;
  assert_int_equal(sftd_store_save_session(fx->st, &s, 0), 0);
  assert_int_equal(sftd_store_event_append(fx->st, s.id, 2, 2, "x", 1, NULL),
                   0);
  assert_int_equal(sftd_store_delete_session(fx->st, s.id), 0);
  assert_int_equal(sftd_store_rollback(fx->st), 0);
  assert_int_equal(sftd_store_session_exists(fx->st, t.id, &ex), 0);
  assert_false(ex);
  assert_int_equal(sftd_store_load_session(fx->st, s.id, &out), 0);
  assert_int_equal(out.state, 1);
  assert_bitmap(fx->st, s.id, 0, bm, 1, 100);
  struct sftd_store_event ev[4];
  size_t n;
  assert_int_equal(sftd_store_event_list(fx->st, s.id, 0, ev, 4, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(ev[0].text, "created");
  /* seq numbers are not consumed by a rolled-back append */
  uint64_t seq = 0;
  assert_int_equal(sftd_store_event_append(fx->st, s.id, 3, 2, "y", 1, &seq),
                   0);
  assert_true(seq == ev[0].seq + 1);
  free(f);
}

static void t_peers(void **state) {
  struct fx *fx = *state;
  struct sftd_store_peer p, out;
  memset(&p, 0, sizeof(p));
  memset(p.fp, 0x42, sizeof(p.fp));
  snprintf(p.label, sizeof(p.label), "laptop");
  snprintf(p.last_addr, sizeof(p.last_addr), "[2001:db8::1]:4433");
  p.first_seen_ns = 100;
  p.last_seen_ns = 100;
  assert_int_equal(sftd_store_peer_get(fx->st, p.fp, &out), SFT_ERR_NOT_FOUND);
  assert_int_equal(sftd_store_peer_put(fx->st, &p), 0);
  assert_int_equal(sftd_store_peer_get(fx->st, p.fp, &out), 0);
  assert_memory_equal(out.fp, p.fp, sizeof(p.fp));
  assert_string_equal(out.label, "laptop");
  assert_string_equal(out.last_addr, p.last_addr);
  assert_true(out.first_seen_ns == 100 && out.last_seen_ns == 100);
  /* upsert: first_seen kept */
  snprintf(p.label, sizeof(p.label), "%s", "");
  snprintf(p.last_addr, sizeof(p.last_addr), "198.51.100.7:4433");
  p.first_seen_ns = 900;
  p.last_seen_ns = 900;
  assert_int_equal(sftd_store_peer_put(fx->st, &p), 0);
  assert_int_equal(sftd_store_peer_get(fx->st, p.fp, &out), 0);
  assert_string_equal(out.label, "");
  assert_string_equal(out.last_addr, "198.51.100.7:4433");
  assert_true(out.first_seen_ns == 100 && out.last_seen_ns == 900);
  /* a second peer is distinct */
  p.fp[31] = 0;
  assert_int_equal(sftd_store_peer_put(fx->st, &p), 0);
  assert_int_equal(sftd_store_peer_get(fx->st, p.fp, &out), 0);
  assert_true(out.first_seen_ns == 900);
  /* bounds */
  memset(p.label, 'l', sizeof(p.label));
  assert_int_equal(sftd_store_peer_put(fx->st, &p), SFT_ERR_TOO_LARGE);
  p.label[SFTD_STORE_LABEL_MAX] = '\0';
  assert_int_equal(sftd_store_peer_put(fx->st, &p), 0);
  memset(p.last_addr, 'a', sizeof(p.last_addr));
  assert_int_equal(sftd_store_peer_put(fx->st, &p), SFT_ERR_TOO_LARGE);
  p.last_addr[0] = '\0';
  p.last_seen_ns = UINT64_MAX;
  assert_int_equal(sftd_store_peer_put(fx->st, &p), SFT_ERR_RANGE);
}

static void t_events(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session a, b;
  char text[SFTD_STORE_EVENT_TEXT_MAX + 2];
  uint64_t seq = 0, prev = 0;
  size_t n;
  struct sftd_store_event *ev =
      calloc(SFTD_STORE_EVENTS_KEEP + 10, sizeof(*ev));
  assert_non_null(ev);
  mk_session(&a, 1, 2, 1, 1);
  mk_session(&b, 2, 2, 1, 1);
  assert_int_equal(sftd_store_event_append(fx->st, a.id, 1, 1, "x", 1, &seq),
                   SFT_ERR_NOT_FOUND);
  assert_int_equal(sftd_store_save_session(fx->st, &a, 0), 0);
  assert_int_equal(sftd_store_save_session(fx->st, &b, 0), 0);
  memset(text, 't', sizeof(text));
  assert_int_equal(sftd_store_event_append(fx->st, a.id, 1, 1, text,
                                           SFTD_STORE_EVENT_TEXT_MAX + 1, &seq),
                   SFT_ERR_TOO_LARGE);
  assert_int_equal(sftd_store_event_append(fx->st, a.id, 1, 1, "a\0b", 3, &seq),
                   SFT_ERR_INVAL);
  assert_int_equal(
      sftd_store_event_append(fx->st, a.id, UINT64_MAX, 1, "x", 1, &seq),
      SFT_ERR_RANGE);
  /* maximal text and an empty one */
  assert_int_equal(sftd_store_event_append(fx->st, b.id, 7, 255, text,
                                           SFTD_STORE_EVENT_TEXT_MAX, &seq),
                   0);
  assert_int_equal(sftd_store_event_append(fx->st, b.id, 8, 0, NULL, 0, &seq),
                   0);
  assert_int_equal(sftd_store_event_list(fx->st, b.id, 0, ev, 10, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(ev[0].text_len, SFTD_STORE_EVENT_TEXT_MAX);
  assert_memory_equal(ev[0].text, text, SFTD_STORE_EVENT_TEXT_MAX);
  assert_int_equal(ev[0].kind, 255);
  assert_true(ev[0].ts_ns == 7);
  assert_int_equal(ev[1].text_len, 0);
  assert_string_equal(ev[1].text, "");
  assert_true(ev[1].seq == seq && ev[0].seq < ev[1].seq);
  const uint64_t b_first = ev[0].seq;

  /* KEEP + 5 appends: the log keeps the newest KEEP, seqs increasing. */
  uint64_t first = 0;
  for (unsigned i = 0; i < SFTD_STORE_EVENTS_KEEP + 5; i++) {
    char t[32];
    int len = snprintf(t, sizeof(t), "event %u", i);
    assert_int_equal(sftd_store_event_append(fx->st, a.id, 1000 + i,
                                             (uint8_t)(i % 4), t, (size_t)len,
                                             &seq),
                     0);
    assert_true(seq > prev);
    if (i == 0)
      first = seq;
    prev = seq;
  }
  assert_int_equal(sftd_store_event_list(fx->st, a.id, 0, ev,
                                         SFTD_STORE_EVENTS_KEEP + 10, &n),
                   0);
  assert_int_equal(n, SFTD_STORE_EVENTS_KEEP);
  assert_string_equal(ev[0].text, "event 5");
  assert_true(ev[0].seq == first + 5);
  assert_true(ev[0].ts_ns == 1005);
  assert_int_equal(ev[0].kind, 1);
  assert_string_equal(ev[n - 1].text, "event 1004");
  /* after_seq + cap paging */
  assert_int_equal(sftd_store_event_list(fx->st, a.id, first + 1000, ev, 3, &n),
                   0);
  assert_int_equal(n, 3);
  assert_string_equal(ev[0].text, "event 1001");
  assert_int_equal(sftd_store_event_list(fx->st, a.id, prev, ev, 3, &n), 0);
  assert_int_equal(n, 0);
  /* b's log is untouched by a's trimming */
  assert_int_equal(sftd_store_event_list(fx->st, b.id, 0, ev, 10, &n), 0);
  assert_int_equal(n, 2);
  assert_true(ev[0].seq == b_first);
  /* seqs are never reused, even after deleting the newest rows */
  assert_int_equal(sftd_store_delete_session(fx->st, a.id), 0);
  assert_int_equal(sftd_store_event_append(fx->st, b.id, 9, 0, "z", 1, &seq),
                   0);
  assert_true(seq == prev + 1);
  free(ev);
}

static void t_integrity_ok(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session s;
  mk_session(&s, 1, 2, 1, 1);
  assert_int_equal(sftd_store_save_session(fx->st, &s, 0), 0);
  assert_int_equal(sftd_store_integrity(fx->st), 0);
  assert_int_equal(sftd_store_integrity(NULL), SFT_ERR_INVAL);
}

/* ---- requests (both backends) ------------------------------------------- */

/* Asserts the request of |id| is exactly |len| bytes equal to |want|. */
static void assert_request(struct sftd_store *st, const uint8_t *id,
                           const void *want, size_t len) {
  void *got = NULL;
  size_t n = 12345;
  assert_int_equal(sftd_store_get_request(st, id, &got, &n), 0);
  assert_non_null(got);
  assert_int_equal(n, len);
  if (len)
    assert_memory_equal(got, want, len);
  free(got);
}

static void assert_no_request(struct sftd_store *st, const uint8_t *id) {
  void *got = (void *)(uintptr_t)1;
  size_t n = 12345;
  assert_int_equal(sftd_store_get_request(st, id, &got, &n), SFT_ERR_NOT_FOUND);
  assert_null(got);
  assert_int_equal(n, 0);
}

/* A deterministic pattern of |len| bytes (not all equal). */
static uint8_t *mk_blob(size_t len, unsigned seed) {
  uint8_t *b = malloc(len ? len : 1);
  assert_non_null(b);
  for (size_t i = 0; i < len; i++)
    b[i] = (uint8_t)(i * 31u + seed + (i >> 8));
  return b;
}

static void t_requests(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session a, b, out;
  const size_t MAX = SFTD_STORE_REQUEST_MAX;
  uint8_t *big = mk_blob(MAX + 1, 7);
  void *got = NULL;
  size_t n = 0;
  static const char json[] = "{\"peer\":\"192.0.2.1:4433\",\"paths\":[\"/a\"]}";
  mk_session(&a, 1, 2, 1, 1);
  mk_session(&b, 2, 3, 2, 2);

  /* no session: put and get both say NOT_FOUND */
  assert_int_equal(sftd_store_put_request(fx->st, a.id, json, 4, 0),
                   SFT_ERR_NOT_FOUND);
  assert_no_request(fx->st, a.id);
  assert_int_equal(sftd_store_save_session(fx->st, &a, 0), 0);
  assert_int_equal(sftd_store_save_session(fx->st, &b, 0), 0);
  /* a session without a request */
  assert_no_request(fx->st, a.id);

  /* argument checks, before any backend call */
  assert_int_equal(sftd_store_put_request(NULL, a.id, json, 1, 0),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_store_put_request(fx->st, NULL, json, 1, 0),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_store_put_request(fx->st, a.id, json, 1, 0x2),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_store_put_request(fx->st, a.id, NULL, 1, 0),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_store_put_request(fx->st, a.id, big, MAX + 1, 0),
                   SFT_ERR_TOO_LARGE);
  assert_int_equal(sftd_store_put_request(fx->st, a.id, big, SIZE_MAX, 0),
                   SFT_ERR_TOO_LARGE);
  assert_int_equal(sftd_store_get_request(NULL, a.id, &got, &n), SFT_ERR_INVAL);
  assert_int_equal(sftd_store_get_request(fx->st, NULL, &got, &n),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_store_get_request(fx->st, a.id, NULL, &n),
                   SFT_ERR_INVAL);
  assert_int_equal(sftd_store_get_request(fx->st, a.id, &got, NULL),
                   SFT_ERR_INVAL);
  assert_null(got);
  assert_no_request(fx->st, a.id); /* none of those stored anything */

  /* 0 bytes (NULL blob allowed), 1 byte, exactly MAX */
  assert_int_equal(sftd_store_put_request(fx->st, a.id, NULL, 0, 0), 0);
  assert_request(fx->st, a.id, NULL, 0);
  assert_int_equal(sftd_store_put_request(fx->st, a.id, "{", 1, 0), 0);
  assert_request(fx->st, a.id, "{", 1);
  assert_int_equal(sftd_store_put_request(fx->st, a.id, json, 0, 0), 0);
  assert_request(fx->st, a.id, NULL, 0);
  assert_int_equal(
      sftd_store_put_request(fx->st, a.id, big, MAX, SFTD_STORE_SYNC_FULL), 0);
  assert_request(fx->st, a.id, big, MAX);
  /* too large leaves the stored one as it was */
  assert_int_equal(sftd_store_put_request(fx->st, a.id, big, MAX + 1, 0),
                   SFT_ERR_TOO_LARGE);
  assert_request(fx->st, a.id, big, MAX);

  /* replace, and one per session */
  assert_int_equal(
      sftd_store_put_request(fx->st, a.id, json, sizeof(json) - 1, 0), 0);
  assert_request(fx->st, a.id, json, sizeof(json) - 1);
  assert_no_request(fx->st, b.id);
  assert_int_equal(sftd_store_put_request(fx->st, b.id, "{}", 2, 0), 0);
  assert_request(fx->st, b.id, "{}", 2);
  assert_request(fx->st, a.id, json, sizeof(json) - 1);

  /* re-saving the session (an upsert) keeps its request */
  a.state = 3;
  a.updated_ns = 50;
  assert_int_equal(sftd_store_save_session(fx->st, &a, SFTD_STORE_SYNC_FULL),
                   0);
  assert_int_equal(sftd_store_load_session(fx->st, a.id, &out), 0);
  assert_int_equal(out.state, 3);
  assert_request(fx->st, a.id, json, sizeof(json) - 1);
  assert_int_equal(sftd_store_integrity(fx->st), 0);
  free(big);
}

static void t_request_lifecycle(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session a, b, c;
  const uint64_t D = SFTD_STORE_DAY_NS, now = 100 * D;
  uint64_t del = 0;
  mk_session(&a, 1, 2, 1, 1);
  mk_session(&b, 2, 5, 2, now - 8 * D);  /* completed 8 days ago */
  mk_session(&c, 3, 3, 3, now - 30 * D); /* paused 30 days: not terminal */
  assert_int_equal(sftd_store_save_session(fx->st, &a, 0), 0);
  assert_int_equal(sftd_store_save_session(fx->st, &b, 0), 0);
  assert_int_equal(sftd_store_save_session(fx->st, &c, 0), 0);
  assert_int_equal(sftd_store_put_request(fx->st, a.id, "A", 1, 0), 0);
  assert_int_equal(sftd_store_put_request(fx->st, b.id, "BB", 2, 0), 0);
  assert_int_equal(sftd_store_put_request(fx->st, c.id, "CCC", 3, 0), 0);

  /* delete_session takes the request with it; a re-created id has none */
  assert_int_equal(sftd_store_delete_session(fx->st, a.id), 0);
  assert_no_request(fx->st, a.id);
  assert_int_equal(sftd_store_save_session(fx->st, &a, 0), 0);
  assert_no_request(fx->st, a.id);
  assert_request(fx->st, b.id, "BB", 2);

  /* cleanup takes the old terminal session's request, not the others */
  assert_int_equal(sftd_store_cleanup(fx->st, now, 7, &del), 0);
  assert_true(del == 1);
  assert_no_request(fx->st, b.id);
  assert_request(fx->st, c.id, "CCC", 3);
  assert_int_equal(sftd_store_save_session(fx->st, &b, 0), 0);
  assert_no_request(fx->st, b.id);

  /* a committed batch keeps its puts; a failing put inside undoes only
   * itself */
  assert_int_equal(sftd_store_begin(fx->st, SFTD_STORE_SYNC_FULL), 0);
  assert_int_equal(sftd_store_put_request(fx->st, a.id, "a1", 2, 0), 0);
  assert_int_equal(
      sftd_store_put_request(fx->st, a.id, "a2", 2, SFTD_STORE_SYNC_FULL), 0);
  a.id[0] ^= 1;
  assert_int_equal(sftd_store_put_request(fx->st, a.id, "x", 1, 0),
                   SFT_ERR_NOT_FOUND);
  a.id[0] ^= 1;
  assert_request(fx->st, a.id, "a2", 2); /* reads see the batch */
  assert_int_equal(sftd_store_commit(fx->st), 0);
  assert_request(fx->st, a.id, "a2", 2);

  /* a rolled-back batch: replaced, new and deleted requests all restored */
  assert_int_equal(sftd_store_begin(fx->st, 0), 0);
  assert_int_equal(sftd_store_put_request(fx->st, a.id, "zzz", 3, 0), 0);
  assert_int_equal(sftd_store_put_request(fx->st, b.id, "new", 3, 0), 0);
  assert_int_equal(sftd_store_delete_session(fx->st, c.id), 0);
  assert_no_request(fx->st, c.id);
  assert_int_equal(sftd_store_rollback(fx->st), 0);
  assert_request(fx->st, a.id, "a2", 2);
  assert_no_request(fx->st, b.id);
  assert_request(fx->st, c.id, "CCC", 3);
  assert_int_equal(sftd_store_integrity(fx->st), 0);
}

/* ---- SQLite only --------------------------------------------------------- */

static sqlite3 *raw_open(const char *path) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 2000);
  return db;
}

static void raw_exec(sqlite3 *db, const char *sql) {
  char *err = NULL;
  int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
  if (rc != SQLITE_OK)
    fprintf(stderr, "raw_exec(%s): %s\n", sql, err ? err : "?");
  sqlite3_free(err);
  assert_int_equal(rc, SQLITE_OK);
}

static int raw_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *s;
  int v = -1;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
  if (sqlite3_step(s) == SQLITE_ROW)
    v = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  return v;
}

static unsigned file_mode(const char *path) {
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  return sb.st_mode & 07777;
}

static void t_sql_persist(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session s, out;
  struct sftd_store_peer p, po;
  char wal[160], shm[160];
  mk_session(&s, 1, 4, 11, 12);
  assert_int_equal(sftd_store_save_session(fx->st, &s, SFTD_STORE_SYNC_FULL),
                   0);
  struct sftd_store_file *f = mk_file(s.id, 2, 3 * 65536);
  uint8_t bm[1] = {0x05};
  f->bitmap = bm;
  f->bitmap_len = 1;
  assert_int_equal(sftd_store_save_file(fx->st, f, 0), 0);
  memset(&p, 0, sizeof(p));
  p.fp[0] = 1;
  p.last_seen_ns = 5;
  assert_int_equal(sftd_store_peer_put(fx->st, &p), 0);
  assert_int_equal(sftd_store_event_append(fx->st, s.id, 1, 1, "e", 1, NULL),
                   0);
  snprintf(wal, sizeof(wal), "%s-wal", fx->path);
  snprintf(shm, sizeof(shm), "%s-shm", fx->path);
  assert_int_equal(file_mode(fx->path), 0600);
  assert_int_equal(file_mode(wal), 0600);
  assert_int_equal(file_mode(shm), 0600);
  reopen(fx);
  assert_int_equal(sftd_store_load_session(fx->st, s.id, &out), 0);
  assert_session_eq(&s, &out);
  assert_bitmap(fx->st, s.id, 2, bm, 1, 0);
  assert_int_equal(sftd_store_peer_get(fx->st, p.fp, &po), 0);
  struct sftd_store_event ev[2];
  size_t n;
  assert_int_equal(sftd_store_event_list(fx->st, s.id, 0, ev, 2, &n), 0);
  assert_int_equal(n, 1);
  sftd_store_close(fx->st);
  fx->st = NULL;
  /* an existing world-readable file is tightened to 0600 */
  assert_int_equal(chmod(fx->path, 0644), 0);
  assert_int_equal(open_store(fx), 0);
  assert_int_equal(file_mode(fx->path), 0600);
  /* the pragmas we rely on */
  sqlite3 *db = raw_open(fx->path);
  assert_int_equal(raw_int(db, "PRAGMA user_version"),
                   sftd_store_sqlite_schema_version());
  sqlite3_close(db);
  free(f);
}

/* Each corruption is applied by raw SQL through a second handle, then the
 * affected load must say MALFORMED (and not crash or copy past a bound). */
static void t_sql_corrupt(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session s, out[2];
  size_t n;
  mk_session(&s, 1, 2, 1, 1);
  assert_int_equal(sftd_store_save_session(fx->st, &s, 0), 0);
  struct sftd_store_file *f = mk_file(s.id, 0, 9 * 65536), *fo;
  fo = calloc(1, sizeof(*fo));
  assert_int_equal(sftd_store_save_file(fx->st, f, 0), 0);
  struct sftd_store_peer p;
  memset(&p, 0, sizeof(p));
  assert_int_equal(sftd_store_peer_put(fx->st, &p), 0);
  assert_int_equal(sftd_store_event_append(fx->st, s.id, 1, 1, "e", 1, NULL),
                   0);
  sqlite3 *db = raw_open(fx->path);

  static const char *const sess_bad[] = {
      "UPDATE sessions SET peer_addr=printf('%.300c','a')",
      "UPDATE sessions SET error_text=printf('%.1025c','e')",
      "UPDATE sessions SET error_text=CAST(x'610062' AS TEXT)", /* NUL */
      "UPDATE sessions SET peer_fp=x'0102'",
      "UPDATE sessions SET peer_fp=zeroblob(100000)",
      "UPDATE sessions SET peer_addr=x'41'", /* a BLOB, not TEXT */
      "UPDATE sessions SET state=9",
      "UPDATE sessions SET state=-1",
      "UPDATE sessions SET priority=3",
      "UPDATE sessions SET direction='send'",
      "UPDATE sessions SET created_ns=-5",
      "UPDATE sessions SET bytes_done=bytes_total+1",
      "UPDATE sessions SET error_code=5000000000",
      "UPDATE sessions SET flags=4294967296",
      "UPDATE sessions SET bw_limit_bps=1.5",
  };
  for (size_t i = 0; i < sizeof(sess_bad) / sizeof(*sess_bad); i++) {
    raw_exec(db, "SAVEPOINT c");
    raw_exec(db, sess_bad[i]);
    raw_exec(db, "RELEASE c");
    assert_int_equal(sftd_store_load_session(fx->st, s.id, &out[0]),
                     SFT_ERR_MALFORMED);
    assert_int_equal(sftd_store_list_sessions(fx->st, 0, 0, out, 2, &n),
                     SFT_ERR_MALFORMED);
    /* restore by re-saving through the store */
    assert_int_equal(sftd_store_save_session(fx->st, &s, 0), 0);
    assert_int_equal(sftd_store_load_session(fx->st, s.id, &out[0]), 0);
  }
  /* a session id of the wrong length shows up in list */
  raw_exec(db, "UPDATE sessions SET id=x'01'");
  assert_int_equal(sftd_store_list_sessions(fx->st, 0, 0, out, 2, &n),
                   SFT_ERR_MALFORMED);
  assert_int_equal(n, 0);
  raw_exec(db, "DELETE FROM sessions");
  assert_int_equal(sftd_store_save_session(fx->st, &s, 0), 0);
  assert_int_equal(sftd_store_save_file(fx->st, f, 0), 0);
  assert_int_equal(sftd_store_event_append(fx->st, s.id, 1, 1, "e", 1, NULL),
                   0);

  static const char *const file_bad[] = {
      "UPDATE files SET manifest=x'00'",
      "UPDATE files SET manifest=zeroblob(5000)",
      "UPDATE files SET manifest=randomblob(60)",
      "UPDATE files SET manifest='not a blob'",
      "UPDATE files SET bitmap=x'000000'", /* 9 chunks: at most 2 bytes */
      "UPDATE files SET bitmap=zeroblob(8388609)",
      "UPDATE files SET bitmap=x'0002'", /* spare bit set */
      "UPDATE files SET bitmap='ab'",
      "UPDATE files SET root=zeroblob(31)",
      "UPDATE files SET path=printf('%.4097c','p')",
      "UPDATE files SET chunk_count=8",
      "UPDATE files SET size=size+1",
      "UPDATE files SET bytes_done=size+1",
      "UPDATE files SET state=7",
  };
  for (size_t i = 0; i < sizeof(file_bad) / sizeof(*file_bad); i++) {
    raw_exec(db, file_bad[i]);
    assert_int_equal(sftd_store_load_file(fx->st, s.id, 0, fo),
                     SFT_ERR_MALFORMED);
    assert_null(fo->bitmap);
    assert_int_equal(sftd_store_list_files(fx->st, s.id, count_cb, NULL),
                     SFT_ERR_MALFORMED);
    assert_int_equal(sftd_store_save_file(fx->st, f, 0), 0);
    assert_int_equal(sftd_store_load_file(fx->st, s.id, 0, fo), 0);
    sftd_store_file_clear(fo);
  }
  /* the hot path refuses a row whose geometry is nonsense */
  raw_exec(db, "UPDATE files SET chunk_count=-1");
  struct sftd_store_bitmap_update u = {.file_id = 0};
  memcpy(u.session_id, s.id, SFTD_STORE_ID_LEN);
  assert_int_equal(sftd_store_update_bitmaps(fx->st, &u, 1), SFT_ERR_MALFORMED);

  raw_exec(db, "UPDATE peers SET label=printf('%.201c','l')");
  struct sftd_store_peer po;
  assert_int_equal(sftd_store_peer_get(fx->st, p.fp, &po), SFT_ERR_MALFORMED);
  raw_exec(db, "UPDATE peers SET label='', last_seen_ns=-1");
  assert_int_equal(sftd_store_peer_get(fx->st, p.fp, &po), SFT_ERR_MALFORMED);

  struct sftd_store_event ev[2];
  raw_exec(db, "UPDATE events SET text=printf('%.1025c','t')");
  assert_int_equal(sftd_store_event_list(fx->st, s.id, 0, ev, 2, &n),
                   SFT_ERR_MALFORMED);
  assert_int_equal(n, 0);
  raw_exec(db, "UPDATE events SET text='ok', kind=256");
  assert_int_equal(sftd_store_event_list(fx->st, s.id, 0, ev, 2, &n),
                   SFT_ERR_MALFORMED);
  sqlite3_close(db);
  free(f);
  free(fo);
}

/* The released v1 schema, verbatim (a test's copy: the code must keep
 * migrating databases that were created with it). */
static const char v1_schema[] =
    "CREATE TABLE sessions("
    " id BLOB PRIMARY KEY NOT NULL, direction INTEGER NOT NULL,"
    " peer_fp BLOB NOT NULL, peer_addr TEXT NOT NULL,"
    " priority INTEGER NOT NULL, state INTEGER NOT NULL,"
    " error_code INTEGER NOT NULL, error_text TEXT NOT NULL,"
    " created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL,"
    " bytes_total INTEGER NOT NULL, bytes_done INTEGER NOT NULL,"
    " bw_limit_bps INTEGER NOT NULL, flags INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX sessions_by_created ON sessions(created_ns, id);"
    "CREATE INDEX sessions_by_state ON sessions(state, updated_ns);"
    "CREATE TABLE files("
    " session_id BLOB NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    " file_id INTEGER NOT NULL, path TEXT NOT NULL, manifest BLOB NOT NULL,"
    " chunk_count INTEGER NOT NULL, size INTEGER NOT NULL,"
    " state INTEGER NOT NULL, bitmap BLOB NOT NULL, root BLOB NOT NULL,"
    " bytes_done INTEGER NOT NULL, PRIMARY KEY(session_id, file_id));"
    "PRAGMA user_version=1;";

static void t_sql_migrate(void **state) {
  struct fx *fx = *state;
  char path[160];
  struct sftd_store *st = NULL;
  char err[SFTD_STORE_ERRBUF_SIZE];
  /* v0 -> current: the fixture opened an empty file */
  sqlite3 *db = raw_open(fx->path);
  assert_int_equal(raw_int(db, "PRAGMA user_version"), 3);
  assert_int_equal(sftd_store_sqlite_schema_version(), 3);
  assert_int_equal(raw_int(db,
                           "SELECT count(*) FROM sqlite_schema WHERE name IN "
                           "('sessions','files','peers','events','requests')"),
                   5);
  char jm[8] = "";
  sqlite3_stmt *s;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL),
                   SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  snprintf(jm, sizeof(jm), "%s", (const char *)sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  assert_string_equal(jm, "wal");
  sqlite3_close(db);

  /* hand-made v1 with a row -> current, row kept, v2 features work */
  snprintf(path, sizeof(path), "%s/v1.db", fx->dir);
  db = raw_open(path);
  raw_exec(db, v1_schema);
  raw_exec(db,
           "INSERT INTO sessions VALUES(x'a5000000000000000000000000000001',"
           "1, zeroblob(32), '192.0.2.1:4433', 1, 5, 0, '', 10, 20, 100,"
           " 100, 0, 7)");
  sqlite3_close(db);
  assert_int_equal(sftd_store_open_sqlite(path, &st, err), 0);
  uint8_t id[SFTD_STORE_ID_LEN];
  struct sftd_store_session out;
  mk_id(id, 1);
  assert_int_equal(sftd_store_load_session(st, id, &out), 0);
  assert_int_equal(out.state, 5);
  assert_true(out.updated_ns == 20 && out.flags == 7);
  assert_string_equal(out.peer_addr, "192.0.2.1:4433");
  assert_int_equal(sftd_store_event_append(st, id, 1, 1, "m", 1, NULL), 0);
  struct sftd_store_peer p;
  memset(&p, 0, sizeof(p));
  assert_int_equal(sftd_store_peer_put(st, &p), 0);
  assert_int_equal(sftd_store_integrity(st), 0);
  assert_int_equal(sftd_store_put_request(st, id, "{}", 2, 0), 0);
  sftd_store_close(st);
  db = raw_open(path);
  assert_int_equal(raw_int(db, "PRAGMA user_version"), 3);
  sqlite3_close(db);
  /* reopening a current database migrates nothing and loses nothing */
  assert_int_equal(sftd_store_open_sqlite(path, &st, err), 0);
  assert_int_equal(sftd_store_load_session(st, id, &out), 0);
  assert_request(st, id, "{}", 2);
  sftd_store_close(st);
}

static void t_sql_newer_refused(void **state) {
  struct fx *fx = *state;
  char path[160], err[SFTD_STORE_ERRBUF_SIZE];
  struct sftd_store *st = (struct sftd_store *)(uintptr_t)1; /* reset? */
  snprintf(path, sizeof(path), "%s/future.db", fx->dir);
  sqlite3 *db = raw_open(path);
  char sql[64];
  snprintf(sql, sizeof(sql), "CREATE TABLE x(a); PRAGMA user_version=%d;",
           sftd_store_sqlite_schema_version() + 1);
  raw_exec(db, sql);
  sqlite3_close(db);
  assert_int_equal(sftd_store_open_sqlite(path, &st, err), SFT_ERR_VERSION);
  assert_null(st);
  assert_non_null(strstr(err, "newer"));
  db = raw_open(path);
  assert_int_equal(raw_int(db, "PRAGMA user_version"),
                   sftd_store_sqlite_schema_version() + 1); /* untouched */
  assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_schema"), 1);
  sqlite3_close(db);
  /* not a database at all */
  snprintf(path, sizeof(path), "%s/junk.db", fx->dir);
  FILE *fp = fopen(path, "w");
  assert_non_null(fp);
  for (int i = 0; i < 4096; i++)
    fputc(i * 7, fp);
  fclose(fp);
  int rc = sftd_store_open_sqlite(path, &st, err);
  assert_true(rc == SFT_ERR_MALFORMED || rc == SFT_ERR_IO);
  assert_null(st);
  assert_int_equal(sftd_store_open_sqlite(NULL, &st, err), SFT_ERR_INVAL);
  snprintf(path, sizeof(path), "%s/no/such/dir.db", fx->dir);
  assert_int_equal(sftd_store_open_sqlite(path, &st, err), SFT_ERR_IO);
}

/* Damages the pages of an index in a closed database file: integrity_check
 * must notice, and the store must say so. */
static void t_sql_integrity_damaged(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session s;
  for (unsigned i = 0; i < 200; i++) {
    mk_session(&s, i, (int)(i % 7), i, i);
    assert_int_equal(sftd_store_save_session(fx->st, &s, 0), 0);
  }
  assert_int_equal(sftd_store_integrity(fx->st), 0);
  sftd_store_close(fx->st); /* last connection: checkpoint, WAL removed */
  fx->st = NULL;
  sqlite3 *db = raw_open(fx->path);
  int root = raw_int(db, "SELECT rootpage FROM sqlite_schema WHERE "
                         "name='sessions_by_state'");
  int psz = raw_int(db, "PRAGMA page_size");
  sqlite3_close(db);
  assert_true(root > 1);
  int fd = open(fx->path, O_RDWR);
  assert_true(fd >= 0);
  uint8_t junk[64];
  memset(junk, 0xee, sizeof(junk));
  /* keep the page header, trash the cell pointer array and cells */
  assert_int_equal(pwrite(fd, junk, sizeof(junk), (off_t)(root - 1) * psz + 12),
                   (ssize_t)sizeof(junk));
  close(fd);
  assert_int_equal(open_store(fx), 0);
  assert_int_equal(sftd_store_integrity(fx->st), SFT_ERR_MALFORMED);
  assert_non_null(strstr(sftd_store_errmsg(fx->st), "integrity"));
}

/* The released v2 schema (v1 + peers and events), verbatim: a database
 * created by the previous release must upgrade in place. */
static const char v2_extra[] =
    "CREATE TABLE peers("
    " fp BLOB PRIMARY KEY NOT NULL, label TEXT NOT NULL,"
    " last_addr TEXT NOT NULL, first_seen_ns INTEGER NOT NULL,"
    " last_seen_ns INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE events("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " session_id BLOB NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,"
    " ts_ns INTEGER NOT NULL, kind INTEGER NOT NULL, text TEXT NOT NULL);"
    "CREATE INDEX events_by_session ON events(session_id, seq);"
    "PRAGMA user_version=2;";

static void t_sql_migrate_v2(void **state) {
  struct fx *fx = *state;
  char path[160], err[SFTD_STORE_ERRBUF_SIZE];
  struct sftd_store *st = NULL;
  uint8_t id[SFTD_STORE_ID_LEN], id2[SFTD_STORE_ID_LEN];
  struct sftd_store_session out;
  struct sftd_store_event ev[4];
  struct sftd_store_peer p;
  size_t n;
  snprintf(path, sizeof(path), "%s/v2.db", fx->dir);
  sqlite3 *db = raw_open(path);
  raw_exec(db, v1_schema);
  raw_exec(db, v2_extra);
  raw_exec(db,
           "INSERT INTO sessions VALUES(x'a5000000000000000000000000000001',"
           "0, zeroblob(32), '192.0.2.1:4433', 1, 3, 0, '', 10, 20, 100,"
           " 40, 0, 7);"
           "INSERT INTO sessions VALUES(x'a5000000000000000000000000000002',"
           "1, zeroblob(32), '', 0, 5, 0, '', 11, 21, 5, 5, 0, 0);"
           "INSERT INTO events(session_id,ts_ns,kind,text) VALUES"
           "(x'a5000000000000000000000000000001', 15, 2, 'created'),"
           "(x'a5000000000000000000000000000001', 16, 3, 'paused');"
           "INSERT INTO peers VALUES(zeroblob(32), 'lab', '192.0.2.1:4433',"
           " 1, 2);");
  assert_int_equal(raw_int(db, "PRAGMA user_version"), 2);
  sqlite3_close(db);

  assert_int_equal(sftd_store_open_sqlite(path, &st, err), 0);
  mk_id(id, 1);
  mk_id(id2, 2);
  /* everything of v2 is kept */
  assert_int_equal(sftd_store_load_session(st, id, &out), 0);
  assert_int_equal(out.state, 3);
  assert_true(out.bytes_done == 40 && out.flags == 7);
  assert_int_equal(sftd_store_load_session(st, id2, &out), 0);
  assert_int_equal(out.direction, SFTD_DIR_RECV);
  assert_int_equal(sftd_store_event_list(st, id, 0, ev, 4, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(ev[0].text, "created");
  assert_string_equal(ev[1].text, "paused");
  assert_true(ev[1].seq == 2);
  memset(&p, 0, sizeof(p));
  assert_int_equal(sftd_store_peer_get(st, p.fp, &p), 0);
  assert_string_equal(p.label, "lab");
  /* the new table works, with its cascade (foreign keys are on) */
  assert_no_request(st, id);
  assert_int_equal(sftd_store_put_request(st, id, "{\"a\":1}", 7, 0), 0);
  assert_int_equal(sftd_store_put_request(st, id2, "{}", 2, 0), 0);
  assert_request(st, id, "{\"a\":1}", 7);
  assert_int_equal(sftd_store_delete_session(st, id2), 0);
  assert_no_request(st, id2);
  assert_int_equal(sftd_store_integrity(st), 0);
  sftd_store_close(st);

  db = raw_open(path);
  assert_int_equal(raw_int(db, "PRAGMA user_version"), 3);
  assert_int_equal(raw_int(db, "SELECT count(*) FROM requests"), 1);
  /* the requests table references sessions with ON DELETE CASCADE */
  assert_int_equal(raw_int(db, "SELECT count(*) FROM pragma_foreign_key_list("
                               "'requests') WHERE \"table\"='sessions' AND "
                               "on_delete='CASCADE'"),
                   1);
  sqlite3_close(db);
  /* and a reopen of the upgraded file keeps the request */
  assert_int_equal(sftd_store_open_sqlite(path, &st, err), 0);
  assert_request(st, id, "{\"a\":1}", 7);
  sftd_store_close(st);
}

/* Requests survive a reopen; a stored body that breaks the rules (raw SQL
 * through a second handle) is MALFORMED, never copied. */
static void t_sql_requests(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session a, b;
  const size_t MAX = SFTD_STORE_REQUEST_MAX;
  uint8_t *big = mk_blob(MAX, 3);
  void *got = (void *)(uintptr_t)1;
  size_t n = 99;
  mk_session(&a, 1, 2, 1, 1);
  mk_session(&b, 2, 2, 2, 2);
  assert_int_equal(sftd_store_save_session(fx->st, &a, 0), 0);
  assert_int_equal(sftd_store_save_session(fx->st, &b, 0), 0);
  assert_int_equal(sftd_store_put_request(fx->st, a.id, big, MAX, 0), 0);
  assert_int_equal(
      sftd_store_put_request(fx->st, b.id, NULL, 0, SFTD_STORE_SYNC_FULL), 0);
  reopen(fx);
  assert_request(fx->st, a.id, big, MAX);
  assert_request(fx->st, b.id, NULL, 0);

  sqlite3 *db = raw_open(fx->path);
  /* the empty one is stored, as a BLOB */
  assert_int_equal(raw_int(db, "SELECT count(*) FROM requests WHERE "
                               "typeof(body)='blob' AND length(body)=0"),
                   1);
  static const char *const bad[] = {
      "UPDATE requests SET body=zeroblob(1048577) WHERE length(body)=0",
      "UPDATE requests SET body='{\"text\":1}' WHERE length(body)=0",
      "UPDATE requests SET body=42 WHERE length(body)=0",
      "UPDATE requests SET body=4.5 WHERE length(body)=0",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
    raw_exec(db, bad[i]);
    got = (void *)(uintptr_t)1;
    n = 99;
    assert_int_equal(sftd_store_get_request(fx->st, b.id, &got, &n),
                     SFT_ERR_MALFORMED);
    assert_null(got);
    assert_int_equal(n, 0);
    assert_non_null(strstr(sftd_store_errmsg(fx->st), "request"));
    /* the other session's request is unaffected; a put repairs it */
    assert_request(fx->st, a.id, big, MAX);
    assert_int_equal(sftd_store_put_request(fx->st, b.id, NULL, 0, 0), 0);
    assert_request(fx->st, b.id, NULL, 0);
  }
  /* exactly MAX written by raw SQL is fine, MAX + 1 is not */
  raw_exec(db, "UPDATE requests SET body=zeroblob(1048576) WHERE "
               "length(body)=0");
  assert_int_equal(sftd_store_get_request(fx->st, b.id, &got, &n), 0);
  assert_int_equal(n, MAX);
  const uint8_t *g = got;
  assert_true(g[0] == 0 && g[MAX / 2] == 0 && g[MAX - 1] == 0);
  free(got);
  sqlite3_close(db);
  free(big);
}

/* ---- fsync counting VFS -------------------------------------------------- */

/* The unix VFS uses different io_methods for the database (locking) and
 * for the WAL/journal (no locking): one wrapped copy per methods set. */
static sqlite3_vfs *real_vfs;
static sqlite3_vfs count_vfs;
static int sync_count;
#define NSLOT 4
static const sqlite3_io_methods *real_methods[NSLOT];
static sqlite3_io_methods count_methods[NSLOT];

#define C_SYNC(i)                                                              \
  static int c_sync##i(sqlite3_file *f, int flags) {                           \
    sync_count++;                                                              \
    return real_methods[i]->xSync(f, flags);                                   \
  }
C_SYNC(0)
C_SYNC(1)
C_SYNC(2)
C_SYNC(3)
static int (*const c_syncs[NSLOT])(sqlite3_file *, int) = {c_sync0, c_sync1,
                                                           c_sync2, c_sync3};

static int c_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
                  int flags, int *out) {
  (void)vfs;
  int rc = real_vfs->xOpen(real_vfs, name, f, flags, out);
  if (rc != SQLITE_OK || !f->pMethods)
    return rc;
  for (int i = 0; i < NSLOT; i++) {
    if (!real_methods[i]) {
      real_methods[i] = f->pMethods;
      count_methods[i] = *f->pMethods;
      count_methods[i].xSync = c_syncs[i];
    }
    if (real_methods[i] == f->pMethods) {
      f->pMethods = &count_methods[i];
      return rc;
    }
  }
  fail_msg("more than %d io_methods sets", NSLOT);
  return rc;
}

static void t_sql_sync_counts(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session s;
  char path[160];
  struct sftd_store *st;
  real_vfs = sqlite3_vfs_find(NULL);
  count_vfs = *real_vfs;
  count_vfs.zName = "sft-count-sync";
  count_vfs.pNext = NULL;
  count_vfs.xOpen = c_open;
  assert_int_equal(sqlite3_vfs_register(&count_vfs, 1), SQLITE_OK);
  snprintf(path, sizeof(path), "%s/sync.db", fx->dir);
  assert_int_equal(sftd_store_open_sqlite(path, &st, NULL), 0);
  mk_session(&s, 1, 2, 1, 1);
  assert_int_equal(sftd_store_save_session(st, &s, 0), 0); /* warm up */
  struct sftd_store_file *f = mk_file(s.id, 0, 64 * 65536);
  assert_int_equal(sftd_store_save_file(st, f, 0), 0);
  uint8_t bm[8] = {0};
  struct sftd_store_bitmap_update u = {
      .file_id = 0, .bitmap = bm, .bitmap_len = 8};
  memcpy(u.session_id, s.id, SFTD_STORE_ID_LEN);

  sync_count = 0;
  for (int i = 0; i < 20; i++) {
    bm[i % 8] |= (uint8_t)(1u << (i % 8));
    u.bytes_done = (uint64_t)i;
    assert_int_equal(sftd_store_update_bitmaps(st, &u, 1), 0);
  }
  assert_int_equal(sftd_store_save_session(st, &s, 0), 0);
  int normal = sync_count;

  sync_count = 0;
  s.state = 5;
  assert_int_equal(sftd_store_save_session(st, &s, SFTD_STORE_SYNC_FULL), 0);
  int full = sync_count;

  /* (each commit must change something: SQLite writes no WAL frame, and
   * so syncs nothing, for a row rewritten with identical content) */
  sync_count = 0;
  assert_int_equal(sftd_store_begin(st, SFTD_STORE_SYNC_FULL), 0);
  u.bytes_done = 100;
  assert_int_equal(sftd_store_update_bitmaps(st, &u, 1), 0);
  assert_int_equal(sftd_store_commit(st), 0);
  int full_batch = sync_count;

  sync_count = 0; /* back to NORMAL afterwards */
  u.bytes_done = 101;
  assert_int_equal(sftd_store_update_bitmaps(st, &u, 1), 0);
  s.state = 4;
  assert_int_equal(sftd_store_save_session(st, &s, 0), 0);
  int after = sync_count;

  /* a request put is a write like the others: NORMAL does not sync, a
   * milestone put does */
  sync_count = 0;
  assert_int_equal(sftd_store_put_request(st, s.id, "{\"v\":1}", 7, 0), 0);
  int req_normal = sync_count;
  sync_count = 0;
  assert_int_equal(
      sftd_store_put_request(st, s.id, "{\"v\":2}", 7, SFTD_STORE_SYNC_FULL),
      0);
  int req_full = sync_count;

  sftd_store_close(st);
  sqlite3_vfs_unregister(&count_vfs);
  sqlite3_vfs_register(real_vfs, 1);
  fprintf(stderr,
          "store-sync: fsyncs: 21 NORMAL commits %d, FULL save %d, FULL "
          "batch %d, NORMAL after %d, request NORMAL %d FULL %d\n",
          normal, full, full_batch, after, req_normal, req_full);
  assert_int_equal(normal, 0);
  assert_true(full >= 1);
  assert_true(full_batch >= 1);
  assert_int_equal(after, 0);
  assert_int_equal(req_normal, 0);
  assert_true(req_full >= 1);
  free(f);
}

/* ---- crash test ---------------------------------------------------------- */

#define CRASH_FILES 4
#define CRASH_CHUNKS 64 /* 8-byte bitmaps */

static void crash_child(const char *path, unsigned iter, int wfd) {
  struct sftd_store *st;
  struct sftd_store_session s;
  struct sftd_store_bitmap_update u[CRASH_FILES];
  uint8_t bm[CRASH_FILES][8];
  uint32_t msg = 0;
  if (sftd_store_open_sqlite(path, &st, NULL) != 0)
    _exit(2);
  /* milestone: session created, with its files, in one FULL batch */
  mk_session(&s, 100 + iter, 2, iter, iter);
  if (sftd_store_begin(st, SFTD_STORE_SYNC_FULL) ||
      sftd_store_save_session(st, &s, 0))
    _exit(3);
  for (uint32_t i = 0; i < CRASH_FILES; i++) {
    struct sftd_store_file *f = mk_file(s.id, i, CRASH_CHUNKS * 65536);
    if (sftd_store_save_file(st, f, 0))
      _exit(4);
    free(f);
  }
  if (sftd_store_commit(st) || write(wfd, &msg, 4) != 4)
    _exit(5);
  /* batches: batch k writes file k % F (bytes_done = k, bitmap = k LE) and
   * file (k+1) % F, then reports k; at most 200000 batches. */
  for (uint32_t k = 1; k < 200000; k++) {
    for (int j = 0; j < 2; j++) {
      uint32_t fid = (k + (uint32_t)j) % CRASH_FILES;
      uint64_t v = j == 0 ? k : 0;
      if (j == 1) { /* the neighbour keeps its value: re-write it as is */
        uint64_t last = k >= 3 ? k - 3 : 0; /* latest k' < k with k'%F==fid */
        while (last > 0 && last % CRASH_FILES != fid)
          last--;
        v = last;
      }
      memcpy(u[j].session_id, s.id, SFTD_STORE_ID_LEN);
      u[j].file_id = fid;
      for (int b = 0; b < 8; b++)
        bm[j][b] = (uint8_t)(v >> (8 * b));
      u[j].bitmap = bm[j];
      u[j].bitmap_len = 8;
      u[j].bytes_done = v;
    }
    if (sftd_store_update_bitmaps(st, u, 2) != 0)
      _exit(6);
    if (write(wfd, &k, 4) != 4)
      _exit(7);
  }
  _exit(0);
}

static void t_sql_crash(void **state) {
  struct fx *fx = *state;
  char wal[160];
  unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
  srand(seed);
  fprintf(stderr, "store-crash: seed %u\n", seed);
  sftd_store_close(fx->st); /* the children own the file while they run */
  fx->st = NULL;
  for (unsigned iter = 0; iter < 6; iter++) {
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(pfd[0]);
      crash_child(fx->path, iter, pfd[1]);
    }
    close(pfd[1]);
    uint32_t target = 1 + (uint32_t)rand() % (iter < 2 ? 3 : 400), m;
    int64_t last = -1; /* -1: nothing reported; 0: milestone */
    while (read(pfd[0], &m, 4) == 4) {
      last = m;
      if (m >= target)
        break;
    }
    /* a random extra delay so the kill lands anywhere in a batch */
    for (volatile unsigned spin = (unsigned)rand() % 20000; spin > 0; spin--)
      ;
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    while (read(pfd[0], &m, 4) == 4) /* reports written before the kill */
      last = m;
    close(pfd[0]);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_true(last >= (int64_t)target);

    assert_int_equal(open_store(fx), 0);
    assert_int_equal(sftd_store_integrity(fx->st), 0);
    uint8_t id[SFTD_STORE_ID_LEN];
    struct sftd_store_session s;
    mk_id(id, 100 + iter);
    assert_int_equal(sftd_store_load_session(fx->st, id, &s),
                     0); /* milestone */
    assert_int_equal(s.state, 2);
    for (uint32_t fid = 0; fid < CRASH_FILES; fid++) {
      struct sftd_store_file f;
      assert_int_equal(sftd_store_load_file(fx->st, id, fid, &f), 0);
      uint64_t want = (uint64_t)last; /* latest reported k with k%F==fid */
      while (want > 0 && want % CRASH_FILES != fid)
        want--;
      /* at most one unreported batch (committed, killed before the
       * report) may be present beyond the reported ones */
      assert_true(f.bytes_done >= want);
      assert_true(f.bytes_done <= (uint64_t)last + 1);
      assert_true(f.bytes_done % CRASH_FILES == fid || f.bytes_done == 0);
      if (f.bitmap_len == 0) { /* no batch has touched this file yet */
        assert_true(f.bytes_done == 0 && want == 0);
      } else {
        uint64_t v = 0;
        assert_int_equal(f.bitmap_len, 8);
        for (int b = 0; b < 8; b++)
          v |= (uint64_t)f.bitmap[b] << (8 * b);
        assert_true(v == f.bytes_done); /* one row, one batch: consistent */
      }
      sftd_store_file_clear(&f);
    }
    if (iter > 0) { /* earlier sessions survived later crashes */
      bool ex;
      mk_id(id, 100 + iter - 1);
      assert_int_equal(sftd_store_session_exists(fx->st, id, &ex), 0);
      assert_true(ex);
    }
    sftd_store_close(fx->st);
    fx->st = NULL;
    fprintf(stderr, "store-crash: iteration %u killed after batch %lld\n", iter,
            (long long)last);
  }
  snprintf(wal, sizeof(wal), "%s-wal", fx->path);
  assert_int_equal(file_mode(fx->path), 0600);
  assert_int_equal(open_store(fx), 0);
  assert_int_equal(file_mode(wal), 0600);
}

/* ---- commit cost (informational) ----------------------------------------- */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void t_sql_commit_cost(void **state) {
  struct fx *fx = *state;
  struct sftd_store_session s;
  enum { FILES = 64, BATCHES = 200, MILESTONES = 100 };
  static uint8_t bm[FILES][128]; /* 1024 chunks per file */
  struct sftd_store_bitmap_update u[FILES];
  mk_session(&s, 1, 2, 1, 1);
  assert_int_equal(sftd_store_save_session(fx->st, &s, 0), 0);
  for (uint32_t i = 0; i < FILES; i++) {
    struct sftd_store_file *f = mk_file(s.id, i, 1024 * 65536);
    assert_int_equal(sftd_store_save_file(fx->st, f, 0), 0);
    free(f);
    memcpy(u[i].session_id, s.id, SFTD_STORE_ID_LEN);
    u[i].file_id = i;
    u[i].bitmap = bm[i];
    u[i].bitmap_len = sizeof(bm[i]);
  }
  double t0 = now_s();
  for (int b = 0; b < BATCHES; b++) {
    for (int i = 0; i < FILES; i++) {
      bm[i][b % 128] |= (uint8_t)(1u << (b % 8));
      u[i].bytes_done = (uint64_t)b;
    }
    assert_int_equal(sftd_store_update_bitmaps(fx->st, u, FILES), 0);
  }
  double t1 = now_s();
  for (int b = 0; b < BATCHES; b++) {
    u[0].bytes_done = (uint64_t)b;
    assert_int_equal(sftd_store_update_bitmaps(fx->st, u, 1), 0);
  }
  double t2 = now_s();
  for (int i = 0; i < MILESTONES; i++) {
    s.updated_ns = (uint64_t)i;
    assert_int_equal(sftd_store_save_session(fx->st, &s, SFTD_STORE_SYNC_FULL),
                     0);
  }
  double t3 = now_s();
  /* a 64 GiB file in 64 KiB chunks: 1 Mi chunks, a 128 KiB bitmap */
  struct sftd_store_file *big = mk_file(s.id, 1000, (uint64_t)1 << 36);
  assert_int_equal(sftd_store_save_file(fx->st, big, 0), 0);
  uint8_t *bbm = calloc(1, 128 * 1024);
  assert_non_null(bbm);
  struct sftd_store_bitmap_update bu = {
      .file_id = 1000, .bitmap = bbm, .bitmap_len = 128 * 1024};
  memcpy(bu.session_id, s.id, SFTD_STORE_ID_LEN);
  for (int b = 0; b < BATCHES; b++) {
    bbm[(size_t)b * 600] = 0xff;
    bu.bytes_done = (uint64_t)b;
    assert_int_equal(sftd_store_update_bitmaps(fx->st, &bu, 1), 0);
  }
  double t4 = now_s();
  fprintf(stderr,
          "store-bench: batch_64_files_us=%.1f batch_1_file_us=%.1f "
          "milestone_full_us=%.1f batch_128KiB_bitmap_us=%.1f\n",
          (t1 - t0) / BATCHES * 1e6, (t2 - t1) / BATCHES * 1e6,
          (t3 - t2) / MILESTONES * 1e6, (t4 - t3) / BATCHES * 1e6);
  free(bbm);
  free(big);
}

/* ---- main ---------------------------------------------------------------- */

#define BOTH(setup)                                                            \
  cmocka_unit_test_setup_teardown(t_session_roundtrip, setup, teardown),       \
      cmocka_unit_test_setup_teardown(t_session_bounds, setup, teardown),      \
      cmocka_unit_test_setup_teardown(t_list_filters, setup, teardown),        \
      cmocka_unit_test_setup_teardown(t_delete_cascade, setup, teardown),      \
      cmocka_unit_test_setup_teardown(t_cleanup, setup, teardown),             \
      cmocka_unit_test_setup_teardown(t_files, setup, teardown),               \
      cmocka_unit_test_setup_teardown(t_file_bounds, setup, teardown),         \
      cmocka_unit_test_setup_teardown(t_bitmap_batch, setup, teardown),        \
      cmocka_unit_test_setup_teardown(t_batches, setup, teardown),             \
      cmocka_unit_test_setup_teardown(t_peers, setup, teardown),               \
      cmocka_unit_test_setup_teardown(t_events, setup, teardown),              \
      cmocka_unit_test_setup_teardown(t_integrity_ok, setup, teardown),        \
      cmocka_unit_test_setup_teardown(t_requests, setup, teardown),            \
      cmocka_unit_test_setup_teardown(t_request_lifecycle, setup, teardown)

int main(void) {
  const struct CMUnitTest mem[] = {BOTH(setup_mem)};
  const struct CMUnitTest sql[] = {
      BOTH(setup_sql),
      cmocka_unit_test_setup_teardown(t_sql_persist, setup_sql, teardown),
      cmocka_unit_test_setup_teardown(t_sql_corrupt, setup_sql, teardown),
      cmocka_unit_test_setup_teardown(t_sql_migrate, setup_sql, teardown),
      cmocka_unit_test_setup_teardown(t_sql_migrate_v2, setup_sql, teardown),
      cmocka_unit_test_setup_teardown(t_sql_requests, setup_sql, teardown),
      cmocka_unit_test_setup_teardown(t_sql_newer_refused, setup_sql, teardown),
      cmocka_unit_test_setup_teardown(t_sql_integrity_damaged, setup_sql,
                                      teardown),
      cmocka_unit_test_setup_teardown(t_sql_sync_counts, setup_sql, teardown),
      cmocka_unit_test_setup_teardown(t_sql_crash, setup_sql, teardown),
      cmocka_unit_test_setup_teardown(t_sql_commit_cost, setup_sql, teardown),
  };
  int rc = cmocka_run_group_tests_name("store_mem", mem, NULL, NULL);
  rc += cmocka_run_group_tests_name("store_sqlite", sql, NULL, NULL);
  return rc;
}
