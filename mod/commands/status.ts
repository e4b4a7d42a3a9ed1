/**
 * The status command: the report of the config's store (recent runs,
 * registry totals, top rejection reasons and recent problem keys), as text
 * or JSON; `serve` and the Deploy entry serve the same report.
 *
 * @module
 */
import type { Config } from "../config/config.ts";
import { emptyStatus, type RunRow, type StatusReport } from "../store/status.ts";
import { openStoreReadOnly } from "./open.ts";
import type { Out } from "./run.ts";
import { driftLine } from "./summary.ts";
import { oneLine } from "../common/printable.ts";

export { type DriftRow, emptyStatus, type RunFile, type RunRow, type StatusReport } from "../store/status.ts";

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
    for (const { reason, count } of report.topRejections) {
      lines.push(`  ${String(count).padStart(7)}  ${oneLine(reason)}`);
    }
  }
  if (report.invalidKeys.length > 0) {
    lines.push("", "Invalid keys (--retry-invalid re-fetches them):");
    for (const i of report.invalidKeys) lines.push(`  ${oneLine(`${i.key}: ${i.reason}`)}`);
  }
  if (report.drift.length > 0) {
    lines.push("", "Drift in the last runs (fields the rules do not know, or of another JSON type):");
    for (const d of report.drift) {
      lines.push(
        `  ${driftLine(d, report.extraKept)} (${d.runs} run${d.runs === 1 ? "" : "s"}, last ${d.lastRun})`,
      );
    }
  }
  if (report.recentIssues.length > 0) {
    lines.push("", "Recent refused, missing and failed keys:");
    for (const i of report.recentIssues) {
      lines.push(`  run ${i.run_id}  ${i.outcome.padEnd(7)}  ${oneLine(`${i.key}: ${i.reason}`)}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** The config's status report from a read-only store, opened for each call (`status`, each request of `serve`). */
export function configReport(config: Config): () => Promise<StatusReport> {
  return async () => {
    const store = await openStoreReadOnly(config);
    try {
      const report = store === undefined ? emptyStatus(config.store.spec.display) : await store.status();
      return { ...report, extraKept: config.keepExtra };
    } finally {
      await store?.close();
    }
  };
}

/** `status`: prints the report (text or JSON) from a read-only database. Returns 0. */
export async function statusAction(config: Config, out: Out, options: { json: boolean }): Promise<number> {
  const report = await configReport(config)();
  out(options.json ? JSON.stringify(report, null, 2) + "\n" : formatStatus(report));
  return 0;
}
