/**
 * The end-of-run summary: a few lines a person reads at a glance, or one
 * JSON document a scheduler reads (`--json`).
 *
 * @module
 */
import type { RunReport } from "../run/pipeline.ts";
import type { DriftRow } from "../store/status.ts";
import type { Filled } from "../store/store.ts";
import { oneLine } from "../common/printable.ts";
import { DRIFT_FIELDS_PER_TYPE } from "../records/drift.ts";

const n = (value: number) => value.toLocaleString("en-US");

/**
 * A record type's name as text shows it: as it is when it is a plain word,
 * else as its JSON string (controls JSON leaves alone escaped too, see
 * `oneLine`), so that an empty name (`""`), one with spaces (`"comic book"`)
 * or a control character (`"a\nb"`) is seen for what it is. `--json` keeps
 * names raw.
 */
export function typeLabel(name: string): string {
  return /^[^\s"\\\p{C}]+$/u.test(name) ? name : oneLine(JSON.stringify(name));
}

function byType(counts: Readonly<Record<string, number>>): string {
  const parts = Object.entries(counts).filter(([, c]) => c > 0).map(([t, c]) => `${typeLabel(t)} ${n(c)}`);
  return parts.length > 0 ? ` (${parts.join(", ")})` : "";
}

const seconds = (report: RunReport) => (report.finishedAt.getTime() - report.startedAt.getTime()) / 1000;

/** One drift entry in words, e.g. `song.year: string where the rules want number, 12 records, e.g. "1994"`. */
export function driftLine(d: Omit<DriftRow, "runs" | "lastRun">, extraKept = false): string {
  // An unknown field's values wait in each row's extra column, for a type that gains the field (docs/data.md).
  return oneLine(driftText(d)) + (extraKept && d.kind === "unknown" ? " — kept in extra" : "");
}

function driftText(d: Omit<DriftRow, "runs" | "lastRun">): string {
  const records = `${n(d.records)} record${d.records === 1 ? "" : "s"}`;
  const eg = d.example === null ? "" : `, e.g. ${d.example}`;
  if (d.kind === "unknown") return `${d.type}.${d.field}: unknown field (${d.seen}), ${records}${eg}`;
  if (d.kind === "type") return `${d.type}.${d.field}: ${d.seen} where the rules want ${d.expected}, ${records}${eg}`;
  return `${d.type}: ${records} with other fields, past the bound of ${DRIFT_FIELDS_PER_TYPE} distinct fields per run`;
}

/** Formats a run report as a few aligned lines. */
export function formatSummary(report: RunReport, options: { readonly extraKept?: boolean } = {}): string {
  const s = seconds(report);
  const waited = report.lockWaitMs > 0
    ? ` (after ${(report.lockWaitMs / 1000).toFixed(2)} s waiting for the lock)`
    : "";
  if (report.status === "list_failed") {
    return `bucketload: run failed after ${s.toFixed(2)} s${waited}: cannot read the file list: ${report.listError}\n` +
      `  nothing was written\n`;
  }
  if (report.runId === undefined) {
    const why = report.listed ? "no new object in the bucket" : "the list is unchanged";
    return `bucketload: nothing to do in ${s.toFixed(2)} s${waited}: ${why} and no key is pending\n`;
  }
  const loaded = Object.values(report.loaded).reduce((a, b) => a + b, 0);
  const ignored = Object.values(report.ignored).reduce((a, b) => a + b, 0);
  const rate = s > 0 ? Math.round(loaded / s) : loaded;
  const fresh = report.filesNew - report.filesRefetched;
  const lines = [
    `bucketload: run ${report.runId} ${report.status === "ok" ? "finished" : "FAILED"} in ${s.toFixed(2)} s${waited}`,
    `  files    ${n(report.filesListed)} listed, ${n(fresh)} new, ${n(report.filesRefetched)} re-fetched: ` +
    `${n(report.filesLoaded)} loaded, ${n(report.filesInvalid)} invalid, ${n(report.filesMissing)} missing, ` +
    `${n(report.filesFailed)} failed, ${n(report.filesRefused)} refused`,
    `  records  ${n(loaded)} valid${byType(report.loaded)}, ${n(report.rejected)} rejected, ` +
    `${n(ignored)} ignored${byType(report.ignored)}`,
    `  rows     ${n(report.rowsInserted)} inserted, ${n(report.rowsUpdated)} updated, ${n(report.rowsRemoved)} removed`,
    `  rate     ${n(rate)} records/s`,
  ];
  if (report.rederived.changes.length > 0) {
    lines.push(
      `  derived  ${n(report.rederived.rows)} stored rows re-derived (no fetch): ${
        report.rederived.changes.join(", ")
      }`,
    );
  }
  if (report.rederived.filled.columns.length > 0) lines.push(filledLine(report.rederived.filled));
  if (report.imported > 0) lines.push(`  imported ${n(report.imported)} keys from the processed-files list`);
  if (report.filesChanged > 0 || report.filesDeleted > 0) {
    lines.push(
      `  bucket   ${n(report.filesChanged)} changed (re-loaded, rows replaced), ${n(report.filesDeleted)} deleted`,
    );
  }
  if (report.filesClaimedElsewhere > 0) {
    lines.push(`  shared   ${n(report.filesClaimedElsewhere)} keys claimed or loaded by another run side by side`);
  }
  const show = (title: string, items: readonly string[]) => {
    if (items.length === 0) return;
    lines.push(`  ${title}`);
    // Each item names bucket text (a key, a reason, a field): one line each, whatever it holds.
    for (const item of items.slice(0, 10)) lines.push(`    ${oneLine(item)}`);
    if (items.length > 10) lines.push(`    … and ${items.length - 10} more`);
  };
  show("invalid (--retry-invalid re-fetches):", report.invalidKeys.map((f) => `${f.key}: ${f.reason}`));
  show("failed (retried next run):", report.failedKeys.map((f) => `${f.key}: ${f.reason}`));
  show("missing (retried next run):", report.missingKeys);
  show("missing and not in the list (not retried; ask again with --key):", report.missingUnlistedKeys);
  show("gave up (missing too often; registered invalid):", report.gaveUpKeys);
  show("refused:", report.refusedKeys.map((f) => `${JSON.stringify(f.key)}: ${f.reason}`));
  show("deleted from the bucket:", report.deletedKeys);
  const drift = [...report.drift].sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : b.records - a.records));
  show(
    "drift (fields the rules do not know, or of another JSON type):",
    drift.map((d) => driftLine(d, options.extraKept)),
  );
  return lines.join("\n") + "\n";
}

/** The run report as one plain JSON value, for `--json`. */
export function summaryJson(report: RunReport): Record<string, unknown> {
  return {
    status: report.status,
    runId: report.runId ?? null,
    startedAt: report.startedAt.toISOString(),
    finishedAt: report.finishedAt.toISOString(),
    seconds: seconds(report),
    lockWaitSeconds: report.lockWaitMs / 1000,
    listError: report.listError ?? null,
    unchanged: report.unchanged,
    files: {
      listed: report.filesListed,
      new: report.filesNew - report.filesRefetched,
      refetched: report.filesRefetched,
      loaded: report.filesLoaded,
      invalid: report.filesInvalid,
      missing: report.filesMissing,
      failed: report.filesFailed,
      refused: report.filesRefused,
      claimedElsewhere: report.filesClaimedElsewhere,
      changed: report.filesChanged,
      deleted: report.filesDeleted,
    },
    records: { valid: report.loaded, rejected: report.rejected, ignored: report.ignored },
    rows: {
      inserted: report.rowsInserted,
      updated: report.rowsUpdated,
      removed: report.rowsRemoved,
      rederived: report.rederived.rows,
      filled: report.rederived.filled.rows,
    },
    filled: report.rederived.filled,
    settingsChanged: report.rederived.changes,
    imported: report.imported,
    invalidKeys: report.invalidKeys,
    failedKeys: report.failedKeys,
    missingKeys: report.missingKeys,
    missingUnlistedKeys: report.missingUnlistedKeys,
    gaveUpKeys: report.gaveUpKeys,
    refusedKeys: report.refusedKeys,
    deletedKeys: report.deletedKeys,
    drift: report.drift,
  };
}

/** The summary line of new columns filled from `extra` (no fetch), with the rows whose kept field fails the check. */
export function filledLine(filled: Filled): string {
  const failed = filled.failed === 0
    ? ""
    : `; ${filled.failed.toLocaleString("en-US")} kept in extra (failing the check), e.g. ${
      filled.failedKeys.join("; ")
    }`;
  return `  filled   ${filled.rows.toLocaleString("en-US")} stored rows filled from extra (no fetch): ${
    filled.columns.join(", ")
  }${failed}`;
}
