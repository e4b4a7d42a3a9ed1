/**
 * The `status` report's content, as every store gives it: recent runs,
 * registry totals, top rejection reasons, recent problem keys, the run in
 * progress. `commands/status.ts` words it for a person.
 *
 * @module
 */

/** One run as `status` shows it. */
export interface RunRow {
  /** The run's id. */
  readonly id: number;
  /** When it started, as stored (ISO 8601). */
  readonly started_at: string;
  /** When it finished; `null` while it runs. */
  readonly finished_at: string | null;
  /** `ok`, `failed`, `running`, or `replay` for a replay of quarantined records. */
  readonly status: string;
  /** Keys listed, refused ones included. */
  readonly files_listed: number;
  /** Keys the run fetched. */
  readonly files_new: number;
  /** Files registered as loaded. */
  readonly files_loaded: number;
  /** Files registered as invalid. */
  readonly files_invalid: number;
  /** Listed keys that the bucket did not have. */
  readonly files_missing: number;
  /** Files that failed. */
  readonly files_failed: number;
  /** Listed keys refused as unsafe. */
  readonly files_refused: number;
  /** Keys another run side by side claimed or loaded first (PostgreSQL). */
  readonly files_claimed_elsewhere: number;
  /** Records loaded. */
  readonly records_loaded: number;
  /** Records rejected. */
  readonly records_rejected: number;
  /** Records ignored (unknown types). */
  readonly records_ignored: number;
  /** Rows new to the tables (this and the next two are 0 for runs before they were kept). */
  readonly rows_inserted: number;
  /** Rows that replaced a row with the same key. */
  readonly rows_updated: number;
  /** Rows removed. */
  readonly rows_removed: number;
}

/** One key of the last run, with what became of it. */
export interface RunFile {
  /** The key. */
  readonly key: string;
  /** `loaded` or `invalid` (registered), or `refused`, `missing`, `failed`. */
  readonly outcome: string;
  /** Records loaded from it. */
  readonly records: number;
  /** Records rejected from it. */
  readonly rejected: number;
}

/** A field's drift over the recent runs, as `status` shows it. */
export interface DriftRow {
  /** The record type. */
  readonly type: string;
  /** The field; empty for `more`. */
  readonly field: string;
  /**
   * `unknown` (the rules do not know the field), `type` (another JSON type) or `more` (records with a field past the
   * bound, each once).
   */
  readonly kind: string;
  /** The rule's JSON type (for `type`). */
  readonly expected: string | null;
  /** The JSON type seen. */
  readonly seen: string | null;
  /** Records with it, summed over the runs. */
  readonly records: number;
  /** Runs that saw it. */
  readonly runs: number;
  /** The newest run that saw it. */
  readonly lastRun: number;
  /** The newest run's example value, as JSON text (capped). */
  readonly example: string | null;
}

/** What `status` reports. */
export interface StatusReport {
  /** Where the store is, for messages. */
  readonly database: string;
  /** The last runs, newest first. */
  readonly runs: readonly RunRow[];
  /** Registered files by status (`loaded`, `invalid`). */
  readonly registry: Readonly<Record<string, number>>;
  /** Rejection reasons without the offending value, most frequent first. */
  readonly topRejections: readonly {
    readonly reason: string;
    readonly count: number;
    /** The newest record rejected so, as stored (capped JSON), and its file; `null` for a whole-file rejection. */
    readonly sample: { readonly key: string; readonly raw: string | null } | null;
  }[];
  /** Up to 30 runs, oldest first: the page's chart. */
  readonly history: readonly RunRow[];
  /** The files of the last finished run (up to 200), by key. */
  readonly lastRunFiles: readonly RunFile[];
  /** Schema drift of the last 30 runs by type and field, most records first (up to 60). */
  readonly drift: readonly DriftRow[];
  /**
   * Whether rows keep the fields their type does not know in `extra` (`KEEP_EXTRA`, from the config): the unknown
   * fields of the drift are then waiting there for a type that gains them. Set by the command, not the store.
   */
  readonly extraKept?: boolean | undefined;
  /** Keys missing in the last runs, with how many runs in a row and why (most runs first, up to 20). */
  readonly missingKeys: readonly { readonly key: string; readonly runs: number; readonly reason: string }[];
  /** The most recent refused, missing or failed keys, newest first. */
  readonly recentIssues: readonly {
    readonly run_id: number;
    readonly key: string;
    readonly outcome: string;
    readonly reason: string;
  }[];
  /** Rows per data table. */
  readonly tables: Readonly<Record<string, number>>;
  /** Keys registered as invalid (newest first, up to 20) with their whole-file reason. */
  readonly invalidKeys: readonly { readonly key: string; readonly reason: string }[];
  /** The bucket the last run read. */
  readonly bucket: string | null;
  /** The bucket read before it, when it changed. */
  readonly previousBucket: string | null;
  /** When the bucket changed. */
  readonly bucketChangedAt: string | null;
  /** The last time a run found nothing to do (such a run leaves no run row). */
  readonly lastCheck: { readonly at: string; readonly result: string } | null;
  /**
   * The run holding the lock now: its start and who, `T (pid N)` from
   * SQLite's lock-info file; on PostgreSQL each run's session,
   * `T (run N, backend pid P)` (a replay's id comes at its commit: `T (backend pid P)`),
   * joined by `; `. `status` prints it after "since".
   */
  readonly running: string | null;
  /**
   * A lock note left by a run whose process is gone (killed, or the machine
   * stopped): `since (pid N)`. Its run was rolled back; the next run proceeds.
   */
  readonly staleLock: string | null;
}

/** The report of a database with nothing in it yet. */
export function emptyStatus(database: string): StatusReport {
  return {
    database,
    runs: [],
    registry: {},
    topRejections: [],
    history: [],
    lastRunFiles: [],
    drift: [],
    missingKeys: [],
    recentIssues: [],
    tables: {},
    invalidKeys: [],
    bucket: null,
    previousBucket: null,
    bucketChangedAt: null,
    lastCheck: null,
    running: null,
    staleLock: null,
  };
}
