/**
 * The produce step in a worker, so that fetching, decoding, parsing and
 * classifying run on the second core while the main thread writes to the
 * store. Results arrive in list order; the worker stays a bounded number of
 * results, and of characters of record text, ahead (backpressure by
 * acknowledgement).
 *
 * @module
 */
import { getLogger, type LogRecord } from "@logtape/logtape";
import { producedChars, type Producer, type ProduceSettings } from "./produce.ts";
import type { FromWorker, LogLevel, WorkerInit } from "./worker.ts";
import type { SourceSpec } from "../source/kind.ts";

/**
 * Characters of record text that the worker may post ahead of the writer:
 * what the queue between them holds at most, whatever the records' size (a
 * single result larger than this, a part of up to `PART_TEXT_CHARS` or a
 * body read whole, waits until the queue is empty).
 */
export const AHEAD_TEXT_CHARS = 4 * 1024 * 1024;

/** Options of {@linkcode workerProducer}. */
export interface WorkerProducerOptions {
  /** Results the worker may post ahead of the writer. @default {settings.concurrency} */
  readonly maxAhead?: number;
  /** Characters of record text the worker may post ahead of the writer. @default {AHEAD_TEXT_CHARS} */
  readonly maxAheadChars?: number;
  /** Called with the record text the worker has posted ahead each time a result arrives (tests watch the queue). */
  readonly onAhead?: ((chars: number) => void) | undefined;
  /** A fixed clock for the worker (ms since the epoch), for tests. */
  readonly fixedNow?: number | undefined;
  /** The lowest level of the worker's log records forwarded. @default {"info"} */
  readonly logLevel?: LogLevel;
}

/** A producer that runs the produce step in a worker. */
export function workerProducer(
  source: SourceSpec,
  settings: ProduceSettings,
  options: WorkerProducerOptions = {},
): Producer {
  const { maxAhead = settings.concurrency, maxAheadChars = AHEAD_TEXT_CHARS, fixedNow, logLevel = "info" } = options;
  return async function* (keys, signal) {
    signal?.throwIfAborted();
    const iterator = Symbol.asyncIterator in keys ? keys[Symbol.asyncIterator]() : keys[Symbol.iterator]();
    let first: IteratorResult<string> | undefined = await iterator.next();
    if (first.done) return;
    const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
    const queue: FromWorker[] = [];
    /** Record text in the queue: posted by the worker and not yet taken. */
    let queued = 0;
    let wake: (() => void) | undefined;
    const push = (message: FromWorker) => {
      queue.push(message);
      if (message.kind === "produced") {
        queued += producedChars(message.produced);
        options.onAhead?.(queued);
      }
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
    const init: WorkerInit = { kind: "init", source, settings, maxAhead, maxAheadChars, fixedNow, logLevel };
    worker.postMessage(init);
    // Keys go to the worker as it needs them: at most `window` keys sent and not yet settled.
    const window = maxAhead + 2 * settings.concurrency;
    let outstanding = 0;
    let ended = false;
    /** Claiming keys failed (e.g. the database went away): rethrown as it is. */
    let keyFailure: unknown;
    let pumping = false;
    const pump = async () => {
      if (pumping) return;
      pumping = true;
      try {
        while (!ended && outstanding < window) {
          const next = first ?? await iterator.next();
          first = undefined;
          if (next.done) {
            ended = true;
            worker.postMessage({ kind: "keys-end" });
          } else {
            outstanding++;
            worker.postMessage({ kind: "keys", keys: [next.value] });
          }
        }
      } catch (error) {
        keyFailure = error;
        push({ kind: "error", message: (error as Error).message });
      } finally {
        // Set in the same step as the loop's last check, so that a result arriving meanwhile is never missed.
        pumping = false;
      }
    };
    pump();
    try {
      for (;;) {
        while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve));
        const message = queue.shift()!;
        signal?.throwIfAborted();
        if (message.kind === "end") return;
        if (message.kind === "error") {
          if (keyFailure !== undefined) throw keyFailure;
          throw new Error(`The produce worker failed: ${message.message}`);
        }
        if (message.kind === "log") {
          const record = message.record as unknown as LogRecord;
          getLogger(record.category).emit(record);
          continue;
        }
        const chars = producedChars(message.produced);
        queued -= chars;
        worker.postMessage({ kind: "ack", chars });
        if (message.produced.kind !== "part") {
          outstanding--;
          pump();
        }
        yield message.produced;
      }
    } finally {
      signal?.removeEventListener("abort", abort);
      worker.terminate();
    }
  };
}
