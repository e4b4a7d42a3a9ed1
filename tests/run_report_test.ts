/**
 * Flags, summary, status, progress, wording and the scheduler, as issue 8
 * found them (items 13–22).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { FileSource } from "../mod/source/file/file.ts";
import { HttpSource } from "../mod/source/http/http.ts";
import { ProgressLine, renderProgress } from "../mod/cli/progress.ts";
import { startBucketServer } from "./bucket_server.ts";
import {
  cli,
  copyCase,
  LineWatcher,
  PIPELINE_DEFAULTS,
  query,
  runOnce,
  spawnCli,
  withServedCase,
  withTempDir,
  writeConfig,
} from "./helpers.ts";

Deno.test("config errors come before any log line or log file; a bad --schedule creates no log file", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const config = await writeConfig(
      dir,
      `[p]\nBUCKET_NAME = ${bucket}\nSAVE_LOG = yes\nCONCURRENCY = lots\n[q]\nBUCKET_NAME = ${bucket}\nSAVE_LOG = yes\n`,
    );
    const bad = await cli(["--config", config, "--profile", "p"]);
    assert.equal(bad.code, 2);
    assert.doesNotMatch(bad.stderr, /Logging to/);
    const schedule = await cli(["--config", config, "--profile", "q", "--schedule", "bogus"]);
    assert.equal(schedule.code, 2);
    assert.equal(schedule.stderr.trim().split("\n").length, 1, schedule.stderr);
    assert.equal(existsSync(join(dir, "logs")), false, "a log folder was created");
  });
});

Deno.test("--dry-run honours --retry-invalid and --key", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${bucket}\nDATABASE_NAME = db.sqlite3\n`);
    assert.equal((await cli(["--config", config, "--profile", "p"])).code, 0);
    const retry = await cli(["--config", config, "--profile", "p", "--dry-run", "--retry-invalid"]);
    assert.equal(retry.code, 0, retry.stderr);
    assert.match(retry.stdout, /refetch +"c1b2c3d4-0003-4000-8000-000000000003.data"/);
    assert.match(retry.stdout, /processed +"a1b2c3d4-0001-4000-8000-000000000001.data"/);
    assert.match(retry.stdout, /1 to fetch \(0 new, 1 re-fetched\)/);
    const one = await cli([
      "--config",
      config,
      "--profile",
      "p",
      "--dry-run",
      "--key",
      "a1b2c3d4-0001-4000-8000-000000000001.data",
    ]);
    assert.match(one.stdout, /refetch +"a1b2c3d4-0001/);
    assert.match(one.stdout, /skipped +"b1b2c3d4-0002/);
  });
});

Deno.test("summary: re-fetched keys are not new, rows are inserted or updated, invalid keys listed; --json", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${bucket}\nDATABASE_NAME = db.sqlite3\n`);
    await cli(["--config", config, "--profile", "p"]);
    const forced = await cli(["--config", config, "--profile", "p", "--force", "--json"]);
    assert.equal(forced.code, 0, forced.stderr);
    const summary = JSON.parse(forced.stdout);
    assert.equal(summary.status, "ok");
    assert.deepEqual(summary.files, {
      listed: 4,
      new: 0,
      refetched: 3,
      loaded: 2,
      invalid: 1,
      missing: 0,
      failed: 0,
      refused: 1,
      claimedElsewhere: 0,
      changed: 0,
      deleted: 0,
    });
    // The same records again: every row is an update, none is new.
    assert.deepEqual(summary.rows, { inserted: 0, updated: 9, removed: 0, rederived: 0, filled: 0 });
    assert.deepEqual(summary.invalidKeys.map((k: { key: string }) => k.key), [
      "c1b2c3d4-0003-4000-8000-000000000003.data",
    ]);
    const text = await cli(["--config", config, "--profile", "p", "--retry-invalid"]);
    assert.match(text.stdout, /files +4 listed, 0 new, 1 re-fetched/);
    assert.match(
      text.stdout,
      /invalid \(--retry-invalid re-fetches\):\n +c1b2c3d4-0003-4000-8000-000000000003.data: not JSON/,
    );
    assert.equal(query(join(dir, "db.sqlite3"), "SELECT rows_updated FROM runs WHERE id = 2")[0]!.rows_updated, 9);
  });
});

Deno.test("summary: time waiting for the lock is not run time", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const dbPath = join(dir, "db.sqlite3");
    await runOnce(bucket, dbPath);
    const { SqliteStore } = await import("../mod/store/sqlite/mod.ts");
    const { RECORD_TYPES } = await import("../mod/records/mod.ts");
    const { runPipeline } = await import("../mod/run/pipeline.ts");
    const store = SqliteStore.open(dbPath, { types: RECORD_TYPES, lockTimeoutMs: 5000 });
    // Another connection holds the lock for 500 ms, from a worker: SQLite's busy wait blocks this thread.
    const locker = join(dir, "locker.ts");
    await Deno.writeTextFile(
      locker,
      `import { DatabaseSync } from "node:sqlite";
const db = new DatabaseSync(${JSON.stringify(dbPath)});
db.exec("BEGIN IMMEDIATE");
postMessage("locked");
setTimeout(() => { db.exec("ROLLBACK"); db.close(); }, 500);
`,
    );
    const other = new Worker(new URL(`file://${locker}`), { type: "module" });
    await new Promise<void>((resolve) => other.onmessage = () => resolve());
    try {
      const report = await runPipeline({
        ...PIPELINE_DEFAULTS,
        source: new FileSource(bucket),
        store,
        force: true,
        now: () => new Date(),
      });
      assert.ok(report.lockWaitMs >= 300, `waited ${report.lockWaitMs} ms`);
      assert.ok(report.finishedAt.getTime() - report.startedAt.getTime() < report.lockWaitMs, "the wait was counted");
    } finally {
      store.close();
      other.terminate();
    }
  });
});

Deno.test("status: rows per table, invalid keys, the last check, the run in progress", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const server = await startBucketServer(bucket, {
      etags: true,
      latencyMs: (k) => k.startsWith("b1b2") && slow ? 1500 : 0,
    });
    let slow = false;
    try {
      const config = await writeConfig(
        dir,
        `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = db.sqlite3\nLOG_LEVEL = debug\n`,
      );
      await cli(["--config", config, "--profile", "p"]);
      const noop = await cli(["--config", config, "--profile", "p"]);
      assert.match(noop.stdout, /nothing to do/);
      const status = JSON.parse((await cli(["--config", config, "--profile", "p", "status", "--json"])).stdout);
      assert.deepEqual(status.tables, { songs: 1, movies: 3, apps: 3 });
      assert.deepEqual(status.invalidKeys, [{
        key: "c1b2c3d4-0003-4000-8000-000000000003.data",
        reason: "not JSON: unexpected end of input",
      }]);
      assert.equal(status.lastCheck.result, "list unchanged, nothing pending");
      assert.equal(status.runs.length, 1, "the no-op run left a run row");
      assert.equal(status.running, null);
      slow = true;
      const child = spawnCli(["--config", config, "--profile", "p", "--force"]);
      const stderr = new LineWatcher(child.stderr);
      await stderr.waitFor(/Listed/);
      const during = await cli(["--config", config, "--profile", "p", "status"]);
      assert.match(during.stdout, /Run in progress: since \S+ \(pid \d+\)/);
      child.kill("SIGTERM");
      await child.status;
      await stderr.drain();
      await child.stdout.cancel();
    } finally {
      await server.close();
    }
  });
});

Deno.test("renderProgress() fits the terminal's width; ProgressLine redraws on resize", () => {
  const p = { filesDone: 120, filesTotal: 5000, records: 1_234_567 };
  for (const columns of [200, 80, 60, 40, 20, 8]) {
    const line = renderProgress(p, 12.5, columns);
    assert.ok(line.length < columns, `${columns}: ${line.length} chars: ${line}`);
  }
  assert.match(renderProgress(p, 12.5, 60), /^\[#*-*\] 120\/5000 files/);
  const written: string[] = [];
  let columns = 100;
  const bar = new ProgressLine({ write: (t) => written.push(t), now: () => 0, columns: () => columns });
  bar.update(p);
  columns = 30;
  bar.resize();
  assert.ok(written.at(-1)!.replace("\r\x1b[2K", "").length < 30, written.at(-1));
});

Deno.test("the folder source speaks of files, not HTTP codes", async () => {
  await withTempDir(async (dir) => {
    const source = new FileSource(join(dir, "no-such-folder"));
    const result = await source.get("files_list.data", { maxBytes: 1000 });
    assert.deepEqual(result, { kind: "missing", reason: "no such file" });
    const run = await cli([], {
      env: { BUCKETLOAD_BUCKET_NAME: join(dir, "no-such-folder"), BUCKETLOAD_DATABASE_NAME: join(dir, "d.sqlite3") },
      cwd: dir,
    });
    assert.equal(run.code, 1);
    assert.match(run.stdout, /cannot read the file list: no such file/);
    assert.doesNotMatch(run.stdout + run.stderr, /HTTP/);
  });
});

Deno.test("a network permission denial is not retried and says so", async () => {
  // 127.0.0.2 is outside the tests' --allow-net=127.0.0.1: Deno refuses before any packet leaves.
  const source = new HttpSource(new URL("http://127.0.0.2:8/"), { retries: 4, retryBaseMs: 1 });
  const result = await source.get("x.data", { maxBytes: 100 });
  assert.deepEqual(result, {
    kind: "failed",
    reason: "permission denied: network access to 127.0.0.2:8 is not granted",
  });
});

Deno.test("--schedule: logs the next due time, --run-at-start runs at once, a stop between runs exits 0", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${bucket}\nDATABASE_NAME = db.sqlite3\n`);
    const child = spawnCli(["--config", config, "--profile", "p", "--schedule", "0 0 1 1 *", "--run-at-start"]);
    const stderr = new LineWatcher(child.stderr);
    await stderr.waitFor(/Next run at \d{4}-01-01T00:00:00\.000Z/);
    child.kill("SIGTERM");
    const status = await child.status;
    await stderr.drain();
    await child.stdout.cancel();
    assert.equal(status.code, 0);
    assert.equal(query(join(dir, "db.sqlite3"), "SELECT count(*) n FROM runs")[0]!.n, 1);
  });
});

Deno.test("MISSING_GIVE_UP_RUNS gives up on a key that stays missing; --key loads one key again", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const list = await Deno.readTextFile(join(bucket, "files_list.data"));
    await Deno.writeTextFile(join(bucket, "files_list.data"), `${list}\nghost.data`);
    const config = await writeConfig(
      dir,
      `[p]\nBUCKET_NAME = ${bucket}\nDATABASE_NAME = db.sqlite3\nMISSING_GIVE_UP_RUNS = 2\n`,
    );
    const db = join(dir, "db.sqlite3");
    await cli(["--config", config, "--profile", "p"]);
    assert.equal(query(db, "SELECT count(*) n FROM processed_files WHERE key = 'ghost.data'")[0]!.n, 0);
    const second = await cli(["--config", config, "--profile", "p"]);
    assert.match(second.stdout, /gave up \(missing too often; registered invalid\):\n +ghost.data/);
    assert.deepEqual(query(db, "SELECT status FROM processed_files WHERE key = 'ghost.data'"), [{ status: "invalid" }]);
    const third = await cli(["--config", config, "--profile", "p"]);
    assert.match(third.stdout, /nothing to do/, "the key given up on was fetched again");
    // The file appears: --key fetches it (and only it).
    await Deno.copyFile(join(bucket, "a1b2c3d4-0001-4000-8000-000000000001.data"), join(bucket, "ghost.data"));
    const one = await cli(["--config", config, "--profile", "p", "--key", "ghost.data"]);
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, /0 new, 1 re-fetched: 1 loaded/);
    assert.deepEqual(query(db, "SELECT status FROM processed_files WHERE key = 'ghost.data'"), [{ status: "loaded" }]);
  });
});

Deno.test("networkCause() names host:port and the cause: refused, DNS, TLS, timeout", async () => {
  const { networkCause } = await import("../mod/source/http/http.ts");
  const url = new URL("https://bucket.example.com/prefix/");
  const fetchFailed = (cause: string) => new TypeError("fetch failed", { cause: new Error(cause) });
  assert.equal(
    networkCause(
      fetchFailed(
        "error sending request for url (https://bucket.example.com/x): client error (Connect): dns error: " +
          "failed to lookup address information: Name or service not known",
      ),
      url,
    ),
    "bucket.example.com:443: DNS lookup failed for bucket.example.com",
  );
  assert.equal(
    networkCause(fetchFailed("client error (Connect): tcp connect error: Connection refused (os error 111)"), url),
    "bucket.example.com:443: connection refused",
  );
  assert.match(
    networkCause(fetchFailed("client error (Connect): invalid peer certificate: UnknownIssuer"), url),
    /^bucket\.example\.com:443: TLS error: /,
  );
  assert.equal(
    networkCause(new DOMException("timed out after 30000 ms", "TimeoutError"), new URL("http://h:8080/")),
    "h:8080: timed out",
  );
});

Deno.test("--key of a key not in the list that is missing: said as it is, and not kept as missing", async () => {
  await withServedCase("basic", async ({ dir, server, config: writeProfile }) => {
    {
      const config = await writeProfile();
      const args = ["--config", config, "--profile", "p"];
      assert.equal((await cli(args)).code, 0);
      const ghost = await cli([...args, "--key", "ghost.data"]);
      assert.match(ghost.stderr, /Missing ghost\.data: .*it is not in the list, so no later run fetches it/);
      assert.doesNotMatch(ghost.stderr, /will retry on the next run/);
      assert.match(ghost.stdout, /missing and not in the list \(not retried; ask again with --key\):\n +ghost\.data/);
      assert.deepEqual(query(join(dir, "db.sqlite3"), "SELECT key FROM missing_keys"), []);
      // The list is unchanged (the same body) and ghost.data is not kept as missing: nothing is pending.
      const next = await cli(args);
      assert.match(next.stdout, /nothing to do .*: the list is unchanged and no key is pending/);
      assert.equal(server.hits("ghost.data"), 1);
    }
  });
});

Deno.test("a lock wait is reported only when another run held the lock", async () => {
  await withServedCase("basic", async ({ dir, server, config: writeProfile }) => {
    {
      const config = await writeProfile("LOCK_TIMEOUT_SECONDS = 10\n");
      // Time spent starting the run (schema, migrations) is not a wait: a clock that jumps 1 s per reading.
      let t = 0;
      const report = await runOnce(server.url, join(dir, "clock.sqlite3"), { now: () => new Date(t += 1000) });
      assert.equal(report.lockWaitMs, 0);
      const args = ["--config", config, "--profile", "p"];
      // A first run into a new database (schema creation) and a --force run: no one else holds the lock.
      for (const extra of [[], ["--force"]]) {
        const run = await cli([...args, ...extra]);
        assert.equal(run.code, 0, run.stderr);
        assert.doesNotMatch(run.stdout, /waiting for the lock/);
      }
      const holder = new DatabaseSync(join(dir, "db.sqlite3"));
      holder.exec("BEGIN IMMEDIATE");
      const waiting = cli([...args, "--force"]);
      await new Promise((r) => setTimeout(r, 700));
      holder.exec("ROLLBACK");
      holder.close();
      const run = await waiting;
      assert.equal(run.code, 0, run.stderr);
      const waited = /after (\d+\.\d\d) s waiting for the lock/.exec(run.stdout);
      assert.ok(waited !== null, run.stdout);
      assert.ok(Number(waited[1]) > 0.2, `waited ${waited[1]} s`);
    }
  });
});

Deno.test("summary: an empty or odd record type name is shown quoted, not as a blank; --json keeps it raw", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "bucket");
    await Deno.mkdir(bucket);
    const records = [
      { type: "", data: {} },
      { type: "book", data: {} },
      { type: "", data: {} },
      { type: "comic book", data: {} },
      { type: "a\nb", data: {} },
      // A right-to-left override and a C1 control, which JSON leaves as they are: escaped all the same.
      { type: "x\u202ey\u0085", data: {} },
      { type: "song", data: { artist_name: "A", title: "T", year: 2001, release: "R" } },
    ];
    await Deno.writeTextFile(join(bucket, "f.data"), JSON.stringify(records));
    await Deno.writeTextFile(join(bucket, "files_list.data"), "f.data\n");
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${bucket}\nDATABASE_NAME = db.sqlite3\n`);
    const text = await cli(["--config", config, "--profile", "p"]);
    assert.equal(text.code, 0, text.stderr);
    const line = text.stdout.split("\n").find((l) => l.trimStart().startsWith("records")) ?? "";
    assert.equal(
      line,
      `  records  1 valid (song 1), 0 rejected, 6 ignored ("" 2, book 1, "comic book" 1, "a\\nb" 1, "x\\u202ey\\u0085" 1)`,
    );
    const json = await cli(["--config", config, "--profile", "p", "--force", "--json"]);
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout).records.ignored, {
      "": 2,
      book: 1,
      "comic book": 1,
      "a\nb": 1,
      "x\u202ey\u0085": 1,
    });
  });
});
