/* search-bench.c — search and ready figures for `make bench` (SPEC 10),
 * measured on the store's reader (no HTTP).
 *
 *   search-bench [--tasks N] [--edges M] [--queries Q] [--db PATH]
 *
 * Builds a store through the public write path (wsp_store_submit, pipelined
 * up to the queue bound): N tasks (default 100,000) with a 6-word title and
 * a ~300-word body drawn from a Zipf vocabulary (s = 1, 30,000 synthetic
 * words), 0–2 of 20 labels, a status (60% todo, 15% in_progress, 25%
 * done), and M dependency edges (default 50,000) from a task to random
 * earlier ones (dep.add at creation). With --db PATH an existing store at
 * PATH is reused as it is (delete it to rebuild); otherwise a temporary one
 * is built and removed.
 *
 * Then, Q times each (default 300), on one reader, top 20 ranked:
 *   rare     a word of Zipf rank 20,000–30,000 (in ~0.1% of tasks)
 *   common   a word of rank 1–3 (in every task)
 *   and      two words, ranks 100–1,000 and 1,000–5,000
 *   ready    the list with ready=true (limit 100)
 *   blocked  the list with blocked=true (limit 100, with blocked_by)
 * and prints `bench: search.p50_ms.rare VALUE ms` … (stdout); progress and
 * the match counts go to stderr.
 */
#include "store/wsp-store.h"
#include "crdt/wsp-hlc.h"

#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VOCAB 30000

typedef struct {
  GMutex  mutex;
  GCond   cond;
  guint   in_flight;
  guint   failed;
} Pipe;

static void
on_done (const WspWriteResult *r, gpointer data)
{
  Pipe *p = data;
  g_mutex_lock (&p->mutex);
  p->in_flight--;
  if (r->error)
    {
      if (p->failed++ == 0)
        fprintf (stderr, "search-bench: write failed: %s\n", r->error->message);
    }
  g_cond_signal (&p->cond);
  g_mutex_unlock (&p->mutex);
}

/* ---- vocabulary -------------------------------------------------------- */

typedef struct {
  char   **words;   /* VOCAB, by rank (0 = most frequent) */
  double  *cdf;     /* VOCAB */
} Vocab;

static void
vocab_init (Vocab *v, GRand *rng)
{
  static const char *const on[] = { "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z",
                                    "br", "st", "tr", "pl", "gr", "sh", "ch", "th" };
  static const char *const nu[] = { "a", "e", "i", "o", "u", "ai", "ou", "ea" };
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  v->words = g_new0 (char *, VOCAB);
  v->cdf = g_new0 (double, VOCAB);
  for (guint i = 0; i < VOCAB;)
    {
      GString *w = g_string_new (NULL);
      guint syl = (guint) g_rand_int_range (rng, 2, 5);
      for (guint s = 0; s < syl; s++)
        {
          g_string_append (w, on[g_rand_int_range (rng, 0, G_N_ELEMENTS (on))]);
          g_string_append (w, nu[g_rand_int_range (rng, 0, G_N_ELEMENTS (nu))]);
        }
      if (g_rand_boolean (rng))
        g_string_append (w, on[g_rand_int_range (rng, 0, 16)]);
      if (g_hash_table_contains (seen, w->str) || g_str_equal (w->str, "and") || g_str_equal (w->str, "or")
          || g_str_equal (w->str, "not"))
        {
          g_string_free (w, TRUE);
          continue;
        }
      v->words[i] = g_string_free (w, FALSE);
      g_hash_table_add (seen, v->words[i]);
      i++;
    }
  double sum = 0;
  for (guint i = 0; i < VOCAB; i++)
    sum += 1.0 / (i + 1);
  double acc = 0;
  for (guint i = 0; i < VOCAB; i++)
    {
      acc += 1.0 / (i + 1) / sum;
      v->cdf[i] = acc;
    }
}

static void
vocab_clear (Vocab *v)
{
  for (guint i = 0; i < VOCAB; i++)
    g_free (v->words[i]);
  g_free (v->words);
  g_free (v->cdf);
}

static const char *
vocab_draw (const Vocab *v, GRand *rng)
{
  double x = g_rand_double (rng);
  guint lo = 0, hi = VOCAB - 1;
  while (lo < hi)
    {
      guint mid = (lo + hi) / 2;
      if (v->cdf[mid] < x)
        lo = mid + 1;
      else
        hi = mid;
    }
  return v->words[lo];
}

/* ---- fill -------------------------------------------------------------- */

static char *
task_id (guint i)
{
  return g_strdup_printf ("sb-%010u", i);
}

static WspWrite *
make_task (const Vocab *v, GRand *rng, guint i, guint n, guint edges)
{
  static const char *const labels[] = {
    "bug", "feature", "ui", "backend", "sync", "docs", "perf", "security", "infra", "cli",
    "api", "search", "board", "p2p", "store", "crdt", "release", "chore", "test", "design",
  };
  g_autofree char *id = task_id (i);
  WspWrite *w = wsp_write_new (WSP_WRITE_CREATE, id);
  GString *s = g_string_new (NULL);
  for (guint k = 0; k < 6; k++)
    g_string_append_printf (s, "%s%s", k ? " " : "", vocab_draw (v, rng));
  WspValue val = wsp_value_str (s->str);
  wsp_write_set_field (w, WSP_FIELD_TITLE, &val);
  g_string_truncate (s, 0);
  guint words = (guint) g_rand_int_range (rng, 250, 351);
  for (guint k = 0; k < words; k++)
    g_string_append_printf (s, "%s%s", k == 0 ? "" : (k % 15 == 0 ? ".\n" : " "), vocab_draw (v, rng));
  val = wsp_value_str (s->str);
  wsp_write_set_field (w, WSP_FIELD_BODY, &val);
  g_string_free (s, TRUE);

  guint r = (guint) g_rand_int_range (rng, 0, 100);
  val = wsp_value_str (r < 60 ? "todo" : r < 75 ? "in_progress" : "done");
  wsp_write_set_field (w, WSP_FIELD_STATUS, &val);
  val = wsp_value_int (g_rand_int_range (rng, 0, 5));
  wsp_write_set_field (w, WSP_FIELD_PRIORITY, &val);
  val = wsp_value_float (g_rand_double (rng));
  wsp_write_set_field (w, WSP_FIELD_POSITION, &val);

  guint nl = (guint) g_rand_int_range (rng, 0, 3);
  if (nl)
    {
      w->labels_add = g_ptr_array_new_with_free_func (g_free);
      for (guint k = 0; k < nl; k++)
        g_ptr_array_add (w->labels_add, g_strdup (labels[g_rand_int_range (rng, 0, 20)]));
    }
  /* Spread the edges evenly: task i gets floor(M(i+1)/N) - floor(Mi/N). */
  guint64 nd = (guint64) edges * (i + 1) / n - (guint64) edges * i / n;
  if (nd && i > 0)
    {
      w->deps_add = g_ptr_array_new_with_free_func (g_free);
      for (guint64 k = 0; k < nd; k++)
        g_ptr_array_add (w->deps_add, task_id ((guint) g_rand_int_range (rng, 0, (gint32) i)));
    }
  return w;
}

static gboolean
fill (const char *db, guint n, guint edges, const Vocab *v)
{
  g_autoptr (GError) error = NULL;
  WspIdentity id;
  wsp_identity_generate (&id);
  WspStoreOptions opts = { db, "benchbenchbenchbenchbenchb", &id, 4096 };
  g_autoptr (WspStore) store = wsp_store_open (&opts, &error);
  if (!store)
    {
      fprintf (stderr, "search-bench: %s\n", error->message);
      return FALSE;
    }
  g_autoptr (GRand) rng = g_rand_new_with_seed (1234);
  Pipe p = { 0 };
  g_mutex_init (&p.mutex);
  g_cond_init (&p.cond);
  gint64 t0 = g_get_monotonic_time ();
  for (guint i = 0; i < n; i++)
    {
      g_mutex_lock (&p.mutex);
      while (p.in_flight >= 2000)
        g_cond_wait (&p.cond, &p.mutex);
      p.in_flight++;
      g_mutex_unlock (&p.mutex);
      WspWrite *w = make_task (v, rng, i, n, edges);
      /* The window stays below the queue bound, so BUSY cannot happen. */
      if (!wsp_store_submit (store, w, on_done, &p, &error))
        {
          fprintf (stderr, "search-bench: %s\n", error->message);
          return FALSE;
        }
      if (i % 20000 == 19999)
        fprintf (stderr, "search-bench: %u tasks queued, %.1f s\n", i + 1,
                 (double) (g_get_monotonic_time () - t0) / 1e6);
    }
  g_mutex_lock (&p.mutex);
  while (p.in_flight)
    g_cond_wait (&p.cond, &p.mutex);
  g_mutex_unlock (&p.mutex);
  fprintf (stderr, "search-bench: %u tasks, %u edges written in %.1f s (%u failed)\n", n, edges,
           (double) (g_get_monotonic_time () - t0) / 1e6, p.failed);
  g_mutex_clear (&p.mutex);
  g_cond_clear (&p.cond);
  return p.failed == 0;
}

/* ---- timing ------------------------------------------------------------ */

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
percentile (GArray *ms, double p)
{
  qsort (ms->data, ms->len, sizeof (double), cmp_double);
  guint i = (guint) ceil (p * ms->len) - 1;
  return g_array_index (ms, double, MIN (i, ms->len - 1));
}

/* Runs every query of `queries` in turn, q times in all; returns timings. */
static GArray *
time_search (WspStoreReader *r, GPtrArray *queries, guint q, const char *what)
{
  GArray *ms = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr (GString) out = g_string_new (NULL);
  guint64 hits = 0;
  for (guint i = 0; i < q + queries->len; i++)
    {
      const char *text = g_ptr_array_index (queries, i % queries->len);
      g_autoptr (GError) error = NULL;
      g_string_truncate (out, 0);
      gint64 t0 = g_get_monotonic_time ();
      gboolean ok = wsp_store_reader_search_json (r, text, 20, out, &error);
      double d = (double) (g_get_monotonic_time () - t0) / 1000.0;
      if (!ok)
        {
          fprintf (stderr, "search-bench: search '%s': %s\n", text, error->message);
          exit (1);
        }
      if (i >= queries->len)   /* the first round warms the cache */
        g_array_append_val (ms, d);
      const char *p = out->str;
      while ((p = strstr (p, "\"id\":")))
        hits++, p++;
    }
  fprintf (stderr, "search-bench: %s: %u queries like '%s', %.1f hits each\n", what, q,
           (const char *) g_ptr_array_index (queries, 0), (double) hits / (q + queries->len));
  return ms;
}

static GArray *
time_list (WspStoreReader *r, const WspListQuery *lq, guint q, const char *what)
{
  GArray *ms = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr (GString) out = g_string_new (NULL);
  for (guint i = 0; i < q + 5; i++)
    {
      g_autoptr (GError) error = NULL;
      g_string_truncate (out, 0);
      gint64 t0 = g_get_monotonic_time ();
      gboolean ok = wsp_store_reader_list_json (r, lq, out, &error);
      double d = (double) (g_get_monotonic_time () - t0) / 1000.0;
      if (!ok)
        {
          fprintf (stderr, "search-bench: list %s: %s\n", what, error->message);
          exit (1);
        }
      if (i >= 5)
        g_array_append_val (ms, d);
    }
  fprintf (stderr, "search-bench: %s: %u lists, %zu bytes each\n", what, q, out->len);
  return ms;
}

static void
report (const char *name, GArray *ms)
{
  printf ("bench: search.p50_ms.%s %.3f ms\n", name, percentile (ms, 0.50));
  printf ("bench: search.p99_ms.%s %.3f ms\n", name, percentile (ms, 0.99));
  fflush (stdout);
}

int
main (int argc, char **argv)
{
  guint n = 100000, edges = 50000, q = 300;
  const char *db_opt = NULL;
  for (int i = 1; i < argc; i++)
    {
      if (i + 1 < argc && g_str_equal (argv[i], "--tasks"))
        n = (guint) g_ascii_strtoull (argv[++i], NULL, 10);
      else if (i + 1 < argc && g_str_equal (argv[i], "--edges"))
        edges = (guint) g_ascii_strtoull (argv[++i], NULL, 10);
      else if (i + 1 < argc && g_str_equal (argv[i], "--queries"))
        q = (guint) g_ascii_strtoull (argv[++i], NULL, 10);
      else if (i + 1 < argc && g_str_equal (argv[i], "--db"))
        db_opt = argv[++i];
      else
        {
          fprintf (stderr, "usage: search-bench [--tasks N] [--edges M] [--queries Q] [--db PATH]\n");
          return 2;
        }
    }
  if (n < 2 || q == 0 || !wsp_crypto_init ())
    return 2;

  g_autoptr (GRand) rng = g_rand_new_with_seed (99);
  Vocab v;
  vocab_init (&v, rng);

  g_autofree char *dir = NULL;
  g_autofree char *db = NULL;
  if (db_opt)
    db = g_strdup (db_opt);
  else
    {
      dir = g_dir_make_tmp ("wsp-search-bench-XXXXXX", NULL);
      db = g_build_filename (dir, "state.db", NULL);
    }
  if (!g_file_test (db, G_FILE_TEST_EXISTS) && !fill (db, n, edges, &v))
    return 1;

  g_autoptr (GError) error = NULL;
  g_autoptr (WspStoreReader) r = wsp_store_reader_open (db, &error);
  if (!r)
    {
      fprintf (stderr, "search-bench: %s\n", error->message);
      return 1;
    }

  g_autoptr (GRand) qr = g_rand_new_with_seed (5);
  g_autoptr (GPtrArray) rare = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) common = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) and = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < 50; i++)
    g_ptr_array_add (rare, g_strdup (v.words[g_rand_int_range (qr, 20000, 30000)]));
  for (guint i = 0; i < 3; i++)
    g_ptr_array_add (common, g_strdup (v.words[i]));
  for (guint i = 0; i < 50; i++)
    g_ptr_array_add (and, g_strdup_printf ("%s %s", v.words[g_rand_int_range (qr, 100, 1000)],
                                           v.words[g_rand_int_range (qr, 1000, 5000)]));

  g_autoptr (GArray) t_rare = time_search (r, rare, q, "rare");
  report ("rare", t_rare);
  g_autoptr (GArray) t_common = time_search (r, common, q, "common");
  report ("common", t_common);
  g_autoptr (GArray) t_and = time_search (r, and, q, "and");
  report ("and", t_and);

  WspListQuery ready = { .priority = -1, .limit = 100, .ready = TRUE };
  g_autoptr (GArray) t_ready = time_list (r, &ready, q, "ready");
  printf ("bench: search.ready_p99_ms %.3f ms\n", percentile (t_ready, 0.99));
  WspListQuery blocked = { .priority = -1, .limit = 100, .blocked = TRUE };
  g_autoptr (GArray) t_blocked = time_list (r, &blocked, q, "blocked");
  printf ("bench: search.blocked_p99_ms %.3f ms\n", percentile (t_blocked, 0.99));
  fflush (stdout);

  /* Not SPEC figures: the other list orders (fast only with schema v2's
   * indexes) and the list's q filter, on stderr. */
  WspListQuery updated = { .priority = -1, .limit = 100, .sort = WSP_SORT_UPDATED };
  g_autoptr (GArray) t_updated = time_list (r, &updated, MIN (q, 50u), "sort=updated");
  WspListQuery list_q = { .priority = -1, .limit = 100, .q = v.words[0] };
  g_autoptr (GArray) t_list_q = time_list (r, &list_q, MIN (q, 50u), "q=<common word>");
  fprintf (stderr, "search-bench: list sort=updated p99 %.3f ms, list q=<common word> p99 %.3f ms\n",
           percentile (t_updated, 0.99), percentile (t_list_q, 0.99));

  g_clear_pointer (&r, wsp_store_reader_free);
  vocab_clear (&v);
  if (dir)
    {
      const char *names[] = { "state.db", "state.db-wal", "state.db-shm" };
      for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
        {
          g_autofree char *p = g_build_filename (dir, names[i], NULL);
          g_unlink (p);
        }
      g_rmdir (dir);
    }
  return 0;
}
