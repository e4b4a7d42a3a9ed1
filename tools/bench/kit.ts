/**
 * The bench's common parts: serving a bucket on loopback (with latency),
 * timing commands side by side with the peak RSS of their largest process,
 * counting the rows loaded, and a throw-away PostgreSQL.
 *
 * @module
 */
import { join } from "node:path";

export const ROOT = new URL("../../", import.meta.url).pathname;
/** Where buckets, databases and the cached history live: `.bench/` (git-ignored), or BL_BENCH_DIR. */
export const BENCH_DIR = Deno.env.get("BL_BENCH_DIR") ?? join(ROOT, ".bench");

/** `pid` and its descendants (a task runner's launcher and its child). */
export function tree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      const children = Deno.readTextFileSync(`/proc/${out[i]}/task/${out[i]}/children`).trim();
      if (children !== "") out.push(...children.split(/\s+/).map(Number));
    } catch { /* gone */ }
  }
  return out;
}

/** Stops the PostgreSQL cluster {@linkcode postgresUrl} started, if it did. */
export async function stopPostgres(): Promise<void> {
  await stopPg?.();
}

/** The PostgreSQL server for `bucketload-pg*`: BL_BENCH_DATABASE_URL, or a cluster started here (fsync on). */
let pgServer: string | undefined = Deno.env.get("BL_BENCH_DATABASE_URL");
let stopPg: (() => Promise<void>) | undefined;
let pgDataDir: string | undefined;
export async function postgresUrl(database: string): Promise<string> {
  if (pgServer === undefined) {
    const dir = join(BENCH_DIR, "pg");
    const script = join(ROOT, "tools", "pg_cluster.sh");
    const out = await new Deno.Command("bash", {
      args: [script, "start", dir, "54400"],
      env: { PG_FSYNC: "on" },
      stderr: "inherit",
    }).output();
    if (!out.success) throw new Error("Cannot start PostgreSQL for the bench");
    pgServer = new TextDecoder().decode(out.stdout).trim();
    pgDataDir = join(dir, "data");
    stopPg = async () => void await new Deno.Command("bash", { args: [script, "stop", dir] }).output();
  }
  const { default: postgres } = await import("postgres");
  const admin = postgres(pgServer, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.unsafe(`CREATE DATABASE ${database}`);
  } finally {
    await admin.end();
  }
  const url = new URL(pgServer);
  url.pathname = `/${database}`;
  return url.toString();
}

/** Rows loaded and files not loaded, in a PostgreSQL database. */
export async function postgresCounts(url: string): Promise<{ rows: number; notLoaded: number }> {
  const { default: postgres } = await import("postgres");
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const [r] = await sql<{ rows: string; bad: string }[]>`
      SELECT (SELECT count(*) FROM songs) + (SELECT count(*) FROM movies) + (SELECT count(*) FROM apps) AS rows,
             (SELECT count(*) FROM processed_files WHERE status <> 'loaded') AS bad`;
    return { rows: Number(r!.rows), notLoaded: Number(r!.bad) };
  } finally {
    await sql.end();
  }
}

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
export const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;

/**
 * Serves `dir` on 127.0.0.1, streaming files from disk, with ETags; counts
 * requests. `list` replaces `files_list.data`: a text (served without
 * validators), or `{ file }`, a file served as the list with its ETag (a
 * long list a no-op run gets a 304 for).
 */
export function serve(
  dir: string,
  list?: string | { readonly file: string },
  latency = 0,
): { url: string; requests: () => number; close: () => Promise<void> } {
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    requests++;
    if (latency > 0) await new Promise((r) => setTimeout(r, latency));
    const key = decodeURIComponent(new URL(req.url).pathname.slice(1));
    if (typeof list === "string" && key === "files_list.data") return new Response(list);
    const path = typeof list === "object" && key === "files_list.data" ? list.file : join(dir, key);
    try {
      const file = await Deno.open(path);
      const { size, mtime } = await file.stat();
      const etag = `"${size}-${mtime?.getTime()}"`;
      if (req.headers.get("if-none-match") === etag) {
        file.close();
        return new Response(null, { status: 304, headers: { etag } });
      }
      return new Response(file.readable, { headers: { "content-length": String(size), etag } });
    } catch {
      return new Response("missing", { status: 403 });
    }
  });
  return {
    url: `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}/`,
    requests: () => requests,
    close: () => server.shutdown(),
  };
}

/** Peak RSS (VmHWM) of a running process, in bytes; 0 once it is gone. */
export function peakRss(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Runs `commands` side by side: the wall time, the largest peak RSS of any of
 * them, and each one's stdout. Throws, naming `label`, when one fails.
 */
export async function measure(
  label: string,
  commands: Deno.Command[],
): Promise<{ seconds: number; rss: number; cpu: number; background: number; stdouts: string[]; stderrs: string[] }> {
  const cpuBefore = childrenCpu();
  const machineBefore = machineCpu(), selfBefore = cpuTimes("self").own;
  const start = performance.now();
  const children = commands.map((c) => c.spawn());
  let rss = 0;
  const poll = setInterval(() => {
    for (const child of children) for (const pid of tree(child.pid)) rss = Math.max(rss, peakRss(pid));
  }, 10);
  const outputs = await Promise.all(children.map((c) => c.output()));
  clearInterval(poll);
  const seconds = (performance.now() - start) / 1000;
  const decoder = new TextDecoder();
  for (const out of outputs) {
    if (!out.success) throw new Error(`${label} exited ${out.code}: ${decoder.decode(out.stderr).slice(-2000)}`);
  }
  // The children are reaped by now: their CPU (and their reaped descendants') is in this process's counters.
  const cpu = childrenCpu() - cpuBefore;
  return {
    seconds,
    rss,
    cpu,
    // What the rest of the machine used meanwhile (other programs, a database server): timings are only comparable
    // when it is small, since bucketload's writer and its worker need both cores.
    background: Math.max(0, machineCpu() - machineBefore - cpu - (cpuTimes("self").own - selfBefore)),
    stdouts: outputs.map((o) => decoder.decode(o.stdout)),
    stderrs: outputs.map((o) => decoder.decode(o.stderr)),
  };
}

/** Rows loaded and files not loaded (none without a registry), in a SQLite database. */
export async function sqliteCounts(db: string): Promise<{ rows: number; notLoaded: number }> {
  const { DatabaseSync } = await import("node:sqlite");
  const check = new DatabaseSync(db, { readOnly: true });
  try {
    const n = (sql: string) => (check.prepare(sql).get() as { n: number }).n;
    return {
      rows: n("SELECT (SELECT count(*) FROM songs) + (SELECT count(*) FROM movies) + (SELECT count(*) FROM apps) n"),
      // The naive design and the floor keep no registry.
      notLoaded: n("SELECT count(*) n FROM sqlite_schema WHERE name = 'processed_files'") === 0
        ? 0
        : n("SELECT count(*) n FROM processed_files WHERE status <> 'loaded'"),
    };
  } finally {
    check.close();
  }
}

/** Clock ticks per second of /proc's CPU counters (USER_HZ: 100 on Linux). */
const TICKS = 100;

/** utime, stime, cutime and cstime of a process, in seconds (fields 14–17 of /proc/PID/stat). */
export function cpuTimes(pid: number | "self"): { own: number; children: number } {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number);
    // After the command name: state is field 3, so utime (14) is index 11.
    return { own: (f[11]! + f[12]!) / TICKS, children: (f[13]! + f[14]!) / TICKS };
  } catch {
    return { own: 0, children: 0 };
  }
}

/** CPU seconds the whole machine has been busy (every core, /proc/stat: all but idle and iowait). */
export function machineCpu(): number {
  const f = Deno.readTextFileSync("/proc/stat").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f;
  return (user! + nice! + system! + irq! + softirq! + steal!) / TICKS;
}

/** CPU seconds of this process's reaped children (and theirs): what the commands {@linkcode measure} ran used. */
export function childrenCpu(): number {
  return cpuTimes("self").children;
}

/** Removes a SQLite database and its companions. */
export async function removeDb(db: string): Promise<void> {
  for (const s of ["", "-wal", "-shm", "-journal", ".lock-info"]) await Deno.remove(db + s).catch(() => {});
}

/** The ETag {@linkcode serve} gives a file: a list a test database caches so that a no-op run gets a 304. */
export function servedEtag(path: string): string {
  const { size, mtime } = Deno.statSync(path);
  return `"${size}-${mtime?.getTime()}"`;
}

/**
 * The checkout whose bucketload the bench runs: this one, or (`--checkout`,
 * for bisecting) a git worktree of an earlier commit. The floor and the
 * original are always this checkout's.
 */
let checkout = ROOT;
export function useCheckout(dir: string): void {
  checkout = dir.endsWith("/") ? dir : `${dir}/`;
}
export const bucketloadRoot = (): string => checkout;

const knowsCwd = new Map<string, boolean>();
/** Whether the build at `root` reads BUCKETLOAD_CWD (the launcher's, since the launcher came). */
function knowsCwdVariable(root: string): boolean {
  if (!knowsCwd.has(root)) {
    const out = new Deno.Command("grep", { args: ["-rlq", "BUCKETLOAD_CWD", join(root, "mod")] }).outputSync();
    knowsCwd.set(root, out.success);
  }
  return knowsCwd.get(root)!;
}

/** How bucketload is started: as a user runs it, or main.ts alone (no task runner, no launcher). */
export type Start = "task" | "installed" | "main";

/** How the load cases start bucketload: `deno task run` unless `--start main` (e.g. to bisect across the launcher). */
let defaultStart: Start = "task";
export function useStart(start: Start): void {
  defaultStart = start;
}

/** The installed command (`deno task install` into `.bench/install`), for the start-up case. */
export const INSTALLED = join(BENCH_DIR, "install", "bin", "bucketload");

/**
 * bucketload configured by `env` alone, run in `cwd`: `deno task run` (the
 * task runner, the launcher, main.ts), the installed command (the launcher,
 * main.ts), or main.ts alone with the flags the launcher gives it.
 */
export function bucketload(
  env: Record<string, string>,
  cwd: string,
  args: readonly string[] = ["--quiet", "--log-level", "warning"],
  start: Start = defaultStart,
  root: string = checkout,
): Deno.Command {
  const common = { cwd, stdout: "piped", stderr: "piped" } as const;
  if (start === "installed") return new Deno.Command(INSTALLED, { ...common, args: [...args], env });
  if (start === "main") {
    return new Deno.Command(Deno.execPath(), {
      ...common,
      args: [
        "run",
        "--cached-only",
        `--config=${join(root, "deno.json")}`,
        "-A",
        "--v8-flags=--max-semi-space-size=4",
        join(root, "main.ts"),
        ...args,
      ],
      // Builds before BUCKETLOAD_CWD refuse it as an unknown variable: the child's cwd is `cwd` anyway.
      env: knowsCwdVariable(root) ? { BUCKETLOAD_CWD: cwd, ...env } : env,
    });
  }
  return new Deno.Command(Deno.execPath(), {
    ...common,
    args: ["task", "--quiet", "--config", join(root, "deno.json"), "run", ...args],
    env,
  });
}

/** Milliseconds since the first line of each log line that matches, from bucketload's text log (`YYYY-MM-DD HH:MM:SS.mmm`). */
export function logTimes(stderr: string, patterns: Readonly<Record<string, RegExp>>): Record<string, number> {
  const out: Record<string, number> = {};
  let first: number | undefined;
  for (const line of stderr.split("\n")) {
    const m = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2}\.\d{3})/.exec(line);
    if (m === null) continue;
    const at = Date.parse(`${m[1]}T${m[2]}Z`);
    first ??= at;
    for (const [name, re] of Object.entries(patterns)) if (re.test(line)) out[name] = at - first;
  }
  return out;
}

/** The CPU seconds the PostgreSQL cluster this bench started has used so far (its server processes, exited ones too). */
export function postgresCpu(): number | undefined {
  const dataDir = pgDataDir ?? Deno.env.get("BL_BENCH_PG_DATA");
  if (dataDir === undefined) return undefined;
  let pid: number;
  try {
    pid = Number(Deno.readTextFileSync(join(dataDir, "postmaster.pid")).split("\n")[0]);
  } catch {
    return undefined;
  }
  const root = cpuTimes(pid);
  let total = root.own + root.children;
  for (const child of tree(pid).slice(1)) total += cpuTimes(child).own;
  return total;
}
