/**
 * A kind of store (SQLite, PostgreSQL) as one descriptor, the way a record
 * type is one `RecordType`: how the configuration names it, its own profile
 * keys, what it needs granted, and how it is opened. `STORES` (`stores.ts`)
 * lists them; the config, the launcher, `--help` and the docs loop over that
 * list, and the commands open the store the config chose through its kind.
 *
 * @module
 */
import type { KeyReader, KeySpecs } from "../common/keys.ts";
import type { Needs } from "../common/needs.ts";
import type { RecordType } from "../records/mod.ts";
import type { Store } from "./store.ts";

/** A configured store, described in plain data. */
export interface StoreSpec {
  /** The kind's {@linkcode StoreKind.name}. */
  readonly kind: string;
  /** Where the store is, for messages (a URL without its password). */
  readonly display: string;
}

/** What a store is opened with besides its spec. */
export interface StoreContext {
  /** The record types whose tables it holds. */
  readonly types: readonly RecordType[];
  /** The record types' settings (`AWESOME_*`), by key: a take-over re-derives the original's rows with them. */
  readonly typeSettings?: Readonly<Record<string, number>> | undefined;
  /** `DRIFT_KEEP_RUNS`: each commit keeps the drift rows of the last this many runs; 0 (the default) keeps all. */
  readonly driftKeepRuns?: number | undefined;
}

/** An open store and how to let it go. */
export interface OpenedStore {
  /** The store. */
  readonly store: Store;
  /** Releases the store; returns whether it removed a database file that this run created and left empty. */
  close(): Promise<boolean>;
}

/** How the configuration names a store: the setting that does, ranked as its layer. */
export interface StoreNaming {
  /**
   * The rank of the layer whose setting names it (`KeyReader.rank`; a plain
   * variable ranks between two layers). The highest wins; in the same layer a
   * store other than the default wins.
   */
  readonly rank: number;
  /** The setting, in words: `'DATABASE_URL' in profile 'p' of FILE`, `environment variable DATABASE_URL`. */
  readonly where: string;
  /** How to stop naming it, so that `other` is used: `remove …`. */
  readonly drop: (other: StoreKind) => string;
  /** What else to say when it is used: a second setting of it that is not used. */
  readonly notes?: readonly string[];
}

/** One kind of store. */
export interface StoreKind<Spec extends StoreSpec = StoreSpec> {
  /** Its name, the spec's `kind` and the telemetry attribute `bucketload.store`: `sqlite`, `postgres`. */
  readonly name: string;
  /** How messages name it: `SQLite`, `PostgreSQL`. */
  readonly title: string;
  /** The key whose setting names it (`DATABASE_NAME`, `DATABASE_URL`): messages name it as the key at fault. */
  readonly key: string;
  /** Its own profile keys, with default, bounds and doc (they join `CONFIG_KEYS`). */
  readonly keys: KeySpecs;
  /**
   * Plain environment variables (besides `BUCKETLOAD_*`) that name it
   * (`DATABASE_URL`): read wherever the config is, and granted to every child
   * of the launcher, which chooses the store again.
   */
  readonly variables?: readonly string[];
  /** Keeps its data in local files: the Deno Deploy entry, which has no persistent disk, refuses it. */
  readonly local: boolean;
  /**
   * The setting that names it, or `undefined` when none does. The first kind
   * of `STORES` is the default: used when no kind is named.
   */
  named(keys: KeyReader, env: Readonly<Record<string, string>>): StoreNaming | undefined;
  /**
   * Its spec, from its keys, once it is chosen.
   *
   * @throws {UsageError} for a bad value, named with its setting
   */
  configure(keys: KeyReader, env: Readonly<Record<string, string>>): Spec;
  /** What the launcher grants the child for this store; `env` is the environment. */
  needs(spec: Spec, env: Readonly<Record<string, string>>): Needs;
  /**
   * Opens it for a run (its driver loaded only now).
   *
   * @throws {UsageError} when it cannot be opened
   */
  open(spec: Spec, context: StoreContext): Promise<OpenedStore>;
  /** Opens it only to read (status, dry runs); `undefined` when it does not exist yet. */
  openReadOnly(spec: Spec, context: StoreContext): Promise<Store | undefined>;
}

/** A store the config chose: its kind, the spec the kind made, and the line that says why when more than one was named. */
export interface ChosenStore {
  /** The chosen store's kind. */
  // deno-lint-ignore no-explicit-any
  readonly kind: StoreKind<any>;
  /** The spec its kind made from the config. */
  readonly spec: StoreSpec;
  /**
   * When more than one setting names a store: one line saying which one is
   * used and how to choose the other, for every command to print.
   */
  readonly notice: string | undefined;
}
