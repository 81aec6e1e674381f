// Talking to the gateway: JSON routes under /ui/api, and the chat stream.
// Every POST carries X-Corral-Console (the gateway refuses console POSTs without it).

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "";
    this.type = error.type || "";
  }
}

async function failure(response) {
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (response.status === 401) window.location.assign("/ui");
  return new ApiError(response.status, body);
}

export async function getJson(path) {
  const response = await fetch(`/ui/api${path}`, { credentials: "same-origin" });
  if (!response.ok) throw await failure(response);
  return response.json();
}

export async function postJson(path, body) {
  const response = await fetch(`/ui/api${path}`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-Corral-Console": "1" },
    body: JSON.stringify(body || {}),
  });
  if (!response.ok) throw await failure(response);
  return response;
}

// Server-sent events from a fetch body: yields each `data:` payload parsed as JSON.
export async function* events(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trimStart()).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}

// A streamed chat turn folded into { answer, reasoning, tools, usage }, calling
// onUpdate after each chunk. Reasoning arrives as `reasoning` or `reasoning_content`.
export async function streamChat(body, onUpdate) {
  const response = await postJson("/chat", { ...body, stream: true,
    stream_options: { include_usage: true } });
  const turn = { answer: "", reasoning: "", tools: [], usage: null, error: "" };
  for await (const chunk of events(response)) {
    if (chunk.error) { turn.error = chunk.error.message || "the stream ended with an error"; break; }
    if (chunk.usage) turn.usage = chunk.usage;
    for (const choice of chunk.choices || []) foldDelta(turn, choice.delta || {});
    onUpdate({ ...turn, tools: turn.tools.map((t) => ({ ...t })) });
  }
  return turn;
}

function foldDelta(turn, delta) {
  if (delta.content) turn.answer += delta.content;
  const thought = delta.reasoning ?? delta.reasoning_content;
  if (thought) turn.reasoning += thought;
  for (const call of delta.tool_calls || []) {
    const index = call.index ?? turn.tools.length;
    const slot = turn.tools[index] || (turn.tools[index] = { id: "", name: "", arguments: "" });
    if (call.id) slot.id = call.id;
    if (call.function?.name) slot.name += call.function.name;
    if (call.function?.arguments) slot.arguments += call.function.arguments;
  }
}
