/**
 * The song type with a field it gains, `mood` (a field check, a column, a
 * cell), for the tests of a column filled from `extra`
 * (`new_column_test.ts`, the property in `invariants_test.ts`).
 *
 * @module
 */
import { firstProblem, integer, jsonKinds, string, text } from "../mod/records/fields.ts";
import { RECORD_TYPES, type RecordType } from "../mod/records/mod.ts";
import { songType } from "../mod/records/song.ts";

const MOOD_FIELDS = { artist_name: text, title: text, year: integer(0, 9999), release: string, mood: text };

/** The song type with `mood` added. */
export const moodSong: RecordType = {
  ...songType,
  columns: [...songType.columns, { name: "mood", sqlType: "TEXT" }],
  fields: jsonKinds(MOOD_FIELDS),
  toRow(data, { ingestionTime }) {
    const problem = firstProblem(data, MOOD_FIELDS);
    if (problem !== undefined) return problem;
    return [
      data.artist_name as string,
      data.title as string,
      data.year as number,
      data.release as string,
      ingestionTime,
      data.mood as string,
    ];
  },
};

/** The record types, the song type with `mood`. */
export const MOOD_TYPES: readonly RecordType[] = RECORD_TYPES.map((t) => t.type === "song" ? moodSong : t);

/** The songs' columns compared (the new column's place in the table differs: an added column comes last). */
export const MOOD_SONGS = "SELECT artist_name, title, year, release, ingestion_time, mood, source_key, source_pos, " +
  "extra FROM songs ORDER BY title";
