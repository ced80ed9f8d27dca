/* wsp-sync.c — peer sync in the daemon (SPEC 7). See wsp-sync.h.
 *
 * Nouns:
 *   Link     one remote member we know of (it is or was reachable by
 *            signaling). Lives until dropped or shutdown; holds what the
 *            API shows (state, counters, the peer's last known clock) and
 *            the retry timer.
 *   Session  one attempt at a channel with that member: a WspRtc and the
 *            protocol state of SPEC 7.2 on it. A link has at most one.
 *   Export   the cursor over the op log for one session (what the other
 *            side lacks), advanced on a worker thread in chunks.
 *
 * Protocol per session:
 *   - hello is queued at creation (it goes out as the channel opens);
 *   - on the other's hello: check project and peer id, remember its nonce
 *     and clock, send auth (mac + sig over both DTLS fingerprints);
 *   - on the other's auth: verify; the session is now connected and the
 *     export starts from the other's hello clock;
 *   - ops received are submitted to the store run by run; the store's
 *     verdict comes back here (bad run → err bad_run and close; gap → req);
 *     an ack with our applied clock follows applied ops (coalesced);
 *   - new ops in the store (local or from another peer) wake every idle
 *     export after WSP_SYNC_COALESCE_MS;
 *   - ping every 10 s; three unanswered → close and retry.
 * Flow control: a chunk of messages is produced only while the channel is
 * writable (below its high mark), so memory per peer stays bounded by the
 * channel's buffer plus one chunk however far behind the peer is.
 *
 * Who offers: the smaller peer id (SPEC 7.1). The offerer retries after a
 * drop with backoff 0.5 s doubling to 30 s (reset once authenticated); the
 * answerer waits for the next offer.
 *
 * Locking: main-thread state needs none. `lock` guards what the HTTP
 * thread reads (the links table, each link's public fields, the urls) and
 * is never held across a call into another module.
 */
#define G_LOG_DOMAIN "wsp-sync"

#include "sync/wsp-sync.h"

#include <gio/gio.h>
#include <sodium.h>
#include <string.h>

#include "common/wsp-common.h"
#include "sync/wsp-auth.h"
#include "sync/wsp-rtc.h"
#include "sync/wsp-signal.h"
#include "sync/wsp-wire.h"
#include "workspace/wsp-workspace.h"

#define WSP_SYNC_COALESCE_MS      5        /* new ops wait this long to travel together */
#define WSP_SYNC_ACK_MS           20       /* acks coalesce over this */
#define WSP_SYNC_PING_MS          10000    /* SPEC 7.2 */
#define WSP_SYNC_PINGS_MISSED     3
#define WSP_SYNC_CONNECT_MS       10000    /* offer to authenticated, else retry (also bounds
                                             * how long an offer the peer ignored waits) */
#define WSP_SYNC_BACKOFF_MIN_MS   500
#define WSP_SYNC_BACKOFF_MAX_MS   30000
#define WSP_SYNC_CHUNK_BYTES      (1024 * 1024)   /* runs per worker chunk */
/* Ops sent and not yet acked: the sender waits above this, so a receiver
 * that applies slower than the wire delivers holds a bounded backlog. */
#define WSP_SYNC_WINDOW_OPS       65536
#define WSP_SYNC_REQ_MIN_MS       500      /* at most one req per this */
#define WSP_SYNC_STOP_MS          2500     /* shutdown waits this long for teardown */
#define WSP_SYNC_ERR_GRACE_MS     1000     /* after our err, the peer's close is awaited this long */
/* An ops message's bytes other than its runs: map, "t":"ops", "runs",
 * array header (≤ 3), "clock":{} — rounded up. */
#define WSP_SYNC_OPS_OVERHEAD     32

typedef enum {
  LINK_CONNECTING,   /* a session is being set up, or we wait for the offer */
  LINK_CONNECTED,    /* authenticated both ways */
  LINK_RETRYING,     /* no session: waiting for the backoff or the peer */
} LinkState;

static const char *
link_state_to_string (LinkState s)
{
  switch (s)
    {
    case LINK_CONNECTING: return "connecting";
    case LINK_CONNECTED:  return "connected";
    case LINK_RETRYING:   return "retrying";
    }
  return "retrying";
}

typedef struct _Session Session;
typedef struct _Link Link;

struct _Link {
  WspSync  *sync;
  WspPeer   peer;
  char      hex[WSP_PEER_HEX_LEN + 1];
  Session  *session;          /* main thread */
  guint     retry_source;
  guint     backoff_ms;
  gboolean  online;           /* reachable by signaling now */
  gboolean  removed;          /* dropped: out of the table, freed with its session */
  /* Read by the HTTP thread: under sync->lock. */
  LinkState state;
  gboolean  has_via;
  WspSignalVia via;
  char     *address;          /* remote ICE candidate "IP:PORT" */
  char     *url;              /* its listener's URL, when we connect to it */
  gint64    last_seen_ms;     /* wall clock; 0 = never */
  gint64    connected_at_ms;
  guint64   bytes_sent;
  guint64   bytes_received;
  WspClock  remote_clock;     /* the peer's applied clock as last told */
  char     *last_error;
};

struct _Session {
  Link     *link;
  guint64   id;               /* key in sync->sessions */
  WspRtc   *rtc;
  gboolean  offerer;
  gboolean  described;        /* remote description set */
  guint8    nonce[WSP_WIRE_NONCE_LEN];   /* our hello's */
  gboolean  got_hello;
  gboolean  auth_sent;
  gboolean  authenticated;    /* we verified theirs */
  guint8    remote_pk[WSP_PK_LEN];
  guint8    remote_nonce[WSP_WIRE_NONCE_LEN];
  /* export */
  WspExport *export;          /* NULL while a chunk is on the worker */
  gboolean  export_busy;
  gboolean  export_wanted;    /* more may be available: run again */
  gboolean  reset_pending;    /* a req arrived while busy */
  WspClock  reset_clock;
  WspClock  known;            /* ops the peer has (hello, ack, runs it sent) */
  WspClock  acked;            /* the peer's applied clock (hello, ack, req) */
  /* ingest */
  guint     ingest_inflight;
  gboolean  need_req;
  gint64    last_req_us;
  /* timers */
  guint     ack_source;
  guint     ping_source;
  guint     connect_source;
  guint64   ping_n;
  guint     pings_unanswered;
  /* After our err: wait for the peer to close (it must, SPEC 7.2), so the
   * err is not lost in a close racing it; closed anyway after a grace. */
  gboolean  failing;
  gboolean  fail_retry;
  char     *fail_why;
  guint     fail_source;
};

struct _WspSync {
  GMainContext *context;
  WspStore     *store;
  char         *db_path;
  char         *project_id;
  WspIdentity   identity;
  WspAuthKeys   keys;
  WspSignalHub *hub;
  char         *peer_url;
  char         *urls_path;
  char        **ice_addresses;
  char        **stun_servers;
  char        **turn_servers;
  GThread      *warm_thread;
  GAsyncQueue  *export_queue;  /* ExportJob*, for export_thread */
  GThread      *export_thread; /* reads export chunks; joined at stop */
  WspStoreReader *reader;      /* owned by export_thread */
  GHashTable   *links;         /* WspPeer* → Link*, under lock for writes */
  GHashTable   *sessions;      /* id → Session*, main thread */
  GHashTable   *dropped;       /* WspPeer* set, main thread */
  guint64       next_session_id;
  guint         stream_source;
  gint          stream_posted; /* atomic: a wake-up is on its way */
  gint          outstanding;   /* atomic: posts to the main context not yet run */
  gboolean      stopped;
  GMutex        lock;
  GPtrArray    *urls;          /* char*: signaling URLs we keep, under lock */
};

static void session_close (Session *s, const char *why, gboolean retry);
static void session_begin (Session *s);
static void session_pump (Session *s);
static void link_schedule_retry (Link *link);
static void link_start_offer (Link *link);

/* ---- small helpers -------------------------------------------------------- */

static gint64
now_wall_ms (void)
{
  return g_get_real_time () / 1000;
}

static void
slog (GLogLevelFlags level, const Link *link, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

/* One structured record with the peer id as its own field. */
static void
slog (GLogLevelFlags level, const Link *link, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_log_structured (G_LOG_DOMAIN, level, "PEER", link ? link->hex : "-", "MESSAGE", "%s", msg);
}

static void
link_set_error (Link *link, const char *text)
{
  g_mutex_lock (&link->sync->lock);
  g_free (link->last_error);
  link->last_error = g_strdup (text);
  g_mutex_unlock (&link->sync->lock);
}

static void
link_set_state (Link *link, LinkState state)
{
  g_mutex_lock (&link->sync->lock);
  link->state = state;
  if (state == LINK_CONNECTED)
    link->connected_at_ms = now_wall_ms ();
  g_mutex_unlock (&link->sync->lock);
}

static gboolean
we_offer (WspSync *sync, WspPeer remote)
{
  return sync->identity.peer < remote;
}

/* ---- posting back to the main context -------------------------------------- */

/* Every post from another thread counts in `outstanding` until its handler
 * ran, so that a stop can wait for them all before freeing. */
typedef struct {
  WspSync       *sync;
  GSourceFunc    fn;
  gpointer       data;
  GDestroyNotify free_data;
} Post;

static gboolean
post_dispatch (gpointer p)
{
  Post *post = p;
  post->fn (post->data);
  return G_SOURCE_REMOVE;
}

static void
post_free (gpointer p)
{
  Post *post = p;
  if (post->free_data)
    post->free_data (post->data);
  g_atomic_int_dec_and_test (&post->sync->outstanding);
  g_free (post);
}

static void
post_to_main (WspSync *sync, GSourceFunc fn, gpointer data, GDestroyNotify free_data)
{
  Post *post = g_new0 (Post, 1);
  post->sync = sync;
  post->fn = fn;
  post->data = data;
  post->free_data = free_data;
  g_atomic_int_inc (&sync->outstanding);
  GSource *src = g_idle_source_new ();
  g_source_set_priority (src, G_PRIORITY_DEFAULT);
  g_source_set_callback (src, post_dispatch, post, post_free);
  g_source_attach (src, sync->context);
  g_source_unref (src);
}

/* ---- links ------------------------------------------------------------------ */

static void
link_free (Link *link)
{
  g_clear_handle_id (&link->retry_source, g_source_remove);
  g_free (link->address);
  g_free (link->url);
  g_free (link->last_error);
  wsp_clock_clear (&link->remote_clock);
  g_free (link);
}

static Link *
link_get (WspSync *sync, WspPeer peer, gboolean create)
{
  Link *link = g_hash_table_lookup (sync->links, &peer);
  if (link || !create)
    return link;
  link = g_new0 (Link, 1);
  link->sync = sync;
  link->peer = peer;
  wsp_peer_to_hex (peer, link->hex);
  link->state = LINK_RETRYING;
  link->backoff_ms = WSP_SYNC_BACKOFF_MIN_MS;
  wsp_clock_init (&link->remote_clock);
  g_mutex_lock (&sync->lock);
  g_hash_table_insert (sync->links, &link->peer, link);
  g_mutex_unlock (&sync->lock);
  return link;
}

static void
link_note_clock (Link *link, const WspClock *clock, gboolean replace)
{
  g_mutex_lock (&link->sync->lock);
  if (replace)
    wsp_clock_copy (&link->remote_clock, clock);
  else
    wsp_clock_merge (&link->remote_clock, clock->dots, clock->len);
  g_mutex_unlock (&link->sync->lock);
}

/* ---- sending ---------------------------------------------------------------- */

static gboolean
session_send_bytes (Session *s, GBytes *bytes)
{
  g_autoptr (GError) error = NULL;
  if (!wsp_rtc_send (s->rtc, bytes, &error))
    {
      slog (G_LOG_LEVEL_WARNING, s->link, "send failed: %s", error->message);
      return FALSE;
    }
  g_mutex_lock (&s->link->sync->lock);
  s->link->bytes_sent += g_bytes_get_size (bytes);
  g_mutex_unlock (&s->link->sync->lock);
  return TRUE;
}

static gboolean
session_send (Session *s, const WspMsg *m)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = wsp_msg_encode (m, TRUE, &error);
  if (!bytes)
    {
      slog (G_LOG_LEVEL_WARNING, s->link, "cannot encode %s: %s", wsp_msg_type_to_string (m->type),
            error->message);
      return FALSE;
    }
  return session_send_bytes (s, bytes);
}

static void
session_send_clock (Session *s, WspMsgType type)
{
  WspMsg m;
  wsp_msg_init (&m, type);
  WspClock *clock = type == WSP_MSG_REQ ? &m.req.clock : &m.ack.clock;
  wsp_store_get_clock (s->link->sync->store, clock);
  session_send (s, &m);
  wsp_msg_clear (&m);
}

static gboolean
on_fail_grace (gpointer data)
{
  Session *s = data;
  s->fail_source = 0;
  session_close (s, s->fail_why, s->fail_retry);
  return G_SOURCE_REMOVE;
}

/* Sends err and ends the session: nothing more is sent or accepted, and
 * the channel closes when the peer closes it after reading the err (or
 * after WSP_SYNC_ERR_GRACE_MS). Closing at once could lose the err: with
 * webrtcbin a message sent just before a close is sometimes dropped.
 * retry is FALSE for our own protocol decisions about the other side (a
 * retry would meet the same answer). */
static void
session_fail (Session *s, WspWireError code, const char *text, gboolean retry)
{
  if (s->failing)
    return;
  WspMsg m;
  wsp_msg_init (&m, WSP_MSG_ERR);
  m.err.code = g_strdup (wsp_wire_error_to_string (code));
  m.err.msg = g_strdup (text);
  gboolean sent = session_send (s, &m);
  wsp_msg_clear (&m);
  g_autofree char *why = g_strdup_printf ("%s: %s", wsp_wire_error_to_string (code), text);
  if (!sent)
    {
      session_close (s, why, retry);
      return;
    }
  s->failing = TRUE;
  s->fail_retry = retry;
  s->fail_why = g_steal_pointer (&why);
  s->authenticated = FALSE;   /* nothing more goes out */
  g_clear_handle_id (&s->ack_source, g_source_remove);
  g_clear_handle_id (&s->ping_source, g_source_remove);
  g_clear_handle_id (&s->connect_source, g_source_remove);
  s->fail_source = g_timeout_add (WSP_SYNC_ERR_GRACE_MS, on_fail_grace, s);
  link_set_error (s->link, s->fail_why);
}

/* ---- export (worker thread) ------------------------------------------------- */

typedef struct {
  WspSync   *sync;
  guint64    session_id;
  WspExport *export;
  GPtrArray *messages;    /* GBytes* */
  guint64    n_ops;
  gboolean   done;
  GError    *error;
} ExportJob;

static void
export_job_free (gpointer p)
{
  ExportJob *job = p;
  g_clear_pointer (&job->export, wsp_export_free);
  g_clear_pointer (&job->messages, g_ptr_array_unref);
  g_clear_error (&job->error);
  g_free (job);
}

/* Packs runs[from, to) into one ops message. */
static GBytes *
encode_ops (GPtrArray *runs, guint from, guint to, GError **error)
{
  WspMsg m;
  wsp_msg_init (&m, WSP_MSG_OPS);
  for (guint i = from; i < to; i++)
    g_ptr_array_add (m.ops.runs, g_steal_pointer (&g_ptr_array_index (runs, i)));
  GBytes *bytes = wsp_msg_encode (&m, TRUE, error);
  wsp_msg_clear (&m);
  return bytes;
}

static gboolean export_done (gpointer data);

static void
export_chunk (ExportJob *job, WspSync *sync)
{
  g_autoptr (GPtrArray) runs = g_ptr_array_new_with_free_func ((GDestroyNotify) wsp_run_free);

  if (!sync->reader && !(sync->reader = wsp_store_reader_open (sync->db_path, &job->error)))
    goto out;
  if (!wsp_store_reader_export (sync->reader, job->export, WSP_SYNC_CHUNK_BYTES, runs, &job->done, &job->error))
    goto out;
  job->messages = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  /* Greedy: as many whole runs per message as fit 64 KiB. */
  guint start = 0;
  gsize size = 0;
  for (guint i = 0; i <= runs->len; i++)
    {
      gsize run_size = i < runs->len ? wsp_run_encoded_size (g_ptr_array_index (runs, i)) : 0;
      if (i < runs->len)
        job->n_ops += ((WspRun *) g_ptr_array_index (runs, i))->ops->len;
      if (i == runs->len || (i > start && size + run_size + WSP_SYNC_OPS_OVERHEAD > WSP_WIRE_MAX_MESSAGE))
        {
          if (i > start)
            {
              GBytes *msg = encode_ops (runs, start, i, &job->error);
              if (!msg)
                goto out;
              g_ptr_array_add (job->messages, msg);
            }
          start = i;
          size = 0;
        }
      size += run_size;
    }
out:
  post_to_main (sync, export_done, job, export_job_free);
}

/* Pushed by wsp_sync_stop after every job: the thread ends there. */
static ExportJob export_stop;

static gpointer
export_thread_main (gpointer data)
{
  WspSync *sync = data;
  ExportJob *job;

  while ((job = g_async_queue_pop (sync->export_queue)) != &export_stop)
    export_chunk (job, sync);
  return NULL;
}

/* ---- export (main thread) --------------------------------------------------- */

static Session *
session_lookup (WspSync *sync, guint64 id)
{
  return g_hash_table_lookup (sync->sessions, &id);
}

static gboolean
export_done (gpointer data)
{
  ExportJob *job = data;
  Session *s = session_lookup (job->sync, job->session_id);
  if (!s)
    return G_SOURCE_REMOVE;   /* the session went; export_job_free cleans up */
  s->export_busy = FALSE;
  s->export = g_steal_pointer (&job->export);
  if (s->failing)
    return G_SOURCE_REMOVE;
  if (job->error)
    {
      slog (G_LOG_LEVEL_WARNING, s->link, "reading ops to send failed: %s", job->error->message);
      session_fail (s, WSP_WIRE_ERROR_INTERNAL, "cannot read the op log", TRUE);
      return G_SOURCE_REMOVE;
    }
  for (guint i = 0; i < job->messages->len; i++)
    if (!session_send_bytes (s, g_ptr_array_index (job->messages, i)))
      {
        session_close (s, "send failed", TRUE);
        return G_SOURCE_REMOVE;
      }
  if (job->n_ops)
    slog (G_LOG_LEVEL_DEBUG, s->link, "sent %" G_GUINT64_FORMAT " ops in %u messages", job->n_ops,
          job->messages->len);
  if (s->reset_pending)
    {
      wsp_export_reset (s->export, &s->reset_clock);
      s->reset_pending = FALSE;
      s->export_wanted = TRUE;
    }
  if (!job->done)
    s->export_wanted = TRUE;
  session_pump (s);
  return G_SOURCE_REMOVE;
}

/* Ops we sent that the peer has not acked as applied. */
static guint64
session_unacked (Session *s)
{
  WspClock sent;
  wsp_clock_init (&sent);
  wsp_export_get_clock (s->export, &sent);
  guint64 n = 0;
  for (guint i = 0; i < sent.len; i++)
    {
      guint64 acked = wsp_clock_get (&s->acked, sent.dots[i].peer);
      if (sent.dots[i].seq > acked)
        n += sent.dots[i].seq - acked;
    }
  wsp_clock_clear (&sent);
  return n;
}

/* Starts the next chunk if one is wanted, the session is authenticated,
 * the channel can take more and the peer is not too far behind in acks. */
static void
session_pump (Session *s)
{
  WspSync *sync = s->link->sync;
  if (!s->authenticated || s->failing || s->export_busy || !s->export_wanted || sync->stopped)
    return;
  if (!wsp_rtc_is_writable (s->rtc))
    return;   /* writable() calls us again */
  wsp_export_advance (s->export, &s->known);
  if (session_unacked (s) >= WSP_SYNC_WINDOW_OPS)
    return;   /* the next ack calls us again */
  s->export_wanted = FALSE;
  s->export_busy = TRUE;
  ExportJob *job = g_new0 (ExportJob, 1);
  job->sync = sync;
  job->session_id = s->id;
  job->export = g_steal_pointer (&s->export);
  g_async_queue_push (sync->export_queue, job);
}

/* ---- ingest ------------------------------------------------------------------ */

typedef struct {
  WspSync        *sync;
  guint64         session_id;
  GError         *error;
  WspIngestStatus status;
  guint           n_applied;
} IngestResult;

static void
ingest_result_free (gpointer p)
{
  IngestResult *r = p;
  g_clear_error (&r->error);
  g_free (r);
}

static gboolean
on_ack_timer (gpointer data)
{
  Session *s = data;
  s->ack_source = 0;
  session_send_clock (s, WSP_MSG_ACK);
  return G_SOURCE_REMOVE;
}

static void
session_maybe_req (Session *s)
{
  gint64 now = g_get_monotonic_time ();
  if (!s->need_req || s->ingest_inflight || now - s->last_req_us < WSP_SYNC_REQ_MIN_MS * 1000)
    return;
  s->need_req = FALSE;
  s->last_req_us = now;
  slog (G_LOG_LEVEL_INFO, s->link, "asking to resend from our clock");
  session_send_clock (s, WSP_MSG_REQ);
}

static gboolean
ingest_done_main (gpointer data)
{
  IngestResult *r = data;
  Session *s = session_lookup (r->sync, r->session_id);
  if (!s)
    return G_SOURCE_REMOVE;
  s->ingest_inflight--;
  if (s->failing)
    return G_SOURCE_REMOVE;
  if (r->error)
    {
      if (g_error_matches (r->error, WSP_ERROR, WSP_ERROR_CORRUPT))
        {
          slog (G_LOG_LEVEL_WARNING, s->link, "dropped a run that failed verification: %s", r->error->message);
          session_fail (s, WSP_WIRE_ERROR_BAD_RUN, r->error->message, FALSE);
        }
      else
        {
          /* BUSY/CLOSED/FAILED: not the peer's fault; ask again later. */
          slog (G_LOG_LEVEL_INFO, s->link, "a run was not applied (%s); will ask again", r->error->message);
          s->need_req = TRUE;
          session_maybe_req (s);
        }
      return G_SOURCE_REMOVE;
    }
  if (r->status == WSP_INGEST_GAP)
    s->need_req = TRUE;
  /* Ack even when nothing was new (duplicates relayed by another path):
   * the sender learns our clock either way. */
  if (!s->ack_source)
    s->ack_source = g_timeout_add (WSP_SYNC_ACK_MS, on_ack_timer, s);
  session_maybe_req (s);
  return G_SOURCE_REMOVE;
}

/* Store writer thread. */
static void
on_ingest_done (const GError *error, WspIngestStatus status, guint n_applied, gpointer data)
{
  IngestResult *r = data;
  r->error = error ? g_error_copy (error) : NULL;
  r->status = status;
  r->n_applied = n_applied;
  post_to_main (r->sync, ingest_done_main, r, ingest_result_free);
}

static void
session_ingest (Session *s, WspMsg *m)
{
  WspSync *sync = s->link->sync;
  if (m->ops.clock.len)
    {
      link_note_clock (s->link, &m->ops.clock, FALSE);
      wsp_clock_merge (&s->known, m->ops.clock.dots, m->ops.clock.len);
    }
  slog (G_LOG_LEVEL_DEBUG, s->link, "received %u runs", m->ops.runs->len);
  for (guint i = 0; i < m->ops.runs->len; i++)
    {
      WspRun *run = g_ptr_array_index (m->ops.runs, i);
      g_ptr_array_index (m->ops.runs, i) = NULL;
      /* The sender holds these: never send them back. */
      WspDot dot = { run->peer, run->from + run->ops->len - 1 };
      wsp_clock_merge (&s->known, &dot, 1);
      g_mutex_lock (&sync->lock);
      wsp_clock_merge (&s->link->remote_clock, &dot, 1);
      g_mutex_unlock (&sync->lock);
      IngestResult *r = g_new0 (IngestResult, 1);
      r->sync = sync;
      r->session_id = s->id;
      g_autoptr (GError) error = NULL;
      if (!wsp_store_submit_run (sync->store, run, on_ingest_done, r, &error))
        {
          g_free (r);
          s->need_req = TRUE;
          slog (G_LOG_LEVEL_INFO, s->link, "store queue refused a run (%s); will ask again", error->message);
          continue;
        }
      s->ingest_inflight++;
    }
  session_maybe_req (s);
}

/* ---- the channel protocol ----------------------------------------------------- */

static void
session_try_auth (Session *s)
{
  WspSync *sync = s->link->sync;
  if (s->auth_sent || !s->got_hello)
    return;
  const char *local_fp = wsp_rtc_local_fingerprint (s->rtc);
  const char *remote_fp = wsp_rtc_remote_fingerprint (s->rtc);
  if (!local_fp || !remote_fp)
    return;   /* the descriptions will call again */
  WspMsg m;
  wsp_msg_init (&m, WSP_MSG_AUTH);
  wsp_auth_channel_sign (&sync->keys, &sync->identity, s->link->peer, s->remote_nonce, local_fp,
                         remote_fp, m.auth.mac, m.auth.sig);
  s->auth_sent = session_send (s, &m);
  wsp_msg_clear (&m);
}

static gboolean
on_ping_timer (gpointer data)
{
  Session *s = data;
  if (s->pings_unanswered >= WSP_SYNC_PINGS_MISSED)
    {
      s->ping_source = 0;
      slog (G_LOG_LEVEL_WARNING, s->link, "no answer to %u pings", WSP_SYNC_PINGS_MISSED);
      session_close (s, "no answer to pings", TRUE);
      return G_SOURCE_REMOVE;
    }
  WspMsg m;
  wsp_msg_init (&m, WSP_MSG_PING);
  m.ping.n = ++s->ping_n;
  session_send (s, &m);
  s->pings_unanswered++;
  return G_SOURCE_CONTINUE;
}

static void
session_on_hello (Session *s, WspMsg *m)
{
  WspSync *sync = s->link->sync;
  if (s->got_hello)
    {
      session_fail (s, WSP_WIRE_ERROR_BAD_MESSAGE, "a second hello", FALSE);
      return;
    }
  if (g_strcmp0 (m->hello.project, sync->project_id) != 0)
    {
      session_fail (s, WSP_WIRE_ERROR_WRONG_PROJECT, "this channel belongs to another project", FALSE);
      return;
    }
  if (m->hello.peer != s->link->peer)
    {
      session_fail (s, WSP_WIRE_ERROR_BAD_HELLO, "hello.peer is not the peer that signaled", FALSE);
      return;
    }
  s->got_hello = TRUE;
  memcpy (s->remote_pk, m->hello.pk, WSP_PK_LEN);
  memcpy (s->remote_nonce, m->hello.nonce, WSP_WIRE_NONCE_LEN);
  wsp_clock_merge (&s->known, m->hello.clock.dots, m->hello.clock.len);
  wsp_clock_merge (&s->acked, m->hello.clock.dots, m->hello.clock.len);
  link_note_clock (s->link, &m->hello.clock, TRUE);
  s->export = wsp_export_new (&m->hello.clock);
  session_try_auth (s);
}

static void
session_on_auth (Session *s, WspMsg *m)
{
  WspSync *sync = s->link->sync;
  g_autoptr (GError) error = NULL;
  if (!s->got_hello || s->authenticated)
    {
      session_fail (s, WSP_WIRE_ERROR_BAD_MESSAGE, "auth out of order", FALSE);
      return;
    }
  const char *local_fp = wsp_rtc_local_fingerprint (s->rtc);
  const char *remote_fp = wsp_rtc_remote_fingerprint (s->rtc);
  if (!local_fp || !remote_fp
      || !wsp_auth_channel_verify (&sync->keys, s->link->peer, s->remote_pk, sync->identity.peer,
                                   s->nonce, remote_fp, local_fp, m->auth.mac, m->auth.sig, &error))
    {
      slog (G_LOG_LEVEL_WARNING, s->link, "channel auth failed (wrong project secret or not this connection)");
      session_fail (s, WSP_WIRE_ERROR_AUTH_FAILED, "auth does not verify", FALSE);
      return;
    }
  s->authenticated = TRUE;
  g_clear_handle_id (&s->connect_source, g_source_remove);
  s->link->backoff_ms = WSP_SYNC_BACKOFF_MIN_MS;
  link_set_state (s->link, LINK_CONNECTED);
  link_set_error (s->link, NULL);
  slog (G_LOG_LEVEL_INFO, s->link, "peer connected");
  s->ping_source = g_timeout_add (WSP_SYNC_PING_MS, on_ping_timer, s);
  s->export_wanted = TRUE;
  session_pump (s);
}

static void
session_on_message (Session *s, GBytes *data)
{
  WspSync *sync = s->link->sync;
  gsize len;
  const guint8 *bytes = g_bytes_get_data (data, &len);
  if (s->failing)
    return;   /* we said err: only the close is awaited */
  g_mutex_lock (&sync->lock);
  s->link->bytes_received += len;
  s->link->last_seen_ms = now_wall_ms ();
  g_mutex_unlock (&sync->lock);
  s->pings_unanswered = 0;

  WspMsg m = { 0 };
  g_autoptr (GError) error = NULL;
  if (!wsp_msg_decode (bytes, len, s->authenticated, &m, &error))
    {
      slog (G_LOG_LEVEL_WARNING, s->link, "malformed message (%zu bytes): %s", len, error->message);
      WspWireError code = g_error_matches (error, WSP_WIRE_ERROR, error->code) ? (WspWireError) error->code
                                                                                 : WSP_WIRE_ERROR_BAD_MESSAGE;
      session_fail (s, code, error->message, FALSE);
      return;
    }
  switch (m.type)
    {
    case WSP_MSG_HELLO:
      session_on_hello (s, &m);
      break;
    case WSP_MSG_AUTH:
      session_on_auth (s, &m);
      break;
    case WSP_MSG_ERR:
      {
        g_autofree char *why = g_strdup_printf ("peer said %s: %s", m.err.code, m.err.msg);
        slog (G_LOG_LEVEL_INFO, s->link, "%s", why);
        session_close (s, why, TRUE);
      }
      break;
    case WSP_MSG_REQ:
      link_note_clock (s->link, &m.req.clock, TRUE);
      if (s->export_busy)
        {
          wsp_clock_copy (&s->reset_clock, &m.req.clock);
          s->reset_pending = TRUE;
        }
      else
        wsp_export_reset (s->export, &m.req.clock);
      wsp_clock_clear (&s->known);
      wsp_clock_copy (&s->known, &m.req.clock);
      wsp_clock_clear (&s->acked);
      wsp_clock_copy (&s->acked, &m.req.clock);
      s->export_wanted = TRUE;
      session_pump (s);
      break;
    case WSP_MSG_OPS:
      session_ingest (s, &m);
      break;
    case WSP_MSG_ACK:
      link_note_clock (s->link, &m.ack.clock, FALSE);   /* applied clocks only grow */
      wsp_clock_merge (&s->known, m.ack.clock.dots, m.ack.clock.len);
      wsp_clock_merge (&s->acked, m.ack.clock.dots, m.ack.clock.len);
      session_pump (s);
      break;
    case WSP_MSG_PING:
      {
        WspMsg pong;
        wsp_msg_init (&pong, WSP_MSG_PONG);
        pong.pong.n = m.ping.n;
        session_send (s, &pong);
        wsp_msg_clear (&pong);
      }
      break;
    case WSP_MSG_PONG:
    case WSP_MSG_UNKNOWN:
      break;
    }
  wsp_msg_clear (&m);
}

/* ---- WspRtc callbacks (main context) -------------------------------------------- */

/* Sends m to the session's peer through signaling. While the daemon stops,
 * the hub is gone but a connection still negotiating may report its local
 * description or candidates: those are dropped. */
static gboolean
session_signal (Session *s, WspSignalMsg *m, GError **error)
{
  WspSignalHub *hub = s->link->sync->hub;
  m->to_peer_id = s->link->peer;
  if (!hub)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "the daemon is stopping");
      return FALSE;
    }
  return wsp_signal_hub_send (hub, m, error);
}

static void
on_local_description (WspRtc *rtc, const char *type, const char *sdp, gpointer data)
{
  (void) rtc;
  Session *s = data;
  WspSignalMsg m;
  wsp_signal_msg_init (&m, g_str_equal (type, "offer") ? WSP_SIGNAL_OFFER : WSP_SIGNAL_ANSWER);
  m.sdp = g_strdup (sdp);
  g_autoptr (GError) error = NULL;
  if (!session_signal (s, &m, &error))
    slog (G_LOG_LEVEL_INFO, s->link, "cannot send our %s: %s", type, error->message);
  wsp_signal_msg_clear (&m);
  slog (G_LOG_LEVEL_DEBUG, s->link, "sent our %s", type);
  session_try_auth (s);
}

static void
on_local_candidate (WspRtc *rtc, const char *candidate, const char *sdp_mid, guint mline, gpointer data)
{
  (void) rtc;
  Session *s = data;
  WspSignalMsg m;
  wsp_signal_msg_init (&m, WSP_SIGNAL_ICE_CANDIDATE);
  m.candidate = g_strdup (candidate);
  m.sdp_mid = g_strdup (sdp_mid);
  m.sdp_mline_index = mline;
  g_autoptr (GError) error = NULL;
  if (!session_signal (s, &m, &error))
    slog (G_LOG_LEVEL_DEBUG, s->link, "cannot send a candidate: %s", error->message);
  wsp_signal_msg_clear (&m);
}

static void
on_open (WspRtc *rtc, gpointer data)
{
  (void) rtc;
  Session *s = data;
  slog (G_LOG_LEVEL_DEBUG, s->link, "data channel open");
}

static void
on_message (WspRtc *rtc, GBytes *bytes, gpointer data)
{
  (void) rtc;
  session_on_message (data, bytes);
}

static void
on_writable (WspRtc *rtc, gpointer data)
{
  (void) rtc;
  session_pump (data);
}

static void
on_closed (WspRtc *rtc, const char *reason, gpointer data)
{
  (void) rtc;
  Session *s = data;
  slog (G_LOG_LEVEL_INFO, s->link, "channel closed: %s", reason);
  session_close (s, reason, TRUE);
}

static const WspRtcCallbacks rtc_callbacks = {
  .local_description = on_local_description,
  .local_candidate = on_local_candidate,
  .open = on_open,
  .message = on_message,
  .writable = on_writable,
  .closed = on_closed,
};

/* ---- sessions --------------------------------------------------------------------- */

static gboolean
on_connect_timeout (gpointer data)
{
  Session *s = data;
  s->connect_source = 0;
  slog (G_LOG_LEVEL_WARNING, s->link, "no authenticated channel after %d s", WSP_SYNC_CONNECT_MS / 1000);
  session_close (s, "connection timed out", TRUE);
  return G_SOURCE_REMOVE;
}

static Session *
session_new (Link *link, gboolean offerer, GError **error)
{
  WspSync *sync = link->sync;
  WspRtcConfig cfg = {
    .ice_addresses = (const char *const *) sync->ice_addresses,
    .stun_servers = (const char *const *) sync->stun_servers,
    .turn_servers = (const char *const *) sync->turn_servers,
  };
  Session *s = g_new0 (Session, 1);
  s->link = link;
  s->offerer = offerer;
  s->id = ++sync->next_session_id;
  wsp_clock_init (&s->known);
  wsp_clock_init (&s->acked);
  wsp_clock_init (&s->reset_clock);
  s->rtc = wsp_rtc_new (offerer, &cfg, &rtc_callbacks, s, error);
  if (!s->rtc)
    {
      g_free (s);
      return NULL;
    }
  g_hash_table_insert (sync->sessions, &s->id, s);
  link->session = s;
  g_mutex_lock (&sync->lock);
  g_clear_pointer (&link->address, g_free);   /* this attempt's candidates say where */
  g_mutex_unlock (&sync->lock);
  slog (G_LOG_LEVEL_DEBUG, link, "new connection, %s", offerer ? "offering" : "ready to answer");
  link_set_state (link, LINK_CONNECTING);
  if (offerer)
    session_begin (s);
  return s;
}

/* The attempt starts: the offerer at once, an answerer made ahead of time
 * (see on_peer_online) when the offer arrives. hello goes first, even
 * before the channel reports open, with our clock as of now. */
static void
session_begin (Session *s)
{
  WspSync *sync = s->link->sync;
  s->connect_source = g_timeout_add (WSP_SYNC_CONNECT_MS, on_connect_timeout, s);
  WspMsg m;
  wsp_msg_init (&m, WSP_MSG_HELLO);
  m.hello.v = WSP_WIRE_VERSION;
  m.hello.peer = sync->identity.peer;
  m.hello.project = g_strdup (sync->project_id);
  memcpy (m.hello.pk, sync->identity.pk, WSP_PK_LEN);
  randombytes_buf (s->nonce, sizeof s->nonce);
  memcpy (m.hello.nonce, s->nonce, sizeof s->nonce);
  wsp_store_get_clock (sync->store, &m.hello.clock);
  session_send (s, &m);
  wsp_msg_clear (&m);
}

/* Ends the session. retry: schedule the next attempt (the offerer's job). */
static void
session_close (Session *s, const char *why, gboolean retry)
{
  Link *link = s->link;
  WspSync *sync = link->sync;
  g_autofree char *fail_why = g_steal_pointer (&s->fail_why);
  if (s->failing)
    {
      why = fail_why;   /* the peer's close answers our err: ours is the reason */
      retry = s->fail_retry;
    }
  g_hash_table_remove (sync->sessions, &s->id);
  link->session = NULL;
  g_clear_handle_id (&s->fail_source, g_source_remove);
  g_clear_handle_id (&s->ack_source, g_source_remove);
  g_clear_handle_id (&s->ping_source, g_source_remove);
  g_clear_handle_id (&s->connect_source, g_source_remove);
  if (s->authenticated || s->failing)
    slog (G_LOG_LEVEL_INFO, link, "peer disconnected: %s", why);
  wsp_rtc_free (g_steal_pointer (&s->rtc));
  g_clear_pointer (&s->export, wsp_export_free);
  wsp_clock_clear (&s->known);
  wsp_clock_clear (&s->acked);
  wsp_clock_clear (&s->reset_clock);
  g_free (s);
  if (link->removed)
    {
      link_free (link);
      return;
    }
  link_set_error (link, why);
  link_set_state (link, LINK_RETRYING);
  if (retry && !sync->stopped)
    link_schedule_retry (link);
}

static gboolean
on_retry (gpointer data)
{
  Link *link = data;
  link->retry_source = 0;
  if (link->online && !link->session)
    link_start_offer (link);
  return G_SOURCE_REMOVE;
}

static void
link_schedule_retry (Link *link)
{
  if (!we_offer (link->sync, link->peer) || link->retry_source)
    return;   /* the other side offers again */
  guint delay = link->backoff_ms;
  link->backoff_ms = MIN (link->backoff_ms * 2, WSP_SYNC_BACKOFF_MAX_MS);
  link->retry_source = g_timeout_add (delay, on_retry, link);
}

static void
link_start_offer (Link *link)
{
  g_autoptr (GError) error = NULL;
  Session *s = session_new (link, TRUE, &error);
  if (!s)
    {
      slog (G_LOG_LEVEL_WARNING, link, "cannot start a connection: %s", error->message);
      link_set_error (link, error->message);
      link_schedule_retry (link);
      return;
    }
  wsp_rtc_start (s->rtc);
}

/* ---- signaling --------------------------------------------------------------------- */

/* The other side offers: build our end now (~20 ms of webrtcbin set-up)
 * while its offer is being made, rather than after it arrives. */
static void
link_prepare_answer (Link *link)
{
  g_autoptr (GError) error = NULL;
  if (!session_new (link, FALSE, &error))
    {
      slog (G_LOG_LEVEL_DEBUG, link, "cannot prepare an answer yet: %s", error->message);
      link_set_state (link, LINK_CONNECTING);
    }
}

static void
on_peer_online (WspSignalHub *hub, WspPeer peer, WspSignalVia via, gpointer data)
{
  (void) hub;
  WspSync *sync = data;
  if (g_hash_table_contains (sync->dropped, &peer))
    return;
  Link *link = link_get (sync, peer, TRUE);
  link->online = TRUE;
  const char *url = wsp_signal_hub_get_url (sync->hub, peer);
  g_mutex_lock (&sync->lock);
  link->has_via = TRUE;
  link->via = via;
  if (url)
    {
      g_free (link->url);
      link->url = g_strdup (url);
    }
  g_mutex_unlock (&sync->lock);
  slog (G_LOG_LEVEL_INFO, link, "peer reachable via %s", wsp_signal_via_to_string (via));
  /* A channel that outlived the peer's signaling may be dead (the peer
   * restarted: nothing tells us until pings go unanswered, ~30 s). The
   * offerer makes a fresh one now; an answerer gets the peer's new offer,
   * which replaces its old channel. */
  if (link->session && we_offer (sync, peer) && !link->session->failing)
    {
      slog (G_LOG_LEVEL_INFO, link, "peer is back: reconnecting");
      session_close (link->session, "peer reconnected to signaling", FALSE);
    }
  if (link->session)
    return;
  if (we_offer (sync, peer))
    {
      g_clear_handle_id (&link->retry_source, g_source_remove);
      link_start_offer (link);
    }
  else
    link_prepare_answer (link);   /* its offer is coming */
}

static void
on_peer_offline (WspSignalHub *hub, WspPeer peer, gpointer data)
{
  (void) hub;
  WspSync *sync = data;
  Link *link = link_get (sync, peer, FALSE);
  if (!link)
    return;
  link->online = FALSE;
  g_mutex_lock (&sync->lock);
  link->has_via = FALSE;
  g_mutex_unlock (&sync->lock);
  g_clear_handle_id (&link->retry_source, g_source_remove);
  /* A channel that is up keeps working without signaling; one that is not
   * cannot finish. */
  if (link->session && !link->session->authenticated)
    session_close (link->session, "peer no longer reachable by signaling", FALSE);
  else if (!link->session)
    link_set_state (link, LINK_RETRYING);
}

/* "candidate:f c udp prio IP PORT typ …" → "IP:PORT" */
static char *
candidate_address (const char *candidate)
{
  g_auto (GStrv) tok = g_strsplit (candidate, " ", 8);
  if (g_strv_length (tok) < 6)
    return NULL;
  return strchr (tok[4], ':') ? g_strdup_printf ("[%s]:%s", tok[4], tok[5])
                              : g_strdup_printf ("%s:%s", tok[4], tok[5]);
}

static void
on_signal_message (WspSignalHub *hub, const WspSignalMsg *msg, gpointer data)
{
  (void) hub;
  WspSync *sync = data;
  g_autoptr (GError) error = NULL;
  WspPeer from = msg->from_peer_id;
  if (g_hash_table_contains (sync->dropped, &from) || sync->stopped)
    return;
  Link *link = link_get (sync, from, msg->type == WSP_SIGNAL_OFFER);
  if (!link)
    return;
  Session *s = link->session;

  switch (msg->type)
    {
    case WSP_SIGNAL_OFFER:
      if (s && s->offerer && !s->authenticated && we_offer (sync, from))
        {
          slog (G_LOG_LEVEL_DEBUG, link, "both offered; ours wins (smaller id)");
          return;
        }
      /* A prepared answerer that has not been used takes it; anything
       * else is replaced (SPEC 7.1). */
      if (s && (s->offerer || s->described))
        {
          session_close (s, "replaced by a new offer", FALSE);
          s = NULL;
        }
      g_clear_handle_id (&link->retry_source, g_source_remove);
      if (!s && !(s = session_new (link, FALSE, &error)))
        {
          slog (G_LOG_LEVEL_WARNING, link, "cannot answer: %s", error->message);
          link_set_error (link, error->message);
          return;
        }
      if (!wsp_rtc_set_remote_description (s->rtc, "offer", msg->sdp, &error))
        {
          slog (G_LOG_LEVEL_WARNING, link, "bad offer: %s", error->message);
          session_close (s, error->message, FALSE);
          return;
        }
      s->described = TRUE;
      session_begin (s);
      break;
    case WSP_SIGNAL_ANSWER:
      if (!s || !s->offerer || s->described)
        {
          slog (G_LOG_LEVEL_DEBUG, link, "ignoring an answer we did not wait for");
          return;
        }
      if (!wsp_rtc_set_remote_description (s->rtc, "answer", msg->sdp, &error))
        {
          slog (G_LOG_LEVEL_WARNING, link, "bad answer: %s", error->message);
          session_close (s, error->message, TRUE);
          return;
        }
      s->described = TRUE;
      session_try_auth (s);
      break;
    case WSP_SIGNAL_ICE_CANDIDATE:
      if (!s)
        return;
      if (!wsp_rtc_add_remote_candidate (s->rtc, msg->candidate, msg->sdp_mline_index, &error))
        slog (G_LOG_LEVEL_DEBUG, link, "candidate refused: %s", error->message);
      else if (msg->candidate[0])
        {
          char *addr = candidate_address (msg->candidate);
          g_mutex_lock (&sync->lock);
          if (!link->address)
            link->address = g_steal_pointer (&addr);
          g_mutex_unlock (&sync->lock);
          g_free (addr);
        }
      break;
    default:
      break;
    }
}

static const WspSignalHubCallbacks hub_callbacks = {
  .peer_online = on_peer_online,
  .peer_offline = on_peer_offline,
  .message = on_signal_message,
};

/* ---- new ops in the store -------------------------------------------------------------- */

static gboolean
on_stream_timer (gpointer data)
{
  WspSync *sync = data;
  sync->stream_source = 0;
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, sync->sessions);
  while (g_hash_table_iter_next (&it, NULL, &value))
    {
      Session *s = value;
      if (!s->authenticated)
        continue;
      s->export_wanted = TRUE;
      session_pump (s);
    }
  return G_SOURCE_REMOVE;
}

static gboolean
stream_wake (gpointer data)
{
  WspSync *sync = data;
  g_atomic_int_set (&sync->stream_posted, 0);
  if (!sync->stream_source && !sync->stopped)
    sync->stream_source = g_timeout_add (WSP_SYNC_COALESCE_MS, on_stream_timer, sync);
  return G_SOURCE_REMOVE;
}

/* Store writer thread, after every applied batch. */
static void
on_store_change (const char *const *task_ids, guint n_tasks, const WspClock *clock, gpointer data)
{
  (void) task_ids;
  (void) n_tasks;
  (void) clock;
  WspSync *sync = data;
  if (g_atomic_int_compare_and_exchange (&sync->stream_posted, 0, 1))
    post_to_main (sync, stream_wake, sync, NULL);
}

/* ---- URLs --------------------------------------------------------------------------------- */

static gboolean
url_check (const char *url, GError **error)
{
  g_autoptr (GUri) uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
  if (!uri || (g_strcmp0 (g_uri_get_scheme (uri), "ws") != 0 && g_strcmp0 (g_uri_get_scheme (uri), "wss") != 0)
      || !g_uri_get_host (uri) || !g_uri_get_host (uri)[0])
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "url: expected ws://HOST:PORT%s, got '%s'",
                   WSP_SIGNAL_PATH, url);
      return FALSE;
    }
  return TRUE;
}

/* Adds url to the kept set (lock held by the caller); TRUE when new. */
static gboolean
urls_add_locked (WspSync *sync, const char *url)
{
  for (guint i = 0; i < sync->urls->len; i++)
    if (g_str_equal (g_ptr_array_index (sync->urls, i), url))
      return FALSE;
  g_ptr_array_add (sync->urls, g_strdup (url));
  return TRUE;
}

static void
urls_load (WspSync *sync)
{
  g_autofree char *text = NULL;
  if (!sync->urls_path || !g_file_get_contents (sync->urls_path, &text, NULL, NULL))
    return;
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i]; i++)
    {
      char *line = g_strstrip (lines[i]);
      if (line[0] && line[0] != '#' && url_check (line, NULL))
        urls_add_locked (sync, line);
    }
}

static void
urls_save (WspSync *sync, const char *added)
{
  if (!sync->urls_path)
    return;
  g_autofree char *old = NULL;
  g_file_get_contents (sync->urls_path, &old, NULL, NULL);
  GString *text = g_string_new (old ? old : "# signaling URLs added with `wsp peer connect`, one per line\n");
  if (text->len && text->str[text->len - 1] != '\n')
    g_string_append_c (text, '\n');
  g_string_append_printf (text, "%s\n", added);
  g_autoptr (GError) error = NULL;
  if (!wsp_write_file_atomic (sync->urls_path, text->str, text->len, 0600, &error))
    g_warning ("cannot remember peer URL: %s", error->message);
  g_string_free (text, TRUE);
}

typedef struct {
  WspSync *sync;
  char    *url;
  gboolean is_new;
} ConnectReq;

static void
connect_req_free (gpointer p)
{
  ConnectReq *r = p;
  g_free (r->url);
  g_free (r);
}

static gboolean
connect_main (gpointer data)
{
  ConnectReq *r = data;
  WspSync *sync = r->sync;
  if (sync->stopped)
    return G_SOURCE_REMOVE;
  /* A connect forgives every drop: peers still reachable come back now. */
  GList *dropped = g_hash_table_get_keys (sync->dropped);
  g_hash_table_steal_all (sync->dropped);
  for (GList *l = dropped; l; l = l->next)
    {
      WspSignalVia via;
      if (wsp_signal_hub_is_online (sync->hub, *(WspPeer *) l->data, &via))
        on_peer_online (sync->hub, *(WspPeer *) l->data, via, sync);
    }
  g_list_free_full (dropped, g_free);
  if (r->is_new)
    {
      urls_save (sync, r->url);
      g_autoptr (GError) error = NULL;
      if (!wsp_signal_hub_add_url (sync->hub, r->url, &error))
        g_warning ("cannot connect to %s: %s", r->url, error->message);
      else
        g_message ("connecting to %s", r->url);
    }
  return G_SOURCE_REMOVE;
}

typedef struct {
  WspSync *sync;
  WspPeer  peer;
} DropReq;

static gboolean
drop_main (gpointer data)
{
  DropReq *r = data;
  WspSync *sync = r->sync;
  if (sync->stopped)
    return G_SOURCE_REMOVE;
  g_hash_table_add (sync->dropped, g_memdup2 (&r->peer, sizeof r->peer));
  Link *link = link_get (sync, r->peer, FALSE);
  if (!link)
    return G_SOURCE_REMOVE;
  if (link->session)
    {
      Session *s = link->session;
      if (s->authenticated)
        session_fail (s, WSP_WIRE_ERROR_SHUTDOWN, "dropped by the user", FALSE);
      else
        session_close (s, "dropped", FALSE);
    }
  g_mutex_lock (&sync->lock);
  g_hash_table_remove (sync->links, &r->peer);
  g_mutex_unlock (&sync->lock);
  /* Logged once the peer is gone from the peer list (GET /peers reads it
   * from the HTTP thread): whoever reads this line sees the drop done. */
  slog (G_LOG_LEVEL_INFO, link, "peer dropped");
  g_clear_handle_id (&link->retry_source, g_source_remove);
  if (link->session)
    link->removed = TRUE;   /* freed when its session ends */
  else
    link_free (link);
  return G_SOURCE_REMOVE;
}

/* ---- public ----------------------------------------------------------------------------- */

static gpointer
warm_up_thread (gpointer data)
{
  (void) data;
  gint64 t0 = g_get_monotonic_time ();
  wsp_rtc_warm_up ();
  g_autofree char *ms = g_strdup_printf ("%.1f", (g_get_monotonic_time () - t0) / 1000.0);
  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO, "MS", ms, "MESSAGE", "WebRTC ready");
  return NULL;
}

WspSync *
wsp_sync_start (const WspSyncOptions *opts, GError **error)
{
  if (!wsp_rtc_init (error))
    return NULL;
  WspSync *sync = g_new0 (WspSync, 1);
  sync->context = g_main_context_ref_thread_default ();
  sync->store = opts->store;
  sync->db_path = g_strdup (opts->db_path);
  sync->project_id = g_strdup (opts->project_id);
  sync->identity = *opts->identity;
  wsp_auth_keys_derive (&sync->keys, opts->secret);
  sync->urls_path = g_strdup (opts->urls_path);
  sync->ice_addresses = g_strdupv ((char **) opts->ice_addresses);
  sync->stun_servers = g_strdupv ((char **) opts->stun_servers);
  sync->turn_servers = g_strdupv ((char **) opts->turn_servers);
  g_mutex_init (&sync->lock);
  sync->links = g_hash_table_new (g_int64_hash, g_int64_equal);
  sync->sessions = g_hash_table_new (g_int64_hash, g_int64_equal);
  sync->dropped = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  sync->urls = g_ptr_array_new_with_free_func (g_free);
  sync->export_queue = g_async_queue_new ();
  sync->export_thread = g_thread_new ("wsp-export", export_thread_main, sync);

  WspSignalConfig scfg = { sync->project_id, opts->secret, &sync->identity };
  sync->hub = wsp_signal_hub_new (&scfg, &hub_callbacks, sync);
  if (opts->listen)
    {
      guint16 port = 0;
      if (!wsp_signal_hub_listen (sync->hub, opts->listen, &port, error))
        {
          wsp_sync_free (sync);
          return NULL;
        }
      /* ws://HOST:PORT/api/v1/signal with the host as configured. */
      const char *colon = strrchr (opts->listen, ':');
      g_autofree char *host = g_strndup (opts->listen, colon ? (gsize) (colon - opts->listen) : strlen (opts->listen));
      sync->peer_url = g_strdup_printf ("ws://%s:%u%s", host, port, WSP_SIGNAL_PATH);
    }
  for (guint i = 0; opts->signal_urls && opts->signal_urls[i]; i++)
    {
      g_autoptr (GError) bad = NULL;
      if (!url_check (opts->signal_urls[i], &bad))
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG, "[sync] signal_urls: %s", bad->message);
          wsp_sync_free (sync);
          return NULL;
        }
      urls_add_locked (sync, opts->signal_urls[i]);
    }
  urls_load (sync);
  for (guint i = 0; i < sync->urls->len; i++)
    if (!wsp_signal_hub_add_url (sync->hub, g_ptr_array_index (sync->urls, i), error))
      {
        wsp_sync_free (sync);
        return NULL;
      }
  wsp_store_add_listener (sync->store, on_store_change, sync);
  /* The DTLS certificate costs ~150 ms: make it now, off the loop. */
  sync->warm_thread = g_thread_new ("rtc-warm", warm_up_thread, NULL);
  g_autofree char *n_urls = g_strdup_printf ("%u", sync->urls->len);
  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO, "PEER_URL", sync->peer_url ? sync->peer_url : "-",
                    "URLS", n_urls, "MESSAGE", "peer sync started");
  return sync;
}

char *
wsp_sync_dup_peer_url (WspSync *self)
{
  return g_strdup (self->peer_url);
}

void
wsp_sync_stop (WspSync *self)
{
  if (!self || self->stopped)
    return;
  self->stopped = TRUE;
  if (self->store)
    wsp_store_remove_listener (self->store, on_store_change, self);
  g_clear_handle_id (&self->stream_source, g_source_remove);

  /* Goodbye on every channel, then close. */
  GList *sessions = g_hash_table_get_values (self->sessions);
  for (GList *l = sessions; l; l = l->next)
    {
      Session *s = l->data;
      if (s->got_hello)
        session_fail (s, WSP_WIRE_ERROR_SHUTDOWN, "the daemon is stopping", FALSE);
      else
        session_close (s, "shutdown", FALSE);
    }
  g_list_free (sessions);
  g_clear_pointer (&self->hub, wsp_signal_hub_free);

  /* Export chunks finish (their results are dropped: no session), store
   * completions arrive, channels tear down. */
  if (self->export_thread)
    {
      g_async_queue_push (self->export_queue, &export_stop);
      g_thread_join (g_steal_pointer (&self->export_thread));
    }
  gint64 deadline = g_get_monotonic_time () + WSP_SYNC_STOP_MS * 1000;
  while ((g_atomic_int_get (&self->outstanding) || wsp_rtc_count_live ())
         && g_get_monotonic_time () < deadline)
    if (!g_main_context_iteration (self->context, FALSE))
      g_usleep (1000);
  /* Sessions whose peer never closed after our goodbye. */
  sessions = g_hash_table_get_values (self->sessions);
  for (GList *l = sessions; l; l = l->next)
    session_close (l->data, "shutdown", FALSE);
  g_list_free (sessions);
  if (g_atomic_int_get (&self->outstanding))
    g_warning ("sync stopped with %d results still pending", g_atomic_int_get (&self->outstanding));
  g_clear_pointer (&self->reader, wsp_store_reader_free);
  if (self->warm_thread)
    g_thread_join (g_steal_pointer (&self->warm_thread));
}

void
wsp_sync_free (WspSync *self)
{
  if (!self)
    return;
  wsp_sync_stop (self);
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, self->links);
  while (g_hash_table_iter_next (&it, NULL, &value))
    link_free (value);
  g_hash_table_unref (self->links);
  g_hash_table_unref (self->sessions);
  g_clear_pointer (&self->export_queue, g_async_queue_unref);
  g_hash_table_unref (self->dropped);
  g_ptr_array_unref (self->urls);
  g_free (self->db_path);
  g_free (self->project_id);
  g_free (self->peer_url);
  g_free (self->urls_path);
  g_strfreev (self->ice_addresses);
  g_strfreev (self->stun_servers);
  g_strfreev (self->turn_servers);
  wsp_auth_keys_clear (&self->keys);
  sodium_memzero (&self->identity, sizeof self->identity);
  g_mutex_clear (&self->lock);
  g_main_context_unref (self->context);
  g_free (self);
}

static guint64
clock_lack (const WspClock *have, const WspClock *other)
{
  guint64 n = 0;
  for (guint i = 0; i < have->len; i++)
    {
      guint64 theirs = wsp_clock_get (other, have->dots[i].peer);
      if (have->dots[i].seq > theirs)
        n += have->dots[i].seq - theirs;
    }
  return n;
}

static void
append_time_or_null (GString *out, gint64 ms)
{
  if (!ms)
    {
      g_string_append (out, "null");
      return;
    }
  char buf[25];
  wsp_format_time_ms ((guint64) ms, buf);
  g_string_append_printf (out, "\"%s\"", buf);
}

static void
append_json_string_or_null (GString *out, const char *s)
{
  if (s)
    wsp_json_append_string (out, s, -1);
  else
    g_string_append (out, "null");
}

static gint
link_cmp (gconstpointer a, gconstpointer b)
{
  WspPeer pa = (*(Link *const *) a)->peer, pb = (*(Link *const *) b)->peer;
  return pa < pb ? -1 : pa > pb;
}

void
wsp_sync_peers_json (WspSync *self, GString *out)
{
  WspClock ours;
  wsp_clock_init (&ours);
  wsp_store_get_clock (self->store, &ours);
  g_mutex_lock (&self->lock);
  g_autoptr (GPtrArray) links = g_ptr_array_new ();
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, self->links);
  while (g_hash_table_iter_next (&it, NULL, &value))
    g_ptr_array_add (links, value);
  g_ptr_array_sort (links, link_cmp);
  g_string_append_c (out, '[');
  for (guint i = 0; i < links->len; i++)
    {
      Link *l = g_ptr_array_index (links, i);
      if (i)
        g_string_append_c (out, ',');
      g_string_append_printf (out, "{\"peer_id\":\"%s\",\"state\":\"%s\",\"via\":", l->hex,
                              link_state_to_string (l->state));
      append_json_string_or_null (out, l->has_via ? wsp_signal_via_to_string (l->via) : NULL);
      g_string_append (out, ",\"address\":");
      append_json_string_or_null (out, l->address);
      g_string_append (out, ",\"url\":");
      append_json_string_or_null (out, l->url);
      g_string_append (out, ",\"last_seen\":");
      append_time_or_null (out, l->last_seen_ms);
      g_string_append (out, ",\"connected_at\":");
      append_time_or_null (out, l->state == LINK_CONNECTED ? l->connected_at_ms : 0);
      g_string_append_printf (out,
                              ",\"ops_they_lack\":%" G_GUINT64_FORMAT ",\"ops_we_lack\":%" G_GUINT64_FORMAT
                              ",\"bytes_sent\":%" G_GUINT64_FORMAT ",\"bytes_received\":%" G_GUINT64_FORMAT
                              ",\"last_error\":",
                              clock_lack (&ours, &l->remote_clock), clock_lack (&l->remote_clock, &ours),
                              l->bytes_sent, l->bytes_received);
      append_json_string_or_null (out, l->last_error);
      g_string_append_c (out, '}');
    }
  g_string_append_c (out, ']');
  g_mutex_unlock (&self->lock);
  wsp_clock_clear (&ours);
}

gboolean
wsp_sync_connect (WspSync *self, const char *url, GError **error)
{
  if (!url_check (url, error))
    return FALSE;
  if (self->peer_url && g_str_equal (url, self->peer_url))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "url: '%s' is this daemon's own listener", url);
      return FALSE;
    }
  ConnectReq *r = g_new0 (ConnectReq, 1);
  r->sync = self;
  r->url = g_strdup (url);
  g_mutex_lock (&self->lock);
  r->is_new = urls_add_locked (self, url);
  g_mutex_unlock (&self->lock);
  post_to_main (self, connect_main, r, connect_req_free);
  return TRUE;
}

gboolean
wsp_sync_drop (WspSync *self, const char *peer_id, GError **error)
{
  WspPeer peer;
  if (!peer_id || strlen (peer_id) != WSP_PEER_HEX_LEN || !wsp_peer_from_hex (peer_id, WSP_PEER_HEX_LEN, &peer))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "peer_id: expected 16 lowercase hex characters");
      return FALSE;
    }
  g_mutex_lock (&self->lock);
  gboolean known = g_hash_table_contains (self->links, &peer);
  g_mutex_unlock (&self->lock);
  if (!known)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_NOT_FOUND, "no peer %s", peer_id);
      return FALSE;
    }
  DropReq *r = g_new0 (DropReq, 1);
  r->sync = self;
  r->peer = peer;
  post_to_main (self, drop_main, r, g_free);
  return TRUE;
}

guint
wsp_sync_count_connected (WspSync *self)
{
  guint n = 0;
  g_mutex_lock (&self->lock);
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, self->links);
  while (g_hash_table_iter_next (&it, NULL, &value))
    n += ((Link *) value)->state == LINK_CONNECTED;
  g_mutex_unlock (&self->lock);
  return n;
}
