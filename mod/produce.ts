/**
 * The produce step: fetch each key, decode, parse and classify its records,
 * yielding one {@linkcode Produced} per key in list order. It runs in-thread
 * or in a worker (see worker_producer.ts); its output is structured-cloneable.
 *
 * @module
 */
import { pMapIterable } from "p-map";
import { parseBody, rawJson } from "./decode.ts";
import { type Cell, Classifier, type RecordType } from "./records/mod.ts";
import { type BucketSource, tooLargeReason } from "./source.ts";
import type { FileWrite, Rejection } from "./store.ts";
import { compileStrftime } from "./strftime.ts";

/** What became of one key, ready to write. */
export type Produced =
  | { readonly kind: "file"; readonly key: string; readonly file: FileWrite }
  | { readonly kind: "missing"; readonly key: string; readonly status: number }
  | { readonly kind: "failed"; readonly key: string; readonly reason: string };

/** Settings of the produce step. */
export interface ProduceSettings {
  readonly encoding: string;
  readonly dateStoreFormat: string;
  readonly awesomeMinRating: number;
  readonly awesomeMaxSizeBytes: number;
  readonly concurrency: number;
  readonly maxFileBytes: number;
  readonly maxRejectedRawBytes: number;
}

/** Yields the outcome of each key, in order; the work runs `concurrency` keys ahead at most twice over. */
export type Producer = (keys: readonly string[], signal?: AbortSignal) => AsyncIterable<Produced>;

/** Options of {@linkcode processBody}. */
export interface ProcessOptions {
  readonly encoding: string;
  readonly classifier: Classifier;
  readonly processedAt: Date;
  readonly rawCap: number;
}

/** An invalid file's write: one whole-file rejection, no rows. */
export function invalidFile(key: string, reason: string, bytes: number, processedAt: Date): FileWrite {
  return {
    key,
    status: "invalid",
    processedAt,
    bytes,
    rows: new Map(),
    records: 0,
    rejections: [{ index: null, typeName: null, reason, raw: null }],
    ignored: new Map(),
  };
}

/** Turns one fetched body into its file's rows (flat, by type), rejections and ignored counts. */
export function processBody(key: string, body: Uint8Array, options: ProcessOptions): FileWrite {
  const parsed = parseBody(body, options.encoding);
  if ("invalid" in parsed) return invalidFile(key, parsed.invalid, body.byteLength, options.processedAt);
  const rows = new Map<string, { count: number; cells: Cell[] }>();
  const rejections: Rejection[] = [];
  const ignored = new Map<string, number>();
  let records = 0;
  const elements = parsed.elements;
  for (let index = 0; index < elements.length; index++) {
    const element = elements[index];
    const outcome = options.classifier.classify(element);
    if (outcome.kind === "row") {
      let bucket = rows.get(outcome.type.type);
      if (bucket === undefined) rows.set(outcome.type.type, bucket = { count: 0, cells: [] });
      for (const cell of outcome.row) bucket.cells.push(cell);
      bucket.cells.push(key);
      bucket.count++;
      records++;
    } else if (outcome.kind === "ignored") {
      ignored.set(outcome.typeName, (ignored.get(outcome.typeName) ?? 0) + 1);
    } else {
      rejections.push({
        index,
        typeName: outcome.typeName,
        reason: outcome.reason,
        raw: rawJson(element, options.rawCap),
      });
    }
  }
  return {
    key,
    status: "loaded",
    processedAt: options.processedAt,
    bytes: body.byteLength,
    rows,
    records,
    rejections,
    ignored,
  };
}

/** The in-thread producer: fetches with `source`, `concurrency` at a time, and processes each body. */
export function produceInThread(
  source: BucketSource,
  types: readonly RecordType[],
  settings: ProduceSettings,
  now: () => Date,
): Producer {
  const format = compileStrftime(settings.dateStoreFormat);
  return (keys, signal) =>
    pMapIterable(keys, async (key): Promise<Produced> => {
      const result = await source.get(key, { maxBytes: settings.maxFileBytes, signal });
      const processedAt = now();
      switch (result.kind) {
        case "ok": {
          const classifier = new Classifier(types, {
            ingestionTime: format(processedAt),
            awesomeMinRating: settings.awesomeMinRating,
            awesomeMaxSizeBytes: settings.awesomeMaxSizeBytes,
          });
          const file = processBody(key, result.body, {
            encoding: settings.encoding,
            classifier,
            processedAt,
            rawCap: settings.maxRejectedRawBytes,
          });
          return { kind: "file", key, file };
        }
        case "too_large":
          return { kind: "file", key, file: invalidFile(key, tooLargeReason(result), result.bytes, processedAt) };
        case "missing":
          return { kind: "missing", key, status: result.status };
        case "failed":
          return { kind: "failed", key, reason: result.reason };
        case "not_modified":
          return { kind: "failed", key, reason: "HTTP 304 to an unconditional request" };
      }
    }, { concurrency: settings.concurrency, backpressure: settings.concurrency * 2 });
}
