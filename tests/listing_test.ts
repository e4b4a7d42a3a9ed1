import assert from "node:assert/strict";
import fc from "fast-check";
import { objectUrl, redactUrl, refuseReason } from "../mod/source/location.ts";
import { parseListing } from "../mod/source/listing.ts";

Deno.test("parseListing() handles CRLF, blank lines, padding and duplicates", () => {
  const listing = parseListing("a.data\r\n\r\n  b.data \r\na.data\n\nc.data");
  assert.deepEqual(listing.keys, ["a.data", "b.data", "c.data"]);
  assert.equal(listing.duplicates, 1);
  assert.deepEqual(listing.refused, []);
});

Deno.test("refuseReason() refuses unsafe keys", () => {
  assert.equal(refuseReason("/abs.data"), "starts with '/'");
  assert.equal(refuseReason("http://evil.example/x"), "has a URL scheme");
  assert.equal(refuseReason("file:x"), "has a URL scheme");
  assert.equal(refuseReason("a\\b"), "contains '\\'");
  assert.equal(refuseReason("a\u0000b"), "contains a control character");
  assert.equal(refuseReason("a\u0085b"), "contains a control character");
  for (const key of ["../x", "a/../b", "a//b", "./a", "a/.", "a/"]) {
    assert.equal(refuseReason(key), "has an empty, '.' or '..' path segment", key);
  }
  for (
    const key of [
      "e9dba638-d067-4b99-be31-214d95c89217.data",
      "dir/sub/x.json",
      "with space.data",
      "ünï.data",
      "..a",
      "a..",
    ]
  ) {
    assert.equal(refuseReason(key), undefined, key);
  }
});

Deno.test("parseListing() refuses keys once and keeps them out of the fetch list", () => {
  const listing = parseListing("ok.data\n../x\n/abs\nhttp://h/x\n../x\n");
  assert.deepEqual(listing.keys, ["ok.data"]);
  assert.deepEqual(listing.refused.map((r) => r.key), ["../x", "/abs", "http://h/x"]);
});

Deno.test("objectUrl() percent-encodes each segment and stays under the base", () => {
  const base = new URL("http://127.0.0.1:8080/pre/");
  assert.equal(
    objectUrl(base, "a b/ü?#%2e%2e.data").href,
    "http://127.0.0.1:8080/pre/a%20b/%C3%BC%3F%23%252e%252e.data",
  );
  assert.throws(() => objectUrl(base, "../x"), RangeError);
  assert.throws(() => objectUrl(base, "//evil.example/x"), RangeError);
});

Deno.test("redactUrl() hides credentials", () => {
  assert.equal(redactUrl("fetch http://user:secret@host/x failed"), "fetch http://***@host/x failed");
});

Deno.test("refuseReason() gives the reason of its step-by-step rules on random keys (its one-test fast path agrees)", () => {
  // The rules one by one, as refuseReason states them.
  const reference = (key: string): string | undefined => {
    if (key.startsWith("/")) return "starts with '/'";
    if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(key)) return "has a URL scheme";
    if (key.includes("\\")) return "contains '\\'";
    // deno-lint-ignore no-control-regex
    if (/[\u0000-\u001f\u007f-\u009f]/.test(key)) return "contains a control character";
    if (key.split("/").some((s) => s === "" || s === "." || s === "..")) {
      return "has an empty, '.' or '..' path segment";
    }
    return undefined;
  };
  const piece = fc.constantFrom(
    "a",
    "Z9",
    ".",
    "..",
    "...",
    "/",
    "//",
    ":",
    "x:",
    "1:",
    "\\",
    "\u0000",
    "\u001f",
    "\u0085",
    "ü",
    " ",
    "-",
    "+",
  );
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 8 }).map((p) => p.join("")), (key) => {
      assert.equal(refuseReason(key), reference(key), JSON.stringify(key));
    }),
    { numRuns: 5000 },
  );
});
