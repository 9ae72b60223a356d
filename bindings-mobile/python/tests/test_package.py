"""The installed package as an editor and a type checker see it: ``__all__``
names exist and are documented, the package is marked typed (``py.typed``),
and an app's annotated code type-checks against it with mypy while a wrong
call does not (mypy comes from the suite's wheels: without it the test
fails, it is never skipped)."""

import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import erth_sync

# Names in __all__ that are values or type aliases, not documented objects.
PLAIN = {"KINDS", "URL_ENV", "TOKEN_ENV", "KEY_ENV", "Row", "Value", "Params", "Schema", "Statement"}


def test_every_exported_name_exists_and_is_documented():
    assert len(set(erth_sync.__all__)) == len(erth_sync.__all__)
    for name in erth_sync.__all__:
        obj = getattr(erth_sync, name)  # AttributeError: a stale __all__
        if name not in PLAIN:
            assert inspect.getdoc(obj), f"{name} has no docstring"
    for cls in (erth_sync.Database, erth_sync.BlockingDatabase, erth_sync.LiveQuery, erth_sync.Subscription):
        for name, member in vars(cls).items():
            if name.startswith("_"):
                continue
            target = member.__func__ if isinstance(member, classmethod) else member
            target = target.fget if isinstance(target, property) else target
            assert inspect.getdoc(target), f"{cls.__name__}.{name} has no docstring"
    # The blocking face has every method of the async one, as real methods an editor sees.
    # (`watch_iter` is an async iterator: it has no blocking form.)
    public = {n for n in vars(erth_sync.Database) if not n.startswith("_")} - {"watch_iter"}
    assert public <= set(vars(erth_sync.BlockingDatabase)), public - set(vars(erth_sync.BlockingDatabase))


def test_the_package_is_marked_typed():
    assert (Path(erth_sync.__file__).parent / "py.typed").is_file()


APP = '''
import asyncio
from typing import List
import erth_sync
from erth_sync import AutoSyncOptions, BlockingDatabase, Database, ErthError, Row, Todo


async def main() -> int:
    db = await Database.open("x.db", url=None, auto_sync=AutoSyncOptions(debounce_ms=100),
                             request_timeout_ms=1000, sync_timeout_ms=0)
    todo: Todo = await db.add_todo("t")
    rows: List[Row] = await db.query("SELECT 1 AS one", [])
    status = await db.status()
    pending: int = status.pending_changes
    try:
        await db.sync()
    except ErthError as e:
        kind: str = e.kind
    blocking = BlockingDatabase.open("y.db")
    todos: List[Todo] = blocking.list_active_todos()
    return len(rows) + pending + len(todo.title) + len(todos)
'''

WRONG = APP + '''

async def wrong(db: Database) -> None:
    await db.query(42)
    x: str = await db.delete_todo("id")
'''


def test_an_app_type_checks_against_the_package_and_a_wrong_call_does_not(tmp_path):
    assert importlib.util.find_spec("mypy") is not None, "mypy is missing from the suite's wheels"

    def mypy(source):
        path = tmp_path / "app.py"
        path.write_text(source)
        return subprocess.run(
            [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"), str(path)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )

    ok = mypy(APP)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong = mypy(WRONG)
    assert wrong.returncode == 1, wrong.stdout + wrong.stderr
    assert 'Argument 1 to "query" of "Database" has incompatible type "int"' in wrong.stdout, wrong.stdout
    assert 'Incompatible types in assignment (expression has type "bool", variable has type "str")' in wrong.stdout
