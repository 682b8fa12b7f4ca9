"""GUI tests: a real window, offscreen, against a real engine process with the demo model."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before pytest-qt creates the QApplication

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from app.engine_bridge import EngineBridge  # noqa: E402
from app.main_window import MainWindow  # noqa: E402
from app.sampledata import colour_folder  # noqa: E402
from app.settings import AppSettings  # noqa: E402

ENGINE_TIMEOUT_MS = 60_000  # a cold engine on a busy 2-core machine


@pytest.fixture
def photos(tmp_path) -> dict[str, list[Path]]:
    """24 single-shape photos: 6 each of red, blue, green, yellow."""
    return colour_folder(tmp_path / "photos")


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def make_window(qtbot, data_dir):
    """Builds windows (each with its own engine) and shuts every engine down afterwards."""
    made = []

    def make(start: bool = True, settings: AppSettings | None = None) -> MainWindow:
        bridge = EngineBridge(data_dir, extra_args=["--watch-quiet", "0.2", "--watch-grace", "0.5"])
        win = MainWindow(bridge, settings or AppSettings.load(data_dir))
        qtbot.addWidget(win)
        made.append(win)
        win.show()
        if start:
            with qtbot.waitSignal(bridge.ready, timeout=ENGINE_TIMEOUT_MS):
                win.start_engine()
        return win

    yield make
    for w in made:
        w.bridge.stop()


@pytest.fixture
def window(make_window) -> MainWindow:
    return make_window()


def index_folder(qtbot, win: MainWindow, folder: Path, timeout: int = ENGINE_TIMEOUT_MS) -> None:
    """Add a folder through the library panel and wait until its scan job is done."""
    added: list[dict] = []
    done: list[str] = []
    win.bridge.event.connect(lambda ev: ev["event"] == "job_done" and done.append(ev.get("job")))
    win.library.add_folder(str(folder), on_done=added.append)
    qtbot.waitUntil(lambda: bool(added), timeout=timeout)
    job = added[0]["job"]
    qtbot.waitUntil(lambda: job in done, timeout=timeout)
    # and the window has taken in a status asked for after the job ended (it refreshes on job_done)
    fresh: list[dict] = []
    win.statusShown.connect(fresh.append)
    qtbot.waitUntil(lambda: any(not st["jobs"] for st in fresh), timeout=timeout)


def result_paths(win: MainWindow) -> list[str]:
    return [h["path"] for h in win.model_.hits]
