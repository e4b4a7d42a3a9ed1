/**
 * The `song` record type.
 *
 * @module
 */
import {
  type Check,
  dataProblem,
  firstProblem,
  type Guards,
  guards,
  integer,
  jsonKinds,
  string,
  text,
} from "./fields.ts";
import type { RecordType } from "./record_type.ts";

/** A valid song record's data. */
export interface Song {
  /** The artist: not blank. */
  readonly artist_name: string;
  /** The title: not blank. */
  readonly title: string;
  /** 0 means unknown. */
  readonly year: number;
  /** The release: any string. */
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

const songGuards: Guards<Song> = guards<Song>("song", songProblem);
/** `isSong(data)`: whether `data` is a valid song; narrows it to {@linkcode Song}. */
export const isSong: Guards<Song>["is"] = songGuards.is;
/** `parseSong(data)`: `data` as a valid song, or a `TypeError` naming the first failing field. */
export const parseSong: Guards<Song>["parse"] = songGuards.parse;

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
