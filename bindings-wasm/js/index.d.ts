// Types of erth-sync's main-thread API (index.js).

/** What went wrong, as a program can act on it. */
export type ErthErrorCode =
  | "InvalidInput"
  | "SchemaChange"
  | "Sql"
  | "NotFound"
  | "Storage"
  | "DatabaseLocked"
  | "Interrupted"
  | "Network"
  | "Auth"
  | "Server"
  | "Protocol"
  | "NoRemote"
  | "LoadFailed"
  | "Internal";

/** Every code, as constants: `ErrorCode.DatabaseLocked === "DatabaseLocked"`. */
export declare const ErrorCode: Readonly<{ [K in ErthErrorCode]: K }>;

/** The one error type: every rejected Promise of this package holds one. */
export declare class ErthError extends Error {
  constructor(code: ErthErrorCode, message: string, serverCode?: string);
  readonly name: "ErthError";
  readonly code: ErthErrorCode;
  /** For `code === "Server"`: the server's Hrana error code (e.g. `"SQLITE_BUSY"`), if it sent one. */
  readonly serverCode?: string;
}

export interface Todo {
  /** UUIDv7, lowercase hyphenated; ids made by one database increase. */
  id: string;
  title: string;
  completed: boolean;
  /** ms since the epoch. */
  createdAt: number;
  /** ms since the epoch of the newest change. */
  updatedAt: number;
}

/** A local row the server refused, with the server's reason. */
export interface RejectedRow {
  table: string;
  id: string;
  /** The server's error code (e.g. `"SQLITE_CONSTRAINT"`; tursodb sends `"BATCH_STEP_ERROR"` for every failed step). */
  code: string;
  message: string;
  /** ms since the epoch. */
  rejectedAt: number;
}

/** A table the server would not take changes to with this token. */
export interface TableRefusal {
  table: string;
  /** `"HTTP 403"` (a read-only token) or the server's error code (`"SQLITE_AUTH"`). */
  code: string;
  message: string;
}

export interface SyncReport {
  /** Local rows sent to the server. */
  pushed: number;
  /** Server rows received. */
  pulled: number;
  durationMs: number;
}

export interface SyncStatus {
  /** Rows with local changes the server has not acknowledged yet. */
  pendingChanges: number;
  /** ms since the epoch of the last successful sync (kept across reloads). */
  lastSyncAt: number | null;
  /** The last sync's error message; cleared by a successful sync. */
  lastError: string | null;
  lastErrorCode: ErthErrorCode | null;
  syncing: boolean;
  /** The server URL, without credentials; `null` when local-only. */
  remoteUrl: string | null;
  /** Rows the server refused, set aside (see `rejectedRows()`); they count in `pendingChanges` too. */
  rejected: number;
  /** Tables whose changes the server would not take with this token at the last sync (a read-only token: all, code `"HTTP 403"`); their changes stay pending. */
  refusedTables: TableRefusal[];
  /** Set when a pulled clock was further ahead of this device's clock than allowed (by how much). */
  clockAheadMs: number | null;
  /**
   * Columns the server's tables have and this schema does not (`"table.column"`), as of the
   * last sync: newer app versions added them. They are left alone; declaring them backfills them.
   */
  unknownServerColumns: string[];
  /** Where the database is kept (README, "Browser engines"): `"indexeddb"` where this browser has no OPFS sync access handles. */
  storage: "opfs" | "indexeddb" | "memory";
  /** False while `setOnline(false)` is in effect or the browser reports being offline. */
  online: boolean;
  autoSync: boolean;
}

export interface AutoSyncOptions {
  /** Sync this long after the last local write (default 500). */
  debounceMs?: number;
  /** Also sync this often, to pull other devices' changes (default 30000; 0 = never). */
  intervalMs?: number;
}

/** A column of a synced table. Types are SQLite's; booleans are integers 0/1. */
export interface ColumnSchema {
  type: "text" | "integer" | "real" | "blob";
  /** Refuse NULL (default false). */
  notNull?: boolean;
  /** Default value: matches `type` (`true`/`false` for integers; lowercase hex for a blob). */
  default?: string | number | boolean | null;
}

/** A synced table: its columns (in order) and indexes (each a list of column names). */
export interface TableSchema {
  columns: Record<string, ColumnSchema>;
  indexes?: string[][];
}

/**
 * The app's synced tables. Every table also gets `id` (a UUIDv7 text key),
 * `created_at` and `updated_at` (ms since the epoch). A later version may
 * add tables and nullable (or defaulted) columns; anything else is refused
 * with `SchemaChange`.
 */
export interface Schema {
  tables: Record<string, TableSchema>;
}

/** A value in a row: INTEGER → `number` when safe (`Number.isSafeInteger`), else `bigint`. */
export type SqlValue = null | number | bigint | string | Uint8Array;

/**
 * A query parameter: `number` (an integer value binds as INTEGER, others as REAL), `bigint`
 * (64-bit signed range), `string`, `Uint8Array`/`ArrayBuffer` (BLOB), `boolean` (1/0), `null`
 * or `undefined` (NULL). Anything else rejects with `InvalidInput` naming the parameter.
 */
export type SqlParam = SqlValue | ArrayBuffer | boolean | undefined;

/** A result row: column name → value (of two columns with one name, the last one wins). */
export type Row = Record<string, SqlValue>;

export interface ExecuteResult<T = Row> {
  /** Rows inserted, updated or deleted. */
  rowsAffected: number;
  /** The rows the statement returned (a query; `RETURNING` works on local tables, not synced views). */
  rows: T[];
}

/** What a transaction callback gets: it queues writes, it cannot read. */
export interface Transaction {
  /**
   * Queues a statement; nothing runs yet. All queued statements commit together when the
   * callback returns, or none do. Results come from `transaction()`'s Promise, in order.
   * Throws `InvalidInput` once the callback has returned.
   */
  execute(sql: string, params?: SqlParam[]): void;
}

/** Stops a live query; no callback runs after it returns. */
export interface Unsubscribe {
  (): void;
  /** Settles once the query ran the first time: rejects with `Sql` for bad SQL or a write. */
  readonly ready: Promise<void>;
}

export interface WatchOptions {
  /** Called if the query cannot start (default: `reportError`). */
  onError?: (error: ErthError) => void;
}

export interface OpenOptions {
  /** Database name: 1-64 of `A-Z a-z 0-9 . _ -`, not starting with `.`. */
  name: string;
  /** Server URL: `libsql://…`, `https://…`, or `http://` for local/private servers. `""`, `null` or omitted: local-only. */
  url?: string | null;
  /**
   * The synced tables, as an object or its JSON text (handed to the core unchanged).
   * Omitted: the built-in `todos` table (`title`, `is_completed`), which `db.todos` uses.
   */
  schema?: Schema | string | null;
  /** Bearer token (also accepted as an `authToken` query parameter of `url`). Never logged. */
  authToken?: string | null;
  /** Key of a database encrypted with your own key (Turso Cloud): sent as `x-turso-encryption-key` on every request. Never logged. */
  encryptionKey?: string | null;
  /** Sync automatically after writes, on an interval and when the network returns (default off). */
  autoSync?: boolean | AutoSyncOptions;
  /**
   * Absent (default): OPFS, or IndexedDB where the browser has no OPFS sync access handles (WebKitGTK,
   * private windows); both need a secure context (https, or http://localhost). `"opfs"`: OPFS or fail;
   * `"indexeddb"`: IndexedDB (see the README for what it relaxes); `"memory"`: gone when closed.
   */
  storage?: "opfs" | "indexeddb" | "memory";
  /**
   * How long to wait for the tab holding this database to answer (the tabs of an origin share one
   * database: see the README, "Several tabs") before `DatabaseLocked` (default 5000).
   */
  lockTimeoutMs?: number;
  /** Per-request timeout (default 30000). */
  requestTimeoutMs?: number;
  /** Allow `http://` to a public host (the token would travel in clear text). */
  allowInsecureHttp?: boolean;
}

export interface ChangeEvent {
  type: "change";
  table: string;
  ids: string[];
  /** `"local"`: a write through this database; `"remote"`: rows pulled from the server. */
  origin: "local" | "remote";
}

/**
 * Sent when the status may have changed: at once when a sync starts or ends
 * or a switch changes, and within about 16 ms after changes (one event for a
 * burst of writes).
 */
export interface StatusEvent {
  type: "status";
  status: SyncStatus;
}

export type ErthEvent = ChangeEvent | StatusEvent;

export interface Todos {
  /** Adds a todo; resolves to it. */
  add(title: string): Promise<Todo>;
  /** Live todos, newest first. */
  listActive(): Promise<Todo[]>;
  /** Rejects with `NotFound` when unknown or deleted. */
  get(id: string): Promise<Todo>;
  rename(id: string, title: string): Promise<Todo>;
  setCompleted(id: string, completed: boolean): Promise<Todo>;
  /** Deletes (a tombstone that syncs); `false` when missing or already deleted. */
  delete(id: string): Promise<boolean>;
}

export declare class ErthDb {
  private constructor();
  /** Opens (creating if needed) a database; its data lives in a dedicated Worker. */
  static open(options: OpenOptions): Promise<ErthDb>;
  readonly name: string;
  /** The typed todo API, on the built-in `todos` table (declare it, with `title` and `is_completed`, in a custom schema). */
  readonly todos: Todos;
  /**
   * Runs one statement with positional parameters (`?`, `?NNN`) as its own transaction.
   * Synced tables are views of live rows: an INSERT without `id` gets a UUIDv7 (need the id?
   * make one client-side or `SELECT uuid7()` first: RETURNING does not work on views), UPDATE
   * and DELETE become changes that sync. Rejects with `Sql` (nothing changed) for bad SQL,
   * constraint failures, DDL on synced tables, writes to `_erth_*`, BEGIN/COMMIT, ATTACH.
   */
  execute<T = Row>(sql: string, params?: SqlParam[]): Promise<ExecuteResult<T>>;
  /** Every row of a read-only statement (a write rejects with `Sql`). */
  getAll<T = Row>(sql: string, params?: SqlParam[]): Promise<T[]>;
  /** The first row, or `null`. */
  getOptional<T = Row>(sql: string, params?: SqlParam[]): Promise<T | null>;
  /** The first row; rejects with `NotFound` when there is none. */
  get<T = Row>(sql: string, params?: SqlParam[]): Promise<T>;
  /**
   * Runs the statements `fn` queues with `tx.execute` as one local transaction once `fn`
   * returns (or its Promise resolves): all commit or none (the first failing statement's
   * error rejects, nothing is written). Resolves to each statement's result, in order.
   * A transaction cannot read its own writes or branch on them: reads through `db` inside
   * `fn` see committed data only. If `fn` throws, nothing is sent.
   */
  transaction<T = Row>(fn: (tx: Transaction) => void | Promise<void>): Promise<ExecuteResult<T>[]>;
  /**
   * A live query: `callback(rows)` now, then after each committed change (local write or
   * pulled rows) to a table the statement reads, when the rows differ.
   */
  watch<T = Row>(sql: string, params: SqlParam[] | undefined, callback: (rows: T[]) => void, options?: WatchOptions): Unsubscribe;
  /** Push local changes, then pull remote ones. */
  sync(): Promise<SyncReport>;
  status(): Promise<SyncStatus>;
  /**
   * The rows the server refused (a rule, a constraint, a value it will not take), oldest
   * first. They stay pending and are skipped by later syncs until the row changes or
   * `retryRejected()`; every other row syncs.
   */
  rejectedRows(): Promise<RejectedRow[]>;
  /** Makes every refused row pending again (the next sync pushes them); resolves to how many. */
  retryRejected(): Promise<number>;
  /**
   * Drops the local changes of a refused row and takes the server's version (a row the
   * server never had is removed). Rejects with `NotFound` for a row that is not refused.
   */
  discardRejected(table: string, id: string): Promise<void>;
  setAuthToken(token: string | null): Promise<void>;
  /** `url === null` (or `""`) makes the database local-only. */
  setRemote(url: string | null, token?: string | null): Promise<void>;
  /** Switch this database's network use off or on (simulated offline). */
  setOnline(online: boolean): Promise<void>;
  /** Returns a function that unsubscribes. */
  subscribe(listener: (event: ErthEvent) => void): () => void;
  /** Releases the database (other tabs can open it); later calls reject. */
  close(): Promise<void>;
}
