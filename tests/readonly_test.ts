/**
 * `status` and `--dry-run` through the launcher (least privilege, as
 * `deno task run` starts them) for a user who may only read the database and
 * its folder, as on a read-only filesystem: a run leaves the database in a
 * mode any reader can open.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { copyCase, ROOT, runOnce, withTempDir, writeConfig } from "./helpers.ts";

const decoder = new TextDecoder();

Deno.test("status and --dry-run, through the launcher or not, for a user who may not write the database's folder", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const db = join(dir, "ro", "db.sqlite3");
    await runOnce(bucket, db);
    const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${bucket}\nDATABASE_NAME = ${db}\n`);
    await Deno.chmod(join(dir, "ro"), 0o555);
    await Deno.chmod(db, 0o444);
    await Deno.chmod(dir, 0o755);
    await Deno.chmod(config, 0o644);
    // As root, file modes do not bind: run as `nobody`, with a copy of the project it may read.
    const uid = decoder.decode((await new Deno.Command("id", { args: ["-u"], stdout: "piped" }).output()).stdout);
    const asRoot = uid.trim() === "0";
    let project = ROOT;
    if (asRoot) {
      project = join(dir, "project");
      await Deno.mkdir(project);
      const parts = ["main.ts", "launch.ts", "deno.json", "deno.lock", "mod", "node_modules"].map((p) => join(ROOT, p));
      await new Deno.Command("cp", { args: ["-a", ...parts, project] }).output();
      await new Deno.Command("chmod", { args: ["-R", "a+rX", project] }).output();
      await Deno.mkdir(join(dir, "deno-dir"), { mode: 0o777 });
      await Deno.chmod(join(dir, "deno-dir"), 0o777);
    }
    // Through the launcher (least privilege, as deno task run starts it), and the program alone with every permission.
    const entries = [
      ["--no-prompt", "--allow-read", "--allow-env", "--allow-run", join(project, "launch.ts")],
      ["-A", join(project, "main.ts")],
    ];
    for (const [entry, args] of entries.flatMap((e) => [[e, ["status"]], [e, ["--dry-run"]]])) {
      const command = [
        Deno.execPath(),
        "run",
        "--cached-only",
        ...entry!,
        "--config",
        config,
        "--profile",
        "p",
        ...args!,
      ];
      const out = await new Deno.Command(asRoot ? "setpriv" : command[0]!, {
        args: asRoot ? ["--reuid=65534", "--regid=65534", "--clear-groups", ...command] : command.slice(1),
        clearEnv: true,
        env: { NO_COLOR: "1", DENO_DIR: asRoot ? join(dir, "deno-dir") : Deno.env.get("DENO_DIR") ?? "", HOME: dir },
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = decoder.decode(out.stderr);
      assert.equal(out.code, 0, `${args}: ${stderr}`);
      assert.match(
        decoder.decode(out.stdout),
        args![0] === "status" ? /Registry: 1 invalid, 2 loaded/ : /already processed/,
      );
    }
    // Nothing was created beside the database.
    const names = [];
    for await (const e of Deno.readDir(join(dir, "ro"))) names.push(e.name);
    assert.deepEqual(names, ["db.sqlite3"]);
  });
});
