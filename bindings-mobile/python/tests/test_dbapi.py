"""erth_sync.dbapi, the PEP 249 module: module globals, cursors
(description, rowcount, fetch*, lastrowid is None: ids are UUIDv7 text), transactions on the replica's
write transactions (commit, rollback, isolation from other connections),
the exception hierarchy, shared replicas, and the ignored sqlite3 options."""

import threading
import time

import pytest

from erth_sync import dbapi

A, B, C = "0190a4a0-0000-7000-8000-000000000011", "0190a4a0-0000-7000-8000-000000000012", "0190a4a0-0000-7000-8000-000000000013"

SCHEMA = {
    "tables": {
        "items": {
            "columns": {
                "name": {"type": "text", "notNull": True, "default": ""},
                "qty": {"type": "integer"},
                "price": {"type": "real"},
                "data": {"type": "blob"},
            }
        }
    }
}


def test_module_globals_and_exception_hierarchy():
    assert dbapi.apilevel == "2.0"
    assert dbapi.paramstyle == "qmark"
    assert dbapi.threadsafety == 1
    assert issubclass(dbapi.IntegrityError, dbapi.DatabaseError)
    assert issubclass(dbapi.ProgrammingError, dbapi.DatabaseError)
    assert issubclass(dbapi.OperationalError, dbapi.DatabaseError)
    assert issubclass(dbapi.DatabaseError, dbapi.Error)
    assert issubclass(dbapi.InterfaceError, dbapi.Error)
    assert dbapi.Connection.IntegrityError is dbapi.IntegrityError
    assert "INTEGER" == dbapi.NUMBER and "BLOB" == dbapi.BINARY


def test_cursor_reads_writes_and_describes(tmp_path):
    conn = dbapi.connect(str(tmp_path / "a.db"), schema=SCHEMA, check_same_thread=False)
    # The SQLite the engine bundles is the one the module announces.
    version = conn.execute("SELECT sqlite_version()").fetchone()[0]
    assert dbapi.sqlite_version == version
    assert dbapi.sqlite_version_info == tuple(int(p) for p in version.split("."))

    cur = conn.cursor()
    cur.execute("INSERT INTO items (id, name, qty, price, data) VALUES (?, ?, ?, ?, ?)", (A, "apple", 3, 1.5, b"\x00\x01"))
    assert cur.rowcount == 1
    assert cur.description is None
    cur.executemany("INSERT INTO items (id, name, qty) VALUES (?, ?, ?)", [(B, "banana", 1), (C, "cherry", 2)])
    assert cur.rowcount == 2
    assert conn.in_transaction
    conn.commit()
    assert not conn.in_transaction

    cur.execute("SELECT id, name, qty, price, data FROM items ORDER BY id")
    assert [d[0] for d in cur.description] == ["id", "name", "qty", "price", "data"]
    assert cur.description[2][1] == dbapi.NUMBER and cur.description[4][1] == dbapi.BINARY
    assert cur.fetchone() == (A, "apple", 3, 1.5, b"\x00\x01")
    assert cur.fetchmany(1) == [(B, "banana", 1, None, None)]
    assert cur.fetchall() == [(C, "cherry", 2, None, None)]
    assert cur.fetchone() is None

    # An empty result still names its columns; repeated names stay.
    cur.execute("SELECT id, id FROM items WHERE qty > ?", (100,))
    assert [d[0] for d in cur.description] == ["id", "id"]
    assert cur.fetchall() == []

    # Ids are UUIDv7 text, not rowids: lastrowid has nothing to say.
    cur.execute("INSERT INTO items (name) VALUES (?)", ("date",))
    assert cur.rowcount == 1 and cur.lastrowid is None
    conn.commit()
    assert len(conn.execute("SELECT id FROM items WHERE name = 'date'").fetchone()[0]) == 36

    with pytest.raises(dbapi.IntegrityError) as dup:
        cur.execute("INSERT INTO items (id, name) VALUES (?, 'again')", (A,))
    assert dup.value.kind == "Sql"
    with pytest.raises(dbapi.ProgrammingError):
        cur.execute("SELECT nope FROM items")
    with pytest.raises(dbapi.NotSupportedError):
        cur.execute("BEGIN")
    with pytest.raises(dbapi.InterfaceError):
        cur.execute("SELECT 1", {"a": 1})
    conn.rollback()
    cur.close()
    with pytest.raises(dbapi.InterfaceError):
        cur.execute("SELECT 1")
    conn.close()
    conn.close()
    with pytest.raises(dbapi.InterfaceError):
        conn.cursor()


def test_transactions_commit_roll_back_and_exclude_other_connections(tmp_path):
    path = str(tmp_path / "b.db")
    a = dbapi.connect(path, schema=SCHEMA)
    b = dbapi.connect(path)  # shares the open replica
    assert a.database is b.database

    a.execute("INSERT INTO items (id, name, qty) VALUES ('0190a4a0-0000-7000-8000-000000000024', '0190a4a0-0000-7000-8000-000000000024', 1)")
    a.rollback()
    assert b.execute("SELECT count(*) FROM items").fetchone() == (0,)

    # Read-modify-write in a: b's write waits until a commits.
    a.execute("INSERT INTO items (id, name, qty) VALUES ('0190a4a0-0000-7000-8000-000000000024', '0190a4a0-0000-7000-8000-000000000024', 1)")
    qty = a.execute("SELECT qty FROM items WHERE id = '0190a4a0-0000-7000-8000-000000000024'").fetchone()[0]
    done = []

    def other():
        b.execute("UPDATE items SET qty = 100 WHERE id = '0190a4a0-0000-7000-8000-000000000024'")
        b.commit()
        done.append(time.monotonic())

    t = threading.Thread(target=other)
    t.start()
    time.sleep(0.3)
    assert not done, "another connection wrote into an open transaction"
    a.execute("UPDATE items SET qty = ? WHERE id = '0190a4a0-0000-7000-8000-000000000024'", (qty + 1,))
    a.commit()
    t.join()
    assert a.execute("SELECT qty FROM items WHERE id = '0190a4a0-0000-7000-8000-000000000024'").fetchone() == (100,)

    # `with connection`: commit on success, roll back on error.
    with pytest.raises(RuntimeError):
        with a:
            a.execute("UPDATE items SET qty = 0 WHERE id = '0190a4a0-0000-7000-8000-000000000024'")
            raise RuntimeError("no")
    assert a.execute("SELECT qty FROM items").fetchone() == (100,)
    with a:
        a.execute("UPDATE items SET qty = 5 WHERE id = '0190a4a0-0000-7000-8000-000000000024'")
    assert b.execute("SELECT qty FROM items").fetchone() == (5,)

    # Closing rolls back what is uncommitted; the replica closes with the
    # last connection.
    b.execute("UPDATE items SET qty = 6 WHERE id = '0190a4a0-0000-7000-8000-000000000024'")
    b.close()
    assert a.execute("SELECT qty FROM items").fetchone() == (5,)
    a.close()
    again = dbapi.connect(path, schema=SCHEMA)
    assert again.execute("SELECT qty FROM items").fetchone() == (5,)
    again.close()


def test_declare_migrates_additively_and_names_a_refused_change(tmp_path):
    conn = dbapi.connect(str(tmp_path / "c.db"), schema=SCHEMA, lazy=True)
    conn.declare({"items": {"columns": dict(SCHEMA["tables"]["items"]["columns"], note={"type": "text"})}})
    conn.execute("INSERT INTO items (id, name, note) VALUES ('0190a4a0-0000-7000-8000-000000000014', 'n', 'hello')")
    conn.commit()
    with pytest.raises(dbapi.ProgrammingError) as refused:
        conn.declare({"items": {"columns": {"name": {"type": "integer"}}}})
    assert refused.value.kind == "SchemaChange"
    assert "items" in str(refused.value)
    # The file kept its schema and data.
    assert conn.execute("SELECT note FROM items").fetchall() == [("hello",)]
    conn.close()


EXIT_SCRIPT = """
import sys, uuid
from erth_sync import dbapi
conn = dbapi.connect(sys.argv[1], url=sys.argv[2] or None, auth_token=sys.argv[3] or None, schema={schema!r})
conn.execute("INSERT INTO items (id, name) VALUES (?, ?)", (sys.argv[4], sys.argv[5]))
conn.commit()
# Left open: an uncommitted write, and the connection itself.
conn.execute("INSERT INTO items (id, name) VALUES (?, ?)", (sys.argv[6], sys.argv[5]))
"""


def test_a_script_that_exits_pushes_what_it_committed_and_drops_the_rest(tmp_path, server, tag):
    import subprocess
    import sys

    url, token = server
    script = tmp_path / "exit.py"
    script.write_text(EXIT_SCRIPT.format(schema=SCHEMA))
    ids = ["0190a4a0-0000-7000-8000-%012d" % n for n in (51, 52)]
    # Fresh ids per run: the server may be shared.
    import uuid as _uuid

    ids = [str(_uuid.UUID(int=(_uuid.UUID(i).int ^ (_uuid.uuid4().int & ((1 << 62) - 1))))) for i in ids]
    started = time.monotonic()
    subprocess.run(
        [sys.executable, str(script), str(tmp_path / "w.db"), url, token or "", ids[0], tag, ids[1]],
        check=True,
        timeout=60,
    )
    # No wait for the open transaction: it rolls back.
    assert time.monotonic() - started < 20
    reader = dbapi.connect(str(tmp_path / "r.db"), url=url, auth_token=token, schema=SCHEMA)
    reader.database.sync()
    assert reader.execute("SELECT id FROM items WHERE name = ?", (tag,)).fetchall() == [(ids[0],)]
    reader.close()
    writer = dbapi.connect(str(tmp_path / "w.db"), schema=SCHEMA)
    assert writer.execute("SELECT id FROM items WHERE name = ?", (tag,)).fetchall() == [(ids[0],)]
    assert writer.status().pending_changes == 0
    writer.close()


def test_closing_the_last_connection_pushes_what_was_committed(tmp_path, server, tag):
    # SQLAlchemy's engine.dispose() closes every connection before a process
    # exits: the exit push then finds no open replica, so the close pushes.
    import uuid as _uuid

    url, token = server
    row = str(_uuid.UUID(int=(_uuid.UUID("0190a4a0-0000-7000-8000-000000000061").int ^ (_uuid.uuid4().int & ((1 << 62) - 1)))))
    path = str(tmp_path / "w.db")
    first = dbapi.connect(path, url=url, auth_token=token, schema=SCHEMA)  # auto-sync off
    second = dbapi.connect(path)
    first.execute("INSERT INTO items (id, name) VALUES (?, ?)", (row, tag))
    first.commit()
    first.close()  # not the last: nothing pushed yet
    assert second.status().pending_changes == 1
    second.close()
    reader = dbapi.connect(str(tmp_path / "r.db"), url=url, auth_token=token, schema=SCHEMA)
    reader.database.sync()
    assert reader.execute("SELECT id FROM items WHERE name = ?", (tag,)).fetchall() == [(row,)]
    reader.close()
    again = dbapi.connect(path, schema=SCHEMA)
    assert again.status().pending_changes == 0
    again.close()


def test_a_file_encrypted_at_rest_opens_with_its_key_and_refuses_another(tmp_path):
    path = str(tmp_path / "at-rest.db")
    key = bytes(range(32))
    conn = dbapi.connect(path, schema=SCHEMA, file_key=key)
    conn.execute("INSERT INTO items (id, name, qty) VALUES ('0190a4a0-0000-7000-8000-000000000031', 'dbapi-at-rest-marker', 3)")
    conn.commit()
    conn.close()
    assert b"dbapi-at-rest-marker" not in open(path, "rb").read()
    with pytest.raises(dbapi.OperationalError) as refused:
        dbapi.connect(path, schema=SCHEMA, file_key=bytes(32))
    assert "file key" in str(refused.value)
    again = dbapi.connect(path, schema=SCHEMA, file_key=key)
    assert again.execute("SELECT name, qty FROM items").fetchall() == [("dbapi-at-rest-marker", 3)]
    again.close()
