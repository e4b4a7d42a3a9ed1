/**
 * Hand edits the totals' triggers never see (SQLite's `REPLACE INTO`, which
 * deletes without its delete trigger; PostgreSQL's `TRUNCATE`) leave the
 * status totals wrong: `--force` counts them afresh.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { startBucketServer } from "./bucket_server.ts";
import { CASES, cli, withTempDir, writeConfig } from "./helpers.ts";
import { pgQuery, pgTest, withPgDatabase } from "./pg.ts";
import { totalsOf } from "./totals.ts";

Deno.test("SQLite: REPLACE INTO by hand skips the totals' delete trigger; --force counts them afresh", async () => {
  await withTempDir(async (dir) => {
    const server = await startBucketServer(join(CASES, "basic"));
    try {
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = db.sqlite3\n`);
      const args = ["--config", config, "--profile", "p"];
      assert.equal((await cli(args)).code, 0);
      const path = join(dir, "db.sqlite3");
      const ask = (sql: string) => {
        const db = new DatabaseSync(path);
        try {
          return Promise.resolve(db.prepare(sql).all().map((r) => ({ ...r })));
        } finally {
          db.close();
        }
      };
      const db = new DatabaseSync(path);
      db.exec("REPLACE INTO processed_files SELECT * FROM processed_files");
      db.exec("REPLACE INTO rejected_records SELECT * FROM rejected_records");
      db.close();
      const skewed = await totalsOf(ask);
      assert.notDeepEqual(skewed.kept, skewed.counted, "the hand edit no longer skews the totals: the test is moot");
      assert.equal((await cli([...args, "--force"])).code, 0);
      const after = await totalsOf(ask);
      assert.deepEqual(after.kept, after.counted);
    } finally {
      await server.close();
    }
  });
});

pgTest("TRUNCATE by hand skips the totals' triggers; --force counts them afresh", async () => {
  await withTempDir(async (dir) => {
    await withPgDatabase(async (url) => {
      const server = await startBucketServer(join(CASES, "basic"));
      try {
        const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_URL = ${url}\n`);
        const args = ["--config", config, "--profile", "p"];
        assert.equal((await cli(args)).code, 0);
        const ask = (sql: string) => pgQuery(url, sql);
        await pgQuery(url, "TRUNCATE rejected_records");
        const skewed = await totalsOf(ask);
        assert.notDeepEqual(skewed.kept, skewed.counted, "the hand edit no longer skews the totals: the test is moot");
        assert.equal((await cli([...args, "--force"])).code, 0);
        const after = await totalsOf(ask);
        assert.deepEqual(after.kept, after.counted);
      } finally {
        await server.close();
      }
    });
  });
});
