/**
 * Every error class callers tell apart, in one place: a usage or
 * configuration mistake (exit 2), a damaged database (exit 2), a store's lock
 * held by another run or program (exit 1), a lost connection (exit 1), a
 * commit whose outcome could not be learnt (exit 1).
 *
 * @module
 */

/**
 * A database that SQLite finds damaged (`PRAGMA quick_check` failed, or
 * "database disk image is malformed"): nothing is written into it. Exit code
 * 2, as for any database the run cannot use.
 */
export class DamagedDatabaseError extends Error {
  /** The database file. */
  readonly path: string;

  /** Creates the error for `path`, with what SQLite reported. */
  constructor(path: string, detail: string) {
    super(
      `Database ${path} is damaged (${detail}): nothing was written; restore it from a backup ` +
        `(sqlite3 ${path} .recover can save what is left)`,
    );
    this.name = "DamagedDatabaseError";
    this.path = path;
  }
}

/**
 * The database server's connection went away during a run (the server
 * stopped or restarted, the backend was terminated, the network dropped):
 * nothing of the run was committed. Exit code 1: the next run does the work.
 */
export class ConnectionLostError extends Error {
  /** Creates the error with what was seen (`detail`). */
  constructor(detail: string, options?: { cause?: unknown }) {
    super(`The PostgreSQL connection was lost (${detail}): nothing was committed; the next run does the work`, options);
    this.name = "ConnectionLostError";
  }
}

/**
 * The connection was lost while the server committed a run (a synchronous
 * standby held the COMMIT, the network dropped) and the server could not be
 * asked afterwards whether it did. Exit code 1.
 */
export class CommitUnknownError extends Error {
  /** Creates the error for run `runId`, with what was seen (`detail`). */
  constructor(runId: number, detail: string, options?: { cause?: unknown }) {
    super(
      `The PostgreSQL connection was lost while run ${runId} committed (${detail}), and the server could not be ` +
        `asked whether it did: run 'status' to see whether run ${runId} is listed (if it is, its work is done); ` +
        `either way the next run does any work left`,
      options,
    );
    this.name = "CommitUnknownError";
  }
}

/** Whether a SQLite message says the file is damaged or not a database. */
export function isCorruption(message: string): boolean {
  return /database disk image is malformed|file is not a database|SQLITE_(CORRUPT|NOTADB)/i.test(message);
}

/** A usage or configuration error: bad flag, profile, key or value. Exit code 2. */
export class UsageError extends Error {
  /** The flag, key or file at fault, e.g. `CONCURRENCY` or `--profile`. */
  readonly subject: string | undefined;

  /** Creates a usage error; `subject` names what is at fault. */
  constructor(message: string, options?: { subject?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "UsageError";
    this.subject = options?.subject;
  }
}

/** Another run holds the store's lock. */
export class LockedError extends Error {
  /** When the other run took the lock, if known. */
  readonly since: string | undefined;

  /** Creates the error for the store at `display`. */
  constructor(display: string, since: string | undefined) {
    super(
      since === undefined
        ? `Another program holds a lock on ${display} (no bucketload run left its lock note): nothing was read or ` +
          `written; try again once it lets go`
        : `Another run holds ${display} since ${since}`,
    );
    this.name = "LockedError";
    this.since = since;
  }
}
