"""The technicians' phone page: one self-contained HTML document (inline CSS and vanilla JS, no
outside files: the node may have no internet) that logs in with the PIN and then uses the JSON
API of edge.diagnostics.server. Everything shown from the node goes in with textContent.

The Content-Security-Policy allows this page's own script and style (by hash) and calls to the
node itself, nothing else.
"""

from __future__ import annotations

import base64
import hashlib

STYLE = r"""
:root { color-scheme: light dark; --ok: #1b7f3b; --bad: #b3261e; --warn: #8a5a00; --line: #8884;
  --accent: #0b57d0; }
* { box-sizing: border-box; }
body { margin: 0; font: 17px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header { padding: 12px 16px; border-bottom: 1px solid var(--line); }
h1 { font-size: 1.3rem; margin: 0; }
h2 { font-size: 1.1rem; margin: 0 0 8px; }
main { padding: 8px 16px 48px; max-width: 760px; margin: 0 auto; }
section { border-bottom: 1px solid var(--line); padding: 12px 0; }
label { display: block; font-weight: 600; margin: 12px 0 4px; }
input, textarea, select { width: 100%; font: inherit; padding: 10px 12px; min-height: 48px;
  border: 1px solid #888; border-radius: 8px; }
button { font: inherit; font-weight: 600; min-height: 48px; padding: 10px 18px; border: 0;
  border-radius: 8px; background: var(--accent); color: #fff; margin: 8px 8px 0 0; }
button:disabled { opacity: 0.6; }
button.secondary { background: #5558; }
fieldset { border: 1px solid var(--line); border-radius: 8px; margin: 8px 0; padding: 4px 12px 12px; }
.choice { display: flex; align-items: center; gap: 12px; font-weight: 400; min-height: 48px; margin: 0; }
.choice input { width: 24px; min-height: 24px; }
dl { margin: 0; }
dl div { display: flex; justify-content: space-between; gap: 12px; padding: 4px 0;
  border-top: 1px dotted var(--line); }
dt { color: #777; overflow-wrap: anywhere; }
dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
table { width: 100%; border-collapse: collapse; font-size: 0.95rem; }
th, td { text-align: left; padding: 6px 4px; border-top: 1px dotted var(--line); vertical-align: top;
  overflow-wrap: anywhere; }
.ok { color: var(--ok); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
.warn { color: var(--warn); font-weight: 600; }
.muted { color: #777; }
.test { border-top: 1px dotted var(--line); padding: 8px 0; }
.badge { padding: 10px 12px; border-radius: 8px; border: 2px solid currentColor; margin: 8px 0; }
"""

BODY = r"""
<header>
  <h1>Pole diagnostics</h1>
  <p id="node-line" class="muted">Log in with the node's diagnostics PIN.</p>
</header>
<main>
  <section id="login">
    <form id="login-form">
      <label for="pin">Diagnostics PIN</label>
      <input id="pin" name="pin" type="password" inputmode="numeric" autocomplete="current-password"
             required maxlength="128">
      <button type="submit">Log in</button>
      <p id="login-error" class="bad" role="alert"></p>
    </form>
  </section>

  <div id="panel" hidden>
    <p><span id="updated" class="muted">loading...</span></p>
    <p id="uplink-badge" class="badge" role="status"></p>
    <button type="button" id="refresh" class="secondary">Refresh now</button>
    <button type="button" id="logout" class="secondary">Log out</button>

    <section><h2>Node</h2><dl id="s-node"></dl></section>
    <section><h2>Uplink</h2><dl id="s-uplink"></dl></section>
    <section><h2>Outbox backlog</h2><dl id="s-outbox"></dl></section>
    <section><h2>Pole controller and link</h2><dl id="s-controller"></dl></section>
    <section><h2>Bell</h2><dl id="s-bell"></dl></section>
    <section><h2>Door</h2><dl id="s-door"></dl></section>
    <section><h2>Lamp</h2><dl id="s-lamp"></dl></section>
    <section>
      <h2>Cameras</h2>
      <table>
        <thead><tr><th>Camera</th><th>Reachable</th><th>Latency ms</th><th>Detail</th></tr></thead>
        <tbody id="s-cameras"></tbody>
      </table>
    </section>
    <section>
      <h2>Storage</h2>
      <table>
        <thead><tr><th>Device</th><th>Health</th><th>Wear %</th><th>Free</th><th>Reasons</th></tr></thead>
        <tbody id="s-storage"></tbody>
      </table>
    </section>

    <section>
      <h2>Self-tests</h2>
      <div id="self-tests"></div>
    </section>

    <section>
      <h2>Site visit</h2>
      <form id="visit-form">
        <fieldset>
          <legend>What are you doing?</legend>
          <label class="choice"><input type="radio" name="action" value="check-in" checked> Check in</label>
          <label class="choice"><input type="radio" name="action" value="resolve"> Resolve a fault</label>
          <label class="choice"><input type="radio" name="action" value="check-out"> Check out</label>
        </fieldset>
        <label for="technician">Technician</label>
        <input id="technician" name="technician" required maxlength="128" autocomplete="name">
        <label for="fault_id">Fault id (needed to resolve)</label>
        <input id="fault_id" name="fault_id" maxlength="64" autocapitalize="none" spellcheck="false"
               pattern="[a-z0-9][a-z0-9._\-]{0,63}">
        <label for="note">Note</label>
        <textarea id="note" name="note" maxlength="2000" rows="3"></textarea>
        <button type="submit">Sign and send</button>
        <p id="visit-result" role="status"></p>
      </form>
    </section>

    <section>
      <details>
        <summary>More counters</summary>
        <dl id="s-more"></dl>
      </details>
    </section>
  </div>
</main>
"""

SCRIPT = r"""
"use strict";
(function () {
  const API = "/diag/api/";
  const REFRESH_MS = 5000;
  const TOKEN_KEY = "watchpost-diag-token";
  const TECHNICIAN_KEY = "watchpost-diag-technician";
  const SHOWN = ["node", "uplink", "outbox", "pole", "lamp_on_until_ms", "cameras", "storage",
    "self_tests"];
  let token = sessionStorage.getItem(TOKEN_KEY);
  let timer = null;
  let testNames = "";

  const byId = (id) => document.getElementById(id);

  function make(tag, content, className) {
    const element = document.createElement(tag);
    if (content !== undefined) element.textContent = content;
    if (className) element.className = className;
    return element;
  }

  function show(value, key) {
    if (value === null || value === undefined || value === "") return "-";
    if (value === true) return "yes";
    if (value === false) return "no";
    if (typeof value === "number" && key && key.endsWith("_ms") && value > 1e12) {
      return new Date(value).toLocaleString();
    }
    if (typeof value === "number" && key === "uptime_s") {
      const h = Math.floor(value / 3600);
      return h + " h " + Math.floor((value % 3600) / 60) + " min";
    }
    if (Array.isArray(value)) return value.length ? value.map((v) => show(v)).join(", ") : "none";
    return String(value);
  }

  function flatten(value, prefix, out) {
    const isObject = value !== null && typeof value === "object";
    if (isObject && Array.isArray(value) && !value.some((v) => v !== null && typeof v === "object")) {
      out.push([prefix, show(value, prefix)]);
    } else if (isObject) {
      const keys = Object.keys(value);
      if (!keys.length) out.push([prefix, "none"]);
      for (const key of keys) flatten(value[key], prefix ? prefix + "." + key : key, out);
    } else {
      out.push([prefix, show(value, prefix.split(".").pop())]);
    }
    return out;
  }

  function fill(id, pairs) {
    fillList(byId(id), pairs);
  }

  function fillList(list, pairs) {
    list.replaceChildren();
    if (!pairs.length) pairs = [["-", "nothing reported"]];
    for (const [key, value] of pairs) {
      const row = make("div");
      row.append(make("dt", key), make("dd", value));
      list.append(row);
    }
  }

  function rows(id, items, cells) {
    const body = byId(id);
    body.replaceChildren();
    if (!items || !items.length) {
      const row = make("tr");
      row.append(make("td", "none reported", "muted"));
      body.append(row);
      return;
    }
    for (const item of items) {
      const row = make("tr");
      for (const [content, className] of cells(item)) row.append(make("td", content, className));
      body.append(row);
    }
  }

  function size(bytes) {
    if (typeof bytes !== "number") return "-";
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0;
    while (bytes >= 1000 && i < units.length - 1) { bytes /= 1000; i += 1; }
    return bytes.toFixed(i ? 1 : 0) + " " + units[i];
  }

  function pick(object, test) {
    const out = {};
    for (const [key, value] of Object.entries(object || {})) if (test(key)) out[key] = value;
    return out;
  }

  async function call(method, path, body) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    const options = { method: method, headers: headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(API + path, options);
    } catch (error) {
      return { status: 0, data: { error: "the node did not answer (" + error.message + ")" } };
    }
    let data;
    try {
      data = await response.json();
    } catch (error) {
      data = { error: "unexpected answer from the node, HTTP " + response.status };
    }
    if (response.status === 401 && path !== "login") showLogin("Please log in again: " + data.error);
    return { status: response.status, data: data };
  }

  function render(status) {
    const node = status.node || {};
    byId("node-line").textContent = "Node " + show(node.id) + " at site " + show(node.site_id);
    const uplink = status.uplink || {};
    const badge = byId("uplink-badge");
    if (uplink.state === "online") {
      badge.textContent = "Uplink online: the centre hears this node.";
      badge.className = "badge ok";
    } else {
      badge.textContent = "Uplink " + show(uplink.state) +
        ": the node keeps everything, including visits, and sends it when the uplink is back.";
      badge.className = "badge warn";
    }
    fill("s-node", flatten(node, "", []));
    fill("s-uplink", flatten(uplink, "", []));
    const outbox = status.outbox || {};
    const backlog = outbox.backlog || {};
    const total = Object.values(backlog).reduce((sum, n) => sum + (Number(n) || 0), 0);
    const rest = pick(outbox, (key) => key !== "backlog");
    fill("s-outbox", flatten(backlog, "", []).concat([["total", String(total)]], flatten(rest, "", [])));
    const pole = status.pole || {};
    const isBell = (key) => key.startsWith("bell") || key === "loop" || key === "presses";
    const isDoor = (key) => key.startsWith("door");
    const isLamp = (key) => key.startsWith("lamp");
    fill("s-controller", flatten(pick(pole, (k) => !isBell(k) && !isDoor(k) && !isLamp(k)), "", []));
    fill("s-bell", flatten(pick(pole, isBell), "", []));
    fill("s-door", flatten(pick(pole, isDoor), "", []));
    const lamp = pick(pole, isLamp);
    lamp.lamp_on_until_ms = status.lamp_on_until_ms;
    fill("s-lamp", flatten(lamp, "", []));
    rows("s-cameras", status.cameras, (c) => [
      [show(c.camera_id)],
      [c.reachable ? "yes" : "NO", c.reachable ? "ok" : "bad"],
      [show(c.latency_ms)],
      [show(c.detail)],
    ]);
    rows("s-storage", status.storage, (s) => [
      [show(s.device)],
      [show(s.health), s.health === "ok" ? "ok" : "bad"],
      [show(s.wear_pct)],
      [size(s.free_bytes)],
      [show(s.reasons)],
    ]);
    fill("s-more", flatten(pick(status, (key) => !SHOWN.includes(key)), "", []));
    renderTests(status.self_tests || []);
  }

  function renderTests(names) {
    if (names.join("\n") === testNames) return;
    testNames = names.join("\n");
    const list = byId("self-tests");
    list.replaceChildren();
    if (!names.length) list.append(make("p", "This node offers no self-tests.", "muted"));
    for (const name of names) {
      const box = make("div", undefined, "test");
      const button = make("button", "Run " + name);
      button.type = "button";
      const outcome = make("p", "", "muted");
      outcome.setAttribute("role", "status");
      const details = make("dl");
      button.addEventListener("click", () => runTest(name, button, outcome, details));
      box.append(button, outcome, details);
      list.append(box);
    }
  }

  async function runTest(name, button, outcome, details) {
    button.disabled = true;
    outcome.className = "muted";
    outcome.textContent = "running " + name + "...";
    details.replaceChildren();
    const answer = await call("POST", "self-tests/" + encodeURIComponent(name));
    button.disabled = false;
    if (answer.status === 200) {
      outcome.className = answer.data.ok ? "ok" : "bad";
      outcome.textContent = (answer.data.ok ? "passed" : "FAILED") + " in " + answer.data.took_ms + " ms";
      fillList(details, flatten(pick(answer.data.result, (k) => k !== "ok"), "", []));
    } else {
      outcome.className = "bad";
      outcome.textContent = answer.data.error || "HTTP " + answer.status;
    }
  }

  async function refresh() {
    clearTimeout(timer);
    if (!token) return;
    const answer = await call("GET", "status");
    if (answer.status === 200) {
      render(answer.data);
      byId("updated").textContent = "Updated " + new Date().toLocaleTimeString();
    } else if (answer.status !== 401) {
      byId("updated").textContent = "Not updated: " + (answer.data.error || "HTTP " + answer.status);
    }
    if (token) timer = setTimeout(refresh, REFRESH_MS);
  }

  function showLogin(message) {
    token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    clearTimeout(timer);
    byId("panel").hidden = true;
    byId("login").hidden = false;
    byId("login-error").textContent = message || "";
    byId("pin").focus();
  }

  function showPanel() {
    byId("login").hidden = true;
    byId("panel").hidden = false;
    byId("technician").value = localStorage.getItem(TECHNICIAN_KEY) || "";
    refresh();
  }

  byId("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const pin = byId("pin").value;
    byId("pin").value = "";
    byId("login-error").textContent = "checking...";
    const answer = await call("POST", "login", { pin: pin });
    if (answer.status === 200) {
      token = answer.data.token;
      sessionStorage.setItem(TOKEN_KEY, token);
      byId("login-error").textContent = "";
      showPanel();
    } else {
      byId("login-error").textContent = answer.data.error || "HTTP " + answer.status;
    }
  });

  byId("logout").addEventListener("click", async () => {
    await call("POST", "logout");
    showLogin("Logged out.");
  });

  byId("refresh").addEventListener("click", refresh);

  byId("visit-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const result = byId("visit-result");
    const action = form.elements.action.value;
    const fault = byId("fault_id");
    fault.required = action === "resolve";
    if (!form.reportValidity()) return;
    const body = { action: action, technician: byId("technician").value.trim(), note: byId("note").value };
    if (fault.value) body.fault_id = fault.value;
    localStorage.setItem(TECHNICIAN_KEY, body.technician);
    result.className = "muted";
    result.textContent = "signing...";
    const answer = await call("POST", "visits", body);
    if (answer.status === 201) {
      const visit = answer.data.visit;
      result.className = answer.data.uplink_online ? "ok" : "warn";
      result.textContent = visit.action + " by " + visit.technician + " at " +
        new Date(visit.at).toLocaleString() + " (node clock), visit " + visit.visit_id + ": " +
        answer.data.detail + ".";
      byId("note").value = "";
    } else {
      result.className = "bad";
      result.textContent = answer.data.error || "HTTP " + answer.status;
      const field = answer.data.field && byId(answer.data.field);
      if (field) field.focus();
    }
  });

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") refresh();
  });

  if (token) showPanel();
})();
"""


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode("ascii") + "'"


PAGE_HTML = (
    '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
    '<meta name="referrer" content="no-referrer">\n'
    "<title>watchpost: pole diagnostics</title>\n"
    f"<style>{STYLE}</style>\n</head>\n<body>{BODY}<script>{SCRIPT}</script>\n</body>\n</html>\n"
)

PAGE_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; script-src {_csp_hash(SCRIPT)}; style-src {_csp_hash(STYLE)}; "
        "connect-src 'self'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
