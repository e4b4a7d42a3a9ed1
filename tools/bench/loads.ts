/**
 * The bench's load cases: first loads of generated buckets (bucketload
 * against the shared floor and the faithful original, interleaved), the
 * incremental run against a floor that holds the earlier files too, the
 * no-op run, and where a PostgreSQL run's time goes.
 *
 * Buckets of the real shape are prefixes of one 10,000-file bucket
 * (`tools/gen_bucket.ts`, seed 42: a bucket of N files is exactly the first
 * N files of a longer one), generated once under `.bench/`.
 *
 * @module
 */
import { join } from "node:path";
import { generateBucket } from "../gen_bucket.ts";
import {
  BENCH_DIR,
  bucketload,
  logTimes,
  mb,
  measure,
  median,
  postgresCounts,
  postgresCpu,
  postgresUrl,
  removeDb,
  ROOT,
  serve,
  sqliteCounts,
} from "./kit.ts";

export const FLOOR = join(ROOT, "..", "shared", "bench", "floor.ts");
export const WORK = join(BENCH_DIR, "suite");

/**
 * What a load case runs: bucketload (into SQLite, PostgreSQL, or with `KEEP_EXTRA=no`), the same for the build of
 * another checkout (`base`, `--base DIR`: an A/B in one run), the floor, the faithful original.
 */
export type Impl =
  | "bucketload"
  | "bucketload-pg"
  | "bucketload-noextra"
  | "base"
  | "base-noextra"
  | "floor"
  | "original";

/** The checkout of the `base` implementations, when set. */
let baseRoot: string | undefined;

/** Runs the `base` implementations from `dir` (a git worktree of another commit). */
export function useBase(dir: string): void {
  baseRoot = dir.endsWith("/") ? dir : `${dir}/`;
}

export interface Sample {
  readonly seconds: number;
  readonly rss: number;
  readonly rows: number;
  /** CPU seconds of the command's processes (user + system). */
  readonly cpu: number;
  /** CPU seconds the rest of the machine used meanwhile (other programs; PostgreSQL's server for bucketload-pg). */
  readonly background: number;
}

/** One case's samples, by implementation. */
export interface Result {
  readonly title: string;
  readonly samples: Map<Impl, Sample[]>;
  /** Records in the files each run loads (for records/s). */
  readonly records: number;
}

/** Settings of a bench invocation. */
export interface LoadSettings {
  readonly runs: number;
  /** Buckets shrink by this factor (`--quick`). */
  readonly scale: number;
}

export interface Bucket {
  readonly dir: string;
  /** The list to serve instead of the folder's own (a prefix of a longer bucket), if any. */
  readonly list: string | undefined;
  readonly files: number;
  readonly records: number;
}

/** The real-shaped bucket the others are prefixes of. */
const POOL = { files: 10_000, records: 1000 };

/** Records with fields their type does not know: `rate` of them, each with `fields` such fields. */
export interface Extras {
  readonly rate: number;
  readonly fields: number;
}

/** A folder generated once (clean records, as the real bucket's, unless `extras`), seed 42. */
async function generated(
  name: string,
  files: number,
  records: number,
  repeatRate?: number,
  extras?: Extras,
): Promise<string> {
  const dir = join(BENCH_DIR, `suite-${name}-${files}x${records}`);
  try {
    await Deno.stat(join(dir, "files_list.data"));
  } catch {
    console.error(`Generating ${name}: ${files} files × ${records} records ...`);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await generateBucket(dir, {
      files,
      records,
      invalidRate: 0,
      seed: 42,
      shape: "real",
      ...(repeatRate === undefined ? {} : { repeatRate }),
      ...(extras === undefined ? {} : { extraRate: extras.rate, extraFields: extras.fields }),
    });
  }
  return dir;
}

/** The first `files` files of the real-shaped pool (46% repeats), as a bucket. */
export async function realBucket(files: number, s: LoadSettings): Promise<Bucket> {
  files = Math.max(4, Math.round(files * s.scale));
  const dir = await generated("real", POOL.files, POOL.records);
  const keys = (await Deno.readTextFile(join(dir, "files_list.data"))).split("\n");
  return { dir, list: keys.slice(0, files).join("\n"), files, records: files * POOL.records };
}

/** A bucket of its own shape (`unique`: no repeats; `real-sized`: 80 × 2,000). */
export async function ownBucket(
  name: string,
  files: number,
  records: number,
  s: LoadSettings,
  repeatRate?: number,
  extras?: Extras,
): Promise<Bucket> {
  files = Math.max(4, Math.round(files * s.scale));
  const dir = await generated(name, files, records, repeatRate, extras);
  return { dir, list: undefined, files, records: files * records };
}

/** A Python that has aiohttp (the original's client); Debian's `python3-aiohttp` is installed when missing and allowed. */
let python: string | undefined;
export async function pythonWithAiohttp(): Promise<string> {
  if (python !== undefined) return python;
  const has = (p: string) =>
    new Deno.Command(p, { args: ["-c", "import aiohttp"], stderr: "null" }).output().then(
      (o) => o.success,
      () => false,
    );
  for (const p of ["python3", "/usr/bin/python3"]) if (await has(p)) return python = p;
  if (Deno.uid() === 0) {
    console.error("Installing python3-aiohttp with apt-get (the faithful original's HTTP client)");
    const apt = (args: string[]) =>
      new Deno.Command("apt-get", { args, env: { DEBIAN_FRONTEND: "noninteractive" }, stdout: "null" }).output();
    if (!(await apt(["install", "-y", "-qq", "python3-aiohttp"])).success) {
      await apt(["update", "-qq"]);
      await apt(["install", "-y", "-qq", "python3-aiohttp"]);
    }
    if (await has("/usr/bin/python3")) return python = "/usr/bin/python3";
  }
  throw new Error("The faithful original needs aiohttp: apt-get install python3-aiohttp");
}

/** The floor's command: `../shared/bench/floor.ts` over the bucket at `url` into `db`. */
function floorCommand(url: string, db: string): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", FLOOR, url.replace(/\/$/, ""), db],
    stdout: "piped",
    stderr: "piped",
  });
}

/** The faithful original's command, its config written in `WORK`. */
async function originalCommand(url: string, db: string): Promise<Deno.Command> {
  const config = join(WORK, "original.ini");
  await Deno.remove(join(WORK, "original.processed.json")).catch(() => {});
  await Deno.writeTextFile(
    config,
    `[default]\nBUCKET_NAME = ${new URL(url).host}\nFILES_LIST_KEY = files_list.data\nBUCKET_ENCODING = utf-8\n` +
      `DATABASE_NAME = ${db}\nPROCESSED_FILES_FILENAME = original.processed.json\n` +
      "DATE_STORE_FORMAT = %Y-%m-%d %H:%M:%S\n",
  );
  return new Deno.Command(await pythonWithAiohttp(), {
    args: [join(ROOT, "tools", "original", "original.py"), "--config", config],
    stdout: "piped",
    stderr: "piped",
  });
}

/** One run of `impl` over the bucket at `url`, into a fresh database unless `keep` names one to load into. */
export async function runOnce(impl: Impl, url: string, options: { keep?: string } = {}): Promise<Sample> {
  const db = options.keep ?? join(WORK, `${impl}.sqlite3`);
  if (options.keep === undefined) await removeDb(db);
  if (impl === "bucketload-pg") {
    const databaseUrl = await postgresUrl("bench_suite");
    const m = await measure(impl, [
      bucketload({ BUCKETLOAD_BUCKET_NAME: url, BUCKETLOAD_DATABASE_URL: databaseUrl }, WORK),
    ]);
    const { rows, notLoaded } = await postgresCounts(databaseUrl);
    if (notLoaded > 0) throw new Error(`${impl} left ${notLoaded} file(s) not loaded`);
    return { seconds: m.seconds, rss: m.rss, cpu: m.cpu, background: m.background, rows };
  }
  const env = { BUCKETLOAD_BUCKET_NAME: url, BUCKETLOAD_DATABASE_NAME: db };
  const noExtra = impl.endsWith("-noextra") ? { BUCKETLOAD_KEEP_EXTRA: "no" } : {};
  const command = impl === "bucketload" || impl === "bucketload-noextra"
    ? bucketload({ ...env, ...noExtra }, WORK)
    : impl === "base" || impl === "base-noextra"
    ? bucketload({ ...env, ...noExtra }, WORK, undefined, undefined, baseRoot ?? ROOT)
    : impl === "floor"
    ? floorCommand(url, db)
    : await originalCommand(url, db);
  const m = await measure(impl, [command]);
  const { rows, notLoaded } = await sqliteCounts(db);
  if (notLoaded > 0) throw new Error(`${impl} left ${notLoaded} file(s) not loaded`);
  return { seconds: m.seconds, rss: m.rss, cpu: m.cpu, background: m.background, rows };
}

/** `impls` over `b`, interleaved; each impl `runs` times (or as `runsOf` says). */
export async function firstLoad(
  title: string,
  b: Bucket,
  impls: readonly Impl[],
  o: { runs: number; latency?: number; runsOf?: Partial<Record<Impl, number>> },
): Promise<Result> {
  const server = serve(b.dir, b.list, o.latency ?? 0);
  const samples = new Map<Impl, Sample[]>(impls.map((i) => [i, []]));
  try {
    for (let r = 0; r < o.runs; r++) {
      for (const impl of impls) {
        if (r >= (o.runsOf?.[impl] ?? o.runs)) continue;
        const s = await runOnce(impl, server.url);
        samples.get(impl)!.push(s);
        console.error(`${title} ${r + 1}/${o.runs} ${impl}: ${s.seconds.toFixed(2)} s, ${mb(s.rss)}`);
      }
    }
  } finally {
    await server.close();
  }
  await removeDb(join(WORK, "original.sqlite3"));
  return { title, samples, records: b.records };
}

/**
 * 100 new files into a database holding the rows of the 1,500 earlier files
 * of the real shape. The floor is given the same: it first loads the 1,500
 * earlier files into its own database (not timed), then only its run of the
 * 100 new files is timed, as bucketload's run of the whole list is.
 */
export async function incremental(s: LoadSettings): Promise<Result & { rowsBefore: number; floorRowsBefore: number }> {
  const b = await realBucket(1600, s);
  const keys = b.list!.split("\n");
  const split = keys.length - Math.max(2, Math.round(100 * s.scale));
  const base = serve(b.dir, keys.slice(0, split).join("\n"));
  const all = serve(b.dir, keys.join("\n"));
  const onlyNew = serve(b.dir, keys.slice(split).join("\n"));
  const ours = join(WORK, "incremental-base.sqlite3");
  const theirs = join(WORK, "incremental-floor-base.sqlite3");
  const samples = new Map<Impl, Sample[]>([["bucketload", []], ["floor", []]]);
  try {
    console.error(`incremental: loading the ${split} earlier files (not timed) ...`);
    await removeDb(ours);
    await runOnce("bucketload", base.url, { keep: ours });
    await removeDb(theirs);
    await measure("floor", [floorCommand(base.url, theirs)]);
    const rowsBefore = (await sqliteCounts(ours)).rows;
    const floorRowsBefore = (await sqliteCounts(theirs)).rows;
    for (let r = 0; r < s.runs; r++) {
      const db = join(WORK, "incremental.sqlite3");
      await removeDb(db);
      await Deno.copyFile(ours, db);
      const a = await runOnce("bucketload", all.url, { keep: db });
      samples.get("bucketload")!.push(a);
      const floorDb = join(WORK, "incremental-floor.sqlite3");
      await removeDb(floorDb);
      await Deno.copyFile(theirs, floorDb);
      const f = await runOnce("floor", onlyNew.url, { keep: floorDb });
      samples.get("floor")!.push(f);
      console.error(`incremental ${r + 1}/${s.runs}: ${a.seconds.toFixed(2)} s, floor ${f.seconds.toFixed(2)} s`);
    }
    return {
      title: `incremental, ${keys.length - split} new files into ${split}`,
      samples,
      records: (keys.length - split) * POOL.records,
      rowsBefore,
      floorRowsBefore,
    };
  } finally {
    await base.close();
    await all.close();
    await onlyNew.close();
  }
}

/** A second `deno task run` when nothing changed, after a first load of `b`. */
export async function noop(b: Bucket, runs: number): Promise<number[]> {
  const server = serve(b.dir, b.list);
  const db = join(WORK, "noop.sqlite3");
  try {
    await removeDb(db);
    await runOnce("bucketload", server.url, { keep: db });
    const times: number[] = [];
    for (let r = 0; r < Math.max(3, runs); r++) {
      times.push((await runOnce("bucketload", server.url, { keep: db })).seconds);
    }
    return times;
  } finally {
    await server.close();
  }
}

/** Where a run's time goes: phases from its debug log, its own CPU and (PostgreSQL) the server's. */
export interface Profile {
  readonly store: "sqlite" | "postgres";
  readonly wall: number;
  /** From the start to the plan (`Listed`), to the last file written, to the commit, in seconds. */
  readonly listed: number;
  readonly written: number;
  readonly committed: number;
  /** CPU seconds of bucketload's processes, and of the PostgreSQL server during the run. */
  readonly cpu: number;
  readonly serverCpu: number | undefined;
}

/** One debug-logged run of each store over `b` (`runs` of each, the medians kept). */
export async function profileStores(b: Bucket, runs: number): Promise<Profile[]> {
  const server = serve(b.dir, b.list);
  const out: Profile[] = [];
  const args = ["--log-level", "debug"];
  const phases = { listed: /Listed \d+ keys/, written: /Processed /, committed: /Committed run/ };
  try {
    const samples: Record<"sqlite" | "postgres", Profile[]> = { sqlite: [], postgres: [] };
    for (let r = 0; r < runs; r++) {
      for (const store of ["sqlite", "postgres"] as const) {
        const db = join(WORK, "profile.sqlite3");
        await removeDb(db);
        const env: Record<string, string> = store === "sqlite"
          ? { BUCKETLOAD_BUCKET_NAME: server.url, BUCKETLOAD_DATABASE_NAME: db }
          : { BUCKETLOAD_BUCKET_NAME: server.url, BUCKETLOAD_DATABASE_URL: await postgresUrl("bench_profile") };
        const before = postgresCpu();
        const m = await measure(`profile ${store}`, [bucketload(env, WORK, args)]);
        const after = postgresCpu();
        const t = logTimes(m.stderrs[0]!, phases);
        samples[store].push({
          store,
          wall: m.seconds,
          listed: (t.listed ?? 0) / 1000,
          written: (t.written ?? 0) / 1000,
          committed: (t.committed ?? 0) / 1000,
          cpu: m.cpu,
          serverCpu: before === undefined || after === undefined ? undefined : after - before,
        });
      }
    }
    for (const store of ["sqlite", "postgres"] as const) {
      const ps = samples[store];
      const med = (f: (p: Profile) => number) => median(ps.map(f));
      out.push({
        store,
        wall: med((p) => p.wall),
        listed: med((p) => p.listed),
        written: med((p) => p.written),
        committed: med((p) => p.committed),
        cpu: med((p) => p.cpu),
        serverCpu: ps[0]!.serverCpu === undefined ? undefined : med((p) => p.serverCpu!),
      });
    }
    return out;
  } finally {
    await server.close();
    await removeDb(join(WORK, "profile.sqlite3"));
  }
}

/** The median of `impl`'s wall times in `r`. */
export function wall(r: Result, impl: Impl): number | undefined {
  const s = r.samples.get(impl);
  return s === undefined || s.length === 0 ? undefined : median(s.map((x) => x.seconds));
}

/** Median wall time of `a` over that of `b`, in one result. */
export function ratio(r: Result, a: Impl, b: Impl): number | undefined {
  const x = wall(r, a), y = wall(r, b);
  return x === undefined || y === undefined ? undefined : x / y;
}
