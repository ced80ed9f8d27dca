/* taskfile-fuzz.c — libFuzzer target for task files (SPEC 4).
 *
 * Task files come from people, editors, git and agents, so the parser must
 * be total: no crash, no abort, no leak, and every failure is
 * WSP_ERROR_INVALID with a line and a reason. Whatever parses must render
 * (keeping its unknown keys) to a file that parses back to the same fields
 * and the same unknown keys, and that diffs to no write against the task it
 * was rendered from — the "a file written by the daemon never comes back as
 * an operation" rule. Any violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "workspace/wsp-taskfile.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static const char *const statuses[] = { "todo", "in_progress", "done", NULL };

static void
check (gboolean cond)
{
  if (!cond)
    abort ();
}

static gboolean
sets_equal (const GPtrArray *a, const GPtrArray *b)
{
  if (a->len != b->len)
    return FALSE;
  for (guint i = 0; i < a->len; i++)
    if (strcmp (a->pdata[i], b->pdata[i]) != 0)
      return FALSE;
  return TRUE;
}

static GPtrArray *
strv_of (const GPtrArray *a)
{
  GPtrArray *v = g_ptr_array_new ();
  for (guint i = 0; i < a->len; i++)
    g_ptr_array_add (v, a->pdata[i]);
  g_ptr_array_add (v, NULL);
  return v;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (WspTaskFile) tf = NULL;
  WspTaskFileProblem problem = { 0 };

  if (!wsp_taskfile_parse ((const char *) data, size, statuses, &tf, &problem, &error))
    {
      check (tf == NULL);
      check (g_error_matches (error, WSP_ERROR, WSP_ERROR_INVALID));
      check (problem.line >= 1 && problem.reason != NULL && *problem.reason != '\0');
      wsp_taskfile_problem_clear (&problem);
      return 0;
    }
  check (tf != NULL && error == NULL);

  g_autoptr (GPtrArray) labels = strv_of (tf->labels);
  g_autoptr (GPtrArray) deps = strv_of (tf->depends_on);
  WspTaskFileView view = {
    .id = tf->id ? tf->id : "ws-aaaaaaaaaa",
    .title = tf->title,
    .body = tf->body,
    .status = tf->status ? tf->status : "todo",
    .priority = tf->priority,
    .assignee = tf->assignee,
    .labels = (const char *const *) labels->pdata,
    .depends_on = (const char *const *) deps->pdata,
    .parent = tf->parent,
    .due = tf->due,
    .created_at = tf->created_at,
    .updated_at = tf->updated_at,
  };
  g_autoptr (GBytes) original = g_bytes_new_static (data, size);
  g_autoptr (GBytes) out = wsp_taskfile_render (&view, original);
  gsize len = 0;
  const char *text = g_bytes_get_data (out, &len);
  g_autoptr (WspTaskFile) again = NULL;
  check (wsp_taskfile_parse (text, len, statuses, &again, NULL, NULL));

  check (g_strcmp0 (again->id, view.id) == 0);
  check (strcmp (again->title, tf->title) == 0);
  check (strcmp (again->body, tf->body) == 0);
  check (g_strcmp0 (again->status, view.status) == 0);
  check (again->priority == tf->priority);
  check (g_strcmp0 (again->assignee, tf->assignee) == 0);
  check (g_strcmp0 (again->parent, tf->parent) == 0);
  check (g_strcmp0 (again->due, tf->due) == 0);
  check (g_strcmp0 (again->created_at, tf->created_at) == 0);
  check (g_strcmp0 (again->updated_at, tf->updated_at) == 0);
  check (sets_equal (again->labels, tf->labels));
  check (sets_equal (again->depends_on, tf->depends_on));
  check (again->extras->len == tf->extras->len);
  for (guint i = 0; i < tf->extras->len; i++)
    {
      const WspTaskFileExtra *a = tf->extras->pdata[i];
      const WspTaskFileExtra *b = again->extras->pdata[i];
      check (strcmp (a->key, b->key) == 0);
    }
  g_autoptr (WspWrite) w = wsp_taskfile_diff (again, &view);
  check (w == NULL);
  return 0;
}
