/**
 * What the store kit needs of a database: statements with numbered
 * parameters (`$1`, `$2`, …), and the few places where SQLite's and
 * PostgreSQL's SQL differ. Each store gives one {@linkcode SqlClient} over
 * its connection; the kit's SQL is written once over it.
 *
 * @module
 */

/** A parameter value. A string array is sent as JSON text (see {@linkcode SqlDialect.textList}). */
export type SqlValue = string | number | boolean | null | readonly string[];

/** A database connection as the kit uses it. SQL uses `$1`, `$2`, … for its parameters. */
export interface SqlClient {
  /** The SQL that differs between the stores. */
  readonly dialect: SqlDialect;
  /** Runs a statement; returns how many rows it changed. */
  run(sql: string, params?: readonly SqlValue[]): Promise<number>;
  /** The rows of a query, as plain objects. */
  all<T>(sql: string, params?: readonly SqlValue[]): Promise<T[]>;
}

/** What differs between the stores' SQL. */
export interface SqlDialect {
  /** Which store's SQL it is. */
  readonly name: "sqlite" | "postgres";
  /** The 1-based position of `needle` in `text`, 0 when absent (`instr` in SQLite, `strpos` in PostgreSQL). */
  position(text: string, needle: string): string;
  /**
   * A FROM item over the string array parameter `$n` (sent as JSON text):
   * rows `(value, ord)`, `ord` counting from 0 in the array's order.
   */
  textList(n: number, alias: string): string;
  /** Like {@linkcode textList} for a JSON array of arrays: `value ->> 0` is an element's first item. */
  jsonList(n: number, alias: string): string;
  /**
   * The statements that make an empty temp table for this transaction
   * (`columns` in SQLite's types, translated for PostgreSQL).
   */
  tempTable(name: string, columns: string): string[];
  /** A query with a row when the table `$1` exists. */
  readonly tableQuery: string;
  /** A query with a row when the table `$1` has the column `$2`. */
  readonly columnQuery: string;
}

/** Whether the database has the table `name`. */
export async function hasTable(c: SqlClient, name: string): Promise<boolean> {
  return (await c.all(c.dialect.tableQuery, [name])).length > 0;
}

/** Whether the table `table` has the column `column`. */
export async function hasColumn(c: SqlClient, table: string, column: string): Promise<boolean> {
  return (await c.all(c.dialect.columnQuery, [table, column])).length > 0;
}

/** Converts a parameter as both stores' drivers take it: arrays as JSON text, booleans as numbers for SQLite. */
export function bindable(value: SqlValue, dialect: SqlDialect["name"]): string | number | boolean | null {
  if (Array.isArray(value)) return JSON.stringify(value);
  if (typeof value === "boolean" && dialect === "sqlite") return value ? 1 : 0;
  return value as string | number | boolean | null;
}

/** A boolean as either store returns it (SQLite: 0 or 1). */
export const truth = (value: unknown): boolean => value === true || value === 1 || value === 1n;
