"""Interactive write transactions (``db.write_transaction()``): reads see
the transaction's own writes, a concurrent writer cannot slip between a
read and the write that depends on it, and an error inside rolls
everything back, in the asyncio and the blocking forms."""

import asyncio
import threading
import time

import pytest

from erth_sync import BlockingDatabase, Database, ErthError

SCHEMA = {"tables": {"counters": {"columns": {"n": {"type": "integer", "notNull": True, "default": 0}}}}}


def test_read_modify_write_excludes_a_concurrent_writer_and_an_error_rolls_back(tmp_path):
    async def main():
        db = await Database.open(tmp_path / "a.db", schema=SCHEMA)
        await db.execute("INSERT INTO counters (id, n) VALUES ('0190a4a0-0000-7000-8000-000000000001', 0)")

        # A plain write started after the read waits for the commit: it
        # cannot land between the read and the write that depends on it.
        other_done = asyncio.Event()

        async def other_writer():
            await db.execute("UPDATE counters SET n = 100 WHERE id = '0190a4a0-0000-7000-8000-000000000001'")
            other_done.set()

        async with db.write_transaction() as tx:
            n = (await tx.query("SELECT n FROM counters WHERE id = '0190a4a0-0000-7000-8000-000000000001'"))[0]["n"]
            other = asyncio.create_task(other_writer())
            await asyncio.sleep(0.3)
            assert not other_done.is_set(), "a writer slipped into the open transaction"
            await tx.execute("UPDATE counters SET n = ? WHERE id = '0190a4a0-0000-7000-8000-000000000001'", [n + 1])
            # Its reads see its own writes.
            assert (await tx.query("SELECT n FROM counters WHERE id = '0190a4a0-0000-7000-8000-000000000001'"))[0]["n"] == 1
        await other
        assert (await db.query("SELECT n FROM counters"))[0]["n"] == 100

        # Many tasks incrementing at once lose no increment.
        async def increment():
            async with db.write_transaction() as tx:
                n = (await tx.query("SELECT n FROM counters WHERE id = '0190a4a0-0000-7000-8000-000000000001'"))[0]["n"]
                await asyncio.sleep(0)
                await tx.execute("UPDATE counters SET n = ? WHERE id = '0190a4a0-0000-7000-8000-000000000001'", [n + 1])

        await asyncio.gather(*(increment() for _ in range(20)))
        assert (await db.query("SELECT n FROM counters"))[0]["n"] == 120

        # An error inside rolls back every write of the block, and is raised.
        with pytest.raises(RuntimeError, match="boom"):
            async with db.write_transaction() as tx:
                await tx.execute("INSERT INTO counters (id, n) VALUES ('0190a4a0-0000-7000-8000-000000000002', 5)")
                await tx.execute("UPDATE counters SET n = 0 WHERE id = '0190a4a0-0000-7000-8000-000000000001'")
                assert len(await tx.query("SELECT id FROM counters")) == 2
                raise RuntimeError("boom")
        assert await db.query("SELECT id, n FROM counters ORDER BY id") == [{"id": "0190a4a0-0000-7000-8000-000000000001", "n": 120}]

        # A failed statement inside is a typed error; the block rolls back.
        with pytest.raises(ErthError) as failed:
            async with db.write_transaction() as tx:
                await tx.execute("INSERT INTO counters (id, n) VALUES ('0190a4a0-0000-7000-8000-000000000003', 1)")
                await tx.execute("INSERT INTO counters (id, n) VALUES ('0190a4a0-0000-7000-8000-000000000003', 2)")
        assert failed.value.kind == "Sql"
        assert len(await db.query("SELECT id FROM counters")) == 1

        # Explicit form; an ended transaction refuses more work.
        tx = await db.write_transaction()
        await tx.execute("UPDATE counters SET n = 7 WHERE id = '0190a4a0-0000-7000-8000-000000000001'")
        await tx.commit()
        assert not tx.open
        with pytest.raises(ErthError) as ended:
            await tx.execute("UPDATE counters SET n = 8 WHERE id = '0190a4a0-0000-7000-8000-000000000001'")
        assert ended.value.kind == "Sql"
        assert (await db.query("SELECT n FROM counters"))[0]["n"] == 7
        db.close()

    asyncio.run(main())


def test_blocking_transactions_from_threads_lose_no_increment_and_roll_back(tmp_path):
    db = BlockingDatabase.open(tmp_path / "b.db", schema=SCHEMA)
    db.execute("INSERT INTO counters (id, n) VALUES ('0190a4a0-0000-7000-8000-000000000001', 0)")

    def increment(times):
        for _ in range(times):
            with db.write_transaction() as tx:
                n = tx.query("SELECT n FROM counters WHERE id = '0190a4a0-0000-7000-8000-000000000001'")[0]["n"]
                time.sleep(0.001)
                tx.execute("UPDATE counters SET n = ? WHERE id = '0190a4a0-0000-7000-8000-000000000001'", [n + 1])

    threads = [threading.Thread(target=increment, args=(10,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert db.query("SELECT n FROM counters")[0]["n"] == 40

    with pytest.raises(ValueError):
        with db.write_transaction() as tx:
            tx.execute("UPDATE counters SET n = 0 WHERE id = '0190a4a0-0000-7000-8000-000000000001'")
            raise ValueError("no")
    assert db.query("SELECT n FROM counters")[0]["n"] == 40
    db.close()
