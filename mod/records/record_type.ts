/**
 * The contract each record type (song, movie, app, ...) fulfils. A store
 * builds its table from `columns` and `key`; the pipeline calls `toRow`.
 *
 * @module
 */

import type { NumberKeySpec } from "../common/keys.ts";
import type { JsonKind } from "./drift.ts";

/** Values a row may hold: text, numbers, and booleans stored as 0/1. */
export type Cell = string | number;

/**
 * The column every type's table has after its own columns' (and after
 * `source_key` and `source_pos`): the fields a record carried that its type
 * does not know, as one JSON object's text, or NULL when there were none
 * (or `KEEP_EXTRA=no`). A row's cells end with it.
 */
export const EXTRA_COLUMN = "extra";

/** A cell of a row as written: a column's value, or the `extra` cell (NULL when there is nothing to keep). */
export type RowCell = Cell | null;

/** A table column: its name and its SQL type with constraints. */
export interface Column {
  /** The column's name. */
  readonly name: string;
  /** `TEXT`, `INTEGER` or `REAL`; every column is NOT NULL. */
  readonly sqlType: "TEXT" | "INTEGER" | "REAL";
}

/**
 * A profile key a record type owns (`AWESOME_MIN_RATING` is `app`'s): a
 * number, read and checked by the config by its spec like any key (its
 * default, bounds and doc), documented with them.
 */
export type TypeSetting = NumberKeySpec;

/** What derived columns may depend on besides the record itself. */
export interface RowContext {
  /** `songs.ingestion_time`, already formatted with `DATE_STORE_FORMAT`. */
  readonly ingestionTime: string;
  /**
   * The record types' settings by key (see {@linkcode RecordType.settings});
   * a key left out takes its default.
   */
  readonly settings?: Readonly<Record<string, number>> | undefined;
  /** Reject a row with U+0000 in a text column (PostgreSQL's text cannot hold it). @default {false} */
  readonly rejectNul?: boolean | undefined;
  /** Keep the fields the type does not know in the row's `extra` cell (`KEEP_EXTRA`). @default {true} */
  readonly keepExtra?: boolean | undefined;
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
   * The JSON type of each field the rules know, for the drift report: other
   * fields, and known fields of another JSON type, are counted as drift. A
   * type without it reports no drift. `toRow` must require each of them, of
   * that type: a record it turns into a row is only checked for more fields.
   */
  readonly fields?: Readonly<Record<string, JsonKind>>;
  /** Profile keys this type owns, by name: its derived columns read them from `context.settings`. */
  readonly settings?: Readonly<Record<string, TypeSetting>>;
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
  /**
   * A stored row (its columns by name) with its derived columns computed
   * again by `context.settings`, or why today's rules reject it: how a
   * change of {@linkcode settings} reaches the rows already stored, without a
   * fetch. A type with settings gives it; a row it rejects is left as it is.
   */
  rederive?(row: Readonly<Record<string, unknown>>, context: RowContext): Cell[] | string;
}

/** A setting's value in `context`, or its default. */
export function settingOf(type: RecordType, name: string, context: RowContext): number {
  return context.settings?.[name] ?? Number(type.settings?.[name]?.default);
}
