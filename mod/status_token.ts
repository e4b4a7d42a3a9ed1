/**
 * `STATUS_TOKEN`: who may read the status report over HTTP. A request shows
 * the token as `Authorization: Bearer <token>`, or as `?token=<token>` for a
 * browser; it is compared in constant time.
 *
 * @module
 */

/** Whether `request` may see the status: always when no token is set. */
export function authorized(request: Request, url: URL, token: string | undefined): boolean {
  if (token === undefined) return true;
  const header = request.headers.get("authorization") ?? "";
  const bearer = /^Bearer\s+(.+)$/i.exec(header.trim())?.[1];
  const given = bearer ?? url.searchParams.get("token");
  return given !== null && sameSecret(given, token);
}

/** Compares two strings in time that depends on their lengths only. */
export function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a), y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}
