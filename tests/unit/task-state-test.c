/* task-state-test.c — one table of tests per merge rule of SPEC 3, plus the
 * state codec. Ops go through wsp_op_encode/wsp_op_decode so that values
 * are exactly what a replica receives. */
#include <glib.h>
#include <string.h>
#include <msgpack.h>

#include "crdt/wsp-task-state.h"

#define A G_GUINT64_CONSTANT (0x1111111111111111)
#define B G_GUINT64_CONSTANT (0x2222222222222222)
#define C G_GUINT64_CONSTANT (0x3333333333333333)
#define TASK "ws-aaaaaaaaaa"

/* ---- helpers ------------------------------------------------------------- */

/* Encodes op, decodes it as received from `peer`, applies it. */
static WspApplyResult
apply_full (WspTaskState *st, guint64 hlc, WspPeer peer, guint64 seq,
            const WspClock *full_deps, WspOp *op)
{
  g_autoptr (GBytes) b = NULL;
  WspOp in;
  WspStamp stamp = { hlc, peer, seq };
  WspApplyResult r;

  op->hlc = hlc;
  if (op->task == NULL)
    op->task = (char *) TASK;
  b = wsp_op_encode (op);
  g_assert_true (wsp_op_decode (g_bytes_get_data (b, NULL), g_bytes_get_size (b), peer, &in));
  r = wsp_task_state_apply (st, &stamp, full_deps, &in);
  wsp_op_clear (&in);
  return r;
}

static WspApplyResult
apply (WspTaskState *st, guint64 hlc, WspPeer peer, guint64 seq, WspOp *op)
{
  return apply_full (st, hlc, peer, seq, NULL, op);
}

static WspOp
mk_create (const char *title, const char *body)
{
  WspOp op = { .type = WSP_OP_CREATE };
  for (int f = 1; f < WSP_FIELD_COUNT; f++)
    wsp_field_default ((WspField) f, &op.fields[f]);
  wsp_value_clear (&op.fields[WSP_FIELD_TITLE]);
  wsp_value_clear (&op.fields[WSP_FIELD_BODY]);
  op.fields[WSP_FIELD_TITLE] = wsp_value_str (title);
  op.fields[WSP_FIELD_BODY] = wsp_value_str (body);
  return op;
}

static void
op_free_fields (WspOp *op)
{
  for (int f = 1; f < WSP_FIELD_COUNT; f++)
    wsp_value_clear (&op->fields[f]);
  wsp_value_clear (&op->value);
}

static WspApplyResult
create (WspTaskState *st, guint64 hlc, WspPeer peer, guint64 seq, const char *title)
{
  WspOp op = mk_create (title, NULL);
  WspApplyResult r = apply (st, hlc, peer, seq, &op);
  op_free_fields (&op);
  return r;
}

static WspApplyResult
set_full (WspTaskState *st, guint64 hlc, WspPeer peer, guint64 seq, const WspClock *deps,
          WspField field, WspValue v)
{
  WspOp op = { .type = WSP_OP_SET, .field = field, .value = v };
  WspApplyResult r = apply_full (st, hlc, peer, seq, deps, &op);
  wsp_value_clear (&op.value);
  return r;
}

static WspApplyResult
set (WspTaskState *st, guint64 hlc, WspPeer peer, guint64 seq, WspField field, WspValue v)
{
  return set_full (st, hlc, peer, seq, NULL, field, v);
}

static WspApplyResult
set_title (WspTaskState *st, guint64 hlc, WspPeer peer, guint64 seq, const WspClock *deps, const char *t)
{
  return set_full (st, hlc, peer, seq, deps, WSP_FIELD_TITLE, wsp_value_str (t));
}

static WspApplyResult
text_op (WspTaskState *st, guint64 hlc, WspPeer peer, guint64 seq, WspOpType type,
         const char *text, const WspDot *obs, guint n_obs)
{
  WspOp op = { .type = type, .text = (char *) text, .observed = (WspDot *) obs, .n_observed = n_obs };
  return apply (st, hlc, peer, seq, &op);
}

static WspApplyResult
simple_op (WspTaskState *st, guint64 hlc, WspPeer peer, guint64 seq, WspOpType type)
{
  WspOp op = { .type = type };
  return apply (st, hlc, peer, seq, &op);
}

static char *
labels_str (GPtrArray *a)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < a->len; i++)
    g_string_append_printf (s, "%s%s", i ? "," : "", (const char *) a->pdata[i]);
  return g_string_free (s, FALSE);
}

static void
assert_labels (WspTaskState *st, const char *want_labels, const char *want_deps)
{
  WspTaskView v;
  g_autofree char *l = NULL;
  g_autofree char *d = NULL;

  wsp_task_state_view (st, &v);
  l = labels_str (v.labels);
  d = labels_str (v.depends_on);
  g_assert_cmpstr (l, ==, want_labels);
  g_assert_cmpstr (d, ==, want_deps);
  wsp_task_view_clear (&v);
}

static char *
title_of (WspTaskState *st)
{
  WspTaskView v;
  char *t;
  wsp_task_state_view (st, &v);
  t = g_strdup (v.title);
  wsp_task_view_clear (&v);
  return t;
}

/* Encodes, decodes, re-encodes: blobs must match. */
static void
assert_codec_round_trip (const WspTaskState *st)
{
  g_autoptr (GBytes) a = wsp_task_state_encode (st);
  g_autoptr (GError) error = NULL;
  g_autoptr (WspTaskState) back = wsp_task_state_decode (TASK, g_bytes_get_data (a, NULL), g_bytes_get_size (a), &error);
  g_autoptr (GBytes) b = NULL;

  g_assert_no_error (error);
  g_assert_nonnull (back);
  b = wsp_task_state_encode (back);
  g_assert_true (g_bytes_equal (a, b));
}

/* ---- create -------------------------------------------------------------- */

static void
test_create_defaults (void)
{
  g_autoptr (WspTaskState) st = wsp_task_state_new (TASK);
  WspTaskView v;

  wsp_task_state_view (st, &v);
  g_assert_false (v.exists);
  wsp_task_view_clear (&v);

  g_assert_cmpint (create (st, 100, A, 1, "Hello"), ==, WSP_APPLY_CHANGED);
  wsp_task_state_view (st, &v);
  g_assert_cmpstr (v.id, ==, TASK);
  g_assert_true (v.exists);
  g_assert_false (v.deleted);
  g_assert_cmpstr (v.title, ==, "Hello");
  g_assert_cmpstr (v.body, ==, "");
  g_assert_cmpstr (v.status, ==, "todo");
  g_assert_cmpint (v.priority, ==, 2);
  g_assert_null (v.assignee);
  g_assert_null (v.parent);
  g_assert_null (v.due);
  g_assert_cmpfloat (v.position, ==, 0);
  g_assert_cmpuint (v.labels->len, ==, 0);
  g_assert_cmpuint (v.depends_on->len, ==, 0);
  g_assert_cmpuint (v.conflicts->len, ==, 0);
  g_assert_cmpuint (v.created_hlc, ==, 100);
  g_assert_cmpuint (v.created_by, ==, A);
  g_assert_cmpuint (v.updated_hlc, ==, 100);
  wsp_task_view_clear (&v);
  assert_codec_round_trip (st);
}

static void
test_create_duplicates (void)
{
  /* Two creates of one id: the smallest (hlc, peer) sets created_*, each
   * counts as a write of all eight fields (the larger wins). */
  for (int order = 0; order < 2; order++)
    {
      g_autoptr (WspTaskState) st = wsp_task_state_new (TASK);
      WspTaskView v;
      if (order == 0)
        {
          create (st, 200, B, 1, "from B");
          create (st, 200, A, 1, "from A");
        }
      else
        {
          create (st, 200, A, 1, "from A");
          create (st, 200, B, 1, "from B");
        }
      wsp_task_state_view (st, &v);
      g_assert_cmpuint (v.created_by, ==, A);
      g_assert_cmpuint (v.created_hlc, ==, 200);
      g_assert_cmpstr (v.title, ==, "from B");
      /* Concurrent creates are concurrent title and body writes: A's are
       * conflicts (its body "" too), title first at the same stamp. */
      g_assert_cmpuint (v.conflicts->len, ==, 2);
      g_assert_cmpint (g_array_index (v.conflicts, WspConflict, 0).field, ==, WSP_FIELD_TITLE);
      g_assert_cmpstr (g_array_index (v.conflicts, WspConflict, 0).value, ==, "from A");
      g_assert_cmpint (g_array_index (v.conflicts, WspConflict, 1).field, ==, WSP_FIELD_BODY);
      g_assert_cmpstr (g_array_index (v.conflicts, WspConflict, 1).value, ==, "");
      wsp_task_view_clear (&v);
    }
}

/* ---- LWW ----------------------------------------------------------------- */

static void
test_lww (void)
{
  static const struct {
    guint64 h1; WspPeer p1; guint64 s1;
    guint64 h2; WspPeer p2; guint64 s2;
    int winner;   /* 1 or 2 */
  } rows[] = {
    { 300, A, 2, 301, B, 2, 2 },   /* larger hlc */
    { 302, A, 2, 301, B, 2, 1 },
    { 301, A, 2, 301, B, 2, 2 },   /* same hlc: larger peer */
    { 301, B, 2, 301, A, 2, 1 },
    { 301, A, 2, 301, A, 3, 2 },   /* same hlc and peer: larger seq */
  };
  for (guint i = 0; i < G_N_ELEMENTS (rows); i++)
    for (int order = 0; order < 2; order++)
      {
        g_autoptr (WspTaskState) st = wsp_task_state_new (TASK);
        WspTaskView v;
        create (st, 100, A, 1, "t");
        if (order == 0)
          {
            set (st, rows[i].h1, rows[i].p1, rows[i].s1, WSP_FIELD_ASSIGNEE, wsp_value_str ("one"));
            set (st, rows[i].h2, rows[i].p2, rows[i].s2, WSP_FIELD_ASSIGNEE, wsp_value_str ("two"));
          }
        else
          {
            set (st, rows[i].h2, rows[i].p2, rows[i].s2, WSP_FIELD_ASSIGNEE, wsp_value_str ("two"));
            set (st, rows[i].h1, rows[i].p1, rows[i].s1, WSP_FIELD_ASSIGNEE, wsp_value_str ("one"));
          }
        wsp_task_state_view (st, &v);
        g_assert_cmpstr (v.assignee, ==, rows[i].winner == 1 ? "one" : "two");
        g_assert_cmpuint (v.updated_hlc, ==, MAX (rows[i].h1, rows[i].h2));
        wsp_task_view_clear (&v);
      }
}

static void
test_set_every_field (void)
{
  g_autoptr (WspTaskState) st = wsp_task_state_new (TASK);
  WspTaskView v;

  create (st, 100, A, 1, "t");
  g_assert_cmpint (set (st, 101, A, 2, WSP_FIELD_BODY, wsp_value_str ("body")), ==, WSP_APPLY_CHANGED);
  set (st, 102, A, 3, WSP_FIELD_STATUS, wsp_value_str ("not-a-column"));
  set (st, 103, A, 4, WSP_FIELD_PRIORITY, wsp_value_int (0));
  set (st, 104, A, 5, WSP_FIELD_ASSIGNEE, wsp_value_str ("bob"));
  set (st, 105, A, 6, WSP_FIELD_PARENT, wsp_value_str ("ws-parent"));
  set (st, 106, A, 7, WSP_FIELD_DUE, wsp_value_str ("2024-02-29"));
  set (st, 107, A, 8, WSP_FIELD_POSITION, wsp_value_int (-3));
  wsp_task_state_view (st, &v);
  g_assert_cmpstr (v.body, ==, "body");
  g_assert_cmpstr (v.status, ==, "not-a-column");
  g_assert_cmpint (v.priority, ==, 0);
  g_assert_cmpstr (v.assignee, ==, "bob");
  g_assert_cmpstr (v.parent, ==, "ws-parent");
  g_assert_cmpstr (v.due, ==, "2024-02-29");
  g_assert_cmpfloat (v.position, ==, -3);
  g_assert_cmpuint (v.updated_hlc, ==, 107);
  g_assert_cmpuint (v.conflicts->len, ==, 0);
  wsp_task_view_clear (&v);
  assert_codec_round_trip (st);

  /* Clearing: "" and nil mean empty. */
  set (st, 110, A, 9, WSP_FIELD_ASSIGNEE, wsp_value_str (""));
  set (st, 111, A, 10, WSP_FIELD_DUE, (WspValue) { .kind = WSP_VALUE_NIL });
  set (st, 112, A, 11, WSP_FIELD_BODY, (WspValue) { .kind = WSP_VALUE_NIL });
  wsp_task_state_view (st, &v);
  g_assert_null (v.assignee);
  g_assert_null (v.due);
  g_assert_cmpstr (v.body, ==, "");
  wsp_task_view_clear (&v);
  assert_codec_round_trip (st);
}

/* ---- no-ops ---------------------------------------------------------------- */

static void
test_noop_values (void)
{
  static const struct { WspField f; WspValueKind kind; const char *s; gint64 i; double d; } bad[] = {
    { WSP_FIELD_TITLE, WSP_VALUE_INT, NULL, 1, 0 },
    { WSP_FIELD_STATUS, WSP_VALUE_NIL, NULL, 0, 0 },
    { WSP_FIELD_PRIORITY, WSP_VALUE_INT, NULL, 5, 0 },
    { WSP_FIELD_PRIORITY, WSP_VALUE_INT, NULL, -1, 0 },
    { WSP_FIELD_PRIORITY, WSP_VALUE_FLOAT, NULL, 0, 1.0 },
    { WSP_FIELD_DUE, WSP_VALUE_STR, "2023-02-29", 0, 0 },
    { WSP_FIELD_DUE, WSP_VALUE_STR, "tomorrow", 0, 0 },
    { WSP_FIELD_POSITION, WSP_VALUE_STR, "1", 0, 0 },
    { WSP_FIELD_POSITION, WSP_VALUE_FLOAT, NULL, 0, 1.0 / 0.0 },
    { WSP_FIELD_ASSIGNEE, WSP_VALUE_INT, NULL, 3, 0 },
  };
  g_autoptr (WspTaskState) st = wsp_task_state_new (TASK);
  g_autoptr (GBytes) before = NULL;

  create (st, 100, A, 1, "t");
  before = wsp_task_state_encode (st);
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      WspValue v = { .kind = bad[i].kind };
      g_autoptr (GBytes) after = NULL;
      if (bad[i].kind == WSP_VALUE_STR) v.str = g_strdup (bad[i].s);
      if (bad[i].kind == WSP_VALUE_INT) v.i = bad[i].i;
      if (bad[i].kind == WSP_VALUE_FLOAT) v.f = bad[i].d;
      g_assert_cmpint (set (st, 500 + i, B, i + 1, bad[i].f, v), ==, WSP_APPLY_NOOP);
      after = wsp_task_state_encode (st);
      /* Not applied: the state (updated_hlc included) is unchanged. */
      g_assert_true (g_bytes_equal (before, after));
    }
}

static void
test_noop_unknown_and_foreign (void)
{
  g_autoptr (WspTaskState) st = wsp_task_state_new (TASK);
  WspOp op = { .type = WSP_OP_UNKNOWN, .type_code = 42 };
  WspStamp stamp = { 900, B, 1 };
  WspOp in;
  g_autoptr (GBytes) b = NULL;
  g_autoptr (GBytes) b2 = NULL;
  WspTaskView v;

  create (st, 100, A, 1, "t");
  g_assert_cmpint (apply (st, 900, B, 1, &op), ==, WSP_APPLY_NOOP);

  /* An op for another task. */
  op = (WspOp) { .type = WSP_OP_SET, .task = (char *) "ws-other", .field = WSP_FIELD_TITLE };
  op.value = wsp_value_str ("x");
  g_assert_cmpint (apply (st, 901, B, 2, &op), ==, WSP_APPLY_NOOP);
  wsp_value_clear (&op.value);

  /* A label.add with an empty label decodes with data_ok FALSE. */
  g_assert_cmpint (text_op (st, 902, B, 3, WSP_OP_LABEL_ADD, "", NULL, 0), ==, WSP_APPLY_NOOP);
  g_assert_cmpint (text_op (st, 902, B, 3, WSP_OP_DEP_REMOVE, "", NULL, 0), ==, WSP_APPLY_NOOP);

  /* A delete whose data is not nil is a no-op (built by hand). */
  {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init (&sb);
    msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array (&pk, 5);
    msgpack_pack_uint64 (&pk, 950);
    msgpack_pack_map (&pk, 0);
    msgpack_pack_uint64 (&pk, 3);
    msgpack_pack_str_with_body (&pk, TASK, strlen (TASK));
    msgpack_pack_true (&pk);
    g_assert_true (wsp_op_decode ((const guint8 *) sb.data, sb.size, B, &in));
    g_assert_false (in.data_ok);
    g_assert_cmpint (wsp_task_state_apply (st, &stamp, NULL, &in), ==, WSP_APPLY_NOOP);
    wsp_op_clear (&in);
    msgpack_sbuffer_destroy (&sb);
  }
  g_assert_cmpint (wsp_task_state_apply (st, &stamp, NULL, NULL), ==, WSP_APPLY_NOOP);

  wsp_task_state_view (st, &v);
  g_assert_cmpuint (v.updated_hlc, ==, 100);
  g_assert_false (v.deleted);
  wsp_task_view_clear (&v);
  (void) b;
  (void) b2;
}

/* ---- observed-remove sets -------------------------------------------------- */

static void
test_orset_add_remove (void)
{
  for (int kind = 0; kind < 2; kind++)
    {
      WspOpType add = kind == 0 ? WSP_OP_LABEL_ADD : WSP_OP_DEP_ADD;
      WspOpType rem = kind == 0 ? WSP_OP_LABEL_REMOVE : WSP_OP_DEP_REMOVE;
      g_autoptr (WspTaskState) st = wsp_task_state_new (TASK);
      g_autoptr (GArray) tags = NULL;
      WspDot t2 = { A, 2 };

      create (st, 100, A, 1, "t");
      g_assert_cmpint (text_op (st, 101, A, 2, add, "bug", NULL, 0), ==, WSP_APPLY_CHANGED);
      text_op (st, 102, A, 3, add, "sync", NULL, 0);
      assert_labels (st, kind == 0 ? "bug,sync" : "", kind == 0 ? "" : "bug,sync");
      tags = kind == 0 ? wsp_task_state_label_tags (st, "bug") : wsp_task_state_dep_tags (st, "bug");
      g_assert_cmpuint (tags->len, ==, 1);
      g_assert_cmpuint (g_array_index (tags, WspDot, 0).peer, ==, A);
      g_assert_cmpuint (g_array_index (tags, WspDot, 0).seq, ==, 2);
      assert_codec_round_trip (st);

      g_assert_cmpint (text_op (st, 103, B, 1, rem, "bug", &t2, 1), ==, WSP_APPLY_CHANGED);
      assert_labels (st, kind == 0 ? "sync" : "", kind == 0 ? "" : "sync");
      assert_codec_round_trip (st);
    }
}

static void
test_orset_concurrent_add_survives (void)
{
  /* A adds "bug" (A,2). B observes it and removes it; concurrently C adds
   * "bug" (C,1). Whatever the order, C's add survives. */
  WspDot obs = { A, 2 };
  for (int order = 0; order < 2; order++)
    {
      g_autoptr (WspTaskState) st = wsp_task_state_new (TASK);
      g_autoptr (GArray) tags = NULL;
      create (st, 100, A, 1, "t");
      text_op (st, 101, A, 2, WSP_OP_LABEL_ADD, "bug", NULL, 0);
      if (order == 0)
        {
          text_op (st, 102, B, 1, WSP_OP_LABEL_REMOVE, "bug", &obs, 1);
          text_op (st, 102, C, 1, WSP_OP_LABEL_ADD, "bug", NULL, 0);
        }
      else
        {
          text_op (st, 102, C, 1, WSP_OP_LABEL_ADD, "bug", NULL, 0);
          text_op (st, 102, B, 1, WSP_OP_LABEL_REMOVE, "bug", &obs, 1);
        }
      assert_labels (st, "bug", "");
      tags = wsp_task_state_label_tags (st, "bug");
      g_assert_cmpuint (tags->len, ==, 1);
      g_assert_cmpuint (g_array_index (tags, WspDot, 0).peer, ==, C);
    }
}

static void
test_orset_remove_before_add (void)
{
  /* A remove naming a tag not yet seen still cancels it when it arrives. */
  WspDot obs = { B, 5 };
  g_autoptr (WspTaskState) st = wsp_task_state_new (TASK);
  g_autoptr (WspTaskState) st2 = wsp_task_state_new (TASK);
  g_autoptr (GBytes) e1 = NULL;
  g_autoptr (GBytes) e2 = NULL;

  create (st, 100, A, 1, "t");
  text_op (st, 101, A, 2, WSP_OP_LABEL_REMOVE, "x", &obs, 1);
  assert_codec_round_trip (st);
  text_op (st, 99, B, 5, WSP_OP_LABEL_ADD, "x", NULL, 0);
  assert_labels (st, "", "");

  create (st2, 100, A, 1, "t");
  text_op (st2, 99, B, 5, WSP_OP_LABEL_ADD, "x", NULL, 0);
  text_op (st2, 101, A, 2, WSP_OP_LABEL_REMOVE, "x", &obs, 1);
  assert_labels (st2, "", "");
  /* Canonical: the same ops give the same blob. */
  e1 = wsp_task_state_encode (st);
  e2 = wsp_task_state_encode (st2);
  g_assert_true (g_bytes_equal (e1, e2));
}

static void
test_orset_byte_order (void)
{
  g_autoptr (WspTaskState) st = wsp_task_state_new (TASK);
  static const char *labels[] = { "\xc3\xa9t\xc3\xa9", "b", "B", "a b", "a", "Z" };
  guint64 seq = 2;

  create (st, 100, A, 1, "t");
  for (guint i = 0; i < G_N_ELEMENTS (labels); i++)
    text_op (st, 100 + seq, A, seq, WSP_OP_LABEL_ADD, labels[i], NULL, 0), seq++;
  /* Adding an existing label again keeps one entry with two tags. */
  text_op (st, 100 + seq, A, seq, WSP_OP_LABEL_ADD, "a", NULL, 0), seq++;
  assert_labels (st, "B,Z,a,a b,b,\xc3\xa9t\xc3\xa9", "");
  {
    g_autoptr (GArray) t = wsp_task_state_label_tags (st, "a");
    g_autoptr (GArray) none = wsp_task_state_label_tags (st, "nope");
    g_assert_cmpuint (t->len, ==, 2);
    g_assert_cmpuint (none->len, ==, 0);
  }
  assert_codec_round_trip (st);
}

/* ---- delete ----------------------------------------------------------------- */

static void
test_delete_wins (void)
{
  g_autoptr (WspTaskState) st = wsp_task_state_new (TASK);
  WspTaskView v;
  WspDot obs = { A, 2 };

  create (st, 100, A, 1, "t");
  text_op (st, 101, A, 2, WSP_OP_LABEL_ADD, "bug", NULL, 0);
  text_op (st, 102, A, 3, WSP_OP_COMMENT_ADD, "before", NULL, 0);
  g_assert_cmpint (simple_op (st, 200, B, 1, WSP_OP_DELETE), ==, WSP_APPLY_CHANGED);
  /* Later or concurrent changes are ignored … */
  g_assert_cmpint (set (st, 300, A, 4, WSP_FIELD_TITLE, wsp_value_str ("late")), ==, WSP_APPLY_NOOP);
  g_assert_cmpint (text_op (st, 301, A, 5, WSP_OP_LABEL_ADD, "x", NULL, 0), ==, WSP_APPLY_NOOP);
  g_assert_cmpint (text_op (st, 302, A, 6, WSP_OP_LABEL_REMOVE, "bug", &obs, 1), ==, WSP_APPLY_NOOP);
  g_assert_cmpint (text_op (st, 303, A, 7, WSP_OP_DEP_ADD, "ws-x", NULL, 0), ==, WSP_APPLY_NOOP);
  /* … a create does not bring it back … */
  g_assert_cmpint (create (st, 304, C, 1, "again"), ==, WSP_APPLY_NOOP);
  /* … comments still apply and move updated_at. */
  g_assert_cmpint (text_op (st, 400, A, 8, WSP_OP_COMMENT_ADD, "after", NULL, 0), ==, WSP_APPLY_COMMENT);
  wsp_task_state_view (st, &v);
  g_assert_true (v.exists);
  g_assert_true (v.deleted);
  g_assert_cmpuint (v.updated_hlc, ==, 400);
  /* A tombstone's view is blank, so it cannot depend on arrival order. */
  g_assert_cmpstr (v.title, ==, "");
  g_assert_cmpuint (v.labels->len, ==, 0);
  g_assert_cmpuint (v.created_hlc, ==, 0);
  wsp_task_view_clear (&v);
  assert_codec_round_trip (st);
}

static void
test_delete_concurrent_order (void)
{
  /* A set concurrent with a delete, in both orders: identical views. */
  g_autoptr (WspTaskState) s1 = wsp_task_state_new (TASK);
  g_autoptr (WspTaskState) s2 = wsp_task_state_new (TASK);
  g_autoptr (GBytes) e1 = NULL;
  g_autoptr (GBytes) e2 = NULL;

  create (s1, 100, A, 1, "t");
  create (s2, 100, A, 1, "t");
  set (s1, 500, A, 2, WSP_FIELD_TITLE, wsp_value_str ("concurrent"));
  simple_op (s1, 200, B, 1, WSP_OP_DELETE);
  simple_op (s2, 200, B, 1, WSP_OP_DELETE);
  set (s2, 500, A, 2, WSP_FIELD_TITLE, wsp_value_str ("concurrent"));
  /* Two concurrent deletes: the tombstone time is the max of both. */
  g_assert_cmpint (simple_op (s1, 250, C, 1, WSP_OP_DELETE), ==, WSP_APPLY_CHANGED);
  g_assert_cmpint (simple_op (s2, 250, C, 1, WSP_OP_DELETE), ==, WSP_APPLY_CHANGED);
  g_assert_cmpint (simple_op (s2, 240, C, 2, WSP_OP_DELETE), ==, WSP_APPLY_NOOP);
  e1 = wsp_task_state_encode (s1);
  e2 = wsp_task_state_encode (s2);
  g_assert_true (g_bytes_equal (e1, e2));
}

static void
test_comment_without_create (void)
{
  g_autoptr (WspTaskState) st = wsp_task_state_new (TASK);
  WspTaskView v;

  g_assert_cmpint (text_op (st, 50, A, 1, WSP_OP_COMMENT_ADD, "", NULL, 0), ==, WSP_APPLY_COMMENT);
  wsp_task_state_view (st, &v);
  g_assert_false (v.exists);
  g_assert_cmpuint (v.updated_hlc, ==, 50);
  wsp_task_view_clear (&v);
}

/* ---- conflicts ---------------------------------------------------------------- */

static void
test_conflicts (void)
{
  /* A creates (A,1). A sets title (A,2) while B, having seen A,1, sets it
   * too (B,1): concurrent, so the loser shows as a conflict. Then C, having
   * seen both, sets it: conflicts clear. */
  g_autoptr (WspTaskState) st = wsp_task_state_new (TASK);
  WspClock deps_b, deps_c;
  WspTaskView v;
  g_autofree char *t = NULL;

  wsp_clock_init (&deps_b);
  wsp_clock_init (&deps_c);
  wsp_clock_set (&deps_b, A, 1);
  wsp_clock_set (&deps_c, A, 2);
  wsp_clock_set (&deps_c, B, 1);

  create (st, 100, A, 1, "orig");
  g_assert_cmpint (set_title (st, 200, A, 2, NULL, "from A"), ==, WSP_APPLY_CHANGED);
  wsp_task_state_view (st, &v);
  /* A's own earlier create is followed: no conflict. */
  g_assert_cmpuint (v.conflicts->len, ==, 0);
  wsp_task_view_clear (&v);

  set_title (st, 150, B, 1, &deps_b, "from B");
  wsp_task_state_view (st, &v);
  g_assert_cmpstr (v.title, ==, "from A");   /* larger hlc */
  g_assert_cmpuint (v.conflicts->len, ==, 1);
  {
    WspConflict *c = &g_array_index (v.conflicts, WspConflict, 0);
    g_assert_cmpint (c->field, ==, WSP_FIELD_TITLE);
    g_assert_cmpstr (c->value, ==, "from B");
    g_assert_cmpuint (c->stamp.peer, ==, B);
    g_assert_cmpuint (c->stamp.hlc, ==, 150);
  }
  wsp_task_view_clear (&v);
  assert_codec_round_trip (st);

  /* A body write does not touch title conflicts. */
  set_full (st, 260, A, 3, NULL, WSP_FIELD_BODY, wsp_value_str ("b"));
  wsp_task_state_view (st, &v);
  g_assert_cmpuint (v.conflicts->len, ==, 1);
  wsp_task_view_clear (&v);

  set_title (st, 300, C, 1, &deps_c, "merged");
  wsp_task_state_view (st, &v);
  g_assert_cmpstr (v.title, ==, "merged");
  g_assert_cmpuint (v.conflicts->len, ==, 0);
  wsp_task_view_clear (&v);
  t = title_of (st);
  g_assert_cmpstr (t, ==, "merged");
  assert_codec_round_trip (st);
  wsp_clock_clear (&deps_b);
  wsp_clock_clear (&deps_c);
}

static void
test_conflicts_order (void)
{
  /* Conflicts sort by hlc, peer, seq, title before body; empty as "". */
  g_autoptr (WspTaskState) st = wsp_task_state_new (TASK);
  WspClock d;
  WspTaskView v;
  WspOp op = mk_create (NULL, "body B");

  wsp_clock_init (&d);
  create (st, 100, A, 1, "A");
  apply (st, 100, B, 1, &op);   /* a concurrent create: title "" and body */
  set_full (st, 90, C, 1, &d, WSP_FIELD_BODY, wsp_value_str ("body C"));
  set_full (st, 500, C, 2, &d, WSP_FIELD_TITLE, wsp_value_str ("winner"));
  wsp_task_state_view (st, &v);
  g_assert_cmpstr (v.title, ==, "winner");
  g_assert_cmpstr (v.body, ==, "body B");
  /* Kept writes other than the winners: title A(100,A), title ""(100,B),
   * body A's ""(100,A), body C(90,C). */
  g_assert_cmpuint (v.conflicts->len, ==, 4);
  {
    WspConflict *c = (WspConflict *) v.conflicts->data;
    g_assert_cmpstr (c[0].value, ==, "body C");
    g_assert_cmpuint (c[0].stamp.hlc, ==, 90);
    g_assert_cmpint (c[1].field, ==, WSP_FIELD_TITLE);
    g_assert_cmpstr (c[1].value, ==, "A");
    g_assert_cmpint (c[2].field, ==, WSP_FIELD_BODY);
    g_assert_cmpstr (c[2].value, ==, "");
    g_assert_cmpuint (c[2].stamp.peer, ==, A);
    g_assert_cmpint (c[3].field, ==, WSP_FIELD_TITLE);
    g_assert_cmpstr (c[3].value, ==, "");
    g_assert_cmpuint (c[3].stamp.peer, ==, B);
  }
  wsp_task_view_clear (&v);
  assert_codec_round_trip (st);
  op_free_fields (&op);
  wsp_clock_clear (&d);
}

/* ---- codec -------------------------------------------------------------------- */

static void
test_codec_garbage (void)
{
  g_autoptr (WspTaskState) st = wsp_task_state_new (TASK);
  g_autoptr (GBytes) blob = NULL;
  WspClock d;
  WspDot obs = { C, 9 };
  GRand *r = g_rand_new_with_seed (99);
  static const struct { const char *b; gsize n; } bad[] = {
    { "", 0 }, { "\xc0", 1 }, { "\x90", 1 }, { "\x9b\x02", 2 }, { "\xdd\xff\xff\xff\xff", 5 },
  };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      g_assert_null (wsp_task_state_decode (TASK, (const guint8 *) bad[i].b, bad[i].n, &error));
      g_assert_error (error, WSP_ERROR, WSP_ERROR_CORRUPT);
    }

  /* A state using every part of the format, then random mutations. */
  wsp_clock_init (&d);
  create (st, 100, A, 1, "t");
  set_full (st, 101, B, 1, &d, WSP_FIELD_TITLE, wsp_value_str ("b"));
  set (st, 102, A, 2, WSP_FIELD_POSITION, wsp_value_float (0.25));
  text_op (st, 103, A, 3, WSP_OP_LABEL_ADD, "l", NULL, 0);
  text_op (st, 104, A, 4, WSP_OP_DEP_REMOVE, "ws-d", &obs, 1);
  assert_codec_round_trip (st);
  blob = wsp_task_state_encode (st);
  for (int i = 0; i < 50000; i++)
    {
      gsize n = g_bytes_get_size (blob);
      g_autofree guint8 *buf = g_memdup2 (g_bytes_get_data (blob, NULL), n);
      g_autoptr (WspTaskState) s = NULL;
      buf[g_rand_int_range (r, 0, (gint32) n)] = (guint8) g_rand_int (r);
      if (g_rand_int_range (r, 0, 4) == 0)
        n = (gsize) g_rand_int_range (r, 0, (gint32) n);
      s = wsp_task_state_decode (TASK, buf, n, NULL);
      if (s != NULL)
        {
          /* Whatever decodes is usable and round-trips. */
          WspTaskView v;
          wsp_task_state_view (s, &v);
          wsp_task_view_clear (&v);
          assert_codec_round_trip (s);
        }
    }
  g_rand_free (r);
  wsp_clock_clear (&d);
}

static void
test_codec_speed (void)
{
  /* The store decodes, applies and re-encodes per batch: keep it cheap. */
  g_autoptr (WspTaskState) st = wsp_task_state_new (TASK);
  g_autoptr (GTimer) timer = g_timer_new ();
  const int n = 100000;
  double secs;

  create (st, 100, A, 1, "A typical task title");
  set (st, 101, A, 2, WSP_FIELD_STATUS, wsp_value_str ("in_progress"));
  text_op (st, 102, A, 3, WSP_OP_LABEL_ADD, "bug", NULL, 0);
  for (int i = 0; i < n; i++)
    {
      g_autoptr (GBytes) b = wsp_task_state_encode (st);
      g_autoptr (WspTaskState) s = wsp_task_state_decode (TASK, g_bytes_get_data (b, NULL), g_bytes_get_size (b), NULL);
      g_assert_nonnull (s);
    }
  secs = g_timer_elapsed (timer, NULL);
  g_test_message ("state encode+decode: %.0f/s", n / secs);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/task-state/create/defaults", test_create_defaults);
  g_test_add_func ("/task-state/create/duplicates", test_create_duplicates);
  g_test_add_func ("/task-state/lww/order", test_lww);
  g_test_add_func ("/task-state/lww/every-field", test_set_every_field);
  g_test_add_func ("/task-state/noop/values", test_noop_values);
  g_test_add_func ("/task-state/noop/unknown-and-foreign", test_noop_unknown_and_foreign);
  g_test_add_func ("/task-state/orset/add-remove", test_orset_add_remove);
  g_test_add_func ("/task-state/orset/concurrent-add-survives", test_orset_concurrent_add_survives);
  g_test_add_func ("/task-state/orset/remove-before-add", test_orset_remove_before_add);
  g_test_add_func ("/task-state/orset/byte-order", test_orset_byte_order);
  g_test_add_func ("/task-state/delete/wins", test_delete_wins);
  g_test_add_func ("/task-state/delete/concurrent-order", test_delete_concurrent_order);
  g_test_add_func ("/task-state/comment/without-create", test_comment_without_create);
  g_test_add_func ("/task-state/conflicts/appear-and-clear", test_conflicts);
  g_test_add_func ("/task-state/conflicts/order", test_conflicts_order);
  g_test_add_func ("/task-state/codec/garbage", test_codec_garbage);
  g_test_add_func ("/task-state/codec/speed", test_codec_speed);
  return g_test_run ();
}
