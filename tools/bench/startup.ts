/**
 * Start-up: the same no-op run (the sample bucket, a database that already
 * holds it) started as `deno task run` (the task runner, the launcher,
 * main.ts: 3 Deno processes), as the installed `bucketload` command (the
 * launcher and main.ts: 2), and as main.ts alone (1), interleaved.
 *
 * @module
 */
import { join } from "node:path";
import { BENCH_DIR, bucketload, bucketloadRoot, INSTALLED, measure, removeDb, type Start } from "./kit.ts";

export type StartupReport = Record<Start, number[]>;

/** Installs the command into `.bench/install` (`deno task install` with DENO_INSTALL_ROOT). */
async function install(): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "--config", join(bucketloadRoot(), "deno.json"), "install"],
    env: { DENO_INSTALL_ROOT: join(BENCH_DIR, "install") },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`deno task install: ${new TextDecoder().decode(out.stderr)}`);
}

export async function startupCase(reps: number): Promise<StartupReport> {
  await install();
  const work = join(BENCH_DIR, "startup");
  await Deno.mkdir(work, { recursive: true });
  const db = join(work, "startup.sqlite3");
  await removeDb(db);
  const env = {
    BUCKETLOAD_BUCKET_NAME: join(bucketloadRoot(), "fixtures", "sample_bucket"),
    BUCKETLOAD_DATABASE_NAME: db,
  };
  await measure("first load", [bucketload(env, work, ["--quiet"], "main")]);
  const out: StartupReport = { task: [], installed: [], main: [] };
  for (let r = 0; r < reps; r++) {
    for (const start of ["task", "installed", "main"] as const) {
      const m = await measure(`no-op (${start})`, [bucketload(env, work, ["--quiet"], start)]);
      if (!/nothing to do/.test(m.stdouts[0]!)) throw new Error(`no-op (${start}): ${m.stdouts[0]}`);
      out[start].push(m.seconds);
    }
  }
  await removeDb(db);
  return out;
}

export { INSTALLED };
