/* wsp-workspace.h — a project's .workspace/ directory: finding it,
 * creating it (wsp init), its configuration, its secrets and the files the
 * daemon publishes while it runs (daemon.json, the lock).
 *
 * Blocking file I/O: call from start-up code or a CLI, not from a loop.
 */
#pragma once
#include <glib.h>
#include "crdt/wsp-chain.h"

G_BEGIN_DECLS

typedef struct {
  char  *root;          /* absolute path of .workspace/ */
  char  *wsp_dir;       /* root/.wsp */
  char  *tasks_dir;     /* root/tasks */
  char  *config_path;   /* root/config */
  char  *db_path;       /* root/.wsp/state.db */
} WspPaths;

void wsp_paths_clear (WspPaths *p);

/* Where the workspace is: explicit (a dir holding .workspace/, or the
 * .workspace dir itself), else $WSP_WORKSPACE, else the nearest .workspace/
 * in the current directory or its parents. NOT_FOUND when there is none. */
gboolean wsp_workspace_find (const char *explicit_dir, WspPaths *out, GError **error);

/* Creates DIR/.workspace/ with config ([project] id, name, prefix,
 * statuses), tasks/, .wsp/ with identity.key, project.secret, token (0600)
 * and .wsp/.gitignore. project_id/secret NULL → fresh ones (wsp join passes
 * them). Fails if it already exists. */
gboolean wsp_workspace_init (const char *dir, const char *project_id,
                             const guint8 *secret /* 32 or NULL */,
                             WspPaths *out, GError **error);

/* Effective configuration (SPEC 8). */
typedef struct {
  char    *project_id;
  char    *project_name;
  char    *prefix;            /* default "ws" */
  char   **statuses;          /* default todo, in_progress, done */
  char    *listen;            /* "127.0.0.1:0" by default */
  char    *log_level;         /* error|warning|info|debug; default info */
  char    *peer_listen;       /* NULL = off */
  char   **signal_urls;
  char   **ice_addresses;
  char   **stun_servers;
  char   **turn_servers;
  guint    debounce_ms;       /* default 25 */
} WspConfig;

void wsp_config_clear (WspConfig *c);

/* Overrides from the command line; NULL fields are not given. */
typedef struct {
  const char *listen;
  const char *peer_listen;
  const char *log_level;
  const char *const *ice_addresses;
} WspConfigFlags;

/* Loads defaults < config file < WSP_* environment < flags, validating
 * every value: a bad one fails with WSP_ERROR_CONFIG naming the key
 * ("[daemon] listen: …"). */
gboolean wsp_config_load (const WspPaths *paths, const WspConfigFlags *flags,
                          WspConfig *out, GError **error);

/* Sets [GROUP] KEY = VALUE in the config file (wsp join writes [sync]
 * signal_urls this way), keeping its other keys and comments; written
 * atomically. VALUE is checked as the loader checks it (lists are items
 * joined with ','), so the file never gets a value the daemon refuses:
 * WSP_ERROR_CONFIG naming the key for a bad value or an unknown key. */
gboolean wsp_config_file_set (const WspPaths *paths, const char *group, const char *key,
                              const char *value, GError **error);

/* Secrets of .wsp/ (created by init). */
gboolean wsp_workspace_load_identity (const WspPaths *paths, WspIdentity *out, GError **error);
gboolean wsp_workspace_load_secret (const WspPaths *paths, guint8 out[32], GError **error);
/* The API token, whitespace trimmed. */
char    *wsp_workspace_load_token (const WspPaths *paths, GError **error);

/* Single-daemon lock on .wsp/daemon.lock (flock, held until release or
 * exit). BUSY error naming the running pid when another daemon holds it. */
typedef struct _WspLock WspLock;
WspLock *wsp_lock_acquire (const WspPaths *paths, GError **error);
void     wsp_lock_release (WspLock *lock);   /* NULL ok */

/* daemon.json, written atomically. */
typedef struct {
  gint64  pid;
  char   *url;          /* http://127.0.0.1:PORT */
  char   *peer_id;
  char   *project_id;
  char   *peer_url;     /* NULL → null */
} WspDaemonInfo;

void     wsp_daemon_info_clear (WspDaemonInfo *d);
gboolean wsp_daemon_info_write (const WspPaths *paths, const WspDaemonInfo *d, GError **error);
/* NOT_FOUND when no daemon.json (no daemon running). */
gboolean wsp_daemon_info_read (const WspPaths *paths, WspDaemonInfo *out, GError **error);
void     wsp_daemon_info_remove (const WspPaths *paths);

/* Removes a directory tree; never follows symlinks out of it. */
void     wsp_remove_tree (const char *path);

/* Atomic file write (temp + fsync + rename), with mode. */
gboolean wsp_write_file_atomic (const char *path, const void *data, gsize len, int mode, GError **error);
/* The same without fsync: still atomic for readers (rename), but a power
 * loss may leave the old or an empty file. For files that are rebuilt from
 * the store (task files). */
gboolean wsp_write_file_atomic_nosync (const char *path, const void *data, gsize len, int mode, GError **error);

G_END_DECLS
