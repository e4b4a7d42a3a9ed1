/**
 * Reading the UTF-8 of JSON that is known to parse (a record `JSON.parse`
 * accepted, or a stored `extra`): where a value ends, an object's members as
 * spans of the bytes, a member's name. Nothing here checks the syntax: given
 * bytes that are not JSON, the spans are unspecified (but every scan ends).
 *
 * Bytes, not a string: a loop over a `Uint8Array` takes half the time of one
 * over a string's characters, and a span is copied or decoded alone, since
 * JSON's structure is in ASCII characters, which UTF-8 never uses inside
 * another character. Outside strings, JSON holds no byte at or below 0x20
 * but its whitespace, so "at or below 0x20" is the whitespace test.
 *
 * @module
 */

const decoder = new TextDecoder();

/** The index of the first byte at or after `i` that is not JSON whitespace (`bytes.length` at the end). */
export function skipSpace(bytes: Uint8Array, i: number): number {
  while (i < bytes.length && bytes[i]! <= 0x20) i++;
  return i;
}

/** The index after the value that starts at `i` (not whitespace): a string, an object, an array or a literal. */
export function valueEnd(bytes: Uint8Array, i: number): number {
  const n = bytes.length;
  const first = bytes[i];
  if (first !== 0x22 && first !== 0x7b && first !== 0x5b) {
    // A number, true, false or null: up to a delimiter.
    let j = i + 1;
    while (j < n && bytes[j] !== 0x2c && bytes[j] !== 0x7d && bytes[j] !== 0x5d && bytes[j]! > 0x20) j++;
    return j;
  }
  let depth = 0;
  for (let j = i; j < n; j++) {
    const c = bytes[j]!;
    if (c === 0x22) {
      // A string: to its closing quote, past escapes.
      for (j++; j < n; j++) {
        const d = bytes[j]!;
        if (d === 0x22) break;
        if (d === 0x5c) j++;
      }
      if (depth === 0) return j + 1;
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if ((c === 0x7d || c === 0x5d) && --depth === 0) return j + 1;
  }
  return n;
}

/**
 * Where the `count`-th value after the one that starts at `i` starts, in an
 * array (or the array's `]`, or the end): one loop over the values skipped,
 * which counts the commas outside strings and nested values.
 */
export function skipValues(bytes: Uint8Array, i: number, count: number): number {
  const n = bytes.length;
  let depth = 0;
  for (let j = i; j < n; j++) {
    const c = bytes[j]!;
    if (c === 0x22) {
      for (j++; j < n; j++) {
        const d = bytes[j]!;
        if (d === 0x22) break;
        if (d === 0x5c) j++;
      }
    } else if (c === 0x7b || c === 0x5b) depth++;
    else if (c === 0x7d || c === 0x5d) {
      if (--depth < 0) return j; // the array's ]
    } else if (c === 0x2c && depth === 0 && --count === 0) return skipSpace(bytes, j + 1);
  }
  return n;
}

/**
 * Reads the object that starts at `i` (its `{`): calls `member` for each
 * member, in the text's order, repeated names included, with the span of its
 * name's string (quotes included) and where its value starts; `member`
 * returns where the value ends ({@linkcode valueEnd} for one it does not
 * read). Returns the index after the object.
 */
export function eachMember(
  bytes: Uint8Array,
  i: number,
  member: (nameStart: number, nameEnd: number, valueStart: number) => number,
): number {
  let at = skipSpace(bytes, i + 1);
  if (bytes[at] === 0x7d) return at + 1;
  while (at < bytes.length) {
    const nameEnd = valueEnd(bytes, at);
    const end = member(at, nameEnd, skipSpace(bytes, skipSpace(bytes, nameEnd) + 1)); // past the colon
    const next = skipSpace(bytes, end);
    if (bytes[next] !== 0x2c) return next + 1; // past the closing brace
    at = skipSpace(bytes, next + 1);
  }
  return bytes.length;
}

/** Whether the string from `start` to `end` (quotes included) holds an escape. */
function escaped(bytes: Uint8Array, start: number, end: number): boolean {
  for (let k = start + 1; k < end - 1; k++) if (bytes[k] === 0x5c) return true;
  return false;
}

/** The name a member's string (from `start` to `end`, quotes included) stands for, as `JSON.parse` reads it. */
export function memberName(bytes: Uint8Array, start: number, end: number): string {
  return escaped(bytes, start, end)
    ? JSON.parse(decoder.decode(bytes.subarray(start, end))) as string
    : decoder.decode(bytes.subarray(start + 1, end - 1));
}

/** Names as UTF-8, to be matched in place against a member's name ({@linkcode NameSet.find}). */
export class NameSet {
  readonly #names: readonly string[];
  readonly #bytes: readonly Uint8Array[];

  /** The set of `names`. */
  constructor(names: Iterable<string>) {
    this.#names = [...names];
    const encoder = new TextEncoder();
    this.#bytes = this.#names.map((name) => encoder.encode(name));
  }

  /**
   * The name of the set that the member name's string from `start` to `end` (quotes included) stands for, or
   * `undefined`. Compared byte by byte where it is; a name written with an escape is decoded first.
   */
  find(bytes: Uint8Array, start: number, end: number): string | undefined {
    const length = end - start - 2;
    for (let k = 0; k < this.#bytes.length; k++) {
      const name = this.#bytes[k]!;
      if (name.length !== length) continue;
      let j = 0;
      while (j < length && name[j] === bytes[start + 1 + j]) j++;
      if (j === length) return this.#names[k];
    }
    if (!escaped(bytes, start, end)) return undefined;
    const name = memberName(bytes, start, end);
    return this.#names.includes(name) ? name : undefined;
  }
}
