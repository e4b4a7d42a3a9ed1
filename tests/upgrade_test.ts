/**
 * Upgrades never break: a database made by every build that shipped a schema
 * version (kept in `tests/fixtures/schemas/`, made by
 * `tools/make_schema_fixture.ts`) is migrated by this build through the CLI,
 * then loads a bucket with new files, replays and reports `status` exactly as
 * a fresh database that loaded the same buckets does; SQLite files and
 * PostgreSQL dumps. And the migrations that shipped keep their text.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { RECORD_TYPES } from "../mod/records/mod.ts";
import { reasonGroup } from "../mod/run/replay.ts";
import { MIGRATIONS, SCHEMA_VERSION } from "../mod/store/migrations.ts";
import { CASES, cli, type Dump, dumpDatabase, query, ROOT, type Row, withTempDir, writeConfig } from "./helpers.ts";
import { pgClient, pgDump, pgQuery, pgTest, withPgDatabase } from "./pg.ts";

/** The databases shipped builds made: `v<N>-<build>.db` (SQLite), `.sql` (a PostgreSQL dump), `original.db`. */
const FIXTURES = join(ROOT, "tests", "fixtures", "schemas");
const fixtures = (ext: string) => readdirSync(FIXTURES).filter((f) => f.endsWith(ext)).sort();

/**
 * The SHA-256 of each shipped migration's description and SQL (and of its
 * other fields, such as the columns it adds where missing). A shipped
 * migration never changes: a database that recorded its version never runs it
 * again. Add a migration instead, and its hashes here (docs/data.md,
 * "Migrations are append-only").
 */
const SHIPPED: Record<number, Hashes> = {
  1: {
    description: "e638300f0164c55d487e10e5c2162405edc51243141bb9a8bc689a685df9de12",
    sql: "7de8a0b5aa0be05fdcc0c26b15bdb2d0874cac1fd14a731a4725e9a7d855822f",
  },
  2: {
    description: "1bb57dbd0c614ea5afffec5c7380beba8452677a9dfeaab2b6b17ffecb8d8401",
    sql: "d8bb95b5026fee3862aaf93280b87f8b10a99a03676e1b37fb101cb3c8d9d938",
  },
  3: {
    description: "6e06eb44f8adc18959d508fd01dfa0e60fc736dd5722c77b8351dca9766fec06",
    sql: "0e8f768827d97fbb8795b7a05efa6f59f9349e7b5f00e6759614d3d5e2c71bdc",
  },
  4: {
    description: "fa843497d421663a15ff0ea65305112c974830add15a1a0869298b9c291229fc",
    sql: "7b48c74d7f63754a7fa5faf4daf6161c43993965e25a1d22e55b1fdceec83560",
  },
  5: {
    description: "dfead7611ff448b6338d566618221192b9f99f19380a0d6245af1575b25e9132",
    sql: "22d893ee3aa4c8daa36cef4769b94c08431fd114787db16b7993ef021b809289",
  },
  6: {
    description: "1b7e7d072d61b792375b87bcbb37bacde98b74945175bddb726ab09fe6ac2653",
    sql: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    extra: "0f67bda2ea965470bde3ff15664959a16b401755e461d8c2ebb3a911fbfc6169",
  },
  8: {
    description: "ce6f217be41b91a4134ee86799c6d83416db5a49d14877fbb83e8d2710754fb7",
    sql: "6fae4295eb3dd559d773d1b5d42086172ff52e3413a05654936887bf420c11be",
    extra: "20eeff60673467b25bb16e7575d1bdac7d0250bb3456b8742076fd254a39c309",
  },
};

/** The hashes of a migration's description, SQL and other fields (JSON), when it has any. */
interface Hashes {
  description: string;
  sql: string;
  extra?: string;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

Deno.test("migrations: the shipped ones keep their text (append-only), versions count up from 1", () => {
  // Up, from 1: a gap is allowed while two changes each add a version (7 and 8 were written side by side); the one
  // merged second renumbers its step only if the other has not shipped, as a database that recorded a version never
  // runs a lower one.
  assert.equal(MIGRATIONS[0]?.version, 1);
  for (let i = 1; i < MIGRATIONS.length; i++) assert.ok(MIGRATIONS[i]!.version > MIGRATIONS[i - 1]!.version);
  for (const m of MIGRATIONS) {
    const { version: _, description, sql, ...extra } = m;
    const now: Hashes = { description: sha256(description), sql: sha256(sql) };
    if (Object.keys(extra).length > 0) now.extra = sha256(JSON.stringify(extra));
    const shipped = SHIPPED[m.version];
    assert.ok(
      shipped !== undefined,
      `migration ${m.version} is not in SHIPPED: add ${m.version}: ${JSON.stringify(now)}`,
    );
    assert.deepEqual(
      now,
      shipped,
      `migration ${m.version} changed after it shipped: databases that have it never run it again; ` +
        `restore its text and add migration ${SCHEMA_VERSION + 1} instead`,
    );
  }
});

Deno.test("fixtures: a database of every schema version, for both stores (PostgreSQL from 2)", () => {
  const versions = (ext: string) => new Set(fixtures(ext).map((f) => /^v(\d+)-/.exec(f)?.[1]).map(Number));
  for (const m of MIGRATIONS) {
    assert.ok(
      versions(".db").has(m.version),
      `no SQLite fixture of schema ${m.version} (tools/make_schema_fixture.ts)`,
    );
    if (m.version >= 2) {
      assert.ok(versions(".sql").has(m.version), `no PostgreSQL fixture of schema ${m.version}`);
    }
  }
  assert.ok(existsSync(join(FIXTURES, "original.db")), "the Python original's database");
});

// ---------------------------------------------------------------------------------------------------------------------
// The buckets: tests/cases/basic (what every fixture loaded), then two new files.

const NEW_FILES: Record<string, string> = {
  // A new song with a field the rules do not know, an update of basic's song, a new movie, an app, a rejected app,
  // a book (ignored).
  "d1b2c3d4-0004-4000-8000-000000000004.data": JSON.stringify([
    { type: "song", data: { artist_name: "New Artist", title: "New Song", year: 2020, release: "R", genre: "pop" } },
    { type: "song", data: { artist_name: "The Primeridian", title: "Wisdom (Reprise)", year: 2006, release: "Re" } },
    {
      type: "movie",
      data: {
        original_title: "Nouveau",
        original_language: "fr",
        budget: 5,
        is_adult: false,
        release_date: "2020-01-02",
      },
    },
    { type: "app", data: { name: "Notes", genre: "Productivity", rating: 3.5, version: "709", size_bytes: 10 } },
    { type: "app", data: { name: "Bad", genre: "Games", rating: 7, version: "1", size_bytes: 10 } },
    { type: "book", data: { original_title: "Book Three" } },
  ]),
  // NDJSON: a movie that replaces basic's, and a line that is not JSON.
  "e1b2c3d4-0005-4000-8000-000000000005.ndjson": [
    JSON.stringify({
      type: "movie",
      data: {
        original_title: "Un \u00e9t\u00e9 \u00e0 La Goulette",
        original_language: "fr",
        budget: 100,
        is_adult: false,
        release_date: "1996-02-29",
      },
    }),
    "{not json",
  ].join("\n") + "\n",
};

/** Writes the bucket at `dir`: basic's files and list, plus (stage 1) the new files at the list's end. */
async function writeBucket(dir: string, stage: 0 | 1): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  let list = "";
  for (const entry of readdirSync(join(CASES, "basic"))) {
    const text = await Deno.readTextFile(join(CASES, "basic", entry));
    if (entry === "files_list.data") list = text;
    else await Deno.writeTextFile(join(dir, entry), text);
  }
  if (stage === 1) {
    for (const [key, body] of Object.entries(NEW_FILES)) await Deno.writeTextFile(join(dir, key), body);
    list = `${list.replace(/\n?$/, "\n")}${Object.keys(NEW_FILES).join("\n")}\n`;
  }
  await Deno.writeTextFile(join(dir, "files_list.data"), list);
}

// ---------------------------------------------------------------------------------------------------------------------
// A scenario: a database (a fixture's copy, or a new one), then this build's runs through the CLI.

/** What a database looks like after the scenario: through the CLI and in its tables. */
interface Outcome {
  /** The highest run id before this build's first run (the fixture's own runs, or the fresh database's first). */
  baseline: number;
  run: Record<string, unknown>;
  replay: Record<string, unknown>;
  status: Record<string, unknown>;
  /** The kinds of the runs this build wrote (`runs.kind`), in order. */
  kinds: string[];
  dump: Dump;
  schema: Row[];
  /** The schema of the tables other than the data tables. */
  bookkeeping: Row[];
  version: number;
}

/** One store under test: how to read a database the scenario made. */
interface Db {
  /** The profile's line that names the database. */
  readonly profile: string;
  maxRunId(): Promise<number>;
  kindsAfter(id: number): Promise<string[]>;
  version(): Promise<number>;
  dump(): Promise<Dump>;
  schema(bookkeepingOnly: boolean): Promise<Row[]>;
}

async function runCli(args: string[], config: string, what: string): Promise<Record<string, unknown>> {
  const out = await cli([...args, "--config", config, "--profile", "p", "--json"]);
  assert.equal(out.code, 0, `${what} exited ${out.code}: ${out.stderr}`);
  return JSON.parse(out.stdout);
}

/**
 * In `dir`: loads basic first when `loadBasic` (a fresh database's history),
 * then the bucket with the new files, replays and asks `status`.
 */
async function scenario(dir: string, db: Db, loadBasic: boolean): Promise<Outcome> {
  const bucket = join(dir, "bucket");
  await writeBucket(bucket, 0);
  const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ./bucket\n${db.profile}\n`);
  if (loadBasic) await runCli([], config, "the fresh database's first run");
  // Status of a database this build has not opened yet (status never writes, so it does not migrate).
  else await runCli(["status"], config, "status of the database before the upgrade");
  const baseline = await db.maxRunId();
  await writeBucket(bucket, 1);
  const run = await runCli([], config, "the run with new files");
  // Another AWESOME_MIN_RATING: the replay re-derives an app and commits, writing a run row of kind 'replay'.
  await writeConfig(dir, `[p]\nBUCKET_NAME = ./bucket\n${db.profile}\nAWESOME_MIN_RATING = 3.5\n`);
  const replay = await runCli(["replay"], config, "replay");
  const status = await runCli(["status"], config, "status");
  return {
    baseline,
    run,
    replay,
    status,
    kinds: await db.kindsAfter(baseline),
    dump: await db.dump(),
    schema: await db.schema(false),
    bookkeeping: await db.schema(true),
    version: await db.version(),
  };
}

function sqliteDb(path: string): Db {
  return {
    profile: `DATABASE_NAME = ${path}`,
    // A new database has no file yet, the Python original's no runs table.
    maxRunId: () =>
      Promise.resolve(
        !existsSync(path) || query(path, "SELECT 1 FROM sqlite_schema WHERE name = 'runs'").length === 0
          ? 0
          : runIdOf(query(path, "SELECT max(id) AS n FROM runs")),
      ),
    kindsAfter: (id) =>
      Promise.resolve(query(path, "SELECT kind FROM runs WHERE id > ? ORDER BY id", id).map((r) => String(r.kind))),
    version: () => Promise.resolve(query(path, "SELECT max(version) AS v FROM schema_version")[0]!.v as number),
    dump: () => Promise.resolve(dumpDatabase(path, { ingestionTime: false, fullRegistry: true })),
    schema: (bookkeepingOnly) => Promise.resolve(sqliteSchema(path, bookkeepingOnly)),
  };
}

function pgDb(url: string): Db {
  return {
    profile: `DATABASE_URL = ${url}`,
    maxRunId: async () => runIdOf(await pgQuery(url, "SELECT max(id) AS n FROM runs")),
    kindsAfter: async (id) =>
      (await pgQuery(url, "SELECT kind FROM runs WHERE id > $1 ORDER BY id", id)).map((r) => String(r.kind)),
    version: async () => (await pgQuery(url, "SELECT max(version) AS v FROM schema_version"))[0]!.v as number,
    dump: () => pgDump(url, { ingestionTime: false, fullRegistry: true }),
    schema: () => pgSchema(url),
  };
}

const runIdOf = (rows: Row[]) => Number(rows[0]?.n ?? 0);

const DATA_TABLES = new Set(RECORD_TYPES.map((t) => t.table));

/** Every table's columns (name, type, NOT NULL, default, key), STRICT, and every index with its columns. */
function sqliteSchema(path: string, bookkeepingOnly: boolean): Row[] {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const tables = (db.prepare(
      "SELECT name, strict FROM pragma_table_list WHERE schema = 'main' AND type = 'table' AND name NOT LIKE 'sqlite_%'",
    ).all() as { name: string; strict: number }[]).filter((t) => !bookkeepingOnly || !DATA_TABLES.has(t.name));
    const rows: Row[] = [];
    for (const t of tables) {
      const columns = db.prepare(`SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)`).all(t.name);
      rows.push({ table: t.name, strict: t.strict, columns: columns.map((c) => ({ ...c })).sort(byJson) });
      const indexes = db.prepare(`SELECT name, "unique", origin FROM pragma_index_list(?)`).all(t.name) as Row[];
      for (const index of indexes) {
        const cols = db.prepare("SELECT name FROM pragma_index_info(?) ORDER BY seqno").all(index.name as string);
        rows.push({ table: t.name, index: { ...index }, columns: cols.map((c) => c.name) });
      }
    }
    return rows.sort(byJson);
  } finally {
    db.close();
  }
}

/** Every column (type, nullability, default, identity), constraint and index of the public schema. */
async function pgSchema(url: string): Promise<Row[]> {
  const columns = await pgQuery(
    url,
    `SELECT table_name, column_name, data_type, is_nullable, column_default, is_identity
     FROM information_schema.columns WHERE table_schema = 'public'`,
  );
  const constraints = await pgQuery(
    url,
    `SELECT conrelid::regclass::text AS table_name, contype::text, pg_get_constraintdef(oid) AS definition
     FROM pg_constraint WHERE connamespace = 'public'::regnamespace`,
  );
  const indexes = await pgQuery(url, "SELECT tablename, indexdef FROM pg_indexes WHERE schemaname = 'public'");
  return [...columns, ...constraints, ...indexes].sort(byJson);
}

function byJson(a: unknown, b: unknown): number {
  const x = JSON.stringify(a), y = JSON.stringify(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------------------------------
// Comparing an upgraded database with a fresh one.

/**
 * What the old build wrote in its own words, mapped to this build's: a
 * rejection's `raw` text (early builds stored the record re-serialized) and a
 * whole file's reason (the first build worded JSON errors as the engine did)
 * stay as they were in the rows that build wrote; everything else must equal
 * a fresh database. Checks that each such row is the fixture's, unchanged.
 */
function wordings(fixture: Row[], upgraded: Dump, fresh: Dump): Map<string, string> {
  const map = new Map<string, string>();
  const id = (r: Row) => `${r.key}\0${r.record_index}`;
  const freshById = new Map(fresh.rejected_records.map((r) => [id(r), r]));
  const kept = new Map(fixture.map((r) => [id(r), r]));
  for (const row of upgraded.rejected_records) {
    const old = kept.get(id(row));
    const now = freshById.get(id(row));
    if (old === undefined || now === undefined) continue;
    for (const field of ["raw", "reason"] as const) {
      if (row[field] === now[field]) continue;
      assert.equal(row[field], old[field], `${id(row)}: ${field} is neither the fixture's nor a fresh load's`);
      if (field === "reason") assert.equal(row.record_index, null, "only a whole file's reason keeps its old words");
      map.set(String(old[field]), String(now[field]));
    }
  }
  return map;
}

/** `value` (any JSON) with every string in `map` replaced by its counterpart. */
function reword<T>(value: T, map: Map<string, string>): T {
  let text = JSON.stringify(value);
  for (const [from, to] of map) {
    text = text.replaceAll(JSON.stringify(from).slice(1, -1), JSON.stringify(to).slice(1, -1));
  }
  return JSON.parse(text);
}

/** A CLI report without times, durations and run ids (a run id becomes its number after the baseline). */
function timeless(report: Record<string, unknown>, baseline: number): Record<string, unknown> {
  const {
    startedAt: _s,
    finishedAt: _f,
    seconds: _sec,
    lockWaitSeconds: _l,
    runId,
    ...rest
  } = report;
  return { ...rest, runId: typeof runId === "number" ? runId - baseline : runId };
}

/** `status --json` without times, paths and what the runs before the baseline recorded (builds differed there). */
function comparableStatus(status: Record<string, unknown>, baseline: number, dir: string): Record<string, unknown> {
  const after = (id: unknown) => Number(id) > baseline;
  const run = ({ id, started_at: _s, finished_at: _f, ...rest }: Row) => ({ ...rest, id: Number(id) - baseline });
  const {
    database: _database,
    lastCheck: _lastCheck,
    previousBucket: _previous,
    bucketChangedAt: _changed,
    runs,
    history,
    drift,
    recentIssues,
    ...rest
  } = status as Record<string, Row[]>;
  return JSON.parse(
    JSON.stringify({
      ...rest,
      runs: runs!.filter((r) => after(r.id)).map(run),
      history: history!.filter((r) => after(r.id)).map(run),
      drift: drift!.filter((d) => after(d.lastRun)).map((d) => ({ ...d, lastRun: Number(d.lastRun) - baseline })),
      recentIssues: recentIssues!.filter((r) => after(r.run_id)).map((r) => ({
        ...r,
        run_id: Number(r.run_id) - baseline,
      })),
    }).replaceAll(dir, "<dir>"),
  );
}

/** A fresh database's outcome, once per store. */
const freshOutcomes = new Map<string, Promise<Outcome & { dir: string }>>();

function fresh(store: "sqlite" | "postgres", loadBasic: boolean): Promise<Outcome & { dir: string }> {
  const key = `${store} ${loadBasic}`;
  let outcome = freshOutcomes.get(key);
  if (outcome === undefined) {
    outcome = withTempDir(async (dir) => {
      if (store === "sqlite") return { dir, ...await scenario(dir, sqliteDb(join(dir, "db.sqlite3")), loadBasic) };
      return await withPgDatabase(async (url) => ({ dir, ...await scenario(dir, pgDb(url), loadBasic) }));
    });
    freshOutcomes.set(key, outcome);
  }
  return outcome;
}

/** What the test knows of a fixture before this build opens it. */
interface Before {
  /** Its rejections (`rejected_records`), as the old build wrote them. */
  readonly rejections: Row[];
  /**
   * Whether its files' list positions are unknown (SQLite before rows kept
   * `source_pos`): replay skips their records, as documented
   * (docs/operating.md, "Not re-validated").
   */
  readonly positionless: boolean;
}

/**
 * A fresh database's replay report, had the records of the fixture's files
 * been skipped for their unknown list position.
 */
function withoutPositions(replay: Record<string, unknown>, before: Before): Record<string, unknown> {
  const records = before.positionless ? before.rejections.filter((r) => r.record_index !== null) : [];
  if (records.length === 0) return replay;
  const report = structuredClone(replay) as {
    revalidated: number;
    stillRejected: number;
    skipped: Record<string, number>;
    byReason: (Row & { reason: string; revalidated: number; stillRejected: number })[];
  };
  report.revalidated -= records.length;
  report.stillRejected -= records.length;
  report.skipped.noPosition! += records.length;
  for (const record of records) {
    const group = report.byReason.find((g) => g.reason === reasonGroup(String(record.reason)))!;
    group.revalidated--;
    group.stillRejected--;
  }
  report.byReason = report.byReason.filter((g) => g.revalidated > 0);
  return report;
}

/** Asserts that the upgraded database's outcome is the fresh one's, but for what the old build wrote its own way. */
function assertSameAsFresh(
  upgraded: Outcome,
  before: Before,
  reference: Outcome & { dir: string },
  dir: string,
  name: string,
): void {
  assert.equal(upgraded.version, SCHEMA_VERSION, `${name}: migrated to schema ${SCHEMA_VERSION}`);
  assert.deepEqual(reference.kinds, ["run", "replay"]);
  assert.deepEqual(upgraded.kinds, reference.kinds, `${name}: this build's run and replay rows`);
  const map = wordings(before.rejections, upgraded.dump, reference.dump);
  assert.deepEqual(reword(upgraded.dump, map), reference.dump, `${name}: the tables of a fresh database`);
  assert.deepEqual(
    timeless(upgraded.run, upgraded.baseline),
    timeless(reference.run, reference.baseline),
    `${name}: the run with new files reports as on a fresh database`,
  );
  assert.deepEqual(
    reword(timeless(upgraded.replay, upgraded.baseline), map),
    withoutPositions(timeless(reference.replay, reference.baseline), before),
    `${name}: replay reports as on a fresh database`,
  );
  assert.deepEqual(
    reword(comparableStatus(upgraded.status, upgraded.baseline, dir), map),
    comparableStatus(reference.status, reference.baseline, reference.dir),
    `${name}: status reports as on a fresh database`,
  );
}

// ---------------------------------------------------------------------------------------------------------------------
// SQLite: every fixture file.

/** The fixture at `path` before the upgrade. */
function sqliteBefore(path: string): Before {
  const tables = new Set(query(path, "SELECT name FROM sqlite_schema WHERE type = 'table'").map((t) => t.name));
  return {
    rejections: tables.has("rejected_records") ? query(path, "SELECT * FROM rejected_records") : [],
    positionless: query(path, "SELECT 1 FROM pragma_table_info('songs') WHERE name = 'source_pos'").length === 0,
  };
}

for (const name of fixtures(".db").filter((f) => f !== "original.db")) {
  Deno.test(`upgrade: ${name} (SQLite) migrates, loads new files, replays and reports as a fresh database`, async () => {
    await withTempDir(async (dir) => {
      const path = join(dir, "db.sqlite3");
      await Deno.copyFile(join(FIXTURES, name), path);
      const before = sqliteBefore(path);
      const upgraded = await scenario(dir, sqliteDb(path), false);
      const reference = await fresh("sqlite", true);
      assert.deepEqual(
        upgraded.schema,
        reference.schema,
        `${name}: the tables, columns and indexes of a fresh database`,
      );
      assertSameAsFresh(upgraded, before, reference, dir, name);
    });
  });
}

Deno.test("upgrade: the Python original's database is taken over, then loads, replays and reports as a fresh one", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "db.sqlite3");
    await Deno.copyFile(join(FIXTURES, "original.db"), path);
    const originalRows = {
      songs: query(path, "SELECT * FROM songs"),
      movies: query(path, "SELECT * FROM movies"),
      apps: query(path, "SELECT * FROM apps"),
    };
    const upgraded = await scenario(dir, sqliteDb(path), false);
    // The original never loaded basic: the fresh database loads everything in one run too.
    const reference = await fresh("sqlite", false);
    // Its data tables keep their own shape (not STRICT, a unique index added); the bookkeeping is a fresh one's.
    assert.deepEqual(upgraded.bookkeeping, reference.bookkeeping);
    // The original's rows that no file replaced stay, without lineage; the rest is a fresh database's.
    const kept = { songs: [] as Row[], movies: [] as Row[], apps: [] as Row[] };
    for (const table of ["songs", "movies", "apps"] as const) {
      kept[table] = upgraded.dump[table].filter((r) => r.source_key === null);
      upgraded.dump[table] = upgraded.dump[table].filter((r) => r.source_key !== null);
      const original = new Set(originalRows[table].map((r) => JSON.stringify(Object.values(r).slice(0, 2))));
      for (const row of kept[table]) assert.ok(original.has(JSON.stringify(Object.values(row).slice(0, 2))));
    }
    assert.deepEqual(kept.songs.map((s) => s.artist_name), ["Original Artist"]);
    assert.deepEqual(kept.movies.map((m) => m.original_title), ["Un Français"]);
    assert.deepEqual(kept.apps, []);
    // A file's row that replaced one of the original's is an update where a fresh database inserts it.
    const replaced = Object.values(originalRows).flat().length - kept.songs.length - kept.movies.length;
    const rows = upgraded.run.rows as Record<string, number>;
    upgraded.run.rows = { ...rows, inserted: rows.inserted! + replaced, updated: rows.updated! - replaced };
    for (const list of [upgraded.status.runs, upgraded.status.history] as Row[][]) {
      for (const r of list.filter((r) => r.id === 1)) {
        Object.assign(r, {
          rows_inserted: Number(r.rows_inserted) + replaced,
          rows_updated: Number(r.rows_updated) - replaced,
        });
      }
    }
    const tables = upgraded.status.tables as Record<string, number>;
    upgraded.status.tables = { ...tables, songs: tables.songs! - 1, movies: tables.movies! - 1 };
    assertSameAsFresh(upgraded, { rejections: [], positionless: false }, reference, dir, "original");
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// PostgreSQL: every dump, restored into a database of its own.

/** Runs a plain dump (tools/make_schema_fixture.ts writes it without psql meta-commands) into the database at `url`. */
async function restore(url: string, dumpPath: string): Promise<void> {
  const client = pgClient(url);
  try {
    await client.unsafe(await Deno.readTextFile(dumpPath)).simple();
  } finally {
    await client.end();
  }
}

for (const name of fixtures(".sql")) {
  pgTest(`upgrade: ${name} migrates, loads new files, replays and reports as a fresh database`, async () => {
    await withTempDir(async (dir) => {
      await withPgDatabase(async (url) => {
        await restore(url, join(FIXTURES, name));
        const before = { rejections: await pgQuery(url, "SELECT * FROM rejected_records"), positionless: false };
        const upgraded = await scenario(dir, pgDb(url), false);
        const reference = await fresh("postgres", true);
        assert.deepEqual(
          upgraded.schema,
          reference.schema,
          `${name}: the columns, constraints and indexes of a fresh one`,
        );
        assertSameAsFresh(upgraded, before, reference, dir, name);
      });
    });
  });
}
