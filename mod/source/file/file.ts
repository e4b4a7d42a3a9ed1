/**
 * A bucket in a local folder: the offline demo and tests without a server.
 *
 * @module
 */
import { join, relative, resolve, sep } from "node:path";
import { refuseReason } from "../location.ts";
import { type BucketSource, type FetchResult, type GetOptions, guardStream, readCapped } from "../source.ts";

/** Serves keys as files under `root`. A missing file is `missing` (404). */
export class FileSource implements BucketSource {
  readonly display: string;
  readonly #root: string;

  /** Reads objects from the folder `root`. */
  constructor(root: string) {
    this.#root = resolve(root);
    this.display = this.#root;
  }

  /** Reads one file. Refused keys and paths outside the root fail. */
  async get(
    key: string,
    { maxBytes, signal, ifUnchanged, streamOverBytes = Infinity }: GetOptions,
  ): Promise<FetchResult> {
    signal?.throwIfAborted();
    const reason = refuseReason(key);
    if (reason !== undefined) return { kind: "failed", reason: `refused key: ${reason}` };
    const path = join(this.#root, ...key.split("/"));
    const rel = relative(this.#root, path);
    if (rel.startsWith("..") || rel.startsWith(sep)) {
      return { kind: "failed", reason: "key resolves outside the bucket" };
    }
    let file: Deno.FsFile | undefined;
    try {
      file = await Deno.open(path, { read: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
        return { kind: "missing", reason: "no such file" };
      }
      return { kind: "failed", reason: `cannot open ${path}: ${(error as Error).message}` };
    }
    try {
      const { size, isFile, mtime } = await file.stat();
      if (!isFile) return { kind: "missing", reason: "not a file" };
      // The file's mtime and size stand in for HTTP's validators.
      const validators = { lastModified: mtime?.toUTCString(), etag: `"${size}-${mtime?.getTime() ?? 0}"` };
      if (ifUnchanged?.etag !== undefined && ifUnchanged.etag === validators.etag) return { kind: "not_modified" };
      if (size > maxBytes) return { kind: "too_large", bytes: size, cap: maxBytes, declared: true };
      if (size > streamOverBytes) {
        const body = guardStream(file.readable, { cap: maxBytes });
        file = undefined;
        return { kind: "stream", body, declaredBytes: size };
      }
      const read = await readCapped(file.readable, maxBytes);
      return "body" in read
        ? { kind: "ok", body: read.body, validators }
        : { kind: "too_large", bytes: read.tooLarge, cap: maxBytes, declared: false };
    } catch (error) {
      return { kind: "failed", reason: `cannot read ${path}: ${(error as Error).message}` };
    } finally {
      try {
        file?.close();
      } catch { /* closed by its readable */ }
    }
  }
}
