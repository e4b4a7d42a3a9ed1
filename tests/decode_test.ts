import assert from "node:assert/strict";
import { parseBody, rawJson } from "../mod/decode.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const invalid = (body: Uint8Array, encoding = "utf-8") => {
  const parsed = parseBody(body, encoding);
  assert.ok("invalid" in parsed, "expected an invalid file");
  return parsed.invalid;
};

Deno.test("parseBody() strips a UTF-8 BOM", () => {
  assert.deepEqual(parseBody(new Uint8Array([0xef, 0xbb, 0xbf, ...enc("[1]")]), "utf-8"), { elements: [1] });
});

Deno.test("parseBody() decodes other WHATWG encodings", () => {
  assert.deepEqual(parseBody(new Uint8Array([0x5b, 0x22, 0xe9, 0x22, 0x5d]), "latin1"), { elements: ["é"] });
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
