/* wsp-signal.c — the signaling WebSocket of SPEC 7.1 on libsoup 3: the
 * listener (SoupServer), the client (SoupSession) and the hub that joins
 * both into one set of reachable peers.
 *
 * Threads: single-threaded. Each object remembers the thread-default
 * GMainContext it was created on; libsoup runs its sockets there and our
 * timers are attached there. Every callback below runs on that context.
 *
 * Owns: the listener owns its SoupServer and one Conn per accepted
 * WebSocket (pending or member); the client owns its SoupSession and one
 * WebSocket; the hub owns at most one listener and one Link per URL.
 *
 * Invariants:
 * - A listener connection is a member only after its hello verified and the
 *   welcome was queued; members maps each peer id to its newest
 *   connection. A connection we decided to close (conn->closing) is never a
 *   member and its further input is ignored.
 * - Error text is always queued before the close frame on the same
 *   WebSocket, so the other side reads the error, then the close code.
 * - Incoming frames are capped by libsoup at FRAME_CAP (twice the 256 KiB
 *   message bound) so that a message a little over the bound still reaches
 *   us and gets a clear too_large; the 256 KiB bound itself is checked by
 *   wsp_signal_msg_decode. Bigger frames are dropped by libsoup (we try to
 *   send too_large first). libsoup ≥ 3.6 also bounds a fragmented message
 *   (max-total-message-size), set when present; older libsoup does not
 *   bound reassembly.
 * - A WebSocket we give up (stop, replace, free) is "orphaned": our signal
 *   handlers are disconnected, it is closed politely and it keeps its own
 *   reference until libsoup reports it closed (at most libsoup's 5 s close
 *   timeout), so the close frame is flushed and nothing calls back into a
 *   freed object.
 */
#include "sync/wsp-signal.h"

#include <string.h>
#include <sodium.h>
#include <libsoup/soup.h>

#include "sync/wsp-auth.h"

#define FRAME_CAP            ((guint64) 2 * WSP_SIGNAL_MAX_MESSAGE)
#define KEEPALIVE_S          30
#define CLIENT_HANDSHAKE_MS  15000

/* ---- shared helpers ------------------------------------------------------ */

typedef struct {
  char       *project_id;
  WspAuthKeys keys;
  WspIdentity self;
} Who;

static void
who_init (Who *w, const WspSignalConfig *config)
{
  w->project_id = g_strdup (config->project_id);
  wsp_auth_keys_derive (&w->keys, config->secret);
  w->self = *config->identity;
}

static void
who_clear (Who *w)
{
  g_clear_pointer (&w->project_id, g_free);
  wsp_auth_keys_clear (&w->keys);
  sodium_memzero (&w->self, sizeof w->self);
}

static void
ws_set_limits (SoupWebsocketConnection *ws)
{
  soup_websocket_connection_set_max_incoming_payload_size (ws, FRAME_CAP);
  if (g_object_class_find_property (G_OBJECT_GET_CLASS (ws), "max-total-message-size") != NULL)
    g_object_set (ws, "max-total-message-size", (guint64) FRAME_CAP, NULL);
  soup_websocket_connection_set_keepalive_interval (ws, KEEPALIVE_S);
}

static gboolean
ws_is_open (SoupWebsocketConnection *ws)
{
  return ws != NULL && soup_websocket_connection_get_state (ws) == SOUP_WEBSOCKET_STATE_OPEN;
}

static void
ws_close (SoupWebsocketConnection *ws, gushort code, const char *reason)
{
  /* libsoup refuses (g_return_if_fail) a second close. */
  if (ws_is_open (ws))
    soup_websocket_connection_close (ws, code, reason);
}

static void
orphan_closed (SoupWebsocketConnection *ws, gpointer user_data)
{
  g_signal_handlers_disconnect_by_func (ws, orphan_closed, user_data);
  g_object_unref (ws);
}

/* Takes over our reference to ws: disconnects handlers bound to owner,
 * closes it (if still open) and drops the reference once it is closed. */
static void
ws_orphan (SoupWebsocketConnection *ws, gpointer owner, gushort code, const char *reason)
{
  if (ws == NULL)
    return;
  if (owner != NULL)
    g_signal_handlers_disconnect_by_data (ws, owner);
  ws_close (ws, code, reason);
  if (soup_websocket_connection_get_state (ws) == SOUP_WEBSOCKET_STATE_CLOSED)
    g_object_unref (ws);
  else
    g_signal_connect (ws, "closed", G_CALLBACK (orphan_closed), NULL);
}

static gboolean
ws_send_msg (SoupWebsocketConnection *ws, const WspSignalMsg *m, GError **error)
{
  g_autofree char *text = NULL;

  if (!ws_is_open (ws))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CLOSED, "signaling connection is closed");
      return FALSE;
    }
  text = wsp_signal_msg_encode (m, NULL, error);
  if (text == NULL)
    return FALSE;
  soup_websocket_connection_send_text (ws, text);
  return TRUE;
}

static void
ws_send_error (SoupWebsocketConnection *ws, WspSignalError code, const char *message,
               const WspPeer *to)
{
  WspSignalMsg m;
  g_autoptr (GError) error = NULL;

  wsp_signal_msg_init (&m, WSP_SIGNAL_ERROR_MSG);
  m.code = (char *) wsp_signal_error_to_string (code);
  m.message = (char *) message;
  if (to != NULL)
    {
      m.has_to_peer_id = TRUE;
      m.to_peer_id = *to;
    }
  if (!ws_send_msg (ws, &m, &error))
    g_debug ("signal: cannot send error %s: %s", m.code, error->message);
  /* m borrows its strings: nothing to clear. */
}

static GSource *
timer_start (GMainContext *ctx, guint ms, GSourceFunc fn, gpointer data)
{
  GSource *s = g_timeout_source_new (ms);
  g_source_set_static_name (s, "wsp-signal timer");
  g_source_set_callback (s, fn, data, NULL);
  g_source_attach (s, ctx);
  return s;
}

static void
timer_stop (GSource **s)
{
  if (*s != NULL)
    {
      g_source_destroy (*s);
      g_clear_pointer (s, g_source_unref);
    }
}

static gint
peer_cmp (gconstpointer a, gconstpointer b)
{
  WspPeer x = *(const WspPeer *) a, y = *(const WspPeer *) b;
  return x < y ? -1 : x > y;
}

static gboolean
peers_contain (const GArray *peers, WspPeer p)
{
  for (guint i = 0; peers != NULL && i < peers->len; i++)
    if (g_array_index (peers, WspPeer, i) == p)
      return TRUE;
  return FALSE;
}

static gboolean
is_relayed_type (WspSignalType t)
{
  return t == WSP_SIGNAL_OFFER || t == WSP_SIGNAL_ANSWER || t == WSP_SIGNAL_ICE_CANDIDATE;
}

static const char *
peer_hex (WspPeer p, char buf[WSP_PEER_HEX_LEN + 1])
{
  wsp_peer_to_hex (p, buf);
  return buf;
}

/* "ADDR:PORT" or "[v6]:PORT", IP literal only. */
static GSocketAddress *
parse_listen (const char *listen, GError **error)
{
  g_autofree char *host = NULL;
  g_autoptr (GInetAddress) addr = NULL;
  const char *port_s;
  guint64 port = 0;

  if (listen == NULL)
    goto bad;
  if (listen[0] == '[')
    {
      const char *end = strchr (listen, ']');
      if (end == NULL || end[1] != ':')
        goto bad;
      host = g_strndup (listen + 1, (gsize) (end - listen - 1));
      port_s = end + 2;
    }
  else
    {
      const char *colon = strrchr (listen, ':');
      if (colon == NULL || colon == listen)
        goto bad;
      host = g_strndup (listen, (gsize) (colon - listen));
      port_s = colon + 1;
    }
  if (!g_ascii_string_to_unsigned (port_s, 10, 0, 65535, &port, NULL))
    goto bad;
  addr = g_inet_address_new_from_string (host);
  if (addr == NULL)
    goto bad;
  return g_inet_socket_address_new (addr, (guint16) port);

bad:
  g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
               "[sync] listen: '%s' is not ADDR:PORT with an IP address (e.g. 0.0.0.0:7700)",
               listen != NULL ? listen : "");
  return NULL;
}

/* ======================================================================== */
/* ---- listener ----------------------------------------------------------- */

typedef struct _Conn Conn;

struct _WspSignalServer {
  Who            who;
  GMainContext  *ctx;
  SoupServer    *soup;
  guint16        port;
  guint          hello_timeout_ms;
  GPtrArray     *conns;          /* Conn*, owned: every accepted WebSocket */
  GHashTable    *members;        /* &conn->peer → Conn* (borrowed): newest per peer */
  WspSignalServerCallbacks cb;
  gpointer       user_data;
  gboolean       stopped;
};

struct _Conn {
  WspSignalServer         *server;
  SoupWebsocketConnection *ws;        /* owned ref; NULL once orphaned */
  GSource                 *hello_timer;
  guint8                   nonce[32]; /* our challenge nonce */
  guint8                   client_nonce[32]; /* from its hello, for the welcome mac */
  WspPeer                  peer;      /* set when the hello verified */
  gboolean                 welcomed;  /* hello verified, welcome queued */
  gboolean                 closing;   /* we closed it: ignore its input */
};

static void
conn_free (gpointer data)
{
  Conn *c = data;

  timer_stop (&c->hello_timer);
  if (c->ws != NULL)
    ws_orphan (g_steal_pointer (&c->ws), c, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, "listener stopping");
  g_free (c);
}

/* Listener + members other than `except`, ascending. */
static GArray *
view_for (WspSignalServer *self, WspPeer except)
{
  GArray *a = g_array_new (FALSE, FALSE, sizeof (WspPeer));
  GHashTableIter it;
  gpointer key;

  g_array_append_val (a, self->who.self.peer);
  g_hash_table_iter_init (&it, self->members);
  while (g_hash_table_iter_next (&it, &key, NULL))
    {
      WspPeer p = *(WspPeer *) key;
      if (p != except && p != self->who.self.peer)
        g_array_append_val (a, p);
    }
  g_array_sort (a, peer_cmp);
  return a;
}

static GPtrArray *
members_snapshot (WspSignalServer *self)
{
  GPtrArray *a = g_ptr_array_new ();
  GHashTableIter it;
  gpointer value;

  g_hash_table_iter_init (&it, self->members);
  while (g_hash_table_iter_next (&it, NULL, &value))
    g_ptr_array_add (a, value);
  return a;
}

/* Tells every member but `changed` its new view. */
static void
broadcast_peers (WspSignalServer *self, WspPeer changed)
{
  g_autoptr (GPtrArray) all = members_snapshot (self);

  for (guint i = 0; i < all->len; i++)
    {
      Conn *m = g_ptr_array_index (all, i);
      WspSignalMsg msg;
      g_autoptr (GError) error = NULL;

      if (m->peer == changed)
        continue;
      wsp_signal_msg_init (&msg, WSP_SIGNAL_PEERS);
      g_clear_pointer (&msg.peers, g_array_unref);
      msg.peers = view_for (self, m->peer);
      msg.project_id = g_strdup (self->who.project_id);
      if (!ws_send_msg (m->ws, &msg, &error))
        g_debug ("signal: cannot send peers: %s", error->message);
      wsp_signal_msg_clear (&msg);
    }
}

/* Drops c's membership (if it holds it) and tells everyone. */
static void
conn_leave (Conn *c)
{
  WspSignalServer *self = c->server;

  if (!c->welcomed || g_hash_table_lookup (self->members, &c->peer) != c)
    return;
  g_hash_table_remove (self->members, &c->peer);
  broadcast_peers (self, c->peer);
  if (self->cb.member_left != NULL)
    self->cb.member_left (self, c->peer, self->user_data);
}

/* Queues the error, then the close frame; the connection stops counting. */
static void
conn_fail (Conn *c, gushort close_code, WspSignalError code, const char *message)
{
  char hex[WSP_PEER_HEX_LEN + 1];

  if (c->closing)
    return;
  g_debug ("signal: closing %s with %u (%s: %s)", c->welcomed ? peer_hex (c->peer, hex) : "pending connection",
           close_code, wsp_signal_error_to_string (code), message);
  c->closing = TRUE;
  timer_stop (&c->hello_timer);
  ws_send_error (c->ws, code, message, NULL);
  ws_close (c->ws, close_code, wsp_signal_error_to_string (code));
  conn_leave (c);
}

static gboolean
on_hello_timeout (gpointer data)
{
  Conn *c = data;

  g_clear_pointer (&c->hello_timer, g_source_unref);
  conn_fail (c, WSP_SIGNAL_CLOSE_AUTH, WSP_SIGNAL_ERROR_AUTH_FAILED, "no hello in time");
  return G_SOURCE_REMOVE;
}

static void
conn_admit (Conn *c)
{
  WspSignalServer *self = c->server;
  Conn *old = g_hash_table_lookup (self->members, &c->peer);
  WspSignalMsg w;
  g_autoptr (GError) error = NULL;

  c->welcomed = TRUE;
  if (old != NULL)
    {
      /* Same peer id, newer connection: the set of ids is unchanged. */
      g_hash_table_remove (self->members, &old->peer);
      old->closing = TRUE;
      ws_close (old->ws, SOUP_WEBSOCKET_CLOSE_NORMAL, "replaced by a newer connection");
    }
  g_hash_table_insert (self->members, &c->peer, c);

  wsp_signal_msg_init (&w, WSP_SIGNAL_WELCOME);
  g_clear_pointer (&w.peers, g_array_unref);
  w.peers = view_for (self, c->peer);
  wsp_auth_signal_welcome_mac (&self->who.keys, self->who.project_id, c->client_nonce, self->who.self.peer,
                               w.mac);
  if (!ws_send_msg (c->ws, &w, &error))
    g_debug ("signal: cannot send welcome: %s", error->message);
  wsp_signal_msg_clear (&w);

  if (old == NULL)
    {
      broadcast_peers (self, c->peer);
      if (self->cb.member_joined != NULL)
        self->cb.member_joined (self, c->peer, self->user_data);
    }
}

static void
conn_on_hello (Conn *c, const WspSignalMsg *m)
{
  WspSignalServer *self = c->server;
  g_autoptr (GError) error = NULL;

  if (m->type != WSP_SIGNAL_HELLO)
    {
      g_autofree char *text = g_strdup_printf ("expected hello, got %s", wsp_signal_type_to_string (m->type));
      conn_fail (c, WSP_SIGNAL_CLOSE_AUTH, WSP_SIGNAL_ERROR_AUTH_FAILED, text);
      return;
    }
  if (strcmp (m->project_id, self->who.project_id) != 0)
    {
      conn_fail (c, WSP_SIGNAL_CLOSE_AUTH, WSP_SIGNAL_ERROR_WRONG_PROJECT, "this listener serves another project");
      return;
    }
  if (!wsp_auth_signal_hello_verify (&self->who.keys, self->who.project_id, c->nonce, m->from_peer_id,
                                     m->pk, m->mac, m->sig, &error))
    {
      conn_fail (c, WSP_SIGNAL_CLOSE_AUTH, WSP_SIGNAL_ERROR_AUTH_FAILED, error->message);
      return;
    }
  if (m->from_peer_id == self->who.self.peer)
    {
      conn_fail (c, WSP_SIGNAL_CLOSE_AUTH, WSP_SIGNAL_ERROR_AUTH_FAILED, "from_peer_id is the listener's own id");
      return;
    }
  timer_stop (&c->hello_timer);
  c->peer = m->from_peer_id;
  memcpy (c->client_nonce, m->nonce, sizeof c->client_nonce);
  conn_admit (c);
}

static void
conn_on_member_msg (Conn *c, const WspSignalMsg *m, GBytes *raw)
{
  WspSignalServer *self = c->server;
  Conn *to;

  if (!is_relayed_type (m->type))
    {
      g_autofree char *text = NULL;
      if (m->type == WSP_SIGNAL_ERROR_MSG)
        {
          g_debug ("signal: member sent error %s: %s", m->code, m->message);
          return;
        }
      text = g_strdup_printf ("unexpected %s after welcome", wsp_signal_type_to_string (m->type));
      conn_fail (c, WSP_SIGNAL_CLOSE_PROTOCOL, WSP_SIGNAL_ERROR_BAD_MESSAGE, text);
      return;
    }
  if (m->from_peer_id != c->peer)
    {
      conn_fail (c, WSP_SIGNAL_CLOSE_AUTH, WSP_SIGNAL_ERROR_AUTH_FAILED,
                 "from_peer_id is not the authenticated peer");
      return;
    }
  if (m->to_peer_id == self->who.self.peer)
    {
      if (self->cb.message != NULL)
        self->cb.message (self, m, self->user_data);
      return;
    }
  to = g_hash_table_lookup (self->members, &m->to_peer_id);
  if (to == NULL)
    {
      ws_send_error (c->ws, WSP_SIGNAL_ERROR_UNKNOWN_PEER, "peer is not connected here", &m->to_peer_id);
      return;
    }
  /* Relayed as received: decoded strictly above, sender checked. */
  if (ws_is_open (to->ws))
    soup_websocket_connection_send_message (to->ws, SOUP_WEBSOCKET_DATA_TEXT, raw);
}

static void
conn_on_message (SoupWebsocketConnection *ws, gint type, GBytes *raw, gpointer data)
{
  Conn *c = data;
  WspSignalMsg m;
  g_autoptr (GError) error = NULL;
  gsize len = 0;
  const char *text = g_bytes_get_data (raw, &len);

  if (c->closing)
    return;
  if (type != SOUP_WEBSOCKET_DATA_TEXT)
    {
      if (c->welcomed)
        conn_fail (c, WSP_SIGNAL_CLOSE_PROTOCOL, WSP_SIGNAL_ERROR_BAD_MESSAGE, "expected a text frame");
      else
        conn_fail (c, WSP_SIGNAL_CLOSE_AUTH, WSP_SIGNAL_ERROR_AUTH_FAILED, "expected a text frame");
      return;
    }
  if (!wsp_signal_msg_decode (text, len, &m, &error))
    {
      if (c->welcomed)
        conn_fail (c, WSP_SIGNAL_CLOSE_PROTOCOL, (WspSignalError) error->code, error->message);
      else
        conn_fail (c, WSP_SIGNAL_CLOSE_AUTH, WSP_SIGNAL_ERROR_AUTH_FAILED, error->message);
      return;
    }
  if (!c->welcomed)
    conn_on_hello (c, &m);
  else
    conn_on_member_msg (c, &m, raw);
  wsp_signal_msg_clear (&m);
}

static void
conn_on_error (SoupWebsocketConnection *ws, GError *error, gpointer data)
{
  Conn *c = data;

  g_debug ("signal: listener connection error: %s", error->message);
  /* A frame over FRAME_CAP: libsoup drops the connection right after this
   * signal; try to get our error out first. */
  if (g_error_matches (error, SOUP_WEBSOCKET_ERROR, SOUP_WEBSOCKET_CLOSE_TOO_BIG))
    {
      if (c->welcomed)
        conn_fail (c, WSP_SIGNAL_CLOSE_PROTOCOL, WSP_SIGNAL_ERROR_TOO_LARGE, "message exceeds 256 KiB");
      else
        conn_fail (c, WSP_SIGNAL_CLOSE_AUTH, WSP_SIGNAL_ERROR_AUTH_FAILED, "message exceeds 256 KiB");
    }
}

static void
conn_on_closed (SoupWebsocketConnection *ws, gpointer data)
{
  Conn *c = data;
  WspSignalServer *self = c->server;

  c->closing = TRUE;
  timer_stop (&c->hello_timer);
  conn_leave (c);
  /* libsoup holds its own reference for the emission. */
  g_signal_handlers_disconnect_by_data (c->ws, c);
  g_clear_object (&c->ws);
  g_ptr_array_remove_fast (self->conns, c);
}

static void
on_websocket (SoupServer *soup, SoupServerMessage *msg, const char *path,
              SoupWebsocketConnection *ws, gpointer data)
{
  WspSignalServer *self = data;
  Conn *c;
  WspSignalMsg ch;
  g_autoptr (GError) error = NULL;

  if (self->stopped)
    {
      ws_close (ws, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, "listener stopping");
      return;
    }
  c = g_new0 (Conn, 1);
  c->server = self;
  c->ws = g_object_ref (ws);
  ws_set_limits (ws);
  randombytes_buf (c->nonce, sizeof c->nonce);
  g_ptr_array_add (self->conns, c);
  g_signal_connect (ws, "message", G_CALLBACK (conn_on_message), c);
  g_signal_connect (ws, "error", G_CALLBACK (conn_on_error), c);
  g_signal_connect (ws, "closed", G_CALLBACK (conn_on_closed), c);

  wsp_signal_msg_init (&ch, WSP_SIGNAL_CHALLENGE);
  memcpy (ch.nonce, c->nonce, sizeof ch.nonce);
  ch.peer_id = self->who.self.peer;
  ch.project_id = self->who.project_id;   /* borrowed */
  if (!ws_send_msg (ws, &ch, &error))
    g_debug ("signal: cannot send challenge: %s", error->message);
  c->hello_timer = timer_start (self->ctx, self->hello_timeout_ms, on_hello_timeout, c);
}

static void
on_other_path (SoupServer *soup, SoupServerMessage *msg, const char *path, GHashTable *query, gpointer data)
{
  soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
}

WspSignalServer *
wsp_signal_server_new (const WspSignalConfig *config, const char *listen,
                       const WspSignalServerCallbacks *cb, gpointer user_data, GError **error)
{
  g_autoptr (GSocketAddress) addr = parse_listen (listen, error);
  g_autoptr (WspSignalServer) self = NULL;
  GSList *listeners;

  if (addr == NULL)
    return NULL;
  self = g_new0 (WspSignalServer, 1);
  who_init (&self->who, config);
  self->ctx = g_main_context_ref_thread_default ();
  self->hello_timeout_ms = WSP_SIGNAL_HELLO_TIMEOUT_MS;
  self->conns = g_ptr_array_new_with_free_func (conn_free);
  self->members = g_hash_table_new (g_int64_hash, g_int64_equal);
  if (cb != NULL)
    self->cb = *cb;
  self->user_data = user_data;

  self->soup = soup_server_new ("server-header", NULL, NULL);
  soup_server_add_handler (self->soup, NULL, on_other_path, NULL, NULL);
  soup_server_add_websocket_handler (self->soup, WSP_SIGNAL_PATH, NULL, NULL, on_websocket, self, NULL);
  if (!soup_server_listen (self->soup, addr, 0, error))
    {
      g_prefix_error (error, "[sync] listen %s: ", listen);
      return NULL;
    }
  listeners = soup_server_get_listeners (self->soup);
  if (listeners != NULL)
    {
      g_autoptr (GSocketAddress) local = g_socket_get_local_address (listeners->data, NULL);
      if (local != NULL && G_IS_INET_SOCKET_ADDRESS (local))
        self->port = g_inet_socket_address_get_port (G_INET_SOCKET_ADDRESS (local));
    }
  g_slist_free (listeners);
  return g_steal_pointer (&self);
}

guint16
wsp_signal_server_get_port (WspSignalServer *self)
{
  return self->port;
}

void
wsp_signal_server_set_hello_timeout (WspSignalServer *self, guint timeout_ms)
{
  self->hello_timeout_ms = timeout_ms > 0 ? timeout_ms : WSP_SIGNAL_HELLO_TIMEOUT_MS;
}

gboolean
wsp_signal_server_has_member (WspSignalServer *self, WspPeer peer)
{
  return g_hash_table_contains (self->members, &peer);
}

GArray *
wsp_signal_server_dup_members (WspSignalServer *self)
{
  GArray *a = g_array_new (FALSE, FALSE, sizeof (WspPeer));
  GHashTableIter it;
  gpointer key;

  g_hash_table_iter_init (&it, self->members);
  while (g_hash_table_iter_next (&it, &key, NULL))
    g_array_append_val (a, *(WspPeer *) key);
  g_array_sort (a, peer_cmp);
  return a;
}

gboolean
wsp_signal_server_send (WspSignalServer *self, const WspSignalMsg *msg, GError **error)
{
  WspSignalMsg copy;
  Conn *to;
  char hex[WSP_PEER_HEX_LEN + 1];

  if (!is_relayed_type (msg->type))
    {
      g_set_error (error, WSP_SIGNAL_ERROR, WSP_SIGNAL_ERROR_BAD_MESSAGE,
                   "cannot send %s to a member", wsp_signal_type_to_string (msg->type));
      return FALSE;
    }
  to = self->stopped ? NULL : g_hash_table_lookup (self->members, &msg->to_peer_id);
  if (to == NULL)
    {
      g_set_error (error, WSP_SIGNAL_ERROR, WSP_SIGNAL_ERROR_UNKNOWN_PEER,
                   "peer '%s' is not connected to the listener", peer_hex (msg->to_peer_id, hex));
      return FALSE;
    }
  copy = *msg;   /* shallow: only from_peer_id differs, nothing is freed */
  copy.from_peer_id = self->who.self.peer;
  return ws_send_msg (to->ws, &copy, error);
}

void
wsp_signal_server_stop (WspSignalServer *self)
{
  if (self == NULL || self->stopped)
    return;
  self->stopped = TRUE;
  if (self->soup != NULL)
    soup_server_disconnect (self->soup);
  g_hash_table_remove_all (self->members);
  g_ptr_array_set_size (self->conns, 0);   /* conn_free orphans each WebSocket */
}

void
wsp_signal_server_free (WspSignalServer *self)
{
  if (self == NULL)
    return;
  wsp_signal_server_stop (self);
  g_clear_object (&self->soup);
  g_clear_pointer (&self->conns, g_ptr_array_unref);
  g_clear_pointer (&self->members, g_hash_table_unref);
  g_clear_pointer (&self->ctx, g_main_context_unref);
  who_clear (&self->who);
  g_free (self);
}

/* ======================================================================== */
/* ---- client ------------------------------------------------------------- */

typedef enum {
  CLIENT_CONNECTING,    /* WebSocket handshake under way */
  CLIENT_CHALLENGE,     /* open, waiting for the challenge */
  CLIENT_HELLO_SENT,    /* waiting for the welcome */
  CLIENT_READY,         /* welcomed */
  CLIENT_CLOSING,       /* we sent a close; waiting for libsoup's closed */
  CLIENT_CLOSED,
} ClientState;

/* The connect callback's state: it may run after the client is freed
 * (cancelled), so it owns what it needs to tell. */
typedef struct {
  WspSignalClient *client;     /* valid unless cancel is cancelled */
  GCancellable    *cancel;
  SoupSession     *session;
} Pending;

struct _WspSignalClient {
  Who            who;
  GMainContext  *ctx;
  char          *url;
  SoupSession   *session;
  GCancellable  *cancel;          /* the connect */
  SoupWebsocketConnection *ws;
  GSource       *timer;           /* handshake deadline */
  guint          handshake_ms;
  ClientState    state;
  guint8         nonce[32];       /* ours, sent in hello */
  WspPeer        listener;
  GArray        *peers;           /* WspPeer; NULL before welcome */
  /* Why it ended: our own close, else the listener's last error. */
  guint          local_code;
  char          *local_error;
  char          *local_reason;
  char          *last_error;
  char          *last_message;
  WspSignalClientCallbacks cb;
  gpointer       user_data;
};

/* Tells closed once; after this the client may be gone. */
static void
client_finish (WspSignalClient *self, guint code, const char *error_code, const char *reason)
{
  void (*closed) (WspSignalClient *, guint, const char *, const char *, gpointer) = self->cb.closed;
  g_autofree char *ec = g_strdup (error_code), *r = g_strdup (reason);

  if (self->state == CLIENT_CLOSED)
    return;
  self->state = CLIENT_CLOSED;
  timer_stop (&self->timer);
  memset (&self->cb, 0, sizeof self->cb);
  if (closed != NULL)
    closed (self, code, ec, r, self->user_data);
}

/* We end the connection: remember why, then close politely. */
static void
client_fail (WspSignalClient *self, gushort code, const char *error_code, const char *reason)
{
  if (self->state == CLIENT_CLOSING || self->state == CLIENT_CLOSED)
    return;
  g_debug ("signal: client %s closing with %u (%s: %s)", self->url, code, error_code, reason);
  self->local_code = code;
  g_free (self->local_error);
  self->local_error = g_strdup (error_code);
  g_free (self->local_reason);
  self->local_reason = g_strdup (reason);
  self->state = CLIENT_CLOSING;
  timer_stop (&self->timer);
  if (ws_is_open (self->ws))
    ws_close (self->ws, code, error_code);
  else if (self->ws == NULL || soup_websocket_connection_get_state (self->ws) == SOUP_WEBSOCKET_STATE_CLOSED)
    client_finish (self, code, error_code, reason);
}

static void
client_on_challenge (WspSignalClient *self, const WspSignalMsg *m)
{
  WspSignalMsg h;
  g_autoptr (GError) error = NULL;

  self->listener = m->peer_id;
  wsp_signal_msg_init (&h, WSP_SIGNAL_HELLO);
  h.from_peer_id = self->who.self.peer;
  h.project_id = self->who.project_id;   /* borrowed */
  memcpy (h.pk, self->who.self.pk, sizeof h.pk);
  memcpy (h.nonce, self->nonce, sizeof h.nonce);
  wsp_auth_signal_hello_sign (&self->who.keys, &self->who.self, self->who.project_id, m->nonce, h.mac, h.sig);
  if (!ws_send_msg (self->ws, &h, &error))
    {
      client_fail (self, WSP_SIGNAL_CLOSE_AUTH, "internal", error->message);
      return;
    }
  self->state = CLIENT_HELLO_SENT;
}

static void
set_peers (WspSignalClient *self, const GArray *peers)
{
  g_clear_pointer (&self->peers, g_array_unref);
  self->peers = g_array_new (FALSE, FALSE, sizeof (WspPeer));
  for (guint i = 0; i < peers->len; i++)
    {
      WspPeer p = g_array_index (peers, WspPeer, i);
      if (p != self->who.self.peer && !peers_contain (self->peers, p))
        g_array_append_val (self->peers, p);
    }
}

static void
client_on_welcome (WspSignalClient *self, const WspSignalMsg *m)
{
  g_autoptr (GError) error = NULL;

  if (!wsp_auth_signal_welcome_verify (&self->who.keys, self->who.project_id, self->nonce, self->listener,
                                       m->mac, &error))
    {
      client_fail (self, WSP_SIGNAL_CLOSE_AUTH, "bad_welcome", error->message);
      return;
    }
  timer_stop (&self->timer);
  self->state = CLIENT_READY;
  set_peers (self, m->peers);
  if (!peers_contain (self->peers, self->listener))
    g_array_prepend_val (self->peers, self->listener);
  if (self->cb.welcomed != NULL)
    self->cb.welcomed (self, self->listener, self->peers, self->user_data);
}

static void
client_on_error_msg (WspSignalClient *self, const WspSignalMsg *m)
{
  g_free (self->last_error);
  self->last_error = g_strdup (m->code);
  g_free (self->last_message);
  self->last_message = g_strdup (m->message);
  if (self->state == CLIENT_READY && g_strcmp0 (m->code, "unknown_peer") == 0 && self->cb.message != NULL)
    self->cb.message (self, m, self->user_data);
}

static void
client_on_message (SoupWebsocketConnection *ws, gint type, GBytes *raw, gpointer data)
{
  WspSignalClient *self = data;
  WspSignalMsg m;
  g_autoptr (GError) error = NULL;
  gsize len = 0;
  const char *text = g_bytes_get_data (raw, &len);
  gushort bad_code = self->state == CLIENT_READY ? WSP_SIGNAL_CLOSE_PROTOCOL : WSP_SIGNAL_CLOSE_AUTH;

  if (self->state != CLIENT_CHALLENGE && self->state != CLIENT_HELLO_SENT && self->state != CLIENT_READY)
    return;
  if (type != SOUP_WEBSOCKET_DATA_TEXT)
    {
      client_fail (self, bad_code, "bad_message", "listener sent a binary frame");
      return;
    }
  if (!wsp_signal_msg_decode (text, len, &m, &error))
    {
      client_fail (self, bad_code, wsp_signal_error_to_string ((WspSignalError) error->code), error->message);
      return;
    }
  if (m.type == WSP_SIGNAL_ERROR_MSG)
    client_on_error_msg (self, &m);
  else if (self->state == CLIENT_CHALLENGE && m.type == WSP_SIGNAL_CHALLENGE)
    client_on_challenge (self, &m);
  else if (self->state == CLIENT_HELLO_SENT && m.type == WSP_SIGNAL_WELCOME)
    client_on_welcome (self, &m);
  else if (self->state == CLIENT_READY && m.type == WSP_SIGNAL_PEERS)
    {
      if (strcmp (m.project_id, self->who.project_id) != 0)
        g_debug ("signal: peers of another project ignored");
      else
        {
          set_peers (self, m.peers);
          if (self->cb.peers != NULL)
            self->cb.peers (self, self->peers, self->user_data);
        }
    }
  else if (self->state == CLIENT_READY && is_relayed_type (m.type))
    {
      if (m.to_peer_id != self->who.self.peer)
        g_debug ("signal: %s for another peer ignored", wsp_signal_type_to_string (m.type));
      else if (self->cb.message != NULL)
        self->cb.message (self, &m, self->user_data);
    }
  else
    {
      g_autofree char *why = g_strdup_printf ("unexpected %s", wsp_signal_type_to_string (m.type));
      client_fail (self, bad_code, "bad_message", why);
    }
  wsp_signal_msg_clear (&m);
}

static void
client_on_closed (SoupWebsocketConnection *ws, gpointer data)
{
  WspSignalClient *self = data;
  guint code = self->local_code;
  const char *error_code = self->local_error;
  const char *reason = self->local_reason;

  if (code == 0)
    {
      code = soup_websocket_connection_get_close_code (ws);
      error_code = self->last_error;
      reason = self->last_message != NULL ? self->last_message : soup_websocket_connection_get_close_data (ws);
      if (reason == NULL || *reason == '\0')
        reason = "connection closed";
    }
  client_finish (self, code, error_code, reason);
}

static gboolean
on_client_timeout (gpointer data)
{
  WspSignalClient *self = data;

  g_clear_pointer (&self->timer, g_source_unref);
  if (self->state == CLIENT_CONNECTING)
    {
      g_cancellable_cancel (self->cancel);
      client_finish (self, 0, "timeout", "signaling handshake timed out");
    }
  else
    client_fail (self, WSP_SIGNAL_CLOSE_AUTH, "timeout", "signaling handshake timed out");
  return G_SOURCE_REMOVE;
}

static void
on_connected (GObject *source, GAsyncResult *res, gpointer data)
{
  Pending *p = data;
  g_autoptr (GError) error = NULL;
  g_autoptr (SoupWebsocketConnection) ws = soup_session_websocket_connect_finish (p->session, res, &error);
  WspSignalClient *self = p->client;
  gboolean cancelled = g_cancellable_is_cancelled (p->cancel);

  g_object_unref (p->cancel);
  g_object_unref (p->session);
  g_free (p);
  if (cancelled)
    {
      if (ws != NULL)
        ws_orphan (g_steal_pointer (&ws), NULL, SOUP_WEBSOCKET_CLOSE_GOING_AWAY, "client gone");
      return;
    }
  if (ws == NULL)
    {
      client_finish (self, 0, NULL, error->message);
      return;
    }
  self->ws = g_steal_pointer (&ws);
  ws_set_limits (self->ws);
  self->state = CLIENT_CHALLENGE;
  g_signal_connect (self->ws, "message", G_CALLBACK (client_on_message), self);
  g_signal_connect (self->ws, "closed", G_CALLBACK (client_on_closed), self);
}

WspSignalClient *
wsp_signal_client_new (const WspSignalConfig *config, const char *url, guint handshake_timeout_ms,
                       const WspSignalClientCallbacks *cb, gpointer user_data, GError **error)
{
  g_autoptr (GUri) uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
  g_autoptr (SoupMessage) msg = NULL;
  WspSignalClient *self;
  Pending *p;

  if (uri == NULL || (g_strcmp0 (g_uri_get_scheme (uri), "ws") != 0 && g_strcmp0 (g_uri_get_scheme (uri), "wss") != 0)
      || g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0')
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                   "[sync] signal_urls: '%s' is not a ws:// or wss:// URL", url != NULL ? url : "");
      return NULL;
    }
  msg = soup_message_new_from_uri (SOUP_METHOD_GET, uri);

  self = g_new0 (WspSignalClient, 1);
  who_init (&self->who, config);
  self->ctx = g_main_context_ref_thread_default ();
  self->url = g_strdup (url);
  if (cb != NULL)
    self->cb = *cb;
  self->user_data = user_data;
  self->handshake_ms = handshake_timeout_ms > 0 ? handshake_timeout_ms : CLIENT_HANDSHAKE_MS;
  randombytes_buf (self->nonce, sizeof self->nonce);

  self->session = soup_session_new ();
  soup_session_set_proxy_resolver (self->session, NULL);
  self->cancel = g_cancellable_new ();
  self->state = CLIENT_CONNECTING;
  p = g_new0 (Pending, 1);
  p->client = self;
  p->cancel = g_object_ref (self->cancel);
  p->session = g_object_ref (self->session);
  soup_session_websocket_connect_async (self->session, msg, NULL, NULL, G_PRIORITY_DEFAULT, self->cancel,
                                        on_connected, p);
  self->timer = timer_start (self->ctx, self->handshake_ms, on_client_timeout, self);
  return self;
}

gboolean
wsp_signal_client_is_ready (WspSignalClient *self)
{
  return self->state == CLIENT_READY;
}

WspPeer
wsp_signal_client_get_listener (WspSignalClient *self)
{
  return self->listener;
}

const GArray *
wsp_signal_client_get_peers (WspSignalClient *self)
{
  return self->peers;
}

const char *
wsp_signal_client_get_url (WspSignalClient *self)
{
  return self->url;
}

gboolean
wsp_signal_client_send (WspSignalClient *self, const WspSignalMsg *msg, GError **error)
{
  WspSignalMsg copy;

  if (self->state != CLIENT_READY)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CLOSED, "signaling connection to %s is not ready", self->url);
      return FALSE;
    }
  if (!is_relayed_type (msg->type))
    {
      g_set_error (error, WSP_SIGNAL_ERROR, WSP_SIGNAL_ERROR_BAD_MESSAGE,
                   "cannot send %s to a listener", wsp_signal_type_to_string (msg->type));
      return FALSE;
    }
  copy = *msg;   /* shallow: only from_peer_id differs */
  copy.from_peer_id = self->who.self.peer;
  return ws_send_msg (self->ws, &copy, error);
}

void
wsp_signal_client_close (WspSignalClient *self)
{
  if (self == NULL)
    return;
  memset (&self->cb, 0, sizeof self->cb);
  timer_stop (&self->timer);
  if (self->cancel != NULL)
    g_cancellable_cancel (self->cancel);
  if (self->ws != NULL)
    ws_orphan (g_steal_pointer (&self->ws), self, SOUP_WEBSOCKET_CLOSE_NORMAL, "client closing");
  self->state = CLIENT_CLOSED;
}

void
wsp_signal_client_free (WspSignalClient *self)
{
  if (self == NULL)
    return;
  wsp_signal_client_close (self);
  g_clear_object (&self->cancel);
  g_clear_object (&self->session);
  g_clear_pointer (&self->peers, g_array_unref);
  g_clear_pointer (&self->ctx, g_main_context_unref);
  g_free (self->url);
  g_free (self->local_error);
  g_free (self->local_reason);
  g_free (self->last_error);
  g_free (self->last_message);
  who_clear (&self->who);
  g_free (self);
}

/* ======================================================================== */
/* ---- hub ---------------------------------------------------------------- */

static const char *const via_names[] = {
  [WSP_SIGNAL_VIA_MEMBER] = "member",
  [WSP_SIGNAL_VIA_LISTENER] = "listener",
  [WSP_SIGNAL_VIA_RELAY] = "relay",
};

const char *
wsp_signal_via_to_string (WspSignalVia via)
{
  return (guint) via < G_N_ELEMENTS (via_names) ? via_names[via] : "unknown";
}

typedef struct {
  WspSignalHub    *hub;
  char            *url;
  WspSignalClient *client;      /* NULL while waiting to retry */
  GSource         *retry;
  guint            backoff_ms;  /* next wait */
} Link;

struct _WspSignalHub {
  char            *project_id;
  guint8           secret[WSP_PROJECT_SECRET_LEN];
  WspIdentity      self;
  GMainContext    *ctx;
  WspSignalServer *server;
  GPtrArray       *links;       /* Link*, owned */
  GHashTable      *online;      /* WspPeer* (owned) → GINT_TO_POINTER (via + 1) */
  guint            backoff_min, backoff_max;
  WspSignalHubCallbacks cb;
  gpointer         user_data;
};

static void
hub_config (WspSignalHub *self, WspSignalConfig *out)
{
  out->project_id = self->project_id;
  out->secret = self->secret;
  out->identity = &self->self;
}

static void
online_put (GHashTable *t, WspPeer p, WspSignalVia via)
{
  gpointer old = g_hash_table_lookup (t, &p);
  if (old != NULL && GPOINTER_TO_INT (old) - 1 <= (int) via)
    return;   /* a better path is known (MEMBER < LISTENER < RELAY) */
  g_hash_table_insert (t, g_memdup2 (&p, sizeof p), GINT_TO_POINTER ((int) via + 1));
}

/* Recomputes the reachable set and reports the difference. */
static void
hub_update (WspSignalHub *self)
{
  g_autoptr (GHashTable) now = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  g_autoptr (GHashTable) before = NULL;
  g_autoptr (GArray) gone = g_array_new (FALSE, FALSE, sizeof (WspPeer));
  g_autoptr (GArray) came = g_array_new (FALSE, FALSE, sizeof (WspPeer));
  GHashTableIter it;
  gpointer key, value;

  if (self->server != NULL)
    {
      g_autoptr (GArray) m = wsp_signal_server_dup_members (self->server);
      for (guint i = 0; i < m->len; i++)
        online_put (now, g_array_index (m, WspPeer, i), WSP_SIGNAL_VIA_MEMBER);
    }
  for (guint i = 0; i < self->links->len; i++)
    {
      Link *l = g_ptr_array_index (self->links, i);
      const GArray *peers;
      if (l->client == NULL || !wsp_signal_client_is_ready (l->client))
        continue;
      peers = wsp_signal_client_get_peers (l->client);
      for (guint j = 0; j < peers->len; j++)
        {
          WspPeer p = g_array_index (peers, WspPeer, j);
          online_put (now, p, p == wsp_signal_client_get_listener (l->client) ? WSP_SIGNAL_VIA_LISTENER
                                                                             : WSP_SIGNAL_VIA_RELAY);
        }
    }
  g_hash_table_remove (now, &self->self.peer);

  g_hash_table_iter_init (&it, self->online);
  while (g_hash_table_iter_next (&it, &key, NULL))
    if (!g_hash_table_contains (now, key))
      g_array_append_val (gone, *(WspPeer *) key);
  g_hash_table_iter_init (&it, now);
  while (g_hash_table_iter_next (&it, &key, NULL))
    if (!g_hash_table_contains (self->online, key))
      g_array_append_val (came, *(WspPeer *) key);
  g_array_sort (gone, peer_cmp);
  g_array_sort (came, peer_cmp);

  before = g_steal_pointer (&self->online);
  self->online = g_steal_pointer (&now);

  for (guint i = 0; i < gone->len; i++)
    if (self->cb.peer_offline != NULL)
      self->cb.peer_offline (self, g_array_index (gone, WspPeer, i), self->user_data);
  for (guint i = 0; i < came->len; i++)
    {
      WspPeer p = g_array_index (came, WspPeer, i);
      value = g_hash_table_lookup (self->online, &p);
      if (self->cb.peer_online != NULL)
        self->cb.peer_online (self, p, (WspSignalVia) (GPOINTER_TO_INT (value) - 1), self->user_data);
    }
}

static void hub_connect (Link *l);

static gboolean
on_retry (gpointer data)
{
  Link *l = data;

  g_clear_pointer (&l->retry, g_source_unref);
  hub_connect (l);
  return G_SOURCE_REMOVE;
}

static void
link_welcomed (WspSignalClient *c, WspPeer listener, const GArray *peers, gpointer data)
{
  Link *l = data;
  l->backoff_ms = l->hub->backoff_min;
  hub_update (l->hub);
}

static void
link_peers (WspSignalClient *c, const GArray *peers, gpointer data)
{
  Link *l = data;
  hub_update (l->hub);
}

static void
link_message (WspSignalClient *c, const WspSignalMsg *msg, gpointer data)
{
  Link *l = data;
  char hex[WSP_PEER_HEX_LEN + 1];

  if (msg->type == WSP_SIGNAL_ERROR_MSG)
    {
      g_debug ("signal: %s: %s for %s", l->url, msg->code, peer_hex (msg->to_peer_id, hex));
      return;
    }
  if (l->hub->cb.message != NULL)
    l->hub->cb.message (l->hub, msg, l->hub->user_data);
}

static void
link_closed (WspSignalClient *c, guint code, const char *error_code, const char *reason, gpointer data)
{
  Link *l = data;
  WspSignalHub *self = l->hub;

  g_info ("signal: connection to %s ended (%u %s: %s); retrying in %u ms", l->url, code,
             error_code != NULL ? error_code : "-", reason, l->backoff_ms);
  wsp_signal_client_free (g_steal_pointer (&l->client));
  l->retry = timer_start (self->ctx, l->backoff_ms, on_retry, l);
  l->backoff_ms = MIN (l->backoff_ms * 2, self->backoff_max);
  hub_update (self);
}

static void
hub_connect (Link *l)
{
  static const WspSignalClientCallbacks cb = { link_welcomed, link_peers, link_message, link_closed };
  WspSignalConfig config;
  g_autoptr (GError) error = NULL;

  hub_config (l->hub, &config);
  l->client = wsp_signal_client_new (&config, l->url, 0, &cb, l, &error);
  if (l->client == NULL)   /* the URL was checked by add_url */
    g_warning ("signal: %s", error->message);
}

static void
link_free (gpointer data)
{
  Link *l = data;

  timer_stop (&l->retry);
  wsp_signal_client_free (l->client);
  g_free (l->url);
  g_free (l);
}

WspSignalHub *
wsp_signal_hub_new (const WspSignalConfig *config, const WspSignalHubCallbacks *cb, gpointer user_data)
{
  WspSignalHub *self = g_new0 (WspSignalHub, 1);

  self->project_id = g_strdup (config->project_id);
  memcpy (self->secret, config->secret, sizeof self->secret);
  self->self = *config->identity;
  self->ctx = g_main_context_ref_thread_default ();
  self->links = g_ptr_array_new_with_free_func (link_free);
  self->online = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  self->backoff_min = WSP_SIGNAL_BACKOFF_MIN_MS;
  self->backoff_max = WSP_SIGNAL_BACKOFF_MAX_MS;
  if (cb != NULL)
    self->cb = *cb;
  self->user_data = user_data;
  return self;
}

static void
hub_member_changed (WspSignalServer *server, WspPeer peer, gpointer data)
{
  hub_update (data);
}

static void
hub_server_message (WspSignalServer *server, const WspSignalMsg *msg, gpointer data)
{
  WspSignalHub *self = data;
  if (self->cb.message != NULL)
    self->cb.message (self, msg, self->user_data);
}

gboolean
wsp_signal_hub_listen (WspSignalHub *self, const char *listen, guint16 *out_port, GError **error)
{
  static const WspSignalServerCallbacks cb = { hub_member_changed, hub_member_changed, hub_server_message };
  WspSignalConfig config;

  if (self->server != NULL)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG, "[sync] listen: already listening");
      return FALSE;
    }
  hub_config (self, &config);
  self->server = wsp_signal_server_new (&config, listen, &cb, self, error);
  if (self->server == NULL)
    return FALSE;
  if (out_port != NULL)
    *out_port = wsp_signal_server_get_port (self->server);
  return TRUE;
}

gboolean
wsp_signal_hub_add_url (WspSignalHub *self, const char *url, GError **error)
{
  g_autoptr (GUri) uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
  Link *l;

  if (uri == NULL || (g_strcmp0 (g_uri_get_scheme (uri), "ws") != 0 && g_strcmp0 (g_uri_get_scheme (uri), "wss") != 0))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                   "[sync] signal_urls: '%s' is not a ws:// or wss:// URL", url != NULL ? url : "");
      return FALSE;
    }
  l = g_new0 (Link, 1);
  l->hub = self;
  l->url = g_strdup (url);
  l->backoff_ms = self->backoff_min;
  g_ptr_array_add (self->links, l);
  hub_connect (l);
  return TRUE;
}

void
wsp_signal_hub_set_backoff (WspSignalHub *self, guint min_ms, guint max_ms)
{
  self->backoff_min = MAX (min_ms, 1);
  self->backoff_max = MAX (max_ms, self->backoff_min);
  for (guint i = 0; i < self->links->len; i++)
    ((Link *) g_ptr_array_index (self->links, i))->backoff_ms = self->backoff_min;
}

gboolean
wsp_signal_hub_is_online (WspSignalHub *self, WspPeer peer, WspSignalVia *out_via)
{
  gpointer v = g_hash_table_lookup (self->online, &peer);
  if (v == NULL)
    return FALSE;
  if (out_via != NULL)
    *out_via = (WspSignalVia) (GPOINTER_TO_INT (v) - 1);
  return TRUE;
}

gboolean
wsp_signal_hub_send (WspSignalHub *self, const WspSignalMsg *msg, GError **error)
{
  WspSignalVia via;
  char hex[WSP_PEER_HEX_LEN + 1];

  if (!wsp_signal_hub_is_online (self, msg->to_peer_id, &via))
    {
      g_set_error (error, WSP_SIGNAL_ERROR, WSP_SIGNAL_ERROR_UNKNOWN_PEER,
                   "peer '%s' is not reachable for signaling", peer_hex (msg->to_peer_id, hex));
      return FALSE;
    }
  if (via == WSP_SIGNAL_VIA_MEMBER)
    return wsp_signal_server_send (self->server, msg, error);
  for (guint i = 0; i < self->links->len; i++)
    {
      Link *l = g_ptr_array_index (self->links, i);
      if (l->client == NULL || !wsp_signal_client_is_ready (l->client))
        continue;
      if (via == WSP_SIGNAL_VIA_LISTENER ? wsp_signal_client_get_listener (l->client) == msg->to_peer_id
                                         : peers_contain (wsp_signal_client_get_peers (l->client), msg->to_peer_id))
        return wsp_signal_client_send (l->client, msg, error);
    }
  g_set_error (error, WSP_SIGNAL_ERROR, WSP_SIGNAL_ERROR_UNKNOWN_PEER,
               "peer '%s' is not reachable for signaling", peer_hex (msg->to_peer_id, hex));
  return FALSE;
}

const char *
wsp_signal_hub_get_url (WspSignalHub *self, WspPeer peer)
{
  for (guint i = 0; i < self->links->len; i++)
    {
      Link *l = g_ptr_array_index (self->links, i);
      if (l->client != NULL && wsp_signal_client_is_ready (l->client)
          && wsp_signal_client_get_listener (l->client) == peer)
        return l->url;
    }
  return NULL;
}

WspSignalServer *
wsp_signal_hub_get_server (WspSignalHub *self)
{
  return self->server;
}

void
wsp_signal_hub_free (WspSignalHub *self)
{
  if (self == NULL)
    return;
  memset (&self->cb, 0, sizeof self->cb);
  g_clear_pointer (&self->links, g_ptr_array_unref);
  g_clear_pointer (&self->server, wsp_signal_server_free);
  g_clear_pointer (&self->online, g_hash_table_unref);
  g_clear_pointer (&self->ctx, g_main_context_unref);
  g_free (self->project_id);
  sodium_memzero (self->secret, sizeof self->secret);
  sodium_memzero (&self->self, sizeof self->self);
  g_free (self);
}
