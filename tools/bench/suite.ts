/**
 * `deno task bench`: every shape of the performance issue in one run, each
 * against the shared floor (`../shared/bench/floor.ts`) and the faithful model
 * of the Python original (`tools/original/original.py`, with aiohttp), in
 * interleaved runs. Writes the table, with the machine and the date, to
 * `docs/performance.md` ("The suite").
 *
 * - bucketload is measured as a user runs it: `deno task run` (the task
 *   runner, the launcher and main.ts), its peak RSS the largest process's.
 * - Buckets are shaped like the real one (`tools/gen_bucket.ts`, `real`
 *   shape: keys in random order, 46% of records repeating an earlier file's,
 *   clean records as the real bucket's were). "unique" has no repeats.
 *
 * Usage: deno task bench [--runs N] [--quick]
 *   --quick  one run of each, smaller buckets (a smoke test of the bench, not a result)
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { generateBucket } from "../gen_bucket.ts";
import {
  BENCH_DIR,
  mb,
  measure,
  median,
  postgresCounts,
  postgresUrl,
  ROOT,
  serve,
  sqliteCounts,
  stopPostgres,
} from "./kit.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { runs: { type: "string", default: "3" }, quick: { type: "boolean" }, write: { type: "boolean" } },
});
const RUNS = values.quick ? 1 : Number(values.runs);
const SCALE = values.quick ? 0.1 : 1;
const FLOOR = join(ROOT, "..", "shared", "bench", "floor.ts");
const WORK = join(BENCH_DIR, "suite");

/** A Python that has aiohttp (the original's client): Debian's `python3-aiohttp`. */
async function pythonWithAiohttp(): Promise<string> {
  for (const python of ["python3", "/usr/bin/python3"]) {
    const ok = await new Deno.Command(python, { args: ["-c", "import aiohttp"], stderr: "null" }).output()
      .then((o) => o.success, () => false);
    if (ok) return python;
  }
  throw new Error("The faithful original needs aiohttp: apt-get install python3-aiohttp");
}

interface Bucket {
  readonly name: string;
  readonly dir: string;
  readonly records: number;
}

/** A bucket generated once under .bench/ (clean records, as the real bucket's). */
async function bucket(
  name: string,
  files: number,
  records: number,
  options: { repeatRate?: number } = {},
): Promise<Bucket> {
  files = Math.max(4, Math.round(files * SCALE));
  const dir = join(BENCH_DIR, `suite-${name}-${files}x${records}`);
  try {
    await Deno.stat(join(dir, "files_list.data"));
  } catch {
    console.error(`Generating ${name}: ${files} files × ${records} records ...`);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await generateBucket(dir, { files, records, invalidRate: 0, seed: 42, shape: "real", ...options });
  }
  return { name, dir, records: files * records };
}

type Impl = "bucketload" | "bucketload-pg" | "floor" | "original";

interface Sample {
  readonly seconds: number;
  readonly rss: number;
  readonly rows: number;
}

/** Removes a SQLite database and its companions. */
async function removeDb(db: string) {
  for (const s of ["", "-wal", "-shm", "-journal", ".lock-info"]) await Deno.remove(db + s).catch(() => {});
}

/** `deno task run` as a user runs it, configured by the environment alone, in `WORK`. */
function bucketloadCommand(env: Record<string, string>): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", "--config", join(ROOT, "deno.json"), "run", "--quiet", "--log-level", "warning"],
    cwd: WORK,
    env,
    stdout: "piped",
    stderr: "piped",
  });
}

/** One run of `impl` over the bucket at `url`, into a fresh database unless `db` holds one to keep. */
async function runOnce(impl: Impl, url: string, options: { keep?: string } = {}): Promise<Sample> {
  const db = options.keep ?? join(WORK, `${impl}.sqlite3`);
  if (options.keep === undefined) await removeDb(db);
  if (impl === "bucketload-pg") {
    const databaseUrl = await postgresUrl("bench_suite");
    const { seconds, rss } = await measure(impl, [
      bucketloadCommand({ BUCKETLOAD_BUCKET_NAME: url, BUCKETLOAD_DATABASE_URL: databaseUrl }),
    ]);
    const { rows, notLoaded } = await postgresCounts(databaseUrl);
    if (notLoaded > 0) throw new Error(`${impl} left ${notLoaded} file(s) not loaded`);
    return { seconds, rss, rows };
  }
  let command: Deno.Command;
  if (impl === "bucketload") {
    command = bucketloadCommand({ BUCKETLOAD_BUCKET_NAME: url, BUCKETLOAD_DATABASE_NAME: db });
  } else if (impl === "floor") {
    command = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", FLOOR, url.replace(/\/$/, ""), db],
      stdout: "piped",
      stderr: "piped",
    });
  } else {
    const config = join(WORK, "original.ini");
    await Deno.remove(join(WORK, "original.processed.json")).catch(() => {});
    await Deno.writeTextFile(
      config,
      `[default]\nBUCKET_NAME = ${new URL(url).host}\nFILES_LIST_KEY = files_list.data\nBUCKET_ENCODING = utf-8\n` +
        `DATABASE_NAME = ${db}\nPROCESSED_FILES_FILENAME = original.processed.json\n` +
        "DATE_STORE_FORMAT = %Y-%m-%d %H:%M:%S\n",
    );
    command = new Deno.Command(await pythonWithAiohttp(), {
      args: [join(ROOT, "tools", "original", "original.py"), "--config", config],
      stdout: "piped",
      stderr: "piped",
    });
  }
  const { seconds, rss } = await measure(impl, [command]);
  const { rows, notLoaded } = await sqliteCounts(db);
  if (notLoaded > 0) throw new Error(`${impl} left ${notLoaded} file(s) not loaded`);
  return { seconds, rss, rows };
}

const span = (xs: number[]) =>
  `${median(xs).toFixed(2)} s (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;

interface Result {
  readonly title: string;
  readonly samples: Map<Impl, Sample[]>;
}

/** `impls` over `b`, interleaved, `RUNS` times each. */
async function firstLoad(title: string, b: Bucket, impls: readonly Impl[], latency = 0): Promise<Result> {
  const server = serve(b.dir, undefined, latency);
  const samples = new Map<Impl, Sample[]>(impls.map((i) => [i, []]));
  try {
    for (let r = 0; r < RUNS; r++) {
      for (const impl of impls) {
        const s = await runOnce(impl, server.url);
        samples.get(impl)!.push(s);
        console.error(`${title} ${r + 1}/${RUNS} ${impl}: ${s.seconds.toFixed(2)} s, ${mb(s.rss)}`);
      }
    }
  } finally {
    await server.close();
  }
  return { title, samples };
}

/**
 * 100 new files into a database holding the rows of a 1,500-file bucket of
 * the real shape (over 500k rows), against the floor given only the new
 * files (into an empty database: it keeps no registry to skip the rest).
 */
async function incremental(): Promise<Result & { rowsBefore: number }> {
  const b = await bucket("incremental", 1600, 1000);
  const keys = (await Deno.readTextFile(join(b.dir, "files_list.data"))).split("\n");
  const split = keys.length - Math.max(2, Math.round(100 * SCALE));
  const base = serve(b.dir, keys.slice(0, split).join("\n"));
  const all = serve(b.dir, keys.join("\n"));
  const onlyNew = serve(b.dir, keys.slice(split).join("\n"));
  const template = join(WORK, "incremental-base.sqlite3");
  const samples = new Map<Impl, Sample[]>([["bucketload", []], ["floor", []]]);
  let rowsBefore = 0;
  try {
    await runOnce("bucketload", base.url);
    await removeDb(template);
    await Deno.copyFile(join(WORK, "bucketload.sqlite3"), template);
    rowsBefore = (await sqliteCounts(template)).rows;
    for (let r = 0; r < RUNS; r++) {
      const db = join(WORK, "incremental.sqlite3");
      await removeDb(db);
      await Deno.copyFile(template, db);
      const ours = await runOnce("bucketload", all.url, { keep: db });
      samples.get("bucketload")!.push(ours);
      const floor = await runOnce("floor", onlyNew.url);
      samples.get("floor")!.push(floor);
      console.error(`incremental ${r + 1}/${RUNS}: ${ours.seconds.toFixed(2)} s, floor ${floor.seconds.toFixed(2)} s`);
    }
  } finally {
    await base.close();
    await all.close();
    await onlyNew.close();
  }
  return { title: `incremental, ${keys.length - split} new files into ${split}`, samples, rowsBefore };
}

/** A second `deno task run` when nothing changed, after a first load of `b`. */
async function noop(b: Bucket): Promise<number[]> {
  const server = serve(b.dir);
  const db = join(WORK, "noop.sqlite3");
  try {
    await removeDb(db);
    await runOnce("bucketload", server.url, { keep: db });
    const times: number[] = [];
    for (let r = 0; r < Math.max(3, RUNS); r++) {
      times.push((await runOnce("bucketload", server.url, { keep: db })).seconds);
    }
    return times;
  } finally {
    await server.close();
  }
}

function ratio(result: Result, a: Impl, b: Impl): number | undefined {
  const x = result.samples.get(a), y = result.samples.get(b);
  if (x === undefined || y === undefined || x.length === 0 || y.length === 0) return undefined;
  return median(x.map((s) => s.seconds)) / median(y.map((s) => s.seconds));
}

function table(results: readonly Result[]): string[] {
  const lines = [
    "| case | implementation | wall median (min–max) | peak RSS median (max) | rows |",
    "| --- | --- | --- | --- | --- |",
  ];
  for (const r of results) {
    for (const [impl, samples] of r.samples) {
      const secs = samples.map((s) => s.seconds), rss = samples.map((s) => s.rss);
      lines.push(
        `| ${r.title} | ${impl} | ${span(secs)} | ${mb(median(rss))} (${mb(Math.max(...rss))}) | ${
          samples[0]!.rows.toLocaleString("en-US")
        } |`,
      );
    }
  }
  return lines;
}

const verdict = (value: number | undefined, target: number) =>
  value === undefined ? "not measured" : value <= target ? "met" : "**not met**";

await Deno.mkdir(WORK, { recursive: true });
try {
  await Deno.stat(FLOOR);
} catch {
  throw new Error(`The shared floor is not at ${FLOOR}`);
}
await pythonWithAiohttp();
const started = new Date();
const real = await bucket("real", 500, 1000);
const unique = await bucket("unique", 500, 1000, { repeatRate: 0 });
const realSized = await bucket("real-sized", 80, 2000);

const results: Result[] = [];
results.push(await firstLoad("real shape 500 × 1,000", real, ["bucketload", "floor", "original", "bucketload-pg"]));
results.push(await firstLoad("unique keys 500 × 1,000", unique, ["bucketload", "floor", "original"]));
results.push(
  await firstLoad("real-sized 80 × 2,000, loopback", realSized, ["bucketload", "floor", "original", "bucketload-pg"]),
);
results.push(await firstLoad("real-sized, 20 ms per request", realSized, ["bucketload", "floor", "original"], 20));
results.push(await firstLoad("real-sized, 50 ms per request", realSized, ["bucketload", "floor", "original"], 50));
const inc = await incremental();
results.push(inc);
const noopTimes = await noop(realSized);
await stopPostgres();

const rssMax = Math.max(
  ...results.flatMap((r) => (r.samples.get("bucketload") ?? []).map((s) => s.rss)),
);
const targets: [string, number | undefined, number, string][] = [
  ["real shape 500 × 1,000, first load / floor", ratio(results[0]!, "bucketload", "floor"), 0.9, "≤ 0.90×"],
  ["unique keys 500 × 1,000, first load / floor", ratio(results[1]!, "bucketload", "floor"), 0.9, "≤ 0.90×"],
  ["real-sized 80 × 2,000, loopback / floor", ratio(results[2]!, "bucketload", "floor"), 0.9, "≤ 0.90×"],
  ["incremental / floor given only the new files", ratio(inc, "bucketload", "floor"), 0.9, "≤ 0.90×"],
  ["PostgreSQL / SQLite, real shape", ratio(results[0]!, "bucketload-pg", "bucketload"), 1.2, "≤ 1.20×"],
  ["PostgreSQL / SQLite, real-sized", ratio(results[2]!, "bucketload-pg", "bucketload"), 1.2, "≤ 1.20×"],
];
const cpu = (Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*: (.*)/)?.[1] ?? "unknown CPU").trim();
const lines = [
  `Measured ${started.toISOString().slice(0, 10)} by \`deno task bench\`: ${navigator.hardwareConcurrency} cores, ` +
  `${cpu}, Deno ${Deno.version.deno}; ${RUNS} run(s) of each, interleaved; bucketload as \`deno task run\`.` +
  `${values.quick ? " **A --quick smoke run: small buckets, one run; not a result.**" : ""}`,
  "",
  "| target | measured | target | |",
  "| --- | --- | --- | --- |",
  ...targets.map(([name, value, target, shown]) =>
    `| ${name} | ${value === undefined ? "–" : `${value.toFixed(2)}×`} | ${shown} | ${verdict(value, target)} |`
  ),
  `| peak RSS, any shape (largest process) | ${mb(rssMax)} | ≤ 256 MB | ${
    rssMax <= 256 * 1024 * 1024 ? "met" : "**not met**"
  } |`,
  `| no-op run (\`deno task run\`, real-sized) | ${median(noopTimes).toFixed(2)} s | ≤ 0.20 s | ${
    median(noopTimes) <= 0.2 ? "met" : "**not met**"
  } |`,
  "",
  "Against the faithful original (reported, not a target): " +
  results.filter((r) => r.samples.has("original")).map((r) =>
    `${r.title}: ${(1 / ratio(r, "bucketload", "original")!).toFixed(2)}× faster`
  ).join("; ") + ".",
  "",
  `The incremental database held ${inc.rowsBefore.toLocaleString("en-US")} rows before the run.`,
  "",
  ...table(results),
];
const report = lines.join("\n");
console.log(report);
if (values.write || !values.quick) {
  const path = join(ROOT, "docs", "performance.md");
  const doc = await Deno.readTextFile(path);
  const heading = "## The suite: `deno task bench`";
  const start = doc.indexOf(heading);
  const end = start === -1 ? -1 : doc.indexOf("\n#", start + 1);
  const section = `${heading}\n\n${report}\n`;
  const next = start === -1
    ? `${doc.trimEnd()}\n\n${section}`
    : `${doc.slice(0, start)}${section}${end === -1 ? "" : doc.slice(end)}`;
  await Deno.writeTextFile(path, next);
  console.error(`Wrote ${path}`);
}
