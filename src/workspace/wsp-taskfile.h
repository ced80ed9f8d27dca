/* wsp-taskfile.h — the task file format of SPEC 4: `tasks/<id>.md`, YAML
 * frontmatter between `---` lines, then the Markdown body, then a comments
 * section the daemon writes. Parsing (with line-numbered problems), rendering
 * (keeping unknown frontmatter keys), and the minimal store write that turns
 * an edited file into operations.
 *
 * Pure: no I/O, no globals, any thread. Total on untrusted input: every
 * byte sequence either parses or fails with WSP_ERROR_INVALID and a line.
 *
 * File layout written by wsp_taskfile_render():
 *
 *   ---
 *   id: ws-k3jrxaq2mz
 *   title: Make sync resume after laptop sleep
 *   status: in_progress
 *   priority: 1
 *   assignee: alice
 *   labels: [sync, bug]
 *   depends_on: [ws-7hdz2kq4aa]
 *   parent:
 *   due: 2026-12-01
 *   created_at: 2026-11-23T10:04:00.000Z
 *   updated_at: 2026-11-23T11:30:12.345Z
 *   <unknown keys of the previous file, verbatim, in their order>
 *   ---
 *   <body>
 *
 *   <!-- wsp:comments (written by wspd; add a comment with `wsp comment`) -->
 *
 *   **<author>** · <created_at>
 *
 *   > <comment line>
 *
 * Rules the parser applies (and the renderer respects, so that a file the
 * daemon wrote parses back to the same fields):
 *  - The first line is `---` (a UTF-8 BOM and trailing blanks/CR allowed);
 *    the next line that is `---` closes the frontmatter.
 *  - The whole file is valid UTF-8 without NUL bytes, at most
 *    WSP_TASKFILE_MAX_BYTES.
 *  - The frontmatter is one YAML mapping (or nothing) with string keys.
 *    Types are never resolved: every scalar is read as its text. A plain
 *    empty value, `~` or `null` means empty; `""` is the empty string.
 *  - The body is the text after the closing `---` up to the LAST line that
 *    starts with `<!-- wsp:comments`; that line and everything after it
 *    belong to the daemon and are ignored. The renderer always writes that
 *    marker after the body and quotes every comment line with "> ", so a
 *    body that itself contains a marker line survives a round trip.
 *  - Bodies are compared and stored normalised (wsp_taskfile_body_normalize):
 *    leading blank lines and trailing whitespace do not count, so an editor
 *    adding a final newline never becomes an operation.
 *  - `position` is not part of the file (SPEC 4's example has none). A
 *    `position:` key a user writes is an unknown key: kept, never applied.
 *  - `created_at` and `updated_at` are informational: read, never applied.
 */
#pragma once
#include <glib.h>
#include "store/wsp-store.h"

G_BEGIN_DECLS

/* Files larger than this are refused before any YAML parsing. A body must
 * also fit one op (about 60 KiB); the store enforces that (TOO_LARGE). */
#define WSP_TASKFILE_MAX_BYTES (1024 * 1024)

/* The first line of the daemon's comments section. Parsing strips from the
 * last line that starts with WSP_TASKFILE_COMMENTS_PREFIX. */
#define WSP_TASKFILE_COMMENTS_PREFIX "<!-- wsp:comments"
#define WSP_TASKFILE_COMMENTS_MARKER \
  "<!-- wsp:comments (written by wspd; add a comment with `wsp comment`) -->"

/* Known frontmatter keys, as bits of WspTaskFile.present. */
typedef enum {
  WSP_TASKFILE_KEY_ID         = 1u << 0,
  WSP_TASKFILE_KEY_TITLE      = 1u << 1,
  WSP_TASKFILE_KEY_STATUS     = 1u << 2,
  WSP_TASKFILE_KEY_PRIORITY   = 1u << 3,
  WSP_TASKFILE_KEY_ASSIGNEE   = 1u << 4,
  WSP_TASKFILE_KEY_LABELS     = 1u << 5,
  WSP_TASKFILE_KEY_DEPENDS_ON = 1u << 6,
  WSP_TASKFILE_KEY_PARENT     = 1u << 7,
  WSP_TASKFILE_KEY_DUE        = 1u << 8,
  WSP_TASKFILE_KEY_CREATED_AT = 1u << 9,
  WSP_TASKFILE_KEY_UPDATED_AT = 1u << 10,
} WspTaskFileKey;

/* An unknown frontmatter key and its YAML text: the whole `key: value`
 * entry, one or more lines each ending in '\n', at column 0, usually copied
 * verbatim from the file (comments and formatting kept). */
typedef struct {
  char *key;
  char *yaml;
} WspTaskFileExtra;

/* A parsed task file. Owns everything. A key missing from the frontmatter
 * means "not given" (its bit in `present` is clear and the field is at its
 * empty value); a key present with an empty value means "cleared". */
typedef struct {
  guint32    present;      /* WspTaskFileKey bits of the keys present */
  char      *id;           /* NULL when absent or empty; else a plausible task id */
  char      *title;        /* never NULL; "" when empty or absent */
  char      *body;         /* never NULL; normalised, comments section removed */
  char      *status;       /* NULL when absent; else non-empty (and in statuses) */
  gint64     priority;     /* 0..4; 2 when absent */
  char      *assignee;     /* NULL when empty or absent */
  GPtrArray *labels;       /* char*, trimmed, non-empty, distinct, file order; never NULL */
  GPtrArray *depends_on;   /* char*, same rules; never NULL */
  char      *parent;       /* NULL when empty or absent */
  char      *due;          /* NULL when empty or absent; else a valid YYYY-MM-DD */
  char      *created_at;   /* text as written, NULL when empty/absent; ignored on input */
  char      *updated_at;
  GPtrArray *extras;       /* WspTaskFileExtra*, unknown keys in file order; never NULL */
} WspTaskFile;

void wsp_taskfile_free (WspTaskFile *file);   /* NULL ok */
G_DEFINE_AUTOPTR_CLEANUP_FUNC (WspTaskFile, wsp_taskfile_free)

/* Where and why a file failed to parse, for HTTP `problems` and
 * `wsp doctor` ({file, line, reason}). */
typedef struct {
  guint  line;     /* 1-based line of the file; 1 for whole-file problems */
  char  *reason;   /* lowercase, names the key when there is one ("priority: …") */
} WspTaskFileProblem;

void wsp_taskfile_problem_clear (WspTaskFileProblem *p);   /* NULL ok */

/* Parses a task file (data need not be NUL-terminated).
 *
 * statuses: the project's columns (NULL-terminated); a status not among
 * them is refused. NULL accepts any non-empty status. The store keeps a
 * status that is not among this replica's columns (a remote peer's), and
 * the daemon renders it: to keep such a file editable, pass the columns plus
 * the task's current status.
 *
 * On success returns TRUE and *out (owned by the caller). On failure
 * returns FALSE with WSP_ERROR_INVALID, message "line N: reason", and, when
 * problem is not NULL, the same line and reason separately. Refused: no
 * frontmatter or no closing `---`; invalid UTF-8, NUL bytes, too large;
 * bad YAML (libfyaml's reason and line), several YAML documents, a
 * frontmatter that is not a mapping, non-string, empty, null or duplicate
 * keys; aliases
 * in known keys; title/status/assignee/parent/due/id not a scalar; a string
 * holding U+0000; priority not an integer 0–4; labels/depends_on not a list
 * of strings or with an empty entry; due not a real date; an unknown
 * status, an empty status; an id that is not a plausible task id
 * (wsp_taskfile_id_is_plausible). Never aborts. */
gboolean wsp_taskfile_parse (const char *data, gsize len, const char *const *statuses,
                             WspTaskFile **out, WspTaskFileProblem *problem, GError **error);

/* `<prefix>-<10 chars a–z, 2–7>` with prefix [a-z][a-z0-9]{0,15} (SPEC 3). */
gboolean wsp_taskfile_id_is_plausible (const char *id);

/* Leading blank lines and trailing whitespace removed. Returns a new string
 * (NULL → ""). */
char    *wsp_taskfile_body_normalize (const char *body);

/* ---- rendering --------------------------------------------------------- */

typedef struct {
  const char *author;       /* peer id */
  const char *created_at;   /* RFC 3339 */
  const char *body;         /* Markdown */
} WspTaskFileComment;

/* A task as the daemon knows it, to render a file or diff one against.
 * Borrows everything. Fill it from the store's task JSON (SPEC 5) — see
 * wsp_taskfile_view_new_from_json — or from a WspTaskView. */
typedef struct {
  const char         *id;          /* required */
  const char         *title;       /* NULL = "" */
  const char         *body;        /* NULL = "" */
  const char         *status;      /* NULL = "todo" */
  gint64              priority;    /* 0..4 (others render as 2) */
  const char         *assignee;    /* NULL or "" = empty */
  const char *const  *labels;      /* NULL-terminated; NULL = none */
  const char *const  *depends_on;  /* NULL-terminated; NULL = none */
  const char         *parent;      /* NULL or "" = empty */
  const char         *due;         /* NULL or "" = empty */
  double              position;    /* not rendered (see the top of this file) */
  const char         *created_at;  /* RFC 3339; NULL = key left empty */
  const char         *updated_at;
  const WspTaskFileComment *comments;   /* oldest first */
  guint               n_comments;
} WspTaskFileView;

/* The bytes of tasks/<id>.md for task. original: the previous bytes of the
 * file, or NULL; its unknown frontmatter keys are kept, in their order, as
 * long as its frontmatter is YAML (its known fields may be invalid). Strings
 * are written plain when YAML reads them back as the same text, else
 * double-quoted with escapes (newlines in titles become "\n"). */
GBytes  *wsp_taskfile_render (const WspTaskFileView *task, GBytes *original);

/* Unknown keys of a file's frontmatter (WspTaskFileExtra*), or NULL when the
 * data has no parseable frontmatter. Used by render; exposed for tests. */
GPtrArray *wsp_taskfile_extract_extras (const char *data, gsize len);

/* ---- diff -------------------------------------------------------------- */

/* The minimal WSP_WRITE_UPDATE for current->id that makes the task match
 * the file: one field per present key whose value differs (the body always
 * counts as present; compared normalised), and label/dependency set
 * differences (only when the key is present). Returns NULL when nothing
 * changed. The file's id is not checked against current->id (the caller
 * matched them). */
WspWrite *wsp_taskfile_diff (const WspTaskFile *file, const WspTaskFileView *current);

/* A WSP_WRITE_CREATE for a file without a known task: every present field,
 * the body, labels and dependencies. task_id: the id to create (the file's
 * own id, or a fresh one the caller made). */
WspWrite *wsp_taskfile_create_write (const WspTaskFile *file, const char *task_id);

/* ---- helpers ----------------------------------------------------------- */

/* SHA-256 of data as 64 lowercase hex chars ("know what you wrote": the
 * daemon remembers the hash of each file it writes and ignores a watcher
 * event whose content hashes the same). */
char    *wsp_taskfile_hash (const void *data, gsize len);

/* A view that owns its strings, built from the store's task JSON
 * (wsp_store_reader_task_json: SPEC 5 with "comments"). Free with
 * wsp_taskfile_view_free. NULL with WSP_ERROR_CORRUPT if the JSON does not
 * parse or is not an object with a string "id". Missing or mistyped members
 * read as empty (priority 2). */
WspTaskFileView *wsp_taskfile_view_new_from_json (const char *json, gssize len, GError **error);
void             wsp_taskfile_view_free (WspTaskFileView *view);   /* only for views from _new_from_json */
G_DEFINE_AUTOPTR_CLEANUP_FUNC (WspTaskFileView, wsp_taskfile_view_free)

G_END_DECLS
