/**
 * Object formats besides a plain JSON array: gzip (detected by its magic
 * bytes `1f 8b`, multi-member included, inflated with `node:zlib`) and NDJSON
 * (one record per line).
 *
 * A body is NDJSON when it starts with `{` and has a second non-blank line,
 * or when its key ends in `.ndjson` or `.jsonl` (before any `.gz`). A single
 * JSON object in a file otherwise named stays what it was: not an array, so
 * the file is invalid.
 *
 * @module
 */
import { RecordTooLargeError } from "./json_stream.ts";
import type { Gunzip } from "node:zlib";
import { TooLargeError } from "../source/source.ts";

/** The gzip data is corrupt: the object is invalid (fetching it again gives the same bytes). */
export class GzipError extends Error {
  /** A gzip error with its message, as an invalid file's reason. */
  constructor(message: string) {
    super(`not valid gzip: ${message}`);
    this.name = "GzipError";
  }
}

/** Whether `bytes` start with gzip's magic number. */
export const isGzip = (bytes: Uint8Array): boolean => bytes.byteLength >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;

/**
 * Inflates a gzip stream (every member of it), erroring with
 * {@linkcode TooLargeError} once the inflated size passes `cap`, or with a
 * `not valid gzip` error on corrupt data.
 */
export function gunzipStream(body: ReadableStream<Uint8Array>, cap: number): ReadableStream<Uint8Array> {
  let inflater: Gunzip | undefined;
  let total = 0;
  return new ReadableStream<Uint8Array>({
    async start(controller) {
      // node:zlib is loaded with the first gzip object (~30 ms at every start otherwise).
      const { createGunzip } = await import("node:zlib");
      const gunzip = inflater = createGunzip();
      gunzip.on("data", (chunk: Uint8Array) => {
        total += chunk.byteLength;
        if (total > cap) {
          controller.error(new TooLargeError(total, cap));
          gunzip.destroy();
          return;
        }
        controller.enqueue(new Uint8Array(chunk));
        if ((controller.desiredSize ?? 1) <= 0) gunzip.pause();
      });
      gunzip.on("end", () => controller.close());
      gunzip.on("error", (error: Error) => controller.error(new GzipError(error.message)));
      (async () => {
        for await (const chunk of body) {
          if (!gunzip.write(chunk)) await new Promise((resolve) => gunzip.once("drain", resolve));
        }
        gunzip.end();
      })().catch((error) => {
        controller.error(error);
        gunzip.destroy();
      });
    },
    pull() {
      inflater?.resume();
    },
    cancel() {
      inflater?.destroy();
      body.cancel().catch(() => {});
    },
  }, { highWaterMark: 4 });
}

/** Whether a key's name says NDJSON. */
const NDJSON_NAME = /\.(ndjson|jsonl)(\.gz)?$/i;

/**
 * Characters examined by the format sniffer and by the line splitter, every
 * body together: each character is looked at once, so a body costs time in
 * proportion to its length whatever its chunks (tests read these counts).
 */
export const scanned = { sniffer: 0, lines: 0 };

/** Any non-whitespace character (JavaScript's whitespace, as `trim()` has it), searched from `lastIndex`. */
const NON_SPACE = /\S/g;

/** The index of the first non-whitespace character of `text` at or after `from`, or -1; counts what it examined. */
function nonSpace(text: string, from: number): number {
  NON_SPACE.lastIndex = from;
  const at = NON_SPACE.exec(text)?.index ?? -1;
  scanned.sniffer += (at === -1 ? text.length : at + 1) - from;
  return at;
}

/**
 * Decides the format of a decoded body as it arrives, looking at each
 * character once: `"array"` when its first non-whitespace character is not
 * `{`; `"ndjson"` when it is, and the key's name says NDJSON or a second
 * non-blank line follows; undecided until then ({@linkcode end} then says
 * `"array"`: a single object is not NDJSON).
 */
export class FormatSniffer {
  #state: "blank" | "first line" | "next lines" = "blank";
  #format: "array" | "ndjson" | undefined;
  /** The first non-whitespace character, once seen. */
  first: string | undefined;
  /** Where the first non-whitespace character is in the text last pushed; -1 if it is not in it. */
  start: number = -1;
  readonly #named: boolean;

  /** A sniffer for the object `key`. */
  constructor(key: string) {
    this.#named = NDJSON_NAME.test(key);
  }

  /** The format, once decided. */
  get format(): "array" | "ndjson" | undefined {
    return this.#format;
  }

  /** Reads the next piece of text; returns the format once decided. */
  push(text: string): "array" | "ndjson" | undefined {
    this.start = -1;
    if (this.#format !== undefined) return this.#format;
    let i = 0;
    if (this.#state === "blank") {
      const at = nonSpace(text, 0);
      if (at === -1) return undefined;
      this.start = at;
      this.first = text[at];
      if (this.first !== "{") return this.#format = "array";
      if (this.#named) return this.#format = "ndjson";
      this.#state = "first line";
      i = at + 1;
    }
    if (this.#state === "first line") {
      const newline = text.indexOf("\n", i);
      scanned.sniffer += (newline === -1 ? text.length : newline + 1) - i;
      if (newline === -1) return undefined;
      this.#state = "next lines";
      i = newline + 1;
    }
    return nonSpace(text, i) === -1 ? undefined : this.#format = "ndjson";
  }

  /** The format once the text has ended. */
  end(): "array" | "ndjson" {
    return this.#format ?? "array";
  }
}

/**
 * Decides the format from the start of a decoded body: `"array"`,
 * `"ndjson"`, or `undefined` while the text so far cannot tell (more is
 * needed, unless the body has ended). (One {@linkcode FormatSniffer} over `head`.)
 */
export function sniffFormat(key: string, head: string, ended: boolean): "array" | "ndjson" | undefined {
  const sniffer = new FormatSniffer(key);
  return sniffer.push(head) ?? (ended ? sniffer.end() : undefined);
}

/** Splits text into lines as it arrives; `\r\n` and `\n` both end a line. Each character is looked at once. */
export class LineSplitter {
  /** Pieces of the line being read, and their length. */
  #pieces: string[] = [];
  #chars = 0;
  readonly #maxLineChars: number;

  /** `maxLineChars`: a longer line stops the split with a {@linkcode RecordTooLargeError}. */
  constructor(maxLineChars = Infinity) {
    this.#maxLineChars = maxLineChars;
  }

  /**
   * The lines completed by `text`; `firstIndex` numbers the first of them, for the error.
   *
   * @throws {RecordTooLargeError} when a line passes the cap (it is never held whole)
   */
  push(text: string, firstIndex = 0): string[] {
    scanned.lines += text.length;
    const lines: string[] = [];
    let from = 0;
    for (let newline = text.indexOf("\n"); newline !== -1; newline = text.indexOf("\n", from)) {
      this.#check(this.#chars + newline - from, firstIndex + lines.length);
      const tail = text.slice(from, newline);
      const line = this.#pieces.length === 0 ? tail : this.#pieces.join("") + tail;
      this.#pieces = [];
      this.#chars = 0;
      lines.push(line.endsWith("\r") ? line.slice(0, -1) : line);
      from = newline + 1;
    }
    this.#check(this.#chars + text.length - from, firstIndex + lines.length);
    if (from < text.length) {
      this.#pieces.push(from === 0 ? text : text.slice(from));
      this.#chars += text.length - from;
    }
    return lines;
  }

  /**
   * Consumes whitespace as {@linkcode push} would, without making its blank
   * lines: returns how many lines it completed.
   *
   * @throws {RecordTooLargeError} when a line passes the cap
   */
  skip(space: string, firstIndex = 0): number {
    scanned.lines += space.length;
    let lines = 0;
    let from = 0;
    for (let newline = space.indexOf("\n"); newline !== -1; newline = space.indexOf("\n", from)) {
      this.#check(this.#chars + newline - from, firstIndex + lines);
      this.#pieces = [];
      this.#chars = 0;
      lines++;
      from = newline + 1;
    }
    this.#check(this.#chars + space.length - from, firstIndex + lines);
    if (from < space.length) {
      this.#pieces.push(from === 0 ? space : space.slice(from));
      this.#chars += space.length - from;
    }
    return lines;
  }

  /** Throws when line `index`, `chars` long, passes the cap (and lets go of it). */
  #check(chars: number, index: number) {
    if (chars <= this.#maxLineChars) return;
    this.#pieces = [];
    this.#chars = 0;
    throw new RecordTooLargeError(index, chars, this.#maxLineChars);
  }

  /** The last line, when the text did not end with a newline. */
  end(): string[] {
    const rest = this.#pieces.join("");
    this.#pieces = [];
    this.#chars = 0;
    return rest === "" ? [] : [rest.endsWith("\r") ? rest.slice(0, -1) : rest];
  }
}
