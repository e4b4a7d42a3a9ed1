import assert from "node:assert/strict";
import { join } from "node:path";
import { startBucketServer } from "./bucket_server.ts";
import { CASES, cli, copyCase, query, runOnce, withTempDir, writeConfig } from "./helpers.ts";

const BASIC = join(CASES, "basic");
const A = "a1b2c3d4-0001-4000-8000-000000000001.data";

Deno.test("security: URL credentials are sent as Basic auth and never logged or stored", async () => {
  const server = await startBucketServer(BASIC, { fault: (key) => key === A ? { status: 500 } : undefined });
  try {
    await withTempDir(async (dir) => {
      const url = server.url.replace("http://", "http://reader:s3cr3t-pw@");
      const config = await writeConfig(
        dir,
        `[p]\nBUCKET_NAME = ${url}\nRETRIES = 1\nRETRY_BASE_SECONDS = 0.01\nLOG_LEVEL = debug\nSAVE_LOG = yes\n`,
      );
      const run = await cli(["--config", config, "--profile", "p"]);
      assert.equal(run.code, 1);
      assert.ok(server.authorizations.every((a) => a === `Basic ${btoa("reader:s3cr3t-pw")}`));
      assert.ok(run.stderr.includes(server.url), "the bucket URL should be logged, without credentials");
      const logDir = join(dir, "logs");
      const logs = [...Deno.readDirSync(logDir)].map((e) => Deno.readTextFileSync(join(logDir, e.name))).join("");
      for (const text of [run.stdout, run.stderr, logs]) assert.ok(!text.includes("s3cr3t"), text);
      for (const entry of Deno.readDirSync(dir)) {
        if (!entry.isFile || entry.name === "config.ini") continue;
        const bytes = new TextDecoder("latin1").decode(Deno.readFileSync(join(dir, entry.name)));
        assert.ok(!bytes.includes("s3cr3t"), `credentials found in ${entry.name}`);
      }
    });
  } finally {
    await server.close();
  }
});

Deno.test("security: a bucket prefix is never escaped by keys or redirects", async () => {
  await withTempDir(async (dir) => {
    await copyCase("basic", join(dir, "root"));
    await Deno.rename(join(dir, "root", "basic"), join(dir, "root", "bucket"));
    await Deno.writeTextFile(join(dir, "root", "secret.data"), "[]");
    const list = ["../secret.data", "%2e%2e/secret.data", "..%2fsecret.data", A, "redirect.data"].join("\n");
    const server = await startBucketServer(join(dir, "root"), {
      fault: (key) => {
        if (key === "bucket/files_list.data") return { status: 200, body: list };
        if (key === "bucket/redirect.data") return { status: 302, headers: { location: "/secret.data" } };
        return undefined;
      },
    });
    try {
      const report = await runOnce(`${server.url}bucket`, join(dir, "db.sqlite3"));
      assert.ok(server.paths.every((p) => p.startsWith("/bucket/")), server.paths.join(" "));
      assert.equal(server.hits("secret.data"), 0);
      assert.deepEqual(report.refusedKeys.map((r) => r.key), ["../secret.data"]);
      assert.deepEqual([...report.missingKeys].sort(), ["%2e%2e/secret.data", "..%2fsecret.data"]);
      assert.deepEqual(report.failedKeys, [{
        key: "redirect.data",
        reason: "redirect outside the bucket prefix refused: /secret.data",
      }]);
    } finally {
      await server.close();
    }
  });
});

Deno.test("security: a database path that cannot be written exits 2 with one line", async () => {
  await withTempDir(async (dir) => {
    await copyCase("basic", dir);
    await Deno.writeTextFile(join(dir, "file"), "x");
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ./basic\nDATABASE_NAME = file/db.sqlite3\n`);
    const run = await cli(["--config", config, "--profile", "p"]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /^bucketload: Cannot open database .*file\/db\.sqlite3: /m);
    assert.equal(await Deno.readTextFile(join(dir, "file")), "x");
  });
});

Deno.test("caps: objects over MAX_FILE_BYTES are invalid, by Content-Length or while streaming", async () => {
  const big = JSON.stringify(Array.from({ length: 200 }, (_, i) => ({ type: "book", data: { i } })));
  const server = await startBucketServer(BASIC, {
    fault: (key) => key === A ? "chunked" : undefined,
    files: { [A]: big },
  });
  try {
    await withTempDir(async (dir) => {
      const db = join(dir, "db.sqlite3");
      const report = await runOnce(server.url, db, { maxFileBytes: 1000, timeoutMs: 5000 });
      const invalid = query(db, "SELECT key, reason FROM rejected_records WHERE record_index IS NULL ORDER BY key");
      const reasons = Object.fromEntries(invalid.map((r) => [r.key, r.reason]));
      assert.equal(reasons["b1b2c3d4-0002-4000-8000-000000000002.data"], "too large: 1436 bytes > 1000");
      assert.match(String(reasons[A]), /^too large: over 1000 bytes \(stopped reading at 10\d\d\)$/);
      assert.equal(report.filesInvalid, 3);
      assert.deepEqual(
        query(db, "SELECT key, status FROM processed_files ORDER BY key").map((r) => r.status),
        ["invalid", "invalid", "invalid"],
      );
    });
  } finally {
    await server.close();
  }
});

Deno.test("caps: a list over MAX_LIST_BYTES fails the run without writing", async () => {
  await withTempDir(async (dir) => {
    const db = join(dir, "db.sqlite3");
    const report = await runOnce(BASIC, db, { maxListBytes: 100 });
    assert.equal(report.status, "list_failed");
    assert.match(report.listError!, /^too large: \d+ bytes > 100$/);
  });
});

Deno.test("caps: stored raw JSON is cut at MAX_REJECTED_RAW_BYTES with a marker", async () => {
  const huge = JSON.stringify([{
    type: "song",
    data: { artist_name: "x".repeat(10_000), title: "t", year: "no", release: "" },
  }]);
  const server = await startBucketServer(BASIC, {
    fault: (key) => key === "files_list.data" ? { status: 200, body: "huge.data" } : undefined,
    files: { "huge.data": huge },
  });
  try {
    await withTempDir(async (dir) => {
      const db = join(dir, "db.sqlite3");
      await runOnce(server.url, db, { maxRejectedRawBytes: 500 });
      const [row] = query(db, "SELECT raw FROM rejected_records");
      assert.equal(String(row?.raw).length, 500);
      assert.match(String(row?.raw), /…\[truncated, \d+ chars in all\]$/);
    });
  } finally {
    await server.close();
  }
});

Deno.test("security: a redirect's user:pass@ is dropped; the configured credentials go on", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    let port = 0;
    const server = await startBucketServer(bucket, {
      fault: (key) =>
        key === A
          ? { status: 302, headers: { location: `http://mallory:stolen@127.0.0.1:${port}/moved/${A}` } }
          : key === `moved/${A}`
          ? { status: 200, body: Deno.readTextFileSync(join(bucket, A)) }
          : undefined,
    });
    port = Number(new URL(server.url).port);
    try {
      // The configured credentials, as BUCKET_NAME = http://alice:s3cret@host/ gives them.
      const expected = `Basic ${btoa("alice:s3cret")}`;
      const report = await runOnce(server.url, join(dir, "db.sqlite3"), { authorization: expected });
      assert.equal(report.filesLoaded, 2, JSON.stringify(report.failedKeys));
      const at = server.paths.indexOf(`/moved/${A}`);
      assert.ok(at !== -1, server.paths.join(" "));
      assert.equal(server.authorizations[at], expected, "the redirect's credentials were sent");
      assert.ok(server.authorizations.every((a) => a === expected));
    } finally {
      await server.close();
    }
  });
});
