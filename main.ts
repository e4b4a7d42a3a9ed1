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
import { dryRunAction, runOnceAction, statusAction } from "./mod/actions.ts";
import { type Config, CONFIG_KEYS, ENV_CHOOSERS, ENV_PREFIX, loadConfig } from "./mod/config.ts";
import { UsageError } from "./mod/errors.ts";
import { closeLogging, setupLogging } from "./mod/log.ts";
import { ProgressLine } from "./mod/progress.ts";
import { LockedError } from "./mod/store.ts";

const HELP = `bucketload ${denoJson.version}: load a bucket's new JSON files into SQLite, exactly once

Usage:
  deno task run [options]            run the pipeline once (or on --schedule)
  deno task run status [--json]      last runs, registry, top rejections, recent problem keys

Options:
  --config PATH        config file (default ./config.ini, or $BUCKETLOAD_CONFIG)
  --profile NAME       profile (section) to use (default "default", or $BUCKETLOAD_PROFILE)
  --force              re-fetch and re-load keys already processed
  --retry-invalid      re-fetch only keys registered as invalid (e.g. after fixing a rule)
  --dry-run            fetch only the list and print what a run would do; write nothing
  --concurrency N      parallel fetches (overrides CONCURRENCY)
  --log-level LEVEL    debug, info, warning or error (overrides LOG_LEVEL)
  --log-format FORMAT  text or json (overrides LOG_FORMAT)
  --quiet              no progress bar
  --schedule CRON      stay up and run on this cron schedule (UTC), e.g. "*/15 * * * *"
  --json               status: print one JSON document
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
  only("json", "status");
  for (const flag of ["force", "retry-invalid", "dry-run", "schedule", "concurrency"] as const) only(flag, "run");
  if (values["dry-run"] && values.schedule !== undefined) {
    throw new UsageError("Flags --dry-run and --schedule don't go together", { subject: "--schedule" });
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
    configPath: values.config,
    profile: values.profile,
    overrides,
  };
}

/**
 * The environment bucketload reads: all of it when allowed, else only the
 * `BUCKETLOAD_*` names it knows (under `--allow-env=BUCKETLOAD_*`).
 */
export function readEnv(): Record<string, string> {
  if (Deno.permissions.querySync({ name: "env" }).state === "granted") return Deno.env.toObject();
  const env: Record<string, string> = {};
  for (const name of [...ENV_CHOOSERS, ...Object.keys(CONFIG_KEYS).map((k) => ENV_PREFIX + k)]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

const SIGNAL_CODES = { SIGINT: 130, SIGTERM: 143 } as const;

/** Aborts on SIGINT/SIGTERM; a second signal exits at once (nothing is committed). */
function trapSignals(controller: AbortController): () => void {
  const handlers = Object.entries(SIGNAL_CODES).map(([name, code]) => {
    const handler = () => {
      if (controller.signal.aborted) Deno.exit(code);
      getLogger(["bucketload"]).warn("Received {signal}: stopping and rolling back", { signal: name });
      controller.abort(new StopSignal(name as keyof typeof SIGNAL_CODES));
    };
    Deno.addSignalListener(name as Deno.Signal, handler);
    return [name as Deno.Signal, handler] as const;
  });
  return () => handlers.forEach(([name, handler]) => Deno.removeSignalListener(name, handler));
}

/** The reason a run was stopped by a signal. */
class StopSignal extends Error {
  constructor(readonly signal: keyof typeof SIGNAL_CODES) {
    super(`Stopped by ${signal}`);
    this.name = "StopSignal";
  }
}

/** Runs the CLI and returns the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  const encoder = new TextEncoder();
  const out = (text: string) => Deno.stdout.writeSync(encoder.encode(text));
  const err = (text: string) => Deno.stderr.writeSync(encoder.encode(text));
  let config: Config;
  let cli: Cli;
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
    const env = readEnv();
    config = await loadConfig({
      configPath: cli.configPath ?? env.BUCKETLOAD_CONFIG,
      profile: cli.profile ?? env.BUCKETLOAD_PROFILE,
      env,
      overrides: cli.overrides,
    });
  } catch (error) {
    if (error instanceof UsageError) {
      err(`bucketload: ${error.message}\n`);
      return 2;
    }
    throw error;
  }

  const interactive = cli.command === "run" && !cli.dryRun && !cli.quiet && cli.schedule === undefined &&
    Deno.stderr.isTerminal();
  const progress = interactive ? new ProgressLine() : undefined;
  // The summary replaces the progress bar rather than continuing its line.
  const print = (text: string) => {
    progress?.clear();
    out(text);
  };
  const logFile = await setupLogging({
    level: config.logLevel,
    format: config.logFormat,
    logDir: cli.command === "run" && !cli.dryRun ? config.logDir : undefined,
    write: progress === undefined ? undefined : (text) => progress.writeAbove(text),
  });
  const logger = getLogger(["bucketload"]);
  const controller = new AbortController();
  const untrap = trapSignals(controller);
  const guard = async (action: () => Promise<number>): Promise<number> => {
    try {
      return await action();
    } catch (error) {
      const reason = controller.signal.aborted ? controller.signal.reason : error;
      if (reason instanceof StopSignal) {
        progress?.clear();
        err(`bucketload: ${reason.message}: the run was rolled back, nothing was written\n`);
        return SIGNAL_CODES[reason.signal];
      }
      if (error instanceof UsageError) {
        err(`bucketload: ${error.message}\n`);
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
      progress?.clear();
    }
  };
  try {
    if (logFile !== undefined) logger.info("Logging to {logFile}", { logFile });
    if (cli.command === "status") return await guard(() => statusAction(config, print, { json: cli.json }));
    if (cli.dryRun) return await guard(() => dryRunAction(config, print, { force: cli.force }));
    const runOnce = () =>
      guard(() =>
        runOnceAction(config, print, {
          force: cli.force,
          retryInvalid: cli.retryInvalid,
          signal: controller.signal,
          onProgress: progress === undefined ? undefined : (p) => progress.update(p),
        })
      );
    if (cli.schedule === undefined) return await runOnce();
    try {
      return await schedule(cli.schedule, runOnce, controller.signal);
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      err(`bucketload: ${error.message}\n`);
      return 2;
    }
  } finally {
    untrap();
    await closeLogging();
  }
}

/**
 * Wraps `task` so that a call while the previous one is still going is
 * skipped (and reported through `onSkip`) instead of overlapping it.
 */
export function nonOverlapping(task: () => Promise<void>, onSkip: () => void): () => Promise<void> {
  let running = false;
  return async () => {
    if (running) return onSkip();
    running = true;
    try {
      await task();
    } finally {
      running = false;
    }
  };
}

/**
 * Runs `run` on a cron schedule until `signal` aborts. Runs never overlap: a
 * tick while a run is going is skipped with a warning. A failing run is logged
 * and the scheduler goes on.
 *
 * @throws {UsageError} on an invalid cron expression
 */
export async function schedule(cron: string, run: () => Promise<number>, signal: AbortSignal): Promise<number> {
  const logger = getLogger(["bucketload", "schedule"]);
  const tick = nonOverlapping(async () => {
    const code = await run();
    if (code !== 0) logger.error("Scheduled run ended with exit code {code}", { code });
  }, () => logger.warn("Skipping the {cron} tick: the previous run is still going", { cron }));
  try {
    Deno.cron("bucketload", cron, { signal }, tick);
  } catch (error) {
    throw new UsageError(`Cannot parse --schedule: ${(error as Error).message}, got ${JSON.stringify(cron)}`, {
      subject: "--schedule",
    });
  }
  logger.info("Scheduled on {cron} (UTC); stop with SIGINT or SIGTERM", { cron });
  await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  const reason = signal.reason;
  return reason instanceof StopSignal ? SIGNAL_CODES[reason.signal] : 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
