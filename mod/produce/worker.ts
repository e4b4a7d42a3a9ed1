/**
 * The worker side of the produce step: fetches, parses and classifies the
 * keys it is given, and posts one result per key, in order, staying at most
 * `maxAhead` results ahead of the main thread's acknowledgements. Log records
 * are forwarded to the main thread.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { configure, type LogLevel } from "@logtape/logtape";
import { type Produced, produceInThread, type ProduceSettings } from "./produce.ts";
import { RECORD_TYPES } from "../records/mod.ts";
import { makeSource, type SourceSpec } from "../source/spec.ts";

/** The first message: what to produce. */
export interface WorkerInit {
  readonly kind: "init";
  readonly source: SourceSpec;
  readonly settings: ProduceSettings;
  readonly keys: readonly string[];
  /** Results posted ahead of acknowledgements, at most. */
  readonly maxAhead: number;
  /** A fixed clock (ms since the epoch), for tests; else the real one. */
  readonly fixedNow: number | undefined;
  readonly logLevel: LogLevel;
}

/** Messages from the main thread. */
export type ToWorker = WorkerInit | { readonly kind: "ack" };

/** Messages to the main thread. */
export type FromWorker =
  | { readonly kind: "produced"; readonly produced: Produced }
  | { readonly kind: "log"; readonly record: Record<string, unknown> }
  | { readonly kind: "end" }
  | { readonly kind: "error"; readonly message: string };

const post = (message: FromWorker) => self.postMessage(message);
let credits = 0;
let wake: (() => void) | undefined;

async function produce(init: WorkerInit) {
  await configure({
    sinks: {
      main: (record) => {
        const { category, level, message, rawMessage, properties, timestamp } = record;
        try {
          post({ kind: "log", record: { category, level, message, rawMessage, properties, timestamp } });
        } catch {
          post({
            kind: "log",
            record: { category, level, message: [String(message)], rawMessage, properties: {}, timestamp },
          });
        }
      },
    },
    loggers: [{ category: ["bucketload"], lowestLevel: init.logLevel, sinks: ["main"] }, {
      category: ["logtape", "meta"],
      lowestLevel: "error",
      sinks: ["main"],
    }],
  });
  credits = init.maxAhead;
  const now = init.fixedNow === undefined ? () => new Date() : () => new Date(init.fixedNow!);
  const producer = produceInThread(makeSource(init.source), RECORD_TYPES, init.settings, now);
  for await (const produced of producer(init.keys)) {
    while (credits <= 0) await new Promise<void>((resolve) => (wake = resolve));
    credits--;
    post({ kind: "produced", produced });
  }
  post({ kind: "end" });
}

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.kind === "ack") {
    credits++;
    wake?.();
    wake = undefined;
    return;
  }
  produce(message).catch((error) => post({ kind: "error", message: String(error?.stack ?? error) }));
};
