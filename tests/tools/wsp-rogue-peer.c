/* wsp-rogue-peer.c — a scripted, possibly misbehaving peer for the
 * integration tests of peer sync (SPEC 7): it joins a real wspd's
 * signaling listener with a fresh identity, opens the one WebRTC data
 * channel to it with the project's own modules (WspSignalClient, WspRtc,
 * the wire codec, channel auth, hash chains), and then behaves as --mode
 * says: honestly, or with a tampered / wrongly-authored run, garbage, an
 * oversize zstd frame, ops before auth, a bad auth mac, or a wrong project
 * secret.
 *
 *   wsp-rogue-peer --url WS_URL --project PROJECT_ID --secret-file PATH
 *                  --ice-address 127.0.0.1 [--mode MODE] [--timeout-ms N]
 *                  [--role any|offerer|answerer --listener-id HEX]
 *
 * Modes (all but honest expect the daemon's err, then its close):
 *   honest        after auth, one valid run (a task.create, seq 1, chain from
 *                 h(0) of our pk, signed head); waits for the ack covering it
 *   tampered      the same run with one byte of the body flipped after
 *                 signing → bad_run
 *   wrong-author  a run whose peer/pk are a second fresh identity's, chained
 *                 for it but signed by us → bad_run
 *   malformed     bytes that are not MessagePack → bad_message
 *   oversize      a z frame whose zstd frame declares 1,000,000 bytes of
 *                 content (the message itself is small) → too_large
 *   unauth-ops    an ops message right after hello; no auth → not_authenticated
 *   bad-auth      auth with the right secret but the mac of another text
 *                 (the signature is right) → auth_failed
 *   wrong-secret  the secret file's secret with one byte changed: the
 *                 listener refuses the signaling hello (auth_failed, 4001)
 *
 * stdout, one fact a line (the tests' evidence), in this order:
 *   peer <our id>                  always first
 *   listener <id>                  the welcome arrived (its mac verified)
 *   role offerer|answerer          who offers (SPEC 7.1: smaller id offers)
 *   task <id>                      the task our run creates (run modes)
 *   authenticated                  we verified the daemon's auth
 *   ack ok                         honest: the daemon acked our op
 *   err <code>                     the daemon's err message
 *   closed                         the daemon closed the channel after err
 *   closed-without-err             it closed after our misbehaviour, but no
 *                                  err arrived (exit 3; see below)
 *   signal auth_failed             wrong-secret: the listener refused us
 * Exit 0 when what the mode expects happened, 1 on anything else (reason
 * on stderr), 2 on a usage error, 3 when the daemon closed the channel
 * after our misbehaviour without its err reaching us. That last one is a
 * transport race, not a protocol decision: the daemon sends err and
 * closes the channel in the same main-loop turn (wsp-sync.c session_fail →
 * session_close → wsp_rtc_free), and with GStreamer 1.22 webrtcbin a
 * message sent right before gst_webrtc_data_channel_close() is sometimes
 * lost: at the sender, the close removes the sctpenc pad while the message
 * is still on its way from the channel's appsrc ("Internal data stream
 * error"); at the receiver, sctpdec flushes the stream's queue on the
 * stream reset before the message was pushed out. Tests tell it apart and
 * check the daemon's own record of the code it closed with.
 *
 * --role picks, among freshly generated identities, one whose id makes us
 * the offerer (smaller than --listener-id) or the answerer, so that a test
 * can cover both sides of the handshake deterministically.
 *
 * Everything is event-driven on one GMainLoop with a deadline; no sleeps.
 * ICE is pinned to --ice-address (required: this tool never leaves the
 * address it is given).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gio/gio.h>
#include <glib.h>
#include <gst/gst.h>
#include <msgpack.h>
#include <sodium.h>
#include <zstd.h>

#include "common/wsp-common.h"
#include "crdt/wsp-chain.h"
#include "crdt/wsp-clock.h"
#include "crdt/wsp-op.h"
#include "store/wsp-store.h"
#include "sync/wsp-auth.h"
#include "sync/wsp-rtc.h"
#include "sync/wsp-signal.h"
#include "sync/wsp-wire.h"

#include "common/wsp-asan-options.h"

#define DEFAULT_TIMEOUT_MS   15000
#define TEARDOWN_MS          3000
#define OVERSIZE_CONTENT     1000000

typedef enum {
  MODE_HONEST,
  MODE_TAMPERED,
  MODE_WRONG_AUTHOR,
  MODE_MALFORMED,
  MODE_OVERSIZE,
  MODE_UNAUTH_OPS,
  MODE_BAD_AUTH,
  MODE_WRONG_SECRET,
} Mode;

static const struct {
  const char *name;
  Mode        mode;
  const char *expect_err;   /* the daemon's err code this mode expects */
} modes[] = {
  { "honest",       MODE_HONEST,       NULL },
  { "tampered",     MODE_TAMPERED,     "bad_run" },
  { "wrong-author", MODE_WRONG_AUTHOR, "bad_run" },
  { "malformed",    MODE_MALFORMED,    "bad_message" },
  { "oversize",     MODE_OVERSIZE,     "too_large" },
  { "unauth-ops",   MODE_UNAUTH_OPS,   "not_authenticated" },
  { "bad-auth",     MODE_BAD_AUTH,     "auth_failed" },
  { "wrong-secret", MODE_WRONG_SECRET, NULL },
};

typedef struct {
  GMainLoop       *loop;
  guint            timer;
  int              exit_code;
  gboolean         finished;
  Mode             mode;
  const char      *expect_err;
  const char      *project_id;
  guint8           secret[WSP_PROJECT_SECRET_LEN];
  WspAuthKeys      keys;
  WspIdentity      id;
  const char      *ice[2];
  /* signaling */
  WspSignalClient *sig;
  WspPeer          listener;
  char             listener_hex[WSP_PEER_HEX_LEN + 1];
  /* channel */
  WspRtc          *rtc;
  gboolean         offerer;
  guint8           nonce[WSP_WIRE_NONCE_LEN];   /* our hello's */
  gboolean         got_hello;
  guint8           remote_pk[WSP_PK_LEN];
  guint8           remote_nonce[WSP_WIRE_NONCE_LEN];
  gboolean         auth_sent;
  gboolean         authenticated;               /* we verified theirs */
  gboolean         acted;                       /* the mode's action is done */
  gboolean         misbehaved;                  /* what should earn an err went out */
  char            *got_err;                     /* the daemon's err code */
  /* our run */
  char            *task_id;
} Rogue;

/* ---- output and ending -------------------------------------------------- */

static void
say (const char *fmt, ...) G_GNUC_PRINTF (1, 2);

static void
say (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  vprintf (fmt, ap);
  va_end (ap);
  putchar ('\n');
  fflush (stdout);
}

static void
finish (Rogue *r, int code, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

/* Ends the run with exit code `code`; fmt (may be NULL) goes to stderr.
 * Only the first call counts. */
static void
finish (Rogue *r, int code, const char *fmt, ...)
{
  if (r->finished)
    return;
  r->finished = TRUE;
  r->exit_code = code;
  if (fmt)
    {
      va_list ap;
      va_start (ap, fmt);
      g_autofree char *text = g_strdup_vprintf (fmt, ap);
      va_end (ap);
      fprintf (stderr, "wsp-rogue-peer: %s\n", text);
    }
  g_main_loop_quit (r->loop);
}

static gboolean
on_timeout (gpointer data)
{
  Rogue *r = data;
  r->timer = 0;
  g_autofree char *state = g_strdup_printf ("welcome=%s channel=%s open=%s hello=%s auth_sent=%s authenticated=%s err=%s",
                                            r->listener ? "yes" : "no", r->rtc ? "yes" : "no",
                                            r->rtc && wsp_rtc_is_open (r->rtc) ? "yes" : "no",
                                            r->got_hello ? "yes" : "no", r->auth_sent ? "yes" : "no",
                                            r->authenticated ? "yes" : "no", r->got_err ? r->got_err : "-");
  finish (r, 1, "timed out (%s)", state);
  return G_SOURCE_REMOVE;
}

/* ---- channel messages ------------------------------------------------------ */

static gboolean
send_bytes (Rogue *r, GBytes *bytes)
{
  g_autoptr (GError) error = NULL;
  if (!wsp_rtc_send (r->rtc, bytes, &error))
    {
      finish (r, 1, "cannot send %zu bytes: %s", g_bytes_get_size (bytes), error->message);
      return FALSE;
    }
  return TRUE;
}

static gboolean
send_msg (Rogue *r, const WspMsg *m)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = wsp_msg_encode (m, FALSE, &error);
  if (!bytes)
    {
      finish (r, 1, "cannot encode %s: %s", wsp_msg_type_to_string (m->type), error->message);
      return FALSE;
    }
  return send_bytes (r, bytes);
}

/* A task.create op body by `author`, with every field written (SPEC 7.4). */
static GBytes *
create_body (const char *task, const char *title)
{
  WspOp op = { 0 };
  op.hlc = ((guint64) (g_get_real_time () / 1000) << 16) | 1;
  op.type = WSP_OP_CREATE;
  op.type_code = WSP_OP_CREATE;
  op.task = (char *) task;
  op.data_ok = TRUE;
  for (int f = 1; f < WSP_FIELD_COUNT; f++)
    wsp_field_default ((WspField) f, &op.fields[f]);
  wsp_value_clear (&op.fields[WSP_FIELD_TITLE]);
  op.fields[WSP_FIELD_TITLE] = wsp_value_str (title);
  wsp_value_clear (&op.fields[WSP_FIELD_BODY]);
  op.fields[WSP_FIELD_BODY] = wsp_value_str ("made by wsp-rogue-peer");
  GBytes *body = wsp_op_encode (&op);
  for (int f = 1; f < WSP_FIELD_COUNT; f++)
    wsp_value_clear (&op.fields[f]);
  return body;
}

/* A run of one op (seq 1) claiming `author`, its chain from h(0) of the
 * author's pk and its head signed by `signer`. */
static WspRun *
make_run (Rogue *r, const WspIdentity *author, const WspIdentity *signer, const char *title)
{
  WspRun *run = wsp_run_new ();
  run->peer = author->peer;
  memcpy (run->pk, author->pk, WSP_PK_LEN);
  run->from = 1;
  GBytes *body = create_body (r->task_id, title);
  guint8 h[WSP_HASH_LEN];
  wsp_chain_genesis (r->project_id, author->pk, h);
  wsp_chain_next (h, g_bytes_get_data (body, NULL), g_bytes_get_size (body), h);
  wsp_head_sign (signer, 1, h, run->sig);
  g_ptr_array_add (run->ops, body);
  return run;
}

/* Flips one byte of the title inside the run's only body, after signing:
 * the body still decodes as an op, but the chain no longer verifies. */
static void
tamper_run (WspRun *run, const char *title)
{
  GBytes *body = g_ptr_array_index (run->ops, 0);
  gsize len;
  const guint8 *data = g_bytes_get_data (body, &len);
  guint8 *copy = g_memdup2 (data, len);
  gsize tlen = strlen (title);
  for (gsize i = 0; i + tlen <= len; i++)
    if (memcmp (copy + i, title, tlen) == 0)
      {
        copy[i] ^= 0x01;   /* 'R' → 'S': still ASCII */
        break;
      }
  g_assert (memcmp (copy, data, len) != 0);
  g_ptr_array_index (run->ops, 0) = g_bytes_new_take (copy, len);
  g_bytes_unref (body);
}

static gboolean
send_run (Rogue *r, WspRun *run)
{
  WspMsg m;
  wsp_msg_init (&m, WSP_MSG_OPS);
  g_ptr_array_add (m.ops.runs, run);
  gboolean ok = send_msg (r, &m);
  wsp_msg_clear (&m);
  return ok;
}

/* {"t":"z","d":<zstd frame of OVERSIZE_CONTENT zero bytes, size declared>} */
static GBytes *
oversize_z (void)
{
  g_autofree guint8 *zeros = g_malloc0 (OVERSIZE_CONTENT);
  gsize cap = ZSTD_compressBound (OVERSIZE_CONTENT);
  g_autofree guint8 *frame = g_malloc (cap);
  gsize n = ZSTD_compress (frame, cap, zeros, OVERSIZE_CONTENT, 3);
  g_assert (!ZSTD_isError (n));
  g_assert (ZSTD_getFrameContentSize (frame, n) == OVERSIZE_CONTENT);
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init (&sb);
  msgpack_packer_init (&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map (&pk, 2);
  msgpack_pack_str (&pk, 1);
  msgpack_pack_str_body (&pk, "t", 1);
  msgpack_pack_str (&pk, 1);
  msgpack_pack_str_body (&pk, "z", 1);
  msgpack_pack_str (&pk, 1);
  msgpack_pack_str_body (&pk, "d", 1);
  msgpack_pack_bin (&pk, n);
  msgpack_pack_bin_body (&pk, frame, n);
  GBytes *out = g_bytes_new (sb.data, sb.size);
  msgpack_sbuffer_destroy (&sb);
  return out;
}

/* The mode's move once both sides are authenticated. */
static void
act (Rogue *r)
{
  if (r->acted)
    return;
  r->acted = TRUE;
  r->misbehaved = r->expect_err != NULL;
  switch (r->mode)
    {
    case MODE_HONEST:
      send_run (r, make_run (r, &r->id, &r->id, "Rogue honest task"));
      break;
    case MODE_TAMPERED:
      {
        WspRun *run = make_run (r, &r->id, &r->id, "Rogue tampered task");
        tamper_run (run, "Rogue tampered task");
        send_run (r, run);
      }
      break;
    case MODE_WRONG_AUTHOR:
      {
        WspIdentity other;
        wsp_identity_generate (&other);
        say ("claimed-author %s", other.peer_hex);
        send_run (r, make_run (r, &other, &r->id, "Rogue wrong-author task"));
        sodium_memzero (&other, sizeof other);
      }
      break;
    case MODE_MALFORMED:
      {
        static const guint8 junk[] = { 0xc1, 0xc1, 0x00, 0xff, 0x13, 0x37 };
        g_autoptr (GBytes) b = g_bytes_new_static (junk, sizeof junk);
        send_bytes (r, b);
      }
      break;
    case MODE_OVERSIZE:
      {
        g_autoptr (GBytes) b = oversize_z ();
        send_bytes (r, b);
      }
      break;
    case MODE_UNAUTH_OPS:
    case MODE_BAD_AUTH:
    case MODE_WRONG_SECRET:
      break;   /* their move comes earlier */
    }
}

static void
try_auth (Rogue *r)
{
  if (r->auth_sent || !r->got_hello || r->mode == MODE_UNAUTH_OPS)
    return;
  const char *local_fp = wsp_rtc_local_fingerprint (r->rtc);
  const char *remote_fp = wsp_rtc_remote_fingerprint (r->rtc);
  if (!local_fp || !remote_fp)
    return;   /* the descriptions call again */
  WspMsg m;
  wsp_msg_init (&m, WSP_MSG_AUTH);
  wsp_auth_channel_sign (&r->keys, &r->id, r->listener, r->remote_nonce, local_fp, remote_fp,
                         m.auth.mac, m.auth.sig);
  if (r->mode == MODE_BAD_AUTH)
    {
      /* The right secret, the mac of another text (the signature stays right). */
      static const char other[] = "wsp-auth-v1\nnot the text of this connection";
      wsp_hmac_sha256 (r->keys.k_auth, (const guint8 *) other, sizeof other - 1, m.auth.mac);
    }
  r->auth_sent = send_msg (r, &m);
  r->misbehaved = r->auth_sent && r->mode == MODE_BAD_AUTH;
  wsp_msg_clear (&m);
  if (r->auth_sent && r->authenticated)
    act (r);
}

static void
on_hello (Rogue *r, const WspMsg *m)
{
  if (r->got_hello)
    {
      finish (r, 1, "the daemon sent a second hello");
      return;
    }
  if (m->hello.peer != r->listener)
    {
      char hex[WSP_PEER_HEX_LEN + 1];
      wsp_peer_to_hex (m->hello.peer, hex);
      finish (r, 1, "the daemon's hello names peer %s, it signaled as %s", hex, r->listener_hex);
      return;
    }
  if (g_strcmp0 (m->hello.project, r->project_id) != 0)
    {
      finish (r, 1, "the daemon's hello names project %s", m->hello.project);
      return;
    }
  r->got_hello = TRUE;
  memcpy (r->remote_pk, m->hello.pk, WSP_PK_LEN);
  memcpy (r->remote_nonce, m->hello.nonce, WSP_WIRE_NONCE_LEN);
  try_auth (r);
}

static void
on_auth (Rogue *r, const WspMsg *m)
{
  g_autoptr (GError) error = NULL;
  if (!r->got_hello || r->authenticated)
    {
      finish (r, 1, "the daemon's auth came out of order");
      return;
    }
  const char *local_fp = wsp_rtc_local_fingerprint (r->rtc);
  const char *remote_fp = wsp_rtc_remote_fingerprint (r->rtc);
  if (!local_fp || !remote_fp
      || !wsp_auth_channel_verify (&r->keys, r->listener, r->remote_pk, r->id.peer, r->nonce, remote_fp,
                                   local_fp, m->auth.mac, m->auth.sig, &error))
    {
      finish (r, 1, "the daemon's auth does not verify: %s", error ? error->message : "no fingerprints yet");
      return;
    }
  r->authenticated = TRUE;
  say ("authenticated");
  if (r->auth_sent)
    act (r);
}

static void
on_err (Rogue *r, const WspMsg *m)
{
  if (r->got_err)
    return;
  r->got_err = g_strdup (m->err.code);
  say ("err %s", m->err.code);
  fprintf (stderr, "wsp-rogue-peer: the daemon said %s: %s\n", m->err.code, m->err.msg);
  if (!r->expect_err)
    finish (r, 1, "unexpected err %s: %s", m->err.code, m->err.msg);
  else if (!g_str_equal (m->err.code, r->expect_err))
    finish (r, 1, "expected err %s, got %s: %s", r->expect_err, m->err.code, m->err.msg);
  /* else: wait for the daemon to close the channel */
}

static void
on_ack (Rogue *r, const WspClock *clock)
{
  if (r->mode == MODE_HONEST && r->acted && wsp_clock_get (clock, r->id.peer) >= 1)
    {
      say ("ack ok");
      finish (r, 0, NULL);
    }
}

/* ---- WspRtc callbacks ---------------------------------------------------------- */

static void
signal_send (Rogue *r, WspSignalMsg *m)
{
  g_autoptr (GError) error = NULL;
  m->to_peer_id = r->listener;
  if (!wsp_signal_client_send (r->sig, m, &error))
    finish (r, 1, "cannot signal %s: %s", wsp_signal_type_to_string (m->type), error->message);
  wsp_signal_msg_clear (m);
}

static void
rtc_local_description (WspRtc *rtc, const char *type, const char *sdp, gpointer data)
{
  Rogue *r = data;
  WspSignalMsg m;
  wsp_signal_msg_init (&m, g_str_equal (type, "offer") ? WSP_SIGNAL_OFFER : WSP_SIGNAL_ANSWER);
  m.sdp = g_strdup (sdp);
  signal_send (r, &m);
  try_auth (r);
}

static void
rtc_local_candidate (WspRtc *rtc, const char *candidate, const char *sdp_mid, guint mline, gpointer data)
{
  Rogue *r = data;
  WspSignalMsg m;
  wsp_signal_msg_init (&m, WSP_SIGNAL_ICE_CANDIDATE);
  m.candidate = g_strdup (candidate);
  m.sdp_mid = g_strdup (sdp_mid);
  m.sdp_mline_index = mline;
  signal_send (r, &m);
}

static void
rtc_open (WspRtc *rtc, gpointer data)
{
  (void) data;
}

static void
rtc_message (WspRtc *rtc, GBytes *bytes, gpointer data)
{
  Rogue *r = data;
  gsize len;
  const guint8 *d = g_bytes_get_data (bytes, &len);
  WspMsg m = { 0 };
  g_autoptr (GError) error = NULL;
  if (r->finished)
    return;
  if (!wsp_msg_decode (d, len, r->authenticated, &m, &error))
    {
      finish (r, 1, "the daemon sent a message that does not decode (%zu bytes): %s", len, error->message);
      return;
    }
  switch (m.type)
    {
    case WSP_MSG_HELLO:
      on_hello (r, &m);
      break;
    case WSP_MSG_AUTH:
      on_auth (r, &m);
      break;
    case WSP_MSG_ERR:
      on_err (r, &m);
      break;
    case WSP_MSG_ACK:
      on_ack (r, &m.ack.clock);
      break;
    case WSP_MSG_PING:
      {
        WspMsg pong;
        wsp_msg_init (&pong, WSP_MSG_PONG);
        pong.pong.n = m.ping.n;
        send_msg (r, &pong);
        wsp_msg_clear (&pong);
      }
      break;
    case WSP_MSG_OPS:
    case WSP_MSG_REQ:
    case WSP_MSG_PONG:
    case WSP_MSG_UNKNOWN:
      break;
    }
  wsp_msg_clear (&m);
}

static void
rtc_writable (WspRtc *rtc, gpointer data)
{
  (void) data;
}

static void
rtc_closed (WspRtc *rtc, const char *reason, gpointer data)
{
  Rogue *r = data;
  if (r->got_err && r->expect_err && g_str_equal (r->got_err, r->expect_err))
    {
      say ("closed");
      finish (r, 0, NULL);
    }
  else if (r->expect_err && !r->got_err && r->misbehaved)
    {
      /* We misbehaved and the daemon closed on us, but its err never
       * arrived: exit 3 so that a test can tell this apart (see the
       * header: a message sent right before a close can be lost). */
      say ("closed-without-err");
      finish (r, 3, "the channel closed (%s) without the err %s this mode expects", reason, r->expect_err);
    }
  else
    finish (r, 1, "the channel closed (%s) before what mode %s expects", reason,
            r->expect_err ? r->expect_err : "honest");
}

static const WspRtcCallbacks rtc_callbacks = {
  .local_description = rtc_local_description,
  .local_candidate = rtc_local_candidate,
  .open = rtc_open,
  .message = rtc_message,
  .writable = rtc_writable,
  .closed = rtc_closed,
};

/* Creates the channel and queues our hello (it goes out as the channel
 * opens; SPEC 7.2 "each side sends hello first"). */
static gboolean
channel_new (Rogue *r, gboolean offerer)
{
  g_autoptr (GError) error = NULL;
  WspRtcConfig cfg = { .ice_addresses = r->ice };
  r->offerer = offerer;
  r->rtc = wsp_rtc_new (offerer, &cfg, &rtc_callbacks, r, &error);
  if (!r->rtc)
    {
      finish (r, 1, "cannot create the channel: %s", error->message);
      return FALSE;
    }
  WspMsg m;
  wsp_msg_init (&m, WSP_MSG_HELLO);
  m.hello.v = WSP_WIRE_VERSION;
  m.hello.peer = r->id.peer;
  m.hello.project = g_strdup (r->project_id);
  memcpy (m.hello.pk, r->id.pk, WSP_PK_LEN);
  randombytes_buf (r->nonce, sizeof r->nonce);
  memcpy (m.hello.nonce, r->nonce, sizeof r->nonce);
  gboolean ok = send_msg (r, &m);
  wsp_msg_clear (&m);
  if (ok && r->mode == MODE_UNAUTH_OPS)
    ok = r->misbehaved = send_run (r, make_run (r, &r->id, &r->id, "Rogue unauthenticated task"));
  return ok;
}

/* ---- signaling callbacks -------------------------------------------------------- */

static void
sig_welcomed (WspSignalClient *client, WspPeer listener, const GArray *peers, gpointer data)
{
  Rogue *r = data;
  r->listener = listener;
  wsp_peer_to_hex (listener, r->listener_hex);
  say ("listener %s", r->listener_hex);
  if (r->mode == MODE_WRONG_SECRET)
    {
      finish (r, 1, "the listener welcomed a wrong project secret");
      return;
    }
  /* SPEC 7.1: the smaller id offers; the daemon offers to us otherwise. */
  gboolean offerer = r->id.peer < listener;
  say ("role %s", offerer ? "offerer" : "answerer");
  if (offerer && channel_new (r, TRUE))
    wsp_rtc_start (r->rtc);
}

static void
sig_peers (WspSignalClient *client, const GArray *peers, gpointer data)
{
  (void) data;
}

static void
sig_message (WspSignalClient *client, const WspSignalMsg *msg, gpointer data)
{
  Rogue *r = data;
  g_autoptr (GError) error = NULL;
  if (r->finished)
    return;
  if (msg->type == WSP_SIGNAL_ERROR_MSG)
    {
      fprintf (stderr, "wsp-rogue-peer: listener error %s: %s\n", msg->code, msg->message);
      return;
    }
  if (msg->from_peer_id != r->listener)
    return;   /* not from the daemon (another member's relay): not ours */
  switch (msg->type)
    {
    case WSP_SIGNAL_OFFER:
      if (r->rtc)
        {
          finish (r, 1, "a second offer from the daemon (we %s)", r->offerer ? "offered" : "answered one");
          return;
        }
      if (!channel_new (r, FALSE))
        return;
      if (!wsp_rtc_set_remote_description (r->rtc, "offer", msg->sdp, &error))
        {
          finish (r, 1, "the daemon's offer: %s", error->message);
          return;
        }
      try_auth (r);
      break;
    case WSP_SIGNAL_ANSWER:
      if (!r->rtc || !r->offerer)
        {
          finish (r, 1, "an answer we did not ask for");
          return;
        }
      if (!wsp_rtc_set_remote_description (r->rtc, "answer", msg->sdp, &error))
        {
          finish (r, 1, "the daemon's answer: %s", error->message);
          return;
        }
      try_auth (r);
      break;
    case WSP_SIGNAL_ICE_CANDIDATE:
      if (!r->rtc)
        return;
      if (!wsp_rtc_add_remote_candidate (r->rtc, msg->candidate, msg->sdp_mline_index, &error))
        fprintf (stderr, "wsp-rogue-peer: candidate refused: %s\n", error->message);
      break;
    default:
      break;
    }
}

static void
sig_closed (WspSignalClient *client, guint close_code, const char *error_code, const char *reason,
            gpointer data)
{
  Rogue *r = data;
  if (r->mode == MODE_WRONG_SECRET)
    {
      if (close_code == WSP_SIGNAL_CLOSE_AUTH && g_strcmp0 (error_code, "auth_failed") == 0)
        {
          say ("signal auth_failed");
          finish (r, 0, NULL);
        }
      else
        finish (r, 1, "signaling closed with %u %s (%s), expected 4001 auth_failed", close_code,
                error_code ? error_code : "-", reason ? reason : "");
      return;
    }
  if (r->finished)
    return;
  /* The channel does not need signaling once it is up; only its setup does. */
  if (!r->authenticated || !r->rtc)
    finish (r, 1, "signaling closed before the channel was up: %u %s (%s)", close_code,
            error_code ? error_code : "-", reason ? reason : "");
}

static const WspSignalClientCallbacks sig_callbacks = {
  .welcomed = sig_welcomed,
  .peers = sig_peers,
  .message = sig_message,
  .closed = sig_closed,
};

/* ---- main ----------------------------------------------------------------------- */

static gboolean
read_secret (const char *path, guint8 out[WSP_PROJECT_SECRET_LEN], GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents (path, &data, &len, error))
    return FALSE;
  if (len != WSP_PROJECT_SECRET_LEN)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "%s: expected %d raw bytes, found %zu", path,
                   WSP_PROJECT_SECRET_LEN, len);
      sodium_memzero (data, len);
      return FALSE;
    }
  memcpy (out, data, len);
  sodium_memzero (data, len);
  return TRUE;
}

static gboolean
on_tick (gpointer data)
{
  (void) data;
  return G_SOURCE_REMOVE;
}

/* Lets the channel's teardown finish (no pipeline left behind). */
static void
drain (void)
{
  GMainContext *ctx = g_main_context_default ();
  gint64 deadline = g_get_monotonic_time () + TEARDOWN_MS * 1000;
  while (g_main_context_pending (ctx))
    g_main_context_iteration (ctx, FALSE);
  while (wsp_rtc_count_live () > 0 && g_get_monotonic_time () < deadline)
    {
      GSource *tick = g_timeout_source_new (10);
      g_source_set_callback (tick, on_tick, NULL, NULL);
      g_source_attach (tick, ctx);
      g_main_context_iteration (ctx, TRUE);
      g_source_destroy (tick);
      g_source_unref (tick);
    }
}

int
main (int argc, char **argv)
{
  g_autofree char *url = NULL, *project = NULL, *secret_file = NULL, *mode_name = NULL;
  g_autofree char *ice_address = NULL, *role = NULL, *listener_id = NULL;
  gint timeout_ms = DEFAULT_TIMEOUT_MS;
  GOptionEntry entries[] = {
    { "url", 0, 0, G_OPTION_ARG_STRING, &url, "The listener's signaling URL (ws://HOST:PORT/api/v1/signal)", "URL" },
    { "project", 0, 0, G_OPTION_ARG_STRING, &project, "Project id", "ID" },
    { "secret-file", 0, 0, G_OPTION_ARG_FILENAME, &secret_file, "The project secret (32 raw bytes)", "PATH" },
    { "mode", 0, 0, G_OPTION_ARG_STRING, &mode_name,
      "honest, tampered, wrong-author, malformed, oversize, unauth-ops, bad-auth or wrong-secret (default honest)", "MODE" },
    { "ice-address", 0, 0, G_OPTION_ARG_STRING, &ice_address, "Pin ICE to this local address (required)", "ADDR" },
    { "timeout-ms", 0, 0, G_OPTION_ARG_INT, &timeout_ms, "Give up after this long (default 15000)", "N" },
    { "role", 0, 0, G_OPTION_ARG_STRING, &role, "any (default), offerer or answerer: pick an identity for it", "ROLE" },
    { "listener-id", 0, 0, G_OPTION_ARG_STRING, &listener_id, "The listener's peer id (needed by --role)", "HEX" },
    { NULL },
  };
  g_autoptr (GOptionContext) octx = g_option_context_new ("- a scripted peer against a real wspd");
  g_autoptr (GError) error = NULL;
  g_option_context_add_main_entries (octx, entries, NULL);
  if (!g_option_context_parse (octx, &argc, &argv, &error))
    {
      fprintf (stderr, "wsp-rogue-peer: %s\n", error->message);
      return 2;
    }
  if (!url || !project || !secret_file || !ice_address || timeout_ms <= 0)
    {
      fprintf (stderr, "wsp-rogue-peer: --url, --project, --secret-file and --ice-address are required"
                       " (ICE is never left unpinned)\n");
      return 2;
    }

  /* Loopback only: ICE and the listener. */
  {
    g_autoptr (GInetAddress) ice = g_inet_address_new_from_string (ice_address);
    g_autoptr (GUri) uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
    const char *host = uri ? g_uri_get_host (uri) : NULL;
    g_autoptr (GInetAddress) host_addr = host ? g_inet_address_new_from_string (host) : NULL;
    if (!ice || !g_inet_address_get_is_loopback (ice))
      {
        fprintf (stderr, "wsp-rogue-peer: --ice-address must be a loopback IP literal, got '%s'\n", ice_address);
        return 2;
      }
    if (!host || !(g_str_equal (host, "localhost") || (host_addr && g_inet_address_get_is_loopback (host_addr))))
      {
        fprintf (stderr, "wsp-rogue-peer: --url must name a loopback listener, got '%s'\n", url);
        return 2;
      }
  }

  Rogue r = { 0 };
  r.project_id = project;
  r.ice[0] = ice_address;
  r.mode = MODE_HONEST;
  gboolean known_mode = mode_name == NULL;
  for (guint i = 0; mode_name && i < G_N_ELEMENTS (modes); i++)
    if (g_str_equal (mode_name, modes[i].name))
      {
        r.mode = modes[i].mode;
        r.expect_err = modes[i].expect_err;
        known_mode = TRUE;
      }
  if (!known_mode)
    {
      fprintf (stderr, "wsp-rogue-peer: unknown --mode '%s'\n", mode_name);
      return 2;
    }
  WspPeer want_listener = 0;
  int want_role = 0;   /* 0 any, 1 offerer, 2 answerer */
  if (role && !g_str_equal (role, "any"))
    {
      want_role = g_str_equal (role, "offerer") ? 1 : g_str_equal (role, "answerer") ? 2 : -1;
      if (want_role < 0 || !listener_id
          || !wsp_peer_from_hex (listener_id, strlen (listener_id), &want_listener))
        {
          fprintf (stderr, "wsp-rogue-peer: --role offerer|answerer needs --listener-id HEX\n");
          return 2;
        }
    }

  if (!wsp_crypto_init ())
    {
      fprintf (stderr, "wsp-rogue-peer: libsodium does not start\n");
      return 1;
    }
  if (!read_secret (secret_file, r.secret, &error))
    {
      fprintf (stderr, "wsp-rogue-peer: %s\n", error->message);
      return 1;
    }
  if (r.mode == MODE_WRONG_SECRET)
    r.secret[0] ^= 0x5a;   /* the file's secret, made wrong */
  wsp_auth_keys_derive (&r.keys, r.secret);
  if (!wsp_rtc_init (&error))
    {
      fprintf (stderr, "wsp-rogue-peer: %s\n", error->message);
      return 1;
    }

  /* A fresh identity (one of the right side of the listener's id, when
   * asked: half of all identities are, so this loop is short). */
  do
    wsp_identity_generate (&r.id);
  while ((want_role == 1 && !(r.id.peer < want_listener)) || (want_role == 2 && !(r.id.peer > want_listener)));
  say ("peer %s", r.id.peer_hex);
  r.task_id = wsp_task_id_new ("ws");
  if (r.mode == MODE_HONEST || r.mode == MODE_TAMPERED || r.mode == MODE_WRONG_AUTHOR
      || r.mode == MODE_UNAUTH_OPS)
    say ("task %s", r.task_id);
  wsp_rtc_warm_up ();

  r.loop = g_main_loop_new (NULL, FALSE);
  r.timer = g_timeout_add ((guint) timeout_ms, on_timeout, &r);
  WspSignalConfig scfg = { r.project_id, r.secret, &r.id };
  r.sig = wsp_signal_client_new (&scfg, url, (guint) timeout_ms, &sig_callbacks, &r, &error);
  if (!r.sig)
    {
      fprintf (stderr, "wsp-rogue-peer: %s\n", error->message);
      r.exit_code = 2;
    }
  else
    g_main_loop_run (r.loop);
  if (!r.finished)
    r.exit_code = r.exit_code ? r.exit_code : 1;
  g_clear_handle_id (&r.timer, g_source_remove);

  wsp_rtc_free (g_steal_pointer (&r.rtc));
  wsp_signal_client_free (g_steal_pointer (&r.sig));
  drain ();
  g_main_loop_unref (r.loop);
  g_free (r.task_id);
  g_free (r.got_err);
  wsp_auth_keys_clear (&r.keys);
  sodium_memzero (r.secret, sizeof r.secret);
  sodium_memzero (&r.id, sizeof r.id);
  /* Joins GStreamer's pooled threads so that none is exiting while
   * LeakSanitizer stops the world (see rtc-test.c). */
  gst_deinit ();
  return r.exit_code;
}
