/**
 * Every message the docs quote, and every exit code they list, is produced
 * by a test. {@linkcode MESSAGES} maps each quoted message (a backticked span
 * that reads as a printed line: tests/docs_messages.ts) to the test that
 * produces it, found by a distinctive fragment in that test's file; the ones
 * no other test produces are produced here, by {@linkcode PRODUCERS}, which run
 * bucketload as a user would and match its output against the docs' own
 * text (`…` standing for any text, timings and paths masked as in
 * tests/docs_blocks.ts). {@linkcode EXIT_CASES} does the same for each case of
 * docs/operating.md's exit codes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type Ran, type Sandbox, sh, withSandbox } from "./docs_blocks.ts";
import { mask } from "./docs_blocks.ts";
import { type Quote, quotedMessages } from "./docs_messages.ts";
import { LineWatcher, ROOT, spawnCli, withTempDir, writeConfig } from "./helpers.ts";
import { PG_SKIP, PG_URL, pgClient, pgQuery, withPgDatabase } from "./pg.ts";
import { S3_KEYS, startS3Server } from "./s3_server.ts";
import { existsSync } from "node:fs";

/** This file: messages and exit codes produced here. */
const HERE = "tests/docs_messages_test.ts";

/** Whether the S3 producer is skipped: the test S3 server is not installed, and not CI (as tests/s3_server.ts). */
const S3_SKIP = !existsSync(join(ROOT, "tools", "s3rver", "node_modules", "@20minutes", "s3rver")) &&
  Deno.env.get("CI") !== "true";

/**
 * A quoted message and the test that produces it: `quote` is a fragment of the
 * docs' span; `grep` (by default `quote`) is found in the test's file as the
 * test asserts it.
 */
interface Message {
  readonly quote: string;
  readonly test: string;
  readonly grep?: string;
  /** Produced here only with this service (the test is skipped without it, as tests/pg.ts and s3_server.ts skip). */
  readonly needs?: "postgres" | "s3";
}

/** Each message the docs quote, and its test. */
const MESSAGES: readonly Message[] = [
  // The exit codes (docs/operating.md) and the README.
  { quote: "bucketload: nothing to do in 0.01 s: the list is unchanged and no key is pending", test: HERE },
  { quote: "Received SIGTERM: stopping (no run in progress)", test: HERE },
  { quote: "Received SIGTERM: stopping the status server", test: HERE },
  { quote: "bucketload: run failed after 8.60 s: cannot read the file list: …", test: HERE },
  {
    quote: "Another run holds <db> since <time> (pid N)",
    test: "tests/crash_test.ts",
    grep: "Another run holds .*db\\.sqlite3 since",
  },
  { quote: "Another program holds a lock on", test: "tests/foreign_lock_test.ts" },
  {
    quote: "The PostgreSQL connection was lost (…): nothing was committed",
    test: "tests/pg_faults_test.ts",
    grep: "The PostgreSQL connection was lost \\(.*\\): nothing was committed",
  },
  {
    quote: "The PostgreSQL connection was lost …: nothing was committed",
    test: "tests/pg_faults_test.ts",
    grep: "The PostgreSQL connection was lost \\(.*\\): nothing was committed",
  },
  { quote: "asked again, the server says it committed", test: "tests/pg_commit_test.ts" },
  {
    quote:
      "bucketload: The PostgreSQL connection was lost while run … committed (…), and the server could not be asked whether it did: run 'status' …",
    test: HERE,
    needs: "postgres",
  },
  { quote: "bucketload: unexpected error: …", test: "tests/secrets_test.ts", grep: "bucketload: unexpected error: " },
  { quote: "bucketload: Unknown option '--bogus': run with --help for the list of flags", test: HERE },
  { quote: "bucketload: Flag --type needs a value, but the next argument is the flag --config: …", test: HERE },
  { quote: "bucketload: Flags --force and --key don't go together", test: HERE },
  {
    quote: "bucketload: Unknown profile 'nope' in /srv/bucketload/config.ini: expected one of default, dev, docker",
    test: HERE,
  },
  { quote: "bucketload: Profile 'dev' was asked for, but there is no config file: …", test: HERE },
  {
    quote: "bucketload: Unknown environment variable 'BUCKETLOAD_CONCURENCY': did you mean 'BUCKETLOAD_CONCURRENCY'?",
    test: HERE,
  },
  {
    quote:
      `bucketload: Cannot parse 'CONCURRENCY' in profile 'dev' of /srv/bucketload/config.ini: expected an integer 1–1024, got "abc"`,
    test: HERE,
  },
  {
    quote:
      "bucketload: Cannot parse 'DATABASE_URL' in profile 'p' of /srv/bucketload/x.ini: not a valid URL (the value is not shown, as it may hold a password): …",
    test: HERE,
  },
  {
    quote:
      "bucketload: Cannot parse 'DATABASE_URL' in profile 'p' of /srv/bucketload/x.ini: expected a postgres:// or postgresql:// URL (the value is not shown, …",
    test: HERE,
  },
  {
    quote:
      "bucketload: Cannot connect to PostgreSQL postgres://***@127.0.0.1:1/db: connection refused (is PostgreSQL running there?)",
    test: HERE,
  },
  { quote: "bucketload: Cannot open database …: file is not a database", test: HERE },
  {
    quote: "bucketload: Cannot write PROCESSED_FILES_FILENAME …: …; fix its folder's permissions or unset the key",
    test: HERE,
  },
  {
    quote: 'Permission denied: Requires write access to "/data/logs"',
    test: "tests/cli_test.ts",
    grep: "Permission denied: Requires write access",
  },
  {
    quote: "Database … is damaged (…): nothing was written",
    test: "tests/damage_test.ts",
    grep: "Database .* is damaged",
  },
  {
    quote: "Table songs has lost column year (dropped outside bucketload)",
    test: "tests/damage_test.ts",
    grep: "Table songs has lost column year \\(dropped outside bucketload\\)",
  },
  { quote: "Table run_drift is missing (dropped outside bucketload): ", test: "tests/tamper_test.ts" },
  {
    quote: "records with other fields, past the bound of 20 distinct fields per run",
    test: "tests/drift_test.ts",
  },
  {
    quote: "Stopped: the launcher that started this process is gone: the run was rolled back",
    test: "tests/process_test.ts",
  },
  {
    quote: "Table songs is missing (dropped outside bucketload), while files registered as loaded had rows there: ",
    test: "tests/tamper_test.ts",
  },
  { quote: "No database to replay: … does not exist (nothing has been loaded yet: …)", test: HERE },
  { quote: "… holds no run yet …", test: "tests/replay_test.ts", grep: "holds no run yet" },
  {
    quote: "bucketload: Cannot listen on 127.0.0.1:…: the address is in use (give --port N for a free port)",
    test: HERE,
  },
  {
    quote: "bucketload: Stopped by SIGINT: the run was rolled back, nothing was written",
    test: "tests/process_test.ts",
    grep: "Stopped by SIGINT: the run was rolled back",
  },
  {
    quote:
      "bucketload: the run was killed by SIGKILL (possibly by the out-of-memory killer): unless it had committed (status shows it), it is rolled back; the next run does its work",
    test: "tests/process_test.ts",
    grep: "bucketload: the run was killed by SIGKILL (possibly by the out-of-memory killer): ",
  },
  // Status, the status page, stopping (docs/operating.md).
  { quote: "Run in progress: since", test: "tests/run_report_test.ts" },
  {
    quote: "(run 4, backend pid 812)",
    test: "tests/postgres_test.ts",
    grep: "status names a run in progress once: since its start, with its run id and backend pid",
  },
  {
    quote: "stopped without finishing (its process is gone); nothing of it was committed",
    test: "tests/process_test.ts",
    grep: "stopped without finishing \\\\(its process is gone\\\\)",
  },
  { quote: "unauthorized: a token in the URL is refused (URLs are logged and traced): …", test: HERE },
  {
    quote: "misdirected request: this server answers to its IP addresses, localhost and the name it listens as; …",
    test: HERE,
  },
  { quote: "Too many open files", test: "tests/serve_test.ts" },
  { quote: "Cannot accept a connection: Too many open files", test: "tests/serve_test.ts" },
  { quote: "bucketload.pipeline: Committed run 3: ", test: "tests/otel_test.ts", grep: "Committed run" },
  // Deno Deploy (docs/operating.md).
  {
    quote: "Deno Deploy has no persistent disk, so a SQLite database would be lost: set DATABASE_URL",
    test: "tests/deploy_test.ts",
    grep: "Deno Deploy has no persistent disk, .*: set DATABASE_URL",
  },
  { quote: "Cannot parse BUCKETLOAD_SCHEDULE: ", test: "tests/deploy_test.ts" },
  {
    quote: `Cannot parse environment variable BUCKETLOAD_CONCURRENCY: expected an integer 1–1024, got "abc"`,
    test: HERE,
  },
  {
    quote:
      "bucketload: Cannot listen on 0.0.0.0:8000: the address is in use (set BUCKETLOAD_PORT or PORT to a free port)",
    test: "tests/deploy_test.ts",
    grep: "(set BUCKETLOAD_PORT or PORT to a free port)",
  },
  {
    quote: "The scheduled run failed: Cannot connect to PostgreSQL postgres://***@host/db: connection refused",
    test: "tests/deploy_test.ts",
    grep: "The scheduled run failed: Cannot connect to PostgreSQL .*connection refused",
  },
  // docs/data.md
  { quote: `438 ignored (book 408, "" 29, "comic book" 1)`, test: "tests/run_report_test.ts", grep: `ignored ("" 2, ` },
  {
    quote: "size_bytes: expected an integer 0–9007199254740991, got number 1e-400 (underflows to 0)",
    test: "tests/edge_values_test.ts",
  },
  {
    quote: "contains a lone surrogate (\\ud800), which UTF-8 cannot store",
    test: "tests/edge_values_test.ts",
    grep: "contains a lone surrogate (\\\\ud800), which UTF-8 cannot store",
  },
  {
    quote: `year: expected an integer 0–9999, got string "1994"`,
    test: "tests/guards_test.ts",
    grep: `year: expected an integer 0–9999, got string`,
  },
  {
    quote: "derived 12 stored rows re-derived (no fetch): AWESOME_MIN_RATING 4.5 → 4",
    test: "tests/derived_settings_test.ts",
    grep: "stored rows re-derived \\\\(no fetch\\\\): ",
  },
  {
    quote: "filled 3 stored rows filled from extra (no fetch): songs.mood; 1 kept in extra (failing the check), " +
      "e.g. songs (A, blank)",
    test: "tests/new_column_test.ts",
    grep: "stored rows filled from extra (no fetch): songs.mood; 1 kept in extra (failing the check), ",
  },
  {
    quote: "This database was loaded from A and now loads from B",
    test: "tests/new_user_test.ts",
    grep: "was loaded from .* and now loads from",
  },
  // docs/guarantees.md, docs/migrating.md
  {
    quote: "record 1 is too large: more than 1048576 characters (MAX_RECORD_BYTES)",
    test: "tests/memory_test.ts",
    grep: "record 1 is too large: more than 1048576 characters \\(MAX_RECORD_BYTES\\)",
  },
  { quote: "(N claimed by other runs)", test: "tests/workers_test.ts", grep: "claimed by other runs\\)" },
  { quote: "Took over movies from the original: ", test: "tests/takeover_test.ts" },
  {
    quote: "PROCESSED_FILES_FILENAME lists 37 keys, but this database holds none of their rows",
    test: "tests/takeover_test.ts",
    grep: "PROCESSED_FILES_FILENAME lists \\d+ keys, but this database holds none of their rows",
  },
  // docs/postgres.md, docs/sources.md
  { quote: "pg_cluster.sh: refusing to replace DIR", test: "tests/pg_cluster_test.ts", grep: "refusing to replace" },
  { quote: "bucketload run N since T", test: "tests/pg_faults_test.ts", grep: "bucketload run%" },
  {
    quote: "bucketload run since T",
    test: "tests/postgres_test.ts",
    grep: "status names a run in progress once: since its start",
  },
  {
    quote: "cannot read the file list: … S3 SignatureDoesNotMatch (check AWS_SECRET_ACCESS_KEY)",
    test: "tests/s3_test.ts",
    grep: "cannot read the file list: .*S3 SignatureDoesNotMatch \\(check AWS_SECRET_ACCESS_KEY\\)",
  },
  { quote: "nothing to do … no new object in the bucket and no key is pending", test: HERE, needs: "s3" },
];

/** A case of docs/operating.md's exit codes: its code, a fragment of its text, and the test that produces it. */
interface ExitCase {
  readonly code: string;
  readonly when: string;
  readonly test: string;
  /** A fragment of that test's file: the test's name, as a rule. */
  readonly grep: string;
}

const EXIT_CASES: readonly ExitCase[] = [
  {
    code: "0",
    when: "every listed file ended",
    test: "tests/docs_test.ts",
    grep: "does what it shows",
  },
  { code: "0", when: "nothing to do", test: HERE, grep: "a second run with nothing to do" },
  { code: "0", when: "`status`, also when there is no database yet", test: HERE, grep: "status before any run" },
  { code: "0", when: "a scheduler stopped", test: HERE, grep: "a scheduler stopped between runs" },
  { code: "0", when: "`serve` stopped", test: HERE, grep: "serve: a token in the URL" },
  { code: "1", when: "the list could not be fetched", test: HERE, grep: "the list cannot be fetched" },
  {
    code: "1",
    when: "some file failed",
    test: "tests/cli_test.ts",
    grep: "CLI: exits 1 when a file fails or the list cannot be fetched",
  },
  { code: "1", when: "another run holds", test: "tests/crash_test.ts", grep: "concurrent runs: the second exits 1" },
  {
    code: "1",
    when: "another program holds",
    test: "tests/foreign_lock_test.ts",
    grep: "status and a run exit 1 with one line",
  },
  {
    code: "1",
    when: "the PostgreSQL connection was lost",
    test: "tests/pg_faults_test.ts",
    grep: "a lost connection (terminated, server stopped) or a frozen server",
  },
  {
    code: "0",
    when: "lost during its COMMIT, and the server, asked, says the run committed",
    test: "tests/pg_commit_test.ts",
    grep: "the server is asked, the run is committed",
  },
  { code: "1", when: "the outcome of a COMMIT", test: HERE, grep: "the outcome of a COMMIT cannot be learnt" },
  {
    code: "1",
    when: "an error nothing else handles",
    test: "tests/secrets_test.ts",
    grep: "assert.equal(lastWords(error), 1)",
  },
  { code: "2", when: "an unknown flag", test: HERE, grep: "usage errors" },
  { code: "2", when: "a flag without its value", test: HERE, grep: "usage errors" },
  { code: "2", when: "flags that don't go together", test: HERE, grep: "usage errors" },
  { code: "2", when: "an unknown profile", test: HERE, grep: "usage errors" },
  { code: "2", when: "`--profile` (or `BUCKETLOAD_PROFILE`) without a config file", test: HERE, grep: "usage errors" },
  { code: "2", when: "an unknown key", test: HERE, grep: "usage errors" },
  { code: "2", when: "a bad value", test: HERE, grep: "usage errors" },
  { code: "2", when: "a `DATABASE_URL` that does not parse", test: HERE, grep: "database errors" },
  { code: "2", when: "a `DATABASE_URL` that is not a PostgreSQL URL", test: HERE, grep: "database errors" },
  { code: "2", when: "a PostgreSQL server that refuses", test: HERE, grep: "database errors" },
  { code: "2", when: "a database path that is not a SQLite file", test: HERE, grep: "database errors" },
  { code: "2", when: "`PROCESSED_FILES_FILENAME` or `LOG_DIR`", test: HERE, grep: "database errors" },
  {
    code: "2",
    when: "a permission Deno or the system denied",
    test: "tests/cli_test.ts",
    grep: "a permission error's hint fits how bucketload was started",
  },
  {
    code: "2",
    when: "a damaged database",
    test: "tests/damage_test.ts",
    grep: "corrupted pages: the integrity check refuses the database, exit 2",
  },
  {
    code: "2",
    when: "a bucketload table that lost a column",
    test: "tests/damage_test.ts",
    grep: "a column dropped by hand is refused with its name, exit 2",
  },
  {
    code: "2",
    when: "a bookkeeping table dropped by hand",
    test: "tests/tamper_test.ts",
    grep: "a bookkeeping table dropped by hand (SQLite): exit 2",
  },
  {
    code: "2",
    when: "a data table dropped by hand",
    test: "tests/tamper_test.ts",
    grep: "a data table dropped by hand (SQLite): refused in one line, exit 2",
  },
  { code: "2", when: "`replay` before any run", test: HERE, grep: "replay before any run" },
  { code: "2", when: "`serve` on an address in use", test: HERE, grep: "serve on an address in use" },
  {
    code: "130, 143",
    when: "stopped by SIGINT or SIGTERM",
    test: "tests/process_test.ts",
    grep: "is one stop: the line, exit 130",
  },
  {
    code: "137",
    when: "killed by SIGKILL",
    test: "tests/process_test.ts",
    grep: "the launcher says so in one line, exit 137",
  },
];

const fold = (text: string) => text.replace(/\s+/g, " ").trim();
const quotes = await quotedMessages();
const source = async (test: string) => fold(await Deno.readTextFile(join(ROOT, test)));

Deno.test("docs: every message the docs quote is in the table of tests/docs_messages_test.ts, with its test", async () => {
  const uncovered = quotes.filter((q) => !MESSAGES.some((m) => q.text.includes(m.quote)));
  assert.deepEqual(
    uncovered.map((q) => `${q.page}:${q.line}: ${q.text}`),
    [],
    "quoted messages without a test: add each to MESSAGES",
  );
  for (const m of MESSAGES) {
    assert.ok(quotes.some((q) => q.text.includes(m.quote)), `no page quotes ${JSON.stringify(m.quote)} any more`);
    const grep = fold(m.grep ?? m.quote);
    assert.ok((await source(m.test)).includes(grep), `${m.test} does not hold ${JSON.stringify(grep)}`);
  }
});

/** The cases of docs/operating.md's exit codes: `- **CODE** when → what it says`. */
async function exitCases(): Promise<{ code: string; text: string }[]> {
  const doc = await Deno.readTextFile(join(ROOT, "docs", "operating.md"));
  const section = doc.slice(
    doc.indexOf("\n## Exit codes\n"),
    doc.indexOf("\n## ", doc.indexOf("\n## Exit codes\n") + 1),
  );
  return [...section.matchAll(/^- \*\*([\d, ]+)\*\* ([\s\S]*?)(?=\n- |\n\n|$)/gm)].map((m) => ({
    code: m[1]!,
    text: fold(m[2]!),
  }));
}

Deno.test("docs: every exit code case of docs/operating.md is produced by a test", async () => {
  const cases = await exitCases();
  assert.ok(cases.length >= 20, `${cases.length} cases`);
  for (const c of cases) {
    const found = EXIT_CASES.filter((e) => e.code === c.code && c.text.includes(e.when));
    assert.equal(found.length, 1, `exit ${c.code} "${c.text}": ${found.length} entries of EXIT_CASES`);
  }
  for (const e of EXIT_CASES) {
    assert.ok(cases.some((c) => e.code === c.code && c.text.includes(e.when)), `no case ${e.code} "${e.when}"`);
    assert.ok((await source(e.test)).includes(fold(e.grep)), `${e.test} does not hold ${JSON.stringify(e.grep)}`);
  }
  // The codes --help names are the ones listed.
  assert.deepEqual([...new Set(cases.map((c) => c.code))], ["0", "1", "2", "130, 143", "137"]);
});

// Producers: bucketload run as a user runs it, its output matched against the docs' own quotes.

/** The one docs span that holds `fragment` (the same text may be quoted in several places: all must agree). */
function spansOf(fragment: string): Quote[] {
  const found = quotes.filter((q) => q.text.includes(fragment));
  assert.ok(found.length > 0, `no page quotes ${JSON.stringify(fragment)}`);
  return found;
}

/** The quoted spans the producers below have seen printed. */
const produced = new Set<string>();

/** A quote as a pattern: masked as output is, `…` for any text; it must end a line of the output. */
function patternOf(quote: string): RegExp {
  const parts = mask(quote).split("…").map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  return new RegExp(`(^|[:\\]] )${parts.join(".*?")}$`, "m");
}

/** Asserts that the output says each quoted message (the whole span the docs quote), and the exit code. */
function assertSays(ran: Ran, code: number, fragments: readonly string[], paths: readonly string[] = []): void {
  const said = mask(`${ran.stdout}\n${ran.stderr}`, paths);
  assert.equal(ran.code, code, `exit ${ran.code}:\n${said}`);
  for (const fragment of fragments) {
    for (const q of spansOf(fragment)) {
      assert.match(said, patternOf(q.text), `${q.page}:${q.line} quotes a line bucketload does not print`);
      produced.add(q.text);
    }
  }
}

/** Runs a user's command in a fresh copy of the project and checks what it says. */
async function says(box: Sandbox, command: string, code: number, ...fragments: string[]): Promise<Ran> {
  const ran = await sh(box, command);
  assertSays(ran, code, fragments, box.paths);
  return ran;
}

Deno.test("docs messages: usage errors, one line each, exit 2", async () => {
  await withSandbox(async (box) => {
    await says(box, "deno task run --bogus", 2, "Unknown option '--bogus'");
    await says(box, "deno task run replay --type --config x", 2, "Flag --type needs a value");
    await says(box, "deno task run --force --key a.data", 2, "Flags --force and --key don't go together");
    await says(box, "deno task run --profile nope", 2, "Unknown profile 'nope'");
    await says(box, "cd fixtures && deno task run --profile dev", 2, "Profile 'dev' was asked for");
    await says(box, "BUCKETLOAD_CONCURENCY=3 deno task run --profile dev", 2, "'BUCKETLOAD_CONCURENCY'");
    await says(
      box,
      "BUCKETLOAD_CONCURRENCY=abc deno task run --profile dev",
      2,
      "Cannot parse environment variable BUCKETLOAD_CONCURRENCY",
    );
    await says(
      box,
      "sed -i 's/^\\[dev\\]$/[dev]\\nCONCURRENCY = abc/' config.ini && deno task run --profile dev",
      2,
      "Cannot parse 'CONCURRENCY' in profile 'dev'",
    );
  });
});

Deno.test("docs messages: database errors, one line each, exit 2; the value of a DATABASE_URL is never shown", async () => {
  await withSandbox(async (box) => {
    const ini = (url: string) =>
      `printf '[p]\\nBUCKET_NAME = ./fixtures/sample_bucket\\nDATABASE_URL = ${url}\\n' > x.ini`;
    const bad = await says(
      box,
      `${ini("postgres://loader:p#ss@db/x")} && deno task run --config x.ini --profile p`,
      2,
      "not a valid URL (the value is not shown",
    );
    assert.doesNotMatch(bad.stderr, /p#ss/);
    await says(
      box,
      `${ini("mysql://loader:pw@db/x")} && deno task run --config x.ini --profile p`,
      2,
      "expected a postgres:// or postgresql:// URL",
    );
    await says(
      box,
      "DATABASE_URL=postgres://u:pw@127.0.0.1:1/db deno task run --profile dev",
      2,
      "Cannot connect to PostgreSQL postgres://***@127.0.0.1:1/db",
    );
    await says(
      box,
      "echo 'not a database' > x.sqlite3 && BUCKETLOAD_DATABASE_NAME=x.sqlite3 deno task run --profile dev",
      2,
      "Cannot open database",
    );
    await says(
      box,
      "mkdir dev-processed.json && deno task run --profile dev",
      2,
      "Cannot write PROCESSED_FILES_FILENAME",
    );
    assert.ok(!existsSync(join(box.dir, "dev.sqlite3")), "a refused run created the database");
  });
});

Deno.test("docs messages: status before any run exits 0; replay before any run exits 2 and creates nothing", async () => {
  await withSandbox(async (box) => {
    const status = await sh(box, "deno task run status --profile dev");
    assert.equal(status.code, 0, status.stderr);
    await says(box, "deno task run replay --profile dev", 2, "No database to replay: … does not exist");
    assert.ok(!existsSync(join(box.dir, "dev.sqlite3")));
  });
});

Deno.test("docs messages: the list cannot be fetched: exit 1, nothing written; a second run with nothing to do: exit 0", async () => {
  await withSandbox(async (box) => {
    await says(
      box,
      "BUCKETLOAD_BUCKET_NAME=http://127.0.0.1:1/ BUCKETLOAD_RETRIES=0 deno task run --profile dev",
      1,
      "run failed after 8.60 s: cannot read the file list: …",
    );
    assert.ok(!existsSync(join(box.dir, "dev.sqlite3")), "a run whose list failed left a database");
    assert.equal((await sh(box, "deno task run --profile dev")).code, 0);
    await says(box, "deno task run --profile dev", 0, "bucketload: nothing to do in 0.01 s: the list is unchanged");
  });
});

Deno.test("docs messages: a scheduler stopped between runs exits 0 and says so", async () => {
  await withTempDir(async (dir) => {
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${join(ROOT, "fixtures", "sample_bucket")}\n`);
    const child = spawnCli(["--config", config, "--profile", "p", "--schedule", "0 0 1 1 *"], { cwd: dir });
    const err = new LineWatcher(child.stderr);
    await err.waitFor(/Scheduled on/);
    child.kill("SIGTERM");
    await err.waitFor(/stopping/);
    const stdout = await new Response(child.stdout).text();
    await err.drain();
    const { code } = await child.status;
    assertSays({ code, stdout, stderr: err.lines.join("\n") }, 0, ["stopping (no run in progress)"]);
  });
});

/** Starts `serve` on a free port; its URL, its log, and how to stop it. */
async function startServe(config: string, env: Record<string, string> = {}) {
  const child = spawnCli(["serve", "--config", config, "--profile", "p", "--port", "0"], { env });
  const err = new LineWatcher(child.stderr);
  await err.waitFor(/Serving the status page on/);
  const url = /Serving the status page on (http:\/\/\S+)/.exec(err.lines.join("\n"))?.[1];
  assert.ok(url !== undefined, err.lines.join("\n"));
  return { child, err, url };
}

/** One raw HTTP/1.1 request (a browser's Host header, which fetch() does not let a caller set). */
async function rawHttp(url: string, request: string): Promise<{ status: number; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(url).port) });
  await conn.write(new TextEncoder().encode(request));
  const text = await new Response(conn.readable).text();
  const [head = "", body = ""] = text.split(/\r\n\r\n(.*)/s);
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1]), body };
}

Deno.test("docs messages: serve: a token in the URL (401), another Host (421), SIGTERM (exit 0), a port in use (exit 2)", async () => {
  await withTempDir(async (dir) => {
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ./bucket\nDATABASE_NAME = db.sqlite3\n`);
    const serve = await startServe(config, { BUCKETLOAD_STATUS_TOKEN: "s3cret" });
    const port = new URL(serve.url).port;
    try {
      const token = await fetch(new URL("api/status?token=s3cret", serve.url));
      assert.equal(token.status, 401);
      const tokenError = (await token.json()).error;
      const evil = await rawHttp(serve.url, `GET / HTTP/1.1\r\nHost: evil.example.com\r\nConnection: close\r\n\r\n`);
      assert.equal(evil.status, 421);
      // The answers are JSON: {"error": "…"}, the line the docs quote.
      assertSays({ code: 0, stdout: `${tokenError}\n${JSON.parse(evil.body).error}`, stderr: "" }, 0, [
        "a token in the URL is refused",
        "misdirected request: ",
      ]);
      // A second serve on the same port.
      const busy = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--cached-only", "-A", join(ROOT, "main.ts"), "serve", "--config", config, "--profile", "p"]
          .concat(["--port", port]),
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = (b: Uint8Array) => new TextDecoder().decode(b);
      assertSays({ code: busy.code, stdout: text(busy.stdout), stderr: text(busy.stderr) }, 2, [
        "the address is in use (give --port N for a free port)",
      ]);
    } finally {
      serve.child.kill("SIGTERM");
    }
    await serve.err.waitFor(/stopping/);
    await serve.err.drain();
    const { code } = await serve.child.status;
    await serve.child.stdout.cancel();
    assertSays({ code, stdout: "", stderr: serve.err.lines.join("\n") }, 0, ["stopping the status server"]);
  });
});

Deno.test({
  name: "docs messages: an S3 listing with no new object: nothing to do, and says why",
  ignore: S3_SKIP,
  fn: async () => {
    const server = await startS3Server();
    try {
      await server.createBucket("docs");
      await server.put(
        "docs",
        "a.data",
        JSON.stringify([{ type: "song", data: { artist_name: "A", title: "T", year: 1, release: "" } }]),
      );
      await withTempDir(async (dir) => {
        const config = await writeConfig(
          dir,
          `[p]\nBUCKET_NAME = s3://docs\nS3_ENDPOINT = ${server.endpoint}\nDATABASE_NAME = db.sqlite3\n`,
        );
        const env = { AWS_ACCESS_KEY_ID: S3_KEYS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3_KEYS.secretAccessKey };
        const run = async () => {
          const out = await spawnCli(["--config", config, "--profile", "p"], { env }).output();
          const text = (b: Uint8Array) => new TextDecoder().decode(b);
          return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
        };
        assert.equal((await run()).code, 0);
        assertSays(await run(), 0, ["no new object in the bucket and no key is pending"]);
      });
    } finally {
      await server.close();
    }
  },
});

/** A TCP proxy on loopback to `target`, which can cut every connection and refuse new ones. */
function tcpProxy(target: URL) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const client of listener) {
      const server = await Deno.connect({ hostname: target.hostname, port: Number(target.port || 5432) });
      conns.add(client).add(server);
      const pipe = (a: Deno.Conn, b: Deno.Conn) => a.readable.pipeTo(b.writable).catch(() => {});
      Promise.all([pipe(client, server), pipe(server, client)]).finally(() => {
        for (const c of [client, server]) {
          conns.delete(c);
          try {
            c.close();
          } catch { /* closed */ }
        }
      });
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    cut() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}

Deno.test({
  name: "docs messages: postgres: the outcome of a COMMIT cannot be learnt: one line, exit 1",
  ignore: PG_SKIP,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    assert.ok(PG_URL !== undefined, "CI=true needs BL_TEST_DATABASE_URL");
    const admin = pgClient(PG_URL);
    try {
      await withPgDatabase(async (url) => {
        const proxy = tcpProxy(new URL(url));
        const proxied = new URL(url);
        proxied.hostname = "127.0.0.1";
        proxied.port = String(proxy.port);
        await withTempDir(async (dir) => {
          const bucket = join(ROOT, "fixtures", "sample_bucket");
          const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${bucket}\nDATABASE_URL = ${proxied}\n`);
          // A first run makes the tables (migrations commit on their own); the second re-loads with --force.
          const first = await spawnCli(["--config", config, "--profile", "p"]).output();
          assert.equal(first.code, 0, new TextDecoder().decode(first.stderr));
          // A standby that never answers: the run's COMMIT waits for it.
          await admin.unsafe("ALTER SYSTEM SET synchronous_standby_names = 'bl_docs_ghost_standby'");
          await admin`SELECT pg_reload_conf()`;
          try {
            const child = spawnCli(["--config", config, "--profile", "p", "--force"]);
            const stdout = new Response(child.stdout).text();
            const stderr = new Response(child.stderr).text();
            let pid: number | undefined;
            for (let i = 0; i < 400 && pid === undefined; i++) {
              const [row] = await admin<{ pid: number }[]>`
                SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND query = 'COMMIT'
                  AND datname = ${new URL(url).pathname.slice(1)}`;
              pid = row?.pid;
              if (pid === undefined) await new Promise((r) => setTimeout(r, 50));
            }
            assert.ok(pid !== undefined, "the run's COMMIT never waited for the standby");
            // The network drops, and the server cannot be reached again within the run's 10 s of asking.
            proxy.cut();
            const { code } = await child.status;
            assertSays({ code, stdout: await stdout, stderr: await stderr }, 1, [
              "and the server could not be asked whether it did",
            ]);
            await admin`SELECT pg_terminate_backend(${pid})`;
          } finally {
            await admin.unsafe("ALTER SYSTEM RESET synchronous_standby_names");
            await admin`SELECT pg_reload_conf()`;
          }
          // Ended, the session that waited committed locally: `status` lists run 2, as the line says it would tell.
          let runs: unknown[] = [];
          for (let i = 0; i < 100 && runs.length < 2; i++) {
            runs = await pgQuery(url, "SELECT id FROM runs");
            if (runs.length < 2) await new Promise((r) => setTimeout(r, 50));
          }
          assert.equal(runs.length, 2);
        });
      });
    } finally {
      await admin.end();
    }
  },
});

Deno.test("docs messages: every message the table says is produced here was produced above, as the docs quote it", () => {
  for (const m of MESSAGES.filter((m) => m.test === HERE)) {
    if ((m.needs === "postgres" && PG_SKIP) || (m.needs === "s3" && S3_SKIP)) continue;
    for (const q of spansOf(m.quote)) {
      assert.ok(produced.has(q.text), `${q.page}:${q.line}: ${q.text}: no test here printed it`);
    }
  }
});
