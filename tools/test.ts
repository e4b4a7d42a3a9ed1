/**
 * `deno task test [ARGS]`: everything the tests need, then `deno test`.
 *
 * - The test S3 server (npm `@20minutes/s3rver`, pinned by
 *   `tools/s3rver/package-lock.json`) is installed with `npm ci` when missing.
 * - Debian's `chromium` (the status page's browser test), `nginx` (a bucket
 *   server we did not write) and `jq` (the docs' examples) are installed with
 *   apt-get when missing.
 * - A throw-away PostgreSQL cluster is started on 127.0.0.1 for the run
 *   (`tools/pg_cluster.sh`, which installs Debian's `postgresql-15` where the
 *   user may) and stopped afterwards, unless `BL_TEST_DATABASE_URL` names one.
 * - Then `deno test` runs `tests/` (or ARGS) with the permissions the tests need.
 *
 * What truly cannot be had here (no npm, no PostgreSQL and no right to
 * install it) is skipped with a one-line notice; with `CI=true` the tests
 * that need it fail instead.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const notice = (text: string) => console.log(`NOTICE: ${text}`);

/** Runs a command to its end; `undefined` when it cannot be started. */
async function run(command: string, args: string[], options: { cwd?: string } = {}) {
  try {
    const out = await new Deno.Command(command, { args, cwd: options.cwd ?? ROOT, stdout: "piped", stderr: "piped" })
      .output();
    const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes).trim();
    return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

const lastLine = (text: string) => text.split("\n").at(-1) ?? "";

async function ensureS3Server(): Promise<void> {
  if (existsSync(join(ROOT, "tools", "s3rver", "node_modules", "@20minutes", "s3rver"))) return;
  console.log("Installing the test S3 server into tools/s3rver (npm ci)");
  const out = await run("npm", ["ci", "--prefix", "tools/s3rver", "--no-audit", "--no-fund"]);
  if (out === undefined) notice("S3 tests will be skipped: npm is not installed (Node.js runs the test S3 server)");
  else if (out.code !== 0) notice(`S3 tests will be skipped: npm ci failed: ${lastLine(out.stderr)}`);
}

/**
 * A Debian package's command the tests need, installed with apt-get when
 * missing and allowed: `chromium` (the status page's browser test), `nginx`
 * (a bucket server we did not write: ETag, 304, gzip), `jq` (the docs'
 * examples pipe through it).
 */
async function ensureDebian(command: string, versionArgs: string[], pkg: string, why: string): Promise<void> {
  if ((await run(command, versionArgs))?.code === 0) return;
  console.log(`Installing ${pkg} with apt-get (${why})`);
  const install = async () =>
    (await run("apt-get", ["install", "-y", "-qq", "--no-install-recommends", pkg]))?.code === 0;
  if (await install()) return;
  await run("apt-get", ["update", "-qq"]);
  if (!(await install())) {
    notice(`The tests that need ${command} (${why}) will fail or be skipped: cannot install ${pkg}`);
  }
}

/** Starts a cluster; returns its URL and how to stop it, or `undefined` with a notice. */
async function startPostgres(): Promise<{ url: string; stop: () => Promise<void> } | undefined> {
  const dir = await Deno.makeTempDir({ prefix: "bucketload-test-pg-" });
  const port = Deno.env.get("BL_TEST_PG_PORT") ?? "54329";
  const out = await run("bash", [join(ROOT, "tools", "pg_cluster.sh"), "start", dir, port]);
  if (out === undefined || out.code !== 0) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    const why = out === undefined ? "bash is not installed" : lastLine(out.stderr) || `exit ${out.code}`;
    notice(`PostgreSQL tests will be skipped: cannot start a throw-away cluster: ${why}`);
    return undefined;
  }
  console.log(`PostgreSQL for the tests: ${out.stdout}`);
  return {
    url: out.stdout,
    stop: async () => void await run("bash", [join(ROOT, "tools", "pg_cluster.sh"), "stop", dir]),
  };
}

async function main(args: readonly string[]): Promise<number> {
  await ensureS3Server();
  await ensureDebian("chromium", ["--version"], "chromium", "the status page's browser test");
  await ensureDebian("nginx", ["-v"], "nginx-light", "a bucket server we did not write");
  await ensureDebian("jq", ["--version"], "jq", "the docs' examples");
  const given = Deno.env.get("BL_TEST_DATABASE_URL");
  const pg = given === undefined ? await startPostgres() : undefined;
  const env: Record<string, string> = {};
  const url = given ?? pg?.url;
  if (url !== undefined) env.BL_TEST_DATABASE_URL = url;
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "test",
        // Offline: `deno task deps` installed the packages (without it, each start asks the registry for metadata).
        "--cached-only",
        "--allow-read",
        "--allow-write",
        "--allow-net=127.0.0.1",
        "--allow-env",
        "--allow-run",
        ...(args.length > 0 ? args : ["tests/"]),
      ],
      cwd: ROOT,
      env,
    }).spawn();
    const stop = (signal: Deno.Signal) => () => {
      try {
        child.kill(signal);
      } catch { /* gone */ }
    };
    const handlers = (["SIGINT", "SIGTERM"] as const).map((s) => [s, stop(s)] as const);
    for (const [s, h] of handlers) Deno.addSignalListener(s, h);
    const status = await child.status;
    for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
    return status.code;
  } finally {
    await pg?.stop();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
