/* wsp-store-export.c — the runs another replica lacks (SPEC 7.3), read
 * from the store for peer sync, and the size of a run's own encoding.
 *
 * A WspExport is only a cursor (a vector clock of what the other side has
 * or has been sent); every wsp_store_reader_export() call reads a fresh
 * snapshot, so new local ops stream out through the same path as catch-up.
 *
 * What may be sent: SPEC 7.3 lets a replica relay an author's ops only in
 * runs that end at a signed head it holds, and only applied ops are in the
 * `ops` table. So per author the export ends at S, the largest seq that is
 * both applied (peers.seq) and signed (a `sigs` row); signatures past the
 * applied seq (their ops still wait for causal deps) are ignored until the
 * ops are applied.
 *
 * Cost: per call one pass over `peers`, then per author with something to
 * send two point lookups (its S, the hlc of its next op); per run one
 * range scan of `ops` and of `sigs` in step, stopped as soon as the run is
 * full. Ops read past the end of a run (a stretch that did not join it)
 * are kept as the export's lookahead for that author's next run rather
 * than read again. Bodies are copied once, from the row into a GBytes, as
 * stored. Measured: 50,000 ops in 20-30 ms paged in 61,440-byte calls,
 * 15-20 ms in one call.
 *
 * Statements are prepared per call rather than kept: an export may outlive
 * the reader it was used with (and may be used with several), and a
 * statement left on a connection makes its sqlite3_close() fail. A call
 * with nothing to send costs 30-50 µs (statements, transaction, peers),
 * small against reading a 60 KiB message.
 */
#define G_LOG_DOMAIN "wsp-store"

#include "store/wsp-store.h"
#include "store/wsp-store-private.h"
#include "store/wsp-store-search-private.h"   /* wsp_store_reader_get_db */

#include <string.h>

/* ---- run sizes --------------------------------------------------------- */

static gsize
uint_size (guint64 v)
{
  if (v < 128) return 1;
  if (v <= G_MAXUINT8) return 2;
  if (v <= G_MAXUINT16) return 3;
  if (v <= G_MAXUINT32) return 5;
  return 9;
}

static gsize
array_hdr_size (guint64 n)
{
  return n < 16 ? 1 : n <= G_MAXUINT16 ? 3 : 5;
}

static gsize
bin_hdr_size (guint64 n)
{
  return n <= G_MAXUINT8 ? 2 : n <= G_MAXUINT16 ? 3 : 5;
}

/* fixmap(5) + "peer" str16 + "pk" bin32 + "from" + "ops" + "sig" bin64,
 * keys and fixed-size values only. The wire decoder (src/sync/wsp-wire.c)
 * measures a received run with wsp_run_encoded_size(). */
#define RUN_FIXED_SIZE (1 + (1 + 4) + (1 + WSP_PEER_HEX_LEN) + (1 + 2) + (2 + WSP_PK_LEN) \
                        + (1 + 4) + (1 + 3) + (1 + 3) + (2 + WSP_SIG_LEN))

/* A run of from with no ops yet. */
static gsize
run_base_size (guint64 from)
{
  return RUN_FIXED_SIZE + uint_size (from) + array_hdr_size (0);
}

gsize
wsp_run_encoded_size (const WspRun *run)
{
  guint n = run->ops != NULL ? run->ops->len : 0;
  gsize size = RUN_FIXED_SIZE + uint_size (run->from) + array_hdr_size (n);
  for (guint i = 0; i < n; i++)
    {
      gsize len = g_bytes_get_size (g_ptr_array_index (run->ops, i));
      size += bin_hdr_size (len) + len;
    }
  return size;
}

gsize
wsp_run_encoded_size_add (guint n_ops_before, gsize body_len)
{
  return bin_hdr_size (body_len) + body_len
         + array_hdr_size ((guint64) n_ops_before + 1) - array_hdr_size (n_ops_before);
}

/* ---- the cursor -------------------------------------------------------- */

/* Ops already read past the end of the last run built: the start of the
 * next run of that author, so that a stretch which did not join a run (or
 * a run that did not fit max_bytes) is not read again. One author only,
 * so an export holds at most about WSP_RUN_MAX_BYTES of it. Applied ops
 * never change, so it stays valid for as long as the author's cursor is
 * at ahead_from - 1 (checked at use; reset and advance need not care). */
typedef struct {
  WspPeer    peer;
  guint64    from;     /* seq of ops[0]; 0 = empty */
  GPtrArray *ops;      /* GBytes* bodies */
  GArray    *hlcs;     /* guint64, one per op */
} Ahead;

struct _WspExport {
  WspClock cursor;   /* per author: the last seq sent or known held */
  /* Per author: cursor + 1 when we last warned that it cannot be sent (a
   * stretch too long, no key), so a stuck author warns once, not at every
   * call. */
  WspClock warned;
  Ahead    ahead;
};

static void
ahead_clear (Ahead *a)
{
  g_clear_pointer (&a->ops, g_ptr_array_unref);
  g_clear_pointer (&a->hlcs, g_array_unref);
  a->from = 0;
}

WspExport *
wsp_export_new (const WspClock *have)
{
  WspExport *ex = g_new0 (WspExport, 1);
  wsp_clock_init (&ex->cursor);
  wsp_clock_init (&ex->warned);
  if (have)
    wsp_clock_copy (&ex->cursor, have);
  return ex;
}

void
wsp_export_free (WspExport *ex)
{
  if (!ex)
    return;
  wsp_clock_clear (&ex->cursor);
  wsp_clock_clear (&ex->warned);
  ahead_clear (&ex->ahead);
  g_free (ex);
}

void
wsp_export_reset (WspExport *ex, const WspClock *have)
{
  if (have)
    wsp_clock_copy (&ex->cursor, have);
  else
    wsp_clock_clear (&ex->cursor);
}

void
wsp_export_advance (WspExport *ex, const WspClock *have)
{
  if (have && have->len)
    wsp_clock_merge (&ex->cursor, have->dots, have->len);
}

void
wsp_export_get_clock (const WspExport *ex, WspClock *out)
{
  wsp_clock_copy (out, &ex->cursor);
}

/* ---- one call ---------------------------------------------------------- */

#define SQL_PEERS    "SELECT idx, peer, pk, seq FROM peers WHERE seq > 0"
/* S: the last signed head at or below the applied seq, past the cursor. */
#define SQL_LAST_SIG "SELECT seq FROM sigs WHERE peer = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq DESC LIMIT 1"
#define SQL_HLC      "SELECT hlc FROM ops WHERE peer = ?1 AND seq = ?2"
#define SQL_SIGS     "SELECT seq, sig FROM sigs WHERE peer = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq"
#define SQL_OPS      "SELECT seq, hlc, body FROM ops WHERE peer = ?1 AND seq BETWEEN ?2 AND ?3 ORDER BY seq"

typedef struct {
  sqlite3      *db;
  sqlite3_stmt *st_peers;
  sqlite3_stmt *st_last_sig;
  sqlite3_stmt *st_hlc;
  sqlite3_stmt *st_sigs;
  sqlite3_stmt *st_ops;
  gboolean      in_txn;     /* we opened the read transaction */
} Ctx;

/* An author with something this snapshot could send. */
typedef struct {
  gint64   idx;
  WspPeer  peer;
  guint8   pk[WSP_PK_LEN];
  guint64  start;      /* the cursor when the call began */
  guint64  cursor;     /* last seq put in a run (or held by the other side) */
  guint64  last;       /* S: send up to here */
  guint64  next_hlc;   /* hlc of op cursor + 1, for the causal order */
  gboolean stuck;      /* its next stretch cannot be sent */
} Source;

static gboolean
ctx_error (Ctx *c, GError **error)
{
  g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "sqlite: %s", sqlite3_errmsg (c->db));
  return FALSE;
}

static void
ctx_clear (Ctx *c)
{
  sqlite3_finalize (c->st_peers);
  sqlite3_finalize (c->st_last_sig);
  sqlite3_finalize (c->st_hlc);
  sqlite3_finalize (c->st_sigs);
  sqlite3_finalize (c->st_ops);
  /* A read transaction: nothing to lose if COMMIT fails, and it cannot
   * fail once every statement is finalized. */
  if (c->in_txn)
    sqlite3_exec (c->db, "COMMIT", NULL, NULL, NULL);
}

static gboolean
ctx_open (Ctx *c, sqlite3 *db, GError **error)
{
  memset (c, 0, sizeof *c);
  c->db = db;
  /* One snapshot for the whole call: peers.seq, sigs and ops must agree,
   * or a run could end at a head whose ops a concurrent commit added after
   * we read the clock. Inside a caller's transaction, use that one. */
  if (sqlite3_get_autocommit (db))
    {
      if (!wsp_sql_exec (db, "BEGIN", error))
        return FALSE;
      c->in_txn = TRUE;
    }
#define PREP(field, sql) \
  if (!(c->field = wsp_sql_prepare (db, sql, error))) return FALSE
  PREP (st_peers, SQL_PEERS);
  PREP (st_last_sig, SQL_LAST_SIG);
  PREP (st_hlc, SQL_HLC);
  PREP (st_sigs, SQL_SIGS);
  PREP (st_ops, SQL_OPS);
#undef PREP
  return TRUE;
}

/* Sets s->next_hlc to the hlc of op s->cursor + 1 (which is applied: it is
 * at most s->last). */
static gboolean
load_next_hlc (Ctx *c, Source *s, GError **error)
{
  sqlite3_stmt *st = c->st_hlc;
  sqlite3_bind_int64 (st, 1, s->idx);
  sqlite3_bind_int64 (st, 2, (gint64) (s->cursor + 1));
  int rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    s->next_hlc = (guint64) sqlite3_column_int64 (st, 0);
  sqlite3_reset (st);
  if (rc == SQLITE_ROW)
    return TRUE;
  if (rc != SQLITE_DONE)
    return ctx_error (c, error);
  char hex[WSP_PEER_HEX_LEN + 1];
  wsp_peer_to_hex (s->peer, hex);
  g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT, "export: op %" G_GUINT64_FORMAT " of %s is missing below its clock",
               s->cursor + 1, hex);
  return FALSE;
}

/* TRUE the first time a problem of peer's is seen with its cursor at
 * `at`: the caller asks again at every ack and every new local op, and a
 * problem that stays must not flood the log. */
static gboolean
warn_once (WspExport *ex, WspPeer peer, guint64 at)
{
  if (wsp_clock_get (&ex->warned, peer) == at)
    return FALSE;
  wsp_clock_set (&ex->warned, peer, at);
  return TRUE;
}

/* Fills sources with every author that has applied, signed ops past the
 * cursor. */
static gboolean
load_sources (Ctx *c, WspExport *ex, GArray *sources, GError **error)
{
  const WspClock *cursor = &ex->cursor;
  sqlite3_stmt *st = c->st_peers;
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      Source s = { 0 };
      s.peer = (WspPeer) sqlite3_column_int64 (st, 1);
      guint64 applied = (guint64) sqlite3_column_int64 (st, 3);
      s.start = s.cursor = wsp_clock_get (cursor, s.peer);
      if (applied <= s.cursor)
        continue;
      s.idx = sqlite3_column_int64 (st, 0);
      if (sqlite3_column_bytes (st, 2) != WSP_PK_LEN)
        {
          /* Every author with ops came with its key; without one no run
           * of it can be verified by anyone. */
          char hex[WSP_PEER_HEX_LEN + 1];
          wsp_peer_to_hex (s.peer, hex);
          if (warn_once (ex, s.peer, s.cursor + 1))
            g_warning ("export: author %s has ops but no public key; not exporting it", hex);
          continue;
        }
      memcpy (s.pk, sqlite3_column_blob (st, 2), WSP_PK_LEN);

      sqlite3_stmt *ls = c->st_last_sig;
      sqlite3_bind_int64 (ls, 1, s.idx);
      sqlite3_bind_int64 (ls, 2, (gint64) s.cursor);
      sqlite3_bind_int64 (ls, 3, (gint64) applied);
      int lrc = sqlite3_step (ls);
      if (lrc == SQLITE_ROW)
        s.last = (guint64) sqlite3_column_int64 (ls, 0);
      sqlite3_reset (ls);
      if (lrc != SQLITE_ROW && lrc != SQLITE_DONE)
        break;
      if (lrc == SQLITE_DONE)
        continue;   /* applied ops past the cursor, but no signed head yet */
      g_array_append_val (sources, s);
    }
  sqlite3_reset (st);
  if (rc != SQLITE_DONE)
    return ctx_error (c, error);
  for (guint i = 0; i < sources->len; i++)
    if (!load_next_hlc (c, &g_array_index (sources, Source, i), error))
      return FALSE;
  return TRUE;
}

typedef enum {
  BUILD_RUN,       /* *out is the next run of the author */
  BUILD_NO_ROOM,   /* its next stretch does not fit what is left of max_bytes */
  BUILD_STUCK,     /* its next stretch does not fit WSP_RUN_MAX_BYTES at all */
  BUILD_FAILED,    /* error set */
} Build;

/* Keeps ops[from_index…] (hlcs alike), the ops after cursor `seq0`, as the
 * export's lookahead. */
static void
ahead_keep (Ahead *a, WspPeer peer, guint64 seq0, GPtrArray *ops, GArray *hlcs, guint from_index)
{
  ahead_clear (a);
  if (from_index >= ops->len)
    return;
  guint n = ops->len - from_index;
  a->peer = peer;
  a->from = seq0 + 1;
  a->ops = g_ptr_array_new_full (n, (GDestroyNotify) g_bytes_unref);
  for (guint i = from_index; i < ops->len; i++)
    g_ptr_array_add (a->ops, g_bytes_ref (ops->pdata[i]));
  a->hlcs = g_array_sized_new (FALSE, FALSE, sizeof (guint64), n);
  g_array_append_vals (a->hlcs, &g_array_index (hlcs, guint64, from_index), n);
}

/* Builds s's next run: ops cursor+1 … up to a signed head, merging signed
 * stretches while the run stays within room bytes (room <=
 * WSP_RUN_MAX_BYTES). With force, a first stretch larger than room (but
 * within WSP_RUN_MAX_BYTES) is still taken, alone: the call's first run.
 *
 * Ops come first from the export's lookahead, then from one range scan of
 * `ops`, read in step with a range scan of `sigs` and stopped as soon as
 * the run is full. What was read past the run's end becomes the new
 * lookahead. */
static Build
build_run (Ctx *c, WspExport *ex, Source *s, gsize room, gboolean force, WspRun **out, gsize *out_size,
           GError **error)
{
  sqlite3_stmt *sg = c->st_sigs, *op = c->st_ops;
  g_autoptr (WspRun) run = wsp_run_new ();
  g_autoptr (GArray) hlcs = g_array_new (FALSE, FALSE, sizeof (guint64));
  Ahead pre = { 0 };
  run->peer = s->peer;
  memcpy (run->pk, s->pk, WSP_PK_LEN);
  run->from = s->cursor + 1;
  Build result = BUILD_FAILED;
  gsize size = run_base_size (run->from);
  gsize kept_size = 0;      /* size of the run cut at the last head taken */
  guint kept = 0;           /* ops up to that head */
  guint64 head = 0;         /* the next signed head ahead */
  guint8 head_sig[WSP_SIG_LEN];
  guint64 expect = run->from;
  gboolean scanning = FALSE, ended = FALSE;
  guint pre_i = 0;
  int rc;

  if (ex->ahead.from && ex->ahead.peer == s->peer)
    {
      if (ex->ahead.from == run->from)
        pre = ex->ahead;   /* take it */
      else
        ahead_clear (&ex->ahead);
      memset (&ex->ahead, 0, sizeof ex->ahead);
    }

  sqlite3_bind_int64 (sg, 1, s->idx);
  sqlite3_bind_int64 (sg, 2, (gint64) s->cursor);
  sqlite3_bind_int64 (sg, 3, (gint64) s->last);

#define NEXT_HEAD()                                                              \
  G_STMT_START {                                                                 \
    rc = sqlite3_step (sg);                                                      \
    if (rc == SQLITE_ROW)                                                        \
      {                                                                          \
        head = (guint64) sqlite3_column_int64 (sg, 0);                           \
        if (sqlite3_column_bytes (sg, 1) != WSP_SIG_LEN)                         \
          goto corrupt_sig;                                                      \
        memcpy (head_sig, sqlite3_column_blob (sg, 1), WSP_SIG_LEN);             \
      }                                                                          \
    else if (rc == SQLITE_DONE)                                                  \
      head = 0;                                                                  \
    else                                                                         \
      goto sql_failed;                                                           \
  } G_STMT_END

  NEXT_HEAD ();
  if (!head)
    goto missing;   /* cannot be: s->last is a head past the cursor, same snapshot */
  for (;;)
    {
      GBytes *body = NULL;
      gsize len;
      guint64 hlc;
      if (pre.from && pre_i < pre.ops->len && expect <= s->last)
        {
          body = g_bytes_ref (pre.ops->pdata[pre_i]);
          hlc = g_array_index (pre.hlcs, guint64, pre_i);
          len = g_bytes_get_size (body);
          pre_i++;
        }
      else
        {
          if (!scanning)
            {
              sqlite3_bind_int64 (op, 1, s->idx);
              sqlite3_bind_int64 (op, 2, (gint64) expect);
              sqlite3_bind_int64 (op, 3, (gint64) s->last);
              scanning = TRUE;
            }
          rc = sqlite3_step (op);
          if (rc == SQLITE_DONE)
            {
              ended = TRUE;
              break;
            }
          if (rc != SQLITE_ROW)
            goto sql_failed;
          if ((guint64) sqlite3_column_int64 (op, 0) != expect)
            goto missing;
          hlc = (guint64) sqlite3_column_int64 (op, 1);
          len = (gsize) sqlite3_column_bytes (op, 2);
        }
      gsize grown = size + wsp_run_encoded_size_add (run->ops->len, len);
      gsize limit = kept ? room : force ? WSP_RUN_MAX_BYTES : room;
      if (grown > limit)
        {
          if (body)
            g_bytes_unref (body);
          if (kept)
            break;   /* the next stretch does not join: cut at the last head */
          result = force ? BUILD_STUCK : BUILD_NO_ROOM;
          if (result == BUILD_NO_ROOM)
            ahead_keep (&ex->ahead, s->peer, s->cursor, run->ops, hlcs, 0);
          goto out;
        }
      if (!body)
        body = g_bytes_new (sqlite3_column_blob (op, 2), len);
      g_ptr_array_add (run->ops, body);
      g_array_append_val (hlcs, hlc);
      size = grown;
      if (expect == head)
        {
          kept = run->ops->len;
          kept_size = size;
          memcpy (run->sig, head_sig, WSP_SIG_LEN);
          if (size > room)
            break;   /* a forced first stretch goes alone */
          NEXT_HEAD ();
          if (!head)
            break;   /* at S */
        }
      expect++;
    }
  if ((ended && head) || !kept)
    goto missing;   /* the ops ended before a head at most S: ops missing */

  /* Ops read past the last head taken: the start of the next run. */
  ahead_keep (&ex->ahead, s->peer, s->cursor + kept, run->ops, hlcs, kept);
  if (s->cursor + kept < s->last)
    {
      if (kept < hlcs->len)
        s->next_hlc = g_array_index (hlcs, guint64, kept);
      else
        {
          sqlite3_reset (op);
          sqlite3_reset (sg);
          s->cursor += kept;
          gboolean ok = load_next_hlc (c, s, error);
          s->cursor -= kept;
          if (!ok)
            goto out;
        }
    }
  g_ptr_array_set_size (run->ops, kept);
  s->cursor += kept;
  *out_size = kept_size;
  *out = g_steal_pointer (&run);
  result = BUILD_RUN;
  goto out;

missing:
  {
    char hex[WSP_PEER_HEX_LEN + 1];
    wsp_peer_to_hex (s->peer, hex);
    g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT,
                 "export: op %" G_GUINT64_FORMAT " of %s is missing below its clock", expect, hex);
    goto out;
  }
corrupt_sig:
  {
    char hex[WSP_PEER_HEX_LEN + 1];
    wsp_peer_to_hex (s->peer, hex);
    g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT,
                 "export: signature of head %" G_GUINT64_FORMAT " of %s has a bad length", head, hex);
    goto out;
  }
sql_failed:
  ctx_error (c, error);
out:
#undef NEXT_HEAD
  ahead_clear (&pre);
  sqlite3_reset (op);
  sqlite3_reset (sg);
  return result;
}

/* The source to send next: smallest (next op's hlc, peer). NULL when none. */
static Source *
pick_source (GArray *sources)
{
  Source *best = NULL;
  for (guint i = 0; i < sources->len; i++)
    {
      Source *s = &g_array_index (sources, Source, i);
      if (s->stuck || s->cursor >= s->last)
        continue;
      if (!best || s->next_hlc < best->next_hlc || (s->next_hlc == best->next_hlc && s->peer < best->peer))
        best = s;
    }
  return best;
}

static void
warn_stuck (WspExport *ex, const Source *s)
{
  /* The stretch stays too long for ever: once per cursor position. */
  if (!warn_once (ex, s->peer, s->cursor + 1))
    return;
  char hex[WSP_PEER_HEX_LEN + 1];
  wsp_peer_to_hex (s->peer, hex);
  g_warning ("export: the signed stretch of %s from op %" G_GUINT64_FORMAT " does not fit one run of %d bytes;"
             " no receiver would accept it, so ops of %s from there on are not exported",
             hex, s->cursor + 1, WSP_RUN_MAX_BYTES, hex);
}

gboolean
wsp_store_reader_export (WspStoreReader *r, WspExport *ex, gsize max_bytes, GPtrArray *runs,
                         gboolean *done, GError **error)
{
  g_return_val_if_fail (r != NULL && ex != NULL && runs != NULL && done != NULL, FALSE);
  *done = FALSE;
  Ctx c;
  g_autoptr (GArray) sources = g_array_new (FALSE, FALSE, sizeof (Source));
  g_autoptr (GPtrArray) made = g_ptr_array_new_with_free_func ((GDestroyNotify) wsp_run_free);
  gboolean ok = ctx_open (&c, wsp_store_reader_get_db (r), error)
                && load_sources (&c, ex, sources, error);
  gsize total = 0;
  gboolean all_sent = FALSE;

  while (ok)
    {
      Source *s = pick_source (sources);
      if (!s)
        {
          all_sent = TRUE;
          break;
        }
      gboolean first = made->len == 0;
      if (!first && total >= max_bytes)
        break;
      gsize room = MIN ((gsize) WSP_RUN_MAX_BYTES, max_bytes - MIN (total, max_bytes));
      WspRun *run = NULL;
      gsize size = 0;
      switch (build_run (&c, ex, s, room, first, &run, &size, error))
        {
        case BUILD_RUN:
          g_ptr_array_add (made, run);
          total += size;
          continue;
        case BUILD_STUCK:
          warn_stuck (ex, s);
          s->stuck = TRUE;
          continue;
        case BUILD_NO_ROOM:
          break;
        case BUILD_FAILED:
        default:
          ok = FALSE;
          break;
        }
      break;
    }
  ctx_clear (&c);
  if (!ok)
    return FALSE;

  /* Commit the call: the runs and the cursor together. */
  for (guint i = 0; i < sources->len; i++)
    {
      const Source *s = &g_array_index (sources, Source, i);
      if (s->cursor != s->start)
        wsp_clock_set (&ex->cursor, s->peer, s->cursor);
    }
  for (guint i = 0; i < made->len; i++)
    g_ptr_array_add (runs, g_steal_pointer (&made->pdata[i]));
  g_ptr_array_set_free_func (made, NULL);
  *done = all_sent;
  return TRUE;
}
