/**
 * A real HTTP bucket on 127.0.0.1 for integration tests: serves a fixture
 * folder, with injectable latency and faults, and records every request.
 *
 * @module
 */
import { join } from "node:path";

/** What to do with one request instead of serving the file. */
export type Fault =
  | { readonly status: number; readonly headers?: Record<string, string>; readonly body?: string }
  /** Accept the request and never answer. */
  | "stall"
  /** Send the body a few bytes at a time, slowly. */
  | "drip"
  /** Announce the full Content-Length, send half, then close. */
  | "truncate"
  /** Send the body in 64-byte chunks without a Content-Length. */
  | "chunked"
  /** Send half of the body, then nothing more (until the client gives up). */
  | "hang";

/** Options of {@linkcode startBucketServer}. */
export interface BucketServerOptions {
  /** Latency before answering, per key. @default {() => 0} */
  readonly latencyMs?: (key: string) => number;
  /** A fault for the `attempt`-th request (1-based) of `key`, or `undefined` to serve normally. */
  readonly fault?: (key: string, attempt: number) => Fault | undefined;
  /** Send an `ETag` and answer a matching `If-None-Match` with 304. @default {false} */
  readonly etags?: boolean;
  /**
   * Send this `Last-Modified` for every object and answer an `If-Modified-Since`
   * at or after it with 304, as S3 does.
   */
  readonly lastModified?: Date;
  /** Called as each request arrives, before any latency. */
  readonly onRequest?: (key: string) => void;
  /** Extra files by key, served instead of the folder's. */
  readonly files?: Readonly<Record<string, string | Uint8Array>>;
}

/** A running bucket server. */
export interface BucketServer {
  /** The base URL, ending in `/`. */
  readonly url: string;
  /** Decoded keys requested, in order. */
  readonly requests: string[];
  /** Raw request paths as sent on the wire, in order. */
  readonly paths: string[];
  /** `Authorization` headers received, in order. */
  readonly authorizations: (string | null)[];
  /** How many times `key` was requested. */
  hits(key: string): number;
  /** Stops the server and waits for it. */
  close(): Promise<void>;
}

/** Starts a bucket over `root` on 127.0.0.1 and an ephemeral port. */
export function startBucketServer(root: string, options: BucketServerOptions = {}): Promise<BucketServer> {
  const { latencyMs = () => 0, fault = () => undefined, files = {}, onRequest = () => {}, etags = false } = options;
  const { lastModified } = options;
  const requests: string[] = [];
  const paths: string[] = [];
  const authorizations: (string | null)[] = [];
  const counts = new Map<string, number>();
  const stalls = new Set<AbortController>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    const key = path.slice(1).split("/").map(decodeURIComponent).join("/");
    requests.push(key);
    onRequest(key);
    paths.push(path);
    authorizations.push(req.headers.get("authorization"));
    const attempt = (counts.get(key) ?? 0) + 1;
    counts.set(key, attempt);
    const delay = latencyMs(key);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const f = fault(key, attempt);
    let body: Uint8Array<ArrayBuffer> | undefined;
    if (Object.hasOwn(files, key)) {
      const file = files[key]!;
      body = typeof file === "string" ? new TextEncoder().encode(file) : new Uint8Array(file);
    } else {
      try {
        body = await Deno.readFile(join(root, ...key.split("/")));
      } catch {
        body = undefined;
      }
    }
    if (f === "stall") {
      const ac = new AbortController();
      stalls.add(ac);
      await new Promise<void>((resolve) => {
        ac.signal.addEventListener("abort", () => resolve());
        req.signal.addEventListener("abort", () => resolve());
      });
      stalls.delete(ac);
      return new Response(null, { status: 503 });
    }
    if (f === "chunked") {
      const data = body ?? new Uint8Array(0);
      const chunks = Array.from({ length: Math.ceil(data.length / 64) }, (_, i) => data.slice(i * 64, i * 64 + 64));
      return new Response(ReadableStream.from(chunks));
    }
    if (f === "hang") {
      const data = body ?? new Uint8Array(0);
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(data.slice(0, data.length >> 1));
        },
      });
      return new Response(stream, { headers: { "content-length": String(data.length) } });
    }
    if (f === "drip" || f === "truncate") {
      const data = body ?? new Uint8Array(0);
      const stream = new ReadableStream<Uint8Array>({
        async start(controller) {
          if (f === "truncate") {
            // Half the declared length, then the end: the connection is cut mid-body, and the server logs nothing.
            controller.enqueue(data.slice(0, data.length >> 1));
            await new Promise((r) => setTimeout(r, 10));
            controller.close();
            return;
          }
          for (let i = 0; i < data.length; i += 16) {
            controller.enqueue(data.slice(i, i + 16));
            await new Promise((r) => setTimeout(r, 50));
            if (req.signal.aborted) return;
          }
          controller.close();
        },
      });
      return new Response(stream, { headers: { "content-length": String(data.length) } });
    }
    if (f !== undefined) return new Response(f.body ?? "error page", { status: f.status, headers: f.headers ?? {} });
    if (body === undefined) return new Response("<Error><Code>AccessDenied</Code></Error>", { status: 403 });
    const headers: Record<string, string> = { "content-type": "binary/octet-stream" };
    if (lastModified !== undefined) {
      headers["last-modified"] = lastModified.toUTCString();
      const since = Date.parse(req.headers.get("if-modified-since") ?? "");
      if (since >= Math.floor(lastModified.getTime() / 1000) * 1000) {
        return new Response(null, { status: 304, headers });
      }
    }
    if (etags) {
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", body));
      headers.etag = `"${Array.from(digest.slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join("")}"`;
      if (req.headers.get("if-none-match") === headers.etag) return new Response(null, { status: 304, headers });
    }
    return new Response(body, { headers });
  });
  const { port } = server.addr as Deno.NetAddr;
  return Promise.resolve({
    url: `http://127.0.0.1:${port}/`,
    requests,
    paths,
    authorizations,
    hits: (key) => counts.get(key) ?? 0,
    async close() {
      for (const ac of stalls) ac.abort();
      await server.shutdown();
    },
  });
}
