// erth-sync's worker: runs one database for its tab (OPFS sync access
// handles exist only in a dedicated Worker) and answers the main thread's
// calls (index.js).
//
// Several tabs: every tab of an origin that opens database NAME has a worker
// like this one; one of them, the OWNER, holds the Web Lock
// `erth-sync-owner:NAME` and so the database; the others are CLIENTS that
// send their tab's calls to it over the BroadcastChannel `erth-sync:NAME`
// and relay its answers, events and live-query rows. Every client also
// waits in the owner lock's queue: when the owner's tab closes, reloads or
// crashes, the browser releases its lock, the next client becomes the
// owner, opens the database (with its own tab's options) and announces
// itself; the others send to it from then on. A call that was running at
// the old owner when it vanished is sent again if it only reads (or sets a
// switch); a write rejects with `Interrupted`, because it may or may not
// have committed. Auto-sync runs in the owner only: one loop per database.
//
// Protocol with the main thread (structured-clone messages):
//   main -> worker  { id, method, args }
//   worker -> main  { id, ok: true, value } | { id, ok: false, error: { code, message, serverCode? } }
//                   { event }   (a change or status event, no id)
//                   { rows: { watch, rows } }   (a live query's rows)
// Between workers (BroadcastChannel; `to`/`from` are worker ids):
//   { kind: "who", from }                       a client looks for the owner
//   { kind: "owner", owner, schema }            the owner announces itself (answer to "who", and on taking over)
//   { kind: "call", to, from, id, method, args }
//   { kind: "reply", to, id, ok, value | error } | { kind: "reply", to, id, retry: true } (not run: the owner is closing)
//   { kind: "rows", to, watch, rows }           a client's live query
//   { kind: "event", event }                    every change and status event
//
// Auto-sync lives in the owner: a sync shortly after local writes
// (debounced), on an interval, and when the network comes back. Its
// failures are not thrown anywhere: they show in status() and in "status"
// events.

import init, { Replica } from "./erth_wasm.js";
import { ErthError } from "./errors.js";

/** This worker's id on the channel. */
const me = crypto.randomUUID();
/** "idle" until open, then "owner", "client" or "closed". */
let role = "idle";
let replica = null;
let subscription = null;
/** Live queries this worker runs, by `${worker id}:${watch id}`. */
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

/** Sharing between tabs (null for `storage: "memory"`, which is never shared). */
let shared = null;

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

/** Sends an event to this tab and, as the owner, to every other tab. */
function emit(event) {
  post({ event });
  if (shared) shared.channel.postMessage({ kind: "event", event });
}

async function fullStatus() {
  const status = await replica.status();
  return { ...status, storage: replica.storage, online: online && browserOnline, autoSync: auto.enabled };
}

/**
 * How long a "status" event after a change waits, so that a burst of writes
 * recomputes the status once, not once per write: recomputing it (about
 * 0.2 ms: `db.status()` in BENCHMARKS.md section 5) right after every write
 * ran before the next call and made each `todos.add` of a burst about 0.4 ms
 * slower (1.41 ms vs 1.0 ms median on OPFS, measured with the recompute
 * switched off). One frame at 60 Hz: a page showing the status cannot show
 * it sooner anyway.
 */
const CHANGE_STATUS_DELAY_MS = 16;
/** The queued status event's timer, and when it fires (performance.now()). */
let statusTimer = null;
let statusDue = Infinity;

/**
 * Sends one "status" event after `delayMs` (several requests meanwhile send
 * one; a request due sooner moves it earlier).
 */
function queueStatus(delayMs = 0) {
  if (!replica) return;
  const due = performance.now() + delayMs;
  if (statusTimer !== null) {
    if (statusDue <= due) return;
    clearTimeout(statusTimer);
  }
  statusDue = due;
  statusTimer = setTimeout(async () => {
    statusTimer = null;
    statusDue = Infinity;
    if (!replica || closing) return;
    try {
      emit({ type: "status", status: await track(fullStatus()) });
    } catch (e) {
      toPlainError(e);
    }
  }, delayMs);
}

function onChange(event) {
  emit({ type: "change", table: event.table, ids: event.ids, origin: event.origin });
  queueStatus(CHANGE_STATUS_DELAY_MS);
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

/** Opens the database in this worker: it becomes (or, for memory, is) its owner. */
async function openReplica(options) {
  const { autoSync: autoOption, browserOnline: browserState, ...replicaOptions } = options;
  const autoSettings = autoSyncOptions(autoOption);
  await loadWasm();
  replica = await Replica.open(replicaOptions);
  browserOnline = browserState !== false;
  hasRemote = typeof replicaOptions.url === "string" && replicaOptions.url.trim() !== "";
  subscription = replica.subscribe(onChange);
  if (autoSettings) startAutoSync(autoSettings);
}

// ---- sharing one database between tabs ----

/** Calls that only read, or set a switch to a value: safe to send again to a new owner. */
const REPEATABLE = new Set([
  "rejectedRows",
  "retryRejected",
  "listActive",
  "get",
  "query",
  "watch",
  "unwatch",
  "sync",
  "status",
  "setAuthToken",
  "setRemote",
  "setOnline",
  "network",
]);

/** The schema text in one canonical form, to compare tabs' schemas. */
function canonicalSchema(text) {
  if (text === undefined || text === null) return null;
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return String(text);
  }
}

/**
 * Takes the owner lock: resolves to its release function once held, or to
 * null when `ifAvailable` and another worker holds it. Rejects with an
 * AbortError when `signal` fires first.
 */
function ownerLock(name, { ifAvailable = false, signal } = {}) {
  return new Promise((granted, failed) => {
    const options = ifAvailable ? { ifAvailable: true } : { signal };
    navigator.locks
      .request(`erth-sync-owner:${name}`, options, (lock) => {
        if (!lock) {
          granted(null);
          return undefined;
        }
        return new Promise((release) => granted(release));
      })
      .catch(failed);
  });
}

/** Holds `erth-sync-tab:NAME:ID` while this worker lives, so the owner learns when it is gone. */
function holdTabLock(name) {
  return new Promise((held) => {
    navigator.locks
      .request(`erth-sync-tab:${name}:${me}`, () => new Promise((release) => held(release)))
      .catch(() => held(() => {}));
  });
}

function interrupted(method) {
  return new ErthError(
    "Interrupted",
    `the tab that held this database closed or reloaded while ${method}() ran there: it may or may not have been ` +
      "applied; another tab holds the database now. Retry it if that is safe (e.g. an INSERT with your own id, " +
      "which is refused if the row exists)",
  );
}

/** Sets up the sharing state for database `name` (not yet owner or client). */
async function share(options) {
  const channel = new BroadcastChannel(`erth-sync:${options.name}`);
  shared = {
    name: options.name,
    options,
    schema: canonicalSchema(options.schema),
    channel,
    releaseTab: await holdTabLock(options.name),
    /** As the owner: releases the owner lock. */
    releaseOwner: null,
    /** As a client: aborts this worker's place in the owner lock's queue. */
    queue: null,
    /** As a client: the owner's id, once known (null again while a closing owner hands over). */
    owner: null,
    /** As a client: the owner this tab's live queries run at. */
    registeredAt: null,
    /** As a client: calls waiting for an owner: `{ id, method, args, resolve, reject }`. */
    waiting: [],
    /** As a client: calls sent to the owner, by id. */
    sent: new Map(),
    nextId: 1,
    /** As a client: this tab's live queries `{ sql, params }` by id (sent again to a new owner). */
    myWatches: new Map(),
    /** Waiters for the first owner to answer. */
    ownerKnown: [],
    /** As the owner: clients whose end it watches (to drop their live queries). */
    clients: new Set(),
  };
  channel.onmessage = (e) => onChannel(e.data);
}

async function open(options) {
  if (role !== "idle") throw new ErthError("InvalidInput", "this worker already has a database open");
  if (options.storage === "memory") {
    await openReplica(options);
    role = "owner";
    return;
  }
  if (!globalThis.navigator?.locks || typeof BroadcastChannel !== "function") {
    throw new ErthError("Storage", "erth-sync needs the Web Locks API and BroadcastChannel (a secure context)");
  }
  await share(options);
  const release = await ownerLock(options.name, { ifAvailable: true });
  if (release) {
    await becomeOwner(release);
    return;
  }
  role = "client";
  waitForOwnership();
  const timeoutMs = options.lockTimeoutMs ?? 5000;
  const owner = await new Promise((resolve) => {
    shared.ownerKnown.push(resolve);
    shared.channel.postMessage({ kind: "who", from: me });
    setTimeout(() => resolve(null), timeoutMs);
  });
  if (role === "owner") return;
  if (owner?.error) {
    await leave();
    throw owner.error;
  }
  if (owner === null) {
    await leave();
    throw new ErthError(
      "DatabaseLocked",
      `another tab or worker holds database "${options.name}" and did not answer within ${timeoutMs} ms ` +
        "(it may still be opening it, or run an erth-sync version that cannot share it)",
    );
  }
  if (owner.schema !== shared.schema) {
    await leave();
    throw new ErthError(
      "DatabaseLocked",
      `another tab has database "${options.name}" open with a different schema (another version of the app?): ` +
        "close or reload that tab, then open it again",
    );
  }
}

/** Queues this client for the owner lock; on getting it, takes over. */
function waitForOwnership() {
  const queue = new AbortController();
  shared.queue = queue;
  ownerLock(shared.name, { signal: queue.signal }).then(
    (release) => {
      if (role !== "client" || closing) {
        release();
        return;
      }
      becomeOwner(release).catch((error) => {
        // This tab could not open the database (e.g. storage failed): let
        // the next tab try, and stay a client of whoever does. An open()
        // still waiting fails with the reason.
        role = "client";
        if (!shared) return;
        if (shared.ownerKnown.length > 0) {
          for (const resolve of shared.ownerKnown.splice(0)) resolve({ error });
          return;
        }
        console.warn("erth-sync: this tab could not take the database over:", error);
        waitForOwnership();
      });
    },
    () => {
      // Aborted: this worker is closing.
    },
  );
}

async function becomeOwner(release) {
  try {
    await openReplica(shared.options);
  } catch (e) {
    release();
    throw e;
  }
  const wasClient = role === "client";
  role = "owner";
  shared.releaseOwner = release;
  shared.queue = null;
  shared.owner = me;
  shared.channel.postMessage({ kind: "owner", owner: me, schema: shared.schema });
  if (!wasClient) return;
  // What this tab had in flight at the old owner, and what waited for a new one.
  const sent = [...shared.sent.values()];
  const waiting = shared.waiting;
  shared.sent.clear();
  shared.waiting = [];
  const pending = pendingWatches([...sent, ...waiting]);
  for (const [id, { sql, params }] of shared.myWatches) {
    if (!pending.has(id)) watchHere(id, sql, params);
  }
  shared.myWatches.clear();
  for (const call of sent) {
    if (REPEATABLE.has(call.method)) runHere(call);
    else call.reject(interrupted(call.method));
  }
  for (const call of waiting) runHere(call);
  for (const resolve of shared.ownerKnown.splice(0)) resolve({ owner: me, schema: shared.schema });
}

/** The ids of this tab's live queries whose registration is among `calls`. */
function pendingWatches(calls) {
  return new Set(calls.filter((call) => call.method === "watch").map((call) => call.args[0]));
}

/** Runs this tab's live query `id` on this worker's own database. */
function watchHere(id, sql, params) {
  return methods.watch(`${me}:${id}`, sql, params, (rows) => post({ rows: { watch: id, rows } }));
}

/** Runs one of this tab's calls (kept while it was a client) on its own database. */
function runHere(call) {
  const { method, args } = call;
  let result;
  if (method === "watch") result = Promise.resolve().then(() => watchHere(...args));
  else if (method === "unwatch") result = Promise.resolve().then(() => methods.unwatch(`${me}:${args[0]}`));
  else result = dispatch(method, args);
  track(result).then(call.resolve, call.reject);
}

/** As a client: sends a call to the owner (or keeps it until there is one). */
function forward(method, args) {
  return new Promise((resolve, reject) => {
    const call = { id: shared.nextId++, method, args, resolve, reject };
    send(call);
  });
}

function send(call) {
  if (role === "owner") return runHere(call);
  if (!shared.owner) {
    shared.waiting.push(call);
    return;
  }
  call.to = shared.owner;
  shared.sent.set(call.id, call);
  shared.channel.postMessage({ kind: "call", to: shared.owner, from: me, id: call.id, method: call.method, args: call.args });
}

function onChannel(message) {
  if (!shared || message === null || typeof message !== "object") return;
  switch (message.kind) {
    case "who":
      if (role === "owner" && !closing) {
        shared.channel.postMessage({ kind: "owner", owner: me, schema: shared.schema });
      }
      return;
    case "owner":
      if (role === "client") newOwner(message);
      return;
    case "call":
      if (role === "owner" && message.to === me) answer(message);
      return;
    case "reply":
      if (role === "client" && message.to === me) settle(message);
      return;
    case "rows":
      if (message.to === me && shared.myWatches.has(message.watch)) {
        post({ rows: { watch: message.watch, rows: message.rows } });
      }
      return;
    case "event":
      if (role === "client") post({ event: message.event });
      return;
    default:
  }
}

/** As a client: the owner announced itself (first contact, a take-over, or after a retry). */
function newOwner({ owner, schema }) {
  const moved = shared.registeredAt !== null && shared.registeredAt !== owner;
  shared.owner = owner;
  shared.registeredAt = owner;
  for (const resolve of shared.ownerKnown.splice(0)) resolve({ owner, schema });
  // Calls in flight at an owner that vanished: sent again, or interrupted.
  const lost = [...shared.sent.values()].filter((call) => call.to !== owner);
  for (const call of lost) shared.sent.delete(call.id);
  const waiting = shared.waiting;
  shared.waiting = [];
  if (moved) {
    const pending = pendingWatches([...lost, ...waiting, ...shared.sent.values()]);
    for (const [id, { sql, params }] of shared.myWatches) {
      if (pending.has(id)) continue;
      forward("watch", [id, sql, params]).catch((e) =>
        console.warn("erth-sync: a live query could not move to the new owner:", e),
      );
    }
  }
  for (const call of lost) {
    if (REPEATABLE.has(call.method)) send(call);
    else call.reject(interrupted(call.method));
  }
  for (const call of waiting) send(call);
}

function settle(message) {
  const call = shared.sent.get(message.id);
  if (!call) return;
  shared.sent.delete(message.id);
  if (message.retry) {
    // The owner is closing and did not run it: send it to the next owner.
    shared.owner = null;
    shared.waiting.push(call);
  } else if (message.ok) {
    call.resolve(message.value);
  } else {
    const { code, message: text, serverCode } = message.error;
    call.reject(new ErthError(code, text, serverCode));
  }
}

/** As the owner: runs a client's call and answers it. */
function answer({ from, id, method, args }) {
  const reply = (fields) => shared.channel.postMessage({ kind: "reply", to: from, id, ...fields });
  if (closing) {
    reply({ retry: true });
    return;
  }
  watchClient(from);
  let call;
  if (method === "watch") {
    const [watchId, sql, params] = args;
    call = Promise.resolve().then(() =>
      methods.watch(`${from}:${watchId}`, sql, params, (rows) =>
        shared.channel.postMessage({ kind: "rows", to: from, watch: watchId, rows }),
      ),
    );
  } else if (method === "unwatch") {
    call = Promise.resolve().then(() => methods.unwatch(`${from}:${args[0]}`));
  } else if (method === "open" || method === "close") {
    call = Promise.reject(new ErthError("InvalidInput", `${method} cannot be sent to another tab`));
  } else {
    call = dispatch(method, args);
  }
  track(call).then(
    (value) => reply({ ok: true, value }),
    (err) => reply({ ok: false, error: toPlainError(err) }),
  );
}

/** As the owner: once client `id`'s worker is gone, drops its live queries. */
function watchClient(id) {
  if (shared.clients.has(id)) return;
  shared.clients.add(id);
  navigator.locks
    .request(`erth-sync-tab:${shared.name}:${id}`, () => {
      shared?.clients.delete(id);
      for (const key of [...watches.keys()]) {
        if (key.startsWith(`${id}:`)) methods.unwatch(key);
      }
    })
    .catch(() => {});
}

/** Leaves the sharing: gives up the owner lock or this worker's place in its queue. */
async function leave() {
  if (!shared) return;
  const { channel, releaseOwner, queue, releaseTab, sent, waiting, myWatches } = shared;
  if (role === "client") {
    for (const id of myWatches.keys()) forward("unwatch", [id]).catch(() => {});
  }
  const closed = new ErthError("InvalidInput", "the database is closed");
  for (const call of [...sent.values(), ...waiting]) call.reject(closed);
  shared = null;
  queue?.abort();
  releaseOwner?.();
  releaseTab();
  channel.close();
}

async function close() {
  if (role === "client") {
    // Nothing runs here: calls still waiting for the owner reject.
    closing = true;
    await leave();
    role = "closed";
    return;
  }
  closing = true;
  clearTimeout(auto.timer);
  clearInterval(auto.interval);
  await Promise.allSettled([...running]);
  const held = [...watches.values(), subscription, replica];
  watches.clear();
  subscription = null;
  replica = null;
  // Dropping the replica closes SQLite, then releases the OPFS handles and
  // its Web Lock; then the owner lock goes to the next tab. If that fails,
  // the main thread's terminate() releases them.
  for (const object of held) {
    if (object) object.free();
  }
  await leave();
  role = "closed";
}

// ---- the calls ----

const methods = {
  add: (title) => replica.addTodo(title),
  listActive: () => replica.listActive(),
  get: (id) => replica.getTodo(id),
  rename: (id, title) => replica.renameTodo(id, title),
  setCompleted: (id, completed) => replica.setCompleted(id, completed),
  delete: (id) => replica.deleteTodo(id),
  execute: (sql, params) => replica.execute(sql, params),
  query: (sql, params) => replica.query(sql, params),
  transaction: (statements) => replica.transaction(statements),
  /** Starts live query `key`; its first rows reach `deliver` (synchronously) before this returns. */
  watch(key, sql, params, deliver) {
    const live = replica.watch(sql, params, deliver);
    watches.get(key)?.free();
    watches.set(key, live);
  },
  unwatch(key) {
    const live = watches.get(key);
    watches.delete(key);
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

/** Runs a call on this worker's own database (the owner). */
async function dispatch(method, args) {
  if (crashed) throw new ErthError("Internal", crashed);
  const fn = Object.hasOwn(methods, method) ? methods[method] : null;
  if (!fn || method === "watch" || method === "unwatch") {
    throw new ErthError("InvalidInput", `unknown method ${String(method)}`);
  }
  if (!replica) throw new ErthError("InvalidInput", "the database is closed");
  if (closing) throw new ErthError("InvalidInput", "the database is closing");
  return fn(...args);
}

/** A call from this tab's main thread. */
async function fromPage(method, args) {
  if (method === "open") return open(...args);
  if (method === "close") return close();
  if (role === "idle" || role === "closed" || closing) throw new ErthError("InvalidInput", "the database is closed");
  if (method === "watch") {
    const [id, sql, params] = args;
    if (role === "client") {
      shared.myWatches.set(id, { sql, params });
      return forward("watch", [id, sql, params]).catch((e) => {
        shared?.myWatches.delete(id);
        throw e;
      });
    }
    if (crashed) throw new ErthError("Internal", crashed);
    return watchHere(id, sql, params);
  }
  if (method === "unwatch") {
    const [id] = args;
    if (role === "client") {
      shared.myWatches.delete(id);
      return forward("unwatch", [id]);
    }
    return methods.unwatch(`${me}:${id}`);
  }
  if (role === "client") return forward(method, args);
  return dispatch(method, args);
}

self.onmessage = (e) => {
  const { id, method, args } = e.data;
  let call = fromPage(method, Array.isArray(args) ? args : []);
  if (method !== "close") call = track(call);
  call.then(
    (value) => post({ id, ok: true, value }),
    (err) => post({ id, ok: false, error: toPlainError(err) }),
  );
};
