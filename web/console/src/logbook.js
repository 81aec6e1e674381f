// The logbook: `corral report NAME`, rendered by the gateway (raw HTML in it is escaped).
import { html } from "htm/preact";
import { useEffect, useState } from "preact/hooks";
import { getJson } from "./api.js";
import { ErrorBox, Link } from "./util.js";

export function Logbook({ name, fleet }) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => {
    setData(null); setError(null);
    if (name) getJson(`/report/${encodeURIComponent(name)}`).then(setData, setError);
  }, [name]);
  const names = fleet ? [...new Set([...fleet.hosts.flatMap((h) => h.deployments.map((d) => d.name)), ...fleet.recorded])] : [];
  return html`<div>
    <h1>Logbook</h1>
    <p class="chips">${names.map((n) => html`<${Link} cls=${n === name ? "chip active" : "chip"} href=${`/ui/logbook/${encodeURIComponent(n)}`}>${n}<//>`)}</p>
    <${ErrorBox} error=${error}/>
    ${!name ? html`<p class="muted">Pick a deployment.</p>` : null}
    ${data ? html`<article class="card report" dangerouslySetInnerHTML=${{ __html: data.html }}></article>` : null}
  </div>`;
}
