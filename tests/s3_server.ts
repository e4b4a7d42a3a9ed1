/**
 * A real S3-compatible server for tests: npm `@20minutes/s3rver` (it checks
 * SigV4 signatures, serves ListObjectsV2 with continuation tokens and ETags),
 * installed by `.ci/run` into `tools/s3rver/` and started under Node on
 * 127.0.0.1. Without it the S3 tests are skipped with a notice, except in CI.
 *
 * @module
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { AwsClient } from "aws4fetch";
import { LineWatcher, ROOT } from "./helpers.ts";
import type { S3SourceOptions } from "../mod/source/s3/options.ts";

const DIR = join(ROOT, "tools", "s3rver");
/** Whether the server is installed here. */
const INSTALLED = existsSync(join(DIR, "node_modules", "@20minutes", "s3rver"));
/** Skipped: not installed, and not CI. */
const SKIP = !INSTALLED && Deno.env.get("CI") !== "true";

/** The server's fixed credentials. */
export const S3_KEYS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;

let noticed = false;

/** `Deno.test` for a test that needs the S3 server. */
export function s3Test(name: string, fn: () => Promise<void>) {
  if (SKIP && !noticed) {
    noticed = true;
    console.log("NOTICE: S3 tests skipped: run `npm ci --prefix tools/s3rver` to install the test S3 server");
  }
  Deno.test({
    name: `s3: ${name}`,
    ignore: SKIP,
    fn: async () => {
      assert.ok(INSTALLED, "CI=true needs the S3 server: .ci/run installs it with npm ci --prefix tools/s3rver");
      await fn();
    },
  });
}

/** A running S3 server. */
export interface S3Server {
  /** `http://127.0.0.1:PORT`. */
  readonly endpoint: string;
  /** Creates a bucket. */
  createBucket(name: string): Promise<void>;
  /** Stores an object (signed PUT). */
  put(bucket: string, key: string, body: string | Uint8Array): Promise<void>;
  /** Deletes an object. */
  remove(bucket: string, key: string): Promise<void>;
  /** Options of an S3 source over `bucket` on this server: signed, path-style, short timeouts; `overrides` win. */
  sourceOptions(bucket: string, overrides?: Partial<S3SourceOptions>): S3SourceOptions;
  close(): Promise<void>;
}

/** Starts the server on a free port with a fresh store folder. */
export async function startS3Server(): Promise<S3Server> {
  const store = await Deno.makeTempDir({ prefix: "bucketload-s3-" });
  const child = new Deno.Command("node", {
    args: [join(DIR, "start.cjs"), "0", store],
    env: { NODE_OPTIONS: "--openssl-legacy-provider" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const out = new LineWatcher(child.stdout);
  await out.waitFor(/^listening \d+/);
  const port = out.lines.find((l) => /^listening \d+/.test(l))?.split(" ")[1];
  assert.ok(port !== undefined, "the S3 server did not start");
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new AwsClient({ ...S3_KEYS, service: "s3", region: "us-east-1", retries: 0 });
  const url = (bucket: string, key = "") => `${endpoint}/${bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;
  const ok = async (res: Response) => {
    const text = await res.text();
    assert.ok(res.ok, `S3 answered ${res.status}: ${text}`);
  };
  return {
    endpoint,
    createBucket: async (name) => await ok(await client.fetch(`${endpoint}/${name}`, { method: "PUT" })),
    put: async (bucket, key, body) =>
      await ok(await client.fetch(url(bucket, key), { method: "PUT", body: body as BodyInit })),
    remove: async (bucket, key) => await ok(await client.fetch(url(bucket, key), { method: "DELETE" })),
    sourceOptions: (bucket, overrides = {}) => ({
      bucket,
      prefix: "",
      endpoint,
      region: "us-east-1",
      pathStyle: true,
      credentials: S3_KEYS,
      timeoutMs: 5000,
      retries: 1,
      retryBaseMs: 5,
      ...overrides,
    }),
    close: async () => {
      child.kill("SIGTERM");
      await out.cancel();
      await child.status;
      await Deno.remove(store, { recursive: true }).catch(() => {});
    },
  };
}
