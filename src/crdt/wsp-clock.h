/* wsp-clock.h — vector clocks: peer → highest contiguous applied seq.
 * Kept as a sorted array so that encoding and comparison are deterministic.
 * Pure; one owner at a time. */
#pragma once
#include <glib.h>
#include "crdt/wsp-op.h"

G_BEGIN_DECLS

typedef struct {
  WspDot *dots;    /* sorted by peer, seq >= 1 */
  guint   len;
  guint   alloc;
} WspClock;

void     wsp_clock_init (WspClock *self);
void     wsp_clock_clear (WspClock *self);
void     wsp_clock_copy (WspClock *dst, const WspClock *src);
guint64  wsp_clock_get (const WspClock *self, WspPeer peer);      /* 0 if absent */
void     wsp_clock_set (WspClock *self, WspPeer peer, guint64 seq);
/* Entrywise maximum: self[p] = max(self[p], dots[p]). */
void     wsp_clock_merge (WspClock *self, const WspDot *dots, guint n);
/* TRUE when every entry of dots is <= self. */
gboolean wsp_clock_covers (const WspClock *self, const WspDot *dots, guint n);
gboolean wsp_clock_equal (const WspClock *a, const WspClock *b);
/* Entries of self that differ from base (self[p] > base[p]), excluding
 * `exclude`; returns a new array (n in *out_n). For the deps of local ops. */
WspDot  *wsp_clock_diff (const WspClock *self, const WspClock *base, WspPeer exclude, guint *out_n);
/* {"<peer hex>":seq,…} sorted by peer. */
void     wsp_clock_append_json (const WspClock *self, GString *out);
/* MessagePack map blob (str hex key → uint) and back, for storage. */
GBytes  *wsp_clock_encode (const WspClock *self);
gboolean wsp_clock_decode (WspClock *self, const guint8 *data, gsize len, GError **error);

G_END_DECLS
