# bucketload in a container. Build: docker build -t bucketload .
# Run:   docker run --rm -v bucketload-data:/data bucketload
#        docker run --rm -v bucketload-data:/data bucketload status
# State (database, registry copy, logs) lives on the /data volume.
FROM denoland/deno:2.9.6

WORKDIR /app
RUN mkdir -p /data && chown deno:deno /app /data
# Build and run as the image's non-root user, so the cache it fills is its own.
USER deno

# Dependencies first, exactly as locked, so code changes reuse this layer.
# Deno installs every package of the lockfile, so the test-only fast-check is
# removed from deno.json and deno.lock first (the other versions stay locked:
# the install is --frozen). .dockerignore keeps tests/, tools/, .git and
# .bench/ out of the build context.
COPY --chown=deno:deno deno.json deno.lock ./
RUN deno remove fast-check && deno install --frozen
COPY --chown=deno:deno main.ts launch.ts config.ini ./
COPY --chown=deno:deno mod/ ./mod/

VOLUME ["/data"]
ENV BUCKETLOAD_PROFILE=docker
# With OTEL_DENO=true, log lines are exported through the console without printing them twice (docs/operating.md).
ENV OTEL_DENO_CONSOLE=replace

# Narrow permissions: read the app and /data, write only /data, network for
# the bucket, environment for BUCKETLOAD_* overrides. A smaller V8 young
# generation keeps RSS under 200 MB at the same speed.
ENTRYPOINT ["deno", "run", "--cached-only", "--no-prompt", "--allow-net", "--allow-read=/app,/data", "--allow-write=/data", "--allow-env=BUCKETLOAD_*,DATABASE_URL,PG*,AWS_ACCESS_KEY_ID,AWS_SECRET_ACCESS_KEY,AWS_SESSION_TOKEN,OTEL_*", "--v8-flags=--max-semi-space-size=4", "main.ts"]
CMD []
