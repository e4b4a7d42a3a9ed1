/**
 * `--schedule` expressions, checked with npm `croner` (loaded only when a
 * schedule is given). Apart from the scheduler, so that the launcher can
 * check a schedule without loading the logger.
 *
 * @module
 */
import type { Cron } from "croner";
import { UsageError } from "../common/errors.ts";

/** A checked cron expression. */
export interface CronPlan {
  /** The expression, as given. */
  readonly expression: string;
  /** The next due time after `from`. */
  next(from?: Date): Date;
}

/**
 * Checks a five-field cron expression (UTC) as `Deno.cron` takes it.
 *
 * @throws {UsageError} naming `name` (`--schedule`) when it does not parse or never fires
 */
export async function parseCron(expression: string, name = "--schedule"): Promise<CronPlan> {
  const fail = (why: string): never => {
    throw new UsageError(`Cannot parse ${name}: ${why}, got ${JSON.stringify(expression)}`, { subject: name });
  };
  if (expression.trim().split(/\s+/).length !== 5) fail("expected 5 fields (minute hour day month weekday)");
  // Loaded only for a schedule (~30 ms at every start otherwise).
  const { Cron } = await import("croner");
  let cron: Cron;
  try {
    cron = new Cron(expression, { paused: true, timezone: "UTC" });
  } catch (error) {
    return fail((error as Error).message.replace(/^CronPattern: /, ""));
  }
  if (cron.nextRun() === null) fail("it never fires");
  return {
    expression,
    next: (from = new Date()) => cron.nextRun(from) ?? new Date(NaN),
  };
}
