/* wsp-rtc.c — one WebRTC peer connection with one data channel, wrapping
 * GStreamer's webrtcbin (gst-plugins-bad 1.22) over libnice (0.1.21).
 *
 * Owns: a pipeline holding only a webrtcbin, its data channel, a bus watch
 * and the hand-off queue below. Runs on the owner's GMainContext (the
 * thread-default one at wsp_rtc_new); webrtcbin, libnice and SCTP run on
 * their own threads.
 *
 * Threading (the one rule): every webrtcbin/data-channel signal and every
 * promise callback runs on a GStreamer thread. Those handlers get only the
 * connection's id (never a pointer), look it up in a process-wide registry
 * under a lock (taking a reference), copy what they need into an Event and
 * append it to the connection's queue; one idle source on the owner's
 * context drains the queue in order. No handler touches state or calls the
 * owner; no owner callback ever runs inside a wsp_rtc_* call.
 *
 * Lifetime: a refcount. References: the owner's (until wsp_rtc_free),
 * "alive" (until teardown has stopped the pipeline), one per scheduled
 * drain, one per foreign handler while it runs. `closed` (main context
 * only) silences every callback; teardown removes the id from the registry
 * first, so late GStreamer callbacks find nothing, then sets the pipeline to
 * NULL (which joins webrtcbin's threads) on the main context.
 *
 * Negotiation, measured on 1.22: on-negotiation-needed fires at READY
 * before any channel exists, so it is ignored: the offerer creates the
 * channel, goes PLAYING, then creates the offer itself. The SDP and the
 * local candidates are reported only once set-local-description resolved
 * (earlier ones made ~1 run in 10 fail ICE), candidates held until then.
 *
 * Pinning (SPEC 7.1): with ice_addresses, the NiceAgent gathers only on
 * those addresses, UPnP (whose discovery multicasts leave the real
 * interface even when pinned) and ICE-TCP are off, all configured before
 * the first state change; remote candidates (trickled or inside the SDP)
 * of other families, non-UDP or mDNS (".local", which libnice 0.1.21
 * cannot resolve) are refused.
 *
 * Back-pressure: the channel's buffered-amount plus what waits for open.
 * The owner stops at WSP_RTC_HIGH_MARK and resumes on writable(), raised by
 * on-buffered-amount-low at WSP_RTC_LOW_MARK; send refuses above
 * WSP_RTC_HARD_LIMIT so a careless owner cannot grow memory without bound.
 */
#include "sync/wsp-rtc.h"

#include <string.h>
#include <gio/gio.h>
#include <gst/gst.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>

#include "common/wsp-common.h"
#include "sync/wsp-auth.h"

#define LINGER_MS 1000   /* graceful close: wait this long for the SCTP reset */

/* ---- events: GStreamer thread → main context ---------------------------- */

typedef enum {
  EV_DESCRIPTION_CREATED,  /* desc: our offer/answer, to set locally */
  EV_LOCAL_SET,            /* set-local-description resolved */
  EV_REMOTE_SET,           /* set-remote-description resolved */
  EV_CANDIDATE,            /* mline, text */
  EV_GATHERING_DONE,
  EV_CHANNEL,              /* channel: the remote's (answerer) */
  EV_OPEN,
  EV_MESSAGE,              /* bytes */
  EV_BUFFERED_LOW,
  EV_CHANNEL_CLOSED,
  EV_FAILED,               /* text: reason */
} EventKind;

typedef struct {
  EventKind                    kind;
  guint                        mline;
  char                        *text;
  GBytes                      *bytes;
  GstWebRTCSessionDescription *desc;
  GstWebRTCDataChannel        *channel;
} Event;

static Event *
event_new (EventKind kind)
{
  Event *ev = g_new0 (Event, 1);
  ev->kind = kind;
  return ev;
}

static void
event_free (Event *ev)
{
  g_free (ev->text);
  g_clear_pointer (&ev->bytes, g_bytes_unref);
  g_clear_pointer (&ev->desc, gst_webrtc_session_description_free);
  g_clear_object (&ev->channel);
  g_free (ev);
}

/* ---- the connection ---------------------------------------------------- */

struct _WspRtc {
  gint                  ref;               /* atomic */
  guint                 id;                /* registry key handed to GStreamer threads */
  gboolean              offerer;
  GMainContext         *context;           /* the owner's; callbacks run here */
  WspRtcCallbacks       cb;
  gpointer              user_data;

  gboolean              pinned;            /* ice_addresses given */
  gboolean              allow_v4, allow_v6;/* families pinned (both when not pinned) */

  /* Main context only. */
  GstElement           *pipeline;          /* NULL after teardown */
  GstElement           *webrtc;            /* owned by pipeline */
  GstWebRTCDataChannel *channel;           /* ref; ours (offerer) or the remote's */
  GSource              *bus_source;
  GSource              *linger_source;     /* graceful close deadline */
  gboolean              started;           /* offerer: wsp_rtc_start ran */
  gboolean              remote_set;        /* remote description given */
  gboolean              local_reported;    /* local_description called */
  gboolean              open_reported;     /* open called (pending sends flushed) */
  gboolean              gathering_done;    /* gathering ended (maybe not reported yet) */
  gboolean              eoc_reported;      /* "" candidate reported */
  gboolean              closed;            /* no more callbacks */
  gboolean              torn_down;         /* pipeline stopped, id unregistered */
  char                 *local_type;        /* "offer" | "answer" */
  char                 *local_sdp;
  char                 *local_fp, *remote_fp;
  GPtrArray            *mids;              /* char*, by mline, of our SDP */
  GQueue                held_candidates;   /* Event*, before local_reported */
  GQueue                pending_sends;     /* GBytes*, before open_reported */
  gsize                 pending_bytes;

  /* Any thread, under lock. */
  GMutex                lock;
  GQueue                events;            /* Event*, in arrival order */
  gboolean              drain_scheduled;
  gint                  channel_claimed;   /* atomic: answerer took a channel */
};

static GMutex      registry_lock;
static GHashTable *registry;               /* id → WspRtc* (the "alive" ref) */
static guint       registry_next_id;

static WspRtc *
wsp_rtc_ref (WspRtc *self)
{
  g_atomic_int_inc (&self->ref);
  return self;
}

static void
wsp_rtc_unref (WspRtc *self)
{
  if (!g_atomic_int_dec_and_test (&self->ref))
    return;
  /* Teardown ran (it owns the "alive" ref), so no GStreamer object is left. */
  g_assert (self->pipeline == NULL);
  g_queue_clear_full (&self->events, (GDestroyNotify) event_free);
  g_queue_clear_full (&self->held_candidates, (GDestroyNotify) event_free);
  g_queue_clear_full (&self->pending_sends, (GDestroyNotify) g_bytes_unref);
  g_clear_pointer (&self->mids, g_ptr_array_unref);
  g_free (self->local_type);
  g_free (self->local_sdp);
  g_free (self->local_fp);
  g_free (self->remote_fp);
  g_main_context_unref (self->context);
  g_mutex_clear (&self->lock);
  g_free (self);
}

/* Any thread: the connection with this id, referenced, or NULL once it has
 * been torn down. */
static WspRtc *
registry_lookup (guint id)
{
  WspRtc *self = NULL;

  g_mutex_lock (&registry_lock);
  if (registry != NULL)
    self = g_hash_table_lookup (registry, GUINT_TO_POINTER (id));
  if (self != NULL)
    wsp_rtc_ref (self);
  g_mutex_unlock (&registry_lock);
  return self;
}

guint
wsp_rtc_count_live (void)
{
  guint n;

  g_mutex_lock (&registry_lock);
  n = registry != NULL ? g_hash_table_size (registry) : 0;
  g_mutex_unlock (&registry_lock);
  return n;
}

static gboolean drain_events (gpointer data);

/* Any thread. Takes ev. */
static void
push_event (WspRtc *self, Event *ev)
{
  g_mutex_lock (&self->lock);
  g_queue_push_tail (&self->events, ev);
  if (!self->drain_scheduled)
    {
      GSource *source = g_idle_source_new ();

      self->drain_scheduled = TRUE;
      g_source_set_priority (source, G_PRIORITY_DEFAULT);
      g_source_set_static_name (source, "wsp-rtc drain");
      g_source_set_callback (source, drain_events, wsp_rtc_ref (self),
                             (GDestroyNotify) wsp_rtc_unref);
      g_source_attach (source, self->context);
      g_source_unref (source);
    }
  g_mutex_unlock (&self->lock);
}

/* GStreamer thread. Takes ev; drops it when the connection is gone. */
static void
post (gpointer id, Event *ev)
{
  WspRtc *self = registry_lookup (GPOINTER_TO_UINT (id));

  if (self == NULL)
    {
      event_free (ev);
      return;
    }
  push_event (self, ev);
  wsp_rtc_unref (self);
}

static void
post_failure (gpointer id, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static void
post_failure (gpointer id, const char *fmt, ...)
{
  Event *ev = event_new (EV_FAILED);
  va_list ap;

  va_start (ap, fmt);
  ev->text = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  post (id, ev);
}

#define ID(self) GUINT_TO_POINTER ((self)->id)

/* ---- init -------------------------------------------------------------- */

gboolean
wsp_rtc_init (GError **error)
{
  static GMutex lock;
  static gboolean initialised;
  static const char *const needed[] = {
    "webrtcbin", "dtlsdec", "dtlsenc", "sctpenc", "sctpdec", "nicesrc", "nicesink",
  };
  g_autoptr (GError) local = NULL;

  g_mutex_lock (&lock);
  if (!initialised)
    {
      if (!gst_init_check (NULL, NULL, &local))
        {
          g_mutex_unlock (&lock);
          g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED,
                       "cannot initialise GStreamer: %s", local->message);
          return FALSE;   /* initialised stays FALSE: a later call retries */
        }
      /* Fewer threads ending at awkward times: GLib's shared thread pool
       * (GStreamer's tasks and GIO's run on it) ends an idle thread at
       * once when two others are idle, and after 15 s otherwise. Idle
       * threads are kept instead and reused by the next connection. With
       * this, the export thread joined and the signaling fixes, a stress
       * loop of the sync suites under ASan went from 2 failures in 8 runs
       * (a thread ending while the daemon exited) to none in 15. It does
       * not stop every thread end: GStreamer's streaming threads still end
       * when a connection is torn down (seen with strace in sync-test),
       * and OpenSSL's per-thread state of one that ends while the process
       * exits is suppressed by name in tests/lsan.supp. */
      g_thread_pool_set_max_unused_threads (-1);
      g_thread_pool_set_max_idle_time (0);
      initialised = TRUE;
    }
  g_mutex_unlock (&lock);
  for (guint i = 0; i < G_N_ELEMENTS (needed); i++)
    {
      g_autoptr (GstElementFactory) factory = gst_element_factory_find (needed[i]);

      if (factory == NULL)
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED,
                       "GStreamer element '%s' is missing: install gstreamer1.0-plugins-bad "
                       "and gstreamer1.0-nice", needed[i]);
          return FALSE;
        }
    }
  return TRUE;
}

void
wsp_rtc_warm_up (void)
{
  /* dtlsdec creates the process-wide self-signed certificate (a g_once in
   * gstdtlsdec.c) when it is instantiated, and webrtcbin's transports reuse
   * it; the others load their plugins (and libnice, usrsctp) now rather
   * than during the first connection. */
  static const char *const elements[] = { "dtlsdec", "webrtcbin", "nicesrc", "sctpenc" };

  for (guint i = 0; i < G_N_ELEMENTS (elements); i++)
    {
      GstElement *element = gst_element_factory_make (elements[i], NULL);

      if (element != NULL)
        gst_object_unref (gst_object_ref_sink (element));
    }
}

/* ---- candidates -------------------------------------------------------- */

/* Whether a remote candidate may reach libnice. Any thread (pure). */
static gboolean
candidate_check (const WspRtc *self, const char *candidate, GError **error)
{
  g_auto (GStrv) tok = NULL;
  g_autoptr (GInetAddress) addr = NULL;
  const char *text = candidate;
  guint n;

  if (g_str_has_prefix (text, "a="))
    text += 2;
  if (!g_str_has_prefix (text, "candidate:"))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "candidate refused: not a candidate line");
      return FALSE;
    }
  /* foundation component transport priority address port "typ" type … */
  tok = g_strsplit (text + strlen ("candidate:"), " ", 0);
  n = g_strv_length (tok);
  if (n < 8 || strcmp (tok[6], "typ") != 0)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "candidate refused: malformed");
      return FALSE;
    }
  if (g_ascii_strcasecmp (tok[2], "udp") != 0)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID,
                   "candidate refused: transport '%s' (only UDP is used)", tok[2]);
      return FALSE;
    }
  if (g_str_has_suffix (tok[4], ".local"))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID,
                   "candidate refused: mDNS address '%s' cannot be resolved", tok[4]);
      return FALSE;
    }
  addr = g_inet_address_new_from_string (tok[4]);
  if (addr == NULL)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID,
                   "candidate refused: '%s' is not an IP address", tok[4]);
      return FALSE;
    }
  if ((g_inet_address_get_family (addr) == G_SOCKET_FAMILY_IPV4 && !self->allow_v4)
      || (g_inet_address_get_family (addr) == G_SOCKET_FAMILY_IPV6 && !self->allow_v6))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID,
                   "candidate refused: '%s' is outside the pinned ICE address families", tok[4]);
      return FALSE;
    }
  return TRUE;
}

/* The remote SDP without the candidate lines candidate_check refuses. */
static char *
sdp_filter_candidates (const WspRtc *self, const char *sdp)
{
  g_auto (GStrv) lines = g_strsplit (sdp, "\n", -1);
  g_autoptr (GString) out = g_string_sized_new (strlen (sdp));

  for (guint i = 0; lines[i] != NULL; i++)
    {
      if (g_str_has_prefix (lines[i], "a=candidate:"))
        {
          g_autofree char *line = g_strchomp (g_strdup (lines[i]));

          if (!candidate_check (self, line, NULL))
            continue;
        }
      g_string_append (out, lines[i]);
      if (lines[i + 1] != NULL)
        g_string_append_c (out, '\n');
    }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* ---- GStreamer-thread handlers: copy, post, nothing else ---------------- */

static void
on_channel_open (GstWebRTCDataChannel *channel, gpointer id)
{
  post (id, event_new (EV_OPEN));
}

static void
on_channel_close (GstWebRTCDataChannel *channel, gpointer id)
{
  post (id, event_new (EV_CHANNEL_CLOSED));
}

static void
on_channel_error (GstWebRTCDataChannel *channel, GError *err, gpointer id)
{
  post_failure (id, "data channel error: %s", err != NULL ? err->message : "unknown");
}

static void
on_message_data (GstWebRTCDataChannel *channel, GBytes *data, gpointer id)
{
  Event *ev = event_new (EV_MESSAGE);

  ev->bytes = data != NULL ? g_bytes_ref (data) : g_bytes_new (NULL, 0);
  post (id, ev);
}

static void
on_message_string (GstWebRTCDataChannel *channel, const char *str, gpointer id)
{
  Event *ev = event_new (EV_MESSAGE);

  ev->bytes = g_bytes_new (str, str != NULL ? strlen (str) : 0);
  post (id, ev);
}

static void
on_buffered_amount_low (GstWebRTCDataChannel *channel, gpointer id)
{
  post (id, event_new (EV_BUFFERED_LOW));
}

/* Any thread: before the channel can deliver anything to us. */
static void
channel_connect (GstWebRTCDataChannel *channel, gpointer id)
{
  g_object_set (channel, "buffered-amount-low-threshold", (guint64) WSP_RTC_LOW_MARK, NULL);
  g_signal_connect (channel, "on-open", G_CALLBACK (on_channel_open), id);
  g_signal_connect (channel, "on-close", G_CALLBACK (on_channel_close), id);
  g_signal_connect (channel, "on-error", G_CALLBACK (on_channel_error), id);
  g_signal_connect (channel, "on-message-data", G_CALLBACK (on_message_data), id);
  g_signal_connect (channel, "on-message-string", G_CALLBACK (on_message_string), id);
  g_signal_connect (channel, "on-buffered-amount-low", G_CALLBACK (on_buffered_amount_low), id);
}

static void
on_data_channel (GstElement *webrtc, GstWebRTCDataChannel *channel, gpointer id)
{
  g_autofree char *label = NULL;
  gboolean ordered = FALSE;
  gint max_retransmits = 0, max_lifetime = 0;
  GstWebRTCDataChannelState state = GST_WEBRTC_DATA_CHANNEL_STATE_CLOSED;
  WspRtc *self = registry_lookup (GPOINTER_TO_UINT (id));
  Event *ev;

  if (self == NULL)
    return;
  g_object_get (channel, "label", &label, "ordered", &ordered,
                "max-retransmits", &max_retransmits, "max-packet-lifetime", &max_lifetime, NULL);
  if (self->offerer || g_atomic_int_get (&self->channel_claimed))
    {
      /* A second channel (or any, towards the offerer): not ours; ignored. */
      g_debug ("rtc %u: ignoring extra data channel '%s'", self->id, label);
    }
  else if (g_strcmp0 (label, WSP_RTC_LABEL) != 0 || !ordered
           || max_retransmits != -1 || max_lifetime != -1)
    {
      post_failure (id, "remote opened data channel '%s', not an ordered, reliable '%s'",
                    label != NULL ? label : "", WSP_RTC_LABEL);
    }
  else if (g_atomic_int_compare_and_exchange (&self->channel_claimed, 0, 1))
    {
      /* The channel event goes first so that the owner's open callback can
       * already send; then connect, then look whether it is open already
       * (it may be: on-open would never fire). Duplicates fold on main. */
      ev = event_new (EV_CHANNEL);
      ev->channel = g_object_ref (channel);
      push_event (self, ev);
      channel_connect (channel, id);
      g_object_get (channel, "ready-state", &state, NULL);
      if (state == GST_WEBRTC_DATA_CHANNEL_STATE_OPEN)
        push_event (self, event_new (EV_OPEN));
    }
  wsp_rtc_unref (self);
}

static void
on_ice_candidate (GstElement *webrtc, guint mline, const char *candidate, gpointer id)
{
  Event *ev;

  if (candidate == NULL || *candidate == '\0')
    {
      post (id, event_new (EV_GATHERING_DONE));
      return;
    }
  ev = event_new (EV_CANDIDATE);
  ev->mline = mline;
  ev->text = g_strdup (g_str_has_prefix (candidate, "a=") ? candidate + 2 : candidate);
  post (id, ev);
}

static void
on_gathering_state (GstElement *webrtc, GParamSpec *pspec, gpointer id)
{
  GstWebRTCICEGatheringState state = GST_WEBRTC_ICE_GATHERING_STATE_NEW;

  g_object_get (webrtc, "ice-gathering-state", &state, NULL);
  if (state == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE)
    post (id, event_new (EV_GATHERING_DONE));
}

static void
on_ice_connection_state (GstElement *webrtc, GParamSpec *pspec, gpointer id)
{
  GstWebRTCICEConnectionState state = GST_WEBRTC_ICE_CONNECTION_STATE_NEW;

  g_object_get (webrtc, "ice-connection-state", &state, NULL);
  if (state == GST_WEBRTC_ICE_CONNECTION_STATE_FAILED)
    post_failure (id, "ICE failed");
}

static void
on_connection_state (GstElement *webrtc, GParamSpec *pspec, gpointer id)
{
  GstWebRTCPeerConnectionState state = GST_WEBRTC_PEER_CONNECTION_STATE_NEW;

  g_object_get (webrtc, "connection-state", &state, NULL);
  if (state == GST_WEBRTC_PEER_CONNECTION_STATE_FAILED)
    post_failure (id, "connection failed (ICE or DTLS)");
}

/* A promise's error, if it has one ("error" field, or not replied). */
static char *
promise_error (GstPromise *promise, const char *what)
{
  const GstStructure *reply;
  g_autoptr (GError) err = NULL;

  if (gst_promise_wait (promise) != GST_PROMISE_RESULT_REPLIED)
    return g_strdup_printf ("%s: interrupted", what);
  reply = gst_promise_get_reply (promise);
  if (reply != NULL && gst_structure_has_field (reply, "error"))
    {
      gst_structure_get (reply, "error", G_TYPE_ERROR, &err, NULL);
      return g_strdup_printf ("%s: %s", what, err != NULL ? err->message : "failed");
    }
  return NULL;
}

static void
on_description_created (GstPromise *promise, gpointer id)
{
  g_autofree char *failure = promise_error (promise, "cannot create the SDP");
  const GstStructure *reply;
  GstWebRTCSessionDescription *desc = NULL;
  Event *ev;

  if (failure == NULL)
    {
      reply = gst_promise_get_reply (promise);
      if (reply == NULL
          || (!gst_structure_get (reply, "offer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &desc, NULL)
              && !gst_structure_get (reply, "answer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &desc,
                                     NULL)))
        failure = g_strdup ("cannot create the SDP: empty reply");
    }
  if (failure != NULL)
    {
      post_failure (id, "%s", failure);
      return;
    }
  ev = event_new (EV_DESCRIPTION_CREATED);
  ev->desc = desc;
  post (id, ev);
}

static void
on_local_set (GstPromise *promise, gpointer id)
{
  g_autofree char *failure = promise_error (promise, "cannot set the local SDP");

  if (failure != NULL)
    post_failure (id, "%s", failure);
  else
    post (id, event_new (EV_LOCAL_SET));
}

static void
on_remote_set (GstPromise *promise, gpointer id)
{
  g_autofree char *failure = promise_error (promise, "cannot set the remote SDP");

  if (failure != NULL)
    post_failure (id, "%s", failure);
  else
    post (id, event_new (EV_REMOTE_SET));
}

/* ---- main context ------------------------------------------------------ */

static void
teardown (WspRtc *self)
{
  if (self->torn_down)
    return;
  self->torn_down = TRUE;
  self->closed = TRUE;
  if (self->linger_source != NULL)
    {
      g_source_destroy (self->linger_source);
      g_clear_pointer (&self->linger_source, g_source_unref);
    }
  /* Unregister first: from here on GStreamer threads find nothing. */
  g_mutex_lock (&registry_lock);
  g_hash_table_remove (registry, ID (self));
  g_mutex_unlock (&registry_lock);

  if (self->channel != NULL)
    g_signal_handlers_disconnect_by_data (self->channel, ID (self));
  g_signal_handlers_disconnect_by_data (self->webrtc, ID (self));
  /* Joins webrtcbin's, libnice's and SCTP's threads. */
  gst_element_set_state (self->pipeline, GST_STATE_NULL);
  if (self->bus_source != NULL)
    {
      g_source_destroy (self->bus_source);
      g_clear_pointer (&self->bus_source, g_source_unref);
    }
  g_clear_object (&self->channel);
  self->webrtc = NULL;
  g_clear_pointer (&self->pipeline, gst_object_unref);
  g_queue_clear_full (&self->pending_sends, (GDestroyNotify) g_bytes_unref);
  self->pending_bytes = 0;
  g_queue_clear_full (&self->held_candidates, (GDestroyNotify) event_free);
  wsp_rtc_unref (self);   /* the "alive" reference */
}

/* Ends the connection and reports it, once, unless the owner closed it. */
static void
fail (WspRtc *self, const char *reason)
{
  if (self->closed)
    return;
  g_debug ("rtc %u: closed: %s", self->id, reason);
  self->closed = TRUE;
  teardown (self);
  if (self->cb.closed != NULL)
    self->cb.closed (self, reason, self->user_data);
}

static void
report_candidate (WspRtc *self, Event *ev)
{
  const char *mid = ev->mline < self->mids->len ? g_ptr_array_index (self->mids, ev->mline) : "";

  if (self->cb.local_candidate != NULL)
    self->cb.local_candidate (self, ev->text, mid, ev->mline, self->user_data);
}

static void
report_end_of_candidates (WspRtc *self)
{
  Event ev = { .kind = EV_CANDIDATE, .mline = 0, .text = (char *) "" };

  if (self->eoc_reported || !self->gathering_done || !self->local_reported)
    return;
  self->eoc_reported = TRUE;
  report_candidate (self, &ev);
}

/* Our SDP was created: remember its text, fingerprint and mids, apply it. */
static void
handle_description_created (WspRtc *self, GstWebRTCSessionDescription *desc)
{
  g_autoptr (GError) error = NULL;
  GstPromise *promise;

  self->local_type = g_strdup (gst_webrtc_sdp_type_to_string (desc->type));
  self->local_sdp = gst_sdp_message_as_text (desc->sdp);
  self->local_fp = wsp_sdp_fingerprint (self->local_sdp, -1, &error);
  if (self->local_fp == NULL)
    {
      g_autofree char *reason = g_strdup_printf ("local SDP: %s", error->message);
      fail (self, reason);
      return;
    }
  for (guint i = 0; i < gst_sdp_message_medias_len (desc->sdp); i++)
    {
      const char *mid = gst_sdp_media_get_attribute_val (gst_sdp_message_get_media (desc->sdp, i),
                                                         "mid");
      g_ptr_array_add (self->mids, g_strdup (mid != NULL ? mid : ""));
    }
  promise = gst_promise_new_with_change_func (on_local_set, ID (self), NULL);
  g_signal_emit_by_name (self->webrtc, "set-local-description", desc, promise);
  gst_promise_unref (promise);
}

static void
handle_local_set (WspRtc *self)
{
  Event *ev;

  self->local_reported = TRUE;
  if (self->cb.local_description != NULL)
    self->cb.local_description (self, self->local_type, self->local_sdp, self->user_data);
  while (!self->closed && (ev = g_queue_pop_head (&self->held_candidates)) != NULL)
    {
      report_candidate (self, ev);
      event_free (ev);
    }
  if (!self->closed)
    report_end_of_candidates (self);
}

static void
report_open (WspRtc *self)
{
  GBytes *msg;

  if (self->open_reported)
    return;
  if (self->channel == NULL)
    {
      fail (self, "data channel opened before it was announced");
      return;
    }
  self->open_reported = TRUE;
  /* What the owner sent early goes first, in order. */
  while ((msg = g_queue_pop_head (&self->pending_sends)) != NULL)
    {
      g_autoptr (GError) error = NULL;
      gboolean sent;

      self->pending_bytes -= g_bytes_get_size (msg);
      sent = gst_webrtc_data_channel_send_data_full (self->channel, msg, &error);
      g_bytes_unref (msg);
      if (!sent)
        {
          g_autofree char *reason = g_strdup_printf ("cannot send: %s", error->message);
          fail (self, reason);
          return;
        }
    }
  if (self->cb.open != NULL)
    self->cb.open (self, self->user_data);
}

static void
handle_event (WspRtc *self, Event *ev)
{
  GstPromise *promise;

  /* After close only the close handshake matters (graceful close). */
  if (self->closed)
    {
      if (ev->kind == EV_CHANNEL_CLOSED)
        teardown (self);
      return;
    }
  switch (ev->kind)
    {
    case EV_DESCRIPTION_CREATED:
      if (self->local_sdp == NULL)
        handle_description_created (self, ev->desc);
      break;
    case EV_LOCAL_SET:
      if (!self->local_reported)
        handle_local_set (self);
      break;
    case EV_REMOTE_SET:
      if (!self->offerer)
        {
          promise = gst_promise_new_with_change_func (on_description_created, ID (self), NULL);
          g_signal_emit_by_name (self->webrtc, "create-answer", NULL, promise);
          gst_promise_unref (promise);
        }
      break;
    case EV_CANDIDATE:   /* drain_events handles these */
      break;
    case EV_GATHERING_DONE:
      self->gathering_done = TRUE;
      report_end_of_candidates (self);
      break;
    case EV_CHANNEL:
      if (self->channel == NULL)
        self->channel = g_steal_pointer (&ev->channel);
      break;
    case EV_OPEN:
      report_open (self);
      break;
    case EV_MESSAGE:
      report_open (self);
      if (!self->closed && self->cb.message != NULL)
        self->cb.message (self, ev->bytes, self->user_data);
      break;
    case EV_BUFFERED_LOW:
      if (self->open_reported && self->cb.writable != NULL)
        self->cb.writable (self, self->user_data);
      break;
    case EV_CHANNEL_CLOSED:
      fail (self, "data channel closed by the peer");
      break;
    case EV_FAILED:
      fail (self, ev->text);
      break;
    }
}

/* Main context: runs the queued events in order. */
static gboolean
drain_events (gpointer data)
{
  WspRtc *self = data;
  GQueue batch = G_QUEUE_INIT;
  Event *ev;

  g_mutex_lock (&self->lock);
  batch = self->events;
  g_queue_init (&self->events);
  self->drain_scheduled = FALSE;
  g_mutex_unlock (&self->lock);

  while ((ev = g_queue_pop_head (&batch)) != NULL)
    {
      if (ev->kind == EV_CANDIDATE && !self->closed && !self->local_reported)
        {
          g_queue_push_tail (&self->held_candidates, ev);   /* reported after the SDP */
          continue;
        }
      if (ev->kind == EV_CANDIDATE && !self->closed)
        report_candidate (self, ev);
      else
        handle_event (self, ev);
      event_free (ev);
    }
  return G_SOURCE_REMOVE;
}

static gboolean
on_bus_message (GstBus *bus, GstMessage *message, gpointer data)
{
  WspRtc *self = data;   /* main context; the watch dies in teardown */
  g_autoptr (GError) err = NULL;
  g_autofree char *reason = NULL;

  if (GST_MESSAGE_TYPE (message) == GST_MESSAGE_ERROR)
    {
      gst_message_parse_error (message, &err, NULL);
      reason = g_strdup_printf ("GStreamer error from %s: %s", GST_OBJECT_NAME (message->src),
                                err != NULL ? err->message : "unknown");
      /* closed() may free the owner's reference: keep self for fail(). */
      wsp_rtc_ref (self);
      fail (self, reason);
      wsp_rtc_unref (self);
    }
  return G_SOURCE_CONTINUE;
}

/* ---- construction ------------------------------------------------------ */

static gboolean
configure_ice (WspRtc *self, const WspRtcConfig *cfg, GError **error)
{
  g_autoptr (GstObject) ice = NULL;
  g_autoptr (GObject) agent = NULL;

  g_object_get (self->webrtc, "ice-agent", &ice, NULL);
  if (ice == NULL)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "webrtcbin has no ICE agent");
      return FALSE;
    }
  if (self->pinned)
    {
      for (guint i = 0; cfg->ice_addresses[i] != NULL; i++)
        {
          gboolean ok = FALSE;

          g_signal_emit_by_name (ice, "add-local-ip-address", cfg->ice_addresses[i], &ok);
          if (!ok)
            {
              g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                           "ice_addresses: libnice refused '%s'", cfg->ice_addresses[i]);
              return FALSE;
            }
        }
      /* libnice's UPnP sends SSDP multicasts out of the real interface even
       * when pinned; ICE-TCP would listen beyond what we test. */
      g_object_set (ice, "ice-tcp", FALSE, "ice-udp", TRUE, NULL);
      g_object_get (ice, "agent", &agent, NULL);
      if (agent == NULL || g_object_class_find_property (G_OBJECT_GET_CLASS (agent), "upnp") == NULL)
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "cannot turn libnice's UPnP off");
          return FALSE;
        }
      g_object_set (agent, "upnp", FALSE, NULL);
    }

  if (cfg->stun_servers != NULL && cfg->stun_servers[0] != NULL)
    {
      if (cfg->stun_servers[1] != NULL)
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                       "stun_servers: at most one STUN server is supported");
          return FALSE;
        }
      if (!g_str_has_prefix (cfg->stun_servers[0], "stun://"))
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                       "stun_servers: '%s' is not a stun://host:port URI", cfg->stun_servers[0]);
          return FALSE;
        }
      g_object_set (self->webrtc, "stun-server", cfg->stun_servers[0], NULL);
    }
  for (guint i = 0; cfg->turn_servers != NULL && cfg->turn_servers[i] != NULL; i++)
    {
      const char *uri = cfg->turn_servers[i];
      gboolean ok = FALSE;

      if (g_str_has_prefix (uri, "turn://") || g_str_has_prefix (uri, "turns://"))
        g_signal_emit_by_name (self->webrtc, "add-turn-server", uri, &ok);
      if (!ok)
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                       "turn_servers: '%s' is not a turn(s)://user:password@host:port URI", uri);
          return FALSE;
        }
    }
  return TRUE;
}

/* Frees a connection that never got registered or started. */
static void
abandon (WspRtc *self)
{
  if (self->pipeline != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->webrtc, ID (self));
      gst_element_set_state (self->pipeline, GST_STATE_NULL);
      g_clear_pointer (&self->pipeline, gst_object_unref);
    }
  if (self->bus_source != NULL)
    {
      g_source_destroy (self->bus_source);
      g_clear_pointer (&self->bus_source, g_source_unref);
    }
  g_mutex_lock (&registry_lock);
  if (registry != NULL)
    g_hash_table_remove (registry, ID (self));
  g_mutex_unlock (&registry_lock);
  self->ref = 1;
  wsp_rtc_unref (self);
}

WspRtc *
wsp_rtc_new (gboolean offerer, const WspRtcConfig *cfg, const WspRtcCallbacks *cb,
             gpointer user_data, GError **error)
{
  static const WspRtcConfig no_config = { NULL, NULL, NULL };
  g_autoptr (GstBus) bus = NULL;
  WspRtc *self;

  g_return_val_if_fail (cb != NULL, NULL);
  if (cfg == NULL)
    cfg = &no_config;

  self = g_new0 (WspRtc, 1);
  self->ref = 2;   /* the owner's and "alive" */
  self->offerer = offerer;
  self->context = g_main_context_ref_thread_default ();
  self->cb = *cb;
  self->user_data = user_data;
  self->mids = g_ptr_array_new_with_free_func (g_free);
  g_mutex_init (&self->lock);
  g_queue_init (&self->events);
  g_queue_init (&self->held_candidates);
  g_queue_init (&self->pending_sends);

  self->pinned = cfg->ice_addresses != NULL && cfg->ice_addresses[0] != NULL;
  self->allow_v4 = self->allow_v6 = !self->pinned;
  for (guint i = 0; self->pinned && cfg->ice_addresses[i] != NULL; i++)
    {
      g_autoptr (GInetAddress) addr = g_inet_address_new_from_string (cfg->ice_addresses[i]);

      if (addr == NULL)
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                       "ice_addresses: '%s' is not an IP address", cfg->ice_addresses[i]);
          abandon (self);
          return NULL;
        }
      if (g_inet_address_get_family (addr) == G_SOCKET_FAMILY_IPV4)
        self->allow_v4 = TRUE;
      else
        self->allow_v6 = TRUE;
    }

  g_mutex_lock (&registry_lock);
  if (registry == NULL)
    registry = g_hash_table_new (NULL, NULL);
  do
    self->id = ++registry_next_id;
  while (self->id == 0 || g_hash_table_contains (registry, ID (self)));
  g_hash_table_insert (registry, ID (self), self);
  g_mutex_unlock (&registry_lock);

  self->pipeline = gst_pipeline_new (NULL);
  self->webrtc = gst_element_factory_make ("webrtcbin", NULL);
  if (self->pipeline == NULL || self->webrtc == NULL)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED,
                   "cannot create webrtcbin: install gstreamer1.0-plugins-bad and "
                   "gstreamer1.0-nice (and call wsp_rtc_init first)");
      if (self->webrtc != NULL)
        gst_object_unref (gst_object_ref_sink (self->webrtc));
      self->webrtc = NULL;
      if (self->pipeline != NULL)
        g_clear_pointer (&self->pipeline, gst_object_unref);
      abandon (self);
      return NULL;
    }
  gst_bin_add (GST_BIN (self->pipeline), self->webrtc);
  g_object_set (self->webrtc, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE, NULL);
  if (!configure_ice (self, cfg, error))
    {
      abandon (self);
      return NULL;
    }

  g_signal_connect (self->webrtc, "on-ice-candidate", G_CALLBACK (on_ice_candidate), ID (self));
  g_signal_connect (self->webrtc, "on-data-channel", G_CALLBACK (on_data_channel), ID (self));
  g_signal_connect (self->webrtc, "notify::ice-gathering-state", G_CALLBACK (on_gathering_state),
                    ID (self));
  g_signal_connect (self->webrtc, "notify::ice-connection-state",
                    G_CALLBACK (on_ice_connection_state), ID (self));
  g_signal_connect (self->webrtc, "notify::connection-state", G_CALLBACK (on_connection_state),
                    ID (self));

  bus = gst_pipeline_get_bus (GST_PIPELINE (self->pipeline));
  self->bus_source = gst_bus_create_watch (bus);
  g_source_set_callback (self->bus_source, (GSourceFunc) (void (*) (void)) on_bus_message, self,
                         NULL);
  g_source_attach (self->bus_source, self->context);

  /* The answerer runs from the start; the offerer waits for wsp_rtc_start. */
  if (!offerer
      && gst_element_set_state (self->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "cannot start webrtcbin");
      abandon (self);
      return NULL;
    }
  return self;
}

void
wsp_rtc_start (WspRtc *self)
{
  g_autoptr (GstStructure) options = NULL;
  GstWebRTCDataChannel *channel = NULL;
  GstPromise *promise;

  g_return_if_fail (self != NULL);
  if (!self->offerer || self->started || self->closed)
    return;
  self->started = TRUE;

  if (gst_element_set_state (self->pipeline, GST_STATE_READY) == GST_STATE_CHANGE_FAILURE)
    {
      post_failure (ID (self), "cannot start webrtcbin");
      return;
    }
  options = gst_structure_new ("options", "ordered", G_TYPE_BOOLEAN, TRUE, NULL);
  g_signal_emit_by_name (self->webrtc, "create-data-channel", WSP_RTC_LABEL, options, &channel);
  if (channel == NULL)
    {
      post_failure (ID (self), "cannot create the data channel");
      return;
    }
  self->channel = channel;
  g_atomic_int_set (&self->channel_claimed, 1);
  channel_connect (channel, ID (self));
  if (gst_element_set_state (self->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
    {
      post_failure (ID (self), "cannot start webrtcbin");
      return;
    }
  promise = gst_promise_new_with_change_func (on_description_created, ID (self), NULL);
  g_signal_emit_by_name (self->webrtc, "create-offer", NULL, promise);
  gst_promise_unref (promise);
}

gboolean
wsp_rtc_set_remote_description (WspRtc *self, const char *type, const char *sdp, GError **error)
{
  const char *want = self->offerer ? "answer" : "offer";
  g_autofree char *filtered = NULL;
  g_autofree char *fp = NULL;
  GstSDPMessage *msg = NULL;
  GstWebRTCSessionDescription *desc;
  GstPromise *promise;

  g_return_val_if_fail (self != NULL && type != NULL && sdp != NULL, FALSE);
  if (self->closed)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CLOSED, "connection closed");
      return FALSE;
    }
  if (strcmp (type, want) != 0)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "remote description: expected an %s, got '%s'",
                   want, type);
      return FALSE;
    }
  if (self->remote_set || (self->offerer && !self->started))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "remote description: unexpected %s now",
                   type);
      return FALSE;
    }
  fp = wsp_sdp_fingerprint (sdp, -1, error);
  if (fp == NULL)
    {
      g_prefix_error (error, "remote description: ");
      return FALSE;
    }
  filtered = sdp_filter_candidates (self, sdp);
  if (gst_sdp_message_new_from_text (filtered, &msg) != GST_SDP_OK
      || gst_sdp_message_medias_len (msg) == 0)
    {
      g_clear_pointer (&msg, gst_sdp_message_free);
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "remote description: unparsable SDP");
      return FALSE;
    }
  self->remote_set = TRUE;
  self->remote_fp = g_steal_pointer (&fp);
  desc = gst_webrtc_session_description_new (self->offerer ? GST_WEBRTC_SDP_TYPE_ANSWER
                                                           : GST_WEBRTC_SDP_TYPE_OFFER, msg);
  promise = gst_promise_new_with_change_func (on_remote_set, ID (self), NULL);
  g_signal_emit_by_name (self->webrtc, "set-remote-description", desc, promise);
  gst_promise_unref (promise);
  gst_webrtc_session_description_free (desc);
  return TRUE;
}

gboolean
wsp_rtc_add_remote_candidate (WspRtc *self, const char *candidate, guint mline, GError **error)
{
  g_return_val_if_fail (self != NULL && candidate != NULL, FALSE);
  if (self->closed)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CLOSED, "connection closed");
      return FALSE;
    }
  if (*candidate == '\0')
    return TRUE;   /* end of candidates: libnice does not need it */
  if (!candidate_check (self, candidate, error))
    return FALSE;
  g_signal_emit_by_name (self->webrtc, "add-ice-candidate", mline,
                         g_str_has_prefix (candidate, "a=") ? candidate + 2 : candidate);
  return TRUE;
}

static gsize
channel_buffered (WspRtc *self)
{
  guint64 amount = 0;

  if (self->channel != NULL && !self->torn_down)
    g_object_get (self->channel, "buffered-amount", &amount, NULL);
  return (gsize) amount;
}

gsize
wsp_rtc_buffered_amount (WspRtc *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return channel_buffered (self) + self->pending_bytes;
}

gboolean
wsp_rtc_is_writable (WspRtc *self)
{
  g_return_val_if_fail (self != NULL, FALSE);
  return !self->closed && wsp_rtc_buffered_amount (self) < WSP_RTC_HIGH_MARK;
}

gboolean
wsp_rtc_is_open (WspRtc *self)
{
  g_return_val_if_fail (self != NULL, FALSE);
  return !self->closed && self->open_reported;
}

gboolean
wsp_rtc_send (WspRtc *self, GBytes *msg, GError **error)
{
  gsize size;
  g_autoptr (GError) local = NULL;

  g_return_val_if_fail (self != NULL && msg != NULL, FALSE);
  size = g_bytes_get_size (msg);
  if (self->closed)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CLOSED, "connection closed");
      return FALSE;
    }
  if (size > WSP_RTC_MAX_MESSAGE)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_TOO_LARGE,
                   "message of %" G_GSIZE_FORMAT " bytes exceeds %u", size, WSP_RTC_MAX_MESSAGE);
      return FALSE;
    }
  if (wsp_rtc_buffered_amount (self) + size > WSP_RTC_HARD_LIMIT)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_BUSY, "send buffer full (%u bytes)",
                   WSP_RTC_HARD_LIMIT);
      return FALSE;
    }
  if (!self->open_reported)
    {
      g_queue_push_tail (&self->pending_sends, g_bytes_ref (msg));
      self->pending_bytes += size;
      return TRUE;
    }
  if (!gst_webrtc_data_channel_send_data_full (self->channel, msg, &local))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "cannot send: %s", local->message);
      return FALSE;
    }
  return TRUE;
}

const char *
wsp_rtc_local_fingerprint (WspRtc *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->local_fp;
}

const char *
wsp_rtc_remote_fingerprint (WspRtc *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  return self->remote_fp;
}

static gboolean
on_linger_timeout (gpointer data)
{
  WspRtc *self = data;

  g_clear_pointer (&self->linger_source, g_source_unref);
  teardown (self);
  return G_SOURCE_REMOVE;
}

void
wsp_rtc_close (WspRtc *self)
{
  GstWebRTCDataChannelState state = GST_WEBRTC_DATA_CHANNEL_STATE_CLOSED;

  if (self == NULL || self->closed)
    return;
  self->closed = TRUE;
  if (self->channel != NULL)
    g_object_get (self->channel, "ready-state", &state, NULL);
  if (state != GST_WEBRTC_DATA_CHANNEL_STATE_OPEN)
    {
      teardown (self);
      return;
    }
  /* Graceful: the SCTP stream reset tells the remote; our on-close (its
   * reset back) or the deadline ends it. The "alive" ref keeps us. */
  gst_webrtc_data_channel_close (self->channel);
  self->linger_source = g_timeout_source_new (LINGER_MS);
  g_source_set_static_name (self->linger_source, "wsp-rtc linger");
  g_source_set_callback (self->linger_source, on_linger_timeout, self, NULL);
  g_source_attach (self->linger_source, self->context);
}

void
wsp_rtc_free (WspRtc *self)
{
  if (self == NULL)
    return;
  wsp_rtc_close (self);
  wsp_rtc_unref (self);
}
