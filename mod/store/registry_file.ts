/**
 * The JSON list of processed keys (`PROCESSED_FILES_FILENAME`): the Python
 * original's `processed.json`. bucketload imports it into the registry once,
 * when it takes over the original's database, and afterwards only writes it,
 * from the registry, after each commit.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { UsageError } from "../common/errors.ts";

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
 */
export async function writeRegistryFile(path: string, keys: readonly string[]): Promise<void> {
  const dir = dirname(path);
  await Deno.mkdir(dir, { recursive: true });
  const temp = join(dir, `.${crypto.randomUUID()}.tmp`);
  try {
    await Deno.writeTextFile(temp, JSON.stringify(keys, null, 2) + "\n");
    await Deno.rename(temp, path);
  } catch (error) {
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
}
