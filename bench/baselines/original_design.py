"""The original Python design of Erth, re-created for the benchmarks.

SQLModel over SQLite (SQLAlchemy's defaults: rollback journal, synchronous=FULL),
one session and one commit per operation, hand-written UUIDv7 ids from
`time` + `os.urandom`, and the table
`todos(id TEXT PK, title, is_completed, is_deleted, created_at, updated_at)`.

Run by erth-bench with the cache's venv; prints one JSON object with raw
samples (milliseconds per operation, nanoseconds per id). `--wal` switches the
connection to WAL + synchronous=NORMAL (Erth's durability setting) to show how
much of the gap is the ORM and how much is the journal mode.
"""

import argparse
import json
import os
import sqlite3
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import List, Optional

import sqlalchemy
import sqlmodel
from sqlalchemy import event
from sqlmodel import Field, Session, SQLModel, create_engine, select


def uuid7() -> str:
    """The original hand-written UUIDv7: 48-bit ms timestamp + 80 random bits."""
    ms = time.time_ns() // 1_000_000
    b = bytearray(ms.to_bytes(6, "big") + os.urandom(10))
    b[6] = (b[6] & 0x0F) | 0x70
    b[8] = (b[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(b)))


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Todo(SQLModel, table=True):
    __tablename__ = "todos"
    id: str = Field(default_factory=uuid7, primary_key=True)
    title: str
    is_completed: bool = False
    is_deleted: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Store:
    """The original data-access functions, each in its own session."""

    def __init__(self, path: str, wal: bool) -> None:
        self.engine = create_engine(f"sqlite:///{path}")
        if wal:

            @event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn, _record):
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

        SQLModel.metadata.create_all(self.engine)

    def add_todo(self, title: str) -> Todo:
        with Session(self.engine) as session:
            todo = Todo(title=title)
            session.add(todo)
            session.commit()
            session.refresh(todo)
            return todo

    def get_active_todos(self) -> List[Todo]:
        with Session(self.engine) as session:
            stmt = (
                select(Todo)
                .where(Todo.is_deleted == False)  # noqa: E712 (SQL expression)
                .order_by(Todo.created_at.desc())
            )
            return list(session.exec(stmt).all())

    def soft_delete_todo(self, todo_id: str) -> bool:
        with Session(self.engine) as session:
            todo: Optional[Todo] = session.get(Todo, todo_id)
            if todo is None or todo.is_deleted:
                return False
            todo.is_deleted = True
            todo.updated_at = utcnow()
            session.add(todo)
            session.commit()
            return True

    def populate(self, n: int) -> None:
        """Setup only (not timed): n live todos in one session."""
        with Session(self.engine) as session:
            session.add_all(Todo(title=f"todo {i}") for i in range(n))
            session.commit()


def timed_ms(f, *args):
    t = time.perf_counter_ns()
    out = f(*args)
    return (time.perf_counter_ns() - t) / 1e6, out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--ops", type=int, required=True)
    p.add_argument("--list-sizes", required=True)
    p.add_argument("--list-reps", type=int, required=True)
    p.add_argument("--ids", type=int, required=True)
    p.add_argument("--id-reps", type=int, required=True)
    p.add_argument("--wal", action="store_true")
    a = p.parse_args()

    store = Store(os.path.join(a.dir, "ops.db"), a.wal)
    for i in range(5):  # warm-up: imports, statement caches
        store.soft_delete_todo(store.add_todo(f"warm {i}").id)
    add_ms, ids = [], []
    for i in range(a.ops):
        ms, todo = timed_ms(store.add_todo, f"todo {i}")
        add_ms.append(ms)
        ids.append(todo.id)
    delete_ms = []
    for todo_id in ids:
        ms, ok = timed_ms(store.soft_delete_todo, todo_id)
        if not ok:
            raise SystemExit(f"soft_delete_todo({todo_id}) found nothing")
        delete_ms.append(ms)

    list_ms = {}
    for n in (int(s) for s in a.list_sizes.split(",")):
        s = Store(os.path.join(a.dir, f"list-{n}.db"), a.wal)
        s.populate(n)
        s.get_active_todos()
        samples = []
        for _ in range(a.list_reps):
            ms, todos = timed_ms(s.get_active_todos)
            if len(todos) != n:
                raise SystemExit(f"get_active_todos returned {len(todos)} of {n}")
            samples.append(ms)
        list_ms[str(n)] = samples

    id_ns = []
    for _ in range(a.id_reps):
        t = time.perf_counter_ns()
        for _ in range(a.ids):
            uuid7()
        id_ns.append((time.perf_counter_ns() - t) / a.ids)

    print(
        json.dumps(
            {
                "add_ms": add_ms,
                "delete_ms": delete_ms,
                "list_ms": list_ms,
                "id_ns": id_ns,
                "versions": {
                    "python": ".".join(map(str, sys.version_info[:3])),
                    "sqlmodel": sqlmodel.__version__,
                    "sqlalchemy": sqlalchemy.__version__,
                    "sqlite": sqlite3.sqlite_version,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
