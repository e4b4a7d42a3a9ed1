/**
 * The "floor": the least work that loads the same rows into the same tables
 * (bucketload's schema: STRICT, with source_key). Fetch all objects 8 at a
 * time, JSON.parse, keep rows whose fields have the right JSON types (a
 * typeof filter, not the full rules), derive the same columns, and insert
 * with multi-row INSERT OR REPLACE and bulk-load pragmas: no validation
 * reasons, no bookkeeping, no crash safety (journal off).
 *
 * Usage: deno run -A tools/bench/floor.ts BUCKET_URL DB_PATH
 *
 * @module
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { pMapIterable } from "p-map";
import { normalizeTitle } from "../../mod/records/normalize.ts";
import { RECORD_TYPES } from "../../mod/records/mod.ts";
import { tableSql } from "../../mod/store/migrations.ts";

const [base, dbPath] = Deno.args as [string, string];
const db = new DatabaseSync(dbPath);
db.exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -65536;");
for (const type of RECORD_TYPES) db.exec(tableSql(type));

const BATCH = 32;
// Each table's columns, source_key and source_pos included (the same tables as bucketload's).
const WIDTH = { songs: 7, movies: 8, apps: 8 } as const;
const statements = new Map<string, StatementSync>();
function statement(table: keyof typeof WIDTH, rows: number): StatementSync {
  const id = `${table}/${rows}`;
  let stmt = statements.get(id);
  if (stmt === undefined) {
    const row = `(${Array(WIDTH[table]).fill("?").join(", ")})`;
    stmt = db.prepare(`INSERT OR REPLACE INTO ${table} VALUES ${Array(rows).fill(row).join(", ")}`);
    statements.set(id, stmt);
  }
  return stmt;
}

const now = new Date().toISOString().slice(0, 19).replace("T", " ");
const keys = (await (await fetch(new URL("files_list.data", base))).text()).split("\n").filter((k) => k.trim());
const str = (x: unknown): x is string => typeof x === "string";
const num = (x: unknown): x is number => typeof x === "number";
const int = (x: unknown): x is number => Number.isInteger(x);
type Item = { type?: unknown; data?: Record<string, unknown> | null };

db.exec("BEGIN");
const parsed = pMapIterable(keys, async (key) => ({
  key,
  items: JSON.parse(await (await fetch(new URL(key, base))).text()) as Item[],
}), { concurrency: 8 });
let position = 0;
for await (const { key, items } of parsed) {
  const pos = position++;
  const rows: Record<keyof typeof WIDTH, (string | number)[]> = { songs: [], movies: [], apps: [] };
  for (const item of items) {
    const d = item?.data;
    if (typeof d !== "object" || d === null) continue;
    if (item.type === "song") {
      if (str(d.artist_name) && str(d.title) && int(d.year) && str(d.release)) {
        rows.songs.push(d.artist_name, d.title, d.year, d.release, now, key, pos);
      }
    } else if (item.type === "movie") {
      const { original_title: t, original_language: l, budget: b, is_adult: a, release_date: r } = d;
      if (str(t) && str(l) && int(b) && typeof a === "boolean" && str(r)) {
        rows.movies.push(t, l, b, a ? 1 : 0, r, normalizeTitle(t), key, pos);
      }
    } else if (item.type === "app") {
      const { name: n, genre: g, rating: r, version: v, size_bytes: s } = d;
      if (str(n) && str(g) && num(r) && str(v) && int(s)) {
        rows.apps.push(n, g, r, v, s, r >= 4.5 && s <= 100_000_000 ? 1 : 0, key, pos);
      }
    }
  }
  for (const table of ["songs", "movies", "apps"] as const) {
    const flat = rows[table], width = WIDTH[table], count = flat.length / width;
    for (let i = 0; i < count; i += BATCH) {
      const n = Math.min(BATCH, count - i);
      statement(table, n).run(...flat.slice(i * width, (i + n) * width));
    }
  }
}
db.exec("COMMIT");
db.close();
