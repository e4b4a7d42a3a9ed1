/**
 * The architecture doc's record-type walkthrough, done in a test module
 * alone: a `book` type (the real bucket's undocumented one) is one object
 * given to the pipeline, and nothing else changes.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { firstProblem, number, string, text } from "../mod/records/fields.ts";
import { RECORD_TYPES, type RecordType } from "../mod/records/mod.ts";
import { query, ROOT, runOnce, withTempDir } from "./helpers.ts";

/** Step 1 of the walkthrough: the type's fields, its checks, its table and its row. */
const FIELDS = { original_title: text, average_rating: number(0, 5), authors: text, language_code: string };

const bookType: RecordType = {
  type: "book",
  table: "books",
  columns: [
    { name: "original_title", sqlType: "TEXT" },
    { name: "average_rating", sqlType: "REAL" },
    { name: "authors", sqlType: "TEXT" },
    { name: "language_code", sqlType: "TEXT" },
  ],
  key: ["original_title", "authors"],
  toRow(data) {
    const problem = firstProblem(data, FIELDS);
    if (problem !== undefined) return problem;
    return [
      data.original_title as string,
      data.average_rating as number,
      data.authors as string,
      data.language_code as string,
    ];
  },
};

Deno.test("a record type added in one module loads into its own table; the others are untouched", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(ROOT, "fixtures", "sample_bucket");
    // Step 2: register it (here: the list the pipeline is given; in the program, RECORD_TYPES in mod/records/types.ts).
    const withBooks = await runOnce(bucket, join(dir, "books.sqlite3"), { types: [...RECORD_TYPES, bookType] });
    const without = await runOnce(bucket, join(dir, "plain.sqlite3"));
    assert.equal(withBooks.ignored.book, undefined, "books are still ignored");
    assert.equal(withBooks.loaded.book, without.ignored.book! - (withBooks.rejected - without.rejected));
    const books = query(join(dir, "books.sqlite3"), "SELECT count(*) AS n FROM books")[0]!.n as number;
    assert.ok(books > 0);
    for (const table of ["songs", "movies", "apps"]) {
      assert.deepEqual(
        query(join(dir, "books.sqlite3"), `SELECT count(*) AS n FROM ${table}`),
        query(join(dir, "plain.sqlite3"), `SELECT count(*) AS n FROM ${table}`),
      );
    }
  });
});
