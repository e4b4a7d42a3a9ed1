/**
 * A commit whose outcome is unknown to the client: the connection is lost
 * while COMMIT waits for a synchronous standby (one that never answers). The
 * run asks the server on another connection, and reports what happened: here
 * the server committed it locally, so the run stands, and is never reported
 * as rolled back.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CASES, LineWatcher, spawnCli, withTempDir, writeConfig } from "./helpers.ts";
import { copyCase } from "./helpers.ts";
import { startBucketServer } from "./bucket_server.ts";
import { PG_URL, pgClient, pgTest, withPgDatabase } from "./pg.ts";

pgTest(
  "a connection lost while COMMIT waits for a synchronous standby: the server is asked, the run is committed",
  async () => {
    await withTempDir(async (dir) => {
      const bucket = await copyCase("basic", dir);
      const list = join(bucket, "files_list.data");
      const server = await startBucketServer(bucket);
      const admin = pgClient(PG_URL!);
      try {
        await withPgDatabase(async (url) => {
          const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_URL = ${url}\n`);
          const args = ["--config", config, "--profile", "p"];
          const first = await spawnCli(args).output();
          assert.equal(first.code, 0, new TextDecoder().decode(first.stderr));
          // A new file, and a standby that never answers: the next COMMIT waits.
          await Deno.copyFile(
            join(CASES, "basic", "a1b2c3d4-0001-4000-8000-000000000001.data"),
            join(bucket, "new.data"),
          );
          await Deno.writeTextFile(list, (await Deno.readTextFile(list)).trimEnd() + "\nnew.data\n");
          await admin.unsafe("ALTER SYSTEM SET synchronous_standby_names = 'bl_ghost_standby'");
          await admin`SELECT pg_reload_conf()`;
          try {
            const child = spawnCli(args);
            const err = new LineWatcher(child.stderr);
            const stdout = new Response(child.stdout).text();
            const drained = err.waitFor(/never/);
            // The run's session, waiting for the standby in COMMIT.
            let pid: number | undefined;
            for (let i = 0; i < 200 && pid === undefined; i++) {
              const [row] = await admin<{ pid: number }[]>`
              SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND query = 'COMMIT'`;
              pid = row?.pid;
              if (pid === undefined) await new Promise((r) => setTimeout(r, 50));
            }
            assert.ok(pid !== undefined, "the run's COMMIT never waited for the standby");
            // What a failed-over network does to the client: the session is gone while it waits.
            await admin`SELECT pg_terminate_backend(${pid})`;
            const status = await child.status;
            await drained;
            const out = await stdout;
            const lines = err.lines.join("\n");
            assert.equal(status.code, 0, lines);
            assert.doesNotMatch(lines + out, /nothing was committed/);
            assert.match(
              lines,
              /connection was lost during the COMMIT of run 2; asked again, the server says it committed/,
            );
            assert.match(out, /run 2 finished/);
          } finally {
            await admin.unsafe("ALTER SYSTEM RESET synchronous_standby_names");
            await admin`SELECT pg_reload_conf()`;
          }
          const sql = pgClient(url);
          try {
            const runs = await sql`SELECT id FROM runs ORDER BY id`;
            assert.deepEqual(runs.map((r) => Number(r.id)), [1, 2]);
            const registered = await sql`SELECT key FROM processed_files WHERE key = 'new.data'`;
            assert.equal(registered.length, 1);
          } finally {
            await sql.end();
          }
        });
      } finally {
        await admin.end();
        await server.close();
      }
    });
  },
);
