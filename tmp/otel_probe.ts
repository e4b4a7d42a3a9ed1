import { metrics, trace } from "@opentelemetry/api";
const tracer = trace.getTracer("bucketload");
await tracer.startActiveSpan("bucketload.run", async (span) => {
  span.setAttribute("x", 1);
  await fetch("http://user:pass@127.0.0.1:" + Deno.args[0] + "/file.data?X-Amz-Signature=abc").then((r) => r.text()).catch(() => {});
  span.end();
});
metrics.getMeter("bucketload").createCounter("bucketload.records").add(5, { outcome: "loaded" });
console.log("done");
