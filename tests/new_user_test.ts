/**
 * What a new user met (issue 8): a database pointed at another bucket, the
 * Python original's files, paths outside the project, permissions, offline
 * starts. Each test failed before its fix.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { childPermissions, collectorHosts } from "../launch.ts";
import { MIGRATIONS } from "../mod/store/migrations.ts";
import { resolveConfig } from "../mod/config/config.ts";
import { SCHEMA_VERSION } from "../mod/store/migrations.ts";
import { startBucketServer } from "./bucket_server.ts";
import { CASES, cli, copyCase, DENO_CACHE_ENV, query, ROOT, runOnce, withTempDir, writeConfig } from "./helpers.ts";

const decoder = new TextDecoder();

/** Runs `deno task run ARGS` as a user would, from `cwd`, with the project's own task definition. */
async function task(args: string[], options: { cwd: string; env?: Record<string, string> }) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", `--config=${join(ROOT, "deno.json")}`, "run", ...args],
    cwd: options.cwd,
    // A user's terminal: no INIT_CWD from an outer `deno task`.
    env: {
      NO_COLOR: "1",
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "",
      ...DENO_CACHE_ENV,
      ...options.env,
    },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

const oneLine = (stderr: string) => {
  assert.equal(stderr.trim().split("\n").length, 1, `expected one line, got:\n${stderr}`);
  assert.doesNotMatch(stderr, /^\s+at /m, "a stack trace was printed");
  return stderr.trim();
};

Deno.test("list cache: a database pointed at another bucket reads that bucket's list, and says so once", async () => {
  await withTempDir(async (dir) => {
    const a = await copyCase("basic", join(dir, "a"));
    const b = join(dir, "b");
    await Deno.mkdir(b);
    const key = "d1b2c3d4-0004-4000-8000-000000000004.data";
    await Deno.copyFile(join(CASES, "basic", "a1b2c3d4-0001-4000-8000-000000000001.data"), join(b, key));
    await Deno.writeTextFile(join(b, "files_list.data"), key);
    // B's list is older than A's: a conditional GET with A's Last-Modified would get 304 from B.
    const serverA = await startBucketServer(a, { lastModified: new Date("2021-05-05T00:00:00Z") });
    const serverB = await startBucketServer(b, { lastModified: new Date("2021-04-01T00:00:00Z") });
    const db = join(dir, "db.sqlite3");
    const warnings: string[] = [];
    try {
      await runOnce(serverA.url, db);
      const first = await runOnce(serverB.url, db);
      assert.equal(first.filesLoaded, 1, "the other bucket's file was not loaded");
      assert.deepEqual(
        query(db, "SELECT key FROM processed_files WHERE key = ?", key).length,
        1,
      );
      const status = await cli(["status", "--json"], {
        env: { BUCKETLOAD_BUCKET_NAME: serverB.url, BUCKETLOAD_DATABASE_NAME: db },
        cwd: dir,
      });
      const report = JSON.parse(status.stdout);
      assert.equal(report.bucket, serverB.url);
      assert.equal(report.previousBucket, serverA.url);
      // The change is told once: the next run on B says nothing about it.
      const again = await cli([], {
        env: { BUCKETLOAD_BUCKET_NAME: serverB.url, BUCKETLOAD_DATABASE_NAME: db },
        cwd: dir,
      });
      assert.equal(again.code, 0, again.stderr);
      warnings.push(...again.stderr.split("\n").filter((l) => /now loads from/.test(l)));
      assert.deepEqual(warnings, []);
      const back = await cli([], {
        env: { BUCKETLOAD_BUCKET_NAME: serverA.url, BUCKETLOAD_DATABASE_NAME: db },
        cwd: dir,
      });
      assert.equal(back.stderr.split("\n").filter((l) => /was loaded from .* and now loads from/.test(l)).length, 1);
    } finally {
      await serverA.close();
      await serverB.close();
    }
  });
});

Deno.test("list cache: --force reads the list afresh instead of the cached copy", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const server = await startBucketServer(bucket, { lastModified: new Date("2021-05-05T00:00:00Z") });
    const db = join(dir, "db.sqlite3");
    try {
      await runOnce(server.url, db);
      // The list grows, but the server still claims it is unchanged since the cached Last-Modified.
      const list = await Deno.readTextFile(join(bucket, "files_list.data"));
      await Deno.copyFile(join(bucket, "a1b2c3d4-0001-4000-8000-000000000001.data"), join(bucket, "new.data"));
      await Deno.writeTextFile(join(bucket, "files_list.data"), `${list}\nnew.data`);
      assert.equal((await runOnce(server.url, db)).unchanged, true);
      const forced = await runOnce(server.url, db, { force: true });
      assert.equal(forced.unchanged, false);
      assert.ok(query(db, "SELECT 1 FROM processed_files WHERE key = 'new.data'").length === 1);
    } finally {
      await server.close();
    }
  });
});

/** The Python original's schema: no `source_key`, no bookkeeping, natural-key primary keys. */
const ORIGINAL_SCHEMA = Deno.readTextFileSync(join(CASES, "original", "schema.sql"));

Deno.test("migration: an original database and processed.json are taken over in place, no key lost", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const dbPath = join(dir, "db.sqlite3");
    const db = new DatabaseSync(dbPath);
    db.exec(ORIGINAL_SCHEMA);
    db.close();
    // Rows the bucket does not hold again keep their values (the others are replaced by the newer files).
    const before = query(dbPath, "SELECT * FROM songs WHERE artist_name = 'Original Artist'");
    // The original processed the first file, and a key that is no longer listed.
    await Deno.writeTextFile(
      join(dir, "processed.json"),
      JSON.stringify(["a1b2c3d4-0001-4000-8000-000000000001.data", "gone-from-the-list.data"]),
    );
    const server = await startBucketServer(bucket);
    try {
      const config = await writeConfig(
        dir,
        `[default]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = db.sqlite3\nPROCESSED_FILES_FILENAME = processed.json\n`,
      );
      const run = await cli(["--config", config]);
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, /Migrating .*songs: added column source_key/);
      assert.match(run.stdout, /imported 2 keys/);
      assert.equal(server.hits("a1b2c3d4-0001-4000-8000-000000000001.data"), 0, "an imported key was fetched");
      assert.equal(server.hits("b1b2c3d4-0002-4000-8000-000000000002.data"), 1);
      // The original's rows keep their values; their source_key is unknown.
      const oldRows = query(
        dbPath,
        "SELECT artist_name, title, year, release, ingestion_time FROM songs WHERE source_key IS NULL",
      );
      assert.deepEqual(
        oldRows,
        before.map(({ artist_name, title, year, release, ingestion_time }) => ({
          artist_name,
          title,
          year,
          release,
          ingestion_time,
        })),
      );
      const processed = JSON.parse(await Deno.readTextFile(join(dir, "processed.json")));
      for (const key of ["a1b2c3d4-0001-4000-8000-000000000001.data", "gone-from-the-list.data"]) {
        assert.ok(processed.includes(key), `${key} was lost`);
      }
      assert.ok(processed.includes("b1b2c3d4-0002-4000-8000-000000000002.data"));
      assert.deepEqual(query(dbPath, "SELECT origin FROM processed_files WHERE key = 'gone-from-the-list.data'"), [{
        origin: "imported",
      }]);
      assert.equal(query(dbPath, "SELECT max(version) v FROM schema_version")[0]!.v, SCHEMA_VERSION);
      const second = await cli(["--config", config]);
      assert.equal(second.code, 0, second.stderr);
      assert.doesNotMatch(second.stderr, /Migrating/);
    } finally {
      await server.close();
    }
  });
});

Deno.test("preflight: an unwritable PROCESSED_FILES_FILENAME exits 2 before anything is written", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    await Deno.writeTextFile(join(dir, "a-file"), "");
    const config = await writeConfig(
      dir,
      `[p]\nBUCKET_NAME = ${bucket}\nDATABASE_NAME = db.sqlite3\nPROCESSED_FILES_FILENAME = a-file/processed.json\n`,
    );
    const run = await cli(["--config", config, "--profile", "p"]);
    assert.equal(run.code, 2);
    assert.match(oneLine(run.stderr), /^bucketload: Cannot write PROCESSED_FILES_FILENAME .*a-file\/processed.json: /);
    assert.equal(existsSync(join(dir, "db.sqlite3")), false);
  });
});

Deno.test("a failed list read leaves no database file behind", async () => {
  await withTempDir(async (dir) => {
    const db = join(dir, "state", "db.sqlite3");
    // A port that was just free: nothing listens there.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    listener.close();
    const run = await cli([], {
      env: {
        BUCKETLOAD_BUCKET_NAME: `http://127.0.0.1:${port}/`,
        BUCKETLOAD_DATABASE_NAME: db,
        BUCKETLOAD_RETRIES: "0",
      },
      cwd: dir,
    });
    assert.equal(run.code, 1);
    assert.match(run.stdout, /nothing was written/);
    assert.match(run.stdout, new RegExp(`127\\.0\\.0\\.1:${port}: connection refused \\(after 1 attempt\\)`));
    assert.equal(existsSync(db), false, "an empty database was left");
    assert.equal(existsSync(`${db}-wal`), false);
  });
});

Deno.test("deno task run: config and database anywhere, least privilege from the resolved config", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const server = await startBucketServer(bucket);
    try {
      await Deno.mkdir(join(dir, "x"));
      const config = join(dir, "x", "app.ini");
      await Deno.writeTextFile(
        config,
        `[default]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = ${join(dir, "y", "db.sqlite3")}\n` +
          `PROCESSED_FILES_FILENAME = ${join(dir, "z", "processed.json")}\nSAVE_LOG = yes\nLOG_DIR = ${
            join(dir, "logs")
          }\n`,
      );
      const run = await task(["--config", "x/app.ini", "--quiet"], { cwd: dir });
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /run 1 finished/);
      assert.ok(existsSync(join(dir, "y", "db.sqlite3")));
      assert.ok(existsSync(join(dir, "z", "processed.json")));
      assert.equal([...Deno.readDirSync(join(dir, "logs"))].length, 1);
      const status = await task(["status", "--config", config], { cwd: dir });
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, /Registry: 1 invalid, 2 loaded/);
      // A misspelt variable is caught by the launcher, which may read the whole environment.
      const typo = await task(["--config", config], { cwd: dir, env: { BUCKETLOAD_CONCURENCY: "3" } });
      assert.equal(typo.code, 2);
      assert.match(
        oneLine(typo.stderr),
        /Unknown environment variable 'BUCKETLOAD_CONCURENCY'.*BUCKETLOAD_CONCURRENCY/,
      );
    } finally {
      await server.close();
    }
  });
});

Deno.test("childPermissions() grants the config's folders, the bucket's host:port and nothing to write for status", () => {
  const config = resolveConfig({
    sections: new Map([["p", {
      BUCKET_NAME: "https://bucket.example.com/prefix",
      DATABASE_NAME: "/var/lib/bucketload/db.sqlite3",
      PROCESSED_FILES_FILENAME: "/srv/out/processed.json",
      SAVE_LOG: "yes",
      LOG_DIR: "/var/log/bucketload",
    }]]),
    configPath: "/etc/bucketload/prod.ini",
    profile: "p",
  });
  const run = childPermissions(config, { command: "run", dryRun: false }, "/app");
  assert.deepEqual(run, [
    "--no-prompt",
    "--allow-read=/app,/etc/bucketload/prod.ini,/var/lib/bucketload,/srv/out,/var/log/bucketload",
    "--allow-write=/var/lib/bucketload,/srv/out,/var/log/bucketload",
    "--allow-net=bucket.example.com:443",
    "--allow-env=BUCKETLOAD_*,DATABASE_URL,OTEL_*",
  ]);
  const status = childPermissions(config, { command: "status", dryRun: false }, "/app");
  assert.ok(!status.some((f) => f.startsWith("--allow-write")), status.join(" "));
  // With PostgreSQL: no database folder, the server's host:port, and the PG* variables the client reads.
  const pg = resolveConfig({
    sections: new Map([["p", {
      BUCKET_NAME: "https://bucket.example.com/",
      DATABASE_URL: "postgres://u@db.internal/x",
    }]]),
    configPath: "/etc/bucketload/prod.ini",
    profile: "p",
  });
  assert.deepEqual(childPermissions(pg, { command: "run", dryRun: false }, "/app"), [
    "--no-prompt",
    "--allow-read=/app,/etc/bucketload/prod.ini",
    "--allow-net=bucket.example.com:443,db.internal:5432",
    "--allow-env=BUCKETLOAD_*,DATABASE_URL,OTEL_*,PG*",
  ]);
  // With S3: the endpoint (the bucket's virtual host on AWS) and the AWS credential variables.
  const s3 = (extra: Record<string, string>) =>
    childPermissions(
      resolveConfig({ sections: new Map([["p", { BUCKET_NAME: "s3://acme-data/in", ...extra }]]), profile: "p" }),
      { command: "run", dryRun: false },
      "/app",
    );
  const aws = s3({ S3_REGION: "eu-west-1", DATABASE_NAME: "/var/db/x.sqlite3" });
  assert.ok(aws.includes("--allow-net=acme-data.s3.eu-west-1.amazonaws.com:443"), aws.join(" "));
  assert.ok(
    aws.includes(
      "--allow-env=BUCKETLOAD_*,DATABASE_URL,OTEL_*,AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,AWS_SESSION_TOKEN,AWS_PROFILE",
    ),
    aws.join(" "),
  );
  assert.ok(s3({ S3_ENDPOINT: "http://minio:9000" }).includes("--allow-net=minio:9000"));
});

Deno.test("collectorHosts(): the OTLP collectors a child may reach, only with OTEL_DENO on", () => {
  assert.deepEqual(collectorHosts({}), []);
  assert.deepEqual(collectorHosts({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://otel:4318" }), []);
  assert.deepEqual(collectorHosts({ OTEL_DENO: "true" }), ["localhost:4318"]);
  assert.deepEqual(
    collectorHosts({
      OTEL_DENO: "1",
      OTEL_EXPORTER_OTLP_ENDPOINT: "https://collector.internal",
      OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: "http://logs.internal:4318/v1/logs",
    }),
    ["collector.internal:443", "logs.internal:4318"],
  );
});

/** Starts main.ts directly with the given permission flags, as the Docker image and compiled binary do. */
async function direct(permissions: string[], args: string[], cwd: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--cached-only",
      "--no-prompt",
      `--allow-read=${ROOT},${cwd}`,
      ...permissions,
      join(ROOT, "main.ts"),
      ...args,
    ],
    cwd,
    env: { NO_COLOR: "1", ...DENO_CACHE_ENV },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

Deno.test("permission denials are one line that names the path and the fix, exit 2", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const config = await writeConfig(
      dir,
      `[docker]\nBUCKET_NAME = ${bucket}\nDATABASE_NAME = /data-${crypto.randomUUID()}/db.sqlite3\nSAVE_LOG = yes\n` +
        `LOG_DIR = /data-bucketload-test/logs\n`,
    );
    for (
      const args of [["--config", config, "--profile", "docker"], ["--config", config, "--profile", "docker", "status"]]
    ) {
      const run = await direct([`--allow-write=${dir}`, "--allow-env=BUCKETLOAD_*"], args, dir);
      assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
      assert.match(
        oneLine(run.stderr),
        /^bucketload: Permission denied: Requires (read|write) access to "\/data-.*": /,
      );
    }
  });
});

Deno.test("deno task run starts offline once installed: no registry request", async () => {
  await withTempDir(async (dir) => {
    const env = {
      DENO_DIR: join(dir, "empty-deno-dir"),
      HTTPS_PROXY: "http://127.0.0.1:1",
      HTTP_PROXY: "http://127.0.0.1:1",
      NPM_CONFIG_REGISTRY: "http://127.0.0.1:1/",
      PATH: Deno.env.get("PATH") ?? "",
    };
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${join(CASES, "basic")}\nDATABASE_NAME = db.sqlite3\n`);
    for (const args of [["status", "--config", config, "--profile", "p"], ["--config", config, "--profile", "p"]]) {
      const run = await task(args, { cwd: dir, env });
      assert.equal(run.code, 0, run.stderr);
      assert.doesNotMatch(run.stderr, /Download|registry/i);
    }
  });
});

Deno.test("migration: a bucketload database from before schema versions is upgraded, even with tables missing", async () => {
  await withTempDir(async (dir) => {
    const dbPath = join(dir, "db.sqlite3");
    const db = new DatabaseSync(dbPath);
    // Only runs and processed_files, as an early bucketload (or a hand-seeded database) had.
    db.exec(
      `CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL,
      files_listed INTEGER NOT NULL DEFAULT 0, files_new INTEGER NOT NULL DEFAULT 0, files_loaded INTEGER NOT NULL DEFAULT 0,
      files_invalid INTEGER NOT NULL DEFAULT 0, files_missing INTEGER NOT NULL DEFAULT 0,
      files_failed INTEGER NOT NULL DEFAULT 0, files_refused INTEGER NOT NULL DEFAULT 0,
      records_loaded INTEGER NOT NULL DEFAULT 0, loaded_by_type TEXT NOT NULL DEFAULT '{}',
      records_rejected INTEGER NOT NULL DEFAULT 0, records_ignored INTEGER NOT NULL DEFAULT 0,
      ignored_by_type TEXT NOT NULL DEFAULT '{}') STRICT;
      CREATE TABLE processed_files (key TEXT PRIMARY KEY, status TEXT NOT NULL, run_id INTEGER NOT NULL,
      processed_at TEXT NOT NULL, records INTEGER NOT NULL, rejected INTEGER NOT NULL, ignored INTEGER NOT NULL,
      bytes INTEGER NOT NULL) STRICT;
      INSERT INTO runs (id, started_at, status) VALUES (1, '2021-01-01T00:00:00Z', 'ok');
      INSERT INTO processed_files VALUES ('a1b2c3d4-0001-4000-8000-000000000001.data', 'loaded', 1, 'x', 1, 0, 0, 1);`,
    );
    db.close();
    const report = await runOnce(join(CASES, "basic"), dbPath);
    assert.equal(report.filesNew, 2, "the registered key was fetched again, or the run failed");
    assert.deepEqual(
      query(dbPath, "SELECT version FROM schema_version ORDER BY version"),
      MIGRATIONS.map((m) => ({ version: m.version })),
    );
  });
});
