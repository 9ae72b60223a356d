"""The example ``examples/db.py`` keeps the original design's data layer:
the same ``async`` functions with the same signatures and dict returns, on
background sync. An app imports it as ``db`` (its own module's name) and
changes nothing else: here the original design's usage (a startup hook, then
handlers awaiting the four functions) runs in separate processes, one per
device run, against the test server; and with a server that accepts
connections and never answers, every call returns within the configured
timeout while the event loop keeps ticking."""

import asyncio
import importlib.util
import inspect
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import erth_sync

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# The original design's usage: a web app's startup hook awaits init_db(),
# its handlers await the other three. `db` is imported as the app imports
# its own data layer. Actions come as JSON in argv[1]; results go to stdout.
APP = """
import asyncio, json, sys
import db

async def main(actions):
    await db.init_db()
    out = []
    for action, arg in actions:
        if action == "add":
            out.append(await db.add_todo(arg))
        elif action == "delete":
            out.append(await db.soft_delete_todo(arg))
        elif action == "list":
            out.append(await db.get_active_todos())
    await db.close_db()
    print(json.dumps(out))

asyncio.run(main(json.loads(sys.argv[1])))
"""

FIELDS = ["id", "title", "is_completed", "is_deleted", "created_at", "updated_at"]


def load_example(name):
    """A fresh copy of the example module (its own globals: one device)."""
    spec = importlib.util.spec_from_file_location(f"db_{name}", EXAMPLES / "db.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def app(actions, *, path, url, token=None, timeout=60):
    """Runs the app once, as its own process, on replica file `path`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERTH_") and k != "DATABASE_URL"}
    env.update({"ERTH_DB_PATH": str(path), "PYTHONPATH": str(EXAMPLES), "ERTH_REQUEST_TIMEOUT_MS": "5000"})
    if url:
        env[erth_sync.URL_ENV] = url
    if token:
        env[erth_sync.TOKEN_ENV] = token
    done = subprocess.run(
        [sys.executable, "-c", APP, json.dumps(actions)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def mine(todos, tag):
    return [t["title"] for t in todos if t["title"].startswith(tag)]


def test_the_functions_keep_the_original_signatures():
    db = load_example("signatures")
    expected = {"init_db": [], "get_active_todos": [], "add_todo": ["title"], "soft_delete_todo": ["todo_id"]}
    for name, params in expected.items():
        fn = getattr(db, name)
        assert inspect.iscoroutinefunction(fn), name
        assert list(inspect.signature(fn).parameters) == params, name
        assert inspect.getdoc(fn), name


def test_the_original_usage_in_separate_processes(tmp_path, server, tag):
    url, token = server
    laptop, phone = tmp_path / "laptop.db", tmp_path / "phone.db"
    missing = "0190a0a0-0000-7000-8000-000000000000"
    before = int(time.time() * 1000)

    milk, eggs, listed = app(
        [["add", f"{tag} milk"], ["add", f"{tag} eggs"], ["list", None]], path=laptop, url=url, token=token
    )
    # The dicts the original's model_dump() gave: same keys, in order, same types.
    for todo in (milk, eggs):
        assert list(todo) == FIELDS
        assert uuid.UUID(todo["id"]).version == 7
        assert (todo["is_completed"], todo["is_deleted"]) == (0, 0)
        assert type(todo["is_completed"]) is int and type(todo["created_at"]) is int
        assert before <= todo["created_at"] == todo["updated_at"] <= int(time.time() * 1000)
    assert mine(listed, tag) == [f"{tag} eggs", f"{tag} milk"]  # newest first
    assert [t for t in listed if t["id"] == milk["id"]] == [milk]

    deleted, again, absent, not_an_id, left = app(
        [["delete", milk["id"]], ["delete", milk["id"]], ["delete", missing], ["delete", "nope"], ["list", None]],
        path=laptop,
        url=url,
        token=token,
    )
    assert (deleted, again, absent, not_an_id) == (True, False, False, False)
    assert mine(left, tag) == [f"{tag} eggs"]

    # Another device: it starts with the laptop's todos; its writes go back.
    seen, bread, deleted_eggs = app(
        [["list", None], ["add", f"{tag} bread"], ["delete", eggs["id"]]], path=phone, url=url, token=token
    )
    assert mine(seen, tag) == [f"{tag} eggs"]
    assert deleted_eggs is True

    (now, eggs_again) = app([["list", None], ["delete", eggs["id"]]], path=laptop, url=url, token=token)
    assert [t for t in now if t["title"].startswith(tag)] == [bread]
    assert eggs_again is False  # deleted on the other device


def test_without_a_server_everything_stays_local(tmp_path, tag):
    first, second, listed = app(
        [["add", f"{tag} first"], ["add", f"{tag} second"], ["list", None]], path=tmp_path / "local.db", url=None
    )
    assert [t["id"] for t in listed] == [second["id"], first["id"]]
    deleted, left = app([["delete", first["id"]], ["list", None]], path=tmp_path / "local.db", url=None)
    assert deleted is True and [t["title"] for t in left] == [f"{tag} second"]


def test_settings_follow_the_original_database_url(monkeypatch):
    db = load_example("settings")
    for name in ("ERTH_DB_PATH", erth_sync.URL_ENV, erth_sync.TOKEN_ENV, "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert db.settings() == ("local_edge.db", None, None)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///data/app.db")
    assert db.settings() == ("data/app.db", None, None)
    monkeypatch.setenv("DATABASE_URL", "sqlite+libsql://my-db.turso.io?secure=true")
    assert db.settings() == ("local_edge.db", "libsql://my-db.turso.io?secure=true", None)
    monkeypatch.setenv(erth_sync.URL_ENV, "http://127.0.0.1:8080")
    monkeypatch.setenv(erth_sync.TOKEN_ENV, "t")
    monkeypatch.setenv("ERTH_DB_PATH", "here.db")
    assert db.settings() == ("here.db", "http://127.0.0.1:8080", "t")
    assert uuid.UUID(db.generate_uuidv7()).version == 7


class Silent:
    """A server that accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_server_that_never_answers_costs_the_timeout_and_never_blocks_the_loop(tmp_path, tag, monkeypatch):
    silent = Silent()
    timeout_ms = 1000
    for name in (erth_sync.TOKEN_ENV, "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ERTH_DB_PATH", str(tmp_path / "offline.db"))
    monkeypatch.setenv(erth_sync.URL_ENV, silent.url)
    monkeypatch.setenv("ERTH_REQUEST_TIMEOUT_MS", str(timeout_ms))
    monkeypatch.setenv("ERTH_SYNC_INTERVAL_MS", "200")
    db = load_example("offline")

    async def scenario():
        lag = {"max": 0.0}
        running = True

        async def ticker():
            # How late the loop runs a 5 ms sleep: a blocked loop shows here.
            while running:
                started = time.perf_counter()
                await asyncio.sleep(0.005)
                lag["max"] = max(lag["max"], time.perf_counter() - started - 0.005)

        tick = asyncio.ensure_future(ticker())
        took = {}

        async def timed(name, call):
            started = time.perf_counter()
            result = await call
            took[name] = max(took.get(name, 0.0), time.perf_counter() - started)
            return result

        await timed("init_db", db.init_db())
        todos = [await timed("add_todo", db.add_todo(f"{tag} offline {i}")) for i in range(20)]
        listed = await timed("get_active_todos", db.get_active_todos())
        deleted = await timed("soft_delete_todo", db.soft_delete_todo(todos[0]["id"]))
        # Let auto-sync keep running into the silent server for a while.
        for _ in range(10):
            await timed("get_active_todos", db.get_active_todos())
            await asyncio.sleep(0.15)
        status = await db._database().status()
        await timed("close_db", db.close_db(timeout=0.5))
        running = False
        await tick
        return took, lag["max"], listed, deleted, status

    try:
        took, max_lag, listed, deleted, status = asyncio.run(scenario())
    finally:
        silent.close()
    limit = timeout_ms / 1000
    # init_db syncs once: it gives up at the request timeout (plus slack for a busy machine).
    assert limit * 0.8 <= took["init_db"] <= limit + 1.5, took
    # Everything else is local: well under the timeout.
    for name in ("add_todo", "get_active_todos", "soft_delete_todo"):
        assert took[name] < limit / 2, (name, took)
    assert took["close_db"] < 0.5 + 1.0, took
    # The loop never waited on the network (a blocked loop would lag by about the timeout).
    assert max_lag < limit * 0.4, (max_lag, took)
    assert len(mine(listed, tag)) == 20 and deleted is True
    # Background sync did run into the silent server, and reports it.
    assert status.last_error_kind == erth_sync.ErrorKind.NETWORK, status
    assert status.pending_changes == 20
