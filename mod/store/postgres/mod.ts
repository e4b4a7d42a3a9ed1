/**
 * The PostgreSQL store: one database shared by any number of runs, which
 * claim keys and merge their rows at commit.
 *
 * @module
 */
export { DEFAULT_CLAIM_TIMEOUT_MS, PostgresStore, type PostgresStoreOptions, postgresTableSql } from "./store.ts";
