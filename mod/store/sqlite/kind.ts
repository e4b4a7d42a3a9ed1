/**
 * The SQLite store's descriptor: the file `DATABASE_NAME`, the default
 * store, and its keys (`LOAD_MODE`, `LOCK_TIMEOUT_SECONDS`,
 * `INTEGRITY_CHECK_HOURS`). node:sqlite is loaded only to open it: the Deno
 * Deploy entry (PostgreSQL only) never loads it.
 *
 * @module
 */
import { dirname } from "node:path";
import type { OpenedStore, StoreKind, StoreSpec } from "../kind.ts";
import type { LoadMode } from "./rows.ts";

/** The load modes `LOAD_MODE` takes. */
export const LOAD_MODES = ["auto", "staged", "direct"] as const satisfies readonly LoadMode[];

/** A SQLite database file and how runs use it. */
export interface SqliteSpec extends StoreSpec {
  /** The kind's name. */
  readonly kind: "sqlite";
  /** The database file, absolute. */
  readonly path: string;
  /** `LOCK_TIMEOUT_SECONDS` in ms. */
  readonly lockTimeoutMs: number;
  /** `LOAD_MODE`: `auto`, `staged` or `direct`. */
  readonly loadMode: LoadMode;
  /** `INTEGRITY_CHECK_HOURS` in ms. */
  readonly integrityCheckMs: number;
}

/** SQLite: one file, one run at a time (`store.ts`). */
export const sqliteStore: StoreKind<SqliteSpec> = {
  name: "sqlite",
  title: "SQLite",
  key: "DATABASE_NAME",
  local: true,
  keys: {
    DATABASE_NAME: {
      default: "db.sqlite3",
      help: "SQLite database file",
      doc: "SQLite file; its folder is created if needed",
    },
    LOAD_MODE: {
      default: "auto",
      help: "auto, staged (merge rows in key order) or direct (upsert as they come); same tables",
      doc:
        "how rows reach the tables: `direct` upserts them as they come; `staged` writes them to an unconstrained temp table and merges them into the tables in key order (every 1,000,000 rows and at commit), keeping arrival order within a key; `auto` stages when the database is larger than the 64 MiB page cache at the start of the run. Same tables either way (property-tested)",
      oneOf: LOAD_MODES,
    },
    LOCK_TIMEOUT_SECONDS: {
      default: "0",
      help: "how long to wait for another run's lock",
      doc: "how long a run waits for another run on the same database; 0 fails at once",
      number: { max: 86_400 },
    },
    INTEGRITY_CHECK_HOURS: {
      default: "24",
      help:
        "SQLite: run PRAGMA quick_check in the first run with nothing to do once the last passed check is older than this; 0: at every run",
      doc:
        "SQLite: `PRAGMA quick_check` once the last passed check is older than this: by the first run that finds nothing to do, after its lock is released (a read that holds up no other run; one run a day pays ~40 ms per 23 MB); a run that loads checks, in its lock before it writes, only when no check passed for twice this. `0` checks at every run, in its lock. Damage is exit 2",
      number: { max: 100_000 },
    },
  },
  named(keys) {
    if (keys.rank("DATABASE_NAME") < 0) return undefined;
    const where = keys.source("DATABASE_NAME");
    return { rank: keys.rank("DATABASE_NAME"), where, drop: () => `remove ${where}` };
  },
  configure(keys) {
    const path = keys.path("DATABASE_NAME") ?? keys.fail("DATABASE_NAME", "a file path", "");
    return {
      kind: "sqlite",
      display: path,
      path,
      lockTimeoutMs: keys.num("LOCK_TIMEOUT_SECONDS") * 1000,
      loadMode: keys.oneOf("LOAD_MODE") as LoadMode,
      integrityCheckMs: keys.num("INTEGRITY_CHECK_HOURS") * 3600 * 1000,
    };
  },
  // The folder, not the file: SQLite creates its journal and the lock note beside it.
  needs: (spec) => ({ write: [dirname(spec.path)] }),
  async open(spec, { types, typeSettings, driftKeepRuns }): Promise<OpenedStore> {
    const { SqliteStore } = await import("./mod.ts");
    const store = SqliteStore.open(spec.path, {
      types,
      lockTimeoutMs: spec.lockTimeoutMs,
      loadMode: spec.loadMode,
      rules: typeSettings ?? {},
      integrityCheckMs: spec.integrityCheckMs,
      driftKeepRuns: driftKeepRuns ?? 0,
    });
    return { store, close: () => Promise.resolve(store.closeAndTidy()) };
  },
  async openReadOnly(spec, { types }) {
    const { SqliteStore, fileInfo } = await import("./mod.ts");
    if (fileInfo(spec.path) === undefined) return undefined;
    return SqliteStore.open(spec.path, { types, readOnly: true });
  },
};
