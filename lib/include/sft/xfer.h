/*
 * sft transfer machines (lib/xfer): the seed's transfer state machine, and
 * the pure sender and receiver machines of ONE file transfer.
 *
 * Sans-I/O, in the shape of ngtcp2: inputs are plain values (indices,
 * ranges, bitmaps, digests) plus the time |now| in nanoseconds on any
 * monotonic clock (non-decreasing; an earlier value is treated as the
 * latest one seen); outputs come out of a poll function one action at a
 * time, and an expiry function tells when to poll again. Nothing here knows
 * the wire encoding (sft/proto.h): the daemon maps messages to calls and
 * actions to messages, disk reads and writes. Contracts and the daemon's
 * duties per action: docs/internals/xfer.md.
 *
 * Memory: sft_xsend_new / sft_xrecv_new make ONE allocation, sized by the
 * chunk count (<= SFT_MAX_CHUNKS; about 40 bytes per chunk); nothing else
 * allocates. Objects are not thread-safe (the loop thread owns them).
 *
 * Bitmaps (have-bitmaps, the receiver's persisted bitmap): chunk i is bit
 * (i % 8) (value 1 << (i % 8)) of byte i / 8, the ACCEPT convention. An
 * input bitmap may be shorter than (count + 7) / 8 bytes (missing bytes are
 * zero); a longer one is SFT_ERR_TOO_LARGE and a bit set at or beyond the
 * chunk count is SFT_ERR_RANGE.
 *
 * Range lists (ACK, NEED hints): closed ranges [first, last], at most
 * SFT_MAX_ACK_RANGES (else SFT_ERR_TOO_LARGE), each first <= last < chunk
 * count, sorted and non-overlapping (adjacent allowed); anything else is
 * SFT_ERR_RANGE. A rejected list changes nothing.
 *
 * FEC (Reed-Solomon stripes, docs/internals/xfer.md "FEC"): with
 * params.stripe_k > 0 and stripe_m > 0 the machines know the manifest's
 * stripes: stripe s = data chunks [s*k, min((s+1)*k, count)), the last one
 * may be short; parity shard p < m of stripe s is identified by (s, p).
 * Every shard of a stripe is coded at the file's chunk_size: data chunks
 * (the short last one too) are zero-padded to it, and the k - len missing
 * data shards of a short stripe are all-zero shards. A parity payload is
 * exactly chunk_size bytes. The machines never hold payloads: the daemon
 * encodes (ENCODE_PARITY), keeps received parity in memory (KEEP verdicts)
 * and decodes (REBUILD) with lib/fec. Zero stripe params = no FEC, the
 * behaviour of the machines without it.
 */
#ifndef SFT_XFER_H
#define SFT_XFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sft/err.h"
#include "sft/fec.h"
#include "sft/hash.h"
#include "sft/limits.h"

/* ---- the seed's transfer state machine ---------------------------------- */

enum sft_xfer_state {
  SFT_XS_IDLE = 0,
  SFT_XS_PREPARING,
  SFT_XS_TRANSFERRING,
  SFT_XS_PAUSED,
  SFT_XS_COMPLETING,
  SFT_XS_COMPLETED, /* terminal */
  SFT_XS_FAILED,    /* terminal */
};
#define SFT_XS_COUNT 7

enum sft_xfer_event {
  SFT_XE_START = 0, /* Idle->Preparing; Preparing->Transferring
                       (second phase: the offer was accepted) */
  SFT_XE_CHUNK_COMPLETED,
  SFT_XE_CHUNK_FAILED,
  SFT_XE_PAUSE,
  SFT_XE_RESUME,
  SFT_XE_CANCEL,            /* by a user: Failed, reason CANCELLED */
  SFT_XE_NETWORK_FAILURE,   /* self-loop; the machines keep a flag */
  SFT_XE_NETWORK_RECOVERED, /* self-loop; the machines clear the flag */
  SFT_XE_TRANSFER_COMPLETE, /* Transferring->Completing (all chunks in);
                               Completing->Completed (root verified) */
  SFT_XE_FAIL,              /* internal (not in the seed): a fatal error
                               (retries, digest, I/O...) -> Failed */
};
#define SFT_XE_COUNT 10

/* Applies |ev| to |*st| per the table in docs/internals/xfer.md.
 * 0: *st updated. SFT_ERR_STATE: no transition for (state, event) (every
 * event in Completed/Failed), *st unchanged. SFT_ERR_INVAL: NULL or a value
 * outside the enums, *st unchanged. */
int sft_xfer_fsm_apply(enum sft_xfer_state *st, enum sft_xfer_event ev);

/* "Idle", "Preparing", ... / "Start", "ChunkCompleted", ... (the seed's
 * spelling, for logs and JSON). "Unknown" for a value outside the enum. */
const char *sft_xfer_state_name(enum sft_xfer_state st);
const char *sft_xfer_event_name(enum sft_xfer_event ev);

/* Completed or Failed. */
bool sft_xfer_state_terminal(enum sft_xfer_state st);

/* ---- shared value types and checks -------------------------------------- */

/* Closed range of data chunk indices (same layout as proto's ack range). */
struct sft_xfer_range {
  uint64_t first;
  uint64_t last;
};

/* Checks a range list against |count| chunks (rules above). 0, or
 * SFT_ERR_INVAL (NULL with n > 0), SFT_ERR_TOO_LARGE, SFT_ERR_RANGE. */
int sft_xfer_ranges_check(const struct sft_xfer_range *r, size_t n,
                          uint64_t count);

/* Checks a have-bitmap of |len| bytes against |count| chunks. 0, or
 * SFT_ERR_INVAL (NULL with len > 0), SFT_ERR_TOO_LARGE, SFT_ERR_RANGE. */
int sft_xfer_bitmap_check(const uint8_t *bm, size_t len, uint64_t count);

/* Validates the file geometry shared by both machines: size <=
 * SFT_MAX_FILE_SIZE, chunk_size in [SFT_CHUNK_SIZE_MIN, SFT_CHUNK_SIZE_MAX]
 * and chunk count <= SFT_MAX_CHUNKS (SFT_ERR_RANGE), algo known
 * (SFT_ERR_INVAL). */
int sft_xfer_geometry_check(uint64_t size, uint32_t chunk_size,
                            enum sft_hash_algo algo);

/* ---- sender ------------------------------------------------------------- */

#define SFT_XSEND_MAX_INFLIGHT 65536u
#define SFT_XFER_MAX_RETRIES 255u

struct sft_xsend_params {
  uint32_t max_inflight;      /* 1..SFT_XSEND_MAX_INFLIGHT: outstanding
                                 READ_CHUNK actions (sent, not yet acked; or
                                 hash-only, not yet read) */
  uint64_t resend_timeout_ns; /* > 0: an unacked chunk is sent again after */
  uint32_t max_retries;       /* 0..SFT_XFER_MAX_RETRIES resends per chunk;
                                 one more timeout -> Failed(RETRIES) */
  uint32_t stripe_k; /* manifest's data chunks per stripe; 0 = no stripes
                        (then stripe_m must be 0) */
  uint32_t stripe_m; /* parity shards per stripe; k + m <= SFT_MAX_STRIPE */
};

/* max_inflight 64, resend_timeout 2 s, max_retries 8, no stripes. */
void sft_xsend_params_default(struct sft_xsend_params *p);

enum sft_xsend_action_type {
  SFT_XSEND_NONE = 0,      /* nothing now; poll again at .expiry */
  SFT_XSEND_READ_CHUNK,    /* read chunk .index (.offset, .len), hash it,
                              call sft_xsend_chunk_read(), then, if .send,
                              send it (header with the digest + payload) */
  SFT_XSEND_SEND_COMPLETE, /* send COMPLETE(.root); may repeat. First sent
                              as soon as every digest is known (chunks may
                              still be unacked): the receiver holds the root
                              and checks it when its last chunk is in */
  SFT_XSEND_DONE,          /* once: the receiver confirmed the root */
  SFT_XSEND_FAILED,        /* once: failed with .reason (SFT_ERR_*) */
  SFT_XSEND_ENCODE_PARITY, /* read the data of stripe .stripe (.nchunks
                              chunks from chunk .index at byte .offset),
                              pad every shard to .len (= chunk_size) bytes,
                              sft_fec_encode, then send parity shards
                              .parity_first .. +.parity_count-1 (header
                              PARITY, index = stripe, parity_index = p,
                              digest = hash of the .len-byte payload).
                              Not acked, not retried, no inflight slot. */
  SFT_XSEND_CANCEL_CHUNK,  /* chunk .index was acked (or the root
                              confirmed) while still in flight in a stripe
                              that had parity sent (it may have been
                              rebuilt), or a merged ACCEPT says the receiver
                              holds it: reset its stream if one is still
                              open, else ignore. Comes before DONE. */
};

struct sft_xsend_action {
  enum sft_xsend_action_type type;
  uint64_t index;   /* READ_CHUNK */
  uint64_t offset;  /* READ_CHUNK: byte offset of the chunk */
  uint32_t len;     /* READ_CHUNK: chunk length */
  bool send;        /* READ_CHUNK: false = hash only (the receiver holds the
                       chunk; its digest is needed for the root) */
  uint32_t attempt; /* READ_CHUNK: 0 first send, n = n-th resend */
  uint8_t root[SFT_HASH_LEN]; /* SEND_COMPLETE */
  int reason;                 /* FAILED */
  uint64_t expiry;            /* NONE: next deadline (UINT64_MAX: none) */
  uint64_t stripe;            /* ENCODE_PARITY */
  uint32_t nchunks;           /* ENCODE_PARITY: data chunks in the stripe */
  uint32_t parity_first;      /* ENCODE_PARITY: first parity index */
  uint32_t parity_count;      /* ENCODE_PARITY: shards to send, >= 1 */
};

struct sft_xsend_stats {
  uint64_t chunks_total, chunks_acked; /* acked includes the have-bitmap */
  uint64_t bytes_total, bytes_acked;
  uint64_t inflight;      /* outstanding READ_CHUNK (send or hash-only) */
  uint64_t sends;         /* READ_CHUNK with send, first attempts */
  uint64_t resends;       /* READ_CHUNK with send, after a timeout/hint */
  uint64_t hash_reads;    /* READ_CHUNK hash-only */
  uint64_t parity_shards; /* parity shards asked by ENCODE_PARITY */
  uint64_t need_parity;   /* ... of which to answer a NEED */
  uint64_t need_resends;  /* data chunks made due by a NEED */
  uint64_t refetches;     /* stripes sent again whole (count > len) */
  uint64_t cancels;       /* CANCEL_CHUNK actions */
};

struct sft_xsend;

/* Creates a sender in Idle for a file of |size| bytes. |p| NULL: defaults.
 * *out NULL on failure. Errors: SFT_ERR_INVAL (out NULL, bad params, bad
 * algo), SFT_ERR_RANGE (geometry), SFT_ERR_NOMEM. Free with _del. */
int sft_xsend_new(struct sft_xsend **out, uint64_t size, uint32_t chunk_size,
                  enum sft_hash_algo algo, const struct sft_xsend_params *p);
void sft_xsend_del(struct sft_xsend *s); /* NULL ok */

/* Idle -> Preparing (Start). The daemon sends OFFER. SFT_ERR_STATE. */
int sft_xsend_start(struct sft_xsend *s, uint64_t now);

/* Preparing -> Transferring before the receiver's ACCEPT (a fresh file:
 * its chunks go while the answer is on its way, a round trip sooner). The
 * first on_accept that follows merges instead of re-accepting: chunks it
 * holds are acked (CANCEL_CHUNK if in flight), nothing else changes; if
 * the file is refused, the caller drops the machine. SFT_ERR_STATE. */
int sft_xsend_start_early(struct sft_xsend *s, uint64_t now);

/* The receiver's ACCEPT with its have-bitmap: held chunks count as acked
 * and are never sent (their digests are obtained by hash-only reads).
 * In Preparing: -> Transferring (Start, second phase). After start_early:
 * merged (above). In Transferring,
 * Paused or Completing: a re-accept after a reconnect; the bitmap becomes
 * the truth (acked chunks absent from it are sent again, in-flight chunks
 * not in it are sent again at once); Completing with chunks missing goes
 * back to Transferring (ChunkFailed). Errors: bitmap errors (above),
 * SFT_ERR_STATE; state unchanged on error. */
int sft_xsend_on_accept(struct sft_xsend *s, uint64_t now, const uint8_t *have,
                        size_t have_len);

/* The daemon read and hashed chunk |index| (answer to READ_CHUNK, or
 * supplied on its own, e.g. from a stored manifest). Call it BEFORE sending
 * the chunk. Records the digest for the root; completes a hash-only read.
 * Errors: SFT_ERR_INVAL (NULL), SFT_ERR_RANGE (index), SFT_ERR_STATE
 * (Idle or terminal), SFT_ERR_DIGEST when a digest recorded earlier for
 * |index| differs (the source changed): the transfer goes to Failed. */
int sft_xsend_chunk_read(struct sft_xsend *s, uint64_t now, uint64_t index,
                         const uint8_t digest[SFT_HASH_LEN]);

/* ACK ranges from the receiver. Idempotent: chunks already acked are not
 * counted twice. Range-list errors (above); SFT_ERR_STATE outside
 * Transferring/Paused/Completing. Nothing changes on error. */
int sft_xsend_on_ack(struct sft_xsend *s, uint64_t now,
                     const struct sft_xfer_range *r, size_t n);

/* Optional loss hint ("these are missing"): in-flight chunks in the ranges
 * become due for resend now (each counts as a retry). Acked or not yet sent
 * chunks are ignored. Errors as on_ack. */
int sft_xsend_on_need(struct sft_xsend *s, uint64_t now,
                      const struct sft_xfer_range *r, size_t n);

/* FEC: proactive parity shards per stripe, 0..stripe_m (SFT_ERR_RANGE
 * above; SFT_ERR_INVAL for NULL). Any time; 0 at creation. A stripe gets
 * ENCODE_PARITY(first = shards already sent, count = m_pro minus those)
 * once, when the digest of its last data chunk is recorded (chunk_read)
 * while m_pro > 0 and some data chunk of it is not acked; stripes read
 * while m_pro was 0 are not revisited. */
int sft_xsend_set_parity(struct sft_xsend *s, uint32_t m_pro);

/* FEC: the receiver's NEED(stripe, count): "any |count| more chunks of
 * |stripe|". Up to |count| parity shards not sent before (since the last
 * re-accept) are queued as ENCODE_PARITY; for the rest, unacked chunks of
 * the stripe in flight become due now (each counts as a retry; unacked
 * chunks not in flight are sent anyway). count > the stripe's data chunks
 * means "I lost chunks I had acked" (a rebuild rolled back after a root
 * mismatch): every chunk of the stripe is un-acked and sent again, no
 * parity (Completing -> Transferring). Errors: SFT_ERR_INVAL (NULL),
 * SFT_ERR_STATE (no stripes configured, or not Transferring/Paused/
 * Completing), SFT_ERR_RANGE (stripe >= stripe count, count 0 or >
 * SFT_MAX_STRIPE). Nothing changes on error. */
int sft_xsend_on_need_stripe(struct sft_xsend *s, uint64_t now, uint64_t stripe,
                             uint32_t count);

/* Pause: Transferring -> Paused; nothing is read or sent while paused
 * (acks are still taken). Resume: Paused -> Transferring; in-flight chunks
 * get a fresh timeout from |now|. SFT_ERR_STATE otherwise. */
int sft_xsend_pause(struct sft_xsend *s, uint64_t now);
int sft_xsend_resume(struct sft_xsend *s, uint64_t now);

/* Cancel (user): any non-terminal state -> Failed, reason
 * SFT_ERR_CANCELLED. Abort: same with |reason| (a negative SFT_ERR_*, else
 * SFT_ERR_INVAL), for the daemon's fatal errors (I/O, peer ERROR...).
 * SFT_ERR_STATE in a terminal state. */
int sft_xsend_cancel(struct sft_xsend *s, uint64_t now);
int sft_xsend_abort(struct sft_xsend *s, uint64_t now, int reason);

/* Network down / back (Preparing..Completing; SFT_ERR_STATE otherwise).
 * While down nothing is produced and no timeout counts. Recovered:
 * in-flight chunks get a fresh timeout, COMPLETE is re-sent at once.
 * Transferring with the root known: the early COMPLETE goes again.
 * Both are idempotent. */
int sft_xsend_on_network_failure(struct sft_xsend *s, uint64_t now);
int sft_xsend_on_network_recovered(struct sft_xsend *s, uint64_t now);

/* The control messages sent so far may be lost (the link that carried them
 * is gone; chunks on other links are not affected, nor their deadlines):
 * COMPLETE goes again, at once in Completing, and in Transferring/Paused if
 * it went early. SFT_ERR_STATE in other states. */
int sft_xsend_on_control_lost(struct sft_xsend *s, uint64_t now);

/* The receiver's COMPLETE echo. Completing: root equal -> Completed
 * (TransferComplete), else Failed and SFT_ERR_DIGEST. Completed with the
 * same root: 0 (duplicate). Transferring after a root was computed (a FEC
 * refetch sent us back) with the same root: the receiver verified every
 * chunk before our last ACKs arrived -> all acked, Completed. SFT_ERR_STATE
 * otherwise. */
int sft_xsend_on_complete_confirm(struct sft_xsend *s, uint64_t now,
                                  const uint8_t root[SFT_HASH_LEN]);

/* Next action (handles timers too: this is the timer entry point). Call
 * until it returns NONE, then again at .expiry or after any input.
 * Order: CANCEL_CHUNK, resends of timed-out chunks, ENCODE_PARITY, new
 * reads (in index order, at most max_inflight outstanding), COMPLETE.
 * COMPLETE goes once when every chunk has a digest (Transferring: early),
 * again when every chunk is acked (Completing) unless the early one went on
 * this connection (then after resend_timeout_ns), and again after a network
 * recovery. Parity never delays COMPLETE. Returns 0, or SFT_ERR_INVAL. */
int sft_xsend_poll(struct sft_xsend *s, uint64_t now,
                   struct sft_xsend_action *a);

/* When to poll next: 0 if an action is ready, UINT64_MAX if nothing is
 * timed (paused, network down, waiting for the peer). */
uint64_t sft_xsend_expiry(const struct sft_xsend *s);

enum sft_xfer_state sft_xsend_state(const struct sft_xsend *s);
int sft_xsend_reason(const struct sft_xsend *s); /* 0 unless Failed */
bool sft_xsend_network_down(const struct sft_xsend *s);
/* True if chunk |index| has been acknowledged (the receiver holds it):
 * a copy read or queued earlier need not go on the wire. False for an
 * index out of range. */
bool sft_xsend_acked(const struct sft_xsend *s, uint64_t index);
void sft_xsend_stats(const struct sft_xsend *s, struct sft_xsend_stats *st);

/* ---- receiver ----------------------------------------------------------- */

struct sft_xrecv_params {
  uint32_t ack_batch;         /* 1..SFT_MAX_ACK_RANGES: ACK once this many
                                 chunks are pending */
  uint64_t ack_delay_ns;      /* ...or this long after the first pending */
  uint32_t max_hash_inflight; /* 1..SFT_XSEND_MAX_INFLIGHT outstanding
                                 HASH_CHUNK actions */
  uint32_t stripe_k; /* FEC (both > 0, k + m <= SFT_MAX_STRIPE) or none  */
  uint32_t stripe_m; /* (both 0; k > 0 with m == 0 also means none) */
  uint32_t max_parity_stripes; /* stripes with parity held at once;
                                  0 = 64, at most SFT_XSEND_MAX_INFLIGHT */
  uint32_t max_rebuilds;       /* REBUILD actions outstanding; 0 = 2, at most
                                  SFT_XSEND_MAX_INFLIGHT */
};

/* ack_batch 32, ack_delay 20 ms, max_hash_inflight 4, no FEC. */
void sft_xrecv_params_default(struct sft_xrecv_params *p);

enum sft_xrecv_action_type {
  SFT_XRECV_NONE = 0,   /* nothing now; poll again at .expiry */
  SFT_XRECV_SEND_ACK,   /* send ACK(.ranges[0..nranges)), sorted, merged;
                           the array is valid until the next call */
  SFT_XRECV_HASH_CHUNK, /* read held chunk .index (.offset, .len) from the
                           part file, hash it, call sft_xrecv_on_hashed() */
  SFT_XRECV_FINALIZE,   /* once: root verified (.root): fsync, rename the
                           part file, then send COMPLETE(.root) back */
  SFT_XRECV_FAILED,     /* once: failed with .reason */
  SFT_XRECV_REBUILD,    /* decode stripe .stripe: shards = k+m pointers of
                           .len (= chunk_size) bytes: data shard i < .nchunks
                           is chunk .index + i (read back from the part file,
                           zero-padded) if bit i of .present is set, else a
                           buffer to rebuild; shards .nchunks..k-1 are zero
                           (set in .present); parity p is bit k + p (the
                           payloads kept). sft_fec_decode(present), then per
                           rebuilt chunk: hash its real length,
                           sft_xrecv_on_rebuilt(). The daemon now owns ALL
                           parity payloads kept for the stripe: free them
                           after the decode. On a decode/I-O error:
                           sft_xrecv_rebuild_failed(). */
  SFT_XRECV_SEND_NEED,  /* send NEED(.stripe, .count) */
};

struct sft_xrecv_action {
  enum sft_xrecv_action_type type;
  const struct sft_xfer_range *ranges; /* SEND_ACK, borrowed */
  size_t nranges;
  uint64_t index, offset; /* HASH_CHUNK */
  uint32_t len;
  uint8_t root[SFT_HASH_LEN];  /* FINALIZE */
  int reason;                  /* FAILED */
  uint64_t expiry;             /* NONE */
  uint64_t stripe;             /* REBUILD, SEND_NEED */
  uint32_t count;              /* SEND_NEED: 1..SFT_MAX_STRIPE */
  uint32_t nchunks;            /* REBUILD: data chunks in the stripe */
  uint32_t nmissing;           /* REBUILD: chunks to rebuild (= parity used) */
  struct sft_fec_mask present; /* REBUILD: shards to read, see above */
};

/* Result of a chunk accepted by sft_xrecv_on_chunk. */
enum sft_xrecv_verdict {
  SFT_XRECV_WRITE = 1,     /* verified and new: pwrite the data at .offset
                              (.len bytes), then call sft_xrecv_on_written */
  SFT_XRECV_DUPLICATE = 2, /* already held: write nothing (it is acked
                              again, in case the earlier ACK was lost) */
  SFT_XRECV_KEEP = 3,      /* parity: verified and useful: keep the payload
                              in memory until REBUILD or release_parity */
  SFT_XRECV_DROP = 4,      /* parity: not needed (stripe complete or being
                              rebuilt, shard already held, enough held,
                              parity table full, rebuilds disabled): free */
};

struct sft_xrecv_chunk {
  enum sft_xrecv_verdict verdict;
  uint64_t index, offset;
  uint32_t len;
  bool release_parity; /* FEC: this chunk completed stripe .stripe, which
                          had parity kept: free those payloads */
  uint64_t stripe;
};

/* Result of a parity shard accepted by sft_xrecv_on_parity*. */
struct sft_xrecv_parity {
  enum sft_xrecv_verdict verdict; /* KEEP or DROP */
  uint64_t stripe;
  uint32_t pidx;
};

struct sft_xrecv_stats {
  uint64_t chunks_total, chunks_done; /* done: verified (incl. resumed) */
  uint64_t bytes_total, bytes_done;
  uint64_t chunks_written; /* bits in the persisted bitmap */
  uint64_t duplicates, digest_failures;
  uint64_t acks_sent, ack_overflows; /* overflow: pending list full */
  uint64_t parity_kept, parity_dropped, parity_digest_failures;
  uint64_t parity_overflows; /* dropped because the parity table was full */
  uint64_t rebuilds;         /* REBUILD actions */
  uint64_t chunks_rebuilt;   /* chunks taken by on_rebuilt (WRITE) */
  uint64_t needs_sent;       /* SEND_NEED actions */
  uint64_t rollbacks;        /* root mismatches undone by refetching */
};

struct sft_xrecv;

/* Creates a receiver in Idle from the OFFER's values, with an optional
 * bitmap of chunks already held verified in the part file (resume; the
 * persisted bitmap): those count as done and written, and are re-hashed
 * through HASH_CHUNK for the root. Errors: SFT_ERR_INVAL, SFT_ERR_RANGE
 * (geometry), bitmap errors, SFT_ERR_NOMEM. *out NULL on failure. */
int sft_xrecv_new(struct sft_xrecv **out, uint64_t size, uint32_t chunk_size,
                  enum sft_hash_algo algo, const uint8_t *have, size_t have_len,
                  const struct sft_xrecv_params *p);
void sft_xrecv_del(struct sft_xrecv *r); /* NULL ok */

/* Start: Idle -> Preparing (the daemon validates the offer, opens the part
 * file). Accepted: Preparing -> Transferring (Start, second phase); the
 * daemon sends ACCEPT with sft_xrecv_bitmap(). SFT_ERR_STATE otherwise. */
int sft_xrecv_start(struct sft_xrecv *r, uint64_t now);
int sft_xrecv_accepted(struct sft_xrecv *r, uint64_t now);

/* A data chunk arrived with the digest from its header. Checks, in order:
 * SFT_ERR_INVAL (NULL data with len > 0, NULL digest or out),
 * SFT_ERR_RANGE (index >= count), SFT_ERR_MALFORMED (len != the chunk's
 * length), SFT_ERR_STATE (not Transferring/Paused/Completing); a held chunk
 * -> 0, DUPLICATE (not hashed, not counted); then the digest of the data
 * with the offer's algorithm: SFT_ERR_DIGEST on mismatch (nothing recorded;
 * the sender will resend); else 0, WRITE, chunk done and queued for ACK.
 * |out| is set only on 0. The data is not retained. */
int sft_xrecv_on_chunk(struct sft_xrecv *r, uint64_t now, uint64_t index,
                       const void *data, size_t len,
                       const uint8_t digest[SFT_HASH_LEN],
                       struct sft_xrecv_chunk *out);

/* The same for a daemon that hashes payloads off the loop thread: |got| is
 * the digest, with the offer's algorithm, of a payload whose length the
 * daemon checked to be sft_chunk_len(size, chunk_size, index) (the machine
 * cannot see it); |digest| is the header's. Same checks and results as
 * on_chunk minus the length check: SFT_ERR_DIGEST if they differ. A
 * DUPLICATE verdict: nothing to write (or a redundant write of the same
 * bytes). */
int sft_xrecv_on_chunk_hashed(struct sft_xrecv *r, uint64_t now, uint64_t index,
                              const uint8_t got[SFT_HASH_LEN],
                              const uint8_t digest[SFT_HASH_LEN],
                              struct sft_xrecv_chunk *out);

/* FEC: a parity shard (header PARITY: index = |stripe|, parity_index =
 * |pidx|) arrived with payload length |len| and the header's |digest|.
 * Checks, in order: SFT_ERR_INVAL (NULL), SFT_ERR_PEER (no FEC for this
 * file: stripe_m == 0), SFT_ERR_RANGE (stripe >= stripe count, pidx >= m),
 * SFT_ERR_MALFORMED (len != chunk_size), SFT_ERR_STATE (not Transferring/
 * Paused/Completing); not needed -> 0, DROP (not hashed); then the digest:
 * SFT_ERR_DIGEST on mismatch (counted, nothing kept); else 0, KEEP.
 * |out| set only on 0. The payload is never retained by the machine. */
int sft_xrecv_on_parity(struct sft_xrecv *r, uint64_t now, uint64_t stripe,
                        uint32_t pidx, const void *data, size_t len,
                        const uint8_t digest[SFT_HASH_LEN],
                        struct sft_xrecv_parity *out);
/* The same with the daemon's digest |got| of the |len|-byte payload. */
int sft_xrecv_on_parity_hashed(struct sft_xrecv *r, uint64_t now,
                               uint64_t stripe, uint32_t pidx, size_t len,
                               const uint8_t got[SFT_HASH_LEN],
                               const uint8_t digest[SFT_HASH_LEN],
                               struct sft_xrecv_parity *out);

/* FEC: chunk |index| was rebuilt by a REBUILD; |digest| is the hash of its
 * real-length bytes (there is no trusted digest: a bad rebuild is caught by
 * the root check, see on_complete). 0 and WRITE (write it, then
 * on_written; acked and counted like a received chunk) or DUPLICATE (the
 * chunk arrived meanwhile: write nothing). SFT_ERR_INVAL, SFT_ERR_RANGE,
 * SFT_ERR_STATE (its stripe is not being rebuilt, or wrong state). */
int sft_xrecv_on_rebuilt(struct sft_xrecv *r, uint64_t now, uint64_t index,
                         const uint8_t digest[SFT_HASH_LEN],
                         struct sft_xrecv_chunk *out);

/* FEC: the REBUILD of |stripe| failed (I/O, memory): the stripe waits for
 * data or NEED answers again (the parity payloads are gone). 0 (also if the
 * stripe is not being rebuilt), SFT_ERR_INVAL, SFT_ERR_RANGE. */
int sft_xrecv_rebuild_failed(struct sft_xrecv *r, uint64_t now,
                             uint64_t stripe);

/* FEC: the path RTT estimate (ns, > 0; 0 is ignored). A stripe missing
 * data chunks while a later stripe is complete asks NEED after 2 * rtt,
 * and again every 2 * rtt. Default 100 ms. */
void sft_xrecv_set_rtt(struct sft_xrecv *r, uint64_t rtt_ns);

/* The WRITE of chunk |index| completed: its bit goes into the persisted
 * bitmap. Idempotent. SFT_ERR_RANGE, SFT_ERR_STATE (chunk not done). */
int sft_xrecv_on_written(struct sft_xrecv *r, uint64_t index);

/* Answer to HASH_CHUNK (or supplied on its own for a held chunk).
 * SFT_ERR_RANGE, SFT_ERR_STATE (chunk not held), SFT_ERR_DIGEST (differs
 * from a digest already known; nothing changes). */
int sft_xrecv_on_hashed(struct sft_xrecv *r, uint64_t index,
                        const uint8_t digest[SFT_HASH_LEN]);

/* The sender's COMPLETE(root). Taken in Transferring/Paused/Completing and
 * checked once every chunk is done and its digest known: poll then gives
 * FINALIZE (Completed) or FAILED (SFT_ERR_DIGEST). FEC: on a mismatch while
 * rebuilt chunks are held, they are dropped instead (bitmap bits cleared,
 * back to Transferring, rebuilds disabled for the transfer, stats.
 * rollbacks) and their stripes ask NEED(count = stripe len + 1) at once,
 * which makes the sender send the whole stripe again. A second, different root
 * before that: SFT_ERR_PEER (ignored). In Completed: 0 if the root is the
 * verified one (a repeat: send the confirmation again), SFT_ERR_DIGEST if
 * not. SFT_ERR_STATE otherwise. */
int sft_xrecv_on_complete(struct sft_xrecv *r, uint64_t now,
                          const uint8_t root[SFT_HASH_LEN]);

/* As for the sender. Paused: no HASH_CHUNK is produced (chunks still in
 * flight are still taken and acked). Network down: no ACK is produced. */
int sft_xrecv_pause(struct sft_xrecv *r, uint64_t now);
int sft_xrecv_resume(struct sft_xrecv *r, uint64_t now);
int sft_xrecv_cancel(struct sft_xrecv *r, uint64_t now);
int sft_xrecv_abort(struct sft_xrecv *r, uint64_t now, int reason);
int sft_xrecv_on_network_failure(struct sft_xrecv *r, uint64_t now);
int sft_xrecv_on_network_recovered(struct sft_xrecv *r, uint64_t now);

/* Next action; the timer entry point. Order: ACK (when ack_batch chunks
 * are pending, the ack delay expired, or every chunk is done), HASH_CHUNK,
 * REBUILD (not while paused; present chunks must be written), SEND_NEED
 * (Transferring, network up), then the root check. Returns 0, or
 * SFT_ERR_INVAL. */
int sft_xrecv_poll(struct sft_xrecv *r, uint64_t now,
                   struct sft_xrecv_action *a);
uint64_t sft_xrecv_expiry(const struct sft_xrecv *r);

enum sft_xfer_state sft_xrecv_state(const struct sft_xrecv *r);
int sft_xrecv_reason(const struct sft_xrecv *r);
bool sft_xrecv_network_down(const struct sft_xrecv *r);
void sft_xrecv_stats(const struct sft_xrecv *r, struct sft_xrecv_stats *st);

/* The persisted bitmap: chunks verified AND written (bits past the count
 * are zero). *len = (count + 7) / 8 (trim trailing zeros for ACCEPT).
 * Borrowed; valid until the next call that changes the receiver. Only
 * bits for which on_written was called are set, so it is safe to commit
 * at any time. */
const uint8_t *sft_xrecv_bitmap(const struct sft_xrecv *r, size_t *len);

#endif /* SFT_XFER_H */
