/* search-test.c — full-text search, the query language and its
 * translation, ready/blocked lists, list orders with cursors, and the
 * dependency-cycle check, through the store's public interface (writes
 * with wsp_store_write_sync, reads on a reader). */
#include "store/wsp-store.h"
#include "crdt/wsp-chain.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <sqlite3.h>
#include <string.h>

#define PROJECT "abcdefghijklmnopqrstuvwxyz"

typedef struct {
  char           *dir;
  char           *db_path;
  WspIdentity     id;
  WspStore       *store;
  WspStoreReader *reader;
} Fixture;

static void
setup (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_assert_true (wsp_crypto_init ());
  f->dir = g_dir_make_tmp ("wsp-search-XXXXXX", NULL);
  f->db_path = g_build_filename (f->dir, "state.db", NULL);
  wsp_identity_generate (&f->id);
  WspStoreOptions opts = { f->db_path, PROJECT, &f->id, 64 };
  f->store = wsp_store_open (&opts, &error);
  g_assert_no_error (error);
  f->reader = wsp_store_reader_open (f->db_path, &error);
  g_assert_no_error (error);
}

static void
teardown (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->reader, wsp_store_reader_free);
  g_clear_pointer (&f->store, wsp_store_free);
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

/* ---- helpers ----------------------------------------------------------- */

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

static void
write_ok (Fixture *f, WspWrite *w)
{
  g_autoptr (GError) error = NULL;
  g_assert_true (wsp_store_write_sync (f->store, w, NULL, &error));
  g_assert_no_error (error);
}

/* Creates id with title and body (NULL = none) and optional deps. */
static void
create (Fixture *f, const char *id, const char *title, const char *body, GPtrArray *deps)
{
  WspWrite *w = wsp_write_new (WSP_WRITE_CREATE, id);
  WspValue v = wsp_value_str (title);
  wsp_write_set_field (w, WSP_FIELD_TITLE, &v);
  if (body)
    {
      v = wsp_value_str (body);
      wsp_write_set_field (w, WSP_FIELD_BODY, &v);
    }
  w->deps_add = deps;
  write_ok (f, w);
}

static void
set_field (Fixture *f, const char *id, WspField field, const char *value)
{
  WspWrite *w = wsp_write_new (WSP_WRITE_UPDATE, id);
  WspValue v = wsp_value_str (value);
  wsp_write_set_field (w, field, &v);
  write_ok (f, w);
}

static void
comment (Fixture *f, const char *id, const char *text)
{
  WspWrite *w = wsp_write_new (WSP_WRITE_COMMENT, id);
  w->comment_body = g_strdup (text);
  write_ok (f, w);
}

static void
delete_task (Fixture *f, const char *id)
{
  write_ok (f, wsp_write_new (WSP_WRITE_DELETE, id));
}

static JsonNode *
parse (const GString *out)
{
  g_autoptr (GError) error = NULL;
  JsonNode *node = json_from_string (out->str, &error);
  g_assert_no_error (error);
  g_assert_nonnull (node);
  return node;
}

/* The hit ids of a search, in order, joined by ' '. */
static char *
search_ids (Fixture *f, const char *q, guint limit)
{
  g_autoptr (GString) out = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (wsp_store_reader_search_json (f->reader, q, limit, out, &error));
  g_assert_no_error (error);
  g_autoptr (JsonNode) root = parse (out);
  JsonArray *hits = json_object_get_array_member (json_node_get_object (root), "hits");
  g_autoptr (GString) ids = g_string_new (NULL);
  double last = G_MAXDOUBLE;
  for (guint i = 0; i < json_array_get_length (hits); i++)
    {
      JsonObject *h = json_array_get_object_element (hits, i);
      double score = json_object_get_double_member (h, "score");
      g_assert_cmpfloat (score, <=, last);   /* best first */
      g_assert_cmpfloat (score, >, 0);
      last = score;
      g_assert_true (json_object_has_member (h, "title"));
      g_assert_true (json_object_has_member (h, "snippet"));
      g_string_append_printf (ids, "%s%s", i ? " " : "", json_object_get_string_member (h, "id"));
    }
  return g_string_free (g_steal_pointer (&ids), FALSE);
}

static void
assert_search (Fixture *f, const char *q, const char *expected)
{
  g_autofree char *got = search_ids (f, q, 0);
  if (g_strcmp0 (got, expected) != 0)
    g_error ("search '%s': got '%s', expected '%s'", q, got, expected);
}

/* As assert_search, but in any order (for hits whose order is not the point). */
static void
assert_search_set (Fixture *f, const char *q, const char *expected)
{
  g_autofree char *got = search_ids (f, q, 0);
  g_auto (GStrv) a = g_strsplit (got, " ", -1);
  g_auto (GStrv) b = g_strsplit (expected, " ", -1);
  g_assert_cmpuint (g_strv_length (a), ==, g_strv_length (b));
  for (guint i = 0; b[i]; i++)
    if (!g_strv_contains ((const char *const *) a, b[i]))
      g_error ("search '%s': got '%s', expected the set '%s'", q, got, expected);
}

static void
assert_invalid (const char *q, const char *needle)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *expr = wsp_search_translate (q, &error);
  if (expr)
    g_error ("query '%s' translated to '%s', expected an error", q, expr);
  g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
  if (!strstr (error->message, needle))
    g_error ("query '%s': message '%s' lacks '%s'", q, error->message, needle);
  g_assert_true (g_str_has_prefix (error->message, "q: "));
}

/* The ids of a list, in order, joined by ' '; *cursor gets next_cursor. */
static char *
list_ids (Fixture *f, const WspListQuery *q, char **cursor)
{
  g_autoptr (GString) out = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (wsp_store_reader_list_json (f->reader, q, out, &error));
  g_assert_no_error (error);
  g_autoptr (JsonNode) root = parse (out);
  JsonObject *o = json_node_get_object (root);
  JsonArray *tasks = json_object_get_array_member (o, "tasks");
  g_autoptr (GString) ids = g_string_new (NULL);
  for (guint i = 0; i < json_array_get_length (tasks); i++)
    {
      JsonObject *t = json_array_get_object_element (tasks, i);
      g_string_append_printf (ids, "%s%s", i ? " " : "", json_object_get_string_member (t, "id"));
      if (q->blocked)
        {
          JsonArray *by = json_object_get_array_member (t, "blocked_by");
          g_string_append_c (ids, '<');
          for (guint j = 0; j < json_array_get_length (by); j++)
            g_string_append_printf (ids, "%s%s", j ? "," : "", json_array_get_string_element (by, j));
          g_string_append_c (ids, '>');
        }
      else
        g_assert_false (json_object_has_member (t, "blocked_by"));
    }
  if (cursor)
    {
      g_free (*cursor);
      *cursor = json_object_get_null_member (o, "next_cursor")
                  ? NULL
                  : g_strdup (json_object_get_string_member (o, "next_cursor"));
    }
  return g_string_free (g_steal_pointer (&ids), FALSE);
}

static void
assert_list (Fixture *f, const WspListQuery *q, const char *expected)
{
  g_autofree char *got = list_ids (f, q, NULL);
  if (g_strcmp0 (got, expected) != 0)
    g_error ("list: got '%s', expected '%s'", got, expected);
}

/* ---- translation ------------------------------------------------------- */

static void
test_translate (void)
{
  static const struct {
    const char *q, *expr;
  } cases[] = {
    { "zebra", "\"zebra\"" },
    { "  zebra   crossing ", "(\"zebra\" AND \"crossing\")" },
    { "\"zebra crossing\"", "\"zebra crossing\"" },
    { "auth*", "\"auth\"*" },
    { "\"zebra cro\"*", "\"zebra cro\"*" },
    { "a OR b", "(\"a\" OR \"b\")" },
    { "a AND b", "(\"a\" AND \"b\")" },
    { "a b OR c", "((\"a\" AND \"b\") OR \"c\")" },
    { "a NOT b", "(\"a\" NOT \"b\")" },
    { "a NOT b NOT c d", "((\"a\" AND \"d\") NOT (\"b\" OR \"c\"))" },
    { "(a OR b) NOT (c d)", "((\"a\" OR \"b\") NOT (\"c\" AND \"d\"))" },
    { "a AND NOT b", "(\"a\" NOT \"b\")" },
    /* Lower-case operators are words. */
    { "cats and dogs", "(\"cats\" AND \"and\" AND \"dogs\")" },
    /* FTS5 syntax is text: column filters, NEAR, ^, +, stray stars. */
    { "title:zebra", "\"title:zebra\"" },
    { "NEAR(a b)", "(\"NEAR\" AND (\"a\" AND \"b\"))" },
    { "^a +b", "(\"^a\" AND \"+b\")" },
    { "a*b", "\"a*b\"" },
    /* Punctuation-only words carry no constraint. */
    { "fix - crash", "(\"fix\" AND \"crash\")" },
    { "a OR ???", "\"a\"" },
    { "café", "\"café\"" },
    { "日本語", "\"日本語\"" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autofree char *expr = wsp_search_translate (cases[i].q, &error);
      g_assert_no_error (error);
      if (g_strcmp0 (expr, cases[i].expr) != 0)
        g_error ("'%s' → '%s', expected '%s'", cases[i].q, expr, cases[i].expr);
    }
}

static void
test_translate_malformed (void)
{
  assert_invalid ("", "nothing to search for");
  assert_invalid ("   ", "nothing to search for");
  assert_invalid ("!!! ???", "nothing to search for");
  assert_invalid ("\"unterminated", "unbalanced quote: the phrase opened at character 1");
  assert_invalid ("ok \"zebra", "character 4 is not closed");
  assert_invalid ("(a OR b", "unbalanced parenthesis: the '(' at character 1 is not closed");
  assert_invalid ("a)", "the ')' at character 2 has no matching '('");
  assert_invalid ("()", "empty parentheses at character 1");
  assert_invalid ("a OR", "OR at character 3 needs a term after it");
  assert_invalid ("OR a", "OR at character 1 needs a term before it");
  assert_invalid ("a OR OR b", "OR at character 3 needs a term after it");
  assert_invalid ("AND a", "AND at character 1 needs a term before it");
  assert_invalid ("a AND", "AND at character 3 needs a term after it");
  assert_invalid ("a AND OR b", "AND at character 3 needs a term after it");
  assert_invalid ("a NOT", "NOT at character 3 needs a term after it");
  assert_invalid ("NOT a", "NOT at character 1 has nothing to exclude from");
  assert_invalid ("a OR NOT b", "nothing to exclude from");
  assert_invalid ("a NOT NOT b", "NOT at character 3 needs a term after it");
  assert_invalid ("(a) (", "the '(' at character 5 is not closed");
  /* Characters, not bytes. */
  assert_invalid ("éé )", "the ')' at character 4");

  g_autofree char *deep = g_strnfill (17, '(');
  g_autofree char *nested = g_strconcat (deep, "a", NULL);
  assert_invalid (nested, "too deeply nested");
  g_autoptr (GString) many = g_string_new (NULL);
  for (int i = 0; i < 65; i++)
    g_string_append_printf (many, "w%d ", i);
  assert_invalid (many->str, "too many terms");
  g_autofree char *lng = g_strnfill (WSP_SEARCH_QUERY_MAX + 1, 'a');
  assert_invalid (lng, "too long");
  assert_invalid ("caf\xc3", "not valid UTF-8");
}

/* ---- search ------------------------------------------------------------ */

static void
test_ranking_by_column (Fixture *f, gconstpointer data)
{
  create (f, "ws-comment01", "Unrelated one", "nothing here", NULL);
  comment (f, "ws-comment01", "the walrus was here");
  create (f, "ws-body00001", "Unrelated two", "we saw a walrus today", NULL);
  create (f, "ws-title0001", "Walrus sighting", "nothing here either", NULL);
  WspWrite *w = wsp_write_new (WSP_WRITE_CREATE, "ws-label0001");
  WspValue v = wsp_value_str ("Unrelated three");
  wsp_write_set_field (w, WSP_FIELD_TITLE, &v);
  w->labels_add = strs ("walrus", NULL);
  write_ok (f, w);
  create (f, "ws-nomatch01", "Penguins", "no such animal", NULL);

  g_autofree char *ids = search_ids (f, "walrus", 0);
  /* Title and label hits (weight 10, in either order), then body, then comment. */
  g_assert_true (g_str_has_suffix (ids, " ws-body00001 ws-comment01"));
  g_assert_true (g_str_has_prefix (ids, "ws-title0001 ws-label0001")
                 || g_str_has_prefix (ids, "ws-label0001 ws-title0001"));
  /* limit */
  g_autofree char *two = search_ids (f, "walrus", 2);
  g_assert_null (strstr (two, "ws-body00001"));
  g_assert_cmpuint (strlen (two), ==, strlen ("ws-title0001 ws-label0001"));
}

/* The first `limit` hits have the ids and scores of FTS5's own bm25() with
 * the same weights, in its order (ties by rowid). */
static void
assert_same_as_fts5 (Fixture *f, const char *q, guint limit)
{
  g_autoptr (GString) out = g_string_new (NULL);
  g_assert_true (wsp_store_reader_search_json (f->reader, q, limit, out, NULL));
  g_autoptr (JsonNode) root = parse (out);
  JsonArray *hits = json_object_get_array_member (json_node_get_object (root), "hits");

  sqlite3 *db = NULL;
  g_assert_cmpint (sqlite3_open_v2 (f->db_path, &db, SQLITE_OPEN_READONLY, NULL), ==, SQLITE_OK);
  g_autofree char *expr = wsp_search_translate (q, NULL);
  sqlite3_stmt *st = NULL;
  g_assert_cmpint (sqlite3_prepare_v2 (db,
                                       "SELECT t.id, -bm25(tasks_fts, 10.0, 3.0, 10.0, 1.0) s FROM tasks_fts"
                                       " JOIN tasks t ON t.num = tasks_fts.rowid WHERE tasks_fts MATCH ?"
                                       " ORDER BY s DESC, tasks_fts.rowid LIMIT ?",
                                       -1, &st, NULL),
                   ==, SQLITE_OK);
  sqlite3_bind_text (st, 1, expr, -1, SQLITE_STATIC);
  sqlite3_bind_int (st, 2, (int) limit);
  guint i = 0;
  while (sqlite3_step (st) == SQLITE_ROW)
    {
      g_assert_cmpuint (i, <, json_array_get_length (hits));
      JsonObject *h = json_array_get_object_element (hits, i++);
      double want = sqlite3_column_double (st, 1), got = json_object_get_double_member (h, "score");
      g_assert_cmpfloat_with_epsilon (got, want, 1e-9 * MAX (1.0, want < 0 ? -want : want));
      g_assert_cmpstr (json_object_get_string_member (h, "id"), ==, (const char *) sqlite3_column_text (st, 0));
    }
  g_assert_cmpuint (i, ==, json_array_get_length (hits));
  g_assert_cmpuint (i, >, 0);
  sqlite3_finalize (st);
  sqlite3_close (db);
}

/* With every match a candidate, the order and the scores are FTS5's. */
static void
test_ranking_matches_fts5_bm25 (Fixture *f, gconstpointer data)
{
  static const char *const words[] = { "alpha", "beta", "gamma", "delta", "omega", "sigma" };
  g_autoptr (GRand) rng = g_rand_new_with_seed (3);
  for (guint i = 0; i < 60; i++)
    {
      g_autoptr (GString) title = g_string_new (NULL), body = g_string_new (NULL);
      for (guint k = 0; k < 3; k++)
        g_string_append_printf (title, "%s ", words[g_rand_int_range (rng, 0, 6)]);
      guint n = (guint) g_rand_int_range (rng, 1, 40);
      for (guint k = 0; k < n; k++)
        g_string_append_printf (body, "%s filler ", words[g_rand_int_range (rng, 0, 6)]);
      g_autofree char *id = g_strdup_printf ("ws-rank%05u", i);
      create (f, id, title->str, body->str, NULL);
      if (i % 7 == 0)
        comment (f, id, "a sigma comment");
    }

  const char *queries[] = { "alpha", "alpha beta", "gamma OR sigma", "delta NOT omega", "\"alpha filler\"", "sig*" };
  for (gsize qi = 0; qi < G_N_ELEMENTS (queries); qi++)
    assert_same_as_fts5 (f, queries[qi], 100);
}

static void
test_phrase_prefix_boolean (Fixture *f, gconstpointer data)
{
  create (f, "ws-phrase001", "Zebra crossing repair", NULL, NULL);
  create (f, "ws-phrase002", "Crossing the zebra", "paint it", NULL);
  create (f, "ws-auth00001", "Authentication flow", "tokens and sessions", NULL);
  create (f, "ws-auth00002", "Author page", "paint the wall", NULL);
  create (f, "ws-other0001", "Authority", "tokens", NULL);

  assert_search (f, "\"zebra crossing\"", "ws-phrase001");
  assert_search (f, "\"crossing zebra\"", "");
  assert_search (f, "\"crossing the zebra\"", "ws-phrase002");
  g_autofree char *both = search_ids (f, "zebra crossing", 0);
  g_assert_true (g_str_equal (both, "ws-phrase001 ws-phrase002") || g_str_equal (both, "ws-phrase002 ws-phrase001"));

  g_autofree char *auth = search_ids (f, "auth*", 0);
  g_assert_nonnull (strstr (auth, "ws-auth00001"));
  g_assert_nonnull (strstr (auth, "ws-auth00002"));
  g_assert_nonnull (strstr (auth, "ws-other0001"));
  assert_search_set (f, "author*", "ws-auth00002 ws-other0001");
  assert_search (f, "authentication", "ws-auth00001");
  assert_search (f, "auth", "");
  assert_search (f, "\"zebra cross\"*", "ws-phrase001");

  assert_search (f, "paint AND zebra", "ws-phrase002");
  assert_search (f, "paint zebra", "ws-phrase002");
  g_autofree char *paint_or = search_ids (f, "zebra OR tokens", 0);
  g_assert_cmpuint (strlen (paint_or), ==, 4 * 12 + 3);
  assert_search (f, "auth* NOT tokens", "ws-auth00002");
  assert_search_set (f, "(paint OR tokens) NOT (zebra OR author)", "ws-other0001 ws-auth00001");
  /* Case-insensitive. */
  assert_search (f, "ZEBRA \"Crossing REPAIR\"", "ws-phrase001");
}

static void
test_diacritics_and_unicode (Fixture *f, gconstpointer data)
{
  create (f, "ws-cafe00001", "Café opening", "crème brûlée on the menu", NULL);
  create (f, "ws-cafe00002", "Cafe closing", "NAÏVE plan", NULL);
  create (f, "ws-nihon0001", "東京 office", "ünïcödé", NULL);

  g_autofree char *a = search_ids (f, "cafe", 0);
  g_autofree char *b = search_ids (f, "café", 0);
  g_autofree char *c = search_ids (f, "CAFÉ", 0);
  g_assert_cmpuint (strlen (a), ==, 2 * 12 + 1);
  g_assert_cmpstr (a, ==, b);
  g_assert_cmpstr (a, ==, c);
  assert_search (f, "creme brulee", "ws-cafe00001");
  assert_search (f, "naive", "ws-cafe00002");
  assert_search (f, "unicode", "ws-nihon0001");
  assert_search (f, "東京", "ws-nihon0001");
}

static void
test_snippet (Fixture *f, gconstpointer data)
{
  create (f, "ws-snip00001", "Escape <script>", "before the <b>marker</b> & \"quotes\" 'x' after", NULL);
  g_autoptr (GString) out = g_string_new (NULL);
  g_assert_true (wsp_store_reader_search_json (f->reader, "marker", 0, out, NULL));
  g_autoptr (JsonNode) root = parse (out);
  JsonObject *h = json_array_get_object_element (
    json_object_get_array_member (json_node_get_object (root), "hits"), 0);
  g_assert_cmpstr (json_object_get_string_member (h, "title"), ==, "Escape <script>");
  g_assert_cmpstr (json_object_get_string_member (h, "snippet"), ==,
                   "before the &lt;b&gt;<b>marker</b>&lt;/b&gt; &amp; &quot;quotes&quot; &#39;x&#39; after");

  g_string_truncate (out, 0);
  g_assert_true (wsp_store_reader_search_json (f->reader, "script", 0, out, NULL));
  g_assert_nonnull (strstr (out->str, "\"snippet\":\"Escape &lt;<b>script</b>&gt;\""));
}

static void
test_freshness_and_deleted (Fixture *f, gconstpointer data)
{
  assert_search (f, "kumquat", "");
  create (f, "ws-fresh0001", "Buy kumquat", NULL, NULL);
  assert_search (f, "kumquat", "ws-fresh0001");

  set_field (f, "ws-fresh0001", WSP_FIELD_TITLE, "Buy lychee");
  assert_search (f, "kumquat", "");
  assert_search (f, "lychee", "ws-fresh0001");

  set_field (f, "ws-fresh0001", WSP_FIELD_BODY, "the durian is ripe");
  assert_search (f, "durian", "ws-fresh0001");

  comment (f, "ws-fresh0001", "rambutan too");
  assert_search (f, "rambutan", "ws-fresh0001");

  WspWrite *w = wsp_write_new (WSP_WRITE_UPDATE, "ws-fresh0001");
  w->labels_add = strs ("mangosteen", NULL);
  write_ok (f, w);
  assert_search (f, "mangosteen", "ws-fresh0001");

  create (f, "ws-fresh0002", "Lychee jam", NULL, NULL);
  delete_task (f, "ws-fresh0001");
  assert_search (f, "lychee", "ws-fresh0002");
  assert_search (f, "durian OR rambutan OR mangosteen", "");
  /* A comment on the tombstone does not bring it back. */
  comment (f, "ws-fresh0001", "lychee again");
  assert_search (f, "lychee", "ws-fresh0002");

  WspListQuery q = { .priority = -1, .q = "lychee OR durian" };
  assert_list (f, &q, "ws-fresh0002");
}

static void
test_many_matches (Fixture *f, gconstpointer data)
{
  /* More matches than candidates: the title hit still comes first, the
   * limit holds and every hit is live. */
  for (guint i = 0; i < 260; i++)
    {
      g_autofree char *id = g_strdup_printf ("ws-many%05u", i);
      g_autofree char *body = g_strdup_printf ("common words %s", i % 2 ? "common" : "rare");
      create (f, id, "Some task", body, NULL);
    }
  create (f, "ws-many-best", "Common thing", "common", NULL);
  delete_task (f, "ws-many00001");
  g_autofree char *ids = search_ids (f, "common", 20);
  g_assert_true (g_str_has_prefix (ids, "ws-many-best "));
  g_assert_null (strstr (ids, "ws-many00001"));
  g_auto (GStrv) parts = g_strsplit (ids, " ", -1);
  g_assert_cmpuint (g_strv_length (parts), ==, 20);
  /* Here the bound keeps the best rows, so the top is still exact. */
  assert_same_as_fts5 (f, "common", 20);
  g_autofree char *max = search_ids (f, "common", 1000);
  g_auto (GStrv) capped = g_strsplit (max, " ", -1);
  g_assert_cmpuint (g_strv_length (capped), ==, WSP_SEARCH_LIMIT_MAX);
}

static void
test_search_errors (Fixture *f, gconstpointer data)
{
  create (f, "ws-err000001", "Something", NULL, NULL);
  const char *bad[] = { "\"open", "(a", "a)", "OR", "NOT x", "" };
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GString) out = g_string_new ("keep");
      g_autoptr (GError) error = NULL;
      g_assert_false (wsp_store_reader_search_json (f->reader, bad[i], 0, out, &error));
      g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
      g_assert_cmpstr (out->str, ==, "keep");

      WspListQuery q = { .priority = -1, .q = bad[i] };
      g_clear_error (&error);
      if (*bad[i])
        {
          g_assert_false (wsp_store_reader_list_json (f->reader, &q, out, &error));
          g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
          g_assert_true (g_str_has_prefix (error->message, "q: "));
        }
    }
}

static void
test_list_filters_with_q (Fixture *f, gconstpointer data)
{
  create (f, "ws-filter001", "Fix login crash", NULL, NULL);
  create (f, "ws-filter002", "Fix logout crash", NULL, NULL);
  create (f, "ws-filter003", "Login page copy", NULL, NULL);
  set_field (f, "ws-filter002", WSP_FIELD_STATUS, "in_progress");
  WspWrite *w = wsp_write_new (WSP_WRITE_UPDATE, "ws-filter003");
  w->labels_add = strs ("ui", NULL);
  write_ok (f, w);

  WspListQuery q = { .priority = -1, .q = "crash" };
  assert_list (f, &q, "ws-filter001 ws-filter002");
  q.status = "todo";
  assert_list (f, &q, "ws-filter001");
  WspListQuery l = { .priority = -1, .q = "login", .label = "ui" };
  assert_list (f, &l, "ws-filter003");
  WspListQuery p = { .priority = -1, .q = "log*", .sort = WSP_SORT_CREATED };
  assert_list (f, &p, "ws-filter003 ws-filter002 ws-filter001");
  WspListQuery n = { .priority = -1, .q = "fix NOT logout" };
  assert_list (f, &n, "ws-filter001");
}

/* ---- ready and blocked ------------------------------------------------- */

/* A remote author's ops, for a dependency on a task nobody created. */
static void
ingest_dep_on_unknown (Fixture *f, const char *task, const char *unknown)
{
  WspIdentity rid;
  wsp_identity_generate (&rid);
  guint8 head[WSP_HASH_LEN];
  wsp_chain_genesis (PROJECT, rid.pk, head);
  g_autoptr (WspRun) run = wsp_run_new ();
  run->peer = rid.peer;
  memcpy (run->pk, rid.pk, WSP_PK_LEN);
  run->from = 1;
  for (int i = 0; i < 2; i++)
    {
      WspOp op = { 0 };
      op.hlc = ((guint64) 1700000000000ULL << 16) + (guint64) i;
      op.type = op.type_code = i == 0 ? WSP_OP_CREATE : WSP_OP_DEP_ADD;
      op.task = (char *) task;
      op.data_ok = TRUE;
      if (i == 0)
        {
          for (int fl = 1; fl < WSP_FIELD_COUNT; fl++)
            wsp_field_default ((WspField) fl, &op.fields[fl]);
          wsp_value_clear (&op.fields[WSP_FIELD_TITLE]);
          op.fields[WSP_FIELD_TITLE] = wsp_value_str ("Remote");
        }
      else
        op.text = (char *) unknown;
      GBytes *body = wsp_op_encode (&op);
      for (int fl = 1; fl < WSP_FIELD_COUNT; fl++)
        wsp_value_clear (&op.fields[fl]);
      wsp_chain_next (head, g_bytes_get_data (body, NULL), g_bytes_get_size (body), head);
      g_ptr_array_add (run->ops, body);
    }
  wsp_head_sign (&rid, 2, head, run->sig);
  g_autoptr (GError) error = NULL;
  WspIngestStatus status;
  g_assert_true (wsp_store_ingest_sync (f->store, g_steal_pointer (&run), &status, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpint (status, ==, WSP_INGEST_OK);
}

static void
test_ready_and_blocked (Fixture *f, gconstpointer data)
{
  /* Chain c → b → a, diamond d → {b2, c2} → e, a deleted dependency and
   * one on a task nobody created. */
  create (f, "ws-a", "a", NULL, NULL);
  create (f, "ws-b", "b", NULL, strs ("ws-a", NULL));
  create (f, "ws-c", "c", NULL, strs ("ws-b", NULL));
  create (f, "ws-e", "e", NULL, NULL);
  create (f, "ws-f", "f", NULL, strs ("ws-e", NULL));
  create (f, "ws-g", "g", NULL, strs ("ws-e", NULL));
  create (f, "ws-h", "h", NULL, strs ("ws-f", "ws-g", NULL));
  create (f, "ws-x", "x", NULL, NULL);
  create (f, "ws-y", "y", NULL, strs ("ws-x", NULL));
  delete_task (f, "ws-x");
  ingest_dep_on_unknown (f, "ws-z", "ws-nobody");

  WspListQuery ready = { .priority = -1, .ready = TRUE };
  WspListQuery blocked = { .priority = -1, .blocked = TRUE };
  assert_list (f, &ready, "ws-a ws-e ws-y ws-z");
  assert_list (f, &blocked, "ws-b<ws-a> ws-c<ws-b> ws-f<ws-e> ws-g<ws-e> ws-h<ws-f,ws-g>");

  set_field (f, "ws-a", WSP_FIELD_STATUS, "done");
  set_field (f, "ws-e", WSP_FIELD_STATUS, "done");
  assert_list (f, &ready, "ws-b ws-f ws-g ws-y ws-z");
  assert_list (f, &blocked, "ws-c<ws-b> ws-h<ws-f,ws-g>");

  set_field (f, "ws-f", WSP_FIELD_STATUS, "done");
  assert_list (f, &blocked, "ws-c<ws-b> ws-h<ws-g>");
  delete_task (f, "ws-g");
  assert_list (f, &ready, "ws-b ws-h ws-y ws-z");
  assert_list (f, &blocked, "ws-c<ws-b>");

  /* The done column is the reader's setting: "done" is then open. */
  wsp_store_reader_set_done_status (f->reader, "in_progress");
  assert_list (f, &ready, "ws-a ws-e ws-y ws-z");

  /* Filters and a cursor combine with blocked. */
  wsp_store_reader_set_done_status (f->reader, "done");
  create (f, "ws-c2", "c two", NULL, strs ("ws-b", NULL));
  WspListQuery page = { .priority = -1, .blocked = TRUE, .limit = 1 };
  g_autofree char *cursor = NULL;
  g_autofree char *p1 = list_ids (f, &page, &cursor);
  g_assert_cmpstr (p1, ==, "ws-c<ws-b>");
  page.cursor = cursor;
  g_autofree char *cursor2 = NULL;
  g_autofree char *p2 = list_ids (f, &page, &cursor2);
  g_assert_cmpstr (p2, ==, "ws-c2<ws-b>");
  g_assert_null (cursor2);
  WspListQuery bq = { .priority = -1, .blocked = TRUE, .q = "two" };
  assert_list (f, &bq, "ws-c2<ws-b>");

  WspListQuery both = { .priority = -1, .ready = TRUE, .blocked = TRUE };
  g_autoptr (GString) out = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  g_assert_false (wsp_store_reader_list_json (f->reader, &both, out, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
}

/* ---- orders and cursors ------------------------------------------------ */

static void
walk_pages (Fixture *f, WspSort sort, guint limit, const char *expected)
{
  WspListQuery q = { .priority = -1, .limit = limit, .sort = sort };
  g_autoptr (GString) all = g_string_new (NULL);
  g_autofree char *cursor = NULL;
  do
    {
      q.cursor = cursor;
      g_autofree char *next = NULL;
      g_autofree char *ids = list_ids (f, &q, &next);
      g_assert_cmpuint (strlen (ids), >, 0);
      g_string_append_printf (all, "%s%s", all->len ? " " : "", ids);
      g_free (cursor);
      cursor = g_steal_pointer (&next);
    }
  while (cursor);
  g_assert_cmpstr (all->str, ==, expected);
}

static void
test_sorts_and_cursors (Fixture *f, gconstpointer data)
{
  create (f, "ws-s1", "one", NULL, NULL);
  create (f, "ws-s2", "two", NULL, NULL);
  create (f, "ws-s3", "three", NULL, NULL);
  create (f, "ws-s4", "four", NULL, NULL);
  create (f, "ws-s5", "five", NULL, NULL);
  WspWrite *w = wsp_write_new (WSP_WRITE_UPDATE, "ws-s2");
  WspValue pri = wsp_value_int (0);
  wsp_write_set_field (w, WSP_FIELD_PRIORITY, &pri);
  write_ok (f, w);
  set_field (f, "ws-s4", WSP_FIELD_TITLE, "four again");

  const char *by_priority = "ws-s2 ws-s1 ws-s3 ws-s4 ws-s5";
  const char *by_created = "ws-s5 ws-s4 ws-s3 ws-s2 ws-s1";
  const char *by_updated = "ws-s4 ws-s2 ws-s5 ws-s3 ws-s1";
  for (guint limit = 1; limit <= 6; limit++)
    {
      walk_pages (f, WSP_SORT_DEFAULT, limit, by_priority);
      walk_pages (f, WSP_SORT_PRIORITY, limit, by_priority);
      walk_pages (f, WSP_SORT_CREATED, limit, by_created);
      walk_pages (f, WSP_SORT_UPDATED, limit, by_updated);
    }

  /* A cursor belongs to its order. */
  WspListQuery q = { .priority = -1, .limit = 2, .sort = WSP_SORT_UPDATED };
  g_autofree char *cursor = NULL;
  g_autofree char *ids = list_ids (f, &q, &cursor);
  g_assert_cmpstr (ids, ==, "ws-s4 ws-s2");
  g_assert_nonnull (cursor);
  WspListQuery other = { .priority = -1, .limit = 2, .cursor = cursor };
  g_autoptr (GString) out = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  g_assert_false (wsp_store_reader_list_json (f->reader, &other, out, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "cursor"));
  g_clear_error (&error);
  other.sort = WSP_SORT_CREATED;
  g_assert_false (wsp_store_reader_list_json (f->reader, &other, out, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
  g_clear_error (&error);
  WspListQuery unknown = { .priority = -1, .sort = (WspSort) 99 };
  g_assert_false (wsp_store_reader_list_json (f->reader, &unknown, out, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
}

/* ---- cycles ------------------------------------------------------------ */

static void
test_would_cycle (Fixture *f, gconstpointer data)
{
  /* a ← b ← c, and a diamond d ← {e, f} ← g. */
  create (f, "ws-a", "a", NULL, NULL);
  create (f, "ws-b", "b", NULL, strs ("ws-a", NULL));
  create (f, "ws-c", "c", NULL, strs ("ws-b", NULL));
  create (f, "ws-d", "d", NULL, NULL);
  create (f, "ws-e", "e", NULL, strs ("ws-d", NULL));
  create (f, "ws-f", "f", NULL, strs ("ws-d", NULL));
  create (f, "ws-g", "g", NULL, strs ("ws-e", "ws-f", NULL));

  g_assert_true (wsp_store_reader_would_cycle (f->reader, "ws-a", "ws-a"));
  g_assert_true (wsp_store_reader_would_cycle (f->reader, "ws-a", "ws-b"));
  g_assert_true (wsp_store_reader_would_cycle (f->reader, "ws-a", "ws-c"));
  g_assert_true (wsp_store_reader_would_cycle (f->reader, "ws-b", "ws-c"));
  g_assert_false (wsp_store_reader_would_cycle (f->reader, "ws-c", "ws-a"));
  g_assert_false (wsp_store_reader_would_cycle (f->reader, "ws-c", "ws-b"));
  g_assert_false (wsp_store_reader_would_cycle (f->reader, "ws-a", "ws-d"));
  g_assert_true (wsp_store_reader_would_cycle (f->reader, "ws-d", "ws-g"));
  g_assert_false (wsp_store_reader_would_cycle (f->reader, "ws-e", "ws-f"));
  g_assert_false (wsp_store_reader_would_cycle (f->reader, "ws-g", "ws-d"));
  g_assert_false (wsp_store_reader_would_cycle (f->reader, "ws-a", "ws-unknown"));
  /* A deleted task has no dependencies left: no path through it. */
  delete_task (f, "ws-b");
  g_assert_false (wsp_store_reader_would_cycle (f->reader, "ws-a", "ws-c"));
  g_assert_true (wsp_store_reader_would_cycle (f->reader, "ws-d", "ws-g"));
  /* Removing one side of the diamond keeps the other path. */
  WspWrite *w = wsp_write_new (WSP_WRITE_UPDATE, "ws-g");
  w->deps_remove = strs ("ws-e", NULL);
  write_ok (f, w);
  g_assert_true (wsp_store_reader_would_cycle (f->reader, "ws-d", "ws-g"));
  g_assert_false (wsp_store_reader_would_cycle (f->reader, "ws-e", "ws-g"));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/search/translate/valid", test_translate);
  g_test_add_func ("/search/translate/malformed", test_translate_malformed);
#define ADD(path, fn) g_test_add ("/search/" path, Fixture, NULL, setup, fn, teardown)
  ADD ("rank/title-label-body-comment", test_ranking_by_column);
  ADD ("rank/matches-fts5-bm25", test_ranking_matches_fts5_bm25);
  ADD ("rank/many-matches", test_many_matches);
  ADD ("phrase-prefix-boolean", test_phrase_prefix_boolean);
  ADD ("diacritics-and-unicode", test_diacritics_and_unicode);
  ADD ("snippet-is-escaped-html", test_snippet);
  ADD ("fresh-after-writes-and-deleted-never-shown", test_freshness_and_deleted);
  ADD ("malformed-query-is-invalid", test_search_errors);
  ADD ("list/filters-with-q", test_list_filters_with_q);
  ADD ("list/ready-and-blocked", test_ready_and_blocked);
  ADD ("list/sorts-and-cursors", test_sorts_and_cursors);
  ADD ("would-cycle", test_would_cycle);
#undef ADD
  return g_test_run ();
}
