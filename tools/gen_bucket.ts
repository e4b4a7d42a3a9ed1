/**
 * Generates a deterministic bucket shaped like the real one (see
 * shared/REAL_DATA.md): UUID `.data` keys, pretty-printed ASCII JSON arrays
 * with `\uXXXX` escapes, `data` before `type`, about 700 records a file with
 * books, year 0, `4.0` ratings, sizes above 2³¹ and non-Latin titles.
 *
 * Two shapes:
 * - `real` (the default): natural keys in random order, about 46% of records
 *   repeating a record of an earlier file (some with changed values), each
 *   type's share of a file anywhere from 0 to 100%, one random field order
 *   per type per file, 48% of songs at year 0 (shared/REAL_DATA.md);
 * - `sequential`: keys of a few fixed prefixes and an increasing counter, no
 *   repeats, fixed shares and field order: near-sequential B-tree inserts.
 *
 * Usage: deno run -A tools/gen_bucket.ts DIR [--files N] [--records N] [--invalid RATE] [--seed N]
 *                                            [--shape real|sequential] [--extra RATE] [--extra-fields N]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { join } from "node:path";

/** Options of {@linkcode generateBucket}. */
export interface GenerateOptions {
  /** @default {4} */
  readonly files?: number;
  /** Records per file. @default {700} */
  readonly records?: number;
  /** Share of records made invalid. @default {0.03} */
  readonly invalidRate?: number;
  /** @default {1} */
  readonly seed?: number;
  /** `real`: random key order, repeats, varying shares; `sequential`: counter keys. @default {"sequential"} */
  readonly shape?: "real" | "sequential";
  /** `real` shape: share of records that repeat an earlier file's record. @default {0.46} */
  readonly repeatRate?: number;
  /**
   * `real` shape: share of records carrying a field their type does not know (`mood`, a string), for `extra`. At 0
   * (the default) the bucket is the same as before the option. @default {0}
   */
  readonly extraRate?: number;
  /**
   * `real` shape: unknown fields each such record carries: `mood`, then `x1`, `x2`, ... (numbers, strings, booleans
   * and nulls in turn). @default {1}
   */
  readonly extraFields?: number;
  /** `real` shape: records of an earlier bucket that this one may repeat (an incremental load). */
  readonly history?: RecordPool;
  /** Write one file per `yield`, so huge buckets stay small in memory. */
  readonly onFile?: (key: string, bytes: number) => void;
}

/** A small, fast, deterministic PRNG (mulberry32). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ARTISTS = [
  "The Primeridian",
  "Mos Def",
  "Björk",
  "Sigur Rós",
  "坂本龍一",
  "Los Lobos",
  "Daft Punk",
  "Nina Simone",
];
const WORDS = ["Wisdom", "Night", "Summer", "Reprise", "Love", "Ghost", "River", "Fire", "Dream", "Stone", "Blue"];
const TITLES = [
  "Un Français",
  "Un été à La Goulette",
  "வழக்கு எண் 18/9",
  "ねらわれた学園",
  "卧虎藏龙",
  "Star Wars: The Force Awakens",
  "Amélie",
  "Léon: The Professional",
  "La Haine",
];
const LANGS = ["en", "fr", "ta", "ja", "zh", "es", "de"];
const APPS = ["Tomb Raider II", "Photo Editor®", "微信 WeChat", "Calm 🧘 Sleep", "Notes", "Chess Pro"];
const GENRES = ["Games", "Productivity", "Social Networking", "Health & Fitness", "Utilities"];
const AUTHORS = ["Melinda Haynes", "J.K. Rowling", "Haruki Murakami"];

/** One record in the bucket's shape; some are invalid on purpose. */
export function makeRecord(rand: () => number, i: number, invalidRate: number): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const word = () => pick(WORDS);
  const r = rand();
  let record: { data: Record<string, unknown>; type: string };
  if (r < 0.40) {
    record = {
      data: {
        is_adult: false,
        original_title: `${pick(TITLES)} ${i}`,
        release_date: `${1950 + Math.floor(rand() * 70)}-${String(1 + Math.floor(rand() * 12)).padStart(2, "0")}-${
          String(1 + Math.floor(rand() * 28)).padStart(2, "0")
        }`,
        original_language: pick(LANGS),
        budget: rand() < 0.83 ? 0 : Math.floor(rand() * 200_000_000),
      },
      type: "movie",
    };
  } else if (r < 0.55) {
    record = {
      data: {
        original_title: `${word()} ${word()}`,
        average_rating: Math.round(rand() * 500) / 100,
        authors: pick(AUTHORS),
        language_code: "en-US",
      },
      type: "book",
    };
  } else if (r < 0.92) {
    record = {
      data: {
        release: `${word()} ${word()}`,
        artist_name: pick(ARTISTS),
        title: `${word()} (${i})`,
        year: rand() < 0.5 ? 0 : 1950 + Math.floor(rand() * 70),
      },
      type: "song",
    };
  } else {
    record = {
      data: {
        name: `${pick(APPS)} ${i}`,
        version: pick(["V3.7.0", "v2.13.9", "708", "1.0.3"]),
        size_bytes: rand() < 0.1 ? 4_025_969_664 : Math.floor(rand() * 300_000_000),
        genre: pick(GENRES),
        rating: Math.round(rand() * 10) / 2,
      },
      type: "app",
    };
  }
  if (rand() < invalidRate) record.data = broken(record.data, rand) as Record<string, unknown>;
  return record;
}

/** A copy of `data` with one fault a guard must reject, or `null` (a record whose `data` is not an object). */
function broken(data: Record<string, unknown>, rand: () => number): Record<string, unknown> | null {
  const d = { ...data };
  const faults = [
    () => (d.year = String(d.year ?? "1994")),
    () => (d.budget = -1),
    () => (d.release_date = "2019-02-30"),
    () => (d.rating = 7.5),
    () => (d.title = "  "),
  ];
  const i = Math.floor(rand() * (faults.length + 1));
  if (i === faults.length) return null;
  faults[i]!();
  return d;
}

const TYPES = ["song", "movie", "app", "book"] as const;

/** Earlier records that later files repeat: a bounded reservoir per type. */
export class RecordPool {
  readonly #items = new Map<string, Record<string, unknown>[]>(TYPES.map((t) => [t, []]));
  #seen = 0;
  static readonly CAP = 200_000;

  /** Keeps `record` as a candidate for repeats (reservoir sampling past the cap). */
  add(type: string, data: Record<string, unknown>, rand: () => number) {
    const items = this.#items.get(type)!;
    this.#seen++;
    if (items.length < RecordPool.CAP) items.push(data);
    else if (rand() < RecordPool.CAP / this.#seen) items[Math.floor(rand() * items.length)] = data;
  }

  /** A random earlier record of `type`, or `undefined` when there is none. */
  pick(type: string, rand: () => number): Record<string, unknown> | undefined {
    const items = this.#items.get(type)!;
    return items.length === 0 ? undefined : items[Math.floor(rand() * items.length)];
  }
}

/** Random words joined, plus a random number: titles that arrive in no order. */
function randomTitle(rand: () => number, base: readonly string[]): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  return `${pick(base)} ${pick(WORDS)} ${Math.floor(rand() * 1e9).toString(36)}`;
}

/** A fresh record of `type` whose natural key is random. */
function realRecord(rand: () => number, type: string): Record<string, unknown> {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const word = () => pick(WORDS);
  switch (type) {
    case "song":
      return {
        artist_name: randomTitle(rand, ARTISTS),
        title: `${word()} ${word()}`,
        year: rand() < 0.48 ? 0 : 1950 + Math.floor(rand() * 70),
        release: `${word()} ${word()}`,
      };
    case "movie":
      return {
        original_title: randomTitle(rand, TITLES),
        original_language: pick(LANGS),
        budget: rand() < 0.81 ? 0 : Math.floor(rand() * 200_000_000),
        is_adult: false,
        release_date: `${1874 + Math.floor(rand() * 145)}-${String(1 + Math.floor(rand() * 12)).padStart(2, "0")}-${
          String(1 + Math.floor(rand() * 28)).padStart(2, "0")
        }`,
      };
    case "app":
      return {
        name: randomTitle(rand, APPS),
        genre: pick(GENRES),
        rating: Math.round(rand() * 10) / 2,
        version: pick(["V3.7.0", "v2.13.9", "708", "1.0.3"]),
        size_bytes: rand() < 0.1 ? 4_025_969_664 : Math.floor(rand() * 300_000_000),
      };
    default:
      return {
        original_title: `${word()} ${word()}`,
        average_rating: Math.round(rand() * 500) / 100,
        authors: pick(AUTHORS),
        language_code: "en-US",
      };
  }
}

/** A copy of an earlier record: the same natural key, and in one case of five a changed value. */
function repeatOf(rand: () => number, type: string, data: Record<string, unknown>): Record<string, unknown> {
  const copy = { ...data };
  if (rand() < 0.2) {
    if (type === "song") copy.release = `${WORDS[Math.floor(rand() * WORDS.length)]} (remaster)`;
    else if (type === "movie") copy.budget = Math.floor(rand() * 1_000_000);
    else if (type === "app") copy.genre = GENRES[Math.floor(rand() * GENRES.length)];
    else copy.average_rating = Math.round(rand() * 500) / 100;
  }
  return copy;
}

/** The fields of `data` in the given order (the real files use one random order per type per file). */
function ordered(data: Record<string, unknown>, order: readonly string[] | undefined): Record<string, unknown> {
  if (order === undefined) return data;
  const out: Record<string, unknown> = {};
  for (const k of order) if (Object.hasOwn(data, k)) out[k] = data[k];
  for (const k of Object.keys(data)) if (!Object.hasOwn(out, k)) out[k] = data[k];
  return out;
}

function shuffled<T>(xs: readonly T[], rand: () => number): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

const MOODS = ["calm", "happy", "sad", "tense"] as const;

/** The records of one file of the `real` shape. */
function realFile(
  rand: () => number,
  count: number,
  options: {
    pool: RecordPool;
    history: RecordPool | undefined;
    repeatRate: number;
    invalidRate: number;
    extraRate?: number | undefined;
    extraFields?: number | undefined;
  },
): unknown[] {
  // Each type's share varies from file to file, from nothing to most of it.
  const weights = TYPES.map(() => rand() ** 2);
  const sum = weights.reduce((a, b) => a + b, 0);
  const cumulative = weights.map((_, i) => weights.slice(0, i + 1).reduce((a, b) => a + b, 0) / sum);
  const orders = new Map(TYPES.map((t) => [t, shuffled(Object.keys(realRecord(rand, t)), rand)]));
  const typeFirst = rand() < 0.5;
  const fresh: [string, Record<string, unknown>][] = [];
  const records: unknown[] = [];
  for (let i = 0; i < count; i++) {
    const u = rand();
    const type = TYPES[cumulative.findIndex((c) => u <= c)] ?? "book";
    let data: Record<string, unknown> | undefined;
    if (rand() < options.repeatRate) {
      const earlier =
        (options.history !== undefined && rand() < 0.5 ? options.history : options.pool).pick(type, rand) ??
          options.pool.pick(type, rand);
      if (earlier !== undefined) data = repeatOf(rand, type, earlier);
    }
    if (data === undefined) {
      data = realRecord(rand, type);
      fresh.push([type, data]);
    }
    const record: { data: Record<string, unknown> | null; type: string } = typeFirst
      ? { type, data: ordered(data, orders.get(type as typeof TYPES[number])) }
      : { data: ordered(data, orders.get(type as typeof TYPES[number])), type };
    if (rand() < options.invalidRate) record.data = broken(record.data!, rand);
    // Only drawn when asked for, so that a bucket without extras is the same as before the option.
    if (options.extraRate && record.data !== null && rand() < options.extraRate) {
      const more: Record<string, unknown> = { mood: MOODS[Math.floor(rand() * MOODS.length)]! };
      for (let k = 1; k < (options.extraFields ?? 1); k++) {
        more[`x${k}`] = [k * 1.5, `v${k}`, k % 2 === 0, null][k % 4];
      }
      record.data = { ...record.data, ...more };
    }
    records.push(record);
  }
  // Records become repeatable from the next file on.
  for (const [type, data] of fresh) options.pool.add(type, data, rand);
  return records;
}

/** JSON pretty-printed with 2 spaces, every non-ASCII character escaped, ratings as floats. */
export function asciiJson(value: unknown): string {
  return JSON.stringify(value, null, 2)
    .replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)
    // Python wrote whole-valued float ratings as `4.0`.
    .replace(/("rating": )(\d)(,?\n)/g, "$1$2.0$3");
}

function uuid(rand: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(rand() * 16).toString(16)).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20)}`;
}

/** Writes the bucket into `dir` and returns its keys. Files are written in chunks, so a 1 GB file needs little memory. */
export async function generateBucket(dir: string, options: GenerateOptions = {}): Promise<string[]> {
  const { files = 4, records = 700, invalidRate = 0.03, seed = 1, shape = "sequential", repeatRate = 0.46 } = options;
  const rand = prng(seed);
  const pool = new RecordPool();
  await Deno.mkdir(dir, { recursive: true });
  const encoder = new TextEncoder();
  const keys: string[] = [];
  const CHUNK = 2000;
  for (let f = 0; f < files; f++) {
    const key = `${uuid(rand)}.data`;
    const file = await Deno.open(join(dir, key), { write: true, create: true, truncate: true });
    let bytes = 0;
    const write = async (text: string) => {
      const data = encoder.encode(text);
      bytes += data.byteLength;
      for (let off = 0; off < data.byteLength;) off += await file.write(data.subarray(off));
    };
    try {
      if (records === 0) await write("[]");
      for (let start = 0; start < records; start += CHUNK) {
        const n = Math.min(records, start + CHUNK) - start;
        let items: unknown[];
        if (shape === "real") {
          items = realFile(rand, n, {
            pool,
            history: options.history,
            repeatRate,
            invalidRate,
            extraRate: options.extraRate,
            extraFields: options.extraFields,
          });
        } else {
          items = [];
          for (let i = start; i < start + n; i++) items.push(makeRecord(rand, f * records + i, invalidRate));
        }
        // Pretty-print the chunk as an array, then splice it into the file's one array.
        const body = asciiJson(items).slice(1, -2);
        await write((start === 0 ? "[" : ",") + body + (start + CHUNK >= records ? "\n]" : ""));
      }
    } finally {
      file.close();
    }
    options.onFile?.(key, bytes);
    keys.push(key);
  }
  await Deno.writeTextFile(join(dir, "files_list.data"), keys.join("\n"));
  return keys;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      files: { type: "string" },
      records: { type: "string" },
      invalid: { type: "string" },
      seed: { type: "string" },
      shape: { type: "string" },
      extra: { type: "string" },
      "extra-fields": { type: "string" },
    },
    allowPositionals: true,
  });
  const dir = positionals[0];
  if (dir === undefined) {
    console.error(
      "Usage: gen_bucket.ts DIR [--files N] [--records N] [--invalid RATE] [--seed N] [--shape real] [--extra RATE] " +
        "[--extra-fields N]",
    );
    Deno.exit(2);
  }
  const keys = await generateBucket(dir, {
    files: Number(values.files ?? 4),
    records: Number(values.records ?? 700),
    invalidRate: Number(values.invalid ?? 0.03),
    seed: Number(values.seed ?? 1),
    shape: values.shape === "real" ? "real" : "sequential",
    extraRate: Number(values.extra ?? 0),
    extraFields: Number(values["extra-fields"] ?? 1),
  });
  console.log(`Wrote ${keys.length} files to ${dir}`);
}
