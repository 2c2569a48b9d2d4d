/*
 * Bounds shared by every module: a length read from the wire, the API, a
 * config file or the database is checked against one of these before it is
 * used. Plus the chunk geometry every module agrees on.
 */
#ifndef SFT_LIMITS_H
#define SFT_LIMITS_H

#include <stdint.h>

#define SFT_CHUNK_SIZE_MIN (4u * 1024)           /* 4 KiB */
#define SFT_CHUNK_SIZE_MAX (16u * 1024 * 1024)   /* 16 MiB */
#define SFT_CHUNK_SIZE_DEFAULT (1024u * 1024)    /* 1 MiB */
#define SFT_MAX_CHUNKS ((uint64_t)1 << 26)       /* per file: 64 Mi chunks */
#define SFT_MAX_FILE_SIZE ((uint64_t)1 << 50)    /* 1 PiB */
#define SFT_MAX_NAME 4096             /* relative path, bytes, without NUL */
#define SFT_MAX_NAME_COMPONENT 255    /* one path component, bytes */
#define SFT_MAX_NAME_DEPTH 64         /* path components */
#define SFT_MAX_FILES 1000000         /* files in one session */
#define SFT_MAX_STRIPE 255            /* k + m, Reed-Solomon over GF(2^8) */
#define SFT_MAX_CTRL_MSG (8u * 1024 * 1024) /* one control message, bytes */
#define SFT_MAX_ACK_RANGES 4096       /* ranges in one ACK */
#define SFT_MAX_ERROR_TEXT 1024       /* ERROR message text, bytes */
#define SFT_SESSION_ID_LEN 16         /* 128-bit random session id */

/* Number of chunks of a file of |size| bytes cut into |chunk_size| chunks.
 * An empty file has zero chunks. |chunk_size| must be non-zero. */
static inline uint64_t sft_chunk_count(uint64_t size, uint32_t chunk_size) {
  return size / chunk_size + (size % chunk_size != 0);
}

/* Byte offset of chunk |index|. */
static inline uint64_t sft_chunk_offset(uint64_t index, uint32_t chunk_size) {
  return index * chunk_size;
}

/* Length of chunk |index| (the last one may be short); 0 past the end. */
static inline uint32_t sft_chunk_len(uint64_t size, uint32_t chunk_size,
                                     uint64_t index) {
  uint64_t off = index * chunk_size;
  if (off >= size)
    return 0;
  return size - off < chunk_size ? (uint32_t)(size - off) : chunk_size;
}

#endif /* SFT_LIMITS_H */
