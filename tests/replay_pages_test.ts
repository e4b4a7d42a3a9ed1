/**
 * Replay at scale: the quarantine is read a page at a time (memory holds one
 * page whatever its size) and gives what one batch gives; a stop signal or
 * the launcher's death mid-replay rolls it back, as in a run.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { getLogger } from "@logtape/logtape";
import { appType } from "../mod/records/app.ts";
import { RECORD_TYPES, type RecordType } from "../mod/records/mod.ts";
import { movieType } from "../mod/records/movie.ts";
import { songType } from "../mod/records/song.ts";
import { REPLAY_PAGE_BYTES, runReplay } from "../mod/run/replay.ts";
import { SqliteStore } from "../mod/store/sqlite/mod.ts";
import { generateBucket } from "../tools/gen_bucket.ts";
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

/** Stricter rules than today's: songs need a known year, apps a rating of at most 4. */
const STRICT: readonly RecordType[] = [
  {
    ...songType,
    toRow(data, context) {
      return data.year === 0 ? "year: expected a known year" : songType.toRow.call(this, data, context);
    },
  },
  movieType,
  {
    ...appType,
    toRow(data, context) {
      return typeof data.rating === "number" && data.rating > 4
        ? "rating: expected at most 4"
        : appType.toRow.call(this, data, context);
    },
  },
];

Deno.test("replay in pages of 3 records gives exactly what a fresh load gives (rows, rejections, held)", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "bucket");
    await generateBucket(bucket, { files: 6, records: 300, seed: 11, shape: "real", invalidRate: 0.02 });
    const server = await startBucketServer(bucket);
    try {
      const fresh = join(dir, "fresh.sqlite3");
      await runOnce(server.url, fresh);
      const strict = join(dir, "strict.sqlite3");
      assert.ok((await runOnce(server.url, strict, { types: STRICT })).rejected > 100);
      const store = SqliteStore.open(strict, { types: RECORD_TYPES });
      try {
        const report = await runReplay({
          store,
          types: RECORD_TYPES,
          bucket: "test",
          dateStoreFormat: PIPELINE_DEFAULTS.dateStoreFormat,
          filter: {},
          dryRun: false,
          logger: getLogger(["bucketload"]),
          now: FIXED_NOW,
          // 3 records a page.
          maxRawBytes: Math.floor(REPLAY_PAGE_BYTES / 3),
        });
        assert.ok(report.matched > 100);
        assert.deepEqual(report.held, []);
      } finally {
        store.close();
      }
      assert.deepEqual(dumpDatabase(strict), dumpDatabase(fresh));
    } finally {
      await server.close();
    }
  });
});

Deno.test("replay stops on SIGTERM mid-way: exit 143, one line, nothing written", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "b");
    await Deno.mkdir(bucket);
    const lines = Array.from(
      { length: 30_000 },
      (_, i) => JSON.stringify({ type: "song", data: { artist_name: "a", title: `t${i}`, year: "bad", release: "r" } }),
    );
    await Deno.writeTextFile(join(bucket, "big.data"), lines.join("\n") + "\n");
    await Deno.writeTextFile(join(bucket, "files_list.data"), "big.data\n");
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${bucket}\nDATABASE_NAME = db.sqlite3\n`);
    await runOnce(bucket, join(dir, "db.sqlite3"));
    // Reasons from an older build: a replay would store today's for each.
    const db = new DatabaseSync(join(dir, "db.sqlite3"));
    db.exec("UPDATE rejected_records SET reason = 'old reason'");
    db.close();
    const child = spawnCli(["replay", "--config", config, "--profile", "p", "--log-level", "debug"]);
    const err = new LineWatcher(child.stderr);
    await err.waitFor(/Replay: \d+ quarantined records after id [1-9]/);
    child.kill("SIGTERM");
    await err.waitFor(/rolled back/);
    const [status] = await Promise.all([child.status, err.drain(), child.stdout.cancel()]);
    assert.equal(status.code, 143, err.lines.join("\n"));
    assert.ok(err.lines.some((l) => /SIGTERM.*rolled back/.test(l)), err.lines.join("\n"));
    const after = new DatabaseSync(join(dir, "db.sqlite3"), { readOnly: true });
    try {
      const reasons = after.prepare("SELECT DISTINCT reason FROM rejected_records").all().map((r) => r.reason);
      assert.deepEqual(reasons, ["old reason"]);
      assert.deepEqual(after.prepare("SELECT kind FROM runs").all().map((r) => r.kind), ["run"]);
    } finally {
      after.close();
    }
  });
});
