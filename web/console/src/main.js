// The console's shell: navigation, a path router, and the fleet shared by every page.
import { render } from "preact";
import { html } from "htm/preact";
import { useCallback, useEffect, useState } from "preact/hooks";
import { getJson } from "./api.js";
import { Deployment } from "./deployment.js";
import { Fleet } from "./fleet.js";
import { Live } from "./live.js";
import { Logbook } from "./logbook.js";
import { Playground } from "./playground.js";
import { ErrorBox, Link } from "./util.js";

function usePath() {
  const [path, setPath] = useState(window.location.pathname);
  useEffect(() => {
    const update = () => setPath(window.location.pathname);
    window.addEventListener("popstate", update);
    return () => window.removeEventListener("popstate", update);
  }, []);
  return path;
}

function page(path, fleet, reload) {
  const [, , section, rest] = path.split("/").map(decodeURIComponent);
  if (section === "deployments" && rest) return html`<${Deployment} name=${rest}/>`;
  if (section === "live") return html`<${Live}/>`;
  if (section === "playground") return html`<${Playground} fleet=${fleet}/>`;
  if (section === "logbook") return html`<${Logbook} name=${rest || ""} fleet=${fleet}/>`;
  return html`<${Fleet} fleet=${fleet} reload=${reload}/>`;
}

const NAV = [["/ui", "Fleet"], ["/ui/live", "Live"], ["/ui/playground", "Playground"], ["/ui/logbook", "Logbook"]];

function App() {
  const path = usePath();
  const [fleet, setFleet] = useState(null);
  const [error, setError] = useState(null);
  const reload = useCallback(() => getJson("/fleet").then((f) => { setFleet(f); setError(null); }, setError), []);
  useEffect(() => { reload(); const t = setInterval(reload, 5000); return () => clearInterval(t); }, []);
  const section = "/" + path.split("/").slice(1, 3).join("/");
  return html`<div class="shell">
    <header><span class="brand">corral</span>
      <nav>${NAV.map(([href, label]) => html`<${Link} href=${href}
        cls=${(href === "/ui" ? section === "/ui" || section.startsWith("/ui/deployments") : section === href) ? "active" : ""}>${label}<//>`)}</nav>
      <span class="who">${fleet && fleet.who.name ? html`${fleet.who.name}${fleet.who.admin ? " (admin)" : ""}
        <form method="post" action="/ui/logout"><button class="quiet">log out</button></form>` : null}</span>
    </header>
    <main><${ErrorBox} error=${error}/>${page(path, fleet, reload)}</main>
  </div>`;
}

render(html`<${App}/>`, document.getElementById("app"));
