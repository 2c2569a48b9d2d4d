#include "sft/err.h"

const char *sft_strerror(int err) {
  switch (err) {
  case SFT_OK:
    return "success";
#define XX(name, val, msg)                                                    \
  case val:                                                                   \
    return msg;
    SFT_ERRNO_MAP(XX)
#undef XX
  default:
    return "unknown error";
  }
}

const char *sft_err_name(int err) {
  switch (err) {
  case SFT_OK:
    return "OK";
#define XX(name, val, msg)                                                    \
  case val:                                                                   \
    return #name;
    SFT_ERRNO_MAP(XX)
#undef XX
  default:
    return "UNKNOWN";
  }
}
