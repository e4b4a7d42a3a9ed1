/**
 * The dry run command (`--dry-run`): the run's own plan with nothing written
 * (`run/dry_run.ts`), printed as each listed key's fate and the totals. It
 * fetches only the list.
 *
 * @module
 */
import type { Config } from "../config/config.ts";
import { type DryRun, dryRun, type KeyFate } from "../run/dry_run.ts";
import { readRegistryFile } from "../store/registry_file.ts";
import { openSource, openStoreReadOnly } from "./open.ts";
import type { Out } from "./run.ts";

/** Options of {@linkcode dryRunAction}. */
export interface DryRunActionOptions {
  /** `--force`: processed keys would be fetched again. */
  readonly force: boolean;
  /** `--retry-invalid`: keys registered as invalid would be fetched again. */
  readonly retryInvalid?: boolean;
  /** `--key`: only these keys would be fetched. */
  readonly keys?: readonly string[] | undefined;
}

/** `--dry-run`: prints what a run would do; fetches only the list and writes nothing. Returns 0, or 1 when the list fails. */
export async function dryRunAction(config: Config, out: Out, options: DryRunActionOptions): Promise<number> {
  const store = await openStoreReadOnly(config);
  try {
    // The processed-files list counts only where a run would import it: at a take-over of the original's database.
    const imported = new Set(
      config.processedFilesPath === undefined || !(await store?.takesOver())
        ? []
        : await readRegistryFile(config.processedFilesPath),
    );
    const result = await dryRun({
      source: await openSource(config),
      store,
      imported,
      filesListKey: config.filesListKey,
      keyPattern: config.keyPattern,
      encoding: config.encoding,
      maxListBytes: config.maxListBytes,
      force: options.force,
      retryInvalid: options.retryInvalid ?? false,
      onlyKeys: options.keys,
      changeDetection: config.changeDetection,
    });
    if ("error" in result) {
      out(`bucketload dry run: cannot read the file list: ${result.error}\n`);
      return 1;
    }
    out(formatDryRun(result));
    return 0;
  } finally {
    await store?.close();
  }
}

const LABEL: Record<KeyFate, string> = {
  new: "new: would be fetched",
  processed: "already processed (--force would re-fetch it)",
  refetch: "already processed: would be re-fetched (--force, --retry-invalid or --key)",
  changed: "changed in the bucket (ETag or size) or back after a deletion: would be re-fetched, its rows replaced",
  deleted: "gone from the bucket: would be marked deleted (PRUNE_DELETED removes its rows)",
  refused: "refused",
  skipped: "not asked for (--key)",
};

/** Formats a dry run: one line per key, then the totals. */
export function formatDryRun(result: DryRun): string {
  const lines = ["bucketload dry run: nothing is fetched but the list, nothing is written", ""];
  for (const e of result.entries) {
    lines.push(`  ${e.fate.padEnd(9)} ${JSON.stringify(e.key)}  ${LABEL[e.fate]}${e.reason ? `: ${e.reason}` : ""}`);
  }
  const c = result.counts;
  lines.push(
    "",
    `${c.new + c.refetch + c.changed} to fetch (${c.new} new, ${c.refetch} re-fetched${
      c.changed > 0 ? `, ${c.changed} changed` : ""
    }), ${c.processed} already processed, ${c.refused} refused, ${result.duplicates} duplicate lines${
      c.skipped > 0 ? `, ${c.skipped} not asked for` : ""
    }${c.deleted > 0 ? `, ${c.deleted} deleted` : ""}`,
  );
  return lines.join("\n") + "\n";
}
