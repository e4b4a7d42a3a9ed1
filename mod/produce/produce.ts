/**
 * The produce step: fetch each key, decode, parse and classify its records,
 * yielding one {@linkcode Produced} per key in list order. It runs in-thread
 * or in a worker (see worker_producer.ts in this folder); its output is structured-cloneable.
 *
 * @module
 */
import { pMapIterable } from "p-map";
import { Classifier, type RecordType } from "../records/mod.ts";
import { type BucketSource, type FetchResult, tooLargeReason } from "../source/source.ts";
import { compileStrftime } from "../common/strftime.ts";
import { isGzip } from "./formats.ts";
import { invalidFile, processBody, type Produced } from "./body.ts";
import { processObjectStream, startsAsArray } from "./streamed.ts";

export { PART_ELEMENTS, PART_TEXT_CHARS, processBody, type Produced, producedChars } from "./body.ts";
export { processStream } from "./streamed.ts";

/** Settings of the produce step. */
export interface ProduceSettings {
  /** `BUCKET_ENCODING`: the objects' encoding (a WHATWG label). */
  readonly encoding: string;
  /** `DATE_STORE_FORMAT`: the strftime format of `songs.ingestion_time`. */
  readonly dateStoreFormat: string;
  /** The record types' own settings (`AWESOME_*`), by key; a key left out takes its default. */
  readonly typeSettings?: Readonly<Record<string, number>> | undefined;
  /** `CONCURRENCY`: parallel fetches. */
  readonly concurrency: number;
  /** `MAX_FILE_BYTES`: a larger object is invalid. */
  readonly maxFileBytes: number;
  /** `MAX_REJECTED_RAW_BYTES`: raw JSON kept per rejection. */
  readonly maxRejectedRawBytes: number;
  /** Objects larger than this (or of unknown length) are parsed as they download. */
  readonly streamThresholdBytes: number;
  /** `MAX_RECORD_BYTES`: a longer record makes its file invalid. @default {Infinity} */
  readonly maxRecordBytes?: number | undefined;
  /** Elements per part of a streamed file. @default {PART_ELEMENTS} */
  readonly partElements?: number | undefined;
  /** Characters of record text per part of a streamed file. @default {PART_TEXT_CHARS} */
  readonly partChars?: number | undefined;
  /** Reject records with U+0000 in a text column (the PostgreSQL store cannot hold it). @default {false} */
  readonly rejectNul?: boolean | undefined;
  /** `KEEP_EXTRA`: keep the fields a record's type does not know in its row's `extra`. @default {true} */
  readonly keepExtra?: boolean | undefined;
}

/**
 * Yields the outcome of each key, in order; the work runs `concurrency` keys
 * ahead at most twice over. Keys may come lazily (claimed as they are needed).
 */
export type Producer = (
  keys: Iterable<string> | AsyncIterable<string>,
  signal?: AbortSignal,
) => AsyncIterable<Produced>;

/**
 * The memory that bodies read whole may hold at once, fetches in flight and
 * fetched ahead together: a body larger than its share is streamed instead,
 * which holds one part at a time whatever its size.
 */
export const BUFFERED_BUDGET_BYTES = 64 * 1024 * 1024;

/**
 * The largest body read whole: `STREAM_THRESHOLD_BYTES`, or less, so that the
 * `CONCURRENCY` fetches in flight and the `2 × CONCURRENCY` fetched ahead stay
 * within {@linkcode BUFFERED_BUDGET_BYTES} (8 fetches: 2.7 MiB each; the real
 * bucket's files are 141–708 KB).
 */
export function bufferedLimit(settings: Pick<ProduceSettings, "streamThresholdBytes" | "concurrency">): number {
  return Math.min(settings.streamThresholdBytes, Math.floor(BUFFERED_BUDGET_BYTES / (3 * settings.concurrency)));
}

/** The in-thread producer: fetches with `source`, `concurrency` at a time, and processes each body. */
export function produceInThread(
  source: BucketSource,
  types: readonly RecordType[],
  settings: ProduceSettings,
  now: () => Date,
): Producer {
  const format = compileStrftime(settings.dateStoreFormat);
  return async function* (keys, signal) {
    // Only the fetches run concurrently; each body is processed in list order as the loop reaches it. Processing a
    // body inside its fetch would hold the fetch's slot until the thread got to it: with 50 ms per request, fetches
    // then go out in bursts and the thread waits for them (real-sized bucket at 50 ms: 1.89 → 1.75 s).
    const fetched = pMapIterable(
      keys,
      async (key) => ({
        key,
        start: Date.now(),
        result: await source.get(key, {
          maxBytes: settings.maxFileBytes,
          streamOverBytes: bufferedLimit(settings),
          signal,
        }),
      }),
      { concurrency: settings.concurrency, backpressure: 2 * settings.concurrency },
    );
    for await (const { key, start, result } of fetched) {
      for await (const produced of settle(key, result)) {
        // A file's last message carries its fetch and parse time, for its span.
        yield produced.kind === "part" ? produced : { ...produced, timing: { start, end: Date.now() } };
      }
    }
  };

  /** What one fetch's result becomes: a file (perhaps after parts), missing, or failed. */
  async function* settle(key: string, result: FetchResult): AsyncGenerator<Produced> {
    const processedAt = now();
    const options = () => ({
      encoding: settings.encoding,
      classifier: new Classifier(types, {
        ingestionTime: format(processedAt),
        settings: settings.typeSettings,
        rejectNul: settings.rejectNul,
        keepExtra: settings.keepExtra,
      }),
      processedAt,
      rawCap: settings.maxRejectedRawBytes,
      partElements: settings.partElements,
      partChars: settings.partChars,
      maxRecordChars: settings.maxRecordBytes,
    });
    switch (result.kind) {
      case "ok":
        // Only a plain array is read whole here. gzip, NDJSON, a top level that is not an array and whitespace take
        // the streaming path (one chunk here), which inflates, splits lines and words them; so does a body that may
        // hold a record over MAX_RECORD_BYTES, which the splitter stops at.
        if (
          isGzip(result.body) || !startsAsArray(result.body) ||
          result.body.byteLength > (settings.maxRecordBytes ?? Infinity)
        ) {
          const body = ReadableStream.from([result.body]);
          yield* processObjectStream(key, body, { ...options(), maxBytes: settings.maxFileBytes });
        } else {yield {
            kind: "file",
            key,
            file: processBody(key, result.body, options()),
            chars: result.body.byteLength,
          };}
        break;
      case "stream":
        yield* processObjectStream(key, result.body, { ...options(), maxBytes: settings.maxFileBytes });
        break;
      case "too_large":
        yield { kind: "file", key, file: invalidFile(key, tooLargeReason(result), result.bytes, processedAt) };
        break;
      case "missing":
        yield { kind: "missing", key, reason: result.reason };
        break;
      case "failed":
        yield { kind: "failed", key, reason: result.reason };
        break;
      case "not_modified":
        yield { kind: "failed", key, reason: "HTTP 304 to an unconditional request" };
        break;
    }
  }
}
