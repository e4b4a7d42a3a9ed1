/**
 * The launcher behind `deno task run`. It parses the flags and resolves the
 * config exactly as main.ts does (so usage and config errors, an unknown
 * `BUCKETLOAD_*` variable included, exit 2 here), then runs main.ts in a
 * child Deno granted only what that config needs: read and write of the
 * database's, registry file's and log folders, read of the config file and a
 * folder bucket, network to the bucket's host:port alone, and the
 * `BUCKETLOAD_*` variables. The code that parses untrusted bucket data thus
 * runs with least privilege, wherever the config and database live.
 *
 * Signals are passed on to the child, and its exit code is returned.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Config } from "./mod/config/config.ts";
import { COMMAND_NAME_VAR, fixableError, loadConfigFromEnv, parseCli, readEnv, userCwd } from "./mod/cli/args.ts";
import type { StoreKind } from "./mod/store/kind.ts";
import { STORES } from "./mod/store/stores.ts";
import { lastWords } from "./mod/cli/last_words.ts";
import { watchParent } from "./mod/cli/parent.ts";

/** The project folder: main.ts, mod/ (the worker module is read at run time), deno.json, node_modules. */
const PROJECT = dirname(fileURLToPath(import.meta.url));

/** What the child needs: the command and whether it writes. */
export interface Need {
  /** The child's command. */
  readonly command: "run" | "status" | "serve" | "replay";
  /** `--dry-run`: the child writes nothing. */
  readonly dryRun: boolean;
  /** `serve`: the address it listens on. */
  readonly listen?: { readonly host: string; readonly port: number } | undefined;
}

/**
 * The permission flags a child running `need` on `config` gets: what the
 * config's store and source say they need (their kinds' `needs`), the config
 * file, the registry file's and log folders, and the variables that name a
 * store (every kind of `stores`), since the child chooses the store again.
 * Paths are folders, because SQLite and the atomic registry copy create files
 * beside their targets.
 */
export function childPermissions(
  config: Config,
  need: Need,
  project = PROJECT,
  stores: readonly StoreKind[] = STORES,
): string[] {
  // A replay writes, and even its dry run takes the run lock (its lock note is a file beside the database).
  const writes = (need.command === "run" && !need.dryRun) || need.command === "replay";
  const read = new Set<string>([project]);
  const write = new Set<string>();
  const both = (path: string) => {
    read.add(path);
    if (writes) write.add(path);
  };
  const vars = readEnv();
  const store = config.store.kind.needs(config.store.spec, vars);
  const source = config.source.kind.needs(config.source.spec, vars);
  if (config.configPath !== undefined) read.add(config.configPath);
  for (const path of store.write ?? []) both(path);
  for (const path of store.read ?? []) read.add(path);
  if (config.processedFilesPath !== undefined) both(dirname(config.processedFilesPath));
  if (writes && config.logDir !== undefined) both(config.logDir);
  for (const path of source.write ?? []) both(path);
  for (const path of source.read ?? []) read.add(path);
  const flags = ["--no-prompt", `--allow-read=${[...read].join(",")}`];
  if (write.size > 0) flags.push(`--allow-write=${[...write].join(",")}`);
  const net = [...source.net ?? []];
  if (need.command === "serve" && need.listen !== undefined) {
    const { host, port } = need.listen;
    const name = host.includes(":") ? `[${host}]` : host;
    net.push(port === 0 ? name : `${name}:${port}`);
  }
  // OpenTelemetry: Deno's exporter reads OTEL_* itself; the collector is allowed too (the exporter needs no
  // permission today, but what the child may reach is written here, in one place).
  const env = ["BUCKETLOAD_*", ...new Set(stores.flatMap((s) => s.variables ?? [])), "OTEL_*", ...source.env ?? []];
  net.push(...collectorHosts(vars), ...store.net ?? []);
  env.push(...store.env ?? []);
  if (net.length > 0) flags.push(`--allow-net=${net.join(",")}`);
  flags.push(`--allow-env=${env.join(",")}`);
  return flags;
}

/** The OTLP collectors' `host:port` when `OTEL_DENO` is on: each signal's endpoint, else the common one. */
export function collectorHosts(env: Readonly<Record<string, string>>): string[] {
  if (!/^(true|1)$/i.test(env.OTEL_DENO?.trim() ?? "")) return [];
  const common = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || "http://localhost:4318";
  const hosts = new Set<string>();
  for (const signal of ["TRACES", "METRICS", "LOGS"]) {
    const endpoint = env[`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`]?.trim() || common;
    try {
      const u = new URL(endpoint);
      hosts.add(`${u.hostname}:${u.port || (u.protocol === "https:" ? "443" : "80")}`);
    } catch { /* Deno reports a bad endpoint itself */ }
  }
  return [...hosts];
}

/**
 * With `OTEL_DENO` on, the child's log lines reach the collector through Deno's console capture (mod/commands/log.ts):
 * `OTEL_DENO_CONSOLE=replace` has what it hands the console exported and not printed, since it prints its lines
 * itself. `ignore` is kept (no log line is exported); `capture`, Deno's default, would print each line twice.
 */
export function otelConsole(env: Readonly<Record<string, string>>): Record<string, string> {
  if (!/^(true|1)$/i.test(env.OTEL_DENO?.trim() ?? "")) return {};
  return env.OTEL_DENO_CONSOLE?.trim().toLowerCase() === "ignore" ? {} : { OTEL_DENO_CONSOLE: "replace" };
}

/**
 * The parent this launcher started under, read as early as the module runs.
 * Under `deno task` it is the task runner.
 */
const TASK_RUNNER = Deno.ppid;

/**
 * Whether the task runner was killed before this launcher got to read its
 * parent: it was then adopted by init (pid 1), unless the runner is itself
 * pid 1 (a container's `CMD deno task run`), which `ps` tells. Without `ps`,
 * the launcher runs.
 */
async function orphanedAtStart(): Promise<boolean> {
  if (Deno.env.get("INIT_CWD") === undefined) return false;
  if (Deno.ppid !== TASK_RUNNER) return true;
  if (TASK_RUNNER !== 1) return false;
  try {
    const out = await new Deno.Command("ps", { args: ["-o", "comm=", "-p", "1"], stdout: "piped", stderr: "null" })
      .output();
    return out.code === 0 && !/deno/.test(new TextDecoder().decode(out.stdout));
  } catch {
    return false;
  }
}

/** The first argument of the installed command (tools/install.ts): the name it was installed as. */
export const INSTALLED_AS = "--installed-as=";

/**
 * The command the user typed, and their arguments: the installed command
 * passes its name first (`--installed-as=bucketload`); else `deno task run`,
 * the task behind which this launcher runs.
 */
export function startedAs(args: readonly string[]): { name: string; args: readonly string[] } {
  const name = args[0]?.startsWith(INSTALLED_AS) ? args[0].slice(INSTALLED_AS.length).trim() : undefined;
  return name ? { name, args: args.slice(1) } : { name: "deno task run", args };
}

/** Runs the launcher: returns the child's exit code, or 2 for a usage or config error. */
export async function launch(argv: readonly string[]): Promise<number> {
  if (await orphanedAtStart()) return 143;
  const { name, args } = startedAs(argv);
  const err = (text: string) => Deno.stderr.writeSync(new TextEncoder().encode(text));
  const env = readEnv();
  let config: Config | undefined;
  let need: Need & { readonly schedule?: string | undefined } = { command: "run", dryRun: false };
  try {
    const cli = parseCli(args);
    need = cli;
    if (!cli.help && !cli.version) {
      // The schedule is checked by the child (exit 2, one line): the launcher loads no npm package, so that the
      // installed command (deno install -g) needs nothing beyond this checkout.
      config = await loadConfigFromEnv(cli, env);
    }
  } catch (error) {
    const line = fixableError(error, name);
    if (line === undefined) throw error;
    err(`bucketload: ${line}\n`);
    return 2;
  }
  // --help and --version read no config: the child may read only the name it was started as.
  const permissions = config === undefined
    ? ["--no-prompt", `--allow-env=${COMMAND_NAME_VAR}`]
    : childPermissions(config, need);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--cached-only",
      `--config=${join(PROJECT, "deno.json")}`,
      ...permissions,
      "--v8-flags=--max-semi-space-size=4",
      join(PROJECT, "main.ts"),
      ...args,
    ],
    // The child stops, rolling back, when this launcher is gone (even by SIGKILL).
    // It is told the name it was started as, for --help and the hints of its error lines.
    env: {
      BUCKETLOAD_CWD: userCwd(env),
      BUCKETLOAD_WATCH_PARENT: String(Deno.pid),
      [COMMAND_NAME_VAR]: name,
      ...otelConsole(env),
    },
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const forward = (["SIGINT", "SIGTERM"] as const).map((signal) => {
    const handler = () => {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
    };
    Deno.addSignalListener(signal, handler);
    return () => Deno.removeSignalListener(signal, handler);
  });
  // Under a task runner (`deno task run` sets INIT_CWD), the user started the runner, not this launcher: when the
  // runner is killed, this launcher stops its child and exits rather than run on as an orphan.
  const unwatch = Deno.env.get("INIT_CWD") === undefined ? () => {} : watchParent(() => {
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
  }, TASK_RUNNER);
  const status = await child.status;
  unwatch();
  forward.forEach((remove) => remove());
  // A child stopped by SIGINT or SIGTERM has said so itself (or had not started its work); one killed by any other
  // signal (SIGKILL from the out-of-memory killer, a crash) could say nothing: the launcher does. Deno gives such a
  // child the code 128 + the signal's number, as a shell does (137 for SIGKILL).
  if (status.signal !== null && status.signal !== "SIGINT" && status.signal !== "SIGTERM") {
    // A progress bar the child drew on a terminal is cleared first.
    err(`${Deno.stderr.isTerminal() ? "\r\x1b[2K" : ""}bucketload: ${killedLine(need, status.signal)}\n`);
  }
  return status.code;
}

/** What a child killed by `signal` leaves behind, for the command it ran. */
export function killedLine(need: Need & { readonly schedule?: string | undefined }, signal: Deno.Signal): string {
  const by = `killed by ${signal}${signal === "SIGKILL" ? " (possibly by the out-of-memory killer)" : ""}`;
  if (need.command === "run" && need.schedule !== undefined) {
    return `the scheduled runs were ${by}: a run in progress is rolled back, runs that finished are kept`;
  }
  if ((need.command === "run" || need.command === "replay") && !need.dryRun) {
    return `the ${need.command} was ${by}: unless it had committed (status shows it), it is rolled ` +
      `back; the next ${need.command} does its work`;
  }
  const what = { run: "dry run", replay: "replay's dry run", status: "status command", serve: "status server" };
  return `the ${what[need.command]} was ${by}; it writes nothing`;
}

if (import.meta.main) {
  Deno.exit(await launch(Deno.args).catch(lastWords));
}
