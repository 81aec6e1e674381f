// Small formatting helpers shared by the pages.
import { html } from "htm/preact";

export function when(epoch) {
  if (epoch == null) return "—";
  const d = new Date(epoch * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

export function seconds(value, digits = 1) {
  return value == null ? "—" : `${Number(value).toFixed(digits)} s`;
}

export function number(value, digits = 1) {
  if (value == null || value === "") return "—";
  const n = Number(value);
  if (Number.isNaN(n)) return String(value);
  if (Number.isInteger(n)) return n.toLocaleString("en-US");
  // small figures (seconds of TTFT) keep their significant digits
  return Math.abs(n) < 1 ? String(Number(n.toPrecision(digits))) : n.toFixed(digits);
}

export function bytes(value) {
  if (value == null) return "—";
  return `${(value / 2 ** 30).toFixed(1)} GiB`;
}

export function Badge({ kind, children }) {
  return html`<span class="badge badge-${kind}">${children}</span>`;
}

export function stateKind(state) {
  return { ready: "ok", starting: "warn", stopping: "warn", failed: "bad" }[state] || "idle";
}

export function link(path) {
  return (event) => {
    if (event.metaKey || event.ctrlKey || event.button !== 0) return;
    event.preventDefault();
    window.history.pushState(null, "", path);
    window.dispatchEvent(new Event("popstate"));
  };
}

export function Link({ href, children, cls }) {
  return html`<a href=${href} class=${cls} onClick=${link(href)}>${children}</a>`;
}

export function ErrorBox({ error }) {
  if (!error) return null;
  return html`<div class="error" role="alert">${error.status ? `${error.status}: ` : ""}${error.message || String(error)}</div>`;
}
