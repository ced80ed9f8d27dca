/* wsp-watcher.c — owns one inotify instance, the watches of a directory
 * tree, and the pending batch of changed paths (see wsp-watcher.h for the
 * contract).
 *
 * Threads: everything runs on the GMainContext that was thread-default at
 * wsp_watcher_new(). One custom GSource carries both the inotify fd (read
 * when readable, non-blocking, a bounded number of reads per dispatch so a
 * flood cannot starve the loop) and the batch deadline (its ready time).
 *
 * Invariants:
 *  - wd_to_dir holds exactly the live watches; an entry leaves on
 *    IN_IGNORED (the kernel dropped the watch) or when its directory is
 *    moved away (its subtree's watches are removed then, since their paths
 *    are stale).
 *  - pending maps each changed path to the sequence number of its last
 *    event; a flush sorts by that number, so paths come in order of last
 *    change, each once.
 *  - The source's ready time is -1 when nothing is pending, else
 *    min(last event + debounce, first event + max delay).
 *  - The callback is the last thing a dispatch does, so it may free the
 *    watcher.
 */
#include "workspace/wsp-watcher.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib-unix.h>

#define WATCH_MASK (IN_CLOSE_WRITE | IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | \
                    IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | \
                    IN_EXCL_UNLINK)
#define READ_BUF_SIZE      (64 * 1024)
#define MAX_READS_PER_DISPATCH 64

typedef struct {
  GSource     base;
  WspWatcher *watcher;
} WatcherSource;

struct _WspWatcher {
  char         *root;           /* absolute, no trailing slash */
  int           fd;             /* inotify; -1 after stop */
  GSource      *source;         /* WatcherSource; NULL after stop */
  gpointer      fd_tag;
  WspWatchFn    fn;
  gpointer      user_data;
  gint64        debounce_us;
  gint64        max_delay_us;
  GHashTable   *wd_to_dir;      /* int wd → char* absolute dir path (owned) */
  int           root_wd;
  GHashTable   *pending;        /* char* path (owned) → GUINT_TO_POINTER (seq of its last event) */
  guint         seq;            /* events in the pending batch; restarts at each flush */
  gboolean      rescan;
  gint64        first_event_us; /* monotonic; 0 when nothing pending */
  gint64        last_event_us;
  gboolean      warned_watch_limit;
};

/* ---- names -------------------------------------------------------------- */

gboolean
wsp_watcher_name_is_ignored (const char *name)
{
  if (name == NULL || name[0] == '\0' || name[0] == '.')
    return TRUE;
  gsize len = strlen (name);
  if (name[len - 1] == '~')
    return TRUE;
  if (name[0] == '#' && len > 1 && name[len - 1] == '#')
    return TRUE;
  if (strcmp (name, "4913") == 0)
    return TRUE;
  if (g_str_has_suffix (name, ".swp") || g_str_has_suffix (name, ".swx") ||
      g_str_has_suffix (name, ".swo") || g_str_has_suffix (name, ".tmp"))
    return TRUE;
  if (strstr (name, ".tmp-") != NULL)
    return TRUE;
  return FALSE;
}

/* ---- pending batch ------------------------------------------------------ */

static void
schedule (WspWatcher *self)
{
  if (self->source == NULL)
    return;
  if (self->first_event_us == 0)
    {
      g_source_set_ready_time (self->source, -1);
      return;
    }
  gint64 at = MIN (self->last_event_us + self->debounce_us, self->first_event_us + self->max_delay_us);
  g_source_set_ready_time (self->source, at);
}

static void
note_event (WspWatcher *self)
{
  gint64 now = g_get_monotonic_time ();
  if (self->first_event_us == 0)
    self->first_event_us = now;
  self->last_event_us = now;
}

/* Takes ownership of path. */
static void
add_pending (WspWatcher *self, char *path)
{
  g_hash_table_replace (self->pending, path, GUINT_TO_POINTER (++self->seq));
  note_event (self);
}

static void
set_rescan (WspWatcher *self)
{
  self->rescan = TRUE;
  note_event (self);
}

/* ---- watches ------------------------------------------------------------ */

static gboolean
path_is_under (const char *path, const char *dir)
{
  gsize n = strlen (dir);
  return strncmp (path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Removes the watches of dir and everything below it (its paths are stale
 * after a move; after a delete the kernel drops them anyway). */
static void
remove_subtree (WspWatcher *self, const char *dir)
{
  GHashTableIter it;
  gpointer key, value;
  g_autoptr (GArray) wds = g_array_new (FALSE, FALSE, sizeof (int));
  g_hash_table_iter_init (&it, self->wd_to_dir);
  while (g_hash_table_iter_next (&it, &key, &value))
    if (path_is_under (value, dir))
      {
        int wd = GPOINTER_TO_INT (key);
        g_array_append_val (wds, wd);
      }
  for (guint i = 0; i < wds->len; i++)
    {
      int wd = g_array_index (wds, int, i);
      g_hash_table_remove (self->wd_to_dir, GINT_TO_POINTER (wd));
      if (self->fd >= 0)
        inotify_rm_watch (self->fd, wd);   /* EINVAL when already gone: fine */
    }
}

static int
add_watch (WspWatcher *self, const char *dir, GError **error)
{
  int wd = inotify_add_watch (self->fd, dir, WATCH_MASK);
  if (wd < 0)
    {
      int e = errno;
      if (e == ENOSPC && !self->warned_watch_limit)
        {
          self->warned_watch_limit = TRUE;
          g_warning ("watcher: inotify watch limit reached at %s (raise fs.inotify.max_user_watches)", dir);
        }
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), "cannot watch %s: %s", dir,
                   g_strerror (e));
      return -1;
    }
  /* The same directory may come back under another wd after a move; the
   * kernel reuses wds only for the same inode, so replacing is right. */
  g_hash_table_replace (self->wd_to_dir, GINT_TO_POINTER (wd), g_strdup (dir));
  return wd;
}

/* Type of an entry without following symlinks. */
static unsigned char
entry_type (int dfd, const struct dirent *de)
{
  if (de->d_type != DT_UNKNOWN)
    return de->d_type;
  struct stat st;
  if (fstatat (dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
    return DT_UNKNOWN;
  if (S_ISDIR (st.st_mode))
    return DT_DIR;
  if (S_ISREG (st.st_mode))
    return DT_REG;
  return DT_UNKNOWN;
}

/* Watches dir and every non-ignored directory below it (iteratively: depth
 * is not bounded by the stack). When report, every file found is added to
 * the batch (it may have been written before the watch existed). A
 * directory that cannot be watched sets rescan. */
static void
watch_tree (WspWatcher *self, const char *top, gboolean report)
{
  g_autoptr (GPtrArray) stack = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (stack, g_strdup (top));
  while (stack->len > 0)
    {
      g_autofree char *dir = g_ptr_array_steal_index (stack, stack->len - 1);
      g_autoptr (GError) error = NULL;
      if (add_watch (self, dir, &error) < 0)
        {
          if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND) &&
              !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_DIRECTORY))
            {
              g_debug ("watcher: %s", error->message);
              set_rescan (self);
            }
          continue;
        }
      DIR *d = opendir (dir);
      if (d == NULL)
        continue;   /* removed meanwhile: its events say so */
      struct dirent *de;
      while ((de = readdir (d)) != NULL)
        {
          if (wsp_watcher_name_is_ignored (de->d_name))
            continue;
          unsigned char t = entry_type (dirfd (d), de);
          char *child = g_build_filename (dir, de->d_name, NULL);
          if (t == DT_DIR)
            g_ptr_array_add (stack, child);
          else if (report && t == DT_REG)
            add_pending (self, child);
          else
            g_free (child);
        }
      closedir (d);
    }
}

/* ---- events ------------------------------------------------------------- */

static void
handle_event (WspWatcher *self, const struct inotify_event *ev)
{
  if (ev->mask & IN_Q_OVERFLOW)
    {
      set_rescan (self);
      return;
    }
  if (ev->mask & IN_IGNORED)
    {
      gboolean was_root = ev->wd == self->root_wd;
      g_hash_table_remove (self->wd_to_dir, GINT_TO_POINTER (ev->wd));
      if (was_root)
        {
          self->root_wd = -1;
          set_rescan (self);
        }
      return;
    }
  const char *dir = g_hash_table_lookup (self->wd_to_dir, GINT_TO_POINTER (ev->wd));
  if (dir == NULL)
    return;   /* a watch removed with its subtree; late events */

  if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF))
    {
      /* Handled through the parent's event for subdirectories; the root
       * has no watched parent. */
      if (ev->wd == self->root_wd)
        set_rescan (self);
      return;
    }
  if (ev->len == 0 || ev->name[0] == '\0' || wsp_watcher_name_is_ignored (ev->name))
    return;

  char *path = g_build_filename (dir, ev->name, NULL);
  if (ev->mask & IN_ISDIR)
    {
      if (ev->mask & (IN_CREATE | IN_MOVED_TO))
        watch_tree (self, path, TRUE);
      else if (ev->mask & (IN_MOVED_FROM | IN_DELETE))
        {
          remove_subtree (self, path);
          set_rescan (self);
        }
      g_free (path);
      return;
    }
  if (ev->mask & (IN_CLOSE_WRITE | IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE))
    add_pending (self, path);
  else
    g_free (path);
}

/* Reads what the kernel has, without blocking. FALSE when the fd failed
 * (then everything is rescanned and the watcher stops reading). */
static gboolean
read_events (WspWatcher *self)
{
  char buf[READ_BUF_SIZE] __attribute__ ((aligned (__alignof__ (struct inotify_event))));
  for (int n = 0; n < MAX_READS_PER_DISPATCH; n++)
    {
      ssize_t got = read (self->fd, buf, sizeof buf);
      if (got < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK)
            return TRUE;
          g_warning ("watcher: reading inotify: %s", g_strerror (errno));
          set_rescan (self);
          return FALSE;
        }
      if (got == 0)
        return TRUE;
      for (char *p = buf; p < buf + got;)
        {
          const struct inotify_event *ev = (const struct inotify_event *) (gpointer) p;
          handle_event (self, ev);
          p += sizeof (struct inotify_event) + ev->len;
        }
    }
  return TRUE;
}

static gint
compare_seq (gconstpointer a, gconstpointer b, gpointer user_data)
{
  GHashTable *pending = user_data;
  guint sa = GPOINTER_TO_UINT (g_hash_table_lookup (pending, *(char *const *) a));
  guint sb = GPOINTER_TO_UINT (g_hash_table_lookup (pending, *(char *const *) b));
  return sa < sb ? -1 : sa > sb;
}

static gboolean
watcher_dispatch (GSource *source, GSourceFunc unused_callback, gpointer unused_data)
{
  WspWatcher *self = ((WatcherSource *) source)->watcher;

  if (self->fd_tag != NULL && (g_source_query_unix_fd (source, self->fd_tag) & (G_IO_IN | G_IO_ERR | G_IO_HUP)))
    {
      if (!read_events (self))
        {
          g_source_remove_unix_fd (source, self->fd_tag);
          self->fd_tag = NULL;
        }
    }

  gint64 now = g_get_monotonic_time ();
  if (self->first_event_us == 0 ||
      (now < self->last_event_us + self->debounce_us && now < self->first_event_us + self->max_delay_us))
    {
      schedule (self);
      return G_SOURCE_CONTINUE;
    }

  /* Flush: take the batch out of self first, then call back last. */
  g_autoptr (GHashTable) pending = g_steal_pointer (&self->pending);
  self->pending = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->seq = 0;
  WspWatchBatch batch = { .rescan = self->rescan };
  self->rescan = FALSE;
  self->first_event_us = self->last_event_us = 0;
  schedule (self);

  guint n = 0;
  gpointer *keys = g_hash_table_get_keys_as_array (pending, &n);
  g_qsort_with_data (keys, (gint) n, sizeof (gpointer), compare_seq, pending);
  g_hash_table_steal_all (pending);   /* the keys now belong to the batch */
  batch.changed_paths = g_ptr_array_new_full (n, g_free);
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (batch.changed_paths, keys[i]);
  g_free (keys);
  if (batch.changed_paths->len > 0 || batch.rescan)
    self->fn (&batch, self->user_data);
  g_ptr_array_unref (batch.changed_paths);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs watcher_source_funcs = {
  .prepare = NULL,
  .check = NULL,
  .dispatch = watcher_dispatch,
  .finalize = NULL,
};

/* ---- lifecycle ---------------------------------------------------------- */

WspWatcher *
wsp_watcher_new (const char *root, guint debounce_ms, WspWatchFn fn, gpointer user_data, GError **error)
{
  g_return_val_if_fail (root != NULL && fn != NULL, NULL);

  g_autoptr (WspWatcher) self = g_new0 (WspWatcher, 1);
  self->fd = -1;
  self->root_wd = -1;
  g_autofree char *abs = g_canonicalize_filename (root, NULL);
  self->root = g_steal_pointer (&abs);
  self->fn = fn;
  self->user_data = user_data;
  self->debounce_us = (gint64) (debounce_ms ? debounce_ms : WSP_WATCHER_DEBOUNCE_MS_DEFAULT) * 1000;
  self->max_delay_us = MAX ((gint64) WSP_WATCHER_MAX_DELAY_MS_DEFAULT * 1000, self->debounce_us);
  self->wd_to_dir = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, g_free);
  self->pending = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  self->fd = inotify_init1 (IN_NONBLOCK | IN_CLOEXEC);
  if (self->fd < 0)
    {
      int e = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e), "cannot start inotify: %s",
                   g_strerror (e));
      return NULL;
    }
  self->root_wd = add_watch (self, self->root, error);
  if (self->root_wd < 0)
    return NULL;
  /* The root's watch exists (a failure there is the caller's error); now
   * the whole tree, reporting nothing that was already there. Watching the
   * root again returns the same wd (same inode). */
  watch_tree (self, self->root, FALSE);
  self->rescan = FALSE;
  self->seq = 0;
  self->first_event_us = self->last_event_us = 0;

  self->source = g_source_new (&watcher_source_funcs, sizeof (WatcherSource));
  ((WatcherSource *) self->source)->watcher = self;
  g_source_set_static_name (self->source, "wsp-watcher");
  self->fd_tag = g_source_add_unix_fd (self->source, self->fd, G_IO_IN | G_IO_ERR | G_IO_HUP);
  g_source_set_ready_time (self->source, -1);
  g_source_attach (self->source, g_main_context_get_thread_default ());
  return g_steal_pointer (&self);
}

void
wsp_watcher_set_max_delay (WspWatcher *self, guint max_delay_ms)
{
  g_return_if_fail (self != NULL);
  self->max_delay_us = MAX ((gint64) max_delay_ms * 1000, self->debounce_us);
  schedule (self);
}

void
wsp_watcher_stop (WspWatcher *self)
{
  if (self == NULL)
    return;
  if (self->source != NULL)
    {
      g_source_destroy (self->source);
      g_clear_pointer (&self->source, g_source_unref);
      self->fd_tag = NULL;
    }
  if (self->fd >= 0)
    {
      close (self->fd);   /* drops every watch */
      self->fd = -1;
    }
  if (self->wd_to_dir != NULL)
    g_hash_table_remove_all (self->wd_to_dir);
  if (self->pending != NULL)
    g_hash_table_remove_all (self->pending);
  self->first_event_us = self->last_event_us = 0;
  self->rescan = FALSE;
}

void
wsp_watcher_free (WspWatcher *self)
{
  if (self == NULL)
    return;
  wsp_watcher_stop (self);
  g_clear_pointer (&self->wd_to_dir, g_hash_table_unref);
  g_clear_pointer (&self->pending, g_hash_table_unref);
  g_free (self->root);
  g_free (self);
}

guint
wsp_watcher_n_watches (WspWatcher *self)
{
  return self && self->wd_to_dir ? g_hash_table_size (self->wd_to_dir) : 0;
}
