/**
 * Parsing `BUCKET_NAME` into where the bucket lives, and turning a listed key
 * into a location that can never leave the bucket.
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Where a bucket lives: an HTTP(S) base URL, a local folder, or an S3 bucket (and prefix). */
export type BucketLocation =
  | {
    readonly kind: "http";
    /** Base URL ending in `/`, without credentials. */
    readonly base: URL;
    /** `Basic ...` when the URL carried credentials. */
    readonly authorization: string | undefined;
    /** The base URL safe to log: credentials removed. */
    readonly display: string;
  }
  | { readonly kind: "file"; readonly root: string; readonly display: string }
  | {
    readonly kind: "s3";
    /** The bucket's name. */
    readonly bucket: string;
    /** The key prefix, ending in `/`, or empty. */
    readonly prefix: string;
    /** `s3://bucket/prefix/`. */
    readonly display: string;
  };

/** S3 bucket names: 3–63 lower-case letters, digits, dots and hyphens (and underscores, which old buckets have). */
const S3_BUCKET = /^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/;

const HOST = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::\d{1,5})?$/;
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):/;

/**
 * Parses a `BUCKET_NAME` value. A bare host means `http://HOST/`; `http(s)://`
 * URLs may carry a port and a prefix; `file:` URLs and paths (starting with
 * `.`, `/` or `~`, or holding a `/`) name a local folder, resolved against
 * `baseDir`.
 *
 * @throws {RangeError} on an empty value or an unsupported scheme
 */
export function parseBucketLocation(value: string, baseDir: string): BucketLocation {
  const trimmed = value.trim();
  if (trimmed === "") throw new RangeError("expected a host, URL or folder, got an empty value");
  if (HOST.test(trimmed)) return httpLocation(new URL(`http://${trimmed}/`));
  const scheme = SCHEME.exec(trimmed)?.[1]?.toLowerCase();
  if (scheme === "http" || scheme === "https") {
    let url: URL;
    try {
      url = new URL(trimmed);
    } catch {
      // The value is not echoed: a malformed URL may hold a password that redaction cannot find.
      throw new RangeError("expected a valid http(s) URL (the value is not shown: it may hold credentials)");
    }
    return httpLocation(url);
  }
  if (scheme === "s3") {
    const rest = trimmed.slice("s3://".length);
    if (!trimmed.toLowerCase().startsWith("s3://")) throw new RangeError("expected s3://bucket[/prefix]");
    const slash = rest.indexOf("/");
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    let prefix = slash < 0 ? "" : rest.slice(slash + 1);
    if (!S3_BUCKET.test(bucket)) {
      throw new RangeError(
        `expected s3://bucket[/prefix] with a valid bucket name, got bucket ${JSON.stringify(bucket)}`,
      );
    }
    if (prefix !== "" && !prefix.endsWith("/")) prefix += "/";
    if (prefix !== "" && refuseReason(prefix.slice(0, -1)) !== undefined) {
      throw new RangeError(`the prefix ${JSON.stringify(prefix)} ${refuseReason(prefix.slice(0, -1))}`);
    }
    return { kind: "s3", bucket, prefix, display: `s3://${bucket}/${prefix}` };
  }
  if (scheme === "file") {
    const root = fileURLToPath(trimmed);
    return { kind: "file", root, display: root };
  }
  if (scheme !== undefined && scheme.length > 1) {
    throw new RangeError(`unsupported scheme '${scheme}:', expected http:, https:, s3:, file: or a folder path`);
  }
  const root = isAbsolute(trimmed) ? trimmed : resolve(baseDir, trimmed);
  return { kind: "file", root, display: root };
}

function httpLocation(url: URL): BucketLocation {
  let authorization: string | undefined;
  if (url.username !== "" || url.password !== "") {
    const user = decodeURIComponent(url.username), pass = decodeURIComponent(url.password);
    authorization = `Basic ${btoa(String.fromCharCode(...new TextEncoder().encode(`${user}:${pass}`)))}`;
    url.username = "";
    url.password = "";
  }
  url.search = "";
  url.hash = "";
  if (!url.pathname.endsWith("/")) url.pathname += "/";
  return { kind: "http", base: url, authorization, display: url.href };
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
