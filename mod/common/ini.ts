/**
 * An INI parser with the rules of Python's `configparser` as the original
 * program used it (`ConfigParser(interpolation=None)`, every other setting
 * at its default):
 *
 * - `[section]` headers (text after the last `]` is ignored, as configparser does);
 * - `key = value` or `key: value` (the first `=` or `:` splits);
 * - comments are whole lines that start with `#` or `;` (after optional
 *   indentation); there are **no inline comments**, so
 *   `DATE_STORE_FORMAT = %Y-%m-%d ;%H` keeps ` ;%H` and `pa#ss` stays whole;
 * - a line indented deeper than its key continues the value (joined with a
 *   newline); blank lines inside a value are kept, trailing ones dropped;
 * - a section or a key (case-folded) given twice is an error, with both line numbers;
 * - a UTF-8 BOM is skipped.
 *
 * @module
 */
/** An INI syntax error, with the 1-based line it was found on. */
export class IniSyntaxError extends SyntaxError {
  /** The 1-based line of the error. */
  readonly line: number;

  /** Creates the error for `line`. */
  constructor(message: string, line: number) {
    super(`line ${line}: ${message}`);
    this.name = "IniSyntaxError";
    this.line = line;
  }
}

/** Sections in file order: name → (lower-cased key → value). */
export type IniSections = Map<string, Map<string, string>>;

const COMMENT = /^[#;]/;
const SECTION = /^\[(.+)\]/;

/**
 * Parses INI text as configparser does. Keys are lower-cased (configparser's
 * `optionxform`); section names keep their case.
 *
 * @throws {IniSyntaxError} on a line that is neither a section, a key, a comment nor a continuation, or on a duplicate
 */
export function parseIni(text: string): IniSections {
  const sections: IniSections = new Map();
  const sectionLines = new Map<string, number>();
  const keyLines = new Map<string, number>();
  let current: Map<string, string> | undefined;
  let currentName = "";
  /** The key whose value later lines may continue, and its line's indentation. */
  let open: { key: string; indent: number; blanks: number } | undefined;
  const lines = text.replace(/^\uFEFF/, "").split(/\r\n|\n|\r/);
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const raw = lines[i]!;
    const trimmed = raw.trim();
    if (COMMENT.test(trimmed)) continue;
    if (trimmed === "") {
      // A blank line stays part of a value that an indented line continues.
      if (open !== undefined) open.blanks++;
      continue;
    }
    const indent = raw.length - raw.trimStart().length;
    if (current !== undefined && open !== undefined && indent > open.indent) {
      current.set(open.key, `${current.get(open.key)}${"\n".repeat(open.blanks + 1)}${trimmed}`);
      open.blanks = 0;
      continue;
    }
    const header = SECTION.exec(trimmed);
    if (header !== null) {
      currentName = header[1]!;
      const first = sectionLines.get(currentName);
      if (first !== undefined) {
        throw new IniSyntaxError(`section [${currentName}] given twice (first on line ${first})`, n);
      }
      sectionLines.set(currentName, n);
      sections.set(currentName, current = new Map());
      open = undefined;
      continue;
    }
    const split = trimmed.search(/[=:]/);
    if (split <= 0) {
      throw new IniSyntaxError(
        split === 0 ? "a key is missing before '=' or ':'" : "expected [section], KEY = value or a comment",
        n,
      );
    }
    if (current === undefined) throw new IniSyntaxError("a key outside any [section]", n);
    const key = trimmed.slice(0, split).trim().toLowerCase();
    const id = `${currentName}\0${key}`;
    const first = keyLines.get(id);
    if (first !== undefined) {
      throw new IniSyntaxError(`key '${key}' given twice in [${currentName}] (first on line ${first})`, n);
    }
    keyLines.set(id, n);
    current.set(key, trimmed.slice(split + 1).trim());
    open = { key, indent, blanks: 0 };
  }
  return sections;
}
