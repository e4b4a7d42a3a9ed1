/**
 * The "floor": the least work that loads the same tables. Fetch all objects
 * (8 at a time), JSON.parse, insert rows of the three types with multi-row
 * upserts and bulk-load pragmas; no validation, no bookkeeping, no crash
 * safety (journal off).
 *
 * Usage: deno run -A tools/bench/floor.ts BUCKET_URL DB_PATH
 *
 * @module
 */
import { REFERENCE_SCHEMA } from "./schema.ts";
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { pMapIterable } from "p-map";

const [base, dbPath] = Deno.args as [string, string];
const db = new DatabaseSync(dbPath);
db.exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -65536;");
db.exec(REFERENCE_SCHEMA);
const BATCH = 32;
const TABLES = { song: ["songs", 5], movie: ["movies", 6], app: ["apps", 6] } as const;
const statements = new Map<string, StatementSync>();
function statement(table: string, width: number, rows: number): StatementSync {
  const id = `${table}/${rows}`;
  let stmt = statements.get(id);
  if (stmt === undefined) {
    const row = `(${Array(width).fill("?").join(", ")})`;
    stmt = db.prepare(`INSERT OR REPLACE INTO ${table} VALUES ${Array(rows).fill(row).join(", ")}`);
    statements.set(id, stmt);
  }
  return stmt;
}
const now = new Date().toISOString().slice(0, 19).replace("T", " ");
const keys = (await (await fetch(new URL("files_list.data", base))).text()).split("\n").filter((k) => k.trim());
db.exec("BEGIN");
const parsed = pMapIterable(keys, async (key) => JSON.parse(await (await fetch(new URL(key, base))).text()), {
  concurrency: 8,
});
/** A bindable value: anything else becomes NULL (the floor doesn't validate). */
const v = (x: unknown): string | number | null => typeof x === "string" || typeof x === "number" ? x : null;
type Item = { type: string; data: Record<string, unknown> | null };
for await (const items of parsed as AsyncIterable<Item[]>) {
  const byType: Record<string, (string | number | null)[]> = { song: [], movie: [], app: [] };
  for (const { type, data: d } of items) {
    const out = byType[type];
    if (out === undefined || d === null) continue;
    if (type === "song") out.push(v(d.artist_name), v(d.title), v(d.year), v(d.release), now);
    else if (type === "movie") {
      const title = v(d.original_title);
      out.push(title, v(d.original_language), v(d.budget), d.is_adult ? 1 : 0, v(d.release_date), title);
    } else out.push(v(d.name), v(d.genre), v(d.rating), v(d.version), v(d.size_bytes), Number(d.rating) >= 4.5 ? 1 : 0);
  }
  for (const [type, flat] of Object.entries(byType)) {
    const [table, width] = TABLES[type as keyof typeof TABLES];
    const rows = flat.length / width;
    for (let i = 0; i < rows; i += BATCH) {
      const n = Math.min(BATCH, rows - i);
      statement(table, width, n).run(...flat.slice(i * width, (i + n) * width));
    }
  }
}
db.exec("COMMIT");
db.close();
