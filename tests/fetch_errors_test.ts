/**
 * A fetch that fails after a redirect to a presigned URL: the reason is one
 * clean line naming host:port and the cause, without the query (the
 * signature), the local port or Deno's wrapping.
 *
 * @module
 */
import assert from "node:assert/strict";
import { cleanCause, HttpSource } from "../mod/source/http/http.ts";

/** A raw HTTP server on loopback: `/r.json` redirects to a signed URL that answers a malformed status line. */
function rawServer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    for await (const conn of listener) {
      (async () => {
        const buf = new Uint8Array(4096);
        const n = await conn.read(buf).catch(() => null);
        const head = new TextDecoder().decode(buf.subarray(0, n ?? 0));
        const reply = head.startsWith("GET /r.json ")
          ? "HTTP/1.1 302 Found\r\nLocation: /rb.json?X-Amz-Signature=SIGSECRET2\r\nContent-Length: 0\r\n\r\n"
          : "HTTP/1.1 2x0 What\r\nContent-Length: 2\r\n\r\nok";
        await conn.write(new TextEncoder().encode(reply)).catch(() => {});
        conn.close();
      })();
    }
  })().catch(() => {});
  return { port: (listener.addr as Deno.NetAddr).port, close: async () => (listener.close(), await done) };
}

Deno.test("a failed fetch after a redirect to a signed URL: one clean line, no query, no local port", async () => {
  const server = rawServer();
  try {
    const source = new HttpSource(new URL(`http://127.0.0.1:${server.port}/`), { retries: 0, retryBaseMs: 1 });
    const result = await source.get("r.json", { maxBytes: 1000 });
    assert.equal(result.kind, "failed");
    const reason = (result as { reason: string }).reason;
    assert.doesNotMatch(reason, /SIGSECRET2|X-Amz|error sending request|fetch failed|\n/);
    assert.match(reason, new RegExp(`^request failed: 127\\.0\\.0\\.1:${server.port}: `));
  } finally {
    await server.close();
  }
});

Deno.test("cleanCause(): URLs lose credentials and queries; Deno's wrapping goes", () => {
  assert.equal(
    cleanCause(
      "fetch failed Error: error sending request from 127.0.0.1:59560 for http://u:p@h:1/a.json?sig=S (h:1): " +
        "client error (SendRequest): invalid HTTP status-code parsed",
    ),
    "invalid HTTP status-code parsed",
  );
  assert.equal(cleanCause("bad http://u:p@h:1/a?sig=S#x here"), "bad http://h:1/a here");
});
