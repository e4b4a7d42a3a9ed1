/**
 * The CLI's actions on a resolved config: one run, a dry run, and the status
 * report. Each returns its exit code; main.ts only parses flags and wires.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Config } from "../config.ts";
import { formatPlan, planRun } from "./dry_run.ts";
import { type Progress, runPipeline, type RunReport } from "../pipeline.ts";
import type { ProduceSettings } from "../produce/produce.ts";
import { RECORD_TYPES } from "../records/mod.ts";
import {
  checkFolderWritable,
  checkRegistryFileWritable,
  readRegistryFile,
  writeRegistryFile,
} from "../store/registry_file.ts";
import { makeSource, sourceSpec } from "../source/spec.ts";
import { openStore, openStoreReadOnly } from "../store/open.ts";
import { formatStatus } from "./status.ts";
import { configReport } from "./serve.ts";
import { formatSummary, summaryJson } from "./summary.ts";
import { workerProducer } from "../produce/worker_producer.ts";
import { type Attributes, countRun, inSpan, markFailed } from "../telemetry.ts";

const logger = getLogger(["bucketload"]);

/** Writes to stdout. */
export type Out = (text: string) => void;

/** Options of {@linkcode runOnceAction}. */
export interface RunActionOptions {
  readonly force: boolean;
  readonly retryInvalid: boolean;
  /** Fetch only these keys (`--key`), registered or not. */
  readonly keys?: readonly string[] | undefined;
  /** Print the summary as one JSON document. */
  readonly json?: boolean;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((p: Progress) => void) | undefined;
}

/**
 * Checks, before anything is fetched or written, what a run will need to
 * write besides the database: the registry file's folder and the log folder.
 * The CLI calls it once, before logging starts.
 *
 * @throws {UsageError} naming the path and the key
 */
export async function preflight(config: Config): Promise<void> {
  if (config.processedFilesPath !== undefined) await checkRegistryFileWritable(config.processedFilesPath);
  if (config.logDir !== undefined) await checkFolderWritable(config.logDir, "LOG_DIR");
}

/**
 * One pipeline run: prints the summary and returns 0 or 1.
 *
 * @throws {UsageError} when the database cannot be opened
 * @throws {LockedError} when another run holds the database
 */
export async function runOnceAction(config: Config, out: Out, options: RunActionOptions): Promise<number> {
  const importKeys = config.processedFilesPath === undefined ? [] : await readRegistryFile(config.processedFilesPath);
  const opened = await openStore(config);
  const { store } = opened;
  let report;
  try {
    const spec = sourceSpec(config);
    const source = await makeSource(spec);
    const settings: ProduceSettings = {
      encoding: config.encoding,
      dateStoreFormat: config.dateStoreFormat,
      typeSettings: config.typeSettings,
      concurrency: config.concurrency,
      maxFileBytes: config.maxFileBytes,
      maxRejectedRawBytes: config.maxRejectedRawBytes,
      streamThresholdBytes: config.streamThresholdBytes,
      maxRecordBytes: config.maxRecordBytes,
      rejectNul: !store.holdsNul,
    };
    logger.info("Run of profile {profile}: {bucket} into {database}", {
      profile: config.profile,
      bucket: source.display,
      database: store.display,
    });
    const pipeline = () =>
      runPipeline({
        ...settings,
        source,
        store,
        types: RECORD_TYPES,
        filesListKey: config.filesListKey,
        keyPattern: config.keyPattern,
        maxListBytes: config.maxListBytes,
        force: options.force,
        retryInvalid: options.retryInvalid,
        onlyKeys: options.keys,
        importKeys,
        missingGiveUpRuns: config.missingGiveUpRuns,
        changeDetection: config.changeDetection,
        pruneDeleted: config.pruneDeleted,
        signal: options.signal,
        onProgress: options.onProgress,
        producer: config.worker ? workerProducer(spec, settings, { logLevel: config.logLevel }) : undefined,
      });
    report = await traced(config, pipeline);
    if (report.runId !== undefined && config.processedFilesPath !== undefined) {
      try {
        await writeRegistryFile(config.processedFilesPath, await store.registeredKeys());
      } catch (error) {
        // The run is committed: the copy is only a courtesy, so its failure must not fail the run.
        logger.error("Cannot write PROCESSED_FILES_FILENAME {path}: {reason}; the run is committed", {
          path: config.processedFilesPath,
          reason: (error as Error).message,
        });
      }
    }
  } finally {
    const removed = await opened.close();
    if (removed) logger.debug("Removed the database file created for a run that committed nothing");
  }
  out(options.json ? JSON.stringify(summaryJson(report), null, 2) + "\n" : formatSummary(report));
  return report.status === "ok" ? 0 : 1;
}

/** The attributes of a run's (or a replay's) span and metrics: the profile and the kind of store. */
export function runAttributes(config: Config): Attributes {
  return {
    "bucketload.profile": config.profile,
    "bucketload.store": config.databaseUrl === undefined ? "sqlite" : "postgres",
  };
}

/**
 * A run as the OpenTelemetry span `bucketload.run` (its file spans and the
 * commit's inside), with its counts as attributes and as metrics.
 */
async function traced(config: Config, pipeline: () => Promise<RunReport>): Promise<RunReport> {
  const attributes = runAttributes(config);
  return await inSpan("bucketload.run", attributes, async (span) => {
    const r = await pipeline();
    const loaded = Object.values(r.loaded).reduce((a, b) => a + b, 0);
    const ignored = Object.values(r.ignored).reduce((a, b) => a + b, 0);
    span.setAttributes({
      "bucketload.status": r.status,
      "bucketload.files.listed": r.filesListed,
      "bucketload.files.new": r.filesNew,
      "bucketload.files.loaded": r.filesLoaded,
      "bucketload.records": loaded,
      "bucketload.records.rejected": r.rejected,
      "bucketload.rows.inserted": r.rowsInserted,
      "bucketload.rows.updated": r.rowsUpdated,
      "bucketload.rows.removed": r.rowsRemoved,
    });
    if (r.status !== "ok") markFailed(span, r.status);
    const files = {
      loaded: r.filesLoaded,
      invalid: r.filesInvalid,
      missing: r.filesMissing,
      failed: r.filesFailed,
      refused: r.filesRefused,
    };
    countRun({ loaded, rejected: r.rejected, ignored }, files, attributes);
    return r;
  });
}

/** Options of {@linkcode dryRunAction}. */
export interface DryRunOptions {
  readonly force: boolean;
  readonly retryInvalid?: boolean;
  readonly keys?: readonly string[] | undefined;
}

/** `--dry-run`: prints what a run would do; fetches only the list and writes nothing. Returns 0, or 1 when the list fails. */
export async function dryRunAction(config: Config, out: Out, options: DryRunOptions): Promise<number> {
  const store = await openStoreReadOnly(config);
  // The processed-files list counts only where a run would import it: at a take-over of the original's database.
  const imported = new Set(
    config.processedFilesPath === undefined || !(await store?.takesOver())
      ? []
      : await readRegistryFile(config.processedFilesPath),
  );
  try {
    const plan = await planRun({
      source: await makeSource(sourceSpec(config)),
      registered: async (keys, statuses) => {
        const inStore = store === undefined ? new Set<string>() : await store.peekRegistered(keys, statuses);
        // Keys of the processed-files list count as loaded at a take-over, as a run would import them.
        return new Set([...inStore, ...(statuses.includes("loaded") ? keys.filter((k) => imported.has(k)) : [])]);
      },
      filesListKey: config.filesListKey,
      keyPattern: config.keyPattern,
      encoding: config.encoding,
      maxListBytes: config.maxListBytes,
      force: options.force,
      retryInvalid: options.retryInvalid ?? false,
      keys: options.keys,
      entries: store === undefined ? undefined : () => store.peekEntries(),
      changeDetection: config.changeDetection,
    });
    if ("error" in plan) {
      out(`bucketload dry run: cannot read the file list: ${plan.error}\n`);
      return 1;
    }
    out(formatPlan(plan));
    return 0;
  } finally {
    await store?.close();
  }
}

/** `status`: prints the report (text or JSON) from a read-only database. Returns 0. */
export async function statusAction(config: Config, out: Out, options: { json: boolean }): Promise<number> {
  const report = await configReport(config)();
  out(options.json ? JSON.stringify(report, null, 2) + "\n" : formatStatus(report));
  return 0;
}
