/**
 * The `app` record type.
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
  number,
  string,
  text,
} from "./fields.ts";
import { type RecordType, settingOf } from "./record_type.ts";

/** A valid app record's data. */
export interface App {
  /** The app's name: not blank. */
  readonly name: string;
  /** Its genre: any string. */
  readonly genre: string;
  /** 0 to 5. */
  readonly rating: number;
  /** Its version: not blank. */
  readonly version: string;
  /** Its size in bytes: a whole number from 0 to 2⁵³−1. */
  readonly size_bytes: number;
}

const FIELDS: Readonly<Record<keyof App, Check>> = {
  name: text,
  genre: string,
  rating: number(0, 5),
  version: text,
  size_bytes: integer(0, Number.MAX_SAFE_INTEGER),
};

/** Returns why `data` is not a valid app, or `undefined`. */
export function appProblem(data: unknown): string | undefined {
  return dataProblem(data, FIELDS);
}

const appGuards: Guards<App> = guards<App>("app", appProblem);
/** `isApp(data)`: whether `data` is a valid app; narrows it to {@linkcode App}. */
export const isApp: Guards<App>["is"] = appGuards.is;
/** `parseApp(data)`: `data` as a valid app, or a `TypeError` naming the first failing field. */
export const parseApp: Guards<App>["parse"] = appGuards.parse;

/** Apps go to `apps`, keyed on (name, version), with `is_awesome` derived. */
export const appType: RecordType = {
  type: "app",
  table: "apps",
  columns: [
    { name: "name", sqlType: "TEXT" },
    { name: "genre", sqlType: "TEXT" },
    { name: "rating", sqlType: "REAL" },
    { name: "version", sqlType: "TEXT" },
    { name: "size_bytes", sqlType: "INTEGER" },
    { name: "is_awesome", sqlType: "INTEGER" },
  ],
  fields: jsonKinds(FIELDS),
  key: ["name", "version"],
  settings: {
    AWESOME_MIN_RATING: {
      default: "4.5",
      help: "apps.is_awesome: lowest rating",
      doc: "`apps.is_awesome` needs `rating ≥` this",
      number: { max: 5 },
    },
    AWESOME_MAX_SIZE_BYTES: {
      default: "100000000",
      help: "apps.is_awesome: largest size_bytes",
      doc: "`apps.is_awesome` needs `size_bytes ≤` this",
      number: { integer: true },
    },
  },
  toRow(data, context) {
    const problem = firstProblem(data, FIELDS);
    if (problem !== undefined) return problem;
    const app = data as unknown as App;
    const awesome = app.rating >= settingOf(this, "AWESOME_MIN_RATING", context) &&
      app.size_bytes <= settingOf(this, "AWESOME_MAX_SIZE_BYTES", context);
    return [app.name, app.genre, app.rating, app.version, app.size_bytes, awesome ? 1 : 0];
  },
  // The original's is_awesome was size_bytes < 1,000,000: today's rule decides.
  fromLegacy(row, context) {
    const { name, genre, rating, version, size_bytes } = row;
    return this.toRow({ name, genre, rating, version, size_bytes }, context);
  },
  // is_awesome by today's AWESOME_* settings, from the stored columns.
  rederive(row, context) {
    return this.fromLegacy!(row, context);
  },
};
