/**
 * One record over `MAX_RECORD_BYTES`: the file's reason is the same whether
 * the body came whole (buffered) or in chunks without a length (streamed).
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startBucketServer } from "./bucket_server.ts";
import { runOnce, withTempDir } from "./helpers.ts";

Deno.test("a record too large: the same reason buffered and chunked", async () => {
  await withTempDir(async (dir) => {
    const bucket = join(dir, "b");
    await Deno.mkdir(bucket);
    const title = "x".repeat(1_477_800);
    await Deno.writeTextFile(
      join(bucket, "big.data"),
      JSON.stringify([{ type: "song", data: { artist_name: "A", title, year: 1, release: "r" } }]),
    );
    await Deno.writeTextFile(join(bucket, "files_list.data"), "big.data\n");
    const reasons: string[] = [];
    for (const chunked of [false, true]) {
      const server = await startBucketServer(bucket, {
        fault: (key) => chunked && key === "big.data" ? "chunked" : undefined,
      });
      try {
        const report = await runOnce(server.url, join(dir, `${chunked}.sqlite3`));
        reasons.push(report.invalidKeys.map((k) => k.reason).join());
      } finally {
        await server.close();
      }
    }
    assert.equal(reasons[0], "record 0 is too large: more than 1048576 characters (MAX_RECORD_BYTES)");
    assert.equal(reasons[1], reasons[0]);
  });
});
