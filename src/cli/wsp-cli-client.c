/* wsp-cli-client.c — owns the CLI's connection to the local wspd: the
 * workspace paths, daemon.json, the bearer token and one SoupSession.
 *
 * Single-threaded and blocking (soup_session_send_and_read). `wsp list`
 * must start and answer in a few milliseconds, so the session is built
 * without a proxy resolver or TLS database: either would make GIO load its
 * modules (libproxy, GnuTLS, p11-kit), which costs far more than the
 * request. The daemon is plain HTTP on loopback, so neither is needed.
 */
#include "cli/wsp-cli-client.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

#include <libsoup/soup.h>

#include "common/wsp-common.h"

#define WSP_CLIENT_TIMEOUT_S 60

struct _WspClient {
  WspPaths       paths;
  WspDaemonInfo  info;
  gboolean       connected;
  char          *auth;          /* "Bearer <token>" */
  SoupSession   *session;       /* created on connect */
};

WspClient *
wsp_client_new (const char *workspace_dir, GError **error)
{
  WspClient *self = g_new0 (WspClient, 1);
  if (!wsp_workspace_find (workspace_dir, &self->paths, error))
    {
      wsp_client_free (self);
      return NULL;
    }
  return self;
}

void
wsp_client_free (WspClient *self)
{
  if (self == NULL)
    return;
  wsp_paths_clear (&self->paths);
  wsp_daemon_info_clear (&self->info);
  g_clear_object (&self->session);
  if (self->auth != NULL)
    {
      memset (self->auth, 0, strlen (self->auth));
      g_free (self->auth);
    }
  g_free (self);
}

const WspPaths *
wsp_client_paths (WspClient *self)
{
  return &self->paths;
}

const WspDaemonInfo *
wsp_client_daemon_info (WspClient *self)
{
  return &self->info;
}

static void
set_no_daemon (WspClient *self, GError **error)
{
  g_set_error (error, WSP_ERROR, WSP_ERROR_CLOSED,
               "no daemon is running for this workspace (%s); start one with `wsp daemon`",
               self->paths.root);
}

gboolean
wsp_client_connect (WspClient *self, GError **error)
{
  g_autoptr(GError) local = NULL;

  if (self->connected)
    return TRUE;
  if (!wsp_daemon_info_read (&self->paths, &self->info, &local))
    {
      if (g_error_matches (local, WSP_ERROR, WSP_ERROR_NOT_FOUND))
        set_no_daemon (self, error);
      else
        g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  /* A daemon killed with -9 leaves its daemon.json behind. */
  if (kill ((pid_t) self->info.pid, 0) != 0 && errno == ESRCH)
    {
      set_no_daemon (self, error);
      return FALSE;
    }

  g_autofree char *token = wsp_workspace_load_token (&self->paths, error);
  if (token == NULL)
    return FALSE;
  self->auth = g_strconcat ("Bearer ", token, NULL);
  memset (token, 0, strlen (token));

  self->session = g_object_new (SOUP_TYPE_SESSION,
                                "proxy-resolver", NULL,
                                "tls-database", NULL,
                                "timeout", WSP_CLIENT_TIMEOUT_S,
                                "user-agent", "wsp/" WSP_VERSION,
                                NULL);
  self->connected = TRUE;
  return TRUE;
}

void
wsp_response_clear (WspResponse *r)
{
  if (r == NULL)
    return;
  g_clear_pointer (&r->body, g_bytes_unref);
  r->status = 0;
}

JsonParser *
wsp_response_parse (const WspResponse *r, GError **error)
{
  g_autoptr(JsonParser) parser = json_parser_new_immutable ();
  gsize len = 0;
  const char *data = r->body != NULL ? g_bytes_get_data (r->body, &len) : NULL;

  if (len == 0)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT, "failed to parse the daemon's answer: it is empty");
      return NULL;
    }
  if (!json_parser_load_from_data (parser, data, (gssize) len, error))
    {
      g_prefix_error (error, "failed to parse the daemon's answer: ");
      return NULL;
    }
  return g_steal_pointer (&parser);
}

/* The server's {"error":{"code","message"}} message, or NULL. */
static char *
error_message_from_body (GBytes *body)
{
  gsize len = 0;
  const char *data = body != NULL ? g_bytes_get_data (body, &len) : NULL;
  if (len == 0)
    return NULL;
  g_autoptr(JsonParser) parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, data, (gssize) len, NULL))
    return NULL;
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return NULL;
  JsonNode *err = json_object_get_member (json_node_get_object (root), "error");
  if (err == NULL || !JSON_NODE_HOLDS_OBJECT (err))
    return NULL;
  JsonNode *msg = json_object_get_member (json_node_get_object (err), "message");
  if (msg == NULL || json_node_get_value_type (msg) != G_TYPE_STRING)
    return NULL;
  return g_strdup (json_node_get_string (msg));
}

static gboolean
is_connect_failure (const GError *e)
{
  return g_error_matches (e, G_IO_ERROR, G_IO_ERROR_CONNECTION_REFUSED)
      || g_error_matches (e, G_IO_ERROR, G_IO_ERROR_HOST_UNREACHABLE)
      || g_error_matches (e, G_IO_ERROR, G_IO_ERROR_NETWORK_UNREACHABLE)
      || g_error_matches (e, G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED)
      || g_error_matches (e, G_IO_ERROR, G_IO_ERROR_BROKEN_PIPE)
      || g_error_matches (e, G_RESOLVER_ERROR, G_RESOLVER_ERROR_NOT_FOUND);
}

gboolean
wsp_client_request (WspClient *self, const char *method, const char *path,
                    JsonNode *body, WspResponse *out, GError **error)
{
  g_autoptr(GError) local = NULL;

  memset (out, 0, sizeof *out);
  if (!wsp_client_connect (self, error))
    return FALSE;

  g_autofree char *url = g_strconcat (self->info.url, path, NULL);
  g_autoptr(SoupMessage) msg = soup_message_new (method, url);
  if (msg == NULL)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "failed to build a request: bad URL '%s'", url);
      return FALSE;
    }
  SoupMessageHeaders *headers = soup_message_get_request_headers (msg);
  soup_message_headers_replace (headers, "Authorization", self->auth);
  soup_message_headers_replace (headers, "Accept", "application/json");
  if (body != NULL)
    {
      gsize len = 0;
      char *text = json_to_string (body, FALSE);
      len = strlen (text);
      g_autoptr(GBytes) bytes = g_bytes_new_take (text, len);
      soup_message_set_request_body_from_bytes (msg, "application/json", bytes);
    }

  g_autoptr(GBytes) answer = soup_session_send_and_read (self->session, msg, NULL, &local);
  if (answer == NULL)
    {
      if (is_connect_failure (local))
        set_no_daemon (self, error);
      else
        g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "failed to reach the daemon at '%s': %s",
                     self->info.url, local->message);
      return FALSE;
    }

  guint status = soup_message_get_status (msg);
  if (status < 200 || status > 299)
    {
      g_autofree char *server = error_message_from_body (answer);
      int code = status == 404 ? WSP_ERROR_NOT_FOUND
               : status == 410 ? WSP_ERROR_GONE
               : status >= 400 && status < 500 ? WSP_ERROR_INVALID
               : WSP_ERROR_FAILED;
      if (server != NULL)
        g_set_error_literal (error, WSP_ERROR, code, server);
      else
        g_set_error (error, WSP_ERROR, code, "failed to %s '%s': HTTP %u %s", method, path, status,
                     soup_message_get_reason_phrase (msg) ? soup_message_get_reason_phrase (msg) : "");
      return FALSE;
    }
  out->status = status;
  out->body = g_steal_pointer (&answer);
  return TRUE;
}

void
wsp_query_append (GString *path, const char *key, const char *value)
{
  g_autofree char *escaped = g_uri_escape_string (value, NULL, FALSE);
  g_string_append_c (path, strchr (path->str, '?') != NULL ? '&' : '?');
  g_string_append (path, key);
  g_string_append_c (path, '=');
  g_string_append (path, escaped);
}
