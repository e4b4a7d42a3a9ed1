/**
 * One fetched body to its file's write: decoded, parsed and classified
 * whole, and the pieces the streamed readers share with it (a part's
 * builder, a failed or invalid file's outcome).
 *
 * @module
 */
import { parseBody, rawJson, rawText } from "./decode.ts";
import { ElementTexts } from "./json_stream.ts";
import { type Classifier, DriftCounter, PART_DRIFT_FIELDS, type RowCell } from "../records/mod.ts";
import { TooLargeError, tooLargeReason } from "../source/source.ts";
import type { FilePart, FileWrite, Rejection } from "../store/store.ts";
import { GzipError } from "./formats.ts";
import type { Timing } from "../common/telemetry.ts";
/** What became of one key, ready to write. A streamed file comes as parts, then its `file`. */
export type Produced =
  /** Some rows of a streamed file; more parts or its `file` (or `failed`) follow. `chars`: its records' text. */
  | { readonly kind: "part"; readonly key: string; readonly part: FilePart; readonly chars: number }
  /**
   * The file's (last) rows and its registry entry. An invalid file discards the parts before it. `chars`: the
   * text of the records it carries (of the body, when read whole).
   */
  | {
    readonly kind: "file";
    readonly key: string;
    readonly file: FileWrite;
    readonly timing?: Timing;
    readonly chars?: number;
  }
  | { readonly kind: "missing"; readonly key: string; readonly reason: string; readonly timing?: Timing }
  | { readonly kind: "failed"; readonly key: string; readonly reason: string; readonly timing?: Timing };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Elements per part of a streamed file, at most. */
export const PART_ELEMENTS = 5000;

/**
 * Characters of record text (the elements' JSON, as written) per part of a
 * streamed file, at most: a part ends at {@linkcode PART_ELEMENTS} records or
 * at this much text, whichever comes first, so that what a part holds does
 * not grow with the records' size (a single record longer than this, up to
 * `MAX_RECORD_BYTES`, is a part of its own). The real bucket's records are
 * ~200–1,000 characters: 1,000–5,000 of them to a part.
 */
export const PART_TEXT_CHARS = 1 * 1024 * 1024;

/** The record text a message carries, which the queue to the writer counts: 0 for one without rows. */
export function producedChars(produced: Produced): number {
  return produced.kind === "part" || produced.kind === "file" ? produced.chars ?? 0 : 0;
}

/** Options of {@linkcode processBody}. */
export interface ProcessOptions {
  /** `BUCKET_ENCODING`: the body's encoding (a WHATWG label). */
  readonly encoding: string;
  /** Classifies each element. */
  readonly classifier: Classifier;
  /** When the file was processed, for its registry entry. */
  readonly processedAt: Date;
  /** `MAX_REJECTED_RAW_BYTES`: raw JSON kept per rejection. */
  readonly rawCap: number;
  /** Elements per part of a streamed file. @default {PART_ELEMENTS} */
  readonly partElements?: number | undefined;
  /** Characters of record text per part of a streamed file. @default {PART_TEXT_CHARS} */
  readonly partChars?: number | undefined;
  /** A longer record (characters of its JSON text) makes the file invalid, unread. @default {Infinity} */
  readonly maxRecordChars?: number | undefined;
}

/** An invalid file's write: one whole-file rejection, no rows. */
export function invalidFile(key: string, reason: string, bytes: number, processedAt: Date): FileWrite {
  return {
    key,
    status: "invalid",
    processedAt,
    bytes,
    rows: new Map(),
    records: 0,
    rejections: [{ index: null, typeName: null, reason, raw: null }],
    ignored: new Map(),
  };
}

/** Collects classified elements into a part: rows by type, rejections, ignored counts. */
export class PartBuilder {
  /** Rows by type name: their count, and their cells in one array. */
  rows = new Map<string, { count: number; cells: RowCell[] }>();
  /** Rejected elements. */
  rejections: Rejection[] = [];
  /** Ignored elements (unknown types), by type name. */
  ignored = new Map<string, number>();
  /** Drift of the part's records. */
  drift = new DriftCounter(PART_DRIFT_FIELDS);
  /** Rows in the part. */
  records = 0;
  /** Elements in the part. */
  elements = 0;
  /** Characters of the elements' text in the part. */
  chars = 0;
  readonly #maxElements: number;
  readonly #maxChars: number;

  /** Starts `key`'s first part: `rawCap` caps a rejection's raw JSON, `limits` say when a part is full. */
  constructor(readonly key: string, readonly classifier: Classifier, readonly rawCap: number, limits: {
    readonly partElements?: number | undefined;
    readonly partChars?: number | undefined;
  } = {}) {
    this.#maxElements = limits.partElements ?? PART_ELEMENTS;
    this.#maxChars = limits.partChars ?? PART_TEXT_CHARS;
  }

  /** Whether the part is to end before an element of `chars` characters: it holds its count, or its text would pass. */
  full(chars: number): boolean {
    return this.elements > 0 && (this.elements >= this.#maxElements || this.chars + chars > this.#maxChars);
  }

  /**
   * Classifies one element; `text` is its source text, or a function that gives it as UTF-8 (called only when
   * needed): kept for a rejection and cut into a row's `extra` (else the element is re-serialized).
   */
  add(element: unknown, index: number, text?: string | (() => Uint8Array)) {
    this.elements++;
    let source = text as (() => Uint8Array) | undefined;
    if (typeof text === "string") {
      this.chars += text.length;
      source = () => encoder.encode(text);
    }
    const outcome = this.classifier.classify(element, this.drift, source);
    if (outcome.kind === "row") {
      let bucket = this.rows.get(outcome.type.type);
      if (bucket === undefined) this.rows.set(outcome.type.type, bucket = { count: 0, cells: [] });
      for (const cell of outcome.row) bucket.cells.push(cell);
      bucket.count++;
      this.records++;
    } else if (outcome.kind === "ignored") {
      this.ignored.set(outcome.typeName, (this.ignored.get(outcome.typeName) ?? 0) + 1);
    } else {
      this.rejections.push({
        index,
        typeName: outcome.typeName,
        reason: outcome.reason,
        raw: text === undefined
          ? rawJson(element, this.rawCap)
          : rawText(typeof text === "string" ? text : decoder.decode(text()), this.rawCap),
      });
    }
  }

  /** Records an element that is not even JSON (an NDJSON line), with its text. */
  rejectText(index: number, reason: string, text: string) {
    this.elements++;
    this.chars += text.length;
    this.rejections.push({ index, typeName: null, reason, raw: rawText(text, this.rawCap) });
  }

  /** The part so far; the builder starts over. */
  take(): FilePart {
    const part: FilePart = {
      rows: this.rows,
      rejections: this.rejections,
      ignored: this.ignored,
      records: this.records,
      ...(this.drift.empty ? {} : { drift: this.drift.entries(), driftShapes: this.drift.shapes() }),
    };
    this.drift = new DriftCounter(PART_DRIFT_FIELDS);
    this.rows = new Map();
    this.rejections = [];
    this.ignored = new Map();
    this.records = 0;
    this.elements = 0;
    this.chars = 0;
    return part;
  }
}

/**
 * What a read error while streaming makes of a file: past the cap, or
 * corrupt gzip, it is invalid (the same bytes come again); anything else
 * fails it (retried on the next run).
 */
export function readFailure(key: string, error: unknown, bytes: number, processedAt: Date): Produced {
  if (error instanceof TooLargeError) {
    const reason = tooLargeReason({ bytes: error.bytes, cap: error.cap, declared: false });
    return { kind: "file", key, file: invalidFile(key, reason, error.bytes, processedAt) };
  }
  if (error instanceof GzipError) {
    return { kind: "file", key, file: invalidFile(key, error.message, bytes, processedAt) };
  }
  return { kind: "failed", key, reason: `body read failed while streaming: ${(error as Error).message}` };
}

/** Whether `encoding` (a WHATWG label) names UTF-8. */
const isUtf8 = (encoding: string) => encoding === "utf-8" || new TextDecoder(encoding).encoding === "utf-8";

/** Turns one fetched body into its file's rows (flat, by type), rejections and ignored counts. */
export function processBody(key: string, body: Uint8Array, options: ProcessOptions): FileWrite {
  const parsed = parseBody(body, options.encoding);
  if ("invalid" in parsed) return invalidFile(key, parsed.invalid, body.byteLength, options.processedAt);
  const builder = new PartBuilder(key, options.classifier, options.rawCap);
  // A rejection's raw text and a row's extra are cut from the record's text as written: the body's UTF-8 (re-encoded
  // from the text in another encoding) is scanned for them only as far as the last record that needs one, and not at
  // all in a clean file.
  let texts: ElementTexts | undefined;
  const bytesOf = (index: number) => {
    texts ??= new ElementTexts(isUtf8(options.encoding) ? body : encoder.encode(parsed.text));
    return texts.at(index)!;
  };
  parsed.elements.forEach((element, index) => builder.add(element, index, () => bytesOf(index)));
  const part = builder.take();
  return { key, status: "loaded", processedAt: options.processedAt, bytes: body.byteLength, ...part };
}
