/* wsp-log.h — structured logging to stderr, one logfmt line per record
 * (journald-friendly: the level is also given as a syslog "<N>" prefix when
 * stderr is the journal). Installs a GLib log writer; thread-safe. */
#pragma once
#include <glib.h>

G_BEGIN_DECLS

/* "error", "warning", "info" or "debug"; FALSE for anything else. */
gboolean wsp_log_init (const char *level, GError **error);

G_END_DECLS
