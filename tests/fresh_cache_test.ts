/**
 * A machine whose Deno cache never saw the npm packages: once `deno task deps` has filled `node_modules`, every
 * documented way of starting bucketload, and the helpers the tests start it with, start offline and print only what
 * bucketload prints. Each child gets a new, empty `DENO_DIR`, and its npm registry and proxy are a local trap that
 * counts connections: there must be none. Without `--cached-only`, Deno fetches each npm package's metadata again at
 * every start (even `deno install` once all is installed) and prints `Download https://registry.npmjs.org/…` before
 * the program's own output, so that a one-line error is no longer one line.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli, LAUNCHER, LineWatcher, ROOT, withTempDir } from "./helpers.ts";

const decoder = new TextDecoder();
/** A pattern no line matches: wait for the end of the output. */
const TO_THE_END = /(?!)/;

type Output = { code: number; stdout: string; stderr: string };

/**
 * Runs `fn` with a new, empty Deno cache and a stand-in for the npm registry and any HTTP(S) proxy that counts the
 * connections it gets (and closes them); `env` is a child's whole environment on such a machine. Asserts at the end
 * that nothing connected.
 */
async function onFreshMachine(fn: (env: Record<string, string>, dir: string) => Promise<void>): Promise<void> {
  await withTempDir(async (dir) => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const seen: string[] = [];
    const accepting = (async () => {
      for await (const conn of listener) {
        seen.push(`connection ${seen.length + 1}`);
        conn.close();
      }
    })().catch(() => {});
    const trap = `http://127.0.0.1:${listener.addr.port}`;
    try {
      await fn({
        NO_COLOR: "1",
        PATH: Deno.env.get("PATH") ?? "",
        HOME: dir,
        DENO_DIR: join(dir, "deno-dir"),
        DENO_NO_UPDATE_CHECK: "1",
        NPM_CONFIG_REGISTRY: `${trap}/`,
        HTTPS_PROXY: trap,
        HTTP_PROXY: trap,
      }, dir);
      // A request started just before a child exited still reaches the trap.
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(seen, [], "a child contacted the npm registry (or went through the proxy)");
    } finally {
      listener.close();
      await accepting;
    }
  });
}

/** Asserts that no line of `output` is Deno's `Download …` (a registry request). */
function assertNoDownload(output: string, what: string): void {
  const lines = output.split("\n").filter((l) => /Download/.test(l));
  assert.deepEqual(lines, [], `${what} went to the registry:\n${output}`);
}

/** The one line of `stderr`. */
function oneLine(stderr: string): string {
  assert.equal(stderr.trim().split("\n").length, 1, `expected one line, got:\n${stderr}`);
  return stderr.trim();
}

/** Runs `deno ARGS` from `cwd` with only `env`, to the end. */
async function deno(args: string[], cwd: string, env: Record<string, string>): Promise<Output> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** The arguments of `deno task NAME ARGS` with the project's own task definitions, from any folder. */
const taskArgs = (name: string, args: string[] = []) => [
  "task",
  "--quiet",
  `--config=${join(ROOT, "deno.json")}`,
  name,
  ...args,
];

/** Asserts `--help` and a config error of one way of starting the CLI: no `Download` line, the error on one line. */
async function assertCliOffline(what: string, dir: string, start: (args: string[]) => Promise<Output>): Promise<void> {
  const help = await start(["--help"]);
  assert.equal(help.code, 0, `${what} --help: ${help.stderr}`);
  assert.match(help.stdout, /^bucketload \d+\.\d+\.\d+: /);
  assertNoDownload(help.stdout + help.stderr, `${what} --help`);
  const bad = await start(["--config", join(dir, "missing.ini"), "--profile", "p"]);
  assertNoDownload(bad.stdout + bad.stderr, `${what} with a missing config`);
  assert.equal(bad.code, 2, `${what}: ${bad.stderr}`);
  assert.match(oneLine(bad.stderr), /^bucketload: Cannot read config file .*missing\.ini/);
}

Deno.test("fresh Deno cache: deno task run (deps included) starts offline, with no Download line", async () => {
  await onFreshMachine(async (env, dir) => {
    await assertCliOffline("deno task run", dir, (args) => deno(taskArgs("run", args), dir, env));
  });
});

Deno.test("fresh Deno cache: the launcher and main.ts as the tests start them (LAUNCHER, cli()) start offline", async () => {
  await onFreshMachine(async (env, dir) => {
    await assertCliOffline("the launcher", dir, (args) => deno([...LAUNCHER, ...args], dir, env));
    // cli() keeps the test's DENO_DIR; here it gets an empty one, as on a machine whose cache never saw the packages.
    await assertCliOffline("main.ts (cli())", dir, (args) => cli(args, { cwd: dir, env }));
  });
});

Deno.test("fresh Deno cache: the local Deploy run (deno task deploy) refuses a bad schedule in one line, offline", async () => {
  // The docs' way of trying the Deploy entry here is this task.
  const doc = await Deno.readTextFile(join(ROOT, "docs", "operating.md"));
  const deploySection = doc.slice(doc.indexOf("## Deno Deploy"), doc.indexOf("## Docker"));
  assert.match(deploySection, /`[^`]*deno task deploy`/, "docs/operating.md does not start deploy.ts with the task");
  await onFreshMachine(async (env) => {
    const bad = await deno(taskArgs("deploy"), ROOT, {
      ...env,
      BUCKETLOAD_PORT: "0",
      BUCKETLOAD_HOST: "127.0.0.1",
      BUCKETLOAD_SCHEDULE: "every minute",
    });
    assertNoDownload(bad.stdout + bad.stderr, "deno task deploy");
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(oneLine(bad.stderr), /^bucketload: Cannot parse BUCKETLOAD_SCHEDULE: /);
  });
});

Deno.test("fresh Deno cache: the local Deploy run (deno task deploy) listens and answers /health, offline", async () => {
  await onFreshMachine(async (env) => {
    const child = new Deno.Command(Deno.execPath(), {
      args: taskArgs("deploy"),
      cwd: ROOT,
      env: {
        ...env,
        BUCKETLOAD_PORT: "0",
        BUCKETLOAD_HOST: "127.0.0.1",
        BUCKETLOAD_BUCKET_NAME: "https://bucket.example.com/",
        // Nothing listens there: deploy.ts connects at a cron tick, not at start.
        DATABASE_URL: "postgres://bucketload@127.0.0.1:1/bucketload",
        BUCKETLOAD_STATUS_TOKEN: "fresh-cache-token",
      },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdout = new LineWatcher(child.stdout);
    const stderr = new LineWatcher(child.stderr);
    try {
      await stderr.waitFor(/Listening on http:\/\/127\.0\.0\.1:\d+/);
      const line = stderr.lines.find((l) => /Listening on/.test(l));
      assert.ok(line !== undefined, `deploy.ts did not listen:\n${stderr.lines.join("\n")}`);
      const base = line.match(/http:\/\/127\.0\.0\.1:\d+/)![0];
      assert.deepEqual(await (await fetch(`${base}/health`)).json(), { ok: true });
    } finally {
      try {
        child.kill("SIGTERM");
      } catch { /* it has ended: its lines say why */ }
      await Promise.all([stdout.waitFor(TO_THE_END), stderr.waitFor(TO_THE_END)]);
      await child.status;
    }
    assertNoDownload([...stdout.lines, ...stderr.lines].join("\n"), "deno task deploy");
  });
});
