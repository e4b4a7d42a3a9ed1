/**
 * The bookkeeping SQL, written once for every store: the registry, the
 * runs, the rejections, the list cache, `meta`, missing keys, and a held
 * bucket listing compared with the registry. A store gives an
 * {@linkcode SqlClient}; what really differs (row writes, locks, claims)
 * stays with the store.
 *
 * @module
 */
import type { DriftEntry } from "../../records/mod.ts";
import type { Validators } from "../../source/source.ts";
import { type CachedList, type ListState, parseListState } from "../../source/listing.ts";
import { type FateRules, fateSql } from "../fate.ts";
import type {
  FileStatus,
  Fingerprint,
  ListedFingerprint,
  PlannedKey,
  RegistryEntry,
  RegistrySince,
  Rejection,
  RunCounts,
} from "../store.ts";
import type { SqlClient } from "./client.ts";
import { encodeRaw } from "./raw_text.ts";
import { oneLine } from "../../common/printable.ts";
import { hasTable, truth } from "./client.ts";

/** The `meta` row holding the state of the list the database follows (see `source/list_text.ts`). */
const LIST_STATE = "list_state";

/** A kept list's state with the bucket and list key it belongs to, or `undefined` when there is none or it is damaged. */
function parseKeptList(text: string | undefined): { bucket: string; list: string; state: ListState } | undefined {
  if (text === undefined) return undefined;
  try {
    const kept = JSON.parse(text);
    const state = parseListState(kept?.state);
    if (typeof kept?.bucket !== "string" || typeof kept?.list !== "string" || state === undefined) return undefined;
    return { bucket: kept.bucket, list: kept.list, state };
  } catch {
    return undefined;
  }
}

/** A value of the `meta` table, or `undefined` when it is not set. */
export async function readMeta(c: SqlClient, name: string): Promise<string | undefined> {
  return (await c.all<{ value: string }>("SELECT value FROM meta WHERE name = $1", [name]))[0]?.value;
}

/** Sets values of the `meta` table. */
export async function writeMeta(c: SqlClient, values: Readonly<Record<string, string>>): Promise<void> {
  for (const [name, value] of Object.entries(values)) {
    await c.run(
      "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
      [name, value],
    );
  }
}

/** Whether a run has committed into the database: its `runs` table holds a row. */
export async function hasRuns(c: SqlClient): Promise<boolean> {
  return await hasTable(c, "runs") && (await c.all("SELECT 1 AS one FROM runs LIMIT 1")).length > 0;
}

/** Every registered key, by the run that last registered it (or marked it deleted), then by key. */
export async function registeredKeys(c: SqlClient): Promise<string[]> {
  return (await c.all<{ key: string }>(`SELECT key FROM processed_files ORDER BY run_id, ${byCodePoint(c)}`))
    .map((r) => r.key);
}

/** `key` in code point order on every store (SQLite's BINARY; PostgreSQL's "C", not the database's collation). */
const byCodePoint = (c: SqlClient) => c.dialect.name === "postgres" ? `key COLLATE "C"` : "key";

/** The keys registered by runs after `after` (every key without it), with the registry's size and last run. */
export async function registrySince(c: SqlClient, after?: number): Promise<RegistrySince> {
  const keys = after === undefined ? await registeredKeys(c) : (await c.all<{ key: string }>(
    `SELECT key FROM processed_files WHERE run_id > $1 ORDER BY run_id, ${byCodePoint(c)}`,
    [after],
  )).map((r) => r.key);
  const [row] = await c.all<{ last: number }>("SELECT coalesce(max(run_id), 0) AS last FROM processed_files");
  return { keys, count: await registrySize(c), lastRun: Number(row!.last) };
}

/** How many keys the registry holds: from its totals where they are kept (schema 8 on), else counted. */
export async function registrySize(c: SqlClient): Promise<number> {
  const sql = await hasTable(c, "registry_counts")
    ? "SELECT coalesce(sum(files), 0) AS n FROM registry_counts"
    : "SELECT count(*) AS n FROM processed_files";
  const [row] = await c.all<{ n: number }>(sql);
  return Number(row!.n);
}

/** Keys per query of {@linkcode unregisteredAmong}: a long list (a first load's) is asked about in chunks. */
const AMONG_CHUNK = 10_000;

/** The `keys` not registered with one of `statuses`, in their order. */
export async function unregisteredAmong(
  c: SqlClient,
  keys: readonly string[],
  statuses: readonly FileStatus[] = ["loaded", "invalid"],
): Promise<string[]> {
  const unregistered: string[] = [];
  for (let i = 0; i < keys.length; i += AMONG_CHUNK) {
    const rows = await c.all<{ key: string }>(
      `SELECT u.value AS key FROM ${c.dialect.textList(1, "u")}
       WHERE NOT EXISTS (SELECT 1 FROM processed_files AS p
         WHERE p.key = u.value AND p.status IN (SELECT s.value FROM ${c.dialect.textList(2, "s")}))
       ORDER BY u.ord`,
      [keys.slice(i, i + AMONG_CHUNK), statuses],
    );
    for (const r of rows) unregistered.push(r.key);
  }
  return unregistered;
}

/** The `keys` registered with one of `statuses`: those {@linkcode unregisteredAmong} leaves out. */
export async function registeredAmong(
  c: SqlClient,
  keys: readonly string[],
  statuses?: readonly FileStatus[],
): Promise<Set<string>> {
  const unregistered = new Set(await unregisteredAmong(c, keys, statuses));
  return new Set(keys.filter((k) => !unregistered.has(k)));
}

/** The registry's entries: of `keys`, or of every key. */
export async function registryEntries(
  c: SqlClient,
  keys?: readonly string[],
): Promise<ReadonlyMap<string, RegistryEntry>> {
  if (keys?.length === 0) return new Map();
  const rows = await c.all<
    { key: string; status: FileStatus; etag: string | null; size: number | null; deleted: unknown }
  >(
    `SELECT key, status, etag, size, deleted_at IS NOT NULL AS deleted FROM processed_files${
      keys === undefined ? "" : ` WHERE key IN (SELECT k.value FROM ${c.dialect.textList(1, "k")})`
    }`,
    keys === undefined ? [] : [keys],
  );
  return new Map(rows.map((r) => [r.key, {
    status: r.status,
    fingerprint: r.etag === null ? null : { etag: r.etag, size: Number(r.size ?? 0) },
    deleted: truth(r.deleted),
  }]));
}

/** The rejection reason stored for a key given up on after `giveUpRuns` runs missing. */
export function giveUpReason(giveUpRuns: number, lastReason: string): string {
  return `missing in ${giveUpRuns} runs in a row (${lastReason}): gave up (MISSING_GIVE_UP_RUNS); ` +
    "--retry-invalid or --key tries it again";
}

/** One file's line in the registry. */
export interface Registration {
  /** The file's key. */
  readonly key: string;
  /** The status it is registered with. */
  readonly status: FileStatus;
  /** When it was processed. */
  readonly at: Date;
  /** Records loaded from it. */
  readonly records: number;
  /** Records rejected from it. */
  readonly rejected: number;
  /** Records ignored (unknown types). */
  readonly ignored: number;
  /** Its size in bytes. */
  readonly bytes: number;
  /** Its fingerprint in the bucket's listing. */
  readonly fingerprint?: Fingerprint | undefined;
  /** The file's list position (replay upserts its records at it); unlisted keys (`--key`) have none. */
  readonly position?: number | undefined;
}

/** Rejections per INSERT statement (6 parameters each: within both stores' limits). */
const REJECTIONS_PER_INSERT = 500;

/** Inserts a run's row (`running`); returns its id. */
async function insertRun(c: SqlClient, startedAt: Date, bucket: string): Promise<number> {
  const [row] = await c.all<{ id: number }>(
    "INSERT INTO runs (started_at, status, bucket) VALUES ($1, 'running', $2) RETURNING id",
    [startedAt.toISOString(), bucket],
  );
  return Number(row!.id);
}

/** How long a run's history is kept (see {@linkcode RunBook.finish}). */
export interface Retention {
  /** `DRIFT_KEEP_RUNS`: the drift rows of the last this many runs are kept; 0 keeps them all. */
  readonly driftKeepRuns: number;
}

/** Every run's history kept. */
export const KEEP_ALL: Retention = { driftKeepRuns: 0 };

/** The bookkeeping one run writes, in its transaction. */
export class RunBook {
  readonly #c: SqlClient;
  #runId: number | undefined;
  readonly #bucket: string;
  readonly #startedAt: Date;
  readonly #retention: Retention;

  private constructor(
    client: SqlClient,
    runId: number | undefined,
    bucket: string,
    startedAt: Date,
    retention: Retention,
  ) {
    this.#c = client;
    this.#runId = runId;
    this.#bucket = bucket;
    this.#startedAt = startedAt;
    this.#retention = retention;
  }

  /** Inserts the run's row (`running`) and keeps its id; `retention` bounds the history its commit keeps. */
  static async start(c: SqlClient, startedAt: Date, bucket: string, retention = KEEP_ALL): Promise<RunBook> {
    return new RunBook(c, await insertRun(c, startedAt, bucket), bucket, startedAt, retention);
  }

  /**
   * A run whose row, and so its id, is inserted only at {@linkcode finish}:
   * a transaction rolled back before then uses no id (PostgreSQL's identity
   * sequence does not roll back). Nothing may name the run before that.
   */
  static later(c: SqlClient, startedAt: Date, bucket: string, retention = KEEP_ALL): RunBook {
    return new RunBook(c, undefined, bucket, startedAt, retention);
  }

  /** Whether the run's id is known: from the start, or (see {@linkcode later}) once finished. */
  get hasId(): boolean {
    return this.#runId !== undefined;
  }

  /**
   * The run's id.
   *
   * @throws {Error} before {@linkcode finish} for a run started {@linkcode later}
   */
  get runId(): number {
    if (this.#runId === undefined) throw new Error("The run has no id before its commit (RunBook.later)");
    return this.#runId;
  }

  /** Registers a file: a key registered again takes this run's values, and is no longer imported or deleted. */
  async register(r: Registration): Promise<void> {
    await this.#c.run(
      `INSERT INTO processed_files (key, status, run_id, processed_at, records, rejected, ignored, bytes, etag, size,
         position)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
       ON CONFLICT (key) DO UPDATE SET status = excluded.status, run_id = excluded.run_id,
         position = coalesce(excluded.position, processed_files.position),
         processed_at = excluded.processed_at, records = excluded.records, rejected = excluded.rejected,
         ignored = excluded.ignored, bytes = excluded.bytes, origin = 'run',
         etag = coalesce(excluded.etag, processed_files.etag), size = coalesce(excluded.size, processed_files.size),
         deleted_at = NULL`,
      [
        r.key,
        r.status,
        this.runId,
        r.at.toISOString(),
        r.records,
        r.rejected,
        r.ignored,
        r.bytes,
        r.fingerprint?.etag ?? null,
        r.fingerprint?.size ?? null,
        r.position ?? null,
      ],
    );
  }

  /** Removes a file's rejections (before it is written again). */
  async clearRejections(key: string): Promise<void> {
    await this.#c.run("DELETE FROM rejected_records WHERE key = $1", [key]);
  }

  /** Stores a file's rejections. */
  async reject(key: string, rejections: readonly Rejection[]): Promise<void> {
    for (let i = 0; i < rejections.length; i += REJECTIONS_PER_INSERT) {
      const batch = rejections.slice(i, i + REJECTIONS_PER_INSERT);
      const values = batch.map((_, j) => `($1, $2, $${3 + 4 * j}, $${4 + 4 * j}, $${5 + 4 * j}, $${6 + 4 * j})`);
      await this.#c.run(
        `INSERT INTO rejected_records (run_id, key, record_index, type, reason, raw) VALUES ${values.join(", ")}`,
        // A reason names bucket text (a parse error's snippet): on one line, without the U+0000 PostgreSQL refuses.
        [this.runId, key, ...batch.flatMap((r) => [r.index, r.typeName, oneLine(r.reason), encodeRaw(r.raw)])],
      );
    }
  }

  /**
   * Counts one more run in which `key` was missing; at `giveUpRuns` runs in a
   * row (0: never) the key is registered invalid with the reason why, and
   * `true` returned.
   */
  async missing(key: string, reason: string, giveUpRuns: number, at: Date): Promise<boolean> {
    const [row] = await this.#c.all<{ runs: number }>(
      `INSERT INTO missing_keys (key, runs, last_reason) VALUES ($1, 1, $2)
       ON CONFLICT (key) DO UPDATE SET runs = missing_keys.runs + 1, last_reason = excluded.last_reason
       RETURNING runs`,
      [key, reason],
    );
    if (giveUpRuns <= 0 || Number(row!.runs) < giveUpRuns) return false;
    await this.clearRejections(key);
    await this.reject(key, [{ index: null, typeName: null, reason: giveUpReason(giveUpRuns, reason), raw: null }]);
    await this.register({ key, status: "invalid", at, records: 0, rejected: 1, ignored: 0, bytes: 0 });
    await this.#c.run("DELETE FROM missing_keys WHERE key = $1", [key]);
    return true;
  }

  /**
   * What an earlier run kept of this bucket's list `key`: its validators, and its state (in `meta`, for the one list
   * a database follows), or the body a build before states kept.
   */
  async cachedList(key: string): Promise<CachedList | undefined> {
    const [row] = await this.#c.all<{ etag: string | null; last_modified: string | null }>(
      "SELECT etag, last_modified FROM list_cache WHERE bucket = $1 AND key = $2",
      [this.#bucket, key],
    );
    if (row === undefined) return undefined;
    const validators = { etag: row.etag ?? undefined, lastModified: row.last_modified ?? undefined };
    const kept = parseKeptList(await readMeta(this.#c, LIST_STATE));
    if (kept?.bucket === this.#bucket && kept.list === key) return { validators, state: kept.state };
    // Kept by a build before states: its body, read only now (it can be tens of MiB). A row without one is a list
    // whose state was replaced by another list's (one state per database): nothing is known of it, it is read whole.
    const [old] = await this.#c.all<{ body: string }>(
      "SELECT body FROM list_cache WHERE bucket = $1 AND key = $2",
      [this.#bucket, key],
    );
    return old === undefined || old.body === "" ? undefined : { validators, text: old.body };
  }

  /**
   * Keeps the list's state (in `meta`) and its validators (in `list_cache`, with no body) for this run's bucket.
   * A check (no run row) updates the row the state was read against.
   */
  async cacheList(key: string, state: ListState, validators: Validators, check = false): Promise<void> {
    await writeMeta(this.#c, { [LIST_STATE]: JSON.stringify({ bucket: this.#bucket, list: key, state }) });
    const params = [this.#bucket, key, validators.etag ?? null, validators.lastModified ?? null];
    if (check) {
      await this.#c.run(
        "UPDATE list_cache SET etag = $3, last_modified = $4, body = '' WHERE bucket = $1 AND key = $2",
        params,
      );
      return;
    }
    await this.#c.run(
      `INSERT INTO list_cache (bucket, key, etag, last_modified, body, run_id) VALUES ($1, $2, $3, $4, '', $5)
       ON CONFLICT (bucket, key) DO UPDATE SET etag = excluded.etag, last_modified = excluded.last_modified,
         body = '', run_id = excluded.run_id`,
      [...params, this.runId],
    );
  }

  #listed = false;

  /** Holds a page of the bucket listing in the temp table `listed`, the first at list position `firstPosition`. */
  async addListed(objects: readonly ListedFingerprint[], firstPosition: number): Promise<void> {
    const d = this.#c.dialect;
    if (!this.#listed) {
      const columns =
        "position INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, etag TEXT NOT NULL, size INTEGER NOT NULL";
      for (const sql of d.tempTable("listed", columns)) await this.#c.run(sql);
      this.#listed = true;
    }
    if (objects.length === 0) return;
    await this.#c.run(
      `INSERT INTO listed (position, key, etag, size)
       SELECT $1 + o.ord, o.value ->> 0, o.value ->> 1, CAST(o.value ->> 2 AS BIGINT) FROM ${d.jsonList(2, "o")}`,
      [firstPosition, JSON.stringify(objects.map((o) => [o.key, o.etag, String(o.size)]))],
    );
  }

  /** The held listing's keys to fetch, in list order, by {@linkcode fateSql}. */
  async listedPlan(rules: FateRules): Promise<PlannedKey[]> {
    if (!this.#listed) return [];
    const rows = await this.#c.all<{ key: string; position: number; etag: string; size: number; fate: string }>(
      `SELECT key, position, etag, size, fate FROM (
         SELECT l.key, l.position, l.etag, l.size, ${fateSql({ all: "$1", loadedOnly: "$2", detect: "$3" })} AS fate
         FROM listed AS l LEFT JOIN processed_files AS p ON p.key = l.key) AS plan
       WHERE fate <> 'processed' ORDER BY position`,
      [rules.all, rules.loadedOnly, rules.detect],
    );
    return rows.map((r) => ({
      key: r.key,
      position: Number(r.position),
      etag: r.etag,
      size: Number(r.size),
      changed: r.fate === "changed",
    }));
  }

  /** Registered keys, not yet marked deleted, that the held listing lacks. */
  async unlisted(): Promise<string[]> {
    if (!this.#listed) return [];
    const rows = await this.#c.all<{ key: string }>(
      `SELECT key FROM processed_files AS p WHERE deleted_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM listed AS l WHERE l.key = p.key) ORDER BY key`,
    );
    return rows.map((r) => r.key);
  }

  /** Marks `keys` deleted at `at`; returns those this run marked, sorted. */
  async markDeleted(keys: readonly string[], at: Date): Promise<string[]> {
    if (keys.length === 0) return [];
    const rows = await this.#c.all<{ key: string }>(
      `UPDATE processed_files SET deleted_at = $1, run_id = $2
       WHERE key IN (SELECT k.value FROM ${this.#c.dialect.textList(3, "k")}) AND deleted_at IS NULL RETURNING key`,
      [at.toISOString(), this.runId, keys],
    );
    return rows.map((r) => r.key).sort();
  }

  /**
   * Stores the run's counts and problem keys in its row (inserted now for a
   * run started {@linkcode later}), and its drift; then drops the drift rows
   * of runs before the last `driftKeepRuns` (this one included).
   */
  async finish(c: RunCounts): Promise<void> {
    this.#runId ??= await insertRun(this.#c, this.#startedAt, this.#bucket);
    const sum = (counts: Readonly<Record<string, number>>) => Object.values(counts).reduce((a, b) => a + b, 0);
    await this.#c.run(
      `UPDATE runs SET finished_at = $1, status = $2, files_listed = $3, files_new = $4, files_loaded = $5,
         files_invalid = $6, files_missing = $7, files_failed = $8, files_refused = $9, records_loaded = $10,
         loaded_by_type = $11, records_rejected = $12, records_ignored = $13, ignored_by_type = $14,
         rows_inserted = $15, rows_updated = $16, rows_removed = $17, files_changed = $18, files_deleted = $19,
         files_claimed_elsewhere = $20, kind = $21
       WHERE id = $22`,
      [
        c.finishedAt.toISOString(),
        c.status,
        c.filesListed,
        c.filesNew,
        c.filesLoaded,
        c.filesInvalid,
        c.filesMissing,
        c.filesFailed,
        c.filesRefused,
        sum(c.loaded),
        JSON.stringify(c.loaded),
        c.rejected,
        sum(c.ignored),
        JSON.stringify(c.ignored),
        c.rowsInserted,
        c.rowsUpdated,
        c.rowsRemoved,
        c.filesChanged,
        c.filesDeleted,
        c.filesClaimedElsewhere,
        c.kind ?? "run",
        this.runId,
      ],
    );
    for (const i of c.issues) {
      await this.#c.run("INSERT INTO run_keys (run_id, key, outcome, reason) VALUES ($1, $2, $3, $4)", [
        this.runId,
        i.key,
        i.outcome,
        i.reason,
      ]);
    }
    await this.#drift(c.drift);
    await this.#pruneDrift();
  }

  /**
   * Drops the drift rows of runs older than the last `driftKeepRuns` (by id, through `run_drift`'s index on it):
   * a few rows a run, the first commit with a bound dropping what came before. `status` shows the last 30 runs'.
   */
  async #pruneDrift(): Promise<void> {
    const keep = this.#retention.driftKeepRuns;
    if (!Number.isSafeInteger(keep) || keep <= 0) return;
    await this.#c.run(
      `DELETE FROM run_drift WHERE run_id < (SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET ${keep - 1})`,
    );
  }

  /** Stores the run's drift entries (a few per type: bounded by the counter). */
  async #drift(entries: readonly DriftEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const values = entries.map((_, j) => `($1, ${[2, 3, 4, 5, 6, 7, 8].map((k) => `$${k + 7 * j}`).join(", ")})`);
    await this.#c.run(
      `INSERT INTO run_drift (run_id, type, field, kind, expected, seen, records, example) VALUES ${values.join(", ")}`,
      [this.runId, ...entries.flatMap((e) => [e.type, e.field, e.kind, e.expected, e.seen, e.records, e.example])],
    );
  }
}
