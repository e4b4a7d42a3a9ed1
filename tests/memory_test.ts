/**
 * Memory stays bounded whatever the bodies hold: gzip bombs sent with
 * `Content-Encoding` (a small Content-Length, a huge body once fetch
 * inflates it) at full concurrency, and a single huge record.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LineWatcher, spawnCli, withTempDir, writeConfig } from "./helpers.ts";

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
