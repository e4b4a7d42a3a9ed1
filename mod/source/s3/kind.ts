/**
 * The S3 source's descriptor: `s3://bucket[/prefix]` through the S3 API,
 * signed with the `AWS_*` credentials (or unsigned for a public bucket), and
 * its keys `S3_ENDPOINT`, `S3_REGION`, `S3_PATH_STYLE`. The S3 client
 * (aws4fetch, the XML parser) is loaded only to build the source.
 *
 * @module
 */
import { hostPort, refuseReason, schemeOf } from "../location.ts";
import type { SourceKind, SourceSpec } from "../kind.ts";
import { awsCredentials, awsCredentialsFile } from "./credentials.ts";
import { awsEndpoint, type S3SourceOptions } from "./options.ts";

/** An S3 bucket, described for the worker. */
export interface S3Spec extends SourceSpec, S3SourceOptions {
  /** The kind's name. */
  readonly kind: "s3";
}

/** S3 bucket names: 3–63 lower-case letters, digits, dots and hyphens (and underscores, which old buckets have). */
const S3_BUCKET = /^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$/;

/** The values `S3_PATH_STYLE` takes. */
const PATH_STYLES = ["auto", "yes", "no", "true", "false", "1", "0", "on", "off"] as const;

/** The bucket and prefix of an `s3://` value. */
function bucketOf(value: string): { bucket: string; prefix: string } {
  if (!value.toLowerCase().startsWith("s3://")) throw new RangeError("expected s3://bucket[/prefix]");
  const rest = value.slice("s3://".length);
  const slash = rest.indexOf("/");
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  let prefix = slash < 0 ? "" : rest.slice(slash + 1);
  if (!S3_BUCKET.test(bucket)) {
    throw new RangeError(
      `expected s3://bucket[/prefix] with a valid bucket name, got bucket ${JSON.stringify(bucket)}`,
    );
  }
  if (prefix !== "" && !prefix.endsWith("/")) prefix += "/";
  if (prefix !== "" && refuseReason(prefix.slice(0, -1)) !== undefined) {
    throw new RangeError(`the prefix ${JSON.stringify(prefix)} ${refuseReason(prefix.slice(0, -1))}`);
  }
  return { bucket, prefix };
}

/** S3 buckets through the S3 API: SigV4 or unsigned, path-style or virtual-host, ListObjectsV2 (`s3.ts`). */
export const s3Source: SourceKind<S3Spec> = {
  name: "s3",
  title: "S3",
  forms: "s3:",
  bucketName: {
    help: "s3://bucket[/prefix]",
    doc: '`s3://bucket[/prefix]` (the S3 API; see "S3 buckets")',
  },
  keys: {
    S3_ENDPOINT: {
      default: "",
      help: "S3 API endpoint (MinIO, R2, ...); default AWS's for S3_REGION",
      shownDefault: "(AWS's)",
      doc:
        "the S3 API endpoint for an `s3://` bucket: empty means `https://s3.<S3_REGION>.amazonaws.com`; MinIO, Cloudflare R2 or a local server give theirs, e.g. `http://127.0.0.1:9000`",
      check: (value) => value === "" || /^https?:\/\/[^/]/i.test(value) ? undefined : "an http(s):// URL",
    },
    S3_REGION: {
      default: "us-east-1",
      help: "S3 region, for the endpoint and request signing",
      doc: "the region, for AWS's endpoint and for signing",
      check: (value) => /^[a-z0-9-]+$/.test(value) ? undefined : "a region such as us-east-1",
    },
    S3_PATH_STYLE: {
      default: "auto",
      help: "auto, yes or no: endpoint/bucket/key URLs (auto: yes with S3_ENDPOINT)",
      doc:
        "`yes`: `endpoint/bucket/key` URLs; `no`: `bucket.endpoint/key` (virtual-host); `auto`: yes when `S3_ENDPOINT` is set",
      oneOf: PATH_STYLES,
    },
  },
  variables: [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "HOME",
  ],
  configure(value, { keys, env, fetch }) {
    if (schemeOf(value) !== "s3") return undefined;
    const { bucket, prefix } = bucketOf(value);
    const region = keys.str("S3_REGION").trim();
    const endpoint = keys.str("S3_ENDPOINT").trim();
    const pathStyle = keys.oneOf("S3_PATH_STYLE");
    return {
      kind: "s3",
      display: `s3://${bucket}/${prefix}`,
      bucket,
      prefix,
      endpoint: endpoint === "" ? awsEndpoint(region) : endpoint,
      region,
      pathStyle: pathStyle === "auto" ? endpoint !== "" : ["yes", "true", "1", "on"].includes(pathStyle),
      credentials: awsCredentials(env),
      ...fetch,
    };
  },
  needs(spec, env) {
    const endpoint = new URL(spec.endpoint);
    if (!spec.pathStyle) endpoint.hostname = `${spec.bucket}.${endpoint.hostname}`;
    // With AWS_PROFILE, the credentials come from the shared credentials file.
    const credentialsFile = env.AWS_PROFILE ? awsCredentialsFile(env) : undefined;
    return {
      read: credentialsFile === undefined ? [] : [credentialsFile],
      net: [hostPort(endpoint)],
      env: [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        ...(credentialsFile === undefined ? [] : ["AWS_SHARED_CREDENTIALS_FILE", "HOME"]),
      ],
    };
  },
  async open(spec) {
    const { S3Source } = await import("./s3.ts");
    return new S3Source(spec);
  },
};
