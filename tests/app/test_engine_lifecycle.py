"""The engine as a separate process: a crash is reported, the engine is restarted, nothing
indexed is lost; the folder watcher's changes reach the grid."""

from __future__ import annotations

import os
import shutil
import signal

from app.sampledata import single_shape
from tests.app.conftest import ENGINE_TIMEOUT_MS, index_folder, result_paths


def _search(qtbot, win, text):
    with qtbot.waitSignal(win.resultsShown, timeout=ENGINE_TIMEOUT_MS):
        win.search.setText(text)


def test_engine_crash_is_reported_and_restarted_without_losing_work(qtbot, window, photos):
    index_folder(qtbot, window, photos["red"][0].parent)
    _search(qtbot, window, "a red object")
    before = result_paths(window)
    old_pid = window.bridge.pid
    died = []
    window.bridge.died.connect(died.append)

    os.kill(old_pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: bool(died), timeout=10_000)
    assert window.banner.isVisible() and window.banner.kind == "died"
    assert "stopped unexpectedly" in window.banner.text.text()
    assert window.engine_label.text() == "Engine: restarting…"

    # auto-restart: a new engine, the same library; the search is sent again on its own
    with qtbot.waitSignal(window.resultsShown, timeout=ENGINE_TIMEOUT_MS):
        qtbot.waitUntil(
            lambda: window.bridge.is_ready and window.bridge.pid != old_pid,
            timeout=ENGINE_TIMEOUT_MS,
        )
    assert window.banner.kind == "restarted"
    assert result_paths(window) == before
    qtbot.waitUntil(lambda: window.status.get("files") == 24, timeout=ENGINE_TIMEOUT_MS)
    assert window.status["vectors"]["photosift-demo"] == 24  # nothing had to be embedded again


def test_calls_made_while_the_engine_is_down_do_not_freeze_or_crash(qtbot, window, photos):
    index_folder(qtbot, window, photos["red"][0].parent)
    window.bridge.client.auto_restart = False
    died = []
    window.bridge.died.connect(died.append)
    os.kill(window.bridge.pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: bool(died), timeout=10_000)
    window.search.setText("a blue object")
    window.run_search()  # no engine: remembered, not sent
    assert window.stack.currentWidget() is window.empty
    # "Restart now" in the banner brings it back, and the remembered search runs
    with qtbot.waitSignal(window.resultsShown, timeout=ENGINE_TIMEOUT_MS):
        window.banner.action.click()
    assert window.model_.rowCount() > 0


def test_folder_watching_updates_the_grid(qtbot, window, photos):
    folder = photos["red"][0].parent
    index_folder(qtbot, window, folder)
    _search(qtbot, window, "a red object")
    assert len(window.model_.hits) == 24

    new = single_shape(folder / "new-red.jpg", "red", "square", seed=999)
    qtbot.waitUntil(lambda: str(new) in result_paths(window), timeout=ENGINE_TIMEOUT_MS)
    # the window's status is refreshed on its own request, which may come after the new search
    qtbot.waitUntil(lambda: window.status.get("files") == 25, timeout=ENGINE_TIMEOUT_MS)

    moved = folder / "sub" / "moved-red.jpg"
    moved.parent.mkdir()
    shutil.move(new, moved)
    qtbot.waitUntil(lambda: str(moved) in result_paths(window) and str(new) not in result_paths(window),
                    timeout=ENGINE_TIMEOUT_MS)  # fmt: skip

    moved.unlink()
    qtbot.waitUntil(lambda: str(moved) not in result_paths(window), timeout=ENGINE_TIMEOUT_MS)
    qtbot.waitUntil(lambda: window.status.get("files") == 24, timeout=ENGINE_TIMEOUT_MS)
