/**
 * The last line of a process that met an error nothing else handled: one
 * line on stderr, credentials masked, no stack trace (a trace can carry a
 * URL with its password). Set `BUCKETLOAD_TRACE=1` to see the trace, also
 * masked.
 *
 * @module
 */
import { redactUrl } from "../source/location.ts";

/** Prints `error` as one masked line and returns exit code 1. */
export function lastWords(error: unknown): number {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  let trace = false;
  try {
    trace = Deno.env.get("BUCKETLOAD_TRACE") === "1";
  } catch { /* not granted: no trace */ }
  const text = trace && error instanceof Error && error.stack !== undefined ? error.stack : message;
  Deno.stderr.writeSync(new TextEncoder().encode(`bucketload: unexpected error: ${redactUrl(text)}\n`));
  return 1;
}
