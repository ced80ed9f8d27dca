/* wsp-taskfile.c — owns the task file format (SPEC 4): splitting a file into
 * frontmatter and body, reading the frontmatter with libfyaml, writing files
 * back, and turning a parsed file into the minimal store write.
 *
 * Threads: none of its own; pure functions, callable from any thread. Input
 * is untrusted (people, editors, git, agents, the fuzzer): the file is
 * checked for size, UTF-8 and NUL before libfyaml sees it; libfyaml's own
 * depth limit (64) bounds nesting; every value is checked for type before it
 * lands in a WspTaskFile.
 *
 * Invariants:
 *  - YAML types are never resolved: a scalar is its text. Only plain empty,
 *    `~` and `null` mean "empty", so the renderer quotes exactly those (and
 *    anything else YAML could misread) and every file it writes parses back
 *    to the same fields (the fuzz target checks this on every input).
 *  - Unknown keys are kept as YAML text. They are copied verbatim when the
 *    root mapping is a block mapping at column 0 (comments and layout kept);
 *    otherwise libfyaml's emitter writes them. Either way the text is
 *    re-parsed once at extraction and dropped only if it cannot stand alone.
 *  - The body ends before the last `<!-- wsp:comments` line; the renderer
 *    writes that marker after every body and quotes comment lines, so no
 *    comment line and no earlier body line can be taken for the marker.
 *  - libfyaml diagnostics are collected, never printed.
 */
#include "workspace/wsp-taskfile.h"

#include <string.h>

#include <json-glib/json-glib.h>
#include <libfyaml.h>
#include <sodium.h>

#include "common/wsp-common.h"

#define DEFAULT_PRIORITY 2

/* ---- small helpers ------------------------------------------------------ */

void
wsp_taskfile_problem_clear (WspTaskFileProblem *p)
{
  if (p == NULL)
    return;
  g_clear_pointer (&p->reason, g_free);
  p->line = 0;
}

static void
extra_free (gpointer p)
{
  WspTaskFileExtra *e = p;
  if (e == NULL)
    return;
  g_free (e->key);
  g_free (e->yaml);
  g_free (e);
}

static WspTaskFileExtra *
extra_new (const char *key, gsize key_len, const char *yaml, gsize yaml_len)
{
  WspTaskFileExtra *e = g_new0 (WspTaskFileExtra, 1);
  e->key = g_strndup (key, key_len);
  e->yaml = g_strndup (yaml, yaml_len);
  return e;
}

void
wsp_taskfile_free (WspTaskFile *file)
{
  if (file == NULL)
    return;
  g_free (file->id);
  g_free (file->title);
  g_free (file->body);
  g_free (file->status);
  g_free (file->assignee);
  g_clear_pointer (&file->labels, g_ptr_array_unref);
  g_clear_pointer (&file->depends_on, g_ptr_array_unref);
  g_free (file->parent);
  g_free (file->due);
  g_free (file->created_at);
  g_free (file->updated_at);
  g_clear_pointer (&file->extras, g_ptr_array_unref);
  g_free (file);
}

static WspTaskFile *
taskfile_new (void)
{
  WspTaskFile *f = g_new0 (WspTaskFile, 1);
  f->title = g_strdup ("");
  f->body = g_strdup ("");
  f->priority = DEFAULT_PRIORITY;
  f->labels = g_ptr_array_new_with_free_func (g_free);
  f->depends_on = g_ptr_array_new_with_free_func (g_free);
  f->extras = g_ptr_array_new_with_free_func (extra_free);
  return f;
}

gboolean
wsp_taskfile_id_is_plausible (const char *id)
{
  if (id == NULL)
    return FALSE;
  const char *dash = strrchr (id, '-');
  if (dash == NULL || strlen (dash + 1) != 10)
    return FALSE;
  for (const char *p = dash + 1; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= '2' && *p <= '7')))
      return FALSE;
  g_autofree char *prefix = g_strndup (id, (gsize) (dash - id));
  return wsp_task_prefix_is_valid (prefix);
}

static gboolean
is_blank_char (char c)
{
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

char *
wsp_taskfile_body_normalize (const char *body)
{
  if (body == NULL)
    return g_strdup ("");
  const char *start = body;
  /* Drop whole leading lines made only of blanks (not the indentation of
   * the first real line: that may be a code block). */
  for (const char *p = body;; p++)
    {
      if (*p == '\n')
        start = p + 1;
      else if (*p == '\0' || !is_blank_char (*p))
        break;
    }
  gsize len = strlen (start);
  while (len > 0 && is_blank_char (start[len - 1]))
    len--;
  return g_strndup (start, len);
}

char *
wsp_taskfile_hash (const void *data, gsize len)
{
  guint8 digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256 (digest, data ? data : (const void *) "", len);
  return wsp_hex_encode (digest, sizeof digest);
}

/* 1-based line of byte offset off. */
static guint
line_of (const char *data, gsize off)
{
  guint line = 1;
  for (gsize i = 0; i < off; i++)
    if (data[i] == '\n')
      line++;
  return line;
}

/* ---- splitting the file ------------------------------------------------- */

/* TRUE when [p, end) starts with a `---` line; *next is the start of the
 * following line (or end). */
static gboolean
is_fence_line (const char *p, const char *end, const char **next)
{
  if (end - p < 3 || memcmp (p, "---", 3) != 0)
    return FALSE;
  p += 3;
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
    p++;
  if (p < end && *p != '\n')
    return FALSE;
  *next = p < end ? p + 1 : end;
  return TRUE;
}

typedef struct {
  gsize fm_start;     /* first byte of the frontmatter */
  gsize fm_end;       /* first byte of the closing fence */
  gsize body_start;   /* first byte after the closing fence line */
  guint fm_line;      /* 1-based file line of fm_start */
} Split;

typedef struct {
  guint line;
  char *reason;
} Fail;

G_GNUC_PRINTF (3, 4) static gboolean
fail (Fail *f, guint line, const char *fmt, ...)
{
  if (f->reason == NULL)
    {
      va_list ap;
      va_start (ap, fmt);
      f->reason = g_strdup_vprintf (fmt, ap);
      va_end (ap);
      f->line = line;
    }
  return FALSE;
}

static gboolean
split_file (const char *data, gsize len, Split *s, Fail *f)
{
  const char *end = data + len;
  const char *p = data;
  const char *next = NULL;

  if (len >= 3 && memcmp (p, "\xef\xbb\xbf", 3) == 0)
    p += 3;
  if (!is_fence_line (p, end, &next))
    return fail (f, 1, "no frontmatter: the first line must be ---");
  s->fm_start = (gsize) (next - data);
  s->fm_line = 2;
  for (const char *line = next; line < end;)
    {
      const char *after = NULL;
      if (is_fence_line (line, end, &after))
        {
          s->fm_end = (gsize) (line - data);
          s->body_start = (gsize) (after - data);
          return TRUE;
        }
      const char *nl = memchr (line, '\n', (gsize) (end - line));
      line = nl ? nl + 1 : end;
    }
  return fail (f, 1, "frontmatter is not closed by a --- line");
}

/* ---- libfyaml ----------------------------------------------------------- */

static void
diag_output_ignore (struct fy_diag *diag, void *user, const char *buf, size_t len)
{
  /* Collected errors are read through fy_diag_errors_iterate; the rest of
   * libfyaml's chatter is dropped rather than written to stderr. */
}

typedef struct {
  struct fy_diag     *diag;
  struct fy_parser   *parser;
  struct fy_document *doc;     /* NULL for an empty frontmatter */
} Yaml;

static void
yaml_clear (Yaml *y)
{
  if (y->doc != NULL)
    fy_parse_document_destroy (y->parser, y->doc);
  if (y->parser != NULL)
    fy_parser_destroy (y->parser);
  if (y->diag != NULL)
    fy_diag_destroy (y->diag);
  memset (y, 0, sizeof *y);
}

/* TRUE when text holds only blanks and comment lines. */
static gboolean
yaml_text_is_empty (const char *text, gsize len)
{
  gboolean in_comment = FALSE;
  for (gsize i = 0; i < len; i++)
    {
      char c = text[i];
      if (in_comment)
        in_comment = c != '\n';
      else if (c == '#')
        in_comment = TRUE;
      else if (!is_blank_char (c))
        return FALSE;
    }
  return TRUE;
}

static gboolean
yaml_first_error (Yaml *y, guint *line, char **msg)
{
  void *iter = NULL;
  struct fy_diag_error *e = fy_diag_errors_iterate (y->diag, &iter);
  if (e == NULL)
    return FALSE;
  *line = e->line > 0 ? (guint) e->line : 1;
  *msg = g_strdup (e->msg ? e->msg : "invalid YAML");
  return TRUE;
}

/* Loads exactly one YAML document from text. line_base: the file line of
 * the text's first line. On FALSE, f says why. */
static gboolean
yaml_load (const char *text, gsize len, guint line_base, Yaml *y, Fail *f)
{
  struct fy_diag_cfg dcfg;
  fy_diag_cfg_default (&dcfg);
  dcfg.fp = NULL;
  dcfg.output_fn = diag_output_ignore;
  dcfg.level = FYET_ERROR;
  dcfg.colorize = false;
  y->diag = fy_diag_create (&dcfg);
  if (y->diag == NULL)
    return fail (f, line_base, "cannot parse YAML (out of memory)");
  fy_diag_set_collect_errors (y->diag, true);

  struct fy_parse_cfg pcfg = {
    .flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2 | FYPCF_DISABLE_MMAP_OPT,
    .diag = y->diag,
  };
  y->parser = fy_parser_create (&pcfg);
  if (y->parser == NULL || fy_parser_set_string (y->parser, text, len) != 0)
    return fail (f, line_base, "cannot parse YAML (out of memory)");

  y->doc = fy_parse_load_document (y->parser);
  guint eline = 0;
  g_autofree char *emsg = NULL;
  if (yaml_first_error (y, &eline, &emsg))
    return fail (f, line_base + eline - 1, "invalid YAML: %s", emsg);
  if (y->doc == NULL)
    {
      if (yaml_text_is_empty (text, len))
        return TRUE;
      return fail (f, line_base, "invalid YAML");
    }
  struct fy_document *second = fy_parse_load_document (y->parser);
  if (second != NULL)
    {
      struct fy_document_state *ds = fy_document_get_document_state (second);
      const struct fy_mark *m = ds ? fy_document_state_start_mark (ds) : NULL;
      guint line = m != NULL && m->line >= 0 ? line_base + (guint) m->line : line_base;
      fy_parse_document_destroy (y->parser, second);
      return fail (f, line, "the frontmatter holds more than one YAML document");
    }
  if (yaml_first_error (y, &eline, &emsg))
    return fail (f, line_base + eline - 1, "invalid YAML: %s", emsg);
  return TRUE;
}

/* 0-based line and column of a node in the YAML text, -1 when unknown.
 * Collections report their first scalar (depth is bounded by libfyaml). */
static gboolean
node_mark (struct fy_node *n, const struct fy_mark **out, guint depth)
{
  if (n == NULL || depth > 128)
    return FALSE;
  switch (fy_node_get_type (n))
    {
    case FYNT_SCALAR:
      {
        struct fy_token *t = fy_node_get_scalar_token (n);
        const struct fy_mark *m = t ? fy_token_start_mark (t) : NULL;
        if (m == NULL || m->line < 0)
          return FALSE;
        *out = m;
        return TRUE;
      }
    case FYNT_SEQUENCE:
      {
        void *it = NULL;
        struct fy_node *c = fy_node_sequence_iterate (n, &it);
        return node_mark (c, out, depth + 1);
      }
    case FYNT_MAPPING:
      {
        void *it = NULL;
        struct fy_node_pair *pr = fy_node_mapping_iterate (n, &it);
        if (pr == NULL)
          return FALSE;
        return node_mark (fy_node_pair_key (pr), out, depth + 1) ||
               node_mark (fy_node_pair_value (pr), out, depth + 1);
      }
    default:
      return FALSE;
    }
}

static guint
node_line (struct fy_node *n, guint line_base, guint fallback)
{
  const struct fy_mark *m = NULL;
  if (!node_mark (n, &m, 0))
    return fallback;
  return line_base + (guint) m->line;
}

/* ---- reading values ----------------------------------------------------- */

typedef struct {
  const char  *key;       /* for messages */
  guint        line;      /* file line of the key */
  guint        line_base; /* file line of the YAML text's first line */
  Fail        *fail;
} Val;

/* A plain scalar YAML reads as null. */
static gboolean
scalar_is_null (struct fy_node *n)
{
  if (n == NULL)
    return TRUE;
  if (fy_node_get_type (n) != FYNT_SCALAR || fy_node_get_style (n) != FYNS_PLAIN)
    return FALSE;
  size_t len = 0;
  const char *s = fy_node_get_scalar (n, &len);
  if (s == NULL || len == 0)
    return TRUE;
  return (len == 1 && s[0] == '~') ||
         (len == 4 && (memcmp (s, "null", 4) == 0 || memcmp (s, "Null", 4) == 0 ||
                       memcmp (s, "NULL", 4) == 0));
}

/* The text of a scalar node, newly allocated; NULL and a problem when the
 * node is not a usable scalar. Null scalars give "" (callers check
 * scalar_is_null first when empty means something). */
static char *
read_scalar (struct fy_node *n, const Val *v)
{
  if (n == NULL)
    return g_strdup ("");
  if (fy_node_get_type (n) != FYNT_SCALAR)
    {
      fail (v->fail, node_line (n, v->line_base, v->line), "%s: must be a single value, not a %s",
            v->key, fy_node_get_type (n) == FYNT_SEQUENCE ? "list" : "mapping");
      return NULL;
    }
  if (fy_node_get_style (n) == FYNS_ALIAS)
    {
      fail (v->fail, node_line (n, v->line_base, v->line), "%s: aliases are not supported", v->key);
      return NULL;
    }
  if (scalar_is_null (n))
    return g_strdup ("");
  size_t len = 0;
  const char *s = fy_node_get_scalar (n, &len);
  if (s == NULL)
    return g_strdup ("");
  if (memchr (s, '\0', len) != NULL)
    {
      fail (v->fail, node_line (n, v->line_base, v->line), "%s: must not contain U+0000", v->key);
      return NULL;
    }
  if (!wsp_utf8_is_valid (s, len))
    {
      fail (v->fail, node_line (n, v->line_base, v->line), "%s: not valid UTF-8", v->key);
      return NULL;
    }
  return g_strndup (s, len);
}

/* Empty → NULL (cleared). */
static gboolean
read_optional (struct fy_node *n, const Val *v, char **out)
{
  char *s = read_scalar (n, v);
  if (s == NULL)
    return FALSE;
  g_free (*out);
  *out = NULL;
  if (*s == '\0')
    g_free (s);
  else
    *out = s;
  return TRUE;
}

static gboolean
read_set (struct fy_node *n, const Val *v, GPtrArray *out)
{
  g_ptr_array_set_size (out, 0);
  if (scalar_is_null (n))
    return TRUE;
  if (fy_node_get_type (n) != FYNT_SEQUENCE)
    return fail (v->fail, node_line (n, v->line_base, v->line), "%s: must be a list of strings", v->key);

  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  void *it = NULL;
  struct fy_node *e;
  while ((e = fy_node_sequence_iterate (n, &it)) != NULL)
    {
      Val ev = *v;
      ev.line = node_line (e, v->line_base, v->line);
      if (fy_node_get_type (e) != FYNT_SCALAR)
        return fail (v->fail, ev.line, "%s: must be a list of strings", v->key);
      g_autofree char *s = read_scalar (e, &ev);
      if (s == NULL)
        return FALSE;
      g_strstrip (s);
      if (*s == '\0')
        return fail (v->fail, ev.line, "%s: entries must not be empty", v->key);
      if (g_hash_table_contains (seen, s))
        continue;
      char *kept = g_steal_pointer (&s);
      g_hash_table_add (seen, kept);
      g_ptr_array_add (out, kept);
    }
  return TRUE;
}

static const struct {
  const char    *name;
  WspTaskFileKey key;
} known_keys[] = {
  { "id", WSP_TASKFILE_KEY_ID },
  { "title", WSP_TASKFILE_KEY_TITLE },
  { "status", WSP_TASKFILE_KEY_STATUS },
  { "priority", WSP_TASKFILE_KEY_PRIORITY },
  { "assignee", WSP_TASKFILE_KEY_ASSIGNEE },
  { "labels", WSP_TASKFILE_KEY_LABELS },
  { "depends_on", WSP_TASKFILE_KEY_DEPENDS_ON },
  { "parent", WSP_TASKFILE_KEY_PARENT },
  { "due", WSP_TASKFILE_KEY_DUE },
  { "created_at", WSP_TASKFILE_KEY_CREATED_AT },
  { "updated_at", WSP_TASKFILE_KEY_UPDATED_AT },
};

static WspTaskFileKey
known_key (const char *s, gsize len)
{
  for (guint i = 0; i < G_N_ELEMENTS (known_keys); i++)
    if (strlen (known_keys[i].name) == len && memcmp (known_keys[i].name, s, len) == 0)
      return known_keys[i].key;
  return 0;
}

static gboolean
read_known (WspTaskFile *tf, WspTaskFileKey key, struct fy_node *value, const Val *v,
            const char *const *statuses)
{
  g_autofree char *s = NULL;

  switch (key)
    {
    case WSP_TASKFILE_KEY_ID:
      if (!read_optional (value, v, &tf->id))
        return FALSE;
      if (tf->id != NULL && !wsp_taskfile_id_is_plausible (tf->id))
        return fail (v->fail, v->line, "id: \"%s\" is not a task id (prefix-xxxxxxxxxx)", tf->id);
      return TRUE;
    case WSP_TASKFILE_KEY_TITLE:
      if ((s = read_scalar (value, v)) == NULL)
        return FALSE;
      g_free (tf->title);
      tf->title = g_steal_pointer (&s);
      return TRUE;
    case WSP_TASKFILE_KEY_STATUS:
      if ((s = read_scalar (value, v)) == NULL)
        return FALSE;
      if (*s == '\0' || (statuses != NULL && !g_strv_contains (statuses, s)))
        {
          g_autofree char *list = statuses ? g_strjoinv (", ", (char **) statuses) : NULL;
          if (*s == '\0')
            return fail (v->fail, v->line, "status: must not be empty");
          return fail (v->fail, v->line, "status: unknown status \"%s\" (one of %s)", s, list);
        }
      g_free (tf->status);
      tf->status = g_steal_pointer (&s);
      return TRUE;
    case WSP_TASKFILE_KEY_PRIORITY:
      if (value != NULL && fy_node_get_type (value) == FYNT_SCALAR && !scalar_is_null (value))
        {
          if ((s = read_scalar (value, v)) == NULL)
            return FALSE;
          if (s[0] >= '0' && s[0] <= '4' && s[1] == '\0')
            {
              tf->priority = s[0] - '0';
              return TRUE;
            }
        }
      return fail (v->fail, v->line, "priority: must be an integer 0–4");
    case WSP_TASKFILE_KEY_ASSIGNEE:
      return read_optional (value, v, &tf->assignee);
    case WSP_TASKFILE_KEY_PARENT:
      return read_optional (value, v, &tf->parent);
    case WSP_TASKFILE_KEY_DUE:
      if (!read_optional (value, v, &tf->due))
        return FALSE;
      if (tf->due != NULL && !wsp_date_is_valid (tf->due, strlen (tf->due)))
        return fail (v->fail, v->line, "due: \"%s\" is not a date (YYYY-MM-DD)", tf->due);
      return TRUE;
    case WSP_TASKFILE_KEY_LABELS:
      return read_set (value, v, tf->labels);
    case WSP_TASKFILE_KEY_DEPENDS_ON:
      return read_set (value, v, tf->depends_on);
    case WSP_TASKFILE_KEY_CREATED_AT:
      return read_optional (value, v, &tf->created_at);
    case WSP_TASKFILE_KEY_UPDATED_AT:
      return read_optional (value, v, &tf->updated_at);
    default:
      return TRUE;
    }
}

/* ---- unknown keys ------------------------------------------------------- */

/* One top-level entry of the frontmatter. */
typedef struct {
  struct fy_node *key;
  struct fy_node *value;
  const char     *name;       /* key text (not NUL-terminated) */
  gsize           name_len;
  gsize           pos;        /* byte offset of the key in the YAML text */
  int             column;
  gboolean        known;
} Entry;

/* Collects the root mapping's entries. FALSE (with a problem) for
 * non-string keys. */
static gboolean
collect_entries (struct fy_node *root, guint line_base, GArray *out, Fail *f)
{
  void *it = NULL;
  struct fy_node_pair *pr;
  while ((pr = fy_node_mapping_iterate (root, &it)) != NULL)
    {
      Entry e = { 0 };
      e.key = fy_node_pair_key (pr);
      e.value = fy_node_pair_value (pr);
      guint line = node_line (e.key, line_base, node_line (e.value, line_base, line_base));
      if (e.key == NULL || fy_node_get_type (e.key) != FYNT_SCALAR ||
          fy_node_get_style (e.key) == FYNS_ALIAS)
        return fail (f, line, "frontmatter keys must be strings");
      size_t len = 0;
      e.name = fy_node_get_scalar (e.key, &len);
      if (e.name == NULL)
        return fail (f, line, "frontmatter keys must be strings");
      e.name_len = len;
      if (len == 0 || scalar_is_null (e.key))
        return fail (f, line, "frontmatter keys must not be empty or null");
      if (memchr (e.name, '\0', len) != NULL || !wsp_utf8_is_valid (e.name, len))
        return fail (f, line, "frontmatter keys must be valid UTF-8 without U+0000");
      const struct fy_mark *m = NULL;
      if (node_mark (e.key, &m, 0))
        {
          e.pos = m->input_pos;
          e.column = m->column;
        }
      else
        e.column = -1;
      e.known = known_key (e.name, len) != 0;
      g_array_append_val (out, e);
    }
  return TRUE;
}

/* TRUE when the extras' text, placed after known keys as the renderer
 * places it, parses as a mapping whose keys are the known key and exactly
 * the extras' keys in order. (Checking the text alone is not enough: a BOM
 * or a directive is only harmless at the start of a stream.) */
static gboolean
extras_verify (const GPtrArray *extras, const char *yaml, gsize len)
{
  /* A quoted value: an extra that does not start at column 0 would be
   * swallowed by an empty or plain value; after "" it is an error. */
  static const char lead[] = "id: \"\"\n";
  Yaml y = { 0 };
  Fail f = { 0 };
  gboolean ok = FALSE;
  g_autofree char *text = g_malloc (sizeof lead - 1 + len);
  memcpy (text, lead, sizeof lead - 1);
  memcpy (text + sizeof lead - 1, yaml, len);
  if (yaml_load (text, sizeof lead - 1 + len, 1, &y, &f) && y.doc != NULL)
    {
      struct fy_node *root = fy_document_root (y.doc);
      if (root != NULL && fy_node_get_type (root) == FYNT_MAPPING &&
          fy_node_mapping_item_count (root) == (int) extras->len + 1)
        {
          void *it = NULL;
          struct fy_node_pair *pr;
          guint i = 0;
          ok = TRUE;
          while (ok && (pr = fy_node_mapping_iterate (root, &it)) != NULL)
            {
              const char *want = i == 0 ? "id" : ((const WspTaskFileExtra *) extras->pdata[i - 1])->key;
              struct fy_node *k = fy_node_pair_key (pr);
              size_t kl = 0;
              const char *ks = k && fy_node_get_type (k) == FYNT_SCALAR ? fy_node_get_scalar (k, &kl) : NULL;
              ok = ks != NULL && kl == strlen (want) && memcmp (ks, want, kl) == 0;
              i++;
            }
        }
    }
  g_free (f.reason);
  yaml_clear (&y);
  return ok;
}

static char *
extras_join (const GPtrArray *extras, gsize *len)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < extras->len; i++)
    g_string_append (s, ((const WspTaskFileExtra *) extras->pdata[i])->yaml);
  *len = s->len;
  return g_string_free (s, FALSE);
}

/* YAML 1.2 line breaks: LF, CR LF and a lone CR. */
static gboolean
is_line_break (char c)
{
  return c == '\n' || c == '\r';
}

/* One entry written by libfyaml's emitter, for layouts that cannot be
 * copied line by line (flow or indented root mappings). */
static char *
emit_entry (const Entry *e)
{
  struct fy_document *doc = fy_document_create (NULL);
  if (doc == NULL)
    return NULL;
  char *out = NULL;
  struct fy_node *map = fy_node_create_mapping (doc);
  struct fy_node *k = fy_node_copy (doc, e->key);
  struct fy_node *v = e->value ? fy_node_copy (doc, e->value) : NULL;
  if (map != NULL && k != NULL && (e->value == NULL || v != NULL) &&
      fy_node_mapping_append (map, k, v) == 0)
    {
      k = v = NULL;
      if (fy_document_set_root (doc, map) == 0)
        {
          map = NULL;
          out = fy_emit_document_to_string (doc, FYECF_MODE_BLOCK | FYECF_INDENT_2 |
                                                 FYECF_WIDTH_INF | FYECF_DOC_START_MARK_OFF |
                                                 FYECF_DOC_END_MARK_OFF);
        }
    }
  if (k != NULL)
    fy_node_free (k);
  if (v != NULL)
    fy_node_free (v);
  if (map != NULL)
    fy_node_free (map);
  fy_document_destroy (doc);
  if (out == NULL)
    return NULL;
  char *copy = g_str_has_suffix (out, "\n") ? g_strdup (out) : g_strconcat (out, "\n", NULL);
  free (out);
  return copy;
}

/* The unknown entries as YAML text: verbatim slices of the frontmatter
 * when every unknown key sits at column 0 of a block mapping, else emitted.
 * Text that does not re-parse to the same keys is dropped (never seen in
 * practice; it keeps the renderer's output parseable). */
static GPtrArray *
extras_from_entries (const GArray *entries, struct fy_node *root, const char *text, gsize len)
{
  g_autoptr (GPtrArray) out = g_ptr_array_new_with_free_func (extra_free);
  gboolean verbatim = fy_node_get_style (root) != FYNS_FLOW;
  for (guint i = 0; verbatim && i < entries->len; i++)
    {
      const Entry *e = &g_array_index (entries, Entry, i);
      if (e->column != 0 || e->pos > len || (i > 0 && e->pos <= g_array_index (entries, Entry, i - 1).pos))
        verbatim = FALSE;
    }

  if (verbatim)
    {
      for (guint i = 0; i < entries->len; i++)
        {
          const Entry *e = &g_array_index (entries, Entry, i);
          if (e->known)
            continue;
          gsize start = e->pos;
          while (start > 0 && !is_line_break (text[start - 1]))
            start--;
          gsize end = len;
          if (i + 1 < entries->len)
            {
              end = g_array_index (entries, Entry, i + 1).pos;
              while (end > start && !is_line_break (text[end - 1]))
                end--;
            }
          g_autofree char *slice = g_strndup (text + start, end - start);
          if (!g_str_has_suffix (slice, "\n"))
            {
              char *t = g_strconcat (slice, "\n", NULL);
              g_free (slice);
              slice = t;
            }
          g_ptr_array_add (out, extra_new (e->name, e->name_len, slice, strlen (slice)));
        }
      gsize jl = 0;
      g_autofree char *joined = extras_join (out, &jl);
      if (extras_verify (out, joined, jl))
        return g_steal_pointer (&out);
      g_ptr_array_set_size (out, 0);
    }

  for (guint i = 0; i < entries->len; i++)
    {
      const Entry *e = &g_array_index (entries, Entry, i);
      if (e->known)
        continue;
      g_autofree char *yaml = emit_entry (e);
      if (yaml != NULL)
        g_ptr_array_add (out, extra_new (e->name, e->name_len, yaml, strlen (yaml)));
    }
  gsize jl = 0;
  g_autofree char *joined = extras_join (out, &jl);
  if (!extras_verify (out, joined, jl))
    g_ptr_array_set_size (out, 0);
  return g_steal_pointer (&out);
}

/* ---- parsing ------------------------------------------------------------ */

/* Checks size, NUL and UTF-8 of the whole file. */
static gboolean
check_bytes (const char *data, gsize len, Fail *f)
{
  if (len > WSP_TASKFILE_MAX_BYTES)
    return fail (f, 1, "file too large (%" G_GSIZE_FORMAT " bytes, at most %d)", len,
                 WSP_TASKFILE_MAX_BYTES);
  const char *nul = memchr (data, '\0', len);
  if (nul != NULL)
    return fail (f, line_of (data, (gsize) (nul - data)), "file contains a NUL byte");
  if (!wsp_utf8_is_valid (data, len))
    {
      const char *end = NULL;
      g_utf8_validate_len (data, len, &end);
      gsize off = end != NULL ? (gsize) (end - data) : 0;
      return fail (f, line_of (data, MIN (off, len)), "file is not valid UTF-8");
    }
  return TRUE;
}

/* Body: after the closing fence, up to the last comments marker line. */
static char *
extract_body (const char *data, gsize len, gsize start)
{
  gsize end = len;
  gsize plen = strlen (WSP_TASKFILE_COMMENTS_PREFIX);
  for (gsize i = start; i < len;)
    {
      if (len - i >= plen && memcmp (data + i, WSP_TASKFILE_COMMENTS_PREFIX, plen) == 0)
        end = i;
      const char *nl = memchr (data + i, '\n', len - i);
      if (nl == NULL)
        break;
      i = (gsize) (nl - data) + 1;
    }
  g_autofree char *raw = g_strndup (data + start, end - start);
  return wsp_taskfile_body_normalize (raw);
}

static gboolean
parse_internal (const char *data, gsize len, const char *const *statuses, WspTaskFile **out,
                Fail *f)
{
  Split s = { 0 };
  if (data == NULL)
    data = "", len = 0;
  if (!check_bytes (data, len, f) || !split_file (data, len, &s, f))
    return FALSE;

  const char *text = data + s.fm_start;
  gsize text_len = s.fm_end - s.fm_start;
  Yaml y = { 0 };
  g_autoptr (WspTaskFile) tf = taskfile_new ();
  g_autoptr (GArray) entries = g_array_new (FALSE, TRUE, sizeof (Entry));
  gboolean ok = yaml_load (text, text_len, s.fm_line, &y, f);
  struct fy_node *root = ok && y.doc != NULL ? fy_document_root (y.doc) : NULL;

  if (ok && root != NULL && !scalar_is_null (root))
    {
      if (fy_node_get_type (root) != FYNT_MAPPING)
        ok = fail (f, node_line (root, s.fm_line, s.fm_line),
                   "frontmatter must be a mapping of keys to values");
      else
        ok = collect_entries (root, s.fm_line, entries, f);
    }
  else
    root = NULL;

  for (guint i = 0; ok && i < entries->len; i++)
    {
      const Entry *e = &g_array_index (entries, Entry, i);
      if (!e->known)
        continue;
      g_autofree char *name = g_strndup (e->name, e->name_len);
      WspTaskFileKey key = known_key (e->name, e->name_len);
      Val v = {
        .key = name,
        .line = node_line (e->key, s.fm_line, s.fm_line),
        .line_base = s.fm_line,
        .fail = f,
      };
      tf->present |= key;
      ok = read_known (tf, key, e->value, &v, statuses);
    }

  if (ok && root != NULL)
    {
      g_ptr_array_unref (tf->extras);
      tf->extras = extras_from_entries (entries, root, text, text_len);
    }
  yaml_clear (&y);
  if (!ok)
    return FALSE;

  g_free (tf->body);
  tf->body = extract_body (data, len, s.body_start);
  *out = g_steal_pointer (&tf);
  return TRUE;
}

gboolean
wsp_taskfile_parse (const char *data, gsize len, const char *const *statuses, WspTaskFile **out,
                    WspTaskFileProblem *problem, GError **error)
{
  Fail f = { 0 };
  g_return_val_if_fail (out != NULL, FALSE);
  *out = NULL;
  if (parse_internal (data, len, statuses, out, &f))
    return TRUE;
  if (f.reason == NULL)
    fail (&f, 1, "cannot parse the file");
  g_set_error (error, WSP_ERROR, WSP_ERROR_INVALID, "line %u: %s", f.line, f.reason);
  if (problem != NULL)
    {
      wsp_taskfile_problem_clear (problem);
      problem->line = f.line;
      problem->reason = g_steal_pointer (&f.reason);
    }
  g_free (f.reason);
  return FALSE;
}

static gboolean only_known_keys (const char *text, gsize len);

GPtrArray *
wsp_taskfile_extract_extras (const char *data, gsize len)
{
  Fail f = { 0 };
  Split s = { 0 };
  Yaml y = { 0 };
  GPtrArray *out = NULL;

  if (data == NULL || !check_bytes (data, len, &f) || !split_file (data, len, &s, &f))
    {
      g_free (f.reason);
      return NULL;
    }
  const char *text = data + s.fm_start;
  gsize text_len = s.fm_end - s.fm_start;
  if (only_known_keys (text, text_len))
    return g_ptr_array_new_with_free_func (extra_free);
  if (yaml_load (text, text_len, s.fm_line, &y, &f))
    {
      struct fy_node *root = y.doc ? fy_document_root (y.doc) : NULL;
      g_autoptr (GArray) entries = g_array_new (FALSE, TRUE, sizeof (Entry));
      if (root == NULL || scalar_is_null (root))
        out = g_ptr_array_new_with_free_func (extra_free);
      else if (fy_node_get_type (root) == FYNT_MAPPING && collect_entries (root, s.fm_line, entries, &f))
        out = extras_from_entries (entries, root, text, text_len);
    }
  g_free (f.reason);
  yaml_clear (&y);
  return out;
}

/* Whether a frontmatter, as this daemon writes it, can hold no unknown key:
 * every line is empty, indented or a list item (a value continuing), or
 * starts at column 0 with a known key and a colon. Anything else (another
 * key, a comment, flow or complex YAML) answers FALSE and gets the full
 * parse. Rendering a peer's change re-reads the file for its extras; most
 * files have none, and this saves the YAML parse (a third of a render). */
static gboolean
only_known_keys (const char *text, gsize len)
{
  gsize i = 0;
  gboolean seen_key = FALSE;   /* an indented line continues a key's value */
  while (i < len)
    {
      gsize end = i;
      while (end < len && text[end] != '\n')
        end++;
      gsize n = end - i;
      const char *line = text + i;
      if (n && line[n - 1] == '\r')
        n--;
      if (n && line[0] != ' ' && line[0] != '\t' && !(line[0] == '-' && (n == 1 || line[1] == ' ')))
        {
          gsize k = 0;
          while (k < n && ((line[k] >= 'a' && line[k] <= 'z') || line[k] == '_'))
            k++;
          if (k == 0 || k >= n || line[k] != ':' || (k + 1 < n && line[k + 1] != ' ') || !known_key (line, k))
            return FALSE;
          seen_key = TRUE;
        }
      else if (n && !seen_key)
        return FALSE;   /* an indented root mapping, or no key yet */
      i = end + 1;
    }
  return TRUE;
}

/* ---- rendering ---------------------------------------------------------- */

/* Decodes one UTF-8 code point at s (valid UTF-8 assumed); returns its
 * length. */
static guint
utf8_next (const char *s, gunichar *cp)
{
  *cp = g_utf8_get_char_validated (s, -1);
  if (*cp == (gunichar) -1 || *cp == (gunichar) -2)
    {
      *cp = (guchar) s[0];
      return 1;
    }
  return (guint) g_unichar_to_utf8 (*cp, NULL);
}

/* Code points YAML treats as breaks or does not accept unescaped. */
static gboolean
needs_escape (gunichar c)
{
  return c < 0x20 || c == 0x7f || (c >= 0x80 && c <= 0x9f) || c == 0x2028 || c == 0x2029 ||
         c == 0xfeff || c == 0xfffe || c == 0xffff;
}

static gboolean
ascii_caseeq_any (const char *s, const char *const *words)
{
  for (guint i = 0; words[i] != NULL; i++)
    if (g_ascii_strcasecmp (s, words[i]) == 0)
      return TRUE;
  return FALSE;
}

/* TRUE when s can be written as a plain scalar, both as a mapping value and
 * inside a flow sequence, and every YAML reader reads it back as the same
 * string (not null, bool, number, date or a different text). */
static gboolean
plain_is_safe (const char *s)
{
  static const char *const special[] = {
    "null", "true", "false", "yes", "no", "on", "off", "y", "n", NULL,
  };
  gsize len = strlen (s);
  if (len == 0 || ascii_caseeq_any (s, special))
    return FALSE;
  if (strchr ("-?:,[]{}#&*!|>'\"%@`~ .+=<\\", s[0]) != NULL)
    return FALSE;
  if (s[len - 1] == ' ' || s[len - 1] == ':')
    return FALSE;
  if (g_ascii_isdigit (s[0]) && strspn (s, "0123456789abcdefABCDEFxXoO_.:+- TZtz") == len)
    return FALSE;   /* numbers, dates and times in any YAML version */
  for (const char *p = s; *p;)
    {
      gunichar c;
      guint n = utf8_next (p, &c);
      if (needs_escape (c) || (c < 0x80 && strchr (",[]{}", (int) c) != NULL))
        return FALSE;
      if (c == ':' && (p[1] == ' ' || p[1] == '\0'))
        return FALSE;
      if (c == '#' && p > s && p[-1] == ' ')
        return FALSE;
      p += n;
    }
  return TRUE;
}

static void
append_double_quoted (GString *out, const char *s)
{
  g_string_append_c (out, '"');
  for (const char *p = s; *p;)
    {
      gunichar c;
      guint n = utf8_next (p, &c);
      switch (c)
        {
        case '"':  g_string_append (out, "\\\""); break;
        case '\\': g_string_append (out, "\\\\"); break;
        case '\n': g_string_append (out, "\\n"); break;
        case '\t': g_string_append (out, "\\t"); break;
        case '\r': g_string_append (out, "\\r"); break;
        default:
          if (needs_escape (c))
            g_string_append_printf (out, c < 0x100 ? "\\x%02x" : "\\u%04x", (guint) c);
          else
            g_string_append_len (out, p, n);
          break;
        }
      p += n;
    }
  g_string_append_c (out, '"');
}

/* A string value; NULL or "" write nothing (empty) unless keep_empty, where
 * "" is written as "" (the empty string, not null). */
static void
append_scalar (GString *out, const char *s, gboolean keep_empty)
{
  if (s == NULL || *s == '\0')
    {
      if (keep_empty)
        g_string_append (out, "\"\"");
      return;
    }
  if (plain_is_safe (s))
    g_string_append (out, s);
  else
    append_double_quoted (out, s);
}

static void
append_key (GString *out, const char *key, const char *value, gboolean keep_empty)
{
  g_string_append (out, key);
  g_string_append_c (out, ':');
  if (value != NULL && (*value != '\0' || keep_empty))
    {
      g_string_append_c (out, ' ');
      append_scalar (out, value, keep_empty);
    }
  g_string_append_c (out, '\n');
}

/* A value written plain when it is well-formed (dates and times read as
 * their text by our parser), quoted otherwise. */
static void
append_key_verbatim_if (GString *out, const char *key, const char *value, gboolean plain_ok)
{
  gsize len = value != NULL ? strlen (value) : 0;
  if (plain_ok && len > 0 && g_ascii_isdigit (value[0]) && value[len - 1] != ':' &&
      strspn (value, "0123456789-:.TZ+") == len)
    g_string_append_printf (out, "%s: %s\n", key, value);
  else
    append_key (out, key, value, FALSE);
}

static void
append_list (GString *out, const char *key, const char *const *items)
{
  g_string_append_printf (out, "%s: [", key);
  for (guint i = 0; items != NULL && items[i] != NULL; i++)
    {
      if (i > 0)
        g_string_append (out, ", ");
      append_scalar (out, items[i], TRUE);
    }
  g_string_append (out, "]\n");
}

/* Comment bodies are quoted line by line so that no line of the section
 * can start a marker. */
static void
append_comment (GString *out, const WspTaskFileComment *c)
{
  g_string_append_printf (out, "\n**%s** · %s\n\n", c->author ? c->author : "unknown",
                          c->created_at ? c->created_at : "");
  g_autofree char *body = wsp_taskfile_body_normalize (c->body);
  const char *p = body;
  do
    {
      const char *nl = strchr (p, '\n');
      gsize n = nl ? (gsize) (nl - p) : strlen (p);
      g_string_append (out, n > 0 ? "> " : ">");
      g_string_append_len (out, p, (gssize) n);
      g_string_append_c (out, '\n');
      p = nl ? nl + 1 : NULL;
    }
  while (p != NULL);
}

GBytes *
wsp_taskfile_render (const WspTaskFileView *task, GBytes *original)
{
  g_return_val_if_fail (task != NULL, NULL);
  GString *out = g_string_sized_new (512);
  g_autoptr (GPtrArray) extras = NULL;
  if (original != NULL)
    {
      gsize olen = 0;
      const char *odata = g_bytes_get_data (original, &olen);
      extras = wsp_taskfile_extract_extras (odata, olen);
    }

  g_string_append (out, "---\n");
  append_key (out, "id", task->id, FALSE);
  append_key (out, "title", task->title ? task->title : "", TRUE);
  append_key (out, "status", task->status && *task->status ? task->status : "todo", FALSE);
  g_string_append_printf (out, "priority: %d\n",
                          task->priority >= 0 && task->priority <= 4 ? (int) task->priority
                                                                     : DEFAULT_PRIORITY);
  append_key (out, "assignee", task->assignee, FALSE);
  append_list (out, "labels", task->labels);
  append_list (out, "depends_on", task->depends_on);
  append_key (out, "parent", task->parent, FALSE);
  append_key_verbatim_if (out, "due", task->due,
                          task->due != NULL && wsp_date_is_valid (task->due, strlen (task->due)));
  append_key_verbatim_if (out, "created_at", task->created_at, TRUE);
  append_key_verbatim_if (out, "updated_at", task->updated_at, TRUE);
  for (guint i = 0; extras != NULL && i < extras->len; i++)
    g_string_append (out, ((const WspTaskFileExtra *) extras->pdata[i])->yaml);
  g_string_append (out, "---\n");

  g_autofree char *body = wsp_taskfile_body_normalize (task->body);
  if (*body != '\0')
    {
      g_string_append (out, body);
      g_string_append (out, "\n\n");
    }
  g_string_append (out, WSP_TASKFILE_COMMENTS_MARKER "\n");
  for (guint i = 0; i < task->n_comments; i++)
    append_comment (out, &task->comments[i]);
  return g_string_free_to_bytes (out);
}

/* ---- diff --------------------------------------------------------------- */

static gboolean
str_eq_empty (const char *a, const char *b)
{
  return g_strcmp0 (a && *a ? a : NULL, b && *b ? b : NULL) == 0;
}

static void
set_str (WspWrite *w, WspField field, const char *s)
{
  WspValue v = wsp_value_str (s);
  wsp_write_set_field (w, field, &v);
}

/* Appends to *out (created on demand) each item of `from` not in `minus`. */
static void
set_difference (GPtrArray *from, const char *const *minus_strv, GPtrArray *minus_arr,
                GPtrArray **out)
{
  g_autoptr (GHashTable) minus = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; minus_strv != NULL && minus_strv[i] != NULL; i++)
    g_hash_table_add (minus, (gpointer) minus_strv[i]);
  for (guint i = 0; minus_arr != NULL && i < minus_arr->len; i++)
    g_hash_table_add (minus, minus_arr->pdata[i]);
  for (guint i = 0; from != NULL && i < from->len; i++)
    {
      const char *s = from->pdata[i];
      if (g_hash_table_contains (minus, s))
        continue;
      if (*out == NULL)
        *out = g_ptr_array_new_with_free_func (g_free);
      g_ptr_array_add (*out, g_strdup (s));
      g_hash_table_add (minus, (gpointer) s);
    }
}

static GPtrArray *
strv_to_array (const char *const *v)
{
  GPtrArray *a = g_ptr_array_new ();
  for (guint i = 0; v != NULL && v[i] != NULL; i++)
    g_ptr_array_add (a, (gpointer) v[i]);
  return a;
}

static void
diff_set (GPtrArray *file_set, const char *const *current, GPtrArray **add, GPtrArray **remove)
{
  g_autoptr (GPtrArray) cur = strv_to_array (current);
  set_difference (file_set, current, NULL, add);
  set_difference (cur, NULL, file_set, remove);
}

WspWrite *
wsp_taskfile_diff (const WspTaskFile *file, const WspTaskFileView *current)
{
  g_return_val_if_fail (file != NULL && current != NULL, NULL);
  g_autoptr (WspWrite) w = wsp_write_new (WSP_WRITE_UPDATE, current->id);

  if ((file->present & WSP_TASKFILE_KEY_TITLE) && !str_eq_empty (file->title, current->title))
    set_str (w, WSP_FIELD_TITLE, file->title);
  g_autofree char *cur_body = wsp_taskfile_body_normalize (current->body);
  if (g_strcmp0 (file->body, cur_body) != 0)
    set_str (w, WSP_FIELD_BODY, file->body);
  if ((file->present & WSP_TASKFILE_KEY_STATUS) && file->status != NULL &&
      g_strcmp0 (file->status, current->status ? current->status : "todo") != 0)
    set_str (w, WSP_FIELD_STATUS, file->status);
  if ((file->present & WSP_TASKFILE_KEY_PRIORITY) && file->priority != current->priority)
    {
      WspValue v = wsp_value_int (file->priority);
      wsp_write_set_field (w, WSP_FIELD_PRIORITY, &v);
    }
  if ((file->present & WSP_TASKFILE_KEY_ASSIGNEE) && !str_eq_empty (file->assignee, current->assignee))
    set_str (w, WSP_FIELD_ASSIGNEE, file->assignee);
  if ((file->present & WSP_TASKFILE_KEY_PARENT) && !str_eq_empty (file->parent, current->parent))
    set_str (w, WSP_FIELD_PARENT, file->parent);
  if ((file->present & WSP_TASKFILE_KEY_DUE) && !str_eq_empty (file->due, current->due))
    set_str (w, WSP_FIELD_DUE, file->due);
  if (file->present & WSP_TASKFILE_KEY_LABELS)
    diff_set (file->labels, current->labels, &w->labels_add, &w->labels_remove);
  if (file->present & WSP_TASKFILE_KEY_DEPENDS_ON)
    diff_set (file->depends_on, current->depends_on, &w->deps_add, &w->deps_remove);

  if (w->field_mask == 0 && w->labels_add == NULL && w->labels_remove == NULL &&
      w->deps_add == NULL && w->deps_remove == NULL)
    return NULL;
  return g_steal_pointer (&w);
}

static GPtrArray *
copy_set (const GPtrArray *a)
{
  if (a == NULL || a->len == 0)
    return NULL;
  GPtrArray *out = g_ptr_array_new_full (a->len, g_free);
  for (guint i = 0; i < a->len; i++)
    g_ptr_array_add (out, g_strdup (a->pdata[i]));
  return out;
}

WspWrite *
wsp_taskfile_create_write (const WspTaskFile *file, const char *task_id)
{
  g_return_val_if_fail (file != NULL && task_id != NULL, NULL);
  WspWrite *w = wsp_write_new (WSP_WRITE_CREATE, task_id);
  if (file->present & WSP_TASKFILE_KEY_TITLE)
    set_str (w, WSP_FIELD_TITLE, file->title);
  set_str (w, WSP_FIELD_BODY, file->body);
  if ((file->present & WSP_TASKFILE_KEY_STATUS) && file->status != NULL)
    set_str (w, WSP_FIELD_STATUS, file->status);
  if (file->present & WSP_TASKFILE_KEY_PRIORITY)
    {
      WspValue v = wsp_value_int (file->priority);
      wsp_write_set_field (w, WSP_FIELD_PRIORITY, &v);
    }
  if (file->present & WSP_TASKFILE_KEY_ASSIGNEE)
    set_str (w, WSP_FIELD_ASSIGNEE, file->assignee);
  if (file->present & WSP_TASKFILE_KEY_PARENT)
    set_str (w, WSP_FIELD_PARENT, file->parent);
  if (file->present & WSP_TASKFILE_KEY_DUE)
    set_str (w, WSP_FIELD_DUE, file->due);
  w->labels_add = copy_set (file->labels);
  w->deps_add = copy_set (file->depends_on);
  return w;
}

/* ---- views from the store's JSON ---------------------------------------- */

typedef struct {
  WspTaskFileView     view;       /* first: the public part */
  GStringChunk       *strings;
  GPtrArray          *labels;     /* NULL-terminated, borrowed strings */
  GPtrArray          *deps;
  GArray             *comments;   /* WspTaskFileComment */
} OwnedView;

static const char *
json_str (OwnedView *ov, JsonObject *o, const char *name)
{
  JsonNode *n = json_object_get_member (o, name);
  if (n == NULL || json_node_get_value_type (n) != G_TYPE_STRING)
    return NULL;
  return g_string_chunk_insert (ov->strings, json_node_get_string (n));
}

static GPtrArray *
json_strv (OwnedView *ov, JsonObject *o, const char *name)
{
  GPtrArray *a = g_ptr_array_new ();
  JsonNode *n = json_object_get_member (o, name);
  if (n != NULL && JSON_NODE_HOLDS_ARRAY (n))
    {
      JsonArray *arr = json_node_get_array (n);
      for (guint i = 0; i < json_array_get_length (arr); i++)
        {
          JsonNode *e = json_array_get_element (arr, i);
          if (json_node_get_value_type (e) == G_TYPE_STRING)
            g_ptr_array_add (a, g_string_chunk_insert (ov->strings, json_node_get_string (e)));
        }
    }
  g_ptr_array_add (a, NULL);
  return a;
}

void
wsp_taskfile_view_free (WspTaskFileView *view)
{
  OwnedView *ov = (OwnedView *) view;
  if (ov == NULL)
    return;
  g_string_chunk_free (ov->strings);
  g_ptr_array_unref (ov->labels);
  g_ptr_array_unref (ov->deps);
  g_array_unref (ov->comments);
  g_free (ov);
}

WspTaskFileView *
wsp_taskfile_view_new_from_json (const char *json, gssize len, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError) local = NULL;
  if (!json_parser_load_from_data (parser, json, len, &local))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT, "task JSON does not parse: %s", local->message);
      return NULL;
    }
  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT, "task JSON is not an object");
      return NULL;
    }
  JsonObject *o = json_node_get_object (root);
  OwnedView *ov = g_new0 (OwnedView, 1);
  ov->strings = g_string_chunk_new (256);
  ov->comments = g_array_new (FALSE, TRUE, sizeof (WspTaskFileComment));
  WspTaskFileView *v = &ov->view;
  v->id = json_str (ov, o, "id");
  if (v->id == NULL)
    {
      ov->labels = g_ptr_array_new ();
      ov->deps = g_ptr_array_new ();
      wsp_taskfile_view_free (v);
      g_set_error (error, WSP_ERROR, WSP_ERROR_CORRUPT, "task JSON has no id");
      return NULL;
    }
  v->title = json_str (ov, o, "title");
  v->body = json_str (ov, o, "body");
  v->status = json_str (ov, o, "status");
  v->priority = DEFAULT_PRIORITY;
  JsonNode *pn = json_object_get_member (o, "priority");
  if (pn != NULL && JSON_NODE_HOLDS_VALUE (pn) && json_node_get_value_type (pn) == G_TYPE_INT64)
    v->priority = json_node_get_int (pn);
  JsonNode *posn = json_object_get_member (o, "position");
  if (posn != NULL && JSON_NODE_HOLDS_VALUE (posn) &&
      (json_node_get_value_type (posn) == G_TYPE_DOUBLE || json_node_get_value_type (posn) == G_TYPE_INT64))
    v->position = json_node_get_double (posn);
  v->assignee = json_str (ov, o, "assignee");
  v->parent = json_str (ov, o, "parent");
  v->due = json_str (ov, o, "due");
  v->created_at = json_str (ov, o, "created_at");
  v->updated_at = json_str (ov, o, "updated_at");
  ov->labels = json_strv (ov, o, "labels");
  ov->deps = json_strv (ov, o, "depends_on");
  v->labels = (const char *const *) ov->labels->pdata;
  v->depends_on = (const char *const *) ov->deps->pdata;
  JsonNode *cn = json_object_get_member (o, "comments");
  if (cn != NULL && JSON_NODE_HOLDS_ARRAY (cn))
    {
      JsonArray *arr = json_node_get_array (cn);
      for (guint i = 0; i < json_array_get_length (arr); i++)
        {
          JsonNode *e = json_array_get_element (arr, i);
          if (!JSON_NODE_HOLDS_OBJECT (e))
            continue;
          JsonObject *co = json_node_get_object (e);
          WspTaskFileComment c = {
            .author = json_str (ov, co, "author"),
            .created_at = json_str (ov, co, "created_at"),
            .body = json_str (ov, co, "body"),
          };
          g_array_append_val (ov->comments, c);
        }
    }
  v->comments = (const WspTaskFileComment *) (gpointer) ov->comments->data;
  v->n_comments = ov->comments->len;
  return v;
}
