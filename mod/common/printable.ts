/**
 * Text from the bucket shown to a person or written to a log: its control
 * characters escaped, so that a file cannot clear the screen, retitle the
 * window or forge report lines (ESC, BEL, C1, a newline in a field name).
 *
 * @module
 */

/** C0 controls, DEL and C1 controls, and the bidirectional overrides and isolates (text that reads backwards). */
// deno-lint-ignore no-control-regex
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
/** The same, but for a line feed and a tab, which a whole report may hold. */
// deno-lint-ignore no-control-regex
const CONTROLS_BUT_LINES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

const escape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** `text` on one line: every control character (line feeds and tabs too) as `\uXXXX`. */
export function oneLine(text: string): string {
  return text.replace(CONTROLS, escape);
}

/** `text` safe for a terminal or a log file: control characters as `\uXXXX`, line feeds and tabs kept. */
export function terminalSafe(text: string): string {
  return text.replace(CONTROLS_BUT_LINES, escape);
}

/** Whether `text` holds a character {@linkcode oneLine} would escape. */
export function hasControls(text: string): boolean {
  CONTROLS.lastIndex = 0;
  const found = CONTROLS.test(text);
  CONTROLS.lastIndex = 0;
  return found;
}
