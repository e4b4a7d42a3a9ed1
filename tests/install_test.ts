/**
 * The installed `bucketload` command (`deno task install`): the launcher on
 * the PATH, run from any folder.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CASES, query, ROOT, withTempDir } from "./helpers.ts";

/** Any registry request fails at once (and the test never leaves the machine). */
const OFFLINE = {
  HTTPS_PROXY: "http://127.0.0.1:1",
  HTTP_PROXY: "http://127.0.0.1:1",
  NPM_CONFIG_REGISTRY: "http://127.0.0.1:1/",
};

Deno.test("deno task install puts a bucketload command on the PATH that runs from any folder, least privilege kept", async () => {
  await withTempDir(async (dir) => {
    const root = join(dir, "root");
    const env = {
      PATH: `${join(root, "bin")}:${Deno.env.get("PATH") ?? ""}`,
      HOME: dir,
      NO_COLOR: "1",
      DENO_DIR: join(dir, "empty-deno-dir"),
      ...OFFLINE,
    };
    const install = await new Deno.Command(Deno.execPath(), {
      args: ["task", "--quiet", `--config=${join(ROOT, "deno.json")}`, "install"],
      cwd: dir,
      env: {
        ...env,
        DENO_INSTALL_ROOT: root,
        DENO_DIR: Deno.env.get("DENO_DIR") ?? join(Deno.env.get("HOME")!, ".cache", "deno"),
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const said = new TextDecoder().decode(install.stdout) + new TextDecoder().decode(install.stderr);
    assert.equal(install.code, 0, said);
    assert.match(said, /Installed: .*bin\/bucketload/);
    // A user's folder far from the project, a config in a subfolder, a relative --config and relative paths in it.
    const work = join(dir, "work");
    await Deno.mkdir(join(work, "conf"), { recursive: true });
    await Deno.writeTextFile(
      join(work, "conf", "app.ini"),
      `[p]\nBUCKET_NAME = ${join(CASES, "basic")}\nDATABASE_NAME = ../data/db.sqlite3\n`,
    );
    const run = async (...args: string[]) => {
      const out = await new Deno.Command("bucketload", {
        args,
        cwd: work,
        env,
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      })
        .output();
      return {
        code: out.code,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: new TextDecoder().decode(out.stderr),
      };
    };
    const first = await run("--config", "conf/app.ini", "--profile", "p", "--quiet");
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /run 1 finished/);
    assert.doesNotMatch(first.stderr + said, /Download/);
    assert.deepEqual(query(join(work, "data", "db.sqlite3"), "SELECT count(*) AS n FROM processed_files"), [{ n: 3 }]);
    const status = await run("status", "--config", "conf/app.ini", "--profile", "p");
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /Registry: 1 invalid, 2 loaded/);
    // Usage errors come from the launcher, as with deno task run.
    const bad = await run("--config", "conf/missing.ini");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^bucketload: Cannot read config file .*conf\/missing\.ini/);
    // --help names the command as it was started.
    const help = await run("--help");
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage:\n {2}bucketload \[options\] {2,}run the pipeline once/m);
    assert.match(help.stdout, /^ {2}bucketload status \[--json\] /m);
    assert.doesNotMatch(help.stdout, /deno task run/);
    // A path Deno opens only with --allow-all: the hint does not send the user to what they already ran.
    await Deno.writeTextFile(
      join(work, "conf", "proc.ini"),
      `[p]\nBUCKET_NAME = ${join(CASES, "basic")}\nDATABASE_NAME = /proc/x.sqlite3\n`,
    );
    const proc = await run("--config", "conf/proc.ini", "--profile", "p", "--quiet");
    assert.equal(proc.code, 2, proc.stderr);
    assert.equal(proc.stderr.trim().split("\n").length, 1, proc.stderr);
    assert.match(
      proc.stderr,
      /^bucketload: Permission denied: Requires all access to "\/proc": Deno opens that path only for a program run with --allow-all, which 'bucketload' never grants: point the setting at a path elsewhere\n$/,
    );
  });
});
