/*
 * Tests of lib/metrics: the registry, the text exposition and the predefined
 * set. `test_metrics --dump` prints the predefined registry after some
 * updates instead (tests/integration/test_metrics_promtool.sh feeds it to
 * `promtool check metrics`).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sft/metrics.h"

#define DROPPED_HEAD                                                           \
  "# HELP sft_metrics_dropped_series_total Series not created because "        \
  "their family reached its child limit.\n"                                    \
  "# TYPE sft_metrics_dropped_series_total counter\n"

/* Formats |r| into a fresh NUL-terminated heap string (test helper). */
static char *dump(const sft_metrics *r) {
  size_t need = 0, len = 0;
  char *buf;
  int rv = sft_metrics_format(r, NULL, 0, &need);
  assert_int_equal(rv, need ? SFT_ERR_NOSPACE : 0);
  buf = malloc(need + 1);
  assert_non_null(buf);
  assert_int_equal(sft_metrics_format(r, buf, need, &len), 0);
  assert_int_equal(len, need);
  buf[len] = '\0';
  return buf;
}

static void assert_text(const sft_metrics *r, const char *want) {
  char *got = dump(r);
  if (strcmp(got, want)) {
    fprintf(stderr, "--- want\n%s--- got\n%s---\n", want, got);
    fail();
  }
  free(got);
}

static sft_metric_family *reg(sft_metrics *r, const char *name,
                              enum sft_metric_type type,
                              const char *const *labels, size_t nlabels,
                              const double *b, size_t nb, uint32_t maxc) {
  struct sft_metric_desc d = {0};
  sft_metric_family *f = NULL;
  d.name = name;
  d.help = "h";
  d.type = type;
  d.labels = labels;
  d.nlabels = nlabels;
  d.buckets = b;
  d.nbuckets = nb;
  d.max_children = maxc;
  assert_int_equal(sft_metrics_register(r, &d, &f), 0);
  assert_non_null(f);
  return f;
}

/* ---- exact text ------------------------------------------------------ */

static void test_exact_text(void **state) {
  static const char *const gl[] = {"room", "kind"};
  static const char *const hl[] = {"op"};
  static const double hb[] = {0.25, 1, 2.5};
  sft_metrics *r;
  sft_metric_family *g, *h;
  sft_metric *c, *m, *big;
  (void)state;

  assert_int_equal(sft_metrics_new(&r, NULL), 0);
  assert_int_equal(sft_metrics_add_counter(r, "requests_total",
                                           "Requests \\ served\nper \"day\"",
                                           &c),
                   0);
  assert_int_equal(sft_metric_inc(c, 3), 0);
  assert_int_equal(sft_metric_inc(c, 0.5), 0);

  g = reg(r, "temp_celsius", SFT_METRIC_GAUGE, gl, 2, NULL, 0, 0);
  {
    const char *v1[] = {"a\"b", "x\\y"};
    const char *v2[] = {"line\nbreak", ""};
    const char *v3[] = {"\xc3\xa9t\xc3\xa9", "z"};
    const char *v4[] = {"p", "q"};
    assert_int_equal(sft_metrics_child(g, v1, &m), 0);
    assert_int_equal(sft_metric_set(m, NAN), 0);
    assert_int_equal(sft_metrics_child(g, v2, &m), 0);
    assert_int_equal(sft_metric_set(m, INFINITY), 0);
    assert_int_equal(sft_metrics_child(g, v3, &m), 0);
    assert_int_equal(sft_metric_set(m, -INFINITY), 0);
    assert_int_equal(sft_metrics_child(g, v4, &m), 0);
    assert_int_equal(sft_metric_set(m, -0.1), 0);
    assert_int_equal(sft_metric_inc(m, -2), 0); /* gauges go down */
  }
  assert_int_equal(sft_metrics_add_gauge(r, "big", NULL, &big), 0);
  assert_int_equal(sft_metric_set(big, 1e15), 0);

  h = reg(r, "lat_seconds", SFT_METRIC_HISTOGRAM, hl, 1, hb, 3, 0);
  assert_int_equal(sft_metrics_child1(h, "get", &m), 0);
  assert_int_equal(sft_metric_observe(m, 0.125), 0);
  assert_int_equal(sft_metric_observe(m, 0.25), 0);
  assert_int_equal(sft_metric_observe(m, 1), 0);
  assert_int_equal(sft_metric_observe(m, 3), 0);
  assert_int_equal(sft_metrics_child1(h, "put", &m), 0);
  reg(r, "empty_family", SFT_METRIC_COUNTER, hl, 1, NULL, 0, 0);

  assert_text(r, DROPPED_HEAD
              "sft_metrics_dropped_series_total 0\n"
              "# HELP requests_total Requests \\\\ served\\nper \"day\"\n"
              "# TYPE requests_total counter\n"
              "requests_total 3.5\n"
              "# HELP temp_celsius h\n"
              "# TYPE temp_celsius gauge\n"
              "temp_celsius{room=\"a\\\"b\",kind=\"x\\\\y\"} NaN\n"
              "temp_celsius{room=\"line\\nbreak\",kind=\"\"} +Inf\n"
              "temp_celsius{room=\"\xc3\xa9t\xc3\xa9\",kind=\"z\"} -Inf\n"
              "temp_celsius{room=\"p\",kind=\"q\"} -2.1\n"
              "# HELP big \n"
              "# TYPE big gauge\n"
              "big 1000000000000000\n"
              "# HELP lat_seconds h\n"
              "# TYPE lat_seconds histogram\n"
              "lat_seconds_bucket{op=\"get\",le=\"0.25\"} 2\n"
              "lat_seconds_bucket{op=\"get\",le=\"1\"} 3\n"
              "lat_seconds_bucket{op=\"get\",le=\"2.5\"} 3\n"
              "lat_seconds_bucket{op=\"get\",le=\"+Inf\"} 4\n"
              "lat_seconds_sum{op=\"get\"} 4.375\n"
              "lat_seconds_count{op=\"get\"} 4\n"
              "lat_seconds_bucket{op=\"put\",le=\"0.25\"} 0\n"
              "lat_seconds_bucket{op=\"put\",le=\"1\"} 0\n"
              "lat_seconds_bucket{op=\"put\",le=\"2.5\"} 0\n"
              "lat_seconds_bucket{op=\"put\",le=\"+Inf\"} 0\n"
              "lat_seconds_sum{op=\"put\"} 0\n"
              "lat_seconds_count{op=\"put\"} 0\n"
              "# HELP empty_family h\n"
              "# TYPE empty_family counter\n");
  sft_metrics_del(r);
}

static void test_fmt_double(void **state) {
  static const struct {
    double v;
    const char *s;
  } cases[] = {
      {0, "0"},
      {-0.0, "0"},
      {1, "1"},
      {-3, "-3"},
      {65536, "65536"},
      {16777216, "16777216"},
      {9007199254740992.0, "9007199254740992"},
      {-9223372036854775808.0, "-9.223372036854776e+18"}, /* -2^63: out */
      {1e18, "1000000000000000000"},
      {1e20, "1e+20"},
      {0.1, "0.1"},
      {0.005, "0.005"},
      {2.5, "2.5"},
      {1.0 / 3, "0.3333333333333333"},
      {0.1 + 0.2, "0.30000000000000004"},
      {1.5e-7, "1.5e-07"},
      {0.0021, "0.0021"},
      {-2.1, "-2.1"},
      {1700000000.5, "1700000000.5"},
      {123456.789, "123456.789"},
      {0.0001, "0.0001"},
      {0.00012, "0.00012"},
      {0.00001, "1e-05"},
      {4503599627370495.5, "4503599627370495.5"},
      {9007199254740991.0 / 4, "2251799813685247.8"},
      {-1e300, "-1e+300"},
      {4.9406564584124654e-324, "4.94065645841247e-324"},
  };
  char buf[40];
  (void)state;
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    size_t n = sft_metrics_fmt_double(cases[i].v, buf, sizeof buf);
    assert_string_equal(buf, cases[i].s);
    assert_int_equal(n, strlen(cases[i].s));
    assert_true(strtod(buf, NULL) == cases[i].v);
  }
  assert_int_equal(sft_metrics_fmt_double(NAN, buf, sizeof buf), 3);
  assert_string_equal(buf, "NaN");
  assert_int_equal(sft_metrics_fmt_double(INFINITY, buf, sizeof buf), 4);
  assert_string_equal(buf, "+Inf");
  assert_int_equal(sft_metrics_fmt_double(-INFINITY, buf, sizeof buf), 4);
  assert_string_equal(buf, "-Inf");
  /* Too small: 0, nothing claimed. */
  assert_int_equal(sft_metrics_fmt_double(12345, buf, 5), 0);
  assert_int_equal(sft_metrics_fmt_double(12345, buf, 6), 5);
  /* Round trip over many values. */
  {
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 10000; i++) {
      double v;
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      if (i % 2) {
        memcpy(&v, &x, sizeof v);
        if (isnan(v))
          continue;
      } else { /* "nice" decimals: the fast path */
        v = (double)(int64_t)(x >> (x & 31)) / pow(10, (double)(x % 23));
      }
      assert_true(sft_metrics_fmt_double(v, buf, sizeof buf) > 0);
      assert_true(strtod(buf, NULL) == v);
      assert_null(strchr(buf, ' '));
    }
  }
}

/* ---- histogram ------------------------------------------------------- */

static void test_histogram_bounds(void **state) {
  static const double b[] = {1, 2, 5};
  sft_metrics *r;
  sft_metric *h;
  (void)state;
  assert_int_equal(sft_metrics_new(&r, NULL), 0);
  assert_int_equal(sft_metrics_add_histogram(r, "x", "", b, 3, &h), 0);
  assert_int_equal(sft_metric_observe(h, 1), 0);               /* le=1 */
  assert_int_equal(sft_metric_observe(h, -10), 0);             /* le=1 */
  assert_int_equal(sft_metric_observe(h, nextafter(1, 2)), 0); /* le=2 */
  assert_int_equal(sft_metric_observe(h, 2), 0);               /* le=2 */
  assert_int_equal(sft_metric_observe(h, 5), 0);               /* le=5 */
  assert_int_equal(sft_metric_observe(h, nextafter(5, 6)), 0); /* +Inf */
  assert_int_equal(sft_metric_observe(h, INFINITY), 0);        /* +Inf */
  assert_int_equal(sft_metric_observe(h, NAN), SFT_ERR_INVAL);
  assert_int_equal(sft_metric_inc(h, 1), SFT_ERR_INVAL);
  assert_int_equal(sft_metric_set(h, 1), SFT_ERR_INVAL);
  assert_int_equal(sft_metric_count(h), 7);
  {
    char *got = dump(r);
    const char *want = "# HELP x \n# TYPE x histogram\n"
                       "x_bucket{le=\"1\"} 2\n"
                       "x_bucket{le=\"2\"} 4\n"
                       "x_bucket{le=\"5\"} 5\n"
                       "x_bucket{le=\"+Inf\"} 7\n"
                       "x_sum +Inf\n"
                       "x_count 7\n";
    assert_non_null(strstr(got, want));
    free(got);
  }
  sft_metrics_del(r);

  /* No bounds at all: only +Inf. */
  assert_int_equal(sft_metrics_new(&r, NULL), 0);
  assert_int_equal(sft_metrics_add_histogram(r, "y", "", NULL, 0, &h), 0);
  assert_int_equal(sft_metric_observe(h, 0.5), 0);
  {
    char *got = dump(r);
    assert_non_null(strstr(got, "y_bucket{le=\"+Inf\"} 1\ny_sum 0.5\n"
                                "y_count 1\n"));
    free(got);
  }
  sft_metrics_del(r);
}

/* ---- cardinality limit, removal -------------------------------------- */

static void test_series_limit(void **state) {
  static const char *const l[] = {"path"};
  sft_metrics *r;
  sft_metric_family *f;
  sft_metric *a, *b, *c, *x;
  (void)state;
  assert_int_equal(sft_metrics_new(&r, NULL), 0);
  f = reg(r, "g", SFT_METRIC_GAUGE, l, 1, NULL, 0, 3);
  assert_int_equal(sft_metrics_child1(f, "a", &a), 0);
  assert_int_equal(sft_metrics_child1(f, "b", &b), 0);
  assert_int_equal(sft_metrics_child1(f, "c", &c), 0);
  assert_int_equal(sft_metrics_child1(f, "d", &x), SFT_ERR_FULL);
  assert_null(x);
  assert_int_equal(sft_metrics_child1(f, "e", &x), SFT_ERR_FULL);
  assert_int_equal(sft_metric_set(x, 1), SFT_ERR_INVAL); /* NULL: harmless */
  /* Existing series still resolve, to the same handles. */
  assert_int_equal(sft_metrics_child1(f, "b", &x), 0);
  assert_ptr_equal(x, b);
  assert_int_equal(sft_metrics_children(f), 3);
  assert_int_equal(sft_metric_set(a, 1), 0);
  assert_int_equal(sft_metric_set(b, 2), 0);
  assert_int_equal(sft_metric_set(c, 3), 0);
  assert_text(r, DROPPED_HEAD
              "sft_metrics_dropped_series_total 2\n"
              "# HELP g h\n# TYPE g gauge\n"
              "g{path=\"a\"} 1\ng{path=\"b\"} 2\ng{path=\"c\"} 3\n");
  /* Removing frees a slot; the new series goes last. */
  assert_int_equal(sft_metrics_remove1(f, "a"), 0);
  assert_int_equal(sft_metrics_remove1(f, "a"), SFT_ERR_NOT_FOUND);
  assert_int_equal(sft_metrics_child1(f, "d", &x), 0);
  assert_int_equal(sft_metric_set(x, 4), 0);
  assert_int_equal(sft_metrics_remove1(f, "c"), 0); /* the tail */
  assert_int_equal(sft_metrics_child1(f, "a", &a), 0);
  assert_true(sft_metric_value(a) == 0); /* a fresh series */
  assert_text(r, DROPPED_HEAD
              "sft_metrics_dropped_series_total 2\n"
              "# HELP g h\n# TYPE g gauge\n"
              "g{path=\"b\"} 2\ng{path=\"d\"} 4\ng{path=\"a\"} 0\n");
  sft_metrics_clear(f);
  assert_int_equal(sft_metrics_children(f), 0);
  assert_text(r, DROPPED_HEAD "sft_metrics_dropped_series_total 2\n"
                              "# HELP g h\n# TYPE g gauge\n");
  assert_int_equal(sft_metrics_child1(f, "z", &x), 0);
  assert_int_equal(sft_metrics_children(f), 1);
  sft_metrics_del(r);
}

static void test_remove_rules(void **state) {
  static const char *const l2[] = {"a", "b"};
  sft_metrics *r;
  sft_metric_family *f, *u;
  sft_metric *m, *m2;
  (void)state;
  assert_int_equal(sft_metrics_new(&r, NULL), 0);
  f = reg(r, "two", SFT_METRIC_COUNTER, l2, 2, NULL, 0, 0);
  u = reg(r, "one", SFT_METRIC_COUNTER, NULL, 0, NULL, 0, 0);
  {
    const char *v[] = {"x", "y"}, *w[] = {"xy", ""}, *z[] = {"x", "yz"};
    assert_int_equal(sft_metrics_child(f, v, &m), 0);
    assert_int_equal(sft_metrics_child(f, w, &m2), 0);
    assert_ptr_not_equal(m, m2); /* value boundaries matter */
    assert_int_equal(sft_metrics_remove(f, z), SFT_ERR_NOT_FOUND);
    assert_int_equal(sft_metrics_child1(f, "x", &m), SFT_ERR_INVAL);
    assert_int_equal(sft_metrics_remove1(f, "x"), SFT_ERR_INVAL);
    assert_int_equal(sft_metrics_remove(f, v), 0);
    assert_int_equal(sft_metrics_children(f), 1);
  }
  /* The unlabeled family's child is fixed. */
  assert_int_equal(sft_metrics_remove(u, NULL), SFT_ERR_INVAL);
  assert_int_equal(sft_metrics_child(u, NULL, &m), 0);
  assert_int_equal(sft_metrics_child(u, NULL, &m2), 0);
  assert_ptr_equal(m, m2);
  assert_int_equal(sft_metrics_children(u), 1);
  sft_metrics_clear(u); /* no-op */
  assert_int_equal(sft_metrics_children(u), 1);
  assert_int_equal(sft_metrics_child(NULL, NULL, &m), SFT_ERR_INVAL);
  assert_int_equal(sft_metrics_child(f, NULL, &m), SFT_ERR_INVAL);
  assert_int_equal(sft_metrics_remove(NULL, NULL), SFT_ERR_INVAL);
  sft_metrics_del(r);
}

/* ---- validation ------------------------------------------------------ */

static int try_reg(sft_metrics *r, const char *name, const char *help,
                   enum sft_metric_type type, const char *const *labels,
                   size_t nlabels, const double *b, size_t nb) {
  struct sft_metric_desc d = {0};
  sft_metric_family *f = (sft_metric_family *)1;
  int rv;
  d.name = name;
  d.help = help;
  d.type = type;
  d.labels = labels;
  d.nlabels = nlabels;
  d.buckets = b;
  d.nbuckets = nb;
  rv = sft_metrics_register(r, &d, &f);
  if (rv)
    assert_null(f);
  return rv;
}

static void test_invalid_names(void **state) {
  static const char *const bad_names[] = {
      "", "0abc", "a-b", "a b", "é", "a.b", "a\n", "a{b}", "a\"",
  };
  static const char *const good_names[] = {
      "a", "_", ":", "a:b_c9", "A_Z", "ns:sub:name_total", "_9",
  };
  static const char *const bad_labels[] = {"__x", "0a", "a-b", "a:b",
                                           "",    "__", "é"};
  char longname[SFT_METRICS_MAX_NAME + 2];
  sft_metrics *r;
  (void)state;
  assert_int_equal(sft_metrics_new(&r, NULL), 0);
  for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++)
    assert_int_equal(
        try_reg(r, bad_names[i], "", SFT_METRIC_GAUGE, NULL, 0, NULL, 0),
        SFT_ERR_INVAL);
  for (size_t i = 0; i < sizeof good_names / sizeof *good_names; i++)
    assert_int_equal(
        try_reg(r, good_names[i], "", SFT_METRIC_GAUGE, NULL, 0, NULL, 0), 0);
  for (size_t i = 0; i < sizeof bad_labels / sizeof *bad_labels; i++)
    assert_int_equal(
        try_reg(r, "lbl", "", SFT_METRIC_GAUGE, &bad_labels[i], 1, NULL, 0),
        SFT_ERR_INVAL);
  {
    const char *ok[] = {"_a", "le", "B9"};
    const char *dup[] = {"a", "a"};
    const char *le[] = {"le"};
    const char *nul[] = {"a", NULL};
    assert_int_equal(try_reg(r, "lbl_ok", "", SFT_METRIC_GAUGE, ok, 3, NULL, 0),
                     0);
    assert_int_equal(try_reg(r, "d", "", SFT_METRIC_GAUGE, dup, 2, NULL, 0),
                     SFT_ERR_INVAL);
    assert_int_equal(try_reg(r, "h", "", SFT_METRIC_HISTOGRAM, le, 1, NULL, 0),
                     SFT_ERR_INVAL);
    assert_int_equal(try_reg(r, "n", "", SFT_METRIC_GAUGE, nul, 2, NULL, 0),
                     SFT_ERR_INVAL);
    assert_int_equal(try_reg(r, "n", "", SFT_METRIC_GAUGE, NULL, 1, NULL, 0),
                     SFT_ERR_INVAL);
  }
  {
    const char *many[SFT_METRICS_MAX_LABELS + 1] = {"a", "b", "c", "d", "e",
                                                    "f", "g", "h", "i"};
    assert_int_equal(try_reg(r, "m", "", SFT_METRIC_GAUGE, many,
                             SFT_METRICS_MAX_LABELS + 1, NULL, 0),
                     SFT_ERR_TOO_LARGE);
    assert_int_equal(try_reg(r, "m", "", SFT_METRIC_GAUGE, many,
                             SFT_METRICS_MAX_LABELS, NULL, 0),
                     0);
  }
  memset(longname, 'a', sizeof longname - 1);
  longname[sizeof longname - 1] = '\0';
  assert_int_equal(try_reg(r, longname, "", SFT_METRIC_GAUGE, NULL, 0, NULL, 0),
                   SFT_ERR_TOO_LARGE);
  longname[SFT_METRICS_MAX_NAME] = '\0';
  assert_int_equal(try_reg(r, longname, "", SFT_METRIC_GAUGE, NULL, 0, NULL, 0),
                   0);
  /* Types, HELP. */
  assert_int_equal(
      try_reg(r, "t", "", (enum sft_metric_type)7, NULL, 0, NULL, 0),
      SFT_ERR_INVAL);
  assert_int_equal(
      try_reg(r, "t", "bad \xff utf8", SFT_METRIC_GAUGE, NULL, 0, NULL, 0),
      SFT_ERR_INVAL);
  assert_int_equal(
      try_reg(r, "t", "overlong \xc0\xaf", SFT_METRIC_GAUGE, NULL, 0, NULL, 0),
      SFT_ERR_INVAL);
  assert_int_equal(try_reg(r, "t", "surrogate \xed\xa0\x80", SFT_METRIC_GAUGE,
                           NULL, 0, NULL, 0),
                   SFT_ERR_INVAL);
  assert_int_equal(
      try_reg(r, "t", "cut \xe2\x82", SFT_METRIC_GAUGE, NULL, 0, NULL, 0),
      SFT_ERR_INVAL);
  {
    char *help = malloc(SFT_METRICS_MAX_HELP + 2);
    memset(help, 'x', SFT_METRICS_MAX_HELP + 1);
    help[SFT_METRICS_MAX_HELP + 1] = '\0';
    assert_int_equal(try_reg(r, "t", help, SFT_METRIC_GAUGE, NULL, 0, NULL, 0),
                     SFT_ERR_TOO_LARGE);
    help[SFT_METRICS_MAX_HELP] = '\0';
    assert_int_equal(try_reg(r, "t", help, SFT_METRIC_GAUGE, NULL, 0, NULL, 0),
                     0);
    free(help);
  }
  /* Buckets. */
  {
    const double dec[] = {1, 0.5}, eq[] = {1, 1}, nan[] = {NAN},
                 inf[] = {1, INFINITY}, ninf[] = {-INFINITY, 0};
    double many[SFT_METRICS_MAX_BUCKETS + 1];
    for (size_t i = 0; i <= SFT_METRICS_MAX_BUCKETS; i++)
      many[i] = (double)i;
    assert_int_equal(
        try_reg(r, "hb", "", SFT_METRIC_HISTOGRAM, NULL, 0, dec, 2),
        SFT_ERR_INVAL);
    assert_int_equal(try_reg(r, "hb", "", SFT_METRIC_HISTOGRAM, NULL, 0, eq, 2),
                     SFT_ERR_INVAL);
    assert_int_equal(
        try_reg(r, "hb", "", SFT_METRIC_HISTOGRAM, NULL, 0, nan, 1),
        SFT_ERR_INVAL);
    assert_int_equal(
        try_reg(r, "hb", "", SFT_METRIC_HISTOGRAM, NULL, 0, inf, 2),
        SFT_ERR_INVAL);
    assert_int_equal(
        try_reg(r, "hb", "", SFT_METRIC_HISTOGRAM, NULL, 0, ninf, 2),
        SFT_ERR_INVAL);
    assert_int_equal(
        try_reg(r, "hb", "", SFT_METRIC_HISTOGRAM, NULL, 0, NULL, 2),
        SFT_ERR_INVAL);
    assert_int_equal(try_reg(r, "hb", "", SFT_METRIC_HISTOGRAM, NULL, 0, many,
                             SFT_METRICS_MAX_BUCKETS + 1),
                     SFT_ERR_TOO_LARGE);
    assert_int_equal(try_reg(r, "hb", "", SFT_METRIC_HISTOGRAM, NULL, 0, many,
                             SFT_METRICS_MAX_BUCKETS),
                     0);
    /* Buckets are ignored for a gauge. */
    assert_int_equal(try_reg(r, "gb", "", SFT_METRIC_GAUGE, NULL, 0, dec, 2),
                     0);
  }
  /* Collisions, including the series names a histogram adds. */
  assert_int_equal(try_reg(r, "a", "", SFT_METRIC_COUNTER, NULL, 0, NULL, 0),
                   SFT_ERR_EXISTS);
  assert_int_equal(
      try_reg(r, "hb_bucket", "", SFT_METRIC_GAUGE, NULL, 0, NULL, 0),
      SFT_ERR_EXISTS);
  assert_int_equal(
      try_reg(r, "hb_count", "", SFT_METRIC_GAUGE, NULL, 0, NULL, 0),
      SFT_ERR_EXISTS);
  assert_int_equal(try_reg(r, "hb_sum", "", SFT_METRIC_GAUGE, NULL, 0, NULL, 0),
                   SFT_ERR_EXISTS);
  assert_int_equal(
      try_reg(r, "hb_total", "", SFT_METRIC_GAUGE, NULL, 0, NULL, 0), 0);
  assert_int_equal(try_reg(r, "q_sum", "", SFT_METRIC_GAUGE, NULL, 0, NULL, 0),
                   0);
  assert_int_equal(try_reg(r, "q", "", SFT_METRIC_HISTOGRAM, NULL, 0, NULL, 0),
                   SFT_ERR_EXISTS);
  /* Label values. */
  {
    static const char *const l[] = {"v"};
    sft_metric_family *f = reg(r, "vals", SFT_METRIC_GAUGE, l, 1, NULL, 0, 0);
    sft_metric *m = (sft_metric *)1;
    char big[SFT_METRICS_MAX_LABEL_VALUE + 2];
    assert_int_equal(sft_metrics_child1(f, "\xff", &m), SFT_ERR_INVAL);
    assert_null(m);
    assert_int_equal(sft_metrics_child1(f, NULL, &m), SFT_ERR_INVAL);
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(sft_metrics_child1(f, big, &m), SFT_ERR_TOO_LARGE);
    assert_int_equal(sft_metrics_remove1(f, big), SFT_ERR_NOT_FOUND);
    big[SFT_METRICS_MAX_LABEL_VALUE] = '\0';
    assert_int_equal(sft_metrics_child1(f, big, &m), 0);
    assert_int_equal(sft_metrics_children(f), 1);
  }
  /* NULL arguments. */
  assert_int_equal(sft_metrics_register(r, NULL, NULL), SFT_ERR_INVAL);
  assert_int_equal(sft_metrics_register(NULL, NULL, NULL), SFT_ERR_INVAL);
  assert_int_equal(try_reg(r, NULL, "", SFT_METRIC_GAUGE, NULL, 0, NULL, 0),
                   SFT_ERR_INVAL);
  sft_metrics_del(r);
}

static void test_family_limit(void **state) {
  sft_metrics *r;
  char name[16];
  (void)state;
  assert_int_equal(sft_metrics_new(&r, NULL), 0);
  for (unsigned i = 1; i < SFT_METRICS_MAX_FAMILIES; i++) {
    snprintf(name, sizeof name, "f%u", i);
    assert_int_equal(sft_metrics_add_gauge(r, name, "", NULL), 0);
  }
  assert_int_equal(sft_metrics_add_gauge(r, "one_more", "", NULL),
                   SFT_ERR_FULL);
  sft_metrics_del(r);
}

static void test_update_rules(void **state) {
  sft_metrics *r;
  sft_metric *c, *g;
  (void)state;
  assert_int_equal(sft_metrics_new(&r, NULL), 0);
  assert_int_equal(sft_metrics_add_counter(r, "c_total", "", &c), 0);
  assert_int_equal(sft_metrics_add_gauge(r, "g", "", &g), 0);
  assert_int_equal(sft_metric_inc(c, -1), SFT_ERR_INVAL);
  assert_int_equal(sft_metric_inc(c, -0.0001), SFT_ERR_INVAL);
  assert_int_equal(sft_metric_inc(c, NAN), SFT_ERR_INVAL);
  assert_true(sft_metric_value(c) == 0);
  assert_int_equal(sft_metric_inc(c, 0), 0);
  assert_int_equal(sft_metric_inc(c, 2.5), 0);
  assert_int_equal(sft_metric_set(c, 2), SFT_ERR_INVAL); /* backwards */
  assert_int_equal(sft_metric_set(c, NAN), SFT_ERR_INVAL);
  assert_int_equal(sft_metric_set(c, 2.5), 0);
  assert_int_equal(sft_metric_set(c, 7), 0);
  assert_true(sft_metric_value(c) == 7);
  assert_int_equal(sft_metric_observe(c, 1), SFT_ERR_INVAL);
  assert_int_equal(sft_metric_count(c), 0);
  assert_int_equal(sft_metric_set(g, 5), 0);
  assert_int_equal(sft_metric_set(g, -5), 0);
  assert_int_equal(sft_metric_inc(g, -1), 0);
  assert_true(sft_metric_value(g) == -6);
  assert_int_equal(sft_metric_observe(g, 1), SFT_ERR_INVAL);
  assert_int_equal(sft_metric_inc(NULL, 1), SFT_ERR_INVAL);
  assert_int_equal(sft_metric_set(NULL, 1), SFT_ERR_INVAL);
  assert_int_equal(sft_metric_observe(NULL, 1), SFT_ERR_INVAL);
  assert_true(isnan(sft_metric_value(NULL)));
  assert_int_equal(sft_metric_count(NULL), 0);
  sft_metrics_del(r);
}

/* ---- buffers --------------------------------------------------------- */

static void test_format_buffers(void **state) {
  sft_metrics *r;
  sft_metric *g;
  char *full, *out, small[10];
  size_t need, len;
  (void)state;
  assert_int_equal(sft_metrics_new(&r, NULL), 0);
  assert_int_equal(sft_metrics_add_gauge(r, "g", "", &g), 0);
  full = dump(r);
  need = strlen(full);
  assert_int_equal(sft_metrics_format(r, NULL, 0, &len), SFT_ERR_NOSPACE);
  assert_int_equal(len, need);
  memset(small, '#', sizeof small);
  assert_int_equal(sft_metrics_format(r, small, 9, &len), SFT_ERR_NOSPACE);
  assert_int_equal(len, need);
  assert_memory_equal(small, full, 9); /* a truncated prefix */
  assert_int_equal(small[9], '#');     /* nothing past cap */
  assert_int_equal(sft_metrics_format(r, NULL, 5, &len), SFT_ERR_INVAL);
  assert_int_equal(sft_metrics_format(r, small, 5, NULL), SFT_ERR_INVAL);
  assert_int_equal(sft_metrics_format(NULL, small, 5, &len), SFT_ERR_INVAL);

  /* format_alloc: bounded, and right after growth. */
  assert_int_equal(sft_metrics_format_alloc(r, need - 1, &out, &len),
                   SFT_ERR_TOO_LARGE);
  assert_null(out);
  assert_int_equal(sft_metrics_format_alloc(r, need, &out, &len), 0);
  assert_int_equal(len, need);
  assert_string_equal(out, full);
  sft_metrics_buf_free(r, out);
  free(full);
  {
    static const char *const l[] = {"k"};
    sft_metric_family *f = reg(r, "grow", SFT_METRIC_COUNTER, l, 1, NULL, 0, 0);
    char v[16];
    sft_metric *m;
    for (int i = 0; i < 200; i++) {
      snprintf(v, sizeof v, "%d", i);
      assert_int_equal(sft_metrics_child1(f, v, &m), 0);
    }
  }
  full = dump(r);
  need = strlen(full);
  /* The stale hint is too small: a second pass. */
  assert_int_equal(sft_metrics_format_alloc(r, need - 1, &out, &len),
                   SFT_ERR_TOO_LARGE);
  assert_int_equal(sft_metrics_format_alloc(r, 1 << 20, &out, &len), 0);
  assert_int_equal(len, need);
  assert_string_equal(out, full);
  sft_metrics_buf_free(r, out);
  assert_int_equal(sft_metrics_format_alloc(r, 1 << 20, &out, &len), 0);
  assert_string_equal(out, full);
  sft_metrics_buf_free(r, out);
  assert_int_equal(sft_metrics_format_alloc(r, 1 << 20, NULL, &len),
                   SFT_ERR_INVAL);
  free(full);
  sft_metrics_del(r);
}

/* ---- many series: hashing ------------------------------------------- */

static void test_many_series(void **state) {
  static const char *const l[] = {"a", "b"};
  sft_metrics *r;
  sft_metric_family *f;
  sft_metric **h = calloc(3000, sizeof *h);
  char a[16], b[16];
  (void)state;
  assert_non_null(h);
  assert_int_equal(sft_metrics_new(&r, NULL), 0);
  f = reg(r, "many", SFT_METRIC_COUNTER, l, 2, NULL, 0, 3000);
  for (int i = 0; i < 3000; i++) {
    const char *v[] = {a, b};
    snprintf(a, sizeof a, "%d", i % 37);
    snprintf(b, sizeof b, "%d", i);
    assert_int_equal(sft_metrics_child(f, v, &h[i]), 0);
    assert_int_equal(sft_metric_inc(h[i], i), 0);
  }
  for (int i = 2999; i >= 0; i--) {
    const char *v[] = {a, b};
    sft_metric *m;
    snprintf(a, sizeof a, "%d", i % 37);
    snprintf(b, sizeof b, "%d", i);
    assert_int_equal(sft_metrics_child(f, v, &m), 0);
    assert_ptr_equal(m, h[i]);
    assert_true(sft_metric_value(m) == i);
    if (i % 2)
      assert_int_equal(sft_metrics_remove(f, v), 0);
  }
  assert_int_equal(sft_metrics_children(f), 1500);
  {
    char *got = dump(r);
    /* Insertion order: the even ones, ascending. */
    assert_non_null(strstr(got, "many{a=\"0\",b=\"0\"} 0\n"
                                "many{a=\"2\",b=\"2\"} 2\n"
                                "many{a=\"4\",b=\"4\"} 4\n"));
    assert_null(strstr(got, "b=\"1\""));
    free(got);
  }
  sft_metrics_del(r);
  free(h);
}

/* ---- the predefined set ---------------------------------------------- */

static void std_updates(sft_metrics *r, struct sft_metrics_std *s) {
  sft_metric *p;
  (void)r;
  sft_metric_inc(s->chunks_sent, 120);
  sft_metric_inc(s->chunks_received, 118);
  sft_metric_inc(s->chunks_failed, 2);
  sft_metric_inc(s->bytes_transferred, 120.0 * 1048576);
  sft_metric_inc(s->chunks_rebuilt, 1);
  sft_metric_inc(s->retries, 3);
  sft_metric_set(s->active_sessions, 2);
  sft_metric_set(s->queue_size[0], 1);
  sft_metric_set(s->queue_size[1], 10);
  sft_metric_set(s->queue_size[2], 100);
  sft_metric_set(s->bandwidth_bps, 9.5e8);
  sft_metric_observe(s->chunk_duration, 0.0123);
  sft_metric_observe(s->chunk_duration, 0.5);
  sft_metric_observe(s->chunk_size, 65536);
  sft_metric_observe(s->chunk_size, 1048576);
  sft_metric_observe(s->chunk_size, 20e6);
  sft_metrics_child1(s->path_rtt, "10.0.0.1:4433->10.0.0.2:4433", &p);
  sft_metric_set(p, 0.0021);
  sft_metrics_child1(s->path_loss, "10.0.0.1:4433->10.0.0.2:4433", &p);
  sft_metric_set(p, 0.01);
  sft_metrics_child1(s->path_rtt, "path \"b\"\n\\", &p);
  sft_metric_set(p, NAN);
  sft_metric_set(s->cpu_seconds, 1.25);
  sft_metric_set(s->resident_bytes, 12345678);
  sft_metric_set(s->open_fds, 17);
  sft_metric_set(s->start_time, 1700000000.5);
}

static void test_std(void **state) {
  static const char *const names[] = {
      "chunks_sent_total",
      "chunks_received_total",
      "chunks_failed_total",
      "bytes_transferred_total",
      "chunks_rebuilt_total",
      "retries_total",
      "active_sessions",
      "priority_queue_size",
      "network_bandwidth_bps",
      "chunk_transfer_duration_seconds",
      "chunk_size_bytes",
      "sft_path_rtt_seconds",
      "sft_path_loss_ratio",
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
      "process_open_fds",
      "process_start_time_seconds",
  };
  static const char *const types[] = {
      "counter", "counter", "counter", "counter",   "counter",   "counter",
      "gauge",   "gauge",   "gauge",   "histogram", "histogram", "gauge",
      "gauge",   "counter", "gauge",   "gauge",     "gauge"};
  struct sft_metrics_std s;
  sft_metrics *r;
  char *got, line[128];
  const char *prev = NULL;
  (void)state;
  assert_int_equal(sft_metrics_new(&r, NULL), 0);
  assert_int_equal(sft_metrics_std_register(r, &s), 0);
  assert_int_equal(sft_metrics_std_register(r, &s), SFT_ERR_EXISTS);
  assert_null(s.chunks_sent);
  assert_int_equal(sft_metrics_std_register(NULL, &s), SFT_ERR_INVAL);
  sft_metrics_del(r);

  assert_int_equal(sft_metrics_new(&r, NULL), 0);
  assert_int_equal(sft_metrics_std_register(r, &s), 0);
  std_updates(r, &s);
  got = dump(r);
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    const char *at;
    snprintf(line, sizeof line, "# TYPE %s %s\n", names[i], types[i]);
    at = strstr(got, line);
    assert_non_null(at);
    if (prev)
      assert_true(at > prev); /* registration order */
    prev = at;
  }
  assert_non_null(strstr(got, "\nchunks_sent_total 120\n"));
  assert_non_null(strstr(got, "\nbytes_transferred_total 125829120\n"));
  assert_non_null(strstr(got, "\npriority_queue_size{class=\"critical\"} 1\n"
                              "priority_queue_size{class=\"high\"} 10\n"
                              "priority_queue_size{class=\"normal\"} 100\n"));
  assert_non_null(strstr(got, "\nnetwork_bandwidth_bps 950000000\n"));
  assert_non_null(strstr(got, "\nchunk_size_bytes_bucket{le=\"65536\"} 1\n"
                              "chunk_size_bytes_bucket{le=\"262144\"} 1\n"
                              "chunk_size_bytes_bucket{le=\"1048576\"} 2\n"
                              "chunk_size_bytes_bucket{le=\"4194304\"} 2\n"
                              "chunk_size_bytes_bucket{le=\"16777216\"} 2\n"
                              "chunk_size_bytes_bucket{le=\"+Inf\"} 3\n"
                              "chunk_size_bytes_sum 21114112\n"
                              "chunk_size_bytes_count 3\n"));
  assert_non_null(strstr(got, "\nchunk_transfer_duration_seconds_bucket{"
                              "le=\"0.025\"} 1\n"));
  assert_non_null(strstr(
      got, "\nsft_path_rtt_seconds{path=\"10.0.0.1:4433->10.0.0.2:4433\"} "
           "0.0021\nsft_path_rtt_seconds{path=\"path \\\"b\\\"\\n\\\\\"} "
           "NaN\n"));
  assert_non_null(strstr(got, "\nprocess_cpu_seconds_total 1.25\n"));
  assert_non_null(strstr(got, "\nprocess_start_time_seconds 1700000000.5\n"));
  free(got);
  /* Path removal when the path ends. */
  assert_int_equal(sft_metrics_remove1(s.path_rtt, "path \"b\"\n\\"), 0);
  got = dump(r);
  assert_null(strstr(got, "path \\\"b"));
  free(got);
  sft_metrics_del(r);
}

/* ---- OOM ------------------------------------------------------------- */

struct failer {
  long left; /* allocations that succeed before one fails; <0: never */
  long live;
};

static void *fail_zalloc(size_t nmemb, size_t size, void *ud) {
  struct failer *f = ud;
  void *p;
  if (f->left == 0)
    return NULL;
  if (f->left > 0)
    f->left--;
  p = calloc(nmemb, size);
  if (p)
    f->live++;
  return p;
}

static void fail_free(void *p, void *ud) {
  struct failer *f = ud;
  if (p)
    f->live--;
  free(p);
}

/* Runs a whole scenario under the failing allocator; returns 0 if it all
 * succeeded, the first error otherwise. */
static int scenario(struct failer *fl) {
  struct sft_metrics_mem mem = {fail_zalloc, fail_free, fl};
  struct sft_metrics_std s;
  sft_metrics *r = (sft_metrics *)1;
  sft_metric *m;
  char *out;
  size_t len;
  int rv = sft_metrics_new(&r, &mem);
  if (rv) {
    assert_null(r);
    return rv;
  }
  rv = sft_metrics_std_register(r, &s);
  if (!rv)
    rv = sft_metrics_child1(s.path_rtt, "p1", &m);
  if (!rv)
    rv = sft_metrics_child1(s.path_loss, "p1", &m);
  for (int i = 0; !rv && i < 40; i++) { /* forces a table growth */
    char v[8];
    snprintf(v, sizeof v, "q%d", i);
    rv = sft_metrics_child1(s.path_loss, v, &m);
  }
  if (!rv) {
    rv = sft_metrics_format_alloc(r, 1 << 20, &out, &len);
    if (!rv)
      sft_metrics_buf_free(r, out);
  }
  sft_metrics_del(r);
  return rv;
}

static void test_oom(void **state) {
  struct failer fl = {-1, 0};
  long total;
  (void)state;
  assert_int_equal(scenario(&fl), 0);
  assert_int_equal(fl.live, 0);
  /* Count the allocations, then fail each one in turn. */
  fl.left = 1000000;
  assert_int_equal(scenario(&fl), 0);
  total = 1000000 - fl.left;
  assert_true(total > 20);
  for (long n = 0; n < total; n++) {
    int rv;
    fl.left = n;
    fl.live = 0;
    rv = scenario(&fl);
    /* A failed table growth is absorbed; everything else reports NOMEM. */
    assert_true(rv == SFT_ERR_NOMEM || rv == 0);
    assert_int_equal(fl.live, 0);
  }
  {
    struct sft_metrics_mem half = {fail_zalloc, NULL, &fl};
    sft_metrics *r = (sft_metrics *)1;
    assert_int_equal(sft_metrics_new(&r, &half), SFT_ERR_INVAL);
    assert_null(r);
    assert_int_equal(sft_metrics_new(NULL, NULL), SFT_ERR_INVAL);
  }
}

static int dump_main(void) {
  struct sft_metrics_std s;
  sft_metrics *r;
  char *out;
  size_t len;
  if (sft_metrics_new(&r, NULL) || sft_metrics_std_register(r, &s))
    return 1;
  std_updates(r, &s);
  if (sft_metrics_format_alloc(r, 1 << 20, &out, &len))
    return 1;
  fwrite(out, 1, len, stdout);
  sft_metrics_buf_free(r, out);
  sft_metrics_del(r);
  return 0;
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exact_text),
      cmocka_unit_test(test_fmt_double),
      cmocka_unit_test(test_histogram_bounds),
      cmocka_unit_test(test_series_limit),
      cmocka_unit_test(test_remove_rules),
      cmocka_unit_test(test_invalid_names),
      cmocka_unit_test(test_family_limit),
      cmocka_unit_test(test_update_rules),
      cmocka_unit_test(test_format_buffers),
      cmocka_unit_test(test_many_series),
      cmocka_unit_test(test_std),
      cmocka_unit_test(test_oom),
  };
  if (argc > 1 && !strcmp(argv[1], "--dump"))
    return dump_main();
  return cmocka_run_group_tests(tests, NULL, NULL);
}
