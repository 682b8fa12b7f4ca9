"""The frozen entry point dispatches to the right role, without freezing anything."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def entry():
    spec = importlib.util.spec_from_file_location(
        "photosift_entry", ROOT / "packaging" / "photosift_entry.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def calls(monkeypatch):
    """Replace the three mains with recorders: (role, argv)."""
    import app.__main__
    import engine.cli
    import engine.service.server

    seen: list[tuple[str, list[str]]] = []
    for role, mod in (("engine", engine.service.server), ("cli", engine.cli), ("app", app.__main__)):
        monkeypatch.setattr(
            mod, "main", lambda argv=None, role=role: seen.append((role, argv)) or 0
        )
    return seen


def test_engine_mode_is_what_the_client_spawns_when_frozen(entry, calls, monkeypatch):
    from engine.service.client import default_command

    monkeypatch.setattr(sys, "frozen", True, raising=False)
    cmd = default_command()  # [sys.executable, "--engine"]
    assert entry.main([*cmd[1:], "--data-dir", "/lib", "--model", "m"]) == 0
    assert calls == [("engine", ["--data-dir", "/lib", "--model", "m"])]


def test_cli_mode(entry, calls):
    assert entry.main(["cli", "index", "photos", "--json"]) == 0
    assert calls == [("cli", ["index", "photos", "--json"])]


def test_console_twin_is_the_cli(entry, calls, monkeypatch):
    monkeypatch.setattr(
        sys, "executable", str(Path("C:/Program Files/photosift/photosift-cli.exe"))
    )
    entry.main(["search", "a red kite"])
    assert calls == [("cli", ["search", "a red kite"])]


def test_app_mode_by_default(entry, calls):
    entry.main(["--data-dir", "/lib", "--theme", "dark"])
    entry.main([])
    assert calls == [("app", ["--data-dir", "/lib", "--theme", "dark"]), ("app", [])]


def test_version(entry, calls, capsys):
    from app import __version__

    assert entry.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"photosift {__version__}"
    assert calls == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="LD_LIBRARY_PATH is Linux's")
def test_window_children_get_the_users_library_path_back(entry, calls, monkeypatch):
    """PyInstaller points LD_LIBRARY_PATH at the bundle; xdg-open & co. must not inherit it."""
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/photosift/_internal:/usr/local/lib")
    monkeypatch.setenv("LD_LIBRARY_PATH_ORIG", "/usr/local/lib")
    entry.main([])
    import os

    assert os.environ["LD_LIBRARY_PATH"] == "/usr/local/lib"
    assert "LD_LIBRARY_PATH_ORIG" not in os.environ
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/photosift/_internal")
    entry.main([])
    assert "LD_LIBRARY_PATH" not in os.environ  # the user had none


def test_engine_mode_keeps_the_bundle_library_path(entry, calls, monkeypatch):
    monkeypatch.setenv("LD_LIBRARY_PATH", "/opt/photosift/_internal")
    monkeypatch.setenv("LD_LIBRARY_PATH_ORIG", "")
    entry.main(["--engine"])
    import os

    assert os.environ["LD_LIBRARY_PATH"] == "/opt/photosift/_internal"


def test_frozen_resources_dir_is_inside_the_bundle(monkeypatch, tmp_path):
    """The spec puts resources/ at the bundle root (sys._MEIPASS); the engine looks there."""
    from engine.models.registry import resources_dir

    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert resources_dir() == tmp_path / "resources"


def test_train_selftest_role_is_dispatched(entry, calls, capsys):
    """`photosift selftest-train` (the training bundle's check) is its own role, not the app."""
    assert entry.main(["selftest-train"]) == 2  # usage: it needs a work folder
    assert "selftest-train WORKDIR" in capsys.readouterr().err
    assert calls == []


def test_training_child_is_the_bundle_itself_when_frozen(entry, monkeypatch):
    """engine.finetune.job starts its child with `-m` from source; a frozen bundle has no `-m`, so
    the child is the executable in its training role, and the entry point dispatches it."""
    import training.finetune.job
    from engine.finetune.job import child_command

    assert child_command()[1:] == ["-m", "training.finetune.job"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    cmd = child_command()
    assert cmd[0] == sys.executable and len(cmd) == 2
    seen = []
    monkeypatch.setattr(training.finetune.job, "main", lambda argv=None: seen.append(argv) or 0)
    assert entry.main([*cmd[1:], "--data-dir", "/lib", "--out", "/run"]) == 0
    assert seen == [["--data-dir", "/lib", "--out", "/run"]]


def test_conversion_child_is_the_bundle_itself_when_frozen(entry, monkeypatch):
    """engine.models.convert converts downloaded weights in a child, `-m training.export.convert`
    from source; frozen, the child is the executable in its conversion role."""
    import training.export.convert
    from engine import child
    from engine.models.convert import CHILD_MODULE, FROZEN_ROLE

    assert child.child_command(CHILD_MODULE, FROZEN_ROLE)[1:] == ["-m", "training.export.convert"]
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    cmd = child.child_command(CHILD_MODULE, FROZEN_ROLE)
    assert cmd[0] == sys.executable and len(cmd) == 2
    seen = []
    monkeypatch.setattr(training.export.convert, "main", lambda argv=None: seen.append(argv) or 0)
    assert entry.main([*cmd[1:], "open_clip", "--out", "/m"]) == 0
    assert seen == [["open_clip", "--out", "/m"]]
