"""The window against a real engine: index a folder, search as you type, preview, keys."""

from __future__ import annotations

import os

from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent

from app import desktop
from tests.app.conftest import ENGINE_TIMEOUT_MS, index_folder, result_paths


def _search(qtbot, win, text: str) -> None:
    win.search.setFocus()
    with qtbot.waitSignal(win.resultsShown, timeout=ENGINE_TIMEOUT_MS):
        qtbot.keyClicks(win.search, text)


def test_type_query_finds_the_red_photos(qtbot, window, photos):
    index_folder(qtbot, window, photos["red"][0].parent)
    assert window.status["files"] == 24
    _search(qtbot, window, "a red object")
    top = [os.path.basename(p) for p in result_paths(window)[:6]]
    reds = [n for n in top if n.startswith("red-")]
    assert len(reds) >= 5, f"first results: {top}"
    # the grid shows them, and the first tile gets its thumbnail from the engine
    assert window.stack.currentWidget() is window.grid
    first = window.model_.hits[0]["path"]
    qtbot.waitUntil(lambda: window.thumbs._mem.get(first) is not None, timeout=10_000)
    tip = window.model_.index(0).data(Qt.ItemDataRole.ToolTipRole)
    assert "score" in tip and first in tip


def test_search_is_debounced(qtbot, window, photos):
    index_folder(qtbot, window, photos["red"][0].parent)
    sent = []
    window.searchSent.connect(sent.append)
    _search(qtbot, window, "a blue square")
    assert [p["text"] for p in sent] == ["a blue square"], "one search per pause in typing"


def test_preview_more_like_this_and_keyboard(qtbot, window, photos, monkeypatch):
    index_folder(qtbot, window, photos["red"][0].parent)
    _search(qtbot, window, "a green object")
    # Down moves from the search box into the grid; the preview follows the selection
    qtbot.keyClick(window.search, Qt.Key.Key_Down)
    assert window.grid.hasFocus() and window.grid.currentIndex().row() == 0
    first = window.model_.hits[0]["path"]
    assert window.preview.path == first
    qtbot.waitUntil(window.preview.has_image, timeout=10_000)
    assert window.preview.fields["folder"].text() == os.path.dirname(first)
    qtbot.keyClick(window.grid, Qt.Key.Key_Right)
    assert window.grid.currentIndex().row() == 1
    # Enter opens the photo
    opened = []
    monkeypatch.setattr(desktop, "open_file", opened.append)
    qtbot.keyClick(window.grid, Qt.Key.Key_Return)
    assert opened == [window.model_.hits[1]["path"]]
    # more like this: a search by example
    with qtbot.waitSignal(window.resultsShown, timeout=ENGINE_TIMEOUT_MS):
        window.preview.similar_btn.click()
    assert window.example == window.preview.path or window.example is not None
    assert window.chip.isVisible()
    assert os.path.basename(result_paths(window)[0]).startswith("green-")
    # typing in the grid goes to the search box; Esc clears everything
    window.grid.setFocus()
    qtbot.keyClick(window.grid, "x")
    assert window.search.hasFocus() and window.search.text().endswith("x")
    qtbot.keyClick(window.search, Qt.Key.Key_Escape)
    assert window.search.text() == "" and window.example is None and not window.chip.isVisible()
    assert window.model_.rowCount() == 0 and window.stack.currentWidget() is window.empty


def test_drop_a_photo_searches_by_example(qtbot, window, photos, tmp_path):
    index_folder(qtbot, window, photos["red"][0].parent)
    outside = photos["yellow"][0]  # any photo file, dropped from a file manager
    md = QMimeData()
    md.setUrls([QUrl.fromLocalFile(str(outside))])
    ev = QDropEvent(QPoint(50, 50), Qt.DropAction.CopyAction, md, Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)  # fmt: skip
    with qtbot.waitSignal(window.resultsShown, timeout=ENGINE_TIMEOUT_MS):
        window.dropEvent(ev)
    assert window.example == str(outside)
    top = [os.path.basename(p) for p in result_paths(window)[:4]]
    assert sum(n.startswith("yellow-") for n in top) >= 3, top
    # the grid drags photos out as file URLs (to the window itself, or a file manager)
    md = window.model_.mimeData([window.model_.index(0)])
    assert md.urls()[0].toLocalFile() == window.model_.hits[0]["path"]


def test_filters_and_negative_terms(qtbot, window, photos):
    index_folder(qtbot, window, photos["red"][0].parent)
    _search(qtbot, window, "a circle -red")
    top = [os.path.basename(p) for p in result_paths(window)[:6]]
    assert not any(n.startswith("red-") for n in top), top
    # the type filter goes to the engine; no PNGs in the folder: no results, and an empty state saying so
    with qtbot.waitSignal(window.resultsShown, timeout=ENGINE_TIMEOUT_MS) as sig:
        window.type_filter.setCurrentIndex(window.type_filter.findText("PNG"))
    assert sig.args == [0]
    assert window.stack.currentWidget() is window.empty
    assert "No matches" in window.empty.title.text()
    # a folder filter
    window.type_filter.setCurrentIndex(0)
    qtbot.waitUntil(lambda: window.folder_filter.count() == 2)
    with qtbot.waitSignal(window.resultsShown, timeout=ENGINE_TIMEOUT_MS):
        window.folder_filter.setCurrentIndex(1)
    assert window.filters() == {"folders": [str(photos["red"][0].parent)]}
    assert window.model_.rowCount() > 0


def test_first_run_empty_state_is_honest_about_the_demo_model(qtbot, window):
    qtbot.waitUntil(lambda: window.status != {}, timeout=ENGINE_TIMEOUT_MS)
    assert window.stack.currentWidget() is window.empty
    assert "Welcome" in window.empty.title.text()
    assert (
        "demo model" in window.empty.hint.text() and "not real photos" in window.empty.hint.text()
    )
    assert window.banner.isVisible() and window.banner.kind == "demo"
