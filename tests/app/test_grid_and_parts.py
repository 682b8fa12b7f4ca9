"""The window's parts without an engine: the virtualised grid, progress text, settings,
and the import rule that keeps the GUI process light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QImage

from app.engine_bridge import EngineBridge
from app.grid import ResultsModel, ResultsView
from app.library_panel import fmt_eta, progress_text
from app.main_window import MainWindow
from app.screenshot import visible_paths
from app.settings import AppSettings
from app.thumbs import ThumbnailCache

ROOT = Path(__file__).resolve().parents[2]


class FakeBridge(QObject):
    """Answers `thumbnail` with one real JPEG, after an event-loop turn, like the engine."""

    def __init__(self, jpeg: Path):
        super().__init__()
        self.jpeg, self.is_ready, self.asked = str(jpeg), True, []

    def call(self, method, params=None, on_result=None, on_error=None, context=None):
        self.asked.append((method, params))
        QTimer.singleShot(1, lambda: on_result({"path": self.jpeg, "width": 64, "height": 48}))


def _hits(n: int) -> list[dict]:
    return [dict(image_id=i, score=1 - i / n, path=f"/photos/p{i:05d}.jpg", online=True, metadata={})
            for i in range(n)]  # fmt: skip


@pytest.fixture
def jpeg(tmp_path) -> Path:
    img = QImage(64, 48, QImage.Format.Format_RGB32)
    img.fill(0xCC2222)
    p = tmp_path / "t.jpg"
    assert img.save(str(p))
    return p


def test_grid_with_thousands_of_results_asks_only_for_visible_thumbnails(qtbot, jpeg):
    bridge = FakeBridge(jpeg)
    thumbs = ThumbnailCache(bridge, size=160)
    model = ResultsModel(thumbs)
    view = ResultsView(model, 160)
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    # No wall-clock limit here (the machines are shared): the virtualised grid is proven by
    # what it asks for. Smoothness is measured by `python -m app.bench`.
    model.set_hits(_hits(5000))
    qtbot.waitExposed(view)
    qtbot.wait(1)

    class W:  # what visible_paths needs
        grid, model_ = view, model

    on_screen = visible_paths(W)
    assert 5 <= len(on_screen) <= 40
    qtbot.waitUntil(lambda: all(thumbs._mem.get(p) is not None for p in on_screen), timeout=5000)
    assert thumbs.requests <= len(on_screen) + 10, (
        "thumbnails asked for items that are not on screen"
    )
    # scroll to the end: those load now, and the middle of the list is never asked for
    view.scrollToBottom()
    qtbot.waitUntil(lambda: thumbs._mem.get("/photos/p04999.jpg") is not None, timeout=5000)
    asked = {p["path"] for m, p in bridge.asked}
    assert "/photos/p02500.jpg" not in asked
    assert thumbs.requests < 100


def test_duplicate_hits_show_once():
    model = ResultsModel(ThumbnailCache(FakeBridge(Path("x"))))
    h = _hits(3)
    model.set_hits([h[0], h[1], dict(h[0], path="/photos/copy.jpg"), h[2]])
    assert [x["image_id"] for x in model.hits] == [0, 1, 2]


def test_progress_text():
    p = dict(done=120, total=1000, unit="files", rate=35.2, eta_s=25, failed=2, paused=False)
    assert (
        progress_text(p)
        == "120 / 1,000 photos · 35.2 per second · about 25 s left · 2 could not be read"
    )
    assert "paused" in progress_text(dict(p, paused=True))
    assert fmt_eta(3725) == "1 h 02 min" and fmt_eta(None) == "—"


def test_progress_events_drive_the_panel(qtbot, tmp_path):
    bridge = EngineBridge(tmp_path / "data")  # never started: events are fed by hand
    win = MainWindow(bridge, AppSettings.load(tmp_path / "data"))
    qtbot.addWidget(win)
    win.show()
    lib = win.library
    win._on_event({"event": "job_started", "job": "j1", "data": {"kind": "scan", "job": "j1"}})
    assert lib.bar.isVisible()
    win._on_event({"event": "progress", "job": "j1", "data": dict(done=50, total=200, unit="files", rate=10.0,
                                                                 eta_s=15.0, failed=0, paused=False)})  # fmt: skip
    assert lib.bar.value() == 50 and lib.bar.maximum() == 200
    assert "50 / 200 photos" in lib.state_label.text() and "15 s left" in lib.state_label.text()
    win._on_event({"event": "pause_state", "data": {"paused": True}})
    assert lib.pause_btn.text() == "Resume"
    win._on_event(
        {
            "event": "job_done",
            "job": "j1",
            "data": {"kind": "scan", "cancelled": False, "embedded": 200},
        }
    )
    assert not lib.bar.isVisible() and "Up to date (200 new)" in lib.state_label.text()


def test_window_restores_size_layout_query_and_folder(qtbot, tmp_path):
    data = tmp_path / "data"
    bridge = EngineBridge(data)
    win = MainWindow(bridge, AppSettings.load(data))
    qtbot.addWidget(win)
    win.resize(780, 560)  # within the offscreen platform's 800x600 screen
    win.show()
    size = win.size()
    win.splitter.setSizes([300, 400, 300])
    win.search.setText("a red star")
    win.settings.last_folders.append("/photos/holiday")
    win.close()  # saves
    assert (data / "app.json").is_file()

    s = AppSettings.load(data)
    assert s.last_query == "a red star" and s.last_folders == ["/photos/holiday"]
    win2 = MainWindow(EngineBridge(data), s)
    qtbot.addWidget(win2)
    win2.show()
    assert win2.size() == size and size.width() != 1280
    assert win2.splitter.sizes()[0] == 300
    assert (
        win2.search.text() == "a red star" and win2._pending_search
    )  # searched once the engine is up


def test_corrupt_settings_give_defaults(tmp_path):
    (tmp_path / "app.json").write_text("{not json", encoding="utf-8")
    assert AppSettings.load(tmp_path).last_query == ""
    (tmp_path / "app.json").write_text('{"thumb_size": "big", "last_query": "x"}', encoding="utf-8")
    s = AppSettings.load(tmp_path)
    assert s.thumb_size == 160 and s.last_query == "x"


def test_gui_process_imports_nothing_heavy():
    """The window's modules pull in no inference stack, numpy or Pillow: a fast cold start."""
    code = ("import sys, app.main_window, app.__main__; "
            "bad = sorted(m for m in ('numpy', 'PIL', 'onnxruntime', 'torch', 'hnswlib', 'engine.library', "
            "'engine.service.server') if m in sys.modules); print(bad)")  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
