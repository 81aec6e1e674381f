// One deployment: startup timeline, facts, the exact command, verify, bench, history.
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { getJson } from "./api.js";
import { LineChart, Timeline } from "./charts.js";
import { Badge, ErrorBox, Link, number, seconds, stateKind, when } from "./util.js";

function Facts({ facts }) {
  if (!facts.length) return html`<p class="muted">No facts recorded.</p>`;
  return html`<dl class="facts">${facts.map((f) => html`<div><dt>${f.name}</dt>
    <dd>${number(f.value, 2)} ${f.unit}</dd></div>`)}</dl>`;
}

function Verify({ rows }) {
  if (!rows.length) return html`<p class="muted">Not verified for this run: <code>corral verify NAME</code>.</p>`;
  return html`<table class="grid-table verify"><thead><tr><th>check</th><th>result</th><th>time</th><th>detail</th></tr></thead>
    <tbody>${rows.map((r) => html`<tr><td>${r.name}</td>
      <td><${Badge} kind=${{ pass: "ok", fail: "bad", skip: "idle" }[r.status]}>${r.status}<//></td>
      <td class="nowrap">${seconds(r.seconds, 2)}</td><td class="small">${r.detail}</td></tr>`)}</tbody></table>`;
}

const PLOT_Y = ["output_tok_s", "seed_tok_s", "decode_tok_s", "req_s"];

function Bench({ bench }) {
  const columns = [...new Set(bench.rows.flatMap((r) => Object.keys(r)))];
  const x = bench.x || columns[0];
  const ys = PLOT_Y.filter((c) => columns.includes(c));
  const numericX = bench.rows.every((r) => typeof r[x] === "number");
  return html`<div class="bench">
    <h3>${bench.kind} <span class="muted small">${when(bench.at)} · result ${bench.id}</span></h3>
    <div class="scroll"><table class="grid-table"><thead><tr>${columns.map((c) => html`<th>${c}</th>`)}</tr></thead>
      <tbody>${bench.rows.map((r) => html`<tr>${columns.map((c) => html`<td>${number(r[c], 3)}</td>`)}</tr>`)}</tbody></table></div>
    ${numericX && ys.length && bench.rows.length > 1 ? html`<${LineChart} xLabel=${x}
      series=${ys.map((y) => ({ name: y, points: bench.rows.map((r) => [r[x], r[y] || 0]) }))}/>` : null}
  </div>`;
}

function Diff({ lines }) {
  if (lines == null) return html`<p class="muted small">First run.</p>`;
  if (!lines.length) return html`<p class="muted small">Same command as the run before.</p>`;
  return html`<pre class="diff">${lines.map((l) => html`<div class=${l[0] === "+" ? "add" : "del"}>${l}</div>`)}</pre>`;
}

function Run({ run }) {
  return html`<article class="entry">
    <h3>${when(run.started_at)} · run ${run.id} <${Badge} kind=${stateKind(run.state)}>${run.state}<//></h3>
    <p class="small">${run.engine}${run.engine_version ? ` ${run.engine_version}` : ""}
      ${run.recipe ? ` · recipe ${run.recipe}` : ""} · ready after ${seconds(run.startup_s)}</p>
    <${Diff} lines=${run.diff}/>
    <ul class="events small">${run.events.map((e) => html`<li><span class="muted">${when(e.at)}</span> <b>${e.kind}</b> ${e.detail}</li>`)}</ul>
  </article>`;
}

export function Deployment({ name }) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    setData(null); setError(null);
    getJson(`/deployments/${encodeURIComponent(name)}`).then(setData, setError);
  }, [name]);
  if (error) return html`<div><h1>${name}</h1><${ErrorBox} error=${error}/></div>`;
  if (!data) return html`<p class="muted">Loading…</p>`;
  const current = data.runs.find((r) => r.id === data.current) || data.runs[0];
  return html`<div>
    <h1>${name} <${Badge} kind=${stateKind(current.state)}>${current.state}<//></h1>
    <p class="muted">Run ${current.id}, started ${when(current.started_at)} · <${Link} href=${`/ui/logbook/${encodeURIComponent(name)}`}>logbook<//></p>
    <div class="two">
      <section class="card"><h2>Startup</h2><${Timeline} phases=${current.phases} readyAt=${current.ready_at}/></section>
      <section class="card"><h2>Facts</h2><${Facts} facts=${current.facts}/></section>
    </div>
    <section class="card"><h2>Command</h2><pre class="command">${current.command}</pre></section>
    <section class="card"><h2>Verify</h2><${Verify} rows=${data.verify}/></section>
    <section class="card"><h2>Benchmarks</h2>
      ${data.bench.length ? data.bench.map((b) => html`<${Bench} bench=${b}/>`) :
        html`<p class="muted">No benchmark for this run: <code>corral bench story NAME</code>.</p>`}</section>
    <section class="card"><h2>History</h2>${data.runs.map((r) => html`<${Run} run=${r}/>`)}</section>
  </div>`;
}
