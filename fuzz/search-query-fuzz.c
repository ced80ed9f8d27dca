/* search-query-fuzz.c — libFuzzer target for the search query translator
 * (wsp_search_translate, src/store/wsp-store-search.c).
 *
 * Queries come from any local client (GET /api/v1/search?q=, the list's
 * q=), so the translator must be total: no crash, no leak, bounded work,
 * and either a WSP_ERROR_INVALID whose message starts "q: " or an
 * expression that FTS5 accepts. The expression is run against a small
 * in-memory FTS5 table with the store's tokenizer: any FTS5 error (a syntax
 * error, a column filter naming no column) is a translator bug and aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <sqlite3.h>

#include "store/wsp-store.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static sqlite3      *db;
static sqlite3_stmt *match;

static void
open_index (void)
{
  if (sqlite3_open (":memory:", &db) != SQLITE_OK
      || sqlite3_exec (db,
                       "CREATE VIRTUAL TABLE tasks_fts USING fts5 (title, body, labels, comments,"
                       "  tokenize = 'unicode61 remove_diacritics 2');"
                       "INSERT INTO tasks_fts VALUES ('Zebra crossing', 'café naïve e-mail', 'ui bug', 'ok');"
                       "INSERT INTO tasks_fts VALUES ('Auth tokens', 'and or not near', '', 'title body');",
                       NULL, NULL, NULL) != SQLITE_OK
      || sqlite3_prepare_v2 (db, "SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH ?", -1, &match, NULL)
           != SQLITE_OK)
    abort ();
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (!db)
    open_index ();
  g_autofree char *q = g_strndup ((const char *) data, size);   /* stops at a NUL, as a C string would */
  g_autoptr (GError) error = NULL;
  g_autofree char *expr = wsp_search_translate (q, &error);
  if (!expr)
    {
      if (!error || !g_error_matches (error, WSP_ERROR, WSP_ERROR_INVALID) || !g_str_has_prefix (error->message, "q: "))
        abort ();
      return 0;
    }
  if (error || !*expr || !g_utf8_validate (expr, -1, NULL))
    abort ();
  sqlite3_bind_text (match, 1, expr, -1, SQLITE_STATIC);
  int rc;
  while ((rc = sqlite3_step (match)) == SQLITE_ROW)
    ;
  sqlite3_reset (match);
  if (rc != SQLITE_DONE)
    abort ();
  return 0;
}
