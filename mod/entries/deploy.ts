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
import { type Config, ENV_PREFIX, resolveConfig } from "../config/config.ts";
import { ConnectionLostError, LockedError, UsageError } from "../common/errors.ts";
import { parseCron } from "../cli/cron.ts";
import { fixableError } from "../cli/args.ts";
import { runOnceAction } from "../commands/run.ts";
import { setupLogging } from "../commands/log.ts";
import { jsonResponse, statusHandler } from "../commands/serve.ts";
import { configReport } from "../commands/status.ts";
import { redactUrl } from "../source/location.ts";
import { Sessions } from "../commands/status_token.ts";

/** The schedule when `BUCKETLOAD_SCHEDULE` is not set: every 15 minutes. */
export const DEFAULT_SCHEDULE = "*/15 * * * *";

/** The cron schedule of the Deploy job, from `BUCKETLOAD_SCHEDULE`. */
export function deploySchedule(env: Readonly<Record<string, string>>): string {
  return env.BUCKETLOAD_SCHEDULE?.trim() || DEFAULT_SCHEDULE;
}

/** Where the entry listens. */
export interface DeployAddress {
  /** `BUCKETLOAD_HOST`: the address to listen on. */
  readonly hostname: string;
  /** `BUCKETLOAD_PORT`, else `PORT`: the port to listen on. */
  readonly port: number;
}

/**
 * What the entry needs before it registers its job and listens: the checked
 * schedule, address and warnings; or one error line (exit 2).
 */
export type DeployStart =
  | { schedule: string; address: DeployAddress; warnings: string[] }
  | { error: string };

/**
 * Keys that mean something to the CLI but nothing here: set, they are
 * ignored, with a warning. `BUCKETLOAD_CWD` and `BUCKETLOAD_WATCH_PARENT` are
 * the launcher's own and pass in silence.
 */
const IGNORED_HERE: Readonly<Record<string, string>> = {
  BUCKETLOAD_CONFIG: "no config file is read here: set each key as a BUCKETLOAD_* variable",
  BUCKETLOAD_PROFILE: "no config file is read here: set each key as a BUCKETLOAD_* variable",
  BUCKETLOAD_WORKER: "the produce step runs on the main thread here",
  BUCKETLOAD_PROCESSED_FILES_FILENAME: "there is no disk to write it to",
  BUCKETLOAD_SAVE_LOG: "logs go to the console (Deploy's logs)",
  BUCKETLOAD_LOG_DIR: "logs go to the console (Deploy's logs)",
  BUCKETLOAD_LOG_KEEP_DAYS: "logs go to the console (Deploy's logs)",
};

/**
 * Checks the whole environment before anything is registered or listens:
 * the schedule exactly as `--schedule` is checked (five fields, fires at some
 * time); every `BUCKETLOAD_*` variable and value and `DATABASE_URL` as
 * {@linkcode deployConfig} reads them (an unknown variable gets the closest
 * known one suggested); and the address (`BUCKETLOAD_HOST`, `BUCKETLOAD_PORT`
 * or `PORT`). Warns when the status endpoint is open to anyone, and for each
 * variable set that this entry ignores.
 */
export async function checkDeployStart(env: Readonly<Record<string, string>>): Promise<DeployStart> {
  const schedule = deploySchedule(env);
  let address: DeployAddress;
  try {
    await parseCron(schedule, "BUCKETLOAD_SCHEDULE");
    deployConfig(env);
    address = deployAddress(env);
  } catch (error) {
    if (error instanceof UsageError) return { error: error.message };
    throw error;
  }
  const warnings = Object.entries(IGNORED_HERE)
    .filter(([name]) => env[name]?.trim())
    .map(([name, why]) => `${name} is ignored by the Deno Deploy entry: ${why}`);
  if (!env.BUCKETLOAD_STATUS_TOKEN?.trim()) {
    warnings.push("BUCKETLOAD_STATUS_TOKEN is not set: /status shows the bucket, keys and errors to anyone who asks");
  }
  return { schedule, address, warnings };
}

/**
 * Where the entry listens: `BUCKETLOAD_HOST` (default 0.0.0.0) and
 * `BUCKETLOAD_PORT`, else `PORT` (as platforms set it), else 8000. `HOSTNAME`
 * is not read: Docker and Kubernetes set it to the container's name.
 *
 * @throws {UsageError} naming the variable whose port or host is not one
 */
export function deployAddress(env: Readonly<Record<string, string>>): DeployAddress {
  const hostname = env.BUCKETLOAD_HOST?.trim() || "0.0.0.0";
  // A scheme, a path or a port in the host: the port is BUCKETLOAD_PORT's.
  if (/[\s/]/.test(hostname) || /^[^:]+:\d*$/.test(hostname)) {
    throw new UsageError(
      `Cannot parse environment variable BUCKETLOAD_HOST: expected a host name or IP address without a scheme ` +
        `or a port (set the port with BUCKETLOAD_PORT), got ${JSON.stringify(hostname)}`,
      { subject: "BUCKETLOAD_HOST" },
    );
  }
  const name = env.BUCKETLOAD_PORT?.trim() ? "BUCKETLOAD_PORT" : "PORT";
  const raw = env[name]?.trim() || "8000";
  if (!/^\d{1,5}$/.test(raw) || Number(raw) > 65_535) {
    throw new UsageError(
      `Cannot parse environment variable ${name}: expected a port, an integer 0–65535, got ${JSON.stringify(raw)}`,
      { subject: name },
    );
  }
  return { hostname, port: Number(raw) };
}

/**
 * The line that says why the entry could not listen on `address` (what
 * `Deno.serve` threw), with the variable to change; `undefined` when `error`
 * is not about listening.
 */
export function listenFailure(error: unknown, address: DeployAddress): string | undefined {
  const where = `Cannot listen on ${address.hostname}:${address.port}`;
  if (error instanceof Deno.errors.AddrInUse) {
    return `${where}: the address is in use (set BUCKETLOAD_PORT or PORT to a free port)`;
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return `${where}: the address is not one of this machine's (set BUCKETLOAD_HOST, or unset it for 0.0.0.0)`;
  }
  if (error instanceof Deno.errors.NotCapable) {
    return `${where}: Deno denied the network permission (run with --allow-net)`;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return `${where}: permission denied (a port below 1024 needs privileges: set BUCKETLOAD_PORT or PORT)`;
  }
  if (error instanceof Error) return `${where}: ${redactUrl(error.message)} (check BUCKETLOAD_HOST)`;
  return undefined;
}

/**
 * The config of a Deploy job: the environment only, PostgreSQL only, in-thread
 * produce (Deploy has no workers), no local files.
 *
 * @throws {UsageError} without a PostgreSQL URL, or for any bad value
 */
export function deployConfig(env: Readonly<Record<string, string>>): Config {
  const config = resolveConfig({ env, cwd: "/" });
  // A store that keeps its data in local files (SQLite) would lose it.
  const { kind } = config.store;
  if (kind.local) {
    const chooser = `${ENV_PREFIX}${kind.key}`;
    if (env.DATABASE_URL?.trim() && env[chooser] !== undefined) {
      throw new UsageError(
        `${chooser} chooses a ${kind.title} file over DATABASE_URL, and Deno Deploy has no persistent disk, ` +
          `so it would be lost: unset ${chooser}`,
        { subject: chooser },
      );
    }
    throw new UsageError(
      `Deno Deploy has no persistent disk, so a ${kind.title} database would be lost: set DATABASE_URL ` +
        "(a postgres:// URL; Deploy sets it for a linked or provisioned PostgreSQL database)",
      { subject: "DATABASE_URL" },
    );
  }
  return { ...config, worker: false, processedFilesPath: undefined, logDir: undefined };
}

let logging: Promise<unknown> | undefined;

/**
 * One scheduled run: logs to the console (Deploy's logs) and returns the exit
 * code a CLI run would have. It never throws: a failure is one line (masked,
 * no stack trace) and its code, 2 for what the CLI answers with 2 (a bad
 * value, a database that refuses the connection), else 1. An error thrown to
 * `Deno.cron` would be printed with its stack, and Deno's local cron would
 * retry it up to 5 times, each failing the same way; the next tick does the
 * work instead.
 */
export async function runScheduled(env: Readonly<Record<string, string>>): Promise<number> {
  let logged = false;
  try {
    const config = deployConfig(env);
    logging ??= setupLogging({
      level: config.logLevel,
      format: config.logFormat,
      write: (text) => console.log(text.trimEnd()),
    });
    await logging;
    logged = true;
    return await runOnceAction(config, (text) => console.log(text.trimEnd()), { force: false, retryInvalid: false });
  } catch (error) {
    const line = failureLine(error);
    if (logged) getLogger(["bucketload"]).error("The scheduled run failed: {error}", { error: line });
    else console.error(`bucketload: the scheduled run failed: ${line}`);
    return fixableError(error) === undefined ? 1 : 2;
  }
}

/** One line for a failed run, as the CLI says it: credentials masked, no stack. */
function failureLine(error: unknown): string {
  const fixable = fixableError(error);
  if (fixable !== undefined) return fixable;
  if (error instanceof LockedError || error instanceof ConnectionLostError) return error.message;
  return redactUrl(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
}

/** The session cookies of the last token seen (the token is read from the environment at each request). */
let sessions: { readonly token: string; readonly sessions: Sessions } | undefined;

/**
 * The session cookies of `token` on Deploy: keyed by the token alone, since
 * Deploy runs the entry in isolates that share nothing (a random key would
 * make a cookie one isolate issued unknown to the next). A cookie still
 * expires after a day and dies when the token changes.
 */
function deploySessions(token: string | undefined): Sessions | undefined {
  if (token === undefined) return undefined;
  if (sessions?.token !== token) sessions = { token, sessions: new Sessions(token, new Uint8Array(0)) };
  return sessions.sessions;
}

/**
 * The HTTP endpoint, the same as `serve`'s (`commands/serve.ts`): `GET /health`
 * answers `{"ok": true}` to anyone; `GET /` the status page, `GET /api/status`
 * (or `/status`) the status report as JSON with the schedule, both needing the
 * `STATUS_TOKEN` when one is set: `Authorization: Bearer …`, or the cookie of
 * the login form (`POST /login`); `?token=…` is refused. Any `Host` is
 * answered: Deploy serves the public internet under names it picks
 * (`<app>.deno.dev`, previews, custom domains), where a DNS-rebinding page
 * gets nothing that a direct request would not.
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
    sessions: deploySessions(config.statusToken),
    // No host check (see above).
    hosts: undefined,
  });
  return await handler(request);
}
