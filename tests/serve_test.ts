/**
 * `serve`: the status page as a browser renders it (headless Chromium, from
 * Debian's `chromium`), the JSON document `status --json` prints, the health
 * check, STATUS_TOKEN, and hostile keys and records shown as text. Started
 * through the launcher, as `deno task run serve` starts it, so that its
 * permissions (listen, read-only) are the real ones.
 *
 * Screenshots go to `$BL_SCREENSHOTS` when set (to look at), else a
 * temporary folder.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startBucketServer } from "./bucket_server.ts";
import { cli, LAUNCHER, LineWatcher, withTempDir, writeConfig } from "./helpers.ts";

const HOSTILE_KEY = "<img src=x onerror=alert(1)>.data";
const HOSTILE_NAME = "<script>document.title='pwned'</script>";
const HOSTILE_FIELD = "<b onclick=alert(2)>genre</b>";

const file = (records: unknown[]) => JSON.stringify(records, null, 2);
const song = (title: string) => ({ data: { artist_name: "A", title, year: 2001, release: "R" }, type: "song" });

/** A bucket for two runs: the second list adds a file; one key is hostile and missing, one record hostile. */
async function writeBucket(dir: string) {
  await Deno.mkdir(join(dir, "bucket"));
  await Deno.writeTextFile(
    join(dir, "bucket", "a.data"),
    file([
      song("One"),
      song("Two"),
      { data: { name: HOSTILE_NAME, genre: "Games", rating: 9.5, version: "1", size_bytes: 10 }, type: "app" },
    ]),
  );
  // A field the rules do not know, with a hostile name and value: drift, shown as text.
  const drifted = { data: { ...song("Six").data, [HOSTILE_FIELD]: "<i>rock</i>" }, type: "song" };
  await Deno.writeTextFile(join(dir, "bucket", "b.data"), file([song("Three"), song("Four"), song("Five"), drifted]));
  await Deno.writeTextFile(join(dir, "bucket", "files_list.data"), `a.data\n${HOSTILE_KEY}`);
}

/** `launch.ts serve` as `deno task run serve` runs it; resolves with its URL once it listens. */
async function startServe(config: string, extraArgs: string[] = [], env: Record<string, string> = {}) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      ...LAUNCHER,
      "serve",
      "--config",
      config,
      "--profile",
      "p",
      "--port",
      "0",
      ...extraArgs,
    ],
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log = new LineWatcher(child.stderr);
  await log.waitFor(/Serving the status page on http:\/\/127\.0\.0\.1:\d+\//);
  const line = log.lines.find((l) => /Serving the status page/.test(l));
  if (line === undefined) {
    await log.cancel();
    throw new Error(`serve did not start:\n${log.lines.join("\n")}`);
  }
  const url = /http:\/\/127\.0\.0\.1:\d+\//.exec(line)![0];
  return {
    url,
    log,
    stop: async () => {
      child.kill("SIGTERM");
      const drained = log.drain();
      const status = await child.status;
      await drained;
      return status;
    },
  };
}

async function chromium(args: string[]): Promise<string> {
  const out = await new Deno.Command("chromium", {
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run", ...args],
    stdout: "piped",
    stderr: "null",
  }).output();
  assert.ok(out.success, `chromium exited ${out.code}`);
  return new TextDecoder().decode(out.stdout);
}

/** Whether Chromium is here; CI must have it (`deno task test` installs it), elsewhere its test is skipped. */
const HAS_CHROMIUM = await new Deno.Command("chromium", { args: ["--version"], stdout: "null", stderr: "null" })
  .output().then((o) => o.success, () => false);
if (!HAS_CHROMIUM && Deno.env.get("CI") !== "true") {
  console.log(
    "NOTICE: the status page's browser test is skipped: chromium is not installed (deno task test installs it)",
  );
}

Deno.test({
  name: "serve: Chromium renders the runs chart, the runs, a rejection's reason and hostile text as text",
  ignore: !HAS_CHROMIUM && Deno.env.get("CI") !== "true",
}, async () => {
  await withTempDir(async (dir) => {
    await writeBucket(dir);
    const bucket = await startBucketServer(join(dir, "bucket"));
    try {
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${bucket.url}\nDATABASE_NAME = db.sqlite3\n`);
      assert.equal((await cli(["--config", config, "--profile", "p", "--quiet"])).code, 0);
      await Deno.writeTextFile(join(dir, "bucket", "files_list.data"), `a.data\n${HOSTILE_KEY}\nb.data`);
      assert.equal((await cli(["--config", config, "--profile", "p", "--quiet"])).code, 0);
      const serve = await startServe(config);
      try {
        // What a browser renders (scripts run, were there any).
        const dom = await chromium(["--dump-dom", serve.url]);
        assert.match(dom, /<svg id="runs-chart"/);
        assert.ok((dom.match(/<rect /g) ?? []).length >= 2, "the chart has no bars");
        const runsTable = /<table id="runs">([\s\S]*?)<\/table>/.exec(dom)?.[1] ?? "";
        assert.equal((runsTable.match(/<tr>/g) ?? []).length, 3, "two runs and the header");
        assert.match(dom, /rating: expected a number 0–5/);
        // Its sample record, from its file: the hostile name as text.
        assert.match(dom, /sample from <code>a\.data<\/code>/);
        assert.ok(dom.includes("&lt;script&gt;document.title="), "the rejected record's sample is not shown as text");
        // The hostile key and record are text: escaped in the DOM, never elements.
        assert.ok(dom.includes("&lt;img src=x onerror=alert(1)&gt;.data"), "the hostile key is not shown as text");
        assert.ok(!/<img/i.test(dom), "an <img> element was made from a key");
        assert.ok(!dom.includes("<script>document.title"), "a <script> element was made from a record");
        assert.doesNotMatch(dom, /<title>pwned/);
        // The drift table: the unknown field by name, escaped, with its count and example.
        const drift = /<table id="drift">([\s\S]*?)<\/table>/.exec(dom)?.[1] ?? "";
        assert.ok(
          drift.includes("&lt;b onclick=alert(2)&gt;genre&lt;/b&gt;"),
          `the drift table lacks the field: ${drift}`,
        );
        assert.match(drift, /unknown field \(string\)/);
        assert.ok(drift.includes("&lt;i&gt;rock&lt;/i&gt;"));
        assert.ok(!/<b onclick/i.test(dom), "a <b> element was made from a field name");
        const shots = Deno.env.get("BL_SCREENSHOTS") ?? dir;
        await Deno.mkdir(shots, { recursive: true });
        const sizes: [string, string][] = [["serve-1280.png", "1280,2200"], ["serve-phone.png", "390,2600"]];
        for (const [name, size] of sizes) {
          await chromium([`--screenshot=${join(shots, name)}`, `--window-size=${size}`, serve.url]);
          assert.ok((await Deno.stat(join(shots, name))).size > 10_000, `${name} is empty`);
        }
        // The JSON is status --json's document; /health answers.
        const api = await (await fetch(new URL("api/status", serve.url))).json();
        const status = JSON.parse((await cli(["status", "--json", "--config", config, "--profile", "p"])).stdout);
        assert.deepEqual(api, status);
        assert.deepEqual(await (await fetch(new URL("health", serve.url))).json(), { ok: true });
        assert.equal((await fetch(new URL("nowhere", serve.url))).status, 404);
      } finally {
        const status = await serve.stop();
        assert.equal(status.code, 0, serve.log.lines.join("\n"));
      }
      // Read-only: the database was not written by serve (its runs are the two runs').
      const after = JSON.parse((await cli(["status", "--json", "--config", config, "--profile", "p"])).stdout);
      assert.equal(after.runs.length, 2);
    } finally {
      await bucket.close();
    }
  });
});

Deno.test("serve: with STATUS_TOKEN, / and /api/status need it; /health stays open; without, a warning", async () => {
  await withTempDir(async (dir) => {
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ./bucket\nDATABASE_NAME = db.sqlite3\n`);
    const open = await startServe(config);
    try {
      assert.ok(open.log.lines.some((l) => /STATUS_TOKEN is not set/.test(l)), "no warning without a token");
      // No database yet: an empty report, not an error.
      const empty = await (await fetch(new URL("api/status", open.url))).json();
      assert.deepEqual(empty.runs, []);
    } finally {
      await open.stop();
    }
    const secured = await startServe(config, [], { BUCKETLOAD_STATUS_TOKEN: "s3cret" });
    try {
      for (const path of ["", "api/status"]) {
        assert.equal((await fetch(new URL(path, secured.url))).status, 401);
        assert.equal((await fetch(new URL(`${path}?token=wrong`, secured.url))).status, 401);
        const ok = await fetch(new URL(path, secured.url), { headers: { authorization: "Bearer s3cret" } });
        assert.equal(ok.status, 200);
        await ok.body?.cancel();
        const query = await fetch(new URL(`${path}?token=s3cret`, secured.url));
        assert.equal(query.status, 200);
        await query.body?.cancel();
      }
      assert.equal((await fetch(new URL("health", secured.url))).status, 200);
      assert.ok(!secured.log.lines.some((l) => /STATUS_TOKEN is not set/.test(l)));
    } finally {
      await secured.stop();
    }
  });
});

Deno.test("serve: a port that does not parse, or one in use, is a usage error naming --port (exit 2)", async () => {
  const bad = await cli(["serve", "--port", "http"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--port/);
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    await withTempDir(async (dir) => {
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ./bucket\nDATABASE_NAME = db.sqlite3\n`);
      const busy = await cli(["serve", "--config", config, "--profile", "p", "--port", String(taken.addr.port)]);
      assert.equal(busy.code, 2, busy.stderr);
      assert.match(busy.stderr, /Cannot listen on 127\.0\.0\.1:\d+/);
    });
  } finally {
    taken.close();
  }
});
