"""Light and dark themes follow the system unless the user pins one."""

from __future__ import annotations

from PySide6.QtGui import QPalette

from app import theme


def _window_lightness(app) -> int:
    return app.palette().color(QPalette.ColorRole.Window).lightness()


def test_system_theme_follows_the_system_and_a_pinned_one_stays(qapp, monkeypatch):
    try:
        monkeypatch.setattr(theme, "system_is_dark", lambda: True)
        assert theme.apply(qapp, "system") is True
        assert _window_lightness(qapp) < 100
        monkeypatch.setattr(theme, "system_is_dark", lambda: False)  # the OS switched to light
        theme._follow(qapp)  # what colorSchemeChanged runs
        assert _window_lightness(qapp) > 150
        # pinned dark: a system change to light does not undo it
        assert theme.apply(qapp, "dark") is True
        theme._follow(qapp)
        assert _window_lightness(qapp) < 100
        assert theme.apply(qapp, "light") is False and _window_lightness(qapp) > 150
    finally:
        qapp.setProperty("photosift_theme", "light")
        theme.apply(qapp, "light")
