/**
 * The kinds of source bucketload reads from. Adding one means adding its
 * folder (its source and its `kind.ts`) and listing it here. `BUCKET_NAME`
 * is offered to each in this order: the first that takes the value is used.
 *
 * @module
 */
import { fileSource } from "./file/kind.ts";
import { httpSource } from "./http/kind.ts";
import type { SourceKind, SourceSpec } from "./kind.ts";
import { s3Source } from "./s3/kind.ts";
import type { BucketSource } from "./source.ts";

/** The sources, in the order they are offered `BUCKET_NAME`. */
// deno-lint-ignore no-explicit-any
export const SOURCES: readonly SourceKind<any>[] = [httpSource, s3Source, fileSource];

/**
 * Builds the source a spec describes, with the kind of its name (the worker
 * builds its own from the spec it is sent).
 *
 * @throws {Error} when no kind of `sources` has the spec's name
 */
export function openSource(spec: SourceSpec, sources: readonly SourceKind[] = SOURCES): Promise<BucketSource> {
  const kind = sources.find((k) => k.name === spec.kind);
  if (kind === undefined) throw new Error(`No source of kind '${spec.kind}' (the kinds are listed in SOURCES)`);
  return kind.open(spec);
}
