/* wsp.c — the `wsp` command line (SPEC 6): global options, one function
 * per command, exit codes. Talks to the running wspd through
 * wsp-cli-client.c and shows answers through wsp-cli-print.c.
 *
 * Exit codes: 0 success, 1 failure (the reason on stderr, for API errors the
 * server's message), 2 usage error (unknown command or option, missing or
 * malformed argument; a usage line on stderr). Results go to stdout; with
 * --json, stdout gets the daemon's JSON unchanged.
 *
 * Options: `wsp [--workspace DIR] [--json] COMMAND [ARGS...]`; both global
 * options are also accepted after the command. Each command parses its own
 * options with a GOptionContext. `wsp daemon` passes everything after it
 * to wspd untouched.
 *
 * Secrets: `wsp invite` prints the join token (it holds the project
 * secret) on stdout only, and `wsp join` never echoes it; buffers that held
 * the secret are wiped.
 *
 * Single-threaded; every request is synchronous.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <locale.h>
#include <net/if.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "cli/wsp-cli-client.h"
#include "cli/wsp-cli-print.h"
#include "common/wsp-common.h"
#include "sync/wsp-invite.h"
#include "workspace/wsp-workspace.h"

enum {
  EXIT_OK = 0,
  EXIT_FAIL = 1,
  EXIT_USAGE = 2,
};

/* Options valid before or after the command. */
typedef struct {
  gboolean  json;
  char     *workspace;   /* owned; NULL = discover */
} Globals;

typedef struct Command Command;
typedef int (*CommandFn) (Globals *g, const Command *cmd, char **args);

struct Command {
  const char *name;
  CommandFn   run;
  const char *params;    /* after the options in the usage line */
  const char *summary;
};

static const Command *command_find (const char *name);
static void print_usage (FILE *to);

/* ---- helpers ---------------------------------------------------------------- */

static int
fail (GError *error)
{
  g_printerr ("wsp: %s\n", error->message);
  return EXIT_FAIL;
}

static int
usage_error (const Command *cmd, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static int
usage_error (const Command *cmd, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (cmd != NULL)
    g_printerr ("wsp %s: %s\nusage: wsp %s [OPTION...]%s%s\n(see 'wsp %s --help')\n", cmd->name, msg,
                cmd->name, *cmd->params != '\0' ? " " : "", cmd->params, cmd->name);
  else
    {
      g_printerr ("wsp: %s\n", msg);
      print_usage (stderr);
    }
  return EXIT_USAGE;
}

/* Parses ARGS (args[0] = the command name) with the command's entries plus
 * the global ones. Returns -1 to go on, or an exit code; on success *args
 * keeps the command name and the positional arguments. */
static int
parse_options (Globals *g, const Command *cmd, const GOptionEntry *entries, char ***args)
{
  gboolean json = FALSE;
  char *workspace = NULL;
  const GOptionEntry common[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the daemon's JSON answer", NULL },
    { "workspace", 0, 0, G_OPTION_ARG_FILENAME, &workspace, "Use the workspace in DIR", "DIR" },
    G_OPTION_ENTRY_NULL,
  };
  g_autoptr(GError) error = NULL;
  g_autofree char *title = g_strdup_printf ("%s", cmd->params);
  g_autoptr(GOptionContext) ctx = g_option_context_new (title);

  g_option_context_set_summary (ctx, cmd->summary);
  if (entries != NULL)
    g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_add_main_entries (ctx, common, NULL);
  if (!g_option_context_parse_strv (ctx, args, &error))
    {
      g_free (workspace);
      /* GOption's messages start with a capital; ours do not. */
      g_autofree char *msg = g_strdup (error->message);
      msg[0] = g_ascii_tolower (msg[0]);
      return usage_error (cmd, "%s", msg);
    }
  /* GOption leaves the "--" that ends the options; drop it, keeping any
   * argument after it (so `wsp comment ID -- -5` works). */
  for (guint i = 1; (*args)[i] != NULL; i++)
    if (strcmp ((*args)[i], "--") == 0)
      {
        g_free ((*args)[i]);
        memmove (*args + i, *args + i + 1, (g_strv_length (*args + i + 1) + 1) * sizeof (char *));
        break;
      }
  g->json = g->json || json;
  if (workspace != NULL)
    {
      g_free (g->workspace);
      g->workspace = workspace;
    }
  return -1;
}

static guint
n_positional (char **args)
{
  return args[0] == NULL ? 0 : g_strv_length (args) - 1;
}

/* A priority 0-4 given on the command line. */
static gboolean
parse_priority (const char *s, gint64 *out)
{
  guint64 v = 0;
  if (s == NULL || strlen (s) != 1 || !g_ascii_string_to_unsigned (s, 10, 0, 4, &v, NULL))
    return FALSE;
  *out = (gint64) v;
  return TRUE;
}

/* Connects or prints why not. */
static WspClient *
client_open (Globals *g, int *exit_code)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(WspClient) client = wsp_client_new (g->workspace, &error);
  if (client == NULL || !wsp_client_connect (client, &error))
    {
      *exit_code = fail (error);
      return NULL;
    }
  return g_steal_pointer (&client);
}

static void
print_raw (const WspResponse *r)
{
  gsize len = 0;
  const char *data = r->body != NULL ? g_bytes_get_data (r->body, &len) : NULL;
  if (len == 0)
    return;
  fwrite (data, 1, len, stdout);
  if (data[len - 1] != '\n')
    fputc ('\n', stdout);
}

/* "/api/v1/tasks/<id><suffix>" with the id escaped. */
static char *
task_path (const char *id, const char *suffix)
{
  g_autofree char *escaped = g_uri_escape_string (id, NULL, FALSE);
  return g_strconcat ("/api/v1/tasks/", escaped, suffix, NULL);
}

/* The root object of a JSON answer, or NULL with an error printed. */
static JsonObject *
response_object (JsonParser *parser)
{
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_printerr ("wsp: failed to read the daemon's answer: not a JSON object\n");
      return NULL;
    }
  return json_node_get_object (root);
}

static void
builder_add_string (JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name (b, name);
  json_builder_add_string_value (b, value);
}

/* An empty value means nil for assignee, parent and due. */
static void
builder_add_string_or_null (JsonBuilder *b, const char *name, const char *value)
{
  json_builder_set_member_name (b, name);
  if (*value == '\0')
    json_builder_add_null_value (b);
  else
    json_builder_add_string_value (b, value);
}

static void
builder_add_strv (JsonBuilder *b, const char *name, char **values)
{
  json_builder_set_member_name (b, name);
  json_builder_begin_array (b);
  for (guint i = 0; values[i] != NULL; i++)
    json_builder_add_string_value (b, values[i]);
  json_builder_end_array (b);
}

/* Sends a request and prints the answer: its JSON with --json, else the
 * parsed answer through SHOW (may be NULL: nothing shown). */
typedef void (*ShowFn) (JsonObject *root, gpointer data);

static int
request_and_show (Globals *g, const char *method, const char *path, JsonNode *body,
                  ShowFn show, gpointer data)
{
  int code = EXIT_OK;
  g_autoptr(WspClient) client = client_open (g, &code);
  if (client == NULL)
    return code;

  g_autoptr(GError) error = NULL;
  WspResponse r;
  if (!wsp_client_request (client, method, path, body, &r, &error))
    return fail (error);
  if (g->json)
    print_raw (&r);
  else if (show != NULL)
    {
      g_autoptr(JsonParser) parser = wsp_response_parse (&r, &error);
      JsonObject *root = parser != NULL ? response_object (parser) : NULL;
      if (parser == NULL)
        code = fail (error);
      else if (root == NULL)
        code = EXIT_FAIL;
      else
        show (root, data);
    }
  wsp_response_clear (&r);
  return code;
}

/* ---- init -------------------------------------------------------------------- */

static void
print_json (JsonBuilder *b)
{
  g_autoptr(JsonNode) root = json_builder_get_root (b);
  g_autofree char *text = json_to_string (root, FALSE);
  printf ("%s\n", text);
}

/* --json of init and join: {"workspace","project_id","peer_id"} and, for
 * join, "signal_urls". */
static void
print_new_workspace_json (const WspPaths *paths, const char *project_id, const char *peer_id,
                          GPtrArray *signal_urls)
{
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  builder_add_string (b, "workspace", paths->root);
  json_builder_set_member_name (b, "project_id");
  json_builder_add_string_value (b, project_id);
  json_builder_set_member_name (b, "peer_id");
  json_builder_add_string_value (b, peer_id);
  if (signal_urls != NULL)
    {
      g_ptr_array_add (signal_urls, NULL);
      builder_add_strv (b, "signal_urls", (char **) signal_urls->pdata);
      g_ptr_array_remove_index (signal_urls, signal_urls->len - 1);
    }
  json_builder_end_object (b);
  print_json (b);
}

static int
cmd_init (Globals *g, const Command *cmd, char **args)
{
  int rc = parse_options (g, cmd, NULL, &args);
  if (rc >= 0)
    return rc;
  if (n_positional (args) > 1)
    return usage_error (cmd, "too many arguments");

  const char *dir = n_positional (args) == 1 ? args[1] : g->workspace;
  g_autoptr(GError) error = NULL;
  WspPaths paths;
  if (!wsp_workspace_init (dir, NULL, NULL, &paths, &error))
    return fail (error);

  g_autoptr(GKeyFile) kf = g_key_file_new ();
  g_autofree char *project_id = NULL;
  if (g_key_file_load_from_file (kf, paths.config_path, G_KEY_FILE_NONE, NULL))
    project_id = g_key_file_get_string (kf, "project", "id", NULL);
  WspIdentity identity;
  gboolean have_identity = wsp_workspace_load_identity (&paths, &identity, NULL);
  const char *peer_id = have_identity ? identity.peer_hex : NULL;

  if (g->json)
    print_new_workspace_json (&paths, project_id, peer_id, NULL);
  else
    {
      printf ("initialised workspace '%s'\n", paths.root);
      if (project_id != NULL)
        printf ("project id: %s\n", project_id);
      if (have_identity)
        printf ("peer id:    %s\n", identity.peer_hex);
      printf ("start the daemon with `wsp daemon`\n");
    }
  memset (&identity, 0, sizeof identity);
  wsp_paths_clear (&paths);
  return EXIT_OK;
}

/* ---- daemon ------------------------------------------------------------------ */

/* wspd next to this binary (a build tree or an install prefix), else PATH. */
static char *
find_wspd (void)
{
  g_autofree char *self = g_file_read_link ("/proc/self/exe", NULL);
  if (self != NULL)
    {
      g_autofree char *dir = g_path_get_dirname (self);
      g_autofree char *next = g_build_filename (dir, "wspd", NULL);
      if (g_file_test (next, G_FILE_TEST_IS_EXECUTABLE) && !g_file_test (next, G_FILE_TEST_IS_DIR))
        return g_steal_pointer (&next);
    }
  return g_find_program_in_path ("wspd");
}

static int
cmd_daemon (Globals *g, const Command *cmd, char **args)
{
  g_autofree char *wspd = find_wspd ();
  if (wspd == NULL)
    {
      g_printerr ("wsp: failed to find 'wspd' next to 'wsp' or in PATH\n");
      return EXIT_FAIL;
    }
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_ptr_array_add (argv, wspd);
  if (g->workspace != NULL)
    {
      g_ptr_array_add (argv, (char *) "--workspace");
      g_ptr_array_add (argv, g->workspace);
    }
  for (guint i = 1; args[i] != NULL; i++)
    g_ptr_array_add (argv, args[i]);
  g_ptr_array_add (argv, NULL);

  fflush (stdout);
  execv (wspd, (char **) argv->pdata);
  int saved = errno;
  g_printerr ("wsp: failed to run '%s': %s\n", wspd, g_strerror (saved));
  return EXIT_FAIL;
}

/* ---- create ------------------------------------------------------------------ */

static void
show_created (JsonObject *task, gpointer data)
{
  g_autofree char *id = wsp_sanitize (wsp_json_get_string (task, "id"), FALSE);
  g_autofree char *title = wsp_sanitize (wsp_json_get_string (task, "title"), FALSE);
  printf ("created %s  %s\n", id, title);
}

static int
cmd_create (Globals *g, const Command *cmd, char **args)
{
  g_autofree char *body = NULL, *status = NULL, *priority = NULL, *assignee = NULL;
  g_autofree char *parent = NULL, *due = NULL;
  g_auto(GStrv) labels = NULL;
  g_auto(GStrv) deps = NULL;
  const GOptionEntry entries[] = {
    { "body", 'b', 0, G_OPTION_ARG_STRING, &body, "Description (Markdown)", "TEXT" },
    { "status", 's', 0, G_OPTION_ARG_STRING, &status, "Status column", "STATUS" },
    { "priority", 'p', 0, G_OPTION_ARG_STRING, &priority, "0 (highest) to 4 (lowest), default 2", "N" },
    { "assignee", 'a', 0, G_OPTION_ARG_STRING, &assignee, "Who works on it", "NAME" },
    { "label", 'l', 0, G_OPTION_ARG_STRING_ARRAY, &labels, "Add a label (repeatable)", "LABEL" },
    { "depends-on", 'd', 0, G_OPTION_ARG_STRING_ARRAY, &deps, "Depend on a task (repeatable)", "ID" },
    { "parent", 0, 0, G_OPTION_ARG_STRING, &parent, "Parent task", "ID" },
    { "due", 0, 0, G_OPTION_ARG_STRING, &due, "Due date", "YYYY-MM-DD" },
    G_OPTION_ENTRY_NULL,
  };
  int rc = parse_options (g, cmd, entries, &args);
  if (rc >= 0)
    return rc;
  if (n_positional (args) != 1)
    return usage_error (cmd, n_positional (args) == 0 ? "missing TITLE" : "too many arguments (quote the title)");

  gint64 prio = 0;
  if (priority != NULL && !parse_priority (priority, &prio))
    return usage_error (cmd, "bad value '%s' for --priority (expected 0-4)", priority);

  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  builder_add_string (b, "title", args[1]);
  if (body != NULL)
    builder_add_string (b, "body", body);
  if (status != NULL)
    builder_add_string (b, "status", status);
  if (priority != NULL)
    {
      json_builder_set_member_name (b, "priority");
      json_builder_add_int_value (b, prio);
    }
  if (assignee != NULL && *assignee != '\0')
    builder_add_string (b, "assignee", assignee);
  if (parent != NULL && *parent != '\0')
    builder_add_string (b, "parent", parent);
  if (due != NULL && *due != '\0')
    builder_add_string (b, "due", due);
  if (labels != NULL)
    builder_add_strv (b, "labels", labels);
  if (deps != NULL)
    builder_add_strv (b, "depends_on", deps);
  json_builder_end_object (b);
  g_autoptr(JsonNode) root = json_builder_get_root (b);

  return request_and_show (g, "POST", "/api/v1/tasks", root, show_created, NULL);
}

/* ---- list -------------------------------------------------------------------- */

static void
show_list (JsonObject *root, gpointer data)
{
  JsonArray *tasks = wsp_json_get_array (root, "tasks");
  if (tasks == NULL || json_array_get_length (tasks) == 0)
    printf ("no tasks\n");
  else
    wsp_print_task_table (tasks);
  const char *cursor = wsp_json_get_string (root, "next_cursor");
  if (cursor != NULL && *cursor != '\0')
    {
      g_autofree char *clean = wsp_sanitize (cursor, FALSE);
      g_printerr ("more tasks follow: wsp list --cursor '%s'\n", clean);
    }
}

static int
cmd_list (Globals *g, const Command *cmd, char **args)
{
  g_autofree char *status = NULL, *label = NULL, *assignee = NULL, *priority = NULL;
  g_autofree char *limit = NULL, *cursor = NULL, *sort = NULL, *query = NULL;
  gboolean ready = FALSE, blocked = FALSE;
  const GOptionEntry entries[] = {
    { "status", 's', 0, G_OPTION_ARG_STRING, &status, "Only this status", "STATUS" },
    { "label", 'l', 0, G_OPTION_ARG_STRING, &label, "Only tasks with this label", "LABEL" },
    { "assignee", 'a', 0, G_OPTION_ARG_STRING, &assignee, "Only tasks assigned to NAME", "NAME" },
    { "priority", 'p', 0, G_OPTION_ARG_STRING, &priority, "Only this priority", "N" },
    { "ready", 0, 0, G_OPTION_ARG_NONE, &ready, "Only tasks with no open dependency", NULL },
    { "blocked", 0, 0, G_OPTION_ARG_NONE, &blocked, "Only tasks with an open dependency", NULL },
    { "query", 'q', 0, G_OPTION_ARG_STRING, &query, "Full-text filter", "TEXT" },
    { "sort", 0, 0, G_OPTION_ARG_STRING, &sort, "Sort order (passed to the daemon)", "KEY" },
    { "limit", 'n', 0, G_OPTION_ARG_STRING, &limit, "At most N tasks (default 100, max 1000)", "N" },
    { "cursor", 0, 0, G_OPTION_ARG_STRING, &cursor, "Continue after a previous page", "CURSOR" },
    G_OPTION_ENTRY_NULL,
  };
  int rc = parse_options (g, cmd, entries, &args);
  if (rc >= 0)
    return rc;
  if (n_positional (args) != 0)
    return usage_error (cmd, "unexpected argument '%s'", args[1]);

  gint64 prio = 0;
  if (priority != NULL && !parse_priority (priority, &prio))
    return usage_error (cmd, "bad value '%s' for --priority (expected 0-4)", priority);
  guint64 n = 0;
  if (limit != NULL && !g_ascii_string_to_unsigned (limit, 10, 1, 1000, &n, NULL))
    return usage_error (cmd, "bad value '%s' for --limit (expected 1-1000)", limit);

  g_autoptr(GString) path = g_string_new ("/api/v1/tasks");
  if (status != NULL)
    wsp_query_append (path, "status", status);
  if (label != NULL)
    wsp_query_append (path, "label", label);
  if (assignee != NULL)
    wsp_query_append (path, "assignee", assignee);
  if (priority != NULL)
    wsp_query_append (path, "priority", priority);
  if (ready)
    wsp_query_append (path, "ready", "true");
  if (blocked)
    wsp_query_append (path, "blocked", "true");
  if (query != NULL)
    wsp_query_append (path, "q", query);
  if (sort != NULL)
    wsp_query_append (path, "sort", sort);
  if (limit != NULL)
    wsp_query_append (path, "limit", limit);
  if (cursor != NULL)
    wsp_query_append (path, "cursor", cursor);

  return request_and_show (g, "GET", path->str, NULL, show_list, NULL);
}

/* ---- show, history ----------------------------------------------------------- */

/* Commands whose only argument is a task id. */
static int
parse_id_command (Globals *g, const Command *cmd, char ***args)
{
  int rc = parse_options (g, cmd, NULL, args);
  if (rc >= 0)
    return rc;
  if (n_positional (*args) == 0)
    return usage_error (cmd, "missing ID");
  if (n_positional (*args) > 1)
    return usage_error (cmd, "too many arguments");
  return -1;
}

static void
show_task (JsonObject *task, gpointer data)
{
  wsp_print_task (task);
}

static int
cmd_show (Globals *g, const Command *cmd, char **args)
{
  int rc = parse_id_command (g, cmd, &args);
  if (rc >= 0)
    return rc;
  g_autofree char *path = task_path (args[1], "");
  return request_and_show (g, "GET", path, NULL, show_task, NULL);
}

static void
show_history (JsonObject *root, gpointer data)
{
  JsonArray *history = wsp_json_get_array (root, "history");
  if (history == NULL || json_array_get_length (history) == 0)
    printf ("no history\n");
  else
    wsp_print_history (history);
}

static int
cmd_history (Globals *g, const Command *cmd, char **args)
{
  int rc = parse_id_command (g, cmd, &args);
  if (rc >= 0)
    return rc;
  g_autofree char *path = task_path (args[1], "/history");
  return request_and_show (g, "GET", path, NULL, show_history, NULL);
}

/* ---- edit, close ------------------------------------------------------------- */

static void
show_updated (JsonObject *task, gpointer data)
{
  const char *id = wsp_json_get_string (task, "id");
  g_autofree char *clean = wsp_sanitize (id != NULL ? id : data, FALSE);
  g_autofree char *status = wsp_sanitize (wsp_json_get_string (task, "status"), FALSE);
  printf ("updated %s (%s)\n", clean, status);
}

static int
patch_task (Globals *g, const char *id, JsonNode *patch, ShowFn show, gpointer data)
{
  g_autofree char *path = task_path (id, "");
  return request_and_show (g, "PATCH", path, patch, show, data);
}

static int
cmd_edit (Globals *g, const Command *cmd, char **args)
{
  g_autofree char *title = NULL, *body = NULL, *status = NULL, *priority = NULL;
  g_autofree char *assignee = NULL, *parent = NULL, *due = NULL;
  g_auto(GStrv) add_labels = NULL;
  g_auto(GStrv) remove_labels = NULL;
  g_auto(GStrv) add_deps = NULL;
  g_auto(GStrv) remove_deps = NULL;
  const GOptionEntry entries[] = {
    { "title", 't', 0, G_OPTION_ARG_STRING, &title, "New title", "TITLE" },
    { "body", 'b', 0, G_OPTION_ARG_STRING, &body, "New description", "TEXT" },
    { "status", 's', 0, G_OPTION_ARG_STRING, &status, "New status", "STATUS" },
    { "priority", 'p', 0, G_OPTION_ARG_STRING, &priority, "New priority 0-4", "N" },
    { "assignee", 'a', 0, G_OPTION_ARG_STRING, &assignee, "New assignee ('' clears)", "NAME" },
    { "parent", 0, 0, G_OPTION_ARG_STRING, &parent, "New parent ('' clears)", "ID" },
    { "due", 0, 0, G_OPTION_ARG_STRING, &due, "New due date ('' clears)", "YYYY-MM-DD" },
    { "add-label", 0, 0, G_OPTION_ARG_STRING_ARRAY, &add_labels, "Add a label (repeatable)", "LABEL" },
    { "remove-label", 0, 0, G_OPTION_ARG_STRING_ARRAY, &remove_labels, "Remove a label (repeatable)", "LABEL" },
    { "add-dep", 0, 0, G_OPTION_ARG_STRING_ARRAY, &add_deps, "Add a dependency (repeatable)", "ID" },
    { "remove-dep", 0, 0, G_OPTION_ARG_STRING_ARRAY, &remove_deps, "Remove a dependency (repeatable)", "ID" },
    G_OPTION_ENTRY_NULL,
  };
  int rc = parse_options (g, cmd, entries, &args);
  if (rc >= 0)
    return rc;
  if (n_positional (args) == 0)
    return usage_error (cmd, "missing ID");
  if (n_positional (args) > 1)
    return usage_error (cmd, "too many arguments (quote values with spaces)");

  gint64 prio = 0;
  if (priority != NULL && !parse_priority (priority, &prio))
    return usage_error (cmd, "bad value '%s' for --priority (expected 0-4)", priority);
  if (title == NULL && body == NULL && status == NULL && priority == NULL && assignee == NULL
      && parent == NULL && due == NULL && add_labels == NULL && remove_labels == NULL
      && add_deps == NULL && remove_deps == NULL)
    return usage_error (cmd, "nothing to change (give at least one option)");

  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  if (title != NULL)
    builder_add_string (b, "title", title);
  if (body != NULL)
    builder_add_string (b, "body", body);
  if (status != NULL)
    builder_add_string (b, "status", status);
  if (priority != NULL)
    {
      json_builder_set_member_name (b, "priority");
      json_builder_add_int_value (b, prio);
    }
  if (assignee != NULL)
    builder_add_string_or_null (b, "assignee", assignee);
  if (parent != NULL)
    builder_add_string_or_null (b, "parent", parent);
  if (due != NULL)
    builder_add_string_or_null (b, "due", due);
  if (add_labels != NULL)
    builder_add_strv (b, "add_labels", add_labels);
  if (remove_labels != NULL)
    builder_add_strv (b, "remove_labels", remove_labels);
  if (add_deps != NULL)
    builder_add_strv (b, "add_depends_on", add_deps);
  if (remove_deps != NULL)
    builder_add_strv (b, "remove_depends_on", remove_deps);
  json_builder_end_object (b);
  g_autoptr(JsonNode) root = json_builder_get_root (b);

  return patch_task (g, args[1], root, show_updated, args[1]);
}

static void
show_closed (JsonObject *task, gpointer data)
{
  const char *id = wsp_json_get_string (task, "id");
  g_autofree char *clean = wsp_sanitize (id != NULL ? id : data, FALSE);
  g_autofree char *status = wsp_sanitize (wsp_json_get_string (task, "status"), FALSE);
  printf ("closed %s (%s)\n", clean, status);
}

static int
cmd_close (Globals *g, const Command *cmd, char **args)
{
  int rc = parse_id_command (g, cmd, &args);
  if (rc >= 0)
    return rc;

  /* The last column counts as done (SPEC 3); the columns are the
   * workspace's configuration, environment included. */
  g_autoptr(GError) error = NULL;
  g_autoptr(WspClient) client = wsp_client_new (g->workspace, &error);
  if (client == NULL)
    return fail (error);
  WspConfig cfg;
  if (!wsp_config_load (wsp_client_paths (client), NULL, &cfg, &error))
    return fail (error);
  guint n = g_strv_length (cfg.statuses);
  g_autofree char *done = g_strdup (cfg.statuses[n - 1]);
  wsp_config_clear (&cfg);

  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  builder_add_string (b, "status", done);
  json_builder_end_object (b);
  g_autoptr(JsonNode) root = json_builder_get_root (b);
  return patch_task (g, args[1], root, show_closed, args[1]);
}

/* ---- delete, comment --------------------------------------------------------- */

/* Sends a request that is answered 204 and reports it: "VERB ID", or with
 * --json {KEY: ID, VERB: true} (204 has no body; a script still gets
 * something to read). */
static int
request_no_content (Globals *g, const char *method, const char *path, const char *key,
                    const char *id, const char *verb)
{
  int code = EXIT_OK;
  g_autoptr(WspClient) client = client_open (g, &code);
  if (client == NULL)
    return code;
  g_autoptr(GError) error = NULL;
  WspResponse r;
  if (!wsp_client_request (client, method, path, NULL, &r, &error))
    return fail (error);
  wsp_response_clear (&r);

  if (g->json)
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      builder_add_string (b, key, id);
      json_builder_set_member_name (b, verb);
      json_builder_add_boolean_value (b, TRUE);
      json_builder_end_object (b);
      print_json (b);
    }
  else
    {
      g_autofree char *clean = wsp_sanitize (id, FALSE);
      printf ("%s %s\n", verb, clean);
    }
  return EXIT_OK;
}

static int
cmd_delete (Globals *g, const Command *cmd, char **args)
{
  int rc = parse_id_command (g, cmd, &args);
  if (rc >= 0)
    return rc;

  g_autofree char *path = task_path (args[1], "");
  return request_no_content (g, "DELETE", path, "id", args[1], "deleted");
}

static void
show_commented (JsonObject *root, gpointer data)
{
  g_autofree char *clean = wsp_sanitize (data, FALSE);
  printf ("commented on %s\n", clean);
}

static int
cmd_comment (Globals *g, const Command *cmd, char **args)
{
  int rc = parse_options (g, cmd, NULL, &args);
  if (rc >= 0)
    return rc;
  if (n_positional (args) < 2)
    return usage_error (cmd, n_positional (args) == 0 ? "missing ID and TEXT" : "missing TEXT");
  if (n_positional (args) > 2)
    return usage_error (cmd, "too many arguments (quote the text)");

  g_autofree char *text = NULL;
  if (strcmp (args[2], "-") == 0)
    {
      g_autoptr(GString) in = g_string_new (NULL);
      char buf[4096];
      size_t n;
      while ((n = fread (buf, 1, sizeof buf, stdin)) > 0)
        g_string_append_len (in, buf, (gssize) n);
      text = g_string_free (g_steal_pointer (&in), FALSE);
    }
  else
    text = g_strdup (args[2]);

  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  builder_add_string (b, "body", text);
  json_builder_end_object (b);
  g_autoptr(JsonNode) root = json_builder_get_root (b);
  g_autofree char *path = task_path (args[1], "/comments");

  int code = EXIT_OK;
  g_autoptr(WspClient) client = client_open (g, &code);
  if (client == NULL)
    return code;
  g_autoptr(GError) error = NULL;
  WspResponse r;
  if (!wsp_client_request (client, "POST", path, root, &r, &error))
    return fail (error);
  if (g->json)
    print_raw (&r);
  else
    show_commented (NULL, args[1]);
  wsp_response_clear (&r);
  return EXIT_OK;
}

/* ---- search ------------------------------------------------------------------ */

static void
show_hits (JsonObject *root, gpointer data)
{
  JsonArray *hits = wsp_json_get_array (root, "hits");
  if (hits == NULL || json_array_get_length (hits) == 0)
    printf ("no matches\n");
  else
    wsp_print_search_hits (hits);
}

static int
cmd_search (Globals *g, const Command *cmd, char **args)
{
  g_autofree char *limit = NULL;
  const GOptionEntry entries[] = {
    { "limit", 'n', 0, G_OPTION_ARG_STRING, &limit, "At most N hits", "N" },
    G_OPTION_ENTRY_NULL,
  };
  int rc = parse_options (g, cmd, entries, &args);
  if (rc >= 0)
    return rc;
  if (n_positional (args) == 0)
    return usage_error (cmd, "missing QUERY");

  guint64 n = 0;
  if (limit != NULL && !g_ascii_string_to_unsigned (limit, 10, 1, 1000, &n, NULL))
    return usage_error (cmd, "bad value '%s' for --limit (expected 1-1000)", limit);

  /* Several words form one query, as a shell user would expect. */
  g_autofree char *query = g_strjoinv (" ", args + 1);
  g_autoptr(GString) path = g_string_new ("/api/v1/search");
  wsp_query_append (path, "q", query);
  if (limit != NULL)
    wsp_query_append (path, "limit", limit);
  return request_and_show (g, "GET", path->str, NULL, show_hits, NULL);
}

/* ---- doctor ------------------------------------------------------------------ */

/* One problem entry on one line, whatever its exact shape. */
static void
print_problem (JsonNode *node)
{
  if (JSON_NODE_HOLDS_OBJECT (node))
    {
      JsonObject *p = json_node_get_object (node);
      const char *file = wsp_json_get_string (p, "path");
      const char *reason = wsp_json_get_string (p, "reason");
      if (file == NULL)
        file = wsp_json_get_string (p, "file");
      if (reason == NULL)
        reason = wsp_json_get_string (p, "message");
      if (file != NULL || reason != NULL)
        {
          g_autofree char *f = wsp_sanitize (file != NULL ? file : "?", FALSE);
          g_autofree char *r = wsp_sanitize (reason != NULL ? reason : "", FALSE);
          gint64 line = wsp_json_get_int (p, "line", 0);
          if (line > 0)
            printf ("  %s:%" G_GINT64_FORMAT ": %s\n", f, line, r);
          else
            printf ("  %s: %s\n", f, r);
          return;
        }
    }
  g_autofree char *text = json_to_string (node, FALSE);
  g_autofree char *clean = wsp_sanitize (text, FALSE);
  printf ("  %s\n", clean);
}

/* The list of problems in a /problems answer: the array itself or its
 * "problems" member. */
static JsonArray *
problems_array (JsonNode *root)
{
  if (JSON_NODE_HOLDS_ARRAY (root))
    return json_node_get_array (root);
  if (JSON_NODE_HOLDS_OBJECT (root))
    return wsp_json_get_array (json_node_get_object (root), "problems");
  return NULL;
}

static void
show_mass_removal (JsonObject *root, gpointer data)
{
  const char *action = json_object_get_string_member_with_default (root, "action", "");
  gint64 n = json_object_get_int_member_with_default (root, "tasks", 0);
  if (g_strcmp0 (action, "delete") == 0)
    printf ("deleting %" G_GINT64_FORMAT " task(s) whose files were removed\n", n);
  else
    printf ("writing the files of %" G_GINT64_FORMAT " task(s) again\n", n);
}

static int
cmd_doctor (Globals *g, const Command *cmd, char **args)
{
  gboolean restore = FALSE, apply_deletes = FALSE;
  const GOptionEntry entries[] = {
    { "restore-files", 0, 0, G_OPTION_ARG_NONE, &restore,
      "After a mass removal of task files: write them again (the tasks stay)", NULL },
    { "apply-deletes", 0, 0, G_OPTION_ARG_NONE, &apply_deletes,
      "After a mass removal of task files: delete their tasks (final)", NULL },
    G_OPTION_ENTRY_NULL,
  };
  int rc = parse_options (g, cmd, entries, &args);
  if (rc >= 0)
    return rc;
  if (n_positional (args) != 0)
    return usage_error (cmd, "unexpected argument '%s'", args[1]);
  if (restore && apply_deletes)
    return usage_error (cmd, "--restore-files and --apply-deletes exclude each other");
  if (restore || apply_deletes)
    {
      g_autoptr(JsonBuilder) jb = json_builder_new ();
      json_builder_begin_object (jb);
      json_builder_set_member_name (jb, "action");
      json_builder_add_string_value (jb, apply_deletes ? "delete" : "restore");
      json_builder_end_object (jb);
      g_autoptr(JsonNode) body = json_builder_get_root (jb);
      return request_and_show (g, "POST", "/api/v1/problems/mass-removal", body, show_mass_removal, NULL);
    }

  g_autoptr(GError) error = NULL;
  g_autoptr(WspClient) client = wsp_client_new (g->workspace, &error);
  if (client == NULL)
    return fail (error);
  const WspPaths *paths = wsp_client_paths (client);
  gboolean healthy = TRUE;
  g_autoptr(JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);

  /* Paths. */
  g_autofree char *daemon_json = g_build_filename (paths->wsp_dir, "daemon.json", NULL);
  json_builder_set_member_name (b, "paths");
  json_builder_begin_object (b);
  builder_add_string (b, "workspace", paths->root);
  builder_add_string (b, "config", paths->config_path);
  builder_add_string (b, "tasks", paths->tasks_dir);
  builder_add_string (b, "state", paths->wsp_dir);
  builder_add_string (b, "database", paths->db_path);
  builder_add_string (b, "daemon_json", daemon_json);
  json_builder_end_object (b);
  if (!g->json)
    {
      printf ("workspace:   %s\n", paths->root);
      printf ("config:      %s\n", paths->config_path);
      printf ("tasks:       %s\n", paths->tasks_dir);
      printf ("database:    %s\n", paths->db_path);
    }

  /* Configuration and secrets: what the daemon would refuse to start on. */
  g_autoptr(GPtrArray) local_problems = g_ptr_array_new_with_free_func (g_free);
  WspConfig cfg;
  if (wsp_config_load (paths, NULL, &cfg, &error))
    wsp_config_clear (&cfg);
  else
    g_ptr_array_add (local_problems, g_strdup_printf ("config: %s", error->message));
  g_clear_error (&error);
  WspIdentity identity;
  if (!wsp_workspace_load_identity (paths, &identity, &error))
    g_ptr_array_add (local_problems, g_strdup (error->message));
  memset (&identity, 0, sizeof identity);
  g_clear_error (&error);
  guint8 secret[32];
  if (!wsp_workspace_load_secret (paths, secret, &error))
    g_ptr_array_add (local_problems, g_strdup (error->message));
  memset (secret, 0, sizeof secret);
  g_clear_error (&error);
  g_autofree char *token = wsp_workspace_load_token (paths, &error);
  if (token == NULL)
    g_ptr_array_add (local_problems, g_strdup (error->message));
  g_clear_error (&error);
  if (local_problems->len > 0)
    healthy = FALSE;

  /* The daemon. */
  gboolean running = wsp_client_connect (client, &error);
  const WspDaemonInfo *info = wsp_client_daemon_info (client);
  json_builder_set_member_name (b, "daemon");
  json_builder_begin_object (b);
  json_builder_set_member_name (b, "running");
  json_builder_add_boolean_value (b, running);
  gboolean answers = FALSE;
  JsonNode *problems_root = NULL;
  g_autoptr(JsonParser) problems_parser = NULL;
  if (running)
    {
      json_builder_set_member_name (b, "pid");
      json_builder_add_int_value (b, info->pid);
      builder_add_string (b, "url", info->url);
      WspResponse r;
      answers = wsp_client_request (client, "GET", "/api/v1/health", NULL, &r, &error);
      wsp_response_clear (&r);
      if (answers && wsp_client_request (client, "GET", "/api/v1/problems", NULL, &r, &error))
        {
          problems_parser = wsp_response_parse (&r, &error);
          if (problems_parser != NULL)
            problems_root = json_parser_get_root (problems_parser);
          wsp_response_clear (&r);
        }
    }
  json_builder_set_member_name (b, "health");
  json_builder_add_boolean_value (b, answers);
  if (error != NULL)
    builder_add_string (b, "error", error->message);
  json_builder_end_object (b);

  if (!g->json)
    {
      if (!running)
        printf ("daemon:      not running (%s)\n", error != NULL ? error->message : "no daemon.json");
      else if (!answers)
        printf ("daemon:      pid %" G_GINT64_FORMAT " at %s does not answer: %s\n", info->pid,
                info->url, error != NULL ? error->message : "no answer");
      else
        printf ("daemon:      running, pid %" G_GINT64_FORMAT ", %s\n", info->pid, info->url);
    }
  if (!running || !answers)
    healthy = FALSE;
  else if (error != NULL)
    {
      g_ptr_array_add (local_problems, g_strdup_printf ("failed to get problems: %s", error->message));
      healthy = FALSE;
    }

  /* Problems: ours first, then the daemon's. */
  JsonArray *daemon_problems = problems_root != NULL ? problems_array (problems_root) : NULL;
  guint n_daemon = daemon_problems != NULL ? json_array_get_length (daemon_problems) : 0;
  if (n_daemon > 0)
    healthy = FALSE;
  json_builder_set_member_name (b, "problems");
  json_builder_begin_array (b);
  for (guint i = 0; i < local_problems->len; i++)
    {
      json_builder_begin_object (b);
      builder_add_string (b, "reason", local_problems->pdata[i]);
      json_builder_end_object (b);
    }
  for (guint i = 0; i < n_daemon; i++)
    json_builder_add_value (b, json_node_copy (json_array_get_element (daemon_problems, i)));
  json_builder_end_array (b);
  json_builder_set_member_name (b, "healthy");
  json_builder_add_boolean_value (b, healthy);
  json_builder_end_object (b);

  if (g->json)
    print_json (b);
  else if (local_problems->len == 0 && n_daemon == 0)
    printf ("problems:    %s\n", running && answers ? "no problems" : "none found without a daemon");
  else
    {
      printf ("problems:    %u\n", local_problems->len + n_daemon);
      for (guint i = 0; i < local_problems->len; i++)
        printf ("  %s\n", (char *) local_problems->pdata[i]);
      for (guint i = 0; i < n_daemon; i++)
        print_problem (json_array_get_element (daemon_problems, i));
    }
  return healthy ? EXIT_OK : EXIT_FAIL;
}

/* ---- peer, sync ---------------------------------------------------------------- */

static gboolean
is_ws_url (const char *url)
{
  return g_ascii_strncasecmp (url, "ws://", 5) == 0 || g_ascii_strncasecmp (url, "wss://", 6) == 0;
}

static void
show_connecting (JsonObject *root, gpointer data)
{
  g_autofree char *clean = wsp_sanitize (data, FALSE);
  printf ("connecting to %s\n", clean);
}

static void
show_peers (JsonObject *root, gpointer data)
{
  JsonArray *peers = wsp_json_get_array (root, "peers");
  if (peers == NULL || json_array_get_length (peers) == 0)
    printf ("no peers\n");
  else
    wsp_print_peer_table (peers);
}

/* wsp peer connect URL | list | drop PEER_ID */
static int
cmd_peer (Globals *g, const Command *cmd, char **args)
{
  int rc = parse_options (g, cmd, NULL, &args);
  if (rc >= 0)
    return rc;
  guint n = n_positional (args);
  if (n == 0)
    return usage_error (cmd, "missing SUBCOMMAND (connect, list or drop)");
  const char *sub = args[1];

  if (strcmp (sub, "list") == 0)
    {
      if (n > 1)
        return usage_error (cmd, "unexpected argument '%s'", args[2]);
      return request_and_show (g, "GET", "/api/v1/peers", NULL, show_peers, NULL);
    }
  if (strcmp (sub, "connect") == 0)
    {
      if (n != 2)
        return usage_error (cmd, n < 2 ? "missing URL" : "too many arguments");
      if (!is_ws_url (args[2]))
        return usage_error (cmd, "bad URL '%s' (expected ws://HOST:PORT/api/v1/signal)", args[2]);
      g_autoptr(JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      builder_add_string (b, "url", args[2]);
      json_builder_end_object (b);
      g_autoptr(JsonNode) body = json_builder_get_root (b);
      return request_and_show (g, "POST", "/api/v1/peers", body, show_connecting, args[2]);
    }
  if (strcmp (sub, "drop") == 0)
    {
      if (n != 2)
        return usage_error (cmd, n < 2 ? "missing PEER_ID" : "too many arguments");
      WspPeer peer;
      if (!wsp_peer_from_hex (args[2], strlen (args[2]), &peer))
        return usage_error (cmd, "bad PEER_ID '%s' (expected 16 lowercase hex characters)", args[2]);
      g_autofree char *path = g_strconcat ("/api/v1/peers/", args[2], NULL);
      return request_no_content (g, "DELETE", path, "peer_id", args[2], "dropped");
    }
  return usage_error (cmd, "unknown subcommand '%s' (expected connect, list or drop)", sub);
}

static void
show_sync (JsonObject *root, gpointer data)
{
  wsp_print_sync (root);
}

static int
cmd_sync (Globals *g, const Command *cmd, char **args)
{
  int rc = parse_options (g, cmd, NULL, &args);
  if (rc >= 0)
    return rc;
  if (n_positional (args) != 0)
    return usage_error (cmd, "unexpected argument '%s'", args[1]);
  return request_and_show (g, "GET", "/api/v1/sync", NULL, show_sync, NULL);
}

/* ---- invite, join --------------------------------------------------------------- */

/* This machine's addresses that another machine could dial: up, not
 * loopback, not IPv6 link-local (those need a zone id a URL cannot carry
 * portably). IPv4 first; IPv6 only when WITH_V6. Text form, no duplicates. */
static GPtrArray *
local_addresses (gboolean with_v6)
{
  g_autoptr(GPtrArray) v4 = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) v6 = g_ptr_array_new_with_free_func (g_free);
  struct ifaddrs *list = NULL;

  if (getifaddrs (&list) == 0)
    {
      for (struct ifaddrs *i = list; i != NULL; i = i->ifa_next)
        {
          char text[INET6_ADDRSTRLEN];
          if (i->ifa_addr == NULL || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK))
            continue;
          if (i->ifa_addr->sa_family == AF_INET)
            {
              const struct in_addr *a = &((const struct sockaddr_in *) i->ifa_addr)->sin_addr;
              if ((ntohl (a->s_addr) >> 24) == 127
                  || inet_ntop (AF_INET, a, text, sizeof text) == NULL
                  || g_ptr_array_find_with_equal_func (v4, text, g_str_equal, NULL))
                continue;
              g_ptr_array_add (v4, g_strdup (text));
            }
          else if (with_v6 && i->ifa_addr->sa_family == AF_INET6)
            {
              const struct in6_addr *a = &((const struct sockaddr_in6 *) i->ifa_addr)->sin6_addr;
              if (IN6_IS_ADDR_LOOPBACK (a) || IN6_IS_ADDR_LINKLOCAL (a)
                  || inet_ntop (AF_INET6, a, text, sizeof text) == NULL
                  || g_ptr_array_find_with_equal_func (v6, text, g_str_equal, NULL))
                continue;
              g_ptr_array_add (v6, g_strdup (text));
            }
        }
      freeifaddrs (list);
    }
  g_ptr_array_extend_and_steal (v4, g_steal_pointer (&v6));
  return g_steal_pointer (&v4);
}

static void
add_unique (GPtrArray *urls, char *url /* taken */)
{
  if (g_ptr_array_find_with_equal_func (urls, url, g_str_equal, NULL))
    g_free (url);
  else
    g_ptr_array_add (urls, url);
}

/* Adds URL to URLS. A listener bound to a wildcard address (0.0.0.0, [::])
 * cannot be dialled at that address: it becomes one URL per address of this
 * machine (0.0.0.0 accepts IPv4 only, so only those), or 127.0.0.1 when
 * there is none. */
static void
invite_add_url (GPtrArray *urls, const char *url)
{
  g_autoptr(GUri) uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
  const char *host = uri != NULL ? g_uri_get_host (uri) : NULL;
  gboolean any4 = g_strcmp0 (host, "0.0.0.0") == 0;
  gboolean any6 = g_strcmp0 (host, "::") == 0;

  if (!any4 && !any6)
    {
      add_unique (urls, g_strdup (url));
      return;
    }
  g_autoptr(GPtrArray) addrs = local_addresses (any6);
  if (addrs->len == 0)
    g_ptr_array_add (addrs, g_strdup ("127.0.0.1"));
  for (guint i = 0; i < addrs->len; i++)
    {
      g_autoptr(GUri) u = g_uri_build (g_uri_get_flags (uri), g_uri_get_scheme (uri),
                                       g_uri_get_userinfo (uri), addrs->pdata[i], g_uri_get_port (uri),
                                       g_uri_get_path (uri), g_uri_get_query (uri),
                                       g_uri_get_fragment (uri));
      add_unique (urls, g_uri_to_string (u));
    }
}

/* The daemon's peer listener URL, or NULL with the reason printed. */
static char *
daemon_peer_url (WspClient *client)
{
  g_autoptr(GError) error = NULL;
  const char *why = NULL;
  if (!wsp_client_connect (client, &error))
    why = "the daemon is not running";
  else if (wsp_client_daemon_info (client)->peer_url == NULL)
    why = "the daemon has no peer listener";
  else
    return g_strdup (wsp_client_daemon_info (client)->peer_url);
  g_printerr ("wsp: nothing to invite to: %s. Start the daemon with "
              "`wsp daemon --peer-listen ADDR:PORT` (e.g. 0.0.0.0:7420) so that other members "
              "can reach it, or pass --url ws://HOST:PORT/api/v1/signal\n", why);
  return NULL;
}

static int
cmd_invite (Globals *g, const Command *cmd, char **args)
{
  g_auto(GStrv) given = NULL;
  const GOptionEntry entries[] = {
    { "url", 'u', 0, G_OPTION_ARG_STRING_ARRAY, &given,
      "Signaling URL to put in the token (repeatable; default: the running daemon's peer listener)",
      "ws://HOST:PORT/api/v1/signal" },
    G_OPTION_ENTRY_NULL,
  };
  int rc = parse_options (g, cmd, entries, &args);
  if (rc >= 0)
    return rc;
  if (n_positional (args) != 0)
    return usage_error (cmd, "unexpected argument '%s'", args[1]);
  for (guint i = 0; given != NULL && given[i] != NULL; i++)
    if (!is_ws_url (given[i]))
      return usage_error (cmd, "bad value '%s' for --url (expected ws://HOST:PORT/api/v1/signal)", given[i]);

  g_autoptr(GError) error = NULL;
  g_autoptr(WspClient) client = wsp_client_new (g->workspace, &error);
  if (client == NULL)
    return fail (error);
  const WspPaths *paths = wsp_client_paths (client);
  WspConfig cfg;
  if (!wsp_config_load (paths, NULL, &cfg, &error))
    return fail (error);

  WspInvite inv;
  wsp_invite_init (&inv);
  inv.project_id = g_steal_pointer (&cfg.project_id);
  wsp_config_clear (&cfg);
  int code = EXIT_OK;
  g_autofree char *token = NULL;

  if (!wsp_workspace_load_secret (paths, inv.secret, &error))
    code = fail (error);
  else if (given != NULL)
    for (guint i = 0; given[i] != NULL; i++)
      invite_add_url (inv.peer_urls, given[i]);
  else
    {
      g_autofree char *url = daemon_peer_url (client);
      if (url == NULL)
        code = EXIT_FAIL;
      else
        invite_add_url (inv.peer_urls, url);
    }
  if (code == EXIT_OK && (token = wsp_invite_encode (&inv, &error)) == NULL)
    code = given != NULL ? usage_error (cmd, "%s", error->message) : fail (error);

  if (code == EXIT_OK && g->json)
    {
      g_autoptr(JsonBuilder) b = json_builder_new ();
      json_builder_begin_object (b);
      builder_add_string (b, "token", token);
      g_ptr_array_add (inv.peer_urls, NULL);
      builder_add_strv (b, "urls", (char **) inv.peer_urls->pdata);
      json_builder_end_object (b);
      print_json (b);
    }
  else if (code == EXIT_OK)
    printf ("%s\n", token);

  wsp_invite_clear (&inv);
  if (token != NULL)
    memset (token, 0, strlen (token));
  return code;
}

/* TOKEN, or standard input's first line for "-" (keeps the token out of
 * the shell history and the process list). */
static char *
read_token_arg (const char *arg)
{
  if (strcmp (arg, "-") != 0)
    return g_strdup (arg);
  char buf[WSP_INVITE_MAX_LEN + 2];
  if (fgets (buf, sizeof buf, stdin) == NULL)
    buf[0] = '\0';
  char *token = g_strdup (buf);
  memset (buf, 0, sizeof buf);
  return token;
}

static int
cmd_join (Globals *g, const Command *cmd, char **args)
{
  int rc = parse_options (g, cmd, NULL, &args);
  if (rc >= 0)
    return rc;
  guint n = n_positional (args);
  if (n == 0)
    return usage_error (cmd, "missing TOKEN (from `wsp invite` on a member's machine)");
  if (n > 2)
    return usage_error (cmd, "too many arguments");

  g_autoptr(GError) error = NULL;
  g_autofree char *token = read_token_arg (args[1]);
  WspInvite inv;
  gboolean ok = wsp_invite_decode (token, &inv, &error);
  memset (token, 0, strlen (token));
  if (!ok)
    return usage_error (cmd, "bad TOKEN: %s", error->message);
  /* The config holds a ','-separated list; a URL holding ',' or ';' would
   * come back as two. */
  for (guint i = 0; i < inv.peer_urls->len; i++)
    if (strpbrk (inv.peer_urls->pdata[i], ",;") != NULL)
      {
        wsp_invite_clear (&inv);
        return usage_error (cmd, "bad TOKEN: peer URL %u holds ',' or ';'", i);
      }

  const char *dir = n == 2 ? args[2] : g->workspace;
  WspPaths paths;
  if (!wsp_workspace_init (dir, inv.project_id, inv.secret, &paths, &error))
    {
      wsp_invite_clear (&inv);
      return fail (error);
    }
  if (inv.peer_urls->len > 0)
    {
      g_ptr_array_add (inv.peer_urls, NULL);
      g_autofree char *joined = g_strjoinv (",", (char **) inv.peer_urls->pdata);
      g_ptr_array_remove_index (inv.peer_urls, inv.peer_urls->len - 1);
      if (!wsp_config_file_set (&paths, "sync", "signal_urls", joined, &error))
        {
          /* All or nothing, as init: a half-joined workspace would start
           * a daemon that connects to nobody. */
          wsp_remove_tree (paths.root);
          wsp_paths_clear (&paths);
          wsp_invite_clear (&inv);
          return fail (error);
        }
    }

  WspIdentity identity;
  gboolean have_identity = wsp_workspace_load_identity (&paths, &identity, NULL);
  if (g->json)
    print_new_workspace_json (&paths, inv.project_id, have_identity ? identity.peer_hex : NULL,
                              inv.peer_urls);
  else
    {
      /* `wsp daemon` finds the workspace from the current directory; name
       * it when it is elsewhere. */
      g_autofree char *project_dir = g_path_get_dirname (paths.root);
      g_autofree char *cwd = g_get_current_dir ();
      g_autofree char *cwd_abs = g_canonicalize_filename (cwd, NULL);
      g_autofree char *quoted = g_shell_quote (project_dir);
      g_autofree char *start = strcmp (project_dir, cwd_abs) == 0
                                 ? g_strdup ("wsp daemon")
                                 : g_strdup_printf ("wsp --workspace %s daemon", quoted);
      printf ("joined project %s in %s; start the daemon with: %s\n", inv.project_id, paths.root, start);
      if (inv.peer_urls->len == 0)
        printf ("the token names no peer address: connect with `wsp peer connect URL` once the daemon runs\n");
    }
  memset (&identity, 0, sizeof identity);
  wsp_paths_clear (&paths);
  wsp_invite_clear (&inv);
  return EXIT_OK;
}

/* ---- dispatch ------------------------------------------------------------------ */

static const Command commands[] = {
  { "init",    cmd_init,    "[DIR]",        "Create .workspace/ in DIR (default: the current directory)." },
  { "daemon",  cmd_daemon,  "[WSPD-ARGS...]", "Run wspd for this workspace (same as wspd)." },
  { "create",  cmd_create,  "TITLE",        "Create a task." },
  { "list",    cmd_list,    "",             "List tasks." },
  { "show",    cmd_show,    "ID",           "Show a task with its comments and conflicts." },
  { "edit",    cmd_edit,    "ID",           "Change a task's fields, labels or dependencies." },
  { "close",   cmd_close,   "ID",           "Set a task's status to the last column." },
  { "delete",  cmd_delete,  "ID",           "Delete a task (comments are kept)." },
  { "comment", cmd_comment, "ID TEXT",      "Add a comment (TEXT '-' reads standard input)." },
  { "search",  cmd_search,  "QUERY",        "Full-text search over titles, bodies, comments and labels." },
  { "history", cmd_history, "ID",           "Show a task's operations, oldest first." },
  { "peer",    cmd_peer,    "connect URL | list | drop PEER_ID",
    "Connect to a member's daemon (ws://HOST:PORT/api/v1/signal), list sync peers, or drop one." },
  { "sync",    cmd_sync,    "",             "Show this peer's clock and, per peer, what is left to exchange." },
  { "invite",  cmd_invite,  "",             "Print a join token for this project (holds the project secret; --url to choose the addresses)." },
  { "join",    cmd_join,    "TOKEN [DIR]",  "Create .workspace/ in DIR for the invited project (TOKEN '-' reads standard input)." },
  { "doctor",  cmd_doctor,  "",             "Check the workspace and the daemon; exit 1 if anything is wrong (--restore-files / --apply-deletes after a mass removal)." },
};

static const Command *
command_find (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    if (strcmp (commands[i].name, name) == 0)
      return &commands[i];
  return NULL;
}

static void
print_usage (FILE *to)
{
  fprintf (to, "usage: wsp [--workspace DIR] [--json] COMMAND [ARGS...]\n\ncommands:\n");
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      g_autofree char *head = g_strdup_printf ("%s %s", commands[i].name, commands[i].params);
      /* A long synopsis gets its own line. */
      if (strlen (head) > 22)
        fprintf (to, "  %s\n  %-22s %s\n", head, "", commands[i].summary);
      else
        fprintf (to, "  %-22s %s\n", head, commands[i].summary);
    }
  fprintf (to, "\nEvery command takes --json. Exit status: 0 success, 1 failure, 2 usage error.\n"
               "'wsp COMMAND --help' shows a command's options.\n");
}

int
main (int argc, char **argv)
{
  Globals g = { 0 };
  int i = 1;

  setlocale (LC_ALL, "");
  /* Plain local files only: no GVfs daemon round trip on start-up. */
  g_setenv ("GIO_USE_VFS", "local", FALSE);

  for (; i < argc && argv[i][0] == '-'; i++)
    {
      const char *a = argv[i];
      if (strcmp (a, "--json") == 0)
        g.json = TRUE;
      else if (strcmp (a, "--workspace") == 0)
        {
          if (i + 1 >= argc)
            {
              g_free (g.workspace);
              return usage_error (NULL, "option '--workspace' needs a DIR");
            }
          g_free (g.workspace);
          g.workspace = g_strdup (argv[++i]);
        }
      else if (g_str_has_prefix (a, "--workspace="))
        {
          g_free (g.workspace);
          g.workspace = g_strdup (a + strlen ("--workspace="));
        }
      else if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0)
        {
          g_free (g.workspace);
          print_usage (stdout);
          return EXIT_OK;
        }
      else if (strcmp (a, "--version") == 0)
        {
          g_free (g.workspace);
          printf ("wsp %s\n", WSP_VERSION);
          return EXIT_OK;
        }
      else
        {
          g_free (g.workspace);
          return usage_error (NULL, "unknown option '%s'", a);
        }
    }
  if (i >= argc)
    {
      g_free (g.workspace);
      return usage_error (NULL, "missing COMMAND");
    }
  if (strcmp (argv[i], "help") == 0)
    {
      g_free (g.workspace);
      print_usage (stdout);
      return EXIT_OK;
    }

  const Command *cmd = command_find (argv[i]);
  if (cmd == NULL)
    {
      g_free (g.workspace);
      return usage_error (NULL, "unknown command '%s'", argv[i]);
    }

  /* The command's own argv: "wsp NAME" then its arguments; GOption uses
   * args[0] as the program name in --help. */
  g_autoptr(GStrvBuilder) sb = g_strv_builder_new ();
  g_autofree char *prog = g_strdup_printf ("wsp %s", cmd->name);
  g_strv_builder_add (sb, prog);
  for (int j = i + 1; j < argc; j++)
    g_strv_builder_add (sb, argv[j]);
  char **args = g_strv_builder_end (sb);

  int rc = cmd->run (&g, cmd, args);
  g_strfreev (args);
  g_free (g.workspace);
  fflush (stdout);
  return rc;
}
