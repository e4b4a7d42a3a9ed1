/**
 * What every store's run holds alike: the contract's methods that are the
 * kit's SQL (the registry, the list cache, the held listing and its plan,
 * file writes through {@linkcode FileParts}, replay, re-deriving) are written
 * once here, over the store's {@linkcode SqlClient}, its {@linkcode RunBook}
 * and its {@linkcode RowSink}. A store's run class extends it and holds only
 * what differs: its lock or claims, the missing streaks, deletions, the row
 * counts, the commit and the rollbacks.
 *
 * @module
 */
import type { RecordType } from "../../records/mod.ts";
import type { Validators } from "../../source/source.ts";
import type { CachedList, ListState } from "../../source/listing.ts";
import type {
  FilePart,
  FileStatus,
  FileWrite,
  ImportOutcome,
  ListedFingerprint,
  PartOptions,
  PlannedKey,
  Rederived,
  Replayer,
  RowCounts,
  RunCounts,
  RunTransaction,
} from "../store.ts";
import { registeredAmong, registrySize, type RunBook, unregisteredAmong } from "./bookkeeping.ts";
import type { SqlClient } from "./client.ts";
import { FileParts, type RowSink } from "./file_parts.ts";
import { kitReplayer } from "./quarantine.ts";
import { rederiveRows } from "./rederive.ts";

/** What a store's run gives the kit. */
export interface KitRunParts<Rows> {
  /** The run's connection, as the kit's client. */
  readonly client: SqlClient;
  /** The run's bookkeeping (its row in `runs`, the registry, rejections). */
  readonly book: RunBook;
  /** The store's way of writing rows. */
  readonly rows: Rows;
  /** The record types whose tables the run writes. */
  readonly types: readonly RecordType[];
  /** How long the run waited for another run's lock. */
  readonly lockWaitMs: number;
}

/** A run over the kit: the contract's shared methods; a store's class adds the rest. */
export abstract class KitRun<Mark, Rows extends RowSink<Mark>> implements RunTransaction {
  readonly lockWaitMs: number;
  /** The run's connection, as the kit's client. */
  protected readonly c: SqlClient;
  /** The run's bookkeeping. */
  protected readonly book: RunBook;
  /** The store's way of writing rows. */
  protected readonly rows: Rows;
  /** The record types whose tables the run writes. */
  protected readonly types: readonly RecordType[];
  /** The run's file writes, whole or part by part. */
  protected readonly files: FileParts<Mark>;
  /** The derived columns' settings to record at commit (see {@linkcode rederive}). */
  protected settingsRecord: Readonly<Record<string, string>> = {};

  /** A run over the store's parts. */
  constructor(parts: KitRunParts<Rows>) {
    this.c = parts.client;
    this.book = parts.book;
    this.rows = parts.rows;
    this.types = parts.types;
    this.lockWaitMs = parts.lockWaitMs;
    this.files = new FileParts(parts.rows, parts.book);
  }

  /** The run's id: for a run begun with `idAtCommit`, once committed. */
  get runId(): number {
    return this.book.runId;
  }

  /**
   * Runs one piece of the run's work on its connection: at once here; a
   * store whose connection takes one call at a time queues it.
   */
  protected serial<T>(work: () => Promise<T>): Promise<T> {
    return work();
  }

  registered(keys: readonly string[], statuses?: readonly FileStatus[]): Promise<ReadonlySet<string>> {
    return this.serial(() => registeredAmong(this.c, keys, statuses));
  }

  unregistered(keys: readonly string[], statuses?: readonly FileStatus[]): Promise<string[]> {
    return this.serial(() => unregisteredAmong(this.c, keys, statuses));
  }

  registrySize(): Promise<number> {
    return this.serial(() => registrySize(this.c));
  }

  cachedList(key: string): Promise<CachedList | undefined> {
    return this.serial(() => this.book.cachedList(key));
  }

  /** The list to keep when the run commits or notes a check. */
  #listToKeep: { key: string; state: ListState; validators: Validators } | undefined;

  cacheList(key: string, state: ListState, validators: Validators): Promise<void> {
    this.#listToKeep = { key, state, validators };
    return Promise.resolve();
  }

  /**
   * Writes the list kept by {@linkcode cacheList}, if any: in the commit, or (`check`) in the check's own
   * transaction, where the run has no row.
   */
  protected async keepList(check = false): Promise<void> {
    if (this.#listToKeep === undefined) return;
    const { key, state, validators } = this.#listToKeep;
    await this.book.cacheList(key, state, validators, check);
  }

  addListed(objects: readonly ListedFingerprint[], firstPosition: number): Promise<void> {
    return this.serial(() => this.book.addListed(objects, firstPosition));
  }

  listedPlan(options: { all: boolean; loadedOnly: boolean; detect: boolean }): Promise<PlannedKey[]> {
    return this.serial(() => this.book.listedPlan(options));
  }

  unlisted(): Promise<string[]> {
    return this.serial(() => this.book.unlisted());
  }

  writePart(key: string, part: FilePart, options?: PartOptions): Promise<void> {
    return this.serial(() => this.files.writePart(key, part, options));
  }

  abortFile(key: string): Promise<void> {
    return this.serial(() => this.files.abortFile(key));
  }

  writeFile(file: FileWrite): Promise<void> {
    return this.serial(() => this.files.writeFile(file));
  }

  replayer(): Replayer {
    return kitReplayer(
      this.c,
      this.types,
      (key, part, position) => this.rows.write(key, part, position),
      (work) => this.serial(work),
    );
  }

  rederive(settings: Readonly<Record<string, number>>): Promise<Rederived> {
    return this.serial(async () => {
      const rederived = await rederiveRows(this.c, this.types, settings);
      this.settingsRecord = rederived.record;
      return rederived;
    });
  }

  // What differs between the stores.
  abstract importKeys(keys: readonly string[], processedAt: Date): Promise<ImportOutcome>;
  abstract noteMissing(
    keys: readonly { key: string; reason: string }[],
    giveUpRuns: number,
    at: Date,
  ): Promise<string[]>;
  abstract markDeleted(keys: readonly string[], at: Date, prune: boolean): Promise<string[]>;
  abstract rowCounts(): Promise<RowCounts>;
  abstract commit(counts: RunCounts): Promise<void>;
  abstract rollbackAsCheck(at: Date, result: string, meta?: Readonly<Record<string, string>>): Promise<void>;
  abstract rollback(): Promise<void>;
}
