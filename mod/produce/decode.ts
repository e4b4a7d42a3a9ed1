/**
 * Turning an object's bytes into the elements of its top-level JSON array.
 *
 * @module
 */

import { syntaxReason } from "./json_stream.ts";
import { parseJson } from "../records/numbers.ts";

/** The elements of a file, or why the file is invalid. */
export type Parsed = { readonly elements: readonly unknown[]; readonly text: string } | { readonly invalid: string };

/**
 * Decodes `body` with `encoding` (fatal on invalid bytes, a BOM stripped) and
 * parses it as a JSON array. Never throws.
 */
export function parseBody(body: Uint8Array, encoding: string): Parsed {
  if (body.byteLength === 0) return { invalid: "empty body" };
  let text: string;
  try {
    text = new TextDecoder(encoding, { fatal: true }).decode(body);
  } catch {
    return { invalid: undecodable(encoding) };
  }
  return parseText(text);
}

/** The reason for a body that does not decode. */
export const undecodable = (encoding: string): string =>
  `not valid ${encoding}: the body holds bytes that do not decode`;

/**
 * Parses decoded text as a JSON array. Syntax errors in an array are worded
 * by the streaming splitter, so that both paths give the same reason.
 */
export function parseText(text: string): Parsed {
  if (text.trim() === "") return { invalid: "empty body (whitespace only)" };
  let value: unknown;
  try {
    value = parseJson(text);
  } catch (error) {
    return { invalid: `not JSON: ${syntaxReason(text, (error as Error).message)}` };
  }
  if (!Array.isArray(value)) {
    const got = value === null ? "null" : typeof value === "object" ? "an object" : typeof value;
    return { invalid: `expected a JSON array at the top level, got ${got}` };
  }
  return { elements: value, text };
}

/**
 * The text of a record as the file holds it (not re-serialized, so `1e400`
 * and `9007199254740993` stay as written), cut to `cap` characters with a
 * marker.
 */
export function rawText(text: string, cap: number): string {
  const trimmed = text.trim();
  if (trimmed.length <= cap) return trimmed;
  const marker = `…[truncated, ${trimmed.length} chars in all]`;
  return trimmed.slice(0, Math.max(0, cap - marker.length)) + marker;
}

/**
 * The JSON text of a rejected element, cut to `cap` characters with a marker.
 * Never throws: a value too deep to serialize gets a placeholder.
 */
export function rawJson(element: unknown, cap: number): string {
  let text: string;
  try {
    text = JSON.stringify(element) ?? String(element);
  } catch (error) {
    return `[not serializable: ${(error as Error).message}]`;
  }
  if (text.length <= cap) return text;
  const marker = `…[truncated, ${text.length} chars in all]`;
  return text.slice(0, Math.max(0, cap - marker.length)) + marker;
}
