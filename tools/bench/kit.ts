/**
 * The bench's common parts: serving a bucket on loopback (with latency),
 * timing commands side by side with the peak RSS of their largest process,
 * counting the rows loaded, and a throw-away PostgreSQL.
 *
 * @module
 */
import { join } from "node:path";

export const ROOT = new URL("../../", import.meta.url).pathname;
export const BENCH_DIR = join(ROOT, ".bench");

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

/** Serves `dir` on 127.0.0.1, streaming files from disk, with ETags; counts requests. */
export function serve(
  dir: string,
  list?: string,
  latency = 0,
): { url: string; requests: () => number; close: () => Promise<void> } {
  let requests = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    requests++;
    if (latency > 0) await new Promise((r) => setTimeout(r, latency));
    const key = decodeURIComponent(new URL(req.url).pathname.slice(1));
    if (list !== undefined && key === "files_list.data") return new Response(list);
    try {
      const file = await Deno.open(join(dir, key));
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
): Promise<{ seconds: number; rss: number; stdouts: string[] }> {
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
  return { seconds, rss, stdouts: outputs.map((o) => decoder.decode(o.stdout)) };
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
