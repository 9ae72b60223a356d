// erth-sync: a local-first todo database for the browser that syncs with a
// libSQL server (Turso, sqld, tursodb --sync-server).
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

  /** The typed todo API. */
  todos;

  constructor(token, worker, name) {
    if (token !== CONSTRUCT) throw new TypeError("use ErthDb.open(options)");
    this.#worker = worker;
    this.#name = name;
    worker.onmessage = (e) => this.#receive(e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      this.#fail(new ErthError(ErrorCode.Internal, `the erth-sync worker failed: ${e.message || "it could not be loaded"}`));
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
   * origin's private file system. Rejects with `DatabaseLocked` if another
   * tab keeps it open for longer than `lockTimeoutMs` (default 5000).
   */
  static async open(options) {
    if (options === null || typeof options !== "object") throw invalid("options must be an object");
    const { name, url, authToken, autoSync, storage, lockTimeoutMs, requestTimeoutMs, allowInsecureHttp } = options;
    checkString(name, "name");
    checkOptionalString(url, "url");
    checkOptionalString(authToken, "authToken");
    if (typeof Worker !== "function") {
      throw new ErthError(ErrorCode.Storage, "erth-sync needs Web Workers (a browser page or worker)");
    }
    const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module", name: `erth-sync ${name}` });
    const db = new ErthDb(CONSTRUCT, worker, name);
    const browserOnline = typeof navigator === "object" && navigator.onLine !== false;
    try {
      await db.#call("open", [
        { name, url, authToken, autoSync, storage, lockTimeoutMs, requestTimeoutMs, allowInsecureHttp, browserOnline },
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

  /** Pushes local changes, then pulls remote ones: `{ pushed, pulled, durationMs }`. */
  sync() {
    return this.#call("sync", []);
  }

  /** Pending changes, last sync, last error, remote URL (without credentials), online, syncing. */
  status() {
    return this.#call("status", []);
  }

  /** Replaces the auth token for the next requests (`null` removes it). */
  async setAuthToken(token) {
    checkOptionalString(token, "token");
    await this.#call("setAuthToken", [token ?? null]);
  }

  /** Sets the server (`null` = local-only); changes made meanwhile sync later. */
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
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, method, args });
    });
  }

  #receive(message) {
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
    if (this.#onNetwork) {
      window.removeEventListener("online", this.#onNetwork);
      window.removeEventListener("offline", this.#onNetwork);
      this.#onNetwork = null;
    }
  }
}
