/**
 * What a profile key is, wherever it is declared: the core's keys (the
 * config), a record type's settings, a source's or a store's own keys. One
 * {@linkcode KeySpec} holds a key's default, its `--help` line, its
 * documentation and the rule its value must keep; the config checks every
 * key by it at every start, `--help` lists it, and `docs/configuration.md` is
 * generated from it. A source or a store reads its keys through a
 * {@linkcode KeyReader}, whose errors name where a value came from.
 *
 * @module
 */

/** The prefix of environment overrides, e.g. `BUCKETLOAD_CONCURRENCY`. */
export const ENV_PREFIX = "BUCKETLOAD_";

/** One key's specification. */
export interface KeySpec {
  /** The built-in default, as it would be written in the file; `undefined`: none. */
  readonly default: string | undefined;
  /** One line for `--help`. */
  readonly help: string;
  /** The default as the docs show it, when it says more than the value (`536870912` (512 MiB)). */
  readonly shownDefault?: string;
  /** What the key does, for `docs/configuration.md` (Markdown, one paragraph). */
  readonly doc: string;
  /** A number within these bounds (inclusive; 0 and `Number.MAX_SAFE_INTEGER` when left out), whole with `integer`. */
  readonly number?: { readonly min?: number; readonly max?: number; readonly integer?: boolean };
  /** One of these words (compared in lower case). */
  readonly oneOf?: readonly string[];
  /** yes/no, true/false, on/off or 1/0. */
  readonly yesNo?: boolean;
  /** Any other rule: what was expected when `value` (trimmed) breaks it, else `undefined`. */
  readonly check?: (value: string) => string | undefined;
}

/** Keys by name, in the order `--help` and the docs list them. */
export type KeySpecs = Readonly<Record<string, KeySpec>>;

/**
 * A number key: a record type's setting (`AWESOME_MIN_RATING`), whose derived
 * columns read it from their context.
 */
export type NumberKeySpec = KeySpec & { readonly default: string; readonly number: NonNullable<KeySpec["number"]> };

/**
 * How a source or a store reads its keys, each checked by its spec: the value
 * of the highest layer that sets it (flag, environment, profile, `[DEFAULT]`),
 * else the built-in default. Every error is one line that names where the
 * value came from.
 */
export interface KeyReader {
  /** Where relative paths resolve: the config file's folder, else the working directory. */
  readonly baseDir: string;
  /** The value as written (the default when no layer sets it). */
  get(key: string): string | undefined;
  /** The value as written, "" when none. */
  str(key: string): string;
  /** A number key's value, within its spec's bounds. */
  num(key: string): number;
  /** A yes/no key's value. */
  bool(key: string): boolean;
  /** A one-of key's value, in lower case. */
  oneOf(key: string): string;
  /** A path resolved against {@linkcode baseDir}; `undefined` when empty. */
  path(key: string): string | undefined;
  /** The setting that gave `key` its value, in words (`'KEY' in profile 'p' of FILE`, `environment variable …`). */
  source(key: string): string;
  /** The rank of the highest layer that sets `key` (a higher one wins), or -1 when none does (the default). */
  rank(key: string): number;
  /** The rank of the `BUCKETLOAD_*` variables' layer: a plain variable such as `DATABASE_URL` ranks just below. */
  readonly envRank: number;
  /**
   * Refuses `key`'s value.
   *
   * @throws {UsageError} naming where `key` came from, what was expected and what it got
   */
  fail(key: string, expected: string, got: string): never;
}
