/**
 * The PostgreSQL store's descriptor: named by a `postgres://` URL (the
 * `DATABASE_URL` key, or the plain `DATABASE_URL` variable as Deno Deploy and
 * Heroku-style hosts set it), and its key `CLAIM_TIMEOUT_SECONDS`. The client
 * (npm `postgres`) is loaded only to open it: a SQLite run never loads it.
 *
 * @module
 */
import { ENV_PREFIX } from "../../common/keys.ts";
import { UsageError } from "../../common/errors.ts";
import { redactUrl } from "../../source/location.ts";
import type { StoreKind, StoreSpec } from "../kind.ts";

/** A PostgreSQL database and how runs share it. */
export interface PostgresSpec extends StoreSpec {
  /** The kind's name. */
  readonly kind: "postgres";
  /** The `postgres://` URL, checked to parse (parts it leaves out come from `PG*`). */
  readonly url: string;
  /** `CLAIM_TIMEOUT_SECONDS` in ms. */
  readonly claimTimeoutMs: number;
}

/** The plain variable that names the database, as hosts set it. */
const PLAIN = "DATABASE_URL";

/** The URL checked to be a PostgreSQL URL that parses; an error names `where` and never shows the value. */
function checkDatabaseUrl(raw: string, where: string): string {
  // The value is never shown, not even redacted: a URL that does not parse may hold its password anywhere.
  const fail = (why: string): never => {
    throw new UsageError(
      `Cannot parse ${where}: ${why} ` +
        `(the value is not shown, as it may hold a password): write postgres://USER:PASSWORD@HOST:PORT/DATABASE, ` +
        `and percent-encode special characters in the user and password (# as %23, ; as %3B, @ as %40, ` +
        `/ as %2F, : as %3A, % as %25)`,
      { subject: "DATABASE_URL" },
    );
  };
  if (!/^postgres(ql)?:\/\//i.test(raw)) return fail("expected a postgres:// or postgresql:// URL");
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return fail("not a valid URL");
  }
  if (url.hash !== "") return fail("a '#' starts a fragment, which a database URL has none of");
  try {
    decodeURIComponent(url.username);
    decodeURIComponent(url.password);
  } catch {
    return fail("a '%' in the user or password is not followed by two hex digits");
  }
  return raw;
}

/** The PostgreSQL server's `host:port`, as the client resolves it (URL, then PGHOST/PGPORT, then localhost:5432). */
export function postgresHostPort(url: string, env: Readonly<Record<string, string>>): string {
  const u = new URL(url);
  const host = u.hostname || env.PGHOST || "localhost";
  return `${host}:${u.port || env.PGPORT || "5432"}`;
}

/**
 * PostgreSQL: any number of runs side by side, claiming keys (`store.ts`).
 * The URL is the `DATABASE_URL` key when set anywhere, else the plain
 * variable, which ranks just below the `BUCKETLOAD_*` ones.
 */
export const postgresStore: StoreKind<PostgresSpec> = {
  name: "postgres",
  title: "PostgreSQL",
  key: "DATABASE_URL",
  local: false,
  variables: [PLAIN],
  keys: {
    DATABASE_URL: {
      default: undefined,
      help: "postgres:// URL: use PostgreSQL instead of DATABASE_NAME (also read from plain DATABASE_URL)",
      shownDefault: "(none)",
      doc:
        'a `postgres://` or `postgresql://` URL: load into **PostgreSQL** instead of SQLite (see "PostgreSQL and several workers"). Parts the URL leaves out come from `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, as libpq\'s do (`postgres://` alone takes them all from there). The plain `DATABASE_URL` variable (as Deno Deploy and Heroku-style hosts set it) is read too, ranked between the profile and the `BUCKETLOAD_*` variables: it beats a `DATABASE_NAME` in the file, and `BUCKETLOAD_DATABASE_NAME` beats it. When both are set, each command says in one line which one it used (see "PostgreSQL and several workers"). The password is never logged',
    },
    CLAIM_TIMEOUT_SECONDS: {
      default: "60",
      help: "PostgreSQL: a run silent this long (frozen, killed) loses its claimed keys to other runs; 0 never",
      doc:
        "PostgreSQL: a run silent this long (frozen, killed, its machine gone) is ended by the server and loses its claimed keys to other runs; a live run sends a heartbeat every third of it; `0` never",
      number: { max: 86_400 },
    },
  },
  named(keys, env) {
    const key = keys.get("DATABASE_URL")?.trim() || undefined;
    const plain = env[PLAIN]?.trim() || undefined;
    if (key === undefined && plain === undefined) return undefined;
    const keyWhere = keys.source("DATABASE_URL");
    if (key === undefined) {
      return {
        rank: keys.envRank - 0.5,
        where: `environment variable ${PLAIN}`,
        drop: (other) => `unset ${PLAIN} for this command, or set ${ENV_PREFIX}${other.key}`,
      };
    }
    return {
      rank: keys.rank("DATABASE_URL"),
      where: keyWhere,
      drop: () => `remove ${keyWhere}`,
      notes: plain !== undefined && plain !== key
        ? [`environment variable ${PLAIN} is set too and not used (${keyWhere} outranks it)`]
        : [],
    };
  },
  configure(keys, env) {
    const key = keys.get("DATABASE_URL")?.trim() || undefined;
    const url = key ?? env[PLAIN]?.trim() ?? "";
    const checked = checkDatabaseUrl(
      url,
      key === undefined ? `environment variable ${PLAIN}` : keys.source("DATABASE_URL"),
    );
    return {
      kind: "postgres",
      display: redactUrl(checked),
      url: checked,
      claimTimeoutMs: keys.num("CLAIM_TIMEOUT_SECONDS") * 1000,
    };
  },
  // The client reads PG* (PGPASSWORD, PGHOST, …) for what the URL leaves out.
  needs: (spec, env) => ({ net: [postgresHostPort(spec.url, env)], env: ["PG*"] }),
  async open(spec, { types, driftKeepRuns }) {
    const { PostgresStore } = await import("./mod.ts");
    const store = await PostgresStore.open(spec.url, {
      types,
      claimTimeoutMs: spec.claimTimeoutMs,
      driftKeepRuns: driftKeepRuns ?? 0,
    });
    return { store, close: async () => (await store.close(), false) };
  },
  async openReadOnly(spec, { types }) {
    // Opening only connects: schema changes happen when a run begins.
    const { PostgresStore } = await import("./mod.ts");
    return await PostgresStore.open(spec.url, { types });
  },
};
