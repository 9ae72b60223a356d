"""Turso Sync (PyPI `pyturso`) on the benchmark's device-A/device-B scenario.

One run against a fresh `tursodb --sync-server` at `--url`: device A creates
the todos table and pushes it (setup), inserts `--rows` todos in one
transaction (Turso Sync's cheapest way to write them) and pushes; a fresh
device B connects, which bootstraps it with the whole database; A makes
`--edits` renames, each its own commit, and pushes; B pulls. Prints one JSON
object of milliseconds per step. Run by erth-bench with the cache's venv.
"""

import argparse
import json
import os
import platform
import time
from importlib.metadata import version

import turso.sync


SCHEMA = (
    "CREATE TABLE IF NOT EXISTS todos (id TEXT PRIMARY KEY, title TEXT NOT NULL, "
    "is_completed INTEGER NOT NULL DEFAULT 0, is_deleted INTEGER NOT NULL DEFAULT 0, "
    "created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)"
)


def ms_since(t: int) -> float:
    return (time.perf_counter_ns() - t) / 1e6


def count(conn, sql: str) -> int:
    return conn.execute(sql).fetchone()[0]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--rows", type=int, required=True)
    p.add_argument("--edits", type=int, required=True)
    a = p.parse_args()
    out = {}

    dev_a = turso.sync.connect(os.path.join(a.dir, "a.db"), a.url)
    dev_a.execute(SCHEMA)
    dev_a.commit()
    dev_a.push()

    now = time.time_ns() // 1_000_000
    rows = [(f"todo-{i:08d}", f"todo {i}", 0, 0, now, now) for i in range(a.rows)]
    t = time.perf_counter_ns()
    dev_a.executemany("INSERT INTO todos VALUES (?, ?, ?, ?, ?, ?)", rows)
    dev_a.commit()
    out["create_ms"] = ms_since(t)
    t = time.perf_counter_ns()
    dev_a.push()
    out["push_ms"] = ms_since(t)

    t = time.perf_counter_ns()
    dev_b = turso.sync.connect(os.path.join(a.dir, "b.db"), a.url)
    out["pull_ms"] = ms_since(t)
    got = count(dev_b, "SELECT count(*) FROM todos")
    if got != a.rows:
        raise SystemExit(f"device B has {got} of {a.rows} rows after bootstrap")

    step = max(1, a.rows // a.edits)
    for k in range(a.edits):
        dev_a.execute("UPDATE todos SET title = ?, updated_at = ? WHERE id = ?",
                      (f"edited {k}", now + 1, f"todo-{k * step:08d}"))
        dev_a.commit()
    t = time.perf_counter_ns()
    dev_a.push()
    out["edit_push_ms"] = ms_since(t)
    t = time.perf_counter_ns()
    dev_b.pull()
    out["edit_pull_ms"] = ms_since(t)
    got = count(dev_b, "SELECT count(*) FROM todos WHERE title LIKE 'edited %'")
    if got != a.edits:
        raise SystemExit(f"device B sees {got} of {a.edits} edits")
    dev_a.close()
    dev_b.close()
    out["version"] = f"pyturso {version('pyturso')} on Python {platform.python_version()}"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
