import assert from "node:assert/strict";
import { parseBody, rawJson, rawText } from "../mod/produce/decode.ts";
import { Classifier } from "../mod/records/mod.ts";
import { RECORD_TYPES } from "../mod/records/mod.ts";
import { processBody } from "../mod/produce/produce.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const invalid = (body: Uint8Array, encoding = "utf-8") => {
  const parsed = parseBody(body, encoding);
  assert.ok("invalid" in parsed, "expected an invalid file");
  return parsed.invalid;
};

Deno.test("parseBody() strips a UTF-8 BOM", () => {
  assert.deepEqual(parseBody(new Uint8Array([0xef, 0xbb, 0xbf, ...enc("[1]")]), "utf-8"), {
    elements: [1],
    text: "[1]",
  });
});

Deno.test("parseBody() decodes other WHATWG encodings", () => {
  assert.deepEqual(parseBody(new Uint8Array([0x5b, 0x22, 0xe9, 0x22, 0x5d]), "latin1"), {
    elements: ["é"],
    text: '["é"]',
  });
});

Deno.test("parseBody() marks whole files invalid with a reason", () => {
  assert.equal(invalid(new Uint8Array()), "empty body");
  assert.equal(invalid(enc(" \n")), "empty body (whitespace only)");
  assert.match(invalid(new Uint8Array([0x5b, 0xff, 0x5d])), /^not valid utf-8/);
  assert.match(invalid(enc("[NaN]")), /^not JSON: /);
  assert.match(invalid(enc('[{"a": 1}')), /^not JSON: /);
  assert.equal(invalid(enc('{"a": []}')), "expected a JSON array at the top level, got an object");
  assert.equal(invalid(enc("42")), "expected a JSON array at the top level, got number");
  assert.equal(invalid(enc("null")), "expected a JSON array at the top level, got null");
});

Deno.test("parseBody() survives 10,000-deep nesting", () => {
  const deep = "[".repeat(10_000) + "]".repeat(10_000);
  const parsed = parseBody(enc(`[${deep}]`), "utf-8");
  assert.ok("elements" in parsed || "invalid" in parsed);
});

Deno.test("rawJson() caps the stored text with a marker", () => {
  assert.equal(rawJson({ a: 1 }, 100), '{"a":1}');
  const raw = rawJson("x".repeat(1000), 100);
  assert.equal(raw.length, 100);
  assert.match(raw, /…\[truncated, 1002 chars in all\]$/);
});

Deno.test("processBody() stores a rejected record's text as written, not re-serialized", () => {
  const text = '[\n  {"type": "song", "data": {"artist_name": "A", "title": "T", "year": 1e400, "release": "R"}},\n' +
    '  {"type": "app", "data": {"name": "N", "genre": "G", "rating": 9007199254740993, "version": "1", ' +
    '"size_bytes": 1}}\n]';
  const file = processBody("k.data", new TextEncoder().encode(text), {
    encoding: "utf-8",
    classifier: new Classifier(RECORD_TYPES, { ingestionTime: "t" }),
    processedAt: new Date(0),
    rawCap: 65_536,
  });
  assert.equal(file.rejections.length, 2);
  assert.equal(
    file.rejections[0]!.raw,
    '{"type": "song", "data": {"artist_name": "A", "title": "T", "year": 1e400, "release": "R"}}',
  );
  assert.match(file.rejections[1]!.raw!, /"rating": 9007199254740993,/);
  assert.equal(rawText("  [1, 2, 3]  ", 64), "[1, 2, 3]");
  assert.match(rawText(`"${"x".repeat(200)}"`, 64), /…\[truncated, 202 chars in all\]$/);
});
