/**
 * `serve`: the status page, the status document and a health check over
 * HTTP, read-only. The same handler answers on the Deploy entry.
 *
 * - `GET /`: the status page for people (`app/page.ts`);
 * - `GET /api/status`: the document `status --json` prints;
 * - `GET /health`: `{"ok": true}`, to anyone.
 *
 * With `STATUS_TOKEN` set, `/` and `/api/status` need it (`Authorization:
 * Bearer …` or `?token=…`) and answer 401 otherwise.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Config } from "../config.ts";
import { UsageError } from "../errors.ts";
import { authorized } from "../status_token.ts";
import { openStoreReadOnly, storeDisplay } from "../store/open.ts";
import { emptyStatus, type StatusReport } from "../store/status.ts";
import { escapeHtml, renderPage } from "./page.ts";

/** A JSON response, pretty-printed (people read it with curl). */
export const jsonResponse = (body: unknown, status = 200): Response =>
  new Response(JSON.stringify(body, null, 2) + "\n", {
    status,
    headers: { "content-type": "application/json; charset=utf-8", "x-content-type-options": "nosniff" },
  });

/** What the handler serves: the report as it is now, and who may see it. */
export interface StatusSource {
  /** The report, read at each request (a run in progress shows its last commit). */
  report(): Promise<StatusReport>;
  readonly token: string | undefined;
  /** Fields added to the JSON document (the Deploy entry's schedule). */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/** The request handler over `source`. `/status` stays as the Deploy entry's older name of `/api/status`. */
export function statusHandler(source: StatusSource): (request: Request) => Promise<Response> {
  return async (request) => {
    const url = new URL(request.url);
    const { pathname } = url;
    if (request.method !== "GET" && request.method !== "HEAD") return jsonResponse({ error: "only GET" }, 405);
    if (pathname === "/health") return jsonResponse({ ok: true });
    const page = pathname === "/";
    if (!page && pathname !== "/api/status" && pathname !== "/status") return jsonResponse({ error: "not found" }, 404);
    if (!authorized(request, url, source.token)) {
      return new Response(
        JSON.stringify({
          error: "unauthorized: send Authorization: Bearer <STATUS_TOKEN>, or add ?token=<STATUS_TOKEN> to the URL",
        }) + "\n",
        {
          status: 401,
          headers: { "content-type": "application/json", "www-authenticate": 'Bearer realm="bucketload"' },
        },
      );
    }
    let report: StatusReport;
    try {
      report = await source.report();
    } catch (error) {
      return jsonResponse({ error: (error as Error).message }, 503);
    }
    if (!page) return jsonResponse({ ...source.extra, ...report });
    const token = url.searchParams.get("token");
    const html = renderPage(
      report,
      new Date(),
      token === null ? "" : `?token=${escapeHtml(encodeURIComponent(token))}`,
    );
    return new Response(html, {
      headers: {
        "content-type": "text/html; charset=utf-8",
        "x-content-type-options": "nosniff",
        // Nothing to load from anywhere, nothing to run: a key that slipped past escaping still could not act.
        "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
        "referrer-policy": "no-referrer",
      },
    });
  };
}

/** The config's status report from a read-only store, opened for each call (`status`, each request of `serve`). */
export function configReport(config: Config): () => Promise<StatusReport> {
  return async () => {
    const store = await openStoreReadOnly(config);
    try {
      return store === undefined ? emptyStatus(storeDisplay(config)) : await store.status();
    } finally {
      await store?.close();
    }
  };
}

/** Options of {@linkcode serveAction}. */
export interface ServeOptions {
  readonly host: string;
  readonly port: number;
  /** Stops the server. */
  readonly signal: AbortSignal;
  /** Told the address once the server listens. */
  readonly onListen?: (address: { hostname: string; port: number }) => void;
}

/** `serve`: answers until `signal` stops it; returns 0. */
export async function serveAction(config: Config, options: ServeOptions): Promise<number> {
  const logger = getLogger(["bucketload", "serve"]);
  if (config.statusToken === undefined) {
    logger.warn(
      "STATUS_TOKEN is not set: anyone who can reach {host} sees the status page (keys, reasons, raw records)",
      { host: options.host },
    );
  }
  let server: Deno.HttpServer;
  try {
    server = Deno.serve({
      hostname: options.host,
      port: options.port,
      signal: options.signal,
      onListen: (address) => {
        logger.info("Serving the status page on http://{hostname}:{port}/", { ...address });
        options.onListen?.(address);
      },
    }, statusHandler({ report: configReport(config), token: config.statusToken }));
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse || error instanceof Deno.errors.AddrNotAvailable) {
      throw new UsageError(`Cannot listen on ${options.host}:${options.port}: ${(error as Error).message}`, {
        subject: "--port",
      });
    }
    throw error;
  }
  await server.finished;
  return 0;
}
