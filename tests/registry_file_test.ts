/**
 * `PROCESSED_FILES_FILENAME` kept up to date by appending: after any
 * sequence of runs (new keys, keys registered again, a file edited or
 * removed by hand, a note lost), the file holds exactly what a whole write
 * of the registry gives, and the runs that only added keys appended.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import fc from "fast-check";
import { type RegistryFileStore, updateRegistryFile, writeRegistryFile } from "../mod/store/registry_file.ts";
import type { RegistrySince } from "../mod/store/store.ts";
import { startBucketServer } from "./bucket_server.ts";
import { cli, copyCase, query, withTempDir, writeConfig } from "./helpers.ts";
import { hostileText } from "./hostile_gen.ts";

/** A registry in memory: each key with the run that last registered it; notes by name. */
class MemoryRegistry implements RegistryFileStore {
  readonly runs = new Map<string, number>();
  readonly notes = new Map<string, string>();
  ordered(after = 0): string[] {
    return [...this.runs].filter(([, run]) => run > after)
      .sort(([ka, a], [kb, b]) => a - b || (ka < kb ? -1 : ka > kb ? 1 : 0)).map(([k]) => k);
  }
  registrySince(after?: number): Promise<RegistrySince> {
    return Promise.resolve({
      keys: this.ordered(after ?? 0),
      count: this.runs.size,
      lastRun: Math.max(0, ...this.runs.values()),
    });
  }
  readNote(name: string): Promise<string | undefined> {
    return Promise.resolve(this.notes.get(name));
  }
  writeNote(name: string, value: string): Promise<void> {
    this.notes.set(name, value);
    return Promise.resolve();
  }
}

/** What happens between two writes of the file (`db`: which of two databases sharing it runs). */
const step = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.tuple(
      fc.array(fc.oneof(hostileText(), fc.constantFrom("a", "b", "c", "d")), { maxLength: 5 }),
      fc.integer({ min: 0, max: 4 }),
    ).map(([keys, db]) => ({ kind: "run" as const, keys, db: db === 4 ? 1 : 0 })),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "edit" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "remove" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "forget" as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: "same-size edit" as const }) },
);

Deno.test("the registry file, appended to or written whole, always holds what a whole write gives, even shared or edited", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "processed.json");
    const expected = join(dir, "expected.json");
    let appended = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 12 }), async (steps) => {
        const registries = [new MemoryRegistry(), new MemoryRegistry()];
        let registry = registries[0]!;
        await Deno.remove(path).catch(() => {});
        let run = 0;
        for (const s of steps) {
          if (s.kind === "run") {
            run++;
            registry = registries[s.db]!;
            for (const key of s.keys) registry.runs.set(key, run);
          } else if (s.kind === "edit") {
            await Deno.writeTextFile(path, '[\n  "edited"\n]\n').catch(() => {});
          } else if (s.kind === "same-size edit") {
            // The same length, the first key changed in place (the same inode), a second later.
            const text = await Deno.readTextFile(path).catch(() => "");
            const at = text.indexOf('"', 5);
            if (at > 5 && text[at - 1] !== "\\" && text[at - 1] !== '"') {
              await Deno.writeTextFile(
                path,
                text.slice(0, at - 1) + (text[at - 1] === "x" ? "y" : "x") + text.slice(at),
              );
              const { mtime } = await Deno.stat(path);
              await Deno.utime(path, new Date(), new Date(mtime!.getTime() + 1000));
            }
          } else if (s.kind === "remove") await Deno.remove(path).catch(() => {});
          else registry.notes.clear();
          if (s.kind !== "run") continue;
          const how = await updateRegistryFile(path, registry);
          if (how !== "written") appended++;
          await writeRegistryFile(expected, registry.ordered());
          assert.equal(await Deno.readTextFile(path), await Deno.readTextFile(expected));
        }
      }),
      { numRuns: 200 },
    );
    assert.ok(appended > 100, `only ${appended} writes appended or found current`);
  });
});

Deno.test("a run reads processed.json only at a take-over or a first run, and appends the keys it registered", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const listPath = join(bucket, "files_list.data");
    const keys = (await Deno.readTextFile(listPath)).split("\n").filter((l) => l.trim() !== "");
    await Deno.writeTextFile(listPath, keys.slice(0, -1).join("\n") + "\n");
    const server = await startBucketServer(bucket);
    try {
      const config = await writeConfig(
        dir,
        `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = db.sqlite3\nPROCESSED_FILES_FILENAME = processed.json\n`,
      );
      const args = ["--config", config, "--profile", "p", "--log-level", "debug"];
      const db = join(dir, "db.sqlite3");
      const file = join(dir, "processed.json");
      const registered = () => query(db, "SELECT key FROM processed_files ORDER BY run_id, key").map((r) => r.key);
      const first = await cli(args);
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stderr, /PROCESSED_FILES_FILENAME \S+: written/);
      assert.deepEqual(JSON.parse(await Deno.readTextFile(file)), registered());
      // Not a take-over and not a first run: the file is not read (were it, this would be a usage error).
      await Deno.writeTextFile(listPath, keys.join("\n") + "\n");
      const text = await Deno.readTextFile(file);
      const second = await cli(args);
      assert.equal(second.code, 0, second.stderr);
      assert.match(second.stderr, /PROCESSED_FILES_FILENAME \S+: appended/);
      assert.ok((await Deno.readTextFile(file)).startsWith(text.slice(0, -3)), "the file was not appended to");
      assert.deepEqual(JSON.parse(await Deno.readTextFile(file)), registered());
      // Keys registered again move to the end: the file is written whole.
      const forced = await cli([...args, "--force"]);
      assert.equal(forced.code, 0, forced.stderr);
      assert.match(forced.stderr, /PROCESSED_FILES_FILENAME \S+: written/);
      assert.deepEqual(JSON.parse(await Deno.readTextFile(file)), registered());
      // Damaged by hand: never read after the first run, written whole at the next commit.
      await Deno.writeTextFile(file, "not json");
      await Deno.writeTextFile(listPath, [...keys, "late.data"].join("\n") + "\n");
      await Deno.writeTextFile(join(bucket, "late.data"), "[]");
      const third = await cli(args);
      assert.equal(third.code, 0, third.stderr);
      assert.match(third.stderr, /PROCESSED_FILES_FILENAME \S+: written/);
      assert.deepEqual(JSON.parse(await Deno.readTextFile(file)), registered());
      // Lost after a commit (a write killed or failed): the next run, with nothing to do, makes it current.
      await Deno.remove(file);
      const noop = await cli(args);
      assert.equal(noop.code, 0, noop.stderr);
      assert.match(noop.stdout, /nothing to do/);
      assert.deepEqual(JSON.parse(await Deno.readTextFile(file)), registered());
      // And one that is current is left alone.
      const again = await cli(args);
      assert.match(again.stderr, /PROCESSED_FILES_FILENAME \S+: current/);
    } finally {
      await server.close();
    }
  });
});
