/* wire-fuzz.c — libFuzzer target for peer-sync channel messages (SPEC 7.2).
 *
 * Channel bytes come from any peer, before and after authentication, so
 * wsp_msg_decode must be total: no crash, abort or leak, bounded memory.
 * A message that decodes must re-encode (plain and compressed) and decode
 * to an equal message; anything else is a bug and aborts so that the fuzzer
 * reports it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "sync/wsp-wire.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static gboolean
runs_equal (GPtrArray *a, GPtrArray *b)
{
  if (a->len != b->len)
    return FALSE;
  for (guint i = 0; i < a->len; i++)
    {
      WspRun *x = g_ptr_array_index (a, i), *y = g_ptr_array_index (b, i);
      if (x->peer != y->peer || x->from != y->from || memcmp (x->pk, y->pk, 32) != 0
          || memcmp (x->sig, y->sig, 64) != 0 || x->ops->len != y->ops->len)
        return FALSE;
      for (guint k = 0; k < x->ops->len; k++)
        if (!g_bytes_equal (g_ptr_array_index (x->ops, k), g_ptr_array_index (y->ops, k)))
          return FALSE;
    }
  return TRUE;
}

static gboolean
msg_equal (const WspMsg *a, const WspMsg *b)
{
  if (a->type != b->type)
    return FALSE;
  switch (a->type)
    {
    case WSP_MSG_HELLO:
      return a->hello.v == b->hello.v && a->hello.peer == b->hello.peer
             && strcmp (a->hello.project, b->hello.project) == 0
             && memcmp (a->hello.pk, b->hello.pk, 32) == 0
             && memcmp (a->hello.nonce, b->hello.nonce, 32) == 0
             && wsp_clock_equal (&a->hello.clock, &b->hello.clock);
    case WSP_MSG_AUTH:
      return memcmp (&a->auth, &b->auth, sizeof a->auth) == 0;
    case WSP_MSG_REQ:
      return wsp_clock_equal (&a->req.clock, &b->req.clock);
    case WSP_MSG_ACK:
      return wsp_clock_equal (&a->ack.clock, &b->ack.clock);
    case WSP_MSG_OPS:
      return wsp_clock_equal (&a->ops.clock, &b->ops.clock) && runs_equal (a->ops.runs, b->ops.runs);
    case WSP_MSG_PING:
      return a->ping.n == b->ping.n;
    case WSP_MSG_PONG:
      return a->pong.n == b->pong.n;
    case WSP_MSG_ERR:
      return strcmp (a->err.code, b->err.code) == 0 && strcmp (a->err.msg, b->err.msg) == 0;
    case WSP_MSG_UNKNOWN:
    default:
      return TRUE;
    }
}

static void
check_round_trip (const WspMsg *m, gboolean compress)
{
  g_autoptr (GBytes) again = NULL;
  g_autoptr (GError) error = NULL;
  WspMsg m2;

  if (m->type == WSP_MSG_UNKNOWN)
    return;
  again = wsp_msg_encode (m, compress, &error);
  /* Our shortest form is never longer than what was decoded (or than a
   * z's content), so it fits the limit; the one exception is an err that
   * omitted msg, which we write as "msg":"" (5 more bytes). */
  if (again == NULL)
    {
      if (m->type == WSP_MSG_ERR && g_error_matches (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_TOO_LARGE))
        return;
      abort ();
    }
  if (!wsp_msg_decode (g_bytes_get_data (again, NULL), g_bytes_get_size (again), TRUE, &m2, NULL))
    abort ();
  if (!msg_equal (m, &m2))
    abort ();
  wsp_msg_clear (&m2);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  for (int authenticated = 0; authenticated <= 1; authenticated++)
    {
      WspMsg m;
      g_autoptr (GError) error = NULL;

      if (!wsp_msg_decode (data, size, authenticated, &m, &error))
        {
          if (error == NULL || error->domain != WSP_WIRE_ERROR)
            abort ();
          /* On failure nothing is held. */
          if (m.type != WSP_MSG_UNKNOWN)
            abort ();
          continue;
        }
      check_round_trip (&m, FALSE);
      check_round_trip (&m, TRUE);
      wsp_msg_clear (&m);
    }
  return 0;
}
