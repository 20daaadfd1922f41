// ember's dashboard: a client of the /system/* API, like faas-cli.
// Requests go to the page's own origin, so the browser sends the basic-auth
// credentials it asked for when the page was opened.
"use strict";

const POLL_MS = 2000;
const STATES = ["ready", "starting", "unhealthy", "paused", "stopping", "exited", "zero"];
const DEFAULT_NS = "openfaas-fn";

// The namespace last looked at: the deploy form starts in it.
let currentNS = DEFAULT_NS;

// ---- helpers ----

// h builds an element: attributes (on* are listeners) and children
// (strings become text, never markup).
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const opts = { method, headers: {} };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  if (!r.ok) throw new APIError(r.status, text.trim() || r.status + " " + r.statusText);
  setConn("");
  if ((r.headers.get("Content-Type") || "").startsWith("application/json") && text) return JSON.parse(text);
  return text;
}

function setConn(msg) { document.getElementById("conn").textContent = msg; }

// ---- namespaces ----
// The default namespace keeps the URLs it had before namespaces: no
// ?namespace=, no .NS suffix, no namespace in a body.

function isDefaultNS(ns) { return !ns || ns === DEFAULT_NS; }

// ref names a function as the gateway routes it: NAME, or NAME.NS.
function ref(name, ns) { return isDefaultNS(ns) ? name : name + "." + ns; }

// nsQuery is the ?namespace= of a /system/* URL.
function nsQuery(ns) { return isDefaultNS(ns) ? "" : "?namespace=" + encodeURIComponent(ns); }

// withNS adds the namespace to a request body, other than the default's.
function withNS(body, ns) { return isDefaultNS(ns) ? body : { ...body, namespace: ns }; }

function listHash(ns) { return isDefaultNS(ns) ? "#/" : "#/ns/" + encodeURIComponent(ns); }
function fnHash(name, ns) { return "#/fn/" + encodeURIComponent(ref(name, ns)); }

// nsChooser is a namespace <select> that stays hidden while there is only
// one namespace, so a host without namespaces sees no change.
function nsChooser(id, value, onchange) {
  const sel = h("select", { id }, h("option", { value }, value));
  sel.value = value;
  sel.addEventListener("change", () => onchange(sel.value));
  const wrap = h("div", { class: "field ns", id: id + "-field", hidden: true },
    h("label", { for: id }, "Namespace"), sel);
  let shown = "";
  const update = (list) => {
    const nss = [...new Set([DEFAULT_NS, ...(list || []), sel.value])].sort();
    const key = nss.join(",");
    // Rebuilt only when the list changes: a poll must not close an open menu.
    if (key !== shown) {
      const v = sel.value;
      sel.replaceChildren(...nss.map((n) => h("option", { value: n }, n)));
      sel.value = v;
      shown = key;
    }
    wrap.hidden = nss.length < 2;
  };
  const load = async () => update(await api("GET", "/system/namespaces"));
  return { el: wrap, select: sel, load };
}

// KEY=VALUE lines into an object; blank lines and # comments are skipped.
function parseKV(text, sep) {
  const out = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const i = line.indexOf(sep);
    if (i <= 0) throw new Error(`"${line}" is not KEY${sep}VALUE`);
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

function ago(ts) {
  if (!ts || ts.startsWith("0001-")) return "";
  const s = Math.max(0, Math.round((Date.now() - new Date(ts).getTime()) / 1000));
  if (s < 60) return s + "s ago";
  if (s < 3600) return Math.floor(s / 60) + "m ago";
  if (s < 86400) return Math.floor(s / 3600) + "h ago";
  return Math.floor(s / 86400) + "d ago";
}

function bytes(n) {
  if (!n) return "";
  const u = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + " " + u[i];
}

function badge(state, n) {
  return h("span", { class: "badge s-" + state, "data-state": state }, n === undefined ? state : `${n} ${state}`);
}

function stateBadges(f) {
  const rs = f.replicaStates || {};
  const shown = STATES.filter((s) => rs[s]).map((s) => badge(s, rs[s]));
  for (const s of Object.keys(rs)) if (!STATES.includes(s) && rs[s]) shown.push(badge(s, rs[s]));
  if (!shown.length) shown.push(badge(f.phase === "paused" ? "paused" : "zero", 0));
  return h("div", { class: "states", "aria-label": "replicas by state" }, shown);
}

// Poller runs fn now and then every POLL_MS until the view changes; a
// slow answer delays the next poll instead of piling requests up.
let viewGen = 0;
function poll(fn, ms = POLL_MS) {
  const gen = viewGen;
  const tick = async () => {
    if (gen !== viewGen) return;
    try { await fn(); } catch (e) { setConn(e.status === 401 ? "not logged in" : "offline: " + e.message); }
    if (gen === viewGen) setTimeout(tick, ms);
  };
  tick();
}

function confirmDialog(text) {
  const d = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  d.returnValue = "";
  return new Promise((resolve) => {
    // The close event of a dialog just cancelled can arrive after this one
    // opened: only a close that leaves the dialog closed answers.
    const onClose = () => {
      if (d.open) return;
      d.removeEventListener("close", onClose);
      resolve(d.returnValue === "ok");
    };
    d.addEventListener("close", onClose);
    d.showModal();
    document.getElementById("confirm-cancel").focus();
  });
}

// Invocation rates, from successive polls of the invocation counters.
const history = new Map(); // NAME or NAME.NS -> [{t, n}]
function record(fns, ns) {
  const now = Date.now();
  for (const f of fns) {
    const key = ref(f.name, ns);
    const hs = history.get(key) || [];
    hs.push({ t: now, n: f.invocationCount || 0 });
    while (hs.length > 90) hs.shift(); // three minutes at one poll every 2s
    history.set(key, hs);
  }
}

function rates(name) {
  const hs = history.get(name) || [];
  const out = [];
  for (let i = 1; i < hs.length; i++) {
    const dt = (hs[i].t - hs[i - 1].t) / 1000;
    out.push(dt > 0 ? Math.max(0, hs[i].n - hs[i - 1].n) / dt : 0);
  }
  return out;
}

function sparkline(values) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 100 24");
  svg.setAttribute("aria-hidden", "true");
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? 100 / (values.length - 1) : 100;
  const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(22 - (v / max) * 20).toFixed(1)}`);
  const pl = document.createElementNS(ns, "polyline");
  pl.setAttribute("points", pts.length ? pts.join(" ") : "0,22 100,22");
  svg.append(pl);
  return svg;
}

// ---- views ----

function functionsView(main, ns) {
  const list = h("div", { class: "cards", id: "functions", "data-namespace": ns });
  const chooser = nsChooser("ns", ns, (v) => { location.hash = listHash(v); });
  main.append(
    h("div", { class: "toolbar" }, h("h1", {}, "Functions"),
      h("div", { class: "row" }, chooser.el, h("a", { href: "#/deploy" }, "Deploy a function"))),
    list,
    servicesPanel(),
  );
  poll(async () => {
    let fns;
    try {
      [fns] = await Promise.all([api("GET", "/system/functions" + nsQuery(ns)), chooser.load()]);
    } catch (e) {
      if (e.status !== 404 || isDefaultNS(ns)) throw e;
      list.replaceChildren(h("p", { class: "empty error" }, `No namespace ${ns}. `, h("a", { href: "#/" }, "Back to openfaas-fn"), "."));
      return;
    }
    fns = fns || [];
    fns.sort((a, b) => a.name.localeCompare(b.name));
    record(fns, ns);
    if (!fns.length) {
      list.replaceChildren(h("p", { class: "empty" }, "No functions yet. ", h("a", { href: "#/deploy" }, "Deploy one"), "."));
      return;
    }
    list.replaceChildren(...fns.map((f) => {
      const r = rates(ref(f.name, ns));
      const rps = r.length ? r[r.length - 1] : 0;
      return h("article", { class: "card", "data-fn": f.name },
        h("h2", {}, h("a", { href: fnHash(f.name, ns) }, f.name)),
        h("div", { class: "image" }, f.image),
        stateBadges(f),
        h("div", { class: "metrics" },
          h("span", {}, "invocations ", h("strong", { class: "inv" }, String(f.invocationCount || 0))),
          h("span", {}, h("strong", { class: "rps" }, rps.toFixed(1)), " req/s"),
          sparkline(r),
        ),
        h("div", { class: "muted" }, `${f.availableReplicas || 0}/${f.replicas || 0} ready · ${f.phase || ""}`),
      );
    }));
  });
}

// servicesPanel lists the compose services: they are not functions (no
// scaling, no gateway route) but share the host, so they belong on the
// overview. A daemon that runs no services answers 404 or 501, and an empty
// list shows nothing: a functions-only host sees no change.
function servicesPanel() {
  const body = h("div", {});
  const msg = h("p", { role: "status", id: "service-msg" });
  const err = h("p", { class: "error", role: "alert", id: "service-error" });
  const section = h("section", { id: "services-section", "aria-labelledby": "services-title", hidden: true },
    h("h2", { id: "services-title" }, "Services"), body, err, msg);
  let off = false;
  const refresh = async () => {
    let ss;
    try { ss = (await api("GET", "/system/services")) || []; } catch (e) {
      if (e.status === 404 || e.status === 501) { off = true; section.hidden = true; return; }
      throw e;
    }
    ss.sort((a, b) => a.spec.name.localeCompare(b.spec.name));
    section.hidden = !ss.length;
    body.replaceChildren(h("div", { class: "scroll" }, h("table", { id: "services" },
      h("thead", {}, h("tr", {}, ["Name", "Image", "State", "IP", "Ports", "Restarts", "Actions"].map((c) => h("th", { scope: "col" }, c)))),
      h("tbody", {}, ss.map((s) => {
        const name = s.spec.name;
        const r = (s.status.replicas || [])[0];
        const ports = ((s.spec.service || {}).ports || []).map((p) => `${p.hostIP || "127.0.0.1"}:${p.hostPort}→${p.port}`);
        return h("tr", { "data-service": name },
          h("td", { class: "kv" }, name),
          h("td", { class: "kv image" }, s.spec.image),
          h("td", {}, badge(r ? r.state : s.status.phase || "stopped"), s.status.lastError ? h("div", { class: "error" }, s.status.lastError) : null),
          h("td", { class: "kv" }, r ? r.ip || "" : ""),
          h("td", { class: "kv" }, ports.join(", ") || h("span", { class: "muted" }, "none")),
          h("td", {}, String(r ? r.restarts || 0 : 0)),
          h("td", {}, h("button", { type: "button", "data-restart": name, onclick: async () => {
            if (!(await confirmDialog(`Restart service ${name}? Its container is stopped and started again; its clients lose their connections meanwhile.`))) return;
            err.textContent = ""; msg.textContent = "";
            try { await api("POST", "/system/services/" + encodeURIComponent(name) + "/restart"); msg.textContent = `Restarting ${name}.`; } catch (x) { err.textContent = x.message; }
            await refresh();
          } }, "Restart…")));
      })))));
  };
  poll(async () => { if (!off) await refresh(); });
  return section;
}

function kvList(obj) {
  const keys = Object.keys(obj || {}).sort();
  if (!keys.length) return h("span", { class: "muted" }, "none");
  return h("div", { class: "kv" }, keys.map((k) => h("div", {}, `${k}=${obj[k]}`)));
}

function specView(f) {
  const lim = f.limits ? [f.limits.memory && "memory " + f.limits.memory, f.limits.cpu && "cpu " + f.limits.cpu].filter(Boolean).join(", ") : "";
  const req = f.requests ? [f.requests.memory && "memory " + f.requests.memory, f.requests.cpu && "cpu " + f.requests.cpu].filter(Boolean).join(", ") : "";
  return h("dl", { class: "spec", id: "spec" },
    h("dt", {}, "Image"), h("dd", { class: "kv" }, f.image),
    h("dt", {}, "Env"), h("dd", {}, kvList(f.envVars)),
    h("dt", {}, "Labels"), h("dd", {}, kvList(f.labels)),
    h("dt", {}, "Annotations"), h("dd", {}, kvList(f.annotations)),
    h("dt", {}, "Secrets"), h("dd", { class: "kv" }, (f.secrets || []).join(", ") || h("span", { class: "muted" }, "none")),
    h("dt", {}, "Limits"), h("dd", {}, lim || h("span", { class: "muted" }, "none")),
    h("dt", {}, "Requests"), h("dd", {}, req || h("span", { class: "muted" }, "none")),
    h("dt", {}, "Root filesystem"), h("dd", {}, f.readOnlyRootFilesystem ? "read-only" : "writable"),
    h("dt", {}, "Scaling"), h("dd", {}, `${f.minReplicas}–${f.maxReplicas} replicas, autoscaling ${f.autoscaling ? "on" : "off"}`),
  );
}

function replicasTable(f) {
  const rs = f.instances || [];
  if (!rs.length) return h("p", { class: "muted", id: "replicas" }, "No replicas: the function is at zero and starts on its next request.");
  return h("div", { class: "scroll" }, h("table", { id: "replicas" },
    h("thead", {}, h("tr", {}, ["Replica", "IP", "State", "Started", "Restarts", "Last exit", "Message"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rs.map((r) => h("tr", { "data-replica": r.id },
      h("td", { class: "kv" }, r.id), h("td", { class: "kv" }, r.ip || ""), h("td", {}, badge(r.state)),
      h("td", {}, ago(r.started)), h("td", {}, String(r.restarts || 0)), h("td", {}, r.lastExit || ""), h("td", {}, r.message || ""),
    ))),
  ));
}

function functionView(main, name, ns) {
  const head = h("div", { class: "states", id: "fn-states" });
  const inv = h("strong", { id: "fn-invocations" }, "–");
  const usage = h("span", { class: "muted", id: "fn-usage" });
  const lastErr = h("p", { class: "error", id: "fn-error", role: "alert" });
  const spec = h("div", {});
  const reps = h("div", {});

  const scaleIn = h("input", { type: "number", id: "scale-replicas", min: "0", value: "1", inputmode: "numeric" });
  const scaleMsg = h("span", { role: "status", id: "scale-msg" });
  const scaleForm = h("form", { class: "row", onsubmit: async (e) => {
    e.preventDefault();
    scaleMsg.className = ""; scaleMsg.textContent = "scaling…";
    try {
      await api("POST", "/system/scale-function/" + encodeURIComponent(name) + nsQuery(ns), withNS({ serviceName: name, replicas: Number(scaleIn.value) }, ns));
      scaleMsg.className = "ok"; scaleMsg.textContent = `asked for ${scaleIn.value}`;
    } catch (err) { scaleMsg.className = "error"; scaleMsg.textContent = err.message; }
  } },
  h("div", { class: "field" }, h("label", { for: "scale-replicas" }, "Replicas"), scaleIn),
  h("button", { type: "submit", id: "scale" }, "Scale"), scaleMsg);

  const removeMsg = h("span", { class: "error", role: "alert" });
  const remove = h("button", { type: "button", class: "danger", id: "remove", onclick: async () => {
    if (!(await confirmDialog(`Remove ${ref(name, ns)}? Its replicas are stopped and its spec is deleted.`))) return;
    try {
      await api("DELETE", "/system/functions", withNS({ functionName: name }, ns));
      location.hash = listHash(ns);
    } catch (err) { removeMsg.textContent = err.message; }
  } }, "Remove…");

  main.append(
    h("p", {}, h("a", { href: listHash(ns) }, isDefaultNS(ns) ? "← Functions" : `← Functions in ${ns}`)),
    h("div", { class: "toolbar" }, h("h1", {}, name, isDefaultNS(ns) ? null : h("span", { class: "muted ns-name", id: "fn-namespace" }, " in " + ns)),
      h("div", {}, remove, " ", removeMsg)),
    h("div", { class: "panel" }, head, h("div", { class: "metrics" }, h("span", {}, "invocations ", inv), usage), lastErr),
    h("h2", {}, "Invoke"), invokeForm(name, ns),
    h("h2", {}, "Replicas"), reps,
    h("h2", {}, "Scale"), scaleForm,
    h("h2", {}, "Logs"), logsPanel(name, ns),
    h("h2", {}, "Spec"), spec,
  );

  let scaleTouched = false;
  scaleIn.addEventListener("input", () => { scaleTouched = true; });
  poll(async () => {
    let f;
    try { f = await api("GET", "/system/function/" + encodeURIComponent(name) + nsQuery(ns)); } catch (e) {
      if (e.status === 404) { head.replaceChildren(h("span", { class: "error" }, "No such function.")); return; }
      throw e;
    }
    head.replaceChildren(...stateBadges(f).childNodes, h("span", { class: "muted" }, ` ${f.availableReplicas || 0}/${f.replicas || 0} ready · ${f.phase || ""}`));
    inv.textContent = String(f.invocationCount || 0);
    usage.textContent = f.usage ? [f.usage.totalMemoryBytes && "memory " + bytes(f.usage.totalMemoryBytes), f.usage.cpu && "cpu " + f.usage.cpu.toFixed(3)].filter(Boolean).join(" · ") : "";
    lastErr.textContent = f.lastError || "";
    if (!scaleTouched) scaleIn.value = String(f.replicas || 0);
    spec.replaceChildren(specView(f));
    reps.replaceChildren(replicasTable(f));
    const sel = document.getElementById("logs-instance");
    if (sel) {
      const have = new Set([...sel.options].map((o) => o.value));
      for (const r of f.instances || []) if (!have.has(r.id)) sel.append(h("option", { value: r.id }, r.id));
    }
  });
}

function logsPanel(name, ns) {
  const out = h("pre", { id: "logs", "aria-live": "off", tabindex: "0" }, "");
  const follow = h("input", { type: "checkbox", id: "logs-follow", checked: true });
  const inst = h("select", { id: "logs-instance" }, h("option", { value: "" }, "all replicas"));
  const load = async () => {
    const q = new URLSearchParams({ name, follow: "false", tail: "100" });
    if (inst.value) q.set("instance", inst.value);
    if (!isDefaultNS(ns)) q.set("namespace", ns);
    const text = await api("GET", "/system/logs?" + q);
    const lines = String(text).split("\n").filter(Boolean).map((l) => {
      try {
        const m = JSON.parse(l);
        return `${(m.timestamp || "").replace("T", " ").slice(0, 19)} ${m.instance ? m.instance.slice(-8) : ""} ${m.text}`;
      } catch { return l; }
    });
    const atEnd = out.scrollTop + out.clientHeight >= out.scrollHeight - 4;
    out.textContent = lines.length ? lines.join("\n") : "(no output yet)";
    if (atEnd) out.scrollTop = out.scrollHeight;
  };
  inst.addEventListener("change", load);
  poll(async () => { if (follow.checked) await load(); });
  return h("div", { class: "panel" },
    h("div", { class: "row" },
      h("div", { class: "field" }, h("label", { for: "logs-instance" }, "Replica"), inst),
      h("label", { class: "check" }, follow, "Follow (refresh every 2s)"),
      h("button", { type: "button", onclick: load }, "Refresh")),
    out);
}

function invokeForm(name, ns) {
  const method = h("select", { id: "inv-method" }, ["GET", "POST", "PUT", "PATCH", "DELETE"].map((m) => h("option", { value: m }, m)));
  method.value = "POST";
  const path = h("input", { type: "text", id: "inv-path", value: "/", autocomplete: "off" });
  const query = h("input", { type: "text", id: "inv-query", placeholder: "a=1&b=2", autocomplete: "off" });
  const headers = h("textarea", { id: "inv-headers", rows: "2", placeholder: "Content-Type: application/json" });
  const body = h("textarea", { id: "inv-body", rows: "4" });
  const btn = h("button", { type: "submit", class: "primary", id: "invoke" }, "Invoke");
  const status = h("p", { id: "inv-status", role: "status" });
  const respHeaders = h("pre", { id: "inv-resp-headers", hidden: true });
  const respBody = h("pre", { id: "inv-resp-body", hidden: true });
  const err = h("p", { class: "error", id: "inv-error", role: "alert" });
  const form = h("form", { class: "stack panel", id: "invoke-form", onsubmit: async (e) => {
    e.preventDefault();
    err.textContent = "";
    let hdrs;
    try { hdrs = parseKV(headers.value, ":"); } catch (x) { err.textContent = "Headers: " + x.message; return; }
    let p = path.value.trim() || "/";
    if (!p.startsWith("/")) p = "/" + p;
    const q = query.value.trim().replace(/^\?/, "");
    const url = "/function/" + encodeURIComponent(ref(name, ns)) + p + (q ? "?" + q : "");
    const opts = { method: method.value, headers: hdrs };
    if (!["GET", "HEAD"].includes(method.value)) opts.body = body.value;
    btn.disabled = true;
    status.textContent = "waiting…";
    const t0 = performance.now();
    try {
      const r = await fetch(url, opts);
      const text = await r.text();
      const ms = performance.now() - t0;
      status.textContent = "";
      status.append(h("strong", { id: "inv-code", class: r.ok ? "ok" : "error" }, `${r.status} ${r.statusText}`), ` in ${ms.toFixed(0)} ms`);
      respHeaders.textContent = [...r.headers].map(([k, v]) => `${k}: ${v}`).join("\n");
      let shown = text;
      try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch { /* not JSON: as it came */ }
      respBody.textContent = shown || "(empty body)";
      respHeaders.hidden = false; respBody.hidden = false;
    } catch (x) {
      status.textContent = "";
      err.textContent = x.message;
    } finally { btn.disabled = false; }
  } },
  h("div", { class: "row" },
    h("div", { class: "field narrow" }, h("label", { for: "inv-method" }, "Method"), method),
    h("div", { class: "field" }, h("label", { for: "inv-path" }, "Path"), path),
    h("div", { class: "field" }, h("label", { for: "inv-query" }, "Query"), query)),
  h("div", { class: "field" }, h("label", { for: "inv-headers" }, "Headers ", h("span", { class: "hint" }, "one Name: value a line")), headers),
  h("div", { class: "field" }, h("label", { for: "inv-body" }, "Body"), body),
  h("div", { class: "row" }, btn), err, status,
  h("div", {}, h("div", { class: "hint" }, "Response headers"), respHeaders),
  h("div", {}, h("div", { class: "hint" }, "Response body"), respBody));
  return form;
}

// field builds a labelled input with a place for the API's error about it.
function field(id, label, input, hint) {
  input.id = id;
  input.setAttribute("aria-describedby", "err-" + id);
  return h("div", { class: "field" },
    h("label", { for: id }, label, hint ? h("span", { class: "hint" }, " " + hint) : null),
    input,
    h("div", { class: "error", id: "err-" + id, role: "alert" }));
}

// errorField picks the deploy form's field an API error is about.
function errorField(msg) {
  const m = msg.toLowerCase();
  const rules = [
    ["d-secrets", /secret/], ["d-namespace", /namespace/], ["d-image", /image|pull|manifest|registry|reference|not found/],
    ["d-name", /name|service/], ["d-env", /env/], ["d-labels", /label/], ["d-annotations", /annotation/],
    ["d-memory", /memory/], ["d-cpu", /cpu/],
  ];
  for (const [id, re] of rules) if (re.test(m)) return id;
  return "d-general";
}

function deployView(main) {
  const name = h("input", { type: "text", required: true, autocomplete: "off", spellcheck: "false" });
  const image = h("input", { type: "text", required: true, autocomplete: "off", spellcheck: "false", placeholder: "ghcr.io/you/fn:1.0" });
  const env = h("textarea", { rows: "3", placeholder: "KEY=value" });
  const labels = h("textarea", { rows: "3", placeholder: "com.openfaas.scale.zero=true" });
  const annotations = h("textarea", { rows: "2", placeholder: "topic=orders" });
  const secrets = h("input", { type: "text", autocomplete: "off", placeholder: "db-password, api-key" });
  const memory = h("input", { type: "text", placeholder: "128Mi" });
  const cpu = h("input", { type: "text", placeholder: "0.5" });
  const ro = h("input", { type: "checkbox", id: "d-readonly" });
  const progress = h("p", { id: "deploy-progress", role: "status", class: "progress" });
  const btn = h("button", { type: "submit", class: "primary", id: "deploy" }, "Deploy");
  const known = h("span", { class: "hint", id: "known-secrets" });
  // Only the last namespace chosen may fill the hint, whichever answers last.
  let secretsFor = "";
  const loadSecrets = (ns) => {
    secretsFor = ns;
    api("GET", "/system/secrets" + nsQuery(ns)).then((ss) => {
      if (ns !== secretsFor) return;
      const names = (ss || []).map((s) => s.name);
      known.textContent = names.length ? "existing: " + names.join(", ") : "none created yet";
    }).catch(() => {});
  };
  const chooser = nsChooser("d-namespace", currentNS, (v) => { currentNS = v; loadSecrets(v); });
  chooser.el.append(h("div", { class: "error", id: "err-d-namespace", role: "alert" }));
  chooser.load().catch(() => {});
  loadSecrets(currentNS);

  const form = h("form", { class: "stack", id: "deploy-form", novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    for (const el of form.querySelectorAll(".error")) el.textContent = "";
    progress.textContent = "";
    const show = (id, msg) => { document.getElementById("err-" + id).textContent = msg; };
    let body;
    try {
      body = { service: name.value.trim(), image: image.value.trim() };
      const bad = [];
      if (!body.service) { show("d-name", "A name is required."); bad.push(name); }
      if (!body.image) { show("d-image", "An image is required."); bad.push(image); }
      const kv = (el, id, what) => { try { return parseKV(el.value, "="); } catch (x) { show(id, `${what}: ${x.message}`); bad.push(el); return {}; } };
      const ev = kv(env, "d-env", "Env"), lv = kv(labels, "d-labels", "Labels"), av = kv(annotations, "d-annotations", "Annotations");
      if (bad.length) { bad[0].focus(); return; }
      if (Object.keys(ev).length) body.envVars = ev;
      if (Object.keys(lv).length) body.labels = lv;
      if (Object.keys(av).length) body.annotations = av;
      const sv = secrets.value.split(",").map((s) => s.trim()).filter(Boolean);
      if (sv.length) body.secrets = sv;
      if (memory.value.trim() || cpu.value.trim()) body.limits = { memory: memory.value.trim() || undefined, cpu: cpu.value.trim() || undefined };
      if (ro.checked) body.readOnlyRootFilesystem = true;
      body = withNS(body, chooser.select.value);
    } catch (x) { show("d-general", x.message); return; }
    btn.disabled = true;
    progress.textContent = `Deploying ${body.service}: pulling the image and waiting for a ready replica…`;
    try {
      // ?wait holds the answer until a replica is ready, or says why none is.
      await api("POST", "/system/functions?wait=120s", body);
      progress.className = "ok";
      progress.textContent = `${body.service} is ready.`;
      location.hash = fnHash(body.service, body.namespace);
    } catch (x) {
      progress.textContent = "";
      const id = errorField(x.message);
      show(id, x.message);
      const el = document.getElementById(id);
      if (el && el.focus) el.focus();
    } finally { btn.disabled = false; }
  } },
  h("div", { class: "error", id: "err-d-general", role: "alert" }),
  chooser.el,
  field("d-name", "Name", name, "lowercase letters, digits and -"),
  field("d-image", "Image", image),
  field("d-env", "Environment", env, "KEY=value a line"),
  field("d-labels", "Labels", labels, "KEY=value a line"),
  field("d-annotations", "Annotations", annotations, "KEY=value a line"),
  field("d-secrets", "Secrets", secrets, "names, comma-separated"),
  known,
  h("div", { class: "row" }, field("d-memory", "Memory limit", memory), field("d-cpu", "CPU limit", cpu)),
  h("label", { class: "check" }, ro, "Read-only root filesystem"),
  h("div", { class: "row" }, btn), progress);
  main.append(h("h1", {}, "Deploy a function"), form);
  name.focus();
}

function secretsView(main) {
  const list = h("div", { id: "secrets" });
  const msg = h("p", { role: "status", id: "secret-msg" });
  const err = h("p", { class: "error", role: "alert", id: "secret-error" });
  const name = h("input", { type: "text", id: "s-name", autocomplete: "off", spellcheck: "false", required: true });
  const value = h("textarea", { id: "s-value", rows: "3", autocomplete: "off", spellcheck: "false" });
  const refresh = async () => {
    const ss = ((await api("GET", "/system/secrets")) || []).map((s) => s.name).sort();
    if (!ss.length) { list.replaceChildren(h("p", { class: "empty" }, "No secrets.")); return; }
    list.replaceChildren(h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Actions"))),
      h("tbody", {}, ss.map((s) => h("tr", { "data-secret": s },
        h("td", { class: "kv" }, s),
        h("td", {},
          h("button", { type: "button", onclick: () => { name.value = s; value.value = ""; value.focus(); } }, "Update…"), " ",
          h("button", { type: "button", class: "danger", "data-delete": s, onclick: async () => {
            if (!(await confirmDialog(`Delete secret ${s}? Functions that use it fail to start until it exists again.`))) return;
            try { await api("DELETE", "/system/secrets", { name: s }); msg.textContent = `Deleted ${s}.`; } catch (x) { err.textContent = x.message; }
            await refresh();
          } }, "Delete…")),
      ))))));
  };
  const submit = (method) => async (e) => {
    e.preventDefault();
    err.textContent = ""; msg.textContent = "";
    const n = name.value.trim();
    if (!n) { err.textContent = "A name is required."; name.focus(); return; }
    try {
      await api(method, "/system/secrets", { name: n, value: value.value });
      msg.textContent = method === "POST" ? `Created ${n}.` : `Updated ${n}.`;
      value.value = "";
    } catch (x) { err.textContent = x.message; }
    await refresh();
  };
  const form = h("form", { class: "stack panel", id: "secret-form", onsubmit: submit("POST") },
    h("div", { class: "field" }, h("label", { for: "s-name" }, "Name"), name),
    h("div", { class: "field" }, h("label", { for: "s-value" }, "Value ", h("span", { class: "hint" }, "sent once, never shown again")), value),
    h("div", { class: "row" },
      h("button", { type: "submit", class: "primary", id: "s-create" }, "Create"),
      h("button", { type: "button", id: "s-update", onclick: submit("PUT") }, "Update")),
    err, msg);
  main.append(h("h1", {}, "Secrets"), form, list);
  refresh().catch((x) => { err.textContent = x.message; });
}

// ---- routing ----

function route() {
  viewGen++;
  const main = document.getElementById("view");
  main.replaceChildren();
  const hash = location.hash || "#/";
  let nav = "nav-functions";
  if (hash.startsWith("#/fn/")) {
    // NAME.NS: names and namespaces are DNS labels without dots.
    const r = decodeURIComponent(hash.slice(5));
    const i = r.lastIndexOf(".");
    currentNS = i > 0 ? r.slice(i + 1) : DEFAULT_NS;
    functionView(main, i > 0 ? r.slice(0, i) : r, currentNS);
  } else if (hash === "#/deploy") { nav = "nav-deploy"; deployView(main); }
  else if (hash === "#/secrets") { nav = "nav-secrets"; secretsView(main); }
  else {
    currentNS = hash.startsWith("#/ns/") ? decodeURIComponent(hash.slice(5)) || DEFAULT_NS : DEFAULT_NS;
    functionsView(main, currentNS);
  }
  for (const a of document.querySelectorAll(".top nav a")) {
    if (a.id === nav) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}

window.addEventListener("hashchange", route);
route();
