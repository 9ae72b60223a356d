// erth-sync: local-first SQLite for the browser, with the app's own schema,
// plain SQL and live queries, that syncs with a libSQL server (Turso, sqld,
// tursodb --sync-server).
//
// This is the main-thread API. The database itself runs in a dedicated
// Worker (worker.js; OPFS persistence needs one): every method here sends
// one message and returns a Promise of the answer. Errors are ErthError
// instances with a `code` (see errors.js). Types: index.d.ts.

import { ErrorCode, ErthError } from "./errors.js";

export { ErrorCode, ErthError };

const CONSTRUCT = Symbol("ErthDb");
/** How long close() lets the worker finish running calls before stopping it. */
const CLOSE_GRACE_MS = 3000;

function invalid(message) {
  return new ErthError(ErrorCode.InvalidInput, message);
}

function checkString(value, what) {
  if (typeof value !== "string") throw invalid(`${what} must be a string`);
}

function checkOptionalString(value, what) {
  if (value !== undefined && value !== null && typeof value !== "string") {
    throw invalid(`${what} must be a string, null or undefined`);
  }
}

function checkParams(params, what = "params") {
  if (params !== undefined && params !== null && !Array.isArray(params)) {
    throw invalid(`${what} must be an array of values (or omitted)`);
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
  /** Live queries by id: `{ callback }`. */
  #watches = new Map();
  #nextWatch = 1;
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
    const call = (method, ...args) => this.#call(method, args);
    this.todos = Object.freeze({
      add: async (title) => {
        checkString(title, "title");
        return call("add", title);
      },
      listActive: async () => call("listActive"),
      get: async (id) => {
        checkString(id, "id");
        return call("get", id);
      },
      rename: async (id, title) => {
        checkString(id, "id");
        checkString(title, "title");
        return call("rename", id, title);
      },
      setCompleted: async (id, completed) => {
        checkString(id, "id");
        if (typeof completed !== "boolean") throw invalid("completed must be a boolean");
        return call("setCompleted", id, completed);
      },
      delete: async (id) => {
        checkString(id, "id");
        return call("delete", id);
      },
    });
  }

  /**
   * Opens (creating if needed) the database `name`, persisted in this
   * origin's private file system. Every tab of the origin may open it at
   * once: one tab's worker owns it and the others' calls go there (README,
   * "Several tabs"). Rejects with `DatabaseLocked` if the owning tab does not
   * answer within `lockTimeoutMs` (default 5000) or uses another schema.
   */
  static async open(options) {
    if (options === null || typeof options !== "object") throw invalid("options must be an object");
    const { name, url, authToken, encryptionKey, autoSync, storage, lockTimeoutMs, requestTimeoutMs, allowInsecureHttp } = options;
    checkString(name, "name");
    checkOptionalString(url, "url");
    checkOptionalString(authToken, "authToken");
    checkOptionalString(encryptionKey, "encryptionKey");
    const schema = schemaText(options.schema);
    const problem = contextProblem(storage);
    if (problem) throw new ErthError(ErrorCode.Storage, problem);
    // This exact form (`new Worker(new URL("./worker.js", import.meta.url),
    // { type: "module" })`, options static) is what bundlers (Vite, webpack 5,
    // Parcel) recognise to emit the worker.
    const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
    const db = new ErthDb(CONSTRUCT, worker, name, workerHref());
    const browserOnline = typeof navigator === "object" && navigator.onLine !== false;
    try {
      await db.#call("open", [
        {
          name,
          url,
          authToken,
          encryptionKey,
          schema,
          autoSync,
          storage,
          lockTimeoutMs,
          requestTimeoutMs,
          allowInsecureHttp,
          browserOnline,
        },
      ]);
    } catch (e) {
      db.#stop(e);
      throw e;
    }
    db.#watchNetwork();
    return db;
  }

  /** The database name given to `open`. */
  get name() {
    return this.#name;
  }

  /**
   * Runs one SQL statement with positional parameters (`?`, `?NNN`) as its
   * own transaction: `{ rowsAffected, rows }`. Writes to synced tables sync.
   */
  async execute(sql, params) {
    checkString(sql, "sql");
    checkParams(params);
    return this.#call("execute", [sql, params ?? []]);
  }

  /** Runs a read-only statement: every row, as objects keyed by column name. */
  async getAll(sql, params) {
    checkString(sql, "sql");
    checkParams(params);
    return this.#call("query", [sql, params ?? []]);
  }

  /** The first row of a read-only statement, or `null` when it has none. */
  async getOptional(sql, params) {
    const rows = await this.getAll(sql, params);
    return rows.length > 0 ? rows[0] : null;
  }

  /** The first row of a read-only statement; rejects with `NotFound` when it has none. */
  async get(sql, params) {
    const row = await this.getOptional(sql, params);
    if (row === null) throw new ErthError(ErrorCode.NotFound, "the query returned no row");
    return row;
  }

  /**
   * Runs the statements `fn(tx)` queues with `tx.execute(sql, params)` as one
   * local transaction once `fn` (sync or async) returns: all commit or none.
   * Resolves to each statement's `{ rowsAffected, rows }`, in order. A tx
   * only queues writes: it cannot read its own uncommitted writes (reads
   * through `db` see committed data), and `fn` throwing sends nothing.
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
        checkParams(params);
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
   * A live query: `callback(rows)` with the rows of the read-only statement
   * `sql` now, then after each committed change (a local write, pulled rows)
   * to a table it reads, whenever the rows differ. Returns a function that
   * stops it (no callback runs after it returned); its `ready` Promise
   * settles once the query runs (rejecting for bad SQL, which also goes to
   * `options.onError`, else to `reportError`).
   */
  watch(sql, params, callback, options = {}) {
    checkString(sql, "sql");
    checkParams(params);
    if (typeof callback !== "function") throw invalid("callback must be a function");
    const onError = options?.onError;
    if (onError !== undefined && typeof onError !== "function") throw invalid("onError must be a function");
    const id = this.#nextWatch++;
    this.#watches.set(id, { callback });
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

  /** Pushes local changes, then pulls remote ones: `{ pushed, pulled, durationMs }`. */
  sync() {
    return this.#call("sync", []);
  }

  /** Pending changes, last sync, last error, remote URL (without credentials), online, syncing. */
  status() {
    return this.#call("status", []);
  }

  /** The rows the server refused (set aside, still pending): `[{ table, id, code, message, rejectedAt }]`. */
  rejectedRows() {
    return this.#call("rejectedRows", []);
  }

  /** Makes every refused row pending again (the next sync pushes them); resolves to how many. */
  retryRejected() {
    return this.#call("retryRejected", []);
  }

  /** Drops the local changes of a refused row and takes the server's version. */
  async discardRejected(table, id) {
    checkString(table, "table");
    checkString(id, "id");
    await this.#call("discardRejected", [table, id]);
  }

  /** Replaces the auth token for the next requests (`null` removes it). */
  async setAuthToken(token) {
    checkOptionalString(token, "token");
    await this.#call("setAuthToken", [token ?? null]);
  }

  /** Sets the server (`null` or `""` = local-only); changes made meanwhile sync later. */
  async setRemote(url, token) {
    checkOptionalString(url, "url");
    checkOptionalString(token, "token");
    await this.#call("setRemote", [url ?? null, token ?? null]);
  }

  /**
   * Switches this database's network use off (`false`) or on (`true`):
   * while off, sync() rejects with `Network` and auto-sync waits; local
   * reads and writes work as always.
   */
  async setOnline(online) {
    if (typeof online !== "boolean") throw invalid("online must be a boolean");
    await this.#call("setOnline", [online]);
  }

  /**
   * Calls `listener(event)` for every change (`{ type: "change", table, ids,
   * origin }`, local writes and pulled rows) and status update (`{ type:
   * "status", status }`). Returns a function that unsubscribes.
   */
  subscribe(listener) {
    if (typeof listener !== "function") throw invalid("listener must be a function");
    const entry = { listener };
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /**
   * Closes the database: waits briefly for running calls, then stops the
   * worker (releasing the database for other tabs). Later calls reject.
   */
  async close() {
    if (this.#closed) return this.#closed;
    this.#closed = (async () => {
      const done = this.#send("close", []);
      let timer;
      const grace = new Promise((resolve) => {
        timer = setTimeout(resolve, CLOSE_GRACE_MS);
      });
      try {
        await Promise.race([done, grace]);
      } catch {
        // The worker is stopped below either way.
      } finally {
        clearTimeout(timer);
      }
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
    if (message.rows) {
      const entry = this.#watches.get(message.rows.watch);
      if (entry) {
        try {
          entry.callback(message.rows.rows);
        } catch (e) {
          report(e);
        }
      }
      return;
    }
    if (message.event) {
      for (const { listener } of [...this.#listeners]) {
        try {
          listener(message.event);
        } catch (e) {
          report(e);
        }
      }
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
