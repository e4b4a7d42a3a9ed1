/**
 * What history is kept: saved logs for `LOG_KEEP_DAYS` (only files named as
 * a run's log, never a symlink, a folder or another file), the drift of the
 * last `DRIFT_KEEP_RUNS` runs (both stores), and everything `status` and
 * `replay` read (runs, the registry, the quarantine) for good.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { pruneLogs, savedLogTime } from "../mod/commands/log.ts";
import { RECORD_TYPES } from "../mod/records/mod.ts";
import { runPipeline } from "../mod/run/pipeline.ts";
import { HttpSource } from "../mod/source/http/http.ts";
import { PostgresStore } from "../mod/store/postgres/mod.ts";
import { SqliteStore } from "../mod/store/sqlite/mod.ts";
import type { Store } from "../mod/store/store.ts";
import { startBucketServer } from "./bucket_server.ts";
import { cli, DENO_CACHE_ENV, PIPELINE_DEFAULTS, query, ROOT, type Row, withTempDir, writeConfig } from "./helpers.ts";
import { pgQuery, pgTest, withPgDatabase } from "./pg.ts";

const NOW = new Date(Date.UTC(2026, 11, 6, 12, 0, 0));
const DAY = 86_400_000;
/** A saved log's name for a run `days` days before {@linkcode NOW}. */
const logName = (days: number) =>
  `${new Date(NOW.getTime() - days * DAY).toISOString().slice(0, 19).replace("T", "_").replaceAll(":", "-")}.log`;

Deno.test("savedLogTime() reads only a run's log name, and only a time that can be", () => {
  assert.equal(savedLogTime("2026-12-06_12-00-00.log"), NOW.getTime());
  for (
    const name of [
      "2026-12-06_12-00-00.log.gz",
      "2026-12-06_12-00-00.LOG",
      "x2026-12-06_12-00-00.log",
      "2026-12-06_12-00-0.log",
      "2026-12-06 12-00-00.log",
      "2026-02-30_12-00-00.log",
      "2026-12-06_24-00-00.log",
      "２０２６-12-06_12-00-00.log",
      "2026-12-06_12-00-00.log\n",
      ".2026-12-06_12-00-00.log",
    ]
  ) {
    assert.equal(savedLogTime(name), undefined, JSON.stringify(name));
  }
});

Deno.test("pruneLogs() deletes only run logs older than the bound: not newer ones, symlinks, folders or other files", async () => {
  await withTempDir(async (dir) => {
    const logs = join(dir, "logs");
    const outside = join(dir, "outside.log");
    await Deno.mkdir(logs);
    await Deno.writeTextFile(outside, "not a log of this folder");
    const files = {
      old: logName(31),
      older: logName(400),
      recent: logName(29),
      future: logName(-1),
      almost: `${logName(40)}.gz`,
      upper: logName(40).replace(".log", ".LOG"),
      other: "notes.txt",
    };
    for (const name of Object.values(files)) await Deno.writeTextFile(join(logs, name), name);
    const link = logName(50);
    await Deno.symlink(outside, join(logs, link));
    const folder = logName(60);
    await Deno.mkdir(join(logs, folder));
    await Deno.writeTextFile(join(logs, folder, "inside.txt"), "kept");

    const pruned = await pruneLogs(logs, { keepDays: 30, now: NOW });
    assert.deepEqual([...pruned.deleted].sort(), [files.old, files.older].sort());
    assert.deepEqual(pruned.failed, []);
    const left = (await Array.fromAsync(Deno.readDir(logs))).map((e) => e.name).sort();
    assert.deepEqual(
      left,
      [files.recent, files.future, files.almost, files.upper, files.other, link, folder].sort(),
    );
    assert.equal(await Deno.readTextFile(outside), "not a log of this folder");
    assert.equal(await Deno.readTextFile(join(logs, folder, "inside.txt")), "kept");
    // 0 keeps every log; a folder that is not there deletes nothing and says so.
    assert.deepEqual(await pruneLogs(logs, { keepDays: 0, now: NOW }), { deleted: [], failed: [] });
    const missing = await pruneLogs(join(dir, "none"), { keepDays: 1, now: NOW });
    assert.deepEqual(missing.deleted, []);
    assert.equal(missing.failed.length, 1);
  });
});

Deno.test("pruneLogs() reports the logs it may not delete and throws nothing", async () => {
  await withTempDir(async (dir) => {
    const logs = join(dir, "logs");
    await Deno.mkdir(logs);
    await Deno.writeTextFile(join(logs, logName(40)), "old");
    // A process that may read the folder but not write it (root ignores a folder's mode; Deno's permissions do not).
    const script = `import { pruneLogs } from ${JSON.stringify(join(ROOT, "mod", "commands", "log.ts"))};
      const r = await pruneLogs(${JSON.stringify(logs)}, { keepDays: 30, now: new Date(${NOW.getTime()}) });
      console.log(JSON.stringify(r));`;
    const file = join(dir, "prune.ts");
    await Deno.writeTextFile(file, script);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--cached-only",
        "--no-prompt",
        `--config=${join(ROOT, "deno.json")}`,
        `--allow-read=${ROOT},${dir}`,
        "--allow-env",
        file,
      ],
      env: { ...DENO_CACHE_ENV, NO_COLOR: "1" },
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder();
    assert.equal(out.code, 0, text.decode(out.stderr));
    const result = JSON.parse(text.decode(out.stdout));
    assert.deepEqual(result.deleted, []);
    assert.equal(result.failed.length, 1);
    assert.equal(result.failed[0].name, logName(40));
    assert.ok(await Deno.stat(join(logs, logName(40))));
  });
});

Deno.test("a run with SAVE_LOG deletes the saved logs older than LOG_KEEP_DAYS, and keeps them all with 0", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "bucket");
    await Deno.mkdir(bucket);
    await Deno.writeTextFile(join(bucket, "files_list.data"), "");
    const logs = join(dir, "logs");
    await Deno.mkdir(logs);
    const now = new Date();
    const name = (days: number) =>
      `${new Date(now.getTime() - days * DAY).toISOString().slice(0, 19).replace("T", "_").replaceAll(":", "-")}.log`;
    for (const days of [3, 40, 400]) await Deno.writeTextFile(join(logs, name(days)), "old run");
    await Deno.writeTextFile(join(logs, "keep.txt"), "mine");
    const profile = `[p]\nBUCKET_NAME = ${bucket}\nDATABASE_NAME = db.sqlite3\nSAVE_LOG = yes\nLOG_DIR = ${logs}\n`;
    const keepAll = await writeConfig(dir, `${profile}LOG_KEEP_DAYS = 0\n`);
    assert.equal((await cli(["--config", keepAll, "--profile", "p", "--quiet"])).code, 0);
    assert.equal((await Array.fromAsync(Deno.readDir(logs))).length, 5, "LOG_KEEP_DAYS = 0 deleted a log");
    const config = await writeConfig(dir, profile);
    const out = await cli(["--config", config, "--profile", "p", "--quiet"]);
    assert.equal(out.code, 0, out.stderr);
    const left = (await Array.fromAsync(Deno.readDir(logs))).map((e) => e.name);
    assert.ok(left.includes(name(3)) && left.includes("keep.txt"));
    assert.ok(!left.includes(name(40)) && !left.includes(name(400)), "the default keeps 30 days");
    // The runs' own logs (one name when both started in the same second) and the recent one.
    assert.ok(left.filter((n) => savedLogTime(n) !== undefined).length >= 2);
  });
});

Deno.test("DRIFT_KEEP_RUNS takes 0 or at least 30: status shows the last 30 runs' drift", async () => {
  await withTempDir(async (dir) => {
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ./b\nDRIFT_KEEP_RUNS = 10\n`);
    const out = await cli(["--config", config, "--profile", "p"]);
    assert.equal(out.code, 2);
    assert.match(out.stderr, /Cannot parse 'DRIFT_KEEP_RUNS' .*: expected 0 \(keep all\) or at least 30, got "10"/);
  });
});

/** A file of one song with a field the rules do not know (a drift row), new at each call. */
let files = 0;
async function addDriftFile(bucket: string): Promise<void> {
  const key = `f${++files}.data`;
  const record = { type: "song", data: { artist_name: key, title: "T", year: 2000, release: "R", genre: "pop" } };
  await Deno.writeTextFile(join(bucket, key), JSON.stringify([record]));
  const list = join(bucket, "files_list.data");
  const before = await Deno.readTextFile(list).catch(() => "");
  await Deno.writeTextFile(list, before === "" ? key : `${before}\n${key}`);
}

/** Five runs with drift into `open`'s store, keeping 2 runs' drift; the drift rows' runs and the runs after each. */
async function driftRuns(
  dir: string,
  open: () => Promise<Store & { close(): unknown }>,
  ask: (sql: string) => Promise<Row[]>,
) {
  const bucket = join(dir, "bucket");
  await Deno.mkdir(bucket, { recursive: true });
  const server = await startBucketServer(bucket);
  try {
    for (let i = 0; i < 5; i++) {
      await addDriftFile(bucket);
      const store = await open();
      try {
        const source = new HttpSource(new URL(server.url), { retryBaseMs: 5 });
        await runPipeline({ ...PIPELINE_DEFAULTS, source, store });
      } finally {
        await store.close();
      }
    }
  } finally {
    await server.close();
  }
  const runs = (await ask("SELECT id FROM runs ORDER BY id")).map((r) => Number(r.id));
  const drift = (await ask("SELECT DISTINCT run_id FROM run_drift ORDER BY run_id")).map((r) => Number(r.run_id));
  assert.equal(runs.length, 5, "every run is kept");
  assert.deepEqual(drift, runs.slice(-2), "the drift of the last 2 runs is kept, no other");
  assert.equal((await ask("SELECT count(*) AS n FROM processed_files"))[0]!.n, 5, "the registry is kept whole");
}

Deno.test("each commit keeps the drift of the last DRIFT_KEEP_RUNS runs, and every run (SQLite)", async () => {
  await withTempDir(async (dir) => {
    const db = join(dir, "db.sqlite3");
    await driftRuns(
      dir,
      () => Promise.resolve(SqliteStore.open(db, { types: RECORD_TYPES, driftKeepRuns: 2 })),
      (sql) => Promise.resolve(query(db, sql)),
    );
  });
});

pgTest("each commit keeps the drift of the last DRIFT_KEEP_RUNS runs, and every run", async () => {
  await withTempDir(async (dir) => {
    await withPgDatabase(async (url) => {
      await driftRuns(
        dir,
        () => PostgresStore.open(url, { types: RECORD_TYPES, driftKeepRuns: 2 }),
        (sql) => pgQuery(url, sql),
      );
    });
  });
});
