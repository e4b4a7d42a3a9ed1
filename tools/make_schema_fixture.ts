/**
 * Makes one database fixture for `tests/upgrade_test.ts`: a database as a
 * shipped build left it, kept in `tests/fixtures/schemas/`.
 *
 * ```sh
 * deno run -A tools/make_schema_fixture.ts REV                 # SQLite: tests/fixtures/schemas/v<N>-<rev>.db
 * deno run -A tools/make_schema_fixture.ts --postgres URL REV  # PostgreSQL: tests/fixtures/schemas/v<N>-<rev>.sql
 * deno run -A tools/make_schema_fixture.ts --original          # the Python original's: original.db
 * ```
 *
 * REV is a commit, or `.`: this checkout as it is, for the change that adds
 * a schema version (name it with `--label`, e.g. `--label repair` gives
 * `v6-repair.db`; by default a commit's short id, `worktree` for `.`). The build is checked out
 * with `git worktree add` under a temporary folder (nothing in this checkout
 * changes), `deno install` fetches its npm packages, and its CLI loads
 * `tests/cases/basic` from a folder once, with a profile of its own. SQLite:
 * the database is copied compacted (`VACUUM INTO`). PostgreSQL: the build
 * loads into a new database on the server at URL (any database on it; the
 * fixture's is created and dropped again), which `pg_dump --inserts` writes as
 * plain SQL (comments and psql meta-commands left out, so that any client can
 * run it). `--original`: `tests/cases/original/schema.sql` as an SQLite file.
 *
 * The file is named after the schema version it holds and the build, e.g.
 * `v5-b46e014.db`; the test reads every file in the folder.
 *
 * @module
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import postgres from "postgres";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
/** Where the fixtures are kept. */
export const SCHEMA_FIXTURES = join(ROOT, "tests", "fixtures", "schemas");

/** Runs a command; throws with its output when it fails. */
async function run(command: string, args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  const out = await new Deno.Command(command, {
    args,
    cwd: options.cwd ?? ROOT,
    env: { NO_COLOR: "1", ...options.env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  if (out.code !== 0) {
    throw new Error(`${command} ${args.join(" ")} exited ${out.code}:\n${text(out.stdout)}${text(out.stderr)}`);
  }
  return text(out.stdout);
}

/** A build's checkout: the worktree of `rev` (or this checkout for `.`), its short id, and how to remove it. */
async function checkout(
  rev: string,
  tmp: string,
  label?: string,
): Promise<{ dir: string; id: string; remove: () => Promise<void> }> {
  if (rev === ".") return { dir: ROOT, id: label ?? "worktree", remove: () => Promise.resolve() };
  const commit = (await run("git", ["rev-parse", "--short=7", `${rev}^{commit}`])).trim();
  const id = label ?? commit;
  const dir = join(tmp, "build");
  await run("git", ["worktree", "add", "--detach", dir, commit]);
  // The build's own npm packages (old builds may pin other versions; the registry is reachable).
  await run(Deno.execPath(), ["install", "--quiet"], { cwd: dir });
  return { dir, id, remove: async () => void await run("git", ["worktree", "remove", "--force", dir]) };
}

/** The build's CLI, once, on `tests/cases/basic` copied into `tmp/bucket`, with `profile` lines of the config. */
async function loadBasic(build: string, tmp: string, profile: string): Promise<void> {
  const bucket = join(tmp, "bucket");
  mkdirSync(bucket, { recursive: true });
  for (const name of readdirSync(join(ROOT, "tests", "cases", "basic"))) {
    copyFileSync(join(ROOT, "tests", "cases", "basic", name), join(bucket, name));
  }
  const config = join(tmp, "config.ini");
  await Deno.writeTextFile(config, `[fixture]\nBUCKET_NAME = ./bucket\n${profile}`);
  // Every build since the first takes --config and --profile, and a folder as BUCKET_NAME.
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(Deno.env.toObject())) {
    if (!name.startsWith("BUCKETLOAD_") && name !== "DATABASE_URL") env[name] = value;
  }
  await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(build, "main.ts"), "--config", config, "--profile", "fixture"],
    cwd: build,
    env: { ...env, NO_COLOR: "1" },
    clearEnv: true,
    stdout: "inherit",
    stderr: "inherit",
  }).output().then((out) => {
    if (out.code !== 0) throw new Error(`the build's run exited ${out.code}`);
  });
}

/** The highest version in `schema_version` (1 for bucketload before versioning). */
function sqliteVersion(db: DatabaseSync): number {
  const has = (t: string) => db.prepare("SELECT 1 FROM sqlite_schema WHERE name = ?").get(t) !== undefined;
  if (!has("schema_version")) return has("runs") ? 1 : 0;
  return (db.prepare("SELECT max(version) AS v FROM schema_version").get() as { v: number }).v;
}

/**
 * Rewrites the SQLite file at `path` with 1 KiB pages (a small database is
 * mostly one page per table and index) and gives it back the build's journal
 * `mode` (`VACUUM INTO` writes a rollback-journal file).
 */
function compact(path: string, mode: string): void {
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA journal_mode = DELETE; PRAGMA page_size = 1024; VACUUM;");
    db.exec(`PRAGMA journal_mode = ${mode}`);
  } finally {
    db.close();
  }
}

/** Makes the SQLite fixture of build `rev`; returns its path. */
export async function sqliteFixture(rev: string, label?: string): Promise<string> {
  const tmp = await Deno.makeTempDir({ prefix: "bucketload-schema-fixture-" });
  const build = await checkout(rev, tmp, label);
  try {
    await loadBasic(build.dir, tmp, "DATABASE_NAME = db.sqlite3\n");
    const db = new DatabaseSync(join(tmp, "db.sqlite3"));
    let target: string;
    let mode: string;
    try {
      target = join(SCHEMA_FIXTURES, `v${sqliteVersion(db)}-${build.id}.db`);
      mode = (db.prepare("PRAGMA journal_mode").get() as { journal_mode: string }).journal_mode;
      await Deno.remove(target).catch(() => {});
      db.exec(`VACUUM INTO '${target.replaceAll("'", "''")}'`);
    } finally {
      db.close();
    }
    compact(target, mode);
    return target;
  } finally {
    await build.remove();
    await Deno.remove(tmp, { recursive: true });
  }
}

/** Makes the PostgreSQL fixture of build `rev` on the server at `url`; returns its path. */
export async function postgresFixture(rev: string, url: string, label?: string): Promise<string> {
  const tmp = await Deno.makeTempDir({ prefix: "bucketload-schema-fixture-" });
  const build = await checkout(rev, tmp, label);
  const admin = postgres(url, { max: 1, onnotice: () => {} });
  const name = `bl_schema_fixture_${Deno.pid}`;
  const target = new URL(url);
  target.pathname = `/${name}`;
  try {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name}`);
    await admin.unsafe(`CREATE DATABASE ${name}`);
    await loadBasic(build.dir, tmp, `DATABASE_URL = ${target}\n`);
    const client = postgres(target.toString(), { max: 1, onnotice: () => {} });
    const { v } = (await client<{ v: string }[]>`SELECT max(version)::text AS v FROM schema_version`)[0]!;
    await client.end();
    const dump = await run("pg_dump", [
      "--inserts",
      "--no-owner",
      "--no-privileges",
      "--no-comments",
      target.toString(),
    ]);
    const path = join(SCHEMA_FIXTURES, `v${v}-${build.id}.sql`);
    await Deno.writeTextFile(path, plainSql(dump));
    return path;
  } finally {
    await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
    await admin.end();
    await build.remove();
    await Deno.remove(tmp, { recursive: true });
  }
}

/** A plain dump without comments, blank lines and psql meta-commands (`\restrict`): SQL any client can run. */
export function plainSql(dump: string): string {
  return dump.split("\n").filter((line) => line.trim() !== "" && !line.startsWith("--") && !line.startsWith("\\"))
    .join("\n") + "\n";
}

/** Makes `original.db` from `tests/cases/original/schema.sql`; returns its path. */
export async function originalFixture(): Promise<string> {
  const target = join(SCHEMA_FIXTURES, "original.db");
  await Deno.remove(target).catch(() => {});
  const db = new DatabaseSync(target);
  try {
    db.exec(await Deno.readTextFile(join(ROOT, "tests", "cases", "original", "schema.sql")));
  } finally {
    db.close();
  }
  compact(target, "delete");
  return target;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { postgres: { type: "string" }, original: { type: "boolean" }, label: { type: "string" } },
    allowPositionals: true,
  });
  if (!existsSync(SCHEMA_FIXTURES)) mkdirSync(SCHEMA_FIXTURES, { recursive: true });
  if (values.original) {
    console.log(await originalFixture());
  } else if (positionals.length === 1) {
    const rev = positionals[0]!;
    console.log(
      values.postgres === undefined
        ? await sqliteFixture(rev, values.label)
        : await postgresFixture(rev, values.postgres, values.label),
    );
  } else {
    console.error("usage: make_schema_fixture.ts [--postgres URL] [--label NAME] REV | --original");
    Deno.exit(2);
  }
}
