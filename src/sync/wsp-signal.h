/* wsp-signal.h — the signaling WebSocket of peer sync (SPEC 7.1) on
 * libsoup 3: the listener (WspSignalServer), the client (WspSignalClient)
 * and one endpoint over both (WspSignalHub) that tells the daemon which
 * peers it can signal and routes offers, answers and candidates to them.
 *
 * Threads: every object here is created, used and freed on one thread, and
 * all its I/O, timers and callbacks run on the GMainContext that was the
 * thread-default context when it was created (the daemon's main loop).
 * Nothing blocks that loop. No function is thread-safe.
 *
 * Callbacks must not free the object that calls them, except where a
 * callback says so (the client's closed).
 *
 * Messages handed to callbacks are valid only during the call.
 */
#pragma once

#include <glib.h>
#include "crdt/wsp-chain.h"
#include "sync/wsp-signal-msg.h"

G_BEGIN_DECLS

#define WSP_SIGNAL_PATH               "/api/v1/signal"
#define WSP_SIGNAL_HELLO_TIMEOUT_MS   10000   /* SPEC 7.1: no hello in 10 s → 4001 */
#define WSP_SIGNAL_BACKOFF_MIN_MS     500     /* hub reconnects: 0.5 s, doubling … */
#define WSP_SIGNAL_BACKOFF_MAX_MS     30000   /* … up to 30 s */

/* Who we are, for both sides. Copied by the constructors (the identity's
 * secret key is wiped when the object is freed). */
typedef struct {
  const char        *project_id;     /* 26-char project id */
  const guint8      *secret;         /* 32-byte project secret */
  const WspIdentity *identity;       /* our peer id and signing key */
} WspSignalConfig;

/* ---- listener ----------------------------------------------------------- */

typedef struct _WspSignalServer WspSignalServer;

typedef struct {
  /* A peer id became a member (its welcome was sent). Not called again when
   * a newer connection with the same id replaces the older one. */
  void (*member_joined) (WspSignalServer *server, WspPeer peer, gpointer user_data);
  /* A peer id is no longer a member: its connection closed or was closed
   * for a protocol error. */
  void (*member_left)   (WspSignalServer *server, WspPeer peer, gpointer user_data);
  /* A member's webrtc_offer/answer/ice_candidate addressed to the listener
   * itself (to_peer_id = our id; from_peer_id already checked). */
  void (*message)       (WspSignalServer *server, const WspSignalMsg *msg, gpointer user_data);
} WspSignalServerCallbacks;

/* Listens on listen ("ADDR:PORT" with an IP literal, "[v6]:PORT" for IPv6;
 * port 0 = any free port) and serves only the WebSocket at WSP_SIGNAL_PATH:
 * every other path is 404 (a non-WebSocket request on the signal path gets
 * libsoup's 400). cb may be NULL, as may each of its members. Fails with
 * WSP_ERROR_CONFIG for a bad address, or the GIOError of the bind. */
WspSignalServer *wsp_signal_server_new (const WspSignalConfig *config, const char *listen,
                                        const WspSignalServerCallbacks *cb, gpointer user_data,
                                        GError **error);
/* The bound port. */
guint16          wsp_signal_server_get_port (WspSignalServer *self);
/* Time a connection has to send its hello (default WSP_SIGNAL_HELLO_TIMEOUT_MS);
 * applies to connections accepted afterwards. For tests. */
void             wsp_signal_server_set_hello_timeout (WspSignalServer *self, guint timeout_ms);
/* Whether peer is a member now. */
gboolean         wsp_signal_server_has_member (WspSignalServer *self, WspPeer peer);
/* Member ids, ascending (our own id not included). Free with g_array_unref. */
GArray          *wsp_signal_server_dup_members (WspSignalServer *self);
/* Sends an offer, answer or candidate from the listener itself to the
 * member msg->to_peer_id; from_peer_id is set to our id whatever msg holds.
 * Fails with WSP_SIGNAL_ERROR_UNKNOWN_PEER when that peer is not a member,
 * BAD_MESSAGE for another type or an unencodable message, TOO_LARGE over
 * 256 KiB. */
gboolean         wsp_signal_server_send (WspSignalServer *self, const WspSignalMsg *msg, GError **error);
/* Stops listening and closes every connection (1001 going away); no
 * callback runs after this returns. Idempotent. */
void             wsp_signal_server_stop (WspSignalServer *self);
/* Stops and frees. NULL ok. */
void             wsp_signal_server_free (WspSignalServer *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (WspSignalServer, wsp_signal_server_free)

/* ---- client ------------------------------------------------------------- */

typedef struct _WspSignalClient WspSignalClient;

typedef struct {
  /* The welcome arrived and its mac is right (the listener knows the
   * project secret). peers: WspPeer, the listener included. */
  void (*welcomed) (WspSignalClient *client, WspPeer listener, const GArray *peers, gpointer user_data);
  /* A later peers message of our project: the full list, replacing the last. */
  void (*peers)    (WspSignalClient *client, const GArray *peers, gpointer user_data);
  /* An offer, answer or candidate addressed to us, or an error the
   * listener sent without closing (unknown_peer, with to_peer_id). */
  void (*message)  (WspSignalClient *client, const WspSignalMsg *msg, gpointer user_data);
  /* Called once, when the connection is over or could not be made.
   * close_code: the WebSocket close code (4001, 4002, 1000, …) or 0 when no
   * WebSocket close happened (connect failure, dropped TCP). error_code:
   * the code of the listener's last "error" message (e.g. "auth_failed"),
   * or our own reason for closing ("bad_welcome", "bad_message",
   * "timeout"), or NULL. reason: human text. May free the client. */
  void (*closed)   (WspSignalClient *client, guint close_code, const char *error_code,
                    const char *reason, gpointer user_data);
} WspSignalClientCallbacks;

/* Connects to url ("ws://HOST:PORT/api/v1/signal"; no proxy is ever used)
 * and runs the handshake: answers the challenge with hello, checks the
 * welcome mac, else closes (4001, "bad_welcome"). A handshake not finished
 * in handshake_timeout_ms (0 → 15 s) is abandoned ("timeout"). One
 * connection per object: reconnecting is the caller's job (the hub does it
 * with backoff). Fails only for an unparsable URL (WSP_ERROR_CONFIG);
 * everything later is reported through closed. */
WspSignalClient *wsp_signal_client_new (const WspSignalConfig *config, const char *url,
                                        guint handshake_timeout_ms,
                                        const WspSignalClientCallbacks *cb, gpointer user_data,
                                        GError **error);
/* Welcome received and not closed. */
gboolean         wsp_signal_client_is_ready (WspSignalClient *self);
/* The listener's id from its challenge (0 before it). */
WspPeer          wsp_signal_client_get_listener (WspSignalClient *self);
/* The peers the listener last reported (itself included; we are not in
 * it). Valid until the next callback. NULL before welcome. */
const GArray    *wsp_signal_client_get_peers (WspSignalClient *self);
const char      *wsp_signal_client_get_url (WspSignalClient *self);
/* Sends an offer, answer or candidate to msg->to_peer_id through the
 * listener; from_peer_id is set to our id. Fails with WSP_ERROR_CLOSED
 * before welcome or after close, BAD_MESSAGE / TOO_LARGE as
 * wsp_signal_msg_encode. */
gboolean         wsp_signal_client_send (WspSignalClient *self, const WspSignalMsg *msg, GError **error);
/* Closes with 1000 (or cancels the connect); closed is not called after
 * this. Idempotent. */
void             wsp_signal_client_close (WspSignalClient *self);
/* Closes and frees. NULL ok. */
void             wsp_signal_client_free (WspSignalClient *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (WspSignalClient, wsp_signal_client_free)

/* ---- endpoint: one view over both sides ----------------------------------
 *
 * A daemon signals through its own listener (members connected to it) and
 * through every listener it connects to (signal_urls). The hub keeps the
 * set of peers it can signal now and routes a message to a peer by the
 * best path:
 *   MEMBER   the peer is connected to our listener;
 *   LISTENER the peer is a listener we are connected to;
 *   RELAY    the peer is a member of a listener we are connected to (that
 *            listener relays our messages to it).
 * Relaying for others is done by our listener for its own members only.
 * SPEC 7.1 has no multi-hop forwarding: a listener checks from_peer_id
 * against the connection it arrived on, so a daemon cannot pass a
 * message from one of its members on to a listener it is a client of.
 * Two peers can therefore signal only if one's listener has the other as
 * a member or both are members of a common listener; a deployment that
 * needs more gives everyone one shared listener URL (or a future protocol
 * revision adds a forwarding envelope signed by the origin).
 */

typedef enum {
  WSP_SIGNAL_VIA_MEMBER,
  WSP_SIGNAL_VIA_LISTENER,
  WSP_SIGNAL_VIA_RELAY,
} WspSignalVia;

const char *wsp_signal_via_to_string (WspSignalVia via);

typedef struct _WspSignalHub WspSignalHub;

typedef struct {
  /* peer became reachable (it was not). via: its best path now. */
  void (*peer_online)  (WspSignalHub *hub, WspPeer peer, WspSignalVia via, gpointer user_data);
  /* peer is no longer reachable by any path. */
  void (*peer_offline) (WspSignalHub *hub, WspPeer peer, gpointer user_data);
  /* An offer, answer or candidate addressed to us, from whichever side.
   * (A listener's unknown_peer error is logged, not reported: the peers
   * list that follows it says the same.) */
  void (*message)      (WspSignalHub *hub, const WspSignalMsg *msg, gpointer user_data);
} WspSignalHubCallbacks;

WspSignalHub *wsp_signal_hub_new (const WspSignalConfig *config, const WspSignalHubCallbacks *cb,
                                  gpointer user_data);
/* Starts our listener (at most one). Reports the bound port in *out_port
 * (may be NULL). */
gboolean      wsp_signal_hub_listen (WspSignalHub *self, const char *listen, guint16 *out_port,
                                     GError **error);
/* Keeps a client connection to url: connects now and, whenever it closes
 * or fails, again after a backoff of 0.5 s doubling up to 30 s (reset by a
 * welcome). Fails only for an unparsable URL. */
gboolean      wsp_signal_hub_add_url (WspSignalHub *self, const char *url, GError **error);
/* For tests: the backoff bounds (defaults WSP_SIGNAL_BACKOFF_*_MS). */
void          wsp_signal_hub_set_backoff (WspSignalHub *self, guint min_ms, guint max_ms);
/* Whether peer is reachable now, and by which path (out_via may be NULL). */
gboolean      wsp_signal_hub_is_online (WspSignalHub *self, WspPeer peer, WspSignalVia *out_via);
/* Sends an offer, answer or candidate to msg->to_peer_id by its best
 * path; from_peer_id is set to our id. Fails with
 * WSP_SIGNAL_ERROR_UNKNOWN_PEER when the peer is not reachable, else as
 * the underlying send. */
gboolean      wsp_signal_hub_send (WspSignalHub *self, const WspSignalMsg *msg, GError **error);
/* The URL of the listener we are connected to whose id is peer, or NULL
 * (the peer is not a listener we use). Owned by the hub. */
const char   *wsp_signal_hub_get_url (WspSignalHub *self, WspPeer peer);
/* The listener, if any (for its port and members). */
WspSignalServer *wsp_signal_hub_get_server (WspSignalHub *self);
/* Stops everything; no callback runs after this. NULL ok. */
void          wsp_signal_hub_free (WspSignalHub *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (WspSignalHub, wsp_signal_hub_free)

G_END_DECLS
