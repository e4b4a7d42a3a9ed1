/**
 * A PostgreSQL run: a transaction on its own connection, beside any number
 * of other runs. It claims keys with transaction-scoped advisory locks, and
 * writes shared bookkeeping rows (registry marks, missing counts, the list
 * cache, meta) in the commit section, under a short advisory lock. What
 * every store's run shares is the kit's ({@linkcode KitRun}), each call one
 * at a time on the run's connection.
 *
 * @module
 */
import { CommitUnknownError, ConnectionLostError } from "../../common/errors.ts";
import type { RecordType } from "../../records/mod.ts";
import type { Validators } from "../../source/source.ts";
import { registryEntries, type RunBook, writeMeta } from "../kit/bookkeeping.ts";
import { KitRun } from "../kit/run.ts";
import { fateOf } from "../fate.ts";
import type * as S from "../store.ts";
import { drops, lostConnection, postgresClient, type Reserved } from "./connection.ts";
import { type CopyMark, PostgresRows } from "./rows.ts";

/** The advisory lock of the commit section (see `store.ts` for the namespace). */
export const COMMIT_LOCK: bigint = 0x6275636b_6c6f6164n + 1n;

/** How long a stopped run waits for its ROLLBACK before it lets the connection go. */
const STOP_ROLLBACK_MS = 3000;

/** What the store learnt before the run started. */
export interface PostgresRunOptions {
  /** The bucket's identity (its display form). */
  readonly bucket: string;
  /** The bucket the database was loaded from before, if any. */
  readonly previousBucket: string | undefined;
  /** When the run started. */
  readonly startedAt: Date;
  /** Stops the run's store work when aborted, even while the server does not answer. */
  readonly signal?: AbortSignal | undefined;
  /**
   * After the connection was lost during COMMIT: whether run `runId` committed, asked on another connection once the
   * run's server session `pid` is gone; `undefined` when the server cannot be asked.
   */
  readonly committed?: ((runId: number, pid: number) => Promise<boolean | undefined>) | undefined;
  /** The run's server session. */
  readonly pid?: number | undefined;
}

/** A run's transaction on its own connection. */
export class PostgresRun extends KitRun<CopyMark, PostgresRows> {
  readonly #conn: Reserved;
  readonly #o: PostgresRunOptions;
  /** Keys whose file this run wrote (their missing streak ends). */
  readonly #written = new Set<string>();
  /** The list to cache at commit. */
  #listToCache: { key: string; text: string; validators: Validators } | undefined;
  #inCommitSection = false;
  /** The COMMIT was sent: a lost connection from here on leaves the outcome to be asked. */
  #committing = false;
  #open = true;
  /** The connection's work, one call at a time: claims come from the fetch side while the writer copies rows. */
  #queue: Promise<unknown> = Promise.resolve();
  /**
   * Rejects when the run cannot go on: its connection was lost, or the run was
   * stopped (SIGTERM must work even while the server does not answer).
   */
  readonly #gone = Promise.withResolvers<never>();
  /** Why the run cannot go on, once it cannot. */
  #goneReason: Error | undefined;
  readonly #stopListening: () => void;
  #heartbeat: ReturnType<typeof setInterval> | undefined;

  /** A run on its reserved connection `conn`; `book` writes its bookkeeping, `types` name its tables. */
  constructor(conn: Reserved, book: RunBook, types: readonly RecordType[], options: PostgresRunOptions) {
    // Runs side by side share the database (they claim keys): a run never waits for another's lock to start.
    super({ client: postgresClient(conn), book, types, rows: new PostgresRows(conn, types), lockWaitMs: 0 });
    this.#gone.promise.catch(() => {});
    const onDrop = (event: Event) => this.#fail(new ConnectionLostError((event as CustomEvent<string>).detail));
    const { signal } = options;
    const onAbort = () => this.#fail(signal!.reason instanceof Error ? signal!.reason : new Error("stopped"));
    drops.addEventListener("drop", onDrop);
    signal?.addEventListener("abort", onAbort);
    this.#stopListening = () => {
      drops.removeEventListener("drop", onDrop);
      signal?.removeEventListener("abort", onAbort);
    };
    this.#conn = conn;
    this.#o = options;
  }

  #fail(reason: Error) {
    if (this.#goneReason !== undefined) return;
    this.#goneReason = reason;
    this.#gone.reject(reason);
  }

  /** One call at a time on the run's connection, given up at once when the run cannot go on. */
  protected override serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    const checked = run.catch((error) => {
      const lost = lostConnection(error);
      if (lost === undefined) throw error;
      const reason = new ConnectionLostError(lost, { cause: error });
      this.#fail(reason);
      throw reason;
    });
    return Promise.race([checked, this.#gone.promise]);
  }

  /** Creates the run's stages, and bounds how long its claims outlive it (see {@linkcode bound}). */
  async prepare(claimTimeoutMs: number) {
    await this.rows.createStages();
    await this.#bound(claimTimeoutMs);
  }

  /**
   * Bounds how long this run's claims outlive it: a run that falls silent
   * (frozen, stopped, its machine gone) for `timeoutMs` is ended by the server
   * (`idle_in_transaction_session_timeout`), which releases its claims to
   * other runs. While it waits on the network it sends `SELECT 1` every third
   * of that, so that a live run is never ended.
   */
  async #bound(timeoutMs: number) {
    if (timeoutMs <= 0) return;
    await this.#conn.unsafe(`SET LOCAL idle_in_transaction_session_timeout = ${Math.round(timeoutMs)}`);
    this.#heartbeat = setInterval(() => {
      if (this.#open && this.#goneReason === undefined) void this.serial(() => this.#conn`SELECT 1`).catch(() => {});
    }, Math.max(100, Math.round(timeoutMs / 3)));
    Deno.unrefTimer(this.#heartbeat);
  }

  /**
   * Claims keys with one advisory lock each, held until this transaction
   * ends; a key another run holds is skipped. Checked again once held: a key
   * another run has loaded meanwhile (this version of it) is left alone too.
   */
  async #claim(claims: readonly S.Claim[], skipRegistered: readonly S.FileStatus[] | undefined): Promise<string[]> {
    if (claims.length === 0) return [];
    const locked = await this.#conn<{ key: string }[]>`
      SELECT k AS key FROM unnest(${claims.map((c) => c.key)}::text[]) WITH ORDINALITY AS u(k, i)
      WHERE pg_try_advisory_xact_lock(hashtextextended('bucketload:' || k, 0)) ORDER BY i`;
    const mine = locked.map((r) => r.key);
    if (skipRegistered === undefined) return mine;
    const wanted = new Map(claims.map((c) => [c.key, c.fingerprint]));
    const entries = await registryEntries(this.c, mine);
    const rules = { all: false, loadedOnly: !skipRegistered.includes("invalid"), detect: true };
    return mine.filter((k) => fateOf(entries.get(k), wanted.get(k), rules) !== "processed");
  }

  /** Takes the commit lock once: from here to the commit, shared rows are written. */
  async #enterCommitSection() {
    if (this.#inCommitSection) return;
    await this.#conn`SELECT pg_advisory_xact_lock(${COMMIT_LOCK.toString()}::bigint)`;
    this.#inCommitSection = true;
  }

  async #markDeleted(keys: readonly string[], at: Date, prune: boolean): Promise<string[]> {
    if (keys.length === 0) return [];
    // Registry rows other runs may touch: in the commit section.
    await this.#enterCommitSection();
    const marked = await this.book.markDeleted(keys, at);
    if (prune) { for (const key of marked) await this.rows.replace(key); }
    return marked;
  }

  /** The original was SQLite only: a PostgreSQL database never holds its rows, so nothing is imported. */
  async #importKeys(): Promise<S.ImportOutcome> {
    const [row] = await this.#conn<{ any: boolean }[]>`SELECT EXISTS (SELECT 1 FROM processed_files) AS any`;
    return { imported: 0, skipped: row?.any ? "registry" : "no-rows" };
  }

  async #noteMissing(keys: readonly { key: string; reason: string }[], giveUpRuns: number, at: Date) {
    await this.#enterCommitSection();
    // Only keys this run tried end their streak: other runs may be fetching the rest right now.
    await this.#conn`DELETE FROM missing_keys WHERE key = ANY(${[...this.#written]}::text[])
               OR key IN (SELECT key FROM processed_files)`;
    const gaveUp: string[] = [];
    for (const { key, reason } of keys) {
      if (await this.book.missing(key, reason, giveUpRuns, at)) gaveUp.push(key);
    }
    return gaveUp;
  }

  async #writeFile(file: S.FileWrite): Promise<void> {
    await this.files.writeFile(file);
    this.#written.add(file.key);
  }

  async #rowCounts(): Promise<S.RowCounts> {
    await this.rows.flush();
    await this.#enterCommitSection();
    return await this.rows.merge();
  }

  async #commit(c: S.RunCounts): Promise<void> {
    await this.#rowCounts();
    const { bucket, previousBucket, startedAt } = this.#o;
    const meta: Record<string, string> = { ...this.settingsRecord, bucket };
    if (previousBucket !== undefined && previousBucket !== bucket) {
      Object.assign(meta, { previous_bucket: previousBucket, bucket_changed_at: startedAt.toISOString() });
    }
    await writeMeta(this.c, meta);
    if (this.#listToCache !== undefined) {
      const { key, text, validators } = this.#listToCache;
      await this.book.cacheList(key, text, validators);
    }
    await this.book.finish(c);
    this.#committing = true;
    await this.#conn`COMMIT`;
    this.#committing = false;
    await this.#close();
  }

  /**
   * A COMMIT that failed because the run could not go on (its connection lost, or stopped) may still have committed:
   * the server is asked on another connection, once the run's session is gone. Committed: the run stands. Not
   * committed: the error as it was. Unknown: {@linkcode CommitUnknownError}.
   */
  async #afterCommitFailed(error: unknown): Promise<void> {
    if (!this.#committing) throw error;
    this.#committing = false;
    const runId = this.book.runId;
    const { committed, pid } = this.#o;
    const outcome = committed === undefined || pid === undefined ? undefined : await committed(runId, pid);
    if (outcome === true) {
      this.#open = false;
      return;
    }
    if (outcome === false) throw error;
    throw new CommitUnknownError(runId, (error as Error).message, { cause: error });
  }

  async #rollbackAsCheck(at: Date, result: string, meta: Readonly<Record<string, string>>): Promise<void> {
    if (!this.#open) return;
    await this.#conn`ROLLBACK`;
    await writeMeta(this.c, { ...meta, last_check_at: at.toISOString(), last_check_result: result });
    await this.#close();
  }

  async #rollback(): Promise<void> {
    if (!this.#open) return;
    try {
      await this.#conn`ROLLBACK`;
    } finally {
      await this.#close();
    }
  }

  /**
   * Ends the transaction without committing when the run cannot go on: a
   * lost connection's transaction died with it on the server; a stopped run's
   * ROLLBACK is given {@linkcode STOP_ROLLBACK_MS} (a frozen server may never
   * answer; the server rolls back when the connection closes).
   */
  async #abandon(): Promise<void> {
    if (!this.#open) return;
    this.#open = false;
    clearInterval(this.#heartbeat);
    this.#stopListening();
    if (!(this.#goneReason instanceof ConnectionLostError)) {
      const timeout = new Promise<void>((resolve) => setTimeout(resolve, STOP_ROLLBACK_MS));
      await Promise.race([this.#conn`ROLLBACK`.then(() => {}, () => {}), timeout]);
    }
    this.#conn.release();
  }

  async #close() {
    this.#open = false;
    clearInterval(this.#heartbeat);
    this.#stopListening();
    await this.#conn`SELECT set_config('application_name', 'bucketload', false)`.catch(() => {});
    this.#conn.release();
  }

  // What differs from the kit's run: claims, the commit section, and a connection that can be lost.
  /** Claims keys for this run with advisory locks (see `RunTransaction.claim`). */
  claim(claims: readonly S.Claim[], skipRegistered: readonly S.FileStatus[] | undefined): Promise<string[]> {
    return this.serial(() => this.#claim(claims, skipRegistered));
  }
  /** Kept for the commit section: the list cache is shared by every run on the bucket. */
  override cacheList(key: string, text: string, validators: Validators): Promise<void> {
    this.#listToCache = { key, text, validators };
    return Promise.resolve();
  }
  /** Each file written ends its key's missing streak (see `noteMissing`). */
  override writeFile(file: S.FileWrite): Promise<void> {
    return this.serial(() => this.#writeFile(file));
  }
  /** Marks `keys` deleted, in the commit section; with `prune`, their rows go at the merge. */
  markDeleted(keys: readonly string[], at: Date, prune: boolean): Promise<string[]> {
    return this.serial(() => this.#markDeleted(keys, at, prune));
  }
  /** Imports nothing (the original was SQLite only); `skipped` says why. */
  importKeys(): Promise<S.ImportOutcome> {
    return this.serial(() => this.#importKeys());
  }
  /** Counts the missing keys' streaks, in the commit section (see `RunTransaction.noteMissing`). */
  noteMissing(keys: readonly { key: string; reason: string }[], giveUpRuns: number, at: Date): Promise<string[]> {
    return this.serial(() => this.#noteMissing(keys, giveUpRuns, at));
  }
  /** Sends the buffered rows and merges the stages, in the commit section: the run's row counts. */
  rowCounts(): Promise<S.RowCounts> {
    return this.serial(() => this.#rowCounts());
  }
  /** Merges the rows, writes the shared bookkeeping and the run row, and commits. */
  commit(counts: S.RunCounts): Promise<void> {
    return this.serial(() => this.#commit(counts)).catch((error) => this.#afterCommitFailed(error));
  }
  /** Rolls back, then notes the check in `meta` (see `RunTransaction.rollbackAsCheck`). */
  rollbackAsCheck(at: Date, result: string, meta: Readonly<Record<string, string>> = {}): Promise<void> {
    return this.serial(() => this.#rollbackAsCheck(at, result, meta));
  }
  /** Rolls back; a run that cannot go on lets its connection go. Safe to call twice. */
  rollback(): Promise<void> {
    if (this.#goneReason !== undefined) return this.#abandon();
    return this.serial(() => this.#rollback()).catch(async (error) => {
      if (this.#goneReason === undefined) throw error;
      await this.#abandon();
    });
  }
}
