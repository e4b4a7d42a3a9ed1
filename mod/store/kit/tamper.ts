/**
 * Tables dropped outside bucketload: the bookkeeping tables every schema
 * version creates are checked when a run or replay starts, so that a missing
 * one is one line and exit 2 before anything is fetched, rather than a
 * failure after every file was (a data table is made again by the run; a
 * table that lost a column is refused by the migration step).
 *
 * @module
 */
import { UsageError } from "../../common/errors.ts";
import { MIGRATIONS } from "../migrations.ts";
import { hasTable, type SqlClient } from "./client.ts";

/** The tables the migrations create and do not drop again, in their order. */
export function bookkeepingTables(): string[] {
  const tables: string[] = [];
  for (const m of MIGRATIONS) {
    for (const statement of m.sql.split(";")) {
      const created = statement.match(/\bCREATE TABLE (?:IF NOT EXISTS )?(\w+)/)?.[1];
      const dropped = statement.match(/\bDROP TABLE (?:IF EXISTS )?(\w+)/)?.[1];
      if (created !== undefined && !tables.includes(created)) tables.push(created);
      if (dropped !== undefined && tables.includes(dropped)) tables.splice(tables.indexOf(dropped), 1);
    }
  }
  return tables;
}

/**
 * @throws {UsageError} naming the bookkeeping tables that are gone, with the fix
 */
export async function checkBookkeeping(c: SqlClient, subject: string): Promise<void> {
  const missing: string[] = [];
  for (const table of bookkeepingTables()) if (!(await hasTable(c, table))) missing.push(table);
  if (missing.length === 0) return;
  throw new UsageError(
    `Table${missing.length > 1 ? "s" : ""} ${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} missing ` +
      `(dropped outside bucketload): the run's bookkeeping cannot be kept, so nothing was written; restore the ` +
      `database from a backup`,
    { subject },
  );
}
