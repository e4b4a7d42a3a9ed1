/**
 * The record types bucketload loads. Adding one means adding its file and
 * listing it here.
 *
 * @module
 */
import { appType } from "./app.ts";
import { movieType } from "./movie.ts";
import type { RecordType } from "./record_type.ts";
import { songType } from "./song.ts";

/** The types loaded by default. */
export const RECORD_TYPES: readonly RecordType[] = [songType, movieType, appType];
