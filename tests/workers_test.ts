/**
 * Several bucketload processes on one bucket and one PostgreSQL database:
 * each object is fetched once, the tables equal one run's, and a worker
 * killed with SIGKILL loses nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { generateBucket } from "../tools/gen_bucket.ts";
import { startBucketServer } from "./bucket_server.ts";
import { cli, dumpDatabase, LineWatcher, runOnce, spawnCli, withTempDir, writeConfig } from "./helpers.ts";
import { canonicalDump, pgDump, pgQuery, pgTest, withPgDatabase } from "./pg.ts";
import { assertTotals } from "./totals.ts";

const LIST = "files_list.data";

/** A real-shaped bucket (random key order, records repeating across files) and its single-run SQLite content. */
async function bucketAndReference(dir: string, files: number) {
  const bucket = join(dir, "bucket");
  const keys = await generateBucket(bucket, { files, records: 150, seed: 7, shape: "real" });
  const db = join(dir, "reference.sqlite3");
  const report = await runOnce(bucket, db);
  assert.equal(report.filesLoaded + report.filesInvalid, files);
  return { bucket, keys, reference: canonicalDump(dumpDatabase(db, { ingestionTime: false })) };
}

pgTest("3 workers side by side: every object GET once, the same tables as one run", async () => {
  await withTempDir(async (dir) => {
    const { bucket, keys, reference } = await bucketAndReference(dir, 40);
    const server = await startBucketServer(bucket, { latencyMs: (key) => key === LIST ? 0 : 40 });
    try {
      await withPgDatabase(async (url) => {
        const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nCONCURRENCY = 2\n`);
        const args = ["--config", config, "--profile", "p", "--json"];
        const results = await Promise.all([0, 1, 2].map(() => cli(args, { env: { DATABASE_URL: url } })));
        for (const r of results) assert.equal(r.code, 0, r.stderr);
        for (const key of keys) assert.equal(server.hits(key), 1, `${key} was fetched ${server.hits(key)} times`);
        const summaries = results.map((r) => JSON.parse(r.stdout));
        const loaded = summaries.map((s) => s.files.loaded + s.files.invalid);
        assert.equal(loaded.reduce((a, b) => a + b, 0), keys.length);
        assert.ok(loaded.filter((n) => n > 0).length >= 2, `one worker did all the work: ${loaded.join(", ")}`);
        for (const s of summaries) assert.equal(s.files.new + s.files.claimedElsewhere, keys.length);
        assert.deepEqual(await pgDump(url, { ingestionTime: false }), reference);
        assert.deepEqual(await pgQuery(url, "SELECT count(*) AS n FROM runs WHERE status = 'ok'"), [{ n: 3 }]);
        // Each run kept its status totals in rows of its own, folded at its commit: a recount's, none left unfolded.
        await assertTotals((sql) => pgQuery(url, sql), "3 workers side by side");
        assert.deepEqual(await pgQuery(url, "SELECT count(*) AS n FROM registry_counts WHERE txn <> 0"), [{ n: 0 }]);
      });
    } finally {
      await server.close();
    }
  });
});

pgTest("SIGKILL of one of 3 workers mid-run loses nothing: the next run finishes its files", async () => {
  await withTempDir(async (dir) => {
    const { bucket, keys, reference } = await bucketAndReference(dir, 30);
    const server = await startBucketServer(bucket, { latencyMs: (key) => key === LIST ? 0 : 60 });
    try {
      await withPgDatabase(async (url) => {
        const config = await writeConfig(
          dir,
          `[p]\nBUCKET_NAME = ${server.url}\nCONCURRENCY = 2\nLOG_LEVEL = debug\n`,
        );
        const args = ["--config", config, "--profile", "p"];
        const env = { DATABASE_URL: url };
        const victim = spawnCli(args, { env });
        const stderr = new LineWatcher(victim.stderr);
        await stderr.waitFor(/Processed /, 2);
        const others = [0, 1].map(() => cli(args, { env }));
        victim.kill("SIGKILL");
        await stderr.cancel();
        await victim.stdout.cancel();
        assert.equal((await victim.status).signal, "SIGKILL");
        for (const r of await Promise.all(others)) assert.equal(r.code, 0, r.stderr);
        // The killed run left no run row and no registry entry; its claims were released with its connection.
        assert.deepEqual(await pgQuery(url, "SELECT count(*) AS n FROM runs"), [{ n: 2 }]);
        const next = await cli(args, { env });
        assert.equal(next.code, 0, next.stderr);
        assert.deepEqual(await pgQuery(url, "SELECT count(*) AS n FROM processed_files"), [{ n: keys.length }]);
        assert.deepEqual(await pgDump(url, { ingestionTime: false }), reference);
        await assertTotals((sql) => pgQuery(url, sql), "a worker killed, then the next run");
      });
    } finally {
      await server.close();
    }
  });
});

pgTest(
  "a frozen worker (SIGSTOP) loses its claims after CLAIM_TIMEOUT_SECONDS; another run takes its files over",
  async () => {
    await withTempDir(async (dir) => {
      const { bucket, keys, reference } = await bucketAndReference(dir, 24);
      const server = await startBucketServer(bucket, { latencyMs: (key) => key === LIST ? 0 : 60 });
      try {
        await withPgDatabase(async (url) => {
          const config = await writeConfig(
            dir,
            `[p]\nBUCKET_NAME = ${server.url}\nCONCURRENCY = 2\nLOG_LEVEL = debug\nCLAIM_TIMEOUT_SECONDS = 2\n`,
          );
          const args = ["--config", config, "--profile", "p"];
          const env = { DATABASE_URL: url };
          const frozen = spawnCli(args, { env });
          const stderr = new LineWatcher(frozen.stderr);
          await stderr.waitFor(/Processed /, 2);
          Deno.kill(frozen.pid, "SIGSTOP");
          try {
            // A run side by side while the frozen one holds its claims: it says what it left to the other.
            const beside = await cli([...args, "--json"], { env });
            assert.equal(beside.code, 0, beside.stderr);
            const summary = JSON.parse(beside.stdout);
            assert.ok(summary.files.claimedElsewhere > 0, beside.stdout);
            const status = await cli(["status", ...args], { env });
            assert.match(status.stdout, /\(\d+ claimed by other runs\)/);
            // After the bound, the server has ended the frozen run's session: its files are free again.
            await new Promise((r) => setTimeout(r, 3500));
            const next = await cli(args, { env });
            assert.equal(next.code, 0, next.stderr);
            assert.deepEqual(await pgQuery(url, "SELECT count(*) AS n FROM processed_files"), [{ n: keys.length }]);
          } finally {
            Deno.kill(frozen.pid, "SIGCONT");
          }
          // Woken, the frozen run finds its session gone: one line, exit 1, nothing committed twice.
          const woke = await frozen.status;
          await stderr.waitFor(/^\0 the end$/);
          await frozen.stdout.cancel();
          assert.equal(woke.code, 1, stderr.lines.join("\n"));
          assert.ok(stderr.lines.some((l) => /The PostgreSQL connection was lost/.test(l)), stderr.lines.join("\n"));
          assert.deepEqual(await pgDump(url, { ingestionTime: false }), reference);
        });
      } finally {
        await server.close();
      }
    });
  },
);
