/**
 * Taking over the Python original's SQLite database. Its tables hold rows
 * without lineage (no `source_key`), whose derived columns followed the
 * original's rules: titles normalized by other rules (so one movie may sit
 * under two keys, `julie__julia` and `julie_julia`), and `is_awesome` by size
 * alone. Once, in the run's transaction, those rows are re-derived with
 * today's rules ({@linkcode RecordType.fromLegacy}); rows that now share a
 * key are merged, the later written (higher rowid: the original's
 * `INSERT OR REPLACE` re-inserted a row) winning; rows today's rules reject
 * are kept in `rejected_records` with their reason, not dropped silently.
 *
 * The original's `processed.json` is imported only at take-over: when the
 * database holds such rows and its registry is still empty.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { Cell, RecordType, RowContext } from "../../records/mod.ts";
import { hasTable, type SqlClient } from "../kit/client.ts";
import { quote } from "../kit/sql.ts";

/** What a take-over did to one table. */
export interface TakeOverResult {
  /** The data table. */
  readonly table: string;
  /** The original's rows found. */
  readonly rows: number;
  /** Rows whose derived columns changed under today's rules. */
  readonly rederived: number;
  /** Rows merged into another row that now has the same key. */
  readonly merged: number;
  /** Rows today's rules reject, moved to `rejected_records`. */
  readonly rejected: number;
}

/** A row the take-over could not keep: its type, why, and its values as JSON. */
export interface LegacyRejection {
  /** The record type. */
  readonly type: string;
  /** Its table. */
  readonly table: string;
  /** Why today's rules reject it. */
  readonly reason: string;
  /** Its values, as JSON. */
  readonly raw: string;
}

/**
 * Whether a data table holds rows of the original's: a table without a
 * `source_key` column that has rows, or rows whose `source_key` is NULL (a
 * table bucketload created has it `NOT NULL`, and is not read). Works on a
 * read-only connection.
 */
export async function hasLegacyRows(db: DatabaseSync, c: SqlClient, types: readonly RecordType[]): Promise<boolean> {
  for (const type of types) {
    if (!(await hasTable(c, type.table))) continue;
    const column = db.prepare(`SELECT "notnull" AS required FROM pragma_table_info(?) WHERE name = 'source_key'`)
      .get(type.table) as { required: number } | undefined;
    if (column?.required === 1) continue;
    const where = column === undefined ? "" : " WHERE source_key IS NULL";
    if (db.prepare(`SELECT 1 FROM ${quote(type.table)}${where} LIMIT 1`).get() !== undefined) return true;
  }
  return false;
}

/** Whether the registry is empty (or not there yet). */
export async function registryEmpty(c: SqlClient): Promise<boolean> {
  return !(await hasTable(c, "processed_files")) ||
    (await c.all("SELECT 1 AS one FROM processed_files LIMIT 1")).length === 0;
}

/**
 * Re-derives the original's rows of every type that knows how
 * (`fromLegacy`), inside the caller's transaction. The tables must have
 * their lineage columns (after migration); the rows keep `source_key` and
 * `source_pos` NULL, so that any file's row replaces them.
 */
export async function takeOverLegacyRows(
  db: DatabaseSync,
  c: SqlClient,
  types: readonly RecordType[],
  context: RowContext,
  reject: (rejection: LegacyRejection) => void,
): Promise<TakeOverResult[]> {
  const results: TakeOverResult[] = [];
  for (const type of types) {
    if (type.fromLegacy === undefined || !(await hasTable(c, type.table))) continue;
    const names = type.columns.map((c) => c.name);
    const legacy = db.prepare(
      `SELECT rowid AS "rowid", * FROM ${quote(type.table)} WHERE source_key IS NULL ORDER BY rowid`,
    )
      .all() as Record<string, unknown>[];
    if (legacy.length === 0) continue;
    // Later rowid wins a shared key: the rows are read in rowid order.
    const byKey = new Map<string, Cell[]>();
    let rederived = 0, rejected = 0;
    for (const row of legacy) {
      const fresh = type.fromLegacy(row, context);
      if (typeof fresh === "string") {
        rejected++;
        reject({ type: type.type, table: type.table, reason: fresh, raw: JSON.stringify(pick(row, names)) });
        continue;
      }
      if (fresh.some((cell, i) => cell !== row[names[i]!])) rederived++;
      byKey.set(JSON.stringify(type.key.map((k) => fresh[names.indexOf(k)])), fresh);
    }
    db.prepare(`DELETE FROM ${quote(type.table)} WHERE source_key IS NULL`).run();
    const insert = db.prepare(
      `INSERT INTO ${quote(type.table)} (${names.map(quote).join(", ")}) VALUES (${names.map(() => "?").join(", ")})
       ON CONFLICT DO NOTHING`,
    );
    for (const cells of byKey.values()) insert.run(...cells);
    results.push({
      table: type.table,
      rows: legacy.length,
      rederived,
      merged: legacy.length - rejected - byKey.size,
      rejected,
    });
  }
  return results;
}

function pick(row: Record<string, unknown>, names: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(names.map((n) => [n, row[n]]));
}
