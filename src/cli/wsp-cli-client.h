/* wsp-cli-client.h — the CLI's synchronous HTTP client to the local wspd:
 * finds the workspace, reads daemon.json and the token, and sends one
 * request at a time with `Authorization: Bearer <token>` (libsoup 3).
 *
 * Single-threaded, blocking; for the `wsp` binary only.
 */
#pragma once
#include <glib.h>
#include <json-glib/json-glib.h>

#include "workspace/wsp-workspace.h"

G_BEGIN_DECLS

typedef struct _WspClient WspClient;

/* Finds the workspace (explicit dir, $WSP_WORKSPACE, or up from the cwd).
 * Does not need a daemon. */
WspClient  *wsp_client_new (const char *workspace_dir, GError **error);
void        wsp_client_free (WspClient *self);   /* NULL ok */
G_DEFINE_AUTOPTR_CLEANUP_FUNC (WspClient, wsp_client_free)

const WspPaths *wsp_client_paths (WspClient *self);

/* Reads daemon.json and the token. Fails with WSP_ERROR_CLOSED and the
 * message "no daemon is running for this workspace (<root>); start one with
 * `wsp daemon`" when there is no daemon.json or its pid is gone. */
gboolean    wsp_client_connect (WspClient *self, GError **error);
/* The daemon's info (valid after a successful connect). */
const WspDaemonInfo *wsp_client_daemon_info (WspClient *self);

typedef struct {
  guint   status;       /* HTTP status */
  GBytes *body;         /* never NULL after success; may be empty */
} WspResponse;

void wsp_response_clear (WspResponse *r);

/* Sends METHOD PATH (path and query, already escaped) with an optional JSON
 * body. A transport failure to connect is WSP_ERROR_CLOSED with the "no
 * daemon" message; a non-2xx answer fails with the server's error message
 * (WSP_ERROR_NOT_FOUND for 404, WSP_ERROR_GONE for 410, WSP_ERROR_INVALID
 * for other 4xx, WSP_ERROR_FAILED otherwise). On failure *out is left
 * cleared. */
gboolean wsp_client_request (WspClient *self, const char *method, const char *path,
                             JsonNode *body, WspResponse *out, GError **error);

/* Parses a response body as JSON; the root node is owned by the parser. */
JsonParser *wsp_response_parse (const WspResponse *r, GError **error);

/* Appends "&key=value" (or "?key=value" for the first one) to a path,
 * escaping the value. */
void wsp_query_append (GString *path, const char *key, const char *value);

G_END_DECLS
