/**
 * The docs stay true: the generated configuration page matches the key
 * specs, every key is documented, every fenced block of README.md and
 * docs/*.md carries a marker that says how it is kept true, and the blocks
 * marked to run are run, as a user runs them, in a copy of the project, their
 * output compared with what the docs show (tests/docs_blocks.ts). The
 * messages and exit codes the docs quote are in tests/docs_messages_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseConfigText, resolveConfig } from "../mod/config/config.ts";
import { CONFIG_KEYS } from "../mod/config/keys.ts";
import { CONFIGURATION_DOC, configurationDoc } from "../tools/docs.ts";
import {
  allBlocks,
  assertLinesAmong,
  assertShown,
  type Block,
  DIAGRAM_PAGES,
  type Marker,
  mask,
  parseMarker,
  SETUPS,
  sh,
  transcript,
  where,
  withSandbox,
} from "./docs_blocks.ts";
import { cli, ROOT } from "./helpers.ts";
import { PG_SKIP } from "./pg.ts";

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
  // Links between pages point at pages that exist, and at headings those pages have.
  const anchors = async (page: string) => {
    const text = await Deno.readTextFile(join(ROOT, page));
    return new Set(
      [...text.matchAll(/^#+ (.*)$/gm)].map(([, h]) =>
        h!.toLowerCase().replace(/[^\p{L}\p{N} _-]/gu, "").trim().replace(/ /g, "-")
      ),
    );
  };
  const pages = ["README.md", ...[...Deno.readDirSync(join(ROOT, "docs"))].map((e) => `docs/${e.name}`)];
  for (const page of pages) {
    const text = await Deno.readTextFile(join(ROOT, page));
    const base = page.startsWith("docs/") ? "docs/" : "";
    for (const [, target, anchor] of text.matchAll(/\]\(((?:docs\/|\.\.\/)?[A-Za-z_]+\.md)?(?:#([^)]*))?\)/g)) {
      if (target === undefined && anchor === undefined) continue;
      const file = target === undefined
        ? page
        : target.startsWith("../")
        ? target.slice(3)
        : target.startsWith("docs/")
        ? target
        : `${base}${target}`;
      await Deno.stat(join(ROOT, file)).catch(() => assert.fail(`${page} links ${file}`));
      if (anchor !== undefined) {
        assert.ok((await anchors(file)).has(anchor), `${page} links ${file}#${anchor}, a heading ${file} lacks`);
      }
    }
  }
});

const blocks = await allBlocks();
const markerOf = (b: Block): Marker | undefined => b.comment === undefined ? undefined : parseMarker(b.comment);
const hasCommandLines = (b: Block) => /^\$ /m.test(b.body);

Deno.test("docs: every fenced block carries a docs-test marker the tests understand", async () => {
  const unmarked: string[] = [];
  for (const b of blocks) {
    if (b.comment === undefined) {
      if (!DIAGRAM_PAGES.has(b.page) || hasCommandLines(b)) unmarked.push(`${where(b)} (${b.body.split("\n")[0]})`);
      continue;
    }
    let marker: Marker;
    try {
      marker = parseMarker(b.comment);
    } catch (error) {
      assert.fail(`${where(b)}: ${(error as Error).message}`);
    }
    // A command with its output shown is run, or says why not.
    if (hasCommandLines(b)) {
      assert.ok(["run", "not run"].includes(marker.kind), `${where(b)} shows commands: mark it run (or not run: why)`);
    }
    if (marker.kind === "run") assert.ok(hasCommandLines(b), `${where(b)} is marked run but has no "$ " line`);
    // A reason that names a test names one that exists.
    if (marker.kind === "not run") {
      for (const [file] of marker.reason.matchAll(/tests\/[a-z_]+\.ts/g)) {
        await Deno.stat(join(ROOT, file)).catch(() => assert.fail(`${where(b)}: its reason names ${file}, not there`));
      }
    }
  }
  assert.deepEqual(unmarked, [], "blocks without a <!-- docs-test: … --> marker (see tests/docs_blocks.ts)");
});

/** A test per block that runs: its commands in a fresh copy of the project, the output compared. */
for (const block of blocks) {
  const marker = markerOf(block);
  if (marker?.kind !== "run" && marker?.kind !== "output-of") continue;
  const steps = marker.kind === "run" ? transcript(block.body) : [{ command: marker.command, shown: block.body }];
  const setup = marker.setup === undefined ? undefined : SETUPS[marker.setup]!;
  Deno.test({
    name: `docs: ${where(block)} does what it shows: ${steps.map((s) => s.command).join("; ")}`,
    ignore: setup?.postgres === true && PG_SKIP,
    fn: async () => {
      await withSandbox(async (box) => {
        const go = async () => {
          for (const step of steps) {
            const ran = await sh(box, step.command);
            const what = `${where(block)} \`${step.command}\``;
            assert.equal(ran.code, 0, `${what} exited ${ran.code}: ${ran.stderr}`);
            if (marker.kind === "output-of" && marker.stderr) {
              assertLinesAmong(mask(ran.stderr, box.paths), mask(step.shown), what);
            } else {
              assertShown(mask(ran.stdout, box.paths), mask(step.shown), what);
            }
          }
        };
        await (setup === undefined ? go() : setup.around(box, go));
      });
    },
  });
}

Deno.test("docs: a layout block names every module of mod/ and the entries, and only paths that exist", async () => {
  const layouts = blocks.filter((b) => markerOf(b)?.kind === "layout");
  assert.ok(layouts.length > 0, "docs/architecture.md lost its layout block");
  const modules: string[] = ["main.ts", "launch.ts", "deploy.ts"];
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(join(ROOT, dir))) {
      if (entry.isDirectory) walk(`${dir}/${entry.name}`);
      else if (entry.name.endsWith(".ts")) modules.push(`${dir}/${entry.name}`);
    }
  };
  walk("mod");
  for (const b of layouts) {
    // Each line: the path (or paths, comma-separated), two spaces or more, what it holds.
    const named = b.body.split("\n").filter((l) => l.trim() !== "")
      .flatMap((line) => line.split(/\s{2,}/)[0]!.split(", ").map((p) => p.trim()));
    for (const path of named) {
      await Deno.stat(join(ROOT, path)).catch(() => assert.fail(`${where(b)} names ${path}, which does not exist`));
    }
    const unnamed = modules.filter((m) => !named.includes(m)).sort();
    assert.deepEqual(unnamed, [], `${where(b)} does not name these modules`);
  }
});

Deno.test("docs: a synopsis names every flag and command --help lists, and no other", async () => {
  const help = await cli(["--help"]);
  assert.equal(help.code, 0);
  const flagsOf = (text: string) => new Set([...text.matchAll(/(?<![\w-])(--?[a-z][a-z-]*)/g)].map((m) => m[1]!));
  const commandsOf = (text: string) =>
    new Set([...text.matchAll(/^\s*deno task run (status|serve|replay)\b/gm)].map((m) => m[1]!));
  const usage = help.stdout.slice(0, help.stdout.indexOf("Profile keys"));
  const synopses = blocks.filter((b) => markerOf(b)?.kind === "synopsis");
  assert.ok(synopses.length > 0);
  for (const b of synopses) {
    assert.deepEqual([...flagsOf(b.body)].sort(), [...flagsOf(usage)].sort(), `${where(b)}: flags`);
    assert.deepEqual([...commandsOf(b.body)].sort(), [...commandsOf(usage)].sort(), `${where(b)}: commands`);
  }
});

Deno.test("docs: every profile of a config sample is read without an error", () => {
  const samples = blocks.filter((b) => markerOf(b)?.kind === "config");
  assert.ok(samples.length > 0);
  for (const b of samples) {
    const path = `/srv/bucketload/${b.page.replace(/\W/g, "_")}.ini`;
    const sections = parseConfigText(b.body, path);
    for (const profile of sections.keys()) {
      if (profile === "DEFAULT") continue;
      try {
        resolveConfig({ sections, configPath: path, profile, env: {} });
      } catch (error) {
        assert.fail(`${where(b)} [${profile}]: ${(error as Error).message}`);
      }
    }
  }
});

Deno.test("README: a second run of the quick start does nothing, in the words the README quotes", async () => {
  const readme = await Deno.readTextFile(join(ROOT, "README.md"));
  const quoted = /`(bucketload: nothing to do [^`]*)`/.exec(readme)?.[1];
  assert.ok(quoted !== undefined, "the README no longer quotes the second run's line");
  await withSandbox(async (box) => {
    for (let run = 1; run <= 2; run++) {
      const ran = await sh(box, "deno task run --profile dev");
      assert.equal(ran.code, 0, ran.stderr);
      if (run === 2) assertShown(mask(ran.stdout, box.paths), mask(quoted), "the second run");
    }
  });
});
