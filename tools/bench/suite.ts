/**
 * `deno task bench`: every case of the performance issues in one run, each
 * against the shared floor (`../shared/bench/floor.ts`) and the faithful
 * model of the Python original (`tools/original/original.py`, with aiohttp),
 * interleaved, and the history case (a year-old database against a day-old
 * one). Prints one report with the machine, the date and every ratio from
 * this run; a full run writes it to `docs/performance.md` ("The suite").
 *
 * - bucketload is measured as a user runs it: `deno task run` (the task
 *   runner, the launcher and main.ts), its peak RSS the largest process's.
 * - Buckets are shaped like the real one (`tools/gen_bucket.ts`, `real`
 *   shape: keys in random order, 46% of records repeating an earlier file's,
 *   clean records as the real bucket's were). "unique" has no repeats.
 *
 * Usage: deno task bench [CASE...] [--runs N] [--quick] [--write] [--checkout DIR]
 *   CASE        run only the cases whose names start with it (e.g. `deno task bench year`, `scale`); see --list
 *   --list      the cases' names
 *   --runs N    repetitions of each implementation (default 3; the 10,000-file case takes at most 2, its original 1)
 *   --quick     one run of each, buckets a tenth the size (a smoke test of the bench, not a result)
 *   --write     write docs/performance.md even for a selection (a full run writes it unless --quick)
 *   --checkout DIR  run bucketload from DIR (a git worktree of another commit, e.g. to bisect); floor and
 *               original stay this checkout's
 *   --base DIR  also run the build of DIR (a git worktree of another commit) in every load case, interleaved, as
 *               `base` (and `base-noextra` in the extra case): an A/B in one run
 *   --start main  the load cases start main.ts alone instead of `deno task run` (commits before the launcher)
 *
 * Buckets, the history databases (`history_db.ts`) and the installed command are cached under `.bench/`
 * (git-ignored), or under BL_BENCH_DIR when it is set.
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { mb, median, ROOT, stopPostgres, useCheckout, useStart } from "./kit.ts";
import {
  type Bucket,
  firstLoad,
  FLOOR,
  type Impl,
  incremental,
  type LoadSettings,
  noop,
  ownBucket,
  type Profile,
  profileStores,
  pythonWithAiohttp,
  ratio,
  realBucket,
  type Result,
  runOnce,
  useBase,
  wall,
  WORK,
} from "./loads.ts";
import { historyCase, type HistoryReport, type OpTimes, type Phases } from "./year.ts";
import { lineageCase, lineageMedian, type LineageReport } from "./lineage.ts";
import { startupCase, type StartupReport } from "./startup.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    runs: { type: "string", default: "3" },
    quick: { type: "boolean" },
    write: { type: "boolean" },
    list: { type: "boolean" },
    checkout: { type: "string" },
    base: { type: "string" },
    start: { type: "string", default: "task" },
  },
});
const RUNS = values.quick ? 1 : Number(values.runs);
const n = (v: number) => v.toLocaleString("en-US", { maximumFractionDigits: 0 });
const S: LoadSettings = { runs: RUNS, scale: values.quick ? 0.1 : 1 };
if (values.checkout !== undefined) useCheckout(values.checkout);
if (values.base !== undefined) useBase(values.base);
if (values.start !== "task" && values.start !== "main") throw new Error("--start is task or main");
useStart(values.start);

/** What the cases measured: each fills its part. */
interface Measured {
  loads: Map<string, Result>;
  incremental?: Awaited<ReturnType<typeof incremental>>;
  noop?: number[];
  profile?: { real: Profile[]; realSized: Profile[] };
  startup?: StartupReport;
  history?: HistoryReport;
  lineage?: LineageReport;
}
const m: Measured = { loads: new Map() };

const ALL: Impl[] = ["bucketload", "floor", "original"];
const WITH_PG: Impl[] = ["bucketload", "floor", "original", "bucketload-pg"];

/** The cases, in the order a full run takes them. */
const CASES: { name: string; about: string; run: () => Promise<void> }[] = [
  {
    name: "real",
    about: "real shape 500 × 1,000: bucketload, floor, original, bucketload-pg",
    run: async () => await load("real", "real shape", await realBucket(500, S), WITH_PG),
  },
  {
    name: "unique",
    about: "unique keys 500 × 1,000",
    run: async () => await load("unique", "unique keys", await ownBucket("unique", 500, 1000, S, 0), ALL),
  },
  {
    name: "real-sized",
    about: "the real bucket's size (80 × 2,000), loopback, with PostgreSQL",
    run: async () =>
      await load("real-sized", "real-sized", await ownBucket("real-sized", 80, 2000, S), WITH_PG, {
        suffix: ", loopback",
      }),
  },
  {
    name: "latency",
    about: "real-sized with 20 and 50 ms per request",
    run: async () => {
      const b = await ownBucket("real-sized", 80, 2000, S);
      await load("latency-20", "real-sized", b, ALL, { latency: 20, suffix: ", 20 ms per request" });
      await load("latency-50", "real-sized", b, ALL, { latency: 50, suffix: ", 50 ms per request" });
    },
  },
  {
    name: "scale-2000",
    about: "real shape 2,000 × 1,000",
    run: async () =>
      await load("scale-2000", "real shape", await realBucket(2000, S), ALL, {
        runsOf: { original: Math.min(RUNS, 2) },
      }),
  },
  {
    name: "scale-10000",
    about: "real shape 10,000 × 1,000 (at most 2 runs; the original 1)",
    run: async () =>
      await load("scale-10000", "real shape", await realBucket(10_000, S), ALL, {
        runs: Math.min(RUNS, 2),
        runsOf: { original: 1 },
      }),
  },
  {
    name: "extra",
    about: "unknown fields kept in extra: 10% of records with one (500 × 1,000), every record with 50 (50 × 1,000); " +
      "KEEP_EXTRA on and off",
    run: async () => {
      const impls: Impl[] = ["bucketload", "bucketload-noextra", ...(values.base ? ["base-noextra" as const] : [])];
      await load(
        "extra-10",
        "unique keys, 10% with an unknown field",
        await extraBucket("extra10", 500, 0.1, 1),
        impls,
      );
      await load("extra-50", "unique keys, 50 unknown fields each", await extraBucket("extra50", 50, 1, 50), impls);
    },
  },
  {
    name: "incremental",
    about: "100 new files into 1,500; the floor holds the 1,500 too",
    run: async () => void (m.incremental = await incremental(S)),
  },
  {
    name: "noop",
    about: "a no-op run (deno task run) after the real-sized bucket",
    run: async () => void (m.noop = await noop(await ownBucket("real-sized", 80, 2000, S), RUNS)),
  },
  {
    name: "pg",
    about: "where a PostgreSQL run's time goes against SQLite (debug log phases, CPU of client and server)",
    run: async () => {
      m.profile = {
        real: await profileStores(await realBucket(500, S), RUNS),
        realSized: await profileStores(await ownBucket("real-sized", 80, 2000, S), RUNS),
      };
    },
  },
  {
    name: "startup",
    about: "a no-op run started by deno task run, the installed command, main.ts alone",
    run: async () => void (m.startup = await startupCase(Math.max(5, RUNS))),
  },
  {
    name: "year",
    about: "a year-old database against a day-old one (built once under .bench/history/), and what grows",
    run: async () => void (m.history = await historyCase(RUNS)),
  },
  {
    name: "lineage",
    about: "lineage as an integer file id against the 41-character key: bytes and the writer's time",
    run: async () => {
      const b = await ownBucket("unique", 500, 1000, S, 0);
      const { serve } = await import("./kit.ts");
      const server = serve(b.dir, b.list);
      const source = join(WORK, "lineage-source.sqlite3");
      try {
        await runOnce("bucketload", server.url, { keep: source });
      } finally {
        await server.close();
      }
      m.lineage = await lineageCase(source, WORK, RUNS);
    },
  },
];

/** A bucket of unique keys of the real shape, `rate` of its 1,000-record files' records with `fields` unknown fields. */
const extraBucket = (name: string, files: number, rate: number, fields: number) =>
  ownBucket(name, files, 1000, S, 0, { rate, fields });

async function load(
  key: string,
  title: string,
  b: Bucket,
  impls: Impl[],
  o: { latency?: number; runs?: number; runsOf?: Partial<Record<Impl, number>>; suffix?: string } = {},
) {
  // With --base, the other build runs beside this one's, interleaved.
  if (values.base !== undefined) impls = impls.flatMap((i) => i === "bucketload" ? [i, "base" as const] : [i]);
  // The title names the bucket's size as generated (a --quick run's buckets are a tenth).
  const named = `${title} ${n(b.files)} × ${n(b.records / b.files)}${o.suffix ?? ""}`;
  m.loads.set(key, await firstLoad(named, b, impls, { runs: o.runs ?? RUNS, ...o }));
}

if (values.list) {
  for (const c of CASES) console.log(`${c.name.padEnd(12)} ${c.about}`);
  Deno.exit(0);
}
const unknown = positionals.filter((p) => !CASES.some((c) => c.name.startsWith(p)));
if (unknown.length > 0) {
  console.error(`Unknown case ${unknown.join(", ")}; the cases: ${CASES.map((c) => c.name).join(", ")}`);
  Deno.exit(2);
}
const selected = CASES.filter((c) => positionals.length === 0 || positionals.some((p) => c.name.startsWith(p)));

await Deno.mkdir(WORK, { recursive: true });
try {
  await Deno.stat(FLOOR);
} catch {
  throw new Error(`The shared floor is not at ${FLOOR}`);
}
if (selected.some((c) => !["year", "startup", "lineage", "pg", "noop", "extra"].includes(c.name))) {
  await pythonWithAiohttp();
}
const started = new Date();
/** Cases that failed (a build being edited, a missing tool): reported, and the others still run. */
const failed: { name: string; reason: string }[] = [];
try {
  for (const c of selected) {
    console.error(`== ${c.name}: ${c.about}`);
    try {
      await c.run();
    } catch (error) {
      const reason = (error as Error).message.split("\n").find((l) => l.trim() !== "") ?? String(error);
      console.error(`== ${c.name} failed: ${(error as Error).stack ?? error}`);
      failed.push({ name: c.name, reason: reason.slice(0, 300) });
    }
  }
} finally {
  await stopPostgres();
}

// ---- The report ----

const x = (v: number | undefined, digits = 2) => v === undefined ? "–" : `${v.toFixed(digits)}×`;
const sec = (v: number | undefined) => v === undefined ? "–" : `${v.toFixed(2)} s`;
const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(bytes < 10 * 1024 * 1024 ? 1 : 0)} MiB`;
const span = (xs: number[]) =>
  xs.length === 0 ? "–" : `${median(xs).toFixed(2)} s (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
const verdict = (value: number | undefined, target: number) =>
  value === undefined ? "not measured" : value <= target ? "met" : "**not met**";
const got = (key: string) => m.loads.get(key);
const rate = (key: string) => {
  const r = got(key), w = r && wall(r, "bucketload");
  return r && w ? r.records / w : undefined;
};

type Target = [
  name: string,
  value: number | undefined,
  limit: number,
  shown: string,
  format?: "x" | "s" | "mb" | "inv",
];
const targets: Target[] = [];
const add = (...t: Target) => t[1] !== undefined && targets.push(t);
const r500 = got("real"), uniq = got("unique"), sized = got("real-sized");
add(`${r500?.title}, first load / floor`, r500 && ratio(r500, "bucketload", "floor"), 0.9, "≤ 0.90×");
add(`${uniq?.title}, first load / floor`, uniq && ratio(uniq, "bucketload", "floor"), 0.9, "≤ 0.90×");
add(`${sized?.title} / floor`, sized && ratio(sized, "bucketload", "floor"), 0.9, "≤ 0.90×");
for (const key of ["scale-2000", "scale-10000"]) {
  const r = got(key);
  add(`${r?.title ?? key}, first load / floor`, r && ratio(r, "bucketload", "floor"), 0.9, "≤ 0.90×");
}
const rate500 = rate("real"), rate10k = rate("scale-10000");
add(
  "records/s at 10,000 files / at 500 files (bucketload)",
  rate500 && rate10k ? rate500 / rate10k : undefined,
  1 / 0.9,
  "≥ 0.90×",
  "inv",
);
if (m.incremental) {
  add(
    "incremental / floor holding the 1,500 earlier files",
    ratio(m.incremental, "bucketload", "floor"),
    0.9,
    "≤ 0.90×",
  );
}
add("PostgreSQL / SQLite, real shape", r500 && ratio(r500, "bucketload-pg", "bucketload"), 1.2, "≤ 1.20×");
add("PostgreSQL / SQLite, real-sized", sized && ratio(sized, "bucketload-pg", "bucketload"), 1.2, "≤ 1.20×");
const bucketloadRss = [...m.loads.values(), ...(m.incremental ? [m.incremental] : [])]
  .flatMap((r) => [...(r.samples.get("bucketload") ?? []), ...(r.samples.get("bucketload-pg") ?? [])])
  .map((s) => s.rss);
if (bucketloadRss.length > 0) {
  add("peak RSS, any load (largest process)", Math.max(...bucketloadRss) / 1024 / 1024, 256, "≤ 256 MB", "mb");
}
if (m.noop) add("no-op run (`deno task run`, real-sized)", median(m.noop), 0.2, "≤ 0.20 s", "s");
const h = m.history;
if (h) {
  const d = h.times.day, y = h.times.year;
  const listDiff = listDiffOf(y) / (h.year.history.files / 1e6);
  add("year-old / day-old: no-op run", median(y.noop) / median(d.noop), 1.5, "≤ 1.50×");
  add(
    "year-old / day-old: run with 10 new files, without the list diff",
    median(y.runShort) / median(d.runShort),
    1.5,
    "≤ 1.50×",
  );
  add("year-old: `status --json` (`deno task run`)", median(y.statusJson), 0.5, "≤ 0.50 s", "s");
  add("year-old: the status page (GET /)", median(y.page), 0.5, "≤ 0.50 s", "s");
  add("year-old: `replay --dry-run`, nothing quarantined for it", median(y.replayNone), 0.5, "≤ 0.50 s", "s");
  add("year-old: the list diff, per million keys (the list appended to)", listDiff, 1, "≤ 1.00 s", "s");
  add(
    "year-old: the list diff, per million keys (a rewritten list, read whole)",
    listDiffOf(y, "runRewrittenPhases") / (h.year.history.files / 1e6),
    1,
    "≤ 1.00 s",
    "s",
  );
}
const shownValue = (t: Target) =>
  t[4] === "s" ? sec(t[1]) : t[4] === "mb" ? `${t[1]!.toFixed(0)} MB` : t[4] === "inv" ? x(1 / t[1]!) : x(t[1]);

const cpu = (Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*: (.*)/)?.[1] ?? "unknown CPU").trim();
const lines: string[] = [
  `Measured ${started.toISOString().slice(0, 10)} by \`deno task bench${
    positionals.length ? ` ${positionals.join(" ")}` : ""
  }\`: ${navigator.hardwareConcurrency} cores, ${cpu}, Deno ${Deno.version.deno}; ${RUNS} run(s) of each ` +
  `(interleaved) unless a table says otherwise; bucketload as ${
    values.start === "main" ? "main.ts alone" : "`deno task run`"
  }` +
  `${values.checkout ? ` from ${values.checkout}` : ""}.` +
  `${values.quick ? " **A --quick smoke run: small buckets, one run; not a result.**" : ""}`,
  "",
  "| target | measured | target | |",
  "| --- | --- | --- | --- |",
  ...targets.map((t) => `| ${t[0]} | ${shownValue(t)} | ${t[3]} | ${verdict(t[1], t[2])} |`),
];

const loads = [...m.loads.values(), ...(m.incremental ? [m.incremental] : [])];
if (loads.some((r) => r.samples.has("original"))) {
  lines.push(
    "",
    "Against the faithful original (reported, not a target): " +
      loads.filter((r) => r.samples.has("original")).map((r) =>
        `${r.title}: ${(1 / ratio(r, "bucketload", "original")!).toFixed(2)}× faster`
      ).join("; ") + ".",
  );
}
if (loads.length > 0) {
  lines.push(
    "",
    "| case | implementation | wall median (min–max) | records/s | CPU | other load | peak RSS median (max) | rows |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  );
  for (const r of loads) {
    for (const [impl, samples] of r.samples) {
      if (samples.length === 0) continue;
      const secs = samples.map((s) => s.seconds), rss = samples.map((s) => s.rss);
      lines.push(
        `| ${r.title} | ${impl}${
          samples.length < RUNS ? ` (${samples.length} run${samples.length > 1 ? "s" : ""})` : ""
        } | ${span(secs)} | ${n(r.records / median(secs))} | ${median(samples.map((s) => s.cpu)).toFixed(1)} s | ${
          median(samples.map((s) => s.background / s.seconds)).toFixed(2)
        } cores | ${mb(median(rss))} (${mb(Math.max(...rss))}) | ${n(samples[0]!.rows)} |`,
      );
    }
  }
  lines.push(
    "",
    "CPU is the command's processes' user and system time; other load is what the rest of the machine used " +
      "meanwhile, in cores (for bucketload-pg it includes the PostgreSQL server). bucketload's writer and its worker " +
      "need both cores, the floor one: wall-time ratios are only comparable between tables whose other load is near 0.",
  );
  const cpuOf = (r: Result, impl: Impl) => {
    const s = r.samples.get(impl);
    return s === undefined || s.length === 0 ? undefined : median(s.map((x) => x.cpu));
  };
  const pct = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? "–" : `${a >= b ? "+" : ""}${((a / b - 1) * 100).toFixed(0)}%`;
  const withBase = loads.filter((r) => r.samples.has("base"));
  if (withBase.length > 0) {
    lines.push(
      "",
      `Against the build of ${values.base} (\`base\`, the same run, interleaved): ` +
        withBase.map((r) =>
          `${r.title}: wall ${pct(wall(r, "bucketload"), wall(r, "base"))}, CPU ${
            pct(cpuOf(r, "bucketload"), cpuOf(r, "base"))
          }`
        ).join("; ") + ".",
    );
  }
  const withNoExtra = loads.filter((r) => r.samples.has("bucketload-noextra"));
  if (withNoExtra.length > 0) {
    lines.push(
      "",
      "KEEP_EXTRA on against off (the same run): " +
        withNoExtra.map((r) =>
          `${r.title}: wall ${pct(wall(r, "bucketload"), wall(r, "bucketload-noextra"))}, CPU ${
            pct(cpuOf(r, "bucketload"), cpuOf(r, "bucketload-noextra"))
          }${
            r.samples.has("base-noextra")
              ? ` (base: wall ${pct(wall(r, "base"), wall(r, "base-noextra"))}, CPU ${
                pct(cpuOf(r, "base"), cpuOf(r, "base-noextra"))
              })`
              : ""
          }`
        ).join("; ") + ".",
    );
  }
  if (m.incremental) {
    lines.push(
      "",
      `The incremental case: bucketload's database held ${n(m.incremental.rowsBefore)} rows before its run, the ` +
        `floor's ${n(m.incremental.floorRowsBefore)} (it loaded the same earlier files first, untimed); records/s ` +
        "counts the new files' records.",
    );
  }
}

if (m.profile) {
  lines.push(
    "",
    "Where the time goes (one debug-logged run of each store, medians; seconds from the first log line; CPU of " +
      "bucketload's processes and of the PostgreSQL server during the run):",
    "",
    "| bucket | store | planned | last file written | committed | exit | bucketload CPU | server CPU |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  );
  for (const [title, ps] of [["real shape", m.profile.real], ["real-sized", m.profile.realSized]] as const) {
    for (const p of ps) {
      lines.push(
        `| ${title} | ${p.store} | ${sec(p.listed)} | ${sec(p.written)} | ${sec(p.committed)} | ${sec(p.wall)} | ${
          p.cpu.toFixed(1)
        } s | ${p.serverCpu === undefined ? "–" : `${p.serverCpu.toFixed(1)} s`} |`,
      );
    }
  }
}

if (m.startup) {
  const s = m.startup;
  lines.push(
    "",
    `Start-up: the same no-op run (the sample bucket), ${s.main.length} runs of each, interleaved: ` +
      `\`deno task run\` (3 Deno processes) ${span(s.task)}; the installed \`bucketload\` (2) ${span(s.installed)}; ` +
      `main.ts alone ${span(s.main)}. The task runner costs ${sec(median(s.task) - median(s.installed))}, the ` +
      `launcher ${sec(median(s.installed) - median(s.main))}.`,
  );
}

if (h) {
  const d = h.times.day, y = h.times.year;
  const row = (name: string, a: number[], b: number[], target = "") =>
    `| ${name} | ${span(a)} | ${span(b)} | ${a.length && b.length ? x(median(b) / median(a)) : "–"} | ${target} |`;
  const yh = h.year.history, dh = h.day.history;
  lines.push(
    "",
    `History: a database after a year of 15-minute runs (${n(yh.runs)} runs with their drift rows, ${n(yh.files)} ` +
      `registered files and a list of as many keys, ${n(yh.rows.songs + yh.rows.movies + yh.rows.apps)} rows, ` +
      `${n(yh.rejections)} stored rejections, processed.json in use) against one a day old (${dh.runs} runs, ` +
      `${n(dh.files)} files, ${n(dh.rows.songs + dh.rows.movies + dh.rows.apps)} rows, ${n(dh.rejections)} ` +
      "rejections), built once with SQL (`tools/bench/history_db.ts`); `deno task run` unless said.",
    "",
    "| operation | day-old | year-old | year / day | target |",
    "| --- | --- | --- | --- | --- |",
    row("no-op run (list unchanged: 304)", d.noop, y.noop, "≤ 1.50×"),
    row("no-op run without PROCESSED_FILES_FILENAME", d.noopNoProcessedJson, y.noopNoProcessedJson),
    row("no-op run with the daily quick_check due", d.noopQuickCheck, y.noopQuickCheck),
    row("run with 10 new files, the real list (every key + 10)", d.runLong, y.runLong),
    row("run with 10 new files listed alone (no list diff)", d.runShort, y.runShort, "≤ 1.50×"),
    row("run with 10 new files listed first (a rewritten list: read whole)", d.runRewritten, y.runRewritten),
    row("first no-op run after an upgrade (the list kept as text: read whole once)", d.noopUpgrade, y.noopUpgrade),
    row("`status --json`", d.statusJson, y.statusJson, "≤ 0.50 s"),
    row("`status --json`, main.ts alone", d.statusJsonMain, y.statusJsonMain),
    row("status page, GET / (server running)", d.page, y.page, "≤ 0.50 s"),
    row("GET /api/status", d.apiStatus, y.apiStatus),
    row("`replay --dry-run --reason` matching nothing", d.replayNone, y.replayNone, "≤ 0.50 s"),
    row(`\`replay --dry-run\` of the whole quarantine (1 run)`, d.replayAll, y.replayAll),
  );
  const ph = (p: Phases[]) => {
    const committed = p.map((q) => q.committed).filter((c) => c !== undefined);
    return `${sec(median(p.map((q) => q.listed)))} | ${committed.length ? sec(median(committed)) : "–"} | ${
      sec(median(p.map((q) => q.exit)))
    }`;
  };
  lines.push(
    "",
    "Where those runs' time goes (seconds from the run's first log line, which comes after the start-up and the " +
      "processed.json read, to the plan (`Listed`) and to the commit; the wall time from the command's start):",
    "",
    "| run | database | planned | committed | exit |",
    "| --- | --- | --- | --- | --- |",
    `| no-op | day-old | ${ph(d.noopPhases)} |`,
    `| no-op | year-old | ${ph(y.noopPhases)} |`,
    `| 10 new files, the real list | day-old | ${ph(d.runLongPhases)} |`,
    `| 10 new files, the real list | year-old | ${ph(y.runLongPhases)} |`,
    `| 10 new files listed alone | day-old | ${ph(d.runShortPhases)} |`,
    `| 10 new files listed alone | year-old | ${ph(y.runShortPhases)} |`,
    `| 10 new files listed first (rewritten list) | day-old | ${ph(d.runRewrittenPhases)} |`,
    `| 10 new files listed first (rewritten list) | year-old | ${ph(y.runRewrittenPhases)} |`,
    "",
    `The list diff (the time to the plan with the real list, appended to, less that with the 10 files listed ` +
      `alone): ${sec(listDiffOf(y))} for ${n(yh.files)} keys, ${sec(listDiffOf(d))} for ${n(dh.files)}. ` +
      `A rewritten list is read whole: ${sec(listDiffOf(y, "runRewrittenPhases"))} for ${n(yh.files)} keys, ${
        sec(listDiffOf(d, "runRewrittenPhases"))
      } for ${n(dh.files)}.`,
  );
  const g = h.growth;
  const t = (name: string) => g.tables[name] ?? { bytes: 0, rows: 0 };
  /** The time of the first of `names` measured (the queries of schema 8 on, or those of the builds before it). */
  const q = (...names: string[]) => names.map((name) => g.statusQueries[name]).find((s) => s !== undefined) ?? NaN;
  const data = ["songs", "movies", "apps"].reduce((s, k) => s + t(k).bytes, 0);
  lines.push(
    "",
    `What grows with history, on the year-old database (${mib(g.dbBytes)}):`,
    "",
    "| cost | size after a year | time |",
    "| --- | --- | --- |",
    `| processed.json read at every run's start | ${mib(g.processedJsonBytes)} | ${
      sec(g.processedJsonReadSeconds)
    } (JSON.parse); no-op with it ${sec(median(y.noop))}, without ${sec(median(y.noopNoProcessedJson))} |`,
    `| processed.json rewritten from the whole registry after every commit | ${mib(g.processedJsonBytes)} | ${
      sec(g.processedJsonWriteSeconds)
    } (query, JSON, write, rename) |`,
    `| the cached list (list_cache.body) read at every run, written at every changed list | ${
      mib(g.listCacheBytes)
    } | ${sec(g.listCacheReadSeconds)} to read |`,
    `| the daily quick_check reads the whole database | ${mib(g.dbBytes)} | ${
      sec(g.quickCheckSeconds)
    } (warm cache); ` +
      `no-op with it ${sec(median(y.noopQuickCheck))} |`,
    `| SAVE_LOG: one file per run | ${mib(35_040 * g.logBytesNoop)} a year of no-op runs (${
      n(g.logBytesNoop)
    } B each), ${mib(35_040 * g.logBytesRun)} of loading runs (${n(g.logBytesRun)} B each); 35,040 files | – |`,
    `| runs | ${mib(t("runs").bytes)}, ${n(t("runs").rows)} rows | status reads the last 30 by id |`,
    `| run_drift | ${mib(t("run_drift").bytes)}, ${n(t("run_drift").rows)} rows | ${
      sec(q("drift of the last 30 runs"))
    } (last 30 runs, by index) |`,
    `| run_keys | ${mib(t("run_keys").bytes)}, ${n(t("run_keys").rows)} rows | ${
      sec(q("recent problem keys (run_keys by run, indexed)", "recent problem keys (run_keys by run_id)"))
    } |`,
    `| rejected_records (the quarantine) | ${mib(t("rejected_records").bytes)}, ${
      n(t("rejected_records").rows)
    } rows | ${
      sec(q("top rejection reasons (rejection_counts)", "top rejection reasons (GROUP BY over all)"))
    } (status: top reasons) |`,
    `| processed_files (the registry) | ${mib(t("processed_files").bytes)}, ${n(t("processed_files").rows)} rows | ${
      sec(
        (Number.isNaN(q("registry by status and deleted (registry_counts)"))
          ? q("registry by status") + q("registry deleted")
          : q("registry by status and deleted (registry_counts)")) +
          q("last run's files (processed_files by run_id, indexed)", "last run's files (processed_files by run_id)") +
          q("invalid files with their reason (partial index)", "invalid files with their reason"),
      )
    } (status: its queries) |`,
    `| data tables (songs, movies, apps) | ${mib(data)}, ${
      n(t("songs").rows + t("movies").rows + t("apps").rows)
    } rows | ${
      sec(q("rows per table (table_rows)", "rows per table (count(*) of songs, movies, apps)"))
    } (status: rows per table) |`,
    "",
    "The status report's queries on the year-old database, each alone: " +
      Object.entries(g.statusQueries).map(([q, s]) => `${q} ${(s * 1000).toFixed(0)} ms`).join("; ") + ".",
  );
}

if (m.lineage) {
  const l = m.lineage, med = lineageMedian(l);
  lines.push(
    "",
    `Lineage (${n(l.rows)} rows of ${n(l.files)} files, unique keys 500 × 1,000, written again with the writer's ` +
      `statements, ${l.text.seconds.length} runs of each): the 41-character key ${sec(med.text)}, ` +
      `${mib(l.text.bytes)}; an integer file id ${sec(med.integer)}, ${mib(l.integer.bytes)}: ` +
      `${x(med.integer / med.text)} the time, ${(100 * (1 - l.integer.bytes / l.text.bytes)).toFixed(0)}% fewer ` +
      `bytes (${((l.text.bytes - l.integer.bytes) / l.rows).toFixed(0)} B a row).`,
  );
}

/** The list diff: the time to the plan with the real list, less that with the new files listed alone. */
function listDiffOf(t: OpTimes, of: "runLongPhases" | "runRewrittenPhases" = "runLongPhases"): number {
  return median(t[of].map((p) => p.listed)) - median(t.runShortPhases.map((p) => p.listed));
}

if (failed.length > 0) {
  lines.push("", ...failed.map((f) => `**Case ${f.name} failed**: ${f.reason}`));
}

const report = lines.join("\n");
console.log(report);
if (values.write || (positionals.length === 0 && !values.quick && failed.length === 0)) {
  const path = join(ROOT, "docs", "performance.md");
  const doc = await Deno.readTextFile(path);
  const heading = "## The suite: `deno task bench`";
  const start = doc.indexOf(heading);
  const end = start === -1 ? -1 : doc.indexOf("\n## ", start + 1);
  const section = `${heading}\n\n${report}\n`;
  const next = start === -1
    ? `${doc.trimEnd()}\n\n${section}`
    : `${doc.slice(0, start)}${section}${end === -1 ? "" : doc.slice(end)}`;
  await Deno.writeTextFile(path, next);
  await new Deno.Command(Deno.execPath(), { args: ["fmt", path], stderr: "null" }).output();
  console.error(`Wrote ${path}`);
}
