/* wsp-auth.h — the peer-sync key schedule and authentication texts
 * (SPEC 7.1 signaling hello/welcome, 7.4 channel auth), on libsodium.
 *
 * Pure, any thread (after wsp_crypto_init()). Texts join their items with a
 * single "\n" and none at the end; nonces enter as their standard base64
 * text with padding; peer ids as 16 lowercase hex chars. Every verify
 * function compares in constant time and reports failure as
 * WSP_WIRE_ERROR_AUTH_FAILED (the code both SPEC 7.1 and 7.2 answer with).
 */
#pragma once

#include <glib.h>
#include "crdt/wsp-chain.h"
#include "sync/wsp-wire.h"

G_BEGIN_DECLS

#define WSP_PROJECT_SECRET_LEN 32

/* K_signal and K_auth = HKDF-SHA256(secret, empty salt, "wsp signal v1" /
 * "wsp auth v1"), 32 bytes each. */
typedef struct {
  guint8 k_signal[32];
  guint8 k_auth[32];
} WspAuthKeys;

void wsp_auth_keys_derive (WspAuthKeys *keys, const guint8 secret[WSP_PROJECT_SECRET_LEN]);
void wsp_auth_keys_clear (WspAuthKeys *keys);   /* wipes */

/* ---- signaling (SPEC 7.1) --------------------------------------------- */

/* "wsp-signal-v1\n<project id>\n<base64 listener nonce>\n<client peer>" */
char    *wsp_auth_signal_hello_text (const char *project_id, const guint8 listener_nonce[32],
                                     WspPeer client);
/* "wsp-signal-v1-listener\n<project id>\n<base64 client nonce>\n<listener peer>" */
char    *wsp_auth_signal_welcome_text (const char *project_id, const guint8 client_nonce[32],
                                       WspPeer listener);

/* The client's hello: mac = HMAC(K_signal, hello text), sig = Ed25519 of it
 * by self (the client). */
void     wsp_auth_signal_hello_sign (const WspAuthKeys *keys, const WspIdentity *self,
                                     const char *project_id, const guint8 listener_nonce[32],
                                     guint8 mac[32], guint8 sig[WSP_SIG_LEN]);
/* The listener's check of a hello: client = id(client_pk), the mac and the
 * signature. */
gboolean wsp_auth_signal_hello_verify (const WspAuthKeys *keys, const char *project_id,
                                       const guint8 listener_nonce[32], WspPeer client,
                                       const guint8 client_pk[WSP_PK_LEN], const guint8 mac[32],
                                       const guint8 sig[WSP_SIG_LEN], GError **error);
/* The welcome mac = HMAC(K_signal, welcome text). */
void     wsp_auth_signal_welcome_mac (const WspAuthKeys *keys, const char *project_id,
                                      const guint8 client_nonce[32], WspPeer listener,
                                      guint8 mac[32]);
gboolean wsp_auth_signal_welcome_verify (const WspAuthKeys *keys, const char *project_id,
                                         const guint8 client_nonce[32], WspPeer listener,
                                         const guint8 mac[32], GError **error);

/* ---- channel auth (SPEC 7.4) ------------------------------------------ */

/* T = "wsp-auth-v1\n<sender>\n<receiver>\n<base64 receiver's hello nonce>\n
 *      <fingerprint in sender's SDP>\n<fingerprint in receiver's SDP>".
 * Fingerprints as returned by wsp_sdp_fingerprint(). */
char    *wsp_auth_channel_text (WspPeer sender, WspPeer receiver, const guint8 receiver_nonce[32],
                                const char *sender_fingerprint, const char *receiver_fingerprint);
/* Our auth for the other side: self is the sender; remote_nonce is the
 * nonce of the remote's hello; local/remote fingerprints from our own SDP
 * and the remote's SDP. */
void     wsp_auth_channel_sign (const WspAuthKeys *keys, const WspIdentity *self, WspPeer remote,
                                const guint8 remote_nonce[32], const char *local_fingerprint,
                                const char *remote_fingerprint, guint8 mac[32],
                                guint8 sig[WSP_SIG_LEN]);
/* Checks the remote's auth: the remote (id remote, key remote_pk, already
 * checked to match) is the sender, we (local) the receiver; local_nonce is
 * the nonce of our own hello. */
gboolean wsp_auth_channel_verify (const WspAuthKeys *keys, WspPeer remote,
                                  const guint8 remote_pk[WSP_PK_LEN], WspPeer local,
                                  const guint8 local_nonce[32], const char *remote_fingerprint,
                                  const char *local_fingerprint, const guint8 mac[32],
                                  const guint8 sig[WSP_SIG_LEN], GError **error);

/* The normalised fingerprint of an SDP (len bytes, or -1 if NUL-terminated):
 * the value of the first line starting "a=fingerprint:", surrounding
 * spaces/tabs removed, as "<algorithm lowercase> <HEX:UPPER:WITH:COLONS>".
 * Fails (WSP_ERROR_INVALID) when there is no such line or its value is not
 * an algorithm token, whitespace and colon-separated hex byte pairs. */
char    *wsp_sdp_fingerprint (const char *sdp, gssize len, GError **error);

G_END_DECLS
