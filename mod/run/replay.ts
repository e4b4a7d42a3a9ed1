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
import { oneLine } from "../common/printable.ts";
import type { Logger } from "./load.ts";
import { logFilled } from "./pipeline.ts";
import { Classifier, type RecordType, type RowCell } from "../records/mod.ts";
import { parseJson } from "../records/numbers.ts";
import { compileStrftime } from "../common/strftime.ts";
import {
  NO_FILES,
  type Quarantined,
  type Rederived,
  type Replayer,
  type ReplayFilter,
  type RowCounts,
  type RunCounts,
  type RunTransaction,
  type Store,
} from "../store/store.ts";

/** What a replay needs. */
export interface ReplayOptions {
  /** The store whose quarantine is replayed. */
  readonly store: Store;
  /** The record types whose rules re-validate the records. */
  readonly types: readonly RecordType[];
  /** The profile's bucket (its display form), as a run tells the store. */
  readonly bucket: string;
  /** `DATE_STORE_FORMAT`: the strftime format of `songs.ingestion_time`. */
  readonly dateStoreFormat: string;
  /** The record types' settings (`AWESOME_*`). */
  readonly typeSettings?: Readonly<Record<string, number>> | undefined;
  /** `KEEP_EXTRA`: replayed rows keep the fields their type does not know in `extra`. @default {true} */
  readonly keepExtra?: boolean | undefined;
  /** Which quarantined records to replay. */
  readonly filter: ReplayFilter;
  /** Re-validate and count, then roll back: nothing is written. */
  readonly dryRun: boolean;
  /** Where the replay logs. */
  readonly logger: Logger;
  /** The clock. @default {() => new Date()} */
  readonly now?: () => Date;
  /** Aborting it stops the replay and rolls it back. */
  readonly signal?: AbortSignal | undefined;
  /**
   * `MAX_REJECTED_RAW_BYTES`, the most raw text a quarantined record holds: the quarantine is read a page at a time,
   * {@linkcode REPLAY_PAGE_BYTES} of raw text at most. @default {65536}
   */
  readonly maxRawBytes?: number | undefined;
}

/** The raw text a replay holds at a time (one page of the quarantine, and the rows it yields until they are written). */
export const REPLAY_PAGE_BYTES = 32 * 1024 * 1024;
/** The most records a page of the quarantine holds. */
const REPLAY_PAGE_RECORDS = 1000;
/** How long a replay works before it lets signals and timers in. */
const YIELD_MS = 20;

/** What became of the records stored with one reason. */
export interface ReplayReason {
  /** The reason stored before the replay, without its `, got …` tail. */
  readonly reason: string;
  /** Records run through today's rules. */
  revalidated: number;
  /** Of those, records that now load. */
  loaded: number;
  /** Of those, records now of a type no rule loads (they leave the quarantine). */
  ignored: number;
  /** Of those, records still rejected. */
  stillRejected: number;
  /** Of those still rejected, how many for another reason now. */
  reasonChanged: number;
  /** Of those, records that pass now but are held in quarantine (see {@linkcode ReplayReport.held}). */
  held: number;
}

/** What a replay did (or, with `dryRun`, would do). */
export interface ReplayReport {
  /** The replay's run id; `undefined` when nothing was written (nothing changed, or a dry run). */
  readonly runId: number | undefined;
  /** Re-validated and counted, then rolled back: nothing was written. */
  readonly dryRun: boolean;
  /** When the replay started. */
  readonly startedAt: Date;
  /** When it finished. */
  readonly finishedAt: Date;
  /** Quarantined rows the filter matched. */
  readonly matched: number;
  /** Records run through today's rules. */
  readonly revalidated: number;
  /** Records that now load, by type. */
  readonly loaded: Readonly<Record<string, number>>;
  /** Records that are now of a type no rule loads: they leave the quarantine, counted as ignored. */
  readonly ignored: number;
  /** Records still rejected. */
  readonly stillRejected: number;
  /** Of those still rejected, how many for another reason now. */
  readonly reasonsChanged: number;
  /** Rows new to the tables. */
  readonly rowsInserted: number;
  /** Rows that replaced a row with the same key. */
  readonly rowsUpdated: number;
  /** Stored rows whose derived columns were recomputed because their type's settings changed (no fetch). */
  readonly rederived: Rederived;
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
  /** What became of the records, by the reason stored before, most re-validated first. */
  readonly byReason: readonly ReplayReason[];
}

/** A reason without its `, got …` tail, so that one rule's failures group together. */
export const reasonGroup = (reason: string): string => {
  const at = reason.indexOf(", got ");
  return at === -1 ? reason : reason.slice(0, at);
};

interface Pending {
  readonly position: number;
  readonly rows: Map<string, { count: number; cells: RowCell[] }>;
  loaded: number;
}

/** A quarantined record that can be re-validated: a record of a loaded file at a known position. */
type Candidate = Quarantined & { readonly position: number; readonly index: number; readonly raw: string };

type Skipped = { -readonly [K in keyof ReplayReport["skipped"]]: number };

/** The natural key of `row` in its type's table, as one string. */
const naturalKey = (type: RecordType, row: readonly RowCell[]) =>
  JSON.stringify([type.table, ...type.key.map((k) => row[type.columns.findIndex((c) => c.name === k)])]);

/**
 * Sorts out the records of a page that cannot be re-validated (counted in `skipped`); the rest are claimed (a store
 * that runs share) and ordered.
 */
async function triage(all: readonly Quarantined[], tx: RunTransaction, skipped: Skipped): Promise<Candidate[]> {
  const candidates: Candidate[] = [];
  for (const q of all) {
    if (q.index === null || q.raw === null) skipped.wholeFile++;
    else if (!q.registered || q.deleted) skipped.fileGone++;
    else if (q.position === null) skipped.noPosition++;
    else candidates.push(q as Candidate);
  }
  // A store that runs share: the files are claimed as a run claims them, and a file another run holds waits.
  const keys = [...new Set(candidates.map((q) => q.key))];
  const mine = tx.claim === undefined
    ? new Set(keys)
    : new Set(await tx.claim(keys.map((key) => ({ key })), undefined));
  const todo = candidates.filter((q) => mine.has(q.key) || (skipped.busy++, false));
  // List order, then file order: the order a load writes them in.
  todo.sort((a, b) => a.position - b.position || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0) || a.index - b.index);
  return todo;
}

/** The re-validation of quarantined records, one at a time, and what it adds up to. */
class Revalidation {
  readonly byReason = new Map<string, ReplayReason>();
  readonly loaded: Record<string, number>;
  readonly pending = new Map<string, Pending>();
  readonly released: number[] = [];
  readonly reasons: { id: number; reason: string }[] = [];
  readonly files = new Map<string, { loaded: number; ignored: number }>();
  readonly held: { key: string; index: number; table: string }[] = [];
  revalidated = 0;
  ignored = 0;
  stillRejected = 0;
  unreadable = 0;
  /** The rows this replay loaded (table and natural key): its own writes are not a file's earlier load. */
  readonly #written = new Set<string>();

  constructor(readonly classifier: Classifier, readonly replayer: Replayer, types: readonly RecordType[]) {
    this.loaded = Object.fromEntries(types.map((t) => [t.type, 0]));
  }

  /** Re-validates one record: to load, held, still rejected (its reason noted if it changed), or ignored. */
  async take(q: Candidate): Promise<void> {
    let element: unknown;
    try {
      element = parseJson(q.raw);
    } catch {
      this.unreadable++;
      return;
    }
    const counts = this.#reason(q.reason);
    this.revalidated++;
    counts.revalidated++;
    const outcome = this.classifier.classify(element, undefined, () => new TextEncoder().encode(q.raw));
    if (outcome.kind === "rejected") {
      this.stillRejected++;
      counts.stillRejected++;
      // Reasons are stored on one line (see the kit's reject): compared in that form.
      const reason = oneLine(outcome.reason);
      if (reason !== q.reason) {
        this.reasons.push({ id: q.id, reason });
        counts.reasonChanged++;
      }
      return;
    }
    const file = this.files.get(q.key) ?? { loaded: 0, ignored: 0 };
    if (outcome.kind === "ignored") {
      this.ignored++;
      counts.ignored++;
      file.ignored++;
    } else {
      // A row of the same file, loaded before (not by this replay): which of the two came later in the file is not kept.
      const natural = naturalKey(outcome.type, outcome.row);
      if (!this.#written.has(natural) && await this.replayer.rowSource(outcome.type, outcome.row) === q.key) {
        this.held.push({ key: q.key, index: q.index, table: outcome.type.table });
        counts.held++;
        return;
      }
      this.#add(q, outcome.type, outcome.row);
      this.#written.add(natural);
      counts.loaded++;
      file.loaded++;
    }
    this.files.set(q.key, file);
    this.released.push(q.id);
  }

  #reason(reason: string): ReplayReason {
    const group = reasonGroup(reason);
    let counts = this.byReason.get(group);
    if (counts === undefined) {
      counts = { reason: group, revalidated: 0, loaded: 0, ignored: 0, stillRejected: 0, reasonChanged: 0, held: 0 };
      this.byReason.set(group, counts);
    }
    return counts;
  }

  #add(q: Candidate, type: RecordType, row: readonly RowCell[]) {
    let p = this.pending.get(q.key);
    if (p === undefined) this.pending.set(q.key, p = { position: q.position, rows: new Map(), loaded: 0 });
    let bucket = p.rows.get(type.type);
    if (bucket === undefined) p.rows.set(type.type, bucket = { count: 0, cells: [] });
    bucket.cells.push(...row);
    bucket.count++;
    p.loaded++;
    this.loaded[type.type] = (this.loaded[type.type] ?? 0) + 1;
  }

  /** Writes a page's rows, file by file in list order (a Map keeps the order they came in), and lets them go. */
  async flush(): Promise<void> {
    for (const [key, p] of this.pending) {
      await this.replayer.writeRows(
        key,
        { rows: p.rows, records: p.loaded, rejections: [], ignored: new Map() },
        p.position,
      );
    }
    this.pending.clear();
  }

  /** Writes the quarantine's changes. */
  async settle(): Promise<void> {
    await this.replayer.settle({ released: this.released, reasons: this.reasons, files: this.files });
  }

  /** Whether the replay changes anything: a record leaves the quarantine, or a reason changes. */
  get changed(): boolean {
    return this.released.length > 0 || this.reasons.length > 0;
  }
}

/** The run row of a replay: no file, the records loaded by type, and its rows. */
function replayCounts(loaded: Readonly<Record<string, number>>, rows: RowCounts, finishedAt: Date): RunCounts {
  return {
    kind: "replay",
    status: "ok",
    finishedAt,
    rowsInserted: rows.inserted,
    rowsUpdated: rows.updated,
    rowsRemoved: rows.removed,
    ...NO_FILES,
    loaded,
    rejected: 0,
    ignored: {},
    issues: [],
    drift: [],
  };
}

/**
 * Replays the quarantined records `options.filter` matches.
 *
 * @throws {LockedError} when a run holds the store
 */
export async function runReplay(options: ReplayOptions): Promise<ReplayReport> {
  const { store, types, logger, now = () => new Date() } = options;
  const startedAt = now();
  // The run's id is drawn at the commit: a dry run, or a replay that changes nothing, uses none.
  const tx = await store.begin(startedAt, { bucket: options.bucket, signal: options.signal, idAtCommit: true });
  try {
    // Derived columns follow their settings first: records replayed below are derived by the same settings.
    const rederived = await tx.rederive(options.typeSettings ?? {});
    logFilled(logger, rederived);
    const replayer = tx.replayer();
    const classifier = new Classifier(types, {
      ingestionTime: compileStrftime(options.dateStoreFormat)(startedAt),
      settings: options.typeSettings,
      rejectNul: !store.holdsNul,
      keepExtra: options.keepExtra,
    });
    const r = new Revalidation(classifier, replayer, types);
    const skipped: Skipped = { wholeFile: 0, fileGone: 0, unreadable: 0, noPosition: 0, busy: 0 };
    // A page at a time, so that memory holds one page's raw text whatever the quarantine's size; rows in list order
    // within a page, and across pages the later list position wins as in a run (the store's upsert rule).
    const limit = Math.max(
      1,
      Math.min(REPLAY_PAGE_RECORDS, Math.floor(REPLAY_PAGE_BYTES / (options.maxRawBytes ?? 65_536))),
    );
    let matched = 0;
    let lastYield = performance.now();
    for (let afterId = 0;;) {
      const page = await replayer.quarantined(options.filter, { afterId, limit });
      matched += page.length;
      logger.debug("Replay: {records} quarantined records after id {afterId}", { records: page.length, afterId });
      for (const q of await triage(page, tx, skipped)) {
        // SQLite answers without a pause: let a stop signal, and the launcher's watch, in.
        if (performance.now() - lastYield > YIELD_MS) {
          await new Promise((resolve) => setTimeout(resolve, 0));
          lastYield = performance.now();
        }
        options.signal?.throwIfAborted();
        await r.take(q);
      }
      await r.flush();
      if (page.length < limit) break;
      afterId = page.at(-1)!.id;
    }
    skipped.unreadable = r.unreadable;
    await r.settle();
    options.signal?.throwIfAborted();
    const rows = await tx.rowCounts();
    const finishedAt = now();
    let runId: number | undefined;
    if (options.dryRun || (!r.changed && rederived.rows === 0 && rederived.filled.columns.length === 0)) {
      await tx.rollback();
    } else {
      await tx.commit(replayCounts(r.loaded, rows, finishedAt));
      runId = tx.runId;
      logger.info(
        "Committed replay {run_id}: records that left the quarantine: {released}; reasons changed: {reasons}; " +
          "stored rows re-derived: {rederived}",
        { run_id: runId, released: r.released.length, reasons: r.reasons.length, rederived: rederived.rows },
      );
    }
    return {
      runId,
      dryRun: options.dryRun,
      startedAt,
      finishedAt,
      matched,
      revalidated: r.revalidated,
      loaded: r.loaded,
      ignored: r.ignored,
      stillRejected: r.stillRejected,
      reasonsChanged: r.reasons.length,
      rowsInserted: rows.inserted,
      rowsUpdated: rows.updated,
      rederived,
      held: r.held,
      skipped,
      byReason: [...r.byReason.values()].sort((a, b) =>
        b.revalidated - a.revalidated || (a.reason < b.reason ? -1 : 1)
      ),
    };
  } catch (error) {
    await tx.rollback();
    throw error;
  }
}
