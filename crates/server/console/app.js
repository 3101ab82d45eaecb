// Coffer's administration console: a client of the public REST API under
// /api/v1 and nothing else. Pages are built with DOM calls (never HTML from
// data), the session lives in the HttpOnly cookie the login sets, and every
// error the API returns is shown with its message and hint in the alert
// region, which takes the focus so screen readers announce it. Successes go
// to a polite status region. Every control has a visible label; row actions
// name their row for screen readers.

const main = document.getElementById("main");
const status = document.getElementById("status");
const notice = document.getElementById("notice");

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
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiProblem(response.status, { error: { message: `the service answered ${response.status} with something that is not JSON` } });
  }
  if (!response.ok) throw new ApiProblem(response.status, data);
  return data;
}

const enc = encodeURIComponent;

// h("td", {class: "x"}, "text", child…): an element with attributes and
// children; strings become text nodes.
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = true;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// replaceChildren, minus the absent parts (it would print "null").
function put(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

function showError(e) {
  put(notice);
  put(status,
    h("strong", {}, e.field ? `${e.field}: ` : "", e.message),
    e.hint ? h("span", { class: "hint" }, e.hint) : null,
  );
  status.focus();
  if (e.field) {
    const input = main.querySelector(`[data-field="${e.field}"]`);
    if (input) input.setAttribute("aria-invalid", "true");
  }
}

function clearError() {
  put(status);
  for (const el of main.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

function say(text) {
  clearError();
  notice.textContent = text;
}

// Runs an action from a button: the button is disabled meanwhile, errors go
// to the alert region.
async function act(button, fn) {
  clearError();
  notice.textContent = "";
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (e) {
    showError(e);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

const when = (secs) => (secs ? new Date(secs * 1000).toLocaleString() : "—");
function size(bytes) {
  if (bytes === null || bytes === undefined) return "not measured yet";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}
function ago(secs) {
  if (secs === null || secs === undefined) return "never";
  if (secs < 120) return `${secs} s`;
  if (secs < 7200) return `${Math.round(secs / 60)} min`;
  if (secs < 172800) return `${Math.round(secs / 3600)} h`;
  return `${Math.round(secs / 86400)} days`;
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

// A labelled control; `help` is tied to it with aria-describedby.
function field(label, control, help) {
  const id = control.id;
  if (help) control.setAttribute("aria-describedby", `${id}-help`);
  return h("div", { class: "field" },
    h("label", { for: id }, label), control,
    help ? h("p", { id: `${id}-help`, class: "help" }, help) : null);
}

function input(id, attrs = {}) {
  return h("input", { id, name: id, ...attrs });
}

function select(id, options, value, attrs = {}) {
  return h("select", { id, name: id, ...attrs },
    options.map((o) => {
      const [v, text] = Array.isArray(o) ? o : [o, o];
      return h("option", { value: v, selected: v === value }, text);
    }));
}

function radio(name, id, value, label, checked) {
  return h("div", { class: "choice" },
    h("input", { type: "radio", name, id, value, checked }),
    h("label", { for: id }, label));
}

function checkbox(id, label, checked) {
  return h("div", { class: "choice" },
    h("input", { type: "checkbox", id, name: id, checked }),
    h("label", { for: id }, label));
}

const lines = (text) => text.split("\n").map((l) => l.trim()).filter(Boolean);

function keyValues(text) {
  const out = {};
  for (const line of lines(text)) {
    const at = line.indexOf("=");
    if (at <= 0) throw new ApiProblem(400, { error: { field: "credentials", message: `"${line.split("=")[0]}" is not NAME=value`, hint: "one NAME=value per line" } });
    out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

// Navigates; `message` is announced once the new page is shown.
let pendingNotice = null;
function go(hash, message) {
  pendingNotice = message || null;
  if (location.hash === hash) route();
  else location.hash = hash;
}

// A page's polling stops when another page is shown.
let pageEpoch = 0;
function poll(fn, ms) {
  const epoch = pageEpoch;
  const tick = async () => {
    if (epoch !== pageEpoch) return;
    let again = false;
    try {
      again = await fn();
    } catch (e) {
      showError(e);
    }
    if (again && epoch === pageEpoch) setTimeout(tick, ms);
  };
  setTimeout(tick, ms);
}

// Shows a key the service generated, once, in a modal dialog that closes
// only after the user confirms it was stored; the key leaves the page then.
function showKeyOnce(vault, key) {
  return new Promise((resolve) => {
    const stored = h("input", { type: "checkbox", id: "key-stored" });
    const done = h("button", { type: "button", id: "key-confirm", disabled: true }, "Continue");
    const copy = h("button", { type: "button", class: "secondary", id: "key-copy" }, "Copy");
    const file = URL.createObjectURL(new Blob([`${key}\n`], { type: "text/plain" }));
    const dialog = h("dialog", { "aria-labelledby": "key-title", "aria-describedby": "key-warning", id: "key-dialog" },
      h("h2", { id: "key-title" }, `The key of vault ${vault}`),
      h("p", { id: "key-warning" },
        "Coffer shows this key once and never again. Without it, the vault cannot be recovered on another machine. ",
        "Store it outside this service, for example in a password manager or a safe."),
      h("p", {}, h("code", { id: "generated-key", class: "key" }, key)),
      h("p", {}, copy, " ",
        h("a", { href: file, download: `coffer-${vault}.key`, id: "key-download" }, "Download as a file")),
      h("div", { class: "choice" }, stored, h("label", { for: "key-stored" }, "I have stored this key somewhere safe, outside Coffer")),
      h("p", {}, done));
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(key);
        copy.textContent = "Copied";
      } catch {
        copy.textContent = "Copy failed: select the key and copy it";
      }
    });
    stored.addEventListener("change", () => { done.disabled = !stored.checked; });
    // Escape would close it without the confirmation.
    dialog.addEventListener("cancel", (ev) => ev.preventDefault());
    done.addEventListener("click", () => {
      dialog.close();
      dialog.remove();
      URL.revokeObjectURL(file);
      resolve();
    });
    document.body.append(dialog);
    dialog.showModal();
    stored.focus();
  });
}

// A modal question with choices; resolves to the chosen value or null.
function ask(title, text, choices) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { "aria-labelledby": "ask-title", id: "ask-dialog" },
      h("h2", { id: "ask-title" }, title), h("p", {}, text));
    const close = (v) => { dialog.close(); dialog.remove(); resolve(v); };
    dialog.append(h("p", { class: "actions" },
      choices.map(([value, label, cls]) => h("button", { type: "button", class: cls, "data-choice": value, onclick: () => close(value) }, label)),
      h("button", { type: "button", class: "secondary", onclick: () => close(null) }, "Cancel")));
    dialog.addEventListener("cancel", () => resolve(null));
    document.body.append(dialog);
    dialog.showModal();
  });
}

// A modal asking for a new password; resolves to it, or null.
function askPassword(title) {
  return new Promise((resolve) => {
    const field1 = input("new-password", { type: "password", autocomplete: "new-password" });
    const dialog = h("dialog", { "aria-labelledby": "password-title", id: "password-dialog" },
      h("h2", { id: "password-title" }, title), field("New password", field1, "At least 12 characters."));
    const close = (v) => { dialog.close(); dialog.remove(); resolve(v); };
    dialog.append(h("p", { class: "actions" },
      h("button", { type: "button", id: "password-save", onclick: () => close(field1.value) }, "Set password"), " ",
      h("button", { type: "button", class: "secondary", onclick: () => close(null) }, "Cancel")));
    dialog.addEventListener("cancel", () => resolve(null));
    document.body.append(dialog);
    dialog.showModal();
    field1.focus();
  });
}

// A modal list of checkboxes; resolves to the names ticked, or null.
function pickItems(title, items, current) {
  return new Promise((resolve) => {
    const boxes = items.map((i) => checkbox(`pick-item-${i.name}`, i.name, current.includes(i.name)));
    const dialog = h("dialog", { "aria-labelledby": "pick-title", id: "pick-dialog" },
      h("h2", { id: "pick-title" }, title),
      h("fieldset", {}, h("legend", {}, "Items backed up together"), boxes));
    const close = (v) => { dialog.close(); dialog.remove(); resolve(v); };
    dialog.append(h("p", { class: "actions" },
      h("button", { type: "button", id: "pick-save", onclick: () => close(items.filter((i) => dialog.querySelector(`#${CSS.escape(`pick-item-${i.name}`)}`).checked).map((i) => i.name)) }, "Save"), " ",
      h("button", { type: "button", class: "secondary", onclick: () => close(null) }, "Cancel")));
    dialog.addEventListener("cancel", () => resolve(null));
    document.body.append(dialog);
    dialog.showModal();
  });
}

// ---- login and dashboard --------------------------------------------------

function loginPage() {
  const name = input("login-name", { autocomplete: "username", required: true });
  const password = input("login-password", { type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Log in to Coffer"),
    field("User name", name), field("Password", password),
    h("p", {}, h("button", { type: "submit" }, "Log in")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", "/auth/login", { name: name.value, password: password.value });
      clearError();
      if (!location.hash || location.hash === "#/login") location.hash = "#/dashboard";
      await route();
    } catch (e) {
      showError(e);
      password.value = "";
    }
  });
  put(main, form);
  name.focus();
}

// An item's schedule needs its vault's journal, which a storage outage can
// hold up: pages render at once and fill these cells as answers arrive.
function scheduleCells(item, fill) {
  api("GET", `/items/${enc(item.name)}/schedule`).then(fill, (e) => fill(null, e));
}

const unknown = (e) => h("span", { class: "hint", title: e.message }, "unknown: the vault cannot be read now");

async function dashboardPage() {
  const [vaults, items, alerts, jobs, agents] = await Promise.all([
    api("GET", "/vaults"),
    api("GET", "/items"),
    api("GET", "/alerts?open=true"),
    api("GET", "/jobs?limit=10"),
    api("GET", "/agents"),
  ]);
  put(main,
    h("h1", {}, "Dashboard"),
    section("vaults-title", "Vaults",
      table("Vaults", ["Name", "Location", "Usage", "Key fingerprint"],
        vaults.map((v) => h("tr", {},
          h("td", {}, h("a", { href: `#/vault/${enc(v.name)}` }, v.name)), h("td", {}, v.location),
          h("td", {}, size(v.usage_bytes)), h("td", {}, v.key_fingerprint))),
        "No vault yet: start with Enable backup.")),
    section("items-title", "Protected items",
      table("Protected items", ["Item", "Kind", "Host", "Vault", "Last backup", "Status", "Next backup"],
        items.map((i) => {
          const [last, state, next] = [h("td", {}, "…"), h("td", {}, "…"), h("td", {}, "…")];
          scheduleCells(i, (s, e) => {
            if (!s) return put(next, unknown(e));
            put(last, when(s.last_run));
            state.className = `state-${s.last_state || ""}`;
            put(state, s.last_state || "never run");
            put(next, s.active ? when(s.next_run) : protectionText(s));
          });
          return h("tr", {}, h("td", {}, i.name), h("td", {}, i.kind), h("td", {}, i.agent || "this service"), h("td", {}, i.vault), last, state, next);
        }),
        "Nothing is protected yet.")),
    agents.length ? section("fleet-title", "Fleet", agentsTable(agents, null)) : null,
    section("alerts-title", "Open alerts", alertsTable(alerts, false)),
    section("jobs-title", "Recent jobs", jobsTable(jobs)),
  );
}

function protectionText(s) {
  if (s.protection === "stopped-retain") return "protection stopped, data retained";
  if (s.protection === "stopped-delete") return "protection stopped, data deleted";
  return "not scheduled";
}

// ---- enable backup ----------------------------------------------------------

function enablePage() {
  const done = {};
  const vault = input("enable-vault", { required: true, "data-field": "name", autocomplete: "off" });
  const locationInput = input("enable-location", { required: true, "data-field": "location", autocomplete: "off" });
  const creds = h("textarea", { id: "enable-credentials", rows: 3, "data-field": "credentials", autocomplete: "off", spellcheck: "false" });
  const testResult = h("div", { id: "enable-test-result", role: "status" });
  const testButton = h("button", { type: "button", id: "enable-test", class: "secondary" }, "Test location");
  const attach = h("input", { type: "checkbox", id: "enable-attach" });
  const keyText = h("textarea", { id: "enable-key", rows: 2, "data-field": "key", autocomplete: "off", spellcheck: "false", disabled: true });
  const schedule = input("enable-schedule", { value: "daily 22:00", "data-field": "schedule" });
  const zone = input("enable-time-zone", { value: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC", "data-field": "time_zone" });
  const keepLast = input("enable-keep-last", { type: "number", min: 0, value: "7" });
  const dailyDays = input("enable-daily-days", { type: "number", min: 0, value: "30" });
  const itemName = input("enable-item", { required: true, autocomplete: "off" });
  const kind = select("enable-kind", [["directory", "Directory tree"], ["sqlite", "SQLite database"], ["command", "Output of a command"]], "directory");
  const paths = h("textarea", { id: "enable-paths", rows: 3, "data-field": "paths", spellcheck: "false" });
  const excludes = h("textarea", { id: "enable-excludes", rows: 2, "data-field": "excludes", spellcheck: "false" });
  const command = input("enable-command", { "data-field": "command", spellcheck: "false" });
  const setName = input("enable-set", { autocomplete: "off" });
  const setDays = input("enable-set-days", { type: "number", min: 1, value: "7" });

  const customPolicy = () => main.querySelector("#enable-policy-custom").checked;
  const wantSet = () => main.querySelector("#enable-what-set").checked;
  const generate = () => main.querySelector("#enable-key-generate").checked;
  const refresh = () => {
    keyText.disabled = generate();
    keyText.required = !generate();
    for (const el of [schedule, zone, keepLast, dailyDays]) el.disabled = !customPolicy();
    setName.disabled = setDays.disabled = !wantSet();
    const k = kind.value;
    paths.disabled = k === "command";
    excludes.disabled = k !== "directory";
    command.disabled = k !== "command";
  };

  testButton.addEventListener("click", () => act(testButton, async () => {
    put(testResult, h("p", {}, "Testing…"));
    const t = await api("POST", "/locations/test", { location: locationInput.value, credentials: keyValues(creds.value) });
    put(testResult,
      h("p", { class: t.ok ? "ok" : "bad" }, t.ok
        ? `The location works (${t.kind}).${t.free_bytes ? ` Free: ${size(t.free_bytes)}.` : ""}`
        : `The location test failed: ${t.failure}.`),
      t.remedy ? h("p", { class: "hint" }, t.remedy) : null,
      h("ul", { class: "steps" }, t.steps.map((s) => h("li", { class: s.ok ? "ok" : "bad" },
        `${s.ok ? "✓" : "✗"} ${s.name}: ${s.detail} (${s.millis} ms)`))),
      t.holds_vault ? h("p", {}, "A Coffer vault is already there: it will be attached, and its key is needed.") : null);
    if (t.holds_vault) {
      attach.checked = true;
      main.querySelector("#enable-key-enter").checked = true;
      refresh();
    }
  }));

  const form = h("form", { id: "enable-form", "aria-labelledby": "enable-title" },
    h("h1", { id: "enable-title" }, "Enable backup"),
    h("fieldset", {}, h("legend", {}, "1. Storage location"),
      field("Vault name", vault, "Letters, digits, dots, dashes and underscores."),
      field("Location", locationInput, "A directory path, or a URL: s3://bucket/prefix, azblob://container/prefix, gcs://bucket/prefix, sftp://host/path, webdav://host/path."),
      field("Credentials", creds, "One NAME=value per line (for example AWS_ACCESS_KEY_ID=…). Kept sealed by the service, never shown again. Empty for a directory."),
      h("p", {}, testButton), testResult,
      h("div", { class: "choice" }, attach, h("label", { for: "enable-attach" }, "Attach the vault that is already at this location"))),
    h("fieldset", {}, h("legend", {}, "2. Vault key"),
      radio("enable-key", "enable-key-generate", "generate", "Generate a new key (shown once)", true),
      radio("enable-key", "enable-key-enter", "enter", "Enter a key", false),
      field("Key", keyText, "At least 16 characters; keep a copy outside Coffer.")),
    h("fieldset", {}, h("legend", {}, "3. Policy"),
      radio("enable-policy", "enable-policy-default", "default", "DefaultPolicy of the vault (daily, 30 days)", true),
      radio("enable-policy", "enable-policy-custom", "custom", "A policy of its own, named after the item", false),
      h("div", { class: "grid" },
        field("Schedule", schedule, "daily HH:MM, weekly mon,thu HH:MM, or every N h from HH:MM."),
        field("Time zone", zone),
        field("Keep the last N points", keepLast),
        field("Keep one point a day for N days", dailyDays))),
    h("fieldset", {}, h("legend", {}, "4. What to protect"),
      field("Item name", itemName),
      field("Kind", kind),
      field("Paths", paths, "Absolute paths, one per line (a SQLite item: its one database file)."),
      field("Exclude", excludes, "Glob patterns, one per line."),
      field("Backup command", command, "Its standard output is the backup (for example pg_dumpall)."),
      radio("enable-what", "enable-what-item", "item", "Protect the item on its own", true),
      radio("enable-what", "enable-what-set", "set", "Protect it as an infrastructure set, backed up together with the service's configuration", false),
      field("Set name", setName),
      field("Keep set points for N days", setDays)),
    h("p", {}, h("button", { type: "submit", id: "enable-submit" }, "Enable backup")));
  form.addEventListener("change", refresh);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(main.querySelector("#enable-submit"), async () => {
      const name = vault.value.trim();
      const policy = customPolicy() ? itemName.value.trim() : undefined;
      // Steps that succeeded are not repeated when the form is sent again
      // after a later step failed.
      if (!done.vault) {
        const made = await api("POST", "/vaults", {
          name, location: locationInput.value.trim(), credentials: keyValues(creds.value),
          key: generate() ? undefined : keyText.value.trim(), create: !attach.checked,
        });
        done.vault = name;
        for (const el of [vault, locationInput, creds, attach]) el.disabled = true;
        if (made.generated_key) await showKeyOnce(name, made.generated_key);
      }
      if (policy && !done.policy) {
        await api("PUT", `/vaults/${enc(done.vault)}/policies/${enc(policy)}`, {
          schedule: schedule.value.trim(), time_zone: zone.value.trim(),
          retention: { keep_last: Number(keepLast.value) || null, daily_days: Number(dailyDays.value) || null },
        });
        done.policy = policy;
      }
      if (!done.item) {
        const k = kind.value;
        await api("POST", "/items", {
          name: itemName.value.trim(), vault: done.vault, kind: k, policy,
          paths: k === "command" ? [] : lines(paths.value),
          excludes: k === "directory" ? lines(excludes.value) : [],
          command: k === "command" ? { backup: command.value } : undefined,
        });
        done.item = itemName.value.trim();
      }
      if (wantSet() && !done.set) {
        await api("POST", "/sets", { name: setName.value.trim(), vault: done.vault, items: [done.item], retention_days: Number(setDays.value) || 7 });
        done.set = setName.value.trim();
      }
      go("#/items", `Backup is enabled: ${done.item} in vault ${done.vault}${done.set ? `, in set ${done.set}` : ""}.`);
    });
  });
  put(main, form);
  refresh();
}

// ---- vaults ------------------------------------------------------------------

async function vaultsPage() {
  const vaults = await api("GET", "/vaults");
  put(main,
    h("h1", {}, "Vaults"),
    h("p", {}, h("a", { href: "#/enable" }, "Enable backup to a new vault")),
    table("Vaults", ["Name", "Location", "Usage", "Key fingerprint", "Created"],
      vaults.map((v) => h("tr", {},
        h("td", {}, h("a", { href: `#/vault/${enc(v.name)}` }, v.name)),
        h("td", {}, v.location), h("td", {}, size(v.usage_bytes)),
        h("td", {}, v.key_fingerprint), h("td", {}, when(v.created)))),
      "No vault yet."));
}

// Who wrote a point: a key holder, or the write-only credential of a slot
// (`coffer key list` names it); one written after its revocation is flagged.
function writtenBy(p) {
  if (!p.written_by) return "vault key";
  const who = `write-only credential ${p.written_by}`;
  return p.after_revocation
    ? h("strong", { class: "untrusted" }, `${who}, after its revocation: untrusted`)
    : who;
}

function pointsTable(vault, points, after) {
  return table(`Recovery points of ${vault}`, ["Item", "Taken", "Files", "Size", "Consistency", "Written by", "State", "Actions"],
    points.map((p) => {
      const label = `${p.item} of ${when(p.time)}`;
      const actions = p.state === "soft-deleted"
        ? h("button", { type: "button", class: "secondary", "aria-label": `Undelete ${label}`,
          onclick: (ev) => act(ev.target, async () => {
            await api("POST", `/vaults/${enc(vault)}/points/undelete`, { points: [p.id] });
            await after();
            say(`Point ${p.id.slice(0, 12)} is back, on hold.`);
          }) }, "Undelete")
        : [h("a", { href: `#/point/${enc(vault)}/${p.id}`, "aria-label": `Browse ${label}` }, "Browse"), " ",
          h("button", { type: "button", class: "secondary", "aria-label": `Delete ${label}`,
            onclick: (ev) => act(ev.target, async () => {
              if (await ask("Delete this recovery point?", `${label} becomes soft-deleted: it can be undeleted for the vault's soft-delete period, then it is purged.`, [["delete", "Delete", "danger"]]) !== "delete") return;
              await api("POST", `/vaults/${enc(vault)}/points/delete`, { points: [p.id] });
              await after();
              say(`Point ${p.id.slice(0, 12)} is soft-deleted.`);
            }) }, "Delete")];
      return h("tr", { class: p.state === "soft-deleted" ? "deleted" : null },
        h("td", {}, p.item), h("td", {}, when(p.time)), h("td", {}, String(p.files)),
        h("td", {}, size(p.bytes_total)), h("td", {}, p.consistency),
        h("td", {}, writtenBy(p)),
        h("td", {}, p.state === "soft-deleted" ? `soft-deleted ${when(p.deleted_at)}, purged ${when(p.purge_at)}` : (p.hold ? "active, on hold" : "active")),
        h("td", {}, actions));
    }),
    "No recovery points yet.");
}

async function vaultPage(name) {
  const [v, st, points, setPoints] = await Promise.all([
    api("GET", `/vaults/${enc(name)}`),
    api("GET", `/vaults/${enc(name)}/status`),
    api("GET", `/vaults/${enc(name)}/points`),
    api("GET", `/vaults/${enc(name)}/set-points`),
  ]);
  const reload = () => vaultPage(name);
  const immutability = select("vault-immutability", [["disabled", "Disabled"], ["enabled", "Enabled"], ["locked", "Locked (cannot be undone)"]], st.immutability);
  const applyImmutability = h("button", { type: "button", id: "vault-immutability-apply" }, "Apply");
  applyImmutability.addEventListener("click", () => act(applyImmutability, async () => {
    if (immutability.value === "locked" && await ask("Lock immutability?", "A locked vault can never be unlocked: no point can be deleted before it expires and no retention can be shortened, by anyone.", [["lock", "Lock for good", "danger"]]) !== "lock") return;
    await api("PUT", `/vaults/${enc(name)}/immutability`, { immutability: immutability.value });
    await reload();
    say(`Immutability of ${name} is now ${immutability.value}.`);
  }));
  const newKey = h("textarea", { id: "rotate-key-text", rows: 2, "data-field": "key", autocomplete: "off", spellcheck: "false" });
  const rotate = h("button", { type: "button", id: "rotate-key" }, "Rotate key");
  rotate.addEventListener("click", () => act(rotate, async () => {
    if (await ask("Rotate the vault key?", "The vault gets a new key and the old one stops opening it. Every other copy of the old key becomes useless for recovery.", [["rotate", "Rotate", "danger"]]) !== "rotate") return;
    const typed = newKey.value.trim();
    const r = await api("POST", `/vaults/${enc(name)}/key/rotate`, { key: typed || undefined });
    newKey.value = "";
    if (r.generated_key) await showKeyOnce(name, r.generated_key);
    await reload();
    say(`The key of ${name} was rotated; its fingerprint is now ${r.vault.key_fingerprint}.`);
  }));
  const job = (path, body) => async (ev) => act(ev.target, async () => {
    const j = await api("POST", `/vaults/${enc(name)}/${path}`, body);
    go(`#/job/${j.id}`);
  });
  put(main,
    h("h1", {}, `Vault ${name}`),
    section("vault-overview", "Overview",
      h("dl", {},
        h("dt", {}, "Location"), h("dd", {}, v.location),
        h("dt", {}, "Usage"), h("dd", {}, size(v.usage_bytes)),
        h("dt", {}, "Vault id"), h("dd", {}, v.vault_id),
        h("dt", {}, "Stored credentials"), h("dd", {}, v.credential_names.join(", ") || "none"),
        h("dt", {}, "Recovery points"), h("dd", {}, `${st.points} active, ${st.soft_deleted_points} soft-deleted (kept ${st.soft_delete_days} days)`)),
      h("p", { class: "actions" },
        h("button", { type: "button", class: "secondary", onclick: job("prune", undefined) }, "Prune now"), " ",
        h("button", { type: "button", class: "secondary", onclick: job("check", { read_data_percent: 5 }) }, "Check now (5 % of data)"))),
    section("vault-replicas", "Replicas",
      table("Replicas", ["Location", "Mode", "Added", "Complete as of", "Lag"],
        st.replicas.map((r) => h("tr", {},
          h("td", {}, r.location), h("td", {}, r.mode), h("td", {}, when(r.added)),
          h("td", {}, when(r.synced_as_of)),
          h("td", { class: r.lag_secs === null || r.lag_secs > 86400 ? "bad" : null },
            r.mode === "sync" ? "none (synchronous)" : ago(r.lag_secs)))),
        "No replicas. Add one with coffer vault replica add on the command line."),
      st.replicas.length ? h("p", {}, h("button", { type: "button", class: "secondary", id: "replicate-now", onclick: job("replicate", undefined) }, "Replicate now")) : null),
    section("vault-immutability-title", "Immutability",
      h("p", {}, `Now: ${st.immutability}.`),
      field("Immutability", immutability, "Enabled: points cannot be deleted before they expire and retention cannot be shortened. Locked: the same, for good."),
      h("p", {}, applyImmutability)),
    section("vault-key", "Key",
      h("p", {}, "Fingerprint: ", h("code", { id: "key-fingerprint" }, v.key_fingerprint)),
      field("New key", newKey, "Leave empty to have Coffer generate one; it is shown once."),
      h("p", {}, rotate)),
    setPoints.length ? section("vault-set-points", "Infrastructure set points",
      table("Set points", ["Set", "Taken", "Items", "Cloud recovery"],
        setPoints.map((sp) => h("tr", {},
          h("td", {}, sp.set), h("td", {}, when(sp.time)),
          h("td", {}, h("ul", { class: "plain" }, sp.items.map((i) => h("li", { class: `state-${i.status}` },
            `${i.item} (${i.kind}): ${i.status}${i.consistency ? `, ${i.consistency}` : ""}${i.message ? ` — ${i.message}` : ""}`)))),
          h("td", { class: sp.ready_for_cloud_recovery ? "ok" : "bad" },
            sp.ready_for_cloud_recovery ? "ready: coffer recover --location … --point " + sp.id.slice(0, 12) : `not ready: ${sp.not_ready_because}`))),
        "")) : null,
    section("vault-points", "Recovery points", pointsTable(name, points, reload)),
  );
}

// ---- items and sets ---------------------------------------------------------

async function itemsPage() {
  const [items, sets, vaults, agents] = await Promise.all([api("GET", "/items"), api("GET", "/sets"), api("GET", "/vaults"), api("GET", "/agents")]);
  const policiesOf = {};
  const policies = (vault) => {
    policiesOf[vault] ||= api("GET", `/vaults/${enc(vault)}/policies`).catch(() => []);
    return policiesOf[vault];
  };
  const reload = () => itemsPage();
  const rows = items.map((i) => {
    const policy = select(`policy-of-${i.name}`, [], "", { "aria-label": `Policy of ${i.name}` });
    const assign = h("button", { type: "button", class: "secondary", "aria-label": `Assign the policy to ${i.name}`,
      onclick: (ev) => act(ev.target, async () => {
        await api("PUT", `/items/${enc(i.name)}/policy`, { policy: policy.value });
        await reload();
        say(`${i.name} now follows ${policy.value}.`);
      }) }, "Assign");
    const [last, next, protection] = [h("td", {}, "…"), h("td", {}, "…"), h("span")];
    const stop = h("button", { type: "button", class: "secondary", "aria-label": `Stop protection of ${i.name}`,
      onclick: (ev) => act(ev.target, async () => {
        const choice = await ask(`Stop protecting ${i.name}?`, "Scheduled backups stop. Retain data keeps every point until you delete it; delete data soft-deletes them all (they stay recoverable for the vault's soft-delete period).",
          [["retain", "Stop and retain data"], ["delete", "Stop and delete data", "danger"]]);
        if (!choice) return;
        await api("POST", `/items/${enc(i.name)}/stop-protection`, { delete_data: choice === "delete" });
        await reload();
        say(`Protection of ${i.name} stopped; data ${choice === "delete" ? "soft-deleted" : "retained"}.`);
      }) }, "Stop protection");
    const resume = h("button", { type: "button", class: "secondary", "aria-label": `Resume protection of ${i.name}`,
      onclick: (ev) => act(ev.target, async () => {
        await api("POST", `/items/${enc(i.name)}/resume-protection`);
        await reload();
        say(`Protection of ${i.name} resumed.`);
      }) }, "Resume protection");
    scheduleCells(i, async (s, e) => {
      if (!s) {
        put(last, unknown(e));
        put(next, "—");
        put(protection, stop);
        return;
      }
      last.className = `state-${s.last_state || ""}`;
      put(last, s.last_state ? `${s.last_state}, ${when(s.last_run)}` : "never run");
      put(next, s.active ? when(s.next_run) : protectionText(s));
      put(protection, s.protection && s.protection !== "active" ? resume : stop);
      const names = (await policies(i.vault)).map((p) => p.name);
      put(policy, names.map((n) => h("option", { value: n, selected: n === s.policy }, n)));
    });
    return h("tr", {},
      h("td", {}, i.name), h("td", {}, i.kind), h("td", {}, i.agent || "this service"), h("td", {}, i.vault),
      h("td", {}, policy, " ", assign), last, next,
      h("td", { class: "actions" },
        h("button", { type: "button", "aria-label": `Back up ${i.name} now`, "data-item": i.name, class: "backup-now",
          onclick: (ev) => act(ev.target, async () => {
            const j = await api("POST", `/items/${enc(i.name)}/backup`);
            go(`#/job/${j.id}`);
          }) }, "Back up now"), " ", protection));
  });

  const vaultNames = vaults.map((v) => v.name);
  const newName = input("item-name", { "data-field": "name", autocomplete: "off" });
  const newVault = select("item-vault", vaultNames, vaultNames[0], { "data-field": "vault" });
  const newHost = select("item-host", [["", "This service's machine"], ...agents.map((a) => [a.name, `Agent ${a.name} (${a.host.hostname}, vault ${a.vault})`])], "", { "data-field": "agent" });
  const newKind = select("item-kind", [["directory", "Directory tree"], ["sqlite", "SQLite database"], ["command", "Output of a command"], ["disk", "Disk images"]], "directory");
  const newDiskFormat = select("item-disk-format", [["raw", "Raw image files or block devices"], ["qcow2", "qcow2 images (changed blocks tracked by a dirty bitmap)"]], "raw", { "data-field": "disk" });
  const newPaths = h("textarea", { id: "item-paths", rows: 3, "data-field": "paths", spellcheck: "false" });
  const newExcludes = h("textarea", { id: "item-excludes", rows: 2, "data-field": "excludes", spellcheck: "false" });
  const newCommand = input("item-command", { "data-field": "command", spellcheck: "false" });
  const addItem = h("form", { id: "item-form" },
    field("Name", newName), field("Vault", newVault), field("Host", newHost, "An agent's items are backed up on its host, into the vault it writes to."), field("Kind", newKind),
    field("Paths", newPaths, "Absolute paths, one per line."), field("Exclude", newExcludes, "Glob patterns, one per line."),
    field("Backup command", newCommand, "For a command item: its standard output is the backup."),
    field("Disk format", newDiskFormat, "For disk images: never guessed from the image. Each path is one disk."),
    h("p", {}, h("button", { type: "submit", id: "item-add" }, "Add item")));
  addItem.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(main.querySelector("#item-add"), async () => {
      const k = newKind.value;
      await api("POST", "/items", {
        name: newName.value.trim(), vault: newVault.value, kind: k,
        paths: k === "command" ? [] : lines(newPaths.value), excludes: k === "directory" ? lines(newExcludes.value) : [],
        command: k === "command" ? { backup: newCommand.value } : undefined,
        disk: k === "disk" ? { format: newDiskFormat.value } : undefined,
        agent: newHost.value || undefined,
      });
      await reload();
      say(`Item ${newName.value.trim()} added.`);
    });
  });

  const setName = input("set-name", { "data-field": "name", autocomplete: "off" });
  const setVault = select("set-vault", vaultNames, vaultNames[0], { "data-field": "vault" });
  const setItems = h("fieldset", { "data-field": "items" }, h("legend", {}, "Items"),
    items.filter((i) => !i.name.startsWith("coffer-service.")).map((i) => checkbox(`set-item-${i.name}`, `${i.name} (${i.vault})`, false)));
  const setDays = input("set-days", { type: "number", min: 1, value: "7", "data-field": "retention_days" });
  const addSet = h("form", { id: "set-form" }, field("Name", setName), field("Vault", setVault), setItems,
    field("Keep set points for N days", setDays),
    h("p", {}, h("button", { type: "submit", id: "set-add" }, "Add set")));
  addSet.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(main.querySelector("#set-add"), async () => {
      const chosen = items.filter((i) => main.querySelector(`#${CSS.escape(`set-item-${i.name}`)}`)?.checked).map((i) => i.name);
      await api("POST", "/sets", { name: setName.value.trim(), vault: setVault.value, items: chosen, retention_days: Number(setDays.value) || 7 });
      await reload();
      say(`Set ${setName.value.trim()} added.`);
    });
  });

  put(main,
    h("h1", {}, "Items and sets"),
    section("items-list", "Protected items",
      table("Protected items", ["Item", "Kind", "Host", "Vault", "Policy", "Last backup", "Next backup", "Actions"], rows, "Nothing is protected yet.")),
    section("sets-list", "Infrastructure sets",
      table("Infrastructure sets", ["Set", "Vault", "Items", "Schedule", "Kept", "Actions"],
        sets.map((s) => h("tr", {},
          h("td", {}, s.name), h("td", {}, s.vault), h("td", {}, s.items.join(", ")),
          h("td", {}, `${s.schedule} (${s.time_zone})`), h("td", {}, `${s.retention_days} days`),
          h("td", { class: "actions" },
            h("button", { type: "button", "aria-label": `Back up set ${s.name} now`, onclick: (ev) => act(ev.target, async () => {
              const j = await api("POST", `/sets/${enc(s.name)}/backup`);
              go(`#/job/${j.id}`);
            }) }, "Back up now"), " ",
            h("button", { type: "button", class: "secondary", "aria-label": `Recovery drill of set ${s.name}`, onclick: (ev) => act(ev.target, async () => {
              const j = await api("POST", `/sets/${enc(s.name)}/drill`, {});
              go(`#/job/${j.id}`);
            }) }, "Run a recovery drill"), " ",
            h("button", { type: "button", class: "secondary", "aria-label": `Change the items of set ${s.name}`, onclick: (ev) => act(ev.target, async () => {
              const candidates = items.filter((i) => i.vault === s.vault && !i.name.startsWith("coffer-service."));
              const chosen = await pickItems(`Items of set ${s.name}`, candidates, s.items);
              if (!chosen) return;
              await api("PATCH", `/sets/${enc(s.name)}`, { items: chosen });
              await reload();
              say(`Set ${s.name} now backs up ${chosen.join(", ")}.`);
            }) }, "Change items")))),
        "No infrastructure sets.")),
    section("item-add-title", "Add an item", addItem),
    section("set-add-title", "Add an infrastructure set", addSet),
  );
}

// ---- policies ------------------------------------------------------------------

async function policiesPage(query) {
  const vaults = await api("GET", "/vaults");
  if (vaults.length === 0) {
    put(main, h("h1", {}, "Policies"), h("p", { class: "empty" }, "No vault yet: policies live in a vault."));
    return;
  }
  const vaultName = query.get("vault") || vaults[0].name;
  const [policies, items] = await Promise.all([api("GET", `/vaults/${enc(vaultName)}/policies`), api("GET", "/items")]);
  const vault = select("policy-vault", vaults.map((v) => v.name), vaultName);
  vault.addEventListener("change", () => go(`#/policies?vault=${enc(vault.value)}`));
  const f = {
    name: input("policy-name", { "data-field": "name", autocomplete: "off" }),
    schedule: input("policy-schedule", { value: "daily 22:00", "data-field": "schedule" }),
    zone: input("policy-time-zone", { value: "UTC", "data-field": "time_zone" }),
    keepLast: input("policy-keep-last", { type: "number", min: 0 }),
    dailyDays: input("policy-daily-days", { type: "number", min: 0 }),
    weeklyWeeks: input("policy-weekly-weeks", { type: "number", min: 0 }),
    weeklyDay: select("policy-weekly-day", ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"], "sunday"),
    monthlyMonths: input("policy-monthly-months", { type: "number", min: 0 }),
    monthlyDay: input("policy-monthly-day", { value: "last" }),
    yearlyYears: input("policy-yearly-years", { type: "number", min: 0 }),
    yearlyMonth: input("policy-yearly-month", { type: "number", min: 1, max: 12, value: "12" }),
    yearlyDay: input("policy-yearly-day", { value: "last" }),
    previewItem: select("policy-preview-item", [["", "only the items that follow it"], ...items.filter((i) => i.vault === vaultName).map((i) => [i.name, `also ${i.name}, as if assigned`])], ""),
  };
  const load = (p) => {
    const r = p.rules;
    f.name.value = p.name; f.schedule.value = p.schedule_spec || p.schedule; f.zone.value = p.time_zone;
    f.keepLast.value = r.keep_last ?? ""; f.dailyDays.value = r.daily_days ?? "";
    f.weeklyWeeks.value = r.weekly?.weeks ?? ""; f.weeklyDay.value = r.weekly?.weekday ?? "sunday";
    f.monthlyMonths.value = r.monthly?.months ?? ""; f.monthlyDay.value = r.monthly?.day ?? "last";
    f.yearlyYears.value = r.yearly?.years ?? ""; f.yearlyMonth.value = r.yearly?.month ?? 12; f.yearlyDay.value = r.yearly?.day ?? "last";
    f.name.focus();
  };
  const num = (el) => (el.value === "" ? null : Number(el.value));
  const spec = () => ({
    schedule: f.schedule.value.trim(), time_zone: f.zone.value.trim(),
    retention: {
      keep_last: num(f.keepLast), daily_days: num(f.dailyDays),
      weekly: num(f.weeklyWeeks) ? { weeks: num(f.weeklyWeeks), weekday: f.weeklyDay.value } : null,
      monthly: num(f.monthlyMonths) ? { months: num(f.monthlyMonths), day: f.monthlyDay.value.trim() } : null,
      yearly: num(f.yearlyYears) ? { years: num(f.yearlyYears), month: num(f.yearlyMonth), day: f.yearlyDay.value.trim() } : null,
    },
  });
  const preview = h("div", { id: "policy-preview-result", role: "status" });
  const previewButton = h("button", { type: "button", class: "secondary", id: "policy-preview" }, "Preview");
  previewButton.addEventListener("click", () => act(previewButton, async () => {
    const item = f.previewItem.value;
    const p = await api("POST", `/vaults/${enc(vaultName)}/policies/${enc(f.name.value.trim())}/preview${item ? `?item=${enc(item)}` : ""}`, spec());
    put(preview,
      h("p", {}, `Under this policy, ${p.keep} point(s) are kept and ${p.expire} expire at the next prune`,
        p.items.length ? ` (items: ${p.items.join(", ")}).` : "; no item follows it yet."),
      table("Preview", ["Item", "Taken", "Fate", "Rule", "Kept until", "Under the saved policy"],
        p.points.map((pt) => h("tr", { class: `fate-${pt.fate}` },
          h("td", {}, pt.item), h("td", {}, when(pt.time)), h("td", {}, pt.fate),
          h("td", {}, pt.rule), h("td", {}, pt.until ? when(pt.until) : "—"),
          h("td", {}, pt.now ? `${pt.now} — differs` : pt.fate))),
        "No points to judge."));
  }));
  const editor = h("form", { id: "policy-form", "aria-labelledby": "policy-editor" },
    h("h2", { id: "policy-editor" }, "Schedule and retention"),
    h("div", { class: "grid" },
      field("Name", f.name), field("Schedule", f.schedule, "daily HH:MM, weekly mon,thu HH:MM, or every N h from HH:MM [for H h]."),
      field("Time zone", f.zone, "An IANA time zone such as Europe/Berlin.")),
    h("fieldset", {}, h("legend", {}, "Retention"),
      h("p", { class: "help" }, "Empty fields keep nothing by that rule."),
      h("div", { class: "grid" },
        field("Keep the last N points", f.keepLast), field("Daily: keep for N days", f.dailyDays), h("span"),
        field("Weekly: keep for N weeks", f.weeklyWeeks), field("Weekly: the point of", f.weeklyDay), h("span"),
        field("Monthly: keep for N months", f.monthlyMonths), field("Monthly: the point of day", f.monthlyDay, "1-28, last, or first-sunday … last-friday."), h("span"),
        field("Yearly: keep for N years", f.yearlyYears), field("Yearly: month", f.yearlyMonth), field("Yearly: day", f.yearlyDay))),
    field("Preview for", f.previewItem),
    h("p", { class: "actions" }, previewButton, " ", h("button", { type: "submit", id: "policy-save" }, "Save policy")),
    preview);
  editor.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(main.querySelector("#policy-save"), async () => {
      const saved = await api("PUT", `/vaults/${enc(vaultName)}/policies/${enc(f.name.value.trim())}`, spec());
      await policiesPage(query);
      say(`Policy ${saved.name} saved: ${saved.schedule}; ${saved.retention}.`);
    });
  });
  put(main,
    h("h1", {}, "Policies"),
    field("Vault", vault),
    section("policies-list", `Policies of ${vaultName}`,
      table("Policies", ["Policy", "Schedule", "Retention", "Items", "Next run", "Actions"],
        policies.map((p) => h("tr", {},
          h("td", {}, p.name), h("td", {}, `${p.schedule} (${p.time_zone})`), h("td", {}, p.retention),
          h("td", {}, p.items.join(", ") || "—"), h("td", {}, when(p.next_run)),
          h("td", {}, h("button", { type: "button", class: "secondary", "aria-label": `Edit ${p.name}`, onclick: () => load(p) }, "Edit")))),
        "No policies.")),
    h("section", { "aria-labelledby": "policy-editor" }, editor));
}

// ---- jobs ---------------------------------------------------------------------------

const running = (j) => j.state === "Queued" || j.state === "Running";

function progressText(j) {
  const p = j.progress;
  if (!p) return running(j) ? "waiting" : "—";
  if (j.kind === "restore" && p.bytes_total) return `${size(p.bytes_written)} of ${size(p.bytes_total)}`;
  return `${p.files} files, ${size(p.bytes_read)} read, ${size(p.bytes_new)} new`;
}

function jobsTable(jobs) {
  return table("Jobs", ["Job", "Kind", "Item", "State", "Progress", "Started", "Ended"],
    jobs.map((j) => h("tr", {},
      h("td", {}, h("a", { href: `#/job/${j.id}` }, `#${j.id}`)), h("td", {}, j.kind), h("td", {}, j.item || j.vault || "—"),
      h("td", { class: `state-${j.state}` }, j.state), h("td", {}, progressText(j)),
      h("td", {}, when(j.started)), h("td", {}, when(j.finished)))),
    "No jobs yet.");
}

async function jobsPage() {
  const render = async () => {
    const jobs = await api("GET", "/jobs?limit=50");
    put(main, h("h1", {}, "Jobs"), jobsTable(jobs));
    return jobs.some(running);
  };
  if (await render()) poll(render, 2000);
}

async function jobPage(id) {
  let after = 0;
  const log = h("ol", { id: "job-log", class: "log", "aria-label": "Log" });
  const head = h("div", { id: "job-head" });
  const cancel = h("button", { type: "button", id: "job-cancel", class: "danger" }, "Cancel job");
  cancel.addEventListener("click", () => act(cancel, async () => {
    await api("POST", `/jobs/${id}/cancel`);
    say(`Job ${id} is being cancelled.`);
  }));
  put(main, h("h1", {}, `Job #${id}`), head, section("job-log-title", "Log", log));
  const render = async () => {
    const [j, lines] = await Promise.all([api("GET", `/jobs/${id}`), api("GET", `/jobs/${id}/logs?after=${after}`)]);
    for (const l of lines) {
      log.append(h("li", { class: `level-${l.level}` }, `${new Date(l.time * 1000).toLocaleTimeString()} ${l.level} ${l.message}`));
      after = Math.max(after, l.seq);
    }
    const p = j.progress;
    const bar = p && j.kind === "restore" && p.bytes_total
      ? h("progress", { max: p.bytes_total, value: p.bytes_written, "aria-label": "Restore progress" }) : null;
    put(head,
      h("dl", {},
        h("dt", {}, "Kind"), h("dd", {}, j.kind),
        h("dt", {}, "Item"), h("dd", {}, j.item || "—"),
        h("dt", {}, "Vault"), h("dd", {}, j.vault || "—"),
        h("dt", {}, "State"), h("dd", { id: "job-state", class: `state-${j.state}` }, j.state),
        h("dt", {}, "Trigger"), h("dd", {}, `${j.trigger}${j.requested_by ? ` by ${j.requested_by}` : ""}, attempt ${j.attempt}`),
        h("dt", {}, "Started"), h("dd", {}, when(j.started)),
        h("dt", {}, "Ended"), h("dd", {}, when(j.finished)),
        h("dt", {}, "Progress"), h("dd", { id: "job-progress" }, progressText(j), p ? ` — ${p.elapsed_secs.toFixed(1)} s, ${size(p.rate_bytes_per_sec)}/s` : "", bar)),
      j.error ? h("p", { class: "bad", id: "job-error" }, j.error) : null,
      j.result && j.result.point ? h("p", {}, "Recovery point: ", h("a", { href: `#/point/${enc(j.vault)}/${j.result.point}`, id: "job-point" }, String(j.result.point).slice(0, 12))) : null,
      running(j) ? h("p", {}, cancel) : null);
    return running(j);
  };
  if (await render()) poll(render, 1000);
}

// ---- recovery points --------------------------------------------------------------

async function pointsPage(query) {
  const vaults = await api("GET", "/vaults");
  if (vaults.length === 0) {
    put(main, h("h1", {}, "Recovery points"), h("p", { class: "empty" }, "No vault yet."));
    return;
  }
  const vaultName = query.get("vault") || vaults[0].name;
  const vault = select("points-vault", vaults.map((v) => v.name), vaultName);
  vault.addEventListener("change", () => go(`#/points?vault=${enc(vault.value)}`));
  const points = await api("GET", `/vaults/${enc(vaultName)}/points`);
  put(main, h("h1", {}, "Recovery points"), field("Vault", vault),
    section("points-list", `Points in ${vaultName}`, pointsTable(vaultName, points, () => pointsPage(query))));
}

function fileUrl(vault, point, path) {
  return `/api/v1/vaults/${enc(vault)}/points/${enc(point)}/file?path=${enc(path)}`;
}

async function pointPage(vault, point, query) {
  const path = query.get("path") || "/";
  const [listing, points, items, agents] = await Promise.all([
    api("GET", `/vaults/${enc(vault)}/points/${enc(point)}/entries?path=${enc(path)}`),
    api("GET", `/vaults/${enc(vault)}/points`),
    api("GET", "/items"),
    api("GET", "/agents"),
  ]);
  const home = (items.find((i) => i.name === listing.item && i.vault === vault) || {}).agent || "";
  const summary = points.find((p) => p.id === listing.point) || { tags: [] };
  const kindTag = summary.tags.find((t) => t.startsWith("coffer:kind="));
  const isTree = !kindTag || kindTag === "coffer:kind=directory";
  const here = (p) => `#/point/${enc(vault)}/${listing.point}?path=${enc(p)}`;
  const parts = path.split("/").filter(Boolean);
  const crumbs = h("nav", { "aria-label": "Folder", class: "crumbs" },
    h("a", { href: here("/") }, `${listing.item} /`),
    parts.map((p, n) => [" ", h("a", { href: here(`/${parts.slice(0, n + 1).join("/")}`), "aria-current": n === parts.length - 1 ? "page" : null }, `${p} /`)]));
  const rows = listing.entries.map((e) => h("tr", {},
    h("td", {}, h("input", { type: "checkbox", class: "pick", value: e.path, id: `pick-${e.path}`, "aria-label": `Select ${e.path} for restore` })),
    h("td", {}, e.kind === "dir" ? h("a", { href: here(e.path) }, `${e.name}/`) : e.name,
      e.target ? ` → ${e.target}` : "", e.error ? h("span", { class: "bad" }, ` (incomplete: ${e.error})`) : ""),
    h("td", {}, e.kind), h("td", {}, e.size === null ? "—" : size(e.size)),
    h("td", {}, (e.mode & 0o7777).toString(8).padStart(4, "0")), h("td", {}, [e.user, e.group].filter(Boolean).join(":") || "—"),
    h("td", {}, when(e.mtime)),
    h("td", {}, (e.kind === "file" || e.kind === "disk") && !e.error
      ? h("a", { href: fileUrl(vault, listing.point, e.path), download: e.name, class: "download", "aria-label": `Download ${e.path}${e.kind === "disk" ? " as a raw image" : ""}` }, "Download")
      : "")));
  const target = input("restore-target", { "data-field": "target", placeholder: "/srv/restored", spellcheck: "false" });
  const overwrite = h("input", { type: "checkbox", id: "restore-overwrite" });
  const host = select("restore-host", [["", "This service's machine"], ...agents.map((a) => [a.name, `Agent ${a.name} (${a.host.hostname})${a.name === home ? ", where it came from" : ""}`])], home, { "data-field": "host" });
  const start = h("button", { type: "submit", id: "restore-start" }, "Restore");
  const form = h("form", { id: "restore-form", "aria-labelledby": "restore-title" },
    h("h2", { id: "restore-title" }, "Restore"),
    h("p", {}, isTree
      ? "Restores the entries you selected above, or the whole point when none is selected."
      : "This point holds a database or a command's output: it goes back where it came from."),
    isTree ? [
      radio("restore-where", "restore-elsewhere", "elsewhere", "To another location (each path comes back under it)", true),
      radio("restore-where", "restore-original", "original", "To the original location, over what is there now", false),
      field("Target directory", target),
      agents.length ? field("Host", host, "The machine the files are written on: an agent's host, or this service's.") : null,
    ] : null,
    h("div", { class: "choice" }, overwrite, h("label", { for: "restore-overwrite" }, "Replace existing files")),
    h("p", {}, start));
  form.addEventListener("change", () => {
    const original = main.querySelector("#restore-original");
    target.disabled = Boolean(original && original.checked);
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(start, async () => {
      const includes = [...main.querySelectorAll("input.pick:checked")].map((c) => c.value);
      const original = isTree && main.querySelector("#restore-original").checked;
      if (original && !overwrite.checked) {
        throw new ApiProblem(400, { error: { field: "overwrite", message: "restoring to the original location replaces what is there", hint: "tick Replace existing files to confirm, or restore to another location" } });
      }
      const j = await api("POST", `/vaults/${enc(vault)}/restore`, {
        point: listing.point, includes,
        target: !isTree ? "" : original ? "/" : target.value.trim(),
        overwrite: overwrite.checked,
        host: isTree && host.value ? host.value : undefined,
      });
      go(`#/job/${j.id}`);
    });
  });
  put(main,
    h("h1", {}, `Recovery point of ${listing.item}`),
    h("p", {}, `Taken ${when(listing.time)} — point ${listing.point.slice(0, 12)} in vault ${vault}.`),
    section("point-files", "Files", crumbs,
      table(`Entries of ${path}`, ["Select", "Name", "Kind", "Size", "Mode", "Owner", "Modified", "Download"], rows, "This folder is empty.")),
    h("section", { "aria-labelledby": "restore-title" }, form));
}

// ---- alerts, users ---------------------------------------------------------------

function alertsTable(alerts, withActions, after) {
  return table("Alerts", ["Severity", "Alert", "Affects", "What to do", "Seen", withActions ? "Actions" : null].filter(Boolean),
    alerts.map((a) => h("tr", {},
      h("td", { class: `severity-${a.severity}` }, a.severity),
      h("td", {}, h("strong", {}, a.title), h("br"), a.detail, h("br"), h("span", { class: "hint" }, `cause: ${a.cause}`)),
      h("td", {}, a.item || a.vault || "—"),
      h("td", {}, h("ol", { class: "remediation" }, a.remediation.map((r) => h("li", {}, r)))),
      h("td", {}, `${a.occurrences}×, last ${when(a.last_seen)}`, a.state !== "open" ? h("br") : null, a.state !== "open" ? a.state : null),
      withActions ? h("td", {}, a.state === "open"
        ? h("button", { type: "button", class: "secondary", "aria-label": `Resolve ${a.title}`, onclick: (ev) => act(ev.target, async () => {
          await api("POST", `/alerts/${a.id}/resolve`);
          await after();
          say(`Alert resolved: ${a.title}.`);
        }) }, "Resolve") : "") : null)),
    "No open alerts.");
}

async function alertsPage(query) {
  const all = query.get("all") === "1";
  const alerts = await api("GET", `/alerts?open=${all ? "false" : "true"}`);
  const toggle = h("input", { type: "checkbox", id: "alerts-all", checked: all });
  toggle.addEventListener("change", () => go(toggle.checked ? "#/alerts?all=1" : "#/alerts"));
  put(main, h("h1", {}, "Alerts"),
    h("div", { class: "choice" }, toggle, h("label", { for: "alerts-all" }, "Show resolved alerts too")),
    alertsTable(alerts, true, () => alertsPage(query)));
}

async function usersPage() {
  const [users, roles, vaults] = await Promise.all([api("GET", "/users"), api("GET", "/roles"), api("GET", "/vaults")]);
  const reload = () => usersPage();
  const name = input("user-name", { "data-field": "name", autocomplete: "off" });
  const password = input("user-password", { type: "password", "data-field": "password", autocomplete: "new-password" });
  const admin = h("input", { type: "checkbox", id: "user-admin" });
  const addUser = h("form", { id: "user-form" }, field("User name", name), field("Password", password, "At least 12 characters."),
    h("div", { class: "choice" }, admin, h("label", { for: "user-admin" }, "Administrator (every vault, users and roles)")),
    h("p", {}, h("button", { type: "submit", id: "user-add" }, "Add user")));
  addUser.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(main.querySelector("#user-add"), async () => {
      await api("POST", "/users", { name: name.value.trim(), password: password.value, is_admin: admin.checked });
      await reload();
      say(`User ${name.value.trim()} added.`);
    });
  });
  const roleUser = select("role-user", users.map((u) => u.name), users[0]?.name, { "data-field": "user" });
  const roleVault = select("role-vault", [["*", "every vault (*)"], ...vaults.map((v) => v.name)], "*", { "data-field": "vault" });
  const role = select("role-role", [["reader", "Reader: sees"], ["backup_operator", "Backup operator: backs up, restores"], ["contributor", "Contributor: also manages items, policies, data"], ["owner", "Owner: also access and immutability"]], "reader", { "data-field": "role" });
  const addRole = h("form", { id: "role-form" }, field("User", roleUser), field("Vault", roleVault), field("Role", role),
    h("p", {}, h("button", { type: "submit", id: "role-add" }, "Assign role")));
  addRole.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(main.querySelector("#role-add"), async () => {
      await api("POST", "/roles", { user: roleUser.value, vault: roleVault.value, role: role.value });
      await reload();
      say(`${roleUser.value} is ${role.value} on ${roleVault.value}.`);
    });
  });
  put(main, h("h1", {}, "Users and roles"),
    section("users-list", "Users",
      table("Users", ["User", "Administrator", "Created", "Actions"],
        users.map((u) => h("tr", {}, h("td", {}, u.name), h("td", {}, u.is_admin ? "yes" : "no"), h("td", {}, when(u.created)),
          h("td", { class: "actions" }, h("button", { type: "button", class: "secondary", "aria-label": `Set the password of ${u.name}`, onclick: (ev) => act(ev.target, async () => {
            const password = await askPassword(`New password for ${u.name}`);
            if (password === null) return;
            await api("PUT", `/users/${enc(u.name)}/password`, { password });
            say(`The password of ${u.name} was changed; their sessions ended.`);
          }) }, "Set password"), " ",
          h("button", { type: "button", class: "secondary", "aria-label": `Remove user ${u.name}`, onclick: (ev) => act(ev.target, async () => {
            if (await ask(`Remove user ${u.name}?`, "Their sessions, tokens and roles go with them.", [["remove", "Remove", "danger"]]) !== "remove") return;
            await api("DELETE", `/users/${enc(u.name)}`);
            await reload();
            say(`User ${u.name} removed.`);
          }) }, "Remove")))),
        "No users.")),
    section("roles-list", "Roles",
      table("Roles", ["User", "Vault", "Role", "Actions"],
        roles.map((r) => h("tr", {}, h("td", {}, r.user), h("td", {}, r.vault), h("td", {}, r.role),
          h("td", {}, h("button", { type: "button", class: "secondary", "aria-label": `Remove the role of ${r.user} on ${r.vault}`, onclick: (ev) => act(ev.target, async () => {
            await api("DELETE", `/roles/${r.id}`);
            await reload();
            say(`Role removed.`);
          }) }, "Remove")))),
        "No roles assigned: only administrators have access.")),
    section("user-add-title", "Add a user", addUser),
    section("role-add-title", "Assign a role", addRole));
}

// ---- notifications -------------------------------------------------------------------

function destinationText(d) {
  return d.kind === "webhook" ? `webhook ${d.url}` : `email to ${d.to.join(", ")} via ${d.smtp_host}:${d.smtp_port}`;
}

async function notificationsPage(query) {
  const targets = await api("GET", "/notifications/targets");
  const shown = query.get("target");
  const reload = () => notificationsPage(query);
  let deliveries = null;
  const target = targets.find((t) => String(t.id) === shown);
  if (target) {
    const list = await api("GET", `/notifications/targets/${target.id}/deliveries`);
    deliveries = section("deliveries-title", `Deliveries to ${target.name}`,
      table("Deliveries", ["Event", "State", "Attempts", "Created", "Sent", "Last error"],
        list.map((d) => h("tr", {},
          h("td", {}, d.event), h("td", { class: d.state === "failed" ? "bad" : d.state === "sent" ? "ok" : null }, d.state),
          h("td", {}, String(d.attempts)), h("td", {}, when(d.created)), h("td", {}, when(d.sent)), h("td", {}, d.last_error || "—"))),
        "Nothing sent to it yet."));
  }
  const name = input("target-name", { "data-field": "name", autocomplete: "off" });
  const kind = select("target-kind", [["webhook", "Webhook (signed POST)"], ["email", "Email (SMTP)"]], "webhook");
  const url = input("target-url", { "data-field": "destination.url", placeholder: "https://hooks.example.com/coffer", spellcheck: "false" });
  const host = input("target-smtp-host", { "data-field": "destination.smtp_host", spellcheck: "false" });
  const port = input("target-smtp-port", { type: "number", value: "587" });
  const security = select("target-security", [["starttls", "STARTTLS"], ["tls", "TLS (port 465)"], ["none", "None (a relay on this machine)"]], "starttls");
  const user = input("target-username", { autocomplete: "off" });
  const from = input("target-from", { "data-field": "destination.from" });
  const to = input("target-to", { "data-field": "destination.to", placeholder: "ops@example.com, oncall@example.com" });
  const secret = input("target-secret", { type: "password", autocomplete: "new-password" });
  const severity = select("target-severity", [["info", "Info and above"], ["warning", "Warning and above"], ["error", "Error and above"], ["critical", "Critical only"]], "warning");
  const events = [["alert_raised", "Alerts raised"], ["alert_resolved", "Alerts resolved"], ["job_failed", "Jobs failed"], ["job_succeeded", "Jobs succeeded"]];
  const refresh = () => {
    const email = kind.value === "email";
    url.disabled = email;
    for (const el of [host, port, security, user, from, to]) el.disabled = !email;
  };
  const form = h("form", { id: "target-form" },
    h("div", { class: "grid" }, field("Name", name), field("Kind", kind), field("Minimum severity", severity)),
    field("Webhook URL", url),
    h("div", { class: "grid" }, field("SMTP host", host), field("SMTP port", port), field("Security", security),
      field("SMTP user", user), field("From", from), field("To", to, "Addresses separated by commas.")),
    field("Secret", secret, "The webhook's signing key (HMAC-SHA256) or the SMTP password. Kept sealed, never shown again."),
    h("fieldset", {}, h("legend", {}, "Events (none ticked: all)"), events.map(([v, l]) => checkbox(`target-event-${v}`, l, false))),
    h("p", {}, h("button", { type: "submit", id: "target-add" }, "Add target")));
  form.addEventListener("change", refresh);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(main.querySelector("#target-add"), async () => {
      const destination = kind.value === "webhook"
        ? { kind: "webhook", url: url.value.trim() }
        : { kind: "email", smtp_host: host.value.trim(), smtp_port: Number(port.value) || 587, security: security.value,
          username: user.value.trim() || undefined, from: from.value.trim(), to: to.value.split(",").map((x) => x.trim()).filter(Boolean) };
      await api("POST", "/notifications/targets", {
        name: name.value.trim(), destination, secret: secret.value || undefined, min_severity: severity.value,
        events: events.map(([v]) => v).filter((v) => main.querySelector(`#target-event-${v}`).checked),
      });
      await reload();
      say(`Target ${name.value.trim()} added.`);
    });
  });
  put(main, h("h1", {}, "Notifications"),
    section("targets-title", "Targets",
      table("Targets", ["Target", "Sends to", "Severity", "Events", "Secret", "Actions"],
        targets.map((t) => h("tr", {},
          h("td", {}, t.name), h("td", {}, destinationText(t.destination)), h("td", {}, `${t.min_severity} and above`),
          h("td", {}, t.events.join(", ") || "all"), h("td", {}, t.has_secret ? "stored" : "none"),
          h("td", { class: "actions" },
            h("a", { href: `#/notifications?target=${t.id}`, "aria-label": `Deliveries to ${t.name}` }, "Deliveries"), " ",
            h("button", { type: "button", class: "secondary", "aria-label": `Remove target ${t.name}`, onclick: (ev) => act(ev.target, async () => {
              await api("DELETE", `/notifications/targets/${t.id}`);
              go("#/notifications", `Target ${t.name} removed.`);
            }) }, "Remove")))),
        "No targets: alerts are only shown here.")),
    deliveries,
    section("target-add-title", "Add a target", form));
  refresh();
}

// ---- fleet: agents, registration tokens, bandwidth ---------------------------

function agentState(a) {
  if (a.state === "disabled") return h("span", { class: "bad" }, "Disabled");
  if (a.unreachable) return h("span", { class: "bad" }, "Unreachable");
  return h("span", { class: "ok" }, a.last_contact ? "In contact" : "Never in contact");
}

// The hosts and what they protect, for the fleet page and the dashboard.
function agentsTable(agents, actions) {
  return table("Agents", ["Agent", "Host", "Coffer", "Vault", "Status", "Last contact", "Items", "Last successful backup", actions ? "Actions" : null].filter(Boolean),
    agents.map((a) => h("tr", { "data-agent": a.name },
      h("td", {}, a.name),
      h("td", {}, a.host.hostname, h("br"), h("span", { class: "hint" }, a.host.os), a.address ? h("br") : null, a.address ? h("span", { class: "hint" }, a.address) : null),
      h("td", {}, a.host.version), h("td", {}, a.vault), h("td", { class: "agent-status" }, agentState(a)),
      h("td", {}, when(a.last_contact)), h("td", {}, a.items.length ? a.items.join(", ") : "none"),
      h("td", {}, when(a.last_success)),
      actions ? h("td", { class: "actions" }, actions(a)) : null)),
    "No agent is registered yet: create a registration token below and run coffer agent register on the host.");
}

const RATE_UNITS = [["K", 1 << 10], ["M", 1 << 20], ["G", 1 << 30]];
function rateText(r) {
  if (r === null || r === undefined) return "";
  for (const [u, n] of [...RATE_UNITS].reverse()) if (r >= n && r % n === 0) return `${r / n}${u}`;
  return String(r);
}
function parseRate(text, field) {
  const t = text.trim();
  if (!t || t.toLowerCase() === "unlimited") return null;
  const m = /^(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?$/i.exec(t);
  if (!m || Number(m[1]) <= 0) throw new ApiProblem(400, { error: { field, message: `"${t}" is not a rate`, hint: "write it like 512K, 4M or 1G (bytes per second), or leave it empty for no limit" } });
  const unit = RATE_UNITS.find(([u]) => u === m[2].toUpperCase());
  return Math.round(Number(m[1]) * (unit ? unit[1] : 1));
}

function bandwidthForm(limits, reload) {
  const days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
  const rate = (id, value, label) => field(label, input(id, { value: rateText(value), "data-field": id, placeholder: "unlimited", spellcheck: "false" }));
  const form = h("form", { id: "bandwidth-form" },
    h("fieldset", {}, h("legend", {}, "Work days"),
      days.map((d) => checkbox(`work-${d}`, d, limits.work_days.includes(d)))),
    h("div", { class: "grid" },
      field("Work hours start", input("work-start", { value: limits.work_start, "data-field": "work_start" })),
      field("Work hours end", input("work-end", { value: limits.work_end, "data-field": "work_end" })),
      field("Time zone", input("work-zone", { value: limits.time_zone, "data-field": "time_zone" })),
      rate("per-agent-work", limits.per_agent.work_hours, "Each agent, in work hours"),
      rate("per-agent-other", limits.per_agent.other_hours, "Each agent, other hours"),
      h("span"),
      rate("overall-work", limits.overall.work_hours, "All agents, in work hours"),
      rate("overall-other", limits.overall.other_hours, "All agents, other hours")),
    h("p", { class: "help" }, "Rates in bytes per second, like 512K, 4M or 1G; empty is unlimited. Restores are never held back."),
    h("p", {}, h("button", { type: "submit", id: "bandwidth-save" }, "Save limits")));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(main.querySelector("#bandwidth-save"), async () => {
      const v = (id) => main.querySelector(`#${id}`).value;
      await api("PUT", "/agents/bandwidth", {
        ...limits,
        work_days: days.filter((d) => main.querySelector(`#work-${d}`).checked),
        work_start: v("work-start").trim(), work_end: v("work-end").trim(), time_zone: v("work-zone").trim(),
        per_agent: { work_hours: parseRate(v("per-agent-work"), "per-agent-work"), other_hours: parseRate(v("per-agent-other"), "per-agent-other") },
        overall: { work_hours: parseRate(v("overall-work"), "overall-work"), other_hours: parseRate(v("overall-other"), "overall-other") },
      });
      await reload();
      say("Bandwidth limits saved; they apply to uploads under way too.");
    });
  });
  return form;
}

async function fleetPage() {
  const [agents, vaults, limits] = await Promise.all([api("GET", "/agents"), api("GET", "/vaults"), api("GET", "/agents/bandwidth")]);
  // Tokens are an administrator's; others see the fleet only.
  const tokens = await api("GET", "/agents/tokens").catch(() => null);
  const reload = () => fleetPage();
  const change = (a, action, label, done) => h("button", { type: "button", class: "secondary", "aria-label": `${label} agent ${a.name}`,
    onclick: (ev) => act(ev.target, async () => {
      await api("POST", `/agents/${enc(a.name)}`, { action });
      await reload();
      say(done);
    }) }, label);
  const actions = tokens === null ? null : (a) => [
    a.state === "disabled" ? change(a, "enable", "Enable", `Agent ${a.name} enabled.`) : change(a, "disable", "Disable", `Agent ${a.name} disabled: everything it sends is refused.`), " ",
    change(a, "rekey", "Re-key", `Agent ${a.name} gets a new secret at its next contact.`), " ",
    h("button", { type: "button", class: "secondary", "aria-label": `Remove agent ${a.name}`, onclick: (ev) => act(ev.target, async () => {
      const ok = await ask(`Remove agent ${a.name}?`, "Its credential is revoked in the vault and it is refused at once. Its points stay in the vault. Items that live on it must be removed first.", [["remove", "Remove agent", "danger"]]);
      if (!ok) return;
      await api("DELETE", `/agents/${enc(a.name)}`);
      await reload();
      say(`Agent ${a.name} removed; its credential is revoked.`);
    }) }, "Remove")];

  const vaultNames = vaults.map((v) => v.name);
  const tokenVault = select("token-vault", vaultNames, vaultNames[0], { "data-field": "vault" });
  const tokenHours = input("token-hours", { type: "number", min: 1, max: 720, value: "24", "data-field": "expires_in_secs" });
  const made = h("div", { id: "token-made" });
  const tokenForm = h("form", { id: "token-form" }, field("Vault the host writes to", tokenVault),
    field("Valid for (hours)", tokenHours, "The token works once, until then."),
    h("p", {}, h("button", { type: "submit", id: "token-create" }, "Create registration token")), made);
  tokenForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    act(main.querySelector("#token-create"), async () => {
      const t = await api("POST", "/agents/tokens", { vault: tokenVault.value, expires_in_secs: Math.round(Number(tokenHours.value) * 3600) || undefined });
      put(made,
        h("p", {}, "Shown once. On the host, run:"),
        h("code", { class: "key", id: "token-command" }, `coffer --server ${location.origin} agent register --token '${t.text}'`),
        h("p", { class: "help" }, "then start it with coffer agent run (or the coffer-agent systemd unit)."),
        h("code", { class: "key", id: "token-text", hidden: true }, t.text));
      say(`Registration token ${t.token.id} created for vault ${t.token.vault}.`);
    });
  });

  put(main,
    h("h1", {}, "Fleet"),
    section("agents-title", "Agents", agentsTable(agents, actions)),
    tokens === null ? null : section("tokens-title", "Registration tokens",
      table("Registration tokens", ["Token", "Vault", "Created by", "Expires", "Used by", "Actions"],
        tokens.map((t) => h("tr", {},
          h("td", {}, String(t.id)), h("td", {}, t.vault), h("td", {}, t.created_by), h("td", {}, when(t.expires)),
          h("td", {}, t.used_by || "unused"),
          h("td", { class: "actions" }, t.used_by ? "" : h("button", { type: "button", class: "secondary", "aria-label": `Withdraw registration token ${t.id}`,
            onclick: (ev) => act(ev.target, async () => {
              await api("DELETE", `/agents/tokens/${t.id}`);
              await reload();
              say(`Registration token ${t.id} withdrawn.`);
            }) }, "Withdraw")))),
        "No registration token."),
      tokenForm),
    tokens === null ? null : section("bandwidth-title", "Upload bandwidth", bandwidthForm(limits, reload)),
  );
  // Hosts come and go: the status column follows without a reload.
  poll(async () => {
    const fresh = await api("GET", "/agents");
    for (const a of fresh) {
      const cell = main.querySelector(`tr[data-agent="${CSS.escape(a.name)}"] .agent-status`);
      if (cell) put(cell, agentState(a));
    }
    if (fresh.length !== agents.length) await reload();
    return fresh.length === agents.length;
  }, 2000);
}

// ---- routing ---------------------------------------------------------------------

const pages = {
  dashboard: dashboardPage,
  enable: enablePage,
  vaults: vaultsPage,
  vault: (q, name) => vaultPage(name),
  items: itemsPage,
  policies: policiesPage,
  jobs: jobsPage,
  job: (q, id) => jobPage(Number(id)),
  points: pointsPage,
  point: (q, vault, point) => pointPage(vault, point, q),
  alerts: alertsPage,
  users: usersPage,
  notifications: notificationsPage,
  fleet: fleetPage,
};

// "#/point/v/abc?path=/etc" → ["point", ["v", "abc"], {path: "/etc"}].
function parseHash() {
  const [path, search] = location.hash.replace(/^#\/?/, "").split("?");
  const [page, ...args] = path.split("/").map(decodeURIComponent);
  return [page || "dashboard", args, new URLSearchParams(search || "")];
}

async function route() {
  pageEpoch++;
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
  const [name, args, query] = parseHash();
  const page = pages[name] || dashboardPage;
  const navName = { vault: "vaults", job: "jobs", point: "points" }[name] || name;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === `#/${navName}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  try {
    await page(query, ...args);
    document.title = `${main.querySelector("h1")?.textContent || "Coffer"} — Coffer`;
    main.focus();
    if (pendingNotice) notice.textContent = pendingNotice;
    pendingNotice = null;
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
  // One render: the hash change routes (go routes itself when the hash is
  // already there).
  go("#/login");
});
window.addEventListener("hashchange", () => { clearError(); notice.textContent = ""; route(); });
route();
