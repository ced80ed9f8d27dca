/* signal-fuzz.c — libFuzzer target for signaling messages (SPEC 7.1) and,
 * on the same bytes, the join-token decoder and the SDP fingerprint parser
 * (all three read text a stranger controls).
 *
 * Decoding must be total: no crash, abort or leak. A signaling message that
 * decodes must re-encode and decode to the same message; anything else is a
 * bug and aborts so that the fuzzer reports it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "sync/wsp-auth.h"
#include "sync/wsp-invite.h"
#include "sync/wsp-signal-msg.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static gboolean
str_eq (const char *a, const char *b)
{
  return g_strcmp0 (a, b) == 0;
}

static gboolean
peers_eq (GArray *a, GArray *b)
{
  if ((a == NULL) != (b == NULL))
    return FALSE;
  return a == NULL || (a->len == b->len && (a->len == 0 || memcmp (a->data, b->data, a->len * sizeof (WspPeer)) == 0));
}

static gboolean
same (const WspSignalMsg *a, const WspSignalMsg *b)
{
  return a->type == b->type && a->peer_id == b->peer_id && a->from_peer_id == b->from_peer_id
         && a->to_peer_id == b->to_peer_id && a->has_to_peer_id == b->has_to_peer_id
         && str_eq (a->project_id, b->project_id) && memcmp (a->pk, b->pk, sizeof a->pk) == 0
         && memcmp (a->nonce, b->nonce, sizeof a->nonce) == 0 && memcmp (a->mac, b->mac, sizeof a->mac) == 0
         && memcmp (a->sig, b->sig, sizeof a->sig) == 0 && peers_eq (a->peers, b->peers)
         && str_eq (a->code, b->code) && str_eq (a->message, b->message) && str_eq (a->sdp, b->sdp)
         && str_eq (a->candidate, b->candidate) && str_eq (a->sdp_mid, b->sdp_mid)
         && a->sdp_mline_index == b->sdp_mline_index;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  WspSignalMsg m, m2;
  g_autofree char *text = NULL;
  g_autofree char *again = NULL;
  g_autofree char *fp = NULL;
  gsize len = 0;
  WspInvite inv;

  if (wsp_signal_msg_decode ((const char *) data, size, &m, NULL))
    {
      g_autoptr (GError) error = NULL;
      text = wsp_signal_msg_encode (&m, &len, &error);
      /* json-glib may escape differently from the input (e.g. "\u00e9"
       * vs "é" or "/" vs "\/"), so a re-encoding can be longer than the
       * decoded text; only then may it exceed the limit. */
      if (text == NULL)
        {
          if (!g_error_matches (error, WSP_SIGNAL_ERROR, WSP_SIGNAL_ERROR_TOO_LARGE))
            abort ();
        }
      else
        {
          if (!wsp_signal_msg_decode (text, len, &m2, NULL) || !same (&m, &m2))
            abort ();
          again = wsp_signal_msg_encode (&m2, NULL, NULL);
          if (again == NULL || strcmp (again, text) != 0)
            abort ();
          wsp_signal_msg_clear (&m2);
        }
      wsp_signal_msg_clear (&m);
    }

  /* The invite and SDP parsers take C strings: stop at the first NUL. */
  {
    g_autofree char *s = g_strndup ((const char *) data, size);
    if (wsp_invite_decode (s, &inv, NULL))
      {
        g_autofree char *token = wsp_invite_encode (&inv, NULL);
        WspInvite inv2;
        if (token == NULL || !wsp_invite_decode (token, &inv2, NULL)
            || strcmp (inv.project_id, inv2.project_id) != 0
            || memcmp (inv.secret, inv2.secret, 32) != 0 || inv.peer_urls->len != inv2.peer_urls->len)
          abort ();
        wsp_invite_clear (&inv2);
        wsp_invite_clear (&inv);
      }
  }
  fp = wsp_sdp_fingerprint ((const char *) data, (gssize) size, NULL);
  if (fp != NULL)
    {
      /* A normalised fingerprint is a fixed point. */
      g_autofree char *line = g_strconcat ("a=fingerprint:", fp, NULL);
      g_autofree char *fp2 = wsp_sdp_fingerprint (line, -1, NULL);
      if (fp2 == NULL || strcmp (fp, fp2) != 0)
        abort ();
    }
  return 0;
}
