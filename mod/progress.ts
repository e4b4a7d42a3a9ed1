/**
 * A one-line progress bar on stderr (files done/total, records, rate, ETA)
 * that log lines are written above, so both stay readable.
 *
 * @module
 */
import type { Progress } from "./pipeline.ts";

const WIDTH = 24;

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--:--";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mmss = `${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}`;
  return h > 0 ? `${h}:${mmss}` : mmss;
}

/** Renders one progress line, e.g. `[#####-----] 12/40 files  8,400 records  2,100 rec/s  ETA 00:13`. */
export function renderProgress(p: Progress, elapsedSeconds: number): string {
  const ratio = p.filesTotal === 0 ? 1 : p.filesDone / p.filesTotal;
  const filled = Math.round(ratio * WIDTH);
  const rate = elapsedSeconds > 0 ? p.records / elapsedSeconds : 0;
  const eta = p.filesDone === 0 ? NaN : (elapsedSeconds / p.filesDone) * (p.filesTotal - p.filesDone);
  return `[${"#".repeat(filled)}${"-".repeat(WIDTH - filled)}] ${p.filesDone}/${p.filesTotal} files  ` +
    `${p.records.toLocaleString("en-US")} records  ${Math.round(rate).toLocaleString("en-US")} rec/s  ` +
    `ETA ${duration(eta)}`;
}

/** A progress line at the bottom of a terminal, redrawn at most every `intervalMs`. */
export class ProgressLine {
  readonly #write: (text: string) => void;
  readonly #now: () => number;
  readonly #start: number;
  readonly #intervalMs: number;
  #line = "";
  #lastDraw = -Infinity;

  /** Draws through `write` (stderr by default). */
  constructor(options: { write?: (text: string) => void; now?: () => number; intervalMs?: number } = {}) {
    const encoder = new TextEncoder();
    this.#write = options.write ?? ((text) => Deno.stderr.writeSync(encoder.encode(text)));
    this.#now = options.now ?? (() => performance.now());
    this.#start = this.#now();
    this.#intervalMs = options.intervalMs ?? 100;
  }

  /** Updates the bar; redraws when the interval has passed or the run is complete. */
  update(p: Progress): void {
    const now = this.#now();
    if (now - this.#lastDraw < this.#intervalMs && p.filesDone < p.filesTotal) return;
    this.#lastDraw = now;
    this.#line = renderProgress(p, (now - this.#start) / 1000);
    this.#write(`\r\x1b[2K${this.#line}`);
  }

  /** Writes `text` (whole lines) above the bar, then redraws the bar. */
  writeAbove(text: string): void {
    this.#write(this.#line === "" ? text : `\r\x1b[2K${text}${this.#line}`);
  }

  /** Removes the bar. */
  clear(): void {
    if (this.#line !== "") this.#write("\r\x1b[2K");
    this.#line = "";
  }
}
