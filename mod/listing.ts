/**
 * Parsing the file list: one key per line.
 *
 * @module
 */
import { refuseReason } from "./bucket_location.ts";
import { type BucketSource, tooLargeReason } from "./source.ts";

/** The keys of a list, split into accepted (deduplicated, in order) and refused. */
export interface Listing {
  /** Accepted keys, each once, in order of first appearance. */
  readonly keys: readonly string[];
  /** Refused keys, each once, with the reason. */
  readonly refused: readonly { readonly key: string; readonly reason: string }[];
  /** How many lines repeated an earlier key. */
  readonly duplicates: number;
}

/** Splits list text on `\n` or `\r\n`, trims lines, skips blanks, dedupes and refuses unsafe keys. */
export function parseListing(text: string): Listing {
  const seen = new Set<string>();
  const keys: string[] = [];
  const refused: { key: string; reason: string }[] = [];
  let duplicates = 0;
  for (const line of text.split("\n")) {
    const key = line.trim();
    if (key === "") continue;
    if (seen.has(key)) {
      duplicates++;
      continue;
    }
    seen.add(key);
    const reason = refuseReason(key);
    if (reason === undefined) keys.push(key);
    else refused.push({ key, reason });
  }
  return { keys, refused, duplicates };
}

/**
 * Fetches and parses the file list. Never throws: a list that cannot be read
 * comes back as `{ error }`.
 */
export async function fetchListing(
  source: BucketSource,
  options: { key: string; encoding: string; maxBytes: number; signal?: AbortSignal | undefined },
): Promise<Listing | { error: string }> {
  const list = await source.get(options.key, { maxBytes: options.maxBytes, signal: options.signal });
  if (list.kind === "missing") return { error: `HTTP ${list.status}` };
  if (list.kind === "too_large") return { error: tooLargeReason(list) };
  if (list.kind === "failed") return { error: list.reason };
  try {
    return parseListing(new TextDecoder(options.encoding, { fatal: true }).decode(list.body));
  } catch {
    return { error: `not valid ${options.encoding}` };
  }
}
