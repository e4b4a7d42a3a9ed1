/**
 * OpenTelemetry: a run through the launcher with `OTEL_DENO=true` exports
 * its spans (`bucketload.run`, one `bucketload.file` per file,
 * `bucketload.commit`) and metrics to an OTLP receiver on loopback, and no
 * exported byte holds the bucket URL's credentials.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startBucketServer } from "./bucket_server.ts";
import { CASES, LAUNCHER, withTempDir, writeConfig } from "./helpers.ts";

interface Received {
  readonly path: string;
  readonly text: string;
}

/** An OTLP/HTTP receiver (JSON) on loopback that keeps what it is sent. */
function startReceiver() {
  const received: Received[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    received.push({ path: new URL(req.url).pathname, text: await req.text() });
    return Response.json({});
  });
  return { received, url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

interface OtlpSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  attributes: { key: string; value: { stringValue?: string; intValue?: string | number; doubleValue?: number } }[];
}

const spansOf = (received: readonly Received[]): OtlpSpan[] =>
  received.filter((r) => r.path === "/v1/traces").flatMap((r) =>
    // deno-lint-ignore no-explicit-any
    JSON.parse(r.text).resourceSpans.flatMap((rs: any) => rs.scopeSpans.flatMap((ss: any) => ss.spans))
  );

const attr = (span: OtlpSpan, key: string) => {
  const v = span.attributes.find((a) => a.key === key)?.value;
  // JavaScript numbers are exported as doubles; an integer may come as intValue (a string in OTLP JSON).
  return v?.stringValue ?? v?.doubleValue ?? (v?.intValue === undefined ? undefined : Number(v.intValue));
};

/** The launcher, as `deno task run` starts it, exporting to `receiver` over OTLP/HTTP (JSON). */
function launch(receiver: string, args: string[]) {
  return new Deno.Command(Deno.execPath(), {
    args: [
      ...LAUNCHER,
      ...args,
    ],
    env: {
      NO_COLOR: "1",
      OTEL_DENO: "true",
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_SERVICE_NAME: "bucketload-test",
    },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
}

Deno.test("OpenTelemetry: a run's spans and metrics reach an OTLP receiver, without the bucket's credentials", async () => {
  const receiver = startReceiver();
  const bucket = await startBucketServer(join(CASES, "basic"));
  try {
    await withTempDir(async (dir) => {
      // Credentials in the user part and a token in the query: bucketload sends the first as a header and drops the
      // query, so that no URL it fetches (Deno records each fetch's url.full) holds them.
      const url = new URL(bucket.url);
      const bucketUrl = `http://reader:s3cretPass@127.0.0.1:${url.port}${url.pathname}?token=t0kenValue`;
      const config = await writeConfig(
        dir,
        `[p]\nBUCKET_NAME = ${bucketUrl}\nDATABASE_NAME = ${join(dir, "db.sqlite3")}\n`,
      );
      const out = await launch(receiver.url, ["--config", config, "--profile", "p", "--quiet"]);
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      // The exporter flushes as the process ends; give the receiver a moment.
      for (let i = 0; i < 50 && !spansOf(receiver.received).some((s) => s.name === "bucketload.run"); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const spans = spansOf(receiver.received);
      const run = spans.find((s) => s.name === "bucketload.run");
      assert.ok(run !== undefined, `no bucketload.run among ${spans.map((s) => s.name).join(", ")}`);
      assert.equal(attr(run, "bucketload.profile"), "p");
      assert.equal(attr(run, "bucketload.store"), "sqlite");
      assert.equal(attr(run, "bucketload.files.loaded"), 2);
      assert.equal(attr(run, "bucketload.records"), 9);
      assert.equal(attr(run, "bucketload.rows.inserted"), 7);

      const files = spans.filter((s) => s.name === "bucketload.file");
      assert.deepEqual(
        files.map((s) => `${attr(s, "bucketload.key")} ${attr(s, "bucketload.outcome")}`).sort(),
        [
          "a1b2c3d4-0001-4000-8000-000000000001.data loaded",
          "b1b2c3d4-0002-4000-8000-000000000002.data loaded",
          "c1b2c3d4-0003-4000-8000-000000000003.data invalid",
        ],
      );
      assert.ok(files.every((s) => Number(attr(s, "bucketload.bytes")) > 0));
      const commit = spans.find((s) => s.name === "bucketload.commit");
      assert.ok(commit !== undefined);
      for (const child of [...files, commit]) {
        assert.equal(child.traceId, run.traceId);
        assert.equal(child.parentSpanId, run.spanId);
      }
      // Deno's own fetch spans are there too, their URLs without the credentials.
      const fetched = spans.map((s) => attr(s, "url.full")).filter((u) => typeof u === "string") as string[];
      assert.ok(fetched.some((u) => u.includes(`127.0.0.1:${url.port}`)), fetched.join(", "));

      const metrics = receiver.received.filter((r) => r.path === "/v1/metrics").map((r) => r.text).join("\n");
      assert.match(metrics, /"name": ?"bucketload\.records"/);
      assert.match(metrics, /"name": ?"bucketload\.files"/);

      // A replay is a span of its own.
      const replayed = await launch(receiver.url, ["replay", "--config", config, "--profile", "p"]);
      assert.equal(replayed.code, 0, new TextDecoder().decode(replayed.stderr));
      for (let i = 0; i < 50 && !spansOf(receiver.received).some((s) => s.name === "bucketload.replay"); i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const replay = spansOf(receiver.received).find((s) => s.name === "bucketload.replay");
      assert.ok(replay !== undefined, "no bucketload.replay span");
      assert.equal(attr(replay, "bucketload.revalidated"), 4);

      const everything = receiver.received.map((r) => r.text).join("\n");
      assert.doesNotMatch(everything, /s3cretPass/);
      assert.doesNotMatch(everything, /t0kenValue/);
    });
  } finally {
    await bucket.close();
    await receiver.close();
  }
});
