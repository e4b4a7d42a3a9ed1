/**
 * The dispatch of one array element to exactly one outcome: a row of its
 * record type, ignored (a type no rule loads), or rejected with its reason.
 *
 * @module
 */
import type { DriftCounter, JsonKind } from "./drift.ts";
import { extraText } from "./extra.ts";
import { describe, isObject } from "./fields.ts";
import type { RecordType, RowCell, RowContext } from "./record_type.ts";

/** What became of one element of a file's array. */
export type Outcome =
  /** `row`: the type's columns' cells, then the `extra` cell (the fields it does not know as JSON text, or null). */
  | { readonly kind: "row"; readonly type: RecordType; readonly row: RowCell[] }
  | { readonly kind: "ignored"; readonly typeName: string }
  | { readonly kind: "rejected"; readonly typeName: string | null; readonly reason: string };

function fieldCount(data: Record<string, unknown>): number {
  let n = 0;
  for (const _ in data) n++;
  return n;
}

/** Dispatches elements on their exact `type` to a {@linkcode RecordType}. */
export class Classifier {
  readonly #types: ReadonlyMap<string, RecordType>;
  readonly #context: RowContext;
  /** Each type's field kinds, for drift (a type that declares none is left out). */
  readonly #kinds: ReadonlyMap<string, ReadonlyMap<string, JsonKind>>;
  readonly #keepExtra: boolean;

  /** Builds a classifier for `types`, deriving columns with `context`. */
  constructor(types: readonly RecordType[], context: RowContext) {
    this.#types = new Map(types.map((t) => [t.type, t]));
    this.#context = context;
    this.#keepExtra = context.keepExtra ?? true;
    this.#kinds = new Map(
      types.filter((t) => t.fields !== undefined).map((t) => [t.type, new Map(Object.entries(t.fields!))]),
    );
  }

  /**
   * Classifies one element, counting its type's drift into `drift`. `text` is the element's text as the file
   * writes it, as UTF-8 (or a function that gives it, asked only for a row with fields its type does not know): its
   * `extra` is cut from it. Without it, the text is `JSON.stringify(element)`. Never throws.
   */
  classify(element: unknown, drift?: DriftCounter, text?: Uint8Array | (() => Uint8Array)): Outcome {
    if (!isObject(element)) {
      return { kind: "rejected", typeName: null, reason: `element: expected an object, got ${describe(element)}` };
    }
    const typeName = Object.hasOwn(element, "type") ? element.type : undefined;
    if (typeof typeName !== "string") {
      return { kind: "rejected", typeName: null, reason: `type: expected a string, got ${describe(typeName)}` };
    }
    const type = this.#types.get(typeName);
    if (type === undefined) return { kind: "ignored", typeName };
    const data = Object.hasOwn(element, "data") ? element.data : undefined;
    if (!isObject(data)) {
      return { kind: "rejected", typeName, reason: `data: expected an object, got ${describe(data)}` };
    }
    const row = type.toRow(data, this.#context);
    const kinds = this.#kinds.get(typeName);
    let extra: string | null = null;
    // A row's known fields all passed their checks, so had the rule's JSON type: only more fields can be drift, and
    // only they go to `extra` (a clean record costs the count of its fields, as drift alone did).
    if (
      kinds !== undefined && (drift !== undefined || this.#keepExtra) &&
      (typeof row === "string" || fieldCount(data) > kinds.size)
    ) {
      drift?.observe(typeName, kinds, data);
      if (this.#keepExtra && typeof row !== "string") {
        const source = typeof text === "function" ? text() : text ?? new TextEncoder().encode(JSON.stringify(element));
        extra = extraText(source, kinds, data);
      }
    }
    if (typeof row === "string") return { kind: "rejected", typeName, reason: row };
    if (this.#context.rejectNul) {
      const at = row.findIndex((cell) => typeof cell === "string" && cell.includes("\u0000"));
      if (at !== -1) {
        return {
          kind: "rejected",
          typeName,
          reason: `${
            type.columns[at]?.name ?? "source_key"
          }: contains U+0000 (NUL), which PostgreSQL text cannot store`,
        };
      }
    }
    const cells: RowCell[] = row;
    cells.push(extra);
    return { kind: "row", type, row: cells };
  }
}
