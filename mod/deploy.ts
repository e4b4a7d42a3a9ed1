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
import { runOnceAction } from "./cli/actions.ts";
import { setupLogging } from "./cli/log.ts";
import { openStoreReadOnly } from "./store/open.ts";
import type { Store } from "./store/store.ts";

/** The schedule when `BUCKETLOAD_SCHEDULE` is not set: every 15 minutes. */
export const DEFAULT_SCHEDULE = "*/15 * * * *";

/** The cron schedule of the Deploy job, from `BUCKETLOAD_SCHEDULE`. */
export function deploySchedule(env: Readonly<Record<string, string>>): string {
  return env.BUCKETLOAD_SCHEDULE?.trim() || DEFAULT_SCHEDULE;
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

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body, null, 2) + "\n", { status, headers: { "content-type": "application/json" } });

/** The HTTP endpoint: `GET /health` answers `{"ok": true}`; `GET /` and `/status` the status report as JSON. */
export async function handleRequest(request: Request, env: Readonly<Record<string, string>>): Promise<Response> {
  const { pathname } = new URL(request.url);
  if (request.method !== "GET") return json({ error: "only GET" }, 405);
  if (pathname === "/health") return json({ ok: true });
  if (pathname !== "/" && pathname !== "/status") return json({ error: "not found" }, 404);
  let config: Config;
  try {
    config = deployConfig(env);
  } catch (error) {
    return json({ error: (error as Error).message }, 500);
  }
  let store: Store | undefined;
  try {
    // deployConfig makes sure this is PostgreSQL.
    store = (await openStoreReadOnly(config))!;
    return json({ schedule: deploySchedule(env), ...(await store.status()) });
  } catch (error) {
    return json({ error: (error as Error).message }, 503);
  } finally {
    await store?.close();
  }
}
