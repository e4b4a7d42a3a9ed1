/**
 * Logging setup (LogTape): text or JSON lines on stderr, optionally a log
 * file, and, when Deno exports console output without printing it
 * (`OTEL_DENO=true` with `OTEL_DENO_CONSOLE=replace`, as the launcher runs
 * main.ts), each record handed to the console, which Deno exports over OTLP
 * as a log record. Only the entry point calls {@linkcode setupLogging}.
 *
 * @module
 */
import {
  configure,
  dispose,
  getJsonLinesFormatter,
  getLogger,
  getTextFormatter,
  type LogLevel as LogTapeLevel,
  type Sink as LogTapeSink,
  type TextFormatter as LogTapeTextFormatter,
} from "@logtape/logtape";
import { join } from "node:path";
import { strftime } from "../common/strftime.ts";
import { oneLine } from "../common/printable.ts";

/** A LogTape log level: `trace`, `debug`, `info`, `warning`, `error` or `fatal`. */
export type LogLevel = LogTapeLevel;
/** A LogTape sink: receives each log record. */
export type Sink = LogTapeSink;
/** A LogTape text formatter: a log record as one line of text. */
export type TextFormatter = LogTapeTextFormatter;

/** Options of {@linkcode setupLogging}. */
export interface LoggingOptions {
  /** The lowest level logged. @default {"info"} */
  readonly level?: LogLevel;
  /** Text lines, or JSON lines. @default {"text"} */
  readonly format?: "text" | "json";
  /** A folder for `YYYY-MM-DD_HH-MM-SS.log`, or `undefined` for none. */
  readonly logDir?: string | undefined;
  /**
   * `LOG_KEEP_DAYS`: with a {@linkcode logDir}, the saved logs there older than this many days are deleted
   * ({@linkcode pruneLogs}); 0 keeps them. @default {0}
   */
  readonly logKeepDays?: number;
  /** The time that names the log file. @default {new Date()} */
  readonly now?: Date;
  /** Where lines go instead of stderr, e.g. an array in tests. */
  readonly sink?: Sink;
  /** How formatted lines reach stderr, e.g. above a progress bar. */
  readonly write?: ((text: string) => void) | undefined;
  /** Hand each record to the console for Deno's OpenTelemetry export. @default {consoleExports()} */
  readonly otel?: boolean | undefined;
}

/** A sink writing formatted lines synchronously (to stderr by default), so none are lost at exit. */
export function stderrSink(formatter: TextFormatter, write?: (text: string) => void): Sink {
  const encoder = new TextEncoder();
  const out = write ?? ((text: string) => Deno.stderr.writeSync(encoder.encode(text)));
  return (record) => out(formatter(record));
}

/** An environment variable, or `undefined` when unset or not granted (Docker's image grants no `OTEL_*`). */
function envVar(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/**
 * Whether Deno exports what reaches the console without printing it:
 * `OTEL_DENO` on and `OTEL_DENO_CONSOLE=replace` (the launcher sets it). Under
 * `capture`, Deno's default, the console prints too, so a record handed to
 * it would be printed twice (and an info line on stdout): then, as under
 * `ignore`, no log record is exported.
 */
export function consoleExports(env: (name: string) => string | undefined = envVar): boolean {
  return /^(true|1)$/i.test(env("OTEL_DENO")?.trim() ?? "") &&
    env("OTEL_DENO_CONSOLE")?.trim().toLowerCase() === "replace";
}

/** The console method for each level: Deno exports `debug` as DEBUG, `info` as INFO, `warn` as WARN, `error` as ERROR. */
const CONSOLE_METHODS = {
  trace: "debug",
  debug: "debug",
  info: "info",
  warning: "warn",
  error: "error",
  fatal: "error",
} as const satisfies Record<LogLevel, keyof Console>;

/**
 * A sink handing each formatted record to `target` (the console), at its
 * level's method, for Deno's OTLP log export. `%s` keeps a `%` in the text
 * from being read as a format.
 */
export function otelConsoleSink(
  formatter: TextFormatter,
  target: Pick<Console, "debug" | "info" | "warn" | "error"> = console,
): Sink {
  return (record) => target[CONSOLE_METHODS[record.level]]("%s", formatter(record).replace(/\r?\n$/, ""));
}

/**
 * JSON lines whose every character a terminal acts on is escaped: JSON
 * escapes C0 controls itself; DEL, C1 and the bidirectional controls become
 * `\uXXXX` too (still the same JSON value).
 */
function safeJsonLines(): TextFormatter {
  const json = getJsonLinesFormatter();
  const unsafe = /[\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
  return (record) => json(record).replace(unsafe, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/**
 * Configures LogTape for the `bucketload` category and returns the log
 * file's path, if any.
 */
export async function setupLogging(options: LoggingOptions = {}): Promise<string | undefined> {
  const {
    level = "info",
    format = "text",
    logDir,
    logKeepDays = 0,
    now = new Date(),
    sink,
    write,
    otel = consoleExports(),
  } = options;
  // A value may be bucket text (a field name, a parse error's snippet): on one line, its control characters escaped.
  const value = (v: unknown) => oneLine(typeof v === "string" ? v : Deno.inspect(v, { colors: false, compact: true }));
  const formatter = format === "json" ? safeJsonLines() : getTextFormatter({ timestamp: "date-time", value });
  const sinks: Record<string, Sink> = { main: sink ?? stderrSink(formatter, write) };
  if (otel) {
    // The exported body is the line as printed (the same values, masked the same way), without the time and level
    // that the log record carries itself; a JSON line whole, with its fields. The category is joined with an ASCII
    // dot, as in a JSON line's "logger": Deno 2.9 exports a string held in Latin-1 (no character above U+00FF) with
    // each non-ASCII character as U+FFFD, so a "·" would turn every line's category into "bucketload\uFFFDpipeline".
    sinks.otel = otelConsoleSink(
      format === "json"
        ? formatter
        : getTextFormatter({ value, format: ({ record, message }) => `${record.category.join(".")}: ${message}` }),
    );
  }
  let logFile: string | undefined;
  if (logDir !== undefined) {
    await Deno.mkdir(logDir, { recursive: true });
    logFile = join(logDir, `${strftime("%Y-%m-%d_%H-%M-%S", now)}.log`);
    // Loaded only for SAVE_LOG = yes (~30 ms at every start otherwise).
    const { getFileSink } = await import("@logtape/file");
    sinks.file = getFileSink(logFile, { formatter });
  }
  await configure({
    reset: true,
    sinks,
    loggers: [
      { category: ["bucketload"], lowestLevel: level, sinks: Object.keys(sinks) },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["main"] },
    ],
  });
  if (logDir !== undefined && logKeepDays > 0) {
    const { deleted, failed } = await pruneLogs(logDir, { keepDays: logKeepDays, now });
    const logger = getLogger(["bucketload", "log"]);
    if (deleted.length > 0) {
      logger.debug("Deleted {count} saved logs older than {days} days (LOG_KEEP_DAYS)", {
        count: deleted.length,
        days: logKeepDays,
      });
    }
    if (failed.length > 0) {
      logger.warn("Cannot delete {count} saved logs older than {days} days (LOG_KEEP_DAYS) in {dir}: {error}", {
        count: failed.length,
        days: logKeepDays,
        dir: logDir,
        error: failed[0]!.error,
      });
    }
  }
  return logFile;
}

/** A saved log's name: `YYYY-MM-DD_HH-MM-SS.log`, the run's start in UTC (see {@linkcode setupLogging}). */
const LOG_NAME = /^(\d{4})-(\d{2})-(\d{2})_(\d{2})-(\d{2})-(\d{2})\.log$/;

/** The time (ms) a saved log's name gives, or `undefined` for any other name, or a time no run could start at. */
export function savedLogTime(name: string): number | undefined {
  const m = LOG_NAME.exec(name);
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number) as [number, ...number[]];
  const at = Date.UTC(year, month! - 1, day, hour, minute, second);
  const back = new Date(at);
  const same = back.getUTCFullYear() === year && back.getUTCMonth() === month! - 1 && back.getUTCDate() === day &&
    back.getUTCHours() === hour && back.getUTCMinutes() === minute && back.getUTCSeconds() === second;
  return same ? at : undefined;
}

/** What {@linkcode pruneLogs} did. */
export interface PrunedLogs {
  /** The names deleted. */
  readonly deleted: readonly string[];
  /** The names that could not be deleted, and why. */
  readonly failed: readonly { readonly name: string; readonly error: string }[];
}

/**
 * Deletes the saved logs of `dir` whose name (`YYYY-MM-DD_HH-MM-SS.log`) is
 * more than `keepDays` days before `now`: regular files only (not a
 * symlink or a folder so named), and no file named otherwise. What cannot be
 * deleted (a read-only folder) is returned, not thrown: a run never fails
 * for its old logs. A folder that cannot be read deletes nothing.
 */
export async function pruneLogs(
  dir: string,
  options: { readonly keepDays: number; readonly now?: Date },
): Promise<PrunedLogs> {
  const { keepDays, now = new Date() } = options;
  const deleted: string[] = [];
  const failed: { name: string; error: string }[] = [];
  if (!(keepDays > 0)) return { deleted, failed };
  const before = now.getTime() - keepDays * 86_400_000;
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (error) {
    return { deleted, failed: [{ name: dir, error: (error as Error).message }] };
  }
  for (const entry of entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)) {
    const at = entry.isFile ? savedLogTime(entry.name) : undefined;
    if (at === undefined || at >= before) continue;
    const path = join(dir, entry.name);
    try {
      // Checked again just before: a name swapped for a symlink or a folder since the listing is left alone.
      if (!(await Deno.lstat(path)).isFile) continue;
      await Deno.remove(path);
      deleted.push(entry.name);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) continue;
      failed.push({ name: entry.name, error: (error as Error).message });
    }
  }
  return { deleted, failed };
}

/** Flushes and closes the sinks. */
export async function closeLogging(): Promise<void> {
  await dispose();
}
