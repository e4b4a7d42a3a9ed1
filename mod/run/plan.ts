/**
 * The plan step: which listed keys a run fetches, in list order, with their
 * list positions and (from a bucket listing) their fingerprints and whether
 * they changed. A list file held in memory is checked against the registry
 * in chunks; a bucket listing held by the run's transaction is compared with
 * the registry by the store. A dry run plans with the same functions, over
 * the store read without its lock (`dry_run.ts`).
 *
 * @module
 */
import type { Fingerprint, RunTransaction } from "../store/store.ts";

/** What the plan step reads of the registry: the run's transaction, or (a dry run) the store read without its lock. */
export type PlanReader = Pick<RunTransaction, "unregistered" | "listedPlan" | "unlisted">;

/** The keys a run fetches, in list order, with their list positions and (from a bucket listing) fingerprints. */
export interface Plan {
  /** The keys to fetch: in list order, or with `--key` the keys asked for, in their order. */
  readonly todo: string[];
  /** Keys registered before whose object changed (or came back after a deletion): rows replaced. */
  readonly changed: ReadonlySet<string>;
  /** From a bucket listing, each key's fingerprint; empty for a list file. */
  readonly fingerprints: ReadonlyMap<string, Fingerprint>;
  /** Each key's list position (unlisted `--key` keys after the list's). */
  readonly positions: ReadonlyMap<string, number>;
  /** `--key` keys the list does not hold (fetched anyway, after the list's). */
  readonly unlisted: readonly string[];
}

/** The run's options that choose the keys to fetch. */
export interface PlanOptions {
  /** `--key`: only these keys, registered or not. */
  readonly onlyKeys: readonly string[] | undefined;
  /** `--force`: registered keys too. */
  readonly force: boolean;
  /** `--retry-invalid`: keys registered as invalid too. */
  readonly retryInvalid: boolean;
}

/**
 * The plan of a list file held in memory: the registry is asked in chunks,
 * only the keys to fetch are kept. `keys` is the whole list, or (with their
 * list positions `at`) only the keys of it that may be new: then neither
 * `--key` nor `--force` is set.
 */
export async function planList(
  tx: PlanReader,
  keys: readonly string[],
  o: PlanOptions,
  at?: readonly number[],
): Promise<Plan> {
  let todo: string[];
  let unlisted: string[] = [];
  if (o.onlyKeys !== undefined) {
    const listed = new Set(keys);
    unlisted = o.onlyKeys.filter((k) => !listed.has(k));
    todo = [...o.onlyKeys];
  } else if (o.force) todo = [...keys];
  else {
    // Only the keys to fetch come back (the store asks in chunks): a long list is mostly registered.
    todo = await tx.unregistered(keys, o.retryInvalid ? ["loaded"] : undefined);
  }
  const want = new Set(todo);
  const positions = new Map<string, number>();
  keys.forEach((k, i) => want.has(k) && positions.set(k, at === undefined ? i : at[i]!));
  unlisted.forEach((k, i) => positions.set(k, keys.length + i));
  return { todo, changed: new Set(), fingerprints: new Map(), positions, unlisted };
}

/** The plan of a bucket listing held by the run's transaction: the store compares it with the registry. */
export async function planListed(
  tx: PlanReader,
  o: PlanOptions & { readonly changeDetection: boolean },
): Promise<Plan> {
  const planned = await tx.listedPlan({
    all: o.force || o.onlyKeys !== undefined,
    loadedOnly: o.retryInvalid,
    detect: o.changeDetection,
  });
  const only = o.onlyKeys === undefined ? undefined : new Set(o.onlyKeys);
  const chosen = only === undefined ? planned : planned.filter((p) => only.has(p.key));
  const listedKeys = new Set(chosen.map((p) => p.key));
  const unlisted = o.onlyKeys?.filter((k) => !listedKeys.has(k)) ?? [];
  const positions = new Map(chosen.map((p) => [p.key, p.position]));
  const last = planned.length === 0 ? 0 : planned.at(-1)!.position + 1;
  unlisted.forEach((k, i) => positions.set(k, last + i));
  return {
    todo: o.onlyKeys !== undefined ? [...o.onlyKeys] : chosen.map((p) => p.key),
    changed: new Set(chosen.filter((p) => p.changed).map((p) => p.key)),
    fingerprints: new Map(chosen.map((p) => [p.key, { etag: p.etag, size: p.size }])),
    positions,
    unlisted,
  };
}
