/* auth-test.c — the peer-sync key schedule, signaling and channel auth
 * texts, MACs and signatures (SPEC 7.1, 7.4), and SDP fingerprints.
 *
 * Expected values were computed independently with Python's hashlib, hmac
 * and cryptography (Ed25519) from: secret = bytes 0..31, client seed 32 ×
 * 0x11, listener seed 32 × 0x22, project "k3jrxaq2mzk3jrxaq2mzk3jrxa",
 * listener nonce bytes 100..131, client nonce bytes 200..231, fingerprints
 * "sha-256 00:01:…:1F" (client) and "sha-256 FF:FE:…:E0" (listener).
 */
#include <glib.h>
#include <string.h>

#include "sync/wsp-auth.h"

#define PROJECT "k3jrxaq2mzk3jrxaq2mzk3jrxa"
#define FP_CLIENT "sha-256 00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F"
#define FP_LISTENER "sha-256 FF:FE:FD:FC:FB:FA:F9:F8:F7:F6:F5:F4:F3:F2:F1:F0:EF:EE:ED:EC:EB:EA:E9:E8:E7:E6:E5:E4:E3:E2:E1:E0"

static void
unhex (const char *hex, guint8 *out, gsize n)
{
  g_assert_cmpuint (strlen (hex), ==, n * 2);
  for (gsize i = 0; i < n; i++)
    out[i] = (guint8) ((g_ascii_xdigit_value (hex[2 * i]) << 4) | g_ascii_xdigit_value (hex[2 * i + 1]));
}

typedef struct {
  WspAuthKeys keys;
  WspIdentity client, listener;
  guint8      lnonce[32], cnonce[32];
} Fixture;

static void
fixture_init (Fixture *f)
{
  guint8 secret[32], seed[32];
  for (int i = 0; i < 32; i++)
    {
      secret[i] = (guint8) i;
      f->lnonce[i] = (guint8) (100 + i);
      f->cnonce[i] = (guint8) (200 + i);
    }
  wsp_auth_keys_derive (&f->keys, secret);
  memset (seed, 0x11, sizeof seed);
  wsp_identity_from_seed (&f->client, seed);
  memset (seed, 0x22, sizeof seed);
  wsp_identity_from_seed (&f->listener, seed);
}

static void
test_keys (void)
{
  Fixture f;
  guint8 want[32];

  fixture_init (&f);
  unhex ("2211bfca7d92c4e6a598425ab82bf690de308769e03e0b74fdb496e22a38362e", want, 32);
  g_assert_cmpmem (f.keys.k_signal, 32, want, 32);
  unhex ("33db872cda929de64d6b1c96c6f32db187fb27cb9bb13514f59979451da5ba8e", want, 32);
  g_assert_cmpmem (f.keys.k_auth, 32, want, 32);
  g_assert_cmpstr (f.client.peer_hex, ==, "10ba682c8ad13513");
  g_assert_cmpstr (f.listener.peer_hex, ==, "1325b850c2871916");
  wsp_auth_keys_clear (&f.keys);
  for (int i = 0; i < 32; i++)
    g_assert_cmpuint (f.keys.k_auth[i] | f.keys.k_signal[i], ==, 0);
}

static void
test_signal_hello (void)
{
  Fixture f;
  guint8 mac[32], sig[64], want_mac[32], want_sig[64];
  g_autofree char *text = NULL;
  g_autoptr (GError) error = NULL;

  fixture_init (&f);
  text = wsp_auth_signal_hello_text (PROJECT, f.lnonce, f.client.peer);
  g_assert_cmpstr (text, ==, "wsp-signal-v1\n" PROJECT "\nZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=\n10ba682c8ad13513");
  wsp_auth_signal_hello_sign (&f.keys, &f.client, PROJECT, f.lnonce, mac, sig);
  unhex ("d26687c9a7d75c44d906b545dd9030f445f2808974d06a124b3bb88816dbfb51", want_mac, 32);
  unhex ("8e4b8969699963dce04833c1de6b626e49230e6b59637036f5671c8c49eb399098d332bdec6c88c3b016a2df84eb81e3c22ca9245f2473f630afb939814ad500",
         want_sig, 64);
  g_assert_cmpmem (mac, 32, want_mac, 32);
  g_assert_cmpmem (sig, 64, want_sig, 64);

  g_assert_true (wsp_auth_signal_hello_verify (&f.keys, PROJECT, f.lnonce, f.client.peer, f.client.pk,
                                               mac, sig, &error));
  g_assert_no_error (error);

  /* Another project, nonce, peer, key, mac or signature fails. */
  g_assert_false (wsp_auth_signal_hello_verify (&f.keys, "other", f.lnonce, f.client.peer, f.client.pk,
                                                mac, sig, &error));
  g_assert_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_AUTH_FAILED);
  g_clear_error (&error);
  g_assert_false (wsp_auth_signal_hello_verify (&f.keys, PROJECT, f.cnonce, f.client.peer, f.client.pk,
                                                mac, sig, &error));
  g_clear_error (&error);
  /* from_peer_id must be id(pk). */
  g_assert_false (wsp_auth_signal_hello_verify (&f.keys, PROJECT, f.lnonce, f.listener.peer, f.client.pk,
                                                mac, sig, &error));
  g_assert_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_AUTH_FAILED);
  g_clear_error (&error);
  g_assert_false (wsp_auth_signal_hello_verify (&f.keys, PROJECT, f.lnonce, f.listener.peer,
                                                f.listener.pk, mac, sig, &error));
  g_clear_error (&error);
  mac[31] ^= 1;
  g_assert_false (wsp_auth_signal_hello_verify (&f.keys, PROJECT, f.lnonce, f.client.peer, f.client.pk,
                                                mac, sig, &error));
  g_clear_error (&error);
  mac[31] ^= 1;
  sig[0] ^= 1;
  g_assert_false (wsp_auth_signal_hello_verify (&f.keys, PROJECT, f.lnonce, f.client.peer, f.client.pk,
                                                mac, sig, &error));
  g_assert_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_AUTH_FAILED);
  g_clear_error (&error);
  /* A signature by someone else over the right text. */
  wsp_identity_sign (&f.listener, (const guint8 *) text, strlen (text), sig);
  g_assert_false (wsp_auth_signal_hello_verify (&f.keys, PROJECT, f.lnonce, f.client.peer, f.client.pk,
                                                mac, sig, &error));
  g_clear_error (&error);
}

static void
test_signal_welcome (void)
{
  Fixture f;
  guint8 mac[32], want[32], secret2[32];
  g_autofree char *text = NULL;
  g_autoptr (GError) error = NULL;
  WspAuthKeys other;

  fixture_init (&f);
  text = wsp_auth_signal_welcome_text (PROJECT, f.cnonce, f.listener.peer);
  g_assert_cmpstr (text, ==, "wsp-signal-v1-listener\n" PROJECT "\nyMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5uc=\n1325b850c2871916");
  wsp_auth_signal_welcome_mac (&f.keys, PROJECT, f.cnonce, f.listener.peer, mac);
  unhex ("eff1bbe600cc3f98f8984171ed821302c2430f8d1af6e4fd7b82b22707500859", want, 32);
  g_assert_cmpmem (mac, 32, want, 32);
  g_assert_true (wsp_auth_signal_welcome_verify (&f.keys, PROJECT, f.cnonce, f.listener.peer, mac, &error));
  g_assert_no_error (error);
  g_assert_false (wsp_auth_signal_welcome_verify (&f.keys, PROJECT, f.lnonce, f.listener.peer, mac, &error));
  g_assert_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_AUTH_FAILED);
  g_clear_error (&error);
  g_assert_false (wsp_auth_signal_welcome_verify (&f.keys, PROJECT, f.cnonce, f.client.peer, mac, &error));
  g_clear_error (&error);
  /* Without the project secret the mac cannot be made. */
  memset (secret2, 7, sizeof secret2);
  wsp_auth_keys_derive (&other, secret2);
  g_assert_false (wsp_auth_signal_welcome_verify (&other, PROJECT, f.cnonce, f.listener.peer, mac, &error));
  g_clear_error (&error);
  /* A hello mac over the same items (another label) is not a welcome mac. */
  {
    guint8 sig[64];
    wsp_auth_signal_hello_sign (&f.keys, &f.listener, PROJECT, f.cnonce, mac, sig);
    g_assert_false (wsp_auth_signal_welcome_verify (&f.keys, PROJECT, f.cnonce, f.listener.peer, mac, NULL));
  }
}

static void
test_channel_auth (void)
{
  Fixture f;
  guint8 mac[32], sig[64], want_mac[32], want_sig[64];
  g_autofree char *text = NULL;
  g_autoptr (GError) error = NULL;

  fixture_init (&f);
  text = wsp_auth_channel_text (f.client.peer, f.listener.peer, f.lnonce, FP_CLIENT, FP_LISTENER);
  g_assert_cmpstr (text, ==, "wsp-auth-v1\n10ba682c8ad13513\n1325b850c2871916\n"
                             "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=\n" FP_CLIENT "\n" FP_LISTENER);
  /* Client sends to listener: the listener's hello nonce, the client's own
   * SDP fingerprint first. */
  wsp_auth_channel_sign (&f.keys, &f.client, f.listener.peer, f.lnonce, FP_CLIENT, FP_LISTENER, mac, sig);
  unhex ("fc9824045f0aa459839d57bd38df51e8ecabde949bea909fefcd625faf29a003", want_mac, 32);
  unhex ("9f646076cbcd9d86db462c17eb3585b99831aa484369d3c9b7fbfa15464e563435a3549f7ef9defa8e8909c4725b9ee6cc7d1ad51a9a12f4b54a6f1527c4930e",
         want_sig, 64);
  g_assert_cmpmem (mac, 32, want_mac, 32);
  g_assert_cmpmem (sig, 64, want_sig, 64);

  /* The listener verifies: remote = client, local = listener, its own
   * nonce, the remote's fingerprint first. */
  g_assert_true (wsp_auth_channel_verify (&f.keys, f.client.peer, f.client.pk, f.listener.peer, f.lnonce,
                                          FP_CLIENT, FP_LISTENER, mac, sig, &error));
  g_assert_no_error (error);
  /* Swapped fingerprints (a relayed DTLS session) fail. */
  g_assert_false (wsp_auth_channel_verify (&f.keys, f.client.peer, f.client.pk, f.listener.peer, f.lnonce,
                                           FP_LISTENER, FP_CLIENT, mac, sig, &error));
  g_assert_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_AUTH_FAILED);
  g_clear_error (&error);
  /* Replayed to another receiver or with another nonce. */
  g_assert_false (wsp_auth_channel_verify (&f.keys, f.client.peer, f.client.pk, f.client.peer, f.lnonce,
                                           FP_CLIENT, FP_LISTENER, mac, sig, &error));
  g_clear_error (&error);
  g_assert_false (wsp_auth_channel_verify (&f.keys, f.client.peer, f.client.pk, f.listener.peer, f.cnonce,
                                           FP_CLIENT, FP_LISTENER, mac, sig, &error));
  g_clear_error (&error);
  /* The pk must match the claimed sender. */
  g_assert_false (wsp_auth_channel_verify (&f.keys, f.client.peer, f.listener.pk, f.listener.peer,
                                           f.lnonce, FP_CLIENT, FP_LISTENER, mac, sig, &error));
  g_clear_error (&error);
  mac[0] ^= 0x80;
  g_assert_false (wsp_auth_channel_verify (&f.keys, f.client.peer, f.client.pk, f.listener.peer, f.lnonce,
                                           FP_CLIENT, FP_LISTENER, mac, sig, &error));
  g_clear_error (&error);
  mac[0] ^= 0x80;
  sig[63] ^= 1;
  g_assert_false (wsp_auth_channel_verify (&f.keys, f.client.peer, f.client.pk, f.listener.peer, f.lnonce,
                                           FP_CLIENT, FP_LISTENER, mac, sig, &error));
  g_clear_error (&error);

  /* And the other direction round-trips. */
  wsp_auth_channel_sign (&f.keys, &f.listener, f.client.peer, f.cnonce, FP_LISTENER, FP_CLIENT, mac, sig);
  g_assert_true (wsp_auth_channel_verify (&f.keys, f.listener.peer, f.listener.pk, f.client.peer, f.cnonce,
                                          FP_LISTENER, FP_CLIENT, mac, sig, NULL));
}

static void
test_fingerprint (void)
{
  static const struct { const char *sdp; const char *want; } cases[] = {
    { "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
      "a=fingerprint:sha-256 ab:cd:EF:01\r\na=fingerprint:sha-1 00:11\r\n",
      "sha-256 AB:CD:EF:01" },
    { "a=fingerprint: \tSHA-256   AB:cd \t\r\n", "sha-256 AB:CD" },
    { "v=0\na=setup:actpass\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\na=fingerprint:sha-512 0A", "sha-512 0A" },
    /* Only a line starting with the attribute counts. */
    { "x a=fingerprint:sha-1 00\r\na=fingerprint:sha-1 11\r\n", "sha-1 11" },
  };
  static const char *const bad[] = {
    "", "v=0\r\n", "a=fingerprint:\r\n", "a=fingerprint:sha-256\r\n",
    "a=fingerprint:sha-256 A\r\n", "a=fingerprint:sha-256 AB:\r\n", "a=fingerprint:sha-256 ABCD\r\n",
    "a=fingerprint:sha-256 AB::CD\r\n", "a=fingerprint:sha-256 GG\r\n", "a=fingerprint:sha-256 AB CD\r\n",
    "A=FINGERPRINT:sha-256 AB\r\n",
    /* The first line is malformed: later ones are not consulted. */
    "a=fingerprint:bogus\r\na=fingerprint:sha-256 AB\r\n",
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *fp = wsp_sdp_fingerprint (cases[i].sdp, -1, &error);
      g_assert_no_error (error);
      g_assert_cmpstr (fp, ==, cases[i].want);
    }
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *fp = wsp_sdp_fingerprint (bad[i], -1, &error);
      g_assert_null (fp);
      g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
    }
  /* Explicit length: a NUL inside the value is malformed, bytes past len are
   * not read. */
  {
    static const char sdp[] = "a=fingerprint:sha-1 AB\0CD";
    g_autofree char *fp = wsp_sdp_fingerprint (sdp, sizeof sdp - 1, NULL);
    g_autofree char *fp2 = wsp_sdp_fingerprint (sdp, 22, NULL);
    g_assert_null (fp);
    g_assert_cmpstr (fp2, ==, "sha-1 AB");
  }
  g_assert_null (wsp_sdp_fingerprint (NULL, -1, NULL));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_assert_true (wsp_crypto_init ());
  g_test_add_func ("/auth/keys/hkdf", test_keys);
  g_test_add_func ("/auth/signal/hello", test_signal_hello);
  g_test_add_func ("/auth/signal/welcome", test_signal_welcome);
  g_test_add_func ("/auth/channel/text-mac-sig", test_channel_auth);
  g_test_add_func ("/auth/sdp-fingerprint", test_fingerprint);
  return g_test_run ();
}
