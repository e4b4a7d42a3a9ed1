/**
 * The worker side of the produce step: fetches, parses and classifies the
 * keys it is given, and posts one result per key, in order, staying at most
 * `maxAhead` results and `maxAheadChars` characters of record text ahead of
 * the main thread's acknowledgements. Log records are forwarded to the main
 * thread.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { configure, type LogLevel as LogTapeLevel } from "@logtape/logtape";
import { type Produced, producedChars, produceInThread, type ProduceSettings } from "./produce.ts";
import { RECORD_TYPES } from "../records/mod.ts";
import type { SourceSpec } from "../source/kind.ts";
import { openSource } from "../source/sources.ts";

/** A LogTape log level. */
export type LogLevel = LogTapeLevel;

/** The first message: what to produce. */
export interface WorkerInit {
  /** The message's kind. */
  readonly kind: "init";
  /** The source to fetch from, as its kind's spec. */
  readonly source: SourceSpec;
  /** The produce step's settings. */
  readonly settings: ProduceSettings;
  /** Results posted ahead of acknowledgements, at most. */
  readonly maxAhead: number;
  /** Characters of record text posted ahead of acknowledgements, at most (one result may pass it alone). */
  readonly maxAheadChars: number;
  /** A fixed clock (ms since the epoch), for tests; else the real one. */
  readonly fixedNow: number | undefined;
  /** The lowest level of the log records forwarded. */
  readonly logLevel: LogLevel;
}

/** Messages from the main thread: the init, acknowledgements, and the keys as they are claimed. */
export type ToWorker =
  | WorkerInit
  /** A result taken by the main thread, with the record text it carried. */
  | { readonly kind: "ack"; readonly chars: number }
  | { readonly kind: "keys"; readonly keys: readonly string[] }
  | { readonly kind: "keys-end" };

/** Messages to the main thread. */
export type FromWorker =
  | { readonly kind: "produced"; readonly produced: Produced }
  | { readonly kind: "log"; readonly record: Record<string, unknown> }
  | { readonly kind: "end" }
  | { readonly kind: "error"; readonly message: string };

const post = (message: FromWorker) => self.postMessage(message);
let credits = 0;
/** Characters of record text posted and not yet acknowledged. */
let aheadChars = 0;
let wake: (() => void) | undefined;

/** Keys received and not yet taken, and whether more will come. */
const pending: string[] = [];
let keysEnded = false;
let wakeKeys: (() => void) | undefined;

async function* receivedKeys(): AsyncGenerator<string> {
  for (;;) {
    while (pending.length === 0 && !keysEnded) await new Promise<void>((resolve) => (wakeKeys = resolve));
    if (pending.length === 0) return;
    yield pending.shift()!;
  }
}

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
  const producer = produceInThread(await openSource(init.source), RECORD_TYPES, init.settings, now);
  for await (const produced of producer(receivedKeys())) {
    const chars = producedChars(produced);
    // Within both bounds; a result larger than the text bound alone waits until nothing else is ahead.
    while (credits <= 0 || (aheadChars > 0 && aheadChars + chars > init.maxAheadChars)) {
      await new Promise<void>((resolve) => (wake = resolve));
    }
    credits--;
    aheadChars += chars;
    post({ kind: "produced", produced });
  }
  post({ kind: "end" });
}

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  if (message.kind === "ack") {
    credits++;
    aheadChars -= message.chars;
    wake?.();
    wake = undefined;
    return;
  }
  if (message.kind === "keys" || message.kind === "keys-end") {
    if (message.kind === "keys") pending.push(...message.keys);
    else keysEnded = true;
    wakeKeys?.();
    wakeKeys = undefined;
    return;
  }
  produce(message).catch((error) => post({ kind: "error", message: String(error?.stack ?? error) }));
};
