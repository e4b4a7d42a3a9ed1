/**
 * Streamed bodies: a file too large to hold is decoded, split and
 * classified as it arrives, a JSON array element by element or NDJSON line
 * by line, and yielded in parts of {@linkcode PART_ELEMENTS} elements.
 *
 * @module
 */
import { parseJson } from "../records/numbers.ts";
import { parseText, undecodable } from "./decode.ts";
import { ArraySplitter, JsonSyntaxError, NotAnArrayError, parseElements, RecordTooLargeError } from "./json_stream.ts";
import { gunzipStream, isGzip, LineSplitter, sniffFormat } from "./formats.ts";
import { invalidFile, PART_ELEMENTS, PartBuilder, type ProcessOptions, type Produced, readFailure } from "./body.ts";
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
export function mayBeNdjson(body: Uint8Array): boolean {
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
