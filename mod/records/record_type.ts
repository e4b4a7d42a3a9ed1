/**
 * The contract each record type (song, movie, app, ...) fulfils. A store
 * builds its table from `columns` and `key`; the pipeline calls `toRow`.
 *
 * @module
 */

/** Values a row may hold: text, numbers, and booleans stored as 0/1. */
export type Cell = string | number;

/** A table column: its name and its SQL type with constraints. */
export interface Column {
  readonly name: string;
  /** `TEXT`, `INTEGER` or `REAL`; every column is NOT NULL. */
  readonly sqlType: "TEXT" | "INTEGER" | "REAL";
}

/** What derived columns may depend on besides the record itself. */
export interface RowContext {
  /** `songs.ingestion_time`, already formatted with `DATE_STORE_FORMAT`. */
  readonly ingestionTime: string;
  readonly awesomeMinRating: number;
  readonly awesomeMaxSizeBytes: number;
  /** Reject a row with U+0000 in a text column (PostgreSQL's text cannot hold it). @default {false} */
  readonly rejectNul?: boolean | undefined;
}

/** One record type: its table, its checks and its derived columns. */
export interface RecordType {
  /** The exact `type` value in the bucket, e.g. `song`. */
  readonly type: string;
  /** The table rows go to, e.g. `songs`. */
  readonly table: string;
  /** Every column but `source_key`, which the store appends. */
  readonly columns: readonly Column[];
  /** The natural key: a later record with the same key replaces the earlier. */
  readonly key: readonly string[];
  /**
   * Checks `data` and returns its row (in `columns` order) or, when a field
   * fails, the reason as `field: problem`.
   */
  toRow(data: Record<string, unknown>, context: RowContext): Cell[] | string;
  /**
   * The row that today's rules give a row of the Python original's table
   * (its columns by name), or why they reject it: how a take-over re-derives
   * the columns the original derived by other rules. A type the original did
   * not have leaves it out.
   */
  fromLegacy?(row: Readonly<Record<string, unknown>>, context: RowContext): Cell[] | string;
}
