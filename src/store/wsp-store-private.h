/* wsp-store-private.h — helpers shared by the writer (wsp-store.c) and the
 * readers (wsp-store-reader.c). Private to src/store/. */
#pragma once
#include <sqlite3.h>
#include "store/wsp-store.h"
#include "crdt/wsp-task-state.h"

gboolean      wsp_sql_exec (sqlite3 *db, const char *sql, GError **error);
sqlite3_stmt *wsp_sql_prepare (sqlite3 *db, const char *sql, GError **error);
/* The task JSON of SPEC 5 without comments and conflicts. */
void          wsp_store_render_task (const WspTaskView *v, GString *out);
