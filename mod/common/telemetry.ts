/**
 * OpenTelemetry: a run's spans and metrics through `@opentelemetry/api`,
 * which Deno's built-in exporter serves when `OTEL_DENO=true` (OTLP over
 * HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT`). Without it every call here is a
 * no-op. Attributes name keys, counts and outcomes, never a URL or a
 * credential.
 *
 * @module
 */
import { context, metrics, type Span as OtelSpan, SpanStatusCode, trace } from "@opentelemetry/api";

const tracer = trace.getTracer("bucketload");
const meter = metrics.getMeter("bucketload");
const records = meter.createCounter("bucketload.records", {
  description: "Records read from the bucket, by outcome (loaded, rejected, ignored)",
});
const files = meter.createCounter("bucketload.files", {
  description: "Files a run settled, by outcome (loaded, invalid, missing, failed, refused)",
});

/** An OpenTelemetry span. */
export type Span = OtelSpan;

/** Attribute values as spans take them. */
export type Attributes = Record<string, string | number | boolean>;

/**
 * Runs `fn` inside the span `name` (the active span while it runs, so that
 * spans started within are its children); the span ends when `fn` settles,
 * with an error status when it throws.
 */
export async function inSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
  return await tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).name });
      throw error;
    } finally {
      span.end();
    }
  });
}

/** Marks `span` as failed, with `message` (a status word, never a URL). */
export function markFailed(span: Span, message: string): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}

/** When a file's fetch and parse started and ended (epoch milliseconds), for its span. */
export interface Timing {
  /** When the fetch started. */
  readonly start: number;
  /** When the parse ended. */
  readonly end: number;
}

/** Records one file's fetch and parse as the span `bucketload.file`, a child of the active span (the run's). */
export function fileSpan(timing: Timing | undefined, attributes: Attributes): void {
  const now = Date.now();
  const span = tracer.startSpan("bucketload.file", { attributes, startTime: timing?.start ?? now }, context.active());
  if (attributes["bucketload.outcome"] === "failed") span.setStatus({ code: SpanStatusCode.ERROR });
  span.end(timing?.end ?? now);
}

/** Adds a run's counts to the metrics `bucketload.records` and `bucketload.files`. */
export function countRun(
  recordCounts: Readonly<Record<string, number>>,
  fileCounts: Readonly<Record<string, number>>,
  attributes: Attributes,
): void {
  for (const [outcome, n] of Object.entries(recordCounts)) {
    if (n > 0) records.add(n, { ...attributes, outcome });
  }
  for (const [outcome, n] of Object.entries(fileCounts)) {
    if (n > 0) files.add(n, { ...attributes, outcome });
  }
}
