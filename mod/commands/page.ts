/**
 * The status page `serve` answers `GET /` with: the status report as one
 * self-contained HTML document (styles and the chart inline, no script, no
 * request to any other host), readable at 1280 px and on a phone. Every
 * text from the database (keys, reasons, raw records, the bucket) is escaped:
 * they are the bucket's, and the bucket may be hostile.
 *
 * @module
 */
import type { RunRow, StatusReport } from "../store/status.ts";
import { DRIFT_FIELDS_PER_TYPE } from "../records/drift.ts";

/** `text` as HTML text or attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const n = (x: number) => Number(x).toLocaleString("en-US");
const seconds = (r: RunRow) =>
  r.finished_at === null ? null : Math.max(0, (Date.parse(r.finished_at) - Date.parse(r.started_at)) / 1000);

/** The series of the chart, in stacking order, with their colours (colour-blind safe). */
const SERIES = [
  ["rows_inserted", "inserted", "#0072b2"],
  ["rows_updated", "updated", "#56b4e9"],
  ["rows_removed", "removed", "#e69f00"],
  ["records_rejected", "rejected", "#d55e00"],
] as const;

/**
 * The axis labels' largest font size, in the chart's units: the phone
 * layout's (`STYLE`), where the chart is drawn at about half its size.
 */
const TICK_FONT = 24;

/**
 * How wide `text` may render at {@linkcode TICK_FONT}, in the chart's
 * units: 0.65 em a character, at least the advance of the widest common
 * sans-serif digits (DejaVu Sans: 0.64 em). The page has no script to measure
 * with, so the chart's margins are made from this bound.
 */
const labelWidth = (text: string) => Math.ceil(text.length * TICK_FONT * 0.65);

/** Rows per run as stacked bars, and each run's duration as a line on its own scale. */
export function runsChart(runs: readonly RunRow[]): string {
  if (runs.length === 0) return `<p class="empty">No runs yet.</p>`;
  const totals = runs.map((r) => SERIES.reduce((sum, [k]) => sum + Number(r[k]), 0));
  const maxRows = Math.max(1, ...totals);
  const maxSecs = Math.max(0.001, ...runs.map((r) => seconds(r) ?? 0));
  const rowsLabel = n(maxRows), secsLabel = `${maxSecs.toFixed(1)} s`;
  // The margins hold the axis labels whole (at the phone's font), anchored to the plot's edges.
  const W = 720, H = 240, top = 16, bottom = 28, gap = 6;
  const left = Math.max(56, labelWidth(rowsLabel) + 2 * gap), right = Math.max(48, labelWidth(secsLabel) + 2 * gap);
  const plotW = W - left - right, plotH = H - top - bottom;
  const step = plotW / runs.length;
  // Every k-th run is labelled: at most 12 labels, and never closer than the widest run id is wide.
  const every = Math.max(
    Math.ceil(runs.length / 12),
    Math.ceil((labelWidth(String(Math.max(...runs.map((r) => r.id)))) + 2 * gap) / step),
  );
  const barW = Math.max(2, Math.min(40, step * 0.7));
  const parts: string[] = [];
  runs.forEach((r, i) => {
    const x = left + i * step + (step - barW) / 2;
    let y = top + plotH;
    for (const [key, label, colour] of SERIES) {
      const h = (Number(r[key]) / maxRows) * plotH;
      if (h <= 0) continue;
      y -= h;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${barW.toFixed(1)}" height="${h.toFixed(1)}" ` +
          `fill="${colour}"><title>run ${r.id}: ${n(Number(r[key]))} ${label}</title></rect>`,
      );
    }
    if (i % every === 0) {
      parts.push(
        `<text x="${(x + barW / 2).toFixed(1)}" y="${H - 10}" class="tick" text-anchor="middle">${r.id}</text>`,
      );
    }
  });
  const points = runs.map((r, i) => {
    const s = seconds(r) ?? 0;
    return `${(left + i * step + step / 2).toFixed(1)},${(top + plotH - (s / maxSecs) * plotH).toFixed(1)}`;
  });
  parts.push(`<polyline points="${points.join(" ")}" fill="none" stroke="#222" stroke-width="2" />`);
  runs.forEach((r, i) => {
    const s = seconds(r);
    if (s === null) return;
    const [cx, cy] = points[i]!.split(",");
    parts.push(
      `<circle cx="${cx}" cy="${cy}" r="3" fill="#222"><title>run ${r.id}: ${s.toFixed(2)} s</title></circle>`,
    );
  });
  const axis = [
    `<line x1="${left}" y1="${top + plotH}" x2="${W - right}" y2="${top + plotH}" class="axis" />`,
    `<text x="${left - gap}" y="${top + 10}" class="tick" text-anchor="end">${rowsLabel}</text>`,
    `<text x="${left - gap}" y="${top + plotH}" class="tick" text-anchor="end">0</text>`,
    `<text x="${W - right + gap}" y="${top + 10}" class="tick">${secsLabel}</text>`,
    `<text x="${W - right + gap}" y="${top + plotH}" class="tick">0 s</text>`,
  ];
  const legend = [
    ...SERIES.map(([, label, colour]) => `<span><i style="background:${colour}"></i>${label}</span>`),
    `<span><i class="line"></i>duration</span>`,
  ];
  return `<figure><svg id="runs-chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="Rows per run and run duration">` +
    `${axis.join("")}${parts.join("")}</svg><figcaption class="legend">${legend.join("")}</figcaption></figure>`;
}

function table(headers: readonly string[], rows: readonly (readonly string[])[], id: string): string {
  if (rows.length === 0) return `<p class="empty" id="${id}">None.</p>`;
  return `<div class="scroll"><table id="${id}"><thead><tr>${
    headers.map((h) => `<th>${h}</th>`).join("")
  }</tr></thead>` +
    `<tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join("")}</tr>`).join("")}</tbody></table></div>`;
}

/** The drift table: a row per type, field, kind and type seen, over the last runs. */
function driftTable(report: StatusReport): string {
  const e = escapeHtml;
  const what = (d: StatusReport["drift"][number]) =>
    d.kind === "unknown"
      ? `unknown field (${d.seen})${report.extraKept ? ", kept in extra" : ""}`
      : d.kind === "type"
      ? `${d.seen}, rules want ${d.expected}`
      : `records with fields past the bound (${DRIFT_FIELDS_PER_TYPE} per run)`;
  return table(
    ["type", "field", "drift", "records", "runs (last)", "example"],
    report.drift.map((d) => [
      e(d.type),
      d.kind === "more" ? "(other fields)" : `<code>${e(d.field)}</code>`,
      e(what(d)),
      n(d.records),
      `${n(d.runs)} (${d.lastRun})`,
      d.example === null ? "–" : `<code>${e(d.example)}</code>`,
    ]),
    "drift",
  );
}

/** What the page offers besides the report. */
export interface PageOptions {
  /** A "Log out" button (the visitor came in with the login form's cookie). */
  readonly logout?: boolean;
}

/** The status page of `report`, made at `at`. Its links carry no query: the token never goes into a URL. */
export function renderPage(report: StatusReport, at: Date, options: PageOptions = {}): string {
  const e = escapeHtml;
  const facts = [
    ["Database", e(report.database)],
    ["Bucket", report.bucket === null ? "–" : e(report.bucket)],
    ["Run in progress", report.running === null ? "none" : e(report.running)],
    ["Last checked", report.lastCheck === null ? "–" : `${e(report.lastCheck.at)} (${e(report.lastCheck.result)})`],
    ["Rows", Object.entries(report.tables).map(([t, c]) => `${e(t)} ${n(c)}`).join(", ") || "–"],
    ["Registry", Object.entries(report.registry).map(([s, c]) => `${n(c)} ${e(s)}`).join(", ") || "empty"],
  ];
  const warn = report.staleLock === null
    ? ""
    : `<p class="warn">A run started ${
      e(report.staleLock)
    } stopped without finishing; nothing of it was committed.</p>`;
  const runs = table(
    [
      "run",
      "started (UTC)",
      "status",
      "files loaded / invalid / missing / failed",
      "records",
      "rejected",
      "rows +/~/−",
      "time",
    ],
    report.runs.map((r) => [
      String(r.id),
      e(r.started_at.slice(0, 19).replace("T", " ")),
      `<span class="status ${r.status === "ok" || r.status === "replay" ? "ok" : "bad"}">${e(r.status)}</span>`,
      `${r.files_loaded} / ${r.files_invalid} / ${r.files_missing} / ${r.files_failed}`,
      n(r.records_loaded),
      n(r.records_rejected),
      `${n(r.rows_inserted)} / ${n(r.rows_updated)} / ${n(r.rows_removed)}`,
      seconds(r) === null ? "–" : `${seconds(r)!.toFixed(2)} s`,
    ]),
    "runs",
  );
  const files = table(
    ["key", "outcome", "records", "rejected"],
    report.lastRunFiles.map((f) => [
      `<code>${e(f.key)}</code>`,
      `<span class="status ${f.outcome === "loaded" ? "ok" : "bad"}">${e(f.outcome)}</span>`,
      n(f.records),
      n(f.rejected),
    ]),
    "files",
  );
  const rejections = report.topRejections.length === 0
    ? `<p class="empty" id="rejections">None.</p>`
    : `<ol id="rejections">${
      report.topRejections.map((t) =>
        `<li><span class="count">${n(t.count)}</span> <span class="reason">${e(t.reason)}</span>${
          t.sample === null
            ? ""
            : `<details><summary>sample from <code>${e(t.sample.key)}</code></summary><pre>${
              e(t.sample.raw ?? "(the whole file)")
            }</pre></details>`
        }</li>`
      ).join("")
    }</ol>`;
  const invalid = table(
    ["key", "reason"],
    report.invalidKeys.map((k) => [`<code>${e(k.key)}</code>`, e(k.reason)]),
    "invalid",
  );
  const missing = table(
    ["key", "runs in a row", "last reason"],
    report.missingKeys.map((k) => [`<code>${e(k.key)}</code>`, n(k.runs), e(k.reason)]),
    "missing",
  );
  const drift = driftTable(report);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>bucketload status</title>
<style>${STYLE}</style></head>
<body><header><h1>bucketload</h1><p>Status at ${e(at.toISOString().slice(0, 19).replace("T", " "))} UTC</p></header>
<main>
<section><dl class="facts">${facts.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join("")}</dl>${warn}</section>
<section><h2>Runs over time</h2>${runsChart(report.history)}</section>
<section><h2>Last runs</h2>${runs}</section>
<section><h2>Last run's files</h2>${files}</section>
<section><h2>Top rejection reasons</h2>${rejections}</section>
<section class="two"><div><h2>Invalid keys</h2>${invalid}</div><div><h2>Missing keys</h2>${missing}</div></section>
<section><h2>Drift</h2><p class="note">Fields the rules do not know, and fields of another JSON type than the rule's.</p>${drift}</section>
</main>
<footer><a href="api/status">JSON</a> · <a href="health">health</a>${options.logout ? LOGOUT : ""}</footer>
</body></html>
`;
}

const STYLE = `
:root{color-scheme:light;--fg:#1d1d1f;--muted:#5f6368;--line:#e3e3e6;--bg:#fafafa}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
header{padding:16px 24px;background:#fff;border-bottom:1px solid var(--line);display:flex;flex-wrap:wrap;align-items:baseline;gap:12px}
h1{margin:0;font-size:20px}header p{margin:0;color:var(--muted)}
main{max-width:1200px;margin:0 auto;padding:8px 24px 32px}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:12px 16px;margin:16px 0}
h2{font-size:16px;margin:4px 0 10px}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:0}.facts dt{color:var(--muted)}.facts dd{margin:0;overflow-wrap:anywhere}
figure{margin:0}svg{width:100%;height:auto;max-height:320px}.axis{stroke:#999}.tick{font-size:11px;fill:var(--muted)}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:13px;color:var(--muted)}.legend i{display:inline-block;width:12px;height:12px;margin-right:5px;vertical-align:-1px;border-radius:2px}
.legend i.line{height:2px;background:#222;vertical-align:3px}
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:14px}th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600}td code{overflow-wrap:anywhere}
.status{padding:1px 6px;border-radius:10px;font-size:12px}.ok{background:#e6f4ea;color:#137333}.bad{background:#fce8e6;color:#a50e0e}
ol{padding-left:20px;margin:0}li{margin:6px 0}.count{font-variant-numeric:tabular-nums;font-weight:600;margin-right:6px}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f4f4f6;padding:8px;border-radius:6px;font-size:13px;max-height:240px;overflow:auto}
.empty,.note{color:var(--muted)}.warn{background:#fef7e0;padding:8px;border-radius:6px}
.two{display:grid;grid-template-columns:1fr 1fr;gap:16px}
footer{text-align:center;color:var(--muted);padding:0 0 24px}a{color:#0b57d0}
@media (max-width:700px){.tick{font-size:${TICK_FONT}px}main{padding:4px 10px 24px}section{padding:10px}.two{grid-template-columns:1fr}th,td{padding:4px 5px;font-size:13px}}
`;

/** The footer's "Log out" button: a form, since logging out changes state (POST). */
const LOGOUT = ` · <form method="post" action="logout" style="display:inline">` +
  `<button type="submit" style="font:inherit;color:#0b57d0;background:none;border:0;padding:0;cursor:pointer;` +
  `text-decoration:underline">Log out</button></form>`;

/**
 * The login form a browser gets instead of the page (401) when `STATUS_TOKEN`
 * is set: the token is posted once (`POST login`) and never put in a URL;
 * `wrong` says the last one did not match.
 */
export function renderLogin(wrong = false): string {
  const warning = wrong ? `<p class="warn" id="wrong">Wrong token: try again.</p>\n` : "";
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>bucketload status: log in</title>
<style>${STYLE}
form.login{display:flex;flex-wrap:wrap;gap:8px;align-items:center}form.login input{font:inherit;padding:6px 8px;min-width:16em;border:1px solid #bbb;border-radius:6px}
form.login button{font:inherit;padding:6px 14px;border-radius:6px;border:1px solid #0b57d0;background:#0b57d0;color:#fff;cursor:pointer}</style></head>
<body><header><h1>bucketload</h1><p>Status page</p></header>
<main><section><h2>Log in</h2>
${warning}<form method="post" action="login" class="login">
<label for="token">STATUS_TOKEN</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button></form>
<p class="note">The token is sent once, in the form's body; the browser keeps a session cookie for a day. Scripts send <code>Authorization: Bearer &lt;token&gt;</code> instead.</p>
</section></main>
</body></html>
`;
}
