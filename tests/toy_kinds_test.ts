/**
 * The architecture doc's source and store walkthroughs, done in this test
 * module alone: a toy source (`mem://NAME`, a bucket held in memory, with
 * its key `MEM_MAX_OBJECTS`) and a toy store (`TOY_DATABASE`, a SQLite file
 * under a key of its own, with `TOY_LOCK_TIMEOUT_SECONDS`) are each one
 * descriptor. Nothing under mod/ changes: the program's lists (`SOURCES`,
 * `STORES`) are extended here and passed to the functions that take a list
 * (the config's `kinds`, `configKeys`, `configurationDoc`, the launcher's
 * `childPermissions`); the config then carries the chosen kinds to the
 * commands. A source built in the worker is looked up in `SOURCES` itself,
 * so the run here has `WORKER = no`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { childPermissions } from "../launch.ts";
import { runAttributes, runOnceAction } from "../mod/commands/run.ts";
import { statusAction } from "../mod/commands/status.ts";
import { parseConfigText, resolveConfig } from "../mod/config/config.ts";
import { configKeys, KINDS, type Kinds } from "../mod/config/keys.ts";
import { UsageError } from "../mod/common/errors.ts";
import type { SourceKind, SourceSpec } from "../mod/source/kind.ts";
import { schemeOf } from "../mod/source/location.ts";
import type { BucketSource, FetchResult, GetOptions } from "../mod/source/source.ts";
import { SOURCES } from "../mod/source/sources.ts";
import type { StoreKind, StoreSpec } from "../mod/store/kind.ts";
import { SqliteStore } from "../mod/store/sqlite/mod.ts";
import { STORES } from "../mod/store/stores.ts";
import { configurationDoc } from "../tools/docs.ts";
import { query, ROOT, withTempDir } from "./helpers.ts";

/** Buckets held in memory, by name: what `mem://NAME` reads. */
const BUCKETS = new Map<string, ReadonlyMap<string, Uint8Array>>();

/** Step 1 of the source walkthrough: the source itself, a `BucketSource`. */
class MemorySource implements BucketSource {
  readonly display: string;
  readonly #objects: ReadonlyMap<string, Uint8Array>;

  constructor(name: string, objects: ReadonlyMap<string, Uint8Array>) {
    this.display = `mem://${name}`;
    this.#objects = objects;
  }

  get(key: string, { maxBytes }: GetOptions): Promise<FetchResult> {
    const body = this.#objects.get(key);
    if (body === undefined) return Promise.resolve({ kind: "missing", reason: "not in memory" });
    if (body.length > maxBytes) {
      return Promise.resolve({ kind: "too_large", bytes: body.length, cap: maxBytes, declared: true });
    }
    return Promise.resolve({ kind: "ok", body });
  }
}

/** A memory bucket, described for the worker. */
interface MemorySpec extends SourceSpec {
  readonly kind: "mem";
  readonly name: string;
}

/** Step 2: its descriptor: recognition, its key, what it needs, its factory. */
const memSource: SourceKind<MemorySpec> = {
  name: "mem",
  title: "memory",
  forms: "mem:",
  bucketName: { help: "mem://NAME", doc: "`mem://NAME`, a bucket held in memory" },
  keys: {
    MEM_MAX_OBJECTS: {
      default: "100",
      help: "memory buckets: most objects a bucket may hold",
      doc: "a memory bucket holding more objects is refused",
      number: { integer: true, min: 1, max: 1000 },
    },
  },
  variables: ["MEM_TRACE"],
  configure(value, { keys }) {
    if (schemeOf(value) !== "mem") return undefined;
    const name = value.slice("mem://".length);
    if (!/^[a-z]+$/.test(name)) throw new RangeError(`expected mem://NAME, got ${JSON.stringify(value)}`);
    const objects = BUCKETS.get(name);
    if (objects !== undefined && objects.size > keys.num("MEM_MAX_OBJECTS")) {
      throw new RangeError(`mem://${name} holds ${objects.size} objects, more than MEM_MAX_OBJECTS`);
    }
    return { kind: "mem", display: `mem://${name}`, name };
  },
  needs: () => ({ env: ["MEM_TRACE"] }),
  open: (spec) => Promise.resolve(new MemorySource(spec.name, BUCKETS.get(spec.name) ?? new Map())),
};

/** A toy store's file, described. */
interface ToySpec extends StoreSpec {
  readonly kind: "toy";
  readonly path: string;
  readonly lockTimeoutMs: number;
}

/** The store walkthrough's descriptor: named by its own key, which outranks the default's in the same layer. */
const toyStore: StoreKind<ToySpec> = {
  name: "toy",
  title: "Toy",
  key: "TOY_DATABASE",
  local: true,
  keys: {
    TOY_DATABASE: {
      default: undefined,
      help: "toy store: its file",
      shownDefault: "(none)",
      doc: "a file: load into the toy store",
    },
    TOY_LOCK_TIMEOUT_SECONDS: {
      default: "0",
      help: "toy store: how long to wait for another run's lock",
      doc: "how long a run waits for another run on the toy store",
      number: { max: 60 },
    },
  },
  named(keys) {
    if (keys.rank("TOY_DATABASE") < 0) return undefined;
    const where = keys.source("TOY_DATABASE");
    return { rank: keys.rank("TOY_DATABASE"), where, drop: () => `remove ${where}` };
  },
  configure(keys) {
    const path = keys.path("TOY_DATABASE")!;
    return { kind: "toy", display: `toy:${path}`, path, lockTimeoutMs: keys.num("TOY_LOCK_TIMEOUT_SECONDS") * 1000 };
  },
  needs: (spec) => ({ write: [dirname(spec.path)] }),
  open(spec, { types }) {
    // Underneath, SQLite: the point is the descriptor, which any store class could stand behind.
    const store = SqliteStore.open(spec.path, { types, lockTimeoutMs: spec.lockTimeoutMs });
    return Promise.resolve({ store, close: () => Promise.resolve(store.closeAndTidy()) });
  },
  openReadOnly(spec, { types }) {
    try {
      Deno.statSync(spec.path);
    } catch {
      return Promise.resolve(undefined);
    }
    return Promise.resolve(SqliteStore.open(spec.path, { types, readOnly: true }));
  },
};

/** Step 3: one line in each list (here: the lists given to the functions that take one). */
const WITH_TOYS: Kinds = { ...KINDS, sources: [...SOURCES, memSource], stores: [...STORES, toyStore] };

const PATH = "/etc/bucketload/config.ini";
const resolve = (text: string, env: Record<string, string> = {}, kinds: Kinds = WITH_TOYS) =>
  resolveConfig({ sections: parseConfigText(text, PATH), configPath: PATH, profile: "p", env, kinds });

Deno.test("a toy source and a toy store: the config recognises them, checks their keys and ranks their settings", () => {
  const c = resolve("[p]\nBUCKET_NAME = mem://sample\nTOY_DATABASE = toy.db\n");
  assert.equal(c.source.kind, memSource);
  assert.deepEqual(c.source.spec, { kind: "mem", display: "mem://sample", name: "sample" });
  assert.equal(c.store.kind, toyStore);
  assert.equal(c.store.spec.display, "toy:/etc/bucketload/toy.db");
  assert.equal(c.store.notice, undefined);
  // The other kinds are as they were.
  assert.equal(resolve("[p]\nBUCKET_NAME = ./b\n").store.kind.name, "sqlite");
  assert.equal(resolve("[p]\nBUCKET_NAME = https://h.example/\n").source.kind.name, "http");
  const usage = (fn: () => unknown, message: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof UsageError && message.test(e.message));
  // Each key is checked by its spec, with the setting named.
  usage(
    () => resolve("[p]\nBUCKET_NAME = mem://sample\nMEM_MAX_OBJECTS = 0\n"),
    /^Cannot parse 'MEM_MAX_OBJECTS' in profile 'p' of \S+: expected an integer 1–1000, got "0"$/,
  );
  usage(() => resolve("[p]\nBUCKET_NAME = mem://Sample\n"), /^Cannot parse 'BUCKET_NAME' .*expected mem:\/\/NAME/);
  usage(
    () => resolve("[p]\nBUCKET_NAME = gs://x\n"),
    /unsupported scheme 'gs:', expected http:, https:, s3:, file: or a folder path, mem:$/,
  );
  // Without the lists that hold them, their keys are unknown.
  usage(() => resolve("[p]\nBUCKET_NAME = ./b\nTOY_DATABASE = t.db\n", {}, KINDS), /Unknown key 'TOY_DATABASE'/);
  // In one layer the toy store outranks the default; a higher layer's DATABASE_NAME outranks it; both say so.
  const both = resolve("[p]\nBUCKET_NAME = ./b\nTOY_DATABASE = toy.db\nDATABASE_NAME = x.sqlite3\n");
  assert.equal(both.store.kind, toyStore);
  assert.match(both.store.notice ?? "", /^Loading into Toy \('TOY_DATABASE' in profile 'p' of \S+\), not SQLite: /);
  assert.match(both.store.notice ?? "", /to load into SQLite, remove 'TOY_DATABASE' in profile 'p'/);
  const env = resolve("[p]\nBUCKET_NAME = ./b\nTOY_DATABASE = toy.db\n", { BUCKETLOAD_DATABASE_NAME: "x.sqlite3" });
  assert.equal(env.store.kind.name, "sqlite");
  assert.match(
    env.store.notice ?? "",
    /^Loading into SQLite \(environment variable BUCKETLOAD_DATABASE_NAME\), not Toy/,
  );
});

Deno.test("a toy source and a toy store: their keys join --help's list and the configuration reference", () => {
  const keys = configKeys(WITH_TOYS);
  for (const key of ["MEM_MAX_OBJECTS", "TOY_DATABASE", "TOY_LOCK_TIMEOUT_SECONDS"]) {
    assert.ok(Object.hasOwn(keys, key));
  }
  const doc = configurationDoc(WITH_TOYS);
  assert.match(doc, /### Store: Toy\n\n\| key \| default \| meaning \|\n.*\n\| `TOY_DATABASE` \| \(none\) \|/);
  assert.match(
    doc,
    /\| `BUCKET_NAME` \| \(required\) \| the bucket, in the form of one of the sources: .*; or `mem:\/\/NAME`/,
  );
  assert.match(doc, /### Source: memory\n[\s\S]*\| `MEM_MAX_OBJECTS` \| `100` \| a memory bucket holding more objects/);
  // A key declared twice is refused, naming both owners.
  const twice = { ...WITH_TOYS, stores: [...WITH_TOYS.stores, { ...toyStore, name: "toy2" }] };
  assert.throws(() => configKeys(twice), /Key TOY_DATABASE is declared twice: by Store: Toy and Store: Toy/);
});

Deno.test("a toy source and a toy store: the launcher grants what they need", () => {
  const c = resolve("[p]\nBUCKET_NAME = mem://sample\nTOY_DATABASE = /var/toy/toy.db\n");
  assert.deepEqual(childPermissions(c, { command: "run", dryRun: false }, "/app", WITH_TOYS.stores), [
    "--no-prompt",
    "--allow-read=/app,/etc/bucketload/config.ini,/var/toy",
    "--allow-write=/var/toy",
    "--allow-env=BUCKETLOAD_*,DATABASE_URL,OTEL_*,MEM_TRACE",
  ]);
});

Deno.test("a toy source and a toy store: a run loads the sample bucket from memory into the toy store", async () => {
  const sample = join(ROOT, "fixtures", "sample_bucket");
  const objects = new Map<string, Uint8Array>();
  for await (const entry of Deno.readDir(sample)) {
    objects.set(entry.name, await Deno.readFile(join(sample, entry.name)));
  }
  BUCKETS.set("sample", objects);
  try {
    await withTempDir(async (dir) => {
      const db = join(dir, "toy.db");
      const c = resolveConfig({
        env: { BUCKETLOAD_BUCKET_NAME: "mem://sample", BUCKETLOAD_TOY_DATABASE: db, BUCKETLOAD_WORKER: "no" },
        cwd: dir,
        kinds: WITH_TOYS,
      });
      assert.equal(runAttributes(c)["bucketload.store"], "toy");
      let printed = "";
      const out = (text: string) => (printed += text);
      assert.equal(await runOnceAction(c, out, { force: false, retryInvalid: false, json: true }), 0);
      const report = JSON.parse(printed);
      assert.equal(report.files.loaded, 4);
      assert.deepEqual(report.records.valid, { song: 1024, movie: 1144, app: 209 });
      assert.deepEqual(query(db, "SELECT count(*) AS n FROM processed_files"), [{ n: 4 }]);
      printed = "";
      assert.equal(await statusAction(c, out, { json: true }), 0);
      assert.equal(JSON.parse(printed).database, db);
      // The default store was not touched.
      assert.throws(() => Deno.statSync(join(dir, "db.sqlite3")), Deno.errors.NotFound);
    });
  } finally {
    BUCKETS.delete("sample");
  }
});
