/* wsp-task-state.c — the merge state of one task (SPEC 3 merge rules).
 *
 * Owns, per task: eight last-writer-wins registers stamped (hlc, peer, seq);
 * the kept concurrent writes of title and body; the observed-remove sets of
 * labels and dependencies; the smallest create; the delete flag; two op-time
 * maxima. Comments are not stored (the store appends them).
 *
 * Invariants (given the store's causal, exactly-once delivery):
 * - The state is a function of the SET of ops applied, not of their order,
 *   except for a tombstone, whose frozen fields depend on which ops
 *   concurrent with the delete arrived before it. So a tombstone's view is
 *   blank (defaults, no labels/deps/conflicts, no creator) and its
 *   updated_hlc is the max hlc of its deletes and comments — both sets every
 *   replica applies regardless of order. The fields are dropped at delete
 *   time, which also keeps tombstones small.
 * - WSP_APPLY_NOOP means the state did not change, so callers may skip
 *   re-encoding. updated_hlc moves only on CHANGED or COMMENT.
 * - Registers hold normalised values only. A status register that was never
 *   written holds nil and reads as "todo" (saves an allocation per task).
 * - kept[] is sorted by (field, hlc, peer, seq) with no duplicate op; OR-set
 *   elements are sorted by strcmp of their key; their add and removed tags
 *   are sorted by (peer, seq). Tags in `adds` are alive (a remove drops the
 *   tags it names at once); `rm` keeps only removed tags not yet seen as
 *   adds, so a remove naming a future add still wins whatever the order.
 *   An element with neither is deleted. Sorted, canonical contents make the
 *   encoding canonical: replicas with the same ops have equal blobs.
 * - Decoding never trusts the blob: every invariant above is checked and a
 *   violation is WSP_ERROR_CORRUPT, never a crash.
 *
 * Blob format (MessagePack, version 1):
 *   [1, flags (1 exists | 2 deleted), created_hlc, created_peer, created_seq,
 *    updated_hlc, tomb_hlc,
 *    regs:   8 entries for fields 1..8, each [hlc, peer, seq, value] or a
 *            bare value meaning "same stamp as the previous entry" (the
 *            first entry compares with the created stamp),
 *    kept:   [[field, hlc, peer, seq, value | true (= the register's)], …],
 *    labels: [[key, [peer, seq, peer, seq, …] adds, […] removed], …],
 *    deps:   same as labels]
 * Peers are the numeric WspPeer, not hex: the blob never leaves the store.
 */
#include "crdt/wsp-task-state.h"

#include <string.h>
#include <msgpack.h>

#define STATE_VERSION 1
#define FLAG_EXISTS   1
#define FLAG_DELETED  2

typedef struct {
  WspStamp stamp;     /* zero until the first write */
  WspValue value;     /* normalised */
} Reg;

typedef struct {
  WspStamp stamp;
  WspField field;     /* TITLE or BODY */
  char    *value;     /* NULL = empty */
} Kept;

typedef struct {
  char   *key;        /* non-empty, NUL-free */
  WspDot *adds;       /* alive add tags */
  guint   n_adds;
  WspDot *rm;         /* removed tags not (yet) seen as adds */
  guint   n_rm;
} OrElem;

typedef struct {
  OrElem *elems;      /* sorted by strcmp (key) */
  guint   len;
  guint   alloc;
} OrSet;

struct _WspTaskState {
  char     *id;
  gboolean  exists;        /* a create or a delete was applied */
  gboolean  deleted;
  WspStamp  created;       /* smallest create; zero if none */
  guint64   updated_hlc;   /* max hlc of ops applied (CHANGED/COMMENT) */
  guint64   tomb_hlc;      /* max hlc of deletes and comments */
  Reg       regs[WSP_FIELD_COUNT];   /* [0] unused */
  Kept     *kept;
  guint     n_kept;
  OrSet     labels;
  OrSet     deps;
};

/* ---- stamps and dots ----------------------------------------------------- */

int
wsp_stamp_compare (const WspStamp *a, const WspStamp *b)
{
  if (a->hlc != b->hlc)
    return a->hlc < b->hlc ? -1 : 1;
  if (a->peer != b->peer)
    return a->peer < b->peer ? -1 : 1;
  if (a->seq != b->seq)
    return a->seq < b->seq ? -1 : 1;
  return 0;
}

static gboolean
stamp_same_op (const WspStamp *a, const WspStamp *b)
{
  return a->peer == b->peer && a->seq == b->seq;
}

static int
dot_cmp (const WspDot *a, const WspDot *b)
{
  if (a->peer != b->peer)
    return a->peer < b->peer ? -1 : 1;
  if (a->seq != b->seq)
    return a->seq < b->seq ? -1 : 1;
  return 0;
}

/* Binary search in a sorted dot array: index of d or its insertion point. */
static guint
dots_find (const WspDot *dots, guint n, const WspDot *d, gboolean *found)
{
  guint lo = 0, hi = n;

  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;
      if (dot_cmp (&dots[mid], d) < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
  *found = lo < n && dot_cmp (&dots[lo], d) == 0;
  return lo;
}

static void
dots_insert (WspDot **dots, guint *n, const WspDot *d)
{
  gboolean found;
  guint i = dots_find (*dots, *n, d, &found);

  if (found)
    return;
  /* Sets are tiny; growing by one keeps memory tight for many tasks. */
  *dots = g_renew (WspDot, *dots, *n + 1);
  memmove (&(*dots)[i + 1], &(*dots)[i], sizeof (WspDot) * (*n - i));
  (*dots)[i] = *d;
  (*n)++;
}

static gboolean
dots_remove (WspDot **dots, guint *n, const WspDot *d)
{
  gboolean found;
  guint i = dots_find (*dots, *n, d, &found);

  if (!found)
    return FALSE;
  memmove (&(*dots)[i], &(*dots)[i + 1], sizeof (WspDot) * (*n - i - 1));
  (*n)--;
  if (*n == 0)
    g_clear_pointer (dots, g_free);
  return TRUE;
}

/* ---- observed-remove sets ------------------------------------------------ */

static void
or_elem_clear (OrElem *e)
{
  g_free (e->key);
  g_free (e->adds);
  g_free (e->rm);
}

static void
or_set_clear (OrSet *s)
{
  for (guint i = 0; i < s->len; i++)
    or_elem_clear (&s->elems[i]);
  g_clear_pointer (&s->elems, g_free);
  s->len = s->alloc = 0;
}

static guint
or_set_find (const OrSet *s, const char *key, gboolean *found)
{
  guint lo = 0, hi = s->len;

  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;
      if (strcmp (s->elems[mid].key, key) < 0)
        lo = mid + 1;
      else
        hi = mid;
    }
  *found = lo < s->len && strcmp (s->elems[lo].key, key) == 0;
  return lo;
}

static OrElem *
or_set_lookup (OrSet *s, const char *key)
{
  gboolean found;
  guint i = or_set_find (s, key, &found);

  if (found)
    return &s->elems[i];
  if (s->len == s->alloc)
    {
      s->alloc = s->alloc == 0 ? 2 : s->alloc * 2;
      s->elems = g_renew (OrElem, s->elems, s->alloc);
    }
  memmove (&s->elems[i + 1], &s->elems[i], sizeof (OrElem) * (s->len - i));
  s->elems[i] = (OrElem) { .key = g_strdup (key) };
  s->len++;
  return &s->elems[i];
}

static void
or_set_drop_if_empty (OrSet *s, OrElem *e)
{
  guint i = (guint) (e - s->elems);

  if (e->n_adds > 0 || e->n_rm > 0)
    return;
  or_elem_clear (e);
  memmove (&s->elems[i], &s->elems[i + 1], sizeof (OrElem) * (s->len - i - 1));
  s->len--;
}

static void
or_set_add (OrSet *s, const char *key, const WspStamp *stamp)
{
  OrElem *e = or_set_lookup (s, key);
  WspDot tag = { stamp->peer, stamp->seq };

  /* A remove that named this add arrived first: the add is born dead. */
  if (!dots_remove (&e->rm, &e->n_rm, &tag))
    dots_insert (&e->adds, &e->n_adds, &tag);
  or_set_drop_if_empty (s, e);
}

static void
or_set_remove (OrSet *s, const char *key, const WspDot *observed, guint n)
{
  OrElem *e = or_set_lookup (s, key);

  for (guint i = 0; i < n; i++)
    if (!dots_remove (&e->adds, &e->n_adds, &observed[i]))
      dots_insert (&e->rm, &e->n_rm, &observed[i]);
  or_set_drop_if_empty (s, e);
}

static GArray *
or_set_tags (const OrSet *s, const char *key)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (WspDot));
  gboolean found;
  guint i;

  if (key == NULL)
    return out;
  i = or_set_find (s, key, &found);
  if (found)
    g_array_append_vals (out, s->elems[i].adds, s->elems[i].n_adds);
  return out;
}

static GPtrArray *
or_set_view (const OrSet *s)
{
  GPtrArray *out = g_ptr_array_sized_new (s->len);

  /* Elements are kept in strcmp order, which is the byte order of SPEC 5. */
  for (guint i = 0; i < s->len; i++)
    if (s->elems[i].n_adds > 0)
      g_ptr_array_add (out, s->elems[i].key);
  return out;
}

/* ---- lifecycle ------------------------------------------------------------ */

static void
regs_reset (WspTaskState *self)
{
  for (int f = 1; f < WSP_FIELD_COUNT; f++)
    {
      wsp_value_clear (&self->regs[f].value);
      self->regs[f].stamp = (WspStamp) { 0, 0, 0 };
    }
  /* Status stays nil (reads "todo") to avoid an allocation per task. */
  self->regs[WSP_FIELD_PRIORITY].value = wsp_value_int (2);
  self->regs[WSP_FIELD_POSITION].value = wsp_value_float (0);
}

static void
kept_clear (WspTaskState *self)
{
  for (guint i = 0; i < self->n_kept; i++)
    g_free (self->kept[i].value);
  g_clear_pointer (&self->kept, g_free);
  self->n_kept = 0;
}

WspTaskState *
wsp_task_state_new (const char *task_id)
{
  WspTaskState *self = g_new0 (WspTaskState, 1);

  self->id = g_strdup (task_id != NULL ? task_id : "");
  regs_reset (self);
  return self;
}

void
wsp_task_state_free (WspTaskState *self)
{
  if (self == NULL)
    return;
  for (int f = 1; f < WSP_FIELD_COUNT; f++)
    wsp_value_clear (&self->regs[f].value);
  kept_clear (self);
  or_set_clear (&self->labels);
  or_set_clear (&self->deps);
  g_free (self->id);
  g_free (self);
}

/* ---- apply ----------------------------------------------------------------- */

static void
reg_write (Reg *r, const WspStamp *stamp, const WspValue *v)
{
  if (wsp_stamp_compare (stamp, &r->stamp) <= 0)
    return;
  r->stamp = *stamp;
  wsp_value_copy (&r->value, v);
}

static int
kept_cmp (const Kept *a, const Kept *b)
{
  if (a->field != b->field)
    return a->field < b->field ? -1 : 1;
  return wsp_stamp_compare (&a->stamp, &b->stamp);
}

/* A new title/body write: drop the kept writes it causally follows (SPEC 3:
 * an earlier op of its author, or seq <= its full deps entry for that
 * author), then keep it. With causal delivery every write a new one follows
 * has already arrived, so the kept set does not depend on arrival order. */
static void
kept_write (WspTaskState *self, WspField field, const WspStamp *stamp,
            const WspClock *full_deps, const WspValue *v)
{
  guint o = 0;
  Kept k = { *stamp, field, NULL };
  guint pos;

  for (guint i = 0; i < self->n_kept; i++)
    {
      Kept *x = &self->kept[i];
      if (x->field == field && stamp_same_op (&x->stamp, stamp))
        return;   /* the same op again: nothing to do */
    }
  for (guint i = 0; i < self->n_kept; i++)
    {
      Kept *x = &self->kept[i];
      gboolean follows = x->field == field
        && ((x->stamp.peer == stamp->peer && x->stamp.seq < stamp->seq)
            || (full_deps != NULL && x->stamp.seq <= wsp_clock_get (full_deps, x->stamp.peer)));
      if (follows)
        g_free (x->value);
      else
        self->kept[o++] = *x;
    }
  self->n_kept = o;
  if (v->kind == WSP_VALUE_STR)
    k.value = g_strdup (v->str);
  for (pos = 0; pos < self->n_kept && kept_cmp (&self->kept[pos], &k) < 0; pos++)
    ;
  self->kept = g_renew (Kept, self->kept, self->n_kept + 1);
  memmove (&self->kept[pos + 1], &self->kept[pos], sizeof (Kept) * (self->n_kept - pos));
  self->kept[pos] = k;
  self->n_kept++;
}

static void
field_write (WspTaskState *self, WspField field, const WspStamp *stamp,
             const WspClock *full_deps, const WspValue *v)
{
  reg_write (&self->regs[field], stamp, v);
  if (field == WSP_FIELD_TITLE || field == WSP_FIELD_BODY)
    kept_write (self, field, stamp, full_deps, v);
}

static void
bump (guint64 *slot, guint64 hlc)
{
  if (hlc > *slot)
    *slot = hlc;
}

WspApplyResult
wsp_task_state_apply (WspTaskState *self, const WspStamp *stamp,
                      const WspClock *full_deps, const WspOp *op)
{
  if (op == NULL || stamp == NULL || !op->data_ok || op->task == NULL
      || strcmp (op->task, self->id) != 0)
    return WSP_APPLY_NOOP;

  switch (op->type)
    {
    case WSP_OP_COMMENT_ADD:
      /* Comments apply whatever the delete state (SPEC 3). */
      bump (&self->updated_hlc, stamp->hlc);
      bump (&self->tomb_hlc, stamp->hlc);
      return WSP_APPLY_COMMENT;

    case WSP_OP_DELETE:
      if (self->deleted)
        {
          /* A concurrent delete still counts for the tombstone's time, or
           * its updated_at would depend on which delete came first. */
          if (stamp->hlc <= self->tomb_hlc)
            return WSP_APPLY_NOOP;
          bump (&self->tomb_hlc, stamp->hlc);
          bump (&self->updated_hlc, stamp->hlc);
          return WSP_APPLY_CHANGED;
        }
      self->deleted = TRUE;
      /* A tombstone names a task someone created, even if that create has
       * not reached this replica (or never will): mark it existing so that
       * every replica agrees whatever the order. */
      self->exists = TRUE;
      bump (&self->tomb_hlc, stamp->hlc);
      /* From here on both maxima move together; dropping the order-dependent
       * updated_hlc keeps the tombstone's blob canonical too. */
      self->updated_hlc = self->tomb_hlc;
      /* The view of a tombstone is blank (see top); free what it hid. */
      regs_reset (self);
      kept_clear (self);
      or_set_clear (&self->labels);
      or_set_clear (&self->deps);
      self->created = (WspStamp) { 0, 0, 0 };
      return WSP_APPLY_CHANGED;

    case WSP_OP_CREATE:
    case WSP_OP_SET:
    case WSP_OP_LABEL_ADD:
    case WSP_OP_LABEL_REMOVE:
    case WSP_OP_DEP_ADD:
    case WSP_OP_DEP_REMOVE:
      break;

    case WSP_OP_UNKNOWN:
    default:
      return WSP_APPLY_NOOP;
    }

  /* Final: later or concurrent sets, label and dependency changes, and
   * creates, are ignored once deleted. */
  if (self->deleted)
    return WSP_APPLY_NOOP;

  switch (op->type)
    {
    case WSP_OP_CREATE:
      if (!self->exists || wsp_stamp_compare (stamp, &self->created) < 0)
        self->created = *stamp;
      self->exists = TRUE;
      for (int f = 1; f < WSP_FIELD_COUNT; f++)
        field_write (self, (WspField) f, stamp, full_deps, &op->fields[f]);
      break;
    case WSP_OP_SET:
      if (op->field <= WSP_FIELD_NONE || op->field >= WSP_FIELD_COUNT)
        return WSP_APPLY_NOOP;
      field_write (self, op->field, stamp, full_deps, &op->value);
      break;
    case WSP_OP_LABEL_ADD:
    case WSP_OP_DEP_ADD:
      if (op->text == NULL || op->text[0] == '\0')
        return WSP_APPLY_NOOP;
      or_set_add (op->type == WSP_OP_LABEL_ADD ? &self->labels : &self->deps, op->text, stamp);
      break;
    case WSP_OP_LABEL_REMOVE:
    case WSP_OP_DEP_REMOVE:
      if (op->text == NULL || op->text[0] == '\0')
        return WSP_APPLY_NOOP;
      or_set_remove (op->type == WSP_OP_LABEL_REMOVE ? &self->labels : &self->deps,
                     op->text, op->observed, op->n_observed);
      break;
    default:
      g_assert_not_reached ();
    }
  bump (&self->updated_hlc, stamp->hlc);
  return WSP_APPLY_CHANGED;
}

/* ---- view ------------------------------------------------------------------ */

static int
conflict_cmp (gconstpointer a, gconstpointer b)
{
  const WspConflict *x = a, *y = b;
  int c = wsp_stamp_compare (&x->stamp, &y->stamp);

  if (c != 0)
    return c;
  return x->field < y->field ? -1 : x->field > y->field;
}

static const char *
str_or (const WspValue *v, const char *fallback)
{
  return v->kind == WSP_VALUE_STR ? v->str : fallback;
}

void
wsp_task_state_view (const WspTaskState *self, WspTaskView *view)
{
  const Reg *r = self->regs;

  memset (view, 0, sizeof *view);
  view->id = self->id;
  view->exists = self->exists;   /* a tombstone always exists (apply) */
  view->deleted = self->deleted;
  view->title = str_or (&r[WSP_FIELD_TITLE].value, "");
  view->body = str_or (&r[WSP_FIELD_BODY].value, "");
  view->status = str_or (&r[WSP_FIELD_STATUS].value, "todo");
  view->priority = r[WSP_FIELD_PRIORITY].value.kind == WSP_VALUE_INT ? r[WSP_FIELD_PRIORITY].value.i : 2;
  view->assignee = str_or (&r[WSP_FIELD_ASSIGNEE].value, NULL);
  view->parent = str_or (&r[WSP_FIELD_PARENT].value, NULL);
  view->due = str_or (&r[WSP_FIELD_DUE].value, NULL);
  view->position = r[WSP_FIELD_POSITION].value.kind == WSP_VALUE_FLOAT ? r[WSP_FIELD_POSITION].value.f : 0;
  view->labels = or_set_view (&self->labels);
  view->depends_on = or_set_view (&self->deps);
  view->created_hlc = self->created.hlc;
  view->created_by = self->created.peer;
  view->updated_hlc = self->deleted ? self->tomb_hlc : self->updated_hlc;
  view->conflicts = g_array_new (FALSE, FALSE, sizeof (WspConflict));
  for (guint i = 0; i < self->n_kept; i++)
    {
      const Kept *k = &self->kept[i];
      WspConflict c;
      if (stamp_same_op (&k->stamp, &r[k->field].stamp))
        continue;
      /* Borrowed from the state like every other view string. */
      c.field = k->field;
      c.value = k->value != NULL ? k->value : (char *) "";
      c.stamp = k->stamp;
      g_array_append_val (view->conflicts, c);
    }
  g_array_sort (view->conflicts, conflict_cmp);
}

void
wsp_task_view_clear (WspTaskView *view)
{
  if (view == NULL)
    return;
  g_clear_pointer (&view->labels, g_ptr_array_unref);
  g_clear_pointer (&view->depends_on, g_ptr_array_unref);
  g_clear_pointer (&view->conflicts, g_array_unref);
}

GArray *
wsp_task_state_label_tags (const WspTaskState *self, const char *label)
{
  return or_set_tags (&self->labels, label);
}

GArray *
wsp_task_state_dep_tags (const WspTaskState *self, const char *dep)
{
  return or_set_tags (&self->deps, dep);
}

/* ---- encoding --------------------------------------------------------------- */

static void
pack_state_value (msgpack_packer *pk, const WspValue *v)
{
  switch (v->kind)
    {
    case WSP_VALUE_STR:
      msgpack_pack_str_with_body (pk, v->str, strlen (v->str));
      break;
    case WSP_VALUE_INT:
      msgpack_pack_int64 (pk, v->i);
      break;
    case WSP_VALUE_FLOAT:
      /* Always float64 here: exact and cheap; the blob stays local. */
      msgpack_pack_double (pk, v->f);
      break;
    case WSP_VALUE_NIL:
    default:
      msgpack_pack_nil (pk);
      break;
    }
}

static void
pack_dots (msgpack_packer *pk, const WspDot *dots, guint n)
{
  msgpack_pack_array (pk, n * 2);
  for (guint i = 0; i < n; i++)
    {
      msgpack_pack_uint64 (pk, dots[i].peer);
      msgpack_pack_uint64 (pk, dots[i].seq);
    }
}

static void
pack_or_set (msgpack_packer *pk, const OrSet *s)
{
  msgpack_pack_array (pk, s->len);
  for (guint i = 0; i < s->len; i++)
    {
      const OrElem *e = &s->elems[i];
      msgpack_pack_array (pk, 3);
      msgpack_pack_str_with_body (pk, e->key, strlen (e->key));
      pack_dots (pk, e->adds, e->n_adds);
      pack_dots (pk, e->rm, e->n_rm);
    }
}

static void
pack_stamp (msgpack_packer *pk, const WspStamp *s)
{
  msgpack_pack_uint64 (pk, s->hlc);
  msgpack_pack_uint64 (pk, s->peer);
  msgpack_pack_uint64 (pk, s->seq);
}

GBytes *
wsp_task_state_encode (const WspTaskState *self)
{
  msgpack_sbuffer sbuf;
  msgpack_packer pk;
  const WspStamp *prev = &self->created;

  msgpack_sbuffer_init (&sbuf);
  msgpack_packer_init (&pk, &sbuf, msgpack_sbuffer_write);
  msgpack_pack_array (&pk, 11);
  msgpack_pack_uint8 (&pk, STATE_VERSION);
  msgpack_pack_uint8 (&pk, (self->exists ? FLAG_EXISTS : 0) | (self->deleted ? FLAG_DELETED : 0));
  pack_stamp (&pk, &self->created);
  msgpack_pack_uint64 (&pk, self->updated_hlc);
  msgpack_pack_uint64 (&pk, self->tomb_hlc);

  msgpack_pack_array (&pk, WSP_FIELD_COUNT - 1);
  for (int f = 1; f < WSP_FIELD_COUNT; f++)
    {
      const Reg *r = &self->regs[f];
      /* After a create every register carries the same stamp: write it once. */
      if (wsp_stamp_compare (&r->stamp, prev) == 0)
        pack_state_value (&pk, &r->value);
      else
        {
          msgpack_pack_array (&pk, 4);
          pack_stamp (&pk, &r->stamp);
          pack_state_value (&pk, &r->value);
        }
      prev = &r->stamp;
    }

  msgpack_pack_array (&pk, self->n_kept);
  for (guint i = 0; i < self->n_kept; i++)
    {
      const Kept *k = &self->kept[i];
      msgpack_pack_array (&pk, 5);
      msgpack_pack_uint8 (&pk, (guint8) k->field);
      pack_stamp (&pk, &k->stamp);
      /* The winning write's text is already in its register; a body can be
       * 60 KiB, so do not store it twice. */
      if (stamp_same_op (&k->stamp, &self->regs[k->field].stamp))
        msgpack_pack_true (&pk);
      else if (k->value != NULL)
        msgpack_pack_str_with_body (&pk, k->value, strlen (k->value));
      else
        msgpack_pack_nil (&pk);
    }

  pack_or_set (&pk, &self->labels);
  pack_or_set (&pk, &self->deps);
  return wsp_msgpack_sbuffer_take (&sbuf);
}

/* ---- decoding --------------------------------------------------------------- */

static gboolean
obj_u64 (const msgpack_object *o, guint64 *out)
{
  if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
    return FALSE;
  *out = o->via.u64;
  return TRUE;
}

static gboolean
obj_stamp (const msgpack_object *a, WspStamp *out)
{
  return obj_u64 (&a[0], &out->hlc) && obj_u64 (&a[1], &out->peer) && obj_u64 (&a[2], &out->seq);
}

static char *
obj_str (const msgpack_object *o)
{
  if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0
      || memchr (o->via.str.ptr, 0, o->via.str.size) != NULL)
    return NULL;
  return g_strndup (o->via.str.ptr, o->via.str.size);
}

static gboolean
decode_reg_value (WspField field, const msgpack_object *o, WspValue *out)
{
  WspValue raw = { .kind = WSP_VALUE_NIL };
  gboolean ok;

  switch (o->type)
    {
    case MSGPACK_OBJECT_NIL:
      break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
      if (o->via.u64 > G_MAXINT64)
        return FALSE;
      raw = wsp_value_int ((gint64) o->via.u64);
      break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
      raw = wsp_value_int (o->via.i64);
      break;
    case MSGPACK_OBJECT_FLOAT64:
      /* Positions are written as float64 only; an int here is not ours. */
      if (field != WSP_FIELD_POSITION)
        return FALSE;
      raw = wsp_value_float (o->via.f64);
      break;
    case MSGPACK_OBJECT_STR:
      {
        char *s = obj_str (o);
        if (s == NULL)
          return FALSE;
        raw.kind = WSP_VALUE_STR;
        raw.str = s;
      }
      break;
    default:
      return FALSE;
    }
  if (field == WSP_FIELD_POSITION && raw.kind != WSP_VALUE_FLOAT)
    return FALSE;
  /* A never-written status register is nil (reads "todo"). */
  if (field == WSP_FIELD_STATUS && raw.kind == WSP_VALUE_NIL)
    {
      *out = raw;
      return TRUE;
    }
  ok = wsp_field_normalize (field, &raw, out);
  wsp_value_clear (&raw);
  return ok;
}

static gboolean
decode_dots (const msgpack_object *o, WspDot **out, guint *n_out)
{
  guint n;

  if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size % 2 != 0)
    return FALSE;
  n = o->via.array.size / 2;
  if (n == 0)
    return TRUE;
  *out = g_new (WspDot, n);
  *n_out = n;
  for (guint i = 0; i < n; i++)
    {
      WspDot *d = &(*out)[i];
      if (!obj_u64 (&o->via.array.ptr[2 * i], &d->peer)
          || !obj_u64 (&o->via.array.ptr[2 * i + 1], &d->seq) || d->seq == 0
          || (i > 0 && dot_cmp (&(*out)[i - 1], d) >= 0))
        return FALSE;
    }
  return TRUE;
}

static gboolean
decode_or_set (const msgpack_object *o, OrSet *s)
{
  if (o->type != MSGPACK_OBJECT_ARRAY)
    return FALSE;
  if (o->via.array.size == 0)
    return TRUE;
  s->elems = g_new0 (OrElem, o->via.array.size);
  s->alloc = o->via.array.size;
  for (guint32 i = 0; i < o->via.array.size; i++)
    {
      const msgpack_object *e = &o->via.array.ptr[i];
      OrElem *el = &s->elems[i];
      if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 3)
        return FALSE;
      el->key = obj_str (&e->via.array.ptr[0]);
      if (el->key == NULL)
        return FALSE;
      s->len++;   /* from here on or_set_clear frees it */
      if (i > 0 && strcmp (s->elems[i - 1].key, el->key) >= 0)
        return FALSE;
      if (!decode_dots (&e->via.array.ptr[1], &el->adds, &el->n_adds)
          || !decode_dots (&e->via.array.ptr[2], &el->rm, &el->n_rm)
          || (el->n_adds == 0 && el->n_rm == 0))
        return FALSE;
    }
  return TRUE;
}

static gboolean
decode_state (WspTaskState *self, const msgpack_object *root)
{
  const msgpack_object *a;
  guint64 version, flags;
  const msgpack_object *regs, *kept;
  const WspStamp *prev;

  if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size != 11)
    return FALSE;
  a = root->via.array.ptr;
  if (!obj_u64 (&a[0], &version) || version != STATE_VERSION
      || !obj_u64 (&a[1], &flags) || flags > (FLAG_EXISTS | FLAG_DELETED)
      || !obj_stamp (&a[2], &self->created)
      || !obj_u64 (&a[5], &self->updated_hlc)
      || !obj_u64 (&a[6], &self->tomb_hlc))
    return FALSE;
  self->exists = (flags & FLAG_EXISTS) != 0;
  self->deleted = (flags & FLAG_DELETED) != 0;

  regs = &a[7];
  if (regs->type != MSGPACK_OBJECT_ARRAY || regs->via.array.size != WSP_FIELD_COUNT - 1)
    return FALSE;
  prev = &self->created;
  for (int f = 1; f < WSP_FIELD_COUNT; f++)
    {
      const msgpack_object *e = &regs->via.array.ptr[f - 1];
      Reg *r = &self->regs[f];
      const msgpack_object *v = e;
      wsp_value_clear (&r->value);
      if (e->type == MSGPACK_OBJECT_ARRAY)
        {
          if (e->via.array.size != 4 || !obj_stamp (e->via.array.ptr, &r->stamp)
              || wsp_stamp_compare (&r->stamp, prev) == 0)
            return FALSE;
          v = &e->via.array.ptr[3];
        }
      else
        r->stamp = *prev;
      if (!decode_reg_value ((WspField) f, v, &r->value))
        return FALSE;
      prev = &r->stamp;
    }

  kept = &a[8];
  if (kept->type != MSGPACK_OBJECT_ARRAY)
    return FALSE;
  if (kept->via.array.size > 0)
    self->kept = g_new0 (Kept, kept->via.array.size);
  for (guint32 i = 0; i < kept->via.array.size; i++)
    {
      const msgpack_object *e = &kept->via.array.ptr[i];
      Kept *k = &self->kept[i];
      guint64 field;
      const msgpack_object *v;
      if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 5
          || !obj_u64 (&e->via.array.ptr[0], &field)
          || (field != WSP_FIELD_TITLE && field != WSP_FIELD_BODY)
          || !obj_stamp (&e->via.array.ptr[1], &k->stamp) || k->stamp.seq == 0)
        return FALSE;
      k->field = (WspField) field;
      self->n_kept++;   /* from here on kept_clear frees it */
      v = &e->via.array.ptr[4];
      if (v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean)
        {
          const Reg *r = &self->regs[field];
          if (!stamp_same_op (&k->stamp, &r->stamp))
            return FALSE;
          k->value = r->value.kind == WSP_VALUE_STR ? g_strdup (r->value.str) : NULL;
        }
      else if (v->type == MSGPACK_OBJECT_STR)
        {
          k->value = obj_str (v);
          if (k->value == NULL || stamp_same_op (&k->stamp, &self->regs[field].stamp))
            return FALSE;
        }
      else if (v->type != MSGPACK_OBJECT_NIL || stamp_same_op (&k->stamp, &self->regs[field].stamp))
        return FALSE;
      if (i > 0 && kept_cmp (&self->kept[i - 1], k) >= 0)
        return FALSE;
    }

  return decode_or_set (&a[9], &self->labels) && decode_or_set (&a[10], &self->deps);
}

WspTaskState *
wsp_task_state_decode (const char *task_id, const guint8 *data, gsize len, GError **error)
{
  g_autoptr (WspTaskState) self = wsp_task_state_new (task_id);
  msgpack_unpacked msg;
  size_t off = 0;
  gboolean ok = FALSE;

  /* Depth 4: state array → kept/sets array → entry → dots/stamp array. */
  if (data != NULL && wsp_msgpack_check (data, len, 4))
    {
      msgpack_unpacked_init (&msg);
      if (msgpack_unpack_next (&msg, (const char *) data, len, &off) == MSGPACK_UNPACK_SUCCESS
          && off == len)
        ok = decode_state (self, &msg.data);
      msgpack_unpacked_destroy (&msg);
    }
  if (!ok)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT,
                   "failed to decode the merge state of task ‘%s’", task_id != NULL ? task_id : "");
      return NULL;
    }
  return g_steal_pointer (&self);
}
