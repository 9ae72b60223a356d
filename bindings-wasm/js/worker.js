// erth-sync's worker: owns one database (OPFS sync access handles exist only
// in a dedicated Worker) and answers the main thread's calls (index.js).
//
// Protocol (structured-clone messages):
//   main -> worker  { id, method, args }
//   worker -> main  { id, ok: true, value } | { id, ok: false, error: { code, message, serverCode? } }
//                   { event }   (a change or status event, no id)
//                   { rows: { watch, rows } }   (a live query's rows)
//
// Auto-sync lives here too: a sync shortly after local writes (debounced),
// on an interval, and when the network comes back. Its failures are not
// thrown anywhere: they show in status() and in "status" events.

import init, { Replica } from "./erth_wasm.js";
import { ErthError } from "./errors.js";

let replica = null;
let subscription = null;
/** Live queries by the main thread's id. */
const watches = new Map();
/** Set once the wasm module trapped (a bug): every later call fails with it. */
let crashed = null;
let closing = false;
/** Calls still running, so close() can wait for them. */
const running = new Set();

const auto = { enabled: false, debounceMs: 500, intervalMs: 30000, timer: null, interval: null };
/** The app's network switch (setOnline). */
let online = true;
/** The browser's view (navigator.onLine on the main thread). */
let browserOnline = true;
let hasRemote = false;
let statusQueued = false;

function post(message) {
  self.postMessage(message);
}

function toPlainError(e) {
  if (e instanceof WebAssembly.RuntimeError) {
    crashed = `erth-sync crashed (${e.message}); the console has details; reopen the database`;
    return { code: "Internal", message: crashed };
  }
  if (e !== null && typeof e === "object" && typeof e.code === "string") {
    const out = { code: e.code, message: String(e.message) };
    if (typeof e.serverCode === "string") out.serverCode = e.serverCode;
    return out;
  }
  return { code: "Internal", message: String((e && e.message) || e) };
}

async function fullStatus() {
  const status = await replica.status();
  return { ...status, online: online && browserOnline, autoSync: auto.enabled };
}

/** Sends one "status" event soon (several requests in a row send one). */
function queueStatus() {
  if (statusQueued || !replica) return;
  statusQueued = true;
  setTimeout(async () => {
    statusQueued = false;
    if (!replica || closing) return;
    try {
      post({ event: { type: "status", status: await track(fullStatus()) } });
    } catch (e) {
      toPlainError(e);
    }
  }, 0);
}

function onChange(event) {
  post({ event: { type: "change", table: event.table, ids: event.ids, origin: event.origin } });
  queueStatus();
  if (event.origin === "local") schedule(auto.debounceMs);
}

async function sync() {
  if (!online) {
    throw new ErthError("Network", "offline: the network is switched off for this database (setOnline(false))");
  }
  const report = replica.sync();
  queueStatus();
  try {
    return await report;
  } finally {
    queueStatus();
  }
}

function schedule(delayMs) {
  if (!auto.enabled || !replica || closing) return;
  clearTimeout(auto.timer);
  auto.timer = setTimeout(autoSync, delayMs);
}

async function autoSync() {
  auto.timer = null;
  if (!replica || closing || crashed || !online || !browserOnline || !hasRemote) return;
  try {
    await track(sync());
  } catch (e) {
    // Recorded in status().lastError / lastErrorCode and sent as a status event.
    toPlainError(e);
  }
}

function ms(value, name, fallback) {
  if (value === undefined || value === null) return fallback;
  if (!Number.isFinite(value) || value < 0) {
    throw new ErthError("InvalidInput", `autoSync.${name} must be a number of milliseconds >= 0`);
  }
  return value;
}

/** Checks the autoSync option; returns `{ debounceMs, intervalMs }` or null (off). */
function autoSyncOptions(option) {
  if (option === undefined || option === null || option === false) return null;
  if (option !== true && typeof option !== "object") {
    throw new ErthError("InvalidInput", "autoSync must be a boolean or { debounceMs, intervalMs }");
  }
  const o = option === true ? {} : option;
  return {
    debounceMs: ms(o.debounceMs, "debounceMs", auto.debounceMs),
    intervalMs: ms(o.intervalMs, "intervalMs", auto.intervalMs),
  };
}

function startAutoSync({ debounceMs, intervalMs }) {
  Object.assign(auto, { enabled: true, debounceMs, intervalMs });
  if (intervalMs > 0) auto.interval = setInterval(() => schedule(0), intervalMs);
  schedule(0);
}

/** Loads the .wasm, with errors that name its URL. */
async function loadWasm() {
  const url = new URL("./erth_wasm_bg.wasm", import.meta.url);
  const failed = (why) =>
    new ErthError(
      "LoadFailed",
      `could not load erth-sync's WebAssembly from ${url.href}: ${why}. Check that the file is served ` +
        "(as application/wasm) next to worker.js, and, with a bundler, that it is emitted (see the erth-sync README, Bundlers)",
    );
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    throw failed(`the request failed (${e.message})`);
  }
  if (!response.ok) throw failed(`HTTP ${response.status}`);
  try {
    await init({ module_or_path: response });
  } catch (e) {
    const type = response.headers.get("content-type") ?? "no content type";
    throw failed(`it is not a WebAssembly module (${type}; ${e.message})`);
  }
}

async function open(options) {
  if (replica) throw new ErthError("InvalidInput", "this worker already has a database open");
  const { autoSync: autoOption, browserOnline: browserState, ...replicaOptions } = options;
  const autoSettings = autoSyncOptions(autoOption);
  await loadWasm();
  replica = await Replica.open(replicaOptions);
  browserOnline = browserState !== false;
  hasRemote = typeof replicaOptions.url === "string" && replicaOptions.url.trim() !== "";
  subscription = replica.subscribe(onChange);
  if (autoSettings) startAutoSync(autoSettings);
}

async function close() {
  closing = true;
  clearTimeout(auto.timer);
  clearInterval(auto.interval);
  await Promise.allSettled([...running]);
  const held = [...watches.values(), subscription, replica];
  watches.clear();
  subscription = null;
  replica = null;
  // Dropping the replica closes SQLite, then releases the OPFS handles and
  // the Web Lock. If that fails, the main thread's terminate() releases them.
  for (const object of held) {
    if (object) object.free();
  }
}

const methods = {
  open,
  close,
  add: (title) => replica.addTodo(title),
  listActive: () => replica.listActive(),
  get: (id) => replica.getTodo(id),
  rename: (id, title) => replica.renameTodo(id, title),
  setCompleted: (id, completed) => replica.setCompleted(id, completed),
  delete: (id) => replica.deleteTodo(id),
  execute: (sql, params) => replica.execute(sql, params),
  query: (sql, params) => replica.query(sql, params),
  transaction: (statements) => replica.transaction(statements),
  watch(id, sql, params) {
    // The first rows are posted (synchronously) before this call's answer.
    const live = replica.watch(sql, params, (rows) => post({ rows: { watch: id, rows } }));
    watches.set(id, live);
  },
  unwatch(id) {
    const live = watches.get(id);
    watches.delete(id);
    if (live) live.free();
  },
  sync,
  status: fullStatus,
  rejectedRows: () => replica.rejectedRows(),
  async retryRejected() {
    const n = await replica.retryRejected();
    queueStatus();
    schedule(0);
    return n;
  },
  async discardRejected(table, id) {
    await replica.discardRejected(table, id);
    queueStatus();
  },
  setAuthToken(token) {
    replica.setAuthToken(token ?? undefined);
    schedule(0);
  },
  setRemote(url, token) {
    replica.setRemote(url ?? undefined, token ?? undefined);
    hasRemote = typeof url === "string" && url.trim() !== "";
    queueStatus();
    schedule(0);
  },
  setOnline(value) {
    online = value;
    queueStatus();
    if (online) schedule(0);
  },
  network(value) {
    browserOnline = value;
    queueStatus();
    if (browserOnline) schedule(0);
  },
};

function track(promise) {
  running.add(promise);
  const done = () => running.delete(promise);
  promise.then(done, done);
  return promise;
}

async function dispatch(method, args) {
  if (crashed) throw new ErthError("Internal", crashed);
  const fn = Object.hasOwn(methods, method) ? methods[method] : null;
  if (!fn) throw new ErthError("InvalidInput", `unknown method ${String(method)}`);
  if (method !== "open" && !replica) throw new ErthError("InvalidInput", "the database is closed");
  if (closing && method !== "close") throw new ErthError("InvalidInput", "the database is closing");
  return fn(...args);
}

self.onmessage = (e) => {
  const { id, method, args } = e.data;
  let call = dispatch(method, Array.isArray(args) ? args : []);
  if (method !== "close") call = track(call);
  call.then(
    (value) => post({ id, ok: true, value }),
    (err) => post({ id, ok: false, error: toPlainError(err) }),
  );
};
