/**
 * bucketload's command line: parses flags, loads the profile, wires the
 * source, store and pipeline together, prints the summary and sets the exit
 * code (0 ok, 1 a file or the list failed, 2 usage or config error).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { parseArgs } from "node:util";
import denoJson from "./deno.json" with { type: "json" };
import { type Config, CONFIG_KEYS, loadConfig } from "./mod/config.ts";
import { UsageError } from "./mod/errors.ts";
import { FileSource } from "./mod/file_source.ts";
import { HttpSource } from "./mod/http_source.ts";
import { closeLogging, setupLogging } from "./mod/log.ts";
import { runPipeline } from "./mod/pipeline.ts";
import { RECORD_TYPES } from "./mod/records/mod.ts";
import { writeRegistryFile } from "./mod/registry_file.ts";
import type { BucketSource } from "./mod/source.ts";
import { SqliteStore } from "./mod/sqlite_store.ts";
import { LockedError } from "./mod/store.ts";
import { formatSummary } from "./mod/summary.ts";

const HELP = `bucketload ${denoJson.version}: load a bucket's new JSON files into SQLite, exactly once

Usage: deno task run [options]

Options:
  --config PATH        config file (default ./config.ini, or $BUCKETLOAD_CONFIG)
  --profile NAME       profile (section) to use (default "default", or $BUCKETLOAD_PROFILE)
  --force              re-fetch and re-load keys already processed
  --concurrency N      parallel fetches (overrides CONCURRENCY)
  --log-level LEVEL    debug, info, warning or error (overrides LOG_LEVEL)
  --log-format FORMAT  text or json (overrides LOG_FORMAT)
  -h, --help           show this help
  --version            show the version

Profile keys (each also settable as BUCKETLOAD_<KEY>):
${
  Object.entries(CONFIG_KEYS).map(([k, s]) => `  ${k.padEnd(26)}${s.help}${s.default ? ` (default ${s.default})` : ""}`)
    .join("\n")
}

Exit codes: 0 ok, 1 the list or a file failed (or another run holds the lock), 2 usage or config error.
`;

const OPTIONS = {
  config: { type: "string" },
  profile: { type: "string" },
  force: { type: "boolean" },
  concurrency: { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
} as const;

/** The parsed command line. */
export interface Cli {
  readonly help: boolean;
  readonly version: boolean;
  readonly force: boolean;
  readonly configPath: string | undefined;
  readonly profile: string | undefined;
  /** Profile keys set by flags. */
  readonly overrides: Readonly<Record<string, string>>;
}

/**
 * Parses the command line.
 *
 * @throws {UsageError} on an unknown flag, a missing value or a stray argument
 */
export function parseCli(args: readonly string[]): Cli {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options: OPTIONS, strict: true, allowPositionals: false });
  } catch (error) {
    const message = (error as Error).message.replace(/\. To specify.*$/s, "").replace(/\.$/, "");
    throw new UsageError(`${message}: run with --help for the list of flags`, { subject: "flags" });
  }
  const { values } = parsed;
  const overrides: Record<string, string> = {};
  if (values.concurrency !== undefined) overrides.CONCURRENCY = values.concurrency;
  if (values["log-level"] !== undefined) overrides.LOG_LEVEL = values["log-level"];
  if (values["log-format"] !== undefined) overrides.LOG_FORMAT = values["log-format"];
  return {
    help: values.help ?? false,
    version: values.version ?? false,
    force: values.force ?? false,
    configPath: values.config,
    profile: values.profile,
    overrides,
  };
}

/** The source for a configured bucket. */
export function makeSource(config: Config): BucketSource {
  const { bucket } = config;
  if (bucket.kind === "file") return new FileSource(bucket.root);
  return new HttpSource(bucket.base, {
    authorization: bucket.authorization,
    timeoutMs: config.requestTimeoutMs,
    retries: config.retries,
    retryBaseMs: config.retryBaseMs,
  });
}

/** Runs the CLI and returns the exit code. */
export async function main(args: readonly string[]): Promise<number> {
  const out = (text: string) => Deno.stdout.writeSync(new TextEncoder().encode(text));
  const err = (text: string) => Deno.stderr.writeSync(new TextEncoder().encode(text));
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
    const env = Deno.env.toObject();
    const overrides = { ...cli.overrides };
    if (overrides.CONCURRENCY !== undefined && !/^\s*\d+\s*$/.test(overrides.CONCURRENCY)) {
      throw new UsageError(
        `Cannot parse --concurrency: expected a positive integer, got ${JSON.stringify(overrides.CONCURRENCY)}`,
        { subject: "--concurrency" },
      );
    }
    config = await loadConfig({
      configPath: cli.configPath ?? env.BUCKETLOAD_CONFIG,
      profile: cli.profile ?? env.BUCKETLOAD_PROFILE,
      env,
      overrides,
    });
  } catch (error) {
    if (error instanceof UsageError) {
      err(`bucketload: ${error.message}\n`);
      return 2;
    }
    throw error;
  }

  const logFile = await setupLogging({ level: config.logLevel, format: config.logFormat, logDir: config.logDir });
  const logger = getLogger(["bucketload"]);
  let store: SqliteStore | undefined;
  try {
    if (logFile !== undefined) logger.info("Logging to {logFile}", { logFile });
    store = SqliteStore.open(config.databasePath, { types: RECORD_TYPES, lockTimeoutMs: config.lockTimeoutMs });
    const source = makeSource(config);
    logger.info("Run of profile {profile}: {bucket} into {database}", {
      profile: config.profile,
      bucket: source.display,
      database: store.display,
    });
    const report = await runPipeline({
      source,
      store,
      types: RECORD_TYPES,
      filesListKey: config.filesListKey,
      encoding: config.encoding,
      dateStoreFormat: config.dateStoreFormat,
      awesomeMinRating: config.awesomeMinRating,
      awesomeMaxSizeBytes: config.awesomeMaxSizeBytes,
      concurrency: config.concurrency,
      force: cli.force,
      maxFileBytes: config.maxFileBytes,
      maxListBytes: config.maxListBytes,
      maxRejectedRawBytes: config.maxRejectedRawBytes,
    });
    if (report.status !== "list_failed" && config.processedFilesPath !== undefined) {
      await writeRegistryFile(config.processedFilesPath, await store.registeredKeys());
    }
    out(formatSummary(report));
    return report.status === "ok" ? 0 : 1;
  } catch (error) {
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
    store?.close();
    await closeLogging();
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
