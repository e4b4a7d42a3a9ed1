import assert from "node:assert/strict";
import { join } from "node:path";
import { startBucketServer } from "./bucket_server.ts";
import { fixableError } from "../mod/cli/args.ts";
import { CASES, cli, copyCase, dumpDatabase, LAUNCHER, query, withTempDir, writeConfig } from "./helpers.ts";

Deno.test("CLI: a run prints a summary, writes the registry file and exits 0", async () => {
  await withTempDir(async (dir) => {
    await copyCase("basic", dir);
    const config = await writeConfig(
      dir,
      "[DEFAULT]\nDATABASE_NAME = out/db.sqlite3\n[dev]\nBUCKET_NAME = ./basic\nPROCESSED_FILES_FILENAME = processed.json\nSAVE_LOG = yes\n",
    );
    const run = await cli(["--config", config, "--profile", "dev"]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^bucketload: run 1 finished in /);
    assert.match(
      run.stdout,
      /files +4 listed, 3 new, 0 re-fetched: 2 loaded, 1 invalid, 0 missing, 0 failed, 1 refused/,
    );
    assert.match(run.stdout, /records +9 valid \(song 2, movie 4, app 3\), 5 rejected, 2 ignored \(book 2\)/);
    // 9 valid records, 2 of them repeat an earlier key: 7 rows in the tables.
    const rows = ["songs", "movies", "apps"].map((t) =>
      query(join(dir, "out/db.sqlite3"), `SELECT count(*) n FROM ${t}`)
    )
      .reduce((a, r) => a + Number(r[0]!.n), 0);
    assert.equal(rows, 7);
    assert.match(run.stdout, /rows +7 inserted, 2 updated/);
    assert.match(run.stdout, /records\/s/);
    assert.match(run.stderr, /Refused key/);
    const processed = JSON.parse(await Deno.readTextFile(join(dir, "processed.json")));
    assert.deepEqual(
      processed,
      query(join(dir, "out/db.sqlite3"), "SELECT key FROM processed_files ORDER BY rowid").map((r) => r.key),
    );
    assert.equal(processed.length, 3);
    const logs = [...Deno.readDirSync(join(dir, "logs"))].map((e) => e.name);
    assert.equal(logs.length, 1);
    assert.match(logs[0]!, /^\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d\.log$/);
    assert.match(await Deno.readTextFile(join(dir, "logs", logs[0]!)), /Refused key/);
  });
});

Deno.test("CLI: usage and config errors print one line and exit 2", async () => {
  await withTempDir(async (dir) => {
    const config = await writeConfig(dir, "[dev]\nBUCKET_NAME = ./b\nCONCURENCY = 3\n[ok]\nBUCKET_NAME = ./b\n");
    const cases: [string[], RegExp][] = [
      [["--bogus"], /Unknown option '--bogus'.*--help/],
      [["--config", config, "--profile", "nope"], /Unknown profile 'nope' .*expected one of dev, ok$/],
      [["--config", config, "--profile", "dev"], /Unknown key 'CONCURENCY'.*did you mean 'CONCURRENCY'\?$/],
      [
        ["--config", config, "--profile", "ok", "--concurrency", "abc"],
        /--concurrency: expected a positive integer, got "abc"$/,
      ],
      [["--config", config, "--profile", "ok", "--log-level", "loud"], /Cannot parse --log-level: .*got "loud"$/],
      [["--config", config, "--profile", "ok", "--concurrency", "0"], /Cannot parse --concurrency: .*got "0"$/],
      [["--force", "--retry-invalid"], /^bucketload: Flags --force and --retry-invalid don't go together$/],
      [["--key", "../x"], /^bucketload: Cannot use --key "..\/x": has an empty, '.' or '..' path segment$/],
      [["--run-at-start"], /^bucketload: Flag --run-at-start needs --schedule$/],
      [
        ["--config", config, "--profile", "ok", "--schedule", "0 0 31 2 *"],
        /^bucketload: Cannot parse --schedule: it never fires, got "0 0 31 2 \*"$/,
      ],
      [["--config", join(dir, "missing.ini")], /Cannot read config file .*missing.ini/],
      [["stray"], /^bucketload: Unknown command 'stray': expected 'run', 'status', 'serve', 'replay'$/],
      [["status", "--key", "a.data"], /^bucketload: Flag --key only applies to 'run'$/],
      [["status", "--force"], /^bucketload: Flag --force only applies to 'run'$/],
      [
        ["--config", config, "--profile", "ok", "--schedule", "every minute"],
        /^bucketload: Cannot parse --schedule: .*"every minute"$/,
      ],
    ];
    for (const [args, message] of cases) {
      const run = await cli(args);
      assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
      assert.equal(run.stderr.trim().split("\n").length, 1, run.stderr);
      assert.match(run.stderr.trim(), message);
    }
  });
});

Deno.test("CLI: a flag without its value, or with one it does not take, is one line naming the flag, exit 2", async () => {
  const cases: [string[], RegExp][] = [
    [
      ["replay", "--type", "--config", "x.ini"],
      /^bucketload: Flag --type needs a value, but the next argument is the flag --config: write --type VALUE, or --type=-VALUE for a value that starts with a dash$/,
    ],
    [["--concurrency", "-h"], /^bucketload: Flag --concurrency needs a value, but the next argument is the flag -h: /],
    [
      ["replay", "--type", "song", "--type", "--json"],
      /^bucketload: Flag --type needs a value, but the next argument is the flag --json: /,
    ],
    [["--config"], /^bucketload: Flag --config needs a value$/],
    [["status", "--profile"], /^bucketload: Flag --profile needs a value$/],
    [["--force=yes"], /^bucketload: Flag --force takes no value, got --force=yes$/],
    [["-x"], /^bucketload: Unknown option '-x': run with --help for the list of flags$/],
  ];
  const decoder = new TextDecoder();
  for (const [args, message] of cases) {
    const direct = await cli(args);
    // The launcher (deno task run, the installed command) parses the flags first: the same line.
    const launched = await new Deno.Command(Deno.execPath(), {
      args: [...LAUNCHER, ...args],
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    for (
      const [how, code, stderr] of [
        ["main.ts", direct.code, direct.stderr],
        ["launcher", launched.code, decoder.decode(launched.stderr)],
      ] as const
    ) {
      assert.equal(code, 2, `${how} ${args.join(" ")}: ${stderr}`);
      assert.equal(stderr.trim().split("\n").length, 1, `${how} ${args.join(" ")}: ${stderr}`);
      assert.match(stderr.trim(), message, how);
    }
  }
});

Deno.test("CLI: a database path that is not SQLite exits 2 and is left unmodified", async () => {
  await withTempDir(async (dir) => {
    await copyCase("basic", dir);
    const notDb = join(dir, "notes.txt");
    await Deno.writeTextFile(notDb, "hello, not a database\n");
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ./basic\nDATABASE_NAME = notes.txt\n`);
    const run = await cli(["--config", config, "--profile", "p"]);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /Cannot open database .*notes.txt: file is not a database/);
    assert.equal(await Deno.readTextFile(notDb), "hello, not a database\n");
  });
});

Deno.test("CLI: exits 1 when a file fails or the list cannot be fetched", async () => {
  let listDown = false;
  const server = await startBucketServer(join(CASES, "basic"), {
    fault: (key) =>
      key === "b1b2c3d4-0002-4000-8000-000000000002.data" || (listDown && key === "files_list.data")
        ? { status: 502 }
        : undefined,
  });
  try {
    await withTempDir(async (dir) => {
      const config = await writeConfig(
        dir,
        `[p]\nBUCKET_NAME = ${server.url}\nRETRIES = 1\nRETRY_BASE_SECONDS = 0.01\n`,
      );
      const run = await cli(["--config", config, "--profile", "p"]);
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stdout, /run 1 FAILED/);
      assert.match(run.stdout, /b1b2c3d4-0002-4000-8000-000000000002\.data: HTTP 502 \(after 2 attempts\)/);
      // Logged in the worker, forwarded to the main thread's sinks.
      assert.match(run.stderr, /Retrying b1b2c3d4-0002-4000-8000-000000000002\.data after attempt 1: HTTP 502/);
      listDown = true;
      const before = dumpDatabase(join(dir, "db.sqlite3"));
      const down = await cli(["--config", config, "--profile", "p", "--force"]);
      assert.equal(down.code, 1, down.stderr);
      assert.match(down.stdout, /cannot read the file list: HTTP 502/);
      assert.deepEqual(dumpDatabase(join(dir, "db.sqlite3")), before);
    });
  } finally {
    await server.close();
  }
});

Deno.test("CLI: --help and --version exit 0", async () => {
  const help = await cli(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--concurrency N/);
  assert.match(help.stdout, /BUCKET_NAME .*s3:\/\/bucket\[\/prefix\]/);
  assert.match(help.stdout, /STATUS_TOKEN/);
  const version = await cli(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^bucketload \d+\.\d+\.\d+\n$/);
});

Deno.test("CLI: runs from the environment alone without a config file", async () => {
  await withTempDir(async (dir) => {
    await copyCase("basic", dir);
    const run = await cli([], { cwd: dir, env: { BUCKETLOAD_BUCKET_NAME: "./basic", BUCKETLOAD_CONCURRENCY: "2" } });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(query(join(dir, "db.sqlite3"), "SELECT count(*) n FROM processed_files")[0]!.n, 3);
  });
});

/** Runs the launcher as `deno task run` does, to the end. */
async function launched(args: string[], cwd?: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [...LAUNCHER, ...args],
    env: { NO_COLOR: "1" },
    ...(cwd === undefined ? {} : { cwd }),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

Deno.test("CLI: --help names the command it was started as", async () => {
  // Under the task (the launcher without the installed command's name), and main.ts alone.
  for (const help of [await launched(["--help"]), await cli(["--help"])]) {
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage:\n {2}deno task run \[options\] {2,}run the pipeline once/m);
    assert.doesNotMatch(help.stdout, /bucketload \[options\]/);
  }
  // The installed command passes its name first (tools/install.ts); it is not a flag of bucketload.
  const installed = await launched(["--installed-as=bucketload", "--help"]);
  assert.equal(installed.code, 0, installed.stderr);
  assert.match(installed.stdout, /^Usage:\n {2}bucketload \[options\] {2,}run the pipeline once/m);
  assert.match(installed.stdout, /^ {2}bucketload replay \[--dry-run\]/m);
  assert.doesNotMatch(installed.stdout, /deno task run/);
  assert.match(installed.stdout, /Exit codes: .*137/s);
  const bad = await launched(["--installed-as=bucketload", "--bogus"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^bucketload: Unknown option '--bogus'/);
});

Deno.test("CLI: a permission error's hint fits how bucketload was started", async () => {
  await withTempDir(async (dir) => {
    await copyCase("basic", dir);
    const config = await writeConfig(dir, "[p]\nBUCKET_NAME = ./basic\nDATABASE_NAME = /proc/x.sqlite3\n");
    const run = await launched(["--config", config, "--profile", "p", "--quiet"]);
    assert.equal(run.code, 2, run.stderr);
    assert.equal(
      run.stderr,
      `bucketload: Permission denied: Requires all access to "/proc": Deno opens that path only for a program run ` +
        `with --allow-all, which 'deno task run' never grants: point the setting at a path elsewhere\n`,
    );
  });
  const notGranted = new Deno.errors.NotCapable(
    'Requires write access to "/srv/db", run again with the --allow-write flag',
  );
  // main.ts run by hand, without the launcher: the launcher is the way to the grants.
  assert.equal(
    fixableError(notGranted, undefined),
    `Permission denied: Requires write access to "/srv/db": run through 'deno task run' or the installed ` +
      `'bucketload' (they grant the paths of the resolved config), or grant that path with --allow-read/--allow-write, ` +
      `or point the setting at a path you may use`,
  );
  // Through the launcher, which grants the config's paths: not advice to use what was used.
  assert.doesNotMatch(fixableError(notGranted, "bucketload")!, /run through/);
  assert.match(fixableError(notGranted, "bucketload")!, /'bucketload' grants the program only the folders/);
  // The system refused (owner, mode): no Deno flag helps.
  const os = new Deno.errors.PermissionDenied("Permission denied (os error 13): open '/srv/db'");
  for (const as of [undefined, "deno task run", "bucketload"]) {
    assert.equal(
      fixableError(os, as),
      `Permission denied: Permission denied (os error 13): open '/srv/db': the system refuses it: check the owner and ` +
        `mode of that path, or point the setting at a path you may use`,
    );
  }
});
