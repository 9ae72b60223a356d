// ErthError: the one error type of erth-sync. Shared by the worker side
// (imported by the wasm module) and the main-thread API (index.js).

/** Every `code` an ErthError can carry. */
export const ErrorCode = Object.freeze({
  /** The caller passed something unusable (bad id, URL, name, argument type). */
  InvalidInput: "InvalidInput",
  /** The schema changes the database in a way that is not additive (nothing was changed). */
  SchemaChange: "SchemaChange",
  /** An SQL statement failed or cannot be synced (nothing was changed). */
  Sql: "Sql",
  /** No live todo with that id, or `get()`'s query returned no row. */
  NotFound: "NotFound",
  /** The local database failed (OPFS unavailable, e.g. not a secure context; disk full; damaged file). */
  Storage: "Storage",
  /**
   * The database cannot be shared with the tab that holds it: that tab did not answer within
   * `lockTimeoutMs`, or has it open with a different schema (another version of the app) or
   * another server URL.
   */
  DatabaseLocked: "DatabaseLocked",
  /**
   * The tab that held the database closed, reloaded or crashed while this write ran there: it
   * may or may not have been applied (reads are sent again by themselves). Another tab holds the
   * database now; retry the write if that is safe.
   */
  Interrupted: "Interrupted",
  /** The server could not be reached, the request timed out, or the network is switched off. */
  Network: "Network",
  /** The server refused the credentials (HTTP 401/403): set a valid token. */
  Auth: "Auth",
  /** The server reported an error (see `serverCode`) or answered with an HTTP error status. */
  Server: "Server",
  /** The server's answer is not valid Hrana, or a row breaks the row layout. */
  Protocol: "Protocol",
  /** `sync()` on a database without a server URL. */
  NoRemote: "NoRemote",
  /** A key is wrong or missing: the column key that sealed a pulled value (nothing was applied). Ask for the key or recovery phrase again. */
  WrongKey: "WrongKey",
  /** The package's worker or .wasm could not be loaded (HTTP 404/403, wrong MIME type, a bundler that did not emit it); the message names the URL. */
  LoadFailed: "LoadFailed",
  /** A bug in erth-sync (its worker crashed or was closed): reopen the database. */
  Internal: "Internal",
});

/** An error from erth-sync; `code` says what a program can do about it. */
export class ErthError extends Error {
  constructor(code, message, serverCode) {
    super(message);
    this.name = "ErthError";
    this.code = code;
    if (serverCode !== undefined && serverCode !== null) {
      this.serverCode = serverCode;
    }
  }
}
