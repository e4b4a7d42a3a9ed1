/**
 * The S3 API source: objects by GET (signed with SigV4 by npm `aws4fetch`
 * when credentials are given, unsigned for a public bucket), and the bucket's
 * keys by ListObjectsV2 when it has no list file. Any S3-compatible endpoint
 * works (MinIO, R2, a local server), with path-style or virtual-host URLs.
 *
 * @module
 */
import { AwsClient } from "aws4fetch";
import { XMLParser } from "fast-xml-parser";
import pRetry, { AbortError } from "p-retry";
import { HttpSource } from "../http/http.ts";
import type { BucketSource, FetchResult, GetOptions, ListedObject } from "../source.ts";
import type { S3SourceOptions } from "./options.ts";

export { awsEndpoint, type S3Credentials, type S3SourceOptions } from "./options.ts";

/** S3 error codes that no retry or later run fixes: the run fails with the code and S3's message. */
const FATAL_CODES = new Set([
  "SignatureDoesNotMatch",
  "InvalidAccessKeyId",
  "ExpiredToken",
  "InvalidToken",
  "TokenRefreshRequired",
  "AuthorizationHeaderMalformed",
  "NoSuchBucket",
  "PermanentRedirect",
  "InvalidBucketName",
]);

const xml = new XMLParser({ ignoreAttributes: true, parseTagValue: false, trimValues: false });

/** S3's error document, when the body is one: `Code: Message`. */
export function s3Error(body: string): { code: string; message: string } | undefined {
  try {
    const doc = xml.parse(body) as { Error?: { Code?: unknown; Message?: unknown } };
    if (typeof doc.Error?.Code !== "string") return undefined;
    return { code: doc.Error.Code, message: typeof doc.Error.Message === "string" ? doc.Error.Message : "" };
  } catch {
    return undefined;
  }
}

/** What to tell the user about an S3 error code. */
function hint(code: string): string {
  if (code === "SignatureDoesNotMatch") return " (check AWS_SECRET_ACCESS_KEY)";
  if (code === "InvalidAccessKeyId") return " (check AWS_ACCESS_KEY_ID)";
  if (code === "ExpiredToken" || code === "InvalidToken") return " (check AWS_SESSION_TOKEN)";
  if (code === "NoSuchBucket") return " (check BUCKET_NAME and S3_ENDPOINT)";
  if (code === "PermanentRedirect" || code === "AuthorizationHeaderMalformed") return " (check S3_REGION)";
  return "";
}

/** Reads an error response's S3 error, and says it in one line when it is fatal. */
async function fatalReason(res: Response): Promise<string | undefined> {
  const text = await res.text().catch(() => "");
  const error = s3Error(text.slice(0, 64 * 1024));
  if (error === undefined || !FATAL_CODES.has(error.code)) return undefined;
  return `S3 ${error.code}${hint(error.code)}: ${error.message || `HTTP ${res.status}`}`;
}

/** Objects of an S3 bucket under a prefix. */
export class S3Source implements BucketSource {
  readonly display: string;
  readonly #objects: HttpSource;
  readonly #bucketUrl: URL;
  readonly #fetch: typeof fetch;
  readonly #options: S3SourceOptions;

  /** A source over the bucket `options` name; nothing is requested yet. */
  constructor(options: S3SourceOptions) {
    this.#options = options;
    const endpoint = new URL(options.endpoint);
    if (!endpoint.pathname.endsWith("/")) endpoint.pathname += "/";
    this.#bucketUrl = options.pathStyle
      ? new URL(`${encodeURIComponent(options.bucket)}/`, endpoint)
      : new URL(`${endpoint.protocol}//${options.bucket}.${endpoint.host}${endpoint.pathname}`);
    const base = new URL(options.prefix.split("/").map(encodeURIComponent).join("/"), this.#bucketUrl);
    const { credentials } = options;
    if (credentials !== undefined) {
      const client = new AwsClient({
        accessKeyId: credentials.accessKeyId,
        secretAccessKey: credentials.secretAccessKey,
        ...(credentials.sessionToken === undefined ? {} : { sessionToken: credentials.sessionToken }),
        service: "s3",
        region: options.region,
        // HttpSource retries, with its own backoff and limits.
        retries: 0,
      });
      this.#fetch = ((input: RequestInfo | URL, init?: RequestInit) => client.fetch(input, init)) as typeof fetch;
    } else this.#fetch = globalThis.fetch;
    this.#objects = new HttpSource(base, {
      timeoutMs: options.timeoutMs,
      retries: options.retries,
      retryBaseMs: options.retryBaseMs,
      fetch: this.#fetch,
      explainRefusal: fatalReason,
    });
    this.display = `s3://${options.bucket}/${options.prefix}`;
  }

  get(key: string, options: GetOptions): Promise<FetchResult> {
    return this.#objects.get(key, options);
  }

  /**
   * Lists the objects under the prefix with ListObjectsV2, page by page, in
   * key order. Never throws but the signal's reason: a listing that fails is
   * `{ error }`.
   */
  async listObjects(options: {
    signal?: AbortSignal | undefined;
    onPage: (objects: ListedObject[]) => Promise<void>;
  }): Promise<{ error: string } | undefined> {
    const { signal, onPage } = options;
    const { prefix, pageSize = 1000, retries, retryBaseMs, timeoutMs } = this.#options;
    let token: string | undefined;
    /** Set when the page handler failed: rethrown as it is, not as a listing error. */
    let handlerError: { error: unknown } | undefined;
    try {
      do {
        const url = new URL(this.#bucketUrl);
        // Path-style: `GET /bucket?list-type=2` (with `/bucket/`, servers canonicalize the path differently).
        if (this.#options.pathStyle) url.pathname = url.pathname.replace(/\/$/, "");
        url.searchParams.set("list-type", "2");
        url.searchParams.set("max-keys", String(pageSize));
        if (prefix !== "") url.searchParams.set("prefix", prefix);
        if (token !== undefined) url.searchParams.set("continuation-token", token);
        const page = await pRetry(async () => {
          let res: Response;
          try {
            res = await this.#fetch(url, {
              signal: signal === undefined
                ? AbortSignal.timeout(timeoutMs)
                : AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]),
            });
          } catch (error) {
            if (signal?.aborted) throw new AbortError(signal.reason);
            throw new Error(`request failed: ${(error as Error).message}`);
          }
          if (res.status === 200) return await res.text();
          const fatal = await fatalReason(res.clone());
          if (fatal !== undefined) throw new AbortError(fatal);
          if (res.status === 429 || res.status >= 500) throw new Error(`HTTP ${res.status}`);
          const error = s3Error(await res.text().catch(() => ""));
          throw new AbortError(
            `ListObjectsV2 answered HTTP ${res.status}${error ? ` ${error.code}: ${error.message}` : ""}`,
          );
        }, { retries, minTimeout: retryBaseMs, factor: 2, randomize: true, maxTimeout: 60_000, signal });
        const doc = xml.parse(page, true) as {
          ListBucketResult?: {
            Contents?: { Key?: string; ETag?: string; Size?: string } | {
              Key?: string;
              ETag?: string;
              Size?: string;
            }[];
            IsTruncated?: string;
            NextContinuationToken?: string;
          };
        };
        const result = doc.ListBucketResult;
        if (result === undefined) return { error: "ListObjectsV2 answered something that is not a ListBucketResult" };
        const contents = result.Contents === undefined
          ? []
          : Array.isArray(result.Contents)
          ? result.Contents
          : [result.Contents];
        const objects: ListedObject[] = [];
        for (const c of contents) {
          if (typeof c.Key !== "string") continue;
          objects.push({
            key: c.Key.slice(prefix.length),
            etag: (c.ETag ?? "").replaceAll("&quot;", '"'),
            size: Number(c.Size ?? 0),
          });
        }
        try {
          await onPage(objects);
        } catch (error) {
          handlerError = { error };
          throw error;
        }
        token = result.IsTruncated === "true" ? result.NextContinuationToken : undefined;
      } while (token !== undefined);
    } catch (error) {
      if (handlerError !== undefined) throw handlerError.error;
      if (signal?.aborted) throw signal.reason;
      return { error: (error as Error).message };
    }
    return undefined;
  }
}
