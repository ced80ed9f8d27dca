/* wsp-wire.c — codec of the peer-sync channel messages (SPEC 7.2, 7.3).
 *
 * Owns nothing long-lived; pure functions, any thread (the peer code calls
 * it on the main context, the fuzzer and unit tests directly).
 *
 * Invariants:
 * - Decoding is total: any byte string yields a message or a WSP_WIRE_ERROR
 *   naming the spec code to answer with, never a crash, abort or leak
 *   (fuzzed by fuzz/wire-fuzz.c).
 * - Memory is bounded by the 65,536-byte limit before anything is parsed:
 *   the size is checked first, wsp_msgpack_check() runs before msgpack-c (so
 *   no allocation is sized from a count the input cannot back), and a z
 *   frame's declared content size is checked before the decompressor runs.
 * - z is decompressed only after authentication: before it no z can be
 *   legal (z never wraps hello/auth/err), so unauthenticated peers never
 *   reach the zstd decoder.
 * - Encoding is deterministic and uses shortest forms (msgpack-c picks the
 *   smallest header for every int, str, bin, array and map); the encoder's
 *   output buffer refuses to grow past the message limit, so an oversized
 *   message fails without first being built in memory.
 * - A received run is measured by its own shortest encoding, computed from
 *   the decoded values (wsp_run_encoded_size), not by the bytes the sender
 *   happened to use, so every receiver reaches the same verdict.
 */
#include "sync/wsp-wire.h"

#include <string.h>
#include <msgpack.h>
#include <zstd.h>

G_DEFINE_QUARK (wsp-wire-error-quark, wsp_wire_error)

/* Containers nest: message map → runs array → run map → ops array; unknown
 * keys may carry deeper values, allowed up to this depth. */
#define MAX_DEPTH 16
#define ZSTD_LEVEL 3

/* ---- names ------------------------------------------------------------- */

static const char *const error_names[] = {
  [WSP_WIRE_ERROR_BAD_MESSAGE] = "bad_message",
  [WSP_WIRE_ERROR_TOO_LARGE] = "too_large",
  [WSP_WIRE_ERROR_VERSION] = "version",
  [WSP_WIRE_ERROR_WRONG_PROJECT] = "wrong_project",
  [WSP_WIRE_ERROR_BAD_HELLO] = "bad_hello",
  [WSP_WIRE_ERROR_AUTH_FAILED] = "auth_failed",
  [WSP_WIRE_ERROR_NOT_AUTHENTICATED] = "not_authenticated",
  [WSP_WIRE_ERROR_BAD_RUN] = "bad_run",
  [WSP_WIRE_ERROR_SHUTDOWN] = "shutdown",
  [WSP_WIRE_ERROR_INTERNAL] = "internal",
};

const char *
wsp_wire_error_to_string (WspWireError code)
{
  if ((guint) code >= G_N_ELEMENTS (error_names))
    return "internal";
  return error_names[code];
}

gboolean
wsp_wire_error_from_string (const char *s, WspWireError *out)
{
  if (s == NULL)
    return FALSE;
  for (guint i = 0; i < G_N_ELEMENTS (error_names); i++)
    if (strcmp (s, error_names[i]) == 0)
      {
        if (out != NULL)
          *out = (WspWireError) i;
        return TRUE;
      }
  return FALSE;
}

static const char *const type_names[] = {
  [WSP_MSG_UNKNOWN] = "unknown",
  [WSP_MSG_HELLO] = "hello",
  [WSP_MSG_AUTH] = "auth",
  [WSP_MSG_REQ] = "req",
  [WSP_MSG_OPS] = "ops",
  [WSP_MSG_ACK] = "ack",
  [WSP_MSG_PING] = "ping",
  [WSP_MSG_PONG] = "pong",
  [WSP_MSG_ERR] = "err",
};

const char *
wsp_msg_type_to_string (WspMsgType type)
{
  if ((guint) type >= G_N_ELEMENTS (type_names))
    return "unknown";
  return type_names[type];
}

/* ---- message lifecycle ------------------------------------------------- */

void
wsp_msg_init (WspMsg *m, WspMsgType type)
{
  memset (m, 0, sizeof *m);
  m->type = type;
  switch (type)
    {
    case WSP_MSG_HELLO:
      m->hello.v = WSP_WIRE_VERSION;
      wsp_clock_init (&m->hello.clock);
      break;
    case WSP_MSG_REQ:
      wsp_clock_init (&m->req.clock);
      break;
    case WSP_MSG_ACK:
      wsp_clock_init (&m->ack.clock);
      break;
    case WSP_MSG_OPS:
      m->ops.runs = g_ptr_array_new_with_free_func ((GDestroyNotify) wsp_run_free);
      wsp_clock_init (&m->ops.clock);
      break;
    case WSP_MSG_UNKNOWN:
    case WSP_MSG_AUTH:
    case WSP_MSG_PING:
    case WSP_MSG_PONG:
    case WSP_MSG_ERR:
    default:
      break;
    }
}

void
wsp_msg_clear (WspMsg *m)
{
  if (m == NULL)
    return;
  switch (m->type)
    {
    case WSP_MSG_HELLO:
      g_free (m->hello.project);
      wsp_clock_clear (&m->hello.clock);
      break;
    case WSP_MSG_REQ:
      wsp_clock_clear (&m->req.clock);
      break;
    case WSP_MSG_ACK:
      wsp_clock_clear (&m->ack.clock);
      break;
    case WSP_MSG_OPS:
      g_clear_pointer (&m->ops.runs, g_ptr_array_unref);
      wsp_clock_clear (&m->ops.clock);
      break;
    case WSP_MSG_ERR:
      g_free (m->err.code);
      g_free (m->err.msg);
      break;
    case WSP_MSG_UNKNOWN:
    case WSP_MSG_AUTH:
    case WSP_MSG_PING:
    case WSP_MSG_PONG:
    default:
      break;
    }
  memset (m, 0, sizeof *m);
}

/* ---- sizes ------------------------------------------------------------- */

/* Run sizes (SPEC 7.3) are the store's: wsp_run_encoded_size() in
 * wsp-store-export.c, which sizes the runs it exports; the decoder below
 * measures a received run with it. */

static gsize
bin_hdr_size (guint64 n)
{
  return n <= G_MAXUINT8 ? 2 : n <= G_MAXUINT16 ? 3 : 5;
}

/* ---- encoding ---------------------------------------------------------- */

/* A msgpack-c write target that never grows past limit bytes. */
typedef struct {
  GByteArray *buf;
  gsize       limit;
  gboolean    overflow;
} BoundedBuf;

static int
bounded_write (void *data, const char *bytes, size_t len)
{
  BoundedBuf *b = data;
  if (b->overflow || len > b->limit - b->buf->len)
    {
      b->overflow = TRUE;
      return -1;
    }
  g_byte_array_append (b->buf, (const guint8 *) bytes, (guint) len);
  return 0;
}

static void
pack_cstr (msgpack_packer *pk, const char *s)
{
  gsize len = strlen (s);
  msgpack_pack_str_with_body (pk, s, len);
}

static void
pack_bin (msgpack_packer *pk, const void *data, gsize len)
{
  msgpack_pack_bin_with_body (pk, data, len);
}

static void
pack_clock (msgpack_packer *pk, const WspClock *clock)
{
  char hex[WSP_PEER_HEX_LEN + 1];

  msgpack_pack_map (pk, clock->len);
  for (guint i = 0; i < clock->len; i++)
    {
      wsp_peer_to_hex (clock->dots[i].peer, hex);
      msgpack_pack_str_with_body (pk, hex, WSP_PEER_HEX_LEN);
      msgpack_pack_uint64 (pk, clock->dots[i].seq);
    }
}

static void
pack_run (msgpack_packer *pk, const WspRun *run)
{
  char hex[WSP_PEER_HEX_LEN + 1];

  wsp_peer_to_hex (run->peer, hex);
  msgpack_pack_map (pk, 5);
  pack_cstr (pk, "peer");
  msgpack_pack_str_with_body (pk, hex, WSP_PEER_HEX_LEN);
  pack_cstr (pk, "pk");
  pack_bin (pk, run->pk, WSP_PK_LEN);
  pack_cstr (pk, "from");
  msgpack_pack_uint64 (pk, run->from);
  pack_cstr (pk, "ops");
  msgpack_pack_array (pk, run->ops->len);
  for (guint i = 0; i < run->ops->len; i++)
    {
      gsize len;
      const void *body = g_bytes_get_data (g_ptr_array_index (run->ops, i), &len);
      pack_bin (pk, body, len);
    }
  pack_cstr (pk, "sig");
  pack_bin (pk, run->sig, WSP_SIG_LEN);
}

static gboolean
text_ok (const char *s)
{
  return s != NULL && wsp_utf8_is_valid (s, strlen (s));
}

/* What a receiver would refuse in a run, checked before sending it. */
static gboolean
run_check (const WspRun *run, guint index, GError **error)
{
  guint n = run->ops != NULL ? run->ops->len : 0;
  gsize size;

  if (run->from == 0 || n == 0 || run->from - 1 > (guint64) G_MAXINT64 - n)
    {
      g_set_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_BAD_RUN,
                   "run %u: needs from >= 1 and at least one op", index);
      return FALSE;
    }
  if (wsp_peer_from_pk (run->pk) != run->peer)
    {
      g_set_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_BAD_RUN,
                   "run %u: pk does not match peer", index);
      return FALSE;
    }
  size = wsp_run_encoded_size (run);
  if (size > WSP_WIRE_MAX_RUN)
    {
      g_set_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_BAD_RUN,
                   "run %u: encodes to %" G_GSIZE_FORMAT " bytes, over %d", index, size,
                   WSP_WIRE_MAX_RUN);
      return FALSE;
    }
  return TRUE;
}

/* Packs m (not z) into b. Checks what a receiver would refuse. */
static gboolean
pack_msg (msgpack_packer *pk, const WspMsg *m, GError **error)
{
  char hex[WSP_PEER_HEX_LEN + 1];

  switch (m->type)
    {
    case WSP_MSG_HELLO:
      if (!text_ok (m->hello.project) || m->hello.project[0] == '\0')
        break;
      wsp_peer_to_hex (m->hello.peer, hex);
      msgpack_pack_map (pk, 7);
      pack_cstr (pk, "t");
      pack_cstr (pk, "hello");
      pack_cstr (pk, "v");
      msgpack_pack_uint64 (pk, m->hello.v);
      pack_cstr (pk, "peer");
      msgpack_pack_str_with_body (pk, hex, WSP_PEER_HEX_LEN);
      pack_cstr (pk, "project");
      pack_cstr (pk, m->hello.project);
      pack_cstr (pk, "pk");
      pack_bin (pk, m->hello.pk, WSP_PK_LEN);
      pack_cstr (pk, "nonce");
      pack_bin (pk, m->hello.nonce, WSP_WIRE_NONCE_LEN);
      pack_cstr (pk, "clock");
      pack_clock (pk, &m->hello.clock);
      return TRUE;
    case WSP_MSG_AUTH:
      msgpack_pack_map (pk, 3);
      pack_cstr (pk, "t");
      pack_cstr (pk, "auth");
      pack_cstr (pk, "mac");
      pack_bin (pk, m->auth.mac, WSP_WIRE_MAC_LEN);
      pack_cstr (pk, "sig");
      pack_bin (pk, m->auth.sig, WSP_SIG_LEN);
      return TRUE;
    case WSP_MSG_REQ:
    case WSP_MSG_ACK:
      msgpack_pack_map (pk, 2);
      pack_cstr (pk, "t");
      pack_cstr (pk, wsp_msg_type_to_string (m->type));
      pack_cstr (pk, "clock");
      pack_clock (pk, m->type == WSP_MSG_REQ ? &m->req.clock : &m->ack.clock);
      return TRUE;
    case WSP_MSG_OPS:
      {
        guint n = m->ops.runs != NULL ? m->ops.runs->len : 0;
        for (guint i = 0; i < n; i++)
          if (!run_check (g_ptr_array_index (m->ops.runs, i), i, error))
            return FALSE;
        msgpack_pack_map (pk, 3);
        pack_cstr (pk, "t");
        pack_cstr (pk, "ops");
        pack_cstr (pk, "runs");
        msgpack_pack_array (pk, n);
        for (guint i = 0; i < n; i++)
          pack_run (pk, g_ptr_array_index (m->ops.runs, i));
        pack_cstr (pk, "clock");
        pack_clock (pk, &m->ops.clock);
        return TRUE;
      }
    case WSP_MSG_PING:
    case WSP_MSG_PONG:
      msgpack_pack_map (pk, 2);
      pack_cstr (pk, "t");
      pack_cstr (pk, wsp_msg_type_to_string (m->type));
      pack_cstr (pk, "n");
      msgpack_pack_uint64 (pk, m->type == WSP_MSG_PING ? m->ping.n : m->pong.n);
      return TRUE;
    case WSP_MSG_ERR:
      if (!text_ok (m->err.code) || (m->err.msg != NULL && !text_ok (m->err.msg)))
        break;
      msgpack_pack_map (pk, 3);
      pack_cstr (pk, "t");
      pack_cstr (pk, "err");
      pack_cstr (pk, "code");
      pack_cstr (pk, m->err.code);
      pack_cstr (pk, "msg");
      pack_cstr (pk, m->err.msg != NULL ? m->err.msg : "");
      return TRUE;
    case WSP_MSG_UNKNOWN:
    default:
      break;
    }
  g_set_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_INTERNAL,
               "cannot encode %s message: missing or invalid field", wsp_msg_type_to_string (m->type));
  return FALSE;
}

static GBytes *
byte_array_to_bytes (GByteArray *buf)
{
  return g_byte_array_free_to_bytes (buf);
}

/* {"t":"z","d":<frame>} when that is smaller than plain; NULL otherwise. */
static GBytes *
try_compress (const guint8 *plain, gsize plain_len)
{
  gsize cap = ZSTD_compressBound (plain_len);
  g_autofree guint8 *frame = g_malloc (cap);
  gsize flen = ZSTD_compress (frame, cap, plain, plain_len, ZSTD_LEVEL);
  msgpack_packer pk;
  BoundedBuf b;

  if (ZSTD_isError (flen))
    return NULL;
  /* fixmap(2) "t" "z" "d" + bin header + frame */
  if (1 + 2 + 2 + 2 + bin_hdr_size (flen) + flen >= plain_len)
    return NULL;
  b = (BoundedBuf) { g_byte_array_sized_new (8 + flen), WSP_WIRE_MAX_MESSAGE, FALSE };
  msgpack_packer_init (&pk, &b, bounded_write);
  msgpack_pack_map (&pk, 2);
  pack_cstr (&pk, "t");
  pack_cstr (&pk, "z");
  pack_cstr (&pk, "d");
  pack_bin (&pk, frame, flen);
  g_assert (!b.overflow);   /* smaller than plain, which fit */
  return byte_array_to_bytes (b.buf);
}

GBytes *
wsp_msg_encode (const WspMsg *m, gboolean compress, GError **error)
{
  msgpack_packer pk;
  BoundedBuf b = { g_byte_array_new (), WSP_WIRE_MAX_MESSAGE, FALSE };
  g_autoptr (GBytes) plain = NULL;

  msgpack_packer_init (&pk, &b, bounded_write);
  if (!pack_msg (&pk, m, error))
    {
      g_byte_array_unref (b.buf);
      return NULL;
    }
  if (b.overflow)
    {
      g_byte_array_unref (b.buf);
      g_set_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_TOO_LARGE,
                   "%s message exceeds %d bytes", wsp_msg_type_to_string (m->type),
                   WSP_WIRE_MAX_MESSAGE);
      return NULL;
    }
  plain = byte_array_to_bytes (b.buf);
  if (compress && m->type != WSP_MSG_HELLO && m->type != WSP_MSG_AUTH && m->type != WSP_MSG_ERR)
    {
      gsize len;
      const guint8 *data = g_bytes_get_data (plain, &len);
      GBytes *z = try_compress (data, len);
      if (z != NULL)
        return z;
    }
  return g_steal_pointer (&plain);
}

/* ---- decoding ---------------------------------------------------------- */

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (msgpack_unpacked, msgpack_unpacked_destroy)

G_GNUC_PRINTF (3, 4) static gboolean
fail (GError **error, WspWireError code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error_literal (error, WSP_WIRE_ERROR, code, msg);
  return FALSE;
}

/* Parses exactly one MessagePack value into up (initialised by caller). */
static gboolean
parse_one (const guint8 *data, gsize len, msgpack_unpacked *up)
{
  size_t off = 0;
  return wsp_msgpack_check (data, len, MAX_DEPTH)
         && msgpack_unpack_next (up, (const char *) data, len, &off) == MSGPACK_UNPACK_SUCCESS
         && off == len;
}

static gboolean
str_is (const msgpack_object *o, const char *s)
{
  gsize n = strlen (s);
  return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n && memcmp (o->via.str.ptr, s, n) == 0;
}

typedef struct {
  const char           *name;
  const msgpack_object *val;   /* NULL when absent */
} Field;

/* Finds the named keys of a map. Unknown (and non-str) keys are ignored; a
 * known key given twice makes the map invalid. */
static gboolean
collect (const msgpack_object *map, Field *fields, guint n_fields)
{
  if (map->type != MSGPACK_OBJECT_MAP)
    return FALSE;
  for (guint f = 0; f < n_fields; f++)
    fields[f].val = NULL;
  for (guint32 i = 0; i < map->via.map.size; i++)
    {
      const msgpack_object_kv *kv = &map->via.map.ptr[i];
      for (guint f = 0; f < n_fields; f++)
        if (str_is (&kv->key, fields[f].name))
          {
            if (fields[f].val != NULL)
              return FALSE;
            fields[f].val = &kv->val;
            break;
          }
    }
  return TRUE;
}

static gboolean
get_bin (const msgpack_object *o, guint8 *out, gsize len)
{
  if (o == NULL || o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != len)
    return FALSE;
  memcpy (out, o->via.bin.ptr, len);
  return TRUE;
}

static gboolean
get_uint (const msgpack_object *o, guint64 *out)
{
  if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return FALSE;
  *out = o->via.u64;
  return TRUE;
}

static gboolean
get_peer (const msgpack_object *o, WspPeer *out)
{
  return o != NULL && o->type == MSGPACK_OBJECT_STR
         && wsp_peer_from_hex (o->via.str.ptr, o->via.str.size, out);
}

/* A C string copy of a str (already UTF-8 checked); NULL when o is not a
 * str or holds U+0000. */
static char *
get_text (const msgpack_object *o)
{
  if (o == NULL || o->type != MSGPACK_OBJECT_STR || memchr (o->via.str.ptr, 0, o->via.str.size) != NULL)
    return NULL;
  return g_strndup (o->via.str.ptr, o->via.str.size);
}

static int
dot_cmp (gconstpointer a, gconstpointer b)
{
  const WspDot *x = a, *y = b;
  return x->peer < y->peer ? -1 : x->peer > y->peer;
}

static gboolean
get_clock (const msgpack_object *o, WspClock *out, GError **error)
{
  g_autofree WspDot *dots = NULL;
  guint32 n;

  if (o == NULL || o->type != MSGPACK_OBJECT_MAP)
    return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "clock: expected a map");
  n = o->via.map.size;
  dots = g_new (WspDot, n ? n : 1);
  for (guint32 i = 0; i < n; i++)
    {
      const msgpack_object_kv *kv = &o->via.map.ptr[i];
      if (!get_peer (&kv->key, &dots[i].peer))
        return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "clock: key %u is not a peer id", i);
      if (!get_uint (&kv->val, &dots[i].seq) || dots[i].seq > (guint64) G_MAXINT64)
        return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "clock: value %u is not a seq", i);
    }
  /* Sorted, the clock builds by appending, and duplicates are neighbours. */
  qsort (dots, n, sizeof *dots, dot_cmp);
  for (guint32 i = 0; i + 1 < n; i++)
    if (dots[i].peer == dots[i + 1].peer)
      return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "clock: duplicate peer");
  for (guint32 i = 0; i < n; i++)
    if (dots[i].seq > 0)
      wsp_clock_set (out, dots[i].peer, dots[i].seq);
  return TRUE;
}

static WspRun *
get_run (const msgpack_object *o, guint index, GError **error)
{
  Field f[] = { { "peer", NULL }, { "pk", NULL }, { "from", NULL }, { "ops", NULL }, { "sig", NULL } };
  g_autoptr (WspRun) run = wsp_run_new ();
  const msgpack_object *ops;
  gsize size;

  if (!collect (o, f, G_N_ELEMENTS (f)))
    return fail (error, WSP_WIRE_ERROR_BAD_RUN, "run %u: expected a map with unique keys", index), NULL;
  if (!get_peer (f[0].val, &run->peer) || !get_bin (f[1].val, run->pk, WSP_PK_LEN)
      || !get_uint (f[2].val, &run->from) || !get_bin (f[4].val, run->sig, WSP_SIG_LEN))
    return fail (error, WSP_WIRE_ERROR_BAD_RUN, "run %u: missing or mistyped peer, pk, from or sig",
                 index), NULL;
  ops = f[3].val;
  if (ops == NULL || ops->type != MSGPACK_OBJECT_ARRAY || ops->via.array.size == 0)
    return fail (error, WSP_WIRE_ERROR_BAD_RUN, "run %u: ops must be a non-empty array", index), NULL;
  /* The last seq, from + n - 1, stays below 2^63 like every seq. */
  if (run->from == 0 || run->from - 1 > (guint64) G_MAXINT64 - ops->via.array.size)
    return fail (error, WSP_WIRE_ERROR_BAD_RUN, "run %u: from out of range", index), NULL;
  for (guint32 i = 0; i < ops->via.array.size; i++)
    {
      const msgpack_object *b = &ops->via.array.ptr[i];
      if (b->type != MSGPACK_OBJECT_BIN)
        return fail (error, WSP_WIRE_ERROR_BAD_RUN, "run %u: op %u is not bin", index, i), NULL;
      g_ptr_array_add (run->ops, g_bytes_new (b->via.bin.ptr, b->via.bin.size));
    }
  /* Measured from the decoded values, as the sender sized it. */
  size = wsp_run_encoded_size (run);
  if (size > WSP_WIRE_MAX_RUN)
    return fail (error, WSP_WIRE_ERROR_BAD_RUN, "run %u: encodes to %" G_GSIZE_FORMAT " bytes, over %d",
                 index, size, WSP_WIRE_MAX_RUN), NULL;
  if (wsp_peer_from_pk (run->pk) != run->peer)
    return fail (error, WSP_WIRE_ERROR_BAD_RUN, "run %u: pk does not match peer", index), NULL;
  return g_steal_pointer (&run);
}

static WspMsgType
type_from_object (const msgpack_object *t)
{
  for (guint i = WSP_MSG_HELLO; i < G_N_ELEMENTS (type_names); i++)
    if (str_is (t, type_names[i]))
      return (WspMsgType) i;
  return WSP_MSG_UNKNOWN;
}

/* Decodes the fields of a message of a known type into out (already
 * wsp_msg_init'ed with that type). */
static gboolean
decode_fields (const msgpack_object *map, WspMsg *out, GError **error)
{
  switch (out->type)
    {
    case WSP_MSG_HELLO:
      {
        Field f[] = { { "v", NULL }, { "peer", NULL }, { "project", NULL },
                      { "pk", NULL }, { "nonce", NULL }, { "clock", NULL } };
        if (!collect (map, f, G_N_ELEMENTS (f)))
          return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "%s: a key is given twice",
                       wsp_msg_type_to_string (out->type));
        /* The version first: another version's hello may differ in every
         * other field. */
        if (f[0].val == NULL || (f[0].val->type != MSGPACK_OBJECT_POSITIVE_INTEGER
                                 && f[0].val->type != MSGPACK_OBJECT_NEGATIVE_INTEGER))
          return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "hello: v must be an integer");
        if (f[0].val->type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[0].val->via.u64 != WSP_WIRE_VERSION)
          return fail (error, WSP_WIRE_ERROR_VERSION, "hello: unsupported protocol version");
        out->hello.v = f[0].val->via.u64;
        if (!get_peer (f[1].val, &out->hello.peer))
          return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "hello: peer must be a 16-hex peer id");
        out->hello.project = get_text (f[2].val);
        if (out->hello.project == NULL || out->hello.project[0] == '\0')
          return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "hello: project must be a non-empty str");
        if (!get_bin (f[3].val, out->hello.pk, WSP_PK_LEN))
          return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "hello: pk must be bin 32");
        if (!get_bin (f[4].val, out->hello.nonce, WSP_WIRE_NONCE_LEN))
          return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "hello: nonce must be bin 32");
        if (!get_clock (f[5].val, &out->hello.clock, error))
          return g_prefix_error (error, "hello: "), FALSE;
        if (wsp_peer_from_pk (out->hello.pk) != out->hello.peer)
          return fail (error, WSP_WIRE_ERROR_BAD_HELLO, "hello: peer is not the id of pk");
        return TRUE;
      }
    case WSP_MSG_AUTH:
      {
        Field f[] = { { "mac", NULL }, { "sig", NULL } };
        if (!collect (map, f, G_N_ELEMENTS (f)))
          return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "%s: a key is given twice",
                       wsp_msg_type_to_string (out->type));
        if (!get_bin (f[0].val, out->auth.mac, WSP_WIRE_MAC_LEN)
            || !get_bin (f[1].val, out->auth.sig, WSP_SIG_LEN))
          return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "auth: mac must be bin 32 and sig bin 64");
        return TRUE;
      }
    case WSP_MSG_REQ:
    case WSP_MSG_ACK:
      {
        Field f[] = { { "clock", NULL } };
        if (!collect (map, f, G_N_ELEMENTS (f)))
          return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "%s: a key is given twice",
                       wsp_msg_type_to_string (out->type));
        if (!get_clock (f[0].val, out->type == WSP_MSG_REQ ? &out->req.clock : &out->ack.clock, error))
          return g_prefix_error (error, "%s: ", wsp_msg_type_to_string (out->type)), FALSE;
        return TRUE;
      }
    case WSP_MSG_OPS:
      {
        Field f[] = { { "runs", NULL }, { "clock", NULL } };
        const msgpack_object *runs;
        if (!collect (map, f, G_N_ELEMENTS (f)))
          return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "%s: a key is given twice",
                       wsp_msg_type_to_string (out->type));
        runs = f[0].val;
        if (runs == NULL || runs->type != MSGPACK_OBJECT_ARRAY)
          return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "ops: runs must be an array");
        if (!get_clock (f[1].val, &out->ops.clock, error))
          return g_prefix_error (error, "ops: "), FALSE;
        for (guint32 i = 0; i < runs->via.array.size; i++)
          {
            WspRun *run = get_run (&runs->via.array.ptr[i], i, error);
            if (run == NULL)
              return FALSE;
            g_ptr_array_add (out->ops.runs, run);
          }
        return TRUE;
      }
    case WSP_MSG_PING:
    case WSP_MSG_PONG:
      {
        Field f[] = { { "n", NULL } };
        if (!collect (map, f, G_N_ELEMENTS (f)))
          return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "%s: a key is given twice",
                       wsp_msg_type_to_string (out->type));
        if (!get_uint (f[0].val, out->type == WSP_MSG_PING ? &out->ping.n : &out->pong.n))
          return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "%s: n must be an unsigned integer",
                       wsp_msg_type_to_string (out->type));
        return TRUE;
      }
    case WSP_MSG_ERR:
      {
        Field f[] = { { "code", NULL }, { "msg", NULL } };
        if (!collect (map, f, G_N_ELEMENTS (f)))
          return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "%s: a key is given twice",
                       wsp_msg_type_to_string (out->type));
        out->err.code = get_text (f[0].val);
        out->err.msg = f[1].val != NULL ? get_text (f[1].val) : g_strdup ("");
        if (out->err.code == NULL || out->err.msg == NULL)
          return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "err: code and msg must be str");
        return TRUE;
      }
    case WSP_MSG_UNKNOWN:
    default:
      return fail (error, WSP_WIRE_ERROR_INTERNAL, "unreachable");
    }
}

/* Decodes a parsed message map. in_z: it came out of a z frame. */
static gboolean
decode_map (const msgpack_object *map, gboolean authenticated, gboolean in_z,
            WspMsg *out, GError **error)
{
  Field f[] = { { "t", NULL } };
  WspMsgType type;

  if (!collect (map, f, 1) || f[0].val == NULL || f[0].val->type != MSGPACK_OBJECT_STR)
    return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "expected a map with one str key t");
  type = type_from_object (f[0].val);
  if (type == WSP_MSG_UNKNOWN)
    {
      if (str_is (f[0].val, "z"))
        return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "z does not nest");
      if (!authenticated)
        return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "unknown message type before authentication");
      wsp_msg_init (out, WSP_MSG_UNKNOWN);
      return TRUE;
    }
  if (in_z && (type == WSP_MSG_HELLO || type == WSP_MSG_AUTH || type == WSP_MSG_ERR))
    return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "z must not wrap %s", wsp_msg_type_to_string (type));
  if (!authenticated && type != WSP_MSG_HELLO && type != WSP_MSG_AUTH && type != WSP_MSG_ERR)
    return fail (error, WSP_WIRE_ERROR_NOT_AUTHENTICATED, "%s before authentication",
                 wsp_msg_type_to_string (type));
  wsp_msg_init (out, type);
  if (!decode_fields (map, out, error))
    {
      wsp_msg_clear (out);
      return FALSE;
    }
  return TRUE;
}

/* Decompresses the d of a z after checking its declared size; returns the
 * content (NULL on error). */
static guint8 *
z_content (const msgpack_object *d, gsize *out_len, GError **error)
{
  unsigned long long declared;
  g_autofree guint8 *buf = NULL;
  gsize n;

  if (d == NULL || d->type != MSGPACK_OBJECT_BIN)
    return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "z: d must be bin"), NULL;
  declared = ZSTD_getFrameContentSize (d->via.bin.ptr, d->via.bin.size);
  if (declared == ZSTD_CONTENTSIZE_ERROR)
    return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "z: d is not a zstd frame"), NULL;
  if (declared == ZSTD_CONTENTSIZE_UNKNOWN)
    return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "z: frame has no content size"), NULL;
  if (declared > WSP_WIRE_MAX_MESSAGE)
    return fail (error, WSP_WIRE_ERROR_TOO_LARGE, "z: content of %llu bytes exceeds %d", declared,
                 WSP_WIRE_MAX_MESSAGE), NULL;
  if (declared == 0)
    return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "z: empty content"), NULL;
  if (ZSTD_findFrameCompressedSize (d->via.bin.ptr, d->via.bin.size) != d->via.bin.size)
    return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "z: d must hold exactly one frame"), NULL;
  if (ZSTD_getDictID_fromFrame (d->via.bin.ptr, d->via.bin.size) != 0)
    return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "z: frame needs a dictionary"), NULL;
  buf = g_malloc (declared);
  /* The output buffer is exactly the declared size: content that would be
   * larger fails with dstSize_tooSmall, smaller fails zstd's own check. */
  n = ZSTD_decompress (buf, declared, d->via.bin.ptr, d->via.bin.size);
  if (ZSTD_isError (n) || n != declared)
    return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "z: frame does not decompress to its declared size"),
           NULL;
  *out_len = n;
  return g_steal_pointer (&buf);
}

gboolean
wsp_msg_decode (const guint8 *data, gsize len, gboolean authenticated, WspMsg *out, GError **error)
{
  g_auto (msgpack_unpacked) up;
  Field f[] = { { "t", NULL }, { "d", NULL } };

  msgpack_unpacked_init (&up);
  memset (out, 0, sizeof *out);
  if (len > WSP_WIRE_MAX_MESSAGE)
    return fail (error, WSP_WIRE_ERROR_TOO_LARGE, "message of %" G_GSIZE_FORMAT " bytes exceeds %d",
                 len, WSP_WIRE_MAX_MESSAGE);
  if (data == NULL || !parse_one (data, len, &up))
    return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "not one well-formed MessagePack value");
  if (!collect (&up.data, f, G_N_ELEMENTS (f)) || f[0].val == NULL)
    return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "expected a map with one key t");
  if (str_is (f[0].val, "z"))
    {
      g_auto (msgpack_unpacked) inner;
      g_autofree guint8 *content = NULL;
      gsize content_len = 0;

      msgpack_unpacked_init (&inner);
      if (!authenticated)
        return fail (error, WSP_WIRE_ERROR_NOT_AUTHENTICATED, "z before authentication");
      content = z_content (f[1].val, &content_len, error);
      if (content == NULL)
        return FALSE;
      if (!parse_one (content, content_len, &inner))
        return fail (error, WSP_WIRE_ERROR_BAD_MESSAGE, "z: content is not one well-formed MessagePack value");
      return decode_map (&inner.data, authenticated, TRUE, out, error);
    }
  return decode_map (&up.data, authenticated, FALSE, out, error);
}
