/**
 * `--schedule`: runs on a cron schedule (UTC) through `Deno.cron`, never
 * overlapping, with the next due time logged. The expression is checked
 * (npm `croner`) before anything starts.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { CronPlan } from "./cron.ts";

/** Exit codes of the stop signals. */
export const SIGNAL_CODES = { SIGINT: 130, SIGTERM: 143 } as const;

/** The reason a run or the scheduler was stopped by a signal. */
export class StopSignal extends Error {
  /** Creates the reason for `signal` (or for `why`, what stood for it: the launcher gone). */
  constructor(readonly signal: keyof typeof SIGNAL_CODES, why?: string) {
    super(why === undefined ? `Stopped by ${signal}` : `Stopped: ${why}`);
    this.name = "StopSignal";
  }
}

/**
 * Wraps `task` so that a call while the previous one is still going is
 * skipped (and reported through `onSkip`) instead of overlapping it.
 */
export function nonOverlapping(task: () => Promise<void>, onSkip: () => void): () => Promise<void> {
  let running = false;
  return async () => {
    if (running) return onSkip();
    running = true;
    try {
      await task();
    } finally {
      running = false;
    }
  };
}

/** Options of {@linkcode schedule}. */
export interface ScheduleOptions {
  /** Run once right away, then on the schedule. @default {false} */
  readonly runAtStart?: boolean;
}

/**
 * Runs `run` on a cron schedule until `signal` aborts. Runs never overlap: a
 * tick while a run is going is skipped with a warning. A failing run is logged
 * and the scheduler goes on. Returns 0 when stopped between runs, or the
 * stopped run's code (130/143) when a signal stopped a run.
 */
export async function schedule(
  cron: CronPlan,
  run: () => Promise<number>,
  signal: AbortSignal,
  options: ScheduleOptions = {},
): Promise<number> {
  const logger = getLogger(["bucketload", "schedule"]);
  const expression = cron.expression;
  // The tick in progress, settled once its run and its logging are done.
  let inFlight: Promise<void> | undefined;
  let stoppedRunCode: number | undefined;
  const tick = nonOverlapping(async () => {
    const { promise, resolve } = Promise.withResolvers<void>();
    inFlight = promise;
    try {
      const code = await run();
      if (code === SIGNAL_CODES.SIGINT || code === SIGNAL_CODES.SIGTERM) stoppedRunCode = code;
      else if (code !== 0) logger.error("Scheduled run ended with exit code {code}", { code });
      if (!signal.aborted) logger.info("Next run at {next} (UTC)", { next: cron.next().toISOString() });
    } finally {
      resolve();
    }
  }, () => logger.warn("Skipping the {cron} tick: the previous run is still going", { cron: expression }));
  Deno.cron("bucketload", expression, { signal }, tick);
  logger.info("Scheduled on {cron} (UTC); next run at {next}; stop with SIGINT or SIGTERM", {
    cron: expression,
    next: cron.next().toISOString(),
  });
  if (options.runAtStart) tick();
  await new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
  await inFlight;
  return stoppedRunCode ?? 0;
}
