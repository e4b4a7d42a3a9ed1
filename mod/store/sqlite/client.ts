/**
 * The store kit's {@linkcode SqlClient} over a node:sqlite database: `$n`
 * parameters become `?n`, statements are prepared once and kept.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { bindable, type SqlClient, type SqlDialect, type SqlValue } from "../kit/client.ts";

/** SQLite's side of the differences the kit writes around. */
export const SQLITE: SqlDialect = {
  name: "sqlite",
  position: (text, needle) => `instr(${text}, ${needle})`,
  textList: (n, alias) => `(SELECT value, key AS ord FROM json_each(?${n})) AS ${alias}`,
  jsonList: (n, alias) => `(SELECT value, key AS ord FROM json_each(?${n})) AS ${alias}`,
  // A temp table lives as long as the connection: emptied for each run.
  tempTable: (name, columns) => [`CREATE TEMP TABLE IF NOT EXISTS ${name} (${columns})`, `DELETE FROM temp.${name}`],
  tableQuery: "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?1",
  columnQuery: "SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2",
};

/** A client over `db`. */
export function sqliteClient(db: DatabaseSync): SqlClient {
  const statements = new Map<string, StatementSync>();
  const prepare = (sql: string) => {
    let stmt = statements.get(sql);
    if (stmt === undefined) statements.set(sql, stmt = db.prepare(sql.replaceAll(/\$(\d+)/g, "?$1")));
    return stmt;
  };
  const bind = (params: readonly SqlValue[]) => params.map((p) => bindable(p, "sqlite") as string | number | null);
  return {
    dialect: SQLITE,
    run: (sql, params = []) => Promise.resolve(Number(prepare(sql).run(...bind(params)).changes)),
    all: <T>(sql: string, params: readonly SqlValue[] = []) =>
      Promise.resolve(prepare(sql).all(...bind(params)).map((r) => ({ ...r }) as T)),
  };
}
