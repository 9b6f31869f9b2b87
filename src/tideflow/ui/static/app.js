// tideflow web UI: a small single-page app over the public /api/v1 routes.
"use strict";

const API = new URL("../api/v1", location.href).pathname;
const POLL_MS = 1500;
const TOKEN_KEY = "tideflow.token";
const COLORS = {
  success: "#2e7d32", failed: "#c62828", running: "#1565c0", blocked: "#6a1b9a",
  skipped: "#9e9e9e", canceled: "#757575", paused: "#ef6c00", scheduled: "#90caf9",
  retrying: "#f9a825", init: "#e0e0e0",
};
const LIGHT = new Set(["init", "scheduled"]);
const STATUSES = ["init", "scheduled", "running", "paused", "blocked", "success", "failed", "canceled"];

// ---------------------------------------------------------------- helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function s(tag, attrs) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}

function badge(status) {
  const b = h("span", { class: "badge", "data-status": status }, status);
  b.style.background = COLORS[status] || "#607d8b";
  if (LIGHT.has(status)) b.style.color = "#222";
  return b;
}

function fmtTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function duration(a, b) {
  if (!a) return "";
  const ms = (b ? new Date(b) : new Date()) - new Date(a);
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

// The definition as YAML, the form people write it in (the API keeps it as JSON).
function yamlScalar(v) {
  if (v === null || v === undefined) return "null";
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  const text = String(v);
  // quote anything YAML could read as another type or as syntax
  return /^[A-Za-z_./][\w ./:-]*$/.test(text) && !/^(true|false|yes|no|on|off|null|~)$/i.test(text)
    && !/: |\s$/.test(text) ? text : JSON.stringify(text);
}
function yaml(value, indent = "") {
  if (Array.isArray(value)) {
    if (!value.length) return " []";
    return value.map((item) => {
      const inner = yaml(item, indent + "  ");
      return `\n${indent}- ${inner.startsWith("\n") ? inner.trimStart() : inner.trim()}`;
    }).join("");
  }
  if (value && typeof value === "object") {
    const keys = Object.keys(value);
    if (!keys.length) return " {}";
    return keys.map((k) => `\n${indent}${yamlScalar(k)}:${yaml(value[k], indent + "  ")}`).join("");
  }
  return " " + yamlScalar(value);
}

function json(value) {
  return JSON.stringify(value, null, 2);
}

function say(text, isError) {
  const m = document.getElementById("message");
  m.textContent = text;
  m.className = isError ? "error" : "";
  m.hidden = false;
}

// ---------------------------------------------------------------- API with token auth

let tokenPrompt = null;

function askToken() {
  if (tokenPrompt) return tokenPrompt;
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  const had = sessionStorage.getItem(TOKEN_KEY);
  document.getElementById("token-error").textContent = had ? "That token was not accepted." : "";
  tokenPrompt = new Promise((resolve) => {
    form.onsubmit = (ev) => {
      ev.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = "";
      dialog.close();
      tokenPrompt = null;
      resolve();
    };
  });
  if (!dialog.open) dialog.showModal();
  return tokenPrompt;
}

// One path segment of an API URL. A segment of dots only ("." or "..") is escaped as %2E:
// written plain, URL normalisation would take it as "this" or "the parent" segment.
function seg(value) {
  return /^\.+$/.test(value) ? "%2E".repeat(value.length) : encodeURIComponent(value);
}

async function api(method, path, body) {
  for (;;) {
    const headers = {};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(API + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (resp.status === 401) {
      await askToken();
      continue;
    }
    const text = await resp.text();
    const data = text ? JSON.parse(text) : null;
    if (!resp.ok) {
      const err = new Error((data && data.message) || `${resp.status} ${resp.statusText}`);
      err.status = resp.status;
      throw err;
    }
    return data;
  }
}

// ---------------------------------------------------------------- routing and polling

let pollTimer = null;
let routeSeq = 0;

function poll(fn) {
  const seq = routeSeq;
  const tick = async () => {
    if (seq !== routeSeq) return;
    try {
      await fn();
      document.getElementById("conn").textContent = "";
    } catch (e) {
      document.getElementById("conn").textContent = `update failed: ${e.message}`;
    }
    if (seq === routeSeq) pollTimer = setTimeout(tick, POLL_MS);
  };
  tick();
}

function route() {
  routeSeq += 1;
  clearTimeout(pollTimer);
  const parts = (location.hash.replace(/^#\/?/, "") || "instances").split("/");
  const view = document.getElementById("view");
  view.replaceChildren();
  document.getElementById("message").hidden = true;
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === parts[0]);
  }
  if (parts[0] === "instances" && parts[1]) instanceView(view, decodeURIComponent(parts[1]));
  else if (parts[0] === "dags") dagsView(view);
  else if (parts[0] === "nodes") nodesView(view);
  else instancesView(view);
}

// ---------------------------------------------------------------- instances list

function instancesView(view) {
  const f = {
    dag: h("select", { name: "dagId" }, h("option", { value: "" }, "(all)")),
    status: h("select", { name: "status" }, h("option", { value: "" }, "(all)"),
      STATUSES.map((st) => h("option", { value: st }, st))),
    tag: h("input", { name: "tag", placeholder: "key=value" }),
    after: h("input", { name: "createdAfter", type: "datetime-local" }),
    before: h("input", { name: "createdBefore", type: "datetime-local" }),
  };
  const counts = h("div", { class: "counts", id: "counts" });
  const tbody = h("tbody", { id: "instances" });
  view.append(
    h("h2", {}, "Instances"),
    h("div", { class: "filters" },
      h("label", {}, "DAG", f.dag), h("label", {}, "Status", f.status),
      h("label", {}, "Tag", f.tag), h("label", {}, "Created after", f.after),
      h("label", {}, "Created before", f.before)),
    counts,
    h("table", {}, h("thead", {}, h("tr", {},
      ["Instance", "DAG", "Status", "Reason", "Tags", "Created", "Ended"].map((t) => h("th", {}, t)))),
    tbody));
  api("GET", "/dags").then((d) => {
    for (const dag of d.items) f.dag.append(h("option", { value: dag.id }, dag.id));
  }).catch(() => {});
  const refresh = async () => {
    const q = new URLSearchParams({ limit: "500" });
    if (f.dag.value) q.set("dagId", f.dag.value);
    if (f.status.value) q.set("status", f.status.value);
    for (const t of f.tag.value.split(",").map((x) => x.trim()).filter(Boolean)) q.append("tag", t);
    if (f.after.value) q.set("createdAfter", new Date(f.after.value).toISOString());
    if (f.before.value) q.set("createdBefore", new Date(f.before.value).toISOString());
    const data = await api("GET", `/dag-instances?${q}`);
    const byStatus = {};
    for (const i of data.items) byStatus[i.status] = (byStatus[i.status] || 0) + 1;
    counts.replaceChildren(
      h("span", {}, `${data.items.length}${data.nextCursor ? "+" : ""} shown:`),
      ...Object.entries(byStatus).map(([st, n]) => h("span", { "data-count": st }, badge(st), ` ${n}`)));
    tbody.replaceChildren(...data.items.map((i) => h("tr", { "data-instance-id": i.id, "data-status": i.status },
      h("td", {}, h("a", { href: `#/instances/${encodeURIComponent(i.id)}` }, h("code", {}, i.id))),
      h("td", {}, i.dagId), h("td", {}, badge(i.status)), h("td", {}, i.reason || ""),
      h("td", {}, Object.entries(i.tags).map(([k, v]) => `${k}=${v}`).join(", ")),
      h("td", {}, fmtTime(i.createdAt)), h("td", {}, fmtTime(i.endedAt)))));
  };
  for (const el of Object.values(f)) el.addEventListener("change", () => refresh().catch((e) => say(e.message, true)));
  poll(refresh);
}

// ---------------------------------------------------------------- one instance

const NODE_W = 140;
const NODE_H = 30;
const COL_W = 180;
const ROW_H = 44;
const PAD = 16;

/** Columns by longest path from a root; rows in order within a column. O(tasks + edges). */
function layout(tasks) {
  const byId = new Map(tasks.map((t) => [t.taskId, t]));
  const depth = new Map();
  const children = new Map(tasks.map((t) => [t.taskId, []]));
  const indeg = new Map();
  for (const t of tasks) {
    const deps = t.dependOn.filter((d) => byId.has(d));
    indeg.set(t.taskId, deps.length);
    for (const d of deps) children.get(d).push(t.taskId);
  }
  const queue = tasks.filter((t) => indeg.get(t.taskId) === 0).map((t) => t.taskId);
  for (const id of queue) depth.set(id, 0);
  for (let i = 0; i < queue.length; i++) {
    const id = queue[i];
    for (const c of children.get(id)) {
      depth.set(c, Math.max(depth.get(c) || 0, depth.get(id) + 1));
      indeg.set(c, indeg.get(c) - 1);
      if (indeg.get(c) === 0) queue.push(c);
    }
  }
  const rows = [];
  const pos = new Map();
  for (const t of tasks) {
    const col = depth.get(t.taskId) || 0;
    const row = rows[col] || 0;
    rows[col] = row + 1;
    pos.set(t.taskId, { x: PAD + col * COL_W, y: PAD + row * ROW_H });
  }
  return { pos, width: PAD * 2 + rows.length * COL_W, height: PAD * 2 + Math.max(1, ...rows) * ROW_H };
}

function instanceView(view, id) {
  let inst = null;
  let selected = null;
  let shape = "";
  const nodes = new Map();
  const graph = h("div", { class: "graph", id: "graph" });
  const details = h("div", { class: "details", id: "details" }, h("p", { class: "muted" }, "Click a task."));
  const head = h("div", { id: "instance-head" });
  const command = (path, label) => async () => {
    try {
      const r = await api("POST", path, {});
      say(`${label}: ${r.taskId ? `task ${r.taskId}` : "instance"} is now ${r.status}`);
    } catch (e) {
      say(`${label} failed: ${e.message}`, true);
    }
    refresh().catch(() => {});
  };
  const base = `/dag-instances/${seg(id)}`;
  // Continue asks for the decision of a blocked approval that declares inputs or approvers
  const continueInstance = async () => {
    const asks = inst && inst.tasks.find((t) => t.status === "blocked" && asksForDecision(t));
    if (!asks) return command(`${base}/continue`, "continue")();
    select(asks.taskId);
    say(`approval ${asks.taskId} asks for a decision: give it below, then Continue`);
    const first = details.querySelector("#decision input, #decision select");
    if (first) first.focus();
  };
  const toolbar = h("div", { class: "toolbar" }, h("strong", {}, "Instance:"),
    ["retry", "cancel", "continue", "pause", "resume"].map((c) =>
      h("button", { id: `instance-${c}`,
        onclick: c === "continue" ? continueInstance : command(`${base}/${c}`, c) }, c)));
  view.append(h("h2", {}, "Instance ", h("code", {}, id)), head, toolbar,
    h("div", { class: "instance" }, graph, details));

  const draw = () => {
    const { pos, width, height } = layout(inst.tasks);
    const svg = s("svg", { width, height, viewBox: `0 0 ${width} ${height}` });
    const edges = s("g", {});
    const boxes = s("g", {});
    nodes.clear();
    for (const t of inst.tasks) {
      const p = pos.get(t.taskId);
      for (const d of t.dependOn) {
        const q = pos.get(d);
        if (!q) continue;
        const x1 = q.x + NODE_W, y1 = q.y + NODE_H / 2, x2 = p.x, y2 = p.y + NODE_H / 2;
        const mx = (x1 + x2) / 2;
        edges.append(s("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}` }));
      }
      const g = s("g", { class: "task", "data-task-id": t.taskId, transform: `translate(${p.x},${p.y})` });
      const rect = s("rect", { width: NODE_W, height: NODE_H, rx: 6 });
      const label = s("text", { x: 8, y: 19 });
      const name = t.taskId.length > 19 ? `${t.taskId.slice(0, 18)}…` : t.taskId;
      label.textContent = name;
      const title = s("title", {});
      g.append(rect, label, title);
      g.addEventListener("click", () => select(t.taskId));
      boxes.append(g);
      nodes.set(t.taskId, { g, rect, label, title, status: null });
    }
    svg.append(edges, boxes);
    graph.replaceChildren(svg);
  };

  const paint = () => {
    for (const t of inst.tasks) {
      const n = nodes.get(t.taskId);
      if (!n || n.status === t.status) continue;
      n.status = t.status;
      n.g.setAttribute("data-status", t.status);
      n.rect.setAttribute("fill", COLORS[t.status] || "#607d8b");
      n.label.setAttribute("fill", LIGHT.has(t.status) ? "#222" : "#fff");
      n.title.textContent = `${t.taskId}: ${t.status}${t.reason ? ` — ${t.reason}` : ""}`;
    }
  };

  let shown = "";
  const showDetails = () => {
    const t = inst.tasks.find((x) => x.taskId === selected);
    if (!t) return;
    // unchanged: keep what is on screen (a decision being typed in, the scroll position)
    const key = JSON.stringify(t);
    if (key === shown) return;
    shown = key;
    const tbase = `${base}/tasks/${seg(t.taskId)}`;
    const decision = t.actionName === "approval" && t.status === "blocked"
      ? decisionForm(t, tbase, () => { shown = ""; refresh().catch(() => {}); }) : null;
    details.replaceChildren(
      h("h3", {}, "Task ", h("code", {}, t.taskId), " ", badge(t.status)),
      h("div", { class: "toolbar" }, ["retry", "cancel", "continue"].map((c) =>
        h("button", { id: `task-${c}`, onclick: c === "continue" && decision
          ? () => decision.requestSubmit()
          : command(`${tbase}/${c}`, `${c} ${t.taskId}`) }, c))),
      decision,
      h("table", {},
        h("tr", {}, h("th", {}, "Action"), h("td", {}, t.actionName)),
        h("tr", {}, h("th", {}, "Reason"), h("td", { id: "task-reason" }, t.reason || "")),
        h("tr", {}, h("th", {}, "Depends on"), h("td", {}, t.dependOn.join(", "))),
        h("tr", {}, h("th", {}, "Started"), h("td", {}, fmtTime(t.startedAt))),
        h("tr", {}, h("th", {}, "Ended"), h("td", {}, fmtTime(t.endedAt))),
        h("tr", {}, h("th", {}, "Duration"), h("td", {}, duration(t.startedAt, t.endedAt))),
        h("tr", {}, h("th", {}, "Attempts"), h("td", {}, String(t.attempts)))),
      h("h3", {}, "Params"), h("pre", { id: "task-params" }, json(t.params)),
      h("h3", {}, "Output"), h("pre", { id: "task-output" }, t.output == null ? "(none)" : json(t.output)),
      h("h3", {}, "Attempts"),
      h("table", { id: "task-attempts" },
        h("tr", {}, ["#", "Status", "Reason", "Started", "Took", "Worker"].map((x) => h("th", {}, x))),
        t.attemptHistory.map((a) => h("tr", {}, h("td", {}, String(a.attempt)), h("td", {}, badge(a.status)),
          h("td", {}, a.reason || ""), h("td", {}, fmtTime(a.startedAt)),
          h("td", {}, duration(a.startedAt, a.endedAt)), h("td", {}, a.worker || "")))),
      h("h3", {}, "Traces"),
      h("pre", { id: "task-traces" }, t.traces.map((x) => `${x.time}  ${x.message}`).join("\n") || "(none)"));
  };

  const select = (taskId) => {
    if (selected && nodes.get(selected)) nodes.get(selected).g.classList.remove("selected");
    selected = taskId;
    nodes.get(taskId).g.classList.add("selected");
    showDetails();
  };

  const refresh = async () => {
    inst = await api("GET", base);
    head.replaceChildren(h("p", {},
      h("span", { id: "instance-status", "data-status": inst.status }, badge(inst.status)),
      ` DAG ${inst.dagId} v${inst.dagVersion} · ${inst.trigger} · created ${fmtTime(inst.createdAt)}`,
      inst.endedAt ? ` · took ${duration(inst.createdAt, inst.endedAt)}` : "",
      inst.reason ? h("span", {}, " · ", h("em", {}, inst.reason)) : "",
      inst.compensation ? h("span", { id: "instance-compensation", "data-compensation": inst.compensation },
        " · compensation ", badge(inst.compensation === "done" ? "success" : inst.compensation === "failed" ? "failed" : "running"),
        ` ${inst.compensation}`) : "",
      Object.keys(inst.vars).length ? ` · vars ${JSON.stringify(inst.vars)}` : "",
      Object.keys(inst.tags).length ? ` · tags ${JSON.stringify(inst.tags)}` : ""));
    const newShape = inst.tasks.map((t) => `${t.taskId}<${t.dependOn.join(",")}`).join(";");
    if (newShape !== shape) {
      shape = newShape;
      draw();
      if (selected && nodes.get(selected)) nodes.get(selected).g.classList.add("selected");
    }
    paint();
    if (selected) showDetails();
  };
  poll(refresh);
}

// ---------------------------------------------------------------- approval decisions

function asksForDecision(t) {
  const p = t.params || {};
  return t.actionName === "approval" && (Object.keys(p.inputs || {}).length > 0 || !!p.approvers);
}

// The form of a blocked approval: its declared inputs, who decides, and Continue / Reject. The
// engine checks the values against the declared types and says what does not fit.
function decisionForm(t, tbase, after) {
  const p = t.params || {};
  const fields = {};
  const form = h("form", { id: "decision", class: "run-form", "data-task-id": t.taskId });
  if (p.message) form.append(h("p", { class: "decision-message" }, p.message));
  for (const [name, spec] of Object.entries(p.inputs || {})) {
    const type = spec.type || "string";
    const id = `input-${name}`;
    let el;
    const choices = type === "boolean" ? ["true", "false"] : (spec.enum || null);
    if (choices) {
      el = h("select", { id, name: id }, h("option", { value: "" }, ""),
        choices.map((c) => h("option", { value: String(c) }, String(c))));
    } else {
      const hint = spec.defaultValue !== undefined && spec.defaultValue !== null
        ? `default ${JSON.stringify(spec.defaultValue)}` : (spec.required ? "required" : "optional");
      el = h("input", { id, name: id, placeholder: `${type}, ${hint}` });
    }
    fields[name] = el;
    form.append(h("label", { for: id, title: spec.desc || "" }, `${name}${spec.required ? " *" : ""}`), el);
  }
  const by = p.approvers
    ? h("select", { id: "decision-by" }, h("option", { value: "" }, ""),
      p.approvers.map((a) => h("option", { value: a }, a)))
    : h("input", { id: "decision-by", placeholder: "your name (recorded)" });
  const reason = h("input", { id: "decision-reason", placeholder: "why (when rejecting)" });
  const reject = h("button", { type: "button", id: "decision-reject" }, "Reject");
  form.append(h("label", { for: "decision-by" }, "by"), by,
    h("label", { for: "decision-reason" }, "reason"), reason,
    h("span", {}), h("span", {}, h("button", { type: "submit", id: "decision-continue" }, "Continue"), " ", reject));
  const send = async (verb, body) => {
    try {
      const r = await api("POST", `${tbase}/${verb}`, body);
      say(`${verb} ${t.taskId}: task ${r.taskId} is now ${r.status}`);
      after();
    } catch (e) {
      say(`${verb} ${t.taskId} failed: ${e.message}`, true);
    }
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const inputs = {};
    for (const [name, el] of Object.entries(fields)) if (el.value !== "") inputs[name] = el.value;
    send("continue", { inputs, by: by.value || null });
  });
  reject.addEventListener("click", () => send("reject", { reason: reason.value || null, by: by.value || null }));
  return form;
}

// ---------------------------------------------------------------- DAGs

function dagsView(view) {
  const list = h("div", { id: "dags" });
  view.append(h("h2", {}, "DAGs"), list);
  api("GET", "/dags").then((data) => {
    if (!data.items.length) list.append(h("p", { class: "muted" }, "No DAG is registered."));
    for (const dag of data.items) list.append(dagCard(dag));
  }).catch((e) => say(e.message, true));
}

// a var's value as typed in a form: text as is, lists and mappings as JSON, null as nothing
function varText(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

// a var's type and rules, as shown next to it: "integer, required, 1..50"
function varRules(v) {
  const parts = [v.type || "text"];
  if (v.required) parts.push("required");
  if (v.enum) parts.push(`one of ${v.enum.map(varText).join(" | ")}`);
  if (v.pattern) parts.push(`matches ${v.pattern}`);
  if (v.minimum != null || v.maximum != null) parts.push(`${v.minimum ?? ""}..${v.maximum ?? ""}`);
  return parts.join(", ");
}

function dagCard(dag) {
  const def = dag.definition;
  const inputs = {};
  const form = h("form", { class: "run-form", "data-dag-id": dag.id });
  for (const [name, v] of Object.entries(def.vars)) {
    // the API never sends a secret's default (it shows "***"): left empty, the run keeps it
    inputs[name] = h("input", { name: `var-${name}`, value: v.secret ? "" : varText(v.defaultValue),
      type: v.secret ? "password" : "text", required: v.required ? "" : null,
      placeholder: v.secret ? "(default)" : varRules(v), title: varRules(v) });
    form.append(h("label", {}, name, " ", h("span", { class: "muted var-type" }, `(${varRules(v)})`)),
      inputs[name]);
  }
  const tags = h("input", { name: "tags", placeholder: "key=value, key2=value2" });
  form.append(h("label", {}, "tags"), tags, h("span", {}), h("button", { type: "submit" }, "Run"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { vars: {}, tags: {} };
    for (const [name, el] of Object.entries(inputs)) {
      if (def.vars[name].secret && el.value === "") continue;
      body.vars[name] = el.value;
    }
    for (const pair of tags.value.split(",").map((x) => x.trim()).filter(Boolean)) {
      const at = pair.indexOf("=");
      if (at < 1) { say(`a tag must be key=value: ${pair}`, true); return; }
      body.tags[pair.slice(0, at)] = pair.slice(at + 1);
    }
    try {
      const inst = await api("POST", `/dags/${seg(dag.id)}/run`, body);
      location.hash = `#/instances/${encodeURIComponent(inst.id)}`;
    } catch (e) {
      say(`run ${dag.id} failed: ${e.message}`, true);
    }
  });
  return h("div", { class: "card", "data-dag-id": dag.id },
    h("h3", {}, dag.id, " ", h("span", { class: "muted" }, `v${dag.version} · ${dag.status}`)),
    def.desc ? h("p", {}, def.desc) : null,
    h("p", {}, "Schedule: ", def.cron ? h("code", {}, def.cron) : "none",
      def.timezone ? ` (${def.timezone})` : "",
      dag.nextFireTimes.length ? ` · next: ${dag.nextFireTimes.map(fmtTime).join(", ")}` : ""),
    Object.keys(def.vars).length ? h("table", {},
      h("tr", {}, ["Var", "Type", "Default", "Description"].map((x) => h("th", {}, x))),
      Object.entries(def.vars).map(([n, v]) => h("tr", {}, h("td", {}, n), h("td", {}, varRules(v)),
        h("td", {}, v.secret ? "***" : varText(v.defaultValue)), h("td", {}, v.desc || "")))) : null,
    h("h3", {}, "Run"), form,
    h("details", {}, h("summary", {}, `Definition (${def.tasks.length} tasks)`),
      h("pre", { class: "yaml" }, yaml(def).trimStart())));
}

// ---------------------------------------------------------------- nodes

function nodesView(view) {
  const tbody = h("tbody", { id: "nodes" });
  view.append(h("h2", {}, "Nodes"), h("table", {}, h("thead", {}, h("tr", {},
    ["Node", "Role", "Leader", "Load", "Labels", "Actions", "Heartbeat age", "Host / pid", "Started"]
      .map((x) => h("th", {}, x)))), tbody));
  poll(async () => {
    const data = await api("GET", "/nodes");
    tbody.replaceChildren(...data.items.map((n) => h("tr", { "data-node-id": n.nodeId },
      h("td", {}, h("code", {}, n.nodeId), n.alive ? "" : " (not alive)"), h("td", {}, n.role),
      h("td", {}, n.isLeader ? "leader" : ""), h("td", {}, `${n.running} / ${n.capacity} (assigned ${n.assigned})`),
      h("td", {}, Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(", ")),
      h("td", {}, n.actions.join(", ")), h("td", {}, `${n.heartbeatAgeSecs.toFixed(1)} s`),
      h("td", {}, `${n.host} / ${n.pid}`), h("td", {}, fmtTime(n.startedAt)))));
  });
}

window.addEventListener("hashchange", route);
route();
