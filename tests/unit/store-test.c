/* store-test.c — the store through its public interface: local writes
 * become ops, the materialized views and the reader, persistence across a
 * reopen, the chain and signed heads, back-pressure. */
#include "store/wsp-store.h"
#include "crdt/wsp-chain.h"
#include "crdt/wsp-task-state.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <sqlite3.h>
#include <string.h>

#define PROJECT "abcdefghijklmnopqrstuvwxyz"

/* A replica: its own directory, identity and database. The test fixture
 * is one (a queue of 8); the export tests open more. */
typedef struct {
  char           *dir;
  char           *db_path;
  WspIdentity     id;
  guint           queue_max;
  WspStore       *store;
  WspStoreReader *reader;
} Replica;
typedef Replica Fixture;

/* Opens the store and a reader on the replica's database (again, after a
 * fixture_close: same directory and identity). */
static void
fixture_open (Replica *r)
{
  g_autoptr (GError) error = NULL;
  WspStoreOptions opts = { r->db_path, PROJECT, &r->id, r->queue_max };
  r->store = wsp_store_open (&opts, &error);
  g_assert_no_error (error);
  r->reader = wsp_store_reader_open (r->db_path, &error);
  g_assert_no_error (error);
}

static void
fixture_close (Replica *r)
{
  g_clear_pointer (&r->reader, wsp_store_reader_free);
  g_clear_pointer (&r->store, wsp_store_free);
}

static void
replica_open (Replica *r, guint queue_max)
{
  g_autoptr (GError) error = NULL;
  r->dir = g_dir_make_tmp ("wsp-store-XXXXXX", &error);
  g_assert_no_error (error);
  r->db_path = g_build_filename (r->dir, "state.db", NULL);
  wsp_identity_generate (&r->id);
  r->queue_max = queue_max;
  fixture_open (r);
}

static void
replica_close (Replica *r)
{
  fixture_close (r);
  const char *names[] = { "state.db", "state.db-wal", "state.db-shm" };
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *p = g_build_filename (r->dir, names[i], NULL);
      g_unlink (p);
    }
  g_rmdir (r->dir);
  g_clear_pointer (&r->dir, g_free);
  g_clear_pointer (&r->db_path, g_free);
}

static void
setup (Fixture *f, gconstpointer data)
{
  g_assert_true (wsp_crypto_init ());
  replica_open (f, 8);
}

static void
teardown (Fixture *f, gconstpointer data)
{
  replica_close (f);
}

static GPtrArray *
strs (const char *first, ...)
{
  GPtrArray *arr = g_ptr_array_new_with_free_func (g_free);
  va_list ap;
  va_start (ap, first);
  for (const char *s = first; s; s = va_arg (ap, const char *))
    g_ptr_array_add (arr, g_strdup (s));
  va_end (ap);
  return arr;
}

static guint
write_ok (Fixture *f, WspWrite *w)
{
  g_autoptr (GError) error = NULL;
  guint n = 0;
  g_assert_true (wsp_store_write_sync (f->store, w, &n, &error));
  g_assert_no_error (error);
  return n;
}

static void
write_fails (Fixture *f, WspWrite *w, WspErrorCode code, const char *needle)
{
  g_autoptr (GError) error = NULL;
  g_assert_false (wsp_store_write_sync (f->store, w, NULL, &error));
  g_assert_error (error, WSP_ERROR, (gint) code);
  if (needle)
    g_assert_nonnull (strstr (error->message, needle));
}

static WspWrite *
create_write (const char *id, const char *title)
{
  WspWrite *w = wsp_write_new (WSP_WRITE_CREATE, id);
  WspValue v = wsp_value_str (title);
  wsp_write_set_field (w, WSP_FIELD_TITLE, &v);
  return w;
}

static JsonObject *
get_task (Fixture *f, const char *id, JsonParser **parser_out)
{
  g_autoptr (GString) out = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (wsp_store_reader_task_json (f->reader, id, out, &error));
  g_assert_no_error (error);
  JsonParser *parser = json_parser_new ();
  g_assert_true (json_parser_load_from_data (parser, out->str, (gssize) out->len, &error));
  g_assert_no_error (error);
  *parser_out = parser;
  return json_node_get_object (json_parser_get_root (parser));
}

static void
test_create_and_read (Fixture *f, gconstpointer data)
{
  WspWrite *w = create_write ("ws-aaaaaaaaaa", "  Write the store  ");
  WspValue pri = wsp_value_int (1);
  wsp_write_set_field (w, WSP_FIELD_PRIORITY, &pri);
  w->labels_add = strs ("sync", " bug ", "sync", NULL);
  g_assert_cmpuint (write_ok (f, w), ==, 3);   /* create + 2 label.add */

  g_autoptr (JsonParser) p = NULL;
  JsonObject *t = get_task (f, "ws-aaaaaaaaaa", &p);
  g_assert_cmpstr (json_object_get_string_member (t, "title"), ==, "  Write the store  ");
  g_assert_cmpstr (json_object_get_string_member (t, "status"), ==, "todo");
  g_assert_cmpint (json_object_get_int_member (t, "priority"), ==, 1);
  g_assert_true (json_object_get_null_member (t, "assignee"));
  g_assert_true (json_object_get_null_member (t, "due"));
  JsonArray *labels = json_object_get_array_member (t, "labels");
  g_assert_cmpuint (json_array_get_length (labels), ==, 2);
  g_assert_cmpstr (json_array_get_string_element (labels, 0), ==, "bug");
  g_assert_cmpstr (json_array_get_string_element (labels, 1), ==, "sync");
  g_assert_cmpstr (json_object_get_string_member (t, "created_by"), ==, f->id.peer_hex);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (t, "comments")), ==, 0);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (t, "conflicts")), ==, 0);
}

static void
test_update_only_changes (Fixture *f, gconstpointer data)
{
  write_ok (f, create_write ("ws-bbbbbbbbbb", "One"));
  WspWrite *w = wsp_write_new (WSP_WRITE_UPDATE, "ws-bbbbbbbbbb");
  WspValue same = wsp_value_str ("One");
  WspValue st = wsp_value_str ("in_progress");
  wsp_write_set_field (w, WSP_FIELD_TITLE, &same);
  wsp_write_set_field (w, WSP_FIELD_STATUS, &st);
  g_assert_cmpuint (write_ok (f, w), ==, 1);   /* only status changed */

  w = wsp_write_new (WSP_WRITE_UPDATE, "ws-bbbbbbbbbb");
  WspValue st2 = wsp_value_str ("in_progress");
  wsp_write_set_field (w, WSP_FIELD_STATUS, &st2);
  g_assert_cmpuint (write_ok (f, w), ==, 0);   /* nothing changed, no op */
}

static void
test_labels_replace_and_remove (Fixture *f, gconstpointer data)
{
  WspWrite *w = create_write ("ws-cccccccccc", "Labels");
  w->labels_add = strs ("a", "b", NULL);
  write_ok (f, w);

  w = wsp_write_new (WSP_WRITE_UPDATE, "ws-cccccccccc");
  w->labels_replace = TRUE;
  w->labels_add = strs ("b", "c", NULL);
  g_assert_cmpuint (write_ok (f, w), ==, 2);   /* remove a, add c */

  w = wsp_write_new (WSP_WRITE_UPDATE, "ws-cccccccccc");
  w->labels_remove = strs ("b", "zzz", NULL);
  g_assert_cmpuint (write_ok (f, w), ==, 1);

  g_autoptr (JsonParser) p = NULL;
  JsonObject *t = get_task (f, "ws-cccccccccc", &p);
  JsonArray *labels = json_object_get_array_member (t, "labels");
  g_assert_cmpuint (json_array_get_length (labels), ==, 1);
  g_assert_cmpstr (json_array_get_string_element (labels, 0), ==, "c");

  w = wsp_write_new (WSP_WRITE_UPDATE, "ws-cccccccccc");
  w->labels_add = strs ("   ", NULL);
  write_fails (f, w, WSP_ERROR_INVALID, "labels");
}

static void
test_dependencies_validated (Fixture *f, gconstpointer data)
{
  write_ok (f, create_write ("ws-dddddddddd", "Base"));
  WspWrite *w = create_write ("ws-eeeeeeeeee", "Needs base");
  w->deps_add = strs ("ws-dddddddddd", NULL);
  g_assert_cmpuint (write_ok (f, w), ==, 2);

  w = create_write ("ws-ffffffffff", "Bad dep");
  w->deps_add = strs ("ws-nonexisten", NULL);
  write_fails (f, w, WSP_ERROR_INVALID, "depends_on");
  /* The rejected create changed nothing. */
  g_autoptr (GString) out = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  g_assert_false (wsp_store_reader_task_json (f->reader, "ws-ffffffffff", out, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_NOT_FOUND);

  w = wsp_write_new (WSP_WRITE_UPDATE, "ws-eeeeeeeeee");
  w->deps_add = strs ("ws-eeeeeeeeee", NULL);
  write_fails (f, w, WSP_ERROR_INVALID, "itself");
}

static void
test_invalid_values_change_nothing (Fixture *f, gconstpointer data)
{
  write_ok (f, create_write ("ws-gggggggggg", "Values"));
  WspWrite *w = wsp_write_new (WSP_WRITE_UPDATE, "ws-gggggggggg");
  WspValue title = wsp_value_str ("New title");
  WspValue pri = wsp_value_int (9);
  wsp_write_set_field (w, WSP_FIELD_TITLE, &title);
  wsp_write_set_field (w, WSP_FIELD_PRIORITY, &pri);
  write_fails (f, w, WSP_ERROR_INVALID, "priority");

  w = wsp_write_new (WSP_WRITE_UPDATE, "ws-gggggggggg");
  WspValue due = wsp_value_str ("2026-02-30");
  wsp_write_set_field (w, WSP_FIELD_DUE, &due);
  write_fails (f, w, WSP_ERROR_INVALID, "due");

  g_autoptr (JsonParser) p = NULL;
  JsonObject *t = get_task (f, "ws-gggggggggg", &p);
  g_assert_cmpstr (json_object_get_string_member (t, "title"), ==, "Values");
  g_assert_cmpint (json_object_get_int_member (t, "priority"), ==, 2);
}

static void
test_delete_and_comments (Fixture *f, gconstpointer data)
{
  write_ok (f, create_write ("ws-hhhhhhhhhh", "Doomed"));
  WspWrite *w = wsp_write_new (WSP_WRITE_COMMENT, "ws-hhhhhhhhhh");
  w->comment_body = g_strdup ("first words");
  write_ok (f, w);
  write_ok (f, wsp_write_new (WSP_WRITE_DELETE, "ws-hhhhhhhhhh"));

  g_autoptr (GString) out = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  g_assert_false (wsp_store_reader_task_json (f->reader, "ws-hhhhhhhhhh", out, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_GONE);
  g_assert_nonnull (strstr (out->str, "first words"));
  g_assert_false (wsp_store_reader_task_live (f->reader, "ws-hhhhhhhhhh"));

  w = wsp_write_new (WSP_WRITE_UPDATE, "ws-hhhhhhhhhh");
  WspValue title = wsp_value_str ("Back?");
  wsp_write_set_field (w, WSP_FIELD_TITLE, &title);
  write_fails (f, w, WSP_ERROR_GONE, NULL);
  write_fails (f, create_write ("ws-hhhhhhhhhh", "Again"), WSP_ERROR_CONFLICT, NULL);
  write_fails (f, wsp_write_new (WSP_WRITE_DELETE, "ws-unknown000"), WSP_ERROR_NOT_FOUND, NULL);
}

static void
test_list_filters_and_cursor (Fixture *f, gconstpointer data)
{
  for (int i = 0; i < 25; i++)
    {
      g_autofree char *id = g_strdup_printf ("ws-list%05d", i);
      g_autofree char *title = g_strdup_printf ("Task %d", i);
      WspWrite *w = create_write (id, title);
      WspValue pri = wsp_value_int (i % 3);
      wsp_write_set_field (w, WSP_FIELD_PRIORITY, &pri);
      if (i % 5 == 0)
        w->labels_add = strs ("five", NULL);
      write_ok (f, w);
    }

  /* Page through everything 10 at a time: 25 tasks, in order, no repeats. */
  g_autoptr (GPtrArray) seen = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *cursor = NULL;
  gint64 last_pri = -1;
  for (int page = 0; page < 4; page++)
    {
      WspListQuery q = { .priority = -1, .limit = 10, .cursor = cursor };
      g_autoptr (GString) out = g_string_new (NULL);
      g_autoptr (GError) error = NULL;
      g_assert_true (wsp_store_reader_list_json (f->reader, &q, out, &error));
      g_autoptr (JsonParser) parser = json_parser_new ();
      g_assert_true (json_parser_load_from_data (parser, out->str, -1, NULL));
      JsonObject *root = json_node_get_object (json_parser_get_root (parser));
      JsonArray *tasks = json_object_get_array_member (root, "tasks");
      for (guint i = 0; i < json_array_get_length (tasks); i++)
        {
          JsonObject *t = json_array_get_object_element (tasks, i);
          gint64 pri = json_object_get_int_member (t, "priority");
          g_assert_cmpint (pri, >=, last_pri);
          last_pri = pri;
          g_ptr_array_add (seen, g_strdup (json_object_get_string_member (t, "id")));
        }
      g_free (cursor);
      cursor = json_object_get_null_member (root, "next_cursor")
                 ? NULL : g_strdup (json_object_get_string_member (root, "next_cursor"));
      if (!cursor)
        break;
    }
  g_assert_cmpuint (seen->len, ==, 25);

  WspListQuery q = { .priority = -1, .limit = 100, .label = "five" };
  g_autoptr (GString) out = g_string_new (NULL);
  g_assert_true (wsp_store_reader_list_json (f->reader, &q, out, NULL));
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_assert_true (json_parser_load_from_data (parser, out->str, -1, NULL));
  JsonArray *tasks = json_object_get_array_member (json_node_get_object (json_parser_get_root (parser)), "tasks");
  g_assert_cmpuint (json_array_get_length (tasks), ==, 5);

  WspListQuery bad = { .priority = -1, .limit = 10, .cursor = "!!!" };
  g_autoptr (GError) error = NULL;
  g_string_truncate (out, 0);
  g_assert_false (wsp_store_reader_list_json (f->reader, &bad, out, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
}

static void
test_ready (Fixture *f, gconstpointer data)
{
  write_ok (f, create_write ("ws-base000000", "Base"));
  WspWrite *w = create_write ("ws-blocked000", "Blocked");
  w->deps_add = strs ("ws-base000000", NULL);
  write_ok (f, w);

  WspListQuery q = { .priority = -1, .limit = 100, .ready = TRUE };
  g_autoptr (GString) out = g_string_new (NULL);
  g_assert_true (wsp_store_reader_list_json (f->reader, &q, out, NULL));
  g_assert_nonnull (strstr (out->str, "\"id\":\"ws-base000000\""));
  g_assert_null (strstr (out->str, "\"id\":\"ws-blocked000\""));

  w = wsp_write_new (WSP_WRITE_UPDATE, "ws-base000000");
  WspValue done = wsp_value_str ("done");
  wsp_write_set_field (w, WSP_FIELD_STATUS, &done);
  write_ok (f, w);
  g_string_truncate (out, 0);
  g_assert_true (wsp_store_reader_list_json (f->reader, &q, out, NULL));
  g_assert_null (strstr (out->str, "\"id\":\"ws-base000000\""));
  g_assert_nonnull (strstr (out->str, "\"id\":\"ws-blocked000\""));
}

static void
test_full_text (Fixture *f, gconstpointer data)
{
  WspWrite *w = create_write ("ws-fts0000001", "Zebra crossing repair");
  write_ok (f, w);
  write_ok (f, create_write ("ws-fts0000002", "Paint the fence"));
  w = wsp_write_new (WSP_WRITE_COMMENT, "ws-fts0000002");
  w->comment_body = g_strdup ("needs a zebra pattern");
  write_ok (f, w);

  WspListQuery q = { .priority = -1, .limit = 100, .q = "zebra" };
  g_autoptr (GString) out = g_string_new (NULL);
  g_assert_true (wsp_store_reader_list_json (f->reader, &q, out, NULL));
  g_assert_nonnull (strstr (out->str, "ws-fts0000001"));
  g_assert_nonnull (strstr (out->str, "ws-fts0000002"));

  WspListQuery bad = { .priority = -1, .limit = 100, .q = "\"unterminated" };
  g_autoptr (GError) error = NULL;
  g_assert_false (wsp_store_reader_list_json (f->reader, &bad, out, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
}

/* The log holds a valid chain with a signed head, and everything survives
 * a reopen. */
static void
test_persistence_and_chain (Fixture *f, gconstpointer data)
{
  WspWrite *w = create_write ("ws-persist000", "Persist me");
  w->labels_add = strs ("x", NULL);
  write_ok (f, w);
  fixture_close (f);
  fixture_open (f);

  g_autoptr (JsonParser) p = NULL;
  JsonObject *t = get_task (f, "ws-persist000", &p);
  g_assert_cmpstr (json_object_get_string_member (t, "title"), ==, "Persist me");

  /* Next seq continues after a reopen. */
  write_ok (f, create_write ("ws-persist001", "After reopen"));
  fixture_close (f);

  sqlite3 *db = NULL;
  g_assert_cmpint (sqlite3_open_v2 (f->db_path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
  sqlite3_stmt *st = NULL;
  g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT seq, body, hash FROM ops ORDER BY seq", -1, &st, NULL), ==, SQLITE_OK);
  guint8 h[WSP_HASH_LEN];
  wsp_chain_genesis ("abcdefghijklmnopqrstuvwxyz", f->id.pk, h);
  guint64 expect = 1;
  while (sqlite3_step (st) == SQLITE_ROW)
    {
      g_assert_cmpint (sqlite3_column_int64 (st, 0), ==, (gint64) expect++);
      wsp_chain_next (h, sqlite3_column_blob (st, 1), (gsize) sqlite3_column_bytes (st, 1), h);
      g_assert_cmpmem (h, WSP_HASH_LEN, sqlite3_column_blob (st, 2), sqlite3_column_bytes (st, 2));
    }
  sqlite3_finalize (st);
  g_assert_cmpuint (expect, ==, 4);   /* create, label.add, create */

  g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT max(seq), sig FROM sigs", -1, &st, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (st), ==, SQLITE_ROW);
  g_assert_cmpint (sqlite3_column_int64 (st, 0), ==, 3);
  g_assert_true (wsp_head_verify (f->id.pk, f->id.peer, 3, h, sqlite3_column_blob (st, 1)));
  sqlite3_finalize (st);
  sqlite3_close (db);
  fixture_open (f);
}

/* A full queue refuses at once instead of growing. */
static GMutex busy_mutex;
static GCond busy_cond;
static guint busy_done;

static void
on_busy_done (const WspWriteResult *r, gpointer data)
{
  g_mutex_lock (&busy_mutex);
  busy_done++;
  g_cond_signal (&busy_cond);
  g_mutex_unlock (&busy_mutex);
}

static void
test_backpressure (Fixture *f, gconstpointer data)
{
  guint accepted = 0, refused = 0;
  for (int i = 0; i < 200; i++)
    {
      g_autofree char *id = g_strdup_printf ("ws-busy%05d", i);
      g_autoptr (GError) error = NULL;
      if (wsp_store_submit (f->store, create_write (id, "busy"), on_busy_done, NULL, &error))
        accepted++;
      else
        {
          g_assert_error (error, WSP_ERROR, WSP_ERROR_BUSY);
          refused++;
        }
    }
  /* The queue holds 8 jobs: a burst of 200 must see refusals. */
  g_assert_cmpuint (refused, >, 0);
  g_mutex_lock (&busy_mutex);
  while (busy_done < accepted)
    g_cond_wait (&busy_cond, &busy_mutex);
  g_mutex_unlock (&busy_mutex);
  WspStoreStats stats;
  wsp_store_get_stats (f->store, &stats);
  g_assert_cmpuint (stats.writes_rejected_busy, ==, refused);
}

/* ---- received runs ------------------------------------------------------ */


/* A simulated remote author: identity, chain head, seq, hlc. */
typedef struct {
  WspIdentity id;
  guint8      head[WSP_HASH_LEN];
  guint64     seq;
  guint64     hlc;
  GPtrArray  *bodies;    /* every body made, index seq-1 */
} Remote;

static void
remote_init (Remote *r)
{
  wsp_identity_generate (&r->id);
  wsp_chain_genesis (PROJECT, r->id.pk, r->head);
  r->seq = 0;
  r->hlc = (guint64) 1700000000000ULL << 16;
  r->bodies = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
}

static void
remote_clear (Remote *r)
{
  g_ptr_array_unref (r->bodies);
}

/* Makes the remote's next op body. deps: optional one entry. */
static GBytes *
remote_op (Remote *r, WspOpType type, const char *task, WspField field, const char *text,
           const WspDot *dep)
{
  WspOp op = { 0 };
  op.hlc = ++r->hlc;
  op.type = type;
  op.type_code = type;
  op.task = (char *) task;
  op.data_ok = TRUE;
  if (dep)
    {
      op.deps = (WspDot *) dep;
      op.n_deps = 1;
    }
  if (type == WSP_OP_CREATE)
    {
      for (int f = 1; f < WSP_FIELD_COUNT; f++)
        wsp_field_default ((WspField) f, &op.fields[f]);
      wsp_value_clear (&op.fields[WSP_FIELD_TITLE]);
      op.fields[WSP_FIELD_TITLE] = wsp_value_str (text);
    }
  else if (type == WSP_OP_SET)
    {
      op.field = field;
      op.value = wsp_value_str (text);
    }
  else
    op.text = (char *) text;
  GBytes *body = wsp_op_encode (&op);
  for (int f = 1; f < WSP_FIELD_COUNT; f++)
    wsp_value_clear (&op.fields[f]);
  wsp_value_clear (&op.value);
  r->seq++;
  wsp_chain_next (r->head, g_bytes_get_data (body, NULL), g_bytes_get_size (body), r->head);
  g_ptr_array_add (r->bodies, g_bytes_ref (body));
  return body;
}

/* A signed run of the remote's ops from..to (inclusive). */
static WspRun *
remote_run (Remote *r, guint64 from, guint64 to)
{
  WspRun *run = wsp_run_new ();
  run->peer = r->id.peer;
  memcpy (run->pk, r->id.pk, WSP_PK_LEN);
  run->from = from;
  guint8 h[WSP_HASH_LEN];
  wsp_chain_genesis (PROJECT, r->id.pk, h);
  for (guint64 s = 1; s <= to; s++)
    {
      GBytes *b = g_ptr_array_index (r->bodies, s - 1);
      wsp_chain_next (h, g_bytes_get_data (b, NULL), g_bytes_get_size (b), h);
      if (s >= from)
        g_ptr_array_add (run->ops, g_bytes_ref (b));
    }
  wsp_head_sign (&r->id, to, h, run->sig);
  return run;
}

static guint
ingest_ok (Fixture *f, WspRun *run, WspIngestStatus expect)
{
  g_autoptr (GError) error = NULL;
  WspIngestStatus st = 99;
  guint applied = 0;
  g_assert_true (wsp_store_ingest_sync (f->store, run, &st, &applied, &error));
  g_assert_no_error (error);
  g_assert_cmpint (st, ==, expect);
  return applied;
}

static void
ingest_fails (Fixture *f, WspRun *run, const char *needle)
{
  g_autoptr (GError) error = NULL;
  g_assert_false (wsp_store_ingest_sync (f->store, run, NULL, NULL, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, needle));
}

static void
test_ingest_applies_and_is_idempotent (Fixture *f, gconstpointer data)
{
  Remote b;
  remote_init (&b);
  g_bytes_unref (remote_op (&b, WSP_OP_CREATE, "ws-remote0001", 0, "From afar", NULL));
  g_bytes_unref (remote_op (&b, WSP_OP_LABEL_ADD, "ws-remote0001", 0, "remote", NULL));
  g_assert_cmpuint (ingest_ok (f, remote_run (&b, 1, 2), WSP_INGEST_OK), ==, 2);

  g_autoptr (JsonParser) p = NULL;
  JsonObject *t = get_task (f, "ws-remote0001", &p);
  g_assert_cmpstr (json_object_get_string_member (t, "title"), ==, "From afar");
  g_assert_cmpstr (json_object_get_string_member (t, "created_by"), ==, b.id.peer_hex);

  /* The same run again, and an overlapping one: nothing new. */
  g_assert_cmpuint (ingest_ok (f, remote_run (&b, 1, 2), WSP_INGEST_OK), ==, 0);
  g_bytes_unref (remote_op (&b, WSP_OP_SET, "ws-remote0001", WSP_FIELD_TITLE, "Renamed", NULL));
  g_assert_cmpuint (ingest_ok (f, remote_run (&b, 2, 3), WSP_INGEST_OK), ==, 1);

  WspClock clock;
  wsp_clock_init (&clock);
  wsp_store_get_clock (f->store, &clock);
  g_assert_cmpuint (wsp_clock_get (&clock, b.id.peer), ==, 3);
  wsp_clock_clear (&clock);
  remote_clear (&b);
}

static void
test_ingest_rejects_tampering (Fixture *f, gconstpointer data)
{
  Remote b;
  remote_init (&b);
  g_bytes_unref (remote_op (&b, WSP_OP_CREATE, "ws-tamper0001", 0, "Honest", NULL));

  /* A body changed after signing. */
  WspRun *run = remote_run (&b, 1, 1);
  gsize len;
  const guint8 *orig = g_bytes_get_data (g_ptr_array_index (run->ops, 0), &len);
  g_autofree guint8 *evil = g_memdup2 (orig, len);
  evil[len - 2] ^= 0x01;
  g_bytes_unref (g_ptr_array_index (run->ops, 0));
  g_ptr_array_index (run->ops, 0) = g_bytes_new (evil, len);
  ingest_fails (f, run, "signature");

  /* A bad signature. */
  run = remote_run (&b, 1, 1);
  run->sig[5] ^= 0x40;
  ingest_fails (f, run, "signature");

  /* Ops claiming another author: pk of b, peer of someone else. */
  run = remote_run (&b, 1, 1);
  run->peer ^= 1;
  ingest_fails (f, run, "pk");

  /* Nothing of that was kept. */
  g_autoptr (GString) out = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  g_assert_false (wsp_store_reader_task_json (f->reader, "ws-tamper0001", out, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_NOT_FOUND);

  /* The honest run still goes through. */
  g_assert_cmpuint (ingest_ok (f, remote_run (&b, 1, 1), WSP_INGEST_OK), ==, 1);
  remote_clear (&b);
}

static void
test_ingest_detects_fork (Fixture *f, gconstpointer data)
{
  Remote b;
  remote_init (&b);
  g_bytes_unref (remote_op (&b, WSP_OP_CREATE, "ws-fork000001", 0, "One", NULL));
  g_assert_cmpuint (ingest_ok (f, remote_run (&b, 1, 1), WSP_INGEST_OK), ==, 1);

  /* The same author signs a different history for seq 1. */
  Remote forked = b;
  forked.bodies = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  wsp_chain_genesis (PROJECT, forked.id.pk, forked.head);
  forked.seq = 0;
  g_bytes_unref (remote_op (&forked, WSP_OP_CREATE, "ws-fork000001", 0, "Other", NULL));
  ingest_fails (f, remote_run (&forked, 1, 1), "fork");
  remote_clear (&forked);
  remote_clear (&b);
}

static void
test_ingest_gap_and_causal_wait (Fixture *f, gconstpointer data)
{
  Remote b, c;
  remote_init (&b);
  remote_init (&c);
  g_bytes_unref (remote_op (&c, WSP_OP_CREATE, "ws-causal0001", 0, "By c", NULL));
  WspDot dep = { c.id.peer, 1 };
  b.hlc = MAX (b.hlc, c.hlc);   /* b has seen c's op: its clock is past it */
  g_bytes_unref (remote_op (&b, WSP_OP_SET, "ws-causal0001", WSP_FIELD_TITLE, "Edited by b", &dep));
  g_bytes_unref (remote_op (&b, WSP_OP_COMMENT_ADD, "ws-causal0001", 0, "b was here", NULL));

  /* A run starting after a gap is not kept. */
  g_assert_cmpuint (ingest_ok (f, remote_run (&b, 2, 2), WSP_INGEST_GAP), ==, 0);
  /* b's ops wait for c's create… */
  g_assert_cmpuint (ingest_ok (f, remote_run (&b, 1, 2), WSP_INGEST_OK), ==, 0);
  g_autoptr (GString) out = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  g_assert_false (wsp_store_reader_task_json (f->reader, "ws-causal0001", out, &error));
  /* …which releases them. */
  g_assert_cmpuint (ingest_ok (f, remote_run (&c, 1, 1), WSP_INGEST_OK), ==, 3);
  g_autoptr (JsonParser) p = NULL;
  JsonObject *t = get_task (f, "ws-causal0001", &p);
  g_assert_cmpstr (json_object_get_string_member (t, "title"), ==, "Edited by b");
  JsonArray *comments = json_object_get_array_member (t, "comments");
  g_assert_cmpuint (json_array_get_length (comments), ==, 1);
  g_assert_cmpstr (json_object_get_string_member (json_array_get_object_element (comments, 0), "author"), ==, b.id.peer_hex);
  remote_clear (&b);
  remote_clear (&c);
}

/* A local title edit concurrent with a remote one: both kept, one shown. */
static void
test_concurrent_title_conflict (Fixture *f, gconstpointer data)
{
  Remote b;
  remote_init (&b);
  g_bytes_unref (remote_op (&b, WSP_OP_CREATE, "ws-conflict01", 0, "Base", NULL));
  ingest_ok (f, remote_run (&b, 1, 1), WSP_INGEST_OK);

  WspWrite *w = wsp_write_new (WSP_WRITE_UPDATE, "ws-conflict01");
  WspValue v = wsp_value_str ("Local title");
  wsp_write_set_field (w, WSP_FIELD_TITLE, &v);
  write_ok (f, w);
  /* b did not see the local edit. */
  g_bytes_unref (remote_op (&b, WSP_OP_SET, "ws-conflict01", WSP_FIELD_TITLE, "Remote title", NULL));
  ingest_ok (f, remote_run (&b, 2, 2), WSP_INGEST_OK);

  g_autoptr (JsonParser) p = NULL;
  JsonObject *t = get_task (f, "ws-conflict01", &p);
  JsonArray *conflicts = json_object_get_array_member (t, "conflicts");
  g_assert_cmpuint (json_array_get_length (conflicts), ==, 1);
  JsonObject *c = json_array_get_object_element (conflicts, 0);
  g_assert_cmpstr (json_object_get_string_member (c, "field"), ==, "title");
  const char *shown = json_object_get_string_member (t, "title");
  const char *other = json_object_get_string_member (c, "value");
  g_assert_cmpstr (shown, !=, other);
  g_assert_true ((g_str_equal (shown, "Local title") && g_str_equal (other, "Remote title"))
                 || (g_str_equal (shown, "Remote title") && g_str_equal (other, "Local title")));

  /* A local write that has seen both resolves the conflict. */
  w = wsp_write_new (WSP_WRITE_UPDATE, "ws-conflict01");
  v = wsp_value_str ("Merged title");
  wsp_write_set_field (w, WSP_FIELD_TITLE, &v);
  write_ok (f, w);
  g_autoptr (JsonParser) p2 = NULL;
  t = get_task (f, "ws-conflict01", &p2);
  g_assert_cmpuint (json_array_get_length (json_object_get_array_member (t, "conflicts")), ==, 0);
  remote_clear (&b);
}

static void
test_dependency_cycles_refused (Fixture *f, gconstpointer data)
{
  write_ok (f, create_write ("ws-cyclec0000", "C"));
  WspWrite *w = create_write ("ws-cycleb0000", "B");
  w->deps_add = strs ("ws-cyclec0000", NULL);
  write_ok (f, w);
  w = create_write ("ws-cyclea0000", "A");
  w->deps_add = strs ("ws-cycleb0000", NULL);
  write_ok (f, w);

  /* C → A would close A → B → C → A. */
  w = wsp_write_new (WSP_WRITE_UPDATE, "ws-cyclec0000");
  w->deps_add = strs ("ws-cyclea0000", NULL);
  write_fails (f, w, WSP_ERROR_CONFLICT, "cycle");
  /* B → A directly too. */
  w = wsp_write_new (WSP_WRITE_UPDATE, "ws-cycleb0000");
  w->deps_add = strs ("ws-cyclea0000", NULL);
  write_fails (f, w, WSP_ERROR_CONFLICT, "cycle");
  /* A harmless extra edge is fine. */
  w = wsp_write_new (WSP_WRITE_UPDATE, "ws-cyclea0000");
  w->deps_add = strs ("ws-cyclec0000", NULL);
  g_assert_cmpuint (write_ok (f, w), ==, 1);
}

/* Our own runs must fit a message: heads are signed often enough that
 * every stretch between two signed heads stays under 61,440 bytes. */
static void
test_signed_heads_bound_runs (Fixture *f, gconstpointer data)
{
  write_ok (f, create_write ("ws-bigruns000", "Big"));
  g_autofree char *big = g_strnfill (40000, 'x');
  g_autofree char *big2 = g_strnfill (40000, 'y');
  WspWrite *w = wsp_write_new (WSP_WRITE_UPDATE, "ws-bigruns000");
  WspValue t = wsp_value_str (big);
  WspValue b = wsp_value_str (big2);
  wsp_write_set_field (w, WSP_FIELD_TITLE, &t);
  wsp_write_set_field (w, WSP_FIELD_BODY, &b);
  g_assert_cmpuint (write_ok (f, w), ==, 2);   /* one job, two ~40 KB ops */
  fixture_close (f);

  sqlite3 *db = NULL;
  g_assert_cmpint (sqlite3_open_v2 (f->db_path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
  sqlite3_stmt *st = NULL;
  g_assert_cmpint (sqlite3_prepare_v2 (db,
                   "SELECT o.seq, length(o.body), s.sig IS NOT NULL FROM ops o LEFT JOIN sigs s"
                   " ON s.peer = o.peer AND s.seq = o.seq ORDER BY o.seq", -1, &st, NULL), ==, SQLITE_OK);
  gsize stretch = 0;
  guint heads = 0;
  while (sqlite3_step (st) == SQLITE_ROW)
    {
      stretch += (gsize) sqlite3_column_int (st, 1) + 3;
      g_assert_cmpuint (stretch, <=, 61440 - 160);
      if (sqlite3_column_int (st, 2))
        {
          stretch = 0;
          heads++;
        }
    }
  g_assert_cmpuint (stretch, ==, 0);   /* the last op is a signed head */
  g_assert_cmpuint (heads, >=, 3);     /* create; title; body */
  sqlite3_finalize (st);
  sqlite3_close (db);
  fixture_open (f);
}

/* A database of schema version 1 (before the sort indexes) is migrated in
 * place on open and keeps its tasks. */
static void
test_migrate_v1 (Fixture *f, gconstpointer data)
{
  write_ok (f, create_write ("ws-migrate001", "Old data"));
  fixture_close (f);
  sqlite3 *db = NULL;
  g_assert_cmpint (sqlite3_open (f->db_path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, "DROP INDEX tasks_by_updated; DROP INDEX tasks_by_created;"
                                 " PRAGMA user_version = 1;", NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (db);

  fixture_open (f);
  g_autoptr (JsonParser) p = NULL;
  JsonObject *t = get_task (f, "ws-migrate001", &p);
  g_assert_cmpstr (json_object_get_string_member (t, "title"), ==, "Old data");
  fixture_close (f);

  g_assert_cmpint (sqlite3_open_v2 (f->db_path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
  sqlite3_stmt *st = NULL;
  g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT count(*) FROM sqlite_master WHERE name IN"
                                       " ('tasks_by_updated', 'tasks_by_created')", -1, &st, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (st), ==, SQLITE_ROW);
  g_assert_cmpint (sqlite3_column_int (st, 0), ==, 2);
  sqlite3_finalize (st);
  g_assert_cmpint (sqlite3_prepare_v2 (db, "PRAGMA user_version", -1, &st, NULL), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_step (st), ==, SQLITE_ROW);
  g_assert_cmpint (sqlite3_column_int (st, 0), ==, 2);
  sqlite3_finalize (st);
  sqlite3_close (db);
  fixture_open (f);
}

/* A database from a newer wspd is refused, not damaged. */
static void
test_refuses_newer_schema (Fixture *f, gconstpointer data)
{
  fixture_close (f);
  sqlite3 *db = NULL;
  g_assert_cmpint (sqlite3_open (f->db_path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, "PRAGMA user_version = 99;", NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (db);
  g_autoptr (GError) error = NULL;
  WspStoreOptions opts = { f->db_path, "abcdefghijklmnopqrstuvwxyz", &f->id, 8 };
  WspStore *store = wsp_store_open (&opts, &error);
  g_assert_null (store);
  g_assert_error (error, WSP_ERROR, WSP_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "newer"));
  g_assert_cmpint (sqlite3_open (f->db_path, &db), ==, SQLITE_OK);
  g_assert_cmpint (sqlite3_exec (db, "PRAGMA user_version = 2;", NULL, NULL, NULL), ==, SQLITE_OK);
  sqlite3_close (db);
  fixture_open (f);
}

/* A cycle that arrives from a peer (concurrent dep.adds) is reported, and
 * ready/blocked still answer. */
static void
test_remote_cycle_reported (Fixture *f, gconstpointer data)
{
  write_ok (f, create_write ("ws-rcycleb000", "B"));
  WspWrite *w = create_write ("ws-rcyclea000", "A");
  w->deps_add = strs ("ws-rcycleb000", NULL);
  write_ok (f, w);

  Remote b;
  remote_init (&b);
  b.hlc = (guint64) g_get_real_time () / 1000 << 16;
  g_bytes_unref (remote_op (&b, WSP_OP_DEP_ADD, "ws-rcycleb000", 0, "ws-rcyclea000", NULL));
  ingest_ok (f, remote_run (&b, 1, 1), WSP_INGEST_OK);

  g_autoptr (GString) out = g_string_new (NULL);
  guint n = 0;
  g_autoptr (GError) error = NULL;
  g_assert_true (wsp_store_reader_cycles_json (f->reader, out, &n, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (n, ==, 1);
  g_assert_nonnull (strstr (out->str, "dependency_cycle"));
  g_assert_nonnull (strstr (out->str, "ws-rcyclea000"));
  g_assert_nonnull (strstr (out->str, "ws-rcycleb000"));

  WspListQuery q = { .priority = -1, .limit = 100, .blocked = TRUE };
  g_string_truncate (out, 0);
  g_assert_true (wsp_store_reader_list_json (f->reader, &q, out, &error));
  g_assert_nonnull (strstr (out->str, "ws-rcyclea000"));
  WspListQuery r = { .priority = -1, .limit = 100, .ready = TRUE };
  g_string_truncate (out, 0);
  g_assert_true (wsp_store_reader_list_json (f->reader, &r, out, &error));
  g_assert_null (strstr (out->str, "\"id\":\"ws-rcyclea000\""));
  remote_clear (&b);
}

/* ---- export: the runs another replica lacks (SPEC 7.3) ------------------ */

static guint64
clock_sum (const WspClock *c)
{
  guint64 n = 0;
  for (guint i = 0; i < c->len; i++)
    n += c->dots[i].seq;
  return n;
}

static guint64
run_first_hlc (const WspRun *run)
{
  gsize len;
  const guint8 *body = g_bytes_get_data (g_ptr_array_index (run->ops, 0), &len);
  WspOp op = { 0 };
  g_assert_true (wsp_op_decode (body, len, run->peer, &op));
  guint64 hlc = op.hlc;
  wsp_op_clear (&op);
  return hlc;
}

typedef struct {
  guint calls;
  guint max_runs_per_call;
} ExportStats;

/* Calls wsp_store_reader_export until *done, checking every call: sizes
 * within bounds, at least one run unless done, each author's runs
 * contiguous from the cursor, first ops in (hlc, peer) order. Returns all
 * runs in order. */
static GPtrArray *
export_all (WspStoreReader *reader, WspExport *ex, gsize max_bytes, ExportStats *stats)
{
  GPtrArray *all = g_ptr_array_new_with_free_func ((GDestroyNotify) wsp_run_free);
  WspClock seen;
  wsp_clock_init (&seen);
  wsp_export_get_clock (ex, &seen);
  guint64 last_hlc = 0;
  WspPeer last_peer = 0;
  gboolean done = FALSE;
  ExportStats st = { 0 };
  while (!done)
    {
      g_autoptr (GPtrArray) runs = g_ptr_array_new_with_free_func ((GDestroyNotify) wsp_run_free);
      g_autoptr (GError) error = NULL;
      g_assert_true (wsp_store_reader_export (reader, ex, max_bytes, runs, &done, &error));
      g_assert_no_error (error);
      g_assert_cmpuint (++st.calls, <, 200000);
      if (!done)
        g_assert_cmpuint (runs->len, >, 0);
      st.max_runs_per_call = MAX (st.max_runs_per_call, runs->len);
      gsize sum = 0;
      for (guint i = 0; i < runs->len; i++)
        {
          WspRun *run = g_ptr_array_index (runs, i);
          gsize size = wsp_run_encoded_size (run);
          g_assert_cmpuint (run->ops->len, >, 0);
          g_assert_cmpuint (size, <=, WSP_RUN_MAX_BYTES);
          g_assert_true (wsp_peer_from_pk (run->pk) == run->peer);
          sum += size;
          /* Starts at the cursor: no gap, nothing sent twice. */
          g_assert_cmpuint (run->from, ==, wsp_clock_get (&seen, run->peer) + 1);
          wsp_clock_set (&seen, run->peer, run->from + run->ops->len - 1);
          /* Picked by the smallest (hlc, peer) of a run's first op; an
           * author's hlcs only grow, so the picks never go back. */
          guint64 hlc = run_first_hlc (run);
          g_assert_true (hlc > last_hlc || (hlc == last_hlc && run->peer >= last_peer));
          last_hlc = hlc;
          last_peer = run->peer;
        }
      if (runs->len > 1)
        g_assert_cmpuint (sum, <=, max_bytes);
      for (guint i = 0; i < runs->len; i++)
        g_ptr_array_add (all, g_steal_pointer (&runs->pdata[i]));
      g_ptr_array_set_size (runs, 0);
    }
  /* The cursor is what was sent. */
  WspClock cursor;
  wsp_clock_init (&cursor);
  wsp_export_get_clock (ex, &cursor);
  g_assert_true (wsp_clock_equal (&cursor, &seen));
  wsp_clock_clear (&cursor);
  wsp_clock_clear (&seen);
  if (stats)
    *stats = st;
  return all;
}

static guint
count_ops (GPtrArray *runs)
{
  guint n = 0;
  for (guint i = 0; i < runs->len; i++)
    n += ((WspRun *) g_ptr_array_index (runs, i))->ops->len;
  return n;
}

/* Ingests every run (taken from the array) into store: each must verify. */
static void
ingest_all (WspStore *store, GPtrArray *runs)
{
  for (guint i = 0; i < runs->len; i++)
    {
      g_autoptr (GError) error = NULL;
      WspIngestStatus status = 99;
      WspRun *run = g_steal_pointer (&runs->pdata[i]);
      g_assert_true (wsp_store_ingest_sync (store, run, &status, NULL, &error));
      g_assert_no_error (error);
      g_assert_cmpint (status, ==, WSP_INGEST_OK);
    }
}

static void
assert_same_clock (WspStore *a, WspStore *b)
{
  WspClock ca, cb;
  wsp_clock_init (&ca);
  wsp_clock_init (&cb);
  wsp_store_get_clock (a, &ca);
  wsp_store_get_clock (b, &cb);
  g_assert_true (wsp_clock_equal (&ca, &cb));
  wsp_clock_clear (&ca);
  wsp_clock_clear (&cb);
}

/* A run of bodies[from-1 … to-1] of id's chain, signed by id at to (what
 * the author itself could send). */
static WspRun *
signed_run (const WspIdentity *id, GPtrArray *bodies, guint64 from, guint64 to)
{
  WspRun *run = wsp_run_new ();
  run->peer = id->peer;
  memcpy (run->pk, id->pk, WSP_PK_LEN);
  run->from = from;
  guint8 h[WSP_HASH_LEN];
  wsp_chain_genesis (PROJECT, id->pk, h);
  for (guint64 s = 1; s <= to; s++)
    {
      GBytes *b = g_ptr_array_index (bodies, s - 1);
      wsp_chain_next (h, g_bytes_get_data (b, NULL), g_bytes_get_size (b), h);
      if (s >= from)
        g_ptr_array_add (run->ops, g_bytes_ref (b));
    }
  wsp_head_sign (id, to, h, run->sig);
  return run;
}

/* Local writes and two remote authors' runs on the fixture's store. */
static void
fill_mixed (Fixture *f, Remote *b, Remote *c)
{
  write_ok (f, create_write ("ws-export0001", "First"));
  WspWrite *w = create_write ("ws-export0002", "Second");
  w->labels_add = strs ("one", "two", "three", NULL);
  g_assert_cmpuint (write_ok (f, w), ==, 4);      /* one signed stretch of 4 */
  for (int i = 0; i < 5; i++)
    g_bytes_unref (remote_op (b, i ? WSP_OP_COMMENT_ADD : WSP_OP_CREATE, "ws-exportb001", 0,
                              i ? "comment" : "By b", NULL));
  ingest_ok (f, remote_run (b, 1, 2), WSP_INGEST_OK);
  ingest_ok (f, remote_run (b, 3, 5), WSP_INGEST_OK);
  g_bytes_unref (remote_op (c, WSP_OP_CREATE, "ws-exportc001", 0, "By c", NULL));
  g_bytes_unref (remote_op (c, WSP_OP_SET, "ws-exportc001", WSP_FIELD_TITLE, "By c, renamed", NULL));
  ingest_ok (f, remote_run (c, 1, 2), WSP_INGEST_OK);
  w = wsp_write_new (WSP_WRITE_COMMENT, "ws-exportb001");   /* deps on b */
  w->comment_body = g_strdup ("seen b");
  write_ok (f, w);
}

/* From an empty clock: every op of every author, in runs that verify, and
 * the receiver ends with the source's clock. */
static void
test_export_everything (Fixture *f, gconstpointer data)
{
  Remote b, c;
  remote_init (&b);
  remote_init (&c);
  c.hlc -= 100;   /* c's ops are older than b's */
  fill_mixed (f, &b, &c);

  WspClock src;
  wsp_clock_init (&src);
  wsp_store_get_clock (f->store, &src);
  g_assert_cmpuint (clock_sum (&src), ==, 6 + 5 + 2);

  g_autoptr (WspExport) ex = wsp_export_new (NULL);
  g_autoptr (GPtrArray) runs = export_all (f->reader, ex, 65536, NULL);
  g_assert_cmpuint (count_ops (runs), ==, 13);
  /* Merged per author (everything fits one run), oldest first. */
  g_assert_cmpuint (runs->len, ==, 3);
  g_assert_true (((WspRun *) runs->pdata[0])->peer == c.id.peer);

  WspClock sent;
  wsp_clock_init (&sent);
  wsp_export_get_clock (ex, &sent);
  g_assert_true (wsp_clock_equal (&sent, &src));

  Replica dst = { 0 };
  replica_open (&dst, 64);
  ingest_all (dst.store, runs);
  assert_same_clock (f->store, dst.store);
  g_autoptr (GString) out = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (wsp_store_reader_task_json (dst.reader, "ws-exportc001", out, &error));
  g_assert_nonnull (strstr (out->str, "By c, renamed"));

  /* Nothing more, and asking again sends nothing twice. */
  g_autoptr (GPtrArray) again = g_ptr_array_new_with_free_func ((GDestroyNotify) wsp_run_free);
  gboolean done = FALSE;
  g_assert_true (wsp_store_reader_export (f->reader, ex, 65536, again, &done, &error));
  g_assert_true (done);
  g_assert_cmpuint (again->len, ==, 0);

  replica_close (&dst);
  wsp_clock_clear (&sent);
  wsp_clock_clear (&src);
  remote_clear (&b);
  remote_clear (&c);
}

/* From a partial clock: exactly the missing ops; runs that start inside a
 * signed stretch are accepted by a replica holding the prefix. */
static void
test_export_partial (Fixture *f, gconstpointer data)
{
  Remote b, c;
  remote_init (&b);
  remote_init (&c);
  fill_mixed (f, &b, &c);   /* me: 1 | 2..5 | 6;  b: 1..2 | 3..5;  c: 1..2 */

  /* Our own bodies, from a full export. */
  g_autoptr (GPtrArray) mine = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  {
    g_autoptr (WspExport) ex = wsp_export_new (NULL);
    g_autoptr (GPtrArray) runs = export_all (f->reader, ex, G_MAXSIZE, NULL);
    for (guint i = 0; i < runs->len; i++)
      {
        WspRun *run = runs->pdata[i];
        if (run->peer == f->id.peer)
          for (guint j = 0; j < run->ops->len; j++)
            g_ptr_array_add (mine, g_bytes_ref (run->ops->pdata[j]));
      }
  }
  g_assert_cmpuint (mine->len, ==, 6);

  /* The receiver holds me 1..3 and b 1..4 (both inside stretches here),
   * signed by their authors, and nothing of c. */
  Replica dst = { 0 };
  replica_open (&dst, 64);
  ingest_ok (&(Fixture) { .store = dst.store }, signed_run (&f->id, mine, 1, 3), WSP_INGEST_OK);
  ingest_ok (&(Fixture) { .store = dst.store }, remote_run (&b, 1, 4), WSP_INGEST_OK);
  WspClock have;
  wsp_clock_init (&have);
  wsp_store_get_clock (dst.store, &have);
  g_assert_cmpuint (wsp_clock_get (&have, f->id.peer), ==, 3);
  g_assert_cmpuint (wsp_clock_get (&have, b.id.peer), ==, 4);

  g_autoptr (WspExport) ex = wsp_export_new (&have);
  g_autoptr (GPtrArray) runs = export_all (f->reader, ex, 65536, NULL);
  g_assert_cmpuint (count_ops (runs), ==, (6 - 3) + (5 - 4) + 2);
  for (guint i = 0; i < runs->len; i++)
    {
      WspRun *run = runs->pdata[i];
      if (run->peer == f->id.peer)
        g_assert_cmpuint (run->from, ==, 4);
      else if (run->peer == b.id.peer)
        g_assert_cmpuint (run->from, ==, 5);
      else
        g_assert_cmpuint (run->from, ==, 1);
    }
  ingest_all (dst.store, runs);
  assert_same_clock (f->store, dst.store);

  replica_close (&dst);
  wsp_clock_clear (&have);
  remote_clear (&b);
  remote_clear (&c);
}

/* max_bytes pages the export; *done at the end; later local writes come
 * out of the next call alone. */
static void
test_export_paging (Fixture *f, gconstpointer data)
{
  /* Many small authors (3 ops, one stretch each) and our own ops (one
   * stretch per write). */
  Remote rs[12];
  for (guint i = 0; i < G_N_ELEMENTS (rs); i++)
    {
      remote_init (&rs[i]);
      rs[i].hlc += i;
      g_autofree char *task = g_strdup_printf ("ws-paging%04u", i);
      g_bytes_unref (remote_op (&rs[i], WSP_OP_CREATE, task, 0, "Paged", NULL));
      g_bytes_unref (remote_op (&rs[i], WSP_OP_LABEL_ADD, task, 0, "paged", NULL));
      g_bytes_unref (remote_op (&rs[i], WSP_OP_COMMENT_ADD, task, 0, "a comment", NULL));
      ingest_ok (f, remote_run (&rs[i], 1, 3), WSP_INGEST_OK);
    }
  for (guint i = 0; i < 10; i++)
    {
      g_autofree char *id = g_strdup_printf ("ws-paginglc%02u", i);
      write_ok (f, create_write (id, "Local"));
    }
  const guint total = 12 * 3 + 10, stretches = 12 + 10;

  /* Several runs per call, never over max_bytes together. */
  g_autoptr (WspExport) ex = wsp_export_new (NULL);
  ExportStats st;
  g_autoptr (GPtrArray) runs = export_all (f->reader, ex, 1000, &st);
  g_assert_cmpuint (count_ops (runs), ==, total);
  g_assert_cmpuint (st.calls, >, 3);
  g_assert_cmpuint (st.max_runs_per_call, >, 1);

  /* max_bytes 0: one run per call, each exactly one signed stretch. */
  wsp_export_reset (ex, NULL);
  g_autoptr (GPtrArray) singles = export_all (f->reader, ex, 0, &st);
  g_assert_cmpuint (count_ops (singles), ==, total);
  g_assert_cmpuint (singles->len, ==, stretches);
  g_assert_cmpuint (st.max_runs_per_call, ==, 1);

  /* Unbounded: one run per author, all in one call. */
  wsp_export_reset (ex, NULL);
  g_autoptr (GPtrArray) whole = export_all (f->reader, ex, G_MAXSIZE, &st);
  g_assert_cmpuint (whole->len, ==, 13);
  g_assert_cmpuint (st.calls, ==, 1);

  /* Caught up: nothing, done. New local writes: just those. */
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) next = g_ptr_array_new_with_free_func ((GDestroyNotify) wsp_run_free);
  gboolean done = FALSE;
  g_assert_true (wsp_store_reader_export (f->reader, ex, 1000, next, &done, &error));
  g_assert_true (done);
  g_assert_cmpuint (next->len, ==, 0);
  write_ok (f, create_write ("ws-pagingnew1", "New"));
  write_ok (f, create_write ("ws-pagingnew2", "Newer"));
  g_assert_true (wsp_store_reader_export (f->reader, ex, 1000, next, &done, &error));
  g_assert_no_error (error);
  g_assert_true (done);
  g_assert_cmpuint (next->len, ==, 1);   /* two stretches, merged */
  WspRun *run = next->pdata[0];
  g_assert_true (run->peer == f->id.peer);
  g_assert_cmpuint (run->from, ==, 11);
  g_assert_cmpuint (run->ops->len, ==, 2);

  /* All of it verifies at a fresh replica. */
  Replica dst = { 0 };
  replica_open (&dst, 64);
  ingest_all (dst.store, whole);
  ingest_all (dst.store, next);
  assert_same_clock (f->store, dst.store);
  replica_close (&dst);
  for (guint i = 0; i < G_N_ELEMENTS (rs); i++)
    remote_clear (&rs[i]);
}

/* reset and advance move the cursor; ops that are not applied, or applied
 * but not covered by a signed head held here, are not exported. */
static void
test_export_cursor_and_unsigned (Fixture *f, gconstpointer data)
{
  Remote b, c;
  remote_init (&b);
  remote_init (&c);
  g_bytes_unref (remote_op (&c, WSP_OP_CREATE, "ws-cursorc001", 0, "By c", NULL));
  b.hlc = MAX (b.hlc, c.hlc);
  g_bytes_unref (remote_op (&b, WSP_OP_CREATE, "ws-cursorb001", 0, "By b", NULL));
  WspDot dep = { c.id.peer, 1 };
  g_bytes_unref (remote_op (&b, WSP_OP_SET, "ws-cursorc001", WSP_FIELD_TITLE, "b edits c", &dep));
  g_bytes_unref (remote_op (&b, WSP_OP_COMMENT_ADD, "ws-cursorb001", 0, "more", NULL));
  /* b 1..3 signed only at 3: op 1 is applied, 2..3 wait for c's op. */
  ingest_ok (f, remote_run (&b, 1, 3), WSP_INGEST_OK);
  write_ok (f, create_write ("ws-cursorme01", "Mine"));
  WspClock src;
  wsp_clock_init (&src);
  wsp_store_get_clock (f->store, &src);
  g_assert_cmpuint (wsp_clock_get (&src, b.id.peer), ==, 1);

  g_autoptr (WspExport) ex = wsp_export_new (NULL);
  {
    g_autoptr (GPtrArray) runs = export_all (f->reader, ex, 65536, NULL);
    g_assert_cmpuint (runs->len, ==, 1);   /* ours only: b's op 1 has no head of its own */
    g_assert_true (((WspRun *) runs->pdata[0])->peer == f->id.peer);
  }
  /* c arrives: b 2..3 are applied, and the head at 3 covers 1..3. */
  ingest_ok (f, remote_run (&c, 1, 1), WSP_INGEST_OK);
  {
    g_autoptr (GPtrArray) runs = export_all (f->reader, ex, 65536, NULL);
    g_assert_cmpuint (count_ops (runs), ==, 1 + 3);
  }
  WspClock got;
  wsp_clock_init (&got);
  wsp_export_get_clock (ex, &got);
  wsp_clock_clear (&src);
  wsp_store_get_clock (f->store, &src);
  g_assert_true (wsp_clock_equal (&got, &src));

  /* reset: exactly the given clock, backwards included. */
  WspClock req;
  wsp_clock_init (&req);
  wsp_clock_set (&req, b.id.peer, 1);
  wsp_export_reset (ex, &req);
  wsp_export_get_clock (ex, &got);
  g_assert_true (wsp_clock_equal (&got, &req));
  {
    g_autoptr (GPtrArray) runs = export_all (f->reader, ex, 65536, NULL);
    g_assert_cmpuint (count_ops (runs), ==, 1 + 2 + 1);   /* me 1, b 2..3 (a suffix), c 1 */
  }

  /* advance: entrywise max, never backwards. */
  wsp_export_reset (ex, &req);            /* b: 1 */
  WspClock ack;
  wsp_clock_init (&ack);
  wsp_clock_set (&ack, b.id.peer, 0);
  wsp_clock_set (&ack, c.id.peer, 1);
  wsp_export_advance (ex, &ack);          /* b stays 1, c: 1 */
  wsp_clock_set (&ack, b.id.peer, 2);
  wsp_export_advance (ex, &ack);          /* b: 2 */
  wsp_clock_set (&ack, b.id.peer, 1);
  wsp_export_advance (ex, &ack);          /* b stays 2 */
  wsp_export_get_clock (ex, &got);
  g_assert_cmpuint (wsp_clock_get (&got, b.id.peer), ==, 2);
  g_assert_cmpuint (wsp_clock_get (&got, c.id.peer), ==, 1);
  g_assert_cmpuint (wsp_clock_get (&got, f->id.peer), ==, 0);
  {
    g_autoptr (GPtrArray) runs = export_all (f->reader, ex, 65536, NULL);
    g_assert_cmpuint (count_ops (runs), ==, 1 + 1);   /* me 1, b 3 */
  }
  /* Past what we hold: nothing of ours, even once we write more. */
  wsp_clock_set (&ack, f->id.peer, 100);
  wsp_export_advance (ex, &ack);
  write_ok (f, create_write ("ws-cursorme02", "Mine too"));
  {
    g_autoptr (GPtrArray) runs = export_all (f->reader, ex, 65536, NULL);
    g_assert_cmpuint (runs->len, ==, 0);
  }
  wsp_clock_clear (&ack);
  wsp_clock_clear (&req);
  wsp_clock_clear (&got);
  wsp_clock_clear (&src);
  remote_clear (&b);
  remote_clear (&c);
}

/* Signed stretches are never split, and merged only within 61,440 bytes:
 * three ~35 KB stretches go as three runs whatever max_bytes is; a cursor
 * inside one gives its suffix alone. */
static void
test_export_stretches_not_split (Fixture *f, gconstpointer data)
{
  Remote b;
  remote_init (&b);
  g_autofree char *text = g_strnfill (3500, 'q');
  g_bytes_unref (remote_op (&b, WSP_OP_CREATE, "ws-stretch001", 0, "Stretches", NULL));
  for (guint i = 1; i < 30; i++)
    g_bytes_unref (remote_op (&b, WSP_OP_COMMENT_ADD, "ws-stretch001", 0, text, NULL));
  for (guint from = 1; from <= 30; from += 10)
    ingest_ok (f, remote_run (&b, from, from + 9), WSP_INGEST_OK);

  const gsize budgets[] = { 0, 40000, WSP_RUN_MAX_BYTES, 65536, G_MAXSIZE };
  for (gsize i = 0; i < G_N_ELEMENTS (budgets); i++)
    {
      g_autoptr (WspExport) ex = wsp_export_new (NULL);
      g_autoptr (GPtrArray) runs = export_all (f->reader, ex, budgets[i], NULL);
      g_assert_cmpuint (runs->len, ==, 3);
      for (guint j = 0; j < 3; j++)
        {
          WspRun *run = runs->pdata[j];
          g_assert_cmpuint (run->from, ==, 1 + 10 * j);
          g_assert_cmpuint (run->ops->len, ==, 10);
          g_assert_cmpuint (wsp_run_encoded_size (run), >, 30000);
        }
    }

  /* From 12: the suffix 13..20 (~28 KB) and 21..30 (~35 KB) do not fit
   * one run together. */
  WspClock have;
  wsp_clock_init (&have);
  wsp_clock_set (&have, b.id.peer, 12);
  g_autoptr (WspExport) ex = wsp_export_new (&have);
  g_autoptr (GPtrArray) runs = export_all (f->reader, ex, G_MAXSIZE, NULL);
  g_assert_cmpuint (runs->len, ==, 2);
  g_assert_cmpuint (((WspRun *) runs->pdata[0])->from, ==, 13);
  g_assert_cmpuint (((WspRun *) runs->pdata[0])->ops->len, ==, 8);
  g_assert_cmpuint (((WspRun *) runs->pdata[1])->from, ==, 21);
  /* From 14: 15..20 (~21 KB) and 21..30 do, and are merged. */
  wsp_clock_set (&have, b.id.peer, 14);
  wsp_export_reset (ex, &have);
  g_autoptr (GPtrArray) merged = export_all (f->reader, ex, G_MAXSIZE, NULL);
  g_assert_cmpuint (merged->len, ==, 1);
  g_assert_cmpuint (((WspRun *) merged->pdata[0])->from, ==, 15);
  g_assert_cmpuint (((WspRun *) merged->pdata[0])->ops->len, ==, 16);

  /* The suffixes verify at a replica holding the prefix. */
  Replica dst = { 0 };
  replica_open (&dst, 64);
  ingest_ok (&(Fixture) { .store = dst.store }, remote_run (&b, 1, 12), WSP_INGEST_OK);
  ingest_all (dst.store, runs);
  assert_same_clock (f->store, dst.store);
  replica_close (&dst);
  replica_open (&dst, 64);
  ingest_ok (&(Fixture) { .store = dst.store }, remote_run (&b, 1, 14), WSP_INGEST_OK);
  ingest_all (dst.store, merged);
  assert_same_clock (f->store, dst.store);
  replica_close (&dst);
  wsp_clock_clear (&have);
  remote_clear (&b);
}

/* A stretch some signer let grow past 61,440 bytes cannot be sent to
 * anyone: that author stops there, with one warning; others go on. */
static void
test_export_oversized_stretch (Fixture *f, gconstpointer data)
{
  if (!g_test_subprocess ())
    {
      g_test_trap_subprocess (NULL, 0, G_TEST_SUBPROCESS_DEFAULT);
      g_test_trap_assert_passed ();
      g_test_trap_assert_stderr ("*does not fit one run*");
      g_test_trap_assert_stderr_unmatched ("*does not fit one run*does not fit one run*");
      return;
    }
  g_log_set_always_fatal (G_LOG_LEVEL_ERROR);   /* the warning is expected */
  Remote b, c;
  remote_init (&b);
  remote_init (&c);
  g_autofree char *big = g_strnfill (35000, 'z');
  g_bytes_unref (remote_op (&b, WSP_OP_CREATE, "ws-oversize01", 0, "Big", NULL));
  g_bytes_unref (remote_op (&b, WSP_OP_COMMENT_ADD, "ws-oversize01", 0, big, NULL));
  g_bytes_unref (remote_op (&b, WSP_OP_COMMENT_ADD, "ws-oversize01", 0, big, NULL));
  g_bytes_unref (remote_op (&b, WSP_OP_COMMENT_ADD, "ws-oversize01", 0, "small", NULL));
  ingest_ok (f, remote_run (&b, 1, 1), WSP_INGEST_OK);
  ingest_ok (f, remote_run (&b, 2, 3), WSP_INGEST_OK);   /* ~70 KB under one head */
  ingest_ok (f, remote_run (&b, 4, 4), WSP_INGEST_OK);
  g_bytes_unref (remote_op (&c, WSP_OP_CREATE, "ws-oversize02", 0, "Fine", NULL));
  ingest_ok (f, remote_run (&c, 1, 1), WSP_INGEST_OK);

  g_autoptr (WspExport) ex = wsp_export_new (NULL);
  for (int round = 0; round < 2; round++)
    {
      g_autoptr (GPtrArray) runs = export_all (f->reader, ex, 65536, NULL);
      g_assert_cmpuint (count_ops (runs), ==, round ? 0 : 2);   /* b 1, c 1 */
    }
  WspClock got;
  wsp_clock_init (&got);
  wsp_export_get_clock (ex, &got);
  g_assert_cmpuint (wsp_clock_get (&got, b.id.peer), ==, 1);
  wsp_clock_clear (&got);
  remote_clear (&b);
  remote_clear (&c);
}

typedef struct {
  GMutex mutex;
  GCond  cond;
  guint  in_flight;
  guint  failed;
} Flight;

static void
on_flight_done (const WspWriteResult *r, gpointer data)
{
  Flight *fl = data;
  g_mutex_lock (&fl->mutex);
  fl->in_flight--;
  if (r->error)
    fl->failed++;
  g_cond_signal (&fl->cond);
  g_mutex_unlock (&fl->mutex);
}

/* n task creates (one op each), pipelined so that they batch. */
static void
write_many (WspStore *store, const char *prefix, guint n)
{
  Flight fl = { 0 };
  g_mutex_init (&fl.mutex);
  g_cond_init (&fl.cond);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *id = g_strdup_printf ("%s%08u", prefix, i);
      g_autofree char *title = g_strdup_printf ("Exported task number %u", i);
      g_mutex_lock (&fl.mutex);
      while (fl.in_flight >= 512)
        g_cond_wait (&fl.cond, &fl.mutex);
      fl.in_flight++;
      g_mutex_unlock (&fl.mutex);
      g_autoptr (GError) error = NULL;
      g_assert_true (wsp_store_submit (store, create_write (id, title), on_flight_done, &fl, &error));
    }
  g_mutex_lock (&fl.mutex);
  while (fl.in_flight)
    g_cond_wait (&fl.cond, &fl.mutex);
  g_mutex_unlock (&fl.mutex);
  g_assert_cmpuint (fl.failed, ==, 0);
  g_mutex_clear (&fl.mutex);
  g_cond_clear (&fl.cond);
}

/* 20,000 local ops round-trip into another replica in runs of at most
 * 61,440 bytes; the export is timed. */
static void
test_export_large (Fixture *f, gconstpointer data)
{
  const guint n = 20000;
  Replica src = { 0 }, dst = { 0 };
  replica_open (&src, 4096);
  replica_open (&dst, 4096);
  write_many (src.store, "ws-", n);

  /* Catch-up as peer sync does it: one message's worth per call. */
  g_autoptr (WspExport) ex = wsp_export_new (NULL);
  ExportStats st;
  gint64 t0 = g_get_monotonic_time ();
  g_autoptr (GPtrArray) runs = export_all (src.reader, ex, WSP_RUN_MAX_BYTES, &st);
  gint64 t1 = g_get_monotonic_time ();
  g_assert_cmpuint (count_ops (runs), ==, n);
  /* And everything in one call. */
  wsp_export_reset (ex, NULL);
  g_autoptr (GPtrArray) all = g_ptr_array_new_with_free_func ((GDestroyNotify) wsp_run_free);
  gboolean done = FALSE;
  g_autoptr (GError) error = NULL;
  gint64 t2 = g_get_monotonic_time ();
  g_assert_true (wsp_store_reader_export (src.reader, ex, G_MAXSIZE, all, &done, &error));
  gint64 t3 = g_get_monotonic_time ();
  g_assert_no_error (error);
  g_assert_true (done);
  g_assert_cmpuint (count_ops (all), ==, n);
  g_assert_cmpuint (all->len, ==, runs->len);
  gsize bytes = 0;
  for (guint i = 0; i < runs->len; i++)
    bytes += wsp_run_encoded_size (runs->pdata[i]);
  g_test_message ("export of %u ops (%" G_GSIZE_FORMAT " bytes in %u runs): %.1f ms in %u calls of <= %d bytes,"
                  " %.1f ms in one call", n, bytes, runs->len, (double) (t1 - t0) / 1000.0, st.calls,
                  WSP_RUN_MAX_BYTES, (double) (t3 - t2) / 1000.0);

  ingest_all (dst.store, runs);
  assert_same_clock (src.store, dst.store);
  g_assert_cmpint (wsp_store_reader_count_tasks (dst.reader), ==, n);
  replica_close (&dst);
  replica_close (&src);
}

typedef struct {
  GMutex mutex;
  GCond  cond;
  guint  in_flight;
  guint  failed;
  WspStore *store;      /* when set: check its runs_pending */
  guint  miscounted;
} RunFlight;

static void
on_run_flight_done (const GError *error, WspIngestStatus status, guint n_applied, gpointer data)
{
  RunFlight *fl = data;
  g_mutex_lock (&fl->mutex);
  if (fl->store)
    {
      /* Every run was submitted before the first completion (the test
       * holds the mutex meanwhile); this one is no longer pending. */
      WspStoreStats stats;
      wsp_store_get_stats (fl->store, &stats);
      if (stats.runs_pending != fl->in_flight - 1)
        fl->miscounted++;
    }
  fl->in_flight--;
  if (error || status != WSP_INGEST_OK)
    fl->failed++;
  g_cond_signal (&fl->cond);
  g_mutex_unlock (&fl->mutex);
}

/* A catch-up batch touching more tasks than batch_tasks_max writes them out
 * mid-batch and reloads those touched again: the result is the same as
 * holding them all. */
static void
test_batch_task_limit (Fixture *f, gconstpointer data)
{
  const guint n = 300;
  Replica src = { 0 }, whole = { 0 }, limited = { 0 };
  replica_open (&src, 4096);
  replica_open (&whole, 4096);
  replica_open (&limited, 4096);
  g_clear_pointer (&limited.reader, wsp_store_reader_free);
  g_clear_pointer (&limited.store, wsp_store_free);
  g_autoptr (GError) error = NULL;
  WspStoreOptions opts = { limited.db_path, PROJECT, &limited.id, 4096, 7 };
  limited.store = wsp_store_open (&opts, &error);
  g_assert_no_error (error);
  limited.reader = wsp_store_reader_open (limited.db_path, &error);
  g_assert_no_error (error);

  /* Creates, then a second touch of every task (a title and a comment),
   * so that evicted tasks are loaded again in the same batch. */
  write_many (src.store, "ws-", n);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *id = g_strdup_printf ("ws-%08u", i);
      WspWrite *w = wsp_write_new (i % 2 ? WSP_WRITE_COMMENT : WSP_WRITE_UPDATE, id);
      if (i % 2)
        w->comment_body = g_strdup_printf ("comment %u", i);
      else
        {
          g_autofree char *title = g_strdup_printf ("Retitled %u", i);
          WspValue v = wsp_value_str (title);
          wsp_write_set_field (w, WSP_FIELD_TITLE, &v);
        }
      g_assert_true (wsp_store_write_sync (src.store, w, NULL, &error));
      g_assert_no_error (error);
    }

  g_autoptr (WspExport) ex = wsp_export_new (NULL);
  /* Small runs: the eviction happens between runs of one batch. */
  g_autoptr (GPtrArray) runs = export_all (src.reader, ex, 0, NULL);
  g_assert_cmpuint (runs->len, >, 20);
  g_autoptr (GPtrArray) copy = g_ptr_array_new_with_free_func ((GDestroyNotify) wsp_run_free);
  for (guint i = 0; i < runs->len; i++)
    {
      WspRun *r = runs->pdata[i], *c = wsp_run_new ();
      c->peer = r->peer;
      memcpy (c->pk, r->pk, WSP_PK_LEN);
      c->from = r->from;
      memcpy (c->sig, r->sig, WSP_SIG_LEN);
      for (guint j = 0; j < r->ops->len; j++)
        g_ptr_array_add (c->ops, g_bytes_ref (r->ops->pdata[j]));
      g_ptr_array_add (copy, c);
    }
  ingest_all (whole.store, runs);

  /* All at once, so that the writer takes them as one batch. */
  RunFlight fl = { 0 };
  g_mutex_init (&fl.mutex);
  g_cond_init (&fl.cond);
  fl.in_flight = copy->len;
  fl.store = limited.store;
  g_mutex_lock (&fl.mutex);
  for (guint i = 0; i < copy->len; i++)
    g_assert_true (wsp_store_submit_run (limited.store, g_steal_pointer (&copy->pdata[i]), on_run_flight_done, &fl,
                                         &error));
  WspStoreStats stats;
  wsp_store_get_stats (limited.store, &stats);
  /* Received runs count as pending until applied (the file mirror holds
   * bulk renders meanwhile); at most the first is done: the writer waits
   * in its callback. */
  g_assert_cmpuint (stats.runs_pending, >=, copy->len - 1);
  g_assert_cmpuint (stats.runs_pending, <=, copy->len);
  while (fl.in_flight)
    g_cond_wait (&fl.cond, &fl.mutex);
  g_mutex_unlock (&fl.mutex);
  g_assert_cmpuint (fl.failed, ==, 0);
  g_assert_cmpuint (fl.miscounted, ==, 0);
  wsp_store_get_stats (limited.store, &stats);
  g_assert_cmpuint (stats.runs_pending, ==, 0);
  g_mutex_clear (&fl.mutex);
  g_cond_clear (&fl.cond);

  assert_same_clock (src.store, limited.store);
  for (guint i = 0; i < n; i++)
    {
      g_autofree char *id = g_strdup_printf ("ws-%08u", i);
      g_autoptr (GString) a = g_string_new (NULL), b = g_string_new (NULL);
      g_assert_true (wsp_store_reader_task_json (whole.reader, id, a, &error));
      g_assert_true (wsp_store_reader_task_json (limited.reader, id, b, &error));
      g_assert_no_error (error);
      g_assert_cmpstr (a->str, ==, b->str);
    }
  g_autoptr (GString) hits = g_string_new (NULL);
  g_assert_true (wsp_store_reader_search_json (limited.reader, "Retitled 298", 10, hits, &error));
  g_assert_nonnull (strstr (hits->str, "ws-00000298"));   /* the full-text rows were written too */
  replica_close (&limited);
  replica_close (&whole);
  replica_close (&src);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(path, fn) g_test_add ("/store/" path, Fixture, NULL, setup, fn, teardown)
  ADD ("create-and-read", test_create_and_read);
  ADD ("update-only-changes", test_update_only_changes);
  ADD ("labels-replace-and-remove", test_labels_replace_and_remove);
  ADD ("dependencies-validated", test_dependencies_validated);
  ADD ("invalid-values-change-nothing", test_invalid_values_change_nothing);
  ADD ("delete-and-comments", test_delete_and_comments);
  ADD ("list-filters-and-cursor", test_list_filters_and_cursor);
  ADD ("ready", test_ready);
  ADD ("dependency-cycles-refused", test_dependency_cycles_refused);
  ADD ("full-text", test_full_text);
  ADD ("persistence-and-chain", test_persistence_and_chain);
  ADD ("backpressure", test_backpressure);
  ADD ("signed-heads-bound-runs", test_signed_heads_bound_runs);
  ADD ("migrate-v1", test_migrate_v1);
  ADD ("refuses-newer-schema", test_refuses_newer_schema);
  ADD ("ingest-applies-and-is-idempotent", test_ingest_applies_and_is_idempotent);
  ADD ("ingest-rejects-tampering", test_ingest_rejects_tampering);
  ADD ("ingest-detects-fork", test_ingest_detects_fork);
  ADD ("ingest-gap-and-causal-wait", test_ingest_gap_and_causal_wait);
  ADD ("concurrent-title-conflict", test_concurrent_title_conflict);
  ADD ("remote-cycle-reported", test_remote_cycle_reported);
  ADD ("export/everything", test_export_everything);
  ADD ("export/partial", test_export_partial);
  ADD ("export/paging", test_export_paging);
  ADD ("export/cursor-and-unsigned", test_export_cursor_and_unsigned);
  ADD ("export/stretches-not-split", test_export_stretches_not_split);
  ADD ("export/oversized-stretch", test_export_oversized_stretch);
  ADD ("export/large", test_export_large);
  ADD ("batch-task-limit", test_batch_task_limit);
#undef ADD
  return g_test_run ();
}
