/**
 * The one rule for what a run does with a listed key: fetch it as new,
 * fetch it as changed (its earlier rows replaced), fetch it again, or leave
 * it as processed. It is written here twice over the same words, as a
 * function (the dry run, a claim's second look) and as an SQL expression
 * (a listing of millions of keys compared in the database), and a test
 * holds the two to each other.
 *
 * @module
 */
import type { Fingerprint, RegistryEntry } from "./store.ts";

/** What a run does with a listed key. */
export type Fate = "new" | "changed" | "refetch" | "processed";

/** The run's options that the fate depends on. */
export interface FateRules {
  /** `--force` or `--key`: every key is fetched. */
  readonly all: boolean;
  /** `--retry-invalid`: a key registered invalid is fetched again. */
  readonly loadedOnly: boolean;
  /** `CHANGE_DETECTION = etag`: a key whose ETag or size changed is fetched as changed. */
  readonly detect: boolean;
}

/**
 * The fate of a key with registry entry `entry` (none: never registered)
 * and fingerprint `now` in the listing (none: a list file).
 */
export function fateOf(entry: RegistryEntry | undefined, now: Fingerprint | undefined, rules: FateRules): Fate {
  if (entry === undefined) return "new";
  const moved = rules.detect && now !== undefined && entry.fingerprint !== null &&
    (entry.fingerprint.etag !== now.etag || entry.fingerprint.size !== now.size);
  if (entry.deleted || moved) return "changed";
  if (rules.all || (rules.loadedOnly && entry.status !== "loaded")) return "refetch";
  return "processed";
}

/**
 * {@linkcode fateOf} as an SQL expression over a registry row `p` (all NULL
 * when the key is not registered) and a listing row `l` (`etag`, `size`),
 * with the rules given as SQL booleans (parameters).
 */
export function fateSql(rules: { readonly [K in keyof FateRules]: string }): string {
  return `CASE WHEN p.key IS NULL THEN 'new'
    WHEN p.deleted_at IS NOT NULL OR (${rules.detect} AND p.etag IS NOT NULL AND (p.etag <> l.etag OR p.size <> l.size))
      THEN 'changed'
    WHEN ${rules.all} OR (${rules.loadedOnly} AND p.status <> 'loaded') THEN 'refetch'
    ELSE 'processed' END`;
}
