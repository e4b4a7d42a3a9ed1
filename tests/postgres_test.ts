/**
 * The PostgreSQL store gives what the SQLite store gives: the same scenarios
 * run against both, and their tables, registries, rejections and reports
 * compare equal (SQLite's own tests pin the exact values).
 */
import assert from "node:assert/strict";
import { MIGRATIONS } from "../mod/store/migrations.ts";
import type { StatusReport } from "../mod/store/status.ts";
import fc from "fast-check";
import { join } from "node:path";
import { runPipeline, type RunReport } from "../mod/run/pipeline.ts";
import { RECORD_TYPES } from "../mod/records/mod.ts";
import { FileSource } from "../mod/source/file/file.ts";
import { HttpSource } from "../mod/source/http/http.ts";
import type { BucketSource } from "../mod/source/source.ts";
import { PostgresStore } from "../mod/store/postgres/mod.ts";
import { SqliteStore } from "../mod/store/sqlite/mod.ts";
import type { Store } from "../mod/store/store.ts";
import { startBucketServer } from "./bucket_server.ts";
import {
  CASES,
  cli,
  type Dump,
  dumpDatabase,
  PIPELINE_DEFAULTS,
  type RunOnceOptions,
  withTempDir,
  writeConfig,
} from "./helpers.ts";
import { MemorySource, randomFile } from "./memory_source.ts";
import { canonicalDump, pgDump, pgQuery, pgTest, withPgDatabase } from "./pg.ts";

const BASIC = join(CASES, "basic");
const [A, B, C] = [
  "a1b2c3d4-0001-4000-8000-000000000001.data",
  "b1b2c3d4-0002-4000-8000-000000000002.data",
  "c1b2c3d4-0003-4000-8000-000000000003.data",
];

/** What a report says, without times and ids that differ between equivalent runs. */
function comparable(report: RunReport) {
  const { startedAt: _s, finishedAt: _f, runId: _r, lockWaitMs: _l, ...rest } = report;
  return rest;
}

type Scenario = (run: (source: BucketSource, options?: RunOnceOptions) => Promise<RunReport>) => Promise<unknown>;

/**
 * Runs `scenario` against a new SQLite file and a new PostgreSQL database and
 * checks that both end with the same content and reports; returns the dump.
 */
async function sameOnBoth(scenario: Scenario, after: (url: string, dump: Dump) => Promise<void> = async () => {}) {
  return await withTempDir(async (dir) => {
    const dbPath = join(dir, "db.sqlite3");
    const sqlite = SqliteStore.open(dbPath, { types: RECORD_TYPES });
    const onSqlite: unknown[] = [];
    const runWith = (store: Store, log: unknown[]) => async (source: BucketSource, options: RunOnceOptions = {}) => {
      const report = await runPipeline({ ...PIPELINE_DEFAULTS, source, store, ...options });
      log.push(comparable(report));
      return report;
    };
    try {
      onSqlite.push(await scenario(runWith(sqlite, onSqlite)));
    } finally {
      sqlite.close();
    }
    return await withPgDatabase(async (url) => {
      const pg = await PostgresStore.open(url, { types: RECORD_TYPES });
      const onPg: unknown[] = [];
      try {
        onPg.push(await scenario(runWith(pg, onPg)));
      } finally {
        await pg.close();
      }
      assert.deepEqual(onPg, onSqlite, "the reports differ");
      const dump = await pgDump(url);
      assert.deepEqual(dump, canonicalDump(dumpDatabase(dbPath)), "the databases differ");
      // Every registry column, origin included.
      assert.deepEqual(
        await pgDump(url, { fullRegistry: true }),
        canonicalDump(dumpDatabase(dbPath, { fullRegistry: true })),
        "the registries differ",
      );
      // The registry's order too (what processed.json is written in).
      const sqliteKeys = SqliteStore.open(dbPath, { types: RECORD_TYPES, readOnly: true });
      const pgKeys = await PostgresStore.open(url, { types: RECORD_TYPES });
      try {
        assert.deepEqual(
          await pgKeys.registeredKeys(),
          await sqliteKeys.registeredKeys(),
          "the registry order differs",
        );
        // The status report: one set of queries for both stores.
        const comparable = (r: StatusReport) => ({
          registry: r.registry,
          tables: r.tables,
          topRejections: r.topRejections.map((t) => ({ ...t, count: Number(t.count) })),
          invalidKeys: r.invalidKeys,
          // Run ids differ: a PostgreSQL sequence is not rolled back with a no-op run, SQLite reuses the id.
          recentIssues: r.recentIssues.map(({ key, outcome, reason }) => ({ key, outcome, reason })),
          runs: r.runs.length,
          history: r.history.map(({ id: _id, ...run }) => run).map(({ started_at: _s, finished_at: _f, ...run }) =>
            run
          ),
          lastRunFiles: r.lastRunFiles,
          missingKeys: r.missingKeys,
          drift: r.drift.map(({ lastRun: _l, ...d }) => d),
        });
        assert.deepEqual(comparable(await pgKeys.status()), comparable(await sqliteKeys.status()), "status differs");
      } finally {
        sqliteKeys.close();
        await pgKeys.close();
      }
      await after(url, dump);
    });
  });
}

pgTest("exact rows, rejections, a rerun and --force: the same as SQLite", async () => {
  const server = await startBucketServer(BASIC, { etags: true });
  try {
    await sameOnBoth(async (run) => {
      const source = new HttpSource(new URL(server.url), { retryBaseMs: 5 });
      // The case's "1994" year is drift: compared between the stores with the rest.
      assert.deepEqual((await run(source)).drift.map((d) => `${d.type}.${d.field}`), ["song.year"]);
      await run(source); // the list answers 304: nothing to do
      await run(source, { force: true });
      await run(source, { concurrency: 1, force: true });
    }, async (url, dump) => {
      assert.ok(dump.songs.length > 0 && dump.movies.length > 0 && dump.apps.length > 0);
      assert.ok(dump.rejected_records.length > 0);
      assert.deepEqual(await pgQuery(url, "SELECT count(*) AS n FROM runs"), [{ n: 3 }]);
      assert.deepEqual(await pgQuery(url, "SELECT type, field, kind, seen, records FROM run_drift WHERE run_id = 1"), [
        { type: "song", field: "year", kind: "type", seen: "string", records: 1 },
      ]);
      assert.deepEqual(
        await pgQuery(url, "SELECT version FROM schema_version ORDER BY version"),
        MIGRATIONS.map((m) => ({ version: m.version })),
      );
      assert.deepEqual(await pgQuery(url, "SELECT value FROM meta WHERE name = 'last_check_result'"), [
        { value: "list unchanged, nothing pending" },
      ]);
    });
  } finally {
    await server.close();
  }
});

pgTest("missing and failed files, the next run, --retry-invalid and --key: the same as SQLite", async () => {
  let healthy = false;
  let fixed = false;
  const song = { data: { artist_name: "X", title: "Fixed", year: 1, release: "" }, type: "song" };
  const server = await startBucketServer(BASIC, {
    fault: (key) => {
      if (fixed && key === C) return { status: 200, body: JSON.stringify([song]) };
      if (healthy) return undefined;
      return key === A ? { status: 404 } : key === B ? { status: 503 } : undefined;
    },
  });
  try {
    await sameOnBoth(async (run) => {
      const source = new HttpSource(new URL(server.url), { retryBaseMs: 1, retries: 1 });
      [healthy, fixed] = [false, false];
      await run(source, { missingGiveUpRuns: 2 });
      healthy = true;
      await run(source);
      fixed = true;
      await run(source, { retryInvalid: true });
      // Re-loading A (before B in the list) leaves B's rows: the later file in list order wins in both stores.
      await run(source, { onlyKeys: [A] });
    }, async (url) => {
      const song = "SELECT source_key FROM songs WHERE title = 'Wisdom (Reprise)'";
      assert.deepEqual(await pgQuery(url, song), [{ source_key: B }]);
    });
  } finally {
    await server.close();
  }
});

pgTest("a key missing in MISSING_GIVE_UP_RUNS runs is given up; imported keys are skipped: as SQLite", async () => {
  const server = await startBucketServer(BASIC, { fault: (key) => key === A ? { status: 404 } : undefined });
  try {
    await sameOnBoth(async (run) => {
      const source = new HttpSource(new URL(server.url), { retryBaseMs: 1 });
      const first = await run(source, { missingGiveUpRuns: 2, importKeys: [B] });
      const second = await run(source, { missingGiveUpRuns: 2 });
      return { first: first.missingKeys, imported: first.imported, gaveUp: second.gaveUpKeys };
    });
  } finally {
    await server.close();
  }
});

pgTest("the hostile bucket: the same rows and rejections, and a NUL in text becomes a rejection", async () => {
  await withTempDir(async (dir) => {
    const db = join(dir, "db.sqlite3");
    const sqlite = SqliteStore.open(db, { types: RECORD_TYPES });
    try {
      await runPipeline({ ...PIPELINE_DEFAULTS, source: new FileSource(join(CASES, "hostile")), store: sqlite });
    } finally {
      sqlite.close();
    }
    await withPgDatabase(async (url) => {
      const pg = await PostgresStore.open(url, { types: RECORD_TYPES });
      let report: RunReport;
      try {
        report = await runPipeline({ ...PIPELINE_DEFAULTS, source: new FileSource(join(CASES, "hostile")), store: pg });
      } finally {
        await pg.close();
      }
      assert.equal(report.status, "ok");
      const onPg = await pgDump(url);
      const onSqlite = canonicalDump(dumpDatabase(db));
      const hasNul = (r: Record<string, unknown>) => Object.values(r).some((v) => String(v).includes("\u0000"));
      // node:sqlite stops reading text at a NUL: pick the row by what precedes it.
      const nulRows = onSqlite.songs.filter((s) => String(s.title).startsWith("nul"));
      assert.equal(nulRows.length, 1);
      assert.deepEqual(onPg.songs, onSqlite.songs.filter((s) => !nulRows.includes(s) && !hasNul(s)));
      assert.deepEqual(onPg.movies, onSqlite.movies);
      assert.deepEqual(onPg.apps, onSqlite.apps);
      const extra = onPg.rejected_records.filter((r) => String(r.reason).includes("U+0000"));
      assert.equal(extra.length, 1);
      assert.match(String(extra[0]!.reason), /^title: contains U\+0000 \(NUL\), which PostgreSQL text cannot store$/);
      assert.deepEqual(onPg.rejected_records.filter((r) => !extra.includes(r)), onSqlite.rejected_records);
    });
  });
});

pgTest(
  "staged parts, invalid files after parts and later-file-wins: the same as SQLite on random buckets",
  async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(randomFile({ nul: false }), { minLength: 1, maxLength: 6 }), async (texts) => {
        const files = new Map(texts.map((t, i) => [`f${i}.data`, t]));
        await sameOnBoth(async (run) => {
          for (const force of [false, true]) {
            await run(new MemorySource(files), { streamThresholdBytes: 400, partElements: 3, concurrency: 3, force });
          }
        });
      }),
      { numRuns: 10 },
    );
  },
);

pgTest("the CLI with DATABASE_URL: a run, status --json, --dry-run, and a wrong URL exits 2", async () => {
  const server = await startBucketServer(BASIC);
  try {
    await withTempDir(async (dir) => {
      await withPgDatabase(async (url) => {
        const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\n`);
        // The plain variable, as Deno Deploy sets it.
        const env = { DATABASE_URL: url };
        const args = ["--config", config, "--profile", "p"];
        const run = await cli(args, { env });
        assert.equal(run.code, 0, run.stderr);
        assert.match(run.stderr, /into postgres:\/\/\*\*\*@127\.0\.0\.1:\d+\/bl_test_/);
        const status = JSON.parse((await cli([...args, "status", "--json"], { env })).stdout);
        assert.deepEqual(status.registry, { invalid: 1, loaded: 2 });
        assert.equal(status.runs.length, 1);
        assert.ok(status.tables.songs > 0);
        assert.equal(status.invalidKeys[0].key, C);
        const dry = await cli([...args, "--dry-run", "--retry-invalid"], { env });
        assert.equal(dry.code, 0, dry.stderr);
        assert.match(dry.stdout, new RegExp(`${C}`));
        // DATABASE_NAME set explicitly keeps SQLite even with DATABASE_URL in the environment.
        const sqlite = await cli([...args, "--dry-run"], { env: { ...env, BUCKETLOAD_DATABASE_NAME: "x.sqlite3" } });
        assert.match(sqlite.stdout, /3 to fetch|3 new/);
        const bad = new URL(url);
        bad.port = "1";
        const refused = await cli(args, { env: { DATABASE_URL: bad.toString() } });
        assert.equal(refused.code, 2);
        assert.match(refused.stderr, /Cannot connect to PostgreSQL postgres:\/\/\*\*\*@127\.0\.0\.1:1\/.*refused/);
        const notPg = await cli(args, { env: { BUCKETLOAD_DATABASE_URL: "mysql://x@y/z" } });
        assert.equal(notPg.code, 2);
        assert.match(notPg.stderr, /BUCKETLOAD_DATABASE_URL: expected a postgres:\/\/ or postgresql:\/\/ URL/);
      });
    });
  } finally {
    await server.close();
  }
});

pgTest("status names a run in progress once: since its start, with its run id and backend pid", async () => {
  const server = await startBucketServer(BASIC);
  try {
    await withTempDir(async (dir) => {
      await withPgDatabase(async (url) => {
        const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_URL = ${url}\n`);
        const args = ["--config", config, "--profile", "p"];
        assert.equal((await cli(args)).code, 0);
        const store = await PostgresStore.open(url, { types: RECORD_TYPES });
        try {
          const startedAt = new Date(Date.UTC(2026, 11, 1, 11, 27, 34));
          // A run holding its transaction (run 2), and a replay, whose id is drawn at its commit.
          const run = await store.begin(startedAt, { bucket: server.url });
          const replay = await store.begin(startedAt, { bucket: server.url, idAtCommit: true });
          try {
            const text = await cli(["status", ...args]);
            assert.equal(text.code, 0, text.stderr);
            const line = text.stdout.split("\n").find((l) => l.startsWith("Run in progress:")) ?? "";
            assert.match(line, /^Run in progress: since 2026-12-01T11:27:34\.000Z \(/, line);
            assert.doesNotMatch(text.stdout, /since run/);
            // Each session as SQLite's lock note has it: its start, then who (the replay has no id yet).
            const sessions = line.replace("Run in progress: since ", "").split("; ").sort();
            assert.equal(sessions.length, 2, line);
            assert.match(sessions[0]!, /^2026-12-01T11:27:34\.000Z \(backend pid \d+\)$/);
            assert.match(sessions[1]!, /^2026-12-01T11:27:34\.000Z \(run 2, backend pid \d+\)$/);
            const json = JSON.parse((await cli(["status", "--json", ...args])).stdout);
            assert.match(json.running, /2026-12-01T11:27:34\.000Z \(run 2, backend pid \d+\)/);
          } finally {
            await replay.rollback();
            await run.rollback();
          }
        } finally {
          await store.close();
        }
        const after = await cli(["status", ...args]);
        assert.doesNotMatch(after.stdout, /Run in progress/);
      });
    });
  } finally {
    await server.close();
  }
});
