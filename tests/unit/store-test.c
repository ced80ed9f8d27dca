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

typedef struct {
  char           *dir;
  char           *db_path;
  WspIdentity     id;
  WspStore       *store;
  WspStoreReader *reader;
} Fixture;

static void
fixture_open (Fixture *f)
{
  g_autoptr (GError) error = NULL;
  WspStoreOptions opts = { f->db_path, "abcdefghijklmnopqrstuvwxyz", &f->id, 8 };
  f->store = wsp_store_open (&opts, &error);
  g_assert_no_error (error);
  f->reader = wsp_store_reader_open (f->db_path, &error);
  g_assert_no_error (error);
}

static void
fixture_close (Fixture *f)
{
  g_clear_pointer (&f->reader, wsp_store_reader_free);
  g_clear_pointer (&f->store, wsp_store_free);
}

static void
setup (Fixture *f, gconstpointer data)
{
  g_assert_true (wsp_crypto_init ());
  f->dir = g_dir_make_tmp ("wsp-store-XXXXXX", NULL);
  f->db_path = g_build_filename (f->dir, "state.db", NULL);
  wsp_identity_generate (&f->id);
  fixture_open (f);
}

static void
teardown (Fixture *f, gconstpointer data)
{
  fixture_close (f);
  const char *names[] = { "state.db", "state.db-wal", "state.db-shm" };
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *p = g_build_filename (f->dir, names[i], NULL);
      g_unlink (p);
    }
  g_rmdir (f->dir);
  g_free (f->dir);
  g_free (f->db_path);
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

#define PROJECT "abcdefghijklmnopqrstuvwxyz"

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
#undef ADD
  return g_test_run ();
}
