/**
 * Opens the store a config names: PostgreSQL when it has a `DATABASE_URL`,
 * else the SQLite file `DATABASE_NAME`.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { RECORD_TYPES } from "../records/mod.ts";
import { redactUrl } from "../source/location.ts";
import type { Store } from "./store.ts";

/** An open store and how to let it go. */
export interface OpenedStore {
  readonly store: Store;
  /**
   * Releases the store. A SQLite file this run created and left empty is
   * removed; returns whether it was.
   */
  close(): Promise<boolean>;
}

/** Where the config's store is, for messages (a URL without its password). */
export function storeDisplay(config: Config): string {
  return config.databaseUrl === undefined ? config.databasePath : redactUrl(config.databaseUrl);
}

/**
 * Opens the config's store for a run.
 *
 * @throws {UsageError} when it cannot be opened
 */
export async function openStore(config: Config): Promise<OpenedStore> {
  // Each store's module is loaded only when used: the Deno Deploy entry (PostgreSQL only) never loads node:sqlite,
  // and a SQLite run does not load the PostgreSQL client.
  if (config.databaseUrl !== undefined) {
    const { PostgresStore } = await import("./postgres/mod.ts");
    const store = await PostgresStore.open(config.databaseUrl, {
      types: RECORD_TYPES,
      claimTimeoutMs: config.claimTimeoutMs,
    });
    return { store, close: async () => (await store.close(), false) };
  }
  const { SqliteStore } = await import("./sqlite/mod.ts");
  const store = SqliteStore.open(config.databasePath, {
    types: RECORD_TYPES,
    lockTimeoutMs: config.lockTimeoutMs,
    loadMode: config.loadMode,
    rules: config.typeSettings,
    integrityCheckMs: config.integrityCheckMs,
  });
  return { store, close: () => Promise.resolve(store.closeAndTidy()) };
}

/**
 * Opens the config's store only to read (status, dry runs); `undefined` when
 * a SQLite file does not exist yet.
 */
export async function openStoreReadOnly(config: Config): Promise<Store | undefined> {
  if (config.databaseUrl !== undefined) {
    // Opening only connects: schema changes happen when a run begins.
    const { PostgresStore } = await import("./postgres/mod.ts");
    return await PostgresStore.open(config.databaseUrl, { types: RECORD_TYPES });
  }
  const { SqliteStore, fileInfo } = await import("./sqlite/mod.ts");
  if (fileInfo(config.databasePath) === undefined) return undefined;
  return SqliteStore.open(config.databasePath, { types: RECORD_TYPES, readOnly: true });
}
