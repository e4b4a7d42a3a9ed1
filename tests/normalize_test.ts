import assert from "node:assert/strict";
import { normalizeTitle } from "../mod/records/normalize.ts";

Deno.test("normalizeTitle() follows the issue's examples", () => {
  assert.equal(normalizeTitle("Star Wars: The Force Awakens"), "star_wars_the_force_awakens");
  assert.equal(normalizeTitle("Un été à La Goulette"), "un_été_à_la_goulette");
  assert.equal(normalizeTitle("வழக்கு எண் 18/9"), "வழக்கு_எண்_189");
});

Deno.test("normalizeTitle() keeps CJK and marks, applies NFKC, and collapses whitespace", () => {
  assert.equal(normalizeTitle("ねらわれた学園"), "ねらわれた学園");
  assert.equal(normalizeTitle("  ＡＢＣ\t\n 123  "), "abc_123");
  assert.equal(normalizeTitle("e\u0301t\u0301e"), "e\u0301t\u0301e".normalize("NFKC"));
  assert.equal(normalizeTitle("Léon: The Professional!"), "léon_the_professional");
  assert.equal(normalizeTitle("?!…"), "");
});

Deno.test("normalizeTitle() gives the same result on its ASCII fast path as the Unicode rules", async () => {
  const { default: fc } = await import("fast-check");
  const slow = (t: string) =>
    t.normalize("NFKC").toLowerCase().replace(/[^\p{L}\p{M}\p{N}\s]/gu, "").trim().replace(/\s+/gu, "_");
  fc.assert(
    fc.property(fc.string({ unit: "binary-ascii" }), (title) => normalizeTitle(title) === slow(title)),
    { numRuns: 2000 },
  );
  assert.equal(normalizeTitle("Star Wars:\tThe  Force\u000bAwakens "), "star_wars_the_force_awakens");
});
