/* wsp-cli-print.h — the CLI's human-readable output of API answers (task
 * tables, one task, history, search hits). Text that came from the API —
 * possibly from another peer — is sanitised so it cannot move the cursor or
 * change the terminal (control characters become spaces or '?').
 *
 * Writes to stdout; single-threaded.
 */
#pragma once
#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* A member as a string, or NULL when absent, null or not a string. */
const char *wsp_json_get_string (JsonObject *obj, const char *name);
/* A member as an integer, or FALLBACK. */
gint64      wsp_json_get_int (JsonObject *obj, const char *name, gint64 fallback);
/* A member as an array, or NULL. */
JsonArray  *wsp_json_get_array (JsonObject *obj, const char *name);

/* Valid UTF-8 with control characters replaced: on one line (tabs and
 * newlines become spaces) or, with multiline, keeping \n and \t. */
char *wsp_sanitize (const char *s, gboolean multiline);

/* `ID  STATUS  PRI  TITLE  @assignee  [labels]`, aligned. */
void wsp_print_task_table (JsonArray *tasks);
/* Every field, then labels, dependencies, comments and conflicts. */
void wsp_print_task (JsonObject *task);
/* `AT  PEER  SEQ  TYPE  DATA`, oldest first. */
void wsp_print_history (JsonArray *history);
/* `ID  TITLE` then the snippet indented. */
void wsp_print_search_hits (JsonArray *hits);

G_END_DECLS
