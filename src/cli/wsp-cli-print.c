/* wsp-cli-print.c — owns how `wsp` shows API answers to people: the list
 * table, one task with its comments and conflicts, history, search hits,
 * the peer table and sync status.
 *
 * Everything printed from the API goes through wsp_sanitize: task text may
 * come from any peer of the project, and a title holding an escape sequence
 * must not be able to rewrite the user's terminal. Column widths count
 * characters, not bytes, so non-ASCII titles stay aligned.
 */
#include "cli/wsp-cli-print.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *
wsp_json_get_string (JsonObject *obj, const char *name)
{
  JsonNode *n = obj != NULL ? json_object_get_member (obj, name) : NULL;
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (n);
}

gint64
wsp_json_get_int (JsonObject *obj, const char *name, gint64 fallback)
{
  JsonNode *n = obj != NULL ? json_object_get_member (obj, name) : NULL;
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n))
    return fallback;
  if (json_node_get_value_type (n) == G_TYPE_INT64)
    return json_node_get_int (n);
  if (json_node_get_value_type (n) == G_TYPE_DOUBLE)
    return (gint64) json_node_get_double (n);
  return fallback;
}

JsonArray *
wsp_json_get_array (JsonObject *obj, const char *name)
{
  JsonNode *n = obj != NULL ? json_object_get_member (obj, name) : NULL;
  if (n == NULL || !JSON_NODE_HOLDS_ARRAY (n))
    return NULL;
  return json_node_get_array (n);
}

char *
wsp_sanitize (const char *s, gboolean multiline)
{
  if (s == NULL)
    return g_strdup ("");
  g_autofree char *valid = g_utf8_make_valid (s, -1);
  GString *out = g_string_sized_new (strlen (valid));
  for (const char *p = valid; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      if (multiline && (c == '\n' || c == '\t'))
        g_string_append_unichar (out, c);
      else if (c == '\n' || c == '\t' || c == '\r')
        g_string_append_c (out, ' ');
      else if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0))
        g_string_append_c (out, '?');
      else
        g_string_append_unichar (out, c);
    }
  return g_string_free (out, FALSE);
}

/* Prints S left-aligned in WIDTH characters. */
static void
print_padded (const char *s, guint width)
{
  glong n = g_utf8_strlen (s, -1);
  fputs (s, stdout);
  for (glong i = n; i < (glong) width; i++)
    fputc (' ', stdout);
}

/* "a, b, c" of an array of strings, sanitised; NULL when empty. */
static char *
join_strings (JsonArray *arr)
{
  if (arr == NULL || json_array_get_length (arr) == 0)
    return NULL;
  GString *out = g_string_new (NULL);
  for (guint i = 0; i < json_array_get_length (arr); i++)
    {
      JsonNode *n = json_array_get_element (arr, i);
      if (json_node_get_value_type (n) != G_TYPE_STRING)
        continue;
      g_autofree char *clean = wsp_sanitize (json_node_get_string (n), FALSE);
      if (out->len > 0)
        g_string_append (out, ", ");
      g_string_append (out, clean);
    }
  return g_string_free (out, FALSE);
}

void
wsp_print_table (guint n_cols, const char *const *headers, GPtrArray *rows)
{
  g_autofree guint *width = g_new0 (guint, n_cols);

  for (guint c = 0; c < n_cols; c++)
    width[c] = (guint) g_utf8_strlen (headers[c], -1);
  for (guint r = 0; r < rows->len; r++)
    {
      char **row = g_ptr_array_index (rows, r);
      for (guint c = 0; c < n_cols; c++)
        width[c] = MAX (width[c], (guint) g_utf8_strlen (row[c], -1));
    }

  /* The last column is not padded: no trailing spaces. */
  for (guint c = 0; c + 1 < n_cols; c++)
    print_padded (headers[c], width[c] + 2);
  printf ("%s\n", headers[n_cols - 1]);
  for (guint r = 0; r < rows->len; r++)
    {
      char **row = g_ptr_array_index (rows, r);
      for (guint c = 0; c + 1 < n_cols; c++)
        print_padded (row[c], width[c] + 2);
      printf ("%s\n", row[n_cols - 1]);
    }
}

void
wsp_print_task_table (JsonArray *tasks)
{
  static const char *const headers[] = { "ID", "STATUS", "PRI", "TITLE" };
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);

  for (guint i = 0; i < json_array_get_length (tasks); i++)
    {
      JsonObject *t = json_array_get_object_element (tasks, i);
      if (t == NULL)
        continue;
      const char *assignee = wsp_json_get_string (t, "assignee");
      g_autofree char *labels = join_strings (wsp_json_get_array (t, "labels"));
      GString *title = g_string_new (NULL);
      g_autofree char *clean_title = wsp_sanitize (wsp_json_get_string (t, "title"), FALSE);
      g_string_append (title, clean_title);
      if (assignee != NULL && *assignee != '\0')
        {
          g_autofree char *clean = wsp_sanitize (assignee, FALSE);
          g_string_append_printf (title, "  @%s", clean);
        }
      if (labels != NULL)
        g_string_append_printf (title, "  [%s]", labels);

      char **row = g_new0 (char *, G_N_ELEMENTS (headers) + 1);
      row[0] = wsp_sanitize (wsp_json_get_string (t, "id"), FALSE);
      row[1] = wsp_sanitize (wsp_json_get_string (t, "status"), FALSE);
      row[2] = g_strdup_printf ("%" G_GINT64_FORMAT, wsp_json_get_int (t, "priority", 2));
      row[3] = g_string_free (title, FALSE);
      g_ptr_array_add (rows, row);
    }
  wsp_print_table (G_N_ELEMENTS (headers), headers, rows);
}

char *
wsp_format_ago (const char *rfc3339)
{
  if (rfc3339 == NULL || *rfc3339 == '\0')
    return g_strdup ("never");
  g_autoptr(GDateTime) then = g_date_time_new_from_iso8601 (rfc3339, NULL);
  if (then == NULL)
    return wsp_sanitize (rfc3339, FALSE);
  g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
  /* A peer's clock may run ahead of ours: never "in the future". */
  gint64 s = MAX (g_date_time_difference (now, then) / G_TIME_SPAN_SECOND, 0);
  if (s < 60)
    return g_strdup_printf ("%" G_GINT64_FORMAT "s ago", s);
  if (s < 3600)
    return g_strdup_printf ("%" G_GINT64_FORMAT "m ago", s / 60);
  if (s < 86400)
    return g_strdup_printf ("%" G_GINT64_FORMAT "h ago", s / 3600);
  return g_strdup_printf ("%" G_GINT64_FORMAT "d ago", s / 86400);
}

char *
wsp_format_bytes (gint64 n)
{
  static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
  if (n < 1024)
    return g_strdup_printf ("%" G_GINT64_FORMAT " B", MAX (n, 0));
  double v = (double) n / 1024;
  guint u = 0;
  while (v >= 1024 && u + 1 < G_N_ELEMENTS (units))
    {
      v /= 1024;
      u++;
    }
  return g_strdup_printf ("%.1f %s", v, units[u]);
}

/* A string member sanitised, or "-" when absent or null. */
static char *
string_or_dash (JsonObject *obj, const char *name)
{
  const char *v = wsp_json_get_string (obj, name);
  return v != NULL && *v != '\0' ? wsp_sanitize (v, FALSE) : g_strdup ("-");
}

void
wsp_print_peer_table (JsonArray *peers)
{
  static const char *const headers[] = {
    "PEER", "STATE", "VIA", "ADDRESS", "LAST SEEN", "THEY LACK", "WE LACK", "SENT", "RECEIVED",
  };
  g_autoptr(GPtrArray) rows = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);

  for (guint i = 0; i < json_array_get_length (peers); i++)
    {
      JsonObject *p = json_array_get_object_element (peers, i);
      if (p == NULL)
        continue;
      char **row = g_new0 (char *, G_N_ELEMENTS (headers) + 1);
      row[0] = string_or_dash (p, "peer_id");
      row[1] = string_or_dash (p, "state");
      row[2] = string_or_dash (p, "via");
      /* Before a channel exists the URL we dial says more than nothing. */
      row[3] = string_or_dash (p, wsp_json_get_string (p, "address") != NULL ? "address" : "url");
      row[4] = wsp_format_ago (wsp_json_get_string (p, "last_seen"));
      row[5] = g_strdup_printf ("%" G_GINT64_FORMAT, wsp_json_get_int (p, "ops_they_lack", 0));
      row[6] = g_strdup_printf ("%" G_GINT64_FORMAT, wsp_json_get_int (p, "ops_we_lack", 0));
      row[7] = wsp_format_bytes (wsp_json_get_int (p, "bytes_sent", 0));
      row[8] = wsp_format_bytes (wsp_json_get_int (p, "bytes_received", 0));
      g_ptr_array_add (rows, row);
    }
  wsp_print_table (G_N_ELEMENTS (headers), headers, rows);
}

void
wsp_print_sync (JsonObject *root)
{
  g_autofree char *self_id = string_or_dash (root, "peer_id");
  printf ("peer %s\n", self_id);

  /* The clock, by peer id (object member order is not meaningful). */
  JsonNode *clock_node = json_object_get_member (root, "clock");
  JsonObject *clock = clock_node != NULL && JSON_NODE_HOLDS_OBJECT (clock_node)
                        ? json_node_get_object (clock_node) : NULL;
  GList *members = clock != NULL ? json_object_get_members (clock) : NULL;
  members = g_list_sort (members, (GCompareFunc) strcmp);
  printf ("clock:%s\n", members == NULL ? " empty" : "");
  for (GList *l = members; l != NULL; l = l->next)
    {
      g_autofree char *id = wsp_sanitize (l->data, FALSE);
      printf ("  %s: %" G_GINT64_FORMAT "\n", id, wsp_json_get_int (clock, l->data, 0));
    }
  g_list_free (members);

  JsonArray *peers = wsp_json_get_array (root, "peers");
  guint n = peers != NULL ? json_array_get_length (peers) : 0;
  printf ("peers:%s\n", n == 0 ? " none" : "");
  for (guint i = 0; i < n; i++)
    {
      JsonObject *p = json_array_get_object_element (peers, i);
      if (p == NULL)
        continue;
      g_autofree char *id = string_or_dash (p, "peer_id");
      g_autofree char *state = string_or_dash (p, "state");
      gint64 they = wsp_json_get_int (p, "ops_they_lack", 0);
      gint64 we = wsp_json_get_int (p, "ops_we_lack", 0);
      printf ("  %s  %-10s  ", id, state);
      if (they == 0 && we == 0 && g_strcmp0 (wsp_json_get_string (p, "state"), "connected") == 0)
        printf ("in sync\n");
      else
        printf ("they lack %" G_GINT64_FORMAT ", we lack %" G_GINT64_FORMAT "\n", they, we);
    }
}

static void
print_field (const char *name, const char *value)
{
  g_autofree char *clean = value != NULL && *value != '\0' ? wsp_sanitize (value, FALSE) : g_strdup ("-");
  printf ("%-11s %s\n", name, clean);
}

/* Prints TEXT indented by INDENT spaces on every line. */
static void
print_indented (const char *text, const char *indent)
{
  g_autofree char *clean = wsp_sanitize (text, TRUE);
  g_auto(GStrv) lines = g_strsplit (clean, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      if (lines[i + 1] == NULL && *lines[i] == '\0' && i > 0)
        break;   /* the trailing newline */
      printf ("%s%s\n", *lines[i] != '\0' ? indent : "", lines[i]);
    }
}

void
wsp_print_task (JsonObject *task)
{
  g_autofree char *id = wsp_sanitize (wsp_json_get_string (task, "id"), FALSE);
  g_autofree char *title = wsp_sanitize (wsp_json_get_string (task, "title"), FALSE);
  g_autofree char *priority = g_strdup_printf ("%" G_GINT64_FORMAT, wsp_json_get_int (task, "priority", 2));
  g_autofree char *labels = join_strings (wsp_json_get_array (task, "labels"));
  g_autofree char *deps = join_strings (wsp_json_get_array (task, "depends_on"));
  g_autofree char *position = NULL;
  JsonNode *pos = json_object_get_member (task, "position");

  if (pos != NULL && JSON_NODE_HOLDS_VALUE (pos))
    {
      if (json_node_get_value_type (pos) == G_TYPE_INT64)
        position = g_strdup_printf ("%" G_GINT64_FORMAT, json_node_get_int (pos));
      else if (json_node_get_value_type (pos) == G_TYPE_DOUBLE)
        position = g_strdup_printf ("%g", json_node_get_double (pos));
    }

  printf ("%s  %s\n", id, title);
  print_field ("status:", wsp_json_get_string (task, "status"));
  print_field ("priority:", priority);
  print_field ("assignee:", wsp_json_get_string (task, "assignee"));
  print_field ("labels:", labels);
  print_field ("depends on:", deps);
  print_field ("parent:", wsp_json_get_string (task, "parent"));
  print_field ("due:", wsp_json_get_string (task, "due"));
  print_field ("position:", position);
  print_field ("created:", wsp_json_get_string (task, "created_at"));
  print_field ("created by:", wsp_json_get_string (task, "created_by"));
  print_field ("updated:", wsp_json_get_string (task, "updated_at"));

  const char *body = wsp_json_get_string (task, "body");
  if (body != NULL && *body != '\0')
    {
      fputc ('\n', stdout);
      print_indented (body, "    ");
    }

  JsonArray *comments = wsp_json_get_array (task, "comments");
  if (comments != NULL && json_array_get_length (comments) > 0)
    {
      printf ("\ncomments (%u):\n", json_array_get_length (comments));
      for (guint i = 0; i < json_array_get_length (comments); i++)
        {
          JsonObject *c = json_array_get_object_element (comments, i);
          g_autofree char *author = wsp_sanitize (wsp_json_get_string (c, "author"), FALSE);
          g_autofree char *at = wsp_sanitize (wsp_json_get_string (c, "created_at"), FALSE);
          printf ("  %s  %s\n", at, author);
          print_indented (wsp_json_get_string (c, "body"), "    ");
        }
    }

  JsonArray *conflicts = wsp_json_get_array (task, "conflicts");
  if (conflicts != NULL && json_array_get_length (conflicts) > 0)
    {
      printf ("\nconflicts (%u): concurrent edits not shown above\n", json_array_get_length (conflicts));
      for (guint i = 0; i < json_array_get_length (conflicts); i++)
        {
          JsonObject *c = json_array_get_object_element (conflicts, i);
          g_autofree char *field = wsp_sanitize (wsp_json_get_string (c, "field"), FALSE);
          g_autofree char *peer = wsp_sanitize (wsp_json_get_string (c, "peer"), FALSE);
          g_autofree char *at = wsp_sanitize (wsp_json_get_string (c, "at"), FALSE);
          printf ("  %s  %s  from %s:\n", at, field, peer);
          print_indented (wsp_json_get_string (c, "value"), "    ");
        }
    }
}

void
wsp_print_history (JsonArray *history)
{
  for (guint i = 0; i < json_array_get_length (history); i++)
    {
      JsonObject *e = json_array_get_object_element (history, i);
      if (e == NULL)
        continue;
      g_autofree char *at = wsp_sanitize (wsp_json_get_string (e, "at"), FALSE);
      g_autofree char *peer = wsp_sanitize (wsp_json_get_string (e, "peer"), FALSE);
      g_autofree char *type = wsp_sanitize (wsp_json_get_string (e, "type"), FALSE);
      JsonNode *data = json_object_get_member (e, "data");
      g_autofree char *data_json = data != NULL ? json_to_string (data, FALSE) : g_strdup ("null");
      g_autofree char *data_clean = wsp_sanitize (data_json, FALSE);
      printf ("%s  %s  %4" G_GINT64_FORMAT "  %-12s %s\n", at, peer, wsp_json_get_int (e, "seq", 0),
              type, data_clean);
    }
}

/* The API's snippets are HTML fragments (escaped text, matches in
 * <b>…</b>): on a terminal the matches become bold, elsewhere plain. */
static char *
snippet_to_text (const char *html, gboolean tty)
{
  GString *out = g_string_new (NULL);
  static const struct { const char *from, *to; } ents[] = {
    { "&amp;", "&" }, { "&lt;", "<" }, { "&gt;", ">" }, { "&quot;", "\"" }, { "&#39;", "'" },
  };
  for (const char *p = html ? html : ""; *p;)
    {
      if (g_str_has_prefix (p, "<b>") || g_str_has_prefix (p, "</b>"))
        {
          gboolean open = p[1] == 'b';
          if (tty)
            g_string_append (out, open ? "\033[1m" : "\033[0m");
          p += open ? 3 : 4;
          continue;
        }
      gboolean done = FALSE;
      for (gsize i = 0; i < G_N_ELEMENTS (ents) && !done; i++)
        if (g_str_has_prefix (p, ents[i].from))
          {
            g_string_append (out, ents[i].to);
            p += strlen (ents[i].from);
            done = TRUE;
          }
      if (!done)
        g_string_append_c (out, *p++);
    }
  return g_string_free (out, FALSE);
}

void
wsp_print_search_hits (JsonArray *hits)
{
  gboolean tty = isatty (STDOUT_FILENO);
  for (guint i = 0; i < json_array_get_length (hits); i++)
    {
      JsonObject *h = json_array_get_object_element (hits, i);
      if (h == NULL)
        continue;
      g_autofree char *id = wsp_sanitize (wsp_json_get_string (h, "id"), FALSE);
      g_autofree char *title = wsp_sanitize (wsp_json_get_string (h, "title"), FALSE);
      g_autofree char *clean = wsp_sanitize (wsp_json_get_string (h, "snippet"), FALSE);
      g_autofree char *snippet = snippet_to_text (clean, tty);
      printf ("%s  %s\n", id, title);
      if (*snippet != '\0')
        printf ("    %s\n", snippet);
    }
}
