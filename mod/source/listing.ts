/**
 * Parsing the file list: one key per line.
 *
 * @module
 */
import { refuseReason } from "./location.ts";
import {
  encodingName,
  type FullRead,
  type Listing,
  type ListRead,
  type ListState,
  NotInEncodingError,
  parseListing,
  readAgainst,
  readUnchanged,
  readWhole,
} from "./list_text.ts";

export { type Listing, type ListState, parseListing, parseListState } from "./list_text.ts";
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

/** A fetched list: its keys (all, or only those that may be new), validators, and what to keep of it. */
export interface FetchedListing extends Listing {
  /** The list's validators, to cache; `undefined` when the source gave none, or for a bucket listing. */
  readonly validators: Validators | undefined;
  /** The server answered 304, or 200 with the very body the last run read. */
  readonly notModified: boolean;
  /** The keys came from listing the bucket (no list file), not from a list. */
  readonly listed: boolean;
  /** For a bucket listing kept in memory: the accepted keys' objects (ETag and size), to tell a changed object. */
  readonly objects?: readonly ListedObject[] | undefined;
  /** Accepted keys in the whole list (or, for a listing handed to a sink, how many went there). */
  readonly listedCount: number;
  /**
   * Read against the last run's state: `keys` holds only the keys that may be new (pending before, or gained at
   * the list's end) and these are their list positions. `undefined`: `keys` is the whole list.
   */
  readonly positions: readonly number[] | undefined;
  /** With `positions`: the keys the list gained at its end. The read holds only if none is registered. */
  readonly gained: readonly string[];
  /** The list parsed whole, for when a gained key is registered; `undefined` once it is whole. */
  readonly whole: (() => Promise<FetchedListing | { error: string }>) | undefined;
  /** For a list file, what to keep of it for the next run (the run adds the pending keys at commit). */
  readonly state: ListState | undefined;
}

/** What an earlier run kept of the list: its validators, and its state (or, from an older build, its text). */
export interface CachedList {
  /** The validators of the list the earlier run read, for a conditional GET. */
  readonly validators: Validators;
  /** What the earlier run kept of the list; `undefined` from a build before states. */
  readonly state?: ListState | undefined;
  /** The list's text, as a build before states kept it. */
  readonly text?: string | undefined;
}

/** A {@linkcode ListRead} as a fetched listing. */
function fetched(read: ListRead, validators: Validators | undefined, sameBody: boolean): FetchedListing {
  const notModified = sameBody || read.same;
  if (read.kind === "full") {
    return {
      ...read.listing,
      validators,
      notModified,
      listed: false,
      listedCount: read.listing.keys.length,
      positions: undefined,
      gained: [],
      whole: undefined,
      state: read.state,
    };
  }
  const { whole } = read;
  return {
    keys: read.keys,
    refused: read.refused,
    duplicates: read.duplicates,
    validators,
    notModified,
    listed: false,
    listedCount: read.count,
    positions: read.positions,
    gained: read.gained,
    whole: whole === undefined ? undefined : () => readOrError(whole, validators, notModified, read.state.encoding),
    state: read.state,
  };
}

/** `read()` as a fetched listing, or the one-line error of a body that is not valid in its encoding. */
async function readOrError(
  read: () => Promise<ListRead>,
  validators: Validators | undefined,
  sameBody: boolean,
  encoding: string,
): Promise<FetchedListing | { error: string }> {
  try {
    return fetched(await read(), validators, sameBody);
  } catch (error) {
    if (error instanceof NotInEncodingError) return { error: `not valid ${encoding}` };
    throw error;
  }
}

/** The state of a list kept as text by a build before states, when its bytes can be told again (UTF-8). */
async function fromText(text: string, encoding: string): Promise<FullRead> {
  const parsed = await readWhole(new TextEncoder().encode(text), "utf-8");
  if (new TextDecoder(encoding).encoding === "utf-8") return parsed;
  // Another encoding's bytes cannot be told from the text: the next 200 is read whole, and kept as a state.
  return { ...parsed, listing: parseListing(text), state: { ...parsed.state, encoding: "", linesSha256: "" } };
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
  /** What an earlier run kept of the list: for a conditional GET, and to read only what is new. */
  readonly cached?: CachedList | undefined;
  /**
   * Parse the whole list (the run needs every key's fate: `--retry-invalid`, `--key`): no conditional GET when only
   * a state was kept (it holds no body), and no read against it. @default {false}
   */
  readonly whole?: boolean | undefined;
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
  const { encoding, whole = false } = options;
  // A state kept for another encoding tells nothing of the list in this one (a 304 would leave its keys as they were).
  const cached = options.cached?.state !== undefined && options.cached.state.encoding !== encodingName(encoding)
    ? undefined
    : options.cached;
  // A state holds no body: a run that must parse the whole list asks for it unconditionally.
  const conditional = cached !== undefined && (cached.text !== undefined || !whole);
  const list = await source.get(options.key, {
    maxBytes: options.maxBytes,
    signal: options.signal,
    ifUnchanged: conditional ? cached.validators : undefined,
  });
  if (list.kind === "not_modified") {
    if (!conditional) return { error: "'not modified' answered to an unconditional request" };
    const { validators, state, text } = cached;
    if (text !== undefined) return fetched({ ...await fromText(text, encoding), same: true }, validators, true);
    // No body came: read whole, the list is asked for again without validators (it is the same list).
    const whole = async () => {
      const again = await fetchListing(source, { ...options, cached: undefined });
      return "error" in again ? again : { ...again, notModified: true };
    };
    return { ...fetched(readUnchanged(state!), validators, true), whole };
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
      validators: undefined,
      notModified: false,
      listed: true,
      positions: undefined,
      gained: [],
      whole: undefined,
      state: undefined,
    };
  }
  if (list.kind === "too_large") return { error: tooLargeReason(list) };
  if (list.kind === "failed") return { error: list.reason };
  if (list.kind === "stream") {
    await list.body.cancel();
    return { error: "unexpected streamed list" };
  }
  const { body, validators } = list;
  // A server that sends no validators (or ignores them) answers 200 with the same body: that is unchanged too.
  if (cached?.state !== undefined) {
    const { state } = cached;
    if (whole) {
      return await readOrError(
        async () => {
          const read = await readWhole(body, encoding);
          const same = read.state.bytes === state.bytes && read.state.linesSha256 === state.linesSha256 &&
            read.state.partial === state.partial && read.state.encoding === state.encoding;
          return { ...read, same };
        },
        validators,
        false,
        encoding,
      );
    }
    return await readOrError(() => readAgainst(body, encoding, state), validators, false, encoding);
  }
  return await readOrError(
    async () => {
      const read = await readWhole(body, encoding);
      const same = cached?.text !== undefined && new TextDecoder(encoding).decode(body) === cached.text;
      return { ...read, same };
    },
    validators,
    false,
    encoding,
  );
}
