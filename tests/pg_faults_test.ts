/**
 * PostgreSQL going away mid-run: a terminated backend, a server stopped at
 * once, a server that stops answering. Each run ends within a bound with one
 * line, commits nothing, and the next run is exact. The tests use a cluster
 * of their own (tools/pg_cluster.sh), since they stop its server.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { generateBucket } from "../tools/gen_bucket.ts";
import { startBucketServer } from "./bucket_server.ts";
import { LineWatcher, ROOT, spawnCli, withTempDir, writeConfig } from "./helpers.ts";
import { pgDump, pgQuery, pgTest } from "./pg.ts";

const CLUSTER = join(ROOT, "tools", "pg_cluster.sh");

async function cluster(...args: string[]): Promise<string> {
  const out = await new Deno.Command("bash", { args: [CLUSTER, ...args], stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder();
  assert.equal(out.code, 0, text.decode(out.stderr));
  return text.decode(out.stdout).trim();
}

/** The backend pids of bucketload runs on the server at `url`. */
async function runBackends(url: string): Promise<number[]> {
  const rows = await pgQuery(
    url,
    "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'bucketload run%'",
  );
  return rows.map((r) => Number(r.pid));
}

const oneLine = (lines: readonly string[]) =>
  lines.filter((l) => l.trim() !== "" && !/^\d{4}-\d\d-\d\d \S+ \[(INF|DBG|WRN)\]/.test(l));

pgTest(
  "a lost connection (terminated, server stopped) or a frozen server: bounded, one line, nothing committed",
  async () => {
    await withTempDir(async (dir) => {
      // The cluster belongs to an unprivileged user (initdb refuses root), who must reach its folder.
      await Deno.chmod(dir, 0o755);
      const data = join(dir, "pg");
      const url = await cluster("start", data, "55432");
      const port = new URL(url).port;
      const bucket = join(dir, "bucket");
      const keys = await generateBucket(bucket, { files: 12, records: 200, seed: 21 });
      const server = await startBucketServer(bucket, { latencyMs: (k) => k === "files_list.data" ? 0 : 150 });
      try {
        const config = await writeConfig(
          dir,
          `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_URL = ${url}\nCONCURRENCY = 2\nLOG_LEVEL = debug\n`,
        );
        const args = ["--config", config, "--profile", "p"];
        type Fault = { name: string; inflict: () => Promise<void>; heal: () => Promise<void>; code: number };
        let frozen: number[] = [];
        const faults: Fault[] = [
          {
            name: "backend terminated",
            inflict: async () =>
              void await pgQuery(
                url,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity " +
                  "WHERE application_name LIKE 'bucketload run%'",
              ),
            heal: async () => {},
            code: 1,
          },
          {
            name: "server stopped at once",
            inflict: async () => void await cluster("crash", data),
            heal: async () => void await cluster("restart", data, port),
            code: 1,
          },
          {
            name: "server frozen, then SIGTERM",
            inflict: async () => {
              frozen = await runBackends(url);
              for (const pid of frozen) Deno.kill(pid, "SIGSTOP");
            },
            heal: () => {
              for (const pid of frozen) Deno.kill(pid, "SIGCONT");
              return Promise.resolve();
            },
            code: 143,
          },
        ];
        for (const fault of faults) {
          const child = spawnCli(args);
          const stderr = new LineWatcher(child.stderr);
          await stderr.waitFor(/Processed /, 3);
          await fault.inflict();
          if (fault.code === 143) {
            await new Promise((r) => setTimeout(r, 300));
            child.kill("SIGTERM");
          }
          const started = performance.now();
          const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
          const status = await child.status;
          clearTimeout(timer);
          await stderr.waitFor(/^\0 the end$/);
          await child.stdout.cancel();
          const took = performance.now() - started;
          await fault.heal();
          assert.equal(status.code, fault.code, `${fault.name}: ${stderr.lines.join("\n")}`);
          assert.ok(took < 15_000, `${fault.name}: took ${took} ms`);
          const said = oneLine(stderr.lines);
          assert.equal(said.length, 1, `${fault.name}: ${said.join("\n")}`);
          assert.match(
            said[0]!,
            fault.code === 1
              ? /^bucketload: The PostgreSQL connection was lost \(.*\): nothing was committed/
              : /Stopped by SIGTERM/,
            fault.name,
          );
          assert.doesNotMatch(stderr.lines.join("\n"), /^\s+at |TypeError/m, fault.name);
          const registered = await pgQuery(url, "SELECT count(*) AS n FROM processed_files").catch(() => [{ n: 0 }]);
          assert.deepEqual(registered, [{ n: 0 }], `${fault.name}: something was committed`);
        }
        // The next run is exact: the same rows as a run that met no fault.
        const finish = spawnCli(args);
        const out = await finish.output();
        assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
        const admin = url.replace(/\/postgres$/, "/postgres");
        await pgQuery(admin, "CREATE DATABASE clean");
        const clean = url.replace(/\/postgres$/, "/clean");
        const cleanConfig = await writeConfig(
          join(dir, "bucket"),
          `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_URL = ${clean}\n`,
        );
        assert.equal((await spawnCli(["--config", cleanConfig, "--profile", "p"]).output()).code, 0);
        assert.deepEqual(await pgDump(url, { ingestionTime: false }), await pgDump(clean, { ingestionTime: false }));
        assert.equal(keys.length, 12);
      } finally {
        await server.close();
        await cluster("stop", data);
      }
    });
  },
);
