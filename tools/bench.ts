/**
 * `deno task bench`: end-to-end throughput and memory of bucketload against
 * two references, on a deterministic bucket shaped like the real one, served
 * over loopback HTTP.
 *
 * - bucketload: `main.ts` as a subprocess, a fresh database, default settings;
 * - naive: one file after another, one INSERT per row, in Deno (tools/bench/naive.ts);
 * - floor: fetch + parse + multi-row insert, no validation (tools/bench/floor.ts);
 * (The faithful original is measured by the suite, `deno task bench`: tools/bench/suite.ts.)
 *
 * Usage: deno task bench [--files N] [--records N] [--runs N] [--only a,b] [--large] [--huge] [--noop]
 *                        [--registry] [--write]
 *   --large     5,000 files × 1,000 records
 *   --huge      1 file of about 1 GB (7,000,000 records), bucketload only
 *   --noop      a second run of bucketload when nothing changed: wall time and HTTP requests
 *   --registry  100,000 keys already registered and 10 new: wall time of the run
 *   --incremental  500 new files into a database of ~606k rows, against the first load of 500 files
 *   --real-sized   80 files × 2,000 records of the real shape
 *   --shape S   real (default: random key order, repeats) or sequential (counter keys)
 *   --latency MS  wait MS before answering each request, as a remote bucket does (default 0: loopback)
 *   --postgres  bucketload into PostgreSQL too, with 1 and 3 worker processes (bucketload-pg, bucketload-pg3);
 *               BL_BENCH_DATABASE_URL names a server, else tools/pg_cluster.sh starts one (fsync on)
 *   --s3        the same bucket served by the S3 test server (tools/s3rver) without a list file: bucketload-s3 lists it
 *               with ListObjectsV2 and fetches signed, against bucketload over HTTP
 *   --listing N   an S3 listing of N objects already loaded (default 1,000,000) and 10 new: wall time, peak RSS,
 *               requests (served by the bench as ListObjectsV2 pages); BENCH_V8 replaces bucketload's --v8-flags
 *   --write     also write the table to docs/performance.md ("Latest results")
 *
 * @module
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { generateBucket } from "./gen_bucket.ts";
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
} from "./bench/kit.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    files: { type: "string" },
    records: { type: "string" },
    runs: { type: "string", default: "3" },
    only: { type: "string" },
    large: { type: "boolean" },
    huge: { type: "boolean" },
    noop: { type: "boolean" },
    registry: { type: "boolean" },
    incremental: { type: "boolean" },
    "real-sized": { type: "boolean" },
    latency: { type: "string", default: "0" },
    write: { type: "boolean" },
    shape: { type: "string", default: "real" },
    postgres: { type: "boolean" },
    s3: { type: "boolean" },
    listing: { type: "string" },
  },
});
const shape = values.shape === "sequential" ? "sequential" : "real";
const files = Number(values.files ?? (values.huge ? 1 : values.large ? 5000 : values["real-sized"] ? 80 : 500));
const records = Number(values.records ?? (values.huge ? 7_000_000 : values["real-sized"] ? 2000 : 1000));
const runs = Number(values.runs);
const impls = (values.only ??
  (values.huge
    ? "bucketload"
    : values["real-sized"]
    ? "bucketload,naive"
    : values.postgres
    ? "bucketload,bucketload-pg,bucketload-pg3,floor"
    : values.s3
    ? "bucketload,bucketload-s3"
    : "bucketload,naive,floor"))
  .split(",");

/** The bucket, generated once per shape and cached under .bench/. */
async function bucket(): Promise<string> {
  const dir = join(BENCH_DIR, `bucket-${shape}-${files}x${records}`);
  try {
    await Deno.stat(join(dir, "files_list.data"));
  } catch {
    console.error(`Generating ${files} files × ${records} records into ${dir} ...`);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await generateBucket(dir, { files, records, invalidRate: 0.03, seed: 42, shape });
  }
  return dir;
}

interface Sample {
  readonly seconds: number;
  readonly rss: number;
  /** Rows in songs, movies and apps after the run: the three load the same data. */
  readonly rows: number;
}

/** The V8 flag bucketload runs with in the bench, as `deno task run` gives it; BENCH_V8 replaces it. */
const V8_FLAGS = Deno.env.get("BENCH_V8") ?? "--v8-flags=--max-semi-space-size=4";

/** `main.ts` as a subprocess, quiet, with `env` alone as its config (no config.ini from the project folder). */
function bucketload(
  env: Record<string, string>,
  cwd: string,
  args: string[] = ["--log-level", "warning"],
): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", V8_FLAGS, join(ROOT, "main.ts"), "--quiet", ...args],
    cwd,
    env: { BUCKETLOAD_CWD: cwd, ...env },
    stdout: "piped",
    stderr: "piped",
  });
}

async function runOne(
  impl: string,
  url: string,
  work: string,
  options: { fresh?: boolean; count?: boolean } = {},
): Promise<Sample> {
  const { fresh = true, count = fresh } = options;
  if (impl.startsWith("bucketload-pg")) return await runPostgres(impl, url);
  if (impl === "bucketload-s3") return await runS3(work);
  const db = join(work, `${impl}.sqlite3`);
  if (fresh) { for (const suffix of ["", "-wal", "-shm", "-journal"]) await Deno.remove(db + suffix).catch(() => {}); }
  // `bucketload:MODE` runs bucketload with LOAD_MODE = MODE.
  const [name, loadMode] = impl.split(":") as [string, string | undefined];
  const ours = name === "bucketload";
  const script = join(ROOT, "tools", "bench", `${name}.ts`);
  const args = [url, db];
  if (fresh) await Deno.remove(`${db}.processed.json`).catch(() => {});
  const env = {
    BUCKETLOAD_BUCKET_NAME: url,
    BUCKETLOAD_DATABASE_NAME: db,
    ...(loadMode !== undefined ? { BUCKETLOAD_LOAD_MODE: loadMode } : {}),
    // The 1 GB file is above the default MAX_FILE_BYTES (512 MiB): raise the cap for it.
    ...(values.huge ? { BUCKETLOAD_MAX_FILE_BYTES: String(4 * 1024 ** 3) } : {}),
  };
  const command = ours ? bucketload(env, work) : new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, ...args],
    cwd: work,
    stdout: "piped",
    stderr: "piped",
  });
  const { seconds, rss } = await measure(impl, [command]);
  if (!count) return { seconds, rss, rows: 0 };
  const { rows, notLoaded } = await sqliteCounts(db);
  // A fast run that loaded nothing would be a wrong number: check that every file was loaded.
  if (ours && fresh && notLoaded > 0) throw new Error(`bucketload left ${notLoaded} file(s) not loaded`);
  return { seconds, rss, rows };
}

/**
 * `bucketload-pg` (one process) or `bucketload-pgN` (N processes side by side)
 * into a fresh PostgreSQL database; RSS is the largest process's peak.
 */
async function runPostgres(impl: string, url: string): Promise<Sample> {
  const workers = Number(impl.slice("bucketload-pg".length) || "1");
  const database = `bench_${impl.replaceAll("-", "_")}`;
  const databaseUrl = await postgresUrl(database);
  const env = { BUCKETLOAD_BUCKET_NAME: url, BUCKETLOAD_DATABASE_URL: databaseUrl };
  const { seconds, rss } = await measure(impl, Array.from({ length: workers }, () => bucketload(env, BENCH_DIR)));
  const { rows, notLoaded } = await postgresCounts(databaseUrl);
  if (notLoaded > 0) throw new Error(`${impl} left ${notLoaded} file(s) not loaded`);
  return { seconds, rss, rows };
}

/** The S3 server for `bucketload-s3`, holding the bench bucket (no list file): started and filled once. */
let s3: { endpoint: string; stop: () => Promise<void> } | undefined;
async function s3Bucket(dir: string): Promise<string> {
  if (s3 !== undefined) return s3.endpoint;
  const store = join(BENCH_DIR, "s3");
  await Deno.remove(store, { recursive: true }).catch(() => {});
  await Deno.mkdir(store, { recursive: true });
  const child = new Deno.Command("node", {
    args: [join(ROOT, "tools", "s3rver", "start.cjs"), "0", store],
    env: { NODE_OPTIONS: "--openssl-legacy-provider" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!/listening \d+/.test(out)) {
    const { value, done } = await reader.read();
    if (done) throw new Error("The S3 server did not start: npm ci --prefix tools/s3rver");
    out += value;
  }
  const endpoint = `http://127.0.0.1:${/listening (\d+)/.exec(out)![1]}`;
  const { AwsClient } = await import("aws4fetch");
  const client = new AwsClient({
    accessKeyId: "S3RVER",
    secretAccessKey: "S3RVER",
    service: "s3",
    region: "us-east-1",
  });
  await client.fetch(`${endpoint}/bench`, { method: "PUT" });
  console.error("Uploading the bucket to the S3 server ...");
  const names = (await Deno.readTextFile(join(dir, "files_list.data"))).split("\n").filter((k) => k !== "");
  for (let i = 0; i < names.length; i += 8) {
    await Promise.all(
      names.slice(i, i + 8).map(async (name) => {
        const res = await client.fetch(`${endpoint}/bench/${name}`, {
          method: "PUT",
          body: await Deno.readFile(join(dir, name)),
        });
        if (!res.ok) throw new Error(`upload of ${name}: HTTP ${res.status}`);
        await res.body?.cancel();
      }),
    );
  }
  s3 = {
    endpoint,
    stop: async () => {
      child.kill("SIGTERM");
      await reader.cancel().catch(() => {});
      await child.status;
    },
  };
  return endpoint;
}

/** bucketload over the S3 API in listing mode (no list file), signed, into a fresh SQLite file. */
async function runS3(work: string): Promise<Sample> {
  const endpoint = await s3Bucket(await bucket());
  const db = join(work, "bucketload-s3.sqlite3");
  for (const suffix of ["", "-wal", "-shm"]) await Deno.remove(db + suffix).catch(() => {});
  const { seconds, rss } = await measure("bucketload-s3", [
    bucketload({
      BUCKETLOAD_BUCKET_NAME: "s3://bench",
      BUCKETLOAD_S3_ENDPOINT: endpoint,
      BUCKETLOAD_DATABASE_NAME: db,
      AWS_ACCESS_KEY_ID: "S3RVER",
      AWS_SECRET_ACCESS_KEY: "S3RVER",
    }, work),
  ]);
  const { rows, notLoaded } = await sqliteCounts(db);
  if (notLoaded > 0) throw new Error(`bucketload-s3 left ${notLoaded} file(s) not loaded`);
  return { seconds, rss, rows };
}

/** Replaces (or appends) the section under `heading` in docs/performance.md. */
async function writeSection(heading: string, body: string): Promise<void> {
  const path = join(ROOT, "docs", "performance.md");
  let doc = await Deno.readTextFile(path).catch(() => "# Benchmarks\n\nWritten by `deno task bench --write`.\n");
  const start = doc.indexOf(heading);
  const section = `${heading}\n\n${body}\n`;
  if (start < 0) doc = `${doc.trimEnd()}\n\n${section}`;
  else {
    const next = doc.indexOf("\n## ", start + heading.length);
    doc = doc.slice(0, start) + section + (next < 0 ? "" : doc.slice(next + 1));
  }
  await Deno.writeTextFile(path, doc);
  // Keep `deno task check` (deno fmt --check) clean.
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", path] }).output();
}

/** `--noop` and `--registry`: timings of bucketload alone, printed (and written) as a short report. */
async function special(): Promise<string> {
  const work = join(BENCH_DIR, "work");
  await Deno.mkdir(work, { recursive: true });
  const lines: string[] = [];
  if (values.noop) {
    const dir = await bucket();
    const server = serve(dir, undefined, Number(values.latency));
    try {
      await runOne("bucketload", server.url, work);
      const times: number[] = [];
      let requests = 0;
      for (let r = 0; r < runs; r++) {
        const before = server.requests();
        times.push((await runOne("bucketload", server.url, work, { fresh: false })).seconds);
        requests = server.requests() - before;
      }
      lines.push(
        `No-op run (${files} files already loaded, list unchanged): median ${median(times).toFixed(2)} s ` +
          `(min ${Math.min(...times).toFixed(2)} s), ${requests} HTTP request(s).`,
      );
    } finally {
      await server.close();
    }
  }
  if (values.registry) {
    const dir = join(BENCH_DIR, "registry-bucket");
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    const fresh = await generateBucket(dir, { files: 10, records: 100, seed: 7 });
    const old = Array.from({ length: 100_000 }, (_, i) => `old/${String(i).padStart(6, "0")}.data`);
    const server = serve(dir, [...old, ...fresh].join("\n"));
    // The keys already registered alone: a first, untimed run migrates the seeded registry to the current schema.
    const registered = serve(dir, old.join("\n"));
    const { DatabaseSync } = await import("node:sqlite");
    const times: number[] = [];
    try {
      for (let r = 0; r < runs; r++) {
        const db = join(work, "bucketload.sqlite3");
        for (const suffix of ["", "-wal", "-shm"]) await Deno.remove(db + suffix).catch(() => {});
        // Register 100,000 keys as a first run would have.
        const seed = new DatabaseSync(db);
        seed.exec(`CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT,
          status TEXT NOT NULL, files_listed INTEGER NOT NULL DEFAULT 0, files_new INTEGER NOT NULL DEFAULT 0,
          files_loaded INTEGER NOT NULL DEFAULT 0, files_invalid INTEGER NOT NULL DEFAULT 0,
          files_missing INTEGER NOT NULL DEFAULT 0, files_failed INTEGER NOT NULL DEFAULT 0,
          files_refused INTEGER NOT NULL DEFAULT 0, records_loaded INTEGER NOT NULL DEFAULT 0,
          loaded_by_type TEXT NOT NULL DEFAULT '{}', records_rejected INTEGER NOT NULL DEFAULT 0,
          records_ignored INTEGER NOT NULL DEFAULT 0, ignored_by_type TEXT NOT NULL DEFAULT '{}') STRICT;
          CREATE TABLE processed_files (key TEXT PRIMARY KEY, status TEXT NOT NULL CHECK (status IN ('loaded', 'invalid')),
          run_id INTEGER NOT NULL REFERENCES runs(id), processed_at TEXT NOT NULL, records INTEGER NOT NULL,
          rejected INTEGER NOT NULL, ignored INTEGER NOT NULL, bytes INTEGER NOT NULL) STRICT;
          INSERT INTO runs (id, started_at, status) VALUES (1, '2021-01-01T00:00:00Z', 'ok');`);
        seed.prepare(
          `INSERT INTO processed_files SELECT value, 'loaded', 1, '2021-01-01T00:00:00Z', 1000, 0, 0, 200000
           FROM json_each(?)`,
        ).run(JSON.stringify(old));
        seed.close();
        await runOne("bucketload", registered.url, work, { fresh: false });
        times.push((await runOne("bucketload", server.url, work, { fresh: false })).seconds);
      }
    } finally {
      await server.close();
      await registered.close();
    }
    lines.push(
      `Large registry (100,000 keys registered, 10 new): median ${median(times).toFixed(2)} s ` +
        `(min ${Math.min(...times).toFixed(2)} s).`,
    );
  }
  return lines.join("\n\n");
}

/**
 * `--incremental`: 500 new files into a database that already holds the rows
 * of the first 1,500 files of a 2,000-file bucket of the same shape (with the
 * real shape's repeats, ~606k distinct rows: more than the 500k the issue
 * asks for). Compared with the first load of 500 files into an empty
 * database, alternating.
 */
async function incremental(): Promise<string> {
  const half = files;
  const dir = join(BENCH_DIR, `bucket-${shape}-${half * 4}x${records}`);
  try {
    await Deno.stat(join(dir, "files_list.data"));
  } catch {
    console.error(`Generating ${half * 4} files × ${records} records into ${dir} ...`);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await generateBucket(dir, { files: half * 4, records, invalidRate: 0.03, seed: 42, shape });
  }
  const keys = (await Deno.readTextFile(join(dir, "files_list.data"))).split("\n");
  const work = join(BENCH_DIR, "work");
  await Deno.mkdir(work, { recursive: true });
  const first = serve(dir, keys.slice(0, half).join("\n"));
  const base = serve(dir, keys.slice(0, half * 3).join("\n"));
  const all = serve(dir, keys.join("\n"));
  const template = join(work, "incremental-template.sqlite3");
  const ours = impls.filter((i) => i.startsWith("bucketload"));
  const firstTimes = new Map<string, number[]>(ours.map((i) => [i, []]));
  const nextTimes = new Map<string, number[]>(ours.map((i) => [i, []]));
  const rss = new Map<string, number[]>(ours.map((i) => [i, []]));
  let rowsBefore = 0, rowsAfter = 0, rowsBase = 0;
  try {
    // The base: 1,500 files loaded, once.
    await runOne("bucketload", base.url, work);
    await Deno.copyFile(join(work, "bucketload.sqlite3"), template);
    rowsBase = (await sqliteCounts(template)).rows;
    console.error(`base database ready: ${rowsBase} rows`);
    for (let r = 0; r < runs; r++) {
      for (const impl of ours) {
        const a = await runOne(impl, first.url, work);
        firstTimes.get(impl)!.push(a.seconds);
        rowsBefore = a.rows;
        const db = join(work, `${impl}.sqlite3`);
        for (const suffix of ["-wal", "-shm"]) await Deno.remove(db + suffix).catch(() => {});
        await Deno.copyFile(template, db);
        const b = await runOne(impl, all.url, work, { fresh: false, count: true });
        nextTimes.get(impl)!.push(b.seconds);
        rss.get(impl)!.push(b.rss);
        rowsAfter = b.rows;
        console.error(
          `run ${r + 1}/${runs} ${impl}: first ${a.seconds.toFixed(2)} s, incremental ${b.seconds.toFixed(2)} s`,
        );
      }
    }
  } finally {
    await first.close();
    await base.close();
    await all.close();
  }
  const span = (xs: number[]) =>
    `${median(xs).toFixed(2)} s (${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)})`;
  const lines = [
    `Incremental: ${half} new files (${(half * records).toLocaleString("en-US")} records, ${shape} shape) into a ` +
    `database holding the rows of ${half * 3} earlier files (${rowsBase.toLocaleString("en-US")} rows before, ${
      rowsAfter.toLocaleString("en-US")
    } after); ${runs} runs, alternating with the first load of ${half} files (${
      rowsBefore.toLocaleString("en-US")
    } rows).`,
    "",
    "| implementation | first load, empty database | incremental | incremental / first | peak RSS median (max) |",
    "| --- | --- | --- | --- | --- |",
  ];
  for (const impl of ours) {
    const f = firstTimes.get(impl)!, n = nextTimes.get(impl)!, m = rss.get(impl)!;
    lines.push(
      `| ${impl} | ${span(f)} | ${span(n)} | ${(median(n) / median(f)).toFixed(2)}× | ${mb(median(m))} (${
        mb(Math.max(...m))
      }) |`,
    );
  }
  return lines.join("\n");
}

/**
 * `--listing N`: a bucket listed with ListObjectsV2 (no list file) holding N
 * objects that the registry already has, with the same ETags and sizes, and
 * 10 new ones. Only the new ones may be fetched.
 */
async function listingScale(count: number): Promise<string> {
  const dir = join(BENCH_DIR, "listing-new");
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  const fresh = await generateBucket(dir, { files: 10, records: 100, seed: 9, shape: "real" });
  const old = (i: number) => `old/${String(i).padStart(7, "0")}.data`;
  // In key order, as S3 lists: "new/…" sorts before "old/…".
  const freshKeys = fresh.map((k) => `new/${k}`).sort();
  const sizes = new Map<string, number>();
  for (const k of fresh) sizes.set(`new/${k}`, (await Deno.stat(join(dir, k))).size);
  const keyAt = (i: number) => i < freshKeys.length ? freshKeys[i]! : old(i - freshKeys.length);
  const total = count + freshKeys.length;
  let pages = 0, objects = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/bench" && url.searchParams.get("list-type") === "2") {
      pages++;
      const from = Number(url.searchParams.get("continuation-token") ?? "0");
      const to = Math.min(total, from + Number(url.searchParams.get("max-keys") ?? "1000"));
      const contents: string[] = [];
      for (let i = from; i < to; i++) {
        const key = keyAt(i);
        contents.push(
          `<Contents><Key>${key}</Key><ETag>&quot;e${i}&quot;</ETag><Size>${sizes.get(key) ?? 100}</Size></Contents>`,
        );
      }
      const more = to < total
        ? `<IsTruncated>true</IsTruncated><NextContinuationToken>${to}</NextContinuationToken>`
        : "<IsTruncated>false</IsTruncated>";
      return new Response(
        `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>bench</Name>${more}${
          contents.join("")
        }</ListBucketResult>`,
      );
    }
    const key = decodeURIComponent(url.pathname.slice("/bench/".length));
    if (key.startsWith("new/")) {
      objects++;
      return new Response(await Deno.readFile(join(dir, key.slice(4))));
    }
    if (key.startsWith("old/")) objects++;
    return new Response("<Error><Code>NoSuchKey</Code><Message>no</Message></Error>", { status: 404 });
  });
  const endpoint = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`;
  const work = join(BENCH_DIR, "work");
  await Deno.mkdir(work, { recursive: true });
  const db = join(work, "listing.sqlite3");
  const times: number[] = [], rss: number[] = [];
  try {
    for (let r = 0; r < runs; r++) {
      for (const suffix of ["", "-wal", "-shm"]) await Deno.remove(db + suffix).catch(() => {});
      // The schema, from a run over an empty folder; then the registry of the N old objects, as earlier runs left it.
      const empty = join(BENCH_DIR, "empty-bucket");
      await Deno.mkdir(empty, { recursive: true });
      await Deno.writeTextFile(join(empty, "files_list.data"), "");
      const seed = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", join(ROOT, "main.ts"), "--quiet", "--force"],
        env: { BUCKETLOAD_CWD: work, BUCKETLOAD_BUCKET_NAME: empty, BUCKETLOAD_DATABASE_NAME: db },
        stdout: "null",
        stderr: "null",
      }).output();
      if (!seed.success) throw new Error("cannot create the schema");
      const { DatabaseSync } = await import("node:sqlite");
      const sdb = new DatabaseSync(db);
      sdb.exec("BEGIN");
      sdb.exec("INSERT INTO runs (id, started_at, status) VALUES (1000, '2021-01-01T00:00:00Z', 'ok')");
      const ins = sdb.prepare(
        `INSERT INTO processed_files (key, status, run_id, processed_at, records, rejected, ignored, bytes, etag, size)
         VALUES (?, 'loaded', 1000, '2021-01-01T00:00:00Z', 1000, 0, 0, 100, ?, 100)`,
      );
      for (let i = 0; i < count; i++) ins.run(old(i), `"e${i + freshKeys.length}"`);
      sdb.exec("COMMIT");
      sdb.close();
      pages = 0;
      objects = 0;
      const run = await measure("bucketload", [
        bucketload(
          {
            BUCKETLOAD_BUCKET_NAME: "s3://bench",
            BUCKETLOAD_S3_ENDPOINT: endpoint,
            BUCKETLOAD_DATABASE_NAME: db,
          },
          work,
          [],
        ),
      ]);
      times.push(run.seconds);
      rss.push(run.rss);
      const summary = run.stdouts[0]!;
      if (!/10 loaded/.test(summary) || objects !== 10) {
        throw new Error(`expected 10 objects fetched and loaded, got ${objects} fetched:\n${summary}`);
      }
      console.error(`run ${r + 1}/${runs}: ${run.seconds.toFixed(2)} s, ${mb(run.rss)}, ${pages} list pages`);
    }
  } finally {
    await server.shutdown();
  }
  return `S3 listing of ${count.toLocaleString("en-US")} objects already loaded and 10 new (SQLite registry of ` +
    `${count.toLocaleString("en-US")} keys): median ${median(times).toFixed(2)} s (min ${
      Math.min(...times).toFixed(2)
    } s), peak RSS ${mb(median(rss))} (max ${mb(Math.max(...rss))}); ${pages} ListObjectsV2 pages and 10 object GETs ` +
    `(the objects it had seen were not fetched).`;
}

if (values.listing !== undefined) {
  const count = Number(values.listing || "1000000");
  const report = await listingScale(count);
  console.log(report);
  if (values.write) await writeSection("## S3 listing: many objects, few new", report);
  Deno.exit(0);
}

if (values.incremental) {
  const report = await incremental();
  console.log(report);
  if (values.write) await writeSection(`## Incremental: ${files} new files into ${files} loaded`, report);
  Deno.exit(0);
}

if (values.noop || values.registry) {
  const report = await special();
  console.log(report);
  if (values.write) await writeSection("## No-op run and large registry", report);
  Deno.exit(0);
}

const dir = await bucket();
const total = files * records;
let bytes = 0;
for await (const e of Deno.readDir(dir)) bytes += (await Deno.stat(join(dir, e.name))).size;
const work = join(BENCH_DIR, "work");
await Deno.mkdir(work, { recursive: true });
const server = serve(dir, undefined, Number(values.latency));
const samples: Record<string, Sample[]> = Object.fromEntries(impls.map((i) => [i, []]));
try {
  for (let r = 0; r < runs; r++) {
    for (const impl of impls) {
      const s = await runOne(impl, server.url, work);
      samples[impl]!.push(s);
      console.error(`run ${r + 1}/${runs} ${impl}: ${s.seconds.toFixed(2)} s, ${mb(s.rss)}`);
    }
  }
} finally {
  await server.close();
  await stopPostgres();
  await s3?.stop();
}

const cpu = (Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*: (.*)/)?.[1] ?? "unknown CPU").trim();
const lines = [
  `Bucket: ${files} files × ${records} records = ${total.toLocaleString("en-US")} records, ${mb(bytes)}; ` +
  `${runs} runs each, alternating; ${navigator.hardwareConcurrency} cores, ${cpu}; Deno ${Deno.version.deno}` +
  `${Number(values.latency) > 0 ? `; ${values.latency} ms latency per request` : "; loopback, no added latency"}.`,
  "",
  "| implementation | wall median (min–max) | records/s (median) | peak RSS median (max) | rows loaded |",
  "| --- | --- | --- | --- | --- |",
];
const med: Record<string, number> = {};
for (const impl of impls) {
  const secs = samples[impl]!.map((s) => s.seconds);
  const rss = samples[impl]!.map((s) => s.rss);
  med[impl] = median(secs);
  lines.push(
    `| ${impl} | ${median(secs).toFixed(2)} s (${Math.min(...secs).toFixed(2)}–${Math.max(...secs).toFixed(2)}) | ` +
      `${Math.round(total / median(secs)).toLocaleString("en-US")} | ${mb(median(rss))} (${mb(Math.max(...rss))}) | ` +
      `${samples[impl]![0]!.rows.toLocaleString("en-US")} |`,
  );
}
lines.push("");
for (const impl of impls.filter((i) => i.startsWith("bucketload"))) {
  if (med.naive) lines.push(`- ${impl} / naive wall time: ${(med[impl]! / med.naive).toFixed(2)}×`);
  if (med.floor) lines.push(`- ${impl} / floor wall time: ${(med[impl]! / med.floor).toFixed(2)}×`);
  if (impl !== "bucketload" && med.bucketload) {
    const of = impl === "bucketload-s3" ? "bucketload over HTTP" : "bucketload (SQLite)";
    lines.push(`- ${impl} / ${of} wall time: ${(med[impl]! / med.bucketload).toFixed(2)}×`);
  }
}
const table = lines.join("\n");
console.log(table);
if (values.write) {
  const latency = Number(values.latency) > 0 ? `, ${values.latency} ms latency` : "";
  const stores = values.postgres ? ", SQLite and PostgreSQL" : values.s3 ? ", HTTP and S3 (listing)" : "";
  await writeSection(`## ${files} files × ${records} records, ${shape} shape${latency}${stores}`, table);
}
