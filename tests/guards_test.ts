import assert from "node:assert/strict";
import { appProblem, appType, isApp, parseApp } from "../mod/records/app.ts";
import { describe } from "../mod/records/fields.ts";
import { Classifier, RECORD_TYPES } from "../mod/records/mod.ts";
import { isMovie, movieProblem, movieType } from "../mod/records/movie.ts";
import { isSong, parseSong, songProblem, songType } from "../mod/records/song.ts";

const ctx = {
  ingestionTime: "2026-01-02 03:04:05",
  settings: { AWESOME_MIN_RATING: 4.5, AWESOME_MAX_SIZE_BYTES: 100_000_000 },
};
const song = { release: "Da Allnighta", artist_name: "The Primeridian", title: "Wisdom (Reprise)", year: 2005 };
const movie = {
  is_adult: false,
  original_title: "Un Français",
  release_date: "2015-06-10",
  original_language: "fr",
  budget: 0,
};
const app = { name: "Tomb Raider II", version: "1.0.3", size_bytes: 310942720, genre: "Games", rating: 4.0 };

Deno.test("isSong() accepts a real record, year 0 and 1994.0", () => {
  assert.equal(isSong(song), true);
  assert.equal(isSong({ ...song, year: 0 }), true);
  assert.equal(isSong({ ...song, year: 1994.0, extra: [1] }), true);
  assert.equal(isSong({ ...song, release: "" }), true);
});

Deno.test("songProblem() names the first failing field and what was wrong", () => {
  assert.equal(songProblem({ ...song, year: "1994" }), 'year: expected an integer 0–9999, got string "1994"');
  assert.equal(songProblem({ ...song, year: 10000 }), "year: expected an integer 0–9999, got number 10000");
  assert.equal(songProblem({ ...song, year: 1994.5 }), "year: expected an integer 0–9999, got number 1994.5");
  assert.equal(songProblem({ ...song, year: -1 }), "year: expected an integer 0–9999, got number -1");
  assert.equal(songProblem({ ...song, title: "   " }), 'title: expected non-blank text, got string "   "');
  assert.equal(songProblem({ ...song, artist_name: null }), "artist_name: expected non-blank text, got null");
  assert.equal(songProblem({ ...song, release: 5 }), "release: expected a string, got number 5");
  const { title: _, ...noTitle } = song;
  assert.equal(songProblem(noTitle), "title: expected non-blank text, got nothing (the field is missing)");
  assert.equal(songProblem([]), "data: expected an object, got an array");
});

Deno.test("parseSong() throws a TypeError with the reason", () => {
  assert.deepEqual(parseSong(song), song);
  assert.throws(() => parseSong({ ...song, year: null }), {
    name: "TypeError",
    message: "Invalid song: year: expected an integer 0–9999, got null",
  });
});

Deno.test("movieProblem() checks types, budget range and real calendar dates", () => {
  assert.equal(isMovie(movie), true);
  assert.equal(isMovie({ ...movie, release_date: "2000-02-29", budget: 2 ** 53 - 1 }), true);
  assert.equal(
    movieProblem({ ...movie, release_date: "1900-02-29" }),
    'release_date: expected a real calendar date, got string "1900-02-29"',
  );
  assert.equal(
    movieProblem({ ...movie, release_date: "2019-13-01" }),
    'release_date: expected a real calendar date, got string "2019-13-01"',
  );
  assert.equal(
    movieProblem({ ...movie, release_date: "2019-1-01" }),
    'release_date: expected a YYYY-MM-DD date, got string "2019-1-01"',
  );
  assert.equal(
    movieProblem({ ...movie, budget: 1e300 }),
    "budget: expected an integer 0–9007199254740991, got number 1e+300",
  );
  assert.equal(
    movieProblem({ ...movie, budget: 2 ** 60 }),
    "budget: expected an integer 0–9007199254740991, got number 1152921504606847000",
  );
  assert.equal(movieProblem({ ...movie, is_adult: "false" }), 'is_adult: expected a boolean, got string "false"');
  assert.equal(movieProblem({ ...movie, original_title: "!!! ???" }), "original_title: normalizes to an empty string");
});

Deno.test("movieType.toRow() derives the normalized title and stores booleans as 0/1", () => {
  assert.deepEqual(movieType.toRow({ ...movie, original_title: "Un été à La Goulette", is_adult: true }, ctx), [
    "Un été à La Goulette",
    "fr",
    0,
    1,
    "2015-06-10",
    "un_été_à_la_goulette",
  ]);
});

Deno.test("appProblem() checks rating 0–5 and 64-bit sizes", () => {
  assert.equal(isApp({ ...app, size_bytes: 4_025_969_664 }), true);
  assert.equal(appProblem({ ...app, rating: 5.5 }), "rating: expected a number 0–5, got number 5.5");
  assert.equal(appProblem({ ...app, rating: NaN }), "rating: expected a number 0–5, got number NaN");
  assert.equal(appProblem({ ...app, version: "" }), 'version: expected non-blank text, got string ""');
  assert.equal(
    appProblem({ ...app, size_bytes: 1.5 }),
    "size_bytes: expected an integer 0–9007199254740991, got number 1.5",
  );
  assert.throws(() => parseApp({ ...app, genre: null }), /Invalid app: genre: expected a string, got null/);
});

Deno.test("appType.toRow() computes is_awesome from both thresholds", () => {
  const row = (a: Record<string, unknown>) => appType.toRow({ ...app, ...a }, ctx) as (string | number)[];
  assert.equal(row({ rating: 4.5, size_bytes: 100_000_000 })[5], 1);
  assert.equal(row({ rating: 4.4, size_bytes: 1 })[5], 0);
  assert.equal(row({ rating: 5, size_bytes: 100_000_001 })[5], 0);
});

Deno.test("songType.toRow() stamps the ingestion time", () => {
  assert.deepEqual(songType.toRow(song, ctx), [
    "The Primeridian",
    "Wisdom (Reprise)",
    2005,
    "Da Allnighta",
    ctx.ingestionTime,
  ]);
});

Deno.test("Classifier.classify() gives each element exactly one outcome", () => {
  const c = new Classifier(RECORD_TYPES, ctx);
  assert.equal(c.classify({ data: song, type: "song" }).kind, "row");
  assert.deepEqual(c.classify({ data: { original_title: "X" }, type: "book" }), { kind: "ignored", typeName: "book" });
  assert.deepEqual(c.classify({ data: song, type: "Song" }), { kind: "ignored", typeName: "Song" });
  assert.deepEqual(c.classify({ data: song, type: "constructor" }), { kind: "ignored", typeName: "constructor" });
  const rejected = (el: unknown) => {
    const o = c.classify(el);
    assert.equal(o.kind, "rejected");
    return o.kind === "rejected" ? o.reason : "";
  };
  assert.equal(rejected(null), "element: expected an object, got null");
  assert.equal(rejected(5), "element: expected an object, got number 5");
  assert.equal(rejected("song"), 'element: expected an object, got string "song"');
  assert.equal(rejected([1]), "element: expected an object, got an array");
  assert.equal(rejected({ data: song }), "type: expected a string, got nothing (the field is missing)");
  assert.equal(rejected({ data: song, type: 1 }), "type: expected a string, got number 1");
  assert.equal(rejected({ data: null, type: "song" }), "data: expected an object, got null");
  assert.equal(rejected({ data: [song], type: "song" }), "data: expected an object, got an array");
  assert.equal(rejected({ data: "x", type: "app" }), 'data: expected an object, got string "x"');
});

Deno.test("describe() shortens long strings", () => {
  assert.equal(describe("x".repeat(100)), `string "${"x".repeat(40)}…"`);
  assert.equal(describe(true), "boolean true");
  assert.equal(describe({}), "an object");
});
