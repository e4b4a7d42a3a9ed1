/**
 * Schema drift: fields a record type's rules do not know, and fields whose
 * JSON type differs from the rule's, counted per type with one example each.
 * A file's parts count it; a run sums its loaded files' counts; the store
 * keeps the run's with the run.
 *
 * @module
 */
import { InexactNumber } from "./numbers.ts";

/** A JSON value's type as drift names it. */
export type JsonKind = "string" | "number" | "boolean" | "null" | "object" | "array";

/**
 * What a drift entry counts: `unknown`, a field the rules do not know;
 * `type`, a known field of another JSON type; `more`, the records with a
 * field past the per-type bound of distinct fields (each record once,
 * however many such fields it has; its `field` is empty).
 */
export type DriftKind = "unknown" | "type" | "more";

/** One drift entry: a type's field seen `records` times in a run (or a part of one). */
export interface DriftEntry {
  /** The record type, e.g. `song`. */
  readonly type: string;
  /** The field; empty for `more`. */
  readonly field: string;
  /** What the entry counts. */
  readonly kind: DriftKind;
  /** The rule's JSON type (`type` entries). */
  readonly expected: JsonKind | null;
  /** The JSON type seen (`unknown` and `type` entries). */
  readonly seen: JsonKind | null;
  /** Records with it. */
  readonly records: number;
  /** The first value seen, as JSON text, capped; `null` for `more`. */
  readonly example: string | null;
}

/** Distinct fields kept per record type per run; the records with a field past it are counted in one `more` entry. */
export const DRIFT_FIELDS_PER_TYPE = 20;

/**
 * Distinct fields kept per record type per part of a file: a part counts
 * wider than a run keeps, so that the run's first fields are the same
 * however its files were cut into parts (exact up to this many per part).
 */
export const PART_DRIFT_FIELDS = 1000;

/** Characters of an example value kept. */
const EXAMPLE_CHARS = 120;

/** A JSON value's {@linkcode JsonKind}. */
export function jsonKind(value: unknown): JsonKind {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (value instanceof InexactNumber) return "number";
  const t = typeof value;
  return t === "string" || t === "number" || t === "boolean" ? t : "object";
}

/** `text` cut to `max` UTF-16 units with an ellipsis, never between the halves of a pair. */
function cap(text: string, max: number): string {
  if (text.length <= max) return text;
  const end = /[\ud800-\udbff]/.test(text[max - 1]!) ? max - 1 : max;
  return `${text.slice(0, end)}…`;
}

function example(value: unknown): string {
  return cap(value instanceof InexactNumber ? value.source : JSON.stringify(value) ?? "null", EXAMPLE_CHARS);
}

/**
 * A field name as it can be stored and shown: one with U+0000 (PostgreSQL's
 * text cannot hold it) or a lone surrogate (UTF-8 cannot) is kept as its JSON
 * string; a long one is cut.
 */
function fieldName(field: string): string {
  return cap(field.includes("\u0000") || !field.isWellFormed() ? JSON.stringify(field) : field, EXAMPLE_CHARS);
}

/**
 * The drifted fields (as drift names them) of `records` records of `type`
 * that drifted alike: what a part tells the run besides its entries, so that
 * the run counts in `more` each record with a field past its own bound once.
 */
export interface DriftShape {
  /** The record type. */
  readonly type: string;
  /** The fields, in the first record's order. */
  readonly fields: readonly string[];
  /** Records with exactly these fields drifted. */
  readonly records: number;
}

interface Counted {
  entry: DriftEntry;
  records: number;
}

/**
 * Counts drift, bounded: at most {@linkcode DRIFT_FIELDS_PER_TYPE} distinct
 * fields per type, first come first kept, so that the same records in the
 * same order always give the same entries.
 */
export class DriftCounter {
  readonly #entries = new Map<string, Counted>();
  /** Distinct fields per type, and each type's `more` entry. */
  readonly #fields = new Map<string, Set<string>>();
  readonly #more = new Map<string, Counted>();
  /** The records observed, by type and drifted fields. */
  readonly #shapes = new Map<string, { type: string; fields: readonly string[]; records: number }>();
  readonly #bound: number;

  /** A counter keeping at most `bound` distinct fields per record type. */
  constructor(bound = DRIFT_FIELDS_PER_TYPE) {
    this.#bound = bound;
  }

  /** True when nothing was counted. */
  get empty(): boolean {
    return this.#entries.size === 0 && this.#more.size === 0;
  }

  /**
   * Counts one record's drift: its data against its type's field kinds
   * (`kinds` maps each known field to its JSON type).
   */
  observe(type: string, kinds: ReadonlyMap<string, JsonKind>, data: Record<string, unknown>): void {
    let fields: string[] | undefined;
    let past = false;
    for (const field in data) {
      const value = data[field];
      const expected = kinds.get(field);
      // The common case, a primitive of the rule's type, costs one typeof (`object` also matches null and arrays).
      if (typeof value === expected && expected !== "object") continue;
      let name = field;
      let kept: boolean;
      if (expected === undefined) {
        name = fieldName(field);
        kept = this.#count(type, name, "unknown", null, jsonKind(value), 1, value);
      } else {
        const seen = jsonKind(value);
        if (seen === expected) continue;
        kept = this.#count(type, field, "type", expected, seen, 1, value);
      }
      (fields ??= []).push(name);
      if (!kept) past = true;
    }
    if (fields === undefined) return;
    if (past) this.#countMore(type, 1);
    const id = `${type}\u0000${fields.join("\u0000")}`;
    const shape = this.#shapes.get(id);
    if (shape !== undefined) shape.records++;
    else this.#shapes.set(id, { type, fields, records: 1 });
  }

  /**
   * Adds what was counted elsewhere (a part's, a file's), in its order. With the `shapes` it observed
   * ({@linkcode shapes}), `more` counts each record with a field past this counter's bound once; without them, a
   * field past the bound adds its own count (a record with two such fields counts twice).
   */
  add(entries: readonly DriftEntry[], shapes?: readonly DriftShape[]): void {
    for (const e of entries) {
      if (e.kind === "more") {
        if (shapes === undefined) this.#countMore(e.type, e.records);
        continue;
      }
      const kept = this.#count(e.type, e.field, e.kind, e.expected, e.seen, e.records, undefined, e.example);
      if (!kept && shapes === undefined) this.#countMore(e.type, e.records);
    }
    // The fields kept are now those the records above would have given one by one: a field of theirs not kept is
    // past the bound for good.
    for (const shape of shapes ?? []) {
      const kept = this.#fields.get(shape.type);
      if (shape.fields.some((field) => kept?.has(field) !== true)) this.#countMore(shape.type, shape.records);
    }
  }

  /** Counts `records` of an entry; false when its field is past the bound (nothing counted). */
  #count(
    type: string,
    field: string,
    kind: "unknown" | "type",
    expected: JsonKind | null,
    seen: JsonKind | null,
    records: number,
    value: unknown,
    shown: string | null = null,
  ): boolean {
    // An unknown field is one entry whatever its values' types; a type mismatch is one per type seen.
    const id = `${type}\u0000${field}\u0000${kind}\u0000${kind === "type" ? seen : ""}`;
    const known = this.#entries.get(id);
    if (known !== undefined) {
      known.records += records;
      return true;
    }
    let fields = this.#fields.get(type);
    if (fields === undefined) this.#fields.set(type, fields = new Set());
    if (!fields.has(field) && fields.size >= this.#bound) return false;
    fields.add(field);
    const entry = { type, field, kind, expected, seen, records, example: value === undefined ? shown : example(value) };
    this.#entries.set(id, { entry, records });
    return true;
  }

  #countMore(type: string, records: number): void {
    const more = this.#more.get(type);
    if (more !== undefined) more.records += records;
    else {
      const entry = { type, field: "", kind: "more" as const, expected: null, seen: null, records, example: null };
      this.#more.set(type, { entry, records });
    }
  }

  /** The entries counted, each type's `more` last. */
  entries(): DriftEntry[] {
    const out = [...this.#entries.values(), ...this.#more.values()].map((c) => ({ ...c.entry, records: c.records }));
    return out;
  }

  /** The records observed, by type and drifted fields (not those added from elsewhere), for {@linkcode add}. */
  shapes(): DriftShape[] {
    return [...this.#shapes.values()].map((s) => ({ ...s }));
  }
}
