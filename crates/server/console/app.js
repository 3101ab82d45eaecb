// Coffer's administration console: a client of the public REST API under
// /api/v1 and nothing else. Pages are built with DOM calls (never HTML from
// data), the session lives in the HttpOnly cookie the login sets, and every
// error the API returns is shown with its message and hint in the alert
// region, which takes the focus so screen readers announce it.

const main = document.getElementById("main");
const status = document.getElementById("status");

class ApiProblem extends Error {
  constructor(httpStatus, body) {
    const e = (body && body.error) || {};
    super(e.message || `the service answered ${httpStatus}`);
    this.httpStatus = httpStatus;
    this.code = e.code;
    this.field = e.field;
    this.hint = e.hint;
  }
}

async function api(method, path, body) {
  let response;
  try {
    response = await fetch(`/api/v1${path}`, {
      method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiProblem(0, { error: { message: `the service cannot be reached: ${e.message}`, hint: "check that coffer serve is running" } });
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiProblem(response.status, data);
  return data;
}

// h("td", {class: "x"}, "text", child…): an element with attributes and
// children; strings become text nodes.
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function showError(e) {
  status.replaceChildren(
    h("strong", {}, e.field ? `${e.field}: ` : "", e.message),
    e.hint ? h("span", { class: "hint" }, e.hint) : null,
  );
  status.focus();
}

function clearError() {
  status.replaceChildren();
}

const when = (secs) => (secs ? new Date(secs * 1000).toLocaleString() : "—");
function size(bytes) {
  if (bytes === null || bytes === undefined) return "not measured yet";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

function table(caption, headers, rows, empty) {
  if (rows.length === 0) return h("p", { class: "empty" }, empty);
  return h("table", {},
    h("caption", { class: "skip" }, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows));
}

function section(id, title, ...content) {
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), content);
}

// ---- pages ---------------------------------------------------------------

function loginPage() {
  const name = h("input", { id: "login-name", name: "name", autocomplete: "username", required: true });
  const password = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Log in to Coffer"),
    h("label", { for: "login-name" }, "User name"), name,
    h("label", { for: "login-password" }, "Password"), password,
    h("p", {}, h("button", { type: "submit" }, "Log in")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", "/auth/login", { name: name.value, password: password.value });
      clearError();
      location.hash = "#/dashboard";
      await route();
    } catch (e) {
      showError(e);
      password.value = "";
    }
  });
  main.replaceChildren(form);
  name.focus();
}

async function dashboardPage() {
  const [vaults, items, alerts, jobs] = await Promise.all([
    api("GET", "/vaults"),
    api("GET", "/items"),
    api("GET", "/alerts?state=open"),
    api("GET", "/jobs?limit=10"),
  ]);
  const schedules = await Promise.all(
    items.map((i) => api("GET", `/items/${encodeURIComponent(i.name)}/schedule`).catch(() => null)));
  main.replaceChildren(
    h("h1", {}, "Dashboard"),
    section("vaults-title", "Vaults",
      table("Vaults", ["Name", "Location", "Usage", "Key fingerprint"],
        vaults.map((v) => h("tr", {},
          h("td", {}, v.name), h("td", {}, v.location), h("td", {}, size(v.usage_bytes)),
          h("td", {}, v.key_fingerprint))),
        "No vault yet.")),
    section("items-title", "Protected items",
      table("Protected items", ["Item", "Kind", "Vault", "Last backup", "Status", "Next backup"],
        items.map((i, n) => {
          const s = schedules[n] || {};
          return h("tr", {},
            h("td", {}, i.name), h("td", {}, i.kind), h("td", {}, i.vault),
            h("td", {}, when(s.last_run)),
            h("td", { class: `state-${s.last_state || ""}` }, s.last_state || "never run"),
            h("td", {}, s.active ? when(s.next_run) : "not scheduled"));
        }),
        "Nothing is protected yet.")),
    section("alerts-title", "Open alerts",
      table("Open alerts", ["Severity", "Alert", "Item", "What to do", "Seen"],
        alerts.map((a) => h("tr", {},
          h("td", { class: `severity-${a.severity}` }, a.severity),
          h("td", {}, h("strong", {}, a.title), h("br"), a.detail),
          h("td", {}, a.item || a.vault || "—"),
          h("td", {}, h("ol", {}, a.remediation.map((r) => h("li", {}, r)))),
          h("td", {}, `${a.occurrences}×, last ${when(a.last_seen)}`))),
        "No open alerts.")),
    section("jobs-title", "Recent jobs",
      table("Recent jobs", ["Job", "Kind", "Item", "State", "Started", "Ended"],
        jobs.map((j) => h("tr", {},
          h("td", {}, String(j.id)), h("td", {}, j.kind), h("td", {}, j.item || j.vault || "—"),
          h("td", { class: `state-${j.state}` }, j.state),
          h("td", {}, when(j.started)), h("td", {}, when(j.finished)))),
        "No jobs yet.")),
  );
}

const pages = { "#/dashboard": dashboardPage };

async function route() {
  let me;
  try {
    me = await api("GET", "/me");
  } catch (e) {
    if (e.httpStatus !== 401) showError(e);
    document.getElementById("nav").hidden = true;
    document.getElementById("logout").hidden = true;
    document.getElementById("who").textContent = "";
    return loginPage();
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("logout").hidden = false;
  document.getElementById("who").textContent = `Logged in as ${me.name}`;
  const page = pages[location.hash] || dashboardPage;
  try {
    await page();
    main.focus();
  } catch (e) {
    showError(e);
  }
}

document.getElementById("logout").addEventListener("click", async () => {
  try {
    await api("POST", "/auth/logout");
  } catch (e) {
    showError(e);
  }
  location.hash = "#/login";
  await route();
});
window.addEventListener("hashchange", () => { clearError(); route(); });
route();
