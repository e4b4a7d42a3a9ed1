/**
 * A rejected record's raw text, stored so that it comes back byte for byte
 * from both stores: PostgreSQL's `text` cannot hold U+0000, and SQLite's
 * driver reads a text value only up to its first U+0000. A text holding
 * U+0000 (or starting with the escape mark) is stored as the mark and its
 * JSON string literal; SQLite's column is read as bytes, so that rows stored
 * before the escape also come back whole.
 *
 * @module
 */
import type { SqlDialect } from "./client.ts";

/** U+FFFF, a noncharacter: what starts an escaped raw text. */
const MARK = "\uffff";

/** The raw text as stored. */
export function encodeRaw(raw: string | null): string | null {
  if (raw === null) return null;
  return raw.includes("\u0000") || raw.startsWith(MARK) ? MARK + JSON.stringify(raw) : raw;
}

const decoder = new TextDecoder();

/** The raw text as the run saw it, from the value {@linkcode rawColumn} read. */
export function decodeRaw(stored: string | Uint8Array | null | undefined): string | null {
  if (stored === null || stored === undefined) return null;
  const text = typeof stored === "string" ? stored : decoder.decode(stored);
  if (!text.startsWith(MARK)) return text;
  try {
    const raw = JSON.parse(text.slice(1));
    return typeof raw === "string" ? raw : text;
  } catch {
    return text;
  }
}

/** The SQL that reads the raw column `expr` whole: as bytes in SQLite. */
export function rawColumn(dialect: SqlDialect, expr: string): string {
  return dialect.name === "sqlite" ? `CAST(${expr} AS BLOB)` : expr;
}
