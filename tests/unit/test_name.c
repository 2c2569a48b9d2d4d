/* Tests of lib/name: hostile names rejected, legitimate names accepted,
 * exact boundaries, the UTF-8 rules code point by code point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sft/err.h"
#include "sft/name.h"

struct hostile {
  const char *s;
  size_t len;
  enum sft_name_reason why;
};

#define H(lit, why)                                                            \
  { lit, sizeof(lit) - 1, why }

/* reliability.md item 14, croc's receivefs corpus, and more. */
static const struct hostile hostile[] = {
    /* traversal and absolute paths */
    H("../x", SFT_NAME_DOT_COMPONENT),
    H("a/../../x", SFT_NAME_DOT_COMPONENT),
    H("..", SFT_NAME_DOT_COMPONENT),
    H(".", SFT_NAME_DOT_COMPONENT),
    H("./x", SFT_NAME_DOT_COMPONENT),
    H("a/.", SFT_NAME_DOT_COMPONENT),
    H("a/./b", SFT_NAME_DOT_COMPONENT),
    H("a/..", SFT_NAME_DOT_COMPONENT),
    H("/etc/passwd", SFT_NAME_ABSOLUTE),
    H("/", SFT_NAME_ABSOLUTE),
    H("//server/share", SFT_NAME_ABSOLUTE),
    H("/../x", SFT_NAME_ABSOLUTE),
    /* Windows forms */
    H("C:\\", SFT_NAME_DRIVE),
    H("C:\\Windows\\System32\\x", SFT_NAME_DRIVE),
    H("C:", SFT_NAME_DRIVE),
    H("c:x", SFT_NAME_DRIVE),
    H("z:/x", SFT_NAME_DRIVE),
    H("a/D:evil", SFT_NAME_DRIVE),
    H("\\\\server\\share", SFT_NAME_BACKSLASH),
    H("\\\\?\\C:\\x", SFT_NAME_BACKSLASH),
    H("\\x", SFT_NAME_BACKSLASH),
    H("a\\..\\..\\x", SFT_NAME_BACKSLASH),
    H("..\\x", SFT_NAME_BACKSLASH),
    H("NUL", SFT_NAME_RESERVED_DEVICE),
    H("nul", SFT_NAME_RESERVED_DEVICE),
    H("CON", SFT_NAME_RESERVED_DEVICE),
    H("con.txt", SFT_NAME_RESERVED_DEVICE),
    H("Prn.tar.gz", SFT_NAME_RESERVED_DEVICE),
    H("aux", SFT_NAME_RESERVED_DEVICE),
    H("COM1", SFT_NAME_RESERVED_DEVICE),
    H("COM1.log", SFT_NAME_RESERVED_DEVICE),
    H("com9", SFT_NAME_RESERVED_DEVICE),
    H("COM0", SFT_NAME_RESERVED_DEVICE),
    H("LPT1", SFT_NAME_RESERVED_DEVICE),
    H("lpt9.txt", SFT_NAME_RESERVED_DEVICE),
    H("CON .txt", SFT_NAME_RESERVED_DEVICE),
    H("COM\xc2\xb9", SFT_NAME_RESERVED_DEVICE),
    H("lpt\xc2\xb3.x", SFT_NAME_RESERVED_DEVICE),
    H("CONIN$", SFT_NAME_RESERVED_DEVICE),
    H("conout$.txt", SFT_NAME_RESERVED_DEVICE),
    H("dir/sub/NUL", SFT_NAME_RESERVED_DEVICE),
    H("con/x", SFT_NAME_RESERVED_DEVICE),
    H("x.", SFT_NAME_TRAILING_DOT_SPACE),
    H("x ", SFT_NAME_TRAILING_DOT_SPACE),
    H("...", SFT_NAME_TRAILING_DOT_SPACE),
    H("a./b", SFT_NAME_TRAILING_DOT_SPACE),
    H("a /b", SFT_NAME_TRAILING_DOT_SPACE),
    H("CON.", SFT_NAME_TRAILING_DOT_SPACE),
    H(" ", SFT_NAME_TRAILING_DOT_SPACE),
    /* empty forms */
    H("", SFT_NAME_EMPTY),
    H("a//b", SFT_NAME_EMPTY_COMPONENT),
    H("a/", SFT_NAME_EMPTY_COMPONENT),
    H("a/b/", SFT_NAME_EMPTY_COMPONENT),
    /* NUL and control characters */
    H("x\0y", SFT_NAME_CONTROL),
    H("\0", SFT_NAME_CONTROL),
    H("x\0", SFT_NAME_CONTROL),
    H("../x\0.txt", SFT_NAME_DOT_COMPONENT),
    H("line\nname", SFT_NAME_CONTROL),
    H("control\x1bname", SFT_NAME_CONTROL),
    H("\x1b[1A\r", SFT_NAME_CONTROL),
    H("a\tb", SFT_NAME_CONTROL),
    H("a\rb", SFT_NAME_CONTROL),
    H("a\x01", SFT_NAME_CONTROL),
    H("a\x1f", SFT_NAME_CONTROL),
    H("a\x7f", SFT_NAME_CONTROL),
    H("a\xc2\x80", SFT_NAME_CONTROL),  /* U+0080 */
    H("a\xc2\x85z", SFT_NAME_CONTROL), /* NEL */
    H("a\xc2\x9b"
      "31m",
      SFT_NAME_CONTROL),              /* C1 CSI */
    H("a\xc2\x9f", SFT_NAME_CONTROL), /* U+009F */
    H("a\xe2\x80\xa8"
      "b",
      SFT_NAME_CONTROL), /* LINE SEPARATOR */
    H("a\xe2\x80\xa9"
      "b",
      SFT_NAME_CONTROL), /* PARAGRAPH SEPARATOR */
    /* zero-width, bidi, other invisibles */
    H("a\xe2\x80\x8b"
      "b",
      SFT_NAME_INVISIBLE), /* ZWSP */
    H("a\xe2\x80\x8c"
      "b",
      SFT_NAME_INVISIBLE), /* ZWNJ */
    H("a\xe2\x80\x8d"
      "b",
      SFT_NAME_INVISIBLE), /* ZWJ */
    H("a\xe2\x80\x8e"
      "b",
      SFT_NAME_INVISIBLE), /* LRM */
    H("a\xe2\x80\x8f"
      "b",
      SFT_NAME_INVISIBLE), /* RLM */
    H("a\xe2\x80\xaa"
      "b",
      SFT_NAME_INVISIBLE), /* LRE */
    H("invoice\xe2\x80\xae"
      "fdp.exe",
      SFT_NAME_INVISIBLE), /* RLO */
    H("a\xe2\x80\xac"
      "b",
      SFT_NAME_INVISIBLE), /* PDF */
    H("a\xe2\x81\xa6"
      "b",
      SFT_NAME_INVISIBLE), /* LRI */
    H("a\xe2\x81\xa9"
      "b",
      SFT_NAME_INVISIBLE), /* PDI */
    H("\xef\xbb\xbf"
      "a",
      SFT_NAME_INVISIBLE), /* BOM */
    H("a\xc2\xad"
      "b",
      SFT_NAME_INVISIBLE), /* soft hyphen */
    H("a\xe2\x81\xa0"
      "b",
      SFT_NAME_INVISIBLE), /* word joiner */
    H("a\xd8\x9c"
      "b",
      SFT_NAME_INVISIBLE), /* arabic letter mark */
    H("a\xe3\x85\xa4"
      "b",
      SFT_NAME_INVISIBLE), /* hangul filler */
    H("a\xf3\xa0\x80\x81"
      "b",
      SFT_NAME_INVISIBLE),                  /* tag U+E0001 */
    H("a\xef\xbf\xbe", SFT_NAME_INVISIBLE), /* U+FFFE */
    /* invalid UTF-8 */
    H("\xc0\xaf"
      "etc",
      SFT_NAME_BAD_UTF8),                       /* overlong '/' */
    H("\xc0\xae\xc0\xae/x", SFT_NAME_BAD_UTF8), /* overlong '..' */
    H("\xc1\xbf", SFT_NAME_BAD_UTF8),
    H("\xe0\x80\xaf", SFT_NAME_BAD_UTF8),
    H("\xe0\x9f\xbf", SFT_NAME_BAD_UTF8), /* overlong U+07FF */
    H("\xf0\x80\x80\xaf", SFT_NAME_BAD_UTF8),
    H("\xf0\x8f\xbf\xbf", SFT_NAME_BAD_UTF8),         /* overlong U+FFFF */
    H("\xed\xa0\x80", SFT_NAME_BAD_UTF8),             /* U+D800 */
    H("\xed\xbf\xbf", SFT_NAME_BAD_UTF8),             /* U+DFFF */
    H("\xed\xa0\xbd\xed\xb8\x80", SFT_NAME_BAD_UTF8), /* CESU pair */
    H("\xf4\x90\x80\x80", SFT_NAME_BAD_UTF8),         /* U+110000 */
    H("\xf5\x80\x80\x80", SFT_NAME_BAD_UTF8),
    H("\xf8\x88\x80\x80\x80", SFT_NAME_BAD_UTF8), /* 5-byte form */
    H("\xff", SFT_NAME_BAD_UTF8),
    H("\xfe", SFT_NAME_BAD_UTF8),
    H("a\x80", SFT_NAME_BAD_UTF8),         /* stray continuation */
    H("a\xc3", SFT_NAME_BAD_UTF8),         /* cut */
    H("a\xe2\x82", SFT_NAME_BAD_UTF8),     /* cut */
    H("a\xf0\x9f\x98", SFT_NAME_BAD_UTF8), /* cut */
    H("a\xc3/b", SFT_NAME_BAD_UTF8),       /* cut by '/' */
    H("a\xe2\x28\xa1", SFT_NAME_BAD_UTF8),
    /* our own temp-file suffix */
    H("x.sft-part", SFT_NAME_PART_SUFFIX_USED),
    H("a/b/file.iso.sft-part", SFT_NAME_PART_SUFFIX_USED),
    H("X.SFT-PART", SFT_NAME_PART_SUFFIX_USED),
    H("d.sft-part/x", SFT_NAME_PART_SUFFIX_USED),
    H(".sft-part", SFT_NAME_PART_SUFFIX_USED),
};

static const char *const legit[] = {
    "file.txt",
    "a/b/c.txt",
    "r\xc3\xa9sum\xc3\xa9.pdf",                              /* résumé.pdf */
    "\xe6\x97\xa5\xe6\x9c\xac/\xe3\x83\x95\xe3\x82\xa1.txt", /* 日本/ファ */
    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",      /* Привет */
    "\xf0\x9f\x98\x80.png",                                  /* 😀.png */
    "with space inside.txt",
    " leading space",
    "a.b.c",
    ".hidden",
    "..hidden",
    "x..y",
    "dir.d/sub.d/f",
    "CONSOLE.txt",
    "COM10",
    "LPT",
    "COM",
    "con-fig",
    "nul_file",
    "COM1x",
    "xCON",
    "aux1.txt",
    "report 2024-01-01 12:00:00.log", /* colons after the first byte */
    "file:stream",
    "x.sft-par",
    "x.sft-part.bak",
    "sft-part",
    "1:",
    "_:x",
    "caf\xc3\xa9\xe2\x80\x94menu",  /* em dash */
    "\xe2\x9d\xa4\xef\xb8\x8f.txt", /* heart + variation selector */
    "\xc2\xa0nbsp\xc2\xa0",         /* NBSP is visible as a space */
    "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/x/y/z",
    "\xf4\x8f\xbf\xbd", /* U+10FFFD, the last valid plane-16 char */
    "\xee\x80\x80",     /* private use U+E000 */
};

static void test_hostile_rejected(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
    enum sft_name_reason why = SFT_NAME_OK;
    size_t off = 12345;
    int rc = sft_name_validate(hostile[i].s, hostile[i].len, &why, &off);
    struct sft_name_parts parts;
    if (rc != SFT_ERR_PATH || why != hostile[i].why) {
      char esc[256];
      sft_name_escape(hostile[i].s, hostile[i].len, esc, sizeof(esc));
      fail_msg("case %zu \"%s\": rc %d reason %d (%s), want reason %d", i, esc,
               rc, (int)why, sft_name_reason_str(why), (int)hostile[i].why);
    }
    assert_true(off <= hostile[i].len);
    assert_int_equal(sft_name_split(hostile[i].s, hostile[i].len, &parts, NULL),
                     SFT_ERR_PATH);
    assert_int_equal(parts.count, 0);
    /* NULL out-parameters are allowed */
    assert_int_equal(
        sft_name_validate(hostile[i].s, hostile[i].len, NULL, NULL),
        SFT_ERR_PATH);
  }
}

static void test_legit_accepted(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof(legit) / sizeof(legit[0]); i++) {
    enum sft_name_reason why = SFT_NAME_DOT_COMPONENT;
    size_t off = 1;
    int rc = sft_name_validate(legit[i], strlen(legit[i]), &why, &off);
    if (rc != 0)
      fail_msg("legit case %zu (%s) rejected: %s at %zu", i, legit[i],
               sft_name_reason_str(why), off);
    assert_int_equal(why, SFT_NAME_OK);
    assert_int_equal(off, 0);
  }
}

/* A name of exactly |total| bytes made of components of |comp| bytes ('a')
 * separated by '/', the last component taking the remainder (> 0). */
static char *make_name(size_t total, size_t comp) {
  char *s = malloc(total + 1);
  size_t i = 0;
  assert_non_null(s);
  while (i < total) {
    size_t n = total - i < comp ? total - i : comp;
    memset(s + i, 'a', n);
    i += n;
    if (i < total) {
      s[i++] = '/';
      assert_true(i < total); /* caller picks sizes with no empty tail */
    }
  }
  s[total] = '\0';
  return s;
}

static void expect(const char *s, size_t len, enum sft_name_reason want) {
  enum sft_name_reason why;
  int rc = sft_name_validate(s, len, &why, NULL);
  assert_int_equal(why, want);
  assert_int_equal(rc, want == SFT_NAME_OK ? 0 : SFT_ERR_PATH);
}

static void test_boundaries(void **state) {
  char *s;
  (void)state;
  /* one component: 255 accepted, 256 rejected */
  s = make_name(SFT_MAX_NAME_COMPONENT, 1000);
  expect(s, SFT_MAX_NAME_COMPONENT, SFT_NAME_OK);
  free(s);
  s = make_name(SFT_MAX_NAME_COMPONENT + 1, 1000);
  expect(s, SFT_MAX_NAME_COMPONENT + 1, SFT_NAME_COMPONENT_TOO_LONG);
  free(s);
  /* 255 bytes of 3-byte characters (85 x U+65E5) */
  s = malloc(SFT_MAX_NAME_COMPONENT + 4);
  for (size_t i = 0; i < 85; i++)
    memcpy(s + 3 * i, "\xe6\x97\xa5", 3);
  expect(s, 255, SFT_NAME_OK);
  memcpy(s + 255, "\xe6\x97\xa5", 3);
  expect(s, 258, SFT_NAME_COMPONENT_TOO_LONG);
  free(s);
  /* whole name: 20 x (200 + '/') + 76 = 4096 accepted; 4097 rejected */
  s = make_name(SFT_MAX_NAME, 200);
  expect(s, SFT_MAX_NAME, SFT_NAME_OK);
  free(s);
  s = make_name(SFT_MAX_NAME + 1, 200);
  expect(s, SFT_MAX_NAME + 1, SFT_NAME_TOO_LONG);
  free(s);
  /* depth: 64 components accepted, 65 rejected */
  s = make_name(2 * SFT_MAX_NAME_DEPTH - 1, 1);
  expect(s, 2 * SFT_MAX_NAME_DEPTH - 1, SFT_NAME_OK);
  free(s);
  s = make_name(2 * SFT_MAX_NAME_DEPTH + 1, 1);
  expect(s, 2 * SFT_MAX_NAME_DEPTH + 1, SFT_NAME_TOO_DEEP);
  free(s);
  /* NULL with a length is rejected, not dereferenced */
  assert_int_equal(sft_name_validate(NULL, 3, NULL, NULL), SFT_ERR_PATH);
  assert_int_equal(sft_name_validate(NULL, 0, NULL, NULL), SFT_ERR_PATH);
}

/* Reference encoder, independent of the decoder under test. */
static size_t enc(uint32_t c, char *o) {
  if (c < 0x80) {
    o[0] = (char)c;
    return 1;
  }
  if (c < 0x800) {
    o[0] = (char)(0xc0 | (c >> 6));
    o[1] = (char)(0x80 | (c & 0x3f));
    return 2;
  }
  if (c < 0x10000) {
    o[0] = (char)(0xe0 | (c >> 12));
    o[1] = (char)(0x80 | ((c >> 6) & 0x3f));
    o[2] = (char)(0x80 | (c & 0x3f));
    return 3;
  }
  o[0] = (char)(0xf0 | (c >> 18));
  o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
  o[2] = (char)(0x80 | ((c >> 6) & 0x3f));
  o[3] = (char)(0x80 | (c & 0x3f));
  return 4;
}

/* Every code point U+0000..U+10FFFF placed inside a name: accepted unless
 * it is one of the listed classes, rejected with the right reason if so. */
static void test_every_code_point(void **state) {
  (void)state;
  for (uint32_t c = 0; c <= 0x10ffff; c++) {
    char buf[8] = "0"; /* not a letter: "0:y" is no drive prefix */
    size_t n = 1 + enc(c, buf + 1);
    enum sft_name_reason want = SFT_NAME_OK, why;
    buf[n++] = 'y';
    if (c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f) || c == 0x2028 ||
        c == 0x2029)
      want = SFT_NAME_CONTROL;
    else if (c >= 0xd800 && c <= 0xdfff)
      want = SFT_NAME_BAD_UTF8;
    else if (c == '\\')
      want = SFT_NAME_BACKSLASH;
    else if (c == '/')
      want = SFT_NAME_OK; /* "x/y" */
    else if ((c >= 0x200b && c <= 0x200f) || (c >= 0x202a && c <= 0x202e) ||
             (c >= 0x2060 && c <= 0x206f) || c == 0xfeff || c == 0xad ||
             c == 0x34f || c == 0x61c || c == 0x115f || c == 0x1160 ||
             c == 0x17b4 || c == 0x17b5 || c == 0x180e || c == 0x3164 ||
             c == 0xffa0 || (c >= 0xfff9 && c <= 0xfffb) || c == 0xfffe ||
             c == 0xffff || (c >= 0xe0000 && c <= 0xe007f))
      want = SFT_NAME_INVISIBLE;
    sft_name_validate(buf, n, &why, NULL);
    if (why != want)
      fail_msg("U+%04X: reason %d, want %d", (unsigned)c, (int)why, (int)want);
    assert_int_equal(sft_text_check(buf, n),
                     (want == SFT_NAME_OK || want == SFT_NAME_BACKSLASH)
                         ? 0
                         : SFT_ERR_MALFORMED);
  }
}

/* Every 2-byte sequence: accepted as UTF-8 exactly when it is the shortest
 * encoding of one or two scalar values. */
static void test_all_two_byte_sequences(void **state) {
  (void)state;
  for (unsigned a = 0; a < 256; a++)
    for (unsigned b = 0; b < 256; b++) {
      char s[4] = {'0', (char)a, (char)b, '0'};
      enum sft_name_reason why;
      int ascii_ok = a < 0x80 && b < 0x80;
      int two_ok = a >= 0xc2 && a <= 0xdf && b >= 0x80 && b <= 0xbf;
      sft_name_validate(s, 4, &why, NULL);
      if (ascii_ok || two_ok)
        assert_true(why != SFT_NAME_BAD_UTF8);
      else if (a >= 0x80)
        assert_int_equal(why, SFT_NAME_BAD_UTF8);
      else /* an earlier ASCII byte may be the first problem */
        assert_true(why != SFT_NAME_OK);
    }
}

static void test_split(void **state) {
  static const char name[] = "dir/sub dir/f\xc3\xa9.txt";
  struct sft_name_parts p;
  enum sft_name_reason why;
  (void)state;
  assert_int_equal(sft_name_split(name, strlen(name), &p, &why), 0);
  assert_int_equal(why, SFT_NAME_OK);
  assert_int_equal(p.count, 3);
  assert_int_equal(p.comp[0].off, 0);
  assert_int_equal(p.comp[0].len, 3);
  assert_memory_equal(name + p.comp[1].off, "sub dir", 7);
  assert_int_equal(p.comp[1].len, 7);
  assert_memory_equal(name + p.comp[2].off, "f\xc3\xa9.txt", 7);
  assert_int_equal(p.comp[2].len, 7);
  assert_int_equal(sft_name_split("one", 3, &p, NULL), 0);
  assert_int_equal(p.count, 1);
  assert_int_equal(p.comp[0].len, 3);
  /* a valid prefix then a bad component leaves nothing behind */
  assert_int_equal(sft_name_split("a/b/../c", 8, &p, &why), SFT_ERR_PATH);
  assert_int_equal(why, SFT_NAME_DOT_COMPONENT);
  assert_int_equal(p.count, 0);
}

static void test_offset_points_at_problem(void **state) {
  size_t off;
  enum sft_name_reason why;
  (void)state;
  sft_name_validate("abc/d\x1b"
                    "e",
                    7, &why, &off);
  assert_int_equal(why, SFT_NAME_CONTROL);
  assert_int_equal(off, 5);
  sft_name_validate("abc/../e", 8, &why, &off);
  assert_int_equal(why, SFT_NAME_DOT_COMPONENT);
  assert_int_equal(off, 4);
}

static void test_reason_strings(void **state) {
  (void)state;
  for (int r = SFT_NAME_OK; r <= SFT_NAME_PART_SUFFIX_USED; r++) {
    const char *s = sft_name_reason_str((enum sft_name_reason)r);
    assert_non_null(s);
    assert_true(strcmp(s, "unknown reason") != 0);
  }
  assert_string_equal(sft_name_reason_str((enum sft_name_reason)999),
                      "unknown reason");
}

static void test_escape(void **state) {
  char out[64];
  size_t n;
  (void)state;
  n = sft_name_escape("plain.txt", 9, out, sizeof(out));
  assert_string_equal(out, "plain.txt");
  assert_int_equal(n, 9);
  sft_name_escape("a\x1b[1A\r\nb", 8, out, sizeof(out));
  assert_string_equal(out, "a\\x1b[1A\\x0d\\x0ab");
  sft_name_escape("x\\y", 3, out, sizeof(out));
  assert_string_equal(out, "x\\\\y");
  sft_name_escape("r\xc3\xa9"
                  "a\xe2\x80\xae"
                  "b\xff",
                  9, out, sizeof(out));
  assert_string_equal(out, "r\xc3\xa9"
                           "a\\xe2\\x80\\xae"
                           "b\\xff");
  sft_name_escape("\0", 1, out, sizeof(out));
  assert_string_equal(out, "\\x00");
  /* truncation: fits in 10 bytes with "..." and never splits an escape */
  n = sft_name_escape("abcdefghijklmnop", 16, out, 10);
  assert_string_equal(out, "abcdef...");
  assert_int_equal(n, 9);
  n = sft_name_escape("ab\x01\x02\x03", 5, out, 10);
  assert_string_equal(out, "ab\\x01...");
  n = sft_name_escape("abc\x01\x02", 5, out, 10);
  assert_string_equal(out, "abc...");
  n = sft_name_escape("abc", 3, out, 4);
  assert_string_equal(out, "abc");
  n = sft_name_escape("abcd", 4, out, 3);
  assert_string_equal(out, "ab");
  /* no control byte ever comes out, whatever goes in */
  for (unsigned b = 0; b < 256; b++) {
    char in[3] = {'x', (char)b, 'y'};
    sft_name_escape(in, 3, out, sizeof(out));
    for (size_t i = 0; out[i]; i++)
      assert_true((unsigned char)out[i] >= 0x20 &&
                  (unsigned char)out[i] != 0x7f);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hostile_rejected),
      cmocka_unit_test(test_legit_accepted),
      cmocka_unit_test(test_boundaries),
      cmocka_unit_test(test_every_code_point),
      cmocka_unit_test(test_all_two_byte_sequences),
      cmocka_unit_test(test_split),
      cmocka_unit_test(test_offset_points_at_problem),
      cmocka_unit_test(test_reason_strings),
      cmocka_unit_test(test_escape),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
