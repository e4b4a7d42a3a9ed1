/**
 * What a run keeps of a list instead of its body (`mod/source/list_text.ts`):
 * a list that is unchanged or grew at its end is read by its tail and its
 * pending keys, and that read plans exactly what a whole parse plans: the
 * same keys to fetch at the same list positions, the same refused keys,
 * duplicates and count. Then the same through the pipeline, over a real
 * server, against a fresh run of the same list.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import fc from "fast-check";
import { type ListState, NotInEncodingError, parseListing, readAgainst, readWhole } from "../mod/source/list_text.ts";
import { startBucketServer } from "./bucket_server.ts";
import { hostileText } from "./hostile_gen.ts";
import { cli, copyCase, dumpDatabase, query, withTempDir, writeConfig } from "./helpers.ts";

const utf8 = (text: string) => new TextEncoder().encode(text);

/** A list line: plain keys that repeat, padded and CRLF ones, refused ones, blanks, and hostile text. */
const line = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 40 }).map((n) => `k${n}.data`) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 40 }).map((n) => `  k${n}.data \r`) },
  { weight: 1, arbitrary: fc.constantFrom("../up.data", "/abs.data", "http://h/x", "a/../b") },
  { weight: 1, arbitrary: fc.constantFrom("", " ", "\r", "\ufeff") },
  { weight: 1, arbitrary: hostileText() },
);

/** Text to add to a list: lines, with or without a last line feed (a partial last line). */
const piece = fc.tuple(fc.array(line, { maxLength: 8 }), fc.boolean())
  .map(([lines, end]) => lines.join("\n") + (end && lines.length > 0 ? "\n" : ""));

/** How the list changes between two runs. */
const change = fc.oneof(
  { weight: 5, arbitrary: piece.map((p) => (list: string) => list + p) },
  { weight: 3, arbitrary: piece.map((p) => (list: string) => list + "\n" + p) },
  { weight: 1, arbitrary: fc.constant((list: string) => list) },
  { weight: 1, arbitrary: piece.map((p) => (_: string) => p) },
  { weight: 1, arbitrary: piece.map((p) => (list: string) => p + list) },
);

/** The keys a whole parse plans: accepted keys not registered, with their positions. */
function expectedTodo(keys: readonly string[], registered: ReadonlySet<string>): [string, number][] {
  return keys.map((k, i) => [k, i] as [string, number]).filter(([k]) => !registered.has(k));
}

Deno.test("a list read against the last run's state plans what a whole parse plans, over appends, rewrites and hostile lines", async () => {
  await fc.assert(
    fc.asyncProperty(
      piece,
      fc.array(fc.tuple(change, fc.array(fc.boolean(), { maxLength: 60 })), { minLength: 1, maxLength: 5 }),
      async (first, steps) => {
        const registered = new Set<string>();
        let text = first;
        const read = await readWhole(utf8(text), "utf-8");
        let state: ListState = {
          ...read.state,
          pending: expectedTodo(read.listing.keys, registered),
        };
        for (const [changeList, registers] of steps) {
          text = changeList(text);
          const whole = await readWhole(utf8(text), "utf-8");
          let got = await readAgainst(utf8(text), "utf-8", state);
          if (got.kind === "delta" && got.gained.some((k) => registered.has(k))) got = await got.whole!();
          const expected = expectedTodo(whole.listing.keys, registered);
          if (got.kind === "full") {
            assert.deepEqual(got.listing, whole.listing);
          } else {
            const todo = got.keys.map((k, i) => [k, got.positions[i]!] as [string, number])
              .filter(([k]) => !registered.has(k));
            assert.deepEqual(todo, expected, `the tail read planned other keys for ${JSON.stringify(text)}`);
            assert.deepEqual(got.refused, whole.listing.refused);
            assert.equal(got.duplicates, whole.listing.duplicates);
            assert.equal(got.count, whole.listing.keys.length);
          }
          assert.deepEqual({ ...got.state, pending: [] }, whole.state, "the state kept differs from the whole list's");
          // The run registers some of the keys it fetched; the rest stay pending.
          expected.forEach(([k], i) => registers[i] && registered.add(k));
          state = { ...got.state, pending: expectedTodo(whole.listing.keys, registered) };
        }
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("a list read against its state: a tail that is not valid UTF-8 throws NotInEncodingError; UTF-16 is read whole or unchanged", async () => {
  const first = await readWhole(utf8("a.data\nb.data\n"), "utf-8");
  const bad = new Uint8Array([...utf8("a.data\nb.data\n"), 0xff, 0x0a]);
  await assert.rejects(() => readAgainst(bad, "utf-8", first.state), NotInEncodingError);
  const utf16 = (text: string) => new Uint8Array(new Uint16Array([...text].map((c) => c.charCodeAt(0))).buffer);
  const kept = await readWhole(utf16("a.data\nb.data\n"), "utf-16le");
  assert.deepEqual(kept.listing.keys, ["a.data", "b.data"]);
  const same = await readAgainst(utf16("a.data\nb.data\n"), "utf-16le", kept.state);
  assert.equal(same.kind, "delta");
  assert.equal(same.same, true);
  const grown = await readAgainst(utf16("a.data\nb.data\nc.data\n"), "utf-16le", kept.state);
  assert.equal(grown.kind, "full", "a UTF-16 list is never read by its tail");
});

const runCount = (db: string) => query(db, "SELECT count(*) AS n FROM runs")[0]!.n as number;

Deno.test("an appended list is read by its tail: only the new keys are fetched, at the positions a fresh run gives them, and the list body is not kept", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const listPath = join(bucket, "files_list.data");
    const original = await Deno.readTextFile(listPath);
    const keys = original.split("\n").map((l) => l.trim()).filter((l) => l !== "");
    // The first run sees all but the last two keys, and one key the bucket lacks (pending).
    await Deno.writeTextFile(listPath, [...keys.slice(0, -2), "late.data"].join("\n") + "\n");
    const server = await startBucketServer(bucket, { etags: true });
    try {
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = db.sqlite3\n`);
      const args = ["--config", config, "--profile", "p", "--log-level", "debug"];
      const db = join(dir, "db.sqlite3");
      const first = await cli(args);
      assert.equal(first.code, 0, first.stderr);
      assert.equal(query(db, "SELECT body FROM list_cache")[0]!.body, "", "the list body is kept");
      const kept = JSON.parse(query(db, "SELECT value FROM meta WHERE name = 'list_state'")[0]!.value as string);
      const firstKeys = parseListing(await Deno.readTextFile(listPath)).keys;
      assert.deepEqual(kept.state.pending, [["late.data", firstKeys.indexOf("late.data")]]);
      // Unchanged (304): the pending key is asked for again, and only it.
      const hits = server.hits(keys[0]!);
      const second = await cli(args);
      assert.equal(second.code, 0, second.stderr);
      assert.equal(server.hits("late.data"), 2, "the pending key was not fetched again");
      assert.equal(server.hits(keys[0]!), hits, "a registered key was fetched again");
      // The list grows at its end: a refused key and the two held back; the late file appears.
      await Deno.writeTextFile(join(bucket, "late.data"), "[]");
      const grown = [...keys.slice(0, -2), "late.data", "../refused.data", ...keys.slice(-2)];
      await Deno.writeTextFile(listPath, grown.join("\n") + "\n");
      const third = await cli(args);
      assert.equal(third.code, 0, third.stderr);
      assert.match(third.stderr, /The list is read by its tail: \d+ keys gained, 1 pending before/);
      assert.match(third.stderr, /Refused key \.\.\/refused\.data/);
      assert.equal(runCount(db), 3);
      // A line that repeats a registered key (and one more key): only a whole parse tells the positions.
      await Deno.writeTextFile(join(bucket, "later.data"), "[]");
      await Deno.writeTextFile(listPath, [...grown, keys[0], "later.data"].join("\n") + "\n");
      const fourth = await cli(args);
      assert.equal(fourth.code, 0, fourth.stderr);
      assert.match(fourth.stderr, /A key the list gained is registered: the list is read whole/);
      assert.equal(runCount(db), 4);
      // What a fresh run of the final list gives, positions included.
      await withTempDir(async (other) => {
        const fresh = await writeConfig(other, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = db.sqlite3\n`);
        const run = await cli(["--config", fresh, "--profile", "p"]);
        assert.equal(run.code, 0, run.stderr);
        const freshDb = join(other, "db.sqlite3");
        assert.deepEqual(dumpDatabase(db, { ingestionTime: false }), dumpDatabase(freshDb, { ingestionTime: false }));
        const positions = (d: string) => query(d, "SELECT key, position FROM processed_files ORDER BY key");
        assert.deepEqual(positions(db), positions(freshDb));
        const rowPositions = (d: string) =>
          query(d, "SELECT source_key, source_pos FROM songs ORDER BY artist_name, title");
        assert.deepEqual(rowPositions(db), rowPositions(freshDb));
      });
      // Unchanged again, nothing pending: nothing to do.
      const fifth = await cli(args);
      assert.equal(fifth.code, 0, fifth.stderr);
      assert.match(fifth.stdout, /nothing to do/);
      assert.equal(runCount(db), 4);
    } finally {
      await server.close();
    }
  });
});

Deno.test("a list kept as text by an older build is read from it once and kept as a state by the next no-op run", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const server = await startBucketServer(bucket, { etags: true });
    try {
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = db.sqlite3\n`);
      const args = ["--config", config, "--profile", "p"];
      const db = join(dir, "db.sqlite3");
      assert.equal((await cli(args)).code, 0);
      // As an older build left it: the body in list_cache, no state.
      const body = await Deno.readTextFile(join(bucket, "files_list.data"));
      const { DatabaseSync } = await import("node:sqlite");
      const d = new DatabaseSync(db);
      d.prepare("UPDATE list_cache SET body = ?").run(body);
      d.exec("DELETE FROM meta WHERE name = 'list_state'");
      d.close();
      const second = await cli(args);
      assert.equal(second.code, 0, second.stderr);
      assert.match(second.stdout, /nothing to do/);
      assert.equal(query(db, "SELECT count(*) AS n FROM meta WHERE name = 'list_state'")[0]!.n, 1);
      assert.equal(runCount(db), 1);
    } finally {
      await server.close();
    }
  });
});

Deno.test("a list whose last line had no line feed, completed and grown: read by its tail, the completed key not counted as gained", async () => {
  const first = await readWhole(utf8("a.data\nb.data"), "utf-8");
  const got = await readAgainst(utf8("a.data\nb.data\nc.data\n"), "utf-8", { ...first.state, pending: [] });
  assert.equal(got.kind, "delta");
  assert.deepEqual(got.kind === "delta" && got.gained, ["c.data"]);
  assert.deepEqual(got.kind === "delta" && got.positions, [1, 2]);
});

Deno.test("two lists in one database: each is read whole when the other's state replaced its own, and its pending keys are not lost", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const keys = (await Deno.readTextFile(join(bucket, "files_list.data"))).split("\n").filter((l) => l.trim());
    await Deno.writeTextFile(join(bucket, "a.list"), [keys[0], "late.data"].join("\n"));
    await Deno.writeTextFile(join(bucket, "b.list"), keys[1]!);
    const server = await startBucketServer(bucket, { etags: true });
    try {
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = db.sqlite3\n`);
      const run = (list: string) =>
        cli(["--config", config, "--profile", "p"], { env: { BUCKETLOAD_FILES_LIST_KEY: list } });
      assert.equal((await run("a.list")).code, 0);
      assert.equal(server.hits("late.data"), 1);
      assert.equal((await run("b.list")).code, 0);
      // a.list answers 304, but its state is gone: read whole, and its pending key asked for again.
      const again = await run("a.list");
      assert.equal(again.code, 0, again.stderr);
      assert.equal(server.hits("late.data"), 2, "a pending key of the first list was lost");
    } finally {
      await server.close();
    }
  });
});

Deno.test("BUCKET_ENCODING changed while the list answers 304: the list is read again in the new encoding", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "bucket");
    await Deno.mkdir(bucket);
    await Deno.writeFile(
      join(bucket, "files_list.data"),
      new Uint8Array([...utf8("a.data\ncaf"), 0xc3, 0xa9, ...utf8(".data\n")]),
    );
    for (const key of ["a.data", "café.data", "cafÃ©.data"]) await Deno.writeTextFile(join(bucket, key), "[]");
    const server = await startBucketServer(bucket, { etags: true });
    try {
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = db.sqlite3\n`);
      const run = (encoding: string) =>
        cli(["--config", config, "--profile", "p"], { env: { BUCKETLOAD_BUCKET_ENCODING: encoding } });
      assert.equal((await run("utf-8")).code, 0);
      const latin = await run("latin1");
      assert.equal(latin.code, 0, latin.stderr);
      assert.doesNotMatch(latin.stdout, /nothing to do/);
      const keys = query(join(dir, "db.sqlite3"), "SELECT key FROM processed_files ORDER BY key").map((r) => r.key);
      assert.deepEqual(keys, ["a.data", "cafÃ©.data", "café.data"]);
    } finally {
      await server.close();
    }
  });
});

Deno.test("a key removed from the registry by hand: the next run reads the list whole, fetches it again at its own position, and later keys keep theirs", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "bucket");
    await Deno.mkdir(bucket);
    // Each file holds the same song: the later file in list order wins.
    const song = (year: number) =>
      JSON.stringify([{ type: "song", data: { artist_name: "A", title: "T", year, release: "R" } }]);
    for (const [i, key] of ["a.data", "b.data", "c.data", "e.data"].entries()) {
      await Deno.writeTextFile(join(bucket, key), song(2000 + i));
    }
    const listPath = join(bucket, "files_list.data");
    await Deno.writeTextFile(listPath, "a.data\nb.data\nc.data\n");
    const server = await startBucketServer(bucket, { etags: true });
    try {
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = db.sqlite3\n`);
      const args = ["--config", config, "--profile", "p", "--log-level", "debug"];
      const db = join(dir, "db.sqlite3");
      assert.equal((await cli(args)).code, 0);
      const { DatabaseSync } = await import("node:sqlite");
      const d = new DatabaseSync(db);
      d.exec("DELETE FROM processed_files WHERE key = 'b.data'");
      d.close();
      // Unchanged (304): read whole, b.data fetched again at position 1.
      const again = await cli(args);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stderr, /The registry holds another number of keys than the last run left/);
      assert.equal(server.hits("b.data"), 2);
      // b.data appended again (a repeat) and a new key: the same as a fresh run.
      const e = new DatabaseSync(db);
      e.exec("DELETE FROM processed_files WHERE key = 'b.data'");
      e.close();
      await Deno.writeTextFile(listPath, "a.data\nb.data\nc.data\nb.data\ne.data\n");
      assert.equal((await cli(args)).code, 0);
      await withTempDir(async (other) => {
        const fresh = await writeConfig(other, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = db.sqlite3\n`);
        assert.equal((await cli(["--config", fresh, "--profile", "p"])).code, 0);
        const freshDb = join(other, "db.sqlite3");
        const positions = (x: string) => query(x, "SELECT key, position FROM processed_files ORDER BY key");
        assert.deepEqual(positions(db), positions(freshDb));
        const rows = (x: string) => query(x, "SELECT year, source_key, source_pos FROM songs");
        assert.deepEqual(rows(db), rows(freshDb));
      });
    } finally {
      await server.close();
    }
  });
});
