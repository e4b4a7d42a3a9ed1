/**
 * tools/pg_cluster.sh, which docs/postgres.md offers to users: it replaces
 * only a folder it made itself (or an empty or new one), and refuses, with
 * one line and nothing deleted, a folder that holds anything else. The
 * refusals need no PostgreSQL: they come before anything is installed or
 * started.
 *
 * @module
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT, withTempDir } from "./helpers.ts";
import { pgTest } from "./pg.ts";

const CLUSTER = join(ROOT, "tools", "pg_cluster.sh");

/** Runs `tools/pg_cluster.sh ARGS` with `PATH` alone, so that a refusal can't reach apt-get or initdb first. */
async function cluster(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("bash", {
    args: [CLUSTER, ...args],
    env: { PATH: Deno.env.get("PATH") ?? "" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** The names in `dir`, sorted. */
function names(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).sort();
}

/** Stops a server the script may have started in `dir` (only if it wrongly went ahead), keeping the folder. */
async function stopAnyServer(dir: string): Promise<void> {
  if (existsSync(join(dir, "data", "postmaster.pid"))) await cluster("crash", dir);
}

Deno.test("pg_cluster.sh start and stop refuse a folder they did not make: one line, exit 2, nothing deleted", async () => {
  await withTempDir(async (dir) => {
    const mine = join(dir, "d");
    await Deno.mkdir(join(mine, "sub"), { recursive: true });
    await Deno.writeTextFile(join(mine, "keepme.txt"), "important\n");
    await Deno.writeTextFile(join(mine, "sub", "deep.txt"), "also\n");
    // A folder that holds only a hidden file is not empty either.
    const hidden = join(dir, "h");
    await Deno.mkdir(hidden);
    await Deno.writeTextFile(join(hidden, ".env"), "SECRET=1\n");
    // A plain file where the folder should be.
    const file = join(dir, "f.txt");
    await Deno.writeTextFile(file, "a file\n");
    const refused: [string, string, string[]][] = [
      ["a folder with files", mine, ["keepme.txt", "sub"]],
      ["a folder with a hidden file", hidden, [".env"]],
    ];
    for (const [what, target, before] of refused) {
      for (const command of [["start", target, "55500"], ["stop", target]]) {
        try {
          const out = await cluster(...command);
          const said = `${command[0]} on ${what}: ${out.stderr}`;
          assert.equal(out.code, 2, said);
          assert.equal(out.stdout, "", said);
          assert.equal(out.stderr.trim().split("\n").length, 1, said);
          assert.match(
            out.stderr,
            new RegExp(`^pg_cluster\\.sh: refusing to ${command[0] === "start" ? "replace" : "remove"} ${target}: `),
          );
          assert.match(out.stderr, /: it holds files this script did not create \(.+\)/);
          assert.deepEqual(names(target), before, said);
        } finally {
          await stopAnyServer(target);
        }
      }
    }
    assert.equal(await Deno.readTextFile(join(mine, "keepme.txt")), "important\n");
    assert.equal(await Deno.readTextFile(join(mine, "sub", "deep.txt")), "also\n");
    const onFile = await cluster("start", file, "55500");
    assert.equal(onFile.code, 2, onFile.stderr);
    assert.match(onFile.stderr, /^pg_cluster\.sh: refusing to replace .*f\.txt: it is not a folder\n$/);
    assert.equal(await Deno.readTextFile(file), "a file\n");
    // stop on a folder that does not exist is nothing to do.
    const gone = await cluster("stop", join(dir, "never"));
    assert.equal(gone.code, 0, gone.stderr);
  });
});

pgTest("pg_cluster.sh starts in an empty folder and again in one it made itself; stop removes it", async () => {
  await withTempDir(async (dir) => {
    // The cluster belongs to an unprivileged user (initdb refuses root), who must reach its folder.
    await Deno.chmod(dir, 0o755);
    const folder = join(dir, "pg");
    await Deno.mkdir(folder);
    try {
      // Empty, as tools/test.ts gives it (mkdtemp).
      const first = await cluster("start", folder, "55520");
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, /^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres\n$/);
      assert.ok(existsSync(join(folder, ".pg_cluster")), "no marker");
      // Its own folder, even with its server still up and a leftover in it: replaced.
      await Deno.writeTextFile(join(folder, "leftover.txt"), "from the last cluster\n");
      const again = await cluster("start", folder, "55520");
      assert.equal(again.code, 0, again.stderr);
      assert.equal(existsSync(join(folder, "leftover.txt")), false);
      assert.ok(existsSync(join(folder, "data", "postmaster.pid")));
      const stop = await cluster("stop", folder);
      assert.equal(stop.code, 0, stop.stderr);
      assert.equal(existsSync(folder), false);
    } finally {
      await stopAnyServer(folder);
    }
  });
});
