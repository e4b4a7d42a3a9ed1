/**
 * Reading the text of JSON that is known to parse (a record `JSON.parse`
 * accepted, or a stored `extra`): where a value ends, an object's members as
 * spans of the text, a member's name. Nothing here checks the syntax: given
 * text that is not JSON, the spans are unspecified (but the scan ends).
 *
 * Each character is looked at once; a string's end is found with `indexOf`.
 *
 * @module
 */

/** JSON's whitespace: space, line feed, carriage return, tab. */
const isSpace = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** The index of the first character at or after `i` that is not JSON whitespace. */
export function skipSpace(text: string, i: number): number {
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  return i;
}

/** The index after the string whose opening quote is at `i`. */
export function stringEnd(text: string, i: number): number {
  for (let j = i + 1;;) {
    const quote = text.indexOf('"', j);
    if (quote === -1) return text.length;
    // Escaped when an odd number of backslashes come before it.
    let k = quote - 1;
    while (text.charCodeAt(k) === 0x5c) k--;
    if ((quote - 1 - k) % 2 === 0) return quote + 1;
    j = quote + 1;
  }
}

/** The index after the value that starts at `i` (not whitespace): a string, an object, an array or a literal. */
export function valueEnd(text: string, i: number): number {
  const n = text.length;
  const first = text.charCodeAt(i);
  if (first === 0x22) return stringEnd(text, i);
  if (first !== 0x7b && first !== 0x5b) {
    // A number, true, false or null: up to a delimiter.
    let j = i + 1;
    for (; j < n; j++) {
      const c = text.charCodeAt(j);
      if (c === 0x2c || c === 0x7d || c === 0x5d || isSpace(c)) break;
    }
    return j;
  }
  let depth = 0;
  for (let j = i; j < n; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x22) j = stringEnd(text, j) - 1;
    else if (c === 0x7b || c === 0x5b) depth++;
    else if ((c === 0x7d || c === 0x5d) && --depth === 0) return j + 1;
  }
  return n;
}

/**
 * The members of the object that starts at `i` (its `{`), in the text's
 * order, repeated names included: four indexes each, the name's string
 * (quotes included) from `[0]` to `[1]`, its value from `[2]` to `[3]`.
 */
export function memberSpans(text: string, i: number): number[] {
  const spans: number[] = [];
  let at = skipSpace(text, i + 1);
  if (text.charCodeAt(at) === 0x7d) return spans;
  while (at < text.length) {
    const nameEnd = stringEnd(text, at);
    const valueStart = skipSpace(text, skipSpace(text, nameEnd) + 1); // past the colon
    const end = valueEnd(text, valueStart);
    spans.push(at, nameEnd, valueStart, end);
    const next = skipSpace(text, end);
    if (text.charCodeAt(next) !== 0x2c) break; // the closing brace
    at = skipSpace(text, next + 1);
  }
  return spans;
}

/** The name a member's string (`text` from `start` to `end`, quotes included) stands for, as `JSON.parse` reads it. */
export function memberName(text: string, start: number, end: number): string {
  const inner = text.slice(start + 1, end - 1);
  return inner.includes("\\") ? JSON.parse(text.slice(start, end)) as string : inner;
}
