/**
 * No secret in any crash, and config mistakes named: a DATABASE_URL that
 * does not parse, `--profile` without a config file.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { cli, DENO_CACHE_ENV, ROOT, storeSpecOf, withTempDir, writeConfig } from "./helpers.ts";

/** `deno task run ARGS` from `cwd`, as a user's terminal starts it. */
async function task(args: string[], cwd: string, env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "--quiet", `--config=${join(ROOT, "deno.json")}`, "run", ...args],
    cwd,
    env: {
      NO_COLOR: "1",
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "",
      ...DENO_CACHE_ENV,
      ...env,
    },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout), stderr: new TextDecoder().decode(out.stderr) };
}

const BAD_URLS = [
  "postgres://loader:p#ss;w0rd@db.example.com/warehouse",
  "postgres://loader:p4ssw0rd@db.example.com:99999999/warehouse",
  "postgres://loader:p4ssw0rd@db.example.com:abc/warehouse",
  "postgres://loader:p4ssw0rd@[::1/warehouse",
];

Deno.test("a DATABASE_URL that does not parse is one line naming the key, exit 2, never its password", async () => {
  await withTempDir(async (dir) => {
    const logs = join(dir, "logs");
    for (const url of BAD_URLS) {
      const password = /:([^:@]*)@/.exec(url)![1]!;
      const ways: { name: string; config: string; env: Record<string, string>; key: RegExp }[] = [
        {
          name: "profile",
          config: `[p]\nBUCKET_NAME = ${dir}\nDATABASE_URL = ${url}\nSAVE_LOG = yes\nLOG_DIR = ${logs}\n`,
          env: {},
          key: /'DATABASE_URL' in profile 'p'/,
        },
        {
          name: "BUCKETLOAD_DATABASE_URL",
          config: `[p]\nBUCKET_NAME = ${dir}\n`,
          env: { BUCKETLOAD_DATABASE_URL: url },
          key: /environment variable BUCKETLOAD_DATABASE_URL/,
        },
        {
          name: "plain DATABASE_URL",
          config: `[p]\nBUCKET_NAME = ${dir}\n`,
          env: { DATABASE_URL: url },
          key: /environment variable DATABASE_URL/,
        },
      ];
      for (const way of ways) {
        const config = await writeConfig(dir, way.config);
        for (const how of ["main.ts", "deno task run"]) {
          const out = how === "main.ts"
            ? await cli(["--config", config, "--profile", "p"], { env: way.env })
            : await task(["--config", config, "--profile", "p"], dir, way.env);
          const said = out.stdout + out.stderr;
          const where = `${url} by ${way.name} through ${how}`;
          assert.equal(out.code, 2, `${where}: ${said}`);
          assert.equal(out.stderr.trim().split("\n").length, 1, `${where}: not one line: ${said}`);
          assert.match(out.stderr, way.key, where);
          assert.match(out.stderr, /percent-encode/, where);
          assert.ok(!said.includes(password), `${where}: the password was printed: ${said}`);
        }
      }
    }
    // Nothing was logged to a file either.
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isFile) assert.ok(!BAD_URLS.some((u) => Deno.readTextFileSync(join(dir, entry.name)).includes(u)));
    }
  });
});

Deno.test("a percent-encoded password with # and ; is accepted as libpq's URI rules allow", async () => {
  const { resolveConfig } = await import("../mod/config/config.ts");
  const { postgresStore } = await import("../mod/store/postgres/kind.ts");
  const config = resolveConfig({
    env: {
      BUCKETLOAD_BUCKET_NAME: "https://bucket.example.com/",
      BUCKETLOAD_DATABASE_URL: "postgres://loader:p%23ss%3Bw0rd@db.example.com/warehouse",
    },
  });
  const url = storeSpecOf(config, postgresStore)!.url;
  assert.equal(new URL(url).password, "p%23ss%3Bw0rd");
  assert.equal(decodeURIComponent(new URL(url).password), "p#ss;w0rd");
});

Deno.test("--profile without a config file names the file and the profile, exit 2", async () => {
  await withTempDir(async (dir) => {
    for (const [args, env] of [[["--profile", "dev"], {}], [[], { BUCKETLOAD_PROFILE: "dev" }]] as const) {
      const out = await cli([...args], { cwd: dir, env: { ...env, BUCKETLOAD_BUCKET_NAME: dir } });
      assert.equal(out.code, 2, out.stderr);
      assert.match(
        out.stderr,
        new RegExp(
          `^bucketload: Profile 'dev' was asked for, but there is no config file: ${dir}/config.ini does not exist`,
        ),
      );
      assert.doesNotMatch(out.stderr, /Missing 'BUCKET_NAME'/);
    }
  });
});

Deno.test("an unexpected error is one masked line, without a stack trace", async () => {
  const { lastWords } = await import("../mod/cli/last_words.ts");
  const lines: string[] = [];
  const write = Deno.stderr.writeSync;
  Deno.stderr.writeSync = (p: Uint8Array) => (lines.push(new TextDecoder().decode(p)), p.length);
  try {
    const error = new TypeError("Invalid URL: 'postgres://loader:p#ss;w0rd@host/db'");
    assert.equal(lastWords(error), 1);
  } finally {
    Deno.stderr.writeSync = write;
  }
  assert.deepEqual(lines, ["bucketload: unexpected error: TypeError: Invalid URL: 'postgres://***@host/db'\n"]);
});
