/* wsp-mirror.c — tasks/ ↔ store, both ways (see wsp-mirror.h).
 *
 * Threads:
 *  - main context: the watcher callback (on_watch) adds paths to the
 *    pending set and wakes the worker;
 *  - store writer thread: the listener (on_store_changed) adds task ids;
 *  - worker thread: everything else. It alone touches the file tree, the
 *    index (known files) and its read-only store connection.
 * The pending sets, the problems table and the flush counters live under
 * `lock`; nothing runs a callback while holding it.
 *
 * Invariants (worker thread):
 *  - known[path] = the hash, size and mtime of the file's content as last
 *    written or applied by the daemon, and the task id it holds;
 *  - a watcher event for a path whose content hashes to known[path] is the
 *    daemon's own write (or no change) and makes no op.
 */
#define G_LOG_DOMAIN "wsp-mirror"

#include "workspace/wsp-mirror.h"
#include "workspace/wsp-taskfile.h"
#include "workspace/wsp-watcher.h"
#include "workspace/wsp-workspace.h"
#include "common/wsp-common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>

/* A change removing more than this share of the task files (and at least
 * MASS_REMOVAL_MIN of them) applies no deletes. "A change" is every removal
 * seen until none has come for MASS_REMOVAL_SETTLE_MS: a branch switch on a
 * slow or busy machine reaches us in several rounds of events, and judging
 * each round alone let most of its deletes through. */
#define MASS_REMOVAL_SHARE     0.20
#define MASS_REMOVAL_MIN       10
#define MASS_REMOVAL_SETTLE_MS 300

/* The task files follow the store, and the store comes first. A peer's
 * catch-up changes thousands of tasks over several store batches; while
 * received runs are still pending in the store, a large set of changed
 * tasks (BULK_RENDER_MIN or more) waits, polling every BULK_POLL_MS, for
 * at most BULK_HOLD_MS after the oldest of them changed, instead of
 * competing with the store for the CPU; a task that several batches
 * changed is then rendered once. Small changes and local edits render at
 * once. */
#define BULK_RENDER_MIN 256
#define BULK_HOLD_MS    1000
#define BULK_POLL_MS    10

/* Per-field digests of a file's content: what the file said when the
 * daemon last wrote or applied it (the base of a three-way merge). */
enum { D_TITLE, D_BODY, D_STATUS, D_PRIORITY, D_ASSIGNEE, D_PARENT, D_DUE, D_LABELS, D_DEPS, D_N };

typedef struct {
  char    *hash;     /* hex SHA-256 of the content */
  char    *id;       /* task id the file holds (NULL if it never parsed) */
  gint64   size;
  gint64   mtime;    /* ns */
  gboolean has_base; /* base is valid (not after a restart: the index keeps no digests) */
  guint64  base[D_N];
} Known;

static void
known_free (Known *k)
{
  g_free (k->hash);
  g_free (k->id);
  g_free (k);
}

typedef struct {
  guint line;
  char *reason;
} Problem;

static void
problem_free (Problem *p)
{
  g_free (p->reason);
  g_free (p);
}

struct _WspMirror {
  char        *tasks_dir;
  char        *index_path;
  char        *db_path;
  char        *prefix;
  char       **statuses;
  WspStore    *store;
  WspWatcher  *watcher;
  GThread     *thread;

  GMutex       lock;
  GCond        cond;
  GHashTable  *pending_paths;   /* path → NULL (set), under lock */
  GHashTable  *pending_ids;     /* id → NULL (set), under lock */
  gint64       ids_since;       /* monotonic µs: the oldest pending id changed then */
  gboolean     pending_rescan;
  gboolean     stopping;
  gint         stop_flag;       /* atomic copy of stopping, read without the lock */
  guint64      enqueued;        /* hand-overs so far */
  guint64      round_target;    /* enqueued when the current round began */
  guint64      done;            /* hand-overs fully processed */
  GHashTable  *problems;        /* path (relative to tasks/) → Problem*, under lock */
  char        *mass_removal;    /* problem text of a blocked mass removal, under lock */
  GPtrArray   *mass_ids;        /* ids of the tasks whose files went, under lock */
  GHashTable  *pending_deletes; /* ids to delete (a resolved mass removal), under lock */

  /* Worker thread only. */
  WspStoreReader *reader;
  GHashTable     *known;        /* absolute path → Known* */
  GHashTable     *path_of_id;   /* id → absolute path (borrowed key of known) */
  gboolean        index_dirty;
  GHashTable     *held_removed; /* absolute paths of removed files not yet judged */
  gint64          held_until;   /* monotonic µs: judge them when no removal came by then */
};

/* ---- small helpers ------------------------------------------------------ */

/* Under lock: n_ids changed tasks, the oldest changed at since, wait
 * (see BULK_RENDER_MIN). */
static gboolean
bulk_held (WspMirror *self, guint n_ids, gint64 since, gint64 now)
{
  WspStoreStats stats;

  if (n_ids < BULK_RENDER_MIN || now >= since + BULK_HOLD_MS * G_TIME_SPAN_MILLISECOND)
    return FALSE;
  wsp_store_get_stats (self->store, &stats);
  return stats.runs_pending > 0;
}

/* Under lock: ids changed (a store batch, or renders given back). */
static void
pending_ids_add (WspMirror *self, const char *const *ids, guint n, gint64 since)
{
  if (n && (!g_hash_table_size (self->pending_ids) || since < self->ids_since))
    self->ids_since = since;
  for (guint i = 0; i < n; i++)
    g_hash_table_add (self->pending_ids, g_strdup (ids[i]));
  self->enqueued++;
}

/* Long loops (a reconcile of 100,000 files) give way to a stop request, so
 * the daemon still exits within its 5 s; the index keeps what was done. */
static gboolean
stop_requested (WspMirror *self)
{
  return g_atomic_int_get (&self->stop_flag);
}

static gint64
stat_mtime_ns (const struct stat *st)
{
  return (gint64) st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static guint64
digest_str (const char *s)
{
  /* FNV-1a, 64 bits; NULL and "" differ on purpose only through the seed. */
  guint64 h = s ? 1469598103934665603ULL : 7ULL;
  for (const char *p = s ? s : ""; *p; p++)
    h = (h ^ (guchar) *p) * 1099511628211ULL;
  return h;
}

static int
cmp_strp (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static guint64
digest_set (const char *const *items, guint n)
{
  g_autoptr (GPtrArray) sorted = g_ptr_array_new ();
  for (guint i = 0; i < n; i++)
    g_ptr_array_add (sorted, (gpointer) items[i]);
  g_ptr_array_sort (sorted, cmp_strp);
  guint64 h = 1469598103934665603ULL;
  for (guint i = 0; i < sorted->len; i++)
    h = (h ^ digest_str (sorted->pdata[i])) * 1099511628211ULL;
  return h;
}

static const char *
empty_null (const char *s)
{
  return s && *s ? s : NULL;
}

static void
digest_view (const WspTaskFileView *v, guint64 d[D_N])
{
  g_autofree char *body = wsp_taskfile_body_normalize (v->body);
  d[D_TITLE] = digest_str (v->title ? v->title : "");
  d[D_BODY] = digest_str (body);
  d[D_STATUS] = digest_str (v->status ? v->status : "todo");
  d[D_PRIORITY] = (guint64) v->priority;
  d[D_ASSIGNEE] = digest_str (empty_null (v->assignee));
  d[D_PARENT] = digest_str (empty_null (v->parent));
  d[D_DUE] = digest_str (empty_null (v->due));
  d[D_LABELS] = digest_set (v->labels, v->labels ? g_strv_length ((char **) v->labels) : 0);
  d[D_DEPS] = digest_set (v->depends_on, v->depends_on ? g_strv_length ((char **) v->depends_on) : 0);
}

/* Digests of the keys a parsed file gives; absent keys keep `base`'s. */
static void
digest_file (const WspTaskFile *f, const guint64 base[D_N], guint64 d[D_N])
{
  memcpy (d, base, sizeof (guint64) * D_N);
  if (f->present & WSP_TASKFILE_KEY_TITLE)
    d[D_TITLE] = digest_str (f->title);
  d[D_BODY] = digest_str (f->body);
  if (f->present & WSP_TASKFILE_KEY_STATUS)
    d[D_STATUS] = digest_str (f->status);
  if (f->present & WSP_TASKFILE_KEY_PRIORITY)
    d[D_PRIORITY] = (guint64) f->priority;
  if (f->present & WSP_TASKFILE_KEY_ASSIGNEE)
    d[D_ASSIGNEE] = digest_str (empty_null (f->assignee));
  if (f->present & WSP_TASKFILE_KEY_PARENT)
    d[D_PARENT] = digest_str (empty_null (f->parent));
  if (f->present & WSP_TASKFILE_KEY_DUE)
    d[D_DUE] = digest_str (empty_null (f->due));
  if (f->present & WSP_TASKFILE_KEY_LABELS)
    d[D_LABELS] = digest_set ((const char *const *) f->labels->pdata, f->labels->len);
  if (f->present & WSP_TASKFILE_KEY_DEPENDS_ON)
    d[D_DEPS] = digest_set ((const char *const *) f->depends_on->pdata, f->depends_on->len);
}

/* Three-way merge: keep in w only what the person changed in the file
 * relative to what the daemon last wrote there, so that a file edit never
 * reverts a change that reached the store meanwhile (from the API or a
 * peer). Returns w, or NULL (freed) when nothing is left. */
static WspWrite *
keep_changed_fields (WspWrite *w, const guint64 base[D_N], const guint64 now[D_N])
{
  static const struct { WspField field; int d; } map[] = {
    { WSP_FIELD_TITLE, D_TITLE }, { WSP_FIELD_BODY, D_BODY }, { WSP_FIELD_STATUS, D_STATUS },
    { WSP_FIELD_PRIORITY, D_PRIORITY }, { WSP_FIELD_ASSIGNEE, D_ASSIGNEE },
    { WSP_FIELD_PARENT, D_PARENT }, { WSP_FIELD_DUE, D_DUE },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (map); i++)
    if ((w->field_mask & (1u << map[i].field)) && base[map[i].d] == now[map[i].d])
      {
        w->field_mask &= ~(1u << map[i].field);
        wsp_value_clear (&w->fields[map[i].field]);
      }
  if (base[D_LABELS] == now[D_LABELS])
    {
      g_clear_pointer (&w->labels_add, g_ptr_array_unref);
      g_clear_pointer (&w->labels_remove, g_ptr_array_unref);
      w->labels_replace = FALSE;
    }
  if (base[D_DEPS] == now[D_DEPS])
    {
      g_clear_pointer (&w->deps_add, g_ptr_array_unref);
      g_clear_pointer (&w->deps_remove, g_ptr_array_unref);
      w->deps_replace = FALSE;
    }
  gboolean empty = w->field_mask == 0 && !w->labels_add && !w->labels_remove && !w->deps_add && !w->deps_remove;
  if (empty)
    {
      wsp_write_free (w);
      return NULL;
    }
  return w;
}

static const char *
rel_path (WspMirror *self, const char *path)
{
  gsize n = strlen (self->tasks_dir);
  if (strncmp (path, self->tasks_dir, n) == 0 && path[n] == '/')
    return path + n + 1;
  return path;
}

static gboolean
is_task_file (const char *path)
{
  g_autofree char *base = g_path_get_basename (path);
  return g_str_has_suffix (base, ".md") && !wsp_watcher_name_is_ignored (base);
}

static void
set_problem (WspMirror *self, const char *path, guint line, const char *reason)
{
  Problem *p = g_new0 (Problem, 1);
  p->line = line;
  p->reason = g_strdup (reason);
  g_mutex_lock (&self->lock);
  g_hash_table_replace (self->problems, g_strdup (rel_path (self, path)), p);
  g_mutex_unlock (&self->lock);
  g_warning ("task file %s: line %u: %s", rel_path (self, path), line, reason);
}

static void
clear_problem (WspMirror *self, const char *path)
{
  g_mutex_lock (&self->lock);
  g_hash_table_remove (self->problems, rel_path (self, path));
  g_mutex_unlock (&self->lock);
}

static Known *
known_set (WspMirror *self, const char *path, const char *hash, const char *id, gint64 size, gint64 mtime)
{
  Known *old = g_hash_table_lookup (self->known, path);
  if (old && old->id)
    {
      const char *p = g_hash_table_lookup (self->path_of_id, old->id);
      if (p && strcmp (p, path) == 0)
        g_hash_table_remove (self->path_of_id, old->id);
    }
  Known *k = g_new0 (Known, 1);
  k->hash = g_strdup (hash);
  k->id = g_strdup (id);
  k->size = size;
  k->mtime = mtime;
  char *key = g_strdup (path);
  g_hash_table_replace (self->known, key, k);
  if (id)
    g_hash_table_replace (self->path_of_id, g_strdup (id), key);
  self->index_dirty = TRUE;
  return k;
}

static void
known_remove (WspMirror *self, const char *path)
{
  Known *k = g_hash_table_lookup (self->known, path);
  if (!k)
    return;
  if (k->id)
    {
      const char *p = g_hash_table_lookup (self->path_of_id, k->id);
      if (p && strcmp (p, path) == 0)
        g_hash_table_remove (self->path_of_id, k->id);
    }
  g_hash_table_remove (self->known, path);
  self->index_dirty = TRUE;
}

/* ---- the index (.wsp/files.idx) ---------------------------------------- */

/* Lines "hash size mtime id path", id "-" when none. A cache only: a
 * stale or missing index costs parsing, never correctness, because applying
 * an unchanged file makes no op. */
static void
index_load (WspMirror *self)
{
  g_autofree char *data = NULL;
  if (!g_file_get_contents (self->index_path, &data, NULL, NULL))
    return;
  g_auto (GStrv) lines = g_strsplit (data, "\n", -1);
  for (char **l = lines; *l; l++)
    {
      g_auto (GStrv) f = g_strsplit (*l, " ", 5);
      if (g_strv_length (f) != 5)
        continue;
      g_autofree char *path = g_build_filename (self->tasks_dir, f[4], NULL);
      known_set (self, path, f[0], strcmp (f[3], "-") ? f[3] : NULL,
                 g_ascii_strtoll (f[1], NULL, 10), g_ascii_strtoll (f[2], NULL, 10));
    }
  self->index_dirty = FALSE;
}

static void
index_save (WspMirror *self)
{
  if (!self->index_dirty)
    return;
  g_autoptr (GString) out = g_string_new (NULL);
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, self->known);
  while (g_hash_table_iter_next (&it, &key, &value))
    {
      Known *k = value;
      const char *rel = rel_path (self, key);
      if (strchr (rel, '\n'))
        continue;
      g_string_append_printf (out, "%s %" G_GINT64_FORMAT " %" G_GINT64_FORMAT " %s %s\n", k->hash, k->size,
                              k->mtime, k->id ? k->id : "-", rel);
    }
  g_autoptr (GError) error = NULL;
  if (!wsp_write_file_atomic (self->index_path, out->str, out->len, 0600, &error))
    g_warning ("saving the file index failed: %s", error->message);
  else
    self->index_dirty = FALSE;
}

/* ---- store → files ------------------------------------------------------ */

static char *
canonical_path (WspMirror *self, const char *id)
{
  g_autofree char *name = g_strconcat (id, ".md", NULL);
  return g_build_filename (self->tasks_dir, name, NULL);
}

/* Puts path back on the queue: its content is someone's edit to apply. */
static void
requeue_path (WspMirror *self, const char *path)
{
  g_mutex_lock (&self->lock);
  g_hash_table_add (self->pending_paths, g_strdup (path));
  self->enqueued++;
  g_mutex_unlock (&self->lock);
}

/* based_on: the hash of the content the render replaces (NULL: none). The
 * file is checked again just before it is replaced, so an edit saved while
 * we rendered is applied instead of overwritten (the window left is the
 * few microseconds between that check and the rename). */
static gboolean
write_task_file (WspMirror *self, const char *path, const char *id, GBytes *bytes, const WspTaskFileView *view,
                 const char *based_on)
{
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);
  g_autofree char *tmp = g_strdup_printf ("%s.tmp-wspd", path);

  /* No fsync: the store is the durable copy; a file lost to a power cut
   * is written again (or reported) by the next reconcile. */
  g_autoptr (GError) error = NULL;
  if (!g_file_set_contents_full (tmp, data, (gssize) len, G_FILE_SET_CONTENTS_NONE, 0644, &error))
    {
      g_warning ("writing %s failed: %s", tmp, error->message);
      return FALSE;
    }

  /* Replace the file only if it still holds what we rendered from, with
   * no window for a lost edit: swap atomically, then look at what came
   * out; if it was someone's newer save, swap it back and apply it. */
  if (!based_on)
    {
      if (renameat2 (AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) != 0)
        {
          int saved = errno;
          g_unlink (tmp);
          if (saved == EEXIST)
            requeue_path (self, path);   /* someone made the file meanwhile */
          else
            g_warning ("renaming %s into place failed: %s", path, g_strerror (saved));
          return FALSE;
        }
    }
  else
    {
      if (renameat2 (AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) != 0)
        {
          int saved = errno;
          g_unlink (tmp);
          if (saved == ENOENT)
            requeue_path (self, path);   /* removed meanwhile */
          else
            g_warning ("replacing %s failed: %s", path, g_strerror (saved));
          return FALSE;
        }
      g_autofree char *out = NULL;
      gsize out_len = 0;
      g_file_get_contents (tmp, &out, &out_len, NULL);
      g_autofree char *out_hash = out ? wsp_taskfile_hash (out, out_len) : NULL;
      if (g_strcmp0 (out_hash, based_on) != 0)
        {
          /* Someone saved after we read the file: put their save back. */
          if (renameat2 (AT_FDCWD, tmp, AT_FDCWD, path, RENAME_EXCHANGE) != 0)
            g_warning ("restoring %s failed: %s", path, g_strerror (errno));
          g_unlink (tmp);
          requeue_path (self, path);
          return FALSE;
        }
      g_unlink (tmp);
    }

  struct stat st;
  g_autofree char *hash = wsp_taskfile_hash (data, len);
  gboolean ok = stat (path, &st) == 0;
  Known *k = known_set (self, path, hash, id, ok ? st.st_size : -1, ok ? stat_mtime_ns (&st) : -1);
  digest_view (view, k->base);
  k->has_base = TRUE;
  return TRUE;
}

/* Renders task id from the store into its file (or removes the file of a
 * deleted task). original_path: a file to take unknown keys from (NULL:
 * the task's own file). */
static void
render_task (WspMirror *self, const char *id, const char *original_path)
{
  g_autoptr (GString) json = g_string_new (NULL);
  g_autoptr (GError) error = NULL;
  const char *known_path = g_hash_table_lookup (self->path_of_id, id);
  g_autofree char *path = known_path ? g_strdup (known_path) : canonical_path (self, id);

  if (!wsp_store_reader_task_json (self->reader, id, json, &error))
    {
      if (g_error_matches (error, WSP_ERROR, WSP_ERROR_GONE))
        {
          if (g_unlink (path) == 0 || errno == ENOENT)
            known_remove (self, path);
          clear_problem (self, path);
        }
      return;
    }
  g_autoptr (WspTaskFileView) view = wsp_taskfile_view_new_from_json (json->str, (gssize) json->len, &error);
  if (!view)
    {
      g_warning ("task %s: %s", id, error->message);
      return;
    }
  g_autofree char *old = NULL;
  gsize old_len = 0;
  g_file_get_contents (original_path ? original_path : path, &old, &old_len, NULL);
  if (old && !original_path)
    {
      /* Never overwrite an edit we have not applied yet: a file whose
       * content is not what we last wrote or applied is someone's change.
       * Apply it first (it is queued again); this render follows from the
       * store's commit. */
      Known *k = g_hash_table_lookup (self->known, path);
      g_autofree char *on_disk = wsp_taskfile_hash (old, old_len);
      if (!k || g_strcmp0 (k->hash, on_disk) != 0)
        {
          requeue_path (self, path);
          return;
        }
    }
  g_autoptr (GBytes) original = old ? g_bytes_new (old, old_len) : NULL;
  g_autoptr (GBytes) bytes = wsp_taskfile_render (view, original);
  if (old && !original_path && g_bytes_get_size (bytes) == old_len
      && memcmp (g_bytes_get_data (bytes, NULL), old, old_len) == 0)
    {
      /* Same bytes: only make sure we remember them. */
      Known *k = g_hash_table_lookup (self->known, path);
      if (!k || !k->id)
        {
          g_autofree char *hash = wsp_taskfile_hash (old, old_len);
          struct stat st;
          if (stat (path, &st) == 0)
            k = known_set (self, path, hash, id, st.st_size, stat_mtime_ns (&st));
        }
      if (k)
        {
          digest_view (view, k->base);
          k->has_base = TRUE;
        }
      return;
    }
  g_autofree char *based_on = old && !original_path ? wsp_taskfile_hash (old, old_len) : NULL;
  if (!original_path && !old && g_file_test (path, G_FILE_TEST_EXISTS))
    {
      requeue_path (self, path);   /* appeared meanwhile: someone's file */
      return;
    }
  if (original_path)
    {
      /* A create's render replaces the file it came from (or writes its
       * new name): base it on what is at path now. */
      g_autofree char *cur = NULL;
      gsize cur_len = 0;
      if (g_file_get_contents (path, &cur, &cur_len, NULL))
        based_on = wsp_taskfile_hash (cur, cur_len);
    }
  if (write_task_file (self, path, id, bytes, view, based_on))
    clear_problem (self, path);
}

/* ---- files → store ------------------------------------------------------ */

/* The columns plus the task's current status, so that a status a peer set
 * (not among ours) keeps the file editable. */
static char **
statuses_for (WspMirror *self, const char *current)
{
  GStrvBuilder *b = g_strv_builder_new ();
  g_strv_builder_addv (b, (const char **) self->statuses);
  if (current && !g_strv_contains ((const char *const *) self->statuses, current))
    g_strv_builder_add (b, current);
  char **out = g_strv_builder_end (b);
  g_strv_builder_unref (b);
  return out;
}

/* ---- files → store: a batch of writes, submitted together ------------- */

/* One file's write, in flight in the store, and what to do once it is
 * durable. A watcher batch submits all of them before waiting, so the store
 * commits them in a few transactions instead of one per file. */
typedef enum {
  ACT_UPDATE,   /* an existing task changed */
  ACT_CREATE,   /* a new task; render it (and move a file without id) */
  ACT_DELETE,   /* a removed file */
} ActKind;

typedef struct _Batch Batch;

typedef struct {
  Batch   *batch;
  ActKind  kind;
  char    *path;
  char    *id;
  char    *hash;
  gint64   size;
  gint64   mtime;
  gboolean move;
  gboolean has_digest;
  guint64  digest[D_N];   /* of the file as applied */
  GError  *error;
} Act;

struct _Batch {
  GMutex     mutex;
  GCond      cond;
  guint      in_flight;
  GPtrArray *acts;   /* Act* */
};

static void
act_free (Act *a)
{
  g_free (a->path);
  g_free (a->id);
  g_free (a->hash);
  g_clear_error (&a->error);
  g_free (a);
}

static void
batch_init (Batch *b)
{
  g_mutex_init (&b->mutex);
  g_cond_init (&b->cond);
  b->in_flight = 0;
  b->acts = g_ptr_array_new_with_free_func ((GDestroyNotify) act_free);
}

static void
batch_clear (Batch *b)
{
  g_ptr_array_unref (b->acts);
  g_mutex_clear (&b->mutex);
  g_cond_clear (&b->cond);
}

/* Store writer thread. */
static void
on_act_done (const WspWriteResult *r, gpointer data)
{
  Act *a = data;
  Batch *b = a->batch;
  g_mutex_lock (&b->mutex);
  if (r->error)
    a->error = g_error_copy (r->error);
  b->in_flight--;
  g_cond_signal (&b->cond);
  g_mutex_unlock (&b->mutex);
}

static void
batch_wait (Batch *b, guint at_most)
{
  g_mutex_lock (&b->mutex);
  while (b->in_flight > at_most)
    g_cond_wait (&b->cond, &b->mutex);
  g_mutex_unlock (&b->mutex);
}

#define BATCH_MAX_IN_FLIGHT 256   /* of the store's 1,024 queue slots */

/* Queues w for act a (taking both). At most BATCH_MAX_IN_FLIGHT of ours
 * wait in the store at once; a store queue full anyway (heavy API load) is
 * back-pressure: the act fails with BUSY and its file is retried in the
 * next round. */
static void
batch_submit (Batch *b, WspMirror *self, Act *a, WspWrite *w)
{
  a->batch = b;
  g_ptr_array_add (b->acts, a);
  batch_wait (b, BATCH_MAX_IN_FLIGHT - 1);
  g_mutex_lock (&b->mutex);
  b->in_flight++;
  g_mutex_unlock (&b->mutex);
  g_autoptr (GError) error = NULL;
  if (!wsp_store_submit (self->store, w, on_act_done, a, &error))
    {
      g_mutex_lock (&b->mutex);
      b->in_flight--;
      g_mutex_unlock (&b->mutex);
      a->error = g_steal_pointer (&error);
    }
}

/* A file appeared or changed: parse and queue its write. */
static void
plan_file (WspMirror *self, Batch *b, const char *path, const char *data, gsize len, const struct stat *st)
{
  g_autofree char *hash = wsp_taskfile_hash (data, len);
  Known *k = g_hash_table_lookup (self->known, path);
  if (k && g_strcmp0 (k->hash, hash) == 0)
    {
      /* Our own write, a touch, or a file put back as it was: nothing to
       * apply, and whatever was wrong with it is gone. */
      clear_problem (self, path);
      k->size = st->st_size;
      k->mtime = stat_mtime_ns (st);
      self->index_dirty = TRUE;
      return;
    }

  /* Parse once without the column check to learn the id. */
  g_autoptr (WspTaskFile) file = NULL;
  WspTaskFileProblem problem = { 0 };
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) json = g_string_new (NULL);
  g_autoptr (WspTaskFileView) current = NULL;
  g_autoptr (GError) lookup_error = NULL;

  if (!wsp_taskfile_parse (data, len, NULL, &file, &problem, &error))
    {
      set_problem (self, path, problem.line, problem.reason);
      wsp_taskfile_problem_clear (&problem);
      return;
    }
  if (file->id && wsp_store_reader_task_json (self->reader, file->id, json, &lookup_error))
    current = wsp_taskfile_view_new_from_json (json->str, (gssize) json->len, NULL);

  /* Now with the columns (plus the task's own status, which may be a
   * peer's column this replica does not have) — parsed again only when the
   * status is not one of them, to get the problem's line. */
  if (file->status && !g_strv_contains ((const char *const *) self->statuses, file->status)
      && g_strcmp0 (file->status, current ? current->status : NULL) != 0)
  {
    g_auto (GStrv) statuses = statuses_for (self, current ? current->status : NULL);
    g_clear_pointer (&file, wsp_taskfile_free);
    g_clear_error (&error);
    if (!wsp_taskfile_parse (data, len, (const char *const *) statuses, &file, &problem, &error))
      {
        set_problem (self, path, problem.line, problem.reason);
        wsp_taskfile_problem_clear (&problem);
        return;
      }
  }

  if (file->id)
    {
      const char *other = g_hash_table_lookup (self->path_of_id, file->id);
      if (other && strcmp (other, path) != 0 && g_file_test (other, G_FILE_TEST_EXISTS))
        {
          g_autofree char *msg = g_strdup_printf ("id: '%s' is already used by %s", file->id, rel_path (self, other));
          set_problem (self, path, 1, msg);
          return;
        }
    }

  Act *a = g_new0 (Act, 1);
  a->path = g_strdup (path);
  a->hash = g_steal_pointer (&hash);
  a->size = st->st_size;
  a->mtime = stat_mtime_ns (st);

  if (file->id && current)
    {
      a->kind = ACT_UPDATE;
      a->id = g_strdup (file->id);
      WspWrite *w = wsp_taskfile_diff (file, current);
      if (k && k->has_base)
        {
          digest_file (file, k->base, a->digest);
          a->has_digest = TRUE;
          if (w)
            w = keep_changed_fields (w, k->base, a->digest);
        }
      if (!w)
        {
          g_ptr_array_add (b->acts, a);   /* nothing to write: finish at once */
          return;
        }
      batch_submit (b, self, a, w);
    }
  else if (file->id && g_error_matches (lookup_error, WSP_ERROR, WSP_ERROR_GONE))
    {
      g_autofree char *msg = g_strdup_printf ("id: task '%s' was deleted; a deleted task does not come back",
                                              file->id);
      set_problem (self, path, 1, msg);
      act_free (a);
    }
  else
    {
      /* A new task: the file's own id (a file from another clone, or one a
       * person named) or a fresh one. */
      a->kind = ACT_CREATE;
      a->id = file->id ? g_strdup (file->id) : wsp_task_id_new (self->prefix);
      g_autofree char *canon = canonical_path (self, a->id);
      a->move = !file->id && strcmp (canon, path) != 0 && !g_file_test (canon, G_FILE_TEST_EXISTS);
      /* Claim the id now so a second file with it in this batch is refused. */
      batch_submit (b, self, a, wsp_taskfile_create_write (file, a->id));
    }
}

/* After the writes are durable: problems, index, renders and renames. */
static void
finish_act (WspMirror *self, Act *a)
{
  if (g_error_matches (a->error, WSP_ERROR, WSP_ERROR_BUSY))
    {
      /* Try the file again in the next round (a removal stays known, so
       * that its absence is seen again). */
      if (a->kind == ACT_DELETE)
        known_set (self, a->path, "", a->id, -1, -1);
      else
        known_remove (self, a->path);
      g_mutex_lock (&self->lock);
      g_hash_table_add (self->pending_paths, g_strdup (a->path));
      self->enqueued++;
      g_mutex_unlock (&self->lock);
      return;
    }
  if (a->error)
    {
      if (a->kind == ACT_DELETE)
        g_warning ("deleting task %s for removed file %s failed: %s", a->id, a->path, a->error->message);
      else
        set_problem (self, a->path, 1, a->error->message);
      return;
    }
  switch (a->kind)
    {
    case ACT_UPDATE:
      {
        clear_problem (self, a->path);
        Known *k = known_set (self, a->path, a->hash, a->id, a->size, a->mtime);
        if (a->has_digest)
          {
            memcpy (k->base, a->digest, sizeof k->base);
            k->has_base = TRUE;
          }
        /* Show the merged task (what the store holds now, which may include
         * changes made elsewhere meanwhile); unchanged bytes are not
         * rewritten. */
        render_task (self, a->id, NULL);
      }
      break;
    case ACT_CREATE:
      {
        clear_problem (self, a->path);
        g_autofree char *canon = canonical_path (self, a->id);
        g_autofree char *target = g_strdup (a->move ? canon : a->path);
        known_remove (self, a->path);
        known_set (self, target, "", a->id, -1, -1);
        render_task (self, a->id, a->path);
        if (a->move)
          {
            g_unlink (a->path);
            known_remove (self, a->path);
          }
      }
      break;
    case ACT_DELETE:
      break;
    }
}

/* Files gone: delete their tasks, unless too many went at once. */
static void
plan_removals (WspMirror *self, Batch *b, GPtrArray *removed)
{
  if (!removed->len)
    return;
  guint n_files = 0;
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, self->known);
  while (g_hash_table_iter_next (&it, NULL, &value))
    if (((Known *) value)->id)
      n_files++;
  n_files = MAX (n_files, removed->len);

  if (removed->len >= MASS_REMOVAL_MIN && removed->len > MASS_REMOVAL_SHARE * n_files)
    {
      g_autofree char *msg = g_strdup_printf (
        "%u of %u task files were removed at once (a branch switch?): no task was deleted. "
        "Run `wsp doctor --restore-files` to write them again, or `wsp doctor --apply-deletes` to delete "
        "their tasks", removed->len, n_files);
      g_warning ("%s", msg);
      g_mutex_lock (&self->lock);
      g_free (self->mass_removal);
      self->mass_removal = g_steal_pointer (&msg);
      g_ptr_array_set_size (self->mass_ids, 0);
      for (guint i = 0; i < removed->len; i++)
        {
          Known *k = g_hash_table_lookup (self->known, g_ptr_array_index (removed, i));
          if (k && k->id)
            g_ptr_array_add (self->mass_ids, g_strdup (k->id));
        }
      g_mutex_unlock (&self->lock);
      /* Forget the files so that they are written again on the next change,
       * but keep the tasks. */
      for (guint i = 0; i < removed->len; i++)
        known_remove (self, g_ptr_array_index (removed, i));
      return;
    }

  for (guint i = 0; i < removed->len; i++)
    {
      const char *path = g_ptr_array_index (removed, i);
      Known *k = g_hash_table_lookup (self->known, path);
      g_autofree char *id = k && k->id ? g_strdup (k->id) : NULL;
      known_remove (self, path);
      clear_problem (self, path);
      if (!id || !wsp_store_reader_task_live (self->reader, id))
        continue;
      /* Another file may hold the task now (a rename). */
      const char *other = g_hash_table_lookup (self->path_of_id, id);
      if (other && g_file_test (other, G_FILE_TEST_EXISTS))
        continue;
      Act *a = g_new0 (Act, 1);
      a->kind = ACT_DELETE;
      a->path = g_strdup (path);
      a->id = g_strdup (id);
      batch_submit (b, self, a, wsp_write_new (WSP_WRITE_DELETE, id));
    }
}

static void
process_paths (WspMirror *self, GPtrArray *paths)
{
  g_autoptr (GPtrArray) removed = g_ptr_array_new_with_free_func (g_free);
  Batch b;
  batch_init (&b);
  for (guint i = 0; i < paths->len && !stop_requested (self); i++)
    {
      const char *path = g_ptr_array_index (paths, i);
      if (!is_task_file (path))
        continue;
      struct stat st;
      if (stat (path, &st) != 0)
        {
          if (g_hash_table_contains (self->known, path))
            g_ptr_array_add (removed, g_strdup (path));
          else
            clear_problem (self, path);
          continue;
        }
      if (!S_ISREG (st.st_mode))
        continue;
      if (st.st_size > WSP_TASKFILE_MAX_BYTES)
        {
          set_problem (self, path, 1, "the file is larger than 1 MiB");
          continue;
        }
      g_autofree char *data = NULL;
      gsize len = 0;
      if (!g_file_get_contents (path, &data, &len, NULL))
        continue;   /* gone meanwhile: a later event says so */
      plan_file (self, &b, path, data, len, &st);
    }
  /* Removals wait to be judged together (see MASS_REMOVAL_SETTLE_MS). */
  for (guint i = 0; i < removed->len; i++)
    g_hash_table_add (self->held_removed, g_strdup (g_ptr_array_index (removed, i)));
  if (removed->len)
    self->held_until = g_get_monotonic_time () + MASS_REMOVAL_SETTLE_MS * 1000;
  batch_wait (&b, 0);
  for (guint i = 0; i < b.acts->len; i++)
    finish_act (self, g_ptr_array_index (b.acts, i));
  batch_clear (&b);
}

/* The removals held since the last quiet moment, as one change: files that
 * came back meanwhile (an editor's save, a checkout's rewrite) are not
 * removals any more. */
static void
judge_removals (WspMirror *self)
{
  g_autoptr (GPtrArray) removed = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, self->held_removed);
  while (g_hash_table_iter_next (&it, &key, NULL))
    {
      struct stat st;
      if (stat (key, &st) != 0 && g_hash_table_contains (self->known, key))
        g_ptr_array_add (removed, g_strdup (key));
    }
  g_hash_table_remove_all (self->held_removed);
  Batch b;
  batch_init (&b);
  plan_removals (self, &b, removed);
  batch_wait (&b, 0);
  for (guint i = 0; i < b.acts->len; i++)
    finish_act (self, g_ptr_array_index (b.acts, i));
  batch_clear (&b);
}

/* ---- reconcile ---------------------------------------------------------- */

/* Lists the task files below dir. readdir's d_type saves a stat per entry
 * (falling back to one when the file system does not fill it in). */
static void
scan_dir (WspMirror *self, const char *dir, GPtrArray *out)
{
  DIR *d = opendir (dir);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir (d)))
    {
      const char *name = e->d_name;
      if (name[0] == '.' || wsp_watcher_name_is_ignored (name))
        continue;
      g_autofree char *path = g_build_filename (dir, name, NULL);
      gboolean is_dir = e->d_type == DT_DIR;
      if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK)
        is_dir = g_file_test (path, G_FILE_TEST_IS_DIR);
      if (is_dir)
        scan_dir (self, path, out);
      else if (g_str_has_suffix (name, ".md"))
        g_ptr_array_add (out, g_steal_pointer (&path));
    }
  closedir (d);
}

/* Compares the whole tree with the index and the store. */
static void
reconcile (WspMirror *self)
{
  gint64 t0 = g_get_monotonic_time ();
  g_autoptr (GPtrArray) files = g_ptr_array_new_with_free_func (g_free);
  scan_dir (self, self->tasks_dir, files);
  g_autoptr (GHashTable) present = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GPtrArray) changed = g_ptr_array_new ();

  for (guint i = 0; i < files->len; i++)
    {
      const char *path = g_ptr_array_index (files, i);
      g_hash_table_add (present, (gpointer) path);
      Known *k = g_hash_table_lookup (self->known, path);
      struct stat st;
      if (k && stat (path, &st) == 0 && st.st_size == k->size && stat_mtime_ns (&st) == k->mtime)
        continue;   /* unchanged since we last saw it: the fast path */
      g_ptr_array_add (changed, (gpointer) path);
    }
  /* Known files that are gone were removed while we were away. */
  GHashTableIter it;
  gpointer key;
  g_autoptr (GPtrArray) gone = g_ptr_array_new_with_free_func (g_free);
  g_hash_table_iter_init (&it, self->known);
  while (g_hash_table_iter_next (&it, &key, NULL))
    if (!g_hash_table_contains (present, key))
      g_ptr_array_add (gone, g_strdup (key));
  for (guint i = 0; i < gone->len; i++)
    g_ptr_array_add (changed, g_ptr_array_index (gone, i));
  process_paths (self, changed);

  /* Live tasks without a file get one — except those of a blocked mass
   * removal, which wait for `wsp doctor --restore-files`. */
  g_autoptr (GHashTable) blocked = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_mutex_lock (&self->lock);
  for (guint i = 0; i < self->mass_ids->len; i++)
    g_hash_table_add (blocked, g_strdup (self->mass_ids->pdata[i]));
  g_mutex_unlock (&self->lock);
  g_autoptr (GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GError) error = NULL;
  if (!wsp_store_reader_live_ids (self->reader, ids, &error))
    g_warning ("listing tasks failed: %s", error->message);
  for (guint i = 0; i < ids->len && !stop_requested (self); i++)
    {
      const char *id = g_ptr_array_index (ids, i);
      const char *path = g_hash_table_lookup (self->path_of_id, id);
      if ((!path || !g_hash_table_contains (present, path)) && !g_hash_table_contains (blocked, id))
        render_task (self, id, NULL);
    }
  index_save (self);
  g_autofree char *files_s = g_strdup_printf ("%u", files->len);
  g_autofree char *changed_s = g_strdup_printf ("%u", changed->len);
  g_autofree char *ms_s = g_strdup_printf ("%.1f", (double) (g_get_monotonic_time () - t0) / 1000.0);
  g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_INFO, "FILES", files_s, "CHANGED", changed_s, "MS", ms_s,
                    "MESSAGE", "reconciled task files");
}

/* ---- the worker -------------------------------------------------------- */

static GPtrArray *
take_set (GHashTable *set)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, set);
  while (g_hash_table_iter_next (&it, &key, NULL))
    {
      g_ptr_array_add (out, key);
      g_hash_table_iter_steal (&it);
    }
  return out;
}

static gpointer
worker_thread (gpointer data)
{
  WspMirror *self = data;
  g_autoptr (GError) error = NULL;

  self->reader = wsp_store_reader_open (self->db_path, &error);
  if (!self->reader)
    {
      g_critical ("the file mirror cannot read the store: %s", error->message);
      g_mutex_lock (&self->lock);
      self->done = G_MAXUINT64;   /* nobody waits on a dead worker */
      g_cond_broadcast (&self->cond);
      g_mutex_unlock (&self->lock);
      return NULL;
    }
  g_mutex_lock (&self->lock);
  self->round_target = self->enqueued;   /* the start-up reconcile counts as one */
  g_mutex_unlock (&self->lock);
  index_load (self);
  reconcile (self);

  for (;;)
    {
      g_mutex_lock (&self->lock);
      if (!g_hash_table_size (self->held_removed))   /* held removals are not done yet */
        {
          self->done = self->round_target;
          g_cond_broadcast (&self->cond);
        }
      gboolean judge = FALSE;
      while (!self->stopping && !self->pending_rescan && !g_hash_table_size (self->pending_paths)
             && !g_hash_table_size (self->pending_deletes))
        {
          gint64 now = g_get_monotonic_time ();
          guint n_ids = g_hash_table_size (self->pending_ids);
          gboolean held = bulk_held (self, n_ids, self->ids_since, now);
          if (n_ids && !held)
            break;
          gint64 until = held ? now + BULK_POLL_MS * G_TIME_SPAN_MILLISECOND : G_MAXINT64;
          if (g_hash_table_size (self->held_removed))
            {
              if (now >= self->held_until)
                {
                  judge = TRUE;   /* quiet for MASS_REMOVAL_SETTLE_MS */
                  break;
                }
              until = MIN (until, self->held_until);
            }
          if (until == G_MAXINT64)
            g_cond_wait (&self->cond, &self->lock);
          else
            g_cond_wait_until (&self->cond, &self->lock, until);
        }
      if (self->stopping)
        {
          g_mutex_unlock (&self->lock);
          break;
        }
      if (judge)
        {
          g_mutex_unlock (&self->lock);
          judge_removals (self);
          if (self->index_dirty)
            index_save (self);
          continue;
        }
      self->round_target = self->enqueued;
      gboolean rescan = self->pending_rescan;
      self->pending_rescan = FALSE;
      g_autoptr (GPtrArray) paths = take_set (self->pending_paths);
      gint64 ids_since = self->ids_since;
      g_autoptr (GPtrArray) ids = take_set (self->pending_ids);
      g_autoptr (GPtrArray) deletes = take_set (self->pending_deletes);
      g_mutex_unlock (&self->lock);

      if (deletes->len)
        {
          Batch b;
          batch_init (&b);
          for (guint i = 0; i < deletes->len; i++)
            {
              Act *a = g_new0 (Act, 1);
              a->kind = ACT_DELETE;
              a->id = g_strdup (g_ptr_array_index (deletes, i));
              a->path = canonical_path (self, a->id);
              batch_submit (&b, self, a, wsp_write_new (WSP_WRITE_DELETE, a->id));
            }
          batch_wait (&b, 0);
          for (guint i = 0; i < b.acts->len; i++)
            {
              Act *a = g_ptr_array_index (b.acts, i);
              if (a->error && !g_error_matches (a->error, WSP_ERROR, WSP_ERROR_GONE))
                g_warning ("deleting task %s failed: %s", a->id, a->error->message);
            }
          batch_clear (&b);
        }

      if (rescan)
        reconcile (self);
      gint64 t_start = g_get_monotonic_time ();
      process_paths (self, paths);
      gint64 t_paths = g_get_monotonic_time ();
      guint rendered = 0;
      for (guint i = 0; i < ids->len && !stop_requested (self); i++)
        {
          /* A catch-up that resumed gets the CPU back (see BULK_RENDER_MIN). */
          if (i % 64 == 0 && ids->len - i >= BULK_RENDER_MIN)
            {
              g_mutex_lock (&self->lock);
              gboolean held = bulk_held (self, ids->len - i, ids_since, g_get_monotonic_time ());
              if (held)
                pending_ids_add (self, (const char *const *) ids->pdata + i, ids->len - i, ids_since);
              g_mutex_unlock (&self->lock);
              if (held)
                break;
            }
          render_task (self, g_ptr_array_index (ids, i), NULL);
          rendered++;
        }
      if (paths->len || ids->len)
        g_debug ("round: %u paths in %.1f ms, %u of %u tasks rendered in %.1f ms",
                 paths->len, (t_paths - t_start) / 1000.0, rendered, ids->len,
                 (g_get_monotonic_time () - t_paths) / 1000.0);
      if (self->index_dirty && (paths->len || ids->len))
        index_save (self);
    }
  index_save (self);
  g_clear_pointer (&self->reader, wsp_store_reader_free);
  return NULL;
}

/* ---- hand-over from other threads -------------------------------------- */

/* Main context: the watcher's batch. */
static void
on_watch (const WspWatchBatch *batch, gpointer user_data)
{
  WspMirror *self = user_data;
  g_mutex_lock (&self->lock);
  for (guint i = 0; i < batch->changed_paths->len; i++)
    g_hash_table_add (self->pending_paths, g_strdup (g_ptr_array_index (batch->changed_paths, i)));
  if (batch->rescan)
    self->pending_rescan = TRUE;
  self->enqueued++;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}

/* Store writer thread: tasks changed. */
static void
on_store_changed (const char *const *task_ids, guint n_tasks, const WspClock *clock, gpointer user_data)
{
  WspMirror *self = user_data;
  g_mutex_lock (&self->lock);
  pending_ids_add (self, task_ids, n_tasks, g_get_monotonic_time ());
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
}

/* ---- public ------------------------------------------------------------ */

WspMirror *
wsp_mirror_start (const WspMirrorOptions *opts, GError **error)
{
  g_autoptr (WspMirror) self = g_new0 (WspMirror, 1);
  self->tasks_dir = g_canonicalize_filename (opts->tasks_dir, NULL);
  self->index_path = g_strdup (opts->index_path);
  self->db_path = g_strdup (opts->db_path);
  self->prefix = g_strdup (opts->task_prefix ? opts->task_prefix : "ws");
  self->statuses = g_strdupv ((char **) opts->statuses);
  self->store = opts->store;
  g_mutex_init (&self->lock);
  g_cond_init (&self->cond);
  self->pending_paths = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->pending_ids = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->pending_deletes = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->mass_ids = g_ptr_array_new_with_free_func (g_free);
  self->held_removed = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->problems = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) problem_free);
  self->known = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) known_free);
  self->path_of_id = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->enqueued = 1;   /* the start-up reconcile */

  if (g_mkdir_with_parents (self->tasks_dir, 0755) != 0)
    {
      int saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), "creating %s failed: %s",
                   self->tasks_dir, g_strerror (saved));
      return NULL;
    }
  /* Watch first, then scan (in the worker), so nothing falls between. */
  self->watcher = wsp_watcher_new (self->tasks_dir, opts->debounce_ms, on_watch, self, error);
  if (!self->watcher)
    return NULL;
  wsp_store_add_listener (self->store, on_store_changed, self);
  self->thread = g_thread_try_new ("wsp-mirror", worker_thread, self, error);
  if (!self->thread)
    {
      wsp_store_remove_listener (self->store, on_store_changed, self);
      return NULL;
    }
  return g_steal_pointer (&self);
}

void
wsp_mirror_stop (WspMirror *self)
{
  if (!self)
    return;
  if (self->watcher)
    wsp_watcher_stop (self->watcher);
  if (self->store)
    wsp_store_remove_listener (self->store, on_store_changed, self);
  g_atomic_int_set (&self->stop_flag, 1);
  g_mutex_lock (&self->lock);
  self->stopping = TRUE;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  if (self->thread)
    {
      g_thread_join (self->thread);
      self->thread = NULL;
    }
}

void
wsp_mirror_free (WspMirror *self)
{
  if (!self)
    return;
  wsp_mirror_stop (self);
  g_clear_pointer (&self->watcher, wsp_watcher_free);
  g_hash_table_unref (self->pending_paths);
  g_hash_table_unref (self->pending_ids);
  g_hash_table_unref (self->pending_deletes);
  g_ptr_array_unref (self->mass_ids);
  g_hash_table_unref (self->held_removed);
  g_hash_table_unref (self->problems);
  g_hash_table_unref (self->path_of_id);
  g_hash_table_unref (self->known);
  g_mutex_clear (&self->lock);
  g_cond_clear (&self->cond);
  g_free (self->mass_removal);
  g_free (self->tasks_dir);
  g_free (self->index_path);
  g_free (self->db_path);
  g_free (self->prefix);
  g_strfreev (self->statuses);
  g_free (self);
}

static int
cmp_str (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

void
wsp_mirror_problems_json (WspMirror *self, GString *out)
{
  g_string_append (out, "{\"problems\":[");
  g_mutex_lock (&self->lock);
  g_autoptr (GPtrArray) keys = g_ptr_array_new ();
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, self->problems);
  while (g_hash_table_iter_next (&it, &key, NULL))
    g_ptr_array_add (keys, key);
  g_ptr_array_sort (keys, cmp_str);
  gboolean first = TRUE;
  if (self->mass_removal)
    {
      g_string_append (out, "{\"file\":\"tasks/\",\"line\":0,\"kind\":\"mass_removal\",\"reason\":");
      wsp_json_append_string (out, self->mass_removal, -1);
      g_string_append (out, ",\"tasks\":[");
      for (guint i = 0; i < self->mass_ids->len; i++)
        {
          if (i)
            g_string_append_c (out, ',');
          wsp_json_append_string (out, self->mass_ids->pdata[i], -1);
        }
      g_string_append (out, "]}");
      first = FALSE;
    }
  for (guint i = 0; i < keys->len; i++)
    {
      Problem *p = g_hash_table_lookup (self->problems, keys->pdata[i]);
      g_autofree char *file = g_strconcat ("tasks/", (const char *) keys->pdata[i], NULL);
      if (!first)
        g_string_append_c (out, ',');
      first = FALSE;
      g_string_append (out, "{\"file\":");
      wsp_json_append_string (out, file, -1);
      g_string_append_printf (out, ",\"line\":%u,\"kind\":\"parse\",\"reason\":", p->line);
      wsp_json_append_string (out, p->reason, -1);
      g_string_append_c (out, '}');
    }
  g_mutex_unlock (&self->lock);
  g_string_append (out, "]}");
}

void
wsp_mirror_flush (WspMirror *self)
{
  g_mutex_lock (&self->lock);
  guint64 target = self->enqueued;
  while (self->done < target && self->thread && !self->stopping)
    g_cond_wait (&self->cond, &self->lock);
  g_mutex_unlock (&self->lock);
}

gboolean
wsp_mirror_resolve_mass_removal (WspMirror *self, WspMassRemovalAction action, guint *n_tasks, GError **error)
{
  g_mutex_lock (&self->lock);
  if (!self->mass_removal)
    {
      g_mutex_unlock (&self->lock);
      g_set_error (error, WSP_ERROR, WSP_ERROR_NOT_FOUND, "no mass removal is waiting");
      return FALSE;
    }
  for (guint i = 0; i < self->mass_ids->len; i++)
    g_hash_table_add (action == WSP_MASS_REMOVAL_DELETE ? self->pending_deletes : self->pending_ids,
                      g_strdup (self->mass_ids->pdata[i]));
  if (n_tasks)
    *n_tasks = self->mass_ids->len;
  g_ptr_array_set_size (self->mass_ids, 0);
  g_clear_pointer (&self->mass_removal, g_free);
  self->enqueued++;
  g_cond_broadcast (&self->cond);
  g_mutex_unlock (&self->lock);
  return TRUE;
}
