/**
 * OpenTelemetry: a run through the launcher with `OTEL_DENO=true` exports
 * its spans (`bucketload.run`, one `bucketload.file` per file,
 * `bucketload.commit`), metrics and log lines to an OTLP receiver on
 * loopback, and no exported byte holds the bucket URL's credentials.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { LogRecord } from "@logtape/logtape";
import { otelConsole } from "../launch.ts";
import { consoleExports, otelConsoleSink } from "../mod/commands/log.ts";
import { startBucketServer } from "./bucket_server.ts";
import { CASES, DENO_CACHE_ENV, LAUNCHER, LineWatcher, withTempDir, writeConfig } from "./helpers.ts";

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

interface OtlpResource {
  resource?: { attributes?: OtlpSpan["attributes"] };
}

/** Whether an OTLP resource is the service `service` (each launch below names its own), or any when `undefined`. */
const isService = (r: OtlpResource, service: string | undefined) =>
  service === undefined ||
  r.resource?.attributes?.some((a) => a.key === "service.name" && a.value.stringValue === service) === true;

const spansOf = (received: readonly Received[], service?: string): OtlpSpan[] =>
  received.filter((r) => r.path === "/v1/traces").flatMap((r) =>
    JSON.parse(r.text).resourceSpans.filter((rs: OtlpResource) => isService(rs, service))
      // deno-lint-ignore no-explicit-any
      .flatMap((rs: any) => rs.scopeSpans.flatMap((ss: any) => ss.spans))
  );

interface OtlpLogRecord {
  severityText: string;
  body?: { stringValue?: string };
  traceId: string;
  spanId: string;
}

const logsOf = (received: readonly Received[], service: string): OtlpLogRecord[] =>
  received.filter((r) => r.path === "/v1/logs").flatMap((r) =>
    JSON.parse(r.text).resourceLogs.filter((rl: OtlpResource) => isService(rl, service))
      // deno-lint-ignore no-explicit-any
      .flatMap((rl: any) => rl.scopeLogs.flatMap((sl: any) => sl.logRecords))
  );

const bodyOf = (record: OtlpLogRecord) => record.body?.stringValue ?? "";

/** Waits (up to 5 s: the exporter flushes as the process ends) until `done` holds. */
async function waitFor(done: () => boolean): Promise<void> {
  for (let i = 0; i < 50 && !done(); i++) await new Promise((r) => setTimeout(r, 100));
}

const attr = (span: OtlpSpan, key: string) => {
  const v = span.attributes.find((a) => a.key === key)?.value;
  // JavaScript numbers are exported as doubles; an integer may come as intValue (a string in OTLP JSON).
  return v?.stringValue ?? v?.doubleValue ?? (v?.intValue === undefined ? undefined : Number(v.intValue));
};

/** The launcher, as `deno task run` starts it, exporting to `receiver` over OTLP/HTTP (JSON). */
function launch(receiver: string, args: string[], env: Record<string, string> = {}) {
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
      ...DENO_CACHE_ENV,
      ...env,
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

Deno.test("OpenTelemetry: a run's log lines reach /v1/logs once, masked as on stderr, and are printed once", async () => {
  const receiver = startReceiver();
  const bucket = await startBucketServer(join(CASES, "basic"));
  try {
    await withTempDir(async (dir) => {
      const url = new URL(bucket.url);
      const bucketUrl = `http://reader:s3cretPass@127.0.0.1:${url.port}${url.pathname}?token=t0kenValue`;
      const config = await writeConfig(
        dir,
        `[p]\nBUCKET_NAME = ${bucketUrl}\nDATABASE_NAME = ${join(dir, "db.sqlite3")}\n`,
      );
      // OTEL_DENO_CONSOLE left unset, as a user would.
      const service = "bucketload-logs";
      const out = await launch(receiver.url, ["--config", config, "--profile", "p"], { OTEL_SERVICE_NAME: service });
      const stderr = new TextDecoder().decode(out.stderr);
      const stdout = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, stderr);
      const committed = () => logsOf(receiver.received, service).find((r) => bodyOf(r).includes("Committed run"));
      await waitFor(() => committed() !== undefined && spansOf(receiver.received, service).length > 0);
      const records = logsOf(receiver.received, service);
      const bodies = records.map(bodyOf);
      const commit = committed();
      assert.ok(commit !== undefined, `no "Committed run" log record among: ${JSON.stringify(bodies)}`);
      assert.equal(commit.severityText, "INFO");
      assert.match(bodyOf(commit), /^bucketload\.pipeline: Committed run 1: 9 records loaded \(7 new rows/);
      // Every body is text as printed, none with a character lost on the way (U+FFFD).
      assert.ok(bodies.every((b) => b !== "" && !b.includes("\uFFFD")), JSON.stringify(bodies));
      // Logged inside the run's span, the record carries its trace and span.
      const run = spansOf(receiver.received, service).find((s) => s.name === "bucketload.run");
      assert.ok(run !== undefined, "no bucketload.run span");
      assert.equal(commit.traceId, run.traceId);
      assert.equal(commit.spanId, run.spanId);
      // Each level keeps its severity.
      const invalid = records.find((r) => bodyOf(r).includes("Invalid c1b2c3d4-0003"));
      assert.equal(invalid?.severityText, "WARN", JSON.stringify(bodies));
      // The line that names the bucket is masked as on stderr: its host, neither the password nor the token.
      const start = records.find((r) => bodyOf(r).includes("Run of profile p"));
      assert.ok(start !== undefined, JSON.stringify(bodies));
      assert.ok(bodyOf(start).includes(`127.0.0.1:${url.port}`), bodyOf(start));
      const startLine = stderr.split("\n").find((l) => l.includes("Run of profile p")) ?? "";
      assert.ok(startLine.endsWith(bodyOf(start).trimEnd()), `${startLine}\n${bodyOf(start)}`);
      for (const text of [bodies.join("\n"), stderr, stdout]) {
        assert.doesNotMatch(text, /s3cretPass|t0kenValue|reader:/);
      }
      // Printed once, on stderr: the export adds no second copy, on either stream.
      assert.equal(stderr.split("Committed run").length - 1, 1, stderr);
      assert.equal(stderr.split("Run of profile p").length - 1, 1, stderr);
      assert.doesNotMatch(stdout, /Committed run|Run of profile/);

      // OTEL_DENO_CONSOLE=ignore keeps the log lines out of the collector; they are still printed.
      const quiet = "bucketload-nologs";
      const again = await launch(receiver.url, ["--config", config, "--profile", "p", "--force"], {
        OTEL_SERVICE_NAME: quiet,
        OTEL_DENO_CONSOLE: "ignore",
      });
      const againErr = new TextDecoder().decode(again.stderr);
      assert.equal(again.code, 0, againErr);
      assert.match(againErr, /Committed run/);
      // Its spans and metrics arrive (the exporter flushes all three signals as the process ends); no log record does.
      const metricsFrom = (service: string) =>
        receiver.received.some((r) =>
          r.path === "/v1/metrics" &&
          JSON.parse(r.text).resourceMetrics.some((rm: OtlpResource) => isService(rm, service))
        );
      await waitFor(() =>
        spansOf(receiver.received, quiet).some((s) => s.name === "bucketload.run") && metricsFrom(quiet)
      );
      assert.ok(spansOf(receiver.received, quiet).some((s) => s.name === "bucketload.run"), "no span from the run");
      assert.ok(metricsFrom(quiet), "no metrics from the run");
      assert.deepEqual(logsOf(receiver.received, quiet).map(bodyOf), []);

      const everything = receiver.received.map((r) => r.text).join("\n");
      assert.doesNotMatch(everything, /s3cretPass/);
      assert.doesNotMatch(everything, /t0kenValue/);
    });
  } finally {
    await bucket.close();
    await receiver.close();
  }
});

Deno.test("OpenTelemetry: log records go to the console only where Deno exports it without printing it", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  assert.equal(consoleExports(env({})), false);
  assert.equal(consoleExports(env({ OTEL_DENO_CONSOLE: "replace" })), false);
  assert.equal(consoleExports(env({ OTEL_DENO: "true" })), false, "capture (the default) prints what it exports");
  assert.equal(consoleExports(env({ OTEL_DENO: "true", OTEL_DENO_CONSOLE: "capture" })), false);
  assert.equal(consoleExports(env({ OTEL_DENO: "true", OTEL_DENO_CONSOLE: "ignore" })), false);
  assert.equal(consoleExports(env({ OTEL_DENO: "1", OTEL_DENO_CONSOLE: "replace" })), true);
  // The launcher asks Deno for that, unless the user keeps logs out (ignore) or OpenTelemetry is off.
  assert.deepEqual(otelConsole({}), {});
  assert.deepEqual(otelConsole({ OTEL_DENO: "false" }), {});
  assert.deepEqual(otelConsole({ OTEL_DENO: "true" }), { OTEL_DENO_CONSOLE: "replace" });
  assert.deepEqual(otelConsole({ OTEL_DENO: "TRUE", OTEL_DENO_CONSOLE: "capture" }), { OTEL_DENO_CONSOLE: "replace" });
  assert.deepEqual(otelConsole({ OTEL_DENO: "1", OTEL_DENO_CONSOLE: "ignore" }), {});

  // Each level at the console method Deno maps to its severity; the text as one argument, a `%` kept.
  const calls: string[] = [];
  const call = (method: string) => (...args: unknown[]) => void calls.push(`${method} ${args.join("|")}`);
  const target = { debug: call("debug"), info: call("info"), warn: call("warn"), error: call("error") };
  const sink = otelConsoleSink((r) => `${r.message.join("")}\n`, target);
  for (const level of ["trace", "debug", "info", "warning", "error", "fatal"] as const) {
    sink(
      {
        level,
        category: ["bucketload"],
        message: [`${level} 100%d`],
        rawMessage: "",
        timestamp: 0,
        properties: {},
      } as LogRecord,
    );
  }
  assert.deepEqual(calls, [
    "debug %s|trace 100%d",
    "debug %s|debug 100%d",
    "info %s|info 100%d",
    "warn %s|warning 100%d",
    "error %s|error 100%d",
    "error %s|fatal 100%d",
  ]);
});

Deno.test("OpenTelemetry: serve's login form keeps STATUS_TOKEN out of every exported byte", async () => {
  const receiver = startReceiver();
  try {
    await withTempDir(async (dir) => {
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ./bucket\nDATABASE_NAME = db.sqlite3\n`);
      const token = "T0ken-4711-sEcret";
      const service = "bucketload-serve";
      const child = new Deno.Command(Deno.execPath(), {
        args: [...LAUNCHER, "serve", "--config", config, "--profile", "p", "--port", "0"],
        env: {
          NO_COLOR: "1",
          OTEL_DENO: "true",
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
          OTEL_SERVICE_NAME: service,
          BUCKETLOAD_STATUS_TOKEN: token,
          ...DENO_CACHE_ENV,
        },
        clearEnv: true,
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      const log = new LineWatcher(child.stderr);
      await log.waitFor(/Serving the status page on http:\/\/127\.0\.0\.1:\d+\//);
      const url = /http:\/\/127\.0\.0\.1:\d+\//.exec(log.lines.join("\n"))?.[0];
      const answers: Record<string, number> = {};
      let setCookie = "";
      try {
        assert.ok(url !== undefined, log.lines.join("\n"));
        // A browser: the page without credentials (the form), the form posted, then the page and the JSON with the
        // cookie; and the old way, the token in the URL (refused).
        const form = await fetch(url);
        answers.form = form.status;
        await form.body?.cancel();
        const login = await fetch(new URL("login", url), {
          method: "POST",
          body: new URLSearchParams({ token }),
          headers: { "sec-fetch-site": "same-origin" },
          redirect: "manual",
        });
        answers.login = login.status;
        await login.body?.cancel();
        setCookie = login.headers.getSetCookie()[0] ?? "";
        const cookie = setCookie.split(";")[0]!;
        for (const [name, path] of [["page", ""], ["api", "api/status"]]) {
          const response = await fetch(new URL(path!, url), { headers: { cookie } });
          answers[name!] = response.status;
          await response.body?.cancel();
        }
        const query = await fetch(new URL(`api/status?token=${token}`, url));
        answers.query = query.status;
        await query.body?.cancel();
      } finally {
        child.kill("SIGTERM");
        const drained = log.drain();
        await child.status;
        await drained;
      }
      // The exporter flushes as the process ends.
      await waitFor(() => spansOf(receiver.received, service).some((s) => s.name === "GET /api/status"));
      const everything = receiver.received.map((r) => r.text).join("\n");
      assert.ok(everything.length > 0, "nothing was exported");
      assert.ok(!everything.includes(token), "the token reached the collector");
      assert.ok(!everything.includes(encodeURIComponent(token)), "the token reached the collector");
      assert.deepEqual(answers, { form: 401, login: 303, page: 200, api: 200, query: 401 });
      assert.ok(!setCookie.includes(token), setCookie);
      // The server's spans are there, named by route, with no query.
      const spans = spansOf(receiver.received, service);
      const names = spans.map((s) => s.name);
      for (const name of ["GET /", "POST /login", "GET /api/status"]) assert.ok(names.includes(name), names.join(", "));
      const page = spans.find((s) => s.name === "GET /" && attr(s, "http.response.status_code") === 200);
      assert.ok(page !== undefined, "no span of the page with its status");
      assert.equal(attr(page, "url.path"), "/");
      assert.ok(spans.every((s) => attr(s, "url.query") === undefined && attr(s, "url.full") === undefined));
    });
  } finally {
    await receiver.close();
  }
});
