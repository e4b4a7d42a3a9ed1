/**
 * The one error class callers catch: a usage or configuration mistake, which
 * the CLI reports on one line and answers with exit code 2.
 *
 * @module
 */

/** A usage or configuration error: bad flag, profile, key or value. Exit code 2. */
export class UsageError extends Error {
  /** The flag, key or file at fault, e.g. `CONCURRENCY` or `--profile`. */
  readonly subject: string | undefined;

  /** Creates a usage error; `subject` names what is at fault. */
  constructor(message: string, options?: { subject?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "UsageError";
    this.subject = options?.subject;
  }
}
