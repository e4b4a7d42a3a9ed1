/**
 * How a PostgreSQL run writes rows: `COPY` into its temp stages, in large
 * batches, merged into the data tables every {@linkcode MERGE_ROWS} staged
 * rows during the load (once the run holds the commit lock) and at commit.
 * Per key, the row of the latest list position (then arrival) wins.
 *
 * Each table's stage is a parent with one child table per window (the rows
 * staged between two merges): a merge reads its window alone, unless it
 * deleted rows of replaced objects, whose keys it merges again from the
 * earlier windows (rows that lost to a deleted row may win now). A rollback
 * to a savepoint undoes the merges made since, and the counters go back with
 * it.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { EXTRA_COLUMN, type RecordType, type RowCell } from "../../records/mod.ts";
import type { RowSink } from "../kit/file_parts.ts";
import { quote } from "../kit/sql.ts";
import type { FilePart, RowCounts } from "../store.ts";
import type { CommitLock } from "./commit_lock.ts";
import type { Reserved } from "./connection.ts";

const logger = getLogger(["bucketload", "store"]);

/** Buffered COPY text sent once it reaches this many characters (4 Mi measured 211 MB peak RSS, 256 Ki 175 MB, same speed). */
const COPY_BUFFER_CHARS = 256 * 1024;

/**
 * Rows staged (all tables) before they are merged into the data tables
 * during the load; the rest are merged at commit.
 */
export const MERGE_ROWS = 1_000_000;

/** The SQL type of a record column in PostgreSQL. */
const pgType = (sqlType: string) => sqlType === "INTEGER" ? "BIGINT" : sqlType === "REAL" ? "DOUBLE PRECISION" : "TEXT";

/** A value as COPY's text format writes it. */
function copyCell(value: RowCell): string {
  if (value === null) return "\\N";
  if (typeof value === "number") return String(value);
  return value.replace(/[\\\t\n\r]/g, (c) => c === "\\" ? "\\\\" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : "\\r");
}

/** The counters a savepoint goes back to. */
export interface CopyMark {
  /** Rows copied into the stages. */
  readonly staged: number;
  /** The window rows were copied into. */
  readonly window: number;
  /** That window's first `seq`. */
  readonly windowSeq: number;
  /** Rows in that window. */
  readonly windowRows: number;
  /** Rows in the window at which to try a merge. */
  readonly nextMerge: number;
  /** Objects whose earlier rows the next merge deletes. */
  readonly pending: readonly string[];
  /** Rows the merges inserted (keys new to the tables). */
  readonly inserted: number;
  /** Rows the merges deleted. */
  readonly removed: number;
  /** Whether the run held the commit lock (one taken since is released by the rollback). */
  readonly locked: boolean;
}

/** Options of {@linkcode PostgresRows}. */
export interface PostgresRowsOptions {
  /** The run's hold on the commit lock: a merge needs it. */
  readonly lock: CommitLock;
  /** Rows staged before a merge during the load. @default {MERGE_ROWS} */
  readonly mergeRows?: number | undefined;
}

/** The columns a row's cells fill (the type's, then `extra`), then `source_key` and `source_pos`. */
const columnsOf = (type: RecordType) =>
  [...type.columns.map((c) => c.name), EXTRA_COLUMN, "source_key", "source_pos"].map(quote);

/** A table's stage: the parent of its windows. */
const stageOf = (type: RecordType) => quote(`stage_${type.table}`);
/** Window `w` of a table's stage. */
const windowOf = (type: RecordType, w: number) => quote(`stage_${type.table}_${w}`);
/** The natural keys of a table's rows that a merge deleted (replaced objects'), to merge again. */
const goneOf = (type: RecordType) => quote(`gone_${type.table}`);

/** A run's row writes into a PostgreSQL database, on its connection. */
export class PostgresRows implements RowSink<CopyMark> {
  readonly #conn: Reserved;
  readonly #types: ReadonlyMap<string, RecordType>;
  readonly #lock: CommitLock;
  readonly #mergeRows: number;
  /** COPY text not yet sent, by record type (sent in large batches: one COPY per file cost a round trip each). */
  readonly #buffered = new Map<RecordType, string[]>();
  #bufferedChars = 0;
  /** Arrival order of the rows, across windows (a key's later row wins within a list position). */
  #seq = 0;
  /** Rows copied into the stages (rows of aborted streamed parts taken out again). */
  #staged = 0;
  /** The window rows are copied into, the first `seq` in it, and its rows. */
  #window = 0;
  #windowSeq = 0;
  #windowRows = 0;
  /** Rows in the window at which a merge is tried (again, when another run held the lock). */
  #nextMerge: number;
  /** Objects whose earlier rows the next merge deletes: changed ones, and deleted ones with PRUNE_DELETED. */
  #pending: string[] = [];
  #inserted = 0;
  #removed = 0;
  #merged: RowCounts | undefined;

  /** Writes `types`' rows on the run's connection `conn`. */
  constructor(conn: Reserved, types: readonly RecordType[], options: PostgresRowsOptions) {
    const { lock, mergeRows = MERGE_ROWS } = options;
    this.#conn = conn;
    this.#types = new Map(types.map((t) => [t.type, t]));
    this.#lock = lock;
    this.#mergeRows = this.#nextMerge = mergeRows;
  }

  /** Creates the run's temp stages and their first window (dropped at commit or rollback). */
  async createStages() {
    await this.#conn`SET LOCAL work_mem = '64MB'`;
    for (const type of this.#types.values()) {
      const cols = [...type.columns.map((c) => `${quote(c.name)} ${pgType(c.sqlType)}`), `${EXTRA_COLUMN} TEXT`];
      await this.#conn.unsafe(
        `CREATE TEMP TABLE ${stageOf(type)} (${cols.join(", ")}, source_key TEXT, source_pos BIGINT, seq BIGINT)
           ON COMMIT DROP`,
      );
    }
    await this.#createWindow();
  }

  async #createWindow() {
    for (const type of this.#types.values()) {
      await this.#conn.unsafe(
        `CREATE TEMP TABLE ${windowOf(type, this.#window)} () INHERITS (${stageOf(type)}) ON COMMIT DROP`,
      );
    }
    this.#windowSeq = this.#seq;
    this.#windowRows = 0;
    this.#nextMerge = this.#mergeRows;
  }

  async write(key: string, part: FilePart, position: number): Promise<void> {
    for (const [typeName, { count, cells }] of part.rows) {
      const type = this.#types.get(typeName);
      if (type === undefined) throw new TypeError(`No table for record type '${typeName}'`);
      if (count === 0) continue;
      // Each row: the type's columns, then its `extra` cell.
      const width = type.columns.length + 1;
      const tail = `\t${copyCell(key)}\t${position}\t`;
      const lines: string[] = [];
      for (let r = 0; r < count; r++) {
        const row: string[] = [];
        for (let c = 0; c < width; c++) row.push(copyCell(cells[r * width + c]!));
        lines.push(row.join("\t") + tail + this.#seq++);
      }
      const text = lines.join("\n") + "\n";
      let buffer = this.#buffered.get(type);
      if (buffer === undefined) this.#buffered.set(type, buffer = []);
      buffer.push(text);
      this.#bufferedChars += text.length;
      this.#staged += count;
      this.#windowRows += count;
    }
    if (this.#bufferedChars >= COPY_BUFFER_CHARS) await this.flush();
    if (this.#windowRows >= this.#nextMerge) await this.#mergeDuringLoad();
  }

  /** Sends the buffered rows to the current window, one COPY per table. */
  async flush() {
    for (const [type, texts] of this.#buffered) {
      const writable = await this.#conn
        .unsafe(`COPY ${windowOf(type, this.#window)} (${[...columnsOf(type), "seq"].join(", ")}) FROM STDIN`)
        .writable();
      await pipeline(Readable.from(texts), writable);
    }
    this.#buffered.clear();
    this.#bufferedChars = 0;
  }

  /**
   * Merges the window into the tables and starts the next one, if the run
   * holds the commit lock or can take it now; otherwise tries again after
   * as many rows more (another run is merging: its commit comes first).
   */
  async #mergeDuringLoad() {
    if (!(await this.#lock.try())) {
      this.#nextMerge = this.#windowRows + this.#mergeRows;
      return;
    }
    await this.#mergeWindow();
    this.#window++;
    await this.#createWindow();
  }

  replace(key: string): Promise<void> {
    this.#pending.push(key);
    return Promise.resolve();
  }

  async savepoint(): Promise<CopyMark> {
    await this.flush();
    await this.#conn`SAVEPOINT file_part`;
    return {
      staged: this.#staged,
      window: this.#window,
      windowSeq: this.#windowSeq,
      windowRows: this.#windowRows,
      nextMerge: this.#nextMerge,
      pending: [...this.#pending],
      inserted: this.#inserted,
      removed: this.#removed,
      locked: this.#lock.held,
    };
  }

  /**
   * Rows sent since the savepoint are undone, and so are the merges, the
   * windows and the commit lock taken since; rows still buffered are dropped
   * (the buffer was flushed at the savepoint).
   */
  async rollbackTo(mark: CopyMark): Promise<void> {
    this.#staged = mark.staged;
    this.#window = mark.window;
    this.#windowSeq = mark.windowSeq;
    this.#windowRows = mark.windowRows;
    this.#nextMerge = mark.nextMerge;
    this.#pending = [...mark.pending];
    this.#inserted = mark.inserted;
    this.#removed = mark.removed;
    await this.#conn`ROLLBACK TO SAVEPOINT file_part`;
    this.#lock.rolledBack(mark.locked);
    this.#buffered.clear();
    this.#bufferedChars = 0;
  }

  async release(): Promise<void> {
    await this.#conn`RELEASE SAVEPOINT file_part`;
  }

  /**
   * Merges the last window into the data tables (once; in the commit
   * section): the run's row counts.
   */
  async merge(): Promise<RowCounts> {
    if (this.#merged !== undefined) return this.#merged;
    await this.#mergeWindow();
    this.#merged = { inserted: this.#inserted, updated: this.#staged - this.#inserted, removed: this.#removed };
    return this.#merged;
  }

  /**
   * Merges the current window into the data tables, table by table:
   * replaced objects' earlier rows go first, then per key the row of the
   * latest list position (then arrival) wins, unless the table holds one of
   * a later position.
   */
  async #mergeWindow() {
    if (!this.#lock.held) throw new Error("Staged rows are merged only under the commit lock");
    await this.flush();
    if (this.#windowRows === 0 && this.#pending.length === 0) return;
    const started = performance.now();
    const inserted = this.#inserted;
    for (const type of this.#types.values()) await this.#mergeTable(type);
    logger.debug("Merged {rows} staged rows (window {window}): {inserted} inserted, in {ms} ms", {
      rows: this.#windowRows,
      window: this.#window,
      inserted: this.#inserted - inserted,
      ms: Math.round(performance.now() - started),
    });
    this.#pending = [];
  }

  async #mergeTable(type: RecordType) {
    const table = quote(type.table);
    const keys = type.key.map(quote);
    let gone = 0;
    if (this.#pending.length > 0 && this.#window === 0) {
      this.#removed += (await this.#conn.unsafe(`DELETE FROM ${table} WHERE source_key = ANY($1::text[])`, [
        this.#pending,
      ])).count;
    } else if (this.#pending.length > 0) {
      // Rows of earlier windows may have lost to the rows deleted now: their keys are merged again below.
      await this.#conn.unsafe(
        `CREATE TEMP TABLE IF NOT EXISTS ${goneOf(type)} ON COMMIT DROP AS SELECT ${keys.join(", ")} FROM ${table}
           WITH NO DATA`,
      );
      gone = (await this.#conn.unsafe(
        `WITH gone AS (DELETE FROM ${table} WHERE source_key = ANY($1::text[]) RETURNING ${keys.join(", ")})
         INSERT INTO ${goneOf(type)} SELECT * FROM gone`,
        [this.#pending],
      )).count;
      this.#removed += gone;
    }
    const names = columnsOf(type);
    const from = gone === 0 ? windowOf(type, this.#window) : `(
      SELECT ${names.join(", ")}, seq FROM ${windowOf(type, this.#window)}
      UNION ALL
      SELECT ${names.join(", ")}, seq FROM ${stageOf(type)}
      WHERE seq < ${this.#windowSeq} AND (${keys.join(", ")}) IN (SELECT * FROM ${goneOf(type)})) AS s`;
    const latest = `SELECT DISTINCT ON (${keys.join(", ")}) ${names.join(", ")} FROM ${from}
      ORDER BY ${keys.join(", ")}, source_pos DESC, seq DESC`;
    const [{ empty }] = await this.#conn.unsafe<[{ empty: boolean }]>(
      `SELECT NOT EXISTS (SELECT 1 FROM ${table}) AS empty`,
    );
    if (empty) {
      // Nothing to conflict with (only a run that holds the commit lock writes the tables): a plain INSERT, which
      // costs 0.6x an upsert's speculative insertion.
      this.#inserted += (await this.#conn.unsafe(`INSERT INTO ${table} (${names.join(", ")}) ${latest}`)).count;
    } else {
      const updates = names.filter((n) => !keys.includes(n)).map((n) => `${n} = excluded.${n}`);
      const [row] = await this.#conn.unsafe<{ inserted: number }[]>(
        `WITH merged AS (
           INSERT INTO ${table} AS t (${names.join(", ")})
           ${latest}
           ON CONFLICT (${keys.join(", ")}) DO UPDATE SET ${updates.join(", ")}
           WHERE t.source_pos IS NULL OR t.source_pos <= excluded.source_pos
           RETURNING (xmax = 0) AS inserted)
         SELECT count(*) FILTER (WHERE inserted) AS inserted FROM merged`,
      );
      this.#inserted += row?.inserted ?? 0;
    }
    if (gone > 0) await this.#conn.unsafe(`DELETE FROM ${goneOf(type)}`);
  }
}
