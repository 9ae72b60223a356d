"""The example ``examples/db.py`` (the original design's data-access
functions on Erth Sync) behaves like the original: ``add_todo`` returns the
todo, ``get_active_todos`` lists live todos newest first,
``soft_delete_todo`` answers ``False`` for a missing or already deleted
todo; and two "devices" (two copies of the module, each with its own file)
converge through the server."""

import importlib.util
import sys
from datetime import datetime, timezone
from pathlib import Path

import erth_sync

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "db.py"


def device(name):
    """A fresh copy of the example module: one device with its own globals."""
    spec = importlib.util.spec_from_file_location(f"db_{name}", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def titles(todos, tag):
    return [t.title for t in todos if t.title.startswith(tag)]


def test_the_original_functions_on_two_devices(tmp_path, server, tag, monkeypatch):
    url, token = server
    monkeypatch.setenv(erth_sync.URL_ENV, url)
    if token:
        monkeypatch.setenv(erth_sync.TOKEN_ENV, token)
    else:
        monkeypatch.delenv(erth_sync.TOKEN_ENV, raising=False)

    monkeypatch.setenv("ERTH_DB_PATH", str(tmp_path / "laptop.db"))
    laptop = device("laptop")
    laptop.init_db()
    milk = laptop.add_todo(f"{tag} milk")
    eggs = laptop.add_todo(f"{tag} eggs")
    assert isinstance(milk, laptop.Todo)
    assert (milk.title, milk.is_completed, milk.is_deleted) == (f"{tag} milk", False, False)
    assert isinstance(milk.created_at, datetime) and milk.created_at.tzinfo == timezone.utc
    assert milk.created_at == milk.updated_at
    assert len(milk.id) == 36 and milk.id[14] == "7"  # UUIDv7, as the original's ids
    assert titles(laptop.get_active_todos(), tag) == [f"{tag} eggs", f"{tag} milk"]  # newest first

    assert laptop.soft_delete_todo(milk.id) is True
    assert laptop.soft_delete_todo(milk.id) is False  # already deleted
    assert laptop.soft_delete_todo("0190a0a0-0000-7000-8000-000000000000") is False  # missing
    assert laptop.soft_delete_todo("nope") is False  # not even an id
    assert titles(laptop.get_active_todos(), tag) == [f"{tag} eggs"]

    # A second device pulls the laptop's state, and its writes come back.
    monkeypatch.setenv("ERTH_DB_PATH", str(tmp_path / "phone.db"))
    phone = device("phone")
    phone.init_db()
    assert titles(phone.get_active_todos(), tag) == [f"{tag} eggs"]
    bread = phone.add_todo(f"{tag} bread")
    assert phone.soft_delete_todo(eggs.id) is True
    assert titles(laptop.get_active_todos(), tag) == [f"{tag} bread"]
    assert laptop.soft_delete_todo(eggs.id) is False  # deleted on the other device
    assert [t.id for t in laptop.get_active_todos() if t.title.startswith(tag)] == [bread.id]
    assert [(t.id, t.title) for t in phone.get_active_todos()] == [
        (t.id, t.title) for t in laptop.get_active_todos()
    ]


def test_without_a_url_everything_stays_local(tmp_path, tag, monkeypatch):
    monkeypatch.delenv(erth_sync.URL_ENV, raising=False)
    monkeypatch.delenv(erth_sync.TOKEN_ENV, raising=False)
    monkeypatch.setenv("ERTH_DB_PATH", str(tmp_path / "local.db"))
    local = device("local")
    local.init_db()
    first = local.add_todo(f"{tag} first")
    second = local.add_todo(f"{tag} second")
    assert [t.id for t in local.get_active_todos()] == [second.id, first.id]
    assert local.soft_delete_todo(first.id) is True
    assert [t.title for t in local.get_active_todos()] == [f"{tag} second"]
    assert local._database().status().pending_changes == 2
