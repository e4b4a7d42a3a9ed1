/**
 * The `status` report: recent runs, registry totals, top rejection reasons
 * and recent problem keys, as text or JSON.
 *
 * @module
 */

/** One run as `status` shows it. */
export interface RunRow {
  readonly id: number;
  readonly started_at: string;
  readonly finished_at: string | null;
  readonly status: string;
  readonly files_listed: number;
  readonly files_new: number;
  readonly files_loaded: number;
  readonly files_invalid: number;
  readonly files_missing: number;
  readonly files_failed: number;
  readonly files_refused: number;
  /** Keys another run side by side claimed or loaded first (PostgreSQL). */
  readonly files_claimed_elsewhere: number;
  readonly records_loaded: number;
  readonly records_rejected: number;
  readonly records_ignored: number;
}

/** What `status` reports. */
export interface StatusReport {
  readonly database: string;
  /** The last runs, newest first. */
  readonly runs: readonly RunRow[];
  /** Registered files by status (`loaded`, `invalid`). */
  readonly registry: Readonly<Record<string, number>>;
  /** Rejection reasons without the offending value, most frequent first. */
  readonly topRejections: readonly { readonly reason: string; readonly count: number }[];
  /** The most recent refused, missing or failed keys, newest first. */
  readonly recentIssues: readonly {
    readonly run_id: number;
    readonly key: string;
    readonly outcome: string;
    readonly reason: string;
  }[];
  /** Rows per data table. */
  readonly tables: Readonly<Record<string, number>>;
  /** Keys registered as invalid (newest first, up to 20) with their whole-file reason. */
  readonly invalidKeys: readonly { readonly key: string; readonly reason: string }[];
  /** The bucket the last run read, and the one before it when it changed. */
  readonly bucket: string | null;
  readonly previousBucket: string | null;
  readonly bucketChangedAt: string | null;
  /** The last time a run found nothing to do (such a run leaves no run row). */
  readonly lastCheck: { readonly at: string; readonly result: string } | null;
  /** The run holding the lock now, as its lock-info file tells: `since (pid N)`. */
  readonly running: string | null;
  /**
   * A lock note left by a run whose process is gone (killed, or the machine
   * stopped): `since (pid N)`. Its run was rolled back; the next run proceeds.
   */
  readonly staleLock: string | null;
}

/** The report of a database with nothing in it yet. */
export function emptyStatus(database: string): StatusReport {
  return {
    database,
    runs: [],
    registry: {},
    topRejections: [],
    recentIssues: [],
    tables: {},
    invalidKeys: [],
    bucket: null,
    previousBucket: null,
    bucketChangedAt: null,
    lastCheck: null,
    running: null,
    staleLock: null,
  };
}

const seconds = (r: RunRow) =>
  r.finished_at === null ? "?" : ((Date.parse(r.finished_at) - Date.parse(r.started_at)) / 1000).toFixed(2);

/** Formats a status report for a person. */
export function formatStatus(report: StatusReport): string {
  const lines = [`bucketload status of ${report.database}`, ""];
  if (report.bucket !== null) lines.push(`Bucket: ${report.bucket}`);
  if (report.previousBucket !== null) {
    lines.push(
      `  changed from ${report.previousBucket} at ${report.bucketChangedAt}: keys registered from it count as processed`,
    );
  }
  if (report.running !== null) lines.push(`Run in progress: since ${report.running}`);
  if (report.staleLock !== null) {
    lines.push(
      `No run in progress: the run started ${report.staleLock} stopped without finishing (its process is gone); ` +
        `nothing of it was committed, and the next run proceeds`,
    );
  }
  if (report.lastCheck !== null) lines.push(`Last checked: ${report.lastCheck.at} (${report.lastCheck.result})`);
  const tables = Object.entries(report.tables).map(([t, n]) => `${t} ${n.toLocaleString("en-US")}`).join(", ");
  if (tables !== "") lines.push(`Rows: ${tables}`);
  if (lines.length > 2) lines.push("");
  if (report.runs.length === 0) lines.push("No runs yet.");
  else {
    lines.push(`Last ${report.runs.length} run${report.runs.length === 1 ? "" : "s"}:`);
    lines.push("  id  started (UTC)         status  loaded/invalid/missing/failed/refused  records   rejected  time");
    for (const r of report.runs) {
      const files = `${r.files_loaded}/${r.files_invalid}/${r.files_missing}/${r.files_failed}/${r.files_refused}`;
      lines.push(
        `  ${String(r.id).padStart(2)}  ${r.started_at.slice(0, 19).replace("T", " ")}   ${r.status.padEnd(6)}  ` +
          `${files.padEnd(37)}  ${String(r.records_loaded).padStart(8)}  ${String(r.records_rejected).padStart(8)}  ` +
          `${seconds(r)} s${
            r.files_claimed_elsewhere > 0 ? `  (${r.files_claimed_elsewhere} claimed by other runs)` : ""
          }`,
      );
    }
  }
  const registry = Object.entries(report.registry).map(([s, n]) => `${n} ${s}`).join(", ") || "empty";
  lines.push("", `Registry: ${registry}`);
  if (report.topRejections.length > 0) {
    lines.push("", "Top rejection reasons:");
    for (const { reason, count } of report.topRejections) lines.push(`  ${String(count).padStart(7)}  ${reason}`);
  }
  if (report.invalidKeys.length > 0) {
    lines.push("", "Invalid keys (--retry-invalid re-fetches them):");
    for (const i of report.invalidKeys) lines.push(`  ${i.key}: ${i.reason}`);
  }
  if (report.recentIssues.length > 0) {
    lines.push("", "Recent refused, missing and failed keys:");
    for (const i of report.recentIssues) lines.push(`  run ${i.run_id}  ${i.outcome.padEnd(7)}  ${i.key}: ${i.reason}`);
  }
  return lines.join("\n") + "\n";
}
