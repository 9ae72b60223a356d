"""SQLAlchemy's asyncio engine on Erth Sync replicas: ``sqlite+erth_async:///local_edge.db``.

Registered by entry point (``sqlalchemy.dialects``: ``sqlite.erth_async``)
for async frameworks (FastAPI, Starlette, Litestar, ...)::

    from sqlalchemy.ext.asyncio import create_async_engine
    engine = create_async_engine("sqlite+erth_async:///local_edge.db")

It is the ``sqlite+erth://`` dialect (:mod:`erth_sync.sqlalchemy_dialect`:
the same URL options, tables, system columns, transactions and background
sync) with SQLAlchemy's asyncio adaptation: each DB-API call of
:mod:`erth_sync.dbapi` runs in a worker thread (``asyncio.to_thread``), so
the event loop never waits for the replica; a statement's rows are read
whole, as the DB-API does. It needs SQLAlchemy's ``asyncio`` extra
(``greenlet``): ``pip install "erth_sync[sqlalchemy-async]"``.

The replica behind an async engine: :func:`database`, :func:`status` and
:func:`sync` (awaitable; the replica's blocking calls run off the event
loop). At shutdown, ``await engine.dispose()`` closes the connections,
which first pushes what was not synced yet (at most 5 s).
"""

from __future__ import annotations

import asyncio
from typing import Any, List, Optional, Sequence, Tuple

from sqlalchemy import pool
from sqlalchemy.engine import URL
from sqlalchemy.engine.interfaces import AdaptedConnection
from sqlalchemy.ext.asyncio import AsyncEngine

try:  # SQLAlchemy 2.1
    from sqlalchemy.util.concurrency import await_
except ImportError:  # SQLAlchemy 2.0
    from sqlalchemy.util.concurrency import await_only as await_  # type: ignore[no-redef]

from . import BlockingDatabase, SyncReport, SyncStatus
from . import dbapi as _dbapi
from .sqlalchemy_dialect import ErthDialect

__all__ = ["ErthAsyncDialect", "database", "status", "sync"]


def _in_thread(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in a worker thread, awaited from SQLAlchemy's greenlet."""
    return await_(asyncio.to_thread(fn, *args))


class _Cursor:
    """A DB-API cursor whose statements run off the event loop."""

    def __init__(self, connection: "_Connection") -> None:
        self.connection = connection
        self._cursor = connection._connection.cursor()

    # What the dialect's execution reads and sets (rows are already in memory).
    description = property(lambda self: self._cursor.description)
    lastrowid = property(lambda self: self._cursor.lastrowid)
    rowcount = property(
        lambda self: self._cursor.rowcount,
        lambda self, value: setattr(self._cursor, "rowcount", value),
    )
    arraysize = property(
        lambda self: self._cursor.arraysize,
        lambda self, value: setattr(self._cursor, "arraysize", value),
    )

    def execute(self, operation: str, parameters: Optional[Sequence[Any]] = None) -> "_Cursor":
        _in_thread(self._cursor.execute, operation, parameters)
        return self

    def executemany(self, operation: str, seq_of_parameters: Sequence[Sequence[Any]]) -> "_Cursor":
        _in_thread(self._cursor.executemany, operation, seq_of_parameters)
        return self

    def _set(self, columns: List[str], rows: List[Tuple[Any, ...]], affected: int) -> None:
        self._cursor._set(columns, rows, affected)

    def fetchone(self) -> Optional[Tuple[Any, ...]]:
        return self._cursor.fetchone()

    def fetchmany(self, size: Optional[int] = None) -> List[Tuple[Any, ...]]:
        return self._cursor.fetchmany(size)

    def fetchall(self) -> List[Tuple[Any, ...]]:
        return self._cursor.fetchall()

    def close(self) -> None:
        self._cursor.close()

    async def _async_soft_close(self) -> None:
        """What SQLAlchemy's async results call before handing rows over:
        nothing to do, the rows are in memory."""

    def setinputsizes(self, sizes: Any) -> None:
        pass

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        pass


class _Connection(AdaptedConnection):
    """A DB-API connection (:class:`erth_sync.dbapi.Connection`) whose calls run off the event loop."""

    __slots__ = ()

    def __init__(self, connection: _dbapi.Connection) -> None:
        self._connection = connection

    @property
    def database(self) -> Any:
        """The replica (:class:`erth_sync.BlockingDatabase`)."""
        return self._connection.database

    def cursor(self) -> _Cursor:
        return _Cursor(self)

    def commit(self) -> None:
        _in_thread(self._connection.commit)

    def rollback(self) -> None:
        _in_thread(self._connection.rollback)

    def close(self) -> None:
        _in_thread(self._connection.close)

    def _declare(self, tables: Any) -> None:
        _in_thread(self._connection.declare, tables)


class _AsyncDbapi:
    """:mod:`erth_sync.dbapi` as the async dialect's DB-API module: the same
    names, and a ``connect`` that opens the replica off the event loop."""

    def __init__(self) -> None:
        for name in dir(_dbapi):
            if not name.startswith("__") and name != "connect":
                setattr(self, name, getattr(_dbapi, name))

    def connect(self, *args: Any, **kwargs: Any) -> _Connection:  # noqa: D401 - DB-API name
        return _Connection(_in_thread(lambda: _dbapi.connect(*args, **kwargs)))


class ErthAsyncDialect(ErthDialect):
    """``sqlite+erth_async://``: see the module docs."""

    driver = "erth_async"
    is_async = True
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> Any:
        return _AsyncDbapi()

    @classmethod
    def get_pool_class(cls, url: URL) -> Any:
        return pool.AsyncAdaptedQueuePool

    def get_driver_connection(self, connection: Any) -> Any:
        return connection._connection


async def database(engine: AsyncEngine) -> BlockingDatabase:
    """The replica behind a ``sqlite+erth_async://`` engine (the whole
    :class:`erth_sync.BlockingDatabase` API; its calls block: run them with
    ``asyncio.to_thread``, as :func:`status` and :func:`sync` do)."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        return raw.dbapi_connection.database  # type: ignore[union-attr]


async def status(engine: AsyncEngine) -> SyncStatus:
    """The replica's sync status: pending changes, last sync, last error,
    whether auto-sync runs."""
    return await asyncio.to_thread((await database(engine)).status)


async def sync(engine: AsyncEngine) -> SyncReport:
    """Syncs now (push, then pull) and returns what moved."""
    return await asyncio.to_thread((await database(engine)).sync)
