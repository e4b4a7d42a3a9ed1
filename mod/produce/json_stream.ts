/**
 * An incremental splitter for a top-level JSON array: it finds where each
 * element starts and ends (tracking strings, escapes and nesting) and leaves
 * parsing each element to `JSON.parse`, in batches. It is also the one source
 * of syntax-error reasons, so the streaming and buffered paths reject a bad
 * file with the same words.
 *
 * @module
 */
import { parseJson } from "../records/numbers.ts";
import { skipSpace, skipValues, valueEnd } from "../records/json_text.ts";

/** A syntax error with the reason stored for the invalid file (without the `not JSON: ` prefix). */
export class JsonSyntaxError extends SyntaxError {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "JsonSyntaxError";
  }
}

/** A record longer than the cap (`MAX_RECORD_BYTES`): the file is invalid, and the record is never held whole. */
export class RecordTooLargeError extends Error {
  /**
   * Creates the error for the element at `index`, seen to reach `chars` characters. The reason leaves the count out:
   * where reading stopped depends on how the body was delivered (whole, or in chunks), and the reason must not.
   */
  constructor(index: number, readonly chars: number, cap: number) {
    super(`record ${index} is too large: more than ${cap} characters (MAX_RECORD_BYTES)`);
    this.name = "RecordTooLargeError";
  }
}

/** The root is not an array: the caller falls back to parsing the whole text. */
export class NotAnArrayError extends Error {
  /** Creates the error. */
  constructor() {
    super("The top level is not an array");
    this.name = "NotAnArrayError";
  }
}

const enum State {
  BeforeRoot,
  InRoot,
  AfterRoot,
}

const WS = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** Splits a JSON array's text, pushed in chunks, into the texts of its elements. */
export class ArraySplitter {
  #state = State.BeforeRoot;
  #depth = 0;
  #inString = false;
  #escape = false;
  /** Pieces of the element being read. */
  #pieces: string[] = [];
  #sawComma = false;
  #offset = 0;
  /** A structural error found, raised by {@linkcode throwIfFailed} after the elements before it. */
  #error: JsonSyntaxError | RecordTooLargeError | undefined;
  /** Characters of the element being read, held in `#pieces`. */
  #pieceChars = 0;
  /** The current element's value (an object, array or string) ended at depth 0: only `,` or `]` may follow. */
  #closed = false;
  readonly #maxElementChars: number;
  /** Elements completed so far, all chunks together. */
  count = 0;

  /** `maxElementChars`: a longer element stops the scan with a {@linkcode RecordTooLargeError}. */
  constructor(maxElementChars = Infinity) {
    this.#maxElementChars = maxElementChars;
  }

  /**
   * Consumes a chunk and returns the texts of the elements it completed. A
   * structural error stops the scan; parse the returned texts, then call
   * {@linkcode throwIfFailed}, so that errors surface in text order whatever
   * the chunking.
   *
   * @throws {NotAnArrayError} when the first value is not an array
   */
  push(chunk: string): string[] {
    const out: string[] = [];
    if (this.#error !== undefined) return out;
    let start = 0;
    let i = 0;
    const n = chunk.length;
    if (this.#state === State.BeforeRoot) {
      while (i < n && WS(chunk.charCodeAt(i))) i++;
      if (i === n) {
        this.#offset += n;
        return out;
      }
      if (chunk.charCodeAt(i) !== 0x5b) throw new NotAnArrayError();
      this.#state = State.InRoot;
      start = ++i;
    }
    if (this.#state === State.InRoot) {
      let depth = this.#depth, inString = this.#inString, escape = this.#escape, closed = this.#closed;
      for (; i < n; i++) {
        const c = chunk.charCodeAt(i);
        if (inString) {
          if (escape) escape = false;
          else if (c === 0x5c) escape = true;
          else if (c === 0x22) {
            inString = false;
            closed = depth === 0;
          }
          continue;
        }
        if (depth === 0) {
          // Whitespace before an element is not part of it (nor of its size).
          if (start === i && this.#pieces.length === 0 && WS(c)) {
            start++;
            continue;
          }
          // After an element's object, array or string, only a comma or the end of the array may follow.
          if (closed && !WS(c) && c !== 0x2c && c !== 0x5d) {
            this.#error = new JsonSyntaxError(
              `unexpected ${JSON.stringify(chunk[i])} after element ${this.count + out.length} at character ${
                this.#offset + i
              }`,
            );
            break;
          }
        }
        if (c === 0x22) inString = true;
        else if (c === 0x5b || c === 0x7b) depth++;
        else if (c === 0x5d || c === 0x7d) {
          if (depth > 0) {
            depth--;
            closed = depth === 0;
          } else if (c === 0x7d) {
            this.#error = new JsonSyntaxError(`unexpected "}" at character ${this.#offset + i}`);
            break;
          } else {
            // The root array closes.
            if (this.#tooLarge(i - start, out.length)) break;
            const text = this.#take(chunk, start, i);
            if (this.#sawComma || text.trim() !== "") out.push(text);
            this.#state = State.AfterRoot;
            i++;
            break;
          }
        } else if (c === 0x2c && depth === 0) {
          if (this.#tooLarge(i - start, out.length)) break;
          out.push(this.#take(chunk, start, i));
          this.#sawComma = true;
          closed = false;
          start = i + 1;
        }
      }
      this.#depth = depth;
      this.#inString = inString;
      this.#escape = escape;
      this.#closed = closed;
      if (
        this.#state === State.InRoot && this.#error === undefined && start < n &&
        !this.#tooLarge(n - start, out.length)
      ) {
        this.#pieces.push(chunk.slice(start));
        this.#pieceChars += n - start;
      }
    }
    if (this.#state === State.AfterRoot) {
      for (; i < n; i++) {
        if (!WS(chunk.charCodeAt(i))) {
          this.#error = new JsonSyntaxError(
            `unexpected ${JSON.stringify(chunk[i])} after the array at character ${this.#offset + i}`,
          );
          break;
        }
      }
    }
    this.#offset += n;
    this.count += out.length;
    return out;
  }

  /** Whether the current element, with `more` characters, passes the cap (then the scan stops with the error). */
  #tooLarge(more: number, completedInChunk: number): boolean {
    const chars = this.#pieceChars + more;
    if (chars <= this.#maxElementChars) return false;
    this.#error = new RecordTooLargeError(this.count + completedInChunk, chars, this.#maxElementChars);
    this.#pieces = [];
    this.#pieceChars = 0;
    return true;
  }

  #take(chunk: string, start: number, end: number): string {
    const tail = chunk.slice(start, end);
    if (this.#pieces.length === 0) return tail;
    this.#pieces.push(tail);
    const text = this.#pieces.join("");
    this.#pieces = [];
    this.#pieceChars = 0;
    return text;
  }

  /**
   * Raises the structural error found by {@linkcode push}, if any.
   *
   * @throws {JsonSyntaxError}
   */
  throwIfFailed(): void {
    // (A RecordTooLargeError is raised here too: the elements before it are parsed first.)
    if (this.#error !== undefined) throw this.#error;
  }

  /**
   * Checks that the input ended after a complete array.
   *
   * @throws {JsonSyntaxError} on a structural error, or when it ended early
   */
  end(): void {
    this.throwIfFailed();
    if (this.#state === State.InRoot) throw new JsonSyntaxError("unexpected end of input");
  }

  /** Whether any non-whitespace was seen (to tell an empty body). */
  get started(): boolean {
    return this.#state !== State.BeforeRoot;
  }
}

/**
 * The elements of a JSON array that parsed, given as UTF-8, found on demand:
 * asked in increasing order (as a file's elements are classified), the bytes
 * are scanned once, and only as far as the last element asked for; a file
 * that asks for none is not scanned at all.
 */
export class ElementTexts {
  readonly #bytes: Uint8Array;
  /** Where element `#next` starts (or the array's `]`). */
  #at = 0;
  #next = 0;

  /** The elements of `bytes`, the UTF-8 of a JSON array that parsed (a byte order mark first is skipped). */
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#start();
  }

  #start() {
    const b = this.#bytes;
    const at = skipSpace(b, b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf ? 3 : 0);
    this.#at = skipSpace(b, at + 1); // past the [
    this.#next = 0;
  }

  /**
   * Element `index`'s text as the file writes it (without the whitespace around it), as UTF-8: a view of the bytes,
   * not a copy; `undefined` past the end.
   */
  at(index: number): Uint8Array | undefined {
    if (index < this.#next) this.#start();
    const b = this.#bytes;
    if (index > this.#next) this.#at = skipValues(b, this.#at, index - this.#next);
    this.#next = index;
    const start = this.#at;
    if (start >= b.length || b[start] === 0x5d) return undefined;
    const end = valueEnd(b, start);
    const after = skipSpace(b, end);
    // Past the comma; at the closing bracket, stays there.
    this.#at = b[after] === 0x2c ? skipSpace(b, after + 1) : after;
    this.#next++;
    return b.subarray(start, end);
  }
}

/**
 * Parses element texts in one `JSON.parse`; on failure finds the first bad
 * element. `firstIndex` is the index of `texts[0]` in the file.
 *
 * @throws {JsonSyntaxError} naming the element that does not parse
 */
export function parseElements(texts: readonly string[], firstIndex: number): unknown[] {
  if (texts.length === 0) return [];
  try {
    // One element (a large record fills chunks alone) is parsed as it is, not copied into a batch.
    if (texts.length === 1) return [parseJson(texts[0]!)];
    const values = parseJson(`[${texts.join(",")}]`) as unknown[];
    // One empty text alone reads as "[]": the count tells.
    if (values.length === texts.length) return values;
  } catch {
    // Find the element below.
  }
  {
    for (let k = 0; k < texts.length; k++) {
      try {
        JSON.parse(texts[k]!);
      } catch (error) {
        throw new JsonSyntaxError(`element ${firstIndex + k}: ${(error as Error).message}`);
      }
    }
    // Each element parses alone but not together: cannot happen for element texts split at top-level commas.
    throw new JsonSyntaxError(`elements ${firstIndex}–${firstIndex + texts.length - 1} do not parse together`);
  }
}

/**
 * The reason a text that `JSON.parse` rejected is not JSON, in the splitter's
 * words when its root is an array (so that both paths agree).
 */
export function syntaxReason(text: string, fallback: string): string {
  const splitter = new ArraySplitter();
  try {
    let index = 0;
    for (let i = 0; i < text.length; i += 1 << 16) {
      const texts = splitter.push(text.slice(i, i + (1 << 16)));
      parseElements(texts, index);
      index += texts.length;
      splitter.throwIfFailed();
    }
    splitter.end();
  } catch (error) {
    if (error instanceof JsonSyntaxError) return error.message;
  }
  return fallback;
}
