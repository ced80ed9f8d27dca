/* chain-test.c — identities, hash chains, signed heads and the key
 * schedule against published vectors (RFC 8032, RFC 5869, RFC 4231). */
#include <glib.h>
#include <string.h>

#include "crdt/wsp-chain.h"

static void
unhex (const char *hex, guint8 *out, gsize n)
{
  g_assert_cmpuint (strlen (hex), ==, n * 2);
  for (gsize i = 0; i < n; i++)
    out[i] = (guint8) ((g_ascii_xdigit_value (hex[2 * i]) << 4) | g_ascii_xdigit_value (hex[2 * i + 1]));
}

static void
test_ed25519_rfc8032 (void)
{
  /* RFC 8032 section 7.1, TEST 1 (empty message). */
  guint8 seed[32], want_pk[32], want_sig[64], sig[64];
  WspIdentity id;

  unhex ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", seed, 32);
  unhex ("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", want_pk, 32);
  unhex ("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
         want_sig, 64);
  wsp_identity_from_seed (&id, seed);
  g_assert_cmpmem (id.pk, 32, want_pk, 32);
  g_assert_cmpuint (id.peer, ==, wsp_peer_from_pk (want_pk));
  g_assert_cmpuint (strlen (id.peer_hex), ==, 16);
  wsp_identity_sign (&id, (const guint8 *) "", 0, sig);
  g_assert_cmpmem (sig, 64, want_sig, 64);
  g_assert_true (wsp_verify (id.pk, (const guint8 *) "", 0, sig));
  sig[5] ^= 1;
  g_assert_false (wsp_verify (id.pk, (const guint8 *) "", 0, sig));
}

static void
test_identity_generate (void)
{
  WspIdentity a, b;
  guint8 sig[64];

  wsp_identity_generate (&a);
  wsp_identity_generate (&b);
  g_assert_cmpuint (a.peer, !=, b.peer);
  wsp_identity_sign (&a, (const guint8 *) "hello", 5, sig);
  g_assert_true (wsp_verify (a.pk, (const guint8 *) "hello", 5, sig));
  g_assert_false (wsp_verify (b.pk, (const guint8 *) "hello", 5, sig));
  g_assert_false (wsp_verify (a.pk, (const guint8 *) "hellO", 5, sig));
}

static void
test_chain (void)
{
  guint8 pk[32], h0[32], h1[32], h2[32];
  g_autoptr (GString) raw = g_string_new ("wsp-chain-v1");
  g_autofree char *want0 = NULL;
  g_autofree char *got0 = NULL;
  g_autoptr (GChecksum) ck = g_checksum_new (G_CHECKSUM_SHA256);
  guint8 buf[32];
  gsize len = sizeof buf;

  for (int i = 0; i < 32; i++)
    pk[i] = (guint8) (200 + i);
  /* h(0): raw concatenation, no separators (SPEC 7.3). */
  g_string_append (raw, "abcdefghijklmnopqrstuvwxyz");
  g_string_append_len (raw, (const char *) pk, 32);
  want0 = g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guint8 *) raw->str, raw->len);
  wsp_chain_genesis ("abcdefghijklmnopqrstuvwxyz", pk, h0);
  got0 = wsp_hex_encode (h0, 32);
  g_assert_cmpstr (got0, ==, want0);

  /* h(1) = SHA-256(h(0) ‖ body). */
  wsp_chain_next (h0, (const guint8 *) "\x95\x01\x80\x01\xa1t\xc0", 7, h1);
  g_checksum_update (ck, h0, 32);
  g_checksum_update (ck, (const guint8 *) "\x95\x01\x80\x01\xa1t\xc0", 7);
  g_checksum_get_digest (ck, buf, &len);
  g_assert_cmpmem (h1, 32, buf, 32);

  /* out may alias prev. */
  memcpy (h2, h1, 32);
  wsp_chain_next (h2, (const guint8 *) "x", 1, h2);
  wsp_chain_next (h1, (const guint8 *) "x", 1, h1);
  g_assert_cmpmem (h1, 32, h2, 32);
}

static void
test_head (void)
{
  WspIdentity id, other;
  guint8 hash[32], sig[64];
  g_autofree char *text = NULL;
  g_autofree char *hex = NULL;
  g_autofree char *want = NULL;

  wsp_identity_generate (&id);
  wsp_identity_generate (&other);
  for (int i = 0; i < 32; i++)
    hash[i] = (guint8) i;
  text = wsp_head_text (id.peer, 42, hash);
  hex = wsp_hex_encode (hash, 32);
  want = g_strdup_printf ("wsp-head-v1\n%s\n42\n%s", id.peer_hex, hex);
  g_assert_cmpstr (text, ==, want);

  wsp_head_sign (&id, 42, hash, sig);
  g_assert_true (wsp_verify (id.pk, (const guint8 *) text, strlen (text), sig));
  g_assert_true (wsp_head_verify (id.pk, id.peer, 42, hash, sig));
  g_assert_false (wsp_head_verify (id.pk, id.peer, 43, hash, sig));
  /* A key that is not the named peer's proves nothing. */
  g_assert_false (wsp_head_verify (other.pk, id.peer, 42, hash, sig));
  g_assert_false (wsp_head_verify (id.pk, other.peer, 42, hash, sig));
  hash[0] ^= 1;
  g_assert_false (wsp_head_verify (id.pk, id.peer, 42, hash, sig));
}

static void
test_hkdf_rfc5869_case3 (void)
{
  /* RFC 5869 A.3: SHA-256, zero-length salt and info. */
  guint8 ikm[22], okm[42], want[42];

  memset (ikm, 0x0b, sizeof ikm);
  unhex ("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8", want, 42);
  wsp_hkdf_sha256 (ikm, sizeof ikm, "", okm, sizeof okm);
  g_assert_cmpmem (okm, 42, want, 42);
  wsp_hkdf_sha256 (ikm, sizeof ikm, NULL, okm, sizeof okm);
  g_assert_cmpmem (okm, 42, want, 42);
}

static void
test_hkdf_project_keys (void)
{
  guint8 secret[32], ks[32], ka[32], ks2[32];

  memset (secret, 0x42, sizeof secret);
  wsp_hkdf_sha256 (secret, 32, "wsp signal v1", ks, 32);
  wsp_hkdf_sha256 (secret, 32, "wsp auth v1", ka, 32);
  wsp_hkdf_sha256 (secret, 32, "wsp signal v1", ks2, 32);
  g_assert_cmpmem (ks, 32, ks2, 32);
  g_assert_true (memcmp (ks, ka, 32) != 0);
}

static void
test_hmac (void)
{
  guint8 key[32], out[32];
  g_autofree char *want = NULL;
  g_autofree char *got = NULL;
  const char *msg = "wsp-signal-v1\nproject\nnonce\npeer";

  for (int i = 0; i < 32; i++)
    key[i] = (guint8) (i * 7);
  want = g_compute_hmac_for_data (G_CHECKSUM_SHA256, key, 32, (const guint8 *) msg, strlen (msg));
  wsp_hmac_sha256 (key, (const guint8 *) msg, strlen (msg), out);
  got = wsp_hex_encode (out, 32);
  g_assert_cmpstr (got, ==, want);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_assert_true (wsp_crypto_init ());
  g_assert_true (wsp_crypto_init ());   /* idempotent */
  g_test_add_func ("/chain/ed25519/rfc8032", test_ed25519_rfc8032);
  g_test_add_func ("/chain/identity/generate", test_identity_generate);
  g_test_add_func ("/chain/hash-chain", test_chain);
  g_test_add_func ("/chain/signed-head", test_head);
  g_test_add_func ("/chain/hkdf/rfc5869-case3", test_hkdf_rfc5869_case3);
  g_test_add_func ("/chain/hkdf/project-keys", test_hkdf_project_keys);
  g_test_add_func ("/chain/hmac", test_hmac);
  return g_test_run ();
}
