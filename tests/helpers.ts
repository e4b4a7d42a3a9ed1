/**
 * Shared test wiring: a temporary folder, a pipeline run against a real
 * source and SQLite file, and a dump of the tables for comparison.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { FileSource } from "../mod/source/file/file.ts";
import { HttpSource, type HttpSourceOptions } from "../mod/source/http/http.ts";
import { type PipelineOptions, runPipeline, type RunReport } from "../mod/run/pipeline.ts";
import { RECORD_TYPES } from "../mod/records/mod.ts";
import { SqliteStore } from "../mod/store/sqlite/mod.ts";
import type { Config } from "../mod/config/config.ts";
import type { SourceKind, SourceSpec } from "../mod/source/kind.ts";
import type { StoreKind, StoreSpec } from "../mod/store/kind.ts";
import { type BucketServer, startBucketServer } from "./bucket_server.ts";

/** The folder of test inputs. */
export const CASES = new URL("./cases/", import.meta.url).pathname;
/** The repository root. */
export const ROOT = new URL("../", import.meta.url).pathname;

/** The spec of the config's store when it is of `kind`, else `undefined`. */
export function storeSpecOf<S extends StoreSpec>(config: Config, kind: StoreKind<S>): S | undefined {
  return config.store.kind === kind ? config.store.spec as S : undefined;
}

/** The spec of the config's source when it is of `kind`, else `undefined`. */
export function sourceSpecOf<S extends SourceSpec>(config: Config, kind: SourceKind<S>): S | undefined {
  return config.source.kind === kind ? config.source.spec as S : undefined;
}

/** Runs `fn` with a fresh temporary folder, removed afterwards. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "bucketload-test-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A fixed clock, so that ingestion times compare equal across runs. */
export const FIXED_NOW = () => new Date(Date.UTC(2021, 4, 1, 12, 0, 0));

/** The pipeline settings tests share: the real record types, the default list key and rules, a fixed clock. */
export const PIPELINE_DEFAULTS = {
  types: RECORD_TYPES,
  filesListKey: "files_list.data",
  encoding: "utf-8",
  dateStoreFormat: "%Y-%m-%d %H:%M:%S",
  now: FIXED_NOW,
} as const;

/** Options of {@linkcode runOnce}. */
export interface RunOnceOptions extends Partial<Omit<PipelineOptions, "source" | "store">>, HttpSourceOptions {}

/** One pipeline run of the bucket at `bucket` (a URL or folder) into `dbPath`. */
export async function runOnce(bucket: string, dbPath: string, options: RunOnceOptions = {}): Promise<RunReport> {
  const source = bucket.startsWith("http")
    ? new HttpSource(new URL(bucket), { retryBaseMs: 5, timeoutMs: 2000, ...options })
    : new FileSource(bucket);
  const store = SqliteStore.open(dbPath, { types: options.types ?? RECORD_TYPES });
  try {
    return await runPipeline({
      ...PIPELINE_DEFAULTS,
      source,
      store,
      ...options,
    });
  } finally {
    store.close();
  }
}

/** Every row of `sql` on the database at `dbPath`, as plain objects. */
export function query(dbPath: string, sql: string, ...params: (string | number | null)[]): Record<string, unknown>[] {
  const db = new DatabaseSync(dbPath, { readOnly: true });
  try {
    return db.prepare(sql).all(...params).map((r) => ({ ...r }));
  } finally {
    db.close();
  }
}

/** A row as a plain object. */
export type Row = Record<string, unknown>;
/** The comparable content of a database. */
export interface Dump {
  songs: Row[];
  movies: Row[];
  apps: Row[];
  processed_files: Row[];
  rejected_records: Row[];
}

/**
 * The data tables, registry and rejections in a canonical order, without
 * values that differ between equivalent runs (run ids and times).
 */
export function dumpDatabase(dbPath: string, { ingestionTime = true, fullRegistry = false } = {}): Dump {
  // Without the list positions: they only decide between files, which the rows' source_key shows.
  const rows = (sql: string) => query(dbPath, sql).map(({ source_pos: _, ...row }) => row);
  const songs = rows("SELECT * FROM songs ORDER BY artist_name, title");
  if (!ingestionTime) { for (const s of songs) delete s.ingestion_time; }
  return {
    songs,
    movies: rows("SELECT * FROM movies ORDER BY original_title_normalized, release_date"),
    apps: rows("SELECT * FROM apps ORDER BY name, version"),
    processed_files: query(
      dbPath,
      `SELECT key, status, records, rejected, ignored, bytes${
        fullRegistry ? ", origin, etag, size, deleted_at IS NOT NULL AS deleted" : ""
      } FROM processed_files ORDER BY key`,
    ),
    rejected_records: query(
      dbPath,
      "SELECT key, record_index, type, reason, raw FROM rejected_records ORDER BY key, record_index",
    ),
  };
}

/** Copies the `basic` case (or another) into `dir` and returns the bucket folder. */
export async function copyCase(name: string, dir: string): Promise<string> {
  const target = join(dir, name);
  await Deno.mkdir(target, { recursive: true });
  for await (const entry of Deno.readDir(join(CASES, name))) {
    if (entry.isFile) await Deno.copyFile(join(CASES, name, entry.name), join(target, entry.name));
  }
  return target;
}

/** `deno` arguments that start the launcher as `deno task run` does (append its own arguments). */
export const LAUNCHER = [
  "run",
  "--cached-only",
  "--no-prompt",
  "--allow-read",
  "--allow-env",
  "--allow-run",
  join(ROOT, "launch.ts"),
];

/**
 * What a child started with `clearEnv` keeps of this process's environment: `DENO_DIR` when it is set, so that the
 * child uses the Deno cache the tests use (`.ci/run` sets an empty one). Spread it into the child's `env`, and start
 * a child Deno with `--cached-only`: it then resolves the npm packages from `node_modules` alone and never prints a
 * `Download` line or contacts the registry (tests/fresh_cache_test.ts).
 */
export const DENO_CACHE_ENV: Readonly<Record<string, string>> = (() => {
  const dir = Deno.env.get("DENO_DIR");
  return dir === undefined ? {} : { DENO_DIR: dir };
})();

/** The `run` task's permissions, for starting the real CLI (offline, as the launcher starts it). */
const RUN_ARGS = ["run", "--cached-only", "--allow-read", "--allow-write", "--allow-net", "--allow-env"];

/** Options of {@linkcode spawnCli} and {@linkcode cli}. */
export interface CliOptions {
  readonly cwd?: string;
  readonly env?: Record<string, string>;
}

/** Starts the real CLI as a subprocess with piped output. */
export function spawnCli(args: string[], options: CliOptions = {}): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: [...RUN_ARGS, join(ROOT, "main.ts"), ...args],
    cwd: options.cwd ?? ROOT,
    env: { NO_COLOR: "1", ...DENO_CACHE_ENV, ...options.env },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Runs the real CLI to the end and returns its exit code and output. */
export async function cli(args: string[], options: CliOptions = {}) {
  const out = await spawnCli(args, options).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Writes `body` as `config.ini` in `dir` and returns its path. */
export async function writeConfig(dir: string, body: string): Promise<string> {
  const path = join(dir, "config.ini");
  await Deno.writeTextFile(path, body);
  return path;
}

/** Reads a child's output line by line, so that a test can wait for log lines and then drain or drop the rest. */
export class LineWatcher {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  #lines: string[] = [];

  /** Watches `stream` (e.g. a child's stderr). */
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The lines read so far. */
  get lines(): readonly string[] {
    return this.#lines;
  }

  /** Resolves once `count` lines seen so far match `pattern`, or when the output ends. */
  async waitFor(pattern: RegExp, count = 1): Promise<void> {
    while (this.#lines.filter((l) => pattern.test(l)).length < count) {
      const { value, done } = await this.#reader.read();
      if (done) return;
      this.#buffer += value;
      const lines = this.#buffer.split("\n");
      this.#buffer = lines.pop()!;
      this.#lines.push(...lines);
    }
  }

  /** Reads the rest of the output, so that the child never blocks on a full pipe. */
  async drain(): Promise<void> {
    while (!(await this.#reader.read()).done) { /* discard */ }
  }

  /** Stops reading. */
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}

/** A test case bucket served over HTTP from a temporary folder, and a config writer for it. */
export interface ServedCase {
  readonly dir: string;
  readonly server: BucketServer;
  /** Writes `config.ini` with profile `[p]` for this bucket (and `DATABASE_NAME = db.sqlite3`), plus `extra` lines. */
  config(extra?: string): Promise<string>;
}

/** Runs `fn` with `tests/cases/<name>` copied into a temporary folder and served on 127.0.0.1; stops it after. */
export async function withServedCase<T>(name: string, fn: (served: ServedCase) => Promise<T>): Promise<T> {
  return await withTempDir(async (dir) => {
    const server = await startBucketServer(await copyCase(name, dir));
    try {
      const config = (extra = "") =>
        writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = db.sqlite3\n${extra}`);
      return await fn({ dir, server, config });
    } finally {
      await server.close();
    }
  });
}

/** Asserts that `db` holds what one uninterrupted CLI run of `bucketUrl` into a new database gives. */
export async function assertSameAsFreshRun(db: string, bucketUrl: string): Promise<void> {
  await withTempDir(async (other) => {
    const config = await writeConfig(other, `[p]\nBUCKET_NAME = ${bucketUrl}\nDATABASE_NAME = db.sqlite3\n`);
    const run = await cli(["--config", config, "--profile", "p"]);
    if (run.code !== 0) throw new Error(`the fresh run failed: ${run.stderr}`);
    assert.deepEqual(
      dumpDatabase(db, { ingestionTime: false }),
      dumpDatabase(join(other, "db.sqlite3"), { ingestionTime: false }),
    );
  });
}

/** Every row of every table, in rowid order: what "no table changed" compares. */
export function everything(db: string): Record<string, unknown[]> {
  const d = new DatabaseSync(db, { readOnly: true });
  try {
    const tables = d.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").all() as {
      name: string;
    }[];
    return Object.fromEntries(
      tables.map(({ name }) => [name, d.prepare(`SELECT * FROM "${name}"`).all().map((r) => ({ ...r }))]),
    );
  } finally {
    d.close();
  }
}
