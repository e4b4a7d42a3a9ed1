/**
 * What each kind of source needs the launcher to grant its child: the paths
 * it reads, the hosts it reaches, the variables it reads. Kept beside the
 * sources, so that a new kind says its needs here and the launcher does not
 * change.
 *
 * @module
 */
import { hostPort } from "./location.ts";
import { awsCredentialsFile } from "./s3_credentials.ts";
import type { SourceConfig } from "./spec.ts";

/** Permissions a source needs. */
export interface SourceNeeds {
  readonly read: readonly string[];
  /** `host:port` pairs. */
  readonly net: readonly string[];
  readonly env: readonly string[];
}

/** The needs of the configured source; `vars` is the environment (for `AWS_PROFILE`). */
export function sourceNeeds(config: SourceConfig, vars: Readonly<Record<string, string>>): SourceNeeds {
  const { bucket } = config;
  switch (bucket.kind) {
    case "file":
      return { read: [bucket.root], net: [], env: [] };
    case "http":
      return { read: [], net: [hostPort(bucket.base)], env: [] };
    case "s3": {
      const endpoint = new URL(config.s3.endpoint);
      if (!config.s3.pathStyle) endpoint.hostname = `${bucket.bucket}.${endpoint.hostname}`;
      // With AWS_PROFILE, the credentials come from the shared credentials file.
      const credentialsFile = vars.AWS_PROFILE ? awsCredentialsFile(vars) : undefined;
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
    }
  }
}
