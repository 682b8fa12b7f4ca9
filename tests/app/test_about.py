"""Help > About photosift: icon, name, version, the library folder; the window's icon."""

from __future__ import annotations

from app import __version__
from app.about import AboutDialog, app_icon


def test_app_icon_is_bundled_in_resources(qapp):
    icon = app_icon()
    assert not icon.isNull()
    assert max(s.width() for s in icon.availableSizes()) >= 256


def test_about_from_the_window_shows_version_and_library(window, data_dir, qtbot):
    action = window.about_action
    assert action in window.menuBar().actions()[0].menu().actions()
    action.trigger()
    dlg = window.about_dialog
    qtbot.waitExposed(dlg)
    text = dlg.text.text()
    assert "photosift" in text and f"Version {__version__}" in text
    # the engine's data dir (from its hello), i.e. where the library really is
    assert dlg.data_dir == data_dir and str(data_dir) in text
    assert "demo" in text.lower()  # the model in use
    assert not dlg.icon.pixmap().isNull()


def test_about_without_an_engine_still_says_where_the_library_is(qtbot, tmp_path):
    dlg = AboutDialog(tmp_path / "lib", hello=None)
    qtbot.addWidget(dlg)
    assert dlg.data_dir == tmp_path / "lib" and str(tmp_path / "lib") in dlg.text.text()
    assert "Model" not in dlg.text.text()
