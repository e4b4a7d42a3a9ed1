/**
 * The status report's queries, written once for every store: each store
 * gives its {@linkcode SqlClient}, and says who
 * holds it now (SQLite's lock note, PostgreSQL's sessions).
 *
 * @module
 */
import { decodeRaw, rawColumn } from "./raw_text.ts";
import type { RecordType } from "../../records/mod.ts";
import { type DriftRow, emptyStatus, type RunFile, type RunRow, type StatusReport } from "../status.ts";
import { registryCounts } from "../store.ts";
import { quote } from "./sql.ts";
import { hasColumn, hasTable, type SqlClient } from "./client.ts";
import { keepsTotals, reasonGroupSql } from "./summary.ts";

/** Who holds the store now, as the store tells it. */
export interface Holder {
  /** The run holding the lock now: see {@linkcode StatusReport.running}. */
  readonly running: string | null;
  /** A lock note left by a run whose process is gone: see {@linkcode StatusReport.staleLock}. */
  readonly staleLock: string | null;
}

/** The status report of the database `c` reads. */
export async function statusReport(
  c: SqlClient,
  o: { readonly display: string; readonly types: readonly RecordType[]; readonly holder: Holder },
): Promise<StatusReport> {
  // Schema 8 on keeps the totals (kit/summary.ts); an older database, which status does not migrate, is counted.
  const totals = await keepsTotals(c);
  const kept = new Map(
    totals
      ? (await c.all<{ name: string; rows: number }>(`SELECT name, "rows" FROM table_rows`)).map((r) => [
        r.name,
        Number(r.rows),
      ])
      : [],
  );
  const tables: Record<string, number> = {};
  for (const t of o.types) {
    if (!(await hasTable(c, t.table))) continue;
    tables[t.table] = kept.get(t.table) ?? await count(c, `SELECT count(*) AS n FROM ${quote(t.table)}`);
  }
  const base: StatusReport = { ...emptyStatus(o.display), tables, ...o.holder };
  if (!(await hasTable(c, "runs"))) return base;
  const meta = new Map(
    (await hasTable(c, "meta") ? await c.all<{ name: string; value: string }>("SELECT name, value FROM meta") : [])
      .map((m) => [m.name, m.value]),
  );
  const lastCheckAt = meta.get("last_check_at") ?? null;
  const claimed = await hasColumn(c, "runs", "files_claimed_elsewhere") ? "files_claimed_elsewhere" : "0";
  const rows = await hasColumn(c, "runs", "rows_removed")
    ? "rows_inserted, rows_updated, rows_removed"
    : "0 AS rows_inserted, 0 AS rows_updated, 0 AS rows_removed";
  // The last 30 runs, newest first: the page's chart takes them all (oldest first), the list the first 10.
  // A replay's row says so in its status (it loads no file).
  const status = await hasColumn(c, "runs", "kind")
    ? "CASE WHEN kind = 'replay' THEN 'replay' ELSE status END AS status"
    : "status";
  const recent = await c.all<RunRow>(
    `SELECT id, started_at, finished_at, ${status}, files_listed, files_new, files_loaded, files_invalid,
       files_missing, files_failed, files_refused, records_loaded, records_rejected, records_ignored,
       ${claimed} AS files_claimed_elsewhere, ${rows}
     FROM runs ORDER BY id DESC LIMIT 30`,
  );
  return {
    ...base,
    runs: recent.slice(0, 10),
    history: [...recent].reverse(),
    lastRunFiles: await lastRunFiles(c),
    drift: await hasTable(c, "run_drift") && recent.length > 0 ? await drift(c, Number(recent.at(-1)!.id)) : [],
    missingKeys: await hasTable(c, "missing_keys")
      ? await c.all("SELECT key, runs, last_reason AS reason FROM missing_keys ORDER BY runs DESC, key LIMIT 20")
      : [],
    registry: totals ? await keptRegistry(c) : await countedRegistry(c),
    // The reason without its ", got ..." tail, so that one rule's failures group together.
    topRejections: await withSamples(
      c,
      totals
        ? await c.all<{ reason: string; count: number }>(
          `SELECT reason, sum(records) AS count FROM rejection_counts GROUP BY reason HAVING sum(records) <> 0
           ORDER BY count DESC, reason LIMIT 10`,
        )
        : await c.all<{ reason: string; count: number }>(
          `SELECT ${reasonGroupSql(c.dialect, "reason")} AS reason, count(*) AS count
           FROM rejected_records GROUP BY 1 ORDER BY count DESC, reason LIMIT 10`,
        ),
    ),
    recentIssues: await hasTable(c, "run_keys")
      ? await c.all("SELECT run_id, key, outcome, reason FROM run_keys ORDER BY run_id DESC, key LIMIT 5")
      : [],
    invalidKeys: await c.all<{ key: string; reason: string }>(
      `SELECT p.key, coalesce((SELECT reason FROM rejected_records r WHERE r.key = p.key AND r.record_index IS NULL
         ORDER BY r.id DESC LIMIT 1), '') AS reason
       FROM processed_files p WHERE p.status = 'invalid' ORDER BY p.processed_at DESC, p.key LIMIT 20`,
    ),
    bucket: meta.get("bucket") ?? null,
    previousBucket: meta.get("previous_bucket") ?? null,
    bucketChangedAt: meta.get("bucket_changed_at") ?? null,
    lastCheck: lastCheckAt === null ? null : { at: lastCheckAt, result: meta.get("last_check_result") ?? "" },
  };
}

/** Registered files by status, and deleted ones, from the kept totals. */
async function keptRegistry(c: SqlClient): Promise<Record<string, number>> {
  const rows = (await c.all<{ status: string; deleted: number; n: number }>(
    `SELECT status, deleted, sum(files) AS n FROM registry_counts GROUP BY status, deleted
     HAVING sum(files) <> 0 ORDER BY status`,
  )).map((r) => ({ status: r.status, deleted: Number(r.deleted), n: Number(r.n) }));
  const byStatus = new Map<string, number>();
  for (const r of rows) byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + r.n);
  return registryCounts(
    [...byStatus].map(([status, n]) => ({ status, n })),
    rows.filter((r) => r.deleted !== 0).reduce((sum, r) => sum + r.n, 0),
  );
}

/** Registered files by status, and deleted ones, counted (a database before schema 8). */
async function countedRegistry(c: SqlClient): Promise<Record<string, number>> {
  return registryCounts(
    (await c.all<{ status: string; n: number }>(
      "SELECT status, count(*) AS n FROM processed_files GROUP BY status ORDER BY status",
    )).map((r) => ({ status: r.status, n: Number(r.n) })),
    await hasColumn(c, "processed_files", "deleted_at")
      ? await count(c, "SELECT count(*) AS n FROM processed_files WHERE deleted_at IS NOT NULL")
      : 0,
  );
}

/** Each top reason with its newest rejected record (by the index on the reason's group, from schema 8). */
async function withSamples(c: SqlClient, top: readonly { reason: string; count: number }[]) {
  const out = [];
  for (const t of top) {
    const [row] = await c.all<{ key: string; raw: string | Uint8Array | null }>(
      `SELECT key, ${rawColumn(c.dialect, "raw")} AS raw FROM rejected_records
       WHERE ${reasonGroupSql(c.dialect, "reason")} = $1 ORDER BY id DESC LIMIT 1`,
      [t.reason],
    );
    const sample = row === undefined ? null : { key: row.key, raw: decodeRaw(row.raw) };
    out.push({ reason: t.reason, count: Number(t.count), sample });
  }
  return out;
}

/** The files of the last finished run: registered ones and the run's refused, missing and failed keys. */
async function lastRunFiles(c: SqlClient): Promise<RunFile[]> {
  const [last] = await c.all<{ id: number | null }>(
    "SELECT id FROM runs WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1",
  );
  if (last?.id == null) return [];
  const issues = await hasTable(c, "run_keys")
    ? "UNION ALL SELECT key, outcome, 0 AS records, 0 AS rejected FROM run_keys WHERE run_id = $1"
    : "";
  return await c.all<RunFile>(
    `SELECT key, outcome, records, rejected FROM (
       SELECT key, status AS outcome, records, rejected FROM processed_files WHERE run_id = $1 ${issues}) AS f
     ORDER BY key LIMIT 200`,
    [Number(last.id)],
  );
}

/** Drift of the runs from `sinceRun` on, by type, field, kind and type seen; each with its newest example. */
async function drift(c: SqlClient, sinceRun: number): Promise<DriftRow[]> {
  const rows = await c.all<DriftRow>(
    `SELECT type, field, kind, expected, seen, sum(records) AS records, count(*) AS runs, max(run_id) AS "lastRun",
       (SELECT n.example FROM run_drift AS n
        WHERE n.run_id >= $1 AND n.type = d.type AND n.field = d.field AND n.kind = d.kind
          AND coalesce(n.seen, '') = coalesce(d.seen, '')
        ORDER BY n.run_id DESC LIMIT 1) AS example
     FROM run_drift AS d WHERE run_id >= $1
     GROUP BY type, field, kind, expected, seen
     ORDER BY sum(records) DESC, type, kind, field, seen LIMIT 60`,
    [sinceRun],
  );
  return rows.map((r) => ({ ...r, records: Number(r.records), runs: Number(r.runs), lastRun: Number(r.lastRun) }));
}

async function count(c: SqlClient, sql: string): Promise<number> {
  return Number((await c.all<{ n: number }>(sql))[0]?.n ?? 0);
}
