import assert from "node:assert/strict";
import { join } from "node:path";
import { deployConfig, handleRequest, runScheduled } from "../mod/deploy.ts";
import { UsageError } from "../mod/errors.ts";
import { startBucketServer } from "./bucket_server.ts";
import { CASES, LineWatcher, ROOT } from "./helpers.ts";
import { pgQuery, pgTest, withPgDatabase } from "./pg.ts";

Deno.test("deploy: SQLite is refused (no persistent disk), with the variable to set", async () => {
  const env = { BUCKETLOAD_BUCKET_NAME: "https://bucket.example.com/" };
  assert.throws(() => deployConfig(env), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /^Deno Deploy has no persistent disk.*set DATABASE_URL/);
    return true;
  });
  const response = await handleRequest(new Request("http://deploy.test/status"), env);
  assert.equal(response.status, 500);
  assert.match((await response.json()).error, /set DATABASE_URL/);
  assert.deepEqual(await (await handleRequest(new Request("http://deploy.test/health"), env)).json(), { ok: true });
});

pgTest("deploy: the cron handler loads into PostgreSQL from the environment alone; /status reports it", async () => {
  const server = await startBucketServer(join(CASES, "basic"));
  try {
    await withPgDatabase(async (url) => {
      const env = { BUCKETLOAD_BUCKET_NAME: server.url, DATABASE_URL: url, BUCKETLOAD_SCHEDULE: "* * * * *" };
      const lines: string[] = [];
      const log = console.log;
      console.log = (...args: unknown[]) => lines.push(args.join(" "));
      let code: number;
      try {
        code = await runScheduled(env);
      } finally {
        console.log = log;
      }
      assert.equal(code, 0);
      assert.ok(lines.some((l) => /^bucketload: run 1 finished/.test(l)), lines.join("\n"));
      assert.deepEqual(await pgQuery(url, "SELECT count(*) AS n FROM processed_files"), [{ n: 3 }]);
      const response = await handleRequest(new Request("http://deploy.test/status"), env);
      assert.equal(response.status, 200);
      const status = await response.json();
      assert.equal(status.schedule, "* * * * *");
      assert.equal(status.runs.length, 1);
      assert.deepEqual(status.registry, { invalid: 1, loaded: 2 });
      assert.doesNotMatch(JSON.stringify(status), /password/);
    });
  } finally {
    await server.close();
  }
});

Deno.test("deploy: deploy.ts registers its cron job and serves /health", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", join(ROOT, "deploy.ts")],
    env: { PORT: "0", HOSTNAME: "127.0.0.1", BUCKETLOAD_BUCKET_NAME: "https://bucket.example.com/", NO_COLOR: "1" },
    clearEnv: true,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = new LineWatcher(child.stderr);
  try {
    await stderr.waitFor(/Listening on http:\/\/127\.0\.0\.1:\d+/);
    const line = stderr.lines.find((l) => /Listening on/.test(l))!;
    const base = line.match(/http:\/\/127\.0\.0\.1:\d+/)![0];
    assert.deepEqual(await (await fetch(`${base}/health`)).json(), { ok: true });
  } finally {
    child.kill("SIGTERM");
    await stderr.cancel();
    await child.status;
  }
  // The schedule reaches Deno.cron at the top level: a bad one stops the module before it serves.
  const bad = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", join(ROOT, "deploy.ts")],
    env: { PORT: "0", HOSTNAME: "127.0.0.1", BUCKETLOAD_SCHEDULE: "every minute", NO_COLOR: "1" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.notEqual(bad.code, 0);
  assert.match(new TextDecoder().decode(bad.stderr), /cron|schedule/i);
});
