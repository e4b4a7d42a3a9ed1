/**
 * A dry run: the run's own list and plan steps (`plan.ts`) over the store
 * read without its lock, with nothing written, and each listed key's fate
 * told from the plan: new, changed, fetched again, already processed, gone
 * from the bucket, refused, or not asked for. It fetches only the list.
 *
 * @module
 */
import { fetchListing, globMatcher } from "../source/listing.ts";
import type { BucketSource, ListedObject } from "../source/source.ts";
import { fateOf } from "../store/fate.ts";
import type { FileStatus, PlannedKey, RegistryEntry, Store } from "../store/store.ts";
import { planList, planListed, type PlanReader } from "./plan.ts";

/** What a run would do with one listed key. */
export type KeyFate = "new" | "processed" | "refetch" | "changed" | "deleted" | "refused" | "skipped";

/** A dry run's answer: each key's fate, in the order a run meets them, and the totals. */
export interface DryRun {
  /** Each key's fate, with the reason of a refused key or an unlisted `--key` one, in the order a run meets them. */
  readonly entries: readonly { readonly key: string; readonly fate: KeyFate; readonly reason?: string }[];
  /** Keys by fate. */
  readonly counts: Readonly<Record<KeyFate, number>>;
  /** Keys the list held more than once (told once). */
  readonly duplicates: number;
  /** Whether `--force` was asked: processed keys would be fetched again. */
  readonly force: boolean;
}

/** Options of {@linkcode dryRun}. */
export interface DryRunOptions {
  /** Where the list comes from. */
  readonly source: BucketSource;
  /** The store to read, without its lock; `undefined` when it does not exist yet (everything is new). */
  readonly store: Store | undefined;
  /** Keys a run would import first (`PROCESSED_FILES_FILENAME` at a take-over): they count as loaded. */
  readonly imported?: ReadonlySet<string> | undefined;
  /** `FILES_LIST_KEY`: the list file's key. */
  readonly filesListKey: string;
  /** `KEY_PATTERN`: the keys to take from a bucket listing (a source without a list file). @default {""} (all) */
  readonly keyPattern?: string | undefined;
  /** `BUCKET_ENCODING`: the list's encoding (a WHATWG label). */
  readonly encoding: string;
  /** `MAX_LIST_BYTES`: a larger list fails. */
  readonly maxListBytes: number;
  /** With `--force`, processed keys would be fetched again. */
  readonly force: boolean;
  /** With `--retry-invalid`, keys registered invalid would be fetched again. @default {false} */
  readonly retryInvalid?: boolean;
  /** With `--key`, only these keys would be fetched. */
  readonly onlyKeys?: readonly string[] | undefined;
  /** `CHANGE_DETECTION = etag`. @default {true} */
  readonly changeDetection?: boolean;
}

/** The registry as the plan step reads it, peeked without the lock, and a bucket listing held in memory. */
class PeekReader implements PlanReader {
  readonly #store: Store | undefined;
  readonly #imported: ReadonlySet<string>;
  readonly #objects: readonly ListedObject[];
  #entries: ReadonlyMap<string, RegistryEntry> | undefined;

  constructor(store: Store | undefined, imported: ReadonlySet<string>, objects: readonly ListedObject[]) {
    this.#store = store;
    this.#imported = imported;
    this.#objects = objects;
  }

  /** Which of `keys` are registered with one of `statuses`; the imported keys count as loaded. */
  async registered(keys: readonly string[], statuses: readonly FileStatus[]): Promise<ReadonlySet<string>> {
    const inStore = this.#store === undefined ? new Set<string>() : await this.#store.peekRegistered(keys, statuses);
    const imported = statuses.includes("loaded") ? keys.filter((k) => this.#imported.has(k)) : [];
    return new Set([...inStore, ...imported]);
  }

  async unregistered(keys: readonly string[], statuses: readonly FileStatus[] = ["loaded", "invalid"]) {
    const registered = await this.registered(keys, statuses);
    return keys.filter((k) => !registered.has(k));
  }

  async entries(): Promise<ReadonlyMap<string, RegistryEntry>> {
    return this.#entries ??= this.#store === undefined ? new Map() : await this.#store.peekEntries();
  }

  async listedPlan(rules: { all: boolean; loadedOnly: boolean; detect: boolean }): Promise<PlannedKey[]> {
    const entries = await this.entries();
    return this.#objects.flatMap((o, position) => {
      const fate = fateOf(entries.get(o.key), o, rules);
      return fate === "processed" ? [] : [{ ...o, position, changed: fate === "changed" }];
    });
  }

  async unlisted(): Promise<string[]> {
    const listed = new Set(this.#objects.map((o) => o.key));
    return [...(await this.entries())].filter(([key, e]) => !e.deleted && !listed.has(key)).map(([key]) => key);
  }
}

/** Fetches the list and plans a run as the run would, writing nothing; each key's fate. */
export async function dryRun(options: DryRunOptions): Promise<DryRun | { error: string }> {
  const { force, retryInvalid = false, onlyKeys, changeDetection = true } = options;
  const listing = await fetchListing(options.source, {
    key: options.filesListKey,
    keyPattern: options.keyPattern,
    encoding: options.encoding,
    maxBytes: options.maxListBytes,
  });
  if ("error" in listing) return listing;
  const reader = new PeekReader(options.store, options.imported ?? new Set(), listing.objects ?? []);
  const plan = listing.listed
    ? await planListed(reader, { onlyKeys, force, retryInvalid, changeDetection })
    : await planList(reader, listing.keys, { onlyKeys, force, retryInvalid });
  const todo = new Set(plan.todo);
  const registered = await reader.registered(plan.todo, ["loaded", "invalid"]);
  const only = onlyKeys === undefined ? undefined : new Set(onlyKeys);
  const counts: Record<KeyFate, number> = {
    new: 0,
    processed: 0,
    refetch: 0,
    changed: 0,
    deleted: 0,
    refused: 0,
    skipped: 0,
  };
  const entries: DryRun["entries"][number][] = [];
  const add = (key: string, fate: KeyFate, reason?: string) => {
    counts[fate]++;
    entries.push(reason === undefined ? { key, fate } : { key, fate, reason });
  };
  for (const key of listing.keys) {
    if (only !== undefined && !only.has(key)) add(key, "skipped");
    else if (!todo.has(key)) add(key, "processed");
    else if (plan.changed.has(key)) add(key, "changed");
    else add(key, registered.has(key) ? "refetch" : "new");
  }
  // A bucket listing is complete: registered objects (under KEY_PATTERN) missing from it were deleted.
  if (listing.listed) {
    const refused = new Set(listing.refused.map((r) => r.key));
    const belongs = globMatcher(options.keyPattern ?? "");
    for (const key of await reader.unlisted()) if (!refused.has(key) && belongs(key)) add(key, "deleted");
  }
  for (const key of plan.unlisted) add(key, "new", "not in the list; fetched as asked (--key)");
  for (const { key, reason } of listing.refused) add(key, "refused", reason);
  return { entries, counts, duplicates: listing.duplicates, force };
}
