// erth-sync: local-first SQLite for the browser, with the app's own schema,
// plain SQL and live queries, that syncs with a libSQL server (Turso, sqld,
// tursodb --sync-server).
//
// This is the main-thread API. The database itself runs in a dedicated
// Worker (worker.js; OPFS persistence needs one): every method here checks
// the arguments wasm could not (the worker checks options and SQL
// parameters), sends one message and returns a Promise of the answer.
// Errors are ErthError instances with a `code` (see errors.js). Types and
// the documentation of every method: index.d.ts.

import { ErrorCode, ErthError } from "./errors.js";

export { ErrorCode, ErthError };

const CONSTRUCT = Symbol("ErthDb");
/** This page's id: a worker tells a second open of a database in this same tab from another tab's. */
const TAB = globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random()}`;
/** How long close() lets the worker finish running calls before stopping it. */
const CLOSE_GRACE_MS = 3000;

const invalid = (message) => new ErthError(ErrorCode.InvalidInput, message);

function checkString(value, what) {
  if (typeof value !== "string") throw invalid(`${what} must be a string`);
}

function checkOptionalString(value, what) {
  if (value !== undefined && value !== null && typeof value !== "string") {
    throw invalid(`${what} must be a string, null or undefined`);
  }
}

/** The schema option as the JSON text the core reads (an object is stringified). */
function schemaText(schema) {
  if (schema === undefined || schema === null || typeof schema === "string") return schema ?? undefined;
  if (typeof schema !== "object") throw invalid("schema must be an object or its JSON text");
  try {
    return JSON.stringify(schema);
  } catch (e) {
    throw invalid(`schema cannot be written as JSON: ${e.message}`);
  }
}

/**
 * Where the worker is expected, for error messages. Deliberately not
 * `new URL(..., import.meta.url)`: bundlers would take that for another
 * reference to the file (webpack even for every file of the package).
 * After bundling, the worker may have another name: the message says so.
 */
function workerHref() {
  const here = String(import.meta.url);
  return here.slice(0, here.lastIndexOf("/") + 1) + "worker.js";
}

/** Why a database cannot be kept in this context, or null. */
function contextProblem(storage) {
  if (typeof Worker !== "function") return "erth-sync needs Web Workers (a browser page or worker)";
  if (storage !== "memory" && globalThis.isSecureContext === false) {
    return (
      `this page (${globalThis.location?.origin ?? "this origin"}) is not a secure context: the origin private ` +
      "file system (OPFS) and Web Locks that erth-sync keeps the database with exist only on https:// pages " +
      "and on http://localhost or http://127.0.0.1. Serve the page over https (or from localhost), " +
      "or open the database with storage: \"memory\" (nothing is kept)"
    );
  }
  return null;
}

function report(error) {
  if (typeof globalThis.reportError === "function") {
    globalThis.reportError(error);
  } else {
    console.error(error);
  }
}

/** Calls an app's callback; what it throws is reported, not thrown. */
function deliver(callback, value) {
  try {
    callback?.(value);
  } catch (e) {
    report(e);
  }
}

/** One open database. Create it with `ErthDb.open(...)`. */
export class ErthDb {
  #worker;
  #name;
  #pending = new Map();
  #nextId = 1;
  #listeners = new Set();
  #failure = null;
  #closed = null;
  #onNetwork = null;
  /** Live queries by id: their callbacks. */
  #watches = new Map();
  #nextWatch = 1;
  /** Write transactions' ids (the worker keys them by this handle's worker). */
  #nextTx = 1;
  /** Set once the worker answered anything (so it loaded). */
  #heard = false;

  /** The typed todo API (the built-in `todos` table; needs it in the schema). */
  todos;

  constructor(token, worker, name, workerUrl) {
    if (token !== CONSTRUCT) throw new TypeError("use ErthDb.open(options)");
    this.#worker = worker;
    this.#name = name;
    worker.onmessage = (e) => {
      this.#heard = true;
      this.#receive(e.data);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      if (!this.#heard) {
        // Before its first answer: a module worker that cannot be fetched or
        // parsed (404, 403, wrong MIME type, a module it imports missing;
        // Chromium gives no details) or whose code fails to start.
        const detail = e.message ? ` (${e.message})` : "";
        this.#fail(
          new ErthError(
            ErrorCode.LoadFailed,
            `could not load the erth-sync worker from ${workerUrl}${detail} (or a module it imports: erth_wasm.js, ` +
              "errors.js; a bundler may have renamed them): " +
              "check that the file is served with HTTP 200 as JavaScript, and, with a bundler, that the package's " +
              "worker.js, erth_wasm.js and erth_wasm_bg.wasm are emitted next to each other (see the erth-sync README, Bundlers)",
          ),
        );
        return;
      }
      this.#fail(new ErthError(ErrorCode.Internal, `the erth-sync worker failed: ${e.message || "unknown error"}`));
    };
    worker.onmessageerror = () => {
      this.#fail(new ErthError(ErrorCode.Internal, "the erth-sync worker sent a message that could not be read"));
    };
    /** `method(...args)` after checking that the arguments named in `strings` are strings. */
    const call = (method, strings, ...args) => {
      strings.forEach((what, i) => checkString(args[i], what));
      return this.#call(method, args);
    };
    this.todos = Object.freeze({
      add: async (title) => call("add", ["title"], title),
      listActive: async () => call("listActive", []),
      get: async (id) => call("get", ["id"], id),
      rename: async (id, title) => call("rename", ["id", "title"], id, title),
      setCompleted: async (id, completed) => {
        if (typeof completed !== "boolean") throw invalid("completed must be a boolean");
        return call("setCompleted", ["id"], id, completed);
      },
      delete: async (id) => call("delete", ["id"], id),
    });
  }

  /**
   * Opens (creating if needed) the database `name`, persisted in this
   * origin's private file system. Every tab of the origin may open it at
   * once: one tab's worker owns it and the others' calls go there (README,
   * "Several tabs").
   */
  static async open(options) {
    if (options === null || typeof options !== "object") throw invalid("options must be an object");
    // The worker checks the options (never showing a token's value); the
    // schema is stringified here.
    const { name, url, authToken, encryptionKey, columnKeys, fileKey, storage } = options;
    checkString(name, "name");
    const schema = schemaText(options.schema);
    const problem = contextProblem(storage);
    if (problem) throw new ErthError(ErrorCode.Storage, problem);
    // This exact form (`new Worker(new URL("./worker.js", import.meta.url),
    // { type: "module" })`, options static) is what bundlers (Vite, webpack 5,
    // Parcel) recognise to emit the worker.
    const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
    const db = new ErthDb(CONSTRUCT, worker, name, workerHref());
    const { autoSync, lockTimeoutMs, requestTimeoutMs, syncTimeoutMs, allowInsecureHttp } = options;
    const browserOnline = typeof navigator === "object" && navigator.onLine !== false;
    try {
      await db.#call("open", [
        {
          name,
          url,
          authToken,
          encryptionKey,
          columnKeys,
          fileKey,
          schema,
          autoSync,
          storage,
          lockTimeoutMs,
          requestTimeoutMs,
          syncTimeoutMs,
          allowInsecureHttp,
          browserOnline,
          tab: TAB,
        },
      ]);
    } catch (e) {
      db.#stop(e);
      throw e;
    }
    db.#watchNetwork();
    return db;
  }

  /**
   * A new recovery phrase for `columnKeys` (which takes a phrase in place
   * of a hex key): 24 lowercase English BIP-39 words separated by single
   * spaces, 256 random bits. Runs in a short-lived worker (the phrase never
   * leaves this page's workers); the same phrase gives the same key on
   * every device.
   */
  static async newRecoveryPhrase() {
    const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
    const helper = new ErthDb(CONSTRUCT, worker, "", workerHref());
    try {
      return await helper.#call("newRecoveryPhrase", []);
    } finally {
      helper.#stop(new ErthError(ErrorCode.InvalidInput, "the recovery phrase helper is done"));
    }
  }

  /**
   * Changes the key database `name` is encrypted with at rest (OPFS):
   * `oldKey` null encrypts a plain database, `newKey` null decrypts it;
   * each key is 64 hex digits or a recovery phrase, as `fileKey`. The
   * database must be closed in every tab (waits up to `lockTimeoutMs`,
   * then `DatabaseLocked`); `WrongKey` if `oldKey` does not open it, which
   * then stays as it was. Runs in a short-lived worker.
   */
  static async changeFileKey(name, oldKey, newKey, options) {
    checkString(name, "name");
    checkOptionalString(oldKey, "oldKey");
    checkOptionalString(newKey, "newKey");
    const lockTimeoutMs = options?.lockTimeoutMs;
    if (lockTimeoutMs !== undefined && !(Number.isInteger(lockTimeoutMs) && lockTimeoutMs >= 0)) {
      throw invalid("lockTimeoutMs must be a non-negative integer");
    }
    const problem = contextProblem("opfs");
    if (problem) throw new ErthError(ErrorCode.Storage, problem);
    const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
    const helper = new ErthDb(CONSTRUCT, worker, name, workerHref());
    try {
      return await helper.#call("changeFileKey", [name, oldKey ?? null, newKey ?? null, lockTimeoutMs ?? null]);
    } finally {
      helper.#stop(new ErthError(ErrorCode.InvalidInput, "the file key helper is done"));
    }
  }

  /** The database name given to `open`. */
  get name() {
    return this.#name;
  }

  async execute(sql, params) {
    checkString(sql, "sql");
    return this.#call("execute", [sql, params ?? []]);
  }

  async getAll(sql, params) {
    return this.#query("getAll", sql, params);
  }

  async getOptional(sql, params) {
    const rows = await this.#query("getOptional", sql, params);
    return rows.length > 0 ? rows[0] : null;
  }

  async get(sql, params) {
    const rows = await this.#query("get", sql, params);
    if (rows.length === 0) throw new ErthError(ErrorCode.NotFound, "the query returned no row");
    return rows[0];
  }

  /** A read-only statement's rows; `call` names the method in errors (`getAll() runs read-only statements`). */
  #query(call, sql, params) {
    checkString(sql, "sql");
    return this.#call("query", [sql, params ?? [], call]);
  }

  /**
   * The statements `fn(tx)` queues with `tx.execute` run as one local
   * transaction once `fn` returns; a tx only queues writes (it cannot read
   * its own), and `fn` throwing sends nothing.
   */
  async transaction(fn) {
    if (typeof fn !== "function") throw invalid("transaction takes a function (tx) => { tx.execute(...) }");
    const statements = [];
    let open = true;
    const tx = Object.freeze({
      execute(sql, params) {
        if (!open) {
          throw invalid("this transaction has ended: call tx.execute() before the transaction callback returns");
        }
        checkString(sql, "sql");
            statements.push({ sql, params: params ?? [] });
      },
    });
    try {
      await fn(tx);
    } finally {
      open = false;
    }
    if (statements.length === 0) return [];
    return this.#call("transaction", [statements]);
  }

  /**
   * An interactive write transaction: `fn(tx)` reads and writes through
   * `tx` (its reads see its own writes; no other writer of any tab gets
   * between them); it commits once `fn` resolves, resolving to what `fn`
   * returned, and rolls back if `fn` throws, rejecting with that error.
   */
  async writeTransaction(fn) {
    if (typeof fn !== "function") throw invalid("writeTransaction takes a function async (tx) => { ... }");
    const id = this.#nextTx++;
    await this.#call("begin", [id]);
    let open = true;
    const execute = async (sql, params) => {
      checkString(sql, "sql");
      if (!open) throw invalid("this transaction has ended: use tx only before the transaction callback returns");
      return this.#call("txExecute", [id, sql, params ?? []]);
    };
    const tx = Object.freeze({
      execute,
      getAll: async (sql, params) => (await execute(sql, params)).rows,
      getOptional: async (sql, params) => (await execute(sql, params)).rows[0] ?? null,
      get: async (sql, params) => {
        const [row] = (await execute(sql, params)).rows;
        if (row === undefined) throw new ErthError(ErrorCode.NotFound, "the query returned no row");
        return row;
      },
    });
    let result;
    try {
      result = await fn(tx);
    } catch (e) {
      open = false;
      await this.#call("txEnd", [id, false]).catch(() => {});
      throw e;
    }
    open = false;
    await this.#call("txEnd", [id, true]);
    return result;
  }

  /**
   * A live query: `callback(rows)` now and whenever the rows change. Returns
   * a function that stops it; its `ready` Promise settles once the query ran
   * (rejecting for bad SQL, which also goes to `options.onError`, else to
   * `reportError`).
   */
  watch(sql, params, callback, options = {}) {
    checkString(sql, "sql");
    if (typeof callback !== "function") throw invalid("callback must be a function");
    const onError = options?.onError;
    if (onError !== undefined && typeof onError !== "function") throw invalid("onError must be a function");
    const id = this.#nextWatch++;
    this.#watches.set(id, callback);
    const ready = this.#call("watch", [id, sql, params ?? []]).then(
      () => undefined,
      (error) => {
        if (this.#watches.delete(id)) {
          if (onError) onError(error);
          else report(error);
        }
        throw error;
      },
    );
    ready.catch(() => {});
    const unsubscribe = () => {
      if (this.#watches.delete(id) && !this.#closed && !this.#failure) {
        this.#send("unwatch", [id]).catch(() => {});
      }
    };
    unsubscribe.ready = ready;
    return unsubscribe;
  }

  sync() {
    return this.#call("sync", []);
  }

  status() {
    return this.#call("status", []);
  }

  rejectedRows() {
    return this.#call("rejectedRows", []);
  }

  waitForFirstSync() {
    return this.#call("waitForFirstSync", []);
  }

  /**
   * Partial sync: subscribes this database to the rows of `table` that
   * `filter` (one SQL expression with `?` parameters, run on the server)
   * selects. See index.d.ts.
   */
  addSubscription(name, table, filter, params = [], options = {}) {
    return this.#call("addSubscription", [name, table, filter, params, options?.ttlMs ?? null]);
  }

  removeSubscription(name) {
    return this.#call("removeSubscription", [name]);
  }

  subscriptions() {
    return this.#call("subscriptions", []);
  }

  /**
   * Removes from the server the tombstones older than `olderThanMs` (default
   * 30 days). See index.d.ts.
   */
  purge(options = {}) {
    return this.#call("purge", [options?.olderThanMs ?? null]);
  }

  waitForSubscription(name) {
    return this.#call("waitForSubscription", [name]);
  }

  quarantinedRows() {
    return this.#call("quarantinedRows", []);
  }

  forgetQuarantined() {
    return this.#call("forgetQuarantined", []);
  }

  retryRejected() {
    return this.#call("retryRejected", []);
  }

  async discardRejected(table, id) {
    checkString(table, "table");
    checkString(id, "id");
    await this.#call("discardRejected", [table, id]);
  }

  async setAuthToken(token) {
    checkOptionalString(token, "token");
    await this.#call("setAuthToken", [token ?? null]);
  }

  async setRemote(url, token) {
    checkOptionalString(url, "url");
    checkOptionalString(token, "token");
    await this.#call("setRemote", [url ?? null, token ?? null]);
  }

  async setOnline(online) {
    if (typeof online !== "boolean") throw invalid("online must be a boolean");
    await this.#call("setOnline", [online]);
  }

  subscribe(listener) {
    if (typeof listener !== "function") throw invalid("listener must be a function");
    const entry = { listener };
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /** Waits briefly for running calls, then stops the worker (releasing the database for other tabs). */
  async close() {
    if (this.#closed) return this.#closed;
    this.#closed = (async () => {
      let timer;
      const grace = new Promise((resolve) => {
        timer = setTimeout(resolve, CLOSE_GRACE_MS);
      });
      // The worker is stopped below either way.
      await Promise.race([this.#send("close", []), grace]).catch(() => {});
      clearTimeout(timer);
      this.#stop(new ErthError(ErrorCode.InvalidInput, "the database is closed"));
    })();
    return this.#closed;
  }

  #watchNetwork() {
    if (typeof window !== "object" || typeof window.addEventListener !== "function") return;
    this.#onNetwork = () => {
      this.#send("network", [navigator.onLine !== false]).catch(() => {});
    };
    window.addEventListener("online", this.#onNetwork);
    window.addEventListener("offline", this.#onNetwork);
  }

  #call(method, args) {
    if (this.#closed) return Promise.reject(new ErthError(ErrorCode.InvalidInput, "the database is closed"));
    return this.#send(method, args);
  }

  #send(method, args) {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      try {
        this.#worker.postMessage({ id, method, args });
      } catch (e) {
        // DataCloneError: a function, symbol or class instance in the arguments.
        reject(invalid(`the arguments of ${method} cannot be sent to the database worker: ${e.message}`));
        return;
      }
      this.#pending.set(id, { resolve, reject });
    });
  }

  #receive(message) {
    if (message.rows) return deliver(this.#watches.get(message.rows.watch), message.rows.rows);
    if (message.event) {
      for (const { listener } of [...this.#listeners]) deliver(listener, message.event);
      return;
    }
    const call = this.#pending.get(message.id);
    if (!call) return;
    this.#pending.delete(message.id);
    if (message.ok) {
      call.resolve(message.value);
    } else {
      const { code, message: text, serverCode } = message.error;
      call.reject(new ErthError(code, text, serverCode));
    }
  }

  #fail(error) {
    if (!this.#failure) this.#failure = error;
    for (const { reject } of this.#pending.values()) reject(error);
    this.#pending.clear();
  }

  #stop(error) {
    this.#fail(error);
    this.#worker.terminate();
    this.#listeners.clear();
    this.#watches.clear();
    if (this.#onNetwork) {
      window.removeEventListener("online", this.#onNetwork);
      window.removeEventListener("offline", this.#onNetwork);
      this.#onNetwork = null;
    }
  }
}
