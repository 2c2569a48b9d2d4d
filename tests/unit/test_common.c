/* Tests of lib/common: the error space and the bounded wire cursors. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "sft/err.h"
#include "sft/wire.h"

static void test_strerror_covers_every_code(void **state) {
  (void)state;
  assert_string_equal(sft_strerror(0), "success");
  assert_string_equal(sft_err_name(0), "OK");
#define XX(name, val, msg)                                                    \
  assert_string_equal(sft_strerror(val), msg);                                \
  assert_string_equal(sft_err_name(val), #name);
  SFT_ERRNO_MAP(XX)
#undef XX
  assert_string_equal(sft_strerror(-9999), "unknown error");
  assert_string_equal(sft_err_name(12345), "UNKNOWN");
}

static void test_varint_boundaries(void **state) {
  static const uint64_t vals[] = {0, 63, 64, 16383, 16384, 1073741823,
                                  1073741824, SFT_VARINT_MAX};
  static const size_t lens[] = {1, 1, 2, 2, 4, 4, 8, 8};
  (void)state;
  for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
    uint8_t buf[8];
    struct sft_wr w;
    struct sft_rd r;
    sft_wr_init(&w, NULL, 0);
    sft_wr_varint(&w, vals[i]);
    assert_int_equal(w.off, lens[i]);
    sft_wr_init(&w, buf, sizeof(buf));
    sft_wr_varint(&w, vals[i]);
    assert_int_equal(w.err, 0);
    assert_int_equal(w.off, lens[i]);
    sft_rd_init(&r, buf, w.off);
    assert_true(sft_rd_varint(&r) == vals[i]);
    assert_int_equal(sft_rd_end(&r), 0);
    /* every shorter prefix is truncated */
    for (size_t n = 0; n < lens[i]; n++) {
      sft_rd_init(&r, buf, n);
      (void)sft_rd_varint(&r);
      assert_int_equal(r.err, SFT_ERR_TRUNCATED);
    }
  }
}

static void test_varint_rejects_non_minimal_and_too_big(void **state) {
  const uint8_t two_byte_5[] = {0x40, 0x05};
  const uint8_t four_byte_63[] = {0x80, 0x00, 0x00, 0x3f};
  uint8_t buf[8];
  struct sft_rd r;
  struct sft_wr w;
  (void)state;
  sft_rd_init(&r, two_byte_5, sizeof(two_byte_5));
  (void)sft_rd_varint(&r);
  assert_int_equal(r.err, SFT_ERR_MALFORMED);
  sft_rd_init(&r, four_byte_63, sizeof(four_byte_63));
  (void)sft_rd_varint(&r);
  assert_int_equal(r.err, SFT_ERR_MALFORMED);
  sft_wr_init(&w, buf, sizeof(buf));
  sft_wr_varint(&w, SFT_VARINT_MAX + 1);
  assert_int_equal(w.err, SFT_ERR_RANGE);
  sft_wr_init(&w, buf, sizeof(buf));
  sft_wr_varint(&w, 1000);
  sft_rd_init(&r, buf, w.off);
  (void)sft_rd_varint_max(&r, 999);
  assert_int_equal(r.err, SFT_ERR_TOO_LARGE);
}

static void test_errors_are_sticky(void **state) {
  uint8_t buf[3] = {1, 2, 3};
  struct sft_rd r;
  struct sft_wr w;
  (void)state;
  sft_rd_init(&r, buf, sizeof(buf));
  assert_int_equal(sft_rd_u16(&r), 0x0102);
  assert_int_equal(sft_rd_u16(&r), 0); /* only one byte left */
  assert_int_equal(r.err, SFT_ERR_TRUNCATED);
  assert_int_equal(sft_rd_u8(&r), 0); /* still failed, reads nothing */
  assert_int_equal(r.off, 2);
  assert_int_equal(sft_rd_left(&r), 0);

  sft_wr_init(&w, buf, sizeof(buf));
  sft_wr_u16(&w, 0xabcd);
  sft_wr_u16(&w, 0x1234); /* does not fit */
  assert_int_equal(w.err, SFT_ERR_TOO_LARGE);
  sft_wr_u8(&w, 0xff);
  assert_int_equal(w.off, 2);
  assert_int_equal(buf[0], 0xab);
  assert_int_equal(buf[2], 3); /* untouched */
}

static void test_fixed_ints_and_end(void **state) {
  uint8_t buf[15];
  struct sft_wr w;
  struct sft_rd r;
  (void)state;
  sft_wr_init(&w, buf, sizeof(buf));
  sft_wr_u8(&w, 0x12);
  sft_wr_u16(&w, 0x3456);
  sft_wr_u32(&w, 0x789abcdeu);
  sft_wr_u64(&w, 0x0123456789abcdefULL);
  assert_int_equal(w.err, 0);
  assert_int_equal(w.off, 15);
  sft_rd_init(&r, buf, sizeof(buf));
  assert_int_equal(sft_rd_u8(&r), 0x12);
  assert_int_equal(sft_rd_u16(&r), 0x3456);
  assert_int_equal(sft_rd_u32(&r), 0x789abcdeu);
  assert_true(sft_rd_u64(&r) == 0x0123456789abcdefULL);
  assert_int_equal(sft_rd_end(&r), 0);
  sft_rd_init(&r, buf, sizeof(buf));
  (void)sft_rd_u8(&r);
  assert_int_equal(sft_rd_end(&r), SFT_ERR_MALFORMED); /* trailing bytes */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strerror_covers_every_code),
      cmocka_unit_test(test_varint_boundaries),
      cmocka_unit_test(test_varint_rejects_non_minimal_and_too_big),
      cmocka_unit_test(test_errors_are_sticky),
      cmocka_unit_test(test_fixed_ints_and_end),
  };
  return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
