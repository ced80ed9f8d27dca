/* wsp-store-schema.h — the SQLite schema and its version history.
 * Private to src/store/.
 *
 * Version history (bump WSP_SCHEMA_VERSION and add a step to
 * wsp_store_migrate for every change; never edit a shipped step):
 *   1 — ops, sigs, peers, tasks (+ rendered JSON), task_labels, task_deps,
 *       comments, meta.
 *   2 — WSP_SCHEMA_V2: indexes for the list orders by updated and created
 *       (sort=updated|created).
 */
#pragma once

#define WSP_SCHEMA_VERSION 2

/* Peer ids and hlcs are unsigned 64-bit; SQLite stores them as the signed
 * integer with the same bits, and the code casts back. Only equality is
 * used in SQL; orderings that involve them are done in C. */
#define WSP_SCHEMA_V1 \
  "CREATE TABLE meta (key TEXT PRIMARY KEY, value ANY) WITHOUT ROWID;" \
  /* One row per author ever seen: the clock entry (seq), its chain head \
   * h(seq), its public key and its full deps at seq. */ \
  "CREATE TABLE peers (" \
  "  idx INTEGER PRIMARY KEY," \
  "  peer INTEGER NOT NULL UNIQUE," \
  "  pk BLOB," \
  "  seq INTEGER NOT NULL DEFAULT 0," \
  "  head BLOB NOT NULL," \
  "  full_deps BLOB);" \
  /* The append-only operation log, keyed by (author idx, seq). */ \
  "CREATE TABLE ops (" \
  "  peer INTEGER NOT NULL," \
  "  seq INTEGER NOT NULL," \
  "  hlc INTEGER NOT NULL," \
  "  task INTEGER," \
  "  body BLOB NOT NULL," \
  "  hash BLOB NOT NULL," \
  "  PRIMARY KEY (peer, seq)) WITHOUT ROWID;" \
  "CREATE INDEX ops_by_task ON ops (task) WHERE task IS NOT NULL;" \
  /* Signed heads received or made: sig of h(seq) of author idx. */ \
  "CREATE TABLE sigs (" \
  "  peer INTEGER NOT NULL," \
  "  seq INTEGER NOT NULL," \
  "  sig BLOB NOT NULL," \
  "  PRIMARY KEY (peer, seq)) WITHOUT ROWID;" \
  /* Materialized tasks. A row exists for every task id any op named; \
   * live = created and not deleted. json is the rendered task (SPEC 5) \
   * without comments/conflicts; conflicts_json is NULL when none. */ \
  "CREATE TABLE tasks (" \
  "  num INTEGER PRIMARY KEY," \
  "  id TEXT NOT NULL UNIQUE," \
  "  live INTEGER NOT NULL DEFAULT 0," \
  "  deleted INTEGER NOT NULL DEFAULT 0," \
  "  status TEXT," \
  "  priority INTEGER," \
  "  position REAL," \
  "  assignee TEXT," \
  "  created_hlc INTEGER," \
  "  updated_hlc INTEGER," \
  "  json TEXT," \
  "  conflicts_json TEXT," \
  "  state BLOB);" \
  "CREATE INDEX tasks_order ON tasks (priority, position, id) WHERE live = 1;" \
  "CREATE TABLE task_labels (" \
  "  label TEXT NOT NULL," \
  "  num INTEGER NOT NULL," \
  "  PRIMARY KEY (label, num)) WITHOUT ROWID;" \
  "CREATE INDEX task_labels_by_num ON task_labels (num);" \
  "CREATE TABLE task_deps (" \
  "  num INTEGER NOT NULL," \
  "  dep TEXT NOT NULL," \
  "  PRIMARY KEY (num, dep)) WITHOUT ROWID;" \
  "CREATE TABLE comments (" \
  "  num INTEGER NOT NULL," \
  "  peer INTEGER NOT NULL," \
  "  seq INTEGER NOT NULL," \
  "  hlc INTEGER NOT NULL," \
  "  body TEXT NOT NULL," \
  "  PRIMARY KEY (num, peer, seq)) WITHOUT ROWID;" \
  /* Full-text index over live tasks; rowid = tasks.num. */ \
  "CREATE VIRTUAL TABLE tasks_fts USING fts5 (title, body, labels, comments," \
  "  tokenize = 'unicode61 remove_diacritics 2');"

/* Version 2: the list orders newest first by updated_at / created_at
 * (wsp-store-reader.c, ORDER BY x_hlc DESC, id DESC LIMIT n, cursor
 * (x_hlc, id) < (?, ?)). Without them each page sorts every live task: at
 * 100,000 tasks 0.3 s warm, seconds cold; with them ~1 ms. Partial like
 * tasks_order, so tombstones cost nothing. Idempotent. */
#define WSP_SCHEMA_V2 \
  "CREATE INDEX IF NOT EXISTS tasks_by_updated ON tasks (updated_hlc, id) WHERE live = 1;" \
  "CREATE INDEX IF NOT EXISTS tasks_by_created ON tasks (created_hlc, id) WHERE live = 1;"
