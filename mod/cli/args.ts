/**
 * The command line and the environment: flags, which environment variables
 * are read, and the config they resolve to. Kept apart from the entry point,
 * so that the launcher (`deno task run`) loads only this and the config, not
 * the pipeline (~50 ms less at every start).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type Config, CONFIG_KEYS, ENV_CHOOSERS, ENV_PREFIX, KINDS, loadConfig } from "../config/config.ts";
import { DamagedDatabaseError, isCorruption, UsageError } from "../common/errors.ts";
import { refuseReason } from "../source/location.ts";

/** The flags. */
const OPTIONS = {
  config: { type: "string" },
  profile: { type: "string" },
  force: { type: "boolean" },
  "retry-invalid": { type: "boolean" },
  "dry-run": { type: "boolean" },
  concurrency: { type: "string" },
  "log-level": { type: "string" },
  "log-format": { type: "string" },
  quiet: { type: "boolean" },
  schedule: { type: "string" },
  "run-at-start": { type: "boolean" },
  key: { type: "string", multiple: true },
  json: { type: "boolean" },
  port: { type: "string" },
  host: { type: "string" },
  "allow-host": { type: "string", multiple: true },
  type: { type: "string" },
  reason: { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
} as const;

/** The parsed command line. */
export interface Cli {
  /** The command: `run` (none given), `status`, `serve` or `replay`. */
  readonly command: "run" | "status" | "serve" | "replay";
  /** `-h`, `--help`. */
  readonly help: boolean;
  /** `--version`. */
  readonly version: boolean;
  /** `--force`: fetch registered keys again. */
  readonly force: boolean;
  /** `--retry-invalid`: fetch keys registered as invalid again. */
  readonly retryInvalid: boolean;
  /** `--dry-run`: print what a run would do, write nothing. */
  readonly dryRun: boolean;
  /** `--quiet`: no progress bar. */
  readonly quiet: boolean;
  /** `--json`: the summary or report as JSON. */
  readonly json: boolean;
  /** `--schedule`: stay up and run on this cron schedule (UTC). */
  readonly schedule: string | undefined;
  /** `--run-at-start`: with `--schedule`, run once at the start too. */
  readonly runAtStart: boolean;
  /** `--key` values: fetch only these. */
  readonly keys: readonly string[] | undefined;
  /** `--config`: the config file. */
  readonly configPath: string | undefined;
  /** `--profile`: the profile to use. */
  readonly profile: string | undefined;
  /** Profile keys set by flags. */
  readonly overrides: Readonly<Record<string, string>>;
  /** `serve`: where to listen (default 127.0.0.1:8000), and the names it answers besides (`--allow-host`). */
  readonly listen: { readonly host: string; readonly port: number; readonly allowHosts: readonly string[] };
  /** `replay`: which quarantined records (`--type`, `--reason`). */
  readonly replay: { readonly type: string | undefined; readonly reason: string | undefined };
}

/** The commands; `run` when none is given. */
const COMMANDS = ["run", "status", "serve", "replay"] as const;

/** Where `serve` listens without `--host` and `--port`: loopback only. */
export const DEFAULT_LISTEN = { host: "127.0.0.1", port: 8000 } as const;

function parsePort(text: string | undefined): number {
  if (text === undefined) return DEFAULT_LISTEN.port;
  if (!/^\s*\d{1,5}\s*$/.test(text) || Number(text) > 65535) {
    throw new UsageError(`Cannot parse --port: expected 0 to 65535, got ${JSON.stringify(text)}`, {
      subject: "--port",
    });
  }
  return Number(text);
}

/** A `--allow-host` value: a host name, without a scheme, a port or a path. */
function parseAllowHost(text: string): string {
  const name = text.trim().toLowerCase();
  if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/.test(name)) {
    throw new UsageError(
      `Cannot parse --allow-host: expected a host name without a scheme, a port or a path ` +
        `(e.g. status.example.com), got ${JSON.stringify(text)}`,
      { subject: "--allow-host" },
    );
  }
  return name;
}

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>["values"];

/**
 * Checks that each flag applies to `command` and goes with the others.
 *
 * @throws {UsageError} naming the flag
 */
function checkFlags(command: Cli["command"], values: Values): void {
  const only = (flag: keyof typeof values, ...where: Cli["command"][]) => {
    if (values[flag] !== undefined && !where.includes(command)) {
      throw new UsageError(`Flag --${flag} only applies to ${where.map((w) => `'${w}'`).join(" and ")}`, {
        subject: `--${flag}`,
      });
    }
  };
  for (const flag of ["force", "retry-invalid", "schedule", "concurrency", "key", "run-at-start"] as const) {
    only(flag, "run");
  }
  only("dry-run", "run", "replay");
  for (const flag of ["port", "host", "allow-host"] as const) only(flag, "serve");
  for (const flag of ["type", "reason"] as const) {
    only(flag, "replay");
    if (values[flag] !== undefined && values[flag].trim() === "") {
      throw new UsageError(`Flag --${flag} needs a value`, { subject: `--${flag}` });
    }
  }
  if (command === "serve" && values.json !== undefined) {
    throw new UsageError("Flag --json does not apply to 'serve' (GET /api/status is the JSON)", { subject: "--json" });
  }
  const clash = (a: keyof typeof values, b: keyof typeof values) => {
    if (values[a] !== undefined && values[b] !== undefined) {
      throw new UsageError(`Flags --${a} and --${b} don't go together`, { subject: `--${b}` });
    }
  };
  clash("dry-run", "schedule");
  clash("force", "retry-invalid");
  clash("force", "key");
  clash("retry-invalid", "key");
  clash("key", "schedule");
  clash("json", "schedule");
  if (values["run-at-start"] && values.schedule === undefined) {
    throw new UsageError("Flag --run-at-start needs --schedule", { subject: "--run-at-start" });
  }
}

/**
 * One line naming the flag for an error of `parseArgs` (whose own message can
 * take three lines).
 */
function parseArgsError(error: Error & { code?: string }, args: readonly string[]): UsageError {
  const flag = /'(-[^' ]*)/.exec(error.message)?.[1];
  if (flag !== undefined && error.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
    const subject = { subject: flag };
    if (/ argument is ambiguous/.test(error.message)) {
      const at = args.findIndex((a, i) => a === flag && args[i + 1]?.startsWith("-"));
      const next = args[at + 1];
      return new UsageError(
        `Flag ${flag} needs a value, but the next argument is the flag ${next}: ` +
          `write ${flag} VALUE, or ${flag}=-VALUE for a value that starts with a dash`,
        subject,
      );
    }
    if (/ argument missing/.test(error.message)) return new UsageError(`Flag ${flag} needs a value`, subject);
    if (/ does not take an argument/.test(error.message)) {
      const given = args.find((a) => a.startsWith(`${flag}=`));
      return new UsageError(`Flag ${flag} takes no value${given === undefined ? "" : `, got ${given}`}`, subject);
    }
  }
  // An unknown flag, or anything else: the first sentence, on one line.
  const message = error.message.replace(/\.\s+(To specify|Did you).*$/s, "").replace(/\.$/, "").replace(/\s+/g, " ");
  return new UsageError(`${message}: run with --help for the list of flags`, { subject: flag ?? "flags" });
}

/**
 * Parses the command line.
 *
 * @throws {UsageError} on an unknown flag or command, a missing value, or flags that don't go together
 */
export function parseCli(args: readonly string[]): Cli {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options: OPTIONS, strict: true, allowPositionals: true });
  } catch (error) {
    throw parseArgsError(error as Error, args);
  }
  const { values, positionals } = parsed;
  if (
    positionals.length > 1 ||
    (positionals[0] !== undefined && !(COMMANDS as readonly string[]).includes(positionals[0]))
  ) {
    throw new UsageError(
      `Unknown command '${positionals.join(" ")}': expected ${COMMANDS.map((c) => `'${c}'`).join(", ")}`,
      { subject: "command" },
    );
  }
  const command = (positionals[0] ?? "run") as Cli["command"];
  checkFlags(command, values);
  for (const key of values.key ?? []) {
    const reason = refuseReason(key);
    if (reason !== undefined) {
      throw new UsageError(`Cannot use --key ${JSON.stringify(key)}: ${reason}`, { subject: "--key" });
    }
  }
  const overrides: Record<string, string> = {};
  if (values.concurrency !== undefined) {
    if (!/^\s*\d+\s*$/.test(values.concurrency)) {
      throw new UsageError(
        `Cannot parse --concurrency: expected a positive integer, got ${JSON.stringify(values.concurrency)}`,
        { subject: "--concurrency" },
      );
    }
    overrides.CONCURRENCY = values.concurrency;
  }
  if (values["log-level"] !== undefined) overrides.LOG_LEVEL = values["log-level"];
  if (values["log-format"] !== undefined) overrides.LOG_FORMAT = values["log-format"];
  return {
    command,
    help: values.help ?? false,
    version: values.version ?? false,
    force: values.force ?? false,
    retryInvalid: values["retry-invalid"] ?? false,
    dryRun: values["dry-run"] ?? false,
    quiet: values.quiet ?? false,
    json: values.json ?? false,
    schedule: values.schedule,
    runAtStart: values["run-at-start"] ?? false,
    keys: values.key,
    configPath: values.config,
    profile: values.profile,
    overrides,
    listen: {
      host: values.host?.trim() || DEFAULT_LISTEN.host,
      port: parsePort(values.port),
      allowHosts: (values["allow-host"] ?? []).map(parseAllowHost),
    },
    replay: { type: values.type, reason: values.reason },
  };
}

/**
 * Set by the launcher for its child: the command the user started it as
 * (`deno task run`, or `bucketload` when installed), for `--help` and the
 * hints of error lines. Not a profile key: {@linkcode loadConfigFromEnv}
 * leaves it out.
 */
export const COMMAND_NAME_VAR = "BUCKETLOAD_COMMAND_NAME";

/** The command the launcher says it was started as; `undefined` when this program was not started by the launcher. */
export function launchedAs(env: Readonly<Record<string, string>> = readEnv()): string | undefined {
  return env[COMMAND_NAME_VAR]?.trim() || undefined;
}

/**
 * Variables of other tools that bucketload reads, as the stores and sources
 * declare them: the PostgreSQL URL, the AWS credentials.
 */
const PLAIN_ENV = [...new Set([...KINDS.stores, ...KINDS.sources].flatMap((kind) => kind.variables ?? []))];

/**
 * The environment bucketload reads: all of it when allowed, else only the
 * `BUCKETLOAD_*` names it knows and the stores' and sources' variables that
 * the launcher granted (under `--allow-env=BUCKETLOAD_*,DATABASE_URL,PG*`; the
 * PostgreSQL client reads `PG*` itself).
 */
export function readEnv(): Record<string, string> {
  if (Deno.permissions.querySync({ name: "env" }).state === "granted") return Deno.env.toObject();
  const env: Record<string, string> = {};
  const names = [
    ...ENV_CHOOSERS,
    COMMAND_NAME_VAR,
    ...Object.keys(CONFIG_KEYS).map((k) => ENV_PREFIX + k),
    ...PLAIN_ENV,
  ];
  for (const name of names) {
    let value: string | undefined;
    try {
      value = Deno.env.get(name);
    } catch { /* not granted: treated as unset */ }
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/**
 * The one line for an error a person can fix: a usage or config error, or a
 * permission Deno or the system denied (named with its path and the fix, which
 * depends on `launched`: the command the launcher was started as, `undefined`
 * for this program started without it). `undefined` for anything else.
 */
export function fixableError(error: unknown, launched: string | undefined = launchedAs()): string | undefined {
  if (error instanceof UsageError || error instanceof DamagedDatabaseError) return error.message;
  // Damage SQLite meets in the middle of a run (the check runs at most once per INTEGRITY_CHECK_HOURS).
  if (error instanceof Error && isCorruption(error.message)) {
    return `The database is damaged (${error.message}): nothing was written; restore it from a backup`;
  }
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    const what = `Permission denied: ${error.message.replace(/, run again with .*$/s, "").replace(/\.$/, "")}`;
    // The system's refusal (owner, mode, read-only): no Deno flag changes it.
    if (error instanceof Deno.errors.PermissionDenied) {
      return `${what}: the system refuses it: check the owner and mode of that path, or point the setting at a path ` +
        `you may use`;
    }
    // Deno's own: some paths (under /dev, /proc, /sys) only a program with every permission may open.
    if (/^Requires all access to /.test(error.message)) {
      return `${what}: Deno opens that path only for a program run with --allow-all` +
        `${launched === undefined ? "" : `, which '${launched}' never grants`}: point the setting at a path elsewhere`;
    }
    if (launched !== undefined) {
      return `${what}: '${launched}' grants the program only the folders its resolved config names: point the ` +
        `setting at a path you may use`;
    }
    return `${what}: run through 'deno task run' or the installed 'bucketload' (they grant the paths of the ` +
      `resolved config), or grant that path with --allow-read/--allow-write, or point the setting at a path you may use`;
  }
  return undefined;
}

/** The working directory the user ran from: `deno task` runs in the project folder and keeps it in INIT_CWD. */
export function userCwd(env: Readonly<Record<string, string>>): string {
  return env.BUCKETLOAD_CWD ?? env.INIT_CWD ?? Deno.cwd();
}

/** Reads the config file the flags name, with `env` (the environment by default) for overrides and choosers. */
export async function loadConfigFromEnv(cli: Cli, env: Record<string, string> = readEnv()): Promise<Config> {
  const { [COMMAND_NAME_VAR]: _launchedAs, ...vars } = env;
  return await loadConfig({
    configPath: cli.configPath ?? env.BUCKETLOAD_CONFIG,
    profile: cli.profile ?? env.BUCKETLOAD_PROFILE,
    env: vars,
    overrides: cli.overrides,
    cwd: userCwd(env),
  });
}
