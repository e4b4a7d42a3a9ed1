/**
 * The load step: produce the planned keys' files (fetched, parsed and
 * classified, in list order) and write each into the run's transaction,
 * counting what became of every file. On a shared store the keys are claimed
 * a few at a time as the fetches need them.
 *
 * @module
 */
import type { Logger as LogTapeLogger } from "@logtape/logtape";
import type { Plan } from "./plan.ts";
import { DriftCounter, type DriftEntry, type DriftShape } from "../records/mod.ts";
import type { Produced, Producer } from "../produce/produce.ts";
import type { FilePart, RunTransaction } from "../store/store.ts";
import { fileSpan } from "../common/telemetry.ts";

/** A LogTape logger. */
export type Logger = LogTapeLogger;

/** Progress of a run, for a progress bar. */
export interface Progress {
  /** Planned keys settled so far (those another run claimed included). */
  readonly filesDone: number;
  /** Keys planned. */
  readonly filesTotal: number;
  /** Records loaded so far, the current streamed file's included. */
  readonly records: number;
}

/** Counts of one file, summed over its parts. */
export class Tally {
  /** Records loaded. */
  records = 0;
  /** Records rejected. */
  rejected = 0;
  /** Records ignored (unknown types), all types together. */
  ignoredTotal = 0;
  readonly #loaded = new Map<string, number>();
  readonly #ignored = new Map<string, number>();
  readonly #drift: { entries: readonly DriftEntry[]; shapes: readonly DriftShape[] | undefined }[] = [];

  /** Adds a part's (or a file's) counts; returns this. */
  add(part: FilePart): this {
    if (part.drift !== undefined) this.#drift.push({ entries: part.drift, shapes: part.driftShapes });
    this.records += part.records;
    this.rejected += part.rejections.length;
    for (const [name, { count }] of part.rows) this.#loaded.set(name, (this.#loaded.get(name) ?? 0) + count);
    for (const [name, n] of part.ignored) {
      this.#ignored.set(name, (this.#ignored.get(name) ?? 0) + n);
      this.ignoredTotal += n;
    }
    return this;
  }

  /** Adds the loaded and ignored counts by type, and the drift, to the run's. */
  addTo(loaded: Map<string, number>, ignored: Map<string, number>, drift: DriftCounter) {
    for (const [name, n] of this.#loaded) loaded.set(name, (loaded.get(name) ?? 0) + n);
    for (const [name, n] of this.#ignored) ignored.set(name, (ignored.get(name) ?? 0) + n);
    for (const { entries, shapes } of this.#drift) drift.add(entries, shapes);
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

/** A key and why it ended as it did. */
export interface KeyReason {
  /** The key. */
  readonly key: string;
  /** Why. */
  readonly reason: string;
}

/** What the load step needs. */
export interface LoadContext {
  /** The run's transaction. */
  readonly tx: RunTransaction;
  /** The keys to fetch, with their fingerprints and list positions. */
  readonly plan: Plan;
  /** Fetches, parses and classifies the files. */
  readonly produce: Producer;
  /** Where the load step logs. */
  readonly logger: Logger;
  /** The record types, so that every type has a count (0 included). */
  readonly typeNames: readonly string[];
  /** Aborting it stops the load. */
  readonly signal?: AbortSignal | undefined;
  /** Called as keys are settled, for a progress bar. */
  readonly onProgress?: ((p: Progress) => void) | undefined;
}

/** How keys are claimed on a shared store: how many at a time, and which registered ones to skip. */
export interface ClaimOptions {
  /** Keys claimed at a time. */
  readonly batch: number;
  /** Keys registered with one of these statuses are skipped. */
  readonly skip: readonly ("loaded" | "invalid")[] | undefined;
}

/** The load step of one run, and its counts once {@linkcode RunLoad.run} is done. */
export class RunLoad {
  /** Keys whose file failed, with why: the next run fetches them again. */
  readonly failedKeys: KeyReason[] = [];
  /** Missing keys of the list: retried by the next run. */
  readonly missing: KeyReason[] = [];
  /** Keys asked for with --key that are not in the list and were missing: not retried by later runs. */
  readonly missingUnlisted: KeyReason[] = [];
  /** Files that ended invalid, with the reason. */
  readonly invalidKeys: KeyReason[] = [];
  // Record type names come from the bucket: they are counted in Maps ("toString" is just a name).
  /** Records loaded, by type name (every type, 0 included). */
  readonly loadedByType: Map<string, number>;
  /** Records ignored, by type name. */
  readonly ignoredByType = new Map<string, number>();
  /** Schema drift of the loaded files, in list order. */
  readonly drift = new DriftCounter();
  /** Files registered as loaded. */
  filesLoaded = 0;
  /** Files registered as invalid. */
  filesInvalid = 0;
  /** Changed objects whose earlier rows were replaced. */
  filesChanged = 0;
  /** Keys fetched that were registered before. */
  filesRefetched = 0;
  /** Planned keys that another run claimed or loaded first. */
  filesClaimedElsewhere = 0;
  /** The keys another run side by side claimed or loaded first. */
  readonly claimedElsewhere: string[] = [];
  /** Rejections written: records', and invalid files' own. */
  rejected = 0;
  /** Records loaded. */
  records = 0;
  #filesDone = 0;
  /** A streamed file's parts, counted into the totals only once the file is loaded. */
  #parts: { key: string; tally: Tally } | undefined;
  readonly #ctx: LoadContext;
  readonly #unlisted: ReadonlySet<string>;

  /** Prepares the load of `ctx.plan`. */
  constructor(ctx: LoadContext) {
    this.#ctx = ctx;
    this.#unlisted = new Set(ctx.plan.unlisted);
    this.loadedByType = new Map(ctx.typeNames.map((t) => [t, 0]));
  }

  /**
   * Loads every planned key: all of them, or (`claims`) those this run claims
   * on a shared store. `everRegistered` tells re-fetched keys from new ones.
   */
  async run(everRegistered: ReadonlySet<string>, claims?: ClaimOptions): Promise<void> {
    const { todo } = this.#ctx.plan;
    const refetched = (keys: readonly string[]) => keys.filter((k) => everRegistered.has(k)).length;
    this.#progress();
    if (claims === undefined) {
      this.filesRefetched = refetched(todo);
      return await this.#consume(todo);
    }
    await this.#consume(this.#claimed(claims, refetched));
    if (this.filesClaimedElsewhere > 0) {
      this.#ctx.logger.info("{count} keys were claimed or loaded by another run side by side", {
        count: this.filesClaimedElsewhere,
      });
    }
  }

  /** The planned keys this run claims, a batch at a time, as the fetches need them. */
  async *#claimed(o: ClaimOptions, refetched: (keys: readonly string[]) => number): AsyncGenerator<string> {
    const { tx, plan, signal } = this.#ctx;
    for (let i = 0; i < plan.todo.length; i += o.batch) {
      signal?.throwIfAborted();
      const wanted = plan.todo.slice(i, i + o.batch);
      const mine = await tx.claim!(wanted.map((key) => ({ key, fingerprint: plan.fingerprints.get(key) })), o.skip);
      this.filesClaimedElsewhere += wanted.length - mine.length;
      if (mine.length < wanted.length) {
        const taken = new Set(mine);
        this.claimedElsewhere.push(...wanted.filter((k) => !taken.has(k)));
      }
      this.#filesDone += wanted.length - mine.length;
      this.filesRefetched += refetched(mine);
      if (mine.length < wanted.length) this.#progress();
      yield* mine;
    }
  }

  async #consume(keys: readonly string[] | AsyncIterable<string>): Promise<void> {
    for await (const produced of this.#ctx.produce(keys, this.#ctx.signal)) {
      this.#ctx.signal?.throwIfAborted();
      if (produced.kind === "part") await this.#writePart(produced.key, produced.part);
      else {
        this.#filesDone++;
        const tally = this.#parts?.key === produced.key ? this.#parts.tally : new Tally();
        this.#parts = undefined;
        await this.#end(produced, tally);
        this.#progress();
      }
    }
  }

  /** A key's list position decides between files across runs (keys fetched with --key but not listed come last). */
  #position(key: string): number {
    return this.#ctx.plan.positions.get(key) ?? Number.MAX_SAFE_INTEGER;
  }

  async #writePart(key: string, part: FilePart) {
    await this.#ctx.tx.writePart(key, part, {
      replace: this.#ctx.plan.changed.has(key),
      position: this.#position(key),
    });
    if (this.#parts?.key !== key) this.#parts = { key, tally: new Tally() };
    this.#parts.tally.add(part);
    this.#progress(this.#parts.tally.records);
  }

  /** Records how a key ended: missing, failed, or its file written (loaded or invalid). */
  async #end(produced: Exclude<Produced, { kind: "part" }>, tally: Tally) {
    const counted = await this.#settle(produced, tally);
    const file = produced.kind === "file" ? produced.file : undefined;
    fileSpan(produced.timing, {
      "bucketload.key": produced.key,
      "bucketload.bytes": file?.bytes ?? 0,
      "bucketload.outcome": file?.status ?? produced.kind,
      "bucketload.records": counted?.records ?? 0,
      "bucketload.rejected": counted?.rejected ?? 0,
    });
  }

  /** Counts how a key ended; returns the counts of a file written (none for a missing or failed key). */
  async #settle(produced: Exclude<Produced, { kind: "part" }>, tally: Tally): Promise<Tally | undefined> {
    const { key } = produced;
    const { logger, tx } = this.#ctx;
    if (produced.kind === "missing" && this.#unlisted.has(key)) {
      // Not in the list: no later run fetches it, so it is not counted toward MISSING_GIVE_UP_RUNS either.
      logger.warn("Missing {key}: {reason}; it is not in the list, so no later run fetches it (ask again with --key)", {
        key,
        reason: produced.reason,
      });
      this.missingUnlisted.push({ key, reason: produced.reason });
    } else if (produced.kind === "missing") {
      logger.warn("Missing {key}: {reason}; will retry on the next run", { key, reason: produced.reason });
      this.missing.push({ key, reason: produced.reason });
    } else if (produced.kind === "failed") {
      await tx.abortFile(key);
      logger.error("Failed {key}: {reason}", { key, reason: produced.reason });
      this.failedKeys.push({ key, reason: produced.reason });
    } else return await this.#writeFile(produced.file, tally);
    return undefined;
  }

  async #writeFile(produced: Extract<Produced, { kind: "file" }>["file"], tally: Tally): Promise<Tally> {
    const { key } = produced;
    const { plan, tx, logger } = this.#ctx;
    const file = { ...produced, fingerprint: plan.fingerprints.get(key), replace: plan.changed.has(key) };
    await tx.writeFile({ ...file, position: this.#position(key) });
    if (file.replace) this.filesChanged++;
    // An invalid file's parts were discarded: only its own whole-file rejection counts.
    const counted = file.status === "loaded" ? tally.add(file) : new Tally().add(file);
    counted.addTo(this.loadedByType, this.ignoredByType, this.drift);
    this.records += counted.records;
    this.rejected += counted.rejected;
    if (file.status === "loaded") this.filesLoaded++;
    else {
      this.filesInvalid++;
      const reason = file.rejections[0]?.reason ?? "";
      this.invalidKeys.push({ key, reason });
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
    return counted;
  }

  #progress(extra = 0) {
    this.#ctx.onProgress?.({
      filesDone: this.#filesDone,
      filesTotal: this.#ctx.plan.todo.length,
      records: this.records + extra,
    });
  }
}
