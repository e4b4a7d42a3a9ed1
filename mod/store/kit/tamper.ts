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
import { hasTable, type SqlClient } from "./client.ts";

/** The tables `migrations` (the schema's steps) create and do not drop again, in their order. */
export function bookkeepingTables(migrations: readonly { readonly sql: string }[]): string[] {
  const tables: string[] = [];
  for (const m of migrations) {
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
 * Checks that every bookkeeping table is there; `subject` (the store's setting) is what the error names.
 *
 * @throws {UsageError} naming the bookkeeping tables that are gone, with the fix
 */
export async function checkBookkeeping(
  c: SqlClient,
  subject: string,
  migrations: readonly { readonly sql: string }[],
): Promise<void> {
  const missing: string[] = [];
  for (const table of bookkeepingTables(migrations)) if (!(await hasTable(c, table))) missing.push(table);
  if (missing.length === 0) return;
  throw new UsageError(
    `Table${missing.length > 1 ? "s" : ""} ${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} missing ` +
      `(dropped outside bucketload): the run's bookkeeping cannot be kept, so nothing was written; restore the ` +
      `database from a backup`,
    { subject },
  );
}

/** The `meta` name of the data tables bucketload made: JSON, their names sorted. */
export const DATA_TABLES_META = "data_tables";

/** The `meta` value that records `tables`. */
export const dataTablesValue = (tables: readonly string[]): string => JSON.stringify([...tables].sort());

/**
 * The data tables a run made before (recorded in `meta`) that are gone: a
 * table dropped by hand would be made anew, empty, while the files it held
 * rows of stay registered as loaded.
 */
export async function missingDataTables(
  recorded: string | undefined,
  exists: (table: string) => Promise<boolean>,
): Promise<string[]> {
  if (recorded === undefined) return [];
  let tables: unknown;
  try {
    tables = JSON.parse(recorded);
  } catch {
    return [];
  }
  const missing: string[] = [];
  for (const t of Array.isArray(tables) ? tables : []) if (typeof t === "string" && !(await exists(t))) missing.push(t);
  return missing;
}

/** The error for data tables dropped outside bucketload. */
export function droppedDataTables(missing: readonly string[], subject: string): UsageError {
  return new UsageError(
    `Table${missing.length > 1 ? "s" : ""} ${missing.join(", ")} ${missing.length > 1 ? "are" : "is"} missing ` +
      `(dropped outside bucketload), while files registered as loaded had rows there: nothing was written; ` +
      `restore it from a backup, or load every file again with --force (the table is made anew)`,
    { subject },
  );
}

/**
 * The `meta` name of the columns of each data table bucketload made: JSON,
 * table → column names (the type's own columns). A column missing from a
 * table that recorded it was dropped by hand (refused); one never recorded is
 * a field the type gained (added, NULL in the existing rows, then filled from
 * `extra`). A database from before this record refuses a missing column as
 * before; its first run records the columns it has.
 */
export const DATA_COLUMNS_META = "data_columns";

/**
 * The `meta` name of the columns added for a field a type gained, not yet
 * filled from the stored rows' `extra`: JSON, table → column names. Written
 * where the column is added, cleared by the run that fills it (at its commit).
 */
export const FILL_META = "columns_to_fill";

/** The `meta` value that records the columns of `types`' tables. */
export function dataColumnsValue(types: readonly { table: string; columns: readonly { name: string }[] }[]): string {
  const entries = types.map((t) => [t.table, t.columns.map((c) => c.name)] as const);
  return JSON.stringify(Object.fromEntries(entries.sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)));
}

/** A JSON `meta` value of table → names, or `{}` when there is none or it does not parse. */
export function tableNames(recorded: string | undefined): Record<string, string[]> {
  if (recorded === undefined) return {};
  try {
    const value = JSON.parse(recorded);
    if (typeof value !== "object" || value === null || Array.isArray(value)) return {};
    const out: Record<string, string[]> = {};
    for (const [table, names] of Object.entries(value)) {
      if (Array.isArray(names)) out[table] = names.filter((n): n is string => typeof n === "string");
    }
    return out;
  } catch {
    return {};
  }
}

/**
 * The columns a table with lineage lacks, split: `lost` (recorded, or no
 * record of the table's columns: dropped by hand) and `added` (never
 * recorded: a field its type gained).
 */
export function splitMissing(
  recorded: string | undefined,
  table: string,
  missing: readonly string[],
): { lost: string[]; added: string[] } {
  const had = tableNames(recorded)[table];
  if (had === undefined) return { lost: [...missing], added: [] };
  return { lost: missing.filter((c) => had.includes(c)), added: missing.filter((c) => !had.includes(c)) };
}

/** The {@linkcode FILL_META} value with `added` (table → columns) joined to what `pending` holds. */
export function withFills(pending: string | undefined, added: Readonly<Record<string, readonly string[]>>): string {
  const out = tableNames(pending);
  for (const [table, columns] of Object.entries(added)) {
    out[table] = [...new Set([...(out[table] ?? []), ...columns])];
  }
  return JSON.stringify(out);
}
