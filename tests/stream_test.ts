import assert from "node:assert/strict";
import fc from "fast-check";
import { join } from "node:path";
import { ArraySplitter, JsonSyntaxError, NotAnArrayError, parseElements } from "../mod/produce/json_stream.ts";
import { processBody, processStream, type Produced } from "../mod/produce/produce.ts";
import { Classifier, RECORD_TYPES } from "../mod/records/mod.ts";
import type { FileWrite } from "../mod/store/store.ts";
import { startBucketServer } from "./bucket_server.ts";
import { CASES, dumpDatabase, query, runOnce, withTempDir } from "./helpers.ts";

const SAMPLE = new URL("../fixtures/sample_bucket/", import.meta.url).pathname;
const ctx = { ingestionTime: "t", settings: { AWESOME_MIN_RATING: 4.5, AWESOME_MAX_SIZE_BYTES: 100_000_000 } };
const options = () => ({
  encoding: "utf-8",
  classifier: new Classifier(RECORD_TYPES, ctx),
  processedAt: new Date(0),
  rawCap: 65_536,
});

/** Splits `text` into chunks of `size` characters and returns the element texts. */
function split(text: string, size: number): string[] {
  const s = new ArraySplitter();
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(...s.push(text.slice(i, i + size)));
  s.end();
  return out;
}

Deno.test("ArraySplitter finds elements across any chunk boundary, strings and nesting included", () => {
  const text = ' [ {"a": "x,]}\\"[", "b": [1, {"c": 2}]}, 3 , "s\\\\", null,[[]] ]  \n';
  // Whitespace before an element is not part of it (nor of its size).
  const expected = ['{"a": "x,]}\\"[", "b": [1, {"c": 2}]}', "3 ", '"s\\\\"', "null", "[[]] "];
  for (let size = 1; size <= text.length; size++) assert.deepEqual(split(text, size), expected, `chunk ${size}`);
  assert.deepEqual(split("[]", 1), []);
  assert.deepEqual(split("[ \n ]", 2), []);
});

Deno.test("ArraySplitter reports structural errors and non-array roots", () => {
  assert.throws(() => split('[1, {"a": 2}', 3), new JsonSyntaxError("unexpected end of input"));
  assert.throws(() => split("[1] x", 2), /unexpected "x" after the array at character 4/);
  assert.throws(() => split("[1}", 2), /unexpected "}" at character 2/);
  assert.throws(() => split(' {"a": 1}', 2), NotAnArrayError);
  assert.deepEqual(split("[1,]", 4), ["1", ""]);
  assert.throws(() => parseElements(["1", ""], 0), /^JsonSyntaxError: element 1: /);
  assert.throws(() => parseElements(["1", " NaN"], 10), /element 11: /);
  // After an element's object, array or string only a comma or the array's end may follow (brackets in garbage
  // included): the reason names what came, not "unexpected end of input".
  assert.throws(() => split('[{"type":"song"} [31m garbage ]', 5), /unexpected "\[" after element 0 at character 17/);
  assert.throws(() => split('["a" "b"]', 3), /unexpected "\\"" after element 0 at character 5/);
  // Whitespace between elements is no record's size.
  assert.deepEqual(split(`[${" ".repeat(5000)}]`, 7), []);
  const capped = new ArraySplitter(100);
  capped.push("[");
  for (let i = 0; i < 50; i++) capped.push(" ".repeat(100));
  capped.push(' {"a": 1} ]');
  capped.end();
});

/** Part limits for {@linkcode streamed}, and the parts it saw: their elements and characters of record text. */
interface PartWatch {
  readonly partElements?: number;
  readonly partChars?: number;
  readonly seen: { elements: number; chars: number }[];
}

/** Drives processStream over `bytes` in chunks of `size` and merges its output into one FileWrite. */
async function streamed(
  bytes: Uint8Array,
  size: number,
  watch?: PartWatch,
): Promise<{ file: FileWrite | undefined; failed?: string }> {
  const body = ReadableStream.from((function* () {
    for (let i = 0; i < bytes.length; i += size) yield bytes.slice(i, i + size);
  })());
  const merged = {
    rows: new Map<string, { count: number; cells: unknown[] }>(),
    rejections: [] as unknown[],
    ignored: new Map<string, number>(),
    records: 0,
  };
  const add = (part: Omit<FileWrite, "key" | "status" | "processedAt" | "bytes">) => {
    for (const [name, { count, cells }] of part.rows) {
      const m = merged.rows.get(name) ?? { count: 0, cells: [] };
      merged.rows.set(name, { count: m.count + count, cells: [...m.cells, ...cells] });
    }
    merged.rejections.push(...part.rejections);
    for (const [name, n] of part.ignored) merged.ignored.set(name, (merged.ignored.get(name) ?? 0) + n);
    merged.records += part.records;
  };
  let file: FileWrite | undefined;
  const limits = { partElements: watch?.partElements, partChars: watch?.partChars };
  for await (const p of processStream("k", body, { ...options(), ...limits }) as AsyncGenerator<Produced>) {
    if (p.kind === "part" || p.kind === "file") {
      const part = p.kind === "part" ? p.part : p.file;
      const elements = part.records + part.rejections.length + [...part.ignored.values()].reduce((a, b) => a + b, 0);
      watch?.seen.push({ elements, chars: p.chars ?? 0 });
    }
    if (p.kind === "part") add(p.part);
    else if (p.kind === "file") {
      if (p.file.status === "invalid") return { file: p.file };
      add(p.file);
      file = { ...p.file, ...merged } as unknown as FileWrite;
    } else if (p.kind === "failed") return { file: undefined, failed: p.reason };
  }
  return { file };
}

async function assertSame(bytes: Uint8Array, size: number, watch?: PartWatch) {
  const buffered = processBody("k", bytes, options());
  const { file } = await streamed(bytes, size, watch);
  assert.ok(file !== undefined);
  assert.deepEqual(
    {
      status: file.status,
      rejections: file.rejections,
      ignored: file.ignored,
      records: file.records,
      bytes: file.bytes,
      rows: file.rows,
    },
    {
      status: buffered.status,
      rejections: buffered.rejections,
      ignored: buffered.ignored,
      records: buffered.records,
      bytes: buffered.bytes,
      rows: buffered.rows,
    },
  );
}

Deno.test("processStream() gives the same rows and rejections as processBody() on the real-looking and hostile cases", async () => {
  const dirs = [join(CASES, "basic"), join(CASES, "hostile"), SAMPLE];
  for (const dir of dirs) {
    for (const entry of Deno.readDirSync(dir)) {
      if (entry.name === "files_list.data") continue;
      const bytes = Deno.readFileSync(join(dir, entry.name));
      for (const size of [1, 7, 4096]) {
        if (size === 1 && bytes.length > 20_000) continue;
        await assertSame(bytes, size);
      }
    }
  }
});

Deno.test("processStream() matches processBody() on random and mutated arrays (property)", async () => {
  const element = fc.oneof(
    fc.jsonValue(),
    fc.record({
      type: fc.constantFrom("song", "app", "book"),
      data: fc.dictionary(fc.constantFrom("title", "artist_name", "year", "release", "name"), fc.jsonValue()),
    }),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.array(element, { maxLength: 12 }),
      fc.nat(),
      fc.nat(),
      fc.constantFrom("none", "cut", "insert", "drop"),
      fc.integer({ min: 1, max: 9 }),
      async (elements, at, ch, mutation, size) => {
        let text = JSON.stringify(elements, null, at % 3);
        const pos = text.length === 0 ? 0 : at % text.length;
        if (mutation === "cut") text = text.slice(0, pos);
        if (mutation === "insert") text = text.slice(0, pos) + ',]}[{"\\ x1'[ch % 11] + text.slice(pos);
        if (mutation === "drop") text = text.slice(0, pos) + text.slice(pos + 1);
        await assertSame(new TextEncoder().encode(text), size);
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("processStream() cuts parts by their text as well as their count: the same rows, every part in bounds", async () => {
  const dirs = [join(CASES, "basic"), join(CASES, "hostile"), SAMPLE];
  for (const dir of dirs) {
    for (const entry of Deno.readDirSync(dir)) {
      if (entry.name === "files_list.data") continue;
      const bytes = Deno.readFileSync(join(dir, entry.name));
      for (const [partElements, partChars] of [[5000, 1], [3, 200], [5000, 2000], [1, 1 << 20]] as const) {
        const watch: PartWatch = { partElements, partChars, seen: [] };
        await assertSame(bytes, 4096, watch);
        // A part ends before the element that would pass either bound: it holds one element, or is within both.
        for (const { elements, chars } of watch.seen) {
          assert.ok(elements <= partElements, `${entry.name}: ${elements} elements > ${partElements}`);
          assert.ok(elements <= 1 || chars <= partChars, `${entry.name}: ${chars} characters > ${partChars}`);
        }
        if (partChars === 1) assert.ok(watch.seen.every((p) => p.elements <= 1), entry.name);
      }
    }
  }
});

Deno.test("streaming: every file parsed as it downloads gives the same tables; 5000-element parts", async () => {
  const bucket = await Deno.makeTempDir();
  const { generateBucket } = await import("../tools/gen_bucket.ts");
  await generateBucket(bucket, { files: 3, records: 12_000, seed: 4 });
  for (const dir of [bucket, join(CASES, "hostile"), join(CASES, "basic")]) {
    const server = await startBucketServer(dir);
    try {
      await withTempDir(async (tmp) => {
        await runOnce(server.url, join(tmp, "buffered.sqlite3"));
        await runOnce(server.url, join(tmp, "streamed.sqlite3"), { streamThresholdBytes: 1 });
        assert.deepEqual(dumpDatabase(join(tmp, "streamed.sqlite3")), dumpDatabase(join(tmp, "buffered.sqlite3")));
      });
    } finally {
      await server.close();
    }
  }
  await Deno.remove(bucket, { recursive: true });
});

Deno.test("streaming: a cut connection fails the file and discards its parts; too large is invalid", async () => {
  const bucket = await Deno.makeTempDir();
  const { generateBucket } = await import("../tools/gen_bucket.ts");
  const [big] = await generateBucket(bucket, { files: 1, records: 20_000, seed: 8 });
  let mode: "truncate" | "chunked" | "hang" = "truncate";
  const server = await startBucketServer(bucket, { fault: (key) => key === big ? mode : undefined });
  try {
    await withTempDir(async (tmp) => {
      const db = join(tmp, "db.sqlite3");
      const failed = await runOnce(server.url, db, { streamThresholdBytes: 1 });
      assert.equal(failed.status, "failed");
      assert.match(failed.failedKeys[0]!.reason, /^body read failed while streaming/);
      assert.deepEqual(
        query(
          db,
          "SELECT (SELECT count(*) FROM songs) + (SELECT count(*) FROM movies) + (SELECT count(*) FROM rejected_records) n",
        ),
        [{ n: 0 }],
      );
      // A body that stops arriving mid-stream ends after REQUEST_TIMEOUT_SECONDS of silence.
      mode = "hang";
      const hung = await runOnce(server.url, db, { streamThresholdBytes: 1, timeoutMs: 300 });
      assert.match(hung.failedKeys[0]?.reason ?? "", /^body read failed while streaming: no data for 300 ms$/);
      assert.deepEqual(query(db, "SELECT count(*) n FROM songs"), [{ n: 0 }]);
      // Without a Content-Length, the cap is found while streaming: parts written before it are discarded.
      mode = "chunked";
      const tooLarge = await runOnce(server.url, db, { streamThresholdBytes: 1, maxFileBytes: 1_000_000 });
      assert.equal(tooLarge.filesInvalid, 1);
      const [{ reason }] = query(db, "SELECT reason FROM rejected_records") as [{ reason: string }];
      assert.match(reason, /^too large: over 1000000 bytes \(stopped reading at 10000\d\d\)$/);
      assert.deepEqual(query(db, "SELECT count(*) n FROM songs"), [{ n: 0 }]);
      assert.equal(tooLarge.loaded.song, 0);
      assert.deepEqual(tooLarge.ignored, {}, "ignored records of discarded parts were counted");
    });
  } finally {
    await server.close();
    await Deno.remove(bucket, { recursive: true });
  }
});
