/**
 * The shared hostile generator for property tests: buckets a hostile source
 * could serve. Text holds U+0000, lone surrogates, C0 and C1 controls, ESC
 * sequences, bidirectional overrides and prototype names, in keys, types,
 * field names and values; files come as JSON arrays, NDJSON (LF or CRLF),
 * gzip, whitespace-only or empty bodies, deeply nested bodies and huge
 * strings. Every new surface adds itself to the properties over it
 * (`invariants_test.ts`).
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

  /** Deeply nested JSON: `[[[…]]]` past any sane depth. */
  const deep = fc.integer({ min: 100, max: 5000 }).map((n) => `${"[".repeat(n)}${"]".repeat(n)}`);

  return fc.oneof(
    { weight: 6, arbitrary: fc.array(record, { maxLength: 12 }).map((a) => JSON.stringify(a)) },
    // NDJSON, with LF or CRLF line ends, a blank line and sometimes a broken line.
    {
      weight: 3,
      arbitrary: fc.tuple(fc.array(record, { minLength: 1, maxLength: 8 }), fc.constantFrom("\n", "\r\n"), fc.boolean())
        .map(([records, eol, broken]) =>
          records.map((r) => JSON.stringify(r)).join(eol) + eol + (broken ? `{"type": "song"${eol}` : eol)
        ),
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
