/**
 * The history case: the operations of every 15 minutes (a no-op run, a run
 * with 10 new files), `status --json`, the status page and `replay
 * --dry-run`, on a database a year old against the same on one a day old
 * (`history_db.ts`), interleaved; then each cost that grows with history,
 * measured on the year-old database.
 *
 * The list diff is told apart from the rest of a run by running the same 10
 * new files twice: listed after every registered key (the real list), and
 * listed alone; the difference is the cost of the long list.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { generateBucket } from "../gen_bucket.ts";
import { readWhole } from "../../mod/source/list_text.ts";
import { DAY, type HistoryFiles, historyFiles, YEAR } from "./history_db.ts";
import { BENCH_DIR, bucketload, logTimes, measure, median, removeDb, serve, servedEtag, type Start } from "./kit.ts";

const WORK = join(BENCH_DIR, "history", "work");
/** The replay filter that matches nothing: a replay with nothing quarantined for it. */
const NO_REASON = "(no stored rejection has this reason)";

/** Seconds of each operation on one database, every repetition. */
export interface OpTimes {
  noop: number[];
  noopNoProcessedJson: number[];
  noopQuickCheck: number[];
  /** The 10 new files listed after every registered key, and listed alone. */
  runLong: number[];
  runShort: number[];
  /** The 10 new files listed first, then every registered key: a list rewritten, not appended to (read whole). */
  runRewritten: number[];
  /** The first no-op run after an upgrade: the list kept as its body by a build before states (1 run). */
  noopUpgrade: number[];
  /** Of each run: its first log line → planned (`Listed`), → committed, → exit (wall). */
  noopPhases: Phases[];
  runLongPhases: Phases[];
  runShortPhases: Phases[];
  runRewrittenPhases: Phases[];
  statusJson: number[];
  statusJsonMain: number[];
  page: number[];
  apiStatus: number[];
  replayNone: number[];
  replayAll: number[];
}

/** Seconds from a run's first log line (after the start-up and the processed.json read) to each step; `exit` is wall. */
export interface Phases {
  readonly listed: number;
  readonly committed: number | undefined;
  readonly exit: number;
}

/** What grows with history, measured on the year-old database. */
export interface Growth {
  readonly dbBytes: number;
  /** Bytes and rows per table (its indexes included). */
  readonly tables: Record<string, { bytes: number; rows: number }>;
  readonly quickCheckSeconds: number;
  readonly processedJsonBytes: number;
  readonly processedJsonReadSeconds: number;
  readonly processedJsonWriteSeconds: number;
  readonly listCacheBytes: number;
  readonly listCacheReadSeconds: number;
  /** A saved log file (SAVE_LOG) of a no-op run and of a run that loads files, in bytes. */
  readonly logBytesNoop: number;
  readonly logBytesRun: number;
  /** The status report's queries, each timed alone. */
  readonly statusQueries: Record<string, number>;
}

export interface HistoryReport {
  readonly day: HistoryFiles;
  readonly year: HistoryFiles;
  readonly times: { day: OpTimes; year: OpTimes };
  readonly growth: Growth;
}

const emptyTimes = (): OpTimes => ({
  noop: [],
  noopNoProcessedJson: [],
  noopQuickCheck: [],
  runLong: [],
  runShort: [],
  runRewritten: [],
  noopUpgrade: [],
  noopPhases: [],
  runLongPhases: [],
  runShortPhases: [],
  runRewrittenPhases: [],
  statusJson: [],
  statusJsonMain: [],
  page: [],
  apiStatus: [],
  replayNone: [],
  replayAll: [],
});

/** The 10 new files: real-shaped, 700 records each, a few invalid records among them. */
async function newFiles(): Promise<{ dir: string; keys: string[] }> {
  const dir = join(BENCH_DIR, "history", "new-10x700");
  try {
    const keys = (await Deno.readTextFile(join(dir, "files_list.data"))).split("\n");
    return { dir, keys };
  } catch {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    const keys = await generateBucket(dir, { files: 10, records: 700, invalidRate: 0.03, seed: 11, shape: "real" });
    return { dir, keys };
  }
}

/**
 * A working copy of a history's database and processed.json, made current for the bench's server at `url`, as
 * this build's last run leaves them: the list kept as its state (not its body), the registry file noted. With
 * `asText`, the list is kept as a build before states kept it (its body): the first run after an upgrade.
 */
async function workCopy(h: HistoryFiles, url: string, asText = false): Promise<{ db: string; processed: string }> {
  const db = join(WORK, `${h.history.name}.sqlite3`);
  const processed = join(WORK, `${h.history.name}-processed.json`);
  await removeDb(db);
  await Deno.copyFile(h.db, db);
  await Deno.copyFile(h.processed, processed);
  const c = new DatabaseSync(db);
  try {
    const now = new Date().toISOString();
    // The list the server gives (its ETag), cached for this bucket; the daily quick_check just passed.
    c.prepare("UPDATE list_cache SET bucket = ?, etag = ?").run(url, servedEtag(h.list));
    const meta = c.prepare(
      "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    );
    meta.run("bucket", url);
    meta.run("last_quick_check_at", now);
    meta.run("last_check_at", now);
    if (!asText) {
      const { state } = await readWhole(await Deno.readFile(h.list), "utf-8");
      meta.run("list_state", JSON.stringify({ bucket: url, list: "files_list.data", state }));
      c.exec("UPDATE list_cache SET body = ''");
      const r = c.prepare("SELECT count(*) AS n, max(run_id) AS last FROM processed_files").get() as {
        n: number;
        last: number;
      };
      const { key } = c.prepare("SELECT key FROM processed_files ORDER BY run_id DESC, key DESC LIMIT 1").get() as {
        key: string;
      };
      // As the last run noted the file it wrote: its length, inode and modification time (the copy's own).
      const info = await Deno.stat(processed);
      const note = {
        path: processed,
        bytes: info.size,
        ino: info.ino,
        mtimeMs: info.mtime?.getTime() ?? null,
        count: r.n,
        lastRun: r.last,
        last: key,
      };
      meta.run("registry_file", JSON.stringify(note));
    }
  } finally {
    c.close();
  }
  // A fresh copy's pages are not in the OS cache yet (the kernel copies without it), as those of a database run every
  // 15 minutes are: read it through once, untimed.
  using file = await Deno.open(db);
  const chunk = new Uint8Array(16 * 1024 * 1024);
  while ((await file.read(chunk)) !== null) { /* reading is the point */ }
  return { db, processed };
}

/** Sets the time of the last passed integrity check of the database at `db` to `hours` hours ago. */
function checkedHoursAgo(db: string, hours: number): void {
  const c = new DatabaseSync(db);
  try {
    c.prepare("UPDATE meta SET value = ? WHERE name = 'last_quick_check_at'")
      .run(new Date(Date.now() - hours * 3600_000).toISOString());
  } finally {
    c.close();
  }
}

/** A run's phases from its info log. */
function phases(run: { seconds: number; stderr: string }): Phases {
  const at = logTimes(run.stderr, { listed: /Listed \d+ keys/, committed: /Committed run/ });
  return {
    listed: at.listed! / 1000,
    committed: at.committed === undefined ? undefined : at.committed / 1000,
    exit: run.seconds,
  };
}

/** Runs bucketload on a history copy; throws unless stdout holds `expect`. */
async function op(
  env: Record<string, string>,
  args: string[],
  expect: RegExp,
  start: Start = "task",
): Promise<{ seconds: number; stderr: string }> {
  const m = await measure(`bucketload ${args.join(" ")}`, [bucketload(env, WORK, args, start)]);
  if (!expect.test(m.stdouts[0]!)) {
    throw new Error(`bucketload ${args.join(" ")}: unexpected output: ${m.stdouts[0]!.slice(0, 500)}`);
  }
  return { seconds: m.seconds, stderr: m.stderrs[0]! };
}

/** GET `path` of a status page server at `base`, timed. */
async function timedGet(base: string, path: string): Promise<number> {
  const t = performance.now();
  const res = await fetch(new URL(path, base));
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
  return (performance.now() - t) / 1000;
}

/** The status page (`serve`, main.ts alone) on `db`: each GET of `/` and `/api/status`, timed. */
async function pageTimes(env: Record<string, string>, reps: number): Promise<{ page: number[]; api: number[] }> {
  const port = 18_000 + Math.floor(Math.random() * 2000);
  const child = bucketload(env, WORK, ["serve", "--port", String(port), "--log-level", "warning"], "main").spawn();
  const base = `http://127.0.0.1:${port}/`;
  try {
    for (let i = 0;; i++) {
      try {
        await (await fetch(new URL("health", base))).arrayBuffer();
        break;
      } catch {
        if (i > 200) throw new Error("the status page did not start");
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    const page: number[] = [], api: number[] = [];
    for (let r = 0; r < reps; r++) {
      page.push(await timedGet(base, "/"));
      api.push(await timedGet(base, "/api/status"));
    }
    return { page, api };
  } finally {
    child.kill("SIGTERM");
    await child.output();
  }
}

/** The size of the log file a run saves (SAVE_LOG = yes) in a new folder. */
async function savedLogBytes(env: Record<string, string>, expect: RegExp): Promise<number> {
  const dir = join(WORK, "logs");
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await op({ ...env, BUCKETLOAD_SAVE_LOG: "yes", BUCKETLOAD_LOG_DIR: dir }, ["--quiet"], expect);
  let bytes = 0;
  for await (const e of Deno.readDir(dir)) bytes += (await Deno.stat(join(dir, e.name))).size;
  await Deno.remove(dir, { recursive: true });
  return bytes;
}

const secondsOf = (f: () => unknown) => {
  const t = performance.now();
  f();
  return (performance.now() - t) / 1000;
};

/** The costs that grow with history, on the year-old database's working copy. */
async function growth(db: string, processed: string): Promise<Omit<Growth, "logBytesNoop" | "logBytesRun">> {
  const c = new DatabaseSync(db, { readOnly: true });
  try {
    const tables: Record<string, { bytes: number; rows: number }> = {};
    const stat = c.prepare(
      `SELECT coalesce(i.tbl_name, d.name) AS name, sum(d.pgsize) AS bytes
       FROM dbstat AS d LEFT JOIN sqlite_schema AS i ON i.name = d.name GROUP BY 1`,
    ).all() as { name: string; bytes: number }[];
    for (const { name, bytes } of stat) {
      if (name.startsWith("sqlite_")) continue;
      const rows = (c.prepare(`SELECT count(*) AS n FROM "${name}"`).get() as { n: number }).n;
      tables[name] = { bytes, rows };
    }
    const dbBytes = Deno.statSync(db).size;
    const fresh = new DatabaseSync(db, { readOnly: true });
    const quickCheckSeconds = secondsOf(() => fresh.prepare("PRAGMA quick_check").all());
    fresh.close();
    let body = "";
    const listCacheReadSeconds = secondsOf(() => {
      body = (c.prepare("SELECT etag, last_modified, body FROM list_cache").get() as { body: string }).body;
    });
    // processed.json as a run reads it (every run, before anything else) and rewrites it (after each commit).
    const processedJsonBytes = Deno.statSync(processed).size;
    const readStart = performance.now();
    JSON.parse(await Deno.readTextFile(processed));
    const processedJsonReadSeconds = (performance.now() - readStart) / 1000;
    const writeStart = performance.now();
    const keys = (c.prepare("SELECT key FROM processed_files ORDER BY run_id, key").all() as { key: string }[])
      .map((r) => r.key);
    const temp = join(WORK, ".processed.tmp");
    await Deno.writeTextFile(temp, JSON.stringify(keys, null, 2) + "\n");
    await Deno.rename(temp, join(WORK, "processed-rewritten.json"));
    const processedJsonWriteSeconds = (performance.now() - writeStart) / 1000;
    await Deno.remove(join(WORK, "processed-rewritten.json"));
    return {
      dbBytes,
      tables,
      quickCheckSeconds,
      processedJsonBytes,
      processedJsonReadSeconds,
      processedJsonWriteSeconds,
      listCacheBytes: new TextEncoder().encode(body).byteLength,
      listCacheReadSeconds,
      statusQueries: statusQueries(c),
    };
  } finally {
    c.close();
  }
}

/**
 * The status report's queries that read more than a few rows (as `store/kit/status_query.ts` words them), timed:
 * from schema 8 on, the kept totals and the indexed reads that replaced them.
 */
function statusQueries(c: DatabaseSync): Record<string, number> {
  const lastRun = (c.prepare("SELECT max(id) AS id FROM runs").get() as { id: number }).id;
  const totals = c.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'table_rows'").get() !== undefined;
  const group =
    "CASE WHEN instr(reason, ', got ') > 0 THEN substr(reason, 1, instr(reason, ', got ') - 1) ELSE reason END";
  const kept: Record<string, [string, unknown[]]> = {
    "rows per table (table_rows)": [`SELECT name, "rows" FROM table_rows`, []],
    "registry by status and deleted (registry_counts)": [
      "SELECT status, deleted, sum(files) FROM registry_counts GROUP BY status, deleted HAVING sum(files) <> 0",
      [],
    ],
    "last run's files (processed_files by run_id, indexed)": [
      `SELECT key, outcome, records, rejected FROM (
         SELECT key, status AS outcome, records, rejected FROM processed_files WHERE run_id = ?1
         UNION ALL SELECT key, outcome, 0 AS records, 0 AS rejected FROM run_keys WHERE run_id = ?1) AS f
       ORDER BY key LIMIT 200`,
      [lastRun],
    ],
    "last finished run (by id, newest first)": [
      "SELECT id FROM runs WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1",
      [],
    ],
    "top rejection reasons (rejection_counts)": [
      `SELECT reason, sum(records) AS count FROM rejection_counts GROUP BY reason HAVING sum(records) <> 0
       ORDER BY count DESC, reason LIMIT 10`,
      [],
    ],
    "newest record of a top reason (indexed by reason)": [
      `SELECT key FROM rejected_records WHERE ${group} = 'data: expected an object' ORDER BY id DESC LIMIT 1`,
      [],
    ],
    "invalid files with their reason (partial index)": [
      `SELECT p.key, coalesce((SELECT reason FROM rejected_records r WHERE r.key = p.key AND r.record_index IS NULL
         ORDER BY r.id DESC LIMIT 1), '') AS reason
       FROM processed_files p WHERE p.status = 'invalid' ORDER BY p.processed_at DESC, p.key LIMIT 20`,
      [],
    ],
    "recent problem keys (run_keys by run, indexed)": [
      "SELECT run_id, key, outcome, reason FROM run_keys ORDER BY run_id DESC, key LIMIT 5",
      [],
    ],
    "drift of the last 30 runs": [
      "SELECT type, field, count(*) FROM run_drift WHERE run_id >= ? GROUP BY type, field, kind, expected, seen",
      [lastRun - 29],
    ],
  };
  if (totals) return timeQueries(c, kept);
  const queries: Record<string, [string, unknown[]]> = {
    "rows per table (count(*) of songs, movies, apps)": [
      "SELECT (SELECT count(*) FROM songs) + (SELECT count(*) FROM movies) + (SELECT count(*) FROM apps)",
      [],
    ],
    "registry by status": ["SELECT status, count(*) AS n FROM processed_files GROUP BY status", []],
    "registry deleted": ["SELECT count(*) AS n FROM processed_files WHERE deleted_at IS NOT NULL", []],
    "last run's files (processed_files by run_id)": [
      `SELECT key, outcome, records, rejected FROM (
         SELECT key, status AS outcome, records, rejected FROM processed_files WHERE run_id = ?1
         UNION ALL SELECT key, outcome, 0 AS records, 0 AS rejected FROM run_keys WHERE run_id = ?1) AS f
       ORDER BY key LIMIT 200`,
      [lastRun],
    ],
    "last finished run (max id where finished)": ["SELECT max(id) AS id FROM runs WHERE finished_at IS NOT NULL", []],
    "top rejection reasons (GROUP BY over all)": [
      `SELECT CASE WHEN instr(reason, ', got ') > 0 THEN substr(reason, 1, instr(reason, ', got ') - 1) ELSE reason END
         AS reason, count(*) AS count FROM rejected_records GROUP BY 1 ORDER BY count DESC, reason LIMIT 10`,
      [],
    ],
    "invalid files with their reason": [
      `SELECT p.key, coalesce((SELECT reason FROM rejected_records r WHERE r.key = p.key AND r.record_index IS NULL
         ORDER BY r.id DESC LIMIT 1), '') AS reason
       FROM processed_files p WHERE p.status = 'invalid' ORDER BY p.processed_at DESC, p.key LIMIT 20`,
      [],
    ],
    "recent problem keys (run_keys by run_id)": [
      "SELECT run_id, key, outcome, reason FROM run_keys ORDER BY run_id DESC, key LIMIT 5",
      [],
    ],
    "drift of the last 30 runs": [
      "SELECT type, field, count(*) FROM run_drift WHERE run_id >= ? GROUP BY type, field, kind, expected, seen",
      [lastRun - 29],
    ],
    "replay's page for a reason nothing has (scan of the quarantine)": [
      "SELECT r.id FROM rejected_records AS r WHERE instr(r.reason, ?) > 0 AND r.id > 0 ORDER BY r.id LIMIT 1000",
      [NO_REASON],
    ],
  };
  return timeQueries(c, queries);
}

/** Each query of `queries` run once, timed. */
function timeQueries(c: DatabaseSync, queries: Record<string, [string, unknown[]]>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, [sql, params]] of Object.entries(queries)) {
    try {
      const stmt = c.prepare(sql);
      out[name] = secondsOf(() => stmt.all(...(params as never[])));
    } catch (error) {
      // A query written for another schema: reported as not measured, the rest of the case kept.
      console.error(`status query "${name}": ${(error as Error).message}`);
      out[name] = Number.NaN;
    }
  }
  return out;
}

/**
 * The history case: each operation `reps` times on the day-old and the
 * year-old database, interleaved, then the year-old database's growing costs.
 */
export async function historyCase(reps: number): Promise<HistoryReport> {
  await Deno.mkdir(WORK, { recursive: true });
  const day = await historyFiles(DAY);
  const year = await historyFiles(YEAR);
  const fresh = await newFiles();
  const list = { file: year.list };
  const server = serve(fresh.dir, list);
  const times = { day: emptyTimes(), year: emptyTimes() };
  const onlyNew = join(WORK, "only-new.data");
  await Deno.writeTextFile(onlyNew, fresh.keys.join("\n"));
  const longList = new Map<HistoryFiles, string>();
  const rewrittenList = new Map<HistoryFiles, string>();
  for (const h of [day, year]) {
    const path = join(WORK, `${h.history.name}-list-new.data`);
    await Deno.writeTextFile(path, (await Deno.readTextFile(h.list)) + "\n" + fresh.keys.join("\n"));
    longList.set(h, path);
    const rewritten = join(WORK, `${h.history.name}-list-rewritten.data`);
    await Deno.writeTextFile(rewritten, fresh.keys.join("\n") + "\n" + (await Deno.readTextFile(h.list)));
    rewrittenList.set(h, rewritten);
  }
  const envOf = (w: { db: string; processed: string }) => ({
    BUCKETLOAD_BUCKET_NAME: server.url,
    BUCKETLOAD_DATABASE_NAME: w.db,
    BUCKETLOAD_PROCESSED_FILES_FILENAME: w.processed,
  });
  const NOOP = /nothing to do/;
  const RAN = /finished in/;
  let logBytesNoop = 0, logBytesRun = 0;
  try {
    for (let r = 0; r < reps; r++) {
      for (const h of [day, year]) {
        const t = times[h.history.name as "day" | "year"];
        const label = `${h.history.name}-old ${r + 1}/${reps}`;
        // Read-only and no-op operations share one working copy.
        list.file = h.list;
        const w = await workCopy(h, server.url);
        const env = envOf(w);
        const noopRun = await op(env, ["--log-level", "info"], NOOP);
        t.noop.push(noopRun.seconds);
        t.noopPhases.push(phases(noopRun));
        // Set empty, not left out: the project's config.ini (found from the bench's folder) names one in its profile.
        const withoutJson = { ...env, BUCKETLOAD_PROCESSED_FILES_FILENAME: "" };
        t.noopNoProcessedJson.push((await op(withoutJson, ["--quiet"], NOOP)).seconds);
        // The daily check due (passed 25 hours ago): where a build runs it (in the lock, or after it) is its own.
        checkedHoursAgo(w.db, 25);
        t.noopQuickCheck.push((await op(env, ["--quiet"], NOOP)).seconds);
        t.statusJson.push((await op(env, ["status", "--json"], /"registry"/)).seconds);
        t.statusJsonMain.push((await op(env, ["status", "--json"], /"registry"/, "main")).seconds);
        t.replayNone.push((await op(env, ["replay", "--dry-run", "--reason", NO_REASON], /replay/i)).seconds);
        const { page, api } = await pageTimes(env, 3);
        t.page.push(median(page));
        t.apiStatus.push(median(api));
        if (r === 0) {
          // Reported, not a target: a failure here does not lose the rest of the case.
          try {
            t.replayAll.push((await op(env, ["replay", "--dry-run"], /replay/i)).seconds);
          } catch (error) {
            console.error(`replay --dry-run of the whole quarantine failed: ${(error as Error).message}`);
          }
        }
        if (r === 0 && h === year) logBytesNoop = await savedLogBytes(env, NOOP);
        if (r === 0) {
          t.noopUpgrade.push((await op(envOf(await workCopy(h, server.url, true)), ["--quiet"], NOOP)).seconds);
        }
        // Runs that load the 10 new files commit: each on a fresh copy.
        list.file = longList.get(h)!;
        const long = await op(envOf(await workCopy(h, server.url)), ["--log-level", "info"], RAN);
        t.runLong.push(long.seconds);
        t.runLongPhases.push(phases(long));
        if (r === 0 && h === year) logBytesRun = await savedLogBytes(envOf(await workCopy(h, server.url)), RAN);
        list.file = rewrittenList.get(h)!;
        const rewritten = await op(envOf(await workCopy(h, server.url)), ["--log-level", "info"], RAN);
        t.runRewritten.push(rewritten.seconds);
        t.runRewrittenPhases.push(phases(rewritten));
        list.file = onlyNew;
        const short = await op(envOf(await workCopy(h, server.url)), ["--log-level", "info"], RAN);
        t.runShort.push(short.seconds);
        t.runShortPhases.push(phases(short));
        console.error(
          `${label}: no-op ${t.noop.at(-1)!.toFixed(2)} s, 10 new files ${t.runLong.at(-1)!.toFixed(2)} s ` +
            `(listed alone ${t.runShort.at(-1)!.toFixed(2)} s), status --json ${t.statusJson.at(-1)!.toFixed(2)} s, ` +
            `page ${t.page.at(-1)!.toFixed(2)} s, replay --dry-run ${t.replayNone.at(-1)!.toFixed(2)} s`,
        );
      }
    }
    list.file = year.list;
    const w = await workCopy(year, server.url);
    return { day, year, times, growth: { ...await growth(w.db, w.processed), logBytesNoop, logBytesRun } };
  } finally {
    await server.close();
  }
}
