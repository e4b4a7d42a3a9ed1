/**
 * The replay command: re-validates quarantined records by today's rules
 * (`run/replay.ts`, the engine) and says what became of them, as text or JSON.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Config } from "../config/config.ts";
import { RECORD_TYPES } from "../records/mod.ts";
import { type ReplayReport, runReplay } from "../run/replay.ts";
import { UsageError } from "../common/errors.ts";
import { openSource, openStore, openStoreReadOnly } from "./open.ts";
import { inSpan } from "../common/telemetry.ts";
import { filledLine } from "./summary.ts";
import { type Out, runAttributes } from "./run.ts";

/** Options of {@linkcode replayAction}. */
export interface ReplayActionOptions {
  /** `--dry-run`: re-validate and report, then roll back. */
  readonly dryRun: boolean;
  /** `--type`: only the records of this type. */
  readonly type?: string | undefined;
  /** `--reason`: only the records whose reason contains this text. */
  readonly reason?: string | undefined;
  /** `--json`: print the report as one JSON document. */
  readonly json?: boolean;
  /** Aborting it stops the replay and rolls it back. */
  readonly signal?: AbortSignal | undefined;
}

const n = (value: number) => value.toLocaleString("en-US");

/** A replay report as a few lines. */
export function formatReplay(r: ReplayReport): string {
  const seconds = ((r.finishedAt.getTime() - r.startedAt.getTime()) / 1000).toFixed(2);
  const loaded = Object.values(r.loaded).reduce((a, b) => a + b, 0);
  const byType = Object.entries(r.loaded).filter(([, c]) => c > 0).map(([t, c]) => `${t} ${n(c)}`).join(", ");
  const head = r.dryRun
    ? `bucketload replay (dry run: nothing was written) in ${seconds} s`
    : r.runId === undefined
    ? `bucketload replay in ${seconds} s: nothing changed, nothing was written`
    : `bucketload replay ${r.runId} finished in ${seconds} s`;
  const lines = [
    head,
    `  quarantine  ${n(r.matched)} matched, ${n(r.revalidated)} re-validated by today's rules`,
    `  loaded      ${n(loaded)}${byType === "" ? "" : ` (${byType})`}: rows ${n(r.rowsInserted)} inserted, ` +
    `${n(r.rowsUpdated)} updated`,
    `  rejected    ${n(r.stillRejected)} still (${n(r.reasonsChanged)} of them for another reason now, stored)`,
  ];
  if (r.ignored > 0) lines.push(`  ignored     ${n(r.ignored)} (of a type no rule loads now; left the quarantine)`);
  if (r.rederived.changes.length > 0) {
    lines.push(
      `  derived     ${n(r.rederived.rows)} stored rows re-derived${r.dryRun ? " (rolled back)" : ""}: ` +
        r.rederived.changes.join(", "),
    );
  }
  if (r.rederived.filled.columns.length > 0) lines.push(filledLine(r.rederived.filled));
  if (r.byReason.length > 0) {
    lines.push("  by reason (as stored before):");
    for (const g of r.byReason.slice(0, 20)) {
      const parts = [`${n(g.loaded)} loaded`, `${n(g.stillRejected)} still rejected`];
      if (g.ignored > 0) parts.push(`${n(g.ignored)} ignored`);
      if (g.held > 0) parts.push(`${n(g.held)} held`);
      lines.push(`    ${String(g.revalidated).padStart(7)}  ${g.reason}: ${parts.join(", ")}`);
    }
    if (r.byReason.length > 20) lines.push(`    … and ${r.byReason.length - 20} more reasons`);
  }
  if (r.held.length > 0) {
    const keys = [...new Set(r.held.map((h) => h.key))];
    lines.push(
      `  held        ${n(r.held.length)} pass now, but their file also loaded a row with the same key, and which ` +
        `came later in it is not kept: re-load the file with --key (${keys.slice(0, 3).join(", ")}${
          keys.length > 3 ? ", …" : ""
        })`,
    );
  }
  const s = r.skipped;
  const skipped = [
    [s.wholeFile, "whole-file rejections (--retry-invalid re-fetches them)"],
    [s.fileGone, "of files no longer loaded or deleted from the bucket"],
    [s.unreadable, "whose stored text was cut at MAX_REJECTED_RAW_BYTES or is not JSON (--key re-fetches the file)"],
    [s.noPosition, "of files whose list position is unknown (--key re-loads them)"],
    [s.busy, "of files a run side by side holds (replay again later)"],
  ] as const;
  for (const [count, why] of skipped) if (count > 0) lines.push(`  skipped     ${n(count)} ${why}`);
  return lines.join("\n") + "\n";
}

/**
 * Checks, only reading, that a run has loaded the database: a replay has
 * nothing to work on before, and must not create the database (or its
 * folder, or on PostgreSQL its tables).
 *
 * @throws {UsageError} when the database does not exist or no run has committed into it
 */
async function checkLoaded(config: Config): Promise<void> {
  const store = await openStoreReadOnly(config);
  try {
    const subject = config.store.kind.key;
    const display = config.store.spec.display;
    if (store === undefined) {
      throw new UsageError(
        `No database to replay: ${display} does not exist (nothing has been loaded yet: a run creates it)`,
        { subject },
      );
    }
    if (!(await store.hasRuns())) {
      throw new UsageError(
        `No database to replay: ${display} holds no run yet (nothing has been loaded yet: a run creates its tables)`,
        { subject },
      );
    }
  } finally {
    await store?.close();
  }
}

/**
 * `replay`: re-validates the quarantine under the run lock; prints the
 * report. Returns 0.
 *
 * @throws {UsageError} when no run has loaded the database yet
 * @throws {LockedError} when a run holds the database
 */
export async function replayAction(config: Config, out: Out, options: ReplayActionOptions): Promise<number> {
  await checkLoaded(config);
  const opened = await openStore(config);
  let report: ReplayReport;
  try {
    const source = await openSource(config);
    const replay = () =>
      runReplay({
        store: opened.store,
        types: RECORD_TYPES,
        bucket: source.display,
        dateStoreFormat: config.dateStoreFormat,
        typeSettings: config.typeSettings,
        keepExtra: config.keepExtra,
        filter: { type: options.type, reason: options.reason },
        dryRun: options.dryRun,
        logger: getLogger(["bucketload"]),
        signal: options.signal,
        maxRawBytes: config.maxRejectedRawBytes,
      });
    const attributes = { ...runAttributes(config), "bucketload.dry_run": options.dryRun };
    report = await inSpan("bucketload.replay", attributes, async (span) => {
      const r = await replay();
      span.setAttributes({
        "bucketload.revalidated": r.revalidated,
        "bucketload.loaded": Object.values(r.loaded).reduce((a, b) => a + b, 0),
        "bucketload.still_rejected": r.stillRejected,
        "bucketload.held": r.held.length,
      });
      return r;
    });
  } finally {
    await opened.close();
  }
  // runId null, not left out, when nothing was written.
  out(
    options.json
      ? JSON.stringify(
        {
          ...report,
          runId: report.runId ?? null,
          rederived: { rows: report.rederived.rows, changes: report.rederived.changes },
          filled: report.rederived.filled,
        },
        null,
        2,
      ) + "\n"
      : formatReplay(report),
  );
  return 0;
}
