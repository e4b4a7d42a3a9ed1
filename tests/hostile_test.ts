import assert from "node:assert/strict";
import { join } from "node:path";
import { startBucketServer } from "./bucket_server.ts";
import { CASES, dumpDatabase, query, runOnce, withTempDir } from "./helpers.ts";

const HOSTILE = join(CASES, "hostile");

Deno.test("hostile input: every element, file and key gets its outcome, and the totals balance", async () => {
  const server = await startBucketServer(HOSTILE);
  try {
    await withTempDir(async (dir) => {
      const db = join(dir, "db.sqlite3");
      const report = await runOnce(server.url, db, { maxRejectedRawBytes: 4096 });
      const files = Object.fromEntries(query(db, "SELECT * FROM processed_files").map((f) => [f.key, f]));
      const rejections = (key: string) =>
        query(
          db,
          "SELECT record_index, type, reason, raw FROM rejected_records WHERE key = ? ORDER BY record_index",
          key,
        );

      // Whole files.
      const invalid: Record<string, RegExp> = {
        "invalid_utf8.data": /^not valid utf-8/,
        "nan.data": /^not JSON: /,
        "object.data": /^expected a JSON array at the top level, got an object$/,
        "scalar.data": /^expected a JSON array at the top level, got number$/,
        "empty.data": /^empty body$/,
        "truncated.data": /^not JSON: /,
      };
      for (const [key, reason] of Object.entries(invalid)) {
        assert.equal(files[key]?.status, "invalid", key);
        const [only, ...rest] = rejections(key);
        assert.equal(rest.length, 0);
        assert.equal(only?.record_index, null);
        assert.match(String(only?.reason), reason, key);
      }
      for (const key of ["bom.data", "deep.data", "elements.data", "my file ü.data", `it's "quoted".data`]) {
        assert.equal(files[key]?.status, "loaded", key);
      }

      // Every element of every loaded file ends in exactly one outcome.
      for (const key of ["bom.data", "deep.data", "elements.data"]) {
        const text = new TextDecoder().decode(await Deno.readFile(join(HOSTILE, key)));
        const seen = (JSON.parse(text) as unknown[]).length;
        const f = files[key]!;
        assert.equal(Number(f.records) + Number(f.rejected) + Number(f.ignored), seen, key);
        assert.equal(rejections(key).length, f.rejected, key);
      }
      assert.deepEqual([
        files["elements.data"]!.records,
        files["elements.data"]!.rejected,
        files["elements.data"]!.ignored,
      ], [4, 97, 2]);
      const reasons = rejections("elements.data").map((r) => String(r.reason));
      assert.ok(reasons.every((r) => /^[a-z_]+: /.test(r)), "a reason does not name its field");
      for (
        const expected of [
          "element: expected an object, got null",
          "element: expected an object, got number 42",
          "element: expected an object, got an array",
          "type: expected a string, got nothing (the field is missing)",
          "type: expected a string, got number 5",
          "data: expected an object, got null",
          "data: expected an object, got an array",
          'data: expected an object, got string "x"',
          "year: expected an integer 0–9999, got number 1e+300",
          "year: expected an integer 0–9999, got number -1",
          "budget: expected an integer 0–9007199254740991, got number -1",
          "size_bytes: expected an integer 0–9007199254740991, got number 1152921504606847000",
          "rating: expected a number 0–5, got number 5.5",
          'release_date: expected a real calendar date, got string "2019-02-29"',
          'release_date: expected a YYYY-MM-DD date, got string "01/02/2019"',
          'title: expected non-blank text, got string " \\t\\n"',
          "original_title: normalizes to an empty string",
          "is_adult: expected a boolean, got null",
        ]
      ) assert.ok(reasons.includes(expected), `missing rejection: ${expected}`);
      assert.deepEqual(report.ignored, { book: 1, SONG: 1 });
      const deep = rejections("deep.data");
      assert.equal(deep.length, 1);
      assert.equal(deep[0]!.reason, "element: expected an object, got an array");
      assert.ok(String(deep[0]!.raw).length <= 4096);

      // Values with quotes, NULs and newlines round-trip exactly.
      // Read the title as hex: node:sqlite in Deno stops reading text at a NUL, though SQLite stores it all.
      const songs = dumpDatabase(db).songs;
      const tricky = query(db, "SELECT artist_name, hex(title) title FROM songs WHERE artist_name LIKE 'O''Brien%'");
      const hex = (s: string) => [...new TextEncoder().encode(s)].map((b) => b.toString(16).padStart(2, "0")).join("");
      assert.deepEqual(tricky, [{
        artist_name: 'O\'Brien "DJ"\n; DROP TABLE songs; --',
        title: hex("nul\u0000inside\r\nline").toUpperCase(),
      }]);
      assert.ok(songs.some((s) => s.title === "after BOM" && s.source_key === "bom.data"));
      assert.ok(songs.some((s) => s.title === "ok 1994.0" && s.year === 1994));
      assert.deepEqual(query(db, "SELECT size_bytes, typeof(size_bytes) t FROM apps WHERE size_bytes > 2147483647"), [
        { size_bytes: 4025969664, t: "integer" },
      ]);

      // The list: CRLF, blanks, duplicates, encoding on the wire, refused keys, a missing key.
      assert.ok(server.paths.includes("/my%20file%20%C3%BC.data"), server.paths.join(" "));
      assert.ok(server.paths.includes("/it's%20%22quoted%22.data"), server.paths.join(" "));
      assert.equal(server.hits("elements.data"), 1);
      assert.deepEqual(report.missingKeys, ["missing.data"]);
      assert.deepEqual(report.refusedKeys.map((r) => r.key), [
        "../x",
        "/abs",
        "http://evil.example/x",
        "a//b",
        "a\u0001b",
        "sub/../../etc/passwd",
      ]);
      assert.equal(report.filesListed, 18);
      assert.equal(report.filesLoaded + report.filesInvalid + report.filesMissing + report.filesRefused, 18);
      assert.ok(server.paths.every((p) => !p.includes("..") && !p.includes("evil") && !p.includes("passwd")));
    });
  } finally {
    await server.close();
  }
});
