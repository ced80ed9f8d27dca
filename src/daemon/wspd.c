/* wspd.c — the WorkStream daemon: start-up and shutdown order.
 *
 * Start:    workspace → config → logging → identity → lock → store → file
 *           mirror (watcher + reconcile) → peer sync → HTTP → daemon.json →
 *           main loop.
 * Shutdown: (SIGINT/SIGTERM) HTTP stops intake and finishes in-flight
 *           requests → peers get `err shutdown` and their channels close →
 *           the mirror stops watching and finishes the file at hand → store
 *           drains its queue and checkpoints → daemon.json removed → lock
 *           released → exit 0.
 *
 * The GLib main loop on this thread owns signals, timers, signaling and
 * the peer channels. The HTTP API, the store and the file mirror run on
 * their own threads behind their modules.
 */
#define G_LOG_DOMAIN "wspd"

#include "common/wsp-common.h"
#include "common/wsp-log.h"
#include "crdt/wsp-chain.h"
#include "store/wsp-store.h"
#include "api/wsp-http.h"
#include "workspace/wsp-workspace.h"
#include "workspace/wsp-mirror.h"
#include "sync/wsp-sync.h"

#include <glib-unix.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/wsp-asan-options.h"

typedef struct {
  GMainLoop *loop;
  int        signal;
} Daemon;

/* HTTP thread: the mirror's problems (thread-safe). */
static void
problems_json (GString *out, gpointer data)
{
  wsp_mirror_problems_json (data, out);
}

/* HTTP thread: resolve a blocked mass removal (thread-safe). */
static gboolean
resolve_mass_removal (gboolean delete, guint *n_tasks, GError **error, gpointer data)
{
  return wsp_mirror_resolve_mass_removal (data, delete ? WSP_MASS_REMOVAL_DELETE : WSP_MASS_REMOVAL_RESTORE,
                                          n_tasks, error);
}

/* HTTP thread: peer sync (the WspSync functions are thread-safe). */
static void
peers_json (GString *out, gpointer data)
{
  wsp_sync_peers_json (data, out);
}

static gboolean
peer_connect (const char *url, GError **error, gpointer data)
{
  return wsp_sync_connect (data, url, error);
}

static gboolean
peer_drop (const char *peer_id, GError **error, gpointer data)
{
  return wsp_sync_drop (data, peer_id, error);
}

static guint
peers_connected (gpointer data)
{
  return wsp_sync_count_connected (data);
}

static gboolean
on_signal (gpointer data)
{
  Daemon *d = data;
  g_message ("shutting down");
  g_main_loop_quit (d->loop);
  return G_SOURCE_CONTINUE;
}

static int
run (int argc, char **argv)
{
  g_autofree char *workspace = NULL;
  g_autofree char *listen = NULL;
  g_autofree char *peer_listen = NULL;
  g_autofree char *log_level = NULL;
  g_auto (GStrv) ice_addresses = NULL;
  gboolean version = FALSE;
  GOptionEntry entries[] = {
    { "workspace", 'w', 0, G_OPTION_ARG_FILENAME, &workspace, "Workspace directory (holding .workspace/)", "DIR" },
    { "listen", 0, 0, G_OPTION_ARG_STRING, &listen, "Local API address (default 127.0.0.1:0)", "ADDR:PORT" },
    { "peer-listen", 0, 0, G_OPTION_ARG_STRING, &peer_listen, "Peer-facing signaling listener (off by default)", "ADDR:PORT" },
    { "log-level", 0, 0, G_OPTION_ARG_STRING, &log_level, "error, warning, info or debug", "LEVEL" },
    { "ice-address", 0, 0, G_OPTION_ARG_STRING_ARRAY, &ice_addresses, "Pin ICE to this local address (repeatable)", "ADDR" },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version", NULL },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("— the WorkStream daemon");
  g_autoptr (GError) error = NULL;
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      fprintf (stderr, "wspd: %s\n", error->message);
      return 2;
    }
  if (version)
    {
      printf ("wspd %s\n", WSP_VERSION);
      return 0;
    }
  if (argc > 1)
    {
      fprintf (stderr, "wspd: unexpected argument '%s'\n", argv[1]);
      return 2;
    }

  if (!wsp_crypto_init ())
    {
      fprintf (stderr, "wspd: libsodium failed to initialise\n");
      return 1;
    }

  WspPaths paths = { 0 };
  WspConfig config = { 0 };
  if (!wsp_workspace_find (workspace, &paths, &error))
    {
      fprintf (stderr, "wspd: %s\n", error->message);
      return 1;
    }

  WspConfigFlags flags = { listen, peer_listen, log_level, (const char *const *) ice_addresses };
  int status = 1;
  WspLock *lock = NULL;
  g_autoptr (WspStore) store = NULL;
  g_autoptr (WspHttp) http = NULL;
  g_autoptr (WspMirror) mirror = NULL;
  g_autoptr (WspSync) sync = NULL;
  g_autofree char *urls_path = NULL;
  guint8 secret[32];
  g_autofree char *index_path = NULL;
  g_autofree char *token = NULL;
  WspIdentity identity;
  Daemon d = { 0 };

  /* Signals first: a SIGTERM during start-up still ends in a clean stop
   * (the loop quits as soon as it runs). */
  d.loop = g_main_loop_new (NULL, FALSE);
  g_unix_signal_add (SIGINT, on_signal, &d);
  g_unix_signal_add (SIGTERM, on_signal, &d);
  signal (SIGPIPE, SIG_IGN);

  if (!wsp_config_load (&paths, &flags, &config, &error) || !wsp_log_init (config.log_level, &error))
    {
      fprintf (stderr, "wspd: %s\n", error->message);
      goto out;
    }
  if (!wsp_workspace_load_identity (&paths, &identity, &error)
      || !wsp_workspace_load_secret (&paths, secret, &error)
      || !(token = wsp_workspace_load_token (&paths, &error)))
    {
      g_critical ("%s", error->message);
      goto out;
    }
  if (!(lock = wsp_lock_acquire (&paths, &error)))
    {
      g_critical ("%s", error->message);
      goto out;
    }

  WspStoreOptions sopts = { paths.db_path, config.project_id, &identity, 0 };
  if (!(store = wsp_store_open (&sopts, &error)))
    {
      g_critical ("%s", error->message);
      goto out;
    }

  index_path = g_build_filename (paths.wsp_dir, "files.idx", NULL);
  WspMirrorOptions mopts = {
    .tasks_dir = paths.tasks_dir,
    .index_path = index_path,
    .db_path = paths.db_path,
    .store = store,
    .task_prefix = config.prefix,
    .statuses = (const char *const *) config.statuses,
    .debounce_ms = config.debounce_ms,
  };
  if (!(mirror = wsp_mirror_start (&mopts, &error)))
    {
      g_critical ("%s", error->message);
      goto out;
    }

  urls_path = g_build_filename (paths.wsp_dir, "peer-urls", NULL);
  WspSyncOptions yopts = {
    .store = store,
    .db_path = paths.db_path,
    .project_id = config.project_id,
    .secret = secret,
    .identity = &identity,
    .listen = config.peer_listen,
    .signal_urls = (const char *const *) config.signal_urls,
    .urls_path = urls_path,
    .ice_addresses = (const char *const *) config.ice_addresses,
    .stun_servers = (const char *const *) config.stun_servers,
    .turn_servers = (const char *const *) config.turn_servers,
  };
  if (!(sync = wsp_sync_start (&yopts, &error)))
    {
      /* Missing WebRTC plugins leave a working local tracker; a bad
       * address or URL is a configuration error. */
      if (!g_error_matches (error, WSP_ERROR, WSP_ERROR_FAILED) || config.peer_listen)
        {
          g_critical ("%s", error->message);
          goto out;
        }
      g_warning ("peer sync is off: %s", error->message);
      g_clear_error (&error);
    }

  WspHttpOptions hopts = {
    .listen = config.listen,
    .token = token,
    .store = store,
    .db_path = paths.db_path,
    .peer_id = identity.peer_hex,
    .task_prefix = config.prefix,
    .statuses = (const char *const *) config.statuses,
    .problems_json = problems_json,
    .resolve_mass_removal = resolve_mass_removal,
    .problems_data = mirror,
    .peers_json = sync ? peers_json : NULL,
    .peer_connect = sync ? peer_connect : NULL,
    .peer_drop = sync ? peer_drop : NULL,
    .peers_connected = sync ? peers_connected : NULL,
    .sync_data = sync,
  };
  if (!(http = wsp_http_start (&hopts, &error)))
    {
      g_critical ("%s", error->message);
      goto out;
    }

  {
    WspDaemonInfo info = { 0 };
    info.pid = getpid ();
    info.url = g_strdup_printf ("http://127.0.0.1:%u", wsp_http_port (http));
    info.peer_id = g_strdup (identity.peer_hex);
    info.project_id = g_strdup (config.project_id);
    info.peer_url = sync ? wsp_sync_dup_peer_url (sync) : NULL;
    gboolean ok = wsp_daemon_info_write (&paths, &info, &error);
    g_autofree char *board = wsp_http_board_url (http);
    if (ok)
      {
        g_log_structured (G_LOG_DOMAIN, G_LOG_LEVEL_MESSAGE, "URL", info.url,
                          "PEER_ID", identity.peer_hex, "WORKSPACE", paths.root,
                          "PEER_URL", info.peer_url ? info.peer_url : "-",
                          "MESSAGE", "listening");
        printf ("WorkStream board: %s\n", board);
        fflush (stdout);
      }
    wsp_daemon_info_clear (&info);
    if (!ok)
      {
        g_critical ("%s", error->message);
        goto out;
      }
  }

  g_main_loop_run (d.loop);
  status = 0;

out:
  /* Shutdown order: intake first, then the writer, then the files. */
  wsp_http_stop (http);
  wsp_sync_stop (sync);
  wsp_mirror_stop (mirror);
  wsp_store_close (store);
  if (lock)
    wsp_daemon_info_remove (&paths);
  wsp_lock_release (lock);
  g_clear_pointer (&d.loop, g_main_loop_unref);
  memset (&identity, 0, sizeof identity);
  memset (secret, 0, sizeof secret);
  wsp_config_clear (&config);
  wsp_paths_clear (&paths);
  if (status == 0)
    g_message ("stopped cleanly");
  return status;
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  return run (argc, argv);
}
