// The Erth Sync web demo: todos in lists on the `erth-sync` package, plus a
// sync panel. No build step: plain ES modules, and "erth-sync" resolves
// through the page's import map to the built package.
//
// The page declares its own schema (SCHEMA below): `todos` (the columns the
// package's `db.todos` API uses) and `lists`; version 2 gives each todo a
// `list_id`. The Lists card is a live query (`db.watch`) in plain SQL.
//
// Configuration, from the page's address:
//   #config=KEY   the server URL (and token) come from ./config/KEY.json,
//                 which `cargo xtask demo` serves under this per-run secret
//                 (it prints the page's address with it); without it, or
//                 without that file: local-only.
//   ?url=SERVER   sync with SERVER instead, in a database of its own (its
//                 name ends with a hash of SERVER), so a link to another
//                 server can neither read this device's todos nor slip rows
//                 into them; `?url=` alone: this device's database, local-only.
//   ?device=NAME  a separate database (and label) in this browser, to play
//                 two devices in one browser profile.
//   ?schema=1     open with the previous schema version (no list per todo),
//                 as an older app would; it syncs with version-2 devices.
//                 (A database opened with version 2 cannot go back: use a
//                 new ?device= for it.)
//
// Every write goes to the local database first and shows at once; the
// package syncs in the background (autoSync). The page re-reads the list on
// every change event (local writes and pulled rows) and redraws the sync
// panel on every status event.

import { ErthDb, ErthError, ErrorCode } from "erth-sync";

/** Sync 300 ms after a local write, and every 3 s to pull other devices' changes. */
const AUTO_SYNC = { debounceMs: 300, intervalMs: 3000 };
/** "Syncing…" shows only for syncs that take longer than this (no flicker). */
const SYNCING_DELAY_MS = 250;
const DEVICE_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
/** The config's key in the page's fragment (`#config=KEY`), as `cargo xtask demo` makes it. */
const CONFIG_KEY_PATTERN = /^[0-9a-f]{32}$/;

/** Version 1 of the app's schema: todos and lists, not yet related. */
const SCHEMA_V1 = {
  tables: {
    todos: {
      columns: {
        title: { type: "text", notNull: true },
        is_completed: { type: "integer", notNull: true, default: 0 },
      },
    },
    lists: {
      columns: {
        name: { type: "text", notNull: true },
      },
    },
  },
};
/**
 * Version 2 adds a column, the list a todo belongs to (NULL: none), and a
 * table of private notes whose text is end-to-end encrypted: sealed on the
 * device, so the server's table holds only ciphertext.
 */
const SCHEMA_V2 = {
  tables: {
    ...SCHEMA_V1.tables,
    todos: {
      columns: { ...SCHEMA_V1.tables.todos.columns, list_id: { type: "text" } },
      indexes: [["list_id"]],
    },
    notes: {
      columns: {
        body: { type: "text", notNull: true, default: "", encrypted: true },
      },
    },
  },
};
/** The notes card's live query (version 2). */
const NOTES_SQL = "SELECT id, body FROM notes ORDER BY id";
/** Where a page without a served key keeps its recovery phrase (this browser's key). */
const PHRASE_STORAGE = "erth-demo-recovery-phrase";
/** The Lists card's live query, per schema version. */
const LISTS_SQL = {
  1: "SELECT id, name, NULL AS open FROM lists ORDER BY name COLLATE NOCASE, id",
  2: `SELECT l.id, l.name, count(t.id) AS open
        FROM lists AS l LEFT JOIN todos AS t ON t.list_id = l.id AND t.is_completed = 0
       GROUP BY l.id ORDER BY l.name COLLATE NOCASE, l.id`,
};

const $ = (id) => document.getElementById(id);
const ui = {
  banner: $("banner"),
  deviceName: $("device-name"),
  counts: $("counts"),
  form: $("add-form"),
  newTitle: $("new-title"),
  addButton: document.querySelector("#add-form button"),
  newList: $("new-list"),
  lists: $("lists"),
  listForm: $("list-form"),
  newListName: $("new-list-name"),
  addListButton: document.querySelector("#list-form button"),
  notesCard: $("notes-card"),
  notes: $("notes"),
  noteForm: $("note-form"),
  newNote: $("new-note"),
  addNoteButton: document.querySelector("#note-form button"),
  notesKey: $("notes-key"),
  schemaVersion: $("schema-version"),
  unknownRow: $("unknown-row"),
  unknown: $("unknown"),
  list: $("list"),
  empty: $("empty"),
  state: $("state"),
  stateText: $("state-text"),
  online: $("online"),
  pending: $("pending"),
  lastSync: $("last-sync"),
  lastError: $("last-error"),
  server: $("server"),
  syncNow: $("sync-now"),
  note: $("note"),
};

/** Everything the page shows. */
const app = {
  db: null,
  todos: [],
  /** The Lists card's rows: `{ id, name, open }`. */
  lists: [],
  /** The schema version this page opened with (1 or 2). */
  version: 2,
  /** The notes card's rows: `{ id, body }`, as this device holds them. */
  notes: [],
  /** What the server's `notes` table holds: body by id (ciphertext). */
  serverNotes: new Map(),
  /** The server URL and token, to show what its notes table holds. */
  remote: null,
  status: null,
  /** The Online switch (the user's choice; the browser may still be offline). */
  online: true,
  /** Id of the todo whose title is being edited, or null. */
  editing: null,
  syncingVisible: false,
  syncingTimer: null,
};

// ---- configuration ----

/** The first 12 hex digits of the SHA-256 of `text`. */
async function shortHash(text) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  return Array.from(digest.subarray(0, 6), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `{ name, label, version, url, authToken }` from the address and the served config. */
async function loadConfig() {
  const params = new URLSearchParams(location.search);
  const device = (params.get("device") ?? "").trim();
  if (device !== "" && !DEVICE_PATTERN.test(device)) {
    throw new Error("?device= takes 1-32 letters, digits, '-' or '_'.");
  }
  const name = device === "" ? "erth-demo" : `erth-demo-${device}`;
  const label = device === "" ? "this browser" : device;
  const schema = params.get("schema") ?? "2";
  if (schema !== "1" && schema !== "2") throw new Error("?schema= takes 1 or 2.");
  const version = Number(schema);
  if (params.has("url")) {
    const url = params.get("url").trim();
    // `?url=` alone: this device's database, local-only. Another server: a
    // database of its own, never this device's.
    if (url === "") return { name, label, version, url, authToken: null, columnKey: null };
    return {
      name: `${name}-url-${await shortHash(url)}`,
      label: `${label} (own database for ?url=)`,
      version,
      url,
      authToken: null,
      columnKey: null,
    };
  }
  const key = new URLSearchParams(location.hash.slice(1)).get("config") ?? "";
  let served = {};
  if (CONFIG_KEY_PATTERN.test(key)) {
    try {
      const response = await fetch(`./config/${key}.json`, { cache: "no-store" });
      if (response.ok) served = await response.json();
    } catch {
      // Served by a plain static server: no config, local-only.
    }
  }
  const text = (value) => (typeof value === "string" && value !== "" ? value : null);
  return {
    name,
    label,
    version,
    url: text(served.url) ?? "",
    authToken: text(served.authToken),
    columnKey: text(served.columnKey),
  };
}

/**
 * The key of the private notes: the one `cargo xtask demo` serves (every
 * device of its server shares it), else this browser's recovery phrase,
 * made once and kept in its storage. Returns `{ key, source }`.
 */
async function notesKey(config) {
  if (config.columnKey) return { key: config.columnKey, source: "the demo server's config" };
  let phrase = null;
  try {
    phrase = localStorage.getItem(PHRASE_STORAGE);
  } catch {
    // Storage blocked: a phrase for this visit only.
  }
  if (!phrase) {
    phrase = await ErthDb.newRecoveryPhrase();
    try {
      localStorage.setItem(PHRASE_STORAGE, phrase);
    } catch {
      // As above.
    }
  }
  return { key: phrase, source: "this browser's recovery phrase" };
}

// ---- small helpers ----

function message(error) {
  if (error instanceof ErthError) {
    if (error.code === ErrorCode.DatabaseLocked) {
      return `This device's database is open in another tab that cannot share it (${error.message}). Reload that tab, or add ?device=2 to the address to open a second database in this browser.`;
    }
    return error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

function quoted(title) {
  return `“${title}”`;
}

function showBanner(text) {
  ui.banner.textContent = text;
  ui.banner.hidden = false;
}

/** Shows a one-line message under Sync now; `data-seq` counts them (tests wait on it). */
function note(text, isError = false) {
  ui.note.dataset.seq = String(Number(ui.note.dataset.seq ?? 0) + 1);
  ui.note.textContent = text;
  ui.note.classList.toggle("is-error", isError);
}

function ago(ms) {
  const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  return new Date(ms).toLocaleString();
}

/** Runs a todo operation; failures show in the sync panel's note. */
async function act(what, operation) {
  try {
    await operation();
  } catch (e) {
    note(`Could not ${what}: ${message(e)}`, true);
  }
  refreshList();
}

// ---- the list ----

let refreshing = null;
let refreshAgain = false;

/** Re-reads the list (calls made while one runs coalesce into one more). */
function refreshList() {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      try {
        app.todos = await app.db.todos.listActive();
        renderList();
      } catch (e) {
        note(`Could not read the list: ${message(e)}`, true);
      }
    } while (refreshAgain);
    refreshing = null;
  })();
  return refreshing;
}

const SVG_NS = "http://www.w3.org/2000/svg";
const ICONS = {
  rename: "M4 20h4L19 9l-4-4L4 16v4zM14 6l4 4",
  save: "M5 12.5l4.5 4.5L19 7.5",
  delete: "M5 7h14M10 7V5h4v2M7 7l1 13h8l1-13M10.5 11v5M13.5 11v5",
};

function icon(name) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(SVG_NS, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

/** One list row's elements, by todo id. */
const rows = new Map();

function createRow(id) {
  const li = document.createElement("li");
  li.className = "item";
  li.dataset.id = id;

  const check = document.createElement("input");
  check.type = "checkbox";
  check.className = "check";
  check.id = `todo-${id}`;
  check.addEventListener("change", () =>
    act("update the todo", () => app.db.todos.setCompleted(id, check.checked)),
  );

  const title = document.createElement("label");
  title.className = "title";
  title.htmlFor = check.id;

  const edit = document.createElement("input");
  edit.type = "text";
  edit.className = "edit";
  edit.maxLength = 500;
  edit.hidden = true;
  edit.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      commitEdit(id, { focusAfter: true });
    } else if (e.key === "Escape") {
      e.preventDefault();
      stopEdit(id, { focusAfter: true });
    }
  });
  edit.addEventListener("blur", (e) => {
    // Moving to this row's Save button saves through its click instead.
    if (e.relatedTarget !== row.rename && app.editing === id) commitEdit(id, { focusAfter: false });
  });

  const rename = document.createElement("button");
  rename.type = "button";
  rename.className = "icon-button rename";
  rename.addEventListener("click", () => {
    if (app.editing === id) commitEdit(id, { focusAfter: true });
    else startEdit(id);
  });

  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "icon-button delete";
  remove.append(icon("delete"));
  remove.addEventListener("click", () => removeTodo(id));

  li.append(check, title, edit, rename, remove);
  const row = { li, check, title, edit, rename, remove, todo: null };
  return row;
}

function updateRow(row, todo) {
  row.todo = todo;
  row.li.classList.toggle("is-done", todo.completed);
  row.check.checked = todo.completed;
  row.title.textContent = todo.title;
  row.check.setAttribute("aria-label", todo.title);
  row.remove.setAttribute("aria-label", `Delete ${quoted(todo.title)}`);
  const editing = app.editing === todo.id;
  row.li.classList.toggle("is-editing", editing);
  row.title.hidden = editing;
  row.edit.hidden = !editing;
  row.rename.replaceChildren(icon(editing ? "save" : "rename"));
  row.rename.setAttribute("aria-label", editing ? "Save the new title" : `Rename ${quoted(todo.title)}`);
  row.edit.setAttribute("aria-label", `New title for ${quoted(todo.title)}`);
}

function renderList() {
  const live = new Set(app.todos.map((t) => t.id));
  for (const [id, row] of rows) {
    if (!live.has(id)) {
      row.li.remove();
      rows.delete(id);
      if (app.editing === id) app.editing = null;
    }
  }
  let previous = null;
  for (const todo of app.todos) {
    let row = rows.get(todo.id);
    if (!row) {
      row = createRow(todo.id);
      rows.set(todo.id, row);
    }
    updateRow(row, todo);
    const expected = previous ? previous.nextSibling : ui.list.firstChild;
    if (expected !== row.li) ui.list.insertBefore(row.li, expected);
    previous = row.li;
  }
  const done = app.todos.filter((t) => t.completed).length;
  const open = app.todos.length - done;
  const counts = app.todos.length === 0 ? "" : `${open} open · ${done} done`;
  // A live region: only write when the text changes, so it is announced once.
  if (ui.counts.textContent !== counts) ui.counts.textContent = counts;
  ui.empty.textContent = "Nothing to do. Add a todo above.";
  ui.empty.hidden = app.todos.length > 0;
}

function startEdit(id) {
  const row = rows.get(id);
  if (!row) return;
  if (app.editing !== null && app.editing !== id) commitEdit(app.editing, { focusAfter: false });
  app.editing = id;
  row.edit.value = row.todo.title;
  updateRow(row, row.todo);
  row.edit.focus();
  row.edit.select();
}

function stopEdit(id, { focusAfter }) {
  if (app.editing !== id) return;
  app.editing = null;
  const row = rows.get(id);
  if (!row) return;
  updateRow(row, row.todo);
  if (focusAfter) row.rename.focus();
}

function commitEdit(id, { focusAfter }) {
  const row = rows.get(id);
  if (!row || app.editing !== id) return;
  const title = row.edit.value.trim();
  const changed = title !== "" && title !== row.todo.title;
  if (changed) {
    // Show the new title at once; the change event re-reads the row.
    row.todo = { ...row.todo, title };
  }
  stopEdit(id, { focusAfter });
  if (changed) act("rename the todo", () => app.db.todos.rename(id, title));
}

function removeTodo(id) {
  const row = rows.get(id);
  if (!row) return;
  // Keep keyboard focus in the list: the next row, else the previous, else the input.
  const neighbour = row.li.nextElementSibling ?? row.li.previousElementSibling;
  const focusTarget = neighbour ? rows.get(neighbour.dataset.id)?.remove : ui.newTitle;
  if (row.li.contains(document.activeElement)) focusTarget?.focus();
  act("delete the todo", () => app.db.todos.delete(id));
}

// ---- lists (a live query) ----

function renderLists(rows) {
  app.lists = rows;
  const items = rows.map((list) => {
    const li = document.createElement("li");
    li.dataset.id = list.id;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = list.name;
    li.append(name);
    if (list.open !== null) {
      const open = document.createElement("span");
      open.className = "open";
      open.textContent = `${list.open} open`;
      li.append(open);
    }
    return li;
  });
  ui.lists.replaceChildren(...items);
  if (rows.length === 0) {
    const li = document.createElement("li");
    li.className = "empty-lists";
    li.textContent = "No lists yet.";
    ui.lists.append(li);
  }
  // The add form's list picker (version 2: a todo can belong to a list).
  const chosen = ui.newList.value;
  const options = [new Option("No list", "")];
  for (const list of rows) options.push(new Option(list.name, list.id));
  ui.newList.replaceChildren(...options);
  ui.newList.value = rows.some((l) => l.id === chosen) ? chosen : "";
}

function addList(name) {
  act("add the list", () => app.db.execute("INSERT INTO lists (name) VALUES (?)", [name]));
}

function addTodo(title) {
  const listId = app.version === 2 ? ui.newList.value : "";
  if (listId === "") {
    act("add the todo", () => app.db.todos.add(title));
  } else {
    // Plain SQL on the synced table: the id is a UUIDv7 made by the engine.
    act("add the todo", () =>
      app.db.execute("INSERT INTO todos (title, list_id) VALUES (?, ?)", [title, listId]),
    );
  }
}

// ---- private notes (end-to-end encrypted) ----

function renderNotes(rows) {
  app.notes = rows;
  const items = rows.map((note) => {
    const tr = document.createElement("tr");
    tr.dataset.id = note.id;
    const mine = document.createElement("td");
    mine.className = "plain";
    mine.textContent = note.body;
    const theirs = document.createElement("td");
    theirs.className = "sealed";
    const sealed = app.serverNotes.get(note.id);
    if (sealed === undefined) {
      theirs.textContent = "not on the server yet";
      theirs.classList.add("pending");
      delete theirs.dataset.value;
    } else {
      theirs.textContent = sealed.length > 28 ? `${sealed.slice(0, 24)}… (${sealed.length} chars)` : sealed;
      theirs.title = sealed;
      theirs.dataset.value = sealed;
    }
    tr.append(mine, theirs);
    return tr;
  });
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 2;
    td.className = "empty-notes";
    td.textContent = "No notes yet.";
    tr.append(td);
    items.push(tr);
  }
  ui.notes.replaceChildren(...items);
}

/** The server's hrana endpoint for the page's own reads, or null for local-only. */
function pipelineUrl() {
  const url = app.remote?.url;
  if (!url) return null;
  return `${url.replace(/^libsql:\/\//, "https://").replace(/\/+$/, "")}/v2/pipeline`;
}

let readingServer = null;
let readServerAgain = false;

/**
 * Reads what the server's `notes` table holds (one Hrana request, as any
 * client with the token could) and redraws the notes card beside it.
 */
function refreshServerNotes() {
  const endpoint = pipelineUrl();
  if (!endpoint) return null;
  if (readingServer) {
    // A sync ended during the read: read once more after it.
    readServerAgain = true;
    return readingServer;
  }
  readingServer = (async () => {
    try {
      const headers = { "content-type": "application/json" };
      if (app.remote.authToken) headers.authorization = `Bearer ${app.remote.authToken}`;
      const post = (body) => fetch(endpoint, { method: "POST", headers, body: JSON.stringify(body) });
      // One execute without a close (tursodb answers only execute and
      // batch); a server that kept the stream open (a baton) is told to
      // close it.
      const response = await post({ requests: [{ type: "execute", stmt: { sql: "SELECT id, body FROM notes" } }] });
      if (!response.ok) return;
      const answer = await response.json();
      if (answer.baton) post({ baton: answer.baton, requests: [{ type: "close" }] }).catch(() => {});
      const result = answer.results?.[0]?.response?.result;
      // Before the first sync the server has no notes table: nothing to show.
      if (!result) return;
      app.serverNotes = new Map(result.rows.map(([id, body]) => [id.value, body.value ?? ""]));
      renderNotes(app.notes);
    } catch {
      // Offline, or the server is away: the card keeps what it last read.
    } finally {
      readingServer = null;
      if (readServerAgain) {
        readServerAgain = false;
        refreshServerNotes();
      }
    }
  })();
  return readingServer;
}

function addNote(body) {
  act("add the note", () => app.db.execute("INSERT INTO notes (body) VALUES (?)", [body]));
}

// ---- the sync panel ----

async function refreshStatus() {
  try {
    renderStatus(await app.db.status());
  } catch (e) {
    note(`Could not read the sync status: ${message(e)}`, true);
  }
}

function renderLastSync() {
  const at = app.status?.lastSyncAt ?? null;
  if (at === null) {
    ui.lastSync.textContent = app.status?.remoteUrl ? "never" : "–";
    delete ui.lastSync.dataset.at;
    ui.lastSync.removeAttribute("title");
    return;
  }
  ui.lastSync.textContent = ago(at);
  ui.lastSync.dataset.at = String(at);
  ui.lastSync.title = new Date(at).toLocaleString();
}

function renderStatus(status) {
  const synced = status.lastSyncAt !== null && status.lastSyncAt !== app.status?.lastSyncAt;
  app.status = status;
  if (synced && app.version === 2) refreshServerNotes();
  const remote = status.remoteUrl !== null;
  ui.pending.textContent = String(status.pendingChanges);
  ui.pending.dataset.count = String(status.pendingChanges);
  renderLastSync();
  ui.lastError.textContent = status.lastError ?? "none";
  ui.lastError.classList.toggle("is-error", status.lastError !== null);
  ui.lastError.parentElement.classList.toggle("stack", status.lastError !== null);
  ui.server.textContent = remote ? status.remoteUrl : "none: local only";
  const unknown = status.unknownServerColumns ?? [];
  ui.unknownRow.hidden = unknown.length === 0;
  ui.unknown.textContent = unknown.join(", ");
  ui.online.disabled = !remote;
  ui.online.setAttribute("aria-checked", String(remote && app.online));
  ui.syncNow.disabled = !remote || !status.online;

  clearTimeout(app.syncingTimer);
  if (status.syncing && !app.syncingVisible) {
    app.syncingTimer = setTimeout(() => {
      app.syncingVisible = true;
      renderState();
    }, SYNCING_DELAY_MS);
  } else if (!status.syncing) {
    app.syncingVisible = false;
  }
  renderState();
}

/** The one-word summary next to the Sync heading. */
function renderState() {
  const s = app.status;
  let state;
  let text;
  if (s.remoteUrl === null) [state, text] = ["local", "Local only"];
  else if (!app.online) [state, text] = ["offline", "Offline"];
  else if (!s.online) [state, text] = ["offline", "Browser offline"];
  else if (s.syncing && app.syncingVisible) [state, text] = ["syncing", "Syncing…"];
  else if (s.lastError !== null) [state, text] = ["error", "Sync failed"];
  else if (s.pendingChanges > 0) [state, text] = ["pending", "Changes pending"];
  // A fresh database is not up to date before its first sync completes.
  else if (s.lastSyncAt === null) [state, text] = ["syncing", "Not synced yet"];
  else [state, text] = ["synced", "Up to date"];
  ui.state.dataset.state = state;
  ui.stateText.textContent = text;
}

async function toggleOnline() {
  const next = !app.online;
  app.online = next;
  ui.online.setAttribute("aria-checked", String(next));
  try {
    await app.db.setOnline(next);
    note(next ? "Online: syncing this device's changes." : "Offline: changes stay on this device until it is back online.");
  } catch (e) {
    app.online = !next;
    note(`Could not switch the network: ${message(e)}`, true);
  }
  await refreshStatus();
}

async function syncNow() {
  ui.syncNow.setAttribute("aria-busy", "true");
  try {
    const report = await app.db.sync();
    note(`Synced: sent ${report.pushed}, received ${report.pulled} (${Math.round(report.durationMs)} ms).`);
  } catch (e) {
    note(`Sync failed: ${message(e)}`, true);
  } finally {
    ui.syncNow.removeAttribute("aria-busy");
  }
  await refreshStatus();
}

/** Submitting `form` hands `input`'s trimmed text to `add` and clears it; an empty one keeps the focus. */
function onSubmit(form, input, add) {
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (text === "") {
      input.focus();
      return;
    }
    input.value = "";
    add(text);
  });
}

// ---- start ----

async function main() {
  let config;
  try {
    config = await loadConfig();
  } catch (e) {
    ui.empty.textContent = "Could not start.";
    showBanner(message(e));
    return;
  }
  ui.deviceName.textContent = config.label;
  app.version = config.version;
  ui.schemaVersion.textContent = `schema v${config.version}`;
  app.remote = config.url ? { url: config.url, authToken: config.authToken } : null;
  try {
    const notes = config.version === 2 ? await notesKey(config) : null;
    if (notes) ui.notesKey.textContent = `Its key comes from ${notes.source}.`;
    app.db = await ErthDb.open({
      name: config.name,
      url: config.url,
      authToken: config.authToken,
      schema: config.version === 2 ? SCHEMA_V2 : SCHEMA_V1,
      columnKeys: notes ? [notes.key] : undefined,
      autoSync: AUTO_SYNC,
    });
  } catch (e) {
    ui.empty.textContent = "The database could not be opened.";
    ui.stateText.textContent = "Not open";
    showBanner(message(e));
    return;
  }
  app.db.subscribe((event) => {
    if (event.type === "change") refreshList();
    else if (event.type === "status") renderStatus(event.status);
  });

  onSubmit(ui.form, ui.newTitle, addTodo);
  onSubmit(ui.listForm, ui.newListName, addList);
  const lists = app.db.watch(LISTS_SQL[app.version], [], renderLists, {
    onError: (e) => note(`Could not read the lists: ${message(e)}`, true),
  });
  const notes =
    app.version === 2
      ? app.db.watch(NOTES_SQL, [], renderNotes, {
          onError: (e) => note(`Could not read the notes: ${message(e)}`, true),
        })
      : null;
  onSubmit(ui.noteForm, ui.newNote, addNote);
  ui.online.addEventListener("click", toggleOnline);
  ui.syncNow.addEventListener("click", syncNow);
  setInterval(renderLastSync, 1000);

  await Promise.all([refreshList(), refreshStatus(), lists.ready.catch(() => {}), notes?.ready.catch(() => {})]);
  ui.notesCard.hidden = app.version !== 2;
  ui.newNote.disabled = app.version !== 2;
  ui.addNoteButton.disabled = app.version !== 2;
  ui.newTitle.disabled = false;
  ui.addButton.disabled = false;
  ui.newListName.disabled = false;
  ui.addListButton.disabled = false;
  ui.newList.hidden = app.version !== 2;
  ui.newList.disabled = app.version !== 2;
  if (app.status?.remoteUrl) {
    note(`Auto-sync: ${AUTO_SYNC.debounceMs} ms after each change, and every ${AUTO_SYNC.intervalMs / 1000} s.`);
  } else {
    note("No server: this device keeps its todos to itself. To sync, open the address `cargo xtask demo` printed (it ends with #config=…), or add ?url=SERVER.");
  }
  document.documentElement.dataset.ready = "true";
}

main();
