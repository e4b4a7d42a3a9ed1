/**
 * bucketload's command line: parses flags, loads the profile, and runs an
 * action (a run, a dry run, status, or runs on a schedule). Exit codes: 0 ok,
 * 1 the list or a file failed or the lock is held, 2 usage or config error,
 * 130/143 stopped by SIGINT/SIGTERM (rolled back); the launcher adds 137
 * (killed by SIGKILL, rolled back).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import denoJson from "./deno.json" with { type: "json" };
import { preflight, runOnceAction } from "./mod/commands/run.ts";
import { dryRunAction } from "./mod/commands/dry_run.ts";
import { statusAction } from "./mod/commands/status.ts";
import { type Config, keyGroups } from "./mod/config/config.ts";
import { type Cli, fixableError, launchedAs, loadConfigFromEnv, parseCli, readEnv } from "./mod/cli/args.ts";
import { watchParent } from "./mod/cli/parent.ts";

export { nonOverlapping } from "./mod/cli/schedule.ts";
import { closeLogging, setupLogging } from "./mod/commands/log.ts";
import { ProgressLine } from "./mod/cli/progress.ts";
import { type CronPlan, parseCron } from "./mod/cli/cron.ts";
import { schedule, SIGNAL_CODES, StopSignal } from "./mod/cli/schedule.ts";
import { CommitUnknownError, ConnectionLostError, LockedError } from "./mod/common/errors.ts";
import { lastWords } from "./mod/cli/last_words.ts";
import { serveAction } from "./mod/commands/serve.ts";
import { replayAction } from "./mod/commands/replay.ts";
import { redactUrl } from "./mod/source/location.ts";
import { terminalSafe } from "./mod/common/printable.ts";

/** The column of the descriptions in `--help`'s usage lines. */
const USAGE_COLUMN = 37;

/** A usage line of `--help`: the command as started, its arguments, and what it does (below, when they are long). */
function usage(command: string, args: string, ...what: string[]): string {
  const head = `  ${command} ${args}`;
  const lines = head.length < USAGE_COLUMN - 1
    ? [head.padEnd(USAGE_COLUMN) + what[0]]
    : [head, " ".repeat(USAGE_COLUMN) + what[0]];
  return [...lines, ...what.slice(1).map((w) => " ".repeat(USAGE_COLUMN) + w)].join("\n");
}

/** The `--help` text, naming the command as it was started: `deno task run`, or `bucketload` when installed. */
function help(command: string): string {
  const usages = [
    usage(command, "[options]", "run the pipeline once (or on --schedule)"),
    usage(command, "--dry-run [options]", "print what a run would do"),
    usage(command, "status [--json]", "last runs, registry, top rejections, recent problem keys"),
    usage(
      command,
      "serve [--port N] [--host H] [--allow-host NAME]",
      "the status page (GET /), its JSON (GET /api/status) and GET /health,",
      "read-only, on 127.0.0.1:8000 unless told otherwise",
    ),
    usage(
      command,
      "replay [--dry-run] [--type T] [--reason TEXT]",
      "re-validate quarantined records by today's rules, without re-fetching",
    ),
  ];
  // The core's keys, then each store's, source's and record type's under its name.
  const keys = keyGroups().flatMap((group, i) => [
    ...(i === 0 ? [] : ["", `${group.title}:`]),
    ...Object.entries(group.keys).map(([k, s]) =>
      `  ${k.padEnd(26)}${s.help}${s.default ? ` (default ${s.default})` : ""}`
    ),
  ]);
  return `bucketload ${denoJson.version}: load a bucket's new JSON files into SQLite, exactly once

Usage:
${usages.join("\n")}

Options:
  --config PATH        config file (default ./config.ini, or $BUCKETLOAD_CONFIG)
  --profile NAME       profile (section) to use (default "default", or $BUCKETLOAD_PROFILE)
  --force              re-fetch and re-load keys already processed
  --retry-invalid      re-fetch only keys registered as invalid (e.g. after fixing a rule)
  --key KEY            fetch (again) only this key; repeat for more
  --dry-run            fetch only the list and print what a run would do (replay: what it would do); write nothing
  --concurrency N      parallel fetches (overrides CONCURRENCY)
  --log-level LEVEL    debug, info, warning or error (overrides LOG_LEVEL)
  --log-format FORMAT  text or json (overrides LOG_FORMAT)
  --quiet              no progress bar
  --schedule CRON      stay up and run on this cron schedule (UTC), e.g. "*/15 * * * *"
  --run-at-start       with --schedule: also run once right away
  --json               print the summary (or status) as one JSON document
  --port N, --host H   serve: where to listen (default 127.0.0.1:8000; set STATUS_TOKEN before --host)
  --allow-host NAME    serve: also answer this Host name (a reverse proxy's); repeat for more
  --type T             replay: only records of this type
  --reason TEXT        replay: only records whose reason contains TEXT
  -h, --help           show this help
  --version            show the version

Profile keys (each also settable as BUCKETLOAD_<KEY>):
${keys.join("\n")}

Exit codes: 0 ok; 1 the list or a file failed, another run or program holds the lock, or the PostgreSQL
connection was lost (nothing committed, or the outcome said when a COMMIT was cut off); 2 usage or config error;
130/143 stopped by SIGINT/SIGTERM, 137 killed by SIGKILL (e.g. the out-of-memory killer): the run is rolled back.
`;
}

/** Whether an action (a run, a dry run, status) is going, so that a stop signal says what it stops. */
let busy = false;
/** Whether `serve` is answering: a stop signal stops the server, with nothing to roll back. */
let serving = false;

/**
 * A repeat of a stop signal this soon after the first is the same stop: a
 * terminal's Ctrl-C reaches every process of its group, and the launcher (and
 * `deno task`) pass it on as well, so one key press arrives two or three times.
 */
const SAME_STOP_MS = 1000;

/**
 * Aborts on SIGINT/SIGTERM, or when the launcher that started this process is
 * gone; a second signal (after {@linkcode SAME_STOP_MS}) exits at once
 * (nothing is committed).
 */
function trapSignals(controller: AbortController, onStop: () => void): () => void {
  let firstAt = 0;
  const stop = (name: keyof typeof SIGNAL_CODES, why: string) => {
    onStop();
    const logger = getLogger(["bucketload"]);
    if (serving) logger.info("{why}: stopping the status server", { why, signal: name });
    else if (busy) logger.warn("{why}: stopping and rolling back", { why, signal: name });
    else logger.info("{why}: stopping (no run in progress)", { why, signal: name });
    firstAt = performance.now();
    controller.abort(new StopSignal(name, why.startsWith("Received ") ? undefined : why.toLowerCase()));
  };
  const handlers = Object.entries(SIGNAL_CODES).map(([name, code]) => {
    const handler = () => {
      if (controller.signal.aborted) {
        if (performance.now() - firstAt < SAME_STOP_MS) return;
        Deno.exit(code);
      }
      stop(name as keyof typeof SIGNAL_CODES, `Received ${name}`);
    };
    Deno.addSignalListener(name as Deno.Signal, handler);
    return [name as Deno.Signal, handler] as const;
  });
  // The launcher names itself: a launcher gone before this process got here is noticed too.
  const launcher = Number(readEnv().BUCKETLOAD_WATCH_PARENT);
  const unwatch = Number.isInteger(launcher) && launcher > 0
    ? watchParent(() => {
      if (!controller.signal.aborted) stop("SIGTERM", "The launcher that started this process is gone");
    }, launcher)
    : () => {};
  return () => {
    unwatch();
    handlers.forEach(([name, handler]) => Deno.removeSignalListener(name, handler));
  };
}

/**
 * Runs an action as one command: a stop by signal, a fixable error, a lock
 * or a lost connection each end it with one line and their exit code; any
 * other error with one masked line (the stack only at debug level).
 */
function guarded(
  controller: AbortController,
  progress: ProgressLine | undefined,
  err: (text: string) => void,
): (action: () => Promise<number>) => Promise<number> {
  const logger = getLogger(["bucketload"]);
  return async (action: () => Promise<number>): Promise<number> => {
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
      if (error instanceof LockedError || error instanceof ConnectionLostError || error instanceof CommitUnknownError) {
        err(`bucketload: ${error.message}\n`);
        return 1;
      }
      // One line, without credentials; the stack only at debug level (redacted too).
      const message = redactUrl(error instanceof Error ? error.message : String(error));
      logger.debug("Run failed: {stack}", { stack: redactUrl((error as Error)?.stack ?? message) });
      logger.fatal("Run failed: {error}", { error: message });
      err(`bucketload: run failed: ${message}\n`);
      return 1;
    } finally {
      busy = false;
      progress?.clear();
    }
  };
}

/**
 * Reads the command line and the config, and checks all that can be checked
 * before a log line or a file is written; an exit code when that is all
 * (`--help`, `--version`, a usage or config error).
 */
async function startUp(
  args: readonly string[],
  out: (text: string) => void,
  err: (text: string) => void,
): Promise<{ cli: Cli; config: Config; cron: CronPlan | undefined } | number> {
  try {
    const cli = parseCli(args);
    if (cli.help) {
      out(help(launchedAs() ?? "deno task run"));
      return 0;
    }
    if (cli.version) {
      out(`bucketload ${denoJson.version}\n`);
      return 0;
    }
    const config = await loadConfigFromEnv(cli);
    const cron = cli.schedule === undefined ? undefined : await parseCron(cli.schedule);
    if (cli.command === "run" && !cli.dryRun) await preflight(config);
    return { cli, config, cron };
  } catch (error) {
    const line = fixableError(error);
    if (line === undefined) throw error;
    err(`bucketload: ${line}\n`);
    return 2;
  }
}

/** Runs the CLI and returns the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  const encoder = new TextEncoder();
  // What reaches a terminal carries no control character from the bucket (lines and tabs are the report's own), and
  // is written whole (one writeSync may take only part of a large summary on a pipe).
  const writeAll = (file: typeof Deno.stdout, text: string) => {
    const bytes = encoder.encode(terminalSafe(text));
    for (let done = 0; done < bytes.length;) done += file.writeSync(bytes.subarray(done));
  };
  const out = (text: string) => writeAll(Deno.stdout, text);
  const err = (text: string) => writeAll(Deno.stderr, text);
  const started = await startUp(args, out, err);
  if (typeof started === "number") return started;
  const { cli, config, cron } = started;

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
      logKeepDays: config.logKeepDays,
      write: progress === undefined ? undefined : (text) => progress.writeAbove(text),
    });
  } catch (error) {
    const line = fixableError(error) ?? `Cannot open the log: ${(error as Error).message}`;
    err(`bucketload: ${line}\n`);
    return 2;
  }
  const logger = getLogger(["bucketload"]);
  const controller = new AbortController();
  // Once stopping, the bar is not drawn again over the lines that say so.
  const untrap = trapSignals(controller, () => progress?.stop());
  const guard = guarded(controller, progress, err);
  try {
    if (logFile !== undefined) logger.info("Logging to {logFile}", { logFile });
    // More than one setting names a database: which one is used, and how to choose the other.
    if (config.store.notice !== undefined) logger.info("{notice}", { notice: config.store.notice });
    if (cli.command === "status") return await guard(() => statusAction(config, print, { json: cli.json }));
    if (cli.command === "replay") {
      return await guard(() =>
        replayAction(config, print, { ...cli.replay, dryRun: cli.dryRun, json: cli.json, signal: controller.signal })
      );
    }
    if (cli.command === "serve") {
      serving = true;
      return await guard(() => serveAction(config, { ...cli.listen, signal: controller.signal }));
    }
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

if (import.meta.main) {
  Deno.exit(await main(Deno.args).catch(lastWords));
}
