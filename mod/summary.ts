/**
 * The end-of-run summary a person reads at a glance.
 *
 * @module
 */
import type { RunReport } from "./pipeline.ts";

const n = (value: number) => value.toLocaleString("en-US");

function byType(counts: Readonly<Record<string, number>>): string {
  const parts = Object.entries(counts).filter(([, c]) => c > 0).map(([t, c]) => `${t} ${n(c)}`);
  return parts.length > 0 ? ` (${parts.join(", ")})` : "";
}

/** Formats a run report as a few aligned lines. */
export function formatSummary(report: RunReport): string {
  const seconds = (report.finishedAt.getTime() - report.startedAt.getTime()) / 1000;
  if (report.status === "list_failed") {
    return `bucketload: run failed after ${seconds.toFixed(2)} s: cannot read the file list: ${report.listError}\n` +
      `  nothing was written\n`;
  }
  if (report.runId === undefined) {
    return `bucketload: nothing to do in ${seconds.toFixed(2)} s: the list is unchanged and no key is pending\n`;
  }
  const loaded = Object.values(report.loaded).reduce((a, b) => a + b, 0);
  const ignored = Object.values(report.ignored).reduce((a, b) => a + b, 0);
  const rate = seconds > 0 ? Math.round(loaded / seconds) : loaded;
  const lines = [
    `bucketload: run ${report.runId} ${report.status === "ok" ? "finished" : "FAILED"} in ${seconds.toFixed(2)} s`,
    `  files    ${n(report.filesListed)} listed, ${n(report.filesNew)} new: ${n(report.filesLoaded)} loaded, ` +
    `${n(report.filesInvalid)} invalid, ${n(report.filesMissing)} missing, ${n(report.filesFailed)} failed, ` +
    `${n(report.filesRefused)} refused`,
    `  records  ${n(loaded)} loaded${byType(report.loaded)}, ${n(report.rejected)} rejected, ` +
    `${n(ignored)} ignored${byType(report.ignored)}`,
    `  rate     ${n(rate)} records/s`,
  ];
  const show = (title: string, items: readonly string[]) => {
    if (items.length === 0) return;
    lines.push(`  ${title}`);
    for (const item of items.slice(0, 10)) lines.push(`    ${item}`);
    if (items.length > 10) lines.push(`    … and ${items.length - 10} more`);
  };
  show("failed (retried next run):", report.failedKeys.map((f) => `${f.key}: ${f.reason}`));
  show("missing (retried next run):", report.missingKeys);
  show("refused:", report.refusedKeys.map((f) => `${JSON.stringify(f.key)}: ${f.reason}`));
  return lines.join("\n") + "\n";
}
