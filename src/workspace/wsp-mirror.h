/* wsp-mirror.h — keeps .workspace/tasks/ and the store in step, both ways
 * (SPEC 4).
 *
 * Store → files: every change the store commits (API, peers, files) is
 * rendered to tasks/<id>.md (atomic write); a deleted task's file is
 * removed. The hash of every file written is remembered, so the watcher
 * event of the daemon's own write never comes back as an operation.
 *
 * Files → store: the watcher's batches are parsed and diffed against the
 * task as stored; the difference becomes one local write (one op per
 * changed field, label and dependency). A new file without an id becomes a
 * new task and is renamed to <id>.md; a removed file deletes its task —
 * unless a batch removes more than 20% (and at least 10) of the task files,
 * which is reported as a problem instead (a branch switch, most likely). A
 * file that does not parse is left untouched and listed as a problem.
 *
 * At start the tree is reconciled with the store: files changed while the
 * daemon was down become ops (an index in .wsp/files.idx of size, mtime and
 * content hash is the fast path), tasks without a file get one.
 *
 * Threads: one worker thread ("wsp-mirror") does all file I/O, parsing and
 * rendering with its own read-only store connection; the watcher runs on the
 * main context and only hands paths over. Work queues are sets (of task ids
 * and of paths), so they are bounded by the number of tasks and files.
 */
#pragma once
#include <glib.h>
#include "store/wsp-store.h"

G_BEGIN_DECLS

typedef struct _WspMirror WspMirror;

typedef struct {
  const char        *tasks_dir;    /* .workspace/tasks */
  const char        *index_path;   /* .workspace/.wsp/files.idx */
  const char        *db_path;      /* for the worker's read-only connection */
  WspStore          *store;        /* borrowed; outlives the mirror */
  const char        *task_prefix;  /* for ids of new files */
  const char *const *statuses;     /* the project's columns */
  guint              debounce_ms;
} WspMirrorOptions;

/* Starts the watcher (on the thread-default main context) and the worker,
 * which reconciles the tree first. Registers a store listener. */
WspMirror *wsp_mirror_start (const WspMirrorOptions *opts, GError **error);
/* Stops the watcher and the worker (finishing the job at hand) and saves
 * the index. Idempotent. Call on the thread that started it. */
void       wsp_mirror_stop (WspMirror *self);
void       wsp_mirror_free (WspMirror *self);   /* stops first; NULL ok */
G_DEFINE_AUTOPTR_CLEANUP_FUNC (WspMirror, wsp_mirror_free)

/* Appends {"problems":[{"file","line","reason"}…]} (any thread). */
void       wsp_mirror_problems_json (WspMirror *self, GString *out);

/* What to do about a blocked mass removal (see the top of this file). */
typedef enum {
  WSP_MASS_REMOVAL_RESTORE,   /* write the files again; the tasks stay */
  WSP_MASS_REMOVAL_DELETE,    /* delete the tasks whose files went */
} WspMassRemovalAction;

/* Resolves the waiting mass removal (any thread; the work happens on the
 * worker). NOT_FOUND when none waits. *n_tasks: how many tasks it covers. */
gboolean   wsp_mirror_resolve_mass_removal (WspMirror *self, WspMassRemovalAction action, guint *n_tasks,
                                            GError **error);

/* Blocks until every change seen so far (watcher batches and store commits
 * queued before the call) has been processed. For tests and tools. */
void       wsp_mirror_flush (WspMirror *self);

G_END_DECLS
