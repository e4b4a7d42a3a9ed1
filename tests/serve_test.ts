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
import { renderPage } from "../mod/commands/page.ts";
import { serveAction } from "../mod/commands/serve.ts";
import { resolveConfig } from "../mod/config/config.ts";
import { emptyStatus, type RunRow } from "../mod/store/status.ts";
import { startBucketServer } from "./bucket_server.ts";
import { cli, DENO_CACHE_ENV, LAUNCHER, LineWatcher, withTempDir, writeConfig } from "./helpers.ts";

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

/**
 * `launch.ts serve` as `deno task run serve` runs it; resolves with its URL once it listens. With `ulimit`, it is
 * started under that many file descriptors (`ulimit -n`).
 */
async function startServe(
  config: string,
  extraArgs: string[] = [],
  env: Record<string, string> = {},
  { ulimit }: { ulimit?: number } = {},
) {
  const wrap = ulimit === undefined ? [] : ["-c", 'ulimit -n "$0" && exec "$@"', String(ulimit), Deno.execPath()];
  const child = new Deno.Command(ulimit === undefined ? Deno.execPath() : "bash", {
    args: [
      ...wrap,
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
    env: { NO_COLOR: "1", ...DENO_CACHE_ENV, ...env },
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
  let exited = false;
  child.status.then(() => exited = true);
  return {
    url,
    log,
    /** Whether the process has ended (by itself: `stop` was not called). */
    exited: () => exited,
    stop: async () => {
      child.kill("SIGTERM");
      // Read to the end, keeping the lines (a pattern that never matches).
      const drained = log.waitFor(/(?!)/);
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

/** A run of `inserted` rows taking `seconds`, for the chart. */
function chartRun(id: number, inserted: number, seconds: number): RunRow {
  const started = Date.UTC(2026, 11, 1, 11, 0, 0) + id * 3600_000;
  return {
    id,
    started_at: new Date(started).toISOString(),
    finished_at: new Date(started + seconds * 1000).toISOString(),
    status: "ok",
    files_listed: 500,
    files_new: 500,
    files_loaded: 500,
    files_invalid: 0,
    files_missing: 0,
    files_failed: 0,
    files_refused: 0,
    files_claimed_elsewhere: 0,
    records_loaded: inserted,
    records_rejected: 12,
    records_ignored: 0,
    rows_inserted: inserted,
    rows_updated: 1000,
    rows_removed: 2,
  };
}

/**
 * Measures, in Chromium, every label of the runs chart in the chart's own
 * units (`getBBox`): the page's script-free HTML with a measuring script
 * added, loaded from a file at `width` px. The page sent by `serve` allows
 * no script (its CSP), so the measure runs on a copy.
 */
async function measureChart(html: string, dir: string, width: number) {
  const script = `<script>
    const svg = document.getElementById("runs-chart");
    const [, , w, h] = svg.getAttribute("viewBox").split(" ").map(Number);
    const labels = [...svg.querySelectorAll("text")].map((t) => {
      const b = t.getBBox();
      return { text: t.textContent, x: b.x, y: b.y, width: b.width, height: b.height };
    });
    const fontSize = getComputedStyle(svg.querySelector("text")).fontSize;
    const out = document.createElement("pre");
    out.id = "measured";
    out.textContent = JSON.stringify({ w, h, fontSize, labels });
    document.body.append(out);
  </script>`;
  const path = join(dir, `chart-${width}.html`);
  await Deno.writeTextFile(path, html.replace("</body>", `${script}</body>`));
  const dom = await chromium(["--dump-dom", `--window-size=${width},1200`, `file://${path}`]);
  const found = /<pre id="measured">(.*?)<\/pre>/s.exec(dom);
  assert.ok(found !== null, "the measuring script did not run");
  return JSON.parse(found[1]!.replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&amp;", "&")) as {
    w: number;
    h: number;
    fontSize: string;
    labels: { text: string; x: number; y: number; width: number; height: number }[];
  };
}

Deno.test({
  name: "serve: the chart's axis labels fit in the chart at 390 px and 1280 px (122,614 rows, 1,234.5 s)",
  ignore: !HAS_CHROMIUM && Deno.env.get("CI") !== "true",
}, async () => {
  await withTempDir(async (dir) => {
    const at = new Date(Date.UTC(2026, 11, 1, 15, 0, 0));
    const few = [chartRun(1, 121_600, 1234.5), chartRun(2, 5_000, 3.2), chartRun(3, 80_000, 44.1)];
    // 30 runs (the chart's most) with four-digit ids: the run labels thin out rather than overlap.
    const many = Array.from({ length: 30 }, (_, i) => chartRun(1201 + i, 1_000 + 4_000 * (i % 7), 5 + (i % 5)));
    const shots = Deno.env.get("BL_SCREENSHOTS") ?? dir;
    await Deno.mkdir(shots, { recursive: true });
    for (
      const [name, history, want] of [
        ["few", few, ["122,614", "0", "1234.5 s", "0 s", "1", "2", "3"]],
        ["many", many, ["26,014", "0", "9.0 s", "0 s", "1201"]],
      ] as const
    ) {
      const report = { ...emptyStatus("/srv/db.sqlite3"), history, runs: [...history].reverse() };
      const html = renderPage(report, at);
      for (const width of [390, 1280]) {
        const { w, h, fontSize, labels } = await measureChart(html, dir, width);
        // The phone layout's larger font is the one that clips.
        if (width === 390) assert.equal(fontSize, "24px");
        const texts = labels.map((l) => l.text);
        for (const label of want) assert.ok(texts.includes(label), `${name}: no label ${label}: ${texts}`);
        const box = (l: (typeof labels)[number]) =>
          `${l.text} at ${width} px: x ${l.x.toFixed(1)}–${(l.x + l.width).toFixed(1)}, ` +
          `y ${l.y.toFixed(1)}–${(l.y + l.height).toFixed(1)} of ${w}×${h}`;
        for (const l of labels) {
          assert.ok(l.x >= 0 && l.x + l.width <= w && l.y >= 0 && l.y + l.height <= h, `clipped: ${box(l)}`);
        }
        // The run labels along the bottom do not overlap.
        const runLabels = labels.filter((l) => /^\d+$/.test(l.text) && l.y > h / 2 && l.text !== "0");
        runLabels.sort((a, b) => a.x - b.x);
        for (let i = 1; i < runLabels.length; i++) {
          const [a, b] = [runLabels[i - 1]!, runLabels[i]!];
          assert.ok(a.x + a.width <= b.x, `overlap: ${box(a)} and ${box(b)}`);
        }
      }
      // To look at: the chart at a phone's width.
      const page = join(dir, `chart-${name}.html`);
      await Deno.writeTextFile(page, html);
      const shot = join(shots, `chart-${name}-390.png`);
      await chromium([`--screenshot=${shot}`, "--window-size=390,900", `file://${page}`]);
      assert.ok((await Deno.stat(shot)).size > 10_000);
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
      // Without it: the page is the login form, the JSON one line naming the form and the header.
      const form = await fetch(secured.url);
      assert.equal(form.status, 401);
      const formHtml = await form.text();
      assert.match(formHtml, /<form method="post" action="login"/);
      assert.match(formHtml, /<input [^>]*name="token"/);
      assert.doesNotMatch(formHtml, /runs-chart/);
      const api = await fetch(new URL("api/status", secured.url));
      assert.equal(api.status, 401);
      assert.match((await api.json()).error, /Authorization: Bearer <STATUS_TOKEN>.*log in with the form at \//);
      for (const path of ["", "api/status"]) {
        const ok = await fetch(new URL(path, secured.url), { headers: { authorization: "Bearer s3cret" } });
        assert.equal(ok.status, 200);
        await ok.body?.cancel();
        // A token in the URL is refused, right or wrong: URLs are logged and traced.
        for (const given of ["wrong", "s3cret"]) {
          const query = await fetch(new URL(`${path}?token=${given}`, secured.url));
          assert.equal(query.status, 401, `${path}?token=${given}`);
          assert.match((await query.json()).error, /token in the URL is refused.*form at \/.*Authorization: Bearer/);
        }
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
      assert.match(busy.stderr, /Cannot listen on 127\.0\.0\.1:\d+: the address is in use \(give --port N/);
    });
  } finally {
    taken.close();
  }
});

/** Sends `request` as written on a new connection to `url`'s port; the answer, read to the end. */
async function rawHttp(url: string, request: string): Promise<{ status: number; head: string; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(url).port) });
  await conn.write(new TextEncoder().encode(request));
  // The stream closes the connection at its end.
  const text = await new Response(conn.readable).text();
  const [head = "", body = ""] = text.split(/\r\n\r\n(.*)/s);
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]), head, body };
}

/** A browser's login: the form posted with `token`; the answer. */
const logIn = (url: string, token: string, headers: Record<string, string> = {}) =>
  fetch(new URL("login", url), {
    method: "POST",
    body: new URLSearchParams({ token }),
    headers: { origin: new URL(url).origin, "sec-fetch-site": "same-origin", ...headers },
    redirect: "manual",
  });

Deno.test("serve: a browser logs in with the form: a cookie (HttpOnly, SameSite=Strict) that is not the token, links without it, log out", async () => {
  await withTempDir(async (dir) => {
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ./bucket\nDATABASE_NAME = db.sqlite3\n`);
    const env = { BUCKETLOAD_STATUS_TOKEN: "s3cret-Token" };
    let cookie: string;
    const serve = await startServe(config, [], env);
    try {
      // A wrong token: the form again, no cookie.
      const wrong = await logIn(serve.url, "s3cret-Tokem");
      assert.equal(wrong.status, 401);
      assert.equal(wrong.headers.getSetCookie().length, 0);
      assert.match(await wrong.text(), /wrong token[\s\S]*<form method="post" action="login"/i);
      // The right one: 303 to the page, with the session cookie.
      const login = await logIn(serve.url, "s3cret-Token");
      await login.body?.cancel();
      assert.equal(login.status, 303);
      assert.equal(login.headers.get("location"), "./");
      const [set] = login.headers.getSetCookie();
      assert.ok(set !== undefined, "no Set-Cookie");
      assert.match(set, /; HttpOnly/i);
      assert.match(set, /; SameSite=Strict/i);
      assert.match(set, /; Path=\//);
      assert.doesNotMatch(set, /; Secure/i, "Secure over plain http: the browser would drop it");
      assert.ok(!set.includes("s3cret") && !set.includes(btoa("s3cret-Token")), `the cookie holds the token: ${set}`);
      cookie = set.split(";")[0]!;
      // Behind a TLS proxy (X-Forwarded-Proto: https), the cookie is Secure.
      const proxied = await logIn(serve.url, "s3cret-Token", { "x-forwarded-proto": "https" });
      await proxied.body?.cancel();
      assert.match(proxied.headers.getSetCookie()[0] ?? "", /; Secure/i);

      const page = await fetch(serve.url, { headers: { cookie } });
      assert.equal(page.status, 200);
      const html = await page.text();
      assert.match(html, /runs-chart|No runs yet/);
      assert.doesNotMatch(html, /token=/, "a link carries the token");
      assert.match(html, /<a href="api\/status">JSON<\/a>/);
      assert.match(html, /<form method="post" action="logout"/);
      assert.equal((await fetch(new URL("api/status", serve.url), { headers: { cookie } })).status, 200);
      // A cookie changed by a character is refused.
      const forged = cookie.slice(0, -1) + (cookie.endsWith("A") ? "B" : "A");
      const refused = await fetch(new URL("api/status", serve.url), { headers: { cookie: forged } });
      assert.equal(refused.status, 401);
      await refused.body?.cancel();
      // A form posted from another site is refused (a browser says so in Sec-Fetch-Site).
      const crossSite = await logIn(serve.url, "s3cret-Token", { "sec-fetch-site": "cross-site" });
      assert.equal(crossSite.status, 403);
      await crossSite.body?.cancel();
      // Log out: the cookie is cleared.
      const logout = await fetch(new URL("logout", serve.url), {
        method: "POST",
        headers: { cookie, "sec-fetch-site": "same-origin" },
        redirect: "manual",
      });
      await logout.body?.cancel();
      assert.equal(logout.status, 303);
      assert.match(logout.headers.getSetCookie()[0] ?? "", /^bucketload_session=;.*Max-Age=0/i);
    } finally {
      await serve.stop();
    }
    // The cookie dies with the process: a new serve does not take it.
    const again = await startServe(config, [], env);
    try {
      const stale = await fetch(new URL("api/status", again.url), { headers: { cookie } });
      assert.equal(stale.status, 401);
      await stale.body?.cancel();
    } finally {
      await again.stop();
    }
  });
});

Deno.test("serve: answers only to its own names (DNS rebinding): Host evil.example.com is refused; --allow-host adds one", async () => {
  await withTempDir(async (dir) => {
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ./bucket\nDATABASE_NAME = db.sqlite3\n`);
    const ask = (url: string, host: string, path = "/") =>
      rawHttp(url, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    const serve = await startServe(config);
    try {
      const port = new URL(serve.url).port;
      for (const path of ["/", "/api/status"]) {
        for (const host of ["evil.example.com", `evil.example.com:${port}`, `127.0.0.1.evil.example.com:${port}`]) {
          const evil = await ask(serve.url, host, path);
          assert.equal(evil.status, 421, `${host}${path}: ${evil.head}`);
          assert.equal(evil.body.trimEnd().split("\n").length, 1, evil.body);
          assert.match(evil.body, /--allow-host/);
          assert.doesNotMatch(evil.body, /"runs"|db\.sqlite3/);
        }
      }
      // Its own names, with or without the port (an SSH tunnel changes it), and /health to anyone.
      for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, "localhost", `[::1]:${port}`, "LocalHost."]) {
        assert.equal((await ask(serve.url, host)).status, 200, host);
      }
      assert.equal((await ask(serve.url, "evil.example.com", "/health")).status, 200);
    } finally {
      await serve.stop();
    }
    // Behind a reverse proxy that keeps the Host it was asked for.
    const proxied = await startServe(config, ["--allow-host", "status.example.com"]);
    try {
      assert.equal((await ask(proxied.url, "status.example.com")).status, 200);
      assert.equal((await ask(proxied.url, "Status.Example.com:443", "/api/status")).status, 200);
      assert.equal((await ask(proxied.url, "evil.example.com")).status, 421);
    } finally {
      await proxied.stop();
    }
    const bad = await cli(["serve", "--allow-host", "https://status.example.com/"]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--allow-host/);
  });
});

/** Whether the server ends `conn` (EOF or reset) before `guardMs` pass; `false` when it still holds it then. */
async function closedByServer(conn: Deno.Conn, guardMs = 15_000): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), guardMs));
  const buffer = new Uint8Array(4096);
  const read = (async () => {
    try {
      while (await conn.read(buffer) !== null) { /* an answer: read on to the end */ }
    } catch { /* reset */ }
    return true as const;
  })();
  try {
    return await Promise.race([read, guard]);
  } finally {
    clearTimeout(timer);
  }
}

/** `serve` in this process, with `limits` (test-sized; the defaults are in mod/commands/serve.ts). */
async function serveHere(dir: string, limits: Record<string, number>) {
  const config = resolveConfig({
    env: { BUCKETLOAD_BUCKET_NAME: "./bucket", BUCKETLOAD_DATABASE_NAME: join(dir, "db.sqlite3") },
    cwd: dir,
  });
  const controller = new AbortController();
  const listening = Promise.withResolvers<number>();
  // Passed as a variable: `limits` is an option tests set.
  const options = {
    host: "127.0.0.1",
    port: 0,
    signal: controller.signal,
    onListen: ({ port }: { port: number }) => listening.resolve(port),
    limits,
  };
  const served = serveAction(config, options);
  const port = await listening.promise;
  const conns: Deno.Conn[] = [];
  return {
    url: `http://127.0.0.1:${port}/`,
    connect: async () => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(conn);
      return conn;
    },
    stop: async () => {
      controller.abort();
      assert.equal(await served, 0);
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
    },
  };
}

Deno.test("serve: a request not complete within the request timeout is closed (slowloris, idle); the oldest waiting connection makes room at the cap", async () => {
  await withTempDir(async (dir) => {
    const timed = await serveHere(dir, { requestTimeoutMs: 300 });
    try {
      const idle = await timed.connect();
      // Slowloris: a header that never ends, a byte at a time.
      const slow = await timed.connect();
      await slow.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "));
      const drip = setInterval(() => slow.write(new Uint8Array([0x61])).catch(() => clearInterval(drip)), 50);
      try {
        assert.ok(await closedByServer(idle), "an idle connection was never closed");
        assert.ok(await closedByServer(slow), "a slowloris connection was never closed");
      } finally {
        clearInterval(drip);
      }
      // Still serving.
      assert.deepEqual(await (await fetch(new URL("health", timed.url))).json(), { ok: true });
    } finally {
      await timed.stop();
    }
    const capped = await serveHere(dir, { maxConnections: 4, requestTimeoutMs: 60_000 });
    try {
      const waiting = [];
      for (let i = 0; i < 4; i++) waiting.push(await capped.connect());
      // A fifth connection: the oldest one that sent no request yet is closed for it.
      assert.deepEqual(await (await fetch(new URL("health", capped.url))).json(), { ok: true });
      assert.ok(await closedByServer(waiting[0]!), "at the cap, the oldest waiting connection was kept");
    } finally {
      await capped.stop();
    }
  });
});

Deno.test("serve: 400 idle connections under ulimit -n 256 (or 64) neither end it nor keep /health from answering", async () => {
  await withTempDir(async (dir) => {
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ./bucket\nDATABASE_NAME = db.sqlite3\n`);
    for (const ulimit of [256, 64]) {
      const serve = await startServe(config, [], {}, { ulimit });
      const conns: Deno.Conn[] = [];
      let stopped: Deno.CommandStatus | undefined;
      try {
        const port = Number(new URL(serve.url).port);
        for (let i = 0; i < 400; i++) conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
        const health = await fetch(new URL("health", serve.url));
        assert.equal(health.status, 200);
        assert.deepEqual(await health.json(), { ok: true });
        const page = await fetch(serve.url);
        assert.equal(page.status, 200);
        await page.body?.cancel();
        // Each idle connection was closed by the server, or answers a request now: none hangs, and more were
        // closed than the descriptors allow to be open.
        const request = new TextEncoder().encode("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        const outcomes = await Promise.all(conns.map(async (conn) => {
          try {
            await conn.write(request);
          } catch {
            return "closed";
          }
          const answer = await new Response(conn.readable).text().catch(() => "");
          return answer.startsWith("HTTP/1.1 200") ? "answered" : "closed";
        }));
        conns.length = 0;
        const closed = outcomes.filter((o) => o === "closed").length;
        assert.ok(
          closed >= 400 - ulimit,
          `only ${closed} of 400 idle connections were closed under ulimit -n ${ulimit}`,
        );
        assert.ok(!serve.exited(), `serve ended under ulimit -n ${ulimit}:\n${serve.log.lines.join("\n")}`);
        assert.ok(!serve.log.lines.some((l) => /FTL|Too many open files \(os error 24\)\s*$/.test(l)));
      } finally {
        for (const conn of conns) conn.close();
        stopped = serve.exited() ? undefined : await serve.stop();
      }
      assert.equal(stopped?.code, 0, `serve ended by itself under ulimit -n ${ulimit}:\n${serve.log.lines.join("\n")}`);
      // Under 64 it runs out of descriptors (EMFILE), under 256 it may for a moment (a closed socket's descriptor is
      // freed once its pending read is cancelled): said once either way, not once per connection.
      const said = serve.log.lines.filter((l) => /Cannot accept a connection: Too many open files/.test(l));
      assert.ok(said.length <= 1 && (ulimit !== 64 || said.length === 1), serve.log.lines.join("\n"));
    }
  });
});
