/**
 * The Deno Deploy entry's logic (see `deploy.ts` at the root): a cron job
 * that runs the pipeline into PostgreSQL, and a small HTTP endpoint with the
 * `status` report. Configured from the environment alone (`BUCKETLOAD_*`,
 * `DATABASE_URL`, `PG*`): Deploy gives a job no persistent disk, so SQLite
 * is refused.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { type Config, resolveConfig } from "./config.ts";
import { UsageError } from "./errors.ts";
import { parseCron } from "./cli/cron.ts";
import { runOnceAction } from "./app/actions.ts";
import { setupLogging } from "./app/log.ts";
import { configReport, jsonResponse, statusHandler } from "./app/serve.ts";

/** The schedule when `BUCKETLOAD_SCHEDULE` is not set: every 15 minutes. */
export const DEFAULT_SCHEDULE = "*/15 * * * *";

/** The cron schedule of the Deploy job, from `BUCKETLOAD_SCHEDULE`. */
export function deploySchedule(env: Readonly<Record<string, string>>): string {
  return env.BUCKETLOAD_SCHEDULE?.trim() || DEFAULT_SCHEDULE;
}

/** What the entry needs before it registers its job: the checked schedule and warnings, or one error line. */
export type DeployStart = { schedule: string; warnings: string[] } | { error: string };

/**
 * Checks the schedule exactly as `--schedule` is checked (five fields, fires
 * at some time), and warns when the status endpoint is open to anyone.
 */
export async function checkDeployStart(env: Readonly<Record<string, string>>): Promise<DeployStart> {
  const schedule = deploySchedule(env);
  try {
    await parseCron(schedule, "BUCKETLOAD_SCHEDULE");
  } catch (error) {
    if (error instanceof UsageError) return { error: error.message };
    throw error;
  }
  const warnings = env.BUCKETLOAD_STATUS_TOKEN?.trim()
    ? []
    : ["BUCKETLOAD_STATUS_TOKEN is not set: /status shows the bucket, keys and errors to anyone who asks"];
  return { schedule, warnings };
}

/**
 * Where the entry listens: `BUCKETLOAD_HOST` (default 0.0.0.0) and
 * `BUCKETLOAD_PORT`, else `PORT`, else 8000. `HOSTNAME` is not read: Docker
 * and Kubernetes set it to the container's name.
 */
export function deployAddress(env: Readonly<Record<string, string>>): { hostname: string; port: number } {
  return {
    hostname: env.BUCKETLOAD_HOST?.trim() || "0.0.0.0",
    port: Number(env.BUCKETLOAD_PORT?.trim() || env.PORT?.trim() || "8000"),
  };
}

/**
 * The config of a Deploy job: the environment only, PostgreSQL only, in-thread
 * produce (Deploy has no workers), no local files.
 *
 * @throws {UsageError} without a PostgreSQL URL, or for any bad value
 */
export function deployConfig(env: Readonly<Record<string, string>>): Config {
  const config = resolveConfig({ env, cwd: "/" });
  if (config.databaseUrl === undefined) {
    throw new UsageError(
      "Deno Deploy has no persistent disk, so a SQLite database would be lost: set DATABASE_URL " +
        "(a postgres:// URL; Deploy sets it for a linked or provisioned PostgreSQL database)",
      { subject: "DATABASE_URL" },
    );
  }
  return { ...config, worker: false, processedFilesPath: undefined, logDir: undefined };
}

let logging: Promise<unknown> | undefined;

/** One scheduled run: logs to the console (Deploy's logs) and returns the exit code a CLI run would have. */
export async function runScheduled(env: Readonly<Record<string, string>>): Promise<number> {
  const config = deployConfig(env);
  logging ??= setupLogging({
    level: config.logLevel,
    format: config.logFormat,
    write: (text) => console.log(text.trimEnd()),
  });
  await logging;
  try {
    return await runOnceAction(config, (text) => console.log(text.trimEnd()), { force: false, retryInvalid: false });
  } catch (error) {
    getLogger(["bucketload"]).error("The scheduled run failed: {error}", { error: (error as Error).message });
    throw error;
  }
}

/**
 * The HTTP endpoint, the same as `serve`'s (`app/serve.ts`): `GET /health`
 * answers `{"ok": true}` to anyone; `GET /` the status page, `GET /api/status`
 * (or `/status`) the status report as JSON with the schedule, both needing the
 * `STATUS_TOKEN` (as `Authorization: Bearer …` or `?token=…`) when one is set.
 */
export async function handleRequest(request: Request, env: Readonly<Record<string, string>>): Promise<Response> {
  const { pathname } = new URL(request.url);
  if (pathname === "/health") return jsonResponse({ ok: true });
  let config: Config;
  try {
    config = deployConfig(env);
  } catch (error) {
    return jsonResponse({ error: (error as Error).message }, 500);
  }
  // deployConfig makes sure this is PostgreSQL.
  const handler = statusHandler({
    report: configReport(config),
    token: config.statusToken,
    extra: { schedule: deploySchedule(env) },
  });
  return await handler(request);
}
