/**
 * AWS credentials as the AWS CLI finds them: `AWS_ACCESS_KEY_ID`,
 * `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, or an `AWS_PROFILE`
 * profile of the shared credentials file.
 *
 * @module
 */
import { resolve } from "node:path";
import { UsageError } from "../../common/errors.ts";
import { parseIni } from "../../common/ini.ts";
import type { S3Credentials } from "./options.ts";

/**
 * AWS credentials from the standard variables, or `undefined` for unsigned
 * requests. One of the key pair without the other is a config error.
 */
export function awsCredentials(env: Readonly<Record<string, string>>): S3Credentials | undefined {
  const id = env.AWS_ACCESS_KEY_ID?.trim() ?? "", secret = env.AWS_SECRET_ACCESS_KEY?.trim() ?? "";
  if (id === "" && secret === "") return env.AWS_PROFILE?.trim() ? profileCredentials(env) : undefined;
  if (id === "" || secret === "") {
    const missing = id === "" ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY";
    throw new UsageError(`${missing} is not set, but its pair is: set both, or neither for a public bucket`, {
      subject: missing,
    });
  }
  const token = env.AWS_SESSION_TOKEN?.trim();
  return { accessKeyId: id, secretAccessKey: secret, ...(token ? { sessionToken: token } : {}) };
}

/** The shared credentials file: `AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`. */
export function awsCredentialsFile(env: Readonly<Record<string, string>>): string | undefined {
  return env.AWS_SHARED_CREDENTIALS_FILE?.trim() || (env.HOME ? resolve(env.HOME, ".aws", "credentials") : undefined);
}

/**
 * The credentials of the `AWS_PROFILE` profile in the shared credentials
 * file, as the AWS CLI reads them (`aws_access_key_id`,
 * `aws_secret_access_key`, `aws_session_token`).
 *
 * @throws {UsageError} naming AWS_PROFILE, the file and what is missing
 */
function profileCredentials(env: Readonly<Record<string, string>>): S3Credentials {
  const profile = env.AWS_PROFILE!.trim();
  const file = awsCredentialsFile(env);
  const fail = (why: string): never => {
    throw new UsageError(`Cannot use AWS_PROFILE '${profile}': ${why}`, { subject: "AWS_PROFILE" });
  };
  if (file === undefined) return fail("no HOME to find ~/.aws/credentials in (set AWS_SHARED_CREDENTIALS_FILE)");
  let sections: Map<string, Map<string, string>>;
  try {
    sections = parseIni(Deno.readTextFileSync(file));
  } catch (error) {
    return fail(`cannot read ${file}: ${(error as Error).message}`);
  }
  const section = sections.get(profile) ?? fail(`no [${profile}] section in ${file}`);
  const id = section.get("aws_access_key_id")?.trim() || fail(`no aws_access_key_id in [${profile}] of ${file}`);
  const secret = section.get("aws_secret_access_key")?.trim() ||
    fail(`no aws_secret_access_key in [${profile}] of ${file}`);
  const token = section.get("aws_session_token")?.trim();
  return { accessKeyId: id, secretAccessKey: secret, ...(token ? { sessionToken: token } : {}) };
}
