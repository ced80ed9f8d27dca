/* wsp-op.h — operations: typed values, the op body codec (SPEC 7.3/7.4).
 *
 * An op body is the MessagePack array [hlc, deps, type, task, data]. Bodies
 * are hashed, stored and relayed byte for byte; this module encodes bodies
 * for local ops and decodes received ones. Pure: no I/O, any thread.
 */
#pragma once

#include <glib.h>
#include "common/wsp-common.h"

G_BEGIN_DECLS

typedef enum {
  WSP_OP_UNKNOWN      = 0,   /* a type code this replica does not know */
  WSP_OP_CREATE       = 1,
  WSP_OP_SET          = 2,
  WSP_OP_DELETE       = 3,
  WSP_OP_LABEL_ADD    = 4,
  WSP_OP_LABEL_REMOVE = 5,
  WSP_OP_DEP_ADD      = 6,
  WSP_OP_DEP_REMOVE   = 7,
  WSP_OP_COMMENT_ADD  = 8,
} WspOpType;

const char *wsp_op_type_to_string (WspOpType type);   /* "task.create" … "unknown" */

typedef enum {
  WSP_FIELD_NONE     = 0,
  WSP_FIELD_TITLE    = 1,
  WSP_FIELD_BODY     = 2,
  WSP_FIELD_STATUS   = 3,
  WSP_FIELD_PRIORITY = 4,
  WSP_FIELD_ASSIGNEE = 5,
  WSP_FIELD_PARENT   = 6,
  WSP_FIELD_DUE      = 7,
  WSP_FIELD_POSITION = 8,
} WspField;
#define WSP_FIELD_COUNT 9   /* index 0 unused */

const char *wsp_field_to_string (WspField field);      /* "title" … */
WspField    wsp_field_from_string (const char *name);  /* WSP_FIELD_NONE if unknown */

typedef enum {
  WSP_VALUE_NIL = 0,
  WSP_VALUE_STR,
  WSP_VALUE_INT,
  WSP_VALUE_FLOAT,
} WspValueKind;

/* A field value. Owns str. Empty strings for title/body are "" in views;
 * on the wire an empty value is nil. */
typedef struct {
  WspValueKind kind;
  union {
    char   *str;   /* WSP_VALUE_STR: valid UTF-8, NUL-terminated */
    gint64  i;     /* WSP_VALUE_INT */
    double  f;     /* WSP_VALUE_FLOAT: finite */
  };
} WspValue;

void     wsp_value_clear (WspValue *v);              /* frees str, sets NIL */
void     wsp_value_copy (WspValue *dst, const WspValue *src);
gboolean wsp_value_equal (const WspValue *a, const WspValue *b);
WspValue wsp_value_str (const char *s);              /* copies s; NULL or "" → NIL */
WspValue wsp_value_int (gint64 i);
WspValue wsp_value_float (double f);

/* The canonical value of a field: returns TRUE and fills *out when v has a
 * type valid for field (SPEC 3 "Values"), normalising "" to NIL for
 * assignee/parent/due and title/body, ints and floats for position to a
 * double stored as WSP_VALUE_FLOAT. Returns FALSE when v has the wrong type
 * or range (the op is then a no-op). */
gboolean wsp_field_normalize (WspField field, const WspValue *v, WspValue *out);
/* The default value of a field (title/body NIL meaning "", status "todo",
 * priority 2, position 0.0, others NIL). */
void     wsp_field_default (WspField field, WspValue *out);

/* One entry of a vector clock or deps map. */
typedef struct {
  WspPeer peer;
  guint64 seq;
} WspDot;

/* A decoded op body. Owns everything. */
typedef struct {
  guint64   hlc;
  WspDot   *deps;           /* sorted by peer, no duplicates */
  guint     n_deps;
  guint64   type_code;      /* as on the wire (>= 1) */
  WspOpType type;           /* WSP_OP_UNKNOWN for codes this replica lacks */
  char     *task;           /* task id, valid UTF-8 */
  /* data, valid only when data_ok (the data has the shape of SPEC 7.4): */
  gboolean  data_ok;
  /* CREATE: fields[f] for every f in 1..8, defaults for missing/bad/duplicate.
   * SET: field/value (value already normalised); data_ok is FALSE when the
   *      field is unknown or the value has the wrong type. */
  WspValue  fields[WSP_FIELD_COUNT];
  WspField  field;
  WspValue  value;
  /* LABEL_* / DEP_*: the label or other task id (non-empty). COMMENT: body. */
  char     *text;
  /* LABEL_REMOVE / DEP_REMOVE: the observed add ops. */
  WspDot   *observed;
  guint     n_observed;
} WspOp;

void wsp_op_clear (WspOp *op);

/* Decodes a body. Returns FALSE when the body does not decode as an op
 * (SPEC 7.3: not a 5-array, bad hlc, bad deps keys/values, deps naming the
 * author, type 0, non-string task, invalid UTF-8, data nested > 8 levels,
 * trailing bytes). Such a body is still stored and counted; its deps are
 * empty. When TRUE, op->data_ok tells whether the data has a valid shape.
 * Depth counts containers: data `[[1]]` is 2 levels; 8 decode, 9 do not.
 * Strings holding U+0000 cannot be C strings: in data they count as the
 * wrong type (so a label "a\0b" is a no-op); a task id holding one makes
 * the body undecodable. On FALSE, *op holds nothing to free. */
gboolean wsp_op_decode (const guint8 *body, gsize len, WspPeer author, WspOp *op);

/* Encodes a local op body. deps are the entries changed since the author's
 * previous op (sorted, without the author). For CREATE all eight fields are
 * written from op->fields; SET uses field/value; LABEL/DEP/COMMENT use text
 * (+ observed for removes). Returns a new GBytes. */
GBytes  *wsp_op_encode (const WspOp *op);

/* Checks that data is exactly one well-formed MessagePack value: every
 * container's declared count fits in the remaining bytes, containers nest
 * at most max_depth deep (a scalar is depth 0, [1] depth 1), every str is
 * valid UTF-8 (wsp_utf8_is_valid), no reserved bytes, no trailing bytes.
 * Run it before msgpack-c on untrusted bytes: msgpack-c sizes allocations
 * by declared counts and would otherwise try gigabytes for a 5-byte input. */
gboolean wsp_msgpack_check (const guint8 *data, gsize len, guint max_depth);

/* The packed bytes of sbuf as GBytes of exactly their size, and sbuf
 * emptied. msgpack-c's buffer starts at 8 KiB: handing it over as it is
 * would keep 8 KiB alive for every small op body or state blob. */
struct msgpack_sbuffer;
GBytes  *wsp_msgpack_sbuffer_take (struct msgpack_sbuffer *sbuf);

G_END_DECLS
