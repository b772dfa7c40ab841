// The molt dashboard: the node's modules (live mailbox depths and message
// rates), its reload history and its event feed, with reload / dry-run /
// rollback buttons; for a node in a cluster, the members (reachability,
// each one's module versions) and the last rollout coordinated here. Served by the admin server itself (no external asset).
// The admin token is kept in sessionStorage: for this tab only.
"use strict";

const TOKEN_KEY = "molt.admin_token";
const STATUS_EVERY_MS = 2000;
const FEED_MAX = 200;
const HISTORY_MAX = 50;
const SSE_BUFFER_MAX = 1 << 20;

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem(TOKEN_KEY) || "";
let eventsAbort = null;
const lastHandled = new Map(); // module -> { handled, at }
const busy = new Set(); // modules with an action in flight

function authHeaders(extra) {
  const h = Object.assign({}, extra);
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

// A JSON request; rejects with the server's error body plus `status`.
async function api(method, path, body) {
  const init = { method, cache: "no-store", headers: authHeaders(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw { status: 0, kind: "unreachable", error: "the node does not answer (" + e.message + ")" };
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { error: text, kind: "http" }; }
  if (!res.ok) throw Object.assign({ status: res.status, kind: "http", error: res.statusText }, data);
  return data;
}

// A person's sentence for an error answer.
function describe(e) {
  if (e.status === 401) {
    return "refused (401 " + e.kind + "): " + (token ? "the admin token is wrong" : "enter the admin token above") + "\n" + e.error;
  }
  if (e.status === 403) return "refused (403 " + e.kind + "): " + e.error;
  let s = (e.status ? e.status + " " : "") + e.kind + ": " + e.error;
  if (e.phase) s += "\nphase: " + e.phase;
  if (e.cause) s += "\ncause: " + e.cause;
  return s;
}

// Shows `text` at the top (an error in red), with `detail` (the full
// answer) folded under it.
function notice(text, isError, detail) {
  const n = $("notice");
  n.hidden = false;
  n.className = isError ? "error" : "";
  n.replaceChildren(el("span", text));
  const close = el("button", "×", "close");
  close.title = "dismiss";
  close.addEventListener("click", () => { n.hidden = true; });
  n.prepend(close);
  if (detail !== undefined) {
    const d = el("details");
    d.append(el("summary", "answer"), el("pre", JSON.stringify(detail, null, 2)));
    n.append(d);
  }
}

// One line for a reload / rollback / dry-run answer.
function summary(answer) {
  if (!answer || typeof answer !== "object") return String(answer);
  if (answer.would_commit !== undefined) {
    // A dry run's rehearsal report.
    const versions = answer.from + " → " + answer.to + " (state v" + answer.from_state_version + " → v" + answer.to_state_version + ")";
    if (answer.would_commit) return "would commit " + versions + ", expected pause " + micros(answer.expected_pause_us) + "; nothing was changed";
    const bad = (answer.instances || []).filter((i) => !i.ok).map((i) => "instance " + i.instance + (i.phase ? " in " + i.phase : "") + ": " + i.error);
    return "would NOT commit " + versions + "; nothing was changed\n" + bad.join("\n");
  }
  if (answer.from !== undefined && answer.to !== undefined) {
    let s = answer.from + " → " + answer.to;
    if (answer.state_version !== undefined) s += " (state v" + answer.state_version + ")";
    if (Array.isArray(answer.pauses_us) && answer.pauses_us.length) s += ", longest pause " + micros(Math.max(...answer.pauses_us));
    return s;
  }
  return "see the answer";
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
}

function micros(us) {
  return us >= 1000 ? (us / 1000).toFixed(1) + " ms" : us + " µs";
}

function setLive(on, why) {
  const l = $("live");
  l.className = on ? "on" : "off";
  l.textContent = on ? "live" : why || "disconnected";
  l.title = why || "";
}

// ---- modules ----

function renderModules(status) {
  $("node").textContent = status.node;
  $("uptime").textContent = "up " + duration(status.uptime_s) + " · " + status.libraries_mapped + " libraries mapped";
  const now = performance.now();
  const body = $("modules").tBodies[0];
  body.replaceChildren();
  for (const m of status.modules) {
    const depth = m.instances.reduce((a, i) => a + i.mailbox_depth, 0);
    const handled = m.instances.reduce((a, i) => a + i.handled, 0);
    const failed = m.instances.reduce((a, i) => a + i.failed, 0);
    const prev = lastHandled.get(m.name);
    let rate = "–";
    if (prev && now > prev.at && handled >= prev.handled) {
      rate = ((handled - prev.handled) * 1000 / (now - prev.at)).toFixed(1);
    }
    lastHandled.set(m.name, { handled, at: now });
    const tr = el("tr");
    tr.dataset.module = m.name;
    tr.append(
      el("td", m.name),
      el("td", m.code_version + (m.reloading ? " (reloading)" : ""), m.reloading ? "version busy" : "version"),
      el("td", m.state_version, "num"),
      el("td", m.instances.length, "num"),
      el("td", depth, depth > 1000 ? "num deep" : "num"),
      el("td", rate, "num"),
      el("td", handled, "num"),
      el("td", failed, "num"),
      el("td", m.versions && m.versions.length ? m.versions.join(", ") : "–", "dim"),
    );
    tr.title = m.instances.map((i) => "instance " + i.index + ": mailbox " + i.mailbox_depth + ", handled " + i.handled + ", restarts " + i.restarts).join("\n") + "\nlibrary: " + m.library;
    const actions = el("td", null, "actions");
    const off = busy.has(m.name) || m.reloading;
    actions.append(
      button("reload", "Reload", m.name, off, () => act(m.name, "reload", "/reload", "reloading")),
      button("dry-run", "Dry run", m.name, off, () => act(m.name, "dry run", "/reload?dry_run=true", "rehearsing a reload of")),
      button("rollback", "Rollback", m.name, off || !m.previous, () => act(m.name, "rollback", "/rollback", "rolling back")),
    );
    tr.append(actions);
    body.append(tr);
  }
  if (!status.modules.length) {
    const tr = el("tr");
    const td = el("td", "no modules", "dim");
    td.colSpan = 10;
    tr.append(td);
    body.append(tr);
  }
}

function button(action, label, module, disabled, onclick) {
  const b = el("button", label);
  b.dataset.action = action;
  b.disabled = disabled;
  b.addEventListener("click", onclick);
  return b;
}

async function act(module, what, suffix, doing) {
  busy.add(module);
  notice(doing + " " + module + "…", false);
  refreshStatus();
  try {
    const answer = await api("POST", "/modules/" + encodeURIComponent(module) + suffix, {});
    notice(what + " of " + module + ": " + summary(answer), answer && answer.would_commit === false, answer);
  } catch (e) {
    notice(what + " of " + module + " failed: " + describe(e), true);
  } finally {
    busy.delete(module);
    refreshStatus();
    refreshHistory();
  }
}

async function refreshStatus() {
  try {
    renderModules(await api("GET", "/status"));
  } catch (e) {
    $("modules").tBodies[0].replaceChildren();
    notice("cannot read the node's status: " + describe(e), true);
  }
}

// ---- history ----

async function refreshHistory() {
  let entries;
  try { entries = await api("GET", "/history"); } catch (_) { return; }
  const body = $("history").tBodies[0];
  body.replaceChildren();
  for (const h of entries.slice(-HISTORY_MAX).reverse()) {
    const tr = el("tr");
    const versions = h.to ? h.from + " → " + h.to : h.from;
    const ok = h.outcome === "committed";
    const outcome = h.outcome.replace(/_/g, " ") + (h.phase ? " in " + h.phase : "");
    tr.append(
      el("td", new Date(h.at).toLocaleString()),
      el("td", h.module),
      el("td", h.action.replace(/_/g, " ")),
      el("td", h.trigger),
      el("td", versions),
      el("td", outcome, ok ? "outcome-ok" : "outcome-bad"),
      el("td", micros(h.pause_us), "num"),
    );
    if (h.error) tr.title = h.error;
    body.append(tr);
  }
  if (!entries.length) {
    const tr = el("tr");
    const td = el("td", "no reloads yet", "dim");
    td.colSpan = 7;
    tr.append(td);
    body.append(tr);
  }
}

// ---- cluster (GET /cluster, GET /rollout; hidden for a node without [cluster]) ----

async function refreshCluster() {
  let view;
  try {
    view = await api("GET", "/cluster");
  } catch (e) {
    if (e.status === 404) $("cluster-section").hidden = true;
    return;
  }
  $("cluster-section").hidden = false;
  const body = $("members").tBodies[0];
  body.replaceChildren();
  for (const m of view.members) {
    const tr = el("tr");
    tr.dataset.node = m.node;
    const state = m.this_node ? "this node" : m.reachable ? "reachable" : "UNREACHABLE";
    tr.append(
      el("td", m.node),
      el("td", m.address, "dim"),
      el("td", m.incarnation, "dim"),
      el("td", state, m.reachable ? "state outcome-ok" : "state outcome-bad"),
      el("td", m.last_heard_ms === undefined ? "–" : m.last_heard_ms + " ms", "num"),
      el("td", m.modules.map((x) => x.name + " " + x.code_version).join(", "), "versions"),
    );
    body.append(tr);
  }
  let report = null;
  try { report = await api("GET", "/rollout"); } catch (_) { return; }
  renderRollout(report);
}

function renderRollout(r) {
  const box = $("rollout");
  if (!r) {
    box.replaceChildren(el("p", "none yet (molt rollout NAME --library PATH)", "dim"));
    return;
  }
  const bad = r.outcome === "halted";
  const head = el("p", null, "head");
  head.dataset.outcome = r.outcome;
  head.append(
    el("span", r.id + ": " + r.module + " " + r.from + " → " + (r.to || "?") + " "),
    el("span", r.outcome + " (" + r.took_ms + " ms)", bad ? "outcome outcome-bad" : "outcome outcome-ok"),
  );
  const parts = [head];
  if (r.halted) parts.push(el("p", "halted: " + r.halted, "outcome-bad"));
  if (bad) {
    parts.push(el("p", "rolled back: [" + r.rolled_back.join(", ") + "]; not reached: [" + r.unreached.join(", ") + "]"));
    for (const f of r.rollback_failed || []) parts.push(el("p", "ROLLBACK FAILED on " + f, "outcome-bad"));
  }
  const table = el("table", null, "steps");
  table.append(el("thead"));
  table.tHead.append(el("tr"));
  for (const h of ["at", "step", "nodes", "took", "", "detail"]) table.tHead.rows[0].append(el("th", h));
  const tbody = el("tbody");
  for (const s of r.steps) {
    const tr = el("tr");
    tr.dataset.step = s.step;
    tr.append(
      el("td", s.started_ms + " ms", "num"),
      el("td", s.step),
      el("td", s.nodes.join(", ")),
      el("td", s.took_ms + " ms", "num"),
      el("td", s.ok ? "ok" : "FAILED", s.ok ? "outcome-ok" : "outcome-bad"),
      el("td", s.detail, "detail dim"),
    );
    tbody.append(tr);
  }
  table.append(tbody);
  parts.push(table);
  box.replaceChildren(...parts);
}

// ---- live events (the /events stream, read with fetch so the token goes in a header) ----

function showEvent(kind, data) {
  const li = el("li");
  li.dataset.kind = kind;
  li.append(el("span", new Date().toLocaleTimeString() + " ", "dim"), el("span", kind, kind.endsWith("failed") || kind.endsWith("unreachable") ? "kind failed" : "kind"));
  const fields = Object.assign({}, data);
  delete fields.kind;
  li.append(" " + Object.entries(fields).map(([k, v]) => k + "=" + (typeof v === "string" ? v : JSON.stringify(v))).join(" "));
  const feed = $("feed");
  feed.prepend(li);
  while (feed.children.length > FEED_MAX) feed.lastChild.remove();
  if (kind.startsWith("module.") || kind.startsWith("config.")) {
    refreshStatus();
    refreshHistory();
  }
  if (kind.startsWith("cluster.") || kind.startsWith("rollout.")) refreshCluster();
}

function onBlock(block) {
  let kind = "message";
  const data = [];
  for (const line of block.split("\n")) {
    const i = line.indexOf(":");
    const field = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? "" : line.slice(i + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") kind = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return;
  let parsed;
  try { parsed = JSON.parse(data.join("\n")); } catch (_) { parsed = { data: data.join("\n") }; }
  showEvent(kind, parsed);
}

async function streamEvents() {
  for (;;) {
    const abort = new AbortController();
    eventsAbort = abort;
    try {
      const res = await fetch("/events", { cache: "no-store", signal: abort.signal, headers: authHeaders({ Accept: "text/event-stream" }) });
      if (!res.ok) {
        let body = {};
        try { body = await res.json(); } catch (_) { /* not JSON */ }
        setLive(false, describe(Object.assign({ status: res.status, kind: "http", error: res.statusText }, body)));
      } else {
        setLive(true);
        refreshStatus();
        refreshHistory();
        refreshCluster();
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          // CRLF and CR end lines too; a CR last in a chunk may be half of a CRLF.
          buf = (buf + value).replace(/\r\n|\r(?=.)/gs, "\n");
          let end;
          while ((end = buf.indexOf("\n\n")) >= 0) {
            onBlock(buf.slice(0, end));
            buf = buf.slice(end + 2);
          }
          if (buf.length > SSE_BUFFER_MAX) throw new Error("an event larger than " + SSE_BUFFER_MAX + " bytes");
        }
        setLive(false, "the event stream ended; reconnecting");
      }
    } catch (e) {
      if (abort.signal.aborted) continue;
      setLive(false, "event stream: " + e.message + "; reconnecting");
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// ---- token ----

function useToken(t) {
  token = t;
  if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
  $("token").value = "";
  $("token").placeholder = t ? "token set for this tab" : "admin token (kept for this tab only)";
  if (eventsAbort) eventsAbort.abort();
  refreshStatus();
  refreshHistory();
  refreshCluster();
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    useToken($("token").value.trim());
    notice(token ? "token set for this tab" : "no token", false);
  });
  $("token-forget").addEventListener("click", () => { useToken(""); notice("token forgotten", false); });
  useToken(token);
  streamEvents();
  setInterval(refreshStatus, STATUS_EVERY_MS);
  setInterval(refreshCluster, STATUS_EVERY_MS);
});
