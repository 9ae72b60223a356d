"""SQLAlchemy's asyncio engine and SQLModel's AsyncSession on a replica
(``sqlite+erth_async://``): the SQLModel app of ``test_sqlalchemy.py`` in
its async form, syncing through the test server to a replica opened with
the blocking dialect; and the event loop stays free while statements run.
"""

import asyncio
import time
import uuid
from typing import Optional

from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from erth_sync import sqlalchemy_async, sqlalchemy_dialect
from erth_sync.sqlalchemy_async import ErthAsyncDialect


class AsyncTodo(SQLModel, table=True):
    __tablename__ = "async_todos"

    id: str = Field(primary_key=True)
    title: str
    is_completed: int = Field(default=0)
    is_deleted: int = Field(default=0)
    created_at: Optional[int] = None
    updated_at: Optional[int] = None


def new_id() -> str:
    ms = int(time.time() * 1000)
    raw = bytearray(ms.to_bytes(6, "big") + uuid.uuid4().bytes[:10])
    raw[6] = (raw[6] & 0x0F) | 0x70
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


def test_an_async_sqlmodel_app_writes_soft_deletes_rolls_back_and_syncs(tmp_path, server, tag):
    url, token = server
    token_part = f"&auth_token={token}" if token else ""
    query = f"?url={url}&auto_sync=false&allow_insecure_http=true{token_part}"

    async def app() -> list:
        engine = create_async_engine(f"sqlite+erth_async:///{tmp_path / 'a.db'}{query}")
        assert isinstance(engine.dialect, ErthAsyncDialect)
        async with engine.begin() as conn:
            await conn.run_sync(SQLModel.metadata.create_all)
        keep, gone, rolled = new_id(), new_id(), new_id()
        async with AsyncSession(engine) as session:
            session.add(AsyncTodo(id=keep, title=f"{tag} keep"))
            session.add(AsyncTodo(id=gone, title=f"{tag} gone"))
            await session.commit()
            todo = await session.get(AsyncTodo, gone)
            assert todo is not None and todo.created_at is not None  # the engine's
            todo.is_deleted = 1
            session.add(todo)
            await session.commit()  # a tombstone: the row is gone from reads
            assert await session.get(AsyncTodo, gone) is None
            session.add(AsyncTodo(id=rolled, title=f"{tag} rolled back"))
            await session.flush()
            await session.rollback()
            live = await session.exec(
                select(AsyncTodo).where(AsyncTodo.is_deleted == 0).order_by(AsyncTodo.title)
            )
            titles = [t.title for t in live.all()]
        # While statements run, the event loop keeps serving other tasks.
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        running = asyncio.create_task(ticker())
        async with engine.connect() as conn:
            for _ in range(20):
                await conn.execute(text("SELECT count(*) FROM async_todos"))
        running.cancel()
        assert ticks > 20, ticks
        assert (await sqlalchemy_async.status(engine)).pending_changes >= 2
        report = await sqlalchemy_async.sync(engine)
        assert report.pushed >= 2
        assert (await sqlalchemy_async.status(engine)).pending_changes == 0
        await engine.dispose()
        return titles

    titles = asyncio.run(app())
    assert titles == [f"{tag} keep"]

    # Another replica (the blocking dialect) pulls the live todo only.
    other = create_engine(f"sqlite+erth:///{tmp_path / 'b.db'}{query}")
    SQLModel.metadata.create_all(other)
    sqlalchemy_dialect.sync(other)
    with other.connect() as conn:
        rows = conn.execute(text("SELECT title FROM async_todos WHERE title LIKE :p ORDER BY title"), {"p": f"{tag}%"})
        assert [r[0] for r in rows] == [f"{tag} keep"]
    other.dispose()
