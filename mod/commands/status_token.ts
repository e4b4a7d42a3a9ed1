/**
 * Who may read the status report over HTTP, and on which names.
 *
 * - `STATUS_TOKEN`: a script shows it as `Authorization: Bearer <token>`; a
 *   browser posts it once to the login form and gets a session cookie. The
 *   token never belongs in a URL: Deno's tracing exports each request's
 *   `url.full`, proxies and browsers log URLs, so `?token=` is refused.
 * - The session cookie is `<expiry>.<HMAC-SHA256>`, keyed by the token and a
 *   secret: never the token itself. `serve` draws the secret at random when it
 *   starts, so a cookie dies with the process; the Deno Deploy entry, whose
 *   isolates share nothing, keys it by the token alone. Either way it expires
 *   after {@linkcode SESSION_SECONDS} and dies when the token changes.
 * - The `Host` header (DNS rebinding): a web page cannot rebind an IP address
 *   or `localhost`, only a name it owns, so those are always answered, and any
 *   other name only when it was given (`--allow-host`, the listen name).
 *
 * Secrets are compared in constant time.
 *
 * @module
 */

/** The session cookie's name. */
export const SESSION_COOKIE = "bucketload_session";
/** How long a session cookie is good for: a day. */
export const SESSION_SECONDS = 86_400;

const encoder = new TextEncoder();

const base64url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");

/** Issues and checks the session cookies of one token. */
export class Sessions {
  readonly #key: Promise<CryptoKey>;

  /**
   * Sessions of `token`, keyed also by `secret` (32 random bytes by default:
   * the cookies die with this object; empty: they depend on the token alone).
   */
  constructor(token: string, secret: Uint8Array = crypto.getRandomValues(new Uint8Array(32))) {
    const material = new Uint8Array([...secret, ...encoder.encode(token)]);
    this.#key = crypto.subtle.importKey("raw", material, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  }

  async #mac(expires: number): Promise<string> {
    const signature = await crypto.subtle.sign(
      "HMAC",
      await this.#key,
      encoder.encode(`bucketload session ${expires}`),
    );
    return base64url(new Uint8Array(signature));
  }

  /** A new cookie value, good for {@linkcode SESSION_SECONDS} from `now` (epoch ms). */
  async issue(now = Date.now()): Promise<string> {
    const expires = Math.floor(now / 1000) + SESSION_SECONDS;
    return `${expires}.${await this.#mac(expires)}`;
  }

  /** Whether `value` is a cookie this object issued and it has not expired at `now`. */
  async valid(value: string, now = Date.now()): Promise<boolean> {
    const found = /^(\d{1,12})\.([\w-]{43})$/.exec(value);
    if (found === null) return false;
    const expires = Number(found[1]);
    if (expires * 1000 <= now || expires * 1000 > now + SESSION_SECONDS * 1000) return false;
    return sameSecret(found[2]!, await this.#mac(expires));
  }
}

/** The value of cookie `name` in `request`'s `Cookie` header. */
export function cookieOf(request: Request, name = SESSION_COOKIE): string | undefined {
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const at = part.indexOf("=");
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return undefined;
}

/** Whether `request` came over https: its URL, or a TLS proxy's `X-Forwarded-Proto`. */
export function overHttps(request: Request): boolean {
  const forwarded = request.headers.get("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase();
  return new URL(request.url).protocol === "https:" || forwarded === "https";
}

/** The `Set-Cookie` value that holds `value` (empty: clears the cookie), `Secure` over https. */
export function sessionCookie(value: string, secure: boolean): string {
  const age = value === "" ? 0 : SESSION_SECONDS;
  return `${SESSION_COOKIE}=${value}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${age}${secure ? "; Secure" : ""}`;
}

/** The token of an `Authorization: Bearer …` header. */
export function bearerOf(request: Request): string | undefined {
  return /^Bearer\s+(.+)$/i.exec((request.headers.get("authorization") ?? "").trim())?.[1];
}

/**
 * Whether `request` may see the status: always when no token is set; else
 * with the bearer token, or a valid session cookie. A token in the URL does
 * not count (the handler refuses such a request first).
 */
export async function authorized(request: Request, token: string | undefined, sessions?: Sessions): Promise<boolean> {
  if (token === undefined) return true;
  const bearer = bearerOf(request);
  if (bearer !== undefined) return sameSecret(bearer, token);
  const cookie = cookieOf(request);
  return cookie !== undefined && sessions !== undefined && await sessions.valid(cookie);
}

/** Compares two strings in time that depends on their lengths only. */
export function sameSecret(a: string, b: string): boolean {
  const x = encoder.encode(a), y = encoder.encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/**
 * The name of a `Host` header, lower-case, without its port or a final dot;
 * `undefined` when it is not a host name or an IP address.
 */
export function hostName(host: string): string | undefined {
  const found = /^(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::\d{1,5})?$/i.exec(host.trim());
  return found === null ? undefined : found[1]!.toLowerCase().replace(/\.$/, "");
}

/** Whether `name` (from {@linkcode hostName}) is an IP address: IPv4 dotted, or IPv6 in brackets. */
function isAddress(name: string): boolean {
  return name.startsWith("[") || /^\d{1,3}(\.\d{1,3}){3}$/.test(name);
}

/**
 * Whether the `Host` header `host` may be answered: an IP address or
 * `localhost` always (no web page can rebind those); another name only when
 * it is one of `names` (lower-case). A request without the header (HTTP/1.0)
 * is answered: browsers always send it.
 */
export function hostAllowed(host: string | null, names: ReadonlySet<string>): boolean {
  if (host === null) return true;
  const name = hostName(host);
  return name !== undefined && (isAddress(name) || name === "localhost" || names.has(name));
}

/**
 * The names a server that listens on `listen` answers besides IP addresses
 * and `localhost`: `listen` itself when it is a name, and `allowed`.
 */
export function allowedHosts(listen: string, allowed: readonly string[] = []): Set<string> {
  const names = new Set(allowed.map((name) => name.toLowerCase().replace(/\.$/, "")));
  const own = hostName(listen.includes(":") && !listen.startsWith("[") ? `[${listen}]` : listen);
  if (own !== undefined && !isAddress(own)) names.add(own);
  return names;
}
