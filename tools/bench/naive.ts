/**
 * The "naive" baseline: a straightforward reimplementation of the original
 * Python design. Sequential fetch, JSON.parse, one prepared INSERT OR REPLACE
 * per row, one commit at the end.
 *
 * Usage: deno run -A tools/bench/naive.ts BUCKET_URL DB_PATH
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { normalizeTitle } from "../../mod/records/normalize.ts";

/** The original's tables: no STRICT, no source_key. */
const SCHEMA = `
  CREATE TABLE IF NOT EXISTS songs (artist_name TEXT, title TEXT, year INTEGER, release TEXT, ingestion_time TEXT,
    PRIMARY KEY (artist_name, title));
  CREATE TABLE IF NOT EXISTS movies (original_title TEXT, original_language TEXT, budget INTEGER, is_adult INTEGER,
    release_date TEXT, original_title_normalized TEXT, PRIMARY KEY (original_title_normalized, release_date));
  CREATE TABLE IF NOT EXISTS apps (name TEXT, genre TEXT, rating REAL, version TEXT, size_bytes INTEGER,
    is_awesome INTEGER, PRIMARY KEY (name, version));
`;

const [base, dbPath] = Deno.args as [string, string];
const db = new DatabaseSync(dbPath);
db.exec(SCHEMA);
const song = db.prepare("INSERT OR REPLACE INTO songs VALUES (?, ?, ?, ?, ?)");
const movie = db.prepare("INSERT OR REPLACE INTO movies VALUES (?, ?, ?, ?, ?, ?)");
const app = db.prepare("INSERT OR REPLACE INTO apps VALUES (?, ?, ?, ?, ?, ?)");
const keys = (await (await fetch(new URL("files_list.data", base))).text()).split("\n").filter((k) => k.trim());
const now = new Date().toISOString().slice(0, 19).replace("T", " ");
db.exec("BEGIN");
for (const key of keys) {
  const res = await fetch(new URL(key, base));
  if (res.status !== 200) {
    await res.body?.cancel();
    continue;
  }
  let items: { type?: unknown; data?: Record<string, unknown> }[];
  try {
    items = JSON.parse(await res.text());
  } catch {
    continue;
  }
  for (const item of items) {
    const d = item?.data;
    if (typeof d !== "object" || d === null) continue;
    try {
      if (item.type === "song") {
        song.run(d.artist_name as string, d.title as string, d.year as number, d.release as string, now);
      } else if (item.type === "movie") {
        movie.run(
          d.original_title as string,
          d.original_language as string,
          d.budget as number,
          d.is_adult ? 1 : 0,
          d.release_date as string,
          normalizeTitle(String(d.original_title)),
        );
      } else if (item.type === "app") {
        const awesome = (d.rating as number) >= 4.5 && (d.size_bytes as number) <= 100_000_000 ? 1 : 0;
        app.run(
          d.name as string,
          d.genre as string,
          d.rating as number,
          d.version as string,
          d.size_bytes as number,
          awesome,
        );
      }
    } catch {
      // A value SQLite can't bind: skipped, as the original would have crashed or skipped.
    }
  }
}
db.exec("COMMIT");
db.close();
