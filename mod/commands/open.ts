/**
 * The config's store and source, opened through their kinds (the store's
 * driver and the source's client are loaded only now).
 *
 * @module
 */
import type { Config } from "../config/config.ts";
import { RECORD_TYPES } from "../records/mod.ts";
import type { BucketSource } from "../source/source.ts";
import type { OpenedStore } from "../store/kind.ts";
import type { Store } from "../store/store.ts";

/**
 * The config's store, opened for a run or a replay.
 *
 * @throws {UsageError} when it cannot be opened
 */
export function openStore(config: Config): Promise<OpenedStore> {
  return config.store.kind.open(config.store.spec, {
    types: RECORD_TYPES,
    typeSettings: config.typeSettings,
    driftKeepRuns: config.driftKeepRuns,
  });
}

/** The config's store, opened only to read (status, dry runs); `undefined` when it does not exist yet. */
export function openStoreReadOnly(config: Config): Promise<Store | undefined> {
  return config.store.kind.openReadOnly(config.store.spec, { types: RECORD_TYPES });
}

/** The config's source. */
export function openSource(config: Config): Promise<BucketSource> {
  return config.source.kind.open(config.source.spec);
}
