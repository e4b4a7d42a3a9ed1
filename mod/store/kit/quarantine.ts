/**
 * The quarantine's SQL for `replay`, written once for every store: the
 * rejected records to re-validate with their file's list position, the row a
 * record's natural key already has, and the settlement (records loaded leave
 * the quarantine, changed reasons are stored, the files' counts follow).
 *
 * @module
 */
import { oneLine } from "../../common/printable.ts";
import { decodeRaw, rawColumn } from "./raw_text.ts";
import type { RecordType, RowCell } from "../../records/mod.ts";
import type { FilePart, Quarantined, QuarantinePage, Replayer, ReplayFilter, ReplaySettlement } from "../store.ts";
import { quote } from "./sql.ts";
import { type SqlClient, truth } from "./client.ts";

/** Runs one store call at a time (PostgreSQL's connection), or as it comes (SQLite). */
export type Serial = <T>(fn: () => Promise<T>) => Promise<T>;

/** A store's {@linkcode Replayer}: the kit's SQL over `c`, and the store's own row writes. */
export function kitReplayer(
  c: SqlClient,
  types: readonly RecordType[],
  writeRows: (key: string, part: FilePart, position: number) => Promise<void>,
  serial: Serial = (fn) => fn(),
): Replayer {
  return {
    quarantined: (filter, page) => serial(() => quarantined(c, types, filter, page)),
    rowSource: (type, row) => serial(() => rowSource(c, type, row)),
    writeRows: (key, part, position) => serial(() => writeRows(key, part, position)),
    settle: (s) => serial(() => settle(c, s)),
  };
}

/**
 * The rejected records `filter` matches, each with its file's registry state
 * and list position: the one registered with it, else (a file registered
 * before positions were kept) the one its rows in the tables carry. Runs in
 * a run's transaction, so the schema is this build's.
 */
async function quarantined(
  c: SqlClient,
  types: readonly RecordType[],
  filter: ReplayFilter,
  page: QuarantinePage = { afterId: 0, limit: Number.MAX_SAFE_INTEGER },
): Promise<Quarantined[]> {
  const rows = await c.all<{
    id: number;
    key: string;
    index: number | null;
    typeName: string | null;
    reason: string;
    raw: string | Uint8Array | null;
    position: number | null;
    registered: unknown;
    deleted: unknown;
  }>(
    `SELECT r.id, r.key, r.record_index AS "index", r.type AS "typeName", r.reason, ${
      rawColumn(c.dialect, "r.raw")
    } AS raw,
       p.position, p.key IS NOT NULL AND p.status = 'loaded' AS registered,
       p.deleted_at IS NOT NULL AS deleted
     FROM rejected_records AS r LEFT JOIN processed_files AS p ON p.key = r.key
     WHERE (CAST($1 AS TEXT) IS NULL OR r.type = $1)
       AND (CAST($2 AS TEXT) IS NULL OR ${c.dialect.position("r.reason", "CAST($2 AS TEXT)")} > 0)
       AND r.id > $3
     ORDER BY r.id LIMIT $4`,
    [filter.type ?? null, filter.reason ?? null, page.afterId, page.limit],
  );
  const known = new Map<string, number | null>();
  const positionOf = async (key: string, stored: number | null) => {
    if (stored !== null) return Number(stored);
    if (!known.has(key)) known.set(key, await rowsPosition(c, types, key));
    return known.get(key)!;
  };
  const out: Quarantined[] = [];
  for (const r of rows) {
    const registered = truth(r.registered);
    out.push({
      id: Number(r.id),
      key: r.key,
      index: r.index === null ? null : Number(r.index),
      typeName: r.typeName,
      reason: r.reason,
      raw: decodeRaw(r.raw),
      registered,
      deleted: truth(r.deleted),
      position: registered && r.index !== null ? await positionOf(r.key, r.position) : null,
    });
  }
  return out;
}

/** The list position a file's rows carry (every row of a file has its file's), or `null` when none is left. */
async function rowsPosition(c: SqlClient, types: readonly RecordType[], key: string): Promise<number | null> {
  for (const t of types) {
    const [row] = await c.all<{ pos: number | null }>(
      `SELECT max(source_pos) AS pos FROM ${quote(t.table)} WHERE source_key = $1`,
      [key],
    );
    if (row?.pos != null) return Number(row.pos);
  }
  return null;
}

/** The `source_key` of the row of `type` with `row`'s natural key, or `undefined` when there is none. */
async function rowSource(c: SqlClient, type: RecordType, row: readonly RowCell[]): Promise<string | undefined> {
  const at = type.key.map((k) => type.columns.findIndex((col) => col.name === k));
  const [found] = await c.all<{ source_key: string }>(
    `SELECT source_key FROM ${quote(type.table)} WHERE ${
      type.key.map((k, i) => `${quote(k)} = $${i + 1}`).join(" AND ")
    }`,
    at.map((i) => row[i]!),
  );
  return found?.source_key;
}

/** Removes loaded (and now ignored) records from quarantine, stores changed reasons, and updates the files' counts. */
async function settle(c: SqlClient, s: ReplaySettlement): Promise<void> {
  for (let i = 0; i < s.released.length; i += 1000) {
    await c.run(
      `DELETE FROM rejected_records WHERE id IN (SELECT CAST(v.value AS BIGINT) FROM ${c.dialect.textList(1, "v")})`,
      [s.released.slice(i, i + 1000).map(String)],
    );
  }
  for (const { id, reason } of s.reasons) {
    await c.run("UPDATE rejected_records SET reason = $1 WHERE id = $2", [oneLine(reason), id]);
  }
  for (const [key, f] of s.files) {
    await c.run(
      `UPDATE processed_files SET records = records + $1, ignored = ignored + $2, rejected = rejected - $3
       WHERE key = $4`,
      [f.loaded, f.ignored, f.loaded + f.ignored, key],
    );
  }
}
