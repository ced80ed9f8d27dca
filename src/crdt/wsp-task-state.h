/* wsp-task-state.h — the merge state of one task and the rules of SPEC 3.
 *
 * A WspTaskState holds everything needed to merge any further op into one
 * task: per-field last-writer-wins registers stamped (hlc, peer, seq), the
 * kept concurrent writes of title and body (conflicts), the observed-remove
 * sets of labels and dependencies with their add tags and removed tags, the
 * earliest create, the delete flag and the latest op time. Comments are not
 * kept here (they are grow-only rows the store appends); a comment op still
 * passes through apply so that updated_at moves.
 *
 * The caller (the store) guarantees causal order and idempotence: apply sees
 * each op once, after its author's previous op and its deps. Under that
 * guarantee any two states that applied the same set of ops render the same
 * view, whatever the order. Pure: no I/O, no globals, one owner at a time.
 */
#pragma once
#include <glib.h>
#include "crdt/wsp-op.h"
#include "crdt/wsp-clock.h"

G_BEGIN_DECLS

typedef struct _WspTaskState WspTaskState;

/* Op identity and order: (hlc, peer, seq). */
typedef struct {
  guint64 hlc;
  WspPeer peer;
  guint64 seq;
} WspStamp;

int wsp_stamp_compare (const WspStamp *a, const WspStamp *b);

/* What applying one op did. */
/* NOOP means the state did not change at all (no need to re-encode it);
 * updated_hlc moves only with CHANGED and COMMENT. */
typedef enum {
  WSP_APPLY_NOOP = 0,     /* ignored: no-op, unknown type, after delete… */
  WSP_APPLY_CHANGED,      /* the task's view may have changed */
  WSP_APPLY_COMMENT,      /* a comment: the caller appends it */
} WspApplyResult;

WspTaskState *wsp_task_state_new (const char *task_id);
void          wsp_task_state_free (WspTaskState *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (WspTaskState, wsp_task_state_free)

/* Applies one decoded op (an op for another task id is a NOOP).
 * full_deps may be NULL (treated as empty).
 * stamp: the op's (hlc, author, seq). full_deps: the author's full deps at
 * this op (SPEC 7.3: entrywise max of deps of ops 1..seq), used to decide
 * which kept title/body writes this op causally follows. */
WspApplyResult wsp_task_state_apply (WspTaskState *self, const WspStamp *stamp,
                                     const WspClock *full_deps, const WspOp *op);

/* Compact MessagePack encoding of the whole state, and back. */
GBytes       *wsp_task_state_encode (const WspTaskState *self);
WspTaskState *wsp_task_state_decode (const char *task_id, const guint8 *data, gsize len, GError **error);

/* ---- the view: what users see ----------------------------------------- */

typedef struct {
  WspField field;          /* TITLE or BODY */
  char    *value;          /* "" for empty */
  WspStamp stamp;          /* author = stamp.peer, at = WSP_HLC_MS(stamp.hlc) */
} WspConflict;

typedef struct {
  const char *id;
  gboolean    exists;       /* at least one create applied */
  gboolean    deleted;      /* tombstone */
  const char *title;        /* never NULL ("" when empty) */
  const char *body;         /* never NULL */
  const char *status;       /* never NULL */
  gint64      priority;     /* 0..4 */
  const char *assignee;     /* NULL when empty */
  const char *parent;       /* NULL when empty */
  const char *due;          /* NULL when empty, else YYYY-MM-DD */
  double      position;
  GPtrArray  *labels;       /* char*, sorted by byte order, owned by the view */
  GPtrArray  *depends_on;   /* char*, sorted by byte order */
  guint64     created_hlc;  /* of the smallest create */
  WspPeer     created_by;
  guint64     updated_hlc;  /* latest op applied to the task */
  GArray     *conflicts;    /* WspConflict, sorted hlc, peer, seq, title<body */
} WspTaskView;

/* Fills view from state. Every string — including the label and
 * dependency strings inside the arrays and each conflict's value — borrows
 * from self (valid until the next apply, decode or free); the three arrays
 * themselves are the view's (wsp_task_view_clear frees them, not the
 * strings).
 *
 * A tombstone (deleted) renders blank: default fields, no labels, deps or
 * conflicts, created_hlc/created_by 0, exists TRUE, and updated_hlc the
 * latest delete or comment. Its fields would otherwise depend on which ops
 * concurrent with the delete arrived first, and replicas must agree. */
void wsp_task_state_view (const WspTaskState *self, WspTaskView *view);
void wsp_task_view_clear (WspTaskView *view);

/* Current label add tags alive for `label` (for a local label.remove to list
 * what it observed). Returns a new array of WspDot (may be empty). Same for
 * dependencies. */
GArray *wsp_task_state_label_tags (const WspTaskState *self, const char *label);
GArray *wsp_task_state_dep_tags (const WspTaskState *self, const char *dep);

G_END_DECLS
