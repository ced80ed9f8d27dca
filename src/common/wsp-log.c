/* wsp-log.c — the GLib structured log writer of the daemon.
 *
 * Every record becomes one line on stderr:
 *   2026-11-23T10:04:00.123Z level=info domain=wsp-http msg="listening" …
 * with the record's other fields appended as key=value. Records above the
 * configured level are dropped. Runs on whatever thread logs; one fwrite
 * per line keeps lines whole. */
#include "common/wsp-log.h"
#include "common/wsp-common.h"

#include <stdio.h>
#include <string.h>

static GLogLevelFlags max_level = G_LOG_LEVEL_INFO;
static gboolean journal_prefix;

static int
level_rank (GLogLevelFlags level)
{
  if (level & (G_LOG_FLAG_FATAL | G_LOG_LEVEL_ERROR)) return 0;
  if (level & G_LOG_LEVEL_CRITICAL) return 1;
  if (level & G_LOG_LEVEL_WARNING) return 2;
  if (level & G_LOG_LEVEL_MESSAGE) return 3;
  if (level & G_LOG_LEVEL_INFO) return 4;
  return 5;
}

static const char *
level_name (GLogLevelFlags level)
{
  static const char *names[] = { "error", "critical", "warning", "notice", "info", "debug" };
  return names[level_rank (level)];
}

static void
append_value (GString *line, const char *value, gssize len)
{
  if (len < 0)
    len = (gssize) strlen (value);
  gboolean plain = len > 0;
  for (gssize i = 0; i < len && plain; i++)
    if (value[i] <= ' ' || value[i] == '"' || value[i] == '=' || value[i] == '\\')
      plain = FALSE;
  if (plain)
    {
      g_string_append_len (line, value, len);
      return;
    }
  g_string_append_c (line, '"');
  for (gssize i = 0; i < len; i++)
    {
      char c = value[i];
      if (c == '"' || c == '\\')
        g_string_append_c (line, '\\'), g_string_append_c (line, c);
      else if (c == '\n')
        g_string_append (line, "\\n");
      else if ((unsigned char) c < ' ')
        g_string_append_printf (line, "\\x%02x", (unsigned char) c);
      else
        g_string_append_c (line, c);
    }
  g_string_append_c (line, '"');
}

static GLogWriterOutput
writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
  if (level_rank (level) > level_rank (max_level))
    {
      /* G_MESSAGES_DEBUG still works for debugging a single domain. */
      if (!(level & G_LOG_LEVEL_DEBUG) || !g_getenv ("G_MESSAGES_DEBUG"))
        return G_LOG_WRITER_HANDLED;
    }

  g_autoptr (GString) line = g_string_sized_new (160);
  static const int syslog_prio[] = { 3, 2, 4, 5, 6, 7 };
  if (journal_prefix)
    g_string_append_printf (line, "<%d>", syslog_prio[level_rank (level)]);
  char ts[25];
  wsp_format_time_ms ((guint64) (g_get_real_time () / 1000), ts);
  g_string_append_printf (line, "%s level=%s", ts, level_name (level));

  const char *domain = NULL, *message = NULL;
  gssize message_len = -1;
  for (gsize i = 0; i < n_fields; i++)
    {
      if (g_strcmp0 (fields[i].key, "GLIB_DOMAIN") == 0)
        domain = fields[i].value;
      else if (g_strcmp0 (fields[i].key, "MESSAGE") == 0)
        message = fields[i].value, message_len = fields[i].length;
    }
  if (domain)
    g_string_append_printf (line, " domain=%s", domain);
  g_string_append (line, " msg=");
  append_value (line, message ? message : "", message_len);
  for (gsize i = 0; i < n_fields; i++)
    {
      const char *k = fields[i].key;
      if (!k || strcmp (k, "MESSAGE") == 0 || strcmp (k, "GLIB_DOMAIN") == 0 || strcmp (k, "PRIORITY") == 0
          || strncmp (k, "CODE_", 5) == 0 || fields[i].length < -1)
        continue;
      g_autofree char *lower = g_ascii_strdown (k, -1);
      g_string_append_printf (line, " %s=", lower);
      append_value (line, fields[i].value, fields[i].length);
    }
  g_string_append_c (line, '\n');
  fwrite (line->str, 1, line->len, stderr);
  fflush (stderr);
  return G_LOG_WRITER_HANDLED;
}

gboolean
wsp_log_init (const char *level, GError **error)
{
  static const struct { const char *name; GLogLevelFlags flag; } levels[] = {
    { "error", G_LOG_LEVEL_CRITICAL }, { "warning", G_LOG_LEVEL_WARNING },
    { "info", G_LOG_LEVEL_INFO }, { "debug", G_LOG_LEVEL_DEBUG },
  };
  gboolean found = FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS (levels); i++)
    if (g_strcmp0 (level ? level : "info", levels[i].name) == 0)
      max_level = levels[i].flag, found = TRUE;
  if (!found)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                   "[daemon] log_level: '%s' is not one of error, warning, info, debug", level);
      return FALSE;
    }
  journal_prefix = g_log_writer_is_journald (fileno (stderr));
  g_log_set_writer_func (writer, NULL, NULL);
  return TRUE;
}
