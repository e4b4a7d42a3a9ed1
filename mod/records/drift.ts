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
 * `type`, a known field of another JSON type; `more`, observations past the
 * per-type bound of distinct fields (its `field` is empty).
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

/** Distinct fields kept per record type per run; observations past it are counted in one `more` entry. */
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
    for (const field in data) {
      const value = data[field];
      const expected = kinds.get(field);
      // The common case, a primitive of the rule's type, costs one typeof (`object` also matches null and arrays).
      if (typeof value === expected && expected !== "object") continue;
      if (expected === undefined) {
        const e = { type, field: fieldName(field), kind: "unknown", expected: null, seen: jsonKind(value) } as const;
        this.#count({ ...e, records: 1, example: "" }, value);
      } else {
        const seen = jsonKind(value);
        if (seen !== expected) {
          this.#count({ type, field, kind: "type", expected, seen, records: 1, example: "" }, value);
        }
      }
    }
  }

  /** Adds entries counted elsewhere (a part's, a file's), in their order. */
  add(entries: readonly DriftEntry[]): void {
    for (const e of entries) {
      if (e.kind === "more") this.#countMore(e.type, e.records);
      else this.#count(e, undefined);
    }
  }

  #count(e: DriftEntry, value: unknown): void {
    // An unknown field is one entry whatever its values' types; a type mismatch is one per type seen.
    const id = `${e.type}\u0000${e.field}\u0000${e.kind}\u0000${e.kind === "type" ? e.seen : ""}`;
    const known = this.#entries.get(id);
    if (known !== undefined) {
      known.records += e.records;
      return;
    }
    let fields = this.#fields.get(e.type);
    if (fields === undefined) this.#fields.set(e.type, fields = new Set());
    if (!fields.has(e.field) && fields.size >= this.#bound) return this.#countMore(e.type, e.records);
    fields.add(e.field);
    const entry = { ...e, example: value === undefined ? e.example : example(value) };
    this.#entries.set(id, { entry, records: e.records });
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
}
