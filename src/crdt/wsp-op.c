/* wsp-op.c — field values and the op body codec (SPEC 3 "Values", 7.3, 7.4).
 *
 * Owns: WspValue helpers, field normalisation and defaults, the strict
 * pre-check of untrusted MessagePack (wsp_msgpack_check), wsp_op_decode and
 * wsp_op_encode.
 *
 * Invariants:
 * - Decoding is total: any byte string yields TRUE or FALSE, never a crash,
 *   an abort or a leak (fuzzed by fuzz/op-decode-fuzz.c). Untrusted bytes
 *   pass wsp_msgpack_check before msgpack-c sees them, so msgpack-c never
 *   sizes an allocation from a count the input cannot back.
 * - Whether a body decodes, and the decoded op, depend only on the bytes and
 *   the author: every replica reaches the same verdict, which is what keeps
 *   replicas convergent when they skip no-ops.
 * - Values held in a WspOp are normalised (wsp_field_normalize), so the
 *   merge code compares canonical values only.
 * - Strings in decoded data containing U+0000 are treated as having the
 *   wrong type (C strings cannot hold them; every replica agrees), and a
 *   task id containing U+0000 makes the body undecodable.
 */
#include "crdt/wsp-op.h"

#include <math.h>
#include <string.h>
#include <msgpack.h>

/* ---- names ------------------------------------------------------------- */

const char *
wsp_op_type_to_string (WspOpType type)
{
  switch (type)
    {
    case WSP_OP_CREATE:       return "task.create";
    case WSP_OP_SET:          return "task.set";
    case WSP_OP_DELETE:       return "task.delete";
    case WSP_OP_LABEL_ADD:    return "label.add";
    case WSP_OP_LABEL_REMOVE: return "label.remove";
    case WSP_OP_DEP_ADD:      return "dep.add";
    case WSP_OP_DEP_REMOVE:   return "dep.remove";
    case WSP_OP_COMMENT_ADD:  return "comment.add";
    case WSP_OP_UNKNOWN:
    default:                  return "unknown";
    }
}

static const char *const field_names[WSP_FIELD_COUNT] = {
  NULL, "title", "body", "status", "priority", "assignee", "parent", "due", "position",
};

const char *
wsp_field_to_string (WspField field)
{
  if (field <= WSP_FIELD_NONE || field >= WSP_FIELD_COUNT)
    return "unknown";
  return field_names[field];
}

WspField
wsp_field_from_string (const char *name)
{
  if (name == NULL)
    return WSP_FIELD_NONE;
  for (int f = 1; f < WSP_FIELD_COUNT; f++)
    if (strcmp (name, field_names[f]) == 0)
      return (WspField) f;
  return WSP_FIELD_NONE;
}

/* ---- values ------------------------------------------------------------ */

void
wsp_value_clear (WspValue *v)
{
  if (v->kind == WSP_VALUE_STR)
    g_free (v->str);
  v->kind = WSP_VALUE_NIL;
  v->i = 0;
}

void
wsp_value_copy (WspValue *dst, const WspValue *src)
{
  if (dst == src)
    return;
  wsp_value_clear (dst);
  *dst = *src;
  if (src->kind == WSP_VALUE_STR)
    dst->str = g_strdup (src->str);
}

gboolean
wsp_value_equal (const WspValue *a, const WspValue *b)
{
  if (a->kind != b->kind)
    return FALSE;
  switch (a->kind)
    {
    case WSP_VALUE_NIL:   return TRUE;
    case WSP_VALUE_STR:   return strcmp (a->str, b->str) == 0;
    case WSP_VALUE_INT:   return a->i == b->i;
    case WSP_VALUE_FLOAT: return a->f == b->f;
    default:              return FALSE;
    }
}

WspValue
wsp_value_str (const char *s)
{
  WspValue v = { .kind = WSP_VALUE_NIL };

  if (s != NULL && *s != '\0')
    {
      v.kind = WSP_VALUE_STR;
      v.str = g_strdup (s);
    }
  return v;
}

WspValue
wsp_value_int (gint64 i)
{
  WspValue v = { .kind = WSP_VALUE_INT, .i = i };
  return v;
}

WspValue
wsp_value_float (double f)
{
  WspValue v = { .kind = WSP_VALUE_FLOAT, .f = f };
  return v;
}

gboolean
wsp_field_normalize (WspField field, const WspValue *v, WspValue *out)
{
  WspValue r = { .kind = WSP_VALUE_NIL };

  switch (field)
    {
    case WSP_FIELD_TITLE:
    case WSP_FIELD_BODY:
    case WSP_FIELD_ASSIGNEE:
    case WSP_FIELD_PARENT:
      /* String or nil; "" means empty, kept as nil so that there is one
       * spelling of "empty" in registers and on the wire. */
      if (v->kind == WSP_VALUE_NIL)
        break;
      if (v->kind != WSP_VALUE_STR || v->str == NULL)
        return FALSE;
      r = wsp_value_str (v->str);
      break;
    case WSP_FIELD_STATUS:
      if (v->kind != WSP_VALUE_STR || v->str == NULL || v->str[0] == '\0')
        return FALSE;
      r = wsp_value_str (v->str);
      break;
    case WSP_FIELD_PRIORITY:
      if (v->kind != WSP_VALUE_INT || v->i < 0 || v->i > 4)
        return FALSE;
      r = wsp_value_int (v->i);
      break;
    case WSP_FIELD_DUE:
      if (v->kind == WSP_VALUE_NIL || (v->kind == WSP_VALUE_STR && v->str != NULL && v->str[0] == '\0'))
        break;
      if (v->kind != WSP_VALUE_STR || v->str == NULL || !wsp_date_is_valid (v->str, strlen (v->str)))
        return FALSE;
      r = wsp_value_str (v->str);
      break;
    case WSP_FIELD_POSITION:
      if (v->kind == WSP_VALUE_INT)
        r = wsp_value_float ((double) v->i);
      else if (v->kind == WSP_VALUE_FLOAT && isfinite (v->f))
        r = wsp_value_float (v->f);
      else
        return FALSE;
      /* -0 and 0 are one position; keep one bit pattern so encodings agree. */
      if (r.f == 0)
        r.f = 0;
      break;
    case WSP_FIELD_NONE:
    default:
      return FALSE;
    }
  *out = r;
  return TRUE;
}

void
wsp_field_default (WspField field, WspValue *out)
{
  switch (field)
    {
    case WSP_FIELD_STATUS:   *out = wsp_value_str ("todo"); break;
    case WSP_FIELD_PRIORITY: *out = wsp_value_int (2); break;
    case WSP_FIELD_POSITION: *out = wsp_value_float (0); break;
    default:                 *out = (WspValue) { .kind = WSP_VALUE_NIL }; break;
    }
}

/* ---- untrusted MessagePack pre-check ----------------------------------- */

/* Reads an n-byte big-endian unsigned integer at p. */
static guint64
be_read (const guint8 *p, guint n)
{
  guint64 v = 0;
  for (guint i = 0; i < n; i++)
    v = (v << 8) | p[i];
  return v;
}

/* Iterative walk: `pending[d]` counts the values still owed to the container
 * at depth d, so deep input cannot exhaust the C stack. */
gboolean
wsp_msgpack_check (const guint8 *data, gsize len, guint max_depth)
{
  guint64 pending[64];
  guint depth = 0;
  gsize pos = 0;

  if (data == NULL || max_depth >= G_N_ELEMENTS (pending))
    return FALSE;
  pending[0] = 1;   /* the top-level value */
  while (depth > 0 || pending[0] > 0)
    {
      guint8 b;
      guint64 count = 0;   /* for containers: number of child values */
      gboolean container = FALSE;
      guint64 skip = 0;    /* payload bytes after the header */
      gboolean is_str = FALSE;
      gsize avail;

      if (pending[depth] == 0)
        {
          depth--;
          continue;
        }
      pending[depth]--;
      if (pos >= len)
        return FALSE;
      b = data[pos++];
      avail = len - pos;

      if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        ;   /* fixint, nil, bool */
      else if (b >= 0x80 && b <= 0x8f)
        container = TRUE, count = (guint64) (b & 0x0f) * 2;
      else if (b >= 0x90 && b <= 0x9f)
        container = TRUE, count = b & 0x0f;
      else if (b >= 0xa0 && b <= 0xbf)
        is_str = TRUE, skip = b & 0x1f;
      else
        {
          static const guint8 int_sizes[] = { 1, 2, 4, 8 };
          guint hdr;
          switch (b)
            {
            case 0xc1:
              return FALSE;   /* never used */
            case 0xc4: case 0xc5: case 0xc6:   /* bin 8/16/32 */
              hdr = 1u << (b - 0xc4);
              if (avail < hdr) return FALSE;
              skip = be_read (data + pos, hdr);
              pos += hdr;
              break;
            case 0xc7: case 0xc8: case 0xc9:   /* ext 8/16/32: len, type */
              hdr = 1u << (b - 0xc7);
              if (avail < hdr + 1) return FALSE;
              skip = be_read (data + pos, hdr) + 1;
              pos += hdr;
              break;
            case 0xca: skip = 4; break;        /* float 32 */
            case 0xcb: skip = 8; break;        /* float 64 */
            case 0xcc: case 0xcd: case 0xce: case 0xcf:
              skip = int_sizes[b - 0xcc]; break;
            case 0xd0: case 0xd1: case 0xd2: case 0xd3:
              skip = int_sizes[b - 0xd0]; break;
            case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:   /* fixext */
              skip = 1 + (1u << (b - 0xd4)); break;
            case 0xd9: case 0xda: case 0xdb:   /* str 8/16/32 */
              hdr = 1u << (b - 0xd9);
              if (avail < hdr) return FALSE;
              skip = be_read (data + pos, hdr);
              pos += hdr;
              is_str = TRUE;
              break;
            case 0xdc: case 0xdd:              /* array 16/32 */
              hdr = 2u << (b - 0xdc);
              if (avail < hdr) return FALSE;
              count = be_read (data + pos, hdr);
              pos += hdr;
              container = TRUE;
              break;
            case 0xde: case 0xdf:              /* map 16/32 */
              hdr = 2u << (b - 0xde);
              if (avail < hdr) return FALSE;
              count = be_read (data + pos, hdr) * 2;
              pos += hdr;
              container = TRUE;
              break;
            default:
              return FALSE;
            }
        }

      if (skip > len - pos)
        return FALSE;
      if (is_str && !wsp_utf8_is_valid ((const char *) data + pos, (gsize) skip))
        return FALSE;
      pos += (gsize) skip;

      if (container && count > 0)
        {
          /* Every child takes at least one byte. */
          if (count > len - pos || depth + 1 > max_depth)
            return FALSE;
          pending[++depth] = count;
        }
      else if (container && depth + 1 > max_depth)
        return FALSE;
    }
  return pos == len;
}

/* ---- decoding ----------------------------------------------------------- */

#define MAX_DATA_DEPTH 8

/* Converts a scalar msgpack object into a raw (not yet normalised) value.
 * Returns FALSE for types no field accepts (bool, bin, ext, containers,
 * strings with NUL). */
static gboolean
value_from_object (const msgpack_object *o, WspValue *out)
{
  switch (o->type)
    {
    case MSGPACK_OBJECT_NIL:
      *out = (WspValue) { .kind = WSP_VALUE_NIL };
      return TRUE;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
      /* Beyond gint64 only position can use it, as a double. */
      if (o->via.u64 > G_MAXINT64)
        *out = wsp_value_float ((double) o->via.u64);
      else
        *out = wsp_value_int ((gint64) o->via.u64);
      return TRUE;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
      *out = wsp_value_int (o->via.i64);
      return TRUE;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
      *out = wsp_value_float (o->via.f64);
      return TRUE;
    case MSGPACK_OBJECT_STR:
      if (memchr (o->via.str.ptr, 0, o->via.str.size) != NULL)
        return FALSE;
      out->kind = WSP_VALUE_STR;
      out->str = g_strndup (o->via.str.ptr, o->via.str.size);
      return TRUE;
    default:
      return FALSE;
    }
}

/* Raw object → normalised field value; FALSE on wrong type. */
static gboolean
field_value_from_object (WspField field, const msgpack_object *o, WspValue *out)
{
  WspValue raw = { .kind = WSP_VALUE_NIL };
  gboolean ok;

  if (!value_from_object (o, &raw))
    return FALSE;
  ok = wsp_field_normalize (field, &raw, out);
  wsp_value_clear (&raw);
  return ok;
}

/* A non-empty NUL-free string: labels, task ids in deps. */
static char *
text_from_object (const msgpack_object *o, gboolean allow_empty)
{
  if (o->type != MSGPACK_OBJECT_STR || (!allow_empty && o->via.str.size == 0)
      || memchr (o->via.str.ptr, 0, o->via.str.size) != NULL)
    return NULL;
  return g_strndup (o->via.str.ptr, o->via.str.size);
}

static int
dot_compare (gconstpointer a, gconstpointer b)
{
  const WspDot *x = a, *y = b;
  if (x->peer != y->peer)
    return x->peer < y->peer ? -1 : 1;
  if (x->seq != y->seq)
    return x->seq < y->seq ? -1 : 1;
  return 0;
}

/* [[peer hex, seq], …] → sorted, de-duplicated dots. */
static gboolean
observed_from_object (const msgpack_object *o, WspOp *op)
{
  guint n = 0;

  if (o->type != MSGPACK_OBJECT_ARRAY)
    return FALSE;
  if (o->via.array.size == 0)
    return TRUE;
  op->observed = g_new (WspDot, o->via.array.size);
  for (guint32 i = 0; i < o->via.array.size; i++)
    {
      const msgpack_object *pair = &o->via.array.ptr[i];
      const msgpack_object *p, *s;
      if (pair->type != MSGPACK_OBJECT_ARRAY || pair->via.array.size != 2)
        return FALSE;
      p = &pair->via.array.ptr[0];
      s = &pair->via.array.ptr[1];
      if (p->type != MSGPACK_OBJECT_STR
          || !wsp_peer_from_hex (p->via.str.ptr, p->via.str.size, &op->observed[i].peer)
          || s->type != MSGPACK_OBJECT_POSITIVE_INTEGER || s->via.u64 == 0 || s->via.u64 > G_MAXINT64)
        return FALSE;
      op->observed[i].seq = s->via.u64;
    }
  qsort (op->observed, o->via.array.size, sizeof (WspDot), dot_compare);
  for (guint32 i = 0; i < o->via.array.size; i++)
    if (n == 0 || dot_compare (&op->observed[n - 1], &op->observed[i]) != 0)
      op->observed[n++] = op->observed[i];
  op->n_observed = n;
  return TRUE;
}

/* Fills the type-specific part of op from data; returns data_ok. On FALSE
 * the caller resets the data part, so partial results need no cleanup here. */
static gboolean
decode_data (WspOp *op, const msgpack_object *data)
{
  /* Array-shaped data: a and n are only read when data is an array. */
  gboolean is_array = data->type == MSGPACK_OBJECT_ARRAY;
  const msgpack_object *a = is_array ? data->via.array.ptr : NULL;
  guint32 n = is_array ? data->via.array.size : 0;

  switch (op->type)
    {
    case WSP_OP_CREATE:
      {
        guint seen[WSP_FIELD_COUNT] = { 0 };
        if (data->type != MSGPACK_OBJECT_MAP)
          return FALSE;
        for (guint32 i = 0; i < data->via.map.size; i++)
          {
            const msgpack_object_kv *kv = &data->via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_POSITIVE_INTEGER
                && kv->key.via.u64 >= 1 && kv->key.via.u64 < WSP_FIELD_COUNT)
              seen[kv->key.via.u64]++;
          }
        for (int f = 1; f < WSP_FIELD_COUNT; f++)
          {
            gboolean ok = FALSE;
            wsp_value_clear (&op->fields[f]);
            if (seen[f] == 1)
              for (guint32 i = 0; i < data->via.map.size; i++)
                {
                  const msgpack_object_kv *kv = &data->via.map.ptr[i];
                  if (kv->key.type == MSGPACK_OBJECT_POSITIVE_INTEGER && kv->key.via.u64 == (guint64) f)
                    {
                      ok = field_value_from_object ((WspField) f, &kv->val, &op->fields[f]);
                      break;
                    }
                }
            /* Missing, duplicated or mistyped: the default (SPEC 3). */
            if (!ok)
              wsp_field_default ((WspField) f, &op->fields[f]);
          }
        return TRUE;
      }
    case WSP_OP_SET:
      if (n != 2 || a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER
          || a[0].via.u64 < 1 || a[0].via.u64 >= WSP_FIELD_COUNT)
        return FALSE;
      op->field = (WspField) a[0].via.u64;
      return field_value_from_object (op->field, &a[1], &op->value);
    case WSP_OP_DELETE:
      return data->type == MSGPACK_OBJECT_NIL;
    case WSP_OP_LABEL_ADD:
    case WSP_OP_DEP_ADD:
      if (n != 1)
        return FALSE;
      op->text = text_from_object (&a[0], FALSE);
      return op->text != NULL;
    case WSP_OP_LABEL_REMOVE:
    case WSP_OP_DEP_REMOVE:
      if (n != 2)
        return FALSE;
      op->text = text_from_object (&a[0], FALSE);
      return op->text != NULL && observed_from_object (&a[1], op);
    case WSP_OP_COMMENT_ADD:
      if (n != 1)
        return FALSE;
      op->text = text_from_object (&a[0], TRUE);
      return op->text != NULL;
    case WSP_OP_UNKNOWN:
    default:
      return FALSE;
    }
}

static void
op_clear_data (WspOp *op)
{
  for (int f = 0; f < WSP_FIELD_COUNT; f++)
    wsp_value_clear (&op->fields[f]);
  wsp_value_clear (&op->value);
  op->field = WSP_FIELD_NONE;
  g_clear_pointer (&op->text, g_free);
  g_clear_pointer (&op->observed, g_free);
  op->n_observed = 0;
}

void
wsp_op_clear (WspOp *op)
{
  if (op == NULL)
    return;
  op_clear_data (op);
  g_clear_pointer (&op->deps, g_free);
  g_clear_pointer (&op->task, g_free);
  memset (op, 0, sizeof *op);
}

/* Validates the envelope and fills everything but data. */
static gboolean
decode_envelope (const msgpack_object *root, WspPeer author, WspOp *op)
{
  const msgpack_object *a;
  const msgpack_object *deps;
  guint32 nd;

  if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size != 5)
    return FALSE;
  a = root->via.array.ptr;
  if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return FALSE;
  op->hlc = a[0].via.u64;

  deps = &a[1];
  if (deps->type != MSGPACK_OBJECT_MAP)
    return FALSE;
  nd = deps->via.map.size;
  if (nd > 0)
    op->deps = g_new (WspDot, nd);
  for (guint32 i = 0; i < nd; i++)
    {
      const msgpack_object_kv *kv = &deps->via.map.ptr[i];
      WspPeer p;
      if (kv->key.type != MSGPACK_OBJECT_STR
          || !wsp_peer_from_hex (kv->key.via.str.ptr, kv->key.via.str.size, &p)
          || p == author
          || kv->val.type != MSGPACK_OBJECT_POSITIVE_INTEGER
          || kv->val.via.u64 == 0 || kv->val.via.u64 > G_MAXINT64)
        return FALSE;
      op->deps[i].peer = p;
      op->deps[i].seq = kv->val.via.u64;
    }
  op->n_deps = nd;
  if (nd > 1)
    {
      qsort (op->deps, nd, sizeof (WspDot), dot_compare);
      for (guint32 i = 1; i < nd; i++)
        if (op->deps[i].peer == op->deps[i - 1].peer)
          return FALSE;
    }

  if (a[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER || a[2].via.u64 == 0)
    return FALSE;
  op->type_code = a[2].via.u64;
  op->type = op->type_code <= WSP_OP_COMMENT_ADD ? (WspOpType) op->type_code : WSP_OP_UNKNOWN;

  op->task = text_from_object (&a[3], TRUE);
  return op->task != NULL;
}

gboolean
wsp_op_decode (const guint8 *body, gsize len, WspPeer author, WspOp *op)
{
  msgpack_unpacked msg;
  size_t off = 0;
  gboolean ok = FALSE;

  memset (op, 0, sizeof *op);
  /* Depth: the body array is 1, data nests at most 8 more (SPEC 7.3). The
   * pre-check also enforces UTF-8 in every string and no trailing bytes. */
  if (body == NULL || !wsp_msgpack_check (body, len, 1 + MAX_DATA_DEPTH))
    return FALSE;
  msgpack_unpacked_init (&msg);
  if (msgpack_unpack_next (&msg, (const char *) body, len, &off) == MSGPACK_UNPACK_SUCCESS && off == len)
    ok = decode_envelope (&msg.data, author, op);
  if (ok)
    {
      op->data_ok = decode_data (op, &msg.data.via.array.ptr[4]);
      if (!op->data_ok)
        op_clear_data (op);
    }
  msgpack_unpacked_destroy (&msg);
  if (!ok)
    wsp_op_clear (op);
  return ok;
}

/* ---- encoding ----------------------------------------------------------- */

static void
pack_str (msgpack_packer *pk, const char *s)
{
  gsize n = strlen (s);
  msgpack_pack_str_with_body (pk, s, n);
}

static void
pack_value (msgpack_packer *pk, WspField field, const WspValue *v)
{
  switch (v->kind)
    {
    case WSP_VALUE_STR:
      if (v->str != NULL && v->str[0] != '\0')
        pack_str (pk, v->str);
      else
        msgpack_pack_nil (pk);
      break;
    case WSP_VALUE_INT:
      msgpack_pack_int64 (pk, v->i);
      break;
    case WSP_VALUE_FLOAT:
      /* Shortest form that decodes to the same position: an int when the
       * double is integral and in range (position accepts ints), else
       * float32 when exact, else float64. Other fields keep a float a
       * float. Non-finite values are still written (tests use them as
       * invalid values); receivers refuse them. */
      if (field == WSP_FIELD_POSITION && isfinite (v->f) && v->f == trunc (v->f) && fabs (v->f) < 9.2e18)
        msgpack_pack_int64 (pk, (gint64) v->f);
      else if (!isfinite (v->f) || (double) (float) v->f == v->f)
        msgpack_pack_float (pk, (float) v->f);
      else
        msgpack_pack_double (pk, v->f);
      break;
    case WSP_VALUE_NIL:
    default:
      msgpack_pack_nil (pk);
      break;
    }
}

static void
pack_observed (msgpack_packer *pk, const WspDot *dots, guint n)
{
  char hex[WSP_PEER_HEX_LEN + 1];

  msgpack_pack_array (pk, n);
  for (guint i = 0; i < n; i++)
    {
      wsp_peer_to_hex (dots[i].peer, hex);
      msgpack_pack_array (pk, 2);
      msgpack_pack_str_with_body (pk, hex, WSP_PEER_HEX_LEN);
      msgpack_pack_uint64 (pk, dots[i].seq);
    }
}

GBytes *
wsp_msgpack_sbuffer_take (msgpack_sbuffer *sbuf)
{
  GBytes *bytes = g_bytes_new (sbuf->data, sbuf->size);
  msgpack_sbuffer_destroy (sbuf);
  msgpack_sbuffer_init (sbuf);
  return bytes;
}

GBytes *
wsp_op_encode (const WspOp *op)
{
  msgpack_sbuffer sbuf;
  msgpack_packer pk;
  char hex[WSP_PEER_HEX_LEN + 1];
  guint64 code = op->type != WSP_OP_UNKNOWN ? (guint64) op->type : op->type_code;

  msgpack_sbuffer_init (&sbuf);
  msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
  msgpack_pack_array (&pk, 5);
  msgpack_pack_uint64 (&pk, op->hlc);
  msgpack_pack_map (&pk, op->n_deps);
  for (guint i = 0; i < op->n_deps; i++)
    {
      wsp_peer_to_hex (op->deps[i].peer, hex);
      msgpack_pack_str_with_body (&pk, hex, WSP_PEER_HEX_LEN);
      msgpack_pack_uint64 (&pk, op->deps[i].seq);
    }
  msgpack_pack_uint64 (&pk, code);
  pack_str (&pk, op->task != NULL ? op->task : "");

  switch (op->type)
    {
    case WSP_OP_CREATE:
      msgpack_pack_map (&pk, WSP_FIELD_COUNT - 1);
      for (int f = 1; f < WSP_FIELD_COUNT; f++)
        {
          msgpack_pack_uint64 (&pk, (guint64) f);
          pack_value (&pk, (WspField) f, &op->fields[f]);
        }
      break;
    case WSP_OP_SET:
      msgpack_pack_array (&pk, 2);
      msgpack_pack_uint64 (&pk, (guint64) op->field);
      pack_value (&pk, op->field, &op->value);
      break;
    case WSP_OP_LABEL_ADD:
    case WSP_OP_DEP_ADD:
    case WSP_OP_COMMENT_ADD:
      msgpack_pack_array (&pk, 1);
      pack_str (&pk, op->text != NULL ? op->text : "");
      break;
    case WSP_OP_LABEL_REMOVE:
    case WSP_OP_DEP_REMOVE:
      msgpack_pack_array (&pk, 2);
      pack_str (&pk, op->text != NULL ? op->text : "");
      pack_observed (&pk, op->observed, op->n_observed);
      break;
    case WSP_OP_DELETE:
    case WSP_OP_UNKNOWN:
    default:
      msgpack_pack_nil (&pk);
      break;
    }
  return wsp_msgpack_sbuffer_take (&sbuf);
}
