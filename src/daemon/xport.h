/*
 * One call for either transport: the engine's sessions hold sftq_conn
 * pointers that are QUIC connections (src/daemon/quic) or TCP+TLS
 * connections (src/daemon/tcp, the fallback when UDP is blocked); XP(fn, c,
 * ...) calls sftq_fn or sftt_fn by the connection's kind tag.
 */
#ifndef SFTD_XPORT_H
#define SFTD_XPORT_H

#include "daemon/quic/quic.h"
#include "daemon/tcp/tcp.h"

#define XP(fn, c, ...)                                                        \
  (sftq_conn_kind(c) == SFTQ_KIND_TCP                                         \
       ? sftt_##fn(sftt_conn_of(c), ##__VA_ARGS__)                            \
       : sftq_##fn((c), ##__VA_ARGS__))

/* For functions returning void. */
#define XPV(fn, c, ...)                                                       \
  do {                                                                        \
    if (sftq_conn_kind(c) == SFTQ_KIND_TCP)                                   \
      sftt_##fn(sftt_conn_of(c), ##__VA_ARGS__);                              \
    else                                                                      \
      sftq_##fn((c), ##__VA_ARGS__);                                          \
  } while (0)

#endif
