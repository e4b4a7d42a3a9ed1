/**
 * Process safety: no bucketload process outlives the one its user started
 * (the task or the launcher), whatever kills it; a stop signal delivered more
 * than once is one stop; status tells a dead lock holder from a live one.
 *
 * @module
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { killedLine } from "../launch.ts";
import { generateBucket } from "../tools/gen_bucket.ts";
import { startBucketServer } from "./bucket_server.ts";
import {
  assertSameAsFreshRun,
  cli,
  DENO_CACHE_ENV,
  LAUNCHER,
  LineWatcher,
  query,
  ROOT,
  spawnCli,
  withTempDir,
  writeConfig,
} from "./helpers.ts";

/** The running processes whose command line mentions `marker` (zombies and this test left out), from `ps`. */
function processesWith(marker: string): { pid: number; cmd: string }[] {
  const out = new Deno.Command("ps", { args: ["-eo", "pid=,stat=,args="], stdout: "piped" }).outputSync();
  return new TextDecoder().decode(out.stdout).split("\n").flatMap((line) => {
    const m = /^\s*(\d+)\s+(\S+)\s+(.*)$/.exec(line);
    if (m === null || m[2]!.startsWith("Z") || Number(m[1]) === Deno.pid) return [];
    return m[3]!.includes(marker) && !m[3]!.startsWith("ps ") ? [{ pid: Number(m[1]), cmd: m[3]! }] : [];
  });
}

/** Waits up to `ms` for no process to mention `marker`; returns those left. */
async function noneLeft(marker: string, ms: number): Promise<{ pid: number; cmd: string }[]> {
  const until = performance.now() + ms;
  let left = processesWith(marker);
  while (left.length > 0 && performance.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    left = processesWith(marker);
  }
  return left;
}

/** `deno task run ARGS` as a user's terminal starts it, with piped output. */
function spawnTask(args: string[], cwd: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", `--config=${join(ROOT, "deno.json")}`, "run", ...args],
    cwd,
    env: { NO_COLOR: "1", PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "", ...DENO_CACHE_ENV },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

Deno.test("kill -9 of the task or the launcher leaves no process within 3 s; the next run is exact", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "bucket");
    const keys = await generateBucket(bucket, { files: 8, records: 200, seed: 5 });
    const slow = keys.at(-1)!;
    const server = await startBucketServer(bucket, { latencyMs: (k) => k === slow ? 1500 : 40 });
    try {
      const config = await writeConfig(
        dir,
        `[p]\nBUCKET_NAME = ${server.url}\nCONCURRENCY = 2\nLOG_LEVEL = debug\nDATABASE_NAME = db.sqlite3\n`,
      );
      const args = ["--config", config, "--profile", "p", "--quiet"];
      const db = join(dir, "db.sqlite3");
      const moments: { name: string; wait: (w: LineWatcher) => Promise<void>; victim: "task" | "launcher" }[] = [
        // Early: the task runner dies while the launcher (or main.ts) is still starting.
        ...[40, 90, 150, 250].map((ms) => ({
          name: `task, after ${ms} ms`,
          wait: () => new Promise<void>((r) => setTimeout(r, ms)),
          victim: "task" as const,
        })),
        { name: "task, after a file", wait: (w) => w.waitFor(/Processed /), victim: "task" },
        { name: "task, waiting for the slow file", wait: (w) => w.waitFor(/Processed /, 6), victim: "task" },
        { name: "launcher, after a file", wait: (w) => w.waitFor(/Processed /, 2), victim: "launcher" },
      ];
      for (const moment of moments) {
        const child = spawnTask(args, dir);
        const stderr = new LineWatcher(child.stderr);
        await moment.wait(stderr);
        const launcher = processesWith(dir).find((p) => /launch\.ts/.test(p.cmd));
        if (moment.victim === "task") child.kill("SIGKILL");
        else {
          assert.ok(launcher !== undefined, `${moment.name}: no launcher found`);
          Deno.kill(launcher.pid, "SIGKILL");
        }
        const left = await noneLeft(dir, 3000);
        assert.deepEqual(left, [], `${moment.name}: processes outlived their parent`);
        // The task ends by itself once its launcher is gone.
        const status = await child.status;
        assert.ok(moment.victim === "launcher" || status.signal === "SIGKILL", moment.name);
        if (moment.victim === "launcher") {
          // The program says why it stopped: its launcher, not a signal it was sent.
          const said = "Stopped: the launcher that started this process is gone: the run was rolled back";
          await stderr.waitFor(/Stopped: /);
          assert.ok(stderr.lines.some((l) => l.includes(said)), `${moment.name}: ${stderr.lines.join("\n")}`);
        }
        await stderr.cancel();
        await child.stdout.cancel();
        // Whatever was written was rolled back.
        if (existsSync(db)) assert.deepEqual(query(db, "SELECT count(*) AS n FROM processed_files"), [{ n: 0 }]);
      }
      const finish = spawnTask(args, dir);
      const out = await finish.output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      await assertSameAsFreshRun(db, server.url);
    } finally {
      await server.close();
    }
  });
});

Deno.test("kill -9 of the program (as the out-of-memory killer does): the launcher says so in one line, exit 137", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "bucket");
    const keys = await generateBucket(bucket, { files: 6, records: 200, seed: 8 });
    const server = await startBucketServer(bucket, { latencyMs: (k) => k === keys.at(-1) ? 2000 : 20 });
    try {
      const config = await writeConfig(
        dir,
        `[p]\nBUCKET_NAME = ${server.url}\nCONCURRENCY = 2\nLOG_LEVEL = debug\nDATABASE_NAME = db.sqlite3\n`,
      );
      const child = new Deno.Command(Deno.execPath(), {
        args: [...LAUNCHER, "--config", config, "--profile", "p", "--quiet"],
        env: { NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const stderr = new LineWatcher(child.stderr);
      await stderr.waitFor(/Processed /, 3);
      const program = processesWith(dir).find((p) => /main\.ts/.test(p.cmd));
      assert.ok(program !== undefined, "no main.ts child found");
      Deno.kill(program.pid, "SIGKILL");
      await stderr.waitFor(/never/);
      const status = await child.status;
      await child.stdout.cancel();
      const said = stderr.lines.filter((l) => !/^\d{4}-\d\d-\d\d /.test(l));
      assert.equal(status.code, 137, stderr.lines.join("\n"));
      assert.deepEqual(said, [
        "bucketload: the run was killed by SIGKILL (possibly by the out-of-memory killer): " +
        "unless it had committed (status shows it), it is rolled back; the next run does its work",
      ]);
      // Nothing was committed: not even the tables, which the run's transaction creates.
      const db = join(dir, "db.sqlite3");
      if (existsSync(db) && query(db, "SELECT name FROM sqlite_master WHERE name = 'processed_files'").length > 0) {
        assert.deepEqual(query(db, "SELECT count(*) AS n FROM processed_files"), [{ n: 0 }]);
      }
    } finally {
      await server.close();
    }
  });
});

Deno.test("the launcher's line for a killed program fits its command", () => {
  const oom = "killed by SIGKILL (possibly by the out-of-memory killer)";
  assert.equal(
    killedLine({ command: "replay", dryRun: false }, "SIGKILL"),
    `the replay was ${oom}: unless it had committed (status shows it), it is rolled back; the next replay ` +
      "does its work",
  );
  assert.equal(
    killedLine({ command: "run", dryRun: false, schedule: "*/5 * * * *" }, "SIGKILL"),
    `the scheduled runs were ${oom}: a run in progress is rolled back, runs that finished are kept`,
  );
  assert.equal(killedLine({ command: "run", dryRun: true }, "SIGKILL"), `the dry run was ${oom}; it writes nothing`);
  assert.equal(
    killedLine({ command: "status", dryRun: false }, "SIGSEGV"),
    "the status command was killed by SIGSEGV; it writes nothing",
  );
});

Deno.test("Ctrl-C delivered two or three times at once is one stop: the line, exit 130, no file left", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "bucket");
    const keys = await generateBucket(bucket, { files: 6, records: 200, seed: 6 });
    const server = await startBucketServer(bucket, { latencyMs: (k) => k === keys.at(-1) ? 1500 : 30 });
    try {
      const config = await writeConfig(
        dir,
        `[p]\nBUCKET_NAME = ${server.url}\nCONCURRENCY = 2\nLOG_LEVEL = debug\nDATABASE_NAME = new/db.sqlite3\n`,
      );
      for (const [moment, pattern, count] of [["after the list", /Listed /, 1], ["late", /Processed /, 5]] as const) {
        const child = spawnCli(["--config", config, "--profile", "p"]);
        const stderr = new LineWatcher(child.stderr);
        await stderr.waitFor(pattern, count);
        // A terminal sends SIGINT to the whole group, and the launcher and the task runner pass it on: the copies
        // arrive a few milliseconds apart, while the run is rolling back.
        let exited = false;
        child.status.then(() => exited = true);
        for (let t = 0; t < 300 && !exited; t += 1) {
          try {
            child.kill("SIGINT");
          } catch { /* it stopped meanwhile */ }
          await new Promise((r) => setTimeout(r, 1));
        }
        await stderr.waitFor(/never/);
        const status = await child.status;
        await child.stdout.cancel();
        assert.equal(status.code, 130, `${moment}: ${stderr.lines.join("\n")}`);
        assert.ok(stderr.lines.some((l) => /Stopped by SIGINT: the run was rolled back/.test(l)), moment);
        for (const suffix of ["", "-wal", "-shm", ".lock-info"]) {
          assert.equal(
            existsSync(join(dir, "new", `db.sqlite3${suffix}`)),
            false,
            `${moment}: db.sqlite3${suffix} left`,
          );
        }
      }
    } finally {
      await server.close();
    }
  });
});

Deno.test("status tells a live run from the lock note a killed run left", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "bucket");
    const keys = await generateBucket(bucket, { files: 4, records: 100, seed: 7 });
    const server = await startBucketServer(bucket, { latencyMs: (k) => k === keys.at(-1) ? 5000 : 0 });
    try {
      const config = await writeConfig(
        dir,
        `[p]\nBUCKET_NAME = ${server.url}\nLOG_LEVEL = debug\nDATABASE_NAME = db.sqlite3\n`,
      );
      const args = ["--config", config, "--profile", "p"];
      // A first run, so that status has a database to read while the second one is going.
      const first = spawnCli(args);
      const w1 = new LineWatcher(first.stderr);
      await w1.waitFor(/Processed /, 3);
      const live = await cli(["status", "--json", ...args]);
      assert.equal(live.code, 0, live.stderr);
      const during = JSON.parse(live.stdout);
      assert.match(during.running, new RegExp(`pid ${first.pid}`));
      assert.equal(during.staleLock, null);
      first.kill("SIGKILL");
      await first.status;
      await w1.cancel();
      await first.stdout.cancel();
      assert.ok(existsSync(join(dir, "db.sqlite3.lock-info")), "the killed run's note is gone: nothing to test");
      const after = await cli(["status", ...args]);
      assert.doesNotMatch(after.stdout, /Run in progress/);
      assert.match(after.stdout, new RegExp(`pid ${first.pid}\\) stopped without finishing \\(its process is gone\\)`));
      const json = JSON.parse((await cli(["status", "--json", ...args])).stdout);
      assert.equal(json.running, null);
      assert.match(json.staleLock, new RegExp(`pid ${first.pid}`));
    } finally {
      await server.close();
    }
  });
});
