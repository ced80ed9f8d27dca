/* replay-main.c — runs a libFuzzer target over files and directories
 * without libFuzzer, so that the regression corpora replay in every build
 * (gcc included) as ordinary tests.
 *
 *   <target>-replay PATH…   (each PATH a file or a directory of files)
 */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
run_file (const char *path)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  g_autoptr (GError) error = NULL;
  if (!g_file_get_contents (path, &data, &len, &error))
    {
      fprintf (stderr, "replay: %s\n", error->message);
      return 1;
    }
  LLVMFuzzerTestOneInput ((const uint8_t *) data, len);
  return 0;
}

int
main (int argc, char **argv)
{
  guint n = 0;
  int failed = 0;
  for (int i = 1; i < argc; i++)
    {
      if (g_file_test (argv[i], G_FILE_TEST_IS_DIR))
        {
          g_autoptr (GDir) dir = g_dir_open (argv[i], 0, NULL);
          const char *name;
          while (dir && (name = g_dir_read_name (dir)))
            {
              g_autofree char *p = g_build_filename (argv[i], name, NULL);
              failed |= run_file (p);
              n++;
            }
        }
      else
        {
          failed |= run_file (argv[i]);
          n++;
        }
    }
  printf ("replayed %u inputs\n", n);
  if (n == 0)
    {
      fprintf (stderr, "replay: no inputs found\n");
      return 1;
    }
  return failed;
}
