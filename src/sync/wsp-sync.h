/* wsp-sync.h — peer sync (SPEC 7): the daemon's side of it.
 *
 * One WspSync per daemon. It owns the signaling endpoint (our listener and
 * the listeners we connect to), one WebRTC data channel per remote member,
 * and the channel protocol on each: hello and channel-bound auth, the
 * catch-up (every op the other side's clock lacks, in runs cut at signed
 * heads, compressed, flow-controlled), streaming of new ops as the store
 * applies them, acks, pings, retries with backoff. Received runs go to the
 * store (wsp_store_submit_run), which verifies them before keeping
 * anything.
 *
 * Threads: created, driven and stopped on the thread that owns the default
 * GMainContext (the daemon's main loop); every callback of the signaling
 * and WebRTC layers runs there. Reading the op log for a catch-up and
 * encoding/compressing messages runs on one worker thread with its own
 * read-only store connection; results come back to the main context. The
 * functions marked "any thread" are for the HTTP thread.
 */
#pragma once

#include <glib.h>
#include "crdt/wsp-chain.h"
#include "store/wsp-store.h"

G_BEGIN_DECLS

typedef struct _WspSync WspSync;

typedef struct {
  WspStore          *store;          /* borrowed; outlives the WspSync */
  const char        *db_path;        /* for the export reader */
  const char        *project_id;
  const guint8      *secret;         /* 32 bytes, copied */
  const WspIdentity *identity;       /* copied */
  const char        *listen;         /* peer-facing "ADDR:PORT", or NULL = no listener */
  const char *const *signal_urls;    /* listeners to connect to (config) */
  const char        *urls_path;      /* file remembering `wsp peer connect` URLs; NULL = none */
  const char *const *ice_addresses;  /* ICE pinning (SPEC 7.1); NULL = all interfaces */
  const char *const *stun_servers;
  const char *const *turn_servers;
} WspSyncOptions;

/* Starts listening (when listen is set) and connecting. Fails with
 * WSP_ERROR_CONFIG for a bad address/URL, the bind's GIOError, or
 * WSP_ERROR_FAILED when GStreamer's WebRTC elements are missing. */
WspSync  *wsp_sync_start (const WspSyncOptions *opts, GError **error);
/* "ws://HOST:PORT/api/v1/signal" of our listener, or NULL. */
char     *wsp_sync_dup_peer_url (WspSync *self);
/* Graceful stop: sends `err shutdown` on every channel, closes them (after
 * the peer closed, or 1 s), stops signaling, waits (iterating the main
 * context, at most 2.5 s) until no WebRTC connection of the process is
 * alive and no worker result or store completion is pending. (The wait
 * counts every WspRtc in the process: a daemon has one WspSync.)
 * Idempotent. */
void      wsp_sync_stop (WspSync *self);
void      wsp_sync_free (WspSync *self);   /* stops first; NULL ok */
G_DEFINE_AUTOPTR_CLEANUP_FUNC (WspSync, wsp_sync_free)

/* ---- any thread ---------------------------------------------------------- */

/* Appends a JSON array, one object per known peer:
 *   {"peer_id","state":"connecting"|"connected"|"retrying",
 *    "via":"member"|"listener"|"relay"|null, "address":"IP:PORT"|null,
 *    "url": its listener's URL when we connect to it, else null,
 *    "last_seen":RFC 3339|null, "connected_at":…|null,
 *    "ops_they_lack":N, "ops_we_lack":N, "bytes_sent":N, "bytes_received":N,
 *    "last_error":text|null}
 * ops_they_lack / ops_we_lack compare our applied clock with the last clock
 * the peer told us (hello, ack). */
void      wsp_sync_peers_json (WspSync *self, GString *out);
/* Keeps a signaling connection to url (ws:// or wss://), now and after
 * restarts (remembered in urls_path). INVALID for a bad URL. */
gboolean  wsp_sync_connect (WspSync *self, const char *url, GError **error);
/* Closes the channel to peer_id (16 hex) and stops reconnecting to it until
 * the daemon restarts or a `connect` is made. INVALID for a malformed id,
 * NOT_FOUND for a peer we do not know. */
gboolean  wsp_sync_drop (WspSync *self, const char *peer_id, GError **error);
/* Channels authenticated now. */
guint     wsp_sync_count_connected (WspSync *self);

G_END_DECLS
