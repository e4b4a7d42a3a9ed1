/**
 * A profile from the environment alone, started from a folder the program
 * may not read (`/`, or `$HOME` from cron): there is no config file there to
 * read, and the run goes on.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CASES, DENO_CACHE_ENV, LAUNCHER, withTempDir } from "./helpers.ts";

Deno.test("the environment alone, started from / through the launcher: no config file is looked for there", async () => {
  await withTempDir(async (dir) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [...LAUNCHER, "--quiet"],
      cwd: "/",
      clearEnv: true,
      env: {
        NO_COLOR: "1",
        ...DENO_CACHE_ENV,
        BUCKETLOAD_BUCKET_NAME: join(CASES, "basic"),
        BUCKETLOAD_DATABASE_NAME: join(dir, "db.sqlite3"),
      },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    assert.doesNotMatch(stderr, /config\.ini/);
    assert.match(new TextDecoder().decode(out.stdout), /run 1 finished/);
  });
});
