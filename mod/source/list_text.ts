/**
 * A list file's text: its lines parsed into keys, and what a run keeps of it
 * for the next run instead of the body ({@linkcode ListState}). A list that
 * is unchanged (a 304, or the very same bytes) or only grew at its end is
 * then read in time and memory proportional to what it gained and to the
 * keys still pending, not to its length: a list of 1,000,000 keys that gains
 * 10 is not parsed and diffed whole at every run.
 *
 * @module
 */
import { refuseReason } from "./location.ts";

/** The keys of a list, split into accepted (deduplicated, in order) and refused. */
export interface Listing {
  /** Accepted keys, each once, in order of first appearance. */
  readonly keys: readonly string[];
  /** Refused keys, each once, with the reason. */
  readonly refused: readonly { readonly key: string; readonly reason: string }[];
  /** How many lines repeated an earlier key. */
  readonly duplicates: number;
}

/** Parses list text fed in pieces that each end at a line's end (but the last): keys deduplicated, unsafe ones refused. */
export class ListParser implements Listing {
  /** Accepted keys, each once, in order of first appearance. */
  readonly keys: string[] = [];
  /** Refused keys, each once, with the reason. */
  readonly refused: { key: string; reason: string }[] = [];
  /** How many lines repeated an earlier key. */
  duplicates = 0;
  readonly #seen = new Set<string>();

  /** Adds the lines of `text` (split on `\n`; trimmed, so `\r\n` works; blank lines skipped). */
  add(text: string): this {
    for (const line of text.split("\n")) {
      const key = line.trim();
      if (key === "") continue;
      if (this.#seen.has(key)) {
        this.duplicates++;
        continue;
      }
      this.#seen.add(key);
      const reason = refuseReason(key);
      if (reason === undefined) this.keys.push(key);
      else this.refused.push({ key, reason });
    }
    return this;
  }
}

/** Splits list text on `\n` or `\r\n`, trims lines, skips blanks, dedupes and refuses unsafe keys. */
export function parseListing(text: string): Listing {
  return new ListParser().add(text);
}

/**
 * What a run keeps of a list file instead of its body (in `meta`), enough to
 * tell the next run's list from it: unchanged, grown at its end, or other.
 * The body is split at its last line feed: the complete lines before it are
 * known by their length and SHA-256, the partial last line by its text.
 */
export interface ListState {
  /** The list's encoding, as the decoder names it (`utf-8`): only a UTF-8 list is read by its tail. */
  readonly encoding: string;
  /** The body's length, bytes. */
  readonly bytes: number;
  /** Bytes up to and with the last line feed (the whole body when it is not UTF-8). */
  readonly linesBytes: number;
  /** SHA-256 (hex) of those bytes. */
  readonly linesSha256: string;
  /** The text after the last line feed (a line still being written, or nothing). */
  readonly partial: string;
  /** Accepted keys in the whole list, and in its complete lines. */
  readonly count: number;
  /** Accepted keys in the complete lines (the list positions a tail's keys start at). */
  readonly linesCount: number;
  /** Lines that repeated an earlier key: in the whole list, and in its complete lines. */
  readonly duplicates: number;
  /** Duplicates in the complete lines. */
  readonly linesDuplicates: number;
  /** Refused keys with why, in list order (they are warned about at every run, as when the list was parsed whole). */
  readonly refused: readonly { readonly key: string; readonly reason: string }[];
  /** How many of `refused` are in the complete lines. */
  readonly linesRefused: number;
  /**
   * Listed keys not registered when the run that kept this state committed, with their list positions: the only keys
   * of the unchanged part that the next run can have to fetch (the registry only grows).
   */
  readonly pending: readonly (readonly [key: string, position: number])[];
  /**
   * How many keys the registry held when the state was kept. Only runs register keys, and each keeps the state: a
   * registry that holds another number was changed by hand (a key removed from it may be listed and no longer
   * pending), so the list is read whole. Absent: not checked.
   */
  readonly registered?: number;
}

/** A list read: parsed whole, or (from a {@linkcode ListState}) only what may be new in it. */
export type ListRead = FullRead | DeltaRead;

/** A list parsed whole, with the state to keep of it. */
export interface FullRead {
  /** Parsed whole. */
  readonly kind: "full";
  /** The very body the state was kept from (a server that never answers 304). */
  readonly same: boolean;
  /** Every key of the list. */
  readonly listing: Listing;
  /** What to keep of it for the next run (without `pending`: the run adds it at commit). */
  readonly state: ListState;
}

/** What may be new in a list known by a state: the keys pending before and the keys it gained; no key's fate else. */
export interface DeltaRead {
  /** Read against a state. */
  readonly kind: "delta";
  /** The very list the state was kept from: a 304, or the same bytes. */
  readonly same: boolean;
  /** The keys that may be unregistered: the pending keys still listed, then the gained keys, in list order. */
  readonly keys: readonly string[];
  /** Each key's list position (`keys[i]` at `positions[i]`). */
  readonly positions: readonly number[];
  /**
   * The accepted keys the list gained at its end. The delta holds only if none is registered: a registered one may
   * repeat a line above, which a whole parse counts as a duplicate (and the keys after it one position earlier).
   */
  readonly gained: readonly string[];
  /** The refused keys of the whole list, with why. */
  readonly refused: readonly { readonly key: string; readonly reason: string }[];
  /** Duplicate lines in the whole list. */
  readonly duplicates: number;
  /** Accepted keys in the whole list. */
  readonly count: number;
  /** What to keep of it for the next run (without `pending`). */
  readonly state: ListState;
  /** The list parsed whole, when a gained key turns out registered; `undefined` for a 304 (no body). */
  readonly whole: (() => Promise<FullRead>) | undefined;
}

/** The SHA-256 hash, loaded only when a list body arrives (node:crypto's can be copied mid-way). */
async function sha256() {
  const { createHash } = await import("node:crypto");
  return createHash("sha256");
}

const LF = 0x0a;

/** The decoder's name for `encoding` (a WHATWG label), e.g. `utf-8` for `UTF8`. */
export function encodingName(encoding: string): string {
  return new TextDecoder(encoding).encoding;
}

/** A list body that is not valid text in its encoding. */
export class NotInEncodingError extends Error {}

/** Decodes `bytes`. @throws {NotInEncodingError} when they are not valid `encoding` */
function decode(bytes: Uint8Array, encoding: string): string {
  try {
    return new TextDecoder(encoding, { fatal: true }).decode(bytes);
  } catch {
    throw new NotInEncodingError(`not valid ${encoding}`);
  }
}

/** Parses a whole body and keeps its state. Throws when it is not valid `encoding`. */
export async function readWhole(body: Uint8Array, encoding: string, same = false): Promise<FullRead> {
  const name = encodingName(encoding);
  // Only UTF-8 is cut at a line feed byte (in UTF-16 a 0x0A byte can be half of any character).
  const cut = name === "utf-8" ? body.lastIndexOf(LF) + 1 : body.length;
  const hash = (await sha256()).update(body.subarray(0, cut));
  const parser = new ListParser().add(decode(body.subarray(0, cut), encoding));
  const lines = { count: parser.keys.length, duplicates: parser.duplicates, refused: parser.refused.length };
  const partial = decode(body.subarray(cut), encoding);
  parser.add(partial);
  return {
    kind: "full",
    same,
    listing: parser,
    state: {
      encoding: name,
      bytes: body.length,
      linesBytes: cut,
      linesSha256: hash.digest("hex"),
      partial,
      count: parser.keys.length,
      linesCount: lines.count,
      duplicates: parser.duplicates,
      linesDuplicates: lines.duplicates,
      refused: parser.refused,
      linesRefused: lines.refused,
      pending: [],
    },
  };
}

/** The state's own list again (a 304, or the same bytes): only its pending keys may be new. */
export function readUnchanged(state: ListState, whole?: () => Promise<FullRead>): DeltaRead {
  return {
    kind: "delta",
    same: true,
    keys: state.pending.map(([key]) => key),
    positions: state.pending.map(([, position]) => position),
    gained: [],
    refused: state.refused,
    duplicates: state.duplicates,
    count: state.count,
    state,
    whole,
  };
}

/**
 * Reads `body` against the state of the list an earlier run read: the same
 * list, one that grew at its end (only the tail is parsed), or any other
 * (parsed whole). Throws when it is not valid `encoding`.
 */
export async function readAgainst(body: Uint8Array, encoding: string, state: ListState): Promise<ListRead> {
  const name = encodingName(encoding);
  const whole = () => readWhole(body, encoding);
  if (state.encoding !== name || body.length < state.linesBytes) return await whole();
  const hash = (await sha256()).update(body.subarray(0, state.linesBytes));
  if (hash.copy().digest("hex") !== state.linesSha256) return await whole();
  if (name !== "utf-8") return body.length === state.bytes ? readUnchanged(state, whole) : await whole();
  const rest = body.subarray(state.linesBytes);
  const cut = rest.lastIndexOf(LF) + 1;
  const text = decode(rest.subarray(0, cut), encoding);
  const partial = decode(rest.subarray(cut), encoding);
  if (body.length === state.bytes && cut === 0 && partial === state.partial) return readUnchanged(state, whole);
  // The list grew (or its partial last line changed): parse what follows the complete lines kept.
  const tail = new ListParser().add(text);
  const tailLines = { count: tail.keys.length, duplicates: tail.duplicates, refused: tail.refused.length };
  tail.add(partial);
  // Pending keys of the old partial line are gone with it (it is parsed again, as part of the tail).
  const pending = state.pending.filter(([, position]) => position < state.linesCount);
  const refusedAbove = state.refused.slice(0, state.linesRefused);
  // A tail key that repeats a key above (pending or refused there) makes the tail's positions differ: parse whole.
  const above = new Set([...pending.map(([key]) => key), ...refusedAbove.map((r) => r.key)]);
  if (tail.keys.some((k) => above.has(k)) || tail.refused.some((r) => above.has(r.key))) return await whole();
  const at = state.linesCount;
  hash.update(rest.subarray(0, cut));
  // The old partial line's key, completed: the same key at the same position, registered or pending as it was.
  const continued = state.count === at + 1 && tail.keys[0] === state.partial.trim();
  return {
    kind: "delta",
    same: false,
    keys: [...pending.map(([key]) => key), ...tail.keys],
    positions: [...pending.map(([, position]) => position), ...tail.keys.map((_, i) => at + i)],
    gained: continued ? tail.keys.slice(1) : tail.keys,
    refused: [...refusedAbove, ...tail.refused],
    duplicates: state.linesDuplicates + tail.duplicates,
    count: at + tail.keys.length,
    whole,
    state: {
      encoding: name,
      bytes: body.length,
      linesBytes: state.linesBytes + cut,
      linesSha256: hash.digest("hex"),
      partial,
      count: at + tail.keys.length,
      linesCount: at + tailLines.count,
      duplicates: state.linesDuplicates + tail.duplicates,
      linesDuplicates: state.linesDuplicates + tailLines.duplicates,
      refused: [...refusedAbove, ...tail.refused],
      linesRefused: state.linesRefused + tailLines.refused,
      pending: [],
    },
  };
}

/** A state read back from storage (parsed JSON), or `undefined` when it is not one (damaged). */
export function parseListState(value: unknown): ListState | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  // deno-lint-ignore no-explicit-any
  const s = value as Record<string, any>;
  try {
    const ints = ["bytes", "linesBytes", "count", "linesCount", "duplicates", "linesDuplicates", "linesRefused"];
    const ok = typeof s.encoding === "string" &&
      typeof s.linesSha256 === "string" && typeof s.partial === "string" &&
      ints.every((k) => Number.isSafeInteger(s[k]) && s[k] >= 0) &&
      Array.isArray(s.refused) &&
      s.refused.every((r: unknown) =>
        typeof r === "object" && r !== null && typeof (r as { key: unknown }).key === "string" &&
        typeof (r as { reason: unknown }).reason === "string"
      ) &&
      Array.isArray(s.pending) &&
      s.pending.every((p: unknown) =>
        Array.isArray(p) && typeof p[0] === "string" && Number.isSafeInteger(p[1]) && p[1] >= 0
      ) &&
      s.linesBytes <= s.bytes && s.linesCount <= s.count && s.linesRefused <= s.refused.length &&
      (s.registered === undefined || (Number.isSafeInteger(s.registered) && s.registered >= 0));
    return ok ? value as ListState : undefined;
  } catch {
    return undefined;
  }
}
