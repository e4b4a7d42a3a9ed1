/**
 * Streamed bodies: a file too large to hold is decoded, split and
 * classified as it arrives, a JSON array element by element or NDJSON line
 * by line, and yielded in parts of at most `PART_ELEMENTS` records
 * and `PART_TEXT_CHARS` characters of their text.
 *
 * Each character is looked at a bounded number of times, and what is held
 * is bounded whatever the body holds: the whitespace before the first value
 * is counted, not kept; a top level that is not an array is kept (to word
 * its reason as the buffered path does) only up to `MAX_RECORD_BYTES`.
 *
 * @module
 */
import { parseJson } from "../records/numbers.ts";
import { parseText, undecodable } from "./decode.ts";
import { ArraySplitter, JsonSyntaxError, NotAnArrayError, parseElements, RecordTooLargeError } from "./json_stream.ts";
import { FormatSniffer, gunzipStream, isGzip, LineSplitter } from "./formats.ts";
import { invalidFile, PartBuilder, type ProcessOptions, type Produced, readFailure } from "./body.ts";

/** A piece of decoded text (`done` on the last), or why there is none. */
type Next = { text: string; done: boolean } | { failed: "read"; error: unknown } | { failed: "decode" };

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
  async next(): Promise<Next> {
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

/** The text read so far, kept while it is at most `cap` characters (to word a top level that is not an array). */
class HeldText {
  #texts: string[] | undefined = [];
  #chars = 0;

  constructor(readonly cap: number) {}

  push(text: string) {
    if (this.#texts === undefined) return;
    this.#chars += text.length;
    if (this.#chars > this.cap) this.#texts = undefined;
    else this.#texts.push(text);
  }

  /** Lets go of the text: it will not be needed. */
  drop() {
    this.#texts = undefined;
  }

  /** The text read, or `undefined` once it passed the cap (or was dropped). */
  text(): string | undefined {
    return this.#texts?.join("");
  }
}

/**
 * The start of a body: the whitespace before its first value (fed to both
 * splitters, not kept) and the piece of text where that value begins.
 */
interface Start {
  readonly reader: DecodingReader;
  readonly sniffer: FormatSniffer;
  readonly held: HeldText;
  /** The array splitter past the whitespace; `undefined` when the whitespace is not JSON's (not an array, then). */
  readonly array: ArraySplitter | undefined;
  /** The line splitter past the whitespace, the blank lines it completed, and the line it found too long. */
  readonly lines: LineSplitter;
  readonly blankLines: number;
  readonly tooLarge: RecordTooLargeError | undefined;
  /** The text from the first non-whitespace character on (with `done`), or what ended the body before one. */
  readonly next: Next;
}

/** Reads up to the first non-whitespace character: the whitespace is counted by the splitters, never held whole. */
async function readStart(key: string, reader: DecodingReader, options: ProcessOptions): Promise<Start> {
  const max = options.maxRecordChars ?? Infinity;
  const sniffer = new FormatSniffer(key);
  const held = new HeldText(max);
  let array: ArraySplitter | undefined = new ArraySplitter(max);
  const lines = new LineSplitter(max);
  let blankLines = 0;
  let tooLarge: RecordTooLargeError | undefined;
  const skip = (space: string) => {
    try {
      array?.push(space);
    } catch (error) {
      if (!(error instanceof NotAnArrayError)) throw error;
      array = undefined; // whitespace JSON does not allow (a form feed, U+00A0...)
    }
    if (tooLarge !== undefined) return;
    try {
      blankLines += lines.skip(space, blankLines);
    } catch (error) {
      if (!(error instanceof RecordTooLargeError)) throw error;
      tooLarge = error;
    }
  };
  for (;;) {
    const next = await reader.next();
    if ("failed" in next) return { reader, sniffer, held, array, lines, blankLines, tooLarge, next };
    held.push(next.text);
    sniffer.push(next.text);
    const at = sniffer.start;
    skip(at === -1 ? next.text : next.text.slice(0, at));
    if (at !== -1 || next.done) {
      const text = at === -1 ? "" : next.text.slice(at);
      return { reader, sniffer, held, array, lines, blankLines, tooLarge, next: { text, done: next.done } };
    }
  }
}

/**
 * Parses a decoded body as it downloads, as a JSON array (`format`), or as
 * the start of its text says (a JSON array or NDJSON).
 */
async function* processText(
  key: string,
  reader: DecodingReader,
  options: ProcessOptions,
  format: "array" | "any",
): AsyncGenerator<Produced> {
  const invalid = async (reason: string): Promise<Produced> => {
    // Read (and count) the rest, so that `bytes` is the object's size, as in the buffered path.
    await reader.drain();
    return { kind: "file", key, file: invalidFile(key, reason, reader.bytes, options.processedAt) };
  };
  try {
    const start = await readStart(key, reader, options);
    const { next, sniffer } = start;
    if ("failed" in next) {
      if (next.failed === "read") return yield readFailure(key, next.error, reader.bytes, options.processedAt);
      return yield await invalid(undecodable(options.encoding));
    }
    if (sniffer.first === undefined) {
      return yield await invalid(reader.bytes === 0 ? "empty body" : "empty body (whitespace only)");
    }
    if (format === "array" || sniffer.format === "array") yield* arrayParts(key, start, options, invalid);
    else yield* ndjsonParts(key, start, options, invalid);
  } finally {
    await reader.cancel();
  }
}

/** What a streamed reader needs to end a file invalid: the reason; the rest is read and counted. */
type Invalid = (reason: string) => Promise<Produced>;

/** The builder of a streamed file's parts. */
const builderOf = (key: string, options: ProcessOptions) =>
  new PartBuilder(key, options.classifier, options.rawCap, options);

/** The part built so far, as a message; the builder starts over. */
function takePart(builder: PartBuilder): Produced {
  const chars = builder.chars;
  return { kind: "part", key: builder.key, part: builder.take(), chars };
}

/** The file's last message: its registry entry with the last records. */
function takeFile(builder: PartBuilder, reader: DecodingReader, options: ProcessOptions): Produced {
  const { key } = builder;
  const chars = builder.chars;
  const file = { key, status: "loaded" as const, processedAt: options.processedAt, bytes: reader.bytes };
  return { kind: "file", key, file: { ...file, ...builder.take() }, chars };
}

/**
 * A JSON array as it downloads: splits it into elements, parses and
 * classifies them in batches, and yields a part before an element that would
 * pass `PART_ELEMENTS` or `PART_TEXT_CHARS`, then the file. A syntax error
 * anywhere makes the file invalid (its parts are discarded by the store),
 * with the same reason as the buffered path; a read error fails it (retried
 * on the next run).
 */
async function* arrayParts(
  key: string,
  start: Start,
  options: ProcessOptions,
  invalid: Invalid,
): AsyncGenerator<Produced> {
  const { reader, held } = start;
  const splitter = start.array;
  if (splitter === undefined) return yield await notAnArray(key, start, options, invalid);
  const builder = builderOf(key, options);
  let index = 0;
  for (let next = start.next;; next = await reader.next()) {
    if ("failed" in next) {
      if (next.failed === "read") return yield readFailure(key, next.error, reader.bytes, options.processedAt);
      return yield await invalid(undecodable(options.encoding));
    }
    try {
      const texts = splitter.push(next.text);
      held.drop();
      const values = parseElements(texts, index);
      for (let k = 0; k < values.length; k++) {
        const text = texts[k]!;
        if (builder.full(text.length)) yield takePart(builder);
        builder.add(values[k], index++, text);
      }
      splitter.throwIfFailed();
    } catch (error) {
      // Not an array: read the rest and let the buffered rules word the reason.
      if (error instanceof NotAnArrayError) return yield await notAnArray(key, { ...start, next }, options, invalid);
      if (error instanceof JsonSyntaxError) return yield await invalid(`not JSON: ${error.message}`);
      if (error instanceof RecordTooLargeError) return yield await invalid(error.message);
      throw error;
    }
    if (next.done) break;
  }
  try {
    splitter.end();
  } catch (error) {
    if (error instanceof JsonSyntaxError) return yield await invalid(`not JSON: ${error.message}`);
    throw error;
  }
  yield takeFile(builder, reader, options);
}

/**
 * A top level that is not an array: the reason is the buffered path's, from
 * the whole text, when it is at most `MAX_RECORD_BYTES` characters; a longer
 * one is not held (the rest is read and counted).
 */
async function notAnArray(key: string, start: Start, options: ProcessOptions, invalid: Invalid): Promise<Produced> {
  const { reader, held } = start;
  let done = !("failed" in start.next) && start.next.done;
  while (!done) {
    const next = await reader.next();
    if ("failed" in next) {
      if (next.failed === "read") return readFailure(key, next.error, reader.bytes, options.processedAt);
      return await invalid(undecodable(options.encoding));
    }
    held.push(next.text);
    done = next.done;
  }
  const text = held.text();
  if (text === undefined) {
    return await invalid(
      `expected a JSON array at the top level; the text is not one, and is longer than ${held.cap} characters ` +
        "(MAX_RECORD_BYTES), so it was not parsed whole",
    );
  }
  const parsed = parseText(text);
  return await invalid("invalid" in parsed ? parsed.invalid : "expected a JSON array at the top level");
}

/**
 * NDJSON as it downloads: one record per line (blank lines skipped), a line
 * that is not JSON rejected with its line's index and text, a part before a
 * record that would pass `PART_ELEMENTS` or `PART_TEXT_CHARS`. Buffered
 * bodies take this path too, so both give the same rows and rejections.
 *
 * A body that starts with `{` is read this way before its format is known:
 * a second non-blank line makes it NDJSON; a body that ends before one holds
 * a single object, which is not an array (the file is invalid, as the
 * buffered rules word it). No part is yielded before the second record.
 */
async function* ndjsonParts(
  key: string,
  start: Start,
  options: ProcessOptions,
  invalid: Invalid,
): AsyncGenerator<Produced> {
  const { reader, sniffer, held, lines } = start;
  const builder = builderOf(key, options);
  let index = start.blankLines;
  let tooLarge = start.tooLarge;
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
  for (let next = start.next, first = true;; next = await reader.next(), first = false) {
    if ("failed" in next) {
      if (next.failed === "read") return yield readFailure(key, next.error, reader.bytes, options.processedAt);
      return yield await invalid(undecodable(options.encoding));
    }
    if (!first) {
      held.push(next.text);
      sniffer.push(next.text);
    }
    if (sniffer.format === "ndjson") held.drop();
    if (tooLarge === undefined) {
      let completed: string[] = [];
      try {
        completed = lines.push(next.text, index);
      } catch (error) {
        if (!(error instanceof RecordTooLargeError)) throw error;
        tooLarge = error;
      }
      for (const line of completed) {
        if (line.trim() !== "" && builder.full(line.length)) yield takePart(builder);
        add(line);
      }
    }
    // A line too long makes NDJSON invalid; whether the body is NDJSON is known once a second line starts.
    if (tooLarge !== undefined && sniffer.format === "ndjson") return yield await invalid(tooLarge.message);
    if (next.done) break;
  }
  if (sniffer.end() === "array") {
    return yield await notAnArray(key, { ...start, next: { text: "", done: true } }, options, invalid);
  }
  for (const line of lines.end()) add(line);
  yield takeFile(builder, reader, options);
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

/**
 * Whether a buffered body is read whole ({@linkcode processBody}): its first
 * byte, past whitespace and a UTF-8 BOM, is `[`. Anything else (NDJSON, a
 * top level that is not an array, whitespace only) takes the streaming path,
 * so that a body gets the same outcome however it arrives.
 */
export function startsAsArray(body: Uint8Array): boolean {
  let i = body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0;
  while (i < body.length && (body[i] === 0x20 || body[i] === 0x0a || body[i] === 0x0d || body[i] === 0x09)) i++;
  return body[i] === 0x5b;
}

/**
 * Parses a body as it downloads as a JSON array: elements classified in
 * batches, parts of at most `PART_ELEMENTS` records and `PART_TEXT_CHARS`
 * characters of their text, then the file.
 */
export function processStream(
  key: string,
  body: ReadableStream<Uint8Array>,
  options: ProcessOptions,
): AsyncGenerator<Produced> {
  return processText(key, new DecodingReader(body, options.encoding), options, "array");
}

/**
 * Processes an object of any format as it arrives: inflates gzip (by its
 * magic bytes), then parses a JSON array or NDJSON, as the start of the text
 * says.
 */
export async function* processObjectStream(
  key: string,
  body: ReadableStream<Uint8Array>,
  options: ProcessOptions & { readonly maxBytes: number },
): AsyncGenerator<Produced> {
  const reader = body.getReader();
  const head: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < 2) {
      const next = await reader.read();
      if (next.done) break;
      head.push(next.value);
      size += next.value.byteLength;
    }
  } catch {
    // The error comes again from the replayed stream, where the parsers word it.
  }
  const joined = head.length === 1 ? head[0]! : new Uint8Array(await new Blob(head as BlobPart[]).arrayBuffer());
  const stream = isGzip(joined) ? gunzipStream(replay(head, reader), options.maxBytes) : replay(head, reader);
  yield* processText(key, new DecodingReader(stream, options.encoding), options, "any");
}
