/**
 * Logging setup (LogTape): text or JSON lines on stderr, and optionally a
 * log file. Only the entry point calls {@linkcode setupLogging}.
 *
 * @module
 */
import {
  configure,
  dispose,
  getJsonLinesFormatter,
  getTextFormatter,
  type LogLevel,
  type Sink,
  type TextFormatter,
} from "@logtape/logtape";
import { join } from "node:path";
import { strftime } from "../strftime.ts";

/** Options of {@linkcode setupLogging}. */
export interface LoggingOptions {
  /** @default {"info"} */
  readonly level?: LogLevel;
  /** @default {"text"} */
  readonly format?: "text" | "json";
  /** A folder for `YYYY-MM-DD_HH-MM-SS.log`, or `undefined` for none. */
  readonly logDir?: string | undefined;
  /** The time that names the log file. @default {new Date()} */
  readonly now?: Date;
  /** Where lines go instead of stderr, e.g. an array in tests. */
  readonly sink?: Sink;
  /** How formatted lines reach stderr, e.g. above a progress bar. */
  readonly write?: ((text: string) => void) | undefined;
}

/** A sink writing formatted lines synchronously (to stderr by default), so none are lost at exit. */
export function stderrSink(formatter: TextFormatter, write?: (text: string) => void): Sink {
  const encoder = new TextEncoder();
  const out = write ?? ((text: string) => Deno.stderr.writeSync(encoder.encode(text)));
  return (record) => out(formatter(record));
}

/**
 * Configures LogTape for the `bucketload` category and returns the log
 * file's path, if any.
 */
export async function setupLogging(options: LoggingOptions = {}): Promise<string | undefined> {
  const { level = "info", format = "text", logDir, now = new Date(), sink, write } = options;
  const formatter = format === "json" ? getJsonLinesFormatter() : getTextFormatter({
    timestamp: "date-time",
    value: (v: unknown) => typeof v === "string" ? v : Deno.inspect(v, { colors: false, compact: true }),
  });
  const sinks: Record<string, Sink> = { main: sink ?? stderrSink(formatter, write) };
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
