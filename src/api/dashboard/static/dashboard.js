// taskjet dashboard: reads and acts through /api/v1 with the session cookie; no dependencies.
// Every value from the API goes into the page as text (never as HTML).
"use strict";

const ADMIN = document.body.dataset.admin === "true";
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const TERMINAL = new Set(["SUCCESS", "FAILURE", "DEAD", "CANCELLED"]);

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = CSRF;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) { window.location.assign("/dashboard/login"); throw new Error("signed out"); }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const problem = (data && data.error) || {};
    const error = new Error((problem.message || response.statusText) + fieldErrors(problem.details));
    error.status = response.status;
    throw error;
  }
  return data;
}

// A 422's field errors, as "kwargs.count: Input should be a valid integer".
function fieldErrors(details) {
  if (!Array.isArray(details) || !details.length) return "";
  const where = (loc) => (loc || []).filter((part) => part !== "body").join(".");
  return ` (${details.map((d) => [where(d.loc), d.msg].filter(Boolean).join(": ")).join("; ")})`;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);
const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "");
const seconds = (s) => (s === null || s === undefined ? "" : `${s < 10 ? s.toFixed(3) : s.toFixed(1)} s`);
const stateBadge = (state) => el("span", { class: `state s-${state}` }, state);
const taskLink = (id) => el("a", { href: `/dashboard/tasks/${encodeURIComponent(id)}` }, id.slice(0, 12));

function fill(tbody, rows, columns) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: columns, class: "muted" }, "Nothing here."))]));
}

function notice(text, isError) {
  const box = $("notice");
  box.textContent = text;
  box.className = isError ? "error" : "ok";
  box.hidden = false;
}

function confirmStep(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.showModal();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }));
}

// Runs an action and says how it went; an action may return the sentence to show.
async function act(what, run) {
  try { const said = await run(); notice(typeof said === "string" ? said : `${what}: done.`); } catch (error) { notice(`${what}: ${error.message}`, true); }
  refresh();
}

function every(ms, fn) {
  let busy = false;
  const tick = async () => {
    if (busy || document.hidden) return;
    busy = true;
    try { await fn(); } catch (error) { if (error.message !== "signed out") notice(error.message, true); } finally { busy = false; }
  };
  tick();
  setInterval(tick, ms);
  return tick;
}

let refresh = () => {};

// ---- Overview -------------------------------------------------------------------------
function drawChart(box, buckets, step) {
  if (!buckets || !buckets.length) { box.replaceChildren(el("p", { class: "muted" }, "No data yet.")); return; }
  const width = 720, height = 180, pad = 28, ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const top = Math.max(1, ...buckets.map((b) => Math.max(b.succeeded, b.failed)));
  const x = (i) => pad + (i * (width - pad * 2)) / Math.max(1, buckets.length - 1);
  const y = (v) => height - pad - (v * (height - pad * 2)) / top;
  const line = (key, cls) => {
    const path = document.createElementNS(ns, "polyline");
    path.setAttribute("points", buckets.map((b, i) => `${x(i)},${y(b[key])}`).join(" "));
    path.setAttribute("class", cls);
    svg.append(path);
  };
  for (const [v, label] of [[0, "0"], [top, String(top)]]) {
    const text = document.createElementNS(ns, "text");
    text.setAttribute("x", 2); text.setAttribute("y", y(v) + 4); text.textContent = label;
    svg.append(text);
  }
  const span = document.createElementNS(ns, "text");
  span.setAttribute("x", pad); span.setAttribute("y", height - 6);
  span.textContent = `${new Date(buckets[0].start * 1000).toLocaleTimeString()} – now, per ${step} s`;
  svg.append(span);
  line("succeeded", "ok"); line("failed", "bad");
  box.replaceChildren(svg, el("p", { class: "legend" }, el("span", { class: "ok" }, "■ succeeded"), " ", el("span", { class: "bad" }, "■ failed")));
}

async function overview() {
  const since = Math.floor(Date.now() / 1000) - 3600;
  const [status, failed, dead, stats] = await Promise.all([
    api("GET", "/api/v1/queues/status"),
    api("GET", "/api/v1/tasks?state=FAILURE&limit=10"),
    api("GET", "/api/v1/tasks?state=DEAD&limit=10"),
    api("GET", `/api/v1/stats?since=${since}&step=60`).catch((error) => (error.status === 404 ? null : Promise.reject(error))),
  ]);
  const queues = Object.entries(status.named_queues);
  $("t-queued").textContent = queues.reduce((n, [, q]) => n + (q.pending ?? q.messages), 0);
  $("t-inflight").textContent = queues.reduce((n, [, q]) => n + (q.in_flight ?? 0), 0);
  $("t-dlq").textContent = status.queues.dlq;
  $("t-workers").textContent = status.workers.length;
  fill($("states"), Object.entries(status.states).map(([state, n]) => el("tr", {}, el("td", {}, stateBadge(state)), el("td", { class: "num" }, n))), 2);
  fill($("queues"), queues.map(([name, q]) => el("tr", {}, el("td", {}, name, q.paused ? " (paused)" : ""), el("td", { class: "num" }, q.lanes.high), el("td", { class: "num" }, q.lanes.normal), el("td", { class: "num" }, q.lanes.low), el("td", { class: "num" }, q.in_flight ?? 0))), 5);
  const failures = [...failed.items, ...dead.items].sort((a, b) => (b.finished_at || 0) - (a.finished_at || 0)).slice(0, 10);
  fill($("failures"), failures.map((t) => el("tr", {}, el("td", {}, taskLink(t.task_id)), el("td", {}, t.task_name), el("td", {}, stateBadge(t.state)), el("td", {}, t.error ? `${t.error.type}: ${t.error.message}` : ""), el("td", {}, when(t.finished_at)))), 5);
  drawChart($("chart"), stats && stats.buckets, stats ? stats.step : 60);
}

// ---- Tasks ----------------------------------------------------------------------------
function taskQuery() {
  const form = new FormData($("filters"));
  const params = new URLSearchParams();
  for (const key of ["state", "name", "queue", "client_id", "worker"]) if (form.get(key)) params.set(key, form.get(key));
  if (form.get("from")) params.set("since", new Date(form.get("from")).getTime() / 1000);
  if (form.get("to")) params.set("until", new Date(form.get("to")).getTime() / 1000);
  if (form.get("id")) params.set("id_prefix", form.get("id").trim());
  const cursor = new URLSearchParams(window.location.search).get("cursor");
  if (cursor) params.set("cursor", cursor);
  params.set("limit", "50");
  return params;
}

function selected(tbody) {
  return [...tbody.querySelectorAll("input[type=checkbox]:checked")].map((box) => box.value);
}

function selectable(tbody) {
  const all = $("select-all");
  const count = () => { if ($("selected-count")) $("selected-count").textContent = `${selected(tbody).length} selected`; };
  if (all) all.addEventListener("change", () => { tbody.querySelectorAll("input[type=checkbox]").forEach((box) => { box.checked = all.checked; }); count(); });
  tbody.addEventListener("change", count);
  return count;
}

async function tasksPage() {
  const tbody = $("tasks");
  const count = selectable(tbody);
  const id = new FormData($("filters")).get("id");
  if (id && id.trim().length >= 32) {
    try { await api("GET", `/api/v1/tasks/${encodeURIComponent(id.trim())}`); window.location.assign(`/dashboard/tasks/${encodeURIComponent(id.trim())}`); return; } catch (error) { /* a prefix, then */ }
  }
  document.querySelectorAll("[data-bulk]").forEach((button) => button.addEventListener("click", async () => {
    const ids = selected(tbody);
    if (!ids.length) { notice("Select tasks first.", true); return; }
    const action = button.dataset.bulk;
    if (!(await confirmStep(`${action} ${ids.length} task(s)?`))) return;
    act(`${action} ${ids.length} task(s)`, async () => {
      const result = await api("POST", "/api/v1/tasks/bulk", { action, task_ids: ids });
      if (result.failed.length) throw new Error(`${result.done.length} done; ${result.failed.length} refused: ${result.failed[0].error}`);
    });
  }));
  if ($("requeue-orphaned")) $("requeue-orphaned").addEventListener("click", async () => {
    if (!(await confirmStep("Requeue orphaned tasks? Tasks recorded as running on workers that stopped reporting run again now."))) return;
    act("Requeue orphaned", async () => {
      const r = await api("POST", "/api/v1/tasks/requeue-orphaned");
      return `Requeue orphaned: ${r.handed_back.length} handed back, ${r.republished.length} dispatched again.`;
    });
  });
  const params = taskQuery();
  const first = !params.has("cursor");
  const load = async () => {
    const keep = new Set(selected(tbody));
    const page = await api("GET", `/api/v1/tasks?${params}`);
    fill(tbody, page.items.map((t) => el("tr", {},
      ADMIN ? el("td", {}, el("input", { type: "checkbox", value: t.task_id, "aria-label": `Select ${t.task_id}`, checked: keep.has(t.task_id) })) : null,
      el("td", {}, taskLink(t.task_id)), el("td", {}, t.task_name), el("td", {}, stateBadge(t.state)), el("td", {}, t.queue || ""),
      el("td", { class: "num" }, t.attempts), el("td", {}, t.worker || ""), el("td", {}, when(t.queued_at)), el("td", {}, when(t.started_at)),
      el("td", {}, when(t.finished_at)), el("td", { class: "num" }, seconds(t.runtime_s)))), ADMIN ? 11 : 10);
    count();
    const next = $("next-page");
    next.hidden = !page.next_cursor;
    if (page.next_cursor) { const url = new URL(window.location.href); url.searchParams.set("cursor", page.next_cursor); next.href = url.pathname + url.search; }
    const newest = $("first-page");
    newest.hidden = first;
    if (!first) { const url = new URL(window.location.href); url.searchParams.delete("cursor"); newest.href = url.pathname + url.search; }
  };
  // The newest page follows new tasks live; an older page stays put.
  refresh = first ? every(2000, load) : load;
  if (!first) await load();
}

// ---- One task -------------------------------------------------------------------------
function pretty(value) { return JSON.stringify(value, null, 2); }

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return i ? `${n.toFixed(1)} ${units[i]}` : `${n} B`;
}

function artifactRows(path, artifacts) {
  return artifacts.map((a) => el("tr", {}, el("td", {}, a.name), el("td", { class: "num" }, bytes(a.size)), el("td", {}, a.content_type),
    el("td", {}, when(a.created_at)), el("td", {}, el("a", { href: `${path}/artifacts/${encodeURIComponent(a.name)}`, download: a.name }, `Download ${a.name}`))));
}

async function taskPage() {
  const taskId = $("task-id").dataset.taskId;
  const path = `/api/v1/tasks/${encodeURIComponent(taskId)}`;
  const timeline = $("timeline");
  let final = false;
  const load = async () => {
    const [t, artifacts] = await Promise.all([api("GET", path), api("GET", `${path}/artifacts`)]);
    fill($("artifacts"), artifactRows(path, artifacts), 5);
    $("task-state").replaceChildren(stateBadge(t.state));
    $("task-name").textContent = t.task_name;
    const rows = [["Queue", t.queue], ["Client id", t.client_id], ["Worker", t.worker], ["Attempts", t.attempts], ["Dispatch", t.dispatch],
      ["Queued", when(t.queued_at)], ["Due", when(t.due_at)], ["Started", when(t.started_at)], ["Finished", when(t.finished_at)], ["Runtime", seconds(t.runtime_s)], ["Retry at", when(t.retry_at)]];
    $("details").replaceChildren(...rows.filter(([, v]) => v !== null && v !== undefined && v !== "").flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    $("arguments").textContent = pretty({ args: t.args, kwargs: t.kwargs }) + (t.args_truncated ? "\n(too large to keep whole)" : "");
    $("labels").textContent = pretty(t.labels || {});
    if (t.error) $("outcome").textContent = `${t.error.type}: ${t.error.message}${t.error.traceback ? `\n\n${t.error.traceback}` : ""}`;
    else $("outcome").textContent = t.state === "SUCCESS" ? pretty(t.result) : "(not finished)";
    const p = t.progress;
    if (p && (p.current !== null || p.message)) {
      $("progress-section").hidden = false;
      const bar = $("progress");
      if (p.total) { bar.max = p.total; bar.value = p.current ?? 0; } else bar.removeAttribute("value");
      $("progress-text").textContent = [p.stage, p.message, p.total ? `${p.current ?? 0} / ${p.total}` : null].filter(Boolean).join(" · ");
    }
    if (ADMIN) {
      $("cancel-task").disabled = TERMINAL.has(t.state);
      $("retry-task").disabled = !["FAILURE", "DEAD", "CANCELLED"].includes(t.state);
      $("delete-task").disabled = !TERMINAL.has(t.state);
    }
    if (t.queued_at && !timeline.querySelector('[data-status="queued"]')) {
      timeline.prepend(el("li", { "data-status": "queued" }, el("time", {}, when(t.queued_at)), " queued", t.queue ? ` on ${t.queue}` : ""));
    }
    final = TERMINAL.has(t.state);
  };
  refresh = every(1000, async () => { if (!final) await load(); });
  const events = new EventSource(`${path}/events`);
  events.onmessage = (message) => {
    const e = JSON.parse(message.data);
    if (e.status === "processing" && timeline.lastChild && timeline.lastChild.dataset.status === "processing") timeline.lastChild.remove();
    timeline.append(el("li", { "data-status": e.status }, el("time", {}, when(e.timestamp)), " ", e.status, e.stage ? ` · ${e.stage}` : "", e.message ? ` · ${e.message}` : ""));
    final = false;
    load();
  };
  events.addEventListener("timeout", () => events.close());
  events.onerror = () => { if (final) events.close(); };
  if (!ADMIN) return;
  $("cancel-task").addEventListener("click", () => act("Cancel", () => api("POST", `${path}/cancel`)).then(() => { final = false; }));
  $("retry-task").addEventListener("click", () => act("Retry", async () => { await api("POST", `${path}/retry`); final = false; }));
  $("delete-task").addEventListener("click", async () => {
    if (!(await confirmStep(`Delete task ${taskId} for good?`))) return;
    try { await api("DELETE", path); window.location.assign("/dashboard/tasks"); } catch (error) { notice(error.message, true); }
  });
}

// ---- Workflows ------------------------------------------------------------------------
const workflowLink = (id) => el("a", { href: `/dashboard/workflows/${encodeURIComponent(id)}` }, id.slice(0, 12));
const WORKFLOW_DONE = new Set(["SUCCESS", "FAILURE", "CANCELLED"]);

async function workflowsPage() {
  const search = new URLSearchParams(window.location.search);
  const params = new URLSearchParams({ limit: "50" });
  for (const key of ["state", "cursor"]) if (search.get(key)) params.set(key, search.get(key));
  const first = !params.has("cursor");
  const load = async () => {
    const page = await api("GET", `/api/v1/workflows?${params}`);
    fill($("workflow-rows"), page.items.map((w) => el("tr", {}, el("td", {}, workflowLink(w.workflow_id)), el("td", {}, w.kind), el("td", {}, stateBadge(w.state)),
      el("td", { class: "num" }, `${w.steps_ended} / ${w.steps}`), el("td", {}, w.failed_step || ""), el("td", {}, when(w.created_at)), el("td", {}, when(w.finished_at)))), 7);
    const next = $("workflows-next");
    next.hidden = !page.next_cursor;
    if (page.next_cursor) { const url = new URL(window.location.href); url.searchParams.set("cursor", page.next_cursor); next.href = url.pathname + url.search; }
    $("workflows-first").hidden = first;
  };
  refresh = first ? every(2000, load) : load;
  if (!first) await load();
}

async function workflowPage() {
  const workflowId = $("workflow-id").dataset.workflowId;
  const path = `/api/v1/workflows/${encodeURIComponent(workflowId)}`;
  let ended = false;
  const load = async () => {
    const w = await api("GET", path);
    $("workflow-state").replaceChildren(stateBadge(w.state));
    $("workflow-kind").textContent = w.kind;
    const rows = [["Created", when(w.created_at)], ["Finished", when(w.finished_at)], ["Failed step", w.failed_step], ["Result of", w.output.join(", ")]];
    $("workflow-details").replaceChildren(...rows.filter(([, v]) => v).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    fill($("step-rows"), w.steps.map((s) => el("tr", {}, el("td", {}, s.id), el("td", {}, s.task_name), el("td", {}, stateBadge(s.state)), el("td", {}, s.depends_on.join(", ")),
      el("td", {}, s.task_id ? taskLink(s.task_id) : ""), el("td", {}, s.error || ""))), 6);
    if (ADMIN) $("cancel-workflow").disabled = WORKFLOW_DONE.has(w.state);
    ended = WORKFLOW_DONE.has(w.state) && w.steps.every((s) => !["PENDING", "STARTED", "PROGRESS", "RETRYING"].includes(s.state));
  };
  refresh = every(1000, async () => { if (!ended) await load(); });
  if (!ADMIN) return;
  $("cancel-workflow").addEventListener("click", async () => {
    if (await confirmStep(`Cancel workflow ${workflowId}? Steps not started never run.`)) act("Cancel workflow", async () => { await api("POST", `${path}/cancel`); ended = false; });
  });
}

// ---- Workers --------------------------------------------------------------------------
async function workersPage() {
  refresh = every(2000, async () => {
    const [status, started, progressing, health] = await Promise.all([api("GET", "/api/v1/queues/status"), api("GET", "/api/v1/tasks?state=STARTED&limit=200"), api("GET", "/api/v1/tasks?state=PROGRESS&limit=200"), api("GET", "/health/workers")]);
    fill($("breakers"), health.breakers.map((b) => el("tr", {}, el("td", {}, b.name), el("td", {}, stateBadge(b.state)), el("td", { class: "num" }, b.failures), el("td", { class: "num" }, b.failure_threshold ?? ""),
      el("td", {}, when(b.open_until)), el("td", { class: "num" }, b.state === "closed" ? "" : seconds(b.retry_in_s)),
      ADMIN ? el("td", {}, el("button", { type: "button", disabled: b.state === "closed", onclick: () => act(`Reset ${b.name}`, () => api("POST", `/health/workers/reset-circuit-breaker?name=${encodeURIComponent(b.name)}`)) }, `Reset ${b.name}`)) : null)), ADMIN ? 7 : 6);
    const running = { items: [...progressing.items, ...started.items] };
    fill($("workers"), status.workers.map((w) => el("tr", {}, el("td", {}, el("a", { href: `/dashboard/tasks?worker=${encodeURIComponent(w.worker_id)}` }, w.worker_id)),
      el("td", {}, w.host), el("td", { class: "num" }, w.pid), el("td", {}, w.queues.join(", ")), el("td", { class: "num" }, w.concurrency), el("td", { class: "num" }, w.running),
      el("td", {}, w.status, w.problems.length ? `: ${w.problems.join("; ")}` : ""), el("td", {}, when(w.started_at)), el("td", {}, when(w.seen_at)))), 9);
    fill($("running"), running.items.map((t) => el("tr", {}, el("td", {}, taskLink(t.task_id)), el("td", {}, t.task_name), el("td", {}, t.worker || ""), el("td", {}, when(t.started_at)),
      el("td", {}, t.progress && t.progress.total ? el("progress", { max: t.progress.total, value: t.progress.current ?? 0, "aria-label": `Progress of ${t.task_id}` }) : ""))), 5);
  });
}

// ---- Queues ---------------------------------------------------------------------------
async function queueRate(queue) {
  const since = Math.floor(Date.now() / 1000) - 300;
  try {
    const stats = await api("GET", `/api/v1/stats?since=${since}&step=60&queue=${encodeURIComponent(queue)}`);
    const done = stats.buckets.reduce((n, b) => n + b.succeeded + b.failed, 0);
    return (done / 5).toFixed(1);
  } catch (error) { return "no data"; }
}

async function queuesPage() {
  refresh = every(2000, async () => {
    const status = await api("GET", "/api/v1/queues/status");
    $("q-retry").textContent = status.queues.retry;
    $("q-scheduled").textContent = status.queues.scheduled;
    $("q-dlq").textContent = status.queues.dlq;
    const consumers = (name) => status.workers.filter((w) => w.queues.includes(name)).length;
    const entries = Object.entries(status.named_queues);
    const rates = await Promise.all(entries.map(([name]) => queueRate(name)));
    fill($("queue-rows"), entries.map(([name, q], i) => {
      const path = `/api/v1/queues/${encodeURIComponent(name)}`;
      const actions = ADMIN ? el("td", {},
        q.paused
          ? el("button", { type: "button", onclick: () => act(`Resume ${name}`, () => api("POST", `${path}/resume`)) }, `Resume ${name}`)
          : el("button", { type: "button", onclick: async () => { if (await confirmStep(`Pause queue ${name}? Workers stop fetching from it.`)) act(`Pause ${name}`, () => api("POST", `${path}/pause`)); } }, `Pause ${name}`),
        " ",
        el("button", { type: "button", class: "danger", onclick: async () => { if (await confirmStep(`Purge queue ${name}? Its ${q.pending ?? q.messages} queued task(s) are dropped and recorded CANCELLED.`)) act(`Purge ${name}`, async () => { const r = await api("DELETE", path); notice(`Purged ${r.purged ?? ""}`); }); } }, `Purge ${name}`)) : null;
      return el("tr", {}, el("td", {}, name), el("td", {}, q.paused ? "paused" : q.consumed ? "consumed" : "no worker"),
        el("td", { class: "num" }, q.lanes.high), el("td", { class: "num" }, q.lanes.normal), el("td", { class: "num" }, q.lanes.low),
        el("td", { class: "num" }, q.in_flight ?? 0), el("td", { class: "num" }, consumers(name)), el("td", { class: "num" }, rates[i]), actions);
    }), ADMIN ? 9 : 8);
  });
}

// ---- Schedules ------------------------------------------------------------------------
function editSchedule(s) {
  const form = $("edit-schedule");
  const args = JSON.stringify(s.args), kwargs = JSON.stringify(s.kwargs);
  Object.assign(form.dataset, { id: s.id, args, kwargs });
  $("edit-id").textContent = s.id;
  for (const [name, value] of [["cron", s.cron || ""], ["interval", s.interval ?? ""], ["timezone", s.timezone], ["args", args], ["kwargs", kwargs]]) form.elements[name].value = value;
  $("edit-section").hidden = false;
  form.elements[s.cron ? "cron" : "interval"].focus();
}

async function schedulesPage() {
  refresh = every(3000, async () => {
    const list = await api("GET", "/api/v1/schedules");
    fill($("schedule-rows"), list.items.map((s) => {
      const path = `/api/v1/schedules/${encodeURIComponent(s.id)}`;
      const api_made = s.source === "api";
      const actions = ADMIN ? el("td", {},
        api_made ? el("button", { type: "button", onclick: () => act(`${s.paused ? "Resume" : "Pause"} ${s.id}`, () => api("POST", `${path}/${s.paused ? "resume" : "pause"}`)) }, `${s.paused ? "Resume" : "Pause"} ${s.id}`) : null, " ",
        el("button", { type: "button", onclick: () => act(`Run ${s.id}`, () => api("POST", `${path}/run`)) }, `Run ${s.id} now`), " ",
        api_made ? el("button", { type: "button", onclick: () => editSchedule(s) }, `Edit ${s.id}`) : null, " ",
        api_made ? el("button", { type: "button", class: "danger", onclick: async () => { if (await confirmStep(`Delete schedule ${s.id}?`)) act(`Delete ${s.id}`, () => api("DELETE", path)); } }, `Delete ${s.id}`) : null) : null;
      return el("tr", {}, el("td", {}, s.id), el("td", {}, s.task), el("td", {}, s.cron ? `cron ${s.cron} (${s.timezone})` : `every ${s.interval} s`), el("td", {}, s.source),
        el("td", {}, s.paused ? "paused" : "active"), el("td", {}, when(s.next_run)), el("td", {}, when(s.last_run)), el("td", {}, s.last_task_id ? taskLink(s.last_task_id) : ""), actions);
    }), ADMIN ? 9 : 8);
    $("invalid-schedules").replaceChildren(...list.invalid.map((s) => el("p", { class: "error" }, `Stored schedule ${s.id} cannot run: ${s.errors.map((e) => e.msg).join("; ")}`)));
  });
  const edit = $("edit-schedule");
  if (edit) {
    $("edit-close").addEventListener("click", () => { $("edit-section").hidden = true; });
    edit.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = new FormData(edit);
      const id = edit.dataset.id;
      try {
        const body = {};
        if (f.get("cron") && f.get("interval")) throw new Error("give a cron expression or an interval, not both");
        if (f.get("cron")) body.cron = f.get("cron");
        else if (f.get("interval")) body.interval = Number(f.get("interval"));
        if (f.get("timezone")) body.timezone = f.get("timezone");
        // Unchanged arguments are not sent: those shown as *** keep their stored values.
        if (f.get("args") !== edit.dataset.args || f.get("kwargs") !== edit.dataset.kwargs) {
          body.args = JSON.parse(f.get("args") || "[]");
          body.kwargs = JSON.parse(f.get("kwargs") || "{}");
        }
        await api("PATCH", `/api/v1/schedules/${encodeURIComponent(id)}`, body);
        $("edit-section").hidden = true;
        notice(`Change ${id}: done.`);
      } catch (error) { notice(`Change ${id}: ${error.message}`, true); }
      refresh();
    });
  }
  const form = $("new-schedule");
  if (form) form.addEventListener("submit", (event) => {
    event.preventDefault();
    const f = new FormData(form);
    act("Create schedule", async () => {
      const body = { task: f.get("task"), timezone: f.get("timezone") || "UTC", args: JSON.parse(f.get("args") || "[]"), kwargs: JSON.parse(f.get("kwargs") || "{}") };
      if (f.get("id")) body.id = f.get("id");
      if (f.get("cron")) body.cron = f.get("cron");
      if (f.get("interval")) body.interval = Number(f.get("interval"));
      await api("POST", "/api/v1/schedules", body);
      form.reset();
    });
  });
}

// ---- Dead letters ---------------------------------------------------------------------
async function deadLettersPage() {
  const tbody = $("dlq-rows");
  selectable(tbody);
  const name = () => new FormData($("dlq-filter")).get("task_name").trim();
  const load = async () => {
    const keep = new Set(selected(tbody));
    const query = name() ? `&task_name=${encodeURIComponent(name())}` : "";
    const page = await api("GET", `/api/v1/queues/dlq?limit=200${query}`);
    $("dlq-total").textContent = `(${page.total})`;
    fill(tbody, page.items.map((d) => el("tr", {},
      ADMIN ? el("td", {}, el("input", { type: "checkbox", value: d.task_id, "aria-label": `Select ${d.task_id}`, checked: keep.has(d.task_id) })) : null,
      el("td", {}, taskLink(d.task_id)), el("td", {}, d.task_name), el("td", {}, d.reason), el("td", {}, d.error_type ? `${d.error_type}: ${d.error_message || ""}` : ""),
      el("td", { class: "num" }, d.attempts), el("td", {}, when(d.failed_at)),
      el("td", {}, el("details", {}, el("summary", {}, "Show"), el("pre", {}, pretty({ args: d.args, kwargs: d.kwargs, labels: d.labels })), d.payload_b64 ? el("pre", {}, `raw body (base64): ${d.payload_b64}`) : null, d.traceback ? el("pre", {}, d.traceback) : null)),
      ADMIN ? el("td", {}, el("button", { type: "button", onclick: () => act(`Requeue ${d.task_id}`, () => requeue({ task_ids: [d.task_id] })) }, "Requeue")) : null)), ADMIN ? 9 : 7);
  };
  const requeue = async (body) => {
    const result = await api("POST", "/api/v1/queues/dlq/requeue", body);
    if (result.skipped.length) throw new Error(`${result.requeued} requeued; skipped ${result.skipped.map((s) => `${s.task_id}: ${s.reason}`).join("; ")}`);
  };
  $("dlq-filter").addEventListener("submit", (event) => { event.preventDefault(); load(); });
  refresh = every(3000, load);
  if (!ADMIN) return;
  $("requeue-selected").addEventListener("click", () => {
    const ids = selected(tbody);
    if (!ids.length) { notice("Select dead letters first.", true); return; }
    act(`Requeue ${ids.length}`, () => requeue({ task_ids: ids }));
  });
  $("requeue-name").addEventListener("click", async () => {
    if (!name()) { notice("Enter a task name first.", true); return; }
    if (await confirmStep(`Requeue every dead letter of ${name()}?`)) act(`Requeue all of ${name()}`, () => requeue({ task_name: name() }));
  });
  $("purge-dlq").addEventListener("click", async () => {
    const which = name() ? `every dead letter of ${name()}` : "every dead letter";
    if (!(await confirmStep(`Delete ${which} for good?`))) return;
    act("Purge", () => api("DELETE", `/api/v1/queues/dlq${name() ? `?task_name=${encodeURIComponent(name())}` : ""}`));
  });
}

const PAGES = { overview: () => { refresh = every(2000, overview); }, tasks: tasksPage, task: taskPage, workflows: workflowsPage, workflow: workflowPage, workers: workersPage, queues: queuesPage, schedules: schedulesPage, "dead-letters": deadLettersPage };
(PAGES[document.body.dataset.page] || (() => {}))();
// Every deferred script has run (and bound its controls) by DOMContentLoaded: only then do the
// page's buttons take clicks (dashboard.css), so a click never lands on a control not yet wired.
document.addEventListener("DOMContentLoaded", () => { document.body.dataset.ready = "true"; });
