/* wsp-store-search-private.h — the dependency-cycle check on any
 * connection, for the writer (wsp-store.c) to refuse a local dep.add that
 * would close a cycle (409). Private to src/store/.
 *
 * The writer applies a batch of jobs in one transaction but writes the
 * task_deps rows only when it flushes the batch; dependencies added by
 * earlier jobs of the same batch live in its task cache. `overlay` lets the
 * writer answer for those tasks from memory: it is asked first for every
 * task visited, and when it returns TRUE its answer replaces the rows.
 */
#pragma once
#include <sqlite3.h>
#include "store/wsp-store.h"

G_BEGIN_DECLS

/* Fills `deps` (char*, owned by the array's free func) with the current
 * depends_on of `task` and returns TRUE, or returns FALSE to let the
 * database answer. A task that is not live has no dependencies. */
typedef gboolean (*WspDepsOverlay) (const char *task, GPtrArray *deps, gpointer user_data);

/* The statement the check runs: depends_on of one live task by id. Prepare
 * it once on the connection and pass it to every call (or pass NULL and one
 * is prepared for the call). */
#define WSP_SEARCH_SQL_DEPS_OF \
  "SELECT d.dep FROM tasks t JOIN task_deps d ON d.num = t.num WHERE t.id = ?1 AND t.live = 1"

/* Sets *out_cycle to TRUE when adding task → dep would close a cycle (task
 * == dep, or task reachable from dep through depends_on). Breadth-first over
 * the graph, each task visited once. Returns FALSE with WSP_ERROR_FAILED on
 * a database error. deps_of is reset before returning. */
gboolean wsp_store_search_would_cycle (sqlite3 *db, sqlite3_stmt *deps_of, WspDepsOverlay overlay,
                                       gpointer overlay_data, const char *task, const char *dep,
                                       gboolean *out_cycle, GError **error);

/* ---- glue between wsp-store-reader.c and wsp-store-search.c ------------ */

/* The search module's prepared statements, owned by the reader. */
typedef struct _WspSearchCache WspSearchCache;
void            wsp_search_cache_free (WspSearchCache *c);   /* NULL ok */

/* Defined in wsp-store-reader.c. */
sqlite3        *wsp_store_reader_get_db (WspStoreReader *r);
WspSearchCache **wsp_store_reader_get_search_cache (WspStoreReader *r);

G_END_DECLS
