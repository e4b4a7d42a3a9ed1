/**
 * Lineage as an integer file id instead of the file's 41-character key in
 * every row: an estimate of the bytes and of the writer's time. The rows of a
 * real first load (bucketload over the unique-keys bucket) are written again,
 * file by file in list order, with the writer's statements (32-row upserts,
 * the later position winning, `temp_store = MEMORY`, a 64 MiB cache, WAL,
 * `synchronous = FULL`), once with `source_key TEXT` and once with an
 * `INTEGER` file id; same rows, same order, interleaved.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { median, removeDb } from "./kit.ts";

const KEYS: Record<string, readonly string[]> = {
  songs: ["artist_name", "title"],
  movies: ["original_title_normalized", "release_date"],
  apps: ["name", "version"],
};
const BATCH = 32;

export interface LineageReport {
  readonly rows: number;
  readonly files: number;
  readonly text: { seconds: number[]; bytes: number };
  readonly integer: { seconds: number[]; bytes: number };
}

type Row = (string | number | null)[];

/** Each table's CREATE statement and rows (in arrival order: rowid), from a database bucketload loaded. */
function readSource(path: string) {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const tables = Object.keys(KEYS).map((table) => {
      const ddl = (db.prepare("SELECT sql FROM sqlite_schema WHERE name = ?").get(table) as { sql: string }).sql;
      const columns = (db.prepare(`SELECT name FROM pragma_table_info('${table}')`).all() as { name: string }[])
        .map((c) => c.name);
      const rows = (db.prepare(`SELECT * FROM ${table} ORDER BY rowid`).all() as Record<string, Row[number]>[])
        .map((r) => columns.map((c) => r[c]!));
      return { table, ddl, columns, rows };
    });
    return tables;
  } finally {
    db.close();
  }
}

/** Writes the rows into a new database at `path`, file by file; returns the seconds and the data tables' bytes. */
function write(
  path: string,
  source: ReturnType<typeof readSource>,
  integer: boolean,
): { seconds: number; bytes: number } {
  const db = new DatabaseSync(path);
  db.exec(
    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY",
  );
  const ids = new Map<string, number>();
  const plans = source.map(({ table, ddl, columns, rows }) => {
    db.exec(integer ? ddl.replace(/"?source_key"? TEXT NOT NULL/, "source_file INTEGER NOT NULL") : ddl);
    const names = columns.map((c) => (c === "source_key" && integer ? "source_file" : c));
    const keyAt = columns.indexOf("source_key"), posAt = columns.indexOf("source_pos");
    const one = `(${names.map(() => "?").join(", ")})`;
    const sql = (n: number) =>
      `INSERT INTO ${table} (${names.join(", ")}) VALUES ${Array(n).fill(one).join(", ")}
       ON CONFLICT (${KEYS[table]!.join(", ")}) DO UPDATE SET ${
        names.filter((c) => !KEYS[table]!.includes(c)).map((c) => `${c} = excluded.${c}`).join(", ")
      } WHERE source_pos IS NULL OR excluded.source_pos >= source_pos`;
    // Rows by file (list position), in arrival order within it.
    const byFile = new Map<number, Row[]>();
    for (const row of rows) {
      const cells = [...row];
      if (integer) {
        const key = String(cells[keyAt]);
        if (!ids.has(key)) ids.set(key, ids.size + 1);
        cells[keyAt] = ids.get(key)!;
      }
      const pos = Number(cells[posAt]);
      if (!byFile.has(pos)) byFile.set(pos, []);
      byFile.get(pos)!.push(cells);
    }
    return { byFile, full: db.prepare(sql(BATCH)), sql, width: names.length };
  });
  const positions = [...new Set(plans.flatMap((p) => [...p.byFile.keys()]))].sort((a, b) => a - b);
  const start = performance.now();
  db.exec("BEGIN IMMEDIATE");
  for (const pos of positions) {
    for (const p of plans) {
      const rows = p.byFile.get(pos) ?? [];
      let i = 0;
      for (; i + BATCH <= rows.length; i += BATCH) p.full.run(...(rows.slice(i, i + BATCH).flat() as never[]));
      if (i < rows.length) db.prepare(p.sql(rows.length - i)).run(...(rows.slice(i).flat() as never[]));
    }
  }
  db.exec("COMMIT");
  const seconds = (performance.now() - start) / 1000;
  const bytes = (db.prepare(
    `SELECT sum(d.pgsize) AS b FROM dbstat AS d JOIN sqlite_schema AS s ON s.name = d.name
     WHERE s.tbl_name IN ('songs', 'movies', 'apps')`,
  ).get() as { b: number }).b;
  db.close();
  return { seconds, bytes };
}

/** The estimate: `reps` writes of each variant, interleaved, from the rows of the database at `source`. */
export async function lineageCase(source: string, workDir: string, reps: number): Promise<LineageReport> {
  const tables = readSource(source);
  const text: number[] = [], integer: number[] = [];
  let textBytes = 0, integerBytes = 0;
  const files = new Set<unknown>();
  for (const t of tables) for (const r of t.rows) files.add(r[t.columns.indexOf("source_key")]);
  for (let r = 0; r < reps; r++) {
    for (const variant of ["text", "integer"] as const) {
      const path = join(workDir, `lineage-${variant}.sqlite3`);
      await removeDb(path);
      const out = write(path, tables, variant === "integer");
      (variant === "text" ? text : integer).push(out.seconds);
      if (variant === "text") textBytes = out.bytes;
      else integerBytes = out.bytes;
      await removeDb(path);
      console.error(`lineage ${r + 1}/${reps} ${variant}: ${out.seconds.toFixed(2)} s, ${out.bytes} bytes`);
    }
  }
  return {
    rows: tables.reduce((n, t) => n + t.rows.length, 0),
    files: files.size,
    text: { seconds: text, bytes: textBytes },
    integer: { seconds: integer, bytes: integerBytes },
  };
}

export const lineageMedian = (r: LineageReport) => ({
  text: median(r.text.seconds),
  integer: median(r.integer.seconds),
});
