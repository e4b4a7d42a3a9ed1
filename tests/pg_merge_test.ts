/**
 * A PostgreSQL run merges its staged rows into the tables during its load,
 * every `mergeRows` rows (here a few), and the rest at commit. A streamed
 * part rolled back after a merge undoes it and gives back the commit lock the
 * merge took; a changed object whose earlier rows go lets rows that lost to
 * them in an earlier merge win; changed and deleted objects end as with one
 * merge at commit, reports included.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { RECORD_TYPES } from "../mod/records/mod.ts";
import { runPipeline, type RunReport } from "../mod/run/pipeline.ts";
import { PostgresStore } from "../mod/store/postgres/mod.ts";
import type { FilePart, FileWrite, RowCounts, RunCounts } from "../mod/store/store.ts";
import { PIPELINE_DEFAULTS } from "./helpers.ts";
import { ListedMemorySource, randomFile } from "./memory_source.ts";
import { pgDump, pgQuery, pgTest, withPgDatabase } from "./pg.ts";

/** Songs of artist "X" with these titles and years, as a file part. */
function part(songs: readonly (readonly [title: string, year: number])[]): FilePart {
  return {
    rows: new Map([["song", {
      count: songs.length,
      cells: songs.flatMap(([title, year]) => ["X", title, year, "R", "2026-01-01", null]),
    }]]),
    records: songs.length,
    rejections: [],
    ignored: new Map(),
  };
}

/** A file of songs (see {@linkcode part}) at list position `position`. */
function file(
  key: string,
  songs: readonly (readonly [string, number])[],
  position: number,
  replace = false,
): FileWrite {
  return { ...part(songs), key, status: "loaded", processedAt: new Date(0), bytes: 1, position, replace };
}

/** A committed run's counts (only the rows matter here). */
function runCounts(rows: RowCounts): RunCounts {
  return {
    rowsInserted: rows.inserted,
    rowsUpdated: rows.updated,
    rowsRemoved: rows.removed,
    status: "ok",
    finishedAt: new Date(0),
    filesListed: 0,
    filesNew: 0,
    filesLoaded: 0,
    filesInvalid: 0,
    filesMissing: 0,
    filesFailed: 0,
    filesRefused: 0,
    filesChanged: 0,
    filesDeleted: 0,
    filesClaimedElsewhere: 0,
    loaded: {},
    rejected: 0,
    ignored: {},
    issues: [],
    drift: [],
  };
}

/** Advisory locks held by runs in the database at `url` (a run that claims no key holds only the commit lock). */
async function runLocks(url: string): Promise<number> {
  const [row] = await pgQuery(
    url,
    `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()
       AND a.application_name LIKE 'bucketload run %'`,
  );
  return Number(row!.n);
}

/** The songs as (title, year, file), by title. */
async function songs(url: string) {
  return await pgQuery(url, "SELECT title, year, source_key FROM songs ORDER BY title");
}

pgTest("a streamed part rolled back after a merge is undone, and so is the commit lock the merge took", async () => {
  await withPgDatabase(async (url) => {
    const store = await PostgresStore.open(url, { types: RECORD_TYPES, mergeRows: 1 });
    try {
      const first = await store.begin(new Date(0), { bucket: "memory:" });
      await first.writeFile(file("a.data", [["k", 1]], 0));
      await first.commit(runCounts(await first.rowCounts()));
      assert.equal(await runLocks(url), 0);

      const run = await store.begin(new Date(0), { bucket: "memory:" });
      // b.data is later in the list: its rows win, and each part is merged as it comes, inside the part's savepoint.
      await run.writePart("b.data", part([["k", 2], ["m", 2]]), { position: 1 });
      assert.equal(await runLocks(url), 1, "the merge did not take the commit lock");
      await run.writePart("b.data", part([["n", 2]]), { position: 1 });
      await run.abortFile("b.data");
      assert.equal(await runLocks(url), 0, "the rollback did not give the commit lock back");
      await run.writeFile(file("c.data", [["p", 3]], 2));
      assert.equal(await runLocks(url), 1);
      const rows = await run.rowCounts();
      assert.deepEqual(rows, { inserted: 1, updated: 0, removed: 0 });
      await run.commit(runCounts(rows));
      assert.deepEqual(await songs(url), [
        { title: "k", year: 1, source_key: "a.data" },
        { title: "p", year: 3, source_key: "c.data" },
      ]);
    } finally {
      await store.close();
    }
  });
});

pgTest(
  "a changed object's earlier rows go, and rows that lost to them in an earlier merge win: as one merge at commit",
  async () => {
    const ends: unknown[] = [];
    for (const mergeRows of [1, undefined]) {
      await withPgDatabase(async (url) => {
        const store = await PostgresStore.open(url, { types: RECORD_TYPES, ...(mergeRows ? { mergeRows } : {}) });
        try {
          const first = await store.begin(new Date(0), { bucket: "memory:" });
          await first.writeFile(file("b.data", [["k", 5], ["j", 5]], 5));
          await first.writeFile(file("z.data", [["z", 9]], 9));
          await first.commit(runCounts(await first.rowCounts()));

          const run = await store.begin(new Date(0), { bucket: "memory:" });
          // a.data is earlier in the list than b.data: its "k" loses to b.data's, merged or not.
          await run.writeFile(file("a.data", [["k", 3]], 3));
          // b.data changed and no longer holds "k": a.data's "k" is the one left.
          await run.writePart("b.data", part([["j", 6]]), { replace: true, position: 5 });
          await run.writeFile(file("b.data", [["i", 6]], 5, true));
          const rows = await run.rowCounts();
          await run.commit(runCounts(rows));
          ends.push({ rows, songs: await songs(url) });
        } finally {
          await store.close();
        }
      });
    }
    assert.deepEqual(ends[0], {
      rows: { inserted: 3, updated: 0, removed: 2 },
      songs: [
        { title: "i", year: 6, source_key: "b.data" },
        { title: "j", year: 6, source_key: "b.data" },
        { title: "k", year: 3, source_key: "a.data" },
        { title: "z", year: 9, source_key: "z.data" },
      ],
    });
    assert.deepEqual(ends[1], ends[0], "merging every row differs from one merge at commit");
  },
);

/** What a report says, without times and ids that differ between equivalent runs. */
function comparable(report: RunReport) {
  const { startedAt: _s, finishedAt: _f, runId: _r, lockWaitMs: _l, ...rest } = report;
  return rest;
}

pgTest(
  "changed and deleted objects, merging every few rows: the same tables and reports as one merge at commit",
  async () => {
    const bucket = fc.record({
      first: fc.array(randomFile({ nul: false }), { minLength: 2, maxLength: 6 }),
      fates: fc.array(fc.constantFrom("keep", "change", "delete"), { minLength: 6, maxLength: 6 }),
      changed: fc.array(randomFile({ nul: false }), { minLength: 6, maxLength: 6 }),
      added: fc.array(randomFile({ nul: false }), { maxLength: 3 }),
      mergeRows: fc.integer({ min: 1, max: 30 }),
    });
    await fc.assert(
      fc.asyncProperty(bucket, async ({ first, fates, changed, added, mergeRows }) => {
        const before = new Map(first.map((text, i) => [`f${i}.data`, text]));
        const after = new Map<string, string>();
        first.forEach((text, i) => {
          if (fates[i] !== "delete") after.set(`f${i}.data`, fates[i] === "change" ? changed[i]! : text);
        });
        added.forEach((text, i) => after.set(`f${first.length + i}.data`, text));
        const ends: unknown[] = [];
        for (const rows of [mergeRows, undefined]) {
          await withPgDatabase(async (url) => {
            const store = await PostgresStore.open(url, { types: RECORD_TYPES, ...(rows ? { mergeRows: rows } : {}) });
            const reports: unknown[] = [];
            try {
              for (const [files, force] of [[before, false], [after, false], [after, true]] as const) {
                const report = await runPipeline({
                  ...PIPELINE_DEFAULTS,
                  source: new ListedMemorySource(files),
                  store,
                  streamThresholdBytes: 400,
                  partElements: 3,
                  concurrency: 3,
                  pruneDeleted: true,
                  force,
                });
                reports.push(comparable(report));
              }
            } finally {
              await store.close();
            }
            ends.push({ reports, dump: await pgDump(url, { fullRegistry: true }) });
          });
        }
        assert.deepEqual(ends[0], ends[1]);
      }),
      { numRuns: 12 },
    );
  },
);
