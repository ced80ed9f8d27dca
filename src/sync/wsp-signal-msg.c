/* wsp-signal-msg.c — JSON codec of the signaling messages (SPEC 7.1).
 *
 * Owns nothing long-lived; pure, any thread (the signaling WebSocket code
 * calls it on the main context, the fuzzer and unit tests directly).
 *
 * Invariants:
 * - Decoding is total and bounded: the size (256 KiB), UTF-8 and nesting
 *   depth are checked before json-glib (a recursive parser) sees the text,
 *   and every field is type-checked before it is copied. Fuzzed by
 *   fuzz/signal-fuzz.c.
 * - Base64 is accepted only in its canonical form (standard alphabet,
 *   padding, zero pad bits) and exact length, so one value has one text.
 * - Encoding writes "type" first, then the fields in SPEC 7.1 order.
 */
#include "sync/wsp-signal-msg.h"

#include <string.h>
#include <json-glib/json-glib.h>

#include "api/wsp-api-json.h"   /* wsp_api_json_depth_ok */

G_DEFINE_QUARK (wsp-signal-error-quark, wsp_signal_error)

#define MAX_DEPTH 16

static const char *const error_names[] = {
  [WSP_SIGNAL_ERROR_AUTH_FAILED] = "auth_failed",
  [WSP_SIGNAL_ERROR_WRONG_PROJECT] = "wrong_project",
  [WSP_SIGNAL_ERROR_BAD_MESSAGE] = "bad_message",
  [WSP_SIGNAL_ERROR_TOO_LARGE] = "too_large",
  [WSP_SIGNAL_ERROR_UNKNOWN_PEER] = "unknown_peer",
};

const char *
wsp_signal_error_to_string (WspSignalError code)
{
  if ((guint) code >= G_N_ELEMENTS (error_names))
    return "bad_message";
  return error_names[code];
}

gboolean
wsp_signal_error_from_string (const char *s, WspSignalError *out)
{
  if (s == NULL)
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (error_names); i++)
    if (strcmp (s, error_names[i]) == 0)
      {
        if (out != NULL)
          *out = (WspSignalError) i;
        return TRUE;
      }
  return FALSE;
}

static const char *const type_names[] = {
  [WSP_SIGNAL_CHALLENGE] = "challenge",
  [WSP_SIGNAL_HELLO] = "hello",
  [WSP_SIGNAL_WELCOME] = "welcome",
  [WSP_SIGNAL_ERROR_MSG] = "error",
  [WSP_SIGNAL_OFFER] = "webrtc_offer",
  [WSP_SIGNAL_ANSWER] = "webrtc_answer",
  [WSP_SIGNAL_ICE_CANDIDATE] = "webrtc_ice_candidate",
  [WSP_SIGNAL_PEERS] = "peers",
};

const char *
wsp_signal_type_to_string (WspSignalType type)
{
  if ((guint) type >= G_N_ELEMENTS (type_names))
    return "unknown";
  return type_names[type];
}

void
wsp_signal_msg_init (WspSignalMsg *m, WspSignalType type)
{
  memset (m, 0, sizeof *m);
  m->type = type;
  if (type == WSP_SIGNAL_WELCOME || type == WSP_SIGNAL_PEERS)
    m->peers = g_array_new (FALSE, FALSE, sizeof (WspPeer));
}

void
wsp_signal_msg_clear (WspSignalMsg *m)
{
  if (m == NULL)
    return;
  g_free (m->project_id);
  g_clear_pointer (&m->peers, g_array_unref);
  g_free (m->code);
  g_free (m->message);
  g_free (m->sdp);
  g_free (m->candidate);
  g_free (m->sdp_mid);
  memset (m, 0, sizeof *m);
}

/* ---- encoding ----------------------------------------------------------- */

static gboolean
text_ok (const char *s)
{
  return s != NULL && g_utf8_validate (s, -1, NULL);
}

static void
add_str (JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_string_value (b, value);
}

static void
add_peer (JsonBuilder *b, const char *name, WspPeer peer)
{
  char hex[WSP_PEER_HEX_LEN + 1];
  wsp_peer_to_hex (peer, hex);
  add_str (b, name, hex);
}

static void
add_b64 (JsonBuilder *b, const char *name, const guint8 *data, gsize len)
{
  g_autofree char *text = g_base64_encode (data, len);
  add_str (b, name, text);
}

static void
add_peers (JsonBuilder *b, GArray *peers)
{
  json_builder_set_member_name (b, "peers");
  json_builder_begin_array (b);
  for (guint i = 0; peers != NULL && i < peers->len; i++)
    {
      char hex[WSP_PEER_HEX_LEN + 1];
      wsp_peer_to_hex (g_array_index (peers, WspPeer, i), hex);
      json_builder_add_string_value (b, hex);
    }
  json_builder_end_array (b);
}

/* Builds the object; FALSE when a required string is missing. */
static gboolean
build (JsonBuilder *b, const WspSignalMsg *m)
{
  json_builder_begin_object (b);
  add_str (b, "type", wsp_signal_type_to_string (m->type));
  switch (m->type)
    {
    case WSP_SIGNAL_CHALLENGE:
      if (!text_ok (m->project_id))
        return FALSE;
      add_b64 (b, "nonce", m->nonce, sizeof m->nonce);
      add_peer (b, "peer_id", m->peer_id);
      add_str (b, "project_id", m->project_id);
      break;
    case WSP_SIGNAL_HELLO:
      if (!text_ok (m->project_id))
        return FALSE;
      add_peer (b, "from_peer_id", m->from_peer_id);
      add_str (b, "project_id", m->project_id);
      add_b64 (b, "pk", m->pk, sizeof m->pk);
      add_b64 (b, "nonce", m->nonce, sizeof m->nonce);
      add_b64 (b, "mac", m->mac, sizeof m->mac);
      add_b64 (b, "sig", m->sig, sizeof m->sig);
      break;
    case WSP_SIGNAL_WELCOME:
      add_b64 (b, "mac", m->mac, sizeof m->mac);
      add_peers (b, m->peers);
      break;
    case WSP_SIGNAL_ERROR_MSG:
      if (!text_ok (m->code) || (m->message != NULL && !text_ok (m->message)))
        return FALSE;
      add_str (b, "code", m->code);
      add_str (b, "message", m->message != NULL ? m->message : "");
      if (m->has_to_peer_id)
        add_peer (b, "to_peer_id", m->to_peer_id);
      break;
    case WSP_SIGNAL_OFFER:
    case WSP_SIGNAL_ANSWER:
      if (!text_ok (m->sdp))
        return FALSE;
      add_peer (b, "from_peer_id", m->from_peer_id);
      add_peer (b, "to_peer_id", m->to_peer_id);
      add_str (b, "sdp", m->sdp);
      break;
    case WSP_SIGNAL_ICE_CANDIDATE:
      if (!text_ok (m->candidate) || (m->sdp_mid != NULL && !text_ok (m->sdp_mid))
          || m->sdp_mline_index > G_MAXUINT16)
        return FALSE;
      add_peer (b, "from_peer_id", m->from_peer_id);
      add_peer (b, "to_peer_id", m->to_peer_id);
      add_str (b, "candidate", m->candidate);
      json_builder_set_member_name (b, "sdp_mid");
      if (m->sdp_mid != NULL)
        json_builder_add_string_value (b, m->sdp_mid);
      else
        json_builder_add_null_value (b);
      json_builder_set_member_name (b, "sdp_mline_index");
      json_builder_add_int_value (b, m->sdp_mline_index);
      break;
    case WSP_SIGNAL_PEERS:
      if (!text_ok (m->project_id))
        return FALSE;
      add_str (b, "project_id", m->project_id);
      add_peers (b, m->peers);
      break;
    default:
      return FALSE;
    }
  json_builder_end_object (b);
  return TRUE;
}

char *
wsp_signal_msg_encode (const WspSignalMsg *m, gsize *out_len, GError **error)
{
  g_autoptr (JsonBuilder) b = json_builder_new_immutable ();
  g_autoptr (JsonGenerator) gen = NULL;
  g_autoptr (JsonNode) root = NULL;
  g_autofree char *text = NULL;
  gsize len = 0;

  if (!build (b, m))
    {
      g_set_error (error, WSP_SIGNAL_ERROR, WSP_SIGNAL_ERROR_BAD_MESSAGE,
                   "cannot encode %s: missing or invalid field", wsp_signal_type_to_string (m->type));
      return NULL;
    }
  root = json_builder_get_root (b);
  gen = json_generator_new ();
  json_generator_set_root (gen, root);
  text = json_generator_to_data (gen, &len);
  if (len > WSP_SIGNAL_MAX_MESSAGE)
    {
      g_set_error (error, WSP_SIGNAL_ERROR, WSP_SIGNAL_ERROR_TOO_LARGE,
                   "%s message of %" G_GSIZE_FORMAT " bytes exceeds %d", wsp_signal_type_to_string (m->type),
                   len, WSP_SIGNAL_MAX_MESSAGE);
      return NULL;
    }
  if (out_len != NULL)
    *out_len = len;
  return g_steal_pointer (&text);
}

/* ---- decoding ----------------------------------------------------------- */

G_GNUC_PRINTF (2, 3) static gboolean
bad (GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error_literal (error, WSP_SIGNAL_ERROR, WSP_SIGNAL_ERROR_BAD_MESSAGE, msg);
  return FALSE;
}

/* The string of a JSON string node; NULL when n is not one, or when its
 * escapes decode to invalid UTF-8 (json-glib turns a lone "\udc00" into
 * the bytes of a surrogate). */
static const char *
node_str (JsonNode *n)
{
  const char *s;
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  s = json_node_get_string (n);
  return s != NULL && g_utf8_validate (s, -1, NULL) ? s : NULL;
}

static const char *
get_str (JsonObject *o, const char *name)
{
  return node_str (json_object_get_member (o, name));
}

static gboolean
need_str (JsonObject *o, const char *name, gboolean non_empty, char **out, GError **error)
{
  const char *s = get_str (o, name);
  if (s == NULL || (non_empty && *s == '\0'))
    return bad (error, "%s: expected a%s string", name, non_empty ? " non-empty" : "");
  *out = g_strdup (s);
  return TRUE;
}

static gboolean
parse_peer (const char *s, WspPeer *out)
{
  return s != NULL && wsp_peer_from_hex (s, strlen (s), out);
}

static gboolean
need_peer (JsonObject *o, const char *name, WspPeer *out, GError **error)
{
  if (!parse_peer (get_str (o, name), out))
    return bad (error, "%s: expected a peer id (16 lowercase hex chars)", name);
  return TRUE;
}

/* Canonical standard base64 of exactly n bytes. g_base64_decode skips
 * characters outside the alphabet, so the text is re-encoded and must come
 * back identical. */
static gboolean
need_b64 (JsonObject *o, const char *name, guint8 *out, gsize n, GError **error)
{
  const char *s = get_str (o, name);
  g_autofree guchar *raw = NULL;
  g_autofree char *again = NULL;
  gsize len = 0;

  if (s == NULL || strlen (s) != (n + 2) / 3 * 4)
    return bad (error, "%s: expected base64 of %" G_GSIZE_FORMAT " bytes", name, n);
  raw = g_base64_decode (s, &len);
  if (len != n)
    return bad (error, "%s: expected base64 of %" G_GSIZE_FORMAT " bytes", name, n);
  again = g_base64_encode (raw, len);
  if (strcmp (again, s) != 0)
    return bad (error, "%s: not canonical base64", name);
  memcpy (out, raw, n);
  return TRUE;
}

static gboolean
need_peers (JsonObject *o, GArray *peers, GError **error)
{
  JsonNode *n = json_object_get_member (o, "peers");
  JsonArray *a;

  if (n == NULL || !JSON_NODE_HOLDS_ARRAY (n))
    return bad (error, "peers: expected an array");
  a = json_node_get_array (n);
  for (guint i = 0; i < json_array_get_length (a); i++)
    {
      JsonNode *e = json_array_get_element (a, i);
      WspPeer p;
      if (!parse_peer (node_str (e), &p))
        return bad (error, "peers[%u]: expected a peer id", i);
      g_array_append_val (peers, p);
    }
  return TRUE;
}

static gboolean
decode_fields (JsonObject *o, WspSignalMsg *m, GError **error)
{
  switch (m->type)
    {
    case WSP_SIGNAL_CHALLENGE:
      return need_b64 (o, "nonce", m->nonce, sizeof m->nonce, error)
             && need_peer (o, "peer_id", &m->peer_id, error)
             && need_str (o, "project_id", TRUE, &m->project_id, error);
    case WSP_SIGNAL_HELLO:
      return need_peer (o, "from_peer_id", &m->from_peer_id, error)
             && need_str (o, "project_id", TRUE, &m->project_id, error)
             && need_b64 (o, "pk", m->pk, sizeof m->pk, error)
             && need_b64 (o, "nonce", m->nonce, sizeof m->nonce, error)
             && need_b64 (o, "mac", m->mac, sizeof m->mac, error)
             && need_b64 (o, "sig", m->sig, sizeof m->sig, error);
    case WSP_SIGNAL_WELCOME:
      return need_b64 (o, "mac", m->mac, sizeof m->mac, error) && need_peers (o, m->peers, error);
    case WSP_SIGNAL_ERROR_MSG:
      if (!need_str (o, "code", TRUE, &m->code, error) || !need_str (o, "message", FALSE, &m->message, error))
        return FALSE;
      if (json_object_has_member (o, "to_peer_id"))
        {
          if (!need_peer (o, "to_peer_id", &m->to_peer_id, error))
            return FALSE;
          m->has_to_peer_id = TRUE;
        }
      return TRUE;
    case WSP_SIGNAL_OFFER:
    case WSP_SIGNAL_ANSWER:
      return need_peer (o, "from_peer_id", &m->from_peer_id, error)
             && need_peer (o, "to_peer_id", &m->to_peer_id, error)
             && need_str (o, "sdp", TRUE, &m->sdp, error);
    case WSP_SIGNAL_ICE_CANDIDATE:
      {
        JsonNode *mid, *idx;
        gint64 v;

        if (!need_peer (o, "from_peer_id", &m->from_peer_id, error)
            || !need_peer (o, "to_peer_id", &m->to_peer_id, error)
            || !need_str (o, "candidate", FALSE, &m->candidate, error))
          return FALSE;
        mid = json_object_get_member (o, "sdp_mid");
        if (mid != NULL && JSON_NODE_HOLDS_NULL (mid))
          m->sdp_mid = NULL;
        else if (!need_str (o, "sdp_mid", FALSE, &m->sdp_mid, error))
          return g_prefix_error (error, "(or null) "), FALSE;
        idx = json_object_get_member (o, "sdp_mline_index");
        if (idx == NULL || !JSON_NODE_HOLDS_VALUE (idx) || json_node_get_value_type (idx) != G_TYPE_INT64
            || (v = json_node_get_int (idx)) < 0 || v > G_MAXUINT16)
          return bad (error, "sdp_mline_index: expected an integer 0..65535");
        m->sdp_mline_index = (guint) v;
        return TRUE;
      }
    case WSP_SIGNAL_PEERS:
      return need_str (o, "project_id", TRUE, &m->project_id, error) && need_peers (o, m->peers, error);
    default:
      return bad (error, "unknown type");
    }
}

gboolean
wsp_signal_msg_decode (const char *data, gsize len, WspSignalMsg *out, GError **error)
{
  g_autoptr (JsonParser) parser = NULL;
  g_autoptr (GError) local = NULL;
  JsonNode *root;
  JsonObject *o;
  const char *type;
  guint t;

  memset (out, 0, sizeof *out);
  if (len > WSP_SIGNAL_MAX_MESSAGE)
    {
      g_set_error (error, WSP_SIGNAL_ERROR, WSP_SIGNAL_ERROR_TOO_LARGE,
                   "signaling message of %" G_GSIZE_FORMAT " bytes exceeds %d", len, WSP_SIGNAL_MAX_MESSAGE);
      return FALSE;
    }
  /* g_utf8_validate_len also refuses NUL bytes, which JSON text never holds. */
  if (data == NULL || len == 0 || !g_utf8_validate_len (data, len, NULL))
    return bad (error, "expected UTF-8 JSON text");
  if (!wsp_api_json_depth_ok (data, len, MAX_DEPTH))
    return bad (error, "JSON nested too deep");
  parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, data, (gssize) len, &local))
    return bad (error, "invalid JSON: %s", local->message);
  root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return bad (error, "expected a JSON object");
  o = json_node_get_object (root);
  type = get_str (o, "type");
  if (type == NULL)
    return bad (error, "type: expected a string");
  for (t = 0; t < G_N_ELEMENTS (type_names); t++)
    if (strcmp (type, type_names[t]) == 0)
      break;
  if (t == G_N_ELEMENTS (type_names))
    return bad (error, "type: unknown message type");
  wsp_signal_msg_init (out, (WspSignalType) t);
  if (!decode_fields (o, out, error))
    {
      g_prefix_error (error, "%s: ", type_names[t]);
      wsp_signal_msg_clear (out);
      return FALSE;
    }
  return TRUE;
}
