// Live traffic: the gateway's counters polled every two seconds, turned into rates.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { getJson } from "./api.js";
import { LineChart } from "./charts.js";
import { ErrorBox, number } from "./util.js";

const KEEP = 90; // points: three minutes at two-second polls
const POLL_MS = 2000;

// Two polls → per deployment { rps, ttft, tps } over the interval between them.
export function rates(before, after) {
  const dt = after.at - before.at;
  const out = {};
  for (const [name, now] of Object.entries(after.deployments)) {
    const was = before.deployments[name] || {};
    const d = (k) => now[k] - (was[k] || 0);
    out[name] = { rps: d("requests") / dt, tps: d("completion_tokens") / dt,
      ttft_ms: d("ttft_count") > 0 ? (1000 * d("ttft_sum")) / d("ttft_count") : null };
  }
  return out;
}

function useLive() {
  const [state, setState] = useState({ history: [], last: null, error: null });
  useEffect(() => {
    let stopped = false, previous = null;
    const tick = async () => {
      try {
        const now = await getJson("/live");
        if (previous && now.at > previous.at) {
          const point = { at: now.at, rates: rates(previous, now) };
          setState((s) => ({ history: [...s.history, point].slice(-KEEP), last: now, error: null }));
        } else setState((s) => ({ ...s, last: now }));
        previous = now;
      } catch (error) { setState((s) => ({ ...s, error })); }
      if (!stopped) timer = setTimeout(tick, POLL_MS);
    };
    let timer = setTimeout(tick, 0);
    return () => { stopped = true; clearTimeout(timer); };
  }, []);
  return state;
}

function series(history, field) {
  const names = [...new Set(history.flatMap((p) => Object.keys(p.rates)))];
  const t0 = history.length ? history[0].at : 0;
  return names.map((name) => ({ name, points: history
    .filter((p) => p.rates[name] && p.rates[name][field] != null)
    .map((p) => [p.at - t0, p.rates[name][field]]) }));
}

export function Live() {
  const { history, last, error } = useLive();
  const latest = history.length ? history[history.length - 1].rates : {};
  const totals = last ? last.deployments : {};
  return html`<div>
    <h1>Live</h1>
    <${ErrorBox} error=${error}/>
    <section class="card"><table class="grid-table live-table"><thead><tr><th>deployment</th>
      <th>requests/s</th><th>TTFT (mean, last 2 s)</th><th>tokens/s</th><th>requests so far</th><th>not 2xx</th></tr></thead>
      <tbody>${Object.keys(totals).length ? Object.entries(totals).map(([name, t]) => {
        const r = latest[name] || {};
        return html`<tr data-deployment=${name}><td>${name}</td><td>${number(r.rps, 2)}</td>
          <td>${r.ttft_ms == null ? "—" : `${r.ttft_ms.toFixed(0)} ms`}</td><td>${number(r.tps, 1)}</td>
          <td>${number(t.requests)}</td><td>${number(t.errors)}</td></tr>`;
      }) : html`<tr><td colspan="6" class="muted">No requests through this gateway yet.</td></tr>`}</tbody></table></section>
    <div class="three">
      <section class="card"><h2>Requests per second</h2><${LineChart} series=${series(history, "rps")} xLabel="seconds"/></section>
      <section class="card"><h2>Time to first token (ms)</h2><${LineChart} series=${series(history, "ttft_ms")} xLabel="seconds"/></section>
      <section class="card"><h2>Tokens per second</h2><${LineChart} series=${series(history, "tps")} xLabel="seconds"/></section>
    </div>
  </div>`;
}
