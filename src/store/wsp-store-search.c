/* wsp-store-search.c — full-text search and dependency cycles, reader side.
 *
 * Owns: the translation of a user's query into an FTS5 MATCH expression,
 * ranked search over tasks_fts (title, body, labels, comments; rowid =
 * tasks.num, rows only for live tasks, rewritten by the writer in the same
 * transaction as the task), and the breadth-first cycle check over
 * task_deps.
 *
 * Threads: everything runs on the thread that owns the WspStoreReader (or,
 * for wsp_store_search_would_cycle, the connection passed in). The
 * translator is pure and runs anywhere.
 *
 * Translation. FTS5's own query syntax has column filters, NEAR, ^ and
 * + and fails on stray punctuation, so user text is never handed to it. A
 * small lexer and recursive-descent parser (bounded: WSP_SEARCH_QUERY_MAX
 * bytes, MAX_TERMS terms, MAX_DEPTH nested groups) accepts the language
 * documented in wsp-store.h and re-emits it fully parenthesised, every term
 * as an FTS5 string ("…", with " doubled), so the tokenizer alone decides
 * what a word is and nothing the user types is syntax to FTS5.
 *
 * Ranking: see the note at "search" below.
 */
#define G_LOG_DOMAIN "wsp-store"

#include "store/wsp-store.h"
#include "store/wsp-store-private.h"
#include "store/wsp-store-search-private.h"

#include <string.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, sqlite3_finalize)

#define MAX_TERMS 64      /* words and phrases in one query */
#define MAX_DEPTH 16      /* nested parentheses */
#define MAX_TOKENS (4 * MAX_TERMS)

/* ==== translation ======================================================= */

typedef enum {
  TK_END,
  TK_WORD,      /* start/len: the word without trailing '*' */
  TK_PHRASE,    /* start/len: the text between the quotes */
  TK_LPAREN,
  TK_RPAREN,
  TK_AND,
  TK_OR,
  TK_NOT,
} TokKind;

typedef struct {
  TokKind     kind;
  const char *start;
  gsize       len;
  gboolean    prefix;   /* a '*' followed the word or the closing quote */
  glong       pos;      /* 1-based character offset, for messages */
} Tok;

typedef struct {
  const char *text;
  GArray     *toks;     /* Tok, ending with TK_END */
  guint       at;       /* current token */
  guint       n_terms;
  guint       depth;
  GError    **error;
} Parser;

static glong
char_pos (const char *text, const char *p)
{
  return g_utf8_pointer_to_offset (text, p) + 1;
}

static gboolean
fail (Parser *P, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static gboolean
fail (Parser *P, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (P->error, WSP_ERROR, WSP_ERROR_INVALID, "q: %s", msg);
  return FALSE;
}

static gboolean
is_space (gunichar c)
{
  return g_unichar_isspace (c) || c < 0x20 || c == 0x7f;
}

static gboolean
lex (Parser *P)
{
  const char *p = P->text;
  while (*p)
    {
      gunichar c = g_utf8_get_char (p);
      if (is_space (c))
        {
          p = g_utf8_next_char (p);
          continue;
        }
      if (P->toks->len >= MAX_TOKENS)
        return fail (P, "too many words and operators (at most %d terms)", MAX_TERMS);
      Tok t = { TK_END, p, 0, FALSE, char_pos (P->text, p) };
      if (c == '(' || c == ')')
        {
          t.kind = c == '(' ? TK_LPAREN : TK_RPAREN;
          t.len = 1;
          p++;
        }
      else if (c == '"')
        {
          const char *close = strchr (p + 1, '"');
          if (!close)
            return fail (P, "unbalanced quote: the phrase opened at character %ld is not closed", t.pos);
          t.kind = TK_PHRASE;
          t.start = p + 1;
          t.len = (gsize) (close - (p + 1));
          p = close + 1;
          while (*p == '*')
            {
              t.prefix = TRUE;
              p++;
            }
        }
      else
        {
          const char *end = p;
          while (*end)
            {
              gunichar e = g_utf8_get_char (end);
              if (is_space (e) || e == '(' || e == ')' || e == '"')
                break;
              end = g_utf8_next_char (end);
            }
          gsize len = (gsize) (end - p);
          if (len == 3 && memcmp (p, "AND", 3) == 0)
            t.kind = TK_AND;
          else if (len == 2 && memcmp (p, "OR", 2) == 0)
            t.kind = TK_OR;
          else if (len == 3 && memcmp (p, "NOT", 3) == 0)
            t.kind = TK_NOT;
          else
            {
              t.kind = TK_WORD;
              while (len > 0 && p[len - 1] == '*')
                {
                  t.prefix = TRUE;
                  len--;
                }
              t.len = len;
            }
          p = end;
        }
      g_array_append_val (P->toks, t);
    }
  Tok end = { TK_END, p, 0, FALSE, char_pos (P->text, p) };
  g_array_append_val (P->toks, end);
  return TRUE;
}

static const Tok *
peek (Parser *P)
{
  return &g_array_index (P->toks, Tok, P->at);
}

static const Tok *
next (Parser *P)
{
  if (peek (P)->kind != TK_END)
    P->at++;
  return peek (P);
}

/* unicode61's default token characters: letters, numbers, private use. A
 * word without any is punctuation that the index never holds. */
static gboolean
has_token_char (const char *s, gsize len)
{
  for (const char *p = s; p < s + len; p = g_utf8_next_char (p))
    {
      switch (g_unichar_type (g_utf8_get_char (p)))
        {
        case G_UNICODE_LOWERCASE_LETTER:
        case G_UNICODE_MODIFIER_LETTER:
        case G_UNICODE_OTHER_LETTER:
        case G_UNICODE_TITLECASE_LETTER:
        case G_UNICODE_UPPERCASE_LETTER:
        case G_UNICODE_DECIMAL_NUMBER:
        case G_UNICODE_LETTER_NUMBER:
        case G_UNICODE_OTHER_NUMBER:
        case G_UNICODE_PRIVATE_USE:
          return TRUE;
        default:
          break;
        }
    }
  return FALSE;
}

static gboolean
is_term_start (TokKind k)
{
  return k == TK_WORD || k == TK_PHRASE || k == TK_LPAREN;
}

static char *parse_or (Parser *P, guint *n_alts);

/* A term or a group. Returns the expression, "" for a term the index
 * cannot hold (punctuation), NULL on error. */
static char *
parse_primary (Parser *P)
{
  const Tok *t = peek (P);
  if (t->kind == TK_LPAREN)
    {
      glong open = t->pos;
      if (++P->depth > MAX_DEPTH)
        return fail (P, "too deeply nested: at most %d levels of parentheses", MAX_DEPTH), NULL;
      next (P);
      guint n = 0;
      g_autofree char *inner = parse_or (P, &n);
      if (!inner)
        return NULL;
      if (peek (P)->kind != TK_RPAREN)
        return fail (P, "unbalanced parenthesis: the '(' at character %ld is not closed", open), NULL;
      if (n == 0)
        return fail (P, "empty parentheses at character %ld", open), NULL;
      next (P);
      P->depth--;
      return g_steal_pointer (&inner);
    }
  g_assert (t->kind == TK_WORD || t->kind == TK_PHRASE);
  if (++P->n_terms > MAX_TERMS)
    return fail (P, "too many terms (at most %d)", MAX_TERMS), NULL;
  GString *s = g_string_new (NULL);
  if (has_token_char (t->start, t->len))
    {
      g_string_append_c (s, '"');
      for (gsize i = 0; i < t->len; i++)
        {
          if (t->start[i] == '"')
            g_string_append_c (s, '"');
          g_string_append_c (s, t->start[i]);
        }
      g_string_append_c (s, '"');
      if (t->prefix)
        g_string_append_c (s, '*');
    }
  next (P);
  return g_string_free (s, FALSE);
}

static void
join (GString *out, GPtrArray *parts, const char *op)
{
  if (parts->len > 1)
    g_string_append_c (out, '(');
  for (guint i = 0; i < parts->len; i++)
    {
      if (i)
        g_string_append (out, op);
      g_string_append (out, g_ptr_array_index (parts, i));
    }
  if (parts->len > 1)
    g_string_append_c (out, ')');
}

/* Terms joined by AND (written or implied), some negated by NOT. */
static char *
parse_and (Parser *P, guint *n_items)
{
  g_autoptr (GPtrArray) pos = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) neg = g_ptr_array_new_with_free_func (g_free);
  glong first_not = 0;
  *n_items = 0;
  for (;;)
    {
      const Tok *t = peek (P);
      if (t->kind == TK_END || t->kind == TK_RPAREN || t->kind == TK_OR)
        break;
      if (t->kind == TK_AND)
        {
          glong at = t->pos;
          if (*n_items == 0)
            return fail (P, "AND at character %ld needs a term before it", at), NULL;
          if (!is_term_start (next (P)->kind) && peek (P)->kind != TK_NOT)
            return fail (P, "AND at character %ld needs a term after it", at), NULL;
          continue;
        }
      gboolean negated = FALSE;
      if (t->kind == TK_NOT)
        {
          glong at = t->pos;
          if (!is_term_start (next (P)->kind))
            return fail (P, "NOT at character %ld needs a term after it", at), NULL;
          if (!first_not)
            first_not = at;
          negated = TRUE;
        }
      char *item = parse_primary (P);
      if (!item)
        return NULL;
      (*n_items)++;
      if (!*item)
        g_free (item);   /* punctuation only: no constraint */
      else
        g_ptr_array_add (negated ? neg : pos, item);
    }
  if (pos->len == 0 && neg->len > 0)
    return fail (P, "NOT at character %ld has nothing to exclude from: put a term before it, "
                    "as in 'cat NOT dog'", first_not), NULL;
  GString *out = g_string_new (NULL);
  if (neg->len)
    g_string_append_c (out, '(');
  join (out, pos, " AND ");
  if (neg->len)
    {
      g_string_append (out, " NOT ");
      join (out, neg, " OR ");
      g_string_append_c (out, ')');
    }
  return g_string_free (out, FALSE);
}

static char *
parse_or (Parser *P, guint *n_alts)
{
  g_autoptr (GPtrArray) alts = g_ptr_array_new_with_free_func (g_free);
  *n_alts = 0;
  for (;;)
    {
      const Tok *t = peek (P);
      if (t->kind == TK_OR)
        return fail (P, "OR at character %ld needs a term before it", t->pos), NULL;
      guint n = 0;
      char *e = parse_and (P, &n);
      if (!e)
        return NULL;
      if (n == 0)
        {
          g_free (e);
          break;
        }
      (*n_alts)++;
      if (*e)
        g_ptr_array_add (alts, e);
      else
        g_free (e);
      t = peek (P);
      if (t->kind != TK_OR)
        break;
      glong at = t->pos;
      if (!is_term_start (next (P)->kind) && peek (P)->kind != TK_NOT)
        return fail (P, "OR at character %ld needs a term after it", at), NULL;
    }
  GString *out = g_string_new (NULL);
  join (out, alts, " OR ");
  return g_string_free (out, FALSE);
}

char *
wsp_search_translate (const char *q, GError **error)
{
  g_autoptr (GArray) toks = g_array_new (FALSE, FALSE, sizeof (Tok));
  Parser P = { q, toks, 0, 0, 0, error };
  if (!q)
    return fail (&P, "missing"), NULL;
  if (strlen (q) > WSP_SEARCH_QUERY_MAX)
    return fail (&P, "too long (at most %d bytes)", WSP_SEARCH_QUERY_MAX), NULL;
  if (!g_utf8_validate (q, -1, NULL))
    return fail (&P, "not valid UTF-8"), NULL;
  if (!lex (&P))
    return NULL;
  guint n = 0;
  g_autofree char *expr = parse_or (&P, &n);
  if (!expr)
    return NULL;
  if (peek (&P)->kind == TK_RPAREN)
    return fail (&P, "unbalanced parenthesis: the ')' at character %ld has no matching '('",
                 peek (&P)->pos), NULL;
  g_assert (peek (&P)->kind == TK_END);
  if (n == 0 || !*expr)
    return fail (&P, "nothing to search for: the query has no words"), NULL;
  return g_steal_pointer (&expr);
}

/* ==== search ============================================================ */

/* Ranking. The score is bm25 (k1 = 1.2, b = 0.75, idf = ln((N - n + 0.5) /
 * (n + 0.5)), at least 1e-6, as FTS5's bm25()) over the weighted count of
 * each phrase's occurrences: title 10, body 3, labels 10, comments 1.
 *
 * FTS5's own `ORDER BY rank` computes bm25 for every match, and bm25 needs
 * the row's length (a docsize lookup) and every occurrence: about 1.3 µs a
 * row, 140 ms for a word in each of 100,000 tasks. So the search makes one
 * pass over the matches in rowid order with an auxiliary function
 * (search_pass_fn) that scores each row by a cheap bound first: bm25 at
 * average length over at most BOUND_CAP occurrences per phrase (no docsize
 * lookup, a few poslist steps). Only a row whose bound beats the weakest of
 * the best CANDIDATES rows seen so far gets its exact score (all
 * occurrences, its real length) and a place among the candidates; ties in
 * the bound keep the older task, so a flood of equal bounds costs nothing.
 * The answer is the candidates sorted by exact score. With at most
 * CANDIDATES matches every match is a candidate and the order is exact
 * bm25; beyond that the order is exact among the rows the bound ranks
 * best, which for a term in most tasks (where bm25's idf is ~0 anyway)
 * means: title and label hits first, then denser bodies.
 *
 * A one-phrase query (a single word, phrase or prefix: the common case)
 * runs the whole pass inside the first call of the function, through
 * xQueryPhrase, which skips the per-row trip through the SQL engine; a
 * query of several phrases learns each phrase's n from xQueryPhrase first.
 * Title and snippet (FTS5's snippet(), which needs the match) come from one
 * walk over the hits' rowid range when the query matched few rows, else
 * from one seek per hit (SQL_HIT).
 *
 * Measured (bench/search-bench.c, 100,000 tasks of ~300 words): a word in
 * every task 12 ms at p50 (FTS5 `ORDER BY rank`: 140 ms), a rare word
 * 0.8 ms, two mid-frequency words 1.3 ms. */

#define BM25_K1     1.2
#define BM25_B      0.75
#define BOUND_CAP   8       /* occurrences per phrase the bound looks at */
#define CANDIDATES  200     /* rows ranked exactly (at least 10 × limit) */

static const double column_weight[] = { 10.0, 3.0, 10.0, 1.0 };   /* tasks_fts column order */

typedef struct {
  gint64 rowid;
  double bound;
  double exact;
} Cand;

/* The state of one search, passed to the auxiliary function as a pointer
 * parameter (sqlite3_bind_pointer, type "wsp_search_pass"). */
typedef struct {
  guint    capacity;      /* candidates kept */
  gboolean started;
  gboolean done;          /* the one-phrase pass ran: stop stepping */
  int      n_phrases;
  double  *idf;           /* per phrase; 1 for a one-phrase query until the end */
  double   avgdl;         /* average row length in tokens */
  gint64   n_rows;        /* rows in the index (N) */
  gint64   n_matched;     /* rows the query matched */
  GArray  *heap;          /* Cand, min-heap on (bound, newer first) */
} Pass;

#define PASS_POINTER_TYPE "wsp_search_pass"

/* Heap order: a is weaker than b. Among equal bounds the newer row (larger
 * rowid) is weaker, so rows arriving in rowid order never displace an equal. */
static gboolean
cand_weaker (const Cand *a, const Cand *b)
{
  if (a->bound != b->bound)
    return a->bound < b->bound;
  return a->rowid > b->rowid;
}

static void
heap_sift_down (GArray *h, guint i)
{
  Cand *c = (Cand *) h->data;
  for (;;)
    {
      guint l = 2 * i + 1, r = l + 1, m = i;
      if (l < h->len && cand_weaker (&c[l], &c[m]))
        m = l;
      if (r < h->len && cand_weaker (&c[r], &c[m]))
        m = r;
      if (m == i)
        return;
      Cand t = c[i];
      c[i] = c[m];
      c[m] = t;
      i = m;
    }
}

static void
heap_push (GArray *h, const Cand *x)
{
  g_array_append_val (h, *x);
  Cand *c = (Cand *) h->data;
  for (guint i = h->len - 1; i > 0;)
    {
      guint parent = (i - 1) / 2;
      if (!cand_weaker (&c[i], &c[parent]))
        break;
      Cand t = c[i];
      c[i] = c[parent];
      c[parent] = t;
      i = parent;
    }
}

static double
saturate (double w, double length_factor)
{
  return w * (BM25_K1 + 1.0) / (w + BM25_K1 * length_factor);
}

/* Weighted occurrences of phrase i in the current row; at most `cap`
 * occurrences are looked at (0 = all). */
static int
phrase_weight (const Fts5ExtensionApi *api, Fts5Context *fts, int i, guint cap, double *out)
{
  Fts5PhraseIter it;
  int col = -1, off = 0;
  guint n = 0;
  double w = 0;
  int rc = api->xPhraseFirst (fts, i, &it, &col, &off);
  for (; rc == SQLITE_OK && col >= 0; api->xPhraseNext (fts, &it, &col, &off))
    {
      if (col < (int) G_N_ELEMENTS (column_weight))
        w += column_weight[col];
      if (cap && ++n >= cap)
        break;
    }
  *out = w;
  return rc;
}

/* Scores the current row of `fts` (phrases numbered as in the pass). */
static int
pass_row (Pass *p, const Fts5ExtensionApi *api, Fts5Context *fts)
{
  p->n_matched++;
  double bound = 0, w;
  int rc = SQLITE_OK;
  for (int i = 0; i < p->n_phrases && rc == SQLITE_OK; i++)
    {
      rc = phrase_weight (api, fts, i, BOUND_CAP, &w);
      bound += p->idf[i] * saturate (w, 1.0);
    }
  if (rc != SQLITE_OK)
    return rc;
  Cand c = { api->xRowid (fts), bound, 0 };
  gboolean full = p->heap->len >= p->capacity;
  if (full && !cand_weaker (&g_array_index (p->heap, Cand, 0), &c))
    return SQLITE_OK;

  int dl = 0;
  if ((rc = api->xColumnSize (fts, -1, &dl)) != SQLITE_OK)
    return rc;
  double length_factor = 1.0 - BM25_B + BM25_B * (double) dl / p->avgdl;
  for (int i = 0; i < p->n_phrases && rc == SQLITE_OK; i++)
    {
      rc = phrase_weight (api, fts, i, 0, &w);
      c.exact += p->idf[i] * saturate (w, length_factor);
    }
  if (full)
    {
      g_array_index (p->heap, Cand, 0) = c;
      heap_sift_down (p->heap, 0);
    }
  else
    heap_push (p->heap, &c);
  return rc;
}

/* Natural logarithm of x >= 1 (the library links no libm): x = m·2^e with
 * m in [1, 2), ln m = 2 atanh z with z = (m - 1)/(m + 1) <= 1/3. */
static double
ln (double x)
{
  int e = 0;
  while (x >= 2.0)
    x /= 2.0, e++;
  double z = (x - 1.0) / (x + 1.0), z2 = z * z, term = z, sum = 0;
  for (int k = 1; k < 60 && term > 1e-18; k += 2)
    {
      sum += term / k;
      term *= z2;
    }
  return 2.0 * sum + e * G_LN2;
}

static double
idf_of (gint64 n_rows, gint64 n_hit)
{
  double ratio = ((double) n_rows - (double) n_hit + 0.5) / ((double) n_hit + 0.5);
  return ratio > 1.0 ? ln (ratio) : 1e-6;   /* as FTS5: a term in most rows weighs ~0 */
}

static int
count_cb (const Fts5ExtensionApi *api, Fts5Context *fts, void *data)
{
  (*(gint64 *) data)++;
  return SQLITE_OK;
}

static int
single_phrase_cb (const Fts5ExtensionApi *api, Fts5Context *fts, void *data)
{
  return pass_row (data, api, fts);
}

static int
pass_start (Pass *p, const Fts5ExtensionApi *api, Fts5Context *fts)
{
  sqlite3_int64 n_rows = 0, n_tokens = 0;
  int rc = api->xRowCount (fts, &n_rows);
  if (rc == SQLITE_OK)
    rc = api->xColumnTotalSize (fts, -1, &n_tokens);
  if (rc != SQLITE_OK)
    return rc;
  p->n_rows = n_rows;
  p->avgdl = n_rows > 0 && n_tokens > 0 ? (double) n_tokens / (double) n_rows : 1.0;
  p->n_phrases = api->xPhraseCount (fts);
  p->idf = g_new (double, MAX (p->n_phrases, 1));
  if (p->n_phrases == 1)
    {
      /* n = the rows this pass sees; idf is applied at the end. */
      p->idf[0] = 1.0;
      p->done = TRUE;
      return api->xQueryPhrase (fts, 0, p, single_phrase_cb);
    }
  for (int i = 0; i < p->n_phrases && rc == SQLITE_OK; i++)
    {
      gint64 n_hit = 0;
      rc = api->xQueryPhrase (fts, i, &n_hit, count_cb);
      p->idf[i] = idf_of (n_rows, n_hit);
    }
  return rc;
}

/* wsp_search_pass(tasks_fts, pass): see the ranking note above. Returns 1
 * when the pass is complete and the caller should stop stepping. */
static void
search_pass_fn (const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx, int argc,
                sqlite3_value **argv)
{
  Pass *p = argc == 1 ? sqlite3_value_pointer (argv[0], PASS_POINTER_TYPE) : NULL;
  if (!p)
    {
      sqlite3_result_error (ctx, "wsp_search_pass: internal function", -1);
      return;
    }
  int rc = SQLITE_OK;
  if (!p->started)
    {
      p->started = TRUE;
      rc = pass_start (p, api, fts);
    }
  if (rc == SQLITE_OK && !p->done)
    rc = pass_row (p, api, fts);
  if (rc != SQLITE_OK)
    {
      sqlite3_result_error_code (ctx, rc);
      return;
    }
  sqlite3_result_int (ctx, p->done);
}

struct _WspSearchCache {
  gboolean      registered;   /* wsp_search_pass is known to the connection */
  sqlite3_stmt *st_pass;
  sqlite3_stmt *st_hit;
  sqlite3_stmt *st_deps_of;
};

void
wsp_search_cache_free (WspSearchCache *c)
{
  if (!c)
    return;
  sqlite3_finalize (c->st_pass);
  sqlite3_finalize (c->st_hit);
  sqlite3_finalize (c->st_deps_of);
  g_free (c);
}

static WspSearchCache *
cache_get (WspStoreReader *r)
{
  WspSearchCache **slot = wsp_store_reader_get_search_cache (r);
  if (!*slot)
    *slot = g_new0 (WspSearchCache, 1);
  return *slot;
}

static sqlite3_stmt *
cached (WspStoreReader *r, sqlite3_stmt **slot, const char *sql, GError **error)
{
  if (!*slot)
    *slot = wsp_sql_prepare (wsp_store_reader_get_db (r), sql, error);
  return *slot;
}

/* Registers wsp_search_pass on the reader's connection (once). */
static gboolean
register_pass_function (WspStoreReader *r, WspSearchCache *c, GError **error)
{
  if (c->registered)
    return TRUE;
  sqlite3 *db = wsp_store_reader_get_db (r);
  fts5_api *fts = NULL;
  g_autoptr (sqlite3_stmt) st = wsp_sql_prepare (db, "SELECT fts5(?1)", error);
  if (!st)
    return FALSE;
  sqlite3_bind_pointer (st, 1, (void *) &fts, "fts5_api_ptr", NULL);
  sqlite3_step (st);
  if (!fts || fts->iVersion < 2
      || fts->xCreateFunction (fts, "wsp_search_pass", NULL, search_pass_fn, NULL) != SQLITE_OK)
    {
      g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "search: this SQLite has no usable FTS5");
      return FALSE;
    }
  c->registered = TRUE;
  return TRUE;
}

#define SQL_PASS \
  "SELECT wsp_search_pass(tasks_fts, ?2) FROM tasks_fts WHERE tasks_fts MATCH ?1 ORDER BY rowid"
/* Title and snippet of the hits among rowids ?2..?3 (a JSON array in ?4).
 * The unary + keeps the IN list from becoming one FTS5 lookup per rowid:
 * FTS5 walks the range once and snippet() runs only for the hits. */
#define SQL_HIT \
  "SELECT tasks_fts.rowid, t.id, tasks_fts.title, snippet(tasks_fts, -1, char(2), char(3), '…', 16)" \
  " FROM tasks_fts JOIN tasks t ON t.num = tasks_fts.rowid" \
  " WHERE tasks_fts MATCH ?1 AND tasks_fts.rowid BETWEEN ?2 AND ?3" \
  " AND +tasks_fts.rowid IN (SELECT value FROM json_each(?4)) AND t.live = 1"

/* Up to this many matches, the hits are read in one walk over the range of
 * their rowids; beyond, one seek per hit is cheaper. */
#define HIT_RANGE_MAX 4000

/* The snippet as an HTML fragment: text escaped, the \2…\3 marks FTS5 put
 * around matches turned into <b>…</b>, always balanced (a stray \2 or \3
 * in the task text is dropped). */
static void
append_snippet (GString *out, const char *s)
{
  g_autoptr (GString) h = g_string_new (NULL);
  gboolean open = FALSE;
  for (const char *p = s ? s : ""; *p; p++)
    {
      switch (*p)
        {
        case '\2':
          if (!open)
            g_string_append (h, "<b>");
          open = TRUE;
          break;
        case '\3':
          if (open)
            g_string_append (h, "</b>");
          open = FALSE;
          break;
        case '&': g_string_append (h, "&amp;"); break;
        case '<': g_string_append (h, "&lt;"); break;
        case '>': g_string_append (h, "&gt;"); break;
        case '"': g_string_append (h, "&quot;"); break;
        case '\'': g_string_append (h, "&#39;"); break;
        default: g_string_append_c (h, *p); break;
        }
    }
  if (open)
    g_string_append (h, "</b>");
  wsp_json_append_string (out, h->str, (gssize) h->len);
}

static int
cand_better_exact (gconstpointer a, gconstpointer b)
{
  const Cand *x = a, *y = b;
  if (x->exact != y->exact)
    return x->exact > y->exact ? -1 : 1;
  return x->rowid < y->rowid ? -1 : x->rowid > y->rowid;
}

static gboolean
search_failed (WspStoreReader *r, const char *what, GError **error)
{
  g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "search: %s: %s", what,
               sqlite3_errmsg (wsp_store_reader_get_db (r)));
  return FALSE;
}

gboolean
wsp_store_reader_search_json (WspStoreReader *r, const char *q, guint limit, GString *out, GError **error)
{
  g_autofree char *expr = wsp_search_translate (q, error);
  if (!expr)
    return FALSE;
  if (limit == 0)
    limit = WSP_SEARCH_LIMIT_DEFAULT;
  limit = MIN (limit, WSP_SEARCH_LIMIT_MAX);

  WspSearchCache *c = cache_get (r);
  if (!register_pass_function (r, c, error))
    return FALSE;
  sqlite3_stmt *st = cached (r, &c->st_pass, SQL_PASS, error);
  sqlite3_stmt *hit = st ? cached (r, &c->st_hit, SQL_HIT, error) : NULL;
  if (!hit)
    return FALSE;

  /* Phase 1 and 2: the pass. */
  g_autoptr (GArray) heap = g_array_new (FALSE, FALSE, sizeof (Cand));
  Pass pass = { MAX (CANDIDATES, 10 * limit), FALSE, FALSE, 0, NULL, 1.0, 0, 0, heap };
  sqlite3_bind_text (st, 1, expr, -1, SQLITE_STATIC);
  sqlite3_bind_pointer (st, 2, &pass, PASS_POINTER_TYPE, NULL);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW && !sqlite3_column_int (st, 0))
    ;
  gboolean ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
  if (!ok)
    search_failed (r, "ranking", error);
  sqlite3_reset (st);
  sqlite3_clear_bindings (st);
  g_free (pass.idf);
  if (!ok)
    return FALSE;
  if (pass.n_phrases == 1)
    {
      double idf = idf_of (pass.n_rows, pass.n_matched);
      for (guint i = 0; i < heap->len; i++)
        g_array_index (heap, Cand, i).exact *= idf;
    }
  g_array_sort (heap, cand_better_exact);

  /* The hits: id, title and snippet of the best `limit` rows. */
  guint n_hits = MIN (limit, heap->len);
  g_autoptr (GHashTable) rows = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, g_free);
  gboolean one_walk = pass.n_matched <= HIT_RANGE_MAX;
  for (guint i = 0; i < n_hits; i++)
    {
      if (one_walk && i > 0)
        break;
      gint64 lo = G_MAXINT64, hi = G_MININT64;
      g_autoptr (GString) set = g_string_new ("[");
      for (guint j = i; j < (one_walk ? n_hits : i + 1); j++)
        {
          gint64 rowid = g_array_index (heap, Cand, j).rowid;
          lo = MIN (lo, rowid);
          hi = MAX (hi, rowid);
          g_string_append_printf (set, "%s%" G_GINT64_FORMAT, j > i ? "," : "", rowid);
        }
      g_string_append_c (set, ']');
      sqlite3_bind_text (hit, 1, expr, -1, SQLITE_STATIC);
      sqlite3_bind_int64 (hit, 2, lo);
      sqlite3_bind_int64 (hit, 3, hi);
      sqlite3_bind_text (hit, 4, set->str, (int) set->len, SQLITE_STATIC);
      while ((rc = sqlite3_step (hit)) == SQLITE_ROW)
        {
          /* Rendered now: id, title and snippet as JSON members. */
          GString *m = g_string_new ("{\"id\":");
          wsp_json_append_string (m, (const char *) sqlite3_column_text (hit, 1), -1);
          g_string_append (m, ",\"title\":");
          wsp_json_append_string (m, (const char *) sqlite3_column_text (hit, 2), -1);
          g_string_append (m, ",\"snippet\":");
          append_snippet (m, (const char *) sqlite3_column_text (hit, 3));
          gint64 *key = g_new (gint64, 1);
          *key = sqlite3_column_int64 (hit, 0);
          g_hash_table_insert (rows, key, g_string_free (m, FALSE));
        }
      sqlite3_reset (hit);
      sqlite3_clear_bindings (hit);
      if (rc != SQLITE_DONE)
        return search_failed (r, "reading the hits", error);
    }

  g_string_append (out, "{\"hits\":[");
  guint n = 0;
  for (guint i = 0; i < n_hits; i++)
    {
      const Cand *cand = &g_array_index (heap, Cand, i);
      const char *m = g_hash_table_lookup (rows, &cand->rowid);
      if (!m)
        continue;   /* not live: cannot happen while tasks_fts holds live tasks only */
      g_string_append_printf (out, "%s%s,\"score\":", n++ ? "," : "", m);
      wsp_json_append_double (out, cand->exact);
      g_string_append_c (out, '}');
    }
  g_string_append (out, "]}");
  return TRUE;
}

/* ==== dependency cycles ================================================= */

gboolean
wsp_store_search_would_cycle (sqlite3 *db, sqlite3_stmt *deps_of, WspDepsOverlay overlay,
                              gpointer overlay_data, const char *task, const char *dep,
                              gboolean *out_cycle, GError **error)
{
  *out_cycle = FALSE;
  if (!task || !dep)
    return TRUE;
  if (strcmp (task, dep) == 0)
    {
      *out_cycle = TRUE;
      return TRUE;
    }
  g_autoptr (sqlite3_stmt) own = NULL;
  if (!deps_of)
    {
      own = wsp_sql_prepare (db, WSP_SEARCH_SQL_DEPS_OF, error);
      if (!own)
        return FALSE;
      deps_of = own;
    }
  /* Breadth-first from dep; seen owns the ids, queue borrows them. */
  g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr (GQueue) queue = g_queue_new ();
  g_autoptr (GPtrArray) deps = g_ptr_array_new_with_free_func (g_free);
  char *first = g_strdup (dep);
  g_hash_table_add (seen, first);
  g_queue_push_tail (queue, first);
  while (!g_queue_is_empty (queue))
    {
      const char *cur = g_queue_pop_head (queue);
      g_ptr_array_set_size (deps, 0);
      if (!overlay || !overlay (cur, deps, overlay_data))
        {
          sqlite3_bind_text (deps_of, 1, cur, -1, SQLITE_STATIC);
          int rc;
          while ((rc = sqlite3_step (deps_of)) == SQLITE_ROW)
            g_ptr_array_add (deps, g_strdup ((const char *) sqlite3_column_text (deps_of, 0)));
          sqlite3_reset (deps_of);
          sqlite3_clear_bindings (deps_of);
          if (rc != SQLITE_DONE)
            {
              g_set_error (error, WSP_ERROR, WSP_ERROR_FAILED, "dependency cycle check: %s",
                           sqlite3_errmsg (db));
              return FALSE;
            }
        }
      for (guint i = 0; i < deps->len; i++)
        {
          const char *d = g_ptr_array_index (deps, i);
          if (strcmp (d, task) == 0)
            {
              *out_cycle = TRUE;
              return TRUE;
            }
          if (g_hash_table_contains (seen, d))
            continue;
          char *copy = g_strdup (d);
          g_hash_table_add (seen, copy);
          g_queue_push_tail (queue, copy);
        }
    }
  return TRUE;
}

gboolean
wsp_store_reader_would_cycle (WspStoreReader *r, const char *task, const char *dep)
{
  g_autoptr (GError) error = NULL;
  WspSearchCache *c = cache_get (r);
  sqlite3_stmt *st = cached (r, &c->st_deps_of, WSP_SEARCH_SQL_DEPS_OF, &error);
  gboolean cycle = FALSE;
  if (!st || !wsp_store_search_would_cycle (wsp_store_reader_get_db (r), st, NULL, NULL, task, dep,
                                            &cycle, &error))
    {
      g_warning ("%s", error->message);
      return FALSE;
    }
  return cycle;
}
