/**
 * A kind of source (an HTTP bucket, a folder, an S3 bucket) as one
 * descriptor, the way a record type is one `RecordType`: how it
 * recognises `BUCKET_NAME`, its own profile keys, what it needs granted, and
 * how it is built. `SOURCES` (`sources.ts`) lists them; the config, the
 * launcher, `--help`, the docs and the worker loop over that list.
 *
 * @module
 */
import type { KeyReader, KeySpecs } from "../common/keys.ts";
import type { Needs } from "../common/needs.ts";
import type { BucketSource } from "./source.ts";

/**
 * A configured source, described in plain data: it crosses to the worker
 * (structured-cloneable), which builds its own source from it.
 */
export interface SourceSpec {
  /** The kind's {@linkcode SourceKind.name}. */
  readonly kind: string;
  /** Where the bucket is, safe to log (no credentials). */
  readonly display: string;
}

/** What every network source takes from the core's keys (`REQUEST_TIMEOUT_SECONDS`, `RETRIES`, `RETRY_BASE_SECONDS`). */
export interface FetchSettings {
  /** `REQUEST_TIMEOUT_SECONDS`, in milliseconds: the limit for one attempt, body included. */
  readonly timeoutMs: number;
  /** `RETRIES`: retries after the first attempt. */
  readonly retries: number;
  /** `RETRY_BASE_SECONDS`, in milliseconds: the first backoff delay. */
  readonly retryBaseMs: number;
}

/** What a kind is given to configure a source. */
export interface SourceContext {
  /** Reads the kind's keys (and any other), each checked by its spec. */
  readonly keys: KeyReader;
  /** Where a relative folder resolves: the config file's folder, else the working directory. */
  readonly baseDir: string;
  /** The environment (for the kind's {@linkcode SourceKind.variables}). */
  readonly env: Readonly<Record<string, string>>;
  /** The core's fetch settings, for a network source. */
  readonly fetch: FetchSettings;
}

/** One kind of source. */
export interface SourceKind<Spec extends SourceSpec = SourceSpec> {
  /** Its name, the spec's `kind`: `http`, `file`, `s3`. */
  readonly name: string;
  /** How the docs name it: `S3`. */
  readonly title: string;
  /**
   * The `BUCKET_NAME` forms it takes, as the message for a value no kind takes
   * lists them: `s3:`, `file: or a folder path`.
   */
  readonly forms: string;
  /** Its forms as `BUCKET_NAME`'s `--help` line and doc say them (they are joined in `SOURCES` order). */
  readonly bucketName: { readonly help: string; readonly doc: string };
  /** Its own profile keys, with default, bounds and doc (they join `CONFIG_KEYS`). */
  readonly keys?: KeySpecs;
  /** Plain environment variables its configuration reads (`AWS_*`), besides `BUCKETLOAD_*`. */
  readonly variables?: readonly string[];
  /**
   * The spec of the source `value` (`BUCKET_NAME`, trimmed, not empty) names,
   * or `undefined` when the value is not of this kind's forms (the next kind
   * of the list is asked).
   *
   * @throws {RangeError} when it is of this kind's forms but malformed (the config names the setting)
   * @throws {UsageError} for a bad value of the kind's keys or variables
   */
  configure(value: string, context: SourceContext): Spec | undefined;
  /** What the launcher grants the child for this source; `env` is the environment. */
  needs(spec: Spec, env: Readonly<Record<string, string>>): Needs;
  /** Builds the source a spec describes, loading its client only now. */
  open(spec: Spec): Promise<BucketSource>;
}

/** A source the config chose: its kind, and the spec the kind made. */
export interface ChosenSource {
  /** The chosen source's kind. */
  // deno-lint-ignore no-explicit-any
  readonly kind: SourceKind<any>;
  /** The spec its kind made from `BUCKET_NAME`. */
  readonly spec: SourceSpec;
}
