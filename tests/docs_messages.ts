/**
 * The messages the docs quote: backticked spans that read as a line a
 * program prints (see {@linkcode isMessage}), outside fenced blocks.
 *
 * @module
 */
import { join } from "node:path";
import { pages } from "./docs_blocks.ts";
import { ROOT } from "./helpers.ts";

/** Pages whose quotes are not checked (none now: docs/architecture.md's rewrite joined the table). */
export const UNCHECKED_PAGES: ReadonlySet<string> = new Set();

/** A quoted message, whitespace folded as the page wraps it. */
export interface Quote {
  readonly page: string;
  readonly line: number;
  readonly text: string;
}

/** Spans that are code, a command, a header or SQL, not a line a program prints. */
const NOT_A_MESSAGE =
  /^(deno|npm|docker|curl|eval|cd|ssh|bash|sh|jq|dist\/|tools\/|\$|-|\*\/|[A-Z_]+=|INSERT|SELECT|PRAGMA|ExecStart|OnCalendar|Authorization:|concurrencyPolicy|\{|\[|<)/;

/** Whether a backticked span reads as a message: four words or more, prose, not code. */
export function isMessage(text: string): boolean {
  if (text.startsWith("bucketload: ")) return /[a-z]{2,}/.test(text.slice("bucketload: ".length));
  if (NOT_A_MESSAGE.test(text)) return false;
  return text.split(" ").length >= 4 && /[a-z]{2,} [a-z]{2,}/.test(text);
}

/** Every quoted message of the checked pages. */
export async function quotedMessages(): Promise<Quote[]> {
  const out: Quote[] = [];
  for (const page of await pages()) {
    if (UNCHECKED_PAGES.has(page)) continue;
    const text = await Deno.readTextFile(join(ROOT, page));
    // Fenced blocks and HTML comments are not prose: blank them, keeping the line numbers.
    const prose = text.replace(/^([ \t]*)(`{3,})[^\n]*\n[\s\S]*?^\1\2[ \t]*$/gm, (b) => b.replace(/[^\n]/g, " "))
      .replace(/<!--[\s\S]*?-->/g, (c) => c.replace(/[^\n]/g, " "));
    for (const m of prose.matchAll(/(?<!`)`([^`]+)`(?!`)/g)) {
      const span = m[1]!.replace(/\s+/g, " ").trim();
      if (isMessage(span)) out.push({ page, line: prose.slice(0, m.index).split("\n").length, text: span });
    }
  }
  return out;
}
