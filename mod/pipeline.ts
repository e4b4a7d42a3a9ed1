/**
 * The pipeline runner: list → new keys → fetch in parallel → parse and
 * classify → write in list order → commit once. It only wires the steps.
 *
 * @module
 */
import { getLogger, type Logger } from "@logtape/logtape";
import { fetchListing, globMatcher } from "./source/listing.ts";
import { produceInThread, type Producer } from "./produce/produce.ts";
import type { RecordType } from "./records/mod.ts";
import type { BucketSource } from "./source/source.ts";
import type { FilePart, Fingerprint, RunCounts, RunTransaction, Store } from "./store/store.ts";

const baseLogger = getLogger(["bucketload", "pipeline"]);

/** Options of {@linkcode runPipeline}. */
export interface PipelineOptions {
  readonly source: BucketSource;
  readonly store: Store;
  readonly types: readonly RecordType[];
  readonly filesListKey: string;
  /** `KEY_PATTERN`: the keys to take from a bucket listing (a source without a list file). @default {""} (all) */
  readonly keyPattern?: string | undefined;
  readonly encoding: string;
  readonly dateStoreFormat: string;
  readonly awesomeMinRating: number;
  readonly awesomeMaxSizeBytes: number;
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
  /** @default {512 MiB} */
  readonly maxFileBytes?: number;
  /** @default {64 MiB} */
  readonly maxListBytes?: number;
  /** @default {65536} */
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

/** How far a run is. */
export interface Progress {
  readonly filesDone: number;
  readonly filesTotal: number;
  readonly records: number;
}

/** What a run did; `status` decides the exit code. */
export interface RunReport extends Omit<RunCounts, "status" | "finishedAt"> {
  /** `ok`: every file ended loaded, invalid, missing or refused. */
  readonly status: "ok" | "failed" | "list_failed";
  readonly runId: number | undefined;
  readonly startedAt: Date;
  readonly finishedAt: Date;
  /** Why the list could not be read, for `list_failed`. */
  readonly listError: string | undefined;
  readonly failedKeys: readonly { readonly key: string; readonly reason: string }[];
  readonly missingKeys: readonly string[];
  /** Missing keys asked for with `--key` that are not in the list: no later run retries them. */
  readonly missingUnlistedKeys: readonly string[];
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
}

/** The keys a run fetches, in list order, with their list positions and (from a bucket listing) fingerprints. */
interface Plan {
  readonly todo: string[];
  /** Keys registered before whose object changed (or came back after a deletion): rows replaced. */
  readonly changed: ReadonlySet<string>;
  readonly fingerprints: ReadonlyMap<string, Fingerprint>;
  readonly positions: ReadonlyMap<string, number>;
  /** `--key` keys the list does not hold (fetched anyway, after the list's). */
  readonly unlisted: readonly string[];
}

interface PlanOptions {
  readonly onlyKeys: readonly string[] | undefined;
  readonly force: boolean;
  readonly retryInvalid: boolean;
}

/** Keys per registry query over a list. */
const QUERY_CHUNK = 10_000;

/** The plan of a list file held in memory: the registry is asked in chunks, only the keys to fetch are kept. */
async function planList(tx: RunTransaction, keys: readonly string[], o: PlanOptions): Promise<Plan> {
  let todo: string[];
  let unlisted: string[] = [];
  if (o.onlyKeys !== undefined) {
    const listed = new Set(keys);
    unlisted = o.onlyKeys.filter((k) => !listed.has(k));
    todo = [...o.onlyKeys];
  } else if (o.force) todo = [...keys];
  else {
    // Only the keys to fetch come back: a long list is mostly registered.
    todo = [];
    for (let i = 0; i < keys.length; i += QUERY_CHUNK) {
      todo.push(...await tx.unregistered(keys.slice(i, i + QUERY_CHUNK), o.retryInvalid ? ["loaded"] : undefined));
    }
  }
  const want = new Set(todo);
  const positions = new Map<string, number>();
  keys.forEach((k, i) => want.has(k) && positions.set(k, i));
  unlisted.forEach((k, i) => positions.set(k, keys.length + i));
  return { todo, changed: new Set(), fingerprints: new Map(), positions, unlisted };
}

/** The plan of a bucket listing held by the run's transaction: the store compares it with the registry. */
async function planListed(
  tx: RunTransaction,
  o: PlanOptions & { readonly changeDetection: boolean },
): Promise<Plan> {
  const planned = await tx.listedPlan({
    all: o.force || o.onlyKeys !== undefined,
    loadedOnly: o.retryInvalid,
    detect: o.changeDetection,
  });
  const only = o.onlyKeys === undefined ? undefined : new Set(o.onlyKeys);
  const chosen = only === undefined ? planned : planned.filter((p) => only.has(p.key));
  const listedKeys = new Set(chosen.map((p) => p.key));
  const unlisted = o.onlyKeys?.filter((k) => !listedKeys.has(k)) ?? [];
  const positions = new Map(chosen.map((p) => [p.key, p.position]));
  const last = planned.length === 0 ? 0 : planned.at(-1)!.position + 1;
  unlisted.forEach((k, i) => positions.set(k, last + i));
  return {
    todo: o.onlyKeys !== undefined ? [...o.onlyKeys] : chosen.map((p) => p.key),
    changed: new Set(chosen.filter((p) => p.changed).map((p) => p.key)),
    fingerprints: new Map(chosen.map((p) => [p.key, { etag: p.etag, size: p.size }])),
    positions,
    unlisted,
  };
}

/** Counts of one file, summed over its parts. */
class Tally {
  records = 0;
  rejected = 0;
  ignoredTotal = 0;
  readonly #loaded = new Map<string, number>();
  readonly #ignored = new Map<string, number>();

  /** Adds a part's (or a file's) counts; returns this. */
  add(part: FilePart): this {
    this.records += part.records;
    this.rejected += part.rejections.length;
    for (const [name, { count }] of part.rows) this.#loaded.set(name, (this.#loaded.get(name) ?? 0) + count);
    for (const [name, n] of part.ignored) {
      this.#ignored.set(name, (this.#ignored.get(name) ?? 0) + n);
      this.ignoredTotal += n;
    }
    return this;
  }

  /** Adds the loaded and ignored counts by type to the run's. */
  addTo(loaded: Map<string, number>, ignored: Map<string, number>) {
    for (const [name, n] of this.#loaded) loaded.set(name, (loaded.get(name) ?? 0) + n);
    for (const [name, n] of this.#ignored) ignored.set(name, (ignored.get(name) ?? 0) + n);
  }
}

/**
 * Counts by name as a plain object for the report. The names are data (record
 * types): each becomes an own property (`Object.fromEntries`), so that a type
 * named `toString`, `constructor` or `__proto__` is a key like any other and
 * never reaches the prototype.
 */
export function countsByName(counts: ReadonlyMap<string, number> = new Map()): Record<string, number> {
  return Object.fromEntries(counts);
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
    filesListed: 0,
    filesNew: 0,
    filesLoaded: 0,
    filesInvalid: 0,
    filesMissing: 0,
    filesFailed: 0,
    filesRefused: r.refusedKeys?.length ?? 0,
    rejected: 0,
    ignored: countsByName(),
    issues: [],
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
    filesChanged: 0,
    filesDeleted: 0,
    filesClaimedElsewhere: 0,
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

/**
 * Runs the pipeline once. Everything it writes commits in one transaction at
 * the end, or not at all.
 *
 * @throws {LockedError} when another run holds the store
 */
export async function runPipeline(options: PipelineOptions): Promise<RunReport> {
  const {
    source,
    store,
    types,
    concurrency = 8,
    force = false,
    retryInvalid = false,
    onlyKeys,
    importKeys = [],
    missingGiveUpRuns = 0,
    changeDetection = true,
    pruneDeleted = false,
    maxFileBytes = 512 * 1024 * 1024,
    maxListBytes = 64 * 1024 * 1024,
    maxRejectedRawBytes = 65_536,
    streamThresholdBytes = 32 * 1024 * 1024,
    now = () => new Date(),
    signal,
    onProgress,
  } = options;
  const requestedAt = now();
  const failedKeys: { key: string; reason: string }[] = [];
  const missing: { key: string; reason: string }[] = [];
  /** Keys asked for with --key that are not in the list and were missing: not retried by later runs. */
  const missingUnlisted: { key: string; reason: string }[] = [];
  // Record type names come from the bucket: they are counted in Maps ("toString" is just a name).
  const loadedByType = new Map(types.map((t) => [t.type, 0]));
  const ignoredByType = new Map<string, number>();
  const loaded = countsByName(loadedByType);
  const counts = { filesLoaded: 0, filesInvalid: 0, rejected: 0 };
  const invalidKeys: { key: string; reason: string }[] = [];

  const tx: RunTransaction = await store.begin(requestedAt, {
    bucket: source.display,
    signal,
    onBucketChange: (previous, current) =>
      baseLogger.warn(
        "This database was loaded from {previous} and now loads from {current}: keys registered from the " +
          "earlier bucket count as processed here (use one database per bucket, or --force)",
        { previous, current },
      ),
  });
  // The run's time starts once it holds the lock; a wait is only reported when another run held it.
  const startedAt = now();
  const { lockWaitMs } = tx;
  const logger = baseLogger.with({ run_id: tx.runId });
  try {
    const imported = importKeys.length > 0 ? await importProcessedList(tx, importKeys, startedAt, logger) : 0;
    const listing = await fetchListing(source, {
      key: options.filesListKey,
      keyPattern: options.keyPattern,
      encoding: options.encoding,
      maxBytes: maxListBytes,
      signal,
      // --force reads the list afresh rather than trusting a cached copy.
      cached: force ? undefined : await tx.cachedList(options.filesListKey),
      // A bucket listing goes to the run's transaction page by page, not into memory.
      sink: (objects, first) => tx.addListed(objects, first),
    });
    if ("error" in listing) {
      const listError = listing.error;
      logger.error("Cannot read the file list {key}: {reason}", { key: options.filesListKey, reason: listError });
      await tx.rollback();
      return nothingWritten({ status: "list_failed", startedAt, finishedAt: now(), listError, loaded, lockWaitMs });
    }

    for (const { key, reason } of listing.refused) logger.warn("Refused key {key}: {reason}", { key, reason });
    // What to fetch, with what the writes need of it: list positions, and a listing's fingerprints.
    const plan = listing.listed
      ? await planListed(tx, { onlyKeys, force, retryInvalid, changeDetection })
      : await planList(tx, listing.keys, { onlyKeys, force, retryInvalid });
    const { todo, changed, fingerprints } = plan;
    const unlisted = new Set(plan.unlisted);
    for (const key of plan.unlisted) {
      logger.warn("Key {key} is not in the list; fetching it as asked", { key });
    }
    const everRegistered = await tx.registered(todo);
    let filesRefetched = 0;
    const refetched = (keys: readonly string[]) => keys.filter((k) => everRegistered.has(k)).length;
    if (changed.size > 0) logger.info("{count} objects changed since they were loaded", { count: changed.size });
    logger.info("Listed {listed} keys: {new} to fetch, {refused} refused, {duplicates} duplicate lines", {
      listed: listing.listedCount + listing.refused.length,
      new: todo.length,
      refused: listing.refused.length,
      duplicates: listing.duplicates,
      unchanged: listing.notModified,
    });
    // A bucket listing is complete: registered objects (under KEY_PATTERN) missing from it were deleted.
    const belongs = globMatcher(options.keyPattern ?? "");
    let deletedKeys = listing.listed ? (await tx.unlisted()).filter(belongs) : [];
    if ((listing.notModified || listing.listed) && todo.length === 0 && deletedKeys.length === 0) {
      // Nothing changed and nothing is pending: only note the check, so that frequent schedules cost nothing.
      const result = listing.listed ? "no new object, nothing pending" : "list unchanged, nothing pending";
      logger.info(
        listing.listed
          ? "No new object and no key is pending: nothing to do"
          : "The list is unchanged and no key is pending: nothing to do",
      );
      const finishedAt = now();
      await tx.rollbackAsCheck(finishedAt, result);
      return nothingWritten({
        status: "ok",
        startedAt,
        finishedAt,
        loaded,
        unchanged: true,
        listed: listing.listed,
        refusedKeys: listing.refused,
        filesListed: listing.listedCount + listing.refused.length,
        lockWaitMs,
      });
    }
    if (!listing.notModified && listing.validators !== undefined) {
      await tx.cacheList(options.filesListKey, listing.text, listing.validators);
    }

    const produce = options.producer ??
      produceInThread(source, types, {
        encoding: options.encoding,
        dateStoreFormat: options.dateStoreFormat,
        awesomeMinRating: options.awesomeMinRating,
        awesomeMaxSizeBytes: options.awesomeMaxSizeBytes,
        concurrency,
        maxFileBytes,
        maxRejectedRawBytes,
        streamThresholdBytes,
        maxRecordBytes: options.maxRecordBytes ?? 1024 * 1024,
        partElements: options.partElements,
        rejectNul: !store.holdsNul,
      }, now);
    // A key's list position decides between files across runs (keys fetched with --key but not listed come last).
    const positionOf = (key: string) => plan.positions.get(key) ?? Number.MAX_SAFE_INTEGER;
    let filesDone = 0;
    let records = 0;
    const progress = (extra = 0) => onProgress?.({ filesDone, filesTotal: todo.length, records: records + extra });
    progress();
    // A streamed file's parts, counted into the totals only once the file is loaded.
    let parts: { key: string; tally: Tally } | undefined;
    const load = async (keys: readonly string[] | AsyncIterable<string>) => {
      for await (const produced of produce(keys, signal)) {
        signal?.throwIfAborted();
        const { key } = produced;
        if (produced.kind === "part") {
          await tx.writePart(key, produced.part, { replace: changed.has(key), position: positionOf(key) });
          if (parts?.key !== key) parts = { key, tally: new Tally() };
          parts.tally.add(produced.part);
          progress(parts.tally.records);
          continue;
        }
        filesDone++;
        const tally = parts?.key === key ? parts.tally : new Tally();
        parts = undefined;
        if (produced.kind === "missing" && unlisted.has(key)) {
          // Not in the list: no later run fetches it, so it is not counted toward MISSING_GIVE_UP_RUNS either.
          logger.warn(
            "Missing {key}: {reason}; it is not in the list, so no later run fetches it (ask again with --key)",
            {
              key,
              reason: produced.reason,
            },
          );
          missingUnlisted.push({ key, reason: produced.reason });
        } else if (produced.kind === "missing") {
          logger.warn("Missing {key}: {reason}; will retry on the next run", { key, reason: produced.reason });
          missing.push({ key, reason: produced.reason });
        } else if (produced.kind === "failed") {
          await tx.abortFile(key);
          logger.error("Failed {key}: {reason}", { key, reason: produced.reason });
          failedKeys.push({ key, reason: produced.reason });
        } else {
          const file = {
            ...produced.file,
            fingerprint: fingerprints.get(key),
            replace: changed.has(key),
            position: positionOf(key),
          };
          await tx.writeFile(file);
          if (file.replace) filesChanged++;
          // An invalid file's parts were discarded: only its own whole-file rejection counts.
          const counted = file.status === "loaded" ? tally.add(file) : new Tally().add(file);
          counted.addTo(loadedByType, ignoredByType);
          records += counted.records;
          counts.rejected += counted.rejected;
          if (file.status === "loaded") counts.filesLoaded++;
          else {
            counts.filesInvalid++;
            const reason = file.rejections[0]?.reason ?? "";
            invalidKeys.push({ key, reason });
            logger.warn("Invalid {key}: {reason}", { key, reason });
          }
          logger.debug("Processed {key}: {status}, {records} records, {rejected} rejected, {ignored} ignored", {
            key,
            status: file.status,
            records: counted.records,
            rejected: counted.rejected,
            ignored: counted.ignoredTotal,
            bytes: file.bytes,
          });
        }
        progress();
      }
    };
    let filesClaimedElsewhere = 0;
    let filesChanged = 0;
    if (tx.claim === undefined) {
      filesRefetched = refetched(todo);
      await load(todo);
    } else {
      // A shared store: keys are claimed a few at a time as the fetches need them, so that runs side by side
      // split the keys between them.
      const claim = tx.claim.bind(tx);
      const skip = onlyKeys !== undefined || force
        ? undefined
        : retryInvalid
        ? (["loaded"] as const)
        : (["loaded", "invalid"] as const);
      const batch = options.claimBatch ?? concurrency;
      const claimed = async function* () {
        for (let i = 0; i < todo.length; i += batch) {
          signal?.throwIfAborted();
          const wanted = todo.slice(i, i + batch);
          const mine = await claim(
            wanted.map((key) => ({ key, fingerprint: fingerprints.get(key) })),
            skip,
          );
          filesClaimedElsewhere += wanted.length - mine.length;
          filesDone += wanted.length - mine.length;
          filesRefetched += refetched(mine);
          if (mine.length < wanted.length) progress();
          yield* mine;
        }
      };
      await load(claimed());
      if (filesClaimedElsewhere > 0) {
        logger.info("{count} keys were claimed or loaded by another run side by side", {
          count: filesClaimedElsewhere,
        });
      }
    }

    signal?.throwIfAborted();
    // Objects gone from a bucket listing: marked deleted, their rows pruned if asked.
    // Only the keys this run marked are its deletions (a run side by side may have marked some first).
    deletedKeys = await tx.markDeleted(deletedKeys, now(), pruneDeleted);
    for (const key of deletedKeys) {
      logger.info("Deleted from the bucket: {key}{pruned}", { key, pruned: pruneDeleted ? " (its rows removed)" : "" });
    }
    const gaveUpKeys = await tx.noteMissing(
      missing,
      missingGiveUpRuns,
      now(),
    );
    for (const key of gaveUpKeys) {
      logger.warn("Gave up on {key}: missing in {runs} runs in a row; registered as invalid", {
        key,
        runs: missingGiveUpRuns,
      });
    }
    const rows = await tx.rowCounts();
    const finishedAt = now();
    const runCounts: RunCounts = {
      status: failedKeys.length > 0 ? "failed" : "ok",
      finishedAt,
      rowsInserted: rows.inserted,
      rowsUpdated: rows.updated,
      rowsRemoved: rows.removed,
      filesListed: listing.listedCount + listing.refused.length,
      filesNew: todo.length - filesClaimedElsewhere,
      filesLoaded: counts.filesLoaded,
      filesInvalid: counts.filesInvalid,
      filesMissing: missing.length + missingUnlisted.length,
      filesFailed: failedKeys.length,
      filesRefused: listing.refused.length,
      filesChanged,
      filesDeleted: deletedKeys.length,
      filesClaimedElsewhere,
      loaded: countsByName(loadedByType),
      rejected: counts.rejected,
      ignored: countsByName(ignoredByType),
      issues: [
        ...listing.refused.map(({ key, reason }) => ({ key, outcome: "refused" as const, reason })),
        ...[...missing, ...missingUnlisted].map(({ key, reason }) => ({ key, outcome: "missing" as const, reason })),
        ...failedKeys.map(({ key, reason }) => ({ key, outcome: "failed" as const, reason })),
      ],
    };
    await tx.commit(runCounts);
    logger.info(
      "Committed run {run_id}: {loaded} records loaded ({inserted} new rows, {updated} updated, {removed} removed), " +
        "{rejected} rejected",
      {
        loaded: records,
        inserted: rows.inserted,
        updated: rows.updated,
        removed: rows.removed,
        rejected: counts.rejected,
        status: runCounts.status,
      },
    );
    return {
      ...runCounts,
      filesRefetched,
      lockWaitMs,
      imported,
      gaveUpKeys,
      invalidKeys,
      deletedKeys,
      filesClaimedElsewhere,
      runId: tx.runId,
      startedAt,
      listError: undefined,
      failedKeys,
      missingKeys: missing.map((m) => m.key),
      missingUnlistedKeys: missingUnlisted.map((m) => m.key),
      refusedKeys: listing.refused,
      unchanged: listing.notModified,
      listed: listing.listed,
    };
  } catch (error) {
    await tx.rollback();
    throw error;
  }
}
