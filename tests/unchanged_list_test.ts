/**
 * "A second run does nothing" on servers we did not write: one that never
 * sends validators (so never answers 304), and Debian's nginx (ETag, 304 and
 * gzip). An unchanged list body is as unchanged as a 304.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startBucketServer } from "./bucket_server.ts";
import { CASES, cli, copyCase, query, withTempDir, writeConfig } from "./helpers.ts";

const runCount = (db: string) => query(db, "SELECT count(*) AS n FROM runs")[0]!.n as number;

Deno.test("a server without validators: an unchanged list body is 'nothing to do', with no run row; Last checked shows it", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    const server = await startBucketServer(bucket);
    try {
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${server.url}\nDATABASE_NAME = db.sqlite3\n`);
      const args = ["--config", config, "--profile", "p"];
      const db = join(dir, "db.sqlite3");
      const first = await cli(args);
      assert.equal(first.code, 0, first.stderr);
      assert.equal(runCount(db), 1);
      const second = await cli(args);
      assert.equal(second.code, 0, second.stderr);
      assert.match(second.stdout, /nothing to do .*the list is unchanged and no key is pending/);
      assert.equal(runCount(db), 1, "an unchanged list added a run row");
      assert.equal(server.hits("files_list.data"), 2);
      const status = await cli(["status", ...args]);
      assert.match(status.stdout, /Last checked: \S+ \(list unchanged, nothing pending\)/);
      // A changed body is a run again.
      const list = join(bucket, "files_list.data");
      await Deno.writeTextFile(list, (await Deno.readTextFile(list)).trimEnd() + "\nnot-there-yet.data\n");
      const third = await cli(args);
      assert.equal(third.code, 0, third.stderr);
      assert.equal(runCount(db), 2);
    } finally {
      await server.close();
    }
  });
});

/** A free TCP port on 127.0.0.1. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Starts Debian's nginx in the foreground over `root` on 127.0.0.1, with gzip on; returns its URL and a stop. */
async function startNginx(dir: string, root: string) {
  const port = freePort();
  const conf = join(dir, "nginx.conf");
  await Deno.mkdir(join(dir, "nginx-tmp"), { recursive: true });
  await Deno.writeTextFile(
    conf,
    `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log;
events {}
http {
  log_format bl '"$request" $status gzip=$gzip_ratio';
  access_log ${dir}/nginx-access.log bl;
  client_body_temp_path ${dir}/nginx-tmp/body;
  proxy_temp_path ${dir}/nginx-tmp/proxy;
  fastcgi_temp_path ${dir}/nginx-tmp/fastcgi;
  uwsgi_temp_path ${dir}/nginx-tmp/uwsgi;
  scgi_temp_path ${dir}/nginx-tmp/scgi;
  default_type application/octet-stream;
  gzip on;
  gzip_types *;
  gzip_min_length 0;
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`,
  );
  const child = new Deno.Command("nginx", {
    args: ["-e", `${dir}/nginx-error.log`, "-c", conf],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const url = `http://127.0.0.1:${port}/`;
  for (let i = 0;; i++) {
    try {
      await (await fetch(url + "files_list.data")).body?.cancel();
      break;
    } catch (error) {
      if (i > 100) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return {
    url,
    accessLog: () => Deno.readTextFile(`${dir}/nginx-access.log`),
    stop: async () => {
      child.kill("SIGTERM");
      await child.stderr.cancel();
      await child.status;
    },
  };
}

Deno.test("Debian's nginx (ETag, 304, gzip): the second run is 'nothing to do' by a 304; the rows equal our server's", async () => {
  await withTempDir(async (dir) => {
    const bucket = await copyCase("basic", dir);
    await Deno.chmod(dir, 0o755);
    const nginx = await startNginx(dir, bucket);
    try {
      const config = await writeConfig(dir, `[p]\nBUCKET_NAME = ${nginx.url}\nDATABASE_NAME = db.sqlite3\n`);
      const args = ["--config", config, "--profile", "p"];
      const db = join(dir, "db.sqlite3");
      const first = await cli(args);
      assert.equal(first.code, 0, first.stderr);
      const second = await cli(args);
      assert.equal(second.code, 0, second.stderr);
      assert.match(second.stdout, /nothing to do/);
      assert.equal(runCount(db), 1);
      const log = await nginx.accessLog();
      assert.match(
        log,
        /"GET \/files_list\.data HTTP\/1\.1" 304 /,
        "nginx did not answer the second list GET with 304",
      );
      // gzip was in use: the data files went compressed, and still load exactly as from our own server.
      assert.match(log, /"GET \/a1b2c3d4-\S+ HTTP\/1\.1" 200 gzip=\d/, "nginx did not gzip the data files");
      const ours = await startBucketServer(join(CASES, "basic"));
      try {
        const other = await writeConfig(
          join(dir, "nginx-tmp"),
          `[p]\nBUCKET_NAME = ${ours.url}\nDATABASE_NAME = o.sqlite3\n`,
        );
        assert.equal((await cli(["--config", other, "--profile", "p"])).code, 0);
        const rows = (path: string) =>
          ["songs", "movies", "apps"].map((t) =>
            query(path, `SELECT * FROM ${t} ORDER BY 1, 2`).map(({ source_pos: _, ingestion_time: __, ...r }) => r)
          );
        assert.deepEqual(rows(db), rows(join(dir, "nginx-tmp", "o.sqlite3")));
      } finally {
        await ours.close();
      }
    } finally {
      await nginx.stop();
    }
  });
});
