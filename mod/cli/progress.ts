/**
 * A one-line progress bar on stderr (files done/total, records, rate, ETA)
 * that log lines are written above, so both stay readable.
 *
 * @module
 */
import type { Progress } from "../run/pipeline.ts";

const WIDTH = 24;

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--:--";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mmss = `${String(m).padStart(2, "0")}:${String(r).padStart(2, "0")}`;
  return h > 0 ? `${h}:${mmss}` : mmss;
}

/**
 * Renders one progress line, e.g. `[#####-----] 12/40 files  8,400 records  2,100 rec/s  ETA 00:13`,
 * in fewer than `columns` characters (so that the terminal never wraps it):
 * the bar narrows first, then the rate and records go, then the line is cut.
 */
export function renderProgress(p: Progress, elapsedSeconds: number, columns = Infinity): string {
  const ratio = p.filesTotal === 0 ? 1 : p.filesDone / p.filesTotal;
  const rate = elapsedSeconds > 0 ? p.records / elapsedSeconds : 0;
  const eta = p.filesDone === 0 ? NaN : (elapsedSeconds / p.filesDone) * (p.filesTotal - p.filesDone);
  const files = `${p.filesDone}/${p.filesTotal} files`;
  const records = `${p.records.toLocaleString("en-US")} records`;
  const speed = `${Math.round(rate).toLocaleString("en-US")} rec/s`;
  const left = `ETA ${duration(eta)}`;
  const max = columns - 1;
  for (const parts of [[files, records, speed, left], [files, records, left], [files, left], [files]]) {
    const text = parts.join("  ");
    const width = Math.min(WIDTH, max - text.length - 3);
    if (width >= 10 || (width >= 0 && parts.length === 1)) {
      const filled = Math.round(ratio * width);
      return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${text}`;
    }
  }
  return files.slice(0, Math.max(0, max));
}

/** A progress line at the bottom of a terminal, redrawn at most every `intervalMs`. */
export class ProgressLine {
  readonly #write: (text: string) => void;
  readonly #now: () => number;
  readonly #start: number;
  readonly #intervalMs: number;
  readonly #columns: () => number;
  #line = "";
  #last: Progress | undefined;
  #lastDraw = -Infinity;
  #stopped = false;

  /** Draws through `write` (stderr by default), fitting `columns()` (the terminal's width by default). */
  constructor(
    options: { write?: (text: string) => void; now?: () => number; intervalMs?: number; columns?: () => number } = {},
  ) {
    const encoder = new TextEncoder();
    this.#write = options.write ?? ((text) => Deno.stderr.writeSync(encoder.encode(text)));
    this.#now = options.now ?? (() => performance.now());
    this.#start = this.#now();
    this.#intervalMs = options.intervalMs ?? 100;
    this.#columns = options.columns ?? (() => {
      try {
        return Deno.consoleSize().columns;
      } catch {
        return 80;
      }
    });
  }

  /** Redraws the bar at the terminal's current width, e.g. on SIGWINCH. */
  resize(): void {
    if (this.#stopped || this.#last === undefined || this.#line === "") return;
    this.#line = renderProgress(this.#last, (this.#now() - this.#start) / 1000, this.#columns());
    this.#write(`\r\x1b[2K${this.#line}`);
  }

  /** Updates the bar; redraws when the interval has passed or the run is complete. */
  update(p: Progress): void {
    if (this.#stopped) return;
    const now = this.#now();
    if (now - this.#lastDraw < this.#intervalMs && p.filesDone < p.filesTotal) return;
    this.#lastDraw = now;
    this.#last = p;
    this.#line = renderProgress(p, (now - this.#start) / 1000, this.#columns());
    this.#write(`\r\x1b[2K${this.#line}`);
  }

  /** Writes `text` (whole lines) above the bar, then redraws the bar. */
  writeAbove(text: string): void {
    this.#write(this.#line === "" ? text : `\r\x1b[2K${text}${this.#line}`);
  }

  /** Removes the bar for good: later updates draw nothing (the run is stopping). */
  stop(): void {
    this.clear();
    this.#stopped = true;
  }

  /** Removes the bar. */
  clear(): void {
    if (this.#line !== "") this.#write("\r\x1b[2K");
    this.#line = "";
  }
}
