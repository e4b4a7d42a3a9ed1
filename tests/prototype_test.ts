/**
 * Names that data decides (record types, field names) are data, never an
 * object's members: a type named `toString`, `constructor` or `__proto__` is
 * ignored like any unknown type, on both stores.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import fc from "fast-check";
import { runPipeline } from "../mod/run/pipeline.ts";
import { RECORD_TYPES } from "../mod/records/mod.ts";
import { HttpSource } from "../mod/source/http/http.ts";
import { PostgresStore } from "../mod/store/postgres/mod.ts";
import { SqliteStore } from "../mod/store/sqlite/mod.ts";
import type { Store } from "../mod/store/store.ts";
import { startBucketServer } from "./bucket_server.ts";
import { MemorySource } from "./memory_source.ts";
import { PIPELINE_DEFAULTS, query, withTempDir } from "./helpers.ts";
import { pgQuery, pgTest, withPgDatabase } from "./pg.ts";

/** Object.prototype's own names, and the ones JSON and V8 treat specially. */
const PROTO_NAMES = [...Object.getOwnPropertyNames(Object.prototype), "__proto__", "prototype", "then"];

const song = (title: string) => ({ type: "song", data: { artist_name: "A", title, year: 1, release: "R" } });

/** A file whose records are typed with prototype names (and one song), their data keyed with them too. */
const hostileFile = fc.record({
  names: fc.array(fc.constantFrom(...PROTO_NAMES), { minLength: 1, maxLength: 6 }),
  fields: fc.array(fc.constantFrom(...PROTO_NAMES), { maxLength: 4 }),
  title: fc.string({ minLength: 1, maxLength: 8 }).filter((t) => /\p{L}/u.test(t)),
}).map(({ names, fields, title }) => {
  const data = () => JSON.parse(`{${fields.map((f) => `${JSON.stringify(f)}: 1`).join(",")}}`);
  // JSON text, not objects: "__proto__" must arrive as JSON.parse makes it, an own key.
  const records = [...names.map((type) => `{"type": ${JSON.stringify(type)}, "data": ${JSON.stringify(data())}}`)];
  records.push(JSON.stringify(song(title)));
  return { names, text: `[${records.join(",")}]` };
});

/** The expected ignored counts of `names`, counted without any prototype. */
function expectedIgnored(files: readonly { names: readonly string[] }[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { names } of files) for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
  return counts;
}

Deno.test("record types named like Object.prototype members are ignored, counted and committed (property)", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(hostileFile, { minLength: 1, maxLength: 4 }), async (files) => {
      await withTempDir(async (dir) => {
        const source = new MemorySource(new Map(files.map((f, i) => [`f${i}.data`, f.text])));
        const store = SqliteStore.open(join(dir, "db.sqlite3"), { types: RECORD_TYPES });
        try {
          const report = await runPipeline({ ...PIPELINE_DEFAULTS, source, store });
          assert.equal(report.status, "ok");
          assert.equal(report.filesLoaded, files.length);
          assert.deepEqual(new Map(Object.entries(report.ignored)), expectedIgnored(files));
        } finally {
          store.close();
        }
        const [run] = query(join(dir, "db.sqlite3"), "SELECT records_ignored, ignored_by_type FROM runs");
        assert.equal(run!.records_ignored, files.reduce((n, f) => n + f.names.length, 0));
        assert.deepEqual(new Map(Object.entries(JSON.parse(run!.ignored_by_type as string))), expectedIgnored(files));
      });
    }),
    { numRuns: 30 },
  );
});

const FIXED = [
  `[{"type": "toString", "data": {}}, {"type": "constructor", "data": {"constructor": 1}}, ${
    JSON.stringify(song("x"))
  }]`,
  `[{"type": "hasOwnProperty", "data": {}}, {"type": "__proto__", "data": {"__proto__": {"a": 1}}}, ${
    JSON.stringify(song("y"))
  }]`,
];

/** Runs the fixed hostile files from a real HTTP bucket into `store`; the next run has nothing left to load. */
async function hostileRun(store: Store) {
  const files = Object.fromEntries(FIXED.map((text, i) => [`p${i}.data`, text]));
  await withTempDir(async (dir) => {
    const server = await startBucketServer(dir, {
      files: { ...files, "files_list.data": Object.keys(files).join("\n") },
    });
    try {
      const source = new HttpSource(new URL(server.url), { retryBaseMs: 5 });
      const first = await runPipeline({ ...PIPELINE_DEFAULTS, source, store });
      assert.equal(first.status, "ok");
      assert.equal(first.filesLoaded, 2);
      assert.deepEqual({ ...first.ignored }, { toString: 1, constructor: 1, hasOwnProperty: 1, ["__proto__"]: 1 });
      const second = await runPipeline({ ...PIPELINE_DEFAULTS, source, store });
      assert.equal(second.filesNew, 0, "a file was not registered: it blocks every later run");
    } finally {
      await server.close();
    }
  });
}

Deno.test("a type named toString, constructor, hasOwnProperty or __proto__ does not block a bucket (SQLite)", async () => {
  await withTempDir(async (dir) => {
    const store = SqliteStore.open(join(dir, "db.sqlite3"), { types: RECORD_TYPES });
    try {
      await hostileRun(store);
    } finally {
      store.close();
    }
    assert.deepEqual(query(join(dir, "db.sqlite3"), "SELECT records_ignored FROM runs ORDER BY id LIMIT 1"), [
      { records_ignored: 4 },
    ]);
  });
});

pgTest("a type named toString, constructor, hasOwnProperty or __proto__ does not block a bucket", async () => {
  await withPgDatabase(async (url) => {
    const store = await PostgresStore.open(url, { types: RECORD_TYPES });
    try {
      await hostileRun(store);
    } finally {
      await store.close();
    }
    assert.deepEqual(await pgQuery(url, "SELECT records_ignored FROM runs ORDER BY id LIMIT 1"), [{
      records_ignored: 4,
    }]);
  });
});
