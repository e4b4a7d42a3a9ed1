/**
 * How a SQLite run writes rows: multi-row upserts into the tables as they
 * come (`direct`), or into unconstrained temp stages merged in key order
 * (`staged`), each row with its file's key and list position, the later
 * position winning. Also counts inserted, updated and removed rows.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { EXTRA_COLUMN, type RecordType, type RowCell } from "../../records/mod.ts";
import type { RowSink } from "../kit/file_parts.ts";
import { quote } from "../kit/sql.ts";
import type { FilePart, RowCounts } from "../store.ts";

const logger = getLogger(["bucketload", "store"]);

/** Rows per multi-row upsert: fewer, larger statements bind faster than one per row. */
export const UPSERT_BATCH = 32;

/** How rows reach the data tables: upserted as they come, or staged and merged in key order. */
export type LoadMode = "auto" | "direct" | "staged";

/**
 * Rows staged (all tables) before they are merged into the data tables. The
 * stage and the merge's sort live in temp files, so this bounds temp disk
 * (about 100 MB), not memory.
 */
export const STAGE_ROWS = 1_000_000;

/**
 * The page cache, KiB. 64 MiB holds a first load of the real shape (500 ×
 * 1,000) whole: 26,593 `pwrite` + 9,929 `pread` calls instead of 86,623 +
 * 74,585 with 16 MiB, 0.85× the wall time, 177 MB peak instead of 157 MB.
 */
export const CACHE_KIB = 65_536;

/** A row is replaced only from its file's list position or a later one (NULL: a row from before positions). */
const LATER_WINS = "WHERE source_pos IS NULL OR excluded.source_pos >= source_pos";

/** The columns a row's cells fill (the type's, then `extra`), then `source_key` and `source_pos`. */
const columnsOf = (type: RecordType) => [...type.columns.map((c) => c.name), EXTRA_COLUMN, "source_key", "source_pos"];

/** `SET` of every column but the key's, from the row being inserted (`extra` too: the later file's replaces it). */
const updatesOf = (type: RecordType) =>
  columnsOf(type).filter((n) => !type.key.includes(n)).map((n) => `${quote(n)} = excluded.${quote(n)}`).join(", ");

/**
 * `rows` value lists of a type's columns, `extra`, `source_key` and `source_pos`.
 * (Numbered parameters binding the key and position once per statement
 * measured 25–55% slower than binding them with every row.)
 */
function rowValues(type: RecordType, rows: number): string {
  const row = `(${[...type.columns.map(() => "?"), "?", "?", "?"].join(", ")})`;
  return Array(rows).fill(row).join(", ");
}

/**
 * An upsert of `rows` rows. SQLite applies the rows of one statement in order,
 * so a later row with the same key still wins.
 */
function upsertSql(type: RecordType, rows: number): string {
  return `INSERT INTO ${quote(type.table)} (${columnsOf(type).map(quote).join(", ")}) VALUES ${rowValues(type, rows)}
    ON CONFLICT (${type.key.map(quote).join(", ")}) DO UPDATE SET ${updatesOf(type)} ${LATER_WINS}`;
}

/** The insert of `rows` rows into a type's stage: no constraints, so it never touches the table's B-tree. */
function stageSql(type: RecordType, rows: number): string {
  return `INSERT INTO temp.${quote(`stage_${type.table}`)} (${columnsOf(type).map(quote).join(", ")}) VALUES ${
    rowValues(type, rows)
  }`;
}

/**
 * The merge of a stage into its table, in key order (the B-tree is walked
 * once, not at random), and within a key in arrival order (`rowid`), so that
 * the later file, and the later record of a file, still wins.
 */
function mergeSql(type: RecordType): string {
  const names = columnsOf(type).map(quote).join(", ");
  return `INSERT INTO main.${quote(type.table)} (${names})
    SELECT ${names} FROM temp.${quote(`stage_${type.table}`)} WHERE true
    ORDER BY ${type.key.map(quote).join(", ")}, rowid
    ON CONFLICT (${type.key.map(quote).join(", ")}) DO UPDATE SET ${updatesOf(type)} ${LATER_WINS}`;
}

/** The counters a savepoint goes back to. */
export interface RowsMark {
  /** Rows upserted so far. */
  readonly upserted: number;
  /** Rows deleted so far. */
  readonly removed: number;
  /** Rows in the stage. */
  readonly stagedRows: number;
  /** Per table, the largest rowid that is not this run's. */
  readonly ownAbove: ReadonlyMap<string, number>;
  /** Per table, rows removed that were there before the run. */
  readonly removedBefore: ReadonlyMap<string, number>;
}

/** A run's row writes into a SQLite database. */
export class SqliteRows implements RowSink<RowsMark> {
  readonly #db: DatabaseSync;
  readonly #types: ReadonlyMap<string, RecordType>;
  readonly #statements = new Map<string, StatementSync>();
  readonly #staged: boolean;
  readonly #stageRows: number;
  /**
   * Per table, the largest rowid that is not this run's: rows above it are
   * the rows this run inserted (SQLite gives a new row the largest rowid + 1),
   * which tells inserted from updated rows without counting the tables (a
   * `count(*)` reads every page of an index: ~0.5 s a table at 2 M rows, at
   * every run). Lowered when rows are removed, since their rowids come free.
   */
  #ownAbove = new Map<string, number>();
  /** Rows upserted so far (rows of aborted streamed parts taken out again). */
  #upserted = 0;
  /** Rows deleted by this run (a changed object's earlier rows, a pruned object's). */
  #removed = 0;
  /**
   * Per table, the rows deleted that were there before the run (at or below
   * {@linkcode #ownAbove}): with the rows above it at commit, the table's
   * change in rows, exactly (a row this run inserted and removed again counts
   * in neither).
   */
  #removedBefore = new Map<string, number>();
  /** Rows in the stage, all tables together. */
  #stagedRows = 0;

  /** Writes `types`' rows into `db`: `direct`ly, or `staged` and merged every `stageRows` rows and at commit. */
  constructor(db: DatabaseSync, types: readonly RecordType[], mode: "direct" | "staged", stageRows: number) {
    this.#db = db;
    this.#types = new Map(types.map((t) => [t.type, t]));
    this.#staged = mode === "staged";
    this.#stageRows = stageRows;
    for (const type of types) this.#ownAbove.set(type.table, this.#maxRowid(type.table));
    if (!this.#staged) return;
    logger.debug("Loading staged: rows are merged in key order");
    for (const type of types) {
      const cols = [
        ...type.columns.map((c) => `${quote(c.name)} ${c.sqlType}`),
        `${EXTRA_COLUMN} TEXT`,
        "source_key TEXT",
        "source_pos INTEGER",
      ];
      db.exec(`CREATE TEMP TABLE IF NOT EXISTS ${quote(`stage_${type.table}`)} (${cols.join(", ")})`);
      db.exec(`DELETE FROM temp.${quote(`stage_${type.table}`)}`);
    }
  }

  #statement(id: string, sql: () => string): StatementSync {
    let stmt = this.#statements.get(id);
    if (stmt === undefined) this.#statements.set(id, stmt = this.#db.prepare(sql()));
    return stmt;
  }

  #maxRowid(table: string): number {
    return (this.#db.prepare(`SELECT coalesce(max(rowid), 0) AS m FROM main.${quote(table)}`).get() as { m: number })
      .m;
  }

  write(key: string, part: FilePart, position: number): Promise<void> {
    for (const [typeName, { cells }] of part.rows) {
      const type = this.#types.get(typeName);
      if (type === undefined) throw new TypeError(`No table for record type '${typeName}'`);
      this.#upsert(type, key, cells, position);
    }
    return Promise.resolve();
  }

  /**
   * Upserts rows given as one flat array of cells, `UPSERT_BATCH` rows per
   * statement: into the table, or into its stage (merged when it holds
   * {@linkcode STAGE_ROWS} rows, and at commit).
   */
  #upsert(type: RecordType, key: string, flat: readonly RowCell[], position: number) {
    // Each row: the type's columns, then its `extra` cell.
    const width = type.columns.length + 1;
    const rows = flat.length / width;
    const params: RowCell[] = new Array((width + 2) * Math.min(UPSERT_BATCH, rows));
    this.#upserted += rows;
    const staged = this.#staged;
    for (let start = 0; start < rows; start += UPSERT_BATCH) {
      const n = Math.min(UPSERT_BATCH, rows - start);
      const stmt = this.#statement(
        `${staged ? "stage" : "upsert"}/${type.table}/${n}`,
        () => staged ? stageSql(type, n) : upsertSql(type, n),
      );
      // Each row's cells, then its file's key and list position.
      let at = 0;
      for (let r = start; r < start + n; r++) {
        for (let c = r * width, end = c + width; c < end; c++) params[at++] = flat[c]!;
        params[at++] = key;
        params[at++] = position;
      }
      params.length = at;
      stmt.run(...params);
    }
    if (staged) {
      this.#stagedRows += rows;
      if (this.#stagedRows >= this.#stageRows) this.merge();
    }
  }

  /** Merges the staged rows into the data tables, table by table, in key order. */
  merge() {
    if (this.#stagedRows === 0) return;
    for (const type of this.#types.values()) {
      this.#statement(`merge/${type.table}`, () => mergeSql(type)).run();
      this.#db.exec(`DELETE FROM temp.${quote(`stage_${type.table}`)}`);
    }
    this.#stagedRows = 0;
  }

  /** Removes the rows objects loaded before (those whose `source_key` they are), e.g. when they changed. */
  removeRowsOf(keys: readonly string[]) {
    if (keys.length === 0) return;
    for (const type of this.#types.values()) {
      const gone = this.#db.prepare(
        `DELETE FROM main.${quote(type.table)} WHERE source_key IN (SELECT value FROM json_each(?)) RETURNING rowid`,
      ).all(JSON.stringify(keys)) as { rowid: number }[];
      this.#removed += gone.length;
      const above = this.#ownAbove.get(type.table)!;
      const before = gone.filter((r) => r.rowid <= above).length;
      this.#removedBefore.set(type.table, (this.#removedBefore.get(type.table) ?? 0) + before);
      // A row inserted after this gets the largest remaining rowid + 1, which may be below the old bound.
      this.#ownAbove.set(type.table, Math.min(above, this.#maxRowid(type.table)));
    }
  }

  replace(key: string): Promise<void> {
    this.removeRowsOf([key]);
    return Promise.resolve();
  }

  /** Rows written so far (staged rows merged first): rows that replaced removed rows are new rows again. */
  counts(): RowCounts {
    let inserted = 0;
    for (const n of this.#insertedByTable().values()) inserted += n;
    return { inserted, updated: this.#upserted - inserted, removed: this.#removed };
  }

  /** Per table, the change in rows this run makes (staged rows merged first): for the commit's row counts. */
  tableDeltas(): Map<string, number> {
    const deltas = new Map<string, number>();
    for (const [table, inserted] of this.#insertedByTable()) {
      deltas.set(table, inserted - (this.#removedBefore.get(table) ?? 0));
    }
    return deltas;
  }

  /** Per table, the rows this run inserted that are there now (staged rows merged first). */
  #insertedByTable(): Map<string, number> {
    this.merge();
    const out = new Map<string, number>();
    for (const [table, above] of this.#ownAbove) {
      const { n } = this.#db.prepare(`SELECT count(*) AS n FROM main.${quote(table)} WHERE rowid > ?`).get(above) as {
        n: number;
      };
      out.set(table, n);
    }
    return out;
  }

  savepoint(): Promise<RowsMark> {
    this.#db.exec("SAVEPOINT file_part");
    return Promise.resolve({
      upserted: this.#upserted,
      removed: this.#removed,
      stagedRows: this.#stagedRows,
      ownAbove: new Map(this.#ownAbove),
      removedBefore: new Map(this.#removedBefore),
    });
  }

  /** The rollback also undoes merges made since the savepoint: the stage holds again what it held then. */
  rollbackTo(mark: RowsMark): Promise<void> {
    this.#upserted = mark.upserted;
    this.#removed = mark.removed;
    this.#ownAbove = new Map(mark.ownAbove);
    this.#removedBefore = new Map(mark.removedBefore);
    this.#stagedRows = mark.stagedRows;
    this.#db.exec("ROLLBACK TO file_part");
    return Promise.resolve();
  }

  release(): Promise<void> {
    this.#db.exec("RELEASE file_part");
    return Promise.resolve();
  }
}
