/**
 * How a PostgreSQL run writes rows: `COPY` into its temp stages, in large
 * batches, and one merge per table at commit in which, per key, the row of
 * the latest list position (then arrival) wins.
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
import type { Reserved } from "./connection.ts";

const logger = getLogger(["bucketload", "store"]);

/** Buffered COPY text sent once it reaches this many characters (4 Mi measured 211 MB peak RSS, 256 Ki 175 MB, same speed). */
const COPY_BUFFER_CHARS = 256 * 1024;

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
  /** How many objects were to be replaced: those added after the savepoint are not. */
  readonly replaced: number;
}

/** The columns a row's cells fill (the type's, then `extra`), then `source_key` and `source_pos`. */
const columnsOf = (type: RecordType) =>
  [...type.columns.map((c) => c.name), EXTRA_COLUMN, "source_key", "source_pos"].map(quote);

/** A run's row writes into a PostgreSQL database, on its connection. */
export class PostgresRows implements RowSink<CopyMark> {
  readonly #conn: Reserved;
  readonly #types: ReadonlyMap<string, RecordType>;
  /** COPY text not yet sent, by record type (sent in large batches: one COPY per file cost a round trip each). */
  readonly #buffered = new Map<RecordType, string[]>();
  #bufferedChars = 0;
  /** Rows copied into the stages (rows of aborted streamed parts taken out again). */
  #staged = 0;
  /** Objects whose earlier rows go at the merge: changed ones, and deleted ones with PRUNE_DELETED. */
  #replaced = new Set<string>();
  #merged: RowCounts | undefined;
  /** Per table, rows inserted less rows removed by the merge: the table's change in rows. */
  readonly #deltas = new Map<string, number>();

  /** Writes `types`' rows on the run's connection `conn`. */
  constructor(conn: Reserved, types: readonly RecordType[]) {
    this.#conn = conn;
    this.#types = new Map(types.map((t) => [t.type, t]));
  }

  /** Creates the run's temp stage tables (dropped at commit or rollback). */
  async createStages() {
    for (const type of this.#types.values()) {
      const cols = [...type.columns.map((c) => `${quote(c.name)} ${pgType(c.sqlType)}`), `${EXTRA_COLUMN} TEXT`];
      await this.#conn.unsafe(
        `CREATE TEMP TABLE ${quote(`stage_${type.table}`)} (${cols.join(", ")}, source_key TEXT, source_pos BIGINT,
           seq BIGINT GENERATED ALWAYS AS IDENTITY) ON COMMIT DROP`,
      );
    }
  }

  async write(key: string, part: FilePart, position: number): Promise<void> {
    for (const [typeName, { count, cells }] of part.rows) {
      const type = this.#types.get(typeName);
      if (type === undefined) throw new TypeError(`No table for record type '${typeName}'`);
      if (count === 0) continue;
      // Each row: the type's columns, then its `extra` cell.
      const width = type.columns.length + 1;
      const tail = `${copyCell(key)}\t${position}`;
      const lines: string[] = [];
      for (let r = 0; r < count; r++) {
        const row: string[] = [];
        for (let c = 0; c < width; c++) row.push(copyCell(cells[r * width + c]!));
        row.push(tail);
        lines.push(row.join("\t"));
      }
      const text = lines.join("\n") + "\n";
      let buffer = this.#buffered.get(type);
      if (buffer === undefined) this.#buffered.set(type, buffer = []);
      buffer.push(text);
      this.#bufferedChars += text.length;
      this.#staged += count;
    }
    if (this.#bufferedChars >= COPY_BUFFER_CHARS) await this.flush();
  }

  /** Sends the buffered rows to the stages, one COPY per table. */
  async flush() {
    for (const [type, texts] of this.#buffered) {
      const writable = await this.#conn
        .unsafe(`COPY ${quote(`stage_${type.table}`)} (${columnsOf(type).join(", ")}) FROM STDIN`)
        .writable();
      await pipeline(Readable.from(texts), writable);
    }
    this.#buffered.clear();
    this.#bufferedChars = 0;
  }

  replace(key: string): Promise<void> {
    this.#replaced.add(key);
    return Promise.resolve();
  }

  async savepoint(): Promise<CopyMark> {
    await this.flush();
    await this.#conn`SAVEPOINT file_part`;
    return { staged: this.#staged, replaced: this.#replaced.size };
  }

  /** Rows sent since the savepoint are undone, rows still buffered dropped (the buffer was flushed at the savepoint). */
  async rollbackTo(mark: CopyMark): Promise<void> {
    this.#staged = mark.staged;
    await this.#conn`ROLLBACK TO SAVEPOINT file_part`;
    this.#buffered.clear();
    this.#bufferedChars = 0;
    this.#replaced = new Set([...this.#replaced].slice(0, mark.replaced));
  }

  async release(): Promise<void> {
    await this.#conn`RELEASE SAVEPOINT file_part`;
  }

  /**
   * Merges the stages into the data tables (once; in the commit section):
   * replaced objects' earlier rows go, then per key the row of the latest
   * list position (then arrival) wins; into a table still empty, with a
   * plain INSERT.
   */
  async merge(): Promise<RowCounts> {
    if (this.#merged !== undefined) return this.#merged;
    await this.flush();
    const started = performance.now();
    await this.#conn`SET LOCAL work_mem = '64MB'`;
    let inserted = 0, removed = 0;
    if (this.#replaced.size > 0) {
      for (const type of this.#types.values()) {
        const deleted = await this.#conn.unsafe(`DELETE FROM ${quote(type.table)} WHERE source_key = ANY($1::text[])`, [
          [...this.#replaced],
        ]);
        removed += deleted.count;
        this.#deltas.set(type.table, (this.#deltas.get(type.table) ?? 0) - deleted.count);
      }
    }
    for (const type of this.#types.values()) {
      const table = quote(type.table);
      const names = columnsOf(type);
      const keys = type.key.map(quote).join(", ");
      const latest = `SELECT DISTINCT ON (${keys}) ${names.join(", ")} FROM ${quote(`stage_${type.table}`)}
        ORDER BY ${keys}, source_pos DESC, seq DESC`;
      const [{ empty }] = await this.#conn.unsafe<[{ empty: boolean }]>(
        `SELECT NOT EXISTS (SELECT 1 FROM ${table}) AS empty`,
      );
      if (empty) {
        // Nothing to conflict with (only a run in the commit section inserts into them): a plain INSERT, which costs
        // 0.6x an upsert's speculative insertion.
        const count = (await this.#conn.unsafe(`INSERT INTO ${table} (${names.join(", ")}) ${latest}`)).count;
        inserted += count;
        this.#deltas.set(type.table, (this.#deltas.get(type.table) ?? 0) + count);
        continue;
      }
      const updates = names.filter((n) => !type.key.map(quote).includes(n)).map((n) => `${n} = excluded.${n}`);
      const [row] = await this.#conn.unsafe<{ inserted: number }[]>(
        `WITH merged AS (
           INSERT INTO ${table} AS t (${names.join(", ")})
           ${latest}
           ON CONFLICT (${keys}) DO UPDATE SET ${updates.join(", ")}
           WHERE t.source_pos IS NULL OR t.source_pos <= excluded.source_pos
           RETURNING (xmax = 0) AS inserted)
         SELECT count(*) FILTER (WHERE inserted) AS inserted FROM merged`,
      );
      inserted += Number(row?.inserted ?? 0);
      this.#deltas.set(type.table, (this.#deltas.get(type.table) ?? 0) + Number(row?.inserted ?? 0));
    }
    this.#merged = { inserted, updated: this.#staged - inserted, removed };
    logger.debug("Merged {staged} staged rows into the data tables in {ms} ms", {
      staged: this.#staged,
      ms: Math.round(performance.now() - started),
      ...this.#merged,
    });
    return this.#merged;
  }

  /** Per table, the change in rows the merge made (after {@linkcode merge}). */
  tableDeltas(): ReadonlyMap<string, number> {
    return this.#deltas;
  }
}
