/**
 * `deno task docs`: writes `docs/configuration.md` from the key specs: the
 * core's (`mod/config/keys.ts`) and those each store, source and record type
 * declares with itself. A test fails when the page is stale.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { keyGroups, KINDS, type Kinds } from "../mod/config/keys.ts";

const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));

/** Where the page lives. */
export const CONFIGURATION_DOC = join(ROOT, "docs", "configuration.md");

const INTRO = `# Configuration

<!-- Generated from the key specs by \`deno task docs\`: edit them (mod/config/keys.ts, and each store's, source's and record type's own), not this page. -->

\`config.ini\` holds profiles. A \`[DEFAULT]\` section is inherited by every profile, as in Python's configparser; key names
are case-insensitive. **Relative paths resolve against the config file's folder** (or the working directory when there
is no config file). The file ships three profiles: \`default\` (the original public bucket), \`dev\` (the bundled sample
bucket, into \`dev.sqlite3\`) and \`docker\` (state under \`/data\`).

Every key can also be set in the environment as \`BUCKETLOAD_<KEY>\`, e.g. \`BUCKETLOAD_CONCURRENCY=4\`. Precedence, highest
first: **flag > environment > profile > \`[DEFAULT]\` > built-in default**. An unknown \`BUCKETLOAD_*\` variable is a config
error (exit 2), so a typo can't pass unnoticed. \`--profile\` (or \`BUCKETLOAD_PROFILE\`) without a config file is an
error that names the file and the profile. A value that may hold a credential is never echoed in an error.
`;

const RULES = `## How the file is read

The file is read with the rules of Python's \`configparser\` as the original used it (\`ConfigParser(interpolation=None)\`,
other settings at their defaults; a test compares the two on the same texts): \`KEY = value\` or \`KEY: value\`; **comments
are whole lines** that start with \`#\` or \`;\` (indented or not), and there are **no inline comments**: in
\`DATE_STORE_FORMAT = %Y-%m-%d ;%H\` the value keeps \` ;%H\`, and \`pa#ss\` or \`x;y\` stay whole. A line indented deeper than
its key continues the value; a UTF-8 BOM is skipped; text after a section header's \`]\` is ignored; a section or a key
given twice is an error naming both lines (\`line 9: key 'bucket_name' given twice in [default] (first on line 4)\`).
Values are raw (the original's \`DATE_STORE_FORMAT = %Y-%m-%d %H:%M:%S\` needs no \`%%\`). In a URL, write a \`#\` in a
password as \`%23\`, and percent-encode any special character of a \`DATABASE_URL\`'s user or password (\`;\` as \`%3B\`,
\`@\` as \`%40\`).
`;

/** The page's text: a table of keys for the core, then one for each store, source and record type that has keys. */
export function configurationDoc(kinds: Kinds = KINDS): string {
  const cell = (text: string) => text.replaceAll("|", "\\|");
  const tables = keyGroups(kinds).map((group) => {
    const rows = Object.entries(group.keys).map(([key, spec]) => {
      const shown = spec.shownDefault ??
        (spec.default === undefined || spec.default === "" ? "(none)" : `\`${spec.default}\``);
      return `| \`${key}\` | ${cell(shown)} | ${cell(spec.doc)} |`;
    });
    return `### ${group.title}

| key | default | meaning |
| --- | --- | --- |
${rows.join("\n")}
`;
  });
  return `${INTRO}
## Keys

The core's keys come first; each store, source and record type declares its own, listed after them under its name.

${tables.join("\n")}
${RULES}`;
}

if (import.meta.main) {
  await Deno.writeTextFile(CONFIGURATION_DOC, configurationDoc());
  console.log(`Wrote ${CONFIGURATION_DOC}`);
}
