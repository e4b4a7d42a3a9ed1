/**
 * Every profile key: the core's own (below), and those each store, source
 * and record type declares with itself. `--help` lists them and
 * `docs/configuration.md` is generated from them (`deno task docs`; a test
 * fails when the page is stale). The config checks every key by its spec.
 *
 * @module
 */
import type { KeySpec, KeySpecs } from "../common/keys.ts";
import { RECORD_TYPES, type RecordType } from "../records/mod.ts";
import type { SourceKind } from "../source/kind.ts";
import { SOURCES } from "../source/sources.ts";
import type { StoreKind } from "../store/kind.ts";
import { STORES } from "../store/stores.ts";

export type { KeySpec, KeySpecs } from "../common/keys.ts";

/** The log levels `LOG_LEVEL` and `--log-level` take. */
export const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;
/** The log formats `LOG_FORMAT` and `--log-format` take. */
export const LOG_FORMATS = ["text", "json"] as const;

/** What the keys are gathered from: the stores, the sources and the record types. */
export interface Kinds {
  /** The store kinds (the program's: `STORES`). */
  // deno-lint-ignore no-explicit-any
  readonly stores: readonly StoreKind<any>[];
  /** The source kinds (the program's: `SOURCES`). */
  // deno-lint-ignore no-explicit-any
  readonly sources: readonly SourceKind<any>[];
  /** The record types (the program's: `RECORD_TYPES`). */
  readonly types: readonly RecordType[];
}

/** The program's own: `STORES`, `SOURCES`, `RECORD_TYPES`. */
export const KINDS: Kinds = { stores: STORES, sources: SOURCES, types: RECORD_TYPES };

/** `BUCKET_NAME`: where the files come from, in any of the sources' forms (each says its own). */
export function bucketNameSpec(sources: readonly SourceKind[]): KeySpec {
  return {
    default: undefined,
    help: sources.map((s) => s.bucketName.help).join(", "),
    shownDefault: "(required)",
    doc: `the bucket, in the form of one of the sources: ${sources.map((s) => s.bucketName.doc).join("; or ")}`,
  };
}

/** The core's keys but `BUCKET_NAME` ({@linkcode bucketNameSpec}): every profile has them, whichever store and source it uses. */
export const CORE_KEYS: KeySpecs = {
  FILES_LIST_KEY: {
    default: "files_list.data",
    help: "key of the file list; an S3 bucket without it is listed with ListObjectsV2",
    doc: "key of the file list",
    check: (value) => value === "" ? "a key" : undefined,
  },
  KEY_PATTERN: {
    default: "",
    help: "glob of the keys to load from an S3 listing, e.g. *.data or **/*.json",
    shownDefault: "(all)",
    doc:
      "with an S3 listing (no list file): the keys to load, a glob on the key under the prefix: `*` and `?` stay within a `/`-segment, `**` crosses them (`*.data`, `2021/**/*.json`, `**/*.ndjson.gz`)",
  },
  CHANGE_DETECTION: {
    default: "etag",
    help: "etag: with an S3 listing, re-load an object whose ETag or size changed (its rows replaced); none",
    doc:
      "with an S3 listing: `etag` re-loads an object whose ETag or size changed since it was loaded, replacing its rows; `none` loads each key once",
    oneOf: ["etag", "none"],
  },
  PRUNE_DELETED: {
    default: "no",
    help: "with an S3 listing, also delete the rows of objects gone from the bucket",
    doc:
      "with an S3 listing: `yes` also deletes the rows of objects gone from the bucket (they are marked `deleted` in the registry either way)",
    yesNo: true,
  },
  BUCKET_ENCODING: {
    default: "utf-8",
    help: "WHATWG encoding label of the objects",
    doc: "any WHATWG encoding label (`utf8`, `latin1`, ...); decoding is fatal on invalid bytes",
    check(value) {
      try {
        new TextDecoder(value);
        return undefined;
      } catch {
        return "a WHATWG encoding label such as utf-8";
      }
    },
  },
  DATE_STORE_FORMAT: {
    default: "%Y-%m-%d %H:%M:%S",
    help: "strftime format of songs.ingestion_time (UTC)",
    doc:
      "strftime directives for `songs.ingestion_time`, in UTC. Supported: `%a %A %b %B %d %e %f %F %H %I %j %m %M %p %s %S %T %u %w %y %Y %z %Z %%`; any other is a config error",
  },
  PROCESSED_FILES_FILENAME: {
    default: "",
    help: "JSON copy of the registry, written after each commit",
    shownDefault: "(none)",
    doc:
      "the original's `processed.json`. A run **imports** its keys (registered as loaded, not fetched) only when it takes over the original's database: the original's rows are there and the registry is empty. It reads the file only then, or at the database's first run (to say why its keys are not imported); a file that is not a JSON array of keys is then an error, exit 2. Otherwise its keys count for nothing: they are neither imported nor kept. After each commit the file holds exactly the registry's keys (loaded and invalid, deleted from the bucket or not), ordered by the run that last registered each, then by key, replaced atomically (a new file, then a rename): when it is the file bucketload last wrote (its length and last key as noted in `meta`) and the runs since only registered new keys, those are appended to a copy of it; otherwise it is written whole. Its folder is checked to be writable before the run (exit 2); a write failure after the commit is logged and does not fail the run",
  },
  SAVE_LOG: {
    default: "no",
    help: "also log to LOG_DIR/YYYY-MM-DD_HH-MM-SS.log",
    doc: "`yes`: also log to `LOG_DIR/YYYY-MM-DD_HH-MM-SS.log` (UTC). Accepts yes/no, true/false, on/off, 1/0",
    yesNo: true,
  },
  LOG_DIR: {
    default: "logs",
    help: "folder of saved logs",
    doc: "folder of saved logs, beside the config file by default",
  },
  LOG_KEEP_DAYS: {
    default: "30",
    help: "with SAVE_LOG, each run deletes the saved logs older than this many days; 0 keeps them",
    doc:
      "with `SAVE_LOG`: each run deletes the files of `LOG_DIR` named as a run's log (`YYYY-MM-DD_HH-MM-SS.log`, regular files only) whose name is more than this many days older than the run; no other file. `0` keeps every log. Whatever `status` and `replay` report is in the database, not in the logs ([retention](operating.md#retention))",
    number: { integer: true, max: 36_500 },
  },
  CONCURRENCY: {
    default: "8",
    help: "parallel object fetches",
    doc: "parallel object fetches (1–1024)",
    number: { integer: true, min: 1, max: 1024 },
  },
  REQUEST_TIMEOUT_SECONDS: {
    default: "30",
    help: "limit for one request, body included",
    doc: "limit for one attempt, body included; fractions allowed",
    number: { min: 0.001, max: 86_400 },
  },
  RETRIES: {
    default: "4",
    help: "retries after the first attempt",
    doc: "retries after the first attempt (so 5 attempts in all)",
    number: { integer: true, max: 100 },
  },
  RETRY_BASE_SECONDS: {
    default: "0.5",
    help: "first backoff delay, doubled each retry, with jitter",
    doc: "first backoff delay; doubles each retry, times a random factor 1–2, at most 60 s",
    number: { max: 3600 },
  },
  WORKER: {
    default: "yes",
    help: "fetch, parse and validate in a worker thread, on a second core",
    doc:
      "fetch, decode, parse and validate in a worker thread, so that the main thread only writes to the store; `no` does it all on the main thread (same results)",
    yesNo: true,
  },
  KEEP_EXTRA: {
    default: "yes",
    help: "keep the fields a record carries that its type does not know in the row's extra column (JSON text)",
    doc:
      "keep the fields a record carries that its type does not know (the ones drift names) in its row's `extra` column, as one JSON object's text; NULL when there are none. `no` stores NULL. Costs nothing on records without such fields; see [keeping what the type does not know](data.md#extra) for the size and time it adds",
    yesNo: true,
  },
  MISSING_GIVE_UP_RUNS: {
    default: "0",
    help: "register a key missing in this many runs in a row as invalid; 0 retries it forever",
    doc:
      "a key missing (403/404, no such file) in this many runs in a row is registered `invalid` with the reason `missing in N runs in a row … gave up`, and no longer fetched; `--retry-invalid` or `--key` tries it again. 0 retries it forever",
    number: { integer: true, max: 1_000_000 },
  },
  DRIFT_KEEP_RUNS: {
    default: "2880",
    help: "each commit keeps the drift rows of the last this many runs (2880: 30 days of 15-minute runs); 0 keeps all",
    shownDefault: "`2880` (30 days of 15-minute runs)",
    doc:
      "each commit deletes the drift rows (`run_drift`) of the runs before the last this many; `0` keeps them all. `status` and the status page show the last 30 runs' drift, so a bound is 30 or more ([retention](operating.md#retention))",
    number: { integer: true, max: 100_000_000 },
    check: (value) => Number(value) > 0 && Number(value) < 30 ? "0 (keep all) or at least 30" : undefined,
  },
  MAX_FILE_BYTES: {
    default: "536870912",
    help: "larger objects are invalid",
    shownDefault: "`536870912` (512 MiB)",
    doc:
      "a larger object is **invalid** (`too large: N bytes > cap`); reading stops as soon as the cap is passed, or at once when `Content-Length` exceeds it",
    number: { integer: true, min: 1 },
  },
  MAX_LIST_BYTES: {
    default: "67108864",
    help: "larger file lists fail the run",
    shownDefault: "`67108864` (64 MiB)",
    doc: "a larger file list fails the run (exit 1)",
    number: { integer: true, min: 1 },
  },
  STREAM_THRESHOLD_BYTES: {
    default: "33554432",
    help: "larger objects (or of unknown length) are parsed as they download",
    shownDefault: "`33554432` (32 MiB)",
    doc:
      "a larger object, or one without `Content-Length`, is parsed as it downloads (same rows and rejections as the buffered path; see Performance)",
    number: { integer: true },
  },
  MAX_RECORD_BYTES: {
    default: "1048576",
    help: "a longer record (characters of its JSON text) makes its file invalid, without holding it",
    shownDefault: "`1048576` (1 MiB)",
    doc:
      "a record whose JSON text is longer makes its file **invalid** (`record N is too large: …`), without being held whole",
    number: { integer: true, min: 64 },
  },
  MAX_REJECTED_RAW_BYTES: {
    default: "65536",
    help: "raw JSON kept per rejection",
    doc: "raw JSON kept per rejection; longer text is cut with a `…[truncated, N chars in all]` marker",
    number: { integer: true, min: 64 },
  },
  LOG_LEVEL: {
    default: "info",
    help: "debug, info, warning or error",
    doc: "`debug`, `info`, `warning`, `error`",
    oneOf: LOG_LEVELS,
  },
  LOG_FORMAT: {
    default: "text",
    help: "text or json (one JSON object per line)",
    doc: "`text` or `json`",
    oneOf: LOG_FORMATS,
  },
  STATUS_TOKEN: {
    default: "",
    help: "secret that the status page and API ask for (Authorization: Bearer, or the login form); unset: open",
    shownDefault: "(unset)",
    doc:
      "a secret the status page and API (`serve`, the Deploy entry) ask for: `Authorization: Bearer <token>` from a script, the login form at `/` from a browser (a session cookie, never the token); `?token=` is refused. Unset, they are open and a warning says so. Never logged",
  },
};

/** Keys declared together: the core's, a store's, a source's or a record type's. */
export interface KeyGroup {
  /** What declares them, for the docs: `Every profile`, `Store: SQLite (the default)`, `Record type: app`. */
  readonly title: string;
  /** The keys, by name. */
  readonly keys: KeySpecs;
}

/** The keys, grouped by what declares them: the core's first, then each store's, source's and record type's. */
export function keyGroups(kinds: Kinds = KINDS): KeyGroup[] {
  const groups: KeyGroup[] = [{
    title: "Every profile",
    keys: { BUCKET_NAME: bucketNameSpec(kinds.sources), ...CORE_KEYS },
  }];
  kinds.stores.forEach((s, i) =>
    groups.push({ title: `Store: ${s.title}${i === 0 ? " (the default)" : ""}`, keys: s.keys })
  );
  for (const s of kinds.sources) if (s.keys !== undefined) groups.push({ title: `Source: ${s.title}`, keys: s.keys });
  for (const t of kinds.types) {
    if (t.settings !== undefined) groups.push({ title: `Record type: ${t.type}`, keys: t.settings });
  }
  return groups.filter((g) => Object.keys(g.keys).length > 0);
}

/**
 * Every key, in the order `--help` and the docs list them.
 *
 * @throws {Error} when two groups declare the same key
 */
export function configKeys(kinds: Kinds = KINDS): KeySpecs {
  const all: Record<string, KeySpec> = {};
  const owner: Record<string, string> = {};
  for (const group of keyGroups(kinds)) {
    for (const [key, spec] of Object.entries(group.keys)) {
      if (Object.hasOwn(all, key)) throw new Error(`Key ${key} is declared twice: by ${owner[key]} and ${group.title}`);
      all[key] = spec;
      owner[key] = group.title;
    }
  }
  return all;
}

/** Every key of the program's own stores, sources and record types. */
export const CONFIG_KEYS: KeySpecs = configKeys();
