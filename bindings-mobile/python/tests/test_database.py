"""erth_sync against a real Hrana server: every SQLite type round-trips
exactly, plain-SQL writes on two databases made offline converge, a DELETE
stays deleted, live queries hear local and pulled changes and stop, typed
errors, concurrent calls from tasks and threads, and the environment
configuration."""

import asyncio
import threading

import pytest

import erth_sync
from erth_sync import BlockingDatabase, Database, ErthError

KINDS_SCHEMA = {
    "tables": {
        "kinds": {
            "columns": {
                "tag": {"type": "text", "notNull": True, "default": ""},
                "label": {"type": "text"},
                "i": {"type": "integer"},
                "r": {"type": "real"},
                "t": {"type": "text"},
                "b": {"type": "blob"},
            }
        }
    }
}

INSERT = "INSERT INTO kinds (tag, label, i, r, t, b) VALUES (?, ?, ?, ?, ?, ?)"


async def open_db(tmp_path, name, server, url=...):
    server_url, token = server
    return await Database.open(
        tmp_path / name,
        url=server_url if url is ... else url,
        auth_token=token,
        schema=KINDS_SCHEMA,
    )


async def tagged(db, tag, columns="label, i, r, t, b"):
    return await db.query(f"SELECT {columns} FROM kinds WHERE tag = ? ORDER BY label", [tag])


async def insert(db, tag, label, i=None):
    out = await db.execute("INSERT INTO kinds (tag, label, i) VALUES (?, ?, ?)", [tag, label, i])
    assert out.rows_affected == 1
    rows = await db.query("SELECT id FROM kinds WHERE tag = ? AND label = ?", [tag, label])
    return rows[0]["id"]


def test_every_type_survives_offline_writes_on_two_databases_and_converges(tmp_path, server, tag):
    async def main():
        a = await open_db(tmp_path, "a.db", server)
        b = await open_db(tmp_path, "b.db", server)
        blob = bytes(i % 251 for i in range(1_000_000))
        text = "'; DROP TABLE kinds; -- \"q\" \x00 nul, \U0001f980 non-BMP"
        results = await a.transaction(
            [
                (INSERT, [tag, "a 2^53+1", 2**53 + 1, 0.5, "", None]),
                (INSERT, [tag, "a max", 2**63 - 1, -1.0e-300, text, blob]),
                (INSERT, [tag, "a min", -(2**63), None, None, b""]),
            ]
        )
        assert [r.rows_affected for r in results] == [1, 1, 1]
        await b.execute(INSERT, [tag, "b nulls", None, None, None, None])
        await b.execute(INSERT, [tag, "b empty", 0, 0.0, "", bytearray()])
        await b.execute("UPDATE kinds SET t = ? WHERE tag = ? AND label = ?", ["x", tag, "b nulls"])

        def row(label, i, r, t, b_):
            return {"label": label, "i": i, "r": r, "t": t, "b": b_}

        expected = [
            row("a 2^53+1", 2**53 + 1, 0.5, "", None),
            row("a max", 2**63 - 1, -1.0e-300, text, blob),
            row("a min", -(2**63), None, None, b""),
            row("b empty", 0, 0.0, "", b""),
            row("b nulls", None, None, "x", None),
        ]
        # Offline: each database holds its own rows only, exactly as written.
        assert await tagged(a, tag) == expected[:3]
        assert await tagged(b, tag) == expected[3:]
        assert (await a.status()).pending_changes == 3

        await a.sync()
        await b.sync()
        await a.sync()
        for db in (a, b):
            got = await tagged(db, tag)
            assert got == expected
            assert type(got[0]["i"]) is int and type(got[0]["r"]) is float
            assert type(got[1]["b"]) is bytes
            assert (await db.status()).pending_changes == 0
        kinds = await b.query(
            "SELECT typeof(t) AS t, typeof(b) AS b FROM kinds WHERE tag = ? ORDER BY label", [tag]
        )
        assert kinds[0] == {"t": "text", "b": "null"}  # '' is not NULL
        assert kinds[2] == {"t": "null", "b": "blob"}  # an empty blob is not NULL

    asyncio.run(main())


def test_a_delete_stays_deleted(tmp_path, server, tag):
    async def main():
        a = await open_db(tmp_path, "a.db", server)
        b = await open_db(tmp_path, "b.db", server)
        doomed = await insert(a, tag, "doomed", 1)
        await insert(a, tag, "kept", 1)
        await a.sync()
        await b.sync()
        assert [r["label"] for r in await tagged(b, tag)] == ["doomed", "kept"]

        # Offline: B deletes the row while A edits it.
        assert (await b.execute("DELETE FROM kinds WHERE id = ?", [doomed])).rows_affected == 1
        assert (await a.execute("UPDATE kinds SET i = 2 WHERE id = ?", [doomed])).rows_affected == 1
        await a.sync()
        await b.sync()
        await a.sync()
        # A later write cannot bring it back, nor can a third database see it.
        assert (await a.execute("UPDATE kinds SET i = 3 WHERE id = ?", [doomed])).rows_affected == 0
        await a.sync()
        await b.sync()
        c = await open_db(tmp_path, "c.db", server)
        await c.sync()
        for db in (a, b, c):
            assert [r["label"] for r in await tagged(db, tag)] == ["kept"]

    asyncio.run(main())


def test_watch_hears_local_and_pulled_changes_and_stops(tmp_path, server, tag):
    async def main():
        a = await open_db(tmp_path, "a.db", server)
        b = await open_db(tmp_path, "b.db", server)
        sql = "SELECT label FROM kinds WHERE tag = ? ORDER BY label"
        seen = []
        live = b.watch(sql, [tag], lambda rows: seen.append([r["label"] for r in rows]))
        assert seen.pop() == [] and not seen, "the first rows arrive before watch returns"
        assert live.tables == ["kinds"] and live.active

        stream = b.watch_iter(sql, [tag])
        assert await asyncio.wait_for(stream.__anext__(), 10) == []

        await insert(b, tag, "local")
        assert seen.pop() == ["local"] and not seen  # delivered before execute returned
        assert [r["label"] for r in await asyncio.wait_for(stream.__anext__(), 10)] == ["local"]

        await insert(a, tag, "remote")
        await a.sync()
        await b.sync()
        assert seen.pop() == ["local", "remote"] and not seen
        pulled = await asyncio.wait_for(stream.__anext__(), 10)
        assert [r["label"] for r in pulled] == ["local", "remote"]

        # An unrelated write does not re-deliver unchanged rows.
        await b.execute("INSERT INTO kinds (tag, label) VALUES (?, ?)", ["other " + tag, "x"])
        assert seen == []

        # Closing the iterator stops its live query; stop() stops the other.
        await stream.aclose()
        live.stop()
        assert not live.active
        await insert(b, tag, "local after stop")
        await insert(a, tag, "remote after stop")
        await a.sync()
        await b.sync()
        assert seen == [], "no delivery after stop"
        assert len(await tagged(b, tag)) == 4

    asyncio.run(main())


def test_a_wrong_url_gives_the_typed_network_error_and_keeps_local_writes(tmp_path, server, tag):
    async def main():
        db = await open_db(tmp_path, "a.db", server, url="http://127.0.0.1:1")
        await insert(db, tag, "offline", 7)
        with pytest.raises(ErthError) as caught:
            await db.sync()
        assert caught.value.kind == "Network"
        assert caught.value.message
        assert await tagged(db, tag, "label, i") == [{"label": "offline", "i": 7}]
        status = await db.status()
        assert status.pending_changes == 1 and status.last_error

    asyncio.run(main())


def test_mistakes_are_one_exception_class_with_a_kind(tmp_path, server, tag):
    async def main():
        db = await open_db(tmp_path, "a.db", server, url=None)
        await insert(db, tag, "one")
        with pytest.raises(ErthError) as caught:
            await db.transaction(
                [
                    ("INSERT INTO kinds (tag, label) VALUES (?, ?)", [tag, "two"]),
                    "INSERT INTO no_such_table VALUES (1)",
                ]
            )
        assert caught.value.kind == "Sql"
        for bad in ("DROP TABLE kinds", "BEGIN", "SELEC 1"):
            with pytest.raises(ErthError) as caught:
                await db.execute(bad)
            assert caught.value.kind == "Sql", bad
        with pytest.raises(ErthError) as caught:
            await db.query("DELETE FROM kinds")
        assert caught.value.kind == "Sql"
        for value in (2**63, object()):
            with pytest.raises(ErthError) as caught:
                await db.execute("SELECT ?", [value])
            assert caught.value.kind == "InvalidInput"
        assert [r["label"] for r in await tagged(db, tag)] == ["one"]
        with pytest.raises(ErthError) as caught:
            await db.sync()
        assert caught.value.kind == "NoRemote"
        with pytest.raises(ErthError) as caught:
            await Database.open(tmp_path / "a.db")
        assert caught.value.kind == "DatabaseLocked"
        with pytest.raises(ErthError) as caught:
            await Database.open(tmp_path / "bad.db", schema={"tables": {"t": {"columns": {"id": {"type": "text"}}}}})
        assert caught.value.kind == "InvalidInput"
        assert set(erth_sync.KINDS) >= {"Sql", "Network", "NoRemote", "DatabaseLocked"}
        # Plain http:// leaves this machine only when allowed, never with a key.
        with pytest.raises(ErthError) as caught:
            db.set_remote("http://db.example")
        assert caught.value.kind == "InvalidInput"
        with pytest.raises(ErthError) as caught:
            db.set_remote_with_key("http://db.example", None, "http-only-k3y")
        assert caught.value.kind == "InvalidInput"
        db.set_remote(None)
        # Closing releases the file.
        db.close()
        reopened = await open_db(tmp_path, "a.db", server, url=None)
        assert [r["label"] for r in await tagged(reopened, tag)] == ["one"]

    asyncio.run(main())


def test_concurrent_calls_from_tasks_and_threads_are_safe(tmp_path, server, tag):
    workers, each = 8, 10
    count = "SELECT count(*) AS n, sum(i) AS s FROM kinds WHERE tag = ?"
    expected = {"n": 2 * workers * each, "s": 2 * workers * sum(range(each))}

    async def task(db, prefix, w):
        for i in range(each):
            await insert(db, tag, f"{prefix}{w}-{i}", i)
        await db.query(count, [tag])
        await db.sync()

    async def main():
        a = await open_db(tmp_path, "a.db", server)
        await asyncio.gather(*(task(a, "task", w) for w in range(workers)))
        return a

    a = asyncio.run(main())
    # The same database from many threads, through the blocking API.
    blocking = BlockingDatabase(a)
    errors = []

    def thread(w):
        try:
            for i in range(each):
                blocking.execute("INSERT INTO kinds (tag, label, i) VALUES (?, ?, ?)", [tag, f"thread{w}-{i}", i])
            blocking.sync()
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=thread, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert blocking.query(count, [tag]) == [expected]
    blocking.sync()
    assert blocking.status().pending_changes == 0

    url, token = server
    with BlockingDatabase.open(tmp_path / "b.db", url, token, KINDS_SCHEMA) as b:
        threads = [threading.Thread(target=b.sync) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert b.query(count, [tag]) == [expected]


def test_url_and_token_from_the_environment_when_asked(tmp_path, server, tag, monkeypatch):
    url, token = server
    monkeypatch.setenv(erth_sync.URL_ENV, url)
    if token:
        monkeypatch.setenv(erth_sync.TOKEN_ENV, token)
    else:
        monkeypatch.delenv(erth_sync.TOKEN_ENV, raising=False)
    with BlockingDatabase.open(tmp_path / "env.db", from_env=True) as db:
        todo = db.add_todo(f"{tag} from env")
        assert db.sync().pushed == 1
        assert db.status().remote_url
    # Without from_env the variables are ignored: local-only.
    with BlockingDatabase.open(tmp_path / "local.db") as db:
        with pytest.raises(ErthError) as caught:
            db.sync()
        assert caught.value.kind == "NoRemote"
    with BlockingDatabase.open(tmp_path / "other.db", from_env=True) as db:
        db.sync()
        assert db.get_todo(todo.id).title == f"{tag} from env"


def _server_sql(server, sql):
    """Runs one statement on the test server over Hrana's HTTP pipeline."""
    import json
    import urllib.request

    url, token = server
    # No "close" request: tursodb does not know it (sqld closes idle streams itself).
    body = json.dumps({"requests": [{"type": "execute", "stmt": {"sql": sql}}]})
    request = urllib.request.Request(
        url.rstrip("/") + "/v2/pipeline",
        data=body.encode(),
        headers={"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.load(response)
    assert answer["results"][0]["type"] == "ok", answer


def test_a_row_the_server_refuses_is_set_aside_listed_and_discarded(tmp_path, server, tag):
    async def main():
        a = await open_db(tmp_path, "a.db", server)
        await insert(a, tag, "first")
        await a.sync()  # the server's table exists from here on
        trigger = "erth_py_refuse_" + tag.replace("-", "")
        _server_sql(
            server,
            f"CREATE TRIGGER {trigger} BEFORE INSERT ON kinds WHEN NEW.tag = '{tag}' AND NEW.label = 'bad' "
            "BEGIN SELECT RAISE(ABORT, 'refused by a server rule'); END",
        )
        try:
            bad = await insert(a, tag, "bad")
            await insert(a, tag, "good")
            await a.sync()  # the refused row does not hold the other back
            rejected = await a.rejected_rows()
            assert [(r.table, r.id) for r in rejected] == [("kinds", bad)]
            assert "refused by a server rule" in rejected[0].message
            assert (await a.status()).rejected == 1
            b = await open_db(tmp_path, "b.db", server)
            await b.sync()
            assert [r["label"] for r in await tagged(b, tag, "label")] == ["first", "good"]
            await a.discard_rejected("kinds", bad)
            assert await a.rejected_rows() == []
            assert [r["label"] for r in await tagged(a, tag, "label")] == ["first", "good"]
            assert await a.retry_rejected() == 0
            with pytest.raises(ErthError) as refused:
                await a.discard_rejected("kinds", bad)
            assert refused.value.kind == "NotFound"
        finally:
            _server_sql(server, f"DROP TRIGGER IF EXISTS {trigger}")

    asyncio.run(main())


def test_params_that_are_not_a_sequence_of_values_are_refused_and_change_nothing(tmp_path, server, tag):
    async def main():
        db = await open_db(tmp_path, "a.db", server, url=None)
        # A dict would bind its keys and a str its characters.
        for params in ({"label": "x"}, "abc", b"abc"):
            with pytest.raises(ErthError) as refused:
                await db.execute("INSERT INTO kinds (tag, label) VALUES (?, ?)", params)
            assert refused.value.kind == "InvalidInput"
            assert "positional" in refused.value.message
            with pytest.raises(ErthError):
                await db.query("SELECT ? AS x", params)
        assert await tagged(db, tag) == []
        assert (await db.query("SELECT count(*) AS n FROM kinds"))[0]["n"] == 0

    asyncio.run(main())


def test_auto_sync_carries_a_write_to_a_second_database_without_sync(tmp_path, server, tag):
    async def main():
        url, token = server
        quick = erth_sync.AutoSyncOptions(debounce_ms=50, interval_ms=0)
        a = await Database.open(tmp_path / "a.db", url, token, KINDS_SCHEMA, auto_sync=quick)
        polling = erth_sync.AutoSyncOptions(debounce_ms=50, interval_ms=200)
        b = await Database.open(tmp_path / "b.db", url, token, KINDS_SCHEMA, auto_sync=polling)
        assert (await a.status()).auto_sync
        await insert(a, tag, "auto-synced")
        # b pulls a's write; a's push is acknowledged (it may be a moment after b sees the row).
        for _ in range(300):  # 15 s
            pulled = await tagged(b, tag, "label") == [{"label": "auto-synced"}]
            if pulled and (await a.status()).pending_changes == 0:
                break
            await asyncio.sleep(0.05)
        assert await tagged(b, tag, "label") == [{"label": "auto-synced"}], "b never pulled a's write"
        assert (await a.status()).pending_changes == 0
        # Offline: sync() fails at once with kind Network, and status says so.
        a.set_online(False)
        with pytest.raises(ErthError) as caught:
            await a.sync()
        assert caught.value.kind == "Network"
        assert not (await a.status()).online
        a.set_online(True)
        a.close()
        b.close()

    asyncio.run(main())


def test_a_refused_row_carries_the_servers_code_and_a_broken_row_is_quarantined(tmp_path, server, tag):
    async def main():
        url, token = server
        # Two app versions: a's `v` may not be NULL and its `w` holds blobs;
        # b's `v` may be NULL and its `w` holds text.
        table = "clash_" + tag.replace("-", "")[:12]
        strict = {"tables": {table: {"columns": {"v": {"type": "text", "notNull": True, "default": ""}, "w": {"type": "blob"}}}}}
        loose = {"tables": {table: {"columns": {"v": {"type": "text"}, "w": {"type": "text"}}}}}
        a = await Database.open(tmp_path / "a.db", url, token, strict)
        await a.execute(f"INSERT INTO {table} (v, w) VALUES ('from a', ?)", [b"\x00\x01"])
        await a.sync()
        b = await Database.open(tmp_path / "b.db", url, token, loose)
        await b.execute(f"INSERT INTO {table} (v, w) VALUES (NULL, 'from b')")
        # The sync goes through: the server refuses b's row (its code kept),
        # and b quarantines a's row (a blob where b reads text).
        await b.sync()
        refused = await b.rejected_rows()
        assert len(refused) == 1 and refused[0].code
        assert "NOT NULL" in refused[0].message
        quarantined = await b.quarantined_rows()
        assert len(quarantined) == 1 and "w" in quarantined[0].reason
        status = await b.status()
        assert (status.rejected, status.quarantined, status.last_error_kind) == (1, 1, None)
        a.close()
        b.close()

    asyncio.run(main())


def test_waiting_for_the_first_sync_ends_with_it_and_never_while_offline(tmp_path, server, tag):
    async def main():
        url, token = server
        a = await open_db(tmp_path, "a.db", server)
        await insert(a, tag, "from a")
        await a.sync()
        b = await open_db(tmp_path, "b.db", server)
        b.set_online(False)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(b.wait_for_first_sync(), timeout=0.3)
        b.set_online(True)
        waiting = asyncio.ensure_future(b.wait_for_first_sync())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        await b.sync()
        await asyncio.wait_for(waiting, timeout=5)
        assert await tagged(b, tag, "label") == [{"label": "from a"}]
        # After it: at once.
        await asyncio.wait_for(b.wait_for_first_sync(), timeout=5)
        assert await b.quarantined_rows() == []
        assert await b.forget_quarantined() == 0
        assert (await b.status()).quarantined == 0
        a.close()
        b.close()

    asyncio.run(main())


def test_databases_still_open_at_exit_are_closed_before_the_interpreter_shuts_down(tmp_path):
    # Freed during the interpreter's shutdown instead, an engine thread that
    # completes a call then calls back into a Python that is ending, which
    # aborted about 1 exit in 100 (gdb: a tokio "erth-io" thread ended
    # inside Rust's catch_unwind: "FATAL: exception not rethrown").
    import subprocess
    import sys

    async def main() -> None:
        kept = await Database.open(str(tmp_path / "kept.db"))
        blocking = BlockingDatabase.open(str(tmp_path / "blocking.db"))
        erth_sync._close_at_exit()
        for db in (kept, blocking.database):
            with pytest.raises(ErthError) as closed:
                await db.status()
            assert closed.value.kind == "InvalidInput" and "closed" in str(closed.value)
        # The files were released: they open again.
        again = await Database.open(str(tmp_path / "kept.db"))
        again.close()

    asyncio.run(main())
    # And the interpreter runs it at exit: a handler registered before the
    # import runs after it (last in, first out) and sees the database closed.
    script = (
        "import atexit, asyncio, sys\n"
        "held = {}\n"
        "atexit.register(lambda: print('closed' if held['db']._native is None else 'open'))\n"
        "import erth_sync\n"
        "held['db'] = asyncio.run(erth_sync.Database.open(sys.argv[1]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "exit.db")], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout.strip()) == (0, "closed"), out.stderr


def test_a_subscription_pulls_only_its_rows_which_leave_when_they_no_longer_match(tmp_path, server, tag):
    async def main():
        writer = await open_db(tmp_path, "w.db", server)
        phone = await open_db(tmp_path, "p.db", server)
        mine = await insert(writer, tag, "mine", 1)
        await insert(writer, tag, "other", 2)
        await writer.sync()

        await phone.add_subscription("mine", "kinds", "tag = ? AND i = ?", [tag, 1])
        await asyncio.wait_for(phone.wait_for_subscription("mine"), 30)
        assert [r["label"] for r in await tagged(phone, tag)] == ["mine"]
        (sub,) = await phone.subscriptions()
        assert (sub.name, sub.table, sub.ready, sub.expires_at_ms) == ("mine", "kinds", True, None)

        # The row leaves the filter on the server: evicted here, kept there.
        await writer.execute("UPDATE kinds SET i = 5 WHERE id = ?", [mine])
        await writer.sync()
        await phone.sync()
        assert await tagged(phone, tag) == []
        assert (await phone.status()).pending_changes == 0
        assert [r["i"] for r in await tagged(writer, tag, "i")] == [5, 2]

        assert await phone.remove_subscription("mine") is True
        assert await phone.remove_subscription("mine") is False
        for bad, params in [("1); DROP TABLE kinds; --", []), ("i = ?", []), ("id IN (SELECT k FROM _erth_state)", [])]:
            with pytest.raises(ErthError) as refused:
                await phone.add_subscription("bad", "kinds", bad, params)
            assert refused.value.kind == "InvalidInput", bad
        with pytest.raises(ErthError) as unknown:
            await phone.wait_for_subscription("nope")
        assert unknown.value.kind == "NotFound"

    asyncio.run(main())


def test_a_purge_removes_old_tombstones_and_an_offline_edit_of_a_purged_row_is_dropped(tmp_path, server, tag):
    async def main():
        writer = await open_db(tmp_path, "w.db", server)
        phone = await open_db(tmp_path, "p.db", server)
        gone = await insert(writer, tag, "gone", 1)
        await insert(writer, tag, "kept", 2)
        await writer.sync()
        await phone.sync()
        # The phone edits a row offline; another device deletes it, and the
        # server is purged of its tombstones.
        await phone.execute("UPDATE kinds SET i = 9 WHERE id = ?", [gone])
        await writer.execute("DELETE FROM kinds WHERE id = ?", [gone])
        await writer.sync()
        report = await writer.purge(0)
        (kinds,) = [t for t in report.tables if t.table == "kinds"]
        assert kinds.rows >= 1 and kinds.mark > 0, report
        assert report.horizon_ms > 0
        # The phone's edit of the purged row is dropped, never pushed back.
        await phone.sync()
        assert [r["label"] for r in await tagged(phone, tag)] == ["kept"]
        assert (await phone.status()).pending_changes == 0
        await writer.sync()
        assert [r["label"] for r in await tagged(writer, tag)] == ["kept"]
        local = await erth_sync.Database.open(str(tmp_path / "local.db"))
        with pytest.raises(ErthError) as no_remote:
            await local.purge()
        assert no_remote.value.kind == "NoRemote"

    asyncio.run(main())


def test_encrypted_columns_sync_between_key_holders_and_a_missing_or_wrong_key_is_typed(tmp_path, server, tag):
    async def main():
        url, token = server
        schema = {"tables": {"secrets": {"columns": {"tag": {"type": "text"}, "body": {"type": "text", "encrypted": True}}}}}
        key = bytes(range(32))

        async def opened(name, keys):
            return await Database.open(tmp_path / name, url=url, auth_token=token, schema=schema, column_keys=keys)

        a = await opened("ka.db", [key])
        b = await opened("kb.db", [key])
        await a.execute("INSERT INTO secrets (tag, body) VALUES (?, ?)", [tag, "the plan"])
        await a.sync()
        await b.sync()
        assert [r["body"] for r in await b.query("SELECT body FROM secrets WHERE tag = ?", [tag])] == ["the plan"]
        with pytest.raises(ErthError) as missing:
            await opened("kc.db", None)
        assert missing.value.kind == "InvalidInput"
        wrong = await opened("kw.db", [bytes(32)])
        with pytest.raises(ErthError) as refused:
            await wrong.sync()
        assert refused.value.kind == "WrongKey"
        assert "column key" in str(refused.value)
        # A recovery phrase gives the same key on another device.
        phrase = erth_sync.new_recovery_phrase()
        assert len(phrase.split(" ")) == 24
        from_phrase = erth_sync.column_key_from_recovery_phrase(phrase)
        assert len(from_phrase) == 32
        assert erth_sync.column_key_from_recovery_phrase(f"  {phrase.upper()}\n") == from_phrase
        # (with the first key too: the table holds values sealed with it)
        p1 = await opened("kp1.db", [from_phrase, key])
        await p1.execute("INSERT INTO secrets (tag, body) VALUES (?, ?)", [tag + "p", "from a phrase"])
        await p1.sync()
        p2 = await opened("kp2.db", [erth_sync.column_key_from_recovery_phrase(phrase), key])
        await p2.sync()
        assert [r["body"] for r in await p2.query("SELECT body FROM secrets WHERE tag = ?", [tag + "p"])] == ["from a phrase"]
        words = phrase.split(" ")
        with pytest.raises(ErthError) as typo:
            erth_sync.column_key_from_recovery_phrase(" ".join(words[:23] + ["zzzz"]))
        assert typo.value.kind == "InvalidInput"
        assert "word 24" in str(typo.value) and words[0] not in str(typo.value).split()

    asyncio.run(main())


def test_an_encrypted_file_opens_only_with_its_key_and_converts_to_plain(tmp_path):
    async def main():
        path = tmp_path / "at-rest.db"
        marker = "python-at-rest-marker"
        key = erth_sync.file_key_from_recovery_phrase(erth_sync.new_recovery_phrase())
        assert len(key) == 32

        def on_disk():
            files = [path, tmp_path / "at-rest.db-wal"]
            return any(f.exists() and marker.encode() in f.read_bytes() for f in files)

        db = await Database.open(path, file_key=key)
        await db.add_todo(marker)
        assert not on_disk(), "the open file and its WAL are encrypted"
        db.close()
        assert not on_disk()
        before = path.read_bytes()
        for wrong in (None, bytes(32)):
            with pytest.raises(ErthError) as refused:
                await Database.open(path, file_key=wrong)
            assert refused.value.kind == "WrongKey", refused.value
        assert path.read_bytes() == before, "a wrong key changed the file"
        with pytest.raises(ErthError) as short:
            await Database.open(path, file_key=b"short")
        assert short.value.kind == "InvalidInput"
        with pytest.raises(ErthError) as wrong_old:
            erth_sync.change_file_key(path, bytes(32), None)
        assert wrong_old.value.kind == "WrongKey"
        erth_sync.change_file_key(path, key, None)
        assert on_disk(), "decrypted: the grep finds the value"
        plain = await Database.open(path)
        assert [t.title for t in await plain.list_active_todos()] == [marker]
        with pytest.raises(ErthError) as busy:
            erth_sync.change_file_key(path, None, key)
        assert busy.value.kind == "DatabaseLocked"
        plain.close()

    asyncio.run(main())
