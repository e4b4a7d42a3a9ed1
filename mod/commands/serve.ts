/**
 * `serve`: the status page, the status document and a health check over
 * HTTP, read-only. The same handler answers on the Deploy entry.
 *
 * - `GET /`: the status page for people (`page.ts`);
 * - `GET /api/status`: the document `status --json` prints;
 * - `GET /health`: `{"ok": true}`, to anyone;
 * - `POST /login`, `POST /logout`: the browser's session (below).
 *
 * With `STATUS_TOKEN` set, `/` and `/api/status` need it: `Authorization:
 * Bearer …` from a script; from a browser, the login form `/` shows posts it
 * once and gets a session cookie (`status_token.ts`). A token in the URL
 * (`?token=`) is refused: Deno's tracing, proxies and browsers record URLs.
 * Only the names the server listens as, IP addresses and `localhost` are
 * answered (DNS rebinding; `--allow-host` adds names).
 *
 * `serve` speaks HTTP/1.1 itself over `Deno.listen` rather than through
 * `Deno.serve`, which ends the process when `accept` fails (EMFILE: out of
 * file descriptors) and neither caps connections nor times out a request that
 * never completes. Here connections are capped, a request must arrive whole
 * within {@linkcode SERVE_LIMITS}`.requestTimeoutMs` (slowloris), each
 * connection answers one request and is closed, and an accept error is logged
 * (at most once a minute) and waited out.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { Config } from "../config/config.ts";
import { UsageError } from "../common/errors.ts";
import {
  allowedHosts,
  authorized,
  bearerOf,
  hostAllowed,
  overHttps,
  sameSecret,
  sessionCookie,
  Sessions,
} from "./status_token.ts";
import type { StatusReport } from "../store/status.ts";
import { configReport } from "./status.ts";
import { inSpan, markFailed } from "../common/telemetry.ts";
import { renderLogin, renderPage } from "./page.ts";

/** A JSON response, pretty-printed (people read it with curl). */
export const jsonResponse = (body: unknown, status = 200): Response =>
  new Response(JSON.stringify(body, null, 2) + "\n", {
    status,
    headers: {
      "content-type": "application/json; charset=utf-8",
      "x-content-type-options": "nosniff",
      "cache-control": "no-store",
    },
  });

/** What the handler serves: the report as it is now, and who may see it. */
export interface StatusSource {
  /** The report, read at each request (a run in progress shows its last commit). */
  report(): Promise<StatusReport>;
  /** `STATUS_TOKEN`: what a request must show; `undefined`: open. */
  readonly token: string | undefined;
  /** Fields added to the JSON document (the Deploy entry's schedule). */
  readonly extra?: Readonly<Record<string, unknown>>;
  /**
   * The session cookies of `token`: `serve` makes them with a random key (a
   * cookie dies with the process); by default they depend on the token alone.
   */
  readonly sessions?: Sessions | undefined;
  /**
   * The names answered besides IP addresses and `localhost` (lower-case);
   * `undefined`: any `Host` (the Deploy entry, on the public internet).
   */
  readonly hosts?: ReadonlySet<string> | undefined;
}

/** The paths the handler answers; `/status` stays as the Deploy entry's older name of `/api/status`. */
export const ROUTES: ReadonlySet<string> = new Set(["/", "/api/status", "/status", "/health", "/login", "/logout"]);

/** What a request that shows no credential is told. */
export const UNAUTHORIZED = "unauthorized: send Authorization: Bearer <STATUS_TOKEN>, or log in with the form at /";
/** What a request with `?token=` is told, right token or not. */
export const TOKEN_IN_URL: string = "unauthorized: a token in the URL is refused (URLs are logged and traced): " +
  "log in with the form at /, or send Authorization: Bearer <STATUS_TOKEN>";
/** What a request for another name than the server's is told (DNS rebinding). */
export const MISDIRECTED: string =
  "misdirected request: this server answers to its IP addresses, localhost and the name it " +
  "listens as; behind a reverse proxy, name the proxy's host with --allow-host";

/** The largest login form body read (the token and a field name). */
const MAX_FORM_BYTES = 4096;

/** One JSON line, for a refusal. */
const refusal = (status: number, error: string, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify({ error }) + "\n", {
    status,
    headers: { "content-type": "application/json", "x-content-type-options": "nosniff", ...headers },
  });

const CHALLENGE = { "www-authenticate": 'Bearer realm="bucketload"' };

/** An HTML document: nothing to load from anywhere, nothing to run, no frame; forms post to this server only. */
const htmlResponse = (html: string, status = 200, headers: Record<string, string> = {}) =>
  new Response(html, {
    status,
    headers: {
      "content-type": "text/html; charset=utf-8",
      "x-content-type-options": "nosniff",
      // A key that slipped past escaping still could not act.
      "content-security-policy":
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
      "x-frame-options": "DENY",
      "referrer-policy": "no-referrer",
      "cache-control": "no-store",
      ...headers,
    },
  });

/** A 303 to the page (relative: the page may sit under a proxy's prefix), setting `cookie`. */
const toPage = (cookie: string) =>
  new Response(null, { status: 303, headers: { location: "./", "set-cookie": cookie, "cache-control": "no-store" } });

/** The text of a body of at most `max` bytes; `undefined` when it is longer. */
async function boundedText(request: Request, max: number): Promise<string | undefined> {
  if (request.body === null) return "";
  const reader = request.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > max) {
      await reader.cancel();
      return undefined;
    }
    parts.push(value);
  }
  return new TextDecoder().decode(concat(parts));
}

/** Whether a browser says the form was posted from another site (or a sibling subdomain). */
const crossSite = (request: Request) =>
  ["cross-site", "same-site"].includes(request.headers.get("sec-fetch-site") ?? "");

/** `POST /login`: the form's token, checked in constant time; right, a session cookie and back to the page. */
async function logIn(request: Request, token: string | undefined, sessions: Sessions | undefined): Promise<Response> {
  if (token === undefined || sessions === undefined) return toPage(sessionCookie("", overHttps(request)));
  const type = request.headers.get("content-type")?.split(";")[0]?.trim().toLowerCase();
  if (type !== "application/x-www-form-urlencoded") {
    return refusal(415, "unsupported: post the login form (application/x-www-form-urlencoded, field token)");
  }
  const body = await boundedText(request, MAX_FORM_BYTES);
  if (body === undefined) return refusal(413, `too large: the login form takes at most ${MAX_FORM_BYTES} bytes`);
  const given = new URLSearchParams(body).get("token") ?? "";
  if (!sameSecret(given, token)) return htmlResponse(renderLogin(true), 401, CHALLENGE);
  return toPage(sessionCookie(await sessions.issue(), overHttps(request)));
}

/** The request handler over `source`. */
export function statusHandler(source: StatusSource): (request: Request) => Promise<Response> {
  const { token } = source;
  const sessions = source.sessions ?? (token === undefined ? undefined : new Sessions(token, new Uint8Array()));
  return async (request) => {
    const url = new URL(request.url);
    const { pathname } = url;
    if (!ROUTES.has(pathname)) return jsonResponse({ error: "not found" }, 404);
    const form = pathname === "/login" || pathname === "/logout";
    if (form && request.method !== "POST") return refusal(405, "only POST", { allow: "POST" });
    if (!form && request.method !== "GET" && request.method !== "HEAD") {
      return refusal(405, "only GET", { allow: "GET, HEAD" });
    }
    if (pathname === "/health") return jsonResponse({ ok: true });
    if (source.hosts !== undefined && !hostAllowed(request.headers.get("host"), source.hosts)) {
      return refusal(421, MISDIRECTED);
    }
    // Refused whether or not it is right, so that nobody keeps putting it there.
    if (url.searchParams.has("token")) return refusal(401, TOKEN_IN_URL, CHALLENGE);
    if (form) {
      if (crossSite(request)) return refusal(403, "forbidden: a form posted from another site");
      return pathname === "/login"
        ? await logIn(request, token, sessions)
        : toPage(sessionCookie("", overHttps(request)));
    }
    const page = pathname === "/";
    if (!(await authorized(request, token, sessions))) {
      return page ? htmlResponse(renderLogin(), 401, CHALLENGE) : refusal(401, UNAUTHORIZED, CHALLENGE);
    }
    let report: StatusReport;
    try {
      report = await source.report();
    } catch (error) {
      return jsonResponse({ error: (error as Error).message }, 503);
    }
    if (!page) return jsonResponse({ ...source.extra, ...report });
    return htmlResponse(renderPage(report, new Date(), { logout: token !== undefined && !bearerOf(request) }));
  };
}

/** The limits of `serve`'s HTTP server. */
export interface ServeLimits {
  /**
   * Connections held at once. At the cap, a new connection closes the oldest
   * one that has not sent its whole request yet, or is closed itself when
   * every one is being answered. Well under a default `ulimit -n` (1024).
   */
  readonly maxConnections: number;
  /** How long a connection has, from its accept, to send its whole request (slowloris, idle sockets). */
  readonly requestTimeoutMs: number;
  /** How long a connection is held in all, its answer included (a client that does not read). */
  readonly connectionTimeoutMs: number;
  /** The request line and headers, at most (431 past it). */
  readonly maxHeaderBytes: number;
  /** A request body, at most (413 past it): only the login form has one. */
  readonly maxBodyBytes: number;
}

/** `serve`'s limits. */
export const SERVE_LIMITS: ServeLimits = {
  maxConnections: 128,
  requestTimeoutMs: 10_000,
  connectionTimeoutMs: 60_000,
  maxHeaderBytes: 16_384,
  maxBodyBytes: MAX_FORM_BYTES,
};

/** Options of {@linkcode serveAction}. */
export interface ServeOptions {
  /** `--host`: the address to listen on. */
  readonly host: string;
  /** `--port`: the port to listen on. */
  readonly port: number;
  /** Names answered besides IP addresses, `localhost` and `host` (`--allow-host`: a reverse proxy's). */
  readonly allowHosts?: readonly string[];
  /** Stops the server. */
  readonly signal: AbortSignal;
  /** Told the address once the server listens. */
  readonly onListen?: (address: { hostname: string; port: number }) => void;
  /** Other limits than {@linkcode SERVE_LIMITS} (tests). */
  readonly limits?: Partial<ServeLimits>;
}

/** `serve`: answers until `signal` stops it; returns 0. */
export async function serveAction(config: Config, options: ServeOptions): Promise<number> {
  const logger = getLogger(["bucketload", "serve"]);
  const token = config.statusToken;
  if (token === undefined) {
    logger.warn(
      "STATUS_TOKEN is not set: anyone who can reach {host} sees the status page (keys, reasons, raw records)",
      { host: options.host },
    );
  }
  const handler = statusHandler({
    report: configReport(config),
    token,
    // A random key of this process: its cookies die with it.
    sessions: token === undefined ? undefined : new Sessions(token),
    hosts: allowedHosts(options.host, options.allowHosts),
  });
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({ hostname: options.host, port: options.port, transport: "tcp" });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new UsageError(
        `Cannot listen on ${options.host}:${options.port}: the address is in use (give --port N for a free port)`,
        { subject: "--port" },
      );
    }
    if (error instanceof Deno.errors.AddrNotAvailable) {
      throw new UsageError(
        `Cannot listen on ${options.host}:${options.port}: the address is not one of this machine's (give --host H)`,
        { subject: "--host" },
      );
    }
    throw error;
  }
  const { hostname, port } = listener.addr;
  const shown = hostname.includes(":") ? `[${hostname}]` : hostname;
  logger.info("Serving the status page on http://{hostname}:{port}/", { hostname: shown, port });
  options.onListen?.({ hostname, port });
  await serveHttp(listener, handler, options.signal, { ...SERVE_LIMITS, ...options.limits });
  return 0;
}

const encoder = new TextEncoder();

function concat(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Waits `ms`, or until `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** One accepted connection: held until it is answered, times out, or is closed to make room. */
class Connection {
  /** Its request arrived whole: it is being answered, and is not closed to make room. */
  answering = false;
  #closed = false;
  readonly #timers: ReturnType<typeof setTimeout>[] = [];

  constructor(readonly conn: Deno.Conn, readonly held: Set<Connection>) {
    held.add(this);
  }

  /** Closes it after `ms`. */
  closeAfter(ms: number): void {
    this.#timers.push(setTimeout(() => this.close(), ms));
  }

  /** Closes it (a pending read or write fails); the first call only. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.held.delete(this);
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }
}

/** A request read off a connection, or why it was not one. */
type Incoming =
  | { readonly request: Request; readonly method: string; readonly path: string; readonly version: string }
  | { readonly status: number; readonly error: string };

const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\/[\x21-\x7e]*) HTTP\/1\.([01])$/;
const HEADER = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;
// Control characters but the tab: HTTP field values may hold none.
// deno-lint-ignore no-control-regex
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;

/** The end of the head (`\r\n\r\n`) in `data`, looking from `from`; -1 when not there yet. */
function headEnd(data: Uint8Array, from: number): number {
  for (let i = Math.max(0, from); i + 3 < data.length; i++) {
    if (data[i] === 13 && data[i + 1] === 10 && data[i + 2] === 13 && data[i + 3] === 10) return i;
  }
  return -1;
}

/**
 * Reads one request (line, headers, a `Content-Length` body) off `conn`, as
 * strictly as a server answering one request per connection may: no chunked
 * body, one `Host` (required in HTTP/1.1), no folded or control characters.
 * `undefined` when the peer closes first.
 */
async function readRequest(conn: Deno.Conn, base: string, limits: ServeLimits): Promise<Incoming | undefined> {
  const chunk = new Uint8Array(8192);
  let data: Uint8Array<ArrayBuffer> = new Uint8Array(0);
  let end = -1;
  while (end < 0) {
    const n = await conn.read(chunk);
    if (n === null) return undefined;
    const from = data.length - 3;
    data = concat([data, chunk.subarray(0, n)]);
    end = headEnd(data, from);
    if ((end < 0 ? data.length : end) > limits.maxHeaderBytes) {
      return { status: 431, error: `the request's line and headers are over ${limits.maxHeaderBytes} bytes` };
    }
  }
  // Bytes as Latin-1 characters, as HTTP fields are.
  const lines = String.fromCharCode(...data.subarray(0, end)).replace(/^(\r\n)+/, "").split("\r\n");
  const line = REQUEST_LINE.exec(lines[0]!);
  if (line === null) return { status: 400, error: "bad request: the request line does not parse" };
  const [, method, target, minor] = line as unknown as [string, string, string, string];
  const headers = new Headers();
  let hosts = 0;
  for (const text of lines.slice(1)) {
    const field = HEADER.exec(text);
    if (field === null || BAD_VALUE.test(field[2]!)) {
      return { status: 400, error: "bad request: a header does not parse" };
    }
    if (field[1]!.toLowerCase() === "host") hosts++;
    try {
      headers.append(field[1]!, field[2]!);
    } catch {
      return { status: 400, error: "bad request: a header does not parse" };
    }
  }
  if (hosts > 1 || (hosts === 0 && minor === "1")) {
    return { status: 400, error: "bad request: an HTTP/1.1 request has one Host header" };
  }
  if (headers.has("transfer-encoding")) {
    return { status: 501, error: "not implemented: a chunked request body; send Content-Length" };
  }
  const declared = headers.get("content-length");
  if (declared !== null && !/^\d{1,10}$/.test(declared)) {
    return { status: 400, error: "bad request: Content-Length does not parse" };
  }
  const length = Number(declared ?? 0);
  if (length > limits.maxBodyBytes) {
    return { status: 413, error: `too large: a body over ${limits.maxBodyBytes} bytes` };
  }
  let body: Uint8Array<ArrayBuffer> = data.subarray(end + 4);
  while (body.length < length) {
    const n = await conn.read(chunk);
    if (n === null) return undefined;
    body = concat([body, chunk.subarray(0, n)]);
  }
  const init: RequestInit = { method, headers };
  if (length > 0 && method !== "GET" && method !== "HEAD") init.body = body.slice(0, length);
  try {
    // The URL is built on the listen address, never on the Host header.
    const request = new Request(base + target, init);
    return { request, method, path: new URL(request.url).pathname, version: `1.${minor}` };
  } catch {
    return { status: 400, error: "bad request: not a request this server takes" };
  }
}

const REASONS: Readonly<Record<number, string>> = {
  200: "OK",
  303: "See Other",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  421: "Misdirected Request",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
};

/** Writes `response` whole on `conn` (its body left out for HEAD), ending the exchange (`Connection: close`). */
async function writeResponse(conn: Deno.Conn, response: Response, head: boolean): Promise<void> {
  const body = new Uint8Array(await response.arrayBuffer());
  let text = `HTTP/1.1 ${response.status} ${REASONS[response.status] ?? ""}\r\n`;
  for (const [name, value] of response.headers) {
    if (!["content-length", "connection", "transfer-encoding", "date"].includes(name)) text += `${name}: ${value}\r\n`;
  }
  text += `content-length: ${body.length}\r\ndate: ${new Date().toUTCString()}\r\nconnection: close\r\n\r\n`;
  let bytes = concat([encoder.encode(text), head ? new Uint8Array(0) : body]);
  while (bytes.length > 0) bytes = bytes.subarray(await conn.write(bytes));
}

/** Reads, answers and closes one connection; never throws. */
async function answer(
  held: Connection,
  handler: (request: Request) => Promise<Response>,
  base: string,
  limits: ServeLimits,
): Promise<void> {
  const logger = getLogger(["bucketload", "serve"]);
  const waiting = setTimeout(() => held.close(), limits.requestTimeoutMs);
  held.closeAfter(limits.connectionTimeoutMs);
  try {
    const incoming = await readRequest(held.conn, base, limits);
    clearTimeout(waiting);
    if (incoming === undefined) return;
    held.answering = true;
    if ("error" in incoming) {
      await writeResponse(held.conn, refusal(incoming.status, incoming.error), false);
      return;
    }
    const { request, method, path, version } = incoming;
    // A server span as Deno's would be, named by the route; never the query, nor a path that is not a route.
    const route = ROUTES.has(path) ? path : undefined;
    const attributes = {
      "http.request.method": method,
      "url.scheme": "http",
      "network.protocol.version": version,
      ...(route === undefined ? {} : { "http.route": route, "url.path": route }),
    };
    const response = await inSpan(route === undefined ? method : `${method} ${route}`, attributes, async (span) => {
      let response: Response;
      try {
        response = await handler(request);
      } catch (error) {
        logger.error("The status page failed: {error}", { error: (error as Error).message });
        response = refusal(500, "internal error: see the server's log");
      }
      span.setAttribute("http.response.status_code", response.status);
      if (response.status >= 500) markFailed(span, String(response.status));
      return response;
    });
    await writeResponse(held.conn, response, method === "HEAD");
  } catch {
    // Closed under it (timed out, made room for another), or reset by the peer.
  } finally {
    clearTimeout(waiting);
    held.close();
  }
}

/**
 * Answers connections on `listener` with `handler` until `signal` aborts,
 * within `limits`; resolves once the listener and every connection are
 * closed. A failed accept (EMFILE: no file descriptor left) closes the oldest
 * connection still waiting for its request, else waits (10 ms, doubling to
 * 1 s), and is logged at most once a minute; it never ends the server.
 */
export async function serveHttp(
  listener: Deno.TcpListener,
  handler: (request: Request) => Promise<Response>,
  signal: AbortSignal,
  limits: ServeLimits = SERVE_LIMITS,
): Promise<void> {
  const logger = getLogger(["bucketload", "serve"]);
  const { hostname, port } = listener.addr;
  const base = `http://${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`;
  const held = new Set<Connection>();
  const answers = new Set<Promise<void>>();
  /** Closes the oldest connection that has not sent its request; whether there was one. */
  const makeRoom = () => {
    for (const connection of held) {
      if (!connection.answering) {
        connection.close();
        return true;
      }
    }
    return false;
  };
  const stop = () => {
    try {
      listener.close();
    } catch { /* closed */ }
    while (makeRoom()) { /* close every waiting connection */ }
    // Those being answered get a few seconds to finish.
    for (const connection of held) connection.closeAfter(5_000);
  };
  if (signal.aborted) stop();
  else signal.addEventListener("abort", stop, { once: true });
  let backoff = 0;
  let warned = -Infinity;
  while (!signal.aborted) {
    let conn: Deno.TcpConn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (signal.aborted || error instanceof Deno.errors.BadResource) break;
      if (performance.now() - warned >= 60_000) {
        warned = performance.now();
        logger.warn(
          "Cannot accept a connection: {error}; closing the oldest waiting connection or waiting, and serving on " +
            "(said at most once a minute)",
          { error: (error as Error).message },
        );
      }
      if (!makeRoom()) {
        backoff = Math.min(1000, Math.max(10, backoff * 2));
        await pause(backoff, signal);
      }
      continue;
    }
    backoff = 0;
    if (held.size >= limits.maxConnections && !makeRoom()) {
      conn.close();
      continue;
    }
    const answered = answer(new Connection(conn, held), handler, base, limits);
    answers.add(answered);
    answered.finally(() => answers.delete(answered));
  }
  signal.removeEventListener("abort", stop);
  await Promise.all(answers);
}
