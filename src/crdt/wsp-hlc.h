/* wsp-hlc.h — hybrid logical clock (SPEC 3): 48 bits of Unix ms, 16 bits
 * of counter. Never goes backwards; always above every hlc observed;
 * counter overflow carries into the milliseconds. Pure; the caller supplies
 * the wall clock so tests are deterministic. Not thread-safe: one owner. */
#pragma once
#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  guint64 last;   /* the last hlc issued or observed */
} WspHlc;

#define WSP_HLC_MS(h)      ((h) >> 16)
#define WSP_HLC_MAKE(ms,c) (((guint64)(ms) << 16) | ((guint64)(c) & 0xffff))

/* Next hlc for a local event at wall time now_ms. */
guint64 wsp_hlc_now (WspHlc *self, guint64 now_ms);
/* Account for a received hlc (every received hlc is accepted). */
void    wsp_hlc_observe (WspHlc *self, guint64 remote);

G_END_DECLS
