/**
 * One rule decides a listed key's fate: `fateOf` (the dry run, a claim's
 * second look) and `fateSql` (a listing compared in the database) give the
 * same fate for every registry entry, fingerprint and run option, on both
 * stores.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { type Fate, fateOf, type FateRules, fateSql } from "../mod/store/fate.ts";
import type { Fingerprint, RegistryEntry } from "../mod/store/store.ts";
import { pgQuery, pgTest, withPgDatabase } from "./pg.ts";

interface Case {
  readonly key: string;
  readonly entry: RegistryEntry | undefined;
  readonly now: Fingerprint;
}

/** Every kind of registry entry against one listed fingerprint. */
function cases(): Case[] {
  const now = { etag: "e1", size: 10 };
  const out: Case[] = [{ key: "k0", entry: undefined, now }];
  const prints = [null, now, { etag: "e2", size: 10 }, { etag: "e1", size: 11 }];
  for (const status of ["loaded", "invalid"] as const) {
    for (const fingerprint of prints) {
      for (const deleted of [false, true]) {
        out.push({ key: `k${out.length}`, entry: { status, fingerprint, deleted }, now });
      }
    }
  }
  return out;
}

const RULES: FateRules[] = [false, true].flatMap((all) =>
  [false, true].flatMap((loadedOnly) => [false, true].map((detect) => ({ all, loadedOnly, detect })))
);

/** The tables the SQL reads, as `p` (registry) and `l` (listing), with every case in them. */
function fixtureSql(): string[] {
  const text = (v: string | null) => v === null ? "NULL" : `'${v}'`;
  const rows = cases();
  const registry = rows.filter((c) => c.entry !== undefined).map(({ key, entry }) =>
    `(${text(key)}, ${text(entry!.status)}, ${text(entry!.fingerprint?.etag ?? null)}, ${
      entry!.fingerprint?.size ?? "NULL"
    }, ${entry!.deleted ? "'2024-01-01'" : "NULL"})`
  );
  return [
    "CREATE TABLE reg (key TEXT, status TEXT, etag TEXT, size BIGINT, deleted_at TEXT)",
    "CREATE TABLE lst (key TEXT, etag TEXT, size BIGINT)",
    `INSERT INTO reg VALUES ${registry.join(", ")}`,
    `INSERT INTO lst VALUES ${rows.map((c) => `(${text(c.key)}, ${text(c.now.etag)}, ${c.now.size})`).join(", ")}`,
  ];
}

function querySql(rules: FateRules, bool: (b: boolean) => string): string {
  const sql = fateSql({ all: bool(rules.all), loadedOnly: bool(rules.loadedOnly), detect: bool(rules.detect) });
  return `SELECT l.key, ${sql} AS fate FROM lst AS l LEFT JOIN reg AS p ON p.key = l.key ORDER BY l.key`;
}

function expected(rules: FateRules): Map<string, Fate> {
  return new Map(cases().map((c) => [c.key, fateOf(c.entry, c.now, rules)]));
}

Deno.test("fateOf and fateSql agree on every case, on SQLite", () => {
  const db = new DatabaseSync(":memory:");
  for (const sql of fixtureSql()) db.exec(sql);
  const seen = new Set<Fate>();
  for (const rules of RULES) {
    const rows = db.prepare(querySql(rules, (b) => (b ? "1" : "0"))).all() as { key: string; fate: Fate }[];
    assert.deepEqual(new Map(rows.map((r) => [r.key, r.fate])), expected(rules), JSON.stringify(rules));
    for (const r of rows) seen.add(r.fate);
  }
  // The cases reach every fate.
  assert.deepEqual([...seen].sort(), ["changed", "new", "processed", "refetch"]);
  db.close();
});

pgTest("fateOf and fateSql agree on every case", async () => {
  await withPgDatabase(async (url) => {
    for (const sql of fixtureSql()) await pgQuery(url, sql);
    for (const rules of RULES) {
      const rows = await pgQuery(url, querySql(rules, (b) => String(b)));
      assert.deepEqual(new Map(rows.map((r) => [r.key, r.fate])), expected(rules), JSON.stringify(rules));
    }
  });
});

Deno.test("fateOf: the rule in words", () => {
  const now = { etag: "e1", size: 1 };
  const rules = { all: false, loadedOnly: false, detect: true };
  assert.equal(fateOf(undefined, now, rules), "new");
  assert.equal(fateOf({ status: "loaded", fingerprint: now, deleted: false }, now, rules), "processed");
  assert.equal(
    fateOf({ status: "loaded", fingerprint: { etag: "e0", size: 1 }, deleted: false }, now, rules),
    "changed",
  );
  // Without change detection a changed ETag is not looked at; a deletion that came back always is.
  const off = { ...rules, detect: false };
  assert.equal(
    fateOf({ status: "loaded", fingerprint: { etag: "e0", size: 1 }, deleted: false }, now, off),
    "processed",
  );
  assert.equal(fateOf({ status: "loaded", fingerprint: now, deleted: true }, now, off), "changed");
  assert.equal(
    fateOf({ status: "invalid", fingerprint: null, deleted: false }, now, { ...rules, loadedOnly: true }),
    "refetch",
  );
});
