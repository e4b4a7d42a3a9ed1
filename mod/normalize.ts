/**
 * Title normalization for `movies.original_title_normalized`.
 *
 * @module
 */

const NOT_WORDLIKE = /[^\p{L}\p{M}\p{N}\s]/gu;
const WHITESPACE_RUN = /\s+/gu;

/**
 * Normalizes a title: NFKC, lowercase, drop everything but Unicode letters,
 * marks, numbers and whitespace, trim, then join whitespace runs with `_`.
 */
export function normalizeTitle(title: string): string {
  return title
    .normalize("NFKC")
    .toLowerCase()
    .replace(NOT_WORDLIKE, "")
    .trim()
    .replace(WHITESPACE_RUN, "_");
}
