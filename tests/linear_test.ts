/**
 * A streamed body costs time in proportion to its length whatever its
 * chunks: the format sniffer and the line splitter look at each character
 * once (counted, not timed), and a whitespace-only body is the same
 * whole-file rejection however it arrives.
 *
 * @module
 */
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { FormatSniffer, LineSplitter, scanned } from "../mod/produce/formats.ts";
import { processBody, type Produced } from "../mod/produce/produce.ts";
import { processObjectStream, processStream } from "../mod/produce/streamed.ts";
import { Classifier, RECORD_TYPES } from "../mod/records/mod.ts";
import { runPipeline } from "../mod/run/pipeline.ts";
import { SqliteStore } from "../mod/store/sqlite/mod.ts";
import { PIPELINE_DEFAULTS, query, withTempDir } from "./helpers.ts";
import { MemorySource } from "./memory_source.ts";
import { join } from "node:path";

const MB = 1024 * 1024;
const options = (maxRecordChars?: number) => ({
  encoding: "utf-8",
  classifier: new Classifier(RECORD_TYPES, { ingestionTime: "t" }),
  processedAt: new Date(0),
  rawCap: 65_536,
  maxRecordChars,
  maxBytes: 1 << 30,
});

/** `bytes` as a stream of `size`-byte chunks (each made when read: the body is never copied whole). */
function chunked(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at += size));
    },
  });
}

/** The file a streamed body ends as (its parts dropped), or why it failed. */
async function outcome(
  stream: AsyncGenerator<Produced>,
): Promise<{ status: string; reason: string | undefined; bytes: number }> {
  for await (const p of stream) {
    if (p.kind === "file") {
      return { status: p.file.status, reason: p.file.rejections[0]?.reason, bytes: p.file.bytes };
    }
    if (p.kind !== "part") return { status: p.kind, reason: p.reason, bytes: 0 };
  }
  throw new Error("no file");
}

Deno.test("a 10 MB whitespace body, plain or gzip, in small chunks: each character is sniffed once", async () => {
  const body = new Uint8Array(10 * MB).fill(0x20);
  for (let i = 0; i < body.length; i += 4099) body[i] = 0x0a; // lines too, for the line splitter
  const cases = [
    { name: "plain, 16 KiB chunks", bytes: body, chunk: 16 * 1024 },
    { name: "plain, 1 KiB chunks", bytes: body, chunk: 1024 },
    { name: "gzip, 512-byte chunks", bytes: new Uint8Array(gzipSync(body)), chunk: 512 },
  ];
  for (const { name, bytes, chunk } of cases) {
    for (const max of [undefined, MB]) {
      scanned.sniffer = 0;
      scanned.lines = 0;
      const file = await outcome(processObjectStream("ws.data", chunked(bytes, chunk), options(max)));
      assert.deepEqual(file, { status: "invalid", reason: "empty body (whitespace only)", bytes: body.length }, name);
      assert.ok(scanned.sniffer <= 3 * body.length, `${name}: ${scanned.sniffer} characters sniffed`);
      assert.ok(scanned.lines <= 3 * body.length, `${name}: ${scanned.lines} characters split into lines`);
    }
  }
});

Deno.test("a long first line (an object, or NDJSON) is sniffed and split once", async () => {
  // One object of 10 MB on one line, then a second record: NDJSON (no record cap here, so that it is read).
  const record = `{"type": "book", "data": {"pad": "${"x".repeat(10 * MB)}"}}`;
  for (const text of [record, `${record}\n${record}\n`]) {
    const bytes = new TextEncoder().encode(text);
    scanned.sniffer = 0;
    scanned.lines = 0;
    const file = await outcome(processObjectStream("one.data", chunked(bytes, 16 * 1024), options()));
    const ndjson = text.endsWith("\n");
    assert.deepEqual(
      file,
      ndjson
        ? { status: "loaded", reason: undefined, bytes: bytes.length }
        : { status: "invalid", reason: "expected a JSON array at the top level, got an object", bytes: bytes.length },
    );
    assert.ok(scanned.sniffer <= 3 * bytes.length, `${scanned.sniffer} characters sniffed`);
    assert.ok(scanned.lines <= 3 * bytes.length, `${scanned.lines} characters split into lines`);
  }
});

Deno.test("FormatSniffer decides as the text arrives, character by character as at once", () => {
  const cases: [string, string, "array" | "ndjson"][] = [
    ["a.data", '{"a": 1}\n{"b": 2}', "ndjson"],
    ["a.data", '  \n {"a": 1}\r\n \n {"b": 2}', "ndjson"],
    ["a.data", '{"a": 1}\n  \n', "array"],
    ["a.data", '{"a": 1}', "array"],
    ["a.jsonl.gz", '{"a"', "ndjson"],
    ["a.ndjson", "  [1]", "array"],
    ["a.data", " \u00a0 [", "array"],
    ["a.data", "   ", "array"],
    ["a.data", "", "array"],
  ];
  for (const [key, text, format] of cases) {
    const whole = new FormatSniffer(key);
    assert.equal(whole.push(text) ?? whole.end(), format, JSON.stringify(text));
    const bits = new FormatSniffer(key);
    let got: string | undefined;
    for (const c of text) got ??= bits.push(c);
    assert.equal(got ?? bits.end(), format, `${JSON.stringify(text)} one character at a time`);
  }
});

Deno.test("LineSplitter: the same lines whatever the chunks, and the cap on a line split across chunks", () => {
  const text = 'a\r\nbb\n\n  \nccc\r\n{"x": 1}';
  for (let size = 1; size <= text.length; size++) {
    const s = new LineSplitter();
    const lines: string[] = [];
    for (let i = 0; i < text.length; i += size) lines.push(...s.push(text.slice(i, i + size)));
    lines.push(...s.end());
    assert.deepEqual(lines, ["a", "bb", "", "  ", "ccc", '{"x": 1}'], `chunks of ${size}`);
  }
  const s = new LineSplitter(5);
  assert.deepEqual(s.push("ab\ncd", 7), ["ab"]);
  assert.throws(
    () => s.push("efgh"),
    /^RecordTooLargeError: record 0 is too large: more than 5 characters \(MAX_RECORD_BYTES\)$/,
  );
  assert.throws(() => new LineSplitter(3).push("ab\ncdef\n", 2), /record 3 is too large/);
});

Deno.test("whitespace only: 'empty body (whitespace only)' buffered, streamed, gzip and in the pipeline alike", async () => {
  const bodies = ["  ", " \n\t\r\n", "\ufeff \n", " \f\u00a0\u2028 ", " ".repeat(2 * MB), "\n".repeat(2 * MB)];
  for (const text of bodies) {
    const bytes = new TextEncoder().encode(text);
    const label = `${JSON.stringify(text.slice(0, 8))} (${bytes.length} bytes)`;
    const buffered = processBody("k", bytes, options(MB));
    assert.equal(buffered.rejections[0]?.reason, "empty body (whitespace only)", label);
    for (const chunk of bytes.length > 1000 ? [4096, bytes.length] : [1, 7, bytes.length]) {
      const via = [
        processObjectStream("k.data", chunked(bytes, chunk), options(MB)),
        processObjectStream("k.ndjson", chunked(bytes, chunk), options(MB)),
        processObjectStream("k.data", chunked(new Uint8Array(gzipSync(bytes)), chunk), options(MB)),
        processStream("k.data", chunked(bytes, chunk), options(MB)),
      ];
      for (const stream of via) {
        const file = await outcome(stream);
        assert.deepEqual(
          file,
          { status: "invalid", reason: "empty body (whitespace only)", bytes: bytes.length },
          label,
        );
      }
    }
  }
  const empty = await outcome(processObjectStream("k.data", chunked(new Uint8Array(), 1), options(MB)));
  assert.deepEqual(empty, { status: "invalid", reason: "empty body", bytes: 0 });
  // Through the pipeline, read whole and streamed: one whole-file rejection, with that reason.
  await withTempDir(async (dir) => {
    for (const stream of [false, true]) {
      const db = join(dir, `${stream}.sqlite3`);
      const store = SqliteStore.open(db, { types: RECORD_TYPES });
      try {
        const files = new Map([["ws.data", " \n ".repeat(100_000)], ["ws.ndjson", "\n\n"]]);
        const report = await runPipeline({
          ...PIPELINE_DEFAULTS,
          source: new MemorySource(files, 1000),
          store,
          streamThresholdBytes: stream ? 0 : 1 << 30,
        });
        assert.deepEqual(report.invalidKeys, [
          { key: "ws.data", reason: "empty body (whitespace only)" },
          { key: "ws.ndjson", reason: "empty body (whitespace only)" },
        ]);
      } finally {
        store.close();
      }
      assert.deepEqual(query(db, "SELECT key, record_index, reason FROM rejected_records ORDER BY key"), [
        { key: "ws.data", record_index: null, reason: "empty body (whitespace only)" },
        { key: "ws.ndjson", record_index: null, reason: "empty body (whitespace only)" },
      ]);
    }
  });
});

Deno.test("whitespace before the first value, longer than MAX_RECORD_BYTES, is counted, not held", async () => {
  // The splitters count it: positions in reasons, and NDJSON line numbers, are those of the whole text.
  const lead = "\n".repeat(MB) + " ".repeat(100);
  const cases: [string, string, string | undefined, number][] = [
    ["a.data", `${lead}[1, }`, `not JSON: unexpected "}" at character ${lead.length + 4}`, 0],
    ["a.data", `${lead}[{"type": "book", "data": {}}]`, undefined, 0],
    ["a.ndjson", `${lead}{"type": "book", "data": {}}\n{x}`, undefined, 1],
    ["a.data", `${lead}{"type": "book"}\n{"type": "book"}`, undefined, 0],
    // A top level that is not an array and is longer than the cap is not parsed whole.
    ["a.data", `${lead}{"type": "book"}`, "expected a JSON array at the top level; the text is not one", 0],
    ["a.data", `${lead}42`, "expected a JSON array at the top level; the text is not one", 0],
  ];
  for (const [key, text, reason, rejected] of cases) {
    let file: Produced | undefined;
    for await (const p of processObjectStream(key, chunked(new TextEncoder().encode(text), 4096), options(MB))) {
      file = p;
    }
    assert.equal(file?.kind, "file");
    if (file?.kind !== "file") continue;
    if (reason === undefined) {
      assert.equal(file.file.status, "loaded", key);
      assert.equal(file.file.rejections.length, rejected);
      if (rejected) assert.equal(file.file.rejections[0]!.index, MB + 1);
    } else assert.ok(file.file.rejections[0]?.reason?.startsWith(reason), `${file.file.rejections[0]?.reason}`);
  }
});
