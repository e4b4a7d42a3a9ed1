# bucketload in a container. Build: docker build -t bucketload .
# Run:   docker run --rm -v bucketload-data:/data bucketload
# State (database, registry copy, logs) lives on the /data volume.
FROM denoland/deno:2.9.6

WORKDIR /app
# Dependencies first, exactly as locked, so code changes reuse this layer.
COPY deno.json deno.lock ./
RUN deno install --frozen
COPY main.ts config.ini ./
COPY mod/ ./mod/
RUN deno cache --frozen main.ts \
  && mkdir -p /data \
  && chown deno:deno /data

USER deno
VOLUME ["/data"]
ENV BUCKETLOAD_PROFILE=docker

# Narrow permissions: read the app and /data, write only /data, network for
# the bucket, environment for BUCKETLOAD_* overrides.
ENTRYPOINT ["deno", "run", "--cached-only", "--allow-net", "--allow-read=/app,/data", "--allow-write=/data", "--allow-env=BUCKETLOAD_*", "--v8-flags=--max-semi-space-size=8", "main.ts"]
CMD []
