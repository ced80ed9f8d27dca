/* http-body-fuzz.c — libFuzzer target for HTTP API request bodies (SPEC 5).
 *
 * Bodies come from any local client, so the parser must be total: no crash,
 * no abort, no leak, bounded recursion (deeply nested JSON is refused before
 * json-glib's recursive parser sees it). Every input goes through all three
 * task-body kinds and the comment parser; on success the resulting write
 * must satisfy what the parser promises, otherwise the target aborts.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "api/wsp-api-json.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const char *const statuses[] = { "todo", "in_progress", "review", "done", NULL };

static void
check_set (const GPtrArray *a)
{
  if (a == NULL)
    return;
  for (guint i = 0; i < a->len; i++) {
    const char *s = a->pdata[i];
    if (s == NULL || *s == '\0' || g_ascii_isspace (s[0]) || g_ascii_isspace (s[strlen (s) - 1]) ||
        !g_utf8_validate (s, -1, NULL))
      abort ();
  }
}

static void
check_write (const WspWrite *w)
{
  for (int f = 1; f < WSP_FIELD_COUNT; f++) {
    if (!(w->field_mask & (1u << f)))
      continue;
    const WspValue *v = &w->fields[f];
    switch ((WspField) f) {
    case WSP_FIELD_STATUS:
      if (v->kind != WSP_VALUE_STR || !g_strv_contains (statuses, v->str))
        abort ();
      break;
    case WSP_FIELD_PRIORITY:
      if (v->kind != WSP_VALUE_INT || v->i < 0 || v->i > 4)
        abort ();
      break;
    case WSP_FIELD_POSITION:
      if (v->kind != WSP_VALUE_FLOAT || !isfinite (v->f))
        abort ();
      break;
    case WSP_FIELD_DUE:
      if (v->kind != WSP_VALUE_NIL &&
          (v->kind != WSP_VALUE_STR || !wsp_date_is_valid (v->str, strlen (v->str))))
        abort ();
      break;
    default:
      if (v->kind != WSP_VALUE_NIL &&
          (v->kind != WSP_VALUE_STR || !g_utf8_validate (v->str, -1, NULL)))
        abort ();
      break;
    }
  }
  check_set (w->labels_add);
  check_set (w->labels_remove);
  check_set (w->deps_add);
  check_set (w->deps_remove);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static const WspApiBodyKind kinds[] = {
    WSP_API_BODY_CREATE, WSP_API_BODY_REPLACE, WSP_API_BODY_PATCH,
  };
  for (guint k = 0; k < G_N_ELEMENTS (kinds); k++) {
    g_autoptr (GError) error = NULL;
    g_autoptr (WspWrite) w = wsp_api_parse_task_body ((const char *) data, size, kinds[k],
                                                      "ws-fuzzfuzz22", statuses, &error);
    if ((w == NULL) == (error == NULL))
      abort ();
    if (w != NULL) {
      check_write (w);
      if (kinds[k] == WSP_API_BODY_CREATE && !(w->field_mask & (1u << WSP_FIELD_TITLE)))
        abort ();
    } else if (!g_error_matches (error, WSP_ERROR, WSP_ERROR_INVALID)) {
      abort ();
    }
  }
  g_autoptr (GError) error = NULL;
  g_autofree char *comment = wsp_api_parse_comment_body ((const char *) data, size, &error);
  if ((comment == NULL) == (error == NULL))
    abort ();
  g_autofree char *decoded = wsp_api_url_decode ((const char *) data, size);
  (void) decoded;
  return 0;
}
