/* wsp-api-json.h — request bodies of the HTTP API (SPEC 5) turned into store
 * writes, and the query strings of the list endpoint.
 *
 * Pure: no I/O, no globals, any thread. Everything a request may change is
 * validated here before the store sees it, so that a rejected request
 * changes nothing. Errors are WSP_ERROR_INVALID with a message that starts
 * with the offending field ("status: …"), or WSP_ERROR_FAILED only for
 * out-of-memory-like impossibilities (never in practice).
 */
#pragma once
#include <glib.h>
#include "store/wsp-store.h"

G_BEGIN_DECLS

/* Deepest JSON nesting a body may have; deeper input is refused before any
 * recursive parser sees it. */
#define WSP_API_MAX_DEPTH 32

typedef enum {
  WSP_API_BODY_CREATE,    /* POST /api/v1/tasks: title required */
  WSP_API_BODY_REPLACE,   /* PUT: the editable fields given are replaced */
  WSP_API_BODY_PATCH,     /* PATCH: RFC 7396 merge patch (+ add_/remove_ keys) */
} WspApiBodyKind;

/* Parses and validates a task body (data need not be NUL-terminated).
 * Returns a new write of kind CREATE (for WSP_API_BODY_CREATE) or UPDATE
 * for task_id, or NULL with WSP_ERROR_INVALID naming the field.
 *
 * Rules: the body is a JSON object of valid UTF-8, nested at most
 * WSP_API_MAX_DEPTH deep. title: string (create: required, not blank;
 * null clears to "" on PUT/PATCH); body: string or null (""); status: one
 * of `statuses` (NULL → todo, in_progress, done); priority: integer 0–4
 * (an integral float such as 2.0 is accepted); assignee, parent: string or
 * null; due: YYYY-MM-DD or null/""; position: finite number; null status,
 * priority or position is refused. labels, depends_on: arrays of strings,
 * trimmed, not empty; they replace the whole set (null → empty set).
 * add_labels, remove_labels, add_depends_on, remove_depends_on: arrays of
 * strings, and may not be combined with the replacing key of the same set.
 * Unknown keys are ignored. */
WspWrite *wsp_api_parse_task_body (const char *data, gsize len, WspApiBodyKind kind,
                                   const char *task_id, const char *const *statuses,
                                   GError **error);

/* POST /api/v1/tasks/{id}/comments: {"body": non-blank string}. Returns the
 * body (newly allocated) or NULL with WSP_ERROR_INVALID. */
char     *wsp_api_parse_comment_body (const char *data, gsize len, GError **error);

/* TRUE when w would change nothing (no field, label or dependency). */
gboolean  wsp_api_write_is_empty (const WspWrite *w);

/* Checks that data is UTF-8 JSON nested at most max_depth deep (it does not
 * check the rest of the grammar). Exposed for tests. */
gboolean  wsp_api_json_depth_ok (const char *data, gsize len, guint max_depth);

/* Decodes one application/x-www-form-urlencoded component (%XX and '+').
 * Returns NULL when the result is not valid UTF-8 or contains NUL. */
char     *wsp_api_url_decode (const char *s, gsize len);

G_END_DECLS
