/* merge-property-test.c — convergence under any delivery order (SPEC 3).
 *
 * For each seed: 3–5 simulated peers (a WspPeer number, an HLC, a vector
 * clock, their own replica) make random ops on a few task ids — creates,
 * sets of every field with valid and invalid values, label/dep adds and
 * removes listing the tags they observed (plus bogus ones), comments,
 * deletes, unknown types and undecodable bodies — and sync with each other
 * at random. Then every op is delivered to fresh replicas in random orders
 * with duplicates; each replica buffers ops until causally ready (author's
 * previous seq applied, deps covered), ignores duplicates and computes the
 * full deps per author. All replicas, and the peers after a full sync, must
 * render identical views and encode identical state blobs. One replica
 * round-trips its states through the codec after every op, as the store
 * does.
 *
 * WSP_MERGE_SEEDS=N changes the number of seeds (default 2000, 20000 with
 * -m slow); a failure prints its seed and WSP_MERGE_SEED=S replays one.
 */
#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/wsp-task-state.h"
#include "crdt/wsp-hlc.h"

#define MAX_PEERS 5

static const char *const task_pool[] = { "ws-aaaaaaaaaa", "ws-bbbbbbbbbb", "ws-cccccccccc", "ws-neverthere" };
static const char *const label_pool[] = { "bug", "sync", "\xc3\xa9t\xc3\xa9", "B", "a b", "" };
static const char *const dep_pool[] = { "ws-aaaaaaaaaa", "ws-bbbbbbbbbb", "ws-x", "" };
static const char *const text_pool[] = { "", "alpha", "beta", "gamma \xc3\xa9", "a\nlong body" };
static const char *const status_pool[] = { "todo", "in_progress", "done", "weird column" };
static const char *const date_pool[] = { "2024-02-29", "2026-12-01", "1999-01-31" };

/* One op as authored: immutable once made, shared by every replica. */
typedef struct {
  guint    author;     /* index into Sim.peers */
  guint64  seq;
  GBytes  *body;
  gboolean decoded;    /* wsp_op_decode succeeded */
  WspOp    op;         /* valid when decoded */
  WspClock full;       /* the author's full deps at this op (for the oracle) */
} Rec;

typedef struct {
  WspClock    clock;                 /* applied */
  WspClock    full[MAX_PEERS];       /* per author: full deps of its last applied op */
  GHashTable *tasks;                 /* task id → WspTaskState* */
  GHashTable *comments;              /* task id → GPtrArray of "hlc/peer/seq/body" */
  GPtrArray  *pending[MAX_PEERS];    /* seq → Rec* waiting, NULL if none */
  GPtrArray  *applied;               /* Rec* in apply order (for syncing peers) */
  WspHlc     *hlc;                   /* peers observe received hlcs */
  gboolean    codec_round_trip;      /* decode(encode(state)) after each op */
} Replica;

typedef struct {
  guint    n_peers;
  WspPeer  peers[MAX_PEERS];
  Replica  peer_replica[MAX_PEERS];
  WspHlc   hlc[MAX_PEERS];
  WspClock last_sent[MAX_PEERS];     /* clock at the peer's previous op */
  guint64  now_ms[MAX_PEERS];
  GPtrArray *recs;                   /* every Rec, owns them */
  GRand   *rand;
  guint    seed;
  gboolean failed;
} Sim;

static void
rec_free (gpointer p)
{
  Rec *r = p;
  g_bytes_unref (r->body);
  if (r->decoded)
    wsp_op_clear (&r->op);
  wsp_clock_clear (&r->full);
  g_free (r);
}

static void
replica_init (Replica *r, WspHlc *hlc, gboolean codec_round_trip)
{
  memset (r, 0, sizeof *r);
  wsp_clock_init (&r->clock);
  for (int i = 0; i < MAX_PEERS; i++)
    {
      wsp_clock_init (&r->full[i]);
      r->pending[i] = g_ptr_array_new ();
    }
  r->tasks = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) wsp_task_state_free);
  r->comments = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_ptr_array_unref);
  r->applied = g_ptr_array_new ();
  r->hlc = hlc;
  r->codec_round_trip = codec_round_trip;
}

static void
replica_clear (Replica *r)
{
  wsp_clock_clear (&r->clock);
  for (int i = 0; i < MAX_PEERS; i++)
    {
      wsp_clock_clear (&r->full[i]);
      g_ptr_array_unref (r->pending[i]);
    }
  g_hash_table_unref (r->tasks);
  g_hash_table_unref (r->comments);
  g_ptr_array_unref (r->applied);
}

static gboolean
rec_ready (const Sim *sim, const Replica *r, const Rec *rec)
{
  if (wsp_clock_get (&r->clock, sim->peers[rec->author]) != rec->seq - 1)
    return FALSE;
  /* An undecodable body's deps count as empty (SPEC 3). */
  return !rec->decoded || wsp_clock_covers (&r->clock, rec->op.deps, rec->op.n_deps);
}

static void
replica_apply (const Sim *sim, Replica *r, Rec *rec)
{
  WspPeer author = sim->peers[rec->author];

  if (rec->decoded)
    {
      WspStamp stamp = { rec->op.hlc, author, rec->seq };
      WspTaskState *st;
      WspApplyResult res;

      wsp_clock_merge (&r->full[rec->author], rec->op.deps, rec->op.n_deps);
      st = g_hash_table_lookup (r->tasks, rec->op.task);
      if (st == NULL)
        {
          st = wsp_task_state_new (rec->op.task);
          g_hash_table_insert (r->tasks, g_strdup (rec->op.task), st);
        }
      res = wsp_task_state_apply (st, &stamp, &r->full[rec->author], &rec->op);
      if (res == WSP_APPLY_COMMENT)
        {
          GPtrArray *list = g_hash_table_lookup (r->comments, rec->op.task);
          if (list == NULL)
            {
              list = g_ptr_array_new_with_free_func (g_free);
              g_hash_table_insert (r->comments, g_strdup (rec->op.task), list);
            }
          g_ptr_array_add (list, g_strdup_printf ("%020" G_GUINT64_FORMAT "/%016" G_GINT64_MODIFIER "x/%"
                                                  G_GUINT64_FORMAT "/%s", stamp.hlc, author, stamp.seq, rec->op.text));
        }
      if (r->codec_round_trip && res != WSP_APPLY_NOOP)
        {
          g_autoptr (GBytes) blob = wsp_task_state_encode (st);
          g_autoptr (GError) error = NULL;
          WspTaskState *back = wsp_task_state_decode (rec->op.task, g_bytes_get_data (blob, NULL),
                                                      g_bytes_get_size (blob), &error);
          g_assert_no_error (error);
          g_hash_table_insert (r->tasks, g_strdup (rec->op.task), back);
        }
      if (r->hlc != NULL)
        wsp_hlc_observe (r->hlc, rec->op.hlc);
    }
  wsp_clock_set (&r->clock, author, rec->seq);
  g_ptr_array_add (r->applied, rec);
}

/* Delivers one op: ignores duplicates, buffers early ops, applies every op
 * that becomes ready. */
static void
replica_deliver (const Sim *sim, Replica *r, Rec *rec)
{
  GPtrArray *pend = r->pending[rec->author];
  gboolean progress = TRUE;

  if (rec->seq <= wsp_clock_get (&r->clock, sim->peers[rec->author]))
    return;
  if (pend->len <= rec->seq)
    g_ptr_array_set_size (pend, (guint) rec->seq + 1);
  pend->pdata[rec->seq] = rec;

  while (progress)
    {
      progress = FALSE;
      for (guint a = 0; a < sim->n_peers; a++)
        {
          guint64 next = wsp_clock_get (&r->clock, sim->peers[a]) + 1;
          Rec *cand;
          if (next >= r->pending[a]->len || (cand = r->pending[a]->pdata[next]) == NULL)
            continue;
          if (!rec_ready (sim, r, cand))
            continue;
          r->pending[a]->pdata[next] = NULL;
          replica_apply (sim, r, cand);
          progress = TRUE;
        }
    }
}

/* ---- op generation ---------------------------------------------------------- */

static const char *
pick (GRand *g, const char *const *pool, guint n)
{
  return pool[g_rand_int_range (g, 0, (gint32) n)];
}
#define PICK(g, pool) pick ((g), (pool), G_N_ELEMENTS (pool))

static gboolean
chance (GRand *g, int percent)
{
  return g_rand_int_range (g, 0, 100) < percent;
}

/* A value for field; sets *valid FALSE when it is of the wrong type. */
static WspValue
gen_value (GRand *g, WspField f, gboolean *valid)
{
  gboolean bad = chance (g, 20);

  if (bad)
    *valid = FALSE;
  switch (f)
    {
    case WSP_FIELD_TITLE:
    case WSP_FIELD_BODY:
    case WSP_FIELD_ASSIGNEE:
    case WSP_FIELD_PARENT:
      if (bad)
        return chance (g, 50) ? wsp_value_int (g_rand_int_range (g, -3, 3)) : wsp_value_float (1.5);
      return chance (g, 20) ? (WspValue) { .kind = WSP_VALUE_NIL } : wsp_value_str (PICK (g, text_pool));
    case WSP_FIELD_STATUS:
      if (bad)
        return chance (g, 50) ? (WspValue) { .kind = WSP_VALUE_NIL } : wsp_value_int (1);
      return wsp_value_str (PICK (g, status_pool));
    case WSP_FIELD_PRIORITY:
      if (bad)
        return chance (g, 50) ? wsp_value_int (chance (g, 50) ? 5 : -1) : wsp_value_float (1.5);
      return wsp_value_int (g_rand_int_range (g, 0, 5));
    case WSP_FIELD_DUE:
      if (bad)
        return chance (g, 50) ? wsp_value_str ("2023-02-29") : wsp_value_int (20240101);
      return chance (g, 25) ? (WspValue) { .kind = WSP_VALUE_NIL } : wsp_value_str (PICK (g, date_pool));
    case WSP_FIELD_POSITION:
      if (bad)
        return chance (g, 50) ? wsp_value_float (NAN) : wsp_value_str ("1");
      switch (g_rand_int_range (g, 0, 3))
        {
        case 0:  return wsp_value_int (g_rand_int_range (g, -100, 100));
        case 1:  return wsp_value_float (g_rand_double_range (g, -1e6, 1e6));
        default: return wsp_value_float ((double) g_rand_int_range (g, 0, 8) / 4);
        }
    case WSP_FIELD_NONE:
    default:
      g_assert_not_reached ();
    }
}

static GArray *
gen_observed (Sim *sim, guint p, gboolean label, const char *task, const char *key)
{
  Replica *r = &sim->peer_replica[p];
  WspTaskState *st = g_hash_table_lookup (r->tasks, task);
  GArray *tags = st == NULL ? g_array_new (FALSE, FALSE, sizeof (WspDot))
                 : label ? wsp_task_state_label_tags (st, key) : wsp_task_state_dep_tags (st, key);
  GRand *g = sim->rand;

  /* Sometimes observe only part of what is there. */
  if (tags->len > 1 && chance (g, 25))
    g_array_remove_index (tags, (guint) g_rand_int_range (g, 0, (gint32) tags->len));
  /* Sometimes name a tag that does not exist (yet). */
  if (chance (g, 10))
    {
      /* Aim at an op its author may still make, so that the remove can
       * arrive before the add it names. */
      guint q = (guint) g_rand_int_range (g, 0, (gint32) sim->n_peers);
      WspDot bogus = { sim->peers[q], wsp_clock_get (&r->clock, sim->peers[q]) + (guint64) g_rand_int_range (g, 1, 4) };
      g_array_append_val (tags, bogus);
    }
  return tags;
}

static int
dot_cmp (gconstpointer a, gconstpointer b)
{
  const WspDot *x = a, *y = b;
  if (x->peer != y->peer)
    return x->peer < y->peer ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Peer p makes one op and applies it locally. */
static void
peer_make_op (Sim *sim, guint p)
{
  GRand *g = sim->rand;
  Replica *r = &sim->peer_replica[p];
  WspPeer self = sim->peers[p];
  WspOp op = { 0 };
  g_autofree WspDot *deps = NULL;
  g_autoptr (GArray) observed = NULL;
  guint n_deps = 0;
  gboolean valid = TRUE;
  gboolean garbage = FALSE;
  int roll = g_rand_int_range (g, 0, 100);
  Rec *rec = g_new0 (Rec, 1);

  /* The wall clock mostly advances, sometimes stalls or steps back. */
  sim->now_ms[p] += (guint64) g_rand_int_range (g, 0, 4);
  if (chance (g, 5) && sim->now_ms[p] > 10)
    sim->now_ms[p] -= 10;

  op.hlc = wsp_hlc_now (&sim->hlc[p], sim->now_ms[p]);
  deps = wsp_clock_diff (&r->clock, &sim->last_sent[p], self, &n_deps);
  op.deps = deps;
  op.n_deps = n_deps;
  op.task = (char *) (chance (g, 3) ? task_pool[3] : task_pool[g_rand_int_range (g, 0, 3)]);

  if (roll < 10)
    {
      op.type = WSP_OP_CREATE;
      for (int f = 1; f < WSP_FIELD_COUNT; f++)
        op.fields[f] = gen_value (g, (WspField) f, &valid);
    }
  else if (roll < 45)
    {
      op.type = WSP_OP_SET;
      op.field = (WspField) g_rand_int_range (g, 1, WSP_FIELD_COUNT);
      op.value = gen_value (g, op.field, &valid);
    }
  else if (roll < 57 || (roll >= 65 && roll < 73))
    {
      op.type = roll < 57 ? WSP_OP_LABEL_ADD : WSP_OP_DEP_ADD;
      op.text = (char *) (roll < 57 ? PICK (g, label_pool) : PICK (g, dep_pool));
      valid = op.text[0] != '\0';
    }
  else if (roll < 65 || roll < 78)
    {
      gboolean label = roll < 65;
      op.type = label ? WSP_OP_LABEL_REMOVE : WSP_OP_DEP_REMOVE;
      op.text = (char *) (label ? PICK (g, label_pool) : PICK (g, dep_pool));
      observed = gen_observed (sim, p, label, op.task, op.text);
      g_array_sort (observed, dot_cmp);
      op.observed = (WspDot *) observed->data;
      op.n_observed = observed->len;
      valid = op.text[0] != '\0';
      for (guint i = 1; i < observed->len; i++)
        if (dot_cmp (&op.observed[i - 1], &op.observed[i]) == 0)
          valid = FALSE;   /* decoding folds duplicates: bytes would differ */
    }
  else if (roll < 88)
    {
      op.type = WSP_OP_COMMENT_ADD;
      op.text = (char *) PICK (g, text_pool);
    }
  else if (roll < 92)
    {
      /* Rarer deletes leave more live tasks to compare. */
      op.type = chance (g, 40) ? WSP_OP_DELETE : WSP_OP_COMMENT_ADD;
      op.text = (char *) PICK (g, text_pool);
    }
  else if (roll < 96)
    {
      op.type = WSP_OP_UNKNOWN;
      op.type_code = (guint64) g_rand_int_range (g, 9, 300);
    }
  else
    garbage = TRUE;

  rec->author = p;
  rec->seq = wsp_clock_get (&r->clock, self) + 1;
  /* Everything this peer applied is in the op's causal past. */
  wsp_clock_copy (&rec->full, &r->clock);
  wsp_clock_set (&rec->full, self, 0);
  if (garbage)
    {
      /* Stored, relayed and counted, never applied. Its deps are lost, so
       * the next op carries them (last_sent is not advanced). */
      static const char bad_utf8[] = "\x95\x01\x80\x04\xa1t\x91\xa2\xc3\x28";
      if (chance (g, 50))
        rec->body = g_bytes_new_static (bad_utf8, sizeof bad_utf8 - 1);
      else
        {
          guint8 junk[8];
          for (guint i = 0; i < sizeof junk; i++)
            junk[i] = (guint8) g_rand_int (g);
          junk[0] = 0x94;   /* a 4-array: never an op */
          rec->body = g_bytes_new (junk, sizeof junk);
        }
    }
  else
    {
      rec->body = wsp_op_encode (&op);
      wsp_clock_copy (&sim->last_sent[p], &r->clock);
    }
  rec->decoded = wsp_op_decode (g_bytes_get_data (rec->body, NULL), g_bytes_get_size (rec->body), self, &rec->op);
  g_assert_cmpint (rec->decoded, ==, !garbage);

  /* Encoding round trip: a valid op decodes to itself, byte for byte. */
  if (rec->decoded && valid && op.type != WSP_OP_UNKNOWN)
    {
      g_autoptr (GBytes) again = wsp_op_encode (&rec->op);
      g_assert_true (rec->op.data_ok);
      g_assert_true (g_bytes_equal (again, rec->body));
    }
  if (rec->decoded && !valid && op.type == WSP_OP_SET)
    g_assert_false (rec->op.data_ok);

  for (int f = 1; f < WSP_FIELD_COUNT; f++)
    wsp_value_clear (&op.fields[f]);
  wsp_value_clear (&op.value);

  g_ptr_array_add (sim->recs, rec);
  replica_deliver (sim, r, rec);
  g_assert_cmpuint (wsp_clock_get (&r->clock, self), ==, rec->seq);
}

static void
peer_sync (Sim *sim, guint to, guint from)
{
  Replica *src = &sim->peer_replica[from];
  guint n = src->applied->len;   /* snapshot: `to` may be `from` */

  for (guint i = 0; i < n; i++)
    replica_deliver (sim, &sim->peer_replica[to], src->applied->pdata[i]);
}

/* ---- comparison ---------------------------------------------------------------- */

#define CHECK(sim, cond, ...)                                           \
  G_STMT_START {                                                        \
    if (!(cond) && !(sim)->failed)                                      \
      {                                                                 \
        g_autofree char *what_ = g_strdup_printf (__VA_ARGS__);         \
        (sim)->failed = TRUE;                                           \
        g_test_message ("seed %u: %s (replay with WSP_MERGE_SEED=%u)",   \
                        (sim)->seed, what_, (sim)->seed);               \
        g_printerr ("merge-property: seed %u: %s\n", (sim)->seed, what_); \
        g_test_fail ();                                                 \
      }                                                                 \
  } G_STMT_END

static gboolean
str_eq (const char *a, const char *b)
{
  return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp (a, b) == 0);
}

static gboolean
list_eq (GPtrArray *a, GPtrArray *b)
{
  if ((a == NULL) != (b == NULL))
    return FALSE;
  if (a == NULL)
    return TRUE;
  if (a->len != b->len)
    return FALSE;
  for (guint i = 0; i < a->len; i++)
    if (strcmp (a->pdata[i], b->pdata[i]) != 0)
      return FALSE;
  return TRUE;
}

static int
strptr_cmp (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static void
compare_task (Sim *sim, const char *id, Replica *ra, Replica *rb, const char *who)
{
  WspTaskState *a = g_hash_table_lookup (ra->tasks, id);
  WspTaskState *b = g_hash_table_lookup (rb->tasks, id);
  WspTaskView va, vb;
  GPtrArray *ca, *cb;

  CHECK (sim, a != NULL && b != NULL, "%s: task %s missing", who, id);
  if (a == NULL || b == NULL)
    return;
  wsp_task_state_view (a, &va);
  wsp_task_state_view (b, &vb);
  CHECK (sim, va.exists == vb.exists, "%s %s: exists", who, id);
  CHECK (sim, va.deleted == vb.deleted, "%s %s: deleted", who, id);
  CHECK (sim, str_eq (va.title, vb.title), "%s %s: title '%s' vs '%s'", who, id, va.title, vb.title);
  CHECK (sim, str_eq (va.body, vb.body), "%s %s: body", who, id);
  CHECK (sim, str_eq (va.status, vb.status), "%s %s: status", who, id);
  CHECK (sim, va.priority == vb.priority, "%s %s: priority", who, id);
  CHECK (sim, str_eq (va.assignee, vb.assignee), "%s %s: assignee", who, id);
  CHECK (sim, str_eq (va.parent, vb.parent), "%s %s: parent", who, id);
  CHECK (sim, str_eq (va.due, vb.due), "%s %s: due", who, id);
  CHECK (sim, memcmp (&va.position, &vb.position, sizeof (double)) == 0, "%s %s: position", who, id);
  CHECK (sim, list_eq (va.labels, vb.labels), "%s %s: labels", who, id);
  CHECK (sim, list_eq (va.depends_on, vb.depends_on), "%s %s: depends_on", who, id);
  CHECK (sim, va.created_hlc == vb.created_hlc && va.created_by == vb.created_by, "%s %s: created", who, id);
  CHECK (sim, va.updated_hlc == vb.updated_hlc, "%s %s: updated %" G_GUINT64_FORMAT " vs %" G_GUINT64_FORMAT,
         who, id, va.updated_hlc, vb.updated_hlc);
  CHECK (sim, va.conflicts->len == vb.conflicts->len, "%s %s: %u vs %u conflicts", who, id,
         va.conflicts->len, vb.conflicts->len);
  for (guint i = 0; i < MIN (va.conflicts->len, vb.conflicts->len); i++)
    {
      WspConflict *x = &g_array_index (va.conflicts, WspConflict, i);
      WspConflict *y = &g_array_index (vb.conflicts, WspConflict, i);
      CHECK (sim, x->field == y->field && strcmp (x->value, y->value) == 0
             && wsp_stamp_compare (&x->stamp, &y->stamp) == 0, "%s %s: conflict %u", who, id, i);
    }
  wsp_task_view_clear (&va);
  wsp_task_view_clear (&vb);

  /* Canonical state: the same ops give the same blob. */
  {
    g_autoptr (GBytes) ea = wsp_task_state_encode (a);
    g_autoptr (GBytes) eb = wsp_task_state_encode (b);
    g_autofree char *ha = wsp_hex_encode (g_bytes_get_data (ea, NULL), g_bytes_get_size (ea));
    g_autofree char *hb = wsp_hex_encode (g_bytes_get_data (eb, NULL), g_bytes_get_size (eb));
    CHECK (sim, g_bytes_equal (ea, eb), "%s %s: state blobs differ:\n  %s\n  %s", who, id, ha, hb);
  }

  ca = g_hash_table_lookup (ra->comments, id);
  cb = g_hash_table_lookup (rb->comments, id);
  if (ca != NULL)
    g_ptr_array_sort (ca, strptr_cmp);
  if (cb != NULL)
    g_ptr_array_sort (cb, strptr_cmp);
  CHECK (sim, list_eq (ca, cb), "%s %s: comments", who, id);
}

static void
compare_replicas (Sim *sim, Replica *ra, Replica *rb, const char *who)
{
  GHashTableIter it;
  gpointer key;

  CHECK (sim, wsp_clock_equal (&ra->clock, &rb->clock), "%s: clocks differ", who);
  CHECK (sim, g_hash_table_size (ra->tasks) == g_hash_table_size (rb->tasks), "%s: task counts differ", who);
  g_hash_table_iter_init (&it, ra->tasks);
  while (g_hash_table_iter_next (&it, &key, NULL))
    compare_task (sim, key, ra, rb, who);
}


/* ---- oracle: the rules of SPEC 3 computed from the whole history -------------- */

static gboolean
rec_is (const Rec *r, const char *task, WspOpType type)
{
  return r->decoded && r->op.data_ok && r->op.type == type && strcmp (r->op.task, task) == 0;
}

static WspStamp
rec_stamp (const Sim *sim, const Rec *r)
{
  return (WspStamp) { r->op.hlc, sim->peers[r->author], r->seq };
}

/* W follows X: X is an earlier op of W's author, or X's seq is at most W's
 * full deps entry for X's author. */
static gboolean
rec_follows (const Sim *sim, const Rec *w, const Rec *x)
{
  if (w->author == x->author)
    return x->seq < w->seq;
  return x->seq <= wsp_clock_get (&w->full, sim->peers[x->author]);
}

static gboolean
writes_field (const Rec *r, const char *task, WspField f)
{
  return rec_is (r, task, WSP_OP_CREATE) || (rec_is (r, task, WSP_OP_SET) && r->op.field == f);
}

static const char *
write_text (const Rec *r, WspField f)
{
  const WspValue *v = r->op.type == WSP_OP_CREATE ? &r->op.fields[f] : &r->op.value;
  return v->kind == WSP_VALUE_STR ? v->str : "";
}

static int
conflict_cmp (gconstpointer a, gconstpointer b)
{
  const WspConflict *x = a, *y = b;
  int c = wsp_stamp_compare (&x->stamp, &y->stamp);
  return c != 0 ? c : (int) x->field - (int) y->field;
}

/* The labels (or deps) alive: an add whose tag no remove of that element
 * listed. Sorted by byte order, de-duplicated. */
static GPtrArray *
oracle_set (const Sim *sim, const char *task, gboolean label)
{
  GPtrArray *out = g_ptr_array_new ();
  WspOpType add = label ? WSP_OP_LABEL_ADD : WSP_OP_DEP_ADD;
  WspOpType rem = label ? WSP_OP_LABEL_REMOVE : WSP_OP_DEP_REMOVE;

  for (guint i = 0; i < sim->recs->len; i++)
    {
      const Rec *a = sim->recs->pdata[i];
      gboolean removed = FALSE;
      if (!rec_is (a, task, add))
        continue;
      for (guint j = 0; j < sim->recs->len && !removed; j++)
        {
          const Rec *r = sim->recs->pdata[j];
          if (!rec_is (r, task, rem) || strcmp (r->op.text, a->op.text) != 0)
            continue;
          for (guint k = 0; k < r->op.n_observed; k++)
            if (r->op.observed[k].peer == sim->peers[a->author] && r->op.observed[k].seq == a->seq)
              removed = TRUE;
        }
      if (!removed && !g_ptr_array_find_with_equal_func (out, a->op.text, g_str_equal, NULL))
        g_ptr_array_add (out, a->op.text);
    }
  g_ptr_array_sort (out, strptr_cmp);
  return out;
}

/* Coverage counters, reported at the end: a property test that never
 * produces conflicts or tombstones proves little. */
static guint stat_tasks, stat_deleted, stat_conflicts, stat_labels, stat_deps;

static void
check_oracle (Sim *sim, Replica *r)
{
  GHashTableIter it;
  gpointer key, value;

  g_hash_table_iter_init (&it, r->tasks);
  while (g_hash_table_iter_next (&it, &key, &value))
    {
      const char *task = key;
      WspTaskView v;
      gboolean deleted = FALSE, created = FALSE;
      WspStamp first = { 0 };
      guint64 updated = 0;
      g_autoptr (GArray) conflicts = g_array_new (FALSE, FALSE, sizeof (WspConflict));
      g_autoptr (GPtrArray) labels = NULL;
      g_autoptr (GPtrArray) deps = NULL;

      for (guint i = 0; i < sim->recs->len; i++)
        {
          const Rec *x = sim->recs->pdata[i];
          WspStamp st;
          if (!x->decoded || !x->op.data_ok || strcmp (x->op.task, task) != 0)
            continue;
          st = rec_stamp (sim, x);
          if (x->op.type == WSP_OP_DELETE)
            deleted = TRUE;
          if (x->op.type == WSP_OP_CREATE && (!created || wsp_stamp_compare (&st, &first) < 0))
            first = st, created = TRUE;
          updated = MAX (updated, x->op.hlc);
        }
      wsp_task_state_view (value, &v);
      stat_tasks++;
      stat_deleted += deleted;
      stat_conflicts += v.conflicts->len;
      stat_labels += v.labels->len;
      stat_deps += v.depends_on->len;
      CHECK (sim, v.deleted == deleted, "oracle %s: deleted", task);
      if (deleted)
        {
          wsp_task_view_clear (&v);
          continue;
        }
      CHECK (sim, v.exists == created, "oracle %s: exists", task);
      CHECK (sim, !created || (v.created_hlc == first.hlc && v.created_by == first.peer), "oracle %s: created", task);
      CHECK (sim, v.updated_hlc == updated, "oracle %s: updated", task);

      for (WspField f = WSP_FIELD_TITLE; f <= WSP_FIELD_BODY; f++)
        {
          const Rec *win = NULL;
          for (guint i = 0; i < sim->recs->len; i++)
            {
              const Rec *w = sim->recs->pdata[i];
              WspStamp sw, sb;
              if (!writes_field (w, task, f))
                continue;
              sw = rec_stamp (sim, w);
              if (win != NULL)
                sb = rec_stamp (sim, win);
              if (win == NULL || wsp_stamp_compare (&sw, &sb) > 0)
                win = w;
            }
          CHECK (sim, strcmp (f == WSP_FIELD_TITLE ? v.title : v.body, win != NULL ? write_text (win, f) : "") == 0,
                 "oracle %s: %s value", task, wsp_field_to_string (f));
          /* Kept = writes no other write follows; conflicts = kept but the winner. */
          for (guint i = 0; i < sim->recs->len; i++)
            {
              const Rec *x = sim->recs->pdata[i];
              gboolean followed = FALSE;
              if (!writes_field (x, task, f) || x == win)
                continue;
              for (guint j = 0; j < sim->recs->len && !followed; j++)
                {
                  const Rec *w = sim->recs->pdata[j];
                  if (w != x && writes_field (w, task, f) && rec_follows (sim, w, x))
                    followed = TRUE;
                }
              if (!followed)
                {
                  WspConflict c = { f, (char *) write_text (x, f), rec_stamp (sim, x) };
                  g_array_append_val (conflicts, c);
                }
            }
        }
      g_array_sort (conflicts, conflict_cmp);
      CHECK (sim, conflicts->len == v.conflicts->len, "oracle %s: %u conflicts, want %u", task,
             v.conflicts->len, conflicts->len);
      for (guint i = 0; i < MIN (conflicts->len, v.conflicts->len); i++)
        {
          WspConflict *x = &g_array_index (conflicts, WspConflict, i);
          WspConflict *y = &g_array_index (v.conflicts, WspConflict, i);
          CHECK (sim, x->field == y->field && strcmp (x->value, y->value) == 0
                 && wsp_stamp_compare (&x->stamp, &y->stamp) == 0, "oracle %s: conflict %u", task, i);
        }
      labels = oracle_set (sim, task, TRUE);
      deps = oracle_set (sim, task, FALSE);
      CHECK (sim, list_eq (labels, v.labels), "oracle %s: labels", task);
      CHECK (sim, list_eq (deps, v.depends_on), "oracle %s: depends_on", task);
      wsp_task_view_clear (&v);
    }
}

/* ---- one seed --------------------------------------------------------------------- */

static void
run_seed (guint seed)
{
  Sim sim = { 0 };
  Replica fresh[3];
  GRand *g;
  guint n_ops;

  sim.seed = seed;
  sim.rand = g = g_rand_new_with_seed (seed);
  sim.recs = g_ptr_array_new_with_free_func (rec_free);
  sim.n_peers = (guint) g_rand_int_range (g, 3, MAX_PEERS + 1);
  for (guint p = 0; p < sim.n_peers; p++)
    {
      /* Random ids, sometimes close together or at the extremes. */
      sim.peers[p] = ((guint64) g_rand_int (g) << 32) | g_rand_int (g);
      if (p == 1 && chance (g, 20))
        sim.peers[p] = G_MAXUINT64 - p;
      sim.hlc[p].last = 0;
      sim.now_ms[p] = 1000 + (guint64) g_rand_int_range (g, 0, 20);
      wsp_clock_init (&sim.last_sent[p]);
      replica_init (&sim.peer_replica[p], &sim.hlc[p], FALSE);
    }
  /* Distinct peer ids (collisions in 64 random bits do not happen, but the
   * extreme-id case above could in theory). */
  for (guint p = 1; p < sim.n_peers; p++)
    for (guint q = 0; q < p; q++)
      if (sim.peers[p] == sim.peers[q])
        sim.peers[p] ^= 0x5555;

  n_ops = (guint) g_rand_int_range (g, 20, 90);
  for (guint i = 0; i < n_ops; i++)
    {
      peer_make_op (&sim, (guint) g_rand_int_range (g, 0, (gint32) sim.n_peers));
      if (chance (g, 30))
        {
          guint a = (guint) g_rand_int_range (g, 0, (gint32) sim.n_peers);
          guint b = (guint) g_rand_int_range (g, 0, (gint32) sim.n_peers);
          if (a != b)
            peer_sync (&sim, a, b);
        }
    }

  /* Fresh replicas: every op in a random order, with duplicates. */
  for (guint k = 0; k < G_N_ELEMENTS (fresh); k++)
    {
      g_autoptr (GPtrArray) order = g_ptr_array_new ();
      replica_init (&fresh[k], NULL, k == 1);
      for (guint i = 0; i < sim.recs->len; i++)
        {
          g_ptr_array_add (order, sim.recs->pdata[i]);
          if (chance (g, 20))
            g_ptr_array_add (order, sim.recs->pdata[i]);
        }
      if (k == 2)
        {
          /* Worst case for buffering: reversed. */
          for (guint i = 0; i < order->len / 2; i++)
            {
              gpointer t = order->pdata[i];
              order->pdata[i] = order->pdata[order->len - 1 - i];
              order->pdata[order->len - 1 - i] = t;
            }
        }
      else
        for (guint i = order->len; i > 1; i--)
          {
            guint j = (guint) g_rand_int_range (g, 0, (gint32) i);
            gpointer t = order->pdata[i - 1];
            order->pdata[i - 1] = order->pdata[j];
            order->pdata[j] = t;
          }
      for (guint i = 0; i < order->len; i++)
        replica_deliver (&sim, &fresh[k], order->pdata[i]);
      CHECK (&sim, fresh[k].applied->len == sim.recs->len, "replica %u applied %u of %u ops",
             k, fresh[k].applied->len, sim.recs->len);
    }
  check_oracle (&sim, &fresh[0]);
  compare_replicas (&sim, &fresh[0], &fresh[1], "fresh0/fresh1");
  compare_replicas (&sim, &fresh[0], &fresh[2], "fresh0/fresh2");

  /* Peers after a full sync agree with the fresh replicas. */
  for (guint p = 0; p < sim.n_peers; p++)
    for (guint q = 0; q < sim.n_peers; q++)
      if (p != q)
        peer_sync (&sim, p, q);
  for (guint p = 0; p < sim.n_peers; p++)
    {
      g_autofree char *who = g_strdup_printf ("fresh0/peer%u", p);
      compare_replicas (&sim, &fresh[0], &sim.peer_replica[p], who);
    }

  for (guint k = 0; k < G_N_ELEMENTS (fresh); k++)
    replica_clear (&fresh[k]);
  for (guint p = 0; p < sim.n_peers; p++)
    {
      replica_clear (&sim.peer_replica[p]);
      wsp_clock_clear (&sim.last_sent[p]);
    }
  g_ptr_array_unref (sim.recs);
  g_rand_free (g);
}

static void
test_convergence (void)
{
  const char *one = g_getenv ("WSP_MERGE_SEED");
  const char *count = g_getenv ("WSP_MERGE_SEEDS");
  guint n = g_test_slow () ? 20000 : 2000;
  g_autoptr (GTimer) timer = g_timer_new ();

  if (one != NULL)
    {
      run_seed ((guint) strtoul (one, NULL, 10));
      return;
    }
  if (count != NULL)
    n = (guint) strtoul (count, NULL, 10);
  for (guint seed = 0; seed < n; seed++)
    run_seed (seed);
  g_test_message ("%u seeds in %.2f s: %u tasks, %u tombstones, %u conflicts, %u labels, %u deps",
                  n, g_timer_elapsed (timer, NULL), stat_tasks, stat_deleted, stat_conflicts, stat_labels, stat_deps);
  g_assert_cmpuint (stat_conflicts, >, 0);
  g_assert_cmpuint (stat_deleted, >, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/merge-property/convergence", test_convergence);
  return g_test_run ();
}
