/**
 * gzip and NDJSON objects: the same rows and rejections buffered or streamed
 * in small chunks, gzip (one member or several) the same as the plain bytes,
 * NDJSON records the same as the array's, and the caps hold after inflating.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { runPipeline } from "../mod/run/pipeline.ts";
import { sniffFormat } from "../mod/produce/formats.ts";
import { RECORD_TYPES } from "../mod/records/mod.ts";
import { SqliteStore } from "../mod/store/sqlite/mod.ts";
import { dumpDatabase, PIPELINE_DEFAULTS, withTempDir } from "./helpers.ts";
import { MemorySource, randomFile } from "./memory_source.ts";

const encode = (text: string) => new TextEncoder().encode(text);
const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.byteLength) - p.byteLength);
  return out;
};
/** gzip with the text cut into members at `cuts` (fractions): a multi-member file, as `cat a.gz b.gz` makes. */
const gzipMembers = (text: string, cuts: number[]) => {
  const bytes = encode(text);
  const points = [0, ...cuts.map((c) => Math.floor(c * bytes.byteLength)).sort((a, b) => a - b), bytes.byteLength];
  return concat(points.slice(1).map((end, i) => new Uint8Array(gzipSync(bytes.slice(points[i], end)))));
};
/** A file's records one per line, with a broken line and blank lines now and then. */
const asNdjson = (text: string, broken: boolean) => {
  let elements: unknown[];
  try {
    elements = JSON.parse(text);
  } catch {
    return '{"type": "song", "data": {\n{oops}\n';
  }
  const lines = elements.map((e) => JSON.stringify(e));
  if (broken) lines.splice(Math.floor(lines.length / 2), 0, "{not json", "");
  return lines.join("\r\n") + "\n";
};

let n = 0;
async function load(dir: string, files: Map<string, string | Uint8Array>, stream: boolean, partChars?: number) {
  const db = join(dir, `${++n}.sqlite3`);
  const store = SqliteStore.open(db, { types: RECORD_TYPES });
  try {
    const report = await runPipeline({
      ...PIPELINE_DEFAULTS,
      source: new MemorySource(files, 7),
      store,
      streamThresholdBytes: stream ? 0 : 1 << 30,
      partElements: 3,
      partChars,
      concurrency: 2,
    });
    const { startedAt: _s, finishedAt: _f, runId: _r, lockWaitMs: _l, ...rest } = report;
    return { report: rest, dump: dumpDatabase(db) };
  } finally {
    store.close();
  }
}

/** The dump without `bytes` (gzip objects count their inflated bytes, as they stream). */
const withoutBytes = (d: Awaited<ReturnType<typeof load>>) => ({
  ...d,
  dump: { ...d.dump, processed_files: d.dump.processed_files.map(({ bytes: _, ...r }) => r) },
});

Deno.test("gzip (one member or several) gives what the plain bytes give, buffered or streamed", async () => {
  await withTempDir(async (dir) => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(randomFile(), fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 3 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.boolean(),
        async (specs, stream) => {
          const plain = new Map(specs.map(([text], i) => [`f${i}.data`, text]));
          const zipped = new Map(specs.map(([text, cuts], i) => [`f${i}.data`, gzipMembers(text, cuts)]));
          const a = withoutBytes(await load(dir, plain, stream));
          const b = withoutBytes(await load(dir, zipped, stream));
          assert.deepEqual(b, a);
          assert.deepEqual(withoutBytes(await load(dir, zipped, stream, 60)), a);
        },
      ),
      { numRuns: 40 },
    );
  });
});

Deno.test("NDJSON: the same rows as the array, the same result buffered or streamed; bad lines rejected", async () => {
  await withTempDir(async (dir) => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(randomFile(), fc.boolean()), { minLength: 1, maxLength: 4 }),
        async (specs) => {
          const arrays = new Map(specs.map(([text], i) => [`f${i}.data`, text]));
          const lines = new Map(specs.map(([text, broken], i) => [`f${i}.ndjson`, asNdjson(text, broken)]));
          const buffered = await load(dir, lines, false);
          const streamed = await load(dir, lines, true);
          assert.deepEqual(streamed, buffered);
          // Parts cut by their text (a record or two each) change nothing either.
          assert.deepEqual(await load(dir, lines, true, 60), buffered);
          const gz = new Map([...lines].map(([k, v]) => [`${k}.gz`, gzipMembers(v, [0.5])]));
          assert.deepEqual(
            withoutBytes(await load(dir, gz, true)).dump.songs.map((s) => ({ ...s, source_key: null })),
            withoutBytes(buffered).dump.songs.map((s) => ({ ...s, source_key: null })),
          );
          const array = await load(dir, arrays, false);
          // Valid files load the same rows either way (source_key differs by the key's name).
          const rows = (d: typeof array) =>
            d.dump.songs.map((s) => ({ ...s, source_key: String(s.source_key).replace(/\.(data|ndjson)$/, "") }));
          const validArrays = specs.every(([text]) => {
            try {
              return Array.isArray(JSON.parse(text));
            } catch {
              return false;
            }
          });
          if (validArrays) assert.deepEqual(rows(buffered), rows(array));
          // A line that is not JSON is rejected with its line number and its text as written.
          for (const r of buffered.dump.rejected_records) {
            const m = /^not JSON \(line (\d+)\)/.exec(String(r.reason));
            if (m === null) continue;
            const text = lines.get(String(r.key))!;
            assert.equal(r.raw, text.split("\n")[Number(m[1]) - 1]!.replace(/\r$/, "").trim());
            assert.equal(r.record_index, Number(m[1]) - 1);
          }
        },
      ),
      { numRuns: 40 },
    );
  });
});

Deno.test("formats: a gzip bomb is invalid past MAX_FILE_BYTES; corrupt gzip is invalid; one object is not NDJSON", async () => {
  await withTempDir(async (dir) => {
    const big = JSON.stringify(Array.from({ length: 2000 }, () => ({ type: "book", data: { pad: "x".repeat(100) } })));
    const bomb = new Uint8Array(gzipSync(encode(big)));
    const corrupt = bomb.slice(0, 40);
    const files = new Map<string, string | Uint8Array>([
      ["bomb.data", bomb],
      ["corrupt.data", corrupt],
      ["one.data", '{"type": "song", "data": {}}'],
      ["one.ndjson", '{"type": "song", "data": {"artist_name": "A", "title": "t", "year": 1, "release": ""}}'],
    ]);
    const db = join(dir, "db.sqlite3");
    const store = SqliteStore.open(db, { types: RECORD_TYPES });
    try {
      const report = await runPipeline({
        ...PIPELINE_DEFAULTS,
        source: new MemorySource(files),
        store,
        maxFileBytes: 100_000,
      });
      assert.equal(report.status, "ok");
      assert.deepEqual(report.invalidKeys.map((k) => k.key).sort(), ["bomb.data", "corrupt.data", "one.data"]);
      const reason = (key: string) => report.invalidKeys.find((k) => k.key === key)?.reason;
      assert.match(reason("bomb.data")!, /^too large: over 100000 bytes/);
      assert.match(reason("corrupt.data")!, /^not valid gzip: /);
      assert.equal(reason("one.data"), "expected a JSON array at the top level, got an object");
      assert.equal(report.filesLoaded, 1);
    } finally {
      store.close();
    }
  });
  assert.equal(sniffFormat("a.data", '{"a": 1}\n{"b": 2}', false), "ndjson");
  assert.equal(sniffFormat("a.data", '{"a": 1}\n', false), undefined);
  assert.equal(sniffFormat("a.data", '{"a": 1}\n', true), "array");
  assert.equal(sniffFormat("a.jsonl.gz", '{"a"', false), "ndjson");
  assert.equal(sniffFormat("a.data", "  [", false), "array");
});
