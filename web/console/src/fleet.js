// The fleet by host: each deployment's state, memory and routable flag; actions for admins.
import { html } from "htm/preact";
import { useState } from "preact/hooks";
import { postJson } from "./api.js";
import { Badge, ErrorBox, Link, bytes, number, seconds, stateKind } from "./util.js";

function memory(m) {
  const parts = [];
  if (m.model_load_gib) parts.push(`weights ${number(m.model_load_gib, 2)} GiB`);
  if (m.kv_cache_memory_gib) parts.push(`KV ${number(m.kv_cache_memory_gib, 2)} GiB`);
  if (m.kv_cache_tokens) parts.push(`${m.kv_cache_tokens.replace(/ tokens$/, "")} KV tokens`);
  return parts.length ? parts.join(" · ") : "—";
}

function Actions({ dep, onDone }) {
  const [busy, setBusy] = useState("");
  const [error, setError] = useState(null);
  const offered = dep.actions || [];
  if (!offered.length) return null;
  const run = async (action) => {
    if (action === "stop" && !window.confirm(`Stop ${dep.name}?`)) return;
    setBusy(action); setError(null);
    try { await postJson(`/actions/${action}/${encodeURIComponent(dep.name)}`); onDone(); }
    catch (e) { setError(e); }
    finally { setBusy(""); }
  };
  return html`<div class="actions">${offered.map((a) => html`<button class=${a === "stop" ? "danger" : ""}
      disabled=${!!busy} data-action=${a} onClick=${() => run(a)}>${busy === a ? "…" : a}</button>`)}
    <${ErrorBox} error=${error}/></div>`;
}

function Host({ host, gpus, onDone }) {
  return html`<section class="card host">
    <h2>${host.host}</h2>
    ${gpus.length ? html`<div class="gpus">${gpus.map((g) => html`<div class="gpu">
      <b>GPU ${g.index}</b> ${g.name}
      <div class="meter"><div style=${`width:${g.memory_total ? (100 * g.memory_used) / g.memory_total : 0}%`}></div></div>
      <span class="muted">${bytes(g.memory_used)} of ${bytes(g.memory_total)}${g.utilization != null ? ` · ${g.utilization}% busy` : ""}</span>
    </div>`)}</div>` : null}
    <table class="grid-table">
      <thead><tr><th>deployment</th><th>engine</th><th>state</th><th>routable</th>
        <th>gate</th><th>memory</th><th>ready after</th><th></th></tr></thead>
      <tbody>${host.deployments.map((d) => html`<tr data-deployment=${d.name}>
        <td><${Link} href=${`/ui/deployments/${encodeURIComponent(d.name)}`}>${d.name}<//>
          ${d.aliases.length ? html`<div class="muted small">aliases: ${d.aliases.join(", ")}</div>` : null}</td>
        <td>${d.engine}</td>
        <td><${Badge} kind=${stateKind(d.state)}>${d.state}<//></td>
        <td class="routable">${d.routable ? html`<${Badge} kind="ok">yes<//>` : html`<${Badge} kind="bad">no<//>`}</td>
        <td>${d.gate}</td>
        <td class="small">${memory(d.memory)}</td>
        <td>${seconds(d.ready_s)}</td>
        <td><${Actions} dep=${d} onDone=${onDone}/></td>
      </tr>`)}</tbody>
    </table>
  </section>`;
}

export function Fleet({ fleet, reload }) {
  if (!fleet) return html`<p class="muted">Loading…</p>`;
  return html`<div>
    <h1>Fleet</h1>
    ${fleet.hosts.length ? null : html`<p class="muted">No replicas in this gateway's fleet.</p>`}
    ${fleet.hosts.map((h) => html`<${Host} host=${h} gpus=${h.host === "local" ? fleet.gpus : []}
        onDone=${reload}/>`)}
    <section class="card">
      <h2>Models</h2>
      <table class="grid-table"><thead><tr><th>name</th><th>kind</th><th>resolves to</th><th>routable</th></tr></thead>
      <tbody>${fleet.models.map((m) => html`<tr><td>${m.name}</td><td>${m.kind}</td>
        <td>${m.targets.join(", ")}</td><td>${m.routable ? "yes" : "no"}</td></tr>`)}</tbody></table>
    </section>
    ${fleet.recorded.length ? html`<section class="card"><h2>In the ledger, not in this fleet</h2>
      <p>${fleet.recorded.map((n) => html`<${Link} cls="chip" href=${`/ui/deployments/${encodeURIComponent(n)}`}>${n}<//>`)}</p></section>` : null}
  </div>`;
}
