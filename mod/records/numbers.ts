/**
 * JSON numbers that no double holds as written. `JSON.parse` turns
 * `1e-400` into `0` and `1.0000000000000001` into `1` without a word, so an
 * integer field would take a value its file never held. Such numbers are
 * parsed into an {@linkcode InexactNumber} instead, which every numeric
 * field check rejects with the text as written.
 *
 * Only texts that may hold such a number (a number token with an exponent,
 * or with 16 or more digits) take the slower path that sees each number's
 * source; the real bucket's files never do.
 *
 * @module
 */

/** A number whose JSON text the parsed double does not hold: it underflowed, or an integral value lost a fraction. */
export class InexactNumber {
  /** The number as the file writes it. */
  readonly source: string;
  /** What `JSON.parse` made of it. */
  readonly value: number;

  /** Wraps `source`, which parsed to `value`. */
  constructor(source: string, value: number) {
    this.source = source;
    this.value = value;
  }

  /** Why the double does not hold it. */
  get why(): string {
    return this.value === 0 ? "underflows to 0" : `no double holds it; it would read as ${this.value}`;
  }

  /** Serializes as written, so that a stored raw record shows the file's text. */
  toJSON(): unknown {
    return (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON(this.source);
  }
}

/**
 * May hold an inexact number: a negative exponent (`1e-400` underflows; a
 * positive one overflows to Infinity, which every check refuses), or 16 or
 * more digits in a row (`1.0000000000000001`). Not a digit before a bare `e`:
 * the real bucket's text is full of `\u00e9`-style escapes.
 */
const SUSPECT = /\d[eE]-|\d{16}/;
const PLAIN_INTEGER = /^-?\d{1,15}$/;
const NUMBER = /^-?(\d+)(?:\.(\d+))?(?:[eE]([-+]?\d+))?$/;

/**
 * Whether the double `value` holds what `source` writes, as far as it
 * matters here: a nonzero number did not underflow to 0, and a number that
 * parsed to an integer is one as written (`1994.0` and `1e3` are; `1e-400` and
 * `1.0000000000000001` are not).
 */
export function holdsExactly(source: string, value: number): boolean {
  if (PLAIN_INTEGER.test(source)) return true;
  const m = NUMBER.exec(source);
  if (m === null) return true;
  const digits = `${m[1]}${m[2] ?? ""}`.replace(/^0+/, "");
  if (digits === "") return true; // a zero, however written
  if (value === 0) return false; // underflow
  if (!Number.isInteger(value)) return true;
  // Integral as parsed: the written fraction must vanish once the exponent is applied.
  const pointAt = m[1]!.length + Number(m[3] ?? 0);
  const fraction = `${m[1]}${m[2] ?? ""}`.slice(Math.max(0, pointAt));
  return !/[1-9]/.test(fraction);
}

const revive = (_key: string, value: unknown, context?: { source?: string }) =>
  typeof value === "number" && context?.source !== undefined && !holdsExactly(context.source, value)
    ? new InexactNumber(context.source, value)
    : value;

/**
 * `JSON.parse`, except that a number no double holds as written becomes an
 * {@linkcode InexactNumber}.
 *
 * @throws {SyntaxError} as `JSON.parse` does
 */
export function parseJson(text: string): unknown {
  if (!SUSPECT.test(text)) return JSON.parse(text);
  return JSON.parse(text, revive as (key: string, value: unknown) => unknown);
}
