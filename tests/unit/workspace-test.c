/* workspace-test.c — pins src/workspace/wsp-workspace.c: init's files and
 * modes, discovery (explicit, $WSP_WORKSPACE, walking up), configuration
 * precedence and validation (every bad value names its key), secrets, the
 * single-daemon lock and daemon.json.
 *
 * Every test works in its own temporary directory and leaves the process's
 * cwd and WSP_* environment as it found them.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <gio/gio.h>

#include "common/wsp-common.h"
#include "workspace/wsp-workspace.h"

static const char *const wsp_env_vars[] = {
  "WSP_WORKSPACE", "WSP_LISTEN", "WSP_PEER_LISTEN", "WSP_LOG_LEVEL", "WSP_PREFIX",
  "WSP_STATUSES", "WSP_ICE_ADDRESSES", "WSP_SIGNAL_URLS", "WSP_STUN_SERVERS",
  "WSP_TURN_SERVERS", "WSP_DEBOUNCE_MS", NULL,
};

static void
clear_env (void)
{
  for (guint i = 0; wsp_env_vars[i] != NULL; i++)
    g_unsetenv (wsp_env_vars[i]);
}

typedef struct {
  char     *dir;     /* temporary project directory */
  WspPaths  paths;   /* its .workspace/ after init */
} Fixture;


static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  clear_env ();
  f->dir = g_dir_make_tmp ("wsp-workspace-test-XXXXXX", &error);
  g_assert_no_error (error);
  g_assert_true (wsp_workspace_init (f->dir, NULL, NULL, &f->paths, &error));
  g_assert_no_error (error);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  clear_env ();
  wsp_paths_clear (&f->paths);
  wsp_remove_tree (f->dir);
  g_free (f->dir);
}

static void
assert_file (const char *dir, const char *name, int mode, gssize size)
{
  g_autofree char *path = g_build_filename (dir, name, NULL);
  struct stat st;
  g_assert_cmpint (g_stat (path, &st), ==, 0);
  g_assert_cmpint (st.st_mode & 0777, ==, mode);
  if (size >= 0)
    g_assert_cmpint (st.st_size, ==, size);
}

/* Replaces .workspace/config with TEXT. */
static void
write_config (Fixture *f, const char *text)
{
  g_autoptr(GError) error = NULL;
  g_assert_true (wsp_write_file_atomic (f->paths.config_path, text, strlen (text), 0644, &error));
  g_assert_no_error (error);
}

/* A config with a valid [project] section and EXTRA appended. */
static void
write_config_with (Fixture *f, const char *extra)
{
  g_autofree char *text = g_strdup_printf ("[project]\nid=abcdefghijklmnopqrstuvwxyz\n%s", extra);
  write_config (f, text);
}

/* ---- init ----------------------------------------------------------------- */

static void
test_init_creates_files (Fixture *f, gconstpointer data)
{
  g_autofree char *expect_root = g_build_filename (f->dir, ".workspace", NULL);
  g_assert_cmpstr (f->paths.root, ==, expect_root);
  g_assert_true (g_file_test (f->paths.tasks_dir, G_FILE_TEST_IS_DIR));
  g_assert_true (g_file_test (f->paths.wsp_dir, G_FILE_TEST_IS_DIR));
  g_assert_true (g_str_has_suffix (f->paths.db_path, "/.workspace/.wsp/state.db"));

  assert_file (f->paths.wsp_dir, "identity.key", 0600, 32);
  assert_file (f->paths.wsp_dir, "project.secret", 0600, 32);
  assert_file (f->paths.wsp_dir, "token", 0600, -1);

  g_autofree char *gitignore_path = g_build_filename (f->paths.wsp_dir, ".gitignore", NULL);
  g_autofree char *gitignore = NULL;
  g_assert_true (g_file_get_contents (gitignore_path, &gitignore, NULL, NULL));
  g_assert_cmpstr (gitignore, ==, "*\n");

  g_autoptr(GError) error = NULL;
  g_autofree char *token = wsp_workspace_load_token (&f->paths, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (strlen (token), ==, 64);
  g_assert_cmpuint (strspn (token, "0123456789abcdef"), ==, 64);

  WspConfig cfg;
  g_assert_true (wsp_config_load (&f->paths, NULL, &cfg, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (strlen (cfg.project_id), ==, 26);
  g_autofree char *base = g_path_get_basename (f->dir);
  g_assert_cmpstr (cfg.project_name, ==, base);
  g_assert_cmpstr (cfg.prefix, ==, "ws");
  g_assert_cmpuint (g_strv_length (cfg.statuses), ==, 3);
  g_assert_cmpstr (cfg.statuses[0], ==, "todo");
  g_assert_cmpstr (cfg.statuses[1], ==, "in_progress");
  g_assert_cmpstr (cfg.statuses[2], ==, "done");
  g_assert_cmpstr (cfg.listen, ==, "127.0.0.1:0");
  g_assert_cmpstr (cfg.log_level, ==, "info");
  g_assert_null (cfg.peer_listen);
  g_assert_cmpuint (g_strv_length (cfg.ice_addresses), ==, 0);
  g_assert_cmpuint (cfg.debounce_ms, ==, 25);
  wsp_config_clear (&cfg);
}

static void
test_init_refuses_existing (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  WspPaths p = { 0 };
  g_assert_false (wsp_workspace_init (f->dir, NULL, NULL, &p, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_CONFLICT);
  g_assert_nonnull (strstr (error->message, "already exists"));
  /* The existing workspace is untouched. */
  assert_file (f->paths.wsp_dir, "identity.key", 0600, 32);
}

static void
test_init_given_project (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *tmp = g_dir_make_tmp ("wsp-workspace-test-XXXXXX", &error);
  g_autofree char *dir = g_build_filename (tmp, "new", "project", NULL);
  guint8 secret[32];
  for (guint i = 0; i < sizeof secret; i++)
    secret[i] = (guint8) i;

  WspPaths p;
  g_assert_true (wsp_workspace_init (dir, "abcdefghijklmnopqrstuvwxyz", secret, &p, &error));
  g_assert_no_error (error);

  guint8 got[32];
  g_assert_true (wsp_workspace_load_secret (&p, got, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (got, sizeof got, secret, sizeof secret);

  WspConfig cfg;
  g_assert_true (wsp_config_load (&p, NULL, &cfg, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (cfg.project_id, ==, "abcdefghijklmnopqrstuvwxyz");
  g_assert_cmpstr (cfg.project_name, ==, "project");
  wsp_config_clear (&cfg);
  wsp_paths_clear (&p);
  wsp_remove_tree (tmp);
}

static void
test_init_fresh_ids_differ (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *other = g_build_filename (f->dir, "other", NULL);
  WspPaths p;
  g_assert_true (wsp_workspace_init (other, NULL, NULL, &p, &error));
  g_assert_no_error (error);

  guint8 s1[32], s2[32];
  g_assert_true (wsp_workspace_load_secret (&f->paths, s1, &error));
  g_assert_true (wsp_workspace_load_secret (&p, s2, &error));
  g_assert_true (memcmp (s1, s2, sizeof s1) != 0);

  WspConfig c1, c2;
  g_assert_true (wsp_config_load (&f->paths, NULL, &c1, &error));
  g_assert_true (wsp_config_load (&p, NULL, &c2, &error));
  g_assert_cmpstr (c1.project_id, !=, c2.project_id);
  wsp_config_clear (&c1);
  wsp_config_clear (&c2);
  wsp_paths_clear (&p);
}

/* ---- discovery ------------------------------------------------------------ */

static void
test_find_nested (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *nested = g_build_filename (f->dir, "a", "b", "c", NULL);
  g_autofree char *old_cwd = g_get_current_dir ();
  g_assert_cmpint (g_mkdir_with_parents (nested, 0755), ==, 0);
  g_assert_cmpint (chdir (nested), ==, 0);

  WspPaths p;
  gboolean ok = wsp_workspace_find (NULL, &p, &error);
  g_assert_cmpint (chdir (old_cwd), ==, 0);
  g_assert_no_error (error);
  g_assert_true (ok);
  g_assert_cmpstr (p.root, ==, f->paths.root);
  g_assert_cmpstr (p.config_path, ==, f->paths.config_path);
  wsp_paths_clear (&p);

  /* From inside .workspace/tasks itself too. */
  g_assert_cmpint (chdir (f->paths.tasks_dir), ==, 0);
  ok = wsp_workspace_find (NULL, &p, &error);
  g_assert_cmpint (chdir (old_cwd), ==, 0);
  g_assert_no_error (error);
  g_assert_true (ok);
  g_assert_cmpstr (p.root, ==, f->paths.root);
  wsp_paths_clear (&p);
}

static void
test_find_env (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  WspPaths p;

  g_setenv ("WSP_WORKSPACE", f->dir, TRUE);
  g_assert_true (wsp_workspace_find (NULL, &p, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (p.root, ==, f->paths.root);
  wsp_paths_clear (&p);

  /* The .workspace directory itself is accepted too. */
  g_setenv ("WSP_WORKSPACE", f->paths.root, TRUE);
  g_assert_true (wsp_workspace_find (NULL, &p, &error));
  g_assert_cmpstr (p.root, ==, f->paths.root);
  wsp_paths_clear (&p);

  g_autofree char *missing = g_build_filename (f->dir, "missing", NULL);
  g_setenv ("WSP_WORKSPACE", missing, TRUE);
  g_assert_false (wsp_workspace_find (NULL, &p, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, "WSP_WORKSPACE"));
  g_assert_nonnull (strstr (error->message, missing));
}

static void
test_find_explicit (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  WspPaths p;

  /* The explicit directory wins over the environment. */
  g_autofree char *missing = g_build_filename (f->dir, "missing", NULL);
  g_setenv ("WSP_WORKSPACE", missing, TRUE);
  g_assert_true (wsp_workspace_find (f->dir, &p, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (p.root, ==, f->paths.root);
  wsp_paths_clear (&p);

  g_assert_true (wsp_workspace_find (f->paths.root, &p, &error));
  g_assert_cmpstr (p.root, ==, f->paths.root);
  wsp_paths_clear (&p);

  /* A relative path resolves against the cwd. */
  g_autofree char *old_cwd = g_get_current_dir ();
  g_autofree char *parent = g_path_get_dirname (f->dir);
  g_autofree char *base = g_path_get_basename (f->dir);
  g_assert_cmpint (chdir (parent), ==, 0);
  gboolean ok = wsp_workspace_find (base, &p, &error);
  g_assert_cmpint (chdir (old_cwd), ==, 0);
  g_assert_no_error (error);
  g_assert_true (ok);
  g_assert_cmpstr (p.root, ==, f->paths.root);
  wsp_paths_clear (&p);

  g_assert_false (wsp_workspace_find (missing, &p, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, missing));
}

/* ---- configuration -------------------------------------------------------- */

static void
test_config_precedence (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  WspConfig cfg;

  write_config_with (f,
                     "name=demo\nprefix=abc\nstatuses= backlog , doing,review ;done\n"
                     "[daemon]\nlisten=127.0.0.1:1111\nlog_level=debug\ndebounce_ms=40\n"
                     "[sync]\nlisten=0.0.0.0:7000\nice_addresses=127.0.0.1\n"
                     "signal_urls=ws://a.example:1/api/v1/signal,wss://b.example/api/v1/signal\n"
                     "stun_servers=stun://stun.example:3478\n");

  /* File over defaults. */
  g_assert_true (wsp_config_load (&f->paths, NULL, &cfg, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (cfg.project_name, ==, "demo");
  g_assert_cmpstr (cfg.prefix, ==, "abc");
  g_assert_cmpuint (g_strv_length (cfg.statuses), ==, 4);
  g_assert_cmpstr (cfg.statuses[0], ==, "backlog");
  g_assert_cmpstr (cfg.statuses[1], ==, "doing");
  g_assert_cmpstr (cfg.statuses[3], ==, "done");
  g_assert_cmpstr (cfg.listen, ==, "127.0.0.1:1111");
  g_assert_cmpstr (cfg.log_level, ==, "debug");
  g_assert_cmpuint (cfg.debounce_ms, ==, 40);
  g_assert_cmpstr (cfg.peer_listen, ==, "0.0.0.0:7000");
  g_assert_cmpuint (g_strv_length (cfg.ice_addresses), ==, 1);
  g_assert_cmpuint (g_strv_length (cfg.signal_urls), ==, 2);
  g_assert_cmpstr (cfg.stun_servers[0], ==, "stun://stun.example:3478");
  g_assert_cmpuint (g_strv_length (cfg.turn_servers), ==, 0);
  wsp_config_clear (&cfg);

  /* Environment over the file. */
  g_setenv ("WSP_LISTEN", "127.0.0.1:2222", TRUE);
  g_setenv ("WSP_LOG_LEVEL", "warning", TRUE);
  g_setenv ("WSP_PREFIX", "env", TRUE);
  g_setenv ("WSP_ICE_ADDRESSES", "127.0.0.1, ::1", TRUE);
  g_setenv ("WSP_DEBOUNCE_MS", "7", TRUE);
  g_setenv ("WSP_PEER_LISTEN", "off", TRUE);
  g_setenv ("WSP_STATUSES", "", TRUE);   /* empty: unset */
  g_assert_true (wsp_config_load (&f->paths, NULL, &cfg, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (cfg.listen, ==, "127.0.0.1:2222");
  g_assert_cmpstr (cfg.log_level, ==, "warning");
  g_assert_cmpstr (cfg.prefix, ==, "env");
  g_assert_cmpuint (g_strv_length (cfg.ice_addresses), ==, 2);
  g_assert_cmpstr (cfg.ice_addresses[1], ==, "::1");
  g_assert_cmpuint (cfg.debounce_ms, ==, 7);
  g_assert_null (cfg.peer_listen);
  g_assert_cmpuint (g_strv_length (cfg.statuses), ==, 4);
  wsp_config_clear (&cfg);

  /* Flags over the environment. */
  const char *const ice[] = { "10.0.0.1", NULL };
  WspConfigFlags flags = {
    .listen = "[::1]:3333", .peer_listen = "127.0.0.1:4444", .log_level = "error",
    .ice_addresses = ice,
  };
  g_assert_true (wsp_config_load (&f->paths, &flags, &cfg, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (cfg.listen, ==, "[::1]:3333");
  g_assert_cmpstr (cfg.peer_listen, ==, "127.0.0.1:4444");
  g_assert_cmpstr (cfg.log_level, ==, "error");
  g_assert_cmpuint (g_strv_length (cfg.ice_addresses), ==, 1);
  g_assert_cmpstr (cfg.ice_addresses[0], ==, "10.0.0.1");
  g_assert_cmpstr (cfg.prefix, ==, "env");   /* no flag for it */
  wsp_config_clear (&cfg);
}

typedef struct {
  const char *config;     /* appended after a valid [project] id */
  const char *key;        /* the name the error must carry */
} BadConfig;

static const BadConfig bad_configs[] = {
  { "[daemon]\nlisten=127.0.0.1\n",            "[daemon] listen" },
  { "[daemon]\nlisten=127.0.0.1:99999\n",      "[daemon] listen" },
  { "[daemon]\nlisten=127.0.0.1:http\n",       "[daemon] listen" },
  { "[daemon]\nlisten=127.0.0.1:-1\n",         "[daemon] listen" },
  { "[daemon]\nlisten=not an ip:80\n",         "[daemon] listen" },
  { "[daemon]\nlisten=0.0.0.0:80\n",           "[daemon] listen" },   /* not loopback */
  { "[daemon]\nlisten=::1:80\n",               "[daemon] listen" },   /* needs brackets */
  { "[daemon]\nlog_level=verbose\n",           "[daemon] log_level" },
  { "[daemon]\ndebounce_ms=soon\n",            "[daemon] debounce_ms" },
  { "[daemon]\ndebounce_ms=-5\n",              "[daemon] debounce_ms" },
  { "[daemon]\ndebounce_ms=10ms\n",            "[daemon] debounce_ms" },
  { "prefix=WS\n",                             "[project] prefix" },
  { "prefix=1ws\n",                            "[project] prefix" },
  { "prefix=abcdefghijklmnopq\n",              "[project] prefix" },   /* 17 chars */
  { "prefix=\n",                               "[project] prefix" },
  { "statuses=\n",                             "[project] statuses" },
  { "statuses= , ,\n",                         "[project] statuses" },
  { "statuses=todo,done,todo\n",               "[project] statuses" },
  { "[sync]\nlisten=host:port\n",              "[sync] listen" },
  { "[sync]\nice_addresses=127.0.0.1,nope\n",  "[sync] ice_addresses" },
  { "[sync]\nsignal_urls=http://x/\n",         "[sync] signal_urls" },
};

static void
test_config_bad_values (Fixture *f, gconstpointer data)
{
  for (gsize i = 0; i < G_N_ELEMENTS (bad_configs); i++)
    {
      g_autoptr(GError) error = NULL;
      WspConfig cfg;
      write_config_with (f, bad_configs[i].config);
      g_assert_false (wsp_config_load (&f->paths, NULL, &cfg, &error));
      g_assert_error (error, WSP_ERROR, WSP_ERROR_CONFIG);
      if (!g_str_has_prefix (error->message, bad_configs[i].key))
        g_error ("config %s: message '%s' does not start with '%s'",
                 bad_configs[i].config, error->message, bad_configs[i].key);
    }
}

static void
test_config_bad_project_id (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  WspConfig cfg;

  write_config (f, "[project]\nid=short\n");
  g_assert_false (wsp_config_load (&f->paths, NULL, &cfg, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_CONFIG);
  g_assert_true (g_str_has_prefix (error->message, "[project] id"));
  g_clear_error (&error);

  write_config (f, "[project]\nname=x\n");
  g_assert_false (wsp_config_load (&f->paths, NULL, &cfg, &error));
  g_assert_true (g_str_has_prefix (error->message, "[project] id"));
  g_clear_error (&error);

  write_config (f, "this is not an ini file\n");
  g_assert_false (wsp_config_load (&f->paths, NULL, &cfg, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, f->paths.config_path));
  g_clear_error (&error);

  g_assert_cmpint (g_unlink (f->paths.config_path), ==, 0);
  g_assert_false (wsp_config_load (&f->paths, NULL, &cfg, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_CONFIG);
  g_assert_nonnull (strstr (error->message, f->paths.config_path));
}

typedef struct {
  const char *env;
  const char *value;
} BadEnv;

static const BadEnv bad_envs[] = {
  { "WSP_LISTEN",        "localhost:nope" },
  { "WSP_LISTEN",        "192.168.1.1:80" },
  { "WSP_PEER_LISTEN",   "1.2.3.4" },
  { "WSP_LOG_LEVEL",     "loud" },
  { "WSP_PREFIX",        "Bad-Prefix" },
  { "WSP_STATUSES",      "a,b,a" },
  { "WSP_ICE_ADDRESSES", "127.0.0.1,example.com" },
  { "WSP_DEBOUNCE_MS",   "abc" },
  { "WSP_DEBOUNCE_MS",   "99999999" },
};

static void
test_config_bad_env (Fixture *f, gconstpointer data)
{
  for (gsize i = 0; i < G_N_ELEMENTS (bad_envs); i++)
    {
      g_autoptr(GError) error = NULL;
      WspConfig cfg;
      clear_env ();
      g_setenv (bad_envs[i].env, bad_envs[i].value, TRUE);
      g_assert_false (wsp_config_load (&f->paths, NULL, &cfg, &error));
      g_assert_error (error, WSP_ERROR, WSP_ERROR_CONFIG);
      if (!g_str_has_prefix (error->message, bad_envs[i].env))
        g_error ("%s=%s: message '%s' does not name the variable", bad_envs[i].env,
                 bad_envs[i].value, error->message);
    }
}

static void
test_config_bad_flags (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  WspConfig cfg;

  WspConfigFlags listen = { .listen = "127.0.0.1:70000" };
  g_assert_false (wsp_config_load (&f->paths, &listen, &cfg, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_CONFIG);
  g_assert_true (g_str_has_prefix (error->message, "--listen: "));
  g_assert_nonnull (strstr (error->message, "70000"));
  g_clear_error (&error);

  WspConfigFlags level = { .log_level = "trace" };
  g_assert_false (wsp_config_load (&f->paths, &level, &cfg, &error));
  g_assert_true (g_str_has_prefix (error->message, "--log-level: "));
  g_clear_error (&error);

  const char *const ice[] = { "127.0.0.1", "bogus", NULL };
  WspConfigFlags ice_flags = { .ice_addresses = ice };
  g_assert_false (wsp_config_load (&f->paths, &ice_flags, &cfg, &error));
  g_assert_true (g_str_has_prefix (error->message, "--ice-address: "));
  g_assert_nonnull (strstr (error->message, "bogus"));
}

/* ---- secrets ----------------------------------------------------------------- */

static void
test_secrets_load (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  WspIdentity id;
  g_assert_true (wsp_workspace_load_identity (&f->paths, &id, &error));
  g_assert_no_error (error);

  g_autofree char *key_path = g_build_filename (f->paths.wsp_dir, "identity.key", NULL);
  g_autofree char *seed = NULL;
  gsize len = 0;
  g_assert_true (g_file_get_contents (key_path, &seed, &len, NULL));
  g_assert_cmpmem (id.seed, sizeof id.seed, seed, len);

  /* A token with surrounding whitespace is trimmed. */
  g_autofree char *token_path = g_build_filename (f->paths.wsp_dir, "token", NULL);
  g_assert_true (wsp_write_file_atomic (token_path, "  abc123 \n\n", 11, 0600, &error));
  g_autofree char *token = wsp_workspace_load_token (&f->paths, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (token, ==, "abc123");
}

static void
test_secrets_wrong_size (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *key_path = g_build_filename (f->paths.wsp_dir, "identity.key", NULL);
  g_autofree char *secret_path = g_build_filename (f->paths.wsp_dir, "project.secret", NULL);
  g_autofree char *token_path = g_build_filename (f->paths.wsp_dir, "token", NULL);
  WspIdentity id;
  guint8 secret[32];

  g_assert_true (wsp_write_file_atomic (key_path, "short", 5, 0600, &error));
  g_assert_false (wsp_workspace_load_identity (&f->paths, &id, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "5 bytes"));
  g_assert_nonnull (strstr (error->message, key_path));
  g_clear_error (&error);

  guint8 big[33] = { 0 };
  g_assert_true (wsp_write_file_atomic (secret_path, big, sizeof big, 0600, &error));
  g_assert_false (wsp_workspace_load_secret (&f->paths, secret, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "33 bytes"));
  g_clear_error (&error);

  g_assert_true (wsp_write_file_atomic (token_path, " \n", 2, 0600, &error));
  g_autofree char *t1 = wsp_workspace_load_token (&f->paths, &error);
  g_assert_null (t1);
  g_assert_error (error, WSP_ERROR, WSP_ERROR_CORRUPT);
  g_assert_nonnull (strstr (error->message, "empty"));
  g_clear_error (&error);

  g_assert_true (wsp_write_file_atomic (token_path, "ab\ncd", 5, 0600, &error));
  g_autofree char *t2 = wsp_workspace_load_token (&f->paths, &error);
  g_assert_null (t2);
  g_assert_error (error, WSP_ERROR, WSP_ERROR_CORRUPT);
  g_clear_error (&error);

  g_assert_cmpint (g_unlink (token_path), ==, 0);
  g_autofree char *t3 = wsp_workspace_load_token (&f->paths, &error);
  g_assert_null (t3);
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  g_assert_true (g_str_has_prefix (error->message, "failed to read token: "));
}

/* ---- lock ------------------------------------------------------------------- */

static void
test_lock_contention (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  WspLock *first = wsp_lock_acquire (&f->paths, &error);
  g_assert_no_error (error);
  g_assert_nonnull (first);

  g_autofree char *lock_path = g_build_filename (f->paths.wsp_dir, "daemon.lock", NULL);
  g_autofree char *contents = NULL;
  g_autofree char *pid = g_strdup_printf ("%ld", (long) getpid ());
  g_assert_true (g_file_get_contents (lock_path, &contents, NULL, NULL));
  g_assert_cmpstr (g_strstrip (contents), ==, pid);

  /* flock locks belong to the open file, so a second open in this very
   * process contends like another daemon would. */
  WspLock *second = wsp_lock_acquire (&f->paths, &error);
  g_assert_null (second);
  g_assert_error (error, WSP_ERROR, WSP_ERROR_BUSY);
  g_autofree char *needle = g_strdup_printf ("pid %s", pid);
  g_assert_nonnull (strstr (error->message, needle));
  g_clear_error (&error);

  wsp_lock_release (first);
  WspLock *third = wsp_lock_acquire (&f->paths, &error);
  g_assert_no_error (error);
  g_assert_nonnull (third);
  wsp_lock_release (third);
  wsp_lock_release (NULL);
}

/* ---- daemon.json --------------------------------------------------------------- */

static void
test_daemon_info_round_trip (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  WspDaemonInfo in = {
    .pid = 4242, .url = (char *) "http://127.0.0.1:5123", .peer_id = (char *) "0123456789abcdef",
    .project_id = (char *) "abcdefghijklmnopqrstuvwxyz", .peer_url = NULL,
  };
  WspDaemonInfo out;

  g_assert_false (wsp_daemon_info_read (&f->paths, &out, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_assert_true (wsp_daemon_info_write (&f->paths, &in, &error));
  g_assert_no_error (error);

  g_autofree char *path = g_build_filename (f->paths.wsp_dir, "daemon.json", NULL);
  g_autofree char *text = NULL;
  g_assert_true (g_file_get_contents (path, &text, NULL, NULL));
  g_assert_nonnull (strstr (text, "\"pid\":4242"));
  g_assert_nonnull (strstr (text, "\"peer_url\":null"));
  g_assert_nonnull (strstr (text, "\"url\":\"http://127.0.0.1:5123\""));

  g_assert_true (wsp_daemon_info_read (&f->paths, &out, &error));
  g_assert_no_error (error);
  g_assert_cmpint (out.pid, ==, 4242);
  g_assert_cmpstr (out.url, ==, in.url);
  g_assert_cmpstr (out.peer_id, ==, in.peer_id);
  g_assert_cmpstr (out.project_id, ==, in.project_id);
  g_assert_null (out.peer_url);
  wsp_daemon_info_clear (&out);

  in.peer_url = (char *) "ws://192.168.1.2:7000/api/v1/signal";
  g_assert_true (wsp_daemon_info_write (&f->paths, &in, &error));
  g_assert_true (wsp_daemon_info_read (&f->paths, &out, &error));
  g_assert_cmpstr (out.peer_url, ==, in.peer_url);
  wsp_daemon_info_clear (&out);

  wsp_daemon_info_remove (&f->paths);
  wsp_daemon_info_remove (&f->paths);   /* idempotent */
  g_assert_false (wsp_daemon_info_read (&f->paths, &out, &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_NOT_FOUND);
}

static void
test_daemon_info_corrupt (Fixture *f, gconstpointer data)
{
  static const char *const bad[] = {
    "", "{", "[]", "{\"url\":\"http://127.0.0.1:1\"}", "{\"pid\":\"12\",\"url\":\"http://x\"}",
    "{\"pid\":12,\"url\":5}", "{\"pid\":12}", "{\"pid\":12,\"url\":\"ftp://x\"}",
  };
  g_autofree char *path = g_build_filename (f->paths.wsp_dir, "daemon.json", NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      WspDaemonInfo out;
      g_assert_true (wsp_write_file_atomic (path, bad[i], strlen (bad[i]), 0644, &error));
      g_assert_false (wsp_daemon_info_read (&f->paths, &out, &error));
      g_assert_error (error, WSP_ERROR, WSP_ERROR_CORRUPT);
      g_assert_nonnull (strstr (error->message, path));
    }
}

/* ---- writing one key (wsp join) ------------------------------------------------- */

static void
test_config_file_set (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  WspConfig cfg;
  g_assert_true (wsp_config_load (&f->paths, NULL, &cfg, &error));
  g_autofree char *project_id = g_strdup (cfg.project_id);
  wsp_config_clear (&cfg);

  /* A comment and the other keys survive; the list reads back as written. */
  g_autofree char *before = NULL;
  g_assert_true (g_file_get_contents (f->paths.config_path, &before, NULL, NULL));
  g_autofree char *commented = g_strconcat ("# kept\n", before, NULL);
  g_assert_true (g_file_set_contents (f->paths.config_path, commented, -1, NULL));
  g_assert_true (wsp_config_file_set (&f->paths, "sync", "signal_urls",
                                      "ws://10.0.0.1:7420/api/v1/signal,wss://[::1]:9/api/v1/signal",
                                      &error));
  g_assert_no_error (error);
  g_assert_true (wsp_config_load (&f->paths, NULL, &cfg, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (cfg.project_id, ==, project_id);
  g_assert_cmpuint (g_strv_length (cfg.signal_urls), ==, 2);
  g_assert_cmpstr (cfg.signal_urls[0], ==, "ws://10.0.0.1:7420/api/v1/signal");
  g_assert_cmpstr (cfg.signal_urls[1], ==, "wss://[::1]:9/api/v1/signal");
  wsp_config_clear (&cfg);
  g_autofree char *after = NULL;
  g_assert_true (g_file_get_contents (f->paths.config_path, &after, NULL, NULL));
  g_assert_nonnull (strstr (after, "# kept"));
  g_assert_nonnull (strstr (after, "[sync]"));

  /* Setting it again replaces the value. */
  g_assert_true (wsp_config_file_set (&f->paths, "sync", "signal_urls", "ws://h:1/", &error));
  g_assert_true (wsp_config_load (&f->paths, NULL, &cfg, &error));
  g_assert_cmpuint (g_strv_length (cfg.signal_urls), ==, 1);
  wsp_config_clear (&cfg);

  /* A value the loader would refuse, or an unknown key, is not written. */
  g_assert_false (wsp_config_file_set (&f->paths, "sync", "signal_urls", "http://x/", &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_CONFIG);
  g_assert_true (g_str_has_prefix (error->message, "[sync] signal_urls"));
  g_clear_error (&error);
  g_assert_false (wsp_config_file_set (&f->paths, "sync", "nonsense", "1", &error));
  g_assert_error (error, WSP_ERROR, WSP_ERROR_CONFIG);
  g_clear_error (&error);
  g_autofree char *last = NULL;
  g_assert_true (g_file_get_contents (f->paths.config_path, &last, NULL, NULL));
  g_assert_null (strstr (last, "http://x/"));
  g_assert_null (strstr (last, "nonsense"));
}

/* ---- atomic write ---------------------------------------------------------------- */

static void
test_write_atomic (Fixture *f, gconstpointer data)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename (f->dir, "file", NULL);

  g_assert_true (wsp_write_file_atomic (path, "one", 3, 0640, &error));
  g_assert_no_error (error);
  assert_file (f->dir, "file", 0640, 3);
  g_assert_true (wsp_write_file_atomic (path, "second", 6, 0600, &error));
  assert_file (f->dir, "file", 0600, 6);

  /* No temporary files left behind. */
  g_autoptr(GDir) d = g_dir_open (f->dir, 0, NULL);
  const char *name;
  while ((name = g_dir_read_name (d)) != NULL)
    g_assert_false (g_str_has_prefix (name, "file.tmp"));

  g_autofree char *nowhere = g_build_filename (f->dir, "no", "such", "dir", NULL);
  g_assert_false (wsp_write_file_atomic (nowhere, "x", 1, 0600, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, nowhere));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

#define ADD(path, fn) g_test_add (path, Fixture, NULL, fixture_set_up, fn, fixture_tear_down)
  ADD ("/workspace/init/creates-files", test_init_creates_files);
  ADD ("/workspace/init/refuses-existing", test_init_refuses_existing);
  ADD ("/workspace/init/fresh-ids-differ", test_init_fresh_ids_differ);
  g_test_add_func ("/workspace/init/given-project", test_init_given_project);
  ADD ("/workspace/find/nested-subdirectory", test_find_nested);
  ADD ("/workspace/find/env", test_find_env);
  ADD ("/workspace/find/explicit-beats-env", test_find_explicit);
  ADD ("/workspace/config/precedence", test_config_precedence);
  ADD ("/workspace/config/bad-file-values-name-key", test_config_bad_values);
  ADD ("/workspace/config/bad-project-id-and-file", test_config_bad_project_id);
  ADD ("/workspace/config/bad-env-names-variable", test_config_bad_env);
  ADD ("/workspace/config/bad-flags-name-flag", test_config_bad_flags);
  ADD ("/workspace/config/file-set-keeps-rest", test_config_file_set);
  ADD ("/workspace/secrets/load", test_secrets_load);
  ADD ("/workspace/secrets/wrong-size", test_secrets_wrong_size);
  ADD ("/workspace/lock/contention-names-pid", test_lock_contention);
  ADD ("/workspace/daemon-info/round-trip", test_daemon_info_round_trip);
  ADD ("/workspace/daemon-info/corrupt", test_daemon_info_corrupt);
  ADD ("/workspace/write-atomic/mode-and-no-leftovers", test_write_atomic);
#undef ADD

  return g_test_run ();
}
