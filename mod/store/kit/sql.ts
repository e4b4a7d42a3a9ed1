/**
 * SQL both stores write alike.
 *
 * @module
 */

/** An SQL identifier, double-quoted (both SQLite and PostgreSQL read it so). */
export const quote = (name: string): string => `"${name.replaceAll('"', '""')}"`;
