/* op-test.c — op values and the body codec (SPEC 3 "Values", 7.3, 7.4):
 * what decodes as an op, what data shape is valid, and the exact encoding. */
#include <glib.h>
#include <math.h>
#include <string.h>
#include <msgpack.h>

#include "crdt/wsp-op.h"

#define AUTHOR G_GUINT64_CONSTANT (0xa1a1a1a1a1a1a1a1)
#define AUTHOR_HEX "a1a1a1a1a1a1a1a1"

/* ---- a tiny MessagePack builder for hand-made bodies ------------------- */

typedef struct {
  msgpack_sbuffer sbuf;
  msgpack_packer  pk;
} Mp;

static Mp *
mp_new (void)
{
  Mp *m = g_new0 (Mp, 1);
  msgpack_sbuffer_init (&m->sbuf);
  msgpack_packer_init (&m->pk, &m->sbuf, msgpack_sbuffer_write);
  return m;
}

static void
mp_free (Mp *m)
{
  msgpack_sbuffer_destroy (&m->sbuf);
  g_free (m);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Mp, mp_free)

static void mp_arr (Mp *m, guint n) { msgpack_pack_array (&m->pk, n); }
static void mp_map (Mp *m, guint n) { msgpack_pack_map (&m->pk, n); }
static void mp_u (Mp *m, guint64 v) { msgpack_pack_uint64 (&m->pk, v); }
static void mp_i (Mp *m, gint64 v) { msgpack_pack_int64 (&m->pk, v); }
static void mp_nil (Mp *m) { msgpack_pack_nil (&m->pk); }
static void mp_s (Mp *m, const char *s) { msgpack_pack_str_with_body (&m->pk, s, strlen (s)); }
static void mp_sn (Mp *m, const char *s, gsize n) { msgpack_pack_str_with_body (&m->pk, s, n); }
static void mp_raw (Mp *m, const char *b, gsize n) { msgpack_sbuffer_write (&m->sbuf, b, n); }

/* [hlc, {}, type, task, …data follows] */
static Mp *
mp_body (guint64 type, const char *task)
{
  Mp *m = mp_new ();
  mp_arr (m, 5);
  mp_u (m, 1000);
  mp_map (m, 0);
  mp_u (m, type);
  mp_s (m, task);
  return m;
}

static gboolean
mp_decode (Mp *m, WspOp *op)
{
  return wsp_op_decode ((const guint8 *) m->sbuf.data, m->sbuf.size, AUTHOR, op);
}

/* Decodes and returns data_ok; asserts the envelope decoded. */
static gboolean
mp_data_ok (Mp *m)
{
  WspOp op;
  gboolean ok;
  g_assert_true (mp_decode (m, &op));
  ok = op.data_ok;
  wsp_op_clear (&op);
  return ok;
}

static void
assert_not_op (Mp *m)
{
  WspOp op;
  g_assert_false (mp_decode (m, &op));
  /* A failed decode leaves nothing to free. */
  g_assert_null (op.task);
  g_assert_null (op.deps);
}

/* ---- names and values -------------------------------------------------- */

static void
test_names (void)
{
  g_assert_cmpstr (wsp_op_type_to_string (WSP_OP_CREATE), ==, "task.create");
  g_assert_cmpstr (wsp_op_type_to_string (WSP_OP_COMMENT_ADD), ==, "comment.add");
  g_assert_cmpstr (wsp_op_type_to_string (WSP_OP_UNKNOWN), ==, "unknown");
  for (int f = 1; f < WSP_FIELD_COUNT; f++)
    g_assert_cmpint (wsp_field_from_string (wsp_field_to_string ((WspField) f)), ==, f);
  g_assert_cmpint (wsp_field_from_string ("labels"), ==, WSP_FIELD_NONE);
  g_assert_cmpint (wsp_field_from_string (NULL), ==, WSP_FIELD_NONE);
  g_assert_cmpstr (wsp_field_to_string (WSP_FIELD_POSITION), ==, "position");
}

static gboolean
norm (WspField f, WspValue v, WspValue *out)
{
  gboolean ok = wsp_field_normalize (f, &v, out);
  wsp_value_clear (&v);
  return ok;
}

static void
test_normalize (void)
{
  WspValue out;

  g_assert_true (norm (WSP_FIELD_TITLE, wsp_value_str ("x"), &out));
  g_assert_cmpstr (out.str, ==, "x");
  wsp_value_clear (&out);
  g_assert_true (norm (WSP_FIELD_TITLE, wsp_value_str (""), &out));
  g_assert_cmpint (out.kind, ==, WSP_VALUE_NIL);
  g_assert_false (norm (WSP_FIELD_TITLE, wsp_value_int (1), &out));

  g_assert_false (norm (WSP_FIELD_STATUS, wsp_value_str (""), &out));
  g_assert_false (norm (WSP_FIELD_STATUS, wsp_value_int (0), &out));
  g_assert_true (norm (WSP_FIELD_STATUS, wsp_value_str ("weird column"), &out));
  wsp_value_clear (&out);

  for (gint64 p = -1; p <= 5; p++)
    {
      gboolean ok = norm (WSP_FIELD_PRIORITY, wsp_value_int (p), &out);
      g_assert_cmpint (ok, ==, p >= 0 && p <= 4);
      wsp_value_clear (&out);
    }
  g_assert_false (norm (WSP_FIELD_PRIORITY, wsp_value_float (2.0), &out));

  g_assert_true (norm (WSP_FIELD_ASSIGNEE, wsp_value_str (""), &out));
  g_assert_cmpint (out.kind, ==, WSP_VALUE_NIL);

  g_assert_true (norm (WSP_FIELD_DUE, wsp_value_str ("2024-02-29"), &out));
  wsp_value_clear (&out);
  g_assert_false (norm (WSP_FIELD_DUE, wsp_value_str ("2023-02-29"), &out));
  {
    WspValue empty = { .kind = WSP_VALUE_STR, .str = g_strdup ("") };
    g_assert_true (norm (WSP_FIELD_DUE, empty, &out));
    g_assert_cmpint (out.kind, ==, WSP_VALUE_NIL);
  }

  g_assert_true (norm (WSP_FIELD_POSITION, wsp_value_int (-3), &out));
  g_assert_cmpint (out.kind, ==, WSP_VALUE_FLOAT);
  g_assert_cmpfloat (out.f, ==, -3.0);
  g_assert_false (norm (WSP_FIELD_POSITION, wsp_value_float (NAN), &out));
  g_assert_false (norm (WSP_FIELD_POSITION, wsp_value_float (INFINITY), &out));
  g_assert_false (norm (WSP_FIELD_POSITION, wsp_value_str ("1"), &out));
  g_assert_true (norm (WSP_FIELD_POSITION, wsp_value_float (-0.0), &out));
  g_assert_false (signbit (out.f));
  g_assert_false (norm (WSP_FIELD_NONE, wsp_value_int (1), &out));
}

static void
test_defaults_and_values (void)
{
  WspValue v = { 0 }, w = { 0 };

  wsp_field_default (WSP_FIELD_STATUS, &v);
  g_assert_cmpstr (v.str, ==, "todo");
  wsp_value_copy (&w, &v);
  g_assert_true (wsp_value_equal (&v, &w));
  g_assert_true (v.str != w.str);
  wsp_value_clear (&v);
  wsp_value_clear (&w);
  wsp_field_default (WSP_FIELD_PRIORITY, &v);
  g_assert_cmpint (v.i, ==, 2);
  wsp_field_default (WSP_FIELD_POSITION, &v);
  g_assert_cmpint (v.kind, ==, WSP_VALUE_FLOAT);
  wsp_field_default (WSP_FIELD_TITLE, &v);
  g_assert_cmpint (v.kind, ==, WSP_VALUE_NIL);
  v = wsp_value_str (NULL);
  g_assert_cmpint (v.kind, ==, WSP_VALUE_NIL);
  v = wsp_value_int (3);
  w = wsp_value_float (3);
  g_assert_false (wsp_value_equal (&v, &w));
}

/* ---- round trips --------------------------------------------------------- */

static GBytes *
encode_decode (const WspOp *in, WspOp *out)
{
  GBytes *b = wsp_op_encode (in);
  g_assert_true (wsp_op_decode (g_bytes_get_data (b, NULL), g_bytes_get_size (b), AUTHOR, out));
  g_assert_cmpuint (out->hlc, ==, in->hlc);
  g_assert_cmpint (out->type, ==, in->type);
  g_assert_cmpstr (out->task, ==, in->task);
  g_assert_cmpuint (out->n_deps, ==, in->n_deps);
  if (in->n_deps > 0)
    g_assert_cmpmem (out->deps, out->n_deps * sizeof (WspDot), in->deps, in->n_deps * sizeof (WspDot));
  g_assert_true (out->data_ok);
  return b;
}

static void
test_round_trip_create (void)
{
  WspOp op = { 0 }, out;
  WspDot deps[] = { { 1, 5 }, { G_GUINT64_CONSTANT (0xffffffffffffffff), 9 } };
  g_autoptr (GBytes) b = NULL;

  op.hlc = G_GUINT64_CONSTANT (0x0123456789abcdef);
  op.deps = deps;
  op.n_deps = 2;
  op.type = WSP_OP_CREATE;
  op.task = (char *) "ws-abcdefghij";
  op.fields[WSP_FIELD_TITLE] = wsp_value_str ("Title é");
  op.fields[WSP_FIELD_BODY] = wsp_value_str ("");
  op.fields[WSP_FIELD_STATUS] = wsp_value_str ("in_progress");
  op.fields[WSP_FIELD_PRIORITY] = wsp_value_int (0);
  op.fields[WSP_FIELD_ASSIGNEE] = wsp_value_str ("alice");
  op.fields[WSP_FIELD_PARENT] = wsp_value_str (NULL);
  op.fields[WSP_FIELD_DUE] = wsp_value_str ("2026-12-01");
  op.fields[WSP_FIELD_POSITION] = wsp_value_float (1.5);
  b = encode_decode (&op, &out);
  for (int f = 1; f < WSP_FIELD_COUNT; f++)
    g_assert_true (wsp_value_equal (&out.fields[f], &op.fields[f]));
  wsp_op_clear (&out);
  for (int f = 1; f < WSP_FIELD_COUNT; f++)
    wsp_value_clear (&op.fields[f]);
}

static void
test_round_trip_set (void)
{
  static const double positions[] = { 0, -7, 0.1, 1e300, -2.5, 1.0 / 3, 4294967296.0, 0.75, 1e-320 };
  for (int f = 1; f < WSP_FIELD_COUNT; f++)
    {
      WspOp op = { 0 }, out;
      g_autoptr (GBytes) b = NULL;
      op.hlc = 1;
      op.type = WSP_OP_SET;
      op.task = (char *) "t";
      op.field = (WspField) f;
      switch (f)
        {
        case WSP_FIELD_PRIORITY: op.value = wsp_value_int (4); break;
        case WSP_FIELD_DUE:      op.value = wsp_value_str ("2024-02-29"); break;
        case WSP_FIELD_POSITION: op.value = wsp_value_float (-0.5); break;
        default:                 op.value = wsp_value_str ("v"); break;
        }
      b = encode_decode (&op, &out);
      g_assert_cmpint (out.field, ==, f);
      g_assert_true (wsp_value_equal (&out.value, &op.value));
      wsp_op_clear (&out);
      wsp_value_clear (&op.value);
    }
  for (guint i = 0; i < G_N_ELEMENTS (positions); i++)
    {
      WspOp op = { .hlc = 1, .type = WSP_OP_SET, .task = (char *) "t", .field = WSP_FIELD_POSITION }, out;
      g_autoptr (GBytes) b = NULL;
      op.value = wsp_value_float (positions[i]);
      b = encode_decode (&op, &out);
      g_assert_cmpint (out.value.kind, ==, WSP_VALUE_FLOAT);
      g_assert_cmpfloat (out.value.f, ==, positions[i]);
      wsp_op_clear (&out);
    }
}

static void
test_round_trip_others (void)
{
  WspDot obs[] = { { 3, 1 }, { 3, 4 }, { 9, 2 } };
  static const WspOpType types[] = { WSP_OP_DELETE, WSP_OP_LABEL_ADD, WSP_OP_LABEL_REMOVE,
                                     WSP_OP_DEP_ADD, WSP_OP_DEP_REMOVE, WSP_OP_COMMENT_ADD };
  for (guint i = 0; i < G_N_ELEMENTS (types); i++)
    {
      WspOp op = { 0 }, out;
      g_autoptr (GBytes) b = NULL;
      op.hlc = G_MAXUINT64;
      op.type = types[i];
      op.task = (char *) "ws-x";
      op.text = (char *) "bug é";
      if (types[i] == WSP_OP_LABEL_REMOVE || types[i] == WSP_OP_DEP_REMOVE)
        {
          op.observed = obs;
          op.n_observed = 3;
        }
      b = encode_decode (&op, &out);
      if (types[i] != WSP_OP_DELETE)
        g_assert_cmpstr (out.text, ==, "bug é");
      g_assert_cmpuint (out.n_observed, ==, op.n_observed);
      if (op.n_observed > 0)
        g_assert_cmpmem (out.observed, 3 * sizeof (WspDot), obs, sizeof obs);
      wsp_op_clear (&out);
    }
}

static void
test_encode_exact (void)
{
  /* [1, {}, 2, "t", [1, nil]]: shortest forms, empty title as nil. */
  WspOp op = { .hlc = 1, .type = WSP_OP_SET, .task = (char *) "t", .field = WSP_FIELD_TITLE };
  g_autoptr (GBytes) b = wsp_op_encode (&op);
  static const guint8 want[] = { 0x95, 0x01, 0x80, 0x02, 0xa1, 't', 0x92, 0x01, 0xc0 };
  g_assert_cmpmem (g_bytes_get_data (b, NULL), g_bytes_get_size (b), want, sizeof want);

  /* deps keys are 16-char lowercase hex strings. */
  {
    WspDot deps[] = { { G_GUINT64_CONSTANT (0xab), 300 } };
    WspOp d = { .hlc = 0x10000, .deps = deps, .n_deps = 1, .type = WSP_OP_DELETE, .task = (char *) "" };
    g_autoptr (GBytes) db = wsp_op_encode (&d);
    static const guint8 dwant[] = { 0x95, 0xce, 0x00, 0x01, 0x00, 0x00, 0x81, 0xb0,
                                    '0','0','0','0','0','0','0','0','0','0','0','0','0','0','a','b',
                                    0xcd, 0x01, 0x2c, 0x03, 0xa0, 0xc0 };
    g_assert_cmpmem (g_bytes_get_data (db, NULL), g_bytes_get_size (db), dwant, sizeof dwant);
  }
  /* Integral positions use the int form, others the shortest float. */
  {
    WspOp p = { .hlc = 1, .type = WSP_OP_SET, .task = (char *) "t", .field = WSP_FIELD_POSITION };
    g_autoptr (GBytes) pb = NULL;
    g_autoptr (GBytes) hb = NULL;
    p.value = wsp_value_float (3);
    pb = wsp_op_encode (&p);
    g_assert_cmpuint (g_bytes_get_size (pb), ==, 9);
    p.value = wsp_value_float (0.5);
    hb = wsp_op_encode (&p);
    g_assert_cmpuint (((const guint8 *) g_bytes_get_data (hb, NULL))[8], ==, 0xca);   /* float32 */
  }
}

/* ---- what decodes as an op (SPEC 7.3) ------------------------------------ */

static void
test_decode_unknown_type (void)
{
  g_autoptr (Mp) m = mp_body (42, "t");
  WspOp op;
  mp_arr (m, 1);
  mp_u (m, 1);
  g_assert_true (mp_decode (m, &op));
  g_assert_cmpint (op.type, ==, WSP_OP_UNKNOWN);
  g_assert_cmpuint (op.type_code, ==, 42);
  g_assert_false (op.data_ok);
  wsp_op_clear (&op);
}

static void
test_decode_envelope_bad (void)
{
  /* Not an array / wrong arity. */
  { g_autoptr (Mp) m = mp_new (); mp_map (m, 0); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_new (); mp_arr (m, 4); mp_u (m, 1); mp_map (m, 0); mp_u (m, 3); mp_s (m, "t"); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_body (3, "t"); mp_nil (m); mp_nil (m); /* 6 items declared as 5 + trailing */ assert_not_op (m); }
  { g_autoptr (Mp) m = mp_new (); mp_arr (m, 6); mp_u (m, 1); mp_map (m, 0); mp_u (m, 3); mp_s (m, "t"); mp_nil (m); mp_nil (m); assert_not_op (m); }
  /* hlc: negative, float, string. */
  { g_autoptr (Mp) m = mp_new (); mp_arr (m, 5); mp_i (m, -1); mp_map (m, 0); mp_u (m, 3); mp_s (m, "t"); mp_nil (m); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_new (); mp_arr (m, 5); msgpack_pack_double (&m->pk, 1); mp_map (m, 0); mp_u (m, 3); mp_s (m, "t"); mp_nil (m); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_new (); mp_arr (m, 5); mp_s (m, "1"); mp_map (m, 0); mp_u (m, 3); mp_s (m, "t"); mp_nil (m); assert_not_op (m); }
  /* type 0, negative; task not a string, task with NUL. */
  { g_autoptr (Mp) m = mp_body (0, "t"); mp_nil (m); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_new (); mp_arr (m, 5); mp_u (m, 1); mp_map (m, 0); mp_i (m, -3); mp_s (m, "t"); mp_nil (m); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_new (); mp_arr (m, 5); mp_u (m, 1); mp_map (m, 0); mp_u (m, 3); mp_u (m, 7); mp_nil (m); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_new (); mp_arr (m, 5); mp_u (m, 1); mp_map (m, 0); mp_u (m, 3); msgpack_pack_bin_with_body (&m->pk, "t", 1); mp_nil (m); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_new (); mp_arr (m, 5); mp_u (m, 1); mp_map (m, 0); mp_u (m, 3); mp_sn (m, "a\0b", 3); mp_nil (m); assert_not_op (m); }
  /* Positive ints in signed formats are still unsigned integers. */
  {
    g_autoptr (Mp) m = mp_new ();
    mp_arr (m, 5);
    mp_raw (m, "\xd3\x00\x00\x00\x00\x00\x00\x00\x07", 9);   /* int64 7 */
    mp_map (m, 0);
    mp_raw (m, "\xd0\x03", 2);                                /* int8 3 */
    mp_s (m, "t");
    mp_nil (m);
    g_assert_true (mp_data_ok (m));
  }
}

static void
deps_body (Mp *m, const char *key, gsize keylen, int kind)
{
  mp_arr (m, 5);
  mp_u (m, 1);
  mp_map (m, 1);
  mp_sn (m, key, keylen);
  switch (kind)
    {
    case 0: mp_u (m, 1); break;
    case 1: mp_u (m, 0); break;
    case 2: mp_u (m, G_GUINT64_CONSTANT (1) << 63); break;
    case 3: mp_i (m, -1); break;
    case 4: mp_s (m, "1"); break;
    default: mp_u (m, (G_GUINT64_CONSTANT (1) << 63) - 1); break;
    }
  mp_u (m, 3);
  mp_s (m, "t");
  mp_nil (m);
}

static void
test_decode_deps (void)
{
  const char *good = "0123456789abcdef";

  { g_autoptr (Mp) m = mp_new (); deps_body (m, good, 16, 0); g_assert_true (mp_data_ok (m)); }
  { g_autoptr (Mp) m = mp_new (); deps_body (m, good, 16, 5); g_assert_true (mp_data_ok (m)); }
  { g_autoptr (Mp) m = mp_new (); deps_body (m, good, 16, 1); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_new (); deps_body (m, good, 16, 2); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_new (); deps_body (m, good, 16, 3); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_new (); deps_body (m, good, 16, 4); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_new (); deps_body (m, "0123456789ABCDEF", 16, 0); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_new (); deps_body (m, "0123456789abcde", 15, 0); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_new (); deps_body (m, "0123456789abcdefa", 17, 0); assert_not_op (m); }
  /* deps naming the author: its previous op is implied by seq. */
  { g_autoptr (Mp) m = mp_new (); deps_body (m, AUTHOR_HEX, 16, 0); assert_not_op (m); }
  /* deps key not a string. */
  {
    g_autoptr (Mp) m = mp_new ();
    mp_arr (m, 5); mp_u (m, 1); mp_map (m, 1); mp_u (m, 5); mp_u (m, 1); mp_u (m, 3); mp_s (m, "t"); mp_nil (m);
    assert_not_op (m);
  }
  /* deps not a map. */
  {
    g_autoptr (Mp) m = mp_new ();
    mp_arr (m, 5); mp_u (m, 1); mp_arr (m, 0); mp_u (m, 3); mp_s (m, "t"); mp_nil (m);
    assert_not_op (m);
  }
  /* Duplicate keys. */
  {
    g_autoptr (Mp) m = mp_new ();
    mp_arr (m, 5); mp_u (m, 1); mp_map (m, 2);
    mp_s (m, good); mp_u (m, 1); mp_s (m, good); mp_u (m, 2);
    mp_u (m, 3); mp_s (m, "t"); mp_nil (m);
    assert_not_op (m);
  }
  /* Several keys in any order come out sorted. */
  {
    g_autoptr (Mp) m = mp_new ();
    WspOp op;
    mp_arr (m, 5); mp_u (m, 1); mp_map (m, 3);
    mp_s (m, "ffffffffffffffff"); mp_u (m, 3);
    mp_s (m, "0000000000000001"); mp_u (m, 1);
    mp_s (m, "00000000000000aa"); mp_u (m, 2);
    mp_u (m, 3); mp_s (m, "t"); mp_nil (m);
    g_assert_true (mp_decode (m, &op));
    g_assert_cmpuint (op.n_deps, ==, 3);
    g_assert_cmpuint (op.deps[0].peer, ==, 1);
    g_assert_cmpuint (op.deps[1].peer, ==, 0xaa);
    g_assert_cmpuint (op.deps[2].peer, ==, G_MAXUINT64);
    g_assert_cmpuint (op.deps[2].seq, ==, 3);
    wsp_op_clear (&op);
  }
}

static void
nest (Mp *m, int depth)
{
  for (int i = 0; i < depth; i++)
    mp_arr (m, 1);
  mp_u (m, 1);
}

static void
test_decode_depth (void)
{
  /* data nested 8 levels decodes (type unknown so the shape is free) … */
  { g_autoptr (Mp) m = mp_body (99, "t"); nest (m, 8); WspOp op; g_assert_true (mp_decode (m, &op)); wsp_op_clear (&op); }
  { g_autoptr (Mp) m = mp_body (99, "t"); mp_map (m, 1); mp_u (m, 1); nest (m, 7); WspOp op; g_assert_true (mp_decode (m, &op)); wsp_op_clear (&op); }
  /* … 9 levels does not, whether arrays or maps. */
  { g_autoptr (Mp) m = mp_body (99, "t"); nest (m, 9); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_body (99, "t"); mp_map (m, 1); mp_u (m, 1); nest (m, 8); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_body (99, "t"); for (int i = 0; i < 9; i++) mp_arr (m, 0 + (i < 8)); assert_not_op (m); }
  /* Very deep input never exhausts the stack. */
  { g_autoptr (Mp) m = mp_body (99, "t"); nest (m, 100000); assert_not_op (m); }
}

static void
test_decode_utf8 (void)
{
  /* Invalid UTF-8 anywhere: task, label, unknown create field, map key,
   * deep inside unknown data. */
  { g_autoptr (Mp) m = mp_body (3, "t\xff"); mp_nil (m); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_body (4, "t"); mp_arr (m, 1); mp_s (m, "\xc3\x28"); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_body (1, "t"); mp_map (m, 1); mp_u (m, 99); mp_s (m, "\xed\xa0\x80"); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_body (1, "t"); mp_map (m, 1); mp_s (m, "\xff"); mp_nil (m); assert_not_op (m); }
  { g_autoptr (Mp) m = mp_body (77, "t"); mp_arr (m, 1); mp_arr (m, 1); mp_s (m, "ok\xe2\x82"); assert_not_op (m); }
  /* Bin is not a string: not checked. */
  { g_autoptr (Mp) m = mp_body (77, "t"); msgpack_pack_bin_with_body (&m->pk, "\xff", 1); WspOp op; g_assert_true (mp_decode (m, &op)); wsp_op_clear (&op); }
}

static void
test_decode_bytes_bad (void)
{
  static const struct { const char *b; gsize n; } bad[] = {
    { "", 0 },
    { "\x95", 1 },                                       /* truncated */
    { "\x95\x01\x80\x03\xa1t\xc0\xc0", 8 },              /* trailing byte */
    { "\x95\x01\x80\x03\xa1t\xc1", 7 },                  /* reserved 0xc1 */
    { "\xdd\xff\xff\xff\xff", 5 },                       /* array32 of 4G items */
    { "\x95\x01\xdf\xff\xff\xff\xff", 7 },               /* map32 of 4G entries */
    { "\x95\x01\x80\x03\xdb\xff\xff\xff\xff", 9 },       /* str32 past the end */
    { "\x95\x01\x80\x03\xa1t\xc6\xff\xff\xff\xff", 11 }, /* bin32 past the end */
    { "\x95\x01\x80\x03\xa1t\xc9\x00\x00\x00\x05\x01", 12 }, /* ext32 past the end */
    { "\xc0", 1 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      WspOp op;
      g_assert_false (wsp_op_decode ((const guint8 *) bad[i].b, bad[i].n, AUTHOR, &op));
    }
  {
    WspOp op;
    g_assert_true (wsp_op_decode ((const guint8 *) "\x95\x01\x80\x03\xa1t\xc0", 7, AUTHOR, &op));
    g_assert_cmpint (op.type, ==, WSP_OP_DELETE);
    g_assert_true (op.data_ok);
    wsp_op_clear (&op);
    g_assert_false (wsp_op_decode (NULL, 0, AUTHOR, &op));
  }
}

/* ---- data shapes (SPEC 7.4) ---------------------------------------------- */

static void
test_create_shapes (void)
{
  /* Not a map: the op is a no-op. */
  { g_autoptr (Mp) m = mp_body (1, "t"); mp_arr (m, 0); g_assert_false (mp_data_ok (m)); }
  { g_autoptr (Mp) m = mp_body (1, "t"); mp_nil (m); g_assert_false (mp_data_ok (m)); }
  /* Empty map: all defaults. */
  {
    g_autoptr (Mp) m = mp_body (1, "t");
    WspOp op;
    mp_map (m, 0);
    g_assert_true (mp_decode (m, &op));
    g_assert_true (op.data_ok);
    g_assert_cmpint (op.fields[WSP_FIELD_TITLE].kind, ==, WSP_VALUE_NIL);
    g_assert_cmpstr (op.fields[WSP_FIELD_STATUS].str, ==, "todo");
    g_assert_cmpint (op.fields[WSP_FIELD_PRIORITY].i, ==, 2);
    g_assert_cmpfloat (op.fields[WSP_FIELD_POSITION].f, ==, 0);
    g_assert_cmpint (op.fields[WSP_FIELD_DUE].kind, ==, WSP_VALUE_NIL);
    wsp_op_clear (&op);
  }
  /* Twice-given, mistyped and unknown fields. */
  {
    g_autoptr (Mp) m = mp_body (1, "t");
    WspOp op;
    mp_map (m, 9);
    mp_u (m, 1); mp_s (m, "a");                 /* title twice → default */
    mp_u (m, 1); mp_s (m, "b");
    mp_u (m, 3); mp_u (m, 7);                   /* status int → default */
    mp_u (m, 4); mp_u (m, 9);                   /* priority 9 → default */
    mp_u (m, 5); mp_s (m, "");                  /* assignee "" → nil */
    mp_u (m, 7); mp_s (m, "2023-02-30");        /* bad date → default */
    mp_u (m, 8); msgpack_pack_float (&m->pk, 2.5f);
    mp_u (m, 99); mp_arr (m, 1); mp_u (m, 1);   /* unknown code: ignored */
    mp_s (m, "title"); mp_s (m, "x");           /* non-int key: ignored */
    g_assert_true (mp_decode (m, &op));
    g_assert_true (op.data_ok);
    g_assert_cmpint (op.fields[WSP_FIELD_TITLE].kind, ==, WSP_VALUE_NIL);
    g_assert_cmpstr (op.fields[WSP_FIELD_STATUS].str, ==, "todo");
    g_assert_cmpint (op.fields[WSP_FIELD_PRIORITY].i, ==, 2);
    g_assert_cmpint (op.fields[WSP_FIELD_ASSIGNEE].kind, ==, WSP_VALUE_NIL);
    g_assert_cmpint (op.fields[WSP_FIELD_DUE].kind, ==, WSP_VALUE_NIL);
    g_assert_cmpfloat (op.fields[WSP_FIELD_POSITION].f, ==, 2.5);
    wsp_op_clear (&op);
  }
}

static gboolean
set_ok (guint64 field, void (*value) (Mp *))
{
  g_autoptr (Mp) m = mp_body (2, "t");
  mp_arr (m, 2);
  mp_u (m, field);
  value (m);
  return mp_data_ok (m);
}

static void v_nil (Mp *m) { mp_nil (m); }
static void v_empty (Mp *m) { mp_s (m, ""); }
static void v_str (Mp *m) { mp_s (m, "x"); }
static void v_nulstr (Mp *m) { mp_sn (m, "x\0y", 3); }
static void v_date (Mp *m) { mp_s (m, "2024-02-29"); }
static void v_baddate (Mp *m) { mp_s (m, "2023-02-29"); }
static void v_0 (Mp *m) { mp_u (m, 0); }
static void v_4 (Mp *m) { mp_u (m, 4); }
static void v_5 (Mp *m) { mp_u (m, 5); }
static void v_neg (Mp *m) { mp_i (m, -1); }
static void v_f64 (Mp *m) { msgpack_pack_double (&m->pk, 2.0); }
static void v_f32 (Mp *m) { msgpack_pack_float (&m->pk, 0.25f); }
static void v_nan (Mp *m) { msgpack_pack_double (&m->pk, NAN); }
static void v_inf (Mp *m) { msgpack_pack_float (&m->pk, INFINITY); }
static void v_true (Mp *m) { msgpack_pack_true (&m->pk); }
static void v_arr (Mp *m) { mp_arr (m, 0); }
static void v_bin (Mp *m) { msgpack_pack_bin_with_body (&m->pk, "x", 1); }
static void v_big (Mp *m) { mp_u (m, G_MAXUINT64); }

static void
test_set_shapes (void)
{
  /* title/body/assignee/parent: str or nil. */
  for (guint f = 1; f <= 6; f++)
    {
      if (f == 3 || f == 4)
        continue;
      g_assert_true (set_ok (f, v_nil));
      g_assert_true (set_ok (f, v_empty));
      g_assert_true (set_ok (f, v_str));
      g_assert_false (set_ok (f, v_0));
      g_assert_false (set_ok (f, v_true));
      g_assert_false (set_ok (f, v_bin));
      g_assert_false (set_ok (f, v_nulstr));
    }
  /* status: a non-empty string. */
  g_assert_true (set_ok (3, v_str));
  g_assert_false (set_ok (3, v_nil));
  g_assert_false (set_ok (3, v_empty));
  /* priority: an integer 0..4. */
  g_assert_true (set_ok (4, v_0));
  g_assert_true (set_ok (4, v_4));
  g_assert_false (set_ok (4, v_5));
  g_assert_false (set_ok (4, v_neg));
  g_assert_false (set_ok (4, v_f64));
  g_assert_false (set_ok (4, v_nil));
  /* due: a real date, nil or "". */
  g_assert_true (set_ok (7, v_date));
  g_assert_true (set_ok (7, v_nil));
  g_assert_true (set_ok (7, v_empty));
  g_assert_false (set_ok (7, v_baddate));
  g_assert_false (set_ok (7, v_str));
  /* position: a finite number. */
  g_assert_true (set_ok (8, v_0));
  g_assert_true (set_ok (8, v_neg));
  g_assert_true (set_ok (8, v_f64));
  g_assert_true (set_ok (8, v_f32));
  g_assert_true (set_ok (8, v_big));
  g_assert_false (set_ok (8, v_nan));
  g_assert_false (set_ok (8, v_inf));
  g_assert_false (set_ok (8, v_nil));
  g_assert_false (set_ok (8, v_str));
  /* Unknown fields. */
  g_assert_false (set_ok (0, v_str));
  g_assert_false (set_ok (9, v_str));
  g_assert_false (set_ok (G_MAXUINT64, v_str));
  /* Wrong arity / not an array. */
  { g_autoptr (Mp) m = mp_body (2, "t"); mp_arr (m, 1); mp_u (m, 1); g_assert_false (mp_data_ok (m)); }
  { g_autoptr (Mp) m = mp_body (2, "t"); mp_arr (m, 3); mp_u (m, 1); mp_s (m, "a"); mp_nil (m); g_assert_false (mp_data_ok (m)); }
  { g_autoptr (Mp) m = mp_body (2, "t"); mp_map (m, 1); mp_u (m, 1); mp_s (m, "a"); g_assert_false (mp_data_ok (m)); }
  { g_autoptr (Mp) m = mp_body (2, "t"); mp_arr (m, 2); mp_s (m, "title"); mp_s (m, "a"); g_assert_false (mp_data_ok (m)); }
  (void) v_arr;
}

static void
test_other_shapes (void)
{
  /* delete: nil only. */
  { g_autoptr (Mp) m = mp_body (3, "t"); mp_nil (m); g_assert_true (mp_data_ok (m)); }
  { g_autoptr (Mp) m = mp_body (3, "t"); mp_arr (m, 0); g_assert_false (mp_data_ok (m)); }
  for (guint64 type = 4; type <= 6; type += 2)
    {
      /* label.add / dep.add: [non-empty string]. */
      { g_autoptr (Mp) m = mp_body (type, "t"); mp_arr (m, 1); mp_s (m, "x"); g_assert_true (mp_data_ok (m)); }
      { g_autoptr (Mp) m = mp_body (type, "t"); mp_arr (m, 1); mp_s (m, ""); g_assert_false (mp_data_ok (m)); }
      { g_autoptr (Mp) m = mp_body (type, "t"); mp_arr (m, 1); mp_u (m, 1); g_assert_false (mp_data_ok (m)); }
      { g_autoptr (Mp) m = mp_body (type, "t"); mp_arr (m, 2); mp_s (m, "x"); mp_s (m, "y"); g_assert_false (mp_data_ok (m)); }
      { g_autoptr (Mp) m = mp_body (type, "t"); mp_s (m, "x"); g_assert_false (mp_data_ok (m)); }
      /* label.remove / dep.remove: [non-empty string, [[peer, seq], …]]. */
      {
        g_autoptr (Mp) m = mp_body (type + 1, "t");
        WspOp op;
        mp_arr (m, 2); mp_s (m, "x"); mp_arr (m, 3);
        mp_arr (m, 2); mp_s (m, "00000000000000ff"); mp_u (m, 2);
        mp_arr (m, 2); mp_s (m, "0000000000000001"); mp_u (m, 7);
        mp_arr (m, 2); mp_s (m, "00000000000000ff"); mp_u (m, 2);   /* duplicate: folded */
        g_assert_true (mp_decode (m, &op));
        g_assert_true (op.data_ok);
        g_assert_cmpuint (op.n_observed, ==, 2);
        g_assert_cmpuint (op.observed[0].peer, ==, 1);
        g_assert_cmpuint (op.observed[1].peer, ==, 0xff);
        wsp_op_clear (&op);
      }
      { g_autoptr (Mp) m = mp_body (type + 1, "t"); mp_arr (m, 2); mp_s (m, "x"); mp_arr (m, 0); g_assert_true (mp_data_ok (m)); }
      { g_autoptr (Mp) m = mp_body (type + 1, "t"); mp_arr (m, 2); mp_s (m, ""); mp_arr (m, 0); g_assert_false (mp_data_ok (m)); }
      { g_autoptr (Mp) m = mp_body (type + 1, "t"); mp_arr (m, 1); mp_s (m, "x"); g_assert_false (mp_data_ok (m)); }
      { g_autoptr (Mp) m = mp_body (type + 1, "t"); mp_arr (m, 2); mp_s (m, "x"); mp_nil (m); g_assert_false (mp_data_ok (m)); }
      { g_autoptr (Mp) m = mp_body (type + 1, "t"); mp_arr (m, 2); mp_s (m, "x"); mp_arr (m, 1); mp_arr (m, 2); mp_s (m, "00000000000000FF"); mp_u (m, 2); g_assert_false (mp_data_ok (m)); }
      { g_autoptr (Mp) m = mp_body (type + 1, "t"); mp_arr (m, 2); mp_s (m, "x"); mp_arr (m, 1); mp_arr (m, 2); mp_s (m, "00000000000000ff"); mp_u (m, 0); g_assert_false (mp_data_ok (m)); }
      { g_autoptr (Mp) m = mp_body (type + 1, "t"); mp_arr (m, 2); mp_s (m, "x"); mp_arr (m, 1); mp_arr (m, 3); mp_s (m, "00000000000000ff"); mp_u (m, 1); mp_u (m, 1); g_assert_false (mp_data_ok (m)); }
    }
  /* comment.add: [string], empty allowed. */
  { g_autoptr (Mp) m = mp_body (8, "t"); mp_arr (m, 1); mp_s (m, ""); g_assert_true (mp_data_ok (m)); }
  { g_autoptr (Mp) m = mp_body (8, "t"); mp_arr (m, 1); mp_nil (m); g_assert_false (mp_data_ok (m)); }
  { g_autoptr (Mp) m = mp_body (8, "t"); mp_s (m, "x"); g_assert_false (mp_data_ok (m)); }
}

static void
test_msgpack_check (void)
{
  g_assert_true (wsp_msgpack_check ((const guint8 *) "\x90", 1, 1));
  g_assert_false (wsp_msgpack_check ((const guint8 *) "\x90", 1, 0));
  g_assert_true (wsp_msgpack_check ((const guint8 *) "\x01", 1, 0));
  g_assert_true (wsp_msgpack_check ((const guint8 *) "\x91\x90", 2, 2));
  g_assert_false (wsp_msgpack_check ((const guint8 *) "\x91\x90", 2, 1));
  g_assert_true (wsp_msgpack_check ((const guint8 *) "\xd4\x01\x02", 3, 0));     /* fixext1 */
  g_assert_true (wsp_msgpack_check ((const guint8 *) "\xc7\x01\x05\xaa", 4, 0)); /* ext8 */
  g_assert_false (wsp_msgpack_check ((const guint8 *) "\xc7\x02\x05\xaa", 4, 0));
  g_assert_false (wsp_msgpack_check ((const guint8 *) "\x81\x01", 2, 1));
  g_assert_false (wsp_msgpack_check (NULL, 0, 1));
}

/* Random bytes and random mutations of valid bodies never crash or leak. */
static void
test_decode_random (void)
{
  GRand *r = g_rand_new_with_seed (1234);
  WspOp op = { .hlc = 77, .type = WSP_OP_LABEL_REMOVE, .task = (char *) "ws-task", .text = (char *) "label" };
  WspDot obs[] = { { 5, 1 }, { 6, 2 } };
  g_autoptr (GBytes) valid = NULL;

  op.observed = obs;
  op.n_observed = 2;
  valid = wsp_op_encode (&op);
  for (int i = 0; i < 50000; i++)
    {
      gsize n = g_bytes_get_size (valid);
      g_autofree guint8 *buf = g_memdup2 (g_bytes_get_data (valid, NULL), n);
      WspOp out;
      int flips = g_rand_int_range (r, 1, 4);
      for (int k = 0; k < flips; k++)
        buf[g_rand_int_range (r, 0, (gint32) n)] = (guint8) g_rand_int (r);
      if (g_rand_boolean (r))
        n = (gsize) g_rand_int_range (r, 0, (gint32) n + 1);
      if (wsp_op_decode (buf, n, AUTHOR, &out))
        wsp_op_clear (&out);
    }
  g_rand_free (r);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/op/names", test_names);
  g_test_add_func ("/op/value/normalize", test_normalize);
  g_test_add_func ("/op/value/defaults", test_defaults_and_values);
  g_test_add_func ("/op/round-trip/create", test_round_trip_create);
  g_test_add_func ("/op/round-trip/set", test_round_trip_set);
  g_test_add_func ("/op/round-trip/others", test_round_trip_others);
  g_test_add_func ("/op/encode/exact", test_encode_exact);
  g_test_add_func ("/op/decode/unknown-type", test_decode_unknown_type);
  g_test_add_func ("/op/decode/envelope-bad", test_decode_envelope_bad);
  g_test_add_func ("/op/decode/deps", test_decode_deps);
  g_test_add_func ("/op/decode/depth", test_decode_depth);
  g_test_add_func ("/op/decode/utf8", test_decode_utf8);
  g_test_add_func ("/op/decode/bytes-bad", test_decode_bytes_bad);
  g_test_add_func ("/op/decode/random", test_decode_random);
  g_test_add_func ("/op/data/create", test_create_shapes);
  g_test_add_func ("/op/data/set", test_set_shapes);
  g_test_add_func ("/op/data/others", test_other_shapes);
  g_test_add_func ("/op/msgpack-check", test_msgpack_check);
  return g_test_run ();
}
