import assert from "node:assert/strict";
import { parseConfigText, resolveConfig } from "../mod/config/config.ts";
import { UsageError } from "../mod/common/errors.ts";
import { IniSyntaxError, parseIni } from "../mod/common/ini.ts";
import { httpSource } from "../mod/source/http/kind.ts";
import { sourceSpecOf } from "./helpers.ts";

const section = (text: string, name = "p") => Object.fromEntries(parseIni(text).get(name)!);

Deno.test("parseIni() keeps '#' and ';' inside a value: only whole lines are comments, as in configparser", () => {
  assert.deepEqual(
    section("[p]\nBUCKET_NAME = http://alice:s3cr#et@host\nA = x;y\nB = value # not a comment\nD = %Y-%m-%d ;%H\n"),
    { bucket_name: "http://alice:s3cr#et@host", a: "x;y", b: "value # not a comment", d: "%Y-%m-%d ;%H" },
  );
});

/** Texts whose sections configparser and parseIni() must read alike. */
const PARITY_CASES = [
  "[p]\nDATE_STORE_FORMAT = %Y-%m-%d ;%H\nB = v # c\n",
  "[p] # a trailing note\nA = 1\n",
  "[a] b ]\nk = v\n",
  "[p]\nA = one\n\n  two\n# comment\n   three\nB: x\n",
  "[p]\nA = one\n  ; an indented comment\n  two\n\n\nC = 3\n",
  "; top\n[DEFAULT]\nX = 1\n[p]\n  Y = indented key\nZ=\n",
];

Deno.test("parseIni() reads what Python's configparser (interpolation=None) reads", async () => {
  const script = "import configparser, json, sys\n" +
    "out = []\n" +
    "for text in json.load(sys.stdin):\n" +
    "    c = configparser.ConfigParser(interpolation=None)\n" +
    "    c.read_string(text)\n" +
    "    s = {name: dict(c._sections[name]) for name in c.sections()}\n" +
    "    s['DEFAULT'] = dict(c._defaults)\n" +
    "    out.append(s)\n" +
    "print(json.dumps(out))\n";
  const child = new Deno.Command("python3", { args: ["-c", script], stdin: "piped", stdout: "piped" }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(PARITY_CASES)));
  await writer.close();
  const { code, stdout } = await child.output();
  assert.equal(code, 0);
  const python = JSON.parse(new TextDecoder().decode(stdout)) as Record<string, Record<string, string>>[];
  PARITY_CASES.forEach((text, i) => {
    const ours: Record<string, Record<string, string>> = { DEFAULT: {} };
    for (const [name, keys] of parseIni(text)) ours[name] = Object.fromEntries(keys);
    assert.deepEqual(ours, python[i], `case ${i}: ${JSON.stringify(text)}`);
  });
});

Deno.test("parseIni() takes ':' as a separator, a BOM, CRLF, indented comments and continuation lines", () => {
  const sections = parseIni(
    "\uFEFF; top\r\n[DEFAULT]\r\nKEY: value\r\n  # indented comment\r\n[p]\nLONG = one\n  two\n",
  );
  assert.deepEqual(Object.fromEntries(sections.get("DEFAULT")!), { key: "value" });
  assert.deepEqual(Object.fromEntries(sections.get("p")!), { long: "one\ntwo" });
});

Deno.test("parseIni() refuses a duplicate section or key with both line numbers, as configparser does", () => {
  assert.throws(() => parseIni("[p]\nA = 1\n\n[p]\nB = 2\n"), (e: unknown) => {
    assert.ok(e instanceof IniSyntaxError);
    assert.equal(e.message, "line 4: section [p] given twice (first on line 1)");
    return true;
  });
  assert.throws(
    () => parseIni("[p]\nA = 1\na = 2\n"),
    /^IniSyntaxError: line 3: key 'a' given twice in \[p\] \(first on line 2\)$/,
  );
  assert.throws(() => parseIni("A = 1\n"), /line 1: a key outside any \[section\]/);
  assert.throws(() => parseIni("[p]\njust words\n"), /line 2: expected \[section\], KEY = value or a comment/);
});

Deno.test("a config error never prints a credential, even from a malformed URL", () => {
  const text = "[p]\nBUCKET_NAME = http://alice:s3cr et@[bad\n";
  assert.throws(
    () => resolveConfig({ sections: parseConfigText(text, "/c.ini"), configPath: "/c.ini", profile: "p" }),
    (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.doesNotMatch(e.message, /s3cr|alice/);
      assert.match(e.message, /^Cannot parse 'BUCKET_NAME' in profile 'p' of \/c.ini: expected a valid http\(s\) URL/);
      return true;
    },
  );
  // A '#' in a URL's password must be written %23 (else it starts the fragment); either way nothing leaks.
  assert.throws(
    () =>
      resolveConfig({
        sections: parseConfigText("[p]\nBUCKET_NAME = http://alice:s3cr#et@host\n", "/c.ini"),
        configPath: "/c.ini",
        profile: "p",
      }),
    (e: unknown) => e instanceof UsageError && !/s3cr|alice/.test(e.message),
  );
  const c = resolveConfig({
    sections: parseConfigText("[p]\nBUCKET_NAME = http://alice:s3cr%23et@host\n", "/c.ini"),
    configPath: "/c.ini",
    profile: "p",
  });
  assert.equal(sourceSpecOf(c, httpSource)?.authorization, `Basic ${btoa("alice:s3cr#et")}`);
  assert.doesNotMatch(c.source.spec.display, /s3cr/);
});

Deno.test("parseConfigText() reports the file and line of a duplicate as a UsageError", () => {
  assert.throws(() => parseConfigText("[p]\nA=1\nA=2\n", "/etc/b.ini"), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.equal(e.message, "Cannot parse /etc/b.ini: line 3: key 'a' given twice in [p] (first on line 2)");
    return true;
  });
});
