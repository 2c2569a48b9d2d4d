/*
 * The socket-free half of the HTTP layer: router, query arguments, strict
 * JSON field validation, bearer parsing, constant-time token comparison and
 * the per-IP token bucket. Everything here is fuzzed without a server.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "daemon/api/http.h"

#define MAX_SEGS 32

/* ---- path segments ------------------------------------------------------ */

struct seg {
  const char *p;
  size_t len;
};

/* Splits "/a/b/" into "a","b","" (a trailing slash is an empty segment;
 * "/" has none). -1 if not absolute or too many segments. */
static int split(const char *s, size_t len, struct seg *segs, size_t max) {
  size_t n = 0, i, start;
  if (len == 0 || s[0] != '/' || memchr(s, '\0', len))
    return -1; /* embedded NULs (e.g. a decoded %00) never match */
  if (len == 1)
    return 0;
  start = 1;
  for (i = 1; i <= len; i++) {
    if (i == len || s[i] == '/') {
      if (n == max)
        return -1;
      segs[n].p = s + start;
      segs[n].len = i - start;
      n++;
      start = i + 1;
    }
  }
  return (int)n;
}

static int is_param(const struct seg *g) {
  return g->len >= 3 && g->p[0] == '{' && g->p[g->len - 1] == '}';
}

void sftd_http_router_init(struct sftd_http_router *r) {
  memset(r, 0, sizeof(*r));
}

int sftd_http_router_add(struct sftd_http_router *r, unsigned methods,
                         const char *pattern, sftd_http_handler fn, void *ud,
                         unsigned flags) {
  struct seg segs[MAX_SEGS];
  size_t len, i, nparam = 0;
  int n;
  const unsigned all = SFTD_HTTP_GET | SFTD_HTTP_POST | SFTD_HTTP_PUT |
                       SFTD_HTTP_DELETE | SFTD_HTTP_PATCH;
  if (!r || !pattern || !fn || !(methods & all) || (methods & ~all))
    return SFT_ERR_INVAL;
  len = strlen(pattern);
  if (len >= sizeof(r->routes[0].pattern))
    return SFT_ERR_INVAL;
  n = split(pattern, len, segs, MAX_SEGS);
  if (n < 0)
    return SFT_ERR_INVAL;
  for (i = 0; i < (size_t)n; i++) {
    if (segs[i].len == 0)
      return SFT_ERR_INVAL;
    if (is_param(&segs[i])) {
      if (++nparam > SFTD_HTTP_MAX_PARAMS)
        return SFT_ERR_INVAL;
      if (memchr(segs[i].p + 1, '{', segs[i].len - 2) ||
          memchr(segs[i].p + 1, '}', segs[i].len - 2))
        return SFT_ERR_INVAL;
    } else if (memchr(segs[i].p, '{', segs[i].len) ||
               memchr(segs[i].p, '}', segs[i].len)) {
      return SFT_ERR_INVAL;
    }
  }
  for (i = 0; i < r->n; i++)
    if (!strcmp(r->routes[i].pattern, pattern) &&
        (r->routes[i].methods & methods))
      return SFT_ERR_EXISTS;
  if (r->n == SFTD_HTTP_MAX_ROUTES)
    return SFT_ERR_FULL;
  r->routes[r->n].methods = methods;
  r->routes[r->n].flags = flags;
  r->routes[r->n].fn = fn;
  r->routes[r->n].ud = ud;
  memcpy(r->routes[r->n].pattern, pattern, len + 1);
  r->n++;
  return 0;
}

/* Structural match: returns a score (higher = more literal segments, earlier
 * ones weigh more) or -1. */
static long match_score(const struct sftd_http_route *rt,
                        const struct seg *ps, int np) {
  struct seg ts[MAX_SEGS];
  int nt = split(rt->pattern, strlen(rt->pattern), ts, MAX_SEGS), i;
  long score = 0;
  if (nt != np)
    return -1;
  for (i = 0; i < nt; i++) {
    if (is_param(&ts[i])) {
      if (ps[i].len == 0)
        return -1;
      continue;
    }
    if (ts[i].len != ps[i].len || memcmp(ts[i].p, ps[i].p, ps[i].len))
      return -1;
    score |= 1L << (MAX_SEGS - 1 - i);
  }
  return score;
}

int sftd_http_router_match(const struct sftd_http_router *r, unsigned method,
                           const char *path, size_t len,
                           struct sftd_http_req *req, char *buf, size_t cap,
                           const struct sftd_http_route **out,
                           unsigned *allow) {
  struct seg ps[MAX_SEGS], ts[MAX_SEGS];
  const struct sftd_http_route *best = NULL;
  long best_score = -1;
  unsigned mask = 0, want = method == SFTD_HTTP_HEAD ? SFTD_HTTP_GET : method;
  size_t i, used = 0;
  int np, nt;

  *out = NULL;
  if (allow)
    *allow = 0;
  req->nparams = 0;
  np = split(path, len, ps, MAX_SEGS);
  if (np < 0)
    return SFT_ERR_NOT_FOUND;
  for (i = 0; i < r->n; i++) {
    long sc = match_score(&r->routes[i], ps, np);
    if (sc < 0)
      continue;
    mask |= r->routes[i].methods;
    if ((r->routes[i].methods & want) && sc > best_score) {
      best_score = sc;
      best = &r->routes[i];
    }
  }
  if (!mask)
    return SFT_ERR_NOT_FOUND;
  if (!best) {
    if (allow)
      *allow = mask;
    return SFT_ERR_UNSUPPORTED;
  }
  nt = split(best->pattern, strlen(best->pattern), ts, MAX_SEGS);
  for (i = 0; i < (size_t)nt; i++) {
    if (!is_param(&ts[i]))
      continue;
    size_t kl = ts[i].len - 2, vl = ps[i].len;
    if (used + kl + 1 + vl + 1 > cap)
      return SFT_ERR_TOO_LARGE;
    char *k = buf + used;
    memcpy(k, ts[i].p + 1, kl);
    k[kl] = '\0';
    char *v = k + kl + 1;
    memcpy(v, ps[i].p, vl);
    v[vl] = '\0';
    used += kl + 1 + vl + 1;
    req->params[req->nparams].key = k;
    req->params[req->nparams].val = v;
    req->nparams++;
  }
  if (allow)
    *allow = mask;
  *out = best;
  return 0;
}

const char *sftd_http_param(const struct sftd_http_req *req,
                            const char *name) {
  for (size_t i = 0; i < req->nparams; i++)
    if (!strcmp(req->params[i].key, name))
      return req->params[i].val;
  return NULL;
}

const char *sftd_http_query(const struct sftd_http_req *req,
                            const char *name) {
  for (size_t i = 0; i < req->nquery; i++)
    if (!strcmp(req->query[i].key, name))
      return req->query[i].val;
  return NULL;
}

void sftd_http_query_add(struct sftd_http_req *req, char *kv) {
  char *eq;
  if (!kv || !*kv || req->nquery >= SFTD_HTTP_MAX_QUERY)
    return;
  eq = strchr(kv, '=');
  req->query[req->nquery].key = kv;
  if (eq) {
    *eq = '\0';
    req->query[req->nquery].val = eq + 1;
  } else {
    req->query[req->nquery].val = "";
  }
  req->nquery++;
}

void sftd_http_methods_str(unsigned mask, char *out, size_t cap) {
  static const struct {
    unsigned bit;
    const char *name;
  } m[] = {{SFTD_HTTP_GET, "GET"},         {SFTD_HTTP_HEAD, "HEAD"},
           {SFTD_HTTP_POST, "POST"},       {SFTD_HTTP_PUT, "PUT"},
           {SFTD_HTTP_DELETE, "DELETE"},   {SFTD_HTTP_PATCH, "PATCH"},
           {SFTD_HTTP_OPTIONS, "OPTIONS"}};
  size_t used = 0;
  if (!cap)
    return;
  out[0] = '\0';
  for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
    if (!(mask & m[i].bit))
      continue;
    int w = snprintf(out + used, cap - used, "%s%s", used ? ", " : "",
                     m[i].name);
    if (w < 0 || (size_t)w >= cap - used)
      return;
    used += (size_t)w;
  }
}

/* ---- auth ------------------------------------------------------------------ */

int sftd_http_token_eq(const char *expected, const char *given, size_t glen) {
  size_t elen = strlen(expected);
  volatile unsigned char diff = 0;
  /* Walk |expected| only; the presented bytes are read while in range and a
   * length mismatch is folded in, so timing reveals only strlen(expected). */
  for (size_t i = 0; i < elen; i++) {
    unsigned char g = i < glen ? (unsigned char)given[i] : 0;
    diff |= (unsigned char)((unsigned char)expected[i] ^ g);
  }
  diff |= (unsigned char)(glen != elen);
  return diff == 0;
}

int sftd_http_bearer(const char *hdr, size_t len, const char **tok,
                     size_t *toklen) {
  size_t i = 0;
  if (!hdr || len < 7 || strncasecmp(hdr, "Bearer ", 7))
    return SFT_ERR_AUTH;
  i = 7;
  while (i < len && hdr[i] == ' ')
    i++;
  while (len > i && (hdr[len - 1] == ' ' || hdr[len - 1] == '\t'))
    len--;
  if (i == len || len - i > SFTD_HTTP_TOKEN_MAX)
    return SFT_ERR_AUTH;
  *tok = hdr + i;
  *toklen = len - i;
  return 0;
}

/* ---- JSON validation -------------------------------------------------------- */

static const char *type_name(enum sftd_http_ftype t) {
  switch (t) {
  case SFTD_F_STRING:
    return "a string";
  case SFTD_F_INT:
    return "an integer";
  case SFTD_F_NUMBER:
    return "a number";
  case SFTD_F_BOOL:
    return "a boolean";
  case SFTD_F_OBJECT:
    return "an object";
  case SFTD_F_ARRAY:
    return "an array";
  }
  return "?";
}

/* Prints a key for a message: bounded and with control characters
 * replaced, since it comes from the client. */
static void safe_key(const char *k, char *out, size_t cap) {
  size_t i;
  for (i = 0; k[i] && i + 1 < cap && i < 64; i++)
    out[i] = (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '"') ? k[i] : '?';
  out[i] = '\0';
}

int sftd_http_json_check(const json_t *body,
                         const struct sftd_http_field *fields, size_t n,
                         char *msg, size_t cap) {
  const char *key;
  json_t *val;
  size_t i;
  char k[80];

  if (cap)
    msg[0] = '\0';
  if (body && !json_is_object(body)) {
    snprintf(msg, cap, "the body must be a JSON object");
    return SFT_ERR_INVAL;
  }
  if (body) {
    /* json_object_foreach takes a non-const object; iteration only reads */
    json_t *obj = (json_t *)(uintptr_t)body;
    json_object_foreach(obj, key, val) {
      for (i = 0; i < n; i++)
        if (!strcmp(fields[i].name, key))
          break;
      if (i == n) {
        safe_key(key, k, sizeof(k));
        snprintf(msg, cap, "unknown field '%s'", k);
        return SFT_ERR_INVAL;
      }
    }
  }
  for (i = 0; i < n; i++) {
    const struct sftd_http_field *f = &fields[i];
    int ok = 0, bounded = f->min <= f->max;
    int64_t v = 0;
    val = body ? json_object_get(body, f->name) : NULL;
    if (!val) {
      if (f->required) {
        snprintf(msg, cap, "missing field '%s'", f->name);
        return SFT_ERR_INVAL;
      }
      continue;
    }
    switch (f->type) {
    case SFTD_F_STRING:
      ok = json_is_string(val);
      v = ok ? (int64_t)json_string_length(val) : 0;
      break;
    case SFTD_F_INT:
      ok = json_is_integer(val);
      v = ok ? (int64_t)json_integer_value(val) : 0;
      break;
    case SFTD_F_NUMBER:
      ok = json_is_number(val);
      bounded = 0;
      break;
    case SFTD_F_BOOL:
      ok = json_is_boolean(val);
      bounded = 0;
      break;
    case SFTD_F_OBJECT:
      ok = json_is_object(val);
      bounded = 0;
      break;
    case SFTD_F_ARRAY:
      ok = json_is_array(val);
      v = ok ? (int64_t)json_array_size(val) : 0;
      break;
    }
    if (!ok) {
      snprintf(msg, cap, "field '%s' must be %s", f->name, type_name(f->type));
      return SFT_ERR_INVAL;
    }
    if (bounded && (v < f->min || v > f->max)) {
      snprintf(msg, cap, "field '%s' out of range [%lld, %lld]%s", f->name,
               (long long)f->min, (long long)f->max,
               f->type == SFTD_F_STRING  ? " (length)"
               : f->type == SFTD_F_ARRAY ? " (elements)"
                                         : "");
      return SFT_ERR_INVAL;
    }
  }
  return 0;
}

/* ---- rate limit ---------------------------------------------------------------- */

void sftd_ratelimit_init(struct sftd_ratelimit *rl, uint32_t rate,
                         uint32_t burst) {
  memset(rl, 0, sizeof(*rl));
  rl->rate = rate;
  rl->burst = burst ? burst : (rate ? rate : 1);
}

#define RL_PROBE 8
#define RL_UNIT 1000u

int sftd_ratelimit_take(struct sftd_ratelimit *rl, const uint8_t *key,
                        size_t keylen, uint64_t now_ms, uint32_t *retry_s) {
  uint32_t h = 2166136261u;
  struct sftd_rl_slot *s = NULL, *victim = NULL;
  uint64_t cap;
  size_t i;

  if (retry_s)
    *retry_s = 0;
  if (!rl->rate)
    return 0;
  if (keylen == 0 || keylen > sizeof(s->key))
    return SFT_ERR_INVAL;
  for (i = 0; i < keylen; i++)
    h = (h ^ key[i]) * 16777619u;
  for (i = 0; i < RL_PROBE; i++) {
    struct sftd_rl_slot *c = &rl->slots[(h + i) % SFTD_RL_SLOTS];
    if (c->keylen == keylen && !memcmp(c->key, key, keylen)) {
      s = c;
      break;
    }
    if (!victim || c->keylen == 0 ||
        (victim->keylen != 0 && c->last_ms < victim->last_ms))
      victim = c;
  }
  cap = (uint64_t)rl->burst * RL_UNIT;
  if (!s) {
    s = victim;
    memset(s, 0, sizeof(*s));
    memcpy(s->key, key, keylen);
    s->keylen = (uint8_t)keylen;
    s->units = cap;
    s->last_ms = now_ms;
  }
  if (now_ms > s->last_ms) {
    uint64_t dt = now_ms - s->last_ms;
    /* rate req/s = rate * RL_UNIT units per 1000 ms = rate units per ms */
    uint64_t add = dt > cap ? cap : dt * rl->rate;
    s->units = s->units + add > cap ? cap : s->units + add;
    s->last_ms = now_ms;
  }
  if (s->units >= RL_UNIT) {
    s->units -= RL_UNIT;
    return 0;
  }
  if (retry_s) {
    uint64_t need_ms = (RL_UNIT - s->units + rl->rate - 1) / rl->rate;
    uint64_t sec = (need_ms + 999) / 1000;
    *retry_s = sec ? (uint32_t)sec : 1;
  }
  return SFT_ERR_AGAIN;
}
