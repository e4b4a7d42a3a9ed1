/**
 * Parsing the file list: one key per line.
 *
 * @module
 */
import { refuseReason } from "./location.ts";
import { type BucketSource, type ListedObject, tooLargeReason, type Validators } from "./source.ts";

/** Converts a `KEY_PATTERN` glob to a test: `*` and `?` stay within a path segment, `**` crosses `/`. */
export function globMatcher(pattern: string): (key: string) => boolean {
  if (pattern === "" || pattern === "**" || pattern === "*") {
    return pattern === "*" ? (k) => !k.includes("/") : () => true;
  }
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*" && pattern[i + 1] === "*") {
      re += ".*";
      i++;
      if (pattern[i + 1] === "/") {
        re = re.slice(0, -2) + "(?:.*/)?";
        i++;
      }
    } else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  const compiled = new RegExp(`^${re}$`, "s");
  return (key) => compiled.test(key);
}

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

/** A fetched list: its keys, its text and validators (to cache), and whether it came from the cache. */
export interface FetchedListing extends Listing {
  /** The list's text (empty for a bucket listing), to cache. */
  readonly text: string;
  /** The list's validators, to cache; `undefined` when the source gave none, or for a bucket listing. */
  readonly validators: Validators | undefined;
  /** The server answered 304 (`text` is the cached copy), or 200 with the cached copy's very body. */
  readonly notModified: boolean;
  /** The keys came from listing the bucket (no list file), not from a list. */
  readonly listed: boolean;
  /** For a bucket listing kept in memory: the accepted keys' objects (ETag and size), to tell a changed object. */
  readonly objects?: readonly ListedObject[] | undefined;
  /** Accepted keys: `keys.length`, or for a listing handed to a sink, how many went there. */
  readonly listedCount: number;
}

/**
 * The keys of a bucket listing as a {@linkcode Listing}: those `match`
 * accepts (a `KEY_PATTERN`'s {@linkcode globMatcher}), in key order, unsafe
 * ones refused as a list's would be.
 */
export function listingOfObjects(
  objects: readonly ListedObject[],
  match: (key: string) => boolean,
): Listing & { readonly objects: readonly ListedObject[] } {
  const keys: string[] = [];
  const accepted: ListedObject[] = [];
  const refused: { key: string; reason: string }[] = [];
  for (const object of objects) {
    if (!match(object.key)) continue;
    const reason = refuseReason(object.key);
    if (reason !== undefined) refused.push({ key: object.key, reason });
    else {
      keys.push(object.key);
      accepted.push(object);
    }
  }
  return { keys, refused, duplicates: 0, objects: accepted };
}

/** Options of {@linkcode fetchListing}. */
export interface FetchListingOptions {
  /** `FILES_LIST_KEY`: the list file's key. */
  readonly key: string;
  /** `BUCKET_ENCODING`: the list's encoding (a WHATWG label). */
  readonly encoding: string;
  /** `MAX_LIST_BYTES`: a larger list fails. */
  readonly maxBytes: number;
  /** Aborting it abandons the list's request. */
  readonly signal?: AbortSignal | undefined;
  /** The list from an earlier run, to send a conditional GET. */
  readonly cached?: { readonly text: string; readonly validators: Validators } | undefined;
  /** `KEY_PATTERN`: the keys to take from a bucket listing. @default {""} (all) */
  readonly keyPattern?: string | undefined;
  /**
   * Receives a bucket listing's accepted objects page by page, with the list
   * position of each page's first object; the listing then holds no keys
   * (`keys` is empty, `listedCount` counts them). Without it they are kept.
   */
  readonly sink?: ((objects: readonly ListedObject[], firstPosition: number) => Promise<void>) | undefined;
}

/**
 * Fetches and parses the file list, conditionally when a cached copy is
 * given. Never throws: a list that cannot be read comes back as `{ error }`.
 */
export async function fetchListing(
  source: BucketSource,
  options: FetchListingOptions,
): Promise<FetchedListing | { error: string }> {
  const { cached } = options;
  const list = await source.get(options.key, {
    maxBytes: options.maxBytes,
    signal: options.signal,
    ifUnchanged: cached?.validators,
  });
  if (list.kind === "not_modified") {
    if (cached === undefined) return { error: "'not modified' answered to an unconditional request" };
    const parsed = parseListing(cached.text);
    return {
      ...parsed,
      text: cached.text,
      validators: cached.validators,
      notModified: true,
      listed: false,
      listedCount: parsed.keys.length,
    };
  }
  if (list.kind === "missing") {
    if (source.listObjects === undefined) return { error: list.reason };
    // No list file: the bucket's own listing decides, in key order, page by page.
    const { sink } = options;
    const keys: string[] = [];
    const objects: ListedObject[] = [];
    const refused: { key: string; reason: string }[] = [];
    let count = 0;
    const match = globMatcher(options.keyPattern ?? "");
    const failed = await source.listObjects({
      signal: options.signal,
      onPage: async (page) => {
        const accepted = listingOfObjects(page, match);
        refused.push(...accepted.refused);
        if (sink !== undefined) await sink(accepted.objects, count);
        else {
          keys.push(...accepted.keys);
          objects.push(...accepted.objects);
        }
        count += accepted.objects.length;
      },
    });
    if (failed !== undefined) return { error: `no list file ${options.key} (${list.reason}), and ${failed.error}` };
    return {
      keys,
      objects,
      refused,
      duplicates: 0,
      listedCount: count,
      text: "",
      validators: undefined,
      notModified: false,
      listed: true,
    };
  }
  if (list.kind === "too_large") return { error: tooLargeReason(list) };
  if (list.kind === "failed") return { error: list.reason };
  if (list.kind === "stream") {
    await list.body.cancel();
    return { error: "unexpected streamed list" };
  }
  let text: string;
  try {
    text = new TextDecoder(options.encoding, { fatal: true }).decode(list.body);
  } catch {
    return { error: `not valid ${options.encoding}` };
  }
  // A server that sends no validators (or ignores them) answers 200 with the same body: that is unchanged too.
  const sameBody = cached !== undefined && text === cached.text;
  const parsed = parseListing(text);
  return {
    ...parsed,
    text,
    validators: list.validators,
    notModified: sameBody,
    listed: false,
    listedCount: parsed.keys.length,
  };
}
