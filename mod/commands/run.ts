/**
 * The run command: one pipeline run on a resolved config, its checks before
 * anything is written, its span and metrics, and its summary. Returns the
 * exit code; main.ts and the Deploy entry call it.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Config } from "../config/config.ts";
import { type Progress, runPipeline, type RunReport } from "../run/pipeline.ts";
import type { ProduceSettings } from "../produce/produce.ts";
import { RECORD_TYPES } from "../records/mod.ts";
import {
  checkFolderWritable,
  checkRegistryFileWritable,
  readRegistryFile,
  updateRegistryFile,
} from "../store/registry_file.ts";
import { openSource, openStore } from "./open.ts";
import { formatSummary, summaryJson } from "./summary.ts";
import { workerProducer } from "../produce/worker_producer.ts";
import { type Attributes, countRun, inSpan, markFailed } from "../common/telemetry.ts";

const logger = getLogger(["bucketload"]);

/** Writes to stdout. */
export type Out = (text: string) => void;

/** Options of {@linkcode runOnceAction}. */
export interface RunActionOptions {
  /** `--force`: fetch registered keys again. */
  readonly force: boolean;
  /** `--retry-invalid`: fetch keys registered as invalid again. */
  readonly retryInvalid: boolean;
  /** Fetch only these keys (`--key`), registered or not. */
  readonly keys?: readonly string[] | undefined;
  /** Print the summary as one JSON document. */
  readonly json?: boolean;
  /** Aborting it abandons the run: in-flight fetches stop and the transaction rolls back. */
  readonly signal?: AbortSignal | undefined;
  /** Called after each listed key is settled, e.g. for a progress bar. */
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
  const opened = await openStore(config);
  const { store } = opened;
  let report;
  try {
    const path = config.processedFilesPath;
    // Its keys count only at a take-over, and at a first run (to say why they are not imported): read only then.
    const importKeys = path !== undefined && (await store.takesOver() || !(await store.hasRuns()))
      ? await readRegistryFile(path)
      : [];
    const source = await openSource(config);
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
      keepExtra: config.keepExtra,
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
        producer: config.worker
          ? workerProducer(config.source.spec, settings, { logLevel: config.logLevel })
          : undefined,
      });
    report = await traced(config, pipeline);
    // After a run with nothing to do too: a file that a killed or failed write left behind is made current.
    if (report.status !== "list_failed" && config.processedFilesPath !== undefined) {
      try {
        const how = await updateRegistryFile(config.processedFilesPath, store);
        logger.debug("PROCESSED_FILES_FILENAME {path}: {how}", { path: config.processedFilesPath, how });
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
  out(
    options.json
      ? JSON.stringify(summaryJson(report), null, 2) + "\n"
      : formatSummary(report, { extraKept: config.keepExtra }),
  );
  return report.status === "ok" ? 0 : 1;
}

/** The attributes of a run's (or a replay's) span and metrics: the profile and the kind of store. */
export function runAttributes(config: Config): Attributes {
  return {
    "bucketload.profile": config.profile,
    "bucketload.store": config.store.kind.name,
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
