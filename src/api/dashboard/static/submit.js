// taskjet dashboard, "Submit a task": a form built from GET /api/v1/registry (each task's
// argument schema, the one POST /api/v1/tasks checks), sent as the API's own request body.
// Uses the helpers of dashboard.js, which the page loads first.
"use strict";

// A JSON Schema type in words: "list of string or null".
function typeName(schema) {
  if (!schema || typeof schema !== "object") return "any";
  if (schema.$ref) return schema.$ref.split("/").pop();
  if (schema.anyOf) return schema.anyOf.map(typeName).join(" or ");
  if (schema.enum) return `one of ${schema.enum.map((v) => JSON.stringify(v)).join(", ")}`;
  if (schema.type === "array") return `list of ${typeName(schema.items)}`;
  if (schema.type === "object" && schema.additionalProperties) return `object of ${typeName(schema.additionalProperties)}`;
  return schema.type || "any";
}

// A value of the right shape to start from, for a required argument.
function placeholder(schema) {
  const type = (schema && (schema.type || (schema.anyOf && schema.anyOf[0].type))) || null;
  return { string: "", integer: 0, number: 0, boolean: false, array: [], object: {} }[type] ?? null;
}

function parsed(form, field, label, kind) {
  const text = (form.get(field) || "").trim() || (kind === "list" ? "[]" : "{}");
  let value;
  try { value = JSON.parse(text); } catch (error) { throw new Error(`${label}: not valid JSON (${error.message})`); }
  const ok = kind === "list" ? Array.isArray(value) : value !== null && typeof value === "object" && !Array.isArray(value);
  if (!ok) throw new Error(`${label}: must be a JSON ${kind === "list" ? "list, like []" : "object, like {}"}`);
  return value;
}

function options(form) {
  const chosen = {};
  for (const key of ["queue", "idempotency_key"]) if (form.get(key)) chosen[key] = form.get(key).trim();
  for (const key of ["priority", "delay", "timeout"]) if (form.get(key) !== "") chosen[key] = Number(form.get(key));
  return chosen;
}

async function submitPage() {
  const form = $("submit-task");
  if (!form) return;
  const select = form.elements.task;
  const [registry, status] = await Promise.all([api("GET", "/api/v1/registry"), api("GET", "/api/v1/queues/status")]);
  const tasks = new Map(registry.tasks.map((t) => [t.name, t]));
  select.replaceChildren(el("option", { value: "" }, tasks.size ? "(choose a task)" : "(no task may be submitted over the API)"),
    ...registry.tasks.map((t) => el("option", { value: t.name }, t.name)));
  $("queue-names").replaceChildren(...Object.keys(status.named_queues).map((name) => el("option", { value: name })));
  const show = (keep = false) => {
    const task = tasks.get(select.value);
    const schema = (task && task.arguments) || { properties: {} };
    const required = new Set(schema.required || []);
    const rows = Object.entries(schema.properties || {}).map(([name, s]) => el("tr", {},
      el("td", {}, el("code", {}, name)), el("td", {}, typeName(s)), el("td", {}, required.has(name) ? "yes" : "no"),
      el("td", {}, "default" in s ? JSON.stringify(s.default) : "")));
    fill($("schema-rows"), rows, 4);
    $("schema").textContent = task ? pretty({ arguments: task.arguments, labels: task.labels }) : "";
    if (task && !keep) form.elements.kwargs.value = pretty(Object.fromEntries([...required].map((name) => [name, placeholder(schema.properties[name])])));
    const queue = task && task.labels && task.labels.queue_name;
    form.elements.queue.placeholder = queue || "";
  };
  select.addEventListener("change", () => show());
  const asked = new URLSearchParams(window.location.search).get("task");
  if (asked && tasks.has(asked)) select.value = asked;
  // Keyword arguments typed while the registry was loading are the user's: the template of
  // the task asked for in the address fills the field only if it still holds the page's own
  // and nobody is in it (text being typed over a selection would land after the template).
  const kwargs = form.elements.kwargs;
  show(kwargs.value !== kwargs.defaultValue || document.activeElement === kwargs);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = new FormData(form);
    try {
      const body = { task: f.get("task"), args: parsed(f, "args", "Arguments", "list"), kwargs: parsed(f, "kwargs", "Keyword arguments", "object"), options: options(f) };
      const accepted = await api("POST", "/api/v1/tasks", body);
      window.location.assign(`/dashboard/tasks/${encodeURIComponent(accepted.task_id)}`);
    } catch (error) {
      if (error.message !== "signed out") notice(`Submit: ${error.message}`, true);
    }
  });
  // Ready: until now a click would have sent the form as a plain page request.
  form.querySelector("button[type=submit]").disabled = false;
}

if (document.body.dataset.page === "submit") submitPage().catch((error) => notice(error.message, true));
