/* wsp-api-json.c — validation of HTTP request bodies (SPEC 5) into WspWrite.
 *
 * Owns nothing long-lived; runs on the HTTP thread (and in the fuzzer and
 * unit tests). Input is untrusted: it is checked for UTF-8 and nesting depth
 * before json-glib (a recursive parser) sees it, and every field is checked
 * for type and range before a write is built, so a rejected body never
 * reaches the store.
 */
#include "api/wsp-api-json.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

static const char *const default_statuses[] = { "todo", "in_progress", "done", NULL };

G_GNUC_PRINTF (2, 3) static void
set_invalid (GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error_literal (error, WSP_ERROR, WSP_ERROR_INVALID, msg);
}

gboolean
wsp_api_json_depth_ok (const char *data, gsize len, guint max_depth)
{
  guint depth = 0;
  gboolean in_str = FALSE;

  for (gsize i = 0; i < len; i++) {
    char c = data[i];
    if (in_str) {
      if (c == '\\')
        i++;
      else if (c == '"')
        in_str = FALSE;
      continue;
    }
    switch (c) {
    case '"':
      in_str = TRUE;
      break;
    case '[':
    case '{':
      if (++depth > max_depth)
        return FALSE;
      break;
    case ']':
    case '}':
      if (depth > 0)
        depth--;
      break;
    default:
      break;
    }
  }
  return TRUE;
}

/* Parses data into the root object. The returned parser owns it. */
static JsonParser *
parse_object (const char *data, gsize len, JsonObject **out, GError **error)
{
  if (len == 0) {
    set_invalid (error, "body: expected a JSON object, got an empty body");
    return NULL;
  }
  if (len > G_MAXSSIZE || !g_utf8_validate_len (data, len, NULL)) {
    set_invalid (error, "body: not valid UTF-8");
    return NULL;
  }
  if (!wsp_api_json_depth_ok (data, len, WSP_API_MAX_DEPTH)) {
    set_invalid (error, "body: JSON nested deeper than %d levels", WSP_API_MAX_DEPTH);
    return NULL;
  }

  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError) local = NULL;
  if (!json_parser_load_from_data (parser, data, (gssize) len, &local)) {
    set_invalid (error, "body: invalid JSON: %s", local->message);
    return NULL;
  }
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root)) {
    set_invalid (error, "body: expected a JSON object");
    return NULL;
  }
  *out = json_node_get_object (root);
  return g_steal_pointer (&parser);
}

static gboolean
node_is_string (JsonNode *n)
{
  return JSON_NODE_HOLDS_VALUE (n) && json_node_get_value_type (n) == G_TYPE_STRING;
}

static gboolean
node_is_number (JsonNode *n)
{
  if (!JSON_NODE_HOLDS_VALUE (n))
    return FALSE;
  GType t = json_node_get_value_type (n);
  return t == G_TYPE_INT64 || t == G_TYPE_DOUBLE;
}

/* A string from the tree that is valid UTF-8 without embedded surprises
 * (json-glib turns lone \uD800 escapes into invalid sequences). */
static const char *
node_string (JsonNode *n, const char *field, GError **error)
{
  const char *s = json_node_get_string (n);
  if (s == NULL || !g_utf8_validate (s, -1, NULL)) {
    set_invalid (error, "%s: not valid UTF-8", field);
    return NULL;
  }
  return s;
}

static gboolean
str_is_blank (const char *s)
{
  for (; *s; s++)
    if (!g_ascii_isspace (*s))
      return FALSE;
  return TRUE;
}

static gboolean
status_is_known (const char *s, const char *const *statuses)
{
  for (guint i = 0; statuses[i] != NULL; i++)
    if (strcmp (statuses[i], s) == 0)
      return TRUE;
  return FALSE;
}

static void
set_status_error (GError **error, const char *const *statuses)
{
  g_autofree char *list = g_strjoinv (", ", (char **) statuses);
  set_invalid (error, "status: must be one of %s", list);
}

/* Array of strings → a new GPtrArray of trimmed, non-empty, distinct
 * strings. JSON null gives an empty array when allow_null. */
static GPtrArray *
parse_string_set (JsonNode *n, const char *field, gboolean allow_null, GError **error)
{
  if (JSON_NODE_HOLDS_NULL (n)) {
    if (!allow_null) {
      set_invalid (error, "%s: must be an array of strings", field);
      return NULL;
    }
    return g_ptr_array_new_with_free_func (g_free);
  }
  if (!JSON_NODE_HOLDS_ARRAY (n)) {
    set_invalid (error, "%s: must be an array of strings", field);
    return NULL;
  }
  JsonArray *arr = json_node_get_array (n);
  guint len = json_array_get_length (arr);
  g_autoptr (GPtrArray) out = g_ptr_array_new_full (len, g_free);
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);

  for (guint i = 0; i < len; i++) {
    JsonNode *e = json_array_get_element (arr, i);
    if (!node_is_string (e)) {
      set_invalid (error, "%s: must be an array of strings", field);
      return NULL;
    }
    const char *s = node_string (e, field, error);
    if (s == NULL)
      return NULL;
    char *t = g_strstrip (g_strdup (s));
    if (*t == '\0') {
      g_free (t);
      set_invalid (error, "%s: entries must not be empty", field);
      return NULL;
    }
    if (g_hash_table_contains (seen, t)) {
      g_free (t);
      continue;
    }
    g_hash_table_add (seen, t);
    g_ptr_array_add (out, t);
  }
  return g_steal_pointer (&out);
}

/* Text fields: title and body. */
static gboolean
parse_text (WspWrite *w, JsonObject *obj, WspField field, WspApiBodyKind kind, GError **error)
{
  const char *name = wsp_field_to_string (field);
  JsonNode *n = json_object_get_member (obj, name);
  if (n == NULL)
    return TRUE;

  if (JSON_NODE_HOLDS_NULL (n)) {
    if (kind == WSP_API_BODY_CREATE && field == WSP_FIELD_TITLE) {
      set_invalid (error, "title: must be a non-empty string");
      return FALSE;
    }
    WspValue v = wsp_value_str (NULL);
    wsp_write_set_field (w, field, &v);
    return TRUE;
  }
  if (!node_is_string (n)) {
    set_invalid (error, "%s: must be a string", name);
    return FALSE;
  }
  const char *s = node_string (n, name, error);
  if (s == NULL)
    return FALSE;
  if (kind == WSP_API_BODY_CREATE && field == WSP_FIELD_TITLE && str_is_blank (s)) {
    set_invalid (error, "title: must not be empty");
    return FALSE;
  }
  WspValue v = wsp_value_str (s);
  wsp_write_set_field (w, field, &v);
  return TRUE;
}

/* Nullable string fields: assignee, parent, due. */
static gboolean
parse_optional_string (WspWrite *w, JsonObject *obj, WspField field, GError **error)
{
  const char *name = wsp_field_to_string (field);
  JsonNode *n = json_object_get_member (obj, name);
  if (n == NULL)
    return TRUE;

  if (JSON_NODE_HOLDS_NULL (n)) {
    WspValue v = wsp_value_str (NULL);
    wsp_write_set_field (w, field, &v);
    return TRUE;
  }
  if (!node_is_string (n)) {
    set_invalid (error, "%s: must be a string or null", name);
    return FALSE;
  }
  const char *s = node_string (n, name, error);
  if (s == NULL)
    return FALSE;
  g_autofree char *t = g_strstrip (g_strdup (s));
  if (field == WSP_FIELD_DUE && *t != '\0' && !wsp_date_is_valid (t, strlen (t))) {
    set_invalid (error, "due: must be a date YYYY-MM-DD or null");
    return FALSE;
  }
  WspValue v = wsp_value_str (t);
  wsp_write_set_field (w, field, &v);
  return TRUE;
}

static gboolean
parse_status (WspWrite *w, JsonObject *obj, const char *const *statuses, GError **error)
{
  JsonNode *n = json_object_get_member (obj, "status");
  if (n == NULL)
    return TRUE;
  if (!node_is_string (n)) {
    set_status_error (error, statuses);
    return FALSE;
  }
  const char *s = node_string (n, "status", error);
  if (s == NULL)
    return FALSE;
  if (!status_is_known (s, statuses)) {
    set_status_error (error, statuses);
    return FALSE;
  }
  WspValue v = wsp_value_str (s);
  wsp_write_set_field (w, WSP_FIELD_STATUS, &v);
  return TRUE;
}

static gboolean
parse_priority (WspWrite *w, JsonObject *obj, GError **error)
{
  JsonNode *n = json_object_get_member (obj, "priority");
  if (n == NULL)
    return TRUE;

  gint64 p = -1;
  if (node_is_number (n)) {
    if (json_node_get_value_type (n) == G_TYPE_INT64) {
      p = json_node_get_int (n);
    } else {
      double d = json_node_get_double (n);
      if (isfinite (d) && d == floor (d) && d >= 0 && d <= 4)
        p = (gint64) d;
    }
  }
  if (p < 0 || p > 4) {
    set_invalid (error, "priority: must be an integer from 0 to 4");
    return FALSE;
  }
  WspValue v = wsp_value_int (p);
  wsp_write_set_field (w, WSP_FIELD_PRIORITY, &v);
  return TRUE;
}

static gboolean
parse_position (WspWrite *w, JsonObject *obj, GError **error)
{
  JsonNode *n = json_object_get_member (obj, "position");
  if (n == NULL)
    return TRUE;
  double d = NAN;
  if (node_is_number (n))
    d = json_node_get_value_type (n) == G_TYPE_INT64 ? (double) json_node_get_int (n)
                                                      : json_node_get_double (n);
  if (!isfinite (d)) {
    set_invalid (error, "position: must be a finite number");
    return FALSE;
  }
  WspValue v = wsp_value_float (d);
  wsp_write_set_field (w, WSP_FIELD_POSITION, &v);
  return TRUE;
}

/* One set (labels or depends_on): the replacing key and the add_/remove_
 * keys. */
static gboolean
parse_set (JsonObject *obj, const char *name, const char *add_name, const char *remove_name,
           gboolean *replace, GPtrArray **add, GPtrArray **remove, GError **error)
{
  JsonNode *n_set = json_object_get_member (obj, name);
  JsonNode *n_add = json_object_get_member (obj, add_name);
  JsonNode *n_rem = json_object_get_member (obj, remove_name);

  if (n_set != NULL && (n_add != NULL || n_rem != NULL)) {
    set_invalid (error, "%s: cannot be combined with %s", name,
                 n_add != NULL ? add_name : remove_name);
    return FALSE;
  }
  if (n_set != NULL) {
    GPtrArray *a = parse_string_set (n_set, name, TRUE, error);
    if (a == NULL)
      return FALSE;
    *replace = TRUE;
    *add = a;
    return TRUE;
  }
  g_autoptr (GPtrArray) a = NULL;
  g_autoptr (GPtrArray) r = NULL;
  if (n_add != NULL && (a = parse_string_set (n_add, add_name, FALSE, error)) == NULL)
    return FALSE;
  if (n_rem != NULL && (r = parse_string_set (n_rem, remove_name, FALSE, error)) == NULL)
    return FALSE;
  if (a != NULL && r != NULL) {
    for (guint i = 0; i < a->len; i++)
      for (guint j = 0; j < r->len; j++)
        if (strcmp (a->pdata[i], r->pdata[j]) == 0) {
          set_invalid (error, "%s: '%s' is also in %s", add_name,
                       (const char *) a->pdata[i], remove_name);
          return FALSE;
        }
  }
  *replace = FALSE;
  *add = a != NULL && a->len > 0 ? g_steal_pointer (&a) : NULL;
  *remove = r != NULL && r->len > 0 ? g_steal_pointer (&r) : NULL;
  return TRUE;
}

static gboolean
set_names (GPtrArray *a, const char *s)
{
  if (a == NULL)
    return FALSE;
  for (guint i = 0; i < a->len; i++)
    if (strcmp (a->pdata[i], s) == 0)
      return TRUE;
  return FALSE;
}

WspWrite *
wsp_api_parse_task_body (const char *data, gsize len, WspApiBodyKind kind,
                         const char *task_id, const char *const *statuses, GError **error)
{
  JsonObject *obj = NULL;
  g_autoptr (JsonParser) parser = parse_object (data, len, &obj, error);
  if (parser == NULL)
    return NULL;

  if (statuses == NULL || statuses[0] == NULL)
    statuses = default_statuses;

  if (kind == WSP_API_BODY_CREATE && !json_object_has_member (obj, "title")) {
    set_invalid (error, "title: required");
    return NULL;
  }
  if (kind == WSP_API_BODY_PATCH) {
    static const char *const not_nullable[] = { "status", "priority", "position" };
    for (guint i = 0; i < G_N_ELEMENTS (not_nullable); i++) {
      JsonNode *n = json_object_get_member (obj, not_nullable[i]);
      if (n != NULL && JSON_NODE_HOLDS_NULL (n)) {
        set_invalid (error, "%s: cannot be removed", not_nullable[i]);
        return NULL;
      }
    }
  }

  g_autoptr (WspWrite) w = wsp_write_new (kind == WSP_API_BODY_CREATE ? WSP_WRITE_CREATE
                                                                      : WSP_WRITE_UPDATE,
                                          task_id);
  if (!parse_text (w, obj, WSP_FIELD_TITLE, kind, error) ||
      !parse_text (w, obj, WSP_FIELD_BODY, kind, error) ||
      !parse_status (w, obj, statuses, error) ||
      !parse_priority (w, obj, error) ||
      !parse_optional_string (w, obj, WSP_FIELD_ASSIGNEE, error) ||
      !parse_optional_string (w, obj, WSP_FIELD_PARENT, error) ||
      !parse_optional_string (w, obj, WSP_FIELD_DUE, error) ||
      !parse_position (w, obj, error))
    return NULL;

  g_autoptr (GPtrArray) labels_add = NULL;
  g_autoptr (GPtrArray) labels_remove = NULL;
  g_autoptr (GPtrArray) deps_add = NULL;
  g_autoptr (GPtrArray) deps_remove = NULL;
  gboolean labels_replace = FALSE, deps_replace = FALSE;

  if (!parse_set (obj, "labels", "add_labels", "remove_labels",
                  &labels_replace, &labels_add, &labels_remove, error) ||
      !parse_set (obj, "depends_on", "add_depends_on", "remove_depends_on",
                  &deps_replace, &deps_add, &deps_remove, error))
    return NULL;

  if (task_id != NULL && (set_names (deps_add, task_id))) {
    set_invalid (error, "depends_on: a task cannot depend on itself");
    return NULL;
  }
  if (kind == WSP_API_BODY_CREATE) {
    /* A new task has no sets to replace or remove from. */
    labels_replace = deps_replace = FALSE;
    g_clear_pointer (&labels_remove, g_ptr_array_unref);
    g_clear_pointer (&deps_remove, g_ptr_array_unref);
    if (labels_add != NULL && labels_add->len == 0)
      g_clear_pointer (&labels_add, g_ptr_array_unref);
    if (deps_add != NULL && deps_add->len == 0)
      g_clear_pointer (&deps_add, g_ptr_array_unref);
  }

  w->labels_replace = labels_replace;
  w->labels_add = g_steal_pointer (&labels_add);
  w->labels_remove = g_steal_pointer (&labels_remove);
  w->deps_replace = deps_replace;
  w->deps_add = g_steal_pointer (&deps_add);
  w->deps_remove = g_steal_pointer (&deps_remove);
  return g_steal_pointer (&w);
}

char *
wsp_api_parse_comment_body (const char *data, gsize len, GError **error)
{
  JsonObject *obj = NULL;
  g_autoptr (JsonParser) parser = parse_object (data, len, &obj, error);
  if (parser == NULL)
    return NULL;
  JsonNode *n = json_object_get_member (obj, "body");
  if (n == NULL || !node_is_string (n)) {
    set_invalid (error, "body: must be a non-empty string");
    return NULL;
  }
  const char *s = node_string (n, "body", error);
  if (s == NULL)
    return NULL;
  if (str_is_blank (s)) {
    set_invalid (error, "body: must not be empty");
    return NULL;
  }
  return g_strdup (s);
}

gboolean
wsp_api_write_is_empty (const WspWrite *w)
{
  return w->field_mask == 0 && !w->labels_replace && !w->deps_replace &&
         (w->labels_add == NULL || w->labels_add->len == 0) &&
         (w->labels_remove == NULL || w->labels_remove->len == 0) &&
         (w->deps_add == NULL || w->deps_add->len == 0) &&
         (w->deps_remove == NULL || w->deps_remove->len == 0);
}

static int
hex_val (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

char *
wsp_api_url_decode (const char *s, gsize len)
{
  char *out = g_malloc (len + 1);
  gsize o = 0;
  for (gsize i = 0; i < len; i++) {
    char c = s[i];
    if (c == '+') {
      c = ' ';
    } else if (c == '%' && i + 2 < len) {
      int hi = hex_val (s[i + 1]), lo = hex_val (s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        c = (char) (hi << 4 | lo);
        i += 2;
      }
    }
    out[o++] = c;
  }
  out[o] = '\0';
  if (memchr (out, '\0', o) != NULL || !g_utf8_validate_len (out, o, NULL)) {
    g_free (out);
    return NULL;
  }
  return out;
}
