/**
 * docs/data.md "Extra", the round trip: a bucket's songs carry `mood`, which
 * the song type does not know (drift names it, `extra` keeps it); the type
 * gains it (a check, a column); the next run adds the column and fills it
 * from `extra`, with no request but the list, and the tables equal a fresh
 * load by the new type. A row whose `mood` fails the new check stays a row:
 * the column NULL, the field kept in `extra`, counted and named. On both stores.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runPipeline, type RunReport } from "../mod/run/pipeline.ts";
import { RECORD_TYPES, type RecordType } from "../mod/records/mod.ts";
import { songType } from "../mod/records/song.ts";
import { MOOD_SONGS, MOOD_TYPES } from "./mood_type.ts";
import { HttpSource } from "../mod/source/http/http.ts";
import { PostgresStore } from "../mod/store/postgres/mod.ts";
import { SqliteStore } from "../mod/store/sqlite/mod.ts";
import type { Store } from "../mod/store/store.ts";
import { filledLine } from "../mod/commands/summary.ts";
import { startBucketServer } from "./bucket_server.ts";
import { PIPELINE_DEFAULTS, query, withTempDir } from "./helpers.ts";
import { pgQuery, pgTest, withPgDatabase } from "./pg.ts";

const song = (title: string, extra: Record<string, unknown>) => ({
  type: "song",
  data: { artist_name: "A", title, year: 1, release: "r", ...extra },
});

/** Two files; the second replaces one song of the first (later file wins). */
const FILES = {
  "files_list.data": "f1.data\nf2.data\n",
  "f1.data": JSON.stringify([
    song("calm", { mood: "calm" }),
    song("tempo", { mood: "sad", tempo: 120 }),
    song("replaced", { mood: "old" }),
  ]),
  "f2.data": JSON.stringify([song("replaced", { mood: "happy", label: "x" }), song("blank", { mood: " " })]),
};

const SONGS = MOOD_SONGS;

interface Stores {
  open(types: readonly RecordType[], name: string): Promise<Store>;
  close(store: Store): Promise<void>;
  rows(name: string, sql: string): Promise<Record<string, unknown>[]>;
}

async function roundTrip(stores: Stores): Promise<void> {
  const server = await startBucketServer(await Deno.makeTempDir(), { files: FILES });
  const run = async (types: readonly RecordType[], name: string): Promise<RunReport> => {
    const store = await stores.open(types, name);
    try {
      const source = new HttpSource(new URL(server.url), { retryBaseMs: 5 });
      return await runPipeline({ ...PIPELINE_DEFAULTS, types, source, store });
    } finally {
      await stores.close(store);
    }
  };
  try {
    const first = await run(RECORD_TYPES, "kept");
    assert.ok(first.drift.some((d) => d.field === "mood" && d.kind === "unknown"), "drift names the field");
    assert.deepEqual(
      (await stores.rows("kept", "SELECT title, extra FROM songs ORDER BY title")).map((r) => r.extra),
      ['{"mood":" "}', '{"mood":"calm"}', '{"mood":"happy","label":"x"}', '{"mood":"sad","tempo":120}'],
    );
    server.requests.length = 0;
    const second = await run(MOOD_TYPES, "kept");
    assert.deepEqual(server.requests, ["files_list.data"], "nothing fetched but the list");
    assert.deepEqual(second.rederived.filled, {
      rows: 3,
      columns: ["songs.mood"],
      failed: 1,
      failedKeys: ["songs (A, blank)"],
    });
    assert.equal(
      filledLine(second.rederived.filled),
      "  filled   3 stored rows filled from extra (no fetch): songs.mood; 1 kept in extra (failing the check), " +
        "e.g. songs (A, blank)",
    );
    const fresh = await run(MOOD_TYPES, "fresh");
    assert.equal(fresh.rejected, 1, "a fresh load rejects the blank mood");
    const kept = await stores.rows("kept", SONGS);
    // The row whose mood fails the new check stays, its column NULL and its field in extra.
    assert.deepEqual(kept.filter((r) => r.title === "blank").map((r) => [r.mood, r.extra]), [[null, '{"mood":" "}']]);
    assert.deepEqual(kept.filter((r) => r.title !== "blank"), await stores.rows("fresh", SONGS));
    // A third run finds nothing left to fill.
    const third = await run(MOOD_TYPES, "kept");
    assert.deepEqual(third.rederived.filled.columns, []);
  } finally {
    await server.close();
  }
}

/**
 * Songs whose `mood` and other kept fields a re-serialization would change: an escaped value, an escaped name, a
 * repeated `mood` (its last value is the record's, as validation reads it), numbers no double holds.
 */
const HOSTILE_FILES = {
  "files_list.data": "h.data\n",
  "h.data": String.raw`[
    {"type": "song", "data": {"artist_name": "A", "title": "escaped", "year": 1, "release": "r",
      "mood": "caf\u00e9 \/ \"q\"", "big": 1e400, "long": 12345678901234567890123}},
    {"type": "song", "data": {"mood": "first", "artist_name": "A", "title": "repeated", "1": 1.50, "year": 1,
      "release": "r", "mood": "last", "tail": -0}},
    {"type": "song", "data": {"artist_name": "A", "title": "escaped name", "year": 1, "release": "r",
      "m\u006fod": "calm", "2": 1E5}},
    {"type": "song", "data": {"artist_name": "A", "title": "blank last", "year": 1, "release": "r",
      "mood": "fine", "mood": " ", "x": "\ud800"}}
  ]`,
};

/** The hostile round trip: each filled row equals a fresh load's, `extra` as written; the failing one is kept. */
async function hostileRoundTrip(stores: Stores): Promise<void> {
  const server = await startBucketServer(await Deno.makeTempDir(), { files: HOSTILE_FILES });
  const run = async (types: readonly RecordType[], name: string): Promise<RunReport> => {
    const store = await stores.open(types, name);
    try {
      const source = new HttpSource(new URL(server.url), { retryBaseMs: 5 });
      return await runPipeline({ ...PIPELINE_DEFAULTS, types, source, store });
    } finally {
      await stores.close(store);
    }
  };
  try {
    await run(RECORD_TYPES, "kept");
    const second = await run(MOOD_TYPES, "kept");
    assert.deepEqual(second.rederived.filled.rows, 3);
    assert.deepEqual(second.rederived.filled.failedKeys, ["songs (A, blank last)"]);
    const fresh = await run(MOOD_TYPES, "fresh");
    assert.equal(fresh.rejected, 1, "a fresh load rejects the blank last mood");
    const kept = await stores.rows("kept", SONGS);
    assert.deepEqual(kept.map((r) => [r.title, r.mood, r.extra]), [
      ["blank last", null, String.raw`{"mood":"fine","mood":" ","x":"\ud800"}`],
      ["escaped", 'café / "q"', '{"big":1e400,"long":12345678901234567890123}'],
      ["escaped name", "calm", '{"2":1E5}'],
      ["repeated", "last", '{"1":1.50,"tail":-0}'],
    ]);
    assert.deepEqual(kept.filter((r) => r.title !== "blank last"), await stores.rows("fresh", SONGS));
  } finally {
    await server.close();
  }
}

Deno.test("sqlite: a field filled from extra gets a fresh load's value; the other kept fields stay as written", async () => {
  await withTempDir(async (dir) => {
    await hostileRoundTrip({
      open: (types, name) => Promise.resolve(SqliteStore.open(join(dir, `${name}.sqlite3`), { types })),
      close: (store) => Promise.resolve((store as SqliteStore).close()),
      rows: (name, sql) => Promise.resolve(query(join(dir, `${name}.sqlite3`), sql)),
    });
  });
});

pgTest("a field filled from extra gets a fresh load's value; the other kept fields stay as written", async () => {
  await withPgDatabase(async (kept) => {
    await withPgDatabase(async (fresh) => {
      const url = (name: string) => name === "fresh" ? fresh : kept;
      await hostileRoundTrip({
        open: (types, name) => PostgresStore.open(url(name), { types }),
        close: (store) => (store as PostgresStore).close(),
        rows: async (name, sql) =>
          (await pgQuery(url(name), sql)).map((r) => ({
            ...r,
            source_pos: r.source_pos === null ? null : Number(r.source_pos),
            year: Number(r.year),
          })),
      });
    });
  });
});

Deno.test("sqlite: a field the type gains gets its column, filled from extra without a fetch", async () => {
  await withTempDir(async (dir) => {
    await roundTrip({
      open: (types, name) => Promise.resolve(SqliteStore.open(join(dir, `${name}.sqlite3`), { types })),
      close: (store) => Promise.resolve((store as SqliteStore).close()),
      rows: (name, sql) => Promise.resolve(query(join(dir, `${name}.sqlite3`), sql)),
    });
  });
});

pgTest("a field the type gains gets its column, filled from extra without a fetch", async () => {
  await withPgDatabase(async (kept) => {
    await withPgDatabase(async (fresh) => {
      const url = (name: string) => name === "fresh" ? fresh : kept;
      await roundTrip({
        open: (types, name) => PostgresStore.open(url(name), { types }),
        close: (store) => (store as PostgresStore).close(),
        rows: async (name, sql) =>
          (await pgQuery(url(name), sql)).map((r) => ({
            ...r,
            source_pos: r.source_pos === null ? null : Number(r.source_pos),
            year: Number(r.year),
          })),
      });
    });
  });
});

Deno.test("a column dropped by hand is still refused: the columns are recorded", async () => {
  await withTempDir(async (dir) => {
    const server = await startBucketServer(await Deno.makeTempDir(), { files: FILES });
    try {
      const db = join(dir, "db.sqlite3");
      const run = async () => {
        const store = SqliteStore.open(db, { types: RECORD_TYPES });
        try {
          const source = new HttpSource(new URL(server.url), { retryBaseMs: 5 });
          return await runPipeline({ ...PIPELINE_DEFAULTS, source, store });
        } finally {
          store.close();
        }
      };
      await run();
      assert.deepEqual(
        JSON.parse(query(db, "SELECT value FROM meta WHERE name = 'data_columns'")[0]!.value as string).songs,
        songType.columns.map((c) => c.name),
      );
      const { DatabaseSync } = await import("node:sqlite");
      const w = new DatabaseSync(db);
      w.exec("ALTER TABLE songs DROP COLUMN release");
      w.close();
      await assert.rejects(run, /lost column release/);
    } finally {
      await server.close();
    }
  });
});
