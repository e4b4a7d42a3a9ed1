/**
 * A row's `extra`: the members of its record's `data` that the type's rules
 * do not know, cut from the record's own text. Each member is kept as the
 * file writes it (its name's string and its value's text, escapes,
 * number spellings and the whitespace inside an object or array value
 * included), in the record's order, every occurrence of a repeated name;
 * they are joined by `,` into one object's text, `{` … `}`, without the
 * whitespace between members. So `1e400`, `12345678901234567890123`, `1.50`,
 * `-0`, `"\u00e9"`, `"\/"` and `{"a":1,"a":2}` stay as written.
 *
 * Read back with `JSON.parse` (or the records' own `parseJson`), a repeated
 * name gives its last value, as the record's own validation does; the text
 * keeps the others.
 *
 * @module
 */
import { type JsonKind, jsonKind } from "./drift.ts";
import { eachMember, memberName, NameSet, skipSpace, valueEnd } from "./json_text.ts";

const decoder = new TextDecoder();
const encoder = new TextEncoder();
const DATA = new NameSet(["data"]);

/** Each field kinds' names, to match a member's name in place. */
const namesOf = new WeakMap<ReadonlyMap<string, JsonKind>, NameSet>();

/**
 * An object's text written member by member into a buffer of bytes, then
 * decoded once: `{`, each member's name and value as they were (the bytes
 * between them left out), `}`.
 */
class ObjectWriter {
  /** One buffer for every writer (each is used and done with synchronously), grown as needed. */
  static #buffer = new Uint8Array(4096);
  /** The members so far, from `{`. */
  readonly bytes: Uint8Array;
  length = 0;
  members = 0;

  /** A writer for members taken from `capacity` bytes of JSON at most. */
  constructor(capacity: number) {
    if (ObjectWriter.#buffer.length < capacity + 2) ObjectWriter.#buffer = new Uint8Array(2 * capacity + 2);
    this.bytes = ObjectWriter.#buffer;
  }

  /** Starts over. */
  clear() {
    this.length = 0;
    this.members = 0;
  }

  /** Adds the member whose name's string and value are these spans of `source`. */
  add(source: Uint8Array, nameStart: number, nameEnd: number, valueStart: number, valueEnd: number) {
    const out = this.bytes;
    let at = this.length;
    out[at++] = this.members++ === 0 ? 0x7b : 0x2c;
    for (let k = nameStart; k < nameEnd; k++) out[at++] = source[k]!;
    out[at++] = 0x3a;
    for (let k = valueStart; k < valueEnd; k++) out[at++] = source[k]!;
    this.length = at;
  }

  /** The object's text; `null` without members. */
  text(): string | null {
    if (this.members === 0) return null;
    this.bytes[this.length] = 0x7d;
    return decoder.decode(this.bytes.subarray(0, this.length + 1));
  }
}

/**
 * The `extra` of a record whose text, as UTF-8, is `element` (an object that
 * parsed, with an object `data`): the members of its `data` (the last `data`,
 * which is the one `JSON.parse` gives) whose name `kinds` does not know, or
 * whose parsed value in `data` is of another JSON type than `kinds` says;
 * `null` when there are none. A field the rules know, of their type, is
 * never kept, not even an earlier occurrence that the last one overrides.
 */
export function extraText(
  element: Uint8Array,
  kinds: ReadonlyMap<string, JsonKind>,
  data: Readonly<Record<string, unknown>>,
): string | null {
  let names = namesOf.get(kinds);
  if (names === undefined) namesOf.set(kinds, names = new NameSet(kinds.keys()));
  const known = names;
  const out = new ObjectWriter(element.length);
  const keep = (nameStart: number, nameEnd: number, valueStart: number): number => {
    const end = valueEnd(element, valueStart);
    const name = known.find(element, nameStart, nameEnd);
    if (name !== undefined) {
      const expected = kinds.get(name);
      const value = data[name];
      if ((typeof value === expected && expected !== "object") || jsonKind(value) === expected) return end;
    }
    out.add(element, nameStart, nameEnd, valueStart, end);
    return end;
  };
  eachMember(element, skipSpace(element, 0), (nameStart, nameEnd, valueStart) => {
    if (element[valueStart] !== 0x7b || DATA.find(element, nameStart, nameEnd) === undefined) {
      return valueEnd(element, valueStart);
    }
    // Each `data` starts over: the last is the record's.
    out.clear();
    return eachMember(element, valueStart, keep);
  });
  return out.text();
}

/**
 * `extra` (an object's text) without every member named one of `names`, the
 * others as they are: `null` when none is left.
 */
export function withoutFields(extra: string, names: readonly string[]): string | null {
  const bytes = encoder.encode(extra);
  const out = new ObjectWriter(bytes.length);
  eachMember(bytes, skipSpace(bytes, 0), (nameStart, nameEnd, valueStart) => {
    const end = valueEnd(bytes, valueStart);
    if (!names.includes(memberName(bytes, nameStart, nameEnd))) out.add(bytes, nameStart, nameEnd, valueStart, end);
    return end;
  });
  return out.text();
}
