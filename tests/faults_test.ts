import assert from "node:assert/strict";
import { join } from "node:path";
import { type Fault, startBucketServer } from "./bucket_server.ts";
import { MAX_RETRY_AFTER_MS, parseRetryAfter } from "../mod/source/http/http.ts";
import { generateBucket } from "../tools/gen_bucket.ts";
import { CASES, copyCase, dumpDatabase, query, runOnce, withTempDir } from "./helpers.ts";

const BASIC = join(CASES, "basic");
const A = "a1b2c3d4-0001-4000-8000-000000000001.data";
const B = "b1b2c3d4-0002-4000-8000-000000000002.data";

/** A clean run's dump of `bucket`, to compare faulty runs against. */
async function cleanDump(bucket: string) {
  return await withTempDir(async (dir) => {
    await runOnce(bucket, join(dir, "clean.sqlite3"));
    return dumpDatabase(join(dir, "clean.sqlite3"));
  });
}

Deno.test("faults: 20% 503/429 answers, some with Retry-After, still give a clean run's database", async () => {
  const bucket = await Deno.makeTempDir();
  await generateBucket(bucket, { files: 30, records: 40, seed: 3 });
  let n = 0;
  const server = await startBucketServer(bucket, {
    fault: (key): Fault | undefined => {
      if (key === "files_list.data") return undefined;
      n++;
      if (n % 5 !== 0) return undefined;
      if (n % 3 === 0) return { status: 429, headers: { "retry-after": "0" } };
      if (n % 2 === 0) return { status: 503, headers: { "retry-after": new Date(Date.now() - 1000).toUTCString() } };
      return { status: 503 };
    },
  });
  try {
    await withTempDir(async (dir) => {
      const db = join(dir, "db.sqlite3");
      const report = await runOnce(server.url, db, { retries: 4, concurrency: 4 });
      assert.equal(report.status, "ok");
      assert.ok(server.requests.length >= 36, `only ${server.requests.length} requests: too few faults`);
      assert.deepEqual(dumpDatabase(db), await cleanDump(bucket));
    });
  } finally {
    await server.close();
    await Deno.remove(bucket, { recursive: true });
  }
});

Deno.test("faults: Retry-After in seconds is honoured before the next attempt", async () => {
  const times: number[] = [];
  const server = await startBucketServer(BASIC, {
    fault: (key, attempt) => {
      if (key !== A) return undefined;
      times.push(performance.now());
      return attempt === 1 ? { status: 503, headers: { "retry-after": "1" } } : undefined;
    },
  });
  try {
    await withTempDir(async (dir) => {
      const report = await runOnce(server.url, join(dir, "db.sqlite3"), { retryBaseMs: 1 });
      assert.equal(report.status, "ok");
      assert.equal(times.length, 2);
      assert.ok(times[1]! - times[0]! >= 950, `retried after ${times[1]! - times[0]!} ms, before Retry-After`);
    });
  } finally {
    await server.close();
  }
});

Deno.test("faults: stalled, dripping and truncated responses are retried, then load", async () => {
  const modes = ["stall", "drip", "truncate"] as const;
  for (const mode of modes) {
    const server = await startBucketServer(BASIC, {
      fault: (key, attempt) => key === A && attempt === 1 ? mode : undefined,
    });
    try {
      await withTempDir(async (dir) => {
        const db = join(dir, "db.sqlite3");
        const report = await runOnce(server.url, db, { timeoutMs: 300 });
        assert.equal(report.status, "ok", `${mode}: ${JSON.stringify(report.failedKeys)}`);
        assert.equal(server.hits(A), 2, mode);
        assert.deepEqual(dumpDatabase(db), await cleanDump(BASIC), mode);
      });
    } finally {
      await server.close();
    }
  }
});

Deno.test("faults: retries running out leave the file failed; the next run completes it", async () => {
  let broken = true;
  const server = await startBucketServer(BASIC, { fault: (key) => broken && key === A ? "truncate" : undefined });
  try {
    await withTempDir(async (dir) => {
      const db = join(dir, "db.sqlite3");
      const report = await runOnce(server.url, db, { retries: 2 });
      assert.equal(report.status, "failed");
      assert.equal(report.failedKeys[0]?.key, A);
      assert.match(report.failedKeys[0]!.reason, /^body read failed: .*\(after 3 attempts\)$/);
      assert.deepEqual(query(db, "SELECT count(*) n FROM processed_files WHERE key = ?", A), [{ n: 0 }]);
      broken = false;
      assert.equal((await runOnce(server.url, db)).status, "ok");
      const clean = await cleanDump(BASIC);
      const dump = dumpDatabase(db);
      // The later file in list order wins across runs too: B's song stays, though A was loaded after it.
      assert.deepEqual(dump.songs.map((s) => s.source_key), [B]);
      assert.deepEqual(dump, clean);
    });
  } finally {
    await server.close();
  }
});

Deno.test("faults: a cross-origin redirect is never followed; same-origin is, up to 5 hops", async () => {
  const other = await startBucketServer(BASIC);
  const server = await startBucketServer(BASIC, {
    fault: (key, attempt) => {
      if (key === A) return { status: 302, headers: { location: `${other.url}${A}` } };
      if (key === B && attempt === 1) return { status: 301, headers: { location: `/moved/${B}` } };
      if (key === `moved/${B}`) return { status: 307, headers: { location: `/${B}` } };
      if (key === "c1b2c3d4-0003-4000-8000-000000000003.data") return { status: 302, headers: { location: "/loop" } };
      if (key === "loop") return { status: 302, headers: { location: "/loop" } };
      return undefined;
    },
  });
  try {
    await withTempDir(async (dir) => {
      const report = await runOnce(server.url, join(dir, "db.sqlite3"));
      assert.equal(other.requests.length, 0, "followed a redirect to another origin");
      const reasons = Object.fromEntries(report.failedKeys.map((f) => [f.key, f.reason]));
      assert.match(reasons[A]!, /^redirect to another origin refused: http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(reasons["c1b2c3d4-0003-4000-8000-000000000003.data"], "too many redirects (more than 5)");
      assert.equal(reasons[B], undefined);
      assert.equal(server.hits(B), 2);
      assert.equal(server.hits("loop"), 5);
    });
  } finally {
    await Promise.all([server.close(), other.close()]);
  }
});

Deno.test("faults: an unreachable list host exits with list_failed and writes nothing", async () => {
  const server = await startBucketServer(BASIC);
  const url = server.url;
  await server.close();
  await withTempDir(async (dir) => {
    const db = join(dir, "db.sqlite3");
    const report = await runOnce(url, db, { retries: 1 });
    assert.equal(report.status, "list_failed");
    assert.match(report.listError!, /^request failed: .*\(after 2 attempts\)$/);
    assert.deepEqual(query(db, "SELECT count(*) n FROM sqlite_schema"), [{ n: 0 }], "the schema was committed");
  });
});

Deno.test("parseRetryAfter() reads seconds and HTTP dates, and caps them", () => {
  const now = Date.UTC(2021, 4, 1, 12, 0, 0);
  assert.equal(parseRetryAfter("3", now), 3000);
  assert.equal(parseRetryAfter("0.5", now), 500);
  assert.equal(parseRetryAfter(new Date(now + 7000).toUTCString(), now), 7000);
  assert.equal(parseRetryAfter(new Date(now - 7000).toUTCString(), now), 0);
  assert.equal(parseRetryAfter("86400", now), MAX_RETRY_AFTER_MS);
  assert.equal(parseRetryAfter("soon", now), undefined);
  assert.equal(parseRetryAfter(null, now), undefined);
});

Deno.test("a file list sent chunked (no Content-Length) is read, within MAX_LIST_BYTES", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const server = await startBucketServer(bucket, {
      fault: (key) => key === "files_list.data" ? "chunked" : undefined,
    });
    try {
      const report = await runOnce(server.url, join(dir, "db.sqlite3"));
      assert.equal(report.listError, undefined);
      assert.equal(report.filesLoaded, 2);
      const capped = await runOnce(server.url, join(dir, "capped.sqlite3"), { maxListBytes: 100 });
      assert.match(capped.listError ?? "", /too large/);
      assert.equal(capped.runId, undefined);
    } finally {
      await server.close();
    }
  });
});
