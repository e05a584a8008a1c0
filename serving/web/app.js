// TwinCare care-manager page: plain JavaScript, talks only to this server.
"use strict";

const KEY_STORAGE = "twincare.apiKey";
const $ = (sel) => document.querySelector(sel);
const MODEL_LABEL = { fall_risk: "Fall risk", isolation: "Isolation" };

function apiKey() { return sessionStorage.getItem(KEY_STORAGE); }

function setStatus(text, isError = false) {
  const el = $("#status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

async function api(path) {
  const response = await fetch(path, { headers: { "X-API-Key": apiKey() || "" } });
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const message = (body && body.error) || response.statusText;
    const err = new Error(`${response.status}: ${message}`);
    err.status = response.status;
    throw err;
  }
  return body;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

const pct = (p) => `${(100 * p).toFixed(1)}%`;
const bandBadge = (band) => el("span", { class: `band ${band}` }, band);

function reasonList(reasons, withContribution = false) {
  const ul = el("ul", { class: "reasons" });
  for (const r of reasons || []) {
    const li = el("li", {}, r.text);
    if (withContribution) li.append(" ", el("span", { class: "contrib" }, `(${r.contribution >= 0 ? "+" : ""}${r.contribution.toFixed(2)})`));
    ul.append(li);
  }
  return ul;
}

async function loadRanking() {
  const model = $("#model").value;
  const band = $("#band").value;
  const query = new URLSearchParams({ model, limit: "50" });
  if (band) query.set("band", band);
  const data = await api(`/residents/at-risk?${query}`);
  $("#source").textContent = data.source === "stored" ? "latest nightly scores" : "scored live";
  const tbody = $("#risk-table tbody");
  tbody.replaceChildren();
  for (const item of data.items) {
    const row = el("tr", { class: "clickable", "data-resident": item.resident_id },
      el("td", {}, item.resident_id),
      el("td", {}, pct(item.probability)),
      el("td", {}, bandBadge(item.band)),
      el("td", {}, reasonList(item.reasons)));
    row.addEventListener("click", () => guard(openResident)(item.resident_id));
    tbody.append(row);
  }
  if (!data.items.length) tbody.append(el("tr", {}, el("td", { colSpan: 4 }, "No residents in this band.")));
}

function taskTable(tasks) {
  const table = el("table", {}, el("thead", {}, el("tr", {},
    el("th", {}, "Task"), el("th", {}, "Kind"), el("th", {}, "Status"), el("th", {}, "Due"), el("th", {}, "Credits"))));
  const tbody = el("tbody");
  for (const t of tasks) {
    tbody.append(el("tr", {}, el("td", {}, t.task_id), el("td", {}, t.kind), el("td", {}, t.status),
      el("td", {}, t.due_date || ""), el("td", {}, t.credits ?? "")));
  }
  if (!tasks.length) tbody.append(el("tr", {}, el("td", { colSpan: 5 }, "No tasks.")));
  table.append(tbody);
  return table;
}

async function openResident(residentId) {
  setStatus(`Loading ${residentId}…`);
  const data = await api(`/residents/${encodeURIComponent(residentId)}`);
  $("#resident-id").textContent = data.resident_id;
  $("#resident-asof").textContent = data.as_of_date ? `features as of ${data.as_of_date}` : "";
  const cards = $("#resident-cards");
  cards.replaceChildren();
  for (const a of data.assessments) {
    cards.append(el("div", { class: "card" },
      el("h4", {}, `${MODEL_LABEL[a.model] || a.model} `, bandBadge(a.band)),
      el("div", { class: "prob" }, pct(a.probability)),
      el("div", { class: "muted" }, `model ${a.model} v${a.version}`),
      reasonList(a.reasons, true)));
  }
  const hist = $("#resident-history");
  hist.replaceChildren();
  for (const model of Object.keys(MODEL_LABEL)) {
    const points = data.score_history.filter((p) => p.model === model);
    if (!points.length) continue;
    const spark = el("div", { class: "spark", title: `${MODEL_LABEL[model]} over time` });
    const top = Math.max(...points.map((p) => p.probability), 1e-6);
    for (const p of points.slice(-40)) {
      spark.append(el("span", { title: `${p.as_of_date}: ${pct(p.probability)}`, style: "" }));
      spark.lastChild.style.height = `${Math.max(2, 36 * p.probability / top)}px`;
    }
    hist.append(el("div", { class: "muted" }, `${MODEL_LABEL[model]}: ${points.length} nightly score${points.length === 1 ? "" : "s"}`), spark);
  }
  if (!hist.childNodes.length) hist.append(el("p", { class: "muted" }, "No stored scores yet."));
  $("#resident-tasks").replaceChildren(taskTable(data.tasks));
  $("#resident").hidden = false;
  $("#resident").scrollIntoView({ block: "nearest" });
  setStatus("");
}

async function loadTasks() {
  const data = await api("/tasks?status=open&limit=100");
  const tbody = $("#task-table tbody");
  tbody.replaceChildren();
  for (const t of data.items) {
    const row = el("tr", { class: "clickable" },
      el("td", {}, t.task_id), el("td", {}, t.resident_id), el("td", {}, t.kind),
      el("td", {}, t.reason), el("td", {}, t.due_date || ""), el("td", {}, t.credits ?? ""));
    row.addEventListener("click", () => guard(openResident)(t.resident_id));
    tbody.append(row);
  }
  $("#tasks-count").textContent = `${data.items.length}${data.next_cursor ? "+" : ""} open`;
  if (!data.items.length) tbody.append(el("tr", {}, el("td", { colSpan: 6 }, "No open tasks.")));
}

async function refresh() {
  if (!apiKey()) {
    $("#app").hidden = true;
    $("#key-forget").hidden = true;
    setStatus("Enter your care-manager API key to see residents.");
    return;
  }
  $("#key-forget").hidden = false;
  setStatus("Loading…");
  try {
    await Promise.all([loadRanking(), loadTasks()]);
    $("#app").hidden = false;
    setStatus("");
  } catch (err) {
    $("#app").hidden = true;
    if (err.status === 401 || err.status === 403) {
      sessionStorage.removeItem(KEY_STORAGE);
      $("#key-forget").hidden = true;
    }
    setStatus(`Could not load: ${err.message}`, true);
  }
}

function guard(fn) {
  return (...args) => fn(...args).catch((err) => setStatus(`Could not load: ${err.message}`, true));
}

document.addEventListener("DOMContentLoaded", () => {
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("#api-key").value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    $("#api-key").value = "";
    refresh();
  });
  $("#key-forget").addEventListener("click", () => { sessionStorage.removeItem(KEY_STORAGE); refresh(); });
  $("#model").addEventListener("change", guard(loadRanking));
  $("#band").addEventListener("change", guard(loadRanking));
  $("#resident-close").addEventListener("click", () => { $("#resident").hidden = true; });
  refresh();
});
