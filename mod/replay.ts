/**
 * `replay`: quarantined records (`rejected_records`) re-validated by today's
 * rules without fetching their files again. Records that now pass are
 * upserted at their file's list position, as a load would (the later file
 * wins), and leave the quarantine; the rest stay, with their reason updated
 * when it changed. One transaction, under a run's lock; nothing is written
 * when nothing changed, or with `dryRun`.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { type Cell, Classifier, type RecordType } from "./records/mod.ts";
import { parseJson } from "./records/numbers.ts";
import { compileStrftime } from "./strftime.ts";
import type { Quarantined, ReplayFilter, Store } from "./store/store.ts";

/** What a replay needs. */
export interface ReplayOptions {
  readonly store: Store;
  readonly types: readonly RecordType[];
  /** The profile's bucket (its display form), as a run tells the store. */
  readonly bucket: string;
  readonly dateStoreFormat: string;
  /** The record types' settings (`AWESOME_*`). */
  readonly typeSettings?: Readonly<Record<string, number>> | undefined;
  readonly filter: ReplayFilter;
  /** Re-validate and count, then roll back: nothing is written. */
  readonly dryRun: boolean;
  readonly logger: Logger;
  readonly now?: () => Date;
  readonly signal?: AbortSignal | undefined;
}

/** What became of the records stored with one reason. */
export interface ReplayReason {
  /** The reason stored before the replay, without its `, got …` tail. */
  readonly reason: string;
  revalidated: number;
  loaded: number;
  ignored: number;
  stillRejected: number;
  /** Of those still rejected, how many for another reason now. */
  reasonChanged: number;
  held: number;
}

/** What a replay did (or, with `dryRun`, would do). */
export interface ReplayReport {
  /** The replay's run id; `undefined` when nothing was written (nothing changed, or a dry run). */
  readonly runId: number | undefined;
  readonly dryRun: boolean;
  readonly startedAt: Date;
  readonly finishedAt: Date;
  /** Quarantined rows the filter matched. */
  readonly matched: number;
  /** Records run through today's rules. */
  readonly revalidated: number;
  /** Records that now load, by type. */
  readonly loaded: Readonly<Record<string, number>>;
  /** Records that are now of a type no rule loads: they leave the quarantine, counted as ignored. */
  readonly ignored: number;
  readonly stillRejected: number;
  readonly reasonsChanged: number;
  readonly rowsInserted: number;
  readonly rowsUpdated: number;
  /**
   * Records that pass now, kept in quarantine: their file also loaded a
   * record with the same key, and which of the two came later is not kept;
   * `--key` re-loads the file.
   */
  readonly held: readonly { readonly key: string; readonly index: number; readonly table: string }[];
  /** Records not re-validated, and why. */
  readonly skipped: {
    /** Whole-file rejections: `--retry-invalid` re-fetches those files. */
    readonly wholeFile: number;
    /** Their file is no longer registered as loaded, or was deleted from the bucket. */
    readonly fileGone: number;
    /** The raw text was cut at `MAX_REJECTED_RAW_BYTES`, or is not JSON. */
    readonly unreadable: number;
    /** The file's list position is unknown (no row of it is left to tell). */
    readonly noPosition: number;
    /** A run side by side holds the file (PostgreSQL). */
    readonly busy: number;
  };
  readonly byReason: readonly ReplayReason[];
}

/** A reason without its `, got …` tail, so that one rule's failures group together. */
export const reasonGroup = (reason: string) => {
  const at = reason.indexOf(", got ");
  return at === -1 ? reason : reason.slice(0, at);
};

interface Pending {
  readonly position: number;
  readonly rows: Map<string, { count: number; cells: Cell[] }>;
  loaded: number;
}

/**
 * Replays the quarantined records `options.filter` matches.
 *
 * @throws {LockedError} when a run holds the store
 */
export async function runReplay(options: ReplayOptions): Promise<ReplayReport> {
  const { store, types, logger, now = () => new Date() } = options;
  const startedAt = now();
  const tx = await store.begin(startedAt, { bucket: options.bucket, signal: options.signal });
  try {
    const replayer = tx.replayer();
    const all = await replayer.quarantined(options.filter);
    const skipped = { wholeFile: 0, fileGone: 0, unreadable: 0, noPosition: 0, busy: 0 };
    const candidates: (Quarantined & { position: number; index: number; raw: string })[] = [];
    for (const q of all) {
      if (q.index === null || q.raw === null) skipped.wholeFile++;
      else if (!q.registered || q.deleted) skipped.fileGone++;
      else if (q.position === null) skipped.noPosition++;
      else candidates.push(q as Quarantined & { position: number; index: number; raw: string });
    }
    // A store that runs share: the files are claimed as a run claims them, and a file another run holds waits.
    const keys = [...new Set(candidates.map((q) => q.key))];
    const mine = tx.claim === undefined
      ? new Set(keys)
      : new Set(await tx.claim(keys.map((key) => ({ key })), undefined));
    const todo = candidates.filter((q) => mine.has(q.key) || (skipped.busy++, false));
    todo.sort((a, b) => a.position - b.position || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) || a.index - b.index);

    const classifier = new Classifier(types, {
      ingestionTime: compileStrftime(options.dateStoreFormat)(startedAt),
      settings: options.typeSettings,
      rejectNul: !store.holdsNul,
    });
    const byReason = new Map<string, ReplayReason>();
    const loaded: Record<string, number> = Object.fromEntries(types.map((t) => [t.type, 0]));
    const pending = new Map<string, Pending>();
    const released: number[] = [];
    const reasons: { id: number; reason: string }[] = [];
    const files = new Map<string, { loaded: number; ignored: number }>();
    const held: { key: string; index: number; table: string }[] = [];
    let revalidated = 0, ignored = 0, stillRejected = 0;
    for (const q of todo) {
      options.signal?.throwIfAborted();
      let element: unknown;
      try {
        element = parseJson(q.raw);
      } catch {
        skipped.unreadable++;
        continue;
      }
      const group = reasonGroup(q.reason);
      let counts = byReason.get(group);
      if (counts === undefined) {
        counts = { reason: group, revalidated: 0, loaded: 0, ignored: 0, stillRejected: 0, reasonChanged: 0, held: 0 };
        byReason.set(group, counts);
      }
      revalidated++;
      counts.revalidated++;
      const outcome = classifier.classify(element);
      const file = files.get(q.key) ?? { loaded: 0, ignored: 0 };
      if (outcome.kind === "rejected") {
        stillRejected++;
        counts.stillRejected++;
        if (outcome.reason !== q.reason) {
          reasons.push({ id: q.id, reason: outcome.reason });
          counts.reasonChanged++;
        }
        continue;
      }
      if (outcome.kind === "ignored") {
        ignored++;
        counts.ignored++;
        file.ignored++;
      } else {
        // Rows of the file loaded before the replay: which record came later in it is not kept.
        if (await replayer.rowSource(outcome.type, outcome.row) === q.key) {
          held.push({ key: q.key, index: q.index, table: outcome.type.table });
          counts.held++;
          continue;
        }
        let p = pending.get(q.key);
        if (p === undefined) pending.set(q.key, p = { position: q.position, rows: new Map(), loaded: 0 });
        let bucket = p.rows.get(outcome.type.type);
        if (bucket === undefined) p.rows.set(outcome.type.type, bucket = { count: 0, cells: [] });
        bucket.cells.push(...outcome.row);
        bucket.count++;
        p.loaded++;
        loaded[outcome.type.type] = (loaded[outcome.type.type] ?? 0) + 1;
        counts.loaded++;
        file.loaded++;
      }
      files.set(q.key, file);
      released.push(q.id);
    }
    // Files in list order (a Map keeps the order of `todo`), so that the later file wins.
    for (const [key, p] of pending) {
      await replayer.writeRows(
        key,
        { rows: p.rows, records: p.loaded, rejections: [], ignored: new Map() },
        p.position,
      );
    }
    await replayer.settle({ released, reasons, files });
    const rows = await tx.rowCounts();
    const changed = released.length > 0 || reasons.length > 0;
    const finishedAt = now();
    let runId: number | undefined;
    if (options.dryRun || !changed) await tx.rollback();
    else {
      await tx.commit({
        kind: "replay",
        status: "ok",
        finishedAt,
        rowsInserted: rows.inserted,
        rowsUpdated: rows.updated,
        rowsRemoved: rows.removed,
        filesListed: 0,
        filesNew: 0,
        filesLoaded: 0,
        filesInvalid: 0,
        filesMissing: 0,
        filesFailed: 0,
        filesRefused: 0,
        filesChanged: 0,
        filesDeleted: 0,
        filesClaimedElsewhere: 0,
        loaded,
        rejected: 0,
        ignored: {},
        issues: [],
        drift: [],
      });
      runId = tx.runId;
      logger.info("Committed replay {run_id}: {released} records left the quarantine, {reasons} reasons changed", {
        run_id: runId,
        released: released.length,
        reasons: reasons.length,
      });
    }
    return {
      runId,
      dryRun: options.dryRun,
      startedAt,
      finishedAt,
      matched: all.length,
      revalidated,
      loaded,
      ignored,
      stillRejected,
      reasonsChanged: reasons.length,
      rowsInserted: rows.inserted,
      rowsUpdated: rows.updated,
      held,
      skipped,
      byReason: [...byReason.values()].sort((a, b) => b.revalidated - a.revalidated || (a.reason < b.reason ? -1 : 1)),
    };
  } catch (error) {
    await tx.rollback();
    throw error;
  }
}
