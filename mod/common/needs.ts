/**
 * What a source or a store needs the launcher to grant the child that runs
 * it: the paths it reads, the folders it writes, the hosts it reaches, the
 * variables it reads. Each kind says its own (`SourceKind.needs`,
 * `StoreKind.needs`), so that the launcher does not change for a new one.
 *
 * @module
 */

/** Permissions a source or a store needs. */
export interface Needs {
  /** Paths read. */
  readonly read?: readonly string[];
  /** Folders read, and written by a command that writes (a run, a replay); only read by the others. */
  readonly write?: readonly string[];
  /** `host:port` pairs. */
  readonly net?: readonly string[];
  /** Environment variables (a trailing `*` for a prefix, as `--allow-env` takes it). */
  readonly env?: readonly string[];
}
