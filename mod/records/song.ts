/**
 * The `song` record type.
 *
 * @module
 */
import { type Check, dataProblem, firstProblem, guards, integer, jsonKinds, string, text } from "./fields.ts";
import type { RecordType } from "./record_type.ts";

/** A valid song record's data. */
export interface Song {
  readonly artist_name: string;
  readonly title: string;
  /** 0 means unknown. */
  readonly year: number;
  readonly release: string;
}

const FIELDS: Readonly<Record<keyof Song, Check>> = {
  artist_name: text,
  title: text,
  year: integer(0, 9999),
  release: string,
};

/** Returns why `data` is not a valid song, or `undefined`. */
export function songProblem(data: unknown): string | undefined {
  return dataProblem(data, FIELDS);
}

/** `isSong(data)` narrows to a valid song; `parseSong(data)` returns it or throws a `TypeError`. */
export const { is: isSong, parse: parseSong } = guards<Song>("song", songProblem);

/** Songs go to `songs`, keyed on (artist_name, title), stamped with `ingestion_time`. */
export const songType: RecordType = {
  type: "song",
  table: "songs",
  columns: [
    { name: "artist_name", sqlType: "TEXT" },
    { name: "title", sqlType: "TEXT" },
    { name: "year", sqlType: "INTEGER" },
    { name: "release", sqlType: "TEXT" },
    { name: "ingestion_time", sqlType: "TEXT" },
  ],
  fields: jsonKinds(FIELDS),
  key: ["artist_name", "title"],
  toRow(data, { ingestionTime }) {
    const problem = firstProblem(data, FIELDS);
    if (problem !== undefined) return problem;
    const song = data as unknown as Song;
    return [song.artist_name, song.title, song.year, song.release, ingestionTime];
  },
  // The original's ingestion time is a fact about its load, not a rule: it is kept.
  fromLegacy(row, context) {
    const { artist_name, title, year, release, ingestion_time } = row;
    return this.toRow({ artist_name, title, year, release }, { ...context, ingestionTime: String(ingestion_time) });
  },
};
