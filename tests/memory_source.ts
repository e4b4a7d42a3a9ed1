/**
 * An in-memory bucket and random bucket content for property tests.
 *
 * @module
 */
import fc from "fast-check";
import type { BucketSource, FetchResult, GetOptions } from "../mod/source/source.ts";

/** A bucket held in memory: the list, then each file's text (or bytes). */
export class MemorySource implements BucketSource {
  readonly display = "memory:";
  /** `chunk`: the size of a streamed body's chunks. */
  constructor(readonly files: ReadonlyMap<string, string | Uint8Array>, readonly chunk = 50) {}
  get(key: string, options: GetOptions): Promise<FetchResult> {
    const content = key === "files_list.data" ? [...this.files.keys()].join("\n") : this.files.get(key);
    if (content === undefined) return Promise.resolve({ kind: "missing", reason: "no such file" });
    const body = typeof content === "string" ? new TextEncoder().encode(content) : content;
    if (options.streamOverBytes !== undefined && body.byteLength > options.streamOverBytes) {
      // Small chunks, so that a streamed file comes in several parts.
      const n = this.chunk;
      const chunks = Array.from({ length: Math.ceil(body.byteLength / n) }, (_, i) => body.slice(i * n, i * n + n));
      return Promise.resolve({ kind: "stream", body: ReadableStream.from(chunks), declaredBytes: body.byteLength });
    }
    return Promise.resolve({ kind: "ok", body });
  }
}

/**
 * A random file's JSON text: records of the three types whose keys repeat
 * within and across files (some with a NUL or a lone surrogate, unless
 * `nul` is false), a truncated file, or valid records and then a syntax error.
 */
export function randomFile({ nul = true } = {}): fc.Arbitrary<string> {
  const keyText = fc.constantFrom(
    "A",
    "B",
    "b",
    "Ä",
    ...(nul ? ["a\u0000x", "a\u0000y"] : ["a x"]),
    "\ud800",
    "\udfff",
    "ねら",
    "z z",
  );
  const song = fc.record({
    type: fc.constant("song"),
    data: fc.record({
      artist_name: keyText,
      title: keyText,
      year: fc.integer({ min: 0, max: 3000 }),
      release: fc.string(),
      // Drift: a field the rules do not know, of either JSON type.
      genre_id: fc.oneof(fc.integer(), fc.string()),
    }, { requiredKeys: ["artist_name", "title", "year", "release"] }),
  });
  const movie = fc.record({
    type: fc.constant("movie"),
    data: fc.record({
      original_title: keyText,
      original_language: fc.constantFrom("en", "fr"),
      budget: fc.integer({ min: 0, max: 1e6 }),
      is_adult: fc.boolean(),
      release_date: fc.constantFrom("2001-01-01", "2001-01-02", "1999-02-30"),
    }),
  });
  const app = fc.record({
    type: fc.constant("app"),
    data: fc.record({
      name: keyText,
      genre: fc.string(),
      // "4.5": drift (a string where the rule wants a number), and a rejection.
      rating: fc.constantFrom(0, 2.5, 4.5, 5, 7, "4.5"),
      version: fc.constantFrom("1", "2"),
      size_bytes: fc.integer({ min: 0, max: 2e8 }),
    }),
  });
  return fc.oneof(
    { weight: 9, arbitrary: fc.array(fc.oneof(song, movie, app), { maxLength: 40 }).map((a) => JSON.stringify(a)) },
    { weight: 1, arbitrary: fc.constant('[{"type": "song", truncated') },
    // Valid parts first, then a syntax error: the parts (and any merge made meanwhile) must be undone.
    {
      weight: 2,
      arbitrary: fc.array(fc.oneof(song, movie, app), { minLength: 8, maxLength: 30 }).map((a) =>
        JSON.stringify(a).slice(0, -1) + ", {oops}]"
      ),
    },
  );
}
