/* wsp-clock.c — vector clocks as sorted arrays of (peer, seq) dots.
 *
 * Invariants: dots are sorted by peer, unique, and every seq is >= 1 (an
 * entry set to 0 is removed), so two equal clocks have identical arrays and
 * identical encodings. Lookups are binary searches; merges are linear.
 */
#include "crdt/wsp-clock.h"

#include <string.h>
#include <msgpack.h>

void
wsp_clock_init (WspClock *self)
{
  self->dots = NULL;
  self->len = 0;
  self->alloc = 0;
}

void
wsp_clock_clear (WspClock *self)
{
  g_clear_pointer (&self->dots, g_free);
  self->len = 0;
  self->alloc = 0;
}

void
wsp_clock_copy (WspClock *dst, const WspClock *src)
{
  if (dst == src)
    return;
  g_free (dst->dots);
  dst->len = src->len;
  dst->alloc = src->len;
  dst->dots = src->len > 0 ? g_memdup2 (src->dots, sizeof (WspDot) * src->len) : NULL;
}

/* Index of peer, or of where it would be inserted (with *found FALSE). */
static guint
clock_find (const WspClock *self, WspPeer peer, gboolean *found)
{
  guint lo = 0, hi = self->len;

  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;
      if (self->dots[mid].peer < peer)
        lo = mid + 1;
      else
        hi = mid;
    }
  *found = lo < self->len && self->dots[lo].peer == peer;
  return lo;
}

guint64
wsp_clock_get (const WspClock *self, WspPeer peer)
{
  gboolean found;
  guint i;

  if (self == NULL || self->len == 0)
    return 0;
  i = clock_find (self, peer, &found);
  return found ? self->dots[i].seq : 0;
}

void
wsp_clock_set (WspClock *self, WspPeer peer, guint64 seq)
{
  gboolean found;
  guint i = clock_find (self, peer, &found);

  if (found)
    {
      if (seq > 0)
        self->dots[i].seq = seq;
      else
        {
          memmove (&self->dots[i], &self->dots[i + 1], sizeof (WspDot) * (self->len - i - 1));
          self->len--;
        }
      return;
    }
  if (seq == 0)
    return;
  if (self->len == self->alloc)
    {
      self->alloc = self->alloc < 4 ? 4 : self->alloc * 2;
      self->dots = g_renew (WspDot, self->dots, self->alloc);
    }
  memmove (&self->dots[i + 1], &self->dots[i], sizeof (WspDot) * (self->len - i));
  self->dots[i].peer = peer;
  self->dots[i].seq = seq;
  self->len++;
}

void
wsp_clock_merge (WspClock *self, const WspDot *dots, guint n)
{
  /* n is small in practice (deps carry only changed entries). */
  for (guint i = 0; i < n; i++)
    if (dots[i].seq > wsp_clock_get (self, dots[i].peer))
      wsp_clock_set (self, dots[i].peer, dots[i].seq);
}

gboolean
wsp_clock_covers (const WspClock *self, const WspDot *dots, guint n)
{
  for (guint i = 0; i < n; i++)
    if (dots[i].seq > wsp_clock_get (self, dots[i].peer))
      return FALSE;
  return TRUE;
}

gboolean
wsp_clock_equal (const WspClock *a, const WspClock *b)
{
  return a->len == b->len && (a->len == 0 || memcmp (a->dots, b->dots, sizeof (WspDot) * a->len) == 0);
}

WspDot *
wsp_clock_diff (const WspClock *self, const WspClock *base, WspPeer exclude, guint *out_n)
{
  WspDot *out = g_new (WspDot, self->len > 0 ? self->len : 1);
  guint n = 0;

  for (guint i = 0; i < self->len; i++)
    {
      const WspDot *d = &self->dots[i];
      if (d->peer != exclude && d->seq > wsp_clock_get (base, d->peer))
        out[n++] = *d;
    }
  *out_n = n;
  return out;
}

void
wsp_clock_append_json (const WspClock *self, GString *out)
{
  char hex[WSP_PEER_HEX_LEN + 1];

  g_string_append_c (out, '{');
  for (guint i = 0; i < self->len; i++)
    {
      wsp_peer_to_hex (self->dots[i].peer, hex);
      g_string_append_printf (out, "%s\"%s\":%" G_GUINT64_FORMAT, i > 0 ? "," : "", hex, self->dots[i].seq);
    }
  g_string_append_c (out, '}');
}

GBytes *
wsp_clock_encode (const WspClock *self)
{
  msgpack_sbuffer sbuf;
  msgpack_packer pk;
  char hex[WSP_PEER_HEX_LEN + 1];

  msgpack_sbuffer_init (&sbuf);
  msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
  msgpack_pack_map (&pk, self->len);
  for (guint i = 0; i < self->len; i++)
    {
      wsp_peer_to_hex (self->dots[i].peer, hex);
      msgpack_pack_str_with_body (&pk, hex, WSP_PEER_HEX_LEN);
      msgpack_pack_uint64 (&pk, self->dots[i].seq);
    }
  /* sbuffer memory comes from malloc; hand it to GBytes without a copy. */
  return wsp_msgpack_sbuffer_take (&sbuf);
}

static gboolean
clock_from_object (WspClock *out, const msgpack_object *obj)
{
  if (obj->type != MSGPACK_OBJECT_MAP)
    return FALSE;
  for (guint32 i = 0; i < obj->via.map.size; i++)
    {
      const msgpack_object_kv *kv = &obj->via.map.ptr[i];
      WspPeer peer;
      if (kv->key.type != MSGPACK_OBJECT_STR
          || !wsp_peer_from_hex (kv->key.via.str.ptr, kv->key.via.str.size, &peer)
          || kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER || kv->val.via.u64 == 0
          || wsp_clock_get (out, peer) != 0)
        return FALSE;
      wsp_clock_set (out, peer, kv->val.via.u64);
    }
  return TRUE;
}

gboolean
wsp_clock_decode (WspClock *self, const guint8 *data, gsize len, GError **error)
{
  msgpack_unpacked msg;
  size_t off = 0;
  gboolean ok = FALSE;
  WspClock tmp;

  wsp_clock_init (&tmp);
  msgpack_unpacked_init (&msg);
  /* The pre-check bounds what msgpack-c allocates from declared counts. */
  if (wsp_msgpack_check (data, len, 1)
      && msgpack_unpack_next (&msg, (const char *) data, len, &off) == MSGPACK_UNPACK_SUCCESS
      && off == len)
    ok = clock_from_object (&tmp, &msg.data);
  msgpack_unpacked_destroy (&msg);
  if (!ok)
    {
      wsp_clock_clear (&tmp);
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT, "failed to decode vector clock");
      return FALSE;
    }
  wsp_clock_clear (self);
  *self = tmp;
  return TRUE;
}
