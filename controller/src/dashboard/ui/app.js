/* global window, document, EventSource, location, requestAnimationFrame */
// airollout dashboard UI: one ES module, no imports and no build step, so the server serves it as
// is and `airollout report` can inline it into a self-contained page. Every value shown comes from
// the dashboard server (API.md) or, in a report, from the data embedded in the page; untrusted
// text (names, messages, sample bodies) only ever reaches the page through textContent.

const boot = window.AIROLLOUT ?? {};
const report = boot.report ?? null;
const view = document.getElementById("view");
const crumbs = document.getElementById("crumbs");
const mode = document.getElementById("mode");
const confirmDialog = document.getElementById("confirm");

/** Live state: rows by "ns/name", the open EventSource, per-rollout action results. */
const state = { rows: new Map(), source: null, sourceKey: "", results: new Map(), route: null, refresh: null, timer: null };

// ---------- small DOM helpers ----------

/** Creates an element: attrs (class, data-*, on* handlers, other attributes) and children (nodes, strings). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof window.Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const PHASE_TONE = {
  Succeeded: "ok", Promoting: "ok", Progressing: "info", ShadowTesting: "info", Initialized: "info",
  Paused: "warn", Pending: "", Degraded: "bad", RollingBack: "bad", RolledBack: "bad",
};
const METRIC_TONE = { Successful: "ok", Running: "info", Pending: "", Inconclusive: "warn", Failed: "bad", Error: "bad" };

function badge(text, tone, attrs) {
  return h("span", { class: `badge ${tone ?? ""}`, ...attrs }, text);
}

function phaseBadge(phase) {
  return badge(phase ?? "Pending", PHASE_TONE[phase] ?? "", { "data-field": "phase" });
}

/** "now" for ages: the report's generation time when frozen, so a report reads the same later. */
function now() {
  return report ? Date.parse(report.generatedAt) || Date.now() : Date.now();
}

function age(iso) {
  const t = Date.parse(iso ?? "");
  if (!Number.isFinite(t)) return "–";
  const s = Math.max(0, Math.round((now() - t) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ""}`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function time(iso) {
  const t = Date.parse(iso ?? "");
  if (!Number.isFinite(t)) return "";
  return new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

function dateTime(iso) {
  const t = Date.parse(iso ?? "");
  return Number.isFinite(t) ? new Date(t).toLocaleString() : "";
}

function pct(rate) {
  const v = Number(rate);
  if (rate === null || rate === undefined || rate === "" || !Number.isFinite(v)) return null;
  return `${(v * 100).toFixed(v < 0.1 ? 1 : 0)}%`;
}

function rolloutHref(ns, name, tab) {
  return `#/${encodeURIComponent(ns)}/${encodeURIComponent(name)}${tab ? `/${tab}` : ""}`;
}

// ---------- data access: the server live, the embedded data in a report ----------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.code = body?.error ?? "error";
  }
}

/** GET a JSON answer; in a report, the embedded data (no request is ever made). */
async function get(path) {
  if (report) return frozen(path);
  const res = await fetch(path, { headers: { accept: "application/json" } });
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

function frozen(path) {
  const data = report.data ?? {};
  if (path.startsWith("/api/rollouts?") || path === "/api/rollouts") return data.list ?? { items: [] };
  if (path.includes("/diffs")) {
    if (!data.diffs) throw new ApiError(404, { error: "no_diffs", message: `this report has no shadow diff: ${data.diffsError ?? "the report was made without a gateway"}` });
    return data.diffs;
  }
  const [ns, name] = (report.rollout ?? "/").split("/");
  if (data.detail && path === `/api/rollouts/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`) return data.detail;
  throw new ApiError(404, { error: "not_found", message: "this report holds one rollout only" });
}

/** POST an action; answers { ok, status, body } and never throws on an HTTP refusal. */
async function postAction(ns, name, action) {
  const res = await fetch(`/api/rollouts/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/actions/${action}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-airollout-csrf": boot.csrfToken ?? "" },
    body: "{}",
  });
  const body = await res.json().catch(() => ({ error: "bad_answer", message: `HTTP ${res.status} without a JSON body` }));
  return { ok: res.ok, status: res.status, body };
}

// ---------- live updates (Server-Sent Events) ----------

function setMode(kind, text) {
  mode.className = `mode ${kind}`;
  mode.textContent = text;
}

/** Opens (or keeps) the one EventSource the current view needs; `onRow` gets every rollout change. */
function listen(query, onRow) {
  if (report) return;
  const key = query;
  if (state.source && state.sourceKey === key) {
    state.onRow = onRow;
    return;
  }
  state.source?.close();
  state.onRow = onRow;
  state.sourceKey = key;
  const src = new EventSource(`/api/events?${query}`);
  state.source = src;
  src.addEventListener("open", () => setMode("live", "live"));
  src.addEventListener("hello", () => setMode("live", "live"));
  src.addEventListener("rollout", (e) => {
    let msg;
    try {
      msg = JSON.parse(e.data);
    } catch {
      return;
    }
    if (!msg?.row) return;
    const k = `${msg.row.namespace}/${msg.row.name}`;
    if (msg.type === "DELETED") state.rows.delete(k);
    else state.rows.set(k, msg.row);
    state.onRow?.(msg);
  });
  src.addEventListener("error", (e) => {
    // A server-sent `error` event carries data (the watch was refused); a bare one is the
    // connection dropping, which EventSource retries by itself.
    if (e.data) {
      let msg = {};
      try {
        msg = JSON.parse(e.data);
      } catch {
        msg = { message: e.data };
      }
      setMode("offline", `watch refused (${msg.status ?? "?"})`);
      showError(new ApiError(msg.status ?? 0, { error: "watch", message: msg.message }), "The live watch was refused");
    } else {
      setMode("offline", "reconnecting…");
    }
  });
}

/** Runs fn at most once at a time and at most every `gapMs`; calls during a run are coalesced. */
function throttled(fn, gapMs) {
  let running = false;
  let again = false;
  let last = 0;
  const run = async () => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    const wait = Math.max(0, last + gapMs - Date.now());
    if (wait) await new Promise((r) => setTimeout(r, wait));
    try {
      await fn();
    } finally {
      last = Date.now();
      running = false;
      if (again) {
        again = false;
        run();
      }
    }
  };
  return run;
}

// ---------- router ----------

function parseRoute() {
  // A report opens on its rollout; "#/" still shows the (frozen) list.
  let hash = location.hash.replace(/^#\/?/, "");
  if (!location.hash && report?.rollout) hash = report.rollout;
  const parts = hash.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length >= 2) return { view: parts[2] === "diff" ? "diff" : "detail", ns: parts[0], name: parts[1] };
  return { view: "list" };
}

async function route() {
  const r = parseRoute();
  state.route = r;
  clearInterval(state.timer);
  state.timer = null;
  state.refresh = null;
  renderCrumbs(r);
  try {
    if (r.view === "list") await showList();
    else if (r.view === "detail") await showDetail(r.ns, r.name);
    else await showDiff(r.ns, r.name);
  } catch (err) {
    showError(err, "Could not load this page");
  }
}

function renderCrumbs(r) {
  crumbs.replaceChildren(h("span", {},
    h("a", { href: "#/" }, "Rollouts"),
    r.view !== "list" ? [" / ", h("span", {}, `${r.ns}/`), h("a", { href: rolloutHref(r.ns, r.name) }, r.name)] : null));
}

function showError(err, title) {
  const refused = err instanceof ApiError && err.status === 403;
  view.prepend(
    h("div", { class: "card error-box", role: "alert", "data-error": err?.code ?? "error" },
      h("b", {}, title), ": ",
      refused ? "the Kubernetes API refused it with your credentials — " : "",
      err?.message ?? String(err)),
  );
}

// ---------- rollouts list ----------

async function showList() {
  const ns = boot.allNamespaces ? "*" : boot.namespace;
  const query = ns ? `namespace=${encodeURIComponent(ns)}` : "";
  const rerender = () => {
    if (state.route?.view === "list") renderList();
  };
  listen(query, rerender);
  const list = await get(`/api/rollouts${query ? `?${query}` : ""}`);
  state.rows = new Map((list.items ?? []).map((r) => [`${r.namespace}/${r.name}`, r]));
  state.listNamespace = list.namespace ?? null;
  renderList();
  // Ages tick on their own; the rows themselves change only through the watch.
  if (!report) state.timer = setInterval(rerender, 5000);
}

function renderList() {
  const rows = [...state.rows.values()].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  const groups = new Map();
  for (const r of rows) groups.set(r.namespace, [...(groups.get(r.namespace) ?? []), r]);
  const scope = state.listNamespace ? `namespace ${state.listNamespace}` : "all namespaces";
  const title = h("div", { class: "summary", style: "margin-bottom:16px" },
    h("h1", {}, "Rollouts"), h("span", { class: "muted" }, `${rows.length} in ${scope}`));
  if (rows.length === 0) {
    view.replaceChildren(title, h("div", { class: "card empty" }, `No AIRollouts in ${scope} that your credentials can read.`));
    return;
  }
  view.replaceChildren(title, ...[...groups].map(([ns, items]) => h("section", { class: "card nsgroup", "data-namespace": ns },
    h("h2", {}, "Namespace ", h("code", {}, ns), h("span", { class: "muted small" }, `${items.length} rollout${items.length === 1 ? "" : "s"}`)),
    listTable(items))));
}

function listTable(items) {
  return h("table", { class: "rollouts" },
    h("thead", {}, h("tr", {},
      h("th", {}, "Rollout"), h("th", {}, "Phase"), h("th", {}, "Step"), h("th", {}, "Weight"),
      h("th", {}, "Stable"), h("th", {}, "Candidate"), h("th", {}, "Shadow mismatch"), h("th", { class: "num" }, "Age"))),
    h("tbody", {}, items.map(listRow)));
}

function listRow(r) {
  const step = r.step ?? { index: 0, total: 0 };
  const done = step.total > 0 && step.index >= step.total;
  return h("tr", { class: "row", "data-rollout": `${r.namespace}/${r.name}` },
    h("td", {}, h("a", { href: rolloutHref(r.namespace, r.name), class: "name" }, h("b", {}, r.name)),
      r.message ? h("div", { class: "muted small", title: r.message }, truncate(r.message, 90)) : null),
    h("td", {}, phaseBadge(r.phase), r.pauseReason ? h("div", { class: "muted small" }, r.pauseReason) : null),
    h("td", { "data-field": "step" }, done ? `done (${step.total})` : `${step.index + 1} / ${step.total}`),
    h("td", {}, weightBar(r.weight)),
    h("td", {}, versionCell(r.stable)),
    h("td", {}, versionCell(r.candidate)),
    h("td", { "data-field": "shadow" }, shadowCell(r.shadow)),
    h("td", { class: "num", title: dateTime(r.createdAt) }, age(r.createdAt)));
}

function truncate(s, n) {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

function weightBar(weight) {
  const w = Number(weight) || 0;
  return h("div", { class: "barcell", "data-field": "weight" },
    h("div", { class: "bar", title: `${w}% of traffic to the candidate` }, h("span", { style: `width:${Math.min(100, Math.max(0, w))}%` })),
    h("span", { class: "mono" }, `${w}%`));
}

function versionCell(v) {
  if (!v) return h("span", { class: "muted" }, "–");
  return h("div", { class: "version" }, h("b", {}, v.version ?? "?"),
    h("div", { class: "meta" }, v.model ? `model ${v.model}` : "model –"),
    v.promptDigest ? h("div", { class: "meta mono", title: `prompt digest ${v.promptDigest}` }, `prompt ${v.promptDigest.slice(0, 12)}`) : null);
}

function shadowCell(s) {
  const rate = pct(s?.mismatchRate);
  if (!s || rate === null) return h("span", { class: "muted" }, "–");
  const tone = s.judged === false ? "" : Number(s.mismatchRate) > 0 ? "warn" : "ok";
  return h("div", {}, badge(rate, tone), h("div", { class: "muted small" },
    `${s.compared ?? "?"} compared${s.judged === false ? ", not judged yet" : ""}`));
}

// ---------- one rollout ----------

async function showDetail(ns, name) {
  let detail = await get(`/api/rollouts/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`);
  const refresh = throttled(async () => {
    if (state.route?.view !== "detail" || state.route.ns !== ns || state.route.name !== name) return;
    try {
      detail = await get(`/api/rollouts/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`);
      renderDetail(detail);
    } catch (err) {
      showError(err, "Could not refresh");
    }
  }, 1000);
  state.refresh = refresh;
  listen(`rollout=${encodeURIComponent(`${ns}/${name}`)}`, (msg) => {
    if (msg.row.namespace === ns && msg.row.name === name) refresh();
  });
  renderDetail(detail);
}

function tabs(ns, name, on) {
  return h("nav", { class: "tabs" },
    h("a", { href: rolloutHref(ns, name), class: on === "detail" ? "on" : "" }, "Overview"),
    h("a", { href: rolloutHref(ns, name, "diff"), class: on === "diff" ? "on" : "", "data-tab": "diff" }, "Shadow diff"));
}

function renderDetail(d) {
  const r = d.row;
  const scrollY = window.scrollY;
  view.replaceChildren(
    headerCard(r, d),
    tabs(r.namespace, r.name, "detail"),
    h("section", { class: "card" }, h("h2", {}, "Steps"), timeline(d.timeline ?? [])),
    h("div", { class: "grid2" },
      h("section", { class: "card" }, h("h2", {}, "Traffic to the candidate"), chartBox((el) => weightChart(el, d.weightHistory ?? [], r.weight))),
      h("section", { class: "card" }, h("h2", {}, "Conditions"), conditionsTable(d.conditions ?? []))),
    analysisSection(d.analysis ?? []),
    h("section", { class: "card" }, h("h2", {}, "Events"), eventsTable(d.events ?? [])),
  );
  requestAnimationFrame(() => window.scrollTo(0, scrollY));
}

function headerCard(r, d) {
  const kv = (label, ...value) => h("div", { class: "kv" }, h("span", {}, label), h("b", {}, ...value));
  const step = r.step ?? { index: 0, total: 0 };
  const shadow = pct(r.shadow?.mismatchRate);
  return h("section", { class: "card", "data-rollout": `${r.namespace}/${r.name}` },
    h("div", { class: "summary" },
      h("div", {}, h("div", { class: "muted small" }, r.namespace), h("h1", {}, r.name)),
      kv("Phase", phaseBadge(r.phase)),
      kv("Step", h("span", { "data-field": "step" }, step.index >= step.total && step.total > 0 ? `done (${step.total})` : `${step.index + 1} / ${step.total}`)),
      kv("Weight", h("span", { "data-field": "weight" }, `${r.weight ?? 0}%`)),
      kv("Stable", versionCell(r.stable)),
      kv("Candidate", versionCell(r.candidate)),
      kv("Shadow mismatch", shadow ?? "–"),
      kv("Age", age(r.createdAt))),
    r.message ? h("div", { class: "message", "data-field": "message" }, r.pauseReason ? `${r.pauseReason}: ` : "", r.message) : null,
    actions(r, d));
}

// ---------- actions ----------

const ACTIONS = [
  { id: "promote", label: "Promote", cls: "primary", what: "completes the current step (a pause, an inconclusive analysis) and moves to the next one" },
  { id: "promote-full", label: "Promote full", cls: "", what: "skips every remaining step and promotes the candidate to 100% now" },
  { id: "abort", label: "Abort", cls: "danger", what: "rolls back to the stable version: all traffic returns to it" },
  { id: "retry", label: "Retry", cls: "", what: "restarts this rolled-back rollout from its first step" },
];

/** Whether the action applies in this phase: the same checks as the CLI (the server checks again). */
function actionApplies(id, phase) {
  if (id === "retry") return phase === "RolledBack";
  return !["Succeeded", "RolledBack"].includes(phase ?? "");
}

function actions(r) {
  if (report) return h("div", { class: "muted small", style: "margin-top:12px" }, `Report generated ${dateTime(report.generatedAt)}; actions are available on the live dashboard.`);
  const key = `${r.namespace}/${r.name}`;
  const result = state.results.get(key);
  return h("div", {},
    h("div", { class: "actions" }, ACTIONS.map((a) => h("button", {
      class: a.cls, "data-action": a.id,
      disabled: boot.readOnly || !actionApplies(a.id, r.phase),
      title: boot.readOnly ? "the dashboard runs read-only" : a.what,
      onclick: () => confirmAction(r, a),
    }, a.label)),
    boot.readOnly ? h("span", { class: "muted small", style: "align-self:center" }, "read-only dashboard") : null),
    result ? resultBox(result) : null);
}

function resultBox(result) {
  const b = result.body ?? {};
  if (result.ok) {
    return h("div", { class: "result ok", id: "action-result", "data-status": result.status, role: "status" },
      h("b", {}, `${result.label}: done. `), b.message ?? "",
      b.annotation ? h("div", { class: "small mono" }, `${b.annotation}=${b.value ?? ""} (was ${b.phaseBefore ?? "?"})`) : null);
  }
  const why = result.status === 403 && b.error !== "read_only" && b.error !== "csrf"
    ? "The Kubernetes API server refused this with your credentials:" : `Refused (${result.status} ${b.error ?? ""}):`;
  return h("div", { class: "result bad", id: "action-result", "data-status": result.status, role: "alert" },
    h("b", {}, `${result.label}: ${why}`), h("pre", {}, b.message ?? ""));
}

function confirmAction(r, a) {
  document.getElementById("confirm-title").textContent = `${a.label} ${r.namespace}/${r.name}?`;
  const step = r.step ?? { index: 0, total: 0 };
  document.getElementById("confirm-text").textContent =
    `This ${a.what}. It is ${r.phase ?? "Pending"} at step ${Math.min(step.index + 1, step.total)} of ${step.total}, ` +
    `weight ${r.weight ?? 0}%. The dashboard sets the same annotation as \`airollout ${a.id.replace("-full", " --full")}\`, with your credentials.`;
  confirmDialog.returnValue = "";
  confirmDialog.onclose = async () => {
    if (confirmDialog.returnValue !== "ok") return;
    const key = `${r.namespace}/${r.name}`;
    let result;
    try {
      result = { ...(await postAction(r.namespace, r.name, a.id)), label: a.label };
    } catch (err) {
      result = { ok: false, status: 0, body: { error: "network", message: String(err?.message ?? err) }, label: a.label };
    }
    state.results.set(key, result);
    if (state.refresh) state.refresh();
    else route();
  };
  confirmDialog.showModal();
}

// ---------- steps, weight, conditions, events ----------

function stepLabel(s) {
  switch (s.type) {
    case "setWeight": return `Weight ${s.weight ?? "?"}%`;
    case "pause": return s.durationSeconds ? `Pause ${duration(s.durationSeconds)}` : "Pause until promoted";
    case "analysis": return `Analysis${s.metrics?.length ? ` (${s.metrics.join(", ")})` : ""}`;
    case "shadow": return `Shadow${s.durationSeconds ? ` ${duration(s.durationSeconds)}` : ""}`;
    default: return s.type ?? "step";
  }
}

function duration(sec) {
  if (sec < 60) return `${sec}s`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m${sec % 60 ? `${sec % 60}s` : ""}`;
  return `${Math.floor(sec / 3600)}h${Math.floor((sec % 3600) / 60) ? `${Math.floor((sec % 3600) / 60)}m` : ""}`;
}

function timeline(steps) {
  if (steps.length === 0) return h("div", { class: "muted" }, "No steps.");
  return h("div", { class: "timeline" }, steps.map((s) => h("div", { class: `tstep ${s.state}`, "data-step": s.index, "data-state": s.state },
    h("span", { class: "dot" }),
    h("div", { class: "small muted" }, `step ${s.index + 1}`),
    h("div", { class: "label" }, stepLabel(s)),
    s.state === "current" ? badge("current", "info") : null,
    s.startedAt ? h("div", { class: "when" }, `started ${time(s.startedAt)}`) : null,
    s.finishedAt ? h("div", { class: "when" }, `finished ${time(s.finishedAt)}`) : null)));
}

function conditionsTable(conditions) {
  if (conditions.length === 0) return h("div", { class: "muted" }, "No conditions yet.");
  const tone = (c) => {
    if (c.status === "Unknown") return "";
    const good = c.type === "Ready" ? c.status === "True" : c.type === "Reconciling" ? null : c.status === "False";
    return good === null ? "info" : good ? "ok" : "bad";
  };
  return h("table", {}, h("tbody", {}, conditions.map((c) => h("tr", { "data-condition": c.type },
    h("td", {}, h("b", {}, c.type)), h("td", {}, badge(c.status, tone(c))),
    h("td", {}, c.reason ? h("div", { class: "mono small" }, c.reason) : null, c.message ? h("div", { class: "small muted" }, c.message) : null,
      h("div", { class: "small muted" }, `since ${dateTime(c.lastTransitionTime)}`))))));
}

function eventsTable(events) {
  if (events.length === 0) return h("div", { class: "muted" }, "No events.");
  return h("table", {},
    h("thead", {}, h("tr", {}, h("th", {}, "Type"), h("th", {}, "Reason"), h("th", {}, "Message"), h("th", { class: "num" }, "Count"), h("th", { class: "num" }, "Last seen"))),
    h("tbody", {}, events.map((e) => h("tr", {},
      h("td", {}, badge(e.type, e.type === "Warning" ? "bad" : "")), h("td", { class: "mono small" }, e.reason),
      h("td", {}, e.message), h("td", { class: "num" }, e.count ?? 1), h("td", { class: "num", title: dateTime(e.lastTime) }, age(e.lastTime))))));
}

// ---------- charts (uPlot, vendored from node_modules by the server) ----------

/** A container that draws its chart once it is in the page (uPlot needs the width). */
function chartBox(draw) {
  const el = h("div", { class: "chart" });
  requestAnimationFrame(() => {
    if (!el.isConnected) return;
    if (!window.uPlot) {
      el.replaceChildren(h("div", { class: "nochart" }, "charts unavailable (uPlot not loaded)"));
      return;
    }
    draw(el);
  });
  return el;
}

function seconds(iso) {
  const t = Date.parse(iso ?? "");
  return Number.isFinite(t) ? t / 1000 : null;
}

function weightChart(el, history, current) {
  const points = history.map((p) => [seconds(p.time), Number(p.weight)]).filter(([t, w]) => t !== null && Number.isFinite(w));
  // The line runs to "now": the weight holds until the next change.
  if (points.length > 0) points.push([now() / 1000, Number(current ?? points.at(-1)[1])]);
  if (points.length < 2) {
    el.replaceChildren(h("div", { class: "nochart" }, `Weight ${current ?? 0}% (no history seen yet).`));
    return;
  }
  const stepped = window.uPlot.paths?.stepped?.({ align: 1 });
  plot(el, [points.map((p) => p[0]), points.map((p) => p[1])], [
    { label: "weight %", stroke: "#3056d3", width: 2, fill: "rgba(48,86,211,.08)", paths: stepped },
  ], { y: { range: [0, 100] } });
}

function plot(el, data, series, scales) {
  const width = Math.max(260, el.clientWidth || 500);
  return new window.uPlot({
    width, height: 180,
    scales: { x: { time: true }, ...scales },
    legend: { live: false },
    cursor: { drag: { x: false, y: false } },
    series: [{}, ...series],
    axes: [{ stroke: "#667085", grid: { stroke: "#eef0f3" } }, { stroke: "#667085", grid: { stroke: "#eef0f3" }, size: 56 }],
  }, data, el);
}

/** A measurement's value as one number: scalars, or the first finite value of a vector ("[0.1]"). */
function numeric(v) {
  if (v === null || v === undefined || v === "") return null;
  let parsed = v;
  if (typeof v === "string") {
    try {
      parsed = JSON.parse(v);
    } catch {
      parsed = Number(v);
    }
  }
  if (Array.isArray(parsed)) parsed = parsed.map(Number).find(Number.isFinite);
  const n = Number(parsed);
  return typeof parsed === "number" && Number.isFinite(n) ? n : null;
}

/** The constant a simple condition compares `result` with ("result < 0.05"), for the threshold line. */
function thresholdValue(cond) {
  const m = /^\s*result(?:\[0\])?\s*(<=|<|>=|>)\s*(-?\d+(?:\.\d+)?(?:e-?\d+)?)\s*$/i.exec(cond ?? "");
  return m ? Number(m[2]) : null;
}

function metricChart(el, m) {
  const pts = (m.measurements ?? []).map((x) => [seconds(x.time), numeric(x.value)]).filter(([t]) => t !== null);
  if (pts.filter(([, v]) => v !== null).length === 0) {
    el.replaceChildren(h("div", { class: "nochart" }, pts.length ? `${pts.length} measurement(s), none numeric (no data is missing evidence, never a pass).` : "No measurements yet."));
    return;
  }
  const threshold = thresholdValue(m.threshold?.successCondition) ?? thresholdValue(m.threshold?.failureCondition);
  const series = [{ label: m.name, stroke: "#3056d3", width: 2, points: { show: true, size: 5 } }];
  const data = [pts.map((p) => p[0]), pts.map((p) => p[1])];
  if (threshold !== null) {
    series.push({ label: "threshold", stroke: "#c0262d", width: 1.5, dash: [6, 4], points: { show: false } });
    data.push(pts.map(() => threshold));
  }
  plot(el, data, series, { y: { range: valueRange([...data[1], threshold]) } });
}

/** A y range that keeps zero, the values and the threshold in view (uPlot's default for a flat 0 is 0..100). */
function valueRange(values) {
  const vs = values.filter((v) => v !== null && Number.isFinite(v));
  const lo = Math.min(0, ...vs);
  let hi = Math.max(0, ...vs);
  if (hi <= lo) hi = lo + 1;
  return [lo, hi + (hi - lo) * 0.15];
}

function analysisSection(runs) {
  return h("section", { class: "card", id: "analysis" }, h("h2", {}, "Analysis"),
    runs.length === 0 ? h("div", { class: "muted" }, "No analysis has run.") : runs.map(analysisRun));
}

function analysisRun(run) {
  return h("div", { class: "run", "data-run": run.id, style: "margin-bottom:18px" },
    h("div", { class: "metric-head" }, h("h3", {}, `${run.kind === "history" ? "Earlier run" : run.kind === "background" ? "Background run" : "Current run"} · ${run.id}`),
      badge(run.phase, METRIC_TONE[run.phase] ?? ""),
      h("span", { class: "counts" }, `${time(run.startedAt)}${run.finishedAt ? ` – ${time(run.finishedAt)}` : ""}`)),
    (run.metrics ?? []).map(metricBlock));
}

function metricBlock(m) {
  const t = m.threshold;
  return h("div", { class: "metric", "data-metric": m.name },
    h("div", { class: "metric-head" }, h("b", {}, m.name), badge(m.phase, METRIC_TONE[m.phase] ?? ""),
      t?.successCondition ? h("span", { class: "mono small" }, `pass if ${t.successCondition}`) : null,
      t?.failureCondition ? h("span", { class: "mono small" }, `fail if ${t.failureCondition}`) : null,
      h("span", { class: "counts" }, `last ${m.lastValue ?? "–"} · ${m.successful ?? 0} ok · ${m.failed ?? 0} failed · ${m.inconclusive ?? 0} inconclusive · ${m.error ?? 0} errors`)),
    m.query ? h("pre", { class: "query", title: "the resolved query" }, m.query) : null,
    m.message ? h("div", { class: "small muted" }, m.message) : null,
    chartBox((el) => metricChart(el, m)),
    m.judge ? judgeBlock(m.judge) : null);
}

function judgeBlock(judge) {
  return h("div", { class: "judge", "data-judge": "" }, Object.entries(judge).filter(([, v]) => v !== null && typeof v !== "object")
    .flatMap(([k, v]) => [h("span", { class: "muted" }, k), h("span", { class: k === "verdict" ? "mono" : "" }, String(v))]));
}

// ---------- the shadow diff ----------

async function showDiff(ns, name) {
  const path = `/api/rollouts/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/diffs?limit=8`;
  const refresh = throttled(async () => {
    if (state.route?.view !== "diff" || state.route.ns !== ns || state.route.name !== name) return;
    try {
      renderDiff(ns, name, await get(path));
    } catch (err) {
      renderDiffError(ns, name, err);
    }
  }, 5000);
  state.refresh = refresh;
  listen(`rollout=${encodeURIComponent(`${ns}/${name}`)}`, (msg) => {
    if (msg.row.namespace === ns && msg.row.name === name) refresh();
  });
  try {
    renderDiff(ns, name, await get(path));
  } catch (err) {
    renderDiffError(ns, name, err);
  }
}

function renderDiffError(ns, name, err) {
  const text = err?.code === "no_gateway" ? "The dashboard was started without --gateway, so it cannot show the shadow diff." : null;
  view.replaceChildren(tabs(ns, name, "diff"), h("div", { class: "card error-box", role: "alert" }, text ?? `${err?.status ?? ""} ${err?.message ?? err}`));
}

function renderDiff(ns, name, d) {
  const s = d.summary ?? {};
  const kv = (label, value) => h("div", { class: "kv" }, h("span", {}, label), h("b", {}, value));
  const scrollY = window.scrollY;
  view.replaceChildren(
    h("section", { class: "card" }, h("div", { class: "summary" },
      h("div", {}, h("div", { class: "muted small" }, ns), h("h1", {}, name)),
      kv("Stable → candidate", `${d.stable ?? "?"} → ${d.candidate ?? "?"}`),
      kv("Compared", `${s.compared ?? 0}${s.minSamples ? ` / ${s.minSamples} needed` : ""}`),
      kv("Mismatch rate", pct(s.mismatchRate) ?? "–"),
      kv("Noise", s.noiseCompared ? `${s.noiseMismatched ?? 0} / ${s.noiseCompared}` : "no baseline"),
      kv("Shadow", d.shadowEnabled ? "mirroring" : "off")),
    s.approximate ? h("div", { class: "message" }, "Counts are approximate (bounded tracking of paths).") : null),
    tabs(ns, name, "diff"),
    h("section", { class: "card" }, h("h2", {}, "Fields by candidate mismatch rate"), fieldsTable(s.topFields ?? [])),
    h("section", { class: "card" }, h("h2", {}, "Samples (masked by the gateway)"), samplesList(d.samples ?? [])),
  );
  requestAnimationFrame(() => window.scrollTo(0, scrollY));
}

function rateBar(rate, cls) {
  const v = Number(rate);
  if (rate === null || rate === undefined || !Number.isFinite(v)) return h("span", { class: "muted" }, "–");
  return h("div", { class: "barcell" }, h("div", { class: `bar ${cls}` }, h("span", { style: `width:${Math.min(100, v * 100)}%` })),
    h("span", { class: "mono" }, pct(v)));
}

function fieldsTable(fields) {
  if (fields.length === 0) return h("div", { class: "muted" }, "No field has differed yet.");
  const sorted = [...fields].sort((a, b) => Number(b.rate) - Number(a.rate));
  return h("table", { class: "fields" },
    h("thead", {}, h("tr", {}, h("th", {}, "Field"), h("th", {}, "Candidate mismatch"), h("th", {}, "Noise (stable vs stable)"), h("th", { class: "num" }, "Counts"), h("th", {}, ""))),
    h("tbody", {}, sorted.map((f) => h("tr", { class: f.flagged ? "row flagged" : "row", "data-path": f.path, "data-flagged": f.flagged ? "true" : "false" },
      h("td", {}, h("code", {}, f.path)),
      h("td", {}, rateBar(f.rate, f.flagged ? "flagged" : "")),
      h("td", {}, rateBar(f.noiseRate, "noise")),
      h("td", { class: "num small" }, `${f.candidateMismatched ?? "?"} / ${f.noiseMismatched ?? "–"}`),
      h("td", {}, f.flagged ? h("span", { class: "flag", title: "above the noise rate: the candidate changed this field" }, "⚑ flagged") : null)))));
}

function samplesList(samples) {
  if (samples.length === 0) return h("div", { class: "muted" }, "No samples kept yet.");
  return h("div", { class: "samples" }, samples.map((s) => {
    const paths = new Set((s.mismatches ?? []).map((m) => m.concretePath ?? m.path));
    return h("div", { class: "sample", "data-request": s.requestId ?? "" },
      h("div", { class: "sample-head" }, h("span", {}, time(s.time)), h("code", {}, s.path ?? ""), h("span", { class: "mono" }, s.requestId ?? ""),
        (s.mismatches ?? []).map((m) => badge(`${m.concretePath ?? m.path}: ${m.reason ?? m.rule ?? "differs"}`, "warn"))),
      h("div", { class: "sides" }, side("Stable", s.stable, paths), side("Candidate", s.candidate, paths)));
  }));
}

function side(label, v, paths) {
  return h("div", { class: "side" }, h("h3", {}, `${label} ${v?.version ?? ""} · HTTP ${v?.status ?? "?"}`),
    h("pre", { class: "json" }, bodyLines(v?.body, paths)));
}

/** The gateway keeps bodies as masked text: JSON is shown as a tree, anything else as it is. */
function bodyLines(body, paths) {
  if (typeof body !== "string") return jsonLines(body, paths);
  try {
    return jsonLines(JSON.parse(body), paths);
  } catch {
    return body.split("\n").slice(0, MAX_LINES).map((l) => h("span", { class: "ln" }, l));
  }
}

// ---------- JSON rendered line by line, differing paths highlighted ----------

const MAX_LINES = 400;
const MAX_DEPTH = 32;

/** The path segment the diff uses for a key (diff/path.ts): `.key` for plain keys, else `["key"]`. */
function seg(key) {
  return /^[A-Za-z0-9_-]+$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

/** Renders a JSON value as lines (bounded in lines and depth), marking those at a differing path. */
function jsonLines(value, paths) {
  const out = [];
  const line = (depth, path, parts) => {
    if (out.length === MAX_LINES) out.push(h("span", { class: "ln z" }, "… (cut)"));
    if (out.length >= MAX_LINES) return;
    out.push(h("span", { class: `ln${paths.has(path) ? " diff" : ""}`, "data-path": path }, "  ".repeat(depth), parts));
  };
  const walk = (v, depth, path, prefix, comma) => {
    const c = comma ? "," : "";
    if (v === null || typeof v !== "object" || depth >= MAX_DEPTH) {
      const shown = depth >= MAX_DEPTH && v !== null && typeof v === "object" ? h("span", { class: "z" }, "…") : scalar(v);
      line(depth, path, [prefix, shown, c]);
      return;
    }
    const entries = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
    const [open, close] = Array.isArray(v) ? ["[", "]"] : ["{", "}"];
    if (entries.length === 0) {
      line(depth, path, [prefix, open + close, c]);
      return;
    }
    line(depth, path, [prefix, open]);
    entries.forEach(([k, x], i) => {
      const childPath = Array.isArray(v) ? `${path}[${k}]` : path + seg(k);
      const keyPart = Array.isArray(v) ? [] : [h("span", { class: "k" }, JSON.stringify(k)), ": "];
      walk(x, depth + 1, childPath, keyPart, i < entries.length - 1);
    });
    line(depth, `${path}#end`, [close, c]);
  };
  if (value === undefined) return [h("span", { class: "ln z" }, "(no body)")];
  walk(value, 0, "$", [], false);
  return out;
}

function scalar(v) {
  if (typeof v === "string") return h("span", { class: "s" }, JSON.stringify(v));
  if (typeof v === "number") return h("span", { class: "n" }, String(v));
  return h("span", { class: "z" }, JSON.stringify(v) ?? "null");
}

// ---------- start ----------

if (report) setMode("frozen", `report · ${dateTime(report.generatedAt)}`);
else setMode("offline", "connecting…");
window.addEventListener("hashchange", route);
route();
