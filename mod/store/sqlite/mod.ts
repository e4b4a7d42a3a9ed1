/**
 * The SQLite store: a database file holding the data tables and the
 * bookkeeping, one run at a time.
 *
 * @module
 */
export {
  DEFAULT_INTEGRITY_CHECK_MS,
  DEFAULT_RULES,
  SqliteStore,
  type SqliteStoreOptions,
  type TakeOverRules,
} from "./store.ts";
export { fileInfo } from "./files.ts";
export { type LoadMode, STAGE_ROWS, UPSERT_BATCH } from "./rows.ts";
