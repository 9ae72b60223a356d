"""The original design's data layer (its ``db.py``) on Erth Sync.

The project grew from a Python backend: SQLModel over SQLite, UUIDv7 ids,
``is_deleted`` tombstones, a ``todos`` table, and a ``DATABASE_URL`` switch
to Turso. Its data-access functions are kept here with the same ``async``
signatures and the same return shapes, so an app swaps this module in and
changes nothing else:

- ``async def init_db() -> None``
- ``async def get_active_todos() -> list``: dicts, newest first
- ``async def add_todo(title: str) -> dict``
- ``async def soft_delete_todo(todo_id: str) -> bool``: ``False`` for a
  missing or already deleted todo

Each dict is what the original's ``model_dump()`` gave: ``id`` (a UUIDv7),
``title``, ``is_completed`` and ``is_deleted`` (``0``/``1``), ``created_at``
and ``updated_at`` (milliseconds since the epoch).

What changes underneath: every call reads and writes a local SQLite file
and returns at once, on or off line; sync runs in the background (the
engine's auto-sync: shortly after each write, every 30 s, and again after a
failure) on an engine thread, never on the event loop. A server that
accepts connections and never answers costs ``init_db`` at most the
request timeout, and the other calls nothing.

Configuration, from the environment as the original's was:

- ``ERTH_DB_PATH``: the local file (default: the file of a
  ``DATABASE_URL`` of the form ``sqlite:///FILE``, else ``local_edge.db``,
  the original's default);
- ``ERTH_DATABASE_URL`` (and ``ERTH_AUTH_TOKEN``): the server to sync with
  (``libsql://…``, ``https://…``, or ``http://127.0.0.1:PORT`` for a local
  one); without it, a ``DATABASE_URL`` naming a server (``libsql://``,
  ``https://``, ``http://``, or SQLAlchemy's ``sqlite+libsql://``) is used;
  with neither, everything stays local;
- ``ERTH_REQUEST_TIMEOUT_MS``: how long one request may take (default
  10,000); ``init_db`` waits at most that long for its sync;
- ``ERTH_SYNC_INTERVAL_MS``: how often auto-sync pulls other devices'
  changes (default 30,000).

Beyond the original: :func:`close_db` (for a shutdown hook: waits a little
for the last changes to reach the server, then releases the file) and
:func:`generate_uuidv7`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from typing import Dict, Optional, Tuple, Union

import erth_sync

log = logging.getLogger(__name__)

#: The original's default local file (``sqlite:///local_edge.db``).
DEFAULT_PATH = "local_edge.db"
#: How long one request to the server may take, unless ``ERTH_REQUEST_TIMEOUT_MS`` says.
DEFAULT_REQUEST_TIMEOUT_MS = 10_000

#: A todo as the original's ``Todo.model_dump()`` returned it.
TodoDict = Dict[str, Union[str, int]]

_db: Optional[erth_sync.Database] = None


def settings() -> Tuple[str, Optional[str], Optional[str]]:
    """``(path, url, auth_token)`` from the environment (see the module docs)."""
    original = os.environ.get("DATABASE_URL", "")
    path = os.environ.get("ERTH_DB_PATH") or (
        original[len("sqlite:///") :] if original.startswith("sqlite:///") else DEFAULT_PATH
    )
    url = os.environ.get(erth_sync.URL_ENV) or None
    if url is None and original.startswith(("libsql://", "https://", "http://", "sqlite+libsql://")):
        url = "libsql://" + original[len("sqlite+libsql://") :] if original.startswith("sqlite+") else original
    return path, url, os.environ.get(erth_sync.TOKEN_ENV) or None


def _ms(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def _dict(todo: erth_sync.Todo) -> TodoDict:
    return {
        "id": todo.id,
        "title": todo.title,
        "is_completed": int(todo.is_completed),
        "is_deleted": 0,
        "created_at": todo.created_at,
        "updated_at": todo.updated_at,
    }


def _database() -> erth_sync.Database:
    if _db is None:
        raise RuntimeError("call init_db() first")
    return _db


async def init_db() -> None:
    """Opens (creating or migrating) the local database and starts
    background sync; with a server, syncs once first (so the app starts
    with the other devices' todos), waiting at most the request timeout,
    then goes on locally."""
    global _db
    if _db is not None:
        return
    path, url, token = settings()
    timeout_ms = _ms("ERTH_REQUEST_TIMEOUT_MS", DEFAULT_REQUEST_TIMEOUT_MS)
    interval = _ms("ERTH_SYNC_INTERVAL_MS", erth_sync.AutoSyncOptions().interval_ms)
    _db = await erth_sync.Database.open(
        path,
        url=url,
        auth_token=token,
        auto_sync=erth_sync.AutoSyncOptions(debounce_ms=200, interval_ms=interval) if url else None,
        request_timeout_ms=timeout_ms,
    )
    if url:
        # Start from the server's state, as the original did, but never wait
        # longer than one request may take: then go on locally.
        try:
            await asyncio.wait_for(_db.sync(), timeout_ms / 1000)
        except (asyncio.TimeoutError, erth_sync.ErthError) as e:
            log.warning("no sync with %s at startup (%s): working locally, syncing in the background", url, e)


async def get_active_todos() -> list:
    """Todos not deleted, newest first, as dicts."""
    return [_dict(t) for t in await _database().list_active_todos()]


async def add_todo(title: str) -> dict:
    """Adds a todo; returns it as a dict."""
    return _dict(await _database().add_todo(title))


async def soft_delete_todo(todo_id: str) -> bool:
    """Marks a todo deleted (a tombstone that syncs and wins); ``False`` when
    it does not exist or already was."""
    try:
        return await _database().delete_todo(todo_id)
    except erth_sync.ErthError as e:
        if e.kind == "InvalidInput":  # not even an id: no such todo, as the original
            return False
        raise


async def close_db(timeout: float = 5.0) -> None:
    """Waits up to ``timeout`` seconds for the local changes to reach the
    server (when there is one), then stops background sync and releases the
    file. For an app's shutdown hook; changes still pending are pushed by the
    next run."""
    global _db
    db, _db = _db, None
    if db is None:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await db.status()
        if status.remote_url is None or (status.pending_changes == 0 and not status.syncing):
            break
        await asyncio.sleep(0.05)
    db.close()


def generate_uuidv7() -> str:
    """A new UUIDv7 (RFC 9562) as text, the kind of id the engine gives."""
    ms = time.time_ns() // 1_000_000 & (2**48 - 1)
    value = ms << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant
    return str(uuid.UUID(int=value))


__all__ = [
    "add_todo",
    "close_db",
    "generate_uuidv7",
    "get_active_todos",
    "init_db",
    "settings",
    "soft_delete_todo",
]
