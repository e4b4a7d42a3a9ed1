/**
 * What configures an S3 source, apart from the source itself: config reads
 * these without loading the S3 client (aws4fetch, the XML parser).
 *
 * @module
 */

/** AWS credentials, from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`. */
export interface S3Credentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string | undefined;
}

/** Where an S3 bucket is and how to reach it. */
export interface S3SourceOptions {
  readonly bucket: string;
  /** Key prefix, ending in `/`, or empty. */
  readonly prefix: string;
  /** The endpoint, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`. */
  readonly endpoint: string;
  readonly region: string;
  /** `endpoint/bucket/key` rather than `bucket.endpoint/key`. */
  readonly pathStyle: boolean;
  /** Signs requests when given; without, requests are unsigned (a public bucket). */
  readonly credentials?: S3Credentials | undefined;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryBaseMs: number;
  /** Keys per ListObjectsV2 page (tests use small pages). @default {1000} */
  readonly pageSize?: number | undefined;
}

/** The default endpoint of an AWS region. */
export function awsEndpoint(region: string): string {
  return `https://s3.${region}.amazonaws.com`;
}

/** The S3 source's profile keys (their specs join `CONFIG_KEYS`; `config.ts` reads them in `s3Of`). */
export const S3_KEYS: Readonly<
  Record<
    string,
    { readonly default: string; readonly help: string; readonly doc: string; readonly shownDefault?: string }
  >
> = {
  S3_ENDPOINT: {
    default: "",
    help: "S3 API endpoint (MinIO, R2, ...); default AWS's for S3_REGION",
    shownDefault: "(AWS's)",
    doc:
      "the S3 API endpoint for an `s3://` bucket: empty means `https://s3.<S3_REGION>.amazonaws.com`; MinIO, Cloudflare R2 or a local server give theirs, e.g. `http://127.0.0.1:9000`",
  },
  S3_REGION: {
    default: "us-east-1",
    help: "S3 region, for the endpoint and request signing",
    doc: "the region, for AWS's endpoint and for signing",
  },
  S3_PATH_STYLE: {
    default: "auto",
    help: "auto, yes or no: endpoint/bucket/key URLs (auto: yes with S3_ENDPOINT)",
    doc:
      "`yes`: `endpoint/bucket/key` URLs; `no`: `bucket.endpoint/key` (virtual-host); `auto`: yes when `S3_ENDPOINT` is set",
  },
};
