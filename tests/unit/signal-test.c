/* signal-test.c — the signaling WebSocket (SPEC 7.1): listener, client and
 * hub in one process on the default GMainContext, loopback only
 * (127.0.0.1, port 0). Misbehaving clients are raw libsoup WebSockets that
 * send exactly the frames a test needs. Events are awaited by spinning the
 * context until a condition holds or a 5 s deadline passes; no sleeps. */
#include <glib.h>
#include <string.h>
#include <libsoup/soup.h>

#include "sync/wsp-auth.h"
#include "sync/wsp-signal.h"

#include "common/wsp-asan-options.h"

#define PROJECT       "k3jrxaq2mzk3jrxaq2mzk3jrxa"
#define OTHER_PROJECT "aaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DEADLINE_MS   5000

/* ---- waiting -------------------------------------------------------------- */

static gboolean
on_deadline (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Spins the default context until expr holds or the deadline passes. */
#define WAIT_FOR(expr)                                                   \
  G_STMT_START                                                           \
  {                                                                      \
    gboolean late_ = FALSE;                                              \
    guint id_ = g_timeout_add (DEADLINE_MS, on_deadline, &late_);        \
    while (!(expr) && !late_)                                            \
      g_main_context_iteration (NULL, TRUE);                             \
    if (!late_)                                                          \
      g_source_remove (id_);                                             \
    g_assert_true (expr);                                                \
  }                                                                      \
  G_STMT_END

/* Lets orphaned WebSockets finish their close handshakes so nothing is
 * left for the leak checker: spins until the context has been idle for a
 * few consecutive checks, bounded by the deadline. */
static void
drain (void)
{
  gboolean late = FALSE;
  guint id = g_timeout_add (DEADLINE_MS, on_deadline, &late);
  guint idle = 0;

  while (!late && idle < 50)
    idle = g_main_context_iteration (NULL, FALSE) ? 0 : idle + 1;
  if (!late)
    g_source_remove (id);
}

/* ---- identities ----------------------------------------------------------- */

typedef struct {
  guint8      secret[32];
  guint8      wrong_secret[32];
  WspIdentity listener, a, b, c;
} Ids;

static Ids ids;

static void
ids_init (void)
{
  guint8 seed[32];
  for (int i = 0; i < 32; i++)
    {
      ids.secret[i] = (guint8) i;
      ids.wrong_secret[i] = (guint8) (0xff - i);
    }
  memset (seed, 0x11, sizeof seed);
  wsp_identity_from_seed (&ids.listener, seed);
  memset (seed, 0x22, sizeof seed);
  wsp_identity_from_seed (&ids.a, seed);
  memset (seed, 0x33, sizeof seed);
  wsp_identity_from_seed (&ids.b, seed);
  memset (seed, 0x44, sizeof seed);
  wsp_identity_from_seed (&ids.c, seed);
}

static WspSignalConfig
config (const char *project, const guint8 *secret, const WspIdentity *id)
{
  WspSignalConfig c = { project, secret, id };
  return c;
}

/* ---- listener fixture ----------------------------------------------------- */

typedef struct {
  WspSignalServer *server;
  char            *url;
  guint            joined, left;
  GPtrArray       *to_listener;   /* char* JSON of messages for the listener */
} Listener;

static char *
copy_json (const WspSignalMsg *m)
{
  g_autoptr (GError) error = NULL;
  char *text = wsp_signal_msg_encode (m, NULL, &error);
  g_assert_no_error (error);
  return text;
}

static void
decode_json (const char *json, WspSignalMsg *m)
{
  g_autoptr (GError) error = NULL;
  g_assert_true (wsp_signal_msg_decode (json, strlen (json), m, &error));
  g_assert_no_error (error);
}

static void
l_joined (WspSignalServer *s, WspPeer p, gpointer data)
{
  ((Listener *) data)->joined++;
}

static void
l_left (WspSignalServer *s, WspPeer p, gpointer data)
{
  ((Listener *) data)->left++;
}

static void
l_message (WspSignalServer *s, const WspSignalMsg *m, gpointer data)
{
  g_ptr_array_add (((Listener *) data)->to_listener, copy_json (m));
}

static void
listener_start (Listener *l)
{
  static const WspSignalServerCallbacks cb = { l_joined, l_left, l_message };
  WspSignalConfig c = config (PROJECT, ids.secret, &ids.listener);
  g_autoptr (GError) error = NULL;

  memset (l, 0, sizeof *l);
  l->to_listener = g_ptr_array_new_with_free_func (g_free);
  l->server = wsp_signal_server_new (&c, "127.0.0.1:0", &cb, l, &error);
  g_assert_no_error (error);
  g_assert_nonnull (l->server);
  g_assert_cmpuint (wsp_signal_server_get_port (l->server), >, 0);
  l->url = g_strdup_printf ("ws://127.0.0.1:%u" WSP_SIGNAL_PATH, wsp_signal_server_get_port (l->server));
}

static void
listener_stop (Listener *l)
{
  g_clear_pointer (&l->server, wsp_signal_server_free);
  g_clear_pointer (&l->url, g_free);
  g_clear_pointer (&l->to_listener, g_ptr_array_unref);
}

/* ---- client recorder ------------------------------------------------------ */

typedef struct {
  WspSignalClient *client;
  gboolean         welcomed;
  WspPeer          listener;
  GArray          *peers;          /* latest view, sorted */
  guint            peers_updates;  /* peers messages after welcome */
  GPtrArray       *msgs;           /* char* JSON */
  gboolean         closed;
  guint            close_code;
  char            *error_code;
  char            *reason;
} Rec;

static void
rec_set_peers (Rec *r, const GArray *peers)
{
  g_clear_pointer (&r->peers, g_array_unref);
  r->peers = g_array_copy ((GArray *) peers);
}

static gint
cmp_peer (gconstpointer a, gconstpointer b)
{
  WspPeer x = *(const WspPeer *) a, y = *(const WspPeer *) b;
  return x < y ? -1 : x > y;
}

static void
r_welcomed (WspSignalClient *c, WspPeer listener, const GArray *peers, gpointer data)
{
  Rec *r = data;
  r->welcomed = TRUE;
  r->listener = listener;
  rec_set_peers (r, peers);
}

static void
r_peers (WspSignalClient *c, const GArray *peers, gpointer data)
{
  Rec *r = data;
  r->peers_updates++;
  rec_set_peers (r, peers);
}

static void
r_message (WspSignalClient *c, const WspSignalMsg *m, gpointer data)
{
  g_ptr_array_add (((Rec *) data)->msgs, copy_json (m));
}

static void
r_closed (WspSignalClient *c, guint code, const char *error_code, const char *reason, gpointer data)
{
  Rec *r = data;
  g_assert_false (r->closed);
  r->closed = TRUE;
  r->close_code = code;
  r->error_code = g_strdup (error_code);
  r->reason = g_strdup (reason);
}

static void
rec_connect (Rec *r, const char *url, const char *project, const guint8 *secret, const WspIdentity *id)
{
  static const WspSignalClientCallbacks cb = { r_welcomed, r_peers, r_message, r_closed };
  WspSignalConfig c = config (project, secret, id);
  g_autoptr (GError) error = NULL;

  memset (r, 0, sizeof *r);
  r->msgs = g_ptr_array_new_with_free_func (g_free);
  r->client = wsp_signal_client_new (&c, url, 0, &cb, r, &error);
  g_assert_no_error (error);
}

static void
rec_free (Rec *r)
{
  g_clear_pointer (&r->client, wsp_signal_client_free);
  g_clear_pointer (&r->peers, g_array_unref);
  g_clear_pointer (&r->msgs, g_ptr_array_unref);
  g_clear_pointer (&r->error_code, g_free);
  g_clear_pointer (&r->reason, g_free);
}

/* Sorted list from peers. */
static void
assert_peers (const GArray *got, const WspPeer *want, guint n)
{
  g_autoptr (GArray) a = g_array_copy ((GArray *) got);
  g_autoptr (GArray) b = g_array_new (FALSE, FALSE, sizeof (WspPeer));

  g_array_append_vals (b, want, n);
  g_array_sort (a, cmp_peer);
  g_array_sort (b, cmp_peer);
  g_assert_cmpuint (a->len, ==, b->len);
  for (guint i = 0; i < a->len; i++)
    g_assert_cmpuint (g_array_index (a, WspPeer, i), ==, g_array_index (b, WspPeer, i));
}

static gboolean
peers_are (const GArray *got, const WspPeer *want, guint n)
{
  if (got == NULL || got->len != n)
    return FALSE;
  for (guint i = 0; i < n; i++)
    {
      gboolean found = FALSE;
      for (guint j = 0; j < got->len; j++)
        found = found || g_array_index (got, WspPeer, j) == want[i];
      if (!found)
        return FALSE;
    }
  return TRUE;
}

static void
send_offer (WspSignalClient *c, WspPeer to, const char *sdp)
{
  WspSignalMsg m;
  g_autoptr (GError) error = NULL;

  wsp_signal_msg_init (&m, WSP_SIGNAL_OFFER);
  m.to_peer_id = to;
  m.sdp = g_strdup (sdp);
  g_assert_true (wsp_signal_client_send (c, &m, &error));
  g_assert_no_error (error);
  wsp_signal_msg_clear (&m);
}

/* ---- raw client ----------------------------------------------------------- */

typedef struct {
  SoupSession             *session;
  SoupWebsocketConnection *ws;
  gboolean                 failed;
  GPtrArray               *texts;   /* char* */
  gboolean                 closed;
  guint                    close_code;
} Raw;

static void
raw_on_message (SoupWebsocketConnection *ws, gint type, GBytes *b, gpointer data)
{
  gsize len;
  const char *p = g_bytes_get_data (b, &len);
  g_ptr_array_add (((Raw *) data)->texts, g_strndup (p, len));
}

static void
raw_on_closed (SoupWebsocketConnection *ws, gpointer data)
{
  Raw *r = data;
  r->closed = TRUE;
  r->close_code = soup_websocket_connection_get_close_code (ws);
}

static void
raw_on_connected (GObject *src, GAsyncResult *res, gpointer data)
{
  Raw *r = data;
  g_autoptr (GError) error = NULL;

  r->ws = soup_session_websocket_connect_finish (SOUP_SESSION (src), res, &error);
  if (r->ws == NULL)
    {
      r->failed = TRUE;
      return;
    }
  soup_websocket_connection_set_max_incoming_payload_size (r->ws, 4 * 1024 * 1024);
  g_signal_connect (r->ws, "message", G_CALLBACK (raw_on_message), r);
  g_signal_connect (r->ws, "closed", G_CALLBACK (raw_on_closed), r);
}

static void
raw_connect (Raw *r, const char *url)
{
  g_autoptr (SoupMessage) msg = soup_message_new ("GET", url);

  memset (r, 0, sizeof *r);
  r->texts = g_ptr_array_new_with_free_func (g_free);
  r->session = soup_session_new ();
  soup_session_set_proxy_resolver (r->session, NULL);
  soup_session_websocket_connect_async (r->session, msg, NULL, NULL, G_PRIORITY_DEFAULT, NULL,
                                        raw_on_connected, r);
  WAIT_FOR (r->ws != NULL || r->failed);
  g_assert_nonnull (r->ws);
  WAIT_FOR (r->texts->len >= 1);   /* the challenge */
}

static void
raw_free (Raw *r)
{
  if (r->ws != NULL)
    {
      g_signal_handlers_disconnect_by_data (r->ws, r);
      if (soup_websocket_connection_get_state (r->ws) == SOUP_WEBSOCKET_STATE_OPEN)
        {
          gboolean closed = FALSE;
          g_signal_connect_swapped (r->ws, "closed", G_CALLBACK (on_deadline), &closed);
          soup_websocket_connection_close (r->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, NULL);
          WAIT_FOR (closed);
        }
    }
  g_clear_object (&r->ws);
  g_clear_object (&r->session);
  g_clear_pointer (&r->texts, g_ptr_array_unref);
}

/* Answers the challenge with a hello built from these inputs. */
static void
raw_hello (Raw *r, const char *project, const guint8 *secret, const WspIdentity *id, WspPeer from)
{
  WspSignalMsg ch, h;
  WspAuthKeys keys;
  g_autofree char *text = NULL;

  decode_json (g_ptr_array_index (r->texts, 0), &ch);
  g_assert_cmpint (ch.type, ==, WSP_SIGNAL_CHALLENGE);
  g_assert_cmpuint (ch.peer_id, ==, ids.listener.peer);
  g_assert_cmpstr (ch.project_id, ==, PROJECT);
  wsp_auth_keys_derive (&keys, secret);
  wsp_signal_msg_init (&h, WSP_SIGNAL_HELLO);
  h.from_peer_id = from;
  h.project_id = g_strdup (project);
  memcpy (h.pk, id->pk, sizeof h.pk);
  memset (h.nonce, 7, sizeof h.nonce);
  wsp_auth_signal_hello_sign (&keys, id, project, ch.nonce, h.mac, h.sig);
  text = copy_json (&h);
  soup_websocket_connection_send_text (r->ws, text);
  wsp_signal_msg_clear (&h);
  wsp_signal_msg_clear (&ch);
  wsp_auth_keys_clear (&keys);
}

/* A raw client that completed the handshake as id. */
static void
raw_member (Raw *r, const char *url, const WspIdentity *id)
{
  WspSignalMsg w;

  raw_connect (r, url);
  raw_hello (r, PROJECT, ids.secret, id, id->peer);
  WAIT_FOR (r->texts->len >= 2);
  decode_json (g_ptr_array_index (r->texts, 1), &w);
  g_assert_cmpint (w.type, ==, WSP_SIGNAL_WELCOME);
  wsp_signal_msg_clear (&w);
}

/* Waits for an error then the close; checks both. */
static void
raw_expect_error_close (Raw *r, const char *code, guint close_code)
{
  WspSignalMsg e;

  WAIT_FOR (r->closed);
  g_assert_cmpuint (r->close_code, ==, close_code);
  decode_json (g_ptr_array_index (r->texts, r->texts->len - 1), &e);
  g_assert_cmpint (e.type, ==, WSP_SIGNAL_ERROR_MSG);
  g_assert_cmpstr (e.code, ==, code);
  wsp_signal_msg_clear (&e);
}

/* ---- tests: handshake ----------------------------------------------------- */

static void
test_handshake (void)
{
  Listener l;
  Rec a;

  listener_start (&l);
  rec_connect (&a, l.url, PROJECT, ids.secret, &ids.a);
  WAIT_FOR (a.welcomed);
  g_assert_cmpuint (a.listener, ==, ids.listener.peer);
  g_assert_cmpuint (wsp_signal_client_get_listener (a.client), ==, ids.listener.peer);
  assert_peers (a.peers, &ids.listener.peer, 1);
  g_assert_true (wsp_signal_client_is_ready (a.client));
  WAIT_FOR (l.joined == 1);
  g_assert_true (wsp_signal_server_has_member (l.server, ids.a.peer));
  rec_free (&a);
  WAIT_FOR (l.left == 1);
  g_assert_false (wsp_signal_server_has_member (l.server, ids.a.peer));
  listener_stop (&l);
  drain ();
}

static void
test_welcome_lists_peers (void)
{
  Listener l;
  Rec a, b;
  WspPeer want_b[] = { ids.listener.peer, ids.a.peer };
  WspPeer want_a[] = { ids.listener.peer, ids.b.peer };

  listener_start (&l);
  rec_connect (&a, l.url, PROJECT, ids.secret, &ids.a);
  WAIT_FOR (a.welcomed);
  rec_connect (&b, l.url, PROJECT, ids.secret, &ids.b);
  WAIT_FOR (b.welcomed);
  assert_peers (b.peers, want_b, G_N_ELEMENTS (want_b));
  WAIT_FOR (a.peers_updates == 1);
  assert_peers (a.peers, want_a, G_N_ELEMENTS (want_a));
  rec_free (&a);
  rec_free (&b);
  listener_stop (&l);
  drain ();
}

static void
test_peers_join_leave (void)
{
  Listener l;
  Rec a, b, c;
  WspPeer all_a[] = { ids.listener.peer, ids.b.peer, ids.c.peer };
  WspPeer all_b[] = { ids.listener.peer, ids.a.peer, ids.c.peer };
  WspPeer after_a[] = { ids.listener.peer, ids.b.peer };
  WspPeer after_b[] = { ids.listener.peer, ids.a.peer };

  listener_start (&l);
  rec_connect (&a, l.url, PROJECT, ids.secret, &ids.a);
  rec_connect (&b, l.url, PROJECT, ids.secret, &ids.b);
  WAIT_FOR (a.welcomed && b.welcomed);
  rec_connect (&c, l.url, PROJECT, ids.secret, &ids.c);
  WAIT_FOR (c.welcomed);
  WAIT_FOR (peers_are (a.peers, all_a, 3) && peers_are (b.peers, all_b, 3));
  g_assert_cmpuint (l.joined, ==, 3);

  rec_free (&c);
  WAIT_FOR (peers_are (a.peers, after_a, 2) && peers_are (b.peers, after_b, 2));
  g_assert_cmpuint (l.left, ==, 1);
  rec_free (&a);
  rec_free (&b);
  listener_stop (&l);
  drain ();
}

/* ---- tests: relay ----------------------------------------------------------- */

static void
test_relay_offer (void)
{
  Listener l;
  Rec a, b;
  WspSignalMsg m, got;
  g_autoptr (GError) error = NULL;

  listener_start (&l);
  rec_connect (&a, l.url, PROJECT, ids.secret, &ids.a);
  rec_connect (&b, l.url, PROJECT, ids.secret, &ids.b);
  WAIT_FOR (a.welcomed && b.welcomed);

  send_offer (a.client, ids.b.peer, "v=0 offer from a");
  WAIT_FOR (b.msgs->len == 1);
  decode_json (g_ptr_array_index (b.msgs, 0), &got);
  g_assert_cmpint (got.type, ==, WSP_SIGNAL_OFFER);
  g_assert_cmpuint (got.from_peer_id, ==, ids.a.peer);
  g_assert_cmpuint (got.to_peer_id, ==, ids.b.peer);
  g_assert_cmpstr (got.sdp, ==, "v=0 offer from a");
  wsp_signal_msg_clear (&got);

  /* The end-of-candidates marker: empty candidate, null sdp_mid. */
  wsp_signal_msg_init (&m, WSP_SIGNAL_ICE_CANDIDATE);
  m.to_peer_id = ids.a.peer;
  m.candidate = g_strdup ("");
  m.sdp_mline_index = 0;
  g_assert_true (wsp_signal_client_send (b.client, &m, &error));
  g_assert_no_error (error);
  wsp_signal_msg_clear (&m);
  WAIT_FOR (a.msgs->len == 1);
  decode_json (g_ptr_array_index (a.msgs, 0), &got);
  g_assert_cmpint (got.type, ==, WSP_SIGNAL_ICE_CANDIDATE);
  g_assert_cmpuint (got.from_peer_id, ==, ids.b.peer);
  g_assert_cmpstr (got.candidate, ==, "");
  g_assert_null (got.sdp_mid);
  wsp_signal_msg_clear (&got);

  rec_free (&a);
  rec_free (&b);
  listener_stop (&l);
  drain ();
}

static void
test_to_and_from_listener (void)
{
  Listener l;
  Rec a;
  WspSignalMsg m, got;
  g_autoptr (GError) error = NULL;

  listener_start (&l);
  rec_connect (&a, l.url, PROJECT, ids.secret, &ids.a);
  WAIT_FOR (a.welcomed);

  send_offer (a.client, ids.listener.peer, "v=0 to listener");
  WAIT_FOR (l.to_listener->len == 1);
  decode_json (g_ptr_array_index (l.to_listener, 0), &got);
  g_assert_cmpuint (got.from_peer_id, ==, ids.a.peer);
  g_assert_cmpstr (got.sdp, ==, "v=0 to listener");
  wsp_signal_msg_clear (&got);

  wsp_signal_msg_init (&m, WSP_SIGNAL_ANSWER);
  m.from_peer_id = ids.c.peer;   /* overwritten with the listener's id */
  m.to_peer_id = ids.a.peer;
  m.sdp = g_strdup ("v=0 answer");
  g_assert_true (wsp_signal_server_send (l.server, &m, &error));
  g_assert_no_error (error);
  m.to_peer_id = ids.b.peer;
  g_assert_false (wsp_signal_server_send (l.server, &m, &error));
  g_assert_error (error, WSP_SIGNAL_ERROR, WSP_SIGNAL_ERROR_UNKNOWN_PEER);
  wsp_signal_msg_clear (&m);
  WAIT_FOR (a.msgs->len == 1);
  decode_json (g_ptr_array_index (a.msgs, 0), &got);
  g_assert_cmpint (got.type, ==, WSP_SIGNAL_ANSWER);
  g_assert_cmpuint (got.from_peer_id, ==, ids.listener.peer);
  wsp_signal_msg_clear (&got);

  rec_free (&a);
  listener_stop (&l);
  drain ();
}

static void
test_unknown_peer_keeps_connection (void)
{
  Listener l;
  Rec a, b;
  WspSignalMsg got;

  listener_start (&l);
  rec_connect (&a, l.url, PROJECT, ids.secret, &ids.a);
  WAIT_FOR (a.welcomed);
  send_offer (a.client, ids.b.peer, "v=0 nobody home");
  WAIT_FOR (a.msgs->len == 1);
  decode_json (g_ptr_array_index (a.msgs, 0), &got);
  g_assert_cmpint (got.type, ==, WSP_SIGNAL_ERROR_MSG);
  g_assert_cmpstr (got.code, ==, "unknown_peer");
  g_assert_true (got.has_to_peer_id);
  g_assert_cmpuint (got.to_peer_id, ==, ids.b.peer);
  wsp_signal_msg_clear (&got);

  /* Still connected: B joins and A's next offer reaches it. */
  rec_connect (&b, l.url, PROJECT, ids.secret, &ids.b);
  WAIT_FOR (b.welcomed);
  send_offer (a.client, ids.b.peer, "v=0 second try");
  WAIT_FOR (b.msgs->len == 1);
  g_assert_false (a.closed);
  g_assert_true (wsp_signal_client_is_ready (a.client));

  rec_free (&a);
  rec_free (&b);
  listener_stop (&l);
  drain ();
}

static void
test_max_size_relays (void)
{
  Listener l;
  Raw a;
  Rec b;
  WspSignalMsg m, got;
  g_autofree char *text = NULL;
  g_autofree char *sdp = NULL;
  gsize len = 0;
  g_autoptr (GError) error = NULL;

  listener_start (&l);
  rec_connect (&b, l.url, PROJECT, ids.secret, &ids.b);
  WAIT_FOR (b.welcomed);
  raw_member (&a, l.url, &ids.a);

  /* An offer of exactly 256 KiB of JSON is relayed. */
  wsp_signal_msg_init (&m, WSP_SIGNAL_OFFER);
  m.from_peer_id = ids.a.peer;
  m.to_peer_id = ids.b.peer;
  m.sdp = g_strdup ("x");
  text = wsp_signal_msg_encode (&m, &len, &error);
  g_assert_no_error (error);
  g_free (m.sdp);
  m.sdp = sdp = g_strnfill (WSP_SIGNAL_MAX_MESSAGE - len + 1, 'x');
  g_free (text);
  text = wsp_signal_msg_encode (&m, &len, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (len, ==, WSP_SIGNAL_MAX_MESSAGE);
  m.sdp = NULL;
  wsp_signal_msg_clear (&m);
  soup_websocket_connection_send_text (a.ws, text);
  WAIT_FOR (b.msgs->len == 1);
  decode_json (g_ptr_array_index (b.msgs, 0), &got);
  g_assert_cmpuint (strlen (got.sdp), ==, strlen (sdp));
  wsp_signal_msg_clear (&got);
  g_assert_false (a.closed);

  raw_free (&a);
  rec_free (&b);
  listener_stop (&l);
  drain ();
}

/* ---- tests: authentication failures -------------------------------------- */

static void
test_wrong_secret (void)
{
  Listener l;
  Rec a;

  listener_start (&l);
  rec_connect (&a, l.url, PROJECT, ids.wrong_secret, &ids.a);
  WAIT_FOR (a.closed);
  g_assert_false (a.welcomed);
  g_assert_cmpuint (a.close_code, ==, WSP_SIGNAL_CLOSE_AUTH);
  g_assert_cmpstr (a.error_code, ==, "auth_failed");
  g_assert_cmpuint (l.joined, ==, 0);
  rec_free (&a);
  listener_stop (&l);
  drain ();
}

static void
test_wrong_project (void)
{
  Listener l;
  Rec a;

  listener_start (&l);
  rec_connect (&a, l.url, OTHER_PROJECT, ids.secret, &ids.a);
  WAIT_FOR (a.closed);
  g_assert_cmpuint (a.close_code, ==, WSP_SIGNAL_CLOSE_AUTH);
  g_assert_cmpstr (a.error_code, ==, "wrong_project");
  rec_free (&a);
  listener_stop (&l);
  drain ();
}

static void
test_hello_from_not_pk (void)
{
  Listener l;
  Raw r;

  listener_start (&l);
  raw_connect (&r, l.url);
  /* Signed by A, claiming to be B. */
  raw_hello (&r, PROJECT, ids.secret, &ids.a, ids.b.peer);
  raw_expect_error_close (&r, "auth_failed", WSP_SIGNAL_CLOSE_AUTH);
  g_assert_cmpuint (l.joined, ==, 0);
  raw_free (&r);
  listener_stop (&l);
  drain ();
}

static void
test_hello_not_hello (void)
{
  Listener l;
  Raw r;

  listener_start (&l);
  raw_connect (&r, l.url);
  soup_websocket_connection_send_text (r.ws, "{\"type\":\"peers\",\"project_id\":\"" PROJECT "\",\"peers\":[]}");
  raw_expect_error_close (&r, "auth_failed", WSP_SIGNAL_CLOSE_AUTH);
  raw_free (&r);

  /* Garbage before welcome is auth_failed too, not bad_message. */
  raw_connect (&r, l.url);
  soup_websocket_connection_send_text (r.ws, "{not json");
  raw_expect_error_close (&r, "auth_failed", WSP_SIGNAL_CLOSE_AUTH);
  raw_free (&r);
  listener_stop (&l);
  drain ();
}

static void
test_hello_timeout (void)
{
  Listener l;
  Raw r;
  gint64 t0;

  listener_start (&l);
  wsp_signal_server_set_hello_timeout (l.server, 200);
  t0 = g_get_monotonic_time ();
  raw_connect (&r, l.url);
  raw_expect_error_close (&r, "auth_failed", WSP_SIGNAL_CLOSE_AUTH);
  g_assert_cmpint (g_get_monotonic_time () - t0, >=, 200 * 1000);
  raw_free (&r);
  listener_stop (&l);
  drain ();
}

/* ---- tests: after welcome ------------------------------------------------- */

static void
test_spoofed_from (void)
{
  Listener l;
  Raw a;
  Rec b;
  WspPeer only_l = ids.listener.peer;
  WspSignalMsg m;
  g_autofree char *text = NULL;

  listener_start (&l);
  rec_connect (&b, l.url, PROJECT, ids.secret, &ids.b);
  WAIT_FOR (b.welcomed);
  raw_member (&a, l.url, &ids.a);
  WAIT_FOR (b.peers_updates == 1);

  wsp_signal_msg_init (&m, WSP_SIGNAL_OFFER);
  m.from_peer_id = ids.c.peer;
  m.to_peer_id = ids.b.peer;
  m.sdp = g_strdup ("v=0 spoofed");
  text = copy_json (&m);
  wsp_signal_msg_clear (&m);
  soup_websocket_connection_send_text (a.ws, text);
  raw_expect_error_close (&a, "auth_failed", WSP_SIGNAL_CLOSE_AUTH);
  /* Nothing relayed; B learns A is gone. */
  WAIT_FOR (peers_are (b.peers, &only_l, 1));
  g_assert_cmpuint (b.msgs->len, ==, 0);
  g_assert_cmpuint (l.left, ==, 1);

  raw_free (&a);
  rec_free (&b);
  listener_stop (&l);
  drain ();
}

static void
test_malformed_after_welcome (void)
{
  Listener l;
  Raw a;

  listener_start (&l);
  raw_member (&a, l.url, &ids.a);
  soup_websocket_connection_send_text (a.ws, "{\"type\":\"webrtc_offer\",\"from_peer_id\":\"nothex\"}");
  raw_expect_error_close (&a, "bad_message", WSP_SIGNAL_CLOSE_PROTOCOL);
  raw_free (&a);

  raw_member (&a, l.url, &ids.a);
  soup_websocket_connection_send_text (a.ws, "{not json");
  raw_expect_error_close (&a, "bad_message", WSP_SIGNAL_CLOSE_PROTOCOL);
  raw_free (&a);

  /* A binary frame is malformed too. */
  raw_member (&a, l.url, &ids.a);
  soup_websocket_connection_send_binary (a.ws, "{}", 2);
  raw_expect_error_close (&a, "bad_message", WSP_SIGNAL_CLOSE_PROTOCOL);
  raw_free (&a);
  listener_stop (&l);
  drain ();
}

static void
test_oversize (void)
{
  Listener l;
  Raw a;
  g_autofree char *big = g_strnfill (WSP_SIGNAL_MAX_MESSAGE + 1, ' ');

  listener_start (&l);
  raw_member (&a, l.url, &ids.a);
  soup_websocket_connection_send_text (a.ws, big);
  raw_expect_error_close (&a, "too_large", WSP_SIGNAL_CLOSE_PROTOCOL);
  raw_free (&a);
  listener_stop (&l);
  drain ();
}

static void
test_huge_frame_dropped (void)
{
  Listener l;
  Raw a;
  Rec b;
  WspPeer only_l = ids.listener.peer;
  g_autofree char *huge = g_strnfill (4 * WSP_SIGNAL_MAX_MESSAGE, ' ');

  /* Past libsoup's frame cap (twice the bound) libsoup itself refuses the
   * frame; the member still leaves cleanly. */
  listener_start (&l);
  rec_connect (&b, l.url, PROJECT, ids.secret, &ids.b);
  WAIT_FOR (b.welcomed);
  raw_member (&a, l.url, &ids.a);
  soup_websocket_connection_send_text (a.ws, huge);
  /* libsoup drops the connection right after its error signal; our
   * error and close frame still go out first on loopback. */
  raw_expect_error_close (&a, "too_large", WSP_SIGNAL_CLOSE_PROTOCOL);
  WAIT_FOR (peers_are (b.peers, &only_l, 1));
  g_assert_cmpuint (l.left, ==, 1);
  raw_free (&a);
  rec_free (&b);
  listener_stop (&l);
  drain ();
}

static void
test_newer_connection_replaces (void)
{
  Listener l;
  Rec a1, a2, b;
  WspSignalMsg got;

  listener_start (&l);
  rec_connect (&b, l.url, PROJECT, ids.secret, &ids.b);
  WAIT_FOR (b.welcomed);
  rec_connect (&a1, l.url, PROJECT, ids.secret, &ids.a);
  WAIT_FOR (a1.welcomed);
  WAIT_FOR (b.peers_updates == 1);

  rec_connect (&a2, l.url, PROJECT, ids.secret, &ids.a);
  WAIT_FOR (a2.welcomed);
  WAIT_FOR (a1.closed);
  g_assert_cmpuint (a1.close_code, ==, SOUP_WEBSOCKET_CLOSE_NORMAL);
  g_assert_true (wsp_signal_server_has_member (l.server, ids.a.peer));
  g_assert_cmpuint (l.joined, ==, 2);   /* B and A, once */
  g_assert_cmpuint (l.left, ==, 0);

  /* B's offer to A reaches the newer connection. */
  send_offer (b.client, ids.a.peer, "v=0 to the new a");
  WAIT_FOR (a2.msgs->len == 1);
  decode_json (g_ptr_array_index (a2.msgs, 0), &got);
  g_assert_cmpstr (got.sdp, ==, "v=0 to the new a");
  wsp_signal_msg_clear (&got);
  g_assert_cmpuint (a1.msgs->len, ==, 0);

  rec_free (&a1);
  rec_free (&a2);
  rec_free (&b);
  listener_stop (&l);
  drain ();
}

/* ---- tests: listener odds and ends ---------------------------------------- */

static void
on_http_done (GObject *src, GAsyncResult *res, gpointer data)
{
  GBytes *body = soup_session_send_and_read_finish (SOUP_SESSION (src), res, NULL);

  g_clear_pointer (&body, g_bytes_unref);
  *(gboolean *) data = TRUE;
}

static void
test_other_paths_404 (void)
{
  Listener l;
  g_autoptr (SoupSession) session = soup_session_new ();
  g_autofree char *url = NULL;
  g_autoptr (SoupMessage) msg = NULL;
  gboolean done = FALSE;

  listener_start (&l);
  soup_session_set_proxy_resolver (session, NULL);
  url = g_strdup_printf ("http://127.0.0.1:%u/api/v1/tasks", wsp_signal_server_get_port (l.server));
  msg = soup_message_new ("GET", url);
  soup_session_send_and_read_async (session, msg, G_PRIORITY_DEFAULT, NULL, on_http_done, &done);
  WAIT_FOR (done);
  g_assert_cmpuint (soup_message_get_status (msg), ==, SOUP_STATUS_NOT_FOUND);
  soup_session_abort (session);
  listener_stop (&l);
  drain ();
}

static void
test_bad_listen (void)
{
  const char *bad[] = { "", "127.0.0.1", "127.0.0.1:x", "127.0.0.1:65536", "localhost:0", "[::1", ":0" };
  WspSignalConfig c = config (PROJECT, ids.secret, &ids.listener);

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      g_assert_null (wsp_signal_server_new (&c, bad[i], NULL, NULL, &error));
      g_assert_error (error, WSP_ERROR, WSP_ERROR_CONFIG);
    }
}

static void
test_client_bad_url (void)
{
  WspSignalConfig c = config (PROJECT, ids.secret, &ids.a);
  g_autoptr (GError) error = NULL;

  g_assert_null (wsp_signal_client_new (&c, "http://127.0.0.1:1/api/v1/signal", 0, NULL, NULL, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_CONFIG);
}

static void
test_client_connect_refused (void)
{
  Listener l;
  Rec a;
  g_autofree char *url = NULL;

  /* A port that was just free: bind, note, close. */
  listener_start (&l);
  url = g_strdup (l.url);
  listener_stop (&l);
  rec_connect (&a, url, PROJECT, ids.secret, &ids.a);
  WAIT_FOR (a.closed);
  g_assert_cmpuint (a.close_code, ==, 0);
  g_assert_nonnull (a.reason);
  rec_free (&a);
  drain ();
}

/* ---- tests: a fake listener with the wrong secret ------------------------- */

typedef struct {
  SoupWebsocketConnection *ws;
} Fake;

static void
fake_on_message (SoupWebsocketConnection *ws, gint type, GBytes *b, gpointer data)
{
  WspSignalMsg h, w;
  WspAuthKeys keys;
  gsize len;
  const char *p = g_bytes_get_data (b, &len);
  g_autofree char *text = NULL;

  g_assert_true (wsp_signal_msg_decode (p, len, &h, NULL));
  g_assert_cmpint (h.type, ==, WSP_SIGNAL_HELLO);
  wsp_auth_keys_derive (&keys, ids.wrong_secret);
  wsp_signal_msg_init (&w, WSP_SIGNAL_WELCOME);
  wsp_auth_signal_welcome_mac (&keys, PROJECT, h.nonce, ids.listener.peer, w.mac);
  g_array_append_val (w.peers, ids.listener.peer);
  text = copy_json (&w);
  soup_websocket_connection_send_text (ws, text);
  wsp_signal_msg_clear (&w);
  wsp_signal_msg_clear (&h);
  wsp_auth_keys_clear (&keys);
}

static void
fake_on_ws (SoupServer *s, SoupServerMessage *msg, const char *path, SoupWebsocketConnection *ws, gpointer data)
{
  Fake *f = data;
  WspSignalMsg ch;
  g_autofree char *text = NULL;

  f->ws = g_object_ref (ws);
  g_signal_connect (ws, "message", G_CALLBACK (fake_on_message), f);
  wsp_signal_msg_init (&ch, WSP_SIGNAL_CHALLENGE);
  memset (ch.nonce, 9, sizeof ch.nonce);
  ch.peer_id = ids.listener.peer;
  ch.project_id = g_strdup (PROJECT);
  text = copy_json (&ch);
  wsp_signal_msg_clear (&ch);
  soup_websocket_connection_send_text (ws, text);
}

static void
test_client_rejects_bad_welcome (void)
{
  g_autoptr (SoupServer) soup = soup_server_new ("server-header", NULL, NULL);
  g_autoptr (GInetAddress) lo = g_inet_address_new_loopback (G_SOCKET_FAMILY_IPV4);
  g_autoptr (GSocketAddress) addr = g_inet_socket_address_new (lo, 0);
  g_autoptr (GError) error = NULL;
  g_autofree char *url = NULL;
  GSList *listeners;
  g_autoptr (GSocketAddress) local = NULL;
  Fake f = { NULL };
  Rec a;
  gboolean closed = FALSE;

  soup_server_add_websocket_handler (soup, WSP_SIGNAL_PATH, NULL, NULL, fake_on_ws, &f, NULL);
  g_assert_true (soup_server_listen (soup, addr, 0, &error));
  listeners = soup_server_get_listeners (soup);
  local = g_socket_get_local_address (listeners->data, &error);
  g_slist_free (listeners);
  url = g_strdup_printf ("ws://127.0.0.1:%u" WSP_SIGNAL_PATH,
                         g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local)));

  rec_connect (&a, url, PROJECT, ids.secret, &ids.a);
  WAIT_FOR (a.closed);
  g_assert_false (a.welcomed);
  g_assert_cmpuint (a.close_code, ==, WSP_SIGNAL_CLOSE_AUTH);
  g_assert_cmpstr (a.error_code, ==, "bad_welcome");
  rec_free (&a);
  g_signal_connect_swapped (f.ws, "closed", G_CALLBACK (on_deadline), &closed);
  WAIT_FOR (closed || soup_websocket_connection_get_state (f.ws) == SOUP_WEBSOCKET_STATE_CLOSED);
  g_signal_handlers_disconnect_by_data (f.ws, &f);
  g_signal_handlers_disconnect_by_data (f.ws, &closed);
  g_clear_object (&f.ws);
  soup_server_disconnect (soup);
  drain ();
}

/* ---- tests: hub ----------------------------------------------------------- */

typedef struct {
  WspSignalHub *hub;
  GHashTable   *online;   /* WspPeer* → via+1 */
  GPtrArray    *msgs;     /* char* */
} HubRec;

static void
h_online (WspSignalHub *hub, WspPeer p, WspSignalVia via, gpointer data)
{
  HubRec *h = data;
  g_assert_false (g_hash_table_contains (h->online, &p));
  g_hash_table_insert (h->online, g_memdup2 (&p, sizeof p), GINT_TO_POINTER (via + 1));
}

static void
h_offline (WspSignalHub *hub, WspPeer p, gpointer data)
{
  HubRec *h = data;
  g_assert_true (g_hash_table_remove (h->online, &p));
}

static void
h_message (WspSignalHub *hub, const WspSignalMsg *m, gpointer data)
{
  g_ptr_array_add (((HubRec *) data)->msgs, copy_json (m));
}

static void
hub_start (HubRec *h, const WspIdentity *id)
{
  static const WspSignalHubCallbacks cb = { h_online, h_offline, h_message };
  WspSignalConfig c = config (PROJECT, ids.secret, id);

  h->online = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  h->msgs = g_ptr_array_new_with_free_func (g_free);
  h->hub = wsp_signal_hub_new (&c, &cb, h);
}

static void
hub_stop (HubRec *h)
{
  g_clear_pointer (&h->hub, wsp_signal_hub_free);
  g_clear_pointer (&h->online, g_hash_table_unref);
  g_clear_pointer (&h->msgs, g_ptr_array_unref);
}

static int
via_of (HubRec *h, WspPeer p)
{
  return GPOINTER_TO_INT (g_hash_table_lookup (h->online, &p)) - 1;
}

static void
hub_send_offer (HubRec *h, WspPeer to, const char *sdp)
{
  WspSignalMsg m;
  g_autoptr (GError) error = NULL;

  wsp_signal_msg_init (&m, WSP_SIGNAL_OFFER);
  m.to_peer_id = to;
  m.sdp = g_strdup (sdp);
  g_assert_true (wsp_signal_hub_send (h->hub, &m, &error));
  g_assert_no_error (error);
  wsp_signal_msg_clear (&m);
}

static void
assert_hub_got (HubRec *h, WspPeer from, const char *sdp)
{
  WspSignalMsg got;
  WAIT_FOR (h->msgs->len == 1);
  decode_json (g_ptr_array_index (h->msgs, 0), &got);
  g_assert_cmpuint (got.from_peer_id, ==, from);
  g_assert_cmpstr (got.sdp, ==, sdp);
  wsp_signal_msg_clear (&got);
  g_ptr_array_set_size (h->msgs, 0);
}

static void
test_hub_routes (void)
{
  HubRec l = { 0 }, a = { 0 }, b = { 0 };
  g_autoptr (GError) error = NULL;
  g_autofree char *url = NULL;
  guint16 port = 0;
  WspSignalMsg m;
  WspSignalVia via;

  hub_start (&l, &ids.listener);
  g_assert_true (wsp_signal_hub_listen (l.hub, "127.0.0.1:0", &port, &error));
  g_assert_no_error (error);
  url = g_strdup_printf ("ws://127.0.0.1:%u" WSP_SIGNAL_PATH, port);
  hub_start (&a, &ids.a);
  hub_start (&b, &ids.b);
  g_assert_true (wsp_signal_hub_add_url (a.hub, url, &error));
  g_assert_true (wsp_signal_hub_add_url (b.hub, url, &error));

  WAIT_FOR (g_hash_table_size (a.online) == 2 && g_hash_table_size (b.online) == 2
            && g_hash_table_size (l.online) == 2);
  g_assert_cmpint (via_of (&a, ids.listener.peer), ==, WSP_SIGNAL_VIA_LISTENER);
  g_assert_cmpint (via_of (&a, ids.b.peer), ==, WSP_SIGNAL_VIA_RELAY);
  g_assert_cmpint (via_of (&l, ids.a.peer), ==, WSP_SIGNAL_VIA_MEMBER);
  g_assert_cmpint (via_of (&l, ids.b.peer), ==, WSP_SIGNAL_VIA_MEMBER);
  g_assert_true (wsp_signal_hub_is_online (b.hub, ids.a.peer, &via));
  g_assert_cmpint (via, ==, WSP_SIGNAL_VIA_RELAY);
  g_assert_false (wsp_signal_hub_is_online (b.hub, ids.c.peer, NULL));

  hub_send_offer (&a, ids.b.peer, "v=0 a to b");
  assert_hub_got (&b, ids.a.peer, "v=0 a to b");
  hub_send_offer (&b, ids.listener.peer, "v=0 b to l");
  assert_hub_got (&l, ids.b.peer, "v=0 b to l");
  hub_send_offer (&l, ids.a.peer, "v=0 l to a");
  assert_hub_got (&a, ids.listener.peer, "v=0 l to a");

  wsp_signal_msg_init (&m, WSP_SIGNAL_OFFER);
  m.to_peer_id = ids.c.peer;
  m.sdp = g_strdup ("v=0");
  g_assert_false (wsp_signal_hub_send (a.hub, &m, &error));
  g_assert_error (error, WSP_SIGNAL_ERROR, WSP_SIGNAL_ERROR_UNKNOWN_PEER);
  wsp_signal_msg_clear (&m);

  /* B goes away: both others see it offline. */
  hub_stop (&b);
  WAIT_FOR (g_hash_table_size (a.online) == 1 && g_hash_table_size (l.online) == 1);
  g_assert_cmpint (via_of (&a, ids.listener.peer), ==, WSP_SIGNAL_VIA_LISTENER);

  hub_stop (&a);
  hub_stop (&l);
  drain ();
}

static void
test_hub_reconnects (void)
{
  HubRec l = { 0 }, a = { 0 };
  g_autoptr (GError) error = NULL;
  g_autofree char *url = NULL, *listen = NULL;
  guint16 port = 0;

  /* The listener comes up after the client started trying, then goes away
   * and comes back: the client reconnects each time. */
  hub_start (&l, &ids.listener);
  g_assert_true (wsp_signal_hub_listen (l.hub, "127.0.0.1:0", &port, &error));
  hub_stop (&l);
  url = g_strdup_printf ("ws://127.0.0.1:%u" WSP_SIGNAL_PATH, port);
  listen = g_strdup_printf ("127.0.0.1:%u", port);

  hub_start (&a, &ids.a);
  wsp_signal_hub_set_backoff (a.hub, 20, 80);
  g_assert_true (wsp_signal_hub_add_url (a.hub, url, &error));
  g_assert_no_error (error);

  for (int round = 0; round < 2; round++)
    {
      hub_start (&l, &ids.listener);
      g_assert_true (wsp_signal_hub_listen (l.hub, listen, NULL, &error));
      g_assert_no_error (error);
      WAIT_FOR (wsp_signal_hub_is_online (a.hub, ids.listener.peer, NULL));
      WAIT_FOR (wsp_signal_hub_is_online (l.hub, ids.a.peer, NULL));
      hub_stop (&l);
      WAIT_FOR (!wsp_signal_hub_is_online (a.hub, ids.listener.peer, NULL));
    }
  hub_stop (&a);
  drain ();
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_assert_true (wsp_crypto_init ());
  ids_init ();

  g_test_add_func ("/signal/handshake", test_handshake);
  g_test_add_func ("/signal/welcome-lists-peers", test_welcome_lists_peers);
  g_test_add_func ("/signal/peers-on-join-and-leave", test_peers_join_leave);
  g_test_add_func ("/signal/relay-offer-and-candidate", test_relay_offer);
  g_test_add_func ("/signal/to-and-from-listener", test_to_and_from_listener);
  g_test_add_func ("/signal/unknown-peer-keeps-connection", test_unknown_peer_keeps_connection);
  g_test_add_func ("/signal/max-size-relays", test_max_size_relays);
  g_test_add_func ("/signal/wrong-secret-auth-failed-4001", test_wrong_secret);
  g_test_add_func ("/signal/wrong-project", test_wrong_project);
  g_test_add_func ("/signal/hello-from-not-id-of-pk", test_hello_from_not_pk);
  g_test_add_func ("/signal/first-message-not-hello", test_hello_not_hello);
  g_test_add_func ("/signal/hello-timeout-4001", test_hello_timeout);
  g_test_add_func ("/signal/spoofed-from-after-welcome", test_spoofed_from);
  g_test_add_func ("/signal/malformed-after-welcome-4002", test_malformed_after_welcome);
  g_test_add_func ("/signal/oversize-too-large-4002", test_oversize);
  g_test_add_func ("/signal/huge-frame-dropped", test_huge_frame_dropped);
  g_test_add_func ("/signal/newer-connection-replaces", test_newer_connection_replaces);
  g_test_add_func ("/signal/other-paths-404", test_other_paths_404);
  g_test_add_func ("/signal/bad-listen-address", test_bad_listen);
  g_test_add_func ("/signal/client-bad-url", test_client_bad_url);
  g_test_add_func ("/signal/client-connect-refused", test_client_connect_refused);
  g_test_add_func ("/signal/client-rejects-bad-welcome", test_client_rejects_bad_welcome);
  g_test_add_func ("/signal/hub-routes", test_hub_routes);
  g_test_add_func ("/signal/hub-reconnects", test_hub_reconnects);
  return g_test_run ();
}
