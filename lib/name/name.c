/* Validation of received relative names. See sft/name.h and
 * docs/internals/security.md for the rules and the reasons behind them. */
#include "sft/name.h"

#include <stdint.h>
#include <string.h>

#include "sft/err.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* Decodes one UTF-8 code point from |s| (|n| > 0 bytes available). Returns
 * its length 1..4 and sets |*cp|, or 0 for anything but the shortest form of
 * a scalar value (stray continuation, truncation, overlong, surrogate,
 * > U+10FFFF). */
static size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
  uint8_t b0 = s[0];
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    if (n < 2 || (s[1] & 0xc0) != 0x80)
      return 0;
    *cp = ((uint32_t)(b0 & 0x1f) << 6) | (s[1] & 0x3f);
    return 2;
  }
  if (b0 >= 0xe0 && b0 <= 0xef) {
    uint32_t c;
    if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
      return 0;
    c = ((uint32_t)(b0 & 0x0f) << 12) | ((uint32_t)(s[1] & 0x3f) << 6) |
        (s[2] & 0x3f);
    if (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))
      return 0;
    *cp = c;
    return 3;
  }
  if (b0 >= 0xf0 && b0 <= 0xf4) {
    uint32_t c;
    if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
        (s[3] & 0xc0) != 0x80)
      return 0;
    c = ((uint32_t)(b0 & 0x07) << 18) | ((uint32_t)(s[1] & 0x3f) << 12) |
        ((uint32_t)(s[2] & 0x3f) << 6) | (s[3] & 0x3f);
    if (c < 0x10000 || c > 0x10ffff)
      return 0;
    *cp = c;
    return 4;
  }
  return 0; /* 0x80..0xc1 (continuation or overlong lead), 0xf5..0xff */
}

/* C0, DEL, C1, and the Unicode line and paragraph separators (they break a
 * log line as surely as '\n'). */
static int cp_is_control(uint32_t c) {
  return c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f) || c == 0x2028 ||
         c == 0x2029;
}

/* Characters that render as nothing (or as a blank) or reorder the text
 * around them: a name containing one can look like another name. */
static int cp_is_invisible(uint32_t c) {
  return c == 0x00ad                        /* soft hyphen */
         || c == 0x034f                     /* combining grapheme joiner */
         || c == 0x061c                     /* arabic letter mark (bidi) */
         || c == 0x115f || c == 0x1160      /* hangul fillers */
         || c == 0x17b4 || c == 0x17b5      /* khmer inherent vowels */
         || c == 0x180e                     /* mongolian vowel separator */
         || (c >= 0x200b && c <= 0x200f)    /* ZWSP ZWNJ ZWJ LRM RLM */
         || (c >= 0x202a && c <= 0x202e)    /* LRE RLE PDF LRO RLO */
         || (c >= 0x2060 && c <= 0x206f)    /* WJ, invisible ops, LRI..PDI */
         || c == 0x3164                     /* hangul filler */
         || c == 0xfeff                     /* BOM / ZWNBSP */
         || c == 0xffa0                     /* halfwidth hangul filler */
         || (c >= 0xfff9 && c <= 0xfffb)    /* interlinear annotation */
         || c == 0xfffe || c == 0xffff      /* non-characters */
         || (c >= 0xe0000 && c <= 0xe007f); /* tag characters */
}

static uint8_t ascii_upper(uint8_t c) {
  return (c >= 'a' && c <= 'z') ? (uint8_t)(c - 'a' + 'A') : c;
}

static int ascii_ieq(const uint8_t *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (ascii_upper(a[i]) != ascii_upper((uint8_t)b[i]))
      return 0;
  return 1;
}

/* Windows device names: the part before the first '.', trailing spaces
 * removed, compared without regard to ASCII case. COM and LPT take a digit
 * 0-9 or a superscript 1, 2, 3 (U+00B9, U+00B2, U+00B3). */
static int is_reserved_device(const uint8_t *c, size_t len) {
  static const char *const three[] = {"CON", "PRN", "AUX", "NUL"};
  size_t n = 0;
  while (n < len && c[n] != '.')
    n++;
  while (n > 0 && c[n - 1] == ' ')
    n--;
  if (n == 3) {
    for (size_t i = 0; i < sizeof(three) / sizeof(three[0]); i++)
      if (ascii_ieq(c, three[i], 3))
        return 1;
    return 0;
  }
  if ((n == 4 || n == 5) &&
      (ascii_ieq(c, "COM", 3) || ascii_ieq(c, "LPT", 3))) {
    if (n == 4)
      return c[3] >= '0' && c[3] <= '9';
    return c[3] == 0xc2 && (c[4] == 0xb9 || c[4] == 0xb2 || c[4] == 0xb3);
  }
  if (n == 6 && ascii_ieq(c, "CONIN$", 6))
    return 1;
  if (n == 7 && ascii_ieq(c, "CONOUT$", 7))
    return 1;
  return 0;
}

/* Rules that look at one whole component (|len| > 0 bytes, already scanned
 * for bad characters). */
static enum sft_name_reason check_component(const uint8_t *c, size_t len) {
  if ((len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
    return SFT_NAME_DOT_COMPONENT;
  if (len > SFT_MAX_NAME_COMPONENT)
    return SFT_NAME_COMPONENT_TOO_LONG;
  if (c[len - 1] == '.' || c[len - 1] == ' ')
    return SFT_NAME_TRAILING_DOT_SPACE;
  if (is_reserved_device(c, len))
    return SFT_NAME_RESERVED_DEVICE;
  if (len >= SFT_NAME_PART_SUFFIX_LEN &&
      ascii_ieq(c + len - SFT_NAME_PART_SUFFIX_LEN, SFT_NAME_PART_SUFFIX,
                SFT_NAME_PART_SUFFIX_LEN))
    return SFT_NAME_PART_SUFFIX_USED;
  return SFT_NAME_OK;
}

/* The whole check; fills |parts| when not NULL. */
static enum sft_name_reason validate(const uint8_t *s, size_t len,
                                     struct sft_name_parts *parts,
                                     size_t *offset) {
  size_t i = 0, start = 0, depth = 0;
  *offset = 0;
  if (len == 0)
    return SFT_NAME_EMPTY;
  if (len > SFT_MAX_NAME) {
    *offset = SFT_MAX_NAME;
    return SFT_NAME_TOO_LONG;
  }
  if (s[0] == '/')
    return SFT_NAME_ABSOLUTE;
  for (;;) {
    if (i == len || s[i] == '/') {
      enum sft_name_reason r;
      *offset = start;
      if (i == start)
        return SFT_NAME_EMPTY_COMPONENT;
      r = check_component(s + start, i - start);
      if (r != SFT_NAME_OK)
        return r;
      if (++depth > SFT_MAX_NAME_DEPTH)
        return SFT_NAME_TOO_DEEP;
      if (parts) {
        parts->comp[depth - 1].off = start;
        parts->comp[depth - 1].len = i - start;
        parts->count = depth;
      }
      if (i == len)
        break;
      start = ++i;
      if (i == len) {
        *offset = i;
        return SFT_NAME_EMPTY_COMPONENT; /* trailing '/' */
      }
      continue;
    }
    if (i == start && len - i >= 2 && s[i + 1] == ':' &&
        ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z'))) {
      *offset = i; /* before the character scan: "C:\\" is a drive */
      return SFT_NAME_DRIVE;
    }
    {
      uint32_t cp;
      size_t n = utf8_decode(s + i, len - i, &cp);
      *offset = i;
      if (n == 0)
        return SFT_NAME_BAD_UTF8;
      if (cp == '\\')
        return SFT_NAME_BACKSLASH;
      if (cp_is_control(cp))
        return SFT_NAME_CONTROL;
      if (cp_is_invisible(cp))
        return SFT_NAME_INVISIBLE;
      i += n;
    }
  }
  *offset = 0;
  return SFT_NAME_OK;
}

int sft_name_validate(const char *name, size_t len,
                      enum sft_name_reason *reason, size_t *offset) {
  size_t off;
  enum sft_name_reason r;
  off = 0;
  if (!name && len)
    r = SFT_NAME_EMPTY;
  else
    r = validate((const uint8_t *)name, len, NULL, &off);
  if (reason)
    *reason = r;
  if (offset)
    *offset = off;
  return r == SFT_NAME_OK ? 0 : SFT_ERR_PATH;
}

int sft_name_split(const char *name, size_t len, struct sft_name_parts *out,
                   enum sft_name_reason *reason) {
  size_t off;
  enum sft_name_reason r;
  out->count = 0;
  if (!name && len)
    r = SFT_NAME_EMPTY;
  else
    r = validate((const uint8_t *)name, len, out, &off);
  if (r != SFT_NAME_OK)
    out->count = 0;
  if (reason)
    *reason = r;
  return r == SFT_NAME_OK ? 0 : SFT_ERR_PATH;
}

const char *sft_name_reason_str(enum sft_name_reason reason) {
  switch (reason) {
  case SFT_NAME_OK:
    return "valid name";
  case SFT_NAME_EMPTY:
    return "empty name";
  case SFT_NAME_TOO_LONG:
    return "name longer than " STR(SFT_MAX_NAME) " bytes";
  case SFT_NAME_TOO_DEEP:
    return "more than " STR(SFT_MAX_NAME_DEPTH) " path components";
  case SFT_NAME_ABSOLUTE:
    return "absolute path (starts with '/')";
  case SFT_NAME_EMPTY_COMPONENT:
    return "empty path component ('//' or trailing '/')";
  case SFT_NAME_DOT_COMPONENT:
    return "'.' or '..' path component";
  case SFT_NAME_COMPONENT_TOO_LONG:
    return "path component longer than " STR(SFT_MAX_NAME_COMPONENT) " bytes";
  case SFT_NAME_BACKSLASH:
    return "backslash (Windows separator or UNC path)";
  case SFT_NAME_DRIVE:
    return "drive-letter prefix ('C:')";
  case SFT_NAME_CONTROL:
    return "control character";
  case SFT_NAME_BAD_UTF8:
    return "invalid UTF-8";
  case SFT_NAME_INVISIBLE:
    return "invisible, bidi-control or non-character code point";
  case SFT_NAME_TRAILING_DOT_SPACE:
    return "path component ends with a dot or a space";
  case SFT_NAME_RESERVED_DEVICE:
    return "reserved Windows device name (CON, NUL, COM1, ...)";
  case SFT_NAME_PART_SUFFIX_USED:
    return "name ends with the reserved suffix '.sft-part'";
  }
  return "unknown reason";
}

int sft_text_check(const char *text, size_t len) {
  const uint8_t *s = (const uint8_t *)text;
  size_t i = 0;
  if (!text && len)
    return SFT_ERR_MALFORMED;
  while (i < len) {
    uint32_t cp;
    size_t n = utf8_decode(s + i, len - i, &cp);
    if (n == 0 || cp_is_control(cp) || cp_is_invisible(cp))
      return SFT_ERR_MALFORMED;
    i += n;
  }
  return 0;
}

/* Escaped form of the code point (or bad byte) at |s| (|n| > 0 left): the
 * bytes to emit go to |buf| (up to 16), the input consumed to |*used|. */
static size_t escape_one(const uint8_t *s, size_t n, char buf[16],
                         size_t *used) {
  static const char hex[] = "0123456789abcdef";
  uint32_t cp;
  size_t k = utf8_decode(s, n, &cp);
  size_t o = 0;
  if (k == 1 && cp == '\\') {
    buf[0] = buf[1] = '\\';
    *used = 1;
    return 2;
  }
  if (k > 0 && !cp_is_control(cp) && !cp_is_invisible(cp)) {
    memcpy(buf, s, k);
    *used = k;
    return k;
  }
  if (k == 0)
    k = 1; /* one bad byte at a time */
  for (size_t j = 0; j < k; j++) {
    buf[o++] = '\\';
    buf[o++] = 'x';
    buf[o++] = hex[s[j] >> 4];
    buf[o++] = hex[s[j] & 15];
  }
  *used = k;
  return o;
}

size_t sft_name_escape(const char *name, size_t len, char *out, size_t cap) {
  const uint8_t *s = (const uint8_t *)name;
  size_t total = 0, i = 0, o = 0, limit;
  int dots;
  char buf[16];
  if (cap == 0)
    return 0;
  if (!name)
    len = 0;
  while (i < len) {
    size_t used;
    total += escape_one(s + i, len - i, buf, &used);
    i += used;
  }
  /* Everything fits, or room for a cut plus "...", or (tiny |cap|) a bare
   * cut. */
  dots = total > cap - 1 && cap - 1 >= 3;
  limit = dots ? cap - 1 - 3 : cap - 1;
  i = 0;
  while (i < len) {
    size_t used, k = escape_one(s + i, len - i, buf, &used);
    if (o + k > limit)
      break;
    memcpy(out + o, buf, k);
    o += k;
    i += used;
  }
  if (dots) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
  return o;
}
