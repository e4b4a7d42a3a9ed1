/**
 * A plain description of a bucket source, which can cross to a worker, and
 * the source it describes.
 *
 * @module
 */
import { FileSource } from "./file.ts";
import type { BucketLocation } from "./location.ts";
import { HttpSource } from "./http.ts";
import type { BucketSource } from "./source.ts";
import type { S3SourceOptions } from "./s3_options.ts";

/** Everything needed to build a source; structured-cloneable. */
export type SourceSpec =
  | {
    readonly kind: "http";
    readonly base: string;
    readonly authorization: string | undefined;
    readonly timeoutMs: number;
    readonly retries: number;
    readonly retryBaseMs: number;
  }
  | { readonly kind: "file"; readonly root: string }
  | ({ readonly kind: "s3" } & S3SourceOptions);

/** What a source needs of the config (the config's own fields; this folder does not depend on the config). */
export interface SourceConfig {
  readonly bucket: BucketLocation;
  readonly s3: Pick<S3SourceOptions, "endpoint" | "region" | "pathStyle" | "credentials">;
  readonly requestTimeoutMs: number;
  readonly retries: number;
  readonly retryBaseMs: number;
}

/** The source spec of a configured bucket. */
export function sourceSpec(config: SourceConfig): SourceSpec {
  const { bucket } = config;
  if (bucket.kind === "file") return { kind: "file", root: bucket.root };
  if (bucket.kind === "s3") {
    return {
      kind: "s3",
      bucket: bucket.bucket,
      prefix: bucket.prefix,
      ...config.s3,
      timeoutMs: config.requestTimeoutMs,
      retries: config.retries,
      retryBaseMs: config.retryBaseMs,
    };
  }
  return {
    kind: "http",
    base: bucket.base.href,
    authorization: bucket.authorization,
    timeoutMs: config.requestTimeoutMs,
    retries: config.retries,
    retryBaseMs: config.retryBaseMs,
  };
}

/**
 * Builds the source a spec describes. The S3 client is loaded only for an S3
 * bucket (it adds ~60 ms to the start of every process and worker otherwise).
 */
export async function makeSource(spec: SourceSpec): Promise<BucketSource> {
  if (spec.kind === "file") return new FileSource(spec.root);
  if (spec.kind === "s3") {
    const { S3Source } = await import("./s3.ts");
    return new S3Source(spec);
  }
  return new HttpSource(new URL(spec.base), spec);
}
