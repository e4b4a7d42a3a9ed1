/**
 * The status report's totals as a database keeps them (schema 8: `registry_counts`, `rejection_counts`,
 * `table_rows`), and the same counted from its tables, reasons grouped here rather than in SQL: what the tests compare.
 *
 * @module
 */
import { RECORD_TYPES } from "../mod/records/mod.ts";
import { reasonGroup } from "../mod/run/replay.ts";
import type { Row } from "./helpers.ts";

/** Registered files by `status/deleted`, rejections by reason group, rows by data table: zeros left out. */
export interface Totals {
  registry: Record<string, number>;
  rejections: Record<string, number>;
  rows: Record<string, number>;
}

const sorted = (entries: [string, number][]) =>
  Object.fromEntries(entries.filter(([, n]) => n !== 0).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0));

/** Adds up rows of (name, n) by name. */
function sum(rows: readonly Row[], name: (r: Row) => string, n: (r: Row) => number): Record<string, number> {
  const out = new Map<string, number>();
  for (const r of rows) out.set(name(r), (out.get(name(r)) ?? 0) + n(r));
  return sorted([...out]);
}

export const TABLES: readonly string[] = RECORD_TYPES.map((t) => t.table);
const registryName = (r: Row) => `${r.status}/${Number(r.deleted) === 0 ? "kept" : "deleted"}`;

/** The totals the database keeps, and the same counted from its tables (reasons grouped here, not in SQL). */
export async function totalsOf(ask: (sql: string) => Promise<Row[]>): Promise<{ kept: Totals; counted: Totals }> {
  const kept: Totals = {
    registry: sum(
      await ask("SELECT status, deleted, files FROM registry_counts"),
      registryName,
      (r) => Number(r.files),
    ),
    rejections: sum(
      await ask("SELECT reason, records FROM rejection_counts"),
      (r) => String(r.reason),
      (r) => Number(r.records),
    ),
    rows: sum(await ask(`SELECT name, "rows" AS n FROM table_rows`), (r) => String(r.name), (r) => Number(r.n)),
  };
  const counted: Totals = {
    registry: sum(
      await ask("SELECT status, CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END AS deleted FROM processed_files"),
      registryName,
      () => 1,
    ),
    rejections: sum(await ask("SELECT reason FROM rejected_records"), (r) => reasonGroup(String(r.reason)), () => 1),
    rows: sum(
      (await Promise.all(TABLES.map((t) => ask(`SELECT '${t}' AS name, count(*) AS n FROM ${t}`)))).flat(),
      (r) => String(r.name),
      (r) => Number(r.n),
    ),
  };
  return { kept, counted };
}

/** Asserts that the kept totals are a recount's (`ask` runs SQL on the database); returns them. */
export async function assertTotals(ask: (sql: string) => Promise<Row[]>, what: string): Promise<Totals> {
  const { kept, counted } = await totalsOf(ask);
  if (JSON.stringify(kept) !== JSON.stringify(counted)) {
    throw new Error(`${what}: the kept totals are not a recount's:\n${JSON.stringify({ kept, counted }, null, 1)}`);
  }
  return kept;
}
