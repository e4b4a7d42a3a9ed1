/**
 * The folder source's descriptor: a `file:` URL or a path (starting with
 * `.`, `/` or `~`, or holding a `/`), resolved against the config file's
 * folder.
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { schemeOf } from "../location.ts";
import type { SourceKind, SourceSpec } from "../kind.ts";

/** A local folder, described for the worker. */
export interface FileSpec extends SourceSpec {
  /** The kind's name. */
  readonly kind: "file";
  /** The folder, absolute. */
  readonly root: string;
}

/** Local folders: the offline demo (`file.ts`). */
export const fileSource: SourceKind<FileSpec> = {
  name: "file",
  title: "folder",
  forms: "file: or a folder path",
  bucketName: {
    help: "file: URL or folder",
    doc: "a `file:` URL or a folder path (starting with `.`, `/` or `~`, or containing `/`)",
  },
  configure(value, { baseDir }) {
    const scheme = schemeOf(value);
    let root: string;
    if (scheme === "file") root = fileURLToPath(value);
    // A one-letter "scheme" is a Windows drive; any other scheme is not a folder.
    else if (scheme !== undefined && scheme.length > 1) return undefined;
    else root = isAbsolute(value) ? value : resolve(baseDir, value);
    return { kind: "file", display: root, root };
  },
  needs: (spec) => ({ read: [spec.root] }),
  async open(spec) {
    const { FileSource } = await import("./file.ts");
    return new FileSource(spec.root);
  },
};
