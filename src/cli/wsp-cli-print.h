/* wsp-cli-print.h — the CLI's human-readable output of API answers (task
 * tables, one task, history, search hits, peers, sync status). Text that came from the API —
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

/* A header line and ROWS (each a GStrv of N_COLS sanitised strings),
 * columns aligned two spaces apart; the last one is not padded. */
void wsp_print_table (guint n_cols, const char *const *headers, GPtrArray *rows);

/* An RFC 3339 time relative to now: "3s ago", "5m ago", "2h ago", "4d ago";
 * "never" for NULL. */
char *wsp_format_ago (const char *rfc3339);
/* "512 B", "1.5 KiB", "3.2 MiB", … */
char *wsp_format_bytes (gint64 n);

/* `ID  STATUS  PRI  TITLE  @assignee  [labels]`, aligned. */
void wsp_print_task_table (JsonArray *tasks);
/* Every field, then labels, dependencies, comments and conflicts. */
void wsp_print_task (JsonObject *task);
/* `AT  PEER  SEQ  TYPE  DATA`, oldest first. */
void wsp_print_history (JsonArray *history);
/* `ID  TITLE` then the snippet indented. */
void wsp_print_search_hits (JsonArray *hits);
/* `PEER  STATE  VIA  ADDRESS  LAST SEEN  THEY LACK  WE LACK  SENT  RECEIVED`
 * of peer objects (see wsp-http.h). */
void wsp_print_peer_table (JsonArray *peers);
/* GET /api/v1/sync: this peer's id, its clock, one line per peer. */
void wsp_print_sync (JsonObject *root);

G_END_DECLS
