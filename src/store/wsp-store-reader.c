/* wsp-store-reader.c — read-only views of the store for API threads.
 *
 * Each reader owns one read-only SQLite connection (WAL: readers never block
 * the writer nor each other) and its prepared statements. A reader is used
 * by one thread only. Task JSON is rendered by the writer when a task
 * changes and stored with the row, so reads are a lookup plus a copy.
 *
 * Lists: filters (status, label, assignee, priority, ready or blocked,
 * full-text q through wsp_search_translate), three orders, each with its
 * own cursor; one prepared statement per combination, built on first use.
 * Full-text search itself lives in wsp-store-search.c.
 */
#define G_LOG_DOMAIN "wsp-store"

#include "store/wsp-store.h"
#include "store/wsp-store-private.h"
#include "store/wsp-store-search-private.h"
#include "crdt/wsp-hlc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, sqlite3_finalize)

/* Filters of a list query, as bits; each combination gets its own cached
 * prepared statement. */
enum {
  F_STATUS   = 1 << 0,
  F_LABEL    = 1 << 1,
  F_ASSIGNEE = 1 << 2,
  F_PRIORITY = 1 << 3,
  F_READY    = 1 << 4,
  F_Q        = 1 << 5,
  F_CURSOR   = 1 << 6,
  F_BLOCKED  = 1 << 7,
  F_Q_SCAN   = 1 << 8,   /* q matches many tasks: walk the order, test membership */
  F_ALL      = (1 << 9) - 1,
};

/* With fewer full-text matches than this, a list starts from the matches
 * (a lookup and a sort each); with more, it walks the list order and tests
 * each task against them. Crossover measured at 100,000 tasks. */
#define Q_DRIVE_MAX 1000

struct _WspStoreReader {
  sqlite3      *db;
  char         *done_status;
  sqlite3_stmt *st_task;
  sqlite3_stmt *st_comments;
  sqlite3_stmt *st_history;
  sqlite3_stmt *st_clock;
  sqlite3_stmt *st_count;
  sqlite3_stmt *st_blocked_by;  /* open dependencies of one task, by id */
  sqlite3_stmt *st_fts_count;   /* full-text matches, counted up to a bound */
  GHashTable   *st_list;        /* (order << 16 | filter mask) → sqlite3_stmt*, built on first use */
  WspSearchCache *search;       /* wsp-store-search.c's statements; NULL until used */
};

sqlite3 *
wsp_store_reader_get_db (WspStoreReader *r)
{
  return r->db;
}

WspSearchCache **
wsp_store_reader_get_search_cache (WspStoreReader *r)
{
  return &r->search;
}

static void
finalize_statement (gpointer st)
{
  sqlite3_finalize (st);
}

WspStoreReader *
wsp_store_reader_open (const char *db_path, GError **error)
{
  g_autoptr (WspStoreReader) r = g_new0 (WspStoreReader, 1);
  r->done_status = g_strdup ("done");
  r->st_list = g_hash_table_new_full (NULL, NULL, NULL, finalize_statement);
  int rc = sqlite3_open_v2 (db_path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "opening %s read-only failed: %s", db_path,
                   r->db ? sqlite3_errmsg (r->db) : sqlite3_errstr (rc));
      return NULL;
    }
  sqlite3_busy_timeout (r->db, 5000);
#define PREP(field, sql) \
  if (!(r->field = wsp_sql_prepare (r->db, sql, error))) return NULL
  PREP (st_task, "SELECT num, live, deleted, json, conflicts_json FROM tasks WHERE id = ?");
  PREP (st_comments, "SELECT c.peer, c.seq, c.hlc, c.body FROM comments c WHERE c.num = ?");
  PREP (st_history,
        "SELECT p.peer, o.seq, o.hlc, o.body FROM ops o JOIN peers p ON p.idx = o.peer WHERE o.task = ?");
  PREP (st_clock, "SELECT peer, seq FROM peers WHERE seq > 0");
  PREP (st_count, "SELECT count(*) FROM tasks WHERE live = 1");
  PREP (st_blocked_by, "SELECT d.dep FROM task_deps d JOIN tasks u ON u.id = d.dep"
                       " WHERE d.num = ?1 AND u.live = 1 AND u.status <> ?2 ORDER BY d.dep");
  PREP (st_fts_count, "SELECT count(*) FROM (SELECT 1 FROM tasks_fts WHERE tasks_fts MATCH ?1 LIMIT ?2)");
#undef PREP
  return g_steal_pointer (&r);
}

void
wsp_store_reader_free (WspStoreReader *r)
{
  if (!r)
    return;
  sqlite3_finalize (r->st_task);
  sqlite3_finalize (r->st_comments);
  sqlite3_finalize (r->st_history);
  sqlite3_finalize (r->st_clock);
  sqlite3_finalize (r->st_count);
  sqlite3_finalize (r->st_blocked_by);
  sqlite3_finalize (r->st_fts_count);
  g_clear_pointer (&r->st_list, g_hash_table_unref);
  wsp_search_cache_free (r->search);
  if (r->db)
    sqlite3_close (r->db);
  g_free (r->done_status);
  g_free (r);
}

void
wsp_store_reader_set_done_status (WspStoreReader *r, const char *status)
{
  g_free (r->done_status);
  r->done_status = g_strdup (status ? status : "done");
}

static gboolean
sql_error (WspStoreReader *r, GError **error)
{
  g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "sqlite: %s", sqlite3_errmsg (r->db));
  return FALSE;
}

/* ---- one task ---------------------------------------------------------- */

typedef struct {
  guint64 hlc;
  WspPeer peer;
  guint64 seq;
  char   *body;
} CommentRow;

static int
comment_row_cmp (gconstpointer a, gconstpointer b)
{
  const CommentRow *x = a, *y = b;
  if (x->hlc != y->hlc)
    return x->hlc < y->hlc ? -1 : 1;
  if (x->peer != y->peer)
    return x->peer < y->peer ? -1 : 1;
  if (x->seq != y->seq)
    return x->seq < y->seq ? -1 : 1;
  return 0;
}

static void
append_comments (WspStoreReader *r, gint64 num, GString *out)
{
  g_autoptr (GArray) rows = g_array_new (FALSE, FALSE, sizeof (CommentRow));
  sqlite3_stmt *st = r->st_comments;
  sqlite3_bind_int64 (st, 1, num);
  while (sqlite3_step (st) == SQLITE_ROW)
    {
      CommentRow c = {
        (guint64) sqlite3_column_int64 (st, 2),
        (WspPeer) sqlite3_column_int64 (st, 0),
        (guint64) sqlite3_column_int64 (st, 1),
        g_strdup ((const char *) sqlite3_column_text (st, 3)),
      };
      g_array_append_val (rows, c);
    }
  sqlite3_reset (st);
  g_array_sort (rows, comment_row_cmp);

  g_string_append (out, "\"comments\":[");
  for (guint i = 0; i < rows->len; i++)
    {
      CommentRow *c = &g_array_index (rows, CommentRow, i);
      char peer[WSP_PEER_HEX_LEN + 1], at[25];
      wsp_peer_to_hex (c->peer, peer);
      wsp_format_time_ms (WSP_HLC_MS (c->hlc), at);
      if (i)
        g_string_append_c (out, ',');
      g_string_append_printf (out, "{\"author\":\"%s\",\"body\":", peer);
      wsp_json_append_string (out, c->body ? c->body : "", -1);
      g_string_append_printf (out, ",\"created_at\":\"%s\"}", at);
      g_free (c->body);
    }
  g_string_append_c (out, ']');
}

gboolean
wsp_store_reader_task_json (WspStoreReader *r, const char *id, GString *out, GError **error)
{
  sqlite3_stmt *st = r->st_task;
  sqlite3_bind_text (st, 1, id, -1, SQLITE_STATIC);
  int rc = sqlite3_step (st);
  if (rc != SQLITE_ROW)
    {
      sqlite3_reset (st);
      if (rc != SQLITE_DONE)
        return sql_error (r, error);
      g_set_error (error, WSP_ERROR, WSP_ERROR_NOT_FOUND, "task '%s' not found", id);
      return FALSE;
    }
  gint64 num = sqlite3_column_int64 (st, 0);
  gboolean live = sqlite3_column_int (st, 1);
  gboolean deleted = sqlite3_column_int (st, 2);
  const char *json = (const char *) sqlite3_column_text (st, 3);
  int json_len = sqlite3_column_bytes (st, 3);

  if (!live || !json || json_len < 2)
    {
      sqlite3_reset (st);
      if (deleted)
        {
          g_string_append (out, "{\"id\":");
          wsp_json_append_string (out, id, -1);
          g_string_append (out, ",\"deleted\":true,");
          append_comments (r, num, out);
          g_string_append_c (out, '}');
          g_set_error (error, WSP_ERROR, WSP_ERROR_GONE, "task '%s' was deleted", id);
        }
      else
        g_set_error (error, WSP_ERROR, WSP_ERROR_NOT_FOUND, "task '%s' not found", id);
      return FALSE;
    }

  /* The stored JSON ends with '}': splice comments and conflicts in. */
  g_string_append_len (out, json, json_len - 1);
  g_string_append_c (out, ',');
  const char *conflicts = (const char *) sqlite3_column_text (st, 4);
  g_string_append (out, "\"conflicts\":");
  g_string_append (out, conflicts ? conflicts : "[]");
  sqlite3_reset (st);
  g_string_append_c (out, ',');
  append_comments (r, num, out);
  g_string_append_c (out, '}');
  return TRUE;
}

gboolean
wsp_store_reader_task_live (WspStoreReader *r, const char *id)
{
  sqlite3_stmt *st = r->st_task;
  sqlite3_bind_text (st, 1, id, -1, SQLITE_STATIC);
  gboolean live = sqlite3_step (st) == SQLITE_ROW && sqlite3_column_int (st, 1);
  sqlite3_reset (st);
  return live;
}

/* ---- lists ------------------------------------------------------------- */

/* Orders a list can follow. WSP_SORT_DEFAULT and WSP_SORT_PRIORITY are the
 * same order (and share cursors). */
typedef enum {
  ORDER_PRIORITY,   /* priority, position, id ascending */
  ORDER_UPDATED,    /* updated_hlc, id descending */
  ORDER_CREATED,    /* created_hlc, id descending */
} Order;

/* hlcs sit in SQLite as the signed integer with the same bits, and the
 * list orders by that: an hlc from past the year 6400 (a corrupt or
 * hostile peer's) sorts as the oldest. Keeps the order index-friendly. */
static const char *const order_sql[] = {
  [ORDER_PRIORITY] = " ORDER BY priority, position, id",
  [ORDER_UPDATED] = " ORDER BY updated_hlc DESC, id DESC",
  [ORDER_CREATED] = " ORDER BY created_hlc DESC, id DESC",
};
static const char *const order_after_sql[] = {
  [ORDER_PRIORITY] = " AND (priority, position, id) > (:cp, :cpos, :cid)",
  [ORDER_UPDATED] = " AND (updated_hlc, id) < (:chlc, :cid)",
  [ORDER_CREATED] = " AND (created_hlc, id) < (:chlc, :cid)",
};

/* A cursor names the last row of a page, as base64url of
 *   "<priority> <position %a> <id>"   (priority order; the first format)
 *   "u <hlc> <id>" / "c <hlc> <id>"    (updated / created order) */
typedef struct {
  Order   order;
  gint64  priority;
  double  position;
  gint64  hlc;
  char   *id;
} Cursor;

static char *
cursor_encode (const Cursor *c)
{
  g_autofree char *raw = NULL;
  if (c->order == ORDER_PRIORITY)
    raw = g_strdup_printf ("%" G_GINT64_FORMAT " %a %s", c->priority, c->position, c->id);
  else
    raw = g_strdup_printf ("%c %" G_GINT64_FORMAT " %s", c->order == ORDER_UPDATED ? 'u' : 'c', c->hlc, c->id);
  return wsp_base64url_encode ((const guint8 *) raw, strlen (raw));
}

static gboolean
cursor_parse (const char *text, Cursor *c)
{
  char *end = NULL;
  if ((text[0] == 'u' || text[0] == 'c') && text[1] == ' ')
    {
      c->order = text[0] == 'u' ? ORDER_UPDATED : ORDER_CREATED;
      c->hlc = g_ascii_strtoll (text + 2, &end, 10);
      if (!end || end == text + 2 || *end != ' ')
        return FALSE;
      c->id = g_strdup (end + 1);
      return TRUE;
    }
  c->order = ORDER_PRIORITY;
  c->priority = g_ascii_strtoll (text, &end, 10);
  if (!end || *end != ' ')
    return FALSE;
  c->position = strtod (end + 1, &end);
  if (!end || *end != ' ' || !isfinite (c->position))
    return FALSE;
  c->id = g_strdup (end + 1);
  return TRUE;
}

static gboolean
cursor_decode (const char *cursor, Order order, Cursor *c, GError **error)
{
  gsize len = 0;
  g_autofree guint8 *raw = wsp_base64url_decode (cursor, &len, NULL);
  g_autofree char *text = raw && len > 0 && len <= 4096 ? g_strndup ((const char *) raw, len) : NULL;
  if (!text || !cursor_parse (text, c))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "cursor: not a cursor from a previous page");
      return FALSE;
    }
  if (c->order != order)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "cursor: from a list in another sort order");
      return FALSE;
    }
  return TRUE;
}

static sqlite3_stmt *
list_statement (WspStoreReader *r, Order order, guint mask, GError **error)
{
  gpointer key = GUINT_TO_POINTER ((guint) order << 16 | mask);
  sqlite3_stmt *st = g_hash_table_lookup (r->st_list, key);
  if (st)
    return st;
  g_autoptr (GString) sql = g_string_new ("SELECT json, priority, position, id, num, updated_hlc, created_hlc"
                                          " FROM tasks t WHERE live = 1");
  if (mask & F_STATUS)
    g_string_append (sql, " AND status = :status");
  if (mask & F_ASSIGNEE)
    g_string_append (sql, " AND assignee = :assignee");
  if (mask & F_PRIORITY)
    g_string_append (sql, " AND priority = :priority");
  if (mask & F_LABEL)
    g_string_append (sql, " AND num IN (SELECT num FROM task_labels WHERE label = :label)");
  if (mask & (F_READY | F_BLOCKED))
    g_string_append_printf (sql,
                            " AND status <> :done AND %s EXISTS (SELECT 1 FROM task_deps d JOIN tasks u ON u.id = d.dep"
                            " WHERE d.num = t.num AND u.live = 1 AND u.status <> :done)",
                            (mask & F_READY) ? "NOT" : "");
  /* The unary + keeps the planner from driving the query from the matches. */
  if (mask & F_Q)
    g_string_append_printf (sql, " AND %snum IN (SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH :q)",
                            (mask & F_Q_SCAN) ? "+" : "");
  if (mask & F_CURSOR)
    g_string_append (sql, order_after_sql[order]);
  g_string_append (sql, order_sql[order]);
  g_string_append (sql, " LIMIT :limit");
  st = wsp_sql_prepare (r->db, sql->str, error);
  if (st)
    g_hash_table_insert (r->st_list, key, st);
  return st;
}

static void
bind_named_text (sqlite3_stmt *st, const char *name, const char *value)
{
  int i = sqlite3_bind_parameter_index (st, name);
  if (i)
    sqlite3_bind_text (st, i, value, -1, SQLITE_STATIC);
}

static void
bind_named_int (sqlite3_stmt *st, const char *name, gint64 value)
{
  int i = sqlite3_bind_parameter_index (st, name);
  if (i)
    sqlite3_bind_int64 (st, i, value);
}

/* Appends the task's JSON with "blocked_by":[its open dependencies]. */
static gboolean
append_blocked_task (WspStoreReader *r, const char *json, int json_len, gint64 num, GString *out)
{
  g_string_append_len (out, json, json_len - 1);
  g_string_append (out, ",\"blocked_by\":[");
  sqlite3_stmt *st = r->st_blocked_by;
  sqlite3_bind_int64 (st, 1, num);
  sqlite3_bind_text (st, 2, r->done_status, -1, SQLITE_STATIC);
  int rc, n = 0;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      if (n++)
        g_string_append_c (out, ',');
      wsp_json_append_string (out, (const char *) sqlite3_column_text (st, 0), -1);
    }
  sqlite3_reset (st);
  g_string_append (out, "]}");
  return rc == SQLITE_DONE;
}

gboolean
wsp_store_reader_list_json (WspStoreReader *r, const WspListQuery *q, GString *out, GError **error)
{
  guint limit = q->limit ? MIN (q->limit, 1000) : 100;
  Order order;
  switch (q->sort)
    {
    case WSP_SORT_DEFAULT:
    case WSP_SORT_PRIORITY: order = ORDER_PRIORITY; break;
    case WSP_SORT_UPDATED: order = ORDER_UPDATED; break;
    case WSP_SORT_CREATED: order = ORDER_CREATED; break;
    default:
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "sort: unknown order");
      return FALSE;
    }
  Cursor c = { order, 0, 0, 0, NULL };
  g_autofree char *cursor_id = NULL;
  g_autofree char *fts = NULL;
  guint mask = 0;

  if (q->ready && q->blocked)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "ready and blocked exclude each other");
      return FALSE;
    }
  if (q->status)
    mask |= F_STATUS;
  if (q->assignee)
    mask |= F_ASSIGNEE;
  if (q->priority >= 0)
    mask |= F_PRIORITY;
  if (q->label)
    mask |= F_LABEL;
  if (q->ready)
    mask |= F_READY;
  if (q->blocked)
    mask |= F_BLOCKED;
  if (q->q && *q->q)
    {
      if (!(fts = wsp_search_translate (q->q, error)))
        return FALSE;
      mask |= F_Q;
      sqlite3_stmt *cs = r->st_fts_count;
      sqlite3_bind_text (cs, 1, fts, -1, SQLITE_STATIC);
      sqlite3_bind_int (cs, 2, Q_DRIVE_MAX + 1);
      int rc = sqlite3_step (cs);
      gint64 n = rc == SQLITE_ROW ? sqlite3_column_int64 (cs, 0) : 0;
      sqlite3_reset (cs);
      sqlite3_clear_bindings (cs);
      if (rc != SQLITE_ROW)
        return sql_error (r, error);
      if (n > Q_DRIVE_MAX)
        mask |= F_Q_SCAN;
    }
  if (q->cursor && *q->cursor)
    {
      gboolean ok = cursor_decode (q->cursor, order, &c, error);
      cursor_id = c.id;
      if (!ok)
        return FALSE;
      mask |= F_CURSOR;
    }

  sqlite3_stmt *st = list_statement (r, order, mask, error);
  if (!st)
    return FALSE;
  bind_named_text (st, ":status", q->status);
  bind_named_text (st, ":assignee", q->assignee);
  bind_named_int (st, ":priority", q->priority);
  bind_named_text (st, ":label", q->label);
  bind_named_text (st, ":done", r->done_status);
  bind_named_text (st, ":q", fts);
  bind_named_int (st, ":cp", c.priority);
  {
    int i = sqlite3_bind_parameter_index (st, ":cpos");
    if (i)
      sqlite3_bind_double (st, i, c.position);
  }
  bind_named_int (st, ":chlc", c.hlc);
  bind_named_text (st, ":cid", cursor_id);
  bind_named_int (st, ":limit", (gint64) limit + 1);

  gsize start = out->len;
  g_string_append (out, "{\"tasks\":[");
  guint n = 0;
  Cursor last = { order, 0, 0, 0, NULL };
  g_autofree char *last_id = NULL;
  gboolean more = FALSE, ok = TRUE;
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      if (n == limit)
        {
          more = TRUE;
          break;
        }
      if (n)
        g_string_append_c (out, ',');
      const char *json = (const char *) sqlite3_column_text (st, 0);
      int json_len = sqlite3_column_bytes (st, 0);
      if ((mask & F_BLOCKED) && json_len >= 2)
        ok = ok && append_blocked_task (r, json, json_len, sqlite3_column_int64 (st, 4), out);
      else
        g_string_append_len (out, json, json_len);
      if (n + 1 == limit)
        {
          last.priority = sqlite3_column_int64 (st, 1);
          last.position = sqlite3_column_double (st, 2);
          g_free (last_id);
          last_id = g_strdup ((const char *) sqlite3_column_text (st, 3));
          last.hlc = sqlite3_column_int64 (st, order == ORDER_CREATED ? 6 : 5);
        }
      n++;
    }
  if ((rc != SQLITE_ROW && rc != SQLITE_DONE) || !ok)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "sqlite: %s", sqlite3_errmsg (r->db));
      sqlite3_reset (st);
      sqlite3_clear_bindings (st);
      g_string_truncate (out, start);
      return FALSE;
    }
  sqlite3_reset (st);
  sqlite3_clear_bindings (st);
  g_string_append (out, "],\"next_cursor\":");
  if (more && last_id)
    {
      last.id = last_id;
      g_autofree char *next = cursor_encode (&last);
      g_string_append_printf (out, "\"%s\"}", next);
    }
  else
    g_string_append (out, "null}");
  return TRUE;
}

/* ---- history ----------------------------------------------------------- */

typedef struct {
  WspPeer peer;
  guint64 seq;
  guint64 hlc;
  GBytes *body;
} HistRow;

static int
hist_row_cmp (gconstpointer a, gconstpointer b)
{
  const HistRow *x = a, *y = b;
  if (x->hlc != y->hlc)
    return x->hlc < y->hlc ? -1 : 1;
  if (x->peer != y->peer)
    return x->peer < y->peer ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void
append_value (GString *out, const WspValue *v)
{
  switch (v->kind)
    {
    case WSP_VALUE_STR: wsp_json_append_string (out, v->str, -1); break;
    case WSP_VALUE_INT: g_string_append_printf (out, "%" G_GINT64_FORMAT, v->i); break;
    case WSP_VALUE_FLOAT: wsp_json_append_double (out, v->f); break;
    default: g_string_append (out, "null"); break;
    }
}

static void
append_dots (GString *out, const WspDot *dots, guint n)
{
  g_string_append_c (out, '[');
  for (guint i = 0; i < n; i++)
    {
      char peer[WSP_PEER_HEX_LEN + 1];
      wsp_peer_to_hex (dots[i].peer, peer);
      g_string_append_printf (out, "%s{\"peer\":\"%s\",\"seq\":%" G_GUINT64_FORMAT "}", i ? "," : "", peer, dots[i].seq);
    }
  g_string_append_c (out, ']');
}

/* A readable rendering of an op's data for the history endpoint. */
static void
append_op_data (GString *out, const WspOp *op)
{
  switch (op->type)
    {
    case WSP_OP_CREATE:
      g_string_append_c (out, '{');
      for (int f = WSP_FIELD_TITLE; f < WSP_FIELD_COUNT; f++)
        {
          g_string_append_printf (out, "%s\"%s\":", f > WSP_FIELD_TITLE ? "," : "", wsp_field_to_string ((WspField) f));
          append_value (out, &op->fields[f]);
        }
      g_string_append_c (out, '}');
      break;
    case WSP_OP_SET:
      g_string_append_printf (out, "{\"field\":\"%s\",\"value\":", wsp_field_to_string (op->field));
      append_value (out, &op->value);
      g_string_append_c (out, '}');
      break;
    case WSP_OP_LABEL_ADD:
    case WSP_OP_LABEL_REMOVE:
    case WSP_OP_DEP_ADD:
    case WSP_OP_DEP_REMOVE:
      g_string_append_printf (out, "{\"%s\":", (op->type == WSP_OP_LABEL_ADD || op->type == WSP_OP_LABEL_REMOVE) ? "label" : "task");
      wsp_json_append_string (out, op->text ? op->text : "", -1);
      if (op->type == WSP_OP_LABEL_REMOVE || op->type == WSP_OP_DEP_REMOVE)
        {
          g_string_append (out, ",\"observed\":");
          append_dots (out, op->observed, op->n_observed);
        }
      g_string_append_c (out, '}');
      break;
    case WSP_OP_COMMENT_ADD:
      g_string_append (out, "{\"body\":");
      wsp_json_append_string (out, op->text ? op->text : "", -1);
      g_string_append_c (out, '}');
      break;
    default:
      g_string_append (out, "null");
      break;
    }
}

gboolean
wsp_store_reader_history_json (WspStoreReader *r, const char *id, GString *out, GError **error)
{
  sqlite3_stmt *st = r->st_task;
  sqlite3_bind_text (st, 1, id, -1, SQLITE_STATIC);
  if (sqlite3_step (st) != SQLITE_ROW)
    {
      sqlite3_reset (st);
      g_set_error (error, WSP_ERROR, WSP_ERROR_NOT_FOUND, "task '%s' not found", id);
      return FALSE;
    }
  gint64 num = sqlite3_column_int64 (st, 0);
  sqlite3_reset (st);

  g_autoptr (GArray) rows = g_array_new (FALSE, FALSE, sizeof (HistRow));
  st = r->st_history;
  sqlite3_bind_int64 (st, 1, num);
  while (sqlite3_step (st) == SQLITE_ROW)
    {
      HistRow h = {
        (WspPeer) sqlite3_column_int64 (st, 0),
        (guint64) sqlite3_column_int64 (st, 1),
        (guint64) sqlite3_column_int64 (st, 2),
        g_bytes_new (sqlite3_column_blob (st, 3), sqlite3_column_bytes (st, 3)),
      };
      g_array_append_val (rows, h);
    }
  sqlite3_reset (st);
  g_array_sort (rows, hist_row_cmp);

  g_string_append (out, "{\"id\":");
  wsp_json_append_string (out, id, -1);
  g_string_append (out, ",\"history\":[");
  for (guint i = 0; i < rows->len; i++)
    {
      HistRow *h = &g_array_index (rows, HistRow, i);
      char peer[WSP_PEER_HEX_LEN + 1], at[25];
      wsp_peer_to_hex (h->peer, peer);
      wsp_format_time_ms (WSP_HLC_MS (h->hlc), at);
      gsize len;
      const guint8 *body = g_bytes_get_data (h->body, &len);
      WspOp op = { 0 };
      gboolean ok = wsp_op_decode (body, len, h->peer, &op);
      g_string_append_printf (out, "%s{\"peer\":\"%s\",\"seq\":%" G_GUINT64_FORMAT ",\"hlc\":%" G_GUINT64_FORMAT
                              ",\"type\":\"%s\",\"data\":", i ? "," : "", peer, h->seq, h->hlc,
                              ok ? wsp_op_type_to_string (op.type) : "unknown");
      if (ok && op.data_ok)
        append_op_data (out, &op);
      else
        g_string_append (out, "null");
      g_string_append_printf (out, ",\"at\":\"%s\"}", at);
      wsp_op_clear (&op);
      g_bytes_unref (h->body);
    }
  g_string_append (out, "]}");
  return TRUE;
}

/* ---- clock and counts -------------------------------------------------- */

gboolean
wsp_store_reader_clock_json (WspStoreReader *r, GString *out, GError **error)
{
  WspClock clock;
  wsp_clock_init (&clock);
  sqlite3_stmt *st = r->st_clock;
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    wsp_clock_set (&clock, (WspPeer) sqlite3_column_int64 (st, 0), (guint64) sqlite3_column_int64 (st, 1));
  sqlite3_reset (st);
  if (rc != SQLITE_DONE)
    {
      wsp_clock_clear (&clock);
      return sql_error (r, error);
    }
  wsp_clock_append_json (&clock, out);
  wsp_clock_clear (&clock);
  return TRUE;
}

gint64
wsp_store_reader_count_tasks (WspStoreReader *r)
{
  gint64 n = 0;
  if (sqlite3_step (r->st_count) == SQLITE_ROW)
    n = sqlite3_column_int64 (r->st_count, 0);
  sqlite3_reset (r->st_count);
  return n;
}

/* ---- every live task id (for the file mirror's reconcile) --------------- */

gboolean
wsp_store_reader_live_ids (WspStoreReader *r, GPtrArray *out, GError **error)
{
  g_autoptr (sqlite3_stmt) st = NULL;
  if (sqlite3_prepare_v2 (r->db, "SELECT id FROM tasks WHERE live = 1", -1, &st, NULL) != SQLITE_OK)
    return sql_error (r, error);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    g_ptr_array_add (out, g_strdup ((const char *) sqlite3_column_text (st, 0)));
  if (rc != SQLITE_DONE)
    return sql_error (r, error);
  return TRUE;
}

/* ---- dependency cycles (problems) -------------------------------------- */

/* Locally a dep.add that would close a cycle is refused, but concurrent
 * adds on two replicas can still make one. Lists each cycle among live
 * tasks once, as a problem entry: {"file","line":0,"kind":"dependency_cycle",
 * "tasks":[…],"reason"}. Iterative DFS with colours over every live edge. */
gboolean
wsp_store_reader_cycles_json (WspStoreReader *r, GString *out, guint *n_found, GError **error)
{
  g_autoptr (sqlite3_stmt) st = NULL;
  *n_found = 0;
  if (sqlite3_prepare_v2 (r->db,
                          "SELECT t.id, d.dep FROM task_deps d JOIN tasks t ON t.num = d.num"
                          " JOIN tasks u ON u.id = d.dep WHERE t.live = 1 AND u.live = 1", -1, &st, NULL) != SQLITE_OK)
    return sql_error (r, error);
  g_autoptr (GHashTable) edges = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                                        (GDestroyNotify) g_ptr_array_unref);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      const char *from = (const char *) sqlite3_column_text (st, 0);
      GPtrArray *to = g_hash_table_lookup (edges, from);
      if (!to)
        {
          to = g_ptr_array_new_with_free_func (g_free);
          g_hash_table_insert (edges, g_strdup (from), to);
        }
      g_ptr_array_add (to, g_strdup ((const char *) sqlite3_column_text (st, 1)));
    }
  if (rc != SQLITE_DONE)
    return sql_error (r, error);

  /* colour: absent = white, 1 = on the stack, 2 = done. */
  g_autoptr (GHashTable) colour = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GPtrArray) roots = g_ptr_array_new ();
  {
    GHashTableIter it;
    gpointer key;
    g_hash_table_iter_init (&it, edges);
    while (g_hash_table_iter_next (&it, &key, NULL))
      g_ptr_array_add (roots, key);
  }
  for (guint i = 0; i < roots->len; i++)
    {
      const char *root = roots->pdata[i];
      if (g_hash_table_contains (colour, root))
        continue;
      g_autoptr (GPtrArray) stack = g_ptr_array_new ();     /* node names */
      g_autoptr (GArray) next = g_array_new (FALSE, FALSE, sizeof (guint));
      guint zero = 0;
      g_ptr_array_add (stack, (gpointer) root);
      g_array_append_val (next, zero);
      g_hash_table_insert (colour, (gpointer) root, GINT_TO_POINTER (1));
      while (stack->len)
        {
          const char *node = stack->pdata[stack->len - 1];
          guint *k = &g_array_index (next, guint, next->len - 1);
          GPtrArray *to = g_hash_table_lookup (edges, node);
          if (to && *k < to->len)
            {
              const char *dst = to->pdata[(*k)++];
              /* Use the key stored in `edges` (or the dep string) as the name. */
              gpointer c = g_hash_table_lookup (colour, dst);
              if (!c)
                {
                  gpointer key = NULL;
                  if (!g_hash_table_lookup_extended (edges, dst, &key, NULL))
                    {
                      g_hash_table_insert (colour, (gpointer) dst, GINT_TO_POINTER (2));
                      continue;
                    }
                  g_hash_table_insert (colour, key, GINT_TO_POINTER (1));
                  g_ptr_array_add (stack, key);
                  g_array_append_val (next, zero);
                }
              else if (GPOINTER_TO_INT (c) == 1)
                {
                  /* A back edge: the cycle is stack[j..] where stack[j] == dst. */
                  guint j = stack->len;
                  while (j > 0 && strcmp (stack->pdata[j - 1], dst) != 0)
                    j--;
                  if (j == 0)
                    continue;
                  j--;
                  if (*n_found)
                    g_string_append_c (out, ',');
                  g_autoptr (GString) reason = g_string_new ("dependency cycle: ");
                  g_string_append_printf (out, "{\"file\":\"tasks/%s.md\",\"line\":0,\"kind\":\"dependency_cycle\",\"tasks\":[",
                                          (const char *) stack->pdata[j]);
                  for (guint m = j; m < stack->len; m++)
                    {
                      if (m > j)
                        g_string_append_c (out, ',');
                      wsp_json_append_string (out, stack->pdata[m], -1);
                      g_string_append_printf (reason, "%s → ", (const char *) stack->pdata[m]);
                    }
                  g_string_append (reason, dst);
                  g_string_append (out, "],\"reason\":");
                  wsp_json_append_string (out, reason->str, -1);
                  g_string_append_c (out, '}');
                  (*n_found)++;
                }
            }
          else
            {
              g_hash_table_insert (colour, (gpointer) node, GINT_TO_POINTER (2));
              g_ptr_array_set_size (stack, stack->len - 1);
              g_array_set_size (next, next->len - 1);
            }
        }
    }
  return TRUE;
}
