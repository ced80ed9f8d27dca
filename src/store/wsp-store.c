/* wsp-store.c — the writer side of the store: one thread, one read-write
 * SQLite connection, a bounded job queue, batched transactions.
 *
 * Threads: wsp_store_open runs on the caller's thread and hands the
 * connection to the writer thread, which alone uses it from then on.
 * wsp_store_submit may be called from any thread. Completions and listeners
 * run on the writer thread, after COMMIT.
 *
 * Invariants:
 *  - ops rows exist exactly for the ops applied here (the vector clock):
 *    peers.seq = highest seq of that author, and ops 1..seq are all present;
 *  - every op row's hash is h(seq) of its author's chain, peers.head = h(seq);
 *  - the materialized tasks row equals the merge of every applied op naming
 *    that task, updated in the same transaction as the ops;
 *  - a job's completion fires only after its transaction committed, so a
 *    reported success survives kill -9 (synchronous=FULL, WAL).
 */
#define G_LOG_DOMAIN "wsp-store"

#include "store/wsp-store.h"
#include "store/wsp-store-private.h"
#include "store/wsp-store-schema.h"
#include "store/wsp-store-search-private.h"
#include "crdt/wsp-hlc.h"
#include "crdt/wsp-task-state.h"

#include <sqlite3.h>
#include <string.h>

#define WSP_STORE_DEFAULT_QUEUE 1024
#define WSP_STORE_MAX_BATCH     512      /* jobs per transaction */
#define WSP_STORE_MAX_BATCH_OPS 200000   /* received ops per transaction */
#define WSP_STORE_DEFAULT_BATCH_TASKS 20000  /* task states a catch-up batch holds before writing them */
/* A run holding one op must fit 61,440 bytes (SPEC 7.3); the run's map
 * costs at most ~120 bytes besides the body. */
#define WSP_MAX_OP_BODY         (61440 - 160)

G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, sqlite3_finalize)

/* ---- jobs -------------------------------------------------------------- */

typedef enum {
  JOB_WRITE,
  JOB_SYNC_WRITE,
  JOB_RUN,
} JobKind;

typedef struct {
  JobKind      kind;
  WspWrite    *write;
  WspWriteDone done;
  gpointer     user_data;
  /* JOB_SYNC_WRITE: the submitter waits on cond. */
  GMutex      *sync_mutex;
  GCond       *sync_cond;
  gboolean    *sync_finished;
  GError     **sync_error;
  guint       *sync_n_ops;
  /* JOB_RUN */
  WspRun         *run;
  WspIngestDone   ingest_done;
  WspIngestStatus ingest_status;
  /* Filled while processing. */
  GError      *error;
  guint        n_ops;
} Job;

/* ---- per-author state, cached from the peers table ---------------------- */

typedef struct {
  gint64   idx;
  WspPeer  peer;
  guint64  seq;                 /* clock entry */
  guint8   head[WSP_HASH_LEN];  /* h(seq) */
  guint8   pk[WSP_PK_LEN];
  gboolean has_pk;
  WspClock full_deps;           /* entrywise max of deps of ops 1..seq */
  gboolean dirty;
  /* Verified ops seq+1, seq+2 … waiting for their deps (memory only: a
   * restart forgets them and the peer sends them again). */
  GQueue   pending;             /* PendingOp* */
} Author;

typedef struct {
  guint64  seq;
  GBytes  *body;
  guint8   hash[WSP_HASH_LEN];
  gboolean decoded;             /* op holds the decoded body */
  WspOp    op;
} PendingOp;

static void
pending_op_free (PendingOp *p)
{
  g_bytes_unref (p->body);
  wsp_op_clear (&p->op);
  g_free (p);
}

static void
author_free (Author *a)
{
  wsp_clock_clear (&a->full_deps);
  g_queue_clear_full (&a->pending, (GDestroyNotify) pending_op_free);
  g_free (a);
}

/* Highest seq of this author held here, applied or pending. */
static guint64
author_held (const Author *a)
{
  return a->seq + a->pending.length;
}

/* ---- per-task state, cached for one batch ------------------------------ */

typedef struct {
  gint64        num;
  char         *id;
  WspTaskState *state;
  gboolean      dirty;          /* the row must be rewritten */
  gboolean      is_new;         /* row inserted in this batch: no side rows yet */
  gboolean      labels_dirty;   /* task_labels rows may have changed */
  gboolean      deps_dirty;     /* task_deps rows may have changed */
  gboolean      fts_dirty;      /* the full-text row may have changed */
  GArray       *new_comments;   /* Comment */
} TaskEntry;

typedef struct {
  WspPeer peer;
  guint64 seq;
  guint64 hlc;
  char   *body;
} Comment;

static void
comment_clear (gpointer p)
{
  g_free (((Comment *) p)->body);
}

static gint
task_entry_cmp_num (gconstpointer a, gconstpointer b)
{
  gint64 x = (*(TaskEntry *const *) a)->num, y = (*(TaskEntry *const *) b)->num;
  return x < y ? -1 : x > y;
}

static void
task_entry_free (TaskEntry *t)
{
  g_free (t->id);
  wsp_task_state_free (t->state);
  if (t->new_comments)
    g_array_unref (t->new_comments);
  g_free (t);
}

struct _WspStore {
  char        *db_path;
  char        *project_id;
  WspIdentity  identity;
  sqlite3     *db;              /* writer thread only (after open) */

  /* Queue, guarded by lock. */
  GMutex       lock;
  GCond        cond;
  GQueue       queue;           /* Job* */
  guint        queue_max;
  guint        batch_tasks_max;
  gboolean     closing;
  gboolean     closed;
  GThread     *thread;

  /* Listeners, guarded by listeners_lock (held while they run: they
   * only hand data over, and removal must wait for a running call). */
  GMutex       listeners_lock;
  GArray      *listeners;       /* Listener */

  /* Writer-thread state. */
  WspHlc       hlc;
  WspClock     clock;
  GHashTable  *authors;         /* WspPeer* → Author* */
  Author      *self_author;
  GHashTable  *batch_tasks;     /* id → TaskEntry* */
  GPtrArray   *batch_touched;   /* char* (owned) ids of tasks whose view changed */
  GHashTable  *touched_set;     /* the same ids (borrowed), for uniqueness */
  guint64      batch_local_last_seq;  /* own ops made in this batch: last seq */
  guint64      batch_local_first_seq;
  gsize        unsigned_bytes;  /* run bytes of own ops after the last signed head */
  guint        pending_total;   /* ops held across all authors */
  WspClock     published_clock; /* copy of clock for other threads, under lock */

  /* Prepared statements (writer connection). */
  sqlite3_stmt *st_begin, *st_commit, *st_rollback;
  sqlite3_stmt *st_task_by_id, *st_task_insert, *st_task_update;
  sqlite3_stmt *st_op_insert, *st_sig_insert;
  sqlite3_stmt *st_labels_delete, *st_label_insert;
  sqlite3_stmt *st_deps_delete, *st_dep_insert;
  sqlite3_stmt *st_comment_insert;
  sqlite3_stmt *st_peer_insert, *st_peer_update;
  sqlite3_stmt *st_meta_set;
  sqlite3_stmt *st_fts_delete, *st_fts_insert;
  sqlite3_stmt *st_op_hash;
  sqlite3_stmt *st_deps_of;

  /* Stats (atomics). */
  gint         stat_depth;
  gint64       stat_ops;        /* __atomic */
  gint64       stat_batches;
  gint64       stat_busy;
  gint         stat_runs;       /* received runs queued or in a batch */
};

typedef struct {
  WspStoreListener fn;
  gpointer         user_data;
} Listener;

/* ---- SQLite helpers ---------------------------------------------------- */

gboolean
wsp_sql_exec (sqlite3 *db, const char *sql, GError **error)
{
  char *msg = NULL;
  if (sqlite3_exec (db, sql, NULL, NULL, &msg) != SQLITE_OK)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "sqlite: %s", msg ? msg : sqlite3_errmsg (db));
      sqlite3_free (msg);
      return FALSE;
    }
  return TRUE;
}

sqlite3_stmt *
wsp_sql_prepare (sqlite3 *db, const char *sql, GError **error)
{
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v3 (db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "sqlite: preparing statement failed: %s", sqlite3_errmsg (db));
      return NULL;
    }
  return st;
}

static gboolean
step_done (sqlite3 *db, sqlite3_stmt *st, GError **error)
{
  int rc = sqlite3_step (st);
  sqlite3_reset (st);
  sqlite3_clear_bindings (st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "sqlite: %s", sqlite3_errmsg (db));
      return FALSE;
    }
  return TRUE;
}

static gboolean
meta_set_int (WspStore *self, const char *key, gint64 value, GError **error)
{
  sqlite3_bind_text (self->st_meta_set, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (self->st_meta_set, 2, value);
  return step_done (self->db, self->st_meta_set, error);
}

static gboolean
meta_set_text (WspStore *self, const char *key, const char *value, GError **error)
{
  sqlite3_bind_text (self->st_meta_set, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text (self->st_meta_set, 2, value, -1, SQLITE_STATIC);
  return step_done (self->db, self->st_meta_set, error);
}

static gint64
meta_get_int (sqlite3 *db, const char *key, gint64 fallback)
{
  g_autoptr (sqlite3_stmt) st = NULL;
  if (sqlite3_prepare_v2 (db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) != SQLITE_OK)
    return fallback;
  sqlite3_bind_text (st, 1, key, -1, SQLITE_STATIC);
  if (sqlite3_step (st) == SQLITE_ROW)
    return sqlite3_column_int64 (st, 0);
  return fallback;
}

static char *
meta_get_text (sqlite3 *db, const char *key)
{
  g_autoptr (sqlite3_stmt) st = NULL;
  if (sqlite3_prepare_v2 (db, "SELECT value FROM meta WHERE key = ?", -1, &st, NULL) != SQLITE_OK)
    return NULL;
  sqlite3_bind_text (st, 1, key, -1, SQLITE_STATIC);
  if (sqlite3_step (st) == SQLITE_ROW && sqlite3_column_type (st, 0) == SQLITE_TEXT)
    return g_strdup ((const char *) sqlite3_column_text (st, 0));
  return NULL;
}

/* ---- schema ------------------------------------------------------------ */

static gboolean
store_migrate (WspStore *self, GError **error)
{
  gint64 version = 0;
  g_autoptr (sqlite3_stmt) st = NULL;
  if (sqlite3_prepare_v2 (self->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK
      && sqlite3_step (st) == SQLITE_ROW)
    version = sqlite3_column_int64 (st, 0);

  if (version > WSP_SCHEMA_VERSION)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT,
                   "database %s has schema version %" G_GINT64_FORMAT ", newer than this wspd knows (%d)",
                   self->db_path, version, WSP_SCHEMA_VERSION);
      return FALSE;
    }
  if (version == WSP_SCHEMA_VERSION)
    return TRUE;

  if (!wsp_sql_exec (self->db, "BEGIN IMMEDIATE", error))
    return FALSE;
  if (version < 1 && !wsp_sql_exec (self->db, WSP_SCHEMA_V1, error))
    goto fail;
  if (version < 2 && !wsp_sql_exec (self->db, WSP_SCHEMA_V2, error))
    goto fail;
  {
    g_autofree char *sql = g_strdup_printf ("PRAGMA user_version = %d", WSP_SCHEMA_VERSION);
    if (!wsp_sql_exec (self->db, sql, error))
      goto fail;
  }
  return wsp_sql_exec (self->db, "COMMIT", error);

fail:
  wsp_sql_exec (self->db, "ROLLBACK", NULL);
  g_prefix_error (error, "migrating %s: ", self->db_path);
  return FALSE;
}

static gboolean
store_prepare (WspStore *self, GError **error)
{
#define PREP(field, sql) \
  if (!(self->field = wsp_sql_prepare (self->db, sql, error))) return FALSE
  PREP (st_begin, "BEGIN IMMEDIATE");
  PREP (st_commit, "COMMIT");
  PREP (st_rollback, "ROLLBACK");
  PREP (st_task_by_id, "SELECT num, state FROM tasks WHERE id = ?");
  PREP (st_task_insert, "INSERT INTO tasks (id) VALUES (?)");
  PREP (st_task_update,
        "UPDATE tasks SET live = ?2, deleted = ?3, status = ?4, priority = ?5, position = ?6,"
        " assignee = ?7, created_hlc = ?8, updated_hlc = ?9, json = ?10, conflicts_json = ?11,"
        " state = ?12 WHERE num = ?1");
  PREP (st_op_insert, "INSERT INTO ops (peer, seq, hlc, task, body, hash) VALUES (?, ?, ?, ?, ?, ?)");
  PREP (st_sig_insert, "INSERT OR REPLACE INTO sigs (peer, seq, sig) VALUES (?, ?, ?)");
  PREP (st_labels_delete, "DELETE FROM task_labels WHERE num = ?");
  PREP (st_label_insert, "INSERT OR IGNORE INTO task_labels (label, num) VALUES (?, ?)");
  PREP (st_deps_delete, "DELETE FROM task_deps WHERE num = ?");
  PREP (st_dep_insert, "INSERT OR IGNORE INTO task_deps (num, dep) VALUES (?, ?)");
  PREP (st_comment_insert, "INSERT OR IGNORE INTO comments (num, peer, seq, hlc, body) VALUES (?, ?, ?, ?, ?)");
  PREP (st_peer_insert, "INSERT INTO peers (peer, pk, seq, head) VALUES (?, ?, 0, ?)");
  PREP (st_peer_update, "UPDATE peers SET seq = ?2, head = ?3, full_deps = ?4, pk = coalesce(?5, pk) WHERE idx = ?1");
  PREP (st_meta_set, "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)");
  PREP (st_fts_delete, "DELETE FROM tasks_fts WHERE rowid = ?");
  PREP (st_op_hash, "SELECT hash FROM ops WHERE peer = ? AND seq = ?");
  PREP (st_deps_of, WSP_SEARCH_SQL_DEPS_OF);
  PREP (st_fts_insert,
        "INSERT INTO tasks_fts (rowid, title, body, labels, comments) VALUES (?1, ?2, ?3, ?4,"
        " (SELECT group_concat(body, char(10)) FROM comments WHERE num = ?1))");
#undef PREP
  return TRUE;
}

static void
store_finalize_statements (WspStore *self)
{
  sqlite3_stmt **all[] = {
    &self->st_begin, &self->st_commit, &self->st_rollback, &self->st_task_by_id,
    &self->st_task_insert, &self->st_task_update, &self->st_op_insert, &self->st_sig_insert,
    &self->st_labels_delete, &self->st_label_insert, &self->st_deps_delete, &self->st_dep_insert,
    &self->st_comment_insert, &self->st_peer_insert, &self->st_peer_update, &self->st_meta_set,
    &self->st_fts_delete, &self->st_fts_insert, &self->st_op_hash, &self->st_deps_of,
  };
  for (gsize i = 0; i < G_N_ELEMENTS (all); i++)
    {
      sqlite3_finalize (*all[i]);
      *all[i] = NULL;
    }
}

static gboolean
store_load_authors (WspStore *self, GError **error)
{
  g_autoptr (sqlite3_stmt) st = NULL;
  if (sqlite3_prepare_v2 (self->db, "SELECT idx, peer, pk, seq, head, full_deps FROM peers", -1, &st, NULL) != SQLITE_OK)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "sqlite: %s", sqlite3_errmsg (self->db));
      return FALSE;
    }
  while (sqlite3_step (st) == SQLITE_ROW)
    {
      Author *a = g_new0 (Author, 1);
      wsp_clock_init (&a->full_deps);
      a->idx = sqlite3_column_int64 (st, 0);
      a->peer = (WspPeer) sqlite3_column_int64 (st, 1);
      if (sqlite3_column_bytes (st, 2) == WSP_PK_LEN)
        {
          memcpy (a->pk, sqlite3_column_blob (st, 2), WSP_PK_LEN);
          a->has_pk = TRUE;
        }
      a->seq = (guint64) sqlite3_column_int64 (st, 3);
      if (sqlite3_column_bytes (st, 4) != WSP_HASH_LEN)
        {
          author_free (a);
          g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT, "peers row has a bad chain head");
          return FALSE;
        }
      memcpy (a->head, sqlite3_column_blob (st, 4), WSP_HASH_LEN);
      if (sqlite3_column_type (st, 5) == SQLITE_BLOB
          && !wsp_clock_decode (&a->full_deps, sqlite3_column_blob (st, 5), sqlite3_column_bytes (st, 5), error))
        {
          author_free (a);
          return FALSE;
        }
      if (a->seq > 0)
        wsp_clock_set (&self->clock, a->peer, a->seq);
      g_hash_table_insert (self->authors, &a->peer, a);
    }
  return TRUE;
}

/* Looks up or creates the author row for peer (pk may be NULL). */
static Author *
author_get (WspStore *self, WspPeer peer, const guint8 *pk, GError **error)
{
  Author *a = g_hash_table_lookup (self->authors, &peer);
  if (a)
    return a;
  if (!pk)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "unknown author without a public key");
      return NULL;
    }
  a = g_new0 (Author, 1);
  wsp_clock_init (&a->full_deps);
  a->peer = peer;
  memcpy (a->pk, pk, WSP_PK_LEN);
  a->has_pk = TRUE;
  wsp_chain_genesis (self->project_id, pk, a->head);
  sqlite3_bind_int64 (self->st_peer_insert, 1, (gint64) peer);
  sqlite3_bind_blob (self->st_peer_insert, 2, pk, WSP_PK_LEN, SQLITE_STATIC);
  sqlite3_bind_blob (self->st_peer_insert, 3, a->head, WSP_HASH_LEN, SQLITE_STATIC);
  if (!step_done (self->db, self->st_peer_insert, error))
    {
      author_free (a);
      return NULL;
    }
  a->idx = sqlite3_last_insert_rowid (self->db);
  g_hash_table_insert (self->authors, &a->peer, a);
  return a;
}

/* ---- task entries within a batch -------------------------------------- */

/* The batch's entry for task id, loading it from the database or creating
 * its row. Never NULL unless SQLite fails. */
static TaskEntry *
task_entry_get (WspStore *self, const char *id, gboolean create_row, GError **error)
{
  TaskEntry *t = g_hash_table_lookup (self->batch_tasks, id);
  if (t)
    return t;

  sqlite3_stmt *st = self->st_task_by_id;
  sqlite3_bind_text (st, 1, id, -1, SQLITE_STATIC);
  int rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      t = g_new0 (TaskEntry, 1);
      t->num = sqlite3_column_int64 (st, 0);
      t->id = g_strdup (id);
      if (sqlite3_column_type (st, 1) == SQLITE_BLOB)
        t->state = wsp_task_state_decode (id, sqlite3_column_blob (st, 1), sqlite3_column_bytes (st, 1), error);
      else
        t->state = wsp_task_state_new (id);
      sqlite3_reset (st);
      sqlite3_clear_bindings (st);
      if (!t->state)
        {
          g_prefix_error (error, "task %s: ", id);
          task_entry_free (t);
          return NULL;
        }
    }
  else
    {
      sqlite3_reset (st);
      sqlite3_clear_bindings (st);
      if (rc != SQLITE_DONE)
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "sqlite: %s", sqlite3_errmsg (self->db));
          return NULL;
        }
      if (!create_row)
        return NULL;
      sqlite3_bind_text (self->st_task_insert, 1, id, -1, SQLITE_STATIC);
      if (!step_done (self->db, self->st_task_insert, error))
        return NULL;
      t = g_new0 (TaskEntry, 1);
      t->num = sqlite3_last_insert_rowid (self->db);
      t->id = g_strdup (id);
      t->state = wsp_task_state_new (id);
      t->is_new = TRUE;
    }
  g_hash_table_insert (self->batch_tasks, t->id, t);
  return t;
}

/* ---- applying one op (local or remote) -------------------------------- */

/* Appends op seq of author a, whose body hashes to hash, to the log and
 * merges it. The caller has checked that seq == a->seq + 1 and that the op
 * is causally ready. */
static gboolean
apply_op (WspStore *self, Author *a, guint64 seq, const guint8 *body, gsize len,
          const guint8 hash[WSP_HASH_LEN], WspOp *predecoded, gboolean predecoded_ok, GError **error)
{
  WspOp local = { 0 };
  WspOp *opp = predecoded ? predecoded : &local;
  gboolean decoded = predecoded ? predecoded_ok : wsp_op_decode (body, len, a->peer, &local);
  WspOp op = *opp;   /* shallow view; cleared through opp below */
  gint64 task_num = 0;

  if (decoded)
    {
      wsp_clock_merge (&a->full_deps, op.deps, op.n_deps);
      wsp_hlc_observe (&self->hlc, op.hlc);
      TaskEntry *t = task_entry_get (self, op.task, TRUE, error);
      if (!t)
        {
          wsp_op_clear (&local);
          return FALSE;
        }
      task_num = t->num;
      WspStamp stamp = { op.hlc, a->peer, seq };
      WspApplyResult r = wsp_task_state_apply (t->state, &stamp, &a->full_deps, &op);
      if (r != WSP_APPLY_NOOP)
        {
          if (!t->dirty && !g_hash_table_contains (self->touched_set, t->id))
            {
              char *id = g_strdup (t->id);
              g_ptr_array_add (self->batch_touched, id);
              g_hash_table_add (self->touched_set, id);
            }
          t->dirty = TRUE;
          /* Which side tables this op can change. */
          switch (op.type)
            {
            case WSP_OP_CREATE:
            case WSP_OP_DELETE:
              t->labels_dirty = t->deps_dirty = t->fts_dirty = TRUE;
              break;
            case WSP_OP_LABEL_ADD:
            case WSP_OP_LABEL_REMOVE:
              t->labels_dirty = t->fts_dirty = TRUE;
              break;
            case WSP_OP_DEP_ADD:
            case WSP_OP_DEP_REMOVE:
              t->deps_dirty = TRUE;
              break;
            case WSP_OP_COMMENT_ADD:
              t->fts_dirty = TRUE;
              break;
            case WSP_OP_SET:
              if (op.field == WSP_FIELD_TITLE || op.field == WSP_FIELD_BODY)
                t->fts_dirty = TRUE;
              break;
            default:
              break;
            }
        }
      if (r == WSP_APPLY_COMMENT)
        {
          if (!t->new_comments)
            {
              t->new_comments = g_array_new (FALSE, FALSE, sizeof (Comment));
              g_array_set_clear_func (t->new_comments, comment_clear);
            }
          Comment c = { a->peer, seq, op.hlc, g_strdup (op.text ? op.text : "") };
          g_array_append_val (t->new_comments, c);
        }
    }

  sqlite3_stmt *st = self->st_op_insert;
  sqlite3_bind_int64 (st, 1, a->idx);
  sqlite3_bind_int64 (st, 2, (gint64) seq);
  sqlite3_bind_int64 (st, 3, (gint64) (decoded ? op.hlc : 0));
  if (task_num)
    sqlite3_bind_int64 (st, 4, task_num);
  else
    sqlite3_bind_null (st, 4);
  sqlite3_bind_blob (st, 5, body, (int) len, SQLITE_STATIC);
  sqlite3_bind_blob (st, 6, hash, WSP_HASH_LEN, SQLITE_STATIC);
  wsp_op_clear (&local);
  if (!step_done (self->db, st, error))
    return FALSE;

  a->seq = seq;
  memcpy (a->head, hash, WSP_HASH_LEN);
  a->dirty = TRUE;
  wsp_clock_set (&self->clock, a->peer, seq);
  __atomic_fetch_add (&self->stat_ops, 1, __ATOMIC_RELAXED);
  return TRUE;
}

/* ---- rendering --------------------------------------------------------- */

static void
append_opt_string (GString *out, const char *s)
{
  if (s && *s)
    wsp_json_append_string (out, s, -1);
  else
    g_string_append (out, "null");
}

static void
append_string_array (GString *out, GPtrArray *arr)
{
  g_string_append_c (out, '[');
  for (guint i = 0; arr && i < arr->len; i++)
    {
      if (i)
        g_string_append_c (out, ',');
      wsp_json_append_string (out, g_ptr_array_index (arr, i), -1);
    }
  g_string_append_c (out, ']');
}

/* The task JSON of SPEC 5 without comments and conflicts. */
void
wsp_store_render_task (const WspTaskView *v, GString *out)
{
  char time_buf[25];
  char peer_buf[WSP_PEER_HEX_LEN + 1];

  g_string_append (out, "{\"id\":");
  wsp_json_append_string (out, v->id, -1);
  g_string_append (out, ",\"title\":");
  wsp_json_append_string (out, v->title, -1);
  g_string_append (out, ",\"body\":");
  wsp_json_append_string (out, v->body, -1);
  g_string_append (out, ",\"status\":");
  wsp_json_append_string (out, v->status, -1);
  g_string_append_printf (out, ",\"priority\":%" G_GINT64_FORMAT ",\"assignee\":", v->priority);
  append_opt_string (out, v->assignee);
  g_string_append (out, ",\"labels\":");
  append_string_array (out, v->labels);
  g_string_append (out, ",\"depends_on\":");
  append_string_array (out, v->depends_on);
  g_string_append (out, ",\"parent\":");
  append_opt_string (out, v->parent);
  g_string_append (out, ",\"due\":");
  append_opt_string (out, v->due);
  g_string_append (out, ",\"position\":");
  wsp_json_append_double (out, v->position);
  wsp_format_time_ms (WSP_HLC_MS (v->created_hlc), time_buf);
  g_string_append_printf (out, ",\"created_at\":\"%s\",\"created_by\":", time_buf);
  wsp_peer_to_hex (v->created_by, peer_buf);
  g_string_append_printf (out, "\"%s\"", peer_buf);
  wsp_format_time_ms (WSP_HLC_MS (v->updated_hlc), time_buf);
  g_string_append_printf (out, ",\"updated_at\":\"%s\"}", time_buf);
}

static void
render_conflicts (const WspTaskView *v, GString *out)
{
  char time_buf[25];
  char peer_buf[WSP_PEER_HEX_LEN + 1];
  g_string_append_c (out, '[');
  for (guint i = 0; i < v->conflicts->len; i++)
    {
      const WspConflict *c = &g_array_index (v->conflicts, WspConflict, i);
      if (i)
        g_string_append_c (out, ',');
      g_string_append_printf (out, "{\"field\":\"%s\",\"value\":", wsp_field_to_string (c->field));
      wsp_json_append_string (out, c->value ? c->value : "", -1);
      wsp_peer_to_hex (c->stamp.peer, peer_buf);
      wsp_format_time_ms (WSP_HLC_MS (c->stamp.hlc), time_buf);
      g_string_append_printf (out, ",\"peer\":\"%s\",\"at\":\"%s\"}", peer_buf, time_buf);
    }
  g_string_append_c (out, ']');
}

/* ---- flushing a batch's tasks ----------------------------------------- */

static gboolean
flush_task (WspStore *self, TaskEntry *t, GString *json, GString *conflicts, GError **error)
{
  WspTaskView v = { 0 };
  wsp_task_state_view (t->state, &v);
  gboolean live = v.exists && !v.deleted;

  g_string_truncate (json, 0);
  g_string_truncate (conflicts, 0);
  if (v.exists)
    wsp_store_render_task (&v, json);
  if (v.conflicts && v.conflicts->len)
    render_conflicts (&v, conflicts);

  g_autoptr (GBytes) blob = wsp_task_state_encode (t->state);
  gsize blob_len;
  const void *blob_data = g_bytes_get_data (blob, &blob_len);

  sqlite3_stmt *st = self->st_task_update;
  sqlite3_bind_int64 (st, 1, t->num);
  sqlite3_bind_int (st, 2, live);
  sqlite3_bind_int (st, 3, v.deleted);
  sqlite3_bind_text (st, 4, v.status, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (st, 5, v.priority);
  sqlite3_bind_double (st, 6, v.position);
  if (v.assignee)
    sqlite3_bind_text (st, 7, v.assignee, -1, SQLITE_STATIC);
  else
    sqlite3_bind_null (st, 7);
  sqlite3_bind_int64 (st, 8, (gint64) v.created_hlc);
  sqlite3_bind_int64 (st, 9, (gint64) v.updated_hlc);
  if (v.exists)
    sqlite3_bind_text (st, 10, json->str, (int) json->len, SQLITE_STATIC);
  else
    sqlite3_bind_null (st, 10);
  if (conflicts->len)
    sqlite3_bind_text (st, 11, conflicts->str, (int) conflicts->len, SQLITE_STATIC);
  else
    sqlite3_bind_null (st, 11);
  sqlite3_bind_blob (st, 12, blob_data, (int) blob_len, SQLITE_STATIC);
  gboolean ok = step_done (self->db, st, error);

  /* Labels and dependencies: replace the rows of this task. */
  if (ok && t->labels_dirty && !t->is_new)
    {
      sqlite3_bind_int64 (self->st_labels_delete, 1, t->num);
      ok = step_done (self->db, self->st_labels_delete, error);
    }
  for (guint i = 0; ok && live && t->labels_dirty && i < v.labels->len; i++)
    {
      sqlite3_bind_text (self->st_label_insert, 1, g_ptr_array_index (v.labels, i), -1, SQLITE_STATIC);
      sqlite3_bind_int64 (self->st_label_insert, 2, t->num);
      ok = step_done (self->db, self->st_label_insert, error);
    }
  if (ok && t->deps_dirty && !t->is_new)
    {
      sqlite3_bind_int64 (self->st_deps_delete, 1, t->num);
      ok = step_done (self->db, self->st_deps_delete, error);
    }
  for (guint i = 0; ok && live && t->deps_dirty && i < v.depends_on->len; i++)
    {
      sqlite3_bind_int64 (self->st_dep_insert, 1, t->num);
      sqlite3_bind_text (self->st_dep_insert, 2, g_ptr_array_index (v.depends_on, i), -1, SQLITE_STATIC);
      ok = step_done (self->db, self->st_dep_insert, error);
    }
  for (guint i = 0; ok && t->new_comments && i < t->new_comments->len; i++)
    {
      Comment *c = &g_array_index (t->new_comments, Comment, i);
      sqlite3_stmt *cs = self->st_comment_insert;
      sqlite3_bind_int64 (cs, 1, t->num);
      sqlite3_bind_int64 (cs, 2, (gint64) c->peer);
      sqlite3_bind_int64 (cs, 3, (gint64) c->seq);
      sqlite3_bind_int64 (cs, 4, (gint64) c->hlc);
      sqlite3_bind_text (cs, 5, c->body, -1, SQLITE_STATIC);
      ok = step_done (self->db, cs, error);
    }

  /* Full-text row: rewritten whole (comments come from the table above). */
  if (ok && t->fts_dirty && !t->is_new)
    {
      sqlite3_bind_int64 (self->st_fts_delete, 1, t->num);
      ok = step_done (self->db, self->st_fts_delete, error);
    }
  if (ok && live && t->fts_dirty)
    {
      g_autofree char *labels = NULL;
      g_ptr_array_add (v.labels, NULL);
      labels = g_strjoinv (" ", (char **) v.labels->pdata);
      g_ptr_array_set_size (v.labels, v.labels->len - 1);
      sqlite3_stmt *fs = self->st_fts_insert;
      sqlite3_bind_int64 (fs, 1, t->num);
      sqlite3_bind_text (fs, 2, v.title, -1, SQLITE_STATIC);
      sqlite3_bind_text (fs, 3, v.body, -1, SQLITE_STATIC);
      sqlite3_bind_text (fs, 4, labels, -1, SQLITE_STATIC);
      ok = step_done (self->db, fs, error);
    }
  wsp_task_view_clear (&v);
  return ok;
}

/* Writes every dirty task of the batch, in row order: neighbouring tasks
 * share B-tree pages (tasks and the full-text rows are keyed by num), so a
 * large batch walks the tables once instead of jumping at random (with
 * 100,000 tasks the flush of a 78,000-op catch-up batch went from 4.5-6.5 s
 * to 3.6-5.9 s). */
static gboolean
flush_tasks (WspStore *self, GError **error)
{
  g_autoptr (GString) json = g_string_sized_new (1024);
  g_autoptr (GString) conflicts = g_string_sized_new (64);
  g_autoptr (GPtrArray) dirty = g_ptr_array_sized_new (g_hash_table_size (self->batch_tasks));
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, self->batch_tasks);
  while (g_hash_table_iter_next (&it, NULL, &value))
    if (((TaskEntry *) value)->dirty)
      g_ptr_array_add (dirty, value);
  g_ptr_array_sort (dirty, task_entry_cmp_num);
  for (guint i = 0; i < dirty->len; i++)
    if (!flush_task (self, g_ptr_array_index (dirty, i), json, conflicts, error))
      return FALSE;
  return TRUE;
}

static gboolean
flush_authors (WspStore *self, GError **error)
{
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, self->authors);
  while (g_hash_table_iter_next (&it, NULL, &value))
    {
      Author *a = value;
      if (!a->dirty)
        continue;
      g_autoptr (GBytes) deps = wsp_clock_encode (&a->full_deps);
      gsize deps_len;
      const void *deps_data = g_bytes_get_data (deps, &deps_len);
      sqlite3_stmt *st = self->st_peer_update;
      sqlite3_bind_int64 (st, 1, a->idx);
      sqlite3_bind_int64 (st, 2, (gint64) a->seq);
      sqlite3_bind_blob (st, 3, a->head, WSP_HASH_LEN, SQLITE_STATIC);
      sqlite3_bind_blob (st, 4, deps_data, (int) deps_len, SQLITE_STATIC);
      if (a->has_pk)
        sqlite3_bind_blob (st, 5, a->pk, WSP_PK_LEN, SQLITE_STATIC);
      else
        sqlite3_bind_null (st, 5);
      if (!step_done (self->db, st, error))
        return FALSE;
      a->dirty = FALSE;
    }
  return TRUE;
}

/* ---- local writes → ops ------------------------------------------------ */

static gboolean
str_in (GPtrArray *arr, const char *s)
{
  for (guint i = 0; arr && i < arr->len; i++)
    if (strcmp (g_ptr_array_index (arr, i), s) == 0)
      return TRUE;
  return FALSE;
}

/* A label as the daemon accepts it: trimmed, non-empty, valid UTF-8. */
static char *
clean_label (const char *raw, const char *what, GError **error)
{
  if (!raw || !g_utf8_validate (raw, -1, NULL))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "%s: not valid UTF-8", what);
      return NULL;
    }
  g_autofree char *s = g_strstrip (g_strdup (raw));
  if (!*s)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "%s: empty value", what);
      return NULL;
    }
  return g_steal_pointer (&s);
}

/* Bodies of the ops one job makes, before they get seqs. */
typedef struct {
  GPtrArray *bodies;   /* GBytes* */
} Plan;

static gboolean
plan_add (Plan *plan, WspStore *self, WspOp *op, GError **error)
{
  guint n_deps = 0;
  /* deps: the entries of our clock that moved since our previous op. Only
   * the first op of a job can see a change; later ones get {}. The deps
   * of the whole plan are computed against self_author->full_deps, which
   * apply_op advances, so recompute per op. */
  if (plan->bodies->len == 0)
    op->deps = wsp_clock_diff (&self->clock, &self->self_author->full_deps, self->identity.peer, &n_deps);
  op->n_deps = n_deps;
  GBytes *body = wsp_op_encode (op);
  g_free (op->deps);
  op->deps = NULL;
  op->n_deps = 0;
  if (g_bytes_get_size (body) > WSP_MAX_OP_BODY)
    {
      g_bytes_unref (body);
      g_set_error (error, WSP_ERROR, WSP_ERROR_TOO_LARGE,
                   "the change is too large for one operation (%u bytes at most)", WSP_MAX_OP_BODY);
      return FALSE;
    }
  g_ptr_array_add (plan->bodies, body);
  return TRUE;
}

static guint64
now_ms (void)
{
  return (guint64) (g_get_real_time () / 1000);
}

static WspOp
op_template (WspStore *self, WspOpType type, const char *task)
{
  WspOp op = { 0 };
  op.hlc = wsp_hlc_now (&self->hlc, now_ms ());
  op.type = type;
  op.type_code = type;
  op.task = (char *) task;   /* borrowed; never freed through this op */
  op.data_ok = TRUE;
  return op;
}

static gboolean
plan_text_op (Plan *plan, WspStore *self, WspOpType type, const char *task, const char *text,
              GArray *observed, GError **error)
{
  WspOp op = op_template (self, type, task);
  op.text = (char *) text;
  if (observed)
    {
      op.observed = (WspDot *) observed->data;
      op.n_observed = observed->len;
    }
  return plan_add (plan, self, &op, error);
}

/* Validates and normalises the fields of w in place. */
static gboolean
validate_fields (WspWrite *w, GError **error)
{
  for (int f = WSP_FIELD_TITLE; f < WSP_FIELD_COUNT; f++)
    {
      if (!(w->field_mask & (1u << f)))
        continue;
      WspValue norm = { 0 };
      if (!wsp_field_normalize ((WspField) f, &w->fields[f], &norm))
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "%s: invalid value", wsp_field_to_string ((WspField) f));
          return FALSE;
        }
      wsp_value_clear (&w->fields[f]);
      w->fields[f] = norm;
    }
  return TRUE;
}

static gboolean
task_known (WspStore *self, const char *id, GError **error)
{
  TaskEntry *t = task_entry_get (self, id, FALSE, error);
  if (!t)
    return FALSE;
  WspTaskView v = { 0 };
  wsp_task_state_view (t->state, &v);
  gboolean exists = v.exists;
  wsp_task_view_clear (&v);
  return exists;
}

/* The cycle check's view of tasks this batch holds in memory (their
 * task_deps rows are written only when the batch is flushed). */
static gboolean
deps_overlay (const char *task, GPtrArray *deps, gpointer user_data)
{
  WspStore *self = user_data;
  TaskEntry *t = g_hash_table_lookup (self->batch_tasks, task);
  if (!t || !t->dirty)
    return FALSE;
  WspTaskView v = { 0 };
  wsp_task_state_view (t->state, &v);
  if (v.exists && !v.deleted)
    for (guint i = 0; i < v.depends_on->len; i++)
      g_ptr_array_add (deps, g_strdup (g_ptr_array_index (v.depends_on, i)));
  wsp_task_view_clear (&v);
  return TRUE;
}

static gboolean
plan_set_changes (Plan *plan, WspStore *self, const char *task, GPtrArray *current,
                  gboolean replace, GPtrArray *add, GPtrArray *remove, gboolean is_label,
                  WspTaskState *state, GError **error)
{
  const char *what = is_label ? "labels" : "depends_on";
  g_autoptr (GPtrArray) adds = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) removes = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; add && i < add->len; i++)
    {
      char *s = clean_label (g_ptr_array_index (add, i), what, error);
      if (!s)
        return FALSE;
      if (!is_label)
        {
          if (strcmp (s, task) == 0)
            {
              g_free (s);
              g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "depends_on: a task cannot depend on itself");
              return FALSE;
            }
          GError *local = NULL;
          if (!task_known (self, s, &local))
            {
              if (local)
                {
                  g_free (s);
                  g_propagate_error (error, local);
                  return FALSE;
                }
              g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "depends_on: unknown task '%s'", s);
              g_free (s);
              return FALSE;
            }
          gboolean cycle = FALSE;
          if (!wsp_store_search_would_cycle (self->db, self->st_deps_of, deps_overlay, self, task, s, &cycle, error))
            {
              g_free (s);
              return FALSE;
            }
          if (cycle)
            {
              g_set_error (error, WSP_ERROR, WSP_ERROR_CONFLICT,
                           "depends_on: '%s' already depends on '%s' (directly or through others): a cycle", s, task);
              g_free (s);
              return FALSE;
            }
        }
      if (!str_in (current, s) && !str_in (adds, s))
        g_ptr_array_add (adds, s);
      else
        g_free (s);
    }
  if (replace)
    {
      for (guint i = 0; current && i < current->len; i++)
        {
          const char *c = g_ptr_array_index (current, i);
          gboolean wanted = FALSE;
          for (guint j = 0; add && j < add->len && !wanted; j++)
            {
              g_autofree char *s = g_strstrip (g_strdup (g_ptr_array_index (add, j)));
              wanted = strcmp (s, c) == 0;
            }
          if (!wanted)
            g_ptr_array_add (removes, g_strdup (c));
        }
    }
  for (guint i = 0; remove && i < remove->len; i++)
    {
      g_autofree char *s = g_strstrip (g_strdup (g_ptr_array_index (remove, i)));
      if (str_in (current, s) && !str_in (removes, s))
        g_ptr_array_add (removes, g_steal_pointer (&s));
    }

  for (guint i = 0; i < removes->len; i++)
    {
      const char *s = g_ptr_array_index (removes, i);
      g_autoptr (GArray) tags = is_label ? wsp_task_state_label_tags (state, s) : wsp_task_state_dep_tags (state, s);
      if (!plan_text_op (plan, self, is_label ? WSP_OP_LABEL_REMOVE : WSP_OP_DEP_REMOVE, task, s, tags, error))
        return FALSE;
    }
  for (guint i = 0; i < adds->len; i++)
    if (!plan_text_op (plan, self, is_label ? WSP_OP_LABEL_ADD : WSP_OP_DEP_ADD, task,
                       g_ptr_array_index (adds, i), NULL, error))
      return FALSE;
  return TRUE;
}

static gboolean
field_differs (const WspTaskView *v, WspField f, const WspValue *val)
{
  const char *cur = NULL;
  switch (f)
    {
    case WSP_FIELD_TITLE: cur = v->title; break;
    case WSP_FIELD_BODY: cur = v->body; break;
    case WSP_FIELD_STATUS: cur = v->status; break;
    case WSP_FIELD_ASSIGNEE: cur = v->assignee; break;
    case WSP_FIELD_PARENT: cur = v->parent; break;
    case WSP_FIELD_DUE: cur = v->due; break;
    case WSP_FIELD_PRIORITY:
      return !(val->kind == WSP_VALUE_INT && val->i == v->priority);
    case WSP_FIELD_POSITION:
      return !(val->kind == WSP_VALUE_FLOAT && val->f == v->position);
    default:
      return TRUE;
    }
  const char *nv = val->kind == WSP_VALUE_STR ? val->str : NULL;
  if (!cur || !*cur)
    return nv && *nv;
  return !nv || strcmp (cur, nv) != 0;
}

/* Turns a local write into op bodies (validated; nothing applied yet). */
static gboolean
plan_write (WspStore *self, WspWrite *w, Plan *plan, GError **error)
{
  if (!w->task_id || !*w->task_id || !g_utf8_validate (w->task_id, -1, NULL))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "id: missing or invalid");
      return FALSE;
    }
  if (!validate_fields (w, error))
    return FALSE;

  TaskEntry *t = task_entry_get (self, w->task_id, FALSE, error);
  if (!t && error && *error)
    return FALSE;
  WspTaskView v = { 0 };
  if (t)
    wsp_task_state_view (t->state, &v);
  gboolean ok = FALSE;

  if (w->kind == WSP_WRITE_CREATE)
    {
      if (t && (v.exists || v.deleted))
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_CONFLICT, "task '%s' already exists", w->task_id);
          goto out;
        }
      WspOp op = op_template (self, WSP_OP_CREATE, w->task_id);
      for (int f = WSP_FIELD_TITLE; f < WSP_FIELD_COUNT; f++)
        {
          if (w->field_mask & (1u << f))
            op.fields[f] = w->fields[f];    /* borrowed */
          else
            wsp_field_default ((WspField) f, &op.fields[f]);
        }
      ok = plan_add (plan, self, &op, error);
      for (int f = WSP_FIELD_TITLE; f < WSP_FIELD_COUNT; f++)
        if (!(w->field_mask & (1u << f)))
          wsp_value_clear (&op.fields[f]);
      if (!ok)
        goto out;
      g_autoptr (WspTaskState) fresh = wsp_task_state_new (w->task_id);
      ok = plan_set_changes (plan, self, w->task_id, NULL, FALSE, w->labels_add, NULL, TRUE, fresh, error)
           && plan_set_changes (plan, self, w->task_id, NULL, FALSE, w->deps_add, NULL, FALSE, fresh, error);
      goto out;
    }

  if (!t || !v.exists)
    {
      g_set_error (error, WSP_ERROR, v.deleted ? WSP_ERROR_GONE : WSP_ERROR_NOT_FOUND,
                   "task '%s' %s", w->task_id, v.deleted ? "was deleted" : "not found");
      goto out;
    }
  if (v.deleted && w->kind != WSP_WRITE_COMMENT)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_GONE, "task '%s' was deleted", w->task_id);
      goto out;
    }

  switch (w->kind)
    {
    case WSP_WRITE_UPDATE:
      ok = TRUE;
      for (int f = WSP_FIELD_TITLE; ok && f < WSP_FIELD_COUNT; f++)
        {
          if (!(w->field_mask & (1u << f)) || !field_differs (&v, (WspField) f, &w->fields[f]))
            continue;
          WspOp op = op_template (self, WSP_OP_SET, w->task_id);
          op.field = (WspField) f;
          op.value = w->fields[f];    /* borrowed */
          ok = plan_add (plan, self, &op, error);
        }
      ok = ok
           && plan_set_changes (plan, self, w->task_id, v.labels, w->labels_replace, w->labels_add,
                                w->labels_remove, TRUE, t->state, error)
           && plan_set_changes (plan, self, w->task_id, v.depends_on, w->deps_replace, w->deps_add,
                                w->deps_remove, FALSE, t->state, error);
      break;
    case WSP_WRITE_DELETE:
      {
        WspOp op = op_template (self, WSP_OP_DELETE, w->task_id);
        ok = plan_add (plan, self, &op, error);
      }
      break;
    case WSP_WRITE_COMMENT:
      if (!w->comment_body || !g_utf8_validate (w->comment_body, -1, NULL) || !*w->comment_body)
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "body: a comment needs text");
          break;
        }
      ok = plan_text_op (plan, self, WSP_OP_COMMENT_ADD, w->task_id, w->comment_body, NULL, error);
      break;
    default:
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "unknown write kind");
      break;
    }

out:
  if (t)
    wsp_task_view_clear (&v);
  return ok;
}

/* Signs our head h(seq) and stores the signature. */
static gboolean
sign_head (WspStore *self, guint64 seq, const guint8 hash[WSP_HASH_LEN], GError **error)
{
  guint8 sig[WSP_SIG_LEN];
  wsp_head_sign (&self->identity, seq, hash, sig);
  sqlite3_stmt *st = self->st_sig_insert;
  sqlite3_bind_int64 (st, 1, self->self_author->idx);
  sqlite3_bind_int64 (st, 2, (gint64) seq);
  sqlite3_bind_blob (st, 3, sig, WSP_SIG_LEN, SQLITE_TRANSIENT);
  self->unsigned_bytes = 0;
  return step_done (self->db, st, error);
}

/* Applies the planned bodies as our next ops. Our runs must fit 61,440
 * bytes (SPEC 7.3), and runs end at signed heads: sign the head before an
 * op that would make the unsigned stretch too long to send as one run. */
static gboolean
commit_plan (WspStore *self, Plan *plan, GError **error)
{
  Author *me = self->self_author;
  for (guint i = 0; i < plan->bodies->len; i++)
    {
      gsize len;
      const guint8 *body = g_bytes_get_data (g_ptr_array_index (plan->bodies, i), &len);
      if (self->unsigned_bytes && self->unsigned_bytes + len + 3 > WSP_MAX_OP_BODY
          && !sign_head (self, me->seq, me->head, error))
        return FALSE;
      self->unsigned_bytes += len + 3;
      guint8 hash[WSP_HASH_LEN];
      wsp_chain_next (me->head, body, len, hash);
      guint64 seq = me->seq + 1;
      if (!apply_op (self, me, seq, body, len, hash, NULL, FALSE, error))
        return FALSE;
      if (self->batch_local_first_seq == 0)
        self->batch_local_first_seq = seq;
      self->batch_local_last_seq = seq;
    }
  return TRUE;
}


/* ---- received runs ----------------------------------------------------- */

#define WSP_STORE_MAX_PENDING 200000   /* ops held for causal order, all authors */

/* h(seq) of author a for a seq it holds (applied or pending). */
static gboolean
held_hash (WspStore *self, Author *a, guint64 seq, guint8 out[WSP_HASH_LEN], GError **error)
{
  if (seq == a->seq)
    {
      memcpy (out, a->head, WSP_HASH_LEN);
      return TRUE;
    }
  if (seq > a->seq)
    {
      PendingOp *p = g_queue_peek_nth (&a->pending, (guint) (seq - a->seq - 1));
      g_assert (p && p->seq == seq);
      memcpy (out, p->hash, WSP_HASH_LEN);
      return TRUE;
    }
  if (seq == 0)
    {
      wsp_chain_genesis (self->project_id, a->pk, out);
      return TRUE;
    }
  sqlite3_stmt *st = self->st_op_hash;
  sqlite3_bind_int64 (st, 1, a->idx);
  sqlite3_bind_int64 (st, 2, (gint64) seq);
  gboolean ok = sqlite3_step (st) == SQLITE_ROW && sqlite3_column_bytes (st, 0) == WSP_HASH_LEN;
  if (ok)
    memcpy (out, sqlite3_column_blob (st, 0), WSP_HASH_LEN);
  else
    g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "op %" G_GUINT64_FORMAT " of an author is missing", seq);
  sqlite3_reset (st);
  return ok;
}

static gboolean
pending_ready (WspStore *self, const PendingOp *p)
{
  return !p->decoded || wsp_clock_covers (&self->clock, p->op.deps, p->op.n_deps);
}

/* Applies every held op whose deps are now applied, until none is. */
static gboolean
drain_pending (WspStore *self, guint *n_applied, GError **error)
{
  gboolean progress = TRUE;
  while (progress && self->pending_total)
    {
      progress = FALSE;
      GHashTableIter it;
      gpointer value;
      g_hash_table_iter_init (&it, self->authors);
      while (g_hash_table_iter_next (&it, NULL, &value))
        {
          Author *a = value;
          PendingOp *p;
          while ((p = g_queue_peek_head (&a->pending)) && pending_ready (self, p))
            {
              gsize len;
              const guint8 *body = g_bytes_get_data (p->body, &len);
              if (!apply_op (self, a, p->seq, body, len, p->hash, &p->op, p->decoded, error))
                return FALSE;
              pending_op_free (g_queue_pop_head (&a->pending));
              self->pending_total--;
              (*n_applied)++;
              progress = TRUE;
            }
        }
    }
  return TRUE;
}

/* Verifies a run and keeps its new ops. Returns FALSE with CORRUPT for a
 * run that fails verification (nothing kept), or with another code when
 * SQLite fails (*fatal set). */
static gboolean
ingest_run (WspStore *self, Job *job, gboolean *fatal, GError **error)
{
  WspRun *run = job->run;
  guint n = run->ops ? run->ops->len : 0;
  *fatal = FALSE;
  job->ingest_status = WSP_INGEST_OK;

  if (wsp_peer_from_pk (run->pk) != run->peer)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT, "run: pk does not match peer");
      return FALSE;
    }
  if (n == 0 || run->from == 0 || run->from > (guint64) G_MAXINT64 - n)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT, "run: empty or bad 'from'");
      return FALSE;
    }
  Author *a = g_hash_table_lookup (self->authors, &run->peer);
  guint64 held = a ? author_held (a) : 0;
  if (run->from > held + 1)
    {
      job->ingest_status = WSP_INGEST_GAP;
      return TRUE;
    }

  /* Verify the whole chain and the signed head before keeping anything. */
  guint8 h[WSP_HASH_LEN];
  if (a)
    {
      if (!held_hash (self, a, run->from - 1, h, error))
        {
          *fatal = TRUE;
          return FALSE;
        }
    }
  else
    wsp_chain_genesis (self->project_id, run->pk, h);

  g_autofree guint8 *hashes = g_malloc ((gsize) n * WSP_HASH_LEN);
  for (guint i = 0; i < n; i++)
    {
      gsize len;
      const guint8 *body = g_bytes_get_data (g_ptr_array_index (run->ops, i), &len);
      guint64 seq = run->from + i;
      wsp_chain_next (h, body, len, h);
      memcpy (hashes + (gsize) i * WSP_HASH_LEN, h, WSP_HASH_LEN);
      if (a && seq <= held)
        {
          guint8 mine[WSP_HASH_LEN];
          if (!held_hash (self, a, seq, mine, error))
            {
              *fatal = TRUE;
              return FALSE;
            }
          if (memcmp (mine, h, WSP_HASH_LEN) != 0)
            {
              char peer[WSP_PEER_HEX_LEN + 1];
              wsp_peer_to_hex (run->peer, peer);
              g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT,
                           "run: op %" G_GUINT64_FORMAT " of %s differs from the one held (a fork)", seq, peer);
              return FALSE;
            }
        }
    }
  guint64 last = run->from + n - 1;
  if (!wsp_head_verify (run->pk, run->peer, last, h, run->sig))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT, "run: bad signature on head %" G_GUINT64_FORMAT, last);
      return FALSE;
    }

  guint new_ops = last > held ? (guint) (last - held) : 0;
  if (self->pending_total + new_ops > WSP_STORE_MAX_PENDING)
    {
      /* Too much waiting on missing deps: keep nothing; the peer resends. */
      job->ingest_status = WSP_INGEST_GAP;
      return TRUE;
    }

  if (!a && !(a = author_get (self, run->peer, run->pk, error)))
    {
      *fatal = TRUE;
      return FALSE;
    }
  sqlite3_stmt *st = self->st_sig_insert;
  sqlite3_bind_int64 (st, 1, a->idx);
  sqlite3_bind_int64 (st, 2, (gint64) last);
  sqlite3_bind_blob (st, 3, run->sig, WSP_SIG_LEN, SQLITE_STATIC);
  if (!step_done (self->db, st, error))
    {
      *fatal = TRUE;
      return FALSE;
    }

  for (guint64 seq = held + 1; seq <= last; seq++)
    {
      guint i = (guint) (seq - run->from);
      PendingOp *p = g_new0 (PendingOp, 1);
      p->seq = seq;
      p->body = g_bytes_ref (g_ptr_array_index (run->ops, i));
      memcpy (p->hash, hashes + (gsize) i * WSP_HASH_LEN, WSP_HASH_LEN);
      gsize len;
      const guint8 *body = g_bytes_get_data (p->body, &len);
      p->decoded = wsp_op_decode (body, len, run->peer, &p->op);
      g_queue_push_tail (&a->pending, p);
      self->pending_total++;
    }

  if (!drain_pending (self, &job->n_ops, error))
    {
      *fatal = TRUE;
      return FALSE;
    }
  return TRUE;
}

/* ---- the writer thread ------------------------------------------------- */

static void
job_finish (WspStore *self, Job *job)
{
  if (job->kind == JOB_SYNC_WRITE)
    {
      g_mutex_lock (job->sync_mutex);
      if (job->error && job->sync_error)
        g_propagate_error (job->sync_error, g_steal_pointer (&job->error));
      if (job->sync_n_ops)
        *job->sync_n_ops = job->n_ops;
      *job->sync_finished = TRUE;
      g_cond_signal (job->sync_cond);
      g_mutex_unlock (job->sync_mutex);
    }
  else if (job->kind == JOB_RUN)
    {
      g_atomic_int_add (&self->stat_runs, -1);   /* done: no longer pending */
      if (job->ingest_done)
        job->ingest_done (job->error, job->ingest_status, job->n_ops, job->user_data);
    }
  else if (job->done)
    {
      WspWriteResult r = { job->error, job->write ? job->write->task_id : NULL, job->n_ops };
      job->done (&r, job->user_data);
    }
  g_clear_error (&job->error);
  wsp_write_free (job->write);
  wsp_run_free (job->run);
  g_free (job);
}

/* Sign the head of this batch's local run. */
static gboolean
sign_local_head (WspStore *self, GError **error)
{
  if (!self->batch_local_last_seq || !self->unsigned_bytes)
    return TRUE;
  return sign_head (self, self->batch_local_last_seq, self->self_author->head, error);
}

static void
batch_reset (WspStore *self)
{
  g_hash_table_remove_all (self->batch_tasks);
  g_hash_table_remove_all (self->touched_set);
  g_ptr_array_set_size (self->batch_touched, 0);
  self->batch_local_first_seq = self->batch_local_last_seq = 0;
}

/* Reloads writer-thread caches from the database after a rollback. */
static void
reload_after_rollback (WspStore *self)
{
  g_autoptr (GError) error = NULL;
  g_hash_table_remove_all (self->authors);
  wsp_clock_clear (&self->clock);
  wsp_clock_init (&self->clock);
  if (!store_load_authors (self, &error))
    g_critical ("reloading authors after a rollback failed: %s", error->message);
  self->self_author = g_hash_table_lookup (self->authors, &self->identity.peer);
  self->pending_total = 0;   /* the held ops went with the authors */
  self->unsigned_bytes = 0;
}

static void
process_batch (WspStore *self, GPtrArray *jobs)
{
  g_autoptr (GError) error = NULL;
  guint64 saved_hlc = self->hlc.last;
  gint64 t_start = g_get_monotonic_time (), t_flush = 0, t_commit = 0;
  guint64 ops_before = __atomic_load_n (&self->stat_ops, __ATOMIC_RELAXED);

  if (!step_done (self->db, self->st_begin, &error))
    goto failed;

  for (guint i = 0; i < jobs->len; i++)
    {
      Job *job = g_ptr_array_index (jobs, i);
      if (job->kind == JOB_RUN)
        {
          gboolean fatal = FALSE;
          if (!ingest_run (self, job, &fatal, &job->error) && fatal)
            {
              /* SQLite failed: the error is in job->error; fail the batch. */
              error = g_error_copy (job->error);
              goto failed;
            }
          /* A catch-up touching more tasks than this writes them out and
           * lets their states go (same transaction): memory stays bounded
           * however many tasks a batch touches. */
          if (g_hash_table_size (self->batch_tasks) > self->batch_tasks_max)
            {
              if (!flush_tasks (self, &error))
                goto failed;
              g_hash_table_remove_all (self->batch_tasks);
            }
          continue;
        }
      Plan plan = { g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref) };
      if (plan_write (self, job->write, &plan, &job->error))
        {
          /* A SQLite failure here is fatal for the batch. */
          if (!commit_plan (self, &plan, &error))
            {
              g_ptr_array_unref (plan.bodies);
              goto failed;
            }
          job->n_ops = plan.bodies->len;
        }
      g_ptr_array_unref (plan.bodies);
    }

  t_flush = g_get_monotonic_time ();
  if (!flush_tasks (self, &error))
    goto failed;
  if (!flush_authors (self, &error) || !sign_local_head (self, &error)
      || !meta_set_int (self, "max_hlc", (gint64) self->hlc.last, &error))
    goto failed;
  t_commit = g_get_monotonic_time ();
  if (!step_done (self->db, self->st_commit, &error))
    goto failed;
  {
    gint64 t_end = g_get_monotonic_time ();
    g_debug ("batch: %u jobs, %" G_GUINT64_FORMAT " ops, %u tasks; apply %.1f ms, flush %.1f ms, commit %.1f ms",
             jobs->len, __atomic_load_n (&self->stat_ops, __ATOMIC_RELAXED) - ops_before, self->batch_touched->len,
             (t_flush - t_start) / 1000.0, (t_commit - t_flush) / 1000.0, (t_end - t_commit) / 1000.0);
  }

  __atomic_fetch_add (&self->stat_batches, 1, __ATOMIC_RELAXED);
  g_mutex_lock (&self->lock);
  wsp_clock_clear (&self->published_clock);
  wsp_clock_copy (&self->published_clock, &self->clock);
  g_mutex_unlock (&self->lock);

  /* Listeners before completions: when a writer learns its change is
   * durable, the file mirror and the event streams already have it. */
  if (self->batch_touched->len)
    {
      g_mutex_lock (&self->listeners_lock);
      for (guint i = 0; i < self->listeners->len; i++)
        {
          Listener *l = &g_array_index (self->listeners, Listener, i);
          l->fn ((const char *const *) self->batch_touched->pdata, self->batch_touched->len, &self->clock, l->user_data);
        }
      g_mutex_unlock (&self->listeners_lock);
    }

  for (guint i = 0; i < jobs->len; i++)
    job_finish (self, g_ptr_array_index (jobs, i));
  g_ptr_array_set_size (jobs, 0);
  batch_reset (self);
  return;

failed:
  g_warning ("store batch failed, rolling back: %s", error ? error->message : "unknown");
  sqlite3_reset (self->st_begin);
  step_done (self->db, self->st_rollback, NULL);
  self->hlc.last = MAX (saved_hlc, self->hlc.last);
  batch_reset (self);
  reload_after_rollback (self);
  for (guint i = 0; i < jobs->len; i++)
    {
      Job *job = g_ptr_array_index (jobs, i);
      if (!job->error)
        job->error = g_error_new (WSP_ERROR, WSP_ERROR_FAILED, "storing the change failed: %s",
                                  error ? error->message : "unknown");
      job->n_ops = 0;
      job_finish (self, job);
    }
  g_ptr_array_set_size (jobs, 0);
}

static gpointer
writer_thread (gpointer data)
{
  WspStore *self = data;
  g_autoptr (GPtrArray) jobs = g_ptr_array_new ();

  for (;;)
    {
      g_mutex_lock (&self->lock);
      while (g_queue_is_empty (&self->queue) && !self->closing)
        g_cond_wait (&self->cond, &self->lock);
      if (g_queue_is_empty (&self->queue) && self->closing)
        {
          g_mutex_unlock (&self->lock);
          break;
        }
      /* A batch is bounded in jobs and in received ops, so that one commit
       * (and the latency of everything in it) stays short. */
      /* Batches do not mix local writes with received runs, so a local
       * write never waits for the commit of a large catch-up batch. */
      guint weight = 0;
      while (jobs->len < WSP_STORE_MAX_BATCH && weight < WSP_STORE_MAX_BATCH_OPS
             && !g_queue_is_empty (&self->queue))
        {
          Job *job = g_queue_peek_head (&self->queue);
          if (jobs->len && (job->kind == JOB_RUN) != (((Job *) jobs->pdata[0])->kind == JOB_RUN))
            break;
          g_queue_pop_head (&self->queue);
          weight += job->kind == JOB_RUN && job->run->ops ? job->run->ops->len : 1;
          g_ptr_array_add (jobs, job);
        }
      g_atomic_int_set (&self->stat_depth, (gint) g_queue_get_length (&self->queue));
      g_mutex_unlock (&self->lock);

      process_batch (self, jobs);
    }
  return NULL;
}

/* ---- public: lifecycle ------------------------------------------------- */

WspStore *
wsp_store_open (const WspStoreOptions *opts, GError **error)
{
  g_return_val_if_fail (opts && opts->db_path && opts->project_id && opts->identity, NULL);

  WspStore *self = g_new0 (WspStore, 1);
  self->db_path = g_strdup (opts->db_path);
  self->project_id = g_strdup (opts->project_id);
  self->identity = *opts->identity;
  self->queue_max = opts->queue_max ? opts->queue_max : WSP_STORE_DEFAULT_QUEUE;
  self->batch_tasks_max = opts->batch_tasks_max ? opts->batch_tasks_max : WSP_STORE_DEFAULT_BATCH_TASKS;
  g_mutex_init (&self->lock);
  g_mutex_init (&self->listeners_lock);
  g_cond_init (&self->cond);
  g_queue_init (&self->queue);
  self->listeners = g_array_new (FALSE, FALSE, sizeof (Listener));
  wsp_clock_init (&self->clock);
  wsp_clock_init (&self->published_clock);
  self->authors = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL, (GDestroyNotify) author_free);
  self->batch_tasks = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, (GDestroyNotify) task_entry_free);
  self->batch_touched = g_ptr_array_new_with_free_func (g_free);
  self->touched_set = g_hash_table_new (g_str_hash, g_str_equal);

  int rc = sqlite3_open_v2 (self->db_path, &self->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "opening database %s failed: %s",
                   self->db_path, self->db ? sqlite3_errmsg (self->db) : sqlite3_errstr (rc));
      self->closed = TRUE;
      wsp_store_free (self);
      return NULL;
    }
  sqlite3_busy_timeout (self->db, 5000);

  if (!wsp_sql_exec (self->db,
                     "PRAGMA journal_mode = WAL;"
                     "PRAGMA synchronous = FULL;"
                     "PRAGMA foreign_keys = OFF;"
                     "PRAGMA cache_size = -16000;"
                     "PRAGMA wal_autocheckpoint = 4000;",
                     error)
      || !store_migrate (self, error) || !store_prepare (self, error))
    goto fail;

  /* The project this database belongs to never changes. */
  {
    g_autofree char *stored = meta_get_text (self->db, "project_id");
    if (stored && strcmp (stored, self->project_id) != 0)
      {
        g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT, "database %s belongs to project %s, not %s",
                     self->db_path, stored, self->project_id);
        goto fail;
      }
    if (!stored && !meta_set_text (self, "project_id", self->project_id, error))
      goto fail;
  }

  if (!store_load_authors (self, error))
    goto fail;
  self->hlc.last = (guint64) meta_get_int (self->db, "max_hlc", 0);
  self->self_author = author_get (self, self->identity.peer, self->identity.pk, error);
  if (!self->self_author)
    goto fail;

  wsp_clock_copy (&self->published_clock, &self->clock);
  self->thread = g_thread_try_new ("wsp-store", writer_thread, self, error);
  if (!self->thread)
    goto fail;
  return self;

fail:
  g_prefix_error (error, "store: ");
  self->closed = TRUE;
  wsp_store_free (self);
  return NULL;
}

void
wsp_store_close (WspStore *self)
{
  if (!self)
    return;
  g_mutex_lock (&self->lock);
  gboolean already = self->closing;
  self->closing = TRUE;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  if (already && !self->thread)
    return;
  if (self->thread)
    {
      g_thread_join (self->thread);
      self->thread = NULL;
    }
  if (self->db && !self->closed)
    {
      g_autoptr (GError) error = NULL;
      store_finalize_statements (self);
      if (!wsp_sql_exec (self->db, "PRAGMA wal_checkpoint(TRUNCATE)", &error))
        g_warning ("checkpoint at close failed: %s", error->message);
    }
  self->closed = TRUE;
}

void
wsp_store_free (WspStore *self)
{
  if (!self)
    return;
  wsp_store_close (self);
  store_finalize_statements (self);
  if (self->db)
    sqlite3_close (self->db);
  g_hash_table_unref (self->batch_tasks);
  g_hash_table_unref (self->touched_set);
  g_ptr_array_unref (self->batch_touched);
  g_hash_table_unref (self->authors);
  wsp_clock_clear (&self->clock);
  wsp_clock_clear (&self->published_clock);
  g_array_unref (self->listeners);
  g_queue_clear (&self->queue);
  g_mutex_clear (&self->lock);
  g_mutex_clear (&self->listeners_lock);
  g_cond_clear (&self->cond);
  g_free (self->db_path);
  g_free (self->project_id);
  memset (&self->identity, 0, sizeof self->identity);
  g_free (self);
}

void
wsp_store_add_listener (WspStore *self, WspStoreListener fn, gpointer user_data)
{
  Listener l = { fn, user_data };
  g_mutex_lock (&self->listeners_lock);
  g_array_append_val (self->listeners, l);
  g_mutex_unlock (&self->listeners_lock);
}

void
wsp_store_remove_listener (WspStore *self, WspStoreListener fn, gpointer user_data)
{
  g_mutex_lock (&self->listeners_lock);
  for (guint i = 0; i < self->listeners->len; i++)
    {
      Listener *l = &g_array_index (self->listeners, Listener, i);
      if (l->fn == fn && l->user_data == user_data)
        {
          g_array_remove_index (self->listeners, i);
          break;
        }
    }
  g_mutex_unlock (&self->listeners_lock);
}

void
wsp_store_get_stats (WspStore *self, WspStoreStats *out)
{
  out->queue_depth = (guint) g_atomic_int_get (&self->stat_depth);
  out->queue_max = self->queue_max;
  out->ops_applied = (guint64) __atomic_load_n (&self->stat_ops, __ATOMIC_RELAXED);
  out->batches = (guint64) __atomic_load_n (&self->stat_batches, __ATOMIC_RELAXED);
  out->writes_rejected_busy = (guint64) __atomic_load_n (&self->stat_busy, __ATOMIC_RELAXED);
  out->runs_pending = (guint) MAX (g_atomic_int_get (&self->stat_runs), 0);
}

/* ---- public: writes ---------------------------------------------------- */

static gboolean
enqueue (WspStore *self, Job *job, GError **error)
{
  g_mutex_lock (&self->lock);
  if (self->closing)
    {
      g_mutex_unlock (&self->lock);
      g_set_error (error, WSP_ERROR, WSP_ERROR_CLOSED, "the store is shutting down");
      return FALSE;
    }
  if (g_queue_get_length (&self->queue) >= self->queue_max)
    {
      g_mutex_unlock (&self->lock);
      __atomic_fetch_add (&self->stat_busy, 1, __ATOMIC_RELAXED);
      g_set_error (error, WSP_ERROR, WSP_ERROR_BUSY, "the store queue is full (%u jobs); retry shortly", self->queue_max);
      return FALSE;
    }
  g_queue_push_tail (&self->queue, job);
  g_atomic_int_set (&self->stat_depth, (gint) g_queue_get_length (&self->queue));
  g_cond_signal (&self->cond);
  g_mutex_unlock (&self->lock);
  return TRUE;
}

gboolean
wsp_store_submit (WspStore *self, WspWrite *w, WspWriteDone done, gpointer user_data, GError **error)
{
  Job *job = g_new0 (Job, 1);
  job->kind = JOB_WRITE;
  job->write = w;
  job->done = done;
  job->user_data = user_data;
  if (!enqueue (self, job, error))
    {
      wsp_write_free (w);
      g_free (job);
      return FALSE;
    }
  return TRUE;
}

gboolean
wsp_store_write_sync (WspStore *self, WspWrite *w, guint *out_n_ops, GError **error)
{
  GMutex mutex;
  GCond cond;
  gboolean finished = FALSE;
  GError *local = NULL;
  g_mutex_init (&mutex);
  g_cond_init (&cond);

  Job *job = g_new0 (Job, 1);
  job->kind = JOB_SYNC_WRITE;
  job->write = w;
  job->sync_mutex = &mutex;
  job->sync_cond = &cond;
  job->sync_finished = &finished;
  job->sync_error = &local;
  job->sync_n_ops = out_n_ops;
  gboolean ok = enqueue (self, job, error);
  if (!ok)
    {
      wsp_write_free (w);
      g_free (job);
    }
  else
    {
      g_mutex_lock (&mutex);
      while (!finished)
        g_cond_wait (&cond, &mutex);
      g_mutex_unlock (&mutex);
      if (local)
        {
          g_propagate_error (error, local);
          ok = FALSE;
        }
    }
  g_mutex_clear (&mutex);
  g_cond_clear (&cond);
  return ok;
}

/* ---- WspWrite ---------------------------------------------------------- */

WspWrite *
wsp_write_new (WspWriteKind kind, const char *task_id)
{
  WspWrite *w = g_new0 (WspWrite, 1);
  w->kind = kind;
  w->task_id = g_strdup (task_id);
  return w;
}

void
wsp_write_free (WspWrite *w)
{
  if (!w)
    return;
  g_free (w->task_id);
  for (int f = 0; f < WSP_FIELD_COUNT; f++)
    wsp_value_clear (&w->fields[f]);
  g_clear_pointer (&w->labels_add, g_ptr_array_unref);
  g_clear_pointer (&w->labels_remove, g_ptr_array_unref);
  g_clear_pointer (&w->deps_add, g_ptr_array_unref);
  g_clear_pointer (&w->deps_remove, g_ptr_array_unref);
  g_free (w->comment_body);
  g_free (w);
}

void
wsp_write_set_field (WspWrite *w, WspField field, WspValue *v)
{
  g_return_if_fail (field > WSP_FIELD_NONE && field < WSP_FIELD_COUNT);
  wsp_value_clear (&w->fields[field]);
  w->fields[field] = *v;
  memset (v, 0, sizeof *v);
  w->field_mask |= 1u << field;
}

/* ---- runs -------------------------------------------------------------- */

WspRun *
wsp_run_new (void)
{
  WspRun *run = g_new0 (WspRun, 1);
  run->ops = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  return run;
}

void
wsp_run_free (WspRun *run)
{
  if (!run)
    return;
  g_clear_pointer (&run->ops, g_ptr_array_unref);
  g_free (run);
}

gboolean
wsp_store_submit_run (WspStore *self, WspRun *run, WspIngestDone done, gpointer user_data, GError **error)
{
  Job *job = g_new0 (Job, 1);
  job->kind = JOB_RUN;
  job->run = run;
  job->ingest_done = done;
  job->user_data = user_data;
  g_atomic_int_inc (&self->stat_runs);   /* before the writer can finish it */
  if (!enqueue (self, job, error))
    {
      g_atomic_int_add (&self->stat_runs, -1);
      wsp_run_free (run);
      g_free (job);
      return FALSE;
    }
  return TRUE;
}

typedef struct {
  GMutex          mutex;
  GCond           cond;
  gboolean        finished;
  GError         *error;
  WspIngestStatus status;
  guint           applied;
} IngestWait;

static void
on_ingest_sync_done (const GError *error, WspIngestStatus status, guint n_applied, gpointer data)
{
  IngestWait *w = data;
  g_mutex_lock (&w->mutex);
  w->error = error ? g_error_copy (error) : NULL;
  w->status = status;
  w->applied = n_applied;
  w->finished = TRUE;
  g_cond_signal (&w->cond);
  g_mutex_unlock (&w->mutex);
}

gboolean
wsp_store_ingest_sync (WspStore *self, WspRun *run, WspIngestStatus *out_status, guint *out_applied, GError **error)
{
  IngestWait w = { 0 };
  g_mutex_init (&w.mutex);
  g_cond_init (&w.cond);
  gboolean ok = wsp_store_submit_run (self, run, on_ingest_sync_done, &w, error);
  if (ok)
    {
      g_mutex_lock (&w.mutex);
      while (!w.finished)
        g_cond_wait (&w.cond, &w.mutex);
      g_mutex_unlock (&w.mutex);
      if (out_status)
        *out_status = w.status;
      if (out_applied)
        *out_applied = w.applied;
      if (w.error)
        {
          g_propagate_error (error, w.error);
          ok = FALSE;
        }
    }
  g_mutex_clear (&w.mutex);
  g_cond_clear (&w.cond);
  return ok;
}

void
wsp_store_get_clock (WspStore *self, WspClock *out)
{
  g_mutex_lock (&self->lock);
  wsp_clock_copy (out, &self->published_clock);
  g_mutex_unlock (&self->lock);
}
