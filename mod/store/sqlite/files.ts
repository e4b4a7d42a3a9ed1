/**
 * The SQLite database's files: opening one only to read, removing one a
 * failed first run created, and the lock note beside it, whose flock tells
 * a live run from one that was killed.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";

/**
 * What is at `path`, or `undefined` when nothing is (or it cannot be seen).
 * Deno's call rather than node:fs, which costs ~40 ms to load at every start.
 *
 * @throws {Deno.errors.NotCapable} without read permission for `path`
 */
export function fileInfo(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    return undefined;
  }
}

/**
 * Opens a database only to read. A file the user may not write (a monitoring
 * user's view of a WAL database) is opened immutable, since SQLite cannot
 * create its shared-memory file then.
 */
export function openReadOnly(path: string): DatabaseSync {
  if (fileInfo(path) === undefined) throw new Error("no such file");
  const tryOpen = (target: string | URL) => {
    const db = new DatabaseSync(target, { readOnly: true });
    try {
      db.prepare("SELECT count(*) FROM sqlite_schema").get();
      return db;
    } catch (error) {
      db.close();
      throw error;
    }
  };
  try {
    return tryOpen(path);
  } catch (error) {
    if (!/readonly|read-only|unable to open|disk I\/O/i.test((error as Error).message)) throw error;
    const url = new URL(`file://${encodeURI(path).replaceAll("?", "%3F").replaceAll("#", "%23")}`);
    url.searchParams.set("immutable", "1");
    try {
      return tryOpen(url);
    } catch (immutable) {
      // Deno's node:sqlite resolves a file: URL as a path whenever a permission is scoped: no URI reaches SQLite.
      if (!/unable to open/i.test((immutable as Error).message)) throw immutable;
      throw new Error(
        `${(error as Error).message}: it is in WAL mode and its folder cannot be written (the last run did not ` +
          `finish, or an older bucketload wrote it); a run by a user who may write the folder puts it back in a ` +
          `mode any reader can open`,
      );
    }
  }
}

/** Removes a database file with its WAL, shared-memory and lock-info companions. */
export function removeDatabaseFiles(path: string) {
  for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`, `${path}.lock-info`]) {
    try {
      Deno.removeSync(file);
    } catch { /* not there */ }
  }
}

/**
 * Writes the lock note (`<database>.lock-info`: pid and start) and holds an
 * exclusive flock on it while the run lasts. The kernel drops the flock when
 * the process dies, however it dies, so a reader can tell a note of a live
 * run from one a killed run left. `undefined` when it cannot be written: the
 * lock itself is SQLite's, the note only explains it.
 */
export function writeLockNote(file: string, startedAt: Date): Deno.FsFile | undefined {
  let handle: Deno.FsFile | undefined;
  try {
    handle = Deno.openSync(file, { write: true, create: true, truncate: true });
    handle.lockSync(true);
    handle.writeSync(new TextEncoder().encode(JSON.stringify({ pid: Deno.pid, since: startedAt.toISOString() })));
    return handle;
  } catch {
    handle?.close();
    return undefined;
  }
}

/**
 * Whether the process that wrote the lock note still runs: its flock is
 * held. `undefined` when that cannot be told (the note cannot be opened).
 */
export function holderAlive(file: string): boolean | undefined {
  let handle: Deno.FsFile;
  try {
    handle = Deno.openSync(file, { read: true });
  } catch {
    return undefined;
  }
  try {
    if (!handle.tryLockSync(false)) return true;
    handle.unlockSync();
    return false;
  } catch {
    return undefined;
  } finally {
    handle.close();
  }
}

/** The lock note of a live holder, for the "another run holds the lock" message. */
export function liveHolder(file: string): string | undefined {
  return holderAlive(file) === false ? undefined : readLockInfo(file);
}

/** The lock note in `file`, as `since (pid N)`; `undefined` when there is none to read. */
export function readLockInfo(file: string): string | undefined {
  try {
    const info = JSON.parse(Deno.readTextFileSync(file)) as { since?: unknown; pid?: unknown };
    return typeof info.since === "string" ? `${info.since} (pid ${String(info.pid)})` : undefined;
  } catch {
    return undefined;
  }
}
