import { trace } from "@opentelemetry/api";
trace.getTracer("bucketload").startActiveSpan("bucketload.run", (span) => span.end());
