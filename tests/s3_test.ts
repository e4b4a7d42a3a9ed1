/**
 * The S3 source against a real S3-compatible server that checks SigV4:
 * listing (prefix, pagination, KEY_PATTERN), the list file when there is
 * one, signed and unsigned requests, a wrong secret, awkward keys.
 */
import assert from "node:assert/strict";
import { formatSummary } from "../mod/commands/summary.ts";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { dryRun as planDryRun } from "../mod/run/dry_run.ts";
import { runPipeline } from "../mod/run/pipeline.ts";
import { RECORD_TYPES } from "../mod/records/mod.ts";
import { FileSource } from "../mod/source/file/file.ts";
import { S3Source } from "../mod/source/s3/s3.ts";
import type { ListedObject } from "../mod/source/source.ts";
import { PostgresStore } from "../mod/store/postgres/mod.ts";
import { SqliteStore } from "../mod/store/sqlite/mod.ts";
import { cli, dumpDatabase, PIPELINE_DEFAULTS, query, withTempDir, writeConfig } from "./helpers.ts";
import { S3_KEYS, s3Test, startS3Server } from "./s3_server.ts";
import { canonicalDump, PG_SKIP, PG_URL, pgDump, pgQuery, withPgDatabase } from "./pg.ts";

const song = (title: string, year: number) => ({ type: "song", data: { artist_name: "A", title, year, release: "" } });
/** Keys a real bucket may hold: spaces, `+`, `ü`, parentheses, a sub-folder. */
const FILES: Record<string, unknown[]> = {
  "2021/a b.data": [song("one", 1), song("shared", 1)],
  "2021/c+d.data": [song("two", 2), { type: "song", data: { title: "no artist" } }],
  "2021/grüße (1).data": [song("three", 3), song("shared", 3)],
  "2022/e.data": [song("four", 4)],
  "notes.txt": [song("not data", 9)],
};

async function loadInto(dbPath: string, source: S3Source | FileSource, keyPattern = "") {
  const store = SqliteStore.open(dbPath, { types: RECORD_TYPES });
  try {
    return await runPipeline({ ...PIPELINE_DEFAULTS, source, store, keyPattern });
  } finally {
    store.close();
  }
}

/** The same files in a folder with a list in key order: what a listing must load. */
async function folderTwin(dir: string, keys: string[]): Promise<string> {
  const root = join(dir, "twin");
  for (const key of keys) {
    await Deno.mkdir(join(root, key, ".."), { recursive: true });
    await Deno.writeTextFile(join(root, key), JSON.stringify(FILES[key]));
  }
  await Deno.writeTextFile(join(root, "files_list.data"), keys.join("\n"));
  return root;
}

s3Test("a listing (prefix, pages of 2, KEY_PATTERN) loads what a list in key order loads; signed", async () => {
  const server = await startS3Server();
  try {
    await server.createBucket("data");
    for (const [key, records] of Object.entries(FILES)) await server.put("data", `in/${key}`, JSON.stringify(records));
    await server.put("data", "elsewhere/x.data", JSON.stringify([song("outside the prefix", 5)]));
    await withTempDir(async (dir) => {
      const options = server.sourceOptions("data", { prefix: "in/", pageSize: 2 });
      // Pages of 2 keys arrive one by one, in key order.
      const pages: ListedObject[][] = [];
      const failed = await new S3Source(options).listObjects({
        onPage: (page) => Promise.resolve(void pages.push(page)),
      });
      assert.equal(failed, undefined);
      assert.deepEqual(pages.map((p) => p.length), [2, 2, 1]);
      const listed = pages.flat();
      assert.deepEqual(listed.map((o) => o.key), Object.keys(FILES).sort());
      assert.ok(listed.every((o) => /^"[0-9a-f]{32}"$/.test(o.etag) && o.size > 0));

      const report = await loadInto(join(dir, "s3.sqlite3"), new S3Source(options), "**/*.data");
      assert.equal(report.status, "ok");
      assert.equal(report.listed, true);
      const keys = Object.keys(FILES).filter((k) => k.endsWith(".data")).sort();
      assert.equal(report.filesLoaded, keys.length);
      await loadInto(join(dir, "twin.sqlite3"), new FileSource(await folderTwin(dir, keys)));
      assert.deepEqual(dumpDatabase(join(dir, "s3.sqlite3")), dumpDatabase(join(dir, "twin.sqlite3")));
      // Later key wins: "grüße (1)" sorts after "a b".
      const shared = dumpDatabase(join(dir, "s3.sqlite3")).songs.find((s) => s.title === "shared");
      assert.equal(shared?.source_key, "2021/grüße (1).data");

      // A second run finds nothing new and writes no run row.
      const again = await loadInto(join(dir, "s3.sqlite3"), new S3Source(options), "**/*.data");
      assert.equal(again.runId, undefined);
      assert.equal(again.filesNew, 0);

      // `*` stays within a folder: only the top level's `*.txt`.
      const txt = await loadInto(join(dir, "txt.sqlite3"), new S3Source(options), "*.txt");
      assert.equal(txt.filesLoaded, 1);
    });
  } finally {
    await server.close();
  }
});

s3Test("the list file decides when the bucket has one; a public bucket is read unsigned", async () => {
  const server = await startS3Server();
  try {
    await server.createBucket("public");
    for (const [key, records] of Object.entries(FILES)) await server.put("public", key, JSON.stringify(records));
    await server.put("public", "files_list.data", "2022/e.data\n2021/a b.data\n");
    await withTempDir(async (dir) => {
      const source = new S3Source(server.sourceOptions("public", { credentials: undefined }));
      const report = await loadInto(join(dir, "db.sqlite3"), source);
      assert.equal(report.listed, false);
      assert.equal(report.filesLoaded, 2);
      const titles = dumpDatabase(join(dir, "db.sqlite3")).songs.map((s) => s.title).sort();
      assert.deepEqual(titles, ["four", "one", "shared"]);
    });
  } finally {
    await server.close();
  }
});

s3Test("the CLI: s3:// with S3_ENDPOINT and AWS_* variables; a wrong secret exits 1 with one line", async () => {
  const server = await startS3Server();
  try {
    await server.createBucket("cli");
    await server.put("cli", "x/a b.data", JSON.stringify(FILES["2021/a b.data"]));
    await withTempDir(async (dir) => {
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = s3://cli/x\nS3_ENDPOINT = ${server.endpoint}\n`);
      const args = ["--config", config, "--profile", "p"];
      const env = { AWS_ACCESS_KEY_ID: S3_KEYS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3_KEYS.secretAccessKey };
      const run = await cli(args, { env });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /1 loaded/);
      const wrong = await cli([...args, "--force"], { env: { ...env, AWS_SECRET_ACCESS_KEY: "not-the-secret" } });
      assert.equal(wrong.code, 1);
      assert.match(
        wrong.stdout,
        /cannot read the file list: .*S3 SignatureDoesNotMatch \(check AWS_SECRET_ACCESS_KEY\)/,
      );
      assert.doesNotMatch(wrong.stdout + wrong.stderr, /not-the-secret/);
      // A profile of the shared credentials file, as the AWS CLI keeps them.
      const file = join(dir, "credentials");
      await Deno.writeTextFile(
        file,
        "[default]\naws_access_key_id = x\n\n[test]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n",
      );
      const profile = await cli([...args, "--force"], {
        env: { AWS_PROFILE: "test", AWS_SHARED_CREDENTIALS_FILE: file },
      });
      assert.equal(profile.code, 0, profile.stderr);
      const noProfile = await cli(args, { env: { AWS_PROFILE: "prod", AWS_SHARED_CREDENTIALS_FILE: file } });
      assert.equal(noProfile.code, 2);
      assert.match(noProfile.stderr, /Cannot use AWS_PROFILE 'prod': no \[prod\] section in .*credentials/);
      const half = await cli(args, { env: { AWS_ACCESS_KEY_ID: "S3RVER" } });
      assert.equal(half.code, 2);
      assert.match(half.stderr, /AWS_SECRET_ACCESS_KEY is not set, but its pair is/);
    });
  } finally {
    await server.close();
  }
});

s3Test(
  "a changed object (ETag) is re-loaded with its rows replaced; a deleted one is marked, pruned on demand",
  async () => {
    const server = await startS3Server();
    try {
      await server.createBucket("live");
      const put = (key: string, records: unknown[]) => server.put("live", key, JSON.stringify(records));
      await put("a.data", [song("kept", 1), song("dropped", 1), song("shared", 1)]);
      await put("b.data", [song("b only", 2)]);
      await put("c.data", [song("c only", 3), song("shared", 3)]);
      await withTempDir(async (dir) => {
        const db = join(dir, "db.sqlite3");
        const source = () => new S3Source(server.sourceOptions("live"));
        const run = async (options: { pruneDeleted?: boolean; changeDetection?: boolean } = {}) => {
          const store = SqliteStore.open(db, { types: RECORD_TYPES });
          try {
            return await runPipeline({ ...PIPELINE_DEFAULTS, source: source(), store, ...options });
          } finally {
            store.close();
          }
        };
        /** What --dry-run counts now, from a read-only store. */
        const dryRun = async () => {
          const ro = SqliteStore.open(db, { types: RECORD_TYPES, readOnly: true });
          try {
            const plan = await planDryRun({
              source: source(),
              store: ro,
              filesListKey: "files_list.data",
              encoding: "utf-8",
              maxListBytes: 1 << 20,
              force: false,
            });
            assert.ok(!("error" in plan));
            return plan.counts;
          } finally {
            ro.close();
          }
        };
        const titles = () => dumpDatabase(db).songs.map((s) => `${s.title}@${s.source_key}`).sort();
        assert.equal((await run()).filesLoaded, 3);
        assert.ok(query(db, "SELECT etag FROM processed_files").every((r) => /^"[0-9a-f]{32}"$/.test(String(r.etag))));

        // a.data changes: "dropped" goes, "new" comes; "shared" stays c.data's (later in key order).
        await put("a.data", [song("kept", 10), song("new", 10), song("shared", 10)]);
        assert.equal((await dryRun()).changed, 1, "--dry-run does not show the changed object");
        const none = await run({ changeDetection: false });
        assert.equal(none.runId, undefined, "CHANGE_DETECTION = none fetched a changed object");
        const changed = await run();
        assert.equal(changed.filesChanged, 1);
        assert.equal(changed.filesNew, 1);
        // Its two old rows went; "kept" and "new" are new rows; "shared" met c.data's row (and left it).
        // Removed: its three earlier rows ("kept", "dropped", its own "shared" was c.data's, so two) went first.
        assert.deepEqual([changed.rowsInserted, changed.rowsUpdated, changed.rowsRemoved], [2, 1, 2]);
        assert.deepEqual(query(db, "SELECT rows_removed FROM runs ORDER BY id DESC LIMIT 1"), [{ rows_removed: 2 }]);
        assert.deepEqual(titles(), ["b only@b.data", "c only@c.data", "kept@a.data", "new@a.data", "shared@c.data"]);
        assert.equal(query(db, "SELECT year FROM songs WHERE title = 'kept'")[0]!.year, 10);

        // b.data is deleted: marked in the registry and status, rows kept; PRUNE_DELETED removes them.
        await server.remove("live", "b.data");
        assert.equal((await dryRun()).deleted, 1, "--dry-run does not show the deleted object");
        const deleted = await run();
        assert.deepEqual(deleted.deletedKeys, ["b.data"]);
        assert.ok(titles().includes("b only@b.data"));
        assert.deepEqual(query(db, "SELECT key FROM processed_files WHERE deleted_at IS NOT NULL"), [{
          key: "b.data",
        }]);
        const store = SqliteStore.open(db, { types: RECORD_TYPES, readOnly: true });
        try {
          assert.equal((await store.status()).registry.deleted, 1);
        } finally {
          store.close();
        }
        assert.equal((await run()).runId, undefined, "a deletion was reported twice");
        // Pruning applies to objects deleted from then on: c.data goes next, with its rows.
        await server.remove("live", "c.data");
        const pruned = await run({ pruneDeleted: true });
        assert.deepEqual(pruned.deletedKeys, ["c.data"]);
        // c.data's two rows ("c only" and "shared") were removed: the report says so.
        assert.equal(pruned.rowsRemoved, 2);
        assert.match(formatSummary(pruned), /rows +0 inserted, 0 updated, 2 removed/);
        assert.deepEqual(titles(), ["b only@b.data", "kept@a.data", "new@a.data"]);
        // An object that comes back is loaded again.
        await put("c.data", [song("c again", 4)]);
        const back = await run();
        assert.equal(back.filesLoaded, 1);
        assert.ok(titles().includes("c again@c.data"));
        assert.deepEqual(query(db, "SELECT count(*) AS n FROM processed_files WHERE deleted_at IS NOT NULL"), [{
          n: 1,
        }]);
      });
    } finally {
      await server.close();
    }
  },
);

s3Test("NDJSON, gzip and multi-member gzip objects from S3 load like the plain JSON array", async () => {
  const server = await startS3Server();
  try {
    await server.createBucket("fmt");
    const records = [song("x", 1), song("y", 2), { type: "song", data: { title: "bad" } }];
    const text = JSON.stringify(records);
    const ndjson = records.map((r) => JSON.stringify(r)).join("\n") + "\n";
    const gz = (s: string) => new Uint8Array(gzipSync(new TextEncoder().encode(s)));
    await server.put("fmt", "1-array.data", text);
    await server.put("fmt", "2-lines.ndjson", ndjson);
    await server.put("fmt", "3-array.data.gz", gz(text));
    const half = Math.floor(ndjson.length / 2);
    const multi = new Uint8Array([...gz(ndjson.slice(0, half)), ...gz(ndjson.slice(half))]);
    await server.put("fmt", "4-lines.jsonl.gz", multi);
    await withTempDir(async (dir) => {
      const report = await loadInto(
        join(dir, "db.sqlite3"),
        new S3Source(server.sourceOptions("fmt")),
      );
      assert.equal(report.filesLoaded, 4);
      assert.equal(report.rejected, 4);
      const files = query(join(dir, "db.sqlite3"), "SELECT key, records, rejected FROM processed_files ORDER BY key");
      assert.deepEqual(files.map((f) => [f.records, f.rejected]), [[2, 1], [2, 1], [2, 1], [2, 1]]);
    });
  } finally {
    await server.close();
  }
});

s3Test("changed and deleted objects: PostgreSQL ends as SQLite does, reports included", async () => {
  if (PG_SKIP) return console.log("NOTICE: the PostgreSQL half skipped: BL_TEST_DATABASE_URL is not set");
  assert.ok(PG_URL !== undefined, "CI=true needs BL_TEST_DATABASE_URL");
  const server = await startS3Server();
  try {
    await server.createBucket("both");
    const source = () => new S3Source(server.sourceOptions("both"));
    // The bucket's history: each step changes it, then both stores run.
    const steps: (() => Promise<void>)[] = [
      async () => {
        await server.put("both", "a.data", JSON.stringify([song("kept", 1), song("dropped", 1), song("shared", 1)]));
        await server.put("both", "b.data", JSON.stringify([song("b only", 2), song("shared", 2)]));
        await server.put("both", "c.data", JSON.stringify([song("c only", 3)]));
      },
      () => server.put("both", "a.data", JSON.stringify([song("kept", 10), song("new", 10), song("shared", 10)])),
      () => server.remove("both", "c.data"),
      () => server.remove("both", "b.data"),
    ];
    await withTempDir(async (dir) => {
      await withPgDatabase(async (url) => {
        const sqlite = SqliteStore.open(join(dir, "db.sqlite3"), { types: RECORD_TYPES });
        const pg = await PostgresStore.open(url, { types: RECORD_TYPES });
        try {
          for (const [i, step] of steps.entries()) {
            await step();
            const reports = [];
            for (const store of [sqlite, pg]) {
              const r = await runPipeline({ ...PIPELINE_DEFAULTS, source: source(), store, pruneDeleted: i === 3 });
              reports.push([r.filesNew, r.filesChanged, r.deletedKeys, r.rowsInserted, r.rowsUpdated, r.rowsRemoved]);
            }
            assert.deepEqual(reports[1], reports[0], `step ${i}`);
          }
        } finally {
          sqlite.close();
          await pg.close();
        }
        assert.deepEqual(await pgDump(url), canonicalDump(dumpDatabase(join(dir, "db.sqlite3"))));
        // c.data was deleted without pruning (its row stays); pruning b.data took its "shared", a.data's does not return.
        assert.deepEqual((await pgDump(url)).songs.map((s) => s.title).sort(), ["c only", "kept", "new"]);
      });
    });
  } finally {
    await server.close();
  }
});

s3Test(
  "3 workers on one S3 listing and one PostgreSQL: each object loaded once, a change and a deletion once",
  async () => {
    if (PG_SKIP) return console.log("NOTICE: the PostgreSQL half skipped: BL_TEST_DATABASE_URL is not set");
    assert.ok(PG_URL !== undefined, "CI=true needs BL_TEST_DATABASE_URL");
    const server = await startS3Server();
    try {
      await server.createBucket("workers");
      const keys = Array.from({ length: 24 }, (_, i) => `part ${String(i).padStart(2, "0")}.data`);
      for (const [i, key] of keys.entries()) {
        await server.put("workers", key, JSON.stringify([song(`t${i}`, i), song("shared", i)]));
      }
      await withTempDir(async (dir) => {
        await withPgDatabase(async (url) => {
          const config = await writeConfig(
            dir,
            `[p]\nBUCKET_NAME = s3://workers\nS3_ENDPOINT = ${server.endpoint}\nCONCURRENCY = 2\n`,
          );
          const env = { DATABASE_URL: url, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER" };
          const three = async () => {
            const runs = await Promise.all(
              [0, 1, 2].map(() => cli(["--config", config, "--profile", "p", "--json"], { env })),
            );
            for (const r of runs) assert.equal(r.code, 0, r.stderr);
            return runs.map((r) => JSON.parse(r.stdout).files);
          };
          const sum = (files: Record<string, number>[], field: string) => files.reduce((n, f) => n + f[field]!, 0);
          const first = await three();
          assert.equal(sum(first, "loaded"), keys.length);
          await server.put("workers", keys[3]!, JSON.stringify([song("changed", 99)]));
          await server.remove("workers", keys[5]!);
          const second = await three();
          assert.equal(sum(second, "changed"), 1);
          assert.equal(sum(second, "loaded"), 1);
          assert.equal(sum(second, "deleted"), 1);
          const rows = await pgQuery(url, "SELECT title, source_key FROM songs ORDER BY title");
          assert.ok(rows.some((r) => r.title === "changed" && r.source_key === keys[3]));
          assert.ok(!rows.some((r) => r.title === "t3"), "the changed object's old row stayed");
          // "shared": the last key in list order holds it.
          assert.deepEqual(rows.find((r) => r.title === "shared")?.source_key, keys.at(-1));
        });
      });
    } finally {
      await server.close();
    }
  },
);
