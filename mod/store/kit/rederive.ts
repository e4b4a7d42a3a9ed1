/**
 * Derived columns follow their settings: the settings a type's derived
 * columns were computed with (e.g. `AWESOME_MIN_RATING` for `apps.is_awesome`)
 * are recorded in `meta`; when a run or a replay finds other settings, it
 * recomputes the stored rows from their stored columns (no fetch) and
 * records the new settings, inside its own transaction.
 *
 * @module
 */
import { type Cell, type RecordType, settingOf } from "../../records/record_type.ts";
import type { SqlClient } from "./client.ts";
import { hasTable } from "./client.ts";
import { readMeta } from "./bookkeeping.ts";
import { quote } from "./sql.ts";
import { rawColumn } from "./raw_text.ts";
import type { Filled, Rederived } from "../store.ts";
import { FILL_META, tableNames } from "./tamper.ts";
import { EXTRA_COLUMN } from "../../records/record_type.ts";
import { withoutFields } from "../../records/extra.ts";
import { parseJson } from "../../records/numbers.ts";

/** The `meta` name of the recorded settings: JSON, type → key → value. */
const META = "derived_settings";
/** Rows read at a time, by natural key. */
const PAGE = 5000;

/** The settings of each type that has any, with defaults filled in. */
function settingsOf(
  types: readonly RecordType[],
  settings: Readonly<Record<string, number>>,
): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const type of types) {
    if (type.settings === undefined || type.rederive === undefined) continue;
    out[type.type] = Object.fromEntries(
      Object.keys(type.settings).sort().map((key) => [key, settingOf(type, key, { ingestionTime: "", settings })]),
    );
  }
  return out;
}

/**
 * Brings the derived columns of the stored rows in line with `settings`,
 * when they were computed with other settings (or with settings not
 * recorded, as before this was kept); returns the record of `settings` for the run to write at its commit. Runs in the
 * caller's transaction.
 */
export async function rederiveRows(
  c: SqlClient,
  types: readonly RecordType[],
  settings: Readonly<Record<string, number>>,
): Promise<Rederived> {
  const now = settingsOf(types, settings);
  const recordedText = await readMeta(c, META);
  let recorded: Record<string, Record<string, number>> | undefined;
  try {
    recorded = recordedText === undefined ? undefined : JSON.parse(recordedText);
  } catch {
    recorded = undefined;
  }
  let rows = 0;
  const changes: string[] = [];
  for (const type of types) {
    const want = now[type.type];
    if (want === undefined) continue;
    const had = recorded?.[type.type];
    const changed = Object.entries(want).filter(([key, value]) => had?.[key] !== value);
    if (changed.length === 0) continue;
    const n = await rederiveTable(c, type, settings);
    rows += n;
    // Settings never recorded (a database from before this was kept) are only worth a line when rows changed.
    if (had !== undefined || n > 0) {
      changes.push(
        ...changed.map(([key, value]) => `${key} ${had?.[key] === undefined ? "(not recorded)" : had[key]} → ${value}`),
      );
    }
  }
  // Written by the run at its commit (under PostgreSQL's commit lock), not here: a row lock on `meta` held from the
  // start would make runs side by side wait for each other.
  const record: Record<string, string> = recordedText === JSON.stringify(now) ? {} : { [META]: JSON.stringify(now) };
  const filled = await fillColumns(c, types, settings, record);
  return { rows, changes, record, filled };
}

/** How many failing rows a fill names. */
const NAMED = 5;

/**
 * Fills the columns added for fields their type gained (meta `columns_to_fill`) from the stored rows' `extra`: a
 * row whose kept field passes the type's checks (its `toRow`, given the row's columns and its kept fields) gets the
 * column and loses the field from `extra` (NULL when nothing is left); a row whose field fails keeps it in `extra`,
 * the column NULL (it stays a row: it was valid without the field), and is counted. Puts the cleared record in
 * `record`, for the run's commit.
 */
async function fillColumns(
  c: SqlClient,
  types: readonly RecordType[],
  settings: Readonly<Record<string, number>>,
  record: Record<string, string>,
): Promise<Filled> {
  const pendingText = await readMeta(c, FILL_META);
  const pending = tableNames(pendingText);
  const out = { rows: 0, columns: [] as string[], failed: 0, failedKeys: [] as string[] };
  if (Object.keys(pending).length === 0) return out;
  for (const type of types) {
    const columns = (pending[type.table] ?? []).filter((name) => type.columns.some((col) => col.name === name));
    if (columns.length === 0) continue;
    if (await hasTable(c, type.table)) await fillTable(c, type, columns, settings, out);
    out.columns.push(...columns.map((name) => `${type.table}.${name}`));
    delete pending[type.table];
  }
  record[FILL_META] = JSON.stringify(pending);
  return out;
}

/** Fills `columns` of one type's table from `extra`, a page at a time in natural-key order. */
async function fillTable(
  c: SqlClient,
  type: RecordType,
  columns: readonly string[],
  settings: Readonly<Record<string, number>>,
  out: { rows: number; failed: number; failedKeys: string[] },
): Promise<void> {
  const names = type.columns.map((col) => col.name);
  const update = `UPDATE ${quote(type.table)} SET ${
    [...columns, EXTRA_COLUMN].map((n, i) => `${quote(n)} = $${i + 1}`).join(", ")
  } WHERE ${type.key.map((k, i) => `${quote(k)} = $${columns.length + i + 2}`).join(" AND ")}`;
  for await (const page of tablePages(c, type, "filling", { withExtra: true })) {
    for (const row of page) {
      const text = row[EXTRA_COLUMN] as string;
      let extra: Record<string, unknown>;
      try {
        // Read as a record is: a repeated name gives its last value, a number no double holds is refused by the check.
        extra = parseJson(text) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (typeof extra !== "object" || extra === null || Array.isArray(extra)) continue;
      const carried = columns.filter((name) => Object.hasOwn(extra, name));
      if (carried.length === 0) continue;
      // The record as the type sees it: its kept fields, then its stored columns (the new ones left out).
      const data: Record<string, unknown> = { ...extra };
      for (const name of names) if (!columns.includes(name)) data[name] = row[name];
      const ingestionTime = typeof row.ingestion_time === "string" ? row.ingestion_time : "";
      const next = type.toRow(data, { ingestionTime, settings });
      if (typeof next === "string") {
        out.failed++;
        if (out.failedKeys.length < NAMED) {
          out.failedKeys.push(`${type.table} (${type.key.map((k) => row[k]).join(", ")})`);
        }
        continue;
      }
      // The field leaves extra, every occurrence of it (a fresh load keeps none of a field its type knows); the
      // other members stay as they were written.
      const values = columns.map((name) => carried.includes(name) ? next[names.indexOf(name)]! : null);
      await c.run(update, [
        ...values,
        withoutFields(text, carried),
        ...type.key.map((k) => row[k] as string | number),
      ] as (string | number)[]);
      out.rows++;
    }
  }
}

/** Whether two cells are the same value (SQLite and PostgreSQL return numbers for every numeric column here). */
const same = (a: unknown, b: Cell) => a === b || (typeof a === "bigint" && Number(a) === b);

/** Recomputes the rows of one type's table, a page at a time in natural-key order; returns how many changed. */
async function rederiveTable(
  c: SqlClient,
  type: RecordType,
  settings: Readonly<Record<string, number>>,
): Promise<number> {
  if (!(await hasTable(c, type.table))) return 0;
  const names = type.columns.map((col) => col.name);
  const update = `UPDATE ${quote(type.table)} SET ${names.map((n, i) => `${quote(n)} = $${i + 1}`).join(", ")} ` +
    `WHERE ${type.key.map((k, i) => `${quote(k)} = $${names.length + i + 1}`).join(" AND ")}`;
  let changed = 0;
  for await (const page of tablePages(c, type, "re-deriving")) {
    for (const row of page) {
      const next = type.rederive!(row, { ingestionTime: "", settings });
      // A stored row today's rules reject as a whole stays as it is: only derived values are recomputed here.
      if (typeof next === "string" || next.every((cell, i) => same(row[names[i]!], cell))) continue;
      await c.run(update, [...next, ...type.key.map((k) => row[k] as string | number)]);
      changed++;
    }
  }
  return changed;
}

/**
 * The rows of a type's table (its columns, and `extra` with `withExtra`, then only rows that have one), a page at a
 * time in natural-key order. Text is read whole: SQLite's driver stops a text value at its first U+0000, and a key cut
 * short would match another row. Signals and timers get their turn between pages (SQLite answers without a pause), and
 * a page must move on: the same last key twice would read the same page forever. `doing` names the pass in that error.
 */
async function* tablePages(
  c: SqlClient,
  type: RecordType,
  doing: string,
  { withExtra = false } = {},
): AsyncGenerator<Record<string, unknown>[]> {
  const keyList = type.key.map(quote).join(", ");
  const keyParams = type.key.map((_, i) => `$${i + 1}`).join(", ");
  const columns = withExtra ? [...type.columns, { name: EXTRA_COLUMN, sqlType: "TEXT" }] : type.columns;
  const read = (col: { name: string; sqlType: string }) =>
    col.sqlType === "TEXT" ? rawColumn(c.dialect, quote(col.name)) : quote(col.name);
  const where = withExtra ? [`${quote(EXTRA_COLUMN)} IS NOT NULL`] : [];
  const select = `SELECT ${columns.map((col) => `${read(col)} AS ${quote(col.name)}`).join(", ")} FROM ${
    quote(type.table)
  }`;
  let after: unknown[] | undefined;
  for (;;) {
    const conditions = after === undefined ? where : [...where, `(${keyList}) > (${keyParams})`];
    const page = (await c.all<Record<string, unknown>>(
      `${select}${conditions.length === 0 ? "" : ` WHERE ${conditions.join(" AND ")}`} ORDER BY ${keyList} ` +
        `LIMIT ${PAGE}`,
      (after ?? []) as (string | number)[],
    )).map(decodeText);
    await new Promise((resolve) => setTimeout(resolve, 0));
    yield page;
    if (page.length < PAGE) return;
    const last = page.at(-1)!;
    const next = type.key.map((k) => last[k]);
    if (after !== undefined && JSON.stringify(next) === JSON.stringify(after)) {
      throw new Error(`${doing} ${type.table} made no progress past key ${JSON.stringify(next)}`);
    }
    after = next;
  }
}

const decoder = new TextDecoder();

/** A row with its text columns read as bytes (SQLite) turned back into text. */
function decodeText(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) out[k] = v instanceof Uint8Array ? decoder.decode(v) : v;
  return out;
}
