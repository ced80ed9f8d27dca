/* rtc-test.c — pins src/sync/wsp-rtc.c: two WspRtc in one process on one
 * GMainContext, wired to each other in memory (descriptions and candidates
 * passed directly), ICE pinned to 127.0.0.1: the channel opens, messages go
 * both ways in order and intact up to 65,536 bytes (65,537 refused), 50 MB
 * with back-pressure stays bounded and arrives in order, fingerprints are
 * normalised, a close reaches the other side, no callback after close and
 * teardown leaves nothing behind.
 *
 * Network rule: loopback only. main() re-executes the program inside a
 * fresh network namespace (`unshare -rn`, only `lo` up) when it can, so
 * nothing could leave the machine even if pinning broke (and, there,
 * libnice finds nothing at all unless pinned to 127.0.0.1). Without
 * unshare the tests still run, pinned.
 *
 * No sleeps: each test spins its own GMainContext until a condition holds
 * or a timeout passes.
 */
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <gst/gst.h>

#include "common/wsp-common.h"
#include "sync/wsp-rtc.h"
#include "test-netns.h"

#include "common/wsp-asan-options.h"

#define OPEN_TIMEOUT_MS  10000
#define BULK_TIMEOUT_MS  180000
#define BULK_BYTES       (50u * 1000 * 1000)

typedef struct _Fixture Fixture;

typedef struct {
  Fixture   *f;
  WspRtc    *rtc;
  WspRtc    *other_rtc;   /* where our descriptions/candidates go */
  gboolean   opened;
  gint64     opened_at;   /* monotonic µs */
  guint      closed;      /* times closed() ran */
  char      *closed_reason;
  guint      candidates;  /* non-empty ones reported */
  gboolean   end_of_candidates;
  gboolean   candidate_not_loopback;
  gboolean   described;
  /* received */
  guint      messages;
  guint64    bytes;
  guint64    next_seq;    /* expected sequence number */
  gboolean   bad_message;
  gboolean   message_before_open;
  guint      writable;
  gboolean   callback_after_close;
  gboolean   free_on_closed;
} Side;

struct _Fixture {
  GMainContext *ctx;
  Side          a, b;     /* a offers, b answers */
  gint64        started_at;
  /* bulk sender state (a → b) */
  guint64       bulk_sent;
  guint64       bulk_total;
  guint64       bulk_seq;
  gsize         max_buffered;
};

/* ---- helpers ----------------------------------------------------------- */

static gboolean
on_deadline (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates ctx until cond(data) or timeout_ms; returns cond's last value. */
static gboolean
spin_until (GMainContext *ctx, gboolean (*cond) (gpointer), gpointer data, guint timeout_ms)
{
  gboolean expired = FALSE;
  GSource *timer = g_timeout_source_new (timeout_ms);

  g_source_set_callback (timer, on_deadline, &expired, NULL);
  g_source_attach (timer, ctx);
  while (!cond (data) && !expired)
    g_main_context_iteration (ctx, TRUE);
  g_source_destroy (timer);
  g_source_unref (timer);
  return cond (data);
}

/* Message i of a stream: 8-byte big-endian sequence number, then bytes
 * derived from it. */
static GBytes *
make_message (guint64 seq, gsize size)
{
  guint8 *buf = g_malloc (size);

  for (gsize i = 0; i < size; i++)
    buf[i] = (guint8) (seq * 131 + i * 7 + 1);
  for (gsize i = 0; i < 8 && i < size; i++)
    buf[i] = (guint8) (seq >> (56 - 8 * i));
  return g_bytes_new_take (buf, size);
}

static gboolean
check_message (GBytes *msg, guint64 seq)
{
  gsize size;
  const guint8 *buf = g_bytes_get_data (msg, &size);

  for (gsize i = 0; i < size; i++)
    {
      guint8 want = i < 8 ? (guint8) (seq >> (56 - 8 * i)) : (guint8) (seq * 131 + i * 7 + 1);
      if (buf[i] != want)
        return FALSE;
    }
  return TRUE;
}

/* ---- callbacks --------------------------------------------------------- */

static void
cb_local_description (WspRtc *rtc, const char *type, const char *sdp, gpointer data)
{
  Side *s = data;
  g_autoptr (GError) error = NULL;

  if (s->closed)
    s->callback_after_close = TRUE;
  s->described = TRUE;
  g_assert_cmpstr (type, ==, s == &s->f->a ? "offer" : "answer");
  if (s->other_rtc != NULL)
    {
      g_assert_true (wsp_rtc_set_remote_description (s->other_rtc, type, sdp, &error));
      g_assert_no_error (error);
    }
}

static void
cb_local_candidate (WspRtc *rtc, const char *candidate, const char *mid, guint mline,
                    gpointer data)
{
  Side *s = data;
  g_autoptr (GError) error = NULL;

  g_assert_true (s->described);
  if (*candidate == '\0')
    s->end_of_candidates = TRUE;
  else
    {
      g_auto (GStrv) tok = g_strsplit (candidate, " ", 0);
      s->candidates++;
      g_assert_true (g_str_has_prefix (candidate, "candidate:"));
      g_assert_cmpuint (g_strv_length (tok), >=, 8);
      if (strcmp (tok[4], "127.0.0.1") != 0)
        s->candidate_not_loopback = TRUE;
    }
  g_assert_nonnull (mid);
  if (s->other_rtc != NULL)
    {
      g_assert_true (wsp_rtc_add_remote_candidate (s->other_rtc, candidate, mline, &error));
      g_assert_no_error (error);
    }
}

static void
cb_open (WspRtc *rtc, gpointer data)
{
  Side *s = data;

  g_assert_false (s->opened);
  s->opened = TRUE;
  s->opened_at = g_get_monotonic_time ();
}

static void
cb_message (WspRtc *rtc, GBytes *msg, gpointer data)
{
  Side *s = data;

  if (!s->opened)
    s->message_before_open = TRUE;
  if (!check_message (msg, s->next_seq))
    s->bad_message = TRUE;
  s->next_seq++;
  s->messages++;
  s->bytes += g_bytes_get_size (msg);
}

static void
bulk_pump (Fixture *f)
{
  while (f->bulk_sent < f->bulk_total && wsp_rtc_is_writable (f->a.rtc))
    {
      gsize n = (gsize) MIN ((guint64) WSP_RTC_MAX_MESSAGE, f->bulk_total - f->bulk_sent);
      g_autoptr (GBytes) msg = make_message (f->bulk_seq, n);
      g_autoptr (GError) error = NULL;

      g_assert_true (wsp_rtc_send (f->a.rtc, msg, &error));
      g_assert_no_error (error);
      f->bulk_seq++;
      f->bulk_sent += n;
      f->max_buffered = MAX (f->max_buffered, wsp_rtc_buffered_amount (f->a.rtc));
    }
}

static void
cb_writable (WspRtc *rtc, gpointer data)
{
  Side *s = data;

  s->writable++;
  if (s == &s->f->a && s->f->bulk_total > 0)
    bulk_pump (s->f);
}

static void
cb_closed (WspRtc *rtc, const char *reason, gpointer data)
{
  Side *s = data;

  s->closed++;
  g_free (s->closed_reason);
  s->closed_reason = g_strdup (reason);
  if (s->free_on_closed)
    {
      g_clear_pointer (&s->rtc, wsp_rtc_free);
      if (s == &s->f->a)
        s->f->b.other_rtc = NULL;
      else
        s->f->a.other_rtc = NULL;
    }
}

static const WspRtcCallbacks callbacks = {
  .local_description = cb_local_description,
  .local_candidate = cb_local_candidate,
  .open = cb_open,
  .message = cb_message,
  .writable = cb_writable,
  .closed = cb_closed,
};

static const char *const loopback[] = { "127.0.0.1", NULL };
static const WspRtcConfig pinned = { .ice_addresses = loopback };

/* ---- fixture ----------------------------------------------------------- */

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;

  f->ctx = g_main_context_new ();
  g_main_context_push_thread_default (f->ctx);
  f->a.f = f->b.f = f;
  f->a.rtc = wsp_rtc_new (TRUE, &pinned, &callbacks, &f->a, &error);
  g_assert_no_error (error);
  f->b.rtc = wsp_rtc_new (FALSE, &pinned, &callbacks, &f->b, &error);
  g_assert_no_error (error);
  f->a.other_rtc = f->b.rtc;
  f->b.other_rtc = f->a.rtc;
}

static gboolean
all_gone (gpointer data)
{
  return wsp_rtc_count_live () == 0;
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->a.rtc, wsp_rtc_free);
  g_clear_pointer (&f->b.rtc, wsp_rtc_free);
  g_assert_true (spin_until (f->ctx, all_gone, NULL, OPEN_TIMEOUT_MS));
  /* Drain what teardown left scheduled (drains that find nothing). */
  while (g_main_context_iteration (f->ctx, FALSE))
    ;
  g_main_context_pop_thread_default (f->ctx);
  g_main_context_unref (f->ctx);
  g_free (f->a.closed_reason);
  g_free (f->b.closed_reason);
}

static gboolean
both_open (gpointer data)
{
  Fixture *f = data;
  return (f->a.opened && f->b.opened) || f->a.closed || f->b.closed;
}

static void
connect_pair (Fixture *f)
{
  f->started_at = g_get_monotonic_time ();
  wsp_rtc_start (f->a.rtc);
  g_assert_true (spin_until (f->ctx, both_open, f, OPEN_TIMEOUT_MS));
  g_assert_cmpstr (f->a.closed_reason, ==, NULL);
  g_assert_cmpstr (f->b.closed_reason, ==, NULL);
  g_assert_true (f->a.opened && f->b.opened);
}

/* ---- tests ------------------------------------------------------------- */

static gboolean
fingerprint_ok (const char *fp)
{
  return fp != NULL
         && g_regex_match_simple ("^sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}$", fp, 0, 0);
}

static void
test_open (Fixture *f, gconstpointer data)
{
  connect_pair (f);
  g_test_message ("setup (start to both open): %.1f ms",
                  (MAX (f->a.opened_at, f->b.opened_at) - f->started_at) / 1000.0);
  g_assert_true (wsp_rtc_is_open (f->a.rtc));
  g_assert_true (wsp_rtc_is_open (f->b.rtc));
  g_assert_true (wsp_rtc_is_writable (f->a.rtc));

  /* Pinned: every local candidate is on loopback. */
  g_assert_cmpuint (f->a.candidates, >, 0);
  g_assert_cmpuint (f->b.candidates, >, 0);
  g_assert_false (f->a.candidate_not_loopback);
  g_assert_false (f->b.candidate_not_loopback);

  g_assert_true (fingerprint_ok (wsp_rtc_local_fingerprint (f->a.rtc)));
  g_assert_true (fingerprint_ok (wsp_rtc_local_fingerprint (f->b.rtc)));
  g_assert_cmpstr (wsp_rtc_local_fingerprint (f->a.rtc), ==, wsp_rtc_remote_fingerprint (f->b.rtc));
  g_assert_cmpstr (wsp_rtc_local_fingerprint (f->b.rtc), ==, wsp_rtc_remote_fingerprint (f->a.rtc));
}

typedef struct {
  Side   *side;
  guint   want;
} Count;

static gboolean
got_messages (gpointer data)
{
  Count *c = data;
  return c->side->messages >= c->want || c->side->closed;
}

static gboolean
got_both (gpointer data)
{
  Fixture *f = data;
  return (f->a.messages >= 9 && f->b.messages >= 9) || f->a.closed || f->b.closed;
}

static void
test_messages_both_ways (Fixture *f, gconstpointer data)
{
  static const gsize sizes[] = { 1, 9, 100, 1200, 16384, 65535, 65536, 8, 65536 };
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) too_big = make_message (0, WSP_RTC_MAX_MESSAGE + 1);

  connect_pair (f);
  for (guint i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autoptr (GBytes) m1 = make_message (i, sizes[i]);
      g_autoptr (GBytes) m2 = make_message (i, sizes[G_N_ELEMENTS (sizes) - 1 - i]);

      g_assert_true (wsp_rtc_send (f->a.rtc, m1, &error));
      g_assert_no_error (error);
      g_assert_true (wsp_rtc_send (f->b.rtc, m2, &error));
      g_assert_no_error (error);
    }
  g_assert_false (wsp_rtc_send (f->a.rtc, too_big, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_TOO_LARGE);

  g_assert_true (spin_until (f->ctx, got_both, f, OPEN_TIMEOUT_MS));
  g_assert_cmpuint (f->a.messages, ==, G_N_ELEMENTS (sizes));
  g_assert_cmpuint (f->b.messages, ==, G_N_ELEMENTS (sizes));
  g_assert_false (f->a.bad_message);
  g_assert_false (f->b.bad_message);
  g_assert_cmpuint (f->a.bytes, ==, f->b.bytes);
  g_assert_cmpuint (f->a.closed + f->b.closed, ==, 0);
}

/* SPEC 7.2: each side sends hello before its channel reports open. */
static void
test_send_before_open (Fixture *f, gconstpointer data)
{
  Count c = { &f->b, 3 };
  g_autoptr (GError) error = NULL;

  for (guint64 i = 0; i < 3; i++)
    {
      g_autoptr (GBytes) m = make_message (i, 1000);
      g_assert_true (wsp_rtc_send (f->a.rtc, m, &error));
      g_assert_no_error (error);
    }
  g_assert_cmpuint (wsp_rtc_buffered_amount (f->a.rtc), ==, 3000);
  connect_pair (f);
  g_assert_true (spin_until (f->ctx, got_messages, &c, OPEN_TIMEOUT_MS));
  g_assert_cmpuint (f->b.messages, ==, 3);
  g_assert_false (f->b.bad_message);
  g_assert_false (f->b.message_before_open);
}

static gboolean
bulk_done (gpointer data)
{
  Fixture *f = data;
  return f->b.bytes >= f->bulk_total || f->a.closed || f->b.closed || f->b.bad_message;
}

static void
test_bulk_back_pressure (Fixture *f, gconstpointer data)
{
  gint64 t0;
  double secs;

  connect_pair (f);
  f->bulk_total = BULK_BYTES;
  t0 = g_get_monotonic_time ();
  bulk_pump (f);
  g_assert_false (wsp_rtc_is_writable (f->a.rtc));   /* it did hit the high mark */
  g_assert_true (spin_until (f->ctx, bulk_done, f, BULK_TIMEOUT_MS));
  secs = (g_get_monotonic_time () - t0) / 1e6;
  g_test_message ("bulk: %" G_GUINT64_FORMAT " bytes in %.2f s = %.1f MB/s; max buffered %"
                  G_GSIZE_FORMAT " bytes; %u writable callbacks",
                  f->b.bytes, secs, f->b.bytes / secs / 1e6, f->max_buffered, f->a.writable);
  g_assert_false (f->b.bad_message);
  g_assert_cmpuint (f->b.bytes, ==, BULK_BYTES);
  g_assert_cmpuint (f->b.messages, ==, f->bulk_seq);
  g_assert_cmpuint (f->a.writable, >, 0);
  g_assert_cmpuint (f->max_buffered, <=, WSP_RTC_HIGH_MARK + WSP_RTC_MAX_MESSAGE);
}

static gboolean
b_closed (gpointer data)
{
  Fixture *f = data;
  return f->b.closed > 0;
}

static void
test_close_reaches_peer (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) m = make_message (0, 10);
  gint64 t0;

  connect_pair (f);
  t0 = g_get_monotonic_time ();
  wsp_rtc_close (f->a.rtc);
  wsp_rtc_close (f->a.rtc);   /* idempotent */
  g_assert_false (wsp_rtc_send (f->a.rtc, m, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_CLOSED);
  g_assert_false (wsp_rtc_is_writable (f->a.rtc));
  g_assert_true (spin_until (f->ctx, b_closed, f, OPEN_TIMEOUT_MS));
  g_test_message ("close reached the peer in %.1f ms: %s",
                  (g_get_monotonic_time () - t0) / 1000.0, f->b.closed_reason);
  g_assert_cmpuint (f->b.closed, ==, 1);
  g_assert_cmpuint (f->a.closed, ==, 0);   /* no callback after close */
  g_assert_false (wsp_rtc_is_open (f->b.rtc));
}

/* The owner frees its side from inside closed(); the other side closed it. */
static void
test_free_in_closed_callback (Fixture *f, gconstpointer data)
{
  connect_pair (f);
  f->b.free_on_closed = TRUE;
  f->b.other_rtc = NULL;
  wsp_rtc_free (g_steal_pointer (&f->a.rtc));
  g_assert_true (spin_until (f->ctx, b_closed, f, OPEN_TIMEOUT_MS));
  g_assert_null (f->b.rtc);
}

/* Freed in the middle of negotiation: no callback, nothing left behind. */
static void
test_free_during_setup (Fixture *f, gconstpointer data)
{
  wsp_rtc_start (f->a.rtc);
  /* Let the offer get created and some candidates flow. */
  for (guint i = 0; i < 20; i++)
    g_main_context_iteration (f->ctx, FALSE);
  wsp_rtc_free (g_steal_pointer (&f->a.rtc));
  wsp_rtc_free (g_steal_pointer (&f->b.rtc));
  g_assert_true (spin_until (f->ctx, all_gone, NULL, OPEN_TIMEOUT_MS));
  g_assert_false (f->a.opened || f->b.opened);
  g_assert_cmpuint (f->a.closed + f->b.closed, ==, 0);
}

static void
test_remote_candidates_filtered (Fixture *f, gconstpointer data)
{
  static const char *const refused[] = {
    "candidate:1 1 UDP 2122252543 9f3a1c0e-1b2c-4d5e-8f90-0123456789ab.local 50000 typ host",
    "candidate:2 1 UDP 2122252543 ::1 50000 typ host",
    "candidate:3 1 TCP 2122252543 127.0.0.1 9 typ host tcptype active",
    "candidate:4 1 UDP 2122252543 example.org 50000 typ host",
    "candidate:5 1 UDP",
    "garbage",
  };
  g_autoptr (GError) error = NULL;

  for (guint i = 0; i < G_N_ELEMENTS (refused); i++)
    {
      g_assert_false (wsp_rtc_add_remote_candidate (f->b.rtc, refused[i], 0, &error));
      g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
      g_clear_error (&error);
    }
  g_assert_true (wsp_rtc_add_remote_candidate (f->b.rtc, "", 0, &error));
  g_assert_true (wsp_rtc_add_remote_candidate (
    f->b.rtc, "a=candidate:6 1 udp 2122252543 127.0.0.1 50000 typ host", 0, &error));
  g_assert_no_error (error);

  /* Wrong SDP type, and a description that is not SDP. */
  g_assert_false (wsp_rtc_set_remote_description (f->b.rtc, "answer", "v=0\r\n", &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (wsp_rtc_set_remote_description (f->b.rtc, "offer", "hello", &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_INVALID);
}

static void
test_bad_config (void)
{
  static const char *const bad_addr[] = { "127.0.0.1", "localhost", NULL };
  static const char *const two_stun[] = { "stun://a:3478", "stun://b:3478", NULL };
  static const char *const bad_turn[] = { "http://x", NULL };
  const WspRtcConfig configs[] = {
    { .ice_addresses = bad_addr },
    { .ice_addresses = loopback, .stun_servers = two_stun },
    { .ice_addresses = loopback, .turn_servers = bad_turn },
  };

  for (guint i = 0; i < G_N_ELEMENTS (configs); i++)
    {
      g_autoptr (GError) error = NULL;
      WspRtc *rtc = wsp_rtc_new (i % 2 == 0, &configs[i], &callbacks, NULL, &error);

      g_assert_null (rtc);
      g_assert_error (error, WSP_ERROR, WSP_ERROR_CONFIG);
    }
  g_assert_cmpuint (wsp_rtc_count_live (), ==, 0);
}

int
main (int argc, char **argv)
{
  g_autoptr (GError) error = NULL;
  int rc;

  maybe_reexec_in_netns (argc, argv);
  g_test_init (&argc, &argv, NULL);
  if (!wsp_rtc_init (&error))
    g_error ("%s", error->message);
  wsp_rtc_warm_up ();
  g_test_message ("network namespace: %s", g_getenv ("WSP_NETNS") ? "fresh (lo only)" : "host");

#define ADD(path, fn) g_test_add (path, Fixture, NULL, fixture_set_up, fn, fixture_tear_down)
  ADD ("/rtc/open-pinned-to-loopback", test_open);
  ADD ("/rtc/messages-both-ways-in-order", test_messages_both_ways);
  ADD ("/rtc/send-before-open-is-queued", test_send_before_open);
  ADD ("/rtc/bulk-50mb-back-pressure", test_bulk_back_pressure);
  ADD ("/rtc/close-reaches-peer", test_close_reaches_peer);
  ADD ("/rtc/free-in-closed-callback", test_free_in_closed_callback);
  ADD ("/rtc/free-during-setup", test_free_during_setup);
  ADD ("/rtc/remote-candidates-filtered", test_remote_candidates_filtered);
#undef ADD
  g_test_add_func ("/rtc/bad-config", test_bad_config);
  rc = g_test_run ();
  /* Joins GStreamer's pooled streaming threads and its clock thread, so
   * that none is exiting while LeakSanitizer stops the world at exit (its
   * tracer then crashed about one run in eight). */
  gst_deinit ();
  return rc;
}
