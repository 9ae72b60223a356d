// Types of erth-sync's main-thread API (index.js).

/** What went wrong, as a program can act on it. */
export type ErthErrorCode =
  | "InvalidInput"
  | "SchemaChange"
  | "Sql"
  | "NotFound"
  | "Storage"
  | "DatabaseLocked"
  | "Network"
  | "Auth"
  | "Server"
  | "Protocol"
  | "NoRemote"
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
  /** Set when a pulled clock was further ahead of this device's clock than allowed (by how much). */
  clockAheadMs: number | null;
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

export interface OpenOptions {
  /** Database name: 1-64 of `A-Z a-z 0-9 . _ -`, not starting with `.`. */
  name: string;
  /** Server URL: `libsql://…`, `https://…`, or `http://` for local/private servers. Omit for local-only. */
  url?: string | null;
  /** Bearer token (also accepted as an `authToken` query parameter of `url`). Never logged. */
  authToken?: string | null;
  /** Sync automatically after writes, on an interval and when the network returns (default off). */
  autoSync?: boolean | AutoSyncOptions;
  /** `"opfs"` (default): persistent. `"memory"`: gone when closed. */
  storage?: "opfs" | "memory";
  /** How long to wait for another tab to close this database before `DatabaseLocked` (default 5000; 0 = fail at once). */
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
  readonly todos: Todos;
  /** Push local changes, then pull remote ones. */
  sync(): Promise<SyncReport>;
  status(): Promise<SyncStatus>;
  setAuthToken(token: string | null): Promise<void>;
  /** `url === null` makes the database local-only. */
  setRemote(url: string | null, token?: string | null): Promise<void>;
  /** Switch this database's network use off or on (simulated offline). */
  setOnline(online: boolean): Promise<void>;
  /** Returns a function that unsubscribes. */
  subscribe(listener: (event: ErthEvent) => void): () => void;
  /** Releases the database (other tabs can open it); later calls reject. */
  close(): Promise<void>;
}
