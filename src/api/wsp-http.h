/* wsp-http.h — the local HTTP API (SPEC 5) on h2o.
 *
 * Threads: wsp_http_start binds the listener and starts one thread that owns
 * the h2o event loop and its own read-only store connection. Writes go to the
 * store's queue; their completions come back to the h2o thread through an
 * h2o multithread receiver, and only then is the request answered (so a 2xx
 * means durable). Store change notifications fan out to SSE clients the same
 * way. Nothing here touches the GLib main loop.
 */
#pragma once
#include <glib.h>
#include "store/wsp-store.h"

G_BEGIN_DECLS

typedef struct _WspHttp WspHttp;

typedef struct {
  const char        *listen;        /* "127.0.0.1:0" → any free port */
  const char        *token;         /* bearer token for /api/ */
  WspStore          *store;         /* borrowed; outlives the server */
  const char        *db_path;       /* for the read-only connection */
  const char        *peer_id;       /* hex, for /health */
  const char        *task_prefix;   /* for new task ids */
  const char *const *statuses;      /* the project's columns, in order */
  /* GET /api/v1/problems: appends {"problems":[…]}; runs on the HTTP
   * thread, must be thread-safe. NULL → always empty. */
  void             (*problems_json) (GString *out, gpointer data);
  /* POST /api/v1/problems/mass-removal {"action":"restore"|"delete"}: runs
   * on the HTTP thread; returns the number of tasks covered, or FALSE with
   * NOT_FOUND (none waiting). NULL → 404. */
  gboolean         (*resolve_mass_removal) (gboolean delete, guint *n_tasks, GError **error, gpointer data);
  gpointer           problems_data;

  /* Peer sync (SPEC 5, 7), filled by the daemon from the sync module. All
   * four run on the HTTP thread and must be thread-safe. NULL = sync is
   * unavailable: GET /api/v1/peers answers {"peers":[]}, /api/v1/sync has
   * "peers":[], POST and DELETE /api/v1/peers answer 501 and wsp_peers is 0.
   *
   * A peer object, as peers_json writes it and `wsp peer list` / `wsp sync`
   * read it (times RFC 3339 UTC, counters plain integers):
   *   {"peer_id": "16 lowercase hex",
   *    "state": "connecting" | "connected" | "retrying",
   *    "via": "member" | "listener" | "relay" | null,
   *    "address": "IP:PORT" | null,        the remote end of the channel
   *    "url": "ws://…" | null,             the signaling URL we dial, if any
   *    "last_seen": "…" | null, "connected_at": "…" | null,
   *    "ops_they_lack": N, "ops_we_lack": N,
   *    "bytes_sent": N, "bytes_received": N,
   *    "last_error": "text" | null} */
  /* Appends a JSON array of peer objects. */
  void             (*peers_json) (GString *out, gpointer data);
  /* Starts (and remembers) a signaling connection to url; INVALID for a
   * bad url. */
  gboolean         (*peer_connect) (const char *url, GError **error, gpointer data);
  /* Drops a peer and stops reconnecting to it; NOT_FOUND when unknown;
   * INVALID for a malformed id. */
  gboolean         (*peer_drop) (const char *peer_id, GError **error, gpointer data);
  /* Connected peers, for /metrics. */
  guint            (*peers_connected) (gpointer data);
  gpointer           sync_data;
} WspHttpOptions;

/* Binds (failing with a clear error if the address is taken) and starts the
 * HTTP thread. */
WspHttp *wsp_http_start (const WspHttpOptions *opts, GError **error);
/* The bound port (after start). */
guint16  wsp_http_port (WspHttp *self);
/* A one-time board login URL: http://127.0.0.1:PORT/?login=<one-time token>. */
char    *wsp_http_board_url (WspHttp *self);
/* Stops accepting, ends SSE streams, waits for in-flight requests (their
 * store writes complete first) and joins the thread. Idempotent. */
void     wsp_http_stop (WspHttp *self);
void     wsp_http_free (WspHttp *self);   /* stops first; NULL ok */
G_DEFINE_AUTOPTR_CLEANUP_FUNC (WspHttp, wsp_http_free)

G_END_DECLS
