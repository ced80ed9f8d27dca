/* wsp-invite.c — encode and strict decode of join tokens (SPEC 6).
 *
 * Owns nothing long-lived; pure, any thread (the CLI calls it). Tokens come
 * from users' clipboards and chat messages, so decoding is total: size,
 * alphabet and MessagePack structure (wsp_msgpack_check) are checked before
 * msgpack-c sees the bytes. Buffers that held the secret are wiped.
 */
#include "sync/wsp-invite.h"

#include <string.h>
#include <msgpack.h>
#include <sodium.h>

#include "common/wsp-common.h"
#include "crdt/wsp-op.h"   /* wsp_msgpack_check */

gboolean
wsp_project_id_is_valid (const char *s)
{
  if (s == NULL || strlen (s) != 26)
    return FALSE;
  for (const char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '2' && *p <= '7')))
      return FALSE;
  return TRUE;
}

static gboolean
url_is_valid (const char *url)
{
  g_autoptr (GUri) uri = NULL;
  const char *scheme;

  if (url == NULL || !g_utf8_validate (url, -1, NULL))
    return FALSE;
  uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
  if (uri == NULL)
    return FALSE;
  scheme = g_uri_get_scheme (uri);
  return (g_ascii_strcasecmp (scheme, "ws") == 0 || g_ascii_strcasecmp (scheme, "wss") == 0)
         && g_uri_get_host (uri) != NULL && *g_uri_get_host (uri) != '\0';
}

void
wsp_invite_init (WspInvite *inv)
{
  memset (inv, 0, sizeof *inv);
  inv->peer_urls = g_ptr_array_new_with_free_func (g_free);
}

void
wsp_invite_clear (WspInvite *inv)
{
  if (inv == NULL)
    return;
  g_free (inv->project_id);
  g_clear_pointer (&inv->peer_urls, g_ptr_array_unref);
  sodium_memzero (inv, sizeof *inv);
}

char *
wsp_invite_encode (const WspInvite *inv, GError **error)
{
  msgpack_sbuffer sb;
  msgpack_packer pk;
  guint n = inv->peer_urls != NULL ? inv->peer_urls->len : 0;
  char *b64, *token;

  if (!wsp_project_id_is_valid (inv->project_id))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "invite: invalid project id");
      return NULL;
    }
  for (guint i = 0; i < n; i++)
    if (!url_is_valid (g_ptr_array_index (inv->peer_urls, i)))
      {
        g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "invite: peer URL %u is not a ws:// or wss:// URL", i);
        return NULL;
      }
  msgpack_sbuffer_init (&sb);
  msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map (&pk, 3);
  msgpack_pack_str_with_body (&pk, "p", 1);
  msgpack_pack_str_with_body (&pk, inv->project_id, strlen (inv->project_id));
  msgpack_pack_str_with_body (&pk, "s", 1);
  msgpack_pack_bin_with_body (&pk, inv->secret, sizeof inv->secret);
  msgpack_pack_str_with_body (&pk, "a", 1);
  msgpack_pack_array (&pk, n);
  for (guint i = 0; i < n; i++)
    {
      const char *url = g_ptr_array_index (inv->peer_urls, i);
      msgpack_pack_str_with_body (&pk, url, strlen (url));
    }
  b64 = wsp_base64url_encode ((const guint8 *) sb.data, sb.size);
  sodium_memzero (sb.data, sb.size);
  msgpack_sbuffer_destroy (&sb);
  token = g_strconcat (WSP_INVITE_PREFIX, b64, NULL);
  sodium_memzero (b64, strlen (b64));
  g_free (b64);
  if (strlen (token) > WSP_INVITE_MAX_LEN)
    {
      sodium_memzero (token, strlen (token));
      g_free (token);
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "invite: token longer than %d bytes",
                   WSP_INVITE_MAX_LEN);
      return NULL;
    }
  return token;
}

G_GNUC_PRINTF (2, 3) static gboolean
invalid (GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "invalid invite token: %s", msg);
  return FALSE;
}

static gboolean
from_object (const msgpack_object *root, WspInvite *out, GError **error)
{
  const msgpack_object *p = NULL, *s = NULL, *a = NULL;

  if (root->type != MSGPACK_OBJECT_MAP)
    return invalid (error, "expected a map");
  for (guint32 i = 0; i < root->via.map.size; i++)
    {
      const msgpack_object_kv *kv = &root->via.map.ptr[i];
      const msgpack_object **slot = NULL;
      if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != 1)
        continue;
      switch (kv->key.via.str.ptr[0])
        {
        case 'p': slot = &p; break;
        case 's': slot = &s; break;
        case 'a': slot = &a; break;
        default: break;
        }
      if (slot == NULL)
        continue;
      if (*slot != NULL)
        return invalid (error, "key %c given twice", kv->key.via.str.ptr[0]);
      *slot = &kv->val;
    }
  if (p == NULL || p->type != MSGPACK_OBJECT_STR)
    return invalid (error, "p: expected a project id");
  out->project_id = g_strndup (p->via.str.ptr, p->via.str.size);
  if (p->via.str.size != 26 || !wsp_project_id_is_valid (out->project_id))
    return invalid (error, "p: expected a project id");
  if (s == NULL || s->type != MSGPACK_OBJECT_BIN || s->via.bin.size != sizeof out->secret)
    return invalid (error, "s: expected a 32-byte secret");
  memcpy (out->secret, s->via.bin.ptr, sizeof out->secret);
  if (a == NULL || a->type != MSGPACK_OBJECT_ARRAY)
    return invalid (error, "a: expected an array of peer URLs");
  for (guint32 i = 0; i < a->via.array.size; i++)
    {
      const msgpack_object *e = &a->via.array.ptr[i];
      g_autofree char *url = NULL;
      if (e->type != MSGPACK_OBJECT_STR || memchr (e->via.str.ptr, 0, e->via.str.size) != NULL)
        return invalid (error, "a[%u]: expected a URL string", i);
      url = g_strndup (e->via.str.ptr, e->via.str.size);
      if (!url_is_valid (url))
        return invalid (error, "a[%u]: expected a ws:// or wss:// URL", i);
      g_ptr_array_add (out->peer_urls, g_steal_pointer (&url));
    }
  return TRUE;
}

gboolean
wsp_invite_decode (const char *token, WspInvite *out, GError **error)
{
  const gsize plen = strlen (WSP_INVITE_PREFIX);
  g_autofree char *text = NULL;
  g_autofree guint8 *raw = NULL;
  gsize raw_len = 0;
  msgpack_unpacked up;
  size_t off = 0;
  gboolean ok;

  memset (out, 0, sizeof *out);
  if (token == NULL || strnlen (token, WSP_INVITE_MAX_LEN + 1) > WSP_INVITE_MAX_LEN)
    return invalid (error, "missing or longer than %d bytes", WSP_INVITE_MAX_LEN);
  text = g_strstrip (g_strdup (token));
  if (strncmp (text, WSP_INVITE_PREFIX, plen) != 0)
    return invalid (error, "does not start with %s", WSP_INVITE_PREFIX);
  /* wsp_base64url_decode tolerates padding; tokens never have it. */
  if (strchr (text + plen, '=') != NULL)
    return invalid (error, "padding is not allowed");
  raw = wsp_base64url_decode (text + plen, &raw_len, NULL);
  sodium_memzero (text, strlen (text));
  if (raw == NULL)
    return invalid (error, "not base64url");
  if (!wsp_msgpack_check (raw, raw_len, 8))
    {
      sodium_memzero (raw, raw_len);
      return invalid (error, "not one well-formed MessagePack value");
    }
  wsp_invite_init (out);
  msgpack_unpacked_init (&up);
  ok = msgpack_unpack_next (&up, (const char *) raw, raw_len, &off) == MSGPACK_UNPACK_SUCCESS
       && off == raw_len;
  if (!ok)
    invalid (error, "not one well-formed MessagePack value");
  else
    ok = from_object (&up.data, out, error);
  msgpack_unpacked_destroy (&up);
  sodium_memzero (raw, raw_len);
  if (!ok)
    wsp_invite_clear (out);
  return ok;
}
