/**
 * Field checks shared by the record types. A check returns `undefined` when
 * the value is acceptable, or what was wrong with it.
 *
 * @module
 */

import type { JsonKind } from "./drift.ts";
import { InexactNumber } from "./numbers.ts";

/**
 * Returns a problem description, or `undefined` when the value passes.
 * `json` is the JSON type the check wants, for the drift report.
 */
export type Check = ((value: unknown) => string | undefined) & { readonly json?: JsonKind };

/** `check`, marked as wanting JSON type `json`. */
function wants(json: JsonKind, check: (value: unknown) => string | undefined): Check {
  return Object.assign(check, { json });
}

/** The JSON type each field's check wants (fields whose check names none are left out). */
export function jsonKinds(fields: Readonly<Record<string, Check>>): Readonly<Record<string, JsonKind>> {
  const kinds: Record<string, JsonKind> = {};
  for (const name in fields) {
    const json = fields[name]!.json;
    if (json !== undefined) kinds[name] = json;
  }
  return kinds;
}

const MAX_SHOWN_CHARS = 40;

/** Describes a JSON value for a rejection reason, e.g. `string "1994"`. */
export function describe(value: unknown): string {
  if (value === undefined) return "nothing (the field is missing)";
  if (value instanceof InexactNumber) return `number ${value.source} (${value.why})`;
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "string": {
      const shown = value.length > MAX_SHOWN_CHARS ? `${value.slice(0, MAX_SHOWN_CHARS)}…` : value;
      return `string ${JSON.stringify(shown)}`;
    }
    case "number":
    case "boolean":
      return `${typeof value} ${String(value)}`;
    case "object":
      return "an object";
    default:
      return typeof value;
  }
}

/** True for a plain JSON object (not null, not an array). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Why a string cannot be stored as text: a lone surrogate (`\ud800`), which UTF-8 cannot encode. */
function illFormed(v: string): string | undefined {
  if (v.isWellFormed()) return undefined;
  const at = [...v].findIndex((c) => c.length === 1 && c >= "\ud800" && c <= "\udfff");
  return `contains a lone surrogate (\\u${v.codePointAt(at)!.toString(16)}), which UTF-8 cannot store`;
}

/** A string with at least one non-whitespace character, well-formed. */
export const text: Check = wants(
  "string",
  (v) => typeof v === "string" && v.trim() !== "" ? illFormed(v) : `expected non-blank text, got ${describe(v)}`,
);

/** Any well-formed string, empty included. */
export const string: Check = wants(
  "string",
  (v) => typeof v === "string" ? illFormed(v) : `expected a string, got ${describe(v)}`,
);

/** `true` or `false`. */
export const boolean: Check = wants(
  "boolean",
  (v) => typeof v === "boolean" ? undefined : `expected a boolean, got ${describe(v)}`,
);

/** A JSON number with a whole value in `[min, max]`; `1994.0` counts. */
export function integer(min: number, max: number): Check {
  const expected = `expected an integer ${min}–${max}`;
  return wants(
    "number",
    (v) =>
      typeof v === "number" && Number.isInteger(v) && v >= min && v <= max
        ? undefined
        : `${expected}, got ${describe(v)}`,
  );
}

/** A finite JSON number in `[min, max]`. */
export function number(min: number, max: number): Check {
  const expected = `expected a number ${min}–${max}`;
  return wants(
    "number",
    (v) => typeof v === "number" && v >= min && v <= max ? undefined : `${expected}, got ${describe(v)}`,
  );
}

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** A `YYYY-MM-DD` string naming a real calendar date. */
export const isoDate: Check = wants("string", (v) => {
  const m = typeof v === "string" ? ISO_DATE.exec(v) : null;
  if (m === null) return `expected a YYYY-MM-DD date, got ${describe(v)}`;
  const year = Number(m[1]), month = Number(m[2]), day = Number(m[3]);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) {
    return `expected a real calendar date, got ${describe(v)}`;
  }
  return undefined;
});

/** Runs each field's check in order and returns the first failure as `field: problem`. */
export function firstProblem(
  data: Record<string, unknown>,
  fields: Readonly<Record<string, Check>>,
): string | undefined {
  for (const name in fields) {
    const problem = fields[name]!(Object.hasOwn(data, name) ? data[name] : undefined);
    if (problem !== undefined) return `${name}: ${problem}`;
  }
  return undefined;
}

/** A type guard and a throwing parser built from a problem function. */
export interface Guards<T> {
  /** True when the value is a valid `T`. */
  is(value: unknown): value is T;
  /**
   * Returns the value as a `T`.
   *
   * @throws {TypeError} naming the first failing field
   */
  parse(value: unknown): T;
}

/** Builds the `isX`/`parseX` pair for a record type from its problem function. */
export function guards<T>(name: string, problem: (value: unknown) => string | undefined): Guards<T> {
  return {
    is: (value): value is T => problem(value) === undefined,
    parse(value) {
      const found = problem(value);
      if (found !== undefined) throw new TypeError(`Invalid ${name}: ${found}`);
      return value as T;
    },
  };
}

/** Like {@linkcode firstProblem}, but first checks that `data` is an object. */
export function dataProblem(data: unknown, fields: Readonly<Record<string, Check>>): string | undefined {
  return isObject(data) ? firstProblem(data, fields) : `data: expected an object, got ${describe(data)}`;
}
