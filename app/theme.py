"""Light and dark themes that follow the system.

Fusion everywhere (it honours palettes the same way on every platform), a dark palette
when the system asks for dark (Qt 6.5+ ``QStyleHints.colorScheme``), and a small style
sheet for the few widgets that are ours (banner, empty states, search box). Following
the system means re-applying when ``colorSchemeChanged`` fires.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = QColor(64, 132, 230)


def system_is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def dark_palette() -> QPalette:
    p = QPalette()
    base, window, text = QColor(30, 31, 34), QColor(40, 42, 46), QColor(226, 228, 232)
    roles = {
        QPalette.ColorRole.Window: window,
        QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base,
        QPalette.ColorRole.AlternateBase: QColor(46, 48, 52),
        QPalette.ColorRole.ToolTipBase: QColor(52, 54, 58),
        QPalette.ColorRole.ToolTipText: text,
        QPalette.ColorRole.PlaceholderText: QColor(140, 144, 150),
        QPalette.ColorRole.Text: text,
        QPalette.ColorRole.Button: QColor(52, 54, 58),
        QPalette.ColorRole.ButtonText: text,
        QPalette.ColorRole.BrightText: QColor(255, 90, 90),
        QPalette.ColorRole.Light: QColor(70, 72, 76),
        QPalette.ColorRole.Midlight: QColor(60, 62, 66),
        QPalette.ColorRole.Mid: QColor(90, 92, 96),
        QPalette.ColorRole.Dark: QColor(20, 21, 23),
        QPalette.ColorRole.Shadow: QColor(0, 0, 0),
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.Link: QColor(110, 170, 255),
    }
    for role, c in roles.items():
        p.setColor(role, c)
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.ButtonText,
    ):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(120, 122, 126))
    return p


def light_palette() -> QPalette:
    from PySide6.QtWidgets import QStyleFactory

    p = QStyleFactory.create("Fusion").standardPalette()
    p.setColor(QPalette.ColorRole.Highlight, ACCENT)
    p.setColor(QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
    p.setColor(QPalette.ColorRole.Window, QColor(242, 243, 245))
    p.setColor(QPalette.ColorRole.Base, QColor(255, 255, 255))
    return p


def style_sheet(dark: bool) -> str:
    banner_bg = "#3a3322" if dark else "#fff4d6"
    banner_fg = "#f0dca8" if dark else "#5a4500"
    banner_border = "#6b5a2a" if dark else "#e8cf85"
    error_bg = "#4a2626" if dark else "#fde2e1"
    error_fg = "#ffd0cc" if dark else "#7a1b14"
    hint = "#9ba0a8" if dark else "#6b7078"
    chip_bg = "#2f4466" if dark else "#dce8fb"
    return f"""
    QFrame#banner {{ background: {banner_bg}; color: {banner_fg}; border: 1px solid {banner_border};
                     border-radius: 6px; }}
    QFrame#banner[level="error"] {{ background: {error_bg}; color: {error_fg}; border-color: {error_fg}; }}
    QFrame#banner QLabel {{ color: {banner_fg}; background: transparent; border: none; }}
    QFrame#banner[level="error"] QLabel {{ color: {error_fg}; }}
    QLabel#emptyTitle {{ font-size: 17px; font-weight: 600; }}
    QLabel#emptyHint, QLabel#hint {{ color: {hint}; }}
    QLabel#previewTitle {{ font-weight: 600; font-size: 14px; }}
    QLineEdit#search {{ padding: 6px 10px; border-radius: 8px; font-size: 15px; }}
    QFrame#chip {{ background: {chip_bg}; border-radius: 10px; }}
    QFrame#chip QLabel {{ background: transparent; }}
    QToolButton#chipClose {{ border: none; background: transparent; }}
    QStatusBar QLabel {{ color: {hint}; }}
    """


def apply(app: QApplication, mode: str = "system") -> bool:
    """Apply a theme: "system" (follow the OS, now and on change), "light" or "dark".
    Returns whether the dark theme is in use."""
    app.setStyle("Fusion")
    app.setProperty("photosift_theme", mode)
    dark = system_is_dark() if mode == "system" else mode == "dark"
    app.setPalette(dark_palette() if dark else light_palette())
    app.setStyleSheet(style_sheet(dark))
    if mode == "system" and not app.property("photosift_theme_hooked"):
        app.setProperty("photosift_theme_hooked", True)
        QGuiApplication.styleHints().colorSchemeChanged.connect(lambda *_: _follow(app))
    return dark


def _follow(app: QApplication) -> None:
    if app.property("photosift_theme") == "system":  # the user did not pin a theme
        apply(app, "system")
