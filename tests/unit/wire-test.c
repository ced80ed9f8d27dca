/* wire-test.c — channel message codec (SPEC 7.2, 7.3): exact bytes of small
 * encodings, round trips of every message (plain and z), and every
 * rejection with the spec error code it maps to.
 *
 * Hostile inputs are built by hand with msgpack-c (Builder below) so that
 * they can break rules the encoder refuses to break.
 */
#include <glib.h>
#include <string.h>
#include <msgpack.h>
#include <zstd.h>

#include "sync/wsp-wire.h"

/* ---- helpers ------------------------------------------------------------ */

typedef struct {
  msgpack_sbuffer sb;
  msgpack_packer  pk;
} Builder;

static Builder *
builder_new (void)
{
  Builder *b = g_new0 (Builder, 1);
  msgpack_sbuffer_init (&b->sb);
  msgpack_packer_init (&b->pk, &b->sb, msgpack_sbuffer_write);
  return b;
}

static GBytes *
builder_finish (Builder *b)
{
  GBytes *out = g_bytes_new (b->sb.data, b->sb.size);
  msgpack_sbuffer_destroy (&b->sb);
  g_free (b);
  return out;
}

static void
str (Builder *b, const char *s)
{
  msgpack_pack_str_with_body (&b->pk, s, strlen (s));
}

static void
bin (Builder *b, const void *data, gsize len)
{
  msgpack_pack_bin_with_body (&b->pk, data, len);
}

static void
identity (WspIdentity *id, guint8 fill)
{
  guint8 seed[32];
  memset (seed, fill, sizeof seed);
  wsp_identity_from_seed (id, seed);
}

static WspRun *
make_run (const WspIdentity *id, guint64 from, guint n, gsize body_len)
{
  WspRun *run = wsp_run_new ();
  run->peer = id->peer;
  memcpy (run->pk, id->pk, 32);
  run->from = from;
  for (guint i = 0; i < n; i++)
    {
      g_autofree guint8 *body = g_malloc (body_len);
      for (gsize k = 0; k < body_len; k++)
        body[k] = (guint8) ("abcdefgh"[k % 8] + i);
      g_ptr_array_add (run->ops, g_bytes_new (body, body_len));
    }
  memset (run->sig, 0x5a, sizeof run->sig);
  return run;
}

static void
assert_bytes (GBytes *b, const char *hex)
{
  g_autofree char *got = NULL;
  gsize len;
  const guint8 *d = g_bytes_get_data (b, &len);
  GString *s = g_string_new (NULL);
  for (gsize i = 0; i < len; i++)
    g_string_append_printf (s, "%s%02x", i ? " " : "", d[i]);
  got = g_string_free (s, FALSE);
  g_assert_cmpstr (got, ==, hex);
}

static void
decode_ok (GBytes *b, gboolean authenticated, WspMsg *out)
{
  g_autoptr (GError) error = NULL;
  gsize len;
  const guint8 *d = g_bytes_get_data (b, &len);
  g_assert_true (wsp_msg_decode (d, len, authenticated, out, &error));
  g_assert_no_error (error);
}

static void
decode_fails (GBytes *b, gboolean authenticated, WspWireError code)
{
  g_autoptr (GError) error = NULL;
  WspMsg m;
  gsize len;
  const guint8 *d = g_bytes_get_data (b, &len);
  memset (&m, 0xab, sizeof m);
  g_assert_false (wsp_msg_decode (d, len, authenticated, &m, &error));
  g_assert_error (error, WSP_WIRE_ERROR, (gint) code);
  /* Nothing to free, and clearing is harmless. */
  g_assert_cmpint (m.type, ==, WSP_MSG_UNKNOWN);
  wsp_msg_clear (&m);
}

/* Encode, check it decodes, and return the decoded message. */
static void
round_trip (const WspMsg *m, gboolean compress, WspMsg *out)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) b = wsp_msg_encode (m, compress, &error);
  g_assert_no_error (error);
  g_assert_nonnull (b);
  decode_ok (b, TRUE, out);
  g_assert_cmpint (out->type, ==, m->type);
}

static gboolean
is_z (GBytes *b)
{
  /* fixmap(2) "t" "z" */
  static const guint8 z[] = { 0x82, 0xa1, 0x74, 0xa1, 0x7a };
  return g_bytes_get_size (b) > sizeof z && memcmp (g_bytes_get_data (b, NULL), z, sizeof z) == 0;
}

static GBytes *
z_wrap (const void *frame, gsize len)
{
  Builder *b = builder_new ();
  msgpack_pack_map (&b->pk, 2);
  str (b, "t");
  str (b, "z");
  str (b, "d");
  bin (b, frame, len);
  return builder_finish (b);
}

static GBytes *
z_of (GBytes *content)
{
  gsize len, cap, n;
  const guint8 *d = g_bytes_get_data (content, &len);
  g_autofree guint8 *frame = g_malloc (cap = ZSTD_compressBound (len));
  n = ZSTD_compress (frame, cap, d, len, 3);
  g_assert_false (ZSTD_isError (n));
  return z_wrap (frame, n);
}

static GBytes *
encode (const WspMsg *m)
{
  g_autoptr (GError) error = NULL;
  GBytes *b = wsp_msg_encode (m, FALSE, &error);
  g_assert_no_error (error);
  return b;
}

/* ---- exact bytes -------------------------------------------------------- */

static void
test_bytes_ping (void)
{
  WspMsg m;
  g_autoptr (GBytes) b = NULL, c = NULL, d = NULL;

  wsp_msg_init (&m, WSP_MSG_PING);
  m.ping.n = 1;
  b = encode (&m);
  assert_bytes (b, "82 a1 74 a4 70 69 6e 67 a1 6e 01");
  /* Compression never makes this smaller: stays plain. */
  c = wsp_msg_encode (&m, TRUE, NULL);
  g_assert_true (g_bytes_equal (b, c));
  m.type = WSP_MSG_PONG;
  m.pong.n = 300;   /* uint16: cd 01 2c */
  d = encode (&m);
  assert_bytes (d, "82 a1 74 a4 70 6f 6e 67 a1 6e cd 01 2c");
}

static void
test_bytes_ack (void)
{
  WspMsg m;
  g_autoptr (GBytes) b = NULL;

  wsp_msg_init (&m, WSP_MSG_ACK);
  wsp_clock_set (&m.ack.clock, G_GUINT64_CONSTANT (0x00000000000000ff), 5);
  wsp_clock_set (&m.ack.clock, G_GUINT64_CONSTANT (0x0000000000000001), 200);
  b = encode (&m);
  /* {"t":"ack","clock":{"0000000000000001":200,"00000000000000ff":5}}:
   * clock keys sorted, 200 as uint8 (cc c8). */
  assert_bytes (b, "82 a1 74 a3 61 63 6b a5 63 6c 6f 63 6b 82"
                   " b0 30 30 30 30 30 30 30 30 30 30 30 30 30 30 30 31 cc c8"
                   " b0 30 30 30 30 30 30 30 30 30 30 30 30 30 30 66 66 05");
  wsp_msg_clear (&m);
}

static void
test_bytes_err_auth (void)
{
  WspMsg m;
  g_autoptr (GBytes) b = NULL, a = NULL;
  GString *want;
  g_autofree char *want_s = NULL;

  wsp_msg_init (&m, WSP_MSG_ERR);
  m.err.code = g_strdup ("version");
  m.err.msg = g_strdup ("");
  b = encode (&m);
  assert_bytes (b, "83 a1 74 a3 65 72 72 a4 63 6f 64 65 a7 76 65 72 73 69 6f 6e a3 6d 73 67 a0");
  wsp_msg_clear (&m);

  wsp_msg_init (&m, WSP_MSG_AUTH);
  memset (m.auth.mac, 0x01, 32);
  memset (m.auth.sig, 0x02, 64);
  a = encode (&m);
  /* {"t":"auth","mac":bin8(32),"sig":bin8(64)} */
  want = g_string_new ("83 a1 74 a4 61 75 74 68 a3 6d 61 63 c4 20");
  for (int i = 0; i < 32; i++)
    g_string_append (want, " 01");
  g_string_append (want, " a3 73 69 67 c4 40");
  for (int i = 0; i < 64; i++)
    g_string_append (want, " 02");
  want_s = g_string_free (want, FALSE);
  assert_bytes (a, want_s);
}

static void
test_bytes_run (void)
{
  WspIdentity id;
  WspMsg m;
  g_autoptr (GBytes) b = NULL;
  gsize len;
  const guint8 *d;
  char hex[17];
  static const guint8 run_hdr[] = { 0x85, 0xa4, 'p', 'e', 'e', 'r', 0xb0 };

  identity (&id, 3);
  wsp_msg_init (&m, WSP_MSG_OPS);
  g_ptr_array_add (m.ops.runs, make_run (&id, 1, 1, 3));
  b = encode (&m);
  d = g_bytes_get_data (b, &len);
  /* 83 "t" "ops" "runs" 91 <run> "clock" 80: 20 bytes around the run. */
  g_assert_cmpuint (len, ==, 20 + wsp_run_encoded_size (g_ptr_array_index (m.ops.runs, 0)));
  g_assert_cmpuint (wsp_run_encoded_size (g_ptr_array_index (m.ops.runs, 0)), ==, 139 + 1 + 1 + 2 + 3);
  g_assert_cmpmem (d, 12, "\x83\xa1t\xa3ops\xa4runs", 12);
  g_assert_cmpuint (d[12], ==, 0x91);
  g_assert_cmpmem (d + 13, sizeof run_hdr, run_hdr, sizeof run_hdr);
  wsp_peer_to_hex (id.peer, hex);
  g_assert_cmpmem (d + 20, 16, hex, 16);
  /* "pk" bin8 32 */
  g_assert_cmpmem (d + 36, 5, "\xa2pk\xc4\x20", 5);
  /* "from" 1, "ops" [bin8 3 "abc"] */
  g_assert_cmpmem (d + 73, 16, "\xa4" "from\x01\xa3ops\x91\xc4\x03" "abc", 16);
  g_assert_cmpmem (d + 89, 6, "\xa3sig\xc4\x40", 6);
  g_assert_cmpmem (d + len - 7, 7, "\xa5" "clock\x80", 7);
  wsp_msg_clear (&m);
}

/* ---- round trips -------------------------------------------------------- */

static void
test_round_trip_all (void)
{
  WspIdentity a, b;
  identity (&a, 1);
  identity (&b, 2);

  for (int compress = 0; compress <= 1; compress++)
    {
      WspMsg m, out;

      wsp_msg_init (&m, WSP_MSG_HELLO);
      m.hello.peer = a.peer;
      m.hello.project = g_strdup ("k3jrxaq2mzk3jrxaq2mzk3jrxa");
      memcpy (m.hello.pk, a.pk, 32);
      memset (m.hello.nonce, 0x77, 32);
      wsp_clock_set (&m.hello.clock, a.peer, 42);
      wsp_clock_set (&m.hello.clock, b.peer, G_GUINT64_CONSTANT (1) << 40);
      round_trip (&m, compress, &out);
      g_assert_cmpuint (out.hello.v, ==, 1);
      g_assert_cmpuint (out.hello.peer, ==, a.peer);
      g_assert_cmpstr (out.hello.project, ==, m.hello.project);
      g_assert_cmpmem (out.hello.pk, 32, a.pk, 32);
      g_assert_cmpmem (out.hello.nonce, 32, m.hello.nonce, 32);
      g_assert_true (wsp_clock_equal (&out.hello.clock, &m.hello.clock));
      wsp_msg_clear (&out);
      wsp_msg_clear (&m);

      wsp_msg_init (&m, WSP_MSG_AUTH);
      for (int i = 0; i < 32; i++)
        m.auth.mac[i] = (guint8) i;
      for (int i = 0; i < 64; i++)
        m.auth.sig[i] = (guint8) (255 - i);
      round_trip (&m, compress, &out);
      g_assert_cmpmem (out.auth.mac, 32, m.auth.mac, 32);
      g_assert_cmpmem (out.auth.sig, 64, m.auth.sig, 64);
      wsp_msg_clear (&out);

      for (int t = WSP_MSG_REQ; t <= WSP_MSG_ACK; t += WSP_MSG_ACK - WSP_MSG_REQ)
        {
          wsp_msg_init (&m, (WspMsgType) t);
          WspClock *c = t == WSP_MSG_REQ ? &m.req.clock : &m.ack.clock;
          for (guint64 p = 1; p <= 40; p++)
            wsp_clock_set (c, p * G_GUINT64_CONSTANT (0x0101010101010101), p * 1000);
          round_trip (&m, compress, &out);
          g_assert_true (wsp_clock_equal (t == WSP_MSG_REQ ? &out.req.clock : &out.ack.clock, c));
          wsp_msg_clear (&out);
          wsp_msg_clear (&m);
        }

      wsp_msg_init (&m, WSP_MSG_OPS);
      g_ptr_array_add (m.ops.runs, make_run (&a, 1, 20, 100));
      g_ptr_array_add (m.ops.runs, make_run (&b, 70000, 1, 300));
      round_trip (&m, compress, &out);
      g_assert_cmpuint (out.ops.runs->len, ==, 2);
      for (guint r = 0; r < 2; r++)
        {
          WspRun *x = g_ptr_array_index (m.ops.runs, r), *y = g_ptr_array_index (out.ops.runs, r);
          g_assert_cmpuint (x->peer, ==, y->peer);
          g_assert_cmpuint (x->from, ==, y->from);
          g_assert_cmpmem (x->pk, 32, y->pk, 32);
          g_assert_cmpmem (x->sig, 64, y->sig, 64);
          g_assert_cmpuint (x->ops->len, ==, y->ops->len);
          for (guint i = 0; i < x->ops->len; i++)
            g_assert_true (g_bytes_equal (g_ptr_array_index (x->ops, i), g_ptr_array_index (y->ops, i)));
        }
      g_assert_cmpuint (out.ops.clock.len, ==, 0);
      wsp_msg_clear (&out);
      wsp_msg_clear (&m);

      wsp_msg_init (&m, WSP_MSG_PING);
      m.ping.n = G_MAXUINT64;
      round_trip (&m, compress, &out);
      g_assert_cmpuint (out.ping.n, ==, G_MAXUINT64);
      m.type = WSP_MSG_PONG;
      round_trip (&m, compress, &out);
      g_assert_cmpuint (out.pong.n, ==, G_MAXUINT64);

      wsp_msg_init (&m, WSP_MSG_ERR);
      m.err.code = g_strdup ("shutdown");
      m.err.msg = g_strdup ("daemon stopping — bye");
      round_trip (&m, compress, &out);
      g_assert_cmpstr (out.err.code, ==, "shutdown");
      g_assert_cmpstr (out.err.msg, ==, m.err.msg);
      wsp_msg_clear (&out);
      wsp_msg_clear (&m);
    }
}

static void
test_compress (void)
{
  WspIdentity a;
  WspMsg m, out;
  g_autoptr (GBytes) plain = NULL, z = NULL, hz = NULL;

  identity (&a, 1);
  wsp_msg_init (&m, WSP_MSG_OPS);
  g_ptr_array_add (m.ops.runs, make_run (&a, 1, 200, 200));
  plain = encode (&m);
  z = wsp_msg_encode (&m, TRUE, NULL);
  g_assert_false (is_z (plain));
  g_assert_true (is_z (z));
  g_assert_cmpuint (g_bytes_get_size (z), <, g_bytes_get_size (plain) / 4);
  decode_ok (z, TRUE, &out);
  g_assert_cmpint (out.type, ==, WSP_MSG_OPS);
  g_assert_cmpuint (((WspRun *) g_ptr_array_index (out.ops.runs, 0))->ops->len, ==, 200);
  wsp_msg_clear (&out);
  wsp_msg_clear (&m);

  /* hello, auth and err are never wrapped, however compressible. */
  wsp_msg_init (&m, WSP_MSG_ERR);
  m.err.code = g_strdup ("internal");
  m.err.msg = g_strnfill (5000, 'x');
  hz = wsp_msg_encode (&m, TRUE, NULL);
  g_assert_false (is_z (hz));
  wsp_msg_clear (&m);

  wsp_msg_init (&m, WSP_MSG_HELLO);
  m.hello.project = g_strnfill (5000, 'p');
  memcpy (m.hello.pk, a.pk, 32);
  m.hello.peer = a.peer;
  {
    g_autoptr (GBytes) h = wsp_msg_encode (&m, TRUE, NULL);
    g_assert_false (is_z (h));
  }
  wsp_msg_clear (&m);
}

/* ---- size limits -------------------------------------------------------- */

static void
test_too_large (void)
{
  WspIdentity a;
  WspMsg m;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) b = NULL;
  g_autofree guint8 *big = g_malloc0 (WSP_WIRE_MAX_MESSAGE + 1);

  /* Two runs of ~40 KB: each within the run bound, together too large,
   * compressible or not. */
  identity (&a, 1);
  wsp_msg_init (&m, WSP_MSG_OPS);
  g_ptr_array_add (m.ops.runs, make_run (&a, 1, 40, 1000));
  g_ptr_array_add (m.ops.runs, make_run (&a, 41, 40, 1000));
  b = wsp_msg_encode (&m, FALSE, &error);
  g_assert_null (b);
  g_assert_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_TOO_LARGE);
  g_clear_error (&error);
  b = wsp_msg_encode (&m, TRUE, &error);
  g_assert_null (b);
  g_assert_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_TOO_LARGE);
  g_clear_error (&error);
  wsp_msg_clear (&m);

  /* An err with a huge msg. */
  wsp_msg_init (&m, WSP_MSG_ERR);
  m.err.code = g_strdup ("internal");
  m.err.msg = g_strnfill (WSP_WIRE_MAX_MESSAGE, 'x');
  g_assert_null (wsp_msg_encode (&m, FALSE, &error));
  g_assert_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_TOO_LARGE);
  g_clear_error (&error);
  wsp_msg_clear (&m);

  /* Decoding checks the size before looking at the bytes. */
  g_assert_false (wsp_msg_decode (big, WSP_WIRE_MAX_MESSAGE + 1, TRUE, &m, &error));
  g_assert_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_TOO_LARGE);
  g_clear_error (&error);
}

static void
test_limit_exact (void)
{
  /* An err of exactly 65,536 bytes encodes and decodes; one more byte fails.
   * fixmap(3) "t" "err" "code" "internal" "msg" str16: 1+2+4+5+9+4+3 = 28. */
  WspMsg m, out;
  g_autoptr (GBytes) b = NULL;
  g_autoptr (GError) error = NULL;

  wsp_msg_init (&m, WSP_MSG_ERR);
  m.err.code = g_strdup ("internal");
  m.err.msg = g_strnfill (WSP_WIRE_MAX_MESSAGE - 28, 'x');
  b = encode (&m);
  g_assert_cmpuint (g_bytes_get_size (b), ==, WSP_WIRE_MAX_MESSAGE);
  decode_ok (b, FALSE, &out);
  wsp_msg_clear (&out);
  g_free (m.err.msg);
  m.err.msg = g_strnfill (WSP_WIRE_MAX_MESSAGE - 27, 'x');
  g_assert_null (wsp_msg_encode (&m, FALSE, &error));
  g_assert_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_TOO_LARGE);
  wsp_msg_clear (&m);
}

/* ---- z ------------------------------------------------------------------ */

static void
test_z_bomb_declared (void)
{
  /* 1 MiB of zeros compresses to a few dozen bytes but declares its size:
   * refused before decompressing. */
  gsize n = 1 << 20, cap = ZSTD_compressBound (n), fl;
  g_autofree guint8 *zeros = g_malloc0 (n);
  g_autofree guint8 *frame = g_malloc (cap);
  g_autoptr (GBytes) msg = NULL;

  fl = ZSTD_compress (frame, cap, zeros, n, 3);
  g_assert_false (ZSTD_isError (fl));
  g_assert_cmpuint (fl, <, 1000);
  msg = z_wrap (frame, fl);
  decode_fails (msg, TRUE, WSP_WIRE_ERROR_TOO_LARGE);
}

static void
test_z_bomb_no_size (void)
{
  /* A frame without a content size is refused (it could be any size). */
  g_autoptr (GBytes) content = NULL;
  g_autoptr (GBytes) msg = NULL;
  ZSTD_CCtx *cctx = ZSTD_createCCtx ();
  gsize len, cap, fl;
  const guint8 *d;
  g_autofree guint8 *frame = NULL;
  WspMsg m;

  wsp_msg_init (&m, WSP_MSG_PING);
  m.ping.n = 7;
  content = encode (&m);
  d = g_bytes_get_data (content, &len);
  frame = g_malloc (cap = ZSTD_compressBound (len) + 64);
  ZSTD_CCtx_setParameter (cctx, ZSTD_c_contentSizeFlag, 0);
  {
    ZSTD_inBuffer in = { d, len, 0 };
    ZSTD_outBuffer out = { frame, cap, 0 };
    gsize rem = ZSTD_compressStream2 (cctx, &out, &in, ZSTD_e_end);
    g_assert_cmpuint (rem, ==, 0);
    fl = out.pos;
  }
  ZSTD_freeCCtx (cctx);
  g_assert_cmpuint (ZSTD_getFrameContentSize (frame, fl), ==, ZSTD_CONTENTSIZE_UNKNOWN);
  msg = z_wrap (frame, fl);
  decode_fails (msg, TRUE, WSP_WIRE_ERROR_BAD_MESSAGE);
}

/* Rewrites the frame content size field of a single-segment frame whose
 * size field is 2 bytes (content 256..65791 bytes). */
static void
patch_content_size (guint8 *frame, gsize fl, guint value)
{
  guint8 fhd = frame[4];
  g_assert_cmpuint (fhd >> 6, ==, 1);          /* 2-byte field, value - 256 */
  g_assert_cmpuint ((fhd >> 5) & 1, ==, 1);    /* single segment: no window byte */
  g_assert_cmpuint (fhd & 3, ==, 0);           /* no dictionary id */
  g_assert_cmpuint (fl, >, 7);
  frame[5] = (guint8) ((value - 256) & 0xff);
  frame[6] = (guint8) ((value - 256) >> 8);
}

static void
test_z_lying_size (void)
{
  WspIdentity a;
  WspMsg m;
  g_autoptr (GBytes) plain = NULL;
  gsize len, cap, fl;
  const guint8 *d;
  g_autofree guint8 *frame = NULL;

  identity (&a, 1);
  wsp_msg_init (&m, WSP_MSG_OPS);
  g_ptr_array_add (m.ops.runs, make_run (&a, 1, 10, 100));
  plain = encode (&m);
  wsp_msg_clear (&m);
  d = g_bytes_get_data (plain, &len);
  g_assert_cmpuint (len, >, 600);
  frame = g_malloc (cap = ZSTD_compressBound (len));
  fl = ZSTD_compress (frame, cap, d, len, 3);
  g_assert_false (ZSTD_isError (fl));

  /* Declares fewer bytes than it holds, then more: both refused. */
  for (guint i = 0; i < 3; i++)
    {
      guint declared = i == 0 ? (guint) len - 300 : i == 1 ? (guint) len + 300 : (guint) len;
      g_autofree guint8 *copy = g_memdup2 (frame, fl);
      g_autoptr (GBytes) msg = NULL;
      patch_content_size (copy, fl, declared);
      msg = z_wrap (copy, fl);
      if (i < 2)
        decode_fails (msg, TRUE, WSP_WIRE_ERROR_BAD_MESSAGE);
      else
        {
          WspMsg out;
          decode_ok (msg, TRUE, &out);
          g_assert_cmpint (out.type, ==, WSP_MSG_OPS);
          wsp_msg_clear (&out);
        }
    }
}

static void
test_z_rules (void)
{
  WspIdentity a;
  WspMsg m;
  g_autoptr (GBytes) hello = NULL, auth = NULL, err = NULL, ping = NULL;
  g_autoptr (GBytes) zh = NULL, za = NULL, ze = NULL, zp = NULL, zz = NULL;

  identity (&a, 1);
  wsp_msg_init (&m, WSP_MSG_HELLO);
  m.hello.project = g_strdup ("p");
  m.hello.peer = a.peer;
  memcpy (m.hello.pk, a.pk, 32);
  hello = encode (&m);
  wsp_msg_clear (&m);
  wsp_msg_init (&m, WSP_MSG_AUTH);
  auth = encode (&m);
  wsp_msg_init (&m, WSP_MSG_ERR);
  m.err.code = g_strdup ("internal");
  err = encode (&m);
  wsp_msg_clear (&m);
  wsp_msg_init (&m, WSP_MSG_PING);
  m.ping.n = 9;
  ping = encode (&m);

  zh = z_of (hello);
  za = z_of (auth);
  ze = z_of (err);
  zp = z_of (ping);
  zz = z_of (zp);
  decode_fails (zh, TRUE, WSP_WIRE_ERROR_BAD_MESSAGE);
  decode_fails (za, TRUE, WSP_WIRE_ERROR_BAD_MESSAGE);
  decode_fails (ze, TRUE, WSP_WIRE_ERROR_BAD_MESSAGE);
  decode_fails (zz, TRUE, WSP_WIRE_ERROR_BAD_MESSAGE);   /* z does not nest */
  /* z is never accepted before authentication (nothing it may wrap is). */
  decode_fails (zp, FALSE, WSP_WIRE_ERROR_NOT_AUTHENTICATED);
  decode_fails (zh, FALSE, WSP_WIRE_ERROR_NOT_AUTHENTICATED);
  {
    WspMsg out;
    decode_ok (zp, TRUE, &out);
    g_assert_cmpint (out.type, ==, WSP_MSG_PING);
    g_assert_cmpuint (out.ping.n, ==, 9);
  }

  /* d missing, not bin, not zstd, two frames, empty content, garbage
   * content. */
  {
    Builder *b = builder_new ();
    g_autoptr (GBytes) x = NULL;
    msgpack_pack_map (&b->pk, 1);
    str (b, "t");
    str (b, "z");
    x = builder_finish (b);
    decode_fails (x, TRUE, WSP_WIRE_ERROR_BAD_MESSAGE);
  }
  {
    Builder *b = builder_new ();
    g_autoptr (GBytes) x = NULL;
    msgpack_pack_map (&b->pk, 2);
    str (b, "t");
    str (b, "z");
    str (b, "d");
    str (b, "abc");
    x = builder_finish (b);
    decode_fails (x, TRUE, WSP_WIRE_ERROR_BAD_MESSAGE);
  }
  {
    g_autoptr (GBytes) x = z_wrap ("not zstd at all", 15);
    decode_fails (x, TRUE, WSP_WIRE_ERROR_BAD_MESSAGE);
  }
  {
    gsize len, fl;
    const guint8 *d = g_bytes_get_data (ping, &len);
    guint8 frame[256];
    g_autoptr (GBytes) x = NULL;
    fl = ZSTD_compress (frame, 128, d, len, 3);
    g_assert_false (ZSTD_isError (fl));
    memcpy (frame + fl, frame, fl);
    x = z_wrap (frame, 2 * fl);
    decode_fails (x, TRUE, WSP_WIRE_ERROR_BAD_MESSAGE);
    /* Truncated frame. */
    g_clear_pointer (&x, g_bytes_unref);
    x = z_wrap (frame, fl - 1);
    decode_fails (x, TRUE, WSP_WIRE_ERROR_BAD_MESSAGE);
  }
  {
    guint8 frame[64];
    gsize fl = ZSTD_compress (frame, sizeof frame, "", 0, 3);
    g_autoptr (GBytes) x = z_wrap (frame, fl);
    decode_fails (x, TRUE, WSP_WIRE_ERROR_BAD_MESSAGE);
  }
  {
    g_autoptr (GBytes) junk = g_bytes_new_static ("\xc1\xc1\xc1", 3);
    g_autoptr (GBytes) x = z_of (junk);
    decode_fails (x, TRUE, WSP_WIRE_ERROR_BAD_MESSAGE);
  }
  {
    /* Content over the limit, honestly declared. */
    g_autofree guint8 *big = g_malloc0 (WSP_WIRE_MAX_MESSAGE + 1);
    g_autoptr (GBytes) content = g_bytes_new_take (g_steal_pointer (&big), WSP_WIRE_MAX_MESSAGE + 1);
    g_autoptr (GBytes) x = z_of (content);
    decode_fails (x, TRUE, WSP_WIRE_ERROR_TOO_LARGE);
  }
}

/* ---- runs ---------------------------------------------------------------- */

static void
test_run_size (void)
{
  WspIdentity a;
  static const guint64 froms[] = { 1, 127, 128, 255, 256, 65535, 65536, G_MAXUINT32,
                                   (guint64) G_MAXUINT32 + 1 };
  static const struct { guint n; gsize len; } shapes[] = {
    { 1, 0 }, { 1, 255 }, { 1, 256 }, { 15, 3 }, { 16, 3 }, { 2, 60000 }, { 1, 65535 }, { 1, 65536 },
  };

  identity (&a, 9);
  for (guint f = 0; f < G_N_ELEMENTS (froms); f++)
    for (guint s = 0; s < G_N_ELEMENTS (shapes); s++)
      {
        g_autoptr (WspRun) run = make_run (&a, froms[f], shapes[s].n, shapes[s].len);
        Builder *b = builder_new ();
        g_autoptr (GBytes) raw = NULL;
        char hex[17];
        gsize grown = 139 + (froms[f] < 128 ? 1 : froms[f] < 256 ? 2 : froms[f] < 65536 ? 3
                             : froms[f] <= G_MAXUINT32 ? 5 : 9) + 1;

        /* msgpack-c's own shortest encoding of the same map. */
        wsp_peer_to_hex (run->peer, hex);
        msgpack_pack_map (&b->pk, 5);
        str (b, "peer"); str (b, hex);
        str (b, "pk"); bin (b, run->pk, 32);
        str (b, "from"); msgpack_pack_uint64 (&b->pk, run->from);
        str (b, "ops"); msgpack_pack_array (&b->pk, run->ops->len);
        for (guint i = 0; i < run->ops->len; i++)
          {
            gsize l;
            const void *d = g_bytes_get_data (g_ptr_array_index (run->ops, i), &l);
            bin (b, d, l);
          }
        str (b, "sig"); bin (b, run->sig, 64);
        raw = builder_finish (b);
        g_assert_cmpuint (wsp_run_encoded_size (run), ==, g_bytes_get_size (raw));

        /* Growing op by op gives the same total. */
        for (guint i = 0; i < run->ops->len; i++)
          grown += wsp_run_encoded_size_add (i, g_bytes_get_size (g_ptr_array_index (run->ops, i)));
        g_assert_cmpuint (grown, ==, wsp_run_encoded_size (run));
      }
}

/* An ops message with one run, built by hand: from_wide writes from as
 * uint64, wide_bins writes bin32 headers, extra adds an unknown key of
 * extra bytes. */
static GBytes *
raw_ops (const WspRun *run, gboolean from_wide, gboolean wide_bins, gsize extra)
{
  Builder *b = builder_new ();
  char hex[17];
  g_autofree char *pad = g_strnfill (extra, 'u');

  wsp_peer_to_hex (run->peer, hex);
  msgpack_pack_map (&b->pk, 3);
  str (b, "t"); str (b, "ops");
  str (b, "clock"); msgpack_pack_map (&b->pk, 0);
  str (b, "runs"); msgpack_pack_array (&b->pk, 1);
  msgpack_pack_map (&b->pk, extra ? 6 : 5);
  if (extra)
    {
      str (b, "comment");
      str (b, pad);
    }
  str (b, "sig"); bin (b, run->sig, 64);
  str (b, "ops"); msgpack_pack_array (&b->pk, run->ops->len);
  for (guint i = 0; i < run->ops->len; i++)
    {
      gsize l;
      const guint8 *d = g_bytes_get_data (g_ptr_array_index (run->ops, i), &l);
      if (wide_bins)
        {
          guint8 hdr[5] = { 0xc6, (guint8) (l >> 24), (guint8) (l >> 16), (guint8) (l >> 8), (guint8) l };
          msgpack_sbuffer_write (&b->sb, (const char *) hdr, 5);
          msgpack_sbuffer_write (&b->sb, (const char *) d, l);
        }
      else
        bin (b, d, l);
    }
  str (b, "from");
  if (from_wide)
    {
      guint8 u[9] = { 0xcf };
      for (int i = 0; i < 8; i++)
        u[1 + i] = (guint8) (run->from >> (56 - 8 * i));
      msgpack_sbuffer_write (&b->sb, (const char *) u, 9);
    }
  else
    msgpack_pack_uint64 (&b->pk, run->from);
  str (b, "pk"); bin (b, run->pk, 32);
  str (b, "peer"); str (b, hex);
  return builder_finish (b);
}

static void
test_run_bound (void)
{
  WspIdentity a;
  /* 139 fixed + from 1 + array 1 + bin16 header 3 = 144 around one body. */
  gsize fit = WSP_WIRE_MAX_RUN - 144;
  g_autoptr (WspRun) ok = NULL;
  g_autoptr (WspRun) over = NULL;
  g_autoptr (GError) error = NULL;
  WspMsg m, out;

  identity (&a, 4);
  ok = make_run (&a, 1, 1, fit);
  over = make_run (&a, 1, 1, fit + 1);
  g_assert_cmpuint (wsp_run_encoded_size (ok), ==, WSP_WIRE_MAX_RUN);
  g_assert_cmpuint (wsp_run_encoded_size (over), ==, WSP_WIRE_MAX_RUN + 1);

  /* Received: measured by the run's own shortest encoding, so wide headers
   * and unknown keys the sender added do not count. */
  {
    g_autoptr (GBytes) b = raw_ops (ok, FALSE, FALSE, 0);
    g_autoptr (GBytes) wide = raw_ops (ok, TRUE, TRUE, 3000);
    decode_ok (b, TRUE, &out);
    g_assert_cmpuint (g_bytes_get_size (g_ptr_array_index (((WspRun *) g_ptr_array_index (out.ops.runs, 0))->ops, 0)), ==, fit);
    wsp_msg_clear (&out);
    g_assert_cmpuint (g_bytes_get_size (wide), >, WSP_WIRE_MAX_RUN + 3000);
    decode_ok (wide, TRUE, &out);
    wsp_msg_clear (&out);
  }
  {
    g_autoptr (GBytes) b = raw_ops (over, FALSE, FALSE, 0);
    decode_fails (b, TRUE, WSP_WIRE_ERROR_BAD_RUN);
  }

  /* The sender refuses too. */
  wsp_msg_init (&m, WSP_MSG_OPS);
  g_ptr_array_add (m.ops.runs, g_steal_pointer (&over));
  g_assert_null (wsp_msg_encode (&m, TRUE, &error));
  g_assert_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_BAD_RUN);
  g_clear_error (&error);
  wsp_msg_clear (&m);
}

static void
test_run_rejects (void)
{
  WspIdentity a, b;
  g_autoptr (GError) error = NULL;
  WspMsg m;

  identity (&a, 5);
  identity (&b, 6);

  /* pk does not hash to peer. */
  {
    g_autoptr (WspRun) run = make_run (&a, 1, 2, 10);
    g_autoptr (GBytes) raw = NULL;
    memcpy (run->pk, b.pk, 32);
    raw = raw_ops (run, FALSE, FALSE, 0);
    decode_fails (raw, TRUE, WSP_WIRE_ERROR_BAD_RUN);
    wsp_msg_init (&m, WSP_MSG_OPS);
    g_ptr_array_add (m.ops.runs, g_steal_pointer (&run));
    g_assert_null (wsp_msg_encode (&m, FALSE, &error));
    g_assert_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_BAD_RUN);
    g_clear_error (&error);
    wsp_msg_clear (&m);
  }
  /* from 0; no ops; from + n past 2^63. */
  {
    g_autoptr (WspRun) r0 = make_run (&a, 0, 1, 10);
    g_autoptr (WspRun) r1 = make_run (&a, 1, 0, 10);
    g_autoptr (WspRun) r2 = make_run (&a, G_MAXINT64, 2, 10);
    g_autoptr (GBytes) x0 = raw_ops (r0, FALSE, FALSE, 0);
    g_autoptr (GBytes) x1 = raw_ops (r1, FALSE, FALSE, 0);
    g_autoptr (GBytes) x2 = raw_ops (r2, FALSE, FALSE, 0);
    decode_fails (x0, TRUE, WSP_WIRE_ERROR_BAD_RUN);
    decode_fails (x1, TRUE, WSP_WIRE_ERROR_BAD_RUN);
    decode_fails (x2, TRUE, WSP_WIRE_ERROR_BAD_RUN);
    wsp_msg_init (&m, WSP_MSG_OPS);
    g_ptr_array_add (m.ops.runs, g_steal_pointer (&r0));
    g_assert_null (wsp_msg_encode (&m, FALSE, &error));
    g_assert_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_BAD_RUN);
    g_clear_error (&error);
    wsp_msg_clear (&m);
  }
  /* Wrong types inside a run: run not a map, op not bin, sig 63 bytes,
   * peer uppercase, missing pk, duplicate key. */
  for (int variant = 0; variant < 6; variant++)
    {
      Builder *bb = builder_new ();
      g_autoptr (GBytes) x = NULL;
      char hex[17];
      guint8 sig[64] = { 0 };

      wsp_peer_to_hex (a.peer, hex);
      if (variant == 3)
        hex[0] = 'A', hex[1] = 'B';
      msgpack_pack_map (&bb->pk, 3);
      str (bb, "t"); str (bb, "ops");
      str (bb, "clock"); msgpack_pack_map (&bb->pk, 0);
      str (bb, "runs"); msgpack_pack_array (&bb->pk, 1);
      if (variant == 0)
        str (bb, "run");
      else
        {
          msgpack_pack_map (&bb->pk, variant == 4 ? 4 : variant == 5 ? 6 : 5);
          str (bb, "peer"); str (bb, hex);
          if (variant != 4)
            {
              str (bb, "pk"); bin (bb, a.pk, 32);
            }
          str (bb, "from"); msgpack_pack_uint64 (&bb->pk, 1);
          str (bb, "ops"); msgpack_pack_array (&bb->pk, 1);
          if (variant == 1)
            str (bb, "body");
          else
            bin (bb, "body", 4);
          str (bb, "sig"); bin (bb, sig, variant == 2 ? 63 : 64);
          if (variant == 5)
            {
              str (bb, "from"); msgpack_pack_uint64 (&bb->pk, 2);
            }
        }
      x = builder_finish (bb);
      decode_fails (x, TRUE, WSP_WIRE_ERROR_BAD_RUN);
    }
}

/* ---- message-level rejections ------------------------------------------ */

static GBytes *
raw_hello (const WspIdentity *id, const WspIdentity *pk_of, int v, const char *project, gboolean clock_ok)
{
  Builder *b = builder_new ();
  char hex[17];
  guint8 nonce[32] = { 1 };

  wsp_peer_to_hex (id->peer, hex);
  msgpack_pack_map (&b->pk, 8);
  str (b, "t"); str (b, "hello");
  str (b, "future"); msgpack_pack_array (&b->pk, 2); msgpack_pack_nil (&b->pk); msgpack_pack_true (&b->pk);
  str (b, "v"); msgpack_pack_int64 (&b->pk, v);
  str (b, "peer"); str (b, hex);
  str (b, "project");
  msgpack_pack_str_with_body (&b->pk, project, strlen (project));
  str (b, "pk"); bin (b, pk_of->pk, 32);
  str (b, "nonce"); bin (b, nonce, 32);
  str (b, "clock");
  if (clock_ok)
    {
      msgpack_pack_map (&b->pk, 1);
      str (b, hex);
      /* int8 format for a positive value: any integer format is allowed */
      msgpack_sbuffer_write (&b->sb, "\xd0\x05", 2);
    }
  else
    msgpack_pack_array (&b->pk, 0);
  return builder_finish (b);
}

static void
test_hello_rules (void)
{
  WspIdentity a, b;
  WspMsg out;

  identity (&a, 1);
  identity (&b, 2);
  {
    g_autoptr (GBytes) x = raw_hello (&a, &a, 1, "proj", TRUE);
    decode_ok (x, FALSE, &out);
    g_assert_cmpuint (wsp_clock_get (&out.hello.clock, a.peer), ==, 5);
    g_assert_cmpstr (out.hello.project, ==, "proj");
    wsp_msg_clear (&out);
  }
  {
    g_autoptr (GBytes) x = raw_hello (&a, &a, 2, "proj", TRUE);
    g_autoptr (GBytes) y = raw_hello (&a, &b, 2, "proj", FALSE);   /* version wins over the rest */
    g_autoptr (GBytes) z = raw_hello (&a, &a, -1, "proj", TRUE);
    g_autoptr (GBytes) w = raw_hello (&a, &a, 0, "proj", TRUE);
    decode_fails (x, FALSE, WSP_WIRE_ERROR_VERSION);
    decode_fails (y, FALSE, WSP_WIRE_ERROR_VERSION);
    decode_fails (z, TRUE, WSP_WIRE_ERROR_VERSION);
    decode_fails (w, FALSE, WSP_WIRE_ERROR_VERSION);
  }
  {
    g_autoptr (GBytes) x = raw_hello (&a, &b, 1, "proj", TRUE);
    decode_fails (x, FALSE, WSP_WIRE_ERROR_BAD_HELLO);
  }
  {
    g_autoptr (GBytes) x = raw_hello (&a, &a, 1, "pr\xffoj", TRUE);   /* bad UTF-8 */
    g_autoptr (GBytes) y = raw_hello (&a, &a, 1, "proj", FALSE);      /* clock an array */
    g_autoptr (GBytes) z = raw_hello (&a, &a, 1, "", TRUE);           /* empty project */
    decode_fails (x, FALSE, WSP_WIRE_ERROR_BAD_MESSAGE);
    decode_fails (y, FALSE, WSP_WIRE_ERROR_BAD_MESSAGE);
    decode_fails (z, FALSE, WSP_WIRE_ERROR_BAD_MESSAGE);
  }
  {
    /* v as a str, and v missing. */
    Builder *bb = builder_new ();
    g_autoptr (GBytes) x = NULL, y = NULL;
    msgpack_pack_map (&bb->pk, 2);
    str (bb, "t"); str (bb, "hello");
    str (bb, "v"); str (bb, "1");
    x = builder_finish (bb);
    decode_fails (x, FALSE, WSP_WIRE_ERROR_BAD_MESSAGE);
    bb = builder_new ();
    msgpack_pack_map (&bb->pk, 1);
    str (bb, "t"); str (bb, "hello");
    y = builder_finish (bb);
    decode_fails (y, FALSE, WSP_WIRE_ERROR_BAD_MESSAGE);
  }
}

static GBytes *
raw_map2 (const char *t, const char *key, int kind)
{
  Builder *b = builder_new ();
  msgpack_pack_map (&b->pk, 2);
  str (b, "t"); str (b, t);
  str (b, key);
  switch (kind)
    {
    case 0: msgpack_pack_int64 (&b->pk, -1); break;
    case 1: msgpack_pack_double (&b->pk, 1.0); break;
    case 2: str (b, "x"); break;
    case 3: bin (b, "0123456789012345678901234567890", 31); break;
    case 4:   /* clock with an uppercase hex key */
      msgpack_pack_map (&b->pk, 1); str (b, "00000000000000AB"); msgpack_pack_uint64 (&b->pk, 1); break;
    case 5:   /* clock with a short key */
      msgpack_pack_map (&b->pk, 1); str (b, "00ab"); msgpack_pack_uint64 (&b->pk, 1); break;
    case 6:   /* clock value >= 2^63 */
      msgpack_pack_map (&b->pk, 1); str (b, "00000000000000ab"); msgpack_pack_uint64 (&b->pk, G_GUINT64_CONSTANT (1) << 63); break;
    case 7:   /* clock with a duplicate peer */
      msgpack_pack_map (&b->pk, 2);
      str (b, "00000000000000ab"); msgpack_pack_uint64 (&b->pk, 1);
      str (b, "00000000000000ab"); msgpack_pack_uint64 (&b->pk, 2);
      break;
    case 8:   /* clock value negative */
      msgpack_pack_map (&b->pk, 1); str (b, "00000000000000ab"); msgpack_pack_int64 (&b->pk, -3); break;
    default: g_assert_not_reached ();
    }
  return builder_finish (b);
}

static void
test_wrong_types (void)
{
  static const struct { const char *t, *key; int kind; } cases[] = {
    { "ping", "n", 0 }, { "ping", "n", 1 }, { "pong", "n", 2 },
    { "req", "clock", 2 }, { "ack", "clock", 4 }, { "ack", "clock", 5 }, { "req", "clock", 6 },
    { "ack", "clock", 7 }, { "ack", "clock", 8 },
    { "auth", "mac", 3 }, { "ops", "runs", 2 }, { "err", "code", 0 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GBytes) x = raw_map2 (cases[i].t, cases[i].key, cases[i].kind);
      decode_fails (x, TRUE, WSP_WIRE_ERROR_BAD_MESSAGE);
    }
}

static void
test_garbage (void)
{
  #define B(s) { s, sizeof (s) - 1 }
  static const struct { const char *bytes; gsize len; } cases[] = {
    B (""),
    B ("\x82\xa1t\xa4ping\xa1n"),                   /* truncated */
    B ("\x82\xa1t\xa4ping\xa1n\x01\x00"),         /* trailing byte */
    B ("\x92\xa1t\xa4ping"),                       /* array, not map */
    B ("\x81\xa1n\x01"),                           /* no t */
    B ("\x82\xa1t\x01\xa1n\x01"),                  /* t not a str */
    B ("\x83\xa1t\xa4ping\xa1t\xa4pong\xa1n\x01"),/* t twice */
    B ("\x81\xa1t\xa2\xc3\x28"),                   /* t bad UTF-8 */
    B ("\x82\xa1t\xa4ping\xa1n\xc1"),             /* reserved byte */
    B ("\xdf\xff\xff\xff\xff"),                    /* map of 2^32-1 pairs */
    B ("\x82\xa1t\xa4ping\xa1x\xdd\x7f\xff\xff\xff"), /* huge array count */
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GBytes) x = g_bytes_new_static (cases[i].bytes, cases[i].len);
      decode_fails (x, FALSE, WSP_WIRE_ERROR_BAD_MESSAGE);
      decode_fails (x, TRUE, WSP_WIRE_ERROR_BAD_MESSAGE);
    }
  /* A known field given twice (checked once authenticated: before, a ping
   * is refused as not_authenticated without reading its fields). */
  {
    g_autoptr (GBytes) x = g_bytes_new_static ("\x83\xa1t\xa4ping\xa1n\x01\xa1n\x02", 14);
    decode_fails (x, TRUE, WSP_WIRE_ERROR_BAD_MESSAGE);
    decode_fails (x, FALSE, WSP_WIRE_ERROR_NOT_AUTHENTICATED);
  }
  /* Deep nesting in an ignored key. */
  {
    GByteArray *a = g_byte_array_new ();
    g_autoptr (GBytes) x = NULL;
    g_byte_array_append (a, (const guint8 *) "\x83\xa1t\xa4ping\xa1n\x01\xa1x", 11);
    for (int i = 0; i < 100; i++)
      g_byte_array_append (a, (const guint8 *) "\x91", 1);
    g_byte_array_append (a, (const guint8 *) "\x01", 1);
    x = g_byte_array_free_to_bytes (a);
    decode_fails (x, TRUE, WSP_WIRE_ERROR_BAD_MESSAGE);
  }
  /* NULL data. */
  {
    WspMsg m;
    g_autoptr (GError) error = NULL;
    g_assert_false (wsp_msg_decode (NULL, 0, TRUE, &m, &error));
    g_assert_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_BAD_MESSAGE);
  }
}

static void
test_unknown_t_and_keys (void)
{
  g_autoptr (GBytes) x = g_bytes_new_static ("\x82\xa1t\xa5later\xa1n\x01", 12);
  g_autoptr (GBytes) y = g_bytes_new_static ("\x84\xa1x\x90\xa1t\xa4ping\x01\xc0\xa1n\xd0\x07", 17);
  WspMsg m;

  decode_fails (x, FALSE, WSP_WIRE_ERROR_BAD_MESSAGE);
  decode_ok (x, TRUE, &m);
  g_assert_cmpint (m.type, ==, WSP_MSG_UNKNOWN);
  wsp_msg_clear (&m);
  /* Unknown keys (even non-str ones) ignored; n as int8 accepted. */
  decode_ok (y, TRUE, &m);
  g_assert_cmpint (m.type, ==, WSP_MSG_PING);
  g_assert_cmpuint (m.ping.n, ==, 7);
  /* Unknown t cannot be encoded. */
  {
    g_autoptr (GError) error = NULL;
    wsp_msg_init (&m, WSP_MSG_UNKNOWN);
    g_assert_null (wsp_msg_encode (&m, FALSE, &error));
    g_assert_error (error, WSP_WIRE_ERROR, WSP_WIRE_ERROR_INTERNAL);
  }
}

static void
test_not_authenticated (void)
{
  WspMsg m, out;
  static const WspMsgType gated[] = { WSP_MSG_REQ, WSP_MSG_OPS, WSP_MSG_ACK, WSP_MSG_PING, WSP_MSG_PONG };

  for (guint i = 0; i < G_N_ELEMENTS (gated); i++)
    {
      g_autoptr (GBytes) b = NULL;
      wsp_msg_init (&m, gated[i]);
      b = encode (&m);
      decode_fails (b, FALSE, WSP_WIRE_ERROR_NOT_AUTHENTICATED);
      decode_ok (b, TRUE, &out);
      wsp_msg_clear (&out);
      wsp_msg_clear (&m);
    }
  /* auth and err pass before authentication. */
  {
    g_autoptr (GBytes) b = NULL;
    wsp_msg_init (&m, WSP_MSG_AUTH);
    b = encode (&m);
    decode_ok (b, FALSE, &out);
    g_assert_cmpint (out.type, ==, WSP_MSG_AUTH);
  }
  {
    g_autoptr (GBytes) b = g_bytes_new_static ("\x82\xa1t\xa3" "err\xa4" "code\xa7" "version", 20);
    decode_ok (b, FALSE, &out);
    g_assert_cmpstr (out.err.code, ==, "version");
    g_assert_cmpstr (out.err.msg, ==, "");   /* msg absent */
    wsp_msg_clear (&out);
  }
}

static void
test_clock_zero_entries (void)
{
  Builder *b = builder_new ();
  g_autoptr (GBytes) x = NULL;
  WspMsg m;

  msgpack_pack_map (&b->pk, 2);
  str (b, "t"); str (b, "req");
  str (b, "clock");
  msgpack_pack_map (&b->pk, 3);
  str (b, "00000000000000cd"); msgpack_pack_uint64 (&b->pk, 0);
  str (b, "00000000000000ab"); msgpack_pack_uint64 (&b->pk, 9);
  str (b, "0000000000000001"); msgpack_pack_uint64 (&b->pk, G_MAXINT64);
  x = builder_finish (b);
  decode_ok (x, TRUE, &m);
  g_assert_cmpuint (m.req.clock.len, ==, 2);
  g_assert_cmpuint (wsp_clock_get (&m.req.clock, 0xab), ==, 9);
  g_assert_cmpuint (wsp_clock_get (&m.req.clock, 1), ==, G_MAXINT64);
  wsp_msg_clear (&m);
}

static void
test_error_names (void)
{
  static const char *const names[] = { "bad_message", "too_large", "version", "wrong_project",
                                       "bad_hello", "auth_failed", "not_authenticated", "bad_run",
                                       "shutdown", "internal" };
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    {
      WspWireError e;
      g_assert_cmpstr (wsp_wire_error_to_string ((WspWireError) i), ==, names[i]);
      g_assert_true (wsp_wire_error_from_string (names[i], &e));
      g_assert_cmpint (e, ==, i);
    }
  g_assert_false (wsp_wire_error_from_string ("nope", NULL));
  g_assert_false (wsp_wire_error_from_string (NULL, NULL));
  g_assert_cmpstr (wsp_wire_error_to_string ((WspWireError) 99), ==, "internal");
  g_assert_cmpstr (wsp_msg_type_to_string (WSP_MSG_OPS), ==, "ops");
  g_assert_cmpstr (wsp_msg_type_to_string ((WspMsgType) 99), ==, "unknown");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_assert_true (wsp_crypto_init ());
  g_test_add_func ("/wire/bytes/ping", test_bytes_ping);
  g_test_add_func ("/wire/bytes/ack", test_bytes_ack);
  g_test_add_func ("/wire/bytes/err-auth", test_bytes_err_auth);
  g_test_add_func ("/wire/bytes/run", test_bytes_run);
  g_test_add_func ("/wire/round-trip/all", test_round_trip_all);
  g_test_add_func ("/wire/compress/only-when-smaller", test_compress);
  g_test_add_func ("/wire/limit/too-large", test_too_large);
  g_test_add_func ("/wire/limit/exact", test_limit_exact);
  g_test_add_func ("/wire/z/bomb-declared-size", test_z_bomb_declared);
  g_test_add_func ("/wire/z/bomb-no-size", test_z_bomb_no_size);
  g_test_add_func ("/wire/z/lying-size", test_z_lying_size);
  g_test_add_func ("/wire/z/rules", test_z_rules);
  g_test_add_func ("/wire/run/encoded-size", test_run_size);
  g_test_add_func ("/wire/run/bound", test_run_bound);
  g_test_add_func ("/wire/run/rejects", test_run_rejects);
  g_test_add_func ("/wire/hello/rules", test_hello_rules);
  g_test_add_func ("/wire/reject/wrong-types", test_wrong_types);
  g_test_add_func ("/wire/reject/garbage", test_garbage);
  g_test_add_func ("/wire/unknown-t-and-keys", test_unknown_t_and_keys);
  g_test_add_func ("/wire/not-authenticated", test_not_authenticated);
  g_test_add_func ("/wire/clock/zero-entries", test_clock_zero_entries);
  g_test_add_func ("/wire/error-names", test_error_names);
  return g_test_run ();
}
