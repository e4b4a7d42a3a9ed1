/**
 * A bucket served over HTTP(S), e.g. an anonymous S3 website endpoint.
 * Retries 429, 5xx, network errors and timeouts with jittered exponential
 * backoff (p-retry), honouring `Retry-After`. Never leaves the bucket's origin.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import pRetry, { AbortError } from "p-retry";
import { hostPort, objectUrl, redactUrl } from "../location.ts";
import { type BucketSource, type FetchResult, type GetOptions, guardStream, readCapped } from "../source.ts";

const logger = getLogger(["bucketload", "fetch"]);

/** The longest `Retry-After` honoured; a longer one is cut to this. */
export const MAX_RETRY_AFTER_MS = 120_000;
/** Same-origin redirects followed before giving up. */
export const MAX_REDIRECTS = 5;

/** Options of {@linkcode HttpSource}. */
export interface HttpSourceOptions {
  /** Sent as `Authorization`, e.g. for credentials taken out of the URL. */
  readonly authorization?: string | undefined;
  /** Limit for one attempt, body included. @default {30_000} */
  readonly timeoutMs?: number;
  /** Retries after the first attempt. @default {4} */
  readonly retries?: number;
  /** First backoff delay; doubles each retry, times a random 1–2. @default {500} */
  readonly retryBaseMs?: number;
  /** The fetch to use (a signing one for S3); tests may wrap it. @default {globalThis.fetch} */
  readonly fetch?: typeof fetch;
  /**
   * Reads a 400/403/404 answer's body and returns why retrying (now or on a
   * later run) cannot help, e.g. S3's `SignatureDoesNotMatch`; the object is
   * then failed with that reason instead of missing.
   */
  readonly explainRefusal?: ((res: Response) => Promise<string | undefined>) | undefined;
}

/** A failure worth another attempt. */
class RetryableError extends Error {
  constructor(message: string, readonly retryAfterMs: number | undefined = undefined) {
    super(message);
    this.name = "RetryableError";
  }
}

/** Parses `Retry-After` (seconds or an HTTP-date) into milliseconds from `now`. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const trimmed = value.trim();
  const ms = /^\d+(\.\d+)?$/.test(trimmed) ? Number(trimmed) * 1000 : Date.parse(trimmed) - now;
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(Math.max(ms, 0), MAX_RETRY_AFTER_MS);
}

/** Waits `ms`, or rejects with the signal's reason once it aborts. */
function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", abort);
      resolve();
    }
    function abort() {
      clearTimeout(timer);
      reject(signal!.reason);
    }
    signal?.addEventListener("abort", abort, { once: true });
  });
}

/**
 * Names the cause of a failed request in a person's terms: refused, DNS,
 * TLS, reset, timed out or permission denied, with the host and port.
 */
export function networkCause(error: unknown, url: URL): string {
  const where = hostPort(url);
  const text = `${error instanceof Error ? error.message : String(error)} ${
    error instanceof Error && error.cause !== undefined ? String(error.cause) : ""
  }`;
  if (error instanceof DOMException && (error.name === "TimeoutError" || error.name === "AbortError")) {
    return `${where}: timed out`;
  }
  if (/refused/i.test(text)) return `${where}: connection refused`;
  if (/dns error|lookup|name or service not known|nodename nor servname/i.test(text)) {
    return `${where}: DNS lookup failed for ${url.hostname}`;
  }
  if (/certificate|tls|ssl|handshake|InvalidContentType|CorruptMessage/i.test(text)) {
    return `${where}: TLS error: ${cleanCause(text.replace(/^.*?(tls|certificate)/i, "$1")).slice(0, 160)}`;
  }
  if (/reset|broken pipe|connection closed|unexpected eof/i.test(text)) return `${where}: connection reset`;
  if (/blocked/i.test(text)) return `${where}: ${cleanCause(text)}`;
  return `${where}: ${cleanCause(text).slice(0, 200)}`;
}

/**
 * A fetch error's words without what does not belong in a log line or a
 * stored reason: URLs lose their user, password, query and fragment (a
 * redirect's presigned signature), and Deno's wrapping ("fetch failed",
 * "error sending request from <local address> for <url> (host:port): client
 * error (SendRequest):") goes, leaving the cause.
 */
export function cleanCause(text: string): string {
  return text
    .replace(/\bTypeError: |\bfetch failed\s*(Error: )?/g, "")
    .replace(/error sending request(?: from \S+)? for \S+(?: \([^)]*\))?: (?:client error \(\w+\): )?/g, "")
    .replace(/\bhttps?:\/\/[^\s)"']+/gi, (u) => {
      try {
        const url = new URL(u);
        // Nothing to take out: the URL as written (an origin keeps no trailing slash).
        if (url.username === "" && url.password === "" && url.search === "" && url.hash === "") return u;
        url.username = "";
        url.password = "";
        url.search = "";
        url.hash = "";
        return url.href;
      } catch {
        return "<url>";
      }
    })
    .replace(/\s+/g, " ")
    .trim();
}

function describeError(error: unknown): string {
  if (error instanceof DOMException && (error.name === "TimeoutError" || error.name === "AbortError")) {
    return "timed out";
  }
  return cleanCause(redactUrl(error instanceof Error ? error.message : String(error)));
}

/** Objects under an HTTP(S) base URL. */
export class HttpSource implements BucketSource {
  readonly display: string;
  readonly #base: URL;
  readonly #headers: Headers;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #retryBaseMs: number;
  readonly #fetch: typeof fetch;
  readonly #explainRefusal: ((res: Response) => Promise<string | undefined>) | undefined;

  /** A source rooted at `base`, which must end in `/`. */
  constructor(base: URL, options: HttpSourceOptions = {}) {
    const { authorization, timeoutMs = 30_000, retries = 4, retryBaseMs = 500, fetch = globalThis.fetch } = options;
    this.#base = new URL(base.href);
    if (!this.#base.pathname.endsWith("/")) this.#base.pathname += "/";
    this.display = redactUrl(this.#base.href);
    this.#headers = new Headers({ "accept": "*/*", "user-agent": "bucketload" });
    if (authorization !== undefined) this.#headers.set("authorization", authorization);
    this.#timeoutMs = timeoutMs;
    this.#retries = retries;
    this.#retryBaseMs = retryBaseMs;
    this.#fetch = fetch;
    this.#explainRefusal = options.explainRefusal;
  }

  /** Fetches one object with retries. Never throws. */
  async get(key: string, options: GetOptions): Promise<FetchResult> {
    const { signal, ifUnchanged } = options;
    let url: URL;
    try {
      url = objectUrl(this.#base, key);
    } catch (error) {
      return { kind: "failed", reason: (error as Error).message };
    }
    try {
      const headers = new Headers(this.#headers);
      if (ifUnchanged?.etag !== undefined) headers.set("if-none-match", ifUnchanged.etag);
      if (ifUnchanged?.lastModified !== undefined) headers.set("if-modified-since", ifUnchanged.lastModified);
      return await pRetry(() => this.#attempt(url, options, headers), {
        signal,
        retries: this.#retries,
        minTimeout: this.#retryBaseMs,
        factor: 2,
        randomize: true,
        maxTimeout: 60_000,
        shouldRetry: ({ error }) => error instanceof RetryableError,
        onFailedAttempt: async ({ error, attemptNumber, retriesLeft, retryDelay }) => {
          if (!(error instanceof RetryableError) || retriesLeft === 0) return;
          logger.info("Retrying {key} after attempt {attempt}: {reason}", {
            key,
            attempt: attemptNumber,
            reason: error.message,
          });
          const extra = (error.retryAfterMs ?? 0) - retryDelay;
          if (extra > 0) await sleep(extra, signal);
        },
      });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const reason = error instanceof RetryableError
        ? `${error.message} (after ${this.#retries + 1} attempt${this.#retries === 0 ? "" : "s"})`
        : describeError(error);
      return { kind: "failed", reason };
    }
  }

  async #attempt(first: URL, options: GetOptions, headers: Headers): Promise<FetchResult> {
    const { maxBytes, signal: stop, streamOverBytes = Infinity } = options;
    // One timeout for headers and a buffered body; a streamed body gets an idle timeout instead.
    const controller = new AbortController();
    const timer = setTimeout(
      () => controller.abort(new DOMException(`timed out after ${this.#timeoutMs} ms`, "TimeoutError")),
      this.#timeoutMs,
    );
    const signal = stop === undefined ? controller.signal : AbortSignal.any([controller.signal, stop]);
    try {
      return await this.#follow(first, { maxBytes, streamOverBytes, signal, headers, controller, timer });
    } finally {
      clearTimeout(timer);
    }
  }

  async #follow(
    first: URL,
    o: {
      maxBytes: number;
      streamOverBytes: number;
      signal: AbortSignal;
      headers: Headers;
      controller: AbortController;
      timer: ReturnType<typeof setTimeout>;
    },
  ): Promise<FetchResult> {
    const { maxBytes, signal, headers } = o;
    let url = first;
    for (let hop = 0;; hop++) {
      let res: Response;
      try {
        res = await this.#fetch(url, { headers, redirect: "manual", signal });
      } catch (error) {
        if (error instanceof Deno.errors.NotCapable) {
          // Retrying cannot grant a permission.
          throw new AbortError(`permission denied: network access to ${hostPort(url)} is not granted`);
        }
        throw new RetryableError(`request failed: ${networkCause(error, url)}`);
      }
      if (res.status === 304) {
        await res.body?.cancel();
        return { kind: "not_modified" };
      }
      if (res.status >= 300 && res.status < 400 && res.headers.has("location")) {
        await res.body?.cancel();
        const target = new URL(res.headers.get("location")!, url);
        if (target.origin !== this.#base.origin) {
          throw new AbortError(`redirect to another origin refused: ${redactUrl(target.origin)}`);
        }
        if (!target.pathname.startsWith(this.#base.pathname)) {
          throw new AbortError(`redirect outside the bucket prefix refused: ${target.pathname}`);
        }
        if (hop >= MAX_REDIRECTS) throw new AbortError(`too many redirects (more than ${MAX_REDIRECTS})`);
        // Credentials in a redirect's URL would replace the configured ones (fetch sends a URL's userinfo as Basic
        // auth): they are dropped, and the configured Authorization goes on.
        target.username = "";
        target.password = "";
        url = target;
        continue;
      }
      if (res.status === 200) {
        // With a Content-Encoding, Content-Length is the encoded size: fetch inflates the body, which may be any size
        // (a gzip bomb). Such a body counts as one of unknown length, its inflated bytes counted as they arrive.
        const encoding = (res.headers.get("content-encoding") ?? "").trim().toLowerCase();
        const declared = encoding === "" || encoding === "identity"
          ? Number(res.headers.get("content-length") ?? NaN)
          : NaN;
        if (declared > maxBytes) {
          await res.body?.cancel();
          return { kind: "too_large", bytes: declared, cap: maxBytes, declared: true };
        }
        // Streamed: a body declared larger than streamOverBytes, or one of unknown length (chunked) when a stream is
        // wanted at all; the file list (streamOverBytes Infinity) is read whole, within maxBytes, whatever its framing.
        const streamed = Number.isFinite(declared) ? declared > o.streamOverBytes : o.streamOverBytes !== Infinity;
        if (res.body !== null && streamed) {
          clearTimeout(o.timer);
          const body = guardStream(res.body, {
            cap: maxBytes,
            idleMs: this.#timeoutMs,
            onIdle: () => o.controller.abort(),
          });
          return { kind: "stream", body, declaredBytes: Number.isFinite(declared) ? declared : undefined };
        }
        try {
          const read = await readCapped(res.body ?? new Blob().stream(), maxBytes);
          const validators = {
            etag: res.headers.get("etag") ?? undefined,
            lastModified: res.headers.get("last-modified") ?? undefined,
          };
          return "body" in read
            ? { kind: "ok", body: read.body, validators }
            : { kind: "too_large", bytes: read.tooLarge, cap: maxBytes, declared: false };
        } catch (error) {
          throw new RetryableError(`body read failed: ${describeError(error)}`);
        }
      }
      if (this.#explainRefusal !== undefined && [400, 403, 404].includes(res.status)) {
        const reason = await this.#explainRefusal(res);
        if (reason !== undefined) throw new AbortError(reason);
      }
      await res.body?.cancel().catch(() => {});
      if (res.status === 403 || res.status === 404) return { kind: "missing", reason: `HTTP ${res.status}` };
      if (res.status === 429 || res.status >= 500) {
        throw new RetryableError(`HTTP ${res.status}`, parseRetryAfter(res.headers.get("retry-after")));
      }
      throw new AbortError(`unexpected HTTP ${res.status}`);
    }
  }
}
