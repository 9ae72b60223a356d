"""The original design's ``db.py`` on Erth Sync.

The project grew from a Python backend: SQLModel over SQLite, UUIDv7 ids,
``is_deleted`` tombstones, a ``todos`` table, and a ``DATABASE_URL`` switch
to Turso; its data-access functions are re-created in
``bench/baselines/original_design.py``. These are the same functions with
the same signatures and return shapes, on Erth Sync:

- ``init_db() -> None``
- ``add_todo(title: str) -> Todo``
- ``get_active_todos() -> List[Todo]`` (newest first)
- ``soft_delete_todo(todo_id: str) -> bool`` (``False`` for a missing or
  already deleted todo)

where ``Todo`` has the original model's fields (``id``, ``title``,
``is_completed``, ``is_deleted``, ``created_at``, ``updated_at``; the
times are timezone-aware UTC ``datetime``s).

Local-first: every call reads and writes the local file
``$ERTH_DB_PATH`` (default ``todos.db``). Configuration by environment, as
the original did with ``DATABASE_URL``: with ``ERTH_DATABASE_URL`` (and
``ERTH_AUTH_TOKEN``) set, ``init_db`` and ``get_active_todos`` sync before
reading and the writers sync after writing, so a deployment sees the other
devices' changes; a server that cannot be reached is logged and the call
still succeeds on local data (the next sync sends it). Without a URL
everything stays local.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import List, Optional

import erth_sync

log = logging.getLogger(__name__)

#: Where the local replica lives.
PATH_ENV = "ERTH_DB_PATH"


@dataclass
class Todo:
    """The original model's fields."""

    id: str
    title: str
    is_completed: bool = False
    is_deleted: bool = False
    created_at: Optional[datetime] = None
    updated_at: Optional[datetime] = None


_db: Optional[erth_sync.BlockingDatabase] = None


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def _todo(t: erth_sync.Todo) -> Todo:
    return Todo(
        id=t.id,
        title=t.title,
        is_completed=t.is_completed,
        is_deleted=False,
        created_at=_utc(t.created_at),
        updated_at=_utc(t.updated_at),
    )


def _database() -> erth_sync.BlockingDatabase:
    if _db is None:
        raise RuntimeError("call init_db() first")
    return _db


def sync() -> None:
    """Syncs when a server is configured; an unreachable server is logged."""
    db = _database()
    if not os.environ.get(erth_sync.URL_ENV):
        return
    try:
        db.sync()
    except erth_sync.ErthError as e:
        if e.kind not in ("Network", "Server"):
            raise
        log.warning("sync failed, working locally: %s", e.message)


def init_db() -> None:
    """Opens (creating if needed) the local database, then syncs."""
    global _db
    if _db is None:
        _db = erth_sync.BlockingDatabase.open(os.environ.get(PATH_ENV, "todos.db"), from_env=True)
    sync()


def add_todo(title: str) -> Todo:
    """Adds a todo and returns it."""
    todo = _todo(_database().add_todo(title))
    sync()
    return todo


def get_active_todos() -> List[Todo]:
    """Todos not deleted, newest first."""
    sync()
    return [_todo(t) for t in _database().list_active_todos()]


def soft_delete_todo(todo_id: str) -> bool:
    """Marks a todo deleted; ``False`` when it does not exist or already was."""
    try:
        deleted = _database().delete_todo(todo_id)
    except erth_sync.ErthError as e:
        if e.kind == "InvalidInput":  # not even an id: no such todo, as the original
            return False
        raise
    if deleted:
        sync()
    return deleted
