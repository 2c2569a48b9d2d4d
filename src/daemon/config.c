/* The daemon's configuration; see daemon/config.h for the contract.
 *
 * Table-driven (after redis's static_configs[]): one row per setting with
 * its section, key, type, field offset, bounds and default TEXT. Defaults
 * are parsed by the same code as user input, so a default can never be a
 * value the parser would refuse, and printing a default re-parses to it. */
#include "daemon/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sft/limits.h"

#define NUM_MAX_LEN 64   /* numeric / enum values */
#define ADDR_MAX_LEN 270 /* "[" 253 "]:" 5 */
#define ECHO_MAX 64      /* value bytes echoed in messages */
#define ORIGINS_MAX_N 16

enum ktype {
  K_U32,     /* uint32_t integer */
  K_SIZE32,  /* uint32_t size (binary suffixes) */
  K_SIZE64,  /* uint64_t size */
  K_BPS,     /* uint64_t bit/s */
  K_DUR,     /* uint64_t ms */
  K_BOOL,    /* int */
  K_ENUM,    /* enum stored as int */
  K_ADDR,    /* struct sftd_hostport */
  K_PATH,    /* char[SFTD_CFG_PATH_MAX], "" = unset */
  K_ORIGINS, /* char[SFTD_CFG_ORIGINS_MAX] */
};

#define F_AUTO 1u /* "auto" allowed, stored as autoval */
#define F_NONE 2u /* "none" allowed, stored as 0 */

struct key {
  const char *section;
  const char *name;
  enum ktype type;
  size_t off;
  uint64_t min, max; /* for numbers; the auto/none values are outside */
  unsigned flags;
  uint64_t autoval;
  const char *const *names; /* K_ENUM, NULL-terminated */
  const char *def;          /* default text; NULL = unset (paths) */
  const char *range;        /* "must be ..." */
};

static const char *const hash_names[] = {"blake3", "sha256", NULL};
static const char *const cc_names[] = {"bbr2", "bbr", "cubic", "reno", NULL};
static const char *const transport_names[] = {"auto", "quic", "tcp", NULL};
static const char *const pfec_names[] = {"auto", "on", "off", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug",
                                          NULL};

#define OFF(f) offsetof(struct sftd_config, f)
#define KIB 1024ull
#define MIB (1024ull * 1024)
#define GIB (1024ull * 1024 * 1024)
#define TERA 1000000000000ull

static const struct key keys[] = {
    {"transfer", "chunk_size", K_SIZE32, OFF(chunk_size), SFT_CHUNK_SIZE_MIN,
     SFT_CHUNK_SIZE_MAX, F_AUTO, 0, NULL, "auto", "must be auto or 4K..16M"},
    {"transfer", "data_shards", K_U32, OFF(data_shards), 1, SFT_MAX_STRIPE, 0,
     0, NULL, "10", "must be 1..255"},
    {"transfer", "parity_shards", K_U32, OFF(parity_shards), 0,
     SFT_MAX_STRIPE - 1, F_AUTO, SFTD_PARITY_AUTO, NULL, "3",
     "must be auto or 0..254 with data_shards + parity_shards <= 255"},
    {"transfer", "max_retries", K_U32, OFF(max_retries), 0, 255, 0, 0, NULL,
     "5", "must be 0..255"},
    {"transfer", "hash", K_ENUM, OFF(hash), 0, 0, 0, 0, hash_names, "blake3",
     "must be blake3 or sha256"},
    {"transfer", "bwlimit", K_BPS, OFF(bwlimit), 0, 10 * TERA, F_NONE, 0, NULL,
     "none", "must be none or 1..10T bit/s (k, M, G, T: powers of 1000)"},
    {"transfer", "per_transfer_bwlimit", K_BPS, OFF(per_transfer_bwlimit), 0,
     10 * TERA, F_NONE, 0, NULL, "none",
     "must be none or 1..10T bit/s (k, M, G, T: powers of 1000)"},
    {"network", "quic_bind_addr", K_ADDR, OFF(quic_bind_addr), 0, 0, 0, 0, NULL,
     "0.0.0.0:5000", "must be host:port or [ipv6]:port"},
    {"network", "congestion_control", K_ENUM, OFF(congestion_control), 0, 0, 0,
     0, cc_names, "bbr2", "must be bbr2, bbr, cubic or reno"},
    {"network", "transport", K_ENUM, OFF(transport), 0, 0, 0, 0,
     transport_names, "auto", "must be auto, quic or tcp"},
    {"network", "packet_fec", K_ENUM, OFF(packet_fec), 0, 0, 0, 0, pfec_names,
     "auto", "must be auto, on or off"},
    {"network", "idle_timeout", K_DUR, OFF(idle_timeout_ms), 1000, 3600000, 0,
     0, NULL, "30s", "must be 1s..1h (units ms, s, m, h)"},
    {"api", "api_bind_addr", K_ADDR, OFF(api_bind_addr), 0, 0, 0, 0, NULL,
     "127.0.0.1:8080", "must be host:port or [ipv6]:port"},
    {"api", "grpc_bind_addr", K_ADDR, OFF(grpc_bind_addr), 0, 0, 0, 0, NULL,
     "127.0.0.1:50051", "must be host:port or [ipv6]:port"},
    {"api", "cors_origins", K_ORIGINS, OFF(cors_origins), 0, 0, F_NONE, 0, NULL,
     "none",
     "must be none or a comma list of up to 16 origins: * or "
     "http(s)://host[:port]"},
    {"api", "body_limit", K_SIZE64, OFF(body_limit), 1 * KIB, 1 * GIB, 0, 0,
     NULL, "1M", "must be 1K..1G"},
    {"api", "rate_limit", K_U32, OFF(rate_limit), 1, 1000000, F_NONE, 0, NULL,
     "100", "must be none or 1..1000000 requests per second"},
    {"storage", "data_dir", K_PATH, OFF(data_dir), 0, 0, 0, 0, NULL, NULL,
     "must be a path"},
    {"storage", "download_dir", K_PATH, OFF(download_dir), 0, 0, 0, 0, NULL,
     NULL, "must be a path"},
    {"storage", "database_path", K_PATH, OFF(database_path), 0, 0, 0, 0, NULL,
     NULL, "must be a path"},
    {"storage", "cleanup_days", K_U32, OFF(cleanup_days), 0, 36500, 0, 0, NULL,
     "30", "must be 0..36500 (0 = never)"},
    {"receive", "accept_any", K_BOOL, OFF(accept_any), 0, 0, 0, 0, NULL,
     "false", "must be true/false, yes/no, on/off or 1/0"},
    {"receive", "overwrite", K_BOOL, OFF(overwrite), 0, 0, 0, 0, NULL, "false",
     "must be true/false, yes/no, on/off or 1/0"},
    {"receive", "max_file_size", K_SIZE64, OFF(max_file_size), 1,
     SFT_MAX_FILE_SIZE, F_NONE, 0, NULL, "none", "must be none or 1..1P"},
    {"log", "level", K_ENUM, OFF(log_level), 0, 0, 0, 0, level_names, "info",
     "must be error, warn, info or debug"},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))
_Static_assert(NKEYS == SFTD_CFG_NKEYS, "SFTD_CFG_NKEYS");
_Static_assert(SFTD_CFG_PATH_VALUE_MAX + sizeof("database_path = ") - 1 <=
                   SFTD_CFG_LINE_MAX,
               "a printed path fits in a line");
/* K_ENUM fields are accessed as int. */
_Static_assert(sizeof(enum sftd_cc) == sizeof(int) &&
                   sizeof(enum sftd_hash_alg) == sizeof(int) &&
                   sizeof(enum sftd_transport) == sizeof(int) &&
                   sizeof(enum sftd_pfec_mode) == sizeof(int) &&
                   sizeof(enum sftd_log_level) == sizeof(int),
               "enum size");

static const char *const sections[] = {"transfer", "network", "api",
                                       "storage",  "receive", "log"};
#define NSECTIONS (sizeof(sections) / sizeof(sections[0]))

/* ---- small helpers ---------------------------------------------------- */

static int lower(int ch) {
  return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch;
}

static int ieq(const char *a, const char *b) {
  while (*a && lower((unsigned char)*a) == lower((unsigned char)*b))
    a++, b++;
  return *a == 0 && *b == 0;
}

static int is_digit(int ch) {
  return ch >= '0' && ch <= '9';
}

/* |s| longer than |max| bytes? (bounded scan) */
static int too_long(const char *s, size_t max) {
  return strnlen(s, max + 1) > max;
}

/* Copies |s| into |out| for a message: at most ECHO_MAX bytes, control
 * bytes and non-ASCII as \xNN, "..." if cut. */
static void echo(char *out, size_t cap, const char *s) {
  size_t o = 0, i;
  for (i = 0; s[i] && i < ECHO_MAX && o + 5 < cap; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch < 0x20 || ch >= 0x7f) {
      static const char hx[] = "0123456789abcdef";
      out[o++] = '\\';
      out[o++] = 'x';
      out[o++] = hx[ch >> 4];
      out[o++] = hx[ch & 15];
    } else {
      out[o++] = (char)ch;
    }
  }
  if (s[i] && o + 4 <= cap) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = 0;
}

__attribute__((format(printf, 3, 4))) static int
fail(struct sftd_config_err *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    err->code = code;
  }
  return code;
}

static void clear_err(struct sftd_config_err *err) {
  if (err) {
    err->code = 0;
    err->msg[0] = 0;
  }
}

static void *field(struct sftd_config *c, const struct key *k) {
  return (char *)c + k->off;
}

static const void *cfield(const struct sftd_config *c, const struct key *k) {
  return (const char *)c + k->off;
}

/* ---- value parsers ---------------------------------------------------- */

static int set_why(const char **why, const char *w) {
  if (why)
    *why = w;
  return 0;
}

/* Leading decimal digits of |s|: *v, *end past them. */
static int digits(const char *s, uint64_t *v, const char **end,
                  const char **why) {
  uint64_t x = 0;
  const char *p = s;
  if (!is_digit((unsigned char)*p)) {
    set_why(why, "not a number");
    return SFT_ERR_INVAL;
  }
  for (; is_digit((unsigned char)*p); p++) {
    unsigned d = (unsigned)(*p - '0');
    if (x > (UINT64_MAX - d) / 10) {
      set_why(why, "number too large");
      return SFT_ERR_RANGE;
    }
    x = x * 10 + d;
  }
  *v = x;
  *end = p;
  return 0;
}

static int mul(uint64_t v, uint64_t m, uint64_t *out, const char **why) {
  if (m != 0 && v > UINT64_MAX / m) {
    set_why(why, "number too large");
    return SFT_ERR_RANGE;
  }
  *out = v * m;
  return 0;
}

int sftd_parse_uint(const char *s, uint64_t max, uint64_t *out,
                    const char **why) {
  uint64_t v;
  const char *end;
  int rc;
  if (too_long(s, NUM_MAX_LEN)) {
    set_why(why, "value too long");
    return SFT_ERR_INVAL;
  }
  if ((rc = digits(s, &v, &end, why)) != 0)
    return rc;
  if (*end) {
    set_why(why, "not a number");
    return SFT_ERR_INVAL;
  }
  if (v > max) {
    set_why(why, "out of range");
    return SFT_ERR_RANGE;
  }
  *out = v;
  return 0;
}

int sftd_parse_bits_per_sec(const char *s, uint64_t *bps, const char **why) {
  uint64_t v, m = 1;
  const char *end;
  int rc;
  if (too_long(s, NUM_MAX_LEN)) {
    set_why(why, "value too long");
    return SFT_ERR_INVAL;
  }
  if (ieq(s, "none")) {
    *bps = 0;
    return 0;
  }
  if ((rc = digits(s, &v, &end, why)) != 0)
    return rc;
  if (*end) {
    switch (*end) {
    case 'k':
    case 'K':
      m = 1000ull;
      break;
    case 'M':
      m = 1000000ull;
      break;
    case 'G':
      m = 1000000000ull;
      break;
    case 'T':
      m = TERA;
      break;
    default:
      set_why(why, "unknown unit (use k, M, G or T: powers of 1000 bit/s)");
      return SFT_ERR_INVAL;
    }
    if (end[1]) {
      set_why(why, "unknown unit (use k, M, G or T: powers of 1000 bit/s)");
      return SFT_ERR_INVAL;
    }
  }
  return mul(v, m, bps, why);
}

int sftd_parse_size(const char *s, uint64_t *bytes, const char **why) {
  uint64_t v, m = 1;
  const char *end;
  int rc;
  if (too_long(s, NUM_MAX_LEN)) {
    set_why(why, "value too long");
    return SFT_ERR_INVAL;
  }
  if ((rc = digits(s, &v, &end, why)) != 0)
    return rc;
  if (*end) {
    switch (lower((unsigned char)*end)) {
    case 'k':
      m = KIB;
      break;
    case 'm':
      m = MIB;
      break;
    case 'g':
      m = GIB;
      break;
    case 't':
      m = GIB * KIB;
      break;
    case 'p':
      m = GIB * MIB;
      break;
    default:
      set_why(why, "unknown unit (use K, M, G, T or P: powers of 1024)");
      return SFT_ERR_INVAL;
    }
    if (end[1] && strcmp(end + 1, "iB") != 0) {
      set_why(why, "unknown unit (use K, M, G, T or P: powers of 1024)");
      return SFT_ERR_INVAL;
    }
  }
  return mul(v, m, bytes, why);
}

int sftd_parse_duration_ms(const char *s, uint64_t *ms, const char **why) {
  uint64_t v, m;
  const char *end;
  int rc;
  if (too_long(s, NUM_MAX_LEN)) {
    set_why(why, "value too long");
    return SFT_ERR_INVAL;
  }
  if ((rc = digits(s, &v, &end, why)) != 0)
    return rc;
  if (strcmp(end, "ms") == 0)
    m = 1;
  else if (strcmp(end, "s") == 0)
    m = 1000;
  else if (strcmp(end, "m") == 0)
    m = 60000;
  else if (strcmp(end, "h") == 0)
    m = 3600000;
  else if (*end == 0 && v == 0)
    m = 1;
  else {
    set_why(why, *end ? "unknown unit (use ms, s, m or h)"
                      : "missing unit (ms, s, m or h)");
    return SFT_ERR_INVAL;
  }
  return mul(v, m, ms, why);
}

int sftd_parse_bool(const char *s, int *out, const char **why) {
  static const char *const t[] = {"true", "yes", "on", "1"};
  static const char *const f[] = {"false", "no", "off", "0"};
  if (!too_long(s, NUM_MAX_LEN))
    for (size_t i = 0; i < 4; i++) {
      if (ieq(s, t[i])) {
        *out = 1;
        return 0;
      }
      if (ieq(s, f[i])) {
        *out = 0;
        return 0;
      }
    }
  set_why(why, "must be true/false, yes/no, on/off or 1/0");
  return SFT_ERR_INVAL;
}

/* A DNS name: labels of [A-Za-z0-9-], 1..63 bytes, not starting or ending
 * with '-', total <= 253. A trailing dot is not accepted. */
static int dns_name_ok(const char *h, size_t n) {
  size_t lab = 0;
  if (n == 0 || n > 253)
    return 0;
  for (size_t i = 0; i <= n; i++) {
    char ch = i < n ? h[i] : '.';
    if (ch == '.') {
      if (lab == 0 || lab > 63 || h[i - 1] == '-')
        return 0;
      lab = 0;
    } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
               is_digit((unsigned char)ch) || ch == '-') {
      if (lab == 0 && ch == '-')
        return 0;
      lab++;
    } else {
      return 0;
    }
  }
  return 1;
}

int sftd_parse_hostport(const char *s, struct sftd_hostport *out,
                        const char **why) {
  char host[SFTD_CFG_HOST_MAX + 2];
  const char *colon;
  size_t hn;
  int v6 = 0;
  uint64_t port;
  if (too_long(s, ADDR_MAX_LEN)) {
    set_why(why, "address too long");
    return SFT_ERR_INVAL;
  }
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (!rb) {
      set_why(why, "missing ']' after an IPv6 address");
      return SFT_ERR_INVAL;
    }
    hn = (size_t)(rb - s - 1);
    if (hn >= sizeof(host)) {
      set_why(why, "address too long");
      return SFT_ERR_INVAL;
    }
    memcpy(host, s + 1, hn);
    host[hn] = 0;
    unsigned char tmp[16];
    if (inet_pton(AF_INET6, host, tmp) != 1) {
      set_why(why, "bad IPv6 address");
      return SFT_ERR_INVAL;
    }
    if (rb[1] != ':') {
      set_why(why, "missing :port");
      return SFT_ERR_INVAL;
    }
    colon = rb + 1;
    v6 = 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon) {
      set_why(why, "missing :port");
      return SFT_ERR_INVAL;
    }
    if (memchr(s, ':', (size_t)(colon - s))) {
      set_why(why, "an IPv6 address needs brackets: [addr]:port");
      return SFT_ERR_INVAL;
    }
    hn = (size_t)(colon - s);
    if (hn == 0) {
      set_why(why, "missing host");
      return SFT_ERR_INVAL;
    }
    if (hn >= SFTD_CFG_HOST_MAX) {
      set_why(why, "host name too long");
      return SFT_ERR_INVAL;
    }
    memcpy(host, s, hn);
    host[hn] = 0;
    size_t nd = strspn(host, "0123456789.");
    if (nd == hn) { /* all digits and dots: must be IPv4 */
      unsigned char tmp[4];
      if (inet_pton(AF_INET, host, tmp) != 1) {
        set_why(why, "bad IPv4 address");
        return SFT_ERR_INVAL;
      }
    } else if (!dns_name_ok(host, hn)) {
      set_why(why, "bad host name");
      return SFT_ERR_INVAL;
    }
  }
  if (colon[1] == 0) {
    set_why(why, "missing port");
    return SFT_ERR_INVAL;
  }
  if (too_long(colon + 1, 5) ||
      sftd_parse_uint(colon + 1, 65535, &port, NULL) != 0) {
    set_why(why, "port must be 0..65535");
    return SFT_ERR_INVAL;
  }
  memcpy(out->host, host, hn + 1);
  out->port = (uint16_t)port;
  out->ipv6 = v6;
  return 0;
}

int sftd_format_hostport(const struct sftd_hostport *hp, char *buf,
                         size_t cap) {
  int n = snprintf(buf, cap, hp->ipv6 ? "[%s]:%u" : "%s:%u", hp->host,
                   (unsigned)hp->port);
  if (n < 0 || (size_t)n >= cap)
    return SFT_ERR_NOSPACE;
  return n;
}

/* One origin: "*" or http(s)://host[:port] with host a DNS name, IPv4 or
 * [IPv6]; no path. */
static int origin_ok(const char *o, size_t n) {
  size_t p;
  if (n == 1 && o[0] == '*')
    return 1;
  if (n > 7 && memcmp(o, "http://", 7) == 0)
    p = 7;
  else if (n > 8 && memcmp(o, "https://", 8) == 0)
    p = 8;
  else
    return 0;
  char tmp[ADDR_MAX_LEN + 8];
  struct sftd_hostport hp;
  size_t hn = n - p;
  if (hn + 7 >= sizeof(tmp))
    return 0;
  memcpy(tmp, o + p, hn);
  tmp[hn] = 0;
  /* With a port, the host:port parser does the work; without, add one. */
  int has_port = tmp[hn - 1] != ']' && strrchr(tmp, ':') != NULL;
  if (!has_port)
    memcpy(tmp + hn, ":1", 3);
  return sftd_parse_hostport(tmp, &hp, NULL) == 0;
}

/* "none" or "a, b,c" -> "a,b,c" in |out|. */
static int parse_origins(const char *s, char *out, const char **why) {
  char buf[SFTD_CFG_ORIGINS_MAX];
  size_t o = 0, count = 0;
  if (too_long(s, SFTD_CFG_ORIGINS_MAX - 1)) {
    set_why(why, "value too long");
    return SFT_ERR_INVAL;
  }
  if (ieq(s, "none")) {
    out[0] = 0;
    return 0;
  }
  for (const char *p = s;;) {
    const char *comma = strchr(p, ',');
    const char *e = comma ? comma : p + strlen(p);
    while (p < e && (*p == ' ' || *p == '\t'))
      p++;
    const char *q = e;
    while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
      q--;
    size_t n = (size_t)(q - p);
    if (n == 0 || !origin_ok(p, n)) {
      set_why(why, "bad origin (use * or http(s)://host[:port], comma-"
                   "separated)");
      return SFT_ERR_INVAL;
    }
    if (++count > ORIGINS_MAX_N) {
      set_why(why, "more than 16 origins");
      return SFT_ERR_INVAL;
    }
    if (o)
      buf[o++] = ',';
    memcpy(buf + o, p, n); /* o + n <= strlen(s) < sizeof(buf) */
    o += n;
    if (!comma)
      break;
    p = comma + 1;
  }
  buf[o] = 0;
  memcpy(out, buf, o + 1);
  return 0;
}

/* ---- setting one value ----------------------------------------------- */

/* Parses |v| for key |k| into |c|. On error returns the code and sets
 * *reason. */
static int set_value(struct sftd_config *c, const struct key *k, const char *v,
                     const char **reason) {
  uint64_t x = 0;
  const char *why = NULL;
  int rc = 0;

  if (*v == 0) {
    *reason = "empty value";
    return SFT_ERR_INVAL;
  }
  for (const char *p = v; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) {
      *reason = "control character in value";
      return SFT_ERR_INVAL;
    }
  switch (k->type) {
  case K_U32:
  case K_SIZE32:
  case K_SIZE64:
  case K_BPS:
  case K_DUR:
    if ((k->flags & F_AUTO) && ieq(v, "auto")) {
      x = k->autoval;
      break;
    }
    if ((k->flags & F_NONE) && ieq(v, "none")) {
      x = 0;
      break;
    }
    if (k->type == K_U32)
      rc = sftd_parse_uint(v, UINT64_MAX, &x, &why);
    else if (k->type == K_BPS)
      rc = sftd_parse_bits_per_sec(v, &x, &why);
    else if (k->type == K_DUR)
      rc = sftd_parse_duration_ms(v, &x, &why);
    else
      rc = sftd_parse_size(v, &x, &why);
    if (rc == SFT_ERR_RANGE || (rc == 0 && (x < k->min || x > k->max) &&
                                !(x == 0 && (k->flags & F_NONE)))) {
      *reason = k->range;
      return SFT_ERR_INVAL;
    }
    if (rc) {
      *reason = why;
      return SFT_ERR_INVAL;
    }
    break;
  case K_BOOL: {
    int b;
    if (sftd_parse_bool(v, &b, NULL)) {
      *reason = k->range;
      return SFT_ERR_INVAL;
    }
    *(int *)field(c, k) = b;
    return 0;
  }
  case K_ENUM:
    for (size_t i = 0; k->names[i]; i++)
      if (!too_long(v, NUM_MAX_LEN) && ieq(v, k->names[i])) {
        *(int *)field(c, k) = (int)i;
        return 0;
      }
    *reason = k->range;
    return SFT_ERR_INVAL;
  case K_ADDR: {
    struct sftd_hostport hp;
    if (sftd_parse_hostport(v, &hp, &why)) {
      *reason = why;
      return SFT_ERR_INVAL;
    }
    *(struct sftd_hostport *)field(c, k) = hp;
    return 0;
  }
  case K_PATH: {
    size_t n = strnlen(v, SFTD_CFG_PATH_MAX);
    if (n > SFTD_CFG_PATH_VALUE_MAX) {
      *reason = "path longer than 4064 bytes";
      return SFT_ERR_INVAL;
    }
    memcpy(field(c, k), v, n + 1);
    return 0;
  }
  case K_ORIGINS:
    if (parse_origins(v, field(c, k), &why)) {
      *reason = why;
      return SFT_ERR_INVAL;
    }
    return 0;
  }
  if (k->type == K_U32 || k->type == K_SIZE32)
    *(uint32_t *)field(c, k) = (uint32_t)x;
  else
    *(uint64_t *)field(c, k) = x;
  return 0;
}

static void set_origin(struct sftd_config *c, size_t i, const char *origin) {
  snprintf(c->origin[i], sizeof(c->origin[i]), "%s", origin);
}

/* Sets key |i| from |v|; on error formats "<origin>: key = v: reason". */
static int set_key(struct sftd_config *c, size_t i, const char *v,
                   const char *origin, struct sftd_config_err *err) {
  const char *reason = "bad value";
  int rc = set_value(c, &keys[i], v, &reason);
  if (rc) {
    char e[ECHO_MAX * 4 + 8];
    echo(e, sizeof(e), v);
    return fail(err, rc, "%s: %s = %s: %s", origin, keys[i].name, e, reason);
  }
  set_origin(c, i, origin);
  return 0;
}

static int find_key(const char *section, const char *name) {
  for (size_t i = 0; i < NKEYS; i++)
    if ((!section || strcmp(keys[i].section, section) == 0) &&
        strcmp(keys[i].name, name) == 0)
      return (int)i;
  return -1;
}

static int known_section(const char *s) {
  for (size_t i = 0; i < NSECTIONS; i++)
    if (strcmp(sections[i], s) == 0)
      return 1;
  return 0;
}

void sftd_config_defaults(struct sftd_config *c) {
  memset(c, 0, sizeof(*c));
  for (size_t i = 0; i < NKEYS; i++) {
    const char *reason;
    if (keys[i].def)
      (void)set_value(c, &keys[i], keys[i].def, &reason); /* tested */
    set_origin(c, i, "default");
  }
}

/* ---- the file --------------------------------------------------------- */

static int is_blank(int ch) {
  return ch == ' ' || ch == '\t';
}

int sftd_config_parse_buffer(struct sftd_config *c, const char *name,
                             const char *buf, size_t len,
                             struct sftd_config_err *err) {
  char line[SFTD_CFG_LINE_MAX + 1];
  char section[SFTD_CFG_LINE_MAX + 1];
  unsigned seen[NKEYS]; /* line where each key was set in this file */
  size_t pos = 0;
  unsigned lineno = 0;

  clear_err(err);
  section[0] = 0;
  memset(seen, 0, sizeof(seen));
  if (len > SFTD_CFG_FILE_MAX)
    return fail(err, SFT_ERR_TOO_LARGE, "%s: file larger than %u bytes", name,
                SFTD_CFG_FILE_MAX);
  if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
    pos = 3;
  while (pos < len) {
    const char *start = buf + pos;
    const char *nl = memchr(start, '\n', len - pos);
    size_t n = nl ? (size_t)(nl - start) : len - pos;
    pos += n + (nl != NULL);
    lineno++;
    if (n > 0 && start[n - 1] == '\r')
      n--;
    if (n > SFTD_CFG_LINE_MAX)
      return fail(err, SFT_ERR_MALFORMED, "%s:%u: line longer than %u bytes",
                  name, lineno, SFTD_CFG_LINE_MAX);
    for (size_t i = 0; i < n; i++) {
      unsigned char ch = (unsigned char)start[i];
      if (ch == 0)
        return fail(err, SFT_ERR_MALFORMED, "%s:%u: NUL byte", name, lineno);
      if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
        return fail(err, SFT_ERR_MALFORMED, "%s:%u: control character 0x%02x",
                    name, lineno, ch);
    }
    /* trim */
    while (n > 0 && is_blank((unsigned char)*start))
      start++, n--;
    while (n > 0 && is_blank((unsigned char)start[n - 1]))
      n--;
    if (n == 0 || *start == '#' || *start == ';')
      continue;
    memcpy(line, start, n);
    line[n] = 0;

    if (line[0] == '[') {
      if (line[n - 1] != ']')
        return fail(err, SFT_ERR_MALFORMED, "%s:%u: section header without ']'",
                    name, lineno);
      line[n - 1] = 0;
      char *s = line + 1;
      while (is_blank((unsigned char)*s))
        s++;
      size_t sn = strlen(s);
      while (sn > 0 && is_blank((unsigned char)s[sn - 1]))
        s[--sn] = 0;
      if (!known_section(s)) {
        char e[ECHO_MAX * 4 + 8];
        echo(e, sizeof(e), s);
        return fail(err, SFT_ERR_INVAL,
                    "%s:%u: [%s]: unknown section (known: transfer, network, "
                    "api, storage, receive, log)",
                    name, lineno, e);
      }
      memcpy(section, s, sn + 1);
      continue;
    }

    char *eq = strchr(line, '=');
    if (!eq)
      return fail(err, SFT_ERR_MALFORMED,
                  "%s:%u: expected 'key = value', '[section]' or a comment",
                  name, lineno);
    char *k = line, *v = eq + 1;
    char *ke = eq;
    while (ke > k && is_blank((unsigned char)ke[-1]))
      ke--;
    *ke = 0;
    while (is_blank((unsigned char)*v))
      v++;
    if (*k == 0)
      return fail(err, SFT_ERR_MALFORMED, "%s:%u: missing key before '='", name,
                  lineno);
    char ek[ECHO_MAX * 4 + 8];
    echo(ek, sizeof(ek), k);
    if (section[0] == 0)
      return fail(err, SFT_ERR_INVAL, "%s:%u: %s: key outside a [section]",
                  name, lineno, ek);
    int i = find_key(section, k);
    if (i < 0) {
      int other = find_key(NULL, k);
      if (other >= 0)
        return fail(err, SFT_ERR_INVAL,
                    "%s:%u: %s: unknown key in [%s] (it belongs in [%s])", name,
                    lineno, ek, section, keys[other].section);
      return fail(err, SFT_ERR_INVAL, "%s:%u: %s: unknown key in [%s]", name,
                  lineno, ek, section);
    }
    if (seen[i])
      return fail(err, SFT_ERR_INVAL,
                  "%s:%u: %s: duplicate key (first set on line %u)", name,
                  lineno, ek, seen[i]);
    seen[i] = lineno;
    char origin[SFTD_CFG_ORIGIN_MAX];
    snprintf(origin, sizeof(origin), "%s:%u", name, lineno);
    int rc = set_key(c, (size_t)i, v, origin, err);
    if (rc)
      return rc;
  }
  return 0;
}

int sftd_config_load_file(struct sftd_config *c, const char *path,
                          struct sftd_config_err *err) {
  clear_err(err);
  FILE *f = fopen(path, "rb");
  if (!f)
    return fail(err, errno == ENOENT ? SFT_ERR_NOT_FOUND : SFT_ERR_IO,
                "%s: cannot open: %s", path, strerror(errno));
  char *buf = malloc(SFTD_CFG_FILE_MAX + 1);
  if (!buf) {
    fclose(f);
    return fail(err, SFT_ERR_NOMEM, "%s: out of memory", path);
  }
  size_t n = fread(buf, 1, SFTD_CFG_FILE_MAX + 1, f);
  int rd_err = ferror(f), e = errno;
  fclose(f);
  int rc;
  if (rd_err)
    rc = fail(err, SFT_ERR_IO, "%s: cannot read: %s", path, strerror(e));
  else
    rc = sftd_config_parse_buffer(c, path, buf, n, err);
  free(buf);
  return rc;
}

/* ---- environment and flags ------------------------------------------- */

/* "SFT_" + upper(section) + "_" */
static size_t env_prefix(const char *section, char *out, size_t cap) {
  size_t o = 0;
  memcpy(out, "SFT_", 4);
  o = 4;
  for (const char *p = section; *p && o + 2 < cap; p++)
    out[o++] = (char)(*p - 'a' + 'A');
  out[o++] = '_';
  out[o] = 0;
  return o;
}

/* Does env name tail |t| (up to '=') equal upper(|key|)? */
static int env_key_eq(const char *t, const char *key) {
  for (; *key; key++, t++) {
    char up = *key >= 'a' && *key <= 'z' ? (char)(*key - 'a' + 'A') : *key;
    if (*t != up)
      return 0;
  }
  return *t == '=';
}

int sftd_config_apply_env(struct sftd_config *c, char *const *envp,
                          struct sftd_config_err *err) {
  int applied[NKEYS];
  clear_err(err);
  memset(applied, 0, sizeof(applied));
  if (!envp)
    return 0;
  for (char *const *e = envp; *e; e++) {
    const char *ent = *e;
    if (strncmp(ent, "SFT_", 4) != 0)
      continue;
    for (size_t s = 0; s < NSECTIONS; s++) {
      char pre[32];
      size_t pn = env_prefix(sections[s], pre, sizeof(pre));
      if (strncmp(ent, pre, pn) != 0)
        continue;
      const char *eq = strchr(ent, '=');
      if (!eq)
        break;
      char var[SFTD_CFG_ORIGIN_MAX - 16];
      size_t vn = (size_t)(eq - ent);
      if (vn >= sizeof(var))
        vn = sizeof(var) - 1;
      memcpy(var, ent, vn);
      var[vn] = 0;
      char origin[SFTD_CFG_ORIGIN_MAX];
      snprintf(origin, sizeof(origin), "environment %s", var);
      int found = -1;
      for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, sections[s]) == 0 &&
            env_key_eq(ent + pn, keys[i].name)) {
          found = (int)i;
          break;
        }
      if (found < 0) {
        char ev[ECHO_MAX * 4 + 8];
        echo(ev, sizeof(ev), var);
        return fail(err, SFT_ERR_INVAL,
                    "environment %s: unknown setting in [%s] (%s* names are "
                    "reserved for the configuration)",
                    ev, sections[s], pre);
      }
      if (applied[found]++)
        break; /* the first occurrence wins, as with getenv */
      if (too_long(eq + 1, SFTD_CFG_LINE_MAX))
        return fail(err, SFT_ERR_INVAL, "%s: value longer than %u bytes",
                    origin, SFTD_CFG_LINE_MAX);
      int rc = set_key(c, (size_t)found, eq + 1, origin, err);
      if (rc)
        return rc;
      break;
    }
  }
  return 0;
}

int sftd_config_set(struct sftd_config *c, const char *name, const char *value,
                    const char *origin, struct sftd_config_err *err) {
  char sec[32], label[SFTD_CFG_ORIGIN_MAX], en[ECHO_MAX * 4 + 8];
  const char *dot = strchr(name, '.');
  int i = -1;
  clear_err(err);
  echo(en, sizeof(en), name);
  if (dot) {
    size_t sn = (size_t)(dot - name);
    if (sn < sizeof(sec)) {
      memcpy(sec, name, sn);
      sec[sn] = 0;
      i = find_key(sec, dot + 1);
    }
  } else {
    i = find_key(NULL, name);
  }
  if (!origin) {
    snprintf(label, sizeof(label), "--set %s", en);
    origin = label;
  }
  if (i < 0)
    return fail(err, SFT_ERR_INVAL, "%s: unknown setting '%s'", origin, en);
  if (too_long(value, SFTD_CFG_LINE_MAX))
    return fail(err, SFT_ERR_INVAL, "%s: value longer than %u bytes", origin,
                SFTD_CFG_LINE_MAX);
  return set_key(c, (size_t)i, value, origin, err);
}

int sftd_config_set_arg(struct sftd_config *c, const char *arg,
                        const char *origin, struct sftd_config_err *err) {
  char name[64], label[SFTD_CFG_ORIGIN_MAX], ea[ECHO_MAX * 4 + 8];
  const char *eq = strchr(arg, '=');
  clear_err(err);
  echo(ea, sizeof(ea), arg);
  if (!origin) {
    snprintf(label, sizeof(label), "--set %s", ea);
    origin = label;
  }
  if (!eq || eq == arg)
    return fail(err, SFT_ERR_INVAL, "%s: expected section.key=value", origin);
  size_t n = (size_t)(eq - arg);
  if (n >= sizeof(name))
    return fail(err, SFT_ERR_INVAL, "%s: unknown setting", origin);
  memcpy(name, arg, n);
  name[n] = 0;
  return sftd_config_set(c, name, eq + 1, origin, err);
}

int sftd_config_check(const struct sftd_config *c,
                      struct sftd_config_err *err) {
  clear_err(err);
  if (c->parity_shards != SFTD_PARITY_AUTO &&
      c->data_shards + c->parity_shards > SFT_MAX_STRIPE) {
    int ki = find_key("transfer", "data_shards");
    int mi = find_key("transfer", "parity_shards");
    return fail(err, SFT_ERR_INVAL,
                "data_shards = %u (%s) + parity_shards = %u (%s) = %u: must "
                "be <= 255",
                c->data_shards, c->origin[ki], c->parity_shards, c->origin[mi],
                c->data_shards + c->parity_shards);
  }
  return 0;
}

int sftd_config_load(struct sftd_config *c, const char *path, char *const *envp,
                     const char *const *args, size_t nargs,
                     struct sftd_config_err *err) {
  int rc;
  sftd_config_defaults(c);
  if (path && (rc = sftd_config_load_file(c, path, err)) != 0)
    return rc;
  if ((rc = sftd_config_apply_env(c, envp, err)) != 0)
    return rc;
  for (size_t i = 0; i < nargs; i++)
    if ((rc = sftd_config_set_arg(c, args[i], NULL, err)) != 0)
      return rc;
  return sftd_config_check(c, err);
}

int sftd_config_database_path(const struct sftd_config *c, const char *data_dir,
                              char *buf, size_t cap) {
  int n = c->database_path[0] ? snprintf(buf, cap, "%s", c->database_path)
                              : snprintf(buf, cap, "%s/sft.db", data_dir);
  return n < 0 || (size_t)n >= cap ? SFT_ERR_TOO_LARGE : 0;
}

/* ---- printing --------------------------------------------------------- */

struct out {
  char *buf;
  size_t cap, len;
  int full;
};

__attribute__((format(printf, 2, 3))) static void put(struct out *o,
                                                      const char *fmt, ...) {
  va_list ap;
  if (o->full)
    return;
  va_start(ap, fmt);
  int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
  va_end(ap);
  if (n < 0 || (size_t)n >= o->cap - o->len) {
    o->full = 1;
    return;
  }
  o->len += (size_t)n;
}

/* |v| with the largest suffix that divides it exactly. */
static void fmt_scaled(char *b, size_t cap, uint64_t v, const uint64_t *mult,
                       const char *const *suf, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (v != 0 && v % mult[i] == 0) {
      snprintf(b, cap, "%llu%s", (unsigned long long)(v / mult[i]), suf[i]);
      return;
    }
  snprintf(b, cap, "%llu", (unsigned long long)v);
}

static void format_value(const struct sftd_config *c, const struct key *k,
                         char *b, size_t cap) {
  static const uint64_t bin_m[] = {GIB * MIB, GIB * KIB, GIB, MIB, KIB};
  static const char *const bin_s[] = {"P", "T", "G", "M", "K"};
  static const uint64_t dec_m[] = {TERA, 1000000000ull, 1000000ull, 1000ull};
  static const char *const dec_s[] = {"T", "G", "M", "k"};
  static const uint64_t dur_m[] = {3600000, 60000, 1000};
  static const char *const dur_s[] = {"h", "m", "s"};
  const void *f = cfield(c, k);
  uint64_t x = 0;
  switch (k->type) {
  case K_U32:
  case K_SIZE32:
    x = *(const uint32_t *)f;
    break;
  case K_SIZE64:
  case K_BPS:
  case K_DUR:
    x = *(const uint64_t *)f;
    break;
  case K_BOOL:
    snprintf(b, cap, "%s", *(const int *)f ? "true" : "false");
    return;
  case K_ENUM:
    snprintf(b, cap, "%s", k->names[*(const int *)f]);
    return;
  case K_ADDR:
    (void)sftd_format_hostport(f, b, cap);
    return;
  case K_PATH:
    snprintf(b, cap, "%s", (const char *)f);
    return;
  case K_ORIGINS:
    snprintf(b, cap, "%s", *(const char *)f ? (const char *)f : "none");
    return;
  }
  if ((k->flags & F_AUTO) && x == k->autoval)
    snprintf(b, cap, "auto");
  else if ((k->flags & F_NONE) && x == 0)
    snprintf(b, cap, "none");
  else if (k->type == K_SIZE32 || k->type == K_SIZE64)
    fmt_scaled(b, cap, x, bin_m, bin_s, 5);
  else if (k->type == K_BPS)
    fmt_scaled(b, cap, x, dec_m, dec_s, 4);
  else if (k->type == K_DUR && x % 1000 != 0)
    snprintf(b, cap, "%llums", (unsigned long long)x);
  else if (k->type == K_DUR)
    fmt_scaled(b, cap, x, dur_m, dur_s, 3); /* 0 prints as "0" */
  else
    snprintf(b, cap, "%llu", (unsigned long long)x);
}

int sftd_config_print(const struct sftd_config *c, unsigned flags, char *buf,
                      size_t cap, size_t *len) {
  struct out o = {buf, cap, 0, cap == 0};
  char v[SFTD_CFG_PATH_MAX + 16];
  const char *cur = NULL;
  put(&o, "# sft effective configuration (sft daemon --print-config)\n");
  for (size_t i = 0; i < NKEYS; i++) {
    const struct key *k = &keys[i];
    if (!cur || strcmp(cur, k->section) != 0) {
      put(&o, "\n[%s]\n", k->section);
      cur = k->section;
    }
    if ((flags & SFTD_PRINT_ORIGINS) && strcmp(c->origin[i], "default") != 0)
      put(&o, "# from %s\n", c->origin[i]);
    format_value(c, k, v, sizeof(v));
    if (k->type == K_PATH && v[0] == 0)
      put(&o, "# %s = (unset)\n", k->name);
    else
      put(&o, "%s = %s\n", k->name, v);
  }
  if (o.full) {
    if (cap)
      buf[0] = 0;
    return SFT_ERR_NOSPACE;
  }
  if (len)
    *len = o.len;
  return 0;
}

int sftd_config_write(const struct sftd_config *c, unsigned flags, FILE *f) {
  char *buf = malloc(SFTD_CFG_PRINT_MAX);
  size_t n = 0;
  if (!buf)
    return SFT_ERR_NOMEM;
  int rc = sftd_config_print(c, flags, buf, SFTD_CFG_PRINT_MAX, &n);
  if (rc == 0 && (fwrite(buf, 1, n, f) != n || fflush(f) != 0))
    rc = SFT_ERR_IO;
  free(buf);
  return rc;
}

int sftd_config_equal(const struct sftd_config *a,
                      const struct sftd_config *b) {
  for (size_t i = 0; i < NKEYS; i++) {
    const struct key *k = &keys[i];
    const void *x = cfield(a, k), *y = cfield(b, k);
    switch (k->type) {
    case K_U32:
    case K_SIZE32:
      if (*(const uint32_t *)x != *(const uint32_t *)y)
        return 0;
      break;
    case K_SIZE64:
    case K_BPS:
    case K_DUR:
      if (*(const uint64_t *)x != *(const uint64_t *)y)
        return 0;
      break;
    case K_BOOL:
    case K_ENUM:
      if (*(const int *)x != *(const int *)y)
        return 0;
      break;
    case K_ADDR: {
      const struct sftd_hostport *p = x, *q = y;
      if (p->port != q->port || p->ipv6 != q->ipv6 ||
          strcmp(p->host, q->host) != 0)
        return 0;
      break;
    }
    case K_PATH:
    case K_ORIGINS:
      if (strcmp(x, y) != 0)
        return 0;
      break;
    }
  }
  return 1;
}
