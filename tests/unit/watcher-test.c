/* watcher-test.c — pins src/workspace/wsp-watcher.c: which file changes
 * are reported (atomic rename saves, in-place saves, deletes, files in a
 * deep tree made at once), what is ignored (swap/backup files, dotfiles,
 * .wsp/), batching (debounce coalesces, a flood arrives in few batches with
 * every path, a continuous stream is cut at the max delay) and queue
 * overflow reported as a rescan.
 *
 * No sleeps as synchronisation: each test spins its own GMainContext until
 * a condition holds or a generous timeout passes.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include "workspace/wsp-workspace.h"
#include <glib/gstdio.h>
#include <gio/gio.h>

#include "workspace/wsp-watcher.h"

#define TIMEOUT_MS 5000

typedef struct {
  char         *dir;        /* temporary root */
  GMainContext *ctx;
  WspWatcher   *watcher;
  GPtrArray    *batches;    /* GPtrArray* of char* (a copy of each batch's paths) */
  GHashTable   *seen;       /* path → number of batches it appeared in */
  guint         rescans;
  gboolean      free_in_callback;
} Fixture;

static void
on_batch (const WspWatchBatch *batch, gpointer user_data)
{
  Fixture *f = user_data;
  GPtrArray *copy = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < batch->changed_paths->len; i++)
    {
      const char *p = batch->changed_paths->pdata[i];
      g_ptr_array_add (copy, g_strdup (p));
      guint n = GPOINTER_TO_UINT (g_hash_table_lookup (f->seen, p));
      g_hash_table_replace (f->seen, g_strdup (p), GUINT_TO_POINTER (n + 1));
    }
  g_ptr_array_add (f->batches, copy);
  if (batch->rescan)
    f->rescans++;
  if (f->free_in_callback)
    g_clear_pointer (&f->watcher, wsp_watcher_free);
}


static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  f->dir = g_dir_make_tmp ("wsp-watcher-XXXXXX", &error);
  g_assert_no_error (error);
  f->ctx = g_main_context_new ();
  g_main_context_push_thread_default (f->ctx);
  f->batches = g_ptr_array_new_with_free_func ((GDestroyNotify) g_ptr_array_unref);
  f->seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  f->watcher = wsp_watcher_new (f->dir, 25, on_batch, f, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->watcher);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  g_clear_pointer (&f->watcher, wsp_watcher_free);
  while (g_main_context_iteration (f->ctx, FALSE))
    ;
  g_main_context_pop_thread_default (f->ctx);
  g_main_context_unref (f->ctx);
  g_ptr_array_unref (f->batches);
  g_hash_table_unref (f->seen);
  wsp_remove_tree (f->dir);
  g_free (f->dir);
}

static gboolean
on_timeout (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

typedef gboolean (*Cond) (Fixture *f, gconstpointer arg);

/* Spins the fixture's context until cond holds; FALSE on timeout. */
static gboolean
spin_until (Fixture *f, Cond cond, gconstpointer arg, guint timeout_ms)
{
  gboolean timed_out = FALSE;
  GSource *t = g_timeout_source_new (timeout_ms);
  g_source_set_callback (t, on_timeout, &timed_out, NULL);
  g_source_attach (t, f->ctx);
  while (!cond (f, arg) && !timed_out)
    g_main_context_iteration (f->ctx, TRUE);
  g_source_destroy (t);
  g_source_unref (t);
  return cond (f, arg);
}

static gboolean
cond_seen (Fixture *f, gconstpointer path)
{
  return g_hash_table_contains (f->seen, path);
}

static gboolean
cond_batches (Fixture *f, gconstpointer n)
{
  return f->batches->len >= GPOINTER_TO_UINT (n);
}

static gboolean
cond_rescan (Fixture *f, gconstpointer unused)
{
  return f->rescans > 0;
}

static void
wait_seen (Fixture *f, const char *path)
{
  if (!spin_until (f, cond_seen, path, TIMEOUT_MS))
    g_error ("no batch reported %s", path);
}

static char *
path_in (Fixture *f, const char *rel)
{
  return g_build_filename (f->dir, rel, NULL);
}

/* Writes in place: open(O_TRUNC), write, close — no rename. */
static void
write_in_place (const char *path, const char *text)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (write (fd, text, strlen (text)), ==, (gssize) strlen (text));
  close (fd);
}

static void
test_atomic_rename (Fixture *f, gconstpointer data)
{
  g_autofree char *tmp = path_in (f, "ws-aaaaaaaaaa.md.tmp-Ab12Cd");
  g_autofree char *final = path_in (f, "ws-aaaaaaaaaa.md");
  write_in_place (tmp, "---\ntitle: x\n---\n");
  g_assert_cmpint (rename (tmp, final), ==, 0);
  wait_seen (f, final);
  g_assert_false (g_hash_table_contains (f->seen, tmp));
}

static void
test_in_place (Fixture *f, gconstpointer data)
{
  g_autofree char *p = path_in (f, "a.md");
  write_in_place (p, "one");
  wait_seen (f, p);
  g_hash_table_remove_all (f->seen);
  write_in_place (p, "two");
  wait_seen (f, p);
}

static void
test_delete (Fixture *f, gconstpointer data)
{
  g_autofree char *p = path_in (f, "gone.md");
  write_in_place (p, "x");
  wait_seen (f, p);
  g_hash_table_remove_all (f->seen);
  g_assert_cmpint (g_unlink (p), ==, 0);
  wait_seen (f, p);
  g_assert_false (g_file_test (p, G_FILE_TEST_EXISTS));

  /* Renamed away is reported under its old name too. */
  g_autofree char *a = path_in (f, "a.md");
  g_autofree char *b = path_in (f, "b.md");
  write_in_place (a, "x");
  wait_seen (f, a);
  g_hash_table_remove_all (f->seen);
  g_assert_cmpint (rename (a, b), ==, 0);
  wait_seen (f, b);
  wait_seen (f, a);
}

static void
test_deep_tree (Fixture *f, gconstpointer data)
{
  /* Made at once, before the watcher can add watches level by level. */
  g_autofree char *deep = path_in (f, "a/b/c/d/e");
  g_assert_cmpint (g_mkdir_with_parents (deep, 0755), ==, 0);
  static const char *const files[] = { "a/1.md", "a/b/2.md", "a/b/c/3.md", "a/b/c/d/4.md", "a/b/c/d/e/5.md" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *p = path_in (f, files[i]);
      write_in_place (p, "x");
    }
  for (guint i = 0; i < G_N_ELEMENTS (files); i++)
    {
      g_autofree char *p = path_in (f, files[i]);
      wait_seen (f, p);
    }
  /* The new directories are watched now. */
  g_autofree char *later = path_in (f, "a/b/c/d/e/later.md");
  write_in_place (later, "x");
  wait_seen (f, later);
  g_assert_cmpuint (wsp_watcher_n_watches (f->watcher), ==, 6);

  /* A directory moved in from outside the tree is listed too. */
  g_autofree char *outside = g_strconcat (f->dir, "-outside", NULL);
  g_autofree char *outside_sub = g_build_filename (outside, "sub", NULL);
  g_assert_cmpint (g_mkdir_with_parents (outside_sub, 0755), ==, 0);
  g_autofree char *of = g_build_filename (outside_sub, "moved.md", NULL);
  write_in_place (of, "x");
  g_autofree char *dest = path_in (f, "moved-in");
  g_assert_cmpint (rename (outside, dest), ==, 0);
  g_autofree char *moved = path_in (f, "moved-in/sub/moved.md");
  wait_seen (f, moved);

  /* A directory removed from the tree asks for a rescan. */
  wsp_remove_tree (dest);
  g_assert_true (spin_until (f, cond_rescan, NULL, TIMEOUT_MS));
}

static void
test_ignored (Fixture *f, gconstpointer data)
{
  static const char *const ignored[] = {
    ".a.md.swp", "a.md.swp", "a.md.swx", "a.md.swo", "a.md~", "4913", ".#a.md", "#a.md#",
    "a.md.tmp", "a.md.tmp-XyZ123", ".hidden",
  };
  g_autofree char *wsp = path_in (f, ".wsp");
  g_assert_cmpint (g_mkdir (wsp, 0755), ==, 0);
  g_autofree char *db = path_in (f, ".wsp/state.db");
  write_in_place (db, "x");
  g_autofree char *git = path_in (f, ".git/objects");
  g_assert_cmpint (g_mkdir_with_parents (git, 0755), ==, 0);
  for (guint i = 0; i < G_N_ELEMENTS (ignored); i++)
    {
      g_autofree char *p = path_in (f, ignored[i]);
      write_in_place (p, "x");
      g_assert_true (wsp_watcher_name_is_ignored (ignored[i]));
    }
  g_autofree char *sentinel = path_in (f, "sentinel.md");
  write_in_place (sentinel, "x");
  wait_seen (f, sentinel);
  g_assert_cmpuint (g_hash_table_size (f->seen), ==, 1);
  /* .wsp and .git are not watched at all. */
  g_assert_cmpuint (wsp_watcher_n_watches (f->watcher), ==, 1);
  g_assert_false (wsp_watcher_name_is_ignored ("ws-k3jrxaq2mz.md"));
  g_assert_false (wsp_watcher_name_is_ignored ("notes.txt"));
}

static gboolean
cond_all_seen (Fixture *f, gconstpointer paths)
{
  const GPtrArray *a = paths;
  for (guint i = 0; i < a->len; i++)
    if (!g_hash_table_contains (f->seen, a->pdata[i]))
      return FALSE;
  return TRUE;
}

static void
test_flood (Fixture *f, gconstpointer data)
{
  g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < 2000; i++)
    {
      char *p = g_strdup_printf ("%s/ws-%06u.md", f->dir, i);
      write_in_place (p, "---\ntitle: x\n---\n");
      g_ptr_array_add (paths, p);
    }
  g_assert_true (spin_until (f, cond_all_seen, paths, TIMEOUT_MS * 4));
  g_test_message ("2000 files in %u batches", f->batches->len);
  g_assert_cmpuint (f->batches->len, <=, 10);
  g_assert_cmpuint (g_hash_table_size (f->seen), ==, 2000);
  g_assert_cmpuint (f->rescans, ==, 0);
  /* Each path once per batch, and within a batch in order of last change. */
  GPtrArray *first = f->batches->pdata[0];
  for (guint i = 1; i < first->len; i++)
    g_assert_cmpint (strcmp (first->pdata[i - 1], first->pdata[i]), <, 0);
}

static void
test_debounce_coalesces (Fixture *f, gconstpointer data)
{
  g_autofree char *p = path_in (f, "busy.md");
  g_autofree char *q = path_in (f, "other.md");
  for (int i = 0; i < 20; i++)
    write_in_place (p, i % 2 ? "odd" : "even");
  write_in_place (q, "x");
  write_in_place (p, "last");
  wait_seen (f, p);
  wait_seen (f, q);
  g_assert_cmpuint (f->batches->len, ==, 1);
  GPtrArray *b = f->batches->pdata[0];
  g_assert_cmpuint (b->len, ==, 2);
  /* Ordered by last change: other.md, then busy.md. */
  g_assert_cmpstr (b->pdata[0], ==, q);
  g_assert_cmpstr (b->pdata[1], ==, p);
}

typedef struct {
  Fixture *f;
  char    *path;
  guint    writes;
} Stream;

static gboolean
stream_tick (gpointer data)
{
  Stream *s = data;
  write_in_place (s->path, "tick");
  s->writes++;
  return s->writes < 200 ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static void
test_max_delay (Fixture *f, gconstpointer data)
{
  /* A write every 5 ms never leaves 25 ms of quiet: batches come at the
   * 250 ms max delay instead, while the stream goes on. */
  Stream s = { f, path_in (f, "stream.md"), 0 };
  GSource *t = g_timeout_source_new (5);
  g_source_set_callback (t, stream_tick, &s, NULL);
  g_source_attach (t, f->ctx);
  g_assert_true (spin_until (f, cond_batches, GUINT_TO_POINTER (1), TIMEOUT_MS));
  g_assert_cmpuint (s.writes, <, 200);
  g_source_destroy (t);
  g_source_unref (t);
  g_free (s.path);
}

static void
test_overflow_rescan (Fixture *f, gconstpointer data)
{
  /* Alternating writes are not merged by the kernel: well past the
   * default 16384-event queue before the loop reads anything. */
  g_autofree char *a = path_in (f, "a.md");
  g_autofree char *b = path_in (f, "b.md");
  for (int i = 0; i < 12000; i++)
    {
      write_in_place (a, "a");
      write_in_place (b, "b");
    }
  g_assert_true (spin_until (f, cond_rescan, NULL, TIMEOUT_MS));
}

static void
test_free_in_callback (Fixture *f, gconstpointer data)
{
  f->free_in_callback = TRUE;
  g_autofree char *p = path_in (f, "x.md");
  write_in_place (p, "x");
  wait_seen (f, p);
  g_assert_null (f->watcher);
  /* Nothing fires afterwards. */
  write_in_place (p, "y");
  gboolean timed_out = FALSE;
  GSource *t = g_timeout_source_new (100);
  g_source_set_callback (t, on_timeout, &timed_out, NULL);
  g_source_attach (t, f->ctx);
  while (!timed_out)
    g_main_context_iteration (f->ctx, TRUE);
  g_source_unref (t);
  g_assert_cmpuint (f->batches->len, ==, 1);
}

static void
test_stop_idempotent (Fixture *f, gconstpointer data)
{
  wsp_watcher_stop (f->watcher);
  wsp_watcher_stop (f->watcher);
  g_assert_cmpuint (wsp_watcher_n_watches (f->watcher), ==, 0);
  wsp_watcher_free (NULL);
}

static void
test_bad_root (void)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (WspWatcher) w = wsp_watcher_new ("/nonexistent/wsp-watcher-test", 0, on_batch, NULL, &error);
  g_assert_null (w);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(path, fn) g_test_add (path, Fixture, NULL, fixture_set_up, fn, fixture_tear_down)
  ADD ("/watcher/atomic-rename-save", test_atomic_rename);
  ADD ("/watcher/in-place-save", test_in_place);
  ADD ("/watcher/delete-and-rename-away", test_delete);
  ADD ("/watcher/deep-tree-made-at-once", test_deep_tree);
  ADD ("/watcher/swap-backup-dotfiles-ignored", test_ignored);
  ADD ("/watcher/flood-2000-files-few-batches", test_flood);
  ADD ("/watcher/debounce-coalesces", test_debounce_coalesces);
  ADD ("/watcher/max-delay-cuts-a-stream", test_max_delay);
  ADD ("/watcher/overflow-asks-rescan", test_overflow_rescan);
  ADD ("/watcher/free-in-callback", test_free_in_callback);
  ADD ("/watcher/stop-idempotent", test_stop_idempotent);
#undef ADD
  g_test_add_func ("/watcher/bad-root", test_bad_root);
  return g_test_run ();
}
