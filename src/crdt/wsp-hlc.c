/* wsp-hlc.c — the hybrid logical clock of SPEC 3.
 *
 * Owns nothing but `last`. Invariants: every value returned by
 * wsp_hlc_now() is strictly above every value previously returned or
 * observed (so a causally later op always carries a larger hlc), and the
 * clock never moves backwards even when the wall clock does. The counter
 * is the low 16 bits; incrementing the packed value carries an overflowing
 * counter into the milliseconds for free.
 */
#include "crdt/wsp-hlc.h"

guint64
wsp_hlc_now (WspHlc *self, guint64 now_ms)
{
  /* Wall clocks past 2^48 ms (year ~10889) cannot be packed; saturate. */
  guint64 ms = now_ms > G_GUINT64_CONSTANT (0xffffffffffff) ? G_GUINT64_CONSTANT (0xffffffffffff) : now_ms;
  guint64 candidate = WSP_HLC_MAKE (ms, 0);

  if (candidate > self->last)
    self->last = candidate;
  else if (self->last < G_MAXUINT64)
    self->last++;
  /* else: a peer sent the largest possible hlc; there is nothing above it,
   * so we reuse it (the (hlc, peer, seq) order still breaks ties). */
  return self->last;
}

void
wsp_hlc_observe (WspHlc *self, guint64 remote)
{
  if (remote > self->last)
    self->last = remote;
}
