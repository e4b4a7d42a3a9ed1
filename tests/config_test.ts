import assert from "node:assert/strict";
import { join } from "node:path";
import { loadConfig, parseConfigText, resolveConfig } from "../mod/config/config.ts";
import { UsageError } from "../mod/common/errors.ts";
import { httpSource } from "../mod/source/http/kind.ts";
import { s3Source } from "../mod/source/s3/kind.ts";
import { sqliteStore } from "../mod/store/sqlite/kind.ts";
import { cli, query, sourceSpecOf, storeSpecOf, withServedCase } from "./helpers.ts";

const ORIGINAL = `[default]
DATABASE_NAME = db.sqlite3
BUCKET_NAME = data-engineering-interns.macpaw.io
FILES_LIST_KEY = files_list.data
BUCKET_ENCODING = utf8
DATE_STORE_FORMAT = %Y-%m-%d %H:%M:%S
PROCESSED_FILES_FILENAME = processed.json
SAVE_LOG = yes
`;
const PATH = "/etc/bucketload/config.ini";
const resolve = (text: string, extra: Partial<Parameters<typeof resolveConfig>[0]> = {}) =>
  resolveConfig({ sections: parseConfigText(text, PATH), configPath: PATH, ...extra });
/** The named fields of `object`. */
const pick = <T extends object, K extends keyof T>(object: T, keys: readonly K[]) =>
  Object.fromEntries(keys.map((k) => [k, object[k]])) as Pick<T, K>;
const usageError = (fn: () => unknown, message: RegExp) =>
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UsageError, `expected a UsageError, got ${e}`);
    assert.match(e.message, message);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });

Deno.test("resolveConfig() accepts the original profile as written", () => {
  const c = resolve(ORIGINAL);
  assert.equal(c.profile, "default");
  assert.equal(storeSpecOf(c, sqliteStore)?.path, "/etc/bucketload/db.sqlite3");
  assert.equal(c.source.kind.name, "http");
  assert.equal(c.source.spec.display, "http://data-engineering-interns.macpaw.io/");
  assert.equal(c.filesListKey, "files_list.data");
  assert.equal(c.encoding, "utf8");
  assert.equal(c.dateStoreFormat, "%Y-%m-%d %H:%M:%S");
  assert.equal(c.processedFilesPath, "/etc/bucketload/processed.json");
  assert.equal(c.logDir, "/etc/bucketload/logs");
  assert.equal(c.concurrency, 8);
  assert.equal(sourceSpecOf(c, httpSource)?.timeoutMs, 30_000);
  assert.equal(sourceSpecOf(c, httpSource)?.retries, 4);
  assert.deepEqual(c.typeSettings, { AWESOME_MIN_RATING: 4.5, AWESOME_MAX_SIZE_BYTES: 100_000_000 });
});

Deno.test("resolveConfig() inherits [DEFAULT] and lets the profile win", () => {
  const c = resolve("[DEFAULT]\nCONCURRENCY = 3\nRETRIES = 1\nBUCKET_NAME = a.example\n[dev]\nRETRIES = 2\n", {
    profile: "dev",
  });
  assert.equal(c.concurrency, 3);
  assert.equal(sourceSpecOf(c, httpSource)?.retries, 2);
  assert.equal(c.source.spec.display, "http://a.example/");
});

Deno.test("resolveConfig() folds key case like configparser", () => {
  assert.equal(resolve("[p]\nbucket_name = h.example\nconcurrency = 5\n", { profile: "p" }).concurrency, 5);
});

Deno.test("resolveConfig() resolves relative paths against the config file's folder", () => {
  const c = resolve("[dev]\nBUCKET_NAME = ./fixtures/b\nDATABASE_NAME = data/dev.sqlite3\n", { profile: "dev" });
  assert.deepEqual(c.source.spec, {
    kind: "file",
    root: "/etc/bucketload/fixtures/b",
    display: "/etc/bucketload/fixtures/b",
  });
  assert.equal(storeSpecOf(c, sqliteStore)?.path, "/etc/bucketload/data/dev.sqlite3");
  assert.equal(c.processedFilesPath, undefined);
  assert.equal(c.logDir, undefined);
});

Deno.test("resolveConfig() parses every BUCKET_NAME form", () => {
  const b = (v: string) => resolve(`[p]\nBUCKET_NAME = ${v}\n`, { profile: "p" }).source.spec;
  assert.equal(b("https://example.com:8443/pre/fix").display, "https://example.com:8443/pre/fix/");
  assert.equal(b("localhost:9000").display, "http://localhost:9000/");
  assert.deepEqual(b("file:///srv/bucket"), { kind: "file", root: "/srv/bucket", display: "/srv/bucket" });
  assert.equal(b("/srv/bucket").kind, "file");
  const withCreds = resolve(`[p]\nBUCKET_NAME = http://user:p%40ss@example.com/x\n`, { profile: "p" });
  assert.equal(withCreds.source.spec.display, "http://example.com/x/");
  assert.equal(sourceSpecOf(withCreds, httpSource)?.authorization, `Basic ${btoa("user:p@ss")}`);
  const s3Bucket = resolve(`[p]\nBUCKET_NAME = s3://my-bucket/in/2021\n`, { profile: "p" });
  assert.deepEqual(pick(sourceSpecOf(s3Bucket, s3Source)!, ["kind", "bucket", "prefix", "display"]), {
    kind: "s3",
    bucket: "my-bucket",
    prefix: "in/2021/",
    display: "s3://my-bucket/in/2021/",
  });
  assert.equal(b("s3://my-bucket").display, "s3://my-bucket/");
  usageError(
    () => b("s3://B"),
    /^Cannot parse 'BUCKET_NAME' in profile 'p' of \S+: expected s3:\/\/bucket\[\/prefix\]/,
  );
  usageError(() => b("s3://bucket/../x"), /the prefix "\.\.\/x\/" has an empty, '\.' or '\.\.' path segment/);
  usageError(() => b("gs://bucket"), /unsupported scheme 'gs:', expected http:, https:, s3:, file: or a folder path/);
  // S3 settings: AWS's endpoint for the region and virtual-host URLs, or a given endpoint with path-style URLs.
  const s3 = (extra: string, env: Record<string, string> = {}) => {
    const spec = sourceSpecOf(resolve(`[p]\nBUCKET_NAME = s3://b-1/x\n${extra}`, { profile: "p", env }), s3Source)!;
    return pick(spec, ["endpoint", "region", "pathStyle", "credentials"]);
  };
  assert.deepEqual(s3("S3_REGION = eu-west-1\n"), {
    endpoint: "https://s3.eu-west-1.amazonaws.com",
    region: "eu-west-1",
    pathStyle: false,
    credentials: undefined,
  });
  assert.equal(s3("S3_ENDPOINT = http://127.0.0.1:9000\n").pathStyle, true);
  assert.equal(s3("S3_ENDPOINT = http://127.0.0.1:9000\nS3_PATH_STYLE = no\n").pathStyle, false);
  assert.deepEqual(s3("", { AWS_ACCESS_KEY_ID: "id", AWS_SECRET_ACCESS_KEY: "secret" }).credentials, {
    accessKeyId: "id",
    secretAccessKey: "secret",
  });
  usageError(() => s3("S3_ENDPOINT = ftp://x\n"), /^Cannot parse 'S3_ENDPOINT' .*: expected an http\(s\):\/\/ URL/);
});

Deno.test("resolveConfig() lists the existing profiles for an unknown one", () => {
  usageError(
    () => resolve("[DEFAULT]\n[dev]\nBUCKET_NAME=x\n[prod]\nBUCKET_NAME=y\n", { profile: "stage" }),
    /^Unknown profile 'stage' in \/etc\/bucketload\/config.ini: expected one of dev, prod$/,
  );
});

Deno.test("resolveConfig() suggests the closest key for an unknown one", () => {
  usageError(
    () => resolve("[p]\nBUCKET_NAME=x\nCONCURENCY = 4\n", { profile: "p" }),
    /^Unknown key 'CONCURENCY' in profile 'p' .*did you mean 'CONCURRENCY'\?$/,
  );
  usageError(
    () => resolve("[DEFAULT]\nDATABASE_NAM = x\n[p]\nBUCKET_NAME=x\n", { profile: "p" }),
    /\[DEFAULT\].*did you mean 'DATABASE_NAME'/,
  );
});

Deno.test("resolveConfig() names the key and value of every bad value", () => {
  const bad = (line: string, re: RegExp) =>
    usageError(() => resolve(`[p]\nBUCKET_NAME=x\n${line}\n`, { profile: "p" }), re);
  bad(
    "CONCURRENCY = abc",
    /^Cannot parse 'CONCURRENCY' in profile 'p' of \/etc\/bucketload\/config.ini: expected an integer 1–1024, got "abc"$/,
  );
  bad("CONCURRENCY = 0", /'CONCURRENCY'.*got "0"/);
  bad("RETRIES = 1.5", /'RETRIES'.*expected an integer/);
  bad("REQUEST_TIMEOUT_SECONDS = -1", /'REQUEST_TIMEOUT_SECONDS'/);
  bad("AWESOME_MIN_RATING = 6", /'AWESOME_MIN_RATING'.*got "6"/);
  bad("SAVE_LOG = maybe", /'SAVE_LOG'.*yes\/no/);
  bad("BUCKET_ENCODING = klingon", /'BUCKET_ENCODING'.*got "klingon"/);
  bad("DATE_STORE_FORMAT = %Y-%Q", /'DATE_STORE_FORMAT'.*unknown directive '%Q'/);
  bad("LOG_LEVEL = loud", /'LOG_LEVEL'.*one of debug, info, warning, error/);
  usageError(() => resolve("[p]\nCONCURRENCY=2\n", { profile: "p" }), /^Missing 'BUCKET_NAME' in profile 'p'/);
});

Deno.test("resolveConfig() applies flag > environment > profile > [DEFAULT] > built-in", () => {
  const text =
    "[DEFAULT]\nRETRIES = 1\nCONCURRENCY = 2\nLOCK_TIMEOUT_SECONDS = 3\n[p]\nBUCKET_NAME=x\nCONCURRENCY = 4\nRETRIES = 5\n";
  const c = resolve(text, {
    profile: "p",
    env: { BUCKETLOAD_CONCURRENCY: "6", BUCKETLOAD_RETRIES: "7", PATH: "/bin" },
    overrides: { CONCURRENCY: "9" },
  });
  assert.equal(c.concurrency, 9);
  assert.equal(sourceSpecOf(c, httpSource)?.retries, 7);
  assert.equal(storeSpecOf(c, sqliteStore)?.lockTimeoutMs, 3000);
  assert.equal(c.maxFileBytes, 512 * 1024 * 1024);
  usageError(
    () => resolve(text, { profile: "p", env: { BUCKETLOAD_RETRYS: "1" } }),
    /'BUCKETLOAD_RETRYS'.*did you mean 'BUCKETLOAD_RETRIES'/,
  );
});

Deno.test("loadConfig() runs from the environment alone when ./config.ini is absent", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const c = await loadConfig({ cwd: dir, env: { BUCKETLOAD_BUCKET_NAME: "./b", BUCKETLOAD_DATABASE_NAME: "x.db" } });
    assert.equal(c.configPath, undefined);
    assert.equal(storeSpecOf(c, sqliteStore)?.path, join(dir, "x.db"));
    assert.deepEqual(c.source.spec, { kind: "file", root: join(dir, "b"), display: join(dir, "b") });
    await assert.rejects(
      loadConfig({ cwd: dir, configPath: "nope.ini" }),
      /^UsageError: Cannot read config file .*nope.ini/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a record type's own key (AWESOME_MIN_RATING) reaches its rows from the profile, through the worker", async () => {
  await withServedCase("basic", async ({ dir, config }) => {
    const ini = await config("AWESOME_MIN_RATING = 4.9\nWORKER = yes\n");
    const run = await cli(["--config", ini, "--profile", "p", "--quiet"]);
    assert.equal(run.code, 0, run.stderr);
    const apps = query(join(dir, "db.sqlite3"), "SELECT rating, is_awesome FROM apps ORDER BY rating");
    // Under the default (4.5) the 4.5 app is awesome; with 4.9 only the 5 is.
    assert.deepEqual(apps.map((a) => [a.rating, a.is_awesome]), [[4, 0], [4.5, 0], [5, 1]]);
  });
});
