/* taskfile-test.c — pins src/workspace/wsp-taskfile.c: the task file format
 * of SPEC 4. Round trips (render → parse gives the same fields, and diffing
 * the result against the task gives no write) over tricky strings; unknown
 * keys kept in order; every broken-file kind reports the right line and
 * reason; missing versus empty keys; minimal diffs; create writes.
 */
#include <string.h>

#include <glib.h>

#include "common/wsp-common.h"
#include "workspace/wsp-taskfile.h"

static const char *const statuses[] = { "todo", "in_progress", "done", NULL };

static const char spec_example[] =
  "---\n"
  "id: ws-k3jrxaq2mz\n"
  "title: Make sync resume after laptop sleep\n"
  "status: in_progress\n"
  "priority: 1\n"
  "assignee: alice\n"
  "labels: [sync, bug]\n"
  "depends_on: [ws-7hdz2kq4aa]\n"
  "parent:\n"
  "due: 2026-12-01\n"
  "created_at: 2026-11-23T10:04:00.000Z\n"
  "updated_at: 2026-11-23T11:30:12.345Z\n"
  "---\n"
  "Body in Markdown (up to about 60 KiB: one operation must fit a message).\n"
  "\n"
  "<!-- wsp:comments (written by wspd; add a comment with `wsp comment`) -->\n";

static WspTaskFile *
parse_ok (const char *text)
{
  g_autoptr (GError) error = NULL;
  WspTaskFile *tf = NULL;
  gboolean ok = wsp_taskfile_parse (text, strlen (text), statuses, &tf, NULL, &error);
  if (!ok)
    g_test_message ("unexpected failure: %s\n%s", error->message, text);
  g_assert_no_error (error);
  g_assert_true (ok);
  g_assert_nonnull (tf);
  return tf;
}

static WspTaskFile *
parse_bytes_ok (GBytes *b)
{
  gsize len = 0;
  const char *data = g_bytes_get_data (b, &len);
  g_autoptr (GError) error = NULL;
  WspTaskFile *tf = NULL;
  if (!wsp_taskfile_parse (data, len, NULL, &tf, NULL, &error))
    g_test_message ("rendered file does not parse: %s\n%.*s", error->message, (int) len, data);
  g_assert_no_error (error);
  return tf;
}

static void
assert_set (GPtrArray *got, const char *const *want)
{
  guint n = want ? g_strv_length ((char **) want) : 0;
  g_assert_cmpuint (got->len, ==, n);
  for (guint i = 0; i < n; i++)
    g_assert_cmpstr (got->pdata[i], ==, want[i]);
}

static const char *
nz (const char *s)
{
  return s && *s ? s : NULL;
}

/* render → parse → same fields, and no diff against the view. */
static void
assert_roundtrip (const WspTaskFileView *v)
{
  g_autoptr (GBytes) b = wsp_taskfile_render (v, NULL);
  g_autoptr (WspTaskFile) tf = parse_bytes_ok (b);
  g_assert_nonnull (tf);
  g_assert_cmpstr (tf->id, ==, v->id);
  g_assert_cmpstr (tf->title, ==, v->title ? v->title : "");
  g_autofree char *body = wsp_taskfile_body_normalize (v->body);
  g_assert_cmpstr (tf->body, ==, body);
  g_assert_cmpstr (tf->status, ==, v->status);
  g_assert_cmpint (tf->priority, ==, v->priority);
  g_assert_cmpstr (tf->assignee, ==, nz (v->assignee));
  g_assert_cmpstr (tf->parent, ==, nz (v->parent));
  g_assert_cmpstr (tf->due, ==, nz (v->due));
  g_assert_cmpstr (tf->created_at, ==, nz (v->created_at));
  g_assert_cmpstr (tf->updated_at, ==, nz (v->updated_at));
  assert_set (tf->labels, v->labels);
  assert_set (tf->depends_on, v->depends_on);
  g_assert_cmpuint (tf->present, ==, 0x7ff);
  g_autoptr (WspWrite) w = wsp_taskfile_diff (tf, v);
  g_assert_null (w);
}

static void
test_parse_spec_example (void)
{
  g_autoptr (WspTaskFile) tf = parse_ok (spec_example);
  g_assert_cmpstr (tf->id, ==, "ws-k3jrxaq2mz");
  g_assert_cmpstr (tf->title, ==, "Make sync resume after laptop sleep");
  g_assert_cmpstr (tf->status, ==, "in_progress");
  g_assert_cmpint (tf->priority, ==, 1);
  g_assert_cmpstr (tf->assignee, ==, "alice");
  const char *const labels[] = { "sync", "bug", NULL };
  assert_set (tf->labels, labels);
  const char *const deps[] = { "ws-7hdz2kq4aa", NULL };
  assert_set (tf->depends_on, deps);
  g_assert_null (tf->parent);
  g_assert_cmpstr (tf->due, ==, "2026-12-01");
  g_assert_cmpstr (tf->created_at, ==, "2026-11-23T10:04:00.000Z");
  g_assert_cmpstr (tf->body, ==,
                   "Body in Markdown (up to about 60 KiB: one operation must fit a message).");
  g_assert_cmpuint (tf->extras->len, ==, 0);
  g_assert_cmpuint (tf->present, ==, 0x7ff);
}

static void
test_parse_missing_vs_empty (void)
{
  g_autoptr (WspTaskFile) a = parse_ok ("---\ntitle: x\n---\nbody\n");
  g_assert_cmpuint (a->present, ==, WSP_TASKFILE_KEY_TITLE);
  g_assert_null (a->id);
  g_assert_null (a->status);
  g_assert_cmpint (a->priority, ==, 2);
  g_assert_cmpuint (a->labels->len, ==, 0);

  g_autoptr (WspTaskFile) b = parse_ok ("---\nassignee:\nlabels:\nparent: ~\ndue: null\n"
                                        "depends_on: []\ntitle: \"\"\n---\n");
  g_assert_cmpuint (b->present, ==,
                    WSP_TASKFILE_KEY_ASSIGNEE | WSP_TASKFILE_KEY_LABELS | WSP_TASKFILE_KEY_PARENT |
                    WSP_TASKFILE_KEY_DUE | WSP_TASKFILE_KEY_DEPENDS_ON | WSP_TASKFILE_KEY_TITLE);
  g_assert_null (b->assignee);
  g_assert_null (b->parent);
  g_assert_null (b->due);
  g_assert_cmpstr (b->title, ==, "");
  g_assert_cmpstr (b->body, ==, "");

  /* Quoted "null" is a string, plain null is empty. */
  g_autoptr (WspTaskFile) c = parse_ok ("---\nassignee: \"null\"\ntitle: null\n---\n");
  g_assert_cmpstr (c->assignee, ==, "null");
  g_assert_cmpstr (c->title, ==, "");

  /* Empty frontmatter, comment-only frontmatter, BOM, CRLF. */
  g_autoptr (WspTaskFile) d = parse_ok ("---\n---\n");
  g_assert_cmpuint (d->present, ==, 0);
  g_autoptr (WspTaskFile) e = parse_ok ("\xef\xbb\xbf---\r\n# nothing\r\ntitle: t\r\n---\r\nline\r\n");
  g_assert_cmpstr (e->title, ==, "t");
  g_assert_cmpstr (e->body, ==, "line");

  /* Labels: trimmed, deduplicated, in file order; block lists too. */
  g_autoptr (WspTaskFile) f = parse_ok ("---\nlabels:\n  - \" b \"\n  - a\n  - b\n---\n");
  const char *const want[] = { "b", "a", NULL };
  assert_set (f->labels, want);
}

typedef struct {
  const char *text;
  guint       line;
  const char *reason;   /* substring */
} BadCase;

static void
test_parse_errors (void)
{
  static const BadCase cases[] = {
    { "", 1, "no frontmatter" },
    { "title: x\n", 1, "no frontmatter" },
    { "---\ntitle: x\n", 1, "not closed" },
    { "---\ntitle: x\nstatus: [a\n---\n", 4, "invalid YAML" },
    { "---\ntitle: x\ntitle: y\n---\n", 3, "duplicate key" },
    { "---\ntitle: a: b\n---\n", 2, "invalid YAML" },
    { "---\n- a\n- b\n---\n", 2, "must be a mapping" },
    { "---\njust text\n---\n", 2, "must be a mapping" },
    { "---\ntitle: x\npriority: 7\n---\n", 3, "priority: must be an integer 0–4" },
    { "---\npriority: high\n---\n", 2, "priority" },
    { "---\npriority:\n---\n", 2, "priority" },
    { "---\npriority: [1]\n---\n", 2, "priority" },
    { "---\n\nlabels: bug\n---\n", 3, "labels: must be a list of strings" },
    { "---\nlabels:\n  - ok\n  - [nested]\n---\n", 4, "labels: must be a list of strings" },
    { "---\nlabels: [a, \"  \"]\n---\n", 2, "labels: entries must not be empty" },
    { "---\ndepends_on: {a: 1}\n---\n", 2, "depends_on: must be a list" },
    { "---\ndue: 2026-02-30\n---\n", 2, "due: \"2026-02-30\" is not a date" },
    { "---\ndue: tomorrow\n---\n", 2, "due:" },
    { "---\ntitle:\n  a: 1\n---\n", 3, "title: must be a single value" },
    { "---\ntitle: [a, b]\n---\n", 2, "title: must be a single value" },
    { "---\nstatus: blocked\n---\n", 2, "status: unknown status \"blocked\"" },
    { "---\nstatus:\n---\n", 2, "status: must not be empty" },
    { "---\nid: 42\n---\n", 2, "id: \"42\" is not a task id" },
    { "---\nid: WS-ABCDEFGHIJ\n---\n", 2, "not a task id" },
    { "---\nid: ws-abcdefgh1j\n---\n", 2, "not a task id" },
    { "---\ntitle: \"a\\0b\"\n---\n", 2, "U+0000" },
    { "---\ntitle: x\n---\nbody\n\xff\n", 5, "not valid UTF-8" },
    { "---\nx: 1\n...\ny: 2\n---\n", 4, "more than one YAML document" },
    { "---\n[a]: 1\n---\n", 2, "keys must be strings" },
    { "---\na: &x 1\ntitle: *x\n---\n", 3, "aliases are not supported" },
    { "---\n%YAML 1.2\n---\n", 3, "invalid YAML" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const BadCase *c = &cases[i];
      g_autoptr (GError) error = NULL;
      WspTaskFile *tf = NULL;
      WspTaskFileProblem p = { 0 };
      {
        /* Messages are TAP comments: keep them valid UTF-8. */
        g_autofree char *shown = g_utf8_make_valid (c->text, -1);
        g_test_message ("case %u: %s", i, shown);
      }
      g_assert_false (wsp_taskfile_parse (c->text, strlen (c->text), statuses, &tf, &p, &error));
      g_assert_null (tf);
      g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
      g_test_message ("  -> %s", error->message);
      g_assert_cmpuint (p.line, ==, c->line);
      g_assert_nonnull (strstr (p.reason, c->reason));
      g_autofree char *prefix = g_strdup_printf ("line %u: ", c->line);
      g_assert_true (g_str_has_prefix (error->message, prefix));
      wsp_taskfile_problem_clear (&p);
    }

  /* NUL bytes and oversize files. */
  static const char nul[] = "---\ntitle: a\n---\nx\0y\n";
  WspTaskFile *tf = NULL;
  WspTaskFileProblem p = { 0 };
  g_assert_false (wsp_taskfile_parse (nul, sizeof nul - 1, statuses, &tf, &p, NULL));
  g_assert_cmpuint (p.line, ==, 4);
  g_assert_nonnull (strstr (p.reason, "NUL"));
  wsp_taskfile_problem_clear (&p);
  gsize big = WSP_TASKFILE_MAX_BYTES + 1;
  g_autofree char *huge = g_malloc (big);
  memset (huge, 'a', big);
  g_assert_false (wsp_taskfile_parse (huge, big, statuses, &tf, &p, NULL));
  g_assert_nonnull (strstr (p.reason, "too large"));
  wsp_taskfile_problem_clear (&p);

  /* Deep nesting stops at libfyaml's depth limit instead of the stack. */
  GString *deep = g_string_new ("---\nx: ");
  for (int i = 0; i < 100000; i++)
    g_string_append_c (deep, '[');
  g_string_append (deep, "\n---\n");
  g_assert_false (wsp_taskfile_parse (deep->str, deep->len, statuses, &tf, &p, NULL));
  g_assert_cmpuint (p.line, ==, 2);
  wsp_taskfile_problem_clear (&p);
  g_string_free (deep, TRUE);
}

static void
test_roundtrip_tricky_strings (void)
{
  static const char *const tricky[] = {
    "plain title", "hello: world", "# not a comment", "a #b", "a#b", "- dash", "-", "--", "---",
    "...", "[x]", "{x}", "x, y", "'single'", "\"double\"", "it's", "say \"hi\"", "back\\slash",
    "line\nbreak", "two\n\nlines\n", "tab\there", "cr\rhere", "yes", "no", "Yes", "NO", "on",
    "off", "y", "n", "true", "False", "null", "Null", "~", "123", "-1", "+1", "1.5", "1e3",
    "0x1f", "0o17", ".inf", "-.inf", ".nan", "1_000", "12:30", "2026-12-01",
    "2026-11-23T10:04:00.000Z", " leading", "trailing ", "trailing:", ":", "?", "? x",
    "@at", "`tick`", "%pct", "&amp", "*star", "!bang", "|", ">", "<<", "=", "a: ",
    "ünïcödé 日本語 😀", "\xe2\x80\xa8 line sep", "nel\xc2\x85", "nbsp\xc2\xa0", "bom\xef\xbb\xbf",
    "ctl\x01\x1f\x7f", "\xef\xbf\xbe", "http://example.com/a?b=c#d", "a:b", "<!-- wsp:comments -->",
  };
  for (guint i = 0; i < G_N_ELEMENTS (tricky); i++)
    {
      const char *s = tricky[i];
      g_autofree char *trimmed = g_strstrip (g_strdup (s));
      const char *set[] = { *trimmed ? trimmed : "x", NULL };
      WspTaskFileView v = {
        .id = "ws-k3jrxaq2mz", .title = s, .body = s, .status = s, .priority = 3,
        .assignee = s, .labels = set, .depends_on = set, .parent = s,
        .due = NULL, .created_at = s, .updated_at = s,
      };
      g_test_message ("tricky %u: %s", i, s);
      assert_roundtrip (&v);
    }
}

static void
test_roundtrip_body (void)
{
  static const char *const bodies[] = {
    "",
    "one line",
    "text\n---\nmore text after a fence\n---\n",
    "a fake marker follows\n" WSP_TASKFILE_COMMENTS_MARKER "\nand text after it",
    WSP_TASKFILE_COMMENTS_PREFIX " at the very start",
    "    indented code first\nthen text",
    "\n\n  \nafter blank lines",
    "crlf\r\nlines\r\n",
    "trailing spaces   \n\n\n",
    "---\n",
    "<!-- wsp:comments -->\n**x** · y\n\n> quoted",
  };
  for (guint i = 0; i < G_N_ELEMENTS (bodies); i++)
    {
      WspTaskFileView v = { .id = "ws-aaaaaaaaaa", .title = "t", .body = bodies[i], .status = "todo",
                            .priority = 2 };
      g_test_message ("body %u", i);
      assert_roundtrip (&v);
    }
}

static void
test_roundtrip_comments (void)
{
  const WspTaskFileComment comments[] = {
    { "0123456789abcdef", "2026-11-23T10:04:00.000Z", "first\n\n" WSP_TASKFILE_COMMENTS_MARKER "\n---" },
    { "fedcba9876543210", "2026-11-23T10:05:00.000Z", "" },
    { "fedcba9876543210", "2026-11-23T10:06:00.000Z", "<!-- wsp:comments\n" },
  };
  WspTaskFileView v = { .id = "ws-aaaaaaaaaa", .title = "t", .body = "The body.", .status = "done",
                        .priority = 0, .comments = comments, .n_comments = G_N_ELEMENTS (comments) };
  assert_roundtrip (&v);
  g_autoptr (GBytes) b = wsp_taskfile_render (&v, NULL);
  gsize len;
  const char *data = g_bytes_get_data (b, &len);
  g_autofree char *text = g_strndup (data, len);
  g_assert_nonnull (strstr (text, "**0123456789abcdef** · 2026-11-23T10:04:00.000Z\n\n> first\n>\n> <!--"));
  g_assert_true (g_str_has_suffix (text, "> <!-- wsp:comments\n"));
  /* The marker is written even without comments, right after the body. */
  WspTaskFileView bare = { .id = "ws-aaaaaaaaaa", .title = "t", .body = "b", .status = "todo", .priority = 2 };
  g_autoptr (GBytes) b2 = wsp_taskfile_render (&bare, NULL);
  data = g_bytes_get_data (b2, &len);
  g_autofree char *text2 = g_strndup (data, len);
  g_assert_true (g_str_has_suffix (text2, "---\nb\n\n" WSP_TASKFILE_COMMENTS_MARKER "\n"));
}

static void
test_render_layout (void)
{
  const char *labels[] = { "bug", "sync", NULL };
  const char *deps[] = { "ws-7hdz2kq4aa", NULL };
  WspTaskFileView v = {
    .id = "ws-k3jrxaq2mz", .title = "Make sync resume after laptop sleep",
    .body = "Body in Markdown (up to about 60 KiB: one operation must fit a message).",
    .status = "in_progress", .priority = 1, .assignee = "alice", .labels = labels, .depends_on = deps,
    .parent = NULL, .due = "2026-12-01", .position = 3.5,
    .created_at = "2026-11-23T10:04:00.000Z", .updated_at = "2026-11-23T11:30:12.345Z",
  };
  g_autoptr (GBytes) b = wsp_taskfile_render (&v, NULL);
  gsize len;
  const char *data = g_bytes_get_data (b, &len);
  g_autofree char *text = g_strndup (data, len);
  g_assert_cmpstr (text, ==,
                   "---\n"
                   "id: ws-k3jrxaq2mz\n"
                   "title: Make sync resume after laptop sleep\n"
                   "status: in_progress\n"
                   "priority: 1\n"
                   "assignee: alice\n"
                   "labels: [bug, sync]\n"
                   "depends_on: [ws-7hdz2kq4aa]\n"
                   "parent:\n"
                   "due: 2026-12-01\n"
                   "created_at: 2026-11-23T10:04:00.000Z\n"
                   "updated_at: 2026-11-23T11:30:12.345Z\n"
                   "---\n"
                   "Body in Markdown (up to about 60 KiB: one operation must fit a message).\n"
                   "\n"
                   WSP_TASKFILE_COMMENTS_MARKER "\n");
  g_assert_null (strstr (text, "position"));
}

static void
test_extras_kept_in_order (void)
{
  static const char original[] =
    "---\n"
    "zeta: 1   # a comment kept with its key\n"
    "title: Old title\n"
    "alpha:\n"
    "  nested: [1, 2]\n"
    "  deeper:\n"
    "    - x\n"
    "status: todo\n"
    "position: 7\n"
    "notes: |\n"
    "  multi\n"
    "  line\n"
    "# trailing comment\n"
    "---\n"
    "old body\n";
  g_autoptr (WspTaskFile) tf = parse_ok (original);
  g_assert_cmpuint (tf->extras->len, ==, 4);
  const char *const keys[] = { "zeta", "alpha", "position", "notes" };
  for (guint i = 0; i < 4; i++)
    g_assert_cmpstr (((WspTaskFileExtra *) tf->extras->pdata[i])->key, ==, keys[i]);
  g_assert_cmpstr (((WspTaskFileExtra *) tf->extras->pdata[0])->yaml, ==,
                   "zeta: 1   # a comment kept with its key\n");
  g_assert_cmpstr (((WspTaskFileExtra *) tf->extras->pdata[1])->yaml, ==,
                   "alpha:\n  nested: [1, 2]\n  deeper:\n    - x\n");

  WspTaskFileView v = { .id = "ws-aaaaaaaaaa", .title = "New title", .body = "new body", .status = "done",
                        .priority = 2 };
  g_autoptr (GBytes) orig = g_bytes_new_static (original, sizeof original - 1);
  g_autoptr (GBytes) b = wsp_taskfile_render (&v, orig);
  gsize len;
  const char *data = g_bytes_get_data (b, &len);
  g_autofree char *text = g_strndup (data, len);
  g_assert_nonnull (strstr (text,
                            "updated_at:\n"
                            "zeta: 1   # a comment kept with its key\n"
                            "alpha:\n  nested: [1, 2]\n  deeper:\n    - x\n"
                            "position: 7\n"
                            "notes: |\n  multi\n  line\n# trailing comment\n"
                            "---\nnew body\n"));
  g_autoptr (WspTaskFile) again = parse_bytes_ok (b);
  g_assert_cmpstr (again->title, ==, "New title");
  g_assert_cmpuint (again->extras->len, ==, 4);
  for (guint i = 0; i < 4; i++)
    g_assert_cmpstr (((WspTaskFileExtra *) again->extras->pdata[i])->yaml, ==,
                     ((WspTaskFileExtra *) tf->extras->pdata[i])->yaml);

  /* Extras survive even when a known field of the original is invalid. */
  static const char broken[] = "---\npriority: 9\nkeep: me\n---\n";
  g_autoptr (GBytes) ob = g_bytes_new_static (broken, sizeof broken - 1);
  g_autoptr (GBytes) b2 = wsp_taskfile_render (&v, ob);
  data = g_bytes_get_data (b2, &len);
  g_autofree char *text2 = g_strndup (data, len);
  g_assert_nonnull (strstr (text2, "\nkeep: me\n---\n"));

  /* A flow root mapping or an indented one cannot be copied line by line:
   * libfyaml's emitter writes the entries instead. */
  static const char *const odd[] = {
    "---\n{title: t, custom: {a: 1}, other: [x, y]}\n---\n",
    "---\n  title: t\n  custom: v\n  other: w\n---\n",
  };
  for (guint i = 0; i < G_N_ELEMENTS (odd); i++)
    {
      g_autoptr (WspTaskFile) o = parse_ok (odd[i]);
      g_assert_cmpuint (o->extras->len, ==, 2);
      g_autoptr (GBytes) ob2 = g_bytes_new_static (odd[i], strlen (odd[i]));
      g_autoptr (GBytes) b3 = wsp_taskfile_render (&v, ob2);
      g_autoptr (WspTaskFile) o2 = parse_bytes_ok (b3);
      g_assert_cmpuint (o2->extras->len, ==, 2);
      g_assert_cmpstr (((WspTaskFileExtra *) o2->extras->pdata[0])->key, ==, "custom");
      g_assert_cmpstr (((WspTaskFileExtra *) o2->extras->pdata[1])->key, ==, "other");
    }
}

/* extract_extras (used by every render) skips the YAML parse when every
 * top-level line is a known key; it must find exactly what a full parse
 * finds, whatever the layout. */
static void
test_extras_fast_path_agrees (void)
{
  static const char *const cases[] = {
    "---\nid: ws-aaaaaaaaaa\ntitle: \"A: b\"\nstatus: todo\npriority: 2\nlabels:\n  - x\n  - y\n---\nbody\n",
    "---\ntitle: t\ncustom: v\n---\n",
    "---\ntitle: t\n# a comment\nstatus: done\n---\n",
    "---\ntitle: |\n  line one\n  custom: not a key\nstatus: todo\n---\n",
    "---\ntitle: t\nlabels: [a, b]\nx_y: 1\n---\n",
    "---\n  title: t\n  custom: v\n---\n",
    "---\n- a\n---\n",
    "---\ntitle: t\n\nstatus: todo\n---\n",
    "---\ntitle:t\n---\n",
    "---\nTitle: t\n---\n",
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GPtrArray) fast = wsp_taskfile_extract_extras (cases[i], strlen (cases[i]));
      g_autoptr (GError) error = NULL;
      g_autoptr (WspTaskFile) tf = NULL;
      /* A file that does not parse keeps nothing of its extras either way. */
      if (!wsp_taskfile_parse (cases[i], strlen (cases[i]), statuses, &tf, NULL, &error))
        g_clear_pointer (&tf, wsp_taskfile_free);
      guint want = tf && tf->extras ? tf->extras->len : 0;
      guint got = fast ? fast->len : 0;
      g_assert_cmpuint (got, ==, want);
      for (guint j = 0; j < got; j++)
        g_assert_cmpstr (((WspTaskFileExtra *) fast->pdata[j])->key, ==,
                         ((WspTaskFileExtra *) tf->extras->pdata[j])->key);
    }
}

static gboolean
array_has (GPtrArray *a, const char *s)
{
  for (guint i = 0; a != NULL && i < a->len; i++)
    if (g_strcmp0 (a->pdata[i], s) == 0)
      return TRUE;
  return FALSE;
}

static void
test_diff_minimal (void)
{
  const char *labels[] = { "bug", "sync", NULL };
  const char *deps[] = { "ws-7hdz2kq4aa", NULL };
  WspTaskFileView cur = {
    .id = "ws-k3jrxaq2mz", .title = "Make sync resume after laptop sleep",
    .body = "Body in Markdown (up to about 60 KiB: one operation must fit a message).\n",
    .status = "in_progress", .priority = 1, .assignee = "alice", .labels = labels, .depends_on = deps,
    .due = "2026-12-01",
  };
  /* The SPEC example matches cur: no write. */
  g_autoptr (WspTaskFile) same = parse_ok (spec_example);
  g_autoptr (WspWrite) none = wsp_taskfile_diff (same, &cur);
  g_assert_null (none);

  /* One field, one label swap, one dep removal. */
  static const char edited[] =
    "---\nid: ws-k3jrxaq2mz\ntitle: Make sync resume after laptop sleep\nstatus: done\n"
    "priority: 1\nassignee: alice\nlabels: [sync, ux]\ndepends_on: []\nparent:\ndue: 2026-12-01\n---\n"
    "Body in Markdown (up to about 60 KiB: one operation must fit a message).\n";
  g_autoptr (WspTaskFile) tf = parse_ok (edited);
  g_autoptr (WspWrite) w = wsp_taskfile_diff (tf, &cur);
  g_assert_nonnull (w);
  g_assert_cmpint (w->kind, ==, WSP_WRITE_UPDATE);
  g_assert_cmpstr (w->task_id, ==, "ws-k3jrxaq2mz");
  g_assert_cmpuint (w->field_mask, ==, 1u << WSP_FIELD_STATUS);
  g_assert_cmpstr (w->fields[WSP_FIELD_STATUS].str, ==, "done");
  g_assert_false (w->labels_replace);
  g_assert_cmpuint (w->labels_add->len, ==, 1);
  g_assert_true (array_has (w->labels_add, "ux"));
  g_assert_cmpuint (w->labels_remove->len, ==, 1);
  g_assert_true (array_has (w->labels_remove, "bug"));
  g_assert_null (w->deps_add);
  g_assert_cmpuint (w->deps_remove->len, ==, 1);
  g_assert_true (array_has (w->deps_remove, "ws-7hdz2kq4aa"));

  /* Missing keys change nothing; the body always counts; clearing works. */
  static const char sparse[] = "---\nassignee:\npriority: 4\n---\nNew body\n";
  g_autoptr (WspTaskFile) sp = parse_ok (sparse);
  g_autoptr (WspWrite) w2 = wsp_taskfile_diff (sp, &cur);
  g_assert_cmpuint (w2->field_mask, ==,
                    (1u << WSP_FIELD_ASSIGNEE) | (1u << WSP_FIELD_PRIORITY) | (1u << WSP_FIELD_BODY));
  g_assert_cmpint (w2->fields[WSP_FIELD_ASSIGNEE].kind, ==, WSP_VALUE_NIL);
  g_assert_cmpint (w2->fields[WSP_FIELD_PRIORITY].kind, ==, WSP_VALUE_INT);
  g_assert_cmpint (w2->fields[WSP_FIELD_PRIORITY].i, ==, 4);
  g_assert_cmpstr (w2->fields[WSP_FIELD_BODY].str, ==, "New body");
  g_assert_null (w2->labels_add);
  g_assert_null (w2->labels_remove);

  /* An editor's final newline or blank lines never make a write. */
  WspTaskFileView c2 = { .id = "ws-aaaaaaaaaa", .title = "t", .body = "b", .status = "todo", .priority = 2 };
  g_autoptr (WspTaskFile) nl = parse_ok ("---\ntitle: t\n---\n\nb\n\n\n");
  g_autoptr (WspWrite) w3 = wsp_taskfile_diff (nl, &c2);
  g_assert_null (w3);
}

static void
test_create_write (void)
{
  g_autoptr (WspTaskFile) tf = parse_ok ("---\ntitle: New\nlabels: [a, b]\ndepends_on: [ws-7hdz2kq4aa]\n"
                                         "due: 2027-01-31\n---\nText\n");
  g_autoptr (WspWrite) w = wsp_taskfile_create_write (tf, "ws-bbbbbbbbbb");
  g_assert_cmpint (w->kind, ==, WSP_WRITE_CREATE);
  g_assert_cmpstr (w->task_id, ==, "ws-bbbbbbbbbb");
  g_assert_cmpuint (w->field_mask, ==,
                    (1u << WSP_FIELD_TITLE) | (1u << WSP_FIELD_BODY) | (1u << WSP_FIELD_DUE));
  g_assert_cmpstr (w->fields[WSP_FIELD_TITLE].str, ==, "New");
  g_assert_cmpstr (w->fields[WSP_FIELD_BODY].str, ==, "Text");
  g_assert_cmpstr (w->fields[WSP_FIELD_DUE].str, ==, "2027-01-31");
  g_assert_cmpuint (w->labels_add->len, ==, 2);
  g_assert_cmpuint (w->deps_add->len, ==, 1);
}

static void
test_hash (void)
{
  g_autofree char *h = wsp_taskfile_hash ("abc", 3);
  g_assert_cmpstr (h, ==, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  g_autofree char *e = wsp_taskfile_hash (NULL, 0);
  g_assert_cmpstr (e, ==, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void
test_view_from_json (void)
{
  static const char json[] =
    "{\"id\":\"ws-k3jrxaq2mz\",\"title\":\"T\",\"body\":\"B\",\"status\":\"todo\",\"priority\":0,"
    "\"assignee\":null,\"labels\":[\"a\",\"b\"],\"depends_on\":[],\"parent\":null,\"due\":\"2026-01-02\","
    "\"position\":1.5,\"created_at\":\"2026-11-23T10:04:00.000Z\",\"created_by\":\"0123456789abcdef\","
    "\"updated_at\":\"2026-11-23T10:04:00.000Z\",\"comments\":[{\"author\":\"0123456789abcdef\","
    "\"body\":\"hi\",\"created_at\":\"2026-11-23T10:05:00.000Z\"}],\"conflicts\":[]}";
  g_autoptr (GError) error = NULL;
  g_autoptr (WspTaskFileView) v = wsp_taskfile_view_new_from_json (json, -1, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (v->id, ==, "ws-k3jrxaq2mz");
  g_assert_cmpint (v->priority, ==, 0);
  g_assert_null (v->assignee);
  g_assert_cmpstr (v->labels[1], ==, "b");
  g_assert_null (v->depends_on[0]);
  g_assert_cmpfloat (v->position, ==, 1.5);
  g_assert_cmpuint (v->n_comments, ==, 1);
  g_assert_cmpstr (v->comments[0].body, ==, "hi");
  assert_roundtrip (v);

  static const char *const bad_json[] = { "[1]", "{\"title\":\"no id\"}", "{not json", "" };
  for (guint i = 0; i < G_N_ELEMENTS (bad_json); i++)
    {
      g_autoptr (GError) e2 = NULL;
      g_autoptr (WspTaskFileView) bad = wsp_taskfile_view_new_from_json (bad_json[i], -1, &e2);
      g_assert_null (bad);
      g_assert_error (e2, WSP_ERROR, WSP_ERROR_CORRUPT);
    }
}

/* Cheap in-process fuzzing of mutated seeds: never crash, and whatever
 * parses renders to a file that parses again. */
static void
test_parse_mutations (void)
{
  static const char *const seeds[] = {
    spec_example,
    "---\nzeta: 1 # c\nalpha:\n  - x\ntitle: \"q\\n\"\n---\nbody\n<!-- wsp:comments -->\n",
    "---\n{title: t, x: [1, {a: b}]}\n---\n",
  };
  GRand *rand = g_rand_new_with_seed (1234);
  for (guint n = 0; n < 20000; n++)
    {
      const char *seed = seeds[n % G_N_ELEMENTS (seeds)];
      g_autofree char *buf = g_strdup (seed);
      gsize len = strlen (buf);
      guint edits = g_rand_int_range (rand, 1, 4);
      for (guint e = 0; e < edits; e++)
        {
          gsize at = (gsize) g_rand_int_range (rand, 0, (gint32) len);
          static const char alphabet[] = "-:#[]{}\"'\\ \n\tax0|>&*!?,~";
          buf[at] = alphabet[g_rand_int_range (rand, 0, sizeof alphabet - 1)];
        }
      WspTaskFile *tf = NULL;
      if (!wsp_taskfile_parse (buf, len, NULL, &tf, NULL, NULL))
        continue;
      g_autoptr (GPtrArray) labs = g_ptr_array_copy (tf->labels, NULL, NULL);
      g_autoptr (GPtrArray) deps = g_ptr_array_copy (tf->depends_on, NULL, NULL);
      g_ptr_array_set_free_func (labs, NULL);
      g_ptr_array_set_free_func (deps, NULL);
      g_ptr_array_add (labs, NULL);
      g_ptr_array_add (deps, NULL);
      const char *const *lab = (const char *const *) labs->pdata;
      const char *const *dep = (const char *const *) deps->pdata;
      WspTaskFileView v = {
        .id = tf->id ? tf->id : "ws-aaaaaaaaaa", .title = tf->title, .body = tf->body,
        .status = tf->status ? tf->status : "todo", .priority = tf->priority, .assignee = tf->assignee,
        .labels = lab, .depends_on = dep, .parent = tf->parent, .due = tf->due,
        .created_at = tf->created_at, .updated_at = tf->updated_at,
      };
      g_autoptr (GBytes) orig = g_bytes_new_static (buf, len);
      g_autoptr (GBytes) out = wsp_taskfile_render (&v, orig);
      g_autoptr (WspTaskFile) again = parse_bytes_ok (out);
      g_assert_nonnull (again);
      g_assert_cmpstr (again->title, ==, tf->title);
      g_assert_cmpuint (again->extras->len, ==, tf->extras->len);
      wsp_taskfile_free (tf);
    }
  g_rand_free (rand);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/taskfile/parse/spec-example", test_parse_spec_example);
  g_test_add_func ("/taskfile/parse/missing-vs-empty", test_parse_missing_vs_empty);
  g_test_add_func ("/taskfile/parse/errors-have-line-and-reason", test_parse_errors);
  g_test_add_func ("/taskfile/parse/mutations-never-crash", test_parse_mutations);
  g_test_add_func ("/taskfile/render/layout", test_render_layout);
  g_test_add_func ("/taskfile/roundtrip/tricky-strings", test_roundtrip_tricky_strings);
  g_test_add_func ("/taskfile/roundtrip/body", test_roundtrip_body);
  g_test_add_func ("/taskfile/roundtrip/comments-stripped", test_roundtrip_comments);
  g_test_add_func ("/taskfile/extras/kept-in-order", test_extras_kept_in_order);
  g_test_add_func ("/taskfile/extras/fast-path-agrees", test_extras_fast_path_agrees);
  g_test_add_func ("/taskfile/diff/minimal", test_diff_minimal);
  g_test_add_func ("/taskfile/diff/create", test_create_write);
  g_test_add_func ("/taskfile/hash", test_hash);
  g_test_add_func ("/taskfile/view-from-json", test_view_from_json);
  return g_test_run ();
}
