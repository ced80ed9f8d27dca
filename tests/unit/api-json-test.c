/* api-json-test.c — the HTTP API's request-body validation (SPEC 5): what a
 * body turns into as a store write, and which bodies are refused (with the
 * field named) before anything is written. */
#include <glib.h>
#include <math.h>
#include <string.h>

#include "api/wsp-api-json.h"

static const char *const statuses[] = { "todo", "in_progress", "done", NULL };

static WspWrite *
parse (const char *json, WspApiBodyKind kind, GError **error)
{
  return wsp_api_parse_task_body (json, strlen (json), kind, "ws-aaaaaaaaaa", statuses, error);
}

static gboolean
has (const WspWrite *w, WspField f)
{
  return (w->field_mask & (1u << f)) != 0;
}

/* Asserts that json is refused with INVALID and a message starting with
 * "field:". */
static void
assert_refused (const char *json, WspApiBodyKind kind, const char *field)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (WspWrite) w = parse (json, kind, &error);
  if (w != NULL)
    g_error ("accepted %s", json);
  g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
  g_autofree char *prefix = g_strconcat (field, ":", NULL);
  if (!g_str_has_prefix (error->message, prefix))
    g_error ("%s: message '%s' does not start with '%s'", json, error->message, prefix);
}

static void
assert_str (const WspWrite *w, WspField f, const char *s)
{
  g_assert_true (has (w, f));
  g_assert_cmpint (w->fields[f].kind, ==, WSP_VALUE_STR);
  g_assert_cmpstr (w->fields[f].str, ==, s);
}

static void
assert_nil (const WspWrite *w, WspField f)
{
  g_assert_true (has (w, f));
  g_assert_cmpint (w->fields[f].kind, ==, WSP_VALUE_NIL);
}

static void
assert_set (const GPtrArray *a, const char *const *want)
{
  guint n = g_strv_length ((char **) want);
  if (n == 0 && a == NULL)
    return;
  g_assert_nonnull (a);
  g_assert_cmpuint (a->len, ==, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpstr (a->pdata[i], ==, want[i]);
}

static void
test_create_minimal (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (WspWrite) w = parse ("{\"title\":\"Fix it\"}", WSP_API_BODY_CREATE, &error);
  g_assert_no_error (error);
  g_assert_cmpint (w->kind, ==, WSP_WRITE_CREATE);
  g_assert_cmpstr (w->task_id, ==, "ws-aaaaaaaaaa");
  g_assert_cmphex (w->field_mask, ==, 1u << WSP_FIELD_TITLE);
  assert_str (w, WSP_FIELD_TITLE, "Fix it");
  g_assert_null (w->labels_add);
  g_assert_null (w->deps_add);
  g_assert_false (w->labels_replace);
}

static void
test_create_full (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (WspWrite) w = parse ("{\"title\":\"T\",\"body\":\"B\",\"status\":\"in_progress\","
                                  "\"priority\":1,\"assignee\":\"alice\",\"parent\":\"ws-pppppppppp\","
                                  "\"due\":\"2028-02-29\",\"position\":-2.5,"
                                  "\"labels\":[\" sync \",\"bug\",\"sync\"],"
                                  "\"depends_on\":[\"ws-dddddddddd\"],\"color\":\"blue\"}",
                                  WSP_API_BODY_CREATE, &error);
  g_assert_no_error (error);
  assert_str (w, WSP_FIELD_TITLE, "T");
  assert_str (w, WSP_FIELD_BODY, "B");
  assert_str (w, WSP_FIELD_STATUS, "in_progress");
  g_assert_cmpint (w->fields[WSP_FIELD_PRIORITY].kind, ==, WSP_VALUE_INT);
  g_assert_cmpint (w->fields[WSP_FIELD_PRIORITY].i, ==, 1);
  assert_str (w, WSP_FIELD_ASSIGNEE, "alice");
  assert_str (w, WSP_FIELD_PARENT, "ws-pppppppppp");
  assert_str (w, WSP_FIELD_DUE, "2028-02-29");
  g_assert_cmpint (w->fields[WSP_FIELD_POSITION].kind, ==, WSP_VALUE_FLOAT);
  g_assert_cmpfloat (w->fields[WSP_FIELD_POSITION].f, ==, -2.5);
  /* Trimmed and de-duplicated, first occurrence order. */
  assert_set (w->labels_add, (const char *const[]) { "sync", "bug", NULL });
  assert_set (w->deps_add, (const char *const[]) { "ws-dddddddddd", NULL });
  g_assert_null (w->labels_remove);
}

static void
test_create_requires_title (void)
{
  assert_refused ("{}", WSP_API_BODY_CREATE, "title");
  assert_refused ("{\"title\":null}", WSP_API_BODY_CREATE, "title");
  assert_refused ("{\"title\":\"  \"}", WSP_API_BODY_CREATE, "title");
  assert_refused ("{\"title\":5}", WSP_API_BODY_CREATE, "title");
  assert_refused ("{\"title\":[\"x\"]}", WSP_API_BODY_CREATE, "title");
}

static void
test_body_must_be_an_object (void)
{
  static const char *const bad[] = {
    "", "   ", "null", "[]", "\"title\"", "42", "{", "{\"title\":\"x\",}", "{\"title\":\"x\"} trailing",
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    assert_refused (bad[i], WSP_API_BODY_PATCH, "body");
}

static void
test_invalid_utf8_is_refused (void)
{
  g_autoptr (GError) error = NULL;
  static const char data[] = "{\"title\":\"\xff\"}";
  g_autoptr (WspWrite) w = wsp_api_parse_task_body (data, sizeof data - 1, WSP_API_BODY_CREATE,
                                                    "ws-aaaaaaaaaa", statuses, &error);
  g_assert_null (w);
  g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
  /* A lone surrogate escape is refused too (by json-glib or by the UTF-8
   * check of the decoded string). */
  g_clear_error (&error);
  g_autoptr (WspWrite) w2 = parse ("{\"title\":\"\\ud800\"}", WSP_API_BODY_CREATE, &error);
  g_assert_null (w2);
  g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
}

static void
test_deep_nesting_is_refused_before_parsing (void)
{
  gsize n = 200000;
  g_autofree char *deep = g_malloc (n + 1);
  memset (deep, '[', n);
  deep[n] = '\0';
  assert_refused (deep, WSP_API_BODY_CREATE, "body");

  g_assert_true (wsp_api_json_depth_ok ("{\"a\":[[1]]}", 11, 3));
  g_assert_false (wsp_api_json_depth_ok ("{\"a\":[[1]]}", 11, 2));
  /* Brackets inside strings, escaped quotes included, do not count. */
  const char *s = "{\"a\":\"[[[[\\\"[[[[\"}";
  g_assert_true (wsp_api_json_depth_ok (s, strlen (s), 1));
}

static void
test_status_must_be_a_column (void)
{
  assert_refused ("{\"status\":\"nope\"}", WSP_API_BODY_PATCH, "status");
  assert_refused ("{\"status\":\"\"}", WSP_API_BODY_PATCH, "status");
  assert_refused ("{\"status\":3}", WSP_API_BODY_PATCH, "status");
  assert_refused ("{\"status\":null}", WSP_API_BODY_REPLACE, "status");

  /* The configured columns, not the defaults. */
  static const char *const custom[] = { "backlog", "shipped", NULL };
  g_autoptr (GError) error = NULL;
  const char *json = "{\"status\":\"shipped\"}";
  g_autoptr (WspWrite) w = wsp_api_parse_task_body (json, strlen (json), WSP_API_BODY_PATCH,
                                                    "ws-aaaaaaaaaa", custom, &error);
  g_assert_no_error (error);
  assert_str (w, WSP_FIELD_STATUS, "shipped");
  g_autoptr (WspWrite) w2 = parse ("{\"status\":\"backlog\"}", WSP_API_BODY_PATCH, &error);
  g_assert_null (w2);
  g_assert_true (strstr (error->message, "todo, in_progress, done") != NULL);
}

static void
test_priority_range (void)
{
  for (int p = 0; p <= 4; p++) {
    g_autoptr (GError) error = NULL;
    g_autofree char *json = g_strdup_printf ("{\"priority\":%d}", p);
    g_autoptr (WspWrite) w = parse (json, WSP_API_BODY_PATCH, &error);
    g_assert_no_error (error);
    g_assert_cmpint (w->fields[WSP_FIELD_PRIORITY].i, ==, p);
  }
  g_autoptr (GError) error = NULL;
  g_autoptr (WspWrite) w = parse ("{\"priority\":3.0}", WSP_API_BODY_PATCH, &error);
  g_assert_no_error (error);
  g_assert_cmpint (w->fields[WSP_FIELD_PRIORITY].kind, ==, WSP_VALUE_INT);
  g_assert_cmpint (w->fields[WSP_FIELD_PRIORITY].i, ==, 3);

  static const char *const bad[] = { "5", "-1", "1.5", "\"1\"", "null", "true", "1e300", "99999999999999999999" };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autofree char *json = g_strdup_printf ("{\"priority\":%s}", bad[i]);
    assert_refused (json, WSP_API_BODY_PATCH, "priority");
  }
}

static void
test_due_dates (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (WspWrite) w = parse ("{\"due\":null}", WSP_API_BODY_PATCH, &error);
  g_assert_no_error (error);
  assert_nil (w, WSP_FIELD_DUE);
  g_autoptr (WspWrite) w2 = parse ("{\"due\":\"\"}", WSP_API_BODY_PATCH, &error);
  g_assert_no_error (error);
  assert_nil (w2, WSP_FIELD_DUE);

  static const char *const bad[] = { "\"2026-02-30\"", "\"2026-13-01\"", "\"26-01-01\"", "\"tomorrow\"",
                                     "20260101", "[\"2026-01-01\"]" };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autofree char *json = g_strdup_printf ("{\"due\":%s}", bad[i]);
    assert_refused (json, WSP_API_BODY_PATCH, "due");
  }
}

static void
test_position (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (WspWrite) w = parse ("{\"position\":7}", WSP_API_BODY_PATCH, &error);
  g_assert_no_error (error);
  g_assert_cmpint (w->fields[WSP_FIELD_POSITION].kind, ==, WSP_VALUE_FLOAT);
  g_assert_cmpfloat (w->fields[WSP_FIELD_POSITION].f, ==, 7.0);
  assert_refused ("{\"position\":\"1\"}", WSP_API_BODY_PATCH, "position");
  assert_refused ("{\"position\":1e400}", WSP_API_BODY_PATCH, "position");
  assert_refused ("{\"position\":null}", WSP_API_BODY_PATCH, "position");
}

static void
test_patch_null_clears (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (WspWrite) w = parse ("{\"assignee\":null,\"parent\":null,\"title\":null,\"body\":null}",
                                  WSP_API_BODY_PATCH, &error);
  g_assert_no_error (error);
  g_assert_cmpint (w->kind, ==, WSP_WRITE_UPDATE);
  assert_nil (w, WSP_FIELD_ASSIGNEE);
  assert_nil (w, WSP_FIELD_PARENT);
  assert_nil (w, WSP_FIELD_TITLE);   /* title "" */
  assert_nil (w, WSP_FIELD_BODY);
  g_assert_false (has (w, WSP_FIELD_STATUS));
  assert_refused ("{\"status\":null}", WSP_API_BODY_PATCH, "status");
  assert_refused ("{\"priority\":null}", WSP_API_BODY_PATCH, "priority");
  assert_refused ("{\"assignee\":5}", WSP_API_BODY_PATCH, "assignee");
  assert_refused ("{\"parent\":{}}", WSP_API_BODY_PATCH, "parent");
  assert_refused ("{\"body\":false}", WSP_API_BODY_PATCH, "body");
}

static void
test_sets_replace (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (WspWrite) w = parse ("{\"labels\":[\"b\",\"a\"],\"depends_on\":null}", WSP_API_BODY_REPLACE, &error);
  g_assert_no_error (error);
  g_assert_true (w->labels_replace);
  assert_set (w->labels_add, (const char *const[]) { "b", "a", NULL });
  /* null → the empty set. */
  g_assert_true (w->deps_replace);
  g_assert_nonnull (w->deps_add);
  g_assert_cmpuint (w->deps_add->len, ==, 0);
  g_assert_false (wsp_api_write_is_empty (w));
}

static void
test_sets_add_remove (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (WspWrite) w = parse ("{\"add_labels\":[\"x\"],\"remove_labels\":[\"y\",\"z\"],"
                                  "\"add_depends_on\":[\"ws-bbbbbbbbbb\"],\"remove_depends_on\":[]}",
                                  WSP_API_BODY_PATCH, &error);
  g_assert_no_error (error);
  g_assert_false (w->labels_replace);
  assert_set (w->labels_add, (const char *const[]) { "x", NULL });
  assert_set (w->labels_remove, (const char *const[]) { "y", "z", NULL });
  assert_set (w->deps_add, (const char *const[]) { "ws-bbbbbbbbbb", NULL });
  g_assert_null (w->deps_remove);

  assert_refused ("{\"labels\":[\"a\"],\"add_labels\":[\"b\"]}", WSP_API_BODY_PATCH, "labels");
  assert_refused ("{\"depends_on\":[],\"remove_depends_on\":[\"b\"]}", WSP_API_BODY_PATCH, "depends_on");
  assert_refused ("{\"add_labels\":[\"a\"],\"remove_labels\":[\" a\"]}", WSP_API_BODY_PATCH, "add_labels");
  assert_refused ("{\"add_labels\":null}", WSP_API_BODY_PATCH, "add_labels");
  assert_refused ("{\"labels\":\"a\"}", WSP_API_BODY_PATCH, "labels");
  assert_refused ("{\"labels\":[1]}", WSP_API_BODY_PATCH, "labels");
  assert_refused ("{\"labels\":[\"\"]}", WSP_API_BODY_PATCH, "labels");
  assert_refused ("{\"remove_labels\":[\" \\t\"]}", WSP_API_BODY_PATCH, "remove_labels");
  assert_refused ("{\"depends_on\":[null]}", WSP_API_BODY_PATCH, "depends_on");
}

static void
test_self_dependency_is_refused (void)
{
  assert_refused ("{\"add_depends_on\":[\"ws-aaaaaaaaaa\"]}", WSP_API_BODY_PATCH, "depends_on");
  assert_refused ("{\"depends_on\":[\"ws-aaaaaaaaaa\"]}", WSP_API_BODY_REPLACE, "depends_on");
}

static void
test_empty_update (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (WspWrite) w = parse ("{\"unknown\":1,\"add_labels\":[],\"remove_labels\":[]}", WSP_API_BODY_PATCH, &error);
  g_assert_no_error (error);
  g_assert_true (wsp_api_write_is_empty (w));
  g_autoptr (WspWrite) w2 = parse ("{\"title\":\"x\"}", WSP_API_BODY_PATCH, &error);
  g_assert_false (wsp_api_write_is_empty (w2));
}

static void
test_comment_body (void)
{
  g_autoptr (GError) error = NULL;
  const char *ok = "{\"body\":\"looks good\",\"extra\":1}";
  g_autofree char *body = wsp_api_parse_comment_body (ok, strlen (ok), &error);
  g_assert_no_error (error);
  g_assert_cmpstr (body, ==, "looks good");

  static const char *const bad[] = { "{}", "{\"body\":\"\"}", "{\"body\":\" \\n\"}", "{\"body\":null}",
                                     "{\"body\":1}", "[]", "" };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++) {
    g_autoptr (GError) e = NULL;
    g_autofree char *b = wsp_api_parse_comment_body (bad[i], strlen (bad[i]), &e);
    g_assert_null (b);
    g_assert_error (e, WSP_ERROR, WSP_ERROR_INVALID);
    g_assert_true (g_str_has_prefix (e->message, "body:"));
  }
}

static void
test_url_decode (void)
{
  static const struct { const char *in, *out; } v[] = {
    { "a%20b", "a b" }, { "a+b", "a b" }, { "%E2%9C%93", "\xe2\x9c\x93" }, { "100%", "100%" },
    { "%zz", "%zz" }, { "%4", "%4" }, { "", "" }, { "ws-abc", "ws-abc" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (v); i++) {
    g_autofree char *s = wsp_api_url_decode (v[i].in, strlen (v[i].in));
    g_assert_cmpstr (s, ==, v[i].out);
  }
  /* NUL and invalid UTF-8 are refused. */
  g_assert_null (wsp_api_url_decode ("a%00b", 5));
  g_assert_null (wsp_api_url_decode ("%ff", 3));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/api-json/create/minimal", test_create_minimal);
  g_test_add_func ("/api-json/create/full", test_create_full);
  g_test_add_func ("/api-json/create/requires-title", test_create_requires_title);
  g_test_add_func ("/api-json/body/must-be-object", test_body_must_be_an_object);
  g_test_add_func ("/api-json/body/invalid-utf8", test_invalid_utf8_is_refused);
  g_test_add_func ("/api-json/body/deep-nesting", test_deep_nesting_is_refused_before_parsing);
  g_test_add_func ("/api-json/field/status", test_status_must_be_a_column);
  g_test_add_func ("/api-json/field/priority", test_priority_range);
  g_test_add_func ("/api-json/field/due", test_due_dates);
  g_test_add_func ("/api-json/field/position", test_position);
  g_test_add_func ("/api-json/patch/null-clears", test_patch_null_clears);
  g_test_add_func ("/api-json/sets/replace", test_sets_replace);
  g_test_add_func ("/api-json/sets/add-remove", test_sets_add_remove);
  g_test_add_func ("/api-json/sets/self-dependency", test_self_dependency_is_refused);
  g_test_add_func ("/api-json/patch/empty", test_empty_update);
  g_test_add_func ("/api-json/comment/body", test_comment_body);
  g_test_add_func ("/api-json/query/url-decode", test_url_decode);
  return g_test_run ();
}
