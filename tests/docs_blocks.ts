/**
 * The docs' fenced blocks as tests see them: each block of README.md and
 * docs/*.md carries a marker, an HTML comment on the line before its fence,
 * that says how a test keeps it true:
 *
 * - `<!-- docs-test: run -->`: a transcript. Each `$ ` line is a command, run
 *   with bash in a fresh copy of the project (shown as `/srv/bucketload`),
 *   one copy per block, the commands in order; the lines up to the next `$ `
 *   are its stdout. It must exit 0.
 * - `<!-- docs-test: output-of "CMD" -->`: the block is the stdout of CMD, run
 *   so in a fresh copy; with `stderr` after the command, each shown line is one
 *   of its stderr lines, in order (log lines come with others).
 * - `setup=NAME` (after `run` or the command): a named step of
 *   {@linkcode SETUPS} prepares the copy first (a database an older version
 *   loaded, a PostgreSQL database).
 * - `<!-- docs-test: synopsis -->`: the command line's synopsis, which must name
 *   every flag `--help` lists, and no other.
 * - `<!-- docs-test: config -->`: a config sample, every profile of which must
 *   be read without an error.
 * - `<!-- docs-test: not run: REASON -->`: not run, with the reason (a test
 *   named there, `tests/x_test.ts`, must exist).
 *
 * Output is compared line by line after {@linkcode mask}ing timings, dates,
 * pids and the copy's path, on both sides; a shown line `...` stands for any
 * number of lines.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { appType } from "../mod/records/app.ts";
import type { RecordType } from "../mod/records/mod.ts";
import { movieType } from "../mod/records/movie.ts";
import { songType } from "../mod/records/song.ts";
import { DENO_CACHE_ENV, ROOT, runOnce } from "./helpers.ts";
import { withPgDatabase } from "./pg.ts";

/** The pages whose blocks are checked (docs/configuration.md is generated and tested on its own). */
export async function pages(): Promise<string[]> {
  const names = ["README.md"];
  for await (const entry of Deno.readDir(join(ROOT, "docs"))) {
    if (entry.isFile && entry.name.endsWith(".md") && entry.name !== "configuration.md") {
      names.push(`docs/${entry.name}`);
    }
  }
  return names.sort();
}

/**
 * Pages whose blocks need a marker only when they hold a `$ ` command line
 * (none now: architecture.md's diagram and layout carry theirs).
 */
export const DIAGRAM_PAGES: ReadonlySet<string> = new Set();

/** How a block is kept true. */
export type Marker =
  | { readonly kind: "run"; readonly setup?: string }
  | { readonly kind: "output-of"; readonly command: string; readonly stderr: boolean; readonly setup?: string }
  | { readonly kind: "synopsis" }
  | { readonly kind: "config" }
  /** A listing of the source tree (path, then what it holds): every path exists and every module is listed. */
  | { readonly kind: "layout" }
  | { readonly kind: "not run"; readonly reason: string };

/** One fenced block of a page. */
export interface Block {
  readonly page: string;
  /** The 1-based line of the opening fence. */
  readonly line: number;
  readonly lang: string;
  readonly body: string;
  /** The marker's text, when the block has one. */
  readonly comment?: string;
}

/** Where a block is, for messages and test names. */
export const where = (b: Block) => `${b.page}:${b.line}`;

/** The fenced blocks of a page, each with the `docs-test` comment before it (blank lines between allowed). */
export function blocksOf(page: string, text: string): Block[] {
  const lines = text.split("\n");
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,})(\S*)\s*$/.exec(lines[i]!);
    if (open === null) continue;
    const [, indent, fence, lang] = open;
    let end = i + 1;
    while (end < lines.length && lines[end]!.trim() !== fence) end++;
    let before = i - 1;
    while (before >= 0 && lines[before]!.trim() === "") before--;
    const comment = before >= 0 ? /^\s*<!--\s*docs-test:\s*([\s\S]*?)\s*-->\s*$/.exec(lines[before]!)?.[1] : undefined;
    const body = lines.slice(i + 1, end).map((l) => l.startsWith(indent!) ? l.slice(indent!.length) : l).join("\n");
    blocks.push({ page, line: i + 1, lang: lang!, body, ...(comment === undefined ? {} : { comment }) });
    i = end;
  }
  return blocks;
}

/** Every block of every checked page. */
export async function allBlocks(): Promise<Block[]> {
  const out: Block[] = [];
  for (const page of await pages()) out.push(...blocksOf(page, await Deno.readTextFile(join(ROOT, page))));
  return out;
}

/** Reads a marker's text; throws on one that is not understood. */
export function parseMarker(text: string): Marker {
  const notRun = /^not run:\s*(\S[\s\S]*)$/.exec(text);
  if (notRun !== null) return { kind: "not run", reason: notRun[1]!.replace(/\s+/g, " ") };
  if (text === "synopsis") return { kind: "synopsis" };
  if (text === "config") return { kind: "config" };
  if (text === "layout") return { kind: "layout" };
  const setupOf = (rest: string) => {
    const options = rest.trim().split(/\s+/).filter((o) => o !== "");
    const setups = options.filter((o) => o.startsWith("setup=")).map((o) => o.slice("setup=".length));
    const other = options.filter((o) => !o.startsWith("setup=") && o !== "stderr");
    if (other.length > 0 || setups.length > 1) throw new Error(`unknown marker options: ${rest}`);
    for (const s of setups) if (!Object.hasOwn(SETUPS, s)) throw new Error(`unknown setup ${s}`);
    return { ...(setups[0] === undefined ? {} : { setup: setups[0] }), stderr: options.includes("stderr") };
  };
  const run = /^run(\s[\s\S]*)?$/.exec(text);
  if (run !== null) {
    const { stderr, ...setup } = setupOf(run[1] ?? "");
    if (stderr) throw new Error("`stderr` goes with output-of");
    return { kind: "run", ...setup };
  }
  const output = /^output-of\s+"([^"]+)"([\s\S]*)$/.exec(text);
  if (output !== null) return { kind: "output-of", command: output[1]!, ...setupOf(output[2]!) };
  throw new Error(`not a docs-test marker: ${text}`);
}

/** One command of a transcript and the stdout shown for it. */
export interface Step {
  readonly command: string;
  readonly shown: string;
}

/** The `$ ` commands of a transcript block, each with the lines shown under it (a line ending in `\` continues). */
export function transcript(body: string): Step[] {
  const steps: { command: string; shown: string[] }[] = [];
  const lines = body.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith("$ ")) {
      let command = line.slice(2);
      while (command.endsWith("\\") && i + 1 < lines.length) command = `${command.slice(0, -1)} ${lines[++i]!.trim()}`;
      steps.push({ command, shown: [] });
    } else {
      if (steps.length === 0) throw new Error(`a transcript starts with a "$ " line, not ${JSON.stringify(line)}`);
      steps.at(-1)!.shown.push(line);
    }
  }
  return steps.map((s) => ({ command: s.command, shown: s.shown.join("\n") }));
}

/** The folder the docs show for the copy of the project their commands run in. */
export const SHOWN_ROOT = "/srv/bucketload";

/**
 * What differs between runs of the same command, masked alike in the docs and
 * in the output: times and dates, durations, rates and pids.
 */
export const MASKS: readonly (readonly [RegExp, string])[] = [
  [/\b\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?Z?/g, "<time>"],
  [/\b\d+(\.\d+)? s\b/g, "<seconds> s"],
  [/\b[\d,]+ records\/s\b/g, "<rate> records/s"],
  [/\bpid \d+/g, "pid <pid>"],
];

/** `text` with {@linkcode MASKS} applied, trailing blanks dropped, and `dir` (the copy) shown as {@linkcode SHOWN_ROOT}. */
export function mask(text: string, dirs: readonly string[] = []): string {
  let out = text;
  for (const dir of dirs) out = out.replaceAll(dir, SHOWN_ROOT);
  for (const [pattern, replacement] of MASKS) out = out.replace(pattern, replacement);
  return out.split("\n").map((l) => l.trimEnd()).join("\n").replace(/\n+$/, "");
}

/** Whether a shown line stands for any number of lines. */
const isElision = (line: string) => /^\s*(\.\.\.|…)\s*$/.test(line);

/** Asserts that `actual` is what `shown` shows (both masked), `...` lines matching any lines. */
export function assertShown(actual: string, shown: string, what: string): void {
  const a = actual === "" ? [] : actual.split("\n");
  const s = shown === "" ? [] : shown.split("\n");
  const match = (i: number, j: number): boolean => {
    if (j === s.length) return i === a.length;
    if (isElision(s[j]!)) {
      for (let k = i; k <= a.length; k++) if (match(k, j + 1)) return true;
      return false;
    }
    return i < a.length && a[i] === s[j] && match(i + 1, j + 1);
  };
  if (!match(0, 0)) {
    // Without elisions, the line diff says most; with them, both texts whole.
    assert.equal(actual, shown, `${what}: the output differs from the docs (masked as by tests/docs_blocks.ts)`);
    assert.fail(
      `${what}: the output does not match the docs' lines with their "..."\n--- docs\n${shown}\n--- actual\n${actual}`,
    );
  }
}

/** Asserts that every shown line is one of `actual`'s lines, in order. */
export function assertLinesAmong(actual: string, shown: string, what: string): void {
  const lines = actual.split("\n");
  let at = 0;
  for (const line of shown.split("\n")) {
    const found = lines.indexOf(line, at);
    assert.ok(found >= 0, `${what}: no line\n  ${line}\nin\n${actual}`);
    at = found + 1;
  }
}

/** Copies what a clone holds (not .git, not the caches, no database) into `dir`, sharing node_modules. */
export async function copyProject(dir: string): Promise<void> {
  const skip = new Set([".git", "node_modules", ".bench", "dist", "logs"]);
  const generated = /^(.*\.sqlite3(-.*)?|.*\.lock-info|processed\.json|dev-processed\.json)$/;
  const copy = async (from: string, to: string) => {
    await Deno.mkdir(to, { recursive: true });
    for await (const entry of Deno.readDir(from)) {
      if (skip.has(entry.name) || generated.test(entry.name)) continue;
      const [a, b] = [join(from, entry.name), join(to, entry.name)];
      if (entry.isDirectory) await copy(a, b);
      else if (entry.isFile) await Deno.copyFile(a, b);
    }
  };
  await copy(ROOT, dir);
  await Deno.symlink(join(ROOT, "node_modules"), join(dir, "node_modules"));
}

/** A fresh copy of the project to run the docs' commands in. */
export interface Sandbox {
  readonly dir: string;
  /** Its path as the output shows it (the real path too, when a link leads to it). */
  readonly paths: readonly string[];
  /** Variables set for every command (a setup may add some). */
  readonly env: Record<string, string>;
  /** Text replaced before a command runs (a setup may add: the docs' example URL by a real one). */
  readonly replace: [string, string][];
}

/** Runs `fn` with a fresh copy of the project, removed afterwards. */
export async function withSandbox<T>(fn: (box: Sandbox) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "bucketload-docs-" });
  try {
    await copyProject(dir);
    const real = await Deno.realPath(dir);
    const box: Sandbox = {
      dir,
      paths: real === dir ? [dir] : [real, dir],
      env: {
        NO_COLOR: "1",
        PATH: Deno.env.get("PATH") ?? "",
        HOME: Deno.env.get("HOME") ?? dir,
        ...DENO_CACHE_ENV,
      },
      replace: [],
    };
    return await fn(box);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The result of one command. */
export interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `command` with bash in the sandbox, as a user types it in the project's folder. */
export async function sh(box: Sandbox, command: string): Promise<Ran> {
  let line = command;
  for (const [from, to] of box.replace) line = line.replaceAll(from, to);
  const out = await new Deno.Command("bash", {
    args: ["-c", line],
    cwd: box.dir,
    env: box.env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** A named step that prepares a sandbox before a block runs, and cleans up after it. */
export interface Setup {
  /** What it prepares, for the reader of the docs' markers. */
  readonly doc: string;
  /** Needs the test PostgreSQL (the block is skipped without one, as tests/pg.ts skips). */
  readonly postgres?: boolean;
  around(box: Sandbox, fn: () => Promise<void>): Promise<void>;
}

/** Stricter rules, as an older bucketload might have had: songs need a known year, apps a rating of at most 4. */
const STRICTER: readonly RecordType[] = [
  {
    ...songType,
    toRow(data, context) {
      if (data.year === 0) return "year: expected a known year 1–9999, got number 0";
      return songType.toRow.call(this, data, context);
    },
  },
  movieType,
  {
    ...appType,
    toRow(data, context) {
      if (typeof data.rating === "number" && data.rating > 4) {
        return `rating: expected at most 4, got number ${data.rating}`;
      }
      return appType.toRow.call(this, data, context);
    },
  },
];

/** The PostgreSQL URL the docs' examples show; a setup replaces it with a test database's. */
export const SHOWN_DATABASE_URL = "postgres://loader:secret@db.internal:5432/warehouse";

/** Named steps that prepare a sandbox before a block runs. */
export const SETUPS: Readonly<Record<string, Setup>> = {
  "stricter-rules": {
    doc: "the dev profile's database loaded once by rules stricter than today's (songs need a known year, apps a " +
      "rating of at most 4), as an older version might have loaded it",
    async around(box, fn) {
      const report = await runOnce(join(box.dir, "fixtures", "sample_bucket"), join(box.dir, "dev.sqlite3"), {
        types: STRICTER,
        now: () => new Date(),
      });
      assert.equal(report.status, "ok");
      await fn();
    },
  },
  postgres: {
    doc: `${SHOWN_DATABASE_URL} stands for a new database of the test PostgreSQL`,
    postgres: true,
    async around(box, fn) {
      await withPgDatabase(async (url) => {
        box.replace.push([SHOWN_DATABASE_URL, url]);
        await fn();
      });
    },
  },
};
