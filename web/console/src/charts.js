// Plain SVG charts: a line chart (bench curves, live series) and the startup timeline.
import { html } from "htm/preact";

const COLORS = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2"];

// series: [{ name, points: [[x, y], ...] }]
export function LineChart({ series, width = 520, height = 180, xLabel = "", yLabel = "" }) {
  const all = series.flatMap((s) => s.points);
  if (!all.length) return html`<p class="muted">No data yet.</p>`;
  const pad = { l: 48, r: 12, t: 10, b: 28 };
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const y1 = Math.max(...ys, 0) * 1.1 || 1;
  const sx = (x) => pad.l + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const sy = (y) => height - pad.b - (y / y1) * (height - pad.t - pad.b);
  const ticks = [0, 0.5, 1].map((f) => f * y1);
  return html`<svg class="chart" viewBox="0 0 ${width} ${height}" role="img" aria-label=${yLabel}>
    ${ticks.map((t) => html`<g><line x1=${pad.l} x2=${width - pad.r} y1=${sy(t)} y2=${sy(t)} class="grid"/>
      <text x=${pad.l - 6} y=${sy(t) + 4} class="tick" text-anchor="end">${short(t)}</text></g>`)}
    ${series.map((s, i) => html`<g>
      <polyline fill="none" stroke=${COLORS[i % COLORS.length]} stroke-width="2"
        points=${s.points.map((p) => `${sx(p[0])},${sy(p[1])}`).join(" ")}/>
      ${s.points.length < 30 ? s.points.map((p) => html`<circle cx=${sx(p[0])} cy=${sy(p[1])} r="3"
        fill=${COLORS[i % COLORS.length]}/>`) : null}</g>`)}
    <text x=${width / 2} y=${height - 4} class="tick" text-anchor="middle">${xLabel}</text>
  </svg>
  <div class="legend">${series.map((s, i) => html`<span><i style=${`background:${COLORS[i % COLORS.length]}`}></i>${s.name}</span>`)}</div>`;
}

function short(v) {
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
  if (v >= 10 || v === 0) return v.toFixed(0);
  return Number(v.toPrecision(2)).toString();
}

// phases: [{ name, started_at, seconds }] in order; the last may still be open.
export function Timeline({ phases, readyAt }) {
  if (!phases.length) return html`<p class="muted">No phases recorded for this run.</p>`;
  const start = phases[0].started_at;
  const end = readyAt || Math.max(...phases.map((p) => p.started_at + (p.seconds || 0)));
  const total = Math.max(end - start, 0.001);
  return html`<div class="timeline">
    <div class="bar">${phases.map((p, i) => html`<div class="seg"
        style=${`width:${Math.max(((p.seconds || 0) / total) * 100, 0.8)}%;background:${COLORS[i % COLORS.length]}`}
        title=${`${p.name}: ${(p.seconds || 0).toFixed(1)} s`}></div>`)}</div>
    <ol class="phases">${phases.map((p, i) => html`<li>
      <i style=${`background:${COLORS[i % COLORS.length]}`}></i>
      <span class="phase-name">${p.name}</span>
      <span class="phase-at">+${(p.started_at - start).toFixed(1)} s</span>
      <span class="phase-len">${p.seconds == null ? "open" : `${p.seconds.toFixed(1)} s`}</span></li>`)}
    </ol>
    <p class="muted">Ready ${total.toFixed(1)} s after launch.</p>
  </div>`;
}
