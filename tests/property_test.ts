import assert from "node:assert/strict";
import fc from "fast-check";
import { Classifier, RECORD_TYPES } from "../mod/records/mod.ts";
import { parseBody, rawJson } from "../mod/produce/decode.ts";

const ctx = { ingestionTime: "t" };
const classifier = new Classifier(RECORD_TYPES, ctx);

/** Elements shaped like records but with random values, so guards see near misses too. */
const recordLike = fc.record({
  type: fc.oneof(fc.constantFrom("song", "movie", "app", "book"), fc.jsonValue()),
  data: fc.oneof(
    fc.jsonValue(),
    fc.dictionary(
      fc.constantFrom(
        "artist_name",
        "title",
        "year",
        "release",
        "original_title",
        "original_language",
        "budget",
        "is_adult",
        "release_date",
        "name",
        "genre",
        "rating",
        "version",
        "size_bytes",
      ),
      fc.oneof(fc.jsonValue(), fc.integer(), fc.double(), fc.string(), fc.boolean()),
    ),
  ),
}, { requiredKeys: [] });

Deno.test("Classifier.classify() never throws and gives every element exactly one outcome", () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.jsonValue(), recordLike)), (elements) => {
      const counts = { row: 0, ignored: 0, rejected: 0 };
      for (const element of elements) {
        const outcome = classifier.classify(element);
        counts[outcome.kind]++;
        if (outcome.kind === "rejected") assert.match(outcome.reason, /^[a-z_]+: /);
        if (outcome.kind === "row") {
          assert.equal(outcome.row.length, outcome.type.columns.length);
          assert.ok(outcome.row.every((v) => typeof v === "string" || Number.isFinite(v)));
        }
      }
      assert.equal(counts.row + counts.ignored + counts.rejected, elements.length);
    }),
    { numRuns: 500 },
  );
});

Deno.test("parseBody() and rawJson() never throw on random input", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.jsonValue(), (bytes, value) => {
      const parsed = parseBody(bytes, "utf-8");
      assert.ok("elements" in parsed || "invalid" in parsed);
      const text = JSON.stringify(value);
      const round = parseBody(new TextEncoder().encode(`[${text}]`), "utf-8");
      assert.ok("elements" in round && round.elements.length === 1);
      assert.ok(rawJson(value, 64).length <= 64);
    }),
    { numRuns: 300 },
  );
});
