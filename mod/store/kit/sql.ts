/**
 * SQL both stores write alike: identifier quoting, and the words the
 * registry stores for a key given up on.
 *
 * @module
 */

/** An SQL identifier, double-quoted (both SQLite and PostgreSQL read it so). */
export const quote = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/** The rejection reason stored for a key given up on after `giveUpRuns` runs missing. */
export function giveUpReason(giveUpRuns: number, lastReason: string): string {
  return `missing in ${giveUpRuns} runs in a row (${lastReason}): gave up (MISSING_GIVE_UP_RUNS); ` +
    "--retry-invalid or --key tries it again";
}
