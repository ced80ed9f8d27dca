/* hlc-clock-test.c — the hybrid logical clock and vector clocks (SPEC 3). */
#include <glib.h>

#include "crdt/wsp-hlc.h"
#include "crdt/wsp-clock.h"

static void
test_hlc_monotonic (void)
{
  WspHlc h = { 0 };
  guint64 a = wsp_hlc_now (&h, 1000);
  guint64 b = wsp_hlc_now (&h, 1000);
  guint64 c = wsp_hlc_now (&h, 999);    /* wall clock went backwards */
  guint64 d = wsp_hlc_now (&h, 2000);

  g_assert_cmphex (a, ==, WSP_HLC_MAKE (1000, 0));
  g_assert_cmphex (b, ==, WSP_HLC_MAKE (1000, 1));
  g_assert_cmphex (c, ==, WSP_HLC_MAKE (1000, 2));
  g_assert_cmphex (d, ==, WSP_HLC_MAKE (2000, 0));
  g_assert_cmpuint (WSP_HLC_MS (c), ==, 1000);
}

static void
test_hlc_observe (void)
{
  WspHlc h = { 0 };
  guint64 remote = WSP_HLC_MAKE (5000, 7);

  wsp_hlc_now (&h, 1000);
  wsp_hlc_observe (&h, remote);
  g_assert_cmphex (wsp_hlc_now (&h, 1000), ==, WSP_HLC_MAKE (5000, 8));
  /* An older remote never moves the clock back. */
  wsp_hlc_observe (&h, WSP_HLC_MAKE (10, 0));
  g_assert_cmphex (wsp_hlc_now (&h, 1000), ==, WSP_HLC_MAKE (5000, 9));
}

static void
test_hlc_counter_carry (void)
{
  WspHlc h = { 0 };

  wsp_hlc_observe (&h, WSP_HLC_MAKE (1000, 0xffff));
  /* Counter overflow carries into the milliseconds. */
  g_assert_cmphex (wsp_hlc_now (&h, 1000), ==, WSP_HLC_MAKE (1001, 0));
}

static void
test_hlc_saturates (void)
{
  WspHlc h = { 0 };

  wsp_hlc_observe (&h, G_MAXUINT64);
  g_assert_cmphex (wsp_hlc_now (&h, 1000), ==, G_MAXUINT64);
  g_assert_cmphex (wsp_hlc_now (&h, G_MAXUINT64), ==, G_MAXUINT64);
}

static void
test_clock_basic (void)
{
  WspClock c;

  wsp_clock_init (&c);
  g_assert_cmpuint (wsp_clock_get (&c, 5), ==, 0);
  wsp_clock_set (&c, 9, 3);
  wsp_clock_set (&c, 1, 7);
  wsp_clock_set (&c, 5, 1);
  g_assert_cmpuint (c.len, ==, 3);
  g_assert_cmpuint (c.dots[0].peer, ==, 1);
  g_assert_cmpuint (c.dots[1].peer, ==, 5);
  g_assert_cmpuint (c.dots[2].peer, ==, 9);
  g_assert_cmpuint (wsp_clock_get (&c, 9), ==, 3);
  wsp_clock_set (&c, 5, 0);    /* 0 removes the entry */
  g_assert_cmpuint (c.len, ==, 2);
  g_assert_cmpuint (wsp_clock_get (NULL, 9), ==, 0);
  wsp_clock_clear (&c);
  g_assert_cmpuint (c.len, ==, 0);
}

static void
test_clock_merge_covers (void)
{
  WspClock c, d;
  WspDot dots[] = { { 1, 4 }, { 3, 2 }, { 7, 1 } };

  wsp_clock_init (&c);
  wsp_clock_init (&d);
  wsp_clock_set (&c, 1, 5);
  wsp_clock_set (&c, 3, 1);
  g_assert_false (wsp_clock_covers (&c, dots, 3));
  wsp_clock_merge (&c, dots, 3);
  g_assert_cmpuint (wsp_clock_get (&c, 1), ==, 5);
  g_assert_cmpuint (wsp_clock_get (&c, 3), ==, 2);
  g_assert_cmpuint (wsp_clock_get (&c, 7), ==, 1);
  g_assert_true (wsp_clock_covers (&c, dots, 3));
  g_assert_true (wsp_clock_covers (&c, NULL, 0));

  wsp_clock_copy (&d, &c);
  g_assert_true (wsp_clock_equal (&c, &d));
  wsp_clock_set (&d, 3, 9);
  g_assert_false (wsp_clock_equal (&c, &d));
  wsp_clock_clear (&c);
  wsp_clock_clear (&d);
}

static void
test_clock_diff (void)
{
  WspClock now, base;
  g_autofree WspDot *diff = NULL;
  guint n = 0;

  wsp_clock_init (&now);
  wsp_clock_init (&base);
  wsp_clock_set (&now, 1, 5);
  wsp_clock_set (&now, 2, 3);
  wsp_clock_set (&now, 3, 1);
  wsp_clock_set (&base, 1, 5);
  wsp_clock_set (&base, 2, 1);
  diff = wsp_clock_diff (&now, &base, 3, &n);
  /* Entry 1 unchanged, entry 3 is the author itself. */
  g_assert_cmpuint (n, ==, 1);
  g_assert_cmpuint (diff[0].peer, ==, 2);
  g_assert_cmpuint (diff[0].seq, ==, 3);
  wsp_clock_clear (&now);
  wsp_clock_clear (&base);
}

static void
test_clock_json (void)
{
  WspClock c;
  g_autoptr (GString) s = g_string_new (NULL);

  wsp_clock_init (&c);
  wsp_clock_append_json (&c, s);
  g_assert_cmpstr (s->str, ==, "{}");
  wsp_clock_set (&c, G_GUINT64_CONSTANT (0xff), 2);
  wsp_clock_set (&c, G_GUINT64_CONSTANT (0x1), 10);
  g_string_truncate (s, 0);
  wsp_clock_append_json (&c, s);
  g_assert_cmpstr (s->str, ==, "{\"0000000000000001\":10,\"00000000000000ff\":2}");
  wsp_clock_clear (&c);
}

static void
test_clock_codec (void)
{
  WspClock c, d;
  g_autoptr (GBytes) b = NULL;
  g_autoptr (GError) error = NULL;

  wsp_clock_init (&c);
  wsp_clock_init (&d);
  wsp_clock_set (&c, G_GUINT64_CONSTANT (0xfedcba9876543210), G_GUINT64_CONSTANT (1) << 40);
  wsp_clock_set (&c, 2, 1);
  b = wsp_clock_encode (&c);
  g_assert_true (wsp_clock_decode (&d, g_bytes_get_data (b, NULL), g_bytes_get_size (b), &error));
  g_assert_no_error (error);
  g_assert_true (wsp_clock_equal (&c, &d));
  wsp_clock_clear (&c);
  wsp_clock_clear (&d);
}

static void
test_clock_decode_garbage (void)
{
  static const struct { const char *bytes; gsize len; } bad[] = {
    { "", 0 },
    { "\x90", 1 },                                  /* array, not map */
    { "\x81\xa1x\x01", 4 },                         /* key not 16 hex */
    { "\x81\xb0" "0000000000000001" "\x00", 19 },   /* seq 0 */
    { "\x81\xb0" "0000000000000001" "\xff", 19 },   /* negative */
    { "\x82\xb0" "0000000000000001" "\x01\xb0" "0000000000000001" "\x02", 37 },   /* duplicate */
    { "\x80\x00", 2 },                              /* trailing byte */
    { "\xdf\xff\xff\xff\xff", 5 },                  /* huge declared count */
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      WspClock c;
      g_autoptr (GError) error = NULL;
      wsp_clock_init (&c);
      wsp_clock_set (&c, 1, 1);
      g_assert_false (wsp_clock_decode (&c, (const guint8 *) bad[i].bytes, bad[i].len, &error));
      g_assert_error (error, WSP_ERROR, WSP_ERROR_CORRUPT);
      /* Untouched on failure. */
      g_assert_cmpuint (wsp_clock_get (&c, 1), ==, 1);
      wsp_clock_clear (&c);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/hlc/monotonic", test_hlc_monotonic);
  g_test_add_func ("/hlc/observe", test_hlc_observe);
  g_test_add_func ("/hlc/counter-carry", test_hlc_counter_carry);
  g_test_add_func ("/hlc/saturates", test_hlc_saturates);
  g_test_add_func ("/clock/basic", test_clock_basic);
  g_test_add_func ("/clock/merge-covers", test_clock_merge_covers);
  g_test_add_func ("/clock/diff", test_clock_diff);
  g_test_add_func ("/clock/json", test_clock_json);
  g_test_add_func ("/clock/codec", test_clock_codec);
  g_test_add_func ("/clock/decode-garbage", test_clock_decode_garbage);
  return g_test_run ();
}
