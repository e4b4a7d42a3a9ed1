/**
 * The shared hostile generator for property tests: buckets a hostile source
 * could serve. Text holds U+0000, lone surrogates, C0 and C1 controls, ESC
 * sequences, bidirectional overrides and prototype names, in keys, types,
 * field names and values; files come as JSON arrays, NDJSON (LF or CRLF),
 * gzip, whitespace-only or empty bodies, deeply nested bodies and huge
 * strings; some records are written by hand, with unknown fields that a
 * re-serialization would change (numbers no double holds or spelled
 * otherwise, escapes, repeated and integer-like names, whitespace). Every new
 * surface adds itself to the properties over it (`invariants_test.ts`).
 *
 * @module
 */
import fc from "fast-check";

/** Characters and pieces a hostile bucket puts in any text. */
export const HOSTILE_PIECES = [
  "\u0000",
  "\ud800",
  "\udfff",
  "\u0007",
  "\u001b[2J",
  "\u001b]0;pwned\u0007",
  "\u009b31m",
  "\u0085",
  "\u202e",
  "\r",
  "\n",
  "\t",
  "\u007f",
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "ねら",
  '"',
  "\\",
  " ",
] as const;

/** Options of the generators. */
export interface HostileOptions {
  /**
   * U+0000 in text that becomes a row value. PostgreSQL's text cannot hold it (such a record is a rejection there,
   * a row in SQLite): off for properties that compare the two stores. U+0000 elsewhere (after a record on a line)
   * stays. @default {true}
   */
  readonly nul?: boolean;
}

/** A short text mixing hostile pieces with plain letters. */
export function hostileText({ nul = true }: HostileOptions = {}): fc.Arbitrary<string> {
  const pieces = HOSTILE_PIECES.filter((p) => nul || p !== "\u0000");
  return fc.array(fc.oneof(fc.constantFrom(...pieces), fc.constantFrom("a", "B", "z", "1", "é")), { maxLength: 6 })
    .map((parts) => parts.join(""));
}

/**
 * JSON texts of names a re-serialization would change or reorder: escapes, integer-like names (JavaScript's objects
 * put them first), `__proto__`, U+0000 and lone surrogates (escaped, as JSON text must), a name often repeated.
 * None stands for a field the song type knows.
 */
const RAW_NAMES = [
  '"mood"',
  '"m\\u006fod"',
  '"dup"',
  '"dup"',
  '"9"',
  '"10"',
  '"__proto__"',
  '"caf\\u00e9"',
  '"café"',
  '"a\\u0000b"',
  '"\\ud800"',
  '"\\/"',
  '"\\"\\\\"',
  '"\\u001b[2J"',
];

/** JSON texts of values a re-serialization would change: numbers no double holds or spelled otherwise, escapes. */
const RAW_VALUES = [
  "1e400",
  "-1e400",
  "12345678901234567890123",
  "-0",
  "1.50",
  "1E5",
  "1e-400",
  "0.1000000000000000055511151231257827",
  "true",
  "null",
  '"caf\\u00e9"',
  '"\\/"',
  '"\\u0000"',
  '"\\ud800x"',
  '"\\"\\\\"',
  '{"x" : [1, 2.50], "x":\tnull}',
  "[ ]",
  "{}",
  "[1,[2,[3e0]]]",
];

/** JSON whitespace that fits on one line (an NDJSON record's). */
const SPACE = fc.constantFrom("", " ", "\t", "  ");

/** One member as JSON text, `name: value`, spelled as a file may. */
export function rawMember(): fc.Arbitrary<{ readonly name: string; readonly value: string; readonly text: string }> {
  const value = fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...RAW_VALUES) },
    { weight: 1, arbitrary: hostileText().map((t) => JSON.stringify(t)) },
  );
  return fc.tuple(fc.constantFrom(...RAW_NAMES), value, SPACE, SPACE).map(([name, value, a, b]) => ({
    name,
    value,
    text: `${name}${a}:${b}${value}`,
  }));
}

/** A record written by hand, its text, and the `extra` its row must keep. */
export interface RawSong {
  /** The record's text (one line). */
  readonly text: string;
  /** Its title, unique in the bucket, when it is a row. */
  readonly title: string;
  /** Its row's `extra` (the unknown members as written, in order, joined by `,`), or null. */
  readonly extra: string | null;
}

/**
 * A valid song written by hand, titled `title`: its known fields (sometimes after an earlier occurrence that the
 * last overrides, and sometimes after a `data` that a later one overrides) with unknown members between them.
 */
export function rawSong(title: string): fc.Arbitrary<RawSong> {
  const known = [
    ["artist_name", '"A"'],
    ["title", JSON.stringify(title)],
    ["year", "1"],
    ["release", '"r"'],
  ] as const;
  return fc.tuple(
    fc.array(rawMember(), { maxLength: 6 }),
    fc.array(fc.nat(known.length), { minLength: 6, maxLength: 6 }),
    fc.boolean(),
    fc.boolean(),
    SPACE,
  ).map(([members, at, shadow, earlierData, space]) => {
    const parts: string[] = known.map(([name, value]) => `"${name}":${space}${value}`);
    // Unknown members between the known ones (inserted from the last, at places in order, so that theirs stays).
    const places = at.slice(0, members.length).sort((a, b) => a - b);
    for (let m = members.length - 1; m >= 0; m--) parts.splice(places[m]!, 0, members[m]!.text);
    // An earlier occurrence of a known field, overridden by the last: validation reads the last, extra keeps neither.
    if (shadow) parts.unshift('"year":"shadowed"');
    const data = `{${space}${parts.join(`,${space}`)}${space}}`;
    const text = earlierData
      ? `{"data":{"gone":1},${space}"type":"song",${space}"d\\u0061ta":${space}${data}}`
      : `{"type":${space}"song",${space}"data":${data}}`;
    const extra = members.length === 0 ? null : `{${members.map((m) => `${m.name}:${m.value}`).join(",")}}`;
    return { text, title, extra };
  });
}

/** 1 to 12 hand-written songs with unique titles. */
export function rawSongs(): fc.Arbitrary<RawSong[]> {
  return fc.integer({ min: 1, max: 12 }).chain((n) =>
    fc.tuple(...Array.from({ length: n }, (_, i) => rawSong(`t${i}`)))
  );
}

/** A hostile bucket: 1 to 5 files, by key (keys sometimes hostile too: they are refused, never fetched). */
export function hostileBucket(options: HostileOptions = {}): fc.Arbitrary<Map<string, string | Uint8Array>> {
  const text = hostileText(options);
  return fc.array(
    fc.tuple(fc.oneof({ weight: 5, arbitrary: fc.constant("") }, { weight: 1, arbitrary: text }), hostileFile(options)),
    { minLength: 1, maxLength: 5 },
  ).map((files) => new Map(files.map(([name, body], i) => [`f${i}${name}.data`, body])));
}

/** A file's body. */
export function hostileFile(options: HostileOptions = {}): fc.Arbitrary<string | Uint8Array> {
  const text = hostileText(options);
  /** A key-like text: usually plain (so that keys repeat across files), sometimes hostile. */
  const keyText = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom("A", "B", "b", "Ä", "z z") },
    { weight: 1, arbitrary: text },
  );
  /** A JSON value with hostile strings anywhere. */
  const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
    text,
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    fc.dictionary(text, text, { maxKeys: 3 }),
  );

  /** A record of a known type, valid or a near miss, with unknown hostile fields (drift). */
  const record: fc.Arbitrary<unknown> = fc.oneof(
    fc.record({
      type: fc.constant("song"),
      data: fc.record({
        artist_name: keyText,
        title: keyText,
        year: fc.oneof(fc.integer({ min: 0, max: 3000 }), hostileValue),
        release: fc.oneof(text, hostileValue),
      }, { requiredKeys: ["artist_name", "title", "year"] }),
    }),
    fc.record({
      type: fc.constant("movie"),
      data: fc.record({
        original_title: keyText,
        original_language: fc.constantFrom("en", "fr"),
        budget: fc.integer({ min: 0, max: 1e6 }),
        is_adult: fc.boolean(),
        release_date: fc.constantFrom("2001-01-01", "1999-02-30"),
      }),
    }),
    fc.record({
      type: fc.constant("app"),
      data: fc.record({
        name: keyText,
        genre: text,
        rating: fc.constantFrom(0, 4.5, 7, "4.5"),
        version: fc.constantFrom("1", "2"),
        size_bytes: fc.integer({ min: 0, max: 2e8 }),
      }),
    }),
    // An unknown or hostile type name; a record that is not an object.
    fc.record({ type: text, data: fc.dictionary(text, hostileValue, { maxKeys: 2 }) }),
    hostileValue,
  ).chain((r) =>
    // Unknown fields with hostile names on a record's data (drift), now and then.
    typeof r === "object" && r !== null && "data" in r && typeof r.data === "object" && r.data !== null
      ? fc.dictionary(text, hostileValue, { maxKeys: 2 }).map((extra) => ({
        ...r,
        data: { ...extra, ...(r.data as Record<string, unknown>) },
      }))
      : fc.constant(r)
  );

  /** A record of {@linkcode record}, or now and then a song written by hand (as text). */
  const anyRecord: fc.Arbitrary<unknown> = fc.oneof(
    { weight: 4, arbitrary: record },
    { weight: 1, arbitrary: keyText.chain((title) => rawSong(title)).map((s) => new RawText(s.text)) },
  );

  /** Deeply nested JSON: `[[[…]]]` past any sane depth. */
  const deep = fc.integer({ min: 100, max: 5000 }).map((n) => `${"[".repeat(n)}${"]".repeat(n)}`);

  return fc.oneof(
    { weight: 6, arbitrary: fc.array(anyRecord, { maxLength: 12 }).map((a) => `[${a.map(textOf).join(",")}]`) },
    // NDJSON, with LF or CRLF line ends, a blank line and sometimes a broken line.
    {
      weight: 3,
      arbitrary: fc.tuple(
        fc.array(anyRecord, { minLength: 1, maxLength: 8 }),
        fc.constantFrom("\n", "\r\n"),
        fc.boolean(),
      ).map(([records, eol, broken]) => records.map(textOf).join(eol) + eol + (broken ? `{"type": "song"${eol}` : eol)),
    },
    // Whitespace only, or nothing.
    { weight: 1, arbitrary: fc.constantFrom("", " ", "\n\n\t  \r\n", " ".repeat(70_000)) },
    { weight: 1, arbitrary: deep },
    // A huge string value in an otherwise valid record.
    {
      weight: 1,
      arbitrary: fc.integer({ min: 10_000, max: 200_000 }).map((n) =>
        JSON.stringify([{ type: "song", data: { artist_name: "H", title: "x".repeat(n), year: 1, release: "r" } }])
      ),
    },
    // U+0000 and garbage after a valid record on one NDJSON line.
    { weight: 1, arbitrary: record.map((r) => `${JSON.stringify(r)}\u0000 trailing\n`) },
  ).chain((text) =>
    // Now and then gzip-compressed (the source decodes it by its magic bytes).
    fc.boolean().map((gzip) => gzip && typeof text === "string" ? gzipSync(text) : text)
  );
}

/** A record given as its JSON text. */
class RawText {
  constructor(readonly text: string) {}
}

/** A record's JSON text: as written by hand, or `JSON.stringify`. */
const textOf = (r: unknown) => r instanceof RawText ? r.text : JSON.stringify(r);

/** gzip of `text`, synchronously (CompressionStream is asynchronous): a stored-block member, valid and small. */
function gzipSync(text: string): Uint8Array {
  const data = new TextEncoder().encode(text);
  // Deflate "stored" blocks of at most 65,535 bytes, each with its 5-byte header.
  const blocks: number[] = [];
  for (let at = 0; at < data.length || at === 0; at += 65_535) {
    const chunk = data.subarray(at, Math.min(data.length, at + 65_535));
    const last = at + 65_535 >= data.length ? 1 : 0;
    blocks.push(last, chunk.length & 0xff, chunk.length >> 8, ~chunk.length & 0xff, (~chunk.length >> 8) & 0xff);
    for (const byte of chunk) blocks.push(byte);
    if (data.length === 0) break;
  }
  const crc = crc32(data);
  const size = data.length;
  return new Uint8Array([
    0x1f,
    0x8b,
    8,
    0,
    0,
    0,
    0,
    0,
    0,
    0xff,
    ...blocks,
    crc & 0xff,
    (crc >>> 8) & 0xff,
    (crc >>> 16) & 0xff,
    (crc >>> 24) & 0xff,
    size & 0xff,
    (size >>> 8) & 0xff,
    (size >>> 16) & 0xff,
    (size >>> 24) & 0xff,
  ]);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of data) c = CRC_TABLE[(c ^ byte) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
