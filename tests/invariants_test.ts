/**
 * The promises the docs state, as properties over the shared hostile
 * generator (`hostile_gen.ts`): for every generated bucket,
 *
 * - a load equals a fresh load however it was delivered (buffered or streamed
 *   in parts, one fetch at a time or many), and a rerun changes nothing;
 * - it is the same on SQLite and on PostgreSQL;
 * - a replay with unchanged rules changes no table (both stores);
 * - a row's `extra` holds each unknown field of its record as the file wrote
 *   it, in its order, every occurrence (both stores, buffered or streamed,
 *   JSON array or NDJSON), and a column filled from it later gets what a
 *   fresh load by the new type gives;
 * - nothing shown to a person or written to a log carries a control
 *   character from the bucket;
 * - no secret (the bucket's user:password, the status token) is in any
 *   output, log or table.
 *
 * When a surface is added (a command, an endpoint, a stored column, an
 * export), it is added here.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import fc from "fast-check";
import { getLogger } from "@logtape/logtape";
import { RECORD_TYPES } from "../mod/records/mod.ts";
import { runReplay } from "../mod/run/replay.ts";
import { runPipeline } from "../mod/run/pipeline.ts";
import { PostgresStore } from "../mod/store/postgres/mod.ts";
import { SqliteStore } from "../mod/store/sqlite/mod.ts";
import type { Store } from "../mod/store/store.ts";
import { startBucketServer } from "./bucket_server.ts";
import {
  cli,
  dumpDatabase,
  everything,
  FIXED_NOW,
  PIPELINE_DEFAULTS,
  query,
  withTempDir,
  writeConfig,
} from "./helpers.ts";
import { hostileBucket, type RawSong, rawSongs } from "./hostile_gen.ts";
import { MOOD_SONGS, MOOD_TYPES } from "./mood_type.ts";
import type { RecordType } from "../mod/records/mod.ts";
import { MemorySource } from "./memory_source.ts";
import { canonicalDump, pgDump, pgQuery, pgTest, withPgDatabase } from "./pg.ts";

/** What a terminal acts on: C0 but a line feed or tab, DEL, C1. */
// deno-lint-ignore no-control-regex
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

async function load(
  store: Store,
  files: ReadonlyMap<string, string | Uint8Array>,
  streamed: boolean,
  force = false,
  types: readonly RecordType[] = RECORD_TYPES,
) {
  return await runPipeline({
    ...PIPELINE_DEFAULTS,
    types,
    source: new MemorySource(files, 37),
    store,
    force,
    ...(streamed ? { streamThresholdBytes: 64, partElements: 2, concurrency: 1 } : { concurrency: 8 }),
  });
}

async function withSqlite<T>(
  db: string,
  fn: (store: SqliteStore) => Promise<T>,
  types: readonly RecordType[] = RECORD_TYPES,
): Promise<T> {
  const store = SqliteStore.open(db, { types });
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

const replay = (store: Store) =>
  runReplay({
    store,
    types: RECORD_TYPES,
    bucket: "memory:",
    dateStoreFormat: PIPELINE_DEFAULTS.dateStoreFormat,
    filter: {},
    dryRun: false,
    logger: getLogger(["bucketload"]),
    now: FIXED_NOW,
  });

Deno.test("invariant: a hostile bucket loads the same buffered or streamed; a rerun and an unchanged replay change nothing", async () => {
  await fc.assert(
    fc.asyncProperty(hostileBucket(), async (files) => {
      await withTempDir(async (dir) => {
        const [a, b] = [join(dir, "a.sqlite3"), join(dir, "b.sqlite3")];
        const first = await withSqlite(a, (s) => load(s, files, false));
        assert.notEqual(first.status, "list_failed");
        await withSqlite(b, (s) => load(s, files, true));
        assert.deepEqual(dumpDatabase(b), dumpDatabase(a), "streamed and buffered loads differ");
        await withSqlite(a, (s) => load(s, files, false, true));
        assert.deepEqual(dumpDatabase(a), dumpDatabase(b), "a --force rerun changed the tables");
        const before = everything(a);
        const r = await withSqlite(a, (s) => replay(s));
        assert.equal(r.runId, undefined, "a replay with unchanged rules wrote");
        assert.deepEqual(everything(a), before, "a replay with unchanged rules changed a table");
      });
    }),
    { numRuns: 40 },
  );
});

pgTest(
  "invariant: a hostile bucket gives the same tables on PostgreSQL as on SQLite; an unchanged replay writes nothing",
  async () => {
    await fc.assert(
      fc.asyncProperty(hostileBucket({ nul: false }), async (files) => {
        await withTempDir(async (dir) => {
          const db = join(dir, "db.sqlite3");
          await withSqlite(db, (s) => load(s, files, false));
          await withPgDatabase(async (url) => {
            const pg = await PostgresStore.open(url, { types: RECORD_TYPES });
            try {
              const report = await load(pg, files, true);
              assert.equal(report.status, "ok");
              assert.deepEqual(await pgDump(url), canonicalDump(dumpDatabase(db)), "the stores differ");
              const before = await pgDump(url, { fullRegistry: true });
              assert.equal((await replay(pg)).runId, undefined, "a replay with unchanged rules wrote");
              assert.deepEqual(await pgDump(url, { fullRegistry: true }), before);
            } finally {
              await pg.close();
            }
          });
        });
      }),
      { numRuns: 12 },
    );
  },
);

/** Hand-written songs as one file: a JSON array (a record a line) or NDJSON. */
function rawFile(songs: readonly RawSong[], ndjson: boolean): Map<string, string> {
  const texts = songs.map((s) => s.text);
  return new Map([ndjson ? ["s.ndjson", texts.join("\n")] : ["s.data", `[\n${texts.join(",\n")}\n]`]]);
}

/** Each song's `extra` by title, as stored (read as bytes: node:sqlite cuts a text at U+0000). */
function sqliteExtras(db: string): Map<unknown, unknown> {
  return new Map(
    query(db, "SELECT title, CAST(extra AS BLOB) AS extra FROM songs").map((r) => [
      r.title,
      r.extra === null ? null : new TextDecoder().decode(r.extra as Uint8Array),
    ]),
  );
}

const expectedExtras = (songs: readonly RawSong[]) => new Map(songs.map((s) => [s.title, s.extra]));

Deno.test("invariant: extra holds each unknown field as the file wrote it, in order, every occurrence", async () => {
  await fc.assert(
    fc.asyncProperty(rawSongs(), fc.boolean(), async (songs, ndjson) => {
      await withTempDir(async (dir) => {
        for (const streamed of [false, true]) {
          const db = join(dir, `${streamed}.sqlite3`);
          await withSqlite(db, (s) => load(s, rawFile(songs, ndjson), streamed));
          assert.deepEqual(sqliteExtras(db), expectedExtras(songs), streamed ? "streamed" : "buffered");
        }
      });
    }),
    { numRuns: 40 },
  );
});

pgTest("invariant: extra holds each unknown field as the file wrote it, in order, every occurrence", async () => {
  await fc.assert(
    fc.asyncProperty(rawSongs(), fc.boolean(), async (songs, ndjson) => {
      await withPgDatabase(async (url) => {
        const pg = await PostgresStore.open(url, { types: RECORD_TYPES });
        try {
          await load(pg, rawFile(songs, ndjson), false);
        } finally {
          await pg.close();
        }
        const rows = await pgQuery(url, "SELECT title, extra FROM songs");
        assert.deepEqual(new Map(rows.map((r) => [r.title, r.extra])), expectedExtras(songs));
      });
    }),
    { numRuns: 10 },
  );
});

Deno.test("invariant: a column filled from extra gets what a fresh load by the new type gives", async () => {
  let filledRows = 0;
  await fc.assert(
    fc.asyncProperty(rawSongs(), async (songs) => {
      await withTempDir(async (dir) => {
        const files = rawFile(songs, false);
        const [kept, fresh] = [join(dir, "kept.sqlite3"), join(dir, "fresh.sqlite3")];
        await withSqlite(kept, (s) => load(s, files, false));
        const before = sqliteExtras(kept);
        const filled = await withSqlite(kept, (s) => load(s, files, false, false, MOOD_TYPES), MOOD_TYPES);
        await withSqlite(fresh, (s) => load(s, files, false, false, MOOD_TYPES), MOOD_TYPES);
        const freshRows = query(fresh, MOOD_SONGS);
        const keptRows = query(kept, MOOD_SONGS);
        const titles = new Set(freshRows.map((r) => r.title));
        // The rows a fresh load by the new type has are the same; the others (no mood, or one that fails the check:
        // a fresh load rejects them) stay as they were, the column NULL and extra as written.
        assert.deepEqual(keptRows.filter((r) => titles.has(r.title)), freshRows);
        const others = keptRows.filter((r) => !titles.has(r.title));
        const after = sqliteExtras(kept);
        for (const r of others) {
          assert.equal(r.mood, null);
          assert.equal(after.get(r.title), before.get(r.title));
        }
        const carried = (title: unknown) => {
          const extra = before.get(title);
          return typeof extra === "string" && Object.hasOwn(JSON.parse(extra), "mood");
        };
        assert.equal(filled.rederived.filled.failed, others.filter((r) => carried(r.title)).length);
        filledRows += filled.rederived.filled.rows;
      });
    }),
    { numRuns: 40 },
  );
  assert.ok(filledRows > 0, "no run filled a row");
});

Deno.test("invariant: nothing a person or a log sees carries a bucket's control character, and no secret shows", async () => {
  const user = "reader";
  const password = "pw-S3cr3t#;%";
  const token = "tok-Z9x8y7";
  await fc.assert(
    fc.asyncProperty(hostileBucket(), async (files) => {
      await withTempDir(async (dir) => {
        const bucket = join(dir, "bucket");
        await Deno.mkdir(bucket);
        await Deno.writeTextFile(join(bucket, "files_list.data"), [...files.keys()].join("\n"));
        for (const [key, body] of files) {
          // A key that is not a plain file name is refused before any fetch: it needs no file.
          if (/^[\w.-]+$/.test(key)) {
            await Deno.writeFile(join(bucket, key), typeof body === "string" ? new TextEncoder().encode(body) : body);
          }
        }
        const server = await startBucketServer(bucket);
        try {
          const url = new URL(server.url);
          url.username = user;
          url.password = encodeURIComponent(password);
          const logs = join(dir, "logs");
          const config = await writeConfig(
            dir,
            `[p]\nBUCKET_NAME = ${url}\nDATABASE_NAME = db.sqlite3\nSAVE_LOG = yes\nLOG_DIR = ${logs}\n` +
              `STATUS_TOKEN = ${token}\n`,
          );
          const args = ["--config", config, "--profile", "p"];
          const outputs: [string, string][] = [];
          for (
            const command of [
              [...args, "--log-level", "debug"],
              [...args, "--force", "--json", "--log-format", "json"],
              ["status", ...args],
              ["status", "--json", ...args],
              ["replay", ...args],
              ["replay", "--dry-run", "--json", ...args],
            ]
          ) {
            const out = await cli(command);
            assert.ok(out.code === 0 || out.code === 1, `${command.join(" ")}: exit ${out.code}: ${out.stderr}`);
            outputs.push([`${command[0]} stdout`, out.stdout], [`${command[0]} stderr`, out.stderr]);
          }
          for await (const e of Deno.readDir(logs)) {
            outputs.push([`log ${e.name}`, await Deno.readTextFile(join(logs, e.name))]);
          }
          const db = await Deno.readFile(join(dir, "db.sqlite3"));
          outputs.push(["database", new TextDecoder().decode(db)]);
          for (const [name, text] of outputs) {
            if (name !== "database") {
              const at = text.search(RAW_CONTROL);
              assert.equal(at, -1, `${name}: a raw control character: ${JSON.stringify(text.slice(at - 30, at + 10))}`);
            }
            for (const secret of [password, encodeURIComponent(password), token]) {
              assert.ok(!text.includes(secret), `${name} holds a secret`);
            }
          }
        } finally {
          await server.close();
        }
      });
    }),
    { numRuns: 6 },
  );
});
