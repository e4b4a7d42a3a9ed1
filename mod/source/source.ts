/**
 * The bucket source contract: list and get objects by key. Implementations:
 * {@linkcode HttpSource} (HTTP/HTTPS buckets), {@linkcode FileSource} (local
 * folders) and `S3Source` (`s3://` buckets through the S3 API, in `s3.ts`).
 *
 * @module
 */

/** What fetching one object came to. */
export type FetchResult =
  | { readonly kind: "ok"; readonly body: Uint8Array; readonly validators?: Validators }
  /**
   * A body too big to buffer (over `streamOverBytes`, or of unknown length):
   * read it incrementally. Read errors are final (the stream is not retried);
   * reading past `maxBytes` errors with {@linkcode TooLargeError}.
   */
  | { readonly kind: "stream"; readonly body: ReadableStream<Uint8Array>; readonly declaredBytes: number | undefined }
  /** 304: unchanged since the validators given. */
  | { readonly kind: "not_modified" }
  /** 403 or 404 (or no such file): try again on a later run. `reason` says it in the source's terms. */
  | { readonly kind: "missing"; readonly reason: string }
  /** Larger than the cap: `bytes` is the declared size, or what was read when reading stopped. */
  | { readonly kind: "too_large"; readonly bytes: number; readonly cap: number; readonly declared: boolean }
  /** Gave up: retries ran out, or an answer that retrying cannot fix. */
  | { readonly kind: "failed"; readonly reason: string };

/** HTTP cache validators of an object, for a conditional GET. */
export interface Validators {
  /** The `ETag` answered. */
  readonly etag?: string | undefined;
  /** The `Last-Modified` answered. */
  readonly lastModified?: string | undefined;
}

/** Options of {@linkcode BucketSource.get}. */
export interface GetOptions {
  /** Validators from an earlier GET: an unchanged object answers `not_modified`. */
  readonly ifUnchanged?: Validators | undefined;
  /** Stop reading past this many bytes: the result is `too_large`. */
  readonly maxBytes: number;
  /** Hand over bodies larger than this (or of unknown length) as a stream. @default {Infinity} */
  readonly streamOverBytes?: number | undefined;
  /** Abandons the request (and its retries) when aborted. */
  readonly signal?: AbortSignal | undefined;
}

/** One object of a bucket listing. */
export interface ListedObject {
  /** The key (under the source's prefix). */
  readonly key: string;
  /** The object's ETag. */
  readonly etag: string;
  /** The object's size in bytes. */
  readonly size: number;
}

/** A bucket: a flat namespace of keys. */
export interface BucketSource {
  /** Where the bucket is, safe to log (no credentials). */
  readonly display: string;
  /** Fetches one object, reading at most `maxBytes`. Never throws, except the `signal`'s reason once aborted. */
  get(key: string, options: GetOptions): Promise<FetchResult>;
  /**
   * Lists the objects, in key order, for a bucket without a list file (S3's
   * ListObjectsV2), handing each page to `onPage` as it arrives (so that a
   * large bucket is never held whole). Sources that cannot list leave it
   * out. Returns `{ error }` when listing fails; never throws but the
   * signal's reason or `onPage`'s error.
   */
  listObjects?(options: {
    signal?: AbortSignal | undefined;
    onPage: (objects: ListedObject[]) => Promise<void>;
  }): Promise<{ error: string } | undefined>;
}

/** The reason stored for an object over its cap. */
export function tooLargeReason(result: { bytes: number; cap: number; declared: boolean }): string {
  return result.declared
    ? `too large: ${result.bytes} bytes > ${result.cap}`
    : `too large: over ${result.cap} bytes (stopped reading at ${result.bytes})`;
}

/** A streamed body passed its cap. */
export class TooLargeError extends RangeError {
  /** Creates the error: `bytes` had been read when the cap `cap` was passed. */
  constructor(readonly bytes: number, readonly cap: number) {
    super(`too large: over ${cap} bytes (stopped reading at ${bytes})`);
    this.name = "TooLargeError";
  }
}

/**
 * Wraps a body so that it errors with {@linkcode TooLargeError} past `cap`
 * bytes, and with a timeout when no chunk arrives for `idleMs`.
 */
export function guardStream(
  body: ReadableStream<Uint8Array>,
  options: { cap: number; idleMs?: number; onIdle?: () => void },
): ReadableStream<Uint8Array> {
  let total = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const reader = body.getReader();
  const arm = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    if (options.idleMs === undefined) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      options.onIdle?.();
      controller.error(new DOMException(`no data for ${options.idleMs} ms`, "TimeoutError"));
      reader.cancel().catch(() => {});
    }, options.idleMs);
  };
  return new ReadableStream<Uint8Array>({
    // The idle clock runs only while a read waits for the network, not while the consumer is busy elsewhere.
    async pull(controller) {
      try {
        arm(controller);
        const { done, value } = await reader.read();
        clearTimeout(timer);
        if (done) {
          controller.close();
          return;
        }
        total += value.byteLength;
        if (total > options.cap) {
          await reader.cancel().catch(() => {});
          controller.error(new TooLargeError(total, options.cap));
          return;
        }
        controller.enqueue(value);
      } catch (error) {
        clearTimeout(timer);
        controller.error(error);
      }
    },
    cancel(reason) {
      clearTimeout(timer);
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Reads `stream` into one buffer, stopping once more than `cap` bytes arrive. */
export async function readCapped(
  stream: ReadableStream<Uint8Array>,
  cap: number,
): Promise<{ body: Uint8Array } | { tooLarge: number }> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > cap) {
        await reader.cancel().catch(() => {});
        return { tooLarge: total };
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  if (chunks.length === 1) return { body: chunks[0]! };
  const body = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return { body };
}
