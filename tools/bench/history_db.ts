/**
 * A SQLite database as bucketload leaves it after a long history of
 * 15-minute runs, built in a minute or two with SQL rather than by running
 * bucketload 35,000 times: the schema, `meta`, and templates of real
 * rejections and drift come from one real run (this checkout's, over
 * `fixtures/sample_bucket`); the history is then written in one
 * transaction: the runs with their drift rows and a few problem keys, the
 * registry with list positions, the rows of each file (their keys in random
 * order), the stored rejections, the cached list, and the `processed.json`
 * the run rewrites. Deterministic (seeded); built once and cached under
 * `.bench/history/`.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { dirname, join } from "node:path";
import { prng } from "../gen_bucket.ts";
import { BENCH_DIR, bucketload, removeDb, ROOT } from "./kit.ts";

/** How much history a database holds. */
export interface History {
  readonly name: string;
  readonly runs: number;
  readonly files: number;
  readonly rows: { readonly songs: number; readonly movies: number; readonly apps: number };
  readonly rejections: number;
}

/** A year of 15-minute runs: 35,000 runs, 1,000,000 files, 5,000,000 rows, 200,000 stored rejections. */
export const YEAR: History = {
  name: "year",
  runs: 35_000,
  files: 1_000_000,
  rows: { songs: 1_800_000, movies: 1_700_000, apps: 1_500_000 },
  rejections: 200_000,
};

/** The same bucket a day old: 96 runs, and the files, rows and rejections they made at the year's pace. */
export const DAY: History = scaled("day", 96);

/** `YEAR` cut to its first `runs` runs. */
export function scaled(name: string, runs: number): History {
  const f = runs / YEAR.runs;
  const n = (x: number) => Math.max(1, Math.round(x * f));
  return {
    name,
    runs,
    files: n(YEAR.files),
    rows: { songs: n(YEAR.rows.songs), movies: n(YEAR.rows.movies), apps: n(YEAR.rows.apps) },
    rejections: n(YEAR.rejections),
  };
}

/** What a built history consists of: the database and the files around it. */
export interface HistoryFiles {
  readonly history: History;
  readonly dir: string;
  /** The database as built (copy it before a run writes into it). */
  readonly db: string;
  /** The list as the last run saw it: every registered key, in list order (the list_cache body). */
  readonly list: string;
  /** `processed.json` as the last run wrote it. */
  readonly processed: string;
}

/** Every `invalidEvery`-th file is invalid (a whole-file rejection, no rows). */
const INVALID_EVERY = 500;
/** Every `issueEvery`-th run had a missing key (a run_keys row). */
const ISSUE_EVERY = 100;
/** The history's last run started here (fixed, so that the database is the same whenever it is built). */
const END = Date.parse("2026-12-01T00:00:00Z");
const QUARTER = 15 * 60 * 1000;

const ARTISTS = ["The Primeridian", "Mos Def", "Björk", "Sigur Rós", "坂本龍一", "Los Lobos", "Daft Punk"];
const WORDS = ["Wisdom", "Night", "Summer", "Reprise", "Love", "Ghost", "River", "Fire", "Dream", "Stone", "Blue"];
const TITLES = [
  "Un Français",
  "Un été à La Goulette",
  "வழக்கு எண் 18/9",
  "ねらわれた学園",
  "卧虎藏龙",
  "Amélie",
  "La Haine",
];
const LANGS = ["en", "fr", "ta", "ja", "zh", "es", "de"];
const APPS = ["Tomb Raider II", "Photo Editor®", "微信 WeChat", "Calm 🧘 Sleep", "Notes", "Chess Pro"];
const GENRES = ["Games", "Productivity", "Social Networking", "Health & Fitness", "Utilities"];
const VERSIONS = ["V3.7.0", "v2.13.9", "708", "1.0.3"];

/** A unique, scattered tag for row `i` (an odd multiplier is a bijection mod 2³²): keys in random order. */
const tag = (i: number) => (Math.imul(i + 1, 0x9e3779b1) >>> 0).toString(36);

/** movies.original_title_normalized, as the movie type derives it. */
const normalized = (title: string) =>
  title.normalize("NFKC").toLowerCase().replace(/[^\p{L}\p{M}\p{N}\s]/gu, "").trim().replace(/\s+/gu, "_");

function uuid(rand: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(rand() * 16).toString(16)).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20)}`;
}

const iso = (ms: number) => new Date(ms).toISOString();
const stamp = (ms: number) => iso(ms).slice(0, 19).replace("T", " ");

/** Inserts rows `width` columns wide, 100 a statement. */
function inserter(db: DatabaseSync, sql: (values: string) => string, width: number) {
  const BATCH = 100;
  const row = `(${Array(width).fill("?").join(", ")})`;
  const full = db.prepare(sql(Array(BATCH).fill(row).join(", ")));
  const one = db.prepare(sql(row));
  let buffer: (string | number | null)[] = [];
  return {
    add(...cells: (string | number | null)[]) {
      buffer.push(...cells);
      if (buffer.length === BATCH * width) {
        full.run(...buffer);
        buffer = [];
      }
    },
    flush() {
      for (let i = 0; i < buffer.length; i += width) one.run(...buffer.slice(i, i + width));
      buffer = [];
    },
  };
}

/** The history's files, built now unless a complete build is cached. */
export async function historyFiles(h: History): Promise<HistoryFiles> {
  // The schema this build makes: a database made by another schema is built anew, beside it (another checkout, e.g.
  // with --checkout, or another worktree sharing BL_BENCH_DIR, may still use it).
  const probe = join(BENCH_DIR, "history", `schema-probe-${Deno.pid}.sqlite3`);
  await Deno.mkdir(dirname(probe), { recursive: true });
  await bootstrap(probe);
  const schema = schemaOf(probe);
  await removeDb(probe);
  const plain = join(BENCH_DIR, "history", `${h.name}-${h.runs}r-${h.files}f`);
  const tagged = `${plain}-${await shortHash(schema)}`;
  const filesOf = (dir: string): HistoryFiles => ({
    history: h,
    dir,
    db: join(dir, "history.sqlite3"),
    list: join(dir, "files_list.data"),
    processed: join(dir, "processed.json"),
  });
  // Cached under its schema's hash, or (built before the names carried it) under the plain name.
  for (const dir of [tagged, plain]) {
    try {
      const built = JSON.parse(await Deno.readTextFile(join(dir, "built.json")));
      if (built.runs === h.runs && built.schema === schema) return filesOf(dir);
    } catch { /* not built yet */ }
  }
  const dir = tagged;
  const files = filesOf(dir);
  const done = join(dir, "built.json");
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  const t0 = performance.now();
  console.error(`Building the ${h.name}-old database (${h.runs} runs, ${h.files} files) under ${dir} ...`);
  await bootstrap(files.db);
  const templates = readTemplates(files.db);
  const keys = writeHistory(files.db, h, templates);
  // The list as the last run saw it, and processed.json as it rewrote it (by the run that registered a key, then key).
  await Deno.writeTextFile(files.list, keys.join("\n"));
  const perRun = (i: number) => 1 + Math.floor(i * h.runs / h.files);
  const ordered = keys.map((k, i) => [perRun(i), k] as const)
    .sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : 1)).map(([, k]) => k);
  await Deno.writeTextFile(files.processed, JSON.stringify(ordered, null, 2) + "\n");
  await Deno.writeTextFile(done, JSON.stringify({ ...h, schema, seconds: (performance.now() - t0) / 1000 }));
  console.error(`Built in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return files;
}

/** The first 8 hex digits of the SHA-256 of `text`. */
async function shortHash(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].slice(0, 4).map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** One real run over the sample bucket: this build's schema and meta, and real rejections and drift to copy. */
async function bootstrap(db: string) {
  await removeDb(db);
  const out = await bucketload(
    { BUCKETLOAD_BUCKET_NAME: join(ROOT, "fixtures", "sample_bucket"), BUCKETLOAD_DATABASE_NAME: db },
    ROOT,
    ["--quiet", "--log-level", "warning"],
    "main",
  ).output();
  if (!out.success) throw new Error(`bootstrap run failed: ${new TextDecoder().decode(out.stderr)}`);
}

/** The database's schema, as text: its tables' and indexes' SQL. */
function schemaOf(path: string): string {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return (db.prepare("SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name").all() as { sql: string }[])
      .map((r) => r.sql).join(";\n");
  } finally {
    db.close();
  }
}

interface Templates {
  readonly rejections: { record_index: number; type: string; reason: string; raw: string }[];
  readonly drift: (string | number | null)[][];
}

function readTemplates(path: string): Templates {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return {
      rejections: db.prepare(
        "SELECT record_index, type, reason, CAST(raw AS TEXT) AS raw FROM rejected_records " +
          "WHERE record_index IS NOT NULL AND raw IS NOT NULL AND type IS NOT NULL ORDER BY id",
      ).all() as Templates["rejections"],
      drift: (db.prepare("SELECT type, field, kind, expected, seen, records, example FROM run_drift").all() as Record<
        string,
        string | number | null
      >[]).map((r) => Object.values(r)),
    };
  } finally {
    db.close();
  }
}

/** Replaces the bootstrap run's bookkeeping and rows with the history; returns the keys in list order. */
function writeHistory(path: string, h: History, t: Templates): string[] {
  const db = new DatabaseSync(path);
  // Rows go in before the runs they name are flushed: the foreign keys hold once all is written.
  db.exec(
    "PRAGMA foreign_keys = OFF; PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -1048576",
  );
  db.exec("BEGIN");
  for (
    const table of [
      "run_drift",
      "run_keys",
      "rejected_records",
      "list_cache",
      "missing_keys",
      "songs",
      "movies",
      "apps",
    ]
  ) {
    db.exec(`DELETE FROM ${table}`);
  }
  db.exec("DELETE FROM processed_files; DELETE FROM runs");
  const rand = prng(20261201);
  const keys = Array.from({ length: h.files }, () => `${uuid(rand)}.data`);
  const runOf = (file: number) => 1 + Math.floor(file * h.runs / h.files);
  const startOf = (run: number) => END - (h.runs - run) * QUARTER;
  const invalid = (file: number) => file % INVALID_EVERY === INVALID_EVERY - 1;
  // Rows per file, by table: each row's file is where it falls in list order (a loaded file's).
  const tables = [
    ["songs", h.rows.songs],
    ["movies", h.rows.movies],
    ["apps", h.rows.apps],
  ] as const;
  const fileOf = (row: number, total: number) => {
    const f = Math.floor(row * h.files / total);
    return invalid(f) ? f - 1 : f;
  };
  const rowsOf = new Int32Array(h.files);
  for (const [, total] of tables) for (let i = 0; i < total; i++) rowsOf[fileOf(i, total)]!++;
  const rejectedOf = new Int32Array(h.files);
  const recordRejections = h.rejections - Math.floor(h.files / INVALID_EVERY);
  const rejectionFile = (k: number) => fileOf(k, recordRejections);
  for (let k = 0; k < recordRejections; k++) rejectedOf[rejectionFile(k)]!++;

  // Runs, with their drift rows and a problem key now and then.
  const runs = inserter(
    db,
    (v) =>
      `INSERT INTO runs (id, started_at, finished_at, status, files_listed, files_new, files_loaded, files_invalid,
         records_loaded, loaded_by_type, records_rejected, records_ignored, ignored_by_type, bucket, rows_inserted,
         rows_updated, kind) VALUES ${v}`,
    17,
  );
  const drift = inserter(
    db,
    (v) => `INSERT INTO run_drift (run_id, type, field, kind, expected, seen, records, example) VALUES ${v}`,
    8,
  );
  const issues = inserter(db, (v) => `INSERT INTO run_keys (run_id, key, outcome, reason) VALUES ${v}`, 4);
  let file = 0;
  for (let run = 1; run <= h.runs; run++) {
    let files = 0, bad = 0, rows = 0, rejected = 0;
    for (; file < h.files && runOf(file) === run; file++) {
      files++;
      if (invalid(file)) bad++;
      rows += rowsOf[file]!;
      rejected += rejectedOf[file]! + (invalid(file) ? 1 : 0);
    }
    const started = startOf(run);
    const loaded = { song: Math.round(rows * 0.36), movie: Math.round(rows * 0.34) };
    runs.add(
      run,
      iso(started),
      iso(started + 4000),
      "ok",
      file,
      files,
      files - bad,
      bad,
      rows,
      JSON.stringify({ ...loaded, app: rows - loaded.song - loaded.movie }),
      rejected,
      Math.round(rows * 0.3),
      JSON.stringify({ book: Math.round(rows * 0.3) }),
      "(history)",
      rows,
      0,
      "run",
    );
    for (const d of t.drift) drift.add(run, ...d);
    if (run % ISSUE_EVERY === 0) {
      issues.add(run, keys[Math.min(h.files - 1, file)]!, "missing", "HTTP 403 (the bucket says it does not exist)");
    }
  }
  runs.flush();
  drift.flush();
  issues.flush();

  // The registry, in list order.
  const registry = inserter(
    db,
    (v) =>
      `INSERT INTO processed_files (key, status, run_id, processed_at, records, rejected, ignored, bytes, origin,
         position) VALUES ${v}`,
    10,
  );
  for (let f = 0; f < h.files; f++) {
    const run = runOf(f);
    registry.add(
      keys[f]!,
      invalid(f) ? "invalid" : "loaded",
      run,
      iso(startOf(run) + 3000),
      invalid(f) ? 0 : rowsOf[f]! + rejectedOf[f]!,
      invalid(f) ? 1 : rejectedOf[f]!,
      invalid(f) ? 0 : Math.round(rowsOf[f]! * 0.3),
      2000 + (f % 7) * 500,
      "run",
      f,
    );
  }
  registry.flush();

  // Rows, file after file (arrival order), their natural keys scattered.
  const pick = <T>(xs: readonly T[], i: number): T => xs[i % xs.length]!;
  const at = (f: number) => stamp(startOf(runOf(f)) + 2000);
  const songs = inserter(
    db,
    (v) => `INSERT INTO songs (artist_name, title, year, release, ingestion_time, source_key, source_pos) VALUES ${v}`,
    7,
  );
  for (let i = 0; i < h.rows.songs; i++) {
    const f = fileOf(i, h.rows.songs), r = Math.imul(i, 2654435761) >>> 0;
    songs.add(
      `${pick(ARTISTS, r)} ${pick(WORDS, r >>> 3)} ${tag(i)}`,
      `${pick(WORDS, r >>> 7)} ${pick(WORDS, r >>> 11)}`,
      r % 100 < 48 ? 0 : 1874 + (r >>> 5) % 145,
      `${pick(WORDS, r >>> 13)} ${pick(WORDS, r >>> 17)}`,
      at(f),
      keys[f]!,
      f,
    );
  }
  songs.flush();
  const movies = inserter(
    db,
    (v) =>
      `INSERT INTO movies (original_title, original_language, budget, is_adult, release_date,
         original_title_normalized, source_key, source_pos) VALUES ${v}`,
    8,
  );
  for (let i = 0; i < h.rows.movies; i++) {
    const f = fileOf(i, h.rows.movies), r = Math.imul(i, 2246822519) >>> 0;
    const title = `${pick(TITLES, r)} ${pick(WORDS, r >>> 3)} ${tag(i)}`;
    const date = `${1874 + (r >>> 5) % 145}-${String(1 + (r >>> 9) % 12).padStart(2, "0")}-${
      String(1 + (r >>> 13) % 28).padStart(2, "0")
    }`;
    movies.add(
      title,
      pick(LANGS, r >>> 17),
      r % 100 < 81 ? 0 : (r >>> 4) % 200_000_000,
      0,
      date,
      normalized(title),
      keys[f]!,
      f,
    );
  }
  movies.flush();
  const apps = inserter(
    db,
    (v) =>
      `INSERT INTO apps (name, genre, rating, version, size_bytes, is_awesome, source_key, source_pos) VALUES ${v}`,
    8,
  );
  for (let i = 0; i < h.rows.apps; i++) {
    const f = fileOf(i, h.rows.apps), r = Math.imul(i, 3266489917) >>> 0;
    const rating = ((r >>> 3) % 11) / 2;
    const size = r % 10 === 0 ? 4_025_969_664 : (r >>> 6) % 300_000_000;
    apps.add(
      `${pick(APPS, r)} ${pick(WORDS, r >>> 9)} ${tag(i)}`,
      pick(GENRES, r >>> 13),
      rating,
      pick(VERSIONS, r >>> 17),
      size,
      rating >= 4.5 && size <= 100_000_000 ? 1 : 0,
      keys[f]!,
      f,
    );
  }
  apps.flush();

  // Stored rejections: the sample's real ones copied onto the history's files, and each invalid file's.
  const rejections = inserter(
    db,
    (v) => `INSERT INTO rejected_records (run_id, key, record_index, type, reason, raw) VALUES ${v}`,
    6,
  );
  for (let k = 0; k < recordRejections; k++) {
    const f = rejectionFile(k), tpl = t.rejections[k % t.rejections.length]!;
    rejections.add(runOf(f), keys[f]!, (k * 7) % 700, tpl.type, tpl.reason, tpl.raw);
  }
  for (let f = INVALID_EVERY - 1; f < h.files; f += INVALID_EVERY) {
    rejections.add(runOf(f), keys[f]!, null, null, "not JSON: Unexpected end of JSON input", null);
  }
  rejections.flush();
  db.prepare("INSERT INTO list_cache (bucket, key, etag, last_modified, body, run_id) VALUES (?, ?, ?, ?, ?, ?)")
    .run("(history)", "files_list.data", null, null, keys.join("\n"), h.runs);
  // Schema 8 on: the rows per table as the commits would have kept them (the registry's and the quarantine's totals
  // were kept by their triggers as the rows went in).
  if (db.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'table_rows'").get() !== undefined) {
    db.exec("DELETE FROM table_rows");
    for (const [table] of tables) {
      db.exec(`INSERT INTO table_rows (name, "rows") SELECT '${table}', count(*) FROM ${table}`);
    }
  }
  db.exec("COMMIT");
  db.exec("PRAGMA journal_mode = DELETE");
  db.close();
  return keys;
}
