/**
 * Memory stays bounded whatever the bodies hold: gzip bombs sent with
 * `Content-Encoding` (a small Content-Length, a huge body once fetch
 * inflates it) at full concurrency, a single huge record, whitespace bombs,
 * and records of 500–900 KB (parts and the queue to the writer are bounded by
 * their text, not only by their count).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runPipeline } from "../mod/run/pipeline.ts";
import { PART_ELEMENTS, PART_TEXT_CHARS, type Produced, type Producer } from "../mod/produce/produce.ts";
import { AHEAD_TEXT_CHARS, workerProducer } from "../mod/produce/worker_producer.ts";
import { RECORD_TYPES } from "../mod/records/mod.ts";
import type { BucketSource } from "../mod/source/source.ts";
import { SqliteStore } from "../mod/store/sqlite/mod.ts";
import { startBucketServer } from "./bucket_server.ts";
import {
  dumpDatabase,
  FIXED_NOW,
  LineWatcher,
  PIPELINE_DEFAULTS,
  runOnce,
  spawnCli,
  withTempDir,
  writeConfig,
} from "./helpers.ts";
import { MemorySource } from "./memory_source.ts";

/** gzip of `head`, then `size` bytes of `fill`, then `tail`, made as a stream (never whole in memory). */
async function gzipped(head: string, fill: string, size: number, tail: string): Promise<Uint8Array<ArrayBuffer>> {
  const chunk = new TextEncoder().encode(fill.repeat(Math.ceil((1 << 20) / fill.length)).slice(0, 1 << 20));
  const stream = new ReadableStream<Uint8Array<ArrayBuffer>>({
    start(controller) {
      controller.enqueue(new TextEncoder().encode(head));
      for (let n = 0; n < size; n += chunk.length) controller.enqueue(chunk);
      controller.enqueue(new TextEncoder().encode(tail));
      controller.close();
    },
  }).pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The peak resident memory of `pid` while `done` is pending, sampled with `ps` every 50 ms (MB). */
async function peakRss(pid: number, done: Promise<unknown>): Promise<number> {
  let peak = 0, finished = false;
  done.finally(() => finished = true);
  while (!finished) {
    const out = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)], stdout: "piped" }).output();
    const kb = Number(new TextDecoder().decode(out.stdout).trim());
    if (Number.isFinite(kb)) peak = Math.max(peak, kb / 1024);
    await new Promise((r) => setTimeout(r, 50));
  }
  return peak;
}

Deno.test("gzip bombs with Content-Encoding at full concurrency and a huge record: memory stays bounded", async () => {
  const song = (title: string) =>
    `{"type": "song", "data": {"artist_name": "A", "title": "${title}", "year": 1, "release": "R"}}`;
  // 160 MB once inflated: one record whose string never ends (over MAX_RECORD_BYTES), and many small records.
  const huge = await gzipped(`[${song("ok")}, {"type": "song", "data": {"title": "`, "a", 160 << 20, `"}}]`);
  const many = await gzipped("[", `${song("x")},`, 160 << 20, `${song("last")}]`);
  const files = new Map<string, Uint8Array<ArrayBuffer>>();
  for (let i = 0; i < 4; i++) files.set(`huge-${i}.data`, huge);
  for (let i = 0; i < 4; i++) files.set(`many-${i}.data`, many);
  files.set("plain.data", new TextEncoder().encode(`[${song("plain")}]`));
  const list = [...files.keys()].join("\n");
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const key = decodeURIComponent(new URL(request.url).pathname.slice(1));
    if (key === "files_list.data") return new Response(list);
    const body = files.get(key);
    if (body === undefined) return new Response("no", { status: 404 });
    const gz = key !== "plain.data";
    return new Response(body, {
      headers: gz ? { "content-encoding": "gzip", "content-length": String(body.length) } : {},
    });
  });
  try {
    await withTempDir(async (dir) => {
      const config = await writeConfig(
        dir,
        `[p]\nBUCKET_NAME = http://127.0.0.1:${server.addr.port}/\nCONCURRENCY = 8\nMAX_FILE_BYTES = 120000000\n` +
          `DATABASE_NAME = db.sqlite3\nLOG_LEVEL = warning\n`,
      );
      const child = spawnCli(["--config", config, "--profile", "p", "--json"]);
      const stderr = new LineWatcher(child.stderr);
      const status = child.status;
      const [peak, out] = await Promise.all([peakRss(child.pid, status), new Response(child.stdout).text()]);
      await stderr.waitFor(/^\0 the end$/);
      assert.equal((await status).code, 0, stderr.lines.join("\n"));
      const summary = JSON.parse(out);
      assert.equal(summary.files.loaded, 1, out);
      assert.equal(summary.files.invalid, 8, out);
      const reasons = stderr.lines.join("\n");
      assert.match(reasons, /huge-0\.data: record 1 is too large: more than 1048576 characters \(MAX_RECORD_BYTES\)/);
      assert.match(reasons, /many-0\.data: .*too large/);
      // 8 bodies of 120 MB each would be ~1 GB held at once; the budget keeps the process far below.
      assert.ok(peak < 400, `peak RSS ${peak.toFixed(0)} MB`);
      console.log(`peak RSS ${peak.toFixed(0)} MB`);
    });
  } finally {
    await server.shutdown();
  }
});

/** A JSON array of `count` song records of about `size` characters each (a long title), one per line. */
function bigRecords(count: number, size: number, tag = ""): Uint8Array<ArrayBuffer> {
  const records = Array.from({ length: count }, (_, i) => {
    const title = String.fromCharCode(97 + i % 26).repeat(size - 100);
    return `{"type": "song", "data": {"artist_name": "A${tag}${i}", "title": "${title}", "year": ${
      1900 + i
    }, "release": "R"}}`;
  });
  return new TextEncoder().encode(`[\n${records.join(",\n")}\n]\n`);
}

/** Characters of text in a part's rows and rejections: what it holds, measured apart from its own count. */
function payloadChars(
  part: { rows: ReadonlyMap<string, { cells: readonly unknown[] }>; rejections: readonly { raw: string | null }[] },
) {
  let chars = 0;
  for (const { cells } of part.rows.values()) for (const c of cells) chars += typeof c === "string" ? c.length : 8;
  for (const r of part.rejections) chars += r.raw?.length ?? 0;
  return chars;
}

Deno.test("records of 500 KB over HTTP: parts and the queue to the writer stay within their text bounds; rows equal a whole read", async () => {
  const body = bigRecords(120, 500 * 1024); // 60 MB
  await withTempDir(async (dir) => {
    const server = await startBucketServer(dir, { files: { "files_list.data": "big.data\n", "big.data": body } });
    try {
      const settings = {
        encoding: "utf-8",
        dateStoreFormat: "%Y-%m-%d %H:%M:%S",
        concurrency: 8,
        maxFileBytes: 1 << 30,
        maxRejectedRawBytes: 65_536,
        streamThresholdBytes: 32 << 20,
        maxRecordBytes: 1 << 20,
      };
      const spec = {
        kind: "http",
        display: server.url,
        base: server.url,
        authorization: undefined,
        timeoutMs: 20_000,
        retries: 1,
        retryBaseMs: 5,
      } as const;
      let ahead = 0;
      const worker = workerProducer(spec, settings, {
        fixedNow: FIXED_NOW().getTime(),
        onAhead: (c) => ahead = Math.max(ahead, c),
      });
      const messages: Produced[] = [];
      const producer: Producer = async function* (keys, signal) {
        for await (const produced of worker(keys, signal)) {
          messages.push(produced);
          yield produced;
        }
      };
      const streamed = join(dir, "streamed.sqlite3");
      const report = await runOnce(server.url, streamed, { ...settings, producer });
      assert.equal(report.filesLoaded, 1);
      assert.equal(report.loaded.song, 120);
      // Every part, and the file's last rows, within both bounds: by the count it declares and by what it holds.
      const parts = messages.filter((m) => m.kind === "part" || m.kind === "file");
      assert.ok(parts.length >= 50, `${parts.length} messages for 60 MB`);
      for (const m of parts) {
        const part = m.kind === "part" ? m.part : m.kind === "file" ? m.file : undefined;
        if (part === undefined || (m.kind !== "part" && m.kind !== "file")) continue;
        const elements = part.records + part.rejections.length + [...part.ignored.values()].reduce((a, b) => a + b, 0);
        assert.ok(elements <= PART_ELEMENTS);
        assert.ok((m.chars ?? 0) <= PART_TEXT_CHARS, `a part of ${m.chars} characters`);
        assert.ok(payloadChars(part) <= PART_TEXT_CHARS, `a part holding ${payloadChars(part)} characters`);
      }
      assert.ok(ahead <= AHEAD_TEXT_CHARS, `${ahead} characters queued for the writer`);
      // The same bytes read whole (one body, parsed at once) give the same tables.
      const whole: BucketSource = {
        display: "memory:",
        get: (key, o) => new MemorySource(new Map([["big.data", body]])).get(key, { ...o, streamOverBytes: undefined }),
      };
      const buffered = join(dir, "buffered.sqlite3");
      const store = SqliteStore.open(buffered, { types: RECORD_TYPES });
      try {
        await runPipeline({
          ...PIPELINE_DEFAULTS,
          source: whole,
          store,
          maxRecordBytes: 1 << 30,
          maxFileBytes: 1 << 30,
        });
      } finally {
        store.close();
      }
      assert.deepEqual(dumpDatabase(streamed), dumpDatabase(buffered));
    } finally {
      await server.close();
    }
  });
});

Deno.test("records of 900 KB and whitespace bombs at CONCURRENCY 8: memory does not grow with the records' size", async () => {
  // 3 files of ~100 MB of 900 KB records (one 100 MB message each before parts were bounded by their text), and 8
  // gzip bodies of 100 MB of whitespace sent with Content-Encoding (each looked at once, none held).
  const files = new Map<string, Uint8Array<ArrayBuffer>>();
  for (let i = 0; i < 3; i++) files.set(`big-${i}.data`, bigRecords(110, 900 * 1024, `${i}-`));
  const space = await gzipped(" ", "\n  \t  \r\n ", 100 << 20, " ");
  for (let i = 0; i < 8; i++) files.set(`space-${i}.data`, space);
  const list = [...files.keys()].join("\n");
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
    const key = decodeURIComponent(new URL(request.url).pathname.slice(1));
    if (key === "files_list.data") return new Response(list);
    const body = files.get(key);
    if (body === undefined) return new Response("no", { status: 404 });
    const gz = key.startsWith("space-");
    return new Response(body, {
      headers: gz ? { "content-encoding": "gzip", "content-length": String(body.length) } : {},
    });
  });
  try {
    await withTempDir(async (dir) => {
      const config = await writeConfig(
        dir,
        `[p]\nBUCKET_NAME = http://127.0.0.1:${server.addr.port}/\nCONCURRENCY = 8\nMAX_FILE_BYTES = 120000000\n` +
          `DATABASE_NAME = db.sqlite3\nLOG_LEVEL = warning\n`,
      );
      const child = spawnCli(["--config", config, "--profile", "p", "--json"]);
      const stderr = new LineWatcher(child.stderr);
      const status = child.status;
      const [peak, out] = await Promise.all([peakRss(child.pid, status), new Response(child.stdout).text()]);
      await stderr.waitFor(/^\0 the end$/);
      assert.equal((await status).code, 0, stderr.lines.join("\n"));
      const summary = JSON.parse(out);
      assert.equal(summary.files.loaded, 3, out);
      assert.equal(summary.records.valid.song, 330, out);
      assert.equal(summary.files.invalid, 8, out);
      assert.equal(stderr.lines.filter((l) => /space-\d\.data: empty body \(whitespace only\)/.test(l)).length, 8);
      // Before parts were bounded by their text, this peaked at over 1 GB (each file one message, cloned to the writer).
      assert.ok(peak < 600, `peak RSS ${peak.toFixed(0)} MB`);
      console.log(`peak RSS ${peak.toFixed(0)} MB`);
    });
  } finally {
    await server.shutdown();
  }
});
