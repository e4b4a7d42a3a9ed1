/**
 * Terminal escape injection: escape codes from the bucket (ESC, BEL, C1, a
 * newline in a field name) never reach a person's terminal or a log file
 * raw: not in the summary, the drift lines, ignored type names, parse-error
 * snippets, stderr (text or JSON), the SAVE_LOG file, `status` or `replay`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { hasControls, oneLine, terminalSafe } from "../mod/common/printable.ts";
import { cli, withTempDir, writeConfig } from "./helpers.ts";

/** What a terminal would act on: C0 but a line feed or tab, DEL, C1. */
// deno-lint-ignore no-control-regex
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;
const ESC = "\u001b";
const TITLE = `${ESC}]0;pwned\u0007`;
const CLEAR = `${ESC}[2J`;
const CSI = "\u009b31m";

const song = (data: Record<string, unknown>) =>
  JSON.stringify({ type: "song", data: { artist_name: "A", title: "T", year: 2000, release: "R", ...data } });

/** A bucket whose every bucket-derived text carries escapes. */
const FILES: Record<string, string> = {
  "files_list.data": "a.data\nb.data\nc.data\nbad\rRegistry: 0 loaded\u001b[2J.data\n",
  // Drift: a field name with an OSC title, a value with a clear-screen, a field name that forges a report line.
  "a.data": `[${song({ [`mood${TITLE}`]: `x${CLEAR}` })},${song({ title: "U", ["x\n  rows     999 inserted"]: 1 })},${
    JSON.stringify({ type: `bo${CSI}ok\n`, data: {} })
  }]`,
  // A parse error whose snippet holds the escapes.
  "b.data": `[{"type":"song","data":${CLEAR}${TITLE}}]`,
  // A rejected record with an escape in the value the reason quotes.
  "c.data": `[${song({ year: `${ESC}[5m` })}]`,
};

Deno.test("printable: oneLine escapes every control (lines too); terminalSafe keeps lines and tabs", () => {
  assert.equal(oneLine(`a${ESC}[2J\nb\u0085\u202e`), "a\\u001b[2J\\u000ab\\u0085\\u202e");
  assert.equal(terminalSafe(`a${ESC}\n\tb\u009b`), "a\\u001b\n\tb\\u009b");
  assert.ok(hasControls("\u0007") && !hasControls("plain é ✓"));
});

Deno.test("terminal escapes from the bucket are escaped everywhere a person or a log sees them", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(join(dir, "b"));
    for (const [key, text] of Object.entries(FILES)) await Deno.writeTextFile(join(dir, "b", key), text);
    const logs = join(dir, "logs");
    const config = await writeConfig(
      dir,
      `[p]\nBUCKET_NAME = ${join(dir, "b")}\nDATABASE_NAME = db.sqlite3\nSAVE_LOG = yes\nLOG_DIR = ${logs}\n`,
    );
    const args = ["--config", config, "--profile", "p"];
    const outputs: [string, string][] = [];
    const run = await cli([...args, "--log-level", "debug"]);
    assert.equal(run.code, 0, run.stderr);
    outputs.push(["run stdout", run.stdout], ["run stderr", run.stderr]);
    // The escapes were there to show: each appears escaped.
    assert.match(run.stdout, /mood\\u001b\]0;pwned\\u0007/);
    assert.match(run.stdout, /\\u009b31m/);
    // No line was forged: the only "rows" line is the summary's own.
    assert.equal(run.stdout.split("\n").filter((l) => /^ {2}rows /.test(l)).length, 1, run.stdout);
    for await (const e of Deno.readDir(logs)) {
      outputs.push([`log ${e.name}`, await Deno.readTextFile(join(logs, e.name))]);
    }
    const json = await cli([...args, "--force", "--json", "--log-format", "json"]);
    assert.equal(json.code, 0, json.stderr);
    outputs.push(["--json stdout", json.stdout], ["json stderr", json.stderr]);
    for (const line of json.stderr.trim().split("\n")) JSON.parse(line);
    JSON.parse(json.stdout);
    const status = await cli(["status", ...args]);
    // A refused key with a line feed in the list, and the drift lines, stay on their lines.
    assert.equal(status.stdout.split("\n").filter((l) => /^Registry:/.test(l)).length, 1, status.stdout);
    outputs.push(["status", status.stdout], ["status --json", (await cli(["status", "--json", ...args])).stdout]);
    const replay = await cli(["replay", ...args]);
    outputs.push(["replay", replay.stdout], ["replay stderr", replay.stderr]);
    for (const [name, text] of outputs) {
      const at = text.search(RAW_CONTROL);
      assert.equal(at, -1, `${name} holds a raw control character: ${JSON.stringify(text.slice(at - 40, at + 20))}`);
    }
  });
});
