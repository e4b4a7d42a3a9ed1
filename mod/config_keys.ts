/**
 * Every profile key: its built-in default, a line for `--help`, and its
 * documentation. `docs/configuration.md` is generated from this table
 * (`deno task docs`), and a test fails when the page is stale.
 *
 * @module
 */
import { RECORD_TYPES } from "./records/mod.ts";
import { S3_KEYS } from "./source/s3_options.ts";

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
}

/** Every profile key, in the order the docs and `--help` list them. */
export const CONFIG_KEYS: Readonly<Record<string, KeySpec>> = {
  DATABASE_NAME: {
    default: "db.sqlite3",
    help: "SQLite database file",
    doc: "SQLite file; its folder is created if needed",
  },
  DATABASE_URL: {
    default: undefined,
    help: "postgres:// URL: use PostgreSQL instead of DATABASE_NAME (also read from plain DATABASE_URL)",
    shownDefault: "(none)",
    doc:
      'a `postgres://` or `postgresql://` URL: load into **PostgreSQL** instead of SQLite (see "PostgreSQL and several workers"). Parts the URL leaves out come from `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, as libpq\'s do (`postgres://` alone takes them all from there). The plain `DATABASE_URL` variable (as Deno Deploy and Heroku-style hosts set it) is read too, ranked between the profile and the `BUCKETLOAD_*` variables: it beats a `DATABASE_NAME` in the file, and `BUCKETLOAD_DATABASE_NAME` beats it. When both are set, each command says in one line which one it used (see "PostgreSQL and several workers"). The password is never logged',
  },
  BUCKET_NAME: {
    default: undefined,
    help: "host, http(s) URL with optional prefix, s3://bucket[/prefix], file: URL or folder",
    shownDefault: "(required)",
    doc:
      'a bare host (`data-engineering-interns.macpaw.io` → `http://HOST/`), an `http(s)://host[:port][/prefix]` URL, a `file:` URL, a folder path (starting with `.`, `/` or `~`, or containing `/`), or `s3://bucket[/prefix]` (the S3 API; see "S3 buckets"). Credentials in the URL (`https://user:pass@host`) are sent as HTTP Basic auth and never logged or stored',
  },
  FILES_LIST_KEY: {
    default: "files_list.data",
    help: "key of the file list; an S3 bucket without it is listed with ListObjectsV2",
    doc: "key of the file list",
  },
  // The S3 source's keys, declared with it.
  ...S3_KEYS,
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
  },
  PRUNE_DELETED: {
    default: "no",
    help: "with an S3 listing, also delete the rows of objects gone from the bucket",
    doc:
      "with an S3 listing: `yes` also deletes the rows of objects gone from the bucket (they are marked `deleted` in the registry either way)",
  },
  BUCKET_ENCODING: {
    default: "utf-8",
    help: "WHATWG encoding label of the objects",
    doc: "any WHATWG encoding label (`utf8`, `latin1`, ...); decoding is fatal on invalid bytes",
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
      "the original's `processed.json`. Each run reads it first (a file that is not a JSON array of keys is an error, exit 2), but **imports** its keys (registered as loaded, not fetched) only when it takes over the original's database: the original's rows are there and the registry is empty. Otherwise its keys count for nothing: they are neither imported nor kept. After each commit the file is rewritten, atomically, with exactly the registry's keys (loaded and invalid, deleted from the bucket or not), ordered by the run that last registered each, then by key. Its folder is checked to be writable before the run (exit 2); a write failure after the commit is logged and does not fail the run",
  },
  SAVE_LOG: {
    default: "no",
    help: "also log to LOG_DIR/YYYY-MM-DD_HH-MM-SS.log",
    doc: "`yes`: also log to `LOG_DIR/YYYY-MM-DD_HH-MM-SS.log` (UTC). Accepts yes/no, true/false, on/off, 1/0",
  },
  LOG_DIR: {
    default: "logs",
    help: "folder of saved logs",
    doc: "folder of saved logs, beside the config file by default",
  },
  CONCURRENCY: {
    default: "8",
    help: "parallel object fetches",
    doc: "parallel object fetches (1–1024)",
  },
  REQUEST_TIMEOUT_SECONDS: {
    default: "30",
    help: "limit for one request, body included",
    doc: "limit for one attempt, body included; fractions allowed",
  },
  RETRIES: {
    default: "4",
    help: "retries after the first attempt",
    doc: "retries after the first attempt (so 5 attempts in all)",
  },
  RETRY_BASE_SECONDS: {
    default: "0.5",
    help: "first backoff delay, doubled each retry, with jitter",
    doc: "first backoff delay; doubles each retry, times a random factor 1–2, at most 60 s",
  },
  // The record types' own keys (AWESOME_* are the app type's), declared with each type.
  ...Object.fromEntries(RECORD_TYPES.flatMap((t) => Object.entries(t.settings ?? {}))),
  WORKER: {
    default: "yes",
    help: "fetch, parse and validate in a worker thread, on a second core",
    doc:
      "fetch, decode, parse and validate in a worker thread, so that the main thread only writes to SQLite; `no` does it all on the main thread (same results)",
  },
  LOAD_MODE: {
    default: "auto",
    help: "auto, staged (merge rows in key order) or direct (upsert as they come); same tables",
    doc:
      "how rows reach the tables: `direct` upserts them as they come; `staged` writes them to an unconstrained temp table and merges them into the tables in key order (every 1,000,000 rows and at commit), keeping arrival order within a key; `auto` stages when the database is larger than the 64 MiB page cache at the start of the run. Same tables either way (property-tested)",
  },
  LOCK_TIMEOUT_SECONDS: {
    default: "0",
    help: "how long to wait for another run's lock",
    doc: "how long a run waits for another run on the same database; 0 fails at once",
  },
  MISSING_GIVE_UP_RUNS: {
    default: "0",
    help: "register a key missing in this many runs in a row as invalid; 0 retries it forever",
    doc:
      "a key missing (403/404, no such file) in this many runs in a row is registered `invalid` with the reason `missing in N runs in a row … gave up`, and no longer fetched; `--retry-invalid` or `--key` tries it again. 0 retries it forever",
  },
  MAX_FILE_BYTES: {
    default: "536870912",
    help: "larger objects are invalid",
    shownDefault: "`536870912` (512 MiB)",
    doc:
      "a larger object is **invalid** (`too large: N bytes > cap`); reading stops as soon as the cap is passed, or at once when `Content-Length` exceeds it",
  },
  MAX_LIST_BYTES: {
    default: "67108864",
    help: "larger file lists fail the run",
    shownDefault: "`67108864` (64 MiB)",
    doc: "a larger file list fails the run (exit 1)",
  },
  STREAM_THRESHOLD_BYTES: {
    default: "33554432",
    help: "larger objects (or of unknown length) are parsed as they download",
    shownDefault: "`33554432` (32 MiB)",
    doc:
      "a larger object, or one without `Content-Length`, is parsed as it downloads (same rows and rejections as the buffered path; see Performance)",
  },
  MAX_RECORD_BYTES: {
    default: "1048576",
    help: "a longer record (characters of its JSON text) makes its file invalid, without holding it",
    shownDefault: "`1048576` (1 MiB)",
    doc:
      "a record whose JSON text is longer makes its file **invalid** (`record N is too large: …`), without being held whole",
  },
  MAX_REJECTED_RAW_BYTES: {
    default: "65536",
    help: "raw JSON kept per rejection",
    doc: "raw JSON kept per rejection; longer text is cut with a `…[truncated, N chars in all]` marker",
  },
  LOG_LEVEL: {
    default: "info",
    help: "debug, info, warning or error",
    doc: "`debug`, `info`, `warning`, `error`",
  },
  LOG_FORMAT: {
    default: "text",
    help: "text or json (one JSON object per line)",
    doc: "`text` or `json`",
  },
  CLAIM_TIMEOUT_SECONDS: {
    default: "60",
    help: "PostgreSQL: a run silent this long (frozen, killed) loses its claimed keys to other runs; 0 never",
    doc:
      "PostgreSQL: a run silent this long (frozen, killed, its machine gone) is ended by the server and loses its claimed keys to other runs; a live run sends a heartbeat every third of it; `0` never",
  },
  INTEGRITY_CHECK_HOURS: {
    default: "24",
    help: "SQLite: run PRAGMA quick_check when the last passed check is older than this; 0: at every run",
    doc:
      "SQLite: `PRAGMA quick_check` when the last passed check is older than this (one run a day pays ~50 ms per 23 MB); `0` at every run; damage is exit 2",
  },
  STATUS_TOKEN: {
    default: "",
    help: "secret that the status page and API ask for (Authorization: Bearer, or the login form); unset: open",
    shownDefault: "(unset)",
    doc:
      "a secret the status page and API (`serve`, the Deploy entry) ask for: `Authorization: Bearer <token>` from a script, the login form at `/` from a browser (a session cookie, never the token); `?token=` is refused. Unset, they are open and a warning says so. Never logged",
  },
};
