"""SQLAlchemy and SQLModel unchanged on a replica (``sqlite+erth://``).

In one process: the entry point, create_all declaring tables (additive
migration when a model gains a column, a refused change named), the
engine's columns (is_deleted reads 0, created_at/updated_at the engine's),
soft delete as a tombstone that ``is_deleted = 0`` never undoes, rollback,
secrets kept out of reprs, status.

Across processes (the acceptance test of issue 25): an app in the original
design's style (``fixtures/todo_app.py``) runs in two processes with two
replica files against the test server; todos added, listed and
soft-deleted on one appear and disappear on the other. And the original
design's ``db.py`` itself (a verbatim copy, ``fixtures/original_db.py``)
runs unchanged with only ``DATABASE_URL`` set.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest
import sqlalchemy
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, text, update
from sqlalchemy.exc import DBAPIError, ProgrammingError
from sqlmodel import Field, Session, SQLModel, select

import erth_sync
from erth_sync import sqlalchemy_dialect

FIXTURES = Path(__file__).parent / "fixtures"
TIMEOUT = 30.0
A_ID = "0190a4a0-0000-7000-8000-000000000041"


def todos_table(metadata, *extra):
    return Table(
        "todos",
        metadata,
        Column("id", String, primary_key=True),
        Column("title", String, nullable=False),
        Column("is_completed", Integer, nullable=False, default=0),
        Column("is_deleted", Integer, nullable=False, default=0),
        Column("created_at", Integer, nullable=False),
        Column("updated_at", Integer, nullable=False),
        *extra,
    )


def test_entry_point_and_url(tmp_path):
    engine = create_engine(f"sqlite+erth:///{tmp_path / 'e.db'}?auth_token=s3cr3t-token&url=http://127.0.0.1:9")
    assert isinstance(engine.dialect, sqlalchemy_dialect.ErthDialect)
    assert engine.dialect.paramstyle == "qmark"
    # The token was read, and is in no repr of the engine or its URL.
    assert "s3cr3t" not in repr(engine) and "s3cr3t" not in str(engine.url)
    hidden = create_engine(f"sqlite+erth://:s3cr3t-token@/{tmp_path / 'f.db'}")
    assert "s3cr3t" not in repr(hidden)
    with pytest.raises(sqlalchemy.exc.ArgumentError):
        create_engine("sqlite+erth://").connect()


def test_sqlmodel_app_on_a_local_replica(tmp_path):
    class Note(SQLModel, table=True):
        __tablename__ = "notes_local"
        id: str = Field(primary_key=True)
        body: str
        stars: int = Field(default=0)
        is_deleted: int = Field(default=0)
        created_at: int
        updated_at: int

    engine = create_engine(f"sqlite+erth:///{tmp_path / 'n.db'}", connect_args={"check_same_thread": False})
    Note.metadata.create_all(engine, tables=[Note.__table__])
    SQLModel.metadata.create_all(engine, tables=[Note.__table__])  # again: nothing changes
    before = int(time.time() * 1000)
    with Session(engine) as s:
        s.add(Note(id="0190a4a0-0000-7000-8000-000000000031", body="one", stars=1, created_at=1, updated_at=1))
        s.add(Note(id="0190a4a0-0000-7000-8000-000000000032", body="two", created_at=1, updated_at=1))
        s.commit()
        n1 = s.get(Note, "0190a4a0-0000-7000-8000-000000000031")
        # The engine's times, not the app's.
        assert n1.created_at >= before and n1.updated_at >= n1.created_at
        assert n1.is_deleted == 0

    with Session(engine) as s:
        n2 = s.get(Note, "0190a4a0-0000-7000-8000-000000000032")
        n2.stars = 5
        s.add(n2)
        s.commit()
        s.refresh(n2)
        assert n2.stars == 5

        # Soft delete through the ORM: a tombstone, the row is gone.
        n1 = s.get(Note, "0190a4a0-0000-7000-8000-000000000031")
        n1.is_deleted = 1
        s.add(n1)
        s.commit()
        live = s.exec(select(Note).where(Note.is_deleted == 0).order_by(Note.created_at.desc())).all()
        assert [n.id for n in live] == ["0190a4a0-0000-7000-8000-000000000032"]
        assert s.get(Note, "0190a4a0-0000-7000-8000-000000000031") is None

    with engine.begin() as c:
        # `is_deleted = 0` never resurrects: no live row matches.
        gone = c.execute(update(Note.__table__).where(Note.__table__.c.id == "0190a4a0-0000-7000-8000-000000000031").values(is_deleted=0))
        assert gone.rowcount == 0
        # A Core soft delete is a delete too.
        c.execute(update(Note.__table__).where(Note.__table__.c.id == "0190a4a0-0000-7000-8000-000000000032").values(is_deleted=1, updated_at=5))
    with Session(engine) as s:
        assert s.exec(select(Note)).all() == []
        # A rolled-back session leaves nothing.
        s.add(Note(id="0190a4a0-0000-7000-8000-000000000033", body="three", created_at=1, updated_at=1))
        s.flush()
        assert s.get(Note, "0190a4a0-0000-7000-8000-000000000033") is not None
        s.rollback()
        assert s.get(Note, "0190a4a0-0000-7000-8000-000000000033") is None
    # Raw SQL works too, through the same replica.
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM notes_local")).scalar() == 0
    st = sqlalchemy_dialect.status(engine)
    assert st.pending_changes == 2 and not st.auto_sync  # two rows, both tombstones now
    engine.dispose()


def test_create_all_migrates_additively_and_names_a_refused_change(tmp_path):
    url = f"sqlite+erth:///{tmp_path / 'm.db'}"
    engine = create_engine(url)
    v1 = MetaData()
    todos = todos_table(v1)
    v1.create_all(engine)
    with engine.begin() as c:
        c.execute(todos.insert().values(id=A_ID, title="first", created_at=0, updated_at=0))
    engine.dispose()

    # The model gained a nullable column and an index: an additive migration.
    engine = create_engine(url)
    v2 = MetaData()
    todos2 = todos_table(v2, Column("note", String, nullable=True, index=True))
    v2.create_all(engine)
    with engine.begin() as c:
        c.execute(todos2.update().where(todos2.c.id == A_ID).values(note="hello"))
        assert c.execute(sqlalchemy.select(todos2.c.title, todos2.c.note)).all() == [("first", "hello")]
    engine.dispose()

    # A new NOT NULL column without a default is refused, named, and the file keeps its data.
    engine = create_engine(url)
    v3 = MetaData()
    todos_table(v3, Column("note", String, nullable=True, index=True), Column("priority", Integer, nullable=False))
    with pytest.raises(ProgrammingError) as refused:
        v3.create_all(engine)
    assert "todos" in str(refused.value) and "priority" in str(refused.value)
    engine.dispose()
    engine = create_engine(url)
    v2.create_all(engine)
    with engine.connect() as c:
        assert c.execute(sqlalchemy.select(todos2.c.note)).scalar() == "hello"
    engine.dispose()


def test_a_table_without_a_text_id_is_refused_by_name(tmp_path):
    engine = create_engine(f"sqlite+erth:///{tmp_path / 'x.db'}")
    md = MetaData()
    Table("counters", md, Column("n", Integer, primary_key=True))
    with pytest.raises(sqlalchemy.exc.CompileError, match="counters"):
        md.create_all(engine)
    engine.dispose()


class App:
    """One process of an app: a JSON command per line in, one out."""

    def __init__(self, script: Path, env: dict, cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
        )
        assert self.read() == {"ready": True}

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the app exited: {self.proc.stderr.read()}")
        return json.loads(line)

    def call(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=TIMEOUT)
        assert self.proc.returncode == 0, self.proc.stderr.read()


def app_env(server, db_path: Path, in_query: bool) -> dict:
    url, token = server
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERTH_")}
    query = "debounce_ms=50&interval_ms=300"
    if in_query:
        query += f"&url={url}"
    else:
        env["ERTH_DATABASE_URL"] = url
    if token:
        env["ERTH_AUTH_TOKEN"] = token
    env["DATABASE_URL"] = f"sqlite+erth:///{db_path}?{query}"
    return env


def wait_for(app: App, predicate, what: str):
    deadline = time.monotonic() + TIMEOUT
    while True:
        todos = app.call(op="list")
        if predicate(todos):
            return todos
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still {todos}; status {app.call(op='status')}")
        time.sleep(0.2)


def test_two_processes_of_a_sqlmodel_app_sync_adds_and_soft_deletes(tmp_path, server, tag):
    a = App(FIXTURES / "todo_app.py", app_env(server, tmp_path / "a.db", in_query=True), tmp_path)
    b = App(FIXTURES / "todo_app.py", app_env(server, tmp_path / "b.db", in_query=False), tmp_path)
    try:
        mine = lambda todos: [t for t in todos if t["title"].startswith(tag)]  # noqa: E731
        first = a.call(op="add", title=f"{tag} milk")
        second = a.call(op="add", title=f"{tag} eggs")
        assert first["is_deleted"] == 0 and len(first["id"]) == 36
        assert [t["title"] for t in mine(a.call(op="list"))] == [f"{tag} eggs", f"{tag} milk"]

        # B sees them (background sync), newest first, as A wrote them.
        seen = wait_for(b, lambda todos: len(mine(todos)) == 2, "B never saw A's todos")
        assert [t["id"] for t in mine(seen)] == [second["id"], first["id"]]

        # Soft-deleted on B: gone on B at once, then on A.
        assert b.call(op="delete", id=first["id"]) is True
        assert b.call(op="delete", id=first["id"]) is False
        assert [t["id"] for t in mine(b.call(op="list"))] == [second["id"]]
        wait_for(a, lambda todos: [t["id"] for t in mine(todos)] == [second["id"]], "A still shows B's deleted todo")

        # Added on B, deleted on A.
        third = b.call(op="add", title=f"{tag} bread")
        wait_for(a, lambda todos: third["id"] in [t["id"] for t in todos], "A never saw B's todo")
        assert a.call(op="delete", id=third["id"]) is True
        wait_for(b, lambda todos: [t["id"] for t in mine(todos)] == [second["id"]], "B still shows A's deleted todo")

        status = a.call(op="status")
        assert status["auto_sync"] is True and status["last_error"] is None
    finally:
        a.close()
        b.close()


ORIGINAL_DRIVER = """
import asyncio, json, sys
sys.path.insert(0, {fixtures!r})
import original_db as db

async def main():
    await db.init_db()
    print(json.dumps({{"ready": True}}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "add":
            out = await db.add_todo(cmd["title"])
        elif cmd["op"] == "list":
            out = await db.get_active_todos()
        elif cmd["op"] == "delete":
            out = await db.soft_delete_todo(cmd["id"])
        else:
            from erth_sync.sqlalchemy_dialect import status
            s = status(db.engine)
            out = {{"pending": s.pending_changes, "auto_sync": s.auto_sync, "last_error": s.last_error}}
        print(json.dumps(out), flush=True)

asyncio.run(main())
"""


def test_the_original_db_py_runs_unchanged_with_only_database_url_changed(tmp_path, server, tag):
    original = (FIXTURES / "original_db.py").read_text()
    # It is the original, untouched: it knows nothing of Erth Sync.
    assert "erth" not in original.lower().replace("erth architecture", "")
    driver = tmp_path / "driver.py"
    driver.write_text(ORIGINAL_DRIVER.format(fixtures=str(FIXTURES)))
    env_a = app_env(server, tmp_path / "a.db", in_query=False)
    env_b = app_env(server, tmp_path / "b.db", in_query=True)
    for env in (env_a, env_b):
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    a = App(driver, env_a, tmp_path)
    b = App(driver, env_b, tmp_path)
    try:
        mine = lambda todos: [t for t in todos if t["title"].startswith(tag)]  # noqa: E731
        added = a.call(op="add", title=f"{tag} original")
        assert set(added) == {"id", "title", "is_completed", "is_deleted", "created_at", "updated_at"}
        assert added["id"][14] == "7"
        wait_for(b, lambda todos: [t["id"] for t in mine(todos)] == [added["id"]], "B never saw the todo")
        assert b.call(op="delete", id=added["id"]) is True
        wait_for(a, lambda todos: mine(todos) == [], "A still shows the deleted todo")
        assert a.call(op="delete", id=added["id"]) is False
    finally:
        a.close()
        b.close()
