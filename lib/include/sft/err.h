/*
 * sft error space.
 *
 * Every function in libsft and in the daemon returns 0 on success or one of
 * the negative SFT_ERR_* codes below (never errno, never -1). Counts and
 * lengths travel through out-parameters so that error and size never share a
 * return value. The list is one X-macro so the enum, the names and the
 * messages cannot drift apart.
 */
#ifndef SFT_ERR_H
#define SFT_ERR_H

#define SFT_ERRNO_MAP(XX)                                                      \
  XX(NOMEM, -1, "out of memory")                                               \
  XX(INVAL, -2, "invalid argument")                                            \
  XX(RANGE, -3, "value out of range")                                          \
  XX(TRUNCATED, -4, "input ends early")                                        \
  XX(MALFORMED, -5, "malformed encoding")                                      \
  XX(VERSION, -6, "unsupported version")                                       \
  XX(TOO_LARGE, -7, "length exceeds its bound")                                \
  XX(DIGEST, -8, "digest mismatch")                                            \
  XX(ERASURES, -9, "too many erasures to decode")                              \
  XX(FULL, -10, "capacity exhausted")                                          \
  XX(EMPTY, -11, "nothing to dequeue")                                         \
  XX(STATE, -12, "invalid in the current state")                               \
  XX(RETRIES, -13, "maximum retries exceeded")                                 \
  XX(NOT_FOUND, -14, "not found")                                              \
  XX(EXISTS, -15, "already exists")                                            \
  XX(IO, -16, "input/output error")                                            \
  XX(UNSUPPORTED, -17, "unsupported")                                          \
  XX(PATH, -18, "unsafe or invalid path")                                      \
  XX(NOSPACE, -19, "not enough space")                                         \
  XX(PEER, -20, "peer misbehaved")                                             \
  XX(AUTH, -21, "authentication failed")                                       \
  XX(TIMEOUT, -22, "timed out")                                                \
  XX(CLOSED, -23, "connection closed")                                         \
  XX(CANCELLED, -24, "cancelled")                                              \
  XX(AGAIN, -25, "try again later")                                            \
  XX(REFUSED, -26, "connection refused")

enum sft_err {
  SFT_OK = 0,
#define SFT_ERR_ENUM(name, val, msg) SFT_ERR_##name = (val),
  SFT_ERRNO_MAP(SFT_ERR_ENUM)
#undef SFT_ERR_ENUM
};

/* Human-readable message for |err| ("success" for 0, "unknown error" for a
 * value outside the list). Never NULL; the string is static. */
const char *sft_strerror(int err);

/* Symbolic name for |err| ("OK", "NOMEM", ...). Never NULL; static. */
const char *sft_err_name(int err);

#endif /* SFT_ERR_H */
