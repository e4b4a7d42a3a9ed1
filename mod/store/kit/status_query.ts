/**
 * The status report's queries, written once for every store: each store
 * gives a way to read rows and its dialect's few differences, and says who
 * holds it now (SQLite's lock note, PostgreSQL's sessions).
 *
 * @module
 */
import type { RecordType } from "../../records/mod.ts";
import { emptyStatus, type RunRow, type StatusReport } from "../status.ts";
import { registryCounts } from "../store.ts";
import { quote } from "./sql.ts";

/** Read access to a store's database, as the status queries need it. */
export interface SqlReader {
  /** The rows of a query without parameters, as plain objects. */
  all<T>(sql: string): Promise<T[]>;
  hasTable(name: string): Promise<boolean>;
  hasColumn(table: string, column: string): Promise<boolean>;
}

/** What differs between the stores' SQL here. */
export interface SqlDialect {
  /** The 1-based position of `needle` in `text`, 0 when absent (`instr` in SQLite, `strpos` in PostgreSQL). */
  position(text: string, needle: string): string;
}

/** Who holds the store now, as the store tells it. */
export interface Holder {
  readonly running: string | null;
  readonly staleLock: string | null;
}

/** The status report of the database `r` reads. */
export async function statusReport(
  r: SqlReader,
  dialect: SqlDialect,
  o: { readonly display: string; readonly types: readonly RecordType[]; readonly holder: Holder },
): Promise<StatusReport> {
  const tables: Record<string, number> = {};
  for (const t of o.types) {
    if (await r.hasTable(t.table)) tables[t.table] = await count(r, `SELECT count(*) AS n FROM ${quote(t.table)}`);
  }
  const base: StatusReport = { ...emptyStatus(o.display), tables, ...o.holder };
  if (!(await r.hasTable("runs"))) return base;
  const meta = new Map(
    (await r.hasTable("meta") ? await r.all<{ name: string; value: string }>("SELECT name, value FROM meta") : [])
      .map((m) => [m.name, m.value]),
  );
  const lastCheckAt = meta.get("last_check_at") ?? null;
  const claimed = await r.hasColumn("runs", "files_claimed_elsewhere") ? "files_claimed_elsewhere" : "0";
  const got = dialect.position("reason", "', got '");
  return {
    ...base,
    runs: await r.all<RunRow>(
      `SELECT id, started_at, finished_at, status, files_listed, files_new, files_loaded, files_invalid,
         files_missing, files_failed, files_refused, records_loaded, records_rejected, records_ignored,
         ${claimed} AS files_claimed_elsewhere
       FROM runs ORDER BY id DESC LIMIT 10`,
    ),
    registry: registryCounts(
      await r.all<{ status: string; n: number }>(
        "SELECT status, count(*) AS n FROM processed_files GROUP BY status ORDER BY status",
      ),
      await r.hasColumn("processed_files", "deleted_at")
        ? await count(r, "SELECT count(*) AS n FROM processed_files WHERE deleted_at IS NOT NULL")
        : 0,
    ),
    // The reason without its ", got ..." tail, so that one rule's failures group together.
    topRejections: await r.all<{ reason: string; count: number }>(
      `SELECT CASE WHEN ${got} > 0 THEN substr(reason, 1, ${got} - 1) ELSE reason END AS reason, count(*) AS count
       FROM rejected_records GROUP BY 1 ORDER BY count DESC, reason LIMIT 10`,
    ),
    recentIssues: await r.hasTable("run_keys")
      ? await r.all("SELECT run_id, key, outcome, reason FROM run_keys ORDER BY run_id DESC, key LIMIT 5")
      : [],
    invalidKeys: await r.all<{ key: string; reason: string }>(
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

async function count(r: SqlReader, sql: string): Promise<number> {
  return Number((await r.all<{ n: number }>(sql))[0]?.n ?? 0);
}
