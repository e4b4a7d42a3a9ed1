/**
 * `deno task install`: puts a `bucketload` command on the PATH with
 * `deno install -g` (into `$DENO_INSTALL_ROOT/bin`, by default
 * `~/.deno/bin`). The command is the least-privilege launcher (`launch.ts`)
 * of this checkout, with the permissions of `deno task run`; relative paths
 * in flags resolve against the folder it is run from, and relative paths in a
 * config file against that file's folder. Run it again after updating the
 * checkout.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

/** The `deno install` arguments that install the command. */
export function installArgs(root = ROOT): string[] {
  return [
    "install",
    "--global",
    "--force",
    "--name",
    "bucketload",
    // The launcher imports no npm package, so it needs no config; it runs main.ts with this checkout's deno.json
    // and node_modules (--cached-only). With the config, deno install would fetch every package again, elsewhere.
    "--no-config",
    // Both Deno processes of the command start offline: this one, and the launcher's child (launch.ts).
    "--cached-only",
    "--no-prompt",
    "--allow-read",
    "--allow-env",
    "--allow-run",
    join(root, "launch.ts"),
    // The command's first argument: the launcher names it so in --help and hints (launch.ts startedAs).
    "--",
    "--installed-as=bucketload",
  ];
}

if (import.meta.main) {
  const { code } = await new Deno.Command(Deno.execPath(), { args: installArgs(), cwd: ROOT }).spawn().status;
  if (code === 0) {
    const bin = join(Deno.env.get("DENO_INSTALL_ROOT") ?? join(Deno.env.get("HOME") ?? "~", ".deno"), "bin");
    console.log(`Installed: ${join(bin, "bucketload")} (make sure ${bin} is on your PATH; try: bucketload --help)`);
  }
  Deno.exit(code);
}
