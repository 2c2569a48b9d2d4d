/* The seed's transfer state machine as one explicit table, plus the value
 * checks both machines share. The table is the single source of truth;
 * docs/internals/xfer.md shows the same table. */
#include "sft/xfer.h"

#define S(x) (SFT_XS_##x + 1) /* 0 in the table = no transition */

/* next[state][event] = new state + 1, or 0 when invalid. */
static const unsigned char next_state[SFT_XS_COUNT][SFT_XE_COUNT] = {
    [SFT_XS_IDLE] =
        {
            [SFT_XE_START] = S(PREPARING),
            [SFT_XE_CANCEL] = S(FAILED),
            [SFT_XE_FAIL] = S(FAILED),
        },
    [SFT_XS_PREPARING] =
        {
            [SFT_XE_START] = S(TRANSFERRING), /* offer accepted */
            [SFT_XE_CANCEL] = S(FAILED),
            [SFT_XE_NETWORK_FAILURE] = S(PREPARING),
            [SFT_XE_NETWORK_RECOVERED] = S(PREPARING),
            [SFT_XE_FAIL] = S(FAILED),
        },
    [SFT_XS_TRANSFERRING] =
        {
            [SFT_XE_CHUNK_COMPLETED] = S(TRANSFERRING),
            [SFT_XE_CHUNK_FAILED] = S(TRANSFERRING), /* retried */
            [SFT_XE_PAUSE] = S(PAUSED),
            [SFT_XE_CANCEL] = S(FAILED),
            [SFT_XE_NETWORK_FAILURE] = S(TRANSFERRING),
            [SFT_XE_NETWORK_RECOVERED] = S(TRANSFERRING),
            [SFT_XE_TRANSFER_COMPLETE] = S(COMPLETING),
            [SFT_XE_FAIL] = S(FAILED),
        },
    [SFT_XS_PAUSED] =
        {
            /* chunks already in flight still land while paused */
            [SFT_XE_CHUNK_COMPLETED] = S(PAUSED),
            [SFT_XE_CHUNK_FAILED] = S(PAUSED),
            [SFT_XE_RESUME] = S(TRANSFERRING),
            [SFT_XE_CANCEL] = S(FAILED),
            [SFT_XE_NETWORK_FAILURE] = S(PAUSED),
            [SFT_XE_NETWORK_RECOVERED] = S(PAUSED),
            [SFT_XE_FAIL] = S(FAILED),
        },
    [SFT_XS_COMPLETING] =
        {
            /* a chunk believed complete is missing (receiver lost it) */
            [SFT_XE_CHUNK_FAILED] = S(TRANSFERRING),
            [SFT_XE_CANCEL] = S(FAILED),
            [SFT_XE_NETWORK_FAILURE] = S(COMPLETING),
            [SFT_XE_NETWORK_RECOVERED] = S(COMPLETING),
            [SFT_XE_TRANSFER_COMPLETE] = S(COMPLETED), /* root verified */
            [SFT_XE_FAIL] = S(FAILED),
        },
    /* Completed and Failed: terminal, every entry 0 */
};

#undef S

int sft_xfer_fsm_apply(enum sft_xfer_state *st, enum sft_xfer_event ev) {
  if (!st || (unsigned)*st >= SFT_XS_COUNT || (unsigned)ev >= SFT_XE_COUNT)
    return SFT_ERR_INVAL;
  unsigned char n = next_state[*st][ev];
  if (n == 0)
    return SFT_ERR_STATE;
  *st = (enum sft_xfer_state)(n - 1);
  return 0;
}

const char *sft_xfer_state_name(enum sft_xfer_state st) {
  static const char *const names[SFT_XS_COUNT] = {
      "Idle",       "Preparing", "Transferring", "Paused",
      "Completing", "Completed", "Failed",
  };
  return (unsigned)st < SFT_XS_COUNT ? names[st] : "Unknown";
}

const char *sft_xfer_event_name(enum sft_xfer_event ev) {
  static const char *const names[SFT_XE_COUNT] = {
      "Start",          "ChunkCompleted",   "ChunkFailed",
      "Pause",          "Resume",           "Cancel",
      "NetworkFailure", "NetworkRecovered", "TransferComplete",
      "Fail",
  };
  return (unsigned)ev < SFT_XE_COUNT ? names[ev] : "Unknown";
}

bool sft_xfer_state_terminal(enum sft_xfer_state st) {
  return st == SFT_XS_COMPLETED || st == SFT_XS_FAILED;
}

int sft_xfer_ranges_check(const struct sft_xfer_range *r, size_t n,
                          uint64_t count) {
  if (n == 0)
    return 0;
  if (!r)
    return SFT_ERR_INVAL;
  if (n > SFT_MAX_ACK_RANGES)
    return SFT_ERR_TOO_LARGE;
  for (size_t i = 0; i < n; i++) {
    if (r[i].first > r[i].last || r[i].last >= count)
      return SFT_ERR_RANGE;
    if (i > 0 && r[i].first <= r[i - 1].last)
      return SFT_ERR_RANGE; /* unsorted or overlapping */
  }
  return 0;
}

int sft_xfer_bitmap_check(const uint8_t *bm, size_t len, uint64_t count) {
  if (len == 0)
    return 0;
  if (!bm)
    return SFT_ERR_INVAL;
  uint64_t full = (count + 7) / 8;
  if (len > full)
    return SFT_ERR_TOO_LARGE;
  if (len == full && (count & 7) != 0) {
    uint8_t valid = (uint8_t)((1u << (count & 7)) - 1);
    if (bm[len - 1] & (uint8_t)~valid)
      return SFT_ERR_RANGE;
  }
  return 0;
}

int sft_xfer_geometry_check(uint64_t size, uint32_t chunk_size,
                            enum sft_hash_algo algo) {
  if (algo != SFT_HASH_BLAKE3 && algo != SFT_HASH_SHA256)
    return SFT_ERR_INVAL;
  if (chunk_size < SFT_CHUNK_SIZE_MIN || chunk_size > SFT_CHUNK_SIZE_MAX)
    return SFT_ERR_RANGE;
  if (size > SFT_MAX_FILE_SIZE ||
      sft_chunk_count(size, chunk_size) > SFT_MAX_CHUNKS)
    return SFT_ERR_RANGE;
  return 0;
}
