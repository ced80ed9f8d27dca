/* invite-test.c — join tokens (SPEC 6): exact token for fixed inputs,
 * round trips, and strict decoding. The expected token was computed
 * independently (Python: hand-packed MessagePack + base64.urlsafe_b64encode
 * with the padding stripped). */
#include <glib.h>
#include <string.h>

#include "sync/wsp-invite.h"
#include "common/wsp-common.h"

#define PROJECT "k3jrxaq2mzk3jrxaq2mzk3jrxa"

static void
fill (WspInvite *inv)
{
  wsp_invite_init (inv);
  inv->project_id = g_strdup (PROJECT);
  for (int i = 0; i < 32; i++)
    inv->secret[i] = (guint8) i;
  g_ptr_array_add (inv->peer_urls, g_strdup ("ws://192.0.2.7:7420/api/v1/signal"));
}

static void
test_exact (void)
{
  WspInvite inv;
  g_autofree char *token = NULL;
  g_autoptr (GError) error = NULL;

  fill (&inv);
  token = wsp_invite_encode (&inv, &error);
  g_assert_no_error (error);
  /* {"p":PROJECT,"s":bin(0..31),"a":["ws://192.0.2.7:7420/api/v1/signal"]} */
  g_assert_cmpstr (token, ==,
                   "wsp1:g6FwumszanJ4YXEybXprM2pyeGFxMm16azNqcnhhoXPEIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhsc"
                   "HR4foWGR2SF3czovLzE5Mi4wLjIuNzo3NDIwL2FwaS92MS9zaWduYWw");
  wsp_invite_clear (&inv);
}

static void
test_round_trip (void)
{
  static const char *const urls[] = { "wss://example.org/api/v1/signal", "ws://[::1]:9000/api/v1/signal" };

  for (guint n = 0; n <= G_N_ELEMENTS (urls); n++)
    {
      WspInvite inv, out;
      g_autofree char *token = NULL;
      g_autofree char *padded = NULL;
      g_autoptr (GError) error = NULL;

      wsp_invite_init (&inv);
      inv.project_id = wsp_project_id_new ();
      for (int i = 0; i < 32; i++)
        inv.secret[i] = (guint8) (0xa5 ^ i);
      for (guint i = 0; i < n; i++)
        g_ptr_array_add (inv.peer_urls, g_strdup (urls[i]));
      token = wsp_invite_encode (&inv, &error);
      g_assert_no_error (error);
      g_assert_true (g_str_has_prefix (token, "wsp1:"));
      g_assert_null (strchr (token, '='));
      g_assert_null (strchr (token, '+'));
      g_assert_null (strchr (token, '/'));

      /* Surrounding whitespace (a pasted token) is ignored. */
      padded = g_strdup_printf ("  %s\n", token);
      g_assert_true (wsp_invite_decode (padded, &out, &error));
      g_assert_no_error (error);
      g_assert_cmpstr (out.project_id, ==, inv.project_id);
      g_assert_cmpmem (out.secret, 32, inv.secret, 32);
      g_assert_cmpuint (out.peer_urls->len, ==, n);
      for (guint i = 0; i < n; i++)
        g_assert_cmpstr (g_ptr_array_index (out.peer_urls, i), ==, urls[i]);
      wsp_invite_clear (&out);
      wsp_invite_clear (&inv);
    }
}

/* A token from raw MessagePack bytes. */
static char *
token_of (const char *mp, gsize len)
{
  g_autofree char *b64 = wsp_base64url_encode ((const guint8 *) mp, len);
  return g_strconcat ("wsp1:", b64, NULL);
}

#define SECRET "\xc4\x20" "0123456789abcdef0123456789abcdef"
#define PSTR "\xba" PROJECT

static void
test_decode_rejects (void)
{
  /* Raw maps that must fail. */
  static const struct { const char *mp; gsize len; } maps[] = {
#define M(s) { s, sizeof (s) - 1 }
    M ("\x83\xa1p" PSTR "\xa1s" SECRET "\xa1" "a\x91\xa8http://x"),         /* not ws:// */
    M ("\x83\xa1p" PSTR "\xa1s" SECRET "\xa1" "a\x91\x01"),                  /* url not a str */
    M ("\x83\xa1p" PSTR "\xa1s" SECRET "\xa1" "a\xa0"),                      /* a not an array */
    M ("\x82\xa1p" PSTR "\xa1s" SECRET),                                     /* a missing */
    M ("\x83\xa1p" PSTR "\xa1s\xc4\x1f" "0123456789abcdef0123456789abcde\xa1" "a\x90"), /* secret 31 */
    M ("\x83\xa1p" PSTR "\xa1s\xa2xx\xa1" "a\x90"),                          /* secret a str */
    M ("\x83\xa1p\xa3" "abc\xa1s" SECRET "\xa1" "a\x90"),                    /* project too short */
    M ("\x83\xa1p\xba" "K3jrxaq2mzk3jrxaq2mzk3jrxa\xa1s" SECRET "\xa1" "a\x90"), /* uppercase */
    M ("\x82\xa1s" SECRET "\xa1" "a\x90"),                                   /* p missing */
    M ("\x84\xa1p" PSTR "\xa1p" PSTR "\xa1s" SECRET "\xa1" "a\x90"),         /* p twice */
    M ("\x93\xa1p\xa1s\xa1" "a"),                                            /* an array */
    M ("\x83\xa1p" PSTR "\xa1s" SECRET "\xa1" "a\x90\x00"),                  /* trailing byte */
    M ("\x83\xa1p" PSTR "\xa1s" SECRET "\xa1" "a\xdd\xff\xff\xff\xff"),      /* huge count */
    M ("\x83\xa1p\xa2\xc3\x28\xa1s" SECRET "\xa1" "a\x90"),                  /* bad UTF-8 */
#undef M
  };
  static const char *const texts[] = {
    "", "wsp1:", "wsp2:g6Fw", "WSP1:g6Fw", "g6Fw", "wsp1:g6F=", "wsp1:g6F", "wsp1:g6F*",
    "wsp1:g6Fw+A", "wsp1: g6Fw",
  };
  g_autoptr (GError) error = NULL;
  WspInvite out;

  for (guint i = 0; i < G_N_ELEMENTS (maps); i++)
    {
      g_autofree char *token = token_of (maps[i].mp, maps[i].len);
      memset (&out, 0x3c, sizeof out);
      g_assert_false (wsp_invite_decode (token, &out, &error));
      g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
      g_assert_null (out.project_id);
      g_assert_null (out.peer_urls);
      g_clear_error (&error);
    }
  for (guint i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      g_assert_false (wsp_invite_decode (texts[i], &out, &error));
      g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
      g_clear_error (&error);
    }
  g_assert_false (wsp_invite_decode (NULL, &out, NULL));
  /* Too long. */
  {
    g_autofree char *big = g_strnfill (WSP_INVITE_MAX_LEN + 1, 'A');
    memcpy (big, "wsp1:", 5);
    g_assert_false (wsp_invite_decode (big, &out, &error));
    g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
    g_clear_error (&error);
  }
  /* The valid core of the cases above decodes, with unknown keys ignored. */
  {
    static const char ok[] = "\x84\xa1x\x91\x91\x01\xa1p" PSTR "\xa1s" SECRET "\xa1" "a\x90";
    g_autofree char *token = token_of (ok, sizeof ok - 1);
    g_assert_true (wsp_invite_decode (token, &out, &error));
    g_assert_no_error (error);
    g_assert_cmpuint (out.peer_urls->len, ==, 0);
    wsp_invite_clear (&out);
  }
}

static void
test_encode_rejects (void)
{
  WspInvite inv;
  g_autoptr (GError) error = NULL;

  fill (&inv);
  g_free (inv.project_id);
  inv.project_id = g_strdup ("not a project");
  g_assert_null (wsp_invite_encode (&inv, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
  g_clear_error (&error);
  g_free (inv.project_id);
  inv.project_id = g_strdup (PROJECT);
  g_ptr_array_add (inv.peer_urls, g_strdup ("http://example.org/"));
  g_assert_null (wsp_invite_encode (&inv, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
  wsp_invite_clear (&inv);
  wsp_invite_clear (NULL);
}

static void
test_project_id (void)
{
  g_autofree char *fresh = wsp_project_id_new ();
  g_assert_true (wsp_project_id_is_valid (fresh));
  g_assert_true (wsp_project_id_is_valid (PROJECT));
  g_assert_false (wsp_project_id_is_valid ("k3jrxaq2mzk3jrxaq2mzk3jrx"));
  g_assert_false (wsp_project_id_is_valid ("k3jrxaq2mzk3jrxaq2mzk3jrxa0"));
  g_assert_false (wsp_project_id_is_valid ("k3jrxaq2mzk3jrxaq2mzk3jrx1"));
  g_assert_false (wsp_project_id_is_valid (NULL));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/invite/encode/exact", test_exact);
  g_test_add_func ("/invite/round-trip", test_round_trip);
  g_test_add_func ("/invite/decode/rejects", test_decode_rejects);
  g_test_add_func ("/invite/encode/rejects", test_encode_rejects);
  g_test_add_func ("/invite/project-id", test_project_id);
  return g_test_run ();
}
