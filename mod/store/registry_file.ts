/**
 * The JSON list of processed keys (`PROCESSED_FILES_FILENAME`): the Python
 * original's `processed.json`. bucketload imports it into the registry once,
 * when it takes over the original's database (and reads it only then), and
 * afterwards only writes it, from the registry, after each commit: the keys
 * of the runs since the last write are appended to it when nothing else
 * changed.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { UsageError } from "../common/errors.ts";
import type { Store } from "./store.ts";

/**
 * Reads the keys of a registry file; an absent file has none.
 *
 * @throws {UsageError} when the file cannot be read or is not a JSON array of strings
 */
export async function readRegistryFile(path: string): Promise<string[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw new UsageError(`Cannot read PROCESSED_FILES_FILENAME ${path}: ${(error as Error).message}`, {
      subject: "PROCESSED_FILES_FILENAME",
      cause: error,
    });
  }
  let value: unknown;
  try {
    value = text.trim() === "" ? [] : JSON.parse(text);
  } catch (error) {
    throw new UsageError(`Cannot parse PROCESSED_FILES_FILENAME ${path}: ${(error as Error).message}`, {
      subject: "PROCESSED_FILES_FILENAME",
    });
  }
  if (!Array.isArray(value) || !value.every((k) => typeof k === "string")) {
    throw new UsageError(`Cannot parse PROCESSED_FILES_FILENAME ${path}: expected a JSON array of keys`, {
      subject: "PROCESSED_FILES_FILENAME",
    });
  }
  return value;
}

/**
 * Checks that `dir` exists or can be created and takes a new file, by
 * writing and removing a probe. A permission Deno denies is rethrown as it
 * is, for the CLI's permission message.
 *
 * @throws {UsageError} naming `key` and `shown` (the path it sets, `dir` by default) when the folder cannot be written
 */
export async function checkFolderWritable(dir: string, key: string, shown = dir, hint = ""): Promise<void> {
  const probe = join(dir, `.bucketload-probe-${crypto.randomUUID()}.tmp`);
  try {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(probe, "");
    await Deno.remove(probe);
  } catch (error) {
    await Deno.remove(probe).catch(() => {});
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new UsageError(`Cannot write ${key} ${shown}: ${(error as Error).message}${hint}`, {
      subject: key,
      cause: error,
    });
  }
}

/**
 * Checks before a run that the registry file can be replaced (a new file in
 * its folder, then a rename), so that a committed run never finds out
 * afterwards.
 *
 * @throws {UsageError} naming the path when it cannot be written
 */
export async function checkRegistryFileWritable(path: string): Promise<void> {
  const key = "PROCESSED_FILES_FILENAME";
  const hint = "; fix its folder's permissions or unset the key";
  await checkFolderWritable(dirname(path), key, path, hint);
  if ((await Deno.stat(path).catch(() => undefined))?.isDirectory) {
    throw new UsageError(`Cannot write ${key} ${path}: it is a folder${hint}`, { subject: key });
  }
}

/**
 * Writes `keys` (the registry's: by the run that last registered each, then
 * by key, as `Store.registeredKeys` gives them) as a JSON array to `path`
 * atomically (a temp file, then rename). Apart from a take-over the file is
 * output only, kept current for the original's tools: it holds exactly the
 * registry's keys, and a key it listed that the registry lacks is not kept.
 * Returns the written file's identity.
 */
export async function writeRegistryFile(path: string, keys: readonly string[]): Promise<FileIdentity> {
  return await replaceVia(path, async (temp) => {
    await Deno.writeTextFile(temp, JSON.stringify(keys, null, 2) + "\n");
  });
}

/** What tells a file from another: its length, inode and modification time (a rename keeps them). */
export interface FileIdentity {
  /** Its length, bytes. */
  readonly bytes: number;
  /** Its inode, where the system gives one. */
  readonly ino: number | null;
  /** Its modification time, ms since the epoch. */
  readonly mtimeMs: number | null;
}

const identityOf = (info: Deno.FileInfo): FileIdentity => ({
  bytes: info.size,
  ino: info.ino,
  mtimeMs: info.mtime?.getTime() ?? null,
});

/** A temp file of ours in the file's folder (`.<uuid>.tmp`), left by a process killed while writing. */
const TEMP = /^\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.tmp$/;

/** A temp file older than this is one a killed process left (a write takes seconds). */
const STALE_TEMP_MS = 60 * 60 * 1000;

/** Fills a temp file beside `path` with `fill`, then renames it over `path`. Returns the file's identity. */
async function replaceVia(path: string, fill: (temp: string) => Promise<void>): Promise<FileIdentity> {
  const dir = dirname(path);
  await Deno.mkdir(dir, { recursive: true });
  await removeStaleTemps(dir);
  const temp = join(dir, `.${crypto.randomUUID()}.tmp`);
  try {
    await fill(temp);
    const identity = identityOf(await Deno.stat(temp));
    await Deno.rename(temp, path);
    return identity;
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}

/** Removes the temp files a killed process left in `dir` (only ours, and only old ones: another may be writing). */
async function removeStaleTemps(dir: string): Promise<void> {
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !TEMP.test(entry.name)) continue;
      const at = join(dir, entry.name);
      const mtime = (await Deno.lstat(at).catch(() => undefined))?.mtime?.getTime();
      if (mtime !== undefined && Date.now() - mtime > STALE_TEMP_MS) await Deno.remove(at).catch(() => {});
    }
  } catch { /* a folder that cannot be listed keeps its files */ }
}

/** What the store keeps of the registry file it last wrote, to append to it next time instead of writing it whole. */
interface RegistryFileNote extends FileIdentity {
  /** The file's path. */
  readonly path: string;
  /** The keys it holds. */
  readonly count: number;
  /** The last run whose keys it holds. */
  readonly lastRun: number;
  /** Its last key. */
  readonly last: string;
}

/** The note's name in the store (`meta`). */
const NOTE = "registry_file";

const encoder = new TextEncoder();

/** The text of `keys` as the file's lines (`  "key"`), joined as JSON.stringify(keys, null, 2) joins them. */
const lines = (keys: readonly string[]) => keys.map((k) => `  ${JSON.stringify(k)}`).join(",\n");

/** Whether the file at `path` ends as a file of `bytes` bytes whose last key is `last` does. */
async function endsWith(path: string, bytes: number, last: string): Promise<boolean> {
  const end = encoder.encode(`\n${lines([last])}\n]\n`);
  if (end.length > bytes) return false;
  using file = await Deno.open(path);
  await file.seek(bytes - end.length, Deno.SeekMode.Start);
  const got = new Uint8Array(end.length);
  let read = 0;
  while (read < got.length) {
    const n = await file.read(got.subarray(read));
    if (n === null) return false;
    read += n;
  }
  return got.every((b, i) => b === end[i]);
}

/** The store's way to read the registry and keep the note. */
export type RegistryFileStore = Pick<Store, "registrySince" | "readNote" | "writeNote">;

/**
 * Brings the registry file at `path` up to date with the registry, as
 * {@linkcode writeRegistryFile} writes it, after any run (one with nothing
 * to do too: a file a killed or failed write left behind is made current).
 * When the file is the one this store last wrote (its path, length, inode,
 * modification time and last key as noted) and the runs since only
 * registered keys it does not hold, it is `current`, or their keys are
 * appended to a copy, which replaces it: the cost follows the new keys, not
 * the registry (a kernel copy aside). Otherwise it is written whole.
 */
export async function updateRegistryFile(
  path: string,
  store: RegistryFileStore,
): Promise<"current" | "appended" | "written"> {
  const note = parseNote(await store.readNote(NOTE));
  const info = await Deno.lstat(path).catch(() => undefined);
  const same = note !== undefined && info !== undefined && info.isFile && note.path === path &&
    note.bytes === info.size && note.ino === info.ino && note.mtimeMs === (info.mtime?.getTime() ?? null);
  if (same && note.count > 0 && await endsWith(path, note.bytes, note.last)) {
    const since = await store.registrySince(note.lastRun);
    // No key moved (registered again by a later run): the file's keys are exactly those of the runs up to lastRun.
    if (note.count + since.keys.length === since.count) {
      if (since.keys.length === 0) return "current";
      const identity = await append(path, note.bytes, since.keys);
      const last = since.keys.at(-1)!;
      await keepNote(store, { path, ...identity, count: since.count, lastRun: since.lastRun, last });
      return "appended";
    }
  }
  const all = await store.registrySince();
  const identity = await writeRegistryFile(path, all.keys);
  if (all.keys.length > 0) {
    await keepNote(store, { path, ...identity, count: all.keys.length, lastRun: all.lastRun, last: all.keys.at(-1)! });
  }
  return "written";
}

/** Appends `keys` to a copy of the file (of `bytes` bytes), which then replaces it. */
async function append(path: string, bytes: number, keys: readonly string[]): Promise<FileIdentity> {
  const tail = encoder.encode(`,\n${lines(keys)}\n]\n`);
  return await replaceVia(path, async (temp) => {
    await Deno.copyFile(path, temp);
    using file = await Deno.open(temp, { write: true });
    // Over the closing "\n]\n".
    await file.truncate(bytes - 3);
    await file.seek(bytes - 3, Deno.SeekMode.Start);
    let written = 0;
    while (written < tail.length) written += await file.write(tail.subarray(written));
  });
}

/** The note, or `undefined` when there is none or it is not one. */
function parseNote(text: string | undefined): RegistryFileNote | undefined {
  if (text === undefined) return undefined;
  try {
    const n = JSON.parse(text);
    const ints = [n?.bytes, n?.count, n?.lastRun];
    const orNull = [n?.ino, n?.mtimeMs].every((v) => v === null || Number.isFinite(v));
    if (typeof n?.path !== "string" || typeof n?.last !== "string" || !ints.every(Number.isSafeInteger) || !orNull) {
      return undefined;
    }
    return n as RegistryFileNote;
  } catch {
    return undefined;
  }
}

/** Keeps the note; a note that cannot be kept only costs a whole write next time. */
async function keepNote(store: RegistryFileStore, note: RegistryFileNote): Promise<void> {
  await store.writeNote(NOTE, JSON.stringify(note)).catch(() => {});
}
