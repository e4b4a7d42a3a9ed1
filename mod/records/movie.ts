/**
 * The `movie` record type.
 *
 * @module
 */
import { normalizeTitle } from "./normalize.ts";
import {
  boolean,
  type Check,
  dataProblem,
  firstProblem,
  type Guards,
  guards,
  integer,
  isoDate,
  jsonKinds,
  string,
  text,
} from "./fields.ts";
import type { RecordType } from "./record_type.ts";

/** A valid movie record's data. */
export interface Movie {
  /** The original title: not blank, nor blank once normalized. */
  readonly original_title: string;
  /** The original language: any string. */
  readonly original_language: string;
  /** The budget: a whole number from 0 to 2⁵³−1. */
  readonly budget: number;
  /** Whether the movie is for adults. */
  readonly is_adult: boolean;
  /** `YYYY-MM-DD`. */
  readonly release_date: string;
}

const FIELDS: Readonly<Record<keyof Movie, Check>> = {
  original_title: text,
  original_language: string,
  budget: integer(0, Number.MAX_SAFE_INTEGER),
  is_adult: boolean,
  release_date: isoDate,
};

const EMPTY_TITLE = "original_title: normalizes to an empty string";

/** Returns why `data` is not a valid movie, or `undefined`. */
export function movieProblem(data: unknown): string | undefined {
  const problem = dataProblem(data, FIELDS);
  if (problem !== undefined) return problem;
  return normalizeTitle((data as Movie).original_title) === "" ? EMPTY_TITLE : undefined;
}

const movieGuards: Guards<Movie> = guards<Movie>("movie", movieProblem);
/** `isMovie(data)`: whether `data` is a valid movie; narrows it to {@linkcode Movie}. */
export const isMovie: Guards<Movie>["is"] = movieGuards.is;
/** `parseMovie(data)`: `data` as a valid movie, or a `TypeError` naming the first failing field. */
export const parseMovie: Guards<Movie>["parse"] = movieGuards.parse;

/** Movies go to `movies`, keyed on (original_title_normalized, release_date). */
export const movieType: RecordType = {
  type: "movie",
  table: "movies",
  columns: [
    { name: "original_title", sqlType: "TEXT" },
    { name: "original_language", sqlType: "TEXT" },
    { name: "budget", sqlType: "INTEGER" },
    { name: "is_adult", sqlType: "INTEGER" },
    { name: "release_date", sqlType: "TEXT" },
    { name: "original_title_normalized", sqlType: "TEXT" },
  ],
  fields: jsonKinds(FIELDS),
  key: ["original_title_normalized", "release_date"],
  toRow(data) {
    const problem = firstProblem(data, FIELDS);
    if (problem !== undefined) return problem;
    const movie = data as unknown as Movie;
    const normalized = normalizeTitle(movie.original_title);
    if (normalized === "") return EMPTY_TITLE;
    return [
      movie.original_title,
      movie.original_language,
      movie.budget,
      movie.is_adult ? 1 : 0,
      movie.release_date,
      normalized,
    ];
  },
  // The original normalized titles by other rules (lower-case, spaces to '_', then every non-word character dropped).
  fromLegacy(row, context) {
    const { original_title, original_language, budget, is_adult, release_date } = row;
    const adult = is_adult === 1 || is_adult === true ? true : is_adult === 0 || is_adult === false ? false : is_adult;
    return this.toRow({ original_title, original_language, budget, is_adult: adult, release_date }, context);
  },
};
