/**
 * The tables the bench's references load: the same three as bucketload's,
 * without bookkeeping.
 *
 * @module
 */

/** CREATE TABLE statements of songs, movies and apps. */
export const REFERENCE_SCHEMA = `
  CREATE TABLE IF NOT EXISTS songs (artist_name TEXT, title TEXT, year INTEGER, release TEXT, ingestion_time TEXT,
    PRIMARY KEY (artist_name, title));
  CREATE TABLE IF NOT EXISTS movies (original_title TEXT, original_language TEXT, budget INTEGER, is_adult INTEGER,
    release_date TEXT, original_title_normalized TEXT, PRIMARY KEY (original_title_normalized, release_date));
  CREATE TABLE IF NOT EXISTS apps (name TEXT, genre TEXT, rating REAL, version TEXT, size_bytes INTEGER,
    is_awesome INTEGER, PRIMARY KEY (name, version));
`;
