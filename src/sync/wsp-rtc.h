/* wsp-rtc.h — one WebRTC peer connection carrying one data channel
 * (SPEC 7.1: label "workstream-v1", ordered, reliable, trickle ICE), on
 * GStreamer's webrtcbin (gst-plugins-bad) and libnice.
 *
 * Threading contract: every WspRtc function must be called on the thread
 * that owns the GMainContext that was thread-default at wsp_rtc_new(), and
 * every callback runs there, never inside a wsp_rtc_* call (each is
 * deferred through an idle source). webrtcbin's own threads never see the
 * caller's objects. After wsp_rtc_close() (or wsp_rtc_free()) no callback
 * runs any more.
 *
 * Signaling is the caller's: pass what local_description/local_candidate
 * report to the remote side, and feed the remote's into
 * wsp_rtc_set_remote_description()/wsp_rtc_add_remote_candidate().
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define WSP_RTC_LABEL             "workstream-v1"
#define WSP_RTC_MAX_MESSAGE       65536               /* bytes: larger sends fail */
#define WSP_RTC_HIGH_MARK         (8u * 1024 * 1024)  /* bytes buffered: not writable at or above */
#define WSP_RTC_LOW_MARK          (2u * 1024 * 1024)  /* bytes buffered: writable() fires below */
#define WSP_RTC_HARD_LIMIT        (16u * 1024 * 1024) /* bytes buffered: send refuses (BUSY) above */

typedef struct _WspRtc WspRtc;

typedef struct {
  /* Our SDP, once webrtcbin has applied it; type is "offer" or "answer".
   * Send it to the remote side. Reported once. */
  void (*local_description) (WspRtc *rtc, const char *type, const char *sdp, gpointer user_data);
  /* A local ICE candidate ("candidate:…"), or "" when gathering ended.
   * Only after local_description. */
  void (*local_candidate) (WspRtc *rtc, const char *candidate, const char *sdp_mid, guint mline,
                           gpointer user_data);
  /* The data channel is open; wsp_rtc_send() delivers from now on (what was
   * sent earlier was queued and goes first). Reported once, before any
   * message. */
  void (*open) (WspRtc *rtc, gpointer user_data);
  /* One message from the remote side, in order. Text messages (which
   * WorkStream peers never send) arrive as their UTF-8 bytes. */
  void (*message) (WspRtc *rtc, GBytes *data, gpointer user_data);
  /* The buffered amount fell below WSP_RTC_LOW_MARK: resume sending. */
  void (*writable) (WspRtc *rtc, gpointer user_data);
  /* The connection failed or the remote closed it; reported at most once,
   * and never after wsp_rtc_close(). The pipeline is already being torn
   * down: free the WspRtc when convenient. */
  void (*closed) (WspRtc *rtc, const char *reason, gpointer user_data);
} WspRtcCallbacks;

typedef struct {
  /* NULL-terminated IP literals. When set, ICE gathers only on these
   * addresses, with UPnP and ICE-TCP off, and remote candidates of other
   * address families (and mDNS ".local" ones) are refused. NULL or empty:
   * every interface. */
  const char *const *ice_addresses;
  /* NULL-terminated; at most one "stun://host:port" (webrtcbin's limit). */
  const char *const *stun_servers;
  /* NULL-terminated "turn(s)://user:password@host:port" URIs. */
  const char *const *turn_servers;
} WspRtcConfig;

/* Once per process, before anything else here: initialises GStreamer and
 * checks the elements exist. Fails (WSP_ERROR_FAILED) with an install hint
 * when gstreamer1.0-plugins-bad or gstreamer1.0-nice is missing. Idempotent;
 * any thread. */
gboolean    wsp_rtc_init (GError **error);

/* Generates the process-wide DTLS certificate now (~150 ms of CPU, on the
 * calling thread) so the first connection does not pay for it. Optional. */
void        wsp_rtc_warm_up (void);

/* A connection, not yet started. cfg and cb are copied. Fails with
 * WSP_ERROR_CONFIG (the message names the bad address/server) or
 * WSP_ERROR_FAILED (GStreamer could not build the pipeline). */
WspRtc     *wsp_rtc_new (gboolean offerer, const WspRtcConfig *cfg, const WspRtcCallbacks *cb,
                         gpointer user_data, GError **error);

/* The offerer creates the channel and its offer (local_description follows).
 * Nothing for the answerer, which starts at wsp_rtc_new(). Once. */
void        wsp_rtc_start (WspRtc *rtc);

/* The remote SDP: an "answer" for the offerer (after wsp_rtc_start), an
 * "offer" for the answerer (which then answers). Once. Candidates inside
 * the SDP are filtered as in wsp_rtc_add_remote_candidate(). Fails with
 * WSP_ERROR_INVALID (wrong type, unparsable SDP, no fingerprint) or
 * WSP_ERROR_CLOSED; the connection itself is unaffected by a failure. */
gboolean    wsp_rtc_set_remote_description (WspRtc *rtc, const char *type, const char *sdp,
                                            GError **error);

/* A remote candidate ("candidate:…" or "a=candidate:…"; "" = end of
 * candidates, accepted and ignored). May arrive before the remote
 * description. Refuses (WSP_ERROR_INVALID) unparsable, non-UDP, mDNS and,
 * when pinned, other-family candidates; the connection is unaffected.
 * WSP_ERROR_CLOSED after close. */
gboolean    wsp_rtc_add_remote_candidate (WspRtc *rtc, const char *candidate, guint mline,
                                          GError **error);

/* Queues one binary message (at most WSP_RTC_MAX_MESSAGE bytes; ref taken).
 * Before open it waits in order and goes out at open. Check
 * wsp_rtc_is_writable() before bulk sends and wait for writable() when it
 * says no. Fails with WSP_ERROR_TOO_LARGE, WSP_ERROR_BUSY (buffered amount
 * above WSP_RTC_HARD_LIMIT), WSP_ERROR_CLOSED or WSP_ERROR_FAILED (the
 * channel refused it). */
gboolean    wsp_rtc_send (WspRtc *rtc, GBytes *msg, GError **error);

/* Bytes accepted by wsp_rtc_send() and not yet handed to SCTP. */
gsize       wsp_rtc_buffered_amount (WspRtc *rtc);
/* Open (or still opening), not closed, and buffered below the high mark. */
gboolean    wsp_rtc_is_writable (WspRtc *rtc);
gboolean    wsp_rtc_is_open (WspRtc *rtc);

/* Normalised "sha-256 AB:CD:…" (wsp_sdp_fingerprint) of our SDP / the
 * remote's; NULL until known. Owned by rtc. */
const char *wsp_rtc_local_fingerprint (WspRtc *rtc);
const char *wsp_rtc_remote_fingerprint (WspRtc *rtc);

/* Idempotent. Stops every callback at once; closes the channel gracefully
 * (the remote sees it closed) and tears the pipeline down when the close
 * completes or after 1 s, on the main context, whichever comes first. */
void        wsp_rtc_close (WspRtc *rtc);

/* Closes and drops the caller's reference; the struct lives on until the
 * teardown is done. NULL is fine. */
void        wsp_rtc_free (WspRtc *rtc);

/* Connections whose pipeline still exists, closing ones included (all
 * threads). A shutdown iterates its main context until this is 0. */
guint       wsp_rtc_count_live (void);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (WspRtc, wsp_rtc_free)

G_END_DECLS
