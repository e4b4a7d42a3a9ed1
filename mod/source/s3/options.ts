/**
 * What configures an S3 source, apart from the source itself: its kind
 * (`kind.ts`) reads these without loading the S3 client (aws4fetch, the XML
 * parser).
 *
 * @module
 */

/** AWS credentials, from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`. */
export interface S3Credentials {
  /** `AWS_ACCESS_KEY_ID`. */
  readonly accessKeyId: string;
  /** `AWS_SECRET_ACCESS_KEY`. */
  readonly secretAccessKey: string;
  /** `AWS_SESSION_TOKEN`, for temporary credentials. */
  readonly sessionToken?: string | undefined;
}

/** Where an S3 bucket is and how to reach it. */
export interface S3SourceOptions {
  /** The bucket's name. */
  readonly bucket: string;
  /** Key prefix, ending in `/`, or empty. */
  readonly prefix: string;
  /** The endpoint, e.g. `https://s3.eu-west-1.amazonaws.com` or `http://127.0.0.1:9000`. */
  readonly endpoint: string;
  /** The AWS region requests are signed for. */
  readonly region: string;
  /** `endpoint/bucket/key` rather than `bucket.endpoint/key`. */
  readonly pathStyle: boolean;
  /** Signs requests when given; without, requests are unsigned (a public bucket). */
  readonly credentials?: S3Credentials | undefined;
  /** `REQUEST_TIMEOUT_SECONDS`, in milliseconds: the limit for one attempt, body included. */
  readonly timeoutMs: number;
  /** `RETRIES`: retries after the first attempt. */
  readonly retries: number;
  /** `RETRY_BASE_SECONDS`, in milliseconds: the first backoff delay. */
  readonly retryBaseMs: number;
  /** Keys per ListObjectsV2 page (tests use small pages). @default {1000} */
  readonly pageSize?: number | undefined;
}

/** The default endpoint of an AWS region. */
export function awsEndpoint(region: string): string {
  return `https://s3.${region}.amazonaws.com`;
}
