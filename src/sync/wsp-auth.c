/* wsp-auth.c — key schedule, authentication texts, MACs and signatures of
 * peer sync (SPEC 7.1, 7.4), on libsodium through wsp-chain.
 *
 * Owns nothing long-lived; pure, any thread. Keys live in caller-owned
 * WspAuthKeys (wiped by wsp_auth_keys_clear); intermediate MACs are wiped
 * before returning. Invariants:
 * - One function builds each text; sign and verify both call it, so the
 *   two sides cannot drift apart.
 * - MACs compare with sodium_memcmp (constant time); the signature is
 *   checked even when the MAC already failed, so timing does not tell an
 *   attacker which of the two was wrong.
 */
#include "sync/wsp-auth.h"

#include <string.h>
#include <sodium.h>

void
wsp_auth_keys_derive (WspAuthKeys *keys, const guint8 secret[WSP_PROJECT_SECRET_LEN])
{
  wsp_hkdf_sha256 (secret, WSP_PROJECT_SECRET_LEN, "wsp signal v1", keys->k_signal, sizeof keys->k_signal);
  wsp_hkdf_sha256 (secret, WSP_PROJECT_SECRET_LEN, "wsp auth v1", keys->k_auth, sizeof keys->k_auth);
}

void
wsp_auth_keys_clear (WspAuthKeys *keys)
{
  if (keys != NULL)
    sodium_memzero (keys, sizeof *keys);
}

/* ---- texts ------------------------------------------------------------- */

static char *
join4 (const char *label, const char *project_id, const guint8 nonce[32], WspPeer peer)
{
  char hex[WSP_PEER_HEX_LEN + 1];
  g_autofree char *b64 = g_base64_encode (nonce, 32);

  wsp_peer_to_hex (peer, hex);
  return g_strjoin ("\n", label, project_id, b64, hex, NULL);
}

char *
wsp_auth_signal_hello_text (const char *project_id, const guint8 listener_nonce[32], WspPeer client)
{
  return join4 ("wsp-signal-v1", project_id, listener_nonce, client);
}

char *
wsp_auth_signal_welcome_text (const char *project_id, const guint8 client_nonce[32], WspPeer listener)
{
  return join4 ("wsp-signal-v1-listener", project_id, client_nonce, listener);
}

char *
wsp_auth_channel_text (WspPeer sender, WspPeer receiver, const guint8 receiver_nonce[32],
                       const char *sender_fingerprint, const char *receiver_fingerprint)
{
  char s[WSP_PEER_HEX_LEN + 1], r[WSP_PEER_HEX_LEN + 1];
  g_autofree char *b64 = g_base64_encode (receiver_nonce, 32);

  wsp_peer_to_hex (sender, s);
  wsp_peer_to_hex (receiver, r);
  return g_strjoin ("\n", "wsp-auth-v1", s, r, b64, sender_fingerprint, receiver_fingerprint, NULL);
}

/* ---- MAC + signature ---------------------------------------------------- */

static void
mac_text (const guint8 key[32], const char *text, guint8 mac[32])
{
  wsp_hmac_sha256 (key, (const guint8 *) text, strlen (text), mac);
}

/* Checks mac and (when pk is set) sig over text; constant time for the mac,
 * and both are always evaluated. */
static gboolean
check (const guint8 key[32], const char *text, const guint8 mac[32], const guint8 *pk,
       const guint8 *sig, const char *what, GError **error)
{
  guint8 want[32];
  gboolean mac_ok, sig_ok = TRUE;

  mac_text (key, text, want);
  mac_ok = sodium_memcmp (want, mac, sizeof want) == 0;
  sodium_memzero (want, sizeof want);
  if (pk != NULL)
    sig_ok = wsp_verify (pk, (const guint8 *) text, strlen (text), sig);
  if (!mac_ok || !sig_ok)
    {
      g_set_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_AUTH_FAILED, "%s: %s does not verify", what,
                   !mac_ok ? "mac" : "signature");
      return FALSE;
    }
  return TRUE;
}

void
wsp_auth_signal_hello_sign (const WspAuthKeys *keys, const WspIdentity *self, const char *project_id,
                            const guint8 listener_nonce[32], guint8 mac[32], guint8 sig[WSP_SIG_LEN])
{
  g_autofree char *text = wsp_auth_signal_hello_text (project_id, listener_nonce, self->peer);

  mac_text (keys->k_signal, text, mac);
  wsp_identity_sign (self, (const guint8 *) text, strlen (text), sig);
}

gboolean
wsp_auth_signal_hello_verify (const WspAuthKeys *keys, const char *project_id,
                              const guint8 listener_nonce[32], WspPeer client,
                              const guint8 client_pk[WSP_PK_LEN], const guint8 mac[32],
                              const guint8 sig[WSP_SIG_LEN], GError **error)
{
  g_autofree char *text = NULL;

  if (wsp_peer_from_pk (client_pk) != client)
    {
      g_set_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_AUTH_FAILED,
                   "signal hello: from_peer_id is not the id of pk");
      return FALSE;
    }
  text = wsp_auth_signal_hello_text (project_id, listener_nonce, client);
  return check (keys->k_signal, text, mac, client_pk, sig, "signal hello", error);
}

void
wsp_auth_signal_welcome_mac (const WspAuthKeys *keys, const char *project_id,
                             const guint8 client_nonce[32], WspPeer listener, guint8 mac[32])
{
  g_autofree char *text = wsp_auth_signal_welcome_text (project_id, client_nonce, listener);
  mac_text (keys->k_signal, text, mac);
}

gboolean
wsp_auth_signal_welcome_verify (const WspAuthKeys *keys, const char *project_id,
                                const guint8 client_nonce[32], WspPeer listener,
                                const guint8 mac[32], GError **error)
{
  g_autofree char *text = wsp_auth_signal_welcome_text (project_id, client_nonce, listener);
  return check (keys->k_signal, text, mac, NULL, NULL, "signal welcome", error);
}

void
wsp_auth_channel_sign (const WspAuthKeys *keys, const WspIdentity *self, WspPeer remote,
                       const guint8 remote_nonce[32], const char *local_fingerprint,
                       const char *remote_fingerprint, guint8 mac[32], guint8 sig[WSP_SIG_LEN])
{
  g_autofree char *text = wsp_auth_channel_text (self->peer, remote, remote_nonce,
                                                 local_fingerprint, remote_fingerprint);
  mac_text (keys->k_auth, text, mac);
  wsp_identity_sign (self, (const guint8 *) text, strlen (text), sig);
}

gboolean
wsp_auth_channel_verify (const WspAuthKeys *keys, WspPeer remote, const guint8 remote_pk[WSP_PK_LEN],
                         WspPeer local, const guint8 local_nonce[32], const char *remote_fingerprint,
                         const char *local_fingerprint, const guint8 mac[32],
                         const guint8 sig[WSP_SIG_LEN], GError **error)
{
  g_autofree char *text = NULL;

  if (wsp_peer_from_pk (remote_pk) != remote)
    {
      g_set_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_AUTH_FAILED, "auth: peer is not the id of pk");
      return FALSE;
    }
  text = wsp_auth_channel_text (remote, local, local_nonce, remote_fingerprint, local_fingerprint);
  return check (keys->k_auth, text, mac, remote_pk, sig, "auth", error);
}

/* ---- SDP fingerprint ----------------------------------------------------- */

static gboolean
is_blank (char c)
{
  return c == ' ' || c == '\t';
}

/* Normalises "<algorithm> <hex pairs with colons>" (already trimmed). */
static char *
normalise_fingerprint (const char *v, gsize n)
{
  gsize i = 0, alg_end;
  g_autoptr (GString) out = g_string_sized_new (n + 1);

  while (i < n && v[i] > 0x20 && v[i] < 0x7f)
    i++;
  alg_end = i;
  if (alg_end == 0 || i == n || !is_blank (v[i]))
    return NULL;
  for (gsize k = 0; k < alg_end; k++)
    g_string_append_c (out, g_ascii_tolower (v[k]));
  g_string_append_c (out, ' ');
  while (i < n && is_blank (v[i]))
    i++;
  /* 2HEX *(":" 2HEX), RFC 8122 */
  for (;;)
    {
      if (n - i < 2 || !g_ascii_isxdigit (v[i]) || !g_ascii_isxdigit (v[i + 1]))
        return NULL;
      g_string_append_c (out, g_ascii_toupper (v[i]));
      g_string_append_c (out, g_ascii_toupper (v[i + 1]));
      i += 2;
      if (i == n)
        break;
      if (v[i] != ':')
        return NULL;
      g_string_append_c (out, ':');
      i++;
    }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

char *
wsp_sdp_fingerprint (const char *sdp, gssize len, GError **error)
{
  static const char attr[] = "a=fingerprint:";
  const gsize attr_len = sizeof attr - 1;
  gsize n, pos = 0;

  if (sdp == NULL)
    len = 0;
  n = len < 0 ? strlen (sdp) : (gsize) len;
  while (pos < n)
    {
      const char *line = sdp + pos;
      const char *nl = memchr (line, '\n', n - pos);
      gsize line_len = nl != NULL ? (gsize) (nl - line) : n - pos;

      pos += line_len + 1;
      if (line_len >= attr_len && memcmp (line, attr, attr_len) == 0)
        {
          const char *v = line + attr_len;
          gsize vn = line_len - attr_len;
          char *fp;

          /* Trim: spaces, tabs and the CR of a CRLF line end. */
          while (vn > 0 && (is_blank (v[0]) || v[0] == '\r'))
            v++, vn--;
          while (vn > 0 && (is_blank (v[vn - 1]) || v[vn - 1] == '\r'))
            vn--;
          fp = normalise_fingerprint (v, vn);
          if (fp == NULL)
            g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "sdp: malformed a=fingerprint line");
          return fp;
        }
    }
  g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "sdp: no a=fingerprint line");
  return NULL;
}
