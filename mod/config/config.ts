/**
 * Configuration: an INI file of profiles (with a `[DEFAULT]` section every
 * profile inherits), overridden by `BUCKETLOAD_<KEY>` environment variables
 * and by flags. Every key is checked by its spec (`keys.ts`, and the specs
 * the stores, sources and record types declare); the store and the source
 * are chosen by their kinds (`STORES`, `SOURCES`). Parsing is pure;
 * {@linkcode loadConfig} adds the file IO.
 *
 * @module
 */
import { dirname, resolve } from "node:path";
import { UsageError } from "../common/errors.ts";
import { ENV_PREFIX, type KeyReader, type KeySpec, type KeySpecs } from "../common/keys.ts";
import { IniSyntaxError, parseIni } from "../common/ini.ts";
import { compileStrftime } from "../common/strftime.ts";
import type { ChosenSource, SourceKind } from "../source/kind.ts";
import { redactUrl, schemeOf } from "../source/location.ts";
import type { ChosenStore } from "../store/kind.ts";
import { chooseStore } from "../store/stores.ts";
import { CONFIG_KEYS, configKeys, KINDS, type Kinds, type LOG_FORMATS, type LOG_LEVELS } from "./keys.ts";

export { CONFIG_KEYS, keyGroups, type KeySpec, KINDS, type Kinds, LOG_FORMATS, LOG_LEVELS } from "./keys.ts";
export { ENV_PREFIX } from "../common/keys.ts";

/** A resolved profile, ready for the pipeline. Paths are absolute. */
export interface Config {
  /** The profile's name. */
  readonly profile: string;
  /** The config file, or `undefined` when running from the environment alone. */
  readonly configPath: string | undefined;
  /** Where relative paths resolve: the config file's folder, else the working directory. */
  readonly baseDir: string;
  /** The store the profile names (`DATABASE_NAME`, `DATABASE_URL`, …): its kind and spec, and a notice when more than one is named. */
  readonly store: ChosenStore;
  /** The source `BUCKET_NAME` names: its kind and its spec (which crosses to the worker). */
  readonly source: ChosenSource;
  /** `KEY_PATTERN`: the glob listed keys must match ("" for all). */
  readonly keyPattern: string;
  /** `CHANGE_DETECTION = etag`. */
  readonly changeDetection: boolean;
  /** `PRUNE_DELETED`. */
  readonly pruneDeleted: boolean;
  /** `FILES_LIST_KEY`: the list file's key. */
  readonly filesListKey: string;
  /** `BUCKET_ENCODING`: the objects' encoding (a WHATWG label). */
  readonly encoding: string;
  /** `DATE_STORE_FORMAT`: the strftime format of `songs.ingestion_time`. */
  readonly dateStoreFormat: string;
  /** `PROCESSED_FILES_FILENAME`: where the registry's JSON copy is written; `undefined` for none. */
  readonly processedFilesPath: string | undefined;
  /** The log folder when `SAVE_LOG` is on. */
  readonly logDir: string | undefined;
  /** `LOG_KEEP_DAYS`: saved logs older than this many days are deleted by each run; 0 keeps them. */
  readonly logKeepDays: number;
  /** `DRIFT_KEEP_RUNS`: each commit keeps the drift rows of the last this many runs; 0 keeps them all. */
  readonly driftKeepRuns: number;
  /** `CONCURRENCY`: parallel fetches. */
  readonly concurrency: number;
  /** The record types' own keys (e.g. `AWESOME_MIN_RATING`), by name. */
  readonly typeSettings: Readonly<Record<string, number>>;
  /** Give up on a key missing in this many runs in a row; 0 never. */
  readonly missingGiveUpRuns: number;
  /** `WORKER`: files are fetched, parsed and validated in a worker thread. */
  readonly worker: boolean;
  /** `KEEP_EXTRA`: the fields a record's type does not know are kept in its row's `extra`. */
  readonly keepExtra: boolean;
  /** `MAX_FILE_BYTES`: a larger object is invalid. */
  readonly maxFileBytes: number;
  /** `MAX_LIST_BYTES`: a larger list fails the run. */
  readonly maxListBytes: number;
  /** `MAX_REJECTED_RAW_BYTES`: raw JSON kept per rejection. */
  readonly maxRejectedRawBytes: number;
  /** `STREAM_THRESHOLD_BYTES`: a larger object (or one of unknown length) is parsed as it downloads. */
  readonly streamThresholdBytes: number;
  /** `MAX_RECORD_BYTES`: a longer record makes its file invalid. */
  readonly maxRecordBytes: number;
  /** `LOG_LEVEL`: the lowest level logged. */
  readonly logLevel: (typeof LOG_LEVELS)[number];
  /** `LOG_FORMAT`: text lines or JSON lines. */
  readonly logFormat: (typeof LOG_FORMATS)[number];
  /** `STATUS_TOKEN`: what the status endpoint asks for; `undefined`: open. */
  readonly statusToken: string | undefined;
}

/** Values as text, by key. */
export type Raw = Readonly<Record<string, string>>;

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
export function closestKey(key: string, keys: KeySpecs = CONFIG_KEYS): string {
  return Object.keys(keys).reduce((best, k) => distance(key, k) < distance(key, best) ? k : best);
}

/** Options of {@linkcode resolveConfig}. */
export interface ResolveOptions {
  /** The parsed file, or `undefined` when there is none. */
  readonly sections?: Sections | undefined;
  /** The file's absolute path, for messages and relative paths. */
  readonly configPath?: string | undefined;
  /** The profile to resolve. @default {"default"} */
  readonly profile?: string | undefined;
  /** The environment, read for `BUCKETLOAD_<KEY>` and the stores' and sources' variables. @default {{}} */
  readonly env?: Readonly<Record<string, string>>;
  /** Values from flags, by key; they win over everything. @default {{}} */
  readonly overrides?: Raw;
  /** Where relative paths resolve without a config file. @default {Deno.cwd()} */
  readonly cwd?: string;
  /** The stores, sources and record types whose keys are read and which may be chosen. @default {KINDS} */
  readonly kinds?: Kinds | undefined;
}

/**
 * Merges built-in defaults < `[DEFAULT]` < profile < environment < flags,
 * checks every value by its key's spec, and chooses the store and the source.
 *
 * @throws {UsageError} naming the profile, key or value at fault
 */
export function resolveConfig(options: ResolveOptions): Config {
  const { configPath, profile = "default", env = {}, cwd = Deno.cwd(), kinds = KINDS } = options;
  const keys = kinds === KINDS ? CONFIG_KEYS : configKeys(kinds);
  const r = new ValueReader(configLayers(options, keys), configPath === undefined ? cwd : dirname(configPath), keys);
  // Every key, whichever store and source it belongs to: a typo in a value is never left for later.
  for (const key of Object.keys(keys)) r.check(key);
  const where = options.sections === undefined ? "the environment" : `profile '${profile}'`;
  return {
    profile,
    configPath,
    baseDir: r.baseDir,
    store: chooseStore(kinds.stores, r, env),
    source: sourceOf(kinds.sources, r, where, env),
    keyPattern: r.str("KEY_PATTERN").trim(),
    changeDetection: r.oneOf("CHANGE_DETECTION") === "etag",
    pruneDeleted: r.bool("PRUNE_DELETED"),
    ...formatsOf(r),
    processedFilesPath: r.path("PROCESSED_FILES_FILENAME"),
    logDir: r.bool("SAVE_LOG") ? r.path("LOG_DIR") ?? resolve(r.baseDir, "logs") : undefined,
    logKeepDays: r.num("LOG_KEEP_DAYS"),
    driftKeepRuns: r.num("DRIFT_KEEP_RUNS"),
    concurrency: r.num("CONCURRENCY"),
    typeSettings: Object.fromEntries(
      kinds.types.flatMap((t) => Object.keys(t.settings ?? {})).map((key) => [key, r.num(key)]),
    ),
    missingGiveUpRuns: r.num("MISSING_GIVE_UP_RUNS"),
    worker: r.bool("WORKER"),
    keepExtra: r.bool("KEEP_EXTRA"),
    maxFileBytes: r.num("MAX_FILE_BYTES"),
    maxListBytes: r.num("MAX_LIST_BYTES"),
    maxRejectedRawBytes: r.num("MAX_REJECTED_RAW_BYTES"),
    streamThresholdBytes: r.num("STREAM_THRESHOLD_BYTES"),
    maxRecordBytes: r.num("MAX_RECORD_BYTES"),
    logLevel: r.oneOf("LOG_LEVEL") as Config["logLevel"],
    logFormat: r.oneOf("LOG_FORMAT") as Config["logFormat"],
    statusToken: r.str("STATUS_TOKEN").trim() || undefined,
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
function configLayers(options: ResolveOptions, keys: KeySpecs): Layer[] {
  const { sections, configPath, profile = "default", env = {}, overrides = {} } = options;
  const checkKeys = (raw: Raw, where: string) => {
    for (const key of Object.keys(raw)) {
      if (!Object.hasOwn(keys, key)) {
        throw new UsageError(`Unknown key '${key}' in ${where}: did you mean '${closestKey(key, keys)}'?`, {
          subject: key,
        });
      }
    }
  };
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
    if (!Object.hasOwn(keys, key)) {
      throw new UsageError(
        `Unknown environment variable '${name}': did you mean '${ENV_PREFIX}${closestKey(key, keys)}'?`,
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

/** Reads typed values from the layers, the highest that sets a key winning, each checked by its key's spec. */
class ValueReader implements KeyReader {
  readonly #layers: readonly Layer[];
  readonly #keys: KeySpecs;
  readonly baseDir: string;

  constructor(layers: readonly Layer[], baseDir: string, keys: KeySpecs) {
    this.#layers = layers;
    this.baseDir = baseDir;
    this.#keys = keys;
  }

  source(key: string): string {
    const layer = this.#layers.findLast((l) => l.raw[key] !== undefined);
    return layer === undefined ? `'${key}' (built-in default)` : layer.where(key);
  }

  rank(key: string): number {
    return this.#layers.findLastIndex((l) => l.raw[key] !== undefined);
  }

  get envRank(): number {
    return this.#layers.findIndex((l) => l.env);
  }

  get(key: string): string | undefined {
    return this.#layers.findLast((l) => l.raw[key] !== undefined)?.raw[key] ?? this.#keys[key]?.default;
  }

  fail(key: string, expected: string, got: string): never {
    throw new UsageError(`Cannot parse ${this.source(key)}: expected ${expected}, got ${JSON.stringify(got)}`, {
      subject: key,
    });
  }

  #spec(key: string): KeySpec {
    const spec = this.#keys[key];
    if (spec === undefined) throw new Error(`No spec for key ${key}`);
    return spec;
  }

  /** Checks the value of `key` by every rule of its spec. */
  check(key: string): void {
    const spec = this.#spec(key);
    if (spec.number !== undefined) this.num(key);
    if (spec.oneOf !== undefined) this.oneOf(key);
    if (spec.yesNo) this.bool(key);
    const value = this.str(key).trim();
    const expected = spec.check?.(value);
    // A value that breaks a rule may be a URL: its credentials are not echoed.
    if (expected !== undefined) this.fail(key, expected, redactUrl(value));
  }

  str(key: string): string {
    return this.get(key) ?? "";
  }

  num(key: string): number {
    const { integer = false, min = 0, max = Number.MAX_SAFE_INTEGER } = this.#spec(key).number ?? {};
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

  oneOf(key: string): string {
    const allowed = this.#spec(key).oneOf ?? [];
    const raw = this.str(key).trim().toLowerCase();
    return allowed.includes(raw) ? raw : this.fail(key, `one of ${allowed.join(", ")}`, raw);
  }

  path(key: string): string | undefined {
    const raw = this.str(key).trim();
    return raw === "" ? undefined : resolve(this.baseDir, raw);
  }
}

/**
 * The source `BUCKET_NAME` names: offered to each kind of `sources` in turn,
 * the first that takes it is used.
 *
 * @throws {UsageError} naming `BUCKET_NAME`'s setting when it is missing, malformed, or no kind takes it
 */
function sourceOf(
  sources: readonly SourceKind[],
  r: ValueReader,
  where: string,
  env: Readonly<Record<string, string>>,
): ChosenSource {
  const raw = r.get("BUCKET_NAME");
  if (raw === undefined) {
    throw new UsageError(`Missing 'BUCKET_NAME' in ${where}: set it or ${ENV_PREFIX}BUCKET_NAME`, {
      subject: "BUCKET_NAME",
    });
  }
  const value = raw.trim();
  const fetch = {
    timeoutMs: r.num("REQUEST_TIMEOUT_SECONDS") * 1000,
    retries: r.num("RETRIES"),
    retryBaseMs: r.num("RETRY_BASE_SECONDS") * 1000,
  };
  try {
    if (value === "") throw new RangeError("expected a host, URL or folder, got an empty value");
    for (const kind of sources) {
      const spec = kind.configure(value, { keys: r, baseDir: r.baseDir, env, fetch });
      if (spec !== undefined) return { kind, spec };
    }
    throw new RangeError(
      `unsupported scheme '${schemeOf(value) ?? value}:', expected ${sources.map((s) => s.forms).join(", ")}`,
    );
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new UsageError(`Cannot parse ${r.source("BUCKET_NAME")}: ${error.message}`, { subject: "BUCKET_NAME" });
  }
}

/** How objects are read: the list's key, the encoding, and the date format of `songs.ingestion_time`. */
function formatsOf(r: ValueReader): Pick<Config, "filesListKey" | "encoding" | "dateStoreFormat"> {
  const dateStoreFormat = r.str("DATE_STORE_FORMAT");
  try {
    compileStrftime(dateStoreFormat);
  } catch (error) {
    throw new UsageError(`Cannot parse ${r.source("DATE_STORE_FORMAT")}: ${(error as Error).message}`, {
      subject: "DATE_STORE_FORMAT",
    });
  }
  return { filesListKey: r.str("FILES_LIST_KEY").trim(), encoding: r.str("BUCKET_ENCODING").trim(), dateStoreFormat };
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
    // Under the launcher, a default ./config.ini the program may not read is one the launcher did not find (it grants
    // read access to the config file it resolved): the folder the command ran in, e.g. / or $HOME from cron.
    const absent = error instanceof Deno.errors.NotFound ||
      (error instanceof Deno.errors.NotCapable && underLauncher());
    if (explicit || !absent) {
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

/** Whether this program was started by the launcher (`deno task run`, the installed command). */
function underLauncher(): boolean {
  try {
    return Deno.env.get("BUCKETLOAD_WATCH_PARENT") !== undefined;
  } catch {
    return false;
  }
}
