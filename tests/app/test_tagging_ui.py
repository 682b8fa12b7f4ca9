"""Tagging in the window, against a real engine with the demo model: the vocabulary
editor, the tag browser and its counts, confirm/reject in the preview (kept across an
engine restart), the threshold slider's live preview, and import errors that name the line."""

from __future__ import annotations

import os

from PySide6.QtCore import Qt

from app.tags_panel import from_slider, to_slider
from tests.app.conftest import ENGINE_TIMEOUT_MS, index_folder, result_paths

COLOURS = ["red", "blue", "green", "yellow"]


def _names(win) -> list[str]:
    return [os.path.basename(p) for p in result_paths(win)]


def _make_colours(qtbot, win) -> None:
    """The colours vocabulary, made through the editor as a user would."""
    dlg = win.tags.open_editor()
    dlg.new_vocab("colours")
    qtbot.waitUntil(
        lambda: win.catalog.vocab("colours") is not None and not dlg.busy, timeout=ENGINE_TIMEOUT_MS
    )
    assert dlg.current == "colours" and dlg.table.rowCount() == 0
    for c in COLOURS:
        dlg.add_label(c)
    dlg.apply()
    qtbot.waitUntil(lambda: not dlg.busy and len(win.catalog.vocab("colours")["label_list"]) == 4,
                    timeout=ENGINE_TIMEOUT_MS)  # fmt: skip
    assert "Tagged 24 photos" in dlg.msg.text()
    dlg.close()


def _count(win, label: str) -> str:
    it = win.tags.item_for("colours", label)
    return it.text(1) if it is not None else ""


def _click_label(qtbot, win, label: str) -> None:
    win.side.setCurrentWidget(win.tags)
    it = win.tags.item_for("colours", label)
    rect = win.tags.tree.visualItemRect(it)
    with qtbot.waitSignal(win.resultsShown, timeout=ENGINE_TIMEOUT_MS):
        qtbot.mouseClick(win.tags.tree.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())


def test_vocabulary_from_the_editor_counts_and_browse_by_tag(qtbot, window, photos):
    index_folder(qtbot, window, photos["red"][0].parent)
    _make_colours(qtbot, window)
    # the tag browser shows the labels with their counts (6 photos of each colour)
    assert window.tags.stack.currentWidget() is window.tags.tree
    qtbot.waitUntil(
        lambda: [_count(window, c) for c in COLOURS] == ["6"] * 4, timeout=ENGINE_TIMEOUT_MS
    )
    # clicking "red" shows exactly the red photos, with nothing typed
    sent: list[dict] = []
    window.searchSent.connect(sent.append)
    _click_label(qtbot, window, "red")
    names = _names(window)
    assert len(names) == 6 and all(n.startswith("red-") for n in names), names
    # nothing typed: the engine browses the tag itself (no label prompt sent as the query)
    assert sent[-1]["text"] == "" and sent[-1]["filters"]["tags"] == [
        {"vocab": "colours", "label": "red"}
    ]
    scores = [h["score"] for h in window.model_.hits]
    assert scores == sorted(scores, reverse=True) and all(0 < s <= 1 for s in scores)
    assert window.tag_chip.isVisible() and "red" in window.tag_chip_label.text()
    assert window.filters()["tags"] == [{"vocab": "colours", "label": "red"}]
    # combined with a text query: red photos only, circles first
    window.search.setFocus()
    with qtbot.waitSignal(window.resultsShown, timeout=ENGINE_TIMEOUT_MS):
        qtbot.keyClicks(window.search, "a square")
    names = _names(window)
    assert all(n.startswith("red-") for n in names) and names[0].startswith("red-square"), names
    # and with another filter: no PNGs, so nothing, and the tag survives
    with qtbot.waitSignal(window.resultsShown, timeout=ENGINE_TIMEOUT_MS) as sig:
        window.type_filter.setCurrentIndex(window.type_filter.findText("PNG"))
    assert sig.args == [0]
    window.type_filter.setCurrentIndex(0)
    # the chip's ✕ (and "Show all photos") ends the tag filter
    window.search.clear()
    # from the keyboard: Ctrl+T goes to the tag browser, arrows choose a label, Enter shows its photos
    qtbot.keyClick(window, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)
    assert window.side.currentWidget() is window.tags
    window.tags.tree.setCurrentItem(window.tags.item_for("colours", "green"))
    qtbot.keyClick(window.tags.tree, Qt.Key.Key_Up)  # red, blue, green, yellow
    assert window.tags.current_ref() == ("colours", "blue")
    with qtbot.waitSignal(window.resultsShown, timeout=ENGINE_TIMEOUT_MS):
        qtbot.keyClick(window.tags.tree, Qt.Key.Key_Return)
    assert window.tag_filter == [{"vocab": "colours", "label": "blue"}]
    assert all(n.startswith("blue-") for n in _names(window))
    window.tags.clear_btn.click()
    assert window.tag_filter == [] and not window.tag_chip.isVisible()
    assert window.model_.rowCount() == 0

    # the editor refuses empty and duplicate labels with a message, and sends nothing
    dlg = window.tags.open_editor()
    dlg.add_label("Red")
    dlg.apply()
    assert "already in the list" in dlg.msg.text() and not dlg.busy
    dlg.remove_selected_labels()
    dlg.add_label("")
    dlg.apply()
    assert "needs a name" in dlg.msg.text()
    dlg.remove_selected_labels()
    # renaming a label (its answers stay) and giving it synonyms; the browser follows
    dlg.table.item(0, 0).setText("crimson")
    dlg.table.item(0, 1).setText("scarlet, ruby")
    dlg.apply()
    qtbot.waitUntil(lambda: window.catalog.label("colours", "crimson") is not None and not dlg.busy,
                    timeout=ENGINE_TIMEOUT_MS)  # fmt: skip
    assert window.catalog.label("colours", "crimson")["synonyms"] == ["scarlet", "ruby"]
    qtbot.waitUntil(
        lambda: (
            window.tags.item_for("colours", "crimson") is not None
            and window.tags.item_for("colours", "red") is None
        ),
        timeout=ENGINE_TIMEOUT_MS,
    )
    # "Tag photos automatically" off: only confirmed answers carry the labels (then on again)
    assert dlg.auto_box.isChecked() and window.catalog.vocab("colours")["auto"] is True
    dlg.auto_box.setChecked(False)
    assert dlg.pending_update() == {"name": "colours", "auto": False}
    dlg.apply()
    qtbot.waitUntil(lambda: window.catalog.vocab("colours")["auto"] is False and not dlg.busy,
                    timeout=ENGINE_TIMEOUT_MS)  # fmt: skip
    assert window.catalog.label("colours", "blue")["tagged"] == 0
    assert not dlg.auto_box.isChecked()
    dlg.auto_box.setChecked(True)
    dlg.apply()
    qtbot.waitUntil(lambda: window.catalog.vocab("colours")["auto"] is True and not dlg.busy,
                    timeout=ENGINE_TIMEOUT_MS)  # fmt: skip
    assert window.catalog.label("colours", "blue")["tagged"] > 0


def test_confirm_and_reject_in_the_preview_survive_an_engine_restart(qtbot, window, photos):
    index_folder(qtbot, window, photos["red"][0].parent)
    window.bridge.client.request("vocab_create", {"name": "colours", "labels": COLOURS})
    window.catalog.refresh()
    qtbot.waitUntil(lambda: _count(window, "red") == "6", timeout=ENGINE_TIMEOUT_MS)
    _click_label(qtbot, window, "red")
    window.grid.setCurrentIndex(window.model_.index(0))
    path = window.preview.path
    assert os.path.basename(path).startswith("red-")
    view = window.preview.tags_view
    qtbot.waitUntil(lambda: ("colours", "red") in view.rows, timeout=ENGINE_TIMEOUT_MS)
    assert view.rows[("colours", "red")]["state"].text() == "auto"
    assert float(view.rows[("colours", "red")]["score"].text()) > 0.1

    # reject "red" with its ✗, and add "blue" (a confirmation) from the vocabulary
    with qtbot.waitSignal(view.shown, timeout=ENGINE_TIMEOUT_MS):
        view.rows[("colours", "red")]["reject"].click()
    assert view.rows[("colours", "red")]["state"].text() == "rejected"
    assert view.select_label("colours", "blue")
    with qtbot.waitSignal(view.shown, timeout=ENGINE_TIMEOUT_MS):
        view.add_btn.click()
    assert view.rows[("colours", "blue")]["state"].text() == "confirmed"
    assert view.rows[("colours", "blue")]["confirm"].isChecked()
    # the browser follows: its counts of answers, from the engine
    qtbot.waitUntil(
        lambda: (
            (window.catalog.label("colours", "red") or {}).get("rejected") == 1
            and window.catalog.label("colours", "blue")["confirmed"] == 1
        ),
        timeout=ENGINE_TIMEOUT_MS,
    )
    assert "1 rejected" in window.tags.item_for("colours", "red").toolTip(0)

    # a new engine process reads the answers back from the library
    done: list[dict] = []
    window.bridge.event.connect(lambda ev: ev["event"] == "job_done" and done.append(ev))
    with qtbot.waitSignal(window.bridge.ready, timeout=ENGINE_TIMEOUT_MS):
        window.bridge.restart()
    # (the new engine's catch-up scan ends with a refresh of the grid: let it pass first, or it
    # could replace the grid under the clicks below)
    qtbot.waitUntil(
        lambda: bool(done) and not window._refresh.isActive(), timeout=ENGINE_TIMEOUT_MS
    )
    # browsing "blue" now shows this red photo too (confirmed), and the preview has both answers
    with qtbot.waitSignal(window.resultsShown, timeout=ENGINE_TIMEOUT_MS):
        window.set_tag_filter("colours", "blue")
    row = window.model_.row_of(path)
    assert row is not None, _names(window)
    window.grid.setCurrentIndex(window.model_.index(row))
    qtbot.waitUntil(lambda: ("colours", "blue") in view.rows, timeout=ENGINE_TIMEOUT_MS)
    assert view.rows[("colours", "red")]["state"].text() == "rejected"
    assert view.rows[("colours", "blue")]["state"].text() == "confirmed"
    # ✓ again on a confirmed tag forgets the answer
    with qtbot.waitSignal(view.shown, timeout=ENGINE_TIMEOUT_MS):
        view.rows[("colours", "blue")]["confirm"].click()
    assert ("colours", "blue") not in view.rows


def test_threshold_slider_previews_and_saves(qtbot, window, photos):
    index_folder(qtbot, window, photos["red"][0].parent)
    window.bridge.client.request("vocab_create", {"name": "colours", "labels": COLOURS})
    window.catalog.refresh()
    qtbot.waitUntil(lambda: _count(window, "red") == "6", timeout=ENGINE_TIMEOUT_MS)
    box = window.tags.threshold
    assert not box.isVisibleTo(window)
    window.side.setCurrentWidget(window.tags)
    window.tags.tree.setCurrentItem(window.tags.item_for("colours", "red"))
    assert box.isVisibleTo(window) and "red" in box.title()
    start = box.slider.value()
    assert abs(from_slider(start) - window.catalog.label("colours", "red")["threshold"]) < 0.01
    calls: list[str] = []  # the preview carries its photos: no tag_photos round trips
    real_call = window.bridge.call
    window.bridge.call = lambda method, *a, **kw: (
        calls.append(method),
        real_call(method, *a, **kw),
    )[1]

    # dragging down: photos would enter, and the grid shows them at once; nothing is saved
    box.slider.setSliderDown(True)
    with qtbot.waitSignal(window.resultsShown, timeout=ENGINE_TIMEOUT_MS):
        box.slider.setValue(to_slider(0.0005))
    entered = box.last_preview["entered"]
    assert entered and box.last_preview["left"] == []
    assert "would enter" in box.change_label.text()
    assert window.model_.rowCount() == len(entered)
    assert {h["image_id"] for h in window.model_.hits} == set(entered)
    assert "tag_photos" not in calls and "tag_threshold" in calls
    assert not any(n.startswith("red-") for n in _names(window)), "only photos not tagged red yet"
    assert _count(window, "red") == "6"
    # further down: more would enter (the preview follows the slider)
    with qtbot.waitSignal(window.resultsShown, timeout=ENGINE_TIMEOUT_MS):
        box.slider.setValue(to_slider(0.0002))
    assert len(box.last_preview["entered"]) >= len(entered)
    n_new = box.last_preview["tagged"]

    # letting go saves it: the count changes
    with qtbot.waitSignal(box.saved, timeout=ENGINE_TIMEOUT_MS):
        box.slider.setSliderDown(False)
        box.slider.sliderReleased.emit()
    qtbot.waitUntil(lambda: _count(window, "red") == str(n_new), timeout=ENGINE_TIMEOUT_MS)
    assert window.catalog.label("colours", "red")["threshold_source"] == "user"
    assert box.reset_btn.isEnabled()
    # raising it again would make photos leave
    with qtbot.waitSignal(window.resultsShown, timeout=ENGINE_TIMEOUT_MS):
        box.slider.setValue(to_slider(0.2))
    assert box.last_preview["left"] and "would leave" in box.change_label.text()
    left = set(box.last_preview["left"])
    qtbot.waitUntil(
        lambda: {h["image_id"] for h in window.model_.hits} == left, timeout=ENGINE_TIMEOUT_MS
    )
    # reset: back to the default threshold and six red photos
    with qtbot.waitSignal(box.saved, timeout=ENGINE_TIMEOUT_MS):
        box.reset_btn.click()
    qtbot.waitUntil(lambda: _count(window, "red") == "6", timeout=ENGINE_TIMEOUT_MS)
    assert window.catalog.label("colours", "red")["threshold_source"] != "user"


def test_slider_scale_round_trips():
    for p in (0.0005, 0.01, 0.1, 0.5, 0.9):
        assert abs(from_slider(to_slider(p)) - p) / p < 0.05
    assert 0 < from_slider(0) < from_slider(500) < from_slider(1000) < 1


def test_empty_state_starter_import_errors_and_export(qtbot, window, tmp_path):
    panel = window.tags
    qtbot.waitUntil(lambda: window.catalog.loaded, timeout=ENGINE_TIMEOUT_MS)
    assert panel.stack.currentWidget() is panel.empty
    assert "No vocabularies yet" in panel.empty_text.text()
    assert panel.starter_btn.text() == "Start from “shapes-world”"
    panel.starter_btn.click()
    qtbot.waitUntil(
        lambda: window.catalog.vocab("shapes-world") is not None, timeout=ENGINE_TIMEOUT_MS
    )
    assert (
        panel.stack.currentWidget() is panel.tree
        and panel.item_for("shapes-world", "red") is not None
    )

    dlg = panel.open_editor()
    bad = tmp_path / "colours.csv"
    bad.write_text("name,synonyms,threshold\nred,crimson,0.2\nblue,,lots\n", encoding="utf-8")
    dlg.import_file(str(bad))
    qtbot.waitUntil(lambda: not dlg.busy, timeout=ENGINE_TIMEOUT_MS)
    assert "line 3" in dlg.msg.text() and "lots" in dlg.msg.text(), dlg.msg.text()
    assert window.catalog.vocab("colours") is None
    dup = tmp_path / "pets.txt"
    dup.write_text("# my pets\nMiso\nTofu\n\nmiso\n", encoding="utf-8")
    dlg.import_file(str(dup))
    qtbot.waitUntil(lambda: not dlg.busy, timeout=ENGINE_TIMEOUT_MS)
    assert "line 5" in dlg.msg.text() and "line 2" in dlg.msg.text(), dlg.msg.text()

    good = tmp_path / "pets2.txt"
    good.write_text("Miso\nTofu\n", encoding="utf-8")
    dlg.import_file(str(good))
    qtbot.waitUntil(
        lambda: window.catalog.vocab("pets2") is not None and not dlg.busy,
        timeout=ENGINE_TIMEOUT_MS,
    )
    assert dlg.current == "pets2" and dlg.table.rowCount() == 2
    out = tmp_path / "out.csv"
    dlg.export_file(str(out))
    qtbot.waitUntil(lambda: not dlg.busy, timeout=ENGINE_TIMEOUT_MS)
    assert "Miso" in out.read_text(encoding="utf-8") and "Saved 2 labels" in dlg.msg.text()
    dlg.rename_vocab("pets")
    qtbot.waitUntil(lambda: window.catalog.vocab("pets") is not None and window.catalog.vocab("pets2") is None,
                    timeout=ENGINE_TIMEOUT_MS)  # fmt: skip
    dlg.delete_vocab(confirm=False)
    qtbot.waitUntil(lambda: window.catalog.vocab("pets") is None, timeout=ENGINE_TIMEOUT_MS)
    assert [v["name"] for v in window.catalog.vocabs] == ["shapes-world"]


def test_editor_busy_bar_follows_retag_progress(qtbot, window, monkeypatch):
    """A long re-tag sends progress events for its request: the busy bar becomes determinate."""
    from concurrent.futures import Future

    qtbot.waitUntil(lambda: window.catalog.loaded, timeout=ENGINE_TIMEOUT_MS)
    dlg = window.tags.open_editor()
    pending = Future()  # an engine still re-tagging: no reply yet
    pending.request_id = 4242
    monkeypatch.setattr(window.bridge, "call", lambda *a, **kw: pending)
    dlg.new_vocab("big")
    assert dlg.busy and dlg.bar.maximum() == 0  # busy, amount unknown
    ev = {
        "event": "progress",
        "request": 4242,
        "data": {"done": 30, "total": 120, "unit": "photos"},
    }
    window.bridge.event.emit(ev)
    assert dlg.bar.maximum() == 120 and dlg.bar.value() == 30 and "25%" in dlg.msg.text()
    window.bridge.event.emit(dict(ev, request=7, data={"done": 99, "total": 100, "unit": "photos"}))
    window.bridge.event.emit(dict(ev, job="scan-1", request=None))
    assert dlg.bar.value() == 30  # another request's (or a job's) progress is not ours
