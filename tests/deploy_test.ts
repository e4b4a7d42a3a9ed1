import assert from "node:assert/strict";
import { join } from "node:path";
import { deployAddress, deployConfig, handleRequest, runScheduled } from "../mod/deploy.ts";
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

/** Runs deploy.ts with only `env`, and returns its stderr watcher and the child. */
function startDeploy(env: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", join(ROOT, "deploy.ts")],
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  return { child, stderr: new LineWatcher(child.stderr) };
}

Deno.test("deploy: deploy.ts binds BUCKETLOAD_HOST (not HOSTNAME), serves /health, and warns without a token", async () => {
  // Docker and Kubernetes set HOSTNAME to the pod's name, which does not resolve: it must not be read.
  const { child, stderr } = startDeploy({
    BUCKETLOAD_PORT: "0",
    BUCKETLOAD_HOST: "127.0.0.1",
    HOSTNAME: "bucketload-7d9f8-pod",
    BUCKETLOAD_BUCKET_NAME: "https://bucket.example.com/",
  });
  try {
    await stderr.waitFor(/Listening on http:\/\/127\.0\.0\.1:\d+/);
    const line = stderr.lines.find((l) => /Listening on/.test(l))!;
    const base = line.match(/http:\/\/127\.0\.0\.1:\d+/)![0];
    assert.deepEqual(await (await fetch(`${base}/health`)).json(), { ok: true });
    assert.ok(stderr.lines.some((l) => /BUCKETLOAD_STATUS_TOKEN is not set/.test(l)), stderr.lines.join("\n"));
  } finally {
    child.kill("SIGTERM");
    await stderr.cancel();
    await child.status;
  }
  assert.deepEqual(deployAddress({ HOSTNAME: "pod", PORT: "9000" }), { hostname: "0.0.0.0", port: 9000 });
});

Deno.test("deploy: a bad BUCKETLOAD_SCHEDULE is one line and exit 2, before Deno.cron sees it", async () => {
  for (const schedule of ["every minute", "*/15 * * *", "0 0 31 2 *"]) {
    const bad = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", join(ROOT, "deploy.ts")],
      env: { BUCKETLOAD_PORT: "0", BUCKETLOAD_HOST: "127.0.0.1", BUCKETLOAD_SCHEDULE: schedule, NO_COLOR: "1" },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(bad.stderr);
    assert.equal(bad.code, 2, `${schedule}: ${text}`);
    assert.match(text, /^bucketload: Cannot parse BUCKETLOAD_SCHEDULE: .*\n$/);
    assert.doesNotMatch(text, /\n\s+at |panic/);
  }
});

Deno.test("deploy: with STATUS_TOKEN, /status needs the bearer token or ?token=; /health stays open", async () => {
  const env = {
    BUCKETLOAD_BUCKET_NAME: "https://bucket.example.com/",
    // An unreachable server: an authorized request gets past the check and fails to connect (503), not 401.
    DATABASE_URL: "postgres://u:pw@127.0.0.1:1/db",
    BUCKETLOAD_STATUS_TOKEN: "s3cr3t-token",
  };
  const status = (init: RequestInit = {}, query = "") =>
    handleRequest(new Request(`http://deploy.test/status${query}`, init), env);
  for (const response of [await status(), await status({ headers: { authorization: "Bearer nope" } })]) {
    assert.equal(response.status, 401);
    assert.doesNotMatch(await response.text(), /s3cr3t/);
  }
  assert.equal((await handleRequest(new Request("http://deploy.test/?token=wrong"), env)).status, 401);
  assert.equal((await status({ headers: { authorization: "Bearer s3cr3t-token" } })).status, 503);
  assert.equal((await status({}, "?token=s3cr3t-token")).status, 503);
  assert.equal((await handleRequest(new Request("http://deploy.test/health"), env)).status, 200);
});
