/**
 * Locations, for every source: a listed key refused or turned into a URL
 * that can never leave the bucket, a URL's scheme, `host:port`, and
 * credentials redacted from anything URL-shaped. Each source parses its own
 * `BUCKET_NAME` form (its `kind.ts`).
 *
 * @module
 */

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;

/** The URL scheme `value` starts with, in lower case (`s3`, `https`; `c` for a Windows drive), or `undefined`. */
export function schemeOf(value: string): string | undefined {
  return SCHEME.exec(value)?.[1]?.toLowerCase();
}

/** Replaces the credentials of anything URL-shaped in `text` with `***`. */
export function redactUrl(text: string): string {
  return text.replace(USERINFO, "$1***@").replace(SECRET_PARAM, "$1***");
}

/**
 * A URL's user and password: from `scheme://` through the last `@` before the
 * host, whatever the password holds (a raw `#`, `;`, `/` or `@` included).
 * A path that holds `@` is masked too: safe rather than exact.
 */
const USERINFO = /(\b[A-Za-z][A-Za-z0-9+.-]*:\/\/)\S*?@(?=[^\s@/]*(?:[/?#\s]|$))/g;
/** A query parameter whose name says it holds a secret (`password=`, `sslkey=`, `token=`, …). */
const SECRET_PARAM = /([?&][^=&\s]*(?:pass|secret|token|key)[^=&\s]*=)[^&\s#]*/gi;

/**
 * Why a listed key is refused, or `undefined` when it may be fetched.
 * Refused: a leading `/`, a URL scheme, a `\`, a control character, or an
 * empty, `.` or `..` path segment.
 */
export function refuseReason(key: string): string | undefined {
  // One test for the common case, a key with none of the problems below (a list holds 100,000s of keys).
  if (!ANY_REFUSAL.test(key)) return undefined;
  if (key.startsWith("/")) return "starts with '/'";
  if (SCHEME.test(key)) return "has a URL scheme";
  if (key.includes("\\")) return "contains '\\'";
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(key)) return "contains a control character";
  if (BAD_SEGMENT.test(key)) return "has an empty, '.' or '..' path segment";
  return undefined;
}

/** An empty, `.` or `..` path segment. */
const BAD_SEGMENT = /(?:^|\/)\.{0,2}(?:\/|$)/;
/** Any of the reasons {@linkcode refuseReason} gives. */
// deno-lint-ignore no-control-regex
const ANY_REFUSAL = /^\/|^[A-Za-z][A-Za-z0-9+.-]*:|\\|[\u0000-\u001f\u007f-\u009f]|(?:^|\/)\.{0,2}(?:\/|$)/;

/**
 * The URL of an accepted key under `base`, each segment percent-encoded.
 *
 * @throws {RangeError} when the key is refused or the URL would leave `base`
 */
export function objectUrl(base: URL, key: string): URL {
  const reason = refuseReason(key);
  if (reason !== undefined) throw new RangeError(`Refused key ${JSON.stringify(key)}: ${reason}`);
  const url = new URL(key.split("/").map(encodeURIComponent).join("/"), base);
  if (url.origin !== base.origin || !url.pathname.startsWith(base.pathname)) {
    throw new RangeError(`Refused key ${JSON.stringify(key)}: resolves outside the bucket`);
  }
  return url;
}

/** `host:port` of a URL, the port made explicit. */
export function hostPort(url: URL): string {
  return `${url.hostname}:${url.port || (url.protocol === "https:" ? "443" : "80")}`;
}
