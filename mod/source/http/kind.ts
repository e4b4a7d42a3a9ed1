/**
 * The HTTP(S) source's descriptor: a bare host (`http://HOST/`) or an
 * `http(s)://host[:port][/prefix]` URL, whose credentials become HTTP Basic
 * auth and never reach a log.
 *
 * @module
 */
import { hostPort, schemeOf } from "../location.ts";
import type { SourceKind, SourceSpec } from "../kind.ts";

/** An HTTP(S) bucket, described for the worker. */
export interface HttpSpec extends SourceSpec {
  /** The kind's name. */
  readonly kind: "http";
  /** Base URL ending in `/`, without credentials. */
  readonly base: string;
  /** `Basic ...` when the URL carried credentials. */
  readonly authorization: string | undefined;
  /** `REQUEST_TIMEOUT_SECONDS`, in milliseconds: the limit for one attempt, body included. */
  readonly timeoutMs: number;
  /** `RETRIES`: retries after the first attempt. */
  readonly retries: number;
  /** `RETRY_BASE_SECONDS`, in milliseconds: the first backoff delay. */
  readonly retryBaseMs: number;
}

const HOST = /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::\d{1,5})?$/;

/** The base URL (credentials, query and fragment removed) and the credentials as HTTP Basic auth. */
function baseOf(url: URL): { base: URL; authorization: string | undefined } {
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
  return { base: url, authorization };
}

/** HTTP(S) buckets: retries with backoff and `Retry-After`, same-origin redirects (`http.ts`). */
export const httpSource: SourceKind<HttpSpec> = {
  name: "http",
  title: "HTTP(S)",
  forms: "http:, https:",
  bucketName: {
    help: "host, http(s) URL with optional prefix",
    doc:
      "a bare host (`data-engineering-interns.macpaw.io` → `http://HOST/`) or an `http(s)://host[:port][/prefix]` URL, whose credentials (`https://user:pass@host`) are sent as HTTP Basic auth and never logged or stored",
  },
  configure(value, { fetch }) {
    let url: URL;
    if (HOST.test(value)) url = new URL(`http://${value}/`);
    else {
      const scheme = schemeOf(value);
      if (scheme !== "http" && scheme !== "https") return undefined;
      try {
        url = new URL(value);
      } catch {
        // The value is not echoed: a malformed URL may hold a password that redaction cannot find.
        throw new RangeError("expected a valid http(s) URL (the value is not shown: it may hold credentials)");
      }
    }
    const { base, authorization } = baseOf(url);
    return { kind: "http", display: base.href, base: base.href, authorization, ...fetch };
  },
  needs: (spec) => ({ net: [hostPort(new URL(spec.base))] }),
  async open(spec) {
    const { HttpSource } = await import("./http.ts");
    return new HttpSource(new URL(spec.base), spec);
  },
};
