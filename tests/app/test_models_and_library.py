"""The model list and the library panel against a real engine (downloading, importing and
switching models: test_model_manager.py)."""

from __future__ import annotations

from app.models_dialog import DEMO_MODEL, fmt_mb, registry_extras
from tests.app.conftest import ENGINE_TIMEOUT_MS, index_folder


def test_models_dialog_lists_models_and_marks_the_demo_active(qtbot, window):
    dlg = window.open_models()
    qtbot.waitUntil(lambda: bool(dlg.models), timeout=ENGINE_TIMEOUT_MS)
    keys = [m["key"] for m in dlg.models]
    assert DEMO_MODEL in keys and len(keys) >= 2
    row = keys.index(DEMO_MODEL)
    assert dlg.table.item(row, 4).text() == "active"
    assert dlg.table.item(row, 2).text() == "fast"  # speed class, from the registry data
    assert dlg.table.item(row, 1).text() == fmt_mb(dlg.models[row]["size_mb"]).strip()
    assert fmt_mb(7.42) == "7.4 MB" and fmt_mb(606) == "606 MB" and fmt_mb(1500) == "1.5 GB"
    dlg.table.selectRow(row)
    assert "coloured shapes" in dlg.about.text()
    assert not dlg.use_btn.isEnabled() and not dlg.download_btn.isEnabled()
    other = next(i for i, m in enumerate(dlg.models) if not m["here"])
    dlg.table.selectRow(other)
    assert dlg.download_btn.isEnabled()  # not here: it can be downloaded
    assert dlg.table.item(other, 4).text() == "not downloaded"


def test_pause_resume_remove_folder_and_failures(qtbot, window, photos):
    folder = photos["red"][0].parent
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    index_folder(qtbot, window, folder)
    lib = window.library
    qtbot.waitUntil(lambda: lib.fail_box.isVisibleTo(window) and lib.fail_tree.topLevelItemCount() == 1,
                    timeout=ENGINE_TIMEOUT_MS)  # fmt: skip
    assert lib.fail_tree.topLevelItem(0).text(0) == "broken.jpg"
    assert lib.fail_tree.topLevelItem(0).text(1)  # the reason

    lib.pause_btn.click()
    qtbot.waitUntil(lambda: lib.pause_btn.text() == "Resume", timeout=10_000)
    lib.pause_btn.click()
    qtbot.waitUntil(lambda: lib.pause_btn.text() == "Pause", timeout=10_000)

    assert lib.folder_list.count() == 1
    lib.remove_folder(str(folder))
    qtbot.waitUntil(lambda: window.status.get("folders") == [], timeout=ENGINE_TIMEOUT_MS)
    assert lib.folder_list.count() == 0
    assert "Welcome" in window.empty.title.text()


def test_registry_extras_reads_speed_class():
    ex = registry_extras()
    assert ex[DEMO_MODEL]["speed_class"] == "fast"
