/*
 * Fuzzes the socket-free half of the HTTP layer: router matching against a
 * fixed route table, query argument parsing, bearer parsing + token
 * comparison, and strict JSON body validation. Input layout: byte 0 picks
 * the method, then "path\nquery\nauthorization\njson-body".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/api/http.h"

static int h(const struct sftd_http_req *req, struct sftd_http_resp *resp,
             void *ud) {
  (void)req;
  (void)resp;
  (void)ud;
  return SFTD_HTTP_DONE;
}

static const struct sftd_http_field fields[] = {
    {"path", SFTD_F_STRING, 1, 1, 4096}, {"peer", SFTD_F_STRING, 0, 1, 256},
    {"streams", SFTD_F_INT, 0, 1, 64},   {"verify", SFTD_F_BOOL, 0, 0, 0},
    {"rate", SFTD_F_NUMBER, 0, 0, 0},    {"opts", SFTD_F_OBJECT, 0, 0, 0},
    {"files", SFTD_F_ARRAY, 0, 0, 100},
};

static const char *next(const char **p, const char *end, size_t *len) {
  const char *s = *p, *nl = memchr(s, '\n', (size_t)(end - s));
  const char *e = nl ? nl : end;
  *len = (size_t)(e - s);
  *p = nl ? nl + 1 : end;
  return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static struct sftd_http_router r;
  static int init;
  struct sftd_http_req req;
  const struct sftd_http_route *rt;
  unsigned allow;
  char buf[SFTD_HTTP_PATH_MAX + 32], msg[256];
  if (!init) {
    sftd_http_router_init(&r);
    sftd_http_router_add(&r, SFTD_HTTP_POST, "/api/transfer/send", h, NULL, 0);
    sftd_http_router_add(&r, SFTD_HTTP_GET, "/api/transfer/{id}/progress", h,
                         NULL, 0);
    sftd_http_router_add(&r, SFTD_HTTP_POST, "/api/transfer/{id}/pause", h,
                         NULL, 0);
    sftd_http_router_add(&r, SFTD_HTTP_GET | SFTD_HTTP_DELETE,
                         "/api/transfer/{id}", h, NULL, 0);
    sftd_http_router_add(&r, SFTD_HTTP_GET, "/api/transfer/list", h, NULL, 0);
    sftd_http_router_add(&r, SFTD_HTTP_GET, "/a/{b}/{c}/{d}/{e}/{f}/{g}/{h}",
                         h, NULL, 0);
    sftd_http_router_add(&r, SFTD_HTTP_GET, "/", h, NULL, 0);
    init = 1;
  }
  if (size < 1)
    return 0;
  unsigned method = 1u << (data[0] % 7);
  const char *p = (const char *)data + 1, *end = (const char *)data + size;
  size_t plen, qlen, alen, blen;
  const char *path = next(&p, end, &plen);
  const char *q = next(&p, end, &qlen);
  const char *auth = next(&p, end, &alen);
  const char *body = p;
  blen = (size_t)(end - p);

  memset(&req, 0, sizeof(req));
  int rc = sftd_http_router_match(&r, method, path, plen, &req, buf,
                                  data[0] & 0x80 ? 16 : sizeof(buf), &rt,
                                  &allow);
  if (rc == 0) {
    for (size_t i = 0; i < req.nparams; i++)
      if (!req.params[i].key[0] || !req.params[i].val[0])
        abort(); /* params are never empty */
  }
  char *qs = malloc(qlen + 1);
  if (qs) {
    memcpy(qs, q, qlen);
    qs[qlen] = '\0';
    for (char *tok = qs, *amp; tok; tok = amp) {
      amp = strchr(tok, '&');
      if (amp)
        *amp++ = '\0';
      sftd_http_query_add(&req, tok);
    }
    (void)sftd_http_query(&req, "x");
    free(qs);
  }
  const char *tok;
  size_t tlen;
  if (sftd_http_bearer(auth, alen, &tok, &tlen) == 0)
    (void)sftd_http_token_eq("0123456789abcdef0123456789abcdef", tok, tlen);
  char methods[96];
  sftd_http_methods_str(allow, methods, sizeof(methods));

  json_error_t err;
  json_t *j = json_loadb(body, blen, JSON_REJECT_DUPLICATES, &err);
  if (j) {
    (void)sftd_http_json_check(j, fields, sizeof(fields) / sizeof(fields[0]),
                               msg, sizeof(msg));
    (void)sftd_http_json_check(j, fields, 1, msg, 8);
    json_decref(j);
  }
  return 0;
}
