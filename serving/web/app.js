// TwinCare care manager's cockpit: plain JavaScript and the vendored ECharts; talks only to this server.
// Every text from the server is put on the page as text (textContent), never as markup.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { meta: null, charts: [], view: null, drawn: {}, ticket: 0, resident: null };
window.twincareDrawn = state.drawn; // when each view was last drawn (ms since navigation), for timing

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "href" || k === "title") node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
const pct = (p) => `${(100 * p).toFixed(1)}%`;
const bandBadge = (band) => el("span", { class: `band ${band}` }, band);
const residentLink = (id) => el("a", { href: `#/resident/${encodeURIComponent(id)}`, class: "resident-link" }, id);
const titleOf = (model) => ((state.meta && state.meta.models.find((m) => m.name === model)) || { title: model }).title;
// what the served version is: trained here, a reference community's model, or the baseline itself
const KIND_TEXT = { local: "trained on this community", reference: "a reference community's model", baseline: "the baseline screen (no model beat it)" };
const kindText = (kind) => KIND_TEXT[kind] || kind;
const servedOf = (model) => (state.meta && state.meta.models.find((m) => m.name === model)) || null;
const narrow = () => window.innerWidth < 700;

function setStatus(text, isError = false) {
  const s = $("#status");
  s.textContent = text;
  s.classList.toggle("error", isError);
}

class HttpError extends Error {
  constructor(status, message, detail) { super(message); this.status = status; this.detail = detail || []; }
}

async function api(path, options = {}) {
  const response = await fetch(path, { credentials: "same-origin", ...options });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) throw new HttpError(response.status, (body && body.error) || response.statusText, body && body.detail);
  return body;
}

function mark(view) {
  state.drawn[view] = performance.now();
  document.body.dataset.drawn = view;
}

// ---------------------------------------------------------------------------------------------
// Charts (ECharts, SVG renderer); every chart has a text alternative beside it
// ---------------------------------------------------------------------------------------------

function chart(container, option, label) {
  container.setAttribute("role", "img");
  container.setAttribute("aria-label", label);
  const c = echarts.init(container, null, { renderer: "svg" });
  c.setOption({ animation: false, textStyle: { fontFamily: "inherit" }, ...option });
  // follow the container's size (layout changes, narrow screens) without waiting for a window resize
  const watch = new ResizeObserver(() => { if (!c.isDisposed()) c.resize(); });
  watch.observe(container);
  c.watch = watch;
  state.charts.push(c);
  return c;
}

function disposeChart(c) {
  if (c.watch) c.watch.disconnect();
  if (!c.isDisposed()) c.dispose();
}

function disposeCharts() {
  for (const c of state.charts) disposeChart(c);
  state.charts = [];
}

const tooltip = (fmt) => ({ trigger: "axis", confine: true, formatter: (ps) => esc(fmt(ps)) });

let sparkChart = null; // one off-screen chart draws every sparkline as an SVG image

function sparkline(container, trend, label) {
  if (!sparkChart) sparkChart = echarts.init(null, null, { renderer: "svg", ssr: true, width: 160, height: 34 });
  sparkChart.setOption({
    animation: false,
    grid: { left: 2, right: 2, top: 4, bottom: 4 },
    xAxis: { type: "category", show: false, data: trend.map((p) => p.as_of) },
    yAxis: { type: "value", show: false, min: 0 },
    series: [{ type: "line", data: trend.map((p) => p.probability), symbol: "none", lineStyle: { width: 2, color: "#1f5fa8" }, areaStyle: { color: "rgba(31,95,168,.12)" } }],
  }, true);
  // parsed as an SVG document (not as HTML), so nothing in it can run
  const svg = new DOMParser().parseFromString(sparkChart.renderToSVGString(), "image/svg+xml").documentElement;
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("aria-hidden", "true");
  container.setAttribute("role", "img");
  container.setAttribute("aria-label", label);
  container.replaceChildren(document.importNode(svg, true));
}

// ---------------------------------------------------------------------------------------------
// Sign-in
// ---------------------------------------------------------------------------------------------

async function signIn(event) {
  event.preventDefault();
  const input = $("#api-key");
  const key = input.value.trim();
  input.value = "";
  $("#sign-in-error").textContent = "";
  if (!key) return;
  try {
    showSignedIn(await api("/session", { method: "POST", headers: { "X-API-Key": key } }));
    if (!location.hash || location.hash === "#/sign-in") location.hash = "#/at-risk";
    else route();
  } catch (err) {
    const msg = err.status === 401 ? "That key is not valid. Check it and try again."
      : err.status === 403 ? `This key may not open the cockpit: ${err.message}`
      : `Could not sign in: ${err.message}`;
    $("#sign-in-error").textContent = msg;
    input.focus();
  }
}

async function signOut() {
  try { await api("/session/end", { method: "POST" }); } catch (_) { /* signed out either way */ }
  state.meta = null;
  showSignIn("You are signed out.");
}

function showSignedIn(who) {
  $("#who-name").textContent = `Signed in as ${who.name}`;
  $("#who").hidden = false;
  $("#nav").hidden = false;
}

function showSignIn(message = "") {
  disposeCharts();
  $("#who").hidden = true;
  $("#nav").hidden = true;
  for (const v of document.querySelectorAll(".view")) v.hidden = true;
  $("#view-sign-in").hidden = false;
  setStatus(message);
  $("#api-key").focus();
}

// ---------------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------------

async function loadMeta() {
  if (state.meta) return state.meta;
  const meta = await api("/cockpit/meta");
  state.meta = meta;
  showSignedIn(meta.who);
  $("#f-model").replaceChildren(...meta.models.map((m) => el("option", { value: m.name }, m.title)));
  $("#f-grid").replaceChildren(el("option", { value: "" }, "All grids"), ...meta.grids.map((g) => el("option", { value: g }, g)));
  for (const p of document.querySelectorAll(".note-panel")) p.textContent = meta.panels_not_available[p.dataset.panel] || "";
  return meta;
}

let searchTimer = null;

async function drawAtRisk(ticket, metaReady) {
  const query = new URLSearchParams({ limit: "50" });
  for (const [id, key] of [["#f-model", "model"], ["#f-band", "band"], ["#f-grid", "grid"], ["#f-q", "q"]]) {
    const v = $(id).value.trim();
    if (v) query.set(key, v);
  }
  const [data] = await Promise.all([api(`/cockpit/at-risk?${query}`), metaReady]);
  if (ticket !== state.ticket) return; // a later choice is being drawn
  state.drawn[`${state.view}:data`] = performance.now();
  disposeCharts();
  const list = $("#risk-list");
  list.replaceChildren();
  const newly = data.items.filter((i) => i.newly_high).length;
  const served = servedOf(data.model);
  $("#at-risk-summary").textContent = `${titleOf(data.model)}: showing ${data.items.length} of ${data.total} residents, highest risk first`
    + ` (${data.source === "stored" ? "latest nightly scores" : "scored live"}); ${newly} newly high since last week.`
    + (served ? ` Served: v${served.version}, ${kindText(served.kind)}.` : "");
  for (const item of data.items) {
    const spark = el("div", { class: "spark" });
    const li = el("li", { class: "risk-item", "data-resident": item.resident_id },
      el("span", { class: "rank", "aria-hidden": "true" }, `${item.rank}`),
      el("div", { class: "who" },
        residentLink(item.resident_id),
        el("span", { class: "muted" }, item.grid_id ? ` grid ${item.grid_id}` : ""),
        item.newly_high ? el("span", { class: "new", title: "High now, not high a week ago" }, "newly high") : null),
      el("div", { class: "score" }, el("span", { class: "prob" }, pct(item.probability)), " ", bandBadge(item.band)),
      spark,
      el("ul", { class: "reasons" }, ...(item.reasons || []).map((r) => el("li", {}, r.text)),
        ...(item.missing_data || []).map((r) => el("li", { class: "missing" }, `missing data: ${r.text}`))));
    list.append(li);
    if (item.trend.length > 1) {
      const first = item.trend[0], last = item.trend[item.trend.length - 1];
      sparkline(spark, item.trend, `${titleOf(data.model)} of ${item.resident_id} over ${item.trend.length} weeks: from ${pct(first.probability)} to ${pct(last.probability)}`);
    } else {
      spark.append(el("span", { class: "muted" }, "no trend yet"));
    }
  }
  if (!data.items.length) list.append(el("li", { class: "empty" }, "No resident matches these filters."));
  mark("at-risk");
}

function riskChart(container, risk) {
  const t = risk.trend;
  chart(container, {
    grid: { left: 44, right: 60, top: 16, bottom: 28 },
    tooltip: tooltip((ps) => ps.map((p) => `${p.axisValue}: ${pct(p.value)}`).join(", ")),
    xAxis: { type: "category", data: t.map((p) => p.as_of), axisLabel: { hideOverlap: true, color: "#3d4752", formatter: (d) => d.slice(5) } },
    yAxis: { type: "value", min: 0, axisLabel: { formatter: (v) => `${Math.round(v * 100)}%`, color: "#3d4752" } },
    series: [{
      type: "line", data: t.map((p) => p.probability), symbolSize: 5, lineStyle: { color: "#1f5fa8" }, itemStyle: { color: "#1f5fa8" },
      markLine: { silent: true, symbol: "none", label: { formatter: "{b}", color: "#3d4752" }, lineStyle: { type: "dashed" },
        data: [{ name: "high", yAxis: risk.bands.high, lineStyle: { color: "#b3261e" } }, { name: "medium", yAxis: risk.bands.medium, lineStyle: { color: "#8a4f00" } }] },
    }],
  }, `${risk.title} over time: ${t.map((p) => `${p.as_of} ${pct(p.probability)}`).join("; ")}`);
}

// The causes that raise a risk (SHAP summed over the features measuring each), strongest first
function causeLine(causes) {
  if (!causes || !causes.length) return el("p", { class: "causes muted" }, "No cause raises it above the community's average.");
  const [first, ...rest] = causes;
  return el("p", { class: "causes" }, "Mostly ", el("strong", { "data-cause": first.cause }, first.text),
    rest.length ? el("span", { class: "muted" }, `; also ${rest.slice(0, 2).map((c) => c.text).join(", ")}`) : null, ".");
}

// The likely cause, from the version's cause reader (trained on a twin's planted causes), if any
function likelyLine(likely) {
  if (!likely) return null;
  return el("p", { class: "likely-cause" }, "Likely cause: ", el("strong", { "data-cause": likely.cause }, likely.text),
    el("span", { class: "muted" }, ` (${pct(likely.probability)}; learned from ${likely.learned_from})`));
}

function reasonsChart(container, risk) {
  const rs = [...risk.reasons].reverse(); // strongest at the top
  const wrap = narrow() ? 120 : 260;
  container.style.height = `${Math.max(160, 34 * rs.length + 40)}px`;
  chart(container, {
    grid: { left: wrap + 10, right: 40, top: 8, bottom: 24 },
    xAxis: { type: "value", axisLabel: { color: "#3d4752" }, name: "", splitLine: { lineStyle: { color: "#e3e7ec" } } },
    yAxis: { type: "category", data: rs.map((r) => r.text), axisLabel: { width: wrap, overflow: "truncate", color: "#1d2733" }, axisTick: { show: false } },
    series: [{
      type: "bar", data: rs.map((r) => ({ value: r.contribution, itemStyle: { color: r.contribution > 0 ? "#b3261e" : "#2e7d32" } })),
      label: { show: true, position: "right", formatter: (p) => (p.value > 0 ? "+" : "") + p.value.toFixed(2), color: "#1d2733" },
    }],
  }, `Reasons for ${risk.title}: ${risk.reasons.map((r) => `${r.text} (${r.direction} the risk by ${Math.abs(r.contribution).toFixed(2)})`).join("; ")}`);
}

function sensorChart(container, s) {
  const pts = s.points;
  const values = pts.map((p) => p[1]).filter((v) => v !== null);
  const lo = Math.min(...values, s.usual_low ?? Infinity), hi = Math.max(...values, s.usual_high ?? -Infinity);
  const pad = (hi - lo) * 0.1 || 1;
  const areas = [];
  if (s.usual_low !== null) areas.push([{ yAxis: s.usual_low, itemStyle: { color: "rgba(46,125,50,.13)" } }, { yAxis: s.usual_high }]);
  const recentAreas = [[{ xAxis: s.recent_from, itemStyle: { color: "rgba(31,95,168,.08)" } }, { xAxis: pts.length ? pts[pts.length - 1][0] : s.recent_from }]];
  chart(container, {
    grid: { left: 48, right: 10, top: 10, bottom: 26 },
    tooltip: tooltip((ps) => ps.map((p) => `${p.axisValue}: ${p.value ?? "no reading"} ${s.unit}`).join(", ")),
    xAxis: { type: "category", data: pts.map((p) => p[0]), axisLabel: { hideOverlap: true, color: "#3d4752", formatter: (d) => d.slice(5) } },
    yAxis: { type: "value", min: Math.max(0, +(lo - pad).toFixed(2)), max: +(hi + pad).toFixed(2),
      axisLabel: { color: "#3d4752", showMinLabel: false, showMaxLabel: false } },
    series: [
      { type: "line", data: pts.map((p) => p[1]), connectNulls: false, symbol: "none", lineStyle: { width: 1.5, color: "#1f5fa8" },
        markArea: { silent: true, data: [...areas, ...recentAreas] } },
    ],
  }, `${s.label}: ${s.change}`);
}

async function drawResident(id, ticket, metaReady) {
  const [data, , home] = await Promise.all([api(`/cockpit/residents/${encodeURIComponent(id)}`), metaReady, homeAlertsOf(id, metaReady)]);
  if (ticket !== state.ticket) return; // a later choice is being drawn
  state.drawn[`${state.view}:data`] = performance.now();
  disposeCharts();
  state.resident = id;
  drawHomeAlerts(home);
  $("#resident-id").textContent = data.resident_id;
  $("#resident-meta").textContent = `Grid ${data.grid_id ?? "unknown"} · features as of ${data.as_of_date} · today ${data.today}`;
  const cards = $("#risk-cards");
  cards.replaceChildren();
  const later = [];
  for (const r of data.risks) {
    const over = el("div", { class: "chart risk-chart" });
    const why = el("div", { class: "chart reasons-chart" });
    cards.append(el("article", { class: "card", "data-model": r.model },
      el("h2", {}, `${r.title} `, bandBadge(r.band), r.newly_high ? el("span", { class: "new" }, "newly high") : null),
      el("p", { class: "prob" }, pct(r.probability), el("span", { class: "muted" }, ` model ${r.model} v${r.version}, `),
        el("span", { class: "muted model-kind", "data-kind": r.kind }, kindText(r.kind))),
      likelyLine(r.likely_cause),
      causeLine(r.causes),
      el("h3", {}, "Risk over time"), over,
      el("h3", {}, "What raises and lowers it"), why,
      el("ul", { class: "reasons signed" }, ...r.reasons.map((x) => el("li", { class: x.direction },
        el("span", { class: "sign" }, x.direction === "raises" ? "▲ raises" : "▼ lowers"), " ", x.text)))));
    later.push(() => { riskChart(over, r); reasonsChart(why, r); });
  }
  const gaps = $("#missing-list");
  gaps.replaceChildren(...(data.missing_data.length ? data.missing_data.map((n) => el("li", {}, n)) : [el("li", { class: "muted" }, "No sensor has been silent in the last 30 days.")]));
  const sensors = $("#sensor-charts");
  sensors.replaceChildren();
  for (const s of data.sensors) {
    const box = el("div", { class: "chart sensor-chart" });
    sensors.append(el("figure", { class: "sensor", "data-signal": s.signal },
      el("figcaption", {}, el("strong", {}, s.label + (s.unit ? ` (${s.unit})` : "")), el("br"), el("span", { class: "muted" }, s.change)), box));
    later.push(() => sensorChart(box, s));
  }
  $("#timeline").replaceChildren(...(data.timeline.length ? data.timeline.map((t) => el("li", { class: `tl ${t.kind}` },
    el("time", { dateTime: t.date }, t.date), " ", el("span", { class: "kind" }, t.kind), " ", t.text)) : [el("li", { class: "muted" }, "Nothing recorded in the last year.")]));
  $("#resident-tasks").replaceChildren(...(data.tasks.length ? data.tasks.map(taskCard) : [el("li", { class: "muted" }, "No tasks.")]));
  for (const draw of later) draw(); // once laid out, so each chart takes its own box's size
  mark("resident");
}

function taskCard(t) {
  return el("li", { class: `task ${t.status}${t.overdue ? " overdue" : ""}`, "data-task": t.task_id },
    el("div", { class: "task-head" }, el("strong", {}, t.kind.replace(/_/g, " ")), " for ", residentLink(t.resident_id),
      t.overdue ? el("span", { class: "overdue-badge" }, "overdue") : null),
    el("div", { class: "muted" }, `${t.what_for} · ${t.status}${t.volunteer_id ? ` by ${t.volunteer_id}` : ""}`),
    el("div", {}, `${t.credits ?? "?"} h credits · due ${t.due_date ?? "—"}`),
    el("div", { class: "muted small" }, t.task_id));
}

async function drawTasks(ticket, metaReady) {
  const [data] = await Promise.all([api("/cockpit/tasks"), metaReady]);
  if (ticket !== state.ticket) return; // a later choice is being drawn
  state.drawn[`${state.view}:data`] = performance.now();
  disposeCharts();
  const cols = [["open", "Open"], ["claimed", "Claimed"], ["completed", "Completed (recent)"], ["expired", "Expired (recent)"]];
  $("#tasks-summary").textContent = `${data.columns.open.length} open, ${data.columns.claimed.length} claimed, ${data.overdue} overdue (today ${data.today}).`;
  $("#board").replaceChildren(...cols.map(([key, label]) => el("section", { class: "column", "data-status": key, "aria-label": label },
    el("h2", {}, `${label} `, el("span", { class: "count" }, `${data.columns[key].length}`)),
    el("ul", { class: "task-list" }, ...(data.columns[key].length ? data.columns[key].map(taskCard) : [el("li", { class: "muted" }, "None.")])))));
  mark("tasks");
}

let gridData = null;

function drawHeatmap() {
  const h = gridData.heatmap;
  const box = $("#heatmap");
  for (const c of state.charts.filter((c) => c.getDom() === box)) disposeChart(c);
  state.charts = state.charts.filter((c) => !c.isDisposed());
  if (!h.grids.length) { box.textContent = "No demand forecast is available."; return; }
  const cat = $("#heat-category").value;
  const cats = cat ? [cat] : h.categories;
  const hoursOf = h.hours_per_request;
  const cells = [];
  let maxRatio = 1;
  h.grids.forEach((g, gi) => h.dates.forEach((d, di) => {
    const req = cats.reduce((s, c) => s + h.requests[c][gi][di], 0);
    const hours = cats.reduce((s, c) => s + h.requests[c][gi][di] * (hoursOf[c] || 1), 0);
    const ratio = h.supply_hours[gi] > 0 ? hours / h.supply_hours[gi] : 2;
    maxRatio = Math.max(maxRatio, ratio);
    cells.push([di, gi, +ratio.toFixed(2), +req.toFixed(1)]);
  }));
  box.style.height = `${Math.max(220, 26 * h.grids.length + 90)}px`;
  const hottest = [...cells].sort((a, b) => b[2] - a[2]).slice(0, 3).map((c) => `${h.grids[c[1]]} on ${h.dates[c[0]]} (${c[2]}× supply)`);
  chart(box, {
    grid: { left: 56, right: 12, top: 10, bottom: narrow() ? 86 : 70 },
    tooltip: { confine: true, formatter: (p) => esc(`${h.grids[p.value[1]]}, ${h.dates[p.value[0]]}: ${p.value[3]} requests, ${p.value[2]}× the volunteer hours`) },
    xAxis: { type: "category", data: h.dates.map((d) => d.slice(5)), axisLabel: { rotate: narrow() ? 60 : 0, color: "#3d4752" }, splitArea: { show: true } },
    yAxis: { type: "category", data: h.grids, axisLabel: { color: "#1d2733" } },
    visualMap: { min: 0, max: Math.max(1.5, +maxRatio.toFixed(1)), dimension: 2, orient: "horizontal", left: "center", bottom: 0, itemHeight: 120,
      calculable: false, text: ["more asked than offered", "0"], textStyle: { color: "#1d2733" }, inRange: { color: ["#f2f7fb", "#9ecae1", "#f6c26b", "#b3261e"] } },
    series: [{ type: "heatmap", data: cells, label: { show: !narrow(), formatter: (p) => `${Math.round(p.value[3])}`, fontSize: 10, color: "#1d2733" } }],
  }, `Forecast requests ${cat ? `for ${cat.replace(/_/g, " ")}` : "of all kinds"} per grid for ${h.dates.length} days from ${h.dates[0]}; busiest against volunteer supply: ${hottest.join("; ")}`);
}

async function drawGrids(ticket, metaReady) {
  const [data] = await Promise.all([api("/cockpit/grids"), metaReady]);
  if (ticket !== state.ticket) return; // a later choice is being drawn
  state.drawn[`${state.view}:data`] = performance.now();
  disposeCharts();
  gridData = data;
  const sel = $("#heat-category");
  const keep = sel.value;
  sel.replaceChildren(el("option", { value: "" }, "all kinds of help"), ...data.heatmap.categories.map((c) => el("option", { value: c }, c.replace(/_/g, " "))));
  sel.value = data.heatmap.categories.includes(keep) ? keep : "";
  const raised = data.grids.filter((g) => g.credits_raised);
  $("#grids-summary").textContent = `${data.grids.length} grids; credits raised for scarcity in ${raised.length}: ${raised.map((g) => `${g.grid_id} (×${+g.scarcity.toFixed(1)})`).join(", ") || "none"}.`;
  drawHeatmap();
  const models = Object.keys(data.titles);
  $("#grid-table tbody").replaceChildren(...data.grids.map((g) => el("tr", { "data-grid": g.grid_id },
    el("th", { scope: "row" }, g.grid_id),
    el("td", {}, models.map((m) => `${data.titles[m]} ${g.high[m] ?? 0}`).join(", ")),
    el("td", {}, `${g.active_tasks}`, g.overdue_tasks ? el("span", { class: "overdue-badge" }, `${g.overdue_tasks} overdue`) : null),
    el("td", {}, g.credits_raised ? el("span", { class: "raised" }, `raised ×${+g.scarcity.toFixed(1)}`) : "normal",
      g.demand_hours_7d !== null ? el("div", { class: "muted small" }, `${Math.round(g.demand_hours_7d)} h asked / ${Math.round(g.supply_hours_7d)} h offered a week`) : null))));
  mark("grids");
}

// ---------------------------------------------------------------------------------------------
// Alerts: the live feed, acknowledged and rated here
// ---------------------------------------------------------------------------------------------

function alertCard(a) {
  const act = (label, path, body) => el("button", { type: "button", onclick: async () => {
    try { await api(`/alerts/${encodeURIComponent(a.alert_id)}/${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body || {}) }); route(); }
    catch (err) { setStatus(`Could not ${label.toLowerCase()}: ${err.message}`, true); }
  } }, label);
  return el("li", { class: `task alert ${a.status}`, "data-alert": a.alert_id },
    el("div", { class: "task-head" }, el("strong", {}, a.kind.replace(/_/g, " ")), " for ", residentLink(a.resident_id),
      a.status === "escalated" ? el("span", { class: "overdue-badge" }, "escalated") : null),
    el("div", {}, a.text),
    el("div", { class: "muted" }, `raised ${a.raised_at.replace("T", " ")} (home clock) · ${a.status}`
      + (a.acknowledged_by ? ` by ${a.acknowledged_by}` : "") + (a.rating ? ` · rated ${a.rating === "real" ? "real" : "a false alarm"}${a.rating_reason === "out" ? " (was out)" : ""}` : "")),
    el("div", { class: "actions" },
      a.status !== "acknowledged" ? act("Acknowledge", "acknowledge") : null,
      a.rating ? null : act("Real", "rate", { rating: "real" }),
      a.rating ? null : act("False alarm", "rate", { rating: "false" }),
      a.rating || a.kind !== "no_movement" ? null : act("False: was out", "rate", { rating: "false", reason: "out" })));
}

// ---------------------------------------------------------------------------------------------
// A resident's home on the resident page: its recent alerts, away times and quiet hours
// ---------------------------------------------------------------------------------------------

const homePath = (id, path) => `/residents/${encodeURIComponent(id)}/${path}`;
const clock = (iso) => iso.replace("T", " ").slice(0, 16);

async function homeAlertsOf(id, metaReady) {
  const meta = await metaReady;
  if (meta.panels_not_available.alerts) return null; // no live alerts here: the section stays hidden
  try {
    return await Promise.all([api(homePath(id, "alert_settings")), api(`/alerts?${new URLSearchParams({ resident_id: id, limit: "20" })}`)]);
  } catch (err) {
    if (err.status === 401) throw err;
    return { error: err.message }; // the rest of the resident page still draws
  }
}

function drawHomeAlerts(home) {
  $("#home-alerts").hidden = !home;
  if (!home) return;
  $("#home-alerts-error").textContent = home.error ? `The home's alerts and settings could not be loaded: ${home.error}` : "";
  $("#home-alerts-body").hidden = Boolean(home.error);
  if (home.error) { mark("home-alerts"); return; }
  const [settings, alerts] = home;
  $("#resident-alerts").replaceChildren(...(alerts.items.length ? alerts.items.map(alertCard) : [el("li", { class: "muted" }, "No alerts.")]));
  const tuned = tuningItems(settings);
  $("#tuning-list").replaceChildren(...(tuned.length ? tuned : [el("li", { class: "muted" }, "Nothing yet: every wait is as learned from the home's own days.")]));
  $("#away-list").replaceChildren(...(settings.away.length ? settings.away.map(awayItem) : [el("li", { class: "muted" }, "No away time set.")]));
  const q = settings.quiet_hours;
  $("#quiet-now").textContent = `${q.start} to ${q.end}, ${q.default ? "the service's default" : "set for this home"}.`;
  $("#quiet-start").value = q.start;
  $("#quiet-end").value = q.end;
  $("#quiet-clear").hidden = q.default;
  mark("home-alerts");
}

// A rating of an alert makes that wait longer (a false alarm) or shorter (real): for no movement,
// the wait after stillness in one place by day or at night (its cell, "living/day"); else the kind's
const PLACE_WORDS = { motion: "the hall", living: "the living room", bedroom: "the bedroom", kitchen: "the kitchen",
  bathroom: "the bathroom", toilet: "the toilet", bed: "getting out of bed" };
const KIND_WORDS = { no_movement: "No movement", not_up: "Not up", night_exit: "Night exit", toilet_surge: "Toilet visits at night" };

function cellWords(cell) {
  const [place, time] = cell.split("/");
  const where = place.startsWith("chair ") ? `sitting (${place.slice(6)})` : (PLACE_WORDS[place] ?? place.replace(/_/g, " "));
  return `after ${where} ${time === "night" ? "when up at night" : "during the day"}`;
}

function tuningItems(settings) {
  const factor = (f) => `waits ${+f.toFixed(2)}× as long as learned`;
  const kinds = Object.entries(settings.tuning || {}).filter(([, f]) => f !== 1)
    .map(([kind, f]) => el("li", { "data-tuned": kind }, `${KIND_WORDS[kind] ?? kind}: ${factor(f)}`));
  const cells = Object.entries(settings.cell_tuning || {}).filter(([, f]) => f !== 1)
    .map(([cell, f]) => el("li", { "data-tuned": cell }, `No movement ${cellWords(cell)}: ${factor(f)}`));
  const door = settings.door_missed ? [el("li", { "data-tuned": "door" },
    `Front door: its sensor missed ${settings.door_missed} outing${settings.door_missed === 1 ? "" : "s"} rated "was out" (check its battery and placement); no wait lengthened for ${settings.door_missed === 1 ? "it" : "them"}`)] : [];
  return [...cells, ...kinds, ...door];
}

function awayItem(s) {
  const span = `${clock(s.start)} until ${clock(s.end)}`;
  return el("li", { class: "away", "data-away": s.away_id },
    el("span", {}, span), s.note ? el("span", { class: "muted" }, ` · ${s.note}`) : null, el("span", { class: "muted small" }, ` · set by ${s.created_by}`),
    el("button", { type: "button", class: "secondary", "aria-label": `Cancel away time ${span}`, onclick: async () => {
      if (await changeHome($("#away-form"), `away/${s.away_id}`, "DELETE", null, "Away time cancelled: alerts from the home resume.")) $("#away-list").focus();
    } }, "Cancel"));
}

function showFieldErrors(form, err = null) {
  // a 422 names the bad field (detail loc: body, field): its message stands under that field
  form.querySelector(".form-error").textContent = "";
  for (const input of form.querySelectorAll("input")) {
    input.removeAttribute("aria-invalid");
    $(`#${input.id}-error`).textContent = "";
  }
  if (!err) return;
  const named = err.detail.map((d) => [form.elements.namedItem(d.loc[d.loc.length - 1]), d.msg]).filter(([input]) => input);
  for (const [input, msg] of named) {
    input.setAttribute("aria-invalid", "true");
    $(`#${input.id}-error`).textContent = msg;
  }
  if (named.length) named[0][0].focus();
  else form.querySelector(".form-error").textContent = err.message;
}

async function changeHome(form, path, method, body, done) {
  const id = state.resident;
  showFieldErrors(form);
  try {
    await api(homePath(id, path), { method, ...(body && { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }) });
    setStatus(done);
    drawHomeAlerts(await homeAlertsOf(id, loadMeta()));
    return true;
  } catch (err) {
    if (err.status === 401) showSignIn("Your session has ended. Sign in again.");
    else showFieldErrors(form, err);
    return false;
  }
}

async function addAway(event) {
  event.preventDefault();
  const f = event.target.elements;
  const body = { start: f.start.value, end: f.end.value, note: f.note.value.trim() || null };
  if (await changeHome(event.target, "away", "POST", body, "Away time added: no alerts from the home in that time.")) event.target.reset();
}

async function setQuietHours(event) {
  event.preventDefault();
  const f = event.target.elements;
  await changeHome(event.target, "quiet_hours", "PUT", { start: f.start.value, end: f.end.value }, "Quiet hours set for this home.");
}

async function drawAlerts(ticket, metaReady) {
  const meta = await metaReady;
  const off = Boolean(meta.panels_not_available.alerts);
  $("#alerts-live").hidden = off;
  if (off) { drawNote("alerts"); return; }
  const data = await api("/alerts?limit=100");
  if (ticket !== state.ticket) return;
  disposeCharts();
  const waiting = data.items.filter((a) => a.status !== "acknowledged").length;
  $("#alerts-summary").textContent = `${data.items.length} recent alerts, ${waiting} not acknowledged.`;
  $("#alert-list").replaceChildren(...(data.items.length ? data.items.map(alertCard) : [el("li", { class: "muted" }, "No alerts.")]));
  mark("alerts");
}

function drawNote(view) {
  disposeCharts();
  mark(view);
}

// ---------------------------------------------------------------------------------------------
// Routing
// ---------------------------------------------------------------------------------------------

function show(view) {
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${view}`;
  for (const a of document.querySelectorAll("#nav a")) {
    const here = a.dataset.view === view || (view === "resident" && a.dataset.view === "at-risk");
    if (here) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  state.view = view;
}

async function route(atStart = false) {
  const hash = location.hash || "#/at-risk";
  const [, view, arg] = hash.match(/^#\/([a-z-]+)(?:\/(.*))?$/) || [null, "at-risk", null];
  const ticket = ++state.ticket;
  const metaReady = loadMeta(); // fetched beside the view's own data
  try {
    setStatus("Loading…");
    if (view === "resident" && arg) { show("resident"); await drawResident(decodeURIComponent(arg), ticket, metaReady); }
    else if (view === "tasks") { show("tasks"); await drawTasks(ticket, metaReady); }
    else if (view === "grids") { show("grids"); await drawGrids(ticket, metaReady); }
    else if (view === "alerts") { show("alerts"); await drawAlerts(ticket, metaReady); }
    else if (view === "what-if") { await metaReady; show(view); drawNote(view); }
    else { show("at-risk"); await drawAtRisk(ticket, metaReady); }
    if (ticket === state.ticket) setStatus("");
  } catch (err) {
    metaReady.catch(() => {});
    if (ticket !== state.ticket) return;
    if (err.status === 401) showSignIn(atStart ? "" : "Your session has ended. Sign in again.");
    else setStatus(`Could not load: ${err.message}`, true);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#sign-in-form").addEventListener("submit", signIn);
  $("#sign-out").addEventListener("click", signOut);
  for (const id of ["#f-model", "#f-band", "#f-grid"]) $(id).addEventListener("change", () => route());
  $("#f-q").addEventListener("input", () => { clearTimeout(searchTimer); searchTimer = setTimeout(route, 250); });
  $("#filters").addEventListener("submit", (e) => { e.preventDefault(); route(); });
  $("#tasks-refresh").addEventListener("click", () => route());
  setInterval(() => { if (state.view === "tasks" && !document.hidden && !$("#who").hidden) route(); }, 20000);
  $("#alerts-refresh").addEventListener("click", () => route());
  $("#away-form").addEventListener("submit", addAway);
  $("#quiet-form").addEventListener("submit", setQuietHours);
  $("#quiet-clear").addEventListener("click", async () => {
    if (await changeHome($("#quiet-form"), "quiet_hours", "DELETE", null, "Quiet hours back to the service's default.")) $("#quiet-start").focus();
  });
  setInterval(() => { if (state.view === "alerts" && !document.hidden && !$("#who").hidden) route(); }, 10000);
  $("#heat-category").addEventListener("change", () => { if (gridData) drawHeatmap(); });
  window.addEventListener("hashchange", () => { if (!$("#who").hidden) route(); });
  let resizeTimer = null;
  window.addEventListener("resize", () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => state.charts.forEach((c) => c.resize()), 150); });
  route(true);
});
