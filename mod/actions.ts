/**
 * The CLI's actions on a resolved config: one run, a dry run, and the status
 * report. Each returns its exit code; main.ts only parses flags and wires.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { existsSync } from "node:fs";
import type { Config } from "./config.ts";
import { formatPlan, planRun } from "./dry_run.ts";
import { type Progress, runPipeline } from "./pipeline.ts";
import type { ProduceSettings } from "./produce.ts";
import { RECORD_TYPES } from "./records/mod.ts";
import { writeRegistryFile } from "./registry_file.ts";
import { makeSource, sourceSpec } from "./source_spec.ts";
import { SqliteStore } from "./sqlite_store.ts";
import { formatStatus, type StatusReport } from "./status.ts";
import { formatSummary } from "./summary.ts";
import { workerProducer } from "./worker_producer.ts";

const logger = getLogger(["bucketload"]);

/** Writes to stdout. */
export type Out = (text: string) => void;

/** Options of {@linkcode runOnceAction}. */
export interface RunActionOptions {
  readonly force: boolean;
  readonly retryInvalid: boolean;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((p: Progress) => void) | undefined;
}

/**
 * One pipeline run: prints the summary and returns 0 or 1.
 *
 * @throws {UsageError} when the database cannot be opened
 * @throws {LockedError} when another run holds the database
 */
export async function runOnceAction(config: Config, out: Out, options: RunActionOptions): Promise<number> {
  const store = SqliteStore.open(config.databasePath, { types: RECORD_TYPES, lockTimeoutMs: config.lockTimeoutMs });
  try {
    const spec = sourceSpec(config);
    const source = makeSource(spec);
    const settings: ProduceSettings = {
      encoding: config.encoding,
      dateStoreFormat: config.dateStoreFormat,
      awesomeMinRating: config.awesomeMinRating,
      awesomeMaxSizeBytes: config.awesomeMaxSizeBytes,
      concurrency: config.concurrency,
      maxFileBytes: config.maxFileBytes,
      maxRejectedRawBytes: config.maxRejectedRawBytes,
      streamThresholdBytes: config.streamThresholdBytes,
    };
    logger.info("Run of profile {profile}: {bucket} into {database}", {
      profile: config.profile,
      bucket: source.display,
      database: store.display,
    });
    const report = await runPipeline({
      ...settings,
      source,
      store,
      types: RECORD_TYPES,
      filesListKey: config.filesListKey,
      maxListBytes: config.maxListBytes,
      force: options.force,
      retryInvalid: options.retryInvalid,
      signal: options.signal,
      onProgress: options.onProgress,
      producer: config.worker ? workerProducer(spec, settings, { logLevel: config.logLevel }) : undefined,
    });
    if (report.status !== "list_failed" && config.processedFilesPath !== undefined) {
      await writeRegistryFile(config.processedFilesPath, await store.registeredKeys());
    }
    out(formatSummary(report));
    return report.status === "ok" ? 0 : 1;
  } finally {
    store.close();
  }
}

/** Opens the database read-only, or returns `undefined` when it does not exist yet. */
function openReadOnly(config: Config): SqliteStore | undefined {
  if (!existsSync(config.databasePath)) return undefined;
  return SqliteStore.open(config.databasePath, { types: RECORD_TYPES, readOnly: true });
}

/** `--dry-run`: prints what a run would do; fetches only the list and writes nothing. Returns 0, or 1 when the list fails. */
export async function dryRunAction(config: Config, out: Out, options: { force: boolean }): Promise<number> {
  const store = openReadOnly(config);
  try {
    const plan = await planRun({
      source: makeSource(sourceSpec(config)),
      registered: (keys) => store?.peekRegistered(keys) ?? Promise.resolve(new Set()),
      filesListKey: config.filesListKey,
      encoding: config.encoding,
      maxListBytes: config.maxListBytes,
      force: options.force,
    });
    if ("error" in plan) {
      out(`bucketload dry run: cannot read the file list: ${plan.error}\n`);
      return 1;
    }
    out(formatPlan(plan));
    return 0;
  } finally {
    store?.close();
  }
}

/** `status`: prints the report (text or JSON) from a read-only database. Returns 0. */
export async function statusAction(config: Config, out: Out, options: { json: boolean }): Promise<number> {
  const store = openReadOnly(config);
  let report: StatusReport;
  try {
    report = store === undefined
      ? { database: config.databasePath, runs: [], registry: {}, topRejections: [], recentIssues: [] }
      : await store.status();
  } finally {
    store?.close();
  }
  out(options.json ? JSON.stringify(report, null, 2) + "\n" : formatStatus(report));
  return 0;
}
