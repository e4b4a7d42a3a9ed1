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
  const { level = "info", format = "text", logDir, now = new Date(), sink, write, otel = consoleExports() } = options;
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
  return logFile;
}

/** Flushes and closes the sinks. */
export async function closeLogging(): Promise<void> {
  await dispose();
}
