/* wsp-chain.c — identities, per-author hash chains, signed heads and the
 * project key schedule (SPEC 7.3, 7.4), all on libsodium.
 *
 * Invariants: texts that are signed or MACed are built in exactly one place
 * each (wsp_head_text here; signaling/auth texts by their callers with the
 * "\n" join of SPEC 7.4), and the genesis h(0) is the one raw concatenation
 * without separators (SPEC 7.3). Secret material lives in caller-owned
 * structs; temporaries are wiped with sodium_memzero.
 */
#include "crdt/wsp-chain.h"

#include <string.h>
#include <sodium.h>

gboolean
wsp_crypto_init (void)
{
  /* sodium_init returns 1 when already initialised, -1 on failure. */
  return sodium_init () >= 0;
}

void
wsp_identity_from_seed (WspIdentity *self, const guint8 seed[WSP_SEED_LEN])
{
  memcpy (self->seed, seed, WSP_SEED_LEN);
  crypto_sign_seed_keypair (self->pk, self->sk, self->seed);
  self->peer = wsp_peer_from_pk (self->pk);
  wsp_peer_to_hex (self->peer, self->peer_hex);
}

void
wsp_identity_generate (WspIdentity *self)
{
  guint8 seed[WSP_SEED_LEN];

  randombytes_buf (seed, sizeof seed);
  wsp_identity_from_seed (self, seed);
  sodium_memzero (seed, sizeof seed);
}

void
wsp_identity_sign (const WspIdentity *self, const guint8 *msg, gsize len, guint8 sig[WSP_SIG_LEN])
{
  crypto_sign_detached (sig, NULL, msg, len, self->sk);
}

gboolean
wsp_verify (const guint8 pk[WSP_PK_LEN], const guint8 *msg, gsize len, const guint8 sig[WSP_SIG_LEN])
{
  return crypto_sign_verify_detached (sig, msg, len, pk) == 0;
}

void
wsp_chain_genesis (const char *project_id, const guint8 pk[WSP_PK_LEN], guint8 out[WSP_HASH_LEN])
{
  crypto_hash_sha256_state st;
  static const char tag[] = "wsp-chain-v1";

  crypto_hash_sha256_init (&st);
  crypto_hash_sha256_update (&st, (const guint8 *) tag, sizeof tag - 1);
  crypto_hash_sha256_update (&st, (const guint8 *) project_id, strlen (project_id));
  crypto_hash_sha256_update (&st, pk, WSP_PK_LEN);
  crypto_hash_sha256_final (&st, out);
}

void
wsp_chain_next (const guint8 prev[WSP_HASH_LEN], const guint8 *body, gsize len, guint8 out[WSP_HASH_LEN])
{
  crypto_hash_sha256_state st;

  /* prev is consumed into the state before out is written: aliasing is ok. */
  crypto_hash_sha256_init (&st);
  crypto_hash_sha256_update (&st, prev, WSP_HASH_LEN);
  crypto_hash_sha256_update (&st, body, len);
  crypto_hash_sha256_final (&st, out);
}

char *
wsp_head_text (WspPeer peer, guint64 seq, const guint8 hash[WSP_HASH_LEN])
{
  char hex[WSP_PEER_HEX_LEN + 1];
  g_autofree char *h = wsp_hex_encode (hash, WSP_HASH_LEN);

  wsp_peer_to_hex (peer, hex);
  return g_strdup_printf ("wsp-head-v1\n%s\n%" G_GUINT64_FORMAT "\n%s", hex, seq, h);
}

void
wsp_head_sign (const WspIdentity *id, guint64 seq, const guint8 hash[WSP_HASH_LEN], guint8 sig[WSP_SIG_LEN])
{
  g_autofree char *text = wsp_head_text (id->peer, seq, hash);

  wsp_identity_sign (id, (const guint8 *) text, strlen (text), sig);
}

gboolean
wsp_head_verify (const guint8 pk[WSP_PK_LEN], WspPeer peer, guint64 seq,
                 const guint8 hash[WSP_HASH_LEN], const guint8 sig[WSP_SIG_LEN])
{
  g_autofree char *text = NULL;

  /* The head names the peer; a key that is not that peer's proves nothing. */
  if (wsp_peer_from_pk (pk) != peer)
    return FALSE;
  text = wsp_head_text (peer, seq, hash);
  return wsp_verify (pk, (const guint8 *) text, strlen (text), sig);
}

void
wsp_hmac_sha256 (const guint8 key[32], const guint8 *msg, gsize len, guint8 out[32])
{
  crypto_auth_hmacsha256_state st;

  crypto_auth_hmacsha256_init (&st, key, 32);
  crypto_auth_hmacsha256_update (&st, msg, len);
  crypto_auth_hmacsha256_final (&st, out);
  sodium_memzero (&st, sizeof st);
}

void
wsp_hkdf_sha256 (const guint8 *ikm, gsize ikm_len, const char *info, guint8 *out, gsize out_len)
{
  static const guint8 zero_salt[32] = { 0 };
  guint8 prk[32];
  guint8 t[32];
  gsize info_len = info != NULL ? strlen (info) : 0;
  gsize done = 0;
  crypto_auth_hmacsha256_state st;

  g_return_if_fail (out_len <= 255 * 32);

  /* Extract: RFC 5869 says an absent salt is HashLen zero bytes. */
  crypto_auth_hmacsha256_init (&st, zero_salt, sizeof zero_salt);
  crypto_auth_hmacsha256_update (&st, ikm, ikm_len);
  crypto_auth_hmacsha256_final (&st, prk);

  /* Expand: T(i) = HMAC(PRK, T(i-1) | info | i). */
  for (guint8 i = 1; done < out_len; i++)
    {
      gsize n;
      crypto_auth_hmacsha256_init (&st, prk, sizeof prk);
      if (i > 1)
        crypto_auth_hmacsha256_update (&st, t, sizeof t);
      crypto_auth_hmacsha256_update (&st, (const guint8 *) info, info_len);
      crypto_auth_hmacsha256_update (&st, &i, 1);
      crypto_auth_hmacsha256_final (&st, t);
      n = MIN (sizeof t, out_len - done);
      memcpy (out + done, t, n);
      done += n;
    }
  sodium_memzero (prk, sizeof prk);
  sodium_memzero (t, sizeof t);
  sodium_memzero (&st, sizeof st);
}
