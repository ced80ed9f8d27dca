/* wsp-http.c — the local HTTP API (SPEC 5) on the h2o evloop.
 *
 * Owns: the listening socket, one thread running the h2o loop, that
 * thread's read-only store connection, the SSE clients, the board's login
 * tokens and session cookies, and the request metrics.
 *
 * Threads:
 *  - The HTTP thread runs everything in here except what is marked
 *    otherwise. All h2o objects, the reader, the SSE list, the metrics and
 *    the job bookkeeping are touched only there, so they need no locks.
 *  - The store's writer thread runs on_write_done (a write committed) and
 *    on_store_change (a batch applied). Both only copy data into a message
 *    and post it to the HTTP thread's h2o multithread queue.
 *  - The caller's thread runs wsp_http_start/stop/free and board_url; the
 *    login/session tables are shared with it under `lock`.
 *
 * Invariants:
 *  - A write request is answered only after its job's completion arrives,
 *    so a 2xx means durable. A job outlives its request if the client goes
 *    away (the request pool's dispose hook detaches it); it is freed when
 *    its completion arrives. Stop waits until no job is outstanding, so the
 *    writer thread never posts to a dead queue.
 *  - Store listeners are never removed, so the listener gets a registry id
 *    rather than a pointer to this object; a stopped server leaves its id
 *    dangling and notifications for it are dropped.
 *  - Every buffer between threads is bounded: the store queue answers BUSY
 *    (→ 503), the event messages are capped (then SSE clients are ended so
 *    they reconnect and resync), and each SSE client buffers at most
 *    SSE_MAX_BUFFER bytes while a write is in flight, else it is dropped.
 */
#define G_LOG_DOMAIN "wsp-http"

#include "api/wsp-http.h"
#include "api/wsp-api-json.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <h2o.h>
#include <json-glib/json-glib.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define WSP_HTTP_MAX_BODY      (1024 * 1024)   /* bytes; larger → 413 */
#define WSP_HTTP_MAX_ID        256             /* bytes of a task id in a path */
#define SSE_PING_MS            15000           /* ": ping" comment interval */
#define SSE_MAX_BUFFER         (256 * 1024)    /* bytes queued per client */
#define EVENTS_PENDING_MAX     4096            /* event messages in flight */
#define STOP_FORCE_US          (1 * G_USEC_PER_SEC)     /* then close idle conns */
#define STOP_GIVE_UP_US        (4 * G_USEC_PER_SEC)     /* then leave the rest */
#define MAX_LOGIN_TOKENS       64
#define MAX_SESSIONS           1024
#define SECRET_BYTES           32

static const double duration_buckets[] = {
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
};
#define N_BUCKETS G_N_ELEMENTS (duration_buckets)

typedef struct {
  h2o_handler_t super;
  WspHttp      *http;
} WspHandler;

typedef struct {
  h2o_filter_t super;
  WspHttp     *http;
} WspErrFilter;

typedef struct {
  h2o_ostream_t super;
  h2o_iovec_t   body;      /* the JSON that replaces h2o's text error */
} WspErrOstream;

/* One accepted connection, tracked so that stop can close idle ones. */
typedef struct {
  h2o_linklist_t link;     /* in WspHttp.conns */
  h2o_socket_t  *sock;
  WspHttp       *http;
} WspConn;

typedef struct _WspJob WspJob;

/* Lives in the request's pool; its dispose hook tells the job that the
 * request went away. */
typedef struct {
  WspJob *job;
} WspJobSlot;

/* One store write in flight. Posted back to the HTTP thread as a message. */
struct _WspJob {
  h2o_multithread_message_t msg;   /* must be first */
  WspHttp      *http;
  h2o_req_t    *req;               /* NULL once the request is gone */
  WspJobSlot   *slot;
  WspWriteKind  kind;
  char         *task_id;
  GError       *error;             /* written on the writer thread */
  guint         n_ops;
};

typedef struct {
  h2o_multithread_message_t msg;   /* must be first */
  char  *text;                     /* a complete SSE event */
  gsize  len;
} WspEventMsg;

/* One /api/v1/events stream. Allocated in the request's pool. */
typedef struct {
  h2o_generator_t super;           /* must be first */
  WspHttp        *http;
  h2o_req_t      *req;
  h2o_linklist_t  link;            /* in WspHttp.sse_clients while attached */
  GString        *sending;         /* handed to h2o_send, valid until proceed */
  GString        *pending;         /* queued while a send is in flight */
  gboolean        inflight;
  gboolean        closing;         /* send FINAL at the next proceed */
  gboolean        done;            /* FINAL sent or stopped: no more sends */
} WspSse;

struct _WspHttp {
  /* ---- immutable after start (any thread) ---- */
  char       *token;
  gsize       token_len;
  WspStore   *store;
  char       *db_path;
  char       *peer_id;
  char       *task_prefix;
  char      **statuses;
  void      (*problems_json) (GString *out, gpointer data);
  gboolean  (*resolve_mass_removal) (gboolean delete, guint *n_tasks, GError **error, gpointer data);
  gpointer    problems_data;
  void      (*peers_json) (GString *out, gpointer data);
  gboolean  (*peer_connect) (const char *url, GError **error, gpointer data);
  gboolean  (*peer_drop) (const char *peer_id, GError **error, gpointer data);
  guint     (*peers_connected) (gpointer data);
  gpointer    sync_data;
  char       *health_json;
  int         listen_fd;
  guint16     port;
  char       *url_host;            /* "127.0.0.1" or "[::1]" */
  guint       registry_id;
  GThread    *thread;
  gboolean    stopped;             /* caller thread */

  /* ---- shared under lock ---- */
  GMutex      lock;
  GCond       cond;
  gboolean    ready;               /* start-up handshake done */
  GError     *start_error;
  GHashTable *login_tokens;        /* hex → NULL, one-time */
  GQueue      login_order;         /* oldest first, for the bound */
  GHashTable *sessions;            /* hex → NULL */
  GQueue      session_order;

  /* ---- cross-thread counters (atomic) ---- */
  gint        events_pending;      /* posted, not yet processed */
  gint        events_lost;         /* set when the cap dropped one */

  /* ---- HTTP thread only ---- */
  h2o_globalconf_t   config;
  h2o_context_t      ctx;
  h2o_accept_ctx_t   accept_ctx;
  h2o_evloop_t      *loop;
  h2o_socket_t      *listener;
  h2o_multithread_receiver_t recv_write;
  h2o_multithread_receiver_t recv_event;
  h2o_multithread_receiver_t recv_ctl;
  h2o_multithread_message_t  stop_msg;
  h2o_timeout_t       ping_timeout;
  h2o_timeout_entry_t ping_entry;
  WspStoreReader    *reader;
  GString           *out;          /* reused for every rendered body */
  h2o_linklist_t     conns;
  guint              n_conns;
  h2o_linklist_t     sse_clients;
  guint              n_sse;
  guint              jobs_inflight;
  gboolean           stopping;
  gboolean           forced;
  gboolean           quit;
  gboolean           leaked;       /* gave up on some connection at stop */
  gint64             stop_started;

  /* metrics */
  guint64            status_counts[600];
  guint64            duration_counts[N_BUCKETS + 1];
  double             duration_sum;
  guint64            duration_n;
};

/* ---- registry for store listeners ---------------------------------------
 * Store listeners cannot be removed; they get an id that is looked up here
 * under registry_lock, so a stopped server is simply absent. */

static GMutex      registry_lock;
static GHashTable *registry;       /* id → WspHttp* */
static guint       registry_next = 1;

/* ---- small helpers ------------------------------------------------------ */

static const char *
reason_phrase (int status)
{
  switch (status) {
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 303: return "See Other";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 409: return "Conflict";
  case 410: return "Gone";
  case 413: return "Payload Too Large";
  case 422: return "Unprocessable Entity";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 503: return "Service Unavailable";
  default:  return "Unknown";
  }
}

static const char *
error_code_for_status (int status)
{
  switch (status) {
  case 400: return "bad_request";
  case 401: return "unauthorized";
  case 403: return "forbidden";
  case 404: return "not_found";
  case 405: return "method_not_allowed";
  case 409: return "conflict";
  case 410: return "gone";
  case 413: return "too_large";
  case 417: return "bad_request";
  case 501: return "not_implemented";
  case 503: return "busy";
  default:  return status >= 500 ? "internal" : "bad_request";
  }
}

static inline gboolean
iov_eq (h2o_iovec_t v, const char *lit, size_t len)
{
  return v.len == len && memcmp (v.base, lit, len) == 0;
}
#define IOV_IS(v, lit) iov_eq ((v), (lit), sizeof (lit) - 1)

static inline gboolean
method_is (h2o_req_t *req, const char *m, size_t len)
{
  return iov_eq (req->method, m, len);
}
#define METHOD_IS(req, lit) method_is ((req), (lit), sizeof (lit) - 1)

static void
add_header (h2o_req_t *req, const h2o_token_t *token, const char *value)
{
  h2o_add_header (&req->pool, &req->res.headers, token, NULL, value, strlen (value));
}

static void
record_response (WspHttp *self, h2o_req_t *req, int status)
{
  if (status >= 100 && status < 600)
    self->status_counts[status]++;

  struct timeval now;
  gettimeofday (&now, NULL);
  const struct timeval *b = &req->timestamps.request_begin_at;
  double d = 0;
  if (b->tv_sec != 0)
    d = (double) (now.tv_sec - b->tv_sec) + (double) (now.tv_usec - b->tv_usec) / 1e6;
  if (d < 0)
    d = 0;
  guint i = 0;
  while (i < N_BUCKETS && d > duration_buckets[i])
    i++;
  self->duration_counts[i]++;
  self->duration_sum += d;
  self->duration_n++;
}

/* Sends a complete response. body is copied into the request's pool. */
static void
respond (WspHttp *self, h2o_req_t *req, int status, const char *content_type,
         const char *body, size_t len)
{
  req->res.status = status;
  req->res.reason = reason_phrase (status);
  if (content_type != NULL)
    add_header (req, H2O_TOKEN_CONTENT_TYPE, content_type);
  /* 204 carries no Content-Length (RFC 9110 8.6). */
  req->res.content_length = status == 204 ? SIZE_MAX : len;
  record_response (self, req, status);
  h2o_send_inline (req, body, len);
}

static void
respond_json (WspHttp *self, h2o_req_t *req, int status, const GString *body)
{
  respond (self, req, status, "application/json", body->str, body->len);
}

static void
append_error_object (GString *s, const char *code, const char *message)
{
  g_string_append (s, "\"error\":{\"code\":");
  wsp_json_append_string (s, code, -1);
  g_string_append (s, ",\"message\":");
  wsp_json_append_string (s, message, -1);
  g_string_append_c (s, '}');
}

static void
send_error (WspHttp *self, h2o_req_t *req, int status, const char *code, const char *message)
{
  g_autoptr (GString) s = g_string_sized_new (96 + strlen (message));
  g_string_append_c (s, '{');
  append_error_object (s, code, message);
  g_string_append_c (s, '}');
  if (status == 503)
    add_header (req, H2O_TOKEN_RETRY_AFTER, "1");
  respond_json (self, req, status, s);
}

static void
send_method_not_allowed (WspHttp *self, h2o_req_t *req, const char *allow)
{
  add_header (req, H2O_TOKEN_ALLOW, allow);
  g_autofree char *msg = g_strdup_printf ("method %.*s not allowed here (allowed: %s)",
                                          (int) MIN (req->method.len, 32), req->method.base,
                                          allow);
  send_error (self, req, 405, "method_not_allowed", msg);
}

static void
send_not_found (WspHttp *self, h2o_req_t *req)
{
  send_error (self, req, 404, "not_found", "no such resource");
}

/* Maps an error from the store or the body parser onto HTTP. */
static void
send_gerror (WspHttp *self, h2o_req_t *req, const GError *e)
{
  int status = 500;
  const char *code = "internal";

  if (e != NULL && e->domain == WSP_ERROR) {
    switch ((WspErrorCode) e->code) {
    case WSP_ERROR_INVALID:   status = 400; code = "bad_request"; break;
    case WSP_ERROR_NOT_FOUND: status = 404; code = "not_found"; break;
    case WSP_ERROR_GONE:      status = 410; code = "gone"; break;
    case WSP_ERROR_CONFLICT:  status = 409; code = "conflict"; break;
    case WSP_ERROR_TOO_LARGE: status = 413; code = "too_large"; break;
    case WSP_ERROR_BUSY:      status = 503; code = "busy"; break;
    case WSP_ERROR_CLOSED:    status = 503; code = "unavailable"; break;
    case WSP_ERROR_CONFIG:
    case WSP_ERROR_CORRUPT:
    case WSP_ERROR_FAILED:
    default:                  break;
    }
  }
  if (status == 500)
    g_warning ("http: %.*s %.*s failed: %s", (int) req->method.len, req->method.base,
               (int) MIN (req->path.len, 200), req->path.base,
               e != NULL ? e->message : "unknown error");
  send_error (self, req, status, code, e != NULL ? e->message : "internal error");
}

/* Renders a failed task read: 410 carries the tombstone that the reader
 * left in `out`. */
static void
send_read_error (WspHttp *self, h2o_req_t *req, const char *id, const GError *e, GString *out)
{
  if (e != NULL && g_error_matches (e, WSP_ERROR, WSP_ERROR_GONE)) {
    g_autoptr (GString) s = g_string_sized_new (128 + out->len);
    g_autofree char *msg = g_strdup_printf ("task %s was deleted", id);
    g_string_append_c (s, '{');
    append_error_object (s, "gone", msg);
    g_string_append (s, ",\"task\":");
    if (out->len > 0)
      g_string_append_len (s, out->str, out->len);
    else
      g_string_append (s, "null");
    g_string_append_c (s, '}');
    respond_json (self, req, 410, s);
    return;
  }
  send_gerror (self, req, e);
}

/* Reads the task back and answers with it. */
static void
send_task (WspHttp *self, h2o_req_t *req, const char *id, int status)
{
  GString *out = self->out;
  g_autoptr (GError) e = NULL;

  g_string_truncate (out, 0);
  if (!wsp_store_reader_task_json (self->reader, id, out, &e)) {
    send_read_error (self, req, id, e, out);
    return;
  }
  respond_json (self, req, status, out);
}

/* ---- request parsing helpers ------------------------------------------- */

/* Host must be a loopback name with an optional port (DNS rebinding). */
static gboolean
host_is_loopback (h2o_iovec_t h)
{
  static const char *const names[] = { "localhost", "127.0.0.1", "[::1]" };
  size_t host_len = h.len;

  if (h.len > 0 && h.base[0] == '[') {
    const char *end = memchr (h.base, ']', h.len);
    if (end == NULL)
      return FALSE;
    host_len = (size_t) (end - h.base) + 1;
  } else {
    const char *colon = memchr (h.base, ':', h.len);
    if (colon != NULL)
      host_len = (size_t) (colon - h.base);
  }
  if (host_len < h.len) {
    size_t plen = h.len - host_len - 1;
    if (h.base[host_len] != ':' || plen == 0 || plen > 5)
      return FALSE;
    for (size_t i = host_len + 1; i < h.len; i++)
      if (!g_ascii_isdigit (h.base[i]))
        return FALSE;
  }
  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    if (h2o_lcstris (h.base, host_len, names[i], strlen (names[i])))
      return TRUE;
  return FALSE;
}

/* An Origin header, when present, must be a loopback origin. */
static gboolean
origin_ok (h2o_req_t *req)
{
  ssize_t i = h2o_find_header_by_str (&req->headers, H2O_STRLIT ("origin"), -1);
  if (i == -1)
    return TRUE;
  h2o_iovec_t v = req->headers.entries[i].value;
  if (v.len > 7 && h2o_lcstris (v.base, 7, H2O_STRLIT ("http://")))
    return host_is_loopback (h2o_iovec_init (v.base + 7, v.len - 7));
  return FALSE;
}

/* Finds `name` in the Cookie headers; returns its value (not copied). */
static h2o_iovec_t
find_cookie (h2o_req_t *req, const char *name)
{
  size_t nlen = strlen (name);
  ssize_t i = -1;

  while ((i = h2o_find_header (&req->headers, H2O_TOKEN_COOKIE, i)) != -1) {
    h2o_iovec_t v = req->headers.entries[i].value;
    size_t p = 0;
    while (p < v.len) {
      while (p < v.len && (v.base[p] == ' ' || v.base[p] == ';'))
        p++;
      size_t start = p;
      while (p < v.len && v.base[p] != ';')
        p++;
      size_t plen = p - start;
      if (plen > nlen && v.base[start + nlen] == '=' && memcmp (v.base + start, name, nlen) == 0)
        return h2o_iovec_init (v.base + start + nlen + 1, plen - nlen - 1);
    }
  }
  return h2o_iovec_init (NULL, 0);
}

static gboolean
session_valid (WspHttp *self, h2o_iovec_t v)
{
  if (v.len != SECRET_BYTES * 2)
    return FALSE;
  char buf[SECRET_BYTES * 2 + 1];
  memcpy (buf, v.base, v.len);
  buf[v.len] = '\0';
  g_mutex_lock (&self->lock);
  gboolean ok = g_hash_table_contains (self->sessions, buf);
  g_mutex_unlock (&self->lock);
  return ok;
}

typedef enum { AUTH_NONE, AUTH_BEARER, AUTH_COOKIE } WspAuth;

static WspAuth
check_auth (WspHttp *self, h2o_req_t *req)
{
  ssize_t i = h2o_find_header (&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
  if (i != -1) {
    h2o_iovec_t v = req->headers.entries[i].value;
    if (v.len > 7 && h2o_lcstris (v.base, 7, H2O_STRLIT ("bearer "))) {
      const char *t = v.base + 7;
      size_t tl = v.len - 7;
      while (tl > 0 && *t == ' ')
        t++, tl--;
      while (tl > 0 && t[tl - 1] == ' ')
        tl--;
      if (tl == self->token_len && sodium_memcmp (t, self->token, tl) == 0)
        return AUTH_BEARER;
    }
  }
  h2o_iovec_t c = find_cookie (req, "wsp_session");
  if (c.base != NULL && session_valid (self, c))
    return AUTH_COOKIE;
  return AUTH_NONE;
}

/* Value of query parameter `name` (decoded, newly allocated), or NULL when
 * absent. *bad is set when present but not decodable. */
static char *
query_param (h2o_req_t *req, const char *name, gboolean *bad)
{
  if (req->query_at == SIZE_MAX)
    return NULL;
  const char *q = req->path.base + req->query_at + 1;
  size_t qlen = req->path.len - req->query_at - 1;
  size_t nlen = strlen (name);
  char *found = NULL;

  size_t p = 0;
  while (p < qlen) {
    size_t start = p;
    while (p < qlen && q[p] != '&')
      p++;
    size_t plen = p - start;
    const char *eq = memchr (q + start, '=', plen);
    size_t klen = eq != NULL ? (size_t) (eq - (q + start)) : plen;
    if (klen == nlen && memcmp (q + start, name, nlen) == 0) {
      g_free (found);
      if (eq != NULL)
        found = wsp_api_url_decode (eq + 1, plen - klen - 1);
      else
        found = g_strdup ("");
      if (found == NULL) {
        *bad = TRUE;
        return NULL;
      }
    }
    p++;
  }
  return found;
}

/* Copies a task id path segment into buf; FALSE when it cannot be one. */
static gboolean
copy_id (const char *s, size_t len, char buf[WSP_HTTP_MAX_ID + 1])
{
  if (len == 0 || len > WSP_HTTP_MAX_ID)
    return FALSE;
  for (size_t i = 0; i < len; i++)
    if ((guchar) s[i] < 0x20 || s[i] == 0x7f)
      return FALSE;
  if (!g_utf8_validate_len (s, len, NULL))
    return FALSE;
  memcpy (buf, s, len);
  buf[len] = '\0';
  return TRUE;
}

/* ---- store writes ------------------------------------------------------ */

static void
job_free (WspJob *job)
{
  g_free (job->task_id);
  g_clear_error (&job->error);
  g_free (job);
}

/* HTTP thread: the request's pool is being cleared. */
static void
on_job_slot_dispose (void *p)
{
  WspJobSlot *slot = p;
  if (slot->job != NULL) {
    slot->job->req = NULL;
    slot->job->slot = NULL;
    slot->job = NULL;
  }
}

/* Writer thread, after the commit: copy the result and hop. */
static void
on_write_done (const WspWriteResult *result, gpointer user_data)
{
  WspJob *job = user_data;
  if (result->error != NULL)
    job->error = g_error_copy (result->error);
  job->n_ops = result->n_ops;
  /* The job now belongs to the HTTP thread; do not touch it after this. */
  h2o_multithread_send_message (&job->http->recv_write, &job->msg);
}

static void
job_finish (WspHttp *self, WspJob *job)
{
  h2o_req_t *req = job->req;

  if (job->slot != NULL) {
    job->slot->job = NULL;
    job->slot = NULL;
  }
  job->req = NULL;
  if (req == NULL)
    return;   /* the client went away; the write is durable all the same */

  if (job->error != NULL) {
    if (job->kind == WSP_WRITE_CREATE && g_error_matches (job->error, WSP_ERROR, WSP_ERROR_NOT_FOUND)) {
      /* A create names no existing task: NOT_FOUND can only be about a
       * referenced task (parent or dependency). */
      g_autoptr (GError) e = g_error_new_literal (WSP_ERROR, WSP_ERROR_INVALID, job->error->message);
      send_gerror (self, req, e);
    } else {
      send_gerror (self, req, job->error);
    }
    return;
  }
  switch (job->kind) {
  case WSP_WRITE_DELETE:
    respond (self, req, 204, NULL, "", 0);
    break;
  case WSP_WRITE_CREATE: {
    g_autofree char *loc = g_strconcat ("/api/v1/tasks/", job->task_id, NULL);
    h2o_iovec_t l = h2o_strdup (&req->pool, loc, strlen (loc));
    h2o_add_header (&req->pool, &req->res.headers, H2O_TOKEN_LOCATION, NULL, l.base, l.len);
    send_task (self, req, job->task_id, 201);
    break;
  }
  case WSP_WRITE_COMMENT:
    send_task (self, req, job->task_id, 201);
    break;
  case WSP_WRITE_UPDATE:
  default:
    send_task (self, req, job->task_id, 200);
    break;
  }
}

/* HTTP thread: completions from the writer thread. */
static void
on_write_msgs (h2o_multithread_receiver_t *recv, h2o_linklist_t *messages)
{
  WspHttp *self = H2O_STRUCT_FROM_MEMBER (WspHttp, recv_write, recv);

  while (!h2o_linklist_is_empty (messages)) {
    WspJob *job = H2O_STRUCT_FROM_MEMBER (WspJob, msg.link, messages->next);
    h2o_linklist_unlink (&job->msg.link);
    g_assert (self->jobs_inflight > 0);
    self->jobs_inflight--;
    job_finish (self, job);
    job_free (job);
  }
}

/* Queues w (taking it) for the request; the answer comes in job_finish. */
static void
submit_write (WspHttp *self, h2o_req_t *req, WspWrite *w)
{
  WspJob *job = g_new0 (WspJob, 1);
  job->http = self;
  job->req = req;
  job->kind = w->kind;
  job->task_id = g_strdup (w->task_id);

  WspJobSlot *slot = h2o_mem_alloc_shared (&req->pool, sizeof *slot, on_job_slot_dispose);
  slot->job = job;
  job->slot = slot;

  self->jobs_inflight++;
  g_autoptr (GError) e = NULL;
  if (!wsp_store_submit (self->store, w, on_write_done, job, &e)) {
    self->jobs_inflight--;
    slot->job = NULL;
    job_free (job);
    send_gerror (self, req, e);
  }
}

/* ---- SSE ---------------------------------------------------------------- */

static void
sse_detach (WspSse *c)
{
  if (h2o_linklist_is_linked (&c->link)) {
    h2o_linklist_unlink (&c->link);
    c->http->n_sse--;
  }
}

static void
sse_flush (WspSse *c)
{
  GString *t = c->sending;
  c->sending = c->pending;
  c->pending = t;
  c->inflight = TRUE;
  h2o_iovec_t buf = h2o_iovec_init (c->sending->str, c->sending->len);
  h2o_send (c->req, &buf, 1, H2O_SEND_STATE_IN_PROGRESS);
}

/* Closes the connection under a client whose write is stuck: the write
 * then fails, h2o closes the connection and calls sse_stop. */
static void
sse_force_close (WspSse *c)
{
  c->closing = TRUE;
  h2o_socket_t *sock = c->req->conn->callbacks->get_socket != NULL
                           ? c->req->conn->callbacks->get_socket (c->req->conn)
                           : NULL;
  if (sock != NULL)
    shutdown (h2o_socket_get_fd (sock), SHUT_RDWR);
}

/* Ends the stream cleanly (now, or after the write in flight). */
static void
sse_end (WspSse *c)
{
  if (c->done)
    return;
  if (c->inflight) {
    c->closing = TRUE;
    return;
  }
  c->done = TRUE;
  sse_detach (c);
  h2o_send (c->req, NULL, 0, H2O_SEND_STATE_FINAL);
}

static void
sse_push (WspSse *c, const char *text, gsize len)
{
  if (c->done || c->closing)
    return;
  if (c->inflight) {
    if (c->pending->len + len > SSE_MAX_BUFFER) {
      g_message ("http: dropping an SSE client that fell %u bytes behind",
                 (guint) c->pending->len);
      sse_detach (c);
      sse_force_close (c);
      return;
    }
    g_string_append_len (c->pending, text, len);
    return;
  }
  g_string_append_len (c->pending, text, len);
  sse_flush (c);
}

static void
sse_proceed (h2o_generator_t *gen, h2o_req_t *req)
{
  WspSse *c = (WspSse *) gen;
  c->inflight = FALSE;
  g_string_truncate (c->sending, 0);
  if (c->done)
    return;
  if (c->closing) {
    c->done = TRUE;
    sse_detach (c);
    h2o_send (req, NULL, 0, H2O_SEND_STATE_FINAL);
    return;
  }
  if (c->pending->len > 0)
    sse_flush (c);
}

static void
sse_stop (h2o_generator_t *gen, h2o_req_t *req)
{
  WspSse *c = (WspSse *) gen;
  c->done = TRUE;
  c->inflight = FALSE;
  sse_detach (c);
}

static void
sse_dispose (void *p)
{
  WspSse *c = p;
  sse_detach (c);
  g_string_free (c->sending, TRUE);
  g_string_free (c->pending, TRUE);
}

static void
handle_events (WspHttp *self, h2o_req_t *req)
{
  if (self->stopping) {
    send_error (self, req, 503, "unavailable", "shutting down");
    return;
  }
  WspSse *c = h2o_mem_alloc_shared (&req->pool, sizeof *c, sse_dispose);
  memset (c, 0, sizeof *c);
  c->super.proceed = sse_proceed;
  c->super.stop = sse_stop;
  c->http = self;
  c->req = req;
  c->sending = g_string_sized_new (512);
  c->pending = g_string_sized_new (512);
  h2o_linklist_insert (&self->sse_clients, &c->link);
  self->n_sse++;

  req->res.status = 200;
  req->res.reason = "OK";
  add_header (req, H2O_TOKEN_CONTENT_TYPE, "text/event-stream");
  add_header (req, H2O_TOKEN_CACHE_CONTROL, "no-store");
  record_response (self, req, 200);
  h2o_start_response (req, &c->super);
  /* Sends the headers now, so the client knows it is subscribed. */
  sse_push (c, H2O_STRLIT (": subscribed\n\n"));
}

static void
sse_broadcast (WspHttp *self, const char *text, gsize len)
{
  h2o_linklist_t *node = self->sse_clients.next;
  while (node != &self->sse_clients) {
    h2o_linklist_t *next = node->next;
    sse_push (H2O_STRUCT_FROM_MEMBER (WspSse, link, node), text, len);
    node = next;
  }
}

static void
sse_end_all (WspHttp *self)
{
  h2o_linklist_t *node = self->sse_clients.next;
  while (node != &self->sse_clients) {
    h2o_linklist_t *next = node->next;
    sse_end (H2O_STRUCT_FROM_MEMBER (WspSse, link, node));
    node = next;
  }
}

static void
on_ping (h2o_timeout_entry_t *entry)
{
  WspHttp *self = H2O_STRUCT_FROM_MEMBER (WspHttp, ping_entry, entry);
  sse_broadcast (self, H2O_STRLIT (": ping\n\n"));
  h2o_timeout_link (self->loop, &self->ping_timeout, &self->ping_entry);
}

/* Writer thread: a batch was applied. Copies ids and clock into a message. */
static void
on_store_change (const char *const *task_ids, guint n_tasks, const WspClock *clock,
                 gpointer user_data)
{
  guint id = GPOINTER_TO_UINT (user_data);

  g_mutex_lock (&registry_lock);
  WspHttp *self = registry != NULL ? g_hash_table_lookup (registry, GUINT_TO_POINTER (id)) : NULL;
  if (self != NULL) {
    if (g_atomic_int_get (&self->events_pending) >= EVENTS_PENDING_MAX) {
      g_atomic_int_set (&self->events_lost, 1);
    } else {
      GString *s = g_string_sized_new (64 + n_tasks * 24);
      g_string_append (s, "event: ops\ndata: {\"tasks\":[");
      for (guint i = 0; i < n_tasks; i++) {
        if (i > 0)
          g_string_append_c (s, ',');
        wsp_json_append_string (s, task_ids[i], -1);
      }
      g_string_append (s, "],\"clock\":");
      if (clock != NULL)
        wsp_clock_append_json (clock, s);
      else
        g_string_append (s, "{}");
      g_string_append (s, "}\n\n");

      WspEventMsg *m = g_new0 (WspEventMsg, 1);
      m->len = s->len;
      m->text = g_string_free (s, FALSE);
      g_atomic_int_inc (&self->events_pending);
      h2o_multithread_send_message (&self->recv_event, &m->msg);
    }
  }
  g_mutex_unlock (&registry_lock);
}

/* HTTP thread: fan the events out. */
static void
on_event_msgs (h2o_multithread_receiver_t *recv, h2o_linklist_t *messages)
{
  WspHttp *self = H2O_STRUCT_FROM_MEMBER (WspHttp, recv_event, recv);
  gboolean lost = g_atomic_int_exchange (&self->events_lost, 0) != 0;

  while (!h2o_linklist_is_empty (messages)) {
    WspEventMsg *m = H2O_STRUCT_FROM_MEMBER (WspEventMsg, msg.link, messages->next);
    h2o_linklist_unlink (&m->msg.link);
    g_atomic_int_add (&self->events_pending, -1);
    if (!lost && !self->stopping)
      sse_broadcast (self, m->text, m->len);
    g_free (m->text);
    g_free (m);
  }
  if (lost) {
    /* Some events were dropped: end every stream so that the clients
     * reconnect and re-read instead of silently missing changes. */
    g_message ("http: event queue overflowed; ending %u SSE streams", self->n_sse);
    sse_end_all (self);
  }
}

/* ---- endpoints ---------------------------------------------------------- */

static void
handle_health (WspHttp *self, h2o_req_t *req)
{
  respond (self, req, 200, "application/json", self->health_json, strlen (self->health_json));
}

static gboolean
parse_uint (const char *s, guint64 max, guint64 *out)
{
  if (*s == '\0' || strlen (s) > 10)
    return FALSE;
  guint64 v = 0;
  for (; *s; s++) {
    if (!g_ascii_isdigit (*s))
      return FALSE;
    v = v * 10 + (guint64) (*s - '0');
  }
  if (v > max)
    return FALSE;
  *out = v;
  return TRUE;
}

static gboolean
parse_bool (const char *s, gboolean *out)
{
  if (strcmp (s, "true") == 0 || strcmp (s, "1") == 0)
    *out = TRUE;
  else if (strcmp (s, "false") == 0 || strcmp (s, "0") == 0)
    *out = FALSE;
  else
    return FALSE;
  return TRUE;
}

static void
handle_list (WspHttp *self, h2o_req_t *req)
{
  WspListQuery q = { .priority = -1, .limit = 100 };
  gboolean bad = FALSE;
  g_autofree char *status = query_param (req, "status", &bad);
  g_autofree char *label = bad ? NULL : query_param (req, "label", &bad);
  g_autofree char *assignee = bad ? NULL : query_param (req, "assignee", &bad);
  g_autofree char *priority = bad ? NULL : query_param (req, "priority", &bad);
  g_autofree char *ready = bad ? NULL : query_param (req, "ready", &bad);
  g_autofree char *text = bad ? NULL : query_param (req, "q", &bad);
  g_autofree char *limit = bad ? NULL : query_param (req, "limit", &bad);
  g_autofree char *cursor = bad ? NULL : query_param (req, "cursor", &bad);
  g_autofree char *blocked = bad ? NULL : query_param (req, "blocked", &bad);
  g_autofree char *sort = bad ? NULL : query_param (req, "sort", &bad);

  if (bad) {
    send_error (self, req, 400, "bad_request", "query: parameter is not valid UTF-8");
    return;
  }
  if (status != NULL && *status == '\0') {
    send_error (self, req, 400, "bad_request", "status: must not be empty");
    return;
  }
  q.status = status;
  q.label = label != NULL && *label != '\0' ? label : NULL;
  q.assignee = assignee != NULL && *assignee != '\0' ? assignee : NULL;
  if (priority != NULL) {
    guint64 p;
    if (!parse_uint (priority, 4, &p)) {
      send_error (self, req, 400, "bad_request", "priority: must be an integer from 0 to 4");
      return;
    }
    q.priority = (gint) p;
  }
  if (ready != NULL && !parse_bool (ready, &q.ready)) {
    send_error (self, req, 400, "bad_request", "ready: must be true or false");
    return;
  }
  if (blocked != NULL && !parse_bool (blocked, &q.blocked)) {
    send_error (self, req, 400, "bad_request", "blocked: must be true or false");
    return;
  }
  if (sort != NULL) {
    if (strcmp (sort, "priority") == 0 || *sort == '\0')
      q.sort = WSP_SORT_DEFAULT;
    else if (strcmp (sort, "updated") == 0)
      q.sort = WSP_SORT_UPDATED;
    else if (strcmp (sort, "created") == 0)
      q.sort = WSP_SORT_CREATED;
    else {
      send_error (self, req, 400, "bad_request", "sort: must be priority, updated or created");
      return;
    }
  }
  q.q = text != NULL && *text != '\0' ? text : NULL;
  if (limit != NULL) {
    guint64 l;
    if (!parse_uint (limit, G_MAXUINT32, &l) || l == 0) {
      send_error (self, req, 400, "bad_request", "limit: must be an integer from 1 to 1000");
      return;
    }
    q.limit = (guint) MIN (l, 1000);
  }
  q.cursor = cursor != NULL && *cursor != '\0' ? cursor : NULL;

  GString *out = self->out;
  g_autoptr (GError) e = NULL;
  g_string_truncate (out, 0);
  if (!wsp_store_reader_list_json (self->reader, &q, out, &e)) {
    send_gerror (self, req, e);
    return;
  }
  respond_json (self, req, 200, out);
}

/* GET /api/v1/search?q=…&limit=… — ranked full-text hits (the store's
 * query language; a malformed query is the store's 400 naming q). */
static void
handle_search (WspHttp *self, h2o_req_t *req)
{
  gboolean bad = FALSE;
  g_autofree char *text = query_param (req, "q", &bad);
  g_autofree char *limit = bad ? NULL : query_param (req, "limit", &bad);
  if (bad) {
    send_error (self, req, 400, "bad_request", "query: parameter is not valid UTF-8");
    return;
  }
  if (text == NULL || *text == '\0') {
    send_error (self, req, 400, "bad_request", "q: required");
    return;
  }
  guint64 l = WSP_SEARCH_LIMIT_DEFAULT;
  if (limit != NULL && (!parse_uint (limit, G_MAXUINT32, &l) || l == 0)) {
    send_error (self, req, 400, "bad_request", "limit: must be an integer from 1 to 100");
    return;
  }
  GString *out = self->out;
  g_autoptr (GError) e = NULL;
  g_string_truncate (out, 0);
  if (!wsp_store_reader_search_json (self->reader, text, (guint) MIN (l, WSP_SEARCH_LIMIT_MAX), out, &e)) {
    send_gerror (self, req, e);
    return;
  }
  respond_json (self, req, 200, out);
}

static void
handle_create (WspHttp *self, h2o_req_t *req)
{
  g_autofree char *id = wsp_task_id_new (self->task_prefix);
  g_autoptr (GError) e = NULL;
  WspWrite *w = wsp_api_parse_task_body (req->entity.base, req->entity.len, WSP_API_BODY_CREATE,
                                         id, (const char *const *) self->statuses, &e);
  if (w == NULL) {
    send_gerror (self, req, e);
    return;
  }
  submit_write (self, req, w);
}

static void
handle_update (WspHttp *self, h2o_req_t *req, const char *id, gboolean patch)
{
  g_autoptr (GError) e = NULL;
  WspWrite *w = wsp_api_parse_task_body (req->entity.base, req->entity.len,
                                         patch ? WSP_API_BODY_PATCH : WSP_API_BODY_REPLACE,
                                         id, (const char *const *) self->statuses, &e);
  if (w == NULL) {
    send_gerror (self, req, e);
    return;
  }
  if (wsp_api_write_is_empty (w)) {
    /* Nothing to change: answer with the task as it is (404/410 apply). */
    wsp_write_free (w);
    send_task (self, req, id, 200);
    return;
  }
  submit_write (self, req, w);
}

static void
handle_delete (WspHttp *self, h2o_req_t *req, const char *id)
{
  submit_write (self, req, wsp_write_new (WSP_WRITE_DELETE, id));
}

static void
handle_comment (WspHttp *self, h2o_req_t *req, const char *id)
{
  g_autoptr (GError) e = NULL;
  char *body = wsp_api_parse_comment_body (req->entity.base, req->entity.len, &e);
  if (body == NULL) {
    send_gerror (self, req, e);
    return;
  }
  WspWrite *w = wsp_write_new (WSP_WRITE_COMMENT, id);
  w->comment_body = body;
  submit_write (self, req, w);
}

/* The string member NAME of a small JSON object body (under 4 KiB), or
 * NULL when the body is not such an object or the member is absent or not
 * a string. The string belongs to PARSER. */
static const char *
body_string_member (h2o_req_t *req, JsonParser *parser, const char *name)
{
  if (req->entity.len == 0 || req->entity.len >= 4096
      || !json_parser_load_from_data (parser, req->entity.base, (gssize) req->entity.len, NULL)
      || !JSON_NODE_HOLDS_OBJECT (json_parser_get_root (parser)))
    return NULL;
  JsonObject *o = json_node_get_object (json_parser_get_root (parser));
  JsonNode *n = json_object_get_member (o, name);
  if (n == NULL || !JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  return json_node_get_string (n);
}

/* POST /api/v1/problems/mass-removal {"action":"restore"|"delete"}. */
static void
handle_mass_removal (WspHttp *self, h2o_req_t *req)
{
  if (self->resolve_mass_removal == NULL) {
    send_not_found (self, req);
    return;
  }
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GError) e = NULL;
  const char *action = body_string_member (req, parser, "action");
  if (action == NULL || (strcmp (action, "restore") != 0 && strcmp (action, "delete") != 0)) {
    send_error (self, req, 400, "bad_request", "action: must be \"restore\" or \"delete\"");
    return;
  }
  guint n = 0;
  if (!self->resolve_mass_removal (strcmp (action, "delete") == 0, &n, &e, self->problems_data)) {
    send_gerror (self, req, e);
    return;
  }
  g_autofree char *body = g_strdup_printf ("{\"action\":\"%s\",\"tasks\":%u}", action, n);
  respond (self, req, 200, "application/json", body, strlen (body));
}

static void
handle_history (WspHttp *self, h2o_req_t *req, const char *id)
{
  GString *out = self->out;
  g_autoptr (GError) e = NULL;
  g_string_truncate (out, 0);
  if (!wsp_store_reader_history_json (self->reader, id, out, &e)) {
    send_gerror (self, req, e);
    return;
  }
  respond_json (self, req, 200, out);
}

/* ---- peers (SPEC 5, 7) ----------------------------------------------------
 * The sync module owns the peers; these handlers only validate requests and
 * call its callbacks (thread-safe, see wsp-http.h). Without them sync is
 * unavailable: lists are empty and changes answer 501. */

/* Appends the JSON array of peer objects. */
static void
append_peers (WspHttp *self, GString *out)
{
  if (self->peers_json != NULL)
    self->peers_json (out, self->sync_data);
  else
    g_string_append (out, "[]");
}

static void
send_sync_unavailable (WspHttp *self, h2o_req_t *req)
{
  send_error (self, req, 501, "not_implemented", "peer sync is not available in this daemon");
}

/* GET /api/v1/peers → {"peers":[…]}. */
static void
handle_peers (WspHttp *self, h2o_req_t *req)
{
  GString *out = self->out;
  g_string_truncate (out, 0);
  g_string_append (out, "{\"peers\":");
  append_peers (self, out);
  g_string_append_c (out, '}');
  respond_json (self, req, 200, out);
}

/* POST /api/v1/peers {"url":"ws://HOST:PORT/api/v1/signal"} → 202: the
 * connection is made (and retried) in the background; GET shows how it
 * goes. */
static void
handle_peer_connect (WspHttp *self, h2o_req_t *req)
{
  if (self->peer_connect == NULL) {
    send_sync_unavailable (self, req);
    return;
  }
  g_autoptr (JsonParser) parser = json_parser_new ();
  const char *url = body_string_member (req, parser, "url");
  if (url == NULL || *url == '\0') {
    send_error (self, req, 400, "bad_request",
                "url: required, a ws:// or wss:// signaling URL (ws://HOST:PORT/api/v1/signal)");
    return;
  }
  /* The cheap part of the check here, so a plainly wrong URL never reaches
   * the sync module; it checks the rest. */
  if (g_ascii_strncasecmp (url, "ws://", 5) != 0 && g_ascii_strncasecmp (url, "wss://", 6) != 0) {
    send_error (self, req, 400, "bad_request", "url: must be a ws:// or wss:// signaling URL");
    return;
  }
  g_autoptr (GError) e = NULL;
  if (!self->peer_connect (url, &e, self->sync_data)) {
    send_gerror (self, req, e);
    return;
  }
  g_autoptr (GString) s = g_string_new ("{\"url\":");
  wsp_json_append_string (s, url, -1);
  g_string_append (s, ",\"state\":\"connecting\"}");
  respond_json (self, req, 202, s);
}

/* DELETE /api/v1/peers/{peer_id} → 204. */
static void
handle_peer_drop (WspHttp *self, h2o_req_t *req, const char *id, size_t len)
{
  if (self->peer_drop == NULL) {
    send_sync_unavailable (self, req);
    return;
  }
  WspPeer peer;
  if (!wsp_peer_from_hex (id, len, &peer)) {
    send_error (self, req, 400, "bad_request", "peer_id: expected 16 lowercase hex characters");
    return;
  }
  char hex[WSP_PEER_HEX_LEN + 1];
  wsp_peer_to_hex (peer, hex);
  g_autoptr (GError) e = NULL;
  if (!self->peer_drop (hex, &e, self->sync_data)) {
    send_gerror (self, req, e);
    return;
  }
  respond (self, req, 204, NULL, "", 0);
}

/* GET /api/v1/sync → {"peer_id","clock":{peer: seq},"peers":[…]}. */
static void
handle_sync (WspHttp *self, h2o_req_t *req)
{
  GString *out = self->out;
  g_autoptr (GError) e = NULL;
  g_string_truncate (out, 0);
  g_string_append (out, "{\"peer_id\":");
  wsp_json_append_string (out, self->peer_id, -1);
  g_string_append (out, ",\"clock\":");
  if (!wsp_store_reader_clock_json (self->reader, out, &e)) {
    send_gerror (self, req, e);
    return;
  }
  g_string_append (out, ",\"peers\":");
  append_peers (self, out);
  g_string_append_c (out, '}');
  respond_json (self, req, 200, out);
}

static void
append_metric_header (GString *s, const char *name, const char *type, const char *help)
{
  g_string_append_printf (s, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
handle_metrics (WspHttp *self, h2o_req_t *req)
{
  WspStoreStats st = { 0 };
  wsp_store_get_stats (self->store, &st);
  gint64 tasks = wsp_store_reader_count_tasks (self->reader);
  g_autoptr (GString) s = g_string_sized_new (2048);

  append_metric_header (s, "wsp_http_requests_total", "counter",
                        "HTTP requests answered, by status code.");
  for (guint code = 100; code < G_N_ELEMENTS (self->status_counts); code++)
    if (self->status_counts[code] > 0)
      g_string_append_printf (s, "wsp_http_requests_total{code=\"%u\"} %" G_GUINT64_FORMAT "\n",
                              code, self->status_counts[code]);

  append_metric_header (s, "wsp_http_request_duration_seconds", "histogram",
                        "Time from request start to response.");
  guint64 cum = 0;
  for (guint i = 0; i < N_BUCKETS; i++) {
    cum += self->duration_counts[i];
    g_string_append_printf (s, "wsp_http_request_duration_seconds_bucket{le=\"%g\"} %" G_GUINT64_FORMAT "\n",
                            duration_buckets[i], cum);
  }
  cum += self->duration_counts[N_BUCKETS];
  g_string_append_printf (s, "wsp_http_request_duration_seconds_bucket{le=\"+Inf\"} %" G_GUINT64_FORMAT "\n", cum);
  g_string_append (s, "wsp_http_request_duration_seconds_sum ");
  wsp_json_append_double (s, self->duration_sum);
  g_string_append_printf (s, "\nwsp_http_request_duration_seconds_count %" G_GUINT64_FORMAT "\n",
                          self->duration_n);

  append_metric_header (s, "wsp_ops_applied_total", "counter", "Operations applied since start.");
  g_string_append_printf (s, "wsp_ops_applied_total %" G_GUINT64_FORMAT "\n", st.ops_applied);
  append_metric_header (s, "wsp_store_batches_total", "counter", "Store transactions committed since start.");
  g_string_append_printf (s, "wsp_store_batches_total %" G_GUINT64_FORMAT "\n", st.batches);
  append_metric_header (s, "wsp_store_rejected_busy_total", "counter",
                        "Writes refused because the store queue was full.");
  g_string_append_printf (s, "wsp_store_rejected_busy_total %" G_GUINT64_FORMAT "\n",
                          st.writes_rejected_busy);
  append_metric_header (s, "wsp_store_queue_depth", "gauge", "Jobs waiting in the store queue.");
  g_string_append_printf (s, "wsp_store_queue_depth %u\n", st.queue_depth);
  append_metric_header (s, "wsp_store_queue_max", "gauge", "Capacity of the store queue.");
  g_string_append_printf (s, "wsp_store_queue_max %u\n", st.queue_max);
  append_metric_header (s, "wsp_tasks", "gauge", "Live tasks.");
  g_string_append_printf (s, "wsp_tasks %" G_GINT64_FORMAT "\n", MAX (tasks, 0));
  append_metric_header (s, "wsp_sse_clients", "gauge", "Open /api/v1/events streams.");
  g_string_append_printf (s, "wsp_sse_clients %u\n", self->n_sse);
  append_metric_header (s, "wsp_http_connections", "gauge", "Open HTTP connections.");
  g_string_append_printf (s, "wsp_http_connections %u\n", self->n_conns);
  append_metric_header (s, "wsp_peers", "gauge", "Connected peers.");
  g_string_append_printf (s, "wsp_peers %u\n",
                          self->peers_connected != NULL ? self->peers_connected (self->sync_data) : 0);

  respond (self, req, 200, "text/plain; version=0.0.4; charset=utf-8", s->str, s->len);
}

/* ---- board and login ----------------------------------------------------- */

static char *
random_hex (void)
{
  guint8 raw[SECRET_BYTES];
  char hex[SECRET_BYTES * 2 + 1];
  randombytes_buf (raw, sizeof raw);
  sodium_bin2hex (hex, sizeof hex, raw, sizeof raw);
  sodium_memzero (raw, sizeof raw);
  return g_strdup (hex);
}

/* Adds s to a bounded set (under lock); the oldest entry goes first. */
static void
bounded_set_add (GHashTable *set, GQueue *order, char *s, guint max)
{
  while (g_queue_get_length (order) >= max) {
    char *old = g_queue_pop_head (order);
    g_hash_table_remove (set, old);   /* frees old */
  }
  g_hash_table_add (set, s);
  g_queue_push_tail (order, s);
}

/* TRUE when the token was valid; it is used up. */
static gboolean
login_consume (WspHttp *self, const char *token)
{
  g_mutex_lock (&self->lock);
  char *key = NULL;
  gboolean ok = g_hash_table_lookup_extended (self->login_tokens, token, (gpointer *) &key, NULL);
  if (ok) {
    g_queue_remove (&self->login_order, key);
    g_hash_table_remove (self->login_tokens, token);
  }
  g_mutex_unlock (&self->lock);
  return ok;
}

static const char board_html[] =
  "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
  "<title>WorkStream</title></head><body>"
  "<h1>WorkStream</h1>"
  "<p>The board is coming soon. The HTTP API lives under <code>/api/v1/</code>.</p>"
  "</body></html>\n";

static const char login_html[] =
  "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
  "<title>WorkStream</title></head><body>"
  "<h1>WorkStream</h1>"
  "<p>This login link is invalid or was already used. Open the board URL that "
  "<code>wspd</code> printed, or run <code>wsp daemon</code> again for a fresh one.</p>"
  "</body></html>\n";

static void
handle_board (WspHttp *self, h2o_req_t *req)
{
  gboolean bad = FALSE;
  g_autofree char *login = query_param (req, "login", &bad);
  h2o_iovec_t cookie = find_cookie (req, "wsp_session");
  gboolean has_session = cookie.base != NULL && session_valid (self, cookie);

  if (login != NULL || bad) {
    if (login != NULL && login_consume (self, login)) {
      char *session = random_hex ();
      g_autofree char *set_cookie =
        g_strdup_printf ("wsp_session=%s; HttpOnly; SameSite=Strict; Path=/", session);
      g_mutex_lock (&self->lock);
      bounded_set_add (self->sessions, &self->session_order, session, MAX_SESSIONS);
      g_mutex_unlock (&self->lock);
      h2o_iovec_t v = h2o_strdup (&req->pool, set_cookie, strlen (set_cookie));
      h2o_add_header (&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL, v.base, v.len);
      add_header (req, H2O_TOKEN_LOCATION, "/");
      add_header (req, H2O_TOKEN_CACHE_CONTROL, "no-store");
      respond (self, req, 303, NULL, "", 0);
      return;
    }
    if (has_session) {
      add_header (req, H2O_TOKEN_LOCATION, "/");
      respond (self, req, 303, NULL, "", 0);
      return;
    }
    respond (self, req, 403, "text/html; charset=utf-8", login_html, sizeof login_html - 1);
    return;
  }
  add_header (req, H2O_TOKEN_CACHE_CONTROL, "no-store");
  respond (self, req, 200, "text/html; charset=utf-8", board_html, sizeof board_html - 1);
}

/* ---- routing ------------------------------------------------------------ */

static void
route_task (WspHttp *self, h2o_req_t *req, const char *rest, size_t len)
{
  const char *slash = memchr (rest, '/', len);
  size_t id_len = slash != NULL ? (size_t) (slash - rest) : len;
  char id[WSP_HTTP_MAX_ID + 1];

  if (!copy_id (rest, id_len, id)) {
    send_not_found (self, req);
    return;
  }
  h2o_iovec_t sub = h2o_iovec_init (rest + id_len, len - id_len);

  if (sub.len == 0) {
    if (METHOD_IS (req, "GET") || METHOD_IS (req, "HEAD"))
      send_task (self, req, id, 200);
    else if (METHOD_IS (req, "PUT"))
      handle_update (self, req, id, FALSE);
    else if (METHOD_IS (req, "PATCH"))
      handle_update (self, req, id, TRUE);
    else if (METHOD_IS (req, "DELETE"))
      handle_delete (self, req, id);
    else
      send_method_not_allowed (self, req, "GET, PUT, PATCH, DELETE");
  } else if (IOV_IS (sub, "/comments")) {
    if (METHOD_IS (req, "POST"))
      handle_comment (self, req, id);
    else
      send_method_not_allowed (self, req, "POST");
  } else if (IOV_IS (sub, "/history")) {
    if (METHOD_IS (req, "GET") || METHOD_IS (req, "HEAD"))
      handle_history (self, req, id);
    else
      send_method_not_allowed (self, req, "GET");
  } else {
    send_not_found (self, req);
  }
}

static void
route_api (WspHttp *self, h2o_req_t *req, h2o_iovec_t path)
{
  gboolean get = METHOD_IS (req, "GET") || METHOD_IS (req, "HEAD");

  if (IOV_IS (path, "/api/v1/health")) {
    if (get)
      handle_health (self, req);
    else
      send_method_not_allowed (self, req, "GET");
    return;
  }

  WspAuth auth = check_auth (self, req);
  if (auth == AUTH_NONE) {
    add_header (req, H2O_TOKEN_WWW_AUTHENTICATE, "Bearer");
    send_error (self, req, 401, "unauthorized", "missing or wrong bearer token");
    return;
  }
  if (auth == AUTH_COOKIE && !get && !origin_ok (req)) {
    send_error (self, req, 403, "forbidden", "cross-origin request refused");
    return;
  }

  static const char prefix[] = "/api/v1/";
  if (path.len < sizeof prefix - 1 || memcmp (path.base, prefix, sizeof prefix - 1) != 0) {
    send_not_found (self, req);
    return;
  }
  h2o_iovec_t rest = h2o_iovec_init (path.base + sizeof prefix - 1, path.len - (sizeof prefix - 1));

  if (IOV_IS (rest, "tasks")) {
    if (get)
      handle_list (self, req);
    else if (METHOD_IS (req, "POST"))
      handle_create (self, req);
    else
      send_method_not_allowed (self, req, "GET, POST");
  } else if (rest.len > 6 && memcmp (rest.base, "tasks/", 6) == 0) {
    route_task (self, req, rest.base + 6, rest.len - 6);
  } else if (IOV_IS (rest, "events")) {
    if (METHOD_IS (req, "GET"))
      handle_events (self, req);
    else
      send_method_not_allowed (self, req, "GET");
  } else if (IOV_IS (rest, "search")) {
    if (get)
      handle_search (self, req);
    else
      send_method_not_allowed (self, req, "GET");
  } else if (IOV_IS (rest, "sync")) {
    if (get)
      handle_sync (self, req);
    else
      send_method_not_allowed (self, req, "GET");
  } else if (IOV_IS (rest, "peers")) {
    if (get)
      handle_peers (self, req);
    else if (METHOD_IS (req, "POST"))
      handle_peer_connect (self, req);
    else
      send_method_not_allowed (self, req, "GET, POST");
  } else if (rest.len > 6 && memcmp (rest.base, "peers/", 6) == 0) {
    const char *id = rest.base + 6;
    size_t id_len = rest.len - 6;
    if (memchr (id, '/', id_len) != NULL)
      send_not_found (self, req);
    else if (METHOD_IS (req, "DELETE"))
      handle_peer_drop (self, req, id, id_len);
    else
      send_method_not_allowed (self, req, "DELETE");
  } else if (IOV_IS (rest, "problems/mass-removal")) {
    if (METHOD_IS (req, "POST"))
      handle_mass_removal (self, req);
    else
      send_method_not_allowed (self, req, "POST");
  } else if (IOV_IS (rest, "problems")) {
    if (get) {
      g_autoptr (GString) body = g_string_new (NULL);
      if (self->problems_json != NULL)
        self->problems_json (body, self->problems_data);
      else
        g_string_append (body, "{\"problems\":[]}");
      /* Dependency cycles (only peers can make them) join the list. */
      g_autoptr (GString) cycles = g_string_new (NULL);
      guint n_cycles = 0;
      if (wsp_store_reader_cycles_json (self->reader, cycles, &n_cycles, NULL) && n_cycles
          && g_str_has_suffix (body->str, "]}")) {
        g_string_truncate (body, body->len - 2);
        if (body->str[body->len - 1] != '[')
          g_string_append_c (body, ',');
        g_string_append_len (body, cycles->str, cycles->len);
        g_string_append (body, "]}");
      }
      respond (self, req, 200, "application/json", body->str, body->len);
    } else
      send_method_not_allowed (self, req, "GET");
  } else {
    send_not_found (self, req);
  }
}

static int
on_req (h2o_handler_t *handler, h2o_req_t *req)
{
  WspHttp *self = ((WspHandler *) handler)->http;
  h2o_iovec_t path = req->path_normalized;

  if (!host_is_loopback (req->input.authority)) {
    send_error (self, req, 403, "forbidden", "Host must be a loopback name (localhost, 127.0.0.1, [::1])");
    return 0;
  }
  if (path.len >= 5 && memcmp (path.base, "/api/", 5) == 0) {
    route_api (self, req, path);
  } else if (IOV_IS (path, "/metrics")) {
    if (METHOD_IS (req, "GET") || METHOD_IS (req, "HEAD"))
      handle_metrics (self, req);
    else
      send_method_not_allowed (self, req, "GET");
  } else if (IOV_IS (path, "/")) {
    if (METHOD_IS (req, "GET") || METHOD_IS (req, "HEAD"))
      handle_board (self, req);
    else
      send_method_not_allowed (self, req, "GET");
  } else {
    send_not_found (self, req);
  }
  return 0;
}

/* Errors that h2o answers by itself (413 for a large body, 400 for broken
 * chunking) go through the host's fallback path; this filter turns their
 * text bodies into the API's JSON error shape. */
static void
err_ostream_send (h2o_ostream_t *ostr, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                  h2o_send_state_t state)
{
  WspErrOstream *o = (WspErrOstream *) ostr;
  if (h2o_send_state_is_in_progress (state)) {
    h2o_ostream_send_next (ostr, req, NULL, 0, state);
    return;
  }
  h2o_iovec_t body = o->body;
  o->body = h2o_iovec_init (NULL, 0);
  h2o_ostream_send_next (ostr, req, &body, body.len > 0 ? 1 : 0, state);
}

static void
on_fallback_setup_ostream (h2o_filter_t *filter, h2o_req_t *req, h2o_ostream_t **slot)
{
  WspHttp *self = ((WspErrFilter *) filter)->http;

  if (req->res.status >= 400) {
    int status = req->res.status;
    const char *message = status == 413 ? "request body larger than 1 MiB" : req->res.reason;
    g_autoptr (GString) s = g_string_sized_new (128);
    g_string_append_c (s, '{');
    append_error_object (s, error_code_for_status (status), message);
    g_string_append_c (s, '}');

    ssize_t i = h2o_find_header (&req->res.headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i != -1)
      req->res.headers.entries[i].value = h2o_iovec_init (H2O_STRLIT ("application/json"));
    WspErrOstream *o = (WspErrOstream *) h2o_add_ostream (req, sizeof *o, slot);
    o->super.do_send = err_ostream_send;
    o->body = h2o_strdup (&req->pool, s->str, s->len);
    req->res.content_length = o->body.len;
    slot = &o->super.next;
    record_response (self, req, status);
  }
  h2o_setup_next_ostream (req, slot);
}

/* ---- connections and the loop ------------------------------------------ */

static void
on_conn_close (void *data)
{
  WspConn *c = data;
  h2o_linklist_unlink (&c->link);
  c->http->n_conns--;
  g_free (c);
}

static void
on_accept (h2o_socket_t *listener, const char *err)
{
  WspHttp *self = listener->data;
  if (err != NULL)
    return;
  /* A few per wake-up; the listener stays readable while more wait. */
  for (int i = 0; i < 16; i++) {
    h2o_socket_t *sock = h2o_evloop_socket_accept (listener);
    if (sock == NULL)
      break;
    WspConn *c = g_new0 (WspConn, 1);
    c->sock = sock;
    c->http = self;
    h2o_linklist_insert (&self->conns, &c->link);
    self->n_conns++;
    sock->on_close.cb = on_conn_close;
    sock->on_close.data = c;
    h2o_accept (&self->accept_ctx, sock);
  }
}

static void
shutdown_conns (WspHttp *self, int how)
{
  for (h2o_linklist_t *n = self->conns.next; n != &self->conns; n = n->next) {
    WspConn *c = H2O_STRUCT_FROM_MEMBER (WspConn, link, n);
    shutdown (h2o_socket_get_fd (c->sock), how);
  }
}

static void
begin_stop (WspHttp *self)
{
  if (self->stopping)
    return;
  self->stopping = TRUE;
  self->stop_started = g_get_monotonic_time ();
  if (self->listener != NULL) {
    h2o_socket_read_stop (self->listener);
    h2o_socket_close (self->listener);   /* closes listen_fd */
    self->listener = NULL;
    self->listen_fd = -1;
  }
  /* Not h2o_context_request_shutdown: that arms an HTTP/2 goaway timer we
   * do not need; for HTTP/1 the flag alone turns keep-alive off. */
  self->ctx.shutdown_requested = 1;
  sse_end_all (self);
  /* Idle keep-alive connections see EOF and close; a request waiting for
   * its store write is not reading, so it is answered first. */
  shutdown_conns (self, SHUT_RD);
}

static void
check_stop (WspHttp *self)
{
  gint64 elapsed = g_get_monotonic_time () - self->stop_started;
  gboolean drained = self->jobs_inflight == 0 && g_atomic_int_get (&self->events_pending) == 0;

  if (drained && self->n_conns == 0) {
    self->quit = TRUE;
    return;
  }
  if (drained && !self->forced && elapsed > STOP_FORCE_US) {
    /* Stuck readers (an SSE client that stopped reading): cut them off. */
    self->forced = TRUE;
    shutdown_conns (self, SHUT_RDWR);
  }
  if (drained && elapsed > STOP_GIVE_UP_US) {
    g_warning ("http: %u connections did not close; leaving them", self->n_conns);
    self->leaked = TRUE;
    self->quit = TRUE;
  }
  if (!drained && elapsed > STOP_GIVE_UP_US && elapsed < STOP_GIVE_UP_US + 100000)
    g_warning ("http: still waiting for %u store writes", self->jobs_inflight);
}

static void
on_ctl_msgs (h2o_multithread_receiver_t *recv, h2o_linklist_t *messages)
{
  WspHttp *self = H2O_STRUCT_FROM_MEMBER (WspHttp, recv_ctl, recv);
  while (!h2o_linklist_is_empty (messages)) {
    h2o_multithread_message_t *m = H2O_STRUCT_FROM_MEMBER (h2o_multithread_message_t, link, messages->next);
    h2o_linklist_unlink (&m->link);
    if (m == &self->stop_msg)
      begin_stop (self);
  }
}

static void
signal_ready (WspHttp *self, GError *error)
{
  g_mutex_lock (&self->lock);
  self->start_error = error;
  self->ready = TRUE;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}

static gpointer
http_thread (gpointer data)
{
  WspHttp *self = data;
  GError *error = NULL;

  /* Writes to a closed peer must fail with EPIPE here, not kill the
   * process; process signals belong to the main thread. */
  sigset_t set;
  sigemptyset (&set);
  sigaddset (&set, SIGPIPE);
  sigaddset (&set, SIGINT);
  sigaddset (&set, SIGTERM);
  sigaddset (&set, SIGHUP);
  pthread_sigmask (SIG_BLOCK, &set, NULL);

  self->reader = wsp_store_reader_open (self->db_path, &error);
  if (self->reader == NULL) {
    g_prefix_error (&error, "http: cannot open the store for reading: ");
    signal_ready (self, error);
    return NULL;
  }
  /* The last column counts as done for `ready`. */
  wsp_store_reader_set_done_status (self->reader, self->statuses[g_strv_length (self->statuses) - 1]);

  h2o_config_init (&self->config);
  self->config.max_request_entity_size = WSP_HTTP_MAX_BODY;
  self->config.server_name = h2o_iovec_init (H2O_STRLIT ("wspd"));
  self->config.http1.upgrade_to_http2 = 0;
  h2o_hostconf_t *hostconf =
    h2o_config_register_host (&self->config, h2o_iovec_init (H2O_STRLIT ("127.0.0.1")), 65535);
  h2o_pathconf_t *pathconf = h2o_config_register_path (hostconf, "/", 0);
  WspHandler *handler = (WspHandler *) h2o_create_handler (pathconf, sizeof *handler);
  handler->super.on_req = on_req;
  handler->http = self;
  WspErrFilter *filter = (WspErrFilter *) h2o_create_filter (&hostconf->fallback_path, sizeof *filter);
  filter->super.on_setup_ostream = on_fallback_setup_ostream;
  filter->http = self;

  self->loop = h2o_evloop_create ();
  h2o_context_init (&self->ctx, self->loop, &self->config);
  self->accept_ctx.ctx = &self->ctx;
  self->accept_ctx.hosts = self->config.hosts;

  h2o_linklist_init_anchor (&self->conns);
  h2o_linklist_init_anchor (&self->sse_clients);
  h2o_multithread_register_receiver (self->ctx.queue, &self->recv_write, on_write_msgs);
  h2o_multithread_register_receiver (self->ctx.queue, &self->recv_event, on_event_msgs);
  h2o_multithread_register_receiver (self->ctx.queue, &self->recv_ctl, on_ctl_msgs);

  h2o_timeout_init (self->loop, &self->ping_timeout, SSE_PING_MS);
  self->ping_entry.cb = on_ping;
  h2o_timeout_link (self->loop, &self->ping_timeout, &self->ping_entry);

  self->listener = h2o_evloop_socket_create (self->loop, self->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
  self->listener->data = self;
  h2o_socket_read_start (self->listener, on_accept);

  signal_ready (self, NULL);

  while (!self->quit) {
    h2o_evloop_run (self->loop, self->stopping ? 50 : INT32_MAX);
    if (self->stopping)
      check_stop (self);
  }

  h2o_timeout_unlink (&self->ping_entry);
  h2o_timeout_dispose (self->loop, &self->ping_timeout);
  h2o_multithread_unregister_receiver (self->ctx.queue, &self->recv_write);
  h2o_multithread_unregister_receiver (self->ctx.queue, &self->recv_event);
  h2o_multithread_unregister_receiver (self->ctx.queue, &self->recv_ctl);
  if (!self->leaked) {
    /* Connections hold timeouts and pools of the context: only dispose it
     * once they are all gone. */
    h2o_context_dispose (&self->ctx);
    h2o_evloop_destroy (self->loop);
    h2o_config_dispose (&self->config);
  }
  self->loop = NULL;
  g_clear_pointer (&self->reader, wsp_store_reader_free);
  return NULL;
}

/* ---- listen address ----------------------------------------------------- */

static gboolean
parse_listen (const char *addr, struct sockaddr_storage *ss, socklen_t *ss_len,
              char **url_host, GError **error)
{
  g_autofree char *host = NULL;
  const char *port_s = NULL;

  if (addr == NULL || *addr == '\0')
    addr = "127.0.0.1:0";

  if (addr[0] == '[') {
    const char *end = strchr (addr, ']');
    if (end == NULL || (end[1] != ':' && end[1] != '\0'))
      goto bad;
    host = g_strndup (addr + 1, (gsize) (end - addr - 1));
    port_s = end[1] == ':' ? end + 2 : "0";
  } else {
    const char *colon = strrchr (addr, ':');
    if (colon == NULL) {
      gboolean digits = TRUE;
      for (const char *p = addr; *p; p++)
        digits = digits && g_ascii_isdigit (*p);
      host = g_strdup (digits ? "127.0.0.1" : addr);
      port_s = digits ? addr : "0";
    } else {
      host = colon == addr ? g_strdup ("127.0.0.1") : g_strndup (addr, (gsize) (colon - addr));
      port_s = colon + 1;
    }
  }

  guint64 port = 0;
  if (!parse_uint (port_s, 65535, &port))
    goto bad;

  memset (ss, 0, sizeof *ss);
  if (g_ascii_strcasecmp (host, "localhost") == 0)
    {
      g_free (host);
      host = g_strdup ("127.0.0.1");
    }

  struct sockaddr_in *sin = (struct sockaddr_in *) ss;
  struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) ss;
  if (inet_pton (AF_INET, host, &sin->sin_addr) == 1) {
    if ((ntohl (sin->sin_addr.s_addr) >> 24) != 127) {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                   "addr: %s is not a loopback address (the local API never leaves loopback)", addr);
      return FALSE;
    }
    sin->sin_family = AF_INET;
    sin->sin_port = htons ((guint16) port);
    *ss_len = sizeof *sin;
    *url_host = g_strdup (host);
    return TRUE;
  }
  if (inet_pton (AF_INET6, host, &sin6->sin6_addr) == 1) {
    if (!IN6_IS_ADDR_LOOPBACK (&sin6->sin6_addr)) {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                   "addr: %s is not a loopback address (the local API never leaves loopback)", addr);
      return FALSE;
    }
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons ((guint16) port);
    *ss_len = sizeof *sin6;
    *url_host = g_strdup ("[::1]");
    return TRUE;
  }

bad:
  g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
               "addr: '%s' is not ADDR:PORT on loopback (e.g. 127.0.0.1:8080)", addr);
  return FALSE;
}

static int
open_listener (const char *addr, guint16 *out_port, char **url_host, GError **error)
{
  struct sockaddr_storage ss;
  socklen_t ss_len = 0;
  if (!parse_listen (addr, &ss, &ss_len, url_host, error))
    return -1;

  int fd = socket (ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    int err = errno;
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err), "listen: socket: %s", g_strerror (err));
    return -1;
  }
  int one = 1;
  setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind (fd, (struct sockaddr *) &ss, ss_len) != 0 || listen (fd, SOMAXCONN) != 0) {
    int err = errno;
    close (fd);
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err), "cannot listen on %s: %s",
                 addr != NULL && *addr ? addr : "127.0.0.1:0", g_strerror (err));
    return -1;
  }
  struct sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  getsockname (fd, (struct sockaddr *) &bound, &blen);
  *out_port = ntohs (bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &bound)->sin6_port
                                                 : ((struct sockaddr_in *) &bound)->sin_port);
  return fd;
}

/* ---- public API ---------------------------------------------------------- */

WspHttp *
wsp_http_start (const WspHttpOptions *opts, GError **error)
{
  g_return_val_if_fail (opts != NULL, NULL);

  if (opts->token == NULL || *opts->token == '\0') {
    g_set_error_literal (error, WSP_ERROR, WSP_ERROR_CONFIG, "http: the API token is empty");
    return NULL;
  }
  if (opts->store == NULL || opts->db_path == NULL) {
    g_set_error_literal (error, WSP_ERROR, WSP_ERROR_CONFIG, "http: no store");
    return NULL;
  }
  if (sodium_init () < 0) {
    g_set_error_literal (error, WSP_ERROR, WSP_ERROR_FAILED, "http: libsodium failed to initialise");
    return NULL;
  }

  g_autoptr (WspHttp) self = g_new0 (WspHttp, 1);
  self->listen_fd = -1;
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  self->login_tokens = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->sessions = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_queue_init (&self->login_order);
  g_queue_init (&self->session_order);
  self->stopped = TRUE;   /* until the thread runs */

  self->token = g_strstrip (g_strdup (opts->token));
  self->token_len = strlen (self->token);
  self->store = opts->store;
  self->db_path = g_strdup (opts->db_path);
  self->peer_id = g_strdup (opts->peer_id != NULL ? opts->peer_id : "");
  self->task_prefix = g_strdup (opts->task_prefix != NULL && *opts->task_prefix ? opts->task_prefix : "ws");
  self->problems_json = opts->problems_json;
  self->resolve_mass_removal = opts->resolve_mass_removal;
  self->problems_data = opts->problems_data;
  self->peers_json = opts->peers_json;
  self->peer_connect = opts->peer_connect;
  self->peer_drop = opts->peer_drop;
  self->peers_connected = opts->peers_connected;
  self->sync_data = opts->sync_data;
  if (opts->statuses != NULL && opts->statuses[0] != NULL) {
    self->statuses = g_strdupv ((char **) opts->statuses);
  } else {
    const char *const def[] = { "todo", "in_progress", "done", NULL };
    self->statuses = g_strdupv ((char **) def);
  }
  self->out = g_string_sized_new (4096);

  GString *h = g_string_new ("{\"status\":\"ok\",\"peer_id\":");
  wsp_json_append_string (h, self->peer_id, -1);
  g_string_append (h, ",\"version\":");
  wsp_json_append_string (h, WSP_VERSION, -1);
  g_string_append_c (h, '}');
  self->health_json = g_string_free (h, FALSE);

  self->listen_fd = open_listener (opts->listen, &self->port, &self->url_host, error);
  if (self->listen_fd < 0)
    return NULL;

  self->thread = g_thread_try_new ("wsp-http", http_thread, self, error);
  if (self->thread == NULL)
    return NULL;

  g_mutex_lock (&self->lock);
  while (!self->ready)
    g_cond_wait (&self->cond, &self->lock);
  GError *start_error = g_steal_pointer (&self->start_error);
  g_mutex_unlock (&self->lock);
  if (start_error != NULL) {
    g_thread_join (g_steal_pointer (&self->thread));
    g_propagate_error (error, start_error);
    return NULL;
  }
  self->stopped = FALSE;

  g_mutex_lock (&registry_lock);
  if (registry == NULL)
    registry = g_hash_table_new (NULL, NULL);
  self->registry_id = registry_next++;
  g_hash_table_insert (registry, GUINT_TO_POINTER (self->registry_id), self);
  g_mutex_unlock (&registry_lock);
  wsp_store_add_listener (self->store, on_store_change, GUINT_TO_POINTER (self->registry_id));

  g_info ("http: listening on http://%s:%u", self->url_host, self->port);
  return g_steal_pointer (&self);
}

guint16
wsp_http_port (WspHttp *self)
{
  g_return_val_if_fail (self != NULL, 0);
  return self->port;
}

char *
wsp_http_board_url (WspHttp *self)
{
  g_return_val_if_fail (self != NULL, NULL);
  char *token = random_hex ();
  char *url = g_strdup_printf ("http://%s:%u/?login=%s", self->url_host, self->port, token);
  g_mutex_lock (&self->lock);
  bounded_set_add (self->login_tokens, &self->login_order, token, MAX_LOGIN_TOKENS);
  g_mutex_unlock (&self->lock);
  return url;
}

void
wsp_http_stop (WspHttp *self)
{
  if (self == NULL || self->stopped)
    return;
  self->stopped = TRUE;

  g_mutex_lock (&registry_lock);
  if (registry != NULL)
    g_hash_table_remove (registry, GUINT_TO_POINTER (self->registry_id));
  g_mutex_unlock (&registry_lock);

  h2o_multithread_send_message (&self->recv_ctl, &self->stop_msg);
  g_thread_join (g_steal_pointer (&self->thread));
}

void
wsp_http_free (WspHttp *self)
{
  if (self == NULL)
    return;
  wsp_http_stop (self);
  if (self->listen_fd >= 0)
    close (self->listen_fd);
  g_free (self->token);
  g_free (self->db_path);
  g_free (self->peer_id);
  g_free (self->task_prefix);
  g_strfreev (self->statuses);
  g_free (self->health_json);
  g_free (self->url_host);
  if (self->out != NULL)
    g_string_free (self->out, TRUE);
  g_queue_clear (&self->login_order);
  g_queue_clear (&self->session_order);
  g_clear_pointer (&self->login_tokens, g_hash_table_unref);
  g_clear_pointer (&self->sessions, g_hash_table_unref);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  g_free (self);
}
