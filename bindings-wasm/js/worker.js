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
// Write transactions (db.writeTransaction) live at the owner: `begin` takes
// the replica's write lock (every other tab's calls wait for it, up to
// lockTimeoutMs), `txExecute` runs a statement in it and `txEnd` commits or
// rolls it back. The owner rolls back the open transactions of a tab that
// goes away; one open at an owner that vanishes is gone with it (SQLite
// never committed it), and its tab's next call rejects with `Interrupted`.
//
// A tab joins only if the owner has the database open with the same schema
// and the same server URL (both in their canonical, secret-free forms); the
// owner decides, and refuses with a reason. Secrets never travel in clear:
// every worker has an ECDH key pair (P-256, WebCrypto), and a client's
// setAuthToken/setRemote arguments go to the owner sealed with AES-GCM
// under a key only the two of them can derive (ECDH, then HKDF); the sealed
// data is bound to sender, receiver, call id and method. Every other tab,
// and any script listening on the channel, sees public keys and ciphertext
// only. What this cannot stop (any script of the origin can open the
// database itself, or answer a joining tab as if it were the owner): the
// package README, "Several tabs", says.
//
// Protocol with the main thread (structured-clone messages):
//   main -> worker  { id, method, args }
//   worker -> main  { id, ok: true, value } | { id, ok: false, error: { code, message, serverCode? } }
//                   { event }   (a change or status event, no id)
//                   { rows: { watch, rows } }   (a live query's rows)
// Between workers (BroadcastChannel; `to`/`from` are worker ids; `key` a raw ECDH public key):
//   { kind: "join", from, schema, url, tab, key }  a client asks the owner to serve it (canonical schema and URL; its page)
//   { kind: "welcome", to, owner, key }         the owner accepts it
//   { kind: "refused", to, reason, url, tab }   the owner refuses it: reason "schema" or "url" (url, tab: the owner's)
//   { kind: "owner", owner, key }               a new owner announces itself (on taking over)
//   { kind: "remote", url }                     the owner's server changed (setRemote; canonical URL, no token)
//   { kind: "call", to, from, id, method, args } | { ..., method, sealed: { key, iv, data } } (SECRET_METHODS)
//   { kind: "reply", to, id, ok, value | error } | { kind: "reply", to, id, retry: true } (not run: the owner is closing)
//   { kind: "rows", to, watch, rows }           a client's live query
//   { kind: "event", event }                    every change and status event

import init, { Replica, canonicalRemote, canonicalSchema, changeFileKey, newRecoveryPhrase } from "./erth_wasm.js";
import { ErthError } from "./errors.js";

/** This worker's id on the channel. */
const me = crypto.randomUUID();
/** "idle" until open, then "owner", "client" or "closed". */
let role = "idle";
let replica = null;
let subscription = null;
/** Live queries this worker runs, by `${worker id}:${watch id}`. */
const watches = new Map();
/** Open write transactions (`WriteTx`) this worker holds, by `${worker id}:${transaction id}`. */
const transactions = new Map();
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
  addSubscription: (name, table, filter, params, ttlMs) =>
    replica.addSubscription(name, table, filter, params, ttlMs ?? undefined),
  removeSubscription: (name) => replica.removeSubscription(name),
  subscriptions: () => replica.subscriptions(),
  purge: (olderThanMs) => replica.purge(olderThanMs ?? undefined),
  waitForSubscription: (name) => replica.waitForSubscription(name),
  forgetQuarantined: () => aroundStatus(replica.forgetQuarantined()),
  retryRejected: () => aroundStatus(replica.retryRejected()),
  discardRejected: (table, id) => aroundStatus(replica.discardRejected(table, id)),
  setAuthToken: (token) => replica.setAuthToken(token ?? undefined),
  setRemote(url, token) {
    replica.setRemote(url ?? undefined, token ?? undefined);
    queueStatus();
    if (shared) {
      // Tabs that join from now on must use this server; the others adopt it.
      shared.url = canonicalRemote(url ?? undefined, shared.options.allowInsecureHttp ?? undefined) ?? null;
      shared.channel.postMessage({ kind: "remote", url: shared.url });
    }
  },
  setOnline: (value) => switchNetwork("app", value),
  network: (value) => switchNetwork("browser", value),
};

function unwatch(key) {
  watches.get(key)?.free();
  watches.delete(key);
}

/** As the owner: tab `tab` went away; its live queries stop and its open transactions roll back. */
function forgetTab(tab) {
  for (const key of [...watches.keys()]) {
    if (key.startsWith(`${tab}:`)) unwatch(key);
  }
  for (const [key, tx] of [...transactions]) {
    if (key.startsWith(`${tab}:`)) {
      transactions.delete(key);
      tx.free(); // rolls back
    }
  }
}

function transactionLost() {
  return new ErthError(
    "Interrupted",
    "this write transaction was rolled back before it ended: the tab holding the database closed or reloaded " +
      "while it was open (or the database was closed); nothing it wrote was kept. Run it again",
  );
}

/**
 * As the owner: tab `tab`'s write transaction `id`. `begin` waits for the
 * replica's write lock (`DatabaseLocked` after lockTimeoutMs), `txExecute`
 * runs one statement in it, `txEnd` commits (`true`) or rolls back.
 */
async function transact(tab, method, [id, ...args]) {
  const key = `${tab}:${id}`;
  if (method === "begin") {
    const tx = await replica.writeTransaction();
    if (closing || transactions.has(key) || (tab !== me && !shared?.clients.has(tab))) {
      tx.free(); // the tab went away (or the database closes) while it waited: rolled back
      throw transactionLost();
    }
    transactions.set(key, tx);
    return;
  }
  const tx = transactions.get(key);
  if (!tx) throw transactionLost();
  if (method === "txExecute") return tx.execute(...args);
  transactions.delete(key);
  try {
    if (args[0] === true) await tx.commit();
    else tx.rollback();
  } finally {
    tx.free();
  }
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
      if (method === "begin" || method === "txExecute" || method === "txEnd") return transact(tab, method, args);
      if (!Object.hasOwn(methods, method)) throw new ErthError("InvalidInput", `unknown method ${String(method)}`);
      return methods[method](...args);
    })(),
  );
}

// ---- sealing secrets between two workers ----

/** Calls whose arguments are secrets: sent to the owner sealed, never in clear. */
const SECRET_METHODS = new Set(["setAuthToken", "setRemote"]);
const ECDH = { name: "ECDH", namedCurve: "P-256" };
/** This worker's ECDH key pair (the private key cannot be exported), and its raw public key. */
let keyPair = null;
let publicKey = null;
/** AES-GCM keys shared with other workers, by their public key (hex). */
const pairKeys = new Map();

async function makeKeyPair() {
  keyPair = await crypto.subtle.generateKey(ECDH, false, ["deriveBits"]);
  publicKey = new Uint8Array(await crypto.subtle.exportKey("raw", keyPair.publicKey));
}

const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** The AES-GCM key this worker shares with the worker whose public key is `peer`. */
function pairKey(peer) {
  if (!(peer instanceof Uint8Array)) return Promise.reject(new ErthError("Internal", "a tab sent no public key"));
  const id = hex(peer);
  let key = pairKeys.get(id);
  if (!key) {
    key = (async () => {
      const theirs = await crypto.subtle.importKey("raw", peer, ECDH, false, []);
      const secret = await crypto.subtle.deriveBits({ name: "ECDH", public: theirs }, keyPair.privateKey, 256);
      const hkdf = await crypto.subtle.importKey("raw", secret, "HKDF", false, ["deriveKey"]);
      const info = new TextEncoder().encode("erth-sync tab channel v1");
      return crypto.subtle.deriveKey(
        { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(32), info },
        hkdf,
        { name: "AES-GCM", length: 256 },
        false,
        ["encrypt", "decrypt"],
      );
    })();
    pairKeys.set(id, key);
    key.catch(() => pairKeys.delete(id));
  }
  return key;
}

/** What sealed data is bound to: sender, receiver, call and method (no replay elsewhere). */
const sealLabel = (from, to, id, method) => new TextEncoder().encode(`erth-sync call ${from}>${to} #${id} ${method}`);

/** `args` sealed for worker `to` (public key `toKey`). */
async function seal(to, toKey, id, method, args) {
  const key = await pairKey(toKey);
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const clear = new TextEncoder().encode(JSON.stringify(args));
  const additionalData = sealLabel(me, to, id, method);
  const data = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData }, key, clear));
  return { key: publicKey, iv, data };
}

/** The arguments of a sealed call from worker `from`. */
async function unseal({ from, id, method, sealed }) {
  try {
    const key = await pairKey(sealed?.key);
    const additionalData = sealLabel(from, me, id, method);
    const clear = await crypto.subtle.decrypt({ name: "AES-GCM", iv: sealed.iv, additionalData }, key, sealed.data);
    const args = JSON.parse(new TextDecoder().decode(clear));
    if (Array.isArray(args)) return args;
  } catch {
    // Reported below, without details.
  }
  throw new ErthError("Internal", `the tab holding the database could not read this tab's ${method}() call`);
}

// ---- sharing one database between tabs ----

/** Calls that only read, or set a switch to a value: safe to send again to a new owner. */
const REPEATABLE = new Set([
  "begin",
  "rejectedRows",
  "waitForFirstSync",
  "addSubscription",
  "subscriptions",
  "waitForSubscription",
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
  const here = shared;
  if (!SECRET_METHODS.has(method) && here.outbox.pending === 0) {
    here.channel.postMessage({ kind: "call", to, from: me, id, method, args });
    return;
  }
  // Sealing takes a moment: this call, and the ones after it, wait in line.
  here.outbox.pending++;
  const ownerKey = here.ownerKey;
  here.outbox.last = here.outbox.last
    .then(async () => {
      const message = { kind: "call", to, from: me, id, method };
      if (SECRET_METHODS.has(method)) message.sealed = await seal(to, ownerKey, id, method, args);
      else message.args = args;
      here.channel.postMessage(message);
    })
    .catch((e) => {
      here.sent.delete(id);
      const why = e instanceof ErthError ? e.message : String(e?.message ?? e);
      call.reject(new ErthError("Internal", `could not send ${method}() to the tab holding the database: ${why}`));
    })
    .finally(() => here.outbox.pending--);
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
  if (!globalThis.navigator?.locks || typeof BroadcastChannel !== "function" || !globalThis.crypto?.subtle) {
    throw new ErthError("Storage", "erth-sync needs the Web Locks API, BroadcastChannel and Web Crypto (a secure context)");
  }
  // Tabs compare the core's canonical forms of their schemas and server
  // URLs (a malformed one fails here; the URL's form holds no token).
  const schema = canonicalSchema(options.schema ?? undefined);
  const url = canonicalRemote(options.url ?? undefined, options.allowInsecureHttp ?? undefined) ?? null;
  await makeKeyPair();
  shared = {
    name: options.name,
    /** This tab's options, as its own setAuthToken/setRemote calls changed them (used if it takes over). */
    options: { ...options },
    schema,
    /** The page that opened this worker's database (index.js's TAB). */
    tab: options.tab,
    /** The server URL (canonical): as the owner, the database's; as a client, the one it joined with or adopted. */
    url,
    channel: new BroadcastChannel(`erth-sync:${options.name}`),
    releaseTab: await holdTabLock(options.name),
    /** As the owner: releases the owner lock. As a client: aborts its place in the lock's queue. */
    releaseOwner: null,
    queue: null,
    /** As a client: the owner's id, once known (null again while a closing owner hands over), and its public key. */
    owner: null,
    ownerKey: null,
    /** As a client: whether an owner accepted this tab (until then, a new owner is asked again). */
    joined: false,
    /** As a client: calls waiting to be sent in order behind a sealed one (sealing takes a moment). */
    outbox: { pending: 0, last: Promise.resolve() },
    /** As the owner: per client, calls waiting to start in order behind a sealed one (`{ pending, last }`). */
    inbox: new Map(),
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
    askToJoin();
    setTimeout(() => resolve(null), timeoutMs);
  });
  if (role === "owner") return;
  const refusal =
    owner?.error ??
    (owner === null
      ? `another tab or worker holds database "${options.name}" and did not answer within ${timeoutMs} ms ` +
        "(it may still be opening it, or run an erth-sync version that cannot share it)"
      : owner.refused === "schema"
        ? owner.tab === options.tab
          ? `this tab already has database "${options.name}" open with a different schema: share that handle ` +
            "(one schema per database), or close it first"
          : `another tab has database "${options.name}" open with a different schema (another version of the app?): ` +
            "close or reload that tab, then open it again"
        : owner.refused === "url"
          ? `another tab has database "${options.name}" open with another server (${owner.url ?? "none: local-only"}; ` +
            `this tab: ${url ?? "none: local-only"}): tabs share one database only with one server. Use another ` +
            "database name per server (or per user), or close that tab"
          : owner.refused !== undefined && `the tab holding database "${options.name}" refused this tab`);
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
  shared.joined = true;
  shared.channel.postMessage({ kind: "owner", owner: me, key: publicKey });
  // What this tab had at the old owner, and what waited for one, runs here now.
  ownerIs(me, publicKey);
}

/** As a client not yet accepted: asks whoever owns the database to serve this tab. */
function askToJoin() {
  shared.channel.postMessage({
    kind: "join",
    from: me,
    schema: shared.schema,
    url: shared.url,
    tab: shared.tab,
    key: publicKey,
  });
}

/** As the owner: accepts a tab that uses this database's schema and server, or says why not. */
function admit({ from, schema, url }) {
  if (typeof from !== "string") return;
  const reply = (fields) => shared.channel.postMessage({ to: from, ...fields });
  if (schema !== shared.schema) return reply({ kind: "refused", reason: "schema", tab: shared.tab });
  if ((url ?? null) !== shared.url) return reply({ kind: "refused", reason: "url", url: shared.url, tab: shared.tab });
  reply({ kind: "welcome", owner: me, key: publicKey });
}

function onChannel(m) {
  if (!shared || m === null || typeof m !== "object") return;
  if (m.kind === "join" && role === "owner" && !closing) {
    admit(m);
  } else if (m.kind === "welcome" && m.to === me && role === "client") {
    shared.joined = true;
    ownerIs(m.owner, m.key);
  } else if (m.kind === "refused" && m.to === me && role === "client" && !shared.joined) {
    for (const resolve of shared.ownerKnown.splice(0)) resolve({ refused: m.reason, url: m.url, tab: m.tab });
  } else if (m.kind === "owner" && role === "client") {
    // A new owner took over: it accepted this tab's URL and schema before
    // (they are the same as its own), unless this tab is still joining.
    if (shared.joined) ownerIs(m.owner, m.key);
    else askToJoin();
  } else if (m.kind === "remote" && role === "client") {
    // Another tab re-pointed the database: take it over with that server, and
    // without this tab's token, which was for the old one.
    if (m.url !== shared.url) {
      shared.url = m.url ?? null;
      shared.options = { ...shared.options, url: m.url ?? "", authToken: undefined };
    }
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

/** The owner is `owner`, with public key `key` (first contact, a take-over, this worker itself, or after a retry). */
function ownerIs(owner, key) {
  const moved = shared.registeredAt !== null && shared.registeredAt !== owner;
  shared.owner = shared.registeredAt = owner;
  shared.ownerKey = key;
  for (const resolve of shared.ownerKnown.splice(0)) resolve({ owner });
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
    else if (call.method === "txExecute") call.reject(transactionLost());
    else if (call.method === "txEnd" && call.args[1] !== true) call.resolve(); // rolled back either way
    else call.reject(interrupted(call.method === "txEnd" ? "writeTransaction" : call.method));
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
function answer(message) {
  const { from, id, method } = message;
  const channel = shared.channel;
  const reply = (fields) => {
    try {
      channel.postMessage({ kind: "reply", to: from, id, ...fields });
    } catch {
      // This worker left the channel meanwhile; the client asks the next owner.
    }
  };
  const start = (args) => {
    if (closing || !shared) return reply({ retry: true });
    run(from, method, args).then(
      (value) => reply({ ok: true, value }),
      (err) => reply({ ok: false, error: toPlainError(err) }),
    );
  };
  if (closing) return reply({ retry: true });
  watchClient(from);
  let line = shared.inbox.get(from);
  if (!SECRET_METHODS.has(method) && !line) return start(Array.isArray(message.args) ? message.args : []);
  // A sealed call is opened first; the client's later calls start after it.
  if (!line) shared.inbox.set(from, (line = { pending: 0, last: Promise.resolve() }));
  line.pending++;
  line.last = line.last
    .then(() => (SECRET_METHODS.has(method) ? unseal(message) : Array.isArray(message.args) ? message.args : []))
    .then(start, (err) => reply({ ok: false, error: toPlainError(err) }))
    .finally(() => {
      if (--line.pending === 0 && shared?.inbox.get(from) === line) shared.inbox.delete(from);
    });
}

/** As the owner: once client `id`'s worker is gone, drops its live queries and rolls back its transactions. */
function watchClient(id) {
  if (shared.clients.has(id)) return;
  shared.clients.add(id);
  navigator.locks
    .request(`erth-sync-tab:${shared.name}:${id}`, () => {
      shared?.clients.delete(id);
      shared?.inbox.delete(id);
      forgetTab(id);
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
    // Open transactions roll back first: calls waiting for them can end.
    for (const tx of transactions.values()) tx.free();
    transactions.clear();
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

/**
 * This tab's own server and token, as its app last set them (a client
 * opens the database with them if it takes over).
 */
function remember(method, args) {
  if (!shared) return;
  if (method === "setAuthToken") shared.options = { ...shared.options, authToken: args[0] ?? undefined };
  if (method === "setRemote") {
    const [url, token] = args;
    shared.options = { ...shared.options, url: url ?? "", authToken: token ?? undefined };
    shared.url = canonicalRemote(url ?? undefined, shared.options.allowInsecureHttp ?? undefined) ?? null;
  }
}

/** A call from this tab's main thread. */
async function fromPage(method, args) {
  if (method === "open") return open(...args);
  if (method === "close") return close();
  if (method === "newRecoveryPhrase") {
    await loadWasm();
    return newRecoveryPhrase();
  }
  if (method === "changeFileKey") {
    await loadWasm();
    return changeFileKey(...args);
  }
  if (role === "idle" || role === "closed" || closing) throw closedError();
  const [id] = args;
  if (method === "watch") shared?.myWatches.set(id, args);
  if (method === "unwatch") shared?.myWatches.delete(id);
  return submit(method, args).then(
    (value) => {
      remember(method, args);
      return value;
    },
    (e) => {
      if (method === "watch") shared?.myWatches.delete(id);
      throw e;
    },
  );
}

self.onmessage = (e) => {
  const { id, method, args } = e.data;
  fromPage(method, Array.isArray(args) ? args : []).then(
    (value) => post({ id, ok: true, value }),
    (err) => post({ id, ok: false, error: toPlainError(err) }),
  );
};
