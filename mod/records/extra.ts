/**
 * A row's `extra`: the members of its record's `data` that the type's rules
 * do not know, cut from the record's own text. Each member is kept as the
 * file writes it (its name's string and its value's text, escapes,
 * number spellings and the whitespace inside an object or array value
 * included), in the record's order, every occurrence of a repeated name;
 * they are joined by `,` into one object's text, `{` … `}`, without the
 * whitespace between members. So `1e400`, `12345678901234567890123`, `1.50`,
 * `-0`, `"\u00e9"`, `"\/"` and `{"a":1,"a":2}` stay as written.
 *
 * Read back with `JSON.parse` (or the records' own `parseJson`), a repeated
 * name gives its last value, as the record's own validation does; the text
 * keeps the others.
 *
 * @module
 */
import type { JsonKind } from "./drift.ts";
import { jsonKind } from "./drift.ts";
import { memberName, memberSpans, skipSpace } from "./json_text.ts";

/** The value of the last member named `name` among `spans` of `text`, as its span; -1 when there is none. */
function lastMember(text: string, spans: readonly number[], name: string): number {
  for (let m = spans.length - 4; m >= 0; m -= 4) {
    if (memberName(text, spans[m]!, spans[m + 1]!) === name) return m;
  }
  return -1;
}

/**
 * The `extra` of a record whose text is `element` (an object that parsed,
 * with an object `data`): the members of its `data` (the last `data`, which
 * is the one `JSON.parse` gives) whose name `kinds` does not know, or whose
 * parsed value in `data` is of another JSON type than `kinds` says; `null`
 * when there are none. A field the rules know, of their type, is never kept,
 * not even an earlier occurrence that the last one overrides.
 */
export function extraText(
  element: string,
  kinds: ReadonlyMap<string, JsonKind>,
  data: Readonly<Record<string, unknown>>,
): string | null {
  const start = skipSpace(element, 0);
  const top = memberSpans(element, start);
  const at = lastMember(element, top, "data");
  if (at === -1) return null;
  const spans = memberSpans(element, top[at + 2]!);
  let extra: string | null = null;
  for (let m = 0; m < spans.length; m += 4) {
    const name = memberName(element, spans[m]!, spans[m + 1]!);
    const expected = kinds.get(name);
    if (expected !== undefined) {
      const value = data[name];
      if (typeof value === expected && expected !== "object") continue;
      if (jsonKind(value) === expected) continue;
    }
    const member = `${element.slice(spans[m]!, spans[m + 1]!)}:${element.slice(spans[m + 2]!, spans[m + 3]!)}`;
    extra = extra === null ? `{${member}` : `${extra},${member}`;
  }
  return extra === null ? null : `${extra}}`;
}

/**
 * `extra` (an object's text) without every member named one of `names`, the
 * others as they are: `null` when none is left.
 */
export function withoutFields(extra: string, names: readonly string[]): string | null {
  const spans = memberSpans(extra, skipSpace(extra, 0));
  const kept: string[] = [];
  for (let m = 0; m < spans.length; m += 4) {
    if (names.includes(memberName(extra, spans[m]!, spans[m + 1]!))) continue;
    kept.push(`${extra.slice(spans[m]!, spans[m + 1]!)}:${extra.slice(spans[m + 2]!, spans[m + 3]!)}`);
  }
  return kept.length === 0 ? null : `{${kept.join(",")}}`;
}
