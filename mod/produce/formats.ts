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
 * Decides the format from the start of a decoded body: `"array"`,
 * `"ndjson"`, or `undefined` while the text so far cannot tell (more is
 * needed, unless the body has ended).
 */
export function sniffFormat(key: string, head: string, ended: boolean): "array" | "ndjson" | undefined {
  const start = head.search(/\S/);
  if (start === -1) return ended ? "array" : undefined;
  if (head[start] !== "{") return "array";
  if (NDJSON_NAME.test(key)) return "ndjson";
  const newline = head.indexOf("\n", start);
  if (newline !== -1 && /\S/.test(head.slice(newline))) return "ndjson";
  return ended ? "array" : undefined;
}

/** Splits text into lines as it arrives; `\r\n` and `\n` both end a line. */
export class LineSplitter {
  #rest = "";
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
    const lines = (this.#rest + text).split("\n");
    this.#rest = lines.pop()!;
    const long = [...lines, this.#rest].findIndex((l) => l.length > this.#maxLineChars);
    if (long !== -1) {
      const chars = long < lines.length ? lines[long]!.length : this.#rest.length;
      this.#rest = "";
      throw new RecordTooLargeError(firstIndex + long, chars, this.#maxLineChars);
    }
    return lines.map((l) => l.endsWith("\r") ? l.slice(0, -1) : l);
  }

  /** The last line, when the text did not end with a newline. */
  end(): string[] {
    const rest = this.#rest;
    this.#rest = "";
    return rest === "" ? [] : [rest.endsWith("\r") ? rest.slice(0, -1) : rest];
  }
}
