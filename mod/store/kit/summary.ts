/**
 * The status report's totals, kept as the tables change so that `status`
 * and the status page read a few rows whatever the history (schema 8):
 *
 * - `registry_counts` (registered files by status and deleted) and
 *   `rejection_counts` (stored rejections by reason, without the value) are
 *   kept by triggers on `processed_files` and `rejected_records`, so that
 *   every write counts, in the writer's transaction (a rolled-back run, or
 *   savepoint, takes its counts back with it). SQLite's triggers keep one row
 *   per total (`txn` 0); PostgreSQL's add rows of their own transaction's id,
 *   so that runs side by side never wait on a shared row, and each commit
 *   folds the committed ones into `txn` 0 ({@linkcode foldCounts}). A total is
 *   the sum of its rows.
 * - `table_rows` (rows per data table) is moved by each commit by the rows
 *   its run inserted and removed ({@linkcode addTableRows}); a table without
 *   a row there is counted whole, once, by the next commit (a new table, a
 *   table made anew, the original's tables at a take-over).
 *
 * @module
 */
import { quote } from "./sql.ts";
import { hasTable, type SqlClient, type SqlDialect } from "./client.ts";

/** A rejection's reason without its `, got …` tail (the offending value), as SQL over the text column `column`. */
export function reasonGroupSql(d: SqlDialect, column: string): string {
  const at = d.position(column, "', got '");
  return `CASE WHEN ${at} > 0 THEN substr(${column}, 1, ${at} - 1) ELSE ${column} END`;
}

/** Whether the database keeps the totals (schema 8 on). */
export function keepsTotals(c: SqlClient): Promise<boolean> {
  return hasTable(c, "table_rows");
}

/**
 * Folds the totals' rows of committed transactions and of this one into
 * `txn` 0, and drops totals that reached 0. PostgreSQL only (SQLite's
 * triggers write `txn` 0 themselves); runs in the commit section, whose lock
 * orders the folds.
 */
export async function foldCounts(c: SqlClient): Promise<void> {
  await c.run(
    `WITH moved AS (DELETE FROM registry_counts WHERE txn <> 0 RETURNING status, deleted, files)
     INSERT INTO registry_counts AS c (txn, status, deleted, files)
     SELECT 0, status, deleted, sum(files) FROM moved GROUP BY status, deleted
     ON CONFLICT (txn, status, deleted) DO UPDATE SET files = c.files + excluded.files`,
  );
  await c.run(
    `WITH moved AS (DELETE FROM rejection_counts WHERE txn <> 0 RETURNING reason, records)
     INSERT INTO rejection_counts AS c (txn, reason, records)
     SELECT 0, reason, sum(records) FROM moved GROUP BY reason
     ON CONFLICT (txn, reason) DO UPDATE SET records = c.records + excluded.records`,
  );
  await c.run("DELETE FROM rejection_counts WHERE txn = 0 AND records = 0");
}

/**
 * Moves each data table's row count by `deltas` (table → rows inserted less
 * rows removed that were there before the run); a table without a count yet
 * is counted whole (this run's rows included). In the run's transaction, at
 * its commit.
 */
export async function addTableRows(
  c: SqlClient,
  tables: readonly string[],
  deltas: ReadonlyMap<string, number>,
): Promise<void> {
  for (const table of tables) {
    const changed = await c.run(`UPDATE table_rows SET "rows" = "rows" + $1 WHERE name = $2`, [
      deltas.get(table) ?? 0,
      table,
    ]);
    if (changed > 0 || !(await hasTable(c, table))) continue;
    await c.run(`INSERT INTO table_rows (name, "rows") SELECT CAST($1 AS TEXT), count(*) FROM ${quote(table)}`, [
      table,
    ]);
  }
}

/** Forgets the row counts of `tables` (or of every table): the next commit counts them whole. */
export async function forgetTableRows(c: SqlClient, tables?: readonly string[]): Promise<void> {
  if (!(await keepsTotals(c))) return;
  if (tables === undefined) await c.run("DELETE FROM table_rows");
  else for (const table of tables) await c.run("DELETE FROM table_rows WHERE name = $1", [table]);
}

/**
 * Counts the totals afresh from their tables: a run that loads every file again (`--force`) does, so that a hand
 * edit the triggers never saw (PostgreSQL's `TRUNCATE`, SQLite's `REPLACE INTO`, which deletes without its delete
 * trigger) is repaired. Data tables' row counts are counted now when `tables` are given (at a commit), else forgotten
 * (the commit counts them whole).
 */
export async function recountTotals(c: SqlClient, tables?: readonly string[]): Promise<void> {
  if (!(await keepsTotals(c))) return;
  await c.run("DELETE FROM registry_counts");
  await c.run(
    `INSERT INTO registry_counts (txn, status, deleted, files)
     SELECT 0, status, CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END, count(*) FROM processed_files
     GROUP BY status, CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END`,
  );
  await c.run("DELETE FROM rejection_counts");
  await c.run(
    `INSERT INTO rejection_counts (txn, reason, records)
     SELECT 0, ${reasonGroupSql(c.dialect, "reason")}, count(*) FROM rejected_records GROUP BY 2`,
  );
  await c.run("DELETE FROM table_rows");
  for (const table of tables ?? []) {
    await c.run(`INSERT INTO table_rows (name, "rows") SELECT CAST($1 AS TEXT), count(*) FROM ${quote(table)}`, [
      table,
    ]);
  }
}
