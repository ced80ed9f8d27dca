/* wsp-workspace.c — owns a project's .workspace/ directory as seen from
 * start-up code and the CLI (SPEC 2 and 8): finding it like git finds a
 * repository, creating it (`wsp init`), the effective configuration
 * (defaults < config file < WSP_* environment < flags, every value
 * validated and a bad one named by its key), the secrets in .wsp/, the
 * single-daemon lock and daemon.json.
 *
 * Threads: none of its own; everything is blocking file I/O, meant for
 * start-up and the CLI. No global state besides the process environment it
 * reads.
 *
 * Invariants:
 *  - every secret file (identity.key, project.secret, token) is written
 *    0600 through wsp_write_file_atomic, so a crash never leaves a torn one;
 *  - init either creates the whole .workspace/ or removes what it made;
 *  - the lock is an flock(2) on .wsp/daemon.lock, released by the kernel
 *    when the holder dies, so a stale pid in the file never blocks a start.
 */
#include "workspace/wsp-workspace.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <sodium.h>

#include "common/wsp-common.h"

#define WSP_SECRET_LEN      32
#define WSP_TOKEN_BYTES     32
#define WSP_TOKEN_MAX       4096     /* bytes; a token is a header value */
#define WSP_DEBOUNCE_MAX_MS 60000
#define WSP_DAEMON_JSON_MAX (64 * 1024)

/* ---- paths -------------------------------------------------------------- */

void
wsp_paths_clear (WspPaths *p)
{
  if (p == NULL)
    return;
  g_clear_pointer (&p->root, g_free);
  g_clear_pointer (&p->wsp_dir, g_free);
  g_clear_pointer (&p->tasks_dir, g_free);
  g_clear_pointer (&p->config_path, g_free);
  g_clear_pointer (&p->db_path, g_free);
}

static void
paths_fill (WspPaths *out, const char *root)
{
  memset (out, 0, sizeof *out);
  out->root = g_strdup (root);
  out->wsp_dir = g_build_filename (root, ".wsp", NULL);
  out->tasks_dir = g_build_filename (root, "tasks", NULL);
  out->config_path = g_build_filename (root, "config", NULL);
  out->db_path = g_build_filename (out->wsp_dir, "state.db", NULL);
}

/* DIR itself when it is named .workspace, else DIR/.workspace; absolute. */
static char *
workspace_root_for (const char *dir)
{
  g_autofree char *abs = g_canonicalize_filename (dir, NULL);
  g_autofree char *base = g_path_get_basename (abs);

  if (g_strcmp0 (base, ".workspace") == 0 && g_file_test (abs, G_FILE_TEST_IS_DIR))
    return g_steal_pointer (&abs);
  return g_build_filename (abs, ".workspace", NULL);
}

gboolean
wsp_workspace_find (const char *explicit_dir, WspPaths *out, GError **error)
{
  const char *from_env = NULL;
  const char *dir = explicit_dir;

  if (dir == NULL || *dir == '\0')
    {
      from_env = g_getenv ("WSP_WORKSPACE");
      dir = (from_env != NULL && *from_env != '\0') ? from_env : NULL;
    }

  if (dir != NULL)
    {
      g_autofree char *root = workspace_root_for (dir);
      if (!g_file_test (root, G_FILE_TEST_IS_DIR))
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_NOT_FOUND,
                       "no workspace at '%s'%s (no .workspace/ directory; create one with `wsp init`)",
                       dir, dir == explicit_dir ? "" : " (from $WSP_WORKSPACE)");
          return FALSE;
        }
      paths_fill (out, root);
      return TRUE;
    }

  g_autofree char *cwd = g_get_current_dir ();
  g_autofree char *cur = g_strdup (cwd);
  for (;;)
    {
      g_autofree char *cand = g_build_filename (cur, ".workspace", NULL);
      if (g_file_test (cand, G_FILE_TEST_IS_DIR))
        {
          paths_fill (out, cand);
          return TRUE;
        }
      g_autofree char *parent = g_path_get_dirname (cur);
      if (g_strcmp0 (parent, cur) == 0)
        break;
      g_free (cur);
      cur = g_steal_pointer (&parent);
    }
  g_set_error (error, WSP_ERROR, WSP_ERROR_NOT_FOUND,
               "no workspace found in '%s' or its parents (create one with `wsp init`)", cwd);
  return FALSE;
}

/* ---- atomic writes ------------------------------------------------------ */

static gboolean
write_all (int fd, const guint8 *data, gsize len)
{
  while (len > 0)
    {
      ssize_t n = write (fd, data, len);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return FALSE;
        }
      data += n;
      len -= (gsize) n;
    }
  return TRUE;
}

/* Makes a rename durable: fsync the directory holding PATH. Best effort on
 * file systems that refuse fsync on directories. */
static void
fsync_parent (const char *path)
{
  g_autofree char *dir = g_path_get_dirname (path);
  int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return;
  (void) fsync (dfd);
  close (dfd);
}

static gboolean write_file_atomic (const char *path, const void *data, gsize len, int mode,
                                   gboolean durable, GError **error);

gboolean
wsp_write_file_atomic (const char *path, const void *data, gsize len, int mode, GError **error)
{
  return write_file_atomic (path, data, len, mode, TRUE, error);
}

gboolean
wsp_write_file_atomic_nosync (const char *path, const void *data, gsize len, int mode, GError **error)
{
  return write_file_atomic (path, data, len, mode, FALSE, error);
}

static gboolean
write_file_atomic (const char *path, const void *data, gsize len, int mode, gboolean durable, GError **error)
{
  g_autofree char *tmp = g_strdup_printf ("%s.tmp-XXXXXX", path);
  int fd = g_mkstemp_full (tmp, O_RDWR | O_CLOEXEC, mode);
  int saved;

  if (fd < 0)
    {
      saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "failed to create temporary file for '%s': %s", path, g_strerror (saved));
      return FALSE;
    }
  /* mkstemp's mode passes through the umask; the caller's mode is exact. */
  if (fchmod (fd, (mode_t) mode) != 0 || !write_all (fd, data, len) || (durable && fsync (fd) != 0))
    {
      saved = errno;
      close (fd);
      unlink (tmp);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "failed to write '%s': %s", path, g_strerror (saved));
      return FALSE;
    }
  if (close (fd) != 0)
    {
      saved = errno;
      unlink (tmp);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "failed to write '%s': %s", path, g_strerror (saved));
      return FALSE;
    }
  if (rename (tmp, path) != 0)
    {
      saved = errno;
      unlink (tmp);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "failed to rename '%s' into place: %s", path, g_strerror (saved));
      return FALSE;
    }
  if (durable)
    fsync_parent (path);
  return TRUE;
}

/* ---- init ---------------------------------------------------------------- */

/* Removes a directory tree (init's own on failure; tests' temporary ones);
 * never follows symlinks out of it. */
void
wsp_remove_tree (const char *path)
{
  GDir *d = g_dir_open (path, 0, NULL);
  if (d != NULL)
    {
      const char *name;
      while ((name = g_dir_read_name (d)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);
          if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
            wsp_remove_tree (child);
          else
            unlink (child);
        }
      g_dir_close (d);
    }
  rmdir (path);
}

static gboolean
make_dir (const char *path, int mode, GError **error)
{
  if (g_mkdir (path, mode) != 0)
    {
      int saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "failed to create directory '%s': %s", path, g_strerror (saved));
      return FALSE;
    }
  return TRUE;
}

static gboolean
init_contents (const WspPaths *p, const char *dir_abs, const char *project_id,
               const guint8 *secret, GError **error)
{
  guint8 seed[WSP_SEED_LEN];
  guint8 fresh_secret[WSP_SECRET_LEN];
  guint8 token_raw[WSP_TOKEN_BYTES];

  if (!make_dir (p->tasks_dir, 0755, error) || !make_dir (p->wsp_dir, 0700, error))
    return FALSE;

  g_autofree char *gitignore = g_build_filename (p->wsp_dir, ".gitignore", NULL);
  if (!wsp_write_file_atomic (gitignore, "*\n", 2, 0644, error))
    return FALSE;

  randombytes_buf (seed, sizeof seed);
  g_autofree char *identity_path = g_build_filename (p->wsp_dir, "identity.key", NULL);
  gboolean ok = wsp_write_file_atomic (identity_path, seed, sizeof seed, 0600, error);
  sodium_memzero (seed, sizeof seed);
  if (!ok)
    return FALSE;

  if (secret == NULL)
    {
      randombytes_buf (fresh_secret, sizeof fresh_secret);
      secret = fresh_secret;
    }
  g_autofree char *secret_path = g_build_filename (p->wsp_dir, "project.secret", NULL);
  ok = wsp_write_file_atomic (secret_path, secret, WSP_SECRET_LEN, 0600, error);
  sodium_memzero (fresh_secret, sizeof fresh_secret);
  if (!ok)
    return FALSE;

  randombytes_buf (token_raw, sizeof token_raw);
  g_autofree char *token_hex = wsp_hex_encode (token_raw, sizeof token_raw);
  sodium_memzero (token_raw, sizeof token_raw);
  g_autofree char *token_line = g_strconcat (token_hex, "\n", NULL);
  g_autofree char *token_path = g_build_filename (p->wsp_dir, "token", NULL);
  if (!wsp_write_file_atomic (token_path, token_line, strlen (token_line), 0600, error))
    return FALSE;

  g_autofree char *fresh_id = NULL;
  if (project_id == NULL)
    project_id = fresh_id = wsp_project_id_new ();
  g_autofree char *name = g_path_get_basename (dir_abs);

  g_autoptr(GKeyFile) kf = g_key_file_new ();
  g_key_file_set_string (kf, "project", "id", project_id);
  g_key_file_set_string (kf, "project", "name", name);
  g_key_file_set_string (kf, "project", "prefix", "ws");
  g_key_file_set_string (kf, "project", "statuses", "todo,in_progress,done");
  gsize len = 0;
  g_autofree char *text = g_key_file_to_data (kf, &len, NULL);
  return wsp_write_file_atomic (p->config_path, text, len, 0644, error);
}

gboolean
wsp_workspace_init (const char *dir, const char *project_id, const guint8 *secret,
                    WspPaths *out, GError **error)
{
  g_autofree char *cwd = NULL;
  if (dir == NULL || *dir == '\0')
    dir = cwd = g_get_current_dir ();
  g_autofree char *dir_abs = g_canonicalize_filename (dir, NULL);
  g_autofree char *root = g_build_filename (dir_abs, ".workspace", NULL);

  if (sodium_init () < 0)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED,
                   "failed to initialise workspace '%s': libsodium cannot start", root);
      return FALSE;
    }
  if (g_mkdir_with_parents (dir_abs, 0755) != 0)
    {
      int saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "failed to create directory '%s': %s", dir_abs, g_strerror (saved));
      return FALSE;
    }
  /* mkdir, not mkdir -p: its EEXIST is the race-free "already exists". */
  if (g_mkdir (root, 0755) != 0)
    {
      int saved = errno;
      if (saved == EEXIST)
        g_set_error (error, WSP_ERROR, WSP_ERROR_CONFLICT,
                     "failed to initialise workspace: '%s' already exists", root);
      else
        g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                     "failed to create directory '%s': %s", root, g_strerror (saved));
      return FALSE;
    }

  WspPaths p;
  paths_fill (&p, root);
  if (!init_contents (&p, dir_abs, project_id, secret, error))
    {
      wsp_remove_tree (root);
      wsp_paths_clear (&p);
      g_prefix_error (error, "failed to initialise workspace '%s': ", root);
      return FALSE;
    }
  if (out != NULL)
    *out = p;
  else
    wsp_paths_clear (&p);
  return TRUE;
}

/* ---- configuration ------------------------------------------------------ */

void
wsp_config_clear (WspConfig *c)
{
  if (c == NULL)
    return;
  g_clear_pointer (&c->project_id, g_free);
  g_clear_pointer (&c->project_name, g_free);
  g_clear_pointer (&c->prefix, g_free);
  g_clear_pointer (&c->statuses, g_strfreev);
  g_clear_pointer (&c->listen, g_free);
  g_clear_pointer (&c->log_level, g_free);
  g_clear_pointer (&c->peer_listen, g_free);
  g_clear_pointer (&c->signal_urls, g_strfreev);
  g_clear_pointer (&c->ice_addresses, g_strfreev);
  g_clear_pointer (&c->stun_servers, g_strfreev);
  g_clear_pointer (&c->turn_servers, g_strfreev);
  c->debounce_ms = 0;
}

typedef enum {
  KIND_PROJECT_ID,
  KIND_NAME,
  KIND_PREFIX,
  KIND_STATUSES,
  KIND_LISTEN_LOOPBACK,     /* the local API: loopback only */
  KIND_LISTEN_OPTIONAL,     /* peer listener: empty or "off" = disabled */
  KIND_LOG_LEVEL,
  KIND_WS_URLS,
  KIND_IP_LIST,
  KIND_STRING_LIST,
  KIND_MILLISECONDS,
} KeyKind;

typedef struct {
  const char *group;
  const char *key;
  const char *env;          /* NULL: not settable from the environment */
  KeyKind     kind;
  gsize       offset;       /* into WspConfig */
} ConfigKey;

#define OFF(field) G_STRUCT_OFFSET (WspConfig, field)

static const ConfigKey config_keys[] = {
  { "project", "id",            NULL,                KIND_PROJECT_ID,      OFF (project_id) },
  { "project", "name",          NULL,                KIND_NAME,            OFF (project_name) },
  { "project", "prefix",        "WSP_PREFIX",        KIND_PREFIX,          OFF (prefix) },
  { "project", "statuses",      "WSP_STATUSES",      KIND_STATUSES,        OFF (statuses) },
  { "daemon",  "listen",        "WSP_LISTEN",        KIND_LISTEN_LOOPBACK, OFF (listen) },
  { "daemon",  "log_level",     "WSP_LOG_LEVEL",     KIND_LOG_LEVEL,       OFF (log_level) },
  { "daemon",  "debounce_ms",   "WSP_DEBOUNCE_MS",   KIND_MILLISECONDS,    OFF (debounce_ms) },
  { "sync",    "listen",        "WSP_PEER_LISTEN",   KIND_LISTEN_OPTIONAL, OFF (peer_listen) },
  { "sync",    "signal_urls",   "WSP_SIGNAL_URLS",   KIND_WS_URLS,         OFF (signal_urls) },
  { "sync",    "ice_addresses", "WSP_ICE_ADDRESSES", KIND_IP_LIST,         OFF (ice_addresses) },
  { "sync",    "stun_servers",  "WSP_STUN_SERVERS",  KIND_STRING_LIST,     OFF (stun_servers) },
  { "sync",    "turn_servers",  "WSP_TURN_SERVERS",  KIND_STRING_LIST,     OFF (turn_servers) },
};

/* The key's entry, or NULL when there is no such key. */
static const ConfigKey *
config_key_lookup (const char *group, const char *key)
{
  for (gsize i = 0; i < G_N_ELEMENTS (config_keys); i++)
    if (strcmp (config_keys[i].group, group) == 0 && strcmp (config_keys[i].key, key) == 0)
      return &config_keys[i];
  return NULL;
}

/* A key this file names itself: it exists. */
static const ConfigKey *
config_key_find (const char *group, const char *key)
{
  const ConfigKey *k = config_key_lookup (group, key);
  g_assert (k != NULL);
  return k;
}

static gboolean
is_project_id (const char *s)
{
  if (strlen (s) != 26)
    return FALSE;
  for (const char *c = s; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '2' && *c <= '7')))
      return FALSE;
  return TRUE;
}

static gboolean
is_loopback_host (const char *host)
{
  if (g_ascii_strcasecmp (host, "localhost") == 0)
    return TRUE;
  g_autoptr(GInetAddress) addr = g_inet_address_new_from_string (host);
  return addr != NULL && g_inet_address_get_is_loopback (addr);
}

static gboolean
listen_bad_form (const char *value, GError **error)
{
  g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG, "'%s' is not ADDR:PORT", value);
  return FALSE;
}

/* ADDR:PORT with ADDR an IPv4 literal, [IPv6 literal] or localhost and PORT
 * 0-65535 (0 = any free port). */
static gboolean
check_listen (const char *value, gboolean loopback_only, GError **error)
{
  g_autofree char *host = NULL;
  const char *port;

  if (value[0] == '[')
    {
      const char *close = strchr (value, ']');
      if (close == NULL || close[1] != ':')
        return listen_bad_form (value, error);
      host = g_strndup (value + 1, (gsize) (close - value - 1));
      port = close + 2;
      if (!g_hostname_is_ip_address (host) || strchr (host, ':') == NULL)
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                       "bad address '%s' in '%s' (expected an IPv6 literal in brackets)", host, value);
          return FALSE;
        }
    }
  else
    {
      const char *colon = strrchr (value, ':');
      if (colon == NULL || colon == value)
        return listen_bad_form (value, error);
      host = g_strndup (value, (gsize) (colon - value));
      port = colon + 1;
      if (strchr (host, ':') != NULL)
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                       "bad address '%s' in '%s' (put an IPv6 address in brackets: [::1]:PORT)", host, value);
          return FALSE;
        }
      if (g_ascii_strcasecmp (host, "localhost") != 0 && !g_hostname_is_ip_address (host))
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                       "bad address '%s' in '%s' (expected an IP address or localhost)", host, value);
          return FALSE;
        }
    }

  guint64 port_num = 0;
  if (*port == '\0' || strlen (port) > 5 || strspn (port, "0123456789") != strlen (port)
      || !g_ascii_string_to_unsigned (port, 10, 0, 65535, &port_num, NULL))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                   "bad port '%s' in '%s' (expected 0-65535)", port, value);
      return FALSE;
    }
  if (loopback_only && !is_loopback_host (host))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                   "address '%s' is not a loopback address (the local API never leaves loopback)", host);
      return FALSE;
    }
  return TRUE;
}

/* Comma-separated items (';' also accepted, as GKeyFile lists use it),
 * trimmed; empty items dropped. */
static char **
split_list (const char *value)
{
  g_auto(GStrv) parts = g_strsplit_set (value, ",;", -1);
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func (g_free);
  for (char **p = parts; *p != NULL; p++)
    {
      g_strstrip (*p);
      if (**p != '\0')
        g_ptr_array_add (out, g_strdup (*p));
    }
  g_ptr_array_add (out, NULL);
  return (char **) g_ptr_array_free (g_steal_pointer (&out), FALSE);
}

/* Validates VALUE for KEY and stores it in CFG. Errors name nothing: the
 * caller prefixes the key as the user wrote it. */
static gboolean
config_apply (WspConfig *cfg, const ConfigKey *key, const char *raw, GError **error)
{
  gpointer field = G_STRUCT_MEMBER_P (cfg, key->offset);
  g_autofree char *value = g_strstrip (g_strdup (raw));

  switch (key->kind)
    {
    case KIND_PROJECT_ID:
      if (!is_project_id (value))
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                       "'%s' is not a project id (26 lowercase base32 characters)", value);
          return FALSE;
        }
      break;
    case KIND_NAME:
      break;
    case KIND_PREFIX:
      if (!wsp_task_prefix_is_valid (value))
        {
          g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                       "bad prefix '%s' (expected [a-z][a-z0-9]{0,15})", value);
          return FALSE;
        }
      break;
    case KIND_LISTEN_LOOPBACK:
      if (!check_listen (value, TRUE, error))
        return FALSE;
      break;
    case KIND_LISTEN_OPTIONAL:
      if (*value == '\0' || strcmp (value, "off") == 0)
        {
          g_clear_pointer ((char **) field, g_free);
          return TRUE;
        }
      if (!check_listen (value, FALSE, error))
        return FALSE;
      break;
    case KIND_LOG_LEVEL:
      {
        static const char *const levels[] = { "error", "warning", "info", "debug", NULL };
        if (!g_strv_contains (levels, value))
          {
            g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                         "unknown log level '%s' (expected error, warning, info or debug)", value);
            return FALSE;
          }
      }
      break;
    case KIND_MILLISECONDS:
      {
        guint64 ms = 0;
        g_autoptr(GError) local = NULL;
        if (!g_ascii_string_to_unsigned (value, 10, 0, WSP_DEBOUNCE_MAX_MS, &ms, &local))
          {
            g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                         "'%s' is not a number of milliseconds (expected 0-%d)", value,
                         WSP_DEBOUNCE_MAX_MS);
            return FALSE;
          }
        *(guint *) field = (guint) ms;
        return TRUE;
      }
    case KIND_STATUSES:
      {
        g_auto(GStrv) list = split_list (value);
        if (list[0] == NULL)
          {
            g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG, "empty list of statuses");
            return FALSE;
          }
        for (guint i = 0; list[i] != NULL; i++)
          for (guint j = 0; j < i; j++)
            if (strcmp (list[i], list[j]) == 0)
              {
                g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                             "duplicate status '%s'", list[i]);
                return FALSE;
              }
        g_strfreev (*(char ***) field);
        *(char ***) field = g_steal_pointer (&list);
        return TRUE;
      }
    case KIND_WS_URLS:
    case KIND_IP_LIST:
    case KIND_STRING_LIST:
      {
        g_auto(GStrv) list = split_list (value);
        for (guint i = 0; list[i] != NULL; i++)
          {
            if (key->kind == KIND_WS_URLS && !g_str_has_prefix (list[i], "ws://")
                && !g_str_has_prefix (list[i], "wss://"))
              {
                g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                             "'%s' is not a ws:// or wss:// URL", list[i]);
                return FALSE;
              }
            if (key->kind == KIND_IP_LIST && !g_hostname_is_ip_address (list[i]))
              {
                g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG,
                             "'%s' is not an IP address", list[i]);
                return FALSE;
              }
          }
        g_strfreev (*(char ***) field);
        *(char ***) field = g_steal_pointer (&list);
        return TRUE;
      }
    }

  g_free (*(char **) field);
  *(char **) field = g_steal_pointer (&value);
  return TRUE;
}

static gboolean
config_apply_named (WspConfig *cfg, const ConfigKey *key, const char *value,
                    const char *name, GError **error)
{
  if (!config_apply (cfg, key, value, error))
    {
      g_prefix_error (error, "%s: ", name);
      return FALSE;
    }
  return TRUE;
}

static void
config_set_defaults (WspConfig *cfg)
{
  static const char *const statuses[] = { "todo", "in_progress", "done", NULL };
  memset (cfg, 0, sizeof *cfg);
  cfg->prefix = g_strdup ("ws");
  cfg->statuses = g_strdupv ((char **) statuses);
  cfg->listen = g_strdup ("127.0.0.1:0");
  cfg->log_level = g_strdup ("info");
  cfg->signal_urls = g_new0 (char *, 1);
  cfg->ice_addresses = g_new0 (char *, 1);
  cfg->stun_servers = g_new0 (char *, 1);
  cfg->turn_servers = g_new0 (char *, 1);
  cfg->debounce_ms = 25;
}

static gboolean
config_load_layers (const WspPaths *paths, const WspConfigFlags *flags,
                    WspConfig *cfg, GError **error)
{
  g_autoptr(GKeyFile) kf = g_key_file_new ();
  g_autoptr(GError) local = NULL;

  if (!g_key_file_load_from_file (kf, paths->config_path, G_KEY_FILE_NONE, &local))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG, "failed to read config '%s': %s",
                   paths->config_path, local->message);
      return FALSE;
    }

  for (gsize i = 0; i < G_N_ELEMENTS (config_keys); i++)
    {
      const ConfigKey *key = &config_keys[i];
      g_autofree char *value = g_key_file_get_string (kf, key->group, key->key, NULL);
      if (value == NULL)
        continue;
      g_autofree char *name = g_strdup_printf ("[%s] %s", key->group, key->key);
      if (!config_apply_named (cfg, key, value, name, error))
        return FALSE;
    }
  if (cfg->project_id == NULL)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG, "[project] id: missing in '%s'",
                   paths->config_path);
      return FALSE;
    }
  if (cfg->project_name == NULL || *cfg->project_name == '\0')
    {
      g_autofree char *parent = g_path_get_dirname (paths->root);
      g_free (cfg->project_name);
      cfg->project_name = g_path_get_basename (parent);
    }

  /* An empty WSP_* variable counts as unset, as shells make them easily. */
  for (gsize i = 0; i < G_N_ELEMENTS (config_keys); i++)
    {
      const ConfigKey *key = &config_keys[i];
      const char *value = key->env != NULL ? g_getenv (key->env) : NULL;
      if (value == NULL || *value == '\0')
        continue;
      if (!config_apply_named (cfg, key, value, key->env, error))
        return FALSE;
    }

  if (flags == NULL)
    return TRUE;
  if (flags->listen != NULL
      && !config_apply_named (cfg, config_key_find ("daemon", "listen"), flags->listen, "--listen", error))
    return FALSE;
  if (flags->peer_listen != NULL
      && !config_apply_named (cfg, config_key_find ("sync", "listen"), flags->peer_listen,
                              "--peer-listen", error))
    return FALSE;
  if (flags->log_level != NULL
      && !config_apply_named (cfg, config_key_find ("daemon", "log_level"), flags->log_level,
                              "--log-level", error))
    return FALSE;
  if (flags->ice_addresses != NULL)
    {
      g_autofree char *joined = g_strjoinv (",", (char **) flags->ice_addresses);
      if (!config_apply_named (cfg, config_key_find ("sync", "ice_addresses"), joined,
                               "--ice-address", error))
        return FALSE;
    }
  return TRUE;
}

gboolean
wsp_config_load (const WspPaths *paths, const WspConfigFlags *flags,
                 WspConfig *out, GError **error)
{
  WspConfig cfg;
  config_set_defaults (&cfg);
  if (!config_load_layers (paths, flags, &cfg, error))
    {
      wsp_config_clear (&cfg);
      return FALSE;
    }
  *out = cfg;
  return TRUE;
}

gboolean
wsp_config_file_set (const WspPaths *paths, const char *group, const char *key,
                     const char *value, GError **error)
{
  const ConfigKey *k = config_key_lookup (group, key);
  g_autofree char *name = g_strdup_printf ("[%s] %s", group, key);
  if (k == NULL)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG, "%s: no such configuration key", name);
      return FALSE;
    }

  /* Validate on a scratch configuration, exactly as loading will. */
  WspConfig scratch;
  config_set_defaults (&scratch);
  gboolean ok = config_apply_named (&scratch, k, value, name, error);
  wsp_config_clear (&scratch);
  if (!ok)
    return FALSE;

  g_autoptr(GKeyFile) kf = g_key_file_new ();
  g_autoptr(GError) local = NULL;
  if (!g_key_file_load_from_file (kf, paths->config_path,
                                  G_KEY_FILE_KEEP_COMMENTS | G_KEY_FILE_KEEP_TRANSLATIONS, &local))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CONFIG, "failed to read config '%s': %s",
                   paths->config_path, local->message);
      return FALSE;
    }
  /* set_string escapes what GKeyFile must (leading spaces, \n, \\), and
   * get_string on load undoes it: the loader sees VALUE unchanged. */
  g_key_file_set_string (kf, group, key, value);
  gsize len = 0;
  g_autofree char *text = g_key_file_to_data (kf, &len, NULL);
  return wsp_write_file_atomic (paths->config_path, text, len, 0644, error);
}

/* ---- secrets -------------------------------------------------------------- */

/* Reads a .wsp/ file of exactly LEN bytes. */
static gboolean
read_exact (const WspPaths *paths, const char *name, const char *what,
            guint8 *out, gsize len, GError **error)
{
  g_autofree char *path = g_build_filename (paths->wsp_dir, name, NULL);
  g_autofree char *data = NULL;
  gsize got = 0;

  if (!g_file_get_contents (path, &data, &got, error))
    {
      g_prefix_error (error, "failed to read %s: ", what);
      return FALSE;
    }
  if (got != len)
    {
      sodium_memzero (data, got);
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT,
                   "failed to read %s '%s': it holds %" G_GSIZE_FORMAT " bytes, expected %" G_GSIZE_FORMAT,
                   what, path, got, len);
      return FALSE;
    }
  memcpy (out, data, len);
  sodium_memzero (data, got);
  return TRUE;
}

gboolean
wsp_workspace_load_identity (const WspPaths *paths, WspIdentity *out, GError **error)
{
  guint8 seed[WSP_SEED_LEN];
  if (!read_exact (paths, "identity.key", "identity", seed, sizeof seed, error))
    return FALSE;
  wsp_identity_from_seed (out, seed);
  sodium_memzero (seed, sizeof seed);
  return TRUE;
}

gboolean
wsp_workspace_load_secret (const WspPaths *paths, guint8 out[32], GError **error)
{
  return read_exact (paths, "project.secret", "project secret", out, WSP_SECRET_LEN, error);
}

char *
wsp_workspace_load_token (const WspPaths *paths, GError **error)
{
  g_autofree char *path = g_build_filename (paths->wsp_dir, "token", NULL);
  g_autofree char *data = NULL;
  gsize len = 0;

  if (!g_file_get_contents (path, &data, &len, error))
    {
      g_prefix_error (error, "failed to read token: ");
      return NULL;
    }
  if (len > WSP_TOKEN_MAX)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT,
                   "failed to read token '%s': %" G_GSIZE_FORMAT " bytes is too long", path, len);
      return NULL;
    }
  /* It goes into an HTTP header: visible ASCII only, nothing NUL-cut. */
  gboolean visible = memchr (data, '\0', len) == NULL;
  g_strstrip (data);
  if (*data == '\0')
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT, "failed to read token '%s': it is empty", path);
      return NULL;
    }
  for (const char *c = data; visible && *c != '\0'; c++)
    visible = *c > 0x20 && *c < 0x7f;
  if (!visible)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT,
                   "failed to read token '%s': it holds characters other than visible ASCII", path);
      return NULL;
    }
  return g_steal_pointer (&data);
}

/* ---- the single-daemon lock --------------------------------------------- */

struct _WspLock {
  int   fd;
  char *path;
};

WspLock *
wsp_lock_acquire (const WspPaths *paths, GError **error)
{
  g_autofree char *path = g_build_filename (paths->wsp_dir, "daemon.lock", NULL);
  int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  int saved;

  if (fd < 0)
    {
      saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "failed to open lock '%s': %s", path, g_strerror (saved));
      return NULL;
    }
  while (flock (fd, LOCK_EX | LOCK_NB) != 0)
    {
      saved = errno;
      if (saved == EINTR)
        continue;
      if (saved == EWOULDBLOCK)
        {
          char buf[32] = { 0 };
          ssize_t n = pread (fd, buf, sizeof buf - 1, 0);
          guint64 pid = 0;
          close (fd);
          if (n > 0)
            buf[n] = '\0';
          g_strstrip (buf);
          if (n > 0 && g_ascii_string_to_unsigned (buf, 10, 1, G_MAXINT, &pid, NULL))
            g_set_error (error, WSP_ERROR, WSP_ERROR_BUSY,
                         "failed to lock '%s': another wspd (pid %" G_GUINT64_FORMAT
                         ") is running for this workspace", path, pid);
          else
            g_set_error (error, WSP_ERROR, WSP_ERROR_BUSY,
                         "failed to lock '%s': another wspd is running for this workspace", path);
          return NULL;
        }
      close (fd);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "failed to lock '%s': %s", path, g_strerror (saved));
      return NULL;
    }

  g_autofree char *pid = g_strdup_printf ("%ld\n", (long) getpid ());
  if (ftruncate (fd, 0) != 0 || pwrite (fd, pid, strlen (pid), 0) != (ssize_t) strlen (pid))
    {
      saved = errno;
      close (fd);
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "failed to write pid into lock '%s': %s", path, g_strerror (saved));
      return NULL;
    }

  WspLock *lock = g_new0 (WspLock, 1);
  lock->fd = fd;
  lock->path = g_steal_pointer (&path);
  return lock;
}

void
wsp_lock_release (WspLock *lock)
{
  if (lock == NULL)
    return;
  /* Clear the pid while still holding the lock, so nobody reads a stale
   * one; the file itself stays (unlinking a lock file races). */
  (void) ftruncate (lock->fd, 0);
  close (lock->fd);
  g_free (lock->path);
  g_free (lock);
}

/* ---- daemon.json ------------------------------------------------------------ */

void
wsp_daemon_info_clear (WspDaemonInfo *d)
{
  if (d == NULL)
    return;
  g_clear_pointer (&d->url, g_free);
  g_clear_pointer (&d->peer_id, g_free);
  g_clear_pointer (&d->project_id, g_free);
  g_clear_pointer (&d->peer_url, g_free);
  d->pid = 0;
}

static char *
daemon_json_path (const WspPaths *paths)
{
  return g_build_filename (paths->wsp_dir, "daemon.json", NULL);
}

static void
builder_add_string_or_null (JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name (b, name);
  if (value != NULL)
    json_builder_add_string_value (b, value);
  else
    json_builder_add_null_value (b);
}

gboolean
wsp_daemon_info_write (const WspPaths *paths, const WspDaemonInfo *d, GError **error)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "pid");
  json_builder_add_int_value (b, d->pid);
  builder_add_string_or_null (b, "url", d->url);
  builder_add_string_or_null (b, "peer_id", d->peer_id);
  builder_add_string_or_null (b, "project_id", d->project_id);
  builder_add_string_or_null (b, "peer_url", d->peer_url);
  json_builder_end_object (b);

  g_autoptr(JsonNode) root = json_builder_get_root (b);
  g_autoptr(JsonGenerator) gen = json_generator_new ();
  json_generator_set_root (gen, root);
  gsize len = 0;
  g_autofree char *text = json_generator_to_data (gen, &len);
  g_autofree char *line = g_strconcat (text, "\n", NULL);
  g_autofree char *path = daemon_json_path (paths);
  return wsp_write_file_atomic (path, line, len + 1, 0644, error);
}

/* A string member, or NULL when absent or null; FALSE when of another type. */
static gboolean
member_string (JsonObject *obj, const char *name, char **out)
{
  JsonNode *n = json_object_get_member (obj, name);
  *out = NULL;
  if (n == NULL || JSON_NODE_HOLDS_NULL (n))
    return TRUE;
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_STRING)
    return FALSE;
  *out = g_strdup (json_node_get_string (n));
  return TRUE;
}

gboolean
wsp_daemon_info_read (const WspPaths *paths, WspDaemonInfo *out, GError **error)
{
  g_autofree char *path = daemon_json_path (paths);
  g_autofree char *text = NULL;
  gsize len = 0;
  g_autoptr(GError) local = NULL;

  if (!g_file_get_contents (path, &text, &len, &local))
    {
      if (g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        g_set_error (error, WSP_ERROR, WSP_ERROR_NOT_FOUND,
                     "no daemon is running for this workspace ('%s' does not exist)", path);
      else
        g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "failed to read '%s': %s", path,
                     local->message);
      return FALSE;
    }
  if (len > WSP_DAEMON_JSON_MAX)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT, "failed to parse '%s': too large", path);
      return FALSE;
    }

  g_autoptr(JsonParser) parser = json_parser_new_immutable ();
  if (!json_parser_load_from_data (parser, text, (gssize) len, &local))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT, "failed to parse '%s': %s", path,
                   local->message);
      return FALSE;
    }
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT, "failed to parse '%s': not a JSON object", path);
      return FALSE;
    }
  JsonObject *obj = json_node_get_object (root);
  JsonNode *pid = json_object_get_member (obj, "pid");
  if (pid == NULL || !JSON_NODE_HOLDS_VALUE (pid) || json_node_get_value_type (pid) != G_TYPE_INT64
      || json_node_get_int (pid) <= 0)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT,
                   "failed to parse '%s': \"pid\" is not a positive integer", path);
      return FALSE;
    }

  WspDaemonInfo d = { .pid = json_node_get_int (pid) };
  static const char *const names[] = { "url", "peer_id", "project_id", "peer_url" };
  char **fields[] = { &d.url, &d.peer_id, &d.project_id, &d.peer_url };
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    if (!member_string (obj, names[i], fields[i]))
      {
        wsp_daemon_info_clear (&d);
        g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT,
                     "failed to parse '%s': \"%s\" is not a string", path, names[i]);
        return FALSE;
      }
  if (d.url == NULL || (!g_str_has_prefix (d.url, "http://") && !g_str_has_prefix (d.url, "https://")))
    {
      wsp_daemon_info_clear (&d);
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT,
                   "failed to parse '%s': \"url\" is not an http:// URL", path);
      return FALSE;
    }
  *out = d;
  return TRUE;
}

void
wsp_daemon_info_remove (const WspPaths *paths)
{
  g_autofree char *path = daemon_json_path (paths);
  (void) unlink (path);
}
