/**
 * Deno Deploy entry: a cron job that loads the bucket into PostgreSQL, and a
 * status endpoint. Set `BUCKETLOAD_BUCKET_NAME`, `DATABASE_URL` (Deploy sets
 * it for a linked database) and optionally `BUCKETLOAD_SCHEDULE`,
 * `BUCKETLOAD_STATUS_TOKEN` and any other `BUCKETLOAD_*` key. See docs/operating.md,
 * "Deno Deploy".
 *
 * @module
 */
import { checkDeployStart, handleRequest, listenFailure, runScheduled } from "./mod/entries/deploy.ts";

const env = () => Deno.env.toObject();

// The whole environment is checked before Deno.cron sees the schedule (a bad one there is an uncaught error, or a
// panic) and before anything listens: the schedule, every BUCKETLOAD_* variable and value, DATABASE_URL, the
// address. A fault is one line and exit 2.
const start = await checkDeployStart(env());
if ("error" in start) {
  console.error(`bucketload: ${start.error}`);
  Deno.exit(2);
}
for (const warning of start.warnings) console.warn(`bucketload: ${warning}`);

// At the module's top level, where Deploy finds cron jobs. runScheduled never throws: a failed run is one line, and
// Deno.cron neither prints a stack nor retries it (the next tick does the work).
Deno.cron("bucketload", start.schedule, async () => {
  await runScheduled(env());
});

// Deploy picks the address itself; BUCKETLOAD_HOST and BUCKETLOAD_PORT (or PORT) serve elsewhere. HOSTNAME is not
// read: Docker and Kubernetes set it to the container's name.
try {
  Deno.serve(start.address, (request) => handleRequest(request, env()));
} catch (error) {
  const line = listenFailure(error, start.address);
  if (line === undefined) throw error;
  console.error(`bucketload: ${line}`);
  Deno.exit(2);
}
