/**
 * The produce step: fetch each key, decode, parse and classify its records,
 * yielding one {@linkcode Produced} per key in list order. It runs in-thread
 * or in a worker (see worker_producer.ts in this folder); its output is structured-cloneable.
 *
 * @module
 */
import { parseJson } from "../records/numbers.ts";
import { pMapIterable } from "p-map";
import { parseBody, parseText, rawJson, rawText, undecodable } from "./decode.ts";
import { ArraySplitter, JsonSyntaxError, NotAnArrayError, parseElements, RecordTooLargeError } from "./json_stream.ts";
import { type Cell, Classifier, type RecordType } from "../records/mod.ts";
import { type BucketSource, TooLargeError, tooLargeReason } from "../source/source.ts";
import type { FilePart, FileWrite, Rejection } from "../store/store.ts";
import { compileStrftime } from "../strftime.ts";
import { gunzipStream, GzipError, isGzip, LineSplitter, sniffFormat } from "./formats.ts";

/** What became of one key, ready to write. A streamed file comes as parts, then its `file`. */
export type Produced =
  /** Some rows of a streamed file; more parts or its `file` (or `failed`) follow. */
  | { readonly kind: "part"; readonly key: string; readonly part: FilePart }
  /** The file's (last) rows and its registry entry. An invalid file discards the parts before it. */
  | { readonly kind: "file"; readonly key: string; readonly file: FileWrite }
  | { readonly kind: "missing"; readonly key: string; readonly reason: string }
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
  /** Objects larger than this (or of unknown length) are parsed as they download. */
  readonly streamThresholdBytes: number;
  /** `MAX_RECORD_BYTES`: a longer record makes its file invalid. @default {Infinity} */
  readonly maxRecordBytes?: number | undefined;
  /** Elements per part of a streamed file. @default {PART_ELEMENTS} */
  readonly partElements?: number | undefined;
  /** Reject records with U+0000 in a text column (the PostgreSQL store cannot hold it). @default {false} */
  readonly rejectNul?: boolean | undefined;
}

/** Elements per part of a streamed file. */
export const PART_ELEMENTS = 5000;

/**
 * Yields the outcome of each key, in order; the work runs `concurrency` keys
 * ahead at most twice over. Keys may come lazily (claimed as they are needed).
 */
export type Producer = (
  keys: Iterable<string> | AsyncIterable<string>,
  signal?: AbortSignal,
) => AsyncIterable<Produced>;

/** Options of {@linkcode processBody}. */
export interface ProcessOptions {
  readonly encoding: string;
  readonly classifier: Classifier;
  readonly processedAt: Date;
  readonly rawCap: number;
  /** Elements per part of a streamed file. @default {PART_ELEMENTS} */
  readonly partElements?: number | undefined;
  /** A longer record (characters of its JSON text) makes the file invalid, unread. @default {Infinity} */
  readonly maxRecordChars?: number | undefined;
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

/** Collects classified elements into a part: rows by type, rejections, ignored counts. */
class PartBuilder {
  rows = new Map<string, { count: number; cells: Cell[] }>();
  rejections: Rejection[] = [];
  ignored = new Map<string, number>();
  records = 0;
  elements = 0;

  constructor(readonly key: string, readonly classifier: Classifier, readonly rawCap: number) {}

  /** Classifies one element; `text` is its source text, kept for a rejection (else it is re-serialized). */
  add(element: unknown, index: number, text?: string) {
    this.elements++;
    const outcome = this.classifier.classify(element);
    if (outcome.kind === "row") {
      let bucket = this.rows.get(outcome.type.type);
      if (bucket === undefined) this.rows.set(outcome.type.type, bucket = { count: 0, cells: [] });
      for (const cell of outcome.row) bucket.cells.push(cell);
      bucket.count++;
      this.records++;
    } else if (outcome.kind === "ignored") {
      this.ignored.set(outcome.typeName, (this.ignored.get(outcome.typeName) ?? 0) + 1);
    } else {
      this.rejections.push({
        index,
        typeName: outcome.typeName,
        reason: outcome.reason,
        raw: text === undefined ? rawJson(element, this.rawCap) : rawText(text, this.rawCap),
      });
    }
  }

  /** Records an element that is not even JSON (an NDJSON line), with its text. */
  rejectText(index: number, reason: string, text: string) {
    this.elements++;
    this.rejections.push({ index, typeName: null, reason, raw: rawText(text, this.rawCap) });
  }

  /** The part so far; the builder starts over. */
  take(): FilePart {
    const part = { rows: this.rows, rejections: this.rejections, ignored: this.ignored, records: this.records };
    this.rows = new Map();
    this.rejections = [];
    this.ignored = new Map();
    this.records = 0;
    this.elements = 0;
    return part;
  }
}

/**
 * What a read error while streaming makes of a file: past the cap, or
 * corrupt gzip, it is invalid (the same bytes come again); anything else
 * fails it (retried on the next run).
 */
function readFailure(key: string, error: unknown, bytes: number, processedAt: Date): Produced {
  if (error instanceof TooLargeError) {
    const reason = tooLargeReason({ bytes: error.bytes, cap: error.cap, declared: false });
    return { kind: "file", key, file: invalidFile(key, reason, error.bytes, processedAt) };
  }
  if (error instanceof GzipError) {
    return { kind: "file", key, file: invalidFile(key, error.message, bytes, processedAt) };
  }
  return { kind: "failed", key, reason: `body read failed while streaming: ${(error as Error).message}` };
}

/** Turns one fetched body into its file's rows (flat, by type), rejections and ignored counts. */
export function processBody(key: string, body: Uint8Array, options: ProcessOptions): FileWrite {
  const parsed = parseBody(body, options.encoding);
  if ("invalid" in parsed) return invalidFile(key, parsed.invalid, body.byteLength, options.processedAt);
  const builder = new PartBuilder(key, options.classifier, options.rawCap);
  parsed.elements.forEach((element, index) => builder.add(element, index));
  const part = builder.take();
  if (part.rejections.length > 0) {
    // Rejections keep the records' text as written: split the array again (rare, so not paid on clean files).
    const texts = new ArraySplitter().push(parsed.text);
    for (const r of part.rejections) {
      const text = r.index === null ? undefined : texts[r.index];
      if (text !== undefined) (r as { raw: string | null }).raw = rawText(text, options.rawCap);
    }
  }
  return { key, status: "loaded", processedAt: options.processedAt, bytes: body.byteLength, ...part };
}

/**
 * A body read chunk by chunk and decoded as it comes (fatal on bytes that do
 * not decode), counting the bytes read: the streaming readers' common part.
 */
class DecodingReader {
  /** Bytes read so far. */
  bytes = 0;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder: TextDecoder;

  constructor(body: ReadableStream<Uint8Array>, encoding: string) {
    this.#reader = body.getReader();
    this.#decoder = new TextDecoder(encoding, { fatal: true });
  }

  /** The next chunk's text and whether the body ended; or that it could not be read (with the error) or decoded. */
  async next(): Promise<{ text: string; done: boolean } | { failed: "read"; error: unknown } | { failed: "decode" }> {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await this.#reader.read();
    } catch (error) {
      return { failed: "read", error };
    }
    if (!chunk.done) this.bytes += chunk.value.byteLength;
    try {
      return { text: this.#decoder.decode(chunk.value, { stream: !chunk.done }), done: chunk.done };
    } catch {
      return { failed: "decode" };
    }
  }

  /** Reads (and counts) the rest without decoding it; a read error ends the count. */
  async drain(): Promise<void> {
    try {
      for (let r = await this.#reader.read(); !r.done; r = await this.#reader.read()) this.bytes += r.value.byteLength;
    } catch { /* a read error ends the count */ }
  }

  /** Lets go of the body. */
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }
}

/**
 * Parses a body as it downloads: splits the array into elements, parses and
 * classifies them in batches, and yields a part every {@linkcode PART_ELEMENTS}
 * elements, then the file. A syntax error anywhere makes the file invalid
 * (its parts are discarded by the store), with the same reason as the buffered
 * path; a read error fails it (retried on the next run).
 */
export async function* processStream(
  key: string,
  body: ReadableStream<Uint8Array>,
  options: ProcessOptions,
): AsyncGenerator<Produced> {
  const reader = new DecodingReader(body, options.encoding);
  const splitter = new ArraySplitter(options.maxRecordChars);
  const builder = new PartBuilder(key, options.classifier, options.rawCap);
  const invalid = async (reason: string): Promise<Produced> => {
    // Read (and count) the rest, so that `bytes` is the object's size, as in the buffered path.
    await reader.drain();
    return { kind: "file", key, file: invalidFile(key, reason, reader.bytes, options.processedAt) };
  };
  let index = 0;
  /** The text read before the first value: needed again if the root is not an array. */
  let prefix: string[] | undefined = [];
  try {
    for (;;) {
      const next = await reader.next();
      if ("failed" in next) {
        if (next.failed === "read") return yield readFailure(key, next.error, reader.bytes, options.processedAt);
        return yield await invalid(undecodable(options.encoding));
      }
      const { text } = next;
      try {
        prefix?.push(text);
        const texts = splitter.push(text);
        if (splitter.started) prefix = undefined;
        const values = parseElements(texts, index);
        for (let k = 0; k < values.length; k++) builder.add(values[k], index++, texts[k]);
        splitter.throwIfFailed();
      } catch (error) {
        if (error instanceof NotAnArrayError) {
          // Not an array: read the rest and let the buffered rules word the reason.
          const rest = prefix ?? [text];
          for (let done = next.done; !done;) {
            const more = await reader.next();
            if ("failed" in more) return yield await invalid(undecodable(options.encoding));
            rest.push(more.text);
            done = more.done;
          }
          const parsed = parseText(rest.join(""));
          return yield await invalid("invalid" in parsed ? parsed.invalid : "expected a JSON array at the top level");
        }
        if (error instanceof JsonSyntaxError) return yield await invalid(`not JSON: ${error.message}`);
        if (error instanceof RecordTooLargeError) return yield await invalid(error.message);
        throw error;
      }
      if (next.done) break;
      if (builder.elements >= (options.partElements ?? PART_ELEMENTS)) {
        yield { kind: "part", key, part: builder.take() };
      }
    }
    if (reader.bytes === 0) return yield await invalid("empty body");
    if (!splitter.started) return yield await invalid("empty body (whitespace only)");
    try {
      splitter.end();
    } catch (error) {
      if (error instanceof JsonSyntaxError) return yield await invalid(`not JSON: ${error.message}`);
      throw error;
    }
    yield {
      kind: "file",
      key,
      file: { key, status: "loaded", processedAt: options.processedAt, bytes: reader.bytes, ...builder.take() },
    };
  } finally {
    await reader.cancel();
  }
}

/** A stream of `chunks`, then whatever `reader` still holds (its error included). */
function replay(
  chunks: readonly Uint8Array[],
  reader: ReadableStreamDefaultReader<Uint8Array>,
): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (i < chunks.length) return controller.enqueue(chunks[i++]!);
      const next = await reader.read();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

/** Whether a buffered body may be NDJSON (its first character, past whitespace and a BOM, is `{`). */
function mayBeNdjson(body: Uint8Array): boolean {
  let i = body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0;
  while (i < body.length && (body[i] === 0x20 || body[i] === 0x0a || body[i] === 0x0d || body[i] === 0x09)) i++;
  return body[i] === 0x7b;
}

/**
 * Processes an object of any format as it arrives: inflates gzip (by its
 * magic bytes), then parses a JSON array ({@linkcode processStream}) or
 * NDJSON ({@linkcode processNdjsonStream}), as the start of the text says.
 */
export async function* processObjectStream(
  key: string,
  body: ReadableStream<Uint8Array>,
  options: ProcessOptions & { readonly maxBytes: number },
): AsyncGenerator<Produced> {
  let reader = body.getReader();
  const head: Uint8Array[] = [];
  let size = 0;
  let ended = false;
  const take = async () => {
    try {
      const next = await reader.read();
      if (next.done) ended = true;
      else {
        head.push(next.value);
        size += next.value.byteLength;
      }
    } catch {
      // The error comes again from the replayed stream, where the parsers word it.
      ended = true;
      head.push(new Uint8Array(0));
    }
  };
  while (!ended && size < 2) await take();
  const joined = head.length === 1 ? head[0]! : new Uint8Array(await new Blob(head as BlobPart[]).arrayBuffer());
  if (isGzip(joined)) {
    reader = gunzipStream(replay([...head], reader), options.maxBytes).getReader();
    head.length = 0;
    size = 0;
    ended = false;
  }
  // Enough of the text to tell an array from NDJSON.
  const decoder = new TextDecoder(options.encoding);
  let text = head.map((c) => decoder.decode(c, { stream: true })).join("");
  let format = sniffFormat(key, text, ended);
  while (format === undefined) {
    const before = head.length;
    await take();
    if (head.length > before) text += decoder.decode(head.at(-1)!, { stream: true });
    format = sniffFormat(key, text, ended);
  }
  const stream = replay(head, reader);
  if (format === "ndjson") yield* processNdjsonStream(key, stream, options);
  else yield* processStream(key, stream, options);
}

/**
 * Parses NDJSON as it downloads: one record per line (blank lines skipped),
 * a line that is not JSON rejected with its line's index and text, a part
 * every {@linkcode PART_ELEMENTS} records. Buffered bodies take this path
 * too, so both give the same rows and rejections.
 */
export async function* processNdjsonStream(
  key: string,
  body: ReadableStream<Uint8Array>,
  options: ProcessOptions,
): AsyncGenerator<Produced> {
  const reader = new DecodingReader(body, options.encoding);
  const lines = new LineSplitter(options.maxRecordChars);
  const builder = new PartBuilder(key, options.classifier, options.rawCap);
  let index = 0;
  const add = (line: string) => {
    const at = index++;
    if (line.trim() === "") return;
    let value: unknown;
    try {
      value = parseJson(line);
    } catch (error) {
      return builder.rejectText(at, `not JSON (line ${at + 1}): ${(error as Error).message}`, line);
    }
    builder.add(value, at, line);
  };
  try {
    for (;;) {
      const next = await reader.next();
      if ("failed" in next) {
        if (next.failed === "read") return yield readFailure(key, next.error, reader.bytes, options.processedAt);
        const file = invalidFile(key, undecodable(options.encoding), reader.bytes, options.processedAt);
        return yield { kind: "file", key, file };
      }
      let completed: string[];
      try {
        completed = lines.push(next.text, index);
      } catch (error) {
        if (!(error instanceof RecordTooLargeError)) throw error;
        await reader.drain();
        return yield { kind: "file", key, file: invalidFile(key, error.message, reader.bytes, options.processedAt) };
      }
      for (const line of completed) add(line);
      if (next.done) break;
      if (builder.elements >= (options.partElements ?? PART_ELEMENTS)) {
        yield { kind: "part", key, part: builder.take() };
      }
    }
    for (const line of lines.end()) add(line);
    yield {
      kind: "file",
      key,
      file: { key, status: "loaded", processedAt: options.processedAt, bytes: reader.bytes, ...builder.take() },
    };
  } finally {
    await reader.cancel();
  }
}

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
        result: await source.get(key, {
          maxBytes: settings.maxFileBytes,
          streamOverBytes: bufferedLimit(settings),
          signal,
        }),
      }),
      { concurrency: settings.concurrency, backpressure: 2 * settings.concurrency },
    );
    for await (const { key, result } of fetched) {
      const processedAt = now();
      const options = () => ({
        encoding: settings.encoding,
        classifier: new Classifier(types, {
          ingestionTime: format(processedAt),
          awesomeMinRating: settings.awesomeMinRating,
          awesomeMaxSizeBytes: settings.awesomeMaxSizeBytes,
          rejectNul: settings.rejectNul,
        }),
        processedAt,
        rawCap: settings.maxRejectedRawBytes,
        partElements: settings.partElements,
        maxRecordChars: settings.maxRecordBytes,
      });
      switch (result.kind) {
        case "ok":
          // gzip and NDJSON take the streaming path (one chunk here), which inflates and splits lines; so does a body
          // that may hold a record over MAX_RECORD_BYTES, which the splitter stops at.
          if (
            isGzip(result.body) || mayBeNdjson(result.body) ||
            result.body.byteLength > (settings.maxRecordBytes ?? Infinity)
          ) {
            const body = ReadableStream.from([result.body]);
            yield* processObjectStream(key, body, { ...options(), maxBytes: settings.maxFileBytes });
          } else yield { kind: "file", key, file: processBody(key, result.body, options()) };
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
  };
}
