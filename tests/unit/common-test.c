/* common-test.c — the shared vocabulary: ids, encodings, times, dates and
 * the JSON primitives whose exact output SPEC 3 and 5 fix. */
#include <glib.h>
#include <math.h>
#include <string.h>
#include <sodium.h>

#include "common/wsp-common.h"

static void
test_peer_hex (void)
{
  char buf[WSP_PEER_HEX_LEN + 1];
  WspPeer p = 0;

  wsp_peer_to_hex (G_GUINT64_CONSTANT (0x00ab0123456789ef), buf);
  g_assert_cmpstr (buf, ==, "00ab0123456789ef");
  g_assert_true (wsp_peer_from_hex (buf, 16, &p));
  g_assert_cmphex (p, ==, G_GUINT64_CONSTANT (0x00ab0123456789ef));
  /* Strict: uppercase, wrong length, non-hex are refused. */
  g_assert_false (wsp_peer_from_hex ("00AB0123456789EF", 16, &p));
  g_assert_false (wsp_peer_from_hex ("00ab0123456789e", 15, &p));
  g_assert_false (wsp_peer_from_hex ("00ab0123456789eff", 17, &p));
  g_assert_false (wsp_peer_from_hex ("00ab0123456789eg", 16, &p));
  g_assert_false (wsp_peer_from_hex (NULL, 16, &p));
}

static void
test_peer_from_pk (void)
{
  guint8 pk[32];
  char buf[WSP_PEER_HEX_LEN + 1];
  g_autofree char *sha = NULL;

  for (int i = 0; i < 32; i++)
    pk[i] = (guint8) i;
  sha = g_compute_checksum_for_data (G_CHECKSUM_SHA256, pk, sizeof pk);
  wsp_peer_to_hex (wsp_peer_from_pk (pk), buf);
  /* The first 8 bytes of SHA-256(pk) as hex: numeric order = string order. */
  g_assert_cmpint (strncmp (buf, sha, 16), ==, 0);
}

static void
test_base32 (void)
{
  /* RFC 4648 section 10 vectors, lowercased and unpadded. */
  static const struct { const char *in, *out; } v[] = {
    { "", "" }, { "f", "my" }, { "fo", "mzxq" }, { "foo", "mzxw6" },
    { "foob", "mzxw6yq" }, { "fooba", "mzxw6ytb" }, { "foobar", "mzxw6ytboi" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (v); i++)
    {
      g_autofree char *s = wsp_base32_encode ((const guint8 *) v[i].in, strlen (v[i].in));
      g_assert_cmpstr (s, ==, v[i].out);
    }
}

static void
test_hex (void)
{
  static const guint8 d[] = { 0x00, 0x7f, 0xab, 0xff };
  g_autofree char *s = wsp_hex_encode (d, sizeof d);
  g_assert_cmpstr (s, ==, "007fabff");
}

static void
test_base64url (void)
{
  static const struct { const char *in, *out; } v[] = {
    { "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
    { "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" }, { "foobar", "Zm9vYmFy" },
    { "\xfb\xff", "-_8" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (v); i++)
    {
      g_autofree char *s = wsp_base64url_encode ((const guint8 *) v[i].in, strlen (v[i].in));
      g_autofree guint8 *back = NULL;
      gsize len = 99;
      g_autoptr (GError) error = NULL;
      g_assert_cmpstr (s, ==, v[i].out);
      back = wsp_base64url_decode (s, &len, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (len, ==, strlen (v[i].in));
      g_assert_cmpmem (back, len, v[i].in, strlen (v[i].in));
    }
  for (guint n = 0; n < 64; n++)
    {
      guint8 buf[64];
      g_autofree char *s = NULL;
      g_autofree guint8 *back = NULL;
      gsize len = 0;
      randombytes_buf (buf, n);
      s = wsp_base64url_encode (buf, n);
      g_assert_null (strchr (s, '='));
      back = wsp_base64url_decode (s, &len, NULL);
      g_assert_cmpmem (back, len, buf, n);
    }
}

static void
test_base64url_invalid (void)
{
  static const char *bad[] = { "Z", "Zm9v+", "Zm/v", "Zm9v Yg", "Zh" /* non-zero pad bits */ };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      gsize len = 0;
      guint8 *out = wsp_base64url_decode (bad[i], &len, &error);
      g_assert_null (out);
      g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
    }
}

static void
test_task_id (void)
{
  g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  for (int i = 0; i < 1000; i++)
    {
      char *id = wsp_task_id_new ("ws");
      g_assert_true (g_regex_match_simple ("^ws-[a-z2-7]{10}$", id, 0, 0));
      g_assert_true (g_hash_table_add (seen, id));
    }
  {
    g_autofree char *id = wsp_task_id_new ("abc9");
    g_assert_true (g_regex_match_simple ("^abc9-[a-z2-7]{10}$", id, 0, 0));
  }
}

static void
test_task_prefix (void)
{
  g_assert_true (wsp_task_prefix_is_valid ("ws"));
  g_assert_true (wsp_task_prefix_is_valid ("a"));
  g_assert_true (wsp_task_prefix_is_valid ("a123456789abcdef"));   /* 16 */
  g_assert_false (wsp_task_prefix_is_valid ("a123456789abcdefg"));
  g_assert_false (wsp_task_prefix_is_valid (""));
  g_assert_false (wsp_task_prefix_is_valid ("1ws"));
  g_assert_false (wsp_task_prefix_is_valid ("Ws"));
  g_assert_false (wsp_task_prefix_is_valid ("w-s"));
  g_assert_false (wsp_task_prefix_is_valid (NULL));
}

static void
test_project_id (void)
{
  g_autofree char *a = wsp_project_id_new ();
  g_autofree char *b = wsp_project_id_new ();
  g_assert_true (g_regex_match_simple ("^[a-z2-7]{26}$", a, 0, 0));
  g_assert_cmpstr (a, !=, b);
}

static void
test_format_time (void)
{
  static const struct { guint64 ms; const char *out; } v[] = {
    { 0, "1970-01-01T00:00:00.000Z" },
    { G_GUINT64_CONSTANT (1795428240123), "2026-11-23T10:04:00.123Z" },
    { G_GUINT64_CONSTANT (951782400000), "2000-02-29T00:00:00.000Z" },
    { G_GUINT64_CONSTANT (253402300799999), "9999-12-31T23:59:59.999Z" },
    { G_GUINT64_CONSTANT (253402300800000), "9999-12-31T23:59:59.999Z" },
    { G_MAXUINT64, "9999-12-31T23:59:59.999Z" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (v); i++)
    {
      char buf[25];
      wsp_format_time_ms (v[i].ms, buf);
      g_assert_cmpstr (buf, ==, v[i].out);
    }
}

static void
test_format_time_matches_glib (void)
{
  GRand *r = g_rand_new_with_seed (7);
  for (int i = 0; i < 2000; i++)
    {
      guint64 ms = (guint64) (g_rand_double (r) * 253402300799999.0);
      char buf[25];
      g_autoptr (GDateTime) dt = g_date_time_new_from_unix_utc ((gint64) (ms / 1000));
      g_autofree char *want = g_date_time_format (dt, "%Y-%m-%dT%H:%M:%S");
      wsp_format_time_ms (ms, buf);
      g_assert_cmpint (strncmp (buf, want, 19), ==, 0);
    }
  g_rand_free (r);
}

static void
test_date_valid (void)
{
  static const char *good[] = { "2026-12-01", "2024-02-29", "2000-02-29", "0001-01-01", "9999-12-31", "2023-04-30" };
  static const char *bad[] = { "2023-02-29", "1900-02-29", "2023-04-31", "2023-13-01", "2023-00-10", "2023-01-00",
                               "0000-01-01", "2023-1-01", "2023/01/01", "20230101xx", "2023-01-1x", "", "2023-01-011" };
  for (guint i = 0; i < G_N_ELEMENTS (good); i++)
    g_assert_true (wsp_date_is_valid (good[i], strlen (good[i])));
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    g_assert_false (wsp_date_is_valid (bad[i], strlen (bad[i])));
  g_assert_false (wsp_date_is_valid (NULL, 10));
}

static void
check_json_string (const char *in, gssize len, const char *want)
{
  g_autoptr (GString) s = g_string_new (NULL);
  wsp_json_append_string (s, in, len);
  g_assert_cmpstr (s->str, ==, want);
}

static void
test_json_string (void)
{
  check_json_string ("plain", -1, "\"plain\"");
  check_json_string ("a\"b\\c/", -1, "\"a\\\"b\\\\c/\"");
  check_json_string ("\n\t\x01\x1f", -1, "\"\\u000a\\u0009\\u0001\\u001f\"");
  check_json_string ("caf\xc3\xa9 \xe2\x82\xac", -1, "\"caf\xc3\xa9 \xe2\x82\xac\"");
  check_json_string ("a\0b", 3, "\"a\\u0000b\"");
  /* Invalid UTF-8: each bad byte becomes U+FFFD. */
  check_json_string ("a\xff" "b", -1, "\"a\xef\xbf\xbd" "b\"");
  check_json_string ("\xc3", -1, "\"\xef\xbf\xbd\"");
  check_json_string ("\xed\xa0\x80", -1, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
  check_json_string (NULL, -1, "\"\"");
}

static void
check_double (double v, const char *want)
{
  g_autoptr (GString) s = g_string_new (NULL);
  wsp_json_append_double (s, v);
  g_assert_cmpstr (s->str, ==, want);
}

static void
test_json_double (void)
{
  check_double (0, "0");
  check_double (-0.0, "0");
  check_double (3, "3");
  check_double (-42, "-42");
  check_double (0.1, "0.1");
  check_double (0.1 + 0.2, "0.30000000000000004");
  check_double (1.0 / 3, "0.3333333333333333");
  check_double (1e20, "1e+20");
  check_double (2.5e-8, "2.5e-08");
  check_double (123456789.125, "123456789.125");
  check_double (9007199254740991.0, "9007199254740991");
  check_double (NAN, "0");
  check_double (INFINITY, "0");

  /* Shortest round trip for random doubles. */
  GRand *r = g_rand_new_with_seed (11);
  for (int i = 0; i < 10000; i++)
    {
      guint64 bits = ((guint64) g_rand_int (r) << 32) | g_rand_int (r);
      double v;
      g_autoptr (GString) s = g_string_new (NULL);
      memcpy (&v, &bits, sizeof v);
      if (!isfinite (v))
        continue;
      wsp_json_append_double (s, v);
      g_assert_cmpfloat (g_ascii_strtod (s->str, NULL), ==, v);
    }
  g_rand_free (r);
}

static void
test_utf8 (void)
{
  g_assert_true (wsp_utf8_is_valid ("", 0));
  g_assert_true (wsp_utf8_is_valid ("a\0b", 3));
  g_assert_true (wsp_utf8_is_valid ("\xf4\x8f\xbf\xbf", 4));     /* U+10FFFF */
  g_assert_false (wsp_utf8_is_valid ("\xf4\x90\x80\x80", 4));    /* past U+10FFFF */
  g_assert_false (wsp_utf8_is_valid ("\xc0\x80", 2));            /* overlong */
  g_assert_false (wsp_utf8_is_valid ("\xe0\x80\x80", 3));        /* overlong */
  g_assert_false (wsp_utf8_is_valid ("\xed\xa0\x80", 3));        /* surrogate */
  g_assert_false (wsp_utf8_is_valid ("\xe2\x82", 2));            /* truncated */
  g_assert_false (wsp_utf8_is_valid ("\x80", 1));
}

static void
test_error_quark (void)
{
  g_assert_cmpuint (WSP_ERROR, !=, 0);
  g_assert_cmpuint (WSP_ERROR, ==, wsp_error_quark ());
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_assert_true (sodium_init () >= 0);
  g_test_add_func ("/common/peer/hex", test_peer_hex);
  g_test_add_func ("/common/peer/from-pk", test_peer_from_pk);
  g_test_add_func ("/common/base32/rfc4648", test_base32);
  g_test_add_func ("/common/hex", test_hex);
  g_test_add_func ("/common/base64url/round-trip", test_base64url);
  g_test_add_func ("/common/base64url/invalid", test_base64url_invalid);
  g_test_add_func ("/common/id/task", test_task_id);
  g_test_add_func ("/common/id/prefix", test_task_prefix);
  g_test_add_func ("/common/id/project", test_project_id);
  g_test_add_func ("/common/time/format", test_format_time);
  g_test_add_func ("/common/time/matches-glib", test_format_time_matches_glib);
  g_test_add_func ("/common/date/valid", test_date_valid);
  g_test_add_func ("/common/json/string", test_json_string);
  g_test_add_func ("/common/json/double", test_json_double);
  g_test_add_func ("/common/utf8", test_utf8);
  g_test_add_func ("/common/error-quark", test_error_quark);
  return g_test_run ();
}
