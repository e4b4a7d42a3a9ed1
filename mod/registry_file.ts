/**
 * The optional JSON copy of the registry (`PROCESSED_FILES_FILENAME`), for
 * tools that read the original's `processed.json`.
 *
 * @module
 */
import { dirname, join } from "node:path";

/** Writes `keys` as a JSON array to `path` atomically: a temp file, then rename. */
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
