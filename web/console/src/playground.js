// A chat with a chosen model, streamed: reasoning apart from the answer, tool calls as
// they arrive. Errors are the gateway's own answer, exactly as a client would get it.
import { html } from "htm/preact";
import { useState } from "preact/hooks";
import { streamChat } from "./api.js";
import { ErrorBox, number } from "./util.js";

const EXAMPLE_TOOLS = JSON.stringify([{ type: "function", function: { name: "get_weather",
  description: "Current weather for a city", strict: true, parameters: { type: "object",
    properties: { city: { type: "string" } }, required: ["city"], additionalProperties: false } } }], null, 2);

function request(model, messages, options) {
  const body = { model, messages, max_tokens: Number(options.maxTokens) || 256 };
  if (options.temperature !== "") body.temperature = Number(options.temperature);
  if (options.useTools) {
    body.tools = JSON.parse(options.tools);
    if (options.toolChoice) body.tool_choice = { type: "function", function: { name: options.toolChoice } };
  }
  return body;
}

function Turn({ turn }) {
  return html`<div class=${`turn turn-${turn.role}`}>
    <div class="who">${turn.role}</div>
    ${turn.reasoning ? html`<details class="reasoning" open><summary>reasoning</summary><p>${turn.reasoning}</p></details>` : null}
    ${turn.content ? html`<div class="answer">${turn.content}</div>` : null}
    ${(turn.tools || []).map((t) => html`<div class="tool-call"><b>tool call</b> <code>${t.name}</code>
      <pre>${t.arguments}</pre></div>`)}
    ${turn.usage ? html`<div class="muted small">${number(turn.usage.prompt_tokens)} prompt · ${number(turn.usage.completion_tokens)} completion tokens</div>` : null}
    ${turn.error ? html`<${ErrorBox} error=${turn.error}/>` : null}
  </div>`;
}

export function Playground({ fleet }) {
  const models = fleet ? fleet.models : [];
  const [model, setModel] = useState("");
  const [prompt, setPrompt] = useState("");
  const [turns, setTurns] = useState([]);
  const [busy, setBusy] = useState(false);
  const [options, setOptions] = useState({ maxTokens: 256, temperature: "", useTools: false,
    tools: EXAMPLE_TOOLS, toolChoice: "" });
  const chosen = model || (models.find((m) => m.routable) || models[0] || {}).name || "";
  const set = (k) => (e) => setOptions({ ...options, [k]: e.target.type === "checkbox" ? e.target.checked : e.target.value });

  const send = async (event) => {
    event.preventDefault();
    if (!prompt.trim() || busy) return;
    const history = [...turns.filter((t) => !t.error), { role: "user", content: prompt }];
    const messages = history.map((t) => ({ role: t.role, content: t.content || "" }));
    setTurns([...history, { role: "assistant", content: "", streaming: true }]);
    setPrompt(""); setBusy(true);
    const show = (part) => setTurns([...history, { role: "assistant", content: part.answer,
      reasoning: part.reasoning, tools: part.tools, usage: part.usage, error: part.error }]);
    try { show(await streamChat(request(chosen, messages, options), show)); }
    catch (error) { setTurns([...history, { role: "assistant", content: "", error }]); }
    finally { setBusy(false); }
  };

  return html`<div>
    <h1>Playground</h1>
    <form class="card playground" onSubmit=${send}>
      <div class="row">
        <label>model <select name="model" value=${chosen} onChange=${(e) => setModel(e.target.value)}>
          ${models.map((m) => html`<option value=${m.name}>${m.name}${m.routable ? "" : " (not routable)"}</option>`)}
        </select></label>
        <label>max tokens <input name="max_tokens" type="number" min="1" value=${options.maxTokens} onInput=${set("maxTokens")}/></label>
        <label>temperature <input name="temperature" type="number" step="0.1" min="0" placeholder="engine default" value=${options.temperature} onInput=${set("temperature")}/></label>
        <label class="check"><input type="checkbox" name="use_tools" checked=${options.useTools} onChange=${set("useTools")}/> tools</label>
        <button type="button" class="quiet" onClick=${() => setTurns([])}>clear</button>
      </div>
      ${options.useTools ? html`<div class="row tools">
        <textarea name="tools" rows="6" value=${options.tools} onInput=${set("tools")}></textarea>
        <label>force tool <input name="tool_choice" placeholder="auto" value=${options.toolChoice} onInput=${set("toolChoice")}/></label>
      </div>` : null}
      <div class="conversation">${turns.length ? turns.map((t) => html`<${Turn} turn=${t}/>`) :
        html`<p class="muted">Ask something. The answer streams through the gateway, with this session's key.</p>`}</div>
      <div class="row send">
        <textarea name="prompt" rows="2" placeholder="Message" value=${prompt} onInput=${(e) => setPrompt(e.target.value)}
          onKeyDown=${(e) => { if (e.key === "Enter" && !e.shiftKey) send(e); }}></textarea>
        <button type="submit" disabled=${busy || !chosen}>${busy ? "streaming…" : "send"}</button>
      </div>
    </form>
  </div>`;
}
