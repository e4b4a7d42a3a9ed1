/**
 * `--dry-run`: what a run would do, from the list and the registry alone.
 * It fetches only the list and writes nothing.
 *
 * @module
 */
import { fetchListing } from "../source/listing.ts";
import type { BucketSource } from "../source/source.ts";
import type { FileStatus, RegistryEntry } from "../store/store.ts";
import { fateOf } from "../store/fate.ts";
import { globMatcher } from "../source/listing.ts";

/** What a run would do with one listed key. */
export type PlannedAction = "new" | "processed" | "refetch" | "changed" | "deleted" | "refused" | "skipped";

/** A dry run's answer. */
export interface Plan {
  readonly entries: readonly { readonly key: string; readonly action: PlannedAction; readonly reason?: string }[];
  readonly counts: Readonly<Record<PlannedAction, number>>;
  readonly duplicates: number;
  readonly force: boolean;
}

/** Options of {@linkcode planRun}. */
export interface PlanOptions {
  readonly source: BucketSource;
  /** Which of the keys are registered with one of `statuses`; read-only. */
  readonly registered: (keys: readonly string[], statuses: readonly FileStatus[]) => Promise<ReadonlySet<string>>;
  readonly filesListKey: string;
  readonly keyPattern?: string | undefined;
  readonly encoding: string;
  readonly maxListBytes: number;
  /** With `--force`, processed keys would be fetched again. */
  readonly force: boolean;
  /** With `--retry-invalid`, keys registered invalid would be fetched again. @default {false} */
  readonly retryInvalid?: boolean;
  /** With `--key`, only these keys would be fetched. */
  readonly keys?: readonly string[] | undefined;
  /**
   * For a bucket listing: the registry's entries, to tell changed objects
   * (with `changeDetection`) and deleted ones, as a run would.
   */
  readonly entries?: (() => Promise<ReadonlyMap<string, RegistryEntry>>) | undefined;
  /** `CHANGE_DETECTION = etag`. @default {true} */
  readonly changeDetection?: boolean;
}

/** Fetches the list and classifies each key as a run would. */
export async function planRun(options: PlanOptions): Promise<Plan | { error: string }> {
  const listing = await fetchListing(options.source, {
    key: options.filesListKey,
    keyPattern: options.keyPattern,
    encoding: options.encoding,
    maxBytes: options.maxListBytes,
  });
  if ("error" in listing) return listing;
  const registered = await options.registered(listing.keys, ["loaded", "invalid"]);
  const invalid = options.retryInvalid ? await options.registered(listing.keys, ["invalid"]) : new Set<string>();
  const only = options.keys === undefined ? undefined : new Set(options.keys);
  const counts: Record<PlannedAction, number> = {
    new: 0,
    processed: 0,
    refetch: 0,
    changed: 0,
    deleted: 0,
    refused: 0,
    skipped: 0,
  };
  // A bucket listing tells changed and deleted objects, by the registry's fingerprints; a list file does not.
  const known = listing.listed && options.entries !== undefined ? await options.entries() : undefined;
  const fingerprints = new Map((listing.objects ?? []).map((o) => [o.key, o]));
  const rules = {
    all: options.force || only !== undefined,
    loadedOnly: options.retryInvalid ?? false,
    detect: options.changeDetection ?? true,
  };
  const entryOf = (key: string): RegistryEntry | undefined =>
    known?.get(key) ??
      (registered.has(key)
        ? { status: invalid.has(key) ? "invalid" : "loaded", fingerprint: null, deleted: false }
        : undefined);
  const entries: Plan["entries"][number][] = listing.keys.map((key) => {
    const action: PlannedAction = only !== undefined && !only.has(key)
      ? "skipped"
      : fateOf(entryOf(key), fingerprints.get(key), rules);
    counts[action]++;
    return { key, action };
  });
  if (known !== undefined) {
    const listed = new Set([...listing.keys, ...listing.refused.map((r) => r.key)]);
    const belongs = globMatcher(options.keyPattern ?? "");
    for (const [key, entry] of known) {
      if (entry.deleted || listed.has(key) || !belongs(key)) continue;
      counts.deleted++;
      entries.push({ key, action: "deleted" });
    }
  }
  for (const key of options.keys ?? []) {
    if (!listing.keys.includes(key)) {
      counts.new++;
      entries.push({ key, action: "new", reason: "not in the list; fetched as asked (--key)" });
    }
  }
  for (const { key, reason } of listing.refused) {
    counts.refused++;
    entries.push({ key, action: "refused", reason });
  }
  return { entries, counts, duplicates: listing.duplicates, force: options.force };
}

const LABEL: Record<PlannedAction, string> = {
  new: "new: would be fetched",
  processed: "already processed (--force would re-fetch it)",
  refetch: "already processed: would be re-fetched (--force, --retry-invalid or --key)",
  changed: "changed in the bucket (ETag or size) or back after a deletion: would be re-fetched, its rows replaced",
  deleted: "gone from the bucket: would be marked deleted (PRUNE_DELETED removes its rows)",
  refused: "refused",
  skipped: "not asked for (--key)",
};

/** Formats a plan: one line per key, then the totals. */
export function formatPlan(plan: Plan): string {
  const lines = ["bucketload dry run: nothing is fetched but the list, nothing is written", ""];
  for (const e of plan.entries) {
    lines.push(
      `  ${e.action.padEnd(9)} ${JSON.stringify(e.key)}  ${LABEL[e.action]}${e.reason ? `: ${e.reason}` : ""}`,
    );
  }
  const c = plan.counts;
  lines.push(
    "",
    `${c.new + c.refetch + c.changed} to fetch (${c.new} new, ${c.refetch} re-fetched${
      c.changed > 0 ? `, ${c.changed} changed` : ""
    }), ${c.processed} already processed, ${c.refused} refused, ${plan.duplicates} duplicate lines${
      c.skipped > 0 ? `, ${c.skipped} not asked for` : ""
    }${c.deleted > 0 ? `, ${c.deleted} deleted` : ""}`,
  );
  return lines.join("\n") + "\n";
}
