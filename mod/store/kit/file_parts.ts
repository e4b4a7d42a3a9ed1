/**
 * How a file's rows reach a run, written once for every store: a file
 * comes whole, or streamed as parts inside the savepoint `file_part`, which
 * its last write releases; a file that turns out invalid, or fails, has its
 * parts rolled back. The store gives a {@linkcode RowSink} for its own way
 * of writing rows; the registry and rejections are the kit's.
 *
 * @module
 */
import type { FilePart, FileWrite, PartOptions } from "../store.ts";
import type { RunBook } from "./bookkeeping.ts";

/** A store's way of writing a run's rows. */
export interface RowSink<Mark> {
  /** Writes a file part's rows, each with the file's key and list position. */
  write(key: string, part: FilePart, position: number): Promise<void>;
  /** The object's earlier rows go (at once, or when the run merges). */
  replace(key: string): Promise<void>;
  /** Sets the savepoint `file_part` (rows still buffered sent first); returns the counters to go back to. */
  savepoint(): Promise<Mark>;
  /** Rolls back to the savepoint, counters and buffers included. */
  rollbackTo(mark: Mark): Promise<void>;
  /** Releases the savepoint. */
  release(): Promise<void>;
}

interface Streaming<Mark> {
  readonly key: string;
  readonly mark: Mark;
  records: number;
  rejected: number;
  ignored: number;
}

const sumOf = (counts: ReadonlyMap<string, number>) => [...counts.values()].reduce((a, b) => a + b, 0);

/** A run's file writes: whole files, and streamed files part by part. */
export class FileParts<Mark> {
  readonly #sink: RowSink<Mark>;
  readonly #book: RunBook;
  #streaming: Streaming<Mark> | undefined;

  /** Writes rows through `sink`, rejections and registry entries through `book`. */
  constructor(sink: RowSink<Mark>, book: RunBook) {
    this.#sink = sink;
    this.#book = book;
  }

  /** Adds part of a streamed file; its first part opens the savepoint (and with `replace` drops earlier rows). */
  async writePart(key: string, part: FilePart, options: PartOptions = {}): Promise<void> {
    if (this.#streaming?.key !== key) {
      if (this.#streaming !== undefined) throw new Error(`Parts of ${this.#streaming.key} were left open`);
      const mark = await this.#sink.savepoint();
      this.#streaming = { key, mark, records: 0, rejected: 0, ignored: 0 };
      if (options.replace) await this.#sink.replace(key);
      await this.#book.clearRejections(key);
    }
    await this.#write(key, part, options.position);
    this.#streaming.records += part.records;
    this.#streaming.rejected += part.rejections.length;
    this.#streaming.ignored += sumOf(part.ignored);
  }

  /** Discards a failed streamed file's parts: its earlier rows stay (it is tried again next run). */
  async abortFile(key: string): Promise<void> {
    if (this.#streaming?.key !== key) return;
    await this.#sink.rollbackTo(this.#streaming.mark);
    await this.#sink.release();
    this.#streaming = undefined;
  }

  /** Adds a file's (last) rows, rejections and registry entry; an invalid file's parts are discarded first. */
  async writeFile(file: FileWrite): Promise<void> {
    const streamed = this.#streaming?.key === file.key ? this.#streaming : undefined;
    let before = { records: 0, rejected: 0, ignored: 0 };
    if (streamed !== undefined && file.status === "invalid") {
      await this.#sink.rollbackTo(streamed.mark);
      await this.#book.clearRejections(file.key);
      if (file.replace) await this.#sink.replace(file.key);
    } else if (streamed !== undefined) before = streamed;
    else {
      if (file.replace) await this.#sink.replace(file.key);
      await this.#book.clearRejections(file.key);
    }
    await this.#write(file.key, file, file.position);
    await this.#book.register({
      key: file.key,
      status: file.status,
      at: file.processedAt,
      records: before.records + file.records,
      rejected: before.rejected + file.rejections.length,
      ignored: before.ignored + sumOf(file.ignored),
      bytes: file.bytes,
      fingerprint: file.fingerprint,
      position: file.position === undefined || file.position === Number.MAX_SAFE_INTEGER ? undefined : file.position,
    });
    if (streamed !== undefined) {
      await this.#sink.release();
      this.#streaming = undefined;
    }
  }

  async #write(key: string, part: FilePart, position: number | undefined) {
    await this.#sink.write(key, part, position ?? Number.MAX_SAFE_INTEGER);
    await this.#book.reject(key, part.rejections);
  }
}
