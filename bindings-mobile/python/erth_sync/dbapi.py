"""A DB-API 2.0 (PEP 249) module over an Erth Sync replica.

``erth_sync.dbapi.connect(path, url=None, auth_token=None, schema=None,
...)`` returns a :class:`Connection`; its cursors run the app's SQL on the
replica with ``qmark`` parameters (``?``). The SQLAlchemy dialect
(``sqlite+erth://``, :mod:`erth_sync.sqlalchemy_dialect`) sits on it.

Transactions follow PEP 249 on top of the replica's interactive write
transactions (:meth:`erth_sync.Database.write_transaction`): the first
statement that may write opens one, and it lasts until
:meth:`Connection.commit` or :meth:`Connection.rollback` (closing a
connection rolls back). Meanwhile its reads see its writes, and the
replica's other writers (other connections, threads, sync) wait for it.
Reads outside a transaction see committed data.

Connections to the same file in one process share one open replica (a
file has one open handle per process): the first connection opens it with
its options, later ones use it, and it closes with the last connection.
Closing that last connection (SQLAlchemy's ``engine.dispose()`` does) first
pushes the replica's unsynced changes when it has a server, for at most
:data:`EXIT_SYNC_SECONDS`, as a process exiting with connections open does.

Errors are the PEP 249 classes, each also carrying the engine's ``kind``
(and ``server_code``) as :class:`erth_sync.ErthError` does; the original
``ErthError`` is the ``__cause__``. No message contains the auth token.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import re
import threading
import weakref
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from . import (
    _Runner,
    AutoSyncOptions,
    BlockingDatabase,
    BlockingWriteTransaction,
    ErthError,
    Schema,
    SyncStatus,
)

apilevel = "2.0"
#: The SQLite the engine bundles (``SELECT sqlite_version()``).
sqlite_version_info = (3, 54, 1)
sqlite_version = "3.54.1"
#: Threads may share the module and connections (each call is serialized
#: by the engine), not cursors.
threadsafety = 1
paramstyle = "qmark"

__all__ = [
    "apilevel",
    "threadsafety",
    "paramstyle",
    "connect",
    "Connection",
    "Cursor",
    "Warning",
    "Error",
    "InterfaceError",
    "DatabaseError",
    "DataError",
    "OperationalError",
    "IntegrityError",
    "InternalError",
    "ProgrammingError",
    "NotSupportedError",
    "Binary",
    "STRING",
    "BINARY",
    "NUMBER",
    "ROWID",
    "DATETIME",
]


class Warning(Exception):  # noqa: A001 - the name PEP 249 requires
    """PEP 249 ``Warning`` (never raised by this module)."""


class Error(Exception):
    """The base of this module's errors. ``kind`` and ``server_code`` are
    those of :class:`erth_sync.ErthError` (``None`` for errors this module
    raises itself, such as using a closed cursor)."""

    def __init__(self, message: str, kind: Optional[str] = None, server_code: Optional[str] = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.server_code = server_code


class InterfaceError(Error):
    """Misuse of the module: a closed connection or cursor, bad parameters."""


class DatabaseError(Error):
    """An error of the database."""


class DataError(DatabaseError):
    """A value the database does not accept (kind ``InvalidInput``)."""


class OperationalError(DatabaseError):
    """The database could not do it now: locked, unreachable server, auth."""


class IntegrityError(DatabaseError):
    """A constraint failed (a duplicate id, a NOT NULL column left empty)."""


class InternalError(DatabaseError):
    """A bug in Erth Sync (kind ``Internal``)."""


class ProgrammingError(DatabaseError):
    """Bad SQL, a refused statement, or a refused schema change (kinds
    ``Sql``, ``SchemaChange``, ``NotFound``)."""


class NotSupportedError(DatabaseError):
    """Something the engine does not do (such as ``BEGIN`` in app SQL)."""


_INTEGRITY = re.compile(r"constraint failed|UNIQUE|NOT NULL|with this id exists", re.IGNORECASE)


def _dbapi_error(e: ErthError) -> Error:
    """The PEP 249 class of an engine error."""
    kind = e.kind
    if kind == "Sql":
        cls: type = IntegrityError if _INTEGRITY.search(e.message) else ProgrammingError
    elif kind in ("SchemaChange", "NotFound"):
        cls = ProgrammingError
    elif kind == "InvalidInput":
        cls = DataError
    elif kind == "Internal":
        cls = InternalError
    else:  # Network, Server, Auth, NoRemote, DatabaseLocked, Storage, ...
        cls = OperationalError
    err = cls(e.message, kind, e.server_code)
    err.__cause__ = e
    return err


# PEP 249 type objects and constructors.


class _TypeSet(frozenset):  # type: ignore[type-arg]
    def __eq__(self, other: object) -> bool:
        return other in self if isinstance(other, str) else frozenset.__eq__(self, other)

    def __hash__(self) -> int:
        return frozenset.__hash__(self)


STRING = _TypeSet({"TEXT"})
BINARY = _TypeSet({"BLOB"})
NUMBER = _TypeSet({"INTEGER", "REAL"})
ROWID = _TypeSet({"TEXT"})
DATETIME = _TypeSet({"INTEGER"})
Binary = bytes


def _type_code(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, bytes):
        return "BLOB"
    if isinstance(value, float):
        return "REAL"
    if isinstance(value, int):
        return "INTEGER"
    return "TEXT"


# Statements that only read run outside a write transaction (when none is
# open). Anything else opens one: a statement this cannot classify is
# treated as a write, which is always safe.
_READ = re.compile(r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*(SELECT|VALUES|EXPLAIN)\b", re.IGNORECASE | re.DOTALL)
_WITH = re.compile(r"^\s*WITH\b", re.IGNORECASE)
_WRITES = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
_BEGIN_END = re.compile(r"^\s*(BEGIN|COMMIT|END|ROLLBACK|SAVEPOINT|RELEASE)\b", re.IGNORECASE)


def _reads_only(sql: str) -> bool:
    if _READ.match(sql):
        return True
    return bool(_WITH.match(sql)) and not _WRITES.search(sql)


class _Shared:
    """One replica shared by the connections to its file; opened on first
    use when ``lazy``."""

    def __init__(self, path: str, options: Dict[str, Any]) -> None:
        self.path = path
        self.options = options
        self.db: Optional[BlockingDatabase] = None
        self.users = 0
        # Open write transactions of its connections.
        self.transactions = 0
        self.connections: "weakref.WeakSet[Connection]" = weakref.WeakSet()
        # Held while the replica is opened or reopened with a new schema.
        self.lock = threading.RLock()

    def get(self) -> BlockingDatabase:
        with self.lock:
            if self.db is None:
                try:
                    self.db = _open(self.path, self.options)
                except ErthError as e:
                    raise _dbapi_error(e) from None
            return self.db


_registry: Dict[str, _Shared] = {}
_registry_lock = threading.Lock()


def _open(path: str, options: Dict[str, Any]) -> BlockingDatabase:
    return BlockingDatabase.open(path, **options)


def connect(
    database: Union[str, "os.PathLike[str]"],
    url: Optional[str] = None,
    auth_token: Optional[str] = None,
    schema: Optional[Schema] = None,
    *,
    from_env: bool = False,
    allow_insecure_http: bool = False,
    encryption_key: Optional[str] = None,
    auto_sync: Union[bool, AutoSyncOptions, None] = None,
    request_timeout_ms: Optional[int] = None,
    sync_timeout_ms: Optional[int] = None,
    column_keys: Optional[Sequence[bytes]] = None,
    file_key: Optional[bytes] = None,
    lazy: bool = False,
    **ignored: Any,
) -> "Connection":
    """Opens a connection to the replica at ``database`` (a file path).

    The options are those of :meth:`erth_sync.Database.open`; they apply
    when this process opens the file, i.e. for its first connection.
    ``sqlite3``-only options (``check_same_thread``, ``timeout``,
    ``isolation_level``, ``uri``, ...) are accepted and ignored, so that
    code written for ``sqlite3`` runs unchanged. ``lazy=True`` opens the
    file at the first statement (or declaration, see
    :meth:`Connection.declare`) instead of now. Errors:
    :class:`OperationalError` (locked by another program, unreachable file),
    :class:`ProgrammingError` (a refused schema change).
    """
    path = os.path.abspath(os.fspath(database))
    options: Dict[str, Any] = dict(
        url=url,
        auth_token=auth_token,
        schema=schema,
        from_env=from_env,
        allow_insecure_http=allow_insecure_http,
        encryption_key=encryption_key,
        auto_sync=auto_sync,
        request_timeout_ms=request_timeout_ms,
        sync_timeout_ms=sync_timeout_ms,
        column_keys=column_keys,
        file_key=file_key,
    )
    with _registry_lock:
        shared = _registry.get(path)
        if shared is None:
            shared = _Shared(path, options)
            if not lazy:
                shared.get()
            _registry[path] = shared
        shared.users += 1
    conn = Connection(shared)
    shared.connections.add(conn)
    return conn


#: How long, at interpreter exit, a replica with unsynced changes tries to push them.
EXIT_SYNC_SECONDS = 5.0


def _push_pending(db: BlockingDatabase) -> None:
    """Pushes ``db``'s unsynced changes, if it has a server and is online,
    for at most :data:`EXIT_SYNC_SECONDS`; best effort (local data is safe
    either way: the next sync pushes what this one did not)."""
    try:
        status = db.status()
        if status.remote_url and status.pending_changes and status.online:
            _Runner.run(asyncio.wait_for(db.database.sync(), EXIT_SYNC_SECONDS))
    except Exception:  # noqa: BLE001 - best effort; local data is safe
        pass


@atexit.register
def _push_at_exit() -> None:
    """A script that commits and exits at once would leave its last changes
    for the next run (auto-sync waits a moment after each write): push
    them now, bounded, for every open replica with a server."""
    with _registry_lock:
        shared = [s for s in _registry.values() if s.db is not None]
    for s in shared:
        # What was left uncommitted is rolled back (as closing would), so
        # that the sync does not wait for it.
        for conn in list(s.connections):
            try:
                conn.rollback()
            except Exception:  # noqa: BLE001
                pass
        db = s.db
        if db is not None and not s.transactions:
            _push_pending(db)


def _release(shared: _Shared, push: bool) -> None:
    """One connection fewer; the last one closes the replica, pushing its
    unsynced changes first when ``push`` (an explicit close, such as
    SQLAlchemy's ``engine.dispose()``: the process may exit next)."""
    with _registry_lock:
        shared.users -= 1
        if shared.users == 0:
            if _registry.get(shared.path) is shared:
                del _registry[shared.path]
            if shared.db is not None:
                if push and not shared.transactions:
                    _push_pending(shared.db)
                shared.db.close()
                shared.db = None


class Connection:
    """A PEP 249 connection (see the module docs for transactions)."""

    Warning = Warning
    Error = Error
    InterfaceError = InterfaceError
    DatabaseError = DatabaseError
    DataError = DataError
    OperationalError = OperationalError
    IntegrityError = IntegrityError
    InternalError = InternalError
    ProgrammingError = ProgrammingError
    NotSupportedError = NotSupportedError

    def __init__(self, shared: _Shared) -> None:
        self._shared: Optional[_Shared] = shared
        self._tx: Optional[BlockingWriteTransaction] = None

    @property
    def _live(self) -> _Shared:
        if self._shared is None:
            raise InterfaceError("the connection is closed")
        return self._shared

    @property
    def database(self) -> BlockingDatabase:
        """The open replica (the whole :class:`erth_sync.BlockingDatabase`
        API: sync, status, watch, ...)."""
        return self._live.get()

    @property
    def path(self) -> str:
        """The replica's file."""
        return self._live.path

    @property
    def in_transaction(self) -> bool:
        """Whether a write transaction is open (until commit or rollback)."""
        return self._tx is not None and self._tx.open

    def cursor(self) -> "Cursor":
        """A new cursor."""
        self._live
        return Cursor(self)

    def commit(self) -> None:
        """Commits the open write transaction (nothing when none is open)."""
        self._live
        tx = self._end()
        if tx is not None and tx.open:
            try:
                tx.commit()
            except ErthError as e:
                raise _dbapi_error(e) from None

    def rollback(self) -> None:
        """Rolls back the open write transaction (nothing when none is open)."""
        self._live
        tx = self._end()
        if tx is not None and tx.open:
            try:
                tx.rollback()
            except ErthError as e:
                raise _dbapi_error(e) from None

    def close(self) -> None:
        """Rolls back what is uncommitted and releases the connection.
        Idempotent."""
        if self._shared is None:
            return
        try:
            self.rollback()
        finally:
            shared, self._shared = self._shared, None
            _release(shared, push=True)

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> "Cursor":
        """``cursor().execute(...)`` (as ``sqlite3`` offers)."""
        return self.cursor().execute(sql, parameters)

    def status(self) -> SyncStatus:
        """The replica's sync status (pending changes, last sync, last error)."""
        return self.database.status()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        # As sqlite3: commit on success, roll back on error; stays open.
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    def __del__(self) -> None:
        # Never blocks (it may run during interpreter shutdown, when the
        # engine's event loop thread no longer runs): dropping an open
        # transaction rolls it back in the engine.
        if self._shared is None:
            return
        self._end()
        shared, self._shared = self._shared, None
        try:
            _release(shared, push=False)
        except Exception:  # noqa: BLE001 - nothing to report to in __del__
            pass

    def __repr__(self) -> str:
        where = self._shared.path if self._shared else "closed"
        return f"<erth_sync.dbapi.Connection {where}>"

    # Internals used by the cursor and the SQLAlchemy dialect.

    def _transaction(self) -> BlockingWriteTransaction:
        if self._tx is None or not self._tx.open:
            self._end()
            shared = self._live
            self._tx = shared.get().write_transaction()
            shared.transactions += 1
        return self._tx

    def _end(self) -> Optional[BlockingWriteTransaction]:
        """Forgets the transaction (the caller ends it; dropped, it rolls back)."""
        tx, self._tx = self._tx, None
        if tx is not None and self._shared is not None:
            self._shared.transactions -= 1
        return tx

    def _run(self, sql: str, params: Sequence[Any]) -> Tuple[List[str], List[Tuple[Any, ...]], int]:
        """Runs one statement: its columns, its rows, the rows it changed
        (-1 for a read)."""
        if _BEGIN_END.match(sql):
            raise NotSupportedError(
                "transaction statements are not run as SQL: use the connection's commit() and rollback()"
            )
        shared = self._live
        # No lock is held while a statement runs: it may wait for another
        # connection's transaction, which must be able to go on.
        try:
            if _reads_only(sql):
                if self.in_transaction:
                    assert self._tx is not None
                    return (*self._tx._query_table(sql, params), -1)
                return (*shared.get()._query_table(sql, params), -1)
            affected, (columns, rows) = self._transaction()._execute_table(sql, params)
            return columns, rows, affected
        except ErthError as e:
            raise _dbapi_error(e) from None

    def declare(self, tables: Dict[str, Any]) -> None:
        """Declares tables (``{"name": {"columns": ...}}``, the format of
        the ``tables`` of Erth Sync's schema) on top of those this
        connection's replica was opened with: when they change anything,
        the replica is reopened with the merged schema (an additive
        migration). A refused change raises :class:`ProgrammingError`
        naming the table and column, and the replica keeps its schema."""
        shared = self._live
        if self.in_transaction:
            raise ProgrammingError("tables are declared outside a transaction: commit or roll back first")
        with shared.lock:
            current = shared.options.get("schema")
            if isinstance(current, str):
                current = json.loads(current)
            merged = dict((current or {}).get("tables", {}))
            merged.update(tables)
            schema = {"tables": merged}
            if shared.db is not None and schema == current:
                return
            options = dict(shared.options, schema=schema)
            if shared.db is not None:
                shared.db.close()
                shared.db = None
            try:
                shared.db = _reopen_retrying(shared.path, options)
            except ErthError as e:
                raise _dbapi_error(e) from None
            shared.options = options

    _declare = declare


def _reopen_retrying(path: str, options: Dict[str, Any]) -> BlockingDatabase:
    # The closed handle's engine threads (auto-sync) release the file
    # shortly after it is dropped.
    import gc
    import time

    deadline = time.monotonic() + 5.0
    while True:
        gc.collect()
        try:
            return _open(path, options)
        except ErthError as e:
            if e.kind != "DatabaseLocked" or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Cursor:
    """A PEP 249 cursor. Rows are tuples in column order."""

    arraysize = 1

    def __init__(self, connection: Connection) -> None:
        self.connection: Optional[Connection] = connection
        self._rows: List[Tuple[Any, ...]] = []
        self._pos = 0
        self.description: Optional[List[Tuple[Any, ...]]] = None
        self.rowcount = -1
        #: Always ``None``: rows are identified by UUIDv7 text ids (the
        #: app's, or the engine's when it gives none), not rowids; pass your
        #: own id to know it (synced tables do not support ``RETURNING``).
        self.lastrowid: Optional[Any] = None

    def _conn(self) -> Connection:
        if self.connection is None:
            raise InterfaceError("the cursor is closed")
        return self.connection

    def execute(self, operation: str, parameters: Optional[Sequence[Any]] = None) -> "Cursor":
        """Runs one statement with ``?`` parameters (a sequence)."""
        conn = self._conn()
        if isinstance(parameters, dict):
            raise InterfaceError("parameters are positional (paramstyle qmark): pass a sequence")
        params = list(parameters or ())
        columns, rows, affected = conn._run(operation, params)
        self._set(columns, rows, affected)
        return self

    def executemany(self, operation: str, seq_of_parameters: Sequence[Sequence[Any]]) -> "Cursor":
        """Runs one statement once per parameter sequence (in the
        connection's transaction); ``rowcount`` is the total."""
        conn = self._conn()
        total = 0
        for parameters in seq_of_parameters:
            if isinstance(parameters, dict):
                raise InterfaceError("parameters are positional (paramstyle qmark): pass a sequence")
            _, _, affected = conn._run(operation, list(parameters))
            total += max(affected, 0)
        self._set([], [], total)
        return self

    def _set(self, columns: List[str], rows: List[Tuple[Any, ...]], affected: int) -> None:
        self._pos = 0
        self._rows = rows
        self.lastrowid = None
        if columns:
            # Type codes from the first row (SQLite types values, not columns).
            first = rows[0] if rows else (None,) * len(columns)
            self.description = [
                (name, _type_code(first[i]), None, None, None, None, None) for i, name in enumerate(columns)
            ]
        else:
            self.description = None
        self.rowcount = affected

    def fetchone(self) -> Optional[Tuple[Any, ...]]:
        self._conn()
        if self._pos >= len(self._rows):
            return None
        row = self._rows[self._pos]
        self._pos += 1
        return row

    def fetchmany(self, size: Optional[int] = None) -> List[Tuple[Any, ...]]:
        self._conn()
        n = self.arraysize if size is None else size
        out = self._rows[self._pos : self._pos + n]
        self._pos += len(out)
        return out

    def fetchall(self) -> List[Tuple[Any, ...]]:
        self._conn()
        out = self._rows[self._pos :]
        self._pos = len(self._rows)
        return out

    def __iter__(self) -> Iterator[Tuple[Any, ...]]:
        return iter(self.fetchone, None)

    def close(self) -> None:
        self.connection = None
        self._rows = []

    def setinputsizes(self, sizes: Any) -> None:
        pass

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        pass
