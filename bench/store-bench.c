/* store-bench.c — store figures for `make bench`, and a filler that makes
 * large workspaces for the HTTP/CLI/start-up figures.
 *
 *   store-bench apply [N]           bench: store.apply_ops_per_s — N ops of
 *                                   another author (10,000 creates, then edits:
 *                                   fields, labels, comments) received as
 *                                   signed runs of 1,000 and applied durably
 *   store-bench apply-edits [N]     the same with the 10,000 creates applied
 *                                   first (untimed): edits of tasks the
 *                                   store already holds, as in a catch-up
 *   store-bench local [N]           bench: store.local_writes_per_s — N task
 *                                   creates through the local write path
 *   store-bench fill WORKSPACE N    N tasks written through the store
 *   store-bench edit WORKSPACE N T SEED
 *                                   N random edits (fields, labels,
 *                                   comments) of the T tasks fill made
 *
 * Writes go through the public store interface (bounded queue, batched
 * transactions, synchronous=FULL), pipelined up to the queue bound.
 */
#include "store/wsp-store.h"
#include "workspace/wsp-workspace.h"
#include "crdt/wsp-hlc.h"

#include <string.h>

#include <glib/gstdio.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct {
  GMutex  mutex;
  GCond   cond;
  guint   in_flight;
  guint64 ops;
  guint   failed;
} Pipe;

static void
on_done (const WspWriteResult *r, gpointer data)
{
  Pipe *p = data;
  g_mutex_lock (&p->mutex);
  p->in_flight--;
  p->ops += r->n_ops;
  if (r->error)
    p->failed++;
  g_cond_signal (&p->cond);
  g_mutex_unlock (&p->mutex);
}

static const char *words[] = {
  "sync", "board", "agent", "merge", "crdt", "label", "queue", "index", "watch", "file",
  "daemon", "peer", "signal", "search", "ready", "block", "token", "clock", "store", "write",
};

static WspWrite *
make_task (GRand *rng, guint i, const char *prefix)
{
  g_autofree char *id = g_strdup_printf ("%s-%010u", prefix, i);
  WspWrite *w = wsp_write_new (WSP_WRITE_CREATE, id);
  g_autofree char *title = g_strdup_printf ("%s the %s for %s #%u", words[g_rand_int_range (rng, 0, 20)],
                                            words[g_rand_int_range (rng, 0, 20)], words[g_rand_int_range (rng, 0, 20)], i);
  WspValue v = wsp_value_str (title);
  wsp_write_set_field (w, WSP_FIELD_TITLE, &v);
  WspValue pri = wsp_value_int (g_rand_int_range (rng, 0, 5));
  wsp_write_set_field (w, WSP_FIELD_PRIORITY, &pri);
  WspValue pos = wsp_value_float (g_rand_double (rng));
  wsp_write_set_field (w, WSP_FIELD_POSITION, &pos);
  return w;
}

/* One random edit of an existing task (ids as make_task makes them): a
 * field, a label or a comment — one op each. */
static WspWrite *
make_edit (GRand *rng, guint n_tasks, const char *prefix)
{
  g_autofree char *id = g_strdup_printf ("%s-%010u", prefix, (guint) g_rand_int_range (rng, 0, (gint32) n_tasks));
  WspWrite *w;
  WspValue v;
  switch (g_rand_int_range (rng, 0, 6))
    {
    case 0:
      w = wsp_write_new (WSP_WRITE_UPDATE, id);
      v = wsp_value_str (words[g_rand_int_range (rng, 0, 20)]);
      wsp_write_set_field (w, WSP_FIELD_TITLE, &v);
      return w;
    case 1:
      w = wsp_write_new (WSP_WRITE_UPDATE, id);
      v = wsp_value_int (g_rand_int_range (rng, 0, 5));
      wsp_write_set_field (w, WSP_FIELD_PRIORITY, &v);
      return w;
    case 2:
      w = wsp_write_new (WSP_WRITE_UPDATE, id);
      v = wsp_value_str (g_rand_boolean (rng) ? "in_progress" : "done");
      wsp_write_set_field (w, WSP_FIELD_STATUS, &v);
      return w;
    case 3:
      w = wsp_write_new (WSP_WRITE_UPDATE, id);
      w->labels_add = g_ptr_array_new_with_free_func (g_free);
      g_ptr_array_add (w->labels_add, g_strdup_printf ("%s-%d", words[g_rand_int_range (rng, 0, 20)],
                                                       g_rand_int_range (rng, 0, 1000)));
      return w;
    case 4:
      w = wsp_write_new (WSP_WRITE_UPDATE, id);
      v = wsp_value_float (g_rand_double (rng));
      wsp_write_set_field (w, WSP_FIELD_POSITION, &v);
      return w;
    default:
      w = wsp_write_new (WSP_WRITE_COMMENT, id);
      w->comment_body = g_strdup_printf ("%s looks good to me", words[g_rand_int_range (rng, 0, 20)]);
      return w;
    }
}

/* Pushes n writes (creates, or edits of n_tasks existing tasks when
 * n_tasks > 0), keeping the queue full; returns ops made. */
static guint64
pump (WspStore *store, guint n, guint window, GRand *rng, const char *prefix, guint n_tasks, guint *failed)
{
  Pipe p = { 0 };
  g_mutex_init (&p.mutex);
  g_cond_init (&p.cond);
  for (guint i = 0; i < n; i++)
    {
      g_mutex_lock (&p.mutex);
      while (p.in_flight >= window)
        g_cond_wait (&p.cond, &p.mutex);
      p.in_flight++;
      g_mutex_unlock (&p.mutex);
      g_autoptr (GError) error = NULL;
      WspWrite *w = n_tasks ? make_edit (rng, n_tasks, prefix) : make_task (rng, i, prefix);
      if (!wsp_store_submit (store, w, on_done, &p, &error))
        {
          g_mutex_lock (&p.mutex);
          p.in_flight--;
          g_mutex_unlock (&p.mutex);
          i--;   /* BUSY: the window is above the queue bound; retry */
          g_usleep (100);
        }
    }
  g_mutex_lock (&p.mutex);
  while (p.in_flight)
    g_cond_wait (&p.cond, &p.mutex);
  g_mutex_unlock (&p.mutex);
  *failed = p.failed;
  g_mutex_clear (&p.mutex);
  g_cond_clear (&p.cond);
  return p.ops;
}

static int
bench_local (guint n)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("wsp-bench-XXXXXX", &error);
  g_autofree char *db = g_build_filename (dir, "state.db", NULL);
  WspIdentity id;
  wsp_identity_generate (&id);
  WspStoreOptions opts = { db, "benchbenchbenchbenchbenchb", &id, 4096 };
  WspStore *store = wsp_store_open (&opts, &error);
  if (!store)
    {
      fprintf (stderr, "store-bench: %s\n", error->message);
      return 1;
    }
  g_autoptr (GRand) rng = g_rand_new_with_seed (42);
  guint failed = 0;
  gint64 t0 = g_get_monotonic_time ();
  guint64 ops = pump (store, n, 4000, rng, "bn", 0, &failed);
  gint64 t1 = g_get_monotonic_time ();
  WspStoreStats stats;
  wsp_store_get_stats (store, &stats);
  fprintf (stderr, "store-bench: %" G_GUINT64_FORMAT " batches\n", stats.batches);
  wsp_store_free (store);
  double secs = (double) (t1 - t0) / 1e6;
  printf ("bench: store.local_writes_per_s %.0f ops/s\n", (double) ops / secs);
  fprintf (stderr, "store-bench: %" G_GUINT64_FORMAT " ops in %.3f s, %u failed\n", ops, secs, failed);
  const char *names[] = { "state.db", "state.db-wal", "state.db-shm" };
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *p = g_build_filename (dir, names[i], NULL);
      g_unlink (p);
    }
  g_rmdir (dir);
  return failed ? 1 : 0;
}


/* ---- received runs ---------------------------------------------------- */

typedef struct {
  GMutex mutex;
  GCond  cond;
  guint  in_flight;
  guint  applied;
  guint  failed;
} RunPipe;

static void
on_run_done (const GError *error, WspIngestStatus status, guint n_applied, gpointer data)
{
  RunPipe *p = data;
  g_mutex_lock (&p->mutex);
  p->in_flight--;
  p->applied += n_applied;
  if (error || status != WSP_INGEST_OK)
    p->failed++;
  g_cond_signal (&p->cond);
  g_mutex_unlock (&p->mutex);
}

static GBytes *
make_remote_op (GRand *rng, guint64 hlc, guint i, guint n_tasks)
{
  WspOp op = { 0 };
  char task[32];
  op.hlc = hlc;
  op.data_ok = TRUE;
  if (i < n_tasks)
    {
      g_snprintf (task, sizeof task, "rt-%010u", i);
      op.type = WSP_OP_CREATE;
      for (int f = 1; f < WSP_FIELD_COUNT; f++)
        wsp_field_default ((WspField) f, &op.fields[f]);
      g_autofree char *title = g_strdup_printf ("%s the %s #%u", words[i % 20], words[(i / 20) % 20], i);
      wsp_value_clear (&op.fields[WSP_FIELD_TITLE]);
      op.fields[WSP_FIELD_TITLE] = wsp_value_str (title);
    }
  else
    {
      g_snprintf (task, sizeof task, "rt-%010u", g_rand_int_range (rng, 0, (gint32) n_tasks));
      switch (g_rand_int_range (rng, 0, 6))
        {
        case 0:
          op.type = WSP_OP_SET;
          op.field = WSP_FIELD_TITLE;
          op.value = wsp_value_str (words[g_rand_int_range (rng, 0, 20)]);
          break;
        case 1:
          op.type = WSP_OP_SET;
          op.field = WSP_FIELD_PRIORITY;
          op.value = wsp_value_int (g_rand_int_range (rng, 0, 5));
          break;
        case 2:
          op.type = WSP_OP_SET;
          op.field = WSP_FIELD_STATUS;
          op.value = wsp_value_str (g_rand_boolean (rng) ? "in_progress" : "done");
          break;
        case 3:
          op.type = WSP_OP_LABEL_ADD;
          op.text = (char *) words[g_rand_int_range (rng, 0, 20)];
          break;
        case 4:
          op.type = WSP_OP_SET;
          op.field = WSP_FIELD_POSITION;
          op.value = wsp_value_float (g_rand_double (rng));
          break;
        default:
          op.type = WSP_OP_COMMENT_ADD;
          op.text = (char *) "looks good to me";
          break;
        }
    }
  op.type_code = op.type;
  op.task = task;
  GBytes *body = wsp_op_encode (&op);
  for (int f = 1; f < WSP_FIELD_COUNT; f++)
    wsp_value_clear (&op.fields[f]);
  wsp_value_clear (&op.value);
  return body;
}

/* n ops of another author: n_tasks creates, then edits. With
 * pre_created, the creates are applied (untimed) before the clock starts,
 * as when a peer catches up on edits of tasks both already hold. */
static int
bench_apply (guint n, gboolean pre_created)
{
  const guint run_len = 1000, n_tasks = MIN (10000u, n);
  const char *project = "benchbenchbenchbenchbenchb";
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("wsp-bench-XXXXXX", &error);
  g_autofree char *db = g_build_filename (dir, "state.db", NULL);
  WspIdentity me, author;
  wsp_identity_generate (&me);
  wsp_identity_generate (&author);

  /* Make the author's signed runs first (not timed). */
  g_autoptr (GRand) rng = g_rand_new_with_seed (42);
  g_autoptr (GPtrArray) runs = g_ptr_array_new ();
  guint8 h[WSP_HASH_LEN];
  wsp_chain_genesis (project, author.pk, h);
  guint64 hlc = WSP_HLC_MAKE (1767225600000ULL, 0);
  for (guint i = 0; i < n; i += run_len)
    {
      WspRun *run = wsp_run_new ();
      run->peer = author.peer;
      memcpy (run->pk, author.pk, WSP_PK_LEN);
      run->from = i + 1;
      for (guint j = i; j < MIN (n, i + run_len); j++)
        {
          GBytes *body = make_remote_op (rng, ++hlc, j, n_tasks);
          wsp_chain_next (h, g_bytes_get_data (body, NULL), g_bytes_get_size (body), h);
          g_ptr_array_add (run->ops, body);
        }
      wsp_head_sign (&author, run->from + run->ops->len - 1, h, run->sig);
      g_ptr_array_add (runs, run);
    }

  WspStoreOptions opts = { db, project, &me, 4096 };
  WspStore *store = wsp_store_open (&opts, &error);
  if (!store)
    {
      fprintf (stderr, "store-bench: %s\n", error->message);
      return 1;
    }
  RunPipe p = { 0 };
  g_mutex_init (&p.mutex);
  g_cond_init (&p.cond);
  guint first = 0;
  if (pre_created)
    for (; first < runs->len && first * run_len < n_tasks; first++)
      if (!wsp_store_ingest_sync (store, g_ptr_array_index (runs, first), NULL, NULL, &error))
        {
          fprintf (stderr, "store-bench: %s\n", error->message);
          return 1;
        }
  guint expected = n - first * run_len;
  gint64 t0 = g_get_monotonic_time ();
  for (guint i = first; i < runs->len; i++)
    {
      g_mutex_lock (&p.mutex);
      p.in_flight++;
      g_mutex_unlock (&p.mutex);
      if (!wsp_store_submit_run (store, g_ptr_array_index (runs, i), on_run_done, &p, &error))
        {
          fprintf (stderr, "store-bench: %s\n", error->message);
          return 1;
        }
    }
  g_mutex_lock (&p.mutex);
  while (p.in_flight)
    g_cond_wait (&p.cond, &p.mutex);
  g_mutex_unlock (&p.mutex);
  gint64 t1 = g_get_monotonic_time ();
  WspStoreStats stats;
  wsp_store_get_stats (store, &stats);
  wsp_store_free (store);
  double secs = (double) (t1 - t0) / 1e6;
  printf ("bench: store.apply%s_ops_per_s %.0f ops/s\n", pre_created ? "_edits" : "", (double) p.applied / secs);
  fprintf (stderr, "store-bench: %u ops applied in %.3f s, %" G_GUINT64_FORMAT " transactions, %u runs failed\n",
           p.applied, secs, stats.batches, p.failed);
  const char *names[] = { "state.db", "state.db-wal", "state.db-shm" };
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      g_autofree char *path = g_build_filename (dir, names[i], NULL);
      g_unlink (path);
    }
  g_rmdir (dir);
  return p.failed || p.applied != expected ? 1 : 0;
}

/* n creates (n_tasks 0), or n edits of the first n_tasks tasks that
 * fill made, as this workspace's own local writes. */
static int
fill (const char *workspace, guint n, guint n_tasks, guint seed)
{
  g_autoptr (GError) error = NULL;
  WspPaths paths = { 0 };
  WspConfig config = { 0 };
  WspIdentity id;
  if (!wsp_workspace_find (workspace, &paths, &error) || !wsp_config_load (&paths, NULL, &config, &error)
      || !wsp_workspace_load_identity (&paths, &id, &error))
    {
      fprintf (stderr, "store-bench: %s\n", error->message);
      return 1;
    }
  WspStoreOptions opts = { paths.db_path, config.project_id, &id, 4096 };
  WspStore *store = wsp_store_open (&opts, &error);
  if (!store)
    {
      fprintf (stderr, "store-bench: %s\n", error->message);
      return 1;
    }
  g_autoptr (GRand) rng = g_rand_new_with_seed (seed);
  guint failed = 0;
  pump (store, n, 4000, rng, config.prefix, n_tasks, &failed);
  wsp_store_free (store);
  wsp_config_clear (&config);
  wsp_paths_clear (&paths);
  return failed ? 1 : 0;
}

int
main (int argc, char **argv)
{
  if (!wsp_crypto_init ())
    return 1;
  if (argc >= 2 && g_str_equal (argv[1], "apply"))
    return bench_apply (argc >= 3 ? (guint) g_ascii_strtoull (argv[2], NULL, 10) : 200000, FALSE);
  if (argc >= 2 && g_str_equal (argv[1], "apply-edits"))
    return bench_apply (argc >= 3 ? (guint) g_ascii_strtoull (argv[2], NULL, 10) : 60000, TRUE);
  if (argc >= 2 && g_str_equal (argv[1], "local"))
    return bench_local (argc >= 3 ? (guint) g_ascii_strtoull (argv[2], NULL, 10) : 50000);
  if (argc == 4 && g_str_equal (argv[1], "fill"))
    return fill (argv[2], (guint) g_ascii_strtoull (argv[3], NULL, 10), 0, 7);
  if (argc == 6 && g_str_equal (argv[1], "edit"))
    return fill (argv[2], (guint) g_ascii_strtoull (argv[3], NULL, 10), (guint) g_ascii_strtoull (argv[4], NULL, 10),
                 (guint) g_ascii_strtoull (argv[5], NULL, 10));
  fprintf (stderr, "usage: store-bench apply [N] | store-bench local [N] | store-bench fill WORKSPACE N"
           " | store-bench edit WORKSPACE N N_TASKS SEED\n");
  return 2;
}
