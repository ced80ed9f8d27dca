/* wsp-watcher.h — a recursive inotify watcher on a GMainContext: reports
 * which files under a directory tree changed, debounced and batched.
 *
 * Threads: created, used and freed on one thread; the callback runs on the
 * GMainContext that was the thread-default context at wsp_watcher_new()
 * (the daemon's main loop). Never blocks that loop on waits: the inotify fd
 * is non-blocking and read from a GSource. (Adding watches for a newly
 * created directory lists it with readdir, which is ordinary local I/O.)
 *
 * What is reported: a path (absolute, under root) whose file was written and
 * closed (IN_CLOSE_WRITE), modified (IN_MODIFY), created (IN_CREATE),
 * renamed into place (IN_MOVED_TO: write-to-temp + rename saves) or away
 * (IN_MOVED_FROM), or deleted (IN_DELETE). The caller looks at the path to
 * learn what happened (exists → read it; missing → deleted). Directories
 * are watched as they appear, and a new directory's contents are listed
 * when its watch is added, so files created before the watch existed (a
 * deep tree made at once, `git checkout`, `cp -r`) are reported too.
 *
 * Ignored, at any depth (a name matching any rule, and everything below a
 * directory that matches): dotfiles and dot-directories (`.wsp/`, `.git/`,
 * Emacs `.#name` locks, Vim `.name.swp`), `*.swp`, `*.swx`, `*.swo`
 * (Vim swap), `*~` (backups), `#name#` (Emacs auto-save), `4913` (Vim's
 * write test), `*.tmp` and `*.tmp-*` (temporary files, including
 * wsp_write_file_atomic's).
 *
 * Batching: events are collected until the tree has been quiet for
 * debounce_ms, but a batch is never held longer than max_delay_ms after its
 * first event, so a continuous stream (a checkout of 10,000 files) becomes
 * a few large batches. Within a batch each path appears once, ordered by
 * its last event.
 *
 * rescan: the kernel queue overflowed (IN_Q_OVERFLOW), a watch could not
 * be added (e.g. the max_user_watches limit), a watched directory was
 * removed or moved away (the files under it are gone and are not listed
 * one by one), or the root itself was deleted or moved. The caller should
 * then compare the whole tree with what it knows. changed_paths may still
 * hold paths in such a batch.
 *
 * Files present when the watcher starts are not reported: the caller does
 * its own initial scan (start the watcher first, then scan, so nothing
 * falls between the two).
 */
#pragma once
#include <glib.h>

G_BEGIN_DECLS

#define WSP_WATCHER_DEBOUNCE_MS_DEFAULT  25
#define WSP_WATCHER_MAX_DELAY_MS_DEFAULT 250

typedef struct {
  GPtrArray *changed_paths;   /* char*, absolute, distinct, in order of last event */
  gboolean   rescan;          /* events were lost: re-examine the whole tree */
} WspWatchBatch;

/* Runs on the watcher's context. The batch is valid only during the call
 * (g_ptr_array_ref changed_paths to keep it). The callback may free the
 * watcher. */
typedef void (*WspWatchFn) (const WspWatchBatch *batch, gpointer user_data);

typedef struct _WspWatcher WspWatcher;

/* Starts watching root (a directory; made absolute) and every directory
 * below it that is not ignored. debounce_ms 0 → the default. Fails with a
 * G_IO_ERROR (from errno) when inotify or the root's watch cannot be set
 * up. */
WspWatcher *wsp_watcher_new (const char *root, guint debounce_ms, WspWatchFn fn, gpointer user_data,
                             GError **error);
/* Longest time a batch is held under a continuous stream (≥ debounce). */
void        wsp_watcher_set_max_delay (WspWatcher *self, guint max_delay_ms);
/* Stops watching: no callback runs after this returns; pending changes are
 * dropped. Idempotent. */
void        wsp_watcher_stop (WspWatcher *self);
/* Stops and frees. NULL ok. */
void        wsp_watcher_free (WspWatcher *self);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (WspWatcher, wsp_watcher_free)

/* The ignore rules above, for one file or directory name. Exposed so the
 * daemon's own scans skip the same names. */
gboolean    wsp_watcher_name_is_ignored (const char *name);

/* Number of directories watched (tests, metrics). */
guint       wsp_watcher_n_watches (WspWatcher *self);

G_END_DECLS
