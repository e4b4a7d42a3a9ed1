/**
 * The store contract: one transaction per run holding data rows, the
 * registry of processed files, rejections and the run row. Implemented by
 * `SqliteStore` (one run at a time) and `PostgresStore` (runs that claim
 * keys, side by side).
 *
 * @module
 */
import type { DriftEntry, DriftShape, RecordType, RowCell } from "../records/mod.ts";
import type { Validators } from "../source/source.ts";
import type { CachedList, ListState } from "../source/listing.ts";
import type { StatusReport } from "./status.ts";

/** A record that failed, kept with its reason and raw JSON. */
export interface Rejection {
  /** Index in the file's array; `null` when the whole file is invalid. */
  readonly index: number | null;
  /** The record's `type`, when it had a string one. */
  readonly typeName: string | null;
  /** Why it was rejected. */
  readonly reason: string;
  /** The element's JSON, capped; `null` for a whole-file rejection. */
  readonly raw: string | null;
}

/** A registered file's status. */
export type FileStatus = "loaded" | "invalid";

/** Rows, rejections and ignored counts of a file, or of a part of a streamed file. */
export interface FilePart {
  /**
   * Rows by record type name: `count` rows as one flat array of cells, each
   * row's columns in order then its `extra` cell, rows in array order (so that a later record with
   * the same key wins). The store adds `source_key` (the file's key) and
   * `source_pos` to each row: they are the same for every row of a file.
   */
  readonly rows: ReadonlyMap<string, { readonly count: number; readonly cells: readonly RowCell[] }>;
  /** Rows loaded, all types together. */
  readonly records: number;
  /** The part's rejected records. */
  readonly rejections: readonly Rejection[];
  /** Ignored records (unknown types) by type name. */
  readonly ignored: ReadonlyMap<string, number>;
  /** Schema drift of the part's records, when there is any. */
  readonly drift?: readonly DriftEntry[] | undefined;
  /** The part's drifted records by type and fields, with `drift`: the run's `more` counts records by them. */
  readonly driftShapes?: readonly DriftShape[] | undefined;
}

/** What identifies an object's content in a bucket listing: its ETag and size. */
export interface Fingerprint {
  /** The object's ETag. */
  readonly etag: string;
  /** The object's size in bytes. */
  readonly size: number;
}

/** A listed key and its fingerprint. */
export interface ListedFingerprint extends Fingerprint {
  /** The object's key. */
  readonly key: string;
}

/** A key of a held listing to fetch. */
export interface PlannedKey extends ListedFingerprint {
  /** Its position in the listing. */
  readonly position: number;
  /** Registered before, and changed (or deleted and back): its earlier rows are replaced. */
  readonly changed: boolean;
}

/** A registered key's fingerprint (null when it was loaded without one) and whether it was deleted. */
export interface RegistryEntry {
  /** The status it is registered with. */
  readonly status: FileStatus;
  /** The fingerprint it was loaded with; `null` when it was loaded without one. */
  readonly fingerprint: Fingerprint | null;
  /** It is marked deleted: gone from the bucket's listing. */
  readonly deleted: boolean;
}

/** Everything one processed file adds to the database (after any parts written before it). */
export interface FileWrite extends FilePart {
  /** The file's key. */
  readonly key: string;
  /** The status the file is registered with. */
  readonly status: FileStatus;
  /** When the file was processed, recorded in the registry. */
  readonly processedAt: Date;
  /** The file's size in bytes, recorded in the registry. */
  readonly bytes: number;
  /** The object's fingerprint in the listing, recorded in the registry. */
  readonly fingerprint?: Fingerprint | undefined;
  /**
   * The object changed since it was loaded: its earlier rows (those whose
   * `source_key` it is) are removed before its new rows go in.
   */
  readonly replace?: boolean | undefined;
  /**
   * The file's position in the list: a row is only replaced by one from the
   * same or a later position, so that the later file in list order wins
   * across runs too. @default {Number.MAX_SAFE_INTEGER}
   */
  readonly position?: number | undefined;
}

/** How a part of a streamed file is written: see {@linkcode FileWrite}'s fields of the same names. */
export interface PartOptions {
  /** See {@linkcode FileWrite.replace}. */
  readonly replace?: boolean | undefined;
  /** See {@linkcode FileWrite.position}. */
  readonly position?: number | undefined;
}

/** Rows a run wrote: new rows, rows that replaced a row with the same key, and rows deleted. */
export interface RowCounts {
  /** Rows new to the tables. */
  readonly inserted: number;
  /** Rows that replaced a row with the same key. */
  readonly updated: number;
  /** Rows deleted. */
  readonly removed: number;
}

/** What {@linkcode RunTransaction.importKeys} did. */
export interface ImportOutcome {
  /** Keys newly registered. */
  readonly imported: number;
  /** Why nothing was imported, or `undefined` at a take-over. */
  readonly skipped: "registry" | "no-rows" | undefined;
}

/** Which quarantined records `replay` takes: by record type, and by a text the reason contains. */
export interface ReplayFilter {
  /** Only the records of this type. */
  readonly type?: string | undefined;
  /** Only the records whose reason contains this text. */
  readonly reason?: string | undefined;
}

/** A page of the quarantine, by id. */
export interface QuarantinePage {
  /** Only the records with an id above this one. */
  readonly afterId: number;
  /** At most this many records. */
  readonly limit: number;
}

/** A quarantined record (a `rejected_records` row), with what replay needs of its file. */
export interface Quarantined {
  /** Its `rejected_records` id. */
  readonly id: number;
  /** Its file's key. */
  readonly key: string;
  /** Index in its file's array; `null` for a whole-file rejection (not a record). */
  readonly index: number | null;
  /** The record's `type`, when it had a string one. */
  readonly typeName: string | null;
  /** Why it was rejected. */
  readonly reason: string;
  /** The element's JSON, capped; `null` for a whole-file rejection. */
  readonly raw: string | null;
  /** Its file is registered as loaded. */
  readonly registered: boolean;
  /** Its file is marked deleted from the bucket. */
  readonly deleted: boolean;
  /** Its file's list position, when known. */
  readonly position: number | null;
}

/** What a replay writes besides rows. */
export interface ReplaySettlement {
  /** Quarantined records that now load (or are ignored): they leave `rejected_records`. */
  readonly released: readonly number[];
  /** Records still rejected, for another reason than the one stored. */
  readonly reasons: readonly { readonly id: number; readonly reason: string }[];
  /** Per file, records released as loaded and as ignored: its registry counts follow. */
  readonly files: ReadonlyMap<string, { readonly loaded: number; readonly ignored: number }>;
}

/** A run's way to re-validate quarantined records (see `run/replay.ts`): the kit's SQL and the store's row writes. */
export interface Replayer {
  /**
   * The quarantined records `filter` matches, by id: those after `page.afterId`, at most `page.limit` of them
   * (all without `page`). Only reads.
   */
  quarantined(filter: ReplayFilter, page?: QuarantinePage): Promise<Quarantined[]>;
  /** The `source_key` of the row of `type` with `row`'s natural key, if there is one. Only reads. */
  rowSource(type: RecordType, row: readonly RowCell[]): Promise<string | undefined>;
  /** Writes rows of one file at its list position, as a run does (the later file wins). */
  writeRows(key: string, part: FilePart, position: number): Promise<void>;
  /** Records what became of the quarantined records. */
  settle(settlement: ReplaySettlement): Promise<void>;
}

/** The counts stored in the run's row at commit. */
export interface RunCounts {
  /** `replay` for a replay of quarantined records. @default {"run"} */
  readonly kind?: "run" | "replay" | undefined;
  /** Rows new to the tables (from `rowCounts()`). */
  readonly rowsInserted: number;
  /** Rows that replaced an earlier row with the same key (from `rowCounts()`). */
  readonly rowsUpdated: number;
  /**
   * Rows deleted: a changed object's earlier rows (before its new rows went
   * in, which count as inserted) and a pruned object's rows.
   */
  readonly rowsRemoved: number;
  /** `failed` when a file failed (the next run fetches it again), else `ok`. */
  readonly status: "ok" | "failed";
  /** When the run finished. */
  readonly finishedAt: Date;
  /** Keys listed, refused ones included. */
  readonly filesListed: number;
  /** Keys the run fetched: its plan's, less those another run claimed or loaded first. */
  readonly filesNew: number;
  /** Files registered as loaded. */
  readonly filesLoaded: number;
  /** Files registered as invalid. */
  readonly filesInvalid: number;
  /** Listed keys that the bucket did not have. */
  readonly filesMissing: number;
  /** Files that failed: fetched again by the next run. */
  readonly filesFailed: number;
  /** Listed keys refused as unsafe. */
  readonly filesRefused: number;
  /** Of the new files, objects that changed since they were loaded (re-fetched, rows replaced). */
  readonly filesChanged: number;
  /** Registered objects gone from the bucket's listing in this run. */
  readonly filesDeleted: number;
  /** Keys to fetch that another run side by side claimed or loaded first (PostgreSQL). */
  readonly filesClaimedElsewhere: number;
  /** Loaded records by type name. */
  readonly loaded: Readonly<Record<string, number>>;
  /** Records rejected, all types together. */
  readonly rejected: number;
  /** Ignored records by type name. */
  readonly ignored: Readonly<Record<string, number>>;
  /** Keys that were refused, missing or failed in this run, with why. */
  readonly issues: readonly KeyIssue[];
  /** Schema drift of the run's loaded files, bounded per type. */
  readonly drift: readonly DriftEntry[];
}

/** A run's file counts when it settled no file (a replay, a run that wrote nothing). */
export const NO_FILES = {
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
} as const satisfies Partial<RunCounts>;

/** A key that did not load in a run. */
export interface KeyIssue {
  /** The key. */
  readonly key: string;
  /** What became of it. */
  readonly outcome: "refused" | "missing" | "failed";
  /** Why. */
  readonly reason: string;
}

/** A key a run wants to fetch. */
export interface Claim {
  /** The key. */
  readonly key: string;
  /** The fingerprint the run wants to load: a key registered with another (or deleted) is not skipped. */
  readonly fingerprint?: Fingerprint | undefined;
}

/** An open run: everything written through it commits or rolls back together. */
export interface RunTransaction {
  /**
   * The run's id, stored with its rejections and registry entries; for a run
   * begun with `idAtCommit`, known only once committed (read before, it throws).
   */
  readonly runId: number;
  /** How long the run waited for another run's lock: 0 when none held it. */
  readonly lockWaitMs: number;
  /** Which of `keys` are already registered with one of `statuses` (default: loaded or invalid). */
  registered(keys: readonly string[], statuses?: readonly FileStatus[]): Promise<ReadonlySet<string>>;
  /**
   * The `keys` not registered with one of `statuses` (default: loaded or
   * invalid), in their order: for a long list, where most keys are registered,
   * far less to return than {@linkcode registered}.
   */
  unregistered(keys: readonly string[], statuses?: readonly FileStatus[]): Promise<string[]>;
  /**
   * For a store that several runs share at once: claims `keys` for this run
   * (until it ends) and returns those it got, in order. A key another run
   * holds is skipped, and so is one registered with a status of
   * `skipRegistered` by the time the claim is held. Stores with one run at a
   * time (SQLite's lock) leave it out, and every key is the run's.
   */
  claim?(keys: readonly Claim[], skipRegistered: readonly FileStatus[] | undefined): Promise<string[]>;
  /**
   * Holds a page of this run's bucket listing (in a temp table, not in
   * memory): `objects` in key order, the first at list position
   * `firstPosition`. The queries below compare the held listing with the
   * registry in the database.
   */
  addListed(objects: readonly ListedFingerprint[], firstPosition: number): Promise<void>;
  /**
   * The held listing's keys to fetch, in list order: those not registered
   * (with `loadedOnly`, not registered as loaded), deleted ones that came
   * back, and with `detect` those whose fingerprint changed; with `all`,
   * every key.
   */
  listedPlan(options: { all: boolean; loadedOnly: boolean; detect: boolean }): Promise<PlannedKey[]>;
  /** Registered keys, not yet marked deleted, that the held listing lacks. Only reads. */
  unlisted(): Promise<string[]>;
  /**
   * Marks `keys` deleted from the bucket at `at`; with `prune`, their rows go
   * too. Returns the keys this run marked (another run side by side may have
   * marked some first).
   */
  markDeleted(keys: readonly string[], at: Date, prune: boolean): Promise<string[]>;
  /**
   * What an earlier run kept of this bucket's list `key`: its validators (for a conditional GET), and its state
   * (`source/list_text.ts`), or from a build before states its text.
   */
  cachedList(key: string): Promise<CachedList | undefined>;
  /** How many keys the registry holds, as this run sees it (its own registrations included). */
  registrySize(): Promise<number>;
  /**
   * Keeps the list's state and validators for the next run: written when the run commits, or notes a check
   * (`rollbackAsCheck`), not before.
   */
  cacheList(key: string, state: ListState, validators: Validators): Promise<void>;
  /**
   * Registers keys another tool processed (the original's `processed.json`)
   * as loaded, unless already registered, but only at a take-over: when the
   * database holds the original's rows and its registry was empty at the
   * start of this run. Otherwise nothing is imported, and `skipped` says why:
   * `registry` (the registry is bucketload's own: the file is output only),
   * `no-rows` (no rows of the original here: the keys' files must be loaded).
   */
  importKeys(keys: readonly string[], processedAt: Date): Promise<ImportOutcome>;
  /**
   * Counts a run in which `keys` were missing (and resets the count of every
   * other key); keys missing in `giveUpRuns` runs in a row are registered as
   * invalid and returned. `giveUpRuns` 0 never gives up.
   */
  noteMissing(keys: readonly { key: string; reason: string }[], giveUpRuns: number, at: Date): Promise<string[]>;
  /** Rows written so far in this run (staged rows merged first): new rows and rows that replaced others. */
  rowCounts(): Promise<RowCounts>;
  /**
   * Adds part of a streamed file, inside a savepoint that its `writeFile`
   * releases. `replace` (on its first part) removes the object's earlier rows.
   */
  writePart(key: string, part: FilePart, options?: PartOptions): Promise<void>;
  /**
   * Adds one file's (last) rows, rejections and registry entry. For an
   * invalid file, parts written before are discarded first.
   */
  writeFile(file: FileWrite): Promise<void>;
  /** Discards the parts of a streamed file that failed. A no-op when there are none. */
  abortFile(key: string): Promise<void>;
  /** Stores the run row and commits. */
  commit(counts: RunCounts): Promise<void>;
  /**
   * Drops everything written in this run but a note that the bucket was
   * checked at `at` with `result` (a no-op run leaves no run row, only that),
   * and `meta` values that hold whether or not the run wrote (recorded settings).
   */
  rollbackAsCheck(at: Date, result: string, meta?: Readonly<Record<string, string>>): Promise<void>;
  /** Drops everything written in this run. Safe to call twice. */
  rollback(): Promise<void>;
  /** This run's way to replay quarantined records instead of loading files. */
  replayer(): Replayer;
  /**
   * Recomputes the derived columns of stored rows whose type's settings
   * changed since they were derived (see `kit/rederive.ts`), and records
   * `settings`: no fetch, in this transaction.
   */
  rederive(settings: Readonly<Record<string, number>>): Promise<Rederived>;
}

/** What re-deriving came to. */
export interface Rederived {
  /** Rows whose derived columns changed. */
  readonly rows: number;
  /** Each setting that changed since the stored rows were derived, e.g. `AWESOME_MIN_RATING 4.5 → 4`. */
  readonly changes: readonly string[];
  /**
   * The `meta` values that record the settings, when they differ from what was recorded: a run that changes no row
   * and then writes nothing else keeps them (see `RunTransaction.rollbackAsCheck`).
   */
  readonly record: Readonly<Record<string, string>>;
  /** The columns added for fields their type gained, filled from the stored rows' `extra` (no fetch). */
  readonly filled: Filled;
}

/** What filling new columns from `extra` came to (docs/data.md, "Extra"). */
export interface Filled {
  /** Rows whose new columns were filled from `extra` (the fields removed from it). */
  readonly rows: number;
  /** The columns filled, as `table.column` (none: no column was added). */
  readonly columns: readonly string[];
  /** Rows whose kept field fails the type's check: the column stays NULL, the field stays in `extra`. */
  readonly failed: number;
  /** The first few of them, as `table (natural key)`. */
  readonly failedKeys: readonly string[];
}

/** Nothing re-derived, nothing to record. */
export const NOTHING_REDERIVED: Rederived = {
  rows: 0,
  changes: [],
  record: {},
  filled: { rows: 0, columns: [], failed: 0, failedKeys: [] },
};

/** What a run tells the store up front. */
export interface BeginOptions {
  /** The bucket's identity (its display form): the list cache is kept per bucket, and a change is reported. */
  readonly bucket: string;
  /** Told once when the database was loaded from another bucket before. */
  readonly onBucketChange?: ((previous: string, current: string) => void) | undefined;
  /** Stops the run's store work when aborted, even while the database does not answer. */
  readonly signal?: AbortSignal | undefined;
  /**
   * The run's row, and so its id, is written at its commit only: a run that
   * rolls back (a replay's dry run, or a replay that changed nothing) uses no
   * id. For work that writes nothing naming its run before the commit (a
   * replay); its `runId` is known once committed. PostgreSQL needs it (its
   * identity sequence does not roll back); SQLite, which gives a rolled-back
   * id again, ignores it.
   */
  readonly idAtCommit?: boolean | undefined;
  /**
   * Every file is loaded again (`--force`): a data table dropped by hand is made anew and filled, rather than
   * refused.
   */
  readonly reload?: boolean | undefined;
}

/** A database of loaded records. */
export interface Store {
  /** Where the store is, for messages. */
  readonly display: string;
  /** Whether text columns hold U+0000 (SQLite's do, PostgreSQL's do not: such records are rejected). */
  readonly holdsNul: boolean;
  /**
   * Takes the run lock and opens the run's transaction.
   *
   * @throws {LockedError} when another run holds the lock past the timeout
   */
  begin(startedAt: Date, options: BeginOptions): Promise<RunTransaction>;
  /** Every registered key, by the run that last registered it, then by key: the same order in every store. */
  registeredKeys(): Promise<string[]>;
  /**
   * The keys registered by runs after run `after` (every key without it), in {@linkcode registeredKeys}'s order,
   * with how many keys the registry holds and the last run that registered one. Only reads.
   */
  registrySince(after?: number): Promise<RegistrySince>;
  /** A note the store keeps for a command (a `meta` value), or `undefined`. Only reads. */
  readNote(name: string): Promise<string | undefined>;
  /** Keeps a note for a command (a `meta` value), in a transaction of its own. */
  writeNote(name: string, value: string): Promise<void>;
  /** Whether a run would take over the Python original's rows now (they are here, the registry is empty). */
  takesOver(): Promise<boolean>;
  /** Which of `keys` are registered, read without taking the lock (for dry runs). */
  peekRegistered(keys: readonly string[], statuses?: readonly FileStatus[]): Promise<ReadonlySet<string>>;
  /** The registry entries of every registered key (for a dry run over a bucket listing); only reads. */
  peekEntries(): Promise<ReadonlyMap<string, RegistryEntry>>;
  /** Whether a run has committed into the store (a `runs` row): `replay` needs one. Only reads. */
  hasRuns(): Promise<boolean>;
  /** The `status` report. Only reads. */
  status(): Promise<StatusReport>;
  /** Releases the database. */
  close(): void | Promise<void>;
}

/** What {@linkcode Store.registrySince} reads. */
export interface RegistrySince {
  /** The keys registered after the run asked about, in order. */
  readonly keys: string[];
  /** How many keys the registry holds. */
  readonly count: number;
  /** The last run that registered a key; 0 when none did. */
  readonly lastRun: number;
}

/** Registered files by status, and `deleted` (gone from the bucket's listing; counted in their status too). */
export function registryCounts(
  byStatus: readonly { status: string; n: number }[],
  deleted: number,
): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(byStatus.map((r) => [r.status, r.n]));
  if (deleted > 0) counts.deleted = deleted;
  return counts;
}
