/**
 * A lock held by a program that is not bucketload (a `sqlite3` shell in a
 * write transaction): `status` and a run say so in one line, exit 1, without
 * naming a bucketload run that is not there.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { CASES, cli, runOnce, withTempDir, writeConfig } from "./helpers.ts";

Deno.test("a foreign exclusive lock: status and a run exit 1 with one line naming another program", async () => {
  await withTempDir(async (dir) => {
    const db = join(dir, "db.sqlite3");
    await runOnce(join(CASES, "basic"), db);
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${join(CASES, "basic")}\nDATABASE_NAME = ${db}\n`);
    const holder = new DatabaseSync(db);
    holder.exec("BEGIN EXCLUSIVE");
    holder.exec("INSERT INTO meta VALUES ('foreign', 'x')");
    try {
      for (const args of [["status"], ["--force"]]) {
        const out = await cli([...args, "--config", config, "--profile", "p"], {
          env: { BUCKETLOAD_LOCK_TIMEOUT_SECONDS: "0" },
        });
        assert.equal(out.code, 1, `${args}: ${out.stderr}`);
        const lines = out.stderr.trim().split("\n").filter((l) => !/ \[(INF|DBG)\] /.test(l));
        assert.equal(lines.length, 1, out.stderr);
        assert.match(lines[0]!, /^bucketload: Another program holds a lock on .*db\.sqlite3 \(no bucketload run left/);
      }
    } finally {
      holder.exec("ROLLBACK");
      holder.close();
    }
  });
});
