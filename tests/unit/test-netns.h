/* test-netns.h — for test programs that open sockets: re-executes the
 * program inside a fresh network namespace holding only `lo` (up), so that
 * nothing could leave the machine even if ICE pinning broke. Header-only
 * (static): include it in one test program's .c.
 *
 * `unshare -rn` (or `-n` as root) is probed first; where it is not allowed
 * the function returns and the tests run on the host, pinned to 127.0.0.1.
 * WSP_NETNS is set inside the namespace. */
#pragma once

#include <unistd.h>
#include <glib.h>

/* Re-executes this program in a fresh network namespace with only `lo`
 * (up), when unshare works here; returns only when it does not. */
static void
maybe_reexec_in_netns (int argc, char **argv)
{
  const char *unshare_flag = geteuid () == 0 ? "-n" : "-rn";
  const char *script = "ip link set lo up && exec \"$0\" \"$@\"";
  g_autofree char *unshare = NULL;
  g_autoptr (GPtrArray) args = NULL;
  gint status = -1;

  if (g_getenv ("WSP_NETNS") != NULL)
    return;
  unshare = g_find_program_in_path ("unshare");
  if (unshare == NULL)
    return;
  {
    const char *probe[] = { unshare, unshare_flag, "sh", "-c", "ip link set lo up", NULL };
    if (!g_spawn_sync (NULL, (char **) probe, NULL, G_SPAWN_STDOUT_TO_DEV_NULL
                       | G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, NULL, NULL, &status, NULL)
        || !g_spawn_check_wait_status (status, NULL))
      return;
  }
  args = g_ptr_array_new ();
  g_ptr_array_add (args, unshare);
  g_ptr_array_add (args, (char *) unshare_flag);
  g_ptr_array_add (args, "sh");
  g_ptr_array_add (args, "-c");
  g_ptr_array_add (args, (char *) script);
  for (int i = 0; i < argc; i++)
    g_ptr_array_add (args, argv[i]);
  g_ptr_array_add (args, NULL);
  g_setenv ("WSP_NETNS", "1", TRUE);
  execv (unshare, (char **) args->pdata);
  g_unsetenv ("WSP_NETNS");   /* exec failed: run here, pinned */
}
