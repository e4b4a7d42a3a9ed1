import assert from "node:assert/strict";
import { join } from "node:path";
import { checkDeployStart, deployAddress, deployConfig, handleRequest, runScheduled } from "../mod/entries/deploy.ts";
import { UsageError } from "../mod/common/errors.ts";
import { Sessions } from "../mod/commands/status_token.ts";
import { startBucketServer } from "./bucket_server.ts";
import { CASES, DENO_CACHE_ENV, LineWatcher, ROOT } from "./helpers.ts";
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
    args: ["run", "--cached-only", "--allow-all", join(ROOT, "deploy.ts")],
    env: { NO_COLOR: "1", ...DENO_CACHE_ENV, ...env },
    clearEnv: true,
    stdout: "null",
    stderr: "piped",
  }).spawn();
  return { child, stderr: new LineWatcher(child.stderr) };
}

/** Matches no line: waiting for it reads a watcher to the end of its output. */
const TO_THE_END = /(?!)/;

/** An unreachable PostgreSQL server: nothing listens on port 1, and nothing connects at start. */
const NO_SERVER_URL = "postgres://u:pw-hidden@127.0.0.1:1/db";

/**
 * Starts deploy.ts with `env` and waits for it to exit or to listen (then
 * stops it): its exit code, its stderr lines, and whether it listened.
 */
async function deployStartUp(env: Record<string, string>) {
  const { child, stderr } = startDeploy(env);
  await stderr.waitFor(/^Listening on /);
  const listened = stderr.lines.some((l) => /^Listening on /.test(l));
  if (listened) child.kill("SIGTERM");
  await stderr.waitFor(TO_THE_END);
  const { code } = await child.status;
  return { code, lines: stderr.lines, listened };
}

/** A Deploy environment that passes the start check (the token keeps stderr free of its warning). */
const GOOD_ENV = {
  BUCKETLOAD_BUCKET_NAME: "https://bucket.example.com/",
  DATABASE_URL: NO_SERVER_URL,
  BUCKETLOAD_STATUS_TOKEN: "s3cr3t-token",
  BUCKETLOAD_HOST: "127.0.0.1",
  BUCKETLOAD_PORT: "0",
};

Deno.test("deploy: deploy.ts binds BUCKETLOAD_HOST (not HOSTNAME), serves /health, and warns without a token", async () => {
  // Docker and Kubernetes set HOSTNAME to the pod's name, which does not resolve: it must not be read.
  const { child, stderr } = startDeploy({
    BUCKETLOAD_PORT: "0",
    BUCKETLOAD_HOST: "127.0.0.1",
    HOSTNAME: "bucketload-7d9f8-pod",
    BUCKETLOAD_BUCKET_NAME: "https://bucket.example.com/",
    DATABASE_URL: NO_SERVER_URL,
    // Read by the CLI, not here: a warning, not a silent no-op.
    BUCKETLOAD_CONFIG: "/etc/bucketload.ini",
  });
  try {
    await stderr.waitFor(/Listening on http:\/\/127\.0\.0\.1:\d+/);
    const line = stderr.lines.find((l) => /Listening on/.test(l))!;
    const base = line.match(/http:\/\/127\.0\.0\.1:\d+/)![0];
    assert.deepEqual(await (await fetch(`${base}/health`)).json(), { ok: true });
    assert.ok(stderr.lines.some((l) => /BUCKETLOAD_STATUS_TOKEN is not set/.test(l)), stderr.lines.join("\n"));
    assert.ok(
      stderr.lines.some((l) =>
        /^bucketload: BUCKETLOAD_CONFIG is ignored by the Deno Deploy entry: no config file/.test(l)
      ),
      stderr.lines.join("\n"),
    );
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
      args: ["run", "--cached-only", "--allow-all", join(ROOT, "deploy.ts")],
      env: {
        BUCKETLOAD_PORT: "0",
        BUCKETLOAD_HOST: "127.0.0.1",
        BUCKETLOAD_SCHEDULE: schedule,
        NO_COLOR: "1",
        ...DENO_CACHE_ENV,
      },
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

Deno.test("deploy: with STATUS_TOKEN, /status needs the bearer token or the login form's cookie; ?token= is refused; any Host", async () => {
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
    const body = await response.text();
    assert.doesNotMatch(body, /s3cr3t/);
    // A browser cannot send the header: the body names the login form.
    assert.match(JSON.parse(body).error, /Authorization: Bearer <STATUS_TOKEN>.*log in with the form at \//);
  }
  // The token in the URL is refused, right or wrong (Deploy records each request's URL).
  for (const query of ["?token=wrong", "?token=s3cr3t-token"]) {
    const response = await status({}, query);
    assert.equal(response.status, 401, query);
    assert.match((await response.json()).error, /token in the URL is refused/);
  }
  assert.equal((await status({ headers: { authorization: "Bearer s3cr3t-token" } })).status, 503);
  // A browser: the form, then the cookie.
  const form = await handleRequest(new Request("http://deploy.test/"), env);
  assert.equal(form.status, 401);
  assert.match(await form.text(), /<form method="post" action="login"/);
  const login = await handleRequest(
    new Request("https://app.deno.dev/login", { method: "POST", body: new URLSearchParams({ token: "s3cr3t-token" }) }),
    env,
  );
  assert.equal(login.status, 303);
  const set = login.headers.getSetCookie()[0] ?? "";
  assert.match(set, /^bucketload_session=[^;]+; HttpOnly; SameSite=Strict; Path=\/; Max-Age=86400; Secure$/);
  assert.doesNotMatch(set, /s3cr3t/);
  const cookie = set.split(";")[0]!;
  assert.equal((await status({ headers: { cookie } })).status, 503);
  // Another isolate (nothing shared) takes it: on Deploy the cookie is keyed by the token alone.
  assert.ok(await new Sessions("s3cr3t-token", new Uint8Array(0)).valid(cookie.split("=")[1]!));
  assert.ok(!await new Sessions("an0ther-token", new Uint8Array(0)).valid(cookie.split("=")[1]!));
  // No Host check on Deploy (its names vary; it is on the public internet anyway).
  const elsewhere = await handleRequest(
    new Request("http://evil.example.com/status", { headers: { authorization: "Bearer s3cr3t-token" } }),
    env,
  );
  assert.equal(elsewhere.status, 503);
  assert.equal((await handleRequest(new Request("http://deploy.test/health"), env)).status, 200);
});

Deno.test("deploy: a bad variable or value, or no DATABASE_URL, is one line naming it and exit 2, before listening", async () => {
  const { BUCKETLOAD_PORT: _, ...noPort } = GOOD_ENV;
  const { DATABASE_URL: __, ...noDatabase } = GOOD_ENV;
  const { BUCKETLOAD_BUCKET_NAME: ___, ...noBucket } = GOOD_ENV;
  const cases: [Record<string, string>, RegExp][] = [
    [
      { ...GOOD_ENV, BUCKETLOAD_CONCURENCY: "3" },
      /^bucketload: Unknown environment variable 'BUCKETLOAD_CONCURENCY': did you mean 'BUCKETLOAD_CONCURRENCY'\?$/,
    ],
    [
      { ...GOOD_ENV, BUCKETLOAD_CONCURRENCY: "abc" },
      /^bucketload: Cannot parse environment variable BUCKETLOAD_CONCURRENCY: expected an integer 1–1024, got "abc"$/,
    ],
    [
      { ...GOOD_ENV, BUCKETLOAD_LOG_FORMAT: "xml" },
      /^bucketload: Cannot parse environment variable BUCKETLOAD_LOG_FORMAT/,
    ],
    [noDatabase, /^bucketload: Deno Deploy has no persistent disk, .*: set DATABASE_URL \(a postgres:\/\/ URL; /],
    [
      { ...GOOD_ENV, DATABASE_URL: "mysql://u:pw-hidden@db/x" },
      /^bucketload: Cannot parse environment variable DATABASE_URL: expected a postgres:\/\/ .*\(the value is not shown/,
    ],
    [
      { ...GOOD_ENV, BUCKETLOAD_DATABASE_NAME: "/data/bucketload.sqlite3" },
      /^bucketload: BUCKETLOAD_DATABASE_NAME chooses a SQLite file over DATABASE_URL.*: unset BUCKETLOAD_DATABASE_NAME$/,
    ],
    [noBucket, /^bucketload: Missing 'BUCKET_NAME' in the environment: set it or BUCKETLOAD_BUCKET_NAME$/],
    // What platforms set: PORT is read (BUCKETLOAD_PORT wins over it), HOSTNAME is not.
    [
      { ...noPort, PORT: "http" },
      /^bucketload: Cannot parse environment variable PORT: expected a port, .*got "http"$/,
    ],
    [{ ...GOOD_ENV, BUCKETLOAD_PORT: "70000" }, /^bucketload: Cannot parse environment variable BUCKETLOAD_PORT: /],
    [
      { ...GOOD_ENV, BUCKETLOAD_HOST: "0.0.0.0:8080" },
      /^bucketload: Cannot parse environment variable BUCKETLOAD_HOST: .*without a scheme or a port/,
    ],
  ];
  for (const [env, line] of cases) {
    const { code, lines, listened } = await deployStartUp(env);
    const text = lines.join("\n");
    assert.equal(listened, false, `listened with ${JSON.stringify(env)}:\n${text}`);
    assert.equal(code, 2, text);
    assert.equal(lines.filter((l) => l !== "").length, 1, text);
    assert.match(lines[0]!, line);
    assert.doesNotMatch(text, /pw-hidden/);
  }
  // The same check, in-process: what the entry sees before it registers anything.
  assert.deepEqual(await checkDeployStart({ ...GOOD_ENV, BUCKETLOAD_CONCURENCY: "3" }), {
    error: "Unknown environment variable 'BUCKETLOAD_CONCURENCY': did you mean 'BUCKETLOAD_CONCURRENCY'?",
  });
  assert.deepEqual(await checkDeployStart({ ...noPort, PORT: "9000", HOSTNAME: "pod-7d9f8" }), {
    schedule: "*/15 * * * *",
    address: { hostname: "127.0.0.1", port: 9000 },
    warnings: [],
  });
});

Deno.test("deploy: a port in use is one line naming the address and the variables, exit 2, no stack", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { BUCKETLOAD_PORT: _, ...noPort } = GOOD_ENV;
  // PORT, as a platform sets it.
  const { code, lines, listened } = await deployStartUp({ ...noPort, PORT: String(taken.addr.port) });
  const text = lines.join("\n");
  assert.equal(listened, false, text);
  assert.equal(code, 2, text);
  assert.deepEqual(lines.filter((l) => l !== ""), [
    `bucketload: Cannot listen on 127.0.0.1:${taken.addr.port}: the address is in use ` +
    `(set BUCKETLOAD_PORT or PORT to a free port)`,
  ]);
});

Deno.test("deploy: a failing scheduled run is one line per tick, with no stack trace (Deno.cron never sees it throw)", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--cached-only", "--allow-all", join(ROOT, "deploy.ts")],
    // Deno's local cron fires this many ms after the previous tick, whatever the schedule.
    env: { NO_COLOR: "1", ...DENO_CACHE_ENV, ...GOOD_ENV, DENO_CRON_TEST_SCHEDULE_OFFSET: "20" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdout = new LineWatcher(child.stdout);
  const stderr = new LineWatcher(child.stderr);
  try {
    // Two failed ticks: the second comes after anything the first printed.
    await stdout.waitFor(/The scheduled run failed/, 2);
  } finally {
    child.kill("SIGTERM");
    await Promise.all([stdout.waitFor(TO_THE_END), stderr.waitFor(TO_THE_END)]);
    await child.status;
  }
  const lines = [...stdout.lines, ...stderr.lines];
  const text = lines.join("\n");
  const failures = stdout.lines.filter((l) => /The scheduled run failed/.test(l));
  assert.ok(failures.length >= 2, text);
  for (const line of failures) {
    assert.match(
      line,
      /\[ERR\] bucketload: The scheduled run failed: Cannot connect to PostgreSQL .*connection refused/,
    );
  }
  // The failure is said once per tick, on its line, and nothing else about it: no trace, no "Exception in cron handler".
  assert.equal(lines.filter((l) => /connection refused/.test(l)).length, failures.length, text);
  assert.doesNotMatch(text, /^\s+at |Exception in cron handler|pw-hidden/m);
});

Deno.test("deploy: runScheduled returns the run's code and says a failure in one line, never throws", async () => {
  const lines: string[] = [];
  const [log, error] = [console.log, console.error];
  console.log = console.error = (...args: unknown[]) => lines.push(args.join(" "));
  let codes: number[];
  try {
    codes = [
      await runScheduled({ BUCKETLOAD_BUCKET_NAME: "https://bucket.example.com/", DATABASE_URL: NO_SERVER_URL }),
      await runScheduled({ BUCKETLOAD_BUCKET_NAME: "https://bucket.example.com/" }),
    ];
  } finally {
    [console.log, console.error] = [log, error];
  }
  assert.deepEqual(codes, [2, 2]);
  assert.equal(lines.length, 2, lines.join("\n"));
  assert.match(
    lines[0]!,
    /The scheduled run failed: Cannot connect to PostgreSQL postgres:\/\/\*\*\*@127\.0\.0\.1:1\/db/,
  );
  assert.match(lines[1]!, /^bucketload: the scheduled run failed: Deno Deploy has no persistent disk/);
  assert.doesNotMatch(lines.join("\n"), /pw-hidden|\n\s+at /);
});
