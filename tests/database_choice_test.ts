/**
 * `DATABASE_URL` against `DATABASE_NAME`: the setting of the higher layer
 * wins, and whenever both are set a run says in one line which one it used
 * and how to choose the other. The first example of docs/postgres.md is run
 * as written (against the test PostgreSQL).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseConfigText, resolveConfig } from "../mod/config/config.ts";
import { postgresStore } from "../mod/store/postgres/kind.ts";
import { sqliteStore } from "../mod/store/sqlite/kind.ts";
import { LAUNCHER, ROOT, storeSpecOf, withTempDir } from "./helpers.ts";
import { pgClient, pgTest, withPgDatabase } from "./pg.ts";

const PATH = "/etc/bucketload/config.ini";
const PROFILE = "[p]\nBUCKET_NAME = ./b\nDATABASE_NAME = p.sqlite3\n";
const URL_A = "postgres://u:pw@db.example:5432/a";
const URL_B = "postgres://u:pw@db.example:5432/b";
const resolve = (text: string, env: Record<string, string> = {}) =>
  resolveConfig({ sections: parseConfigText(text, PATH), configPath: PATH, profile: "p", env });

Deno.test("database choice: the plain DATABASE_URL outranks the file's DATABASE_NAME, and says so in one line", () => {
  const c = resolve(PROFILE, { DATABASE_URL: URL_A });
  assert.equal(storeSpecOf(c, postgresStore)?.url, URL_A);
  assert.ok(c.store.notice !== undefined);
  assert.match(c.store.notice, /^Loading into PostgreSQL \(environment variable DATABASE_URL\), not SQLite: /);
  assert.match(c.store.notice, /'DATABASE_NAME' in profile 'p' of \/etc\/bucketload\/config\.ini is set too/);
  assert.match(
    c.store.notice,
    /to load into SQLite, unset DATABASE_URL for this command, or set BUCKETLOAD_DATABASE_NAME/,
  );
  assert.doesNotMatch(c.store.notice, /pw|\n/);
});

Deno.test("database choice: BUCKETLOAD_DATABASE_NAME outranks the plain DATABASE_URL, and says how to choose it", () => {
  const c = resolve(PROFILE, { DATABASE_URL: URL_A, BUCKETLOAD_DATABASE_NAME: "x.sqlite3" });
  assert.equal(storeSpecOf(c, postgresStore)?.url, undefined);
  assert.equal(storeSpecOf(c, sqliteStore)?.path, "/etc/bucketload/x.sqlite3");
  assert.match(c.store.notice ?? "", /^Loading into SQLite \(environment variable BUCKETLOAD_DATABASE_NAME\)/);
  assert.match(c.store.notice ?? "", /to load into PostgreSQL, remove environment variable BUCKETLOAD_DATABASE_NAME/);
});

Deno.test("database choice: a DATABASE_URL key beside DATABASE_NAME in one profile is used; BUCKETLOAD_DATABASE_NAME beats it", () => {
  const both = `${PROFILE}DATABASE_URL = ${URL_A}\n`;
  const c = resolve(both);
  assert.equal(storeSpecOf(c, postgresStore)?.url, URL_A);
  assert.match(c.store.notice ?? "", /to load into SQLite, remove 'DATABASE_URL' in profile 'p'/);
  const env = resolve(both, { BUCKETLOAD_DATABASE_NAME: "x.sqlite3" });
  assert.equal(storeSpecOf(env, postgresStore)?.url, undefined);
  // The key outranks the plain variable; a different plain one is named as not used.
  const plain = resolve(both, { DATABASE_URL: URL_B });
  assert.equal(storeSpecOf(plain, postgresStore)?.url, URL_A);
  assert.match(plain.store.notice ?? "", /environment variable DATABASE_URL is set too and not used/);
});

Deno.test("database choice: one setting alone says nothing", () => {
  assert.equal(resolve(PROFILE).store.notice, undefined);
  assert.equal(resolve("[p]\nBUCKET_NAME = ./b\n", { DATABASE_URL: URL_A }).store.notice, undefined);
  assert.equal(storeSpecOf(resolve("[p]\nBUCKET_NAME = ./b\n", { DATABASE_URL: URL_A }), postgresStore)?.url, URL_A);
});

pgTest(
  "docs/postgres.md's first example loads the dev profile into PostgreSQL, not its SQLite file, and says so",
  async () => {
    const doc = await Deno.readTextFile(join(ROOT, "docs", "postgres.md"));
    const example = doc.match(/```sh\n(DATABASE_URL=\S+ deno task run --profile (\S+))\n```/);
    assert.ok(example !== null, "docs/postgres.md lost its first example");
    const profile = example[2]!;
    const mtime = (path: string) => Deno.stat(path).then((s) => s.mtime?.getTime(), () => null);
    const before = await mtime(join(ROOT, `${profile}.sqlite3`));
    await withTempDir(async (dir) => {
      await withPgDatabase(async (url) => {
        // The repository's own config.ini and profile, as the example runs it; the registry file goes elsewhere so
        // that the checkout stays clean (the example's point is which database is used).
        const child = await new Deno.Command(Deno.execPath(), {
          args: [...LAUNCHER, "--profile", profile],
          cwd: ROOT,
          clearEnv: true,
          env: {
            DATABASE_URL: url,
            BUCKETLOAD_PROCESSED_FILES_FILENAME: join(dir, "processed.json"),
            NO_COLOR: "1",
            HOME: dir,
            PATH: Deno.env.get("PATH") ?? "",
            ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
          },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const stderr = new TextDecoder().decode(child.stderr);
        assert.equal(child.code, 0, stderr);
        assert.match(stderr, /Loading into PostgreSQL \(environment variable DATABASE_URL\), not SQLite/);
        assert.equal(stderr.split("\n").filter((l) => /Loading into/.test(l)).length, 1);
        const sql = pgClient(url);
        try {
          const [row] = await sql`SELECT count(*)::int AS n FROM songs`;
          assert.ok((row!.n as number) > 0, "no rows in PostgreSQL");
        } finally {
          await sql.end();
        }
        assert.equal(await mtime(join(ROOT, `${profile}.sqlite3`)), before, "the profile's SQLite file was written");
      });
    });
  },
);
