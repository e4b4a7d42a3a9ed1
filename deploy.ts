/**
 * Deno Deploy entry: a cron job that loads the bucket into PostgreSQL, and a
 * status endpoint. Set `BUCKETLOAD_BUCKET_NAME`, `DATABASE_URL` (Deploy sets
 * it for a linked database) and optionally `BUCKETLOAD_SCHEDULE` and any other
 * `BUCKETLOAD_*` key. See the README, "Deno Deploy".
 *
 * @module
 */
import { deploySchedule, handleRequest, runScheduled } from "./mod/deploy.ts";

const env = () => Deno.env.toObject();

// At the module's top level, where Deploy finds cron jobs.
Deno.cron("bucketload", deploySchedule(env()), async () => {
  await runScheduled(env());
});

// Deploy picks the address itself; PORT and HOSTNAME serve a local try.
const { PORT = "8000", HOSTNAME = "0.0.0.0" } = env();
Deno.serve({ port: Number(PORT), hostname: HOSTNAME }, (request) => handleRequest(request, env()));
