import assert from "node:assert/strict";
import { join } from "node:path";
import { generateBucket } from "../tools/gen_bucket.ts";
import { startBucketServer } from "./bucket_server.ts";
import { cli, dumpDatabase, LineWatcher, query, spawnCli, withTempDir, writeConfig } from "./helpers.ts";

/** Everything a run may change, including the bookkeeping rows. */
function fullState(db: string) {
  return {
    ...dumpDatabase(db),
    runs: query(db, "SELECT * FROM runs ORDER BY id"),
    registry: query(db, "SELECT * FROM processed_files ORDER BY key"),
  };
}

Deno.test("crash: SIGKILL at 10 moments leaves the database as before; the next run completes it", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "bucket");
    const keys = await generateBucket(bucket, { files: 8, records: 300, seed: 11 });
    const fullList = keys.join("\n");
    let list = keys.slice(0, 2).join("\n");
    let onRequest: (key: string) => void = () => {};
    const last = keys.at(-1)!;
    const server = await startBucketServer(bucket, {
      latencyMs: (key) => key === "files_list.data" ? 0 : key === last ? 800 : 60,
      onRequest: (key) => onRequest(key),
      fault: (key) => key === "files_list.data" ? { status: 200, body: list } : undefined,
    });
    try {
      const config = await writeConfig(
        dir,
        `[p]\nBUCKET_NAME = ${server.url}\nCONCURRENCY = 2\nLOG_LEVEL = debug\nDATABASE_NAME = db.sqlite3\n`,
      );
      const args = ["--config", config, "--profile", "p"];
      const db = join(dir, "db.sqlite3");
      assert.equal((await cli(args)).code, 0);
      list = fullList;
      const before = fullState(db);
      assert.equal(before.registry.length, 2);

      type Moment = { name: string; trigger: (stderr: LineWatcher) => Promise<void> };
      const request = (match: (key: string) => boolean, delayMs = 0) => () =>
        new Promise<void>((resolve) => {
          onRequest = (key) => {
            if (match(key)) {
              onRequest = () => {};
              setTimeout(resolve, delayMs);
            }
          };
        });
      const processed = (n: number) => (stderr: LineWatcher) => stderr.waitFor(/Processed /, n);
      const moments: Moment[] = [
        { name: "at start", trigger: () => Promise.resolve() },
        { name: "on the list request", trigger: request((k) => k === "files_list.data") },
        { name: "before the first fetch", trigger: request((k) => k === "files_list.data", 5) },
        { name: "mid-fetch of the first file", trigger: request((k) => k === keys[2], 30) },
        { name: "after 1 file inserted", trigger: processed(1) },
        { name: "after 2 files inserted", trigger: processed(2) },
        { name: "mid-insert, 3 files in", trigger: processed(3) },
        { name: "after 5 files inserted", trigger: processed(5) },
        { name: "waiting for the last file", trigger: request((k) => k === last, 100) },
        { name: "just before commit", trigger: request((k) => k === last, 700) },
      ];
      for (const moment of moments) {
        const child = spawnCli(args);
        const stderr = new LineWatcher(child.stderr);
        await moment.trigger(stderr);
        try {
          child.kill("SIGKILL");
        } catch (error) {
          throw new Error(`${moment.name}: the run ended before the kill`, { cause: error });
        }
        const status = await child.status;
        await stderr.cancel();
        await child.stdout.cancel();
        assert.equal(status.signal, "SIGKILL", `${moment.name}: the run ended before the kill`);
        onRequest = () => {};
        assert.deepEqual(fullState(db), before, `${moment.name}: the killed run left a trace`);
      }

      const finish = await cli(args);
      assert.equal(finish.code, 0, finish.stderr);
      await withTempDir(async (other) => {
        const otherConfig = await writeConfig(
          other,
          `[p]\nBUCKET_NAME = ${server.url}\nCONCURRENCY = 2\nDATABASE_NAME = db.sqlite3\n`,
        );
        list = keys.slice(0, 2).join("\n");
        assert.equal((await cli(["--config", otherConfig, "--profile", "p"])).code, 0);
        list = fullList;
        assert.equal((await cli(["--config", otherConfig, "--profile", "p"])).code, 0);
        assert.deepEqual(
          dumpDatabase(db, { ingestionTime: false }),
          dumpDatabase(join(other, "db.sqlite3"), { ingestionTime: false }),
        );
      });
    } finally {
      await server.close();
    }
  });
});

Deno.test("concurrent runs: the second exits 1 at once, or waits LOCK_TIMEOUT_SECONDS; nothing is duplicated", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "bucket");
    await generateBucket(bucket, { files: 6, records: 100, seed: 5 });
    const server = await startBucketServer(bucket, { latencyMs: (k) => k === "files_list.data" ? 0 : 150 });
    try {
      const config = await writeConfig(
        dir,
        `[p]\nBUCKET_NAME = ${server.url}\nCONCURRENCY = 1\n[wait]\nBUCKET_NAME = ${server.url}\nLOCK_TIMEOUT_SECONDS = 30\n`,
      );
      const first = spawnCli(["--config", config, "--profile", "p"]);
      const firstStderr = new LineWatcher(first.stderr);
      await firstStderr.waitFor(/Listed/);
      const second = await cli(["--config", config, "--profile", "p"]);
      assert.equal(second.code, 1);
      assert.match(
        second.stderr,
        /^bucketload: Another run holds .*db\.sqlite3 since \d{4}-\d\d-\d\dT[\d:.]+Z \(pid \d+\)$/m,
      );
      const waiter = cli(["--config", config, "--profile", "wait"]);
      const [firstStatus] = await Promise.all([first.status, firstStderr.drain()]);
      assert.equal(firstStatus.code, 0);
      await first.stdout.cancel();
      const waited = await waiter;
      assert.equal(waited.code, 0, waited.stderr);
      // The list is the one the first run cached: nothing to do once the lock is had, and no second run row.
      assert.match(waited.stdout, /nothing to do .*waiting for the lock\): the list is unchanged/);
      const db = join(dir, "db.sqlite3");
      assert.deepEqual(query(db, "SELECT count(*) n FROM processed_files"), [{ n: 6 }]);
      assert.deepEqual(query(db, "SELECT count(*) n FROM runs"), [{ n: 1 }]);
    } finally {
      await server.close();
    }
  });
});
