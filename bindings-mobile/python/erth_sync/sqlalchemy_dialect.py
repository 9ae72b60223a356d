"""A SQLAlchemy dialect for Erth Sync replicas: ``sqlite+erth:///local_edge.db``.

Registered by entry point (``sqlalchemy.dialects``: ``sqlite.erth``), so an
app written for SQLite with SQLAlchemy or SQLModel switches to a synced
replica by changing its URL, and nothing else::

    engine = create_engine("sqlite+erth:///local_edge.db")

It is SQLAlchemy's SQLite dialect (same SQL, same types) on the DB-API
module :mod:`erth_sync.dbapi`, with four differences, each the engine's:

- ``create_all`` declares the app's tables to the engine (the schema every
  Erth face uses) instead of creating them: every table of the metadata is
  declared at once; a model that gained a nullable or defaulted column
  migrates additively; a refused change (a dropped table or column, a
  changed type, a new NOT NULL column without a default) fails with a
  ``ProgrammingError`` naming the table and column, and the file is left as
  it was. Every table needs a text primary key ``id`` (UUIDv7 ids: the app's
  or, when it gives none, the engine's).
- The engine keeps ``is_deleted``, ``created_at`` and ``updated_at`` itself
  (per-row tombstones and the times of the first and latest change). A
  model may declare them: reads see ``is_deleted = 0`` (only live rows are
  visible), and ``created_at``/``updated_at`` as the engine set them
  (milliseconds since the epoch); values the app writes to them are not
  stored. An ``UPDATE`` setting ``is_deleted`` to a true value deletes the
  row: a tombstone that syncs and wins over concurrent edits; setting it
  back to ``0`` does nothing (a deleted row never comes back).
- Transactions are the replica's write transactions: a session's first
  write takes the replica's write turn until its commit or rollback.
- Sync runs in the background when a server is configured: shortly after
  each commit (debounced, 500 ms by default) and on an interval (30 s).
  :func:`status`, :func:`sync` and :func:`database` reach the replica.

The server comes from the URL's query or the environment, as the ``erth``
CLI reads it: ``sqlite+erth:///local_edge.db?url=libsql://my-db.turso.io``
(or ``$ERTH_DATABASE_URL``) and the token from ``$ERTH_AUTH_TOKEN``, the
URL's password (``sqlite+erth://:TOKEN@/local_edge.db``, hidden in reprs)
or ``?auth_token=`` (removed from the engine's URL once read). More query
options: ``auto_sync=false``, ``debounce_ms``, ``interval_ms``,
``request_timeout_ms``, ``sync_timeout_ms``, ``allow_insecure_http=true``.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from sqlalchemy import exc, func, select
from sqlalchemy.dialects.sqlite.base import SQLiteCompiler, SQLiteDialect
from sqlalchemy.engine import URL, Engine
from sqlalchemy.schema import CreateIndex, CreateTable, DropIndex, DropTable, Table
from sqlalchemy.sql import dml
from sqlalchemy import types as sqltypes

from . import AutoSyncOptions, BlockingDatabase, SyncReport, SyncStatus
from . import dbapi as _dbapi

__all__ = ["ErthDialect", "database", "status", "sync", "table_schema", "SYSTEM_COLUMNS"]

#: Columns the engine keeps on every table: a model may declare them.
SYSTEM_COLUMNS = ("id", "is_deleted", "created_at", "updated_at")
_ENGINE_SET = ("is_deleted", "created_at", "updated_at")


def _is_synced(table: Any) -> bool:
    return isinstance(table, Table) and "id" in table.c


def _sql_type(table: Table, column: Any) -> str:
    t = column.type
    while isinstance(t, sqltypes.TypeDecorator):  # SQLModel's AutoString, app types
        t = t.impl_instance
    if isinstance(t, (sqltypes.Integer, sqltypes.Boolean)):
        return "integer"
    if isinstance(t, (sqltypes.Float, sqltypes.Numeric)):
        return "real"
    if isinstance(t, (sqltypes._Binary,)):
        return "blob"
    if isinstance(t, (sqltypes.String, sqltypes.Enum, sqltypes.Date, sqltypes.DateTime, sqltypes.Time,
                      sqltypes.JSON, sqltypes.Uuid)):
        return "text"
    raise exc.CompileError(
        f"column {column.name!r} of table {table.name!r}: type {t!r} has no Erth Sync type "
        "(integer, real, text, blob)"
    )


def table_schema(table: Table) -> Dict[str, Any]:
    """The engine's declaration of one SQLAlchemy table (``{"columns": ...,
    "indexes": ...}``): every column but the system ones."""
    if "id" not in table.c or not table.c.id.primary_key or _sql_type(table, table.c.id) != "text":
        raise exc.CompileError(
            f"table {table.name!r}: Erth Sync tables have a text primary key named 'id' "
            "(UUIDv7 ids, e.g. `id: str = Field(primary_key=True)`)"
        )
    extra_pk = [c.name for c in table.primary_key.columns if c.name != "id"]
    if extra_pk:
        raise exc.CompileError(f"table {table.name!r}: the primary key is 'id' alone, not also {extra_pk}")
    columns: Dict[str, Any] = {}
    for c in table.columns:
        if c.name in SYSTEM_COLUMNS:
            continue
        spec: Dict[str, Any] = {"type": _sql_type(table, c)}
        if not c.nullable:
            spec["notNull"] = True
        default = getattr(c.default, "arg", None) if c.default is not None and c.default.is_scalar else None
        if isinstance(default, bool):
            default = int(default)
        if isinstance(default, (int, float, str)):
            spec["default"] = default
        columns[c.name] = spec
    indexes = [
        [c.name for c in ix.columns]
        for ix in sorted(table.indexes, key=lambda ix: str(ix.name))
        if all(c.name not in SYSTEM_COLUMNS for c in ix.columns)
    ]
    out: Dict[str, Any] = {"columns": columns}
    if indexes:
        out["indexes"] = indexes
    return out


class ErthCompiler(SQLiteCompiler):
    """SQLite's compiler; ``is_deleted`` of a synced table reads as ``0``
    (the app's tables show live rows only)."""

    def visit_column(self, column: Any, add_to_result_map: Any = None, **kw: Any) -> str:
        if column.name == "is_deleted" and _is_synced(column.table):
            if add_to_result_map is not None:
                targets = (column, column.name, column.key) + tuple(kw.get("result_map_targets", ()))
                add_to_result_map(column.name, column.name, targets, column.type)
            if kw.get("within_columns_clause") and not kw.get("within_label_clause"):
                return "0 AS " + self.preparer.quote(column.name)
            return "0"
        return super().visit_column(column, add_to_result_map=add_to_result_map, **kw)


class ErthDialect(SQLiteDialect):
    """``sqlite+erth://``: see the module docs."""

    driver = "erth"
    supports_statement_cache = True
    # One INSERT per row: each is rewritten for the engine's columns.
    use_insertmanyvalues = False
    supports_sane_multi_rowcount = True
    statement_compiler = ErthCompiler

    @classmethod
    def import_dbapi(cls) -> Any:
        return _dbapi

    @classmethod
    def engine_created(cls, engine: Engine) -> None:
        # The token was read into the connect arguments: keep it out of the
        # engine's URL (and so out of reprs and logs).
        if "auth_token" in engine.url.query:
            engine.url = engine.url.difference_update_query(["auth_token"])

    def create_connect_args(self, url: URL) -> Tuple[List[Any], Dict[str, Any]]:
        path = url.database
        if not path or path == ":memory:" or path.startswith("file:"):
            raise exc.ArgumentError(
                "sqlite+erth:// needs a file path (sqlite+erth:///local_edge.db): a replica is a file"
            )
        q = {k: (v[-1] if isinstance(v, tuple) else v) for k, v in url.query.items()}

        def flag(name: str, default: bool) -> bool:
            v = q.get(name)
            return default if v is None else v.lower() in ("1", "true", "yes", "on")

        def number(name: str) -> Optional[int]:
            v = q.get(name)
            return None if v is None else int(v)

        import os

        server = q.get("url") or os.environ.get("ERTH_DATABASE_URL") or None
        token = q.get("auth_token") or url.password or None
        auto = None
        if server and flag("auto_sync", True):
            defaults = AutoSyncOptions()
            auto = AutoSyncOptions(
                debounce_ms=number("debounce_ms") or defaults.debounce_ms,
                interval_ms=number("interval_ms") or defaults.interval_ms,
            )
        opts: Dict[str, Any] = dict(
            url=server,
            auth_token=token,
            from_env=True,
            allow_insecure_http=flag("allow_insecure_http", False),
            auto_sync=auto,
            request_timeout_ms=number("request_timeout_ms"),
            sync_timeout_ms=number("sync_timeout_ms"),
            lazy=True,
        )
        return [path], opts

    # The replica has one isolation: serializable writes, committed reads.
    def get_isolation_level(self, dbapi_connection: Any) -> str:
        return "SERIALIZABLE"

    def set_isolation_level(self, dbapi_connection: Any, level: Any) -> None:
        pass

    def get_isolation_level_values(self, dbapi_connection: Any) -> List[str]:
        return ["SERIALIZABLE"]

    def _get_server_version_info(self, connection: Any) -> Any:
        return _dbapi.sqlite_version_info

    def do_begin(self, dbapi_connection: Any) -> None:
        # The first write opens the replica's write transaction.
        pass

    def has_table(self, connection: Any, table_name: str, schema: Optional[str] = None, **kw: Any) -> bool:
        # `create_all` hands every table to the engine, which declares it
        # (nothing happens for an unchanged one): see `do_execute`.
        return False

    # Execution: DDL becomes declarations; INSERT and UPDATE leave the
    # engine's columns to the engine.

    def do_execute(self, cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
        compiled = getattr(context, "compiled", None)
        stmt = getattr(compiled, "statement", None)
        if isinstance(stmt, CreateTable):
            cursor.connection._declare(_declaration(stmt.element))
            cursor._set([], [], -1)
            return
        if isinstance(stmt, CreateIndex):
            # Declared with its table.
            cursor._set([], [], -1)
            return
        if isinstance(stmt, (DropTable, DropIndex)):
            raise _dbapi.NotSupportedError(
                "Erth Sync tables are not dropped (migrations are additive): "
                f"refused {type(stmt).__name__} of {getattr(stmt.element, 'name', '?')!r}"
            )
        if isinstance(stmt, (dml.Insert, dml.Update)) and _is_synced(stmt.table):
            by_key = _values_by_key(compiled, parameters)
            steps = (by_key is not None and _rewrite(self, compiled, stmt, by_key)) or [(statement, parameters)]
            total = -1
            for sql, params in steps:
                cursor.execute(sql, params)
                if total < 0:
                    total = cursor.rowcount
            if isinstance(stmt, dml.Update) and total == 0 and by_key is not None:
                # The engine counts rows it changed; SQLAlchemy (the ORM's
                # stale-row check) wants rows matched, also when a value
                # was set to what it already was.
                total = _matched(self, cursor, stmt, by_key)
            cursor.rowcount = total
            return
        cursor.execute(statement, parameters)

    def do_executemany(self, cursor: Any, statement: str, parameters: Any, context: Any = None) -> None:
        total = 0
        for params in parameters:
            self.do_execute(cursor, statement, params, context)
            total += max(cursor.rowcount, 0)
        cursor.rowcount = total


def _declaration(table: Table) -> Dict[str, Any]:
    """Every table of ``table``'s metadata, declared (the engine takes the
    whole schema at once)."""
    tables = [t for t in table.metadata.sorted_tables if t.schema is None] if table.metadata else [table]
    return {t.name: table_schema(t) for t in tables}


def _values_by_key(compiled: Any, parameters: Any) -> Optional[Dict[Any, Any]]:
    """The statement's bound (processed) values by bind parameter key, or
    ``None`` when they cannot be matched to its binds."""
    names = compiled.positiontup or []
    if isinstance(parameters, dict) or len(names) != len(parameters):
        return None
    binds = compiled.binds
    if any(n not in binds for n in names):
        return None
    return {binds[n].key: v for n, v in zip(names, parameters)}


def _compiled_with(dialect: ErthDialect, s: Any, by_key: Dict[Any, Any]) -> Tuple[str, List[Any]]:
    c = s.compile(dialect=dialect)
    return c.string, [by_key[c.binds[n].key] if c.binds[n].key in by_key else c.binds[n].effective_value
                      for n in (c.positiontup or [])]


def _rewrite(dialect: ErthDialect, compiled: Any, stmt: Any, by_key: Dict[Any, Any]) -> Optional[List[Tuple[str, List[Any]]]]:
    """The statements that do ``stmt`` on the engine's view, or ``None`` to
    run it as compiled (it does not set the engine's columns)."""
    if stmt._returning or getattr(stmt, "_multi_values", None) or getattr(stmt, "select", None) is not None:
        return None
    binds = compiled.binds
    table = stmt.table
    names = list(dict.fromkeys(compiled.positiontup or []))
    crud = [n for n in names if binds[n]._is_crud and n in table.c]
    if not any(table.c[n].name in _ENGINE_SET for n in crud):
        return None
    deleting = "is_deleted" in crud and bool(by_key[binds["is_deleted"].key])
    kept = {table.c[n]: binds[n] for n in crud if table.c[n].name not in _ENGINE_SET}

    # Written out rather than recompiled from insert()/update(): those would
    # add the columns' Python defaults and onupdate values back.
    prep = dialect.identifier_preparer
    name = prep.format_table(table)
    cols = [prep.format_column(c) for c in kept]
    values = [by_key[b.key] for b in kept.values()]
    if isinstance(stmt, dml.Insert):
        if any(not binds[n]._is_crud for n in names):
            return None
        out = [(f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})", values)]
        if deleting and "id" in crud:
            # Inserted deleted: a row and its tombstone.
            out.append((f"DELETE FROM {name} WHERE id = ?", [by_key[binds["id"].key]]))
        return out
    where_sql, where_params = "", []
    if stmt.whereclause is not None:
        sql, where_params = _compiled_with(dialect, stmt.whereclause, by_key)
        where_sql = " WHERE " + sql
    if deleting:
        return [(f"DELETE FROM {name}{where_sql}", where_params)]
    sets = ", ".join(f"{c} = ?" for c in cols) if cols else "id = id"
    return [(f"UPDATE {name} SET {sets}{where_sql}", values + where_params)]


def _matched(dialect: ErthDialect, cursor: Any, stmt: Any, by_key: Dict[Any, Any]) -> int:
    """How many live rows ``stmt``'s WHERE clause matches."""
    q = select(func.count()).select_from(stmt.table)
    if stmt.whereclause is not None:
        q = q.where(stmt.whereclause)
    sql, params = _compiled_with(dialect, q, by_key)
    cursor.execute(sql, params)
    row = cursor.fetchone()
    return int(row[0]) if row else 0


def _connection(engine: Engine) -> Any:
    return engine.raw_connection().dbapi_connection


def database(engine: Engine) -> BlockingDatabase:
    """The replica behind an ``sqlite+erth://`` engine (the whole
    :class:`erth_sync.BlockingDatabase` API)."""
    raw = engine.raw_connection()
    try:
        return raw.dbapi_connection.database
    finally:
        raw.close()


def status(engine: Engine) -> SyncStatus:
    """The replica's sync status: pending changes, last sync, last error,
    whether auto-sync runs."""
    return database(engine).status()


def sync(engine: Engine) -> SyncReport:
    """Syncs now (push, then pull) and returns what moved."""
    return database(engine).sync()
