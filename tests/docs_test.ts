/**
 * The docs stay true: the generated configuration page matches the key
 * specs, every key is documented, and the README's quick start does what it
 * says, from a copy of the project.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CONFIG_KEYS } from "../mod/config_keys.ts";
import { CONFIGURATION_DOC, configurationDoc } from "../tools/docs.ts";
import { DENO_CACHE_ENV, ROOT, withTempDir } from "./helpers.ts";

Deno.test("docs/configuration.md is generated from the key specs (run `deno task docs` when this fails)", async () => {
  assert.equal(await Deno.readTextFile(CONFIGURATION_DOC), configurationDoc());
  for (const key of Object.keys(CONFIG_KEYS)) assert.match(configurationDoc(), new RegExp(`\\| \`${key}\` \\|`));
});

Deno.test("README: the front door stays short and links every page of the manual", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  assert.ok(readme.length <= 12 * 1024, `README is ${readme.length} bytes`);
  for await (const entry of Deno.readDir(join(ROOT, "docs"))) {
    assert.ok(readme.includes(`(docs/${entry.name})`), `README does not link docs/${entry.name}`);
  }
  // Links between pages point at pages that exist.
  for await (const entry of Deno.readDir(join(ROOT, "docs"))) {
    const text = await Deno.readTextFile(join(ROOT, "docs", entry.name));
    for (const [, target] of text.matchAll(/\]\(([a-z_]+\.md)(#[^)]*)?\)/g)) {
      await Deno.stat(join(ROOT, "docs", target!)).catch(() => assert.fail(`${entry.name} links ${target}`));
    }
  }
});

/** Copies what a clone holds (not .git, not the caches) into `dir`, sharing node_modules. */
async function copyProject(dir: string) {
  const skip = new Set([".git", "node_modules", ".bench", "dev.sqlite3", "db.sqlite3"]);
  const copy = async (from: string, to: string) => {
    await Deno.mkdir(to, { recursive: true });
    for await (const entry of Deno.readDir(from)) {
      if (skip.has(entry.name) || entry.name.startsWith("dev.sqlite3") || entry.name === "dev-processed.json") continue;
      if (from.endsWith("s3rver") && entry.name === "node_modules") continue;
      const [a, b] = [join(from, entry.name), join(to, entry.name)];
      if (entry.isDirectory) await copy(a, b);
      else if (entry.isFile) await Deno.copyFile(a, b);
    }
  };
  await copy(ROOT, dir);
  await Deno.symlink(join(ROOT, "node_modules"), join(dir, "node_modules"));
}

Deno.test("README: the quick start's `deno task run --profile dev` does what the README shows", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const block = /```sh\n([\s\S]*?)```/.exec(readme)![1]!;
  const command = block.split("\n").map((l) => l.replace(/#.*$/, "").trim()).find((l) =>
    l.startsWith("deno task run")
  )!;
  assert.equal(command, "deno task run --profile dev");
  const shown = /```\n(bucketload: run 1 finished[\s\S]*?)```/.exec(readme)![1]!;
  await withTempDir(async (dir) => {
    await copyProject(dir);
    const run = async () => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["task", "--quiet", "run", "--profile", "dev", "--quiet"],
        cwd: dir,
        env: {
          NO_COLOR: "1",
          PATH: Deno.env.get("PATH") ?? "",
          HOME: Deno.env.get("HOME") ?? "",
          ...DENO_CACHE_ENV,
        },
        clearEnv: true,
        stdout: "piped",
        stderr: "piped",
      }).output();
      return {
        code: out.code,
        stdout: new TextDecoder().decode(out.stdout),
        stderr: new TextDecoder().decode(out.stderr),
      };
    };
    const first = await run();
    assert.equal(first.code, 0, first.stderr);
    // Every line the README shows, but the timings.
    const untimed = (text: string) => text.split("\n").filter((l) => !/finished in|rate /.test(l)).join("\n").trim();
    assert.equal(untimed(first.stdout), untimed(shown));
    const second = await run();
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /nothing to do .*the list is unchanged and no key is pending/);
  });
});
