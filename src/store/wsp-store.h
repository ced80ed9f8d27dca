/* wsp-store.h — the durable store: operation log, vector clock and the
 * materialized tasks in SQLite (WAL). The only module that includes
 * sqlite3.h.
 *
 * Threads: one writer thread owns the read-write connection. Every change
 * arrives as a job on a bounded queue (wsp_store_submit); a full queue fails
 * at once with WSP_ERROR_BUSY. Each batch of jobs runs in one transaction;
 * a job's completion callback runs on the writer thread after the commit,
 * so a reported success is durable. Readers (any other thread) open their
 * own read-only connection with wsp_store_reader_open and use it from that
 * thread only.
 */
#pragma once
#include <glib.h>
#include "crdt/wsp-op.h"
#include "crdt/wsp-chain.h"
#include "crdt/wsp-clock.h"

G_BEGIN_DECLS

typedef struct _WspStore WspStore;

typedef struct {
  const char        *db_path;       /* .workspace/.wsp/state.db */
  const char        *project_id;
  const WspIdentity *identity;      /* copied */
  guint              queue_max;     /* jobs; 0 → default 1024 */
  /* Task states a batch of received runs holds before it writes them out
   * and lets them go (same transaction); 0 → default 20,000. Bounds the
   * memory of a large catch-up. */
  guint              batch_tasks_max;
} WspStoreOptions;

WspStore *wsp_store_open (const WspStoreOptions *opts, GError **error);
/* Stops intake, drains queued jobs (they complete), checkpoints the WAL and
 * joins the writer thread. Idempotent. */
void      wsp_store_close (WspStore *self);
void      wsp_store_free (WspStore *self);   /* closes first if needed; NULL ok */
G_DEFINE_AUTOPTR_CLEANUP_FUNC (WspStore, wsp_store_free)

/* ---- local writes ------------------------------------------------------ */

typedef enum {
  WSP_WRITE_CREATE,    /* new task `task_id` with fields/labels/deps */
  WSP_WRITE_UPDATE,    /* set the fields in field_mask; label/dep changes */
  WSP_WRITE_DELETE,
  WSP_WRITE_COMMENT,   /* comment_body */
} WspWriteKind;

typedef struct {
  WspWriteKind kind;
  char        *task_id;
  guint32      field_mask;                  /* bit (1 << WspField) */
  WspValue     fields[WSP_FIELD_COUNT];     /* raw values, validated here */
  /* Labels and dependencies. With *_replace the set becomes exactly *_add;
   * otherwise *_add are added and *_remove removed. NULL = none. */
  gboolean     labels_replace;
  GPtrArray   *labels_add;                  /* char* */
  GPtrArray   *labels_remove;
  gboolean     deps_replace;
  GPtrArray   *deps_add;
  GPtrArray   *deps_remove;
  char        *comment_body;
} WspWrite;

WspWrite *wsp_write_new (WspWriteKind kind, const char *task_id);
void      wsp_write_free (WspWrite *w);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (WspWrite, wsp_write_free)
/* Convenience: sets field and its mask bit (takes ownership of *v). */
void      wsp_write_set_field (WspWrite *w, WspField field, WspValue *v);

/* Result of a write; valid only during the callback. On failure `error`
 * says why: WSP_ERROR_INVALID (message names the field), NOT_FOUND, GONE,
 * CONFLICT, TOO_LARGE, CLOSED. */
typedef struct {
  const GError *error;      /* NULL on success */
  const char   *task_id;
  guint         n_ops;      /* ops created (0 when nothing changed) */
} WspWriteResult;

/* Runs on the writer thread after the commit: hop to your own thread. */
typedef void (*WspWriteDone) (const WspWriteResult *result, gpointer user_data);

/* Queues a write. Takes ownership of w. Returns FALSE with WSP_ERROR_BUSY
 * when the queue is full or WSP_ERROR_CLOSED after close; done is then never
 * called. */
gboolean wsp_store_submit (WspStore *self, WspWrite *w, WspWriteDone done,
                           gpointer user_data, GError **error);
/* Blocking variant for tools and tests (not for loop threads). */
gboolean wsp_store_write_sync (WspStore *self, WspWrite *w, guint *out_n_ops, GError **error);

/* ---- operations from other peers -------------------------------------- */

/* A run (SPEC 7.3): consecutive ops of one author, signed at its last op. */
typedef struct {
  WspPeer    peer;
  guint8     pk[WSP_PK_LEN];
  guint64    from;                 /* seq of the first op, >= 1 */
  GPtrArray *ops;                  /* GBytes*: op bodies exactly as received */
  guint8     sig[WSP_SIG_LEN];     /* signature of the head at from + len - 1 */
} WspRun;

WspRun *wsp_run_new (void);
void    wsp_run_free (WspRun *run);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (WspRun, wsp_run_free)

/* The bound on a run's own shortest MessagePack encoding (SPEC 7.3): a run
 * over it is refused by every receiver, so authors sign heads before it and
 * relays merge runs only within it. */
#define WSP_RUN_MAX_BYTES 61440

/* The length of the run's own shortest MessagePack encoding (SPEC 7.3: the
 * map with exactly peer, pk, from, ops, sig), computed without encoding.
 * Senders end a run before this would pass WSP_RUN_MAX_BYTES. Here rather
 * than in the wire codec so that the store can size the runs it exports. */
gsize   wsp_run_encoded_size (const WspRun *run);
/* What one more op body of body_len bytes adds to wsp_run_encoded_size()
 * (its bin header and bytes, plus a wider array header when the count
 * crosses 15 or 65535): lets a sender grow a run incrementally. */
gsize   wsp_run_encoded_size_add (guint n_ops_before, gsize body_len);

typedef enum {
  WSP_INGEST_OK,        /* verified; new ops applied, or held until causally ready */
  WSP_INGEST_GAP,       /* starts after a gap (ops from-1.. missing): nothing kept; ask again from the clock */
} WspIngestStatus;

/* Runs on the writer thread after the commit. error (WSP_ERROR_CORRUPT) when
 * the run failed verification: pk not matching peer, broken chain, a fork
 * against ops held, bad signature, empty run — nothing of it was kept.
 * n_applied counts ops of any author applied because of this run. */
typedef void (*WspIngestDone) (const GError *error, WspIngestStatus status, guint n_applied,
                               gpointer user_data);

/* Queues a received run. Takes ownership of run. Verifies the hash chain
 * and signed head before anything is stored, stores the signature, applies
 * ops in causal order (ops waiting for their deps are held in memory, up to
 * a bound), ignores ops already applied. BUSY/CLOSED as for writes. */
gboolean wsp_store_submit_run (WspStore *self, WspRun *run, WspIngestDone done,
                               gpointer user_data, GError **error);
/* Blocking variant for tools and tests. */
gboolean wsp_store_ingest_sync (WspStore *self, WspRun *run, WspIngestStatus *out_status,
                                guint *out_applied, GError **error);
/* The current vector clock (copied under the writer's lock; any thread). */
void     wsp_store_get_clock (WspStore *self, WspClock *out);

/* ---- change notifications --------------------------------------------- */

/* After every committed batch that applied ops: the affected task ids and
 * the new clock. Runs on the writer thread; copy what you need and hop.
 * Register before traffic; listeners are never removed. */
typedef void (*WspStoreListener) (const char *const *task_ids, guint n_tasks,
                                  const WspClock *clock, gpointer user_data);
void wsp_store_add_listener (WspStore *self, WspStoreListener fn, gpointer user_data);
/* Removes a listener; when it returns, fn is not running and never runs
 * again for user_data. */
void wsp_store_remove_listener (WspStore *self, WspStoreListener fn, gpointer user_data);

/* ---- statistics (any thread) ------------------------------------------- */

typedef struct {
  guint   queue_depth;
  guint   queue_max;
  guint64 ops_applied;      /* since start */
  guint64 batches;
  guint64 writes_rejected_busy;
  guint   runs_pending;     /* received runs queued or being applied */
} WspStoreStats;
void wsp_store_get_stats (WspStore *self, WspStoreStats *out);

/* ---- readers ----------------------------------------------------------- */

typedef struct _WspStoreReader WspStoreReader;

WspStoreReader *wsp_store_reader_open (const char *db_path, GError **error);
void            wsp_store_reader_free (WspStoreReader *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (WspStoreReader, wsp_store_reader_free)

typedef enum {
  WSP_SORT_DEFAULT = 0,   /* priority, position, id */
  /* Added with search (see the "search" section at the end). */
  WSP_SORT_UPDATED,       /* updated_at newest first, then id descending */
  WSP_SORT_CREATED,       /* created_at newest first, then id descending */
  WSP_SORT_PRIORITY,      /* the default order by name: priority, position, id */
} WspSort;

typedef struct {
  const char *status;     /* NULL = any */
  const char *label;
  const char *assignee;
  gint        priority;   /* -1 = any */
  gboolean    ready;      /* open, and no open dependency */
  const char *q;          /* full-text; NULL = none */
  guint       limit;      /* 1..1000 */
  const char *cursor;     /* opaque, from a previous page; NULL = first */
  /* Added with search; zero = off / default. */
  gboolean    blocked;    /* open, with at least one open dependency; each
                           * task then carries "blocked_by":[ids] */
  WspSort     sort;       /* cursors follow every sort; a cursor from a
                           * list of another sort is INVALID */
} WspListQuery;

/* Appends the task JSON (SPEC 5, with comments and conflicts). Fails with
 * NOT_FOUND, or GONE — then `out` holds the tombstone's comments as
 * {"id":…,"deleted":true,"comments":[…]} for the 410 body. */
gboolean wsp_store_reader_task_json (WspStoreReader *r, const char *id, GString *out, GError **error);
/* TRUE when the task exists and is live (for validating dependencies). */
gboolean wsp_store_reader_task_live (WspStoreReader *r, const char *id);
/* Appends {"tasks":[…],"next_cursor":…|null}. INVALID for a bad cursor/q. */
gboolean wsp_store_reader_list_json (WspStoreReader *r, const WspListQuery *q, GString *out, GError **error);
/* Appends {"id":…,"history":[{peer,seq,hlc,type,data,at}…]} oldest first. NOT_FOUND if no op names it. */
gboolean wsp_store_reader_history_json (WspStoreReader *r, const char *id, GString *out, GError **error);
/* Appends the clock as {"peer":seq,…}. */
gboolean wsp_store_reader_clock_json (WspStoreReader *r, GString *out, GError **error);
/* The status that counts as done for `ready` (the last column); default "done". */
void     wsp_store_reader_set_done_status (WspStoreReader *r, const char *status);
/* Appends the id (char*) of every live task to out. */
gboolean wsp_store_reader_live_ids (WspStoreReader *r, GPtrArray *out, GError **error);
/* Appends one problem object per dependency cycle among live tasks
 * ({"file","line":0,"kind":"dependency_cycle","tasks":[…],"reason"}),
 * comma-separated, without brackets; *n_found counts them. Cycles can only
 * arrive from peers (a local dep.add closing one is refused). */
gboolean wsp_store_reader_cycles_json (WspStoreReader *r, GString *out, guint *n_found, GError **error);
/* Number of live tasks (for metrics). */
gint64   wsp_store_reader_count_tasks (WspStoreReader *r);

/* ---- export: the runs another replica lacks (SPEC 7.3) ----------------
 * Catch-up and streaming for peer sync (wsp-store-export.c). An export is
 * a cursor per connected replica; the reader (any reader, from its own
 * thread) turns it into signed runs. The export holds no database state,
 * so it may outlive the reader it was used with. */
typedef struct _WspExport WspExport;
/* A cursor over the ops that a replica whose applied clock is `have` lacks
 * (NULL = empty). Per author it remembers the last seq sent (the next one
 * to send is that + 1). */
WspExport *wsp_export_new (const WspClock *have);
void       wsp_export_free (WspExport *ex);   /* NULL ok */
G_DEFINE_AUTOPTR_CLEANUP_FUNC (WspExport, wsp_export_free)
/* The other side asked to resend from `have` (a `req`): the cursor becomes
 * exactly that, moving back as well as forward. */
void       wsp_export_reset (WspExport *ex, const WspClock *have);
/* The other side now has `have` (an `ack`, or ops it got elsewhere):
 * entrywise max into the cursor, so ops it holds are not sent again. */
void       wsp_export_advance (WspExport *ex, const WspClock *have);
/* The cursor as a clock (what we have sent or know they have). out must be
 * initialised; its old entries are replaced. */
void       wsp_export_get_clock (const WspExport *ex, WspClock *out);
/* Appends to runs (WspRun*, caller frees with wsp_run_free) the next runs
 * the other side lacks, advancing the cursor, until adding another run
 * would make the sum of their wsp_run_encoded_size() exceed max_bytes
 * (always at least one run when any is available).
 *
 * Per author it exports ops cursor+1 … S, where S is the largest seq that
 * is both applied here (the clock) and has a stored signature; ops held
 * for causal order, and applied ops after the last signed head, wait. A
 * run starts at the cursor (possibly inside a signed stretch: a suffix of a
 * stretch that fits also fits), ends at a signed head whose signature it
 * carries, and encodes to at most WSP_RUN_MAX_BYTES: consecutive signed
 * stretches of one author are merged while the merged run stays within
 * that bound and within what is left of max_bytes; a stretch is never
 * split. A stretch that cannot fit WSP_RUN_MAX_BYTES on its own (its
 * signer broke the bound; no receiver would accept it) stops that author
 * here, with a warning (once per cursor position).
 *
 * Across authors, runs come out in roughly causal order: repeatedly the
 * author whose next run's first op has the smallest (hlc, peer). Sets
 * *done to TRUE when nothing more is available right now (FALSE: call
 * again). Each call reads one consistent snapshot of the current database,
 * so ops committed since the last call are seen by the next one: this is
 * how new local ops get streamed.
 *
 * On failure (WSP_ERROR_FAILED: SQLite; WSP_ERROR_CORRUPT: ops missing
 * below the clock) nothing is appended and the cursor is unchanged. */
gboolean   wsp_store_reader_export (WspStoreReader *r, WspExport *ex, gsize max_bytes,
                                    GPtrArray *runs, gboolean *done, GError **error);

G_END_DECLS

/* ==== search ============================================================
 * Full-text search, ready/blocked queries and dependency cycles
 * (wsp-store-search.c). Reader side: call from the reader's thread.
 *
 * Query language (the `q` of search and of the list filter):
 *   words            zebra crossing      both words (AND is implied)
 *   phrases          "zebra crossing"    the words next to each other
 *   prefixes         auth*               any word starting with "auth"
 *                    "zebra cross"*      a phrase whose last word is a prefix
 *   operators        AND  OR  NOT        upper case only; lower-case "and",
 *                                        "or", "not" are ordinary words
 *   groups           (a OR b) NOT c
 * Precedence, loosest first: OR, AND (written or implied), NOT. NOT takes
 * the term or group after it away from what the rest of its AND group
 * matches, so a group needs at least one term that is not negated.
 * Matching is case-insensitive, diacritics are folded (café = cafe) and
 * words split as the index splits them (unicode61): "e-mail" is the phrase
 * "e mail". Punctuation-only words are ignored. Column filters and the other
 * FTS5 syntax are not available: everything the user types is text.
 * A malformed query (unbalanced quote or parenthesis, an operator missing
 * its term) fails with WSP_ERROR_INVALID and a message that says where.
 * ======================================================================== */

G_BEGIN_DECLS

#define WSP_SEARCH_LIMIT_DEFAULT 20
#define WSP_SEARCH_LIMIT_MAX     100
#define WSP_SEARCH_QUERY_MAX     2048   /* bytes of user query text */

/* Appends {"hits":[{"id","title","snippet","score"}…]}: live tasks matching
 * q, best first, at most limit (0 → 20, capped at 100).
 *
 * Ranking is bm25 with column weights title 10, labels 10, body 3,
 * comments 1 (the formula of FTS5's bm25()); score is that value, higher
 * is better, comparable only within one answer. When more than
 * max(200, 10 × limit) tasks match, only that many candidates are ranked
 * exactly: the best by a cheap bound (bm25 at average length over the first
 * 8 occurrences of each phrase; ties keep the older task) — see
 * wsp-store-search.c. Up to that, the order is exact bm25.
 *
 * snippet is an HTML fragment: up to 16 words around the best match, the
 * task text HTML-escaped (& < > " '), each matched word wrapped in
 * <b>…</b>, "…" where text was cut. It is safe to insert as HTML.
 *
 * Fails with WSP_ERROR_INVALID ("q: …") for an empty or malformed query,
 * WSP_ERROR_FAILED for a database error. On failure nothing is appended. */
gboolean wsp_store_reader_search_json (WspStoreReader *r, const char *q, guint limit,
                                       GString *out, GError **error);

/* TRUE when adding the dependency task → dep would close a cycle: task is
 * dep itself or is reachable from dep through depends_on of live tasks.
 * A database error logs a warning and answers FALSE. */
gboolean wsp_store_reader_would_cycle (WspStoreReader *r, const char *task, const char *dep);

/* Checks and translates a user query into the FTS5 MATCH expression the
 * store runs (exposed for validation before a request is queued, tests and
 * fuzzing). Returns a newly allocated string, or NULL with
 * WSP_ERROR_INVALID ("q: …"). */
char    *wsp_search_translate (const char *q, GError **error);

G_END_DECLS
