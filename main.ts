/**
 * bucketload's command line: parses flags, loads the profile, and runs an
 * action (a run, a dry run, status, or runs on a schedule). Exit codes: 0 ok,
 * 1 the list or a file failed or the lock is held, 2 usage or config error,
 * 130/143 stopped by SIGINT/SIGTERM (rolled back).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { parseArgs } from "node:util";
import denoJson from "./deno.json" with { type: "json" };
import { dryRunAction, preflight, runOnceAction, statusAction } from "./mod/cli/actions.ts";
import { type Config, CONFIG_KEYS, ENV_CHOOSERS, ENV_PREFIX, loadConfig } from "./mod/config.ts";

export { nonOverlapping } from "./mod/cli/schedule.ts";
import { refuseReason } from "./mod/source/location.ts";
import { UsageError } from "./mod/errors.ts";
import { closeLogging, setupLogging } from "./mod/cli/log.ts";
import { ProgressLine } from "./mod/cli/progress.ts";
import { type CronPlan, parseCron, schedule, SIGNAL_CODES, StopSignal } from "./mod/cli/schedule.ts";
import { LockedError } from "./mod/store/store.ts";

const HELP = `bucketload ${denoJson.version}: load a bucket's new JSON files into SQLite, exactly once

Usage:
  deno task run [options]            run the pipeline once (or on --schedule)
  deno task run --dry-run [options]  print what a run would do
  deno task run status [--json]      last runs, registry, top rejections, recent problem keys

Options:
  --config PATH        config file (default ./config.ini, or $BUCKETLOAD_CONFIG)
  --profile NAME       profile (section) to use (default "default", or $BUCKETLOAD_PROFILE)
  --force              re-fetch and re-load keys already processed
  --retry-invalid      re-fetch only keys registered as invalid (e.g. after fixing a rule)
  --key KEY            fetch (again) only this key; repeat for more
  --dry-run            fetch only the list and print what a run would do; write nothing
  --concurrency N      parallel fetches (overrides CONCURRENCY)
  --log-level LEVEL    debug, info, warning or error (overrides LOG_LEVEL)
  --log-format FORMAT  text or json (overrides LOG_FORMAT)
  --quiet              no progress bar
  --schedule CRON      stay up and run on this cron schedule (UTC), e.g. "*/15 * * * *"
  --run-at-start       with --schedule: also run once right away
  --json               print the summary (or status) as one JSON document
  -h, --help           show this help
  --version            show the version

Profile keys (each also settable as BUCKETLOAD_<KEY>):
${
  Object.entries(CONFIG_KEYS).map(([k, s]) => `  ${k.padEnd(26)}${s.help}${s.default ? ` (default ${s.default})` : ""}`)
    .join("\n")
}

Exit codes: 0 ok; 1 the list or a file failed, or another run holds the lock; 2 usage or config error;
130/143 stopped by SIGINT/SIGTERM (the run is rolled back).
`;

const OPTIONS = {
  config: { type: "string" },
  profile: { type: "string" },
  force: { type: "boolean" },
  "retry-invalid": { type: "boolean" },
  "dry-run": { type: "boolean" },
  concurrency: { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  quiet: { type: "boolean" },
  schedule: { type: "string" },
  "run-at-start": { type: "boolean" },
  key: { type: "string", multiple: true },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
} as const;

/** The parsed command line. */
export interface Cli {
  readonly command: "run" | "status";
  readonly help: boolean;
  readonly version: boolean;
  readonly force: boolean;
  readonly retryInvalid: boolean;
  readonly dryRun: boolean;
  readonly quiet: boolean;
  readonly json: boolean;
  readonly schedule: string | undefined;
  readonly runAtStart: boolean;
  /** `--key` values: fetch only these. */
  readonly keys: readonly string[] | undefined;
  readonly configPath: string | undefined;
  readonly profile: string | undefined;
  /** Profile keys set by flags. */
  readonly overrides: Readonly<Record<string, string>>;
}

/**
 * Parses the command line.
 *
 * @throws {UsageError} on an unknown flag or command, a missing value, or flags that don't go together
 */
export function parseCli(args: readonly string[]): Cli {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options: OPTIONS, strict: true, allowPositionals: true });
  } catch (error) {
    const message = (error as Error).message.replace(/\. To specify.*$/s, "").replace(/\.$/, "");
    throw new UsageError(`${message}: run with --help for the list of flags`, { subject: "flags" });
  }
  const { values, positionals } = parsed;
  if (positionals.length > 1 || (positionals[0] !== undefined && !["run", "status"].includes(positionals[0]))) {
    throw new UsageError(`Unknown command '${positionals.join(" ")}': expected 'run' or 'status'`, {
      subject: "command",
    });
  }
  const command = (positionals[0] ?? "run") as Cli["command"];
  const only = (flag: keyof typeof values, where: Cli["command"]) => {
    if (values[flag] !== undefined && command !== where) {
      throw new UsageError(`Flag --${flag} only applies to '${where}'`, { subject: `--${flag}` });
    }
  };
  for (const flag of ["force", "retry-invalid", "dry-run", "schedule", "concurrency", "key", "run-at-start"] as const) {
    only(flag, "run");
  }
  const clash = (a: keyof typeof values, b: keyof typeof values) => {
    if (values[a] !== undefined && values[b] !== undefined) {
      throw new UsageError(`Flags --${a} and --${b} don't go together`, { subject: `--${b}` });
    }
  };
  clash("dry-run", "schedule");
  clash("force", "retry-invalid");
  clash("force", "key");
  clash("retry-invalid", "key");
  clash("key", "schedule");
  clash("json", "schedule");
  if (values["run-at-start"] && values.schedule === undefined) {
    throw new UsageError("Flag --run-at-start needs --schedule", { subject: "--run-at-start" });
  }
  for (const key of values.key ?? []) {
    const reason = refuseReason(key);
    if (reason !== undefined) {
      throw new UsageError(`Cannot use --key ${JSON.stringify(key)}: ${reason}`, { subject: "--key" });
    }
  }
  const overrides: Record<string, string> = {};
  if (values.concurrency !== undefined) {
    if (!/^\s*\d+\s*$/.test(values.concurrency)) {
      throw new UsageError(
        `Cannot parse --concurrency: expected a positive integer, got ${JSON.stringify(values.concurrency)}`,
        { subject: "--concurrency" },
      );
    }
    overrides.CONCURRENCY = values.concurrency;
  }
  if (values["log-level"] !== undefined) overrides.LOG_LEVEL = values["log-level"];
  if (values["log-format"] !== undefined) overrides.LOG_FORMAT = values["log-format"];
  return {
    command,
    help: values.help ?? false,
    version: values.version ?? false,
    force: values.force ?? false,
    retryInvalid: values["retry-invalid"] ?? false,
    dryRun: values["dry-run"] ?? false,
    quiet: values.quiet ?? false,
    json: values.json ?? false,
    schedule: values.schedule,
    runAtStart: values["run-at-start"] ?? false,
    keys: values.key,
    configPath: values.config,
    profile: values.profile,
    overrides,
  };
}

/** Variables of other tools that bucketload reads: the PostgreSQL URL and the AWS credentials. */
const PLAIN_ENV = [
  "DATABASE_URL",
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_PROFILE",
  "AWS_SHARED_CREDENTIALS_FILE",
  "HOME",
];

/**
 * The environment bucketload reads: all of it when allowed, else only the
 * `BUCKETLOAD_*` names it knows and `DATABASE_URL` (under
 * `--allow-env=BUCKETLOAD_*,DATABASE_URL,PG*`; the PostgreSQL client reads `PG*` itself).
 */
export function readEnv(): Record<string, string> {
  if (Deno.permissions.querySync({ name: "env" }).state === "granted") return Deno.env.toObject();
  const env: Record<string, string> = {};
  for (const name of [...ENV_CHOOSERS, ...Object.keys(CONFIG_KEYS).map((k) => ENV_PREFIX + k), ...PLAIN_ENV]) {
    let value: string | undefined;
    try {
      value = Deno.env.get(name);
    } catch { /* not granted: treated as unset */ }
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/** Whether an action (a run, a dry run, status) is going, so that a stop signal says what it stops. */
let busy = false;

/** Aborts on SIGINT/SIGTERM; a second signal exits at once (nothing is committed). */
function trapSignals(controller: AbortController): () => void {
  const handlers = Object.entries(SIGNAL_CODES).map(([name, code]) => {
    const handler = () => {
      if (controller.signal.aborted) Deno.exit(code);
      const logger = getLogger(["bucketload"]);
      if (busy) logger.warn("Received {signal}: stopping and rolling back", { signal: name });
      else logger.info("Received {signal}: stopping (no run in progress)", { signal: name });
      controller.abort(new StopSignal(name as keyof typeof SIGNAL_CODES));
    };
    Deno.addSignalListener(name as Deno.Signal, handler);
    return [name as Deno.Signal, handler] as const;
  });
  return () => handlers.forEach(([name, handler]) => Deno.removeSignalListener(name, handler));
}

/**
 * The one line for an error a person can fix: a usage or config error, or a
 * permission Deno denied (named with its path and the fix). `undefined` for
 * anything else.
 */
export function fixableError(error: unknown): string | undefined {
  if (error instanceof UsageError) return error.message;
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    const what = (error as Error).message.replace(/, run again with .*$/s, "").replace(/\.$/, "");
    return `Permission denied: ${what}: run through 'deno task run' (it grants the paths of the resolved config), ` +
      `or grant that path with --allow-read/--allow-write, or point the setting at a path you may use`;
  }
  return undefined;
}

/** Runs the CLI and returns the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  const encoder = new TextEncoder();
  const out = (text: string) => Deno.stdout.writeSync(encoder.encode(text));
  const err = (text: string) => Deno.stderr.writeSync(encoder.encode(text));
  let config: Config;
  let cli: Cli;
  let cron: CronPlan | undefined;
  try {
    cli = parseCli(args);
    if (cli.help) {
      out(HELP);
      return 0;
    }
    if (cli.version) {
      out(`bucketload ${denoJson.version}\n`);
      return 0;
    }
    config = await loadConfigFromEnv(cli);
    // Everything that can be checked is checked before a log line or a file is written.
    if (cli.schedule !== undefined) cron = await parseCron(cli.schedule);
    if (cli.command === "run" && !cli.dryRun) await preflight(config);
  } catch (error) {
    const line = fixableError(error);
    if (line === undefined) throw error;
    err(`bucketload: ${line}\n`);
    return 2;
  }

  const interactive = cli.command === "run" && !cli.dryRun && !cli.quiet && !cli.json && cli.schedule === undefined &&
    Deno.stderr.isTerminal();
  const progress = interactive ? new ProgressLine() : undefined;
  const onResize = () => progress?.resize();
  if (progress !== undefined && Deno.build.os !== "windows") Deno.addSignalListener("SIGWINCH", onResize);
  // The summary replaces the progress bar rather than continuing its line.
  const print = (text: string) => {
    progress?.clear();
    out(text);
  };
  let logFile: string | undefined;
  try {
    logFile = await setupLogging({
      level: config.logLevel,
      format: config.logFormat,
      logDir: cli.command === "run" && !cli.dryRun ? config.logDir : undefined,
      write: progress === undefined ? undefined : (text) => progress.writeAbove(text),
    });
  } catch (error) {
    const line = fixableError(error) ?? `Cannot open the log: ${(error as Error).message}`;
    err(`bucketload: ${line}\n`);
    return 2;
  }
  const logger = getLogger(["bucketload"]);
  const controller = new AbortController();
  const untrap = trapSignals(controller);
  const guard = async (action: () => Promise<number>): Promise<number> => {
    busy = true;
    try {
      return await action();
    } catch (error) {
      const reason = controller.signal.aborted ? controller.signal.reason : error;
      if (reason instanceof StopSignal) {
        progress?.clear();
        err(`bucketload: ${reason.message}: the run was rolled back, nothing was written\n`);
        return SIGNAL_CODES[reason.signal];
      }
      const line = fixableError(error);
      if (line !== undefined) {
        progress?.clear();
        err(`bucketload: ${line}\n`);
        return 2;
      }
      if (error instanceof LockedError) {
        err(`bucketload: ${error.message}\n`);
        return 1;
      }
      logger.fatal("Run failed: {error}", { error });
      err(`bucketload: run failed: ${(error as Error).message}\n`);
      return 1;
    } finally {
      busy = false;
      progress?.clear();
    }
  };
  try {
    if (logFile !== undefined) logger.info("Logging to {logFile}", { logFile });
    if (cli.command === "status") return await guard(() => statusAction(config, print, { json: cli.json }));
    if (cli.dryRun) {
      return await guard(() =>
        dryRunAction(config, print, { force: cli.force, retryInvalid: cli.retryInvalid, keys: cli.keys })
      );
    }
    const runOnce = () =>
      guard(() =>
        runOnceAction(config, print, {
          force: cli.force,
          retryInvalid: cli.retryInvalid,
          keys: cli.keys,
          json: cli.json,
          signal: controller.signal,
          onProgress: progress === undefined ? undefined : (p) => progress.update(p),
        })
      );
    if (cron === undefined) return await runOnce();
    return await schedule(cron, runOnce, controller.signal, { runAtStart: cli.runAtStart });
  } finally {
    untrap();
    if (progress !== undefined && Deno.build.os !== "windows") Deno.removeSignalListener("SIGWINCH", onResize);
    await closeLogging();
  }
}

/** The working directory the user ran from: `deno task` runs in the project folder and keeps it in INIT_CWD. */
export function userCwd(env: Readonly<Record<string, string>>): string {
  return env.BUCKETLOAD_CWD ?? env.INIT_CWD ?? Deno.cwd();
}

/** Reads the config file the flags name, with `env` (the environment by default) for overrides and choosers. */
export async function loadConfigFromEnv(cli: Cli, env: Record<string, string> = readEnv()): Promise<Config> {
  return await loadConfig({
    configPath: cli.configPath ?? env.BUCKETLOAD_CONFIG,
    profile: cli.profile ?? env.BUCKETLOAD_PROFILE,
    env,
    overrides: cli.overrides,
    cwd: userCwd(env),
  });
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
