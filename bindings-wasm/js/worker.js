// erth-sync's worker: runs one database for its tab (OPFS sync access
// handles exist only in a dedicated Worker) and answers the main thread's
// calls (index.js). Auto-sync is the core's (`Replica.startAutoSync`).
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
// have committed. The owner runs its own tab's calls the same way, only
// without the channel.
//
// Protocol with the main thread (structured-clone messages):
//   main -> worker  { id, method, args }
//   worker -> main  { id, ok: true, value } | { id, ok: false, error: { code, message, serverCode? } }
//                   { event }   (a change or status event, no id)
//                   { rows: { watch, rows } }   (a live query's rows)
// Between workers (BroadcastChannel; `to`/`from` are worker ids):
//   { kind: "who", from }                       a client looks for the owner
//   { kind: "owner", owner, schema, tab }       the owner announces itself (answer to "who", and on taking over)
//   { kind: "call", to, from, id, method, args }
//   { kind: "reply", to, id, ok, value | error } | { kind: "reply", to, id, retry: true } (not run: the owner is closing)
//   { kind: "rows", to, watch, rows }           a client's live query
//   { kind: "event", event }                    every change and status event

import init, { Replica, canonicalSchema } from "./erth_wasm.js";
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
/** Calls running here, so close() can wait for them. */
const running = new Set();
/** The app's switch (setOnline) and the browser's view (navigator.onLine). */
const online = { app: true, browser: true };
/** Sharing between tabs (null for `storage: "memory"`, which is never shared). */
let shared = null;
let nextId = 1;

const post = (message) => self.postMessage(message);
const closedError = () => new ErthError("InvalidInput", "the database is closed");

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

const fromPlain = ({ code, message, serverCode }) => new ErthError(code, message, serverCode);

function track(promise) {
  running.add(promise);
  const done = () => running.delete(promise);
  promise.then(done, done);
  return promise;
}

/** Sends an event to this tab and, as the owner, to every other tab. */
function emit(event) {
  post({ event });
  if (shared) shared.channel.postMessage({ kind: "event", event });
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
let statusTimer = null;
let statusDue = Infinity;

/** Sends one "status" event after `delayMs` (requests meanwhile share it; a sooner one moves it). */
function queueStatus(delayMs = 0) {
  const due = performance.now() + delayMs;
  if (!replica || statusDue <= due) return;
  clearTimeout(statusTimer);
  statusDue = due;
  statusTimer = setTimeout(async () => {
    statusDue = Infinity;
    if (!replica || closing) return;
    try {
      emit({ type: "status", status: await track(methods.status()) });
    } catch (e) {
      toPlainError(e);
    }
  }, delayMs);
}

/** Status events before and after `promise`, which it returns. */
function aroundStatus(promise) {
  queueStatus();
  return promise.finally(() => queueStatus());
}

function switchNetwork(which, value) {
  online[which] = value;
  replica.setOnline(online.app && online.browser);
  queueStatus();
}

/** Loads the .wasm once, with errors that name its URL. */
let loaded = null;
function loadWasm() {
  const url = new URL("./erth_wasm_bg.wasm", import.meta.url);
  const failed = (why) =>
    new ErthError(
      "LoadFailed",
      `could not load erth-sync's WebAssembly from ${url.href}: ${why}. Check that the file is served ` +
        "(as application/wasm) next to worker.js, and, with a bundler, that it is emitted (see the erth-sync README, Bundlers)",
    );
  loaded ??= (async () => {
    const response = await fetch(url).catch((e) => {
      throw failed(`the request failed (${e.message})`);
    });
    if (!response.ok) throw failed(`HTTP ${response.status}`);
    await init({ module_or_path: response }).catch((e) => {
      const type = response.headers.get("content-type") ?? "no content type";
      throw failed(`it is not a WebAssembly module (${type}; ${e.message})`);
    });
  })();
  return loaded;
}

/** Opens the database in this worker, which so becomes (or, for memory, is) its owner. */
async function openReplica({ browserOnline, tab: _tab, ...options }) {
  replica = await Replica.open(options);
  online.browser = browserOnline !== false;
  replica.setOnline(online.app && online.browser);
  subscription = replica.subscribe((event) => {
    emit({ type: "change", ...event });
    queueStatus(CHANGE_STATUS_DELAY_MS);
  });
  // A running auto-sync counts as a running call: close() lets it finish.
  let ended = null;
  replica.startAutoSync((syncing) => {
    queueStatus();
    if (syncing) track(new Promise((resolve) => (ended = resolve)));
    else ended?.();
  });
}

// ---- the calls, where the database is ----

const methods = {
  add: (title) => replica.addTodo(title),
  listActive: () => replica.listActive(),
  get: (id) => replica.getTodo(id),
  rename: (id, title) => replica.renameTodo(id, title),
  setCompleted: (id, completed) => replica.setCompleted(id, completed),
  delete: (id) => replica.deleteTodo(id),
  execute: (sql, params) => replica.execute(sql, params),
  query: (sql, params, call) => replica.query(sql, params, call),
  transaction: (statements) => replica.transaction(statements),
  sync: () => aroundStatus(replica.sync()),
  status: async () => ({ ...(await replica.status()), storage: replica.storage }),
  rejectedRows: () => replica.rejectedRows(),
  waitForFirstSync: () => replica.waitForFirstSync(),
  quarantinedRows: () => replica.quarantinedRows(),
  forgetQuarantined: () => aroundStatus(replica.forgetQuarantined()),
  retryRejected: () => aroundStatus(replica.retryRejected()),
  discardRejected: (table, id) => aroundStatus(replica.discardRejected(table, id)),
  setAuthToken: (token) => replica.setAuthToken(token ?? undefined),
  setRemote(url, token) {
    replica.setRemote(url ?? undefined, token ?? undefined);
    queueStatus();
  },
  setOnline: (value) => switchNetwork("app", value),
  network: (value) => switchNetwork("browser", value),
};

function unwatch(key) {
  watches.get(key)?.free();
  watches.delete(key);
}

/** As the owner: runs tab `tab`'s call (this tab's own, or a client's). */
function run(tab, method, args) {
  return track(
    (async () => {
      if (crashed) throw new ErthError("Internal", crashed);
      if (!replica || closing) throw closedError();
      if (method === "watch") {
        // The first rows reach `deliver` (synchronously) before this returns.
        const [id, sql, params] = args;
        const deliver =
          tab === me
            ? (rows) => post({ rows: { watch: id, rows } })
            : (rows) => shared.channel.postMessage({ kind: "rows", to: tab, watch: id, rows });
        const live = replica.watch(sql, params, deliver);
        unwatch(`${tab}:${id}`);
        watches.set(`${tab}:${id}`, live);
        return;
      }
      if (method === "unwatch") return unwatch(`${tab}:${args[0]}`);
      if (!Object.hasOwn(methods, method)) throw new ErthError("InvalidInput", `unknown method ${String(method)}`);
      return methods[method](...args);
    })(),
  );
}

// ---- sharing one database between tabs ----

/** Calls that only read, or set a switch to a value: safe to send again to a new owner. */
const REPEATABLE = new Set([
  "rejectedRows",
  "waitForFirstSync",
  "quarantinedRows",
  "forgetQuarantined",
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

/** Runs one of this tab's calls where the database is: here, or at the owner (or once there is one). */
function route(call) {
  if (role === "owner") return run(me, call.method, call.args).then(call.resolve, call.reject);
  if (!shared.owner) return shared.waiting.push(call);
  call.to = shared.owner;
  shared.sent.set(call.id, call);
  const { to, id, method, args } = call;
  shared.channel.postMessage({ kind: "call", to, from: me, id, method, args });
}

const submit = (method, args) => new Promise((resolve, reject) => route({ id: nextId++, method, args, resolve, reject }));

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
        if (!lock) return granted(null);
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

async function open(options) {
  if (role !== "idle") throw new ErthError("InvalidInput", "this worker already has a database open");
  await loadWasm();
  if (options.storage === "memory") {
    await openReplica(options);
    role = "owner";
    return;
  }
  if (!globalThis.navigator?.locks || typeof BroadcastChannel !== "function") {
    throw new ErthError("Storage", "erth-sync needs the Web Locks API and BroadcastChannel (a secure context)");
  }
  // Tabs compare the core's canonical form of their schemas (a malformed one fails here).
  const schema = canonicalSchema(options.schema ?? undefined);
  shared = {
    name: options.name,
    options,
    schema,
    /** The page that opened this worker's database (index.js's TAB). */
    tab: options.tab,
    channel: new BroadcastChannel(`erth-sync:${options.name}`),
    releaseTab: await holdTabLock(options.name),
    /** As the owner: releases the owner lock. As a client: aborts its place in the lock's queue. */
    releaseOwner: null,
    queue: null,
    /** As a client: the owner's id, once known (null again while a closing owner hands over). */
    owner: null,
    /** The owner this tab's live queries run at. */
    registeredAt: null,
    /** Calls waiting for an owner, and calls sent to the owner by id: `{ id, method, args, resolve, reject, to? }`. */
    waiting: [],
    sent: new Map(),
    /** This tab's live queries, `[id, sql, params]` by id (sent again to a new owner). */
    myWatches: new Map(),
    /** Waiters for the first owner to answer. */
    ownerKnown: [],
    /** As the owner: clients whose end it watches (to drop their live queries). */
    clients: new Set(),
  };
  shared.channel.onmessage = (e) => onChannel(e.data);
  const release = await ownerLock(options.name, { ifAvailable: true });
  if (release) return becomeOwner(release);
  role = "client";
  waitForOwnership();
  const timeoutMs = options.lockTimeoutMs ?? 5000;
  const owner = await new Promise((resolve) => {
    shared.ownerKnown.push(resolve);
    shared.channel.postMessage({ kind: "who", from: me });
    setTimeout(() => resolve(null), timeoutMs);
  });
  if (role === "owner") return;
  const refusal =
    owner?.error ??
    (owner === null
      ? `another tab or worker holds database "${options.name}" and did not answer within ${timeoutMs} ms ` +
        "(it may still be opening it, or run an erth-sync version that cannot share it)"
      : owner.schema !== schema &&
        (owner.tab === options.tab
          ? `this tab already has database "${options.name}" open with a different schema: share that handle ` +
            "(one schema per database), or close it first"
          : `another tab has database "${options.name}" open with a different schema (another version of the app?): ` +
            "close or reload that tab, then open it again"));
  if (refusal) {
    await leave();
    throw typeof refusal === "string" ? new ErthError("DatabaseLocked", refusal) : refusal;
  }
}

/** Queues this client for the owner lock; on getting it, takes over. */
function waitForOwnership() {
  const queue = new AbortController();
  shared.queue = queue;
  ownerLock(shared.name, { signal: queue.signal }).then(
    (release) => {
      if (role !== "client" || closing) return release();
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
    () => {}, // aborted: this worker is closing
  );
}

async function becomeOwner(release) {
  try {
    await openReplica(shared.options);
  } catch (e) {
    release();
    throw e;
  }
  role = "owner";
  shared.releaseOwner = release;
  shared.queue = null;
  shared.channel.postMessage({ kind: "owner", owner: me, schema: shared.schema, tab: shared.tab });
  // What this tab had at the old owner, and what waited for one, runs here now.
  ownerIs(me, shared.schema, shared.tab);
}

function onChannel(m) {
  if (!shared || m === null || typeof m !== "object") return;
  if (m.kind === "who" && role === "owner" && !closing) {
    shared.channel.postMessage({ kind: "owner", owner: me, schema: shared.schema, tab: shared.tab });
  } else if (m.kind === "owner" && role === "client") {
    ownerIs(m.owner, m.schema, m.tab);
  } else if (m.kind === "call" && m.to === me && role === "owner") {
    answer(m);
  } else if (m.kind === "reply" && m.to === me) {
    settle(m);
  } else if (m.kind === "rows" && m.to === me && shared.myWatches.has(m.watch)) {
    post({ rows: { watch: m.watch, rows: m.rows } });
  } else if (m.kind === "event" && role === "client") {
    post({ event: m.event });
  }
}

/** The owner is `owner` (first contact, a take-over, this worker itself, or after a retry). */
function ownerIs(owner, schema, tab) {
  const moved = shared.registeredAt !== null && shared.registeredAt !== owner;
  shared.owner = shared.registeredAt = owner;
  for (const resolve of shared.ownerKnown.splice(0)) resolve({ owner, schema, tab });
  // Calls in flight at an owner that vanished: sent again, or interrupted.
  const lost = [...shared.sent.values()].filter((call) => call.to !== owner);
  for (const call of lost) shared.sent.delete(call.id);
  const waiting = shared.waiting.splice(0);
  if (moved) {
    // This tab's live queries move too, unless their registration is on its way.
    const calls = [...lost, ...waiting, ...shared.sent.values()];
    const pending = new Set(calls.filter((call) => call.method === "watch").map((call) => call.args[0]));
    for (const [id, args] of shared.myWatches) {
      if (pending.has(id)) continue;
      submit("watch", args).catch((e) => console.warn("erth-sync: a live query could not move to the new owner:", e));
    }
  }
  for (const call of lost) {
    if (REPEATABLE.has(call.method)) route(call);
    else call.reject(interrupted(call.method));
  }
  for (const call of waiting) route(call);
}

/** As a client: the owner's answer to one of this tab's calls. */
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
    call.reject(fromPlain(message.error));
  }
}

/** As the owner: runs a client's call and answers it. */
function answer({ from, id, method, args }) {
  const reply = (fields) => shared.channel.postMessage({ kind: "reply", to: from, id, ...fields });
  if (closing) return reply({ retry: true });
  watchClient(from);
  run(from, method, args).then(
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
        if (key.startsWith(`${id}:`)) unwatch(key);
      }
    })
    .catch(() => {});
}

/** Leaves the sharing: gives up the owner lock or this worker's place in its queue. */
async function leave() {
  if (!shared) return;
  const { channel, releaseOwner, queue, releaseTab, sent, waiting, myWatches } = shared;
  if (role === "client") {
    for (const id of myWatches.keys()) submit("unwatch", [id]).catch(() => {});
  }
  for (const call of [...sent.values(), ...waiting]) call.reject(closedError());
  shared = null;
  queue?.abort();
  releaseOwner?.();
  releaseTab();
  channel.close();
}

async function close() {
  closing = true;
  if (role === "owner") {
    await Promise.allSettled([...running]);
    // Dropping the replica stops auto-sync, closes SQLite, then releases the
    // OPFS handles and its Web Lock; then the owner lock goes to the next
    // tab. If that fails, the main thread's terminate() releases them.
    for (const object of [...watches.values(), subscription, replica]) object?.free();
    watches.clear();
    subscription = replica = null;
  }
  // A client runs nothing here: its calls still waiting for the owner reject.
  await leave();
  role = "closed";
}

/** A call from this tab's main thread. */
async function fromPage(method, args) {
  if (method === "open") return open(...args);
  if (method === "close") return close();
  if (role === "idle" || role === "closed" || closing) throw closedError();
  const [id] = args;
  if (method === "watch") shared?.myWatches.set(id, args);
  if (method === "unwatch") shared?.myWatches.delete(id);
  return submit(method, args).catch((e) => {
    if (method === "watch") shared?.myWatches.delete(id);
    throw e;
  });
}

self.onmessage = (e) => {
  const { id, method, args } = e.data;
  fromPage(method, Array.isArray(args) ? args : []).then(
    (value) => post({ id, ok: true, value }),
    (err) => post({ id, ok: false, error: toPlainError(err) }),
  );
};
