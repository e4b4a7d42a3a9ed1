/**
 * The kinds of store bucketload loads into, and which one a configuration
 * chooses. Adding one means adding its folder (its store, run and rows, and
 * its `kind.ts`) and listing it here. The first is the default: used when no
 * setting names a store.
 *
 * @module
 */
import type { KeyReader } from "../common/keys.ts";
import type { ChosenStore, StoreKind, StoreNaming } from "./kind.ts";
import { postgresStore } from "./postgres/kind.ts";
import { sqliteStore } from "./sqlite/kind.ts";

/** The stores; the first is the default. */
// deno-lint-ignore no-explicit-any
export const STORES: readonly StoreKind<any>[] = [sqliteStore, postgresStore];

/**
 * Which store: the one whose setting comes from the highest layer, as for
 * every key (a plain variable such as `DATABASE_URL` ranks just below the
 * `BUCKETLOAD_*` ones); in the same layer a store other than the default
 * wins; none named, the default. When more than one is named, the notice
 * says which one is used and how to choose another (docs/postgres.md).
 *
 * @throws {UsageError} for a bad value of the chosen store's keys
 */
export function chooseStore(
  stores: readonly StoreKind[],
  keys: KeyReader,
  env: Readonly<Record<string, string>>,
): ChosenStore {
  const fallback = stores[0];
  if (fallback === undefined) throw new Error("No store is listed in STORES");
  const named = stores.flatMap((kind, order) => {
    const naming = kind.named(keys, env);
    return naming === undefined ? [] : [{ kind, order, ...naming }];
  }).sort((a, b) => b.rank - a.rank || Number(a.kind === fallback) - Number(b.kind === fallback) || a.order - b.order);
  const chosen: StoreNaming & { kind: StoreKind } = named[0] ??
    { kind: fallback, rank: -1, where: keys.source(fallback.key), drop: () => "" };
  const others = named.slice(1);
  const notes = [
    ...others.map((o) =>
      `${o.where} is set too, and ${chosen.where} outranks it; to load into ${o.kind.title}, ${chosen.drop(o.kind)}`
    ),
    ...(chosen.notes ?? []),
  ];
  const not = (others.length > 0 ? others.map((o) => o.kind) : stores.filter((k) => k !== chosen.kind).slice(0, 1))
    .map((k) => k.title).join(", ");
  return {
    kind: chosen.kind,
    spec: chosen.kind.configure(keys, env),
    notice: notes.length === 0
      ? undefined
      : `Loading into ${chosen.kind.title} (${chosen.where}), not ${not}: ${notes.join("; ")}`,
  };
}
