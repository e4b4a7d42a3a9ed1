/**
 * Deno Deploy entry: a cron job that loads the bucket into PostgreSQL, and a
 * status endpoint. Set `BUCKETLOAD_BUCKET_NAME`, `DATABASE_URL` (Deploy sets
 * it for a linked database) and optionally `BUCKETLOAD_SCHEDULE`,
 * `BUCKETLOAD_STATUS_TOKEN` and any other `BUCKETLOAD_*` key. See docs/operating.md,
 * "Deno Deploy".
 *
 * @module
 */
import { checkDeployStart, deployAddress, handleRequest, runScheduled } from "./mod/deploy.ts";

const env = () => Deno.env.toObject();

// Checked before Deno.cron sees it (a bad schedule there is an uncaught error, or a panic): one line, exit 2.
const start = await checkDeployStart(env());
if ("error" in start) {
  console.error(`bucketload: ${start.error}`);
  Deno.exit(2);
}
for (const warning of start.warnings) console.warn(`bucketload: ${warning}`);

// At the module's top level, where Deploy finds cron jobs.
Deno.cron("bucketload", start.schedule, async () => {
  await runScheduled(env());
});

// Deploy picks the address itself; BUCKETLOAD_HOST and BUCKETLOAD_PORT (or PORT) serve elsewhere. HOSTNAME is not
// read: Docker and Kubernetes set it to the container's name.
Deno.serve(deployAddress(env()), (request) => handleRequest(request, env()));
