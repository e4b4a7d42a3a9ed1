/**
 * An INI parser with the rules of Python's `configparser` (the original
 * program's), raw values (no `%` interpolation), and
 * `inline_comment_prefixes=("#", ";")`:
 *
 * - `[section]` headers; `key = value` or `key: value` (the first `=` or `:` splits);
 * - full-line comments start with `#` or `;` (after optional indentation);
 * - an inline comment needs whitespace before its `#` or `;`, so `pa#ss` stays whole;
 * - an indented line continues the value above it (joined with a newline);
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
const INLINE_COMMENT = /\s[#;]/;
const SECTION = /^\[([^\]]+)\]\s*$/;

/** Cuts an inline comment: a `#` or `;` that follows whitespace. */
function stripInline(value: string): string {
  const at = value.search(INLINE_COMMENT);
  return (at === -1 ? value : value.slice(0, at)).trim();
}

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
  let lastKey: string | undefined;
  const lines = text.replace(/^\uFEFF/, "").split(/\r\n|\n|\r/);
  for (let i = 0; i < lines.length; i++) {
    const n = i + 1;
    const raw = lines[i]!;
    const trimmed = raw.trim();
    if (trimmed === "") {
      lastKey = undefined;
      continue;
    }
    if (COMMENT.test(trimmed)) continue;
    const indented = /^\s/.test(raw);
    if (indented && current !== undefined && lastKey !== undefined) {
      const more = stripInline(raw);
      if (more !== "") current.set(lastKey, `${current.get(lastKey)}\n${more}`);
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
      lastKey = undefined;
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
    current.set(key, stripInline(trimmed.slice(split + 1)));
    lastKey = key;
  }
  return sections;
}
