/* wsp-invite.h — the join token printed by `wsp invite` and read by
 * `wsp join` (SPEC 6): "wsp1:" + unpadded base64url of the MessagePack map
 * {"p": project id, "s": secret (bin 32), "a": [peer_url, …]}, keys written
 * in that order. Pure, any thread.
 *
 * The token carries the project secret: callers must not log it.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define WSP_INVITE_PREFIX     "wsp1:"
#define WSP_INVITE_MAX_LEN    16384   /* bytes of token text accepted */

typedef struct {
  char      *project_id;   /* 26 chars of lowercase base32 (a-z, 2-7) */
  guint8     secret[32];   /* the project secret */
  GPtrArray *peer_urls;    /* char*: ws:// or wss:// signaling URLs; may be empty */
} WspInvite;

void     wsp_invite_init (WspInvite *inv);    /* zeroes; empty peer_urls */
void     wsp_invite_clear (WspInvite *inv);   /* frees, wipes the secret; NULL ok */

/* Returns the token, or NULL with WSP_ERROR_INVALID when the project id or
 * a URL is not valid (the same checks as decoding). */
char    *wsp_invite_encode (const WspInvite *inv, GError **error);

/* Strict decode (surrounding ASCII whitespace is ignored, as a pasted token
 * often has some): the prefix, canonical unpadded base64url, one
 * well-formed MessagePack map with p (a valid project id), s (bin 32) and a
 * (array of ws:// or wss:// URL strings); unknown keys are ignored. Fails
 * with WSP_ERROR_INVALID; on failure *out holds nothing to free. */
gboolean wsp_invite_decode (const char *token, WspInvite *out, GError **error);

/* 26 chars of [a-z2-7] (SPEC 7.4: 16 random bytes, lowercase base32). */
gboolean wsp_project_id_is_valid (const char *s);

G_END_DECLS
