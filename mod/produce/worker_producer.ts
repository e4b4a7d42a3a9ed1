/**
 * The produce step in a worker, so that fetching, decoding, parsing and
 * classifying run on the second core while the main thread writes to the
 * store. Results arrive in list order; the worker stays a bounded number of
 * files ahead (backpressure by acknowledgement).
 *
 * @module
 */
import { getLogger, type LogLevel, type LogRecord } from "@logtape/logtape";
import type { Producer, ProduceSettings } from "./produce.ts";
import type { FromWorker, WorkerInit } from "./worker.ts";
import type { SourceSpec } from "../source/spec.ts";

/** Options of {@linkcode workerProducer}. */
export interface WorkerProducerOptions {
  /** Results the worker may post ahead of the writer. @default {settings.concurrency} */
  readonly maxAhead?: number;
  /** A fixed clock for the worker (ms since the epoch), for tests. */
  readonly fixedNow?: number | undefined;
  /** @default {"info"} */
  readonly logLevel?: LogLevel;
}

/** A producer that runs the produce step in a worker. */
export function workerProducer(
  source: SourceSpec,
  settings: ProduceSettings,
  options: WorkerProducerOptions = {},
): Producer {
  const { maxAhead = settings.concurrency, fixedNow, logLevel = "info" } = options;
  return async function* (keys, signal) {
    signal?.throwIfAborted();
    if (keys.length === 0) return;
    const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
    const queue: FromWorker[] = [];
    let wake: (() => void) | undefined;
    const push = (message: FromWorker) => {
      queue.push(message);
      wake?.();
      wake = undefined;
    };
    worker.onmessage = (event: MessageEvent<FromWorker>) => push(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      push({ kind: "error", message: event.message });
    };
    const abort = () => push({ kind: "error", message: "aborted" });
    signal?.addEventListener("abort", abort, { once: true });
    const init: WorkerInit = { kind: "init", source, settings, keys, maxAhead, fixedNow, logLevel };
    worker.postMessage(init);
    try {
      for (;;) {
        while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
        const message = queue.shift()!;
        signal?.throwIfAborted();
        if (message.kind === "end") return;
        if (message.kind === "error") throw new Error(`The produce worker failed: ${message.message}`);
        if (message.kind === "log") {
          const record = message.record as unknown as LogRecord;
          getLogger(record.category).emit(record);
          continue;
        }
        worker.postMessage({ kind: "ack" });
        yield message.produced;
      }
    } finally {
      signal?.removeEventListener("abort", abort);
      worker.terminate();
    }
  };
}
