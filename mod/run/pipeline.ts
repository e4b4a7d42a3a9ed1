/**
 * The pipeline runner: list → new keys → fetch in parallel → parse and
 * classify → write in list order → commit once. It only wires the steps.
 *
 * @module
 */
import { getLogger, type Logger } from "@logtape/logtape";
import { type CachedList, type FetchedListing, fetchListing, globMatcher } from "../source/listing.ts";
import { produceInThread, type Producer } from "../produce/produce.ts";
import type { RecordType } from "../records/mod.ts";
import type { BucketSource } from "../source/source.ts";
import {
  NO_FILES,
  NOTHING_REDERIVED,
  type Rederived,
  type RunCounts,
  type RunTransaction,
  type Store,
} from "../store/store.ts";
import { inSpan } from "../common/telemetry.ts";
import { type Plan, planList, planListed } from "./plan.ts";
import { type ClaimOptions, countsByName, type Logger as RunLogger, type Progress, RunLoad } from "./load.ts";

export { countsByName, type Progress } from "./load.ts";

const baseLogger = getLogger(["bucketload", "pipeline"]);

/** Options of {@linkcode runPipeline}. */
export interface PipelineOptions {
  /** Where the files come from. */
  readonly source: BucketSource;
  /** Where the rows go. */
  readonly store: Store;
  /** The record types the run loads. */
  readonly types: readonly RecordType[];
  /** `FILES_LIST_KEY`: the list file's key. */
  readonly filesListKey: string;
  /** `KEY_PATTERN`: the keys to take from a bucket listing (a source without a list file). @default {""} (all) */
  readonly keyPattern?: string | undefined;
  /** `BUCKET_ENCODING`: the objects' encoding (a WHATWG label). */
  readonly encoding: string;
  /** `DATE_STORE_FORMAT`: the strftime format of `songs.ingestion_time`. */
  readonly dateStoreFormat: string;
  /** The record types' own settings (`AWESOME_*`), by key; a key left out takes its default. */
  readonly typeSettings?: Readonly<Record<string, number>> | undefined;
  /** `KEEP_EXTRA`: keep the fields a record's type does not know in its row's `extra`. @default {true} */
  readonly keepExtra?: boolean | undefined;
  /** Parallel fetches. @default {8} */
  readonly concurrency?: number;
  /** Re-fetch keys already registered. @default {false} */
  readonly force?: boolean;
  /** Re-fetch keys registered as invalid (e.g. after a rule was fixed). @default {false} */
  readonly retryInvalid?: boolean;
  /** Fetch only these keys, registered or not (`--key`). */
  readonly onlyKeys?: readonly string[] | undefined;
  /** Keys another tool processed (the original's `processed.json`): registered as loaded before listing. */
  readonly importKeys?: readonly string[] | undefined;
  /** Register a key as invalid after it was missing in this many runs in a row; 0 never. @default {0} */
  readonly missingGiveUpRuns?: number;
  /** `MAX_FILE_BYTES`: a larger object is invalid. @default {512 MiB} */
  readonly maxFileBytes?: number;
  /** `MAX_LIST_BYTES`: a larger list fails the run. @default {64 MiB} */
  readonly maxListBytes?: number;
  /** `MAX_REJECTED_RAW_BYTES`: raw JSON kept per rejection. @default {65536} */
  readonly maxRejectedRawBytes?: number;
  /** Objects larger than this are parsed as they download. @default {32 MiB} */
  readonly streamThresholdBytes?: number;
  /** `MAX_RECORD_BYTES`: a longer record makes its file invalid. @default {1 MiB} */
  readonly maxRecordBytes?: number | undefined;
  /**
   * With a bucket listing: re-fetch an object whose ETag or size changed
   * since it was loaded, replacing its earlier rows (`CHANGE_DETECTION`).
   * @default {true}
   */
  readonly changeDetection?: boolean;
  /** With a bucket listing: delete the rows of objects gone from it (`PRUNE_DELETED`). @default {false} */
  readonly pruneDeleted?: boolean;
  /** Elements per part of a streamed file (tests use small parts). */
  readonly partElements?: number | undefined;
  /** Characters of record text per part of a streamed file (tests use small parts). */
  readonly partChars?: number | undefined;
  /** The clock. @default {() => new Date()} */
  readonly now?: () => Date;
  /** Aborting it abandons the run: in-flight fetches stop and the transaction rolls back. */
  readonly signal?: AbortSignal | undefined;
  /** Produces the files (fetch, parse, classify); default in-thread, or a worker's. */
  readonly producer?: Producer | undefined;
  /** Keys claimed at a time from a store that runs share (PostgreSQL), as the fetches need them. @default {concurrency} */
  readonly claimBatch?: number | undefined;
  /** Called after each listed key is settled, e.g. for a progress bar. */
  readonly onProgress?: ((progress: Progress) => void) | undefined;
}

/** What a run did; `status` decides the exit code. */
export interface RunReport extends Omit<RunCounts, "status" | "finishedAt"> {
  /** `ok`: every file ended loaded, invalid, missing or refused. */
  readonly status: "ok" | "failed" | "list_failed";
  /** The run's id; `undefined` when nothing was written. */
  readonly runId: number | undefined;
  /** When the run started. */
  readonly startedAt: Date;
  /** When it finished. */
  readonly finishedAt: Date;
  /** Why the list could not be read, for `list_failed`. */
  readonly listError: string | undefined;
  /** Files that failed, with why: the next run fetches them again. */
  readonly failedKeys: readonly { readonly key: string; readonly reason: string }[];
  /** Keys of the list that the bucket did not have. */
  readonly missingKeys: readonly string[];
  /** Missing keys asked for with `--key` that are not in the list: no later run retries them. */
  readonly missingUnlistedKeys: readonly string[];
  /** Listed keys refused as unsafe, with why. */
  readonly refusedKeys: readonly { readonly key: string; readonly reason: string }[];
  /** The list answered 304 (unchanged since the last run); the cached copy was used. */
  readonly unchanged: boolean;
  /** The keys came from listing the bucket (no list file). */
  readonly listed: boolean;
  /** Of `filesNew`, keys that were registered before and fetched again (`--force`, `--retry-invalid`, `--key`). */
  readonly filesRefetched: number;
  /** Time spent waiting for another run's lock, not counted in the run's time. */
  readonly lockWaitMs: number;
  /** Keys imported from `PROCESSED_FILES_FILENAME` into the registry. */
  readonly imported: number;
  /** Keys given up after `MISSING_GIVE_UP_RUNS` runs missing (now registered invalid). */
  readonly gaveUpKeys: readonly string[];
  /** Files that ended invalid in this run, with the reason. */
  readonly invalidKeys: readonly { readonly key: string; readonly reason: string }[];
  /** Objects gone from the bucket's listing, marked deleted in this run. */
  readonly deletedKeys: readonly string[];
  /** Keys to fetch that another run, side by side with this one, claimed or loaded first (shared stores). */
  readonly filesClaimedElsewhere: number;
  /** Stored rows whose derived columns were recomputed because their type's settings changed (no fetch). */
  readonly rederived: Rederived;
}

/** The report of a run that wrote nothing: the list failed, or nothing changed. */
function nothingWritten(
  r: Pick<RunReport, "status" | "startedAt" | "finishedAt" | "loaded"> & Partial<RunReport>,
): RunReport {
  return {
    runId: undefined,
    listError: undefined,
    failedKeys: [],
    missingKeys: [],
    missingUnlistedKeys: [],
    refusedKeys: [],
    ...NO_FILES,
    filesRefused: r.refusedKeys?.length ?? 0,
    rejected: 0,
    ignored: countsByName(),
    issues: [],
    drift: [],
    unchanged: false,
    listed: false,
    filesRefetched: 0,
    rowsInserted: 0,
    rowsUpdated: 0,
    rowsRemoved: 0,
    lockWaitMs: 0,
    imported: 0,
    gaveUpKeys: [],
    invalidKeys: [],
    deletedKeys: [],
    rederived: NOTHING_REDERIVED,
    ...r,
  };
}

/**
 * Imports the original's processed-files list at a take-over only (see
 * `RunTransaction.importKeys`); says in one line why it is not imported into
 * a database that holds none of the original's rows. Returns the keys
 * imported.
 */
async function importProcessedList(
  tx: RunTransaction,
  keys: readonly string[],
  at: Date,
  logger: Logger,
): Promise<number> {
  const { imported, skipped } = await tx.importKeys(keys, at);
  if (skipped === "no-rows") {
    logger.warn(
      "PROCESSED_FILES_FILENAME lists {count} keys, but this database holds none of their rows: they are not " +
        "imported, and their files are loaded (the file is rewritten from the registry after the run)",
      { count: keys.length },
    );
  } else if (imported > 0) {
    logger.info("Took over the original's processed-files list: {imported} keys registered as loaded", { imported });
  }
  return imported;
}

/** A list read and planned: what to fetch, and (from a bucket listing) which registered objects are gone. */
interface Listed {
  readonly listing: FetchedListing;
  /** What the last run kept of the list. */
  readonly cached: CachedList | undefined;
  readonly plan: Plan;
  /** Registered objects a bucket listing no longer holds (to be marked deleted). */
  readonly deletedKeys: readonly string[];
}

/** Reads the list (or the bucket listing) and plans the run: the keys to fetch, logged with what was refused. */
async function listAndPlan(
  tx: RunTransaction,
  options: PipelineOptions,
  logger: Logger,
): Promise<Listed | { error: string }> {
  const { force = false, retryInvalid = false, onlyKeys, changeDetection = true } = options;
  // --force reads the list afresh rather than trusting what was kept of it.
  const cached = force ? undefined : await tx.cachedList(options.filesListKey);
  let listing = await fetchListing(options.source, {
    key: options.filesListKey,
    keyPattern: options.keyPattern,
    encoding: options.encoding,
    maxBytes: options.maxListBytes ?? 64 * 1024 * 1024,
    signal: options.signal,
    cached,
    // These plan over every key of the list, not only the new ones.
    whole: retryInvalid || onlyKeys !== undefined,
    // A bucket listing goes to the run's transaction page by page, not into memory.
    sink: (objects, first) => tx.addListed(objects, first),
  });
  // A registry changed by hand may have lost a listed key that is not pending: only a whole parse tells.
  const kept = "error" in listing || listing.positions === undefined ? undefined : cached?.state?.registered;
  if (!("error" in listing) && kept !== undefined && kept !== await tx.registrySize()) {
    logger.debug("The registry holds another number of keys than the last run left: the list is read whole");
    listing = await listing.whole!();
  }
  // Keys the list gained that are registered may repeat a line above it: only a whole parse tells.
  if (!("error" in listing) && listing.gained.length > 0 && (await tx.registered(listing.gained)).size > 0) {
    logger.debug("A key the list gained is registered: the list is read whole");
    listing = await listing.whole!();
  }
  if (!("error" in listing) && listing.positions !== undefined) {
    logger.debug(
      listing.notModified
        ? "The list is the last run's: only its {pending} pending keys are checked"
        : "The list is read by its tail: {gained} keys gained, {pending} pending before",
      { gained: listing.gained.length, pending: listing.keys.length - listing.gained.length },
    );
  }
  if ("error" in listing) {
    logger.error("Cannot read the file list {key}: {reason}", { key: options.filesListKey, reason: listing.error });
    return listing;
  }
  for (const { key, reason } of listing.refused) logger.warn("Refused key {key}: {reason}", { key, reason });
  // What to fetch, with what the writes need of it: list positions, and a listing's fingerprints.
  const plan = listing.listed
    ? await planListed(tx, { onlyKeys, force, retryInvalid, changeDetection })
    : await planList(tx, listing.keys, { onlyKeys, force, retryInvalid }, listing.positions);
  for (const key of plan.unlisted) logger.warn("Key {key} is not in the list; fetching it as asked", { key });
  if (plan.changed.size > 0) {
    logger.info("{count} objects changed since they were loaded", { count: plan.changed.size });
  }
  logger.info("Listed {listed} keys: {new} to fetch, {refused} refused, {duplicates} duplicate lines", {
    listed: listing.listedCount + listing.refused.length,
    new: plan.todo.length,
    refused: listing.refused.length,
    duplicates: listing.duplicates,
    unchanged: listing.notModified,
  });
  // A bucket listing is complete: registered objects (under KEY_PATTERN) missing from it were deleted.
  const belongs = globMatcher(options.keyPattern ?? "");
  const deletedKeys = listing.listed ? (await tx.unlisted()).filter(belongs) : [];
  return { listing, cached, plan, deletedKeys };
}

/** The producer of a run: the one given (a worker), or the produce step on this thread. */
function producerOf(options: PipelineOptions): Producer {
  if (options.producer !== undefined) return options.producer;
  return produceInThread(options.source, options.types, {
    encoding: options.encoding,
    dateStoreFormat: options.dateStoreFormat,
    typeSettings: options.typeSettings,
    concurrency: options.concurrency ?? 8,
    maxFileBytes: options.maxFileBytes ?? 512 * 1024 * 1024,
    maxRejectedRawBytes: options.maxRejectedRawBytes ?? 65_536,
    streamThresholdBytes: options.streamThresholdBytes ?? 32 * 1024 * 1024,
    maxRecordBytes: options.maxRecordBytes ?? 1024 * 1024,
    partElements: options.partElements,
    partChars: options.partChars,
    rejectNul: !options.store.holdsNul,
    keepExtra: options.keepExtra,
  }, options.now ?? (() => new Date()));
}

/** How a shared store's keys are claimed: which registered keys the claim skips, and how many at a time. */
function claimOptions(options: PipelineOptions): ClaimOptions {
  const { onlyKeys, force = false, retryInvalid = false } = options;
  return {
    batch: options.claimBatch ?? options.concurrency ?? 8,
    skip: onlyKeys !== undefined || force ? undefined : retryInvalid ? ["loaded"] : ["loaded", "invalid"],
  };
}

/** What a run keeps from its start to its report. */
interface RunStart {
  readonly startedAt: Date;
  readonly lockWaitMs: number;
  readonly imported: number;
  readonly logger: Logger;
  /** Stored rows whose derived columns followed a change of their type's settings. */
  readonly rederived: Rederived;
}

/**
 * Runs the pipeline once: plan, load, finish. Everything it writes commits
 * in one transaction at the end, or not at all.
 *
 * @throws {LockedError} when another run holds the store
 */
export async function runPipeline(options: PipelineOptions): Promise<RunReport> {
  const { source, store, now = () => new Date(), signal } = options;
  const tx: RunTransaction = await store.begin(now(), {
    bucket: source.display,
    signal,
    reload: options.force === true && options.onlyKeys === undefined,
    onBucketChange: (previous, current) =>
      baseLogger.warn(
        "This database was loaded from {previous} and now loads from {current}: keys registered from the " +
          "earlier bucket count as processed here (use one database per bucket, or --force)",
        { previous, current },
      ),
  });
  // The run's time starts once it holds the lock; a wait is only reported when another run held it.
  const startedAt = now();
  const logger = baseLogger.with({ run_id: tx.runId });
  const loaded = countsByName(new Map(options.types.map((t) => [t.type, 0])));
  try {
    const importKeys = options.importKeys ?? [];
    const imported = importKeys.length > 0 ? await importProcessedList(tx, importKeys, startedAt, logger) : 0;
    const rederived = await tx.rederive(options.typeSettings ?? {});
    if (rederived.changes.length > 0) {
      logger.info("Settings of derived columns changed ({changes}): {rows} stored rows re-derived", {
        changes: rederived.changes.join(", "),
        rows: rederived.rows,
      });
    }
    logFilled(logger, rederived);
    const start: RunStart = { startedAt, lockWaitMs: tx.lockWaitMs, imported, logger, rederived };
    const listed = await listAndPlan(tx, options, logger);
    if ("error" in listed) {
      await tx.rollback();
      const listError = listed.error;
      return nothingWritten({
        status: "list_failed",
        startedAt,
        finishedAt: now(),
        listError,
        loaded,
        lockWaitMs: tx.lockWaitMs,
      });
    }
    const { listing, plan, deletedKeys } = listed;
    const nothingNew = plan.todo.length === 0 && deletedKeys.length === 0 && rederived.rows === 0 &&
      rederived.filled.columns.length === 0;
    if ((listing.notModified || listing.listed) && nothingNew) {
      return await noteCheck(tx, listed, options.filesListKey, start, now(), loaded);
    }
    const load = new RunLoad({
      tx,
      plan,
      produce: producerOf(options),
      logger,
      typeNames: options.types.map((t) => t.type),
      signal,
      onProgress: options.onProgress,
    });
    await load.run(await tx.registered(plan.todo), tx.claim === undefined ? undefined : claimOptions(options));
    signal?.throwIfAborted();
    return await finishRun(tx, options, listed, load, start);
  } catch (error) {
    await tx.rollback();
    throw error;
  }
}

/** The log lines of new columns filled from `extra`: how many rows, and the rows whose kept field fails the check. */
export function logFilled(logger: RunLogger, rederived: Rederived): void {
  const { filled } = rederived;
  if (filled.columns.length === 0) return;
  logger.info("New columns {columns}: {rows} stored rows filled from extra (no fetch)", {
    columns: filled.columns.join(", "),
    rows: filled.rows,
  });
  if (filled.failed > 0) {
    logger.warn(
      "{failed} stored rows keep the new field in extra (it fails the check; the column stays NULL), e.g. {keys}",
      { failed: filled.failed, keys: filled.failedKeys.join("; ") },
    );
  }
}

/** Nothing changed and nothing is pending: only the check is noted, so that frequent schedules cost nothing. */
async function noteCheck(
  tx: RunTransaction,
  { listing, cached }: Listed,
  listKey: string,
  start: RunStart,
  finishedAt: Date,
  loaded: Record<string, number>,
): Promise<RunReport> {
  // Nothing is pending (no key to fetch): the state is kept when it is new (kept as text by an older build) or its validators changed.
  const v = listing.validators ?? {};
  if (
    listing.state !== undefined &&
    (cached?.state === undefined || cached.validators.etag !== v.etag ||
      cached.validators.lastModified !== v.lastModified)
  ) {
    await tx.cacheList(listKey, { ...listing.state, pending: [], registered: await tx.registrySize() }, v);
  }
  start.logger.info(
    listing.listed
      ? "No new object and no key is pending: nothing to do"
      : "The list is unchanged and no key is pending: nothing to do",
  );
  await tx.rollbackAsCheck(
    finishedAt,
    listing.listed ? "no new object, nothing pending" : "list unchanged, nothing pending",
    // Settings recorded as the derived columns' (no row changed by them, or this would not be a no-op).
    start.rederived.record,
  );
  return nothingWritten({
    status: "ok",
    startedAt: start.startedAt,
    finishedAt,
    loaded,
    unchanged: true,
    listed: listing.listed,
    refusedKeys: listing.refused,
    filesListed: listing.listedCount + listing.refused.length,
    lockWaitMs: start.lockWaitMs,
  });
}

/** The finish step: deletions, missing streaks, the counts, the commit, and the report. */
async function finishRun(
  tx: RunTransaction,
  options: PipelineOptions,
  { listing, plan, deletedKeys: gone }: Listed,
  load: RunLoad,
  start: RunStart,
): Promise<RunReport> {
  const { now = () => new Date(), pruneDeleted = false, missingGiveUpRuns = 0 } = options;
  const { logger } = start;
  // Only the keys this run marked are its deletions (a run side by side may have marked some first).
  const deletedKeys = await tx.markDeleted(gone, now(), pruneDeleted);
  for (const key of deletedKeys) {
    logger.info("Deleted from the bucket: {key}{pruned}", { key, pruned: pruneDeleted ? " (its rows removed)" : "" });
  }
  const gaveUpKeys = await tx.noteMissing(load.missing, missingGiveUpRuns, now());
  for (const key of gaveUpKeys) {
    logger.warn("Gave up on {key}: missing in {runs} runs in a row; registered as invalid", {
      key,
      runs: missingGiveUpRuns,
    });
  }
  if (listing.state !== undefined && options.onlyKeys === undefined) {
    // The listed keys this run leaves unregistered: the next run over the same list checks only these.
    const given = new Set(gaveUpKeys);
    const left = new Set([
      ...load.failedKeys.map((f) => f.key),
      ...load.missing.map((m) => m.key).filter((k) => !given.has(k)),
      ...load.claimedElsewhere,
    ]);
    const pending = plan.todo.filter((k) => left.has(k)).map((k) => [k, plan.positions.get(k)!] as const);
    const registered = await tx.registrySize();
    await tx.cacheList(options.filesListKey, { ...listing.state, pending, registered }, listing.validators ?? {});
  }
  const rows = await tx.rowCounts();
  const missing = [...load.missing, ...load.missingUnlisted];
  const counts: RunCounts = {
    status: load.failedKeys.length > 0 ? "failed" : "ok",
    finishedAt: now(),
    rowsInserted: rows.inserted,
    rowsUpdated: rows.updated,
    rowsRemoved: rows.removed,
    filesListed: listing.listedCount + listing.refused.length,
    filesNew: plan.todo.length - load.filesClaimedElsewhere,
    filesLoaded: load.filesLoaded,
    filesInvalid: load.filesInvalid,
    filesMissing: missing.length,
    filesFailed: load.failedKeys.length,
    filesRefused: listing.refused.length,
    filesChanged: load.filesChanged,
    filesDeleted: deletedKeys.length,
    filesClaimedElsewhere: load.filesClaimedElsewhere,
    loaded: countsByName(load.loadedByType),
    rejected: load.rejected,
    ignored: countsByName(load.ignoredByType),
    drift: load.drift.entries(),
    issues: [
      ...listing.refused.map(({ key, reason }) => ({ key, outcome: "refused" as const, reason })),
      ...missing.map(({ key, reason }) => ({ key, outcome: "missing" as const, reason })),
      ...load.failedKeys.map(({ key, reason }) => ({ key, outcome: "failed" as const, reason })),
    ],
  };
  await inSpan(
    "bucketload.commit",
    { "bucketload.files": counts.filesLoaded + counts.filesInvalid },
    () => tx.commit(counts),
  );
  logger.info(
    "Committed run {run_id}: {loaded} records loaded ({inserted} new rows, {updated} updated, {removed} removed), " +
      "{rejected} rejected",
    { loaded: load.records, ...rows, rejected: load.rejected, status: counts.status },
  );
  return {
    ...counts,
    filesRefetched: load.filesRefetched,
    lockWaitMs: start.lockWaitMs,
    imported: start.imported,
    gaveUpKeys,
    invalidKeys: load.invalidKeys,
    deletedKeys,
    runId: tx.runId,
    startedAt: start.startedAt,
    listError: undefined,
    failedKeys: load.failedKeys,
    missingKeys: load.missing.map((m) => m.key),
    missingUnlistedKeys: load.missingUnlisted.map((m) => m.key),
    refusedKeys: listing.refused,
    unchanged: listing.notModified,
    listed: listing.listed,
    rederived: start.rederived,
  };
}
