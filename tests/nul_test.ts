/**
 * U+0000 in a file: stored as a rejection on both stores (PostgreSQL's text
 * cannot hold it), its raw text coming back byte for byte, so that a replay
 * sees exactly what the run saw.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { decodeRaw, encodeRaw } from "../mod/store/kit/raw_text.ts";
import { startBucketServer } from "./bucket_server.ts";
import { cli, query, withTempDir, writeConfig } from "./helpers.ts";
import { pgClient, pgTest, withPgDatabase } from "./pg.ts";

const SONG = (artist: string) =>
  JSON.stringify({ type: "song", data: { artist_name: artist, title: "T", year: 2000, release: "R" } });
/** A valid record followed by U+0000 and garbage on one NDJSON line: rightly "not JSON". */
const NUL_LINE = `${SONG("B")}\u0000 trailing garbage`;
const FILES: Record<string, string> = {
  "files_list.data": "a.data\nb.data\nc.data\n",
  "a.data": '[{"type":"song","data":\u0000}]',
  "b.data": `${SONG("A")}\n${NUL_LINE}\n`,
  "c.data": `[${SONG("C")}]`,
};

async function withBucket<T>(fn: (url: string) => Promise<T>): Promise<T> {
  return await withTempDir(async (dir) => {
    await Deno.mkdir(join(dir, "b"));
    for (const [key, text] of Object.entries(FILES)) await Deno.writeTextFile(join(dir, "b", key), text);
    const server = await startBucketServer(join(dir, "b"));
    try {
      return await fn(server.url);
    } finally {
      await server.close();
    }
  });
}

Deno.test("raw text: encodeRaw/decodeRaw round-trip any text; text without U+0000 is stored as it is", () => {
  for (const raw of ["", "plain", "a\u0000b", "\uffff", '\uffff"x"', "\u0000", "\ud800 lone", "\u001b[2J"]) {
    assert.equal(decodeRaw(encodeRaw(raw)), raw);
    assert.ok(!encodeRaw(raw)!.includes("\u0000"));
  }
  assert.equal(encodeRaw("plain"), "plain");
  assert.equal(decodeRaw(new TextEncoder().encode("a\u0000b")), "a\u0000b");
});

Deno.test("NUL (SQLite): replay with unchanged rules sees the whole stored text and loads nothing", async () => {
  await withBucket(async (url) => {
    await withTempDir(async (dir) => {
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${url}\nDATABASE_NAME = db.sqlite3\n`);
      const args = ["--config", config, "--profile", "p"];
      const run = await cli(args);
      assert.equal(run.code, 0, run.stderr);
      const db = join(dir, "db.sqlite3");
      const [stored] = query(db, "SELECT CAST(raw AS BLOB) AS raw FROM rejected_records WHERE key = 'b.data'");
      assert.equal(decodeRaw(stored!.raw as Uint8Array), NUL_LINE, "the raw text did not come back byte for byte");
      const songs = query(db, "SELECT artist_name FROM songs ORDER BY 1").map((r) => r.artist_name);
      const replay = await cli(["replay", "--json", ...args]);
      assert.equal(replay.code, 0, replay.stderr);
      const report = JSON.parse(replay.stdout);
      assert.equal(report.runId, null, "an unchanged replay wrote");
      assert.deepEqual(Object.values(report.loaded).filter((n) => n !== 0), []);
      assert.deepEqual(query(db, "SELECT artist_name FROM songs ORDER BY 1").map((r) => r.artist_name), songs);
    });
  });
});

pgTest("NUL (PostgreSQL): a NUL in a file is a stored rejection, never a failed run; the same as SQLite", async () => {
  await withBucket(async (url) => {
    await withTempDir(async (dir) => {
      await withPgDatabase(async (pgUrl) => {
        const pg = await writeConfig(
          dir,
          `[pg]\nBUCKET_NAME = ${url}\nDATABASE_URL = ${pgUrl}\n[lite]\nBUCKET_NAME = ${url}\nDATABASE_NAME = db.sqlite3\n`,
        );
        const run = await cli(["--config", pg, "--profile", "pg"]);
        assert.equal(run.code, 0, run.stderr);
        assert.equal((await cli(["--config", pg, "--profile", "lite"])).code, 0);
        const lite = query(
          join(dir, "db.sqlite3"),
          "SELECT key, record_index, reason, CAST(raw AS BLOB) AS raw FROM rejected_records ORDER BY key, record_index",
        ).map((r) => ({ ...r, raw: decodeRaw(r.raw as Uint8Array) }));
        const sql = pgClient(pgUrl);
        try {
          const rows =
            await sql`SELECT key, record_index, reason, raw FROM rejected_records ORDER BY key, record_index`;
          assert.deepEqual(
            rows.map((r) => ({
              ...r,
              record_index: r.record_index === null ? null : Number(r.record_index),
              raw: decodeRaw(r.raw),
            })),
            lite,
          );
          assert.ok(lite.some((r) => r.raw === NUL_LINE));
          const songs = await sql`SELECT artist_name FROM songs ORDER BY 1`;
          assert.deepEqual(songs.map((r) => r.artist_name), ["A", "C"]);
          const replay = await cli(["replay", "--json", "--config", pg, "--profile", "pg"]);
          assert.equal(replay.code, 0, replay.stderr);
          assert.equal(JSON.parse(replay.stdout).runId, null, "an unchanged replay wrote");
        } finally {
          await sql.end();
        }
      });
    });
  });
});
