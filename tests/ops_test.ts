import { existsSync } from "node:fs";
import assert from "node:assert/strict";
import { join } from "node:path";
import { generateBucket } from "../tools/gen_bucket.ts";
import { nonOverlapping } from "../main.ts";
import { ProgressLine, renderProgress } from "../mod/cli/progress.ts";
import { startBucketServer } from "./bucket_server.ts";
import { CASES, cli, dumpDatabase, LineWatcher, query, ROOT, spawnCli, withTempDir, writeConfig } from "./helpers.ts";

const BASIC = join(CASES, "basic");
const B = "b1b2c3d4-0002-4000-8000-000000000002.data";

async function sha(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test("status: prints runs, registry, top reasons and problem keys, read-only; --json is one document", async () => {
  let down = true;
  const server = await startBucketServer(BASIC, { fault: (key) => down && key === B ? { status: 404 } : undefined });
  try {
    await withTempDir(async (dir) => {
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\n`);
      const args = ["--config", config, "--profile", "p"];
      const empty = await cli(["status", ...args]);
      assert.equal(empty.code, 0, empty.stderr);
      assert.match(empty.stdout, /No runs yet/);
      assert.equal((await cli(args)).code, 0);
      down = false;
      assert.equal((await cli(args)).code, 0);
      const db = join(dir, "db.sqlite3");
      const before = await sha(db);
      const text = await cli(["status", ...args]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /Last 2 runs:/);
      assert.match(text.stdout, /Registry: 1 invalid, 2 loaded/);
      assert.match(text.stdout, /Top rejection reasons:\n(.*\n)* +1 {2}year: expected an integer 0–9999\n/);
      assert.match(text.stdout, /run 1 {2}missing {2}b1b2c3d4-0002-4000-8000-000000000002\.data: HTTP 404/);
      assert.match(text.stdout, /run 2 {2}refused {2}\.\.\/escape\.data/);
      const json = await cli(["status", "--json", ...args]);
      const report = JSON.parse(json.stdout);
      assert.deepEqual(report.runs.map((r: { id: number }) => r.id), [2, 1]);
      assert.deepEqual(report.registry, { invalid: 1, loaded: 2 });
      assert.equal(report.topRejections.length, 5);
      assert.equal(await sha(db), before, "status modified the database");
    });
  } finally {
    await server.close();
  }
});

Deno.test("--dry-run: reports each key's fate, fetches only the list and writes nothing", async () => {
  const server = await startBucketServer(BASIC);
  try {
    await withTempDir(async (dir) => {
      const config = await writeConfig(
        dir,
        `[p]\nBUCKET_NAME = ${server.url}\nPROCESSED_FILES_FILENAME = processed.json\nSAVE_LOG = yes\n`,
      );
      const args = ["--config", config, "--profile", "p"];
      const fresh = await cli(["--dry-run", ...args]);
      assert.equal(fresh.code, 0, fresh.stderr);
      assert.deepEqual(server.requests, ["files_list.data"]);
      assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["config.ini"], "a dry run wrote a file");
      assert.match(fresh.stdout, /new +"a1b2c3d4-0001-4000-8000-000000000001\.data" +new: would be fetched/);
      assert.match(fresh.stdout, /refused +"\.\.\/escape\.data" +refused: has an empty/);
      assert.match(
        fresh.stdout,
        /3 to fetch \(3 new, 0 re-fetched\), 0 already processed, 1 refused, 1 duplicate lines/,
      );

      assert.equal((await cli(args)).code, 0);
      const db = join(dir, "db.sqlite3");
      const before = [await sha(db), await sha(join(dir, "processed.json"))];
      const logsBefore = [...Deno.readDirSync(join(dir, "logs"))].length;
      server.requests.length = 0;
      const again = await cli(["--dry-run", ...args]);
      assert.match(
        again.stdout,
        /processed +"a1b2c3d4-0001-4000-8000-000000000001\.data" +already processed \(--force would re-fetch it\)/,
      );
      assert.match(again.stdout, /0 to fetch \(0 new, 0 re-fetched\), 3 already processed/);
      const forced = await cli(["--dry-run", "--force", ...args]);
      assert.match(
        forced.stdout,
        /refetch +"c1b2c3d4-0003-4000-8000-000000000003\.data" +already processed: would be re-fetched/,
      );
      assert.deepEqual(server.requests, ["files_list.data", "files_list.data"]);
      assert.deepEqual([await sha(db), await sha(join(dir, "processed.json"))], before);
      assert.equal([...Deno.readDirSync(join(dir, "logs"))].length, logsBefore);
    });
  } finally {
    await server.close();
  }
});

Deno.test("processed.json: exactly the registry's keys, by the run that last registered each, then by key", async () => {
  await withTempDir(async (dir) => {
    const [A, C] = ["a1b2c3d4-0001-4000-8000-000000000001.data", "c1b2c3d4-0003-4000-8000-000000000003.data"];
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${BASIC}\nPROCESSED_FILES_FILENAME = processed.json\n`);
    const args = ["--config", config, "--profile", "p"];
    const file = join(dir, "processed.json");
    // A key the file lists but no database row backs: not imported (no take-over), and not written back.
    await Deno.writeTextFile(file, JSON.stringify(["zz-from-elsewhere.data"]));
    assert.equal((await cli(args)).code, 0);
    const read = async () => JSON.parse(await Deno.readTextFile(file));
    // Run 1 registered the three (loaded and invalid alike): by key.
    assert.deepEqual(await read(), [A, B, C]);
    assert.equal(dumpDatabase(join(dir, "db.sqlite3")).processed_files.length, 3);
    // Run 2 registers A again: it moves after the keys run 1 registered (not the order first registered).
    assert.equal((await cli([...args, "--key", A])).code, 0);
    assert.deepEqual(await read(), [B, C, A]);
    // The key's documentation says so (docs/configuration.md is generated from it).
    const doc = await Deno.readTextFile(join(ROOT, "docs", "configuration.md"));
    const row = doc.split("\n").find((l) => l.startsWith("| `PROCESSED_FILES_FILENAME`")) ?? "";
    assert.match(row, /\*\*imports\*\* its keys .*only when it takes over the original's database/);
    assert.match(row, /exactly the registry's keys .*, ordered by the run that last registered each, then by key/);
    assert.doesNotMatch(row, /Before each run|no key is ever dropped/);
  });
});

Deno.test("--log-format json: every stderr line is a JSON object with structured fields", async () => {
  await withTempDir(async (dir) => {
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${BASIC}\n`);
    const run = await cli(["--config", config, "--profile", "p", "--log-format", "json", "--log-level", "debug"]);
    assert.equal(run.code, 0, run.stderr);
    const lines = run.stderr.trim().split("\n").map((l) => JSON.parse(l));
    const processed = lines.filter((l) => String(l.message).startsWith("Processed"));
    assert.equal(processed.length, 3);
    for (const l of processed) {
      assert.equal(typeof l.properties.key, "string");
      assert.equal(typeof l.properties.bytes, "number");
      assert.equal(l.properties.run_id, 1);
      assert.ok(["loaded", "invalid"].includes(l.properties.status));
    }
    assert.ok(lines.some((l) => l.level === "WARN" && l.properties.key === "../escape.data"));
  });
});

Deno.test("BUCKETLOAD_CONFIG and BUCKETLOAD_PROFILE choose the file and profile; flags win", async () => {
  await withTempDir(async (dir) => {
    const config = await writeConfig(
      dir,
      `[a]\nBUCKET_NAME = ${BASIC}\nDATABASE_NAME = a.sqlite3\n[b]\nBUCKET_NAME = ${BASIC}\nDATABASE_NAME = b.sqlite3\n`,
    );
    const env = { BUCKETLOAD_CONFIG: config, BUCKETLOAD_PROFILE: "a", BUCKETLOAD_CONCURRENCY: "2" };
    assert.equal((await cli([], { env, cwd: dir })).code, 0);
    assert.equal((await cli(["--profile", "b"], { env, cwd: dir })).code, 0);
    assert.equal(query(join(dir, "a.sqlite3"), "SELECT count(*) n FROM runs")[0]!.n, 1);
    assert.equal(query(join(dir, "b.sqlite3"), "SELECT count(*) n FROM runs")[0]!.n, 1);
    const bad = await cli([], { env: { ...env, BUCKETLOAD_CONCURRENCY: "zero" }, cwd: dir });
    assert.equal(bad.code, 2);
    assert.match(
      bad.stderr.trim(),
      /^bucketload: Cannot parse environment variable BUCKETLOAD_CONCURRENCY: .*got "zero"$/,
    );
  });
});

Deno.test("SIGTERM and SIGINT stop a run, roll it back and exit 143/130", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "bucket");
    await generateBucket(bucket, { files: 10, records: 50, seed: 9 });
    const server = await startBucketServer(bucket, { latencyMs: (k) => k === "files_list.data" ? 0 : 200 });
    try {
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nCONCURRENCY = 1\nLOG_LEVEL = debug\n`);
      const db = join(dir, "db.sqlite3");
      for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
        const child = spawnCli(["--config", config, "--profile", "p"]);
        const stderr = new LineWatcher(child.stderr);
        await stderr.waitFor(/Processed /, 2);
        child.kill(signal);
        const status = await child.status;
        await stderr.drain();
        await child.stdout.cancel();
        assert.equal(status.code, code, signal);
        // The first run created the database file; rolled back, it leaves none behind.
        assert.equal(existsSync(db), false, `${signal}: something was committed`);
      }
      const finish = await cli(["--config", config, "--profile", "p"]);
      assert.equal(finish.code, 0, finish.stderr);
      assert.equal(dumpDatabase(db).processed_files.length, 10);
    } finally {
      await server.close();
    }
  });
});

Deno.test("renderProgress() shows files, records, rate and ETA", () => {
  assert.equal(
    renderProgress({ filesDone: 5, filesTotal: 20, records: 5000 }, 10),
    "[######------------------] 5/20 files  5,000 records  500 rec/s  ETA 00:30",
  );
  assert.equal(
    renderProgress({ filesDone: 0, filesTotal: 0, records: 0 }, 0),
    `[${"#".repeat(24)}] 0/0 files  0 records  0 rec/s  ETA --:--`,
  );
});

Deno.test("ProgressLine writes log lines above the bar and redraws it", () => {
  const written: string[] = [];
  let now = 0;
  const line = new ProgressLine({ write: (t) => written.push(t), now: () => now, intervalMs: 100 });
  line.writeAbove("before\n");
  line.update({ filesDone: 1, filesTotal: 4, records: 10 });
  now = 50;
  line.update({ filesDone: 2, filesTotal: 4, records: 20 });
  line.writeAbove("log line\n");
  line.clear();
  assert.equal(written[0], "before\n");
  const CLEAR = "\r\x1b[2K";
  assert.ok(written[1]!.startsWith(`${CLEAR}[######---`), written[1]);
  assert.match(written[1]!, /\] 1\/4 files/);
  assert.equal(written.length, 4, "an update inside the interval redrew the bar");
  assert.ok(written[2]!.startsWith(`${CLEAR}log line\n[######`), written[2]);
  assert.equal(written[3], "\r\x1b[2K");
});

Deno.test("nonOverlapping() skips a tick while the previous run is going, and survives a failing run", async () => {
  let release = () => {};
  let runs = 0, skips = 0;
  const tick = nonOverlapping(async () => {
    runs++;
    await new Promise<void>((r) => (release = r));
    if (runs === 1) throw new Error("run failed");
  }, () => skips++);
  const first = tick();
  await tick();
  assert.deepEqual([runs, skips], [1, 1]);
  release();
  await assert.rejects(first, /run failed/);
  const second = tick();
  release();
  await second;
  assert.deepEqual([runs, skips], [2, 1]);
});
