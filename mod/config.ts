/**
 * Configuration: an INI file of profiles (with a `[DEFAULT]` section every
 * profile inherits), overridden by `BUCKETLOAD_<KEY>` environment variables
 * and by flags. Parsing is pure; {@linkcode loadConfig} adds the file IO.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { type BucketLocation, parseBucketLocation, redactUrl } from "./source/location.ts";
import { awsEndpoint, type S3Credentials } from "./source/s3_options.ts";
import { awsCredentials } from "./source/s3_credentials.ts";

export { awsCredentialsFile } from "./source/s3_credentials.ts";
import { UsageError } from "./errors.ts";
import { IniSyntaxError, parseIni } from "./ini.ts";
import { compileStrftime } from "./strftime.ts";
import { CONFIG_KEYS } from "./config_keys.ts";
import { RECORD_TYPES } from "./records/mod.ts";

export { CONFIG_KEYS, type KeySpec } from "./config_keys.ts";

/** A resolved profile, ready for the pipeline. Paths are absolute. */
export interface Config {
  readonly profile: string;
  /** The config file, or `undefined` when running from the environment alone. */
  readonly configPath: string | undefined;
  /** Where relative paths resolve: the config file's folder, else the working directory. */
  readonly baseDir: string;
  /** The SQLite file (unused when `databaseUrl` is set). */
  readonly databasePath: string;
  /** The PostgreSQL URL, when the store is PostgreSQL. */
  readonly databaseUrl: string | undefined;
  /**
   * When more than one setting names a database (`DATABASE_NAME`, a `DATABASE_URL` key, the plain `DATABASE_URL`
   * variable): one line saying which one is used and how to choose the other, for every run to print.
   */
  readonly databaseNotice: string | undefined;
  /** How to reach an `s3://` bucket (unused for others). */
  readonly s3: {
    readonly endpoint: string;
    readonly region: string;
    readonly pathStyle: boolean;
    /** From `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`; none: unsigned requests. */
    readonly credentials: S3Credentials | undefined;
  };
  /** `KEY_PATTERN`: the glob listed S3 keys must match ("" for all). */
  readonly keyPattern: string;
  /** `CHANGE_DETECTION = etag`. */
  readonly changeDetection: boolean;
  /** `PRUNE_DELETED`. */
  readonly pruneDeleted: boolean;
  readonly bucket: BucketLocation;
  readonly filesListKey: string;
  readonly encoding: string;
  readonly dateStoreFormat: string;
  readonly processedFilesPath: string | undefined;
  /** The log folder when `SAVE_LOG` is on. */
  readonly logDir: string | undefined;
  readonly concurrency: number;
  readonly requestTimeoutMs: number;
  readonly retries: number;
  readonly retryBaseMs: number;
  /** The record types' own keys (e.g. `AWESOME_MIN_RATING`), by name. */
  readonly typeSettings: Readonly<Record<string, number>>;
  readonly lockTimeoutMs: number;
  /** Give up on a key missing in this many runs in a row; 0 never. */
  readonly missingGiveUpRuns: number;
  readonly worker: boolean;
  readonly loadMode: (typeof LOAD_MODES)[number];
  readonly maxFileBytes: number;
  readonly maxListBytes: number;
  readonly maxRejectedRawBytes: number;
  readonly streamThresholdBytes: number;
  readonly maxRecordBytes: number;
  readonly logLevel: (typeof LOG_LEVELS)[number];
  readonly logFormat: (typeof LOG_FORMATS)[number];
  /** `CLAIM_TIMEOUT_SECONDS` in ms. */
  readonly claimTimeoutMs: number;
  /** `INTEGRITY_CHECK_HOURS` in ms. */
  readonly integrityCheckMs: number;
  /** `STATUS_TOKEN`: what the status endpoint asks for; `undefined`: open. */
  readonly statusToken: string | undefined;
}

type Raw = Readonly<Record<string, string>>;

/** Log levels accepted by `LOG_LEVEL` and `--log-level`. */
export const LOG_LEVELS = ["debug", "info", "warning", "error"] as const;
/** Load modes accepted by `LOAD_MODE`. */
export const LOAD_MODES = ["auto", "staged", "direct"] as const;
/** Log formats accepted by `LOG_FORMAT` and `--log-format`. */
export const LOG_FORMATS = ["text", "json"] as const;

/** The prefix of environment overrides, e.g. `BUCKETLOAD_CONCURRENCY`. */
export const ENV_PREFIX = "BUCKETLOAD_";
/** Environment variables that choose the file and profile rather than a key. */
export const ENV_CHOOSERS: readonly string[] = [
  "BUCKETLOAD_CONFIG",
  "BUCKETLOAD_PROFILE",
  "BUCKETLOAD_CWD",
  // The Deno Deploy entry's cron schedule and address (deploy.ts).
  "BUCKETLOAD_SCHEDULE",
  "BUCKETLOAD_HOST",
  "BUCKETLOAD_PORT",
  // Print the stack trace of an unexpected error (masked).
  "BUCKETLOAD_TRACE",
  // Set by the launcher for its child: stop when the launcher is gone.
  "BUCKETLOAD_WATCH_PARENT",
];

/** Flags that set a key, by key (the rest are not settable by a flag). */
const FLAG_OF: Readonly<Record<string, string>> = {
  CONCURRENCY: "concurrency",
  LOG_LEVEL: "log-level",
  LOG_FORMAT: "log-format",
};

/** Sections of a config file: profile name → upper-cased key → value. */
export type Sections = ReadonlyMap<string, Raw>;

/**
 * Parses INI text into sections with configparser's rules (see `ini.ts`),
 * upper-casing keys as configparser folds them.
 *
 * @throws {UsageError} naming the file and line of a syntax error or a duplicate section or key
 */
export function parseConfigText(text: string, path: string): Sections {
  try {
    const sections = new Map<string, Raw>();
    for (const [name, keys] of parseIni(text)) {
      sections.set(name, Object.fromEntries([...keys].map(([k, v]) => [k.toUpperCase(), v])));
    }
    return sections;
  } catch (error) {
    if (!(error instanceof IniSyntaxError)) throw error;
    throw new UsageError(`Cannot parse ${path}: ${error.message}`, { subject: path, cause: error });
  }
}

/** Levenshtein distance, for "did you mean". */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length]!;
}

/** The known key closest to `key`. */
export function closestKey(key: string): string {
  return Object.keys(CONFIG_KEYS).reduce((best, k) => distance(key, k) < distance(key, best) ? k : best);
}

function checkKeys(raw: Raw, where: string) {
  for (const key of Object.keys(raw)) {
    if (!Object.hasOwn(CONFIG_KEYS, key)) {
      throw new UsageError(`Unknown key '${key}' in ${where}: did you mean '${closestKey(key)}'?`, { subject: key });
    }
  }
}

/** Options of {@linkcode resolveConfig}. */
export interface ResolveOptions {
  /** The parsed file, or `undefined` when there is none. */
  readonly sections?: Sections | undefined;
  /** The file's absolute path, for messages and relative paths. */
  readonly configPath?: string | undefined;
  /** @default {"default"} */
  readonly profile?: string | undefined;
  /** The environment, read for `BUCKETLOAD_<KEY>`. @default {{}} */
  readonly env?: Readonly<Record<string, string>>;
  /** Values from flags, by key; they win over everything. @default {{}} */
  readonly overrides?: Raw;
  /** Where relative paths resolve without a config file. @default {Deno.cwd()} */
  readonly cwd?: string;
}

/**
 * Merges built-in defaults < `[DEFAULT]` < profile < environment < flags and
 * checks every value.
 *
 * @throws {UsageError} naming the profile, key or value at fault
 */
export function resolveConfig(options: ResolveOptions): Config {
  const { configPath, profile = "default", env = {}, cwd = Deno.cwd() } = options;
  const r = new ValueReader(configLayers(options), configPath === undefined ? cwd : dirname(configPath));
  const where = options.sections === undefined ? "the environment" : `profile '${profile}'`;
  const bucket = bucketOf(r, where);
  return {
    profile,
    configPath,
    s3: s3Of(r, bucket, env),
    keyPattern: r.str("KEY_PATTERN").trim(),
    changeDetection: r.oneOf("CHANGE_DETECTION", ["etag", "none"] as const) === "etag",
    pruneDeleted: r.bool("PRUNE_DELETED"),
    baseDir: r.baseDir,
    databasePath: r.path("DATABASE_NAME") ?? r.fail("DATABASE_NAME", "a file path", ""),
    ...databaseOf(r, env),
    bucket,
    ...formatsOf(r),
    processedFilesPath: r.path("PROCESSED_FILES_FILENAME"),
    logDir: r.bool("SAVE_LOG") ? r.path("LOG_DIR") ?? resolve(r.baseDir, "logs") : undefined,
    concurrency: r.num("CONCURRENCY", { integer: true, min: 1, max: 1024 }),
    requestTimeoutMs: r.num("REQUEST_TIMEOUT_SECONDS", { min: 0.001, max: 86_400 }) * 1000,
    retries: r.num("RETRIES", { integer: true, max: 100 }),
    retryBaseMs: r.num("RETRY_BASE_SECONDS", { max: 3600 }) * 1000,
    typeSettings: typeSettingsOf(r),
    lockTimeoutMs: r.num("LOCK_TIMEOUT_SECONDS", { max: 86_400 }) * 1000,
    missingGiveUpRuns: r.num("MISSING_GIVE_UP_RUNS", { integer: true, max: 1_000_000 }),
    worker: r.bool("WORKER"),
    loadMode: r.oneOf("LOAD_MODE", LOAD_MODES),
    maxFileBytes: r.num("MAX_FILE_BYTES", { integer: true, min: 1 }),
    maxListBytes: r.num("MAX_LIST_BYTES", { integer: true, min: 1 }),
    maxRejectedRawBytes: r.num("MAX_REJECTED_RAW_BYTES", { integer: true, min: 64 }),
    streamThresholdBytes: r.num("STREAM_THRESHOLD_BYTES", { integer: true }),
    maxRecordBytes: r.num("MAX_RECORD_BYTES", { integer: true, min: 64 }),
    logLevel: r.oneOf("LOG_LEVEL", LOG_LEVELS),
    logFormat: r.oneOf("LOG_FORMAT", LOG_FORMATS),
    statusToken: r.str("STATUS_TOKEN").trim() || undefined,
    integrityCheckMs: r.num("INTEGRITY_CHECK_HOURS", { max: 100_000 }) * 3600 * 1000,
    claimTimeoutMs: r.num("CLAIM_TIMEOUT_SECONDS", { max: 86_400 }) * 1000,
  };
}

/** One source of values, lowest first: `[DEFAULT]`, the profile, the environment, the flags. */
interface Layer {
  readonly raw: Raw;
  /** The `BUCKETLOAD_*` variables' layer. */
  readonly env?: boolean;
  /** How an error names a key of this layer: the section, variable or flag at fault. */
  readonly where: (key: string) => string;
}

/**
 * The layers of `options`, each checked for unknown keys.
 *
 * @throws {UsageError} on an unknown profile, key or `BUCKETLOAD_*` variable
 */
function configLayers(options: ResolveOptions): Layer[] {
  const { sections, configPath, profile = "default", env = {}, overrides = {} } = options;
  const layers: Layer[] = [];
  if (sections !== undefined) {
    const defaults = sections.get("DEFAULT") ?? {};
    checkKeys(defaults, `[DEFAULT] of ${configPath}`);
    const own = sections.get(profile);
    if (own === undefined || profile === "DEFAULT") {
      const names = [...sections.keys()].filter((n) => n !== "DEFAULT");
      throw new UsageError(
        `Unknown profile '${profile}' in ${configPath}: expected one of ${names.join(", ") || "(none)"}`,
        { subject: "--profile" },
      );
    }
    checkKeys(own, `profile '${profile}' of ${configPath}`);
    layers.push(
      { raw: defaults, where: (key) => `'${key}' in [DEFAULT] of ${configPath}` },
      { raw: own, where: (key) => `'${key}' in profile '${profile}' of ${configPath}` },
    );
  }
  const fromEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || ENV_CHOOSERS.includes(name)) continue;
    const key = name.slice(ENV_PREFIX.length);
    if (!Object.hasOwn(CONFIG_KEYS, key)) {
      throw new UsageError(
        `Unknown environment variable '${name}': did you mean '${ENV_PREFIX}${closestKey(key)}'?`,
        { subject: name },
      );
    }
    fromEnv[key] = value;
  }
  layers.push(
    { raw: fromEnv, env: true, where: (key) => `environment variable ${ENV_PREFIX}${key}` },
    { raw: overrides, where: (key) => `--${FLAG_OF[key] ?? key.toLowerCase().replaceAll("_", "-")}` },
  );
  return layers;
}

/** Reads typed values from the layers, the highest that sets a key winning; errors name where a value came from. */
class ValueReader {
  readonly #layers: readonly Layer[];
  /** Where relative paths resolve. */
  readonly baseDir: string;

  constructor(layers: readonly Layer[], baseDir: string) {
    this.#layers = layers;
    this.baseDir = baseDir;
  }

  /** The layer that sets `key`, in words; the built-in default when none does. */
  source(key: string): string {
    const layer = this.#layers.findLast((l) => l.raw[key] !== undefined);
    return layer === undefined ? `'${key}' (built-in default)` : layer.where(key);
  }

  /** The rank of the highest layer that sets `key` (higher wins), or -1 when none does. */
  rank(key: string): number {
    return this.#layers.findLastIndex((l) => l.raw[key] !== undefined);
  }

  /** The rank of the `BUCKETLOAD_*` environment layer. */
  get envRank(): number {
    return this.#layers.findIndex((l) => l.env);
  }

  get(key: string): string | undefined {
    return this.#layers.findLast((l) => l.raw[key] !== undefined)?.raw[key] ?? CONFIG_KEYS[key]?.default;
  }

  /** @throws {UsageError} naming where `key` came from, what was expected and what it got */
  fail(key: string, expected: string, got: string): never {
    throw new UsageError(`Cannot parse ${this.source(key)}: expected ${expected}, got ${JSON.stringify(got)}`, {
      subject: key,
    });
  }

  str(key: string): string {
    return this.get(key) ?? "";
  }

  num(key: string, { integer = false, min = 0, max = Number.MAX_SAFE_INTEGER } = {}): number {
    const raw = this.str(key).trim();
    const n = Number(raw);
    const expected = `${integer ? "an integer" : "a number"} ${min}–${max}`;
    if (raw === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n)) || n < min || n > max) {
      return this.fail(key, expected, raw);
    }
    return n;
  }

  bool(key: string): boolean {
    const raw = this.str(key).trim().toLowerCase();
    if (["1", "yes", "true", "on"].includes(raw)) return true;
    if (["0", "no", "false", "off"].includes(raw)) return false;
    return this.fail(key, "yes/no, true/false, on/off or 1/0", raw);
  }

  oneOf<T extends string>(key: string, allowed: readonly T[]): T {
    const raw = this.str(key).trim().toLowerCase();
    return allowed.includes(raw as T) ? raw as T : this.fail(key, `one of ${allowed.join(", ")}`, raw);
  }

  /** A path resolved against {@linkcode baseDir}; `undefined` when empty. */
  path(key: string): string | undefined {
    const raw = this.str(key).trim();
    return raw === "" ? undefined : resolve(this.baseDir, raw);
  }
}

/** `BUCKET_NAME`, parsed. */
function bucketOf(r: ValueReader, where: string): BucketLocation {
  const raw = r.get("BUCKET_NAME");
  if (raw === undefined) {
    throw new UsageError(`Missing 'BUCKET_NAME' in ${where}: set it or ${ENV_PREFIX}BUCKET_NAME`, {
      subject: "BUCKET_NAME",
    });
  }
  try {
    return parseBucketLocation(raw, r.baseDir);
  } catch (error) {
    throw new UsageError(`Cannot parse ${r.source("BUCKET_NAME")}: ${(error as Error).message}`, {
      subject: "BUCKET_NAME",
    });
  }
}

/** The record types' own keys, each read with the bounds its type declares. */
function typeSettingsOf(r: ValueReader): Config["typeSettings"] {
  return Object.fromEntries(
    RECORD_TYPES.flatMap((t) => Object.entries(t.settings ?? {})).map(([key, spec]) => [key, r.num(key, spec)]),
  );
}

/** How objects are read: the list's key, the encoding, and the date format of `songs.ingestion_time`. */
function formatsOf(r: ValueReader): Pick<Config, "filesListKey" | "encoding" | "dateStoreFormat"> {
  const encoding = r.str("BUCKET_ENCODING").trim();
  try {
    new TextDecoder(encoding);
  } catch {
    r.fail("BUCKET_ENCODING", "a WHATWG encoding label such as utf-8", encoding);
  }
  const dateStoreFormat = r.str("DATE_STORE_FORMAT");
  try {
    compileStrftime(dateStoreFormat);
  } catch (error) {
    throw new UsageError(`Cannot parse ${r.source("DATE_STORE_FORMAT")}: ${(error as Error).message}`, {
      subject: "DATE_STORE_FORMAT",
    });
  }
  const filesListKey = r.str("FILES_LIST_KEY").trim();
  if (filesListKey === "") r.fail("FILES_LIST_KEY", "a key", filesListKey);
  return { filesListKey, encoding, dateStoreFormat };
}

/** How to reach an `s3://` bucket: endpoint, region, URL style and (for an S3 bucket only) credentials. */
function s3Of(r: ValueReader, bucket: BucketLocation, env: Readonly<Record<string, string>>): Config["s3"] {
  const region = r.str("S3_REGION").trim();
  if (!/^[a-z0-9-]+$/.test(region)) r.fail("S3_REGION", "a region such as us-east-1", region);
  const endpointRaw = r.str("S3_ENDPOINT").trim();
  if (endpointRaw !== "" && !/^https?:\/\/[^/]/i.test(endpointRaw)) {
    r.fail("S3_ENDPOINT", "an http(s):// URL", redactUrl(endpointRaw));
  }
  const pathStyle = r.oneOf("S3_PATH_STYLE", ["auto", "yes", "no", "true", "false", "1", "0", "on", "off"] as const);
  return {
    endpoint: endpointRaw === "" ? awsEndpoint(region) : endpointRaw,
    region,
    pathStyle: pathStyle === "auto" ? endpointRaw !== "" : ["yes", "true", "1", "on"].includes(pathStyle),
    // Only an S3 bucket needs them (and only then is a credentials file read).
    credentials: bucket.kind === "s3" ? awsCredentials(env) : undefined,
  };
}

/**
 * Which database: the setting of the highest layer wins, as for every key.
 * The URL is the `DATABASE_URL` key when set anywhere, else the plain
 * `DATABASE_URL` variable (as Deno Deploy and Heroku-style hosts set it),
 * which ranks as an environment variable just below the `BUCKETLOAD_*` ones.
 * An explicit `DATABASE_NAME` of a higher layer than the URL keeps SQLite; in
 * the same layer the URL wins. When both are set, {@linkcode Config.databaseNotice}
 * says which one is used and how to choose the other.
 */
function databaseOf(
  r: ValueReader,
  env: Readonly<Record<string, string>>,
): Pick<Config, "databaseUrl" | "databaseNotice"> {
  const key = r.get("DATABASE_URL")?.trim() || undefined;
  const plain = env.DATABASE_URL?.trim() || undefined;
  const keyWhere = r.source("DATABASE_URL");
  const url = key ?? plain;
  if (url === undefined) return { databaseUrl: undefined, databaseNotice: undefined };
  const urlWhere = key !== undefined ? keyWhere : "environment variable DATABASE_URL";
  const urlRank = key !== undefined ? r.rank("DATABASE_URL") : r.envRank - 0.5;
  const nameRank = r.rank("DATABASE_NAME");
  const notes: string[] = [];
  if (key !== undefined && plain !== undefined && plain !== key) {
    notes.push(`environment variable DATABASE_URL is set too and not used (${keyWhere} outranks it)`);
  }
  if (nameRank >= 0 && nameRank > urlRank) {
    const nameWhere = r.source("DATABASE_NAME");
    return {
      databaseUrl: undefined,
      databaseNotice: `Loading into SQLite (${nameWhere}), not PostgreSQL: ${urlWhere} is set too, and ${nameWhere} ` +
        `outranks it; to load into PostgreSQL, remove ${nameWhere}`,
    };
  }
  if (nameRank >= 0) {
    const nameWhere = r.source("DATABASE_NAME");
    const howToSqlite = key === undefined
      ? `unset DATABASE_URL for this command, or set ${ENV_PREFIX}DATABASE_NAME`
      : `remove ${keyWhere}`;
    notes.unshift(`${nameWhere} is set too, and ${urlWhere} outranks it; to load into SQLite, ${howToSqlite}`);
  }
  return {
    databaseUrl: checkDatabaseUrl(url, key === undefined ? "environment variable DATABASE_URL" : keyWhere),
    databaseNotice: notes.length === 0
      ? undefined
      : `Loading into PostgreSQL (${urlWhere}), not SQLite: ${notes.join("; ")}`,
  };
}

/** The URL checked to be a PostgreSQL URL that parses; an error names `where` and never shows the value. */
function checkDatabaseUrl(raw: string, where: string): string {
  // The value is never shown, not even redacted: a URL that does not parse may hold its password anywhere.
  const fail = (why: string): never => {
    throw new UsageError(
      `Cannot parse ${where}: ${why} ` +
        `(the value is not shown, as it may hold a password): write postgres://USER:PASSWORD@HOST:PORT/DATABASE, ` +
        `and percent-encode special characters in the user and password (# as %23, ; as %3B, @ as %40, ` +
        `/ as %2F, : as %3A, % as %25)`,
      { subject: "DATABASE_URL" },
    );
  };
  if (!/^postgres(ql)?:\/\//i.test(raw)) return fail("expected a postgres:// or postgresql:// URL");
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return fail("not a valid URL");
  }
  if (url.hash !== "") return fail("a '#' starts a fragment, which a database URL has none of");
  try {
    decodeURIComponent(url.username);
    decodeURIComponent(url.password);
  } catch {
    return fail("a '%' in the user or password is not followed by two hex digits");
  }
  return raw;
}

/** Options of {@linkcode loadConfig}. */
export interface LoadOptions extends Omit<ResolveOptions, "sections"> {
  /**
   * The config file. When it is `undefined` and `./config.ini` does not exist,
   * the profile comes from the environment alone.
   */
  readonly configPath?: string | undefined;
}

/** The default config file, relative to the working directory. */
export const DEFAULT_CONFIG_PATH = "config.ini";

/**
 * Reads the config file (if any) and resolves the profile.
 *
 * @throws {UsageError} when a named file is missing or unreadable, or any value is wrong
 */
export async function loadConfig(options: LoadOptions): Promise<Config> {
  const cwd = options.cwd ?? Deno.cwd();
  const explicit = options.configPath !== undefined;
  const path = resolve(cwd, options.configPath ?? DEFAULT_CONFIG_PATH);
  let text: string | undefined;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (explicit || !(error instanceof Deno.errors.NotFound)) {
      throw new UsageError(`Cannot read config file ${path}: ${(error as Error).message}`, {
        subject: "--config",
        cause: error,
      });
    }
  }
  if (text === undefined) {
    if (options.profile !== undefined) {
      throw new UsageError(
        `Profile '${options.profile}' was asked for, but there is no config file: ${path} does not exist ` +
          `(give --config PATH, or unset --profile/BUCKETLOAD_PROFILE to run from the environment alone)`,
        { subject: "--profile" },
      );
    }
    return resolveConfig({ ...options, configPath: undefined, cwd });
  }
  return resolveConfig({ ...options, sections: parseConfigText(text, path), configPath: path, cwd });
}
